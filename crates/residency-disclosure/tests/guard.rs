//! Refusals, tamper detection and the transparency report, on in-memory
//! backends (the S3 path is covered by `lifecycle_s3.rs`).

mod support;

use std::sync::Arc;

use residency_disclosure::{
    DisclosureError, Disclosures, Event, ExportOptions, LimitRaise, Limits, Period, RequestType,
    Scope, State, Webhook,
};
use residency_store::{Backend, MemoryBackend};
use support::{approve_both, desk_on, get, keys, put, refused, request, rules, team};

struct World {
    desk: Disclosures,
    eu: Arc<dyn Backend>,
    us: Arc<dyn Backend>,
    out: tempfile::TempDir,
}

async fn world(limits: Limits) -> World {
    let eu: Arc<dyn Backend> = Arc::new(MemoryBackend::new("eu"));
    let us: Arc<dyn Backend> = Arc::new(MemoryBackend::new("us"));
    for i in 0..5 {
        put(&eu, &format!("acme/tickets/{i}.json"), b"{\"t\":1}").await;
    }
    put(&eu, "acme/users/7.json", b"{\"u\":7}").await;
    put(&eu, "acme/chat/7.json", b"{\"c\":7}").await;
    put(&eu, "acme/attachments/7.png", b"PNG....").await;
    let desk = desk_on(rules(), &eu, &us).with_limits(limits);
    World {
        desk,
        eu,
        us,
        out: tempfile::tempdir().unwrap(),
    }
}

impl World {
    fn opts(&self, dir: &str) -> ExportOptions {
        ExportOptions {
            dir: self.out.path().join(dir),
            raises: vec![],
            reason: None,
            by: "operator".into(),
            signer: Some(team().1),
        }
    }

    /// Opens a request of acme for one key, by `by`; its id.
    async fn open_key(&self, key: &str, by: &str) -> String {
        let r = request("acme", keys(&[key]));
        self.desk.open(r, by, "").await.unwrap().request.id
    }

    /// Opens a request with notice prohibited (so that it may be exported
    /// without a webhook) and approves it.
    async fn approved(&self, scope: Scope) -> String {
        let mut r = request("acme", scope);
        r.notice_prohibited = Some("gag order, case 4711".into());
        let id = self.desk.open(r, "privacy", "").await.unwrap().request.id;
        approve_both(&self.desk, &id).await;
        id
    }
}

#[tokio::test]
async fn bulk_scopes_are_refused() {
    let w = world(Limits::default()).await;
    let whole = w
        .approved(Scope {
            whole_tenant: true,
            ..Scope::default()
        })
        .await;
    refused(
        w.desk.export(&whole, &w.opts("whole")).await,
        "whole tenant",
    );

    let wildcard = w.approved(keys(&["tickets/*.json"])).await;
    refused(w.desk.export(&wildcard, &w.opts("wild")).await, "wildcard");

    let root = w
        .approved(Scope {
            prefix: Some("/".into()),
            from: Some("2000-01-01".parse().unwrap()),
            to: Some("2100-01-01".parse().unwrap()),
            ..Scope::default()
        })
        .await;
    refused(w.desk.export(&root, &w.opts("root")).await, "whole tenant");

    // A raised limit does not make a bulk scope acceptable.
    let mut o = w.opts("whole2");
    o.raises = vec!["objects=100000".parse().unwrap()];
    o.reason = Some("the authority insists".into());
    refused(w.desk.export(&whole, &o).await, "whole tenant");
    // Refusals are recorded, nothing was written.
    let rec = w.desk.get(&whole).await.unwrap();
    assert_eq!(rec.state, State::Approved);
    assert_eq!(
        rec.history
            .iter()
            .filter(|e| e.event == Event::ExportRefused)
            .count(),
        2
    );
    assert!(!w.out.path().join("whole/manifest.json").exists());
}

