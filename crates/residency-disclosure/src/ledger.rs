//! The append-only, hash-chained ledger of one tenant's disclosure requests.
//!
//! Stored in the tenant's home region, outside its namespace:
//!
//! ```text
//! _disclosure/<tenant>/ledger/0000000000.json   entry 0 (one JSON object + "\n")
//! _disclosure/<tenant>/ledger/0000000001.json   entry 1: "prev" = SHA-256 of entry 0's bytes
//! _disclosure/<tenant>/head.json                {"entries": N, "sha256": SHA-256 of entry N-1}
//! ```
//!
//! Format version 2 (this one) adds `"v": 2` to each entry and, for entries
//! recorded with a privacy team member's key, `"sig"`: the member, the
//! public key and an Ed25519 signature over the entry's JSON without `sig`.
//! Version 1 entries (no `v`, no `sig`) still read and verify; a ledger may
//! hold both, old entries first.
//!
//! Each entry carries the SHA-256 (hex) of the exact bytes of the entry
//! before it (64 zeros for the first), so an edited, removed or reordered
//! entry breaks the chain at the next one; the head names the last entry, so
//! an edit of the last entry or a truncation is seen too. Rewriting the whole
//! chain and the head consistently is only detectable against a head hash
//! kept elsewhere: every notice sent to the customer carries the head hash at
//! that time, and `verify` prints the current one.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use residency_audit::chain::HashChain;
use residency_store::{Backend, Body, ListRequest, PutMeta, StoreError};
use serde::{Deserialize, Serialize};

use crate::date::rfc3339;
use crate::entry::{Entry, Event, GENESIS, LEDGER_VERSION};
use crate::error::DisclosureError;
use crate::record::{replay, RequestRecord};
use crate::signing::Signer;

/// The head object: how many entries and the hash of the last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Head {
    entries: u64,
    sha256: String,
}

/// The outcome of verifying one tenant's ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// The tenant.
    pub tenant: String,
    /// The region whose backend holds the ledger.
    pub region: String,
    /// Entries found.
    pub entries: u64,
    /// Requests recorded.
    pub requests: u64,
    /// SHA-256 of the last entry (keep it elsewhere to detect a rewrite).
    pub head: Option<String>,
    /// What is wrong; empty when intact.
    pub problems: Vec<String>,
    /// No problems.
    pub ok: bool,
}

/// A verified ledger in memory.
#[derive(Debug, Clone)]
pub(crate) struct Loaded {
    pub(crate) entries: Vec<Entry>,
    pub(crate) head: String,
    pub(crate) records: BTreeMap<String, RequestRecord>,
}

/// One tenant's ledger in its home region's backend.
#[derive(Clone)]
pub struct Ledger {
    tenant: String,
    region: String,
    backend: Arc<dyn Backend>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("tenant", &self.tenant)
            .field("region", &self.region)
            .field("backend", &self.backend.describe().to_string())
            .finish()
    }
}

impl Ledger {
    /// The ledger of `tenant`, held by `backend` (the tenant's home region `region`).
    pub fn new(
        tenant: impl Into<String>,
        region: impl Into<String>,
        backend: Arc<dyn Backend>,
    ) -> Self {
        Ledger {
            tenant: tenant.into(),
            region: region.into(),
            backend,
        }
    }

    /// The tenant.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// The region holding the ledger.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The key prefix of the entries: `_disclosure/<tenant>/ledger/`.
    pub fn entries_prefix(&self) -> String {
        format!("_disclosure/{}/ledger/", self.tenant)
    }

    /// The key of entry `seq`.
    pub fn entry_key(&self, seq: u64) -> String {
        format!("{}{seq:010}.json", self.entries_prefix())
    }

    /// The key of the head object.
    pub fn head_key(&self) -> String {
        format!("_disclosure/{}/head.json", self.tenant)
    }

