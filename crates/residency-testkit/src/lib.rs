//! Real Garage S3 servers on 127.0.0.1 for Residency's tests.
//!
//! [`GarageCluster::start`] starts two single-node [Garage](https://garagehq.deuxfleurs.fr/)
//! instances, one standing for each region:
//!
//! | region id | signing region (`s3_region`) | bucket         |
//! |-----------|------------------------------|----------------|
//! | `eu`      | `eu-west-1`                  | `residency-eu` |
//! | `us`      | `us-east-1`                  | `residency-us` |
//!
//! Each instance lives in its own temporary directory, listens on its own free
//! ports and accepts one fixed access key (different per region). Requests must be
//! signed for the instance's region, as with AWS. The API is blocking and needs no
//! async runtime, so it works from plain `#[test]`s and from inside
//! `#[tokio::test]` alike (startup takes well under a second per instance).
//!
//! The fault helpers ([`GarageCluster::stop_region`], [`GarageCluster::pause_region`],
//! [`GarageCluster::resume_region`], [`GarageCluster::restart_region`]) act on one
//! region's process and keep its data and ports. Dropping the cluster kills every
//! process and removes the temporary directories (set `RESIDENCY_TESTKIT_KEEP_DIRS=1`
//! to keep them for a post-mortem). A cluster in a `static` is never dropped: its
//! directory is removed by the next cluster started after its process ended. Metadata is kept in SQLite; set
//! `RESIDENCY_TESTKIT_DB_ENGINE=lmdb` for Garage's LMDB engine instead (the load
//! benchmark does: under long concurrent 64 MiB PUTs Garage 2.5 on SQLite was seen
//! to stop reading request bodies for good). When `setpriv` (util-linux) is available the
//! servers are also killed if the test process itself dies without unwinding.
//!
//! The `garage` binary is found through `GARAGE_BIN`, then `garage` on the `PATH`,
//! then `$RESIDENCY_TOOLS/bin/garage` (`RESIDENCY_TOOLS` defaults to
//! `$HOME/.cache/residency-tools`, where `scripts/test.sh` installs it).
//!
//! ```no_run
//! let cluster = residency_testkit::GarageCluster::start().unwrap();
//! let eu = cluster.eu();
//! println!("{} signs for {} into bucket {}", eu.endpoint, eu.region, eu.bucket);
//! ```

mod postgres;

pub use postgres::PostgresCluster;

use std::collections::hash_map::RandomState;
use std::fmt;
use std::fs::{self, File};
use std::hash::BuildHasher;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Signing region (`s3_region`) of the `eu` instance.
pub const EU_SIGNING_REGION: &str = "eu-west-1";
/// Signing region (`s3_region`) of the `us` instance.
pub const US_SIGNING_REGION: &str = "us-east-1";
/// Bucket created in the `eu` instance.
pub const EU_BUCKET: &str = "residency-eu";
/// Bucket created in the `us` instance.
pub const US_BUCKET: &str = "residency-us";
/// Access key id accepted by the `eu` instance (Garage format: `GK` + 24 hex digits).
pub const EU_ACCESS_KEY: &str = "GKe0e0e0e0e0e0e0e0e0e0e0e0";
/// Secret key of [`EU_ACCESS_KEY`] (64 hex digits).
pub const EU_SECRET_KEY: &str = "e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0";
/// Access key id accepted by the `us` instance (Garage format: `GK` + 24 hex digits).
pub const US_ACCESS_KEY: &str = "GKa5a5a5a5a5a5a5a5a5a5a5a5";
/// Secret key of [`US_ACCESS_KEY`] (64 hex digits).
pub const US_SECRET_KEY: &str = "a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5";

/// Default time allowed for one instance to become ready.
const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// Startup error of an instance whose port was taken meanwhile.
const PORT_CLASH: &str = "lost a port race (Address already in use)";
/// How often a fresh set of ports is tried when the chosen ones were taken meanwhile.
const PORT_ATTEMPTS: usize = 5;

/// Prefix of a cluster's temporary directory, followed by the owning process id.
const ROOT_PREFIX: &str = "residency-garage-";
/// Marker file in a directory kept by `RESIDENCY_TESTKIT_KEEP_DIRS`: never swept.
const KEPT_MARKER: &str = "KEPT";

/// Removes the temporary directories of clusters whose process is gone.
///
/// A cluster held in a `static` (one pair shared by the tests of a binary) is
/// never dropped, so its directory outlives the test process; without this
/// sweep every `cargo test` run left one directory per test binary behind
/// (over 200, some GB, on a developer machine). A directory is removed when the
/// process id in its name no longer runs, or when it has no process id (the
/// format before) and is older than a day; a kept one never is.
fn sweep_orphaned_roots(tmp: &Path, prefix: &str) {
    let Ok(entries) = fs::read_dir(tmp) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(prefix)) else {
            continue;
        };
        let path = entry.path();
        if path.join(KEPT_MARKER).exists() {
            continue;
        }
        let owner = rest
            .split_once('-')
            .and_then(|(pid, _)| pid.parse::<i32>().ok());
        let orphaned = match owner {
            Some(pid) => !Path::new("/proc").join(pid.to_string()).exists(),
            None => entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > Duration::from_secs(24 * 3600)),
        };
        if orphaned {
            let _ = fs::remove_dir_all(&path);
        }
    }
}

