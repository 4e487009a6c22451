//! Editing the tenants file in place: the migration's "switch".
//!
//! The tenants file is the source of truth for where a tenant's data goes:
//! `locality = "eu"` plus `migrating_from = "us"` makes the sidecar write to
//! the EU and read the EU first, then the US. The edit keeps every comment
//! and the layout (`toml_edit`) and replaces the file atomically (a temporary
//! file in the same directory, then `rename`), so a sidecar polling the file
//! never reads half of it.
//!
//! ```
//! use residency_migrate::tenants_file::edit_source;
//! let src = "# our tenants\n[[tenants]]\nid = \"acme\" # the first\nlocality = \"us\"\n";
//! let out = edit_source(src, "acme", "eu", Some("us")).unwrap();
//! assert_eq!(
//!     out,
//!     "# our tenants\n[[tenants]]\nid = \"acme\" # the first\nlocality = \"eu\"\nmigrating_from = \"us\"\n"
//! );
//! let done = edit_source(&out, "acme", "eu", None).unwrap();
//! assert!(!done.contains("migrating_from"));
//! assert!(done.contains("migrated_from = \"us\""));
//! ```

use std::io::Write as _;
use std::path::Path;

use toml_edit::{value, DocumentMut, Item};

/// Sets the tenant's `locality` and `migrating_from`, returning the new file
/// text. `Some(from)` (the switch) also removes `migrated_from`; `None` (the
/// finish) turns `migrating_from` into `migrated_from`, the record of the
/// move that lets every tenants source accept the new locality.
///
/// # Errors
/// The text is not TOML, or declares no tenant `tenant`.
pub fn edit_source(
    src: &str,
    tenant: &str,
    locality: &str,
    migrating_from: Option<&str>,
) -> Result<String, String> {
    let mut doc: DocumentMut = src
        .parse()
        .map_err(|e| format!("the tenants file is not valid TOML: {e}"))?;
    let tenants = doc
        .get_mut("tenants")
        .and_then(Item::as_array_of_tables_mut)
        .ok_or_else(|| "the tenants file has no [[tenants]]".to_owned())?;
    let t = tenants
        .iter_mut()
        .find(|t| t.get("id").and_then(Item::as_str) == Some(tenant))
        .ok_or_else(|| format!("the tenants file declares no tenant {tenant:?}"))?;
    if t.get("locality").and_then(Item::as_str) != Some(locality) {
        set_keeping_decor(t, "locality", locality);
    }
    match migrating_from {
        Some(m) if m != locality => {
            if t.get("migrating_from").and_then(Item::as_str) != Some(m) {
                set_keeping_decor(t, "migrating_from", m);
            }
            // A new migration: the record of the last one goes.
            t.remove("migrated_from");
        }
        _ => {
            // The end of a migration: its record stays (`migrated_from`), so
            // that a sidecar which never saw the switch accepts the new
            // locality (`residency_policy::unrecorded_switches`).
            if let Some(from) = t
                .remove("migrating_from")
                .and_then(|m| m.as_str().map(str::to_owned))
                .filter(|m| m != locality)
            {
                set_keeping_decor(t, "migrated_from", &from);
            }
        }
    }
    Ok(doc.to_string())
}

/// Refuses a switch that would replace another migration's
/// `migrating_from`: reads would stop looking in the region that migration
/// moves from, and its objects not yet copied would answer 404.
///
/// # Errors
/// The tenant has `migrating_from` set for a migration to another region
/// (or from another region).
pub fn refuse_other_migration(
    src: &str,
    tenant: &str,
    locality: &str,
    migrating_from: &str,
) -> Result<(), String> {
    let doc: DocumentMut = src
        .parse()
        .map_err(|e| format!("the tenants file is not valid TOML: {e}"))?;
    let t = doc
        .get("tenants")
        .and_then(Item::as_array_of_tables)
        .and_then(|ts| {
            ts.iter()
                .find(|t| t.get("id").and_then(Item::as_str) == Some(tenant))
        });
    let Some(t) = t else { return Ok(()) };
    match (
        t.get("locality").and_then(Item::as_str),
        t.get("migrating_from").and_then(Item::as_str),
    ) {
        (Some(l), Some(m)) if l != locality || m != migrating_from => Err(format!(
            "tenant {tenant:?} is migrating from {m} to {l}: finish that migration before switching it to {locality} (migrating_from = {migrating_from:?})"
        )),
        _ => Ok(()),
    }
}

/// Replaces a string value, keeping the comment after it when there is one.
fn set_keeping_decor(t: &mut toml_edit::Table, key: &str, v: &str) {
    let decor = t
        .get(key)
        .and_then(Item::as_value)
        .map(|old| old.decor().clone());
    t[key] = value(v);
    if let (Some(decor), Some(new)) = (decor, t.get_mut(key).and_then(Item::as_value_mut)) {
        *new.decor_mut() = decor;
    }
}

