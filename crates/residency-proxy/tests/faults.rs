//! Faults: the EU backend is killed, paused, and made to fail through a
//! fault-injecting relay while `aws-sdk-s3` clients write small objects for
//! EU and US tenants through the sidecar. After each fault both regional
//! buckets are listed directly:
//!
//! - every acknowledged write is in its region with the bytes sent;
//! - no object is in a region its placement does not name (no EU object in
//!   the US, ever);
//! - every failed write was answered with a 5xx S3 error (never a hang, never
//!   a success that was not stored);
//! - US writes are untouched by the EU fault;
//! - the sidecar serves EU writes again within seconds of the backend's return.
//!
//! The per-fault figures are printed (run with `--nocapture` to see them) and
//! recorded in docs/reliability.md.

mod support;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use futures::StreamExt;
use support::faultproxy::{Fault, FaultProxy};
use support::*;

/// One kind of writer: a tenant key, a key prefix and where its objects must go.
#[derive(Debug, Clone, Copy)]
struct Writer {
    name: &'static str,
    key: (&'static str, &'static str),
    tenant: &'static str,
    prefix: &'static str,
    region: &'static str,
}

/// EU-bound and US-bound writers, per the seed table and the example tenants.
const WRITERS: [Writer; 6] = [
    // acme: EU locality; ticket data may be in the EEA.
    Writer {
        name: "acme-tickets",
        key: ACME,
        tenant: "acme",
        prefix: "tickets",
        region: "eu",
    },
    // "Chat Content: available to be hosted in the EEA only", even for a US tenant.
    Writer {
        name: "globex-chat",
        key: GLOBEX,
        tenant: "globex",
        prefix: "chat",
        region: "eu",
    },
    // Strict EU tenant.
    Writer {
        name: "eurobank-tickets",
        key: EUROBANK,
        tenant: "eurobank",
        prefix: "tickets",
        region: "eu",
    },
    // Insights are US-only: an EU tenant's go to the US (out of locality).
    Writer {
        name: "acme-insights",
        key: ACME,
        tenant: "acme",
        prefix: "insights",
        region: "us",
    },
    Writer {
        name: "globex-tickets",
        key: GLOBEX,
        tenant: "globex",
        prefix: "tickets",
        region: "us",
    },
    // No locality add-on: the default region.
    Writer {
        name: "initech-tickets",
        key: INITECH,
        tenant: "initech",
        prefix: "tickets",
        region: "us",
    },
];

/// Writer tasks per kind.
const TASKS_PER_WRITER: usize = 2;

#[derive(Debug)]
enum Answer {
    Ok,
    /// An S3 error response: status and code.
    Error(u16, String),
    /// No HTTP answer at all (must never happen).
    Silent(String),
}

#[derive(Debug)]
struct Attempt {
    writer: usize,
    key: String,
    body: Vec<u8>,
    answer: Answer,
    /// When the answer came, since the scenario started.
    at: Duration,
    took: Duration,
}

#[derive(Debug, Default)]
struct Figures {
    fault: String,
    attempted: usize,
    acknowledged: usize,
    found_in_place: usize,
    misplaced: usize,
    failed_5xx: usize,
    failed_other: usize,
    failed_but_stored: usize,
    acked_missing_or_wrong: usize,
    us_failures_during_fault: usize,
    eu_fail_fast_ms_median: Option<u128>,
    recovery_ms: u128,
}

async fn put(c: &Client, bucket: &str, key: &str, body: Vec<u8>) -> Answer {
    let r = c
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(ByteStream::from(body))
        .send()
        .await;
    match r {
        Ok(_) => Answer::Ok,
        Err(e) => match e.raw_response() {
            Some(raw) => Answer::Error(raw.status().as_u16(), e.code().unwrap_or("").to_string()),
            None => Answer::Silent(format!("{e:?}")),
        },
    }
}

/// Concurrent writers until `stop`; every attempt recorded.
fn start_load(
    endpoint: &str,
    run: &str,
    start: Instant,
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<Attempt>>>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    for (wi, w) in WRITERS.iter().enumerate() {
        for t in 0..TASKS_PER_WRITER {
            let client = proxy_client(endpoint, w.key.0, w.key.1, None);
            let (stop, log, run) = (stop.clone(), log.clone(), run.to_string());
            let w = *w;
            tasks.push(tokio::spawn(async move {
                let mut i = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    let key = format!("{}/faults/{run}/{}-{t}/{i:05}", w.prefix, w.name);
                    let body =
                        format!("{run} {} {t} {i} {:?}", w.name, Instant::now()).into_bytes();
                    let t0 = Instant::now();
                    let answer = put(&client, w.tenant, &key, body.clone()).await;
                    let took = t0.elapsed();
                    log.lock().unwrap().push(Attempt {
                        writer: wi,
                        key,
                        body,
                        answer,
                        at: start.elapsed(),
                        took,
                    });
                    i += 1;
                    tokio::time::sleep(Duration::from_millis(15)).await;
                }
            }));
        }
    }
    tasks
}

