//! [`Report`]: what a command did, as text or JSON.

use super::*;

/// The outcome of a command, printed as text or JSON.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `plan` (dry run), `run`, `finish` or `join`.
    pub command: &'static str,
    /// The migration id (none for a dry run without a journal).
    pub migration_id: Option<String>,
    /// The tenant.
    pub tenant: String,
    /// The tenant's home region before the migration.
    pub from: String,
    /// The destination.
    pub to: String,
    /// The phase reached (none for a dry run).
    pub phase: Option<Phase>,
    /// When every object was verified (Unix seconds).
    pub verified_at: Option<u64>,
    /// Old copies are kept until then (Unix seconds), when not deleted yet.
    pub old_copies_kept_until: Option<u64>,
    /// When the old copies were deleted (Unix seconds).
    pub finished_at: Option<u64>,
    /// Counters over the whole migration (from the journal): every run,
    /// killed ones included (a killed run's copies are counted by the run
    /// that finds them in the destination).
    pub totals: Totals,
    /// Counters of this invocation.
    pub this_run: Totals,
    /// Keys whose copy did not verify (at most 100 shown).
    pub mismatched_keys: Vec<String>,
    /// Seconds this invocation took.
    pub elapsed_secs: f64,
    /// Bytes copied per second by this invocation.
    pub copy_bytes_per_sec: f64,
    /// One line saying what is next.
    pub next_step: String,
}

impl Report {
    /// True when nothing failed verification.
    pub fn ok(&self) -> bool {
        self.totals.mismatched == 0 && self.this_run.mismatched == 0
    }

    /// The report for humans.
    pub fn to_text(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        let _ = writeln!(
            s,
            "migration {} of tenant {}: {} -> {} ({})",
            self.migration_id.as_deref().unwrap_or("(dry run)"),
            self.tenant,
            self.from,
            self.to,
            self.phase.map(Phase::as_str).unwrap_or("plan")
        );
        let t = &self.totals;
        let _ = writeln!(s, "  listed in old regions  {:>10}", t.listed);
        let _ = writeln!(
            s,
            "  planned (to move)      {:>10}  {:.1} MiB",
            t.planned,
            mib(t.planned_bytes)
        );
        for (c, n) in &t.planned_by_category {
            let _ = writeln!(s, "    {c:<24}{n:>8}");
        }
        if self.command != "plan" {
            let _ = writeln!(
                s,
                "  copied                 {:>10}  {:.1} MiB",
                t.copied,
                mib(t.copied_bytes)
            );
            let _ = writeln!(s, "  verified               {:>10}", t.verified);
            let _ = writeln!(s, "  mismatched             {:>10}", t.mismatched);
            let _ = writeln!(s, "  superseded (newer in {}) {:>8}", self.to, t.superseded);
            let _ = writeln!(s, "  vanished (deleted by tenant) {:>4}", t.vanished);
        }
        let _ = writeln!(s, "  skipped by policy      {:>10}", t.skipped_by_policy);
        for (c, n) in &t.skipped_by_category {
            let _ = writeln!(s, "    {c:<24}{n:>8}");
        }
        if self.command != "plan" {
            let _ = writeln!(s, "  old copies deleted     {:>10}", t.deleted);
            if t.aborted_uploads > 0 {
                let _ = writeln!(
                    s,
                    "  uploads of killed runs aborted {:>2}  {:.1} MiB of parts",
                    t.aborted_uploads,
                    mib(t.aborted_upload_bytes)
                );
            }
            if t.ranges > 0 || self.this_run.ranges > 0 {
                let _ = writeln!(
                    s,
                    "  key ranges             {:>10}  (this worker: {})",
                    t.ranges, self.this_run.ranges
                );
            }
            let _ = writeln!(
                s,
                "  this run: copied {} ({:.1} MiB), verified {}, deleted {} in {:.1}s ({:.1} MiB/s)",
                self.this_run.copied,
                mib(self.this_run.copied_bytes),
                self.this_run.verified,
                self.this_run.deleted,
                self.elapsed_secs,
                self.copy_bytes_per_sec / (1024.0 * 1024.0)
            );
        }
        for k in &self.mismatched_keys {
            let _ = writeln!(s, "  MISMATCH {k}");
        }
        let _ = writeln!(s, "next: {}", self.next_step);
        s
    }
}
