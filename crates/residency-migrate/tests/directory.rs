//! `residency migrate` with the PostgreSQL tenant directory (issue 16, items
//! 4-6), between the real Garage pair and a real PostgreSQL (one server for
//! this binary, a database per test):
//!
//! - the switch sets `locality = to, migrating_from = from` in one
//!   transaction, the migration waits `max_staleness` before copying, the
//!   finish sets `migrated_from`; the objects end in the new region;
//! - two migrators for one tenant started at once: exactly one copies, the
//!   other is refused naming the lease's holder (the CLI: exit 3, `--json`);
//! - a lease whose holder died (an expired row) is taken over;
//! - key ranges (`range_size`, `join`): two workers split a migration with
//!   no object copied twice, and a killed worker's range is taken over
//!   once its lease expires and resumed from the range's journal.
//!
//! `key_range_throughput_one_worker_vs_two` (ignored) measures objects/s of
//! one worker and of two workers sharing a migration by key ranges:
//! `cargo test --release -p residency-migrate --test directory -- --ignored --nocapture`.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use residency_directory::postgres::{connect_client, migrate, Client};
use residency_migrate::{
    DirectorySource, FaultAction, FaultPoint, MigrateError, MigrationOptions, Migrator, Phase,
    ProgressMode, TenantSource,
};
use residency_testkit::PostgresCluster;
use residency_tower::MemoryAuditSink;
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

/// Keys (relative to the tenant) of the `migrate_copy` events a worker
/// recorded with `reason`: "verified" is recorded once per copy, right
/// after the bytes were written and verified.
fn copy_events(sink: &MemoryAuditSink, reason: &str) -> Vec<String> {
    sink.events()
        .into_iter()
        .filter(|e| e.op == "migrate_copy" && e.reason == reason)
        .map(|e| e.key)
        .collect()
}

