//! What the routing layer hands to audit sinks ([`DecisionRecord`]) and the
//! metric handles it keeps, through the public API.
//!
//! A record must serialize to exactly the JSON of its [`AuditEvent`], so
//! that batches written from records read back like batches written from
//! events; and cached metric handles must count under the recorder in force.

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use residency_store::{Backend, MemoryBackend, Operation};
use residency_tower::audit::batch::{
    read_events, verify_chain, BatchConfig, BatchingAuditSink, WriterId,
};
use residency_tower::{
    AuditEvent, AuditSink, DecisionRecord, RegionalDispatch, RoutingService, StorageRequest,
    UploadIdCodec,
};
use support::{example_layer, head, MemoryRegions};
use tower::{Layer, ServiceExt};

/// Keeps every record and passes it on to `next`, if any.
#[derive(Clone, Default)]
struct Capture {
    records: Arc<Mutex<Vec<DecisionRecord>>>,
    next: Option<Arc<dyn AuditSink>>,
}

impl AuditSink for Capture {
    fn record(&self, event: AuditEvent) {
        panic!("the layer hands over records, got an event: {event:?}");
    }

    fn record_decision(&self, decision: DecisionRecord) {
        self.records.lock().unwrap().push(decision.clone());
        if let Some(next) = &self.next {
            next.record_decision(decision);
        }
    }
}

fn stack(audit: Capture) -> RoutingService<RegionalDispatch> {
    let codec = UploadIdCodec::new(b"records test".to_vec());
    let dispatch = MemoryRegions::new().dispatch(&codec).build();
    example_layer(&codec).audit(audit).layer(dispatch)
}

fn put(key: &str) -> Operation {
    Operation::Put {
        key: key.into(),
        body: b"x".to_vec().into(),
        meta: Default::default(),
    }
}

/// Allowed and denied requests of every shape the audit trail records.
fn requests() -> Vec<StorageRequest> {
    vec![
        // Allowed write, one region, classified by a key rule.
        StorageRequest::new("acme", put("tickets/1.json")).with_request_id("r-1"),
        // Out of locality.
        StorageRequest::new("acme", put("insights/q1.json")),
        StorageRequest::new("globex", put("chat/7.json")),
        // A read: several regions, no category.
        StorageRequest::new("acme", head("misc/1.txt")),
        // Denied with a category (strict tenant outside its locality).
        StorageRequest::new("eurobank", put("talk/recordings/call.wav")),
        // Denied, unknown tenant: no bucket, stored in the default region.
        StorageRequest::new("nobody \"quoted\"", put("a b/ü.json")),
        // Denied, known tenant, no category.
        StorageRequest::new(
            "initech",
            Operation::AbortMultipart {
                key: "k".into(),
                upload_id: "forged".into(),
            },
        ),
        // Explicit category.
        StorageRequest::new("globex", put("x.bin")).with_category("chat_content"),
    ]
}

async fn send_all(svc: &RoutingService<RegionalDispatch>) {
    for req in requests() {
        let _ = svc.clone().oneshot(req).await;
    }
}

#[tokio::test]
async fn records_serialize_to_the_json_of_their_events() {
    let capture = Capture::default();
    send_all(&stack(capture.clone())).await;
    let records = capture.records.lock().unwrap().clone();
    assert_eq!(records.len(), requests().len());
    for r in &records {
        let event = r.to_event();
        let json = serde_json::to_string(r).unwrap();
        assert_eq!(json, serde_json::to_string(&event).unwrap());
        assert_eq!(serde_json::from_str::<AuditEvent>(&json).unwrap(), event);
        // The accessors say what the event says.
        assert_eq!(r.tenant(), event.tenant);
        assert_eq!(r.regions().collect::<Vec<_>>(), event.regions);
        assert_eq!(r.store_region(), event.store_region);
    }
    let e: Vec<AuditEvent> = records.iter().map(DecisionRecord::to_event).collect();
    assert_eq!(e[0].request_id, "r-1");
    assert_eq!(
        (e[0].op.as_str(), e[0].decision.as_str(), &e[0].regions[..]),
        ("put", "allow", &["eu".to_owned()][..])
    );
    assert_eq!(e[0].classified_by.as_deref(), Some("key_rule"));
    assert_eq!(e[0].bucket.as_deref(), Some("acme"));
    assert!(e[1].out_of_locality && e[1].store_region == "us");
    assert!(e[2].out_of_locality && e[2].store_region == "eu");
    assert_eq!(e[3].regions, ["eu", "us"]);
    assert_eq!(
        (e[3].category.as_deref(), e[3].store_region.as_str()),
        (None, "eu")
    );
    assert_eq!(e[4].decision, "deny");
    assert!(e[4].category.is_some() && e[4].regions.is_empty());
    assert_eq!(e[5].tenant, "nobody \"quoted\"");
    assert_eq!(
        (e[5].bucket.as_deref(), e[5].store_region.as_str()),
        (None, "us")
    );
    assert_eq!(e[5].key, "a b/ü.json");
    assert_eq!(
        (e[6].reason.as_str(), e[6].bucket.as_deref()),
        ("invalid_upload_id", Some("initech"))
    );
    assert_eq!(e[7].classified_by.as_deref(), Some("explicit"));
    assert_ne!(e[1].request_id, e[2].request_id);
}

