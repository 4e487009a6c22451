//! The routing layer through its public API, over two in-memory regions.
//!
//! Every test builds the stack the way an application does:
//! `RoutingLayer` → (a counting service) → `RegionalDispatch` → one
//! `MemoryBackend` per region, under the default hosting policy and the example
//! tenants in `config/`:
//!
//! | tenant     | locality | strict | features                    |
//! |------------|----------|--------|-----------------------------|
//! | `acme`     | eu       | no     | insights                    |
//! | `globex`   | us       | no     | insights, nps, spam_filter  |
//! | `initech`  | (none)   | no     | (none)                      |
//! | `eurobank` | eu       | yes    | nps                         |

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use residency_store::{
    Backend, BoxError, ListPage, ListRequest, MemoryBackend, Operation, Outcome, PutMeta,
    StoreError,
};
use residency_tower::{
    AuditEvent, MemoryAuditSink, RoutingError, RoutingLayer, RulesetHandle, StorageRequest,
    StorageResponse, UploadIdCodec,
};
use support::{
    complete_part_1, copy, create_multipart, head, rules, rules_from, upload_part, MemoryRegions,
    TENANTS,
};
use tower::util::BoxCloneService;
use tower::{Layer, ServiceExt};

/// The stack under test and handles on everything around it.
struct Stack {
    eu: Arc<MemoryBackend>,
    us: Arc<MemoryBackend>,
    audit: MemoryAuditSink,
    handle: RulesetHandle,
    codec: UploadIdCodec,
    /// How many requests reached the service behind the layer.
    inner_calls: Arc<AtomicUsize>,
    svc: BoxCloneService<StorageRequest, StorageResponse, BoxError>,
}

impl Stack {
    fn new() -> Self {
        let regions = MemoryRegions::new();
        let codec = UploadIdCodec::new(b"layer test secret".to_vec());
        let dispatch = regions.dispatch(&codec).build();
        let inner_calls = Arc::new(AtomicUsize::new(0));
        let counted = {
            let n = inner_calls.clone();
            tower::service_fn(move |req: StorageRequest| {
                n.fetch_add(1, Ordering::SeqCst);
                dispatch.clone().oneshot(req)
            })
        };
        let audit = MemoryAuditSink::new();
        let handle = RulesetHandle::new(rules());
        let layer = RoutingLayer::new(handle.clone())
            .upload_ids(codec.clone())
            .audit(audit.clone());
        Self {
            eu: regions.eu,
            us: regions.us,
            audit,
            handle,
            codec,
            inner_calls,
            svc: BoxCloneService::new(layer.layer(counted)),
        }
    }

    async fn send(&self, req: StorageRequest) -> Result<StorageResponse, BoxError> {
        self.svc.clone().oneshot(req).await
    }

    async fn put(
        &self,
        tenant: &str,
        key: &str,
        meta: PutMeta,
    ) -> Result<StorageResponse, BoxError> {
        self.send_op(tenant, put_op(key, meta)).await
    }

    async fn send_op(&self, tenant: &str, op: Operation) -> Result<StorageResponse, BoxError> {
        self.send(StorageRequest::new(tenant, op)).await
    }

    async fn put_typed(
        &self,
        tenant: &str,
        key: &str,
        content_type: &str,
    ) -> Result<StorageResponse, BoxError> {
        self.put(tenant, key, PutMeta::with_content_type(content_type))
            .await
    }

    /// A put with default metadata that must fail: its error.
    async fn put_err(&self, tenant: &str, key: &str) -> BoxError {
        self.put(tenant, key, PutMeta::default()).await.unwrap_err()
    }

    async fn head(&self, tenant: &str, key: &str) -> Result<StorageResponse, BoxError> {
        self.send_op(tenant, head(key)).await
    }

    /// One page of `tenant`'s listing.
    async fn list(&self, tenant: &str, request: ListRequest) -> ListPage {
        let resp = self
            .send_op(tenant, Operation::List { request })
            .await
            .unwrap();
        let Outcome::List(page) = resp.outcome else {
            panic!("not a list")
        };
        page
    }

