//! `residency audit verify` and `residency audit show`: check a tenant's
//! hash-chained audit batches, print its events.
//!
//! Both read `_audit/<tenant>/` in every region the caller passes (the
//! regions of the sidecar config).

use std::process::ExitCode;
use std::sync::Arc;

use residency_store::Backend;
use residency_tower::audit::batch::{read_events, verify_chain_moved, ChainReport};
use residency_tower::audit::AuditEvent;

/// `residency audit verify --tenant T`: prints the report of every chain
/// (text, or one JSON object with `--json`). Exit code 0 when every chain is
/// intact, 1 when problems were found or a region could not be read.
pub(crate) async fn verify(
    backends: &[(String, Arc<dyn Backend>)],
    tenant: &str,
    json: bool,
) -> ExitCode {
    // Records a migration moved name their old region as where they were
    // stored: the migration journals say which moves to accept.
    let moved = match residency_migrate::record_moves(backends, tenant).await {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: cannot read the migration journals of {tenant:?}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let report = match verify_chain_moved(backends, tenant, &moved).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot read the audit trail of {tenant:?}: {e}");
            return ExitCode::FAILURE;
        }
    };
    if json {
        if let Err(code) = super::print_json(&report) {
            return code;
        }
    } else {
        print!("{}", verify_text(&report));
    }
    if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The human-readable verification report.
fn verify_text(report: &ChainReport) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    if report.writers.is_empty() {
        let _ = writeln!(out, "tenant {}: no audit batches found", report.tenant);
    }
    for w in &report.writers {
        let head = w.head.map_or("none".to_owned(), |h| h.to_string());
        let _ = writeln!(
            out,
            "tenant {} writer {}: {} batch(es), {} event(s), HEAD {head}, regions [{}]: {}",
            report.tenant,
            w.writer,
            w.batches,
            w.events,
            w.regions.join(", "),
            if w.problems.is_empty() {
                "ok".to_owned()
            } else {
                format!("{} problem(s)", w.problems.len())
            }
        );
        for p in &w.problems {
            let _ = writeln!(out, "  problem: {p}");
        }
        for n in &w.notes {
            let _ = writeln!(out, "  note: {n}");
        }
    }
    let _ = writeln!(
        out,
        "{}",
        if report.ok {
            "audit trail intact"
        } else {
            "AUDIT TRAIL DAMAGED"
        }
    );
    out
}

/// `residency audit show --tenant T`: prints the tenant's events in time
/// order, one per line: text (`time tenant op key category decision region
/// reason`, `-` for an absent value) or, with `--json`, JSON lines. Exit code
/// 0, or 1 when a region could not be read.
pub(crate) async fn show(
    backends: &[(String, Arc<dyn Backend>)],
    tenant: &str,
    json: bool,
) -> ExitCode {
    let events = match read_events(backends, tenant).await {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: cannot read the audit trail of {tenant:?}: {e}");
            return ExitCode::FAILURE;
        }
    };
    for e in &events {
        if json {
            match serde_json::to_string(e) {
                Ok(s) => println!("{s}"),
                Err(err) => {
                    eprintln!("error: {err}");
                    return ExitCode::FAILURE;
                }
            }
        } else {
            println!("{}", event_text(e));
        }
    }
    ExitCode::SUCCESS
}

/// One event as a text line; the key is quoted when it has spaces.
fn event_text(e: &AuditEvent) -> String {
    let key = if e.key.is_empty() || e.key.contains(char::is_whitespace) {
        format!("{:?}", e.key)
    } else {
        e.key.clone()
    };
    let region = if e.regions.is_empty() {
        "-".to_owned()
    } else {
        e.regions.join(",")
    };
    format!(
        "{} {} {} {} {} {} {} {}{}",
        e.time,
        e.tenant,
        e.op,
        key,
        e.category.as_deref().unwrap_or("-"),
        e.decision,
        region,
        e.reason,
        if e.out_of_locality {
            " out_of_locality"
        } else {
            ""
        }
    )
}

/// `residency audit verify|show`: opens the configured regions' backends and
/// runs [`verify`] or [`show`].
pub(crate) fn run(
    config: &std::path::Path,
    tenant: &str,
    json: bool,
    verify_chain: bool,
) -> ExitCode {
    // The audit trail is read from the regions alone: the tenants (file or
    // directory) are not needed.
    let cfg = match residency_proxy::Config::load(config).map_err(|e| e.to_string()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("residency: {e}");
            return ExitCode::from(super::EXIT_CONFIG);
        }
    };
    let runtime = match super::runtime(false) {
        Ok(r) => r,
        Err(code) => return code,
    };
    runtime.block_on(async {
        let backends = match cfg.open_backends().await {
            Ok(b) => b,
            Err(e) => {
                eprintln!("residency: {e}");
                return ExitCode::from(super::EXIT_CONFIG);
            }
        };
        if verify_chain {
            verify(&backends, tenant, json).await
        } else {
            show(&backends, tenant, json).await
        }
    })
}
