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

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use support::*;

const TENANTS: &str = include_str!("../../../config/tenants.example.toml");
const ACME_EU: &str = "id = \"acme\"\nlocality = \"eu\"\n";

/// Everything the process logs, as text.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

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

async fn put(c: &Client, key: &str) {
    within(
        "put",
        c.put_object()
            .bucket("acme")
            .key(key)
            .body(ByteStream::from_static(b"{\"comment\":1}"))
            .send(),
    )
    .await
    .unwrap_or_else(|e| panic!("put {key}: {e:?}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locality_switch_without_a_migration_is_refused_on_reload() {
    bounded("locality switch", async {
        let captured = Captured::default();
        let sink = captured.clone();
        tracing_subscriber::fmt()
            .with_env_filter(residency_proxy::server::log_filter())
            .with_ansi(false)
            .with_writer(move || sink.clone())
            .init();

        let _shared = BUCKETS.read().await;
        let _ = cluster();
        let dir = tempfile::tempdir().expect("tempdir");
        let tenants = dir.path().join("tenants.toml");
        std::fs::write(&tenants, TENANTS).expect("write tenants");
        let config = write_config(dir.path());
        let cfg = std::fs::read_to_string(&config).expect("read config");
        let line = cfg
            .lines()
            .find(|l| l.starts_with("tenants = "))
            .expect("tenants line")
            .to_string();
        std::fs::write(
            &config,
            cfg.replace(
                &line,
                &format!("tenants = {:?}", tenants.display().to_string()),
            ),
        )
        .expect("write config");
        let sidecar = start_sidecar(&config).await;
        let c = proxy_client(&sidecar.endpoint, ACME.0, ACME.1, None);
        let run = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let key = |n: &str| format!("tickets/locality-switch-{run}/{n}.json");

        put(&c, &key("before")).await;
        assert_placed("acme", &key("before"), "eu").await;

        // A hand edit: acme's locality becomes the US, nothing records a move.
        let errors = reloads(sidecar.admin, "error").await;
        let oks = reloads(sidecar.admin, "ok").await;
        rewrite(&tenants, "id = \"acme\"\nlocality = \"us\"\n");
        wait_reload(sidecar.admin, "error", errors).await;
        put(&c, &key("refused")).await;
        assert_placed("acme", &key("refused"), "eu").await;
        assert_eq!(
            reloads(sidecar.admin, "ok").await,
            oks,
            "no reload succeeded"
        );
        let log = String::from_utf8_lossy(&captured.0.lock().unwrap()).into_owned();
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
        put(&c, &key("switched")).await;
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
        put(&c, &key("finished")).await;
        assert_placed("acme", &key("finished"), "us").await;
    })
    .await;
}
