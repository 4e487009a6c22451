//! One module per subcommand.

use std::path::Path;

use residency::policy::{ConfigErrors, Policy, Ruleset, Tenants};

pub(crate) mod attest;
pub(crate) mod audit;
pub(crate) mod check;
pub(crate) mod disclosure;
pub(crate) mod explain;
pub(crate) mod migrate;
pub(crate) mod policy_diff;
pub(crate) mod policy_show;
pub(crate) mod scan;
pub(crate) mod serve;
pub(crate) mod tenants;
pub(crate) mod tenants_db;

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

/// A tokio runtime for a command (`multi_thread` for work that fans out),
/// or the exit code after saying why it could not start.
pub(crate) fn runtime(
    multi_thread: bool,
) -> Result<tokio::runtime::Runtime, std::process::ExitCode> {
    let mut builder = if multi_thread {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    builder.enable_all().build().map_err(|e| {
        eprintln!("residency: cannot start the runtime: {e}");
        std::process::ExitCode::FAILURE
    })
}

/// Runs a command's async body on a multi-thread runtime: its exit code,
/// whether it ended in `Ok` or `Err`.
pub(crate) fn block_on(
    body: impl std::future::Future<Output = Result<std::process::ExitCode, std::process::ExitCode>>,
) -> std::process::ExitCode {
    match runtime(true) {
        Ok(rt) => rt.block_on(body).unwrap_or_else(|code| code),
        Err(code) => code,
    }
}

/// `result`'s value, or [`EXIT_CONFIG`] after printing the error.
pub(crate) fn or_config_exit<T, E: std::fmt::Display>(
    result: Result<T, E>,
) -> Result<T, std::process::ExitCode> {
    result.map_err(|e| {
        eprintln!("error: {e}");
        std::process::ExitCode::from(EXIT_CONFIG)
    })
}

/// Prints `value` as pretty JSON on stdout.
pub(crate) fn print_json<T: serde::Serialize>(value: &T) -> Result<(), std::process::ExitCode> {
    let s = serde_json::to_string_pretty(value).map_err(|e| {
        eprintln!("error: {e}");
        std::process::ExitCode::FAILURE
    })?;
    println!("{s}");
    Ok(())
}
