//! Conditional GET and HEAD (`If-Match`, `If-None-Match`,
//! `If-Modified-Since`, `If-Unmodified-Since`), decided on the object the
//! region returned, in RFC 9110's order (§13.2.2), which S3 follows:
//! a failed `If-Match` (or, without it, `If-Unmodified-Since`) is `412
//! Precondition Failed`; a matching `If-None-Match` (or, without it, an
//! unchanged `If-Modified-Since`) is `304 Not Modified`.

use std::time::{SystemTime, UNIX_EPOCH};

use residency_store::ObjectInfo;
use s3s::dto::{ETagCondition, Timestamp};
use s3s::{s3_error, S3Result};

/// The conditions of one request.
pub(super) struct Conditions<'a> {
    pub(super) if_match: Option<&'a ETagCondition>,
    pub(super) if_none_match: Option<&'a ETagCondition>,
    pub(super) if_modified_since: Option<&'a Timestamp>,
    pub(super) if_unmodified_since: Option<&'a Timestamp>,
}

/// The conditions of a GET or HEAD input.
macro_rules! of {
    ($input:expr) => {
        $crate::s3::conditional::Conditions {
            if_match: $input.if_match.as_ref(),
            if_none_match: $input.if_none_match.as_ref(),
            if_modified_since: $input.if_modified_since.as_ref(),
            if_unmodified_since: $input.if_unmodified_since.as_ref(),
        }
    };
}
pub(super) use of;

/// The only version of an object in the unversioned buckets is `null`:
/// asking for another is `NoSuchVersion` (never the current object).
///
/// # Errors
/// `NoSuchVersion` (404).
pub(super) fn check_version(version_id: Option<&str>) -> S3Result<()> {
    match version_id {
        None | Some("null") => Ok(()),
        Some(_) => Err(s3_error!(
            NoSuchVersion,
            "The specified version does not exist (the bucket is not versioned: its objects have only the version null)"
        )),
    }
}

fn matches(c: &ETagCondition, etag: &str) -> bool {
    match c {
        ETagCondition::Any => true,
        ETagCondition::ETag(e) => e.value() == etag.trim_matches('"'),
    }
}

fn secs(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn stamp(t: &Timestamp) -> i64 {
    time::OffsetDateTime::from(t.clone()).unix_timestamp()
}

impl Conditions<'_> {
    /// Whether any condition is given.
    pub(super) fn any(&self) -> bool {
        self.if_match.is_some()
            || self.if_none_match.is_some()
            || self.if_modified_since.is_some()
            || self.if_unmodified_since.is_some()
    }

    /// [`Conditions::check`] of a copy's source: "not modified" is a failed
    /// precondition too (412).
    ///
    /// # Errors
    /// `PreconditionFailed` (412).
    pub(super) fn check_copy_source(&self, info: &ObjectInfo) -> S3Result<()> {
        self.check(info).map_err(|e| {
            if *e.code() == s3s::S3ErrorCode::NotModified {
                s3_error!(
                    PreconditionFailed,
                    "At least one of the pre-conditions you specified did not hold"
                )
            } else {
                e
            }
        })
    }

    /// `Ok` when the object is to be sent.
    ///
    /// # Errors
    /// `PreconditionFailed` (412) or `NotModified` (304).
    pub(super) fn check(&self, info: &ObjectInfo) -> S3Result<()> {
        // HTTP dates have whole seconds.
        let modified = secs(info.last_modified);
        let failed = match (self.if_match, self.if_unmodified_since) {
            (Some(c), _) => !matches(c, &info.etag),
            (None, Some(t)) => modified > stamp(t),
            (None, None) => false,
        };
        if failed {
            return Err(s3_error!(
                PreconditionFailed,
                "At least one of the pre-conditions you specified did not hold"
            ));
        }
        let unchanged = match (self.if_none_match, self.if_modified_since) {
            (Some(c), _) => matches(c, &info.etag),
            (None, Some(t)) => modified <= stamp(t),
            (None, None) => false,
        };
        if unchanged {
            return Err(s3_error!(NotModified));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use s3s::dto::ETag;

    fn info(etag: &str, at: u64) -> ObjectInfo {
        ObjectInfo {
            key: "k".into(),
            size: 1,
            etag: format!("\"{etag}\""),
            last_modified: UNIX_EPOCH + std::time::Duration::from_secs(at),
            headers: Default::default(),
            checksums: Default::default(),
            version_id: None,
            sse: Default::default(),
        }
    }

    fn ts(at: u64) -> Timestamp {
        Timestamp::from(UNIX_EPOCH + std::time::Duration::from_secs(at))
    }

    /// The answer for (If-Match, If-None-Match, If-Modified-Since,
    /// If-Unmodified-Since).
    fn answer(
        o: &ObjectInfo,
        m: Option<&ETagCondition>,
        nm: Option<&ETagCondition>,
        ms: Option<&Timestamp>,
        us: Option<&Timestamp>,
    ) -> String {
        let c = Conditions {
            if_match: m,
            if_none_match: nm,
            if_modified_since: ms,
            if_unmodified_since: us,
        };
        c.check(o)
            .err()
            .map_or("200".into(), |e| e.code().as_str().to_owned())
    }

    #[test]
    fn rfc_order_decides() {
        let o = info("abc", 1_000);
        let right = ETagCondition::ETag(ETag::Strong("abc".into()));
        let wrong = ETagCondition::ETag(ETag::Strong("xyz".into()));
        let any = ETagCondition::Any;
        let (past, future) = (ts(500), ts(2_000));
        let (r, w, p, f) = (Some(&right), Some(&wrong), Some(&past), Some(&future));
        let cases = [
            ((None, None, None, None), "200"),
            ((r, None, None, None), "200"),
            ((w, None, None, None), "PreconditionFailed"),
            ((Some(&any), None, None, None), "200"),
            ((None, None, None, p), "PreconditionFailed"),
            ((None, None, None, f), "200"),
            // If-Match holds: If-Unmodified-Since is not looked at.
            ((r, None, None, p), "200"),
            ((None, r, None, None), "NotModified"),
            ((None, w, None, None), "200"),
            ((None, None, f, None), "NotModified"),
            ((None, None, p, None), "200"),
            // If-None-Match differs: If-Modified-Since is not looked at.
            ((None, w, f, None), "200"),
            // 412 before 304.
            ((w, r, None, None), "PreconditionFailed"),
        ];
        for ((m, nm, ms, us), want) in cases {
            assert_eq!(
                answer(&o, m, nm, ms, us),
                want,
                "{m:?} {nm:?} {ms:?} {us:?}"
            );
        }
    }
}
