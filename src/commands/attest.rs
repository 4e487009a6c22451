//! `residency attest create|verify` (signed statements of where a tenant's
//! data is), `residency erase` (offboarding with a signed erasure
//! statement) and `residency remediate` (carrying out a scan's plan).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use ed25519_dalek::{SigningKey, VerifyingKey};
use residency_scan::attest::{self, AttestError, Attestation};
use residency_scan::erase::{self, Erasure};

/// Arguments of `residency attest`.
#[derive(Args, Debug)]
pub(crate) struct AttestArgs {
    #[command(subcommand)]
    command: AttestCommand,
}

#[derive(Subcommand, Debug)]
enum AttestCommand {
    /// Scan the tenant's keys, gather its audit chain heads and disclosure
    /// ledger head, and write a signed statement (Ed25519) of its directory
    /// record, the policy version and SHA-256, its objects and bytes per
    /// category x region and its findings. Stored in the tenant's home
    /// region (`_attestations/<tenant>/<time>.json`) and printed.
    ///
    /// The signing key: RESIDENCY_ATTEST_KEY (64 hex characters, the
    /// Ed25519 seed) or --key-file. Exit 0 written, 1 a region or the
    /// directory failed, 2 bad arguments or configuration.
    Create {
        /// The sidecar's configuration file.
        #[arg(long, value_name = "FILE", default_value = "config/residency.toml")]
        config: PathBuf,
        /// Tenant id.
        #[arg(long)]
        tenant: String,
        /// File holding the signing key (64 hex characters).
        #[arg(long, value_name = "FILE")]
        key_file: Option<PathBuf>,
    },
    /// Check an attestation: its signature against the expected key
    /// (--public-key, else the key of RESIDENCY_ATTEST_KEY / --key-file),
    /// then, unless --offline, that the buckets still show what it states
    /// (objects and bytes per category x region, findings, intact audit
    /// chains with the same head, the same disclosure ledger head).
    ///
    /// Exit 0 it holds, 1 the signature or the evidence does not, 2 bad
    /// arguments or configuration.
    Verify {
        /// The attestation (JSON, as `create` printed or stored it).
        file: PathBuf,
        /// The sidecar's configuration file (the buckets to check against).
        #[arg(long, value_name = "FILE", default_value = "config/residency.toml")]
        config: PathBuf,
        /// The signer's public key (64 hex characters).
        #[arg(long, value_name = "HEX")]
        public_key: Option<String>,
        /// File holding the signing key (its public half is expected).
        #[arg(long, value_name = "FILE")]
        key_file: Option<PathBuf>,
        /// Check the signature only.
        #[arg(long)]
        offline: bool,
    },
}

