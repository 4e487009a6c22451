//! Listing: a walk of the tree in S3 key order, feeding a [`Lister`].

use std::fs;
use std::io::{self, ErrorKind};
use std::path::Path;

use super::{DirBackend, HIDDEN};
use crate::error::StoreError;
use crate::listing::{DirAction, Flow, Lister};
use crate::object::ObjectSummary;

/// How a walk of one subtree ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Walked {
    /// Keep walking.
    Continue,
    /// In first-only mode: a key was offered for the subtree's common prefix.
    Found,
    /// The page is full.
    Stop,
}

/// Walks `rel` (a directory key ending in `/`, or `""` for the root) in S3
/// key order, feeding the lister. In `first_only` mode it stops after the
/// first key offered (the subtree folds into one common prefix).
pub(super) fn walk(
    root: &Path,
    rel: &str,
    lister: &mut Lister,
    first_only: bool,
) -> Result<Walked, StoreError> {
    let entries = match sorted_entries(root, rel) {
        Ok(e) => e,
        Err(e) if e.kind() == ErrorKind::NotFound || e.kind() == ErrorKind::NotADirectory => {
            return Ok(Walked::Continue)
        }
        Err(e) => return Err(e.into()),
    };
    for (sort_name, is_dir) in entries {
        let key = format!("{rel}{sort_name}");
        if is_dir {
            let walked = match lister.dir_action(&key) {
                DirAction::Skip => Walked::Continue,
                DirAction::Descend => walk(root, &key, lister, first_only)?,
                DirAction::FirstOnly if first_only => walk(root, &key, lister, true)?,
                DirAction::FirstOnly => match walk(root, &key, lister, true)? {
                    Walked::Found => Walked::Continue,
                    w => w,
                },
            };
            if walked != Walked::Continue {
                return Ok(walked);
            }
        } else {
            if lister.skips(&key) {
                continue;
            }
            let path = root.join(&key);
            let flow = lister.offer(&key, || match fs::symlink_metadata(&path) {
                Ok(m) if m.is_file() => {
                    let info = DirBackend::load_info(root, &key, &m)?;
                    Ok(Some(ObjectSummary {
                        key: key.clone(),
                        size: info.size,
                        etag: info.etag,
                        last_modified: info.last_modified,
                    }))
                }
                Ok(_) => Ok(None),
                Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e.into()),
            })?;
            if flow == Flow::Stop {
                return Ok(Walked::Stop);
            }
            if first_only {
                return Ok(Walked::Found);
            }
        }
    }
    Ok(Walked::Continue)
}

/// Entries of a directory as `(name or name + "/", is_dir)`, sorted so that
/// the walk yields keys in byte order (`a-c` < `a/` < `a0`). Symlinks, other
/// special files and names that are not UTF-8 are not objects.
pub(super) fn sorted_entries(root: &Path, rel: &str) -> io::Result<Vec<(String, bool)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(root.join(rel))? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if rel.is_empty() && name == HIDDEN {
            continue;
        }
        let ft = entry.file_type()?;
        if ft.is_dir() {
            out.push((format!("{name}/"), true));
        } else if ft.is_file() {
            out.push((name, false));
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// The directory to start a listing from: the part of `prefix` up to its last
/// `/`, when that is a path keys can live under.
pub(super) fn walk_start(prefix: &str) -> Option<&str> {
    let rel = match prefix.rfind('/') {
        Some(i) => &prefix[..=i],
        None => return Some(""),
    };
    let segs: Vec<&str> = rel[..rel.len() - 1].split('/').collect();
    let ok = segs.iter().all(|s| !matches!(*s, "" | "." | ".."))
        && segs.first() != Some(&HIDDEN)
        && !rel.contains('\0');
    ok.then_some(rel)
}
