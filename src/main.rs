//! The `residency` command line: run the sidecar, explain and check policies.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

mod commands;

/// Region-aware storage routing: every object lands where the tenant's
/// data-locality contract and the per-category hosting rules allow.
#[derive(Parser, Debug)]
#[command(name = "residency", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The policy and tenants files a command reads.
/// The shipped hosting policy (what `--directory URL` checks rows against).
const DEFAULT_POLICY: &str = "config/hosting-policy.toml";

#[derive(Args, Debug, Clone)]
pub(crate) struct PolicyFiles {
    /// Hosting policy file (regions, categories, rules).
    #[arg(
        long,
        value_name = "FILE",
        default_value = "config/hosting-policy.toml"
    )]
    pub(crate) policy: PathBuf,
    /// Tenants file (localities, features, credentials).
    #[arg(
        long,
        value_name = "FILE",
        default_value = "config/tenants.example.toml"
    )]
    pub(crate) tenants: PathBuf,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the sidecar: an S3-compatible proxy that routes every object to
    /// the region its tenant's policy allows.
    ///
    /// With no flags it uses config/residency.toml: local directories
    /// data/eu and data/us stand in for the regional buckets, S3 on
    /// 127.0.0.1:9000, admin (/metrics, /healthz, /readyz) on 127.0.0.1:9001.
    /// SIGHUP (or editing the policy or tenants file) reloads; a bad file is
    /// reported and the old configuration keeps serving. SIGTERM drains
    /// in-flight requests and flushes the audit log.
    Serve {
        /// The sidecar's configuration file.
        #[arg(long, value_name = "FILE", default_value = "config/residency.toml")]
        config: PathBuf,
        /// Start even if an S3 bucket reports a location outside its region.
        #[arg(long)]
        allow_location_mismatch: bool,
        /// Serving threads (default: one per CPU). On a machine whose cores
        /// the sidecar shares with its backend or application, fewer threads
        /// may serve as fast for less CPU: see docs/performance.md.
        #[arg(long, value_name = "N", env = "RESIDENCY_WORKER_THREADS",
              value_parser = clap::value_parser!(u16).range(1..=1024))]
        worker_threads: Option<u16>,
        /// How requests are spread over the threads. work-stealing (the
        /// default): one runtime whose threads share every connection and
        /// hand work to each other. per-core: each thread has its own
        /// listener on the S3 address (SO_REUSEPORT; the kernel spreads new
        /// connections by address and port, so a client with few
        /// connections may load one thread only), its own connections to
        /// the regions, and serves a request from start to end. Request and
        /// connection limits, tenant shares and the audit log are the same
        /// in both; see docs/performance.md for what each costs.
        #[arg(
            long,
            value_enum,
            value_name = "KIND",
            env = "RESIDENCY_RUNTIME",
            default_value = "work-stealing"
        )]
        runtime: commands::serve::RuntimeKind,
    },
    /// Explain where one object would be placed, and why.
    ///
    /// Exit code 0 for allow and deny alike; 2 for an unknown --category or an
    /// invalid file.
    Explain {
        #[command(flatten)]
        files: PolicyFiles,
        /// Tenant id (optional with --bucket when the bucket names its
        /// tenant: a tenant's configured or created bucket, or a shared
        /// bucket whose keys begin with the tenant).
        #[arg(long, required_unless_present = "bucket")]
        tenant: Option<String>,
        /// Object key within the bucket (e.g. tickets/123/comment.json).
        #[arg(long)]
        key: String,
        /// The bucket the object is written to: a tenant's configured
        /// bucket, one a tenant created (the registry beside --tenants), or
        /// a `[[shared_buckets]]` entry of --config. Its default category
        /// applies when no category is named and no key rule matches.
        #[arg(long, value_name = "NAME")]
        bucket: Option<String>,
        /// The sidecar's configuration, read for `[[shared_buckets]]` only.
        #[arg(long, value_name = "FILE", default_value = "config/residency.toml")]
        config: PathBuf,
        /// Explicit category (as the x-amz-meta-residency-category header would).
        #[arg(long)]
        category: Option<String>,
        /// The payload's Content-Type.
        #[arg(long = "content-type", value_name = "MIME")]
        content_type: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = ExplainFormat::Text)]
        format: ExplainFormat,
    },
    /// Validate the policy and tenants files; list every error with its line.
    ///
    /// Exit code 0 when valid, 2 otherwise.
    Check {
        #[command(flatten)]
        files: PolicyFiles,
        /// The tenants file served now: also check that reloading onto
        /// `--tenants` would not drop every tenant, or more than
        /// `--max-tenant-drop-percent` of them, and changes no tenant's
        /// locality without a migration (`migrating_from` / `migrated_from`
        /// naming the old region): the sidecar refuses both.
        #[arg(long, value_name = "FILE")]
        previous: Option<PathBuf>,
        /// The sidecar's `limits.reload_max_tenant_drop_percent`.
        #[arg(long, value_name = "PERCENT", default_value_t = 50)]
        max_tenant_drop_percent: u32,
        /// Check the tenants of this PostgreSQL directory (every row against
        /// the policy) instead of the tenants file; the key-encryption key is
        /// not needed.
        #[arg(
            long,
            value_name = "URL",
            env = "RESIDENCY_DIRECTORY_URL",
            hide_env_values = true
        )]
        directory: Option<String>,
    },
    /// Check or print a tenant's audit trail (hash-chained batches under
    /// `_audit/<tenant>/` in the regional backends of the sidecar's config).
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Move a tenant's data to another region: copy, verify, switch, delete.
    Migrate(commands::migrate::MigrateArgs),
    /// Reconcile every stored object against the policy and the tenant
    /// directory: what is misplaced, a strict tenant's data outside its
    /// locality, data of a removed feature, migration leftovers, unknown
    /// tenants, unclassifiable keys, internal records out of place.
    /// Streams, checkpoints (a killed scan resumes), writes findings.jsonl,
    /// summary.json and a self-contained report.html.
    Scan(commands::scan::ScanArgs),
    /// Signed statements of where a tenant's data is: `attest create
    /// --tenant T` (scan, chain heads, Ed25519 signature, stored in the
    /// tenant's home region), `attest verify FILE` (signature, and that the
    /// buckets still show it).
    Attest(commands::attest::AttestArgs),
    /// Offboard a tenant: delete every object (and incomplete upload) under
    /// its namespace in every region, keep its audit batches, disclosure
    /// ledger and migration journals for --retention-days, and write a
    /// signed erasure statement (stored in its home region, printed;
    /// `residency attest verify` checks it). --dry-run shows the plan.
    /// Exit 0 done, 1 a region failed (run again), 2 bad arguments.
    Erase(commands::attest::EraseArgs),
    /// Carry out a plan of `residency scan --plan FILE`: each misplaced
    /// object is checked against the current policy again, then copied to
    /// the region it belongs in, verified (size, ETag computed while
    /// copying, metadata) and deleted where it was. Resumable: outcomes are
    /// journaled in FILE.done and skipped by the next run. An object whose
    /// destination already holds the key is left alone and reported.
    /// Exit 0 done, 1 some moves failed (run again), 2 bad arguments.
    Remediate(commands::attest::RemediateArgs),
    /// Government data requests: record, notify, export in scope, report.
    Disclosure(commands::disclosure::DisclosureArgs),
    /// Inspect the hosting policy.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Change a tenant in the tenants file.
    Tenants {
        #[command(subcommand)]
        command: TenantsCommand,
    },
}

