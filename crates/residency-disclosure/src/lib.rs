//! Residency's disclosure guard: government data requests, recorded and bounded.
//!
//! The Government Data Request Policy in `seeds/` says how requests from
//! authorities to disclose personal data are handled: the customer is
//! notified "prior to disclosing any personal information, unless legally
//! prohibited", written records are kept, a semi-annual transparency report
//! is published, and data is never transferred "in a massive,
//! disproportionate, and indiscriminate manner". Residency holds the data,
//! so it enforces the technical half of that:
//!
//! - [`Disclosures::open`] records a request in the tenant's hash-chained
//!   [`Ledger`], stored in the tenant's home region under
//!   `_disclosure/<tenant>/`, outside its namespace;
//! - [`Disclosures::transition`] moves it through its [`State`]s, with who and why;
//! - [`Disclosures::notify`] sends the customer a signed [`Webhook`] notice
//!   (or [`Disclosures::prohibit_notice`] records why it may not);
//! - [`Disclosures::export`] copies exactly the objects in scope, with a
//!   [`Manifest`], only for an approved, notified request whose scope is
//!   within the [`Limits`];
//! - [`Disclosures::report`] computes the [`TransparencyReport`].
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use std::sync::Arc;
//! use residency_disclosure::{Disclosures, NewRequest, RequestType, Scope, State};
//! use residency_policy::Ruleset;
//! use residency_store::{Backend, MemoryBackend};
//!
//! let rules = Ruleset::from_toml(
//!     "version = \"1\"\ndefault_region = \"eu\"\n[regions.eu]\njurisdiction = \"EEA\"\n\
//!      [categories.ticket_data]\nallowed = [\"eu\"]\n",
//!     "policy.toml",
//!     "[[tenants]]\nid = \"acme\"\nlocality = \"eu\"\n",
//!     "tenants.toml",
//! ).unwrap();
//! let eu: Arc<dyn Backend> = Arc::new(MemoryBackend::new("eu"));
//! let desk = Disclosures::new(rules, [("eu".to_owned(), eu)]).unwrap();
//!
//! let rec = desk.open(NewRequest {
//!     tenant: "acme".into(),
//!     authority: "Bundeskriminalamt".into(),
//!     country: "DE".into(),
//!     legal_basis: "StPO §95".into(),
//!     received: "2026-07-15".parse().unwrap(),
//!     request_type: RequestType::CourtOrder,
//!     scope: Scope { keys: vec!["tickets/42.json".into()], ..Scope::default() },
//!     notice_prohibited: None,
//! }, "privacy-team", "").await.unwrap();
//! assert_eq!(rec.request.id, "acme-1");
//! assert_eq!(rec.state, State::Received);
//!
//! // Invalid transitions are refused; valid ones are recorded with who and why.
//! assert!(desk.transition("acme-1", State::Fulfilled, "dpo", "done").await.is_err());
//! desk.transition("acme-1", State::OnHold, "dpo", "consulting the DPA").await.unwrap();
//! assert!(desk.verify("acme").await.unwrap().ok);
//! # });
//! ```

mod adequacy;
mod date;
mod disclosures;
mod entry;
mod error;
mod export;
mod ledger;
mod notify;
mod record;
mod report;
mod request;
mod settings;
mod signing;
mod state;

pub use adequacy::{Adequacy, Assessment, Covers, Decision};
pub use date::{rfc3339, Date};
pub use disclosures::{Consult, Disclosures};
pub use entry::{Entry, Event, GENESIS, LEDGER_VERSION};
pub use error::DisclosureError;
pub use export::{ExportOptions, Limit, LimitRaise, Limits, Manifest, ManifestObject};
pub use ledger::{Ledger, VerifyReport};
pub use notify::{sign, Delivery, Webhook, REQUEST_HEADER, SIGNATURE_HEADER};
pub use record::{Approval, Consultation, ExportSummary, Notice, RaiseVote, RequestRecord};
pub use report::{
    banded, outcome, FrozenBody, FrozenInfo, FrozenReport, LateChange, Period, ReportRow,
    ReportView, TransparencyReport,
};
pub use request::{
    parse_request_id, DisclosureRequest, NewRequest, RequestType, Scope, UNATTRIBUTED,
};
pub use settings::{ReportSettings, Settings, TenantSettings, WebhookSettings};
pub use signing::{check_team, EntrySignature, Member, Signer};
pub use state::State;
