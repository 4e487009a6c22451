//! Where the tenant's locality lives: the tenants file (edited in place) or
//! the PostgreSQL tenant directory (changed in one transaction, with a lease
//! per tenant migration).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use residency_directory::postgres::{
    begin_migration, connect_client, finish_migration, migrate, release_lease, renew_lease,
    renew_range, show, take_lease, Client, MigrationRange, PgError,
};
use residency_policy::{Policy, Tenant, TenantId, TenantRecord, Tenants};

use crate::error::{LeaseHeld, MigrateError};

/// Default time to live of a migration lease (renewed every third of it).
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(30);

/// Where the tenant's locality lives: what the migration reads its record
/// from, switches, and clears at the end.
#[derive(Debug, Clone)]
pub enum TenantSource {
    /// The tenants file the sidecar reads: `locality` and `migrating_from`
    /// are edited in place (comments kept, replaced atomically).
    File(PathBuf),
    /// The PostgreSQL tenant directory: the switch sets `locality` and
    /// `migrating_from` in one transaction, the finish sets `migrated_from`;
    /// one migration per tenant at a time through a lease.
    Directory(DirectorySource),
}

impl TenantSource {
    /// A short description for logs and messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            TenantSource::File(p) => format!("tenants file {}", p.display()),
            TenantSource::Directory(d) => format!("tenant directory {}", d.redacted_url()),
        }
    }
}

/// The PostgreSQL tenant directory as the migration's [`TenantSource`].
#[derive(Clone)]
pub struct DirectorySource {
    /// `postgresql://...`.
    pub url: String,
    /// The sidecars' `max_staleness`: a replica that missed the change
    /// notification serves its cached record at most this long, so the
    /// migration waits this long after the switch before it copies (and
    /// deletes), and no write lands in the old region after its last pass.
    pub max_staleness: Duration,
    /// Bound on connecting to the database.
    pub connect_timeout: Duration,
    /// How long the migration lease lasts unless renewed (renewed every
    /// third of it).
    pub lease_ttl: Duration,
    /// This migrator's name in the lease (host, process id, random suffix).
    pub holder: String,
}

impl std::fmt::Debug for DirectorySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectorySource")
            .field("url", &self.redacted_url())
            .field("max_staleness", &self.max_staleness)
            .field("connect_timeout", &self.connect_timeout)
            .field("lease_ttl", &self.lease_ttl)
            .field("holder", &self.holder)
            .finish()
    }
}

impl DirectorySource {
    /// The directory at `url` whose sidecars serve a cached record at most
    /// `max_staleness`; connect timeout 5 s, lease TTL 30 s, a holder name
    /// for this process ([`DirectorySource::default_holder`]).
    pub fn new(url: impl Into<String>, max_staleness: Duration) -> DirectorySource {
        DirectorySource {
            url: url.into(),
            max_staleness,
            connect_timeout: Duration::from_secs(5),
            lease_ttl: DEFAULT_LEASE_TTL,
            holder: DirectorySource::default_holder(),
        }
    }

