//! Golden table: the decisions the seed's hosting table implies, written by
//! hand as literals (not computed by the code under test), for every category
//! and every kind of tenant, with and without the optional features.

use residency_policy::{Decision, Note, PlacementRequest, Ruleset};

const POLICY: &str = include_str!("../../../config/hosting-policy.toml");

const TENANTS: &str = r#"
[[tenants]]
id = "t-eu"
locality = "eu"
[[tenants]]
id = "t-eu-f"
locality = "eu"
features = ["insights", "nps", "spam_filter"]
[[tenants]]
id = "t-us"
locality = "us"
[[tenants]]
id = "t-us-f"
locality = "us"
features = ["insights", "nps", "spam_filter"]
[[tenants]]
id = "t-none"
[[tenants]]
id = "t-none-f"
features = ["insights", "nps", "spam_filter"]
[[tenants]]
id = "t-seu"
locality = "eu"
strict = true
[[tenants]]
id = "t-seu-f"
locality = "eu"
strict = true
features = ["insights", "nps", "spam_filter"]
"#;

const COLUMNS: [&str; 8] = [
    "t-eu", "t-eu-f", "t-us", "t-us-f", "t-none", "t-none-f", "t-seu", "t-seu-f",
];

/// `eu`/`us`: allowed there, in locality; `eu!`/`us!`: allowed there, out of
/// locality; `F`: denied, feature disabled; `OOL`: denied, strict tenant and
/// the category cannot be hosted in its locality.
#[rustfmt::skip]
const TABLE: &[(&str, &str, [&str; 8])] = &[
    // key                            category                   eu     eu-f   us     us-f   none   none-f seu    seu-f
    ("tickets/1/comment.json",        "ticket_data",            ["eu",  "eu",  "us",  "us",  "us",  "us",  "eu",  "eu"]),
    ("users/7.json",                  "user_data",              ["eu",  "eu",  "us",  "us",  "us",  "us",  "eu",  "eu"]),
    ("attachments/1/invoice.pdf",     "attachments",            ["eu",  "eu",  "us",  "us",  "us",  "us",  "eu",  "eu"]),
    ("insights/2026/report.csv",      "insights",               ["F",   "us!", "F",   "us",  "F",   "us",  "F",   "OOL"]),
    ("nps/list-1.csv",                "nps_lists",              ["F",   "us!", "F",   "us",  "F",   "us",  "F",   "OOL"]),
    ("screencasts/1.webm",            "archived_screencasts",   ["us!", "us!", "us",  "us",  "us",  "us",  "OOL", "OOL"]),
    ("custom-resources/r.json",       "custom_resources",       ["us!", "us!", "us",  "us",  "us",  "us",  "OOL", "OOL"]),
    ("guide/articles/1.html",         "guide_content",          ["eu",  "eu",  "us",  "us",  "us",  "us",  "eu",  "eu"]),
    ("guide/images/logo.png",         "guide_media",            ["us!", "us!", "us",  "us",  "us",  "us",  "OOL", "OOL"]),
    ("guide/attachments/manual.pdf",  "guide_media",            ["us!", "us!", "us",  "us",  "us",  "us",  "OOL", "OOL"]),
    ("spam/model.bin",                "spam_filter",            ["F",   "us!", "F",   "us",  "F",   "us",  "F",   "OOL"]),
    ("chat/1.json",                   "chat_content",           ["eu",  "eu",  "eu!", "eu!", "eu",  "eu",  "eu",  "eu"]),
    ("talk/recordings/1.wav",         "call_recordings",        ["us!", "us!", "us",  "us",  "us",  "us",  "OOL", "OOL"]),
    ("talk/voicemails/2.wav",         "call_recordings",        ["us!", "us!", "us",  "us",  "us",  "us",  "OOL", "OOL"]),
    ("talk/transcriptions/1.txt",     "transcriptions",         ["eu",  "eu",  "us",  "us",  "us",  "us",  "eu",  "eu"]),
    ("sms/1.json",                    "sms_messages",           ["eu",  "eu",  "us",  "us",  "us",  "us",  "eu",  "eu"]),
    ("explore/app/dashboard.json",    "explore_app_data",       ["eu",  "eu",  "us",  "us",  "us",  "us",  "eu",  "eu"]),
    ("explore/connectors/chat.json",  "explore_connector_data", ["eu",  "eu",  "us",  "us",  "us",  "us",  "eu",  "eu"]),
    ("messages/thread-1.json",        "message_conversations",  ["us!", "us!", "us",  "us",  "us",  "us",  "OOL", "OOL"]),
    ("backups/2026-11-24.tar",        "backups_and_logs",       ["eu",  "eu",  "us",  "us",  "us",  "us",  "eu",  "eu"]),
    ("logs/app.log",                  "backups_and_logs",       ["eu",  "eu",  "us",  "us",  "us",  "us",  "eu",  "eu"]),
    // A backup of one category's data takes that category's placement.
    ("backups/chat_content/1.tar",    "chat_content",           ["eu",  "eu",  "eu!", "eu!", "eu",  "eu",  "eu",  "eu"]),
    ("backups/call_recordings/1.tar", "call_recordings",        ["us!", "us!", "us",  "us",  "us",  "us",  "OOL", "OOL"]),
    ("backups/insights/1.tar",        "insights",               ["F",   "us!", "F",   "us",  "F",   "us",  "F",   "OOL"]),
    // Item 2. "Hosting" includes storing "for archival, backup and log
    // purposes"; "Backups and audit logs ... are also Hosted in the selected
    // region": a mirrored backup or log key (`backups/<original key>`,
    // `logs/<original key>`) takes the placement of what it holds.
    ("backups/chat/1.json",           "chat_content",           ["eu",  "eu",  "eu!", "eu!", "eu",  "eu",  "eu",  "eu"]),
    ("logs/chat/1.json",              "chat_content",           ["eu",  "eu",  "eu!", "eu!", "eu",  "eu",  "eu",  "eu"]),
    ("backups/tickets/1/comment.json","ticket_data",            ["eu",  "eu",  "us",  "us",  "us",  "us",  "eu",  "eu"]),
    ("logs/talk/recordings/1.wav",    "call_recordings",        ["us!", "us!", "us",  "us",  "us",  "us",  "OOL", "OOL"]),
    ("backups/insights/2026/r.csv",   "insights",               ["F",   "us!", "F",   "us",  "F",   "us",  "F",   "OOL"]),
    ("logs/sms/1.json",               "sms_messages",           ["eu",  "eu",  "us",  "us",  "us",  "us",  "eu",  "eu"]),
    // Only an unclassifiable rest is plain backups_and_logs.
    ("logs/2026/11/app.log",          "backups_and_logs",       ["eu",  "eu",  "us",  "us",  "us",  "us",  "eu",  "eu"]),
];

