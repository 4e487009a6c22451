//! The one error type of the disclosure guard, with the exit code the CLI uses.

use residency_store::StoreError;

/// Why a disclosure operation did not happen.
///
/// Two kinds matter to a caller: bad input ([`DisclosureError::Invalid`],
/// unknown tenant or request: nothing was looked at) and a refusal or failure
/// (the guard said no, the ledger is damaged, storage or the webhook failed).
/// [`DisclosureError::exit_code`] maps them to 2 and 1.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DisclosureError {
    /// The input is malformed or incomplete (a missing reason, a bad date…).
    #[error("{0}")]
    Invalid(String),
    /// No such tenant in the tenants file.
    #[error("unknown tenant {0:?}")]
    UnknownTenant(String),
    /// No such request in its tenant's ledger.
    #[error("no disclosure request {0:?}")]
    UnknownRequest(String),
    /// The guard refuses: an invalid transition, an export of an unapproved
    /// or un-notified request, a bulk scope.
    #[error("refused: {0}")]
    Refused(String),
    /// The tenant's ledger failed verification; nothing is appended to it.
    #[error("the disclosure ledger of {tenant:?} is damaged: {}", problems.join("; "))]
    Damaged {
        /// The tenant.
        tenant: String,
        /// What verification found.
        problems: Vec<String>,
    },
    /// The customer's webhook did not accept the notice (the failure is recorded).
    #[error("the notice was not delivered after {attempts} attempt(s): {error}")]
    NotifyFailed {
        /// Attempts made.
        attempts: u32,
        /// The last error.
        error: String,
    },
    /// Another writer appended to the same ledger at the same time.
    #[error("ledger conflict: {0}")]
    Conflict(String),
    /// The tenant directory could not answer (unreachable, or the tenant's
    /// record is invalid): nothing was decided by a guess.
    #[error("{0}")]
    Directory(#[from] residency_directory::DirectoryError),
    /// A region's backend failed.
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    /// Writing the export failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: std::io::Error,
    },
}

impl DisclosureError {
    /// The CLI's exit code: 2 for bad input, 1 for a refusal or a failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            DisclosureError::Invalid(_)
            | DisclosureError::UnknownTenant(_)
            | DisclosureError::UnknownRequest(_) => 2,
            _ => 1,
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        DisclosureError::Io {
            context: context.into(),
            source,
        }
    }
}