    /// Puts and returns the region it landed in.
    async fn put_ok(&self, tenant: &str, key: &str) -> String {
        let resp = self
            .put(tenant, key, PutMeta::default())
            .await
            .unwrap_or_else(|e| panic!("put {tenant}/{key}: {e}"));
        assert!(matches!(resp.outcome, Outcome::Put(_)));
        resp.region
            .expect("a put is served by one region")
            .to_string()
    }

    fn inner_calls(&self) -> usize {
        self.inner_calls.load(Ordering::SeqCst)
    }

    fn backend_calls(&self) -> u64 {
        self.eu.calls() + self.us.calls()
    }
}

fn put_op(key: &str, meta: PutMeta) -> Operation {
    Operation::Put {
        key: key.into(),
        body: format!("body of {key}").into_bytes().into(),
        meta: Box::new(meta),
    }
}

/// A put of `key` labelled with `category`.
fn labelled_put(tenant: &str, key: &str, category: &str) -> StorageRequest {
    StorageRequest::new(tenant, put_op(key, PutMeta::default())).with_category(category)
}

fn routing_error(e: &BoxError) -> &RoutingError {
    e.downcast_ref::<RoutingError>()
        .unwrap_or_else(|| panic!("not a RoutingError: {e:?}"))
}

/// The denial reason of an error, panicking if it is not a denial.
fn denial(e: &BoxError) -> &'static str {
    match routing_error(e) {
        RoutingError::Denied(d) => d.reason,
        other => panic!("expected a denial, got {other}"),
    }
}

fn last_event(audit: &MemoryAuditSink) -> AuditEvent {
    audit.events().pop().expect("an audit event")
}

// --- decisions -----------------------------------------------------------------

#[tokio::test]
async fn allow_in_locality_lands_in_the_tenants_region() {
    let s = Stack::new();
    assert_eq!(s.put_ok("acme", "tickets/1/comment.json").await, "eu");
    assert_eq!(s.put_ok("globex", "tickets/1/comment.json").await, "us");
    assert_eq!(s.eu.keys(), ["acme/tickets/1/comment.json"]);
    assert_eq!(s.us.keys(), ["globex/tickets/1/comment.json"]);
    let e = last_event(&s.audit);
    assert_eq!(e.reason, "tenant_locality");
    assert!(!e.out_of_locality);
}

#[tokio::test]
async fn out_of_locality_for_a_non_strict_tenant_goes_to_the_allowed_region() {
    let s = Stack::new();
    // "Insights: Available to be Hosted in the US only"; acme is EU, not strict.
    assert_eq!(s.put_ok("acme", "insights/q1.json").await, "us");
    // "Chat Content: Available to be Hosted in the EEA only"; globex is US.
    assert_eq!(s.put_ok("globex", "chat/7.json").await, "eu");
    assert_eq!(s.us.keys(), ["acme/insights/q1.json"]);
    assert_eq!(s.eu.keys(), ["globex/chat/7.json"]);
    let e = last_event(&s.audit);
    assert_eq!(e.decision, "allow");
    assert_eq!(e.reason, "category_region");
    assert!(e.out_of_locality);
}

#[tokio::test]
async fn strict_tenant_is_denied_outside_its_locality() {
    let s = Stack::new();
    let err = s.put_err("eurobank", "talk/recordings/call.wav").await;
    assert_eq!(denial(&err), "out_of_locality");
    assert_eq!(routing_error(&err).http_status(), 403);
    assert_eq!(routing_error(&err).s3_code(), "AccessDenied");
    // What its locality allows still goes through.
    assert_eq!(s.put_ok("eurobank", "tickets/1.json").await, "eu");
    assert!(s.us.keys().is_empty());
}

