//! One object per key per tenant, through the public stack over two
//! in-memory regions (default policy, example tenants: `acme` EU not strict
//! with Insights, `eurobank` strict EU).
//!
//! - a write placed by a label that moves a key removes the older copy;
//! - a write placed by a key rule makes no backend call but its own;
//! - a region that may hold an older copy and is down fails the write (503)
//!   before anything changed; a region the tenant can never use is not asked;
//! - when two copies exist, GET, HEAD and LIST agree on one;
//! - multipart steps re-check the placement after a reload; deletes reach
//!   every region.

mod support;

use std::sync::Arc;

use residency_policy::Ruleset;
use residency_store::{
    Backend, Body, BoxError, ListRequest, MemoryBackend, Operation, Outcome, PutMeta,
};
use residency_tower::{
    RoutingError, RoutingLayer, RulesetHandle, StorageRequest, StorageResponse, UploadIdCodec,
};
use support::{rules_from, upload_part, MemoryRegions, TENANTS};
use tower::util::BoxCloneService;
use tower::{Layer, ServiceExt};

/// The example tenants with acme made strict (a reload that narrows it to the EU).
fn acme_strict() -> Ruleset {
    let t = TENANTS.replacen(
        "id = \"acme\"\nlocality = \"eu\"\nstrict = false",
        "id = \"acme\"\nlocality = \"eu\"\nstrict = true",
        1,
    );
    assert_ne!(t, TENANTS, "the example tenants file changed shape");
    rules_from(&t)
}

struct Stack {
    eu: Arc<MemoryBackend>,
    us: Arc<MemoryBackend>,
    handle: RulesetHandle,
    svc: BoxCloneService<StorageRequest, StorageResponse, BoxError>,
}

impl Stack {
    fn new() -> Stack {
        let regions = MemoryRegions::new();
        let codec = UploadIdCodec::new(b"one copy test".to_vec());
        let dispatch = regions
            .dispatch(&codec)
            // The breaker would fail the second call fast; these tests count calls.
            .circuit_breaker(0, std::time::Duration::from_secs(1))
            .build();
        let handle = RulesetHandle::new(rules_from(TENANTS));
        let layer = RoutingLayer::new(handle.clone()).upload_ids(codec);
        Stack {
            eu: regions.eu,
            us: regions.us,
            handle,
            svc: BoxCloneService::new(layer.layer(dispatch)),
        }
    }

    async fn send(&self, tenant: &str, op: Operation) -> Result<StorageResponse, BoxError> {
        self.svc
            .clone()
            .oneshot(StorageRequest::new(tenant, op))
            .await
    }

    async fn put(
        &self,
        tenant: &str,
        key: &str,
        label: Option<&str>,
        body: &str,
    ) -> Result<StorageResponse, BoxError> {
        let mut req = StorageRequest::new(
            tenant,
            Operation::Put {
                key: key.into(),
                body: Body::from(body.as_bytes().to_vec()),
                meta: Default::default(),
            },
        );
        if let Some(l) = label {
            req = req.with_category(l);
        }
        self.svc.clone().oneshot(req).await
    }

    async fn get(&self, tenant: &str, key: &str) -> (String, String) {
        let r = self
            .send(
                tenant,
                Operation::Get {
                    key: key.into(),
                    range: None,
                    sse: Default::default(),
                },
            )
            .await
            .expect("get");
        let Outcome::Get(out) = r.outcome else {
            panic!("not a get")
        };
        let body = out.body.collect().await.expect("body");
        (
            r.region.expect("region").to_string(),
            String::from_utf8(body.to_vec()).expect("utf8"),
        )
    }

    async fn head_size(&self, tenant: &str, key: &str) -> u64 {
        match self
            .send(
                tenant,
                Operation::Head {
                    key: key.into(),
                    sse: Default::default(),
                },
            )
            .await
            .expect("head")
            .outcome
        {
            Outcome::Head(i) => i.size,
            o => panic!("not a head: {o:?}"),
        }
    }

