//! The `residency` command line as a user runs it: `explain`, `check`,
//! `policy show`, `--help`, with their exit codes (0 ok, allow and deny alike;
//! 2 for invalid files or arguments).
//!
//! Expectations are literals derived from the seed's hosting table
//! (`shared/seeds/000_*.txt`), `config/hosting-policy.toml` and the example
//! tenants in `config/tenants.example.toml`:
//!
//! - `acme`: locality eu, not strict, Insights enabled;
//! - `globex`: locality us, every optional feature enabled;
//! - `initech`: no locality add-on (default region us), no features;
//! - `eurobank`: locality eu, strict, NPS enabled.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const POLICY: &str = "config/hosting-policy.toml";
const TENANTS: &str = "config/tenants.example.toml";

/// Runs the binary from the repository root (where the default `config/`
/// paths point).
fn residency(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_residency"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .output()
        .expect("run the residency binary")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("utf-8 stdout")
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).expect("utf-8 stderr")
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exited normally")
}

/// A fresh directory for one test's files.
fn temp_dir(test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-{test}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// `residency explain --format json` on the shipped files; exit code 0.
fn explain(tenant: &str, key: &str, extra: &[&str]) -> Value {
    let mut args = vec![
        "explain", "--tenant", tenant, "--key", key, "--format", "json",
    ];
    args.extend_from_slice(extra);
    let out = residency(&args);
    assert_eq!(
        code(&out),
        0,
        "explain {tenant} {key} {extra:?}: stderr {}",
        stderr(&out)
    );
    serde_json::from_str(&stdout(&out)).expect("explain prints one JSON object")
}

/// What `explain` must say for one request.
enum Want {
    /// Allowed: region, category, out of locality, reason.
    Allow(&'static str, &'static str, bool, &'static str),
    /// Denied: reason, category named in the denial (if any).
    Deny(&'static str, Option<&'static str>),
}

use Want::{Allow, Deny};

fn check_explain(tenant: &str, key: &str, extra: &[&str], want: &Want) {
    let v = explain(tenant, key, extra);
    let ctx = format!("{tenant} {key} {extra:?}: {v}");
    assert_eq!(v["tenant"], tenant, "{ctx}");
    assert_eq!(v["key"], key, "{ctx}");
    assert_eq!(v["policy_version"], "2017-11-01", "{ctx}");
    assert!(v["detail"].as_str().is_some_and(|d| !d.is_empty()), "{ctx}");
    match *want {
        Allow(region, category, ool, reason) => {
            assert_eq!(v["decision"], "allow", "{ctx}");
            assert_eq!(v["region"], region, "{ctx}");
            assert_eq!(v["category"], category, "{ctx}");
            assert_eq!(v["out_of_locality"], ool, "{ctx}");
            assert_eq!(v["reason"], reason, "{ctx}");
            assert_eq!(v["bucket"], tenant, "{ctx}");
            assert_eq!(v["object"], format!("{tenant}/{key}"), "{ctx}");
        }
        Deny(reason, category) => {
            assert_eq!(v["decision"], "deny", "{ctx}");
            assert_eq!(v["reason"], reason, "{ctx}");
            assert_eq!(v["region"], Value::Null, "{ctx}");
            assert_eq!(v["bucket"], Value::Null, "{ctx}");
            assert_eq!(v["out_of_locality"], false, "{ctx}");
            match category {
                Some(c) => assert_eq!(v["category"], c, "{ctx}"),
                None => assert_eq!(v["category"], Value::Null, "{ctx}"),
            }
        }
    }
}

#[test]
fn explain_eurobank_chat_is_allowed_in_the_eea() {
    // "Chat Content: Available to be Hosted in the EEA only"; eurobank is EU.
    let v = explain("eurobank", "chat/1.json", &[]);
    assert_eq!(v["decision"], "allow");
    assert_eq!(v["region"], "eu");
    assert_eq!(v["category"], "chat_content");
    assert_eq!(v["classified_by"], "key_rule");
    assert_eq!(v["reason"], "tenant_locality");
    assert_eq!(v["out_of_locality"], false);
    assert_eq!(v["bucket"], "eurobank");
}

#[test]
fn explain_example_tenants_follow_the_seed_table() {
    #[rustfmt::skip]
    let table: &[(&str, &str, Want)] = &[
        // Ticket data: "EEA or the US": each tenant's own region; no locality: us.
        ("acme",     "tickets/1/comment.json", Allow("eu", "ticket_data", false, "tenant_locality")),
        ("globex",   "tickets/1/comment.json", Allow("us", "ticket_data", false, "tenant_locality")),
        ("initech",  "tickets/1/comment.json", Allow("us", "ticket_data", false, "default_region")),
        ("eurobank", "tickets/1/comment.json", Allow("eu", "ticket_data", false, "tenant_locality")),
        // Chat content: "EEA only": a US tenant's chat goes to eu, out of locality;
        // a tenant without locality gets eu too and is never out of locality.
        ("acme",     "chat/1.json", Allow("eu", "chat_content", false, "tenant_locality")),
        ("globex",   "chat/1.json", Allow("eu", "chat_content", true,  "category_region")),
        ("initech",  "chat/1.json", Allow("eu", "chat_content", false, "first_allowed_region")),
        // Insights: "US only"; "optional and disabled by default".
        ("acme",     "insights/2026/report.csv", Allow("us", "insights", true,  "category_region")),
        ("globex",   "insights/2026/report.csv", Allow("us", "insights", false, "tenant_locality")),
        ("initech",  "insights/2026/report.csv", Deny("feature_disabled", Some("insights"))),
        ("eurobank", "insights/2026/report.csv", Deny("feature_disabled", Some("insights"))),
        // NPS lists: "US only"; "NPS is optional and is disabled by default".
        // eurobank enabled NPS but is strict EU: denied, out of locality.
        ("acme",     "nps/list-1.csv", Deny("feature_disabled", Some("nps_lists"))),
        ("globex",   "nps/list-1.csv", Allow("us", "nps_lists", false, "tenant_locality")),
        ("eurobank", "nps/list-1.csv", Deny("out_of_locality", Some("nps_lists"))),
        // Call recordings: "in the US only".
        ("acme",     "talk/recordings/1.wav", Allow("us", "call_recordings", true,  "category_region")),
        ("initech",  "talk/recordings/1.wav", Allow("us", "call_recordings", false, "default_region")),
        ("eurobank", "talk/recordings/1.wav", Deny("out_of_locality", Some("call_recordings"))),
        // Guide attachments and images: "US only"; guide content: "EEA or the US".
        ("acme",     "guide/images/logo.png", Allow("us", "guide_media", true, "category_region")),
        ("eurobank", "guide/images/logo.png", Deny("out_of_locality", Some("guide_media"))),
        ("eurobank", "guide/articles/1.html", Allow("eu", "guide_content", false, "tenant_locality")),
        // Transcriptions "also stored in tickets": ticket data's region.
        ("acme",     "talk/transcriptions/1.txt", Allow("eu", "transcriptions", false, "tenant_locality")),
        ("eurobank", "talk/transcriptions/1.txt", Allow("eu", "transcriptions", false, "tenant_locality")),
        // Explore: "same region where ... Zendesk Support account is Hosted".
        ("globex",   "explore/app/dashboard.json", Allow("us", "explore_app_data", false, "tenant_locality")),
        // Message conversations: "US only".
        ("eurobank", "messages/thread-1.json", Deny("out_of_locality", Some("message_conversations"))),
        // Backups and logs "are also Hosted in the selected region".
        ("acme",     "backups/2026-11-24.tar", Allow("eu", "backups_and_logs", false, "follows_locality")),
        ("globex",   "logs/app.log",           Allow("us", "backups_and_logs", false, "follows_locality")),
        ("initech",  "logs/app.log",           Allow("us", "backups_and_logs", false, "follows_locality")),
        ("eurobank", "backups/2026-11-24.tar", Allow("eu", "backups_and_logs", false, "follows_locality")),
        // A backup of one category's data takes that category's placement.
        ("globex",   "backups/chat_content/1.tar", Allow("eu", "chat_content", true, "category_region")),
        // No key rule and no content type: unclassified, denied.
        ("acme",     "misc/unknown.bin", Deny("unclassified", None)),
    ];
    for (tenant, key, want) in table {
        check_explain(tenant, key, &[], want);
    }
}

#[test]
fn explain_classifies_by_content_type_and_explicit_category() {
    // No key rule matches: the content type decides (text/vtt -> transcriptions).
    let v = explain(
        "globex",
        "uploads/call.vtt",
        &["--content-type", "text/vtt"],
    );
    assert_eq!(v["decision"], "allow");
    assert_eq!(v["category"], "transcriptions");
    assert_eq!(v["classified_by"], "content_type_rule");
    assert_eq!(v["region"], "us");
    // "Call Recordings: includes live call recordings and voicemails": audio
    // alone is not one (issue 18, item 7); no rule places it.
    check_explain(
        "acme",
        "uploads/voice",
        &["--content-type", "audio/mpeg; rate=8000"],
        &Deny("unclassified", None),
    );
    // An explicit category places a key no rule matches.
    check_explain(
        "acme",
        "misc/profile.json",
        &["--category", "user_data"],
        &Allow("eu", "user_data", false, "tenant_locality"),
    );
    // An explicit category cannot move EEA-only chat content (on_conflict = "deny").
    check_explain(
        "globex",
        "chat/1.json",
        &["--category", "ticket_data"],
        &Deny("category_conflict", Some("ticket_data")),
    );
}

#[test]
fn explain_unknown_tenant_is_denied_with_exit_0() {
    let v = explain("nobody", "tickets/1/comment.json", &[]);
    assert_eq!(v["decision"], "deny");
    assert_eq!(v["reason"], "unknown_tenant");
    assert_eq!(v["region"], Value::Null);
    assert_eq!(v["out_of_locality"], false);
}

#[test]
fn explain_text_format_names_region_and_reason() {
    let out = residency(&["explain", "--tenant", "globex", "--key", "chat/1.json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("allow: globex/chat/1.json -> region eu (EEA) [out of locality]"),
        "{text}"
    );
    assert!(text.contains("why: "), "{text}");
    let out = residency(&[
        "explain",
        "--tenant",
        "eurobank",
        "--key",
        "talk/recordings/1.wav",
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(
        stdout(&out).contains("deny: eurobank/talk/recordings/1.wav (out_of_locality)"),
        "{}",
        stdout(&out)
    );
}

/// `residency explain --tenant acme --key tickets/1` with `extra` arguments.
fn explain_acme_ticket(extra: &[&str]) -> Output {
    let mut args = vec!["explain", "--tenant", "acme", "--key", "tickets/1"];
    args.extend_from_slice(extra);
    residency(&args)
}

#[test]
fn explain_unknown_category_exits_2_naming_it() {
    let out = explain_acme_ticket(&["--category", "nope"]);
    assert_eq!(code(&out), 2);
    let err = stderr(&out);
    assert!(err.contains("\"nope\""), "{err}");
    assert!(
        err.contains("ticket_data"),
        "lists the declared ones: {err}"
    );
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));
}

#[test]
fn explain_with_an_invalid_policy_exits_2() {
    let dir = temp_dir("explain-invalid");
    let policy = dir.join("policy.toml");
    std::fs::write(
        &policy,
        "version = \"1\"\ndefault_region = \"mars\"\n[regions.us]\njurisdiction = \"US\"\n\
         [categories.ticket_data]\nallowed = [\"us\"]\n",
    )
    .unwrap();
    let policy = policy.to_str().unwrap();
    let out = explain_acme_ticket(&["--policy", policy]);
    assert_eq!(code(&out), 2);
    let err = stderr(&out);
    assert!(err.contains(&format!("{policy}:2:")), "{err}");
    assert!(err.contains("mars"), "{err}");
    // A policy file that does not exist is an invalid input too.
    let missing = dir.join("missing.toml");
    let out = explain_acme_ticket(&["--policy", missing.to_str().unwrap()]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("missing.toml"), "{}", stderr(&out));
}

#[test]
fn check_accepts_the_shipped_files() {
    let out = residency(&["check"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains(&format!("ok: {POLICY}")), "{text}");
    assert!(text.contains("18 categories"), "{text}");
    assert!(text.contains(&format!("ok: {TENANTS}")), "{text}");
    assert!(text.contains("4 tenants"), "{text}");
    // Issue 18, items 3, 4, 8: the notes are part of every check.
    for note in [
        "note: default region us: product assumption",
        "note: sub-processor Twilio",
        "warning: tenant acme: feature insights copies default ticket fields",
    ] {
        assert!(text.contains(note), "{text}");
    }
    assert!(!text.contains("warning: tenant globex"), "{text}");
}

/// The `file:line:` prefixes of every stderr line except the closing summary.
fn assert_every_error_has_a_line(err: &str, file: &str) {
    let errors: Vec<&str> = err
        .lines()
        .filter(|l| !l.contains(": invalid") && !l.contains(" error(s)"))
        .collect();
    assert!(!errors.is_empty(), "{err}");
    for l in errors {
        let rest = l
            .strip_prefix(&format!("{file}:"))
            .unwrap_or_else(|| panic!("error without the file name: {l:?}\n{err}"));
        let line = rest.split(':').next().unwrap_or("");
        assert!(
            line.parse::<usize>().is_ok(),
            "error without a line number: {l:?}\n{err}"
        );
    }
}

/// Runs `check` with `args`: exit code 2, an error at each expected
/// `(line, mentioning)` of `file`, and a line number on every error.
fn assert_check_reports(args: &[&str], file: &str, expected: &[(usize, &str)]) {
    let out = residency(args);
    assert_eq!(code(&out), 2, "{}", stdout(&out));
    let err = stderr(&out);
    for (line, what) in expected {
        let prefix = format!("{file}:{line}:");
        assert!(
            err.lines()
                .any(|l| l.starts_with(&prefix) && l.contains(what)),
            "no error at line {line} mentioning {what:?}:\n{err}"
        );
    }
    assert_every_error_has_a_line(&err, file);
}

#[test]
fn check_reports_every_policy_error_with_its_line() {
    let dir = temp_dir("check-policy");
    let policy = dir.join("broken-policy.toml");
    // Line numbers matter: each `# <-` marks a line with an error.
    let src = r#"version = "2017-11-01"
default_region = "mars"                # <- line 2: not a declared region
features = ["insights"]
[regions.eu]
jurisdiction = "EEA"
[categories.chat_content]
allowed = ["eu", "moon"]               # <- line 7: undeclared region
[categories.insights]
allowed = ["eu"]
feature = "nps"                        # <- line 10: undeclared feature
[categories.loop_a]
follows = "loop_b"                     # <- line 12: follows cycle
[categories.loop_b]
follows = "loop_a"                     # <- line 14: follows cycle
[[key_rules]]
pattern = "chat/[**"                   # <- line 16: invalid glob
category = "chat_content"
[[key_rules]]
pattern = "x/**"
category = "nope"                      # <- line 20: undeclared category
[[content_type_rules]]
pattern = "audio"                      # <- line 22: invalid content type
category = "chat_content"
"#;
    std::fs::write(&policy, src).unwrap();
    let path = policy.to_str().unwrap();
    let expected = [
        (2, "mars"),
        (7, "moon"),
        (10, "nps"),
        (12, "cycle"),
        (14, "cycle"),
        (16, "chat/[**"),
        (20, "nope"),
        (22, "audio"),
    ];
    assert_check_reports(&["check", "--policy", path], path, &expected);
}

#[test]
fn check_reports_every_tenants_error_with_its_line() {
    let dir = temp_dir("check-tenants");
    let tenants = dir.join("broken-tenants.toml");
    let src = r#"[[tenants]]
id = "alpha"
locality = "mars"                      # <- line 3: not a region
[[tenants]]
id = "bravo"
strict = true                          # <- line 6: strict without locality
features = ["teleport"]                # <- line 7: undeclared feature
[[tenants]]
id = "alpha"                           # <- line 9: declared twice
locality = "eu"
"#;
    std::fs::write(&tenants, src).unwrap();
    let path = tenants.to_str().unwrap();
    let expected = [(3, "mars"), (6, "strict"), (7, "teleport"), (9, "twice")];
    assert_check_reports(&["check", "--tenants", path], path, &expected);
}

const CATEGORIES: [&str; 18] = [
    "ticket_data",
    "user_data",
    "attachments",
    "insights",
    "nps_lists",
    "archived_screencasts",
    "custom_resources",
    "guide_content",
    "guide_media",
    "spam_filter",
    "chat_content",
    "call_recordings",
    "transcriptions",
    "sms_messages",
    "explore_app_data",
    "explore_connector_data",
    "message_conversations",
    "backups_and_logs",
];

fn policy_show(format: &str) -> String {
    let out = residency(&["policy", "show", "--format", format]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    stdout(&out)
}

#[test]
fn policy_show_json_lists_all_18_categories() {
    let v: Value = serde_json::from_str(&policy_show("json")).expect("json");
    assert_eq!(v["version"], "2017-11-01");
    assert_eq!(v["default_region"], "us");
    let ids: Vec<&str> = v["categories"]
        .as_array()
        .expect("categories array")
        .iter()
        .map(|c| c["category"].as_str().expect("category id"))
        .collect();
    assert_eq!(ids, CATEGORIES);
    let chat = &v["categories"][10];
    assert_eq!(chat["category"], "chat_content");
    assert_eq!(chat["allowed"], "eu (EEA)");
    let insights = &v["categories"][3];
    assert_eq!(insights["feature"], "insights");
    assert_eq!(insights["allowed"], "us (US)");
}

#[test]
fn policy_show_markdown_has_a_header_row_and_every_category() {
    let md = policy_show("markdown");
    let lines: Vec<&str> = md.lines().collect();
    assert!(
        lines[0].starts_with("| category |") && lines[0].ends_with('|'),
        "{md}"
    );
    assert!(lines[1].starts_with("|---|"), "{md}");
    // The table ends at the first blank line; the notes follow it.
    let rows: Vec<&str> = lines[2..]
        .iter()
        .take_while(|l| !l.is_empty())
        .copied()
        .collect();
    assert_eq!(rows.len(), 18, "{md}");
    for (row, id) in rows.iter().zip(CATEGORIES) {
        assert!(row.starts_with(&format!("| `{id}` |")), "{row}");
    }
}

#[test]
fn policy_show_text_lists_every_category() {
    let text = policy_show("text");
    assert!(text.contains("CATEGORY"), "{text}");
    for id in CATEGORIES {
        assert!(
            text.lines()
                .any(|l| l.split_whitespace().next() == Some(id)),
            "{id} missing:\n{text}"
        );
    }
}

#[test]
fn help_mentions_the_commands_and_flags() {
    let out = residency(&["--help"]);
    assert_eq!(code(&out), 0);
    let help = stdout(&out);
    for word in ["explain", "check", "policy"] {
        assert!(help.contains(word), "{word}: {help}");
    }
    let out = residency(&["explain", "--help"]);
    assert_eq!(code(&out), 0);
    let help = stdout(&out);
    for flag in [
        "--tenant",
        "--key",
        "--category",
        "--content-type",
        "--format",
        "--policy",
        "--tenants",
    ] {
        assert!(help.contains(flag), "{flag}: {help}");
    }
}

#[test]
fn missing_required_flag_is_a_usage_error() {
    let out = residency(&["explain", "--key", "tickets/1"]);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("--tenant"), "{}", stderr(&out));
}

// --- Issue 18 (seed fidelity) -------------------------------------------------

/// "Available to be Hosted in the European Economic Area (EEA)": London is
/// not in the EEA, so `check` refuses a policy that lists eu-west-2 in its
/// EEA region, naming the location and its country.
#[test]
fn check_refuses_london_in_the_eea_region() {
    let dir = temp_dir("london");
    let shipped = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(POLICY))
        .expect("read policy");
    let bad = shipped.replace(
        "locations = [\"eu-west-1\",",
        "locations = [\"eu-west-1\", \"eu-west-2\",",
    );
    assert_ne!(bad, shipped);
    let policy = dir.join("policy.toml");
    std::fs::write(&policy, bad).unwrap();
    let out = residency(&["check", "--policy", policy.to_str().unwrap()]);
    assert_eq!(code(&out), 2, "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains("\"eu-west-2\" is in GB")
            && err.contains("not a member of jurisdiction \"EEA\""),
        "{err}"
    );
}

/// Transcriptions and SMS are "Hosted by Zendesk's third party service
/// provider, Twilio, in the US only; also stored in tickets": a strict EEA
/// tenant's transcription is stored in the EEA, and `explain` shows Twilio's
/// copy (`also_hosted_by`) and warns instead of certifying EEA-only.
#[test]
fn explain_shows_twilios_us_copy_as_a_warning_for_a_strict_eea_tenant() {
    let v = explain("eurobank", "talk/transcriptions/1.txt", &[]);
    assert_eq!(v["decision"], "allow");
    assert_eq!(v["region"], "eu");
    assert_eq!(v["also_hosted_by"][0]["name"], "Twilio");
    assert_eq!(v["also_hosted_by"][0]["hosts_in"][0], "US");
    let w = v["warnings"][0].as_str().expect("a warning");
    assert!(w.contains("Twilio") && w.contains("US"), "{v}");
    // A US tenant's copy is in its locality: shown, no warning.
    let v = explain("globex", "sms/1.json", &[]);
    assert_eq!(v["also_hosted_by"][0]["name"], "Twilio");
    assert_eq!(v["warnings"].as_array().map(Vec::len), Some(0), "{v}");
}

/// "Default ticket fields exported to Insights (including End-User
/// organization) cannot be disabled": acme (EEA, Insights on) has ticket
/// fields copied to the US; `explain` says so.
#[test]
fn explain_warns_that_insights_copies_ticket_fields_to_the_us() {
    let v = explain("acme", "tickets/1/comment.json", &[]);
    assert_eq!(v["region"], "eu");
    let w = v["warnings"][0].as_str().expect("a warning");
    assert!(
        w.contains("insights") && w.contains("default ticket fields") && w.contains("us"),
        "{v}"
    );
    let v = explain("eurobank", "tickets/1/comment.json", &[]);
    assert_eq!(v["warnings"].as_array().map(Vec::len), Some(0), "{v}");
}

/// The policy only covers tenants "when the Add-On is purchased": initech's
/// region is the product's assumption, and `explain` says so.
#[test]
fn explain_marks_the_default_region_as_a_product_assumption() {
    let v = explain("initech", "tickets/1.json", &[]);
    assert_eq!(v["region"], "us");
    let a = v["assumption"].as_str().expect("an assumption");
    assert!(a.contains("product assumption"), "{v}");
    assert_eq!(
        explain("acme", "tickets/1.json", &[])["assumption"],
        Value::Null
    );
    let out = residency(&["explain", "--tenant", "initech", "--key", "tickets/1.json"]);
    assert!(stdout(&out).contains("assumption: "), "{}", stdout(&out));
}

/// `policy show` marks the Twilio cells, the Insights copy and the
/// default-region assumption.
#[test]
fn policy_show_marks_third_party_copies_and_the_assumption() {
    let text = policy_show("text");
    let line = |cat: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{cat} ")))
            .unwrap_or_else(|| panic!("{cat} row in {text}"))
            .to_string()
    };
    assert!(line("transcriptions").contains("Twilio (US)"), "{text}");
    assert!(line("sms_messages").contains("Twilio (US)"), "{text}");
    assert!(!line("ticket_data").contains("Twilio"), "{text}");
    assert!(text.contains("product assumption"), "{text}");
    assert!(
        text.contains("feature insights: enabling it copies default ticket fields"),
        "{text}"
    );
    let json: Value = serde_json::from_str(&policy_show("json")).unwrap();
    assert_eq!(json["default_region_basis"], "assumption");
    assert_eq!(json["sub_processors"][0]["name"], "Twilio");
    let html = policy_show("html");
    assert!(
        html.contains("eu + Twilio copy in US"),
        "html marks the cell"
    );
}

/// `tenants set --features insights` for an EEA tenant writes the file and
/// warns that default ticket fields are copied to the US; for a US tenant it
/// does not warn; an undeclared feature is refused and the file unchanged.
#[test]
fn tenants_set_insights_for_an_eea_tenant_warns_of_the_us_copy() {
    let dir = temp_dir("tenants-set");
    let tenants = dir.join("tenants.toml");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join(TENANTS),
        &tenants,
    )
    .unwrap();
    let t = tenants.to_str().unwrap();
    let out = residency(&[
        "tenants",
        "set",
        "eurobank",
        "--tenants",
        t,
        "--add-feature",
        "insights",
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("warning: feature insights copies default ticket fields")
            && text.contains("to us (US)"),
        "{text}"
    );
    let v = explain_with(t, "eurobank", "tickets/1.json");
    assert!(
        v["warnings"][0].as_str().unwrap_or("").contains("insights"),
        "{v}"
    );
    let out = residency(&[
        "tenants",
        "set",
        "globex",
        "--tenants",
        t,
        "--features",
        "insights",
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(!stdout(&out).contains("warning"), "{}", stdout(&out));
    let before = std::fs::read_to_string(&tenants).unwrap();
    let out = residency(&[
        "tenants",
        "set",
        "acme",
        "--tenants",
        t,
        "--add-feature",
        "telepathy",
    ]);
    assert_eq!(code(&out), 2);
    assert_eq!(std::fs::read_to_string(&tenants).unwrap(), before);
}

fn explain_with(tenants: &str, tenant: &str, key: &str) -> Value {
    let out = residency(&[
        "explain",
        "--tenants",
        tenants,
        "--tenant",
        tenant,
        "--key",
        key,
        "--format",
        "json",
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    serde_json::from_str(&stdout(&out)).unwrap()
}

/// Issue 18 item 5, seed: "all Service Data which is available for Data
/// Locality ... can only be Hosted in a single Data Locality". `check
/// --previous` refuses what the sidecar's reload refuses: a locality change
/// that no migration records; the files `residency migrate` writes pass.
#[test]
fn check_previous_refuses_a_locality_switch_without_a_migration() {
    let dir = temp_dir("check-previous-switch");
    let shipped = std::fs::read_to_string(TENANTS).expect("read tenants");
    let acme = "id = \"acme\"\nlocality = \"eu\"\n";
    let write = |name: &str, acme_now: &str| {
        let text = shipped.replacen(acme, acme_now, 1);
        assert_ne!(text, shipped, "the example tenants file changed shape");
        let p = dir.join(name);
        std::fs::write(&p, text).expect("write tenants");
        p.display().to_string()
    };
    let check = |tenants: &str| residency(&["check", "--tenants", tenants, "--previous", TENANTS]);

    let edited = write("edited.toml", "id = \"acme\"\nlocality = \"us\"\n");
    let out = check(&edited);
    assert_eq!(code(&out), 2, "{}", stdout(&out));
    let err = stderr(&out);
    assert!(err.contains("a reload from"), "{err}");
    assert!(err.contains("acme: eu -> us"), "{err}");
    assert!(
        err.contains("residency migrate --tenant acme --to us"),
        "{err}"
    );

    for (name, entry) in [
        (
            "switched.toml",
            "id = \"acme\"\nlocality = \"us\"\nmigrating_from = \"eu\"\n",
        ),
        (
            "finished.toml",
            "id = \"acme\"\nlocality = \"us\"\nmigrated_from = \"eu\"\n",
        ),
    ] {
        let out = check(&write(name, entry));
        assert_eq!(code(&out), 0, "{name}: {}", stderr(&out));
        assert!(
            stdout(&out).contains("moves no tenant to another locality without a migration"),
            "{}",
            stdout(&out)
        );
    }
}

/// The shipped policy with chat content moved from the EEA to the US only.
fn chat_moved_to_us(test: &str) -> PathBuf {
    let src = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(POLICY))
        .expect("shipped policy");
    let start = src
        .find("[categories.chat_content]")
        .expect("chat category");
    let allowed = start
        + src[start..]
            .find("allowed = [\"eu\"]")
            .expect("chat's EEA rule");
    let moved = format!(
        "{}allowed = [\"us\"]{}",
        &src[..allowed],
        &src[allowed + "allowed = [\"eu\"]".len()..]
    );
    let path = temp_dir(test).join("chat-us.toml");
    std::fs::write(&path, moved).expect("write the moved policy");
    path
}

#[test]
fn policy_diff_reports_exactly_the_chat_move_and_the_tenants_it_hits() {
    let moved = chat_moved_to_us("policy_diff_chat");
    let out = residency(&["policy", "diff", POLICY, moved.to_str().unwrap()]);
    let text = stdout(&out);
    assert_eq!(
        code(&out),
        1,
        "placements change: exit 1\n{text}{}",
        stderr(&out)
    );
    let rows: Vec<&str> = text
        .lines()
        .filter(|l| {
            l.starts_with("chat_content")
                || l.contains(" → ")
                    && !l.starts_with("policy ")
                    && !l.starts_with("category ")
                    && !l.starts_with("  ")
        })
        .collect();
    assert_eq!(rows.len(), 5, "one row per tenant kind of chat:\n{text}");
    assert!(rows.iter().all(|r| r.starts_with("chat_content")), "{text}");
    // The example tenants: every one has chat data whose placement moves
    // (acme and eurobank are in the EEA, globex was out of its US locality,
    // initech's default region was overruled by the EEA-only rule).
    for line in [
        "  acme: chat_content eu → us (out of locality)",
        "  globex: chat_content eu (out of locality) → us",
        "  initech: chat_content eu → us",
        "  eurobank: chat_content eu → denied (out_of_locality)",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?}:\n{text}");
    }
    assert_eq!(text.matches("proved clean").count(), 2, "{text}");

    let json = residency(&["policy", "diff", POLICY, moved.to_str().unwrap(), "--json"]);
    let v: Value = serde_json::from_slice(&json.stdout).expect("json");
    let categories: Vec<&str> = v["diff"]["categories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["category"].as_str().unwrap())
        .collect();
    assert_eq!(categories, ["chat_content"]);
    assert_eq!(v["affected"].as_array().unwrap().len(), 4);
}

#[test]
fn policy_diff_of_a_policy_with_itself_changes_nothing() {
    let out = residency(&["policy", "diff", POLICY, POLICY]);
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("none affected"), "{}", stdout(&out));
}

#[test]
fn check_proves_the_policy_invariants() {
    let out = residency(&["check"]);
    let text = stdout(&out);
    assert_eq!(code(&out), 0, "{text}");
    let line = text
        .lines()
        .find(|l| l.contains("proved clean"))
        .expect("the proof's line");
    let cases: usize = line
        .split('(')
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("a case count");
    assert!(cases > 1000, "{line}");
}

/// `explain --bucket`: a shared bucket names the tenant in the key and gives
/// its default category after the key rules; a bucket nobody has is exit 2.
#[test]
fn explain_a_key_of_a_shared_bucket_with_its_default_category() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("residency.toml");
    std::fs::write(
        &config,
        "[[shared_buckets]]\nname = \"attachments\"\ntenant_from = \"key\"\ndefault_category = \"attachments\"\n",
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let json = |key: &str| {
        let out = residency(&[
            "explain",
            "--bucket",
            "attachments",
            "--config",
            config,
            "--key",
            key,
            "--format",
            "json",
        ]);
        assert!(out.status.success(), "{out:?}");
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    // No key rule matches: the bucket's default category, in each tenant's region.
    let v = json("globex/42/invoice.bin");
    assert_eq!(v["tenant"], "globex");
    assert_eq!(v["category"], "attachments");
    assert_eq!(v["classified_by"], "bucket_default");
    assert_eq!(v["region"], "us");
    assert_eq!(v["object"], "globex/~bucket/attachments/42/invoice.bin");
    assert_eq!(json("acme/42/invoice.bin")["region"], "eu");
    // A key rule wins over the bucket's category.
    let v = json("acme/chat/1.json");
    assert_eq!(v["category"], "chat_content");
    assert_eq!(v["classified_by"], "key_rule");
    // A configured bucket names its tenant; another tenant is refused.
    let out = residency(&["explain", "--bucket", "acme", "--key", "tickets/1.json"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("acme/tickets/1.json -> region eu"));
    let out = residency(&[
        "explain",
        "--bucket",
        "acme",
        "--tenant",
        "globex",
        "--key",
        "tickets/1.json",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let out = residency(&[
        "explain", "--bucket", "nope", "--config", config, "--key", "x",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bucket nope"));
}
