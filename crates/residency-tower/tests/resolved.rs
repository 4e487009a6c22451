//! The edge resolves (ruleset snapshot, tenant) once and the layer decides
//! under that snapshot: a reload between the edge's check and the decision
//! cannot make them differ.

mod support;

use std::sync::Arc;

use residency_policy::TenantLookup;
use residency_store::{Body, MemoryBackend, Operation};
use residency_tower::{RegionalDispatch, RoutingLayer, RulesetHandle, StorageRequest};
use support::{rules_from, TENANTS};
use tower::{Layer, ServiceExt};

fn put(key: &str) -> Operation {
    Operation::Put {
        key: key.into(),
        body: Body::from("x"),
        meta: Default::default(),
    }
}

#[tokio::test]
async fn a_reload_after_the_edge_resolved_does_not_change_the_decision() {
    // acme's ticket data goes to its locality: the EU now, the US after the reload.
    let before = rules_from(TENANTS);
    let moved = TENANTS.replacen("locality = \"eu\"", "locality = \"us\"", 1);
    let after = rules_from(&moved);
    assert_eq!(
        after.tenants().by_tenant_id("acme").unwrap().locality(),
        after.policy().region_by_id("us")
    );

    let eu = Arc::new(MemoryBackend::new("eu"));
    let us = Arc::new(MemoryBackend::new("us"));
    let dispatch = RegionalDispatch::builder()
        .region("eu", eu.clone())
        .region("us", us.clone())
        .build();
    let handle = RulesetHandle::new(before);
    let svc = RoutingLayer::new(handle.clone()).layer(dispatch);

    // The edge resolves the tenant (by its virtual bucket) under the rules in force...
    let current = handle.current();
    let acme = current
        .directory()
        .tenant_by_bucket(current.rules().policy(), "acme")
        .await
        .unwrap()
        .expect("acme's bucket");
    let resolved = current.resolved(acme);
    assert_eq!(resolved.tenant_record().id(), "acme");
    // ...then a reload swaps the rules before the layer decides.
    handle.store(after);

    let resp = svc
        .clone()
        .oneshot(StorageRequest::for_resolved(
            resolved,
            put("tickets/1.json"),
        ))
        .await
        .unwrap();
    assert_eq!(
        resp.region.as_deref(),
        Some("eu"),
        "decided under the resolved snapshot"
    );
    assert_eq!(eu.keys(), ["acme/tickets/1.json"]);

    // A request the caller did not resolve is resolved by the layer, under the new rules.
    let resp = svc
        .oneshot(StorageRequest::new("acme", put("tickets/2.json")))
        .await
        .unwrap();
    assert_eq!(resp.region.as_deref(), Some("us"));
    assert_eq!(us.keys(), ["acme/tickets/2.json"]);
}
