//! [`Phase`]: where a migration is (journal, errors and status share it).

use serde::{Deserialize, Serialize};

/// Where a migration is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Listing, copying and verifying.
    Copying,
    /// Every object is verified; old copies wait for the assurance window.
    Verified,
    /// Deleting old copies (`--finish`).
    Deleting,
    /// Old copies deleted and the tenants file's `migrating_from` removed.
    Finished,
}

impl Phase {
    /// The phase as printed.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Copying => "copying",
            Phase::Verified => "verified",
            Phase::Deleting => "deleting",
            Phase::Finished => "finished",
        }
    }
}
