//! `residency migrate`: move a tenant's data to a new region.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, ValueEnum};
use residency::policy::Policy;
use residency_migrate::{
    DirectorySource, FaultAction, FaultPoint, MigrateError, MigrationOptions, Migrator,
    ProgressMode, TenantSource,
};
use residency_proxy::Config;
use residency_tower::audit::batch::{BatchConfig, BatchingAuditSink, WriterId};

/// Exit code of a refusal: `--finish` too early, or another migration of
/// the tenant is open.
const EXIT_REFUSED: u8 = 3;

const SEQUENCE: &str = "\
The sequence (each step is safe to interrupt; the same command resumes):

  1. residency migrate --tenant T --to eu --dry-run
       Plan: lists T's objects in the other regions and says what moves
       (counts, bytes, per category) and what policy keeps where it is
       (e.g. call recordings are US-only). Writes nothing.
  2. residency migrate --tenant T --to eu
       Switch: the tenants file gets locality = \"eu\" and
       migrating_from = \"<old region>\" (edited in place, comments kept,
       replaced atomically). The sidecar reloads it (file poll or SIGHUP):
       new writes go to eu, reads try eu, then the old region.
       Copy: every object to move is streamed to eu (multipart above the
       part size), verified (size, metadata and the ETag the destination
       computed, against the MD5 computed while copying) and journaled in
       eu under _migrations/T/<id>/. Nothing is deleted yet.
  3. residency migrate --tenant T --to eu --finish
       After the assurance window (default 30d from the moment every
       object was verified): deletes each old copy whose copy still
       verifies (objects written late to the old region are copied first),
       then removes migrating_from from the tenants file.
       With --assurance 0s, step 2 goes on to do this at once.

Running a finished migration again does nothing. A crash or kill at any
point loses nothing: run the same command again (it also aborts the
multipart uploads a killed run left open).

One migration per tenant at a time: while one is open (started, not
finished), a migration to another region is refused (exit 3) with the
command that finishes the open one. There is no cancel: to go back,
finish it, then migrate to the old region.

With the PostgreSQL tenant directory (`tenants = \"postgresql://...\"`),
the switch sets locality and migrating_from in one transaction (every
sidecar replica is notified), then the migration waits the directory's
max_staleness before copying: a replica that missed the notification
serves its cached record at most that long. --finish sets migrated_from
and clears migrating_from. Each run holds a lease on the tenant in the
directory (table migration_leases, renewed every 10 s, expires after
30 s): a second `residency migrate` for the tenant, on any machine, is
refused (exit 3) with the holder and when its lease expires; the lease
of a process that died expires and the next run takes it over.

