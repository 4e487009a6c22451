//! A throw-away PostgreSQL cluster on 127.0.0.1, for the tenant directory's
//! tests: `initdb` in a temporary directory, one server on a free port,
//! trust authentication for the `postgres` user over TCP on the loopback only.
//!
//! PostgreSQL refuses to run as root; when the test runs as root (CI does),
//! `initdb` and the server run as `nobody` through `setpriv`, which also makes
//! the kernel kill the server when the test process dies. Nothing is synced
//! to disk (`fsync`, `full_page_writes` off: the data is thrown away), but a
//! committed transaction survives [`PostgresCluster::stop`] and
//! [`PostgresCluster::restart`] (`synchronous_commit` stays on). Dropping the cluster shuts the server down (immediate mode) and
//! removes the directory; a cluster in a `static` is never dropped, its
//! server dies with the process and its directory is removed by the next
//! cluster started.
//!
//! The binaries are found through `RESIDENCY_PG_BIN` (a directory holding
//! `initdb` and `postgres`), then the newest `/usr/lib/postgresql/<v>/bin`
//! (Debian's layout), then `initdb` on the `PATH`. `scripts/install-tools.sh`
//! installs Debian's `postgresql` package when none is found.
//!
//! ```no_run
//! let pg = residency_testkit::PostgresCluster::start().unwrap();
//! pg.create_database("directory").unwrap();
//! println!("{}", pg.url("directory"));
//! ```

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::{setpriv, spawn_from_keeper_thread, sweep_orphaned_roots, Error, Result};

/// Prefix of a cluster's temporary directory (then the owning process id).
pub(crate) const PG_ROOT_PREFIX: &str = "residency-pg-";
/// The uid and gid the server runs as when the test runs as root (`nobody`).
const NOBODY: u32 = 65534;
/// Time allowed for the server to accept connections.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// The line PostgreSQL logs once it serves.
const READY: &str = "database system is ready to accept connections";

/// One PostgreSQL server; see the module documentation.
#[derive(Debug)]
pub struct PostgresCluster {
    bin: PathBuf,
    data: PathBuf,
    log_path: PathBuf,
    port: u16,
    as_nobody: bool,
    child: Mutex<Option<Child>>,
    root: Option<tempfile::TempDir>,
}

impl PostgresCluster {
    /// Creates a cluster and starts its server.
    ///
    /// # Errors
    /// No PostgreSQL binaries, `initdb` failed, or the server did not accept
    /// connections within 60 s (the error carries the end of its log).
    pub fn start() -> Result<PostgresCluster> {
        let bin = find_postgres_bin()?;
        sweep_orphaned_roots(&std::env::temp_dir(), PG_ROOT_PREFIX);
        let root = tempfile::Builder::new()
            .prefix(&format!("{PG_ROOT_PREFIX}{}-", std::process::id()))
            .tempdir()
            .map_err(|e| Error::new(format!("cannot create a temporary directory: {e}")))?;
        let as_nobody = nix::unistd::geteuid().is_root();
        if as_nobody {
            if setpriv().is_none() {
                return Err(Error::new(
                    "PostgreSQL cannot run as root and setpriv (util-linux) is missing",
                ));
            }
            std::os::unix::fs::chown(root.path(), Some(NOBODY), Some(NOBODY)).map_err(|e| {
                Error::new(format!(
                    "cannot give {} to nobody: {e}",
                    root.path().display()
                ))
            })?;
        }
        let data = root.path().join("data");
        let mut cluster = PostgresCluster {
            log_path: root.path().join("postgres.log"),
            bin,
            data,
            port: 0,
            as_nobody,
            child: Mutex::new(None),
            root: Some(root),
        };
        cluster.initdb()?;
        for attempt in 1..=5 {
            cluster.port = free_port()?;
            match cluster.boot() {
                Ok(()) => return Ok(cluster),
                Err(e) if attempt < 5 && e.0.contains("Address already in use") => continue,
                Err(e) => return Err(e),
            }
        }
        unreachable!("the last attempt returns")
    }

