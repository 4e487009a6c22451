//! [`Disclosures`]: the register of every tenant's disclosure requests, and
//! the guard in front of every export.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use futures::StreamExt;
use residency_policy::{Ruleset, TenantId};
use residency_store::{Backend, ListRequest, StoreError};
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::date::rfc3339;
use crate::error::DisclosureError;
use crate::export::{ExportOptions, Limit, Limits, Manifest, ManifestObject};
use crate::ledger::{Event, Ledger, Loaded, VerifyReport};
use crate::notify::Webhook;
use crate::record::{Notice, RequestRecord};
use crate::report::{Period, TransparencyReport};
use crate::request::{parse_request_id, DisclosureRequest, NewRequest};
use crate::state::State;

/// The register of disclosure requests over the regions' backends.
///
/// Each tenant's ledger lives in its home region (its locality, else the
/// policy's default region); exports read the tenant's objects at
/// `<tenant>/<key>` in every region it may have data in.
pub struct Disclosures {
    rules: Ruleset,
    backends: BTreeMap<String, Arc<dyn Backend>>,
    limits: Limits,
}

impl std::fmt::Debug for Disclosures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Disclosures")
            .field("regions", &self.backends.keys().collect::<Vec<_>>())
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// Region ids with their backends, in the order to look in.
type RegionBackends = Vec<(String, Arc<dyn Backend>)>;

/// One object selected by a scope.
struct Selected {
    key: String,
    region: String,
    size: u64,
    last_modified: SystemTime,
    category: String,
}

impl Disclosures {
    /// A register over `backends` (region id → backend), with the default limits.
    ///
    /// # Errors
    /// `Invalid` when a region of the policy has no backend.
    pub fn new(
        rules: Ruleset,
        backends: impl IntoIterator<Item = (String, Arc<dyn Backend>)>,
    ) -> Result<Disclosures, DisclosureError> {
        let backends: BTreeMap<_, _> = backends.into_iter().collect();
        for (_, r) in rules.policy().regions() {
            if !backends.contains_key(r.id()) {
                return Err(DisclosureError::Invalid(format!(
                    "policy region {:?} has no backend",
                    r.id()
                )));
            }
        }
        Ok(Disclosures {
            rules,
            backends,
            limits: Limits::default(),
        })
    }

    /// Sets the export limits.
    #[must_use]
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The export limits.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    fn tenant_id(&self, tenant: &str) -> Result<TenantId, DisclosureError> {
        self.rules
            .tenants()
            .get(tenant)
            .ok_or_else(|| DisclosureError::UnknownTenant(tenant.to_owned()))
    }

    /// The ledger of `tenant`, in its home region.
    ///
    /// # Errors
    /// `UnknownTenant`.
    pub fn ledger(&self, tenant: &str) -> Result<Ledger, DisclosureError> {
        let id = self.tenant_id(tenant)?;
        let policy = self.rules.policy();
        let home = policy
            .region(self.rules.tenants().tenant(id).home_region(policy))
            .id();
        Ok(Ledger::new(tenant, home, self.backends[home].clone()))
    }

    async fn load_request(&self, id: &str) -> Result<(Ledger, Loaded), DisclosureError> {
        let (tenant, _) = parse_request_id(id)?;
        let ledger = self.ledger(tenant)?;
        let loaded = ledger.load().await?;
        if !loaded.records.contains_key(id) {
            return Err(DisclosureError::UnknownRequest(id.to_owned()));
        }
        Ok((ledger, loaded))
    }

