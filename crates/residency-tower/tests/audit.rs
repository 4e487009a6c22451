//! The batching audit sink against real directory backends: where batches
//! land, when they are stored, and what `verify_chain` finds after tampering.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use residency_store::{Backend, DirBackend, ListRequest, MemoryBackend};
use residency_tower::audit::batch::{
    audit_prefix, read_events, verify_chain, AuditFlushError, BatchConfig, BatchingAuditSink,
    ChainReport, WriterId,
};
use residency_tower::audit::{AuditEvent, AuditSink};

type Regions = Vec<(String, Arc<dyn Backend>)>;

/// Two directory regions, `eu` and `us`, under one temporary directory.
struct Dirs {
    tmp: tempfile::TempDir,
    regions: Regions,
}

impl Dirs {
    async fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let mut regions: Regions = Vec::new();
        for r in ["eu", "us"] {
            let b = DirBackend::open(tmp.path().join(r)).await.unwrap();
            regions.push((r.to_owned(), Arc::new(b)));
        }
        Self { tmp, regions }
    }

    fn path(&self, region: &str, key: &str) -> PathBuf {
        self.tmp.path().join(region).join(key)
    }

    fn backend(&self, region: &str) -> &Arc<dyn Backend> {
        &self.regions.iter().find(|(r, _)| r == region).unwrap().1
    }

    /// A batching sink of writer `w1` storing into both regions.
    fn sink(&self, config: BatchConfig) -> BatchingAuditSink {
        BatchingAuditSink::new(self.regions.clone(), writer("w1"), config)
    }

    /// Removes one stored `(region, key)` through its backend.
    async fn delete(&self, (region, key): &(String, String)) {
        self.backend(region).delete_object(key).await.unwrap();
    }

    /// Removes writer w1's HEAD record for acme from `region`.
    async fn delete_head(&self, region: &str) {
        self.backend(region)
            .delete_object("_audit/acme/w1/HEAD.json")
            .await
            .unwrap();
    }

    /// Edits one stored `(region, key)` on disk, behind the backend's back.
    fn edit(&self, (region, key): &(String, String), f: impl FnOnce(&mut Vec<u8>)) {
        let path = self.path(region, key);
        let mut bytes = std::fs::read(&path).unwrap();
        f(&mut bytes);
        std::fs::write(path, bytes).unwrap();
    }

    /// What `verify_chain` finds in acme's chain.
    async fn verify(&self) -> ChainReport {
        verify_chain(&self.regions, "acme").await.unwrap()
    }
}

fn event(tenant: &str, n: u32, decision: &str, store_region: &str) -> AuditEvent {
    AuditEvent {
        time: format!("2026-01-01T00:{:02}:{:02}.000Z", n / 60, n % 60),
        request_id: format!("req-{n}"),
        tenant: tenant.to_owned(),
        op: "put".to_owned(),
        key: format!("tickets/{n}.json"),
        category: Some("ticket_data".to_owned()),
        classified_by: Some("key_rule".to_owned()),
        decision: decision.to_owned(),
        regions: if decision == "allow" {
            vec![store_region.to_owned()]
        } else {
            Vec::new()
        },
        bucket: Some(tenant.to_owned()),
        reason: if decision == "allow" {
            "locality".to_owned()
        } else {
            "strict_locality".to_owned()
        },
        out_of_locality: false,
        policy_version: "2017-11-01".to_owned(),
        store_region: store_region.to_owned(),
    }
}

fn writer(id: &str) -> WriterId {
    WriterId::new(id).unwrap()
}

/// Batches never stored by size or time unless a test says so.
fn manual() -> BatchConfig {
    BatchConfig {
        max_age: Duration::from_secs(3600),
        ..BatchConfig::default()
    }
}

async fn keys(backend: &Arc<dyn Backend>, prefix: &str) -> Vec<String> {
    let page = backend
        .list_objects(ListRequest::new(prefix))
        .await
        .unwrap();
    page.objects.into_iter().map(|o| o.key).collect()
}

