//! Shared pieces of the sidecar's end-to-end tests: one Garage pair for the
//! whole test binary, an in-process sidecar per test, `aws-sdk-s3` clients for
//! the sidecar and for the regional buckets, and a hand-written SigV4 signer
//! for the requests the SDK will not make (signed `aws-chunked` bodies).

#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{ConfigBag, Credentials, Intercept, Region, RuntimeComponents};
use aws_sdk_s3::error::{BoxError, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{MultipartUpload, Object, Part};
use aws_sdk_s3::Client;
use hmac::{Hmac, KeyInit, Mac};
use residency_proxy::{ServeOptions, Sidecar};
use residency_testkit::{GarageCluster, RegionInfo};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub mod faultproxy;

/// Time allowed for one whole test.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(240);
/// Time allowed for one client call.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(60);

// Keys of config/tenants.example.toml.
pub const ACME: (&str, &str) = ("ACMEEXAMPLEKEY", "acme-example-secret-key-change-me");
pub const GLOBEX: (&str, &str) = ("GLOBEXEXAMPLEKEY", "globex-example-secret-key-change-me");
pub const INITECH: (&str, &str) = ("INITECHEXAMPLEKEY", "initech-example-secret-key-change-me");
pub const EUROBANK: (&str, &str) = (
    "EUROBANKEXAMPLEKEY",
    "eurobank-example-secret-key-change-me",
);
pub const SERVICE: (&str, &str) = (
    "APPSERVEREXAMPLEKEY",
    "appserver-example-secret-key-change-me",
);

/// Runs a test body with a time bound.
pub async fn bounded<F: Future<Output = ()>>(name: &str, f: F) {
    if tokio::time::timeout(TEST_TIMEOUT, f).await.is_err() {
        panic!("{name}: did not finish within {TEST_TIMEOUT:?}");
    }
}

/// Awaits one call that must succeed, with a time bound.
pub async fn succeeds<T, E: Debug>(what: &str, f: impl Future<Output = Result<T, E>>) -> T {
    within(what, f)
        .await
        .unwrap_or_else(|e| panic!("{what}: {e:?}"))
}

/// Awaits one call with a time bound.
pub async fn within<F: Future>(what: &str, f: F) -> F::Output {
    match tokio::time::timeout(CALL_TIMEOUT, f).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: no answer within {CALL_TIMEOUT:?}"),
    }
}

/// The Garage pair shared by every test of the binary (started on first use;
/// the testkit kills it when the test process exits).
pub fn cluster() -> &'static GarageCluster {
    static CLUSTER: OnceLock<Result<GarageCluster, String>> = OnceLock::new();
    match CLUSTER.get_or_init(|| GarageCluster::start().map_err(|e| e.to_string())) {
        Ok(c) => c,
        Err(e) => panic!("cannot start the Garage pair: {e}"),
    }
}

/// Tests that assert "nothing changed in either bucket" take this lock
/// exclusively; every other test holds it shared while it writes.
pub static BUCKETS: LazyLock<tokio::sync::RwLock<()>> =
    LazyLock::new(|| tokio::sync::RwLock::new(()));

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn backend_toml(id: &str, r: &RegionInfo, o: &SidecarOptions, endpoint: &str) -> String {
    format!(
        "[regions.{id}]\nkind = \"s3\"\nendpoint = {:?}\nbucket = {:?}\nregion = {:?}\naccess_key = {:?}\nsecret_key = {:?}\ntimeout_secs = {}\nmax_attempts = {}\n\n",
        endpoint, r.bucket, r.region, r.access_key, r.secret_key, o.backend_timeout_secs, o.max_attempts
    )
}

/// How a test's sidecar differs from the default one.
#[derive(Debug, Clone)]
pub struct SidecarOptions {
    /// Reach the EU bucket through this endpoint (a fault proxy) instead.
    pub eu_endpoint: Option<String>,
    /// The tenants file's text, written to `tenants.toml` beside the config
    /// (a test's own copy, to rewrite); `None`: the repository's example file.
    pub tenants: Option<String>,
    /// Each backend call's timeout.
    pub backend_timeout_secs: u64,
    /// Attempts per backend call (the SDK's retries, within the region).
    pub max_attempts: u32,
    /// Extra lines of the `[limits]` table.
    pub limits: String,
}

impl Default for SidecarOptions {
    fn default() -> Self {
        SidecarOptions {
            eu_endpoint: None,
            tenants: None,
            backend_timeout_secs: 30,
            max_attempts: 1,
            limits: String::new(),
        }
    }
}

