//! Residency's embeddable routing layer.
//!
//! [`RoutingLayer`] classifies and decides each storage operation in `call`
//! (before any body byte is read), attaches the [`Route`], and calls the inner
//! service; a denied request never reaches it. [`RegionalDispatch`] sends each
//! routed operation to its region's backend only, and never elsewhere.
//!
//! ```
//! use std::sync::Arc;
//! use residency_policy::Ruleset;
//! use residency_store::{Body, MemoryBackend, Operation, PutMeta};
//! use residency_tower::{RegionalDispatch, RoutingLayer, RulesetHandle, StorageRequest, UploadIdCodec};
//! use tower::{Service, ServiceBuilder, ServiceExt};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let rules = Ruleset::from_toml(
//!     include_str!("../../../config/hosting-policy.toml"), "hosting-policy.toml",
//!     include_str!("../../../config/tenants.example.toml"), "tenants.example.toml",
//! ).unwrap();
//! let eu = Arc::new(MemoryBackend::new("eu"));
//! let us = Arc::new(MemoryBackend::new("us"));
//! let codec = UploadIdCodec::new(b"stable secret".to_vec());
//! let mut svc = ServiceBuilder::new()
//!     .layer(RoutingLayer::new(RulesetHandle::new(rules)).upload_ids(codec.clone()))
//!     .service(RegionalDispatch::builder().region("eu", eu.clone()).region("us", us.clone()).upload_ids(codec).build());
//!
//! let put = Operation::Put { key: "chat/1.json".into(), body: Body::from("hi"), meta: Default::default() };
//! let resp = svc.ready().await.unwrap().call(StorageRequest::new("globex", put)).await.unwrap();
//! // Chat content may only be hosted in the EEA, even for a US tenant.
//! assert_eq!(resp.region.as_deref(), Some("eu"));
//! # });
//! ```

mod dispatch;
mod error;
pub mod fair;
mod handle;
pub mod metrics;
mod one_copy;
mod request;
mod routing;
mod upload_id;

pub use audit::{
    AuditError, AuditEvent, AuditSink, DecisionRecord, DurableAck, MemoryAuditSink,
    TracingAuditSink,
};
pub use dispatch::{
    RegionalDispatch, RegionalDispatchBuilder, StorageResponse, DEFAULT_REGION_CONCURRENCY,
};
pub use error::{Denied, RoutingError};
pub use handle::{Current, Resolved, RulesetHandle};
pub use request::{BodyChecks, RoutableRequest, Route, StorageRequest, Target};
/// The audit trail (the `residency-audit` crate).
pub use residency_audit as audit;
pub use residency_directory as directory;
pub use routing::{RoutingFuture, RoutingLayer, RoutingService};
pub use upload_id::{UploadIdCodec, UploadToken};