async fn batch_keys(backend: &Arc<dyn Backend>, prefix: &str) -> Vec<String> {
    let mut k = keys(backend, prefix).await;
    k.retain(|k| k.ends_with(".jsonl"));
    k
}

async fn body(backend: &Arc<dyn Backend>, key: &str) -> String {
    let out = backend.get_object(key, None).await.unwrap();
    String::from_utf8(out.body.collect().await.unwrap().to_vec()).unwrap()
}

fn header(batch: &str) -> serde_json::Value {
    serde_json::from_str(batch.lines().next().unwrap()).unwrap()
}

/// Waits (on the test clock) until `backend` holds `n` batches under `prefix`.
async fn wait_for_batches(backend: &Arc<dyn Backend>, prefix: &str, n: usize) {
    for _ in 0..2000 {
        if batch_keys(backend, prefix).await.len() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("{n} batches never appeared under {prefix}");
}

fn problems(report: &ChainReport) -> Vec<String> {
    report
        .writers
        .iter()
        .flat_map(|w| w.problems.iter().cloned())
        .collect()
}

fn assert_problem(report: &ChainReport, needle: &str) {
    assert!(!report.ok, "tampering not detected: {report:#?}");
    let p = problems(report);
    assert!(
        p.iter().any(|p| p.contains(needle)),
        "no problem mentions {needle:?}: {p:#?}"
    );
}

#[tokio::test]
async fn events_land_in_the_region_where_the_object_was_placed() {
    let d = Dirs::new().await;
    let sink = d.sink(manual());
    for n in 0..3 {
        sink.record(event("acme", n, "allow", "eu"));
    }
    for n in 3..5 {
        sink.record(event("acme", n, "allow", "us"));
    }
    sink.shutdown().await.unwrap();

    // eu was sealed first (groups in region order): seq 0 in eu, seq 1 in us.
    let eu = batch_keys(d.backend("eu"), "").await;
    let us = batch_keys(d.backend("us"), "").await;
    assert_eq!(eu, ["_audit/acme/w1/000000000000.jsonl"]);
    assert_eq!(us, ["_audit/acme/w1/000000000001.jsonl"]);
    assert!(d.path("eu", "_audit/acme/w1/000000000000.jsonl").is_file());

    let eu_batch = body(d.backend("eu"), &eu[0]).await;
    let us_batch = body(d.backend("us"), &us[0]).await;
    assert_eq!(eu_batch.lines().count(), 1 + 3);
    assert_eq!(us_batch.lines().count(), 1 + 2);
    for line in eu_batch.lines().skip(1) {
        let e: AuditEvent = serde_json::from_str(line).unwrap();
        assert_eq!(e.store_region, "eu");
    }
    let h0 = header(&eu_batch);
    assert_eq!(h0["chain"], 1);
    assert_eq!(h0["tenant"], "acme");
    assert_eq!(h0["writer"], "w1");
    assert_eq!(h0["seq"], 0);
    assert_eq!(h0["prev_sha256"], "");
    assert_eq!(h0["count"], 3);
    assert_eq!(h0["first_time"], "2026-01-01T00:00:00.000Z");
    assert_eq!(h0["last_time"], "2026-01-01T00:00:02.000Z");
    // The chain spans regions: us's batch links to eu's.
    let h1 = header(&us_batch);
    assert_eq!(h1["seq"], 1);
    assert_eq!(h1["prev_sha256"].as_str().unwrap().len(), 64);

    // Both regions holding the chain keep a HEAD naming the latest batch.
    for r in ["eu", "us"] {
        let head: serde_json::Value =
            serde_json::from_str(&body(d.backend(r), "_audit/acme/w1/HEAD.json").await).unwrap();
        assert_eq!(head["seq"], 1, "HEAD in {r}");
        assert_eq!(head["region"], "us");
    }

    let report = verify_chain(&d.regions, "acme").await.unwrap();
    assert!(report.ok, "{report:#?}");
    let events = read_events(&d.regions, "acme").await.unwrap();
    assert_eq!(events.len(), 5);
}

#[tokio::test]
async fn a_denial_is_stored_in_the_tenants_home_region() {
    let d = Dirs::new().await;
    let sink = d.sink(manual());
    // The caller sets store_region to the tenant's locality for a denial.
    sink.record(event("acme", 1, "deny", "eu"));
    sink.shutdown().await.unwrap();

    assert!(keys(d.backend("us"), "_audit/").await.is_empty());
    let eu = batch_keys(d.backend("eu"), "_audit/acme/").await;
    assert_eq!(eu.len(), 1);
    let batch = body(d.backend("eu"), &eu[0]).await;
    let e: AuditEvent = serde_json::from_str(batch.lines().nth(1).unwrap()).unwrap();
    assert_eq!(e.decision, "deny");
    assert!(e.regions.is_empty());
}

#[tokio::test]
async fn tenants_have_separate_chains_outside_their_namespaces() {
    let d = Dirs::new().await;
    let sink = d.sink(manual());
    sink.record(event("acme", 1, "allow", "eu"));
    sink.record(event("globex", 2, "allow", "eu"));
    // An unknown tenant's id as a request gave it cannot escape its folder:
    // it is one key segment.
    sink.record(event("../x/y", 3, "deny", "eu"));
    sink.shutdown().await.unwrap();

    let mut all = keys(d.backend("eu"), "").await;
    all.sort();
    assert_eq!(
        all,
        [
            "_audit/..%2Fx%2Fy/w1/000000000000.jsonl",
            "_audit/..%2Fx%2Fy/w1/HEAD.json",
            "_audit/acme/w1/000000000000.jsonl",
            "_audit/acme/w1/HEAD.json",
            "_audit/globex/w1/000000000000.jsonl",
            "_audit/globex/w1/HEAD.json",
        ]
    );
    assert_eq!(audit_prefix("../x/y"), "_audit/..%2Fx%2Fy/");
    for t in ["acme", "globex", "../x/y"] {
        let report = verify_chain(&d.regions, t).await.unwrap();
        assert!(report.ok, "{report:#?}");
        let events = read_events(&d.regions, t).await.unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].tenant, t);
    }
}

