//! Residency's policy core: regions, categories, hosting rules, tenants,
//! classification and placement decisions.
//!
//! Pure: no I/O, no async, and no heap allocation per decision. Everything
//! else in Residency depends on this crate; it depends on nothing of ours.
//!
//! ```
//! use residency_policy::{Decision, PlacementRequest, Ruleset};
//!
//! let policy = r#"
//!     version = "2017-11-01"
//!     default_region = "us"
//!     [regions.eu]
//!     jurisdiction = "EEA"
//!     [regions.us]
//!     jurisdiction = "US"
//!     [categories.chat_content]  # "Chat Content: available to be hosted in the EEA only"
//!     allowed = ["eu"]
//!     [[key_rules]]
//!     pattern = "chat/**"
//!     category = "chat_content"
//! "#;
//! let tenants = r#"
//!     [[tenants]]
//!     id = "acme"
//!     locality = "us"
//! "#;
//! let rules = Ruleset::from_toml(policy, "policy.toml", tenants, "tenants.toml").unwrap();
//! let d = rules.decide(&PlacementRequest {
//!     tenant: "acme",
//!     key: "chat/1.json",
//!     category: None,
//!     content_type: None,
//! });
//! let Decision::Allow(p) = d else { panic!() };
//! assert_eq!(rules.policy().region(p.region).id(), "eu");
//! assert!(p.out_of_locality);
//! println!("{}", d.explain(rules.policy(), rules.tenants()));
//! ```

mod category;
mod classifier;
mod decision;
mod diff;
mod error;
mod geo;
mod lookup;
mod notes;
mod policy;
mod prove;
mod reason;
mod record;
mod region;
mod ruleset;
mod switch;
mod tenant;
mod tenants;

pub use category::{Category, CategoryId, FeatureId, FeatureSet, HostingRule, MAX_FEATURES};
pub use classifier::{
    in_bucket_key, Classification, ClassifiedBy, ContentTypeRule, KeyRule, OnConflict,
    BUCKET_NAMESPACE, CATEGORY_HEADER,
};
pub use decision::{Decision, Explanation, Placement, PlacementRequest};
pub use diff::{diff, CategoryChanges, Outcome, PlacementChange, PolicyDiff};
pub use error::{ConfigError, ConfigErrors};
pub use geo::{builtin_jurisdiction, provider_location, PROVIDER_LOCATIONS};
pub use lookup::TenantLookup;
pub use notes::{Note, DEFAULT_REGION_ASSUMPTION};
pub use policy::{FeatureExport, Policy, SubProcessor};
pub use prove::{prove, Proof, TenantKind, Violation, MAX_ENUMERATED_FEATURES};
pub use reason::{AllowReason, DenyReason};
pub use record::TenantRecord;
pub use region::{Region, RegionId, RegionOrder, RegionSet, MAX_REGIONS};
pub use ruleset::Ruleset;
pub use switch::{refuse_unrecorded_switches, unrecorded_switches, UnrecordedSwitch};
pub use tenant::{KeyOwner, SecretRef, ServiceKey, Tenant, TenantId, TenantKey};
pub use tenants::{valid_bucket, Tenants};