#[derive(Subcommand, Debug)]
enum TenantsCommand {
    /// Set a tenant's optional features (the file is validated against the
    /// policy before it is written; a running sidecar picks it up on reload).
    ///
    /// Warns when a feature copies data outside the tenant's locality
    /// (`insights`: default ticket fields are copied to the US).
    Set {
        #[command(flatten)]
        files: PolicyFiles,
        /// Tenant id.
        tenant: String,
        /// Replace the feature list (comma-separated; empty for none).
        #[arg(long, value_delimiter = ',', num_args = 0..)]
        features: Option<Vec<String>>,
        /// Enable one feature.
        #[arg(long = "add-feature", value_name = "FEATURE")]
        add_feature: Vec<String>,
        /// Disable one feature.
        #[arg(long = "remove-feature", value_name = "FEATURE")]
        remove_feature: Vec<String>,
        #[command(flatten)]
        directory: DirectoryArgs,
    },
    /// Import a tenants file into the PostgreSQL directory: tenants, keys
    /// (secrets sealed under the key-encryption key) and service keys.
    /// Idempotent: says what it added and changed; a change of locality
    /// without a migration is refused and nothing is written.
    Import {
        /// The tenants file.
        file: PathBuf,
        /// Hosting policy the file is validated against (with --directory;
        /// --config names its own).
        #[arg(long, value_name = "FILE", default_value = DEFAULT_POLICY)]
        policy: PathBuf,
        #[command(flatten)]
        directory: DirectoryArgs,
    },
    /// Print the PostgreSQL directory as a tenants file (secrets as
    /// `secret_env` placeholders unless --with-secrets).
    Export {
        /// Write the secrets in plain text (opened with the key-encryption key).
        #[arg(long)]
        with_secrets: bool,
        #[command(flatten)]
        directory: DirectoryArgs,
    },
    /// Show a tenant's record in the PostgreSQL directory (never a secret).
    Show {
        /// Tenant id.
        tenant: String,
        /// One JSON object.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        directory: DirectoryArgs,
    },
    /// Re-seal every secret of the PostgreSQL directory under a new
    /// key-encryption key (resumable; the old key comes from
    /// RESIDENCY_DIRECTORY_KEY or the config's directory_key_file).
    RotateKey {
        /// File holding the new key (64 hex characters).
        #[arg(long, value_name = "FILE")]
        new_key_file: PathBuf,
        #[command(flatten)]
        directory: DirectoryArgs,
    },
}

