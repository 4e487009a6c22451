//! Classification: which category a payload belongs to.
//!
//! Precedence: explicit category (request field or the
//! `x-amz-meta-residency-category` header) > key rules (first match wins) >
//! content-type rules (first match wins) > the policy's default category >
//! unclassified (denied).

use globset::{GlobBuilder, GlobMatcher};

use crate::category::CategoryId;

/// The header (as S3 user metadata) a client sets to name a category explicitly.
pub const CATEGORY_HEADER: &str = "x-amz-meta-residency-category";

/// Where the objects of a bucket a tenant created live, inside the tenant's
/// namespace: `<tenant>/~bucket/<bucket>/<key>` in each regional bucket (the
/// tenant's configured bucket keeps `<tenant>/<key>`; the sidecar refuses
/// keys under this prefix there).
pub const BUCKET_NAMESPACE: &str = "~bucket/";

/// The key a client wrote, without the namespace of a created bucket
/// (`~bucket/photos/tickets/1.json` → `tickets/1.json`): classification,
/// in the sidecar, in `migrate` and in `scan`, sees the client's key in
/// whichever bucket it was written.
///
/// ```
/// use residency_policy::in_bucket_key;
/// assert_eq!(in_bucket_key("~bucket/photos/tickets/1.json"), "tickets/1.json");
/// assert_eq!(in_bucket_key("tickets/1.json"), "tickets/1.json");
/// assert_eq!(in_bucket_key("~bucket/photos"), "~bucket/photos");
/// ```
pub fn in_bucket_key(key: &str) -> &str {
    key.strip_prefix(BUCKET_NAMESPACE)
        .and_then(|rest| rest.split_once('/'))
        .map_or(key, |(_, k)| k)
}

/// How a payload's category was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClassifiedBy {
    /// Named explicitly by the request.
    Explicit,
    /// Matched the key rule at this index of the policy's `key_rules`.
    KeyRule(usize),
    /// The key is a backup of one category's data (`backups/<category>/...`).
    CategoryBackup,
    /// The key is a backup or log of another key (`backups/<original key>`,
    /// `logs/<original key>`), which the key rule at this index places.
    BackupOf(usize),
    /// Matched the content-type rule at this index of `content_type_rules`.
    ContentTypeRule(usize),
    /// Nothing matched; the policy's `default_category` applied.
    Default,
}

impl ClassifiedBy {
    /// A short stable label (`explicit`, `key_rule`, ...), for logs and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ClassifiedBy::Explicit => "explicit",
            ClassifiedBy::KeyRule(_) => "key_rule",
            ClassifiedBy::CategoryBackup => "category_backup",
            ClassifiedBy::BackupOf(_) => "backup_of_key",
            ClassifiedBy::ContentTypeRule(_) => "content_type_rule",
            ClassifiedBy::Default => "default_category",
        }
    }
}

/// The outcome of classification: a category and the rule that chose it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Classification {
    /// The category.
    pub category: CategoryId,
    /// Which rule decided it.
    pub by: ClassifiedBy,
}

/// What to do when an explicit category contradicts a matching key rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnConflict {
    /// Deny the request (`category_conflict`): a label cannot move data that
    /// a key rule places, e.g. EEA-only chat content, to another region.
    #[default]
    Deny,
    /// The key rule wins.
    KeyRule,
    /// The explicit category wins.
    Explicit,
}

impl OnConflict {
    pub(crate) fn parse(s: &str) -> Option<OnConflict> {
        match s {
            "deny" => Some(OnConflict::Deny),
            "key_rule" => Some(OnConflict::KeyRule),
            "explicit" => Some(OnConflict::Explicit),
            _ => None,
        }
    }

    /// The value as written in the policy file.
    pub fn as_str(self) -> &'static str {
        match self {
            OnConflict::Deny => "deny",
            OnConflict::KeyRule => "key_rule",
            OnConflict::Explicit => "explicit",
        }
    }
}

/// A key rule: a `globset` pattern over object keys.
#[derive(Debug, Clone)]
pub struct KeyRule {
    pub(crate) pattern: String,
    pub(crate) category: CategoryId,
    /// The literal text every match starts with: a cheap pre-check.
    literal_prefix: String,
    /// The pattern is `<literal>/**`: a match is exactly "starts with the
    /// literal" (globset's `a/**` matches `a/` too), no regex needed.
    prefix_only: bool,
    matcher: GlobMatcher,
}

impl KeyRule {
    pub(crate) fn new(pattern: &str, category: CategoryId) -> Result<KeyRule, globset::Error> {
        let glob = GlobBuilder::new(pattern)
            .literal_separator(true)
            .backslash_escape(true)
            .build()?;
        let literal_prefix = pattern
            .split(['*', '?', '[', '{', '\\'])
            .next()
            .unwrap_or("")
            .to_string();
        let prefix_only = pattern
            .strip_suffix("**")
            .is_some_and(|p| p == literal_prefix && p.ends_with('/') && !p.contains("//"));
        Ok(KeyRule {
            pattern: pattern.to_string(),
            category,
            literal_prefix,
            prefix_only,
            matcher: glob.compile_matcher(),
        })
    }