/// Writes `contents` to `path` atomically: a temporary file in the same
/// directory, synced, then renamed over the original (whose permissions it
/// keeps).
///
/// # Errors
/// Any I/O error; the original file is then unchanged.
pub fn write_atomically(path: &Path, contents: &str) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "tenants.toml".to_owned());
    let tmp = dir.join(format!(".{name}.migrate-{}.tmp", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        if let Ok(meta) = std::fs::metadata(path) {
            f.set_permissions(meta.permissions())?;
        }
        f.write_all(contents.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Whether [`edit_file`] with these arguments would change the file.
///
/// # Errors
/// As [`edit_file`].
pub fn would_change(
    path: &Path,
    tenant: &str,
    locality: &str,
    migrating_from: Option<&str>,
) -> Result<bool, String> {
    let (src, out) = planned_edit(path, tenant, locality, migrating_from)?;
    Ok(out != src)
}

/// Edits the tenants file at `path` (see [`edit_source`]). Returns whether
/// the file changed; an unchanged file is not rewritten.
///
/// # Errors
/// The file cannot be read, parsed or written.
pub fn edit_file(
    path: &Path,
    tenant: &str,
    locality: &str,
    migrating_from: Option<&str>,
) -> Result<bool, String> {
    let (src, out) = planned_edit(path, tenant, locality, migrating_from)?;
    if out == src {
        return Ok(false);
    }
    write_atomically(path, &out).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(true)
}

/// The file at `path` as it is and as [`edit_file`] would write it.
fn planned_edit(
    path: &Path,
    tenant: &str,
    locality: &str,
    migrating_from: Option<&str>,
) -> Result<(String, String), String> {
    let src = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if let Some(m) = migrating_from {
        refuse_other_migration(&src, tenant, locality, m)
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    let out = edit_source(&src, tenant, locality, migrating_from)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok((src, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: &str = r#"# Tenants.
[[tenants]]
id = "acme"
locality = "eu"   # chosen in 2024
[[tenants.keys]]
access_key = "A"
secret_key = "s"

# No locality yet.
[[tenants]]
id = "initech"
[[tenants.keys]]
access_key = "I"
secret_key = "t"
"#;

    #[test]
    fn switch_adds_keys_and_keeps_comments() {
        let out = edit_source(SRC, "initech", "eu", Some("us")).unwrap();
        assert!(out.contains("# No locality yet."));
        assert!(out.contains("locality = \"eu\"   # chosen in 2024"));
        let doc: DocumentMut = out.parse().unwrap();
        let t = &doc["tenants"].as_array_of_tables().unwrap().get(1).unwrap();
        assert_eq!(t["locality"].as_str(), Some("eu"));
        assert_eq!(t["migrating_from"].as_str(), Some("us"));
        // The key table still belongs to initech.
        assert_eq!(
            t["keys"].as_array_of_tables().unwrap().get(0).unwrap()["access_key"].as_str(),
            Some("I")
        );
        // Idempotent.
        assert_eq!(edit_source(&out, "initech", "eu", Some("us")).unwrap(), out);
    }

    #[test]
    fn replacing_a_value_keeps_its_comment() {
        let out = edit_source(SRC, "acme", "us", Some("eu")).unwrap();
        assert!(
            out.contains("locality = \"us\"   # chosen in 2024"),
            "{out}"
        );
        let back = edit_source(&out, "acme", "us", None).unwrap();
        assert!(!back.contains("migrating_from"));
    }

    #[test]
    fn every_step_records_the_move_for_the_reload_check() {
        // The files a sidecar may read, in the order the migrator writes
        // them: each is accepted against each earlier one.
        let policy = residency_policy::Policy::from_toml(
            include_str!("../../../config/hosting-policy.toml"),
            "hosting-policy.toml",
        )
        .unwrap();
        let switched = edit_source(SRC, "initech", "eu", Some("us")).unwrap();
        let finished = edit_source(&switched, "initech", "eu", None).unwrap();
        assert!(finished.contains("migrated_from = \"us\""), "{finished}");
        assert!(!finished.contains("migrating_from"), "{finished}");
        // Finishing again changes nothing.
        assert_eq!(
            edit_source(&finished, "initech", "eu", None).unwrap(),
            finished
        );
        let next = edit_source(&finished, "initech", "us", Some("eu")).unwrap();
        assert!(!next.contains("migrated_from"), "{next}");
        let files = [SRC, &switched, &finished, &next];
        let parsed: Vec<_> = files
            .iter()
            .map(|f| residency_policy::Tenants::from_toml(f, "tenants.toml", &policy).unwrap())
            .collect();
        for (i, new) in parsed.iter().enumerate() {
            let old = &parsed[i.saturating_sub(1)];
            assert!(
                residency_policy::unrecorded_switches(&policy, old, &policy, new).is_empty(),
                "step {i}"
            );
        }
        // A sidecar that polled before the switch and after --finish.
        assert!(
            residency_policy::unrecorded_switches(&policy, &parsed[0], &policy, &parsed[2])
                .is_empty()
        );
        // A hand edit of the locality is not.
        let hand = SRC.replace("locality = \"eu\"   # chosen in 2024", "locality = \"us\"");
        let hand = residency_policy::Tenants::from_toml(&hand, "t", &policy).unwrap();
        assert_eq!(
            residency_policy::unrecorded_switches(&policy, &parsed[0], &policy, &hand).len(),
            1
        );
    }

    #[test]
    fn an_open_migration_is_never_replaced() {
        let open = edit_source(SRC, "initech", "eu", Some("us")).unwrap();
        assert!(refuse_other_migration(&open, "initech", "eu", "us").is_ok());
        let e = refuse_other_migration(&open, "initech", "us", "eu").unwrap_err();
        assert!(e.contains("migrating from us to eu"), "{e}");
        assert!(refuse_other_migration(SRC, "acme", "us", "eu").is_ok());
    }

    #[test]
    fn unknown_tenant_is_an_error() {
        assert!(edit_source(SRC, "nobody", "eu", None).is_err());
        assert!(edit_source("x = [", "acme", "eu", None).is_err());
    }

    #[test]
    fn file_edit_is_atomic_and_reports_change() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tenants.toml");
        std::fs::write(&p, SRC).unwrap();
        assert!(edit_file(&p, "initech", "eu", Some("us")).unwrap());
        assert!(!edit_file(&p, "initech", "eu", Some("us")).unwrap());
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary file is left behind");
    }
}
