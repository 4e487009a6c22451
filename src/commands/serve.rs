//! `residency serve`: run the sidecar.

use std::path::Path;
use std::process::ExitCode;

use residency_proxy::{serve, ServeError, ServeOptions};

use super::EXIT_CONFIG;

pub(crate) fn run(config: &Path, allow_location_mismatch: bool) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("residency: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let opts = ServeOptions {
        allow_location_mismatch,
    };
    match runtime.block_on(serve(config, opts)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e @ (ServeError::Config(_) | ServeError::Location(_))) => {
            eprintln!("residency: cannot start:\n{e}");
            ExitCode::from(EXIT_CONFIG)
        }
        Err(e) => {
            eprintln!("residency: {e}");
            ExitCode::FAILURE
        }
    }
}
