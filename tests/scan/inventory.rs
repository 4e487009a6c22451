//! `residency scan --inventory`: each region's keys from an S3 Inventory
//! report the test writes as S3 does (gzipped CSV data files with
//! URL-encoded keys, a `manifest.json` naming them with their MD5, in the
//! destination bucket's layout), then each finding checked against the live
//! bucket. The findings are those of a LIST scan of the same buckets; what
//! was deleted since the inventory is left out, what was written again since
//! is reconciled as it is now.

use std::io::Write as _;

use md5::Digest as _;
use residency_store::{ListRequest, PutMeta};

use super::*;

/// S3 Inventory's key encoding (form encoding: `+` for a space).
fn encode(key: &str) -> String {
    key.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                (b as char).to_string()
            }
            b' ' => "+".to_owned(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// One inventory row.
struct Row {
    key: String,
    size: u64,
    etag: String,
    last_modified: std::time::SystemTime,
    latest: bool,
}

/// Every object of a region's bucket, as an inventory lists it.
async fn rows(env: &Env, region: &str) -> Vec<Row> {
    env.backend(region)
        .list_objects(ListRequest::new(""))
        .await
        .expect("list")
        .objects
        .into_iter()
        .map(|o| Row {
            key: o.key,
            size: o.size,
            etag: o.etag.trim_matches('"').to_owned(),
            last_modified: o.last_modified,
            latest: true,
        })
        .collect()
}

/// Writes an inventory of `rows` in `files` data files under `root` (a
/// copy of the destination bucket) and returns its manifest.
fn write_inventory(root: &Path, region: &str, rows: &[Row], files: usize) -> PathBuf {
    let base = format!("inventories/{INVENTORY_BUCKET}/{region}-daily");
    let mut entries = Vec::new();
    for (i, chunk) in rows.chunks(rows.len().div_ceil(files)).enumerate() {
        let key = format!("{base}/data/{i:04}-5e6f7a.csv.gz");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        for r in chunk {
            let when = chrono::DateTime::<chrono::Utc>::from(r.last_modified)
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            writeln!(
                gz,
                "\"{INVENTORY_BUCKET}\",\"{}\",\"{}\",\"{}\",\"{when}\",\"{}\"",
                encode(&r.key),
                r.latest,
                r.size,
                r.etag
            )
            .expect("gzip");
        }
        let bytes = gz.finish().expect("gzip");
        let path = root.join(&key);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, &bytes).expect("data file");
        entries.push(entry(&key, &bytes));
    }
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis();
    let schema = "Bucket, Key, IsLatest, Size, LastModifiedDate, ETag";
    write_manifest(root, &base, ("CSV", schema), created, entries)
}

/// The same rows as a Parquet inventory (snappy pages, the columns S3
/// names), in one data file; returns its manifest.
fn write_parquet_inventory(root: &Path, rows: &[Row]) -> PathBuf {
    use parquet::column::writer::ColumnWriter;
    use parquet::data_type::ByteArray;
    let schema = "message s3.inventory {
        required binary bucket (UTF8);
        required binary key (UTF8);
        optional boolean is_latest;
        optional int64 size;
        optional int64 last_modified_date (TIMESTAMP_MILLIS);
        optional binary e_tag (UTF8);
    }";
    let base = format!("inventories/{INVENTORY_BUCKET}/us-parquet");
    let key = format!("{base}/data/0000-9a8b.parquet");
    let path = root.join(&key);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::SNAPPY)
        .build();
    let mut w = parquet::file::writer::SerializedFileWriter::new(
        std::fs::File::create(&path).expect("data file"),
        Arc::new(parquet::schema::parser::parse_message_type(schema).expect("schema")),
        Arc::new(props),
    )
    .expect("writer");
    let mut group = w.next_row_group().expect("row group");
    let strings = |f: &dyn Fn(&Row) -> String| -> Vec<ByteArray> {
        rows.iter()
            .map(|r| ByteArray::from(f(r).as_str()))
            .collect()
    };
    let defined = vec![1i16; rows.len()];
    let mut column = 0;
    while let Some(mut c) = group.next_column().expect("column") {
        match (column, c.untyped()) {
            (0, ColumnWriter::ByteArrayColumnWriter(w)) => {
                w.write_batch(&strings(&|_| INVENTORY_BUCKET.to_owned()), None, None)
            }
            (1, ColumnWriter::ByteArrayColumnWriter(w)) => {
                w.write_batch(&strings(&|r| r.key.clone()), None, None)
            }
            (2, ColumnWriter::BoolColumnWriter(w)) => {
                let v: Vec<bool> = rows.iter().map(|r| r.latest).collect();
                w.write_batch(&v, Some(&defined), None)
            }
            (3, ColumnWriter::Int64ColumnWriter(w)) => {
                let v: Vec<i64> = rows.iter().map(|r| r.size as i64).collect();
                w.write_batch(&v, Some(&defined), None)
            }
            (4, ColumnWriter::Int64ColumnWriter(w)) => {
                let v: Vec<i64> = rows
                    .iter()
                    .map(|r| {
                        let d = r.last_modified.duration_since(std::time::UNIX_EPOCH);
                        d.expect("after 1970").as_millis() as i64
                    })
                    .collect();
                w.write_batch(&v, Some(&defined), None)
            }
            (5, ColumnWriter::ByteArrayColumnWriter(w)) => {
                w.write_batch(&strings(&|r| r.etag.clone()), Some(&defined), None)
            }
            (n, _) => panic!("column {n} of another type"),
        }
        .expect("write column");
        c.close().expect("close column");
        column += 1;
    }
    group.close().expect("close row group");
    w.close().expect("close file");
    let bytes = std::fs::read(&path).expect("data file");
    let files = vec![entry(&key, &bytes)];
    write_manifest(root, &base, ("Parquet", schema), 1_796_515_200_000, files)
}