/// Puts to an EU key every 100 ms until one is acknowledged; the time it took.
async fn time_to_recover(endpoint: &str, run: &str) -> Duration {
    let c = proxy_client(endpoint, ACME.0, ACME.1, None);
    let t0 = Instant::now();
    let mut i = 0;
    loop {
        let key = format!("tickets/faults/{run}/recovery/{i}");
        if let Answer::Ok = put(&c, "acme", &key, b"back".to_vec()).await {
            return t0.elapsed();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "{run}: the sidecar did not serve EU writes within 30 s of the backend's return"
        );
        i += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every object under `*/faults/<run>/` in both buckets: (region, full key).
async fn stored(run: &str) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    let needle = format!("/faults/{run}/");
    for r in cluster().regions() {
        for o in backend_objects(r).await {
            let k = o.key().unwrap_or_default();
            if k.contains(&needle) {
                out.insert((r.name.clone(), k.to_string()));
            }
        }
    }
    out
}

/// The region `<tenant>/<key>` must be in, from the writer that wrote it.
fn expected_region(full_key: &str) -> Option<&'static str> {
    if full_key.contains("/recovery/") {
        return Some("eu");
    }
    let (tenant, key) = full_key.split_once('/')?;
    WRITERS
        .iter()
        .find(|w| w.tenant == tenant && key.starts_with(&format!("{}/", w.prefix)))
        .map(|w| w.region)
}

/// Checks the buckets against the attempts; returns the figures.
async fn verify(
    fault: &str,
    run: &str,
    attempts: &[Attempt],
    fault_window: (Duration, Duration),
    recovery: Duration,
) -> Figures {
    let found = stored(run).await;
    let mut f = Figures {
        fault: fault.to_string(),
        attempted: attempts.len(),
        recovery_ms: recovery.as_millis(),
        ..Default::default()
    };
    for (region, key) in &found {
        if expected_region(key) != Some(region.as_str()) {
            f.misplaced += 1;
            eprintln!("MISPLACED: {key} found in {region}");
        }
    }
    // Acknowledged writes: present in place with the right bytes.
    let acked: Vec<&Attempt> = attempts
        .iter()
        .filter(|a| matches!(a.answer, Answer::Ok))
        .collect();
    f.acknowledged = acked.len();
    let found = &found;
    let checks = futures::stream::iter(acked.iter().map(|a| {
        let w = WRITERS[a.writer];
        async move {
            let in_place =
                found.contains(&(w.region.to_string(), format!("{}/{}", w.tenant, a.key)));
            in_place && backend_bytes(w.region, w.tenant, &a.key).await == a.body
        }
    }))
    .buffer_unordered(16)
    .collect::<Vec<bool>>()
    .await;
    f.found_in_place = checks.iter().filter(|ok| **ok).count();
    f.acked_missing_or_wrong = f.acknowledged - f.found_in_place;
    // Failed writes: 5xx, and if stored anyway (the backend finished after the
    // sidecar gave up), only in place.
    let mut fail_fast = Vec::new();
    for a in attempts {
        let w = WRITERS[a.writer];
        match &a.answer {
            Answer::Ok => {}
            Answer::Error(status, code) => {
                if (500..600).contains(status) {
                    f.failed_5xx += 1;
                } else {
                    f.failed_other += 1;
                    eprintln!("{fault}: {} failed with {status} {code}", a.key);
                }
                if found.contains(&(w.region.to_string(), format!("{}/{}", w.tenant, a.key))) {
                    f.failed_but_stored += 1;
                }
                if w.region == "eu" && code == "ServiceUnavailable" {
                    fail_fast.push(a.took.as_millis());
                }
            }
            Answer::Silent(e) => {
                f.failed_other += 1;
                eprintln!("{fault}: {} got no HTTP answer: {e}", a.key);
            }
        }
        let in_window = a.at >= fault_window.0 && a.at <= fault_window.1 + Duration::from_secs(1);
        if w.region == "us" && in_window && !matches!(a.answer, Answer::Ok) {
            f.us_failures_during_fault += 1;
        }
    }
    fail_fast.sort_unstable();
    f.eu_fail_fast_ms_median = fail_fast.get(fail_fast.len() / 2).copied();
    f
}

/// Runs load, applies `fault` after a baseline, heals it, waits for recovery
/// and a little more load, then verifies.
async fn scenario<I, H>(name: &str, env: &Env, fault_for: Duration, inject: I, heal: H) -> Figures
where
    I: std::future::Future<Output = ()>,
    H: std::future::Future<Output = ()>,
{
    let run = format!(
        "{name}-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
    );
    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let log = Arc::new(Mutex::new(Vec::new()));
    let tasks = start_load(
        &env.sidecar.endpoint,
        &run,
        start,
        stop.clone(),
        log.clone(),
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let fault_start = start.elapsed();
    inject.await;
    tokio::time::sleep(fault_for).await;
    heal.await;
    let fault_end = start.elapsed();
    let recovery = time_to_recover(&env.sidecar.endpoint, &run).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        within("writer task", t).await.expect("writer task");
    }
    let attempts = std::mem::take(&mut *log.lock().unwrap());

    verify(name, &run, &attempts, (fault_start, fault_end), recovery).await
}

