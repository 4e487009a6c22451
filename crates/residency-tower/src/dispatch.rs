//! Regional dispatch: each routed operation goes to its region's backend only.
//!
//! Readiness and backpressure: `poll_ready` is always ready. Each region has
//! its own bound on in-flight backend calls (a semaphore acquired inside the
//! call's future), so a slow or stalled region queues its own requests and
//! never holds back another region's. Put a `tower::limit::ConcurrencyLimit`
//! or load shedding in front of the stack to bound the whole service.
//!
//! Fail closed: when the chosen region fails, the operation fails; nothing is
//! ever sent to another region instead. Reads that may find their object in
//! several regions try them in the route's order and stop at the first region
//! that fails with anything but "not found" (a region that is down gives 503,
//! never a false 404).
//!
//! Circuit breaker: each region counts consecutive "unavailable" failures
//! (unreachable, timed out, 5xx). After `threshold` of them the region's
//! circuit opens for `cooldown`: calls fail at once with `Unavailable` (503)
//! without touching the backend, so a dead region costs its callers nothing
//! and a hung one holds no more connections. After the cooldown one probe
//! call goes through (half-open); its success closes the circuit, its failure
//! opens it for another cooldown. Other errors (not found, bad digest, access
//! denied) say the backend is alive and count as successes. The gauge
//! `residency_circuit_open{region}` is 1 while a region's circuit is open or
//! half-open, and `residency_circuit_transitions_total{region,to}` counts
//! state changes.
//!
//! Timeouts: the backend bounds its own calls; an upload (put, upload part)
//! is bounded here too once its body has been sent in full, so that a hung
//! region answers `Unavailable` within `upload_response_timeout` rather than
//! never.
//!
//! Retries: this layer never retries. The S3 backend's SDK retries an attempt
//! at most `max_attempts - 1` times against the same regional endpoint; a
//! failure here is final and is never sent to another region.

use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use futures::StreamExt;
use residency_policy::{RegionId, RegionOrder};
use residency_store::{
    Backend, Body, ListPage, ListRequest, ObjectSummary, OpKind, Operation, Outcome, StoreError,
};
use tokio::sync::Semaphore;
// tokio's clock: tests drive the breaker's cooldown with a paused clock.
use tokio::time::Instant;
use tower::Service;

use crate::error::{Denied, RoutingError};
use crate::fair::{self, TenantShare, DEFAULT_TENANT_SHARE};
use crate::metrics as m;
use crate::one_copy;
use crate::request::{Route, StorageRequest, Target};
use crate::upload_id::UploadIdCodec;

/// The default bound on in-flight backend calls per region.
pub const DEFAULT_REGION_CONCURRENCY: usize = 512;

/// Consecutive unavailable failures that open a region's circuit by default.
const DEFAULT_BREAKER_THRESHOLD: u32 = 5;
/// How long an open circuit fails fast by default before one probe.
const DEFAULT_BREAKER_COOLDOWN: Duration = Duration::from_secs(2);
/// How long a region may take to answer once an upload's body is sent.
const DEFAULT_UPLOAD_RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);
const CIRCUIT_OPEN: &str = "residency_circuit_open";
const CIRCUIT_TRANSITIONS: &str = "residency_circuit_transitions_total";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Circuit {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// The cooldown is over and one probe is in flight.
    HalfOpen,
}

/// One region's circuit breaker (see the module docs).
struct Breaker {
    region: Arc<str>,
    /// 0 disables the breaker.
    threshold: u32,
    cooldown: Duration,
    state: Mutex<Circuit>,
    /// `state` at a glance, stored under the lock on every change and read
    /// without it ([`CLEAN`], [`FAILING`] or [`TRIPPED`]): a healthy region's
    /// calls are admitted and reported without taking the lock. A read that
    /// races a change is ordered before it, as if it had taken the lock first.
    summary: AtomicU8,
}

/// Closed with no failure counted.
const CLEAN: u8 = 0;
/// Closed with failures counted.
const FAILING: u8 = 1;
/// Open or half-open.
const TRIPPED: u8 = 2;

impl Circuit {
    fn summary(self) -> u8 {
        match self {
            Circuit::Closed { failures: 0 } => CLEAN,
            Circuit::Closed { .. } => FAILING,
            Circuit::Open { .. } | Circuit::HalfOpen => TRIPPED,
        }
    }
}

/// Lets a call through; reports its outcome when dropped without one (a
/// cancelled probe must not leave the circuit half-open forever).
struct Admitted<'a> {
    breaker: &'a Breaker,
    probe: bool,
    reported: bool,
}

