//! `residency-bench`: a lean S3 load harness (hyper 1 client, SigV4 with
//! `UNSIGNED-PAYLOAD`, path-style, one keep-alive connection per client).
//!
//! - `residency-bench run ...` measures one cell (one target, one workload)
//!   and appends it as a JSON line to `--json`;
//! - `residency-bench report FILE... --out DIR` compares the cells: a
//!   Markdown table with ratios to the direct backend and the sidecar's ratio
//!   to each peer (`DIR/report.md`), `DIR/report.json` and `DIR/report.svg`.
//!
//! `scripts/bench.sh` drives it against Garage, the sidecar, nginx and rclone.

mod load;
mod procstat;
mod report;
mod sign;
mod tenants;

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use clap::{Parser, Subcommand};

use crate::load::{Op, Plan, Stop, Target};

#[derive(Parser)]
#[command(
    name = "residency-bench",
    about = "S3 load harness for the Residency sidecar and its peers"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Measures one cell and appends it to --json as one JSON line.
    Run(Box<RunArgs>),
    /// Compares cells: table, ratios, JSON and SVG chart.
    Report(ReportArgs),
    /// Fills a PostgreSQL tenant directory with N generated tenants and
    /// their keys (bench data, named as `run --tenants` expects), sealed
    /// under RESIDENCY_DIRECTORY_KEY.
    SeedDirectory(SeedArgs),
}

#[derive(clap::Args)]
struct SeedArgs {
    /// The directory's URL, `postgresql://...`.
    #[arg(long)]
    url: String,
    /// How many tenants (`z0000000` ...).
    #[arg(long)]
    tenants: u64,
}

#[derive(clap::Args)]
struct RunArgs {
    /// Endpoint, `http://host:port`.
    #[arg(long)]
    endpoint: String,
    /// Bucket (path-style).
    #[arg(long)]
    bucket: String,
    /// Key prefix; keys are `<prefix>w<worker>-o<object>`.
    #[arg(long, default_value = "bench/")]
    prefix: String,
    /// Access key (not with --tenants: each tenant signs with its own).
    #[arg(long, env = "BENCH_ACCESS_KEY", default_value = "")]
    access_key: String,
    #[arg(
        long,
        env = "BENCH_SECRET_KEY",
        hide_env_values = true,
        default_value = ""
    )]
    secret_key: String,
    /// Spread PUTs over this many generated tenants (`seed-directory`
    /// names): each request goes to tenant rank r drawn from Zipf(N, --zipf),
    /// in that tenant's bucket, signed with its key. `--tenants 1` is the
    /// one-tenant baseline on the same path. `--bucket` is then ignored.
    #[arg(long)]
    tenants: Option<u64>,
    /// The Zipf exponent s for --tenants.
    #[arg(long, default_value_t = 1.1)]
    zipf: f64,
    /// Region to sign for.
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// `put` or `get`.
    #[arg(long)]
    op: String,
    /// Object size: `4KiB`, `1MiB`, `64MiB`, `1GiB` or bytes.
    #[arg(long)]
    size: String,
    /// Concurrent clients (one connection each).
    #[arg(long, default_value_t = 16)]
    clients: usize,
    /// Measured seconds (after --warmup).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Unmeasured seconds first.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Instead of a duration: this many requests per client, all measured.
    #[arg(long)]
    count: Option<u64>,
    /// Distinct objects per client (GET reads them in turn; PUT overwrites).
    #[arg(long, default_value_t = 1)]
    objects: usize,
    /// For GET: do not write the objects first.
    #[arg(long)]
    no_prepare: bool,
    /// Delete the cell's objects once it is measured (not with --tenants).
    #[arg(long)]
    cleanup: bool,
    /// Processes to sample (CPU time, RSS), comma-separated PIDs.
    #[arg(long, value_delimiter = ',')]
    pid: Vec<u32>,
    /// RSS sampling period in milliseconds.
    #[arg(long, default_value_t = 50)]
    sample_ms: u64,
    /// Target label (`direct`, `sidecar`, `nginx`, ...).
    #[arg(long, default_value = "target")]
    target: String,
    /// Workload label; default e.g. `4KiB PUT c64`.
    #[arg(long)]
    workload: Option<String>,
    /// Append the result to this file (JSON lines).
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(clap::Args)]
struct ReportArgs {
    /// JSON-lines files written by `run --json`.
    files: Vec<PathBuf>,
    /// Directory for report.md, report.json, report.svg.
    #[arg(long)]
    out: PathBuf,
    /// The target every other is compared to.
    #[arg(long, default_value = "direct")]
    baseline: String,
    /// The target compared to each peer.
    #[arg(long, default_value = "sidecar")]
    sidecar: String,
}

