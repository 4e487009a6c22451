//! The routing layer over two real S3 servers on 127.0.0.1.
//!
//! `residency-testkit` starts two Garage instances, `eu` (signing region
//! `eu-west-1`, bucket `residency-eu`) and `us` (`us-east-1`, `residency-us`).
//! Writes go through `RoutingLayer` + `RegionalDispatch` over an `S3Backend`
//! per region; then both buckets are listed directly with `aws-sdk-s3` and every
//! object must be in exactly the region the hosting table allows, and nowhere
//! else. The expected placements below are written out by hand from the seed
//! table and the example tenants, not computed by the code under test.

mod support;

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::config::{Credentials, Region};
use residency_store::{
    BoxError, ListRequest, Operation, Outcome, PutMeta, S3Backend, S3BackendConfig, StoreError,
};
use residency_testkit::{GarageCluster, RegionInfo};
use residency_tower::{RoutingError, StorageRequest, StorageResponse, UploadIdCodec};
use support::{
    complete_part_1, copy, create_multipart, dispatch_over, example_layer, head, upload_part,
    Regions,
};
use tower::util::BoxCloneService;
use tower::{Layer, ServiceExt};

/// Bound on each whole test, so a hung server fails the test instead of CI.
const TEST_TIMEOUT: Duration = Duration::from_secs(120);

/// A region's backend, with short timeouts and no retries: a region that is
/// down must fail fast.
fn backend(r: &RegionInfo) -> Arc<S3Backend> {
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

/// A plain SDK client for looking at a bucket directly, around Residency.
fn direct_client(r: &RegionInfo) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::Config::builder()
        .endpoint_url(&r.endpoint)
        .region(Region::new(r.region.clone()))
        .credentials_provider(Credentials::new(
            &r.access_key,
            &r.secret_key,
            None,
            None,
            "s3_regions test",
        ))
        .force_path_style(true)
        .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
        .timeout_config(
            aws_sdk_s3::config::timeout::TimeoutConfig::builder()
                .operation_timeout(Duration::from_secs(10))
                .build(),
        )
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// Every key in a region's bucket, listed with the SDK (all pages).
async fn bucket_keys(r: &RegionInfo) -> BTreeSet<String> {
    let client = direct_client(r);
    let mut keys = BTreeSet::new();
    let mut token = None;
    loop {
        let page = client
            .list_objects_v2()
            .bucket(&r.bucket)
            .set_continuation_token(token.take())
            .send()
            .await
            .unwrap_or_else(|e| panic!("list {}: {e:?}", r.bucket));
        keys.extend(
            page.contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_owned)),
        );
        match page.next_continuation_token() {
            Some(t) => token = Some(t.to_owned()),
            None => return keys,
        }
    }
}

async fn object_bytes(r: &RegionInfo, key: &str) -> Vec<u8> {
    let out = direct_client(r)
        .get_object()
        .bucket(&r.bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("get {key} from {}: {e:?}", r.bucket));
    out.body.collect().await.unwrap().into_bytes().to_vec()
}

fn set(keys: &[&str]) -> BTreeSet<String> {
    keys.iter().map(|k| (*k).to_owned()).collect()
}

type Stack = BoxCloneService<StorageRequest, StorageResponse, BoxError>;

fn stack(cluster: &GarageCluster) -> Stack {
    let codec = UploadIdCodec::new(b"s3 regions test secret".to_vec());
    let regions: Regions = vec![
        ("eu".to_owned(), backend(cluster.eu())),
        ("us".to_owned(), backend(cluster.us())),
    ];
    let dispatch = dispatch_over(&regions, &codec).build();
    BoxCloneService::new(example_layer(&codec).layer(dispatch))
}

async fn put(
    svc: &Stack,
    tenant: &str,
    key: &str,
    meta: PutMeta,
) -> Result<StorageResponse, BoxError> {
    let op = Operation::Put {
        key: key.into(),
        body: format!("{tenant}:{key}").into_bytes().into(),
        meta: Box::new(meta),
    };
    send(svc, tenant, op).await
}

async fn send(svc: &Stack, tenant: &str, op: Operation) -> Result<StorageResponse, BoxError> {
    svc.clone().oneshot(StorageRequest::new(tenant, op)).await
}

fn routing_error(e: &BoxError) -> &RoutingError {
    e.downcast_ref::<RoutingError>()
        .unwrap_or_else(|| panic!("not a RoutingError: {e:?}"))
}

async fn bounded<F: Future<Output = ()>>(f: F) {
    tokio::time::timeout(TEST_TIMEOUT, f)
        .await
        .expect("the test finished in time");
}

