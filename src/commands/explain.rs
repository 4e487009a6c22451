//! `residency explain`: where one object goes, and why.

use std::process::ExitCode;

use residency::policy::{Decision, DenyReason, Note, PlacementRequest};
use serde_json::json;

use super::{load_ruleset, LoadError, EXIT_CONFIG};
use crate::{ExplainFormat, PolicyFiles};

pub(crate) fn run(
    files: &PolicyFiles,
    tenant: &str,
    key: &str,
    category: Option<&str>,
    content_type: Option<&str>,
    format: ExplainFormat,
) -> Result<ExitCode, LoadError> {
    let rules = load_ruleset(files)?;
    let policy = rules.policy();
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
    match format {
        ExplainFormat::Json => {
            let v = json!({
                "decision": decision.as_str(),
                "tenant": tenant,
                "key": key,
                "region": region,
                "bucket": bucket,
                "object": bucket.map(|_| format!("{tenant}/{key}")),
                "category": category_id,
                "classified_by": classified_by,
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
                    "allow: {tenant}/{key} -> region {r} ({}){}",
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
