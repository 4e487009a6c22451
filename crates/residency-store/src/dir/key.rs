//! Which keys a directory can hold: a key is a path inside the root and
//! outside the hidden tree, and cannot be both an object and a "directory".

use std::io::{self, ErrorKind};

use super::HIDDEN;
use crate::error::StoreError;

/// Checks that `key` names a file inside the root and outside the hidden tree.
///
/// # Errors
/// `InvalidKey` with the reason.
pub(super) fn check_key(key: &str) -> Result<(), StoreError> {
    let bad = |reason: &str| Err(StoreError::invalid_key(key, reason));
    if key.is_empty() {
        return bad("empty key");
    }
    if key.len() > crate::MAX_STORED_KEY_BYTES {
        return bad(&format!(
            "longer than {} bytes (1,024 for the key and 64 for a tenant prefix)",
            crate::MAX_STORED_KEY_BYTES
        ));
    }
    if key.contains('\0') {
        return bad("contains a NUL byte");
    }
    if key.starts_with('/') {
        return bad("absolute path");
    }
    for seg in key.split('/') {
        match seg {
            "" => return bad("empty path segment ('//' or a trailing '/')"),
            "." | ".." => return bad("'.' or '..' path segment"),
            s if s.len() > 255 => return bad("path segment longer than 255 bytes"),
            _ => {}
        }
    }
    if key.split('/').next() == Some(HIDDEN) {
        return bad("collides with the backend's hidden .residency tree");
    }
    Ok(())
}

pub(super) fn conflict(key: &str) -> StoreError {
    StoreError::invalid_key(
        key,
        "conflicts with an existing object: a directory backend cannot hold both 'a' and 'a/...'",
    )
}

pub(super) fn is_conflict(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::NotADirectory
            | ErrorKind::IsADirectory
            | ErrorKind::DirectoryNotEmpty
            | ErrorKind::AlreadyExists
    )
}