#[tokio::test]
async fn feature_disabled_is_denied_in_every_region() {
    let s = Stack::new();
    // "NPS is optional and is disabled by default": acme has only insights.
    let err = s.put_err("acme", "nps/list.csv").await;
    assert_eq!(denial(&err), "feature_disabled");
    let err = s.put_err("initech", "spam/model.bin").await;
    assert_eq!(denial(&err), "feature_disabled");
    // globex enabled both.
    assert_eq!(s.put_ok("globex", "nps/list.csv").await, "us");
    assert_eq!(s.put_ok("globex", "spam/model.bin").await, "us");
    assert_eq!(s.eu.keys().len() + s.us.keys().len(), 2);
}

#[tokio::test]
async fn unknown_tenant_is_denied() {
    let s = Stack::new();
    let err = s.put_err("nobody", "tickets/1.json").await;
    assert_eq!(denial(&err), "unknown_tenant");
    // Reads are refused too: an unknown tenant has no region to look in.
    let err = s.head("nobody", "tickets/1.json").await.unwrap_err();
    assert_eq!(denial(&err), "unknown_tenant");
    assert_eq!(s.inner_calls(), 0);
}

#[tokio::test]
async fn unclassified_payload_is_denied() {
    let s = Stack::new();
    // No key rule, no content type, no explicit category, no default category.
    let err = s.put_err("acme", "misc/blob.bin").await;
    assert_eq!(denial(&err), "unclassified");
    let err = s
        .put_typed("acme", "misc/blob.bin", "application/octet-stream")
        .await
        .unwrap_err();
    assert_eq!(denial(&err), "unclassified");
}

#[tokio::test]
async fn explicit_category_and_conflicts() {
    let s = Stack::new();
    // An explicit category classifies a key no rule knows.
    let req = labelled_put("acme", "misc/profile.json", "user_data");
    assert_eq!(s.send(req).await.unwrap().region.as_deref(), Some("eu"));
    assert_eq!(
        last_event(&s.audit).classified_by.as_deref(),
        Some("explicit")
    );
    // The category header in user metadata counts as explicit too.
    let mut meta = PutMeta::default();
    meta.headers
        .user_metadata
        .insert("residency-category".into(), "call_recordings".into());
    let resp = s.put("acme", "misc/call.bin", meta).await.unwrap();
    assert_eq!(resp.region.as_deref(), Some("us"));
    // A label cannot move EEA-only chat content to the US.
    let req = labelled_put("globex", "chat/1.json", "ticket_data");
    let err = s.send(req).await.unwrap_err();
    assert_eq!(denial(&err), "category_conflict");
    let req = labelled_put("acme", "misc/x", "no_such_category");
    assert_eq!(denial(&s.send(req).await.unwrap_err()), "unknown_category");
    assert_eq!(s.eu.keys(), ["acme/misc/profile.json"]);
    assert_eq!(s.us.keys(), ["acme/misc/call.bin"]);
}

#[tokio::test]
async fn content_type_classifies_when_no_key_rule_matches() {
    let s = Stack::new();
    // "Call Recordings: includes live call recordings and voicemails": audio
    // alone is not one (no audio/* rule), so no rule places this key.
    let err = s
        .put_typed("globex", "misc/greeting", "Audio/OGG; codecs=opus")
        .await
        .unwrap_err();
    assert_eq!(denial(&err), "unclassified");
    // text/vtt → transcriptions (matched case-insensitively, parameters
    // ignored), which follow ticket data: EU for acme.
    let resp = s
        .put_typed("acme", "misc/captions", "Text/VTT; charset=utf-8")
        .await
        .unwrap();
    assert_eq!(resp.region.as_deref(), Some("eu"));
    assert_eq!(
        last_event(&s.audit).category.as_deref(),
        Some("transcriptions")
    );
    // A key rule wins over the content type.
    let resp = s
        .put_typed("acme", "tickets/9/voice.ogg", "audio/ogg")
        .await
        .unwrap();
    assert_eq!(resp.region.as_deref(), Some("eu"));
}

