//! Issue 18 item 6, seed: "This assurance process conducted by Zendesk may
//! take up to thirty (30) days from the date of commencement of such
//! migration. After the migration process has been completed and confirmed,
//! deletion of the copy of the Subscriber's Service Data in the former data
//! center will commence".
//!
//! Nothing deletes the old copies by itself: an operator runs
//! `residency migrate --finish` once the window has passed. The sidecar
//! exports `residency_migrations_open` and `residency_migrations_overdue`
//! so that an alert (`ResidencyMigrationOverdue`, deploy/prometheus) fires
//! when one is forgotten. A real migration (the `residency-migrate` library,
//! a 1 s assurance window) of a fresh tenant between the shared Garage pair,
//! the sidecar's `/metrics` read as Prometheus would.
//!
//! One test per file: the sidecar's Prometheus recorder is process-wide.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use residency_migrate::{MigrationOptions, Migrator, ProgressMode};
use residency_policy::Policy;
use residency_proxy::config::Config;
use support::*;

const TENANTS: &str = include_str!("../../../config/tenants.example.toml");

/// The value of the gauge `name` on the admin listener (`None`: not exported).
async fn gauge(admin: SocketAddr, name: &str) -> Option<f64> {
    let r = send_raw(admin, "GET", "/metrics", &[("host", "admin".into())], b"").await;
    assert_eq!(r.status, 200, "/metrics: {}", r.body);
    r.body
        .lines()
        .find(|l| l.split([' ', '{']).next() == Some(name))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
}

/// Waits (up to 15 s) until the gauges read `(open, overdue)`.
async fn wait_gauges(admin: SocketAddr, want: (f64, f64)) {
    let start = Instant::now();
    loop {
        let got = (
            gauge(admin, "residency_migrations_open").await,
            gauge(admin, "residency_migrations_overdue").await,
        );
        if got == (Some(want.0), Some(want.1)) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "(open, overdue) is {got:?}, want {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unfinished_migration_past_its_window_is_exported_as_overdue() {
    bounded("migration overdue", async {
        let _shared = BUCKETS.read().await;
        let _ = cluster();
        let run = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos()
            % 1_000_000_000;
        // A tenant of its own: its migration moves nothing another test uses.
        let tenant = format!("overdue{run}");
        let dir = tempfile::tempdir().expect("tempdir");
        let config = write_config_with(
            dir.path(),
            &SidecarOptions {
                tenants: Some(format!(
                    "{TENANTS}\n[[tenants]]\nid = \"{tenant}\"\nlocality = \"us\"\n"
                )),
                ..Default::default()
            },
        );
        let tenants = dir.path().join("tenants.toml");

        let cfg = Config::load(&config).expect("valid config");
        let policy = Policy::from_toml(
            &std::fs::read_to_string(repo_root().join("config/hosting-policy.toml"))
                .expect("policy"),
            "hosting-policy.toml",
        )
        .expect("valid policy");
        let backends = cfg.open_backends().await.expect("backends");
        let mut opts = MigrationOptions::new(&tenant, "eu");
        opts.assurance = Some(Duration::from_secs(1));
        opts.progress = ProgressMode::Quiet;
        let migrator = Migrator::new(policy, &tenants, backends, opts);

        // Copied and verified; the old copies wait for --finish.
        let report = within("migrate", migrator.run()).await.expect("migrate");
        assert!(report.ok(), "{}", report.to_text());
        assert!(
            std::fs::read_to_string(&tenants)
                .unwrap()
                .contains("migrating_from = \"us\""),
            "the switch is in the tenants file"
        );
        tokio::time::sleep(Duration::from_millis(1_500)).await;

        // The window has passed: the sidecar reports it from its start.
        let sidecar = start_sidecar(&config).await;
        wait_gauges(sidecar.admin, (1.0, 1.0)).await;

        // --finish (the tenants file gets `migrated_from`): the sidecar's
        // reload clears both.
        std::thread::sleep(Duration::from_millis(1_100)); // a later mtime
        let report = within("finish", migrator.finish()).await.expect("finish");
        assert!(report.ok(), "{}", report.to_text());
        wait_gauges(sidecar.admin, (0.0, 0.0)).await;
    })
    .await;
}
