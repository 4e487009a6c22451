//! Storage backends for Residency, behind one interface.
//!
//! A [`Backend`] is one regional bucket: [`S3Backend`] (any S3-compatible
//! service, via `aws-sdk-s3`), [`DirBackend`] (a local directory, the embedded
//! default) or [`MemoryBackend`] (unit tests only). Backends take full keys
//! (the caller prefixes `<tenant>/`) and know nothing of tenants or policy.
//!
//! Calls can also be made as values: an [`Operation`] names the call and
//! carries its arguments, so that a router can classify it before running it
//! with [`execute`].
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use std::sync::Arc;
//! use residency_store::{execute, Backend, Body, MemoryBackend, Operation, OpKind, Outcome, PutMeta};
//!
//! let eu: Arc<dyn Backend> = Arc::new(MemoryBackend::new("eu"));
//! let op = Operation::Put {
//!     key: "acme/tickets/1.json".into(),
//!     body: Body::from("{}"),
//!     meta: Box::new(PutMeta::with_content_type("application/json")),
//! };
//! assert_eq!(op.kind(), OpKind::Put);
//! assert!(op.kind().is_write());
//! let Outcome::Put(out) = execute(eu.as_ref(), op).await.unwrap() else { unreachable!() };
//! assert_eq!(out.etag, "\"99914b932bd37a50b983c5e7c90ae93b\"");
//! # });
//! ```

mod backend;
mod body;
mod checksum;
mod dir;
mod error;
mod listing;
mod memory;
mod multipart;
mod null;
mod object;
mod operation;
mod range;
mod s3;
mod sse;

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;

pub use backend::Backend;

/// The longest key a local backend stores, in bytes: S3's 1,024 bytes for
/// the client's key, plus room for the tenant prefix a router adds in front
/// of it (tenant ids are at most 63 bytes, then `/`). The limit S3 clients see
/// is the client's key; the stored path is longer.
pub const MAX_STORED_KEY_BYTES: usize = 1024 + 64;
pub use body::{Body, BodyStream};
pub use checksum::checksums_of;
pub use dir::DirBackend;
pub use error::{BoxError, StoreError};
pub use memory::MemoryBackend;
pub use null::NullBackend;
pub use object::{
    BackendDescription, Checksums, CompletedPart, GetOutput, ListPage, ListRequest, ObjectInfo,
    ObjectSummary, PartInfo, PartUpload, PartsPage, PartsQuery, PutMeta, PutOutput, StoredHeaders,
    UploadInfo,
};
pub use operation::{execute, OpKind, Operation, Outcome};
pub use range::ByteRange;
#[cfg(feature = "bench")]
#[doc(hidden)]
pub use s3::BenchSigner;
pub use s3::{S3Backend, S3BackendConfig, S3BackendConfigBuilder};
pub use sse::{CustomerKey, ServerSide, Sse, SseReport, SseSupport};