    /// The pattern as written.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// The category it assigns.
    pub fn category(&self) -> CategoryId {
        self.category
    }

    /// Whether `key` matches.
    pub fn is_match(&self, key: &str) -> bool {
        if !key.starts_with(self.literal_prefix.as_str()) {
            return false;
        }
        if self.prefix_only {
            return true;
        }
        self.matcher.is_match(key)
    }
}

/// A content-type rule: `type/subtype`, either part `*`, or a subtype prefix
/// ending in `*` (`application/vnd.ms-*`). Matched case-insensitively with
/// parameters (`; charset=...`) ignored. With `keys`, only for keys matching
/// that glob.
#[derive(Debug, Clone)]
pub struct ContentTypeRule {
    pub(crate) pattern: String,
    pub(crate) category: CategoryId,
    /// The key space the rule is limited to (`keys = "talk/**"`).
    pub(crate) scope: Option<KeyRule>,
    main: String,
    sub: String,
}

impl ContentTypeRule {
    pub(crate) fn new(pattern: &str, category: CategoryId) -> Option<ContentTypeRule> {
        let (main, sub) = pattern.trim().split_once('/')?;
        let valid = |s: &str| {
            !s.is_empty()
                && s.bytes().enumerate().all(|(i, b)| {
                    b.is_ascii_alphanumeric()
                        || b"!#$&-^_.+".contains(&b)
                        || (b == b'*' && i == s.len() - 1)
                })
        };
        if !valid(main) || !valid(sub) || (main.contains('*') && main != "*") {
            return None;
        }
        Some(ContentTypeRule {
            pattern: pattern.to_string(),
            category,
            scope: None,
            main: main.to_ascii_lowercase(),
            sub: sub.to_ascii_lowercase(),
        })
    }

    /// The pattern as written.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// The category it assigns.
    pub fn category(&self) -> CategoryId {
        self.category
    }

    /// The key glob the rule is limited to, if any.
    pub fn keys(&self) -> Option<&str> {
        self.scope.as_ref().map(KeyRule::pattern)
    }

    /// Whether a `Content-Type` value matches (the key scope aside).
    pub fn is_match(&self, content_type: &str) -> bool {
        let essence = content_type.split(';').next().unwrap_or("").trim();
        let Some((main, sub)) = essence.split_once('/') else {
            return false;
        };
        part_matches(&self.main, main.trim()) && part_matches(&self.sub, sub.trim())
    }
}

fn part_matches(pattern: &str, value: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => {
            value.len() >= prefix.len()
                && value.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
        }
        None => value.eq_ignore_ascii_case(pattern),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_match_case_insensitively_without_parameters() {
        let r = ContentTypeRule::new("audio/*", CategoryId(0)).unwrap();
        assert!(r.is_match("audio/mpeg"));
        assert!(r.is_match("Audio/WAV; codecs=1"));
        assert!(!r.is_match("video/mp4"));
        assert!(!r.is_match("audio"));
        let r = ContentTypeRule::new("application/vnd.ms-*", CategoryId(0)).unwrap();
        assert!(r.is_match("application/VND.MS-excel"));
        assert!(!r.is_match("application/json"));
        assert!(ContentTypeRule::new("audio", CategoryId(0)).is_none());
        assert!(ContentTypeRule::new("au*dio/x", CategoryId(0)).is_none());
    }

    #[test]
    fn the_prefix_fast_path_agrees_with_the_glob() {
        let keys = [
            "tickets/",
            "tickets/a",
            "tickets/a/b",
            "tickets",
            "ticketsx/a",
            "x/tickets/a",
            "tickets//a",
            "tickets/a/",
            "tickets/\u{e9}",
            "tickets/.hidden",
            "",
        ];
        for pattern in ["tickets/**", "a/b/**", "guide/images/**"] {
            let fast = KeyRule::new(pattern, CategoryId(0)).unwrap();
            assert!(fast.prefix_only, "{pattern} should take the fast path");
            for k in keys
                .iter()
                .chain(&["a/b/c", "a/b/", "a/bc", "guide/images/x.png"])
            {
                assert_eq!(
                    fast.is_match(k),
                    fast.matcher.is_match(k),
                    "{pattern} vs {k:?}"
                );
            }
        }
        for pattern in ["chat/*.json", "**/*.wav", "a/[bc]/**", "a/**/b"] {
            assert!(
                !KeyRule::new(pattern, CategoryId(0)).unwrap().prefix_only,
                "{pattern}"
            );
        }
    }

    #[test]
    fn key_rules_use_glob_semantics() {
        let r = KeyRule::new("tickets/**", CategoryId(0)).unwrap();
        assert!(r.is_match("tickets/1/comment.json"));
        assert!(!r.is_match("ticketsx/1"));
        let r = KeyRule::new("chat/*.json", CategoryId(0)).unwrap();
        assert!(r.is_match("chat/1.json"));
        assert!(!r.is_match("chat/a/1.json"), "* does not cross /");
        let r = KeyRule::new("**/*.wav", CategoryId(0)).unwrap();
        assert!(r.is_match("a/b/c.wav"));
    }
}
