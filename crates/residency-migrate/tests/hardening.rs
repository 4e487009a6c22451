//! Issue "Hardening", migration items: a killed `residency migrate` (the
//! real binary, aborted at a fault point as `kill -9` would stop it) and
//! the same command again, between two real Garage servers:
//!
//! - the audit trail has `migrate_start`, `migrate_switch` and a
//!   `migrate_copy` for every object copied, and `audit verify` says intact;
//! - the totals count every copy, the killed run's included;
//! - the multipart upload the killed run left open is aborted;
//! - a migration to another region is refused (exit 3) while this one is
//!   open, naming it and the command that finishes it, the tenants file
//!   unchanged;
//! - refusals print JSON on stdout with `--json`.

mod support;

use std::collections::BTreeSet;
use std::process::{Command, Output};

use support::*;

const TENANT: &str = "hardco";

fn migrate(env: &Env, to: &str, extra: &[&str]) -> Command {
    let mut c = residency_cmd(env, &["migrate"]);
    c.args([
        "--tenant",
        TENANT,
        "--to",
        to,
        "--parallel",
        "4",
        "--part-size-mib",
        "5",
        "--progress",
        "quiet",
    ])
    .args(extra);
    c
}

fn run(c: &mut Command) -> Output {
    let out = c.output().expect("run residency");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_run_then_resume_keeps_audit_totals_uploads_and_refuses_a_second_migration() {
    tokio::time::timeout(TEST_TIMEOUT, scenario())
        .await
        .expect("in time");
}

async fn scenario() {
    let tenants = format!(
        "[[tenants]]\nid = \"{TENANT}\"\nlocality = \"us\"\n[[tenants.keys]]\naccess_key = \"HARDCOKEY\"\nsecret_key = \"hardco-secret\"\n"
    );
    let env = Env::new(&tenants).await;
    let (us, eu) = (env.backend("us"), env.backend("eu"));
    // Two objects above the 5 MiB part size: multipart copies.
    let objs = corpus(240, &[6 << 20, 7 << 20]);
    seed(&us, TENANT, &objs).await;
    let moving: Vec<&Obj> = objs.iter().filter(|o| o.moves).collect();
    let moving_bytes: u64 = moving.iter().map(|o| o.data.len() as u64).sum();
    let prefix = format!("{TENANT}/");

    // 1. Killed in the middle of a multipart copy (SIGABRT: no cleanup).
    let out = run(migrate(&env, "eu", &["--json"]).env("RESIDENCY_MIGRATE_FAULT", "after_part:1"));
    assert!(out.status.code().is_none(), "killed: {:?}", out.status);
    let copied_by_killed = list_keys(&eu, &prefix).await.len();
    assert!(copied_by_killed > 0, "the killed run copied something");
    let open = eu
        .list_multipart_uploads(&prefix)
        .await
        .expect("list uploads");
    assert!(!open.is_empty(), "the killed run left an upload open");

    // 2. Resume: every object verified, nothing lost.
    let out = run(&mut migrate(&env, "eu", &["--json"]));
    assert!(out.status.success(), "{out:?}");
    let r = stdout_json(&out);
    assert_eq!(r["phase"], "verified", "{r}");
    let (same, missing, bad) = survey(
        &eu,
        TENANT,
        &moving.iter().map(|o| (*o).clone()).collect::<Vec<_>>(),
    )
    .await;
    assert!(missing.is_empty() && bad.is_empty(), "{missing:?} {bad:?}");
    assert_eq!(same.len(), moving.len());

    // Totals: every object was copied once, by one run or the other.
    assert_eq!(r["totals"]["copied"], moving.len() as u64, "{r}");
    assert!(
        r["totals"]["copied_bytes"].as_u64().unwrap() >= moving_bytes,
        "totals count the killed run's copies: {r}"
    );
    assert!(
        r["this_run"]["copied"].as_u64().unwrap() < moving.len() as u64,
        "what the killed run copied is not copied again: {r}"
    );

    // The killed run's upload is aborted, and counted.
    let left = eu
        .list_multipart_uploads(&prefix)
        .await
        .expect("list uploads");
    assert!(left.is_empty(), "uploads left open: {left:?}");
    let left = us
        .list_multipart_uploads(&prefix)
        .await
        .expect("list uploads");
    assert!(left.is_empty(), "uploads left open in the source: {left:?}");
    assert!(r["totals"]["aborted_uploads"].as_u64().unwrap() >= 1, "{r}");
    let notes = list_keys(&eu, &format!("_migrations/{TENANT}/")).await;
    assert!(
        !notes.iter().any(|k| k.contains("/uploads/")),
        "upload notes cleared: {notes:?}"
    );

    // Audit: start, switch, and a migrate_copy for every object copied.
    let out =
        run(residency_cmd(&env, &["audit", "show", "--tenant", TENANT, "--json"]).env_remove("X"));
    assert!(out.status.success(), "{out:?}");
    let events: Vec<serde_json::Value> = out
        .stdout
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).expect("a JSON event"))
        .collect();
    let ops: Vec<&str> = events.iter().filter_map(|e| e["op"].as_str()).collect();
    assert!(ops.contains(&"migrate_start"), "{ops:?}");
    assert!(ops.contains(&"migrate_switch"), "{ops:?}");
    assert!(ops.contains(&"migrate_verified"), "{ops:?}");
    let copy_keys: BTreeSet<&str> = events
        .iter()
        .filter(|e| e["op"] == "migrate_copy")
        .filter_map(|e| e["key"].as_str())
        .collect();
    let missing_events: Vec<&str> = moving
        .iter()
        .map(|o| o.key.as_str())
        .filter(|k| !copy_keys.contains(k))
        .collect();
    assert!(
        missing_events.is_empty(),
        "{} copied objects without a migrate_copy event: {:?}",
        missing_events.len(),
        &missing_events[..missing_events.len().min(5)]
    );
    let out = run(&mut residency_cmd(
        &env,
        &["audit", "verify", "--tenant", TENANT],
    ));
    assert!(out.status.success(), "audit verify: {out:?}");

    // 3. Another migration while this one is open: refused, exit 3.
    let id = r["migration_id"].as_str().expect("id").to_owned();
    let before = env.tenants_file();
    let out = run(&mut migrate(&env, "us", &[]));
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    for want in [id.as_str(), "us -> eu", "verified", "--finish"] {
        assert!(err.contains(want), "{want:?} not in {err}");
    }
    assert_eq!(env.tenants_file(), before, "the tenants file is unchanged");
    let out = run(&mut migrate(&env, "us", &["--json"]));
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let j = stdout_json(&out);
    assert_eq!(j["error"], "open_migration", "{j}");
    assert_eq!(j["open_migration"]["id"], id.as_str(), "{j}");
    assert_eq!(j["open_migration"]["phase"], "verified", "{j}");
    assert_eq!(j["exit_code"], 3);

    // 4. --finish inside the assurance window: refused, as JSON.
    let out = run(&mut migrate(&env, "eu", &["--finish", "--json"]));
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let j = stdout_json(&out);
    assert_eq!(j["error"], "not_ready", "{j}");
    assert!(
        j["message"].as_str().unwrap().contains("assurance window"),
        "{j}"
    );
    assert_eq!(
        list_keys(&us, &prefix).await.len(),
        objs.len(),
        "nothing deleted"
    );

    // 5. Finished: the other direction may start (and is not refused).
    let out = run(&mut migrate(
        &env,
        "eu",
        &["--finish", "--assurance", "0s", "--json"],
    ));
    assert!(out.status.success(), "{out:?}");
    assert_eq!(stdout_json(&out)["phase"], "finished");
    let out = run(&mut migrate(&env, "us", &["--dry-run", "--json"]));
    assert!(out.status.success(), "{out:?}");
}
