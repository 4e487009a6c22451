//! The sidecar's deployment configuration (`residency.toml`): where to
//! listen, which policy and tenants files, and each region's backend.
//!
//! Every problem is reported at once, with file and line; nothing starts (and
//! a reload changes nothing) until the whole configuration is valid.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use indexmap::IndexMap;
use residency_policy::{ConfigError, ConfigErrors, Ruleset, Tenants};
use residency_store::{Backend, DirBackend, NullBackend, S3Backend, S3BackendConfig};
use residency_tower::directory::FileDirectory;
use serde::Deserialize;
use toml::Spanned;

mod directory;
mod encryption;
mod limits;
mod shared;
mod tls;

use directory::RawDirectory;
pub use directory::{is_directory_url, resolve_secret, DirectoryConfig};
pub use limits::Limits;
pub use shared::{SharedBucket, TenantFrom};
pub use tls::TlsConfig;

/// How a region is stored.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, tag = "kind", rename_all = "lowercase")]
#[allow(clippy::large_enum_variant)] // a handful per process, read once
pub enum BackendConfig {
    /// A local directory (the embedded default).
    Dir {
        /// The directory (created if missing); relative to the working directory.
        path: PathBuf,
    },
    /// An S3 bucket.
    S3 {
        /// Endpoint URL (`https://s3.eu-west-1.amazonaws.com`, `http://127.0.0.1:3900`).
        endpoint: Option<String>,
        /// The bucket.
        bucket: String,
        /// The region to sign for (`eu-west-1`).
        region: String,
        /// Access key id, inline (prefer `access_key_env`).
        access_key: Option<String>,
        /// Environment variable holding the access key id.
        access_key_env: Option<String>,
        /// Secret key, inline (prefer `secret_key_env` or `secret_key_file`).
        secret_key: Option<String>,
        /// Environment variable holding the secret key.
        secret_key_env: Option<String>,
        /// File holding the secret key.
        secret_key_file: Option<PathBuf>,
        /// Path-style addressing (default true).
        #[serde(default = "yes")]
        force_path_style: bool,
        /// Timeout for calls without a long body, in seconds (default 30).
        timeout_secs: Option<u64>,
        /// Connect timeout, in seconds (default 5).
        connect_timeout_secs: Option<u64>,
        /// Seconds a streamed upload may go without the service taking any
        /// of its body (while the client is not the one pausing) before it
        /// fails with 503 (default 30; lean path).
        stall_timeout_secs: Option<u64>,
        /// Attempts per call, the first included (default 2; retries stay in this region).
        max_attempts: Option<u32>,
        /// Skip the startup check that the bucket's location is one of the
        /// region's declared locations. Only for servers that cannot answer.
        #[serde(default)]
        skip_location_check: bool,
        /// Put, get, head and delete through the lean outbound client
        /// (default true); `false` sends every call through `aws-sdk-s3`.
        #[serde(default = "yes")]
        fast_path: bool,
        /// SSE-C (customer-provided keys) is passed to the service (default
        /// true: S3 and Garage honour it); `false` refuses it with 501.
        #[serde(default = "yes")]
        sse_c: bool,
        /// The service encrypts with its own keys on `x-amz-server-side-encryption:
        /// AES256` (SSE-S3). Default false: refused with 501 (Garage ignores it).
        #[serde(default)]
        sse_s3: bool,
        /// The region's KMS key ids (ids or ARNs), the first the default for
        /// `aws:kms` without a key id. Empty (default): SSE-KMS is refused.
        #[serde(default)]
        kms_key_ids: Vec<String>,
    },
    /// Accepts and discards writes (benchmarks only: the sidecar's own
    /// ceiling); see `residency_store::NullBackend` for what reads answer.
    Null,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    listen: Option<Spanned<String>>,
    admin: Option<Spanned<String>>,
    policy: Option<PathBuf>,
    tenants: Option<Spanned<String>>,
    tenants_env: Option<Spanned<String>>,
    directory_key_file: Option<PathBuf>,
    #[serde(default)]
    directory: RawDirectory,
    #[serde(default)]
    virtual_host_domains: Vec<String>,
    upload_id_secret: Option<String>,
    upload_id_secret_env: Option<String>,
    log_format: Option<Spanned<String>>,
    #[serde(default)]
    regions: IndexMap<String, Spanned<BackendConfig>>,
    #[serde(default)]
    limits: Limits,
    #[serde(default)]
    audit: AuditConfig,
    #[serde(default)]
    auth: AuthConfig,
    #[serde(default)]
    tls: TlsConfig,
    #[serde(default)]
    shared_buckets: Vec<SharedBucket>,
    admin_token_file: Option<PathBuf>,
    admin_token_env: Option<String>,
}

