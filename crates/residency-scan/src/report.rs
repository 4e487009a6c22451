//! What a scan shows: the terminal table, the self-contained HTML report a
//! compliance officer reads, and the metrics file for Prometheus.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;

use html_escape::encode_text as esc;

use crate::finding::{Finding, FindingKind};
use crate::scan::ScanError;
use crate::summary::{Count, Summary};

/// `report.html`.
pub const REPORT_FILE: &str = "report.html";

/// Findings listed in the HTML report; the rest are counted and left to
/// `findings.jsonl`.
pub const HTML_FINDINGS_MAX: usize = 10_000;

fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn when(unix: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix);
    httpdate::fmt_http_date(t)
}

/// One line per region read from an S3 Inventory report.
fn sources(summary: &Summary) -> Vec<String> {
    summary
        .inventory
        .iter()
        .map(|n| {
            format!(
                "{}: S3 Inventory of bucket {} made {} ({}; {} row(s) in {} file(s), {} other version(s) skipped); findings checked live: {} confirmed, {} deleted since, {} written again since",
                n.region,
                n.source_bucket,
                when(n.created_at),
                n.manifest,
                n.rows,
                n.files,
                n.skipped,
                n.confirmed,
                n.gone_since,
                n.changed_since
            )
        })
        .collect()
}

/// The summary table printed at the end of a scan.
pub fn text(summary: &Summary) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "scan {} of {} (policy {}): {} key(s), {} in [{}]{}",
        summary.scan_id,
        summary
            .tenant_filter
            .as_deref()
            .map_or("every tenant".to_owned(), |t| format!("tenant {t}")),
        summary.policy_version,
        summary.listed.objects,
        human_bytes(summary.listed.bytes),
        summary.regions.join(", "),
        if summary.complete {
            ""
        } else {
            " (INCOMPLETE)"
        }
    );
    for line in sources(summary) {
        let _ = writeln!(o, "  {line}");
    }
    let _ = writeln!(o, "\n{:<26} {:>10}", "FINDING", "OBJECTS");
    for k in FindingKind::ALL {
        let n = summary.findings.get(&k).copied().unwrap_or(0);
        let _ = writeln!(o, "{:<26} {n:>10}   {}", k.as_str(), k.meaning());
    }
    let mut regions = BTreeSet::new();
    for t in summary.tenants.values() {
        for cells in t.cells.values() {
            regions.extend(cells.keys().cloned());
        }
    }
    let _ = write!(o, "\n{:<20} {:<22}", "TENANT", "CATEGORY");
    for r in &regions {
        let _ = write!(o, " {:>18}", r);
    }
    let _ = writeln!(o);
    for (tenant, t) in &summary.tenants {
        for (category, cells) in &t.cells {
            let _ = write!(o, "{tenant:<20} {category:<22}");
            for r in &regions {
                let c = cells.get(r).copied().unwrap_or_default();
                let _ = write!(
                    o,
                    " {:>18}",
                    format!("{} / {}", c.objects, human_bytes(c.bytes))
                );
            }
            let _ = writeln!(o);
        }
    }
    if summary.shared_records.objects > 0 {
        let _ = writeln!(
            o,
            "(shared records)     {} key(s), {}",
            summary.shared_records.objects,
            human_bytes(summary.shared_records.bytes)
        );
    }
    if summary.unowned.objects > 0 {
        let _ = writeln!(
            o,
            "(no tenant)          {} key(s), {}",
            summary.unowned.objects,
            human_bytes(summary.unowned.bytes)
        );
    }
    let total = summary.total_findings();
    let _ = writeln!(
        o,
        "\n{}",
        if total == 0 {
            "clean: every object is where the policy places it".to_owned()
        } else {
            format!("{total} finding(s): see findings.jsonl and report.html")
        }
    );
    o
}

fn cell(c: Count) -> String {
    if c.objects == 0 {
        "<td class=\"zero\">–</td>".to_owned()
    } else {
        format!(
            "<td>{}<br><small>{}</small></td>",
            c.objects,
            human_bytes(c.bytes)
        )
    }
}

