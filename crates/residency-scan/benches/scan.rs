//! Scan throughput against the bare LIST rate of the same buckets, and the
//! scan's memory, over local directory regions filled directly (writing a
//! million objects through Garage takes too long on this machine).
//!
//! One mode per process, so that each has its own peak RSS
//! (`scripts/bench-scan.sh` runs them alternately under `/usr/bin/time`):
//!
//! ```text
//! scan fill DIR N   N objects over 1000 tenants in DIR/eu and DIR/us
//! scan list DIR     every key of both regions, paged as the scan pages
//! scan scan DIR     `Scanner::run` over both regions
//! scan inventory DIR          S3 Inventory reports of both regions (gzipped
//!                             CSV, 100,000 rows per file) in DIR/inventory
//! scan scan-inventory DIR     `Scanner::run` reading those reports
//! ```
//!
//! With `DIR` a sidecar configuration file (`*.toml`) the regions are its
//! backends instead (e.g. a Garage pair from `residency-testkit up`), and
//! `fill` PUTs the objects, 32 at once.
//!
//! Objects: `t<NNN>/tickets/<i/1000>/<i>.json` in the tenant's region
//! (tenants alternate eu and us), one in 1000 in the other region
//! (misplaced), one in 100 an unkeyed `t<NNN>/misc/<i>.bin` (read with a
//! HEAD; unclassifiable). Files are empty: the backend computes their ETag.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use residency_directory::FileDirectory;
use residency_policy::{Policy, Tenants};
use residency_scan::{ScanOptions, Scanner};
use residency_store::{Backend, DirBackend, ListRequest};

const TENANTS: usize = 1000;

fn tenants_toml() -> String {
    let mut s = String::new();
    for t in 0..TENANTS {
        let region = if t.is_multiple_of(2) { "eu" } else { "us" };
        s.push_str(&format!(
            "[[tenants]]\nid = \"t{t:03}\"\nlocality = \"{region}\"\n\n"
        ));
    }
    s
}

/// The region and key of object `i`.
fn object(i: usize) -> (&'static str, String) {
    let t = i % TENANTS;
    let home = if t.is_multiple_of(2) { "eu" } else { "us" };
    let other = if t.is_multiple_of(2) { "us" } else { "eu" };
    let region = if i % 1000 == 999 { other } else { home };
    let key = if i % 100 == 42 {
        format!("t{t:03}/misc/{}/{i}.bin", i / 100_000)
    } else {
        format!("t{t:03}/tickets/{}/{i}.json", i / 10_000)
    };
    (region, key)
}

async fn fill_s3(config: &Path, n: usize) {
    use futures::StreamExt as _;
    let backends = backends(config).await;
    let start = Instant::now();
    futures::stream::iter(0..n)
        .for_each_concurrent(32, |i| {
            let (region, key) = object(i);
            let b = backends
                .iter()
                .find(|(r, _)| r == region)
                .expect("region")
                .1
                .clone();
            async move {
                b.put_object(
                    &key,
                    residency_store::Body::from_bytes(bytes::Bytes::new()),
                    residency_store::PutMeta::default(),
                )
                .await
                .expect("put");
            }
        })
        .await;
    println!(
        "filled {n} objects in {:.1} s",
        start.elapsed().as_secs_f64()
    );
}

fn fill(dir: &Path, n: usize) {
    let start = Instant::now();
    for i in 0..n {
        let (region, rel) = object(i);
        let path = dir.join(region).join(rel);
        if let Err(e) = std::fs::write(&path, b"") {
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(&path, b"").unwrap_or_else(|_| panic!("write {}: {e}", path.display()));
        }
        if i % 100_000 == 0 && i > 0 {
            eprintln!(
                "{i} objects written ({:.0}/s)",
                i as f64 / start.elapsed().as_secs_f64()
            );
        }
    }
    println!(
        "filled {n} objects in {:.1} s",
        start.elapsed().as_secs_f64()
    );
}

async fn backends(dir: &Path) -> Vec<(String, Arc<dyn Backend>)> {
    if dir.extension().is_some_and(|e| e == "toml") {
        return residency_proxy::Config::load(dir)
            .expect("valid config")
            .open_backends()
            .await
            .expect("backends");
    }
    let mut out: Vec<(String, Arc<dyn Backend>)> = Vec::new();
    for r in ["eu", "us"] {
        let b = DirBackend::open(dir.join(r)).await.expect("open region");
        out.push((r.to_owned(), Arc::new(b)));
    }
    out
}

async fn list(dir: &Path) {
    let start = Instant::now();
    let counts =
        futures::future::join_all(backends(dir).await.into_iter().map(|(_, b)| async move {
            let mut n = 0u64;
            let mut after: Option<String> = None;
            loop {
                let mut req = ListRequest::new("");
                if let Some(a) = after.take() {
                    req = req.start_after(a);
                }
                let page = b.list_objects(req).await.expect("list");
                n += page.objects.len() as u64;
                after = page.objects.last().map(|o| o.key.clone());
                if page.next_continuation_token.is_none() || after.is_none() {
                    return n;
                }
            }
        }))
        .await;
    let n: u64 = counts.iter().sum();
    let secs = start.elapsed().as_secs_f64();
    println!(
        "list: {n} keys in {secs:.2} s: {:.0} keys/s",
        n as f64 / secs
    );
}