/// Which PostgreSQL directory a `tenants` command works on.
#[derive(Args, Debug, Clone)]
pub(crate) struct DirectoryArgs {
    /// The directory's URL (`postgresql://...`); the key-encryption key
    /// comes from RESIDENCY_DIRECTORY_KEY.
    #[arg(
        long,
        value_name = "URL",
        env = "RESIDENCY_DIRECTORY_URL",
        hide_env_values = true
    )]
    directory: Option<String>,
    /// A sidecar configuration whose `tenants` names the directory (its
    /// policy, directory_key_file and URL are used).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

impl DirectoryArgs {
    fn target(self, policy: &std::path::Path) -> Result<commands::tenants_db::Target, String> {
        commands::tenants_db::Target::new(self.directory, self.config.as_deref(), policy)
    }

    fn given(&self) -> bool {
        self.directory.is_some() || self.config.is_some()
    }
}

#[derive(Subcommand, Debug)]
enum AuditCommand {
    /// Verify a tenant's audit chains: a removed, edited or truncated batch is
    /// reported. Exit 0 when intact, 1 when a problem is found.
    Verify(AuditArgs),
    /// Print a tenant's audit events in time order.
    Show(AuditArgs),
}

/// Whose audit trail, read through which configuration.
#[derive(Args, Debug)]
struct AuditArgs {
    /// The sidecar's configuration file (its regions' backends are read).
    #[arg(long, value_name = "FILE", default_value = "config/residency.toml")]
    config: PathBuf,
    /// Tenant id.
    #[arg(long)]
    tenant: String,
    /// JSON: the verification report (verify), one event per line (show).
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand, Debug)]
enum PolicyCommand {
    /// Render the hosting table: category, allowed regions, follows, feature gate.
    Show {
        /// Hosting policy file.
        #[arg(
            long,
            value_name = "FILE",
            default_value = "config/hosting-policy.toml"
        )]
        policy: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = ShowFormat::Text)]
        format: ShowFormat,
    },
    /// Compare two hosting policies before shipping the new one: every
    /// (tenant kind × category) whose placement changes, the tenants of the
    /// tenants file each change hits (they would need a migration of that
    /// category's data), and the invariant proof of both versions (no write
    /// outside a category's allowed regions, no strict tenant outside its
    /// locality). Exit 0 when no placement changes, 1 when some do, 2 when a
    /// file is invalid or a proof fails.
    Diff {
        /// The policy in force now.
        old: PathBuf,
        /// The policy to ship.
        new: PathBuf,
        /// Tenants file whose tenants are matched against the changes
        /// (validated against the old policy).
        #[arg(
            long,
            value_name = "FILE",
            default_value = "config/tenants.example.toml"
        )]
        tenants: PathBuf,
        /// One JSON object: the diff, the affected tenants, both proofs.
        #[arg(long)]
        json: bool,
    },
}

