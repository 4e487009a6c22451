//! Why a migration step failed.

use residency_store::StoreError;
use serde::Serialize;

use crate::phase::Phase;

/// A migration of the tenant that is open (started, not finished): no other
/// may start before it is finished.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OpenMigration {
    /// Its id (none when only the tenants file shows it: `migrating_from`
    /// is set but no journal names it).
    pub id: Option<String>,
    /// The tenant.
    pub tenant: String,
    /// The region it moves from.
    pub from: String,
    /// The region it moves to.
    pub to: String,
    /// Its phase, from its journal.
    pub phase: Option<Phase>,
    /// The command that finishes it.
    pub finish_command: String,
}

/// Another `residency migrate` (on this machine or another) holds the
/// tenant's migration lease in the tenant directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeaseHeld {
    /// The tenant.
    pub tenant: String,
    /// Who holds the lease (host, process id, random suffix).
    pub holder: String,
    /// When it expires unless its holder renews it (UTC).
    pub expires_at: String,
    /// Seconds from now until it expires (by the database's clock).
    pub expires_in_secs: u64,
}

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
    /// A migration of the tenant to another region is open: this one is
    /// refused (nothing was changed).
    #[error("{}", open_message(.0))]
    Open(Box<OpenMigration>),
    /// Another migrator holds the tenant's migration lease: this one is
    /// refused (nothing was changed).
    #[error("{}", lease_message(.0))]
    Leased(Box<LeaseHeld>),
    /// The tenant directory (PostgreSQL) could not be read or written.
    #[error("tenant directory: {0}")]
    Directory(String),
    /// An audit event could not be stored: the step it describes is not
    /// journaled (run the same command again).
    #[error("audit: {0}")]
    Audit(String),
    /// `--finish` before every object is verified or before the assurance
    /// window has passed: nothing was deleted.
    #[error("{0}")]
    NotReady(String),
    /// The tenant's audit or disclosure records could not be moved: they
    /// differ between two regions, or do not verify in the destination.
    /// Nothing of them was deleted.
    #[error("records: {0}")]
    Records(String),
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

fn open_message(m: &OpenMigration) -> String {
    let phase = m
        .phase
        .map(Phase::as_str)
        .unwrap_or("switched in the tenants file");
    format!(
        "migration {} of tenant {} ({} -> {}) is open ({phase}): no other migration of the tenant may start before it is finished. \
Finish it: `{}` (once every object is verified and the assurance window has passed; add `--assurance 0s` to end the window now). \
There is no cancel: to go back to {}, finish it, then run `residency migrate --tenant {} --to {}`.",
        m.id.as_deref().unwrap_or("(no journal found)"),
        m.tenant,
        m.from,
        m.to,
        m.finish_command,
        m.from,
        m.tenant,
        m.from
    )
}

fn lease_message(l: &LeaseHeld) -> String {
    format!(
        "tenant {} is being migrated by another `residency migrate`: its migration lease is held by {} until {} ({} s from now, renewed while it runs). Nothing was changed. \
Wait for that migration to end; if its process died, the lease expires at that time and running this command again then takes it over.",
        l.tenant, l.holder, l.expires_at, l.expires_in_secs
    )
}
