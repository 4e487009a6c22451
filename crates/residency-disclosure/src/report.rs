//! The semi-annual transparency report: "the number and type of Data
//! Disclosure Requests it has received for the preceding six months".
//!
//! The report is made from every ledger found in every region (a churned
//! tenant's and the unattributed requests included), counts small numbers in
//! bands where configured ("as may be limited by applicable law"), and a
//! period's report can be frozen and signed: a later run shows the frozen
//! report and, separately, what changed after it was frozen.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::date::Date;
use crate::record::{Notice, RequestRecord};
use crate::signing::EntrySignature;
use crate::state::State;

/// A half year: `2026H1` (January–June) or `2026H2` (July–December).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Period {
    year: i32,
    half: u8,
}

impl Period {
    /// The half year `half` (1 or 2) of `year`.
    pub fn new(year: i32, half: u8) -> Option<Period> {
        matches!(half, 1 | 2).then_some(Period { year, half })
    }

    /// First day.
    pub fn first_day(self) -> Date {
        Date::new(self.year, if self.half == 1 { 1 } else { 7 }, 1).expect("valid date")
    }

    /// Last day.
    pub fn last_day(self) -> Date {
        if self.half == 1 {
            Date::new(self.year, 6, 30).expect("valid date")
        } else {
            Date::new(self.year, 12, 31).expect("valid date")
        }
    }

    /// Whether `d` falls in this half year.
    pub fn contains(self, d: Date) -> bool {
        d.year() == self.year && (d.month() <= 6) == (self.half == 1)
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}H{}", self.year, self.half)
    }
}

impl FromStr for Period {
    type Err = String;
    fn from_str(s: &str) -> Result<Period, String> {
        let bad = || format!("{s:?} is not a half year like 2026H2");
        let (y, h) = s.split_once(['H', 'h']).ok_or_else(bad)?;
        if y.len() != 4 {
            return Err(bad());
        }
        Period::new(y.parse().map_err(|_| bad())?, h.parse().map_err(|_| bad())?).ok_or_else(bad)
    }
}

/// How a request ended, as the report counts it.
pub fn outcome(state: State) -> &'static str {
    match state {
        State::Fulfilled => "disclosed",
        State::Refused => "refused",
        State::Challenged => "challenged",
        State::Redirected => "redirected",
        State::Received | State::OnHold | State::Approved => "pending",
    }
}

/// One cell of the report: requests of one country, type and outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportRow {
    /// ISO 3166-1 alpha-2.
    pub country: String,
    /// The request type.
    pub request_type: String,
    /// `disclosed`, `refused`, `challenged`, `redirected` or `pending`.
    pub outcome: String,
    /// Number of requests.
    pub requests: u64,
}

/// The transparency report of one half year, over every tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransparencyReport {
    /// `2026H2`.
    pub period: String,
    /// First day.
    pub from: Date,
    /// Last day.
    pub to: Date,
    /// Requests received in the period.
    pub requests: u64,
    /// By the authority's country.
    pub by_country: BTreeMap<String, u64>,
    /// By request type.
    pub by_type: BTreeMap<String, u64>,
    /// By outcome (as of when the report is made).
    pub by_outcome: BTreeMap<String, u64>,
    /// Customer notice: `sent`, `prohibited`, `pending`.
    pub notices: BTreeMap<String, u64>,
    /// Objects disclosed for these requests.
    pub objects_disclosed: u64,
    /// Bytes disclosed for these requests.
    pub bytes_disclosed: u64,
    /// The cross table: country × type × outcome.
    pub rows: Vec<ReportRow>,
    /// Ledgers read (every ledger in every region, whether or not its
    /// tenant is still in the tenants file).
    #[serde(default)]
    pub ledgers: u64,
    /// Ledger entries read, over all periods.
    #[serde(default)]
    pub ledger_entries: u64,
    /// The bands request counts are published in (empty: exact counts).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bands: Vec<u64>,
}

/// A count as published: exact, or its band.
pub fn banded(bands: &[u64], n: u64) -> String {
    let Some(last) = bands.last() else {
        return n.to_string();
    };
    if n >= *last {
        return n.to_string();
    }
    let i = bands.iter().rposition(|b| *b <= n).unwrap_or(0);
    let (lo, hi) = (bands[i], bands[i + 1] - 1);
    if lo == hi {
        lo.to_string()
    } else {
        format!("{lo}-{hi}")
    }
}