#[tokio::test]
async fn limits_must_be_raised_one_by_one_with_a_reason() {
    let w = world(Limits {
        max_objects: 3,
        max_bytes: 1 << 20,
        max_categories: 2,
        ..Limits::default()
    })
    .await;
    let scope = Scope {
        prefix: Some("tickets/".into()),
        from: Some("2000-01-01".parse().unwrap()),
        to: Some("2100-12-31".parse().unwrap()),
        ..Scope::default()
    };
    let id = w.approved(scope).await;
    refused(
        w.desk.export(&id, &w.opts("a")).await,
        "5 objects > limit 3",
    );

    let mut o = w.opts("b");
    o.raises = vec!["objects=5".parse().unwrap()];
    assert!(matches!(
        w.desk.export(&id, &o).await,
        Err(DisclosureError::Invalid(m)) if m.contains("reason")
    ));
    o.raises = vec!["objects=2".parse().unwrap()];
    o.reason = Some("x".into());
    assert!(matches!(
        w.desk.export(&id, &o).await,
        Err(DisclosureError::Invalid(_))
    ));

    o.raises = vec![LimitRaise {
        limit: residency_disclosure::Limit::Objects,
        to: 5,
    }];
    o.reason = Some("the order names all five tickets of case 12".into());
    // The exporter (alice) alone cannot raise it: a second approver must.
    refused(w.desk.export(&id, &o).await, "second approver");
    let (_, _, bob) = team();
    w.desk
        .approve_raise(&id, &o.raises[0], "agreed: all five are named", &bob)
        .await
        .unwrap();
    let m = w.desk.export(&id, &o).await.unwrap();
    assert_eq!(m.total_objects, 5);
    assert_eq!(m.limits.max_objects, 5);
    let rec = w.desk.get(&id).await.unwrap();
    assert_eq!(rec.state, State::Fulfilled);
    assert_eq!(rec.raised_limits.get("objects"), Some(&5));
    let raised = rec
        .history
        .iter()
        .find(|e| matches!(e.event, Event::LimitRaised { .. }))
        .unwrap();
    assert_eq!(raised.why, "the order names all five tickets of case 12");
    assert_eq!(
        raised.event,
        Event::LimitRaised {
            limit: "objects".into(),
            from: 3,
            to: 5
        }
    );

    // Categories and bytes are limits too.
    let id = w
        .approved(keys(&["users/7.json", "chat/7.json", "attachments/7.png"]))
        .await;
    refused(
        w.desk.export(&id, &w.opts("c")).await,
        "3 categories > limit 2",
    );
    let tiny = world(Limits {
        max_bytes: 10,
        ..Limits::default()
    })
    .await;
    let id = tiny
        .approved(keys(&["tickets/1.json", "tickets/2.json"]))
        .await;
    refused(
        tiny.desk.export(&id, &tiny.opts("d")).await,
        "14 bytes > limit 10",
    );
}

#[tokio::test]
async fn unapproved_and_unnotified_exports_are_refused() {
    let w = world(Limits::default()).await;
    let id = w.open_key("tickets/1.json", "privacy").await;
    refused(
        w.desk.export(&id, &w.opts("x")).await,
        "only an approved request",
    );
    w.desk
        .transition(&id, State::Challenged, "counsel", "overbroad")
        .await
        .unwrap();
    refused(w.desk.export(&id, &w.opts("x")).await, "challenged");
    approve_both(&w.desk, &id).await;
    refused(w.desk.export(&id, &w.opts("x")).await, "not been notified");
    // A webhook that is down: the failure is recorded, the export still refused.
    let dead = Webhook::new("http://127.0.0.1:9/hook", "s")
        .unwrap()
        .max_attempts(2)
        .backoff(
            std::time::Duration::from_millis(5),
            std::time::Duration::from_millis(5),
        );
    let e = w.desk.notify(&id, &dead, "privacy").await.unwrap_err();
    assert!(
        matches!(e, DisclosureError::NotifyFailed { attempts: 2, .. }),
        "{e}"
    );
    let rec = w.desk.get(&id).await.unwrap();
    assert!(rec
        .history
        .iter()
        .any(|e| matches!(e.event, Event::NotifyFailed { attempts: 2, .. })));
    refused(w.desk.export(&id, &w.opts("x")).await, "not been notified");
    // Notice prohibited needs a reason.
    assert!(matches!(
        w.desk.prohibit_notice(&id, "  ", "privacy").await,
        Err(DisclosureError::Invalid(_))
    ));
    w.desk
        .prohibit_notice(&id, "court order 2026/77 forbids notice", "privacy")
        .await
        .unwrap();
    // …and then nothing is sent.
    refused(
        w.desk.notify(&id, &dead, "privacy").await,
        "legally prohibited",
    );
    let m = w.desk.export(&id, &w.opts("x")).await.unwrap();
    assert_eq!(m.total_objects, 1);
}