/// How `explain` prints.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExplainFormat {
    /// A few human lines.
    Text,
    /// One JSON object.
    Json,
}

/// How `policy show` prints.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ShowFormat {
    /// An aligned table.
    Text,
    /// A Markdown table.
    Markdown,
    /// JSON.
    Json,
    /// A self-contained HTML page: the placement matrix by tenant kind.
    Html,
    /// The placement matrix as an SVG image.
    Svg,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve {
            config,
            allow_location_mismatch,
            worker_threads,
            runtime,
        } => {
            return commands::serve::run(&config, allow_location_mismatch, worker_threads, runtime)
        }
        Command::Explain {
            files,
            tenant,
            key,
            bucket,
            config,
            category,
            content_type,
            format,
        } => commands::explain::run(
            &files,
            commands::explain::Target {
                tenant: tenant.as_deref(),
                key: &key,
                bucket: bucket.as_deref(),
                config: &config,
            },
            category.as_deref(),
            content_type.as_deref(),
            format,
        ),
        Command::Check {
            files,
            directory: Some(url),
            ..
        } => return commands::tenants_db::check(&files.policy, &url),
        Command::Check {
            files,
            previous,
            max_tenant_drop_percent,
            directory: None,
        } => commands::check::run(&files, previous.as_deref(), max_tenant_drop_percent),
        Command::Migrate(args) => return commands::migrate::run(args),
        Command::Disclosure(args) => return commands::disclosure::run(args),
        Command::Scan(args) => return commands::scan::run(args),
        Command::Attest(args) => return commands::attest::run(args),
        Command::Erase(args) => return commands::attest::run_erase(args),
        Command::Remediate(args) => return commands::attest::run_remediate(args),
        Command::Audit { command } => {
            let (a, verify) = match command {
                AuditCommand::Verify(a) => (a, true),
                AuditCommand::Show(a) => (a, false),
            };
            return commands::audit::run(&a.config, &a.tenant, a.json, verify);
        }
        Command::Policy {
            command: PolicyCommand::Show { policy, format },
        } => commands::policy_show::run(&policy, format),
        Command::Policy {
            command:
                PolicyCommand::Diff {
                    old,
                    new,
                    tenants,
                    json,
                },
        } => commands::policy_diff::run(&old, &new, &tenants, json),
        Command::Tenants {
            command:
                TenantsCommand::Set {
                    files,
                    tenant,
                    features,
                    add_feature,
                    remove_feature,
                    directory,
                },
        } if directory.given() => {
            return commands::tenants_db::set(
                directory.target(&files.policy),
                &tenant,
                features,
                &add_feature,
                &remove_feature,
            )
        }
        Command::Tenants {
            command:
                TenantsCommand::Set {
                    files,
                    tenant,
                    features,
                    add_feature,
                    remove_feature,
                    ..
                },
        } => commands::tenants::set(&files, &tenant, features, &add_feature, &remove_feature),
        Command::Tenants {
            command:
                TenantsCommand::Import {
                    file,
                    policy,
                    directory,
                },
        } => return commands::tenants_db::import(directory.target(&policy), &file),
        Command::Tenants {
            command:
                TenantsCommand::Export {
                    with_secrets,
                    directory,
                },
        } => {
            return commands::tenants_db::export(
                directory.target(Path::new(DEFAULT_POLICY)),
                with_secrets,
            )
        }
        Command::Tenants {
            command:
                TenantsCommand::Show {
                    tenant,
                    json,
                    directory,
                },
        } => {
            return commands::tenants_db::show(
                directory.target(Path::new(DEFAULT_POLICY)),
                &tenant,
                json,
            )
        }
        Command::Tenants {
            command:
                TenantsCommand::RotateKey {
                    new_key_file,
                    directory,
                },
        } => {
            return commands::tenants_db::rotate_key(
                directory.target(Path::new(DEFAULT_POLICY)),
                &new_key_file,
            )
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("residency: {e}");
            ExitCode::from(commands::EXIT_CONFIG)
        }
    }
}
