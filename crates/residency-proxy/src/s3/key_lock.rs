//! Per-key locks of one sidecar process, for the writes that read the
//! object before writing it (conditional writes, tag changes): two such
//! writes of the same key through this sidecar run one after the other.
//!
//! The locks are striped: a key hashes to one of a fixed number of mutexes,
//! so memory stays bounded whatever the keys; two keys sharing a stripe only
//! wait for each other. They do not reach other sidecar replicas, nor
//! writes that take no lock (see docs/s3-compatibility.md).

use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::Arc;

use tokio::sync::{Mutex, MutexGuard};

/// How many stripes: enough that unrelated keys rarely share one.
const STRIPES: usize = 1024;

/// The locks, shared by every clone of the gateway.
#[derive(Clone)]
pub(crate) struct KeyLocks {
    stripes: Arc<[Mutex<()>]>,
    hasher: std::collections::hash_map::RandomState,
}

impl Default for KeyLocks {
    fn default() -> Self {
        Self {
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
            hasher: std::collections::hash_map::RandomState::new(),
        }
    }
}

impl KeyLocks {
    fn stripe(&self, bucket: &str, key: &str) -> usize {
        let mut h = self.hasher.build_hasher();
        bucket.hash(&mut h);
        key.hash(&mut h);
        (h.finish() as usize) % self.stripes.len()
    }

    /// Waits for the lock of `key` in `bucket` (the virtual bucket: one per
    /// tenant) and holds it until the guard is dropped.
    pub(crate) async fn lock(&self, bucket: &str, key: &str) -> MutexGuard<'_, ()> {
        self.stripes[self.stripe(bucket, key)].lock().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_held_key_waits_and_another_bucket_does_not_share_by_name() {
        let locks = KeyLocks::default();
        let held = locks.lock("acme", "a").await;
        let same = locks.stripe("acme", "a");
        assert!(locks.stripes[same].try_lock().is_err());
        drop(held);
        assert!(locks.stripes[same].try_lock().is_ok());
        // The bucket is part of what is hashed.
        let spread: std::collections::HashSet<usize> = (0..64)
            .map(|i| locks.stripe(&format!("bucket{i}"), "a"))
            .collect();
        assert!(spread.len() > 1);
    }
}
