//! `residency migrate` with the PostgreSQL tenant directory (issue 16, items
//! 4-6), between the real Garage pair and a real PostgreSQL (one server for
//! this binary, a database per test):
//!
//! - the switch sets `locality = to, migrating_from = from` in one
//!   transaction, the migration waits `max_staleness` before copying, the
//!   finish sets `migrated_from`; the objects end in the new region;
//! - two migrators for one tenant started at once: exactly one copies, the
//!   other is refused naming the lease's holder (the CLI: exit 3, `--json`);
//! - a lease whose holder died (an expired row) is taken over.

mod support;

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use residency_directory::postgres::{connect_client, migrate, Client};
use residency_migrate::{
    DirectorySource, FaultAction, FaultPoint, MigrateError, MigrationOptions, Migrator, Phase,
    ProgressMode, TenantSource,
};
use residency_testkit::PostgresCluster;
use support::*;

static PG: LazyLock<PostgresCluster> =
    LazyLock::new(|| PostgresCluster::start().expect("start PostgreSQL"));

/// The sidecars' `max_staleness` in these tests.
const STALENESS: Duration = Duration::from_millis(1500);
/// The lease's time to live in these tests (shorter than a run: a run that
/// ends well renewed it).
const LEASE_TTL: Duration = Duration::from_secs(1);

/// A fresh database with the directory's schema and `tenant` (no locality:
/// it lives in us, the policy's default region).
async fn directory(name: &str, tenant: &str) -> (String, Client) {
    PG.create_database(name).expect("create database");
    let url = PG.url(name);
    let mut c = connect_client(&url, Duration::from_secs(10))
        .await
        .expect("connect");
    migrate(&mut c).await.expect("schema");
    c.execute(
        "INSERT INTO tenants (id, bucket) VALUES ($1, $1)",
        &[&tenant],
    )
    .await
    .expect("insert tenant");
    (url, c)
}

fn source(url: &str, holder: &str) -> DirectorySource {
    let mut s = DirectorySource::new(url, STALENESS);
    s.lease_ttl = LEASE_TTL;
    s.holder = holder.to_owned();
    s
}

fn opts(tenant: &str, assurance: Option<Duration>) -> MigrationOptions {
    let mut o = MigrationOptions::new(tenant, "eu");
    o.parallel = 4;
    o.assurance = assurance;
    o.progress = ProgressMode::Quiet;
    o
}

fn migrator(env: &Env, url: &str, holder: &str, o: MigrationOptions) -> Migrator {
    Migrator::with_source(
        env.policy.clone(),
        TenantSource::Directory(source(url, holder)),
        env.backends.clone(),
        o,
    )
}

/// (locality, migrating_from, migrated_from) of the tenant's row.
async fn row(c: &Client, tenant: &str) -> (Option<String>, Option<String>, Option<String>) {
    let r = c
        .query_one(
            "SELECT locality, migrating_from, migrated_from FROM tenants WHERE id = $1",
            &[&tenant],
        )
        .await
        .expect("tenant row");
    (r.get(0), r.get(1), r.get(2))
}

/// Holders of the tenant's lease rows.
async fn leases(c: &Client, tenant: &str) -> Vec<String> {
    c.query(
        "SELECT holder FROM migration_leases WHERE tenant_id = $1",
        &[&tenant],
    )
    .await
    .expect("leases")
    .iter()
    .map(|r| r.get(0))
    .collect()
}

/// Objects of the corpus the policy moves (tickets, users, attachments,
/// explicitly categorised files).
fn moving_corpus(n: usize) -> Vec<Obj> {
    corpus(n, &[]).into_iter().filter(|o| o.moves).collect()
}

