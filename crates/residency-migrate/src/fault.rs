//! Fault points: stop the migrator at a chosen step, to prove that a crash
//! there loses nothing (tests set `RESIDENCY_MIGRATE_FAULT`).

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::MigrateError;

/// Where to stop. `N` counts events of that kind in this process, from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultPoint {
    /// Right after the tenants file was switched (`after_switch`).
    AfterSwitch,
    /// After the N-th object's bytes were written to the destination, before
    /// it is verified or journaled (`after_copy:N`).
    AfterCopy(u64),
    /// After the N-th journal segment was stored, before the state that
    /// references it (`after_segment:N`).
    AfterSegment(u64),
    /// After the N-th state update was stored (`after_state:N`).
    AfterState(u64),
    /// After the N-th old copy was deleted, before it is journaled
    /// (`after_delete:N`).
    AfterDelete(u64),
    /// After the N-th part of a multipart copy was uploaded, before the
    /// upload is completed: the upload is left open (`after_part:N`).
    AfterPart(u64),
}

impl FromStr for FaultPoint {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (name, n) = match s.split_once(':') {
            Some((name, n)) => (
                name,
                n.parse::<u64>()
                    .map_err(|_| format!("fault point {s:?}: {n:?} is not a number"))?,
            ),
            None => (s, 1),
        };
        Ok(match name {
            "after_switch" => FaultPoint::AfterSwitch,
            "after_copy" => FaultPoint::AfterCopy(n),
            "after_segment" => FaultPoint::AfterSegment(n),
            "after_state" => FaultPoint::AfterState(n),
            "after_delete" => FaultPoint::AfterDelete(n),
            "after_part" => FaultPoint::AfterPart(n),
            _ => return Err(format!(
                "unknown fault point {name:?} (after_switch, after_copy:N, after_segment:N, after_state:N, after_delete:N, after_part:N)"
            )),
        })
    }
}

impl fmt::Display for FaultPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FaultPoint::AfterSwitch => write!(f, "after_switch"),
            FaultPoint::AfterCopy(n) => write!(f, "after_copy:{n}"),
            FaultPoint::AfterSegment(n) => write!(f, "after_segment:{n}"),
            FaultPoint::AfterState(n) => write!(f, "after_state:{n}"),
            FaultPoint::AfterDelete(n) => write!(f, "after_delete:{n}"),
            FaultPoint::AfterPart(n) => write!(f, "after_part:{n}"),
        }
    }
}

/// What reaching the fault point does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FaultAction {
    /// Return [`MigrateError::Fault`]: the run stops at once and every copy in
    /// flight is dropped (in-process tests).
    #[default]
    Error,
    /// `std::process::abort()`: the process dies as with `kill -9`.
    Abort,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FaultKind {
    Copy,
    Segment,
    State,
    Delete,
    Part,
}

/// Counts events and fires the configured fault point.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    point: Option<FaultPoint>,
    action: FaultAction,
    copies: AtomicU64,
    segments: AtomicU64,
    states: AtomicU64,
    deletes: AtomicU64,
    parts: AtomicU64,
}

impl Faults {
    pub(crate) fn new(point: Option<FaultPoint>, action: FaultAction) -> Self {
        Faults {
            point,
            action,
            ..Faults::default()
        }
    }

    fn fire(&self, p: FaultPoint) -> Result<(), MigrateError> {
        match self.action {
            FaultAction::Abort => {
                eprintln!("residency migrate: fault point {p} reached: aborting");
                std::process::abort()
            }
            FaultAction::Error => Err(MigrateError::Fault(p.to_string())),
        }
    }

    pub(crate) fn switched(&self) -> Result<(), MigrateError> {
        match self.point {
            Some(p @ FaultPoint::AfterSwitch) => self.fire(p),
            _ => Ok(()),
        }
    }

    pub(crate) fn hit(&self, kind: FaultKind) -> Result<(), MigrateError> {
        let counter = match kind {
            FaultKind::Copy => &self.copies,
            FaultKind::Segment => &self.segments,
            FaultKind::State => &self.states,
            FaultKind::Delete => &self.deletes,
            FaultKind::Part => &self.parts,
        };
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        match self.point {
            Some(p @ FaultPoint::AfterCopy(k)) if kind == FaultKind::Copy && n == k => self.fire(p),
            Some(p @ FaultPoint::AfterSegment(k)) if kind == FaultKind::Segment && n == k => {
                self.fire(p)
            }
            Some(p @ FaultPoint::AfterState(k)) if kind == FaultKind::State && n == k => {
                self.fire(p)
            }
            Some(p @ FaultPoint::AfterDelete(k)) if kind == FaultKind::Delete && n == k => {
                self.fire(p)
            }
            Some(p @ FaultPoint::AfterPart(k)) if kind == FaultKind::Part && n == k => self.fire(p),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        for s in [
            "after_switch",
            "after_copy:3",
            "after_segment:1",
            "after_state:2",
            "after_delete:7",
            "after_part:2",
        ] {
            assert_eq!(s.parse::<FaultPoint>().unwrap().to_string(), s);
        }
        assert!("after_lunch".parse::<FaultPoint>().is_err());
        assert!("after_copy:x".parse::<FaultPoint>().is_err());
    }

    #[test]
    fn fires_on_the_nth_event_only() {
        let f = Faults::new(Some(FaultPoint::AfterCopy(2)), FaultAction::Error);
        assert!(f.hit(FaultKind::Copy).is_ok());
        assert!(f.hit(FaultKind::Segment).is_ok());
        assert!(matches!(
            f.hit(FaultKind::Copy),
            Err(MigrateError::Fault(_))
        ));
        assert!(f.hit(FaultKind::Copy).is_ok());
    }
}
