//! Shared pieces of the migration tests: one Garage pair per test binary,
//! a temporary sidecar configuration pointing at it, a deterministic corpus
//! of objects, and object-by-object comparisons.

#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use residency_policy::Policy;
use residency_proxy::Config;
use residency_store::{Backend, Body, ListRequest, PutMeta, StoreError, StoredHeaders};
use residency_testkit::{GarageCluster, RegionInfo};
use sha2::{Digest, Sha256};

/// Time allowed for one whole test.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(600);

/// The Garage pair shared by the tests of one binary.
pub fn cluster() -> &'static GarageCluster {
    static CLUSTER: OnceLock<Result<GarageCluster, String>> = OnceLock::new();
    match CLUSTER.get_or_init(|| GarageCluster::start().map_err(|e| e.to_string())) {
        Ok(c) => c,
        Err(e) => panic!("cannot start the Garage pair: {e}"),
    }
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A sidecar configuration in a temporary directory.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    pub tenants_path: PathBuf,
    pub policy: Policy,
    pub backends: Vec<(String, Arc<dyn Backend>)>,
}

fn region_toml(name: &str, r: &RegionInfo) -> String {
    format!(
        "[regions.{name}]\nkind = \"s3\"\nendpoint = \"{}\"\nbucket = \"{}\"\nregion = \"{}\"\naccess_key = \"{}\"\nsecret_key = \"{}\"\ntimeout_secs = 60\nmax_attempts = 3\n\n",
        r.endpoint, r.bucket, r.region, r.access_key, r.secret_key
    )
}

impl Env {
    /// Writes `residency.toml` (both Garage regions, the repository's
    /// hosting policy) and `tenants.toml` with `tenants`.
    pub async fn new(tenants: &str) -> Env {
        let c = cluster();
        let dir = tempfile::tempdir().expect("tempdir");
        let tenants_path = dir.path().join("tenants.toml");
        std::fs::write(&tenants_path, tenants).expect("write tenants");
        let policy_path = repo_root().join("config/hosting-policy.toml");
        let config = format!(
            "listen = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:1\"\npolicy = \"{}\"\ntenants = \"{}\"\nupload_id_secret = \"migration-tests\"\n\n{}{}[audit]\nenabled = true\nbatch_events = 500\nflush_secs = 1\n",
            policy_path.display(),
            tenants_path.display(),
            region_toml("eu", c.eu()),
            region_toml("us", c.us()),
        );
        let config_path = dir.path().join("residency.toml");
        std::fs::write(&config_path, config).expect("write config");
        let cfg = Config::load(&config_path).expect("valid config");
        let backends = cfg.open_backends().await.expect("backends");
        let policy = Policy::from_toml(
            &std::fs::read_to_string(&policy_path).expect("policy"),
            "hosting-policy.toml",
        )
        .expect("valid policy");
        Env {
            dir,
            config_path,
            tenants_path,
            policy,
            backends,
        }
    }

    pub fn backend(&self, region: &str) -> Arc<dyn Backend> {
        self.backends
            .iter()
            .find(|(r, _)| r == region)
            .map(|(_, b)| b.clone())
            .expect("region")
    }

    pub fn tenants_file(&self) -> String {
        std::fs::read_to_string(&self.tenants_path).expect("tenants file")
    }
}

/// One object of the corpus.
#[derive(Debug, Clone)]
pub struct Obj {
    /// Key relative to the tenant prefix.
    pub key: String,
    pub data: Bytes,
    pub content_type: Option<String>,
    pub meta: BTreeMap<String, String>,
    pub cache_control: Option<String>,
    /// Whether policy moves it to the EU for a tenant whose locality is eu.
    pub moves: bool,
}

impl Obj {
    pub fn sha(&self) -> String {
        hex(&Sha256::digest(&self.data))
    }
}

pub fn hex(b: &[u8]) -> String {
    hex::encode(b)
}

fn bytes_of(seed: u64, len: usize) -> Bytes {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    Bytes::from(v)
}

/// `n` objects of mixed categories and sizes (most a few KiB, one in 97 of
/// 200 KiB to 1 MiB), plus one object of each size in `big`.
///
/// One in ten is a call recording (US only: stays), one in twenty an
/// voicemail (a Talk key: stays in the US), one in twenty
/// an unkeyed file that its stored explicit category moves.
pub fn corpus(n: usize, big: &[usize]) -> Vec<Obj> {
    let mut out = Vec::with_capacity(n + big.len());
    for i in 0..n {
        let size = if i % 97 == 5 {
            200 * 1024 + (i * 7919) % (824 * 1024)
        } else {
            100 + (i * 7919) % 6000
        };
        let data = bytes_of(i as u64 + 1, size);
        let mut meta = BTreeMap::new();
        let (key, ct, moves, cc) = match i % 10 {
            0..=4 => (
                format!("tickets/{i:05}/comment.json"),
                "application/json",
                true,
                None,
            ),
            5 => {
                meta.insert("owner".to_owned(), format!("user-{i}"));
                (format!("users/{i:05}.json"), "application/json", true, None)
            }
            6 | 7 => (
                format!("attachments/{i:05}.bin"),
                "application/octet-stream",
                true,
                Some("max-age=60".to_owned()),
            ),
            8 => (
                format!("talk/recordings/{i:05}.mp3"),
                "audio/mpeg",
                false,
                None,
            ),
            _ if i % 20 == 9 => (
                format!("talk/voicemails/{i:05}.wav"),
                "audio/wav",
                false,
                None,
            ),
            _ => {
                meta.insert("residency-category".to_owned(), "ticket_data".to_owned());
                (
                    format!("misc/{i:05}.dat"),
                    "application/octet-stream",
                    true,
                    None,
                )
            }
        };
        out.push(Obj {
            key,
            data,
            content_type: Some(ct.to_owned()),
            meta,
            cache_control: cc,
            moves,
        });
    }
    for (j, &size) in big.iter().enumerate() {
        let mut meta = BTreeMap::new();
        meta.insert("origin".to_owned(), "scanner".to_owned());
        out.push(Obj {
            key: format!("attachments/big-{j}.bin"),
            data: bytes_of(10_000 + j as u64, size),
            content_type: Some("application/pdf".to_owned()),
            meta,
            cache_control: None,
            moves: true,
        });
    }
    out
}