#[tokio::test]
async fn follows_and_backups() {
    let s = Stack::new();
    // Transcriptions, SMS and Explore data follow ticket data's region.
    for key in [
        "talk/transcriptions/1.txt",
        "sms/2.json",
        "explore/app/dash.json",
        "explore/connectors/c.json",
    ] {
        assert_eq!(s.put_ok("acme", key).await, "eu", "acme {key}");
        assert_eq!(s.put_ok("globex", key).await, "us", "globex {key}");
    }
    // Backups and logs follow the selected region (default region without one).
    assert_eq!(s.put_ok("acme", "backups/2024-01-01.tar").await, "eu");
    assert_eq!(s.put_ok("initech", "logs/app.log").await, "us");
    assert_eq!(last_event(&s.audit).reason, "follows_locality");
    // A backup of one category's data takes that category's placement.
    assert_eq!(
        s.put_ok("globex", "backups/chat_content/day1.tar").await,
        "eu"
    );
    let e = last_event(&s.audit);
    assert_eq!(e.category.as_deref(), Some("chat_content"));
    assert_eq!(e.classified_by.as_deref(), Some("category_backup"));
    // No locality: the default region when allowed, else the first allowed one,
    // never out of locality.
    assert_eq!(s.put_ok("initech", "tickets/1.json").await, "us");
    assert_eq!(last_event(&s.audit).reason, "default_region");
    assert_eq!(s.put_ok("initech", "chat/1.json").await, "eu");
    let e = last_event(&s.audit);
    assert_eq!(e.reason, "first_allowed_region");
    assert!(!e.out_of_locality);
}

// --- the layer never lets a denial through ------------------------------------

#[tokio::test]
async fn a_denial_never_reaches_the_inner_service() {
    let s = Stack::new();
    let denied = [
        ("nobody", "tickets/1.json", PutMeta::default()),
        ("eurobank", "talk/recordings/1.wav", PutMeta::default()),
        ("acme", "nps/list.csv", PutMeta::default()),
        ("acme", "misc/unknown", PutMeta::default()),
    ];
    for (tenant, key, meta) in denied {
        let err = s.put(tenant, key, meta).await.unwrap_err();
        assert!(matches!(routing_error(&err), RoutingError::Denied(_)));
    }
    let forged = upload_part("tickets/1.bin", "r1.eu.acme.Zm9v.bm90LWEtbWFj".into(), "x");
    let err = s.send_op("acme", forged).await.unwrap_err();
    assert_eq!(denial(&err), "invalid_upload_id");
    assert_eq!(
        s.inner_calls(),
        0,
        "a denied request reached the inner service"
    );
    assert_eq!(s.backend_calls(), 0, "a denied request reached a backend");
    // And an allowed one does reach it, exactly once.
    s.put_ok("acme", "tickets/1.json").await;
    assert_eq!(s.inner_calls(), 1);
}

// --- reads, lists ----------------------------------------------------------------

#[tokio::test]
async fn reads_try_the_tenants_regions_in_order() {
    let s = Stack::new();
    // A key no rule places, stored only in the second region acme reads from.
    s.us.put_object("acme/misc/only-us.txt", "in us".into(), PutMeta::default())
        .await
        .unwrap();
    let get = |key: &str| {
        StorageRequest::new(
            "acme",
            Operation::Get {
                key: key.into(),
                range: None,
                sse: Default::default(),
            },
        )
    };
    let resp = s.send(get("misc/only-us.txt")).await.unwrap();
    assert_eq!(resp.region.as_deref(), Some("us"));
    let Outcome::Get(out) = resp.outcome else {
        panic!("not a get")
    };
    assert_eq!(
        out.info.key, "misc/only-us.txt",
        "keys come back without the tenant prefix"
    );
    assert_eq!(out.body.collect().await.unwrap().as_ref(), b"in us");
    let e = last_event(&s.audit);
    assert_eq!(e.regions, ["eu", "us"]);

    // Found in neither: a plain not-found.
    let err = s.send(get("misc/nowhere.txt")).await.unwrap_err();
    // Not found in any region: a not-found of the key, from no one region.
    assert!(matches!(
        routing_error(&err),
        RoutingError::NotFound { key } if key == "misc/nowhere.txt"
    ));
    assert_eq!(routing_error(&err).http_status(), 404);

    // A key rule places the read: globex's chat is only looked for in the EU.
    let us_before = s.us.calls();
    let err = s.head("globex", "chat/1.json").await.unwrap_err();
    assert_eq!(routing_error(&err).http_status(), 404);
    assert_eq!(s.us.calls(), us_before);
}

