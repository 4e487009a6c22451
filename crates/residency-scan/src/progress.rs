//! Progress of a scan: a bar on a terminal (keys listed, keys/s, findings,
//! ETA), log lines otherwise. A LIST says nothing of how many keys remain:
//! the ETA comes from the previous complete scan's count, when there is one.

use std::io::IsTerminal as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use residency_migrate::ProgressMode;

#[derive(Debug, Default)]
struct Counters {
    listed: AtomicU64,
    findings: AtomicU64,
}

/// A running display; dropping it stops the display.
pub(crate) struct Progress {
    counters: Arc<Counters>,
    task: Option<tokio::task::JoinHandle<()>>,
    bar: Option<ProgressBar>,
}

/// The line both displays show.
fn line(listed: u64, resumed_at: u64, findings: u64, secs: f64, total: Option<u64>) -> String {
    let rate = (listed - resumed_at) as f64 / secs.max(0.001);
    let eta = match total {
        Some(t) if rate > 0.0 && t > listed => {
            format!("eta {:.0}s", (t - listed) as f64 / rate)
        }
        Some(_) => "eta soon".to_owned(),
        None => "eta ? (first scan of this folder)".to_owned(),
    };
    format!("{listed} keys, {rate:.0} keys/s, {findings} finding(s), {eta}")
}

impl Progress {
    /// `already`: keys a resumed scan had listed; `total`: the previous
    /// complete scan's count.
    pub(crate) fn start(mode: ProgressMode, already: u64, total: Option<u64>) -> Progress {
        let counters = Arc::new(Counters::default());
        counters.listed.store(already, Ordering::Relaxed);
        let mode = match mode {
            ProgressMode::Auto if std::io::stderr().is_terminal() => ProgressMode::Auto,
            ProgressMode::Auto => ProgressMode::Log,
            m => m,
        };
        let started = Instant::now();
        let (bar, every) = match mode {
            ProgressMode::Quiet => {
                return Progress {
                    counters,
                    task: None,
                    bar: None,
                }
            }
            ProgressMode::Auto => {
                let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
                bar.set_style(
                    ProgressStyle::with_template("scan [{elapsed_precise}] {wide_bar} {msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                (Some(bar), Duration::from_millis(200))
            }
            ProgressMode::Log => (None, Duration::from_secs(5)),
        };
        let c = counters.clone();
        let b = bar.clone();
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let listed = c.listed.load(Ordering::Relaxed);
                let findings = c.findings.load(Ordering::Relaxed);
                let msg = line(
                    listed,
                    already,
                    findings,
                    started.elapsed().as_secs_f64(),
                    total,
                );
                match &b {
                    Some(b) => {
                        if let Some(t) = total {
                            b.set_length(t.max(listed));
                        }
                        b.set_position(listed);
                        b.set_message(msg);
                    }
                    None => eprintln!("residency scan: {msg}"),
                }
            }
        });
        Progress {
            counters,
            task: Some(task),
            bar,
        }
    }

    pub(crate) fn listed(&self, n: u64) {
        self.counters.listed.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn finding(&self) {
        self.counters.findings.fetch_add(1, Ordering::Relaxed);
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

#[cfg(test)]
mod tests {
    #[test]
    fn the_line_says_rate_findings_and_eta() {
        let l = super::line(1_500, 500, 3, 2.0, Some(2_500));
        assert_eq!(l, "1500 keys, 500 keys/s, 3 finding(s), eta 2s");
        assert!(super::line(10, 0, 0, 1.0, None).contains("eta ?"));
    }
}