    async fn list_sizes(&self, tenant: &str, prefix: &str) -> Vec<(String, u64)> {
        let r = self
            .send(
                tenant,
                Operation::List {
                    request: ListRequest::new(prefix),
                },
            )
            .await
            .expect("list");
        let Outcome::List(page) = r.outcome else {
            panic!("not a list")
        };
        page.objects.into_iter().map(|o| (o.key, o.size)).collect()
    }

    fn regions_holding(&self, full: &str) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.eu.object_bytes(full).is_some() {
            v.push("eu");
        }
        if self.us.object_bytes(full).is_some() {
            v.push("us");
        }
        v
    }
}

fn routing_error(e: &BoxError) -> &RoutingError {
    e.downcast_ref::<RoutingError>()
        .unwrap_or_else(|| panic!("not a RoutingError: {e:?}"))
}

#[tokio::test]
async fn a_label_that_moves_a_key_removes_the_older_copy_both_ways() {
    let s = Stack::new();
    // EU → US (acme: ticket_data stays in its EU locality, insights are US-only).
    let r = s
        .put("acme", "notes/o", Some("ticket_data"), "old eu body")
        .await
        .unwrap();
    assert_eq!(r.region.as_deref(), Some("eu"));
    let r = s
        .put("acme", "notes/o", Some("insights"), "new us")
        .await
        .unwrap();
    assert_eq!(r.region.as_deref(), Some("us"));
    assert_eq!(s.regions_holding("acme/notes/o"), ["us"]);
    assert_eq!(
        s.get("acme", "notes/o").await,
        ("us".into(), "new us".into())
    );
    assert_eq!(s.head_size("acme", "notes/o").await, 6);
    assert_eq!(
        s.list_sizes("acme", "notes/").await,
        [("notes/o".to_string(), 6)]
    );
    // US → EU.
    let r = s
        .put("acme", "notes/o", Some("ticket_data"), "back in the eu")
        .await
        .unwrap();
    assert_eq!(r.region.as_deref(), Some("eu"));
    assert_eq!(s.regions_holding("acme/notes/o"), ["eu"]);
    assert_eq!(s.get("acme", "notes/o").await.1, "back in the eu");
    assert_eq!(
        s.list_sizes("acme", "notes/").await,
        [("notes/o".to_string(), 14)]
    );
}

#[tokio::test]
async fn a_key_rule_write_makes_no_extra_backend_call_and_a_label_write_one_head() {
    let s = Stack::new();
    let (eu0, us0) = (s.eu.calls(), s.us.calls());
    s.put("acme", "tickets/1/a.json", None, "x").await.unwrap();
    assert_eq!(
        (s.eu.calls() - eu0, s.us.calls() - us0),
        (1, 0),
        "key rule: the put only"
    );
    // A labelled key rule key (same category) cannot move either.
    s.put("acme", "tickets/1/a.json", Some("ticket_data"), "y")
        .await
        .unwrap();
    assert_eq!((s.eu.calls() - eu0, s.us.calls() - us0), (2, 0));
    // A label that stays: one HEAD in the other region, nothing to remove.
    s.put("acme", "notes/stay", Some("ticket_data"), "1")
        .await
        .unwrap();
    let (eu1, us1) = (s.eu.calls(), s.us.calls());
    s.put("acme", "notes/stay", Some("ticket_data"), "2")
        .await
        .unwrap();
    assert_eq!(
        (s.eu.calls() - eu1, s.us.calls() - us1),
        (1, 1),
        "put + head"
    );
}

#[tokio::test]
async fn a_region_that_may_hold_a_copy_and_is_down_fails_the_write_before_anything_changes() {
    let s = Stack::new();
    s.put("acme", "notes/d", Some("ticket_data"), "kept")
        .await
        .unwrap();
    s.us.set_unavailable(true);
    let e = s
        .put("acme", "notes/d", Some("ticket_data"), "new")
        .await
        .unwrap_err();
    let re = routing_error(&e);
    assert_eq!(re.http_status(), 503, "{re}");
    assert!(re.to_string().contains("may hold an older copy"), "{re}");
    assert_eq!(
        s.eu.object_bytes("acme/notes/d").as_deref(),
        Some(&b"kept"[..]),
        "nothing changed"
    );
    // A key rule write does not look at the US at all.
    s.put("acme", "tickets/2/t.json", None, "fine")
        .await
        .unwrap();
    // A strict EU tenant can never be placed in the US: its label writes succeed.
    s.put("eurobank", "notes/e", Some("ticket_data"), "fine")
        .await
        .unwrap();
}