/// Writes each region's S3 Inventory (from a LIST of it) as S3 does:
/// gzipped CSV data files and a manifest naming them with their MD5.
async fn inventory(dir: &Path) {
    use md5::Digest as _;
    use std::io::Write as _;
    let start = Instant::now();
    let mut rows = 0u64;
    for (region, b) in backends(dir).await {
        let base = dir.join("inventory").join(&region);
        std::fs::create_dir_all(base.join("data")).expect("mkdir");
        let mut files = Vec::new();
        let mut after: Option<String> = None;
        let mut gz: Option<flate2::write::GzEncoder<Vec<u8>>> = None;
        let mut in_file = 0;
        let flush = |gz: flate2::write::GzEncoder<Vec<u8>>, files: &mut Vec<serde_json::Value>| {
            let bytes = gz.finish().expect("gzip");
            let key = format!("data/{:04}.csv.gz", files.len());
            std::fs::write(base.join(&key), &bytes).expect("data file");
            files.push(serde_json::json!({
                "key": key, "size": bytes.len(),
                "MD5checksum": hex::encode(md5::Md5::digest(&bytes)),
            }));
        };
        loop {
            let mut req = ListRequest::new("");
            if let Some(a) = after.take() {
                req = req.start_after(a);
            }
            let page = b.list_objects(req).await.expect("list");
            for o in &page.objects {
                let w = gz.get_or_insert_with(|| {
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast())
                });
                let key = percent_encoding::utf8_percent_encode(
                    &o.key,
                    percent_encoding::NON_ALPHANUMERIC,
                );
                writeln!(
                    w,
                    "\"{region}\",\"{key}\",\"{}\",\"2026-12-06T00:00:00.000Z\",\"{}\"",
                    o.size,
                    o.etag.trim_matches('"')
                )
                .expect("gzip");
                in_file += 1;
                rows += 1;
                if in_file == 100_000 {
                    flush(gz.take().expect("open"), &mut files);
                    in_file = 0;
                }
            }
            after = page.objects.last().map(|o| o.key.clone());
            if page.next_continuation_token.is_none() || after.is_none() {
                break;
            }
        }
        if let Some(w) = gz.take() {
            flush(w, &mut files);
        }
        let manifest = serde_json::json!({
            "sourceBucket": region, "destinationBucket": "bench",
            "version": "2016-11-30", "creationTimestamp": "1796515200000",
            "fileFormat": "CSV", "fileSchema": "Bucket, Key, Size, LastModifiedDate, ETag",
            "files": files,
        });
        std::fs::write(base.join("manifest.json"), manifest.to_string()).expect("manifest");
    }
    println!(
        "inventory: {rows} rows written in {:.1} s",
        start.elapsed().as_secs_f64()
    );
}

async fn scan(dir: &Path, from_inventory: bool) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let policy_src =
        std::fs::read_to_string(root.join("config/hosting-policy.toml")).expect("policy");
    let policy = Policy::from_toml(&policy_src, "hosting-policy.toml").expect("valid policy");
    let tenants = Tenants::from_toml(&tenants_toml(), "tenants", &policy).expect("valid tenants");
    let directory = Arc::new(FileDirectory::without_keys(Arc::new(tenants)));
    let scanner = Scanner::new(Arc::new(policy), directory, backends(dir).await);
    let out = tempfile::tempdir().expect("out");
    let mut opts = ScanOptions::new(out.path());
    if from_inventory {
        for r in ["eu", "us"] {
            let path = dir.join("inventory").join(r).join("manifest.json");
            let m = residency_scan::inventory::Manifest::open(&path).expect("manifest");
            opts.inventories.push((r.to_owned(), m));
        }
    }
    let start = Instant::now();
    let outcome = scanner.run(&opts).await.expect("scan");
    let secs = start.elapsed().as_secs_f64();
    let s = &outcome.summary;
    println!(
        "{}: {} keys in {secs:.2} s: {:.0} keys/s, {} finding(s)",
        if from_inventory {
            "scan-inventory"
        } else {
            "scan"
        },
        s.listed.objects,
        s.listed.objects as f64 / secs,
        s.total_findings()
    );
}

fn main() {
    let all: Vec<String> = std::env::args().skip(1).collect();
    if all.iter().any(|a| a == "--list") {
        // A test runner asking for tests: this binary has none to list.
        return;
    }
    let args: Vec<String> = all.into_iter().filter(|a| !a.starts_with("--")).collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["fill", config, n] if config.ends_with(".toml") => {
            rt.block_on(fill_s3(Path::new(config), n.parse().expect("N")))
        }
        ["fill", dir, n] => fill(&PathBuf::from(dir), n.parse().expect("N")),
        ["list", dir] => rt.block_on(list(Path::new(dir))),
        ["scan", dir] => rt.block_on(scan(Path::new(dir), false)),
        ["inventory", dir] => rt.block_on(inventory(Path::new(dir))),
        ["scan-inventory", dir] => rt.block_on(scan(Path::new(dir), true)),
        // `cargo test --benches` runs this with no arguments: a small
        // round trip, so that the bench stays compiled and working.
        [] => {
            let dir = tempfile::tempdir().expect("tmp");
            fill(dir.path(), 3_000);
            rt.block_on(list(dir.path()));
            rt.block_on(scan(dir.path(), false));
            rt.block_on(inventory(dir.path()));
            rt.block_on(scan(dir.path(), true));
        }
        _ => {
            eprintln!(
                "usage: scan fill DIR N | list DIR | scan DIR | inventory DIR | scan-inventory DIR"
            );
            std::process::exit(2);
        }
    }
}