#[tokio::test(start_paused = true)]
async fn a_full_batch_is_stored_at_once() {
    let d = Dirs::new().await;
    let config = BatchConfig {
        max_events: 3,
        ..manual()
    };
    let sink = d.sink(config);
    for n in 0..7 {
        sink.record(event("acme", n, "allow", "eu"));
    }
    wait_for_batches(d.backend("eu"), "_audit/acme/", 2).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Two full batches; the seventh event waits for more, or for max_age.
    let stored = batch_keys(d.backend("eu"), "_audit/acme/").await;
    assert_eq!(stored.len(), 2);
    for k in &stored {
        assert_eq!(header(&body(d.backend("eu"), k).await)["count"], 3);
    }
    sink.shutdown().await.unwrap();
    assert_eq!(batch_keys(d.backend("eu"), "_audit/acme/").await.len(), 3);
    assert_eq!(read_events(&d.regions, "acme").await.unwrap().len(), 7);
}

#[tokio::test(start_paused = true)]
async fn a_batch_is_stored_when_its_oldest_event_is_max_age_old() {
    let d = Dirs::new().await;
    let config = BatchConfig {
        max_age: Duration::from_secs(5),
        ..BatchConfig::default()
    };
    let sink = d.sink(config);
    let start = tokio::time::Instant::now();
    sink.record(event("acme", 0, "allow", "eu"));
    tokio::time::sleep(Duration::from_secs(2)).await;
    sink.record(event("acme", 1, "allow", "eu"));
    tokio::time::sleep(Duration::from_millis(2900)).await;
    assert!(batch_keys(d.backend("eu"), "_audit/").await.is_empty());

    wait_for_batches(d.backend("eu"), "_audit/acme/", 1).await;
    let elapsed = start.elapsed();
    assert!(
        elapsed >= Duration::from_secs(5) && elapsed < Duration::from_secs(6),
        "{elapsed:?}"
    );
    let stored = batch_keys(d.backend("eu"), "_audit/acme/").await;
    assert_eq!(header(&body(d.backend("eu"), &stored[0]).await)["count"], 2);
    sink.shutdown().await.unwrap();
    assert!(verify_chain(&d.regions, "acme").await.unwrap().ok);
}

