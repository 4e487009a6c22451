//! The PostgreSQL directory (production): tenants, virtual buckets and keys in
//! PostgreSQL, a bounded cache in each replica kept current by
//! `LISTEN/NOTIFY`, secrets sealed under a key-encryption key.
//!
//! Behind the cargo feature `postgres`.
//!
//! # Consistency
//! Every write to the directory's tables fires `pg_notify('residency_directory',
//! ...)` (triggers, whoever writes): each [`PgDirectory`] drops what changed from
//! its cache at once. A dedicated connection listens (it must reach PostgreSQL
//! directly or through a session-pooling proxy: `LISTEN` does not work through a
//! transaction-pooling proxy such as pgbouncer in `pool_mode = transaction`) and
//! heartbeats every `min(max_staleness / 4, 5 s)` with a `NOTIFY` to itself
//! (notifications arrive in commit order: when it comes back, every change
//! committed before it was sent has been dropped from the cache). A cached entry counts as
//! confirmed at the later of its fetch and the last heartbeat, if the listening
//! connection has been up since the entry was fetched; an entry not confirmed
//! for `max_staleness` is fetched again, and when that fails the answer is
//! [`DirectoryError::Unavailable`], never the stale value. When the listening
//! connection comes back it empties the cache, so a change made while it was
//! down is enforced.
//!
//! # Secrets
//! SigV4 needs each secret itself: it is stored sealed (XChaCha20-Poly1305, the
//! access key as associated data) under a [`DirectoryKey`]; the row names the
//! key's id. A directory opened with several keys opens rows under any of them,
//! so lookups keep working while [`rotate_key`] re-seals.

mod admin;
mod buckets;
mod key;
mod lease;
mod ranges;
mod shared;

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use futures::stream::{self, BoxStream, StreamExt};
use moka::sync::Cache;
use residency_policy::{Policy, Tenant, TenantId, TenantRecord};
use tokio_postgres::types::ToSql;
use tokio_postgres::{AsyncMessage, NoTls, Row};

use crate::{ActsFor, Answer, Directory, DirectoryError, DirectoryHealth, KeyGrant, Lookup};
use shared::{listen, BucketEntry, KeyEntry, Shared, TenantEntry};

pub use admin::{
    begin_migration, export, finish_migration, import, rotate_key, secret_env_name, set_features,
    show, FeatureChange, ImportReport, MigrationStart, TenantDetails,
};
pub use key::{open_with, DirectoryKey, KeyError, DIRECTORY_KEY_ENV, NONCE_LEN};
pub use lease::{release_lease, renew_lease, take_lease, LeaseHolder};
pub use ranges::{
    claim_range, finish_range, last_range, list_ranges, plan_range, range_counts, ranged_migration,
    release_range, renew_range, MigrationRange, RangeCounts,
};
/// The PostgreSQL client the admin functions take.
pub use tokio_postgres::Client;

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// The channel the directory's triggers notify on.
pub const CHANNEL: &str = "residency_directory";
/// `application_name` of the pool's connections.
pub const POOL_APPLICATION_NAME: &str = "residency-directory";
/// `application_name` of the listening connection.
pub const LISTENER_APPLICATION_NAME: &str = "residency-directory-listener";

/// Counter: lookups answered from the cache.
pub const METRIC_CACHE_HITS: &str = "residency_directory_cache_hits_total";
/// Counter: lookups that asked PostgreSQL.
pub const METRIC_CACHE_MISSES: &str = "residency_directory_cache_misses_total";
/// Counter: lookups that failed (database unreachable, a secret that does not open).
pub const METRIC_ERRORS: &str = "residency_directory_errors_total";
/// Gauge: seconds since PostgreSQL last confirmed the cache.
pub const METRIC_STALENESS: &str = "residency_directory_staleness_seconds";
/// Counter: tenant rows refused because they do not validate against the policy.
pub const METRIC_REFUSED: &str = "residency_directory_refused_total";

