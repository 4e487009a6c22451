//! `residency disclosure` as a user runs it, on the sidecar's directory
//! backends: the life of a request with a webhook receiver on 127.0.0.1,
//! the exit codes (0 done, 2 bad input, 1 refused or failed), the report,
//! and a tampered ledger.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use residency_store::{Backend, Body, DirBackend, PutMeta};
use serde_json::Value;

const SECRET: &str = "cli-test-webhook-secret";
const ALICE: &str = "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1";
const BOB: &str = "b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2";

fn public(name: &str, seed: &str) -> String {
    residency_disclosure::Signer::named(name, seed)
        .unwrap()
        .public_key()
}

struct Sandbox {
    dir: PathBuf,
    config: PathBuf,
    settings: PathBuf,
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn sandbox(webhook: &str) -> Sandbox {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!(
        "residency-disclosure-cli-{}-{nanos}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = dir.join("residency.toml");
    std::fs::write(
        &config,
        format!(
            "policy = {:?}\ntenants = {:?}\n[regions.eu]\nkind = \"dir\"\npath = {:?}\n[regions.us]\nkind = \"dir\"\npath = {:?}\n",
            root.join("config/hosting-policy.toml"),
            root.join("config/tenants.example.toml"),
            dir.join("eu"),
            dir.join("us"),
        ),
    )
    .unwrap();
    let settings = dir.join("disclosure.toml");
    std::fs::write(
        &settings,
        format!(
            "[limits]\nmax_objects = 2\n[webhook]\nurl = {webhook:?}\nsecret_env = \"DISCLOSURE_CLI_SECRET\"\nmax_attempts = 2\ninitial_backoff_ms = 10\n\
             [[privacy_team]]\nname = \"alice\"\npublic_key = {:?}\n\
             [[privacy_team]]\nname = \"bob\"\npublic_key = {:?}\n",
            public("alice", ALICE),
            public("bob", BOB),
        ),
    )
    .unwrap();
    std::fs::write(dir.join("alice.key"), ALICE).unwrap();
    std::fs::write(dir.join("bob.key"), BOB).unwrap();
    Sandbox {
        dir,
        config,
        settings,
    }
}

impl Sandbox {
    fn run(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_residency"));
        cmd.arg("disclosure").arg(args[0]);
        cmd.arg("--config").arg(&self.config);
        cmd.arg("--settings").arg(&self.settings);
        cmd.args(&args[1..]).env("DISCLOSURE_CLI_SECRET", SECRET);
        cmd.env_remove("RESIDENCY_DISCLOSURE_KEY")
            .env_remove("RESIDENCY_DISCLOSURE_KEY_FILE");
        cmd.output().expect("run the residency binary")
    }

    /// Runs as a privacy team member (`alice` or `bob`).
    fn run_as(&self, member: &str, args: &[&str]) -> Output {
        let key = self.dir.join(format!("{member}.key"));
        let mut all: Vec<&str> = args.to_vec();
        let key = key.to_str().unwrap().to_owned();
        all.push("--key-file");
        all.push(&key);
        self.run(&all)
    }

    /// Runs `f` on the directory backend of `region`, as the sidecar opens it.
    fn with_region<T>(&self, region: &str, f: impl AsyncFnOnce(DirBackend) -> T) -> T {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let b = DirBackend::open(self.dir.join(region)).await.unwrap();
            f(b).await
        })
    }

    fn put(&self, region: &str, key: &str, data: &[u8]) {
        let body = Body::from_bytes(data.to_vec().into());
        self.with_region(region, async |b| {
            b.put_object(key, body, PutMeta::default()).await.unwrap();
        });
    }

    fn get(&self, region: &str, key: &str) -> Vec<u8> {
        self.with_region(region, async |b| {
            let out = b.get_object(key, None).await.unwrap();
            out.body.collect().await.unwrap().to_vec()
        })
    }

    /// `transition --id ID --to STATE --by BY --why WHY`.
    fn transition(&self, id: &str, to: &str, by: &str, why: &str) -> Output {
        self.run(&[
            "transition",
            "--id",
            id,
            "--to",
            to,
            "--by",
            by,
            "--why",
            why,
        ])
    }
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exited")
}

