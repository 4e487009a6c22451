//! What the tests and benches of this crate build alike: the example config
//! of `config/` and the two regions, `eu` and `us`, they route over.
//!
//! Benches take it in with `#[path = "../tests/support/mod.rs"] mod support;`.

#![allow(dead_code, unreachable_pub)]

use std::path::Path;
use std::sync::Arc;

use residency_policy::Ruleset;
use residency_store::{Backend, Body, CompletedPart, DirBackend, MemoryBackend, Operation};
use residency_tower::{
    RegionalDispatch, RegionalDispatchBuilder, RoutingLayer, RoutingService, RulesetHandle,
    UploadIdCodec,
};
use tower::Layer;

/// The default hosting policy.
pub const POLICY: &str = include_str!("../../../../config/hosting-policy.toml");
/// The example tenants.
pub const TENANTS: &str = include_str!("../../../../config/tenants.example.toml");

/// The default hosting policy with `tenants` (the text of a tenants file).
pub fn rules_from(tenants: &str) -> Ruleset {
    Ruleset::from_toml(
        POLICY,
        "hosting-policy.toml",
        tenants,
        "tenants.example.toml",
    )
    .expect("the example config is valid")
}

/// The default hosting policy and the example tenants.
pub fn rules() -> Ruleset {
    rules_from(TENANTS)
}

/// Regions by id, as the batching audit sink takes them.
pub type Regions = Vec<(String, Arc<dyn Backend>)>;

/// A dispatch over `regions`, signing upload ids with `codec`.
pub fn dispatch_over(
    regions: &[(String, Arc<dyn Backend>)],
    codec: &UploadIdCodec,
) -> RegionalDispatchBuilder {
    regions
        .iter()
        .fold(RegionalDispatch::builder(), |d, (id, b)| {
            d.region(id.clone(), b.clone())
        })
        .upload_ids(codec.clone())
}

/// Two empty in-memory regions, `eu` and `us`.
pub struct MemoryRegions {
    pub eu: Arc<MemoryBackend>,
    pub us: Arc<MemoryBackend>,
}

impl MemoryRegions {
    pub fn new() -> Self {
        Self {
            eu: Arc::new(MemoryBackend::new("eu")),
            us: Arc::new(MemoryBackend::new("us")),
        }
    }

    /// A dispatch over both regions, signing upload ids with `codec`.
    pub fn dispatch(&self, codec: &UploadIdCodec) -> RegionalDispatchBuilder {
        RegionalDispatch::builder()
            .region("eu", self.eu.clone())
            .region("us", self.us.clone())
            .upload_ids(codec.clone())
    }
}

/// The routing layer under the example config, signing upload ids with `codec`.
pub fn example_layer(codec: &UploadIdCodec) -> RoutingLayer {
    RoutingLayer::new(RulesetHandle::new(rules())).upload_ids(codec.clone())
}

/// The example config routing over two fresh in-memory regions, with no audit
/// sink: a whole stack where only the layer's and dispatch's own work counts.
pub fn memory_stack(codec: &UploadIdCodec) -> RoutingService<RegionalDispatch> {
    let dispatch = MemoryRegions::new().dispatch(codec).build();
    example_layer(codec).layer(dispatch)
}

/// Directory regions `eu` and `us` under `dir`.
pub async fn dir_regions(dir: &Path) -> Regions {
    let mut regions: Regions = Vec::new();
    for id in ["eu", "us"] {
        let b = DirBackend::open(dir.join(id)).await.expect("open dir");
        regions.push((id.to_owned(), Arc::new(b)));
    }
    regions
}

/// Starts a multipart upload of `key`, with no metadata.
pub fn create_multipart(key: &str) -> Operation {
    Operation::CreateMultipart {
        key: key.into(),
        meta: Default::default(),
    }
}

/// Uploads `body` as part 1 of `upload_id`.
pub fn upload_part(key: &str, upload_id: String, body: impl Into<Body>) -> Operation {
    Operation::UploadPart {
        key: key.into(),
        upload_id,
        part_number: 1,
        body: body.into(),
        checksums: Default::default(),
        sse: Default::default(),
    }
}

/// Completes `upload_id` from its part 1, uploaded with `etag`.
pub fn complete_part_1(key: &str, upload_id: String, etag: String) -> Operation {
    Operation::CompleteMultipart {
        key: key.into(),
        upload_id,
        parts: vec![CompletedPart {
            part_number: 1,
            etag,
            checksums: Default::default(),
        }],
    }
}

/// Copies `src_key` to `dst_key`, keeping the metadata.
pub fn copy(src_key: &str, dst_key: &str) -> Operation {
    Operation::Copy {
        src_key: src_key.into(),
        dst_key: dst_key.into(),
        meta: None,
        sse: Default::default(),
    }
}

pub fn head(key: &str) -> Operation {
    Operation::Head {
        key: key.into(),
        sse: Default::default(),
    }
}