impl Breaker {
    fn new(region: Arc<str>, threshold: u32, cooldown: Duration) -> Breaker {
        metrics::gauge!(CIRCUIT_OPEN, "region" => m::Label::Shared(region.clone())).set(0.0);
        Breaker {
            region,
            threshold,
            cooldown,
            state: Mutex::new(Circuit::Closed { failures: 0 }),
            summary: AtomicU8::new(CLEAN),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Circuit> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Changes the state (under its lock) and its summary.
    fn set(&self, st: &mut Circuit, next: Circuit) {
        *st = next;
        self.summary.store(next.summary(), Ordering::Relaxed);
    }

    fn transition(&self, to: &'static str) {
        let region = m::Label::Shared(self.region.clone());
        metrics::gauge!(CIRCUIT_OPEN, "region" => region.clone()).set(if to == "closed" {
            0.0
        } else {
            1.0
        });
        metrics::counter!(CIRCUIT_TRANSITIONS, "region" => region, "to" => to).increment(1);
        match to {
            "open" => {
                tracing::warn!(region = %self.region, cooldown_ms = self.cooldown.as_millis() as u64, "circuit open: failing fast")
            }
            "closed" => {
                tracing::info!(region = %self.region, "circuit closed: region serving again")
            }
            _ => tracing::info!(region = %self.region, "circuit half-open: probing"),
        }
    }

    /// Admits a call, or says how long the circuit stays open.
    fn admit(&self) -> Result<Admitted<'_>, Duration> {
        if self.threshold == 0 {
            return Ok(Admitted {
                breaker: self,
                probe: false,
                reported: true,
            });
        }
        if self.summary.load(Ordering::Relaxed) != TRIPPED {
            // Closed: nothing to change.
            return Ok(Admitted {
                breaker: self,
                probe: false,
                reported: false,
            });
        }
        let mut st = self.lock();
        match *st {
            Circuit::Closed { .. } => Ok(Admitted {
                breaker: self,
                probe: false,
                reported: false,
            }),
            Circuit::Open { until } => {
                let now = Instant::now();
                if now < until {
                    return Err(until - now);
                }
                self.set(&mut st, Circuit::HalfOpen);
                drop(st);
                self.transition("half_open");
                Ok(Admitted {
                    breaker: self,
                    probe: true,
                    reported: false,
                })
            }
            // One probe at a time: the others fail fast until it answers.
            Circuit::HalfOpen => Err(Duration::ZERO),
        }
    }

    /// Records a call's answer: `Some(true)` the region was unavailable,
    /// `Some(false)` it answered, `None` nothing was learnt (the client's own
    /// body failed, or the call was abandoned).
    fn record(&self, probe: bool, unavailable: Option<bool>) {
        // An answer from a clean circuit, or nothing learnt outside a probe,
        // changes nothing.
        if !probe
            && (unavailable.is_none()
                || (unavailable == Some(false) && self.summary.load(Ordering::Relaxed) == CLEAN))
        {
            return;
        }
        let mut st = self.lock();
        let Some(unavailable) = unavailable else {
            if probe && *st == Circuit::HalfOpen {
                // Let the next caller probe instead.
                self.set(
                    &mut st,
                    Circuit::Open {
                        until: Instant::now(),
                    },
                );
            }
            return;
        };
        let next = match (*st, unavailable) {
            (Circuit::Closed { .. }, false) => Circuit::Closed { failures: 0 },
            (Circuit::Closed { failures }, true) if failures + 1 >= self.threshold => {
                Circuit::Open {
                    until: Instant::now() + self.cooldown,
                }
            }
            (Circuit::Closed { failures }, true) => Circuit::Closed {
                failures: failures + 1,
            },
            // Only the probe's answer moves a half-open circuit; answers of
            // calls admitted before it opened do not.
            (Circuit::HalfOpen, false) if probe => Circuit::Closed { failures: 0 },
            (Circuit::HalfOpen, true) if probe => Circuit::Open {
                until: Instant::now() + self.cooldown,
            },
            (s, _) => s,
        };
        let changed = std::mem::discriminant(&next) != std::mem::discriminant(&*st);
        self.set(&mut st, next);
        drop(st);
        if changed {
            self.transition(match next {
                Circuit::Closed { .. } => "closed",
                Circuit::Open { .. } => "open",
                Circuit::HalfOpen => "half_open",
            });
        }
    }
}

impl Admitted<'_> {
    fn report(mut self, unavailable: Option<bool>) {
        if !self.reported {
            self.reported = true;
            self.breaker.record(self.probe, unavailable);
        }
    }
}

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        // A probe abandoned by its caller proves nothing: the next caller
        // probes again.
        if !self.reported && self.probe {
            self.breaker.record(true, None);
        }
    }
}

/// A routed operation's result and where it was served.
#[derive(Debug)]
pub struct StorageResponse {
    /// The backend's answer, with keys relative to the tenant's namespace and
    /// multipart upload ids signed.
    pub outcome: Outcome,
    /// The region that served it (`None` for a merged listing).
    pub region: Option<Arc<str>>,
}

struct RegionBackend {
    name: Arc<str>,
    backend: Arc<dyn Backend>,
    permits: Arc<Semaphore>,
    /// Each tenant's share of `permits`.
    share: TenantShare,
    breaker: Breaker,
    metrics: m::RegionMetrics,
}

/// Sends each routed [`StorageRequest`] to its region's backend.
#[derive(Clone)]
pub struct RegionalDispatch {
    regions: Arc<Vec<RegionBackend>>,
    codec: UploadIdCodec,
    upload_response_timeout: Duration,
}

impl std::fmt::Debug for RegionalDispatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_map();
        for r in self.regions.iter() {
            d.entry(&r.name, &r.backend.describe().to_string());
        }
        d.finish()
    }
}

/// Builds a [`RegionalDispatch`].
#[derive(Default)]
pub struct RegionalDispatchBuilder {
    regions: Vec<(String, Arc<dyn Backend>)>,
    concurrency: Option<usize>,
    codec: Option<UploadIdCodec>,
    breaker: Option<(u32, Duration)>,
    upload_response_timeout: Option<Duration>,
    tenant_share: Option<f64>,
}

