//! `residency disclosure`: government data requests, recorded and bounded
//! (being written).

use std::process::ExitCode;

use clap::Args;

/// Arguments of `residency disclosure`.
#[derive(Args, Debug)]
pub(crate) struct DisclosureArgs {
    /// What to do.
    pub(crate) action: String,
}

pub(crate) fn run(args: DisclosureArgs) -> ExitCode {
    eprintln!("residency disclosure {}: not implemented yet", args.action);
    ExitCode::from(super::EXIT_CONFIG)
}