    /// The server's TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A connection URL for `database` as the `postgres` superuser.
    pub fn url(&self, database: &str) -> String {
        format!("postgresql://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// The server's log file.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Creates `name` (letters, digits and `_`), for a test of its own.
    ///
    /// # Errors
    /// A bad name, or `createdb` failed (its output in the error).
    pub fn create_database(&self, name: &str) -> Result<()> {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(Error::new(format!("bad database name {name:?}")));
        }
        let out = Command::new(self.bin.join("createdb"))
            .args(["-h", "127.0.0.1", "-U", "postgres", "-p"])
            .arg(self.port.to_string())
            .arg(name)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| Error::new(format!("cannot run createdb: {e}")))?;
        if !out.status.success() {
            return Err(Error::new(format!(
                "createdb {name} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(())
    }

    /// Runs `sql` in `database` with `psql` (stopping at the first error):
    /// for tests that write what the CLI would refuse.
    pub fn psql(&self, database: &str, sql: &str) -> Result<String> {
        let out = Command::new(self.bin.join("psql"))
            .args([
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-p",
            ])
            .arg(self.port.to_string())
            .args(["-d", database, "-c", sql])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| Error::new(format!("cannot run psql: {e}")))?;
        if !out.status.success() {
            return Err(Error::new(format!(
                "psql failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Stops the server (immediate shutdown), keeping its data and port, as
    /// a database outage would.
    pub fn stop(&self) {
        if let Some(mut child) = self.lock().take() {
            shut_down(&mut child);
        }
    }

    /// Starts the server again after [`Self::stop`], on the same port.
    ///
    /// # Errors
    /// As for [`Self::start`].
    pub fn restart(&self) -> Result<()> {
        self.stop();
        self.boot()
    }

    fn lock(&self) -> MutexGuard<'_, Option<Child>> {
        self.child.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `cmd` as the user the server runs as (and killed with the test process).
    fn command(&self, program: &str) -> Command {
        let program = self.bin.join(program);
        match (setpriv(), self.as_nobody) {
            (Some(setpriv), as_nobody) => {
                let mut c = Command::new(setpriv);
                if as_nobody {
                    c.arg(format!("--reuid={NOBODY}"))
                        .arg(format!("--regid={NOBODY}"))
                        .arg("--clear-groups");
                }
                c.args(["--pdeathsig", "KILL", "--"]).arg(program);
                c
            }
            (None, _) => Command::new(program),
        }
    }

    fn initdb(&self) -> Result<()> {
        let out = self
            .command("initdb")
            .arg("-D")
            .arg(&self.data)
            .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"])
            .arg("--no-instructions")
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| Error::new(format!("cannot run initdb: {e}")))?;
        if !out.status.success() {
            return Err(Error::new(format!(
                "initdb failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(())
    }

    fn boot(&self) -> Result<()> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .map_err(|e| Error::new(format!("cannot open {}: {e}", self.log_path.display())))?;
        if self.as_nobody {
            let _ = std::os::unix::fs::chown(&self.log_path, Some(NOBODY), Some(NOBODY));
        }
        let offset = log.metadata().map(|m| m.len()).unwrap_or(0);
        let log2 = log
            .try_clone()
            .map_err(|e| Error::new(format!("cannot dup log file: {e}")))?;
        let mut cmd = self.command("postgres");
        cmd.arg("-D")
            .arg(&self.data)
            .arg("-p")
            .arg(self.port.to_string())
            // No unix socket: TCP on the loopback only.
            .args(["-k", "", "-c", "listen_addresses=127.0.0.1"])
            // Commits are written (synchronous_commit stays on, so a stop
            // keeps them), never synced to disk.
            .args(["-c", "fsync=off", "-c", "full_page_writes=off"])
            .args(["-c", "max_connections=200"])
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        let mut child = spawn_from_keeper_thread(cmd)
            .map_err(|e| Error::new(format!("cannot start postgres: {e}")))?;
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(Error::new(format!(
                    "postgres exited ({status}) before serving: {}",
                    self.log_tail(offset)
                )));
            }
            if self.log_tail(offset).contains(READY)
                && TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).is_ok()
            {
                *self.lock() = Some(child);
                return Ok(());
            }
            if Instant::now() > deadline {
                shut_down(&mut child);
                return Err(Error::new(format!(
                    "postgres did not serve within {STARTUP_TIMEOUT:?}: {}",
                    self.log_tail(offset)
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What this run of the server logged (at most the last 4 KiB).
    fn log_tail(&self, offset: u64) -> String {
        let mut text = String::new();
        if let Ok(mut f) = File::open(&self.log_path) {
            let len = f.metadata().map(|m| m.len()).unwrap_or(0);
            let start = offset.max(len.saturating_sub(4096));
            if f.seek(SeekFrom::Start(start)).is_ok() {
                let _ = f.read_to_string(&mut text);
            }
        }
        text
    }
}

impl Drop for PostgresCluster {
    fn drop(&mut self) {
        self.stop();
        drop(self.root.take());
    }
}

/// Immediate shutdown (SIGQUIT), then SIGKILL if the server is still there
/// after 5 s.
fn shut_down(child: &mut Child) {
    let pid = Pid::from_raw(child.id() as i32);
    let _ = kill(pid, Signal::SIGQUIT);
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn free_port() -> Result<u16> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| Error::new(format!("cannot bind 127.0.0.1:0: {e}")))
}

/// Where `initdb` and `postgres` are (see the module documentation).
fn find_postgres_bin() -> Result<PathBuf> {
    let has_both = |d: &Path| d.join("initdb").is_file() && d.join("postgres").is_file();
    if let Some(dir) = std::env::var_os("RESIDENCY_PG_BIN").map(PathBuf::from) {
        return if has_both(&dir) {
            Ok(dir)
        } else {
            Err(Error::new(format!(
                "RESIDENCY_PG_BIN={} holds no initdb and postgres",
                dir.display()
            )))
        };
    }
    let mut debian: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((v, e.path().join("bin")))
        })
        .filter(|(_, d)| has_both(d))
        .collect();
    debian.sort();
    if let Some((_, dir)) = debian.pop() {
        return Ok(dir);
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("initdb"))
        .find(|p| p.is_file())
        .and_then(|p| fs::canonicalize(p).ok())
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .filter(|d| has_both(d));
    on_path.ok_or_else(|| {
        Error::new(
            "no PostgreSQL found (RESIDENCY_PG_BIN, /usr/lib/postgresql/<v>/bin, initdb on the PATH): run scripts/install-tools.sh",
        )
    })
}