A large tenant can be shared by several workers on several machines
(directory only): start the migration with --range-size N (e.g. 10000)
and it lists each old region, writing a key range every N objects to
the directory (table migration_ranges) while it lists; then start
`residency migrate --tenant T --to eu --join --range-size N` on other
machines. Every worker, the first included, leases a pending range
(FOR UPDATE SKIP LOCKED: never two workers on one range), renews the
lease while it copies and verifies the range's objects, journals them
under the range's own cursor in eu, and marks the range done. A worker
that dies leaves its range to expire (the lease TTL, 30 s); another
worker takes it over and resumes after the range's last stored page.
Workers stop when every range is done; the first run (it holds the
tenant's lease) then verifies the whole migration and goes on as
above. --join takes no tenant lease, switches and deletes nothing, and
waits up to --join-wait for a migration with ranges to appear.

Exit codes: 0 done (or waiting for the assurance window after step 2),
1 a copy did not verify or a backend failed, 2 bad arguments or files,
3 refused: --finish before the copy is verified or the window has
passed, another migration of the tenant is open, or another migrator
holds the tenant's lease. With --json every
outcome, refusals and errors included, is one JSON object on stdout
(an \"error\" field when it failed).";

/// How progress is shown.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProgressArg {
    /// A progress bar on a terminal, log lines otherwise.
    Auto,
    /// Log lines every few seconds.
    Log,
    /// No progress output.
    Quiet,
}

/// Arguments of `residency migrate`.
#[derive(Args, Debug)]
#[command(
    after_long_help = SEQUENCE,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub(crate) struct MigrateArgs {
    #[command(subcommand)]
    pub(crate) command: Option<MigrateCommand>,
    /// The sidecar's configuration file (regions' backends, policy and
    /// tenants files).
    #[arg(long, value_name = "FILE", default_value = "config/residency.toml")]
    pub(crate) config: PathBuf,
    /// Tenant id.
    #[arg(long, required = true)]
    pub(crate) tenant: Option<String>,
    /// The destination region (a region of the policy).
    #[arg(long, value_name = "REGION", required = true)]
    pub(crate) to: Option<String>,
    /// Print the plan (counts, bytes, per category) and change nothing.
    #[arg(long, conflicts_with = "finish")]
    pub(crate) dry_run: bool,
    /// Delete the old copies (after every object is verified and the
    /// assurance window has passed), then clear migrating_from.
    #[arg(long)]
    pub(crate) finish: bool,
    /// Objects copied at once.
    #[arg(long, value_name = "N", default_value_t = 16)]
    pub(crate) parallel: usize,
    /// Time between "every object verified" and deleting the old copies
    /// (e.g. 30d, 12h, 15m, 0s). Default: what the migration started with
    /// (30d for a new one).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub(crate) assurance: Option<Duration>,
    /// Part size of multipart copies, in MiB; larger objects are multipart.
    #[arg(long, value_name = "MIB", default_value_t = 16)]
    pub(crate) part_size_mib: u64,
    /// Leave the tenants file alone (it is managed elsewhere: set locality
    /// and migrating_from there before copying, clear migrating_from after).
    #[arg(long)]
    pub(crate) no_switch: bool,
    /// Share the copy between workers (tenant directory only): split each
    /// old region's keys into ranges of N objects that this run and any
    /// `--join` workers lease from the directory (e.g. 10000). With
    /// `--join`: the size of this worker's journal pages (a quarter of N).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) range_size: Option<u64>,
    /// Work key ranges of the tenant's migration to --to that another run
    /// (started with --range-size) planned in the tenant directory, until
    /// every range is done. Takes no tenant lease; switches and deletes
    /// nothing.
    #[arg(long, conflicts_with_all = ["dry_run", "finish"])]
    pub(crate) join: bool,
    /// How long --join waits for a migration with key ranges to appear.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "60s", requires = "join")]
    pub(crate) join_wait: Duration,
    /// Progress display.
    #[arg(long, value_enum, default_value_t = ProgressArg::Auto)]
    pub(crate) progress: ProgressArg,
    /// Print the final report as JSON on stdout.
    #[arg(long)]
    pub(crate) json: bool,
}

/// Exit code of `migrate status` when a migration is overdue.
const EXIT_OVERDUE: u8 = 4;

/// Subcommands of `residency migrate`.
#[derive(clap::Subcommand, Debug)]
pub(crate) enum MigrateCommand {
    /// List migrations (the latest per tenant and destination, from the
    /// journals in every region) with their phase, and those whose
    /// assurance window has passed without `--finish` (overdue: the old
    /// copies of the data and records are still in the old region).
    ///
    /// Exit codes: 0 none overdue, 1 a region could not be read, 2 bad
    /// configuration, 4 at least one migration is overdue.
    Status {
        /// The sidecar's configuration file.
        #[arg(long, value_name = "FILE", default_value = "config/residency.toml")]
        config: PathBuf,
        /// Only this tenant's migrations.
        #[arg(long)]
        tenant: Option<String>,
        /// Print one JSON object (`migrations`, `overdue`) on stdout.
        #[arg(long)]
        json: bool,
    },
}

/// `RESIDENCY_MIGRATE_LEASE_TTL` (a duration like `2s`): the migration
/// lease's time to live with the tenant directory (tests shorten it).
fn lease_ttl_from_env() -> Result<Option<Duration>, ExitCode> {
    match std::env::var("RESIDENCY_MIGRATE_LEASE_TTL") {
        Ok(v) if !v.is_empty() => match parse_duration(&v) {
            Ok(d) if !d.is_zero() => Ok(Some(d)),
            Ok(_) => {
                eprintln!("error: RESIDENCY_MIGRATE_LEASE_TTL must be more than 0s");
                Err(ExitCode::from(super::EXIT_CONFIG))
            }
            Err(e) => {
                eprintln!("error: RESIDENCY_MIGRATE_LEASE_TTL: {e}");
                Err(ExitCode::from(super::EXIT_CONFIG))
            }
        },
        _ => Ok(None),
    }
}

/// `30d`, `12h`, `15m`, `10s`, `0` (seconds when no unit).
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, 'd')) => (&s[..i], 86_400),
        Some((i, 'h')) => (&s[..i], 3_600),
        Some((i, 'm')) => (&s[..i], 60),
        Some((i, 's')) => (&s[..i], 1),
        _ => (s, 1),
    };
    num.parse::<u64>()
        .map(|n| Duration::from_secs(n * mult))
        .map_err(|_| format!("{s:?} is not a duration like 30d, 12h, 15m or 0s"))
}