fn text(o: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Asserts the exit code, showing the output when it is another.
#[track_caller]
fn assert_exit(o: &Output, expected: i32) {
    assert_eq!(code(o), expected, "{}", text(o));
}

/// Asserts that the output mentions `needle`, showing it when it does not.
#[track_caller]
fn assert_says(o: &Output, needle: &str) {
    assert!(text(o).contains(needle), "{}", text(o));
}

/// Notice bodies received, each with whether its signature verified.
type Notices = Arc<Mutex<Vec<(Value, bool)>>>;

/// A webhook receiver on 127.0.0.1 (one thread, `Connection: close`):
/// records each body with whether its HMAC signature verified.
fn receiver() -> (String, Notices) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let (mut len, mut sig) = (0usize, String::new());
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
                if lower.starts_with("x-residency-signature:") {
                    sig = line["x-residency-signature:".len()..].trim().to_owned();
                }
            }
            let mut body = vec![0; len];
            reader.read_exact(&mut body).unwrap();
            let ok = sig == residency_disclosure::sign(SECRET.as_bytes(), &body);
            g.lock()
                .unwrap()
                .push((serde_json::from_slice(&body).unwrap(), ok));
            let status = if ok {
                "204 No Content"
            } else {
                "401 Unauthorized"
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
    });
    (url, got)
}

#[test]
fn a_request_through_the_command_line() {
    let (url, notices) = receiver();
    let s = sandbox(&url);
    s.put("eu", "acme/tickets/1.json", b"{\"subject\":\"one\"}");
    s.put("eu", "acme/tickets/2.json", b"{\"subject\":\"two\"}");
    s.put("eu", "acme/tickets/3.json", b"{\"subject\":\"three\"}");

    let open = |extra: &[&str]| {
        let mut args = vec![
            "open",
            "--tenant",
            "acme",
            "--authority",
            "Bundeskriminalamt",
            "--country",
            "DE",
            "--legal-basis",
            "StPO 95",
            "--received",
            "2026-07-15",
            "--type",
            "court-order",
            "--by",
            "privacy-team",
        ];
        args.extend_from_slice(extra);
        s.run(&args)
    };
    // Bad input: exit 2, nothing recorded.
    let o = open(&["--key", "tickets/1.json", "--notice-prohibited"]);
    assert_exit(&o, 2);
    assert_says(&o, "reason");
    let o = open(&[]);
    assert_exit(&o, 2);
    let o = s.run(&["show", "--id", "acme-1"]);
    assert_exit(&o, 2);

    let o = open(&[
        "--key",
        "tickets/1.json",
        "--key",
        "tickets/2.json",
        "--json",
    ]);
    assert_exit(&o, 0);
    let rec: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(rec["request"]["id"], "acme-1");
    assert_eq!(rec["state"], "received");

    let out = s.dir.join("export");
    let out_s = out.to_str().unwrap();
    // Refused: unapproved, then an invalid transition.
    let o = s.run_as("alice", &["export", "--id", "acme-1", "--out", out_s]);
    assert_exit(&o, 1);
    assert_says(&o, "only an approved request");
    let o = s.transition("acme-1", "fulfilled", "x", "y");
    assert_exit(&o, 1);
    let o = s.transition("acme-1", "on-hold", "counsel", "consulting the DPA");
    assert_exit(&o, 0);
    for who in ["alice", "bob"] {
        let o = s.run_as(who, &["approve", "--id", "acme-1", "--why", "compelled"]);
        assert_exit(&o, 0);
    }
    // Refused: not notified yet.
    let o = s.run_as("alice", &["export", "--id", "acme-1", "--out", out_s]);
    assert_exit(&o, 1);
    assert!(notices.lock().unwrap().is_empty());
    let o = s.run(&["notify", "--id", "acme-1", "--by", "privacy-team"]);
    assert_exit(&o, 0);
    {
        let got = notices.lock().unwrap();
        assert_eq!(got.len(), 1);
        assert!(got[0].1, "signature verifies");
        assert_eq!(got[0].0["request"]["id"], "acme-1");
    }
    let o = s.run_as("alice", &["export", "--id", "acme-1", "--out", out_s]);
    assert_exit(&o, 0);
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["total_objects"], 2);
    assert_eq!(
        std::fs::read(out.join("objects/tickets/2.json")).unwrap(),
        b"{\"subject\":\"two\"}"
    );
    assert!(!out.join("objects/tickets/3.json").exists());

    // Over the configured limit of 2 objects: refused until raised with a reason.
    let o = open(&[
        "--prefix",
        "tickets/",
        "--from",
        "2000-01-01",
        "--to",
        "2100-01-01",
        "--notice-prohibited",
        "--notice-prohibited-reason",
        "gag order 7",
    ]);
    assert_exit(&o, 0);
    for who in ["alice", "bob"] {
        let o = s.run_as(who, &["approve", "--id", "acme-2", "--why", "w"]);
        assert_exit(&o, 0);
    }
    let out2 = s.dir.join("export2");
    let out2_s = out2.to_str().unwrap();
    let o = s.run_as("alice", &["export", "--id", "acme-2", "--out", out2_s]);
    assert_exit(&o, 1);
    assert_says(&o, "--raise-limit objects=3");
    let raise = [
        "export",
        "--id",
        "acme-2",
        "--out",
        out2_s,
        "--raise-limit",
        "objects=3",
        "--reason",
        "all three named",
    ];
    // Raising without a reason is bad input.
    let o = s.run_as("alice", &raise[..raise.len() - 2]);
    assert_exit(&o, 2);
    // The exporter alone cannot raise a limit: a second approver must.
    let o = s.run_as("alice", &raise);
    assert_exit(&o, 1);
    assert_says(&o, "second approver");
    let o = s.run_as(
        "bob",
        &[
            "approve",
            "--id",
            "acme-2",
            "--raise-limit",
            "objects=3",
            "--reason",
            "agreed: all three are named",
        ],
    );
    assert_exit(&o, 0);
    let o = s.run_as("alice", &raise);
    assert_exit(&o, 0);

    let o = s.run(&["verify"]);
    assert_exit(&o, 0);
    let o = s.run(&["report", "--period", "2026H2", "--format", "csv"]);
    assert_exit(&o, 0);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "period,country,request_type,outcome,requests\n2026H2,DE,court_order,disclosed,2\n"
    );
    let o = s.run(&["report", "--period", "2026H2", "--format", "json"]);
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["report"]["requests"], 2);
    assert_eq!(r["report"]["objects_disclosed"], 5);
    assert_eq!(r["frozen"], Value::Null);
    let o = s.run(&["report", "--period", "2026-2"]);
    assert_exit(&o, 2);

    // Tampering: one entry edited in the region's directory.
    let key = "_disclosure/acme/ledger/0000000002.json";
    let entry = String::from_utf8(s.get("eu", key)).unwrap();
    assert!(entry.contains("consulting the DPA"), "{entry}");
    s.put(
        "eu",
        key,
        entry.replace("consulting", "ignoring").as_bytes(),
    );
    let o = s.run(&["verify", "--tenant", "acme"]);
    assert_exit(&o, 1);
    assert_says(&o, "DAMAGED");
    let o = s.run(&["report", "--period", "2026H2"]);
    assert_exit(&o, 1);
}

