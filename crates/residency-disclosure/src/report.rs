//! The semi-annual transparency report: "the number and type of Data
//! Disclosure Requests it has received for the preceding six months".

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::str::FromStr;

use serde::Serialize;

use crate::date::Date;
use crate::record::{Notice, RequestRecord};
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
        State::Received | State::OnHold | State::Approved => "pending",
    }
}

/// One cell of the report: requests of one country, type and outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReportRow {
    /// ISO 3166-1 alpha-2.
    pub country: String,
    /// The request type.
    pub request_type: String,
    /// `disclosed`, `refused`, `challenged` or `pending`.
    pub outcome: String,
    /// Number of requests.
    pub requests: u64,
}

/// The transparency report of one half year, over every tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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

    /// As Markdown, for publication.
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# Transparency report {}\n", self.period);
        let _ = writeln!(
            out,
            "Government data disclosure requests received from {} to {}: **{}**.\n",
            self.from, self.to, self.requests
        );
        let _ = writeln!(
            out,
            "Objects disclosed: {} ({} bytes). Customer notice: {} sent, {} legally prohibited, {} pending.\n",
            self.objects_disclosed,
            self.bytes_disclosed,
            self.notices.get("sent").unwrap_or(&0),
            self.notices.get("prohibited").unwrap_or(&0),
            self.notices.get("pending").unwrap_or(&0),
        );
        for (title, head, map) in [
            ("By authority country", "Country", &self.by_country),
            ("By request type", "Type", &self.by_type),
            ("By outcome", "Outcome", &self.by_outcome),
        ] {
            let _ = writeln!(out, "## {title}\n\n| {head} | Requests |\n|---|---:|");
            for (k, v) in map {
                let _ = writeln!(out, "| {k} | {v} |");
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
                row.country, row.request_type, row.outcome, row.requests
            );
        }
        out
    }

    /// As pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("the report serializes") + "\n"
    }

    /// As CSV: `period,country,request_type,outcome,requests`, one row per cell.
    pub fn to_csv(&self) -> String {
        let mut out = String::from("period,country,request_type,outcome,requests\n");
        for row in &self.rows {
            let _ = writeln!(
                out,
                "{},{},{},{},{}",
                self.period, row.country, row.request_type, row.outcome, row.requests
            );
        }
        out
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
}