impl RegionalDispatchBuilder {
    /// Bounds the share of a region's permits one tenant may hold or wait
    /// for (default [`DEFAULT_TENANT_SHARE`]); a call over it fails at once
    /// with `503 SlowDown`. 1.0 leaves tenants unbounded.
    #[must_use]
    pub fn tenant_share(mut self, fraction: f64) -> Self {
        self.tenant_share = Some(fraction);
        self
    }

    /// Serves region `id` (as declared in the policy) with `backend`.
    #[must_use]
    pub fn region(mut self, id: impl Into<String>, backend: Arc<dyn Backend>) -> Self {
        self.regions.push((id.into(), backend));
        self
    }

    /// Bounds in-flight backend calls per region.
    #[must_use]
    pub fn concurrency_per_region(mut self, n: usize) -> Self {
        self.concurrency = Some(n.max(1));
        self
    }

    /// Opens a region's circuit after `threshold` consecutive unavailable
    /// failures, for `cooldown` (default: 5 failures, 2 s). A threshold of 0
    /// disables the breaker.
    #[must_use]
    pub fn circuit_breaker(mut self, threshold: u32, cooldown: Duration) -> Self {
        self.breaker = Some((threshold, cooldown));
        self
    }

    /// Bounds the wait for a region's answer once an upload's body (put,
    /// upload part) has been sent in full (default 30 s): a hung backend then
    /// fails the upload with `Unavailable` instead of holding it forever.
    /// The transfer itself is not bounded: a large body may take minutes.
    #[must_use]
    pub fn upload_response_timeout(mut self, t: Duration) -> Self {
        self.upload_response_timeout = Some(t);
        self
    }

    /// Signs upload ids with `codec` (must be the routing layer's).
    #[must_use]
    pub fn upload_ids(mut self, codec: UploadIdCodec) -> Self {
        self.codec = Some(codec);
        self
    }

    /// The dispatch service.
    pub fn build(self) -> RegionalDispatch {
        let n = self.concurrency.unwrap_or(DEFAULT_REGION_CONCURRENCY);
        let (threshold, cooldown) = self
            .breaker
            .unwrap_or((DEFAULT_BREAKER_THRESHOLD, DEFAULT_BREAKER_COOLDOWN));
        RegionalDispatch {
            regions: Arc::new(
                self.regions
                    .into_iter()
                    .map(|(name, backend)| {
                        let name: Arc<str> = name.into();
                        RegionBackend {
                            breaker: Breaker::new(name.clone(), threshold, cooldown),
                            metrics: m::RegionMetrics::new(name.clone()),
                            name,
                            backend,
                            permits: Arc::new(Semaphore::new(n)),
                            share: TenantShare::new(
                                n,
                                self.tenant_share.unwrap_or(DEFAULT_TENANT_SHARE),
                            ),
                        }
                    })
                    .collect(),
            ),
            codec: self.codec.unwrap_or_else(UploadIdCodec::random),
            upload_response_timeout: self
                .upload_response_timeout
                .unwrap_or(DEFAULT_UPLOAD_RESPONSE_TIMEOUT),
        }
    }
}

impl RegionalDispatch {
    /// A builder.
    pub fn builder() -> RegionalDispatchBuilder {
        RegionalDispatchBuilder::default()
    }

    /// The backend serving a region id, if configured.
    pub fn backend(&self, region: &str) -> Option<Arc<dyn Backend>> {
        self.regions
            .iter()
            .find(|r| &*r.name == region)
            .map(|r| r.backend.clone())
    }

    /// The configured regions and their backends.
    pub fn backends(&self) -> impl Iterator<Item = (&str, &Arc<dyn Backend>)> {
        self.regions.iter().map(|r| (&*r.name, &r.backend))
    }
}

type DispatchFuture = Pin<Box<dyn Future<Output = Result<StorageResponse, RoutingError>> + Send>>;

impl Service<StorageRequest> for RegionalDispatch {
    type Response = StorageResponse;
    type Error = RoutingError;
    type Future = DispatchFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: StorageRequest) -> Self::Future {
        // Only the route and the operation go into the future (it is moved
        // into its box, so its size is a copy on every request), and the
        // future owns its clone of the service: no wrapping async block.
        let StorageRequest {
            operation, route, ..
        } = req;
        match route {
            Some(route) => Box::pin(fair::scope(
                route.rules.clone(),
                route.tenant,
                self.clone().dispatch(route, operation),
            )),
            None => Box::pin(std::future::ready(Err(RoutingError::Denied(Denied {
                reason: "no_route",
                detail: "RegionalDispatch must run behind RoutingLayer".into(),
            })))),
        }
    }
}

/// `a` then `b` in one allocation (`format!` grows its buffer twice).
fn concat(a: &str, b: &str) -> String {
    let mut s = String::with_capacity(a.len() + b.len());
    s.push_str(a);
    s.push_str(b);
    s
}

/// Removes `prefix` from the start of `key` if it is there, in place.
fn strip_in_place(key: &mut String, prefix: &str) {
    if key.starts_with(prefix) {
        key.drain(..prefix.len());
    }
}

/// The lexicographically greatest key that starts with `prefix`, for resuming
/// a delimited listing after a common prefix.
fn past_prefix(prefix: &str) -> String {
    let mut s = prefix.to_string();
    s.push(char::MAX);
    s
}

fn encode_token(start_after: &str) -> String {
    URL_SAFE_NO_PAD.encode(start_after.as_bytes())
}