/// Why the PostgreSQL directory (or one of its admin functions) failed.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// A database error.
    #[error("PostgreSQL: {0}")]
    Db(#[from] tokio_postgres::Error),
    /// Connecting, or the pool.
    #[error("cannot reach the tenant directory: {0}")]
    Connect(String),
    /// The schema migration failed.
    #[error("cannot migrate the tenant directory's schema: {0}")]
    Migrate(String),
    /// A key-encryption key problem.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// What was asked is refused, every reason one sentence.
    #[error("{}", .0.join("; "))]
    Invalid(Vec<String>),
    /// No such tenant.
    #[error("no tenant {0:?} in the directory")]
    NotFound(String),
}

/// How to open a [`PgDirectory`].
#[derive(Clone)]
pub struct PgOptions {
    /// `postgresql://...` (or a libpq key=value string).
    pub url: String,
    /// The key-encryption keys: the current one first, then any previous
    /// ones still accepted while a rotation runs.
    pub keys: Vec<DirectoryKey>,
    /// No entry is served longer than this after PostgreSQL last confirmed it.
    pub max_staleness: Duration,
    /// Entries per cache (tenants by id, buckets, access keys).
    pub cache_capacity: u64,
    /// An entry's time to live, whatever the notifications say.
    pub ttl: Duration,
    /// Connections in the pool (the listener has one more of its own).
    pub pool_size: usize,
    /// Bound on connecting (and on waiting for a pooled connection); a lookup
    /// that must ask the database answers within twice this.
    pub connect_timeout: Duration,
}

impl fmt::Debug for PgOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may hold a password: print its host part only.
        let url = match self.url.rsplit_once('@') {
            Some((_, host)) => format!("postgresql://…@{host}"),
            None if self.url.contains("password") => "<redacted>".to_owned(),
            None => self.url.clone(),
        };
        f.debug_struct("PgOptions")
            .field("url", &url)
            .field("keys", &self.keys)
            .field("max_staleness", &self.max_staleness)
            .field("cache_capacity", &self.cache_capacity)
            .field("ttl", &self.ttl)
            .field("pool_size", &self.pool_size)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

impl PgOptions {
    /// Defaults for `url` sealed under `key`: `max_staleness` 60 s, 10,000
    /// entries, TTL 10 min, 8 connections, connect timeout 5 s.
    pub fn new(url: impl Into<String>, key: DirectoryKey) -> PgOptions {
        PgOptions {
            url: url.into(),
            keys: vec![key],
            max_staleness: Duration::from_secs(60),
            cache_capacity: 10_000,
            ttl: Duration::from_secs(600),
            pool_size: 8,
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// Runs the directory's schema migrations on `client` (idempotent; two
/// replicas starting at once take turns through an advisory lock).
///
/// # Errors
/// A database error or a migration that fails.
pub async fn migrate(client: &mut tokio_postgres::Client) -> Result<(), PgError> {
    const LOCK: i64 = 0x7265_7369_6465_6e63; // "residenc"
    client
        .execute("SELECT pg_advisory_lock($1)", &[&LOCK])
        .await?;
    let result = embedded::migrations::runner()
        .set_migration_table_name("residency_directory_schema_history")
        .run_async(client)
        .await;
    let _ = client
        .execute("SELECT pg_advisory_unlock($1)", &[&LOCK])
        .await;
    result
        .map(|_| ())
        .map_err(|e| PgError::Migrate(e.to_string()))
}

/// Connects once, outside the pool (the CLI's admin functions take a client).
///
/// # Errors
/// The URL does not parse or the server does not answer within `timeout`.
pub async fn connect_client(
    url: &str,
    timeout: Duration,
) -> Result<tokio_postgres::Client, PgError> {
    let mut config: tokio_postgres::Config = url
        .parse()
        .map_err(|e: tokio_postgres::Error| PgError::Connect(e.to_string()))?;
    config.connect_timeout(timeout);
    if config.get_application_name().is_none() {
        config.application_name(POOL_APPLICATION_NAME);
    }
    let (client, conn) = tokio::time::timeout(timeout, config.connect(NoTls))
        .await
        .map_err(|_| PgError::Connect(format!("no answer within {timeout:?}")))??;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "tenant directory connection closed");
        }
    });
    Ok(client)
}

