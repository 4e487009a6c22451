//! The PostgreSQL directory against a real PostgreSQL (one cluster for this
//! binary, a database per test): import, lookups equal to the file's,
//! export, sealed secrets and key rotation, changes seen through
//! LISTEN/NOTIFY (also across a killed notification connection), bad rows
//! refused for their tenant alone, the schema's constraints.

#![cfg(feature = "postgres")]

mod support;

use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use futures::StreamExt;
use residency_directory::postgres::{
    begin_migration, connect_client, export, finish_migration, import, rotate_key, set_features,
    show, FeatureChange, PgError, METRIC_REFUSED,
};
use residency_directory::{
    ActsFor, Directory, DirectoryError, DirectoryKey, FileDirectory, PgDirectory,
};
use residency_policy::{Policy, Tenant, TenantRecord, Tenants};
use residency_testkit::PostgresCluster;
use support::*;
use tokio_postgres::error::SqlState;

static PG: LazyLock<PostgresCluster> =
    LazyLock::new(|| PostgresCluster::start().expect("start PostgreSQL"));

async fn client(url: &str) -> tokio_postgres::Client {
    connect_client(url, Duration::from_secs(5)).await.unwrap()
}

#[tokio::test]
async fn import_answers_as_the_file_does_and_exports_back() {
    let url = database(&PG, "import_file");
    let key = DirectoryKey::generate();
    let policy = policy();
    let (dir, report) = imported(&url, &key).await;
    assert_eq!(
        (report.added, report.changed, report.unchanged),
        (4, 0, 0),
        "{report:?}"
    );
    assert_eq!((report.keys_added, report.keys_changed), (5, 0));

    let file = FileDirectory::new(tenants(&policy).into(), resolve).unwrap();
    // The same tenant: record and handle (a directory's tenant carries no
    // keys: access keys are looked up on their own).
    let same = |t: Option<Arc<Tenant>>| t.map(|t| (t.handle(), TenantRecord::of(&t, &policy)));
    for (_, t) in file.file().iter() {
        let want = same(Some(file.file().shared(t.handle()).clone()));
        let by_id = same(
            within("tenant", 5, dir.tenant(&policy, t.id()))
                .await
                .unwrap(),
        );
        assert_eq!(by_id, want, "tenant {}", t.id());
        let by_bucket = same(
            within("bucket", 5, dir.tenant_by_bucket(&policy, t.bucket()))
                .await
                .unwrap(),
        );
        assert_eq!(by_bucket, want, "bucket {}", t.bucket());
        // Cached now: answered at once.
        cache_tenant(&dir, &policy, t.id()).await;
        let again = dir.tenant(&policy, t.id());
        assert!(again.is_ready(), "a cached tenant is answered at once");
        assert_eq!(same(again.now().unwrap().unwrap()), want);
        cache_bucket(&dir, &policy, t.bucket()).await;
        for k in t.keys() {
            let grant = within("key", 5, dir.access_key(&k.access_key))
                .await
                .unwrap();
            assert_eq!(grant, file.grant(&k.access_key).cloned());
            cache_key(&dir, &k.access_key).await;
        }
    }
    let service = within("service key", 5, dir.access_key("APPSERVEREXAMPLEKEY"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(Some(&service), file.grant("APPSERVEREXAMPLEKEY"));
    assert!(matches!(service.acts_for(), ActsFor::Tenants(ts) if ts.len() == 3));
    assert_eq!(
        within("absent", 5, dir.tenant(&policy, "nobody")).await,
        Ok(None)
    );
    cache_tenant(&dir, &policy, "nobody").await; // absence is cached
    assert_eq!(
        within(
            "absent bucket",
            5,
            dir.tenant_by_bucket(&policy, "no-bucket")
        )
        .await,
        Ok(None)
    );
    assert_eq!(
        within("absent key", 5, dir.access_key("NOKEY")).await,
        Ok(None)
    );

    // Another policy parse: validated again, same answer.
    let policy2 = support::policy();
    let t = within("tenant", 5, dir.tenant(&policy2, "acme"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        TenantRecord::of(&t, &policy2).locality.as_deref(),
        Some("eu")
    );

    let listed: Vec<_> = within("tenants", 5, dir.tenants(&policy).collect::<Vec<_>>()).await;
    let ids: Vec<_> = listed
        .iter()
        .map(|t| t.as_ref().unwrap().id().to_owned())
        .collect();
    assert_eq!(ids, ["acme", "eurobank", "globex", "initech"]);
    let health = dir.health();
    assert_eq!(health.source, "postgresql");
    assert!(health.available, "{health:?}");

    // A second import changes nothing.
    let mut c = client(&url).await;
    let again = import(&mut c, &tenants(&policy), &policy, resolve, &key)
        .await
        .unwrap();
    assert!(again.is_unchanged(), "{again:?}");
    assert_eq!(again.unchanged, 4);

    // Export: placeholders by default, the records round-trip.
    let exported = export(&c, None).await.unwrap();
    assert!(!exported.contains("example-secret-key"), "{exported}");
    assert!(exported.contains("secret_env = \"RESIDENCY_SECRET_ACMEEXAMPLEKEY\""));
    let back = Tenants::from_toml(&exported, "exported.toml", &policy).unwrap();
    let records = |ts: &Tenants| -> Vec<TenantRecord> {
        ts.iter()
            .map(|(_, t)| TenantRecord::of(t, &policy))
            .collect()
    };
    assert_eq!(records(&back), records(file.file()));
    let with_secrets = export(&c, Some(std::slice::from_ref(&key))).await.unwrap();
    let back = Tenants::from_toml(&with_secrets, "exported.toml", &policy).unwrap();
    let back = FileDirectory::new(back.into(), resolve).unwrap();
    for ak in [
        "ACMEEXAMPLEKEY",
        "APPSERVEREXAMPLEKEY",
        "EUROBANKEXAMPLEKEY",
    ] {
        assert_eq!(back.grant(ak), file.grant(ak), "{ak}");
    }

    // A locality change is refused unless the file shows the migration.
    let moved = TENANTS.replacen("locality = \"eu\"\nstrict = false", "locality = \"us\"", 1);
    let moved_file = Tenants::from_toml(&moved, "t.toml", &policy).unwrap();
    let err = import(&mut c, &moved_file, &policy, resolve, &key)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, PgError::Invalid(r) if r[0].contains("residency migrate")),
        "{err}"
    );
    let acme = show(&c, "acme").await.unwrap().unwrap();
    assert_eq!(
        acme.record.locality.as_deref(),
        Some("eu"),
        "nothing written"
    );
    assert_eq!(acme.keys, ["ACMEEXAMPLEKEY"]);
    assert_eq!(acme.service_keys, ["APPSERVEREXAMPLEKEY"]);
    let migrating = moved.replacen(
        "locality = \"us\"",
        "locality = \"us\"\nmigrating_from = \"eu\"",
        1,
    );
    let migrating = Tenants::from_toml(&migrating, "t.toml", &policy).unwrap();
    let r = import(&mut c, &migrating, &policy, resolve, &key)
        .await
        .unwrap();
    assert_eq!((r.changed, r.unchanged, r.keys_changed), (1, 3, 0), "{r:?}");

    // Two tenants swap buckets in one import.
    let swapped = TENANTS
        .replacen("bucket = \"acme\"", "bucket = \"globex\"", 1)
        .replacen("id = \"globex\"", "id = \"globex\"\nbucket = \"acme\"", 1)
        .replacen(
            "locality = \"eu\"\nstrict = false",
            "locality = \"us\"\nmigrating_from = \"eu\"",
            1,
        );
    let swapped = Tenants::from_toml(&swapped, "t.toml", &policy).unwrap();
    let r = import(&mut c, &swapped, &policy, resolve, &key)
        .await
        .unwrap();
    assert_eq!((r.changed, r.unchanged), (2, 2), "{r:?}");
    eventually("the swapped bucket", 5, || async {
        let t = dir
            .tenant_by_bucket(&policy, "acme")
            .await
            .unwrap()
            .unwrap();
        (t.id() == "globex").then_some(())
    })
    .await;
}

#[tokio::test]
async fn secrets_are_sealed_and_rotate_to_a_new_key() {
    let url = database(&PG, "secrets");
    let old = DirectoryKey::generate();
    let (_dir, _) = imported(&url, &old).await;
    let mut c = client(&url).await;
    let rows = c
        .query(
            "SELECT access_key, secret_nonce || secret_sealed, kek_id FROM keys",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 5);
    for row in &rows {
        let bytes: Vec<u8> = row.get(1);
        assert!(
            !bytes.windows(10).any(|w| w == b"example-se"),
            "a secret in plain text"
        );
        assert_eq!(row.get::<_, &str>(2), old.id());
    }
    let text: String = c
        .query_one("SELECT string_agg(keys::text, ' ') FROM keys", &[])
        .await
        .unwrap()
        .get(0);
    assert!(!text.contains("example-secret"));

    // The wrong key: a clear error, never a secret.
    let wrong = DirectoryKey::generate();
    let dir = PgDirectory::connect(options(&url, &wrong)).await.unwrap();
    let err = within("key", 5, dir.access_key("ACMEEXAMPLEKEY"))
        .await
        .unwrap_err();
    let DirectoryError::Unavailable(msg) = &err else {
        panic!("{err:?}")
    };
    assert!(
        msg.contains("not configured") && msg.contains(old.id()),
        "{msg}"
    );

    // A damaged row: a clear error naming the key, not the secret.
    c.execute(
        "UPDATE keys SET secret_sealed = overlay(secret_sealed placing '\\xff'::bytea from 1) \
         WHERE access_key = 'INITECHEXAMPLEKEY'",
        &[],
    )
    .await
    .unwrap();
    let right = PgDirectory::connect(options(&url, &old)).await.unwrap();
    let err = within("key", 5, right.access_key("INITECHEXAMPLEKEY"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("does not decrypt"), "{err}");
    assert!(!err.to_string().contains("initech-example"), "{err}");
    let policy = policy();
    let fixed = import(&mut c, &tenants(&policy), &policy, resolve, &old)
        .await
        .unwrap();
    assert_eq!(
        fixed.keys_changed, 1,
        "a re-import re-seals the damaged secret"
    );

    // Rotation: both keys accepted while it runs, then only the new one.
    let new = DirectoryKey::generate();
    let both = PgDirectory::connect(residency_directory::PgOptions {
        keys: vec![new.clone(), old.clone()],
        ..options(&url, &new)
    })
    .await
    .unwrap();
    assert!(within("key", 5, both.access_key("ACMEEXAMPLEKEY"))
        .await
        .unwrap()
        .is_some());
    assert_eq!(rotate_key(&mut c, &old, &new).await.unwrap(), 5);
    assert_eq!(
        rotate_key(&mut c, &old, &new).await.unwrap(),
        0,
        "resumable"
    );
    let after = PgDirectory::connect(options(&url, &new)).await.unwrap();
    let grant = within("key", 5, after.access_key("ACMEEXAMPLEKEY"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(grant.secret(), "acme-example-secret-key-change-me");
    let only_old = PgDirectory::connect(options(&url, &old)).await.unwrap();
    assert!(matches!(
        within("key", 5, only_old.access_key("ACMEEXAMPLEKEY")).await,
        Err(DirectoryError::Unavailable(_))
    ));
    // A re-import under the new key changes nothing.
    let r = import(&mut c, &tenants(&policy), &policy, resolve, &new)
        .await
        .unwrap();
    assert!(r.is_unchanged(), "{r:?}");
}

async fn features(dir: &PgDirectory, policy: &Policy, id: &str) -> Vec<String> {
    let t = within("tenant", 5, dir.tenant(policy, id))
        .await
        .unwrap()
        .unwrap();
    TenantRecord::of(&t, policy).features
}

#[tokio::test]
async fn a_change_by_another_connection_reaches_the_cache() {
    let url = database(&PG, "notify");
    let key = DirectoryKey::generate();
    let policy = policy();
    let (dir, _) = imported(&url, &key).await;
    let replica = PgDirectory::connect(options(&url, &key)).await.unwrap();
    assert_eq!(features(&dir, &policy, "acme").await, ["insights"]);
    cache_tenant(&dir, &policy, "acme").await;
    cache_tenant(&replica, &policy, "acme").await;
    let mut c = client(&url).await;
    let (before, after) = set_features(
        &mut c,
        "acme",
        FeatureChange::Add(vec!["nps".into()]),
        &policy,
    )
    .await
    .unwrap();
    assert_eq!(before, ["insights"]);
    assert_eq!(after.len(), 2);
    eventually("the added feature, in both replicas", 5, || async {
        (features(&dir, &policy, "acme").await.len() == 2
            && features(&replica, &policy, "acme").await.len() == 2)
            .then_some(())
    })
    .await;
    set_features(
        &mut c,
        "acme",
        FeatureChange::Remove(vec!["insights".into()]),
        &policy,
    )
    .await
    .unwrap();
    eventually("the removed feature", 5, || async {
        (features(&dir, &policy, "acme").await == ["nps"]).then_some(())
    })
    .await;
    let err = set_features(
        &mut c,
        "acme",
        FeatureChange::Replace(vec!["teleport".into()]),
        &policy,
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("teleport"), "{err}");
    assert!(matches!(
        set_features(&mut c, "nobody", FeatureChange::Add(vec![]), &policy).await,
        Err(PgError::NotFound(_))
    ));

    // A migration: begun in a transaction, seen by the cache, finished.
    let tx = c.transaction().await.unwrap();
    let m = begin_migration(&tx, &policy, "initech", "eu")
        .await
        .unwrap();
    assert_eq!((m.from.as_str(), m.to.as_str()), ("us", "eu"));
    tx.commit().await.unwrap();
    eventually("the migration", 5, || async {
        let t = dir.tenant(&policy, "initech").await.unwrap().unwrap();
        let r = TenantRecord::of(&t, &policy);
        (r.locality.as_deref() == Some("eu") && r.migrating_from.as_deref() == Some("us"))
            .then_some(())
    })
    .await;
    let tx = c.transaction().await.unwrap();
    assert!(
        begin_migration(&tx, &policy, "initech", "us")
            .await
            .is_err(),
        "one at a time"
    );
    drop(tx);
    finish_migration(&c, "initech").await.unwrap();
    let shown = show(&c, "initech").await.unwrap().unwrap().record;
    assert_eq!(shown.migrating_from, None);
    assert_eq!(shown.migrated_from.as_deref(), Some("us"));
    assert!(finish_migration(&c, "initech").await.is_err());
}

#[tokio::test]
async fn a_change_while_the_listener_was_killed_is_enforced() {
    let url = database(&PG, "listener_killed");
    let key = DirectoryKey::generate();
    let policy = policy();
    let (dir, _) = imported(&url, &key).await;
    assert_eq!(features(&dir, &policy, "globex").await.len(), 3);
    cache_tenant(&dir, &policy, "globex").await;
    let mut c = client(&url).await;
    let killed = c
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE application_name = $1 AND datname = current_database()",
            &[&residency_directory::postgres::LISTENER_APPLICATION_NAME],
        )
        .await
        .unwrap();
    assert_eq!(killed.len(), 1, "one listening connection");
    set_features(&mut c, "globex", FeatureChange::Replace(vec![]), &policy)
        .await
        .unwrap();
    eventually("the change made while the listener was down", 5, || async {
        features(&dir, &policy, "globex")
            .await
            .is_empty()
            .then_some(())
    })
    .await;
    eventually("the listener back", 5, || async {
        dir.health().available.then_some(())
    })
    .await;
}

/// Log lines written during a test (the default subscriber of its thread).
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_bad_row_is_refused_for_its_tenant_alone() {
    let recorder = metrics_util::debugging::DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("the only recorder of this binary");
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let url = database(&PG, "bad_rows");
    let key = DirectoryKey::generate();
    let policy = policy();
    let (dir, _) = imported(&url, &key).await;
    let c = client(&url).await;
    c.batch_execute(
        "INSERT INTO tenants (id, locality, bucket) VALUES ('mars-corp', 'mars', 'mars-corp');
         INSERT INTO tenants (id, features, bucket) VALUES ('teleco', '{teleport}', 'teleco-files');",
    )
    .await
    .unwrap();
    let err = within("tenant", 5, dir.tenant(&policy, "mars-corp"))
        .await
        .unwrap_err();
    let DirectoryError::Refused { tenant, reasons } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(tenant, "mars-corp");
    assert!(
        reasons[0].contains("\"mars\", which is not a region"),
        "{reasons:?}"
    );
    let err = within("bucket", 5, dir.tenant_by_bucket(&policy, "teleco-files"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("teleport"), "{err}");
    // Cached refusals answer at once too.
    cache_tenant(&dir, &policy, "mars-corp").await;
    assert!(matches!(
        dir.tenant(&policy, "mars-corp").now(),
        Some(Err(DirectoryError::Refused { .. }))
    ));
    // Everyone else is served.
    assert!(within("tenant", 5, dir.tenant(&policy, "acme"))
        .await
        .unwrap()
        .is_some());
    let listed: Vec<_> = dir.tenants(&policy).collect().await;
    assert_eq!(listed.iter().filter(|t| t.is_ok()).count(), 4);
    assert_eq!(listed.iter().filter(|t| t.is_err()).count(), 2);

    let refused = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .find(|(k, ..)| k.key().name() == METRIC_REFUSED)
        .map(|(.., v)| v);
    assert!(
        matches!(refused, Some(metrics_util::debugging::DebugValue::Counter(n)) if n >= 2),
        "{refused:?}"
    );
    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("mars-corp") && logs.contains("refused") && logs.contains("mars"),
        "{logs}"
    );
}

#[tokio::test]
async fn the_schema_refuses_what_is_structurally_wrong() {
    let url = database(&PG, "constraints");
    let key = DirectoryKey::generate();
    let (_dir, _) = imported(&url, &key).await;
    let c = client(&url).await;
    let code = |r: Result<u64, tokio_postgres::Error>| r.unwrap_err().code().cloned();
    assert_eq!(
        code(
            c.execute(
                "INSERT INTO tenants (id, strict, bucket) VALUES ('x1', true, 'x1')",
                &[]
            )
            .await
        ),
        Some(SqlState::CHECK_VIOLATION),
        "strict without a locality"
    );
    assert_eq!(
        code(
            c.execute(
                "INSERT INTO tenants (id, bucket) VALUES ('x2', 'acme')",
                &[]
            )
            .await
        ),
        Some(SqlState::UNIQUE_VIOLATION),
        "a bucket owned twice"
    );
    assert_eq!(
        code(
            c.execute(
                "INSERT INTO tenants (id, bucket) VALUES ('Bad Id', 'bad-id')",
                &[]
            )
            .await
        ),
        Some(SqlState::CHECK_VIOLATION),
        "a bad tenant id"
    );
    assert_eq!(
        code(
            c.execute(
                "INSERT INTO tenants (id, bucket) VALUES ('acme', 'acme2')",
                &[]
            )
            .await
        ),
        Some(SqlState::UNIQUE_VIOLATION),
        "a tenant twice"
    );
    assert_eq!(
        code(c.execute(
            "INSERT INTO keys (access_key, tenant_id, service, secret_nonce, secret_sealed, kek_id) \
             VALUES ('K1', 'acme', true, '\\x000000000000000000000000000000000000000000000000', '\\x00', 'k')",
            &[]
        ).await),
        Some(SqlState::CHECK_VIOLATION),
        "a key both a tenant's and a service key"
    );
    assert_eq!(
        code(c.execute(
            "INSERT INTO service_key_tenants (access_key, tenant_id) VALUES ('ACMEEXAMPLEKEY', 'globex')",
            &[]
        ).await),
        Some(SqlState::FOREIGN_KEY_VIOLATION),
        "a tenant key cannot act for other tenants"
    );
    assert_eq!(
        code(c.execute("UPDATE keys SET access_key = 'GLOBEXEXAMPLEKEY' WHERE access_key = 'ACMEEXAMPLEKEY'", &[]).await),
        Some(SqlState::UNIQUE_VIOLATION),
        "an access key twice"
    );
}
