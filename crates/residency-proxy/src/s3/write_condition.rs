//! Conditional writes: `If-None-Match: *` (create only) and
//! `If-Match: <etag>` on PutObject, CopyObject and CompleteMultipartUpload.
//!
//! Garage ignores both headers on writes, so the sidecar decides them: it
//! takes the key's lock (see [`super::key_lock`]), reads the key's current
//! object across the tenant's regions as a GET would, answers S3's
//! `412 PreconditionFailed` (or `404 NoSuchKey` for `If-Match` on a missing
//! key) and otherwise writes while still holding the lock. Two conditional
//! writers of one key through the same sidecar cannot both win; a writer
//! through another replica, or an unconditional one, is not serialised with
//! them (docs/s3-compatibility.md says what is atomic).

use residency_store::ObjectInfo;
use residency_tower::Resolved;
use s3s::dto::ETagCondition;
use s3s::{s3_error, S3ErrorCode, S3Result};

use super::tagging::head;
use super::Gateway;

/// The conditions of one write.
#[derive(Debug, Default, Clone)]
pub(super) struct WriteCondition {
    pub(super) if_match: Option<ETagCondition>,
    pub(super) if_none_match: Option<ETagCondition>,
}

impl WriteCondition {
    /// The conditions of a request whose input shape does not carry them
    /// (CopyObject in this s3s): read from its headers.
    pub(super) fn from_headers(h: &http::HeaderMap) -> S3Result<Self> {
        let get = |name: &str| -> S3Result<Option<ETagCondition>> {
            let Some(v) = h.get(name) else {
                return Ok(None);
            };
            let v = v
                .to_str()
                .map_err(|_| s3_error!(InvalidArgument, "{} is not a valid ETag", name))?;
            ETagCondition::parse_http_header(v.as_bytes())
                .map(Some)
                .map_err(|_| s3_error!(InvalidArgument, "{} is not a valid ETag", name))
        };
        Ok(Self {
            if_match: get("if-match")?,
            if_none_match: get("if-none-match")?,
        })
    }

    /// True when the write has a condition.
    pub(super) fn is_some(&self) -> bool {
        self.if_match.is_some() || self.if_none_match.is_some()
    }

    /// True for `If-None-Match: *`, which the store is asked to decide too.
    pub(super) fn is_create_only(&self) -> bool {
        matches!(self.if_none_match, Some(ETagCondition::Any))
    }

    /// Decides the conditions on the key's current object (`None`: no object).
    ///
    /// # Errors
    /// `NotImplemented` for `If-None-Match` with an ETag (S3 supports only
    /// `*`), `PreconditionFailed` (412), `NoSuchKey` for `If-Match` without
    /// an object.
    pub(super) fn decide(&self, current: Option<&ObjectInfo>) -> S3Result<()> {
        let failed = || {
            s3_error!(
                PreconditionFailed,
                "At least one of the pre-conditions you specified did not hold"
            )
        };
        match &self.if_none_match {
            Some(ETagCondition::Any) if current.is_some() => return Err(failed()),
            None | Some(ETagCondition::Any) => {}
            Some(ETagCondition::ETag(_)) => {
                return Err(s3_error!(
                    NotImplemented,
                    "A header you provided implies functionality that is not implemented: If-None-Match on a write takes only *"
                ))
            }
        }
        match (&self.if_match, current) {
            (None, _) => Ok(()),
            (Some(_), None) => Err(s3_error!(
                NoSuchKey,
                "The specified key does not exist (If-Match needs an object to compare with)"
            )),
            (Some(ETagCondition::Any), Some(_)) => Ok(()),
            (Some(ETagCondition::ETag(e)), Some(info)) => {
                if e.value() == info.etag.trim_matches('"') {
                    Ok(())
                } else {
                    Err(failed())
                }
            }
        }
    }
}

