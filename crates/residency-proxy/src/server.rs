//! `residency serve`: the S3 listener, the admin listener, hot reload and
//! graceful shutdown.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use hyper_util::server::graceful::GracefulShutdown;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use residency_policy::{ConfigErrors, SecretRef};
use residency_store::Backend;
use residency_tower::audit::batch::BatchingAuditSink;
use residency_tower::{AuditSink, RegionalDispatch, RoutingLayer, RulesetHandle, UploadIdCodec};
use s3s::host::{S3Host, VirtualHost};
use s3s::service::{S3Service, S3ServiceBuilder};
use s3s::{S3ErrorCode, S3Result};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tower::Layer;

use crate::accept::{first_bytes, Acceptor};
use crate::auth::{TenantAccess, TenantAuth};
use crate::client_body::{BodyLimits, ClientBody, ClientTimeout};
use crate::config::{BackendConfig, Config, LogFormat};
use crate::error;
use crate::gate::RequestGate;
use crate::host::without_port;
use crate::range::{self, RangeFix};
use crate::s3::gateway;
use residency_directory::Directory;

mod admin;
mod refusals;

use admin::admin_response;
use refusals::{check_form, check_size, request_timeout, FORM_FIELDS_CAP};

/// Why the sidecar did not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A configuration file is invalid (exit code 2).
    #[error("{0}")]
    Config(#[from] ConfigErrors),
    /// A regional bucket is not where the policy says it must be (exit code 2).
    #[error("{0}")]
    Location(String),
    /// Could not listen or serve.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The tenant directory could not be opened (no key, database
    /// unreachable at start): exit code 2, nothing served.
    #[error("tenant directory {url}: {message}")]
    Directory {
        /// The directory's URL, without its password.
        url: String,
        /// Why.
        message: String,
    },
}

/// Options from the command line.
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    /// Start even if a bucket reports a location outside its region.
    pub allow_location_mismatch: bool,
    /// S3 listeners, one per serving thread (`SO_REUSEPORT`); 0 or 1 for
    /// one listener on the caller's runtime.
    pub cores: usize,
}

/// Resolves `<bucket>.<domain>` (virtual-hosted style) for the configured
/// domains, whatever port the `Host` header carries; anything else is path
/// style.
struct Hosts(Vec<String>);

impl S3Host for Hosts {
    fn parse_host_header<'a>(&'a self, host: &'a str) -> S3Result<VirtualHost<'a>> {
        let host = without_port(host);
        for d in &self.0 {
            if host == d {
                return Ok(VirtualHost::new(host));
            }
            if let Some(bucket) = host
                .strip_suffix(d.as_str())
                .and_then(|h| h.strip_suffix('.'))
            {
                return Ok(VirtualHost::new(d.as_str()).with_bucket(bucket));
            }
        }
        Ok(VirtualHost::new(host))
    }
}

/// A running sidecar's shared state.
pub struct Sidecar {
    config: Config,
    rules: RulesetHandle,
    backends: Vec<(String, Arc<dyn Backend>)>,
    s3: S3Service,
    prometheus: Option<PrometheusHandle>,
    audit: Option<Arc<BatchingAuditSink>>,
    /// Wakes the migrations check after a successful reload (a switch or a
    /// finish shows at once, not within a minute).
    reloaded: Arc<tokio::sync::Notify>,
}

/// The filter the sidecar logs with: `RESIDENCY_LOG` (an `EnvFilter`
/// spec; default `info,s3s=warn,aws=warn,hyper=warn`), except that `s3s` and
/// `aws_sigv4` never log below `info`: at debug level they print each
/// request's `Authorization` header and presigned query, and, on a signature
/// mismatch, the signature the request should have carried, which is a valid
/// signature for it.
pub fn log_filter() -> tracing_subscriber::EnvFilter {
    use tracing_subscriber::EnvFilter;
    let mut filter = EnvFilter::try_from_env("RESIDENCY_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,s3s=warn,aws=warn,hyper=warn"));
    let verbose = filter
        .max_level_hint()
        .is_none_or(|l| l > tracing_subscriber::filter::LevelFilter::INFO);
    if verbose {
        for cap in ["s3s=info", "aws_sigv4=info"] {
            if let Ok(d) = cap.parse() {
                filter = filter.add_directive(d);
            }
        }
    }
    filter
}

