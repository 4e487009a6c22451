//! `residency scan` against a real Garage pair (one per test binary, each
//! test in buckets of its own): objects planted around the sidecar in the
//! wrong region, a strict tenant's data outside its locality, a feature
//! switched off, a finished migration that left old copies, a real
//! migration left unfinished past its assurance window, an unknown tenant,
//! an unclassifiable key, records out of place, and a policy tightened after
//! the writes. The scan finds each with its reason and nothing else, also
//! after the process is aborted mid-scan and run again; its HTML report is
//! opened in headless Chromium. `scan/inventory.rs`: the same from S3
//! Inventory reports.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use residency_proxy::Config;
use residency_store::{Backend, Body, PutMeta, StoredHeaders};
use residency_testkit::{GarageCluster, RegionInfo};

const DRIFT_BUCKET: &str = "scan-drift";
const CLEAN_BUCKET: &str = "scan-clean";
const ATTEST_BUCKET: &str = "scan-attest";
const ERASE_BUCKET: &str = "scan-erase";
const FIX_BUCKET: &str = "scan-fix";
const INVENTORY_BUCKET: &str = "scan-inventory";

#[path = "scan/erase.rs"]
mod erase;
#[path = "scan/inventory.rs"]
mod inventory;
#[path = "scan/remediate.rs"]
mod remediate;

fn cluster() -> &'static GarageCluster {
    static CLUSTER: OnceLock<Result<GarageCluster, String>> = OnceLock::new();
    match CLUSTER.get_or_init(|| {
        GarageCluster::builder()
            .extra_buckets([
                DRIFT_BUCKET,
                CLEAN_BUCKET,
                ATTEST_BUCKET,
                ERASE_BUCKET,
                FIX_BUCKET,
                INVENTORY_BUCKET,
            ])
            .start()
            .map_err(|e| e.to_string())
    }) {
        Ok(c) => c,
        Err(e) => panic!("cannot start the Garage pair: {e}"),
    }
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn region_toml(name: &str, r: &RegionInfo, bucket: &str) -> String {
    format!(
        "[regions.{name}]\nkind = \"s3\"\nendpoint = \"{}\"\nbucket = \"{bucket}\"\nregion = \"{}\"\naccess_key = \"{}\"\nsecret_key = \"{}\"\ntimeout_secs = 20\nmax_attempts = 2\n\n",
        r.endpoint, r.region, r.access_key, r.secret_key
    )
}

const TENANTS: &str = r#"
[[tenants]]
id = "acme"
locality = "eu"
strict = false

[[tenants]]
id = "strictco"
locality = "eu"
strict = true

[[tenants]]
id = "globex"
locality = "us"

[[tenants]]
id = "movedco"
locality = "eu"
migrated_from = "us"

[[tenants]]
id = "initech"
locality = "us"
"#;

/// A sidecar configuration over one bucket pair, in a temporary folder.
struct Env {
    dir: tempfile::TempDir,
    config: PathBuf,
    backends: Vec<(String, Arc<dyn Backend>)>,
}

impl Env {
    async fn new(bucket: &str, policy: &Path) -> Env {
        let c = cluster();
        let dir = tempfile::tempdir().expect("tempdir");
        let tenants = dir.path().join("tenants.toml");
        std::fs::write(&tenants, TENANTS).expect("tenants");
        let config = dir.path().join("residency.toml");
        std::fs::write(
            &config,
            format!(
                "listen = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:1\"\npolicy = \"{}\"\ntenants = \"{}\"\nupload_id_secret = \"scan-tests\"\n\n{}{}",
                policy.display(),
                tenants.display(),
                region_toml("eu", c.eu(), bucket),
                region_toml("us", c.us(), bucket),
            ),
        )
        .expect("config");
        let backends = Config::load(&config)
            .expect("valid config")
            .open_backends()
            .await
            .expect("backends");
        Env {
            dir,
            config,
            backends,
        }
    }

    /// The same configuration with another policy file.
    fn with_policy(&self, policy: &Path) -> PathBuf {
        let text = std::fs::read_to_string(&self.config).expect("config");
        let line = text
            .lines()
            .find(|l| l.starts_with("policy = "))
            .expect("policy line");
        let path = self.dir.path().join("residency-tightened.toml");
        std::fs::write(
            &path,
            text.replace(line, &format!("policy = \"{}\"", policy.display())),
        )
        .expect("config");
        path
    }

    fn backend(&self, region: &str) -> &Arc<dyn Backend> {
        &self
            .backends
            .iter()
            .find(|(r, _)| r == region)
            .expect("region")
            .1
    }

