//! classify + decide performs no heap allocation (a counting global
//! allocator in this dedicated test binary; one test only, so no other test
//! thread allocates meanwhile).

use residency_policy::{Decision, PlacementRequest, Ruleset};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};
use std::alloc::System;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

#[test]
fn classify_and_decide_do_not_allocate() {
    let policy = include_str!("../../../config/hosting-policy.toml");
    let tenants = include_str!("../../../config/tenants.example.toml");
    let rules = Ruleset::from_toml(policy, "p", tenants, "t").unwrap();
    let requests = [
        ("acme", "tickets/1/comment.json", None, None),
        ("acme", "chat/9.json", None, None),
        ("eurobank", "talk/recordings/1.wav", None, None),
        (
            "globex",
            "logs/chat/9.json",
            None,
            Some("audio/mpeg; rate=8000"),
        ),
        ("initech", "backups/chat_content/1.tar", None, None),
        ("initech", "misc/x", Some("user_data"), None),
        ("acme", "chat/1.json", Some("ticket_data"), None),
        ("nobody", "tickets/1", None, None),
        ("acme", "random", None, None),
        ("acme", "guide/images/logo.png", None, None),
    ];
    let run = |n: usize| {
        let mut allowed = 0;
        for _ in 0..n {
            for (tenant, key, category, content_type) in requests {
                let d = rules.decide(&PlacementRequest {
                    tenant,
                    key,
                    category,
                    content_type,
                });
                if matches!(d, Decision::Allow(_)) {
                    allowed += 1;
                }
                let t = rules.tenants().get(tenant);
                if let Some(t) = t {
                    std::hint::black_box(rules.read_regions(t, key));
                }
            }
        }
        allowed
    };
    // Warm up: the glob matchers' regex caches are created on first use.
    assert!(run(2) > 0);
    let region = Region::new(GLOBAL);
    let allowed = run(1000);
    let stats = region.change();
    assert_eq!(allowed, 6000, "the mix has 6 allowed requests per round");
    assert_eq!(stats.allocations, 0, "classify+decide allocated: {stats:?}");
    assert_eq!(stats.reallocations, 0, "{stats:?}");
}
