//! PUT latency with the audit trail in durable mode (the write waits for its
//! record's batch to be stored) against batched mode, on directory backends
//! (the sidecar's local default), at concurrency 1 and 16.
//!
//! One iteration sends `c` 1-byte PUTs of one tenant at once and waits for
//! all of them: its time is the latency each of those requests saw. In
//! durable mode the records of concurrent PUTs share batches (group commit).
//!
//! `cargo bench -p residency-tower --bench audit_durable`

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_main, Criterion};
use futures::future::join_all;
use residency_store::{Body, Operation};
use residency_tower::audit::batch::{AuditMode, BatchConfig, BatchingAuditSink, WriterId};
use residency_tower::{RegionalDispatch, RoutingService, StorageRequest, UploadIdCodec};
use support::{dir_regions, dispatch_over, example_layer};
use tokio::runtime::Runtime;
use tower::{Layer, ServiceExt};

fn put(i: u64) -> StorageRequest {
    StorageRequest::new(
        "acme",
        Operation::Put {
            key: format!("tickets/{}/c.json", i % 1024),
            body: Body::from_bytes(bytes::Bytes::from_static(b"x")),
            meta: Default::default(),
        },
    )
}

fn stack(
    rt: &Runtime,
    dir: &std::path::Path,
    mode: AuditMode,
) -> (RoutingService<RegionalDispatch>, Arc<BatchingAuditSink>) {
    rt.block_on(async {
        let regions = dir_regions(dir).await;
        let sink = Arc::new(BatchingAuditSink::new(
            regions.clone(),
            WriterId::new(format!("bench-{}", mode.as_str())).expect("id"),
            BatchConfig {
                mode,
                ..BatchConfig::default()
            },
        ));
        let codec = UploadIdCodec::new(b"bench".to_vec());
        let svc = example_layer(&codec)
            .audit_shared(sink.clone())
            .layer(dispatch_over(&regions, &codec).build());
        (svc, sink)
    })
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("audit_durable_put");
    for mode in [AuditMode::Batched, AuditMode::Durable] {
        for conc in [1u64, 16] {
            let dir = tempfile::tempdir().expect("tempdir");
            let (svc, sink) = stack(&rt, dir.path(), mode);
            let mut n = 0u64;
            group.bench_function(format!("{}/c{conc}", mode.as_str()), |b| {
                b.iter_custom(|iters| {
                    rt.block_on(async {
                        let mut total = Duration::ZERO;
                        for _ in 0..iters {
                            let start = Instant::now();
                            let round = join_all((0..conc).map(|_| {
                                n += 1;
                                svc.clone().oneshot(put(n))
                            }))
                            .await;
                            total += start.elapsed();
                            assert!(round.iter().all(Result::is_ok));
                        }
                        total
                    })
                })
            });
            rt.block_on(sink.shutdown()).expect("audit stored");
        }
    }
    group.finish();
}

fn benches() {
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
}

criterion_main!(benches);
