//! `kill -9` of the real `residency migrate` process, mid-copy and
//! mid-delete, then the same command again; and the
//! `RESIDENCY_MIGRATE_FAULT` fault points of the binary.
//!
//! The binary is `target/<profile>/residency`, built by `cargo test` for the
//! root package's own tests; when it is missing (only this package is being
//! tested) it is built first.

mod support;

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::*;

const TENANT: &str = "killco";

fn migrate(env: &Env, extra: &[&str]) -> Command {
    let mut c = Command::new(residency_bin());
    c.args(["migrate", "--config"])
        .arg(&env.config_path)
        .args([
            "--tenant",
            TENANT,
            "--to",
            "eu",
            "--parallel",
            "4",
            "--part-size-mib",
            "5",
        ])
        .args(["--progress", "log", "--json"])
        .args(extra)
        .env_remove("RESIDENCY_MIGRATE_FAULT")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

fn finished(c: &mut Command) -> Output {
    let out = c.output().expect("run residency migrate");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    out
}

fn report(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not a JSON report ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Starts the command and SIGKILLs it as soon as `ready` holds (checked
/// every 20 ms). Panics if the process ended by itself first.
async fn kill_when<F, Fut>(mut cmd: Command, mut ready: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let mut child: Child = cmd.spawn().expect("spawn residency migrate");
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            panic!("the migrator ended ({status}) before it could be killed");
        }
        if ready().await {
            break;
        }
        assert!(Instant::now() < deadline, "the kill condition never held");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().expect("SIGKILL"); // std's kill() is SIGKILL on Unix
    let status = child.wait().expect("wait");
    assert!(!status.success(), "killed: {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_copy_and_mid_delete_then_resume() {
    tokio::time::timeout(TEST_TIMEOUT, scenario())
        .await
        .expect("in time");
}

async fn scenario() {
    let tenants = format!(
        "[[tenants]]\nid = \"{TENANT}\"\nlocality = \"us\"\n[[tenants.keys]]\naccess_key = \"KILLCOKEY\"\nsecret_key = \"killco-secret\"\n"
    );
    let env = Env::new(&tenants).await;
    let (us, eu) = (env.backend("us"), env.backend("eu"));
    let objs = corpus(1200, &[6 << 20, 7 << 20]);
    seed(&us, TENANT, &objs).await;
    let moving: Vec<Obj> = objs.iter().filter(|o| o.moves).cloned().collect();
    let staying: Vec<Obj> = objs.iter().filter(|o| !o.moves).cloned().collect();
    let prefix = format!("{TENANT}/");

    // A fault point of the binary aborts the process (SIGABRT).
    let out = finished(migrate(&env, &[]).env("RESIDENCY_MIGRATE_FAULT", "after_copy:40"));
    assert!(
        out.status.code().is_none(),
        "aborted by a signal: {:?}",
        out.status
    );
    assert_eq!(list_keys(&us, &prefix).await.len(), objs.len());

    // kill -9 while copying.
    let eu_probe = eu.clone();
    let p = prefix.clone();
    kill_when(migrate(&env, &[]), move || {
        let (eu, p) = (eu_probe.clone(), p.clone());
        async move { list_keys(&eu, &p).await.len() >= 400 }
    })
    .await;
    assert_eq!(
        list_keys(&us, &prefix).await.len(),
        objs.len(),
        "nothing deleted"
    );

    // Resume: verified, old copies kept (30-day window).
    let out = finished(&mut migrate(&env, &[]));
    assert!(out.status.success(), "{out:?}");
    let r = report(&out);
    assert_eq!(r["phase"], "verified", "{r}");
    assert_eq!(r["totals"]["mismatched"], 0);
    assert_eq!(r["totals"]["verified"], moving.len() as u64, "{r}");
    assert!(
        r["this_run"]["copied"].as_u64().unwrap() < moving.len() as u64 - 300,
        "verified objects are not copied again: {r}"
    );
    let (same, missing, bad) = survey(&eu, TENANT, &moving).await;
    assert!(missing.is_empty() && bad.is_empty(), "{missing:?} {bad:?}");
    assert_eq!(same.len(), moving.len());
    assert_eq!(
        list_keys(&us, &prefix).await.len(),
        objs.len(),
        "nothing deleted"
    );

    // --finish inside the window: exit 3, nothing deleted.
    let out = finished(&mut migrate(&env, &["--finish"]));
    assert_eq!(out.status.code(), Some(3), "{out:?}");

    // kill -9 while deleting.
    let us_probe = us.clone();
    let p = prefix.clone();
    let total = objs.len();
    kill_when(
        migrate(&env, &["--finish", "--assurance", "0s"]),
        move || {
            let (us, p) = (us_probe.clone(), p.clone());
            async move { list_keys(&us, &p).await.len() <= total - 200 }
        },
    )
    .await;
    // Every old copy that is gone has its verified copy.
    let (_, gone, _) = survey(&us, TENANT, &objs).await;
    let gone: Vec<Obj> = objs
        .iter()
        .filter(|o| gone.contains(&o.key))
        .cloned()
        .collect();
    assert!(!gone.is_empty() && gone.iter().all(|o| o.moves));
    let (_, missing, bad) = survey(&eu, TENANT, &gone).await;
    assert!(missing.is_empty() && bad.is_empty(), "{missing:?} {bad:?}");

    let out = finished(&mut migrate(&env, &["--finish", "--assurance", "0s"]));
    assert!(out.status.success(), "{out:?}");
    let r = report(&out);
    assert_eq!(r["phase"], "finished", "{r}");
    assert_eq!(r["totals"]["deleted"], moving.len() as u64, "{r}");
    let mut left = list_keys(&us, &prefix).await;
    left.sort();
    let mut expect: Vec<String> = staying
        .iter()
        .map(|o| format!("{prefix}{}", o.key))
        .collect();
    expect.sort();
    assert_eq!(left, expect);
    let (same, _, bad) = survey(&eu, TENANT, &moving).await;
    assert_eq!(same.len(), moving.len(), "{bad:?}");
    let t = env.tenants_file();
    assert!(
        t.contains("locality = \"eu\"") && !t.contains("migrating_from"),
        "{t}"
    );

    // Twice is harmless.
    let out = finished(&mut migrate(&env, &[]));
    assert!(out.status.success());
    let r = report(&out);
    assert_eq!(r["phase"], "finished");
    assert_eq!(r["this_run"]["copied"], 0);
}
