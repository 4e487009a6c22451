//! residency-tower (work in progress).
