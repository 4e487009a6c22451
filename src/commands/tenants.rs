//! `residency tenants set`: change a tenant's features in the tenants file,
//! saying which copies out of its locality that starts.

use std::process::ExitCode;

use residency::policy::Tenants;

use super::{load_policy, read, LoadError, EXIT_CONFIG};
use crate::PolicyFiles;

pub(crate) fn set(
    files: &PolicyFiles,
    tenant: &str,
    features: Option<Vec<String>>,
    add: &[String],
    remove: &[String],
) -> Result<ExitCode, LoadError> {
    let policy = load_policy(&files.policy)?;
    let path = &files.tenants;
    let name = path.display().to_string();
    let src = read(path)?;
    let mut doc: toml_edit::DocumentMut = src
        .parse()
        .map_err(|e| LoadError::Read(format!("{name}: {e}")))?;
    let Some(entry) = doc
        .get_mut("tenants")
        .and_then(|t| t.as_array_of_tables_mut())
        .and_then(|ts| {
            ts.iter_mut()
                .find(|t| t.get("id").and_then(|v| v.as_str()) == Some(tenant))
        })
    else {
        eprintln!("residency: {name}: no tenant {tenant:?}");
        return Ok(ExitCode::from(EXIT_CONFIG));
    };
    let before: Vec<String> = entry
        .get("features")
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let mut after = features.unwrap_or_else(|| before.clone());
    after.retain(|f| !f.is_empty() && !remove.contains(f));
    for f in add {
        if !after.contains(f) {
            after.push(f.clone());
        }
    }
    let mut array = toml_edit::Array::new();
    for f in &after {
        array.push(f.as_str());
    }
    entry.insert("features", toml_edit::value(array));
    let new_src = doc.to_string();
    let tenants = match Tenants::from_toml(&new_src, &name, &policy) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{e}");
            eprintln!("{name}: not changed");
            return Ok(ExitCode::from(EXIT_CONFIG));
        }
    };
    // The same guard as the sidecar's reload: this command changes features
    // only, but a locality never changes outside `residency migrate`.
    if let Ok(old) = Tenants::from_toml(&src, &name, &policy) {
        if let Err(why) =
            residency::policy::refuse_unrecorded_switches(&policy, &old, &policy, &tenants)
        {
            eprintln!("residency: {name}: {why}");
            eprintln!("{name}: not changed");
            return Ok(ExitCode::from(EXIT_CONFIG));
        }
    }
    let tmp = path.with_extension("toml.tmp");
    std::fs::write(&tmp, &new_src)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| LoadError::Read(format!("cannot write {name}: {e}")))?;
    println!("ok: {name}: tenant {tenant} features = {after:?}");
    // "Default ticket fields exported to Insights ... cannot be disabled":
    // say which enabled feature copies data outside the tenant's locality.
    let id = tenants.get(tenant).expect("the tenant was just validated");
    let t = tenants.tenant(id);
    if let Some(home) = t.locality() {
        for f in t.features().iter() {
            for e in policy.exports_leaving(f, home) {
                let cats: Vec<&str> = e
                    .categories()
                    .iter()
                    .map(|c| policy.category(*c).id())
                    .collect();
                let to = policy.region(e.to());
                println!(
                    "warning: feature {} copies {} of {} to {} ({}), outside the tenant's locality {} ({}){}",
                    policy.feature_name(f),
                    e.what().unwrap_or("data"),
                    cats.join(", "),
                    to.id(),
                    to.jurisdiction(),
                    policy.region(home).id(),
                    policy.region(home).jurisdiction(),
                    e.seed().map(|q| format!(": \"{q}\"")).unwrap_or_default()
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