/// Items 3, 4 and 8: the notes each decision carries, for every row of
/// [`TABLE`] and every column except the tenants without the add-on (whose
/// every decision carries exactly the default-region assumption, item 8:
/// the seed only says where data is hosted "when the Add-On is purchased and
/// Data Locality is enabled"). A (key, tenant) pair not listed has no note.
///
/// `twilio`: "Available to be Hosted by Zendesk's third party service
/// provider, Twilio, in the US only" — a copy outside an EEA tenant's
/// locality. `insights`: "Default ticket fields exported to Insights
/// (including End-User organization) cannot be disabled" — an EEA tenant with
/// Insights enabled has ticket fields copied to the US.
#[rustfmt::skip]
const NOTES: &[(&str, &[&str], &str)] = &[
    ("talk/recordings/1.wav",          &["t-eu", "t-eu-f", "t-seu", "t-seu-f"], "twilio"),
    ("talk/voicemails/2.wav",          &["t-eu", "t-eu-f", "t-seu", "t-seu-f"], "twilio"),
    ("talk/transcriptions/1.txt",      &["t-eu", "t-eu-f", "t-seu", "t-seu-f"], "twilio"),
    ("sms/1.json",                     &["t-eu", "t-eu-f", "t-seu", "t-seu-f"], "twilio"),
    ("backups/call_recordings/1.tar",  &["t-eu", "t-eu-f", "t-seu", "t-seu-f"], "twilio"),
    ("logs/talk/recordings/1.wav",     &["t-eu", "t-eu-f", "t-seu", "t-seu-f"], "twilio"),
    ("logs/sms/1.json",                &["t-eu", "t-eu-f", "t-seu", "t-seu-f"], "twilio"),
    ("tickets/1/comment.json",         &["t-eu-f", "t-seu-f"],                  "insights"),
    ("backups/tickets/1/comment.json", &["t-eu-f", "t-seu-f"],                  "insights"),
];

fn rules() -> Ruleset {
    Ruleset::from_toml(
        POLICY,
        "config/hosting-policy.toml",
        TENANTS,
        "golden-tenants",
    )
    .unwrap()
}

fn outcome(
    rules: &Ruleset,
    tenant: &str,
    key: &str,
    category: Option<&str>,
    ct: Option<&str>,
) -> (String, Option<String>) {
    let d = rules.decide(&PlacementRequest {
        tenant,
        key,
        category,
        content_type: ct,
    });
    let p = rules.policy();
    match d {
        Decision::Allow(pl) => {
            let region = p.region(pl.region).id();
            let mark = if pl.out_of_locality { "!" } else { "" };
            (
                format!("{region}{mark}"),
                Some(p.category(pl.category).id().to_string()),
            )
        }
        Decision::Deny(r) => (
            match r.as_str() {
                "feature_disabled" => "F".into(),
                "out_of_locality" => "OOL".into(),
                other => format!("deny:{other}"),
            },
            None,
        ),
    }
}