impl SidecarOptions {
    /// The default sidecar with these extra `[limits]` lines.
    pub fn with_limits(limits: &str) -> SidecarOptions {
        SidecarOptions {
            limits: limits.to_string(),
            ..SidecarOptions::default()
        }
    }
}

/// The sidecar's configuration for the shared Garage pair: the repository's
/// hosting policy and example tenants, audit off.
pub fn write_config(dir: &Path) -> PathBuf {
    write_config_with(dir, &SidecarOptions::default())
}

/// [`write_config`] with options.
pub fn write_config_with(dir: &Path, o: &SidecarOptions) -> PathBuf {
    let c = cluster();
    let root = repo_root();
    let policy = root.join("config/hosting-policy.toml");
    let tenants = match &o.tenants {
        Some(text) => {
            let own = dir.join("tenants.toml");
            std::fs::write(&own, text).expect("write tenants");
            own
        }
        None => root.join("config/tenants.example.toml"),
    };
    let mut s = format!(
        "listen = \"127.0.0.1:1\"\nadmin = \"127.0.0.1:2\"\npolicy = {:?}\ntenants = {:?}\nupload_id_secret = \"e2e-upload-id-secret\"\n\n",
        policy.display().to_string(),
        tenants.display().to_string()
    );
    let eu = o
        .eu_endpoint
        .clone()
        .unwrap_or_else(|| c.eu().endpoint.clone());
    s.push_str(&backend_toml("eu", c.eu(), o, &eu));
    s.push_str(&backend_toml("us", c.us(), o, &c.us().endpoint));
    s.push_str(&format!(
        "[limits]\nshutdown_grace_secs = 1\n{}\n\n[audit]\nenabled = false\n",
        o.limits
    ));
    let path = dir.join("residency.toml");
    std::fs::write(&path, s).expect("write residency.toml");
    path
}

/// A sidecar serving in this test's runtime; stopped when dropped.
pub struct Running {
    pub addr: SocketAddr,
    /// The admin listener (`/metrics`, `/healthz`, `/readyz`).
    pub admin: SocketAddr,
    pub endpoint: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Builds a sidecar from `config` and serves it on fresh 127.0.0.1 ports.
pub async fn start_sidecar(config: &Path) -> Running {
    let sidecar = within(
        "Sidecar::build",
        Sidecar::build(config, &ServeOptions::default()),
    )
    .await
    .unwrap_or_else(|e| panic!("Sidecar::build: {e}"));
    let s3 = TcpListener::bind("127.0.0.1:0").await.expect("bind s3");
    let admin = TcpListener::bind("127.0.0.1:0").await.expect("bind admin");
    let addr = s3.local_addr().expect("local addr");
    let admin_addr = admin.local_addr().expect("admin addr");
    let task = tokio::spawn(async move {
        if let Err(e) = residency_proxy::run(Arc::new(sidecar), s3, admin).await {
            panic!("sidecar stopped: {e}");
        }
    });
    Running {
        addr,
        admin: admin_addr,
        endpoint: format!("http://{addr}"),
        task,
    }
}

/// One test's sidecar on the shared Garage pair.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub sidecar: Running,
}

impl Env {
    pub async fn start() -> Env {
        Self::start_with(&SidecarOptions::default()).await
    }

    /// A sidecar configured with `options`.
    pub async fn start_with(options: &SidecarOptions) -> Env {
        let _ = cluster();
        let dir = tempfile::tempdir().expect("tempdir");
        let config = write_config_with(dir.path(), options);
        let sidecar = start_sidecar(&config).await;
        Env {
            dir,
            config,
            sidecar,
        }
    }

    /// Stops this sidecar and starts a new one on the same configuration.
    pub async fn restart(&mut self) {
        self.sidecar.task.abort();
        let _ = (&mut self.sidecar.task).await;
        self.sidecar = start_sidecar(&self.config).await;
    }

    /// An SDK client of the sidecar signing with `key`.
    pub fn client(&self, key: (&str, &str)) -> Client {
        proxy_client(&self.sidecar.endpoint, key.0, key.1, None)
    }

    /// [`Env::client`] whose requests' headers `recorder` keeps.
    pub fn recorded_client(&self, key: (&str, &str), recorder: &Recorder) -> Client {
        proxy_client(&self.sidecar.endpoint, key.0, key.1, Some(recorder.clone()))
    }
}