pub(crate) fn run(args: MigrateArgs) -> ExitCode {
    super::block_on(run_async(args))
}

async fn status(
    config: &std::path::Path,
    tenant: Option<&str>,
    json: bool,
) -> Result<ExitCode, ExitCode> {
    let config = super::or_config_exit(Config::load(config))?;
    let backends = super::or_config_exit(config.open_backends().await)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let list = residency_migrate::migration_status(&backends, tenant, now)
        .await
        .map_err(|e| {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        })?;
    let overdue = list.iter().filter(|m| m.overdue).count();
    if json {
        println!(
            "{:#}",
            serde_json::json!({ "migrations": list, "overdue": overdue, "now": now })
        );
    } else {
        println!("TENANT  FROM -> TO  PHASE  WINDOW ENDS (Unix)  ID");
        for m in &list {
            println!(
                "{}  {} -> {}  {}  {}  {}{}",
                m.tenant,
                m.from,
                m.to,
                m.phase.as_str(),
                m.window_ends_at
                    .map_or_else(|| "-".to_owned(), |t| t.to_string()),
                m.id,
                if m.overdue {
                    format!(
                        "  OVERDUE by {} s: run `{}`",
                        m.overdue_secs, m.finish_command
                    )
                } else {
                    String::new()
                }
            );
        }
        println!("{} migration(s), {overdue} overdue", list.len());
    }
    Ok(if overdue > 0 {
        ExitCode::from(EXIT_OVERDUE)
    } else {
        ExitCode::SUCCESS
    })
}