fn init_logging(format: LogFormat) {
    let filter = log_filter();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Checks each S3 bucket's location against its region's declared locations.
async fn check_locations(
    config: &Config,
    rules: &residency_policy::Ruleset,
    backends: &[(String, Arc<dyn Backend>)],
    allow: bool,
) -> Result<(), ServeError> {
    let mut problems = Vec::new();
    for ((id, cfg), (_, backend)) in config.regions.iter().zip(backends) {
        let BackendConfig::S3 {
            bucket,
            skip_location_check,
            ..
        } = cfg
        else {
            continue;
        };
        if *skip_location_check {
            tracing::warn!(region = %id, "location check skipped by configuration");
            continue;
        }
        let Some(rid) = rules.policy().region_by_id(id) else {
            continue;
        };
        // The policy's regions only declare locations whose country is a
        // member of their jurisdiction (checked when it loads), and the
        // reported location must be one of them.
        match backend.location().await {
            Ok(Some(loc)) => match rules.policy().check_location(rid, &loc) {
                Ok(()) => {
                    tracing::info!(region = %id, bucket = %bucket, location = %loc, "bucket location matches its region");
                }
                Err(why) => problems.push(format!(
                    "region {id}: bucket {bucket} reports {why}: refusing to store {id} data there"
                )),
            },
            Ok(None) => problems.push(format!(
                "region {id}: bucket {bucket} did not report a location"
            )),
            Err(e) => problems.push(format!(
                "region {id}: cannot ask bucket {bucket} its location: {e}"
            )),
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    let msg = problems.join("\n");
    if allow {
        tracing::warn!("{msg}\n(starting anyway: --allow-location-mismatch)");
        Ok(())
    } else {
        Err(ServeError::Location(format!("{msg}\nfix the bucket or the policy's region locations, or pass --allow-location-mismatch")))
    }
}

impl Sidecar {
    /// Loads everything and builds the service; nothing listens yet.
    ///
    /// # Errors
    /// An invalid configuration, a bucket in the wrong location.
    pub async fn build(config_path: &Path, opts: &ServeOptions) -> Result<Sidecar, ServeError> {
        let config = Config::load(config_path)?;
        init_logging(config.log_format);
        let (rules, directory) = config.load_rules()?;
        let backends = config.open_backends().await?;
        check_locations(&config, &rules, &backends, opts.allow_location_mismatch).await?;
        let codec = match &config.upload_id_secret {
            Some(s) => UploadIdCodec::new(s.as_bytes().to_vec()),
            None => {
                tracing::info!("upload_id_secret not set: multipart uploads in progress do not survive a restart");
                UploadIdCodec::random()
            }
        };
        // Installed before the dispatch is built, so that the circuit gauges
        // it sets up are recorded.
        let prometheus = PrometheusBuilder::new()
            .set_buckets(&[
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ])
            // Records per batch is a count, not seconds.
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full(residency_tower::audit::batch::AUDIT_BATCH_EVENTS.to_string()),
                    &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0],
                )
            })
            .ok()
            .and_then(|b| b.install_recorder().ok());
        let mut dispatch = RegionalDispatch::builder()
            .concurrency_per_region(config.limits.per_region_concurrency)
            .tenant_share(config.limits.per_tenant_region_share)
            .circuit_breaker(
                config.limits.circuit_failures,
                Duration::from_millis(config.limits.circuit_cooldown_ms),
            )
            .upload_response_timeout(Duration::from_secs(
                config.limits.upload_response_timeout_secs.max(1),
            ))
            .upload_ids(codec.clone());
        for (id, b) in &backends {
            tracing::info!(region = %id, backend = %b.describe(), "region backend");
            dispatch = dispatch.region(id.clone(), b.clone());
        }
        let directory: Arc<dyn Directory> = match (directory, &config.directory) {
            (Some(file), _) => Arc::new(file),
            (None, Some(d)) => {
                let failed = |message: String| ServeError::Directory {
                    url: d.redacted_url(),
                    message,
                };
                let pg = d.open(true).await.map_err(failed)?;
                tracing::info!(directory = %d.redacted_url(), max_staleness_secs = d.max_staleness.as_secs(), "tenant directory: PostgreSQL");
                pg
            }
            (None, None) => unreachable!("load_rules gives a file directory without [directory]"),
        };
        let handle = RulesetHandle::with_directory(rules, directory);
        let audit: Option<Arc<BatchingAuditSink>> = if config.audit.enabled {
            Some(crate::audit_sink(&config, &backends))
        } else {
            None
        };
        let mut layer = RoutingLayer::new(handle.clone()).upload_ids(codec);
        if let Some(a) = &audit {
            let shared: Arc<dyn AuditSink> = a.clone();
            layer = layer.audit_shared(shared);
        }
        let stack = layer.layer(dispatch.build());
        let shared = Arc::new(crate::s3::shared::SharedBuckets::new(
            &config.shared_buckets,
        ));
        let mut builder = S3ServiceBuilder::new(gateway(
            handle.clone(),
            stack,
            config.limits.max_object_bytes,
            shared.clone(),
        ));
        // Form uploads: the fields before the file are capped, and the file
        // by the object size limit whatever its framing (s3s holds it whole).
        let mut s3s_config = s3s::config::S3Config::default();
        s3s_config.post_object_max_file_size = config.limits.max_object_bytes;
        s3s_config.form_max_fields_size = FORM_FIELDS_CAP;
        s3s_config.form_max_field_size = FORM_FIELDS_CAP;
        builder.set_config(Arc::new(s3s::config::StaticConfigProvider::new(Arc::new(
            s3s_config,
        ))));
        builder.set_auth(TenantAuth {
            rules: handle.clone(),
        });
        builder.set_access(TenantAccess {
            rules: handle.clone(),
            allow_sigv2: config.auth.allow_sigv2,
            shared,
        });
        builder.set_host(Hosts(config.virtual_host_domains.clone()));
        Ok(Sidecar {
            config,
            rules: handle,
            backends,
            s3: builder.build(),
            prometheus,
            audit,
            reloaded: Arc::new(tokio::sync::Notify::new()),
        })
    }

    /// Re-reads the policy and tenants files; a bad file, one that would
    /// drop every tenant or more than `limits.reload_max_tenant_drop_percent`
    /// of them, or one that changes a tenant's locality without a migration
    /// (`residency_policy::unrecorded_switches`), is reported and the old
    /// configuration keeps serving.
    pub fn reload(&self) -> bool {
        let loaded = self
            .config
            .load_rules()
            .map_err(|e| e.to_string())
            .and_then(|loaded| {
                // The PostgreSQL directory guards its own rows (constraints,
                // `residency tenants`); only a tenants file is compared.
                if loaded.1.is_none() {
                    return Ok(loaded);
                }
                let now = self.rules.load();
                crate::config::check_tenant_drop(
                    now.tenants(),
                    loaded.0.tenants(),
                    self.config.limits.reload_max_tenant_drop_percent,
                )?;
                // A tenant's locality changes only through `residency migrate`.
                residency_policy::refuse_unrecorded_switches(
                    now.policy(),
                    now.tenants(),
                    loaded.0.policy(),
                    loaded.0.tenants(),
                )?;
                Ok(loaded)
            });
        match loaded {
            Ok((rules, directory)) => {
                let version = rules.policy().version().to_string();
                let tenants = rules.tenants().len();
                match directory {
                    Some(file) => self.rules.store_with(rules, Arc::new(file)),
                    // The PostgreSQL directory stays; its tenants are
                    // validated again under the new policy as they are used.
                    None => self.rules.store(rules),
                }
                metrics::counter!("residency_reload_total", "result" => "ok").increment(1);
                tracing::info!(policy_version = %version, tenants, "configuration reloaded");
                self.reloaded.notify_one();
                true
            }
            Err(e) => {
                metrics::counter!("residency_reload_total", "result" => "error").increment(1);
                tracing::error!(
                    "configuration reload failed; the previous configuration keeps serving:\n{e}"
                );
                false
            }
        }
    }

    fn example(&self) -> Option<String> {
        let rules = self.rules.load();
        let (_, t) = rules.tenants().iter().find(|(_, t)| {
            t.keys()
                .iter()
                .any(|k| matches!(k.secret, SecretRef::Inline(_)))
        })?;
        let k = t
            .keys()
            .iter()
            .find(|k| matches!(k.secret, SecretRef::Inline(_)))?;
        let SecretRef::Inline(secret) = &k.secret else {
            return None;
        };
        Some(format!(
            "AWS_ACCESS_KEY_ID={} AWS_SECRET_ACCESS_KEY={} AWS_DEFAULT_REGION=us-east-1 \\\n  aws --endpoint-url http://{} s3 cp README.md s3://{}/tickets/1/readme.md",
            k.access_key,
            secret,
            self.config.listen,
            t.bucket()
        ))
    }
}

