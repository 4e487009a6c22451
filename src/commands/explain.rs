//! `residency explain`: where one object goes, and why.

use std::path::Path;
use std::process::ExitCode;

use residency::policy::{Decision, DenyReason, Note, PlacementRequest};
use serde_json::json;

use super::{load_ruleset, LoadError, EXIT_CONFIG};
use crate::{ExplainFormat, PolicyFiles};

/// What to explain: a key of a tenant, in which bucket.
pub(crate) struct Target<'a> {
    pub(crate) tenant: Option<&'a str>,
    pub(crate) key: &'a str,
    pub(crate) bucket: Option<&'a str>,
    pub(crate) config: &'a Path,
}

/// Where a bucket's objects are, whose they are, and its default category.
struct BucketView {
    name: String,
    tenant: String,
    /// The key as classified and stored (the tenant segment taken off in a
    /// shared bucket whose keys carry it).
    key: String,
    /// The stored object's key prefix below the tenant's (`~bucket/<name>/`).
    namespace: String,
    default_category: Option<String>,
}

#[derive(serde::Deserialize)]
struct SharedOnly {
    #[serde(default)]
    shared_buckets: Vec<residency_proxy::config::SharedBucket>,
}

/// Resolves `--bucket`, or explains why it cannot (exit 2).
fn bucket_view(
    files: &PolicyFiles,
    rules: &residency::policy::Ruleset,
    t: &Target<'_>,
    name: &str,
) -> Result<BucketView, String> {
    let tenants = rules.tenants();
    let namespace = format!("{}{name}/", residency::policy::BUCKET_NAMESPACE);
    let check_tenant = |owner: &str| match t.tenant {
        Some(given) if given != owner => {
            Err(format!("bucket {name} is tenant {owner}'s, not {given}'s"))
        }
        _ => Ok(owner.to_owned()),
    };
    if let Some(id) = tenants.by_bucket(name) {
        return Ok(BucketView {
            name: name.to_owned(),
            tenant: check_tenant(tenants.tenant(id).id())?,
            key: t.key.to_owned(),
            namespace: String::new(),
            default_category: None,
        });
    }
    let registry = residency_directory::FileBuckets::path_for(&files.tenants);
    if let Ok(text) = std::fs::read_to_string(&registry) {
        #[derive(serde::Deserialize)]
        struct Registry {
            #[serde(default)]
            buckets: Vec<residency_directory::BucketRecord>,
        }
        let reg: Registry =
            toml::from_str(&text).map_err(|e| format!("{}: {e}", registry.display()))?;
        if let Some(b) = reg.buckets.into_iter().find(|b| b.name == name) {
            return Ok(BucketView {
                name: name.to_owned(),
                tenant: check_tenant(&b.tenant)?,
                key: t.key.to_owned(),
                namespace,
                default_category: b.default_category,
            });
        }
    }
    let shared = match std::fs::read_to_string(t.config) {
        Ok(text) => {
            toml::from_str::<SharedOnly>(&text)
                .map_err(|e| format!("{}: {e}", t.config.display()))?
                .shared_buckets
        }
        Err(_) => Vec::new(),
    };
    let Some(sb) = shared.into_iter().find(|b| b.name == name) else {
        return Err(format!(
            "bucket {name} is neither a tenant's bucket in {} nor created ({}) nor shared in {}",
            files.tenants.display(),
            registry.display(),
            t.config.display()
        ));
    };
    let (tenant, key) = match sb.tenant_from {
        residency_proxy::config::TenantFrom::Key => {
            let Some((tenant, rest)) = t.key.split_once('/') else {
                return Err(format!(
                    "bucket {name} is shared with the tenant in the key: give --key <tenant>/..."
                ));
            };
            (check_tenant(tenant)?, rest.to_owned())
        }
        residency_proxy::config::TenantFrom::Header => match t.tenant {
            Some(given) => (given.to_owned(), t.key.to_owned()),
            None => {
                return Err(format!(
                    "bucket {name} is shared, the tenant named by a header: give --tenant"
                ))
            }
        },
    };
    Ok(BucketView {
        name: name.to_owned(),
        tenant,
        key,
        namespace,
        default_category: sb.default_category,
    })
}