fn decode_token(token: &str) -> Result<String, RoutingError> {
    URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| RoutingError::Store {
            region: "-".into(),
            source: StoreError::Backend {
                code: Some("InvalidArgument".into()),
                status: Some(400),
                message: "the continuation token is invalid".into(),
            },
        })
}

impl RegionalDispatch {
    fn region(&self, route: &Route, r: RegionId) -> Result<&RegionBackend, RoutingError> {
        let name = route.region_name(r);
        self.regions
            .iter()
            .find(|rb| &*rb.name == name)
            .ok_or_else(|| RoutingError::NoBackend(name.to_string()))
    }

    async fn call_backend<T, F, Fut>(
        rb: &RegionBackend,
        op: OpKind,
        f: F,
    ) -> Result<T, RoutingError>
    where
        F: FnOnce(Arc<dyn Backend>) -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        Self::call_backend_with_body(rb, op, None, f).await
    }

    /// A backend call that streams a client's body: if that body failed
    /// (`body_failed` set), the backend's error is the client's doing and
    /// says nothing about the region's health.
    async fn call_backend_with_body<T, F, Fut>(
        rb: &RegionBackend,
        op: OpKind,
        body: Option<(&BodyWatch, Duration)>,
        f: F,
    ) -> Result<T, RoutingError>
    where
        F: FnOnce(Arc<dyn Backend>) -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let _share = rb.share.enter_current().map_err(|limit| {
            rb.metrics.error("SlowDown");
            RoutingError::Store {
                region: rb.name.to_string(),
                source: StoreError::Backend {
                    code: Some("SlowDown".into()),
                    status: Some(503),
                    message: format!(
                        "this tenant already has {limit} calls in region {}, its share: please reduce your request rate",
                        rb.name
                    ),
                },
            }
        })?;
        let admitted = rb.breaker.admit().map_err(|wait| {
            // Counted as what the caller gets, so that "region down" alerts
            // keep firing while the circuit spares the backend.
            rb.metrics.error("ServiceUnavailable");
            RoutingError::Store {
                region: rb.name.to_string(),
                source: StoreError::unavailable(if wait.is_zero() {
                    format!("region {} is failing: a probe call is testing it", rb.name)
                } else {
                    format!(
                        "region {} is failing: its circuit is open for {} ms more",
                        rb.name,
                        wait.as_millis()
                    )
                }),
            }
        })?;
        let _permit = rb
            .permits
            .acquire()
            .await
            .map_err(|_| RoutingError::NoBackend(rb.name.to_string()))?;
        let start = Instant::now();
        let result = match body {
            None => f(rb.backend.clone()).await,
            Some((watch, limit)) => {
                tokio::select! {
                    r = f(rb.backend.clone()) => r,
                    () = async {
                        watch.ended.notified().await;
                        tokio::time::sleep(limit).await;
                    } => Err(StoreError::unavailable(format!(
                        "region {} did not answer within {limit:?} of the body's end",
                        rb.name
                    ))),
                }
            }
        };
        let client_fault = body.is_some_and(|(w, _)| w.failed.load(Ordering::Relaxed));
        admitted.report(match &result {
            Err(_) if client_fault => None,
            Err(e) => Some(e.is_unavailable()),
            Ok(_) => Some(false),
        });
        rb.metrics.backend_call(
            op,
            start.elapsed().as_secs_f64(),
            result.as_ref().err().map(StoreError::s3_code),
        );
        result.map_err(|source| RoutingError::Store {
            region: rb.name.to_string(),
            source,
        })
    }

    /// Puts, parts, gets, heads and deletes inline; the other operations in
    /// [`Self::dispatch_rest`], boxed. This future is moved into its box on
    /// every request, so the size of its largest arm is a copy every request
    /// pays (copies and listings alone would add kilobytes).
    async fn dispatch(
        self,
        mut route: Route,
        operation: Operation,
    ) -> Result<StorageResponse, RoutingError> {
        let prefix = concat(route.tenant_id(), "/");
        let full = |k: &str| concat(&prefix, k);
        let kind = operation.kind();
        let upload_id = route.backend_upload_id.take();
        if let Some(denied) = route.revoked.take() {
            return Box::pin(self.abort_revoked(route, operation, upload_id, denied)).await;
        }
        match (operation, &route.target) {
            (Operation::Put { key, body, meta }, Target::Region(r)) => {
                let rb = self.region(&route, *r)?;
                let older = self.older_copies(&route, &key, *r, &prefix).await?;
                let watch = Arc::new(BodyWatch::default());
                let body = counted_in(body, &rb.metrics, watch.clone());
                let key = full(&key);
                let k = &key;
                let out = Self::call_backend_with_body(
                    rb,
                    kind,
                    Some((&watch, self.upload_response_timeout)),
                    |b| async move { b.put_object(k, body, meta).await },
                )
                .await?;
                self.remove_older_copies(&route, &key, rb, older).await?;
                Ok(self.served(Outcome::Put(out), rb))
            }
            (
                Operation::UploadPart {
                    key,
                    part_number,
                    body,
                    checksums,
                    ..
                },
                Target::Region(r),
            ) => {
                let rb = self.region(&route, *r)?;
                let id = upload_id.unwrap_or_default();
                let watch = Arc::new(BodyWatch::default());
                let body = counted_in(body, &rb.metrics, watch.clone());
                let key = full(&key);
                let out = Self::call_backend_with_body(
                    rb,
                    kind,
                    Some((&watch, self.upload_response_timeout)),
                    |b| async move { b.upload_part(&key, &id, part_number, body, checksums).await },
                )
                .await?;
                Ok(self.served(Outcome::UploadPart(out), rb))
            }
            (Operation::Get { key, range }, Target::Regions(order)) => {
                let key = full(&key);
                for r in order.iter() {
                    let rb = self.region(&route, r)?;
                    let k = &key;
                    match Self::call_backend(
                        rb,
                        kind,
                        |b| async move { b.get_object(k, range).await },
                    )
                    .await
                    {
                        Ok(mut out) => {
                            strip_in_place(&mut out.info.key, &prefix);
                            out.body = counted(out.body, &rb.metrics);
                            return Ok(self.served(Outcome::Get(out), rb));
                        }
                        Err(RoutingError::Store {
                            source: StoreError::NotFound { .. },
                            ..
                        }) => continue,
                        Err(e) => return Err(e),
                    }
                }
                Err(not_found(&key, &prefix))
            }
            (Operation::Head { key }, Target::Regions(order)) => {
                let key = full(&key);
                for r in order.iter() {
                    let rb = self.region(&route, r)?;
                    let k = &key;
                    match Self::call_backend(rb, kind, |b| async move { b.head_object(k).await })
                        .await
                    {
                        Ok(mut info) => {
                            strip_in_place(&mut info.key, &prefix);
                            return Ok(self.served(Outcome::Head(info), rb));
                        }
                        Err(RoutingError::Store {
                            source: StoreError::NotFound { .. },
                            ..
                        }) => continue,
                        Err(e) => return Err(e),
                    }
                }
                Err(not_found(&key, &prefix))
            }
            (Operation::Delete { key }, Target::Regions(order)) => {
                // Deletes are idempotent: remove the key in every region (the
                // route names them all, see `decide`); a region that cannot be
                // reached fails the delete and says so.
                let key = full(&key);
                for r in order.iter() {
                    let rb = self.region(&route, r)?;
                    let k = &key;
                    Self::call_backend(rb, kind, |b| async move { b.delete_object(k).await })
                        .await
                        .map_err(|e| delete_incomplete(e, &key, &prefix))?;
                }
                Ok(StorageResponse {
                    outcome: Outcome::Delete,
                    region: None,
                })
            }
            (op, _) => Box::pin(self.dispatch_rest(&route, op, upload_id, &prefix)).await,
        }
    }

    /// Multipart steps other than parts, copies and listings (see
    /// [`Self::dispatch`]).
    async fn dispatch_rest(
        &self,
        route: &Route,
        operation: Operation,
        upload_id: Option<String>,
        prefix: &str,
    ) -> Result<StorageResponse, RoutingError> {
        let full = |k: &str| concat(prefix, k);
        let kind = operation.kind();
        match (operation, &route.target) {
            (Operation::CreateMultipart { key, meta }, Target::Region(r)) => {
                let rb = self.region(route, *r)?;
                let key = full(&key);
                let id = Self::call_backend(rb, kind, |b| async move {
                    b.create_multipart(&key, meta).await
                })
                .await?;
                let signed = self.codec.encode(&rb.name, route.tenant_id(), &id);
                Ok(self.served(Outcome::CreateMultipart(signed), rb))
            }
            (Operation::CompleteMultipart { key, parts, .. }, Target::Region(r)) => {
                let rb = self.region(route, *r)?;
                let older = self.older_copies(route, &key, *r, prefix).await?;
                let id = upload_id.unwrap_or_default();
                let key = full(&key);
                let k = &key;
                let out = Self::call_backend(rb, kind, |b| async move {
                    b.complete_multipart(k, &id, parts).await
                })
                .await?;
                self.remove_older_copies(route, &key, rb, older).await?;
                Ok(self.served(Outcome::CompleteMultipart(out), rb))
            }
            (Operation::AbortMultipart { key, .. }, Target::Region(r)) => {
                let rb = self.region(route, *r)?;
                let id = upload_id.unwrap_or_default();
                let key = full(&key);
                Self::call_backend(
                    rb,
                    kind,
                    |b| async move { b.abort_multipart(&key, &id).await },
                )
                .await?;
                Ok(self.served(Outcome::AbortMultipart, rb))
            }
            (
                Operation::ListParts {
                    key,
                    part_number_marker,
                    max_parts,
                    ..
                },
                Target::Region(r),
            ) => {
                let rb = self.region(route, *r)?;
                let id = upload_id.unwrap_or_default();
                let key = full(&key);
                let out = Self::call_backend(rb, kind, |b| async move {
                    b.list_parts(&key, &id, part_number_marker, max_parts).await
                })
                .await?;
                Ok(self.served(Outcome::ListParts(out), rb))
            }
            (
                Operation::Copy {
                    src_key,
                    dst_key,
                    meta,
                },
                Target::Region(dst),
            ) => {
                let older = self.older_copies(route, &dst_key, *dst, prefix).await?;
                let dst_key = full(&dst_key);
                let out = self
                    .copy(route, *dst, full(&src_key), dst_key.clone(), meta)
                    .await?;
                let rb = self.region(route, *dst)?;
                self.remove_older_copies(route, &dst_key, rb, older).await?;
                Ok(out)
            }
            (Operation::List { request }, Target::Regions(order)) => {
                self.list(route, order, request, prefix).await
            }
            (Operation::ListMultipartUploads { prefix: p }, Target::Regions(order)) => {
                let mut all = Vec::new();
                for r in order.iter() {
                    let rb = self.region(route, r)?;
                    let p = full(&p);
                    let ups = Self::call_backend(rb, kind, |b| async move {
                        b.list_multipart_uploads(&p).await
                    })
                    .await?;
                    for mut u in ups {
                        u.upload_id = self.codec.encode(&rb.name, route.tenant_id(), &u.upload_id);
                        strip_in_place(&mut u.key, prefix);
                        all.push(u);
                    }
                }
                all.sort_by(|a, b| a.key.cmp(&b.key).then(a.initiated.cmp(&b.initiated)));
                Ok(StorageResponse {
                    outcome: Outcome::ListMultipartUploads(all),
                    region: None,
                })
            }
            (op, _) => Err(RoutingError::Denied(Denied {
                reason: "no_route",
                detail: format!(
                    "operation {} was routed to the wrong kind of target",
                    op.kind()
                ),
            })),
        }
    }

    fn served(&self, outcome: Outcome, rb: &RegionBackend) -> StorageResponse {
        StorageResponse {
            outcome,
            region: Some(rb.name.clone()),
        }
    }

    /// Copies within the destination's region only: a copy that would move
    /// data from one region to another is denied.
    async fn copy(
        &self,
        route: &Route,
        dst: RegionId,
        src: String,
        dst_key: String,
        meta: Option<residency_store::PutMeta>,
    ) -> Result<StorageResponse, RoutingError> {
        let rb = self.region(route, dst)?;
        let s = src.clone();
        match Self::call_backend(rb, OpKind::Head, |b| async move { b.head_object(&s).await }).await
        {
            Ok(_) => {
                let out = Self::call_backend(rb, OpKind::Copy, |b| async move {
                    b.copy_object(&src, &dst_key, meta).await
                })
                .await?;
                Ok(self.served(Outcome::Copy(out), rb))
            }
            Err(RoutingError::Store {
                source: StoreError::NotFound { .. },
                ..
            }) => {
                let order = route
                    .rules
                    .tenants()
                    .read_order(route.rules.policy(), route.tenant);
                for r in order.iter().filter(|r| *r != dst) {
                    let other = self.region(route, r)?;
                    let s = src.clone();
                    match Self::call_backend(other, OpKind::Head, |b| async move { b.head_object(&s).await }).await {
                        Ok(_) => {
                            return Err(RoutingError::Denied(Denied {
                                reason: "cross_region_copy",
                                detail: format!(
                                    "the source is stored in {} and the destination must be in {}: a copy never moves data between regions",
                                    other.name, rb.name
                                ),
                            }))
                        }
                        Err(RoutingError::Store { source: StoreError::NotFound { .. }, .. }) => continue,
                        Err(e) => return Err(e),
                    }
                }
                let prefix = format!("{}/", route.tenant_id());
                Err(not_found(&src, &prefix))
            }
            Err(e) => Err(e),
        }
    }

    /// Lists every region the tenant may have data in and merges them in key
    /// order. Continuation tokens are ours: the last key (or common prefix)
    /// returned, so they work across regions.
    async fn list(
        &self,
        route: &Route,
        order: &residency_policy::RegionOrder,
        request: ListRequest,
        prefix: &str,
    ) -> Result<StorageResponse, RoutingError> {
        let max_keys = request.max_keys.clamp(1, 1000);
        let mut start_after = request.start_after.clone().unwrap_or_default();
        if let Some(t) = &request.continuation_token {
            let k = decode_token(t)?;
            if k > start_after {
                start_after = k;
            }
        }
        // A key found in two regions (a move that did not finish) is listed
        // once, as the copy GET serves.
        let mut entries: BTreeMap<String, Option<(RegionId, ObjectSummary)>> = BTreeMap::new();
        let mut more = false;
        let mut single_region = None;
        for r in order.iter() {
            let rb = self.region(route, r)?;
            let mut req =
                ListRequest::new(format!("{prefix}{}", request.prefix)).max_keys(max_keys);
            if let Some(d) = &request.delimiter {
                req = req.delimiter(d.clone());
            }
            if !start_after.is_empty() {
                req = req.start_after(format!("{prefix}{start_after}"));
            }
            let page: ListPage =
                Self::call_backend(
                    rb,
                    OpKind::List,
                    |b| async move { b.list_objects(req).await },
                )
                .await?;
            more |= page.next_continuation_token.is_some();
            for mut o in page.objects {
                strip_in_place(&mut o.key, prefix);
                match entries.entry(o.key.clone()) {
                    Entry::Vacant(v) => {
                        v.insert(Some((r, o)));
                    }
                    Entry::Occupied(mut e) => {
                        let kept = e.get().as_ref().map(|(region, _)| *region);
                        let keep_new = kept.is_some_and(|k| {
                            one_copy::preferred(&route.rules, route.tenant, e.key(), k, r) == r
                        });
                        if keep_new {
                            e.insert(Some((r, o)));
                        }
                    }
                }
            }
            for mut p in page.common_prefixes {
                strip_in_place(&mut p, prefix);
                entries.entry(p).or_insert(None);
            }
            single_region = if order.len() == 1 {
                Some(rb.name.clone())
            } else {
                None
            };
        }
        if entries.len() > max_keys {
            more = true;
        }
        let mut page = ListPage::default();
        let mut last = None;
        for (k, v) in entries.into_iter().take(max_keys) {
            match v {
                Some((_, o)) => {
                    last = Some(k);
                    page.objects.push(o);
                }
                None => {
                    last = Some(past_prefix(&k));
                    page.common_prefixes.push(k);
                }
            }
        }
        if more {
            page.next_continuation_token = last.map(|l| encode_token(&l));
        }
        Ok(StorageResponse {
            outcome: Outcome::List(page),
            region: single_region,
        })
    }
}

