//! Issue 18 item 5, seed: "all Service Data which is available for Data
//! Locality as detailed in this Data Hosting Policy can only be Hosted in a
//! single Data Locality".
//!
//! A tenants file that switches a tenant's locality without a migration is
//! refused on reload, with `aws-sdk-s3` against the sidecar on the shared
//! Garage pair: the old placement keeps serving (a PUT lands in the old
//! region, on disk), the log names the tenant and `residency migrate`, and
//! `residency_reload_total{result="error"}` counts it. The files
//! `residency migrate` writes (the switch with `migrating_from`, the finish
//! with `migrated_from`) are accepted.
//!
//! One test per file: the sidecar's Prometheus recorder and the captured log
//! are process-wide.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_s3::Client;
use support::*;

const TENANTS: &str = include_str!("../../../config/tenants.example.toml");
const ACME_EU: &str = "id = \"acme\"\nlocality = \"eu\"\n";

/// Rewrites the tenants file (with a later mtime: the sidecar polls every 2 s).
fn rewrite(path: &Path, acme: &str) {
    let text = TENANTS.replacen(ACME_EU, acme, 1);
    assert_ne!(text, TENANTS, "the example tenants file changed shape");
    std::thread::sleep(Duration::from_millis(1_100));
    std::fs::write(path, text).expect("rewrite tenants");
}

/// `residency_reload_total{result="<result>"}` from the admin listener.
async fn reloads(admin: SocketAddr, result: &str) -> f64 {
    let r = send_raw(admin, "GET", "/metrics", &[("host", "admin".into())], b"").await;
    assert_eq!(r.status, 200, "/metrics: {}", r.body);
    let label = format!("result=\"{result}\"");
    r.body
        .lines()
        .filter(|l| l.starts_with("residency_reload_total") && l.contains(&label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Waits (up to 15 s) until the reload counter for `result` exceeds `above`.
async fn wait_reload(admin: SocketAddr, result: &str, above: f64) {
    let start = Instant::now();
    while reloads(admin, result).await <= above {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "no {result} reload within 15 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn put_comment(c: &Client, key: &str) {
    put(c, "acme", key, b"{\"comment\":1}").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locality_switch_without_a_migration_is_refused_on_reload() {
    bounded("locality switch", async {
        let captured = CapturedLog::install();
        let _shared = BUCKETS.read().await;
        let env = Env::start_with(&SidecarOptions {
            tenants: Some(TENANTS.to_string()),
            ..Default::default()
        })
        .await;
        let tenants = env.dir.path().join("tenants.toml");
        let sidecar = &env.sidecar;
        let c = env.client(ACME);
        let run = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let key = |n: &str| format!("tickets/locality-switch-{run}/{n}.json");

        put_comment(&c, &key("before")).await;
        assert_placed("acme", &key("before"), "eu").await;

        // A hand edit: acme's locality becomes the US, nothing records a move.
        let errors = reloads(sidecar.admin, "error").await;
        let oks = reloads(sidecar.admin, "ok").await;
        rewrite(&tenants, "id = \"acme\"\nlocality = \"us\"\n");
        wait_reload(sidecar.admin, "error", errors).await;
        put_comment(&c, &key("refused")).await;
        assert_placed("acme", &key("refused"), "eu").await;
        assert_eq!(
            reloads(sidecar.admin, "ok").await,
            oks,
            "no reload succeeded"
        );
        let log = captured.text();
        let refusal = log
            .lines()
            .skip_while(|l| !l.contains("configuration reload failed"))
            .take(3)
            .collect::<Vec<_>>()
            .join("\n");
        assert!(
            refusal.contains("acme: eu -> us") && refusal.contains("residency migrate"),
            "the log must name the tenant and the command:\n{log}"
        );

        // What `residency migrate` writes at the switch: accepted.
        rewrite(
            &tenants,
            "id = \"acme\"\nlocality = \"us\"\nmigrating_from = \"eu\"\n",
        );
        wait_reload(sidecar.admin, "ok", oks).await;
        put_comment(&c, &key("switched")).await;
        assert_placed("acme", &key("switched"), "us").await;
        // Reads fall back to the old region.
        within(
            "get",
            c.get_object().bucket("acme").key(key("before")).send(),
        )
        .await
        .expect("an object of the old region is still read");

        // And at --finish: accepted, no new error.
        let errors = reloads(sidecar.admin, "error").await;
        let oks = reloads(sidecar.admin, "ok").await;
        rewrite(
            &tenants,
            "id = \"acme\"\nlocality = \"us\"\nmigrated_from = \"eu\"\n",
        );
        wait_reload(sidecar.admin, "ok", oks).await;
        assert_eq!(reloads(sidecar.admin, "error").await, errors);
        put_comment(&c, &key("finished")).await;
        assert_placed("acme", &key("finished"), "us").await;
    })
    .await;
}