    /// Records a request as received. `why` defaults to "received".
    ///
    /// # Errors
    /// `Invalid` (a missing field, a notice prohibition without a reason, an
    /// empty scope), `UnknownTenant`, `Damaged`, storage failures.
    pub async fn open(
        &self,
        mut request: NewRequest,
        by: &str,
        why: &str,
    ) -> Result<RequestRecord, DisclosureError> {
        require(by, "who records the request (--by)")?;
        request.validate()?;
        let ledger = self.ledger(&request.tenant)?;
        let mut loaded = ledger.load().await?;
        let id = format!("{}-{}", request.tenant, loaded.records.len() + 1);
        let why = if why.trim().is_empty() {
            "received"
        } else {
            why
        };
        let event = Event::Opened {
            request: DisclosureRequest {
                id: id.clone(),
                request,
            },
        };
        ledger
            .append(&mut loaded, &id, by, vec![(event, why.to_owned())])
            .await?;
        Ok(loaded.records.remove(&id).expect("just opened"))
    }

    /// A request and where it stands.
    ///
    /// # Errors
    /// `Invalid` (a malformed id), `UnknownTenant`, `UnknownRequest`, `Damaged`.
    pub async fn get(&self, id: &str) -> Result<RequestRecord, DisclosureError> {
        let (_, mut loaded) = self.load_request(id).await?;
        Ok(loaded.records.remove(id).expect("checked"))
    }

    /// Every request of `tenant`, by id.
    ///
    /// # Errors
    /// `UnknownTenant`, `Damaged`, storage failures.
    pub async fn list(&self, tenant: &str) -> Result<Vec<RequestRecord>, DisclosureError> {
        let loaded = self.ledger(tenant)?.load().await?;
        let mut v: Vec<_> = loaded.records.into_values().collect();
        v.sort_by_key(|r| parse_request_id(&r.request.id).map_or(0, |(_, n)| n));
        Ok(v)
    }

