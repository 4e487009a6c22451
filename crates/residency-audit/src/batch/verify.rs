//! Reading the chains back: [`verify_chain`] and [`read_events`].

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use residency_store::{Backend, ListRequest, StoreError};
use serde::Serialize;

use super::format::{
    audit_prefix, parse_batch_name, BatchHeader, HeadRecord, CHAIN_VERSION, HEAD_NAME,
};
use crate::chain::sha256_hex;
use crate::AuditEvent;

/// At most this many line-level problems are listed per batch.
const MAX_LINE_PROBLEMS: usize = 5;

/// The outcome of [`verify_chain`] for one tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainReport {
    /// The tenant checked.
    pub tenant: String,
    /// One entry per writer instance that stored batches (or a HEAD) for
    /// the tenant, by writer id.
    pub writers: Vec<WriterReport>,
    /// True when no writer has a problem (also when nothing was found).
    pub ok: bool,
}

/// One writer instance's chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WriterReport {
    /// The writer id (the folder under `_audit/<tenant>/`).
    pub writer: String,
    /// Batch objects found.
    pub batches: u64,
    /// Event lines that parsed as events.
    pub events: u64,
    /// The latest batch named by a HEAD record, if any HEAD was readable.
    pub head: Option<u64>,
    /// The regions holding this chain's batches.
    pub regions: Vec<String>,
    /// What was found wrong: removed, edited or truncated batches.
    pub problems: Vec<String>,
    /// Observations that are not tampering (e.g. a writer that stopped
    /// between storing a batch and its HEAD).
    pub notes: Vec<String>,
}

/// What one writer's folder holds, in every region.
#[derive(Debug, Default)]
struct WriterObjects {
    /// seq → the regions holding that batch (more than one: a fork).
    batches: BTreeMap<u64, Vec<usize>>,
    /// The regions holding a HEAD record.
    heads: Vec<usize>,
    /// Objects that are neither (region index, key).
    stray: Vec<(usize, String)>,
}

/// Lists the tenant's audit folder in every region, grouped by writer.
async fn inventory(
    backends: &[(String, Arc<dyn Backend>)],
    tenant: &str,
) -> Result<BTreeMap<String, WriterObjects>, StoreError> {
    let prefix = audit_prefix(tenant);
    let mut writers: BTreeMap<String, WriterObjects> = BTreeMap::new();
    for (ri, (_, backend)) in backends.iter().enumerate() {
        let mut token = None;
        loop {
            let page = backend
                .list_objects(ListRequest::new(prefix.clone()).continuation_token(token))
                .await?;
            for obj in page.objects {
                let rest = &obj.key[prefix.len()..];
                let (writer, name) = rest.split_once('/').unwrap_or((rest, ""));
                let w = writers.entry(writer.to_owned()).or_default();
                if name == HEAD_NAME {
                    w.heads.push(ri);
                } else if let Some(seq) = parse_batch_name(name) {
                    w.batches.entry(seq).or_default().push(ri);
                } else {
                    w.stray.push((ri, obj.key));
                }
            }
            match page.next_continuation_token {
                Some(t) => token = Some(t),
                None => break,
            }
        }
    }
    Ok(writers)
}