fn mtimes(paths: &[PathBuf]) -> Vec<Option<SystemTime>> {
    paths
        .iter()
        .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .collect()
}

/// Runs the sidecar until SIGTERM or SIGINT.
///
/// # Errors
/// See [`ServeError`].
pub async fn serve(config_path: &Path, opts: ServeOptions) -> Result<(), ServeError> {
    let sidecar = Arc::new(Sidecar::build(config_path, &opts).await?);
    let mut listeners = bind_s3(sidecar.config.listen, opts.cores)?.into_iter();
    let first = TcpListener::from_std(listeners.next().expect("at least one listener"))?;
    let admin_listener = TcpListener::bind(sidecar.config.admin).await?;
    serve_cores(sidecar, first, listeners.collect(), admin_listener).await
}

/// Binds the S3 address once, or, for more than one core, once per core with
/// `SO_REUSEPORT` (the kernel spreads new connections over the listeners).
/// A plain bind first: an address some other process listens on (an older
/// sidecar, say) is refused as in use, never shared.
fn bind_s3(addr: SocketAddr, cores: usize) -> std::io::Result<Vec<std::net::TcpListener>> {
    let probe = std::net::TcpListener::bind(addr)?;
    if cores <= 1 {
        probe.set_nonblocking(true)?;
        return Ok(vec![probe]);
    }
    // Port 0: every core listens on the port the probe was given.
    let addr = probe.local_addr()?;
    drop(probe);
    (0..cores)
        .map(|_| {
            use socket2::{Domain, Protocol, Socket, Type};
            let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
            s.set_reuse_address(true)?;
            s.set_reuse_port(true)?;
            s.set_nonblocking(true)?;
            s.bind(&addr.into())?;
            s.listen(1024)?;
            Ok(s.into())
        })
        .collect()
}

