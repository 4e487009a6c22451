//! The routing layer's overhead against calling the dispatch service directly,
//! in the same run, over in-memory regions.
//!
//! For a 1-byte put and a head, each request goes either
//! (a) straight to `RegionalDispatch` with a `Route` built once up front and
//!     cloned per request (what the layer would have attached), or
//! (b) through `RoutingLayer` + `RegionalDispatch` (classify, decide, request
//!     id, metrics calls, route attached).
//! The difference (b − a) is what the layer adds per request; the target is
//! under 300 ns. Requests run back to back inside one `block_on` on a
//! current-thread runtime, so the runtime's own cost is not in the figures.
//!
//! `cargo bench -p residency-tower --bench layer`

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_main, Criterion};
use residency_policy::{ClassifiedBy, Ruleset};
use residency_store::{Body, MemoryBackend, Operation};
use residency_tower::{
    RegionalDispatch, Route, RoutingLayer, RoutingService, RulesetHandle, StorageRequest, Target,
    UploadIdCodec,
};
use tokio::runtime::Runtime;
use tower::{Layer, Service, ServiceExt};

const TENANT: &str = "acme";
const KEY: &str = "tickets/1/comment.json";

fn rules() -> Ruleset {
    Ruleset::from_toml(
        include_str!("../config/hosting-policy.toml"),
        "hosting-policy.toml",
        include_str!("../config/tenants.example.toml"),
        "tenants.example.toml",
    )
    .expect("the example config is valid")
}

struct Setup {
    rt: Runtime,
    dispatch: RegionalDispatch,
    layered: RoutingService<RegionalDispatch>,
    put_route: Route,
    head_route: Route,
}

fn setup() -> Setup {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let rules = Arc::new(rules());
    let codec = UploadIdCodec::new(b"bench".to_vec());
    let dispatch = RegionalDispatch::builder()
        .region("eu", Arc::new(MemoryBackend::new("eu")))
        .region("us", Arc::new(MemoryBackend::new("us")))
        .upload_ids(codec.clone())
        .build();
    let layered = RoutingLayer::new(RulesetHandle::new((*rules).clone()))
        .upload_ids(codec)
        .layer(dispatch.clone());

    // The routes the layer decides for these requests, built by hand.
    let policy = rules.policy();
    let tenant = rules.tenants().get(TENANT).expect("tenant");
    let tenant = rules.tenants().shared(tenant).clone();
    let eu = policy.region_by_id("eu").expect("eu");
    let put_route = Route {
        rules: rules.clone(),
        tenant: tenant.clone(),
        target: Target::Region(eu),
        category: policy.category_by_id("ticket_data"),
        classified_by: Some(ClassifiedBy::KeyRule(0)),
        backend_upload_id: None,
        reason: "tenant_locality",
        out_of_locality: false,
        request_id: Arc::from("bench-request"),
        prefix: Arc::from(format!("{TENANT}/")),
        revoked: None,
    };
    let head_route = Route {
        target: Target::Regions(policy.read_regions(&put_route.tenant, KEY)),
        category: None,
        classified_by: None,
        reason: "tenant_regions",
        ..put_route.clone()
    };
    Setup {
        rt,
        dispatch,
        layered,
        put_route,
        head_route,
    }
}

fn put_op() -> Operation {
    Operation::Put {
        key: KEY.into(),
        body: Body::from_bytes(bytes_1()),
        meta: Default::default(),
    }
}

fn bytes_1() -> bytes::Bytes {
    bytes::Bytes::from_static(b"x")
}

fn head_op() -> Operation {
    Operation::Head {
        key: KEY.into(),
        sse: None,
    }
}

/// Runs `iters` requests back to back inside one `block_on`.
fn run<S, F>(rt: &Runtime, svc: &S, iters: u64, make: F) -> Duration
where
    S: Service<StorageRequest> + Clone,
    S::Error: std::fmt::Debug,
    F: Fn() -> StorageRequest,
{
    let mut svc = svc.clone();
    rt.block_on(async {
        let start = Instant::now();
        for _ in 0..iters {
            let resp = svc
                .ready()
                .await
                .expect("ready")
                .call(make())
                .await
                .expect("request");
            black_box(resp);
        }
        start.elapsed()
    })
}

