//! One module per subcommand.

use std::path::Path;

use residency::policy::{ConfigErrors, Policy, Ruleset, Tenants};

pub(crate) mod audit;
pub(crate) mod check;
pub(crate) mod disclosure;
pub(crate) mod explain;
pub(crate) mod migrate;
pub(crate) mod policy_show;
pub(crate) mod serve;
pub(crate) mod tenants;

/// Exit code for invalid input files or arguments.
pub(crate) const EXIT_CONFIG: u8 = 2;

/// Why files could not be loaded.
#[derive(Debug)]
pub(crate) enum LoadError {
    /// A file could not be read.
    Read(String),
    /// A file is invalid.
    Invalid(ConfigErrors),
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadError::Read(m) => f.write_str(m),
            LoadError::Invalid(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for LoadError {}

pub(crate) fn read(path: &Path) -> Result<String, LoadError> {
    std::fs::read_to_string(path)
        .map_err(|e| LoadError::Read(format!("cannot read {}: {e}", path.display())))
}

pub(crate) fn load_policy(path: &Path) -> Result<Policy, LoadError> {
    let src = read(path)?;
    Policy::from_toml(&src, &path.display().to_string()).map_err(LoadError::Invalid)
}

pub(crate) fn load_ruleset(files: &crate::PolicyFiles) -> Result<Ruleset, LoadError> {
    let policy = load_policy(&files.policy)?;
    let src = read(&files.tenants)?;
    let tenants = Tenants::from_toml(&src, &files.tenants.display().to_string(), &policy)
        .map_err(LoadError::Invalid)?;
    Ok(Ruleset::new(policy, tenants))
}