fn usage(msg: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::from(super::EXIT_CONFIG)
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

async fn verify_erasure(
    e: &Erasure,
    config: &std::path::Path,
    offline: bool,
) -> Result<ExitCode, ExitCode> {
    let objects: u64 = e
        .deleted
        .values()
        .flat_map(|r| r.values())
        .map(|c| c.objects)
        .sum();
    println!(
        "signature: valid (erasure of tenant {} at {}: {objects} object(s) deleted, {} kind(s) of records kept)",
        e.tenant,
        e.erased_at,
        e.kept.iter().filter(|k| !k.regions.is_empty()).count()
    );
    if offline {
        return Ok(ExitCode::SUCCESS);
    }
    let (scanner, _) = scanner(config).await?;
    let diff = erase::still_holds(&scanner, e, now())
        .await
        .map_err(failed)?;
    Ok(print_evidence(
        &diff,
        "nothing of the tenant's left in any region; kept records present",
    ))
}

/// Prints whether the evidence holds (each difference on its line): exit 0
/// when it does, 1 when not.
fn print_evidence(diff: &[String], holds: &str) -> ExitCode {
    if diff.is_empty() {
        println!("evidence: holds ({holds})");
        return ExitCode::SUCCESS;
    }
    for d in diff {
        println!("DIFFERS: {d}");
    }
    println!("evidence: does not hold ({} difference(s))", diff.len());
    ExitCode::FAILURE
}

/// Arguments of `residency erase`.
#[derive(Args, Debug)]
pub(crate) struct EraseArgs {
    /// The sidecar's configuration file.
    #[arg(long, value_name = "FILE", default_value = "config/residency.toml")]
    config: PathBuf,
    /// The departing tenant.
    #[arg(long)]
    tenant: String,
    /// Print what would be deleted and kept; delete nothing.
    #[arg(long)]
    dry_run: bool,
    /// Do not ask: delete (scripts). Without it, the tenant id is asked for
    /// on a terminal, and a run without a terminal is refused.
    #[arg(long)]
    yes: bool,
    /// How long the kept records (audit batches, disclosure ledger,
    /// migration journals) must be kept, in days.
    #[arg(long, value_name = "DAYS", default_value_t = 2557)]
    retention_days: u64,
    /// File holding the signing key (64 hex characters); else
    /// RESIDENCY_ATTEST_KEY.
    #[arg(long, value_name = "FILE")]
    key_file: Option<PathBuf>,
}

/// `residency erase`.
pub(crate) fn run_erase(args: EraseArgs) -> ExitCode {
    super::block_on(erase_async(args))
}

async fn erase_async(args: EraseArgs) -> Result<ExitCode, ExitCode> {
    use std::io::{BufRead as _, IsTerminal as _, Write as _};
    let key = signing_key(args.key_file.as_ref())?;
    if key.is_none() && !args.dry_run {
        return Err(usage(
            "erase signs its statement: RESIDENCY_ATTEST_KEY or --key-file (or --dry-run)",
        ));
    }
    let (scanner, sha) = scanner(&args.config).await?;
    let tenant = scanner
        .lookup(&args.tenant)
        .await
        .map_err(|e| failed(e.into()))?
        .ok_or_else(|| usage(format!("unknown tenant {:?}", args.tenant)))?;
    let now = now();
    let plan = erase::plan(&scanner, &tenant, now, args.retention_days * 86_400)
        .await
        .map_err(failed)?;
    // The plan: on stdout for a dry run; on stderr otherwise (stdout then
    // carries only the signed statement).
    let mut text = format!(
        "tenant {}: {} object(s) to delete\n",
        args.tenant, plan.objects
    );
    for (category, regions) in &plan.delete {
        for (region, c) in regions {
            text.push_str(&format!(
                "  delete {category} in {region}: {} object(s), {} bytes\n",
                c.objects, c.bytes
            ));
        }
    }
    for k in plan.kept.iter().filter(|k| !k.regions.is_empty()) {
        let n: u64 = k.regions.values().map(|c| c.objects).sum();
        text.push_str(&format!(
            "  keep {} ({n} object(s) under {}): {}\n",
            k.what, k.prefix, k.why
        ));
    }
    if args.dry_run {
        print!("{text}");
    } else {
        eprint!("{text}");
    }
    if args.dry_run {
        println!("dry run: nothing deleted");
        return Ok(ExitCode::SUCCESS);
    }
    if !args.yes {
        if !std::io::stdin().is_terminal() {
            return Err(usage(
                "refusing to erase without a terminal to confirm on: pass --yes",
            ));
        }
        eprint!(
            "type the tenant id to delete its {} object(s) in every region: ",
            plan.objects
        );
        let _ = std::io::stderr().flush();
        let mut line = String::new();
        let _ = std::io::stdin().lock().read_line(&mut line);
        if line.trim() != args.tenant {
            return Err(usage("not confirmed: nothing deleted"));
        }
    }
    let total = plan.objects;
    let progress = move |n: u64| {
        if n.is_multiple_of(1000) || n == total {
            eprintln!("residency erase: {n}/{total} object(s) deleted");
        }
    };
    let key = key.expect("checked above");
    let (statement, at) = erase::erase(&scanner, &tenant, plan, &key, &sha, now, &progress)
        .await
        .map_err(failed)?;
    super::print_json(&statement)?;
    eprintln!(
        "erased; statement stored in {at}. Remove the tenant from the directory next (its records stay until their retention ends)."
    );
    Ok(ExitCode::SUCCESS)
}

fn signing_key(key_file: Option<&PathBuf>) -> Result<Option<SigningKey>, ExitCode> {
    let hex = match key_file {
        Some(p) => std::fs::read_to_string(p)
            .map_err(|e| usage(format!("cannot read {}: {e}", p.display())))?,
        None => match std::env::var("RESIDENCY_ATTEST_KEY") {
            Ok(v) if !v.trim().is_empty() => v,
            _ => return Ok(None),
        },
    };
    attest::signing_key(&hex).map(Some).map_err(usage)
}

use super::scan::open_scanner as scanner;

fn failed(e: AttestError) -> ExitCode {
    eprintln!("error: {e}");
    match e {
        AttestError::Usage(_) => ExitCode::from(super::EXIT_CONFIG),
        _ => ExitCode::FAILURE,
    }
}

pub(crate) fn run(args: AttestArgs) -> ExitCode {
    super::block_on(run_async(args))
}

async fn run_async(args: AttestArgs) -> Result<ExitCode, ExitCode> {
    match args.command {
        AttestCommand::Create {
            config,
            tenant,
            key_file,
        } => {
            let key = signing_key(key_file.as_ref())?.ok_or_else(|| {
                usage("attest create needs the signing key: RESIDENCY_ATTEST_KEY or --key-file")
            })?;
            let (scanner, sha) = scanner(&config).await?;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let (attestation, at) = attest::create(&scanner, &tenant, &key, &sha, now)
                .await
                .map_err(failed)?;
            super::print_json(&attestation)?;
            eprintln!("stored in {at}");
            Ok(ExitCode::SUCCESS)
        }
        AttestCommand::Verify {
            file,
            config,
            public_key,
            key_file,
            offline,
        } => {
            let expected = match (public_key, signing_key(key_file.as_ref())?) {
                (Some(hex), _) => {
                    let bytes: [u8; 32] = hex::decode(hex.trim())
                        .ok()
                        .and_then(|b| b.try_into().ok())
                        .ok_or_else(|| usage("--public-key must be 64 hex characters"))?;
                    VerifyingKey::from_bytes(&bytes)
                        .map_err(|e| usage(format!("--public-key: {e}")))?
                }
                (None, Some(k)) => k.verifying_key(),
                (None, None) => {
                    return Err(usage(
                        "attest verify needs the expected signer: --public-key HEX, --key-file or RESIDENCY_ATTEST_KEY",
                    ))
                }
            };
            let text = std::fs::read(&file)
                .map_err(|e| usage(format!("cannot read {}: {e}", file.display())))?;
            let attestation: Attestation = serde_json::from_slice(&text)
                .map_err(|e| usage(format!("{}: not an attestation: {e}", file.display())))?;
            let value = match attest::verify_signature(&attestation, &expected) {
                Ok(v) => v,
                Err(why) => {
                    println!("INVALID: {why}");
                    return Ok(ExitCode::FAILURE);
                }
            };
            let format = value["format"].as_str().unwrap_or_default().to_owned();
            if format == erase::FORMAT {
                let e: Erasure = serde_json::from_value(value).map_err(|e| {
                    usage(format!("{}: not an erasure statement: {e}", file.display()))
                })?;
                return verify_erasure(&e, &config, offline).await;
            }
            let statement: attest::Statement = serde_json::from_value(value).map_err(|e| {
                usage(format!(
                    "{}: not a {} statement ({format:?}): {e}",
                    file.display(),
                    attest::FORMAT
                ))
            })?;
            println!(
                "signature: valid (tenant {}, made at {}, policy {})",
                statement.tenant, statement.created_at, statement.policy_version
            );
            if offline {
                return Ok(ExitCode::SUCCESS);
            }
            let (scanner, sha) = scanner(&config).await?;
            if sha != statement.policy_sha256 {
                println!(
                    "note: the policy changed since (SHA-256 {} then, {sha} now)",
                    statement.policy_sha256
                );
            }
            let diff = attest::still_holds(&scanner, &statement)
                .await
                .map_err(failed)?;
            Ok(print_evidence(
                &diff,
                "objects per category x region, findings, audit chain heads, disclosure ledger",
            ))
        }
    }
}

/// Arguments of `residency remediate`.
#[derive(Args, Debug)]
pub(crate) struct RemediateArgs {
    /// The plan `residency scan --plan FILE` wrote.
    plan: PathBuf,
    /// The sidecar's configuration file.
    #[arg(long, value_name = "FILE", default_value = "config/residency.toml")]
    config: PathBuf,
    /// Moves at once.
    #[arg(long, value_name = "N", default_value_t = 8,
          value_parser = clap::value_parser!(u16).range(1..=256))]
    parallel: u16,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// `residency remediate`.