    /// `<host>:<pid>:<random>`: unique per process, readable in a refusal.
    pub fn default_holder() -> String {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "unknown-host".to_owned());
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let salt = std::collections::hash_map::RandomState::new();
        let r = std::hash::BuildHasher::hash_one(&salt, nanos) & 0xffff_ffff;
        format!("{host}:{}:{r:08x}", std::process::id())
    }

    /// The URL without its user and password.
    pub(crate) fn redacted_url(&self) -> String {
        match self.url.rsplit_once('@') {
            Some((_, host)) => format!("postgresql://…@{host}"),
            None if self.url.contains("password") => "<redacted>".to_owned(),
            None => self.url.clone(),
        }
    }

    /// A connection with the schema up to date (the lease table included).
    pub(crate) async fn connect(&self) -> Result<Client, MigrateError> {
        let mut c = connect_client(&self.url, self.connect_timeout)
            .await
            .map_err(|e| self.error(e))?;
        migrate(&mut c).await.map_err(|e| self.error(e))?;
        Ok(c)
    }

    pub(crate) fn error(&self, e: PgError) -> MigrateError {
        match e {
            PgError::NotFound(id) => MigrateError::Config(format!(
                "unknown tenant {id:?} (not in the tenant directory {})",
                self.redacted_url()
            )),
            PgError::Invalid(m) => MigrateError::Config(m.join("; ")),
            e => MigrateError::Directory(format!("{}: {e}", self.redacted_url())),
        }
    }

    /// The tenant's record.
    pub(crate) async fn record(&self, id: &str) -> Result<TenantRecord, MigrateError> {
        let c = self.connect().await?;
        match show(&c, id).await.map_err(|e| self.error(e))? {
            Some(d) => Ok(d.record),
            None => Err(self.error(PgError::NotFound(id.to_owned()))),
        }
    }

    /// Sets `locality = to, migrating_from = from` in one transaction
    /// (nothing when the row already says so).
    pub(crate) async fn switch(
        &self,
        id: &str,
        policy: &Policy,
        from: &str,
        to: &str,
    ) -> Result<bool, MigrateError> {
        let mut c = self.connect().await?;
        let tx = c.transaction().await.map_err(|e| self.error(e.into()))?;
        let row = tx
            .query_opt(
                "SELECT locality, migrating_from FROM tenants WHERE id = $1 FOR UPDATE",
                &[&id],
            )
            .await
            .map_err(|e| self.error(e.into()))?
            .ok_or_else(|| self.error(PgError::NotFound(id.to_owned())))?;
        let (locality, migrating): (Option<String>, Option<String>) = (row.get(0), row.get(1));
        if locality.as_deref() == Some(to) && migrating.as_deref() == Some(from) {
            return Ok(false);
        }
        let started = begin_migration(&tx, policy, id, to)
            .await
            .map_err(|e| self.error(e))?;
        if started.from != from {
            // Changed since the plan: refuse rather than record another origin.
            return Err(MigrateError::Conflict(format!(
                "tenant {id:?} changed in the tenant directory since the plan (it now moves from {}, not {from}): nothing changed, run the command again",
                started.from
            )));
        }
        tx.commit().await.map_err(|e| self.error(e.into()))?;
        Ok(true)
    }

    /// Clears `migrating_from` and sets `migrated_from` (nothing when the
    /// row already shows the migration finished).
    pub(crate) async fn finish(&self, id: &str, to: &str) -> Result<(), MigrateError> {
        let c = self.connect().await?;
        let row = c
            .query_opt(
                "SELECT locality, migrating_from FROM tenants WHERE id = $1",
                &[&id],
            )
            .await
            .map_err(|e| self.error(e.into()))?
            .ok_or_else(|| self.error(PgError::NotFound(id.to_owned())))?;
        let (locality, migrating): (Option<String>, Option<String>) = (row.get(0), row.get(1));
        if locality.as_deref() != Some(to) {
            return Err(MigrateError::Conflict(format!(
                "tenant {id:?} has locality {} in the tenant directory, not {to}: the migrating_from of this migration is left as it is",
                locality.as_deref().unwrap_or("none")
            )));
        }
        if migrating.is_some() {
            finish_migration(&c, id).await.map_err(|e| self.error(e))?;
        }
        Ok(())
    }

    /// How long ago the tenant's row last changed, by the database's clock.
    pub(crate) async fn since_change(&self, id: &str) -> Result<Duration, MigrateError> {
        let c = self.connect().await?;
        let row = c
            .query_opt(
                "SELECT GREATEST(EXTRACT(EPOCH FROM (clock_timestamp() - updated_at)), 0)::float8 FROM tenants WHERE id = $1",
                &[&id],
            )
            .await
            .map_err(|e| self.error(e.into()))?
            .ok_or_else(|| self.error(PgError::NotFound(id.to_owned())))?;
        Ok(Duration::try_from_secs_f64(row.get(0)).unwrap_or(Duration::ZERO))
    }

    /// Waits until every replica has either seen the tenant's last change or
    /// dropped its cached record: `max_staleness` after the change.
    pub(crate) async fn wait_for_replicas(&self, id: &str) -> Result<(), MigrateError> {
        let since = self.since_change(id).await?;
        // A margin for the commit after `updated_at` was stamped.
        let wait = (self.max_staleness + Duration::from_millis(250)).saturating_sub(since);
        if wait.is_zero() {
            return Ok(());
        }
        tracing::info!(
            wait_secs = wait.as_secs_f64(),
            max_staleness_secs = self.max_staleness.as_secs_f64(),
            "waiting for the directory's max_staleness before copying: a sidecar replica that missed the change notification serves its cached record (the old locality) at most that long, so no write may land in the old region after the final copy pass"
        );
        tokio::time::sleep(wait).await;
        Ok(())
    }
}

/// The tenant as the directory has it, and as it is after the switch.
pub(crate) fn from_record(record: &TenantRecord, policy: &Policy) -> Result<Tenant, MigrateError> {
    record
        .validate(policy, TenantId::new(0))
        .map_err(|e| MigrateError::Config(e.join("; ")))
}

/// A directory of one tenant (what the placement rules need).
pub(crate) fn single(tenant: Tenant) -> Result<Tenants, MigrateError> {
    Tenants::from_tenants(vec![tenant]).map_err(MigrateError::Config)
}

/// A held migration lease: renewed in the background until released.
pub(crate) struct Lease {
    source: DirectorySource,
    tenant: String,
    client: Arc<Mutex<Arc<Client>>>,
    lost: tokio::sync::watch::Receiver<Option<String>>,
    renewer: tokio::task::JoinHandle<()>,
}

