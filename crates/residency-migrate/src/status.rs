//! `residency migrate status`: every migration the journals know, its
//! phase, and whether its assurance window passed without `--finish`.
//!
//! The hosting policy's assurance process "may take up to thirty (30)
//! days"; after it the old copies are to be deleted. Nothing deletes them
//! but `--finish`, so a migration left in phase `verified` (or `deleting`)
//! past its window keeps a second copy of the tenant's data, and its
//! records, in the old region: *overdue*.

use std::sync::Arc;

use residency_store::{Backend, ListRequest};
use serde::Serialize;

use crate::error::MigrateError;
use crate::journal::{Journal, Phase, State};

/// One migration as its journal shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MigrationStatus {
    /// The migration id.
    pub id: String,
    /// The tenant.
    pub tenant: String,
    /// The region it moves from.
    pub from: String,
    /// The region it moves to (where its journal is).
    pub to: String,
    /// The phase.
    pub phase: Phase,
    /// When it started (Unix seconds).
    pub started_at: u64,
    /// When every object was verified (Unix seconds).
    pub verified_at: Option<u64>,
    /// The end of the assurance window (Unix seconds), once verified.
    pub window_ends_at: Option<u64>,
    /// When it finished (Unix seconds).
    pub finished_at: Option<u64>,
    /// The window has passed and the old copies are not deleted yet.
    pub overdue: bool,
    /// Seconds since the window ended (0 unless overdue).
    pub overdue_secs: u64,
    /// The command that finishes it (empty once finished).
    pub finish_command: String,
}

impl MigrationStatus {
    /// The status of `state` at Unix time `now`.
    pub fn of(state: &State, now: u64) -> Self {
        let window_ends_at = match state.phase {
            Phase::Verified | Phase::Deleting | Phase::Finished => {
                Some(state.verified_at.unwrap_or(state.started_at) + state.assurance_secs)
            }
            Phase::Copying => None,
        };
        let overdue = state.phase != Phase::Finished
            && state.phase != Phase::Copying
            && window_ends_at.is_some_and(|end| now >= end);
        MigrationStatus {
            id: state.id.clone(),
            tenant: state.tenant.clone(),
            from: state.from.clone(),
            to: state.to.clone(),
            phase: state.phase,
            started_at: state.started_at,
            verified_at: state.verified_at,
            window_ends_at,
            finished_at: state.finished_at,
            overdue,
            overdue_secs: match (overdue, window_ends_at) {
                (true, Some(end)) => now - end,
                _ => 0,
            },
            finish_command: if state.phase == Phase::Finished {
                String::new()
            } else {
                format!(
                    "residency migrate --tenant {} --to {} --finish",
                    state.tenant, state.to
                )
            },
        }
    }
}

/// The latest migration of every tenant to every region (`current.json` of
/// each `_migrations/<tenant>/` in each region), at Unix time `now`; sorted
/// by tenant, then start.
///
/// Cost: one delimited listing of `_migrations/` per region, then two small
/// GETs per tenant ever migrated there.
///
/// # Errors
/// A backend failure, or a journal that cannot be read.
pub async fn migration_status(
    backends: &[(String, Arc<dyn Backend>)],
    tenant: Option<&str>,
    now: u64,
) -> Result<Vec<MigrationStatus>, MigrateError> {
    let mut out = Vec::new();
    for (region, backend) in backends {
        let tenants = match tenant {
            Some(t) => vec![t.to_owned()],
            None => {
                let mut found = Vec::new();
                let mut token = None;
                loop {
                    let page = backend
                        .list_objects(
                            ListRequest::new("_migrations/")
                                .delimiter("/")
                                .continuation_token(token),
                        )
                        .await
                        .map_err(|e| MigrateError::store(region, e))?;
                    found.extend(page.common_prefixes.iter().filter_map(|p| {
                        p.strip_prefix("_migrations/")
                            .and_then(|t| t.strip_suffix('/'))
                            .map(str::to_owned)
                    }));
                    token = page.next_continuation_token;
                    if token.is_none() {
                        break;
                    }
                }
                found
            }
        };
        for t in tenants {
            let journal = Journal::new(backend.clone(), region, &t);
            if let Some(state) = journal.load_current().await? {
                out.push(MigrationStatus::of(&state, now));
            }
        }
    }
    out.sort_by(|a, b| (&a.tenant, a.started_at).cmp(&(&b.tenant, b.started_at)));
    Ok(out)
}

/// The `(from, to)` region pairs whose records migrations of `tenant` have
/// moved (or begun to move: phase `deleting` or `finished`), for
/// [`verify_chain_moved`](residency_tower::audit::batch::verify_chain_moved).
///
/// # Errors
/// As [`migration_status`].
pub async fn record_moves(
    backends: &[(String, Arc<dyn Backend>)],
    tenant: &str,
) -> Result<Vec<(String, String)>, MigrateError> {
    Ok(migration_status(backends, Some(tenant), 0)
        .await?
        .into_iter()
        .filter(|m| matches!(m.phase, Phase::Deleting | Phase::Finished))
        .map(|m| (m.from, m.to))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::SourceState;

    fn state(phase: Phase, verified_at: Option<u64>) -> State {
        State {
            version: 1,
            id: "1-us-to-eu".into(),
            tenant: "acme".into(),
            to: "eu".into(),
            from: "us".into(),
            started_at: 1_000,
            verified_at,
            finished_at: None,
            assurance_secs: 100,
            phase,
            switched: true,
            sources: vec![SourceState::default()],
            totals: Default::default(),
            mismatched_keys: Vec::new(),
        }
    }

    #[test]
    fn overdue_once_the_window_after_verification_has_passed() {
        let v = state(Phase::Verified, Some(2_000));
        assert!(!MigrationStatus::of(&v, 2_099).overdue);
        let s = MigrationStatus::of(&v, 2_150);
        assert!(s.overdue);
        assert_eq!((s.window_ends_at, s.overdue_secs), (Some(2_100), 50));
        assert_eq!(
            s.finish_command,
            "residency migrate --tenant acme --to eu --finish"
        );
        // A --finish that stopped half-way is still overdue.
        assert!(MigrationStatus::of(&state(Phase::Deleting, Some(2_000)), 9_999).overdue);
        // Copying: the window has not started; finished: nothing is left.
        assert!(!MigrationStatus::of(&state(Phase::Copying, None), 9_999).overdue);
        let f = MigrationStatus::of(&state(Phase::Finished, Some(2_000)), 9_999);
        assert!(!f.overdue && f.finish_command.is_empty());
    }
}
