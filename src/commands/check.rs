//! `residency check`: validate files, report every error.

use std::path::Path;
use std::process::ExitCode;

use residency::policy::Tenants;

use super::{load_policy, read, LoadError, EXIT_CONFIG};
use crate::PolicyFiles;

pub(crate) fn run(
    files: &PolicyFiles,
    previous: Option<&Path>,
    max_tenant_drop_percent: u32,
) -> Result<ExitCode, LoadError> {
    let policy = match load_policy(&files.policy) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            eprintln!(
                "{}: invalid (tenants not checked until the policy is valid)",
                files.policy.display()
            );
            return Ok(ExitCode::from(EXIT_CONFIG));
        }
    };
    // The invariants, over every tenant kind × category: no write outside a
    // category's allowed regions, no strict tenant outside its locality.
    let proof = residency::policy::prove(&policy);
    if !proof.is_clean() {
        eprintln!("{}: {proof}", files.policy.display());
        return Ok(ExitCode::from(EXIT_CONFIG));
    }
    let src = read(&files.tenants)?;
    match Tenants::from_toml(&src, &files.tenants.display().to_string(), &policy) {
        Ok(t) => {
            println!(
                "ok: {} (version {}, {} regions, {} categories, {} key rules, {} content-type rules)",
                files.policy.display(),
                policy.version(),
                policy.regions().len(),
                policy.categories().len(),
                policy.key_rules().len(),
                policy.content_type_rules().len()
            );
            println!("ok: {}: {proof}", files.policy.display());
            println!(
                "ok: {} ({} tenants, {} service keys)",
                files.tenants.display(),
                t.len(),
                t.service_keys().len()
            );
            if let Some(prev) = previous {
                let src = read(prev)?;
                let old = match Tenants::from_toml(&src, &prev.display().to_string(), &policy) {
                    Ok(old) => old,
                    Err(e) => {
                        eprintln!("{e}");
                        eprintln!("{}: the previous tenants file is invalid", prev.display());
                        return Ok(ExitCode::from(EXIT_CONFIG));
                    }
                };
                if let Err(why) =
                    residency_proxy::config::check_tenant_drop(&old, &t, max_tenant_drop_percent)
                {
                    eprintln!(
                        "{}: a reload from {} would be refused: {why}",
                        files.tenants.display(),
                        prev.display()
                    );
                    return Ok(ExitCode::from(EXIT_CONFIG));
                }
                println!("ok: reloading from {} keeps enough tenants", prev.display());
                // "can only be Hosted in a single Data Locality": a locality
                // changes only through `residency migrate`.
                if let Err(why) =
                    residency::policy::refuse_unrecorded_switches(&policy, &old, &policy, &t)
                {
                    eprintln!(
                        "{}: a reload from {} would be refused: {why}",
                        files.tenants.display(),
                        prev.display()
                    );
                    return Ok(ExitCode::from(EXIT_CONFIG));
                }
                println!(
                    "ok: reloading from {} moves no tenant to another locality without a migration",
                    prev.display()
                );
            }
            // What the files certify and what they do not: the default-region
            // assumption, sub-processor copies, feature exports.
            for n in super::policy_show::notes(&policy) {
                println!("note: {n}");
            }
            for (_, tenant) in t.iter() {
                let Some(home) = tenant.locality() else {
                    continue;
                };
                for f in tenant.features().iter() {
                    for e in policy.exports_leaving(f, home) {
                        println!(
                            "warning: tenant {}: feature {} copies {} to {}, outside its locality {}",
                            tenant.id(),
                            policy.feature_name(f),
                            e.what().unwrap_or("data"),
                            policy.region(e.to()).id(),
                            policy.region(home).id()
                        );
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{e}");
            eprintln!("{}: {} error(s)", files.tenants.display(), e.errors().len());
            Ok(ExitCode::from(EXIT_CONFIG))
        }
    }
}