/// The PostgreSQL tenant directory. See the module documentation.
pub struct PgDirectory {
    shared: Arc<Shared>,
    pool: Pool,
    keys: Vec<DirectoryKey>,
    fetch_timeout: Duration,
    listener: tokio::task::AbortHandle,
}

impl fmt::Debug for PgDirectory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgDirectory")
            .field("keys", &self.keys)
            .field("health", &self.health())
            .finish_non_exhaustive()
    }
}

impl Drop for PgDirectory {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

const TENANT_COLUMNS: &str =
    "id, handle, locality, strict, features, bucket, migrating_from, migrated_from";

/// A `tenants` row (selected with [`TENANT_COLUMNS`]) as a record and its handle.
fn tenant_row(row: &Row) -> (TenantRecord, u32) {
    let record = TenantRecord {
        id: row.get(0),
        locality: row.get(2),
        strict: row.get(3),
        features: row.get(4),
        bucket: Some(row.get(5)),
        migrating_from: row.get(6),
        migrated_from: row.get(7),
    };
    (record, row.get::<_, i32>(1) as u32)
}

impl PgDirectory {
    /// Migrates the schema, opens the pool and starts the listening
    /// connection (it must be called inside a Tokio runtime).
    ///
    /// # Errors
    /// The URL does not parse, the database does not answer within
    /// `connect_timeout`, no key is given, or the migration fails.
    pub async fn connect(options: PgOptions) -> Result<Arc<PgDirectory>, PgError> {
        if options.keys.is_empty() {
            return Err(KeyError::Missing.into());
        }
        let timeout = options.connect_timeout;
        let mut config: tokio_postgres::Config = options
            .url
            .parse()
            .map_err(|e: tokio_postgres::Error| PgError::Connect(e.to_string()))?;
        config.connect_timeout(timeout);
        config.application_name(POOL_APPLICATION_NAME);

        let mut client = connect_client(&options.url, timeout).await?;
        migrate(&mut client).await?;
        drop(client);

        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(timeout))
            .create_timeout(Some(timeout))
            .recycle_timeout(Some(timeout))
            .build()
            .map_err(|e| PgError::Connect(e.to_string()))?;

