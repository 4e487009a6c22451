//! Durable audit mode through the routing layer: a write is answered only
//! once its audit record is stored, concurrent writes share one batch
//! (group commit), and a record that cannot be stored fails its write closed.

mod support;

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use residency_store::{Backend, ListRequest, MemoryBackend, Operation, PutMeta};
use residency_tower::audit::batch::{
    read_events, verify_chain, AuditMode, BatchConfig, BatchingAuditSink, WriterId,
};
use residency_tower::{
    RegionalDispatch, RoutingError, RoutingService, StorageRequest, UploadIdCodec,
};
use support::{dir_regions, dispatch_over, example_layer, Regions};
use tower::{Layer, ServiceExt};

/// Batches are never stored by age in these tests: only a durable commit
/// (or shutdown) stores them.
fn config(mode: AuditMode) -> BatchConfig {
    BatchConfig {
        mode,
        max_age: Duration::from_secs(3600),
        commit_timeout: Duration::from_millis(300),
        retry_min_backoff: Duration::from_millis(50),
        ..BatchConfig::default()
    }
}

/// An audit sink in `mode` (writer `w1`) storing into `regions`, and the
/// stack over `regions` that records into it.
fn audited_stack(
    regions: &Regions,
    mode: AuditMode,
) -> (RoutingService<RegionalDispatch>, Arc<BatchingAuditSink>) {
    let sink = Arc::new(BatchingAuditSink::new(
        regions.clone(),
        WriterId::new("w1").unwrap(),
        config(mode),
    ));
    let codec = UploadIdCodec::new(b"durable test".to_vec());
    let svc = example_layer(&codec)
        .audit_shared(sink.clone())
        .layer(dispatch_over(regions, &codec).build());
    (svc, sink)
}

fn put(key: &str) -> StorageRequest {
    StorageRequest::new(
        "acme",
        Operation::Put {
            key: key.into(),
            body: b"x".to_vec().into(),
            meta: Default::default(),
        },
    )
}

async fn batch_objects(regions: &Regions) -> usize {
    let mut n = 0;
    for (_, b) in regions {
        let page = b
            .list_objects(ListRequest::new("_audit/acme/"))
            .await
            .unwrap();
        n += page
            .objects
            .iter()
            .filter(|o| o.key.ends_with(".jsonl"))
            .count();
    }
    n
}

#[tokio::test]
async fn a_durable_write_is_answered_only_once_its_record_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let regions = dir_regions(dir.path()).await;
    let (svc, _sink) = audited_stack(&regions, AuditMode::Durable);
    for i in 0..3 {
        svc.clone()
            .oneshot(put(&format!("tickets/{i}.json")))
            .await
            .unwrap();
    }
    // No flush, no shutdown: what a crash right now would leave.
    let events = read_events(&regions, "acme").await.unwrap();
    let keys: Vec<&str> = events.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        keys,
        ["tickets/0.json", "tickets/1.json", "tickets/2.json"],
        "every acknowledged write has its record stored"
    );
    assert!(verify_chain(&regions, "acme").await.unwrap().ok);
}

#[tokio::test]
async fn a_batched_write_is_answered_before_its_record_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let regions = dir_regions(dir.path()).await;
    let (svc, sink) = audited_stack(&regions, AuditMode::Batched);
    svc.clone().oneshot(put("tickets/0.json")).await.unwrap();
    // The documented risk of batched mode: nothing stored yet.
    assert!(read_events(&regions, "acme").await.unwrap().is_empty());
    sink.shutdown().await.unwrap();
    assert_eq!(read_events(&regions, "acme").await.unwrap().len(), 1);
}

#[tokio::test]
async fn concurrent_durable_writes_share_batches() {
    let dir = tempfile::tempdir().unwrap();
    let regions = dir_regions(dir.path()).await;
    let (svc, _sink) = audited_stack(&regions, AuditMode::Durable);
    const N: usize = 32;
    let results =
        join_all((0..N).map(|i| svc.clone().oneshot(put(&format!("tickets/{i}.json"))))).await;
    assert!(results.iter().all(Result::is_ok));
    let events = read_events(&regions, "acme").await.unwrap();
    assert_eq!(events.len(), N, "every acknowledged write is recorded");
    let batches = batch_objects(&regions).await;
    assert!(
        batches < N,
        "{N} concurrent writes took {batches} batch objects: no group commit"
    );
    assert!(verify_chain(&regions, "acme").await.unwrap().ok);
}

#[tokio::test]
async fn a_record_that_cannot_be_stored_fails_its_write_closed() {
    let eu = Arc::new(MemoryBackend::new("eu"));
    let us = Arc::new(MemoryBackend::new("us"));
    let regions: Regions = vec![("eu".to_owned(), eu.clone()), ("us".to_owned(), us.clone())];
    let (svc, sink) = audited_stack(&regions, AuditMode::Durable);
    eu.set_unavailable(true);
    let err = svc
        .clone()
        .oneshot(put("tickets/1.json"))
        .await
        .expect_err("the record cannot be stored");
    let err = err.downcast::<RoutingError>().unwrap();
    assert!(
        matches!(*err, RoutingError::Audit(_)),
        "failed on the audit record, before the backend: {err}"
    );
    assert_eq!(err.http_status(), 503);
    eu.set_unavailable(false);
    // The write was never sent: no object, whatever the retried record says.
    assert!(
        !eu.keys().iter().any(|k| k.contains("tickets/1.json")),
        "{:?}",
        eu.keys()
    );
    sink.shutdown().await.unwrap();
}

/// A chain stored before durable mode (format `chain: 1`, written by the
/// batching sink of the previous release) still reads and verifies.
#[tokio::test]
async fn a_chain_written_before_durable_mode_still_verifies() {
    let root =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/audit-chain-v1");
    let eu: Arc<dyn Backend> = Arc::new(MemoryBackend::new("eu"));
    let mut n = 0;
    for entry in walk(&root) {
        let key = entry
            .strip_prefix(&root)
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        let bytes = std::fs::read(&entry).unwrap();
        eu.put_object(&key, bytes.into(), PutMeta::default())
            .await
            .unwrap();
        n += 1;
    }
    assert!(n >= 3, "fixture files: {n}");
    let regions = vec![("eu".to_owned(), eu.clone())];
    let report = verify_chain(&regions, "acme").await.unwrap();
    assert!(report.ok, "{report:#?}");
    assert_eq!(report.writers[0].batches, 2);
    assert_eq!(read_events(&regions, "acme").await.unwrap().len(), 3);
    // ... and a batch removed from it is still found.
    eu.delete_object("_audit/acme/old-writer/000000000000.jsonl")
        .await
        .unwrap();
    assert!(!verify_chain(&regions, "acme").await.unwrap().ok);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
