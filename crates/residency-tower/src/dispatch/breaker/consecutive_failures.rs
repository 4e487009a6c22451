//! The breaker's state machine: consecutive "unavailable" failures open the
//! circuit for a cooldown, then one probe decides.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

// tokio's clock: tests drive the breaker's cooldown with a paused clock.
use tokio::time::Instant;

use crate::metrics as m;

const CIRCUIT_OPEN: &str = "residency_circuit_open";
const CIRCUIT_TRANSITIONS: &str = "residency_circuit_transitions_total";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Circuit {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// The cooldown is over and one probe is in flight.
    HalfOpen,
}

/// Closed with no failure counted.
const CLEAN: u8 = 0;
/// Closed with failures counted.
const FAILING: u8 = 1;
/// Open or half-open.
const TRIPPED: u8 = 2;

impl Circuit {
    fn summary(self) -> u8 {
        match self {
            Circuit::Closed { failures: 0 } => CLEAN,
            Circuit::Closed { .. } => FAILING,
            Circuit::Open { .. } | Circuit::HalfOpen => TRIPPED,
        }
    }
}

/// What a call taught the breaker about its region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// The region answered (even with an error such as not found).
    Answered,
    /// The region was unreachable, timed out or failed with a 5xx.
    Unavailable,
    /// Nothing was learnt: the client's own body failed, or the call was
    /// abandoned.
    Unknown,
}

/// One region's consecutive-failures breaker.
#[derive(Debug)]
pub(crate) struct ConsecutiveFailures {
    region: Arc<str>,
    /// 0 disables the breaker.
    threshold: u32,
    cooldown: Duration,
    state: Mutex<Circuit>,
    /// `state` at a glance, stored under the lock on every change and read
    /// without it ([`CLEAN`], [`FAILING`] or [`TRIPPED`]): a healthy region's
    /// calls are admitted and reported without taking the lock. A read that
    /// races a change is ordered before it, as if it had taken the lock first.
    summary: AtomicU8,
}

/// Lets a call through; reports its outcome when dropped without one (a
/// cancelled probe must not leave the circuit half-open forever).
#[derive(Debug)]
pub(crate) struct Admitted {
    breaker: Arc<ConsecutiveFailures>,
    pub(super) probe: bool,
    reported: bool,
}

impl ConsecutiveFailures {
    pub(crate) fn new(region: Arc<str>, threshold: u32, cooldown: Duration) -> Self {
        metrics::gauge!(CIRCUIT_OPEN, "region" => m::Label::Shared(region.clone())).set(0.0);
        Self {
            region,
            threshold,
            cooldown,
            state: Mutex::new(Circuit::Closed { failures: 0 }),
            summary: AtomicU8::new(CLEAN),
        }
    }

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, Circuit> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Changes the state (under its lock) and its summary.
    fn set(&self, st: &mut Circuit, next: Circuit) {
        *st = next;
        self.summary.store(next.summary(), Ordering::Relaxed);
    }

    fn transition(&self, to: &'static str) {
        let region = m::Label::Shared(self.region.clone());
        metrics::gauge!(CIRCUIT_OPEN, "region" => region.clone()).set(if to == "closed" {
            0.0
        } else {
            1.0
        });
        metrics::counter!(CIRCUIT_TRANSITIONS, "region" => region, "to" => to).increment(1);
        match to {
            "open" => {
                tracing::warn!(region = %self.region, cooldown_ms = self.cooldown.as_millis() as u64, "circuit open: failing fast")
            }
            "closed" => {
                tracing::info!(region = %self.region, "circuit closed: region serving again")
            }
            _ => tracing::info!(region = %self.region, "circuit half-open: probing"),
        }
    }

    /// Admits a call, or says how long the circuit stays open.
    pub(crate) fn admit(self: &Arc<Self>) -> Result<Admitted, Duration> {
        let admitted = |probe, reported| Admitted {
            breaker: self.clone(),
            probe,
            reported,
        };
        if self.threshold == 0 {
            return Ok(admitted(false, true));
        }
        if self.summary.load(Ordering::Relaxed) != TRIPPED {
            // Closed: nothing to change.
            return Ok(admitted(false, false));
        }
        let mut st = self.lock();
        match *st {
            Circuit::Closed { .. } => Ok(admitted(false, false)),
            Circuit::Open { until } => {
                let now = Instant::now();
                if now < until {
                    return Err(until - now);
                }
                self.set(&mut st, Circuit::HalfOpen);
                drop(st);
                self.transition("half_open");
                Ok(admitted(true, false))
            }
            // One probe at a time: the others fail fast until it answers.
            Circuit::HalfOpen => Err(Duration::ZERO),
        }
    }

