//! Regions: where data may be hosted.

use std::fmt;
use std::sync::Arc;

/// The most regions one policy may declare (they fit a 64-bit set).
pub const MAX_REGIONS: usize = 64;

/// A region declared in the policy, by its position in declaration order.
///
/// Cheap to copy and compare; [`crate::Policy::region`] gives its details.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RegionId(pub(crate) u8);

impl RegionId {
    /// Position of the region in the policy's declaration order.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// A region: a jurisdiction (with its member countries) and the provider
/// locations that count as inside it, each with the country it is in.
///
/// Built only by [`crate::Policy::from_toml`], which refuses a location whose
/// country is not a member of the jurisdiction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    pub(crate) id: Arc<str>,
    pub(crate) jurisdiction: String,
    pub(crate) locations: Vec<String>,
    /// Where each location is (a country code, or a group such as `EU`),
    /// parallel to `locations`.
    pub(crate) places: Vec<String>,
    /// The jurisdiction's member countries (sorted); empty when the policy
    /// neither declares nor the shipped table knows them.
    pub(crate) members: Vec<String>,
}

impl Region {
    /// The region's id as written in the policy (`eu`, `us`, ...).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The id as a shared string (cheap to clone: for metric labels).
    pub fn shared_id(&self) -> Arc<str> {
        self.id.clone()
    }

    /// The jurisdiction label (e.g. `EEA`).
    pub fn jurisdiction(&self) -> &str {
        &self.jurisdiction
    }

    /// Provider locations inside the region (what `GetBucketLocation` may answer).
    pub fn locations(&self) -> &[String] {
        &self.locations
    }

    /// Whether a provider location (e.g. `eu-west-1`) is inside this region.
    pub fn contains_location(&self, location: &str) -> bool {
        self.locations
            .iter()
            .any(|l| l.eq_ignore_ascii_case(location))
    }

    /// Where a declared location is: an ISO 3166-1 country (`IE`) or a group
    /// (`EU`); `None` for a location the region does not declare.
    pub fn location_place(&self, location: &str) -> Option<&str> {
        self.locations
            .iter()
            .position(|l| l.eq_ignore_ascii_case(location))
            .map(|i| self.places[i].as_str())
    }

    /// The jurisdiction's member countries (ISO 3166-1 alpha-2, sorted).
    pub fn members(&self) -> &[String] {
        &self.members
    }

    /// Whether a country is a member of the region's jurisdiction.
    pub fn is_member(&self, country: &str) -> bool {
        self.members
            .binary_search_by(|m| m.as_str().cmp(country))
            .is_ok()
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)
    }
}

/// A set of regions (a bit set; iteration in declaration order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct RegionSet(u64);

impl RegionSet {
    /// The empty set.
    pub const EMPTY: RegionSet = RegionSet(0);

    /// Whether `r` is in the set.
    pub fn contains(self, r: RegionId) -> bool {
        self.0 & (1u64 << r.0) != 0
    }

    /// The set with `r` added.
    #[must_use]
    pub fn with(self, r: RegionId) -> RegionSet {
        RegionSet(self.0 | (1u64 << r.0))
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Number of regions in the set.
    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// The regions in declaration order.
    pub fn iter(self) -> impl Iterator<Item = RegionId> {
        let bits = self.0;
        (0..MAX_REGIONS as u8)
            .filter(move |i| bits & (1u64 << i) != 0)
            .map(RegionId)
    }
}

impl FromIterator<RegionId> for RegionSet {
    fn from_iter<I: IntoIterator<Item = RegionId>>(iter: I) -> Self {
        iter.into_iter().fold(RegionSet::EMPTY, RegionSet::with)
    }
}

/// A short ordered list of distinct regions (no allocation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegionOrder {
    items: [u8; MAX_REGIONS],
    len: u8,
    set: RegionSet,
}

impl Default for RegionOrder {
    fn default() -> Self {
        RegionOrder {
            items: [0; MAX_REGIONS],
            len: 0,
            set: RegionSet::EMPTY,
        }
    }
}

impl RegionOrder {
    /// A list of one region.
    pub fn one(r: RegionId) -> RegionOrder {
        let mut o = RegionOrder::default();
        o.push(r);
        o
    }

    /// Appends `r` unless already present.
    pub fn push(&mut self, r: RegionId) {
        if !self.set.contains(r) {
            self.set = self.set.with(r);
            self.items[self.len as usize] = r.0;
            self.len += 1;
        }
    }

    /// The regions in order.
    pub fn iter(&self) -> impl Iterator<Item = RegionId> + '_ {
        self.items[..self.len as usize].iter().map(|&i| RegionId(i))
    }

    /// Number of regions.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The regions as a set.
    pub fn as_set(&self) -> RegionSet {
        self.set
    }
}
