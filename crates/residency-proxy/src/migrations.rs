//! `residency_migrations_overdue` and `residency_migrations_open`: the
//! sidecar reads the journal of every migration its tenant directory shows open
//! (a tenant with `migrating_from`) at start, after each successful reload
//! and once a minute.
//!
//! Why the sidecar: it is the process every deployment already scrapes,
//! it runs all the time (a migration's assurance window is up to 30 days;
//! `residency migrate` is a command that exits), and it knows which
//! migrations are open without listing anything. The cost is one
//! `current.json` and one `state.json` GET per open migration per minute.
//! Every replica exports the same values: alert on `max()`.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use residency_migrate::migration_status;
use residency_store::Backend;
use residency_tower::RulesetHandle;
use tokio::sync::{watch, Notify};

/// What the check reads: the rules serving now, each region's backend, and
/// a wake-up after each successful reload.
pub(crate) struct Watched {
    pub(crate) rules: RulesetHandle,
    pub(crate) backends: Vec<(String, Arc<dyn Backend>)>,
    pub(crate) reloaded: Arc<Notify>,
}

/// Open migrations whose assurance window has passed without `--finish`.
pub const MIGRATIONS_OVERDUE: &str = "residency_migrations_overdue";
/// Migrations the tenants file shows open (`migrating_from` set).
pub const MIGRATIONS_OPEN: &str = "residency_migrations_open";
/// How often the journals are read.
pub const CHECK_EVERY: Duration = Duration::from_secs(60);

/// Reads the journals of the open migrations and sets the gauges.
pub(crate) async fn check(w: &Watched) {
    let current = w.rules.current();
    let policy = current.rules().policy();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (mut open, mut overdue) = (0u64, 0u64);
    // The tenants file's, or one query to the PostgreSQL directory.
    let mut migrating = current.directory().migrating(policy);
    while let Some(t) = migrating.next().await {
        let t = match t {
            Ok(t) => t,
            Err(e) => {
                // Keep the gauges as they were: an unknown count is not zero.
                tracing::warn!(error = %e, "cannot list the open migrations: migration gauges not updated");
                return;
            }
        };
        let (Some(_), Some(to)) = (t.migrating_from(), t.locality()) else {
            continue;
        };
        open += 1;
        let to = policy.region(to).id();
        let Some(backend) = w
            .backends
            .iter()
            .find(|(r, _)| r == to)
            .map(|(_, b)| b.clone())
        else {
            continue;
        };
        match migration_status(&[(to.to_owned(), backend)], Some(t.id()), now).await {
            Ok(list) => {
                for m in list.iter().filter(|m| m.overdue) {
                    overdue += 1;
                    tracing::warn!(
                        tenant = %m.tenant, id = %m.id, from = %m.from, to = %m.to,
                        overdue_secs = m.overdue_secs,
                        "migration overdue: its assurance window has passed and the old copies are still there; run `{}`",
                        m.finish_command
                    );
                }
            }
            Err(e) => {
                tracing::warn!(tenant = %t.id(), error = %e, "cannot read the migration journal")
            }
        }
    }
    metrics::gauge!(MIGRATIONS_OPEN).set(open as f64);
    metrics::gauge!(MIGRATIONS_OVERDUE).set(overdue as f64);
}

/// Runs [`check`] at start, after each successful reload and every
/// [`CHECK_EVERY`], until `stop` changes.
pub(crate) fn spawn(w: Watched, mut stop: watch::Receiver<bool>) {
    tokio::spawn(async move {
        loop {
            check(&w).await;
            tokio::select! {
                () = tokio::time::sleep(CHECK_EVERY) => {}
                () = w.reloaded.notified() => {}
                _ = stop.changed() => break,
            }
        }
    });
}
