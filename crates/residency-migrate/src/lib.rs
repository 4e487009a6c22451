//! Move a tenant's data to another region: plan, switch, copy and verify,
//! then (after an assurance window) delete the old copies.
//!
//! The hosting policy's migration clause: a copy is made in the new region,
//! the copy is verified (an assurance period of up to 30 days), and only
//! then are the old copies deleted. The sequence, as `residency migrate`
//! runs it:
//!
//! 1. **plan** — list the tenant's objects (`<tenant>/…`) in every region
//!    but the destination, page by page, and decide each one with the
//!    tenant's locality set to the destination, by the same rules the
//!    sidecar applies to writes. Objects whose category must stay elsewhere
//!    (call recordings are US-only) are not moved, and are reported.
//! 2. **switch** — the tenants file gets `locality = "<to>"` and
//!    `migrating_from = "<from>"` ([`tenants_file`]); the sidecar reloads
//!    it, sends new writes to the destination and reads the destination
//!    first, then the old region, so no object that exists is ever a 404.
//! 3. **copy and verify** — bounded parallelism, streaming, multipart above
//!    a threshold; each copy counts only once the destination reports the
//!    size, metadata and ETag computed from the bytes while copying.
//! 4. **journal** — outcomes are stored in the destination region
//!    ([`journal`](crate::Phase)): a crash at any point, then the same
//!    command, resumes after the last stored page without copying verified
//!    objects again.
//! 5. **delete** (`--finish`, or at once when the assurance window is 0) —
//!    every old copy whose copy still verifies is deleted; objects written
//!    late to the old region are copied first; then `migrating_from` is
//!    removed from the tenants file.
//!
//! The tenant's locality lives in a [`TenantSource`]: the tenants file, or
//! the PostgreSQL tenant directory ([`DirectorySource`]). With the
//! directory, the switch is one transaction (`locality`, `migrating_from`),
//! the migrator waits the sidecars' `max_staleness` after it before copying
//! (a replica that missed the notification serves its cached record at most
//! that long), the finish sets `migrated_from`, a tenant with no data
//! migrates at once, and each run holds a lease on the tenant in the
//! directory (`migration_leases`): a second migrator is refused
//! ([`MigrateError::Leased`]), a dead holder's lease expires. A large
//! tenant's copy can be shared by several workers on several machines
//! ([`MigrationOptions::range_size`], [`Migrator::join`]): the run holding
//! the lease writes key ranges to the directory (`migration_ranges`) as it
//! lists, each worker leases one range at a time (`FOR UPDATE SKIP
//! LOCKED`), copies and verifies it under the range's own journal cursor,
//! and marks it done; a dead worker's range expires and is resumed from its
//! journal by another.
//!
//! ```
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! use std::sync::Arc;
//! use std::time::Duration;
//! use residency_migrate::{MigrationOptions, Migrator, Phase, ProgressMode};
//! use residency_policy::Policy;
//! use residency_store::{Backend, Body, MemoryBackend, PutMeta};
//!
//! let policy = Policy::from_toml(r#"
//!     version = "1"
//!     default_region = "us"
//!     [regions.eu]
//!     jurisdiction = "EEA"
//!     [regions.us]
//!     jurisdiction = "US"
//!     [categories.ticket_data]
//!     allowed = ["eu", "us"]
//!     [[key_rules]]
//!     pattern = "tickets/**"
//!     category = "ticket_data"
//! "#, "policy.toml").unwrap();
//! let dir = tempfile::tempdir().unwrap();
//! let tenants = dir.path().join("tenants.toml");
//! std::fs::write(&tenants, "[[tenants]]\nid = \"acme\"\n").unwrap();
//!
//! let eu: Arc<dyn Backend> = Arc::new(MemoryBackend::new("eu"));
//! let us: Arc<dyn Backend> = Arc::new(MemoryBackend::new("us"));
//! us.put_object("acme/tickets/1.json", Body::from("{}"), PutMeta::default()).await.unwrap();
//!
//! let mut opts = MigrationOptions::new("acme", "eu");
//! opts.assurance = Some(Duration::ZERO);
//! opts.progress = ProgressMode::Quiet;
//! let m = Migrator::new(policy, &tenants, vec![("eu".into(), eu.clone()), ("us".into(), us.clone())], opts);
//! let report = m.run().await.unwrap();
//! assert_eq!(report.phase, Some(Phase::Finished));
//! assert_eq!((report.totals.verified, report.totals.deleted), (1, 1));
//! assert!(eu.head_object("acme/tickets/1.json").await.is_ok());
//! assert!(us.head_object("acme/tickets/1.json").await.is_err());
//! assert!(std::fs::read_to_string(&tenants).unwrap().contains("locality = \"eu\""));
//! # });
//! ```

mod audit;
mod copy;
mod error;
mod fault;
mod journal;
mod migration;
mod moves;
mod phase;
mod placement;
mod progress;
mod records;
mod source;
mod status;
pub mod tenants_file;

pub use audit::MigrationAudit;
pub use error::{LeaseHeld, MigrateError, OpenMigration};
pub use fault::{FaultAction, FaultPoint};
pub use journal::{DeleteAction, DeleteRecord, Outcome, Phase, Record, SourceState, State, Totals};
pub use migration::{
    MigrationOptions, Migrator, Report, DEFAULT_ASSURANCE, DEFAULT_PART_SIZE, DEFAULT_RANGE_SIZE,
};
pub use moves::{move_object, Moved};
pub use progress::ProgressMode;
pub use records::RecordsMoved;
pub use source::{DirectorySource, TenantSource, DEFAULT_LEASE_TTL};
pub use status::{migration_status, record_moves, MigrationStatus};
