//! Config parsing: the hosting policy, a tenants file against the shipped
//! policy, and the sidecar's residency.toml. Any input: an error report or a
//! value, never a panic.
#![no_main]

use std::path::Path;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use residency_policy::{Policy, Tenants};

fn shipped_policy() -> &'static Policy {
    static P: OnceLock<Policy> = OnceLock::new();
    P.get_or_init(|| {
        Policy::from_toml(
            include_str!("../../config/hosting-policy.toml"),
            "hosting-policy.toml",
        )
        .expect("the shipped policy parses")
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(p) = Policy::from_toml(src, "fuzz.toml") {
        // A policy that parses can take a tenants file.
        let _ = Tenants::from_toml(
            include_str!("../../config/tenants.example.toml"),
            "t.toml",
            &p,
        );
    }
    let _ = Tenants::from_toml(src, "fuzz.toml", shipped_policy());
    let _ = residency_proxy::Config::parse(src, Path::new("fuzz.toml"));
});