#[tokio::test]
async fn shutdown_stores_what_is_buffered_and_then_refuses() {
    let d = Dirs::new().await;
    let sink = d.sink(manual());
    sink.record(event("acme", 0, "allow", "eu"));
    sink.record(event("acme", 1, "allow", "us"));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(keys(d.backend("eu"), "").await.is_empty());

    sink.shutdown().await.unwrap();
    assert_eq!(read_events(&d.regions, "acme").await.unwrap().len(), 2);

    // After shutdown: events are dropped (and counted), never stored.
    sink.record(event("acme", 2, "allow", "eu"));
    assert_eq!(sink.flush().await, Err(AuditFlushError::Closed));
    assert_eq!(sink.shutdown().await, Err(AuditFlushError::Closed));
    assert_eq!(read_events(&d.regions, "acme").await.unwrap().len(), 2);
}

#[tokio::test]
async fn flush_stores_and_the_sink_keeps_chaining() {
    let d = Dirs::new().await;
    let sink = d.sink(manual());
    sink.flush().await.unwrap(); // nothing to store
    sink.record(event("acme", 0, "allow", "eu"));
    sink.flush().await.unwrap();
    assert_eq!(batch_keys(d.backend("eu"), "").await.len(), 1);
    sink.record(event("acme", 1, "allow", "eu"));
    sink.flush().await.unwrap();
    assert_eq!(
        batch_keys(d.backend("eu"), "").await,
        [
            "_audit/acme/w1/000000000000.jsonl",
            "_audit/acme/w1/000000000001.jsonl"
        ]
    );
    let report = verify_chain(&d.regions, "acme").await.unwrap();
    assert!(report.ok, "{report:#?}");
    assert_eq!(report.writers[0].head, Some(1));
    sink.shutdown().await.unwrap();
}

#[tokio::test]
async fn dropping_the_sink_stores_in_the_background() {
    let d = Dirs::new().await;
    let sink = d.sink(manual());
    sink.record(event("acme", 0, "allow", "eu"));
    drop(sink);
    wait_for_batches(d.backend("eu"), "_audit/acme/", 1).await;
}

#[tokio::test(start_paused = true)]
async fn a_failed_store_is_retried_in_order_and_the_chain_does_not_fork() {
    let eu = Arc::new(MemoryBackend::new("eu"));
    let us = Arc::new(MemoryBackend::new("us"));
    let regions: Regions = vec![("eu".into(), eu.clone()), ("us".into(), us.clone())];
    let config = BatchConfig {
        flush_timeout: Duration::from_secs(1),
        ..manual()
    };
    let sink = BatchingAuditSink::new(regions.clone(), writer("w1"), config);
    eu.set_unavailable(true);
    sink.record(event("acme", 0, "allow", "eu"));
    sink.record(event("acme", 1, "allow", "us"));
    assert_eq!(
        sink.flush().await,
        Err(AuditFlushError::Pending {
            batches: 2,
            events: 2
        })
    );
    // seq 1 (us) waits behind seq 0 (eu): no gap is ever visible.
    assert!(us.keys().is_empty());
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert!(us.keys().is_empty());

    eu.set_unavailable(false);
    sink.flush().await.unwrap();
    sink.record(event("acme", 2, "allow", "eu"));
    sink.shutdown().await.unwrap();
    let report = verify_chain(&regions, "acme").await.unwrap();
    assert!(report.ok, "{report:#?}");
    assert_eq!(report.writers[0].batches, 3);
    assert_eq!(report.writers[0].events, 3);
    assert_eq!(report.writers[0].head, Some(2));
}

