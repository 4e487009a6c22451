//! `residency policy show`: the hosting table, rendered like the seed's.

use std::path::Path;
use std::process::ExitCode;

use residency::policy::{HostingRule, Policy};
use serde_json::json;

use super::{load_policy, LoadError};
use crate::ShowFormat;

struct Row {
    category: String,
    allowed: String,
    follows: String,
    feature: String,
    description: String,
}

fn rows(p: &Policy) -> Vec<Row> {
    p.categories()
        .map(|(id, c)| {
            let allowed = match p.allowed_regions(id) {
                Some(set) => set
                    .iter()
                    .map(|r| format!("{} ({})", p.region(r).id(), p.region(r).jurisdiction()))
                    .collect::<Vec<_>>()
                    .join(", "),
                None => "tenant's selected region".to_string(),
            };
            let follows = match c.rule() {
                HostingRule::Allowed(_) => "-".to_string(),
                HostingRule::Follows(t) => p.category(*t).id().to_string(),
                HostingRule::FollowsLocality => "locality".to_string(),
            };
            let feature = c
                .feature()
                .map_or("-".to_string(), |f| p.feature_name(f).to_string());
            Row {
                category: c.id().to_string(),
                allowed,
                follows,
                feature,
                description: c.description().unwrap_or("").to_string(),
            }
        })
        .collect()
}

pub(crate) fn run(path: &Path, format: ShowFormat) -> Result<ExitCode, LoadError> {
    let p = load_policy(path)?;
    let rows = rows(&p);
    match format {
        ShowFormat::Json => {
            let v = json!({
                "version": p.version(),
                "default_region": p.region(p.default_region()).id(),
                "regions": p.regions().map(|(_, r)| json!({
                    "id": r.id(), "jurisdiction": r.jurisdiction(), "locations": r.locations(),
                })).collect::<Vec<_>>(),
                "categories": rows.iter().map(|r| json!({
                    "category": r.category,
                    "allowed": r.allowed,
                    "follows": r.follows,
                    "feature": r.feature,
                    "description": r.description,
                })).collect::<Vec<_>>(),
            });
            println!("{}", serde_json::to_string_pretty(&v).expect("json"));
        }
        ShowFormat::Markdown => {
            println!("| category | may be hosted in | follows | feature gate | description |");
            println!("|---|---|---|---|---|");
            for r in &rows {
                println!(
                    "| `{}` | {} | {} | {} | {} |",
                    r.category, r.allowed, r.follows, r.feature, r.description
                );
            }
        }
        ShowFormat::Text => {
            println!(
                "hosting policy {} (default region {})",
                p.version(),
                p.region(p.default_region()).id()
            );
            let w = |f: fn(&Row) -> &str, h: &str| {
                rows.iter()
                    .map(|r| f(r).len())
                    .max()
                    .unwrap_or(0)
                    .max(h.len())
            };
            let (w1, w2, w3) = (
                w(|r| &r.category, "CATEGORY"),
                w(|r| &r.allowed, "MAY BE HOSTED IN"),
                w(|r| &r.follows, "FOLLOWS"),
            );
            println!(
                "{:w1$}  {:w2$}  {:w3$}  FEATURE",
                "CATEGORY", "MAY BE HOSTED IN", "FOLLOWS"
            );
            for r in &rows {
                println!(
                    "{:w1$}  {:w2$}  {:w3$}  {}",
                    r.category, r.allowed, r.follows, r.feature
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
