//! `residency erase` on the real Garage pair: the dry run, the refusal
//! without confirmation, the signed statement `attest verify` checks, and
//! the scan after the tenants left the directory (the records their
//! statements keep are theirs until their retention ends).

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erase_deletes_every_object_keeps_the_records_and_signs_what_it_did() {
    let policy = repo().join("config/hosting-policy.toml");
    let env = Env::new(ERASE_BUCKET, &policy).await;
    env.plant(&[
        ("us", "globex/tickets/1.json", "application/json"),
        ("us", "globex/tickets/2.json", "application/json"),
        ("eu", "globex/tickets/9.json", "application/json"),
        (
            "us",
            "_audit/globex/w1/000000000001.jsonl",
            "application/x-ndjson",
        ),
        ("eu", "acme/tickets/1.json", "application/json"),
    ])
    .await;
    let config = env.config.to_str().expect("utf-8").to_owned();
    let key = [("RESIDENCY_ATTEST_KEY", ATTEST_KEY)];
    let erase = |extra: &[&str]| {
        let mut args = vec!["erase", "--config", config.as_str(), "--tenant", "globex"];
        args.extend_from_slice(extra);
        env.residency(&args, &key)
    };

    // The dry run says what goes and what stays, and deletes nothing.
    let o = erase(&["--dry-run"]);
    assert_eq!(o.status.code(), Some(0), "{}", says(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("3 object(s) to delete"), "{text}");
    assert!(text.contains("keep audit batches"), "{text}");
    assert_eq!(keys(&env, "us", "globex/").await.len(), 2);
    // Without a terminal to confirm on, and without --yes: refused.
    let o = erase(&[]);
    assert_eq!(o.status.code(), Some(2), "{}", says(&o));
    assert_eq!(keys(&env, "us", "globex/").await.len(), 2);

    let o = erase(&["--yes"]);
    assert_eq!(o.status.code(), Some(0), "{}", says(&o));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).expect("the statement");
    let st = &doc["statement"];
    assert_eq!(st["format"], "residency-erasure/1");
    assert_eq!(st["deleted"]["ticket_data"]["us"]["objects"], 2);
    assert_eq!(st["deleted"]["ticket_data"]["eu"]["objects"], 1);
    let audit = st["kept"]
        .as_array()
        .expect("kept")
        .iter()
        .find(|k| k["what"] == "audit batches")
        .expect("audit batches kept");
    assert_eq!(audit["regions"]["us"]["objects"], 1);
    assert!(keys(&env, "us", "globex/").await.is_empty());
    assert!(keys(&env, "eu", "globex/").await.is_empty());
    assert_eq!(
        keys(&env, "us", "_audit/globex/").await.len(),
        1,
        "records kept"
    );
    assert_eq!(
        keys(&env, "eu", "acme/").await.len(),
        1,
        "another tenant untouched"
    );
    let stored = keys(&env, "us", "_attestations/globex/").await;
    assert!(stored.iter().any(|k| k.contains("erasure-")), "{stored:?}");

    // `attest verify` checks it: holds, then not once an object reappears.
    let file = env.dir.path().join("erasure.json");
    std::fs::write(&file, &o.stdout).expect("write");
    let file = file.to_str().expect("utf-8").to_owned();
    let verify = || env.residency(&["attest", "verify", &file, "--config", &config], &key);
    let o = verify();
    assert_eq!(o.status.code(), Some(0), "{}", says(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("erasure of tenant globex"));
    env.put("us", "globex/tickets/3.json", "application/json", &[])
        .await;
    let o = verify();
    assert_eq!(o.status.code(), Some(1), "{}", says(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("DIFFERS: us holds globex/tickets/3.json"));
    env.backend("us")
        .delete_object("globex/tickets/3.json")
        .await
        .expect("delete");

    // Another tenant erased with no retention; then both leave the
    // directory. The scan counts the records the statements keep for their
    // tenants (not as unknown tenants), and reports those kept past their
    // retention.
    env.plant(&[
        ("us", "initech/tickets/1.json", "application/json"),
        (
            "us",
            "_audit/initech/w1/000000000001.jsonl",
            "application/x-ndjson",
        ),
    ])
    .await;
    let o = env.residency(
        &[
            "erase",
            "--config",
            &config,
            "--tenant",
            "initech",
            "--yes",
            "--retention-days",
            "0",
        ],
        &key,
    );
    assert_eq!(o.status.code(), Some(0), "{}", says(&o));
    let left = TENANTS
        .replace("[[tenants]]\nid = \"globex\"\nlocality = \"us\"\n", "")
        .replace("[[tenants]]\nid = \"initech\"\nlocality = \"us\"\n", "");
    assert!(!left.contains("globex") && !left.contains("initech"));
    std::fs::write(env.dir.path().join("tenants.toml"), left).expect("tenants");
    let o = env.scan(&env.config, "after-erasure", &[], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", says(&o));
    let out = env.dir.path().join("after-erasure");
    let (found, reasons) = findings(&out.join("findings.jsonl"));
    let audit = "_audit/initech/w1/000000000001.jsonl";
    assert_eq!(
        set(&found),
        set(&[("record_out_of_place".into(), "us".into(), audit.into())]),
        "{}",
        says(&o)
    );
    assert!(
        reasons[audit].contains("past the end of their retention"),
        "{reasons:?}"
    );
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).expect("summary"))
            .expect("json");
    let kept = keys(&env, "us", "_audit/globex/").await.len()
        + keys(&env, "us", "_attestations/globex/").await.len();
    assert_eq!(
        summary["tenants"]["globex"]["records"]["us"]["objects"], kept,
        "{summary}"
    );
}
