//! The directory on the hot path (issue "Tenant directory at scale"):
//! a cached tenant looked up, then the write classified and decided, from
//! the tenants file and from the PostgreSQL directory (a throw-away server
//! on 127.0.0.1, like the tests'), and the round trip of a cache miss.
//!
//! `cargo bench -p residency-directory --features postgres --bench lookup`
//! (needs PostgreSQL's binaries: `scripts/install-tools.sh` finds them).
//! Figures go in docs/performance.md as ratios against the file, measured
//! in the same run.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use futures::StreamExt;
use residency_directory::postgres::{connect_client, import, PgOptions};
use residency_directory::{Directory, DirectoryKey, FileDirectory, PgDirectory};
use residency_policy::{Policy, SecretRef, Tenants};
use residency_testkit::PostgresCluster;

const KEY: &str = "tickets/42/comment.json";

fn policy() -> Policy {
    Policy::from_toml(
        include_str!("../../../config/hosting-policy.toml"),
        "hosting-policy.toml",
    )
    .unwrap()
}

/// The example tenants and `extra` generated ones (`t000000`, ...).
fn tenants_text(extra: usize) -> String {
    let mut s = include_str!("../../../config/tenants.example.toml").to_owned();
    for i in 0..extra {
        s.push_str(&format!(
            "\n[[tenants]]\nid = \"t{i:06}\"\nlocality = \"{}\"\n",
            if i % 2 == 0 { "eu" } else { "us" }
        ));
    }
    s
}

fn resolve(s: &SecretRef) -> Result<String, String> {
    match s {
        SecretRef::Inline(v) => Ok(v.clone()),
        other => Err(format!("{other:?}")),
    }
}

/// What the benches share, built on first use (never when criterion only
/// lists the benches, as `cargo nextest` does).
struct Setup {
    rt: tokio::runtime::Runtime,
    policy: Policy,
    file: FileDirectory,
    dir: Arc<PgDirectory>,
    _pg: PostgresCluster,
}

/// Generated tenants beside the example ones.
const EXTRA: usize = 5_000;

fn setup() -> &'static Setup {
    static SETUP: std::sync::OnceLock<Setup> = std::sync::OnceLock::new();
    SETUP.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let policy = policy();
        let tenants = Tenants::from_toml(&tenants_text(EXTRA), "tenants.toml", &policy).unwrap();
        let file = FileDirectory::new(Arc::new(tenants.clone()), resolve).unwrap();
        let pg = PostgresCluster::start().expect("PostgreSQL");
        pg.create_database("bench").unwrap();
        let url = pg.url("bench");
        let key = DirectoryKey::generate();
        let dir: Arc<PgDirectory> = rt.block_on(async {
            let mut client = connect_client(&url, Duration::from_secs(5)).await.unwrap();
            residency_directory::postgres::migrate(&mut client)
                .await
                .unwrap();
            import(&mut client, &tenants, &policy, resolve, &key)
                .await
                .unwrap();
            PgDirectory::connect(PgOptions::new(url.clone(), key.clone()))
                .await
                .unwrap()
        });
        // Warm the cache (the import's notifications may still drop entries).
        rt.block_on(async {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let _ = dir.tenant(&policy, "acme").await;
                if dir.tenant(&policy, "acme").is_ready() {
                    break;
                }
                assert!(Instant::now() < deadline, "acme never cached");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        Setup {
            rt,
            policy,
            file,
            dir,
            _pg: pg,
        }
    })
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("directory/lookup_classify_decide");
    g.bench_function("file", |b| {
        let s = setup();
        b.iter(|| {
            let t = s
                .file
                .tenant(&s.policy, black_box("acme"))
                .now()
                .unwrap()
                .unwrap()
                .unwrap();
            black_box(s.policy.decide(&t, black_box(KEY), None, None))
        })
    });
    g.bench_function("postgresql_cached", |b| {
        let s = setup();
        b.iter(|| {
            let t = s
                .dir
                .tenant(&s.policy, black_box("acme"))
                .now()
                .expect("cached")
                .unwrap()
                .unwrap();
            black_box(s.policy.decide(&t, black_box(KEY), None, None))
        })
    });
    g.finish();
    // A miss's percentiles are printed only when benchmarking for real.
    if std::env::args().any(|a| a == "--bench") && !std::env::args().any(|a| a == "--list") {
        misses(setup());
        propagation(setup());
        many_tenants(setup());
    }
}