#[tokio::test]
async fn a_region_that_is_down_fails_the_read_instead_of_a_false_not_found() {
    let s = Stack::new();
    s.us.put_object("acme/misc/only-us.txt", "in us".into(), PutMeta::default())
        .await
        .unwrap();
    s.eu.set_unavailable(true);
    let err = s.head("acme", "misc/only-us.txt").await.unwrap_err();
    match routing_error(&err) {
        RoutingError::Store {
            region,
            source: StoreError::Unavailable { .. },
        } => {
            assert_eq!(region, "eu")
        }
        other => panic!("expected eu unavailable, got {other}"),
    }
    assert_eq!(routing_error(&err).http_status(), 503);
    // A write for the EU fails closed: nothing is written to the US instead.
    let us_keys = s.us.keys();
    let err = s.put_err("acme", "tickets/2.json").await;
    assert_eq!(routing_error(&err).http_status(), 503);
    assert_eq!(s.us.keys(), us_keys);
}

#[tokio::test]
async fn listing_merges_regions_in_key_order_across_pages() {
    let s = Stack::new();
    for key in [
        "tickets/c.json",        // eu
        "insights/b.json",       // us (out of locality)
        "chat/a.json",           // eu
        "talk/recordings/d.wav", // us (out of locality)
        "users/e.json",          // eu
    ] {
        s.put_ok("acme", key).await;
    }
    // Another tenant's objects never show up.
    s.put_ok("globex", "chat/zz.json").await;
    s.put_ok("globex", "insights/aa.json").await;
    assert_eq!(s.eu.keys().len(), 4);
    assert_eq!(s.us.keys().len(), 3);

    let mut keys = Vec::new();
    let mut token = None;
    let mut pages = 0;
    loop {
        let req = ListRequest::new("")
            .max_keys(2)
            .continuation_token(token.take());
        let page = s.list("acme", req).await;
        assert!(page.objects.len() <= 2);
        keys.extend(page.objects.into_iter().map(|o| o.key));
        pages += 1;
        match page.next_continuation_token {
            Some(t) => token = Some(t),
            None => break,
        }
        assert!(pages < 10, "the listing does not end");
    }
    assert_eq!(
        keys,
        [
            "chat/a.json",
            "insights/b.json",
            "talk/recordings/d.wav",
            "tickets/c.json",
            "users/e.json"
        ]
    );
    assert_eq!(pages, 3);

    // With a delimiter, common prefixes merge too.
    let page = s.list("acme", ListRequest::new("").delimiter("/")).await;
    assert_eq!(
        page.common_prefixes,
        ["chat/", "insights/", "talk/", "tickets/", "users/"]
    );
}

// --- multipart, copy -----------------------------------------------------------------

async fn create_upload(s: &Stack, tenant: &str, key: &str) -> (String, String) {
    let resp = s.send_op(tenant, create_multipart(key)).await.unwrap();
    let region = resp.region.unwrap().to_string();
    let Outcome::CreateMultipart(id) = resp.outcome else {
        panic!("not a create")
    };
    (id, region)
}

