//! The full life of a disclosure request against real S3 servers (two
//! Garage instances, eu and us) with a webhook receiver on 127.0.0.1:
//! received → on_hold → approved, refusals on the way, a signed notice
//! (retried once) that arrives before the export, the export with its
//! manifest, the ledger in the tenant's home region only, and a tampered
//! ledger detected.

mod support;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use residency_disclosure::{DisclosureError, Event, ExportOptions, Notice, State, Webhook};
use residency_store::{Backend, Body, ListRequest, PutMeta, S3Backend, S3BackendConfig};
use residency_testkit::{GarageCluster, RegionInfo};
use sha2::{Digest, Sha256};
use support::{desk_on, get, keys, request, rules, Receiver};

const TEST_TIMEOUT: Duration = Duration::from_secs(120);
const SECRET: &str = "acme-webhook-secret";

fn backend(r: &RegionInfo) -> Arc<dyn Backend> {
    let config = S3BackendConfig::builder(&r.bucket, &r.region)
        .endpoint(&r.endpoint)
        .credentials(&r.access_key, &r.secret_key)
        .connect_timeout(Duration::from_secs(1))
        .operation_timeout(Duration::from_secs(5))
        .max_attempts(1)
        .build()
        .expect("valid backend config");
    Arc::new(S3Backend::new(config).expect("backend"))
}

async fn put(b: &Arc<dyn Backend>, key: &str, data: &'static [u8]) {
    b.put_object(
        key,
        Body::from_bytes(Bytes::from_static(data)),
        PutMeta::with_content_type("application/json"),
    )
    .await
    .unwrap();
}