#[tokio::test(start_paused = true)]
async fn beyond_the_memory_bound_new_events_are_dropped_not_chained() {
    let eu = Arc::new(MemoryBackend::new("eu"));
    let regions: Regions = vec![("eu".into(), eu.clone())];
    let config = BatchConfig {
        max_buffered_events: 2,
        flush_timeout: Duration::from_secs(1),
        ..manual()
    };
    let sink = BatchingAuditSink::new(regions.clone(), writer("w1"), config);
    eu.set_unavailable(true);
    for n in 0..5 {
        sink.record(event("acme", n, "allow", "eu"));
    }
    // An event for a region without a backend is dropped too.
    sink.record(event("acme", 9, "allow", "mars"));
    assert!(sink.flush().await.is_err());
    eu.set_unavailable(false);
    sink.shutdown().await.unwrap();
    let report = verify_chain(&regions, "acme").await.unwrap();
    assert!(report.ok, "{report:#?}");
    assert_eq!(report.writers[0].events, 2);
}

#[tokio::test]
async fn read_events_returns_every_region_in_time_order() {
    let d = Dirs::new().await;
    let a = BatchingAuditSink::new(d.regions.clone(), writer("a"), manual());
    let b = BatchingAuditSink::new(d.regions.clone(), writer("b"), manual());
    for n in [5, 1, 3] {
        a.record(event("acme", n, "allow", "eu"));
    }
    for n in [4, 0, 2] {
        b.record(event("acme", n, "allow", "us"));
    }
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
    let ids: Vec<String> = read_events(&d.regions, "acme")
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.request_id)
        .collect();
    assert_eq!(ids, ["req-0", "req-1", "req-2", "req-3", "req-4", "req-5"]);
    let report = verify_chain(&d.regions, "acme").await.unwrap();
    assert!(report.ok, "{report:#?}");
    assert_eq!(report.writers.len(), 2);
}

#[test]
fn writer_ids_are_safe_in_keys() {
    for bad in ["", "a/b", "..", ".hidden", "a b", "é"] {
        assert!(WriterId::new(bad).is_err(), "{bad:?}");
    }
    assert!(WriterId::new("web-1.eu_2").is_ok());
    let a = WriterId::for_this_process();
    let b = WriterId::for_this_process();
    assert_ne!(a, b);
    assert!(WriterId::new(a.as_str()).is_ok(), "{a}");
    assert!(a.as_str().contains(&format!("-{}-", std::process::id())));
}

// --- tampering -------------------------------------------------------------

/// A chain of 5 batches of 2 events for `acme`, alternating eu, us, eu, us,
/// eu; returns each batch's (region, key).
async fn chain(d: &Dirs) -> Vec<(String, String)> {
    let sink = d.sink(manual());
    let mut batches = Vec::new();
    for seq in 0..5u32 {
        let region = if seq % 2 == 0 { "eu" } else { "us" };
        sink.record(event("acme", seq * 2, "allow", region));
        sink.record(event("acme", seq * 2 + 1, "allow", region));
        sink.flush().await.unwrap();
        batches.push((region.to_owned(), format!("_audit/acme/w1/{seq:012}.jsonl")));
    }
    sink.shutdown().await.unwrap();
    let report = verify_chain(&d.regions, "acme").await.unwrap();
    assert!(report.ok, "{report:#?}");
    let w = &report.writers[0];
    assert_eq!((w.batches, w.events, w.head), (5, 10, Some(4)));
    batches
}

/// Sets the last byte of the first `needle` in `bytes` to `to`.
fn set_last_byte_of(bytes: &mut [u8], needle: &[u8], to: u8) {
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap();
    bytes[at + needle.len() - 1] = to;
}

