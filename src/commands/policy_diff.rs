//! `residency policy diff OLD NEW`: what shipping a new policy changes, who
//! it hits, and the invariant proof of both versions.

use std::path::Path;
use std::process::ExitCode;

use residency::policy::{diff, prove, PolicyDiff, Proof, TenantRecord, Tenants};

use super::{load_policy, read, LoadError, EXIT_CONFIG};

/// Exit status when some placement changes (as `diff` does).
const EXIT_CHANGES: u8 = 1;

pub(crate) fn run(
    old_path: &Path,
    new_path: &Path,
    tenants_path: &Path,
    json: bool,
) -> Result<ExitCode, LoadError> {
    let old = load_policy(old_path)?;
    let new = load_policy(new_path)?;
    let src = read(tenants_path)?;
    let tenants = Tenants::from_toml(&src, &tenants_path.display().to_string(), &old)
        .map_err(LoadError::Invalid)?;
    let records: Vec<TenantRecord> = tenants
        .iter()
        .map(|(_, t)| TenantRecord::of(t, &old))
        .collect();
    let d = diff(&old, &new);
    let affected = d.affected(&records);
    let proofs = [prove(&old), prove(&new)];
    if json {
        let out = serde_json::json!({
            "old": old_path.display().to_string(),
            "new": new_path.display().to_string(),
            "diff": d,
            "affected": affected
                .iter()
                .map(|(id, changes)| serde_json::json!({"tenant": id, "changes": changes}))
                .collect::<Vec<_>>(),
            "proofs": proofs,
        });
        println!("{out:#}");
    } else {
        print!("{d}");
        if !d.is_empty() {
            println!();
        }
        if affected.is_empty() {
            println!("tenants of {}: none affected", tenants_path.display());
        } else {
            println!(
                "tenants of {} that would need a migration ({}):",
                tenants_path.display(),
                affected.len()
            );
            for (id, changes) in &affected {
                for c in changes {
                    println!("  {id}: {} {} → {}", c.category, c.old, c.new);
                }
            }
        }
        for (path, proof) in [(old_path, &proofs[0]), (new_path, &proofs[1])] {
            println!("{}: {proof}", path.display());
        }
    }
    Ok(ExitCode::from(exit_code(&d, &proofs)))
}

fn exit_code(d: &PolicyDiff, proofs: &[Proof]) -> u8 {
    if proofs.iter().any(|p| !p.is_clean()) {
        EXIT_CONFIG
    } else if d.is_empty() {
        0
    } else {
        EXIT_CHANGES
    }
}