#[tokio::test]
async fn bad_input_is_rejected_before_anything_is_recorded() {
    let w = world(Limits::default()).await;
    let mut r = request("acme", keys(&["tickets/1.json"]));
    r.notice_prohibited = Some("".into());
    let e = w.desk.open(r, "privacy", "").await.unwrap_err();
    assert!(
        matches!(e, DisclosureError::Invalid(ref m) if m.contains("reason")),
        "{e}"
    );
    assert_eq!(e.exit_code(), 2);
    let e = w
        .desk
        .open(request("nobody", keys(&["a"])), "p", "")
        .await
        .unwrap_err();
    assert!(matches!(e, DisclosureError::UnknownTenant(_)));
    let e = w
        .desk
        .open(request("acme", Scope::default()), "p", "")
        .await
        .unwrap_err();
    assert!(matches!(e, DisclosureError::Invalid(_)));
    let prefix_without_range = Scope {
        prefix: Some("tickets/".into()),
        ..Scope::default()
    };
    assert!(w
        .desk
        .open(request("acme", prefix_without_range), "p", "")
        .await
        .is_err());
    let mut r = request("acme", keys(&["a"]));
    r.country = "Germany".into();
    assert!(w.desk.open(r, "p", "").await.is_err());
    assert!(matches!(
        w.desk.get("acme-1").await,
        Err(DisclosureError::UnknownRequest(_))
    ));
    assert_eq!(w.desk.verify("acme").await.unwrap().entries, 0);
    // A transition needs who and why.
    let id = w.open_key("a", "p").await;
    assert!(matches!(
        w.desk.transition(&id, State::OnHold, "dpo", "").await,
        Err(DisclosureError::Invalid(_))
    ));
}

/// Three requests with a few events each; returns the ledger's entry keys.
async fn busy_ledger(w: &World) -> Vec<String> {
    for i in 0..3 {
        let id = w.open_key("tickets/1.json", "p").await;
        w.desk
            .transition(&id, State::OnHold, "dpo", &format!("consult {i}"))
            .await
            .unwrap();
    }
    let n = w.desk.verify("acme").await.unwrap().entries;
    assert_eq!(n, 6);
    (0..n)
        .map(|i| format!("_disclosure/acme/ledger/{i:010}.json"))
        .collect()
}

/// Asserts that one of a verification's problems mentions `needle`.
#[track_caller]
fn assert_problem(problems: &[String], needle: &str) {
    assert!(problems.iter().any(|p| p.contains(needle)), "{problems:?}");
}

#[tokio::test]
async fn an_edited_byte_is_detected() {
    let w = world(Limits::default()).await;
    let keys = busy_ledger(&w).await;
    for (i, key) in keys.iter().enumerate() {
        let original = get(&w.eu, key).await;
        let mut edited = original.clone();
        // An edit that keeps the JSON valid ("consult 0" → "consult 1"…), and one that does not.
        let pos = edited.iter().position(|&b| b == b'"').unwrap() + 1;
        edited[pos] ^= 0x01;
        put(&w.eu, key, &edited).await;
        let r = w.desk.verify("acme").await.unwrap();
        assert!(!r.ok, "edit of entry {i} undetected");
        assert!(matches!(
            w.desk.transition("acme-1", State::Approved, "x", "y").await,
            Err(DisclosureError::Damaged { .. })
        ));
        put(&w.eu, key, &original).await;
        assert!(w.desk.verify("acme").await.unwrap().ok);
    }
    // The last entry, with a semantically meaningful edit.
    let last = keys.last().unwrap();
    let original = get(&w.eu, last).await;
    let edited = String::from_utf8(original.clone())
        .unwrap()
        .replace("consult 2", "consult 9");
    put(&w.eu, last, edited.as_bytes()).await;
    let r = w.desk.verify("acme").await.unwrap();
    assert_problem(&r.problems, "head");
}

#[tokio::test]
async fn a_removed_entry_is_detected() {
    let w = world(Limits::default()).await;
    let keys = busy_ledger(&w).await;
    let saved = get(&w.eu, &keys[2]).await;
    w.eu.delete_object(&keys[2]).await.unwrap();
    let r = w.desk.verify("acme").await.unwrap();
    assert!(!r.ok);
    assert_problem(&r.problems, "missing");
    put(&w.eu, &keys[2], &saved).await;
    assert!(w.desk.verify("acme").await.unwrap().ok);
    // Removing the last entry (a truncation) too.
    w.eu.delete_object(keys.last().unwrap()).await.unwrap();
    let r = w.desk.verify("acme").await.unwrap();
    assert_problem(&r.problems, "head records 6 entries, 5 found");
    // And the head with it.
    w.eu.delete_object("_disclosure/acme/head.json")
        .await
        .unwrap();
    assert!(!w.desk.verify("acme").await.unwrap().ok);
}

