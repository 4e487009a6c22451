//! Verifying the ledgers and the transparency reports (live and frozen).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::SystemTime;

use residency_store::{Backend, StoreError};

use crate::date::{rfc3339, Date};
use crate::error::DisclosureError;
use crate::ledger::VerifyReport;
use crate::record::RequestRecord;
use crate::report::{
    outcome, FrozenBody, FrozenInfo, FrozenReport, LateChange, Period, ReportView,
    TransparencyReport,
};
use crate::signing::Signer;

use super::*;

impl Disclosures {
    /// Verifies the ledger of `tenant` (also a churned tenant's).
    ///
    /// # Errors
    /// `UnknownTenant`, storage failures (damage is in the report).
    pub async fn verify(&self, tenant: &str) -> Result<VerifyReport, DisclosureError> {
        self.find_ledger(tenant).await?.verify().await
    }

    /// Verifies every ledger: every tenant's in the tenants file, and every
    /// other ledger found in a region (churned tenants, unattributed requests).
    ///
    /// # Errors
    /// Storage failures.
    pub async fn verify_all(&self) -> Result<Vec<VerifyReport>, DisclosureError> {
        let mut out = Vec::new();
        let mut seen = BTreeSet::new();
        use futures::StreamExt as _;
        let mut tenants = self.directory.tenants(&self.policy);
        while let Some(t) = tenants.next().await {
            let t = match t {
                Ok(t) => t,
                // Its ledger, if any, is still found in its region below.
                Err(residency_directory::DirectoryError::Refused { .. }) => continue,
                Err(e) => return Err(e.into()),
            };
            let l = self.ledger_of(&t);
            seen.insert((l.tenant().to_owned(), l.region().to_owned()));
            out.push(l.verify().await?);
        }
        for l in self.all_ledgers().await? {
            if seen.insert((l.tenant().to_owned(), l.region().to_owned())) {
                out.push(l.verify().await?);
            }
        }
        Ok(out)
    }

    /// Every request in every ledger of every region (a request found in two
    /// regions, as after a migration copy, counts once: the copy with the
    /// longer history), with `<tenant>@<region>` → (head, entries).
    ///
    /// # Errors
    /// `Damaged` when a ledger fails verification; storage failures.
    pub async fn all_records(
        &self,
    ) -> Result<(BTreeMap<String, (String, u64)>, Vec<RequestRecord>), DisclosureError> {
        let mut heads = BTreeMap::new();
        let mut records: BTreeMap<String, RequestRecord> = BTreeMap::new();
        for l in self.all_ledgers().await? {
            let loaded = l.load().await?;
            heads.insert(
                format!("{}@{}", l.tenant(), l.region()),
                (loaded.head.clone(), loaded.entries.len() as u64),
            );
            for (id, rec) in loaded.records {
                let keep = records
                    .get(&id)
                    .is_none_or(|old| old.history.len() < rec.history.len());
                if keep {
                    records.insert(id, rec);
                }
            }
        }
        Ok((heads, records.into_values().collect()))
    }

    /// The live transparency report of `period`, from every ledger in
    /// every region (churned tenants and unattributed requests included).
    ///
    /// # Errors
    /// `Damaged` when a ledger fails verification (a report is never made
    /// from damaged records); storage failures.
    pub async fn report(&self, period: Period) -> Result<TransparencyReport, DisclosureError> {
        Ok(self.live_report(period).await?.0)
    }

    pub(super) async fn live_report(
        &self,
        period: Period,
    ) -> Result<
        (
            TransparencyReport,
            Vec<RequestRecord>,
            BTreeMap<String, String>,
        ),
        DisclosureError,
    > {
        let (heads, records) = self.all_records().await?;
        let mut report = TransparencyReport::compute(period, &records);
        report.ledgers = heads.len() as u64;
        report.ledger_entries = heads.values().map(|(_, n)| n).sum();
        report.bands.clone_from(&self.bands);
        let heads = heads.into_iter().map(|(k, (h, _))| (k, h)).collect();
        Ok((report, records, heads))
    }

    pub(super) fn reports_backend(&self) -> (&str, &Arc<dyn Backend>) {
        let region = self.policy.region(self.policy.default_region()).id();
        (region, &self.backends[region])
    }

    pub(super) fn frozen_key(period: Period) -> String {
        format!("_disclosure/{REPORTS}/{period}.json")
    }

