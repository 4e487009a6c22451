//! Classification and decision on arbitrary tenants, keys, categories and
//! content types, against the shipped policy and tenants; checks the
//! product's invariant on every allow: the region is one the category may be
//! hosted in, and a strict tenant's data stays in its locality.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use residency_policy::{Decision, PlacementRequest, Ruleset};

fn rules() -> &'static Ruleset {
    static R: OnceLock<Ruleset> = OnceLock::new();
    R.get_or_init(|| {
        Ruleset::from_toml(
            include_str!("../../config/hosting-policy.toml"),
            "hosting-policy.toml",
            include_str!("../../config/tenants.example.toml"),
            "tenants.example.toml",
        )
        .expect("shipped config")
    })
}

const TENANTS: [&str; 5] = ["acme", "globex", "initech", "eurobank", "nobody"];

fuzz_target!(|data: &[u8]| {
    // tenant selector byte, then key \xff category \xff content type.
    let Some((&t, rest)) = data.split_first() else {
        return;
    };
    let mut parts = rest.split(|b| *b == 0xff);
    let key = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let category = parts
        .next()
        .map(|c| String::from_utf8_lossy(c).into_owned());
    let content_type = parts
        .next()
        .map(|c| String::from_utf8_lossy(c).into_owned());
    let rules = rules();
    let tenant = TENANTS[t as usize % TENANTS.len()];
    let d = rules.decide(&PlacementRequest {
        tenant,
        key: &key,
        category: category.as_deref(),
        content_type: content_type.as_deref(),
    });
    if let Decision::Allow(a) = &d {
        let policy = rules.policy();
        let tn = rules.tenants().tenant(a.tenant);
        if tn.is_strict() {
            assert_eq!(
                Some(a.region),
                tn.locality(),
                "strict tenant left its locality: {d:?}"
            );
        }
        if let Some(allowed) = policy.allowed_regions(a.category) {
            assert!(
                allowed.contains(a.region),
                "placed outside the category's regions: {d:?}"
            );
        }
    }
});