    async fn put(&self, region: &str, key: &str, content_type: &str, meta: &[(&str, &str)]) {
        let backend = self.backend(region);
        let headers = StoredHeaders {
            content_type: Some(content_type.to_owned()),
            user_metadata: meta
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ..StoredHeaders::default()
        };
        backend
            .put_object(
                key,
                Body::from_bytes(Bytes::from(format!("{region}:{key}"))),
                PutMeta {
                    headers,
                    ..PutMeta::default()
                },
            )
            .await
            .expect("put");
    }

    /// `residency migrate --tenant T --to eu --assurance A` on this
    /// configuration; asserts it succeeded.
    fn migrate_to_eu(&self, tenant: &str, assurance: &str) {
        let config = self.config.to_str().expect("utf-8");
        let m = self.residency(
            &[
                "migrate",
                "--config",
                config,
                "--tenant",
                tenant,
                "--to",
                "eu",
                "--assurance",
                assurance,
                "--progress",
                "quiet",
            ],
            &[],
        );
        assert_eq!(m.status.code(), Some(0), "{}", says(&m));
    }

    /// Puts each (region, key, content type), no user metadata.
    async fn plant(&self, objects: &[(&str, &str, &str)]) {
        for (region, key, content_type) in objects {
            self.put(region, key, content_type, &[]).await;
        }
    }

    fn residency(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_residency"));
        cmd.args(args).current_dir(self.dir.path());
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().expect("residency runs")
    }

    fn scan(&self, config: &Path, out: &str, extra: &[&str], env: &[(&str, &str)]) -> Output {
        let mut args = vec![
            "scan",
            "--config",
            config.to_str().expect("utf-8"),
            "--out",
            out,
            "--progress",
            "quiet",
        ];
        args.extend_from_slice(extra);
        self.residency(&args, env)
    }
}

fn says(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A finding as the test compares it: (kind, region, key).
type Seen = (String, String, String);

/// (kind, region, key) of every line of `findings.jsonl`, and each line's
/// reason by key.
fn findings(path: &Path) -> (Vec<Seen>, BTreeMap<String, String>) {
    let text = std::fs::read_to_string(path).expect("findings.jsonl");
    let mut all = Vec::new();
    let mut reasons = BTreeMap::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        let s = |f: &str| v[f].as_str().unwrap_or_default().to_owned();
        all.push((s("kind"), s("region"), s("key")));
        reasons.insert(s("key"), s("reason"));
    }
    (all, reasons)
}

fn set(v: &[Seen]) -> BTreeSet<Seen> {
    v.iter().cloned().collect()
}