/// A delete that could not reach one region: the key may still be there.
fn delete_incomplete(e: RoutingError, full_key: &str, prefix: &str) -> RoutingError {
    match e {
        RoutingError::Store { region, source } if source.is_unavailable() => {
            let key = full_key.strip_prefix(prefix).unwrap_or(full_key);
            RoutingError::Store {
                source: StoreError::unavailable(format!(
                    "the delete of {key:?} is incomplete: region {region} may hold a copy (even one the current rules hide) and is unavailable ({source}); retry the delete"
                )),
                region,
            }
        }
        e => e,
    }
}

type StepFuture<'a, T> = futures::future::Either<
    std::future::Ready<Result<T, RoutingError>>,
    Pin<Box<dyn Future<Output = Result<T, RoutingError>> + Send + 'a>>,
>;

/// One object per key per tenant (see [`crate::one_copy`]): a write that may
/// move a key looks for its older copies first, and removes them once the new
/// copy is stored, before it is acknowledged.
impl RegionalDispatch {
    /// The regions holding an older copy of `key` (relative to the tenant)
    /// that a write into `target` would leave behind. A write placed by a key
    /// rule looks nowhere (a ready future: no backend call, nothing boxed).
    ///
    /// # Errors
    /// A region that may hold a copy and cannot answer: the write is refused
    /// (503, with the reason) before anything changed.
    fn older_copies<'a>(
        &'a self,
        route: &'a Route,
        key: &str,
        target: RegionId,
        prefix: &str,
    ) -> StepFuture<'a, RegionOrder> {
        let look_in = one_copy::older_copy_regions(
            &route.rules,
            route.tenant,
            key,
            target,
            route.classified_by,
        );
        if look_in.is_empty() {
            return futures::future::Either::Left(std::future::ready(Ok(look_in)));
        }
        let full_key = concat(prefix, key);
        let key = key.to_string();
        futures::future::Either::Right(Box::pin(async move {
            let heads =
                look_in.iter().map(|r| {
                    let k = &full_key;
                    async move {
                        let rb = self.region(route, r)?;
                        let res = Self::call_backend(rb, OpKind::Head, |b| async move {
                            b.head_object(k).await
                        })
                        .await;
                        Ok::<_, RoutingError>((r, res))
                    }
                });
            let mut found = RegionOrder::default();
            for head in futures::future::join_all(heads).await {
                match head? {
                    (r, Ok(_)) => found.push(r),
                    (
                        _,
                        Err(RoutingError::Store {
                            source: StoreError::NotFound { .. },
                            ..
                        }),
                    ) => {}
                    (_, Err(RoutingError::Store { region, source })) if source.is_unavailable() => {
                        return Err(RoutingError::Store {
                            source: StoreError::unavailable(format!(
                                "cannot write {key:?} to {}: region {region} may hold an older copy of this key and is unavailable ({source}); the write was refused before anything changed, so that no stale copy remains",
                                route.region_name(target)
                            )),
                            region,
                        });
                    }
                    (_, Err(e)) => return Err(e),
                }
            }
            Ok(found)
        }))
    }

    /// Removes the older copies `older` of `full_key` once the new one is
    /// stored in `written`. A removal that fails fails the write: it is not
    /// acknowledged (the client retries it, which finds and removes the old
    /// copy again), and reads keep choosing one copy meanwhile.
    fn remove_older_copies<'a>(
        &'a self,
        route: &'a Route,
        full_key: &str,
        written: &'a RegionBackend,
        older: RegionOrder,
    ) -> StepFuture<'a, ()> {
        if older.is_empty() {
            return futures::future::Either::Left(std::future::ready(Ok(())));
        }
        let full_key = full_key.to_string();
        futures::future::Either::Right(Box::pin(async move {
            for r in older.iter() {
                let rb = self.region(route, r)?;
                let k = &full_key;
                if let Err(e) =
                    Self::call_backend(
                        rb,
                        OpKind::Delete,
                        |b| async move { b.delete_object(k).await },
                    )
                    .await
                {
                    let key = full_key
                        .strip_prefix(route.tenant_id())
                        .and_then(|k| k.strip_prefix('/'))
                        .unwrap_or(&full_key);
                    tracing::warn!(
                        request_id = %route.request_id,
                        key,
                        written = %written.name,
                        older = %rb.name,
                        error = %e,
                        "the older copy of a moved key could not be removed: the write is not acknowledged"
                    );
                    return Err(RoutingError::Store {
                        region: rb.name.to_string(),
                        source: StoreError::unavailable(format!(
                            "{key:?} was written to {}, but its older copy in {} could not be removed ({e}): the write is not acknowledged; retry it",
                            written.name, rb.name
                        )),
                    });
                }
                tracing::debug!(request_id = %route.request_id, from = %rb.name, to = %written.name, "moved key: older copy removed");
            }
            Ok(())
        }))
    }

    /// A multipart step of an upload the current rules no longer allow:
    /// aborts the upload in its region, then answers the denial.
    async fn abort_revoked(
        self,
        route: Route,
        operation: Operation,
        upload_id: Option<String>,
        mut denied: Denied,
    ) -> Result<StorageResponse, RoutingError> {
        if let (Some(key), Target::Region(r), Some(id)) =
            (operation.key(), &route.target, upload_id)
        {
            let rb = self.region(&route, *r)?;
            let key = concat(&concat(route.tenant_id(), "/"), key);
            match Self::call_backend(rb, OpKind::AbortMultipart, |b| async move {
                b.abort_multipart(&key, &id).await
            })
            .await
            {
                Ok(()) => {}
                Err(RoutingError::Store { source, .. })
                    if matches!(source, StoreError::NotFound { .. })
                        || source.s3_code() == "NoSuchUpload" => {}
                Err(e) => {
                    tracing::warn!(request_id = %route.request_id, error = %e, "cannot abort an upload whose placement changed");
                    denied.detail = denied.detail.replace(
                        "the upload was aborted",
                        &format!("aborting the upload failed ({e}); abort it yourself"),
                    );
                }
            }
        }
        Err(RoutingError::Denied(denied))
    }
}

