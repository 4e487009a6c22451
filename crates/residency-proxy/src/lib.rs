//! residency-proxy (work in progress).
