//! Property tests of the product's promise over random policies, tenants and
//! requests (not only the shipped ones): no `Allow` names a region outside the
//! category's allowed set, a strict tenant is never placed outside its
//! locality, and decisions are deterministic.

use proptest::prelude::*;
use residency_policy::{Decision, DenyReason, PlacementRequest, Ruleset};

#[derive(Debug, Clone)]
enum Rule {
    Allowed(Vec<usize>),
    Follows(usize),
    Locality,
}

#[derive(Debug, Clone)]
struct World {
    regions: usize,
    default_region: usize,
    categories: Vec<(Rule, Option<usize>)>,
    tenants: Vec<(Option<usize>, bool, Vec<usize>)>,
    key_rules: Vec<(String, usize)>,
}

const FEATURES: usize = 3;

fn world() -> impl Strategy<Value = World> {
    (1usize..=5).prop_flat_map(|regions| {
        let category = move |i: usize| {
            let allowed =
                proptest::sample::subsequence((0..regions).collect::<Vec<_>>(), 1..=regions)
                    .prop_shuffle()
                    .prop_map(Rule::Allowed);
            let rule = if i == 0 {
                allowed.boxed()
            } else {
                prop_oneof![
                    3 => allowed,
                    1 => (0..i).prop_map(Rule::Follows),
                    1 => Just(Rule::Locality),
                ]
                .boxed()
            };
            (rule, proptest::option::weighted(0.3, 0..FEATURES))
        };
        let categories =
            (1usize..=8).prop_flat_map(move |n| (0..n).map(category).collect::<Vec<_>>());
        let tenant = (
            proptest::option::weighted(0.7, 0..regions),
            any::<bool>(),
            proptest::sample::subsequence((0..FEATURES).collect::<Vec<_>>(), 0..=FEATURES),
        )
            .prop_map(|(loc, strict, f)| (loc, strict && loc.is_some(), f));
        (
            0..regions,
            categories,
            proptest::collection::vec(tenant, 1..6),
        )
            .prop_flat_map(move |(default_region, categories, tenants)| {
                let n = categories.len();
                let key_rules = proptest::collection::vec(
                    (
                        proptest::sample::select(vec!["a/**", "a/b/**", "b/*", "*.wav", "**/c/**"]),
                        0..n,
                    )
                        .prop_map(|(p, c)| (p.to_string(), c)),
                    0..5,
                );
                (Just(categories), Just(tenants), key_rules).prop_map(
                    move |(categories, tenants, key_rules)| World {
                        regions,
                        default_region,
                        categories,
                        tenants,
                        key_rules,
                    },
                )
            })
    })
}

fn to_toml(w: &World) -> (String, String) {
    let mut p = format!(
        "version = \"prop\"\ndefault_region = \"r{}\"\nfeatures = [\"f0\", \"f1\", \"f2\"]\n",
        w.default_region
    );
    for r in 0..w.regions {
        p += &format!("[regions.r{r}]\njurisdiction = \"J{r}\"\n");
    }
    for (i, (rule, feature)) in w.categories.iter().enumerate() {
        p += &format!("[categories.c{i}]\n");
        match rule {
            Rule::Allowed(list) => {
                let l: Vec<String> = list.iter().map(|r| format!("\"r{r}\"")).collect();
                p += &format!("allowed = [{}]\n", l.join(", "));
            }
            Rule::Follows(t) => p += &format!("follows = \"c{t}\"\n"),
            Rule::Locality => p += "follows = \"locality\"\n",
        }
        if let Some(f) = feature {
            p += &format!("feature = \"f{f}\"\n");
        }
    }
    for (pat, c) in &w.key_rules {
        p += &format!("[[key_rules]]\npattern = \"{pat}\"\ncategory = \"c{c}\"\n");
    }
    let mut t = String::new();
    for (i, (loc, strict, features)) in w.tenants.iter().enumerate() {
        t += &format!("[[tenants]]\nid = \"tenant{i}\"\nstrict = {strict}\n");
        if let Some(l) = loc {
            t += &format!("locality = \"r{l}\"\n");
        }
        let f: Vec<String> = features.iter().map(|f| format!("\"f{f}\"")).collect();
        t += &format!("features = [{}]\n", f.join(", "));
    }
    (p, t)
}

/// The regions a category may be hosted in, computed from the generated world
/// (not by the code under test): `None` means "follows the locality".
fn allowed(w: &World, c: usize) -> Option<Vec<usize>> {
    match &w.categories[c].0 {
        Rule::Allowed(l) => Some(l.clone()),
        Rule::Follows(t) => allowed(w, *t),
        Rule::Locality => None,
    }
}

fn gates(w: &World, c: usize) -> Vec<usize> {
    let mut g: Vec<usize> = w.categories[c].1.into_iter().collect();
    if let Rule::Follows(t) = &w.categories[c].0 {
        g.extend(gates(w, *t));
    }
    g
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn no_allow_outside_the_allowed_set_and_strict_stays_home(
        w in world(),
        keys in proptest::collection::vec(proptest::sample::select(vec!["a/x", "a/b/c.wav", "b/y", "z/c/d", "q", "x.wav"]), 1..4),
        cat_pick in proptest::collection::vec(proptest::option::of(0usize..8), 1..4),
    ) {
        let (p, t) = to_toml(&w);
        let rules = Ruleset::from_toml(&p, "p", &t, "t").expect("generated files are valid");
        let rules_again = Ruleset::from_toml(&p, "p", &t, "t").unwrap();
        for (ti, (loc, strict, features)) in w.tenants.iter().enumerate() {
            let tenant = format!("tenant{ti}");
            for key in keys.iter().copied() {
                for pick in &cat_pick {
                    let cat_name = pick.map(|c| format!("c{}", c % w.categories.len()));
                    let req = PlacementRequest { tenant: &tenant, key, category: cat_name.as_deref(), content_type: None };
                    let d = rules.decide(&req);
                    // Deterministic: same answer twice, and from an identical ruleset.
                    prop_assert_eq!(d, rules.decide(&req));
                    prop_assert_eq!(d, rules_again.decide(&req));
                    match d {
                        Decision::Allow(pl) => {
                            let c = pl.category.index();
                            let region: usize = rules.policy().region(pl.region).id()[1..].parse().unwrap();
                            match allowed(&w, c) {
                                Some(set) => prop_assert!(set.contains(&region), "region r{} outside {:?}", region, set),
                                None => prop_assert_eq!(region, loc.unwrap_or(w.default_region)),
                            }
                            if *strict {
                                prop_assert_eq!(Some(region), *loc, "strict tenant placed outside its locality");
                            }
                            match loc {
                                None => prop_assert!(!pl.out_of_locality),
                                Some(l) => prop_assert_eq!(pl.out_of_locality, region != *l),
                            }
                            for g in gates(&w, c) {
                                prop_assert!(features.contains(&g), "gated category allowed without feature f{}", g);
                            }
                        }
                        Decision::Deny(DenyReason::OutOfLocality { category }) => {
                            prop_assert!(*strict);
                            let set = allowed(&w, category.index()).unwrap();
                            prop_assert!(!set.contains(&loc.unwrap()));
                        }
                        Decision::Deny(DenyReason::FeatureDisabled { category, .. }) => {
                            prop_assert!(gates(&w, category.index()).iter().any(|g| !features.contains(g)));
                        }
                        Decision::Deny(_) => {}
                    }
                }
            }
        }
    }
}