pub(crate) fn run(
    files: &PolicyFiles,
    target: Target<'_>,
    category: Option<&str>,
    content_type: Option<&str>,
    format: ExplainFormat,
) -> Result<ExitCode, LoadError> {
    let rules = load_ruleset(files)?;
    let policy = rules.policy();
    let view = match target.bucket {
        Some(name) => match bucket_view(files, &rules, &target, name) {
            Ok(v) => Some(v),
            Err(why) => {
                eprintln!("residency: {why}");
                return Ok(ExitCode::from(EXIT_CONFIG));
            }
        },
        None => None,
    };
    let tenant: &str = match (&view, target.tenant) {
        (Some(v), _) => &v.tenant,
        (None, Some(t)) => t,
        (None, None) => unreachable!("clap requires --tenant without --bucket"),
    };
    let key: &str = view.as_ref().map_or(target.key, |v| v.key.as_str());
    // The bucket's default category: after the key rules, before the
    // content-type rules (docs/s3-compatibility.md).
    let bucket_default = view
        .as_ref()
        .and_then(|v| v.default_category.as_deref())
        .filter(|_| category.is_none() && policy.classify_key(key).is_none());
    let category = category.or(bucket_default);
    if let Some(c) = category {
        if policy.category_by_id(c).is_none() {
            let known: Vec<&str> = policy.categories().map(|(_, c)| c.id()).collect();
            eprintln!(
                "residency: unknown category {c:?}; the policy declares: {}",
                known.join(", ")
            );
            return Ok(ExitCode::from(EXIT_CONFIG));
        }
    }
    let decision = rules.decide(&PlacementRequest {
        tenant,
        key,
        category,
        content_type,
    });
    let detail = decision.explain(policy, rules.tenants()).to_string();
    let (region, out_of_locality, category_id, classified_by, bucket) = match &decision {
        Decision::Allow(p) => (
            Some(policy.region(p.region).id()),
            p.out_of_locality,
            Some(policy.category(p.category).id()),
            Some(p.classified_by.as_str()),
            Some(rules.tenants().tenant(p.tenant).bucket()),
        ),
        Decision::Deny(r) => {
            let cat = match *r {
                DenyReason::FeatureDisabled { category, .. }
                | DenyReason::OutOfLocality { category } => Some(policy.category(category).id()),
                DenyReason::CategoryConflict { explicit, .. } => {
                    Some(policy.category(explicit).id())
                }
                _ => None,
            };
            (None, false, cat, None, None)
        }
    };
    // What the region alone does not tell: third-party copies of the category,
    // copies an enabled feature makes, and the default-region assumption.
    let also_hosted_by: Vec<_> = decision
        .category()
        .map(|c| {
            policy
                .sub_processors_of(c)
                .map(|s| {
                    json!({
                        "name": s.name(),
                        "hosts_in": s.hosts_in(),
                        "seed": s.seed(),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let notes = rules.decision_notes(tenant, &decision);
    let warnings: Vec<String> = notes
        .iter()
        .filter(|n| n.is_warning())
        .map(|n| n.display(policy).to_string())
        .collect();
    let assumption = notes
        .iter()
        .find(|n| matches!(n, Note::DefaultRegionAssumption { .. }))
        .map(|n| n.display(policy).to_string());
    let namespace = view.as_ref().map_or("", |v| v.namespace.as_str());
    match format {
        ExplainFormat::Json => {
            let v = json!({
                "decision": decision.as_str(),
                "tenant": tenant,
                "key": key,
                "region": region,
                "bucket": view.as_ref().map(|v| v.name.as_str()).or(bucket),
                "object": bucket.map(|_| format!("{tenant}/{namespace}{key}")),
                "category": category_id,
                "classified_by": if bucket_default.is_some() && region.is_some() {
                    Some("bucket_default")
                } else {
                    classified_by
                },
                "reason": decision.reason_str(),
                "detail": detail,
                "out_of_locality": out_of_locality,
                "also_hosted_by": also_hosted_by,
                "warnings": warnings,
                "assumption": assumption,
                "policy_version": policy.version(),
            });
            println!("{v}");
        }
        ExplainFormat::Text => {
            match region {
                Some(r) => println!(
                    "allow: {tenant}/{namespace}{key} -> region {r} ({}){}",
                    policy
                        .region_by_id(r)
                        .map_or("", |id| policy.region(id).jurisdiction()),
                    if out_of_locality {
                        " [out of locality]"
                    } else {
                        ""
                    }
                ),
                None => println!("deny: {tenant}/{key} ({})", decision.reason_str()),
            }
            if let (Some(v), Some(c)) = (&view, bucket_default) {
                println!(
                    "bucket {}: no key rule matches, so its default category {c} applies",
                    v.name
                );
            }
            println!("why: {detail}");
            for w in &warnings {
                println!("warning: {w}");
            }
            if let Some(a) = &assumption {
                println!("assumption: {a}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