    /// Moves a request to `to`, recording who and why.
    ///
    /// # Errors
    /// `Invalid` without a reason; `Refused` for a transition the lifecycle
    /// does not allow (and for `fulfilled`, which only an export records).
    pub async fn transition(
        &self,
        id: &str,
        to: State,
        by: &str,
        why: &str,
    ) -> Result<RequestRecord, DisclosureError> {
        require(by, "who makes the transition (--by)")?;
        require(why, "why (--why)")?;
        let (ledger, mut loaded) = self.load_request(id).await?;
        let from = loaded.records[id].state;
        if to == State::Fulfilled {
            return Err(DisclosureError::Refused(format!(
                "{id} is {from}: a request becomes fulfilled only by `export`"
            )));
        }
        if !from.may_become(to) {
            let next = from.next();
            return Err(DisclosureError::Refused(format!(
                "{id} is {from} and cannot become {to} (allowed: {})",
                if next.is_empty() {
                    "none, it is final".to_owned()
                } else {
                    next.iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            )));
        }
        ledger
            .append(
                &mut loaded,
                id,
                by,
                vec![(Event::Transition { from, to }, why.to_owned())],
            )
            .await?;
        Ok(loaded.records.remove(id).expect("exists"))
    }

    /// Records that the law prohibits notifying the customer, with the reason.
    ///
    /// # Errors
    /// `Invalid` without a reason; `Refused` when already notified or final.
    pub async fn prohibit_notice(
        &self,
        id: &str,
        reason: &str,
        by: &str,
    ) -> Result<RequestRecord, DisclosureError> {
        require(by, "who records it (--by)")?;
        if reason.trim().is_empty() {
            return Err(DisclosureError::Invalid(
                "a notice prohibition must carry the reason (--reason)".to_owned(),
            ));
        }
        let (ledger, mut loaded) = self.load_request(id).await?;
        let rec = &loaded.records[id];
        if let Notice::Sent { at, .. } = &rec.notice {
            return Err(DisclosureError::Refused(format!(
                "the customer was already notified of {id} at {at}"
            )));
        }
        if rec.state.is_final() {
            return Err(DisclosureError::Refused(format!("{id} is {}", rec.state)));
        }
        ledger
            .append(
                &mut loaded,
                id,
                by,
                vec![(Event::NoticeProhibited, reason.to_owned())],
            )
            .await?;
        Ok(loaded.records.remove(id).expect("exists"))
    }

    /// Notifies the customer through `webhook`: a signed JSON description of
    /// the request, with the ledger head. The delivery, or its failure after
    /// every retry, is recorded.
    ///
    /// # Errors
    /// `Refused` when notice is prohibited, already given, or the request is
    /// final; `NotifyFailed` when the webhook never accepted it.
    pub async fn notify(
        &self,
        id: &str,
        webhook: &Webhook,
        by: &str,
    ) -> Result<RequestRecord, DisclosureError> {
        require(by, "who sends the notice (--by)")?;
        let (ledger, mut loaded) = self.load_request(id).await?;
        let rec = &loaded.records[id];
        match &rec.notice {
            Notice::Prohibited { reason } => {
                return Err(DisclosureError::Refused(format!(
                    "notice of {id} is legally prohibited ({reason}): nothing is sent"
                )))
            }
            Notice::Sent { at, url } => {
                return Err(DisclosureError::Refused(format!(
                    "the customer was already notified of {id} at {at} ({url})"
                )))
            }
            Notice::Pending => {}
        }
        if rec.state.is_final() {
            return Err(DisclosureError::Refused(format!("{id} is {}", rec.state)));
        }
        let payload = json!({
            "event": "disclosure_request",
            "request": rec.request,
            "state": rec.state,
            "sent_at": rfc3339(SystemTime::now()),
            "sent_by": by,
            "ledger_head": loaded.head,
            "message": "A government authority asked for data of your account. \
                        Nothing has been disclosed yet.",
        });
        let body = serde_json::to_vec(&payload).expect("payload serializes");
        let url = webhook.url();
        match webhook.deliver(id, &body).await {
            Ok(d) => {
                let event = Event::Notified {
                    url,
                    status: d.status,
                    attempts: d.attempts,
                    payload_sha256: hex::encode(Sha256::digest(&body)),
                    ledger_head: loaded.head.clone(),
                };
                ledger
                    .append(
                        &mut loaded,
                        id,
                        by,
                        vec![(event, "customer notified".into())],
                    )
                    .await?;
                Ok(loaded.records.remove(id).expect("exists"))
            }
            Err(DisclosureError::NotifyFailed { attempts, error }) => {
                let event = Event::NotifyFailed {
                    url,
                    attempts,
                    error: error.clone(),
                };
                ledger
                    .append(
                        &mut loaded,
                        id,
                        by,
                        vec![(event, "notice not delivered".into())],
                    )
                    .await?;
                Err(DisclosureError::NotifyFailed { attempts, error })
            }
            Err(e) => Err(e),
        }
    }

    /// Records a refused export (unless the request is final) and returns the refusal.
    async fn refuse_export(
        &self,
        ledger: &Ledger,
        loaded: &mut Loaded,
        id: &str,
        by: &str,
        reason: String,
    ) -> DisclosureError {
        if !loaded.records[id].state.is_final() {
            if let Err(e) = ledger
                .append(loaded, id, by, vec![(Event::ExportRefused, reason.clone())])
                .await
            {
                return e;
            }
        }
        DisclosureError::Refused(reason)
    }

    /// Exports exactly the objects in the request's scope to `opts.dir`,
    /// with `manifest.json`, and records the request as fulfilled.
    ///
    /// Refused (and the refusal recorded) unless the request is approved,
    /// the customer was notified or notice is prohibited with a reason, and
    /// the scope is not a bulk transfer: the whole tenant, a wildcard, or
    /// more objects, bytes or categories than the limits allow — each
    /// exceeded limit must be raised in `opts.raises`, with `opts.reason`.
    ///
    /// # Errors
    /// `Refused` as above; `Invalid` for a raise without a reason or not
    /// above the limit, or a non-empty export directory; storage and I/O failures.
    pub async fn export(
        &self,
        id: &str,
        opts: &ExportOptions,
    ) -> Result<Manifest, DisclosureError> {
        require(&opts.by, "who exports (--by)")?;
        let (ledger, mut loaded) = self.load_request(id).await?;
        let by = opts.by.as_str();
        let rec = loaded.records[id].clone();
        if rec.state != State::Approved {
            let reason = format!(
                "{id} is {}: only an approved request is exported",
                rec.state
            );
            return Err(self
                .refuse_export(&ledger, &mut loaded, id, by, reason)
                .await);
        }
        if !rec.notice.allows_disclosure() {
            let reason = format!(
                "the customer has not been notified of {id}: run `residency disclosure notify` first \
                 (or record that notice is legally prohibited, with the reason)"
            );
            return Err(self
                .refuse_export(&ledger, &mut loaded, id, by, reason)
                .await);
        }
        let scope = &rec.request.request.scope;
        if let Some(bulk) = scope.bulk_reason() {
            let reason = format!(
                "bulk transfer: {bulk}; no data is transferred \"in a massive, disproportionate, \
                 and indiscriminate manner\" (narrow the scope to specific keys or a prefix and time range)"
            );
            return Err(self
                .refuse_export(&ledger, &mut loaded, id, by, reason)
                .await);
        }
        let mut limits = self.limits;
        let raise_reason = opts.reason.as_deref().unwrap_or("").trim();
        if !opts.raises.is_empty() && raise_reason.is_empty() {
            return Err(DisclosureError::Invalid(
                "a raised limit needs a reason (--reason)".to_owned(),
            ));
        }
        let mut raised = Vec::new();
        for r in &opts.raises {
            let configured = r.limit.of(&self.limits);
            if r.to <= configured {
                return Err(DisclosureError::Invalid(format!(
                    "--raise-limit {}={} does not raise the limit of {configured}",
                    r.limit, r.to
                )));
            }
            r.limit.set(&mut limits, r.to);
            raised.push((
                Event::LimitRaised {
                    limit: r.limit.to_string(),
                    from: configured,
                    to: r.to,
                },
                raise_reason.to_owned(),
            ));
        }
        check_export_dir(&opts.dir).await?;

        let tenant = rec.request.request.tenant.clone();
        let (selected, missing) = self.select(&tenant, scope).await?;
        let total_bytes: u64 = selected.iter().map(|s| s.size).sum();
        let categories: BTreeSet<String> = selected.iter().map(|s| s.category.clone()).collect();
        let mut exceeded = Vec::new();
        for (limit, value) in [
            (Limit::Objects, selected.len() as u64),
            (Limit::Bytes, total_bytes),
            (Limit::Categories, categories.len() as u64),
        ] {
            let max = limit.of(&limits);
            if value > max {
                exceeded.push(format!(
                    "{value} {limit} > limit {max} (raise with --raise-limit {limit}={value} --reason TEXT)"
                ));
            }
        }
        if !exceeded.is_empty() {
            let reason = format!(
                "bulk transfer: the scope exceeds the export limits: {}",
                exceeded.join("; ")
            );
            return Err(self
                .refuse_export(&ledger, &mut loaded, id, by, reason)
                .await);
        }
        // The decision to raise is recorded before any byte is copied.
        if !raised.is_empty() {
            ledger.append(&mut loaded, id, by, raised).await?;
        }

        let objects_dir = opts.dir.join("objects");
        let mut objects = Vec::new();
        for s in &selected {
            let file = safe_relative_path(&s.key)?;
            let path = objects_dir.join(&file);
            let sha256 = self.copy_object(&tenant, s, &path).await?;
            objects.push(ManifestObject {
                key: s.key.clone(),
                region: s.region.clone(),
                size: s.size,
                sha256,
                last_modified: rfc3339(s.last_modified),
                category: s.category.clone(),
                file: format!("objects/{file}"),
            });
        }
        let manifest = Manifest {
            request: id.to_owned(),
            tenant,
            exported_at: rfc3339(SystemTime::now()),
            exported_by: by.to_owned(),
            scope: scope.clone(),
            limits,
            total_objects: objects.len() as u64,
            total_bytes,
            objects,
            missing,
            categories: categories.into_iter().collect(),
        };
        let mut bytes = serde_json::to_vec_pretty(&manifest).expect("manifest serializes");
        bytes.push(b'\n');
        let manifest_path = opts.dir.join("manifest.json");
        tokio::fs::write(&manifest_path, &bytes)
            .await
            .map_err(|e| {
                DisclosureError::io(format!("cannot write {}", manifest_path.display()), e)
            })?;
        let events = vec![
            (
                Event::Exported {
                    location: opts.dir.display().to_string(),
                    objects: manifest.total_objects,
                    bytes: manifest.total_bytes,
                    manifest_sha256: hex::encode(Sha256::digest(&bytes)),
                },
                "objects in scope exported".to_owned(),
            ),
            (
                Event::Transition {
                    from: State::Approved,
                    to: State::Fulfilled,
                },
                format!("exported {} object(s)", manifest.total_objects),
            ),
        ];
        ledger.append(&mut loaded, id, by, events).await?;
        Ok(manifest)
    }

    /// The regions where `tenant` may have objects, with their backends.
    fn regions_of(&self, tenant: &str) -> Result<RegionBackends, DisclosureError> {
        let tid = self.tenant_id(tenant)?;
        let policy = self.rules.policy();
        Ok(self
            .rules
            .tenants()
            .read_order(policy, tid)
            .iter()
            .map(|r| {
                let id = policy.region(r).id().to_owned();
                let b = self.backends[&id].clone();
                (id, b)
            })
            .collect())
    }

    fn category_of(&self, key: &str) -> String {
        let policy = self.rules.policy();
        policy
            .classify_key(key)
            .map(|c| c.category)
            .or(policy.default_category())
            .map_or_else(
                || "unclassified".to_owned(),
                |c| policy.category(c).id().to_owned(),
            )
    }

    /// The objects in scope (first region in read order wins) and the named
    /// keys found nowhere. A region that fails fails the whole selection.
    async fn select(
        &self,
        tenant: &str,
        scope: &crate::request::Scope,
    ) -> Result<(Vec<Selected>, Vec<String>), DisclosureError> {
        let regions = self.regions_of(tenant)?;
        let mut found: BTreeMap<String, Selected> = BTreeMap::new();
        let mut missing = Vec::new();
        let ns = format!("{tenant}/");
        if let Some(prefix) = &scope.prefix {
            for (region, backend) in &regions {
                let mut token = None;
                loop {
                    let page = backend
                        .list_objects(
                            ListRequest::new(format!("{ns}{prefix}")).continuation_token(token),
                        )
                        .await?;
                    for o in page.objects {
                        let key = o.key[ns.len()..].to_owned();
                        if !scope.in_range(o.last_modified) || found.contains_key(&key) {
                            continue;
                        }
                        found.insert(
                            key.clone(),
                            Selected {
                                category: self.category_of(&key),
                                key,
                                region: region.clone(),
                                size: o.size,
                                last_modified: o.last_modified,
                            },
                        );
                    }
                    token = page.next_continuation_token;
                    if token.is_none() {
                        break;
                    }
                }
            }
        } else {
            for key in &scope.keys {
                let mut hit = None;
                for (region, backend) in &regions {
                    match backend.head_object(&format!("{ns}{key}")).await {
                        Ok(info) => {
                            hit = Some((region.clone(), info));
                            break;
                        }
                        Err(StoreError::NotFound { .. }) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                match hit {
                    Some((region, info)) if scope.in_range(info.last_modified) => {
                        found.insert(
                            key.clone(),
                            Selected {
                                category: self.category_of(key),
                                key: key.clone(),
                                region,
                                size: info.size,
                                last_modified: info.last_modified,
                            },
                        );
                    }
                    Some(_) => {}
                    None => missing.push(key.clone()),
                }
            }
        }
        Ok((found.into_values().collect(), missing))
    }

    /// Streams one object to `path`, returning its SHA-256.
    async fn copy_object(
        &self,
        tenant: &str,
        s: &Selected,
        path: &Path,
    ) -> Result<String, DisclosureError> {
        let backend = &self.backends[&s.region];
        let out = backend
            .get_object(&format!("{tenant}/{}", s.key), None)
            .await?;
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(|e| {
                DisclosureError::io(format!("cannot create {}", parent.display()), e)
            })?;
        }
        let mut file = tokio::fs::File::create(path)
            .await
            .map_err(|e| DisclosureError::io(format!("cannot create {}", path.display()), e))?;
        let mut hasher = Sha256::new();
        let mut written = 0u64;
        let mut stream = out.body.into_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                DisclosureError::io(
                    format!("reading {} from {}", s.key, s.region),
                    std::io::Error::other(e),
                )
            })?;
            hasher.update(&chunk);
            written += chunk.len() as u64;
            file.write_all(&chunk)
                .await
                .map_err(|e| DisclosureError::io(format!("cannot write {}", path.display()), e))?;
        }
        file.flush()
            .await
            .map_err(|e| DisclosureError::io(format!("cannot write {}", path.display()), e))?;
        if written != s.size {
            return Err(DisclosureError::Refused(format!(
                "{} changed while being exported ({} bytes listed, {written} read); export again",
                s.key, s.size
            )));
        }
        Ok(hex::encode(hasher.finalize()))
    }

    /// Verifies the ledger of `tenant`.
    ///
    /// # Errors
    /// `UnknownTenant`, storage failures (damage is in the report).
    pub async fn verify(&self, tenant: &str) -> Result<VerifyReport, DisclosureError> {
        self.ledger(tenant)?.verify().await
    }

    /// Verifies every tenant's ledger.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn verify_all(&self) -> Result<Vec<VerifyReport>, DisclosureError> {
        let mut out = Vec::new();
        for (_, t) in self.rules.tenants().iter() {
            out.push(self.verify(t.id()).await?);
        }
        Ok(out)
    }

    /// The transparency report of `period`, from every tenant's ledger.
    ///
    /// # Errors
    /// `Damaged` when a ledger fails verification (a report is never made
    /// from damaged records); storage failures.
    pub async fn report(&self, period: Period) -> Result<TransparencyReport, DisclosureError> {
        let mut records = Vec::new();
        for (_, t) in self.rules.tenants().iter() {
            let loaded = self.ledger(t.id())?.load().await?;
            records.extend(loaded.records.into_values());
        }
        Ok(TransparencyReport::compute(period, &records))
    }
}

