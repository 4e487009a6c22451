//! `RoutingLayer`: the configuration the routing service is built from.

use std::sync::Arc;

use tower::Layer;

use crate::audit::AuditSink;
use crate::handle::RulesetHandle;
use crate::routing::{RoutingService, Shared};
use crate::upload_id::UploadIdCodec;

/// Puts policy routing in front of a storage service.
///
/// ```
/// # use residency_policy::Ruleset;
/// # use residency_tower::{RoutingLayer, RulesetHandle, UploadIdCodec, MemoryAuditSink};
/// # let rules = Ruleset::from_toml(
/// #     "version=\"1\"\ndefault_region=\"us\"\n[regions.us]\njurisdiction=\"US\"\n[categories.c]\nallowed=[\"us\"]\n",
/// #     "p", "", "t").unwrap();
/// let layer = RoutingLayer::new(RulesetHandle::new(rules))
///     .upload_ids(UploadIdCodec::new(b"a stable secret".to_vec()))
///     .audit(MemoryAuditSink::new());
/// ```
#[derive(Clone)]
pub struct RoutingLayer {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for RoutingLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoutingLayer")
            .field(
                "policy_version",
                &self.shared.handle.load().policy().version(),
            )
            .field("audit", &self.shared.audit.is_some())
            .finish()
    }
}

impl RoutingLayer {
    /// Routes under the ruleset `handle` serves (swap it to reload).
    pub fn new(handle: RulesetHandle) -> Self {
        Self {
            shared: Arc::new(Shared {
                handle,
                codec: UploadIdCodec::random(),
                audit: None,
            }),
        }
    }

    fn with(self, f: impl FnOnce(&mut Shared)) -> Self {
        let mut shared = Shared {
            handle: self.shared.handle.clone(),
            codec: self.shared.codec.clone(),
            audit: self.shared.audit.clone(),
        };
        f(&mut shared);
        Self {
            shared: Arc::new(shared),
        }
    }

    /// Signs multipart upload ids with this codec (it must match the
    /// dispatch's; keep the key stable across restarts).
    #[must_use]
    pub fn upload_ids(self, codec: UploadIdCodec) -> Self {
        self.with(|s| s.codec = codec)
    }

    /// Sends one audit event per decision to `sink`.
    #[must_use]
    pub fn audit(self, sink: impl AuditSink) -> Self {
        let sink: Arc<dyn AuditSink> = Arc::new(sink);
        self.with(|s| s.audit = Some(sink))
    }

    /// Like [`RoutingLayer::audit`] for a shared sink.
    #[must_use]
    pub fn audit_shared(self, sink: Arc<dyn AuditSink>) -> Self {
        self.with(|s| s.audit = Some(sink))
    }

    /// The ruleset handle (for reloads).
    pub fn handle(&self) -> &RulesetHandle {
        &self.shared.handle
    }

    /// The upload id codec.
    pub fn codec(&self) -> &UploadIdCodec {
        &self.shared.codec
    }
}

impl<S> Layer<S> for RoutingLayer {
    type Service = RoutingService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RoutingService::new(inner, self.shared.clone())
    }
}
