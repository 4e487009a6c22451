//! `residency tenants import | export | show | set | rotate-key` on the
//! PostgreSQL tenant directory (`--directory URL`, or `--config` naming one).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use residency::policy::{Policy, Tenants};
use residency_directory::postgres::{self as pg, DirectoryKey, FeatureChange};

use super::{load_policy, read, EXIT_CONFIG};

/// Bound on connecting to the directory from the command line.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the directory is, its key and the policy rows are checked against.
pub(crate) struct Target {
    url: String,
    key_file: Option<PathBuf>,
    policy: PathBuf,
}

impl Target {
    /// From `--directory URL` (with `--policy`), else from `--config FILE`.
    pub(crate) fn new(
        directory: Option<String>,
        config: Option<&Path>,
        policy: &Path,
    ) -> Result<Target, String> {
        if let Some(url) = directory {
            if !residency_proxy::config::is_directory_url(&url) {
                return Err(format!(
                    "--directory must be a postgresql:// URL (got {:?})",
                    url.split('@').next_back().unwrap_or("")
                ));
            }
            return Ok(Target {
                url,
                key_file: None,
                policy: policy.to_path_buf(),
            });
        }
        let Some(config) = config else {
            return Err("give --directory postgresql://... or --config residency.toml (whose `tenants` names the directory)".into());
        };
        let cfg = residency_proxy::Config::load(config).map_err(|e| e.to_string())?;
        let Some(d) = cfg.directory else {
            return Err(format!(
                "{}: `tenants` is the file {}, not a PostgreSQL directory",
                config.display(),
                cfg.tenants.display()
            ));
        };
        Ok(Target {
            url: d.url,
            key_file: d.key_file,
            policy: cfg.policy,
        })
    }

    fn key(&self) -> Result<DirectoryKey, String> {
        DirectoryKey::load(self.key_file.as_deref()).map_err(|e| e.to_string())
    }

    async fn client(&self) -> Result<pg::Client, String> {
        let mut c = pg::connect_client(&self.url, CONNECT_TIMEOUT)
            .await
            .map_err(|e| format!("tenant directory: {e}"))?;
        pg::migrate(&mut c)
            .await
            .map_err(|e| format!("tenant directory: {e}"))?;
        Ok(c)
    }
}