/// Writes the self-contained HTML report (no script, no external file) of
/// `summary`, listing the findings of `findings_path` (up to
/// [`HTML_FINDINGS_MAX`]).
///
/// # Errors
/// The findings cannot be read or the report cannot be written.
pub fn write_html(summary: &Summary, findings_path: &Path, out: &Path) -> Result<(), ScanError> {
    let io = |p: &Path| {
        let p = p.to_owned();
        move |source| ScanError::Io { path: p, source }
    };
    let mut f = std::io::BufWriter::new(std::fs::File::create(out).map_err(io(out))?);
    let total = summary.total_findings();
    let mut h = String::new();
    let _ = write!(
        h,
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Residency scan {id}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; }}
th, td {{ border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: left; vertical-align: top; }}
th {{ background: #f2f2f2; }}
td.zero {{ color: #aaa; }}
.clean {{ color: #176317; font-weight: bold; }}
.dirty {{ color: #a31515; font-weight: bold; }}
code {{ font-size: 0.9em; word-break: break-all; }}
</style>
</head>
<body>
<h1>Residency scan</h1>
<table id="scan">
<tr><th>Scan</th><td>{id}</td></tr>
<tr><th>Started</th><td>{started}</td></tr>
<tr><th>Finished</th><td>{finished}</td></tr>
<tr><th>Policy version</th><td>{version}</td></tr>
<tr><th>Policy SHA-256</th><td><code>{sha}</code></td></tr>
<tr><th>Scope</th><td>{scope}; regions {regions}</td></tr>
<tr><th>Keys listed</th><td>{listed} ({bytes})</td></tr>
{sources}
<tr><th>Result</th><td class="{class}">{result}</td></tr>
</table>
"#,
        id = esc(&summary.scan_id),
        started = when(summary.started_at),
        finished = summary.finished_at.map_or("not finished".to_owned(), when),
        version = esc(&summary.policy_version),
        sha = esc(&summary.policy_sha256),
        scope = esc(&summary
            .tenant_filter
            .as_deref()
            .map_or("every tenant".to_owned(), |t| format!("tenant {t}"))),
        regions = esc(&summary.regions.join(", ")),
        listed = summary.listed.objects,
        bytes = human_bytes(summary.listed.bytes),
        sources = sources(summary)
            .iter()
            .map(|l| format!("<tr><th>Source</th><td>{}</td></tr>\n", esc(l)))
            .collect::<String>(),
        class = if total == 0 && summary.complete {
            "clean"
        } else {
            "dirty"
        },
        result = if !summary.complete {
            "incomplete scan".to_owned()
        } else if total == 0 {
            "clean: every object is where the policy places it".to_owned()
        } else {
            format!("{total} finding(s)")
        },
    );
    h.push_str("<h2>Findings by kind</h2>\n<table id=\"kinds\">\n<tr><th>Kind</th><th>Objects</th><th>Meaning</th></tr>\n");
    for k in FindingKind::ALL {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            k.as_str(),
            summary.findings.get(&k).copied().unwrap_or(0),
            k.meaning()
        );
    }
    h.push_str("</table>\n<h2>Tenants</h2>\n");
    for (tenant, t) in &summary.tenants {
        let mut regions: BTreeSet<&str> = t.records.keys().map(String::as_str).collect();
        for cells in t.cells.values() {
            regions.extend(cells.keys().map(String::as_str));
        }
        let n: u64 = t.findings.values().sum();
        let _ = write!(
            h,
            "<h3 id=\"tenant-{id}\">{id}</h3>\n<p>{}</p>\n<table class=\"tenant\">\n<tr><th>Category</th>",
            if n == 0 {
                "no finding".to_owned()
            } else {
                format!("{n} finding(s)")
            },
            id = esc(tenant),
        );
        for r in &regions {
            let _ = write!(h, "<th>{}</th>", esc(r));
        }
        h.push_str("</tr>\n");
        for (category, cells) in &t.cells {
            let _ = write!(h, "<tr><td>{}</td>", esc(category));
            for r in &regions {
                h.push_str(&cell(cells.get(*r).copied().unwrap_or_default()));
            }
            h.push_str("</tr>\n");
        }
        if !t.records.is_empty() {
            h.push_str("<tr><td><i>internal records</i></td>");
            for r in &regions {
                h.push_str(&cell(t.records.get(*r).copied().unwrap_or_default()));
            }
            h.push_str("</tr>\n");
        }
        h.push_str("</table>\n");
    }
    if summary.shared_records.objects > 0 {
        let _ = writeln!(
            h,
            "<p>Records of no one tenant (transparency reports): {} ({}).</p>",
            summary.shared_records.objects,
            human_bytes(summary.shared_records.bytes)
        );
    }
    if summary.unowned.objects > 0 {
        let _ = writeln!(
            h,
            "<p>Keys of no tenant: {} ({}).</p>",
            summary.unowned.objects,
            human_bytes(summary.unowned.bytes)
        );
    }
    f.write_all(h.as_bytes()).map_err(io(out))?;
    h.clear();
    h.push_str("<h2>Findings</h2>\n<table id=\"findings\">\n<tr><th>Kind</th><th>Tenant</th><th>Region</th><th>Key</th><th>Category</th><th>Size</th><th>Reason</th></tr>\n");
    let reader = BufReader::new(std::fs::File::open(findings_path).map_err(io(findings_path))?);
    let mut listed = 0usize;
    for line in reader.lines() {
        let line = line.map_err(io(findings_path))?;
        if line.trim().is_empty() {
            continue;
        }
        if listed == HTML_FINDINGS_MAX {
            listed += 1;
            break;
        }
        let finding: Finding = serde_json::from_str(&line)
            .map_err(std::io::Error::from)
            .map_err(io(findings_path))?;
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
            finding.kind.as_str(),
            esc(finding.tenant.as_deref().unwrap_or("–")),
            esc(&finding.region),
            esc(&finding.key),
            esc(finding.category.as_deref().unwrap_or("–")),
            human_bytes(finding.size),
            esc(&finding.reason),
        );
        listed += 1;
        if h.len() > 64 * 1024 {
            f.write_all(h.as_bytes()).map_err(io(out))?;
            h.clear();
        }
    }
    h.push_str("</table>\n");
    if listed > HTML_FINDINGS_MAX {
        let _ = writeln!(
            h,
            "<p>The first {HTML_FINDINGS_MAX} of {total} findings are listed; every one is in findings.jsonl.</p>"
        );
    }
    h.push_str("</body>\n</html>\n");
    f.write_all(h.as_bytes()).map_err(io(out))?;
    f.flush().map_err(io(out))
}

/// Objects the last scan reported, by `kind` (gauge).
pub const FINDINGS_METRIC: &str = "residency_scan_findings";
/// Keys the last scan listed (gauge).
pub const OBJECTS_METRIC: &str = "residency_scan_objects";
/// 1 when the last scan listed every region to its end (gauge).
pub const COMPLETE_METRIC: &str = "residency_scan_complete";
/// When the last scan finished, Unix seconds (gauge).
pub const FINISHED_METRIC: &str = "residency_scan_finished_timestamp_seconds";

/// The scan's figures in the Prometheus text format, for node_exporter's
/// textfile collector (`--metrics-file`): findings per kind, keys listed,
/// whether it completed and when it finished.
pub fn metrics(summary: &Summary) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "# HELP {FINDINGS_METRIC} Objects the last scan reported, by kind.\n# TYPE {FINDINGS_METRIC} gauge"
    );
    for k in FindingKind::ALL {
        let _ = writeln!(
            o,
            "{FINDINGS_METRIC}{{kind=\"{}\"}} {}",
            k.as_str(),
            summary.findings.get(&k).copied().unwrap_or(0)
        );
    }
    let lines = [
        (
            OBJECTS_METRIC,
            "Keys the last scan listed.",
            summary.listed.objects,
        ),
        (
            COMPLETE_METRIC,
            "1 when the last scan listed every region to its end.",
            u64::from(summary.complete),
        ),
        (
            FINISHED_METRIC,
            "When the last scan finished (Unix seconds).",
            summary.finished_at.unwrap_or(0),
        ),
    ];
    for (name, help, value) in lines {
        let _ = writeln!(
            o,
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
        );
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary() -> Summary {
        let mut s = Summary {
            scan_id: "1-2".into(),
            policy_version: "3".into(),
            regions: vec!["eu".into(), "us".into()],
            complete: true,
            ..Summary::default()
        }
        .with_kinds();
        s.object("acme", "ticket_data", "eu", 10);
        s.listed("eu", 10);
        s.object("acme", "ticket_data", "us", 5);
        s.listed("us", 5);
        s.finding(FindingKind::Misplaced, Some("acme"));
        s
    }

    #[test]
    fn html_lists_findings_escaped_and_tables() {
        let dir = tempfile::tempdir().expect("tmp");
        let findings = dir.path().join("findings.jsonl");
        let f = Finding {
            kind: FindingKind::Misplaced,
            region: "us".into(),
            key: "acme/<script>.json".into(),
            tenant: Some("acme".into()),
            category: Some("ticket_data".into()),
            expected_region: Some("eu".into()),
            size: 5,
            reason: "ticket_data of tenant acme belongs in eu, found in us".into(),
        };
        std::fs::write(
            &findings,
            format!("{}\n", serde_json::to_string(&f).unwrap()),
        )
        .unwrap();
        let out = dir.path().join("report.html");
        write_html(&summary(), &findings, &out).expect("written");
        let page = std::fs::read_to_string(&out).unwrap();
        assert!(page.contains("<table id=\"findings\">"));
        assert!(page.contains("acme/&lt;script&gt;.json"), "escaped key");
        assert!(page.contains("belongs in eu, found in us"));
        assert!(page.contains("<h3 id=\"tenant-acme\">acme</h3>"));
        assert!(page.trim_end().ends_with("</html>"));
    }

    #[test]
    fn metrics_and_text_name_every_kind() {
        let s = summary();
        let m = metrics(&s);
        assert!(m.contains("residency_scan_findings{kind=\"misplaced\"} 1"));
        assert!(m.contains("residency_scan_findings{kind=\"unknown_tenant\"} 0"));
        assert!(m.contains("residency_scan_complete 1"));
        let t = text(&s);
        assert!(t.contains("misplaced"), "{t}");
        assert!(t.contains("1 finding(s)"), "{t}");
    }
}
