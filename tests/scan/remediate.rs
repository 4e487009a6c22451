//! `scan --plan` and `residency remediate` on the real Garage pair.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_moves_each_misplaced_object_where_it_belongs_and_resumes() {
    let policy = repo().join("config/hosting-policy.toml");
    let env = Env::new(FIX_BUCKET, &policy).await;
    env.put(
        "us",
        "acme/tickets/2.json",
        "application/json",
        &[("owner", "ann")],
    )
    .await;
    env.plant(&[
        ("us", "strictco/tickets/2.json", "application/json"),
        ("us", "globex/insights/1.json", "application/json"),
    ])
    .await;
    // The destination already holds a newer copy of this one.
    env.plant(&[
        ("us", "acme/tickets/3.json", "application/json"),
        ("eu", "acme/tickets/3.json", "application/json"),
    ])
    .await;
    let plan = env.dir.path().join("plan.jsonl");
    let plan_arg = plan.to_str().expect("utf-8").to_owned();
    let o = env.scan(&env.config, "before", &["--plan", &plan_arg], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", says(&o));
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&plan)
        .expect("plan")
        .lines()
        .map(|l| serde_json::from_str(l).expect("a move"))
        .collect();
    let mut planned: Vec<(String, String, String)> = lines
        .iter()
        .map(|m| {
            let s = |f: &str| m[f].as_str().unwrap_or_default().to_owned();
            (s("key"), s("from"), s("to"))
        })
        .collect();
    planned.sort();
    assert_eq!(
        planned,
        [
            ("acme/tickets/2.json", "us", "eu"),
            ("acme/tickets/3.json", "us", "eu"),
            ("strictco/tickets/2.json", "us", "eu"),
        ]
        .map(|(a, b, c)| (a.to_owned(), b.to_owned(), c.to_owned()))
        .to_vec(),
        "the feature_removed finding has no move"
    );

    let config = env.config.to_str().expect("utf-8").to_owned();
    let o = env.residency(
        &["remediate", &plan_arg, "--config", &config, "--json"],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", says(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).expect("--json");
    assert_eq!(report["moved"], 2, "{report}");
    assert_eq!(report["destination_taken"], 1, "{report}");
    // Moved with its bytes and metadata; gone from where it was.
    let eu = env.backend("eu");
    let got = eu
        .get_object("acme/tickets/2.json", None)
        .await
        .expect("moved");
    assert_eq!(
        got.info
            .headers
            .user_metadata
            .get("owner")
            .map(String::as_str),
        Some("ann")
    );
    let body = got.body.collect().await.expect("bytes");
    assert_eq!(&body[..], b"us:acme/tickets/2.json");
    assert!(keys(&env, "us", "acme/tickets/2.json").await.is_empty());
    assert!(keys(&env, "us", "strictco/").await.is_empty());
    // The one whose destination was taken is left in both places.
    assert_eq!(keys(&env, "us", "acme/tickets/3.json").await.len(), 1);

    // Run again: everything is journaled, nothing is done twice.
    let o = env.residency(
        &["remediate", &plan_arg, "--config", &config, "--json"],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", says(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).expect("--json");
    assert_eq!(report["already_done"], 3, "{report}");
    assert_eq!(report["moved"], 0, "{report}");

    // What is left: the removed feature's data and the taken destination.
    let o = env.scan(&env.config, "after", &[], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", says(&o));
    let (left, _) = findings(&env.dir.path().join("after/findings.jsonl"));
    let mut left: Vec<(String, String)> = left.into_iter().map(|(k, _, key)| (k, key)).collect();
    left.sort();
    assert_eq!(
        left,
        vec![
            (
                "feature_removed".to_owned(),
                "globex/insights/1.json".to_owned()
            ),
            ("misplaced".to_owned(), "acme/tickets/3.json".to_owned()),
        ]
    );
}