fn run(f: impl std::future::Future<Output = Result<ExitCode, String>>) -> ExitCode {
    let runtime = match super::runtime(false) {
        Ok(r) => r,
        Err(code) => return code,
    };
    match runtime.block_on(f) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("residency: {e}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

fn policy_of(t: &Target) -> Result<Policy, String> {
    load_policy(&t.policy).map_err(|e| e.to_string())
}

/// `tenants import FILE`: the file's tenants and keys into the directory.
pub(crate) fn import(target: Result<Target, String>, file: &Path) -> ExitCode {
    run(async move {
        let target = target?;
        let policy = policy_of(&target)?;
        let src = read(file).map_err(|e| e.to_string())?;
        let tenants = Tenants::from_toml(&src, &file.display().to_string(), &policy)
            .map_err(|e| e.to_string())?;
        let key = target.key()?;
        let mut client = target.client().await?;
        let report = pg::import(
            &mut client,
            &tenants,
            &policy,
            residency_proxy::config::resolve_secret,
            &key,
        )
        .await
        .map_err(|e| format!("{}: not imported: {e}", file.display()))?;
        println!(
            "ok: {} → directory: {} added, {} changed, {} unchanged; keys: {} added, {} changed",
            file.display(),
            report.added,
            report.changed,
            report.unchanged,
            report.keys_added,
            report.keys_changed
        );
        Ok(ExitCode::SUCCESS)
    })
}

/// `tenants export`: the directory as a tenants file on stdout.
pub(crate) fn export(target: Result<Target, String>, with_secrets: bool) -> ExitCode {
    run(async move {
        let target = target?;
        let keys = if with_secrets {
            Some(vec![target.key()?])
        } else {
            None
        };
        let client = target.client().await?;
        let text = pg::export(&client, keys.as_deref())
            .await
            .map_err(|e| format!("tenant directory: {e}"))?;
        print!("{text}");
        Ok(ExitCode::SUCCESS)
    })
}

/// `tenants show T`.
pub(crate) fn show(target: Result<Target, String>, tenant: &str, json: bool) -> ExitCode {
    run(async move {
        let target = target?;
        let client = target.client().await?;
        let Some(d) = pg::show(&client, tenant)
            .await
            .map_err(|e| format!("tenant directory: {e}"))?
        else {
            eprintln!("residency: no tenant {tenant:?} in the directory");
            return Ok(ExitCode::from(EXIT_CONFIG));
        };
        let r = &d.record;
        if json {
            let v = serde_json::json!({
                "id": r.id,
                "locality": r.locality,
                "strict": r.strict,
                "features": r.features,
                "bucket": r.bucket(),
                "migrating_from": r.migrating_from,
                "migrated_from": r.migrated_from,
                "keys": d.keys,
                "service_keys": d.service_keys,
                "updated_at": d.updated_at,
            });
            println!("{v:#}");
        } else {
            println!("tenant {}", r.id);
            println!(
                "  locality: {}",
                r.locality.as_deref().unwrap_or("(none: default region)")
            );
            println!("  strict: {}", r.strict);
            println!("  features: [{}]", r.features.join(", "));
            println!("  bucket: {}", r.bucket());
            if let Some(m) = &r.migrating_from {
                println!("  migrating from: {m}");
            }
            if let Some(m) = &r.migrated_from {
                println!("  migrated from: {m}");
            }
            println!("  keys: [{}]", d.keys.join(", "));
            println!(
                "  service keys acting for it: [{}]",
                d.service_keys.join(", ")
            );
            println!("  updated: {}", d.updated_at);
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// `tenants set T --features ...` on the directory.
pub(crate) fn set(
    target: Result<Target, String>,
    tenant: &str,
    features: Option<Vec<String>>,
    add: &[String],
    remove: &[String],
) -> ExitCode {
    let change = match (features, add.is_empty(), remove.is_empty()) {
        (Some(f), true, true) => {
            FeatureChange::Replace(f.into_iter().filter(|f| !f.is_empty()).collect())
        }
        (None, false, true) => FeatureChange::Add(add.to_vec()),
        (None, true, false) => FeatureChange::Remove(remove.to_vec()),
        _ => {
            eprintln!("residency: give one of --features, --add-feature or --remove-feature");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    run(async move {
        let target = target?;
        let policy = policy_of(&target)?;
        let mut client = target.client().await?;
        let (before, after) = pg::set_features(&mut client, tenant, change, &policy)
            .await
            .map_err(|e| format!("tenant {tenant}: not changed: {e}"))?;
        println!("ok: directory: tenant {tenant} features {before:?} → {after:?} (every sidecar enforces it once PostgreSQL notifies it)");
        Ok(ExitCode::SUCCESS)
    })
}

/// `tenants rotate-key --new-key-file FILE`.
pub(crate) fn rotate_key(target: Result<Target, String>, new_key_file: &Path) -> ExitCode {
    run(async move {
        let target = target?;
        let old = target.key()?;
        let new = DirectoryKey::from_file(new_key_file).map_err(|e| e.to_string())?;
        let mut client = target.client().await?;
        let n = pg::rotate_key(&mut client, &old, &new)
            .await
            .map_err(|e| format!("tenant directory: {e}"))?;
        println!(
            "ok: {n} secret(s) re-sealed under key {}; sidecars accept both keys until restarted with the new one",
            new.id()
        );
        Ok(ExitCode::SUCCESS)
    })
}

/// `check --directory URL`: the policy, and every row of the directory
/// validated against it (a row the policy refuses is reported, not fatal to
/// the others); exit 2 when anything is refused.
pub(crate) fn check(policy_path: &Path, url: &str) -> ExitCode {
    use futures::StreamExt;
    use residency_directory::{Directory, DirectoryError};
    let url = url.to_owned();
    run(async move {
        let policy = load_policy(policy_path).map_err(|e| e.to_string())?;
        let proof = residency::policy::prove(&policy);
        if !proof.is_clean() {
            return Err(format!("{}: {proof}", policy_path.display()));
        }
        println!("ok: {}: {proof}", policy_path.display());
        // Only reads rows: any key opens the directory, none is used.
        let mut options = pg::PgOptions::new(url.clone(), DirectoryKey::generate());
        options.connect_timeout = CONNECT_TIMEOUT;
        let dir = residency_directory::PgDirectory::connect(options)
            .await
            .map_err(|e| format!("tenant directory: {e}"))?;
        let (mut ok, mut refused) = (0usize, 0usize);
        let mut rows = dir.tenants(&policy);
        while let Some(r) = rows.next().await {
            match r {
                Ok(_) => ok += 1,
                Err(DirectoryError::Refused { tenant, reasons }) => {
                    refused += 1;
                    for why in reasons {
                        eprintln!("tenant {tenant}: {why}");
                    }
                }
                Err(e) => return Err(e.to_string()),
            }
        }
        if refused > 0 {
            eprintln!("directory: {refused} tenant(s) refused by the policy, {ok} valid");
            return Ok(ExitCode::from(EXIT_CONFIG));
        }
        println!("ok: directory ({ok} tenants valid against the policy)");
        Ok(ExitCode::SUCCESS)
    })
}
