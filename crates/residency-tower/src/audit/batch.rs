//! Batching audit sink: hash-chained JSON-lines batches under
//! `_audit/<tenant>/` in the region where each described object was placed.
//! (Being written.)
