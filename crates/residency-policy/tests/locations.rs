//! Regions are jurisdictions of member countries; a location is inside one only
//! if its country is a member (issue 18, item 1).
//!
//! Seed: "Ticket Data — Available to be Hosted in the European Economic Area
//! (EEA) or the United States (US)". The EEA is the EU member states plus
//! Iceland, Liechtenstein and Norway: not the United Kingdom, not Switzerland.
//! The assertions below are known facts about the providers' regions, written
//! as literals, not the shipped table read back.

use residency_policy::{
    builtin_jurisdiction, provider_location, Decision, PlacementRequest, Policy, Ruleset,
};

const SHIPPED: &str = include_str!("../../../config/hosting-policy.toml");

fn eea_policy(locations: &str) -> String {
    format!(
        "version = \"t\"\ndefault_region = \"eu\"\n[regions.eu]\njurisdiction = \"EEA\"\nlocations = [{locations}]\n[categories.c]\nallowed = [\"eu\"]\n"
    )
}

/// London, Zurich and N. Virginia are outside the EEA; a policy that puts
/// them in an EEA region does not load (so neither `residency check` nor the
/// sidecar accepts it).
#[test]
fn london_zurich_and_us_east_1_are_not_in_the_eea() {
    for (location, country) in [
        ("eu-west-2", "GB"),    // AWS London
        ("eu-central-2", "CH"), // AWS Zurich
        ("us-east-1", "US"),    // AWS N. Virginia
        ("europe-west2", "GB"), // Google Cloud London
        ("europe-west6", "CH"), // Google Cloud Zurich
        ("uksouth", "GB"),      // Azure UK South
    ] {
        assert_eq!(
            provider_location(location).map(|(c, _)| c),
            Some(country),
            "{location}"
        );
        let err = Policy::from_toml(&eea_policy(&format!("{location:?}")), "p.toml")
            .expect_err(location)
            .to_string();
        assert!(
            err.contains(location) && err.contains(country) && err.contains("not a member"),
            "{location}: {err}"
        );
    }
    let eea = builtin_jurisdiction("EEA").unwrap();
    for outside in ["GB", "CH", "US"] {
        assert!(!eea.iter().any(|c| c == outside), "{outside}");
    }
}

/// Ireland, Frankfurt, Paris, Stockholm, Milan and Madrid are inside the EEA,
/// as are Iceland, Liechtenstein and Norway.
#[test]
fn ireland_frankfurt_paris_stockholm_milan_madrid_are_in_the_eea() {
    for (location, country) in [
        ("eu-west-1", "IE"),         // AWS Ireland
        ("eu-central-1", "DE"),      // AWS Frankfurt
        ("eu-west-3", "FR"),         // AWS Paris
        ("eu-north-1", "SE"),        // AWS Stockholm
        ("eu-south-1", "IT"),        // AWS Milan
        ("europe-southwest1", "ES"), // Google Cloud Madrid
        ("eu-south-2", "ES"),        // AWS Spain
        ("norwayeast", "NO"),        // Azure Norway East
        ("eu", "EU"),                // Cloudflare R2 EU jurisdiction
    ] {
        assert_eq!(
            provider_location(location).map(|(c, _)| c),
            Some(country),
            "{location}"
        );
        Policy::from_toml(&eea_policy(&format!("{location:?}")), "p.toml")
            .unwrap_or_else(|e| panic!("{location}: {e}"));
    }
    let eea = builtin_jurisdiction("EEA").unwrap();
    for inside in ["IE", "DE", "FR", "SE", "IT", "ES", "IS", "LI", "NO"] {
        assert!(eea.iter().any(|c| c == inside), "{inside}");
    }
    assert_eq!(eea.len(), 30, "EU-27 + IS, LI, NO");
}

/// The shipped policy's EEA region lists neither London nor Zurich, and its
/// declared EEA is the EU-27 plus IS, LI, NO.
#[test]
fn the_shipped_eu_region_is_inside_the_eea() {
    let p = Policy::from_toml(SHIPPED, "config/hosting-policy.toml").unwrap();
    let eu = p.region(p.region_by_id("eu").unwrap());
    assert!(!eu.contains_location("eu-west-2"));
    assert!(!eu.contains_location("eu-central-2"));
    assert_eq!(eu.members().len(), 30);
    for c in ["GB", "CH", "US"] {
        assert!(!eu.is_member(c), "{c}");
    }
    for l in eu.locations() {
        assert!(eu.is_member(eu.location_place(l).unwrap()), "{l}");
    }
    assert!(p
        .check_location(p.region_by_id("eu").unwrap(), "eu-west-2")
        .unwrap_err()
        .contains("GB, not a member of EEA"));
}