fn require(value: &str, what: &str) -> Result<(), DisclosureError> {
    if value.trim().is_empty() {
        Err(DisclosureError::Invalid(format!("{what} is required")))
    } else {
        Ok(())
    }
}

/// The export directory must not exist yet, or be empty.
async fn check_export_dir(dir: &Path) -> Result<(), DisclosureError> {
    match tokio::fs::read_dir(dir).await {
        Ok(mut rd) => {
            let entry = rd
                .next_entry()
                .await
                .map_err(|e| DisclosureError::io(format!("cannot read {}", dir.display()), e))?;
            if entry.is_some() {
                return Err(DisclosureError::Invalid(format!(
                    "the export directory {} is not empty",
                    dir.display()
                )));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| DisclosureError::io(format!("cannot create {}", dir.display()), e)),
        Err(e) => Err(DisclosureError::io(
            format!("cannot read {}", dir.display()),
            e,
        )),
    }
}

/// A key as a relative file path, refusing anything that could escape the
/// export directory.
fn safe_relative_path(key: &str) -> Result<String, DisclosureError> {
    let ok = !key.is_empty()
        && !key.contains(['\\', '\0'])
        && key
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..");
    if ok {
        Ok(key.to_owned())
    } else {
        Err(DisclosureError::Refused(format!(
            "the key {key:?} cannot be written as a file of the export"
        )))
    }
}