/// Fresh directories holding [`chain`]'s five batches.
async fn chained() -> (Dirs, Vec<(String, String)>) {
    let d = Dirs::new().await;
    let batches = chain(&d).await;
    (d, batches)
}

#[tokio::test]
async fn verify_detects_a_removed_middle_batch() {
    let (d, batches) = chained().await;
    d.delete(&batches[2]).await;
    assert_problem(&d.verify().await, "batch 2 is missing");
}

#[tokio::test]
async fn verify_detects_an_edited_batch() {
    let (d, batches) = chained().await;
    // One byte, on disk, keeping the JSON valid: tickets/2 -> tickets/7.
    d.edit(&batches[1], |b| set_last_byte_of(b, b"tickets/2", b'7'));
    let report = d.verify().await;
    assert_problem(&report, "batch 2: prev_sha256 does not match batch 1");
    assert_eq!(problems(&report).len(), 1, "{report:#?}");
}

#[tokio::test]
async fn verify_detects_an_edited_last_batch_through_head() {
    let (d, batches) = chained().await;
    d.edit(&batches[4], |b| set_last_byte_of(b, b"tickets/8", b'0'));
    assert_problem(&d.verify().await, "names batch 4 with SHA-256");
}

#[tokio::test]
async fn verify_detects_the_last_batch_removed() {
    let (d, batches) = chained().await;
    d.delete(&batches[4]).await;
    assert_problem(&d.verify().await, "names batch 4 but the last batch is 3");
}

#[tokio::test]
async fn verify_detects_the_end_removed_with_its_head() {
    let (d, batches) = chained().await;
    // Batch 4 and the HEAD of its region (eu) go; us's HEAD still names 4.
    d.delete(&batches[4]).await;
    d.delete_head(&batches[4].0).await;
    assert_problem(&d.verify().await, "HEAD in region us names batch 4");
}

#[tokio::test]
async fn verify_detects_a_batch_truncated_by_a_line() {
    let (d, batches) = chained().await;
    d.edit(&batches[3], |b| {
        // Drop the last line (and keep the file ending with '\n').
        b.pop();
        let cut = b.iter().rposition(|c| *c == b'\n').unwrap() + 1;
        b.truncate(cut);
    });
    let report = d.verify().await;
    assert_problem(
        &report,
        "batch 3: the header says 2 event(s) but 1 line(s) follow",
    );
    assert_problem(&report, "batch 4: prev_sha256 does not match batch 3");
}

#[tokio::test]
async fn verify_detects_a_cut_in_the_middle_of_a_line() {
    let (d, batches) = chained().await;
    d.edit(&batches[0], |b| b.truncate(b.len() - 10));
    assert_problem(&d.verify().await, "batch 0: the last line is incomplete");
}

#[tokio::test]
async fn verify_detects_another_tenants_event() {
    let (d, batches) = chained().await;
    d.edit(&batches[0], |b| {
        let text = String::from_utf8(b.clone()).unwrap();
        // Same length, so only the tenant check and the hash chain see it.
        *b = text
            .replacen(
                "\"tenant\":\"acme\",\"op\"",
                "\"tenant\":\"acmf\",\"op\"",
                1,
            )
            .into_bytes();
    });
    let report = d.verify().await;
    assert_problem(&report, "an event of tenant \"acmf\"");
    // read_events leaves it out.
    assert_eq!(read_events(&d.regions, "acme").await.unwrap().len(), 9);
}

#[tokio::test]
async fn verify_detects_a_removed_first_batch_and_a_removed_head() {
    let (d, batches) = chained().await;
    d.delete(&batches[0]).await;
    for r in ["eu", "us"] {
        d.delete_head(r).await;
    }
    let report = d.verify().await;
    assert_problem(&report, "batch 0 is missing");
    assert_problem(&report, "no HEAD record");
}
