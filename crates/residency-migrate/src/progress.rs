//! Progress: a bar on a terminal (objects, bytes, rate, ETA), plain log
//! lines otherwise.
//!
//! The totals are unknown when copying starts (the plan streams); a
//! background count of the source listing (LIST calls only, one per 1000
//! keys) fills them in, so the ETA becomes exact once it has finished.

use std::io::IsTerminal as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProgressMode {
    /// A bar when stderr is a terminal, log lines otherwise.
    #[default]
    Auto,
    /// Log lines on stderr every few seconds.
    Log,
    /// Nothing.
    Quiet,
}

/// Shared counters, updated by the workers.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) objects: AtomicU64,
    pub(crate) bytes: AtomicU64,
    pub(crate) total_objects: AtomicU64,
    pub(crate) total_bytes: AtomicU64,
    pub(crate) counted: AtomicBool,
}

/// A running display; dropping it stops the display.
pub(crate) struct Progress {
    pub(crate) counters: Arc<Counters>,
    task: Option<tokio::task::JoinHandle<()>>,
    bar: Option<ProgressBar>,
}

fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

impl Progress {
    pub(crate) fn start(mode: ProgressMode, what: &'static str) -> Progress {
        let counters = Arc::new(Counters::default());
        let tty = std::io::stderr().is_terminal();
        let mode = match mode {
            ProgressMode::Auto if tty => ProgressMode::Auto,
            ProgressMode::Auto => ProgressMode::Log,
            m => m,
        };
        let started = Instant::now();
        match mode {
            ProgressMode::Quiet => Progress {
                counters,
                task: None,
                bar: None,
            },
            ProgressMode::Auto => {
                let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
                bar.set_style(
                    ProgressStyle::with_template(
                        "{prefix} [{elapsed_precise}] {wide_bar} {pos}/{len} objects {msg}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                bar.set_prefix(what);
                let c = counters.clone();
                let b = bar.clone();
                let task = tokio::spawn(async move {
                    loop {
                        let objects = c.objects.load(Ordering::Relaxed);
                        let bytes = c.bytes.load(Ordering::Relaxed);
                        let total = c.total_objects.load(Ordering::Relaxed);
                        let total_bytes = c.total_bytes.load(Ordering::Relaxed);
                        b.set_length(total.max(objects));
                        b.set_position(objects);
                        let secs = started.elapsed().as_secs_f64().max(0.001);
                        let rate = mib(bytes) / secs;
                        let eta = if c.counted.load(Ordering::Relaxed) && bytes > 0 {
                            let left =
                                total_bytes.saturating_sub(bytes) as f64 / (bytes as f64 / secs);
                            format!("eta {}s", left.round())
                        } else {
                            "eta ?".to_owned()
                        };
                        b.set_message(format!(
                            "{:.1}/{:.1} MiB {rate:.1} MiB/s {eta}",
                            mib(bytes),
                            mib(total_bytes)
                        ));
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                });
                Progress {
                    counters,
                    task: Some(task),
                    bar: Some(bar),
                }
            }
            ProgressMode::Log => {
                let c = counters.clone();
                let task = tokio::spawn(async move {
                    loop {
                        tokio::time::sleep(Duration::from_secs(5)).await;
                        let objects = c.objects.load(Ordering::Relaxed);
                        let bytes = c.bytes.load(Ordering::Relaxed);
                        let total = c.total_objects.load(Ordering::Relaxed);
                        let total_bytes = c.total_bytes.load(Ordering::Relaxed);
                        let secs = started.elapsed().as_secs_f64().max(0.001);
                        let eta = if c.counted.load(Ordering::Relaxed) && bytes > 0 {
                            format!(
                                "{:.0}s",
                                total_bytes.saturating_sub(bytes) as f64 / (bytes as f64 / secs)
                            )
                        } else {
                            "?".to_owned()
                        };
                        eprintln!(
                            "residency migrate: {what}: {objects}/{total} objects, {:.1}/{:.1} MiB, {:.1} MiB/s, eta {eta}",
                            mib(bytes),
                            mib(total_bytes),
                            mib(bytes) / secs
                        );
                    }
                });
                Progress {
                    counters,
                    task: Some(task),
                    bar: None,
                }
            }
        }
    }

    pub(crate) fn object_done(&self, bytes: u64) {
        self.counters.objects.fetch_add(1, Ordering::Relaxed);
        self.counters.bytes.fetch_add(bytes, Ordering::Relaxed);
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}
