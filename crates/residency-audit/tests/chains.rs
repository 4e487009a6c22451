//! A writer that writes for more tenants than `max_chains` keeps at most
//! that many chains in memory: idle ones are closed, and a closed tenant's
//! next batch starts a new chain in the writer's next folder. Every chain
//! still verifies and no event is lost.

use std::sync::Arc;

use residency_audit::batch::{read_events, verify_chain, BatchConfig, BatchingAuditSink, WriterId};
use residency_audit::{AuditEvent, AuditSink};
use residency_store::{Backend, MemoryBackend};

fn event(tenant: &str, n: usize) -> AuditEvent {
    AuditEvent {
        time: AuditEvent::now(),
        request_id: format!("req-{tenant}-{n}"),
        tenant: tenant.to_owned(),
        op: "put".into(),
        key: format!("tickets/{n}.json"),
        category: Some("ticket_data".into()),
        classified_by: Some("key_rule".into()),
        decision: "allow".into(),
        regions: vec!["eu".into()],
        bucket: Some(tenant.to_owned()),
        reason: "locality".into(),
        out_of_locality: false,
        policy_version: "2017-11-01".into(),
        store_region: "eu".into(),
    }
}

#[tokio::test]
async fn idle_chains_are_closed_past_max_chains_and_every_chain_still_verifies() {
    let eu: Arc<dyn Backend> = Arc::new(MemoryBackend::new("eu"));
    let us: Arc<dyn Backend> = Arc::new(MemoryBackend::new("us"));
    let regions = vec![("eu".to_owned(), eu), ("us".to_owned(), us)];
    let sink = BatchingAuditSink::new(
        regions.clone(),
        WriterId::new("web-1").unwrap(),
        BatchConfig {
            max_chains: 4,
            ..BatchConfig::default()
        },
    );
    let tenants: Vec<String> = (0..10).map(|i| format!("t{i}")).collect();
    // Two rounds over ten tenants, one durable record at a time: each is
    // stored before the next, so the chains of the first round are idle
    // (and some closed) when the second round writes for them again.
    for round in 0..2 {
        for t in &tenants {
            sink.record_event_durable(event(t, round))
                .await
                .expect("stored");
        }
    }
    sink.shutdown().await.unwrap();

    let mut reopened = 0;
    for t in &tenants {
        let report = verify_chain(&regions, t).await.unwrap();
        assert!(report.ok, "{t}: {report:?}");
        let events = read_events(&regions, t).await.unwrap();
        assert_eq!(events.len(), 2, "{t}: no event lost");
        for w in &report.writers {
            assert!(
                w.writer == "web-1" || w.writer.starts_with("web-1."),
                "{}",
                w.writer
            );
            assert!(w.problems.is_empty(), "{t}: {w:?}");
        }
        if report.writers.len() > 1 {
            reopened += 1;
        }
    }
    // Ten tenants through four chains: the first ones were closed and
    // written again in a later folder.
    assert!(reopened >= 4, "{reopened} tenants had a second chain");
}

#[tokio::test]
async fn below_max_chains_a_tenant_keeps_one_chain() {
    let eu: Arc<dyn Backend> = Arc::new(MemoryBackend::new("eu"));
    let regions = vec![("eu".to_owned(), eu)];
    let sink = BatchingAuditSink::new(
        regions.clone(),
        WriterId::new("web-1").unwrap(),
        BatchConfig::default(),
    );
    for round in 0..3 {
        for t in ["a", "b"] {
            sink.record_event_durable(event(t, round)).await.unwrap();
        }
    }
    sink.shutdown().await.unwrap();
    for t in ["a", "b"] {
        let report = verify_chain(&regions, t).await.unwrap();
        assert!(report.ok);
        assert_eq!(report.writers.len(), 1, "{report:?}");
        assert_eq!(report.writers[0].batches, 3);
    }
}