/// Serves on listeners already bound (tests bind port 0), all on the
/// caller's runtime.
///
/// # Errors
/// Listener failures.
pub async fn run(
    sidecar: Arc<Sidecar>,
    s3_listener: TcpListener,
    admin_listener: TcpListener,
) -> Result<(), ServeError> {
    serve_cores(sidecar, s3_listener, Vec::new(), admin_listener).await
}

/// [`run`], with `more` listeners on the same address, each served by a
/// thread of its own with a current-thread runtime: a connection, its
/// requests and their outbound calls then stay on one thread. The request
/// and connection bounds, the tenant shares and the audit log are shared by
/// every thread.
async fn serve_cores(
    sidecar: Arc<Sidecar>,
    s3_listener: TcpListener,
    more: Vec<std::net::TcpListener>,
    admin_listener: TcpListener,
) -> Result<(), ServeError> {
    let s3_addr: SocketAddr = s3_listener.local_addr()?;
    let admin_addr: SocketAddr = admin_listener.local_addr()?;
    let (stop_tx, stop_rx) = watch::channel(false);

    // Signals: SIGTERM/SIGINT stop; SIGHUP reloads.
    {
        let sidecar = sidecar.clone();
        tokio::spawn(async move {
            use tokio::signal::unix::{signal, SignalKind};
            let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
                signal(SignalKind::hangup()),
            ) else {
                tracing::error!("cannot install signal handlers");
                return;
            };
            loop {
                tokio::select! {
                    _ = term.recv() => { tracing::info!("SIGTERM: shutting down"); break; }
                    _ = int.recv() => { tracing::info!("SIGINT: shutting down"); break; }
                    _ = hup.recv() => { tracing::info!("SIGHUP: reloading"); sidecar.reload(); }
                }
            }
            let _ = stop_tx.send(true);
        });
    }
    // Migrations past their assurance window (a gauge).
    crate::migrations::spawn(
        crate::migrations::Watched {
            rules: sidecar.rules.clone(),
            backends: sidecar.backends.clone(),
            reloaded: sidecar.reloaded.clone(),
        },
        stop_rx.clone(),
    );
    // Reload on file change (polled: works on every filesystem).
    {
        let sidecar = sidecar.clone();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let files = vec![
                sidecar.config.policy.clone(),
                sidecar.config.tenants.clone(),
            ];
            let mut last = mtimes(&files);
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                    _ = stop.changed() => break,
                }
                let now = mtimes(&files);
                if now != last {
                    last = now;
                    tracing::info!("policy or tenants file changed: reloading");
                    sidecar.reload();
                }
            }
        });
    }
    // Admin listener.
    {
        let sidecar = sidecar.clone();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let mut acceptor = Acceptor::new(admin_listener, "admin", None);
            loop {
                let (stream, _, _open) = tokio::select! {
                    c = acceptor.accept() => c,
                    _ = stop.changed() => break,
                };
                let sidecar = sidecar.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let sidecar = sidecar.clone();
                        async move { Ok::<_, Infallible>(admin_response(&sidecar, &req).await) }
                    });
                    let _ = ConnBuilder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
    }

    let tenants = match &sidecar.config.directory {
        Some(d) => d.redacted_url(),
        None => sidecar.config.tenants.display().to_string(),
    };
    tracing::info!(s3 = %s3_addr, admin = %admin_addr, serving_threads = more.len() + 1, policy = %sidecar.config.policy.display(), tenants = %tenants, "residency sidecar ready");
    let scheme = if sidecar.config.tls.files().is_some() {
        "https"
    } else {
        "http"
    };
    println!("residency: serving S3 on {scheme}://{s3_addr} (admin: http://{admin_addr}/metrics /healthz /readyz)");
    if let Some(ex) = sidecar.example() {
        println!("try:\n  {ex}");
    }

    // HTTPS: the certificate, watched for renewals.
    let certificates = match sidecar.config.tls.files() {
        Some((cert, key)) => Some(
            crate::tls::Certificates::new(cert, key)
                .map_err(|e| ServeError::Io(std::io::Error::other(e)))?,
        ),
        None => None,
    };
    let _watch = certificates
        .as_ref()
        .map(|c| c.watch(Duration::from_secs(sidecar.config.tls.reload_secs)));
    let limits = &sidecar.config.limits;
    let serving = Arc::new(Serving {
        s3: sidecar.s3.clone(),
        limit: Arc::new(Semaphore::new(limits.max_concurrent_requests)),
        rules: sidecar.rules.clone(),
        domains: sidecar.config.virtual_host_domains.clone().into(),
        gate: RequestGate {
            allow_sigv2: sidecar.config.auth.allow_sigv2,
        },
        header_timeout: Duration::from_secs(limits.header_read_timeout_secs),
        // hyper refuses a buffer under 8 KiB (the config check says so too).
        max_header_bytes: limits.max_header_bytes.max(8192),
        max_object_bytes: limits.max_object_bytes,
        body_limits: BodyLimits {
            idle: Duration::from_secs(limits.client_body_idle_secs),
            min_rate: limits.client_min_bytes_per_sec,
        },
        certificates,
        grace: Duration::from_secs(limits.shutdown_grace_secs),
    });
    // One bound on open connections for every core's listener.
    let open = Acceptor::bound(Some(limits.max_connections));
    let mut cores = Vec::with_capacity(more.len());
    for (i, listener) in more.into_iter().enumerate() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (serving, open, stop) = (serving.clone(), open.clone(), stop_rx.clone());
        let (done, finished) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name(format!("serve-core-{}", i + 1))
            .spawn(move || {
                runtime.block_on(async move {
                    match TcpListener::from_std(listener) {
                        Ok(l) => serve_listener(serving, Acceptor::new(l, "s3", open), stop).await,
                        Err(e) => tracing::error!(error = %e, "a serving thread cannot listen"),
                    }
                });
                let _ = done.send(());
            })?;
        cores.push(finished);
    }
    serve_listener(serving, Acceptor::new(s3_listener, "s3", open), stop_rx).await;
    for finished in cores {
        if finished.await.is_err() {
            tracing::error!("a serving thread ended abnormally");
        }
    }
    if let Some(a) = &sidecar.audit {
        crate::flush_audit(a).await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// What serving a connection needs; one for every core.
struct Serving {
    s3: S3Service,
    limit: Arc<Semaphore>,
    rules: RulesetHandle,
    domains: Arc<[String]>,
    gate: RequestGate,
    header_timeout: Duration,
    max_header_bytes: usize,
    max_object_bytes: u64,
    body_limits: BodyLimits,
    certificates: Option<Arc<crate::tls::Certificates>>,
    grace: Duration,
}

/// Accepts on one listener, each connection served on this thread's
/// runtime, until `stop`; then waits up to the grace period for the requests
/// in flight.
async fn serve_listener(
    serving: Arc<Serving>,
    mut acceptor: Acceptor,
    mut stop: watch::Receiver<bool>,
) {
    let graceful = GracefulShutdown::new();
    loop {
        let (stream, peer, open) = tokio::select! {
            c = acceptor.accept() => c,
            _ = stop.changed() => break,
        };
        serving.connection(stream, peer, open, graceful.watcher());
    }
    drop(acceptor);
    tracing::info!(
        grace_secs = serving.grace.as_secs(),
        "no longer accepting; waiting for in-flight requests"
    );
    if tokio::time::timeout(serving.grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("in-flight requests did not finish within the grace period");
    }
}

impl Serving {
    /// Serves one connection in a task of its own.
    fn connection(
        self: &Arc<Self>,
        stream: tokio::net::TcpStream,
        peer: SocketAddr,
        open: crate::accept::OpenConnection,
        watcher: hyper_util::server::graceful::Watcher,
    ) {
        let _ = stream.set_nodelay(true);
        let this = self.clone();
        let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
            let this = this.clone();
            async move { this.request(req).await }
        });
        let header_timeout = self.header_timeout;
        let mut builder = ConnBuilder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout)
            .max_buf_size(self.max_header_bytes);
        // An HTTP/2 peer that stops answering pings is closed.
        builder
            .http2()
            .timer(TokioTimer::new())
            .keep_alive_interval(Some(header_timeout))
            .keep_alive_timeout(header_timeout)
            .max_header_list_size(self.max_header_bytes as u32);
        let tls = self.certificates.as_ref().map(|c| c.acceptor());
        tokio::spawn(async move {
            let _open = open;
            let result = match tls {
                // The handshake has the header-read timeout.
                Some(tls) => match tokio::time::timeout(header_timeout, tls.accept(stream)).await {
                    Ok(Ok(stream)) => {
                        let conn = builder
                            .serve_connection(TokioIo::new(stream), svc)
                            .into_owned();
                        watcher.watch(conn).await
                    }
                    Ok(Err(e)) => {
                        metrics::counter!("residency_rejected_total", "reason" => "tls_handshake")
                            .increment(1);
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        metrics::counter!("residency_rejected_total", "reason" => "no_request")
                            .increment(1);
                        return;
                    }
                },
                None => {
                    // Nothing counts until the client has said which
                    // protocol it speaks: a connection that sends nothing
                    // is closed.
                    if !first_bytes(&stream, header_timeout).await {
                        metrics::counter!("residency_rejected_total", "reason" => "no_request")
                            .increment(1);
                        return;
                    }
                    let conn = builder
                        .serve_connection(TokioIo::new(stream), svc)
                        .into_owned();
                    watcher.watch(conn).await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }

    /// One request: CORS, the head checks, the request bound, then s3s.
    async fn request(
        &self,
        req: http::Request<hyper::body::Incoming>,
    ) -> Result<http::Response<s3s::Body>, s3s::HttpError> {
        // CORS: a preflight is answered here (browsers send it unsigned,
        // before any access check); a request with `Origin` gets the headers
        // its bucket's rule gives. Only a request with `Origin` has CORS to
        // decide.
        let extra = if req.headers().contains_key(http::header::ORIGIN) {
            match crate::s3::cors::decide(&self.rules, &self.domains, &req).await {
                crate::s3::cors::Decision::Preflight(resp) => return Ok(resp),
                crate::s3::cors::Decision::Decorate(h) => Some(h),
                crate::s3::cors::Decision::Nothing => None,
            }
        } else {
            None
        };
        let resp = self.checked(req).await;
        match extra {
            Some(h) => resp.map(|mut r| {
                r.headers_mut().extend(h);
                r
            }),
            None => resp,
        }
    }

    /// The head checks (signature version, size), the request bound, the
    /// body's limits, then s3s.
    async fn checked(
        &self,
        req: http::Request<hyper::body::Incoming>,
    ) -> Result<http::Response<s3s::Body>, s3s::HttpError> {
        let s3 = &self.s3;
        // A request refused before its body was read leaves that body on the
        // connection; whatever the client sends of it would be read as the
        // start of its next request (seen as a rare SignatureDoesNotMatch on
        // the request after a denial). Such a connection is closed after the
        // error response.
        let has_body = req
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0")
            || req.headers().contains_key(http::header::TRANSFER_ENCODING);
        let close = |mut resp: http::Response<s3s::Body>| {
            if has_body && !resp.status().is_success() {
                resp.headers_mut().insert(
                    http::header::CONNECTION,
                    http::HeaderValue::from_static("close"),
                );
            }
            resp
        };
        if let Err(r) = self.gate.check(req.uri(), req.headers()) {
            metrics::counter!("residency_rejected_total", "reason" => "authentication")
                .increment(1);
            return Ok(close(error::response(
                error::code(r.code),
                &r.message,
                r.status,
            )));
        }
        if let Some(refused) = check_size(&req, self.max_object_bytes) {
            return Ok(close(refused));
        }
        let Ok(_permit) = self.limit.try_acquire() else {
            metrics::counter!("residency_shed_total").increment(1);
            return Ok(close(error::response(
                S3ErrorCode::SlowDown,
                "Please reduce your request rate.",
                http::StatusCode::SERVICE_UNAVAILABLE,
            )));
        };
        if !has_body {
            let fix = match *req.method() {
                http::Method::GET | http::Method::HEAD => {
                    req.headers().get(http::header::RANGE).map(range::fix)
                }
                _ => None,
            };
            return match fix {
                None | Some(RangeFix::Keep) => s3.call(req.map(s3s::Body::from)).await.map(close),
                Some(fix) => range::serve_fixed(s3, req, fix).await.map(close),
            };
        }
        let timed_out = ClientTimeout::default();
        let (parts, body) = req.into_parts();
        let mut body = ClientBody::new(body, self.body_limits, timed_out.clone());
        if let Some(refused) = check_form(&parts, &mut body).await {
            return Ok(close(if timed_out.fired() {
                request_timeout()
            } else {
                refused
            }));
        }
        let resp = s3
            .call(http::Request::from_parts(parts, s3s::Body::http_body(body)))
            .await;
        if timed_out.fired() {
            return Ok(close(request_timeout()));
        }
        resp.map(close)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_hosts_match_whatever_the_port() {
        let hosts = Hosts(vec!["s3.localhost".into()]);
        for (host, bucket) in [
            ("acme.s3.localhost", Some("acme")),
            ("acme.s3.localhost:9000", Some("acme")),
            ("s3.localhost:9000", None),
            ("127.0.0.1:9000", None),
            ("[::1]:9000", None),
            ("[::1]", None),
        ] {
            let vh = hosts.parse_host_header(host).unwrap();
            assert_eq!(vh.bucket(), bucket, "{host}");
        }
        assert_eq!(without_port("[::1]:9000"), "[::1]");
        assert_eq!(without_port("[::1]"), "[::1]");
        assert_eq!(without_port("a.s3.localhost:80"), "a.s3.localhost");
        assert_eq!(without_port("a.s3.localhost"), "a.s3.localhost");
    }
}
