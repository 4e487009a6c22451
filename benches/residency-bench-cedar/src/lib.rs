//! Bench-only crate comparing residency-policy with cedar-policy.