/// (tenant, key, content type, region the seed table puts it in)
const WRITES: &[(&str, &str, Option<&str>, &str)] = &[
    // acme: EU locality, not strict, Insights on.
    ("acme", "tickets/1/comment.json", None, "eu"),
    ("acme", "chat/1.json", None, "eu"),
    ("acme", "insights/q1.json", None, "us"), // "Hosted in the US only": out of locality
    ("acme", "talk/recordings/c1.wav", None, "us"), // Twilio, US only
    ("acme", "talk/transcriptions/c1.txt", None, "eu"), // stored in tickets
    ("acme", "guide/images/logo.png", None, "us"), // Guide attachments and images: US only
    ("acme", "guide/articles/a.md", None, "eu"), // Guide content: EEA or US
    ("acme", "backups/2024-01-01.tar", None, "eu"), // the selected region
    // globex: US locality.
    ("globex", "tickets/1/comment.json", None, "us"),
    ("globex", "chat/1.json", None, "eu"), // "Chat Content: EEA only"
    ("globex", "messages/m1.json", None, "us"),
    ("globex", "misc/greeting", Some("text/vtt"), "us"), // content type → transcriptions (follow ticket data)
    // initech: no locality add-on (default region us).
    ("initech", "tickets/1/comment.json", None, "us"),
    ("initech", "chat/1.json", None, "eu"),
    ("initech", "logs/app.log", None, "us"),
    // eurobank: strict EU.
    ("eurobank", "tickets/1/comment.json", None, "eu"),
    ("eurobank", "users/u1.json", None, "eu"),
    ("eurobank", "sms/1.json", None, "eu"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_object_lands_in_its_allowed_region_and_nowhere_else() {
    let cluster = GarageCluster::start().expect("start the garage pair");
    bounded(async {
        let svc = stack(&cluster);
        for (tenant, key, content_type, region) in WRITES {
            let meta = content_type.map(PutMeta::with_content_type).unwrap_or_default();
            let resp = put(&svc, tenant, key, meta)
                .await
                .unwrap_or_else(|e| panic!("put {tenant}/{key}: {e}"));
            assert_eq!(resp.region.as_deref(), Some(*region), "{tenant}/{key}");
        }
        // A multipart upload by a US tenant of EU-only data: created, uploaded
        // and completed in the EU.
        let create = send(&svc, "globex", create_multipart("chat/transcript.log")).await.unwrap();
        assert_eq!(create.region.as_deref(), Some("eu"));
        let Outcome::CreateMultipart(upload_id) = create.outcome else {
            panic!("not a create")
        };
        let part_op = upload_part("chat/transcript.log", upload_id.clone(), "one part");
        let part = send(&svc, "globex", part_op).await.unwrap();
        assert_eq!(part.region.as_deref(), Some("eu"));
        let Outcome::UploadPart(part) = part.outcome else { panic!("not a part") };
        let complete_op = complete_part_1("chat/transcript.log", upload_id, part.etag);
        let done = send(&svc, "globex", complete_op).await.unwrap();
        assert_eq!(done.region.as_deref(), Some("eu"));

        // Now look at the buckets directly, around Residency.
        let expected_eu = set(&[
            "acme/backups/2024-01-01.tar",
            "acme/chat/1.json",
            "acme/guide/articles/a.md",
            "acme/talk/transcriptions/c1.txt",
            "acme/tickets/1/comment.json",
            "eurobank/sms/1.json",
            "eurobank/tickets/1/comment.json",
            "eurobank/users/u1.json",
            "globex/chat/1.json",
            "globex/chat/transcript.log",
            "initech/chat/1.json",
        ]);
        let expected_us = set(&[
            "acme/guide/images/logo.png",
            "acme/insights/q1.json",
            "acme/talk/recordings/c1.wav",
            "globex/messages/m1.json",
            "globex/misc/greeting",
            "globex/tickets/1/comment.json",
            "initech/logs/app.log",
            "initech/tickets/1/comment.json",
        ]);
        let eu = bucket_keys(cluster.eu()).await;
        let us = bucket_keys(cluster.us()).await;
        assert_eq!(eu, expected_eu, "the EU bucket");
        assert_eq!(us, expected_us, "the US bucket");
        assert!(eu.is_disjoint(&us), "an object is in both regions");
        assert_eq!(
            object_bytes(cluster.us(), "acme/insights/q1.json").await,
            b"acme:insights/q1.json"
        );
        assert_eq!(
            object_bytes(cluster.eu(), "globex/chat/transcript.log").await,
            b"one part"
        );

        // Reads through the layer find each object where it is; a listing
        // merges both regions in key order.
        let get_op = Operation::Get {
            key: "chat/1.json".into(),
            range: None,
            sse: Default::default(),
        };
        let get = send(&svc, "globex", get_op).await.unwrap();
        assert_eq!(get.region.as_deref(), Some("eu"));
        let Outcome::Get(out) = get.outcome else { panic!("not a get") };
        assert_eq!(out.body.collect().await.unwrap().as_ref(), b"globex:chat/1.json");
        let list_op = Operation::List {
            request: ListRequest::new(""),
        };
        let list = send(&svc, "acme", list_op).await.unwrap();
        let Outcome::List(page) = list.outcome else { panic!("not a list") };
        let listed: Vec<_> = page.objects.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(
            listed,
            [
                "backups/2024-01-01.tar",
                "chat/1.json",
                "guide/articles/a.md",
                "guide/images/logo.png",
                "insights/q1.json",
                "talk/recordings/c1.wav",
                "talk/transcriptions/c1.txt",
                "tickets/1/comment.json",
            ]
        );

        // Denied writes leave both buckets untouched.
        let denied: &[(&str, &str, Option<&str>, &str)] = &[
            ("eurobank", "talk/recordings/c2.wav", None, "out_of_locality"),
            ("eurobank", "misc/voicemail", Some("audio/wav"), "unclassified"), // audio alone is no call recording
            ("acme", "nps/list.csv", None, "feature_disabled"),
            ("initech", "insights/q1.json", None, "feature_disabled"),
            ("nobody", "tickets/1/comment.json", None, "unknown_tenant"),
            ("acme", "misc/blob.bin", None, "unclassified"),
        ];
        for (tenant, key, content_type, reason) in denied {
            let meta = content_type.map(PutMeta::with_content_type).unwrap_or_default();
            let err = put(&svc, tenant, key, meta).await.unwrap_err();
            match routing_error(&err) {
                RoutingError::Denied(d) => assert_eq!(d.reason, *reason, "{tenant}/{key}"),
                other => panic!("{tenant}/{key}: expected a denial, got {other}"),
            }
        }
        let conflict = StorageRequest::new(
            "globex",
            Operation::Put {
                key: "chat/2.json".into(),
                body: "moved?".into(),
                meta: Default::default(),
            },
        )
        .with_category("ticket_data");
        let err = svc.clone().oneshot(conflict).await.unwrap_err();
        assert!(matches!(routing_error(&err), RoutingError::Denied(d) if d.reason == "category_conflict"));
        // A copy that would move US data into an EU key is denied too.
        let copy = StorageRequest::new(
            "acme",
            copy("insights/q1.json", "tickets/copied.json"),
        );
        let err = svc.clone().oneshot(copy).await.unwrap_err();
        assert!(matches!(routing_error(&err), RoutingError::Denied(d) if d.reason == "cross_region_copy"));

        assert_eq!(bucket_keys(cluster.eu()).await, expected_eu, "the EU bucket changed");
        assert_eq!(bucket_keys(cluster.us()).await, expected_us, "the US bucket changed");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_eu_region_down_eu_writes_fail_and_nothing_goes_to_the_us() {
    let cluster = GarageCluster::start().expect("start the garage pair");
    bounded(async {
        let svc = stack(&cluster);
        // Before: both regions serve.
        put(&svc, "acme", "tickets/before.json", PutMeta::default())
            .await
            .unwrap();
        put(&svc, "globex", "tickets/before.json", PutMeta::default())
            .await
            .unwrap();

        cluster.stop_region("eu").expect("stop eu");
        assert!(!cluster.is_running("eu").unwrap());

        // Every write the policy places in the EU fails with 503, for EU and US
        // tenants alike, and none of them is written to the US instead.
        let eu_writes = [
            ("acme", "tickets/during.json"),
            ("acme", "chat/during.json"),
            ("globex", "chat/during.json"),
            ("initech", "chat/during.json"),
            ("eurobank", "users/during.json"),
            ("eurobank", "backups/during.tar"),
        ];
        for (tenant, key) in eu_writes {
            let err = put(&svc, tenant, key, PutMeta::default())
                .await
                .unwrap_err();
            let e = routing_error(&err);
            match e {
                RoutingError::Store {
                    region,
                    source: StoreError::Unavailable { .. },
                } => assert_eq!(region, "eu", "{tenant}/{key}"),
                other => panic!("{tenant}/{key}: expected eu unavailable, got {other}"),
            }
            assert_eq!(e.http_status(), 503, "{tenant}/{key}");
            assert_eq!(e.s3_code(), "ServiceUnavailable", "{tenant}/{key}");
        }
        // A multipart upload cannot start there either.
        let err = send(&svc, "acme", create_multipart("tickets/big.bin"))
            .await
            .unwrap_err();
        assert_eq!(routing_error(&err).http_status(), 503);
        // A read that would look in the EU first fails instead of answering a
        // false 404 (the object is nowhere, but the EU cannot say so).
        let err = send(&svc, "acme", head("misc/unknown")).await.unwrap_err();
        assert_eq!(routing_error(&err).http_status(), 503);

        // The US region still serves what belongs there.
        let resp = put(&svc, "globex", "tickets/during.json", PutMeta::default())
            .await
            .unwrap();
        assert_eq!(resp.region.as_deref(), Some("us"));
        let resp = put(&svc, "acme", "insights/during.json", PutMeta::default())
            .await
            .unwrap();
        assert_eq!(resp.region.as_deref(), Some("us"));

        assert_eq!(
            bucket_keys(cluster.us()).await,
            set(&[
                "acme/insights/during.json",
                "globex/tickets/before.json",
                "globex/tickets/during.json",
            ]),
            "the US bucket holds exactly the US writes"
        );

        // Back up: the EU still holds only what was written before the outage.
        cluster.restart_region("eu").expect("restart eu");
        assert_eq!(
            bucket_keys(cluster.eu()).await,
            set(&["acme/tickets/before.json"])
        );
    })
    .await;
}
