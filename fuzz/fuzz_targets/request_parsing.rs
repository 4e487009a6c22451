//! The request parsing the sidecar does itself (s3s parses the rest): signed
//! multipart upload ids, `Range` headers, and list continuation tokens (ours:
//! they work across regions), driven through the routing stack on memory
//! backends.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use residency_policy::Ruleset;
use residency_store::{ByteRange, ListRequest, MemoryBackend, Operation};
use residency_tower::{
    RegionalDispatch, RoutingLayer, RoutingService, RulesetHandle, StorageRequest, UploadIdCodec,
};
use tower::{Layer, Service, ServiceExt};

struct World {
    rt: tokio::runtime::Runtime,
    codec: UploadIdCodec,
    stack: RoutingService<RegionalDispatch>,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let rules = Ruleset::from_toml(
            include_str!("../../config/hosting-policy.toml"),
            "hosting-policy.toml",
            include_str!("../../config/tenants.example.toml"),
            "tenants.example.toml",
        )
        .expect("shipped config");
        let codec = UploadIdCodec::new(b"fuzz".to_vec());
        let dispatch = RegionalDispatch::builder()
            .region("eu", Arc::new(MemoryBackend::new("eu")))
            .region("us", Arc::new(MemoryBackend::new("us")))
            .upload_ids(codec.clone())
            .build();
        let stack = RoutingLayer::new(RulesetHandle::new(rules))
            .upload_ids(codec.clone())
            .layer(dispatch);
        World {
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .expect("runtime"),
            codec,
            stack,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    let w = world();
    // Upload ids: anything but our own signed ids is refused; ours round-trip.
    if let Some(t) = w.codec.decode(&s) {
        let again = w.codec.encode(&t.region, &t.tenant, &t.backend_id);
        assert_eq!(w.codec.decode(&again).as_ref(), Some(&t));
    }
    let parts: Vec<&str> = s.splitn(3, '\u{1}').collect();
    // Region and tenant ids are dot-free (the id's separator).
    if parts.len() == 3 && !parts[0].contains('.') && !parts[1].contains('.') {
        let t = w.codec.encode(parts[0], parts[1], parts[2]);
        let d = w.codec.decode(&t).expect("our own id decodes");
        assert_eq!(
            (d.region.as_str(), d.tenant.as_str(), d.backend_id.as_str()),
            (parts[0], parts[1], parts[2])
        );
    }
    // Range headers.
    if let Ok(r) = ByteRange::parse(&s) {
        let _ = r.to_header();
    }
    // Continuation tokens, through the stack.
    let req = ListRequest::new("tickets/").continuation_token(Some(s.to_string()));
    let mut svc = w.stack.clone();
    let _ = w.rt.block_on(async move {
        svc.ready()
            .await?
            .call(StorageRequest::new(
                "acme",
                Operation::List { request: req },
            ))
            .await
    });
});