#[tokio::test]
async fn batches_written_from_records_read_back_as_events() {
    let regions: Vec<(String, Arc<dyn Backend>)> = vec![
        ("eu".to_owned(), Arc::new(MemoryBackend::new("eu"))),
        ("us".to_owned(), Arc::new(MemoryBackend::new("us"))),
    ];
    let config = BatchConfig {
        max_events: 2,
        ..BatchConfig::default()
    };
    let sink = Arc::new(BatchingAuditSink::new(
        regions.clone(),
        WriterId::new("w1").unwrap(),
        config,
    ));
    let capture = Capture {
        next: Some(sink.clone()),
        ..Capture::default()
    };
    let svc = stack(capture.clone());
    send_all(&svc).await;
    // An owned event in the same chain as the records.
    let mut owned = capture.records.lock().unwrap()[0].to_event();
    owned.request_id = "owned".into();
    sink.record(owned.clone());
    send_all(&svc).await;
    sink.shutdown().await.unwrap();

    let mut expected: Vec<AuditEvent> = capture
        .records
        .lock()
        .unwrap()
        .iter()
        .map(DecisionRecord::to_event)
        .collect();
    expected.insert(requests().len(), owned);
    for tenant in ["acme", "globex", "eurobank", "initech", "nobody \"quoted\""] {
        let report = verify_chain(&regions, tenant).await.unwrap();
        assert!(report.ok, "{tenant}: {report:#?}");
        let mut stored = read_events(&regions, tenant).await.unwrap();
        let mut want: Vec<AuditEvent> = expected
            .iter()
            .filter(|e| e.tenant == tenant)
            .cloned()
            .collect();
        let order = |e: &AuditEvent| (e.time.clone(), e.request_id.clone());
        stored.sort_by_key(order);
        want.sort_by_key(order);
        assert_eq!(stored, want, "{tenant}");
    }
}

// --- metric handles -------------------------------------------------------------

/// Counts every counter increment by rendered key; other kinds are dropped.
#[derive(Default)]
struct TestRecorder {
    counters: Mutex<HashMap<String, Arc<AtomicU64>>>,
}

impl TestRecorder {
    fn get(&self, key: &str) -> u64 {
        let counters = self.counters.lock().unwrap();
        counters.get(key).map_or(0, |c| c.load(Ordering::Relaxed))
    }
}

fn render(key: &Key) -> String {
    let labels: Vec<String> = key
        .labels()
        .map(|l| format!("{}={}", l.key(), l.value()))
        .collect();
    format!("{}{{{}}}", key.name(), labels.join(","))
}

impl Recorder for TestRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let mut counters = self.counters.lock().unwrap();
        Counter::from_arc(counters.entry(render(key)).or_default().clone())
    }
    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }
    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

const ACME_PUT: &str =
    "residency_requests_total{op=put,category=ticket_data,region=eu,decision=allow}";
const ACME_HEAD: &str = "residency_requests_total{op=head,category=none,region=eu,decision=allow}";
const MISSING_HEAD: &str =
    "residency_requests_total{op=head,category=none,region=any,decision=allow}";
const DENIED: &str = "residency_requests_total{op=put,category=none,region=none,decision=deny}";
const BYTES_IN: &str = "residency_bytes_total{region=eu,direction=in}";
const NOT_FOUND: &str = "residency_backend_errors_total{region=eu,code=NoSuchKey}";

fn run_on_this_thread(svc: &RoutingService<RegionalDispatch>, n: usize) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        for i in 0..n {
            let key = format!("tickets/{i}.json");
            let head = Operation::Head {
                key: key.clone(),
                sse: Default::default(),
            };
            // Read from eu then us: not found in either.
            let missing = Operation::Head {
                key: "misc/missing.txt".into(),
                sse: Default::default(),
            };
            let reqs = [
                StorageRequest::new("acme", put(&key)),
                StorageRequest::new("acme", head),
                StorageRequest::new("acme", missing),
                StorageRequest::new("nobody", put(&key)),
            ];
            for req in reqs {
                let _ = svc.clone().oneshot(req).await;
            }
        }
    });
}

#[test]
fn cached_handles_count_under_the_recorder_in_force() {
    let svc = stack(Capture::default());
    let first = TestRecorder::default();
    let second = TestRecorder::default();
    // The first recorder seen owns the cache.
    metrics::with_local_recorder(&first, || run_on_this_thread(&svc, 3));
    metrics::with_local_recorder(&first, || run_on_this_thread(&svc, 2));
    let counts = |r: &TestRecorder| {
        [
            ACME_PUT,
            ACME_HEAD,
            MISSING_HEAD,
            DENIED,
            BYTES_IN,
            NOT_FOUND,
        ]
        .map(|k| r.get(k))
    };
    assert_eq!(counts(&first), [5; 6]);
    // Another recorder gets every increment too (registered uncached), and
    // the first one nothing more.
    metrics::with_local_recorder(&second, || run_on_this_thread(&svc, 4));
    assert_eq!(counts(&second), [4; 6]);
    assert_eq!(counts(&first), [5; 6]);
    metrics::with_local_recorder(&first, || run_on_this_thread(&svc, 1));
    assert_eq!(first.get(ACME_PUT), 6);
    assert_eq!(second.get(ACME_PUT), 4);
}
