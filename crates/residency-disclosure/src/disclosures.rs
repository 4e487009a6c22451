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

use crate::adequacy::{Adequacy, Assessment};
use crate::date::{rfc3339, Date};
use crate::error::DisclosureError;
use crate::export::{ExportOptions, Limit, LimitRaise, Limits, Manifest, ManifestObject};
use crate::ledger::{Event, Ledger, Loaded, VerifyReport};
use crate::notify::Webhook;
use crate::record::{Notice, RequestRecord};
use crate::report::{
    outcome, FrozenBody, FrozenInfo, FrozenReport, LateChange, Period, ReportView,
    TransparencyReport,
};
use crate::request::{parse_request_id, DisclosureRequest, NewRequest, UNATTRIBUTED};
use crate::signing::{Member, Signer};
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
    adequacy: Adequacy,
    team: Vec<Member>,
    bands: Vec<u64>,
}

impl std::fmt::Debug for Disclosures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Disclosures")
            .field("regions", &self.backends.keys().collect::<Vec<_>>())
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// Where frozen reports are kept: `_disclosure/_reports/<period>.json` in
/// the policy's default region.
const REPORTS: &str = "_reports";

/// What [`Disclosures::consult`] records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Consult {
    /// The competent data protection authority was consulted.
    Consulted {
        /// The authority.
        authority: String,
        /// Its reference (letter, case number).
        reference: String,
        /// Its answer, summarised.
        summary: String,
    },
    /// Notifying it and suspending the request is legally prohibited (or an
    /// imminent risk of serious harm forbids it): the efforts made.
    Prohibited {
        /// The written record of the efforts (seed 4.2.2).
        efforts: String,
    },
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
            adequacy: Adequacy::builtin(),
            team: Vec::new(),
            bands: Vec::new(),
        })
    }

    /// Sets the adequacy table (default: the shipped one).
    #[must_use]
    pub fn with_adequacy(mut self, adequacy: Adequacy) -> Self {
        self.adequacy = adequacy;
        self
    }

    /// Sets the privacy team whose signed approvals count.
    #[must_use]
    pub fn with_team(mut self, team: Vec<Member>) -> Self {
        self.team = team;
        self
    }

    /// Sets the bands small counts of the report are published in.
    #[must_use]
    pub fn with_bands(mut self, bands: Vec<u64>) -> Self {
        self.bands = bands;
        self
    }

    /// The adequacy table.
    pub fn adequacy(&self) -> &Adequacy {
        &self.adequacy
    }

    /// Checks that `signer` is a member of the configured team (by name and key).
    fn member(&self, signer: &Signer, what: &str) -> Result<(), DisclosureError> {
        let ok = self.team.iter().any(|m| {
            m.name == signer.member() && m.public_key.eq_ignore_ascii_case(&signer.public_key())
        });
        if ok {
            Ok(())
        } else {
            Err(DisclosureError::Refused(format!(
                "{what} needs a privacy team member's key: {} (key {}) is not in [[privacy_team]]",
                signer.member(),
                signer.public_key()
            )))
        }
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

    /// The ledger of `tenant`, in its home region ([`UNATTRIBUTED`]: the
    /// policy's default region).
    ///
    /// # Errors
    /// `UnknownTenant`.
    pub fn ledger(&self, tenant: &str) -> Result<Ledger, DisclosureError> {
        if tenant == UNATTRIBUTED {
            let policy = self.rules.policy();
            let region = policy.region(policy.default_region()).id();
            return Ok(Ledger::new(tenant, region, self.backends[region].clone()));
        }
        let id = self.tenant_id(tenant)?;
        let policy = self.rules.policy();
        let home = policy
            .region(self.rules.tenants().tenant(id).home_region(policy))
            .id();
        Ok(Ledger::new(tenant, home, self.backends[home].clone()))
    }

    /// The ledger of `tenant`, also when it is no longer in the tenants
    /// file (a churned tenant's ledger is found in the region holding it).
    ///
    /// # Errors
    /// `UnknownTenant` when no region holds a ledger for it.
    pub async fn find_ledger(&self, tenant: &str) -> Result<Ledger, DisclosureError> {
        match self.ledger(tenant) {
            Err(DisclosureError::UnknownTenant(_)) => {}
            other => return other,
        }
        for l in self.all_ledgers().await? {
            if l.tenant() == tenant {
                return Ok(l);
            }
        }
        Err(DisclosureError::UnknownTenant(tenant.to_owned()))
    }

    /// Every ledger in every region: each `_disclosure/<tenant>/` found,
    /// whether or not the tenant is still in the tenants file.
    ///
    /// # Errors
    /// Storage failures.
    pub async fn all_ledgers(&self) -> Result<Vec<Ledger>, DisclosureError> {
        let mut found = BTreeSet::new();
        for (region, backend) in &self.backends {
            let mut token = None;
            loop {
                let page = backend
                    .list_objects(ListRequest::new("_disclosure/").continuation_token(token))
                    .await?;
                for o in page.objects {
                    let mut parts = o.key["_disclosure/".len()..].splitn(2, '/');
                    if let (Some(t), Some(rest)) = (parts.next(), parts.next()) {
                        if !t.is_empty()
                            && t != REPORTS
                            && (rest == "head.json" || rest.starts_with("ledger/"))
                        {
                            found.insert((t.to_owned(), region.clone()));
                        }
                    }
                }
                token = page.next_continuation_token;
                if token.is_none() {
                    break;
                }
            }
        }
        Ok(found
            .into_iter()
            .map(|(t, r)| {
                let b = self.backends[&r].clone();
                Ledger::new(t, r, b)
            })
            .collect())
    }

    async fn load_request(&self, id: &str) -> Result<(Ledger, Loaded), DisclosureError> {
        let (tenant, _) = parse_request_id(id)?;
        let ledger = self.find_ledger(tenant).await?;
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
        request: NewRequest,
        by: &str,
        why: &str,
    ) -> Result<RequestRecord, DisclosureError> {
        self.open_as(request, by, why, None).await
    }

    /// Whether the tenant's data is hosted in the EEA: its home region's
    /// jurisdiction (unknown for [`UNATTRIBUTED`] and churned tenants:
    /// assumed so).
    fn eea_hosted(&self, tenant: &str) -> bool {
        if tenant == UNATTRIBUTED {
            return true;
        }
        match self.tenant_id(tenant) {
            Ok(id) => {
                let policy = self.rules.policy();
                let home = self.rules.tenants().tenant(id).home_region(policy);
                policy
                    .region(home)
                    .jurisdiction()
                    .eq_ignore_ascii_case("EEA")
            }
            Err(_) => true,
        }
    }

    /// Whether a request from an authority in `country` for `tenant`'s data
    /// is held for consultation (seed 4.2.1), and why.
    pub fn assess(&self, tenant: &str, country: &str) -> Assessment {
        self.adequacy.assess(country, self.eea_hosted(tenant))
    }

    /// [`Disclosures::open`], signed by `signer` when given.
    ///
    /// A request from an authority outside the EEA, in a country without a
    /// (full) EU adequacy decision, for data hosted in the EEA is recorded
    /// and put on hold at once, with the reason (seed 4.2.1).
    ///
    /// # Errors
    /// As [`Disclosures::open`].
    pub async fn open_as(
        &self,
        mut request: NewRequest,
        by: &str,
        why: &str,
        signer: Option<&Signer>,
    ) -> Result<RequestRecord, DisclosureError> {
        if signer.is_none() {
            require(by, "who records the request (--by)")?;
        }
        request.validate()?;
        let ledger = self.ledger(&request.tenant)?;
        let mut loaded = ledger.load().await?;
        let id = format!("{}-{}", request.tenant, loaded.records.len() + 1);
        let why = if why.trim().is_empty() {
            "received"
        } else {
            why
        };
        let assessment = self.assess(&request.tenant, &request.country);
        let hold = assessment.consult.then(|| {
            (
                Event::Transition {
                    from: State::Received,
                    to: State::OnHold,
                },
                format!(
                    "{} (Government Data Request Policy 4.2.1); nothing is disclosed until the consultation is recorded",
                    assessment.reason
                ),
            )
        });
        let event = Event::Opened {
            request: DisclosureRequest {
                id: id.clone(),
                request,
            },
            assessment: Some(Box::new(assessment)),
        };
        let mut events = vec![(event, why.to_owned())];
        events.extend(hold);
        ledger.append(&mut loaded, &id, by, signer, events).await?;
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
        self.transition_as(id, to, by, why, None).await
    }

    /// [`Disclosures::transition`], signed by `signer` when given.
    ///
    /// # Errors
    /// As [`Disclosures::transition`]; `approved` is reached only through
    /// [`Disclosures::approve`].
    pub async fn transition_as(
        &self,
        id: &str,
        to: State,
        by: &str,
        why: &str,
        signer: Option<&Signer>,
    ) -> Result<RequestRecord, DisclosureError> {
        if signer.is_none() {
            require(by, "who makes the transition (--by)")?;
        }
        require(why, "why (--why)")?;
        let (ledger, mut loaded) = self.load_request(id).await?;
        let from = loaded.records[id].state;
        if to == State::Fulfilled {
            return Err(DisclosureError::Refused(format!(
                "{id} is {from}: a request becomes fulfilled only by `export`"
            )));
        }
        if to == State::Approved {
            return Err(DisclosureError::Refused(format!(
                "{id}: a request is approved by two different privacy team members, each running \
                 `residency disclosure approve` with their own key"
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
                signer,
                vec![(Event::Transition { from, to }, why.to_owned())],
            )
            .await?;
        Ok(loaded.records.remove(id).expect("exists"))
    }

    /// Refuses while a consultation the request needs is not recorded.
    fn consultation_gate(&self, rec: &RequestRecord, doing: &str) -> Result<(), String> {
        let id = &rec.request.id;
        let assessment = rec.assessment.clone().unwrap_or_else(|| {
            self.assess(&rec.request.request.tenant, &rec.request.request.country)
        });
        if !assessment.consult || rec.consultation.recorded() {
            return Ok(());
        }
        Err(if rec.held || rec.state == State::OnHold {
            format!(
                "{id} is held for consultation ({}): {doing} only after the consultation of the \
                 competent data protection authority is recorded (`residency disclosure consult`)",
                assessment.reason
            )
        } else {
            format!(
                "{id} must be put on hold and the competent data protection authority consulted \
                 before {doing} ({}): transition it to on_hold, then record the consultation \
                 (`residency disclosure consult`)",
                assessment.reason
            )
        })
    }

    /// A privacy team member's signed approval. The second approval by a
    /// different member approves the request.
    ///
    /// # Errors
    /// `Refused` for a key outside the team, a second approval by the same
    /// member, a final request, or a request whose consultation is missing.
    pub async fn approve(
        &self,
        id: &str,
        signer: &Signer,
        why: &str,
    ) -> Result<RequestRecord, DisclosureError> {
        self.member(signer, "an approval")?;
        require(why, "why (--why)")?;
        let (ledger, mut loaded) = self.load_request(id).await?;
        let rec = loaded.records[id].clone();
        if rec.state.is_final() {
            return Err(DisclosureError::Refused(format!("{id} is {}", rec.state)));
        }
        if rec.approvals.iter().any(|a| a.member == signer.member()) {
            return Err(DisclosureError::Refused(format!(
                "{} already approved {id}: a second, different privacy team member must approve",
                signer.member()
            )));
        }
        self.consultation_gate(&rec, "it is approved")
            .map_err(DisclosureError::Refused)?;
        let mut events = vec![(Event::Approval, why.to_owned())];
        if rec.approvals.len() + 1 >= 2 && rec.state.may_become(State::Approved) {
            let names: Vec<&str> = rec
                .approvals
                .iter()
                .map(|a| a.member.as_str())
                .chain([signer.member()])
                .collect();
            events.push((
                Event::Transition {
                    from: rec.state,
                    to: State::Approved,
                },
                format!("approved by {}", names.join(" and ")),
            ));
        }
        ledger
            .append(&mut loaded, id, signer.member(), Some(signer), events)
            .await?;
        Ok(loaded.records.remove(id).expect("exists"))
    }

    /// A privacy team member's signed vote to raise a limit for the
    /// request's export; it takes effect with two different members' votes
    /// for the same value (the exporter's and a second approver's).
    ///
    /// # Errors
    /// `Invalid` without a reason or a value not above the limit; `Refused`
    /// for a key outside the team or a final request.
    pub async fn approve_raise(
        &self,
        id: &str,
        raise: &LimitRaise,
        reason: &str,
        signer: &Signer,
    ) -> Result<RequestRecord, DisclosureError> {
        self.member(signer, "raising a limit")?;
        let (ledger, mut loaded) = self.load_request(id).await?;
        let rec = &loaded.records[id];
        if rec.state.is_final() {
            return Err(DisclosureError::Refused(format!("{id} is {}", rec.state)));
        }
        let event = self.raise_event(raise, reason)?;
        if rec
            .raise_voters(&raise.limit.to_string(), raise.to)
            .contains(signer.member())
        {
            return Ok(loaded.records.remove(id).expect("exists"));
        }
        ledger
            .append(&mut loaded, id, signer.member(), Some(signer), vec![event])
            .await?;
        Ok(loaded.records.remove(id).expect("exists"))
    }

    fn raise_event(
        &self,
        raise: &LimitRaise,
        reason: &str,
    ) -> Result<(Event, String), DisclosureError> {
        if reason.trim().is_empty() {
            return Err(DisclosureError::Invalid(
                "a raised limit needs a reason (--reason)".to_owned(),
            ));
        }
        let configured = raise.limit.of(&self.limits);
        if raise.to <= configured {
            return Err(DisclosureError::Invalid(format!(
                "--raise-limit {}={} does not raise the limit of {configured}",
                raise.limit, raise.to
            )));
        }
        Ok((
            Event::LimitRaised {
                limit: raise.limit.to_string(),
                from: configured,
                to: raise.to,
            },
            reason.trim().to_owned(),
        ))
    }

    /// Records the consultation of the competent data protection authority
    /// while the request is on hold (seed 4.2.1), or with `prohibited`, the
    /// written record of the efforts made when notifying it and suspending
    /// the request is legally prohibited (seed 4.2.2).
    ///
    /// # Errors
    /// `Invalid` without the authority or the summary; `Refused` for a
    /// consultation of a request that is not on hold, or a final request.
    pub async fn consult(
        &self,
        id: &str,
        consultation: Consult,
        by: &str,
        signer: Option<&Signer>,
    ) -> Result<RequestRecord, DisclosureError> {
        if signer.is_none() {
            require(by, "who records it (--by)")?;
        }
        let (ledger, mut loaded) = self.load_request(id).await?;
        let rec = &loaded.records[id];
        if rec.state.is_final() {
            return Err(DisclosureError::Refused(format!("{id} is {}", rec.state)));
        }
        let event = match consultation {
            Consult::Consulted {
                authority,
                reference,
                summary,
            } => {
                require(&authority, "the data protection authority (--dpa)")?;
                require(&summary, "its answer (--why)")?;
                if rec.state != State::OnHold {
                    return Err(DisclosureError::Refused(format!(
                        "{id} is {}: put it on hold (transition --to on-hold) while the data \
                         protection authority is consulted",
                        rec.state
                    )));
                }
                (
                    Event::Consulted {
                        authority,
                        reference,
                    },
                    summary,
                )
            }
            Consult::Prohibited { efforts } => {
                require(&efforts, "the written record of the efforts made (--why)")?;
                (Event::ConsultationProhibited, efforts)
            }
        };
        ledger
            .append(&mut loaded, id, by, signer, vec![event])
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
                None,
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
        if rec.request.request.tenant == UNATTRIBUTED {
            return Err(DisclosureError::Refused(format!(
                "{id}: the customer is not known, so there is no one to notify"
            )));
        }
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
                        None,
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
                        None,
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
        if let Err(reason) = self.consultation_gate(&rec, "anything is exported") {
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
    async fn authority_exports(
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
        for (_, t) in self.rules.tenants().iter() {
            let l = self.ledger(t.id())?;
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

    async fn live_report(
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

    fn reports_backend(&self) -> (&str, &Arc<dyn Backend>) {
        let policy = self.rules.policy();
        let region = policy.region(policy.default_region()).id();
        (region, &self.backends[region])
    }

    fn frozen_key(period: Period) -> String {
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