    async fn read_bytes(&self, key: &str) -> Result<Option<Bytes>, DisclosureError> {
        match self.backend.get_object(key, None).await {
            Ok(out) => Ok(Some(out.body.collect().await?)),
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn list_keys(&self) -> Result<Vec<String>, DisclosureError> {
        let mut keys = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .backend
                .list_objects(ListRequest::new(self.entries_prefix()).continuation_token(token))
                .await?;
            keys.extend(page.objects.into_iter().map(|o| o.key));
            token = page.next_continuation_token;
            if token.is_none() {
                break;
            }
        }
        keys.sort();
        Ok(keys)
    }

    /// Reads and checks the whole ledger: the chain, the head, and that the
    /// events replay (valid transitions, known requests).
    ///
    /// # Errors
    /// Only when the backend cannot be read; damage is reported in the result.
    pub async fn verify(&self) -> Result<VerifyReport, DisclosureError> {
        let (report, _) = self.check().await?;
        Ok(report)
    }

    /// Reads the ledger and folds it into records, refusing a damaged one.
    pub(crate) async fn load(&self) -> Result<Loaded, DisclosureError> {
        let (report, loaded) = self.check().await?;
        match loaded {
            Some(l) if report.ok => Ok(l),
            _ => Err(DisclosureError::Damaged {
                tenant: self.tenant.clone(),
                problems: report.problems,
            }),
        }
    }

    async fn check(&self) -> Result<(VerifyReport, Option<Loaded>), DisclosureError> {
        let mut problems = Vec::new();
        let keys = self.list_keys().await?;
        let mut entries = Vec::new();
        let mut chain = HashChain::new(GENESIS);
        let prefix = self.entries_prefix();
        for (i, key) in keys.iter().enumerate() {
            let i = i as u64;
            let name = &key[prefix.len()..];
            let named: Option<u64> = name.strip_suffix(".json").and_then(|n| n.parse().ok());
            if named != Some(i) {
                match named {
                    Some(n) if n > i => problems.push(format!(
                        "entries {i}..{} are missing (next object is {name})",
                        n - 1
                    )),
                    _ => problems.push(format!("unexpected object {name} in the ledger")),
                }
                // Past a gap the chain cannot be followed further.
                break;
            }
            let Some(bytes) = self.read_bytes(key).await? else {
                problems.push(format!("entry {i} vanished while being read"));
                break;
            };
            let entry: Entry = match serde_json::from_slice(&bytes) {
                Ok(e) => e,
                Err(e) => {
                    problems.push(format!("entry {i} is not a valid entry: {e}"));
                    chain.append(&bytes);
                    continue;
                }
            };
            if entry.seq != i {
                problems.push(format!(
                    "entry {i} says it is entry {} (reordered or copied)",
                    entry.seq
                ));
            }
            if !chain.follows(&entry.prev) {
                problems.push(format!(
                    "entry {i}: the hash of the previous entry does not match (entry {} edited, removed or reordered)",
                    i.saturating_sub(1)
                ));
            }
            chain.append(&bytes);
            entries.push(entry);
        }
        let head = match self.read_bytes(&self.head_key()).await? {
            None if keys.is_empty() => None,
            None => {
                problems.push("the head object is missing".to_owned());
                None
            }
            Some(b) => match serde_json::from_slice::<Head>(&b) {
                Err(e) => {
                    problems.push(format!("the head object is not valid: {e}"));
                    None
                }
                Ok(h) => {
                    if h.entries != keys.len() as u64 {
                        problems.push(format!(
                            "the head records {} entries, {} found (entries removed or added)",
                            h.entries,
                            keys.len()
                        ));
                    } else if !chain.follows(&h.sha256) {
                        problems.push(format!(
                            "the last entry ({}) does not match the hash in the head (edited)",
                            h.entries.saturating_sub(1)
                        ));
                    }
                    Some(h.sha256)
                }
            },
        };
        let records = if problems.is_empty() {
            match replay(&self.tenant, &entries) {
                Ok(r) => Some(r),
                Err(p) => {
                    problems.push(p);
                    None
                }
            }
        } else {
            None
        };
        let report = VerifyReport {
            tenant: self.tenant.clone(),
            region: self.region.clone(),
            entries: keys.len() as u64,
            requests: entries
                .iter()
                .filter(|e| matches!(e.event, Event::Opened { .. }))
                .count() as u64,
            head: head.or_else(|| (!keys.is_empty()).then(|| chain.head().to_owned())),
            ok: problems.is_empty(),
            problems,
        };
        let loaded = records.map(|records| Loaded {
            entries,
            head: chain.into_head(),
            records,
        });
        Ok((report, loaded))
    }

    /// Appends entries after the verified state `loaded`, then moves the head.
    /// With a `signer`, each entry is recorded as the member's and signed.
    ///
    /// A single writer per tenant is assumed; an entry that already exists
    /// (another writer got there first) is a [`DisclosureError::Conflict`] and
    /// nothing is overwritten.
    pub(crate) async fn append(
        &self,
        loaded: &mut Loaded,
        request: &str,
        by: &str,
        signer: Option<&Signer>,
        events: Vec<(Event, String)>,
    ) -> Result<(), DisclosureError> {
        let by = signer.map_or(by, Signer::member);
        let mut pending = loaded.entries.clone();
        let mut chain = HashChain::resume(loaded.head.clone());
        for (event, why) in events {
            let seq = pending.len() as u64;
            let mut entry = Entry {
                v: LEDGER_VERSION,
                seq,
                prev: chain.head().to_owned(),
                time: rfc3339(SystemTime::now()),
                request: request.to_owned(),
                by: by.to_owned(),
                why,
                event,
                sig: None,
            };
            if let Some(s) = signer {
                entry.sig = Some(s.sign(&entry.signed_bytes()));
            }
            // Check the events replay before anything is written.
            pending.push(entry.clone());
            replay(&self.tenant, &pending).map_err(DisclosureError::Refused)?;
            let mut bytes = serde_json::to_vec(&entry).expect("entries serialize");
            bytes.push(b'\n');
            let key = self.entry_key(seq);
            match self.backend.head_object(&key).await {
                Ok(_) => {
                    return Err(DisclosureError::Conflict(format!(
                        "entry {seq} of {} was written by someone else; retry",
                        self.tenant
                    )))
                }
                Err(StoreError::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
            chain.append(&bytes);
            self.backend
                .put_object(
                    &key,
                    Body::from_bytes(Bytes::from(bytes)),
                    PutMeta::with_content_type("application/json"),
                )
                .await?;
            let h = Head {
                entries: seq + 1,
                sha256: chain.head().to_owned(),
            };
            self.backend
                .put_object(
                    &self.head_key(),
                    Body::from_bytes(Bytes::from(
                        serde_json::to_vec(&h).expect("head serializes"),
                    )),
                    PutMeta::with_content_type("application/json"),
                )
                .await?;
        }
        loaded.records = replay(&self.tenant, &pending).map_err(DisclosureError::Refused)?;
        loaded.entries = pending;
        loaded.head = chain.into_head();
        Ok(())
    }
}