fn some(s: &str) -> Option<String> {
    Some(s.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_tenant_switches_in_one_transaction_waits_copies_and_finishes() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        const T: &str = "dirswitch";
        let env = Env::new("[[tenants]]\nid = \"unrelated\"\n").await;
        let (url, c) = directory("switch_and_finish", T).await;
        let objs = moving_corpus(30);
        let us = env.backend("us");
        let eu = env.backend("eu");
        seed(&us, T, &objs).await;

        // Stopped right after the switch: the row shows it, nothing copied.
        let mut o = opts(T, None);
        o.fault = Some(FaultPoint::AfterSwitch);
        o.fault_action = FaultAction::Error;
        let r = migrator(&env, &url, "first:1:a", o).run().await;
        assert!(matches!(r, Err(MigrateError::Fault(_))), "{r:?}");
        assert_eq!(row(&c, T).await, (some("eu"), some("us"), None));
        assert!(list_keys(&eu, &format!("{T}/")).await.is_empty());
        assert!(leases(&c, T).await.is_empty(), "the lease is released");

        let switched_at = Instant::now();

        // Resumed: waits max_staleness from the switch before it copies;
        // the lease (TTL 1 s) is renewed meanwhile, so the run is not
        // stopped, and its row names this migrator while it runs.
        let m = migrator(&env, &url, "first:1:b", opts(T, None));
        let run = tokio::spawn(async move { m.run().await });
        let (mut lease_seen, mut first_copy) = (false, None);
        while !run.is_finished() {
            if leases(&c, T).await == ["first:1:b"] {
                lease_seen = true;
            }
            if first_copy.is_none() && !list_keys(&eu, &format!("{T}/")).await.is_empty() {
                first_copy = Some(switched_at.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let report = run.await.expect("join").expect("run");
        assert!(lease_seen, "the lease row names the running migrator");
        let first_copy = first_copy.unwrap_or_else(|| switched_at.elapsed());
        // (The wait counts from the row's updated_at, a little before
        // `switched_at`, plus a 250 ms margin.)
        assert!(
            first_copy >= STALENESS - Duration::from_millis(100),
            "the first copy came {first_copy:?} after the switch, before max_staleness"
        );
        assert_eq!(report.phase, Some(Phase::Verified), "{report:?}");
        assert_eq!(report.totals.verified, objs.len() as u64, "{report:?}");
        assert_eq!(row(&c, T).await, (some("eu"), some("us"), None));
        assert!(leases(&c, T).await.is_empty(), "the lease is released");

        // Finish: old copies deleted, migrated_from set.
        let report = migrator(&env, &url, "first:1:c", opts(T, Some(Duration::ZERO)))
            .finish()
            .await
            .expect("finish");
        assert_eq!(report.phase, Some(Phase::Finished), "{report:?}");
        assert_eq!(row(&c, T).await, (some("eu"), None, some("us")));
        for o in &objs {
            let key = format!("{T}/{}", o.key);
            assert_eq!(
                compare(&eu, &key, o).await.as_deref(),
                Some(""),
                "{key} in eu"
            );
        }
        let left: Vec<String> = list_keys(&us, &format!("{T}/"))
            .await
            .into_iter()
            .filter(|k| !k.contains("/_"))
            .collect();
        assert!(left.is_empty(), "old copies left in us: {left:?}");
        assert!(leases(&c, T).await.is_empty());
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_migrators_for_one_tenant_exactly_one_copies() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        const T: &str = "dirtwo";
        let env = Env::new("[[tenants]]\nid = \"unrelated\"\n").await;
        let (url, c) = directory("two_migrators", T).await;
        let objs = moving_corpus(20);
        seed(&env.backend("us"), T, &objs).await;

        let a = migrator(&env, &url, "host-a:11:aaaa", opts(T, None));
        let b = migrator(&env, &url, "host-b:22:bbbb", opts(T, None));
        let (ra, rb) = tokio::join!(a.run(), b.run());
        let (won, lost, holder) = match (ra, rb) {
            (Ok(r), Err(e)) => (r, e, "host-a:11:aaaa"),
            (Err(e), Ok(r)) => (r, e, "host-b:22:bbbb"),
            other => panic!("exactly one migrator must run: {other:?}"),
        };
        assert_eq!(won.totals.copied, objs.len() as u64, "{won:?}");
        assert_eq!(won.this_run.copied, objs.len() as u64, "{won:?}");
        match &lost {
            MigrateError::Leased(l) => {
                assert_eq!(l.tenant, T);
                assert_eq!(l.holder, holder, "the refusal names the holder");
                assert!(l.expires_in_secs <= LEASE_TTL.as_secs() + 1, "{l:?}");
                let msg = lost.to_string();
                assert!(msg.contains(holder) && msg.contains(&l.expires_at), "{msg}");
            }
            other => panic!("refused with the lease, not {other:?}"),
        }
        assert_eq!(row(&c, T).await, (some("eu"), some("us"), None));
        assert!(leases(&c, T).await.is_empty());
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_holders_lease_is_taken_over_and_a_live_one_refuses_the_cli() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        const T: &str = "dirdead";
        let mut env = Env::new("[[tenants]]\nid = \"unrelated\"\n").await;
        let (url, c) = directory("dead_holder", T).await;
        let objs = moving_corpus(10);
        seed(&env.backend("us"), T, &objs).await;

        // A live lease held elsewhere: the CLI is refused, exit 3, JSON.
        c.execute(
            "INSERT INTO migration_leases (tenant_id, holder, expires_at) VALUES ($1, 'elsewhere:7:cafe', now() + interval '10 minutes')",
            &[&T],
        )
        .await
        .expect("insert lease");
        let config = std::fs::read_to_string(&env.config_path).expect("config");
        let config = config
            .lines()
            .map(|l| {
                if l.starts_with("tenants = ") {
                    format!("tenants = \"{url}\"")
                } else {
                    l.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
            + "\n\n[directory]\nmax_staleness_secs = 1\n";
        std::fs::write(&env.config_path, config).expect("write config");
        env.tenants_path = env.dir.path().join("not-used.toml");
        let out = residency_cmd(&env, &["migrate"])
            .args(["--tenant", T, "--to", "eu", "--progress", "quiet", "--json"])
            .output()
            .expect("run residency");
        assert_eq!(
            out.status.code(),
            Some(3),
            "stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v = stdout_json(&out);
        assert_eq!(v["error"], "lease_held", "{v:#}");
        assert_eq!(v["lease"]["holder"], "elsewhere:7:cafe", "{v:#}");
        assert!(v["lease"]["expires_at"].as_str().is_some(), "{v:#}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("elsewhere:7:cafe"), "{stderr}");
        assert_eq!(row(&c, T).await, (None, None, None), "nothing changed");

        // Its holder died: the lease expired; the next run takes it over.
        c.execute(
            "UPDATE migration_leases SET expires_at = now() - interval '1 second' WHERE tenant_id = $1",
            &[&T],
        )
        .await
        .expect("expire lease");
        let report = migrator(&env, &url, "next:1:beef", opts(T, Some(Duration::ZERO)))
            .run()
            .await
            .expect("the expired lease is taken over");
        assert_eq!(report.phase, Some(Phase::Finished), "{report:?}");
        assert_eq!(report.totals.copied, objs.len() as u64, "{report:?}");
        assert_eq!(row(&c, T).await, (some("eu"), None, some("us")));
        assert!(leases(&c, T).await.is_empty(), "released at the end");
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_loses_its_lease_stops() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        const T: &str = "dirlost";
        let env = Env::new("[[tenants]]\nid = \"unrelated\"\n").await;
        let (url, c) = directory("lost_lease", T).await;
        seed(&env.backend("us"), T, &moving_corpus(10)).await;

        // A long max_staleness keeps the run waiting after its switch.
        let mut s = source(&url, "slow:1:aaaa");
        s.max_staleness = Duration::from_secs(20);
        let m = Migrator::with_source(
            env.policy.clone(),
            TenantSource::Directory(s),
            env.backends.clone(),
            opts(T, None),
        );
        let run = tokio::spawn(async move { m.run().await });
        let deadline = Instant::now() + Duration::from_secs(30);
        while leases(&c, T).await != ["slow:1:aaaa"] {
            assert!(Instant::now() < deadline, "the lease was never taken");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Another migrator took it over (as after an expiry).
        c.execute(
            "UPDATE migration_leases SET holder = 'thief:2:bbbb' WHERE tenant_id = $1",
            &[&T],
        )
        .await
        .expect("take over");
        let r = tokio::time::timeout(Duration::from_secs(10), run)
            .await
            .expect("the run stops within a few renewals")
            .expect("join");
        match r {
            Err(MigrateError::Conflict(m)) => assert!(m.contains("taken over"), "{m}"),
            other => panic!("stopped for its lost lease, not {other:?}"),
        }
        assert!(
            list_keys(&env.backend("eu"), &format!("{T}/"))
                .await
                .is_empty(),
            "nothing copied"
        );
        assert_eq!(
            leases(&c, T).await,
            ["thief:2:bbbb"],
            "the other holder's lease is left alone"
        );
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_tenant_with_no_data_migrates_at_once() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        const T: &str = "dirempty";
        let env = Env::new("[[tenants]]\nid = \"unrelated\"\n").await;
        let (url, c) = directory("no_data", T).await;
        let report = migrator(&env, &url, "empty:1:a", opts(T, None))
            .run()
            .await
            .expect("run");
        assert_eq!(report.phase, Some(Phase::Finished), "{report:?}");
        assert_eq!(row(&c, T).await, (some("eu"), None, some("us")));
        assert!(leases(&c, T).await.is_empty());
    })
    .await
    .expect("test timed out");
}