pub fn put_meta(o: &Obj) -> PutMeta {
    PutMeta {
        headers: StoredHeaders {
            content_type: o.content_type.clone(),
            user_metadata: o.meta.clone(),
            cache_control: o.cache_control.clone(),
            ..StoredHeaders::default()
        },
        ..PutMeta::default()
    }
}

/// Stores the corpus under `<tenant>/` in `backend` (as the sidecar would
/// have while the tenant lived there).
pub async fn seed(backend: &Arc<dyn Backend>, tenant: &str, objs: &[Obj]) {
    let results: Vec<Result<(), StoreError>> = futures::stream::iter(objs)
        .map(|o| {
            let b = backend.clone();
            let key = format!("{tenant}/{}", o.key);
            async move {
                b.put_object(&key, Body::from_bytes(o.data.clone()), put_meta(o))
                    .await
                    .map(|_| ())
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    for r in results {
        r.expect("seed put");
    }
}

/// Every key under `prefix`.
pub async fn list_keys(backend: &Arc<dyn Backend>, prefix: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut token = None;
    loop {
        let page = backend
            .list_objects(ListRequest::new(prefix).continuation_token(token))
            .await
            .expect("list");
        keys.extend(page.objects.into_iter().map(|o| o.key));
        token = page.next_continuation_token;
        if token.is_none() {
            return keys;
        }
    }
}

/// What is stored at `key`: `None` if missing, else a mismatch description
/// (empty when bytes and metadata equal `o`'s).
pub async fn compare(backend: &Arc<dyn Backend>, key: &str, o: &Obj) -> Option<String> {
    let got = match backend.get_object(key, None).await {
        Ok(g) => g,
        Err(StoreError::NotFound { .. }) => return None,
        Err(e) => return Some(format!("{key}: {e}")),
    };
    let info = got.info.clone();
    let data = match got.body.collect().await {
        Ok(d) => d,
        Err(e) => return Some(format!("{key}: body: {e}")),
    };
    let mut problems = Vec::new();
    if data.len() != o.data.len() || hex(&Sha256::digest(&data)) != o.sha() {
        problems.push(format!("bytes differ ({} vs {})", data.len(), o.data.len()));
    }
    if info.headers.content_type != o.content_type {
        problems.push(format!(
            "content type {:?} vs {:?}",
            info.headers.content_type, o.content_type
        ));
    }
    if info.headers.user_metadata != o.meta {
        problems.push(format!(
            "metadata {:?} vs {:?}",
            info.headers.user_metadata, o.meta
        ));
    }
    if info.headers.cache_control != o.cache_control {
        problems.push(format!(
            "cache-control {:?} vs {:?}",
            info.headers.cache_control, o.cache_control
        ));
    }
    Some(if problems.is_empty() {
        String::new()
    } else {
        format!("{key}: {}", problems.join("; "))
    })
}

/// Compares every object of `objs` in both regions: `(present_identical,
/// missing, problems)` per region.
pub async fn survey(
    backend: &Arc<dyn Backend>,
    tenant: &str,
    objs: &[Obj],
) -> (Vec<String>, Vec<String>, Vec<String>) {
    let results: Vec<(String, Option<String>)> = futures::stream::iter(objs)
        .map(|o| {
            let b = backend.clone();
            let key = format!("{tenant}/{}", o.key);
            async move {
                let r = compare(&b, &key, o).await;
                (o.key.clone(), r)
            }
        })
        .buffered(16)
        .collect()
        .await;
    let mut same = Vec::new();
    let mut missing = Vec::new();
    let mut bad = Vec::new();
    for (k, r) in results {
        match r {
            None => missing.push(k),
            Some(p) if p.is_empty() => same.push(k),
            Some(p) => bad.push(p),
        }
    }
    (same, missing, bad)
}

/// The `residency` binary of this build (built once if a test binary runs
/// before it).
pub fn residency_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("test exe");
    // target/<profile>/deps/<test>-<hash> -> target/<profile>/residency
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let bin = dir.join("residency");
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let status = std::process::Command::new(cargo)
            .current_dir(repo_root())
            .args(["build", "-p", "residency", "--bin", "residency"])
            .status()
            .expect("run cargo build");
        assert!(status.success(), "cargo build -p residency failed");
    }
    assert!(bin.exists(), "{} is missing", bin.display());
    bin
}

/// `residency ARGS --config <env's config>`, output captured, no fault point.
pub fn residency_cmd(env: &Env, args: &[&str]) -> std::process::Command {
    let mut c = std::process::Command::new(residency_bin());
    c.args(args)
        .arg("--config")
        .arg(&env.config_path)
        .env_remove("RESIDENCY_MIGRATE_FAULT")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    c
}

/// A command's stdout as JSON (panics with both outputs otherwise).
pub fn stdout_json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {:?}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}
