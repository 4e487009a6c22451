//! Migrating a tenant from `us` to `eu` between two real Garage servers,
//! with the migrator stopped at several fault points and restarted, reads
//! and writes going through an in-process sidecar all along.

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use residency_migrate::{
    FaultPoint, MigrateError, MigrationOptions, Migrator, Phase, ProgressMode,
};
use residency_proxy::{ServeOptions, Sidecar};
use residency_store::{Backend, Body, S3Backend, S3BackendConfig, StoreError};
use sha2::{Digest, Sha256};
use support::*;

const TENANT: &str = "bigco";
const KEY: (&str, &str) = ("BIGCOKEY", "bigco-secret-key-for-tests");

fn tenants() -> String {
    format!(
        "# Test tenants.\n[[tenants]]\nid = \"{TENANT}\"   # no locality add-on yet: lives in us\n[[tenants.keys]]\naccess_key = \"{}\"\nsecret_key = \"{}\"\n",
        KEY.0, KEY.1
    )
}

fn opts(fault: Option<FaultPoint>, assurance: Option<Duration>) -> MigrationOptions {
    let mut o = MigrationOptions::new(TENANT, "eu");
    o.parallel = 8;
    // Small parts keep the multipart objects (and the test) small.
    o.part_size = 5 << 20;
    o.multipart_threshold = 5 << 20;
    o.fault = fault;
    o.assurance = assurance;
    o.progress = ProgressMode::Quiet;
    o
}

fn migrator(env: &Env, o: MigrationOptions) -> Migrator {
    Migrator::new(
        env.policy.clone(),
        &env.tenants_path,
        env.backends.clone(),
        o,
    )
}

/// An S3 client of the sidecar acting as the tenant.
fn sidecar_client(addr: std::net::SocketAddr) -> Arc<dyn Backend> {
    let cfg = S3BackendConfig::builder(TENANT, "us-east-1")
        .endpoint(format!("http://{addr}"))
        .credentials(KEY.0, KEY.1)
        .operation_timeout(Duration::from_secs(60))
        .build()
        .expect("client config");
    Arc::new(S3Backend::new(cfg).expect("client"))
}

async fn expect_fault(m: Migrator, finish: bool) {
    let r = if finish {
        m.finish().await
    } else {
        m.run().await
    };
    match r {
        Err(MigrateError::Fault(_)) => {}
        other => panic!("expected the fault point to stop the run, got {other:?}"),
    }
}