/// Everything the process logs, as text.
#[derive(Clone, Default)]
pub struct CapturedLog(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for CapturedLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl CapturedLog {
    /// Installs the sidecar's own log filter on a subscriber that writes into
    /// memory instead of stderr (installed first, the sidecar's `try_init`
    /// then keeps it). Once per test process.
    pub fn install() -> CapturedLog {
        let captured = CapturedLog::default();
        let sink = captured.clone();
        tracing_subscriber::fmt()
            .with_env_filter(residency_proxy::server::log_filter())
            .with_ansi(false)
            .with_writer(move || sink.clone())
            .init();
        captured
    }

    /// What was logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

pub fn base_config(
    endpoint: &str,
    region: &str,
    access: &str,
    secret: &str,
) -> aws_sdk_s3::config::Builder {
    aws_sdk_s3::Config::builder()
        .endpoint_url(endpoint)
        .region(Region::new(region.to_string()))
        .credentials_provider(Credentials::new(access, secret, None, None, "e2e"))
        .force_path_style(true)
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5))
                .operation_timeout(CALL_TIMEOUT)
                .build(),
        )
}

/// A client of the sidecar (signing for `us-east-1`, as SDKs default to).
pub fn proxy_client(
    endpoint: &str,
    access: &str,
    secret: &str,
    recorder: Option<Recorder>,
) -> Client {
    let mut b = base_config(endpoint, "us-east-1", access, secret);
    if let Some(r) = recorder {
        b = b.interceptor(r);
    }
    Client::from_conf(b.build())
}

/// A clock `offset` behind the real one.
#[derive(Debug)]
pub struct SkewedClock(pub Duration);

impl aws_smithy_async::time::TimeSource for SkewedClock {
    fn now(&self) -> SystemTime {
        SystemTime::now() - self.0
    }
}

/// A client of the sidecar whose clock is `behind` the real time.
pub fn skewed_client(endpoint: &str, key: (&str, &str), behind: Duration) -> Client {
    let b = base_config(endpoint, "us-east-1", key.0, key.1).time_source(SkewedClock(behind));
    Client::from_conf(b.build())
}

/// A client of a regional Garage bucket.
pub fn garage_client(r: &RegionInfo) -> Client {
    Client::from_conf(base_config(&r.endpoint, &r.region, &r.access_key, &r.secret_key).build())
}

/// Records the headers of every request a client sends.
#[derive(Debug, Clone, Default)]
pub struct Recorder(pub Arc<Mutex<Vec<BTreeMap<String, String>>>>);

impl Recorder {
    pub fn take(&self) -> Vec<BTreeMap<String, String>> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

impl Intercept for Recorder {
    fn name(&self) -> &'static str {
        "e2e-header-recorder"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let headers = context
            .request()
            .headers()
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
            .collect();
        self.0.lock().unwrap().push(headers);
        Ok(())
    }
}

/// An S3 error as the client saw it.
#[derive(Debug)]
pub struct Failure {
    pub status: u16,
    pub code: String,
    pub message: String,
}

/// The S3 error of a call that must fail.
pub fn failure<T: Debug, E>(what: &str, r: Result<T, SdkError<E, HttpResponse>>) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match r {
        Ok(v) => panic!("{what}: expected an S3 error, got {v:?}"),
        Err(e) => {
            let status = e
                .raw_response()
                .map(|r| r.status().as_u16())
                .unwrap_or_else(|| panic!("{what}: expected an S3 error response, got {e:?}"));
            Failure {
                status,
                code: e.code().unwrap_or_default().to_string(),
                message: e.message().unwrap_or_default().to_string(),
            }
        }
    }
}

/// Asserts the status and code of a call that must fail; returns the failure.
pub fn expect_s3_error<T: Debug, E>(
    what: &str,
    r: Result<T, SdkError<E, HttpResponse>>,
    status: u16,
    code: &str,
) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let f = failure(what, r);
    assert_eq!(
        (f.status, f.code.as_str()),
        (status, code),
        "{what}: wrong error: {f:?}"
    );
    f
}

/// Every object in a regional bucket, read directly (all pages).
pub async fn backend_objects(r: &RegionInfo) -> Vec<Object> {
    let c = garage_client(r);
    let mut pages = c
        .list_objects_v2()
        .bucket(&r.bucket)
        .into_paginator()
        .send();
    let mut out = Vec::new();
    while let Some(page) = within("list backend", pages.next()).await {
        let page = page.unwrap_or_else(|e| panic!("list {}: {e:?}", r.name));
        out.extend_from_slice(page.contents());
    }
    out
}