        fn cache<V: Clone + Send + Sync + 'static>(cap: u64, ttl: Duration) -> Cache<String, V> {
            Cache::builder().max_capacity(cap).time_to_live(ttl).build()
        }
        let shared = Arc::new(Shared {
            tenants: cache(options.cache_capacity, options.ttl),
            buckets: cache(options.cache_capacity, options.ttl),
            created: cache(options.cache_capacity, options.ttl),
            keys: cache(options.cache_capacity, options.ttl),
            epoch: AtomicU64::new(0),
            changes: AtomicU64::new(0),
            heartbeat: AtomicU64::new(0),
            base: Instant::now(),
            up: AtomicBool::new(false),
            last_error: Mutex::new(Some("the notification connection is starting".to_owned())),
            max_staleness: options.max_staleness,
        });
        let mut listen_config = config;
        listen_config.application_name(LISTENER_APPLICATION_NAME);
        let interval = (options.max_staleness / 4)
            .min(Duration::from_secs(5))
            .max(Duration::from_millis(10));
        let listener = tokio::spawn(listen(shared.clone(), listen_config, interval, timeout));
        // Wait (boundedly) for the first LISTEN, so that changes from now on
        // are notified.
        let deadline = Instant::now() + timeout;
        while !shared.up.load(Ordering::Acquire) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(Arc::new(PgDirectory {
            shared,
            pool,
            keys: options.keys,
            fetch_timeout: timeout * 2,
            listener: listener.abort_handle(),
        }))
    }

    /// The connection pool (for admin functions run by the same process).
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    fn unavailable(&self, e: impl fmt::Display) -> DirectoryError {
        metrics::counter!(METRIC_ERRORS).increment(1);
        let msg = e.to_string();
        tracing::warn!(error = %msg, "tenant directory lookup failed");
        DirectoryError::Unavailable(msg)
    }

    /// A connection from the pool, or why there is none.
    async fn pooled(&self) -> Result<deadpool_postgres::Object, String> {
        self.pool
            .get()
            .await
            .map_err(|e| format!("cannot reach PostgreSQL: {e}"))
    }

    async fn query_opt(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, DirectoryError> {
        let ask = async {
            let client = self.pooled().await?;
            let statement = client
                .prepare_cached(sql)
                .await
                .map_err(|e| format!("PostgreSQL: {e}"))?;
            client
                .query_opt(&statement, params)
                .await
                .map_err(|e| format!("PostgreSQL: {e}"))
        };
        match tokio::time::timeout(self.fetch_timeout, ask).await {
            Ok(Ok(row)) => Ok(row),
            Ok(Err(e)) => Err(self.unavailable(e)),
            Err(_) => Err(self.unavailable(format!(
                "PostgreSQL did not answer within {:?}",
                self.fetch_timeout
            ))),
        }
    }

    /// Caches `entry` under `id` (and its bucket), unless a change was
    /// notified since `changes` was read (then what was cached is dropped).
    fn cache_tenant(&self, entry: &Arc<TenantEntry>, bucket: Option<&str>, changes: u64) {
        let s = &self.shared;
        s.tenants.insert(entry.id.clone(), entry.clone());
        let bucket = bucket
            .map(str::to_owned)
            .or_else(|| entry.record.as_ref().and_then(|(r, _)| r.bucket.clone()));
        if let Some(b) = &bucket {
            let tenant = entry.record.as_ref().map(|_| Arc::from(entry.id.as_str()));
            s.buckets.insert(
                b.clone(),
                BucketEntry {
                    tenant,
                    stamp: entry.stamp,
                },
            );
        }
        if s.changes.load(Ordering::Acquire) != changes {
            s.tenants.invalidate(&entry.id);
            if let Some(b) = &bucket {
                s.buckets.invalidate(b);
            }
        }
    }

    async fn fetch_tenant(&self, policy: &Policy, id: &str) -> Answer<Arc<Tenant>> {
        metrics::counter!(METRIC_CACHE_MISSES).increment(1);
        let changes = self.shared.changes.load(Ordering::Acquire);
        let stamp = self.shared.stamp();
        let sql = format!("SELECT {TENANT_COLUMNS} FROM tenants WHERE id = $1");
        let row = self.query_opt(&sql, &[&id]).await?;
        let entry = Arc::new(TenantEntry::build(
            id.to_owned(),
            row.as_ref().map(tenant_row),
            policy,
            stamp,
        ));
        self.cache_tenant(&entry, None, changes);
        entry.answer()
    }

    async fn fetch_by_bucket(&self, policy: &Policy, bucket: &str) -> Answer<Arc<Tenant>> {
        metrics::counter!(METRIC_CACHE_MISSES).increment(1);
        let changes = self.shared.changes.load(Ordering::Acquire);
        let stamp = self.shared.stamp();
        let sql = format!("SELECT {TENANT_COLUMNS} FROM tenants WHERE bucket = $1");
        let Some(row) = self.query_opt(&sql, &[&bucket]).await? else {
            let s = &self.shared;
            s.buckets.insert(
                bucket.to_owned(),
                BucketEntry {
                    tenant: None,
                    stamp,
                },
            );
            if s.changes.load(Ordering::Acquire) != changes {
                s.buckets.invalidate(bucket);
            }
            return Ok(None);
        };
        let (record, handle) = tenant_row(&row);
        let entry = Arc::new(TenantEntry::build(
            record.id.clone(),
            Some((record, handle)),
            policy,
            stamp,
        ));
        self.cache_tenant(&entry, Some(bucket), changes);
        entry.answer()
    }

    async fn fetch_key(&self, access_key: &str) -> Answer<Arc<KeyGrant>> {
        metrics::counter!(METRIC_CACHE_MISSES).increment(1);
        let changes = self.shared.changes.load(Ordering::Acquire);
        let stamp = self.shared.stamp();
        let row = self
            .query_opt(
                "SELECT k.tenant_id, k.secret_nonce, k.secret_sealed, k.kek_id, \
                 ARRAY(SELECT s.tenant_id FROM service_key_tenants s \
                       WHERE s.access_key = k.access_key ORDER BY s.tenant_id) \
                 FROM keys k WHERE k.access_key = $1",
                &[&access_key],
            )
            .await?;
        let grant = match row {
            None => None,
            Some(row) => {
                let tenant: Option<String> = row.get(0);
                let nonce: &[u8] = row.get(1);
                let sealed: &[u8] = row.get(2);
                let kek_id: &str = row.get(3);
                let secret = open_with(&self.keys, access_key, kek_id, nonce, sealed)
                    .map_err(|e| self.unavailable(e))?;
                let acts_for = match tenant {
                    Some(t) => ActsFor::Tenant(t),
                    None => ActsFor::Tenants(row.get(4)),
                };
                Some(Arc::new(KeyGrant::new(access_key, secret, acts_for)))
            }
        };
        let s = &self.shared;
        s.keys.insert(
            access_key.to_owned(),
            KeyEntry {
                grant: grant.clone(),
                stamp,
            },
        );
        if s.changes.load(Ordering::Acquire) != changes {
            s.keys.invalidate(access_key);
        }
        Ok(grant)
    }

    /// The cached tenant `id` if it may be served under `policy`, validated
    /// again (without asking the database) when the policy changed.
    fn cached_tenant(&self, policy: &Policy, id: &str) -> Option<Arc<TenantEntry>> {
        let e = self.shared.tenants.get(id)?;
        if !self.shared.fresh(&e.stamp) {
            return None;
        }
        if e.generation == policy.generation() {
            return Some(e);
        }
        let again = Arc::new(TenantEntry::build(
            e.id.clone(),
            e.record.clone(),
            policy,
            e.stamp,
        ));
        self.shared.tenants.insert(e.id.clone(), again.clone());
        Some(again)
    }

    fn hit<'a, T>(answer: Answer<T>) -> Lookup<'a, T> {
        metrics::counter!(METRIC_CACHE_HITS).increment(1);
        Lookup::ready(answer)
    }
}