/// The key's current object, read across the tenant's regions (`None` when
/// no region has it).
///
/// # Errors
/// Whatever the read fails with other than `NoSuchKey` (fail closed: an
/// unreachable region is not an absent object).
pub(super) async fn current(
    gw: &Gateway,
    tenant: &Resolved,
    key: &str,
) -> S3Result<Option<ObjectInfo>> {
    match head(gw, tenant, key).await {
        Ok(info) => Ok(Some(info)),
        Err(e) if *e.code() == S3ErrorCode::NoSuchKey => Ok(None),
        Err(e) => Err(e),
    }
}

/// Takes the key's lock when the write has conditions and checks them; the
/// caller holds the guard until its write is done (`None`: no conditions,
/// no lock).
///
/// # Errors
/// As [`check`].
pub(super) async fn locked<'a>(
    gw: &'a Gateway,
    tenant: &Resolved,
    bucket: &str,
    key: &str,
    cond: &WriteCondition,
) -> S3Result<Option<tokio::sync::MutexGuard<'a, ()>>> {
    if !cond.is_some() {
        return Ok(None);
    }
    let guard = gw.locks.lock(bucket, key).await;
    check(gw, tenant, key, cond).await?;
    Ok(Some(guard))
}

/// Checks a write's conditions (nothing when it has none). The caller holds
/// the key's lock until its write is done.
///
/// # Errors
/// As [`WriteCondition::decide`], or the read's failure.
pub(super) async fn check(
    gw: &Gateway,
    tenant: &Resolved,
    key: &str,
    cond: &WriteCondition,
) -> S3Result<()> {
    if !cond.is_some() {
        return Ok(());
    }
    if matches!(cond.if_none_match, Some(ETagCondition::ETag(_))) {
        return cond.decide(None);
    }
    let cur = current(gw, tenant, key).await?;
    cond.decide(cur.as_ref())
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use residency_store::{Checksums, StoredHeaders};
    use s3s::dto::ETag;

    use super::*;

    fn info(etag: &str) -> ObjectInfo {
        ObjectInfo {
            key: "k".into(),
            size: 1,
            etag: format!("\"{etag}\""),
            last_modified: SystemTime::UNIX_EPOCH,
            headers: StoredHeaders::default(),
            checksums: Checksums::default(),
            version_id: None,
            sse: Default::default(),
        }
    }

    fn code(r: S3Result<()>) -> String {
        r.err()
            .map(|e| e.code().as_str().to_string())
            .unwrap_or_default()
    }

    #[test]
    fn conditions_decide_as_s3_does() {
        let create_only = WriteCondition {
            if_none_match: Some(ETagCondition::Any),
            ..Default::default()
        };
        assert_eq!(code(create_only.decide(None)), "");
        assert_eq!(
            code(create_only.decide(Some(&info("a")))),
            "PreconditionFailed"
        );
        let if_match = |e: &str| WriteCondition {
            if_match: Some(ETagCondition::ETag(ETag::Strong(e.into()))),
            ..Default::default()
        };
        assert_eq!(code(if_match("a").decide(Some(&info("a")))), "");
        assert_eq!(
            code(if_match("b").decide(Some(&info("a")))),
            "PreconditionFailed"
        );
        assert_eq!(code(if_match("a").decide(None)), "NoSuchKey");
        let none_match_etag = WriteCondition {
            if_none_match: Some(ETagCondition::ETag(ETag::Strong("a".into()))),
            ..Default::default()
        };
        assert_eq!(code(none_match_etag.decide(None)), "NotImplemented");
        assert!(!WriteCondition::default().is_some());
    }

    #[test]
    fn copy_conditions_are_read_from_headers() {
        let mut h = http::HeaderMap::new();
        h.insert("if-none-match", http::HeaderValue::from_static("*"));
        h.insert("if-match", http::HeaderValue::from_static("\"abc\""));
        let c = WriteCondition::from_headers(&h).unwrap();
        assert!(matches!(c.if_none_match, Some(ETagCondition::Any)));
        assert!(matches!(c.if_match, Some(ETagCondition::ETag(ref e)) if e.value() == "abc"));
    }
}