/// Every old copy that is gone has an identical copy in the new region
/// (`current`: the objects as the tenant last wrote them, aligned with
/// `original`, as seeded in the old region).
async fn assert_nothing_lost(env: &Env, original: &[Obj], current: &[Obj]) {
    let (us, eu) = (env.backend("us"), env.backend("eu"));
    let (_, us_missing, us_bad) = survey(&us, TENANT, original).await;
    assert!(us_bad.is_empty(), "old copies changed: {us_bad:?}");
    let gone: Vec<Obj> = current
        .iter()
        .filter(|o| us_missing.contains(&o.key))
        .cloned()
        .collect();
    assert!(gone.iter().all(|o| o.moves), "a staying object was deleted");
    let (_, eu_missing, eu_bad) = survey(&eu, TENANT, &gone).await;
    assert!(
        eu_missing.is_empty() && eu_bad.is_empty(),
        "deleted before a verified copy existed: missing {eu_missing:?}, bad {eu_bad:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn migrates_2000_objects_through_faults_with_sidecar_reads() {
    tokio::time::timeout(TEST_TIMEOUT, scenario())
        .await
        .expect("the scenario finishes in time");
}

async fn scenario() {
    let env = Env::new(&tenants()).await;
    let (us, eu) = (env.backend("us"), env.backend("eu"));
    // 2,000 objects plus three above the multipart threshold (~34 MiB).
    let mut objs = corpus(2000, &[6 << 20, (11 << 20) + 3, (17 << 20) + 1]);
    seed(&us, TENANT, &objs).await;
    let original = objs.clone();
    let movers = objs.iter().filter(|o| o.moves).count() as u64;
    let stayers = objs.len() as u64 - movers;

    // Plan: nothing written, counts by policy.
    let plan = migrator(&env, opts(None, None)).plan().await.expect("plan");
    assert_eq!(plan.totals.listed, objs.len() as u64);
    assert_eq!(plan.totals.planned, movers);
    assert_eq!(plan.totals.skipped_by_policy, stayers);
    assert_eq!(
        plan.totals.skipped_by_category.get("call_recordings"),
        Some(&stayers)
    );
    assert!(list_keys(&eu, &format!("{TENANT}/")).await.is_empty());
    assert!(!env.tenants_file().contains("migrating_from"));

    // The sidecar serves the tenant throughout.
    let sidecar = Arc::new(
        Sidecar::build(&env.config_path, &ServeOptions::default())
            .await
            .expect("sidecar"),
    );
    let s3 = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = s3.local_addr().unwrap();
    let server = tokio::spawn(residency_proxy::run(sidecar.clone(), s3, admin));
    let client = sidecar_client(addr);

    // A reader: every object, through the sidecar, again and again.
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));
    let reader = {
        let (stop, reads, client) = (stop.clone(), reads.clone(), client.clone());
        // Skip the objects the test rewrites below.
        let sample: Vec<Obj> = objs.iter().skip(1).step_by(7).cloned().collect();
        tokio::spawn(async move {
            let mut failures = Vec::new();
            'outer: loop {
                for o in &sample {
                    if stop.load(Ordering::Relaxed) {
                        break 'outer;
                    }
                    match compare(&client, &o.key, o).await {
                        Some(p) if p.is_empty() => {}
                        Some(p) => failures.push(p),
                        None => failures.push(format!("{}: 404 through the sidecar", o.key)),
                    }
                    reads.fetch_add(1, Ordering::Relaxed);
                }
            }
            failures
        })
    };

    // 1. Crash after the 150th copy: the switch happened, nothing deleted.
    expect_fault(
        migrator(&env, opts(Some(FaultPoint::AfterCopy(150)), None)),
        false,
    )
    .await;
    let t = env.tenants_file();
    assert!(
        t.contains("locality = \"eu\"") && t.contains("migrating_from = \"us\""),
        "{t}"
    );
    assert!(t.contains("# no locality add-on yet"), "comments kept: {t}");
    assert_eq!(
        list_keys(&us, &format!("{TENANT}/")).await.len(),
        objs.len()
    );
    // The sidecar picks the switch up (it also polls the file).
    assert!(sidecar.reload());

    // Writes through the sidecar now go to eu: a new object, and a rewrite
    // of an object that may not be copied yet (the copy must not clobber it).
    let fresh = Obj {
        key: "tickets/new-after-switch/comment.json".into(),
        data: Bytes::from_static(b"{\"new\":true}"),
        content_type: Some("application/json".into()),
        meta: BTreeMap::new(),
        cache_control: None,
        moves: true,
    };
    let mut rewritten = objs[0].clone();
    rewritten.data = Bytes::from_static(b"{\"rewritten\":true}");
    for o in [&fresh, &rewritten] {
        client
            .put_object(&o.key, Body::from_bytes(o.data.clone()), put_meta(o))
            .await
            .expect("put through the sidecar");
        let key = format!("{TENANT}/{}", o.key);
        assert_eq!(
            compare(&eu, &key, o).await.as_deref(),
            Some(""),
            "new writes land in eu"
        );
    }
    assert!(matches!(
        us.head_object(&format!("{TENANT}/{}", fresh.key)).await,
        Err(StoreError::NotFound { .. })
    ));
    objs[0] = rewritten.clone();

    // 2. Crash after a journal segment is stored, before its state.
    expect_fault(
        migrator(&env, opts(Some(FaultPoint::AfterSegment(1)), None)),
        false,
    )
    .await;
    // 3. Crash after a state update.
    expect_fault(
        migrator(&env, opts(Some(FaultPoint::AfterState(1)), None)),
        false,
    )
    .await;
    assert_nothing_lost(&env, &original, &objs).await;

    // 4. Resume to the end of the copy: verified, nothing deleted (30-day window).
    let r = migrator(&env, opts(None, None)).run().await.expect("run");
    assert_eq!(r.phase, Some(Phase::Verified), "{}", r.to_text());
    assert!(r.ok());
    assert_eq!(r.totals.planned, movers, "{}", r.to_text());
    assert_eq!(
        r.totals.verified + r.totals.superseded,
        movers,
        "{}",
        r.to_text()
    );
    assert_eq!(r.totals.skipped_by_policy, stayers);
    assert!(
        r.this_run.listed < objs.len() as u64,
        "a restart resumes after the stored pages: {}",
        r.to_text()
    );
    assert!(r.totals.copied <= movers);
    assert_eq!(
        list_keys(&us, &format!("{TENANT}/")).await.len(),
        objs.len(),
        "nothing deleted"
    );
    let moving: Vec<Obj> = objs.iter().filter(|o| o.moves).cloned().collect();
    let (same, missing, bad) = survey(&eu, TENANT, &moving).await;
    assert!(
        missing.is_empty() && bad.is_empty(),
        "missing {missing:?} bad {bad:?}"
    );
    assert_eq!(same.len() as u64, movers);
    let staying: Vec<Obj> = objs.iter().filter(|o| !o.moves).cloned().collect();
    let (_, missing, _) = survey(&eu, TENANT, &staying).await;
    assert_eq!(missing.len(), staying.len(), "call recordings stay in us");

    // --finish before the window has passed deletes nothing.
    match migrator(&env, opts(None, None)).finish().await {
        Err(MigrateError::NotReady(_)) => {}
        other => panic!("expected NotReady, got {other:?}"),
    }

    // A late write to the old region (a sidecar that had not reloaded yet).
    let late = Obj {
        key: "tickets/late/comment.json".into(),
        data: Bytes::from_static(b"{\"late\":true}"),
        content_type: Some("application/json".into()),
        meta: BTreeMap::new(),
        cache_control: None,
        moves: true,
    };
    us.put_object(
        &format!("{TENANT}/{}", late.key),
        Body::from_bytes(late.data.clone()),
        put_meta(&late),
    )
    .await
    .unwrap();

    // 5. Crash in the middle of the deletions.
    expect_fault(
        migrator(
            &env,
            opts(Some(FaultPoint::AfterDelete(300)), Some(Duration::ZERO)),
        ),
        true,
    )
    .await;
    assert_nothing_lost(&env, &original, &objs).await;

    // 6. Finish.
    let r = migrator(&env, opts(None, Some(Duration::ZERO)))
        .finish()
        .await
        .expect("finish");
    assert_eq!(r.phase, Some(Phase::Finished), "{}", r.to_text());
    assert!(r.ok());
    assert_eq!(r.totals.deleted, movers + 1, "{}", r.to_text());
    let mut us_left = list_keys(&us, &format!("{TENANT}/")).await;
    us_left.sort();
    let mut expect_left: Vec<String> = staying
        .iter()
        .map(|o| format!("{TENANT}/{}", o.key))
        .collect();
    expect_left.sort();
    assert_eq!(
        us_left, expect_left,
        "only what policy keeps in us is left there"
    );
    let mut final_eu = moving.clone();
    final_eu.push(fresh.clone());
    final_eu.push(late.clone());
    let (same, missing, bad) = survey(&eu, TENANT, &final_eu).await;
    assert!(
        missing.is_empty() && bad.is_empty(),
        "missing {missing:?} bad {bad:?}"
    );
    assert_eq!(same.len(), final_eu.len());
    let t = env.tenants_file();
    assert!(
        t.contains("locality = \"eu\"") && !t.contains("migrating_from"),
        "{t}"
    );

    // 7. Running it again is harmless.
    let r = migrator(&env, opts(None, Some(Duration::ZERO)))
        .run()
        .await
        .expect("again");
    assert_eq!(r.phase, Some(Phase::Finished));
    assert_eq!(r.this_run.copied, 0);
    assert_eq!(r.this_run.deleted, 0);

    // Reads through the sidecar never failed.
    assert!(sidecar.reload());
    stop.store(true, Ordering::Relaxed);
    let failures = reader.await.unwrap();
    assert!(reads.load(Ordering::Relaxed) > 100, "the reader ran");
    assert!(
        failures.is_empty(),
        "reads through the sidecar failed: {failures:?}"
    );
    for o in &final_eu[..3] {
        assert_eq!(compare(&client, &o.key, o).await.as_deref(), Some(""));
    }
    let _ = Sha256::digest(b"");
    server.abort();
}