#[tokio::test]
async fn reordered_entries_are_detected() {
    let w = world(Limits::default()).await;
    let keys = busy_ledger(&w).await;
    let (a, b) = (get(&w.eu, &keys[1]).await, get(&w.eu, &keys[2]).await);
    put(&w.eu, &keys[1], &b).await;
    put(&w.eu, &keys[2], &a).await;
    let r = w.desk.verify("acme").await.unwrap();
    assert!(!r.ok);
    assert_problem(&r.problems, "reordered");
}

#[tokio::test]
async fn the_report_counts_what_was_recorded() {
    let w = world(Limits::default()).await;
    // (tenant, country, type, received, final state)
    #[rustfmt::skip]
    let plan: &[(&str, &str, RequestType, &str, Option<State>)] = &[
        ("acme",     "DE", RequestType::CourtOrder,       "2026-07-01", Some(State::Refused)),
        ("acme",     "DE", RequestType::CourtOrder,       "2026-08-10", Some(State::Fulfilled)),
        ("acme",     "US", RequestType::Subpoena,         "2026-12-31", Some(State::Challenged)),
        ("globex",   "US", RequestType::Subpoena,         "2026-09-09", None),
        ("globex",   "FR", RequestType::Emergency,        "2026-10-01", Some(State::Fulfilled)),
        ("initech",  "US", RequestType::NationalSecurity, "2026-11-11", Some(State::OnHold)),
        // Outside 2026H2:
        ("acme",     "DE", RequestType::Subpoena,         "2026-06-30", Some(State::Refused)),
        ("eurobank", "GB", RequestType::Other,            "2027-01-01", None),
    ];
    put(&w.us, "globex/tickets/9.json", b"0123456789").await;
    for (i, (tenant, country, ty, received, end)) in plan.iter().enumerate() {
        let key = if *tenant == "globex" {
            "tickets/9.json"
        } else {
            "tickets/1.json"
        };
        let mut r = request(tenant, keys(&[key]));
        r.country = country.to_string();
        r.request_type = *ty;
        r.received = received.parse().unwrap();
        r.notice_prohibited = Some(format!("order {i}"));
        let id = w.desk.open(r, "p", "").await.unwrap().request.id;
        match end {
            None => {}
            Some(State::Fulfilled) => {
                approve_both(&w.desk, &id).await;
                w.desk.export(&id, &w.opts(&format!("e{i}"))).await.unwrap();
            }
            Some(s) => {
                w.desk.transition(&id, *s, "c", "decided").await.unwrap();
            }
        }
    }
    let r = w
        .desk
        .report("2026H2".parse::<Period>().unwrap())
        .await
        .unwrap();
    assert_eq!(r.requests, 6);
    let m = |pairs: &[(&str, u64)]| {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    assert_eq!(r.by_country, m(&[("DE", 2), ("FR", 1), ("US", 3)]));
    assert_eq!(
        r.by_type,
        m(&[
            ("court_order", 2),
            ("emergency", 1),
            ("national_security", 1),
            ("subpoena", 2)
        ])
    );
    assert_eq!(
        r.by_outcome,
        m(&[
            ("challenged", 1),
            ("disclosed", 2),
            ("pending", 2),
            ("refused", 1)
        ])
    );
    assert_eq!(r.notices, m(&[("prohibited", 6)]));
    assert_eq!(r.objects_disclosed, 2);
    assert_eq!(r.bytes_disclosed, 7 + 10);
    assert_eq!(r.rows.iter().map(|x| x.requests).sum::<u64>(), 6);
    let csv = r.to_csv();
    assert_eq!(csv.lines().count(), 1 + r.rows.len());
    assert!(csv.contains("2026H2,DE,court_order,disclosed,1\n"), "{csv}");
    assert!(csv.contains("2026H2,US,subpoena,pending,1\n"), "{csv}");
    let md = r.to_markdown();
    assert!(md.contains("| US | 3 |"), "{md}");
    let json: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
    assert_eq!(json["by_outcome"]["disclosed"], 2);
    let h1 = w.desk.report("2026H1".parse().unwrap()).await.unwrap();
    assert_eq!((h1.requests, h1.by_outcome.get("refused")), (1, Some(&1)));
}