pub(crate) fn run_remediate(args: RemediateArgs) -> ExitCode {
    super::block_on(remediate_async(args))
}

async fn remediate_async(args: RemediateArgs) -> Result<ExitCode, ExitCode> {
    use residency_scan::remediate;
    if !args.plan.exists() {
        return Err(usage(format!("no plan at {}", args.plan.display())));
    }
    let (scanner, _) = scanner(&args.config).await?;
    let progress = |d: &remediate::Done| {
        eprintln!(
            "residency remediate: {} {} -> {}: {} ({})",
            d.key, d.from, d.to, d.outcome, d.detail
        );
    };
    let report = remediate::execute(&scanner, &args.plan, usize::from(args.parallel), &progress)
        .await
        .map_err(failed)?;
    if args.json {
        super::print_json(&report)?;
    } else {
        println!(
            "{} planned: {} moved ({} bytes), {} already done, {} vanished, {} destination taken, {} stale, {} failed",
            report.planned,
            report.moved,
            report.bytes,
            report.already_done,
            report.vanished,
            report.destination_taken,
            report.stale,
            report.failed.len()
        );
        for f in &report.failed {
            println!("  failed: {f}");
        }
        println!("journal: {}", remediate::journal_path(&args.plan).display());
    }
    Ok(if report.failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