/// An object's bytes; `None` when it disappeared since it was listed.
async fn read(backend: &dyn Backend, key: &str) -> Result<Option<Bytes>, StoreError> {
    match backend.get_object(key, None).await {
        Ok(out) => out.body.collect().await.map(Some),
        Err(StoreError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Lines of a batch object: the header, then the events. The object ends
/// with `\n`; a last line without it is returned as `partial`.
fn split_lines(bytes: &[u8]) -> (Vec<&[u8]>, Option<&[u8]>) {
    let mut lines: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
    // `split` yields an empty last piece after a final `\n`.
    let last = lines.pop().filter(|l| !l.is_empty());
    (lines, last)
}

/// Checks one batch object's content; returns the events that parsed.
fn check_batch(
    bytes: &[u8],
    tenant: &str,
    writer: &str,
    seq: u64,
    region: &str,
    moved: &[(String, String)],
    problems: &mut Vec<String>,
) -> (Option<BatchHeader>, u64) {
    let (lines, partial) = split_lines(bytes);
    if partial.is_some() {
        problems.push(format!(
            "batch {seq}: the last line is incomplete (object truncated)"
        ));
    }
    let Some((first, event_lines)) = lines.split_first() else {
        problems.push(format!("batch {seq}: empty object"));
        return (None, 0);
    };
    let header: BatchHeader = match serde_json::from_slice(first) {
        Ok(h) => h,
        Err(e) => {
            problems.push(format!("batch {seq}: the header is not readable ({e})"));
            return (None, 0);
        }
    };
    if header.chain != CHAIN_VERSION {
        problems.push(format!(
            "batch {seq}: unknown chain format version {}",
            header.chain
        ));
    }
    if header.tenant != tenant {
        problems.push(format!(
            "batch {seq}: the header names tenant {:?}",
            header.tenant
        ));
    }
    if header.writer != writer {
        problems.push(format!(
            "batch {seq}: the header names writer {:?} (object moved?)",
            header.writer
        ));
    }
    if header.seq != seq {
        problems.push(format!(
            "batch {seq}: the header says seq {} (object renamed?)",
            header.seq
        ));
    }
    let mut parsed = 0u64;
    let mut line_problems = Vec::new();
    let (mut first_time, mut last_time): (Option<String>, Option<String>) = (None, None);
    for (i, line) in event_lines.iter().enumerate() {
        let n = i + 2;
        match serde_json::from_slice::<AuditEvent>(line) {
            Ok(e) => {
                parsed += 1;
                if e.tenant != tenant {
                    line_problems.push(format!(
                        "batch {seq} line {n}: an event of tenant {:?}",
                        e.tenant
                    ));
                }
                if e.store_region != region && !is_moved(moved, &e.store_region, region) {
                    line_problems.push(format!(
                        "batch {seq} line {n}: an event for region {:?} stored in region {region:?}",
                        e.store_region
                    ));
                }
                if first_time.as_ref().is_none_or(|t| e.time < *t) {
                    first_time = Some(e.time.clone());
                }
                if last_time.as_ref().is_none_or(|t| e.time > *t) {
                    last_time = Some(e.time);
                }
            }
            Err(err) => {
                line_problems.push(format!("batch {seq} line {n}: not an audit event ({err})"))
            }
        }
    }
    let more = line_problems.len().saturating_sub(MAX_LINE_PROBLEMS);
    problems.extend(line_problems.into_iter().take(MAX_LINE_PROBLEMS));
    if more > 0 {
        problems.push(format!("batch {seq}: {more} more line problem(s)"));
    }
    let lines_found = event_lines.len() as u64 + u64::from(partial.is_some());
    if lines_found != header.count {
        problems.push(format!(
            "batch {seq}: the header says {} event(s) but {lines_found} line(s) follow (lines removed or added)",
            header.count
        ));
    } else if parsed == header.count
        && (first_time.as_deref().unwrap_or("") != header.first_time
            || last_time.as_deref().unwrap_or("") != header.last_time)
    {
        problems.push(format!(
            "batch {seq}: event times do not match the header's first_time/last_time (edited)"
        ));
    }
    (Some(header), parsed)
}

/// "batch 3" or "batches 3..=5".
fn seq_range(from: u64, to: u64) -> String {
    if from == to {
        format!("batch {from} is")
    } else {
        format!("batches {from}..={to} are")
    }
}

/// Whether a record stored for region `from` may be found in region `to`:
/// a migration moved the tenant's records from `from` to `to`.
fn is_moved(moved: &[(String, String)], from: &str, to: &str) -> bool {
    moved.iter().any(|(f, t)| f == from && t == to)
}

/// Checks one writer's chain.
async fn verify_writer(
    backends: &[(String, Arc<dyn Backend>)],
    tenant: &str,
    writer: &str,
    objects: &WriterObjects,
    moved: &[(String, String)],
) -> Result<WriterReport, StoreError> {
    let region = |ri: usize| backends[ri].0.as_str();
    let mut problems = Vec::new();
    let mut notes = Vec::new();
    let mut events = 0u64;
    let mut regions: Vec<String> = Vec::new();
    for (ri, key) in &objects.stray {
        problems.push(format!("unexpected object {key} in region {}", region(*ri)));
    }
    // seq → (sha256, region) of the batches that could be read.
    let mut hashes: BTreeMap<u64, (String, usize)> = BTreeMap::new();
    let mut expected = 0u64;
    for (&seq, holders) in &objects.batches {
        if holders.len() > 1 {
            let names: Vec<&str> = holders.iter().map(|ri| region(*ri)).collect();
            problems.push(format!(
                "batch {seq} is stored in more than one region ({}): the chain forked",
                names.join(", ")
            ));
        }
        if seq > expected {
            problems.push(format!(
                "{} missing (removed)",
                seq_range(expected, seq - 1)
            ));
        }
        expected = seq + 1;
        let ri = holders[0];
        if !regions.iter().any(|r| r == region(ri)) {
            regions.push(region(ri).to_owned());
        }
        let key = super::format::batch_key(tenant, writer, seq);
        let Some(bytes) = read(backends[ri].1.as_ref(), &key).await? else {
            problems.push(format!("batch {seq} disappeared while being verified"));
            continue;
        };
        let sha = sha256_hex(&bytes);
        let (header, parsed) = check_batch(
            &bytes,
            tenant,
            writer,
            seq,
            region(ri),
            moved,
            &mut problems,
        );
        events += parsed;
        if let Some(h) = header {
            if seq == 0 && !h.prev_sha256.is_empty() {
                problems.push("batch 0: prev_sha256 is not empty".to_owned());
            }
            if seq > 0 {
                if let Some((prev_sha, _)) = hashes.get(&(seq - 1)) {
                    if *prev_sha != h.prev_sha256 {
                        problems.push(format!(
                            "batch {seq}: prev_sha256 does not match batch {} (batch {} was edited or replaced)",
                            seq - 1,
                            seq - 1
                        ));
                    }
                }
            }
        }
        hashes.insert(seq, (sha, ri));
    }
    let last = objects.batches.keys().next_back().copied();

    // The HEAD records: every region holding the chain keeps one; the
    // highest names the latest batch, and each must match the batch it names.
    let mut head: Option<(u64, usize)> = None;
    for &ri in &objects.heads {
        let key = super::format::head_key(tenant, writer);
        let Some(bytes) = read(backends[ri].1.as_ref(), &key).await? else {
            continue;
        };
        let rec: HeadRecord = match serde_json::from_slice(&bytes) {
            Ok(r) => r,
            Err(e) => {
                problems.push(format!(
                    "HEAD in region {} is not readable ({e})",
                    region(ri)
                ));
                continue;
            }
        };
        if let Some((sha, bri)) = hashes.get(&rec.seq) {
            if *sha != rec.sha256 {
                problems.push(format!(
                    "HEAD in region {} names batch {} with SHA-256 {}, but the batch hashes to {sha} (batch edited or replaced)",
                    region(ri),
                    rec.seq,
                    rec.sha256
                ));
            }
            if region(*bri) != rec.region && !is_moved(moved, &rec.region, region(*bri)) {
                problems.push(format!(
                    "HEAD in region {} says batch {} is in region {:?}, but it is in {:?}",
                    region(ri),
                    rec.seq,
                    rec.region,
                    region(*bri)
                ));
            }
        }
        if head.is_none_or(|(s, _)| rec.seq > s) {
            head = Some((rec.seq, ri));
        }
    }
    match (head, last) {
        (None, Some(_)) => problems.push(
            "no HEAD record: the end of the chain cannot be checked (HEAD removed)".to_owned(),
        ),
        (Some((h, ri)), None) => problems.push(format!(
            "HEAD in region {} names batch {h} but no batch is left (batches removed)",
            region(ri)
        )),
        (Some((h, ri)), Some(l)) if h > l => problems.push(format!(
            "HEAD in region {} names batch {h} but the last batch is {l}: {} missing (removed at the end)",
            region(ri),
            seq_range(l + 1, h)
        )),
        (Some((h, _)), Some(l)) if l == h + 1 => notes.push(format!(
            "batch {l} is after HEAD (the writer stopped between storing the batch and its HEAD)"
        )),
        (Some((h, _)), Some(l)) if l > h + 1 => problems.push(format!(
            "{} after HEAD {h} (HEAD replaced, or batches added)",
            seq_range(h + 1, l)
        )),
        _ => {}
    }
    Ok(WriterReport {
        writer: writer.to_owned(),
        batches: objects.batches.len() as u64,
        events,
        head: head.map(|(h, _)| h),
        regions,
        problems,
        notes,
    })
}

/// Verifies every audit chain of `tenant`: lists `_audit/<tenant>/` in every
/// region, groups the objects by writer and, for each writer, reads the
/// batches in seq order and recomputes their hashes.
///
/// What each kind of tampering looks like:
/// - a removed batch: a gap in the seq numbers (or batch 0 missing);
/// - an edited batch: the next batch's `prev_sha256` (or, for the latest
///   batch, the HEAD's `sha256`) no longer matches its hash; most edits also
///   break its JSON, its header's count or its time range;
/// - lines removed from (or added to) a batch: the header's `count`
///   differs from the lines found, and the hash check above fails too;
/// - the latest batches removed: HEAD names a batch beyond the last one;
/// - a HEAD removed: no HEAD record for a chain that has batches (every
///   region holding the chain keeps its own HEAD, so removing the end of a
///   chain means removing it in every one of those regions);
/// - events of another tenant, or stored outside their `store_region`;
/// - a batch present in two regions (a fork), stray objects.
///
/// A chain whose last batch has no HEAD yet (the writer stopped between the
/// two writes) is noted, not a problem. Removing a writer's whole folder in
/// every region is not detectable from the chain itself.
///
/// # Errors
/// Any backend error from listing or reading (`Unavailable`, ...).
pub async fn verify_chain(
    backends: &[(String, Arc<dyn Backend>)],
    tenant: &str,
) -> Result<ChainReport, StoreError> {
    verify_chain_moved(backends, tenant, &[]).await
}

/// [`verify_chain`] for a tenant whose records a migration moved: each
/// `(from, to)` pair accepts, in region `to`, events (and HEAD records) that
/// name region `from` as where they were stored. The batches are the same
/// bytes, so the chain's hashes still link; only their place changed.
///
/// # Errors
/// As [`verify_chain`].
pub async fn verify_chain_moved(
    backends: &[(String, Arc<dyn Backend>)],
    tenant: &str,
    moved: &[(String, String)],
) -> Result<ChainReport, StoreError> {
    let inventory = inventory(backends, tenant).await?;
    let mut writers = Vec::with_capacity(inventory.len());
    for (writer, objects) in &inventory {
        writers.push(verify_writer(backends, tenant, writer, objects, moved).await?);
    }
    let ok = writers.iter().all(|w| w.problems.is_empty());
    Ok(ChainReport {
        tenant: tenant.to_owned(),
        writers,
        ok,
    })
}

/// Every audit event stored for `tenant`, in every region, in time order
/// (events with the same time keep their writer, batch and line order).
///
/// Lines that are not events of `tenant` are skipped with a warning;
/// [`verify_chain`] reports them.
///
/// # Errors
/// Any backend error from listing or reading (`Unavailable`, ...).
pub async fn read_events(
    backends: &[(String, Arc<dyn Backend>)],
    tenant: &str,
) -> Result<Vec<AuditEvent>, StoreError> {
    let inventory = inventory(backends, tenant).await?;
    let mut events = Vec::new();
    for (writer, objects) in &inventory {
        for (&seq, holders) in &objects.batches {
            let key = super::format::batch_key(tenant, writer, seq);
            let Some(bytes) = read(backends[holders[0]].1.as_ref(), &key).await? else {
                continue;
            };
            let (lines, partial) = split_lines(&bytes);
            for line in lines.into_iter().skip(1).chain(partial) {
                match serde_json::from_slice::<AuditEvent>(line) {
                    Ok(e) if e.tenant == tenant => events.push(e),
                    Ok(e) => tracing::warn!(
                        target: "residency::audit",
                        %key,
                        other = %e.tenant,
                        "skipping an event of another tenant"
                    ),
                    Err(err) => tracing::warn!(
                        target: "residency::audit",
                        %key,
                        error = %err,
                        "skipping a line that is not an audit event"
                    ),
                }
            }
        }
    }
    events.sort_by(|a, b| a.time.cmp(&b.time));
    Ok(events)
}