#[test]
fn every_category_for_every_kind_of_tenant() {
    let rules = rules();
    // The table covers every category the shipped policy declares.
    for (_, c) in rules.policy().categories() {
        assert!(
            TABLE.iter().any(|(_, cat, _)| *cat == c.id()),
            "category {} missing from the golden table",
            c.id()
        );
    }
    let mut failures = Vec::new();
    for (key, category, expected) in TABLE {
        for (tenant, want) in COLUMNS.iter().zip(expected) {
            let (got, cat) = outcome(&rules, tenant, key, None, None);
            if got != *want {
                failures.push(format!("{tenant:7} {key:32} want {want:4} got {got}"));
            }
            if let Some(cat) = cat {
                assert_eq!(cat, *category, "classification of {key}");
            }
        }
    }
    assert!(
        failures.is_empty(),
        "golden mismatches:\n{}",
        failures.join("\n")
    );
}

fn note_labels(rules: &Ruleset, tenant: &str, key: &str) -> Vec<String> {
    let d = rules.decide(&PlacementRequest {
        tenant,
        key,
        category: None,
        content_type: None,
    });
    let p = rules.policy();
    rules
        .decision_notes(tenant, &d)
        .iter()
        .map(|n| match n {
            Note::DefaultRegionAssumption { region } => {
                format!("assumption:{}", p.region(*region).id())
            }
            Note::SubProcessorCopy { sub_processor, .. } => {
                sub_processor.name().to_ascii_lowercase()
            }
            Note::FeatureExport { export, .. } => p.feature_name(export.feature()).to_string(),
        })
        .collect()
}

