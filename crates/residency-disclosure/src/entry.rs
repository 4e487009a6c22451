//! A ledger entry as stored: who did what to which request, and why (see
//! [`crate::Ledger`] for the chain they form).

use serde::{Deserialize, Serialize};

use crate::adequacy::Assessment;
use crate::request::DisclosureRequest;
use crate::signing::EntrySignature;
use crate::state::State;

/// The format version of entries written now.
pub const LEDGER_VERSION: u32 = 2;

fn version_1() -> u32 {
    1
}

/// The `prev` of the first entry.
pub const GENESIS: &str = residency_audit::chain::ZERO_GENESIS;

/// What happened to a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// The request was received and recorded (state `received`).
    Opened {
        /// The request.
        request: DisclosureRequest,
        /// Whether the authority's country requires a hold and consultation
        /// (absent in version 1 entries: assessed again at export).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        assessment: Option<Box<Assessment>>,
    },
    /// A privacy team member approves disclosure (a signed entry; two
    /// different members approve a request).
    Approval,
    /// The competent data protection authority was consulted while the
    /// request was on hold; `why` summarises its answer.
    Consulted {
        /// The data protection authority.
        authority: String,
        /// Its reference (letter, case number).
        reference: String,
    },
    /// Notifying the data protection authority and suspending the request
    /// is legally prohibited (or an imminent risk of serious harm forbids
    /// it); `why` is the written record of the efforts made (seed 4.2.2).
    ConsultationProhibited,
    /// A person moved the request to another state.
    Transition {
        /// The state before.
        from: State,
        /// The state after.
        to: State,
    },
    /// Notice to the customer was found to be legally prohibited (after
    /// opening); the entry's `why` is the reason.
    NoticeProhibited,
    /// The customer's webhook accepted the notice.
    Notified {
        /// Where it was sent.
        url: String,
        /// The HTTP status that accepted it.
        status: u16,
        /// Attempts made, the successful one included.
        attempts: u32,
        /// SHA-256 of the JSON body that was signed and sent.
        payload_sha256: String,
        /// The ledger head the notice carried.
        ledger_head: String,
    },
    /// Every attempt to deliver the notice failed (a written record of the effort).
    NotifyFailed {
        /// Where it was sent.
        url: String,
        /// Attempts made.
        attempts: u32,
        /// The last error.
        error: String,
    },
    /// A bulk-transfer limit was raised for this request's export; `why` is the reason.
    LimitRaised {
        /// `objects`, `bytes` or `categories`.
        limit: String,
        /// The configured limit.
        from: u64,
        /// The raised limit.
        to: u64,
    },
    /// An export was refused; `why` says why.
    ExportRefused,
    /// The objects in scope were exported (the request becomes `fulfilled`).
    Exported {
        /// The export directory.
        location: String,
        /// Objects exported.
        objects: u64,
        /// Bytes exported.
        bytes: u64,
        /// SHA-256 of `manifest.json`.
        manifest_sha256: String,
    },
}

impl Event {
    /// The event's `type` tag.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Opened { .. } => "opened",
            Event::Approval => "approval",
            Event::Consulted { .. } => "consulted",
            Event::ConsultationProhibited => "consultation_prohibited",
            Event::Transition { .. } => "transition",
            Event::NoticeProhibited => "notice_prohibited",
            Event::Notified { .. } => "notified",
            Event::NotifyFailed { .. } => "notify_failed",
            Event::LimitRaised { .. } => "limit_raised",
            Event::ExportRefused => "export_refused",
            Event::Exported { .. } => "exported",
        }
    }
}

/// One ledger entry: who did what to which request, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The entry's format version (1 when absent).
    #[serde(default = "version_1")]
    pub v: u32,
    /// Position in the tenant's ledger, from 0.
    pub seq: u64,
    /// SHA-256 (hex) of the previous entry's stored bytes; [`GENESIS`] for entry 0.
    pub prev: String,
    /// When it was recorded (RFC 3339 UTC).
    pub time: String,
    /// The request id.
    pub request: String,
    /// Who recorded it.
    pub by: String,
    /// Why (free text; the reason for a transition, a raised limit, a refusal).
    pub why: String,
    /// What happened.
    pub event: Event,
    /// The privacy team member's signature, for entries recorded with a key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sig: Option<EntrySignature>,
}

impl Entry {
    /// The bytes a signature covers: the entry's JSON without `sig`.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let mut unsigned = self.clone();
        unsigned.sig = None;
        serde_json::to_vec(&unsigned).expect("entries serialize")
    }

    /// The member who signed it, when the signature verifies.
    pub fn signer(&self) -> Option<&str> {
        self.sig
            .as_ref()
            .filter(|s| s.verifies(&self.signed_bytes()))
            .map(|s| s.member.as_str())
    }
}
