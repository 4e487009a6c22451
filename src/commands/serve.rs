//! `residency serve`: run the sidecar.

use std::path::Path;
use std::process::ExitCode;

use residency_proxy::{serve, ServeError, ServeOptions};

use super::EXIT_CONFIG;

pub(crate) fn run(
    config: &Path,
    allow_location_mismatch: bool,
    worker_threads: Option<u16>,
) -> ExitCode {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if let Some(n) = worker_threads {
        builder.worker_threads(usize::from(n));
    }
    let runtime = match builder.build() {
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
        Err(
            e @ (ServeError::Config(_) | ServeError::Location(_) | ServeError::Directory { .. }),
        ) => {
            eprintln!("residency: cannot start:\n{e}");
            ExitCode::from(EXIT_CONFIG)
        }
        Err(e) => {
            eprintln!("residency: {e}");
            ExitCode::FAILURE
        }
    }
}