/// Both regional buckets as seen directly: every object (key, size, etag)
/// and every multipart upload in progress, by region.
pub async fn snapshot() -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for r in cluster().regions() {
        for o in backend_objects(r).await {
            out.insert(
                format!("{}:{}", r.name, o.key().unwrap_or_default()),
                format!(
                    "{} {}",
                    o.size().unwrap_or_default(),
                    o.e_tag().unwrap_or_default()
                ),
            );
        }
        let c = garage_client(r);
        let list = c.list_multipart_uploads().bucket(&r.bucket).send();
        let ups = succeeds(&format!("list uploads {}", r.name), list).await;
        for u in ups.uploads() {
            out.insert(
                format!(
                    "{}:upload:{}:{}",
                    r.name,
                    u.key().unwrap_or_default(),
                    u.upload_id().unwrap_or_default()
                ),
                String::new(),
            );
        }
    }
    out
}

/// The regions (`eu`, `us`) whose bucket holds `<tenant>/<key>`, read directly.
pub async fn regions_holding(tenant: &str, key: &str) -> Vec<&'static str> {
    let mut found = Vec::new();
    let full = format!("{tenant}/{key}");
    for (name, r) in [("eu", cluster().eu()), ("us", cluster().us())] {
        let c = garage_client(r);
        match within(
            "head backend",
            c.head_object().bucket(&r.bucket).key(&full).send(),
        )
        .await
        {
            Ok(_) => found.push(name),
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => {}
            Err(e) => panic!("head {full} in {name}: {e:?}"),
        }
    }
    found
}

/// The bytes of `<tenant>/<key>` read directly from region `region`.
pub async fn backend_bytes(region: &str, tenant: &str, key: &str) -> Vec<u8> {
    let r = cluster().region(region).expect("region");
    get(&garage_client(r), &r.bucket, &format!("{tenant}/{key}")).await
}

/// PutObject of `body` at `bucket/key`, which must succeed.
pub async fn put(c: &Client, bucket: &str, key: &str, body: &[u8]) {
    let body = ByteStream::from(body.to_vec());
    let put = c.put_object().bucket(bucket).key(key).body(body).send();
    succeeds(&format!("put {bucket}/{key}"), put).await;
}

/// PutObject of `body` at `acme/<key>` labelled with category `label`,
/// which must succeed.
pub async fn put_labelled(c: &Client, key: &str, label: &str, body: &str) {
    let put = c
        .put_object()
        .bucket("acme")
        .key(key)
        .metadata("residency-category", label)
        .body(ByteStream::from(body.as_bytes().to_vec()))
        .send();
    succeeds(&format!("put {key} as {label}"), put).await;
}

/// The bytes of `bucket/key`, which must be there.
pub async fn get(c: &Client, bucket: &str, key: &str) -> Vec<u8> {
    let get = c.get_object().bucket(bucket).key(key).send();
    let out = succeeds(&format!("get {bucket}/{key}"), get).await;
    out.body
        .collect()
        .await
        .expect("body")
        .into_bytes()
        .to_vec()
}

/// The keys of the first ListObjectsV2 page under `prefix` (which must succeed).
pub async fn list_keys(c: &Client, bucket: &str, prefix: &str) -> Vec<String> {
    let list = c.list_objects_v2().bucket(bucket).prefix(prefix).send();
    let page = succeeds(&format!("list {bucket}/{prefix}"), list).await;
    page.contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_string))
        .collect()
}

/// CreateMultipartUpload of `bucket/key`, which must succeed: the upload id.
pub async fn create_upload(c: &Client, bucket: &str, key: &str) -> String {
    let create = c.create_multipart_upload().bucket(bucket).key(key).send();
    let out = succeeds(&format!("create {bucket}/{key}"), create).await;
    out.upload_id().expect("upload id").to_string()
}

/// The parts of upload `id` (ListParts, which must succeed).
pub async fn list_parts(c: &Client, bucket: &str, key: &str, id: &str) -> Vec<Part> {
    let list = c.list_parts().bucket(bucket).key(key).upload_id(id).send();
    let out = succeeds(&format!("list parts of {bucket}/{key}"), list).await;
    out.parts().to_vec()
}

/// The uploads in progress under `prefix` (ListMultipartUploads, which must succeed).
pub async fn list_uploads(c: &Client, bucket: &str, prefix: &str) -> Vec<MultipartUpload> {
    let list = c.list_multipart_uploads().bucket(bucket).prefix(prefix);
    let out = succeeds(&format!("list uploads of {bucket}/{prefix}"), list.send()).await;
    out.uploads().to_vec()
}

