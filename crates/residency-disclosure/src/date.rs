//! Calendar dates (`YYYY-MM-DD`, UTC) and RFC 3339 timestamps: the ledger
//! needs only days and UTC instants (the calendar arithmetic is `time`'s).

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

/// The Julian day number of 1970-01-01.
const UNIX_EPOCH_JULIAN_DAY: i64 = 2_440_588;

/// A calendar date in UTC, written `YYYY-MM-DD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Date {
    year: i32,
    month: u8,
    day: u8,
}

impl Date {
    /// A date from its parts, if it exists.
    pub fn new(year: i32, month: u8, day: u8) -> Option<Date> {
        let m = time::Month::try_from(month).ok()?;
        time::Date::from_calendar_date(year, m, day).ok()?;
        Some(Date { year, month, day })
    }

    /// The year.
    pub fn year(self) -> i32 {
        self.year
    }

    /// The month (1-12).
    pub fn month(self) -> u8 {
        self.month
    }

    /// Days since 1970-01-01.
    pub fn days_since_epoch(self) -> i64 {
        let d = time::Month::try_from(self.month)
            .ok()
            .and_then(|m| time::Date::from_calendar_date(self.year, m, self.day).ok())
            .expect("a Date is a valid calendar date");
        i64::from(d.to_julian_day()) - UNIX_EPOCH_JULIAN_DAY
    }

    /// The date `days` days after 1970-01-01 (clamped to years -9999..=9999).
    pub fn from_days_since_epoch(days: i64) -> Date {
        let d = i32::try_from(days.saturating_add(UNIX_EPOCH_JULIAN_DAY))
            .ok()
            .and_then(|jd| time::Date::from_julian_day(jd).ok())
            .unwrap_or(if days < 0 {
                time::Date::MIN
            } else {
                time::Date::MAX
            });
        Date {
            year: d.year(),
            month: d.month().into(),
            day: d.day(),
        }
    }

    /// The UTC date of an instant.
    pub fn of(t: SystemTime) -> Date {
        let secs = t
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        Date::from_days_since_epoch(secs.div_euclid(86_400))
    }

    /// Today, in UTC.
    pub fn today() -> Date {
        Date::of(SystemTime::now())
    }

    /// Midnight UTC at the start of this date.
    pub fn start(self) -> SystemTime {
        let days = self.days_since_epoch();
        if days >= 0 {
            SystemTime::UNIX_EPOCH + Duration::from_secs(days as u64 * 86_400)
        } else {
            SystemTime::UNIX_EPOCH - Duration::from_secs(days.unsigned_abs() * 86_400)
        }
    }

    /// Midnight UTC at the end of this date (the start of the next day).
    pub fn end(self) -> SystemTime {
        self.start() + Duration::from_secs(86_400)
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

impl FromStr for Date {
    type Err = String;

    fn from_str(s: &str) -> Result<Date, String> {
        let bad = || format!("{s:?} is not a date like 2026-07-15");
        let mut parts = s.splitn(3, '-');
        let (Some(y), Some(m), Some(d)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(bad());
        };
        if y.len() != 4 || m.len() != 2 || d.len() != 2 {
            return Err(bad());
        }
        let y: i32 = y.parse().map_err(|_| bad())?;
        let m: u8 = m.parse().map_err(|_| bad())?;
        let d: u8 = d.parse().map_err(|_| bad())?;
        Date::new(y, m, d).ok_or_else(bad)
    }
}

impl TryFrom<String> for Date {
    type Error = String;
    fn try_from(s: String) -> Result<Date, String> {
        s.parse()
    }
}

impl From<Date> for String {
    fn from(d: Date) -> String {
        d.to_string()
    }
}

/// An instant as RFC 3339 UTC with milliseconds (`2026-07-15T09:30:00.123Z`).
pub fn rfc3339(t: SystemTime) -> String {
    let since = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    let secs = since.as_secs() as i64;
    let date = Date::from_days_since_epoch(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!(
        "{date}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        since.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for days in [-700_000, -1, 0, 1, 59, 10_957, 20_635, 2_000_000] {
            let d = Date::from_days_since_epoch(days);
            assert_eq!(d.days_since_epoch(), days, "{d}");
            assert_eq!(d.to_string().parse::<Date>().unwrap(), d);
        }
        assert_eq!(Date::from_days_since_epoch(0).to_string(), "1970-01-01");
        assert_eq!(
            "2024-02-29".parse::<Date>().unwrap().to_string(),
            "2024-02-29"
        );
    }

    #[test]
    fn rejects_bad_dates() {
        for s in [
            "2026-02-29",
            "2026-13-01",
            "26-01-01",
            "2026-1-01",
            "x",
            "2026-01-00",
        ] {
            assert!(s.parse::<Date>().is_err(), "{s}");
        }
    }

    #[test]
    fn formats_instants() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_784_107_800_123);
        assert_eq!(rfc3339(t), "2026-07-15T09:30:00.123Z");
        assert_eq!(Date::of(t).to_string(), "2026-07-15");
    }
}