    /// The frozen report of `period`, if any.
    ///
    /// # Errors
    /// `Damaged` for an unreadable frozen report; storage failures.
    pub async fn frozen_report(
        &self,
        period: Period,
    ) -> Result<Option<(FrozenBody, FrozenInfo)>, DisclosureError> {
        let (_, backend) = self.reports_backend();
        let bytes = match backend.get_object(&Self::frozen_key(period), None).await {
            Ok(out) => out.body.collect().await?,
            Err(StoreError::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let damaged = |m: String| DisclosureError::Damaged {
            tenant: format!("{REPORTS}/{period}"),
            problems: vec![m],
        };
        let stored: FrozenReport = serde_json::from_slice(&bytes)
            .map_err(|e| damaged(format!("the frozen report is not valid: {e}")))?;
        let body: FrozenBody = serde_json::from_str(&stored.body)
            .map_err(|e| damaged(format!("the frozen report's body is not valid: {e}")))?;
        let signature_ok = stored.sig.verifies(stored.body.as_bytes())
            && self.team.iter().any(|m| {
                m.name == stored.sig.member
                    && m.public_key.eq_ignore_ascii_case(&stored.sig.public_key)
            });
        Ok(Some((
            body.clone(),
            FrozenInfo {
                at: body.frozen_at,
                by: stored.sig.member,
                public_key: stored.sig.public_key,
                signature_ok,
            },
        )))
    }

    /// Freezes the report of `period` (a half year that has ended), signed
    /// by a privacy team member. It is written once.
    ///
    /// # Errors
    /// `Refused` for a period not yet over, one already frozen, or a key
    /// outside the team; `Damaged`, storage failures.
    pub async fn freeze_report(
        &self,
        period: Period,
        signer: &Signer,
    ) -> Result<ReportView, DisclosureError> {
        self.member(signer, "freezing a report")?;
        if period.last_day() >= Date::today() {
            return Err(DisclosureError::Refused(format!(
                "{period} has not ended: a report is frozen after its last day ({})",
                period.last_day()
            )));
        }
        if let Some((_, info)) = self.frozen_report(period).await? {
            return Err(DisclosureError::Refused(format!(
                "the report of {period} was frozen at {} by {}; a frozen report is never replaced",
                info.at, info.by
            )));
        }
        let (report, records, heads) = self.live_report(period).await?;
        let body = FrozenBody {
            period: period.to_string(),
            frozen_at: rfc3339(SystemTime::now()),
            report: report.clone(),
            outcomes: records
                .iter()
                .filter(|r| period.contains(r.request.request.received))
                .map(|r| (r.request.id.clone(), outcome(r.state).to_owned()))
                .collect(),
            heads,
        };
        let body_json = serde_json::to_string(&body).expect("the body serializes");
        let stored = FrozenReport {
            sig: signer.sign(body_json.as_bytes()),
            body: body_json,
        };
        let (_, backend) = self.reports_backend();
        let key = Self::frozen_key(period);
        backend
            .put_object(
                &key,
                residency_store::Body::from_bytes(bytes::Bytes::from(
                    serde_json::to_vec_pretty(&stored).expect("the report serializes"),
                )),
                residency_store::PutMeta::with_content_type("application/json"),
            )
            .await?;
        Ok(ReportView {
            report,
            frozen: Some(FrozenInfo {
                at: body.frozen_at,
                by: signer.member().to_owned(),
                public_key: signer.public_key(),
                signature_ok: true,
            }),
            changes_since_frozen: Vec::new(),
        })
    }

    /// The report of `period` as published: the frozen one, when frozen,
    /// with the requests recorded or changed after it was frozen listed
    /// separately; else the live report.
    ///
    /// # Errors
    /// `Damaged`, storage failures.
    pub async fn report_view(&self, period: Period) -> Result<ReportView, DisclosureError> {
        let (live, records, _) = self.live_report(period).await?;
        let Some((body, info)) = self.frozen_report(period).await? else {
            return Ok(ReportView {
                report: live,
                frozen: None,
                changes_since_frozen: Vec::new(),
            });
        };
        let mut changes = Vec::new();
        for r in &records {
            let q = &r.request.request;
            if !period.contains(q.received) {
                continue;
            }
            let now = outcome(r.state).to_owned();
            let then = body.outcomes.get(&r.request.id);
            if then != Some(&now) {
                changes.push(LateChange {
                    country: q.country.clone(),
                    request_type: q.request_type.to_string(),
                    frozen: then.cloned(),
                    now,
                });
            }
        }
        let mut report = body.report;
        if report.bands.is_empty() {
            report.bands.clone_from(&self.bands);
        }
        Ok(ReportView {
            report,
            frozen: Some(info),
            changes_since_frozen: changes,
        })
    }
}
