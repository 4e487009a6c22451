//! What the audit trail adds to a routed request, over in-memory regions.
//!
//! The same requests as the `layer` bench (a 1-byte put and a head through
//! `RoutingLayer` + `RegionalDispatch`), with
//! (a) no audit sink,
//! (b) `TracingAuditSink` with no subscriber: the event is handed over and
//!     dropped, so this is the cost of building it, and
//! (c) `BatchingAuditSink` storing into null backends, flushed every 1000
//!     requests inside the measured time: building, sending, encoding,
//!     hashing and storing each event, all of it.
//!
//! `cargo bench -p residency-tower --bench audit`

#[path = "../tests/support/mod.rs"]
mod support;

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_main, Criterion};
use residency_store::{Backend, Body, NullBackend, Operation};
use residency_tower::audit::batch::{BatchConfig, BatchingAuditSink, WriterId};
use residency_tower::{
    AuditSink, RegionalDispatch, RoutingService, StorageRequest, TracingAuditSink, UploadIdCodec,
};
use support::{example_layer, MemoryRegions};
use tokio::runtime::Runtime;
use tower::{Layer, Service, ServiceExt};

const TENANT: &str = "acme";
const KEY: &str = "tickets/1/comment.json";
const FLUSH_EVERY: u64 = 1000;

fn put_op() -> Operation {
    Operation::Put {
        key: KEY.into(),
        body: Body::from_bytes(bytes::Bytes::from_static(b"x")),
        meta: Default::default(),
    }
}

fn head_op() -> Operation {
    Operation::Head {
        key: KEY.into(),
        sse: Default::default(),
    }
}

type Stack = RoutingService<RegionalDispatch>;

fn stack(audit: Option<Arc<dyn AuditSink>>) -> Stack {
    let codec = UploadIdCodec::new(b"bench".to_vec());
    let dispatch = MemoryRegions::new().dispatch(&codec).build();
    let mut layer = example_layer(&codec);
    if let Some(sink) = audit {
        layer = layer.audit_shared(sink);
    }
    layer.layer(dispatch)
}

/// Runs `iters` requests back to back inside one `block_on`, flushing the
/// batching sink (if any) every [`FLUSH_EVERY`] requests and at the end.
fn run(
    rt: &Runtime,
    svc: &Stack,
    batching: Option<&BatchingAuditSink>,
    iters: u64,
    make: fn() -> Operation,
) -> Duration {
    let mut svc = svc.clone();
    rt.block_on(async {
        let start = Instant::now();
        for i in 0..iters {
            let ready = svc.ready().await.expect("ready");
            let resp = ready.call(StorageRequest::new(TENANT, make())).await;
            black_box(resp.expect("request"));
            if let Some(b) = batching {
                if i % FLUSH_EVERY == FLUSH_EVERY - 1 {
                    b.flush().await.expect("flush");
                }
            }
        }
        if let Some(b) = batching {
            b.flush().await.expect("flush");
        }
        start.elapsed()
    })
}

fn audit_overhead(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let batching = {
        let _guard = rt.enter();
        let regions: Vec<(String, Arc<dyn Backend>)> = vec![
            ("eu".to_owned(), Arc::new(NullBackend::new("eu"))),
            ("us".to_owned(), Arc::new(NullBackend::new("us"))),
        ];
        Arc::new(BatchingAuditSink::new(
            regions,
            WriterId::new("bench").expect("writer id"),
            BatchConfig::default(),
        ))
    };
    let arms: [(&str, Stack, Option<&BatchingAuditSink>); 3] = [
        ("no_audit", stack(None), None),
        (
            "tracing_sink",
            stack(Some(Arc::new(TracingAuditSink))),
            None,
        ),
        (
            "batching_sink",
            stack(Some(batching.clone() as Arc<dyn AuditSink>)),
            Some(&batching),
        ),
    ];
    // The heads read an object that exists: each arm has its own backends,
    // and a test runner may run a head case alone.
    for (_, svc, b) in &arms {
        run(&rt, svc, *b, 1, put_op);
    }

    let mut g = c.benchmark_group("audit");
    for (name, svc, b) in &arms {
        g.bench_function(format!("put_1b/{name}"), |bench| {
            bench.iter_custom(|iters| run(&rt, svc, *b, iters, put_op))
        });
        g.bench_function(format!("head/{name}"), |bench| {
            bench.iter_custom(|iters| run(&rt, svc, *b, iters, head_op))
        });
    }
    g.finish();
    rt.block_on(batching.shutdown()).expect("shutdown");
}

// `criterion_group!` defines an undocumented `pub fn benches`.
#[allow(missing_docs)]
mod group {
    criterion::criterion_group!(benches, super::audit_overhead);
}
criterion_main!(group::benches);
