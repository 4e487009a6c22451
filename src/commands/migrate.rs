//! `residency migrate`: move a tenant's data to a new region (being written).

use std::process::ExitCode;

use clap::Args;

/// Arguments of `residency migrate`.
#[derive(Args, Debug)]
pub(crate) struct MigrateArgs {
    /// Tenant id.
    #[arg(long)]
    pub(crate) tenant: String,
}

pub(crate) fn run(args: MigrateArgs) -> ExitCode {
    eprintln!(
        "residency migrate --tenant {}: not implemented yet",
        args.tenant
    );
    ExitCode::from(super::EXIT_CONFIG)
}