/// The share of tenants (in percent) a reload may remove by default.
pub const DEFAULT_RELOAD_MAX_TENANT_DROP_PERCENT: u32 = 50;

/// Refuses a new tenants file that would remove every tenant of `old`, or
/// more than `max_drop_percent` of them: an empty or truncated file locks
/// every dropped tenant out at once, so it is treated like a syntax error.
///
/// # Errors
/// The refusal, naming how many tenants would go and a few of them.
pub fn check_tenant_drop(
    old: &Tenants,
    new: &Tenants,
    max_drop_percent: u32,
) -> Result<(), String> {
    if old.is_empty() {
        return Ok(());
    }
    let dropped: Vec<&str> = old
        .iter()
        .map(|(_, t)| t.id())
        .filter(|id| new.get(id).is_none())
        .collect();
    let (n, total) = (dropped.len(), old.len());
    let named = dropped
        .iter()
        .take(5)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    let more = if n > 5 { ", ..." } else { "" };
    if new.is_empty() {
        return Err(format!(
            "the new tenants file has no tenants: it would drop all {total} tenants served now ({named}{more})"
        ));
    }
    if n as u64 * 100 > u64::from(max_drop_percent) * total as u64 {
        return Err(format!(
            "the new tenants file would drop {n} of the {total} tenants served now ({named}{more}), more than limits.reload_max_tenant_drop_percent = {max_drop_percent}%"
        ));
    }
    Ok(())
}

/// The audit trail's settings.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Store audit batches under `_audit/<tenant>/` in the regional backends.
    pub enabled: bool,
    /// Events per batch.
    pub batch_events: usize,
    /// Seconds before a partial batch is written.
    pub flush_secs: u64,
    /// `durable` (a write is acknowledged only once its audit record is
    /// stored in its region) or `batched` (records stored by size or age; a
    /// crash loses the records not stored yet).
    pub mode: residency_tower::audit::batch::AuditMode,
    /// Durable mode: milliseconds a tenant's first waiting record is held to
    /// gather more into one batch (0: as soon as the previous batch is stored).
    pub commit_window_ms: u64,
    /// Durable mode: a write whose record is not stored within this many
    /// milliseconds fails with 503 (fail closed).
    pub commit_timeout_ms: u64,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            batch_events: 500,
            flush_secs: 5,
            mode: residency_tower::audit::batch::AuditMode::Durable,
            commit_window_ms: 0,
            commit_timeout_ms: 5000,
        }
    }
}

/// How clients may sign their requests.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Accept AWS Signature Version 2 (`Authorization: AWS ...` and
    /// `AWSAccessKeyId`/`Signature` presigned URLs). Off by default: SigV2
    /// signs no body and s3s checks no date on it, so a captured request can be
    /// replayed; when on, its `Date` must be within 15 minutes of the server's
    /// clock.
    pub allow_sigv2: bool,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// A validated sidecar configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the file was read from.
    pub file: PathBuf,
    /// S3 API address.
    pub listen: SocketAddr,
    /// Admin address (`/metrics`, `/healthz`, `/readyz`).
    pub admin: SocketAddr,
    /// Hosting policy file.
    pub policy: PathBuf,
    /// Tenants file (when `directory` is `None`).
    pub tenants: PathBuf,
    /// The PostgreSQL tenant directory, when `tenants` (or `tenants_env`)
    /// names one; the tenants file is then not read.
    pub directory: Option<DirectoryConfig>,
    /// Domains under which `<bucket>.<domain>` is virtual-hosted-style.
    pub virtual_host_domains: Vec<String>,
    /// Key that signs multipart upload ids (stable across restarts if set).
    pub upload_id_secret: Option<String>,
    /// Log format.
    pub log_format: LogFormat,
    /// Each region's backend, in file order.
    pub regions: Vec<(String, BackendConfig)>,
    /// Limits.
    pub limits: Limits,
    /// Audit trail.
    pub audit: AuditConfig,
    /// Client authentication.
    pub auth: AuthConfig,
    /// HTTPS on the S3 listener.
    pub tls: TlsConfig,
    /// Buckets shared by tenants, the tenant named by each request.
    pub shared_buckets: Vec<SharedBucket>,
    /// The bearer token the admin listener asks of `/metrics` (and of
    /// everything but `/healthz` and `/readyz`).
    pub admin_token: Option<String>,
}