/// Writes the manifest of an inventory's data files (`[{key, size,
/// MD5checksum}]`) under `root/base` and returns its path.
fn write_manifest(
    root: &Path,
    base: &str,
    (format, schema): (&str, &str),
    created_ms: u128,
    files: Vec<serde_json::Value>,
) -> PathBuf {
    let manifest = root.join(format!("{base}/2026-12-06T00-00Z/manifest.json"));
    std::fs::create_dir_all(manifest.parent().expect("parent")).expect("mkdir");
    let doc = serde_json::json!({
        "sourceBucket": INVENTORY_BUCKET,
        "destinationBucket": "arn:aws:s3:::inventory-destination",
        "version": "2016-11-30",
        "creationTimestamp": created_ms.to_string(),
        "fileFormat": format,
        "fileSchema": schema,
        "files": files,
    });
    std::fs::write(&manifest, doc.to_string()).expect("manifest");
    manifest
}

/// A manifest's entry for a data file of `bytes`.
fn entry(key: &str, bytes: &[u8]) -> serde_json::Value {
    serde_json::json!({
        "key": key,
        "size": bytes.len(),
        "MD5checksum": hex::encode(md5::Md5::digest(bytes)),
    })
}

fn note<'a>(summary: &'a serde_json::Value, region: &str) -> &'a serde_json::Value {
    summary["inventory"]
        .as_array()
        .expect("inventory notes")
        .iter()
        .find(|n| n["region"] == region)
        .expect("a note for the region")
}