#[tokio::test]
async fn multipart_stays_in_the_region_of_its_create() {
    let s = Stack::new();
    // globex is US, but chat content is EU only: the whole upload goes to the EU.
    let (id, region) = create_upload(&s, "globex", "chat/big.log").await;
    assert_eq!(region, "eu");
    let token = s
        .codec
        .decode(&id)
        .expect("the id is signed by the shared codec");
    assert_eq!(
        (token.region.as_str(), token.tenant.as_str()),
        ("eu", "globex")
    );

    let resp = s
        .send_op(
            "globex",
            upload_part("chat/big.log", id.clone(), "part one"),
        )
        .await
        .unwrap();
    assert_eq!(resp.region.as_deref(), Some("eu"));
    let Outcome::UploadPart(part) = resp.outcome else {
        panic!("not a part")
    };
    assert_eq!(last_event(&s.audit).reason, "upload_region");

    let resp = s
        .send_op("globex", complete_part_1("chat/big.log", id, part.etag))
        .await
        .unwrap();
    assert_eq!(resp.region.as_deref(), Some("eu"));
    assert_eq!(s.eu.keys(), ["globex/chat/big.log"]);
    assert_eq!(
        s.eu.object_bytes("globex/chat/big.log").unwrap().as_ref(),
        b"part one"
    );
    assert!(s.us.keys().is_empty());
}

#[tokio::test]
async fn forged_or_foreign_upload_ids_are_denied() {
    let s = Stack::new();
    let (id, _) = create_upload(&s, "acme", "tickets/big.bin").await;
    let part = |tenant: &str, upload_id: String| {
        StorageRequest::new(tenant, upload_part("tickets/big.bin", upload_id, "x"))
    };
    let calls = s.inner_calls();
    // Redirected to another region: the signature no longer matches.
    let forged = id.replacen("r1.eu.", "r1.us.", 1);
    assert_ne!(forged, id);
    let err = s.send(part("acme", forged)).await.unwrap_err();
    assert_eq!(denial(&err), "invalid_upload_id");
    assert_eq!(routing_error(&err).http_status(), 404);
    assert_eq!(routing_error(&err).s3_code(), "NoSuchUpload");
    // Another tenant's id (validly signed, but not theirs).
    let err = s.send(part("globex", id.clone())).await.unwrap_err();
    assert_eq!(denial(&err), "invalid_upload_id");
    // Signed with another key.
    let other = UploadIdCodec::new(b"another key".to_vec()).encode("eu", "acme", "whatever");
    let err = s.send(part("acme", other)).await.unwrap_err();
    assert_eq!(denial(&err), "invalid_upload_id");
    // The backend's raw id, unsigned.
    let raw = s.codec.decode(&id).unwrap().backend_id;
    let err = s.send(part("acme", raw)).await.unwrap_err();
    assert_eq!(denial(&err), "invalid_upload_id");
    assert_eq!(s.inner_calls(), calls);
    // The genuine id still works.
    s.send(part("acme", id)).await.unwrap();
}

#[tokio::test]
async fn copy_within_a_region_and_never_across() {
    let s = Stack::new();
    s.put_ok("acme", "tickets/1.json").await; // eu
    s.put_ok("acme", "insights/r.json").await; // us
    let resp = s
        .send_op("acme", copy("tickets/1.json", "tickets/2.json"))
        .await
        .unwrap();
    assert_eq!(resp.region.as_deref(), Some("eu"));
    assert!(matches!(resp.outcome, Outcome::Copy(_)));
    assert_eq!(s.eu.keys(), ["acme/tickets/1.json", "acme/tickets/2.json"]);

    // The destination is decided (tickets → eu) but the source lives in the US.
    let err = s
        .send_op("acme", copy("insights/r.json", "tickets/r.json"))
        .await
        .unwrap_err();
    assert_eq!(denial(&err), "cross_region_copy");
    assert_eq!(routing_error(&err).http_status(), 403);
    assert_eq!(s.eu.keys(), ["acme/tickets/1.json", "acme/tickets/2.json"]);
    assert_eq!(s.us.keys(), ["acme/insights/r.json"]);

    // A copy is decided for its destination: a strict EU tenant cannot copy
    // into a US-only category, even from its own EU data.
    s.put_ok("eurobank", "tickets/1.json").await;
    let err = s
        .send_op("eurobank", copy("tickets/1.json", "talk/recordings/1.wav"))
        .await
        .unwrap_err();
    assert_eq!(denial(&err), "out_of_locality");
}