fn err(
    file: &Path,
    source: &str,
    span: Option<std::ops::Range<usize>>,
    message: impl Into<String>,
) -> ConfigError {
    let (line, column) = match span {
        Some(s) => {
            let before = &source[..s.start.min(source.len())];
            let line = before.matches('\n').count() + 1;
            let col = before.len() - before.rfind('\n').map_or(0, |p| p + 1) + 1;
            (Some(line), Some(col))
        }
        None => (None, None),
    };
    ConfigError {
        file: file.display().to_string(),
        line,
        column,
        message: message.into(),
    }
}

fn env_or_inline(
    what: &str,
    inline: &Option<String>,
    env: &Option<String>,
    file: Option<&PathBuf>,
) -> Result<String, String> {
    match (inline, env, file) {
        (Some(v), None, None) => Ok(v.clone()),
        (None, Some(var), None) => {
            std::env::var(var).map_err(|_| format!("{what}: environment variable {var} is not set"))
        }
        (None, None, Some(p)) => std::fs::read_to_string(p)
            .map(|s| s.trim_end_matches(['\n', '\r']).to_string())
            .map_err(|e| format!("{what}: cannot read {}: {e}", p.display())),
        (None, None, None) => Err(format!("{what} is missing")),
        _ => Err(format!(
            "{what}: give exactly one of the inline, _env or _file forms"
        )),
    }
}

