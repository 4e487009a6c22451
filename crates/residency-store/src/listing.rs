//! ListObjectsV2 paging shared by the local backends: prefix, delimiter,
//! start-after and opaque continuation tokens over keys fed in byte order.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;

use crate::error::StoreError;
use crate::object::{ListPage, ListRequest, ObjectSummary};

/// The last thing a page returned; the next page starts after it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Marker {
    /// Keys up to and including this one are done.
    Key(String),
    /// This common prefix (and so every key under it) is done.
    Prefix(String),
}

impl Marker {
    fn encode(&self) -> String {
        let (tag, s) = match self {
            Self::Key(k) => ('k', k),
            Self::Prefix(p) => ('p', p),
        };
        B64URL.encode(format!("{tag}{s}"))
    }

    fn decode(token: &str) -> Result<Self, StoreError> {
        let bad = || StoreError::invalid_argument("the continuation token provided is incorrect");
        let raw = B64URL.decode(token).map_err(|_| bad())?;
        let s = String::from_utf8(raw).map_err(|_| bad())?;
        match s.split_at_checked(1) {
            Some(("k", k)) => Ok(Self::Key(k.to_owned())),
            Some(("p", p)) => Ok(Self::Prefix(p.to_owned())),
            _ => Err(bad()),
        }
    }
}

/// What to do with a directory whose keys all start with `dir` (ending in `/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DirAction {
    /// No key under it can be on this page.
    Skip,
    /// Walk it.
    Descend,
    /// Every key under it folds into the same common prefix: offer the first
    /// key that is not skipped, then skip the rest.
    FirstOnly,
}

/// Whether the caller should keep feeding keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    Continue,
    Stop,
}

/// Builds one [`ListPage`] from keys fed in lexicographic byte order.
pub(crate) struct Lister {
    prefix: String,
    delimiter: Option<String>,
    marker: Option<Marker>,
    max_keys: usize,
    count: usize,
    last: Option<Marker>,
    page: ListPage,
    stopped: bool,
}

impl Lister {
    /// # Errors
    /// `InvalidArgument` for a token this backend did not issue.
    pub(crate) fn new(req: &ListRequest) -> Result<Self, StoreError> {
        let marker = match (&req.continuation_token, &req.start_after) {
            (Some(t), _) => Some(Marker::decode(t)?),
            (None, Some(s)) if !s.is_empty() => Some(Marker::Key(s.clone())),
            _ => None,
        };
        Ok(Self {
            prefix: req.prefix.clone(),
            delimiter: req.delimiter.clone().filter(|d| !d.is_empty()),
            marker,
            max_keys: req.max_keys.min(1000),
            count: 0,
            last: None,
            page: ListPage::default(),
            stopped: req.max_keys == 0,
        })
    }

    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    pub(crate) fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// True when `key` is not on this page because an earlier page (or
    /// start-after) covered it, or it is outside the prefix.
    pub(crate) fn skips(&self, key: &str) -> bool {
        if !key.starts_with(&self.prefix) {
            return true;
        }
        match &self.marker {
            Some(Marker::Key(m)) => key <= m.as_str(),
            Some(Marker::Prefix(p)) => key <= p.as_str() || key.starts_with(p.as_str()),
            None => false,
        }
    }

    /// The first key worth feeding: callers of an ordered map can seek to it.
    pub(crate) fn seek_from(&self) -> &str {
        match &self.marker {
            Some(Marker::Key(m) | Marker::Prefix(m)) if m.as_str() > self.prefix.as_str() => m,
            _ => &self.prefix,
        }
    }

    pub(crate) fn dir_action(&self, dir: &str) -> DirAction {
        debug_assert!(dir.ends_with('/'));
        if !(dir.starts_with(&self.prefix) || self.prefix.starts_with(dir)) {
            return DirAction::Skip;
        }
        match &self.marker {
            Some(Marker::Key(m)) if m.as_str() >= dir && !m.starts_with(dir) => {
                return DirAction::Skip
            }
            Some(Marker::Prefix(p))
                if dir.starts_with(p.as_str()) || (p.as_str() > dir && !p.starts_with(dir)) =>
            {
                return DirAction::Skip
            }
            _ => {}
        }
        if let (Some(d), true) = (&self.delimiter, dir.starts_with(&self.prefix)) {
            let rest = &dir[self.prefix.len()..];
            if let Some(i) = rest.find(d.as_str()) {
                if i + d.len() <= rest.len() {
                    return DirAction::FirstOnly;
                }
            }
        }
        DirAction::Descend
    }