/// (done, done_by) of every range of the tenant's migration.
async fn ranges(c: &Client, tenant: &str) -> Vec<(bool, Option<String>)> {
    c.query(
        "SELECT state = 'done', done_by FROM migration_ranges WHERE tenant_id = $1 ORDER BY region, range_no",
        &[&tenant],
    )
    .await
    .expect("ranges")
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

fn ranged_opts(tenant: &str, range_size: u64) -> MigrationOptions {
    let mut o = opts(tenant, None);
    o.range_size = Some(range_size);
    o.join_wait = Duration::from_secs(60);
    o
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_split_a_migration_by_key_ranges_with_no_object_copied_twice() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        const T: &str = "dirranges";
        const RANGE: u64 = 25;
        let env = Env::new("[[tenants]]\nid = \"unrelated\"\n").await;
        let (url, c) = directory("ranges_two_workers", T).await;
        let objs = moving_corpus(300);
        let n = objs.len() as u64;
        let (us, eu) = (env.backend("us"), env.backend("eu"));
        seed(&us, T, &objs).await;

        // The coordinator (tenant lease, plans the ranges) and a joining
        // worker, at once; each records its copies in its own audit sink.
        let (audit_a, audit_b) = (MemoryAuditSink::new(), MemoryAuditSink::new());
        let a = migrator(&env, &url, "coord:1:aaaa", ranged_opts(T, RANGE))
            .with_audit(Arc::new(audit_a.clone()));
        let b = migrator(&env, &url, "joiner:2:bbbb", ranged_opts(T, RANGE))
            .with_audit(Arc::new(audit_b.clone()));
        let (ra, rb) = tokio::join!(a.run(), b.join());
        let (ra, rb) = (ra.expect("coordinator"), rb.expect("joining worker"));

        assert_eq!(ra.phase, Some(Phase::Verified), "{ra:?}");
        assert_eq!(ra.totals.verified, n, "{ra:?}");
        assert_eq!(ra.totals.copied, n, "{ra:?}");
        assert_eq!(rb.command, "join");
        // Planned: a range every 25 keys, then the last (open-ended) one.
        let expected_ranges = n / RANGE + 1;
        assert_eq!(ra.totals.ranges, expected_ranges, "{ra:?}");
        assert_eq!(
            ra.this_run.ranges + rb.this_run.ranges,
            expected_ranges,
            "every range done once: {ra:?} {rb:?}"
        );
        assert!(
            ra.this_run.ranges > 0 && rb.this_run.ranges > 0,
            "both workers did ranges: {} and {}",
            ra.this_run.ranges,
            rb.this_run.ranges
        );
        assert_eq!(ra.this_run.copied + rb.this_run.copied, n);
        let rs = ranges(&c, T).await;
        assert_eq!(rs.len() as u64, expected_ranges);
        assert!(rs.iter().all(|(done, _)| *done), "{rs:?}");
        for holder in ["coord:1:aaaa", "joiner:2:bbbb"] {
            assert!(
                rs.iter().any(|(_, by)| by.as_deref() == Some(holder)),
                "{holder} finished no range: {rs:?}"
            );
        }

        // Every object copied exactly once over both workers.
        let mut copies: BTreeMap<String, u32> = BTreeMap::new();
        for k in copy_events(&audit_a, "verified")
            .into_iter()
            .chain(copy_events(&audit_b, "verified"))
        {
            *copies.entry(k).or_default() += 1;
        }
        let twice: Vec<_> = copies.iter().filter(|(_, n)| **n > 1).collect();
        assert!(twice.is_empty(), "copied twice: {twice:?}");
        assert_eq!(copies.len() as u64, n, "every object copied once");
        for o in &objs {
            let key = format!("{T}/{}", o.key);
            assert_eq!(compare(&eu, &key, o).await.as_deref(), Some(""), "{key}");
        }

        // The finish reads the ranges' journals (in key order) as a single
        // worker's: every old copy goes, nothing is copied again.
        let report = migrator(&env, &url, "coord:1:cccc", opts(T, Some(Duration::ZERO)))
            .finish()
            .await
            .expect("finish");
        assert_eq!(report.phase, Some(Phase::Finished), "{report:?}");
        assert_eq!(report.totals.deleted, n, "{report:?}");
        assert_eq!(report.totals.copied, n, "nothing copied late: {report:?}");
        assert_eq!(report.this_run.copied, 0, "{report:?}");
        let left: Vec<String> = list_keys(&us, &format!("{T}/"))
            .await
            .into_iter()
            .filter(|k| !k.contains("/_"))
            .collect();
        assert!(left.is_empty(), "old copies left in us: {left:?}");
        assert_eq!(row(&c, T).await, (some("eu"), None, some("us")));
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_workers_range_expires_and_is_resumed_by_another_from_its_journal() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        const T: &str = "dirrangekill";
        const RANGE: u64 = 40;
        let env = Env::new("[[tenants]]\nid = \"unrelated\"\n").await;
        let (url, c) = directory("ranges_killed_worker", T).await;
        let objs = moving_corpus(200);
        let n = objs.len() as u64;
        seed(&env.backend("us"), T, &objs).await;

        // The joining worker dies (a fault point: nothing is given back)
        // right after its first range stored its first page (10 keys of
        // 40), with the next page's copies in flight.
        let (audit_a, audit_b) = (MemoryAuditSink::new(), MemoryAuditSink::new());
        let mut ob = ranged_opts(T, RANGE);
        ob.fault = Some(FaultPoint::AfterState(1));
        ob.fault_action = FaultAction::Error;
        let b = migrator(&env, &url, "doomed:2:bbbb", ob).with_audit(Arc::new(audit_b.clone()));
        let mut oa = ranged_opts(T, RANGE);
        oa.parallel = 1;
        let a = migrator(&env, &url, "coord:1:aaaa", oa).with_audit(Arc::new(audit_a.clone()));
        let joined = tokio::spawn(async move { b.join().await });
        let ra = a.run().await.expect("coordinator");
        let rb = joined.await.expect("join task");
        assert!(
            matches!(&rb, Err(MigrateError::Fault(f)) if f == "after_state:1"),
            "{rb:?}"
        );

        assert_eq!(ra.phase, Some(Phase::Verified), "{ra:?}");
        assert_eq!(ra.totals.verified, n, "{ra:?}");
        // Counted once each, whoever copied them (the dead worker's copies
        // in flight are found and verified, not copied again).
        assert_eq!(ra.totals.copied, n, "{ra:?}");
        assert_eq!(ra.this_run.ranges, ra.totals.ranges, "{ra:?}");
        let rs = ranges(&c, T).await;
        assert!(
            rs.iter()
                .all(|(done, by)| *done && by.as_deref() == Some("coord:1:aaaa")),
            "the coordinator finished every range, the dead worker's included: {rs:?}"
        );

        let b_copied = copy_events(&audit_b, "verified");
        let a_copied = copy_events(&audit_a, "verified");
        let a_found = copy_events(&audit_a, "verified (copied by an interrupted run)");
        assert!(
            b_copied.len() >= 10,
            "the dead worker copied its first page: {b_copied:?}"
        );
        let again: Vec<_> = b_copied.iter().filter(|k| a_copied.contains(k)).collect();
        assert!(
            again.is_empty(),
            "copied again after the takeover: {again:?}"
        );
        // Its stored page was not even looked at again (resumed after it);
        // the copies it had in flight were found in the destination.
        let untouched = b_copied.iter().filter(|k| !a_found.contains(k)).count();
        assert!(
            untouched >= 10,
            "resumed after the stored page: {b_copied:?} {a_found:?}"
        );
        // Every object was copied by one worker, or found (the dead worker
        // was stopped between writing some and recording them).
        let mut all: Vec<String> = a_copied.iter().chain(&b_copied).cloned().collect();
        all.sort();
        let copied_once = all.len();
        all.dedup();
        assert_eq!(all.len(), copied_once, "no object copied twice");
        all.extend(a_found);
        all.sort();
        all.dedup();
        assert_eq!(all.len() as u64, n, "every object accounted for");
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_ranges_need_the_directory() {
    tokio::time::timeout(TEST_TIMEOUT, async {
        const T: &str = "fileranges";
        let env = Env::new(&format!("[[tenants]]\nid = \"{T}\"\n")).await;
        let before = std::fs::read_to_string(&env.tenants_path).expect("tenants");
        let mut o = opts(T, None);
        o.range_size = Some(25);
        let m = Migrator::new(
            env.policy.clone(),
            &env.tenants_path,
            env.backends.clone(),
            o.clone(),
        );
        for r in [m.run().await, m.join().await] {
            match r {
                Err(MigrateError::Config(m)) => {
                    assert!(m.contains("tenant directory"), "{m}");
                }
                other => panic!("refused as a configuration error, not {other:?}"),
            }
        }
        for flag in ["--join", "--range-size=25"] {
            let out = residency_cmd(&env, &["migrate"])
                .args(["--tenant", T, "--to", "eu", "--progress", "quiet", flag])
                .output()
                .expect("run residency");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{flag}: {stderr}");
            assert!(stderr.contains("tenant directory"), "{flag}: {stderr}");
        }
        assert_eq!(
            std::fs::read_to_string(&env.tenants_path).expect("tenants"),
            before,
            "nothing switched"
        );
    })
    .await
    .expect("test timed out");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement: run with --ignored --nocapture (release build)"]
async fn key_range_throughput_one_worker_vs_two() {
    const N: usize = 2000;
    const RANGE: u64 = 250;
    let env = Env::new("[[tenants]]\nid = \"unrelated\"\n").await;
    let (url, c) = directory("ranges_throughput", "tputa").await;
    for t in ["tputb", "tputc", "tputd"] {
        c.execute("INSERT INTO tenants (id, bucket) VALUES ($1, $1)", &[&t])
            .await
            .expect("insert tenant");
    }
    let objs: Vec<Obj> = (0..N)
        .map(|i| Obj {
            key: format!("tickets/{i:05}/comment.json"),
            data: bytes::Bytes::from(vec![b'a' + (i % 26) as u8; 4096]),
            content_type: Some("application/json".to_owned()),
            meta: BTreeMap::new(),
            cache_control: None,
            moves: true,
        })
        .collect();
    let us = env.backend("us");
    for t in ["tputa", "tputb", "tputc", "tputd"] {
        seed(&us, t, &objs).await;
    }
    // No wait for replicas' staleness: only the copy is timed.
    let worker = |tenant: &str, holder: &str, parallel: usize, range: Option<u64>| {
        let mut s = DirectorySource::new(&url, Duration::ZERO);
        s.holder = holder.to_owned();
        let mut o = opts(tenant, None);
        o.parallel = parallel;
        o.range_size = range;
        Migrator::with_source(
            env.policy.clone(),
            TenantSource::Directory(s),
            env.backends.clone(),
            o,
        )
    };
    let rate = |t: Duration| N as f64 / t.as_secs_f64();

    let t = Instant::now();
    let r = worker("tputa", "one:1:a", 16, None)
        .run()
        .await
        .expect("run");
    let one = t.elapsed();
    assert_eq!(r.totals.copied, N as u64);

    let t = Instant::now();
    let r = worker("tputb", "one:1:b", 32, None)
        .run()
        .await
        .expect("run");
    let one32 = t.elapsed();
    assert_eq!(r.totals.copied, N as u64);

    let t = Instant::now();
    let r = worker("tputc", "one:1:c", 16, Some(RANGE))
        .run()
        .await
        .expect("run");
    let ranged = t.elapsed();
    assert_eq!(r.totals.copied, N as u64);

    let t = Instant::now();
    let a = worker("tputd", "two:1:a", 16, Some(RANGE));
    let b = worker("tputd", "two:2:b", 16, Some(RANGE));
    let (ra, rb) = tokio::join!(a.run(), b.join());
    let two = t.elapsed();
    let (ra, rb) = (ra.expect("coordinator"), rb.expect("join"));
    assert_eq!(ra.totals.copied, N as u64);
    assert_eq!(ra.this_run.copied + rb.this_run.copied, N as u64);

    eprintln!("{N} objects of 4 KiB, us -> eu, key ranges of {RANGE}:");
    eprintln!(
        "  one worker, parallel 16, no ranges:   {:.2}s = {:.0} objects/s",
        one.as_secs_f64(),
        rate(one)
    );
    eprintln!(
        "  one worker, parallel 32, no ranges:   {:.2}s = {:.0} objects/s",
        one32.as_secs_f64(),
        rate(one32)
    );
    eprintln!(
        "  one worker, parallel 16, ranges:      {:.2}s = {:.0} objects/s",
        ranged.as_secs_f64(),
        rate(ranged)
    );
    eprintln!(
        "  two workers, parallel 16 each, ranges: {:.2}s = {:.0} objects/s (ranges {} + {}, copied {} + {})",
        two.as_secs_f64(),
        rate(two),
        ra.this_run.ranges,
        rb.this_run.ranges,
        ra.this_run.copied,
        rb.this_run.copied
    );
}