async fn metric(admin: SocketAddr, name: &str) -> f64 {
    let r = send_raw(admin, "GET", "/metrics", &[("host", "admin".into())], b"").await;
    r.body
        .lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn blocking<F: FnOnce() + Send + 'static>(f: F) {
    tokio::task::spawn_blocking(f).await.expect("blocking step");
}

/// [`scenario`] for a fault of the EU Garage process itself: `stop` for
/// `secs` seconds, then `heal`.
async fn process_fault(name: &str, env: &Env, secs: u64, stop: fn(), heal: fn()) -> Figures {
    let fault_for = Duration::from_secs(secs);
    scenario(name, env, fault_for, blocking(stop), blocking(heal)).await
}

/// The three EU faults in turn, each under load, through one sidecar whose EU
/// backend is reached through a fault-injecting relay (passing everything
/// during the kill and pause scenarios).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eu_backend_faults_lose_nothing_and_misplace_nothing() {
    let run = async {
        let eu: SocketAddr = cluster()
            .eu()
            .endpoint
            .trim_start_matches("http://")
            .parse()
            .expect("eu endpoint");
        let relay = Arc::new(FaultProxy::start(eu).await);
        let env = Env::start_with(&SidecarOptions {
            eu_endpoint: Some(relay.endpoint()),
            backend_timeout_secs: 2,
            max_attempts: 2,
            limits:
                "circuit_failures = 3\ncircuit_cooldown_ms = 500\nupload_response_timeout_secs = 2"
                    .into(),
            ..Default::default()
        })
        .await;
        let mut all = Vec::new();

        // (a) killed (SIGKILL) mid-load, then restarted on the same data.
        let kill = || cluster().stop_region("eu").expect("kill eu");
        let restart = || cluster().restart_region("eu").expect("restart eu");
        all.push(process_fault("killed", &env, 4, kill, restart).await);
        let opened = metric(
            env.sidecar.admin,
            "residency_circuit_transitions_total{region=\"eu\",to=\"open\"}",
        )
        .await;

        // (b) paused (SIGSTOP): connections accepted, never answered.
        let pause = || cluster().pause_region("eu").expect("pause eu");
        let resume = || cluster().resume_region("eu").expect("resume eu");
        all.push(process_fault("paused", &env, 5, pause, resume).await);

        // (c) errors, resets, drops and delays from the relay, in turn.
        let r = relay.clone();
        let inject = async move {
            for f in [
                Fault::Http503,
                Fault::Reset,
                Fault::Drop,
                Fault::Delay(Duration::from_secs(3)),
            ] {
                r.set(f);
                tokio::time::sleep(Duration::from_millis(2_500)).await;
            }
        };
        let r = relay.clone();
        all.push(
            scenario(
                "relay-503-reset-drop-delay",
                &env,
                Duration::from_millis(500),
                inject,
                async move { r.set(Fault::Pass) },
            )
            .await,
        );

        eprintln!("\n| fault | attempted | acknowledged | found in place | misplaced | failed (5xx) | failed, other | failed but stored in place | US failures during the fault | EU fail-fast median | EU writes again after |");
        eprintln!("|---|---|---|---|---|---|---|---|---|---|---|");
        for f in &all {
            eprintln!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} ms |",
                f.fault,
                f.attempted,
                f.acknowledged,
                f.found_in_place,
                f.misplaced,
                f.failed_5xx,
                f.failed_other,
                f.failed_but_stored,
                f.us_failures_during_fault,
                f.eu_fail_fast_ms_median
                    .map_or("-".to_string(), |m| format!("{m} ms")),
                f.recovery_ms
            );
        }
        eprintln!("circuit openings (eu) during the kill: {opened}\n");

        for f in &all {
            assert_eq!(f.misplaced, 0, "{}: objects outside their region", f.fault);
            assert_eq!(
                f.acked_missing_or_wrong, 0,
                "{}: acknowledged writes missing or with other bytes",
                f.fault
            );
            assert_eq!(f.failed_other, 0, "{}: failures that were not 5xx", f.fault);
            assert!(
                f.acknowledged > 0 && f.failed_5xx > 0,
                "{}: the fault had no effect: {f:?}",
                f.fault
            );
            assert_eq!(
                f.us_failures_during_fault, 0,
                "{}: US writes failed because of an EU fault",
                f.fault
            );
            assert!(
                f.recovery_ms < 10_000,
                "{}: EU writes took {} ms to come back",
                f.fault,
                f.recovery_ms
            );
        }
        assert!(
            opened >= 1.0,
            "the EU circuit never opened while EU was down"
        );
    };
    if tokio::time::timeout(Duration::from_secs(420), run)
        .await
        .is_err()
    {
        panic!("faults: did not finish within 420 s");
    }
}
