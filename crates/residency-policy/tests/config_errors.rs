//! Each kind of invalid configuration is reported, with its line, and all
//! errors of a file are reported at once.

use residency_policy::{ConfigErrors, Policy, Tenants};

const BASE: &str = r#"version = "1"
default_region = "us"
features = ["insights"]
[regions.eu]
jurisdiction = "EEA"
[regions.us]
jurisdiction = "US"
[categories.ticket_data]
allowed = ["eu", "us"]
"#;

fn policy_errors(src: &str) -> ConfigErrors {
    Policy::from_toml(src, "p.toml").expect_err("must be invalid")
}

fn lines(e: &ConfigErrors) -> Vec<(usize, String)> {
    e.errors()
        .iter()
        .map(|e| (e.line.unwrap_or(0), e.message.clone()))
        .collect()
}

fn assert_one(src: &str, line: usize, needle: &str) {
    let e = policy_errors(src);
    let l = lines(&e);
    assert!(
        l.iter().any(|(ln, m)| *ln == line && m.contains(needle)),
        "expected an error on line {line} containing {needle:?}, got {l:?}"
    );
    assert!(e.to_string().contains(&format!("p.toml:{line}:")), "{e}");
}

#[test]
fn the_shipped_policy_is_valid() {
    Policy::from_toml(include_str!("../../../config/hosting-policy.toml"), "x").unwrap();
}

#[test]
fn unknown_region() {
    assert_one(
        &format!("{BASE}[categories.chat]\nallowed = [\"eu\", \"mars\"]\n"),
        11,
        "\"mars\", which is not declared",
    );
}

#[test]
fn unknown_default_region() {
    assert_one(
        &BASE.replace("default_region = \"us\"", "default_region = \"uk\""),
        2,
        "default_region \"uk\"",
    );
}

#[test]
fn follows_cycle() {
    let src = format!("{BASE}[categories.a]\nfollows = \"b\"\n[categories.b]\nfollows = \"c\"\n[categories.c]\nfollows = \"a\"\n");
    let e = policy_errors(&src);
    let cyc: Vec<_> = lines(&e)
        .into_iter()
        .filter(|(_, m)| m.contains("cycle"))
        .collect();
    assert_eq!(cyc.len(), 3, "{cyc:?}");
    assert_eq!(cyc[0].0, 11);
    assert!(cyc[0].1.contains("a -> b -> c -> a"), "{cyc:?}");
}

#[test]
fn follows_unknown_category() {
    assert_one(
        &format!("{BASE}[categories.t]\nfollows = \"nope\"\n"),
        11,
        "neither a declared category",
    );
}

#[test]
fn duplicate_ids() {
    // TOML itself rejects a table declared twice, with its line.
    let e = policy_errors(&format!(
        "{BASE}[categories.ticket_data]\nallowed = [\"eu\"]\n"
    ));
    assert_eq!(e.errors().len(), 1);
    assert_eq!(e.errors()[0].line, Some(10), "{e}");
    assert_one(
        &BASE.replace(
            "features = [\"insights\"]",
            "features = [\"insights\", \"insights\"]",
        ),
        3,
        "declared twice",
    );
    assert_one(
        &format!("{BASE}[categories.x]\nallowed = [\"eu\", \"eu\"]\n"),
        11,
        "twice",
    );
}

#[test]
fn undeclared_feature() {
    assert_one(
        &format!("{BASE}[categories.nps_lists]\nallowed = [\"us\"]\nfeature = \"nps\"\n"),
        12,
        "feature \"nps\", which is not declared",
    );
}

#[test]
fn empty_allowed_set() {
    assert_one(
        &format!("{BASE}[categories.x]\nallowed = []\n"),
        11,
        "empty allowed set",
    );
}

#[test]
fn bad_patterns_and_rule_categories() {
    let src = format!("{BASE}[[key_rules]]\npattern = \"a/[z\"\ncategory = \"ticket_data\"\n[[key_rules]]\npattern = \"b/**\"\ncategory = \"nope\"\n[[content_type_rules]]\npattern = \"audio\"\ncategory = \"ticket_data\"\n");
    let e = policy_errors(&src);
    let l = lines(&e);
    assert!(
        l.iter().any(|(n, m)| *n == 11 && m.contains("invalid")),
        "{l:?}"
    );
    assert!(
        l.iter().any(|(n, m)| *n == 15 && m.contains("\"nope\"")),
        "{l:?}"
    );
    assert!(
        l.iter()
            .any(|(n, m)| *n == 17 && m.contains("content-type pattern")),
        "{l:?}"
    );
}

#[test]
fn every_error_is_reported_at_once() {
    let src = format!(
        "{BASE}[categories.a]\nallowed = [\"mars\"]\n[categories.b]\nfollows = \"zzz\"\n[categories.c]\nallowed = [\"us\"]\nfeature = \"nope\"\n[[key_rules]]\npattern = \"x/**\"\ncategory = \"missing\"\n"
    );
    let e = policy_errors(&src);
    let l: Vec<usize> = e.errors().iter().map(|e| e.line.unwrap()).collect();
    assert_eq!(l, vec![11, 13, 16, 19], "{e}");
}

#[test]
fn syntax_and_unknown_keys() {
    assert_one("version = \"1\"\ndefault_region = \n", 2, "");
    assert_one(
        &format!("{BASE}[categories.x]\nallowd = [\"eu\"]\n"),
        11,
        "unknown field",
    );
}

fn tenants_errors(src: &str) -> ConfigErrors {
    let p = Policy::from_toml(BASE, "p.toml").unwrap();
    Tenants::from_toml(src, "t.toml", &p).expect_err("must be invalid")
}

#[test]
fn tenants_file_errors_all_at_once() {
    let src = r#"[[tenants]]
id = "acme"
locality = "mars"
[[tenants]]
id = "acme"
strict = true
features = ["nps"]
[[tenants]]
id = "ok"
[[tenants.keys]]
access_key = "K1"
[[tenants]]
id = "x"
[[tenants.keys]]
access_key = "K2"
secret_key = "s"
secret_env = "E"
[[service_keys]]
access_key = "K1"
secret_env = "S"
tenants = ["ghost"]
"#;
    let e = tenants_errors(src);
    let l = lines(&e);
    let has = |line: usize, needle: &str| l.iter().any(|(n, m)| *n == line && m.contains(needle));
    assert!(has(3, "\"mars\", which is not a region"), "{l:?}");
    assert!(has(5, "declared twice"), "{l:?}");
    assert!(has(6, "strict but has no locality"), "{l:?}");
    assert!(has(7, "feature \"nps\""), "{l:?}");
    assert!(has(10, "exactly one of secret_key"), "{l:?}");
    assert!(has(13, "bucket \"x\""), "{l:?}");
    assert!(has(14, "exactly one of secret_key"), "{l:?}");
    assert!(has(19, "access key \"K1\" is declared twice"), "{l:?}");
    assert!(has(21, "tenant \"ghost\""), "{l:?}");
    assert!(e.to_string().contains("t.toml:6:"), "{e}");
}