/// Seed 4.2.1 ("put the request on hold to notify and consult with the
/// competent data protection authorities"), 3.1 (the "Privacy Team"), 4.1.1
/// (ask the authority "to make the Data Disclosure Request directly to the
/// relevant Customer") and 5.1 (the semi-annual "Transparency Report"), as
/// a user runs them; the team's keys made with `keygen`.
#[test]
fn a_us_request_is_held_and_needs_two_approvers() {
    let s = sandbox("http://127.0.0.1:9/unused");
    s.put("eu", "acme/tickets/1.json", b"{\"subject\":\"one\"}");
    // Keys made by keygen, and a settings file naming them.
    let mut team = String::from("[limits]\nmax_objects = 5\n");
    for who in ["carol", "dave"] {
        let key = s.dir.join(format!("{who}.key"));
        let o = s.run(&["keygen", "--name", who, "--out", key.to_str().unwrap()]);
        assert_exit(&o, 0);
        let out = String::from_utf8_lossy(&o.stdout).to_string();
        let entry = &out[out.find("[[privacy_team]]").expect("the entry is printed")..];
        team.push_str(entry);
        team.push('\n');
        let o = s.run(&["keygen", "--name", who, "--out", key.to_str().unwrap()]);
        assert_eq!(
            code(&o),
            2,
            "an existing key is never overwritten: {}",
            text(&o)
        );
    }
    std::fs::write(&s.settings, team).unwrap();

    let open = |country: &str, received: &str| {
        s.run(&[
            "open",
            "--tenant",
            "acme",
            "--authority",
            "FBI",
            "--country",
            country,
            "--legal-basis",
            "18 USC 2703(d)",
            "--received",
            received,
            "--type",
            "court-order",
            "--key",
            "tickets/1.json",
            "--notice-prohibited",
            "--notice-prohibited-reason",
            "nondisclosure order",
            "--by",
            "intake",
            "--json",
        ])
    };
    let o = open("US", "2026-03-01");
    assert_exit(&o, 0);
    let rec: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(rec["state"], "on_hold");
    assert_eq!(rec["assessment"]["consult"], true);

    // Free text does not approve; approval waits for the consultation.
    let o = s.transition("acme-1", "approved", "cpo", "ok");
    assert_exit(&o, 1);
    let o = s.run_as(
        "carol",
        &["approve", "--id", "acme-1", "--why", "compelled"],
    );
    assert_exit(&o, 1);
    assert_says(&o, "held for consultation");
    let o = s.run(&["approve", "--id", "acme-1", "--why", "compelled"]);
    assert_eq!(code(&o), 2, "no key: {}", text(&o));
    let o = s.run(&[
        "consult",
        "--id",
        "acme-1",
        "--dpa",
        "Data Protection Commission",
        "--reference",
        "DPC-17",
        "--why",
        "no objection",
        "--by",
        "dpo",
    ]);
    assert_exit(&o, 0);
    let o = s.run_as(
        "carol",
        &["approve", "--id", "acme-1", "--why", "compelled"],
    );
    assert_exit(&o, 0);
    let o = s.run_as("carol", &["approve", "--id", "acme-1", "--why", "again"]);
    assert_exit(&o, 1);
    let out = s.dir.join("x");
    let out_s = out.to_str().unwrap();
    let o = s.run_as("carol", &["export", "--id", "acme-1", "--out", out_s]);
    assert_eq!(code(&o), 1, "one approval is not enough: {}", text(&o));
    let o = s.run_as("dave", &["approve", "--id", "acme-1", "--why", "agreed"]);
    assert_exit(&o, 0);
    assert_says(&o, "now approved");
    let o = s.run(&["export", "--id", "acme-1", "--out", out_s, "--by", "ops"]);
    assert_eq!(code(&o), 2, "an export needs a key: {}", text(&o));
    let o = s.run_as("dave", &["export", "--id", "acme-1", "--out", out_s]);
    assert_exit(&o, 0);
    let o = s.run(&["show", "--id", "acme-1"]);
    assert_says(&o, "approval by carol (signed)");
    assert_says(&o, "consulted:   Data Protection Commission");

    // Redirected, and a request without a known customer.
    let o = open("DE", "2026-04-01");
    assert_exit(&o, 0);
    let o = s.transition(
        "acme-2",
        "redirected",
        "privacy",
        "the authority agreed to ask acme",
    );
    assert_exit(&o, 0);
    let o = s.run(&[
        "open",
        "--tenant",
        "_unattributed",
        "--authority",
        "Polizei",
        "--country",
        "AT",
        "--legal-basis",
        "StPO",
        "--received",
        "2026-05-01",
        "--type",
        "other",
        "--by",
        "intake",
    ]);
    assert_exit(&o, 0);
    assert_says(&o, "_unattributed-1");

    // Freeze the half year; a later change shows separately.
    let o = s.run(&["report", "--period", "2026H1", "--freeze"]);
    assert_eq!(code(&o), 2, "freezing needs a key: {}", text(&o));
    let o = s.run_as(
        "carol",
        &[
            "report", "--period", "2026H1", "--freeze", "--format", "json",
        ],
    );
    assert_exit(&o, 0);
    let r: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["report"]["requests"], 3);
    assert_eq!(r["report"]["by_outcome"]["redirected"], 1);
    assert_eq!(r["report"]["by_outcome"]["disclosed"], 1);
    let o = s.run_as("dave", &["report", "--period", "2026H1", "--freeze"]);
    assert_exit(&o, 1);
    let o = open("US", "2026-06-01");
    assert_exit(&o, 0);
    let o = s.run(&["report", "--period", "2026H1"]);
    assert_exit(&o, 0);
    let md = String::from_utf8_lossy(&o.stdout);
    for needle in [
        "received from 2026-01-01 to 2026-06-30: **3**",
        "signature verified",
        "| US | court_order | (recorded later) | pending |",
    ] {
        assert!(md.contains(needle), "{md}");
    }
}
