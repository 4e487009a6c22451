//! # residency-scan: where every tenant's data is now
//!
//! Residency decides where each new object goes; `residency scan` checks
//! what is already stored. Objects drift without any request passing the
//! sidecar: data written before it was deployed, a policy change, a tenant
//! that switched a feature off, a migration left unfinished, a job that
//! wrote around the proxy. The scan lists every region's bucket (page by
//! page, memory bounded by the number of tenants, never by the number of
//! objects), reconciles each key against the current policy and the tenant
//! directory, and reports each object that is not where the policy places
//! it, with its one-line reason ([`FindingKind`]).
//!
//! It writes into an output folder:
//! - `findings.jsonl`: one [`Finding`] per line, streamed while listing;
//! - `checkpoint.json`: the listing cursors and counts, every few seconds;
//!   a scan killed at any point resumes from it (findings written after
//!   the checkpoint are found again, never twice);
//! - `summary.json`: counts per tenant × category × region and findings per
//!   kind ([`Summary`]), once every region was listed;
//! - `report.html`: a self-contained page a compliance officer reads.
//!
//! At provider scale the keys come from the regions' S3 Inventory reports
//! instead of a LIST ([`inventory`]); each finding is then checked against
//! the live bucket (a LIST at its key), so that what was deleted or written
//! again since the inventory is reported as it is now.
//!
//! Only objects whose category their key does not fix (no key rule
//! matches, or an explicit category wins over key rules) are read with a
//! HEAD, for their stored content type and category.

pub mod attest;
mod checkpoint;
pub mod erase;
mod error;
mod finding;
pub mod inventory;
mod progress;
mod reconcile;
pub mod remediate;
pub mod report;
mod retained;
mod scan;
mod signed;
mod summary;

pub use checkpoint::read_summary;
pub use finding::{Finding, FindingKind};
pub use scan::{
    Outcome, ScanError, ScanOptions, Scanner, CHECKPOINT_FILE, FINDINGS_FILE, SUMMARY_FILE,
};
pub use summary::{Count, Summary, TenantSummary, UNCLASSIFIED};