/// Error of the testkit: a message, with the server's log tail when a server failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(String);

impl Error {
    fn new(msg: impl Into<String>) -> Self {
        Error(msg.into())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

/// Result of the testkit's operations.
pub type Result<T> = std::result::Result<T, Error>;

/// How to reach one region's S3 server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionInfo {
    /// Residency region id: `eu` or `us`.
    pub name: String,
    /// S3 endpoint URL, e.g. `http://127.0.0.1:41234` (use path-style addressing).
    pub endpoint: String,
    /// Region to sign requests for (`eu-west-1` / `us-east-1`); also what
    /// GetBucketLocation reports.
    pub region: String,
    /// The region's main bucket (`residency-eu` / `residency-us`).
    pub bucket: String,
    /// Extra buckets created on request (see [`GarageClusterBuilder::extra_bucket`]).
    pub extra_buckets: Vec<String>,
    /// Access key id (owner of every bucket above).
    pub access_key: String,
    /// Secret key of `access_key`.
    pub secret_key: String,
    /// Port of the S3 API (the one in `endpoint`).
    pub s3_port: u16,
    /// Garage admin API URL (`/health`, `/metrics`, `/v2/...`).
    pub admin_endpoint: String,
    /// Bearer token of the admin API.
    pub admin_token: String,
    /// The instance's directory (config, metadata, data, log).
    pub dir: PathBuf,
    /// The instance's stdout/stderr log file.
    pub log_path: PathBuf,
    /// The instance's Garage config file (for `garage -c <file> ...` commands).
    pub config_path: PathBuf,
}

impl RegionInfo {
    /// The `RESIDENCY_TEST_<NAME>_*` variables describing this region, as written
    /// by `residency-testkit up --env-file`: `_ENDPOINT`, `_REGION`, `_BUCKET`,
    /// `_ACCESS_KEY`, `_SECRET_KEY`.
    pub fn env_vars(&self) -> Vec<(String, String)> {
        let p = format!("RESIDENCY_TEST_{}", self.name.to_ascii_uppercase());
        vec![
            (format!("{p}_ENDPOINT"), self.endpoint.clone()),
            (format!("{p}_REGION"), self.region.clone()),
            (format!("{p}_BUCKET"), self.bucket.clone()),
            (format!("{p}_ACCESS_KEY"), self.access_key.clone()),
            (format!("{p}_SECRET_KEY"), self.secret_key.clone()),
        ]
    }

    /// Reads a region described by `RESIDENCY_TEST_<NAME>_*` variables (e.g. a
    /// cluster started by `residency-testkit up` and sourced into the environment).
    /// Returns `None` unless all five variables are set. Only the connection fields
    /// are meaningful in the result; the ports and paths are left empty.
    pub fn from_env(name: &str) -> Option<RegionInfo> {
        let p = format!("RESIDENCY_TEST_{}", name.to_ascii_uppercase());
        let var = |suffix: &str| std::env::var(format!("{p}_{suffix}")).ok();
        Some(RegionInfo {
            name: name.to_string(),
            endpoint: var("ENDPOINT")?,
            region: var("REGION")?,
            bucket: var("BUCKET")?,
            extra_buckets: Vec::new(),
            access_key: var("ACCESS_KEY")?,
            secret_key: var("SECRET_KEY")?,
            s3_port: 0,
            admin_endpoint: String::new(),
            admin_token: String::new(),
            dir: PathBuf::new(),
            log_path: PathBuf::new(),
            config_path: PathBuf::new(),
        })
    }
}

/// Options for [`GarageCluster`]; [`GarageCluster::start`] uses the defaults.
#[derive(Debug, Clone)]
pub struct GarageClusterBuilder {
    extra_buckets: Vec<String>,
    binary: Option<PathBuf>,
    startup_timeout: Duration,
}

impl Default for GarageClusterBuilder {
    fn default() -> Self {
        GarageClusterBuilder {
            extra_buckets: Vec::new(),
            binary: None,
            startup_timeout: DEFAULT_STARTUP_TIMEOUT,
        }
    }
}

impl GarageClusterBuilder {
    /// Also creates bucket `name` (3–63 chars, S3 naming rules) in every region,
    /// owned by that region's key.
    pub fn extra_bucket(mut self, name: impl Into<String>) -> Self {
        self.extra_buckets.push(name.into());
        self
    }

    /// Also creates each of `names` in every region (see [`Self::extra_bucket`]).
    pub fn extra_buckets<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.extra_buckets.extend(names.into_iter().map(Into::into));
        self
    }