/// A location the provider table does not know needs its country in the
/// policy; a policy cannot move a provider's location to another country.
#[test]
fn unknown_locations_need_a_country_and_known_ones_cannot_be_moved() {
    let err = Policy::from_toml(&eea_policy("\"garage-eu\""), "p.toml")
        .unwrap_err()
        .to_string();
    assert!(err.contains("[locations]"), "{err}");
    let ok = format!(
        "{}[locations]\n\"garage-eu\" = \"DE\"\n",
        eea_policy("\"garage-eu\"")
    );
    Policy::from_toml(&ok, "p.toml").unwrap();
    let lie = format!(
        "{}[locations]\n\"eu-west-2\" = \"DE\"\n",
        eea_policy("\"eu-west-2\"")
    );
    let err = Policy::from_toml(&lie, "p.toml").unwrap_err().to_string();
    assert!(err.contains("cannot place it"), "{err}");
    // A jurisdiction with no known members cannot have locations.
    let err = Policy::from_toml(
        "version = \"t\"\ndefault_region = \"x\"\n[regions.x]\njurisdiction = \"Mars\"\nlocations = [\"eu-west-1\"]\n[categories.c]\nallowed = [\"x\"]\n",
        "p.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("[jurisdictions.Mars]"), "{err}");
}

/// Chat content in the EEA, backups following the tenant's locality, and the
/// key rules that name them (in the three-region policy and an older one).
const CHAT_AND_BACKUP_RULES: &str = r#"
[categories.chat_content]
allowed = ["eu"]
[categories.backups_and_logs]
follows = "locality"
[[key_rules]]
pattern = "chat/**"
category = "chat_content"
[[key_rules]]
pattern = "backups/**"
category = "backups_and_logs"
"#;

/// Regions `eu`, `us` and `uk` (country GB) with ticket data allowed in all
/// three.
fn three_regions() -> String {
    format!(
        r#"
version = "t"
default_region = "us"
[jurisdictions.UK]
countries = ["GB"]
[regions.eu]
jurisdiction = "EEA"
locations = ["eu-west-1"]
[regions.us]
jurisdiction = "US"
locations = ["us-east-1"]
[regions.uk]
jurisdiction = "UK"
locations = ["eu-west-2", "uksouth"]
[categories.ticket_data]
allowed = ["eu", "us", "uk"]
[[key_rules]]
pattern = "tickets/**"
category = "ticket_data"
{CHAT_AND_BACKUP_RULES}"#
    )
}

/// With a third region (`uk`, country GB): decisions, loading and the location
/// check work for more than two regions.
#[test]
fn a_third_region_uk_works_end_to_end_in_the_policy() {
    let tenants = r#"
[[tenants]]
id = "brit"
locality = "uk"
[[tenants]]
id = "brit-strict"
locality = "uk"
strict = true
"#;
    let three = three_regions();
    let r = Ruleset::from_toml(&three, "p", tenants, "t").unwrap();
    let p = r.policy();
    let region = |tenant, key| match r.decide(&PlacementRequest {
        tenant,
        key,
        category: None,
        content_type: None,
    }) {
        Decision::Allow(pl) => format!(
            "{}{}",
            p.region(pl.region).id(),
            if pl.out_of_locality { "!" } else { "" }
        ),
        Decision::Deny(d) => d.as_str().to_string(),
    };
    assert_eq!(region("brit", "tickets/1.json"), "uk");
    assert_eq!(region("brit", "chat/1.json"), "eu!");
    assert_eq!(region("brit", "backups/x.tar"), "uk");
    assert_eq!(region("brit-strict", "chat/1.json"), "out_of_locality");
    let uk = p.region_by_id("uk").unwrap();
    assert_eq!(p.check_location(uk, "eu-west-2"), Ok(()));
    assert_eq!(p.check_location(uk, "UKSOUTH"), Ok(()));
    let err = p.check_location(uk, "eu-west-1").unwrap_err();
    assert!(err.contains("IE, not a member of UK"), "{err}");
    let eu = p.region_by_id("eu").unwrap();
    let err = p.check_location(eu, "eu-west-2").unwrap_err();
    assert!(err.contains("GB, not a member of EEA"), "{err}");
    // The UK region cannot claim an EEA location either.
    let bad = three.replace("\"eu-west-2\", \"uksouth\"", "\"eu-west-2\", \"eu-west-1\"");
    let err = Policy::from_toml(&bad, "p").unwrap_err().to_string();
    assert!(err.contains("\"eu-west-1\" is in IE"), "{err}");
}

/// Policy files written before jurisdictions existed still load when their
/// jurisdiction is a built-in one (EEA, EU, US), and `category_backups` is
/// still read.
#[test]
fn older_policy_files_still_load() {
    let old = format!(
        r#"
version = "old"
default_region = "us"
category_backups = "backups/"
[regions.eu]
jurisdiction = "EEA"
locations = ["eu-west-1", "eu-central-1"]
[regions.us]
jurisdiction = "US"
locations = ["us-east-1"]
{CHAT_AND_BACKUP_RULES}"#
    );
    let p = Policy::from_toml(&old, "old.toml").unwrap();
    assert_eq!(p.backup_prefixes(), ["backups/"]);
    let c = p.classify_key("backups/chat/1.json").unwrap();
    assert_eq!(p.category(c.category).id(), "chat_content");
}

/// Item 7. "Call Recordings: includes live call recordings and voicemails".
/// A content type alone must not move a payload to a narrower region: an
/// `audio/*` rule naming US-only call recordings is refused unless it is
/// limited to a key space.
#[test]
fn a_content_type_rule_cannot_narrow_the_region_unless_scoped_to_keys() {
    let base = SHIPPED.to_string();
    let unscoped = format!(
        "{base}\n[[content_type_rules]]\npattern = \"audio/*\"\ncategory = \"call_recordings\"\n"
    );
    let err = Policy::from_toml(&unscoped, "p").unwrap_err().to_string();
    assert!(
        err.contains("narrower region") && err.contains("keys ="),
        "{err}"
    );
    let scoped = format!(
        "{base}\n[[content_type_rules]]\npattern = \"audio/*\"\ncategory = \"call_recordings\"\nkeys = \"talk/**\"\n"
    );
    let p = Policy::from_toml(&scoped, "p").unwrap();
    let c = p
        .classify("talk/inbox/1.bin", None, Some("audio/mpeg"))
        .unwrap();
    assert_eq!(p.category(c.category).id(), "call_recordings");
    assert!(p
        .classify("uploads/voice.bin", None, Some("audio/mpeg"))
        .is_err());
}
