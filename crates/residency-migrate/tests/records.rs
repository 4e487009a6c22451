//! Issue 18 item 6: "After a migration, the tenant's records stay behind."
//! Seed: "Backups and audit logs of Service Data for which Data Locality is
//! available ... are also Hosted in the selected region"; "After the
//! migration process has been completed and confirmed, deletion of the copy
//! of the Subscriber's Service Data in the former data center will
//! commence". The real `residency` binary between two real Garage servers:
//!
//! - the tenant's disclosure ledger is in the new home from the switch on
//!   (a request opened after the switch continues the same chain there);
//! - `residency migrate status` lists the migration, and once its assurance
//!   window has passed without `--finish`, lists it as overdue (exit 4,
//!   JSON `overdue`);
//! - after `--finish` the audit chains and the disclosure ledger verify in
//!   the new region (`residency audit verify` exit 0) and nothing of them
//!   is left in the old one; the tenants file records `migrated_from`.

mod support;

use std::process::Output;
use std::time::Duration;

use residency_disclosure::{Disclosures, Ledger, NewRequest, RequestType, Scope};
use residency_policy::{Ruleset, Tenants};
use residency_tower::audit::batch::{
    audit_prefix, read_events, BatchConfig, BatchingAuditSink, WriterId,
};
use residency_tower::audit::{AuditEvent, AuditSink};
use support::*;

const TENANT: &str = "recordco";

