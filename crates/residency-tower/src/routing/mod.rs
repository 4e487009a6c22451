//! The routing middleware: classify + decide in `call`, attach the route,
//! call the inner service; a denial never reaches it.

mod decide;
mod future;
mod layer;
mod service;

pub use future::RoutingFuture;
pub use layer::RoutingLayer;
pub use service::RoutingService;

use std::sync::Arc;

use crate::audit::AuditSink;
use crate::handle::RulesetHandle;
use crate::upload_id::UploadIdCodec;

/// What a [`RoutingLayer`] and the services it builds share.
pub(crate) struct Shared {
    pub(crate) handle: RulesetHandle,
    pub(crate) codec: UploadIdCodec,
    pub(crate) audit: Option<Arc<dyn AuditSink>>,
}
