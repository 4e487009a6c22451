//! The cost of one object per key per tenant: a PUT through the whole stack
//! (routing layer + regional dispatch) over two in-memory regions, for
//!
//! - `key_rule`: a key placed by a key rule (no look elsewhere);
//! - `label_stays`: a labelled key that stays in its region (one HEAD in the
//!   other region);
//! - `label_moves`: a labelled key that alternates between the regions on
//!   every write (HEAD, PUT, DELETE of the older copy).
//!
//! In-memory backends, so the figures are the layer's own work; against real
//! regions each extra call adds its round trip (docs/performance.md).

#[path = "../tests/support/mod.rs"]
mod support;

use criterion::{criterion_main, Criterion};
use residency_store::{Body, BoxError, Operation};
use residency_tower::{StorageRequest, StorageResponse, UploadIdCodec};
use tokio::runtime::Runtime;
use tower::util::BoxCloneService;
use tower::ServiceExt;

fn stack() -> BoxCloneService<StorageRequest, StorageResponse, BoxError> {
    let codec = UploadIdCodec::new(b"bench".to_vec());
    BoxCloneService::new(support::memory_stack(&codec))
}

fn put(key: &str, label: Option<&str>) -> StorageRequest {
    let req = StorageRequest::new(
        "acme",
        Operation::Put {
            key: key.into(),
            body: Body::from(b"0123456789abcdef".to_vec()),
            meta: Default::default(),
        },
    );
    match label {
        Some(l) => req.with_category(l),
        None => req,
    }
}

fn bench(c: &mut Criterion) {
    let rt = Runtime::new().expect("runtime");
    let svc = stack();
    let mut g = c.benchmark_group("one_copy_put");
    g.bench_function("key_rule", |b| {
        b.iter(|| rt.block_on(svc.clone().oneshot(put("tickets/1/a.json", None))))
    });
    g.bench_function("label_stays", |b| {
        b.iter(|| rt.block_on(svc.clone().oneshot(put("notes/stays", Some("ticket_data")))))
    });
    let mut flip = false;
    g.bench_function("label_moves", |b| {
        b.iter(|| {
            flip = !flip;
            let label = if flip { "insights" } else { "ticket_data" };
            rt.block_on(svc.clone().oneshot(put("notes/moves", Some(label))))
        })
    });
    g.finish();
}

// `criterion_group!` defines an undocumented `pub fn benches`.
#[allow(missing_docs)]
mod group {
    criterion::criterion_group!(benches, super::bench);
}
criterion_main!(group::benches);
