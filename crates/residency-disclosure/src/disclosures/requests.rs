//! Opening requests and moving them through their states: transitions,
//! approvals, consultations, notices.

use std::time::SystemTime;

use serde_json::json;
use sha2::{Digest, Sha256};

use crate::adequacy::Assessment;
use crate::date::rfc3339;
use crate::entry::Event;
use crate::error::DisclosureError;
use crate::export::LimitRaise;
use crate::notify::Webhook;
use crate::record::{Notice, RequestRecord};
use crate::request::{DisclosureRequest, NewRequest, UNATTRIBUTED};
use crate::signing::Signer;
use crate::state::State;

use super::*;

impl Disclosures {
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

    /// Whether a request from an authority in `country` for `tenant`'s data
    /// is held for consultation (seed 4.2.1), and why.
    ///
    /// # Errors
    /// `Directory` when the tenant directory cannot answer.
    pub async fn assess(&self, tenant: &str, country: &str) -> Result<Assessment, DisclosureError> {
        Ok(self
            .adequacy
            .assess(country, self.eea_hosted(tenant).await?))
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
        require_unless_signed(by, signer, "who records the request (--by)")?;
        request.validate()?;
        let ledger = self.ledger(&request.tenant).await?;
        let mut loaded = ledger.load().await?;
        let id = format!("{}-{}", request.tenant, loaded.records.len() + 1);
        let why = if why.trim().is_empty() {
            "received"
        } else {
            why
        };
        let assessment = self.assess(&request.tenant, &request.country).await?;
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
        require_unless_signed(by, signer, "who makes the transition (--by)")?;
        require(why, "why (--why)")?;
        let (ledger, loaded) = self.load_request(id).await?;
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
        append(
            &ledger,
            loaded,
            id,
            by,
            signer,
            vec![(Event::Transition { from, to }, why.to_owned())],
        )
        .await
    }

    /// Refuses (the inner error, why) while a consultation the request
    /// needs is not recorded; the outer error when the tenant directory
    /// cannot say where the tenant is hosted.
    pub(super) async fn consultation_gate(
        &self,
        rec: &RequestRecord,
        doing: &str,
    ) -> Result<Result<(), String>, DisclosureError> {
        let id = &rec.request.id;
        let assessment = match rec.assessment.clone() {
            Some(a) => a,
            None => {
                self.assess(&rec.request.request.tenant, &rec.request.request.country)
                    .await?
            }
        };
        if !assessment.consult || rec.consultation.recorded() {
            return Ok(Ok(()));
        }
        Ok(Err(if rec.held || rec.state == State::OnHold {
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
        }))
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
        let (ledger, loaded) = self.load_request(id).await?;
        let rec = loaded.records[id].clone();
        refuse_final(id, &rec)?;
        if rec.approvals.iter().any(|a| a.member == signer.member()) {
            return Err(DisclosureError::Refused(format!(
                "{} already approved {id}: a second, different privacy team member must approve",
                signer.member()
            )));
        }
        self.consultation_gate(&rec, "it is approved")
            .await?
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
        append(&ledger, loaded, id, signer.member(), Some(signer), events).await
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
        refuse_final(id, rec)?;
        let event = self.raise_event(raise, reason)?;
        if rec
            .raise_voters(&raise.limit.to_string(), raise.to)
            .contains(signer.member())
        {
            return Ok(loaded.records.remove(id).expect("exists"));
        }
        append(
            &ledger,
            loaded,
            id,
            signer.member(),
            Some(signer),
            vec![event],
        )
        .await
    }

    pub(super) fn raise_event(
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
        require_unless_signed(by, signer, "who records it (--by)")?;
        let (ledger, loaded) = self.load_request(id).await?;
        let rec = &loaded.records[id];
        refuse_final(id, rec)?;
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
        append(&ledger, loaded, id, by, signer, vec![event]).await
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
        let (ledger, loaded) = self.load_request(id).await?;
        let rec = &loaded.records[id];
        if let Notice::Sent { at, .. } = &rec.notice {
            return Err(DisclosureError::Refused(format!(
                "the customer was already notified of {id} at {at}"
            )));
        }
        refuse_final(id, rec)?;
        let events = vec![(Event::NoticeProhibited, reason.to_owned())];
        append(&ledger, loaded, id, by, None, events).await
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
        refuse_final(id, rec)?;
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
                let events = vec![(event, "customer notified".into())];
                append(&ledger, loaded, id, by, None, events).await
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
}

/// Appends `events` to request `id` and returns its record as it is now.
async fn append(
    ledger: &Ledger,
    mut loaded: Loaded,
    id: &str,
    by: &str,
    signer: Option<&Signer>,
    events: Vec<(Event, String)>,
) -> Result<RequestRecord, DisclosureError> {
    ledger.append(&mut loaded, id, by, signer, events).await?;
    Ok(loaded.records.remove(id).expect("exists"))
}

/// A final request takes no more events.
fn refuse_final(id: &str, rec: &RequestRecord) -> Result<(), DisclosureError> {
    if rec.state.is_final() {
        return Err(DisclosureError::Refused(format!("{id} is {}", rec.state)));
    }
    Ok(())
}

/// `by` names who acts, unless a privacy team member's key signs (and names) it.
fn require_unless_signed(
    by: &str,
    signer: Option<&Signer>,
    what: &str,
) -> Result<(), DisclosureError> {
    match signer {
        Some(_) => Ok(()),
        None => require(by, what),
    }
}