impl Lease {
    /// Takes the tenant's lease, or refuses with who holds it.
    pub(crate) async fn take(
        source: &DirectorySource,
        tenant: &str,
    ) -> Result<Lease, MigrateError> {
        let client = Arc::new(source.connect().await?);
        if let Some(h) = take_lease(&*client, tenant, &source.holder, source.lease_ttl)
            .await
            .map_err(|e| source.error(e))?
        {
            return Err(MigrateError::Leased(Box::new(LeaseHeld {
                tenant: h.tenant,
                holder: h.holder,
                expires_at: h.expires_at,
                expires_in_secs: h.expires_in_secs.ceil() as u64,
            })));
        }
        tracing::info!(tenant, holder = %source.holder, ttl_secs = source.lease_ttl.as_secs_f64(), "migration lease taken");
        let shared = Arc::new(Mutex::new(client));
        let (tx, rx) = tokio::sync::watch::channel(None);
        let renewer = tokio::spawn(renew(
            source.clone(),
            Leased::Tenant(tenant.to_owned()),
            shared.clone(),
            tx,
        ));
        Ok(Lease {
            source: source.clone(),
            tenant: tenant.to_owned(),
            client: shared,
            lost: rx,
            renewer,
        })
    }

    /// Completes when the lease is lost (with why).
    pub(crate) async fn lost(&mut self) -> String {
        lost(&mut self.lost).await
    }

    /// Stops renewing and deletes the lease.
    pub(crate) async fn release(self) {
        self.renewer.abort();
        let client = self.client.lock().ok().map(|c| c.clone());
        let mut done = false;
        if let Some(c) = client {
            done = release_lease(&*c, &self.tenant, &self.source.holder)
                .await
                .is_ok();
        }
        if !done {
            if let Ok(c) = self.source.connect().await {
                done = release_lease(&c, &self.tenant, &self.source.holder)
                    .await
                    .is_ok();
            }
        }
        if done {
            tracing::info!(tenant = %self.tenant, "migration lease released");
        } else {
            tracing::warn!(tenant = %self.tenant, "the migration lease could not be released: it expires within {:?}", self.source.lease_ttl);
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

/// A held lease on a key range of a migration (`migration_ranges`):
/// renewed in the background while its worker copies the range.
pub(crate) struct RangeLease {
    lost: tokio::sync::watch::Receiver<Option<String>>,
    renewer: tokio::task::JoinHandle<()>,
}

impl RangeLease {
    /// Starts renewing `range`, just claimed by `source.holder`.
    pub(crate) fn start(
        source: &DirectorySource,
        client: Arc<Client>,
        range: MigrationRange,
    ) -> RangeLease {
        let (tx, rx) = tokio::sync::watch::channel(None);
        let renewer = tokio::spawn(renew(
            source.clone(),
            Leased::Range(Box::new(range)),
            Arc::new(Mutex::new(client)),
            tx,
        ));
        RangeLease { lost: rx, renewer }
    }

    /// Completes when the lease is lost (with why).
    pub(crate) async fn lost(&mut self) -> String {
        lost(&mut self.lost).await
    }
}

impl Drop for RangeLease {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

async fn lost(rx: &mut tokio::sync::watch::Receiver<Option<String>>) -> String {
    loop {
        if let Some(why) = rx.borrow_and_update().clone() {
            return why;
        }
        if rx.changed().await.is_err() {
            return "the lease renewal stopped".to_owned();
        }
    }
}

/// What a renewer keeps leased.
enum Leased {
    /// The tenant's migration (`migration_leases`).
    Tenant(String),
    /// One key range of a migration (`migration_ranges`).
    Range(Box<MigrationRange>),
}

impl std::fmt::Display for Leased {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Leased::Tenant(t) => write!(f, "the migration lease of tenant {t}"),
            Leased::Range(r) => write!(
                f,
                "the lease on range {} of {} (tenant {}, migration {})",
                r.range_no, r.region, r.tenant, r.migration_id
            ),
        }
    }
}

/// Renews the lease every third of its TTL; reports it lost when another
/// holder took it, or when it could not be renewed before it expired.
async fn renew(
    source: DirectorySource,
    what: Leased,
    client: Arc<Mutex<Arc<Client>>>,
    lost: tokio::sync::watch::Sender<Option<String>>,
) {
    let ttl = source.lease_ttl;
    let mut valid_until = Instant::now() + ttl;
    loop {
        tokio::time::sleep(ttl / 3).await;
        let attempt = Instant::now();
        let c = client.lock().ok().map(|c| c.clone());
        let result = match (c, &what) {
            (Some(c), Leased::Tenant(tenant)) if !c.is_closed() => {
                renew_lease(&*c, tenant, &source.holder, ttl).await
            }
            (Some(c), Leased::Range(r)) if !c.is_closed() => {
                renew_range(&*c, r, &source.holder, ttl).await
            }
            _ => Err(PgError::Connect("connection closed".to_owned())),
        };
        match result {
            Ok(true) => valid_until = attempt + ttl,
            Ok(false) => {
                let _ = lost.send(Some(format!(
                    "{what} was taken over by another migrator (it expired before this one renewed it)"
                )));
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot renew {what}: reconnecting");
                if let Ok(c) = source.connect().await {
                    if let Ok(mut slot) = client.lock() {
                        *slot = Arc::new(c);
                    }
                }
            }
        }
        if Instant::now() >= valid_until {
            let _ = lost.send(Some(format!(
                "{what} could not be renewed before it expired: another migrator may take it over"
            )));
            return;
        }
    }
}