impl Config {
    /// Reads and validates a configuration file.
    ///
    /// # Errors
    /// Every problem found, each with its line.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let source = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![err(
                path,
                "",
                None,
                format!("cannot read the file: {e}"),
            )])
        })?;
        Self::parse(&source, path)
    }

    /// Parses a configuration held in memory (`path` names it in errors).
    ///
    /// # Errors
    /// Every problem found, each with its line.
    pub fn parse(source: &str, path: &Path) -> Result<Config, ConfigErrors> {
        let raw: RawConfig = toml::from_str(source).map_err(|e| {
            ConfigErrors(vec![err(
                path,
                source,
                e.span(),
                e.message().trim().to_string(),
            )])
        })?;
        let mut errors = Vec::new();
        let mut addr = |v: &Option<Spanned<String>>, default: &str, what: &str| -> SocketAddr {
            match v {
                None => default.parse().expect("default address"),
                Some(s) => s.get_ref().parse().unwrap_or_else(|_| {
                    errors.push(err(
                        path,
                        source,
                        Some(s.span()),
                        format!(
                            "{what} {:?} is not an address like 127.0.0.1:9000",
                            s.get_ref()
                        ),
                    ));
                    default.parse().expect("default address")
                }),
            }
        };
        let listen = addr(&raw.listen, "127.0.0.1:9000", "listen");
        let admin = addr(&raw.admin, "127.0.0.1:9001", "admin");
        let log_format = match raw.log_format.as_ref().map(|s| s.get_ref().as_str()) {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => {
                errors.push(err(
                    path,
                    source,
                    raw.log_format.as_ref().map(|s| s.span()),
                    format!("log_format must be \"text\" or \"json\", not {other:?}"),
                ));
                LogFormat::Text
            }
        };
        if raw.regions.is_empty() {
            errors.push(err(
                path,
                source,
                None,
                "no [regions.<id>] backends configured",
            ));
        }
        let mut regions = Vec::new();
        for (id, b) in &raw.regions {
            if let BackendConfig::S3 { bucket, .. } = b.get_ref() {
                if bucket.len() < 3 || bucket.len() > 63 {
                    errors.push(err(
                        path,
                        source,
                        Some(b.span()),
                        format!("region {id}: bucket {bucket:?} must be 3-63 characters"),
                    ));
                }
            }
            regions.push((id.clone(), b.get_ref().clone()));
        }
        for (span, message) in encryption::problems(&raw.regions) {
            errors.push(err(path, source, span, message));
        }
        let upload_id_secret = match (&raw.upload_id_secret, &raw.upload_id_secret_env) {
            (None, None) => None,
            (s, e) => match env_or_inline("upload_id_secret", s, e, None) {
                Ok(v) => Some(v),
                Err(m) => {
                    errors.push(err(path, source, None, m));
                    None
                }
            },
        };
        if listen == admin {
            errors.push(err(
                path,
                source,
                raw.admin.as_ref().map(|s| s.span()),
                "admin must differ from listen",
            ));
        }
        if raw.limits.max_concurrent_requests == 0 || raw.limits.per_region_concurrency == 0 {
            errors.push(err(path, source, None, "limits must be at least 1"));
        }
        if raw.limits.max_header_bytes < 8192 {
            errors.push(err(
                path,
                source,
                None,
                "limits.max_header_bytes must be at least 8192",
            ));
        }
        for m in raw.limits.problems() {
            errors.push(err(path, source, None, m));
        }
        if raw.limits.reload_max_tenant_drop_percent > 100 {
            errors.push(err(
                path,
                source,
                None,
                "limits.reload_max_tenant_drop_percent must be between 0 and 100",
            ));
        }
        if raw.audit.commit_timeout_ms == 0 {
            errors.push(err(
                path,
                source,
                None,
                "audit.commit_timeout_ms must be at least 1",
            ));
        } else if raw.audit.commit_window_ms >= raw.audit.commit_timeout_ms {
            errors.push(err(
                path,
                source,
                None,
                "audit.commit_window_ms must be below audit.commit_timeout_ms",
            ));
        }
        let mut tenants_path = PathBuf::from("config/tenants.example.toml");
        let mut directory = None;
        let tenants_value = match (&raw.tenants, &raw.tenants_env) {
            (Some(t), None) => Some(t.get_ref().clone()),
            (None, Some(var)) => match std::env::var(var.get_ref()) {
                Ok(v) if !v.trim().is_empty() => Some(v.trim().to_owned()),
                _ => {
                    errors.push(err(
                        path,
                        source,
                        Some(var.span()),
                        format!(
                            "tenants_env names {:?}, which is not set: set it to the directory's postgresql:// URL (or a tenants file)",
                            var.get_ref()
                        ),
                    ));
                    None
                }
            },
            (Some(t), Some(_)) => {
                errors.push(err(
                    path,
                    source,
                    Some(t.span()),
                    "give either tenants or tenants_env, not both",
                ));
                None
            }
            (None, None) => None,
        };
        match tenants_value {
            Some(v) if is_directory_url(&v) => {
                let d = &raw.directory;
                if d.max_staleness_secs == 0 {
                    errors.push(err(
                        path,
                        source,
                        None,
                        "directory.max_staleness_secs must be at least 1",
                    ));
                }
                directory = Some(DirectoryConfig {
                    url: v,
                    key_file: raw.directory_key_file.clone(),
                    max_staleness: Duration::from_secs(d.max_staleness_secs.max(1)),
                    cache_capacity: d.cache_capacity.max(1),
                    cache_ttl: Duration::from_secs(d.cache_ttl_secs.max(1)),
                    pool_size: d.pool_size.max(1),
                    connect_timeout: Duration::from_millis(d.connect_timeout_ms.max(1)),
                });
            }
            Some(v) => tenants_path = PathBuf::from(v),
            None => {}
        }
        let admin_token = match (&raw.admin_token_env, &raw.admin_token_file) {
            (None, None) => None,
            (e, f) => match env_or_inline("admin_token", &None, e, f.as_ref()) {
                Ok(t) if t.trim().is_empty() => {
                    errors.push(err(path, source, None, "admin_token is empty"));
                    None
                }
                Ok(t) => Some(t.trim().to_owned()),
                Err(m) => {
                    errors.push(err(path, source, None, m));
                    None
                }
            },
        };
        for m in raw.tls.problems(admin, admin_token.is_some()) {
            errors.push(err(path, source, None, m));
        }
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        Ok(Config {
            file: path.to_path_buf(),
            directory,
            listen,
            admin,
            policy: raw
                .policy
                .unwrap_or_else(|| "config/hosting-policy.toml".into()),
            tenants: tenants_path,
            virtual_host_domains: raw.virtual_host_domains,
            upload_id_secret,
            log_format,
            regions,
            limits: raw.limits,
            audit: raw.audit,
            auth: raw.auth,
            tls: raw.tls,
            shared_buckets: raw.shared_buckets,
            admin_token,
        })
    }

    /// Loads the policy and tenants files and checks them against this
    /// configuration: every policy region has a backend, and every tenant
    /// secret can be resolved.
    ///
    /// # Errors
    /// Every problem found in either file, or in how they fit together.
    /// With a PostgreSQL directory only the policy is read: the ruleset has
    /// no tenants and no [`FileDirectory`] is returned (the sidecar opens
    /// the directory once, [`Config::directory`]).
    pub fn load_rules(&self) -> Result<(Ruleset, Option<FileDirectory>), ConfigErrors> {
        let read = |p: &Path| {
            std::fs::read_to_string(p).map_err(|e| {
                ConfigErrors(vec![err(p, "", None, format!("cannot read the file: {e}"))])
            })
        };
        let policy_src = read(&self.policy)?;
        let policy =
            residency_policy::Policy::from_toml(&policy_src, &self.policy.display().to_string())?;
        let tenants = if self.directory.is_some() {
            Tenants::default()
        } else {
            let tenants_src = read(&self.tenants)?;
            Tenants::from_toml(&tenants_src, &self.tenants.display().to_string(), &policy)?
        };
        let mut errors = Vec::new();
        for (_, r) in policy.regions() {
            if !self.regions.iter().any(|(id, _)| id == r.id()) {
                errors.push(err(
                    &self.file,
                    "",
                    None,
                    format!(
                        "policy region {:?} has no backend: add [regions.{}]",
                        r.id(),
                        r.id()
                    ),
                ));
            }
        }
        for (id, _) in &self.regions {
            if policy.region_by_id(id).is_none() {
                errors.push(err(
                    &self.file,
                    "",
                    None,
                    format!(
                        "[regions.{id}] is not a region of the policy {}",
                        self.policy.display()
                    ),
                ));
            }
        }
        for p in shared::problems(
            &self.shared_buckets,
            &policy,
            self.directory.is_none().then_some(&tenants),
        ) {
            errors.push(err(&self.file, "", None, p));
        }
        let rules = Ruleset::new(policy, tenants);
        if self.directory.is_some() {
            return match errors.is_empty() {
                true => Ok((rules, None)),
                false => Err(ConfigErrors(errors)),
            };
        }
        // Each key's secret, or an error naming whose key it is.
        let directory = match FileDirectory::new(rules.tenants_shared().clone(), resolve_secret) {
            // The buckets tenants create, beside the tenants file (one
            // registry per file and process: a reload attaches it again).
            Ok(d) => match residency_directory::FileBuckets::beside(&self.tenants) {
                Ok(registry) => Some(d.with_buckets(registry)),
                Err(e) => {
                    errors.push(err(&self.tenants, "", None, format!("bucket registry {e}")));
                    None
                }
            },
            Err(problems) => {
                errors.extend(
                    problems
                        .into_iter()
                        .map(|m| err(&self.tenants, "", None, m)),
                );
                None
            }
        };
        match directory {
            Some(directory) if errors.is_empty() => Ok((rules, Some(directory))),
            _ => Err(ConfigErrors(errors)),
        }
    }

    /// Opens each region's backend.
    ///
    /// # Errors
    /// A directory that cannot be created, missing S3 credentials.
    pub async fn open_backends(&self) -> Result<Vec<(String, Arc<dyn Backend>)>, ConfigErrors> {
        let mut out = Vec::new();
        let mut errors = Vec::new();
        for (id, b) in &self.regions {
            match b {
                BackendConfig::Dir { path } => match DirBackend::open(path.clone()).await {
                    Ok(d) => out.push((id.clone(), Arc::new(d) as Arc<dyn Backend>)),
                    Err(e) => errors.push(err(
                        &self.file,
                        "",
                        None,
                        format!("region {id}: directory {}: {e}", path.display()),
                    )),
                },
                BackendConfig::Null => {
                    tracing::warn!(region = %id, "null backend: writes are discarded (benchmarks only)");
                    out.push((
                        id.clone(),
                        Arc::new(NullBackend::new(id.clone())) as Arc<dyn Backend>,
                    ));
                }
                BackendConfig::S3 {
                    endpoint,
                    bucket,
                    region,
                    access_key,
                    access_key_env,
                    secret_key,
                    secret_key_env,
                    secret_key_file,
                    force_path_style,
                    timeout_secs,
                    connect_timeout_secs,
                    stall_timeout_secs,
                    max_attempts,
                    fast_path,
                    sse_c,
                    sse_s3,
                    kms_key_ids,
                    ..
                } => {
                    let ak = env_or_inline(
                        &format!("region {id}: access_key"),
                        access_key,
                        access_key_env,
                        None,
                    );
                    let sk = env_or_inline(
                        &format!("region {id}: secret_key"),
                        secret_key,
                        secret_key_env,
                        secret_key_file.as_ref(),
                    );
                    let (ak, sk) = match (ak, sk) {
                        (Ok(a), Ok(s)) => (a, s),
                        (a, s) => {
                            for m in [a.err(), s.err()].into_iter().flatten() {
                                errors.push(err(&self.file, "", None, m));
                            }
                            continue;
                        }
                    };
                    let mut builder = S3BackendConfig::builder(bucket.clone(), region.clone())
                        .credentials(ak, sk)
                        .force_path_style(*force_path_style)
                        .operation_timeout(Duration::from_secs(timeout_secs.unwrap_or(30)))
                        .connect_timeout(Duration::from_secs(connect_timeout_secs.unwrap_or(5)))
                        .stall_timeout(Duration::from_secs(stall_timeout_secs.unwrap_or(30)))
                        .max_attempts(max_attempts.unwrap_or(2))
                        .fast_path(*fast_path)
                        .sse(residency_store::SseSupport {
                            customer: *sse_c,
                            s3: *sse_s3,
                            kms_key_ids: kms_key_ids.clone(),
                        });
                    if let Some(e) = endpoint {
                        builder = builder.endpoint(e.clone());
                    }
                    match builder.build().and_then(S3Backend::new) {
                        Ok(s) => out.push((id.clone(), Arc::new(s) as Arc<dyn Backend>)),
                        Err(e) => {
                            errors.push(err(&self.file, "", None, format!("region {id}: {e}")))
                        }
                    }
                }
            }
        }
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(ConfigErrors(errors))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::check_tenant_drop;
    use residency_policy::{Policy, Tenants};

    #[test]
    fn a_reload_may_not_drop_every_tenant_or_more_than_the_share() {
        let policy = Policy::from_toml(
            include_str!("../../../config/hosting-policy.toml"),
            "hosting-policy.toml",
        )
        .expect("policy");
        let t = |ids: &[&str]| {
            let src: String = ids
                .iter()
                .map(|id| format!("[[tenants]]\nid = {id:?}\n"))
                .collect();
            Tenants::from_toml(&src, "t.toml", &policy).expect("tenants")
        };
        let four = t(&["aaa", "bbb", "ccc", "ddd"]);
        assert!(
            check_tenant_drop(&four, &t(&[]), 100).is_err(),
            "every tenant"
        );
        assert!(
            check_tenant_drop(&four, &t(&["aaa", "bbb"]), 50).is_ok(),
            "half"
        );
        let e = check_tenant_drop(&four, &t(&["aaa"]), 50).unwrap_err();
        assert!(e.contains("drop 3 of the 4"), "{e}");
        assert!(check_tenant_drop(&four, &t(&["aaa"]), 75).is_ok());
        assert!(
            check_tenant_drop(&t(&[]), &t(&[]), 50).is_ok(),
            "nothing to drop"
        );
    }
}

#[cfg(test)]
mod audit_config_tests {
    use super::*;
    use residency_tower::audit::batch::AuditMode;

    fn parse(audit: &str) -> Result<Config, ConfigErrors> {
        let source = format!(
            "policy = \"p.toml\"\ntenants = \"t.toml\"\n[regions.eu]\nkind = \"dir\"\npath = \"d\"\n\n[audit]\n{audit}\n"
        );
        Config::parse(&source, Path::new("residency.toml"))
    }

    #[test]
    fn durable_is_the_default_mode() {
        let c = parse("").expect("valid");
        assert_eq!(c.audit.mode, AuditMode::Durable);
        assert_eq!(c.audit.commit_timeout_ms, 5000);
        assert_eq!(c.audit.commit_window_ms, 0);
        let c = parse("mode = \"batched\"").expect("valid");
        assert_eq!(c.audit.mode, AuditMode::Batched);
    }

    #[test]
    fn bad_audit_settings_are_refused() {
        for bad in [
            "mode = \"sometimes\"",
            "commit_timeout_ms = 0",
            "commit_window_ms = 5000",
        ] {
            let e = parse(bad).expect_err(bad).to_string();
            assert!(e.contains("durable") || e.contains("commit_"), "{bad}: {e}");
        }
    }
}