fn residency(env: &Env, args: &[&str]) -> Output {
    let out = residency_cmd(env, args).output().expect("run residency");
    eprintln!(
        "residency {args:?}: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn migrate(env: &Env, extra: &[&str]) -> Output {
    let mut args = vec![
        "migrate",
        "--tenant",
        TENANT,
        "--to",
        "eu",
        "--progress",
        "quiet",
    ];
    args.extend_from_slice(extra);
    residency(env, &args)
}

fn request(n: u32) -> NewRequest {
    NewRequest {
        tenant: TENANT.into(),
        authority: "Bundeskriminalamt".into(),
        country: "de".into(),
        legal_basis: format!("StPO §95 ({n})"),
        received: "2026-07-15".parse().unwrap(),
        request_type: RequestType::CourtOrder,
        scope: Scope {
            keys: vec!["tickets/1.json".into()],
            ..Scope::default()
        },
        notice_prohibited: None,
    }
}

/// `residency disclosure`'s library, on the tenants file as it is now.
fn disclosures(env: &Env) -> Disclosures {
    let tenants = Tenants::from_toml(&env.tenants_file(), "tenants.toml", &env.policy)
        .expect("valid tenants");
    Disclosures::new(
        Ruleset::new(env.policy.clone(), tenants),
        env.backends.clone(),
    )
    .expect("disclosures")
}

fn event(n: usize) -> AuditEvent {
    AuditEvent {
        time: AuditEvent::now(),
        request_id: format!("req-{n}"),
        tenant: TENANT.into(),
        op: "put".into(),
        key: format!("tickets/{n}.json"),
        category: Some("ticket_data".into()),
        classified_by: Some("key_rule".into()),
        decision: "allow".into(),
        regions: vec!["us".into()],
        bucket: Some(TENANT.into()),
        reason: "locality".into(),
        out_of_locality: false,
        policy_version: "2017-11-01".into(),
        store_region: "us".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_move_with_the_data_and_an_overdue_migration_is_listed() {
    tokio::time::timeout(TEST_TIMEOUT, scenario())
        .await
        .expect("in time");
}

async fn scenario() {
    let tenants = format!("[[tenants]]\nid = \"{TENANT}\"\nlocality = \"us\"\n");
    let env = Env::new(&tenants).await;
    let (us, eu) = (env.backend("us"), env.backend("eu"));
    seed(&us, TENANT, &corpus(30, &[])).await;

    // The sidecar's audit trail of the tenant while it lived in the US:
    // two batches of one writer's chain.
    let sink = BatchingAuditSink::new(
        env.backends.clone(),
        WriterId::new("sidecar-1").unwrap(),
        BatchConfig::default(),
    );
    for n in 0..3 {
        sink.record(event(n));
    }
    sink.flush().await.expect("first batch");
    for n in 3..5 {
        sink.record(event(n));
    }
    sink.shutdown().await.expect("second batch");
    let audit = audit_prefix(TENANT);
    assert_eq!(list_keys(&us, &audit).await.len(), 3, "2 batches + HEAD");

    // A disclosure request recorded in its US ledger.
    disclosures(&env)
        .open(request(1), "privacy@example.com", "received")
        .await
        .expect("open");
    let ledger_prefix = format!("_disclosure/{TENANT}/");
    assert!(!list_keys(&us, &ledger_prefix).await.is_empty());

    // Switch, copy, verify; old copies kept for a 2 s window.
    let out = migrate(&env, &["--assurance", "2s", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stdout_json(&out)["phase"], "verified");

    // From the switch on, the ledger is whole in the new home: a request
    // opened now continues the same chain there.
    let eu_ledger = Ledger::new(TENANT, "eu", eu.clone());
    let v = eu_ledger.verify().await.expect("read eu ledger");
    assert!(v.ok && v.requests == 1, "{v:?}");
    disclosures(&env)
        .open(request(2), "privacy@example.com", "received")
        .await
        .expect("open after the switch");
    let v = eu_ledger.verify().await.expect("read eu ledger");
    assert!(v.ok && v.requests == 2, "{v:?}");

    // The window passes without --finish: overdue.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let out = residency(&env, &["migrate", "status", "--tenant", TENANT, "--json"]);
    assert_eq!(out.status.code(), Some(4), "exit 4: a migration is overdue");
    let s = stdout_json(&out);
    assert_eq!(s["overdue"], 1, "{s:#}");
    let m = &s["migrations"][0];
    assert_eq!(
        (m["from"].as_str(), m["to"].as_str(), m["phase"].as_str()),
        (Some("us"), Some("eu"), Some("verified")),
        "{s:#}"
    );
    assert_eq!(m["overdue"], true);
    assert_eq!(
        m["finish_command"],
        format!("residency migrate --tenant {TENANT} --to eu --finish")
    );
    let text = residency(&env, &["migrate", "status", "--tenant", TENANT]);
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("OVERDUE"),
        "{}",
        String::from_utf8_lossy(&text.stdout)
    );

    // --finish: the records move with the data.
    let out = migrate(&env, &["--finish", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let r = stdout_json(&out);
    assert_eq!(r["phase"], "finished", "{r:#}");
    assert!(
        r["totals"]["records"]["audit_deleted"].as_u64() >= Some(3),
        "{r:#}"
    );
    assert!(
        list_keys(&us, &audit).await.is_empty(),
        "no audit record left in the old region"
    );
    assert!(
        list_keys(&us, &ledger_prefix).await.is_empty(),
        "no ledger entry left in the old region"
    );
    assert!(list_keys(&us, &format!("{TENANT}/tickets/"))
        .await
        .is_empty());
    // In the new region: the chain verifies (the audit CLI, every region),
    // and holds the US-era events.
    let out = residency(&env, &["audit", "verify", "--tenant", TENANT, "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let only_eu = [("eu".to_owned(), eu.clone())];
    let events = read_events(&only_eu, TENANT).await.expect("events");
    for n in 0..5 {
        let id = format!("req-{n}");
        assert!(events.iter().any(|e| e.request_id == id), "{id} moved");
    }
    assert!(events.iter().any(|e| e.op == "migrate_records"));
    let v = eu_ledger.verify().await.expect("read eu ledger");
    assert!(v.ok && v.requests == 2, "{v:?}");
    assert!(env.tenants_file().contains("migrated_from = \"us\""));

    let out = residency(&env, &["migrate", "status", "--tenant", TENANT, "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let s = stdout_json(&out);
    assert_eq!(s["overdue"], 0);
    assert_eq!(s["migrations"][0]["phase"], "finished");
}
