//! `residency serve`: run the sidecar.

use std::path::Path;
use std::process::ExitCode;

use residency_proxy::{serve, ServeError, ServeOptions};

use super::EXIT_CONFIG;

/// How requests are spread over threads (`serve --runtime`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum RuntimeKind {
    /// One thread per core, each with its own listener (`SO_REUSEPORT`),
    /// connections and outbound connections: a request never changes thread.
    PerCore,
    /// One tokio runtime whose worker threads steal work from each other:
    /// a request and its outbound call may run on different threads.
    WorkStealing,
}

pub(crate) fn run(
    config: &Path,
    allow_location_mismatch: bool,
    threads: Option<u16>,
    kind: RuntimeKind,
) -> ExitCode {
    let threads = threads.map_or_else(
        || std::thread::available_parallelism().map_or(1, usize::from),
        usize::from,
    );
    let (mut builder, cores) = match kind {
        RuntimeKind::PerCore => (tokio::runtime::Builder::new_current_thread(), threads),
        RuntimeKind::WorkStealing => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(threads);
            (b, 1)
        }
    };
    builder.enable_all();
    let runtime = match builder.build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("residency: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let opts = ServeOptions {
        allow_location_mismatch,
        cores,
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