async fn keys_under(b: &Arc<dyn Backend>, prefix: &str) -> Vec<String> {
    let page = b.list_objects(ListRequest::new(prefix)).await.unwrap();
    page.objects.into_iter().map(|o| o.key).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_from_receipt_to_export_against_real_s3() {
    tokio::time::timeout(TEST_TIMEOUT, life())
        .await
        .expect("test timed out");
}

async fn life() {
    let cluster = tokio::task::spawn_blocking(GarageCluster::start)
        .await
        .unwrap()
        .expect("Garage starts (see scripts/install-tools.sh)");
    let eu = backend(cluster.eu());
    let us = backend(cluster.us());
    // acme: EU locality; its Insights data is US-only.
    put(&eu, "acme/tickets/1.json", b"{\"subject\":\"one\"}").await;
    put(&eu, "acme/tickets/2.json", b"{\"subject\":\"two\"}").await;
    put(
        &eu,
        "acme/tickets/3.json",
        b"{\"subject\":\"not in scope\"}",
    )
    .await;
    put(&us, "acme/insights/q3.json", b"{\"nps\":42}").await;
    put(&eu, "globex/tickets/1.json", b"{\"other\":\"tenant\"}").await;

    let desk = desk_on(rules(), &eu, &us);
    let receiver = Receiver::start(SECRET, 1).await;
    let webhook = Webhook::new(&receiver.url, SECRET)
        .unwrap()
        .max_attempts(3)
        .backoff(Duration::from_millis(20), Duration::from_millis(100));
    let out = tempfile::tempdir().unwrap();
    let export = |dir: &str| ExportOptions {
        dir: out.path().join(dir),
        raises: vec![],
        reason: None,
        by: "export-operator".into(),
        signer: Some(support::team().1),
    };

    let rec = desk
        .open(
            request(
                "acme",
                keys(&[
                    "tickets/1.json",
                    "tickets/2.json",
                    "insights/q3.json",
                    "tickets/404.json",
                ]),
            ),
            "privacy-team",
            "received by e-mail",
        )
        .await
        .unwrap();
    let id = rec.request.id.clone();
    assert_eq!(id, "acme-1");
    assert_eq!(rec.request.request.country, "DE");

    // Unapproved: refused, and the refusal is on the record.
    let e = desk.export(&id, &export("early")).await.unwrap_err();
    assert!(
        matches!(e, DisclosureError::Refused(ref m) if m.contains("received")),
        "{e}"
    );
    assert_eq!(e.exit_code(), 1);
    assert!(!out.path().join("early").join("manifest.json").exists());

    // Invalid transitions are refused; valid ones carry who and why.
    assert!(matches!(
        desk.transition(&id, State::Fulfilled, "dpo", "skip ahead")
            .await,
        Err(DisclosureError::Refused(_))
    ));
    desk.transition(&id, State::OnHold, "dpo", "consulting the competent DPA")
        .await
        .unwrap();
    assert!(desk
        .transition(&id, State::OnHold, "dpo", "again")
        .await
        .is_err());
    support::approve_both(&desk, &id).await;

    // Approved but not notified: refused.
    let e = desk.export(&id, &export("unnotified")).await.unwrap_err();
    assert!(e.to_string().contains("not been notified"), "{e}");
    assert!(receiver.notices().is_empty());

    // Notice: the first attempt gets a 503, the retry is accepted.
    let rec = desk.notify(&id, &webhook, "privacy-team").await.unwrap();
    assert!(matches!(rec.notice, Notice::Sent { .. }));
    let notices = receiver.notices();
    assert_eq!(notices.len(), 1);
    assert!(notices[0].signature_ok, "the HMAC signature verifies");
    assert_eq!(notices[0].body["request"]["id"], "acme-1");
    assert_eq!(notices[0].body["request"]["authority"], "Bundeskriminalamt");
    assert_eq!(receiver.hits.load(std::sync::atomic::Ordering::SeqCst), 2);
    let Some(Event::Notified {
        attempts, status, ..
    }) = rec
        .history
        .iter()
        .rev()
        .map(|e| &e.event)
        .find(|e| matches!(e, Event::Notified { .. }))
    else {
        panic!("no notified entry")
    };
    assert_eq!((*attempts, *status), (2, 204));
    // Notifying twice is refused.
    assert!(desk.notify(&id, &webhook, "privacy-team").await.is_err());

    // The export: exactly the objects in scope, from both regions.
    let manifest = desk.export(&id, &export("acme-1")).await.unwrap();
    let listed: Vec<_> = manifest
        .objects
        .iter()
        .map(|o| (o.key.as_str(), o.region.as_str()))
        .collect();
    assert_eq!(
        listed,
        [
            ("insights/q3.json", "us"),
            ("tickets/1.json", "eu"),
            ("tickets/2.json", "eu")
        ]
    );
    assert_eq!(manifest.missing, ["tickets/404.json"]);
    assert_eq!(manifest.categories, ["insights", "ticket_data"]);
    for o in &manifest.objects {
        let bytes = std::fs::read(out.path().join("acme-1").join(&o.file)).unwrap();
        assert_eq!(bytes.len() as u64, o.size);
        assert_eq!(hex::encode(Sha256::digest(&bytes)), o.sha256);
    }
    assert!(!out.path().join("acme-1/objects/tickets/3.json").exists());
    let on_disk: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("acme-1/manifest.json")).unwrap())
            .unwrap();
    assert_eq!(on_disk["total_objects"], 3);
    // Notice arrived before anything was disclosed.
    let exported_at = manifest.exported_at.clone();
    assert!(residency_disclosure::rfc3339(notices[0].at) <= exported_at);

    let rec = desk.get(&id).await.unwrap();
    assert_eq!(rec.state, State::Fulfilled);
    let kinds: Vec<_> = rec.history.iter().map(|e| e.event.kind()).collect();
    assert_eq!(
        kinds,
        [
            "opened",
            "export_refused",
            "transition",
            "approval",
            "approval",
            "transition",
            "export_refused",
            "notified",
            "exported",
            "transition"
        ]
    );
    assert!(rec
        .history
        .iter()
        .all(|e| !e.by.is_empty() && !e.why.is_empty()));
    // Final: nothing more.
    assert!(desk.export(&id, &export("again")).await.is_err());
    assert!(desk
        .transition(&id, State::Refused, "dpo", "too late")
        .await
        .is_err());

    // The ledger is in acme's home region (eu), outside its namespace, and nowhere else.
    let ledger = keys_under(&eu, "_disclosure/acme/").await;
    assert_eq!(ledger.len(), rec.history.len() + 1, "{ledger:?}");
    assert!(ledger.contains(&"_disclosure/acme/head.json".to_owned()));
    assert!(keys_under(&us, "_disclosure/").await.is_empty());
    assert!(keys_under(&eu, "acme/_disclosure").await.is_empty());
    let report = desk.verify("acme").await.unwrap();
    assert!(report.ok, "{report:?}");

    // Tampering in the bucket is detected: one byte of entry 2 edited.
    let key = "_disclosure/acme/ledger/0000000002.json";
    let original = get(&eu, key).await;
    let edited = String::from_utf8(original.clone())
        .unwrap()
        .replace("DPA", "DPB");
    put_owned(&eu, key, edited.into_bytes()).await;
    let report = desk.verify("acme").await.unwrap();
    assert!(!report.ok);
    assert!(
        report.problems.iter().any(|p| p.contains("entry 3")),
        "{:?}",
        report.problems
    );
    // A damaged ledger is not used.
    assert!(matches!(
        desk.get(&id).await,
        Err(DisclosureError::Damaged { .. })
    ));
    put_owned(&eu, key, original).await;
    assert!(desk.verify("acme").await.unwrap().ok);
    drop(cluster);
}

async fn put_owned(b: &Arc<dyn Backend>, key: &str, data: Vec<u8>) {
    b.put_object(key, Body::from_bytes(Bytes::from(data)), PutMeta::default())
        .await
        .unwrap();
}