fn layer_overhead(c: &mut Criterion) {
    let s = setup();
    // The head reads an object that exists.
    run(&s.rt, &s.layered, 1, || {
        StorageRequest::new(TENANT, put_op())
    });

    let mut g = c.benchmark_group("layer");
    g.bench_function("put_1b/dispatch_direct", |b| {
        b.iter_custom(|iters| {
            run(&s.rt, &s.dispatch, iters, || {
                let mut req = StorageRequest::new(TENANT, put_op());
                req.route = Some(s.put_route.clone());
                req
            })
        })
    });
    g.bench_function("put_1b/routing_layer", |b| {
        b.iter_custom(|iters| {
            run(&s.rt, &s.layered, iters, || {
                StorageRequest::new(TENANT, put_op())
            })
        })
    });
    g.bench_function("head/dispatch_direct", |b| {
        b.iter_custom(|iters| {
            run(&s.rt, &s.dispatch, iters, || {
                let mut req = StorageRequest::new(TENANT, head_op());
                req.route = Some(s.head_route.clone());
                req
            })
        })
    });
    g.bench_function("head/routing_layer", |b| {
        b.iter_custom(|iters| {
            run(&s.rt, &s.layered, iters, || {
                StorageRequest::new(TENANT, head_op())
            })
        })
    });
    g.finish();

    // The policy's share of the overhead: classify + decide alone, as the
    // layer calls them for the two requests above.
    let rules = s.put_route.rules.clone();
    let tenant = s.put_route.tenant.handle();
    let mut g = c.benchmark_group("layer/policy_only");
    g.bench_function("put_decide", |b| {
        b.iter(|| black_box(rules.decide_for(tenant, black_box(KEY), None, None)))
    });
    g.bench_function("head_read_regions", |b| {
        b.iter(|| black_box(rules.read_regions(tenant, black_box(KEY))))
    });
    g.finish();
}

/// Median of per-round differences between the two arms, measured in
/// alternating rounds so that load drifting on the machine hits both alike.
/// Returns (direct ns, layered ns, added ns) per request.
fn interleaved<D, L>(s: &Setup, direct: D, layered: L) -> (f64, f64, f64)
where
    D: Fn() -> StorageRequest,
    L: Fn() -> StorageRequest,
{
    const BATCH: u64 = 2_000;
    const ROUNDS: usize = 41;
    let per_request = |d: Duration| d.as_nanos() as f64 / BATCH as f64;
    let (mut ds, mut ls, mut diffs) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let d = per_request(run(&s.rt, &s.dispatch, BATCH, &direct));
        let l = per_request(run(&s.rt, &s.layered, BATCH, &layered));
        ds.push(d);
        ls.push(l);
        diffs.push(l - d);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    (median(&mut ds), median(&mut ls), median(&mut diffs))
}

/// Prints what the layer adds per request (only under `cargo bench`, not when
/// `cargo test --benches` smoke-runs this file).
fn report_overhead(_: &mut Criterion) {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let s = setup();
    run(&s.rt, &s.layered, 1, || {
        StorageRequest::new(TENANT, put_op())
    });
    let put = interleaved(
        &s,
        || {
            let mut req = StorageRequest::new(TENANT, put_op());
            req.route = Some(s.put_route.clone());
            req
        },
        || StorageRequest::new(TENANT, put_op()),
    );
    let head = interleaved(
        &s,
        || {
            let mut req = StorageRequest::new(TENANT, head_op());
            req.route = Some(s.head_route.clone());
            req
        },
        || StorageRequest::new(TENANT, head_op()),
    );
    println!("\nlayer overhead (median of interleaved rounds, ns per request):");
    for (name, (d, l, added)) in [("put 1 B", put), ("head", head)] {
        println!("  {name:8} dispatch direct {d:7.0}   through the layer {l:7.0}   added {added:5.0} (target < 300)");
    }
}

// `criterion_group!` defines an undocumented `pub fn benches`.
#[allow(missing_docs)]
mod group {
    criterion::criterion_group!(benches, super::layer_overhead, super::report_overhead);
}
criterion_main!(group::benches);
