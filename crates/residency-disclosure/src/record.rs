//! A request's current standing, folded from its ledger entries.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::adequacy::Assessment;
use crate::entry::{Entry, Event};
use crate::request::{parse_request_id, DisclosureRequest};
use crate::state::State;

/// Whether the customer has been told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Notice {
    /// Not yet notified (failed attempts, if any, are in the history).
    Pending,
    /// The customer's webhook accepted the notice.
    Sent {
        /// When (RFC 3339).
        at: String,
        /// Where.
        url: String,
    },
    /// The law prohibits notice.
    Prohibited {
        /// Why.
        reason: String,
    },
}

impl Notice {
    /// Whether an export may proceed: the customer was notified, or notice
    /// is legally prohibited (with a reason).
    pub fn allows_disclosure(&self) -> bool {
        !matches!(self, Notice::Pending)
    }
}

/// Whether the competent data protection authority was consulted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Consultation {
    /// Nothing recorded.
    None,
    /// Consulted while the request was on hold.
    Consulted {
        /// The data protection authority.
        authority: String,
        /// Its reference.
        reference: String,
        /// When it was recorded (RFC 3339).
        at: String,
        /// Its answer, summarised.
        summary: String,
    },
    /// Consultation and suspension are legally prohibited; the efforts made.
    Prohibited {
        /// The written record of the efforts (seed 4.2.2).
        efforts: String,
    },
}

impl Consultation {
    /// Whether a request that needs consultation may proceed.
    pub fn recorded(&self) -> bool {
        !matches!(self, Consultation::None)
    }
}

/// One signed approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Approval {
    /// The privacy team member.
    pub member: String,
    /// When (RFC 3339).
    pub at: String,
}

/// One member's signed vote to raise a limit to a value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct RaiseVote {
    /// The limit.
    pub limit: String,
    /// The raised value.
    pub to: u64,
    /// The member.
    pub member: String,
}

/// One export of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExportSummary {
    /// When (RFC 3339).
    pub at: String,
    /// Where.
    pub location: String,
    /// Objects exported.
    pub objects: u64,
    /// Bytes exported.
    pub bytes: u64,
    /// SHA-256 of the manifest.
    pub manifest_sha256: String,
}

/// A request and where it stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequestRecord {
    /// The request as received.
    pub request: DisclosureRequest,
    /// The current state.
    pub state: State,
    /// The customer notice.
    pub notice: Notice,
    /// The adequacy assessment recorded when it was opened (none for
    /// requests recorded before version 2 of the ledger).
    pub assessment: Option<Assessment>,
    /// Whether it was ever put on hold.
    pub held: bool,
    /// The consultation of the data protection authority.
    pub consultation: Consultation,
    /// Signed approvals by distinct privacy team members.
    pub approvals: Vec<Approval>,
    /// Signed votes to raise a limit.
    pub raise_votes: Vec<RaiseVote>,
    /// Limits raised for its export (voted by two different members; for
    /// version 1 entries, as recorded): limit → raised value.
    pub raised_limits: BTreeMap<String, u64>,
    /// Its export, once fulfilled.
    pub export: Option<ExportSummary>,
    /// Every entry about it, in order.
    pub history: Vec<Entry>,
}

impl RequestRecord {
    /// The members who voted to raise `limit` to exactly `to`.
    pub fn raise_voters(&self, limit: &str, to: u64) -> BTreeSet<&str> {
        self.raise_votes
            .iter()
            .filter(|v| v.limit == limit && v.to == to)
            .map(|v| v.member.as_str())
            .collect()
    }

    /// Whether the authority's country requires a hold and consultation,
    /// as recorded when it was opened.
    pub fn needs_consultation(&self) -> bool {
        self.assessment.as_ref().is_some_and(|a| a.consult)
    }
}