    /// Uses this `garage` binary instead of looking one up (see [`find_garage`]).
    pub fn binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.binary = Some(path.into());
        self
    }

    /// Time allowed for each instance to answer (default 60 s).
    pub fn startup_timeout(mut self, timeout: Duration) -> Self {
        self.startup_timeout = timeout;
        self
    }

    /// Starts the `eu` and `us` instances (in parallel) and waits until both serve
    /// their buckets.
    pub fn start(self) -> Result<GarageCluster> {
        let binary = match self.binary {
            Some(b) => b,
            None => find_garage()?,
        };
        let started = Instant::now();
        sweep_orphaned_roots(&std::env::temp_dir(), ROOT_PREFIX);
        let root = tempfile::Builder::new()
            .prefix(&format!("{ROOT_PREFIX}{}-", std::process::id()))
            .tempdir()
            .map_err(|e| Error::new(format!("cannot create a temporary directory: {e}")))?;
        let specs = [
            (
                "eu",
                EU_SIGNING_REGION,
                EU_BUCKET,
                EU_ACCESS_KEY,
                EU_SECRET_KEY,
            ),
            (
                "us",
                US_SIGNING_REGION,
                US_BUCKET,
                US_ACCESS_KEY,
                US_SECRET_KEY,
            ),
        ];
        let mut instances = Vec::new();
        for (name, region, bucket, access, secret) in specs {
            let dir = root.path().join(name);
            fs::create_dir_all(&dir)
                .map_err(|e| Error::new(format!("cannot create {}: {e}", dir.display())))?;
            let info = RegionInfo {
                name: name.to_string(),
                endpoint: String::new(),
                region: region.to_string(),
                bucket: bucket.to_string(),
                extra_buckets: self.extra_buckets.clone(),
                access_key: access.to_string(),
                secret_key: secret.to_string(),
                s3_port: 0,
                admin_endpoint: String::new(),
                admin_token: random_hex(16),
                log_path: dir.join("garage.log"),
                config_path: dir.join("garage.toml"),
                dir,
            };
            instances.push(Instance {
                info,
                rpc_secret: random_hex(32),
                ports: Ports::default(),
                proc: Mutex::new(Proc::default()),
            });
        }
        let mut cluster = GarageCluster {
            binary,
            instances,
            infos: Vec::new(),
            startup_timeout: self.startup_timeout,
            startup_time: Duration::ZERO,
            root: Some(root),
        };
        cluster.boot_all()?;
        for inst in &cluster.instances {
            inst.create_extra_buckets(&cluster.binary)?;
        }
        cluster.infos = cluster.instances.iter().map(|i| i.info.clone()).collect();
        cluster.startup_time = started.elapsed();
        Ok(cluster)
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Ports {
    s3: u16,
    rpc: u16,
    web: u16,
    admin: u16,
}

#[derive(Debug, Default)]
struct Proc {
    child: Option<Child>,
    /// Length of the log file when `child` was started: readiness is judged on
    /// what this run logged.
    log_offset: u64,
}

#[derive(Debug)]
struct Instance {
    info: RegionInfo,
    rpc_secret: String,
    ports: Ports,
    proc: Mutex<Proc>,
}

/// Two single-node Garage servers, `eu` and `us`; see the crate documentation.
///
/// All methods take `&self`, so a cluster can be shared (e.g. in an `Arc`) between
/// a test and the tasks it spawns.
#[derive(Debug)]
pub struct GarageCluster {
    binary: PathBuf,
    instances: Vec<Instance>,
    infos: Vec<RegionInfo>,
    startup_timeout: Duration,
    startup_time: Duration,
    root: Option<tempfile::TempDir>,
}

impl GarageCluster {
    /// Starts the `eu` and `us` instances with the default options.
    pub fn start() -> Result<GarageCluster> {
        GarageClusterBuilder::default().start()
    }

    /// Options: extra buckets, an explicit binary, the startup timeout.
    pub fn builder() -> GarageClusterBuilder {
        GarageClusterBuilder::default()
    }

    /// Both regions, `eu` first.
    pub fn regions(&self) -> &[RegionInfo] {
        &self.infos
    }

    /// The region named `name` (`eu` or `us`), if any.
    pub fn region(&self, name: &str) -> Option<&RegionInfo> {
        self.infos.iter().find(|r| r.name == name)
    }

    /// The `eu` region (`eu-west-1`, bucket `residency-eu`).
    pub fn eu(&self) -> &RegionInfo {
        &self.infos[0]
    }

    /// The `us` region (`us-east-1`, bucket `residency-us`).
    pub fn us(&self) -> &RegionInfo {
        &self.infos[1]
    }

    /// How long [`GarageCluster::start`] took, both instances and buckets included.
    pub fn startup_time(&self) -> Duration {
        self.startup_time
    }

    /// The `garage` binary in use.
    pub fn garage_binary(&self) -> &Path {
        &self.binary
    }

    /// Every region's `RESIDENCY_TEST_*` variables (see [`RegionInfo::env_vars`]).
    pub fn env_vars(&self) -> Vec<(String, String)> {
        self.infos.iter().flat_map(RegionInfo::env_vars).collect()
    }

    /// [`Self::env_vars`] as shell `export NAME='value'` lines.
    pub fn env_file_contents(&self) -> String {
        let mut out = String::new();
        for (k, v) in self.env_vars() {
            out.push_str(&format!("export {k}='{}'\n", v.replace('\'', r"'\''")));
        }
        out
    }

    /// Writes [`Self::env_file_contents`] to `path` atomically (write, then rename).
    pub fn write_env_file(&self, path: impl AsRef<Path>) -> io::Result<()> {
        let path = path.as_ref();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent)?;
        }
        let tmp = path.with_extension("tmp-residency-testkit");
        fs::write(&tmp, self.env_file_contents())?;
        fs::rename(&tmp, path)
    }

    /// Whether the region's server process is alive (paused counts as alive).
    pub fn is_running(&self, name: &str) -> Result<bool> {
        let inst = self.instance(name)?;
        let mut proc = inst.lock();
        Ok(match proc.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        })
    }

    /// Kills the region's server with SIGKILL (a crash: no shutdown, nothing
    /// flushed) and reaps it. Its data directory and ports are kept, so
    /// [`Self::restart_region`] brings it back. Stopping a stopped region is a no-op.
    pub fn stop_region(&self, name: &str) -> Result<()> {
        self.instance(name)?.kill(Signal::SIGKILL, Duration::ZERO);
        Ok(())
    }

    /// Stops the region's server with SIGTERM (graceful shutdown), SIGKILL after 15 s,
    /// and reaps it. Garage exits in about 1 s, but drains open client connections
    /// for up to 10 s first: drop SDK clients (their keep-alive pools) beforehand
    /// for a quick stop.
    pub fn terminate_region(&self, name: &str) -> Result<()> {
        self.instance(name)?
            .kill(Signal::SIGTERM, Duration::from_secs(15));
        Ok(())
    }

    /// Freezes the region's server with SIGSTOP: connections are accepted by the
    /// kernel but never answered (a hung backend), until [`Self::resume_region`].
    pub fn pause_region(&self, name: &str) -> Result<()> {
        self.instance(name)?.signal(Signal::SIGSTOP)
    }

    /// Resumes a server frozen by [`Self::pause_region`] (SIGCONT).
    pub fn resume_region(&self, name: &str) -> Result<()> {
        self.instance(name)?.signal(Signal::SIGCONT)
    }

    /// Kills the region's server if it runs, then starts it again on the same
    /// ports with the same data, and waits until it serves requests. (A port
    /// briefly held by someone else is retried for a few seconds.)
    pub fn restart_region(&self, name: &str) -> Result<()> {
        let inst = self.instance(name)?;
        inst.kill(Signal::SIGKILL, Duration::ZERO);
        let mut attempt = 0;
        loop {
            attempt += 1;
            inst.spawn(&self.binary)?;
            match inst.wait_ready(Instant::now() + self.startup_timeout) {
                Err(e) if e.0.contains(PORT_CLASH) && attempt < 2 * PORT_ATTEMPTS => {
                    std::thread::sleep(Duration::from_millis(500));
                }
                other => return other,
            }
        }
    }

    fn instance(&self, name: &str) -> Result<&Instance> {
        self.instances
            .iter()
            .find(|i| i.info.name == name)
            .ok_or_else(|| Error::new(format!("no region named {name:?} (have: eu, us)")))
    }

    /// Starts every instance, retrying with fresh ports if a port was taken.
    fn boot_all(&mut self) -> Result<()> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            for inst in &mut self.instances {
                inst.ports = free_ports()?;
                inst.apply_ports();
                inst.write_config()?;
            }
            for inst in &self.instances {
                inst.spawn(&self.binary)?;
            }
            let deadline = Instant::now() + self.startup_timeout;
            let mut failure = None;
            for inst in &self.instances {
                if let Err(e) = inst.wait_ready(deadline) {
                    failure = Some(e);
                    break;
                }
            }
            let Some(err) = failure else {
                return Ok(());
            };
            for inst in &self.instances {
                inst.kill(Signal::SIGKILL, Duration::ZERO);
            }
            let port_clash = err.0.contains(PORT_CLASH);
            if !port_clash || attempt >= PORT_ATTEMPTS {
                return Err(err);
            }
        }
    }
}