    /// Offers the next key in order; `summary` is called only when the key
    /// is returned as an object.
    ///
    /// # Errors
    /// Whatever `summary` returns.
    pub(crate) fn offer(
        &mut self,
        key: &str,
        summary: impl FnOnce() -> Result<Option<ObjectSummary>, StoreError>,
    ) -> Result<Flow, StoreError> {
        if self.stopped {
            return Ok(Flow::Stop);
        }
        if self.skips(key) {
            return Ok(Flow::Continue);
        }
        if let Some(d) = &self.delimiter {
            let rest = &key[self.prefix.len()..];
            if let Some(i) = rest.find(d.as_str()) {
                let cp = &key[..self.prefix.len() + i + d.len()];
                if matches!(&self.last, Some(Marker::Prefix(p)) if p == cp) {
                    return Ok(Flow::Continue);
                }
                if self.full() {
                    return Ok(Flow::Stop);
                }
                self.page.common_prefixes.push(cp.to_owned());
                self.last = Some(Marker::Prefix(cp.to_owned()));
                self.count += 1;
                return Ok(Flow::Continue);
            }
        }
        if self.full() {
            return Ok(Flow::Stop);
        }
        // The object may have vanished since it was seen: then it is not listed.
        if let Some(s) = summary()? {
            self.page.objects.push(s);
            self.last = Some(Marker::Key(key.to_owned()));
            self.count += 1;
        }
        Ok(Flow::Continue)
    }

    /// True (and the page is marked truncated) when the page is full and
    /// another item was offered.
    fn full(&mut self) -> bool {
        if self.count >= self.max_keys {
            self.stopped = true;
            self.page.next_continuation_token = self.last.as_ref().map(Marker::encode);
            true
        } else {
            false
        }
    }

    pub(crate) fn finish(self) -> ListPage {
        self.page
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    fn list_all(keys: &[&str], req: ListRequest) -> Vec<(Vec<String>, Vec<String>)> {
        let mut out = vec![];
        let mut req = req;
        loop {
            let mut l = Lister::new(&req).unwrap();
            for k in keys {
                let s = ObjectSummary {
                    key: (*k).into(),
                    size: 0,
                    etag: String::new(),
                    last_modified: SystemTime::UNIX_EPOCH,
                };
                if l.offer(k, || Ok(Some(s))).unwrap() == Flow::Stop {
                    break;
                }
            }
            let page = l.finish();
            out.push((
                page.objects.iter().map(|o| o.key.clone()).collect(),
                page.common_prefixes.clone(),
            ));
            match page.next_continuation_token {
                Some(t) => req.continuation_token = Some(t),
                None => return out,
            }
        }
    }

    #[test]
    fn delimiter_and_pages() {
        let keys = ["a-c", "a/b", "a/c/d", "b", "c/x", "c/y"];
        let pages = list_all(&keys, ListRequest::new("").delimiter("/").max_keys(2));
        assert_eq!(
            pages,
            vec![
                (vec!["a-c".to_string()], vec!["a/".to_string()]),
                (vec!["b".to_string()], vec!["c/".to_string()]),
            ]
        );
        let pages = list_all(&keys, ListRequest::new("a/").delimiter("/"));
        assert_eq!(
            pages,
            vec![(vec!["a/b".to_string()], vec!["a/c/".to_string()])]
        );
    }

    #[test]
    fn dir_actions() {
        let l = Lister::new(&ListRequest::new("t/x").delimiter("/")).unwrap();
        assert_eq!(l.dir_action("t/"), DirAction::Descend);
        assert_eq!(l.dir_action("u/"), DirAction::Skip);
        assert_eq!(l.dir_action("t/xy/"), DirAction::FirstOnly);
        assert_eq!(l.dir_action("t/y/"), DirAction::Skip);
        let l = Lister::new(&ListRequest::new("").start_after("m/z")).unwrap();
        assert_eq!(l.dir_action("a/"), DirAction::Skip);
        assert_eq!(l.dir_action("m/"), DirAction::Descend);
        assert_eq!(l.dir_action("n/"), DirAction::Descend);
    }

    #[test]
    fn bad_token() {
        let req = ListRequest::new("").continuation_token(Some("%%%".into()));
        assert!(Lister::new(&req).is_err());
    }
}
