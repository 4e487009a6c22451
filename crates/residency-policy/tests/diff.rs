//! `policy diff` and `check`'s library part (issue 19, item 3): the shipped
//! policy against a copy with chat content moved to the US, the tenants that
//! move, and the exhaustive proof of both.

use residency_policy::{diff, prove, Decision, Outcome, Policy, PolicyDiff, TenantRecord, Tenants};

fn read(path: &str) -> String {
    let full = format!("{}/../../{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
}

fn shipped_text() -> String {
    read("config/hosting-policy.toml")
}

fn shipped() -> Policy {
    Policy::from_toml(&shipped_text(), "hosting-policy.toml").unwrap()
}

/// The shipped policy with `chat_content` hosted in the US only.
fn chat_in_us() -> Policy {
    let text = shipped_text();
    let at = text.find("[categories.chat_content]").unwrap();
    let rest = &text[at..];
    let allowed = rest.find("allowed = [\"eu\"]").unwrap();
    // The very next `allowed` line is chat's own.
    assert!(!rest[..allowed].contains("allowed"));
    let moved = format!(
        "{}{}",
        &text[..at],
        rest.replacen("allowed = [\"eu\"]", "allowed = [\"us\"]", 1)
    );
    assert_ne!(moved, text);
    Policy::from_toml(&moved, "chat-in-us.toml").unwrap()
}

fn example_tenants(policy: &Policy) -> (Tenants, Vec<TenantRecord>) {
    let tenants = Tenants::from_toml(
        &read("config/tenants.example.toml"),
        "tenants.example.toml",
        policy,
    )
    .unwrap();
    let records = tenants
        .iter()
        .map(|(_, t)| TenantRecord::of(t, policy))
        .collect();
    (tenants, records)
}

#[test]
fn moving_chat_to_the_us_changes_exactly_chat() {
    let (old, new) = (shipped(), chat_in_us());
    let d = diff(&old, &new);
    assert!(d.regions_added.is_empty() && d.regions_removed.is_empty());
    assert!(d.categories_added.is_empty() && d.categories_removed.is_empty());
    assert!(d.features_added.is_empty() && d.features_removed.is_empty());
    assert_eq!(d.categories.len(), 1, "{d}");
    let chat = &d.categories[0];
    assert_eq!(chat.category, "chat_content");
    assert!(chat.features.is_empty());
    let rows: Vec<(String, String, String)> = chat
        .changes
        .iter()
        .map(|c| (c.kind.to_string(), c.old.to_string(), c.new.to_string()))
        .collect();
    let expected = [
        // "European Economic Area only" went to the first allowed region.
        ("no locality", "eu", "us"),
        ("locality=eu", "eu", "us (out of locality)"),
        ("locality=eu strict", "eu", "denied (out_of_locality)"),
        ("locality=us", "eu (out of locality)", "us"),
        ("locality=us strict", "denied (out_of_locality)", "us"),
    ];
    let expected: Vec<(String, String, String)> = expected
        .iter()
        .map(|(k, o, n)| (k.to_string(), o.to_string(), n.to_string()))
        .collect();
    assert_eq!(rows, expected);
    for c in &chat.changes {
        assert_eq!(c.category, "chat_content");
        assert!(c.kind.migrating_from.is_none());
    }

    let text = d.to_string();
    assert!(
        text.starts_with("policy 2017-11-01 → 2017-11-01\n"),
        "{text}"
    );
    let header = text.lines().nth(1).unwrap();
    assert!(header.starts_with("category      tenant kind"), "{text}");
    assert!(header.ends_with("old → new"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("chat_content  locality=eu strict ")
                && l.ends_with("  eu → denied (out_of_locality)")),
        "{text}"
    );
    assert_eq!(text.lines().count(), 2 + 5, "{text}");

    let json = serde_json::to_value(&d).unwrap();
    let first = &json["categories"][0]["changes"][0];
    assert_eq!(first["category"], "chat_content");
    assert_eq!(first["kind"]["locality"], serde_json::Value::Null);
    assert_eq!(first["old"]["outcome"], "placed");
    assert_eq!(first["old"]["region"], "eu");
    assert_eq!(first["new"]["region"], "us");
    let strict = &json["categories"][0]["changes"][2];
    assert_eq!(strict["new"]["outcome"], "denied");
    assert_eq!(strict["new"]["reason"], "out_of_locality");
}

/// Where a chat write of each example tenant goes under `policy`.
fn chat_placements(policy: &Policy) -> Vec<(String, String)> {
    let (tenants, _) = example_tenants(policy);
    tenants
        .iter()
        .map(|(_, t)| {
            let d = policy.decide(t, "chat/session-1.json", None, None);
            let place = match d {
                Decision::Allow(p) => policy.region(p.region).id().to_owned(),
                Decision::Deny(r) => format!("denied ({})", r.as_str()),
            };
            (t.id().to_owned(), place)
        })
        .collect()
}

#[test]
fn affected_names_the_tenants_whose_chat_moves() {
    let (old, new) = (shipped(), chat_in_us());
    let d = diff(&old, &new);
    let (_, records) = example_tenants(&old);

    let moved: Vec<String> = chat_placements(&old)
        .into_iter()
        .zip(chat_placements(&new))
        .filter(|(o, n)| o != n)
        .map(|(o, _)| o.0)
        .collect();
    let affected = d.affected(&records);
    let ids: Vec<String> = affected.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(ids, moved);
    // Every example tenant writes chat, and every one of them moves.
    assert_eq!(ids, ["acme", "globex", "initech", "eurobank"]);
    for (id, changes) in &affected {
        assert_eq!(changes.len(), 1, "{id}");
        assert_eq!(changes[0].category, "chat_content");
    }
    let eurobank = &affected[3].1[0];
    assert!(eurobank.kind.strict);
    assert!(matches!(&eurobank.new, Outcome::Denied { reason, .. } if reason == "out_of_locality"));

    // A tenant that only the region and strictness of a kind describes: a
    // strict US tenant with features gets chat back in the US.
    let mut strict_us = TenantRecord::new("strict-us");
    strict_us.locality = Some("us".into());
    strict_us.strict = true;
    strict_us.features = vec!["insights".into()];
    let hit = d.affected([&strict_us]);
    assert_eq!(hit.len(), 1);
    assert_eq!(hit[0].1[0].new.to_string(), "us");
}

#[test]
fn a_policy_against_itself_is_empty() {
    let p = shipped();
    let d = diff(&p, &p);
    assert!(d.is_empty(), "{d}");
    assert_eq!(d.changes().count(), 0);
    assert!(d.to_string().contains("no placement changes"));
    let (_, records) = example_tenants(&p);
    assert!(d.affected(&records).is_empty());
    let moved = chat_in_us();
    assert!(diff(&moved, &moved).is_empty());
}

#[test]
fn a_feature_gate_and_a_new_region_are_reported_by_kind() {
    let old = shipped();
    // Guide media gated by a new feature, in a policy with a new region.
    let text = shipped_text()
        .replace(
            "features = [\"insights\", \"nps\", \"spam_filter\"]",
            "features = [\"insights\", \"nps\", \"spam_filter\", \"guide_media\"]",
        )
        .replace(
            "[categories.guide_media]\n",
            "[categories.guide_media]\nfeature = \"guide_media\"\n",
        )
        .replace(
            "[regions.us]\n",
            "[regions.ca]\njurisdiction = \"CA\"\n\n[regions.us]\n",
        );
    // The new region may hold ticket data (the `text/vtt` rule needs
    // transcriptions, which follow ticket data, allowed everywhere).
    let text = text.replacen(
        "allowed = [\"eu\", \"us\"]",
        "allowed = [\"eu\", \"us\", \"ca\"]",
        1,
    );
    let new = Policy::from_toml(&text, "gated.toml").unwrap();
    let d = diff(&old, &new);
    assert_eq!(d.features_added, ["guide_media"]);
    assert_eq!(d.regions_added, ["ca"]);
    assert_eq!(d.categories.len(), 1, "{d}");
    let g = &d.categories[0];
    assert_eq!(g.category, "guide_media");
    assert_eq!(g.features, ["guide_media"]);
    // Only the kinds without the new feature change (they are now denied),
    // and none whose locality is the new region (no such tenant yet).
    assert!(g.changes.iter().all(|c| c.kind.features.is_empty()
        && c.kind.locality.as_deref() != Some("ca")
        && matches!(&c.new, Outcome::Denied { reason, .. } if reason == "feature_disabled")));
    // no locality, eu, eu strict (was denied: out_of_locality, now
    // feature_disabled), us, us strict.
    assert_eq!(g.changes.len(), 5, "{d}");
    assert!(d.to_string().contains("features=[]"), "{d}");
    assert!(prove(&new).is_clean());

    // Removing a region: its tenants become invalid.
    let d = diff(&new, &old);
    assert_eq!(d.regions_removed, ["ca"]);
    assert!(d
        .changes()
        .filter(|c| c.kind.locality.as_deref() == Some("ca"))
        .all(|c| matches!(c.new, Outcome::Invalid { .. })));
    assert!(d
        .changes()
        .any(|c| c.kind.locality.as_deref() == Some("ca")));
}

#[test]
fn the_shipped_policy_proves_clean() {
    let p = shipped();
    let proof = prove(&p);
    assert!(proof.is_clean(), "{proof}");
    assert!(proof.cases > 0);
    // 3 regions' worth of kinds: (1·3 + 2·2·2) localities × migrations × 8
    // feature sets; every kind × category at least once.
    assert_eq!(proof.kinds, (3 + 2 * 2 * 2) * 8);
    assert!(proof.cases > proof.kinds * p.categories().len(), "{proof}");
    assert!(proof.to_string().contains("proved clean"), "{proof}");
}

#[test]
fn the_moved_chat_policy_proves_clean() {
    let proof = prove(&chat_in_us());
    assert!(proof.is_clean(), "{proof}");
    assert!(proof.cases > 0);
}

#[test]
fn a_diff_serializes_for_json() {
    let d: PolicyDiff = diff(&shipped(), &shipped());
    let json = serde_json::to_value(&d).unwrap();
    assert_eq!(json["categories"], serde_json::json!([]));
    assert_eq!(json["old_version"], "2017-11-01");
}