/// AbortMultipartUpload of upload `id`, which must succeed.
pub async fn abort_upload(c: &Client, bucket: &str, key: &str, id: &str) {
    let abort = c.abort_multipart_upload().bucket(bucket).key(key);
    succeeds(&format!("abort {bucket}/{key}"), abort.upload_id(id).send()).await;
}

/// Asserts that `<tenant>/<key>` is stored in exactly `region`.
pub async fn assert_placed(tenant: &str, key: &str, region: &str) {
    let found = regions_holding(tenant, key).await;
    assert_eq!(
        found,
        [region],
        "{tenant}/{key} must be stored in {region} only"
    );
}

// ---------------------------------------------------------------------------
// SigV4 by hand (for aws-chunked signed streaming uploads).

type HmacSha256 = Hmac<Sha256>;

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut m = HmacSha256::new_from_slice(key).expect("hmac key");
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// `(YYYYMMDD'T'HHMMSS'Z', YYYYMMDD)` of a time.
pub fn amz_date(t: SystemTime) -> (String, String) {
    let secs = t.duration_since(UNIX_EPOCH).expect("after 1970").as_secs();
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let date = format!("{y:04}{m:02}{d:02}");
    (
        format!(
            "{date}T{:02}{:02}{:02}Z",
            rem / 3600,
            rem % 3600 / 60,
            rem % 60
        ),
        date,
    )
}

/// Signs requests for one key, time, region and service (`s3` unless
/// [`Signer::for_service`] names another).
pub struct Signer {
    pub access_key: String,
    secret_key: String,
    pub region: String,
    pub service: String,
    pub datetime: String,
    pub date: String,
}

impl Signer {
    pub fn new(key: (&str, &str), region: &str, datetime: &str) -> Signer {
        Signer {
            access_key: key.0.to_string(),
            secret_key: key.1.to_string(),
            region: region.to_string(),
            service: "s3".to_string(),
            datetime: datetime.to_string(),
            date: datetime[..8].to_string(),
        }
    }

    /// The same signer for another service than `s3` (a wrong credential scope).
    pub fn for_service(self, service: &str) -> Signer {
        Signer {
            service: service.to_string(),
            ..self
        }
    }

    pub fn scope(&self) -> String {
        format!(
            "{}/{}/{}/aws4_request",
            self.date, self.region, self.service
        )
    }

    fn sign(&self, string_to_sign: &str) -> String {
        let k = hmac(
            format!("AWS4{}", self.secret_key).as_bytes(),
            self.date.as_bytes(),
        );
        let k = hmac(&k, self.region.as_bytes());
        let k = hmac(&k, self.service.as_bytes());
        let k = hmac(&k, b"aws4_request");
        hex::encode(hmac(&k, string_to_sign.as_bytes()))
    }

    /// The seed signature and `Authorization` header of a request whose path
    /// and query need no percent-encoding; `headers` are the signed ones (any
    /// case, any order).
    pub fn seed(
        &self,
        method: &str,
        path: &str,
        query: &str,
        headers: &[(&str, String)],
        payload_hash: &str,
    ) -> (String, String) {
        let mut hs: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        hs.sort();
        let signed: Vec<&str> = hs.iter().map(|(k, _)| k.as_str()).collect();
        let signed = signed.join(";");
        let canonical_headers: String = hs.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
        let canonical =
            format!("{method}\n{path}\n{query}\n{canonical_headers}\n{signed}\n{payload_hash}");
        let sts = format!(
            "AWS4-HMAC-SHA256\n{}\n{}\n{}",
            self.datetime,
            self.scope(),
            sha256_hex(canonical.as_bytes())
        );
        let sig = self.sign(&sts);
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential={}/{}, SignedHeaders={signed}, Signature={sig}",
            self.access_key,
            self.scope()
        );
        (sig, auth)
    }

    /// The signature of any string to sign (a form upload's policy).
    pub fn sign_string(&self, string_to_sign: &str) -> String {
        self.sign(string_to_sign)
    }

    /// The signature of one `aws-chunked` chunk.
    pub fn chunk(&self, prev_signature: &str, data: &[u8]) -> String {
        let sts = format!(
            "AWS4-HMAC-SHA256-PAYLOAD\n{}\n{}\n{prev_signature}\n{EMPTY_SHA256}\n{}",
            self.datetime,
            self.scope(),
            sha256_hex(data)
        );
        self.sign(&sts)
    }

    /// An `aws-chunked` body of `chunks` (and the final empty chunk), each
    /// signed in turn from `seed`. `corrupt` names a chunk whose data is
    /// altered after signing (its signature stays the one of the real data).
    pub fn chunked_body(&self, seed: &str, chunks: &[&[u8]], corrupt: Option<usize>) -> Vec<u8> {
        let mut body = Vec::new();
        let mut prev = seed.to_string();
        for (i, data) in chunks.iter().copied().chain([&[][..]]).enumerate() {
            let sig = self.chunk(&prev, data);
            body.extend_from_slice(
                format!("{:x};chunk-signature={sig}\r\n", data.len()).as_bytes(),
            );
            let mut data = data.to_vec();
            if corrupt == Some(i) {
                data[0] ^= 0x01;
            }
            body.extend_from_slice(&data);
            body.extend_from_slice(b"\r\n");
            prev = sig;
        }
        body
    }
}

