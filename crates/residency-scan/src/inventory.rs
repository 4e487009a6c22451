//! S3 Inventory reports as the scan's source of keys: a bucket of 10^9
//! objects takes days to LIST, its daily inventory is read in minutes.
//!
//! An inventory is published as `.../YYYY-MM-DDTHH-MMZ/manifest.json`,
//! which names its data files (keys in the destination bucket, each with
//! its size and MD5), their format and their columns (`fileSchema`). This
//! module reads a manifest from a local copy of the destination bucket (as
//! `aws s3 sync s3://DEST DIR` leaves it), checks each data file's MD5,
//! and streams its rows as [`ObjectSummary`]s: gzipped CSV, whose keys are
//! URL-encoded (form encoding: `+` is a space), and (the `parquet` cargo
//! feature, on by default) Parquet, whose columns are named in the file
//! (`key`, `size`, `last_modified_date`, `e_tag`, `is_latest`,
//! `is_delete_marker`) and whose keys are plain; snappy, gzip, LZ4 or
//! uncompressed pages. ORC is not read.
//!
//! Rows of noncurrent versions and delete markers (inventories "with all
//! versions") are skipped: the scan, like a LIST, reconciles what a GET
//! would read.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use md5::Digest as _;
use residency_store::ObjectSummary;
use serde::{Deserialize, Serialize};

use crate::error::ScanError;

/// One data file the manifest names.
#[derive(Debug, Clone, Deserialize)]
pub struct DataFile {
    /// Its key in the destination bucket.
    pub key: String,
    /// Its size in bytes.
    #[serde(default)]
    pub size: Option<u64>,
    /// The MD5 of the file (hex).
    #[serde(rename = "MD5checksum", default)]
    pub md5: Option<String>,
}

/// `manifest.json` as S3 Inventory writes it (the fields the scan uses).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    source_bucket: String,
    #[serde(default)]
    destination_bucket: Option<String>,
    /// Milliseconds since the epoch, as a string.
    creation_timestamp: String,
    file_format: String,
    file_schema: String,
    files: Vec<DataFile>,
}

/// A column of the CSV files the scan reads.
#[derive(Debug, Clone, Copy)]
struct Columns {
    key: usize,
    size: Option<usize>,
    last_modified: Option<usize>,
    etag: Option<usize>,
    is_latest: Option<usize>,
    is_delete_marker: Option<usize>,
    count: usize,
}

/// An inventory report, read from its manifest.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// The manifest file.
    pub path: PathBuf,
    /// The bucket it lists.
    pub source_bucket: String,
    /// When S3 began the listing it reports (objects written later are not
    /// in it).
    pub created_at: SystemTime,
    /// The data files, each with where it was found on disk.
    pub files: Vec<(DataFile, PathBuf)>,
    format: Format,
}

/// The data files' format.
#[derive(Debug, Clone, Copy)]
enum Format {
    /// CSV (gzipped or not), its columns named by `fileSchema`.
    Csv(Columns),
    /// Parquet: the columns are named in each file.
    #[cfg(feature = "parquet")]
    Parquet,
}

/// What `summary.json` records of an inventory a scan read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryNote {
    /// The region it lists.
    pub region: String,
    /// The manifest file.
    pub manifest: String,
    /// The bucket it lists.
    pub source_bucket: String,
    /// When S3 began the listing (Unix seconds).
    pub created_at: u64,
    /// Data files.
    pub files: usize,
    /// Rows read (current versions; noncurrent versions and delete markers
    /// are skipped and counted in `skipped`).
    pub rows: u64,
    /// Rows of noncurrent versions or delete markers.
    pub skipped: u64,
    /// Findings still true of the live bucket (checked by LIST).
    pub confirmed: u64,
    /// Objects of a finding deleted since the inventory (left out).
    pub gone_since: u64,
    /// Objects of a finding written again since (reconciled as they are
    /// now).
    pub changed_since: u64,
}

/// What one page of an inventory adds to its [`InventoryNote`].
#[derive(Debug, Default)]
pub(crate) struct InventoryDelta {
    pub(crate) rows: u64,
    pub(crate) skipped: u64,
    pub(crate) confirmed: u64,
    pub(crate) gone_since: u64,
    pub(crate) changed_since: u64,
}

impl InventoryDelta {
    pub(crate) fn add_to(&self, note: &mut InventoryNote) {
        note.rows += self.rows;
        note.skipped += self.skipped;
        note.confirmed += self.confirmed;
        note.gone_since += self.gone_since;
        note.changed_since += self.changed_since;
    }
}