/// Folds a tenant's entries into records, checking that they make sense:
/// ids are numbered in order, transitions are valid, an export follows
/// approval and notice.
///
/// # Errors
/// The first entry that does not fit, described.
pub(crate) fn replay(
    tenant: &str,
    entries: &[Entry],
) -> Result<BTreeMap<String, RequestRecord>, String> {
    let mut records: BTreeMap<String, RequestRecord> = BTreeMap::new();
    let mut opened = 0u64;
    for e in entries {
        let at = |m: String| format!("entry {} ({}): {m}", e.seq, e.request);
        if e.by.trim().is_empty() {
            return Err(at("who recorded it is missing".into()));
        }
        if let Some(sig) = &e.sig {
            if sig.member != e.by {
                return Err(at(format!(
                    "signed by {} but recorded as by {}",
                    sig.member, e.by
                )));
            }
            if e.signer().is_none() {
                return Err(at(format!(
                    "the signature of {} does not verify (entry edited or forged)",
                    sig.member
                )));
            }
        }
        let signed_by = e.signer().map(str::to_owned);
        let v2 = e.v >= 2;
        if let Event::Opened {
            request,
            assessment,
        } = &e.event
        {
            let (t, n) = parse_request_id(&request.id).map_err(|err| at(err.to_string()))?;
            if t != tenant || request.request.tenant != tenant {
                return Err(at(format!(
                    "request of another tenant in the ledger of {tenant}"
                )));
            }
            if n != opened + 1 || e.request != request.id {
                return Err(at(format!("request {} opened out of order", request.id)));
            }
            opened = n;
            let notice = match &request.request.notice_prohibited {
                Some(reason) => Notice::Prohibited {
                    reason: reason.clone(),
                },
                None => Notice::Pending,
            };
            records.insert(
                request.id.clone(),
                RequestRecord {
                    request: request.clone(),
                    state: State::Received,
                    notice,
                    assessment: assessment.as_deref().cloned(),
                    held: false,
                    consultation: Consultation::None,
                    approvals: Vec::new(),
                    raise_votes: Vec::new(),
                    raised_limits: BTreeMap::new(),
                    export: None,
                    history: vec![e.clone()],
                },
            );
            continue;
        }
        let Some(r) = records.get_mut(&e.request) else {
            return Err(at("no such request was opened before".into()));
        };
        if r.state.is_final() {
            return Err(at(format!("the request is already {}", r.state)));
        }
        match &e.event {
            Event::Opened { .. } => unreachable!("handled above"),
            Event::Transition { from, to } => {
                if *from != r.state {
                    return Err(at(format!(
                        "transition from {from}, but the request is {}",
                        r.state
                    )));
                }
                let by_export = *from == State::Approved && *to == State::Fulfilled;
                if by_export {
                    if r.export.is_none() {
                        return Err(at("fulfilled without an export".into()));
                    }
                } else if !from.may_become(*to) {
                    return Err(at(format!("{from} cannot become {to}")));
                }
                if v2 && *to == State::Approved && r.approvals.len() < 2 {
                    return Err(at(format!(
                        "approved with {} signed approval(s); two different privacy team members must approve",
                        r.approvals.len()
                    )));
                }
                if e.why.trim().is_empty() {
                    return Err(at("a transition needs a reason".into()));
                }
                if *from == State::Approved && *to != State::Fulfilled {
                    // Challenged or refused after approval: a new approval
                    // needs two members again.
                    r.approvals.clear();
                }
                r.state = *to;
                if *to == State::OnHold {
                    r.held = true;
                }
            }
            Event::Approval => {
                let Some(member) = signed_by else {
                    return Err(at(
                        "an approval must be signed by a privacy team member".into()
                    ));
                };
                if r.approvals.iter().any(|a| a.member == member) {
                    return Err(at(format!("{member} already approved this request")));
                }
                r.approvals.push(Approval {
                    member,
                    at: e.time.clone(),
                });
            }
            Event::Consulted {
                authority,
                reference,
            } => {
                if r.state != State::OnHold {
                    return Err(at(format!(
                        "consulted while {}; a consultation is recorded while the request is on hold",
                        r.state
                    )));
                }
                if authority.trim().is_empty() || e.why.trim().is_empty() {
                    return Err(at(
                        "a consultation names the authority and its answer".into()
                    ));
                }
                r.consultation = Consultation::Consulted {
                    authority: authority.clone(),
                    reference: reference.clone(),
                    at: e.time.clone(),
                    summary: e.why.clone(),
                };
            }
            Event::ConsultationProhibited => {
                if e.why.trim().is_empty() {
                    return Err(at(
                        "a prohibited consultation needs the record of efforts".into()
                    ));
                }
                r.consultation = Consultation::Prohibited {
                    efforts: e.why.clone(),
                };
            }
            Event::NoticeProhibited => {
                if e.why.trim().is_empty() {
                    return Err(at("a notice prohibition needs a reason".into()));
                }
                if matches!(r.notice, Notice::Sent { .. }) {
                    return Err(at("the customer was already notified".into()));
                }
                r.notice = Notice::Prohibited {
                    reason: e.why.clone(),
                };
            }
            Event::Notified { url, .. } => {
                if let Notice::Prohibited { .. } = r.notice {
                    return Err(at("notice is legally prohibited for this request".into()));
                }
                r.notice = Notice::Sent {
                    at: e.time.clone(),
                    url: url.clone(),
                };
            }
            Event::NotifyFailed { .. } | Event::ExportRefused => {}
            Event::LimitRaised { limit, to, .. } => {
                if e.why.trim().is_empty() {
                    return Err(at("a raised limit needs a reason".into()));
                }
                if v2 {
                    let Some(member) = signed_by else {
                        return Err(at(
                            "a raised limit must be signed by a privacy team member".into()
                        ));
                    };
                    let vote = RaiseVote {
                        limit: limit.clone(),
                        to: *to,
                        member,
                    };
                    if !r.raise_votes.contains(&vote) {
                        r.raise_votes.push(vote);
                    }
                    if r.raise_voters(limit, *to).len() >= 2 {
                        r.raised_limits.insert(limit.clone(), *to);
                    }
                } else {
                    r.raised_limits.insert(limit.clone(), *to);
                }
            }
            Event::Exported {
                location,
                objects,
                bytes,
                manifest_sha256,
            } => {
                if r.state != State::Approved {
                    return Err(at(format!("exported while {}", r.state)));
                }
                if !r.notice.allows_disclosure() {
                    return Err(at("exported before the customer was notified".into()));
                }
                if v2 && r.approvals.len() < 2 {
                    return Err(at("exported without two signed approvals".into()));
                }
                if v2 && r.needs_consultation() && !r.consultation.recorded() {
                    return Err(at(
                        "exported before the data protection authority was consulted".into(),
                    ));
                }
                r.export = Some(ExportSummary {
                    at: e.time.clone(),
                    location: location.clone(),
                    objects: *objects,
                    bytes: *bytes,
                    manifest_sha256: manifest_sha256.clone(),
                });
            }
        }
        r.history.push(e.clone());
    }
    Ok(records)
}