impl Directory for PgDirectory {
    fn tenant<'a>(&'a self, policy: &'a Policy, id: &'a str) -> Lookup<'a, Arc<Tenant>> {
        if let Some(e) = self.cached_tenant(policy, id) {
            return Self::hit(e.answer());
        }
        Lookup::pending(self.fetch_tenant(policy, id))
    }

    fn tenant_by_bucket<'a>(
        &'a self,
        policy: &'a Policy,
        bucket: &'a str,
    ) -> Lookup<'a, Arc<Tenant>> {
        if let Some(b) = self.shared.buckets.get(bucket) {
            if self.shared.fresh(&b.stamp) {
                match &b.tenant {
                    None => return Self::hit(Ok(None)),
                    Some(id) => {
                        if let Some(e) = self.cached_tenant(policy, id) {
                            let owns = e
                                .record
                                .as_ref()
                                .is_some_and(|(r, _)| r.bucket.as_deref() == Some(bucket));
                            if owns {
                                return Self::hit(e.answer());
                            }
                        }
                    }
                }
            }
        }
        Lookup::pending(self.fetch_by_bucket(policy, bucket))
    }

    fn access_key<'a>(&'a self, access_key: &'a str) -> Lookup<'a, Arc<KeyGrant>> {
        if let Some(k) = self.shared.keys.get(access_key) {
            if self.shared.fresh(&k.stamp) {
                return Self::hit(Ok(k.grant));
            }
        }
        Lookup::pending(self.fetch_key(access_key))
    }

    fn tenants<'a>(
        &'a self,
        policy: &'a Policy,
    ) -> BoxStream<'a, Result<Arc<Tenant>, DirectoryError>> {
        self.rows(policy, "")
    }

    fn migrating<'a>(
        &'a self,
        policy: &'a Policy,
    ) -> BoxStream<'a, Result<Arc<Tenant>, DirectoryError>> {
        self.rows(policy, "WHERE migrating_from IS NOT NULL")
    }

    fn health(&self) -> DirectoryHealth {
        self.health_now()
    }

    fn bucket<'a>(&'a self, name: &'a str) -> Lookup<'a, Arc<crate::BucketRecord>> {
        self.bucket_lookup(name)
    }

    fn buckets_of<'a>(
        &'a self,
        tenant: &'a str,
    ) -> futures::future::BoxFuture<'a, Result<Vec<crate::BucketRecord>, DirectoryError>> {
        self.buckets_of_tenant(tenant)
    }

    fn create_bucket(
        &self,
        record: crate::BucketRecord,
    ) -> futures::future::BoxFuture<'_, Result<(), crate::BucketError>> {
        self.create_bucket_row(record)
    }

    fn delete_bucket<'a>(
        &'a self,
        name: &'a str,
        tenant: &'a str,
    ) -> futures::future::BoxFuture<'a, Result<(), crate::BucketError>> {
        self.delete_bucket_row(name, tenant)
    }

    fn set_bucket_cors<'a>(
        &'a self,
        name: &'a str,
        tenant: &'a str,
        cors: Option<String>,
    ) -> futures::future::BoxFuture<'a, Result<(), crate::BucketError>> {
        self.set_bucket_cors_row(name, tenant, cors)
    }
}

