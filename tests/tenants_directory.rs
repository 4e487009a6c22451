//! `residency tenants import | show | set | export | rotate-key` against a
//! real PostgreSQL on 127.0.0.1, as an operator runs them.

use std::path::Path;
use std::process::{Command, Output};

use residency_testkit::PostgresCluster;

const KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

fn residency<S: AsRef<std::ffi::OsStr>>(args: &[S], key: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_residency"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("RESIDENCY_DIRECTORY_KEY", key)
        .env_remove("RESIDENCY_DIRECTORY_URL")
        .args(args)
        .output()
        .expect("run the residency binary")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn an_operator_imports_shows_changes_exports_and_rotates_the_directory() {
    let pg = PostgresCluster::start().expect("PostgreSQL");
    pg.create_database("cli").unwrap();
    let url = pg.url("cli");
    let with = |args: &[&str]| -> Vec<String> {
        args.iter()
            .map(|a| a.to_string())
            .chain(["--directory".to_string(), url.clone()])
            .collect()
    };

    // Import: everything added; again: nothing changed.
    let out = residency(
        &with(&["tenants", "import", "config/tenants.example.toml"]),
        KEY,
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("4 added, 0 changed, 0 unchanged"),
        "{}",
        text(&out)
    );
    let again = residency(
        &with(&["tenants", "import", "config/tenants.example.toml"]),
        KEY,
    );
    assert!(
        text(&again).contains("0 added, 0 changed, 4 unchanged"),
        "{}",
        text(&again)
    );

    // check --directory: every row valid against the policy; then a row
    // written past the CLI names a region the policy does not declare.
    let out = residency(&["check", "--directory", url.as_str()], KEY);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("ok: directory (4 tenants valid"),
        "{}",
        text(&out)
    );
    pg.psql(
        "cli",
        "UPDATE tenants SET locality = 'mars' WHERE id = 'initech'",
    )
    .unwrap();
    let out = residency(&["check", "--directory", url.as_str()], KEY);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("tenant initech: tenant \"initech\" has locality \"mars\""),
        "{}",
        text(&out)
    );
    assert!(
        text(&out).contains("1 tenant(s) refused by the policy, 3 valid"),
        "{}",
        text(&out)
    );
    pg.psql(
        "cli",
        "UPDATE tenants SET locality = NULL WHERE id = 'initech'",
    )
    .unwrap();

    // Show: the record, never a secret.
    let out = residency(&with(&["tenants", "show", "globex", "--json"]), KEY);
    assert!(out.status.success(), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["locality"], "us");
    assert_eq!(
        v["features"],
        serde_json::json!(["insights", "nps", "spam_filter"])
    );
    assert!(
        !text(&out).contains("globex-example-secret"),
        "{}",
        text(&out)
    );

    // Set: one feature off; an undeclared feature is refused, nothing written.
    let out = residency(
        &with(&["tenants", "set", "globex", "--remove-feature", "nps"]),
        KEY,
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = residency(
        &with(&["tenants", "set", "globex", "--add-feature", "teleport"]),
        KEY,
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("teleport"), "{}", text(&out));
    let out = residency(&with(&["tenants", "show", "globex", "--json"]), KEY);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["features"],
        serde_json::json!(["insights", "spam_filter"])
    );
    let out = residency(&with(&["tenants", "show", "nobody"]), KEY);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));

    // Export: a tenants file `check` accepts, secrets as placeholders.
    let out = residency(&with(&["tenants", "export"]), KEY);
    assert!(out.status.success(), "{}", text(&out));
    let exported = String::from_utf8(out.stdout).unwrap();
    assert!(!exported.contains("example-secret"), "{exported}");
    let tmp = tempfile_path("exported.toml");
    std::fs::write(&tmp, &exported).unwrap();
    let mut check = Command::new(env!("CARGO_BIN_EXE_residency"));
    check.current_dir(env!("CARGO_MANIFEST_DIR"));
    check.args(["check", "--tenants", tmp.to_str().unwrap()]);
    let out = check.output().unwrap();
    assert!(out.status.success(), "{}", text(&out));

    // Rotate: secrets re-sealed under the new key; the old key no longer opens them.
    let new_key = tempfile_path("new.key");
    let new_hex = KEY.chars().rev().collect::<String>();
    std::fs::write(&new_key, &new_hex).unwrap();
    let out = residency(
        &with(&[
            "tenants",
            "rotate-key",
            "--new-key-file",
            new_key.to_str().unwrap(),
        ]),
        KEY,
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("6 secret(s) re-sealed") || text(&out).contains("secret(s) re-sealed"),
        "{}",
        text(&out)
    );
    let out = residency(&with(&["tenants", "export", "--with-secrets"]), &new_hex);
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("acme-example-secret-key-change-me"));
    let out = residency(&with(&["tenants", "export", "--with-secrets"]), KEY);
    assert!(
        !out.status.success(),
        "the old key opens nothing: {}",
        text(&out)
    );
}