#[test]
fn every_decision_carries_its_copies_and_assumptions() {
    let rules = rules();
    let mut failures = Vec::new();
    for (key, _, _) in TABLE {
        for tenant in COLUMNS {
            let want: Vec<String> = if tenant.starts_with("t-none") {
                vec!["assumption:us".to_string()]
            } else {
                NOTES
                    .iter()
                    .filter(|(k, ts, _)| k == key && ts.contains(&tenant))
                    .map(|(_, _, n)| n.to_string())
                    .collect()
            };
            let got = note_labels(&rules, tenant, key);
            if got != want {
                failures.push(format!("{tenant:7} {key:32} want {want:?} got {got:?}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "note mismatches:\n{}",
        failures.join("\n")
    );
    for (key, _, _) in NOTES {
        assert!(TABLE.iter().any(|(k, _, _)| k == key), "{key} not in TABLE");
    }
}

/// Item 3: the storage invariant stays: a strict EEA tenant's transcription
/// is stored in the EEA (the copy "stored in tickets"), and the decision
/// carries Twilio's US copy as a warning instead of certifying EEA-only.
#[test]
fn a_strict_eea_tenants_transcription_is_stored_in_the_eea_with_twilios_copy_as_a_warning() {
    let r = rules();
    assert_eq!(
        outcome(&r, "t-seu", "talk/transcriptions/1.txt", None, None).0,
        "eu"
    );
    let d = r.decide(&PlacementRequest {
        tenant: "t-seu",
        key: "talk/transcriptions/1.txt",
        category: None,
        content_type: None,
    });
    let notes = r.decision_notes("t-seu", &d);
    assert_eq!(notes.len(), 1);
    assert!(notes[0].is_warning());
    let text = notes[0].display(r.policy()).to_string();
    assert!(text.contains("Twilio") && text.contains("US"), "{text}");
}

#[test]
fn explicit_category_without_key_rule() {
    let r = rules();
    assert_eq!(
        outcome(&r, "t-us", "misc/1", Some("chat_content"), None).0,
        "eu!"
    );
    assert_eq!(
        outcome(&r, "t-seu", "misc/1", Some("message_conversations"), None).0,
        "OOL"
    );
    assert_eq!(
        outcome(&r, "t-eu", "misc/1", Some("user_data"), None).0,
        "eu"
    );
}

#[test]
fn explicit_category_matching_the_key_rule_is_fine() {
    let r = rules();
    assert_eq!(
        outcome(&r, "t-us", "chat/1.json", Some("chat_content"), None).0,
        "eu!"
    );
}

#[test]
fn a_label_cannot_move_eea_only_chat_to_the_us() {
    let r = rules();
    assert_eq!(
        outcome(&r, "t-us", "chat/1.json", Some("ticket_data"), None).0,
        "deny:category_conflict"
    );
    assert_eq!(
        outcome(&r, "t-none", "chat/1.json", Some("call_recordings"), None).0,
        "deny:category_conflict"
    );
}

/// Item 7. "Call Recordings: includes live call recordings and voicemails":
/// an audio payload whose key no rule places is not a call recording, and a
/// content type alone does not move it to the US.
#[test]
fn audio_without_a_talk_key_is_not_a_us_only_call_recording() {
    let r = rules();
    assert_eq!(
        outcome(&r, "t-eu", "uploads/voice.bin", None, Some("audio/mpeg")).0,
        "deny:unclassified"
    );
    assert_eq!(
        outcome(
            &r,
            "t-seu",
            "uploads/voice.bin",
            None,
            Some("Audio/OGG; codecs=opus")
        )
        .0,
        "deny:unclassified"
    );
    // Audio attached to a ticket stays an attachment in the tenant's region.
    assert_eq!(
        outcome(
            &r,
            "t-eu",
            "attachments/1/voice.mp3",
            None,
            Some("audio/mpeg")
        ),
        ("eu".into(), Some("attachments".into()))
    );
    // The Talk key space still places recordings.
    assert_eq!(
        outcome(
            &r,
            "t-eu",
            "talk/recordings/1.mp3",
            None,
            Some("audio/mpeg")
        ),
        ("us!".into(), Some("call_recordings".into()))
    );
}

#[test]
fn content_type_classifies_when_no_key_rule_matches() {
    let r = rules();
    assert_eq!(
        outcome(&r, "t-eu", "uploads/call.vtt", None, Some("text/vtt")),
        ("eu".into(), Some("transcriptions".into()))
    );
    // A key rule comes before the content type.
    assert_eq!(
        outcome(&r, "t-eu", "tickets/1/voice.bin", None, Some("audio/mpeg")),
        ("eu".into(), Some("ticket_data".into()))
    );
}

#[test]
fn unclassifiable_and_unknown_are_denied() {
    let r = rules();
    assert_eq!(
        outcome(&r, "t-eu", "random/thing", None, None).0,
        "deny:unclassified"
    );
    assert_eq!(
        outcome(&r, "t-eu", "random/thing", None, Some("application/json")).0,
        "deny:unclassified"
    );
    assert_eq!(
        outcome(&r, "nobody", "tickets/1", None, None).0,
        "deny:unknown_tenant"
    );
    assert_eq!(
        outcome(&r, "t-eu", "tickets/1", Some("no_such_category"), None).0,
        "deny:unknown_category"
    );
    // A backup of an undeclared category is an ordinary backup.
    assert_eq!(
        outcome(&r, "t-eu", "backups/not_a_category/x", None, None),
        ("eu".into(), Some("backups_and_logs".into()))
    );
}

#[test]
fn the_example_tenants_file_is_valid_and_gives_the_documented_cases() {
    let tenants = include_str!("../../../config/tenants.example.toml");
    let r = Ruleset::from_toml(POLICY, "policy", tenants, "tenants.example.toml").unwrap();
    assert_eq!(outcome(&r, "acme", "insights/1.csv", None, None).0, "us!");
    assert_eq!(outcome(&r, "acme", "tickets/1.json", None, None).0, "eu");
    assert_eq!(outcome(&r, "globex", "chat/1.json", None, None).0, "eu!");
    assert_eq!(outcome(&r, "initech", "chat/1.json", None, None).0, "eu");
    assert_eq!(outcome(&r, "initech", "nps/1.csv", None, None).0, "F");
    assert_eq!(outcome(&r, "eurobank", "chat/1.json", None, None).0, "eu");
    assert_eq!(outcome(&r, "eurobank", "nps/1.csv", None, None).0, "OOL");
    assert_eq!(
        outcome(&r, "eurobank", "talk/recordings/1.wav", None, None).0,
        "OOL"
    );
}

/// Item 2, upgrade: a mirrored backup stored before it took the placement of
/// what it holds is in the tenant's home region; reads look there second.
#[test]
fn a_mirrored_backup_is_read_where_it_goes_then_where_it_went_before() {
    let r = rules();
    let p = r.policy();
    let t = r.tenants().get("t-us").unwrap();
    let order: Vec<&str> = r
        .read_regions(t, "backups/chat/1.json")
        .iter()
        .map(|x| p.region(x).id())
        .collect();
    assert_eq!(order, ["eu", "us"]);
    let order: Vec<&str> = r
        .read_regions(t, "chat/1.json")
        .iter()
        .map(|x| p.region(x).id())
        .collect();
    assert_eq!(order, ["eu"]);
}
