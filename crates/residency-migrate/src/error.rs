//! Why a migration step failed.

use residency_store::StoreError;

/// Why a migration command failed. Every failure leaves the journal
/// consistent: running the same command again resumes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MigrateError {
    /// Bad arguments or files: unknown tenant or region, a tenant that cannot
    /// be moved there, a tenants file that cannot be edited.
    #[error("{0}")]
    Config(String),
    /// A region's backend failed (after retries).
    #[error("region {region}: {source}")]
    Store {
        /// The region whose backend failed.
        region: String,
        /// What the backend said.
        #[source]
        source: StoreError,
    },
    /// The journal could not be read or is inconsistent.
    #[error("journal: {0}")]
    Journal(String),
    /// Another migration of the tenant is in progress.
    #[error("{0}")]
    Conflict(String),
    /// `--finish` before every object is verified or before the assurance
    /// window has passed: nothing was deleted.
    #[error("{0}")]
    NotReady(String),
    /// A fault point set by the test harness was reached (the process would
    /// have been aborted there).
    #[error("fault point {0} reached")]
    Fault(String),
}

impl MigrateError {
    pub(crate) fn store(region: &str, source: StoreError) -> Self {
        MigrateError::Store {
            region: region.to_owned(),
            source,
        }
    }
}