/// An unsigned `aws-chunked` body with one trailing header, as SDKs send it
/// (`STREAMING-UNSIGNED-PAYLOAD-TRAILER`).
pub fn unsigned_chunked_body(chunks: &[&[u8]], trailer: &str, value: &str) -> Vec<u8> {
    let mut body = Vec::new();
    for data in chunks {
        body.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("0\r\n{trailer}:{value}\r\n\r\n").as_bytes());
    body
}

impl Signer {
    /// A signed `aws-chunked` body ending with one signed trailing header
    /// (`STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER`, what `aws-sdk-s3` sends
    /// over plain HTTP). `bad_trailer_signature` sends a wrong trailer signature.
    pub fn chunked_body_with_trailer(
        &self,
        seed: &str,
        chunks: &[&[u8]],
        trailer: (&str, &str),
        bad_trailer_signature: bool,
    ) -> Vec<u8> {
        let mut body = Vec::new();
        let mut prev = seed.to_string();
        for data in chunks.iter().copied().chain([&[][..]]) {
            let sig = self.chunk(&prev, data);
            body.extend_from_slice(
                format!("{:x};chunk-signature={sig}\r\n", data.len()).as_bytes(),
            );
            body.extend_from_slice(data);
            if !data.is_empty() {
                body.extend_from_slice(b"\r\n");
            }
            prev = sig;
        }
        let canonical = format!("{}:{}\n", trailer.0, trailer.1);
        let sts = format!(
            "AWS4-HMAC-SHA256-TRAILER\n{}\n{}\n{prev}\n{}",
            self.datetime,
            self.scope(),
            sha256_hex(canonical.as_bytes())
        );
        let mut tsig = self.sign(&sts);
        if bad_trailer_signature {
            tsig = self.sign("something else");
        }
        body.extend_from_slice(
            format!(
                "{}:{}\r\nx-amz-trailer-signature:{tsig}\r\n\r\n",
                trailer.0, trailer.1
            )
            .as_bytes(),
        );
        body
    }
}

/// An HTTP response read off a raw connection.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

fn parse_response(buf: &[u8]) -> Option<(RawResponse, bool)> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&buf[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let rest = &buf[end + 4..];
    let header = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let complete = match header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        Some(n) => rest.len() >= n,
        None if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) => {
            rest.ends_with(b"0\r\n\r\n")
        }
        None => false,
    };
    Some((
        RawResponse {
            status,
            headers,
            body: String::from_utf8_lossy(rest).into_owned(),
        },
        complete,
    ))
}

/// Sends one HTTP/1.1 request on a new connection and reads the response
/// (tolerating a connection the server resets once it has answered).
pub async fn send_raw(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> RawResponse {
    within("raw request", async {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        let mut req = format!("{method} {path} HTTP/1.1\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("connection: close\r\n\r\n");
        let mut bytes = req.into_bytes();
        bytes.extend_from_slice(body);
        // The server may answer (and close) before it reads the whole body.
        let _ = s.write_all(&bytes).await;
        let mut buf = Vec::new();
        let mut tmp = [0u8; 16 * 1024];
        loop {
            match s.read(&mut tmp).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    buf.extend_from_slice(&tmp[..n]);
                    if let Some((_, true)) = parse_response(&buf) {
                        break;
                    }
                }
            }
        }
        parse_response(&buf).map(|(r, _)| r).unwrap_or_else(|| {
            panic!(
                "no HTTP response to {method} {path}: {:?}",
                String::from_utf8_lossy(&buf)
            )
        })
    })
    .await
}
