//! The PostgreSQL directory fails closed through an outage (its own cluster:
//! stopping it would disturb other tests): a cached tenant answers until
//! `max_staleness` has passed since PostgreSQL last confirmed it, then
//! `Unavailable`; an uncached one is `Unavailable` at once; after a restart
//! the same directory answers again.

#![cfg(feature = "postgres")]

mod support;

use std::time::{Duration, Instant};

use residency_directory::{Directory, DirectoryError, DirectoryKey};
use residency_testkit::PostgresCluster;
use support::*;

#[tokio::test]
async fn an_outage_fails_closed_and_a_restart_recovers() {
    let pg = PostgresCluster::start().expect("start PostgreSQL");
    let url = database(&pg, "outage");
    let key = DirectoryKey::generate();
    let policy = policy();
    let (dir, _) = imported(&url, &key).await;
    let acme = within("tenant", 5, dir.tenant(&policy, "acme"))
        .await
        .unwrap();
    assert!(acme.is_some());
    assert!(within("key", 5, dir.access_key("ACMEEXAMPLEKEY"))
        .await
        .unwrap()
        .is_some());

    cache_tenant(&dir, &policy, "acme").await;
    // Heartbeats confirm what is cached: past max_staleness (2 s) since the
    // fetch, with no change, the tenant is still answered from the cache.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        dir.tenant(&policy, "acme").is_ready(),
        "confirmed by heartbeats"
    );
    let health = dir.health();
    assert!(health.available, "{health:?}");
    assert!(
        health.staleness.unwrap() < Duration::from_secs(2),
        "{health:?}"
    );
    pg.stop();
    let stopped = Instant::now();
    // Within the bound, the cached tenant still answers (at once).
    let cached = dir.tenant(&policy, "acme").now().expect("cached");
    assert_eq!(cached.unwrap(), acme);
    // An uncached tenant: unavailable at once (bounded by connect_timeout).
    let started = Instant::now();
    let uncached = within("uncached", 5, dir.tenant(&policy, "globex")).await;
    assert!(
        matches!(uncached, Err(DirectoryError::Unavailable(_))),
        "{uncached:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(
        within("uncached key", 5, dir.access_key("GLOBEXEXAMPLEKEY")).await,
        Err(DirectoryError::Unavailable(_))
    ));
    // Past max_staleness (2 s): unavailable, never the stale value.
    let refused = eventually("the cached tenant refused", 8, || async {
        dir.tenant(&policy, "acme").await.err()
    })
    .await;
    assert!(
        matches!(refused, DirectoryError::Unavailable(_)),
        "{refused:?}"
    );
    assert!(
        stopped.elapsed() >= Duration::from_millis(1400),
        "served until the bound: {:?}",
        stopped.elapsed()
    );
    let health = dir.health();
    assert!(!health.available, "{health:?}");
    assert!(health.detail.is_some());
    assert!(health.staleness.unwrap() >= Duration::from_secs(1));

    // Back: the same directory answers again.
    pg.restart().expect("restart PostgreSQL");
    eventually("answers after the restart", 15, || async {
        dir.tenant(&policy, "acme").await.ok().flatten()
    })
    .await;
    eventually("uncached answers after the restart", 10, || async {
        dir.tenant(&policy, "globex").await.ok().flatten()
    })
    .await;
    eventually("healthy again", 10, || async {
        dir.health().available.then_some(())
    })
    .await;
}