    /// Records a call's answer.
    fn record(&self, probe: bool, class: Class) {
        // An answer from a clean circuit, or nothing learnt outside a probe,
        // changes nothing.
        if !probe
            && (class == Class::Unknown
                || (class == Class::Answered && self.summary.load(Ordering::Relaxed) == CLEAN))
        {
            return;
        }
        let mut st = self.lock();
        let unavailable = match class {
            Class::Answered => false,
            Class::Unavailable => true,
            Class::Unknown => {
                if probe && *st == Circuit::HalfOpen {
                    // Let the next caller probe instead.
                    self.set(
                        &mut st,
                        Circuit::Open {
                            until: Instant::now(),
                        },
                    );
                }
                return;
            }
        };
        let next = match (*st, unavailable) {
            (Circuit::Closed { .. }, false) => Circuit::Closed { failures: 0 },
            (Circuit::Closed { failures }, true) if failures + 1 >= self.threshold => {
                Circuit::Open {
                    until: Instant::now() + self.cooldown,
                }
            }
            (Circuit::Closed { failures }, true) => Circuit::Closed {
                failures: failures + 1,
            },
            // Only the probe's answer moves a half-open circuit; answers of
            // calls admitted before it opened do not.
            (Circuit::HalfOpen, false) if probe => Circuit::Closed { failures: 0 },
            (Circuit::HalfOpen, true) if probe => Circuit::Open {
                until: Instant::now() + self.cooldown,
            },
            (s, _) => s,
        };
        let changed = std::mem::discriminant(&next) != std::mem::discriminant(&*st);
        self.set(&mut st, next);
        drop(st);
        if changed {
            self.transition(match next {
                Circuit::Closed { .. } => "closed",
                Circuit::Open { .. } => "open",
                Circuit::HalfOpen => "half_open",
            });
        }
    }
}

impl Admitted {
    /// Reports the call's answer (once).
    pub(crate) fn report(mut self, class: Class) {
        if !self.reported {
            self.reported = true;
            self.breaker.record(self.probe, class);
        }
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        // A probe abandoned by its caller proves nothing: the next caller
        // probes again.
        if !self.reported && self.probe {
            self.breaker.record(true, Class::Unknown);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(threshold: u32) -> Arc<ConsecutiveFailures> {
        Arc::new(ConsecutiveFailures::new(
            "eu".into(),
            threshold,
            Duration::from_secs(2),
        ))
    }

    fn fail(b: &Arc<ConsecutiveFailures>) {
        b.admit().expect("admitted").report(Class::Unavailable);
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_consecutive_unavailable_failures_only() {
        let b = breaker(3);
        fail(&b);
        fail(&b);
        // An answer (even an error such as NoSuchKey) resets the count.
        b.admit().unwrap().report(Class::Answered);
        fail(&b);
        fail(&b);
        assert!(b.admit().is_ok(), "two failures in a row: still closed");
        b.admit().unwrap().report(Class::Unavailable);
        assert!(b.admit().is_err(), "three in a row: open, fail fast");
        // A client's own body failure says nothing about the region.
        let b = breaker(1);
        b.admit().unwrap().report(Class::Unknown);
        assert!(b.admit().is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn half_open_lets_one_probe_through() {
        let b = breaker(1);
        fail(&b);
        assert!(b.admit().is_err());
        tokio::time::advance(Duration::from_millis(1_999)).await;
        assert!(b.admit().is_err(), "still cooling down");
        tokio::time::advance(Duration::from_millis(2)).await;
        let probe = b.admit().expect("the probe");
        assert!(probe.probe);
        assert!(b.admit().is_err(), "one probe at a time");
        probe.report(Class::Answered);
        assert!(b.admit().is_ok(), "the probe succeeded: closed");
        assert_eq!(*b.lock(), Circuit::Closed { failures: 0 });
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_reopens_and_an_abandoned_one_lets_the_next_probe() {
        let b = breaker(1);
        fail(&b);
        tokio::time::advance(Duration::from_secs(3)).await;
        b.admit().unwrap().report(Class::Unavailable);
        assert!(b.admit().is_err(), "the probe failed: open again");
        tokio::time::advance(Duration::from_secs(3)).await;
        drop(b.admit().expect("probe"));
        let next = b
            .admit()
            .expect("an abandoned probe does not wedge the circuit");
        assert!(next.probe);
        next.report(Class::Answered);
        assert!(b.admit().is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn threshold_zero_disables_the_breaker() {
        let b = breaker(0);
        for _ in 0..100 {
            fail(&b);
        }
        assert!(b.admit().is_ok());
    }
}
