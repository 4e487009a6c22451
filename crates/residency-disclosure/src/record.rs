//! A request's current standing, folded from its ledger entries.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::ledger::{Entry, Event};
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
    /// Limits raised for its export: limit → raised value.
    pub raised_limits: BTreeMap<String, u64>,
    /// Its export, once fulfilled.
    pub export: Option<ExportSummary>,
    /// Every entry about it, in order.
    pub history: Vec<Entry>,
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
        if let Event::Opened { request } = &e.event {
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
                if e.why.trim().is_empty() {
                    return Err(at("a transition needs a reason".into()));
                }
                r.state = *to;
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
                r.raised_limits.insert(limit.clone(), *to);
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
