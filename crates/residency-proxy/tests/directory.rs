//! The sidecar on the PostgreSQL tenant directory, with real clients against
//! real servers: the shared Garage pair for the regions, a throw-away
//! PostgreSQL on 127.0.0.1 for the directory (issue "Tenant directory at
//! scale"). Every wait is a poll with a bounded deadline.

mod support;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use residency_directory::postgres::{self as pg, DirectoryKey, FeatureChange};
use residency_policy::{Policy, SecretRef, Tenants};
use residency_testkit::PostgresCluster;
use support::faultproxy::{Fault, FaultProxy};
use support::{
    cluster, expect_s3_error, regions_holding, repo_root, start_sidecar, write_config_with,
    Running, SidecarOptions,
};

const ACME: (&str, &str) = ("ACMEEXAMPLEKEY", "acme-example-secret-key-change-me");
const GLOBEX: (&str, &str) = ("GLOBEXEXAMPLEKEY", "globex-example-secret-key-change-me");
const INITECH: (&str, &str) = ("INITECHEXAMPLEKEY", "initech-example-secret-key-change-me");

/// One PostgreSQL server for the tests of this binary (a database each).
fn postgres() -> &'static PostgresCluster {
    static PG: OnceLock<PostgresCluster> = OnceLock::new();
    PG.get_or_init(|| PostgresCluster::start().expect("start PostgreSQL"))
}

fn policy() -> Policy {
    let root = repo_root();
    Policy::from_toml(
        &std::fs::read_to_string(root.join("config/hosting-policy.toml")).unwrap(),
        "hosting-policy.toml",
    )
    .unwrap()
}

/// A database named `name` holding the example tenants, and its URL.
async fn directory_with_example_tenants(
    pg_cluster: &PostgresCluster,
    name: &str,
    key: &DirectoryKey,
) -> String {
    pg_cluster.create_database(name).expect("create database");
    let url = pg_cluster.url(name);
    let policy = policy();
    let src = std::fs::read_to_string(repo_root().join("config/tenants.example.toml")).unwrap();
    let tenants = Tenants::from_toml(&src, "tenants.example.toml", &policy).unwrap();
    let mut c = pg::connect_client(&url, Duration::from_secs(5))
        .await
        .unwrap();
    pg::migrate(&mut c).await.unwrap();
    let resolve = |s: &SecretRef| match s {
        SecretRef::Inline(v) => Ok(v.clone()),
        other => Err(format!("{other:?}")),
    };
    pg::import(&mut c, &tenants, &policy, resolve, key)
        .await
        .unwrap();
    url
}

/// The default test configuration with `tenants` naming the directory.
fn directory_config(dir: &Path, url: &str, key: &DirectoryKey, max_staleness_secs: u64) -> PathBuf {
    directory_config_with(
        dir,
        url,
        key,
        max_staleness_secs,
        &SidecarOptions::default(),
    )
}

