//! How `residency disclosure` prints records, notices and reports.

use std::fmt::Write as _;

use residency_disclosure::{Consultation, Event, Notice, RequestRecord, VerifyReport};

pub(super) fn consultation_text(c: &Consultation) -> String {
    match c {
        Consultation::None => "not recorded".to_owned(),
        Consultation::Consulted {
            authority,
            reference,
            at,
            summary,
        } => format!("{authority} consulted ({reference}) at {at}: {summary}"),
        Consultation::Prohibited { efforts } => {
            format!("consultation legally prohibited; efforts: {efforts}")
        }
    }
}

pub(super) fn notice_text(n: &Notice) -> String {
    match n {
        Notice::Pending => "pending".to_owned(),
        Notice::Sent { at, .. } => format!("sent {at}"),
        Notice::Prohibited { reason } => format!("prohibited ({reason})"),
    }
}

pub(super) fn record_text(r: &RequestRecord) -> String {
    let q = &r.request.request;
    let mut out = String::new();
    let _ = writeln!(out, "{} ({})", r.request.id, r.state);
    let _ = writeln!(out, "  tenant:      {}", q.tenant);
    let _ = writeln!(out, "  authority:   {} ({})", q.authority, q.country);
    let _ = writeln!(out, "  legal basis: {}", q.legal_basis);
    let _ = writeln!(out, "  type:        {}", q.request_type);
    let _ = writeln!(out, "  received:    {}", q.received);
    let _ = writeln!(out, "  scope:       {}", q.scope);
    let _ = writeln!(out, "  notice:      {}", notice_text(&r.notice));
    if let Some(a) = &r.assessment {
        let _ = writeln!(
            out,
            "  adequacy:    {}{}",
            if a.consult { "HOLD: " } else { "" },
            a.reason
        );
    }
    let _ = writeln!(out, "  consulted:   {}", consultation_text(&r.consultation));
    let approvals: Vec<String> = r
        .approvals
        .iter()
        .map(|a| format!("{} ({})", a.member, a.at))
        .collect();
    let _ = writeln!(
        out,
        "  approvals:   {}",
        if approvals.is_empty() {
            "none".to_owned()
        } else {
            approvals.join(", ")
        }
    );
    for (l, v) in &r.raised_limits {
        let _ = writeln!(out, "  raised:      {l} = {v}");
    }
    if let Some(e) = &r.export {
        let _ = writeln!(
            out,
            "  exported:    {} object(s), {} byte(s) to {} at {}",
            e.objects, e.bytes, e.location, e.at
        );
    }
    out
}

pub(super) fn event_text(e: &Event) -> String {
    match e {
        Event::Opened { .. } => "opened".to_owned(),
        Event::Approval => "approval".to_owned(),
        Event::Consulted {
            authority,
            reference,
        } => format!("consulted {authority} ({reference})"),
        Event::ConsultationProhibited => "consultation legally prohibited".to_owned(),
        Event::Transition { from, to } => format!("{from} -> {to}"),
        Event::NoticeProhibited => "notice prohibited".to_owned(),
        Event::Notified {
            url,
            status,
            attempts,
            ..
        } => format!("notified {url} (HTTP {status}, {attempts} attempt(s))"),
        Event::NotifyFailed {
            url,
            attempts,
            error,
        } => format!("notice failed {url} after {attempts} attempt(s): {error}"),
        Event::LimitRaised { limit, from, to } => format!("limit {limit} raised {from} -> {to}"),
        Event::ExportRefused => "export refused".to_owned(),
        Event::Exported { objects, bytes, .. } => {
            format!("exported {objects} object(s), {bytes} byte(s)")
        }
    }
}

pub(super) fn verify_text(reports: &[VerifyReport]) -> String {
    let mut out = String::new();
    for r in reports {
        let _ = writeln!(
            out,
            "tenant {} (region {}): {} entr{}, {} request(s), head {}: {}",
            r.tenant,
            r.region,
            r.entries,
            if r.entries == 1 { "y" } else { "ies" },
            r.requests,
            r.head.as_deref().unwrap_or("none"),
            if r.ok { "ok" } else { "DAMAGED" }
        );
        for p in &r.problems {
            let _ = writeln!(out, "  problem: {p}");
        }
    }
    let _ = writeln!(
        out,
        "{}",
        if reports.iter().all(|r| r.ok) {
            "disclosure ledgers intact"
        } else {
            "DISCLOSURE LEDGER DAMAGED"
        }
    );
    out
}