impl TransparencyReport {
    /// Counts the requests received in `period` among `records`.
    pub fn compute<'a>(
        period: Period,
        records: impl IntoIterator<Item = &'a RequestRecord>,
    ) -> Self {
        let mut r = TransparencyReport {
            period: period.to_string(),
            from: period.first_day(),
            to: period.last_day(),
            requests: 0,
            by_country: BTreeMap::new(),
            by_type: BTreeMap::new(),
            by_outcome: BTreeMap::new(),
            notices: BTreeMap::new(),
            objects_disclosed: 0,
            bytes_disclosed: 0,
            rows: Vec::new(),
            ledgers: 0,
            ledger_entries: 0,
            bands: Vec::new(),
        };
        let mut cells: BTreeMap<(String, String, String), u64> = BTreeMap::new();
        for rec in records {
            let req = &rec.request.request;
            if !period.contains(req.received) {
                continue;
            }
            let outcome = outcome(rec.state).to_owned();
            r.requests += 1;
            *r.by_country.entry(req.country.clone()).or_default() += 1;
            *r.by_type.entry(req.request_type.to_string()).or_default() += 1;
            *r.by_outcome.entry(outcome.clone()).or_default() += 1;
            let notice = match rec.notice {
                Notice::Sent { .. } => "sent",
                Notice::Prohibited { .. } => "prohibited",
                Notice::Pending => "pending",
            };
            *r.notices.entry(notice.to_owned()).or_default() += 1;
            if let Some(e) = &rec.export {
                r.objects_disclosed += e.objects;
                r.bytes_disclosed += e.bytes;
            }
            *cells
                .entry((req.country.clone(), req.request_type.to_string(), outcome))
                .or_default() += 1;
        }
        r.rows = cells
            .into_iter()
            .map(|((country, request_type, outcome), requests)| ReportRow {
                country,
                request_type,
                outcome,
                requests,
            })
            .collect();
        r
    }

    /// A request count as published.
    pub fn shown(&self, n: u64) -> String {
        banded(&self.bands, n)
    }

    /// As Markdown, for publication.
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# Transparency report {}\n", self.period);
        let _ = writeln!(
            out,
            "Government data disclosure requests received from {} to {}: **{}**.\n",
            self.from,
            self.to,
            self.shown(self.requests)
        );
        if !self.bands.is_empty() {
            let _ = writeln!(
                out,
                "Request counts below {} are given in bands, as the law requires.\n",
                self.bands.last().unwrap_or(&0)
            );
        }
        let _ = writeln!(
            out,
            "Objects disclosed: {} ({} bytes). Customer notice: {} sent, {} legally prohibited, {} pending.\n",
            self.objects_disclosed,
            self.bytes_disclosed,
            self.shown(*self.notices.get("sent").unwrap_or(&0)),
            self.shown(*self.notices.get("prohibited").unwrap_or(&0)),
            self.shown(*self.notices.get("pending").unwrap_or(&0)),
        );
        for (title, head, map) in [
            ("By authority country", "Country", &self.by_country),
            ("By request type", "Type", &self.by_type),
            ("By outcome", "Outcome", &self.by_outcome),
        ] {
            let _ = writeln!(out, "## {title}\n\n| {head} | Requests |\n|---|---:|");
            for (k, v) in map {
                let _ = writeln!(out, "| {k} | {} |", self.shown(*v));
            }
            out.push('\n');
        }
        let _ = writeln!(
            out,
            "## Country × type × outcome\n\n| Country | Type | Outcome | Requests |\n|---|---|---|---:|"
        );
        for row in &self.rows {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                row.country,
                row.request_type,
                row.outcome,
                self.shown(row.requests)
            );
        }
        let _ = writeln!(
            out,
            "\nCounted from {} ledger(s), {} ledger entries.",
            self.ledgers, self.ledger_entries
        );
        out
    }

    /// As JSON, request counts banded when bands are configured.
    pub fn to_value(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).expect("the report serializes");
        if self.bands.is_empty() {
            return v;
        }
        let band = |x: &mut serde_json::Value| {
            if let Some(n) = x.as_u64() {
                *x = serde_json::Value::String(self.shown(n));
            }
        };
        band(&mut v["requests"]);
        for map in ["by_country", "by_type", "by_outcome", "notices"] {
            if let Some(m) = v[map].as_object_mut() {
                m.values_mut().for_each(band);
            }
        }
        if let Some(rows) = v["rows"].as_array_mut() {
            for r in rows {
                band(&mut r["requests"]);
            }
        }
        v
    }

    /// As pretty JSON (request counts banded when bands are configured).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(&self.to_value()).expect("the report serializes") + "\n"
    }

    /// As CSV: `period,country,request_type,outcome,requests`, one row per cell.
    pub fn to_csv(&self) -> String {
        let mut out = String::from("period,country,request_type,outcome,requests\n");
        for row in &self.rows {
            let _ = writeln!(
                out,
                "{},{},{},{},{}",
                self.period,
                row.country,
                row.request_type,
                row.outcome,
                self.shown(row.requests)
            );
        }
        out
    }
}

