//! Residency: region-aware storage routing.
//!
//! This facade re-exports the crates a user needs; the `residency` binary is
//! the command line (`serve`, `explain`, `check`, `policy show`).
//!
//! ```
//! use residency::policy::Policy;
//! let p = Policy::from_toml(
//!     "version = \"1\"\ndefault_region = \"us\"\n[regions.us]\njurisdiction = \"US\"\n\
//!      [categories.ticket_data]\nallowed = [\"us\"]\n",
//!     "inline",
//! ).unwrap();
//! assert_eq!(p.region(p.default_region()).id(), "us");
//! ```

pub use residency_policy as policy;