fn read_summary(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("summary.json")).expect("summary"))
        .expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inventory_scan_finds_what_a_listing_finds_and_checks_its_findings_live() {
    let policy = repo().join("config/hosting-policy.toml");
    let env = Env::new(INVENTORY_BUCKET, &policy).await;
    env.plant(&[
        ("eu", "acme/tickets/1.json", "application/json"),
        ("us", "acme/talk/recordings/1.mp3", "audio/mpeg"),
        ("us", "globex/tickets/1.json", "application/json"),
        // Misplaced: acme is an EU tenant.
        ("us", "acme/tickets/2.json", "application/json"),
        ("us", "acme/tickets/a b+c.json", "application/json"),
        ("us", "acme/tickets/rewritten.json", "application/json"),
        ("eu", "ghost/tickets/1.json", "application/json"),
    ])
    .await;
    let o = env.scan(&env.config, "listed", &[], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", says(&o));
    let (listed, _) = findings(&env.dir.path().join("listed/findings.jsonl"));
    let wanted: BTreeSet<Seen> = [
        ("misplaced", "us", "acme/tickets/2.json"),
        ("misplaced", "us", "acme/tickets/a b+c.json"),
        ("misplaced", "us", "acme/tickets/rewritten.json"),
        ("unknown_tenant", "eu", "ghost/tickets/1.json"),
    ]
    .iter()
    .map(|(k, r, key)| ((*k).to_owned(), (*r).to_owned(), (*key).to_owned()))
    .collect();
    assert_eq!(set(&listed), wanted, "the LIST scan");

    // The inventories: the US one also lists an object deleted since and
    // a noncurrent version (skipped), in two data files.
    let root = env.dir.path().join("destination");
    let eu = write_inventory(&root, "eu", &rows(&env, "eu").await, 1);
    let mut us_rows = rows(&env, "us").await;
    let live_us = us_rows.len() as u64;
    let now = std::time::SystemTime::now();
    for (key, latest) in [
        ("acme/tickets/gone.json", true),
        ("acme/tickets/old.json", false),
    ] {
        us_rows.push(Row {
            key: key.to_owned(),
            size: 10,
            etag: "0123456789abcdef0123456789abcdef".to_owned(),
            last_modified: now,
            latest,
        });
    }
    let us = write_inventory(&root, "us", &us_rows, 2);
    let us_parquet = write_parquet_inventory(&root, &us_rows);
    // After the inventory: one object written again, one new (not in it).
    env.backend("us")
        .put_object(
            "acme/tickets/rewritten.json",
            Body::from_bytes(Bytes::from_static(b"{\"v\":2}")),
            PutMeta::default(),
        )
        .await
        .expect("rewrite");
    env.plant(&[("us", "acme/tickets/after.json", "application/json")])
        .await;

    let inv = |out: &str, extra: &[&str], fault: &[(&str, &str)]| {
        let eu_arg = format!("eu={}", eu.display());
        let us_arg = format!("us={}", us.display());
        let mut args = vec![
            "--inventory",
            eu_arg.as_str(),
            "--inventory",
            us_arg.as_str(),
        ];
        args.extend_from_slice(extra);
        env.scan(&env.config, out, &args, fault)
    };
    let o = inv("inventory", &[], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", says(&o));
    let dir = env.dir.path().join("inventory");
    let (found, reasons) = findings(&dir.join("findings.jsonl"));
    assert_eq!(set(&found), wanted, "the inventory scan: {}", says(&o));
    assert_eq!(found.len(), wanted.len(), "no finding twice");
    assert!(reasons["acme/tickets/a b+c.json"].contains("belongs in eu, found in us"));
    let summary = read_summary(&dir);
    let n = note(&summary, "us");
    assert_eq!(n["rows"], live_us + 1, "{n}");
    assert_eq!(n["skipped"], 1, "the noncurrent version: {n}");
    assert_eq!(n["files"], 2);
    assert_eq!(n["gone_since"], 1, "{n}");
    assert_eq!(n["changed_since"], 1, "{n}");
    assert_eq!(n["confirmed"], 2, "{n}");
    assert_eq!(note(&summary, "eu")["confirmed"], 1);
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("S3 Inventory of bucket scan-inventory"),
        "{}",
        says(&o)
    );

    // Aborted after 2 pages of 2 rows, then run again: the same findings,
    // none twice, the same counts.
    let small = [
        "--page-size",
        "2",
        "--checkpoint-secs",
        "0",
        "--parallel",
        "1",
    ];
    let o = inv(
        "resumed",
        &small,
        &[("RESIDENCY_SCAN_FAULT", "abort_after_pages:2")],
    );
    assert_eq!(o.status.code(), None, "aborted by a signal: {}", says(&o));
    let o = inv("resumed", &small, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", says(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("resumed from the checkpoint"));
    let resumed = env.dir.path().join("resumed");
    let (again, _) = findings(&resumed.join("findings.jsonl"));
    assert_eq!(set(&again), wanted);
    assert_eq!(
        again.len(),
        wanted.len(),
        "no finding twice after the resume"
    );
    let summary2 = read_summary(&resumed);
    assert_eq!(summary2["listed"], summary["listed"]);
    assert_eq!(summary2["tenants"], summary["tenants"]);
    assert_eq!(summary2["inventory"], summary["inventory"]);

    // One tenant: only its rows are reconciled.
    let o = inv("globex", &["--tenant", "globex"], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", says(&o));

    // The same US rows as Parquet: the same US findings and counts.
    let pq = format!("us={}", us_parquet.display());
    let o = env.scan(&env.config, "parquet", &["--inventory", &pq], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", says(&o));
    let (from_parquet, _) = findings(&env.dir.path().join("parquet/findings.jsonl"));
    let us_wanted: BTreeSet<Seen> = wanted.iter().filter(|f| f.1 == "us").cloned().collect();
    assert_eq!(set(&from_parquet), us_wanted);
    let p = read_summary(&env.dir.path().join("parquet"));
    let (a, b) = (note(&p, "us"), note(&summary, "us"));
    for field in [
        "rows",
        "skipped",
        "confirmed",
        "gone_since",
        "changed_since",
    ] {
        assert_eq!(a[field], b[field], "{field}: parquet {a} csv {b}");
    }
    assert_eq!(p["tenants"]["globex"], summary["tenants"]["globex"]);

    // A manifest without a region, whose bucket both regions use: which
    // region it lists must be said.
    let us_only = us.to_str().expect("utf-8");
    let o = env.scan(&env.config, "ambiguous", &["--inventory", us_only], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", says(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("name the region"),
        "{}",
        says(&o)
    );

    // A damaged data file: its MD5 no longer matches, nothing is reported.
    let data = root.join(format!(
        "inventories/{INVENTORY_BUCKET}/eu-daily/data/0000-5e6f7a.csv.gz"
    ));
    let mut bytes = std::fs::read(&data).expect("data file");
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&data, bytes).expect("damage");
    let o = inv("damaged", &[], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", says(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("MD5"),
        "{}",
        says(&o)
    );
    assert!(!env.dir.path().join("damaged/summary.json").exists());
}