fn expected(extra: &[(&str, &str, &str)]) -> BTreeSet<Seen> {
    [
        ("misplaced", "us", "acme/tickets/2.json"),
        ("unclassifiable", "eu", "acme/misc/blob.bin"),
        ("unknown_tenant", "eu", "ghost/tickets/1.json"),
        ("record_out_of_place", "eu", "_scratch/tmp.bin"),
        ("strict_outside_locality", "us", "strictco/tickets/2.json"),
        (
            "strict_outside_locality",
            "us",
            "strictco/talk/recordings/1.mp3",
        ),
        (
            "record_out_of_place",
            "us",
            "_disclosure/strictco/head.json",
        ),
        ("feature_removed", "us", "globex/insights/1.json"),
        ("migration_leftover", "us", "movedco/tickets/1.json"),
        ("migration_leftover", "us", "initech/tickets/1.json"),
    ]
    .iter()
    .chain(extra)
    .map(|(k, r, key)| ((*k).to_owned(), (*r).to_owned(), (*key).to_owned()))
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scan_finds_each_drift_with_its_reason_and_nothing_else() {
    let policy = repo().join("config/hosting-policy.toml");
    let env = Env::new(DRIFT_BUCKET, &policy).await;
    // Where the sidecar would have put them.
    env.plant(&[
        ("eu", "acme/tickets/1.json", "application/json"),
        ("eu", "acme/attachments/a.bin", "application/pdf"),
    ])
    .await;
    env.put(
        "eu",
        "acme/misc/labelled.dat",
        "application/octet-stream",
        &[("residency-category", "ticket_data")],
    )
    .await;
    env.plant(&[
        ("us", "acme/talk/recordings/1.mp3", "audio/mpeg"),
        ("eu", "strictco/tickets/1.json", "application/json"),
        ("eu", "_disclosure/strictco/head.json", "application/json"),
        (
            "eu",
            "_audit/acme/w1/000000000001.jsonl",
            "application/x-ndjson",
        ),
        ("us", "globex/tickets/1.json", "application/json"),
        ("eu", "movedco/tickets/1.json", "application/json"),
        ("us", "initech/tickets/1.json", "application/json"),
    ])
    .await;
    // Planted around the sidecar.
    env.plant(&[
        ("us", "acme/tickets/2.json", "application/json"),
        ("eu", "acme/misc/blob.bin", "application/octet-stream"),
        ("eu", "ghost/tickets/1.json", "application/json"),
        ("eu", "_scratch/tmp.bin", "application/octet-stream"),
        ("us", "strictco/tickets/2.json", "application/json"),
        ("us", "strictco/talk/recordings/1.mp3", "audio/mpeg"),
        ("us", "_disclosure/strictco/head.json", "application/json"),
    ])
    .await;
    // A feature switched off: globex's insights data stays in the US.
    env.put("us", "globex/insights/1.json", "application/json", &[])
        .await;
    // A finished migration left its old copy.
    env.put("us", "movedco/tickets/1.json", "application/json", &[])
        .await;
    // A real migration, copied and verified, left without --finish past
    // its (one-second) assurance window.
    env.migrate_to_eu("initech", "1s");
    std::thread::sleep(std::time::Duration::from_millis(1_500));

    // The whole scan: exit 1, exactly these findings.
    let o = env.scan(&env.config, "full", &[], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", says(&o));
    let out = env.dir.path().join("full");
    let (all, reasons) = findings(&out.join("findings.jsonl"));
    assert_eq!(set(&all), expected(&[]), "{}", says(&o));
    assert_eq!(all.len(), set(&all).len(), "no finding twice");
    assert!(
        reasons["acme/tickets/2.json"].contains("belongs in eu, found in us"),
        "{reasons:?}"
    );
    assert!(
        reasons["globex/insights/1.json"].contains("insights"),
        "{reasons:?}"
    );
    assert!(
        reasons["initech/tickets/1.json"].contains("window"),
        "{reasons:?}"
    );
    assert!(
        reasons["movedco/tickets/1.json"].contains("finished"),
        "{reasons:?}"
    );
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).expect("summary"))
            .expect("json");
    assert_eq!(summary["complete"], true);
    assert_eq!(summary["findings"]["misplaced"], 1);
    assert_eq!(
        summary["tenants"]["acme"]["cells"]["ticket_data"]["eu"]["objects"],
        2
    );
    assert_eq!(
        summary["tenants"]["acme"]["cells"]["call_recordings"]["us"]["objects"],
        1
    );
    assert!(
        !out.join("checkpoint.json").exists(),
        "removed once complete"
    );
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("10 finding(s)"), "{text}");

    // Aborted after 3 pages of 2 keys (findings of the third page written,
    // its checkpoint not), then run again: the same findings, none twice.
    let fault = [("RESIDENCY_SCAN_FAULT", "abort_after_pages:3")];
    let small = [
        "--page-size",
        "2",
        "--checkpoint-secs",
        "0",
        "--parallel",
        "1",
    ];
    let o = env.scan(&env.config, "resumed", &small, &fault);
    assert_eq!(o.status.code(), None, "aborted by a signal: {}", says(&o));
    let resumed = env.dir.path().join("resumed");
    assert!(resumed.join("checkpoint.json").exists());
    let o = env.scan(&env.config, "resumed", &small, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", says(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("resumed from the checkpoint"));
    let (again, _) = findings(&resumed.join("findings.jsonl"));
    assert_eq!(set(&again), expected(&[]));
    assert_eq!(again.len(), all.len(), "no finding twice after the resume");
    let summary2: serde_json::Value =
        serde_json::from_slice(&std::fs::read(resumed.join("summary.json")).expect("summary"))
            .expect("json");
    assert_eq!(
        summary2["listed"], summary["listed"],
        "every key counted once"
    );
    assert_eq!(summary2["tenants"], summary["tenants"]);

    // A policy tightened after the writes: attachments US-only.
    let tightened = env.dir.path().join("tightened-policy.toml");
    let text = std::fs::read_to_string(&policy).expect("policy");
    let from = "[categories.attachments]\ndescription = \"Files attached to tickets\"\n# \"Available to be Hosted in the EEA or the US\"\nallowed = [\"eu\", \"us\"]";
    assert!(
        text.contains(from),
        "the shipped policy's attachments section changed"
    );
    std::fs::write(
        &tightened,
        text.replace(
            from,
            "[categories.attachments]\ndescription = \"Files attached to tickets\"\nallowed = [\"us\"]",
        ),
    )
    .expect("policy");
    let o = env.scan(&env.with_policy(&tightened), "tightened", &[], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", says(&o));
    let (t, reasons) = findings(&env.dir.path().join("tightened/findings.jsonl"));
    assert_eq!(
        set(&t),
        expected(&[("misplaced", "eu", "acme/attachments/a.bin")])
    );
    assert!(reasons["acme/attachments/a.bin"].contains("belongs in us, found in eu"));

    // A clean part: one tenant in one region, exit 0.
    let o = env.scan(
        &env.config,
        "strict-eu",
        &["--tenant", "strictco", "--region", "eu"],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", says(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("clean"));
    // An unknown region is a usage error and writes nothing.
    let o = env.scan(&env.config, "bad", &["--region", "mars"], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", says(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown region \"mars\""));

    // The report, opened in headless Chromium: the findings table is there.
    let report = out.join("report.html");
    let dom = chromium(&["--dump-dom", &format!("file://{}", report.display())]);
    assert!(dom.contains("<table id=\"findings\">"), "{dom}");
    assert!(dom.contains("ghost/tickets/1.json"));
    let shot = out.join("report.png");
    chromium(&[
        &format!("--screenshot={}", shot.display()),
        "--window-size=1280,2000",
        &format!("file://{}", report.display()),
    ]);
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
    // Kept for a person to look at.
    let keep = repo().join("target/scan-report.png");
    let _ = std::fs::copy(&shot, keep);
}

/// Runs headless Chromium (RESIDENCY_CHROMIUM, else `chromium` on the PATH:
/// scripts/test.sh installs it) and returns its stdout.
fn chromium(args: &[&str]) -> String {
    let bin = std::env::var("RESIDENCY_CHROMIUM").unwrap_or_else(|_| "chromium".to_owned());
    let profile = tempfile::tempdir().expect("profile");
    let out = Command::new(&bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--timeout=10000",
            &format!("--user-data-dir={}", profile.path().display()),
        ])
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {bin} ({e}): run ./scripts/test.sh (it installs Chromium) or set RESIDENCY_CHROMIUM")
        });
    assert!(out.status.success(), "{bin}: {}", says(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_bucket_scans_clean_and_writes_metrics() {
    let policy = repo().join("config/hosting-policy.toml");
    let env = Env::new(CLEAN_BUCKET, &policy).await;
    env.plant(&[
        ("eu", "acme/tickets/1.json", "application/json"),
        ("us", "acme/talk/voicemails/1.wav", "audio/wav"),
        ("us", "globex/tickets/1.json", "application/json"),
        // A transparency report: a record of no one tenant.
        (
            "eu",
            "_disclosure/_reports/2026-H1.json",
            "application/json",
        ),
    ])
    .await;
    let metrics = env.dir.path().join("scan.prom");
    let o = env.scan(
        &env.config,
        "clean",
        &["--metrics-file", metrics.to_str().expect("utf-8"), "--json"],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", says(&o));
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).expect("--json");
    assert_eq!(summary["listed"]["objects"], 4);
    assert_eq!(summary["shared_records"]["objects"], 1);
    assert_eq!(summary["unowned"]["objects"], 0);
    assert_eq!(summary["complete"], true);
    let m = std::fs::read_to_string(&metrics).expect("metrics file");
    assert!(
        m.contains("residency_scan_findings{kind=\"misplaced\"} 0"),
        "{m}"
    );
    assert!(m.contains("residency_scan_objects 4"), "{m}");
    // Drift appears: the next scan says so.
    env.put("us", "acme/tickets/9.json", "application/json", &[])
        .await;
    let o = env.scan(
        &env.config,
        "clean",
        &["--metrics-file", metrics.to_str().expect("utf-8")],
        &[],
    );
    assert_eq!(o.status.code(), Some(1), "{}", says(&o));
    let m = std::fs::read_to_string(&metrics).expect("metrics file");
    assert!(
        m.contains("residency_scan_findings{kind=\"misplaced\"} 1"),
        "{m}"
    );
}

const ATTEST_KEY: &str = "4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a4a";
const OTHER_KEY: &str = "5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b5b";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attestation_verifies_and_fails_after_a_count_or_a_batch_byte_changes() {
    let policy = repo().join("config/hosting-policy.toml");
    let env = Env::new(ATTEST_BUCKET, &policy).await;
    // initech moves to the EU: its audit chain (the migration's events) and
    // its object end up there, the old copies deleted at once.
    env.put("us", "initech/tickets/1.json", "application/json", &[])
        .await;
    let config = env.config.to_str().expect("utf-8").to_owned();
    env.migrate_to_eu("initech", "0s");

    let key = [("RESIDENCY_ATTEST_KEY", ATTEST_KEY)];
    let o = env.residency(
        &[
            "attest", "create", "--config", &config, "--tenant", "initech",
        ],
        &key,
    );
    assert_eq!(o.status.code(), Some(0), "{}", says(&o));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).expect("the attestation");
    let st = &doc["statement"];
    assert_eq!(st["tenant"], "initech");
    assert_eq!(st["record"]["locality"], "eu");
    assert_eq!(st["record"]["migrated_from"], "us");
    assert_eq!(
        st["evidence"]["placement"]["ticket_data"]["eu"]["objects"],
        1
    );
    let chains = st["evidence"]["audit_chains"].as_array().expect("chains");
    assert!(!chains.is_empty(), "the migration's audit chain: {st}");
    assert!(
        chains
            .iter()
            .all(|c| c["intact"] == true && c["head_sha256"].is_string()),
        "{st}"
    );
    // Stored in the home region.
    let stored = env
        .backend("eu")
        .list_objects(residency_store::ListRequest::new("_attestations/initech/"))
        .await
        .expect("list");
    assert_eq!(stored.objects.len(), 1);
    let file = env.dir.path().join("initech.attestation.json");
    std::fs::write(&file, &o.stdout).expect("write");
    let file = file.to_str().expect("utf-8").to_owned();
    let verify = |env_key: &[(&str, &str)], extra: &[&str]| {
        let mut args = vec![
            "attest",
            "verify",
            file.as_str(),
            "--config",
            config.as_str(),
        ];
        args.extend_from_slice(extra);
        env.residency(&args, env_key)
    };

    // It holds; the scan of the tenant (attestation included) is clean.
    let o = verify(&key, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", says(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("evidence: holds"));
    let o = env.scan(&env.config, "initech", &["--tenant", "initech"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", says(&o));
    // Another signer's key: refused. No key at all: a usage error.
    let o = verify(&[("RESIDENCY_ATTEST_KEY", OTHER_KEY)], &["--offline"]);
    assert_eq!(o.status.code(), Some(1), "{}", says(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("INVALID"));
    let o = verify(&[], &["--offline"]);
    assert_eq!(o.status.code(), Some(2), "{}", says(&o));

    // A count changed in the document: the signature no longer matches.
    let forged = env.dir.path().join("forged.json");
    let mut d = doc.clone();
    d["statement"]["evidence"]["placement"]["ticket_data"]["eu"]["objects"] = 2.into();
    std::fs::write(&forged, serde_json::to_vec(&d).expect("json")).expect("write");
    let o = env.residency(
        &[
            "attest",
            "verify",
            forged.to_str().expect("utf-8"),
            "--offline",
        ],
        &key,
    );
    assert_eq!(o.status.code(), Some(1), "{}", says(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("changed after signing"));

    // A count changed in the buckets: the evidence no longer holds.
    env.put("eu", "initech/tickets/2.json", "application/json", &[])
        .await;
    let o = verify(&key, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", says(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("DIFFERS: ticket_data in eu"),
        "{}",
        says(&o)
    );
    env.backend("eu")
        .delete_object("initech/tickets/2.json")
        .await
        .expect("delete");
    let o = verify(&key, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", says(&o));

    // One byte of an audit batch changed: the chain is no longer intact.
    let eu = env.backend("eu");
    let batches = eu
        .list_objects(residency_store::ListRequest::new("_audit/initech/"))
        .await
        .expect("list");
    let batch = batches
        .objects
        .iter()
        .find(|o| o.key.ends_with(".jsonl"))
        .expect("an audit batch")
        .key
        .clone();
    let mut bytes = eu
        .get_object(&batch, None)
        .await
        .expect("get")
        .body
        .collect()
        .await
        .expect("bytes")
        .to_vec();
    let at = bytes.iter().position(u8::is_ascii_digit).expect("a digit");
    bytes[at] = if bytes[at] == b'9' {
        b'8'
    } else {
        bytes[at] + 1
    };
    eu.put_object(
        &batch,
        Body::from_bytes(Bytes::from(bytes)),
        PutMeta::default(),
    )
    .await
    .expect("put");
    let o = verify(&key, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", says(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("DIFFERS: audit chain"),
        "{}",
        says(&o)
    );
}

async fn keys(env: &Env, region: &str, prefix: &str) -> Vec<String> {
    env.backend(region)
        .list_objects(residency_store::ListRequest::new(prefix))
        .await
        .expect("list")
        .objects
        .into_iter()
        .map(|o| o.key)
        .collect()
}
