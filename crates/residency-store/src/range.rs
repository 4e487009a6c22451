//! S3 `Range` header semantics.

use std::fmt;
use std::str::FromStr;

use crate::error::StoreError;

/// A single byte range as in an S3 `Range: bytes=...` header.
///
/// ```
/// use residency_store::ByteRange;
/// let r: ByteRange = "bytes=0-9".parse().unwrap();
/// assert_eq!(r, ByteRange::Between { first: 0, last: 9 });
/// assert_eq!(r.resolve(5).unwrap(), (0, 4)); // clamped to the object
/// assert_eq!(ByteRange::parse("bytes=-3").unwrap().resolve(10).unwrap(), (7, 9));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ByteRange {
    /// `bytes=first-last`, both inclusive.
    Between {
        /// First byte offset.
        first: u64,
        /// Last byte offset, inclusive.
        last: u64,
    },
    /// `bytes=first-`: from `first` to the end.
    From {
        /// First byte offset.
        first: u64,
    },
    /// `bytes=-n`: the last `n` bytes.
    Suffix {
        /// Number of bytes at the end.
        len: u64,
    },
}

impl ByteRange {
    /// Parses a `Range` header value (`bytes=a-b`, `bytes=a-`, `bytes=-n`).
    ///
    /// # Errors
    /// [`StoreError::InvalidRange`] on any other form, including several
    /// ranges (S3 serves only one). S3 itself ignores a malformed `Range`
    /// header and serves the whole object; a proxy that wants the same
    /// behaviour ignores this error.
    pub fn parse(header: &str) -> Result<Self, StoreError> {
        let spec = header
            .trim()
            .strip_prefix("bytes=")
            .ok_or(StoreError::InvalidRange)?
            .trim();
        if spec.contains(',') {
            return Err(StoreError::InvalidRange);
        }
        let (a, b) = spec.split_once('-').ok_or(StoreError::InvalidRange)?;
        let num = |s: &str| -> Result<u64, StoreError> {
            if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
                return Err(StoreError::InvalidRange);
            }
            s.parse().map_err(|_| StoreError::InvalidRange)
        };
        match (a.trim(), b.trim()) {
            ("", n) => Ok(Self::Suffix { len: num(n)? }),
            (a, "") => Ok(Self::From { first: num(a)? }),
            (a, b) => {
                let (first, last) = (num(a)?, num(b)?);
                if last < first {
                    return Err(StoreError::InvalidRange);
                }
                Ok(Self::Between { first, last })
            }
        }
    }

    /// The inclusive `(start, end)` offsets this range selects in an object
    /// of `size` bytes, clamped like S3 does.
    ///
    /// # Errors
    /// [`StoreError::InvalidRange`] when nothing of the object is selected
    /// (start past the end, empty object, `bytes=-0`).
    pub fn resolve(&self, size: u64) -> Result<(u64, u64), StoreError> {
        if size == 0 {
            return Err(StoreError::InvalidRange);
        }
        match *self {
            Self::Between { first, last } if first < size => Ok((first, last.min(size - 1))),
            Self::From { first } if first < size => Ok((first, size - 1)),
            Self::Suffix { len } if len > 0 => Ok((size.saturating_sub(len), size - 1)),
            _ => Err(StoreError::InvalidRange),
        }
    }

    /// The header value, e.g. `bytes=0-9`.
    pub fn to_header(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for ByteRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Between { first, last } => write!(f, "bytes={first}-{last}"),
            Self::From { first } => write!(f, "bytes={first}-"),
            Self::Suffix { len } => write!(f, "bytes=-{len}"),
        }
    }
}

impl FromStr for ByteRange {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// A `Content-Range` answer, `bytes 0-9/100`, as `(0, 9, 100)`.
pub(crate) fn parse_content_range(s: &str) -> Option<(u64, u64, u64)> {
    let rest = s.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (a, b) = range.split_once('-')?;
    Some((a.parse().ok()?, b.parse().ok()?, total.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_answers() {
        assert_eq!(parse_content_range("bytes 0-9/100"), Some((0, 9, 100)));
        assert_eq!(parse_content_range("bytes */100"), None);
    }

    #[test]
    fn parses_the_three_forms() {
        assert_eq!(
            ByteRange::parse("bytes=1-2").unwrap(),
            ByteRange::Between { first: 1, last: 2 }
        );
        assert_eq!(
            ByteRange::parse("bytes=5-").unwrap(),
            ByteRange::From { first: 5 }
        );
        assert_eq!(
            ByteRange::parse("bytes=-7").unwrap(),
            ByteRange::Suffix { len: 7 }
        );
        for bad in [
            "",
            "bytes=",
            "bytes=-",
            "bytes=a-b",
            "bytes=3-1",
            "bytes=0-1,3-4",
            "items=0-1",
            "bytes=+1-2",
        ] {
            assert!(ByteRange::parse(bad).is_err(), "{bad}");
        }
        for s in ["bytes=1-2", "bytes=5-", "bytes=-7"] {
            assert_eq!(ByteRange::parse(s).unwrap().to_header(), s);
        }
    }

    #[test]
    fn resolves_like_s3() {
        let r = |s: &str, size| ByteRange::parse(s).unwrap().resolve(size);
        assert_eq!(r("bytes=0-0", 10).unwrap(), (0, 0));
        assert_eq!(r("bytes=2-100", 10).unwrap(), (2, 9));
        assert_eq!(r("bytes=9-", 10).unwrap(), (9, 9));
        assert_eq!(r("bytes=-3", 10).unwrap(), (7, 9));
        assert_eq!(r("bytes=-30", 10).unwrap(), (0, 9));
        assert!(r("bytes=10-", 10).is_err());
        assert!(r("bytes=10-20", 10).is_err());
        assert!(r("bytes=-0", 10).is_err());
        assert!(r("bytes=0-", 0).is_err());
    }
}
