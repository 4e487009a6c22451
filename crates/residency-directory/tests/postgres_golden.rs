//! The golden table on the PostgreSQL directory: its tenants imported into a
//! real PostgreSQL give the same decision as the tenants file for every
//! (tenant, key, category) of `crates/residency-policy/tests/golden.rs`
//! (that test pins the file's decisions to the seed's hosting table, by hand).

mod support;

use std::sync::Arc;
use std::time::Duration;

use residency_directory::postgres::{connect_client, import};
use residency_directory::{Directory, DirectoryKey, FileDirectory, PgDirectory};
use residency_policy::{Decision, Tenants};
use residency_testkit::PostgresCluster;
use support::{options, policy, resolve, within};

const GOLDEN: &str = include_str!("../../residency-policy/tests/golden.rs");

/// The golden test's tenants file (its `TENANTS` literal).
fn golden_tenants() -> &'static str {
    const OPEN: &str = "const TENANTS: &str = r#\"";
    let start = GOLDEN.find(OPEN).expect("TENANTS") + OPEN.len();
    let end = start + GOLDEN[start..].find("\"#;").expect("end of TENANTS");
    &GOLDEN[start..end]
}

/// The golden table's (key, category) rows.
fn golden_rows() -> Vec<(&'static str, &'static str)> {
    GOLDEN
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("(\"") && l.contains("[\""))
        .map(|l| {
            let q: Vec<&str> = l.split('"').collect();
            (q[1], q[3])
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_golden_tenants_decide_the_same_from_postgresql_as_from_the_file() {
    let rows = golden_rows();
    assert!(
        rows.len() >= 18,
        "the golden table has a row per category: {rows:?}"
    );
    let policy = policy();
    let tenants = Tenants::from_toml(golden_tenants(), "golden", &policy).unwrap();
    assert_eq!(tenants.len(), 8);
    let file = FileDirectory::without_keys(Arc::new(tenants.clone()));

    let pg = PostgresCluster::start().expect("PostgreSQL");
    pg.create_database("golden").unwrap();
    let url = pg.url("golden");
    let key = DirectoryKey::generate();
    let mut client = connect_client(&url, Duration::from_secs(5)).await.unwrap();
    residency_directory::postgres::migrate(&mut client)
        .await
        .unwrap();
    within(
        "import",
        10,
        import(&mut client, &tenants, &policy, resolve, &key),
    )
    .await
    .unwrap();
    let dir = within("connect", 10, PgDirectory::connect(options(&url, &key)))
        .await
        .unwrap();

    let mut compared = 0;
    for (_, t) in tenants.iter() {
        let from_file = file.tenant(&policy, t.id()).await.unwrap().unwrap();
        let from_pg = dir
            .tenant(&policy, t.id())
            .await
            .unwrap()
            .expect("imported");
        for (key, category) in &rows {
            for hint in [None, Some(*category)] {
                let a = policy.decide(&from_file, key, hint, None);
                let b = policy.decide(&from_pg, key, hint, None);
                let same = match (&a, &b) {
                    (Decision::Allow(x), Decision::Allow(y)) => {
                        (x.region, x.category, x.reason, x.out_of_locality)
                            == (y.region, y.category, y.reason, y.out_of_locality)
                    }
                    (Decision::Deny(x), Decision::Deny(y)) => x == y,
                    _ => false,
                };
                assert!(
                    same,
                    "{} {key} {hint:?}: file {a:?}, PostgreSQL {b:?}",
                    t.id()
                );
                compared += 1;
            }
        }
    }
    assert_eq!(compared, 8 * rows.len() * 2);
}