fn parse_size(s: &str) -> Result<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().with_context(|| format!("size {s:?}"))?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" | "kb" => 1 << 10,
        "m" | "mib" | "mb" => 1 << 20,
        "g" | "gib" | "gb" => 1 << 30,
        other => bail!("unknown size unit {other:?}"),
    };
    Ok(n * mult)
}

async fn run(a: RunArgs) -> Result<()> {
    let op = match a.op.to_ascii_lowercase().as_str() {
        "put" => Op::Put,
        "get" => Op::Get,
        other => bail!("--op must be put or get, not {other:?}"),
    };
    let size = parse_size(&a.size)?;
    let authority = a
        .endpoint
        .strip_prefix("http://")
        .context("--endpoint must start with http://")?
        .trim_end_matches('/')
        .to_string();
    let spread = match a.tenants {
        Some(_) if op == Op::Get => bail!("--tenants spreads PUTs only"),
        Some(n) => Some(tenants::Spread::new(n, a.zipf)?),
        None if a.access_key.is_empty() || a.secret_key.is_empty() => {
            bail!("--access-key and --secret-key are required (or --tenants)")
        }
        None => None,
    };
    let target = Arc::new(Target {
        authority,
        bucket: a.bucket,
        prefix: a.prefix,
        access_key: a.access_key,
        secret_key: a.secret_key,
        region: a.region,
        spread,
    });
    let plan = Plan {
        op,
        size,
        clients: a.clients.max(1),
        objects: a.objects.max(1),
        stop: match a.count {
            Some(n) => Stop::Count(n),
            None => Stop::Duration {
                warmup: Duration::from_secs_f64(a.warmup),
                measure: Duration::from_secs_f64(a.duration),
            },
        },
        pids: a.pid,
        sample_every: Duration::from_millis(a.sample_ms.max(1)),
    };
    if op == Op::Get && !a.no_prepare {
        load::prepare(target.clone(), &plan).await?;
    }
    let mut cell = load::run(target.clone(), &plan).await?;
    if a.cleanup && target.spread.is_none() {
        if let Err(e) = load::cleanup(target, &plan).await {
            eprintln!("cleanup: {e:#}");
        }
    }
    cell.target = a.target;
    cell.workload = a.workload.unwrap_or_else(|| {
        format!(
            "{} {} c{}",
            report::size_label(size, ""),
            a.op.to_ascii_uppercase(),
            plan.clients
        )
    });
    println!(
        "{:<16} {:<18} {:>9.0} op/s {:>8.1} MiB/s  p50 {:>8.2} ms  p99 {:>8.2} ms  p99.9 {:>8.2} ms  err {:>4}  cpu {:>6.0} µs/op  rss {:>7.1} MiB  (client cpu {:.2} s)",
        cell.target,
        cell.workload,
        cell.req_per_s,
        cell.mib_per_s,
        cell.latency_us.p50 / 1000.0,
        cell.latency_us.p99 / 1000.0,
        cell.latency_us.p999 / 1000.0,
        cell.errors,
        cell.process.cpu_us_per_op,
        cell.process.peak_rss_kib as f64 / 1024.0,
        cell.client_cpu_s,
    );
    if let Some(e) = &cell.first_error {
        println!("  first error: {e}");
    }
    if let Some(path) = a.json {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        writeln!(f, "{}", serde_json::to_string(&cell)?)?;
    }
    Ok(())
}

fn report(a: ReportArgs) -> Result<()> {
    let cells = report::load(&a.files)?;
    if cells.is_empty() {
        bail!("no cells in {:?}", a.files);
    }
    let r = report::build(cells, &a.baseline);
    std::fs::create_dir_all(&a.out)?;
    let md = r.markdown(&a.sidecar, &a.baseline);
    print!("{md}");
    std::fs::write(a.out.join("report.md"), &md)?;
    std::fs::write(
        a.out.join("report.json"),
        serde_json::to_string_pretty(&serde_json::json!({
            "baseline": a.baseline,
            "sidecar": a.sidecar,
            "workloads": r.workloads,
            "targets": r.targets,
            "rows": r.rows,
        }))?,
    )?;
    let svg = a.out.join("report.svg");
    r.chart(&svg, &a.baseline)?;
    println!("\nchart: {}", svg.display());
    Ok(())
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Run(a) => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            rt.block_on(run(*a))
        }
        Cmd::Report(a) => report(a),
        Cmd::SeedDirectory(a) => {
            let key = residency_directory::postgres::DirectoryKey::load(None)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(tenants::seed(&a.url, a.tenants, &key))
        }
    }
}