impl PgDirectory {
    /// Every tenant row matching `filter` (an SQL `WHERE` clause or empty),
    /// by id, validated against `policy`.
    fn rows<'a>(
        &'a self,
        policy: &'a Policy,
        filter: &'static str,
    ) -> BoxStream<'a, Result<Arc<Tenant>, DirectoryError>> {
        let rows = async move {
            let ask = async {
                let client = self.pooled().await?;
                client
                    .query_raw(
                        &format!("SELECT {TENANT_COLUMNS} FROM tenants {filter} ORDER BY id"),
                        std::iter::empty::<String>(),
                    )
                    .await
                    .map_err(|e| format!("PostgreSQL: {e}"))
            };
            match tokio::time::timeout(self.fetch_timeout, ask).await {
                Ok(Ok(rows)) => Ok(rows),
                Ok(Err(e)) => Err(self.unavailable(e)),
                Err(_) => Err(self.unavailable("PostgreSQL did not answer in time")),
            }
        };
        stream::once(rows)
            .map(move |r| match r {
                Ok(rows) => rows
                    .map(move |row| match row {
                        Ok(row) => {
                            let (record, handle) = tenant_row(&row);
                            match record.validate(policy, TenantId::new(handle)) {
                                Ok(t) => Ok(Arc::new(t)),
                                Err(reasons) => {
                                    tracing::warn!(tenant = %record.id, reasons = %reasons.join("; "), "tenant directory row refused: it does not validate against the policy");
                                    metrics::counter!(METRIC_REFUSED).increment(1);
                                    Err(DirectoryError::Refused {
                                        tenant: record.id,
                                        reasons,
                                    })
                                }
                            }
                        }
                        Err(e) => Err(self.unavailable(format!("PostgreSQL: {e}"))),
                    })
                    .boxed(),
                Err(e) => stream::iter([Err(e)]).boxed(),
            })
            .flatten()
            .boxed()
    }

    /// The directory's state now (see [`Directory::health`]).
    fn health_now(&self) -> DirectoryHealth {
        let s = &self.shared;
        let up = s.up.load(Ordering::Acquire);
        let never = s.heartbeat.load(Ordering::Acquire) == 0;
        let staleness = (!never).then(|| s.staleness());
        if let Some(st) = staleness {
            metrics::gauge!(METRIC_STALENESS).set(st.as_secs_f64());
        }
        DirectoryHealth {
            source: "postgresql",
            available: up,
            staleness,
            detail: if up {
                None
            } else {
                s.last_error
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone()
                    .or_else(|| Some("the notification connection is down".to_owned()))
            },
        }
    }
}