#[test]
fn tenants_commands_need_a_directory_and_a_key() {
    let out = residency(&["tenants", "show", "acme"], KEY);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("--directory"), "{}", text(&out));
    let out = residency(
        &[
            "tenants",
            "import",
            "config/tenants.example.toml",
            "--directory",
            "postgresql://nobody@127.0.0.1:1/x",
        ],
        "not-hex",
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("RESIDENCY_DIRECTORY_KEY"),
        "{}",
        text(&out)
    );
}

fn tempfile_path(name: &str) -> std::path::PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("tenants-directory-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// `residency disclosure` and `residency audit` on a sidecar configuration
/// whose tenants live in PostgreSQL: the ledger goes to the home region the
/// directory gives (for a tenant the example file does not know), an unknown
/// tenant is bad input, and the directory unreachable fails the command
/// without writing anything.
#[test]
fn disclosure_and_audit_read_the_directory() {
    let pg = PostgresCluster::start().expect("PostgreSQL");
    pg.create_database("disclose").unwrap();
    let url = pg.url("disclose");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile_path("disclose");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let tenants = dir.join("tenants.toml");
    std::fs::write(
        &tenants,
        "[[tenants]]\nid = \"dironly\"\nlocality = \"eu\"\n\
         [[tenants]]\nid = \"usonly\"\nlocality = \"us\"\n",
    )
    .unwrap();
    let out = residency(
        &[
            "tenants",
            "import",
            tenants.to_str().unwrap(),
            "--directory",
            url.as_str(),
        ],
        KEY,
    );
    assert!(out.status.success(), "{}", text(&out));
    let config = |db: &str| {
        let path = dir.join(format!("residency-{}.toml", db.len()));
        std::fs::write(
            &path,
            format!(
                "policy = {:?}\ntenants = {db:?}\n[directory]\nconnect_timeout_ms = 1000\n\
                 [regions.eu]\nkind = \"dir\"\npath = {:?}\n[regions.us]\nkind = \"dir\"\npath = {:?}\n",
                root.join("config/hosting-policy.toml"),
                dir.join("eu"),
                dir.join("us"),
            ),
        )
        .unwrap();
        path
    };
    let good = config(&url);
    let open = |cfg: &Path, tenant: &str| {
        // Disclosure reads tenants only: no key-encryption key is needed.
        residency(
            &[
                "disclosure",
                "open",
                "--config",
                cfg.to_str().unwrap(),
                "--tenant",
                tenant,
                "--authority",
                "Bundeskriminalamt",
                "--country",
                "DE",
                "--legal-basis",
                "StPO 95",
                "--received",
                "2026-07-15",
                "--type",
                "court-order",
                "--by",
                "privacy-team",
                "--key",
                "tickets/1.json",
            ],
            "",
        )
    };
    let ledger_in = |region: &str, tenant: &str| {
        dir.join(region)
            .join("_disclosure")
            .join(tenant)
            .join("head.json")
            .exists()
    };

    let out = open(&good, "dironly");
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("in region eu"), "{}", text(&out));
    assert!(ledger_in("eu", "dironly") && !ledger_in("us", "dironly"));
    let out = open(&good, "usonly");
    assert!(out.status.success(), "{}", text(&out));
    assert!(ledger_in("us", "usonly") && !ledger_in("eu", "usonly"));

    // A tenant of the example file, unknown to this directory: bad input.
    let out = open(&good, "acme");
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("unknown tenant"), "{}", text(&out));
    assert!(!ledger_in("eu", "acme") && !ledger_in("us", "acme"));

    // Every ledger verifies, the directory's tenants included.
    let out = residency(
        &["disclosure", "verify", "--config", good.to_str().unwrap()],
        "",
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("dironly") && text(&out).contains("usonly"),
        "{}",
        text(&out)
    );

    // The directory unreachable: the command fails, nothing is written.
    let head =
        |t: &str| std::fs::read(dir.join("eu/_disclosure").join(t).join("head.json")).unwrap();
    let before = head("dironly");
    let down = config("postgresql://nobody@127.0.0.1:1/none");
    let out = open(&down, "dironly");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("tenant directory"), "{}", text(&out));
    assert_eq!(head("dironly"), before, "nothing appended to the ledger");

    // The audit trail is read from the regions: a directory configuration
    // is accepted (this tenant has written nothing yet).
    let out = residency(
        &[
            "audit",
            "verify",
            "--config",
            good.to_str().unwrap(),
            "--tenant",
            "dironly",
        ],
        "",
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("no audit batches found"),
        "{}",
        text(&out)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
