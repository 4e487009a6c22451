//! Copy throughput of `residency migrate` against a plain `aws s3 sync` of
//! the same data between the same two Garage servers, in the same run.
//!
//! Ignored by default (it moves ~100 MiB and needs the `aws` CLI):
//! `AWS_BIN=.venv/bin/aws cargo test -p residency-migrate --test throughput -- --ignored --nocapture`.
//! `aws s3 sync` cannot copy between two endpoints, so the baseline is what
//! an operator would do with it: sync the old region to a local directory,
//! then the directory to the new region (both steps timed).

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use residency_migrate::{MigrationOptions, Migrator, Phase, ProgressMode};
use residency_testkit::RegionInfo;
use support::*;

const TENANT: &str = "tputco";

fn aws(region: &RegionInfo, config: &std::path::Path, args: &[&str]) -> Duration {
    let bin = std::env::var("AWS_BIN").unwrap_or_else(|_| {
        repo_root()
            .join(".venv/bin/aws")
            .to_string_lossy()
            .into_owned()
    });
    let t = Instant::now();
    let out = Command::new(bin)
        .args(["--endpoint-url", &region.endpoint, "--only-show-errors"])
        .args(args)
        .env("AWS_ACCESS_KEY_ID", &region.access_key)
        .env("AWS_SECRET_ACCESS_KEY", &region.secret_key)
        .env("AWS_DEFAULT_REGION", &region.region)
        .env("AWS_CONFIG_FILE", config)
        .output()
        .expect("run aws");
    assert!(out.status.success(), "aws {args:?}: {out:?}");
    t.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: needs the aws CLI; run with --ignored --nocapture"]
async fn migrate_vs_aws_s3_sync() {
    let tenants = format!("[[tenants]]\nid = \"{TENANT}\"\n");
    let env = Env::new(&tenants).await;
    let c = cluster();
    let (us, eu) = (env.backend("us"), env.backend("eu"));
    // 1,500 objects of a few KiB (tickets), 12 of 200 KiB-1 MiB, and four of 20 MiB.
    let mut objs: Vec<Obj> = corpus(1500, &[20 << 20; 4]);
    objs.retain(|o| o.moves);
    seed(&us, TENANT, &objs).await;
    let bytes: u64 = objs.iter().map(|o| o.data.len() as u64).sum();
    let mib = bytes as f64 / (1024.0 * 1024.0);
    eprintln!("data set: {} objects, {mib:.1} MiB", objs.len());

    let mut o = MigrationOptions::new(TENANT, "eu");
    o.parallel = 16;
    o.progress = ProgressMode::Quiet;
    let t = Instant::now();
    let r = Migrator::new(
        env.policy.clone(),
        &env.tenants_path,
        env.backends.clone(),
        o,
    )
    .run()
    .await
    .expect("migrate");
    let migrate = t.elapsed();
    assert_eq!(r.phase, Some(Phase::Verified));
    assert_eq!(r.totals.copied, objs.len() as u64);

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("aws-config");
    std::fs::write(
        &config,
        "[default]\ns3 =\n  addressing_style = path\n  max_concurrent_requests = 16\n",
    )
    .unwrap();
    let local = dir.path().join("data");
    let down = aws(
        c.us(),
        &config,
        &[
            "s3",
            "sync",
            &format!("s3://{}/{TENANT}/", c.us().bucket),
            local.to_str().unwrap(),
        ],
    );
    let up = aws(
        c.eu(),
        &config,
        &[
            "s3",
            "sync",
            local.to_str().unwrap(),
            &format!("s3://{}/awssync-{TENANT}/", c.eu().bucket),
        ],
    );
    let n_synced = list_keys(&eu, &format!("awssync-{TENANT}/")).await.len();
    assert_eq!(n_synced, objs.len());
    let rate = |d: Duration| mib / d.as_secs_f64();
    let ops = |d: Duration| objs.len() as f64 / d.as_secs_f64();
    eprintln!(
        "residency migrate (copy + verify + journal, parallel 16): {:.2}s = {:.1} MiB/s, {:.0} objects/s",
        migrate.as_secs_f64(),
        rate(migrate),
        ops(migrate)
    );
    eprintln!(
        "aws s3 sync us->dir {:.2}s + dir->eu {:.2}s = {:.2}s = {:.1} MiB/s, {:.0} objects/s (no verification against the destination)",
        down.as_secs_f64(),
        up.as_secs_f64(),
        (down + up).as_secs_f64(),
        rate(down + up),
        ops(down + up)
    );
    // Clean up the baseline copy.
    for k in list_keys(&eu, &format!("awssync-{TENANT}/")).await {
        let _ = eu.delete_object(&k).await;
    }
    let _ = us;
}
