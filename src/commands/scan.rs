//! `residency scan`: reconcile what is stored against the policy and the
//! tenant directory.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use residency_directory::{Directory, FileDirectory};
use residency_migrate::ProgressMode;
use residency_proxy::config::BackendConfig;
use residency_proxy::Config;
use residency_scan::inventory::Manifest;
use residency_scan::{report, ScanError, ScanOptions, Scanner};
use sha2::Digest as _;

use super::migrate::ProgressArg;

const AFTER: &str = "\
What is reported (each finding has its one-line reason):
  misplaced                not in the region the policy places it in now
  strict_outside_locality  a strict tenant's data outside its locality
  feature_removed          data of a feature the tenant no longer has
  migration_leftover       an old copy in a migration's source region after
                           the migration finished or its window passed
  unknown_tenant           a key of no tenant of the directory
  unclassifiable           no key rule, stored category or content type
                           classifies it
  record_out_of_place      an audit batch, migration journal or disclosure
                           ledger where its tenant has no data, or a folder
                           Residency does not write

Written to --out (default ./residency-scan):
  findings.jsonl   one JSON object per finding, streamed while listing
  summary.json     counts per tenant x category x region, findings per kind
  report.html      a self-contained report (open it in a browser)
  checkpoint.json  while it runs: a scan that is killed or fails resumes
                   from it when the same command runs again (--restart
                   starts afresh)

