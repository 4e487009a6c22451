//! The states of a disclosure request and the transitions between them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where a request stands.
///
/// `received → on_hold (authorities consulted) → approved | challenged |
/// refused | redirected → fulfilled`. A request may skip `on_hold` (the policy puts a
/// request on hold "to notify and consult with the competent data protection
/// authorities" when the authority's country is not adequate); a challenge
/// ends approved, refused or back on hold. `fulfilled` is reached only by an
/// export; `approved` only by two privacy team members' signed approvals
/// (`Disclosures::approve`). `redirected` records that the authority agreed
/// to make its request to the customer directly (seed 4.1.1: "Zendesk will
/// ordinarily ask the Requesting Authority to make the Data Disclosure
/// Request directly to the relevant Customer"). `refused`, `redirected` and
/// `fulfilled` are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Recorded, not yet reviewed.
    Received,
    /// Suspended while the competent data protection authorities are consulted.
    OnHold,
    /// Disclosure is legally compelled; an export may follow.
    Approved,
    /// Contested with the requesting authority or in court.
    Challenged,
    /// Nothing will be disclosed (final).
    Refused,
    /// The data in scope was exported (final).
    Fulfilled,
    /// The authority agreed to ask the customer directly; nothing is
    /// disclosed by us (final). An authority that comes back opens a new request.
    Redirected,
}

impl State {
    /// Every state, in lifecycle order.
    pub const ALL: [State; 7] = [
        State::Received,
        State::OnHold,
        State::Approved,
        State::Challenged,
        State::Refused,
        State::Fulfilled,
        State::Redirected,
    ];

    /// The id used in the ledger and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Received => "received",
            State::OnHold => "on_hold",
            State::Approved => "approved",
            State::Challenged => "challenged",
            State::Refused => "refused",
            State::Fulfilled => "fulfilled",
            State::Redirected => "redirected",
        }
    }

    /// The states reachable from this one by `transition` (an export makes
    /// `approved → fulfilled`).
    pub fn next(self) -> &'static [State] {
        match self {
            State::Received => &[
                State::OnHold,
                State::Approved,
                State::Challenged,
                State::Refused,
                State::Redirected,
            ],
            State::OnHold => &[
                State::Approved,
                State::Challenged,
                State::Refused,
                State::Redirected,
            ],
            State::Challenged => &[State::OnHold, State::Approved, State::Refused],
            State::Approved => &[State::Challenged, State::Refused],
            State::Refused | State::Fulfilled | State::Redirected => &[],
        }
    }

    /// Whether `self → to` is a transition a person may record.
    pub fn may_become(self, to: State) -> bool {
        self.next().contains(&to)
    }

    /// Whether nothing can follow.
    pub fn is_final(self) -> bool {
        matches!(self, State::Refused | State::Fulfilled | State::Redirected)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for State {
    type Err = String;
    fn from_str(s: &str) -> Result<State, String> {
        State::ALL
            .into_iter()
            .find(|st| st.as_str() == s || (s == "on-hold" && *st == State::OnHold))
            .ok_or_else(|| {
                format!(
                    "unknown state {s:?}: one of {}",
                    State::ALL.map(State::as_str).join(", ")
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle() {
        assert!(State::Received.may_become(State::OnHold));
        assert!(State::OnHold.may_become(State::Approved));
        assert!(!State::Received.may_become(State::Fulfilled));
        assert!(
            !State::Approved.may_become(State::Fulfilled),
            "only an export fulfils"
        );
        assert!(!State::Refused.may_become(State::Approved));
        assert!(State::Fulfilled.next().is_empty());
        for s in State::ALL {
            assert_eq!(s.as_str().parse::<State>().unwrap(), s);
            assert!(!s.may_become(s));
        }
    }
}