fn not_found(full_key: &str, prefix: &str) -> RoutingError {
    RoutingError::Store {
        region: "*".into(),
        source: StoreError::NotFound {
            key: full_key
                .strip_prefix(prefix)
                .unwrap_or(full_key)
                .to_string(),
        },
    }
}

/// Counts body bytes read from a region into `residency_bytes_total` as they
/// stream.
fn counted(body: Body, metrics: &m::RegionMetrics) -> Body {
    let len = body.len_hint();
    let counter = metrics.bytes(m::Direction::Out);
    let stream = body.into_stream().inspect(move |chunk| {
        if let Ok(c) = chunk {
            counter.increment(c.len() as u64);
        }
    });
    Body::from_stream(stream, len)
}

/// What became of a client's body on its way to a region.
#[derive(Default)]
struct BodyWatch {
    /// The body itself failed (a bad chunk signature, a client that went away).
    failed: AtomicBool,
    /// Notified when the body has been sent in full.
    ended: tokio::sync::Notify,
}

/// Counts a client's body bytes on their way in, and reports its failure or
/// its end to `watch`.
fn counted_in(body: Body, metrics: &m::RegionMetrics, watch: Arc<BodyWatch>) -> Body {
    let len = body.len_hint();
    let counter = metrics.bytes(m::Direction::In);
    let w = watch.clone();
    let mut seen = 0u64;
    let stream = body
        .into_stream()
        .inspect(move |chunk| match chunk {
            Ok(c) => {
                counter.increment(c.len() as u64);
                seen += c.len() as u64;
                // A consumer that knows the length stops polling after the
                // last byte: that is the end too.
                if len.is_some_and(|n| seen >= n) {
                    w.ended.notify_one();
                }
            }
            Err(_) => w.failed.store(true, Ordering::Relaxed),
        })
        .chain(futures::stream::poll_fn(move |_| {
            // notify_one keeps the signal for a waiter that comes later.
            watch.ended.notify_one();
            Poll::Ready(None)
        }));
    Body::from_stream(stream, len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(threshold: u32) -> Breaker {
        Breaker::new("eu".into(), threshold, Duration::from_secs(2))
    }

    fn fail(b: &Breaker) {
        b.admit().expect("admitted").report(Some(true));
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_consecutive_unavailable_failures_only() {
        let b = breaker(3);
        fail(&b);
        fail(&b);
        // An answer (even an error such as NoSuchKey) resets the count.
        b.admit().unwrap().report(Some(false));
        fail(&b);
        fail(&b);
        assert!(b.admit().is_ok(), "two failures in a row: still closed");
        b.admit().unwrap().report(Some(true));
        assert!(b.admit().is_err(), "three in a row: open, fail fast");
        // A client's own body failure says nothing about the region.
        let b = breaker(1);
        b.admit().unwrap().report(None);
        assert!(b.admit().is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn half_open_lets_one_probe_through() {
        let b = breaker(1);
        fail(&b);
        assert!(b.admit().is_err());
        tokio::time::advance(Duration::from_millis(1_999)).await;
        assert!(b.admit().is_err(), "still cooling down");
        tokio::time::advance(Duration::from_millis(2)).await;
        let probe = b.admit().expect("the probe");
        assert!(probe.probe);
        assert!(b.admit().is_err(), "one probe at a time");
        probe.report(Some(false));
        assert!(b.admit().is_ok(), "the probe succeeded: closed");
        assert_eq!(*b.lock(), Circuit::Closed { failures: 0 });
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_reopens_and_an_abandoned_one_lets_the_next_probe() {
        let b = breaker(1);
        fail(&b);
        tokio::time::advance(Duration::from_secs(3)).await;
        b.admit().unwrap().report(Some(true));
        assert!(b.admit().is_err(), "the probe failed: open again");
        tokio::time::advance(Duration::from_secs(3)).await;
        drop(b.admit().expect("probe"));
        let next = b
            .admit()
            .expect("an abandoned probe does not wedge the circuit");
        assert!(next.probe);
        next.report(Some(false));
        assert!(b.admit().is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn threshold_zero_disables_the_breaker() {
        let b = breaker(0);
        for _ in 0..100 {
            fail(&b);
        }
        assert!(b.admit().is_ok());
    }
}
