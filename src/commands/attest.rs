//! `residency attest create|verify`: signed statements of where a tenant's
//! data is.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Subcommand};
use ed25519_dalek::{SigningKey, VerifyingKey};
use residency_directory::{Directory, FileDirectory};
use residency_proxy::Config;
use residency_scan::attest::{self, AttestError, Attestation};
use residency_scan::Scanner;
use sha2::Digest as _;

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

/// The scanner over the configuration's regions and directory, and the
/// policy file's SHA-256.
async fn scanner(config: &std::path::Path) -> Result<(Scanner, String), ExitCode> {
    let config = super::or_config_exit(Config::load(config))?;
    let bytes = std::fs::read(&config.policy)
        .map_err(|e| usage(format!("cannot read {}: {e}", config.policy.display())))?;
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
    let sha = hex::encode(sha2::Sha256::digest(&bytes));
    Ok((Scanner::new(Arc::new(policy), directory, backends), sha))
}

fn failed(e: AttestError) -> ExitCode {
    eprintln!("error: {e}");
    match e {
        AttestError::Usage(_) => ExitCode::from(super::EXIT_CONFIG),
        _ => ExitCode::FAILURE,
    }
}

pub(crate) fn run(args: AttestArgs) -> ExitCode {
    match super::runtime(true) {
        Ok(rt) => rt.block_on(run_async(args)).unwrap_or_else(|c| c),
        Err(code) => code,
    }
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
            let statement = match attest::verify_signature(&attestation, &expected) {
                Ok(s) => s,
                Err(why) => {
                    println!("INVALID: {why}");
                    return Ok(ExitCode::FAILURE);
                }
            };
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
            if diff.is_empty() {
                println!("evidence: holds (objects per category x region, findings, audit chain heads, disclosure ledger)");
                Ok(ExitCode::SUCCESS)
            } else {
                for d in &diff {
                    println!("DIFFERS: {d}");
                }
                println!("evidence: does not hold ({} difference(s))", diff.len());
                Ok(ExitCode::FAILURE)
            }
        }
    }
}
