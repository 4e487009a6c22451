//! What the PostgreSQL directory's tests share: the example policy and
//! tenants, a database per test, bounded waits.

#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use residency_directory::postgres::{connect_client, import, ImportReport, PgOptions};
use residency_directory::{DirectoryKey, PgDirectory};
use residency_policy::{Policy, SecretRef, Tenants};
use residency_testkit::PostgresCluster;

/// The example policy.
pub fn policy() -> Policy {
    Policy::from_toml(
        include_str!("../../../../config/hosting-policy.toml"),
        "hosting-policy.toml",
    )
    .unwrap()
}

/// The example tenants: tenant keys, a service key, a strict tenant, features.
pub const TENANTS: &str = include_str!("../../../../config/tenants.example.toml");

/// The example tenants parsed under `policy`.
pub fn tenants(policy: &Policy) -> Tenants {
    Tenants::from_toml(TENANTS, "tenants.example.toml", policy).unwrap()
}

/// Secrets written in the file (the only kind the example has).
pub fn resolve(s: &SecretRef) -> Result<String, String> {
    match s {
        SecretRef::Inline(v) => Ok(v.clone()),
        other => Err(format!("{other:?} is not read in tests")),
    }
}

/// A fresh database on `pg` (named after the test) and its URL.
pub fn database(pg: &PostgresCluster, name: &str) -> String {
    pg.create_database(name).expect("create database");
    pg.url(name)
}

/// Options for tests: short bounds.
pub fn options(url: &str, key: &DirectoryKey) -> PgOptions {
    PgOptions {
        max_staleness: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(1),
        pool_size: 4,
        ..PgOptions::new(url, key.clone())
    }
}

/// A bounded step of a test.
pub async fn within<T>(what: &str, secs: u64, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {secs} s"))
}

/// Polls `check` every 20 ms until it answers `Some`, for at most `secs`.
pub async fn eventually<T, F: Future<Output = Option<T>>>(
    what: &str,
    secs: u64,
    mut check: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = within(what, secs, check()).await {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {secs} s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A directory on `url` with the example tenants imported under `key`.
pub async fn imported(url: &str, key: &DirectoryKey) -> (Arc<PgDirectory>, ImportReport) {
    let dir = within("connect", 10, PgDirectory::connect(options(url, key)))
        .await
        .expect("connect the directory");
    let policy = policy();
    let mut client = connect_client(url, Duration::from_secs(5)).await.unwrap();
    let report = within(
        "import",
        10,
        import(&mut client, &tenants(&policy), &policy, resolve, key),
    )
    .await
    .expect("import");
    (dir, report)
}

/// Looks `id` up until the directory answers it from its cache (the import's
/// own notifications may still be arriving and dropping fresh entries).
pub async fn cache_tenant(dir: &PgDirectory, policy: &Policy, id: &str) {
    use residency_directory::Directory;
    eventually("the tenant cached", 5, || async {
        let _ = dir.tenant(policy, id).await;
        dir.tenant(policy, id).is_ready().then_some(())
    })
    .await;
}

/// As [`cache_tenant`], by bucket.
pub async fn cache_bucket(dir: &PgDirectory, policy: &Policy, bucket: &str) {
    use residency_directory::Directory;
    eventually("the bucket cached", 5, || async {
        let _ = dir.tenant_by_bucket(policy, bucket).await;
        dir.tenant_by_bucket(policy, bucket)
            .is_ready()
            .then_some(())
    })
    .await;
}

/// As [`cache_tenant`], for an access key.
pub async fn cache_key(dir: &PgDirectory, access_key: &str) {
    use residency_directory::Directory;
    eventually("the key cached", 5, || async {
        let _ = dir.access_key(access_key).await;
        dir.access_key(access_key).is_ready().then_some(())
    })
    .await;
}