impl Drop for GarageCluster {
    fn drop(&mut self) {
        for inst in &self.instances {
            inst.kill(Signal::SIGKILL, Duration::ZERO);
        }
        if std::env::var_os("RESIDENCY_TESTKIT_KEEP_DIRS").is_some_and(|v| !v.is_empty()) {
            if let Some(root) = self.root.take() {
                let path = root.keep();
                let _ = fs::write(
                    path.join(KEPT_MARKER),
                    "kept by RESIDENCY_TESTKIT_KEEP_DIRS\n",
                );
                eprintln!("residency-testkit: kept {}", path.display());
            }
        }
    }
}

impl Instance {
    fn lock(&self) -> MutexGuard<'_, Proc> {
        self.proc.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn apply_ports(&mut self) {
        self.info.s3_port = self.ports.s3;
        self.info.endpoint = format!("http://127.0.0.1:{}", self.ports.s3);
        self.info.admin_endpoint = format!("http://127.0.0.1:{}", self.ports.admin);
    }

    fn write_config(&self) -> Result<()> {
        let d = self.info.dir.display();
        let Ports {
            s3,
            rpc,
            web,
            admin,
        } = self.ports;
        let config = format!(
            r#"metadata_dir = "{d}/meta"
data_dir = "{d}/data"
db_engine = "{db_engine}"
metadata_fsync = false
data_fsync = false
replication_factor = 1
rpc_bind_addr = "127.0.0.1:{rpc}"
rpc_public_addr = "127.0.0.1:{rpc}"
rpc_secret = "{rpc_secret}"

[s3_api]
s3_region = "{region}"
api_bind_addr = "127.0.0.1:{s3}"
root_domain = ".s3.garage.localhost"

[s3_web]
bind_addr = "127.0.0.1:{web}"
root_domain = ".web.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:{admin}"
admin_token = "{admin_token}"
"#,
            rpc_secret = self.rpc_secret,
            db_engine = db_engine()?,
            region = self.info.region,
            admin_token = self.info.admin_token,
        );
        fs::write(&self.info.config_path, config).map_err(|e| {
            Error::new(format!(
                "cannot write {}: {e}",
                self.info.config_path.display()
            ))
        })
    }

