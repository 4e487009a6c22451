//! A tenant's fair share of a region's backend permits.
//!
//! Each region bounds its in-flight backend calls (`concurrency_per_region`).
//! Without a per-tenant bound, one tenant with many slow calls (uploads whose
//! clients stall) holds every permit and the region hangs for everyone. A
//! [`TenantShare`] counts, per tenant, the calls in a region that hold or wait
//! for a permit; a call over the tenant's share is refused at once
//! (`503 SlowDown`), never queued.
//!
//! Each region's stack enforces its share in the layer that holds its permits
//! (`dispatch/limit.rs`; the region call names its tenant), before the call
//! waits for a permit.
//!
//! ```
//! use residency_tower::fair::TenantShare;
//! let share = TenantShare::new(8, 0.5); // 4 of 8 permits per tenant
//! let held: Vec<_> = (0..4).map(|_| share.try_enter("acme").unwrap()).collect();
//! assert!(share.try_enter("acme").is_none());
//! assert!(share.try_enter("globex").is_some());
//! drop(held);
//! assert!(share.try_enter("acme").is_some());
//! ```

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Mutex, OnceLock};

use nohash_hasher::BuildNoHashHasher;

/// The default share of a region's permits one tenant may hold.
pub const DEFAULT_TENANT_SHARE: f64 = 0.5;

/// A tenant as its share counts it: a 64-bit hash of its id, the same in
/// every region of the process, computed once per call (two tenants whose
/// ids collide would share one count: stricter for both, never looser).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TenantKey(u64);

impl TenantKey {
    pub(crate) fn of(tenant: &str) -> TenantKey {
        static HASHER: OnceLock<RandomState> = OnceLock::new();
        TenantKey(HASHER.get_or_init(RandomState::new).hash_one(tenant))
    }
}

/// Counts each tenant's calls in one region against a bound.
#[derive(Debug)]
pub struct TenantShare {
    /// Calls one tenant may have at once; `None` when unbounded.
    limit: Option<usize>,
    /// Keyed by [`TenantKey`] (already a hash: the map does not hash it
    /// again), so that counting a call allocates nothing.
    in_flight: Mutex<HashMap<u64, usize, BuildNoHashHasher<u64>>>,
}

/// A tenant's place in its share; given back when dropped.
#[derive(Debug)]
pub struct ShareGuard<'a> {
    share: &'a TenantShare,
    /// `None` when the share is unbounded (nothing was counted).
    tenant: Option<u64>,
}

impl TenantShare {
    /// A share of `fraction` of `permits` per tenant (at least one call); a
    /// fraction of 1 or more leaves tenants unbounded.
    pub fn new(permits: usize, fraction: f64) -> TenantShare {
        let limit = (fraction < 1.0).then(|| ((permits as f64 * fraction).floor() as usize).max(1));
        TenantShare {
            limit,
            in_flight: Mutex::new(HashMap::default()),
        }
    }

    /// The calls one tenant may have at once (`None`: unbounded).
    pub fn limit(&self) -> Option<usize> {
        self.limit
    }

    /// Counts one call of `tenant`, or `None` when the tenant already has its
    /// share.
    pub fn try_enter(&self, tenant: &str) -> Option<ShareGuard<'_>> {
        let tenant = self.enter(TenantKey::of(tenant))?;
        Some(ShareGuard {
            share: self,
            tenant,
        })
    }

    /// Counts one call: `Some(Some(tenant))` counted, `Some(None)` unbounded,
    /// `None` over the share.
    pub(crate) fn enter(&self, TenantKey(key): TenantKey) -> Option<Option<u64>> {
        let Some(limit) = self.limit else {
            return Some(None);
        };
        let mut m = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        let n = m.entry(key).or_insert(0);
        if *n >= limit {
            return None;
        }
        *n += 1;
        Some(Some(key))
    }

    /// Gives back one call counted by [`Self::enter`].
    pub(crate) fn leave(&self, key: u64) {
        let mut m = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                m.remove(&key);
            }
        }
    }

    /// Calls in flight for `tenant`.
    pub fn in_flight(&self, tenant: &str) -> usize {
        let m = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        m.get(&TenantKey::of(tenant).0).copied().unwrap_or(0)
    }
}

impl Drop for ShareGuard<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.tenant {
            self.share.leave(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn share_is_a_fraction_of_the_permits_at_least_one() {
        assert_eq!(TenantShare::new(256, 0.5).limit(), Some(128));
        assert_eq!(TenantShare::new(8, 0.3).limit(), Some(2));
        assert_eq!(TenantShare::new(1, 0.5).limit(), Some(1));
        assert_eq!(TenantShare::new(256, 1.0).limit(), None);
    }

    #[test]
    fn a_tenant_over_its_share_is_refused_and_others_are_not() {
        let s = TenantShare::new(4, 0.5);
        let a1 = s.try_enter("acme").unwrap();
        let _a2 = s.try_enter("acme").unwrap();
        assert!(s.try_enter("acme").is_none());
        assert_eq!(s.in_flight("acme"), 2);
        let _g = s.try_enter("globex").unwrap();
        drop(a1);
        assert_eq!(s.in_flight("acme"), 1);
        assert!(s.try_enter("acme").is_some());
    }

    #[test]
    fn released_guards_leave_nothing_behind() {
        let s = TenantShare::new(10, 0.5);
        let gs: Vec<_> = (0..5).map(|_| s.try_enter("acme").unwrap()).collect();
        drop(gs);
        assert_eq!(s.in_flight("acme"), 0);
        assert!(s.in_flight.lock().unwrap().is_empty());
    }

    #[test]
    fn unbounded_share_counts_nothing() {
        let s = TenantShare::new(2, 1.0);
        let gs: Vec<_> = (0..5).map(|_| s.try_enter("acme").unwrap()).collect();
        assert_eq!(s.in_flight("acme"), 0);
        drop(gs);
        assert_eq!(s.enter(TenantKey::of("acme")), Some(None));
    }
}
