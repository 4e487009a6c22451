//! One object moved from one region to another with the migration's copy
//! machinery: streamed, verified against the destination's own account,
//! then deleted at the source (`residency remediate`).

use std::sync::Arc;

use residency_store::{Backend, StoreError};

use crate::copy::{same_meta, stream_copy, unquote, CopyError, CopyHooks};
use crate::error::MigrateError;

/// Part size and multipart threshold of a moved object (16 MiB, as
/// `residency migrate`'s default).
const PART_SIZE: u64 = 16 << 20;

/// How a move ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Moved {
    /// Copied, verified (size, ETag computed while copying, metadata) and
    /// deleted at the source; the SHA-256 of its bytes.
    Done {
        /// SHA-256 of the object's bytes (hex); `None` when an earlier run
        /// had copied it (only the source was left to delete).
        sha256: Option<String>,
        /// Size in bytes.
        size: u64,
    },
    /// The source no longer holds it: nothing to do.
    Vanished,
    /// The destination already holds the key with other content (a newer
    /// write?): nothing copied or deleted, left for a person to decide.
    DestinationTaken,
}

/// Moves `key` from `src` (region `from`) to `dst` (region `to`).
///
/// # Errors
/// A region failed, or the copy did not verify (the source is then kept
/// and the copy deleted).
pub async fn move_object(
    src: &Arc<dyn Backend>,
    from: &str,
    dst: &Arc<dyn Backend>,
    to: &str,
    key: &str,
) -> Result<Moved, MigrateError> {
    match dst.head_object(key).await {
        Ok(d) => {
            // An earlier run's verified copy (cut before the delete), or
            // someone else's object.
            let s = match src.head_object(key).await {
                Ok(s) => s,
                Err(StoreError::NotFound { .. }) => return Ok(Moved::Vanished),
                Err(e) => return Err(MigrateError::store(from, e)),
            };
            let same = d.size == s.size
                && !s.etag.contains('-')
                && unquote(&d.etag) == unquote(&s.etag)
                && same_meta(&d, &s);
            if !same {
                return Ok(Moved::DestinationTaken);
            }
            src.delete_object(key)
                .await
                .map_err(|e| MigrateError::store(from, e))?;
            return Ok(Moved::Done {
                sha256: None,
                size: s.size,
            });
        }
        Err(StoreError::NotFound { .. }) => {}
        Err(e) => return Err(MigrateError::store(to, e)),
    }
    let got = match src.get_object(key, None).await {
        Ok(g) => g,
        Err(StoreError::NotFound { .. }) => return Ok(Moved::Vanished),
        Err(e) => return Err(MigrateError::store(from, e)),
    };
    let info = got.info;
    let copied = match stream_copy(
        dst,
        key,
        &info,
        got.body,
        PART_SIZE,
        PART_SIZE,
        CopyHooks {
            create_only: true,
            ..CopyHooks::default()
        },
    )
    .await
    {
        // Written in the destination since the HEAD above.
        Err(CopyError::Dest(e)) if e.is_precondition_failed() => {
            return Ok(Moved::DestinationTaken)
        }
        r => r,
    }
    .map_err(|e| match e {
        CopyError::Source(e) => MigrateError::store(from, e),
        CopyError::Dest(e) => MigrateError::store(to, e),
        CopyError::Length { expected, got } => MigrateError::Conflict(format!(
            "{key}: the source yielded {got} bytes, expected {expected}"
        )),
        CopyError::Stop(e) => e,
    })?;
    let d = dst
        .head_object(key)
        .await
        .map_err(|e| MigrateError::store(to, e))?;
    let problems = copied.problems(&info, &d);
    if !problems.is_empty() {
        // Keep the source; take the unverified copy back.
        let _ = dst.delete_object(key).await;
        return Err(MigrateError::Conflict(format!(
            "{key}: the copy in {to} did not verify ({}); the source in {from} is kept",
            problems.join("; ")
        )));
    }
    src.delete_object(key)
        .await
        .map_err(|e| MigrateError::store(from, e))?;
    Ok(Moved::Done {
        sha256: Some(copied.sha256_hex),
        size: info.size,
    })
}
