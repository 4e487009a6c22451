//! Exports: the guard (limits, approvals, holds), the selection of the
//! tenant's objects in its regions, and the copy to the export directory.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::SystemTime;

use futures::StreamExt;
use residency_store::{ListRequest, StoreError};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::date::{rfc3339, Date};
use crate::entry::Event;
use crate::error::DisclosureError;
use crate::export::{ExportOptions, Limit, Manifest, ManifestObject};
use crate::ledger::{Ledger, Loaded};
use crate::report::Period;
use crate::request::UNATTRIBUTED;
use crate::signing::Signer;
use crate::state::State;

use super::*;

impl Disclosures {
    /// Records a refused export (unless the request is final) and returns the refusal.
    pub(super) async fn refuse_export(
        &self,
        ledger: &Ledger,
        loaded: &mut Loaded,
        id: &str,
        by: &str,
        signer: Option<&Signer>,
        reason: String,
    ) -> DisclosureError {
        if !loaded.records[id].state.is_final() {
            if let Err(e) = ledger
                .append(
                    loaded,
                    id,
                    by,
                    signer,
                    vec![(Event::ExportRefused, reason.clone())],
                )
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
    /// Refused (and the refusal recorded) unless a privacy team member
    /// exports (`opts.signer`), the request is approved by two members, the
    /// consultation it needs is recorded (seed 4.2.1), the customer was
    /// notified or notice is prohibited with a reason, and the scope is not
    /// a bulk transfer: the whole tenant, a wildcard, more objects, bytes or
    /// categories than the limits allow, or more than the authority's cap
    /// for the half year. Each exceeded limit must be raised in
    /// `opts.raises`, with `opts.reason`, and the same raise approved by a
    /// second member ([`Disclosures::approve_raise`]).
    ///
    /// # Errors
    /// `Refused` as above; `Invalid` for a raise without a reason or not
    /// above the limit, or a non-empty export directory; storage and I/O failures.
    pub async fn export(
        &self,
        id: &str,
        opts: &ExportOptions,
    ) -> Result<Manifest, DisclosureError> {
        let Some(signer) = opts.signer.as_ref() else {
            return Err(DisclosureError::Refused(format!(
                "{id}: an export is recorded with a privacy team member's key \
                 (--key-file or RESIDENCY_DISCLOSURE_KEY)"
            )));
        };
        self.member(signer, "an export")?;
        let (ledger, mut loaded) = self.load_request(id).await?;
        let by = signer.member();
        let sig = Some(signer);
        let rec = loaded.records[id].clone();
        if rec.request.request.tenant == UNATTRIBUTED {
            let reason = format!(
                "{id} has no known customer: nothing can be exported for it (record a request \
                 for the tenant once it is known)"
            );
            return Err(self
                .refuse_export(&ledger, &mut loaded, id, by, sig, reason)
                .await);
        }
        if rec.state != State::Approved {
            let reason = format!(
                "{id} is {}: only an approved request is exported",
                rec.state
            );
            return Err(self
                .refuse_export(&ledger, &mut loaded, id, by, sig, reason)
                .await);
        }
        if rec.approvals.len() < 2 {
            let reason = format!(
                "{id} has {} signed approval(s): an export needs the approval of two different \
                 privacy team members (`residency disclosure approve`)",
                rec.approvals.len()
            );
            return Err(self
                .refuse_export(&ledger, &mut loaded, id, by, sig, reason)
                .await);
        }
        if let Err(reason) = self.consultation_gate(&rec, "anything is exported").await? {
            return Err(self
                .refuse_export(&ledger, &mut loaded, id, by, sig, reason)
                .await);
        }
        if !rec.notice.allows_disclosure() {
            let reason = format!(
                "the customer has not been notified of {id}: run `residency disclosure notify` first \
                 (or record that notice is legally prohibited, with the reason)"
            );
            return Err(self
                .refuse_export(&ledger, &mut loaded, id, by, sig, reason)
                .await);
        }
        let scope = &rec.request.request.scope;
        if let Some(bulk) = scope.bulk_reason() {
            let reason = format!(
                "bulk transfer: {bulk}; no data is transferred \"in a massive, disproportionate, \
                 and indiscriminate manner\" (narrow the scope to specific keys or a prefix and time range)"
            );
            return Err(self
                .refuse_export(&ledger, &mut loaded, id, by, sig, reason)
                .await);
        }
        let raise_reason = opts.reason.as_deref().unwrap_or("");
        let mut votes = Vec::new();
        for r in &opts.raises {
            let event = self.raise_event(r, raise_reason)?;
            if !rec.raise_voters(&r.limit.to_string(), r.to).contains(by) {
                votes.push(event);
            }
        }
        check_export_dir(&opts.dir).await?;
        // The exporter's votes to raise are recorded before anything else.
        if !votes.is_empty() {
            ledger.append(&mut loaded, id, by, sig, votes).await?;
        }
        let rec = loaded.records[id].clone();
        let mut limits = self.limits;
        let mut unapproved = Vec::new();
        for r in &opts.raises {
            let voters = rec.raise_voters(&r.limit.to_string(), r.to);
            if voters.len() >= 2 {
                r.limit.set(&mut limits, r.to);
            } else {
                unapproved.push(format!(
                    "{}={} (voted by {})",
                    r.limit,
                    r.to,
                    voters.into_iter().collect::<Vec<_>>().join(", ")
                ));
            }
        }

        if !unapproved.is_empty() {
            let reason = format!(
                "a raised limit needs a second approver: {}; another privacy team member runs \
                 `residency disclosure approve --id {id} --raise-limit LIMIT=N --reason TEXT`",
                unapproved.join(", ")
            );
            return Err(self
                .refuse_export(&ledger, &mut loaded, id, by, sig, reason)
                .await);
        }

        let tenant = rec.request.request.tenant.clone();
        let (selected, missing) = self.select(&tenant, scope).await?;
        let total_bytes: u64 = selected.iter().map(|s| s.size).sum();
        let categories: BTreeSet<String> = selected.iter().map(|s| s.category.clone()).collect();
        let (prior_objects, prior_bytes) = self
            .authority_exports(&rec.request.request.authority, &rec.request.request.country)
            .await?;
        let mut exceeded = Vec::new();
        for (limit, value) in [
            (Limit::Objects, selected.len() as u64),
            (Limit::Bytes, total_bytes),
            (Limit::Categories, categories.len() as u64),
            (
                Limit::AuthorityObjects,
                prior_objects + selected.len() as u64,
            ),
            (Limit::AuthorityBytes, prior_bytes + total_bytes),
        ] {
            let max = limit.of(&limits);
            if value > max {
                let what = match limit {
                    Limit::AuthorityObjects | Limit::AuthorityBytes => format!(
                        "{value} {limit} (this export and the authority's earlier exports this half year)"
                    ),
                    _ => format!("{value} {limit}"),
                };
                exceeded.push(format!(
                    "{what} > limit {max} (raise with --raise-limit {limit}={value} --reason TEXT, \
                     approved by a second privacy team member)"
                ));
            }
        }
        if !exceeded.is_empty() {
            let reason = format!(
                "bulk transfer: the scope exceeds the export limits: {}",
                exceeded.join("; ")
            );
            return Err(self
                .refuse_export(&ledger, &mut loaded, id, by, sig, reason)
                .await);
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
        ledger.append(&mut loaded, id, by, sig, events).await?;
        Ok(manifest)
    }

    /// Objects and bytes exported in the current half year for requests of
    /// the authority (its name, case and spacing ignored, and country), over
    /// every ledger.
    pub(super) async fn authority_exports(
        &self,
        authority: &str,
        country: &str,
    ) -> Result<(u64, u64), DisclosureError> {
        let norm = |a: &str| {
            a.split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .to_lowercase()
        };
        let want = norm(authority);
        let today = Date::today();
        let period =
            Period::new(today.year(), if today.month() <= 6 { 1 } else { 2 }).expect("a half year");
        let (mut objects, mut bytes) = (0, 0);
        for rec in self.all_records().await?.1 {
            let q = &rec.request.request;
            let Some(e) = &rec.export else { continue };
            let exported_on: Option<Date> = e.at.get(..10).and_then(|d| d.parse().ok());
            if norm(&q.authority) == want
                && q.country.eq_ignore_ascii_case(country)
                && exported_on.is_some_and(|d| period.contains(d))
            {
                objects += e.objects;
                bytes += e.bytes;
            }
        }
        Ok((objects, bytes))
    }

    /// The regions where `tenant` may have objects, with their backends.
    pub(super) async fn regions_of(&self, tenant: &str) -> Result<RegionBackends, DisclosureError> {
        let t = self.tenant(tenant).await?;
        let policy = &self.policy;
        Ok(policy
            .read_order(&t)
            .iter()
            .map(|r| {
                let id = policy.region(r).id().to_owned();
                let b = self.backends[&id].clone();
                (id, b)
            })
            .collect())
    }

    pub(super) fn category_of(&self, key: &str) -> String {
        let policy = &self.policy;
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
    pub(super) async fn select(
        &self,
        tenant: &str,
        scope: &crate::request::Scope,
    ) -> Result<(Vec<Selected>, Vec<String>), DisclosureError> {
        let regions = self.regions_of(tenant).await?;
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
    pub(super) async fn copy_object(
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