/// Propagation: a change committed through one connection, enforced by two
/// replicas (two `PgDirectory`s that cached the tenant): the time from the
/// commit until both answer the new features, 100 times.
fn propagation(s: &Setup) {
    use residency_directory::postgres::{set_features, FeatureChange};
    let url = s._pg.url("bench");
    let times = s.rt.block_on(async {
        let key = DirectoryKey::generate();
        let replicas = [
            PgDirectory::connect(PgOptions::new(url.clone(), key.clone()))
                .await
                .unwrap(),
            PgDirectory::connect(PgOptions::new(url.clone(), key.clone()))
                .await
                .unwrap(),
        ];
        let mut admin = connect_client(&url, Duration::from_secs(5)).await.unwrap();
        let mut out = Vec::with_capacity(100);
        for i in 0..100 {
            let on = i % 2 == 0;
            // Both replicas hold the tenant in their cache first.
            for r in &replicas {
                let deadline = Instant::now() + Duration::from_secs(10);
                while !r.tenant(&s.policy, "globex").is_ready() {
                    let _ = r.tenant(&s.policy, "globex").await;
                    assert!(Instant::now() < deadline, "globex never cached");
                }
            }
            let change = if on {
                FeatureChange::Remove(vec!["nps".into()])
            } else {
                FeatureChange::Add(vec!["nps".into()])
            };
            let committed = Instant::now();
            set_features(&mut admin, "globex", change, &s.policy)
                .await
                .unwrap();
            let nps = s.policy.feature_by_id("nps").unwrap();
            for r in &replicas {
                loop {
                    let t = r.tenant(&s.policy, "globex").await.unwrap().unwrap();
                    if t.features().contains(nps) != on {
                        break;
                    }
                    assert!(
                        committed.elapsed() < Duration::from_secs(10),
                        "not enforced"
                    );
                    tokio::time::sleep(Duration::from_micros(200)).await;
                }
            }
            out.push(committed.elapsed());
        }
        out
    });
    report(
        "directory/propagation (commit → enforced by both replicas)",
        times,
    );
}

/// Memory: 1,000,000 tenants in PostgreSQL (`RESIDENCY_BENCH_TENANTS`
/// overrides), each looked up once through a replica whose cache holds
/// `cache_capacity` entries (`RESIDENCY_BENCH_CACHE` overrides): the
/// process's resident memory before and after.
fn many_tenants(s: &Setup) {
    let n: usize = std::env::var("RESIDENCY_BENCH_TENANTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let capacity: u64 = std::env::var("RESIDENCY_BENCH_CACHE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(PgOptions::new("", DirectoryKey::generate()).cache_capacity);
    s._pg.create_database("many").unwrap();
    let url = s._pg.url("many");
    let rss_before = rss_kib();
    let (rss_after, elapsed) = s.rt.block_on(async {
        let mut client = connect_client(&url, Duration::from_secs(5)).await.unwrap();
        residency_directory::postgres::migrate(&mut client)
            .await
            .unwrap();
        client
            .batch_execute(&format!(
                "INSERT INTO tenants (id, locality, bucket) \
                 SELECT 'm' || lpad(i::text, 7, '0'), CASE WHEN i % 2 = 0 THEN 'eu' ELSE 'us' END, \
                        'm' || lpad(i::text, 7, '0') \
                 FROM generate_series(0, {}) AS i",
                n - 1
            ))
            .await
            .unwrap();
        let mut options = PgOptions::new(url.clone(), DirectoryKey::generate());
        options.cache_capacity = capacity;
        let dir = PgDirectory::connect(options).await.unwrap();
        let start = Instant::now();
        // Eight lookups in flight, as concurrent requests would be.
        futures::stream::iter(0..n)
            .map(|i| {
                let dir = dir.clone();
                let policy = &s.policy;
                async move {
                    let id = format!("m{i:07}");
                    let t = dir.tenant(policy, &id).await.unwrap().expect("inserted");
                    black_box(t);
                }
            })
            .buffer_unordered(8)
            .collect::<Vec<()>>()
            .await;
        (rss_kib(), start.elapsed())
    });
    println!(
        "directory/many_tenants: {n} tenants looked up once each in {:.1} s ({:.0}/s); bench process RSS {} MiB before, {} MiB after (cache capacity {capacity})",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64(),
        rss_before / 1024,
        rss_after / 1024
    );
}

/// This process's resident set size, in KiB (Linux).
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Prints p50/p99/max of `times`.
fn report(what: &str, mut times: Vec<Duration>) {
    times.sort();
    let pct = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)];
    println!(
        "{what}, {} runs: p50 {:?}, p99 {:?}, max {:?}",
        times.len(),
        pct(0.50),
        pct(0.99),
        times[times.len() - 1]
    );
}

/// A miss: one round trip to the local PostgreSQL, each tenant once.
fn misses(s: &Setup) {
    let times: Vec<Duration> = s.rt.block_on(async {
        let mut out = Vec::with_capacity(2_000);
        for i in 0..2_000 {
            let id = format!("t{i:06}");
            let lookup = s.dir.tenant(&s.policy, &id);
            assert!(!lookup.is_ready(), "{id} was cached");
            let start = Instant::now();
            let t = lookup.await.unwrap().expect("imported");
            out.push(start.elapsed());
            black_box(t);
        }
        out
    });
    report("directory/miss (PostgreSQL round trip)", times);
}

#[allow(missing_docs)]
mod group {
    use super::*;
    criterion_group!(benches, bench);
}
use group::benches;
criterion_main!(benches);