    /// Starts `garage server --single-node --default-bucket` (which creates the
    /// layout, the key and the main bucket, or checks them on a restart).
    fn spawn(&self, binary: &Path) -> Result<()> {
        let mut proc = self.lock();
        if proc.child.is_some() {
            return Err(Error::new(format!(
                "region {} is already running",
                self.info.name
            )));
        }
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.info.log_path)
            .map_err(|e| {
                Error::new(format!("cannot open {}: {e}", self.info.log_path.display()))
            })?;
        let log2 = log
            .try_clone()
            .map_err(|e| Error::new(format!("cannot dup log file: {e}")))?;
        let mut cmd = match setpriv() {
            Some(setpriv) => {
                let mut c = Command::new(setpriv);
                c.args(["--pdeathsig", "KILL", "--"]).arg(binary);
                c
            }
            None => Command::new(binary),
        };
        cmd.arg("-c")
            .arg(&self.info.config_path)
            .args(["server", "--single-node", "--default-bucket"])
            .current_dir(&self.info.dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("GARAGE_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("GARAGE_DEFAULT_ACCESS_KEY", &self.info.access_key)
            .env("GARAGE_DEFAULT_SECRET_KEY", &self.info.secret_key)
            .env("GARAGE_DEFAULT_BUCKET", &self.info.bucket)
            .env(
                "RUST_LOG",
                // The `listening on` lines are how readiness is detected: keep them.
                format!(
                    "{},garage_net::netapp=info,garage_api_common::generic_server=info,\
                     garage_web::web_server=info",
                    std::env::var("RESIDENCY_GARAGE_LOG").unwrap_or_else(|_| "garage=info".into())
                ),
            )
            .env("NO_COLOR", "1");
        let log_offset = fs::metadata(&self.info.log_path)
            .map(|m| m.len())
            .unwrap_or(0);
        let child = spawn_from_keeper_thread(cmd).map_err(|e| {
            Error::new(format!(
                "cannot start {} for region {}: {e}",
                binary.display(),
                self.info.name
            ))
        })?;
        proc.child = Some(child);
        proc.log_offset = log_offset;
        Ok(())
    }

    /// Waits until this run's log shows every listener bound (RPC, S3, web, admin:
    /// a port answering could be another server's) and the admin API reports the
    /// node healthy. A port clash (Garage logs it, or panics on the RPC port) fails
    /// at once.
    fn wait_ready(&self, deadline: Instant) -> Result<()> {
        let Ports {
            s3,
            rpc,
            web,
            admin,
        } = self.ports;
        let expected = [
            format!("Listening on 127.0.0.1:{rpc}"),
            format!("S3 API server listening on http://127.0.0.1:{s3}"),
            format!("Web server listening on http://127.0.0.1:{web}"),
            format!("Admin API server listening on http://127.0.0.1:{admin}"),
        ];
        let mut unbound_since: Option<Instant> = None;
        loop {
            let log_offset;
            let pid;
            {
                let mut proc = self.lock();
                log_offset = proc.log_offset;
                pid = proc.child.as_ref().map(Child::id);
                let Some(child) = proc.child.as_mut() else {
                    return Err(self.failure("is not running"));
                };
                match child.try_wait() {
                    Ok(None) => {}
                    Ok(Some(status)) => {
                        proc.child = None;
                        // Garage aborts when a port it binds is taken (its
                        // panic handler raises SIGABRT): a lost port race,
                        // retried with new ports like the one it logs alive.
                        let log = read_from(&self.info.log_path, log_offset);
                        if log.contains("Address already in use") || log.contains("os error 98") {
                            return Err(self.failure(&format!("{PORT_CLASH}: exited ({status})")));
                        }
                        return Err(self.failure(&format!("exited during startup ({status})")));
                    }
                    Err(e) => return Err(self.failure(&format!("cannot be waited for: {e}"))),
                }
            }
            let log = read_from(&self.info.log_path, log_offset);
            if log.contains("Address already in use") {
                self.kill(Signal::SIGKILL, Duration::ZERO);
                return Err(self.failure(PORT_CLASH));
            }
            if log.contains("PANIC") {
                self.kill(Signal::SIGKILL, Duration::ZERO);
                return Err(self.failure("panicked during startup"));
            }
            let missing: Vec<&str> = expected
                .iter()
                .filter(|line| !log.contains(line.as_str()))
                .map(String::as_str)
                .collect();
            // Garage logs "listening" before it binds, and a failed bind of the admin
            // or web server goes unreported while it runs: check the sockets too.
            let unbound: Vec<u16> = match (missing.is_empty(), pid.and_then(listening_ports)) {
                (true, Some(ours)) => [s3, rpc, web, admin]
                    .into_iter()
                    .filter(|p| !ours.contains(p))
                    .collect(),
                _ => Vec::new(),
            };
            let health = if missing.is_empty() && unbound.is_empty() {
                http_status(admin, "/health")
            } else {
                None
            };
            if health == Some(200) {
                return Ok(());
            }
            if missing.is_empty() && !unbound.is_empty() {
                let since = *unbound_since.get_or_insert_with(Instant::now);
                if since.elapsed() > Duration::from_secs(5) {
                    self.kill(Signal::SIGKILL, Duration::ZERO);
                    return Err(self.failure(&format!("{PORT_CLASH}: ports {unbound:?} not bound")));
                }
            } else {
                unbound_since = None;
            }
            if Instant::now() >= deadline {
                let state = pid.and_then(process_state);
                self.kill(Signal::SIGKILL, Duration::ZERO);
                return Err(self.failure(&format!(
                    "did not become ready in time (not yet logged: {missing:?}; admin /health: \
                     {health:?}; pid {pid:?} state {state:?})"
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn create_extra_buckets(&self, binary: &Path) -> Result<()> {
        for bucket in &self.info.extra_buckets {
            self.cli(binary, &["bucket", "create", bucket])?;
            self.cli(
                binary,
                &[
                    "bucket",
                    "allow",
                    "--read",
                    "--write",
                    "--owner",
                    bucket,
                    "--key",
                    &self.info.access_key,
                ],
            )?;
        }
        Ok(())
    }

    fn cli(&self, binary: &Path, args: &[&str]) -> Result<()> {
        let mut cmd = Command::new(binary);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("GARAGE_") {
                cmd.env_remove(k);
            }
        }
        let out = cmd
            .arg("-c")
            .arg(&self.info.config_path)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| Error::new(format!("cannot run {}: {e}", binary.display())))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(Error::new(format!(
                "region {}: `garage {}` failed ({}):\n{}{}",
                self.info.name,
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )))
        }
    }

    /// Sends SIGSTOP or SIGCONT and waits until the process is in the matching state
    /// (signal delivery is asynchronous: a request sent right after `kill` could
    /// otherwise still be answered).
    fn signal(&self, sig: Signal) -> Result<()> {
        let proc = self.lock();
        let Some(child) = proc.child.as_ref() else {
            return Err(Error::new(format!(
                "region {} is not running",
                self.info.name
            )));
        };
        let pid = child.id();
        kill(Pid::from_raw(pid as i32), sig).map_err(|e| {
            Error::new(format!(
                "cannot send {sig} to region {}: {e}",
                self.info.name
            ))
        })?;
        let want_stopped = sig == Signal::SIGSTOP;
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match process_state(pid) {
                Some(state) if (state == 'T') == want_stopped => return Ok(()),
                None => return Ok(()), // no /proc, or the process is gone
                Some(_) if Instant::now() >= deadline => {
                    return Err(Error::new(format!(
                        "region {}: process {pid} did not react to {sig}",
                        self.info.name
                    )))
                }
                Some(_) => std::thread::sleep(Duration::from_millis(2)),
            }
        }
    }

    /// Sends `sig` (then SIGKILL after `grace`), reaps the process. Never fails.
    fn kill(&self, sig: Signal, grace: Duration) {
        let mut proc = self.lock();
        let Some(mut child) = proc.child.take() else {
            return;
        };
        let pid = Pid::from_raw(child.id() as i32);
        let _ = kill(pid, sig);
        if sig != Signal::SIGKILL {
            // A paused process must run to handle SIGTERM.
            let _ = kill(pid, Signal::SIGCONT);
            let deadline = Instant::now() + grace;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = kill(pid, Signal::SIGKILL);
        }
        let _ = child.wait();
    }

    fn failure(&self, what: &str) -> Error {
        Error::new(format!(
            "garage for region {} ({}) {what}; last lines of {}:\n{}",
            self.info.name,
            self.info.endpoint,
            self.info.log_path.display(),
            log_tail(&self.info.log_path, 40)
        ))
    }
}

/// Finds the `garage` binary: `$GARAGE_BIN`, else `garage` on the `PATH`, else
/// `$RESIDENCY_TOOLS/bin/garage` (`RESIDENCY_TOOLS` defaults to
/// `$HOME/.cache/residency-tools`).
pub fn find_garage() -> Result<PathBuf> {
    if let Some(bin) = std::env::var_os("GARAGE_BIN").filter(|v| !v.is_empty()) {
        let bin = PathBuf::from(bin);
        return if bin.is_file() {
            Ok(bin)
        } else {
            Err(Error::new(format!(
                "garage not found: GARAGE_BIN={} does not exist",
                bin.display()
            )))
        };
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join("garage");
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    let tools = tools_dir();
    let candidate = tools.join("bin").join("garage");
    if candidate.is_file() {
        return Ok(candidate);
    }
    Err(Error::new(format!(
        "garage not found (GARAGE_BIN unset, not on PATH, not at {}): run ./scripts/test.sh \
         (it installs it) or cargo install garage --version 2.5.0 --locked --root {}",
        candidate.display(),
        tools.display()
    )))
}

/// Garage's metadata engine: `RESIDENCY_TESTKIT_DB_ENGINE` (`sqlite` or
/// `lmdb`), `sqlite` when unset or empty.
fn db_engine() -> Result<&'static str> {
    match std::env::var("RESIDENCY_TESTKIT_DB_ENGINE").as_deref() {
        Err(_) | Ok("" | "sqlite") => Ok("sqlite"),
        Ok("lmdb") => Ok("lmdb"),
        Ok(other) => Err(Error::new(format!(
            "RESIDENCY_TESTKIT_DB_ENGINE={other:?}: expected `sqlite` or `lmdb`"
        ))),
    }
}

/// `$RESIDENCY_TOOLS`, default `$HOME/.cache/residency-tools`: where
/// `scripts/test.sh` installs the tools the tests need.
pub fn tools_dir() -> PathBuf {
    match std::env::var_os("RESIDENCY_TOOLS").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => {
            let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
            PathBuf::from(home).join(".cache").join("residency-tools")
        }
    }
}

/// Four distinct free ports on 127.0.0.1 (all bound at once, then released).
///
/// They are drawn at random from below the kernel's ephemeral range when there is
/// room (10000 up to `ip_local_port_range`'s start), where outgoing connections
/// never take them: a server restarted on its old ports then finds them free.
/// Otherwise the kernel picks (`bind` to port 0).
fn free_ports() -> Result<Ports> {
    let low = fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(0);
    let bind = || -> Result<TcpListener> {
        const FLOOR: u32 = 10_000;
        if low > FLOOR + 1_000 {
            for _ in 0..200 {
                let pick = RandomState::new().hash_one(Instant::now()) % u64::from(low - FLOOR);
                let port = (u64::from(FLOOR) + pick) as u16;
                if let Ok(l) = TcpListener::bind((Ipv4Addr::LOCALHOST, port)) {
                    return Ok(l);
                }
            }
        }
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .map_err(|e| Error::new(format!("cannot bind 127.0.0.1:0: {e}")))
    };
    let listeners = [bind()?, bind()?, bind()?, bind()?];
    let mut ports = [0u16; 4];
    for (port, l) in ports.iter_mut().zip(&listeners) {
        *port = l
            .local_addr()
            .map_err(|e| Error::new(format!("local_addr: {e}")))?
            .port();
    }
    Ok(Ports {
        s3: ports[0],
        rpc: ports[1],
        web: ports[2],
        admin: ports[3],
    })
}

/// `GET path` on 127.0.0.1:port; the response status, if any HTTP answer came.
fn http_status(port: u16, path: &str) -> Option<u16> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(250)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream
        .set_write_timeout(Some(Duration::from_secs(2)))
        .ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = [0u8; 64];
    let mut n = 0;
    while n < 12 {
        match stream.read(&mut buf[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    let head = std::str::from_utf8(&buf[..n]).ok()?;
    let rest = head.strip_prefix("HTTP/1.")?;
    rest.get(2..5)?.parse().ok()
}

/// `T` when every thread of `pid` is stopped, else the state letter of a thread that
/// is not (from `/proc/<pid>/task/*/stat`); `None` without `/proc` or process.
fn process_state(pid: u32) -> Option<char> {
    let mut state = None;
    for task in fs::read_dir(format!("/proc/{pid}/task")).ok()?.flatten() {
        let Ok(stat) = fs::read_to_string(task.path().join("stat")) else {
            continue; // the thread just exited
        };
        // "tid (comm) S ...": comm may contain spaces and parentheses.
        let letter = stat.rsplit_once(')')?.1.trim_start().chars().next()?;
        if letter != 'T' {
            return Some(letter);
        }
        state = Some(letter);
    }
    state
}

/// TCP ports on which process `pid` holds a listening socket (from `/proc`), or
/// `None` where `/proc` cannot tell.
fn listening_ports(pid: u32) -> Option<std::collections::HashSet<u16>> {
    let mut inodes = std::collections::HashSet::new();
    for fd in fs::read_dir(format!("/proc/{pid}/fd")).ok()?.flatten() {
        if let Ok(target) = fs::read_link(fd.path()) {
            let target = target.to_string_lossy();
            if let Some(inode) = target
                .strip_prefix("socket:[")
                .and_then(|t| t.strip_suffix(']'))
            {
                inodes.insert(inode.to_string());
            }
        }
    }
    let table = fs::read_to_string(format!("/proc/{pid}/net/tcp")).ok()?;
    let mut ports = std::collections::HashSet::new();
    for line in table.lines().skip(1) {
        // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() > 9 && fields[3] == "0A" && inodes.contains(fields[9]) {
            if let Some((_, port)) = fields[1].split_once(':') {
                if let Ok(port) = u16::from_str_radix(port, 16) {
                    ports.insert(port);
                }
            }
        }
    }
    Some(ports)
}

/// The file's content from byte `offset` on (lossy UTF-8; empty if unreadable).
fn read_from(path: &Path, offset: u64) -> String {
    use std::io::{Seek, SeekFrom};
    let mut buf = Vec::new();
    if let Ok(mut f) = File::open(path) {
        if f.seek(SeekFrom::Start(offset)).is_ok() {
            let _ = f.read_to_end(&mut buf);
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

fn log_tail(path: &Path, lines: usize) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("(cannot read log: {e})"),
    }
}

fn random_hex(bytes: usize) -> String {
    let mut out = String::with_capacity(bytes * 2);
    while out.len() < bytes * 2 {
        let word = RandomState::new().hash_one(Instant::now());
        out.push_str(&format!("{word:016x}"));
    }
    out.truncate(bytes * 2);
    out
}

/// `setpriv` from util-linux, if present: it makes the kernel kill a server when
/// its parent dies, so a test process killed without unwinding leaves no orphans.
fn setpriv() -> Option<&'static Path> {
    static SETPRIV: OnceLock<Option<PathBuf>> = OnceLock::new();
    SETPRIV
        .get_or_init(|| {
            ["/usr/bin/setpriv", "/bin/setpriv"]
                .into_iter()
                .map(PathBuf::from)
                .find(|p| p.is_file())
                .filter(|p| {
                    Command::new(p)
                        .args(["--pdeathsig", "KILL", "--", "true"])
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status()
                        .is_ok_and(|s| s.success())
                })
        })
        .as_deref()
}

type SpawnRequest = (Command, mpsc::Sender<io::Result<Child>>);

/// Spawns `cmd` from one thread that lives as long as the process: the parent-death
/// signal fires when the *thread* that forked exits, and test threads come and go.
fn spawn_from_keeper_thread(cmd: Command) -> io::Result<Child> {
    static KEEPER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    let keeper = KEEPER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("residency-testkit-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .expect("cannot start the residency-testkit spawner thread");
        Mutex::new(tx)
    });
    let (reply_tx, reply_rx) = mpsc::channel();
    keeper
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .send((cmd, reply_tx))
        .map_err(|_| io::Error::other("spawner thread is gone"))?;
    reply_rx
        .recv()
        .map_err(|_| io::Error::other("spawner thread is gone"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_keys_have_garage_format() {
        for key in [EU_ACCESS_KEY, US_ACCESS_KEY] {
            assert_eq!(key.len(), 26);
            assert!(key.starts_with("GK"));
            assert!(key[2..].chars().all(|c| c.is_ascii_hexdigit()));
        }
        for secret in [EU_SECRET_KEY, US_SECRET_KEY] {
            assert_eq!(secret.len(), 64);
            assert!(secret.chars().all(|c| c.is_ascii_hexdigit()));
        }
    }

    #[test]
    fn random_hex_has_requested_length() {
        let a = random_hex(32);
        assert_eq!(a.len(), 64);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, random_hex(32));
    }

    #[test]
    fn free_ports_are_distinct() {
        let p = free_ports().unwrap();
        let mut all = [p.s3, p.rpc, p.web, p.admin];
        all.sort_unstable();
        all.windows(2).for_each(|w| assert_ne!(w[0], w[1]));
    }

    #[test]
    fn orphaned_roots_are_swept_and_live_or_kept_ones_stay() {
        let tmp = tempfile::tempdir().unwrap();
        // Above Linux's largest pid_max (2^22): no process has it.
        let dead = tmp.path().join(format!("{ROOT_PREFIX}4194305-abc"));
        let live = tmp
            .path()
            .join(format!("{ROOT_PREFIX}{}-abc", std::process::id()));
        let kept = tmp.path().join(format!("{ROOT_PREFIX}4194306-abc"));
        let young_old_format = tmp.path().join(format!("{ROOT_PREFIX}Xy12ab"));
        let unrelated = tmp.path().join("other-4194305-abc");
        for dir in [&dead, &live, &kept, &young_old_format, &unrelated] {
            fs::create_dir_all(dir.join("eu")).unwrap();
        }
        fs::write(kept.join(KEPT_MARKER), "").unwrap();
        sweep_orphaned_roots(tmp.path(), ROOT_PREFIX);
        assert!(!dead.exists(), "a dead process's directory is removed");
        for dir in [&live, &kept, &young_old_format, &unrelated] {
            assert!(dir.exists(), "{} must stay", dir.display());
        }
    }
}