With --inventory, a region's keys come from its S3 Inventory report (a
manifest.json and its CSV or Parquet files, each checked against its MD5, in
a local copy of the inventory's destination bucket: `aws s3 sync s3://DEST
DIR`) instead of a LIST; rows of noncurrent versions are skipped; each
finding is then checked against the live bucket with a LIST at its key:
an object deleted since the inventory is left out, one written again since
is reconciled as it is now. Objects written after the inventory are not in
it: the next inventory, or a LIST scan (`--tenant T`), covers them.

Objects whose key no rule classifies are read with a HEAD (their stored
content type and x-amz-meta-residency-category decide); the rest are
decided from the listing alone.

Exit codes: 0 clean, 1 findings (or a region or the directory failed: the
scan is incomplete, run it again to resume), 2 bad arguments or
configuration, or an inventory that cannot be read.";

/// Arguments of `residency scan`.
#[derive(Args, Debug)]
#[command(after_long_help = AFTER)]
pub(crate) struct ScanArgs {
    /// The sidecar's configuration file (regions' backends, policy, tenant
    /// directory or tenants file).
    #[arg(long, value_name = "FILE", default_value = "config/residency.toml")]
    config: PathBuf,
    /// Only this tenant's objects and internal records.
    #[arg(long)]
    tenant: Option<String>,
    /// Only this region (repeat for several; default: every region).
    #[arg(long = "region", value_name = "REGION")]
    regions: Vec<String>,
    /// The output folder.
    #[arg(long, value_name = "DIR", default_value = "residency-scan")]
    out: PathBuf,
    /// Objects read (HEAD) at once per region; regions are listed at once.
    #[arg(long, value_name = "N", default_value_t = 16,
          value_parser = clap::value_parser!(u16).range(1..=256))]
    parallel: u16,
    /// Keys per LIST page (1-1000).
    #[arg(long, value_name = "N", default_value_t = 1000,
          value_parser = clap::value_parser!(u16).range(1..=1000))]
    page_size: u16,
    /// Seconds between checkpoints (0: after every page).
    #[arg(long, value_name = "SECONDS", default_value_t = 2)]
    checkpoint_secs: u64,
    /// Start afresh even if --out holds an unfinished scan.
    #[arg(long)]
    restart: bool,
    /// Also write the findings per kind in Prometheus text format to this
    /// file (for node_exporter's textfile collector).
    #[arg(long, value_name = "FILE")]
    metrics_file: Option<PathBuf>,
    /// Progress display.
    #[arg(long, value_enum, default_value_t = ProgressArg::Auto)]
    progress: ProgressArg,
    /// Print the summary as one JSON object on stdout instead of the table.
    #[arg(long)]
    json: bool,
    /// Also write the moves that fix the misplaced objects (JSON lines:
    /// tenant, key, from, to) to this file, for `residency remediate`.
    #[arg(long, value_name = "FILE")]
    plan: Option<PathBuf>,
    /// Read this S3 Inventory manifest instead of listing its region (the
    /// region whose bucket is the manifest's sourceBucket, or REGION=).
    /// Repeat for several regions; only these regions are scanned unless
    /// --region says otherwise.
    #[arg(long = "inventory", value_name = "[REGION=]MANIFEST")]
    inventories: Vec<String>,
}

/// Each `--inventory` read, with its region: the one named, else the one
/// whose S3 bucket is the manifest's source bucket.
fn inventories(args: &ScanArgs) -> Result<Vec<(String, Manifest)>, ExitCode> {
    if args.inventories.is_empty() {
        return Ok(Vec::new());
    }
    let config = super::or_config_exit(Config::load(&args.config))?;
    let mut out = Vec::new();
    for arg in &args.inventories {
        let (region, path) = match arg.split_once('=') {
            Some((r, p)) if config.regions.iter().any(|(id, _)| id == r) => (Some(r.to_owned()), p),
            _ => (None, arg.as_str()),
        };
        let manifest = super::or_config_exit(Manifest::open(std::path::Path::new(path)))?;
        let region = match region {
            Some(r) => r,
            None => {
                let by_bucket: Vec<&String> = config
                    .regions
                    .iter()
                    .filter(|(_, b)| {
                        matches!(b, BackendConfig::S3 { bucket, .. } if *bucket == manifest.source_bucket)
                    })
                    .map(|(id, _)| id)
                    .collect();
                super::or_config_exit(match by_bucket[..] {
                    [one] => Ok(one.clone()),
                    [] => Err(format!(
                        "{path}: no region of {} stores bucket {:?}; name the region: --inventory REGION={path}",
                        args.config.display(),
                        manifest.source_bucket
                    )),
                    _ => Err(format!(
                        "{path}: bucket {:?} is the bucket of regions {} (on different endpoints); name the region: --inventory REGION={path}",
                        manifest.source_bucket,
                        by_bucket.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                    )),
                })?
            }
        };
        out.push((region, manifest));
    }
    Ok(out)
}

/// `RESIDENCY_SCAN_FAULT=abort_after_pages:N` (tests): abort the process
/// once N pages are reconciled, before their checkpoint.
fn fault_from_env() -> Result<Option<u64>, ExitCode> {
    match std::env::var("RESIDENCY_SCAN_FAULT") {
        Ok(v) if !v.is_empty() => v
            .strip_prefix("abort_after_pages:")
            .and_then(|n| n.parse().ok())
            .map(Some)
            .ok_or_else(|| {
                eprintln!("error: RESIDENCY_SCAN_FAULT must be abort_after_pages:N, not {v:?}");
                ExitCode::from(super::EXIT_CONFIG)
            }),
        _ => Ok(None),
    }
}

pub(crate) fn run(args: ScanArgs) -> ExitCode {
    super::block_on(run_async(args))
}

async fn run_async(args: ScanArgs) -> Result<ExitCode, ExitCode> {
    let abort_after_pages = fault_from_env()?;
    let inventories = inventories(&args)?;
    let (scanner, policy_sha256) = open_scanner(&args.config).await?;
    let opts = ScanOptions {
        tenant: args.tenant.clone(),
        regions: args.regions.clone(),
        parallel: usize::from(args.parallel),
        page_size: usize::from(args.page_size),
        checkpoint_every: Duration::from_secs(args.checkpoint_secs),
        restart: args.restart,
        progress: match args.progress {
            ProgressArg::Auto => ProgressMode::Auto,
            ProgressArg::Log => ProgressMode::Log,
            ProgressArg::Quiet => ProgressMode::Quiet,
        },
        policy_sha256,
        abort_after_pages,
        inventories,
        ..ScanOptions::new(&args.out)
    };
    let outcome = match scanner.run(&opts).await {
        Ok(o) => o,
        Err(e @ (ScanError::Usage(_) | ScanError::Inventory { .. })) => {
            eprintln!("error: {e}");
            return Err(ExitCode::from(super::EXIT_CONFIG));
        }
        Err(e) => {
            eprintln!(
                "error: {e}\nthe scan is incomplete; its checkpoint is in {}: run the same command again to resume",
                args.out.display()
            );
            return Err(ExitCode::FAILURE);
        }
    };
    let summary = &outcome.summary;
    let html = args.out.join(report::REPORT_FILE);
    if let Err(e) = report::write_html(summary, &outcome.findings_path, &html) {
        eprintln!("error: {e}");
        return Err(ExitCode::FAILURE);
    }
    if let Some(plan) = &args.plan {
        match residency_scan::remediate::write_plan(&outcome.findings_path, plan) {
            Ok((moves, other)) => eprintln!(
                "plan: {moves} move(s) written to {}; {other} finding(s) no move fixes (see the report)",
                plan.display()
            ),
            Err(e) => {
                eprintln!("error: {e}");
                return Err(ExitCode::FAILURE);
            }
        }
    }
    if let Some(path) = &args.metrics_file {
        if let Err(e) = write_metrics(path, summary) {
            eprintln!("error: {}: {e}", path.display());
            return Err(ExitCode::FAILURE);
        }
    }
    if args.json {
        super::print_json(summary)?;
    } else {
        if outcome.resumed {
            println!("(resumed from the checkpoint in {})", args.out.display());
        }
        print!("{}", report::text(summary));
        println!(
            "report: {}\nfindings: {}",
            html.display(),
            outcome.findings_path.display()
        );
    }
    Ok(if summary.is_clean() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The scanner over a sidecar configuration's regions and tenant directory
/// (the tenants file, or PostgreSQL: tenants only, no secret read, no
/// key-encryption key needed), and the policy file's SHA-256 (hex).
pub(crate) async fn open_scanner(path: &std::path::Path) -> Result<(Scanner, String), ExitCode> {
    let config = super::or_config_exit(Config::load(path))?;
    let policy_bytes = super::or_config_exit(
        std::fs::read(&config.policy)
            .map_err(|e| format!("cannot read {}: {e}", config.policy.display())),
    )?;
    let backends = super::or_config_exit(config.open_backends().await)?;
    let (policy, directory): (_, Arc<dyn Directory>) = match &config.directory {
        None => {
            let (rules, _) = super::or_config_exit(config.load_rules())?;
            let directory = Arc::new(FileDirectory::without_keys(rules.tenants_shared().clone()));
            (rules.policy().clone(), directory)
        }
        Some(d) => {
            let policy = super::or_config_exit(super::load_policy(&config.policy))?;
            let directory = d.open(false).await.map_err(|e| {
                eprintln!("error: tenant directory {}: {e}", d.redacted_url());
                ExitCode::FAILURE
            })?;
            (policy, directory)
        }
    };
    let sha = hex::encode(sha2::Sha256::digest(&policy_bytes));
    Ok((Scanner::new(Arc::new(policy), directory, backends), sha))
}

/// Written through a temporary file and a rename: the collector never reads
/// half a file.
fn write_metrics(path: &std::path::Path, summary: &residency_scan::Summary) -> std::io::Result<()> {
    let tmp = path.with_extension("prom.tmp");
    std::fs::write(&tmp, report::metrics(summary))?;
    std::fs::rename(&tmp, path)
}
