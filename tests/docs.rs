//! The documentation cannot drift silently from the code and the shipped
//! config: every `residency.toml` key is documented in docs/operations.md
//! (with every metric the code records), and every category of the hosting
//! policy is mapped to its source statement in docs/policy-mapping.md.

use std::collections::BTreeSet;
use std::path::Path;

fn read(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("cannot read {}: {e}", full.display()))
}

/// The text between `opening` (e.g. `struct Limits {`) and the first line
/// that closes it at the opening's indentation.
fn block<'a>(src: &'a str, opening: &str) -> &'a str {
    let start = src
        .find(opening)
        .unwrap_or_else(|| panic!("config.rs has no `{opening}`"));
    let line_start = src[..start].rfind('\n').map_or(0, |p| p + 1);
    let indent = &src[line_start..start];
    let body = &src[start + opening.len()..];
    let close = format!("\n{indent}}}");
    let end = body
        .find(&close)
        .unwrap_or_else(|| panic!("`{opening}` is not closed"));
    &body[..end]
}

/// Field names declared in a struct or enum body (`name: Type,` lines).
fn fields(body: &str) -> BTreeSet<String> {
    body.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("//") && !l.starts_with("#["))
        .filter_map(|l| {
            let l = ["pub ", "pub(super) ", "pub(crate) "]
                .iter()
                .find_map(|p| l.strip_prefix(p))
                .unwrap_or(l);
            let (name, _) = l.split_once(':')?;
            let ok = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            ok.then(|| name.to_string())
        })
        .collect()
}

/// Keys assigned in a TOML file, commented-out examples included
/// (`# access_key_env = "..."` documents a key too).
fn toml_keys(src: &str) -> BTreeSet<String> {
    src.lines()
        .map(|l| l.trim().trim_start_matches('#').trim())
        .filter_map(|l| {
            let (key, _) = l.split_once(" = ")?;
            let ok = !key.is_empty()
                && key
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            ok.then(|| key.to_string())
        })
        .collect()
}

/// Every `.rs` file below `dir`.
fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn missing_from(doc: &str, names: &BTreeSet<String>) -> Vec<String> {
    names
        .iter()
        .filter(|n| !doc.contains(&format!("`{n}`")))
        .cloned()
        .collect()
}

#[test]
fn every_residency_toml_key_is_documented_in_operations_md() {
    let config_rs = read("crates/residency-proxy/src/config.rs");
    let mut keys = BTreeSet::new();
    keys.extend(fields(block(&config_rs, "struct RawConfig {")));
    keys.extend(fields(block(
        &read("crates/residency-proxy/src/config/limits.rs"),
        "pub struct Limits {",
    )));
    keys.extend(fields(block(
        &read("crates/residency-proxy/src/config/directory.rs"),
        "pub(super) struct RawDirectory {",
    )));
    keys.extend(fields(block(
        &read("crates/residency-proxy/src/config/tls.rs"),
        "pub struct TlsConfig {",
    )));
    keys.extend(fields(block(
        &read("crates/residency-proxy/src/config/shared.rs"),
        "pub struct SharedBucket {",
    )));
    keys.extend(fields(block(&config_rs, "pub struct AuditConfig {")));
    keys.extend(fields(block(&config_rs, "pub enum BackendConfig {")));
    keys.insert("kind".to_string()); // the enum's serde tag
    keys.extend(toml_keys(&read("config/residency.toml")));
    for expected in [
        "listen",
        "max_concurrent_requests",
        "batch_events",
        "secret_key_env",
    ] {
        assert!(
            keys.contains(expected),
            "key parsing lost {expected}: {keys:?}"
        );
    }
    let doc = read("docs/operations.md");
    let missing = missing_from(&doc, &keys);
    assert!(
        missing.is_empty(),
        "docs/operations.md does not document these residency.toml keys (as `key`): {missing:?}"
    );
}

#[test]
fn every_metric_the_code_records_is_documented_in_operations_md() {
    let mut names = BTreeSet::new();
    // Every source file of the crates that record metrics.
    let mut files = Vec::new();
    for dir in [
        "crates/residency-tower/src",
        "crates/residency-audit/src",
        "crates/residency-proxy/src",
        "crates/residency-store/src",
    ] {
        rust_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join(dir), &mut files);
    }
    assert!(files.len() > 20, "source scan found only {files:?}");
    for file in files {
        let src = std::fs::read_to_string(&file).expect("read source");
        for piece in src.split('"').skip(1).step_by(2) {
            let is_metric = piece.starts_with("residency_")
                && piece
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if is_metric {
                names.insert(piece.to_string());
            }
        }
    }
    for expected in [
        "residency_requests_total",
        "residency_reload_total",
        "residency_shed_total",
    ] {
        assert!(
            names.contains(expected),
            "metric scan lost {expected}: {names:?}"
        );
    }
    let doc = read("docs/operations.md");
    let missing = missing_from(&doc, &names);
    assert!(
        missing.is_empty(),
        "docs/operations.md's metrics table lacks: {missing:?}"
    );
}

#[test]
fn every_policy_category_is_mapped_in_policy_mapping_md() {
    let policy = read("config/hosting-policy.toml");
    let categories: BTreeSet<String> = policy
        .lines()
        .filter_map(|l| l.trim().strip_prefix("[categories."))
        .filter_map(|l| l.strip_suffix(']'))
        .map(str::to_string)
        .collect();
    assert!(
        categories.len() >= 18,
        "expected the 18 seed categories, parsed {categories:?}"
    );
    let doc = read("docs/policy-mapping.md");
    let missing = missing_from(&doc, &categories);
    assert!(
        missing.is_empty(),
        "docs/policy-mapping.md does not map these categories of config/hosting-policy.toml (as `id`): {missing:?}"
    );
}