/// [`directory_config`] with the sidecar's options.
fn directory_config_with(
    dir: &Path,
    url: &str,
    key: &DirectoryKey,
    max_staleness_secs: u64,
    options: &SidecarOptions,
) -> PathBuf {
    let path = write_config_with(dir, options);
    let key_file = dir.join("directory.key");
    std::fs::write(&key_file, key.to_hex()).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let mut out = String::new();
    for line in text.lines() {
        if line.starts_with("tenants = ") {
            out.push_str(&format!(
                "tenants = {url:?}\ndirectory_key_file = {:?}\n",
                key_file.display().to_string()
            ));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out.push_str(&format!(
        "\n[directory]\nmax_staleness_secs = {max_staleness_secs}\nconnect_timeout_ms = 1000\n"
    ));
    std::fs::write(&path, out).unwrap();
    path
}

fn client(s: &Running, key: (&str, &str)) -> Client {
    support::proxy_client(&s.endpoint, key.0, key.1, None)
}

/// The status of a PUT (200, or the S3 error's status).
async fn put_status(c: &Client, bucket: &str, key: &str) -> u16 {
    let r = support::within(
        "put",
        c.put_object()
            .bucket(bucket)
            .key(key)
            .body(ByteStream::from_static(b"x"))
            .send(),
    )
    .await;
    match r {
        Ok(_) => 200,
        Err(e) => e.raw_response().map_or(0, |r| r.status().as_u16()),
    }
}

/// Polls `f` until it answers `want`, for at most `secs`; the last answer.
async fn until<F: std::future::Future<Output = u16>>(
    what: &str,
    secs: u64,
    want: u16,
    mut f: impl FnMut() -> F,
) -> u16 {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let got = f().await;
        if got == want {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: still {got}, not {want}, after {secs} s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_sidecars_on_one_directory_enforce_a_feature_switched_off_and_refuse_a_bad_row() {
    let _ = cluster();
    let key = DirectoryKey::generate();
    let url = directory_with_example_tenants(postgres(), "two_replicas", &key).await;
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let a = start_sidecar(&directory_config(dirs[0].path(), &url, &key, 60)).await;
    let b = start_sidecar(&directory_config(dirs[1].path(), &url, &key, 60)).await;
    let (ga, gb) = (client(&a, GLOBEX), client(&b, GLOBEX));
    let nps = unique("nps/list") + ".csv";

    // globex has the NPS add-on: both replicas store its NPS lists (in the US).
    assert_eq!(put_status(&ga, "globex", &nps).await, 200);
    assert_eq!(put_status(&gb, "globex", &nps).await, 200);
    assert_eq!(regions_holding("globex", &nps).await, ["us"]);

    // `residency tenants set globex --remove-feature nps`, as the CLI does it.
    let mut admin = pg::connect_client(&url, Duration::from_secs(5))
        .await
        .unwrap();
    pg::set_features(
        &mut admin,
        "globex",
        FeatureChange::Remove(vec!["nps".into()]),
        &policy(),
    )
    .await
    .unwrap();
    // Both replicas enforce it (the one-second figure is a benchmark's).
    let after = unique("nps/after") + ".csv";
    until("replica a refuses NPS", 10, 403, || {
        put_status(&ga, "globex", &after)
    })
    .await;
    until("replica b refuses NPS", 10, 403, || {
        put_status(&gb, "globex", &after)
    })
    .await;
    // A write a replica accepted before the change reached it is stored
    // (that window is what max_staleness bounds); once both refuse, a write
    // of the category stores nothing anywhere.
    let refused = unique("nps/refused") + ".csv";
    assert_eq!(put_status(&ga, "globex", &refused).await, 403);
    assert_eq!(put_status(&gb, "globex", &refused).await, 403);
    assert!(regions_holding("globex", &refused).await.is_empty());

    // A row written past the CLI that the policy refuses: that tenant alone
    // is refused (403, the reason in the message), every other one serves.
    admin
        .execute(
            "UPDATE tenants SET locality = 'mars' WHERE id = 'initech'",
            &[],
        )
        .await
        .unwrap();
    let ia = client(&a, INITECH);
    let k = unique("tickets/t") + ".json";
    until("initech refused", 10, 403, || {
        put_status(&ia, "initech", &k)
    })
    .await;
    let err = ia
        .put_object()
        .bucket("initech")
        .key(&k)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    let msg = format!("{:?}", err.into_service_error());
    assert!(
        msg.contains("mars"),
        "the refusal names the bad value: {msg}"
    );
    assert!(regions_holding("initech", &k).await.is_empty());
    assert_eq!(put_status(&client(&a, ACME), "acme", &k).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_directory_outage_serves_cached_tenants_until_max_staleness_then_fails_closed() {
    let _ = cluster();
    let pg_cluster = PostgresCluster::start().expect("a PostgreSQL of this test's own");
    let key = DirectoryKey::generate();
    let url = directory_with_example_tenants(&pg_cluster, "outage", &key).await;
    let dir = tempfile::tempdir().unwrap();
    let s = start_sidecar(&directory_config(dir.path(), &url, &key, 2)).await;
    let acme = client(&s, ACME);
    let warm = unique("tickets/warm") + ".json";
    assert_eq!(put_status(&acme, "acme", &warm).await, 200);

    pg_cluster.stop();
    // A tenant never looked up: refused at once, 503, nothing stored.
    let cold = unique("tickets/cold") + ".json";
    let started = Instant::now();
    assert_eq!(
        put_status(&client(&s, INITECH), "initech", &cold).await,
        503
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // The cached tenant: served, then refused once max_staleness has passed.
    let during = unique("tickets/during") + ".json";
    let first = put_status(&acme, "acme", &during).await;
    // A new key per attempt: the refused one must be stored nowhere.
    let deadline = Instant::now() + Duration::from_secs(15);
    let refused = loop {
        let k = unique("tickets/stale") + ".json";
        match put_status(&acme, "acme", &k).await {
            503 => break k,
            200 => assert!(
                Instant::now() < deadline,
                "acme still served 15 s after the stop"
            ),
            other => panic!("acme during the outage: {other}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        regions_holding("acme", &refused).await.is_empty(),
        "nothing written once stale"
    );
    assert!(regions_holding("initech", &cold).await.is_empty());
    // (The first PUT right after the stop is within the bound: served.)
    assert_eq!(
        first, 200,
        "a cached tenant keeps serving within max_staleness"
    );
    let ready = reqwest_status(&format!("http://{}/readyz", s.admin)).await;
    assert_eq!(ready, 503, "/readyz says the directory is unavailable");

    // Restarted: the same sidecar serves again.
    pg_cluster.restart().expect("restart PostgreSQL");
    let again = unique("tickets/again") + ".json";
    until("acme served again", 20, 200, || {
        put_status(&acme, "acme", &again)
    })
    .await;
    let initech = client(&s, INITECH);
    until("initech served", 20, 200, || {
        put_status(&initech, "initech", &cold)
    })
    .await;
    assert_eq!(regions_holding("initech", &cold).await, ["us"]);
}

/// The status of a GET on the admin listener (a plain HTTP/1.0 request).
async fn reqwest_status(url: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").unwrap();
    let (addr, path) = rest.split_once('/').unwrap();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(format!("GET /{path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut answer = String::new();
    support::within("readyz", stream.read_to_string(&mut answer))
        .await
        .unwrap();
    answer
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {answer:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_locality_change_through_residency_migrate_is_enforced_by_both_replicas() {
    use residency_migrate::{
        DirectorySource, MigrationOptions, Migrator, ProgressMode, TenantSource,
    };
    let _ = cluster();
    let key = DirectoryKey::generate();
    let url = directory_with_example_tenants(postgres(), "migrate_replicas", &key).await;
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let configs = [
        directory_config(dirs[0].path(), &url, &key, 1),
        directory_config(dirs[1].path(), &url, &key, 1),
    ];
    let a = start_sidecar(&configs[0]).await;
    let b = start_sidecar(&configs[1]).await;
    let (ia, ib) = (client(&a, INITECH), client(&b, INITECH));
    // initech has no locality: its tickets go to the default region, us.
    let before = unique("tickets/before") + ".json";
    assert_eq!(put_status(&ia, "initech", &before).await, 200);
    assert_eq!(
        put_status(&ib, "initech", &(before.clone() + "b")).await,
        200
    );
    assert_eq!(regions_holding("initech", &before).await, ["us"]);

    // `residency migrate --tenant initech --to eu`, through the directory.
    let config = residency_proxy::Config::load(&configs[0]).unwrap();
    let backends = config.open_backends().await.unwrap();
    let mut o = MigrationOptions::new("initech", "eu");
    o.progress = ProgressMode::Quiet;
    let migrator = Migrator::with_source(
        policy(),
        TenantSource::Directory(DirectorySource::new(&url, Duration::from_secs(1))),
        backends,
        o,
    );
    support::within("migrate", migrator.run())
        .await
        .expect("migration");

    // Both replicas now place initech's tickets in the EU, and read the
    // migrated one there.
    for (name, c) in [("a", &ia), ("b", &ib)] {
        let k = unique(&format!("tickets/after-{name}")) + ".json";
        assert_eq!(put_status(c, "initech", &k).await, 200);
        assert_eq!(
            regions_holding("initech", &k).await,
            ["eu"],
            "replica {name}"
        );
        let got = c.get_object().bucket("initech").key(&before).send().await;
        assert!(
            got.is_ok(),
            "replica {name} reads the migrated object: {got:?}"
        );
    }
    assert!(regions_holding("initech", &before).await.contains(&"eu"));
}

/// Buckets a tenant creates are kept in the directory: one replica creates,
/// the other serves it at once; names are unique across tenants; a bucket
/// with objects is not deleted, nor one whose emptiness a region cannot
/// confirm (503, the bucket stays); a deletion through one replica is seen
/// by the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn buckets_created_through_one_replica_are_served_by_the_other_and_deleted_only_when_empty() {
    let eu: std::net::SocketAddr = cluster()
        .eu()
        .endpoint
        .trim_start_matches("http://")
        .parse()
        .expect("eu endpoint");
    let relay = FaultProxy::start(eu).await;
    let key = DirectoryKey::generate();
    let url = directory_with_example_tenants(postgres(), "created_buckets", &key).await;
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let a = start_sidecar(&directory_config(dirs[0].path(), &url, &key, 60)).await;
    let b_options = SidecarOptions {
        eu_endpoint: Some(relay.endpoint()),
        backend_timeout_secs: 2,
        ..SidecarOptions::default()
    };
    let b = start_sidecar(&directory_config_with(
        dirs[1].path(),
        &url,
        &key,
        60,
        &b_options,
    ))
    .await;
    let (aa, ab) = (client(&a, ACME), client(&b, ACME));
    let bucket = unique("shared");

    // Replica b does not know it yet (and caches that)...
    expect_s3_error(
        "head before",
        ab.head_bucket().bucket(&bucket).send().await,
        404,
        "NotFound",
    );
    // ... a creates it; b serves it within a bounded time.
    aa.create_bucket().bucket(&bucket).send().await.unwrap();
    until("replica b sees the new bucket", 10, 200, || async {
        match ab.head_bucket().bucket(&bucket).send().await {
            Ok(_) => 200,
            Err(e) => e.raw_response().map_or(0, |r| r.status().as_u16()),
        }
    })
    .await;
    let names: Vec<String> = ab
        .list_buckets()
        .send()
        .await
        .unwrap()
        .buckets()
        .iter()
        .filter_map(|b| b.name().map(str::to_owned))
        .collect();
    assert!(
        names.contains(&bucket) && names.contains(&"acme".to_owned()),
        "{names:?}"
    );

    // Written through b: ticket data in acme's EU, in the bucket's namespace.
    assert_eq!(put_status(&ab, &bucket, "tickets/1.json").await, 200);
    let stored = format!("~bucket/{bucket}/tickets/1.json");
    assert_eq!(regions_holding("acme", &stored).await, ["eu"]);

    // The name is the deployment's: another tenant cannot take it.
    expect_s3_error(
        "globex takes the name",
        client(&b, GLOBEX)
            .create_bucket()
            .bucket(&bucket)
            .send()
            .await,
        409,
        "BucketAlreadyExists",
    );
    expect_s3_error(
        "delete a bucket with an object",
        aa.delete_bucket().bucket(&bucket).send().await,
        409,
        "BucketNotEmpty",
    );
    aa.delete_object()
        .bucket(&bucket)
        .key("tickets/1.json")
        .send()
        .await
        .unwrap();

    // The EU cannot answer through b: the deletion fails closed, the bucket stays.
    relay.set(Fault::Http503);
    let f = support::failure(
        "delete with the EU down",
        ab.delete_bucket().bucket(&bucket).send().await,
    );
    assert_eq!(f.status, 503, "{f:?}");
    aa.head_bucket().bucket(&bucket).send().await.unwrap();
    relay.set(Fault::Pass);

    ab.delete_bucket().bucket(&bucket).send().await.unwrap();
    until("replica a sees the deletion", 10, 404, || async {
        match aa.head_bucket().bucket(&bucket).send().await {
            Ok(_) => 200,
            Err(e) => e.raw_response().map_or(0, |r| r.status().as_u16()),
        }
    })
    .await;
    expect_s3_error(
        "put into the deleted bucket",
        aa.put_object()
            .bucket(&bucket)
            .key("tickets/2.json")
            .body(ByteStream::from_static(b"x"))
            .send()
            .await,
        404,
        "NoSuchBucket",
    );
}