#[tokio::test]
async fn two_copies_are_read_as_one_by_get_head_and_list() {
    let s = Stack::new();
    // As a crash between "write new" and "remove old" leaves them.
    s.eu.put_object("acme/notes/two", Body::from("eu copy"), PutMeta::default())
        .await
        .unwrap();
    s.us.put_object(
        "acme/notes/two",
        Body::from("the us copy"),
        PutMeta::default(),
    )
    .await
    .unwrap();
    // acme's read order is eu, us: the EU copy is the one.
    assert_eq!(
        s.get("acme", "notes/two").await,
        ("eu".into(), "eu copy".into())
    );
    assert_eq!(s.head_size("acme", "notes/two").await, 7);
    assert_eq!(
        s.list_sizes("acme", "notes/").await,
        [("notes/two".to_string(), 7)]
    );
    // The next write of the key (here one that lands in the US) settles it.
    s.put("acme", "notes/two", Some("insights"), "settled")
        .await
        .unwrap();
    assert_eq!(s.regions_holding("acme/notes/two"), ["us"]);
    assert_eq!(
        s.list_sizes("acme", "notes/").await,
        [("notes/two".to_string(), 7)]
    );
    assert_eq!(s.get("acme", "notes/two").await.1, "settled");
}

#[tokio::test]
async fn an_upload_the_new_rules_no_longer_allow_is_refused_and_aborted() {
    let s = Stack::new();
    let mut meta = PutMeta::default();
    meta.headers
        .user_metadata
        .insert("residency-category".into(), "insights".into());
    let r = s
        .send(
            "acme",
            Operation::CreateMultipart {
                key: "reports/q.bin".into(),
                meta: Box::new(meta),
            },
        )
        .await
        .unwrap();
    assert_eq!(r.region.as_deref(), Some("us"));
    let Outcome::CreateMultipart(upload_id) = r.outcome else {
        panic!("no upload id")
    };
    assert_eq!(s.us.list_multipart_uploads("").await.unwrap().len(), 1);
    s.handle.store(acme_strict());
    let e = s
        .send(
            "acme",
            upload_part("reports/q.bin", upload_id.clone(), Body::from("part")),
        )
        .await
        .unwrap_err();
    let re = routing_error(&e);
    assert_eq!(re.http_status(), 403, "{re}");
    assert!(re.to_string().contains("placement changed"), "{re}");
    assert!(
        s.us.list_multipart_uploads("").await.unwrap().is_empty(),
        "the upload is aborted in the US"
    );
    let e = s
        .send(
            "acme",
            Operation::CompleteMultipart {
                key: "reports/q.bin".into(),
                upload_id,
                parts: Vec::new(),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(routing_error(&e).http_status(), 403);
    assert!(s.us.keys().is_empty(), "nothing stored in the US");
}

#[tokio::test]
async fn a_delete_removes_a_copy_the_new_rules_hide() {
    let s = Stack::new();
    s.put("acme", "notes/h", Some("insights"), "us only")
        .await
        .unwrap();
    s.handle.store(acme_strict());
    s.send(
        "acme",
        Operation::Delete {
            key: "notes/h".into(),
        },
    )
    .await
    .unwrap();
    assert!(s.regions_holding("acme/notes/h").is_empty());
    // A region that cannot be reached makes the delete say why.
    s.put("acme", "notes/h2", Some("ticket_data"), "x")
        .await
        .unwrap();
    s.us.set_unavailable(true);
    let e = s
        .send(
            "acme",
            Operation::Delete {
                key: "notes/h2".into(),
            },
        )
        .await
        .unwrap_err();
    let re = routing_error(&e);
    assert_eq!(re.http_status(), 503);
    assert!(
        re.to_string()
            .contains("delete of \"notes/h2\" is incomplete"),
        "{re}"
    );
}
