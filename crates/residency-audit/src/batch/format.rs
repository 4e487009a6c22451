//! The stored form of the audit chain: keys, the batch header, the HEAD
//! record and the hashes that link batches.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::{Deserialize, Serialize};

use super::Entry;

/// The chain format version written in every header.
pub(super) const CHAIN_VERSION: u32 = 1;
/// The name of the head record inside a writer's folder.
pub(super) const HEAD_NAME: &str = "HEAD.json";
/// The suffix of batch objects.
const BATCH_SUFFIX: &str = ".jsonl";
/// Digits of the zero-padded sequence number in a batch name.
const SEQ_DIGITS: usize = 12;

/// Bytes of a tenant id kept as they are in its key segment: everything else
/// is percent-encoded, so that no tenant id (even an unknown tenant's, as the
/// request gave it) can add a `/` or name another tenant's folder.
const TENANT_ENCODE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.');

/// The key segment naming `tenant` under `_audit/`.
pub(super) fn tenant_segment(tenant: &str) -> String {
    match tenant {
        // One `%` alone cannot come out of percent-encoding anything else.
        "" => "%".to_owned(),
        "." => "%2E".to_owned(),
        ".." => "%2E%2E".to_owned(),
        t => utf8_percent_encode(t, TENANT_ENCODE).to_string(),
    }
}

/// `_audit/<tenant>/`: the folder holding every chain of `tenant`, in every
/// region. It is outside every tenant's namespace (`<tenant>/...`).
pub fn audit_prefix(tenant: &str) -> String {
    format!("_audit/{}/", tenant_segment(tenant))
}

/// `_audit/<tenant>/<writer>/<seq, 12 digits>.jsonl`.
pub(super) fn batch_key(tenant: &str, writer: &str, seq: u64) -> String {
    format!(
        "{}{writer}/{seq:0SEQ_DIGITS$}{BATCH_SUFFIX}",
        audit_prefix(tenant)
    )
}

/// The folder of a writer's chains started in `epoch`: `<writer>`, then
/// `<writer>.<epoch>` (still a valid writer id: `.` is allowed inside).
pub(super) fn chain_writer(writer: &str, epoch: u64) -> std::borrow::Cow<'_, str> {
    if epoch == 0 {
        std::borrow::Cow::Borrowed(writer)
    } else {
        std::borrow::Cow::Owned(format!("{writer}.{epoch}"))
    }
}

/// `_audit/<tenant>/<writer>/HEAD.json`.
pub(super) fn head_key(tenant: &str, writer: &str) -> String {
    format!("{}{writer}/{HEAD_NAME}", audit_prefix(tenant))
}

/// The sequence number of a batch object's name (`000000000042.jsonl`).
pub(super) fn parse_batch_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(BATCH_SUFFIX)?;
    if digits.len() != SEQ_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The first line of every batch object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct BatchHeader {
    /// Format version ([`CHAIN_VERSION`]).
    pub(super) chain: u32,
    pub(super) tenant: String,
    pub(super) writer: String,
    pub(super) seq: u64,
    /// SHA-256 (hex) of the whole previous batch object of this chain; empty
    /// for seq 0.
    pub(super) prev_sha256: String,
    /// Number of event lines after the header.
    pub(super) count: u64,
    /// Earliest and latest event time in the batch.
    pub(super) first_time: String,
    pub(super) last_time: String,
}

/// `HEAD.json`: the latest batch of a chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct HeadRecord {
    pub(super) seq: u64,
    /// SHA-256 (hex) of the whole batch object `seq`.
    pub(super) sha256: String,
    /// The region that batch is stored in.
    pub(super) region: String,
}

/// A batch object's bytes: the header line, then one JSON event per line,
/// each line ending with `\n`.
pub(super) fn encode_batch(
    tenant: &str,
    writer: &str,
    seq: u64,
    prev_sha256: &str,
    events: &[Entry],
) -> Vec<u8> {
    // RFC 3339 UTC times of one format order as strings do.
    let first_time = events.iter().map(Entry::time).min().unwrap_or("");
    let last_time = events.iter().map(Entry::time).max().unwrap_or("");
    let header = BatchHeader {
        chain: CHAIN_VERSION,
        tenant: tenant.to_owned(),
        writer: writer.to_owned(),
        seq,
        prev_sha256: prev_sha256.to_owned(),
        count: events.len() as u64,
        first_time: first_time.to_owned(),
        last_time: last_time.to_owned(),
    };
    let mut out = Vec::with_capacity(256 * (events.len() + 1));
    // Serializing these plain structs cannot fail.
    serde_json::to_writer(&mut out, &header).expect("header serializes");
    out.push(b'\n');
    for e in events {
        serde_json::to_writer(&mut out, e).expect("event serializes");
        out.push(b'\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert_eq!(audit_prefix("acme"), "_audit/acme/");
        assert_eq!(
            batch_key("acme", "w1", 42),
            "_audit/acme/w1/000000000042.jsonl"
        );
        assert_eq!(head_key("acme", "w1"), "_audit/acme/w1/HEAD.json");
        assert_eq!(audit_prefix("a/b"), "_audit/a%2Fb/");
        assert_eq!(audit_prefix(".."), "_audit/%2E%2E/");
        assert_eq!(audit_prefix(""), "_audit/%/");
        assert_eq!(audit_prefix("a%b"), "_audit/a%25b/");
        assert_eq!(parse_batch_name("000000000042.jsonl"), Some(42));
        assert_eq!(parse_batch_name("42.jsonl"), None);
        assert_eq!(parse_batch_name(HEAD_NAME), None);
    }

    #[test]
    fn sha() {
        assert_eq!(
            crate::chain::sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