/// Whether the live object is the one the inventory row describes: the
/// same ETag (when the inventory has them), else the same size and time.
pub(crate) fn unchanged(row: &ObjectSummary, live: &ObjectSummary) -> bool {
    let (a, b) = (row.etag.trim_matches('"'), live.etag.trim_matches('"'));
    if !a.is_empty() && !b.is_empty() {
        return a == b;
    }
    row.size == live.size
        && (row.last_modified == UNIX_EPOCH || row.last_modified == live.last_modified)
}

fn bad(path: &Path, reason: impl std::fmt::Display) -> ScanError {
    ScanError::Inventory {
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

impl Manifest {
    /// Reads `manifest.json` and finds its data files: each file's key is
    /// looked up under the manifest's folder and each folder above it (a
    /// local copy of the destination bucket holds it at its key), then as
    /// `data/<name>` beside or above the manifest.
    ///
    /// # Errors
    /// [`ScanError::Inventory`]: unreadable manifest, a format other than
    /// CSV, a schema without `Key`, a data file not found.
    pub fn open(path: &Path) -> Result<Manifest, ScanError> {
        let bytes = std::fs::read(path).map_err(|e| bad(path, e))?;
        let raw: RawManifest = serde_json::from_slice(&bytes)
            .map_err(|e| bad(path, format!("not an S3 Inventory manifest: {e}")))?;
        let format = match raw.file_format.to_ascii_lowercase().as_str() {
            "csv" => Format::Csv(Columns::parse(&raw.file_schema).map_err(|e| bad(path, e))?),
            #[cfg(feature = "parquet")]
            "parquet" => Format::Parquet,
            _ => {
                return Err(bad(
                    path,
                    format!(
                        "fileFormat {:?}: the scan reads {} inventories (configure the inventory with that format)",
                        raw.file_format,
                        if cfg!(feature = "parquet") {
                            "CSV and Parquet"
                        } else {
                            "CSV (this build was made without the parquet feature)"
                        }
                    ),
                ))
            }
        };
        let millis: u64 = raw.creation_timestamp.trim().parse().map_err(|_| {
            bad(
                path,
                format!(
                    "creationTimestamp {:?} is not milliseconds since the epoch",
                    raw.creation_timestamp
                ),
            )
        })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut files = Vec::with_capacity(raw.files.len());
        for f in raw.files {
            let found = locate(dir, &f.key).ok_or_else(|| {
                bad(
                    path,
                    format!(
                        "data file {:?} not found under {} or a folder above it (copy the destination bucket{} with `aws s3 sync`)",
                        f.key,
                        dir.display(),
                        raw.destination_bucket
                            .as_deref()
                            .map(|b| format!(" {b}"))
                            .unwrap_or_default()
                    ),
                )
            })?;
            files.push((f, found));
        }
        Ok(Manifest {
            path: path.to_owned(),
            source_bucket: raw.source_bucket,
            created_at: UNIX_EPOCH + Duration::from_millis(millis),
            files,
            format,
        })
    }

    /// The note `summary.json` starts from.
    pub(crate) fn note(&self, region: &str) -> InventoryNote {
        InventoryNote {
            region: region.to_owned(),
            manifest: self.path.display().to_string(),
            source_bucket: self.source_bucket.clone(),
            created_at: self
                .created_at
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            files: self.files.len(),
            ..InventoryNote::default()
        }
    }

    /// The rows of data file `index`, from row `skip` on (rows counted as
    /// [`Rows::consumed`] counts them), after checking the file's MD5.
    ///
    /// # Errors
    /// [`ScanError::Inventory`]: unreadable file, MD5 mismatch.
    pub(crate) fn rows(&self, index: usize, skip: u64) -> Result<Rows, ScanError> {
        let (file, path) = &self.files[index];
        if let Some(want) = &file.md5 {
            let got = md5_of(path).map_err(|e| bad(path, e))?;
            if !got.eq_ignore_ascii_case(want.trim()) {
                return Err(bad(
                    path,
                    format!("MD5 {got} is not the manifest's {want}: the file is damaged or incomplete (copy it again)"),
                ));
            }
        }
        let f = File::open(path).map_err(|e| bad(path, e))?;
        let source = match self.format {
            Format::Csv(columns) => {
                let reader: Box<dyn Read + Send> = if is_gzip(path).map_err(|e| bad(path, e))? {
                    Box::new(flate2::read::MultiGzDecoder::new(BufReader::new(f)))
                } else {
                    Box::new(BufReader::new(f))
                };
                let csv = csv::ReaderBuilder::new()
                    .has_headers(false)
                    .flexible(true)
                    .from_reader(reader);
                Source::Csv {
                    csv: Box::new(csv),
                    record: csv::StringRecord::new(),
                    columns,
                }
            }
            #[cfg(feature = "parquet")]
            Format::Parquet => Source::Parquet(Box::new(
                parquet::file::reader::SerializedFileReader::new(f)
                    .map_err(|e| bad(path, format!("not a Parquet file: {e}")))?
                    .into_iter(),
            )),
        };
        let mut rows = Rows {
            source,
            path: path.clone(),
            consumed: 0,
            skipped: 0,
        };
        while rows.consumed < skip {
            if rows.advance()?.is_none() {
                break;
            }
        }
        rows.skipped = 0;
        Ok(rows)
    }
}

/// The first of `dir/key`, `dir/../key`, ... that exists; else
/// `data/<file name>` beside or above `dir`.
fn locate(dir: &Path, key: &str) -> Option<PathBuf> {
    let rel = Path::new(key);
    let name = rel.file_name()?;
    let mut candidates = Vec::new();
    for ancestor in dir.ancestors() {
        candidates.push(ancestor.join(rel));
    }
    candidates.push(dir.join(name));
    for ancestor in dir.ancestors().take(2) {
        candidates.push(ancestor.join("data").join(name));
    }
    candidates.into_iter().find(|p| p.is_file())
}

fn is_gzip(path: &Path) -> std::io::Result<bool> {
    let mut magic = [0u8; 2];
    let n = File::open(path)?.read(&mut magic)?;
    Ok(n == 2 && magic == [0x1f, 0x8b])
}

fn md5_of(path: &Path) -> std::io::Result<String> {
    let mut f = File::open(path)?;
    let mut h = md5::Md5::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

impl Columns {
    /// `fileSchema`: the column names, comma separated.
    fn parse(schema: &str) -> Result<Columns, String> {
        let names: Vec<&str> = schema.split(',').map(str::trim).collect();
        let find = |n: &str| names.iter().position(|c| c.eq_ignore_ascii_case(n));
        let key = find("Key").ok_or_else(|| format!("fileSchema {schema:?} has no Key column"))?;
        Ok(Columns {
            key,
            size: find("Size"),
            last_modified: find("LastModifiedDate"),
            etag: find("ETag"),
            is_latest: find("IsLatest"),
            is_delete_marker: find("IsDeleteMarker"),
            count: names.len(),
        })
    }
}

/// Where a data file's rows come from.
enum Source {
    Csv {
        csv: Box<csv::Reader<Box<dyn Read + Send>>>,
        record: csv::StringRecord,
        columns: Columns,
    },
    #[cfg(feature = "parquet")]
    Parquet(Box<parquet::record::reader::RowIter<'static>>),
}

/// One row, as the scan needs it; `None`: a noncurrent version or a
/// delete marker.
type Parsed = Option<ObjectSummary>;

/// The rows of one data file, read as needed.
pub(crate) struct Rows {
    source: Source,
    path: PathBuf,
    /// Rows read so far (skipped ones included): where a resumed scan
    /// starts.
    pub(crate) consumed: u64,
    /// Rows of noncurrent versions or delete markers read so far.
    pub(crate) skipped: u64,
}

impl Rows {
    /// Reads one row; `None` at the end of the file.
    fn advance(&mut self) -> Result<Option<Parsed>, ScanError> {
        let row = self.consumed + 1;
        let parsed = match &mut self.source {
            Source::Csv {
                csv,
                record,
                columns,
            } => match csv.read_record(record) {
                Ok(false) => return Ok(None),
                Ok(true) => csv_row(record, columns),
                Err(e) => Err(e.to_string()),
            },
            #[cfg(feature = "parquet")]
            Source::Parquet(rows) => match rows.next() {
                None => return Ok(None),
                Some(Ok(r)) => parquet_row(&r),
                Some(Err(e)) => Err(e.to_string()),
            },
        };
        self.consumed = row;
        parsed
            .map(Some)
            .map_err(|e| bad(&self.path, format!("row {row}: {e}")))
    }

    /// Up to `max` current objects (rows of other versions are skipped),
    /// and whether the file ended.
    ///
    /// # Errors
    /// [`ScanError::Inventory`]: a row that cannot be read, has fewer
    /// columns than the schema, or a key that does not decode.
    pub(crate) fn page(&mut self, max: usize) -> Result<(Vec<ObjectSummary>, bool), ScanError> {
        let mut out = Vec::with_capacity(max.min(1024));
        while out.len() < max {
            match self.advance()? {
                None => return Ok((out, true)),
                Some(None) => self.skipped += 1,
                Some(Some(o)) => out.push(o),
            }
        }
        Ok((out, false))
    }
}

fn csv_row(r: &csv::StringRecord, c: &Columns) -> Result<Parsed, String> {
    if r.len() < c.count {
        return Err(format!("{} column(s), the schema {}", r.len(), c.count));
    }
    let field = |i: Option<usize>| i.map(|i| r.get(i).unwrap_or("").trim());
    if field(c.is_latest).is_some_and(|v| v.eq_ignore_ascii_case("false"))
        || field(c.is_delete_marker).is_some_and(|v| v.eq_ignore_ascii_case("true"))
    {
        return Ok(None);
    }
    let key = decode_key(r.get(c.key).unwrap_or(""))?;
    let size = match field(c.size) {
        None | Some("") => 0,
        Some(s) => s.parse().map_err(|_| format!("Size {s:?}"))?,
    };
    let last_modified = match field(c.last_modified) {
        None | Some("") => UNIX_EPOCH,
        Some(s) => chrono::DateTime::parse_from_rfc3339(s)
            .map_err(|e| format!("LastModifiedDate {s:?}: {e}"))?
            .into(),
    };
    Ok(Some(ObjectSummary {
        key,
        size,
        etag: quoted(field(c.etag).unwrap_or("")),
        last_modified,
    }))
}

/// An ETag as a listing has it (quoted), or empty.
fn quoted(etag: &str) -> String {
    let e = etag.trim().trim_matches('"');
    if e.is_empty() {
        String::new()
    } else {
        format!("\"{e}\"")
    }
}

#[cfg(feature = "parquet")]
fn parquet_row(row: &parquet::record::Row) -> Result<Parsed, String> {
    use parquet::record::Field;
    let mut key = None;
    let mut out = ObjectSummary {
        key: String::new(),
        size: 0,
        etag: String::new(),
        last_modified: UNIX_EPOCH,
    };
    for (name, field) in row.get_column_iter() {
        match (name.as_str(), field) {
            ("key", Field::Str(k)) => key = Some(k.clone()),
            ("is_latest", Field::Bool(false)) | ("is_delete_marker", Field::Bool(true)) => {
                return Ok(None)
            }
            ("size", Field::Long(n)) => {
                out.size = u64::try_from(*n).map_err(|_| format!("size {n}"))?;
            }
            ("last_modified_date", Field::TimestampMillis(ms)) => {
                let ms = u64::try_from(*ms).map_err(|_| format!("last_modified_date {ms}"))?;
                out.last_modified = UNIX_EPOCH + Duration::from_millis(ms);
            }
            ("e_tag", Field::Str(e)) => out.etag = quoted(e),
            _ => {}
        }
    }
    out.key = key.ok_or("no key column (a UTF-8 string named key)")?;
    Ok(Some(out))
}

/// A CSV inventory key: URL-encoded, `+` for a space.
fn decode_key(raw: &str) -> Result<String, String> {
    let plus = raw.replace('+', " ");
    percent_encoding::percent_decode_str(&plus)
        .decode_utf8()
        .map(|k| k.into_owned())
        .map_err(|_| format!("the key {raw:?} does not decode to UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_decode_as_s3_inventory_encodes_them() {
        assert_eq!(decode_key("t/a+b%2Bc%20d.txt").unwrap(), "t/a b+c d.txt");
        assert_eq!(decode_key("t/%C3%A9t%C3%A9").unwrap(), "t/été");
        assert!(decode_key("t/%FF").is_err());
    }

    #[test]
    fn the_schema_names_the_columns() {
        let c = Columns::parse(
            "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, LastModifiedDate, ETag",
        )
        .unwrap();
        assert_eq!((c.key, c.size, c.etag, c.count), (1, Some(5), Some(7), 8));
        assert_eq!(c.is_latest, Some(3));
        assert!(Columns::parse("Bucket, Size").is_err());
    }
}