// --- audit --------------------------------------------------------------------------

#[tokio::test]
async fn audit_events_describe_each_decision() {
    let s = Stack::new();
    let req = StorageRequest::new("acme", put_op("tickets/1.json", PutMeta::default()))
        .with_request_id("req-1");
    s.send(req).await.unwrap();
    let e = last_event(&s.audit);
    assert_eq!(e.request_id, "req-1");
    assert_eq!(e.tenant, "acme");
    assert_eq!(e.op, "put");
    assert_eq!(e.key, "tickets/1.json");
    assert_eq!(e.category.as_deref(), Some("ticket_data"));
    assert_eq!(e.classified_by.as_deref(), Some("key_rule"));
    assert_eq!(e.decision, "allow");
    assert_eq!(e.regions, ["eu"]);
    assert_eq!(e.bucket.as_deref(), Some("acme"));
    assert_eq!(e.reason, "tenant_locality");
    assert!(!e.out_of_locality);
    assert_eq!(e.policy_version, "2017-11-01");
    assert_eq!(e.store_region, "eu");
    assert!(e.time.ends_with('Z') && e.time.len() == "2024-01-01T00:00:00.000Z".len());

    // Out of locality: stored where the object was placed.
    s.put_ok("acme", "insights/q.json").await;
    let e = last_event(&s.audit);
    assert_eq!(
        (e.regions.as_slice(), e.store_region.as_str()),
        (&["us".to_string()][..], "us")
    );
    assert!(e.out_of_locality);
    assert_eq!(e.reason, "category_region");

    // A denial: stored in the tenant's locality, no region.
    s.put_err("eurobank", "talk/recordings/1.wav").await;
    let e = last_event(&s.audit);
    assert_eq!(e.decision, "deny");
    assert_eq!(e.reason, "out_of_locality");
    assert_eq!(e.category.as_deref(), Some("call_recordings"));
    assert!(e.regions.is_empty());
    assert_eq!(e.store_region, "eu");
    assert_eq!(e.bucket.as_deref(), Some("eurobank"));
    assert!(
        !e.request_id.is_empty(),
        "the layer makes a request id when none is given"
    );

    // An unknown tenant: no bucket, stored in the default region.
    s.put_err("nobody", "tickets/1.json").await;
    let e = last_event(&s.audit);
    assert_eq!(e.tenant, "nobody");
    assert_eq!(e.reason, "unknown_tenant");
    assert_eq!(e.bucket, None);
    assert_eq!(e.store_region, "us");

    // One event per decision, and generated request ids are distinct.
    let events = s.audit.events();
    assert_eq!(events.len(), 4);
    assert_ne!(events[1].request_id, events[2].request_id);

    // The event serializes as one JSON object.
    let json = serde_json::to_value(&events[0]).unwrap();
    assert_eq!(json["decision"], "allow");
    assert_eq!(json["regions"][0], "eu");
}

// --- reload ------------------------------------------------------------------------------

#[tokio::test]
async fn a_ruleset_swap_changes_later_decisions() {
    let s = Stack::new();
    assert_eq!(s.put_ok("acme", "insights/1.json").await, "us");
    // acme turns strict: US-only Insights may no longer leave the EEA.
    assert_eq!(TENANTS.matches("strict = false").count(), 1);
    s.handle.store(rules_from(&TENANTS.replacen(
        "strict = false",
        "strict = true",
        1,
    )));
    let err = s.put_err("acme", "insights/2.json").await;
    assert_eq!(denial(&err), "out_of_locality");
    // And back.
    s.handle.store(rules());
    assert_eq!(s.put_ok("acme", "insights/3.json").await, "us");
    assert_eq!(
        s.us.keys(),
        ["acme/insights/1.json", "acme/insights/3.json"]
    );
}

#[test]
fn the_example_config_has_every_tenant_this_file_relies_on() {
    let r = rules();
    for t in ["acme", "globex", "initech", "eurobank"] {
        assert!(r.tenants().get(t).is_some(), "{t}");
    }
}