async fn run_async(args: MigrateArgs) -> Result<ExitCode, ExitCode> {
    if let Some(MigrateCommand::Status {
        config,
        tenant,
        json,
    }) = &args.command
    {
        return status(config, tenant.as_deref(), *json).await;
    }
    let (Some(tenant), Some(to)) = (args.tenant.clone(), args.to.clone()) else {
        eprintln!("error: --tenant and --to are required");
        return Err(ExitCode::from(super::EXIT_CONFIG));
    };
    let fault = match std::env::var("RESIDENCY_MIGRATE_FAULT") {
        Ok(v) if !v.is_empty() => match v.parse::<FaultPoint>() {
            Ok(p) => Some(p),
            Err(e) => {
                eprintln!("error: RESIDENCY_MIGRATE_FAULT: {e}");
                return Err(ExitCode::from(super::EXIT_CONFIG));
            }
        },
        _ => None,
    };
    let config = super::or_config_exit(Config::load(&args.config))?;
    let policy: Policy = super::or_config_exit(super::load_policy(&config.policy))?;
    let backends = super::or_config_exit(config.open_backends().await)?;
    let mut opts = MigrationOptions::new(&tenant, &to);
    opts.parallel = args.parallel.max(1);
    opts.assurance = args.assurance;
    opts.part_size = args.part_size_mib.max(5) << 20;
    opts.multipart_threshold = opts.part_size;
    opts.switch = !args.no_switch;
    opts.fault = fault;
    opts.fault_action = FaultAction::Abort;
    opts.range_size = args.range_size;
    opts.join_wait = args.join_wait;
    opts.progress = match args.progress {
        ProgressArg::Auto => ProgressMode::Auto,
        ProgressArg::Log => ProgressMode::Log,
        ProgressArg::Quiet => ProgressMode::Quiet,
    };
    let source = match &config.directory {
        None if args.join || args.range_size.is_some() => {
            eprintln!(
                "error: --join and --range-size share a migration through the PostgreSQL tenant directory (tenants = \"postgresql://...\" in {}); this configuration uses the tenants file {}",
                args.config.display(),
                config.tenants.display()
            );
            return Err(ExitCode::from(super::EXIT_CONFIG));
        }
        None => TenantSource::File(config.tenants.clone()),
        Some(d) => {
            let mut s = DirectorySource::new(d.url.clone(), d.max_staleness);
            s.connect_timeout = d.connect_timeout;
            if let Some(ttl) = lease_ttl_from_env()? {
                s.lease_ttl = ttl;
            }
            TenantSource::Directory(s)
        }
    };
    let mut migrator = Migrator::with_source(policy, source, backends.clone(), opts);
    let audit = (config.audit.enabled && !args.dry_run).then(|| {
        let writer = WriterId::new(format!("migrate-{}", WriterId::for_this_process().as_str()))
            .unwrap_or_else(|_| WriterId::for_this_process());
        Arc::new(BatchingAuditSink::new(
            backends.clone(),
            writer,
            BatchConfig::default(),
        ))
    });
    if let Some(a) = &audit {
        migrator = migrator.with_audit(a.clone());
    }
    let result = if args.dry_run {
        migrator.plan().await
    } else if args.finish {
        migrator.finish().await
    } else if args.join {
        migrator.join().await
    } else {
        migrator.run().await
    };
    if let Some(a) = &audit {
        if let Err(e) = a.shutdown().await {
            eprintln!("warning: the audit log could not be stored completely: {e}");
        }
    }
    match result {
        Ok(report) => {
            if args.json {
                super::print_json(&report)?;
            } else {
                print!("{}", report.to_text());
            }
            Ok(if report.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Err(e) => {
            let (code, kind, prefix) = match &e {
                MigrateError::Config(_) => (super::EXIT_CONFIG, "config", "error"),
                MigrateError::NotReady(_) => (EXIT_REFUSED, "not_ready", "not yet"),
                MigrateError::Open(_) => (EXIT_REFUSED, "open_migration", "refused"),
                MigrateError::Leased(_) => (EXIT_REFUSED, "lease_held", "refused"),
                MigrateError::Records(_) => (1, "records", "error"),
                _ => (1, "failed", "error"),
            };
            if args.json {
                // The refusal as JSON too: a script reading stdout gets an
                // answer whatever happened.
                let mut v = serde_json::json!({
                    "command": if args.dry_run { "plan" } else if args.finish { "finish" } else if args.join { "join" } else { "run" },
                    "tenant": tenant,
                    "to": to,
                    "error": kind,
                    "message": e.to_string(),
                    "exit_code": code,
                });
                if let MigrateError::Open(open) = &e {
                    v["open_migration"] = serde_json::json!(open);
                }
                if let MigrateError::Leased(lease) = &e {
                    v["lease"] = serde_json::json!(lease);
                }
                println!("{v:#}");
            }
            if code == 1 {
                eprintln!(
                    "error: {e}\n(the journal is consistent: run the same command again to resume)"
                );
            } else {
                eprintln!("{prefix}: {e}");
            }
            Ok(ExitCode::from(code))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(
            parse_duration("30d").unwrap(),
            Duration::from_secs(2_592_000)
        );
        assert_eq!(parse_duration("0s").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_duration("7").unwrap(), Duration::from_secs(7));
        assert!(parse_duration("soon").is_err());
    }
}
