//! A cached lookup (same policy generation) is answered at once and performs
//! no heap allocation of its own (a counting global allocator in this
//! dedicated test binary; one test only, so no other test thread allocates
//! meanwhile). moka records each read in a bounded buffer and, every 64 reads
//! of a cache, applies them inline (its maintenance allocates a little): the
//! bound below is that amortized cost, about one allocation per 64 reads.

#![cfg(feature = "postgres")]

mod support;

use std::alloc::System;

use residency_directory::{Directory, DirectoryKey};
use residency_testkit::PostgresCluster;
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};
use support::*;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

#[tokio::test]
async fn a_cached_lookup_is_ready_and_does_not_allocate_per_lookup() {
    let pg = PostgresCluster::start().expect("start PostgreSQL");
    let url = database(&pg, "hot_path");
    let key = DirectoryKey::generate();
    let policy = policy();
    let (dir, _) = imported(&url, &key).await;
    let ids = ["acme", "globex", "initech", "eurobank"];
    for id in ids {
        cache_tenant(&dir, &policy, id).await;
        let bucket = dir.tenant(&policy, id).await.unwrap().unwrap();
        cache_bucket(&dir, &policy, bucket.bucket()).await;
    }
    cache_key(&dir, "ACMEEXAMPLEKEY").await;
    cache_key(&dir, "APPSERVEREXAMPLEKEY").await;
    let buckets: Vec<String> = ids.iter().map(|id| id.to_string()).collect();
    // No await from here on: nothing else runs on this (current-thread)
    // runtime, so no notification drops an entry meanwhile.
    let run = |n: usize| {
        let mut found = 0;
        for _ in 0..n {
            for (id, bucket) in ids.iter().zip(&buckets) {
                let t = dir.tenant(&policy, id).now().expect("cached");
                found += t.unwrap().is_some() as usize;
                let b = dir.tenant_by_bucket(&policy, bucket).now().expect("cached");
                found += b.unwrap().is_some() as usize;
            }
            for k in ["ACMEEXAMPLEKEY", "APPSERVEREXAMPLEKEY"] {
                let g = dir.access_key(k).now().expect("cached");
                found += g.unwrap().is_some() as usize;
            }
        }
        found
    };
    assert_eq!(run(10), 100);
    let region = Region::new(GLOBAL);
    let found = run(1000);
    let stats = region.change();
    assert_eq!(found, 10_000);
    // 10,000 lookups read the caches 14,000 times: at most one allocation
    // per 64 reads (moka's maintenance), none per lookup.
    assert!(
        stats.allocations + stats.reallocations <= 14_000 / 64,
        "cached lookups allocated: {stats:?}"
    );
}