/// What a frozen report records: the report as it stood, each request's
/// outcome then, and the ledger heads it was made from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrozenBody {
    /// The period.
    pub period: String,
    /// When it was frozen (RFC 3339).
    pub frozen_at: String,
    /// The report.
    pub report: TransparencyReport,
    /// Request id → outcome when frozen (internal; never published).
    pub outcomes: BTreeMap<String, String>,
    /// `<tenant>@<region>` → ledger head when frozen.
    pub heads: BTreeMap<String, String>,
}

/// A frozen, signed report as stored: the body's exact JSON and the
/// privacy team member's signature over it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrozenReport {
    /// The body's JSON.
    pub body: String,
    /// The signature over `body`.
    pub sig: EntrySignature,
}

/// One request whose standing changed after its period's report was frozen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LateChange {
    /// The authority's country.
    pub country: String,
    /// The request type.
    pub request_type: String,
    /// The outcome when frozen (`None`: recorded after the freeze).
    pub frozen: Option<String>,
    /// The outcome now.
    pub now: String,
}

/// A report run: the frozen report when the period is frozen, with what
/// changed after, else the live report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReportView {
    /// The report: the frozen one, or the live one when not frozen.
    pub report: TransparencyReport,
    /// When it was frozen and by whom (`None`: not frozen).
    pub frozen: Option<FrozenInfo>,
    /// Requests of the period recorded, or whose outcome changed, after
    /// the freeze (empty when not frozen).
    pub changes_since_frozen: Vec<LateChange>,
}

/// Who froze a report, when, and whether the signature verifies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FrozenInfo {
    /// When (RFC 3339).
    pub at: String,
    /// The privacy team member.
    pub by: String,
    /// Their public key.
    pub public_key: String,
    /// Whether the signature over the stored body verifies.
    pub signature_ok: bool,
}

impl ReportView {
    /// As Markdown: the report, then the frozen note and late changes.
    pub fn to_markdown(&self) -> String {
        let mut out = self.report.to_markdown();
        if let Some(f) = &self.frozen {
            let _ = writeln!(
                out,
                "\nFrozen at {} by {} (key {}): signature {}.",
                f.at,
                f.by,
                f.public_key,
                if f.signature_ok {
                    "verified"
                } else {
                    "DOES NOT VERIFY"
                }
            );
            if self.changes_since_frozen.is_empty() {
                let _ = writeln!(out, "\nNo changes recorded after the report was frozen.");
            } else {
                let _ = writeln!(
                    out,
                    "\n## Changes recorded after the report was frozen\n\n| Country | Type | Frozen outcome | Outcome now |\n|---|---|---|---|"
                );
                for c in &self.changes_since_frozen {
                    let _ = writeln!(
                        out,
                        "| {} | {} | {} | {} |",
                        c.country,
                        c.request_type,
                        c.frozen.as_deref().unwrap_or("(recorded later)"),
                        c.now
                    );
                }
            }
        }
        out
    }

    /// As pretty JSON.
    pub fn to_json(&self) -> String {
        let v = serde_json::json!({
            "report": self.report.to_value(),
            "frozen": self.frozen,
            "changes_since_frozen": self.changes_since_frozen,
        });
        serde_json::to_string_pretty(&v).expect("the report serializes") + "\n"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods() {
        let p: Period = "2026H2".parse().unwrap();
        assert_eq!(p.first_day().to_string(), "2026-07-01");
        assert_eq!(p.last_day().to_string(), "2026-12-31");
        assert!(p.contains("2026-07-01".parse().unwrap()));
        assert!(!p.contains("2026-06-30".parse().unwrap()));
        assert!(!p.contains("2027-07-01".parse().unwrap()));
        assert!("2026H3".parse::<Period>().is_err());
        assert!("26H1".parse::<Period>().is_err());
    }

    #[test]
    fn bands() {
        let b = [0, 1, 250];
        assert_eq!(banded(&b, 0), "0");
        assert_eq!(banded(&b, 1), "1-249");
        assert_eq!(banded(&b, 249), "1-249");
        assert_eq!(banded(&b, 250), "250");
        assert_eq!(banded(&[], 7), "7");
    }
}
