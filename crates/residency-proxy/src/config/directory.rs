//! `[directory]` and `tenants = "postgresql://..."`: the PostgreSQL tenant
//! directory's settings, and the secrets the tenants file names.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use residency_policy::SecretRef;
use serde::Deserialize;

/// `[directory]`: how the PostgreSQL tenant directory caches.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDirectory {
    #[serde(default = "default_max_staleness")]
    pub(super) max_staleness_secs: u64,
    #[serde(default = "default_cache_capacity")]
    pub(super) cache_capacity: u64,
    #[serde(default = "default_cache_ttl")]
    pub(super) cache_ttl_secs: u64,
    #[serde(default = "default_pool_size")]
    pub(super) pool_size: usize,
    #[serde(default = "default_connect_timeout")]
    pub(super) connect_timeout_ms: u64,
}

fn default_max_staleness() -> u64 {
    60
}
fn default_cache_capacity() -> u64 {
    10_000
}
fn default_cache_ttl() -> u64 {
    600
}
fn default_pool_size() -> usize {
    8
}
fn default_connect_timeout() -> u64 {
    5_000
}

impl Default for RawDirectory {
    fn default() -> Self {
        Self {
            max_staleness_secs: default_max_staleness(),
            cache_capacity: default_cache_capacity(),
            cache_ttl_secs: default_cache_ttl(),
            pool_size: default_pool_size(),
            connect_timeout_ms: default_connect_timeout(),
        }
    }
}

/// Reads a secret the tenants file names: inline, from an environment
/// variable, or from a file (trailing newline trimmed).
///
/// # Errors
/// The variable is unset or the file unreadable (the message names which).
pub fn resolve_secret(s: &SecretRef) -> Result<String, String> {
    match s {
        SecretRef::Inline(v) => Ok(v.clone()),
        SecretRef::Env(var) => {
            std::env::var(var).map_err(|_| format!("environment variable {var} is not set"))
        }
        SecretRef::File(p) => std::fs::read_to_string(p)
            .map(|s| s.trim_end_matches(['\n', '\r']).to_string())
            .map_err(|e| format!("cannot read {p}: {e}")),
    }
}

/// Whether a `tenants` value names a PostgreSQL directory (else a file).
pub fn is_directory_url(v: &str) -> bool {
    v.starts_with("postgresql://") || v.starts_with("postgres://")
}

/// The PostgreSQL tenant directory (`tenants = "postgresql://..."`, or
/// `tenants_env` naming a variable that holds the URL). `Debug` never
/// prints the URL's password.
#[derive(Clone)]
pub struct DirectoryConfig {
    /// The connection URL.
    pub url: String,
    /// `directory_key_file`: the key-encryption key (else
    /// `RESIDENCY_DIRECTORY_KEY`).
    pub key_file: Option<PathBuf>,
    /// `[directory] max_staleness_secs`: no cached tenant is served longer
    /// than this after PostgreSQL last confirmed it (default 60).
    pub max_staleness: Duration,
    /// `[directory] cache_capacity`: entries per cache (default 10,000).
    pub cache_capacity: u64,
    /// `[directory] cache_ttl_secs` (default 600).
    pub cache_ttl: Duration,
    /// `[directory] pool_size` (default 8).
    pub pool_size: usize,
    /// `[directory] connect_timeout_ms` (default 5,000).
    pub connect_timeout: Duration,
}

impl std::fmt::Debug for DirectoryConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectoryConfig")
            .field("url", &self.redacted_url())
            .field("key_file", &self.key_file)
            .field("max_staleness", &self.max_staleness)
            .finish_non_exhaustive()
    }
}

impl DirectoryConfig {
    /// The URL without its user and password (for logs).
    pub fn redacted_url(&self) -> String {
        match self.url.rsplit_once('@') {
            Some((_, host)) => format!("postgresql://…@{host}"),
            None => self.url.clone(),
        }
    }

    /// The options to open the directory with: the key read now from
    /// `directory_key_file` or `RESIDENCY_DIRECTORY_KEY`.
    ///
    /// # Errors
    /// No key, or a key that is not 64 hex characters.
    pub fn options(&self) -> Result<residency_directory::postgres::PgOptions, String> {
        let key = residency_directory::postgres::DirectoryKey::load(self.key_file.as_deref())
            .map_err(|e| e.to_string())?;
        let mut o = residency_directory::postgres::PgOptions::new(self.url.clone(), key);
        o.max_staleness = self.max_staleness;
        o.cache_capacity = self.cache_capacity;
        o.ttl = self.cache_ttl;
        o.pool_size = self.pool_size;
        o.connect_timeout = self.connect_timeout;
        Ok(o)
    }

    /// Connects to the directory. `secrets`: whether access keys will be
    /// looked up (the sidecar), which needs the key-encryption key; a
    /// command that only reads tenants (disclosure) opens it without.
    ///
    /// # Errors
    /// No key (when `secrets`), or the database cannot be reached or
    /// migrated, as a sentence (without the URL: see [`Self::redacted_url`]).
    pub async fn open(
        &self,
        secrets: bool,
    ) -> Result<Arc<residency_directory::PgDirectory>, String> {
        let mut options = match self.options() {
            Ok(o) => o,
            Err(_) if !secrets => {
                let mut o = residency_directory::postgres::PgOptions::new(
                    self.url.clone(),
                    residency_directory::postgres::DirectoryKey::generate(),
                );
                o.connect_timeout = self.connect_timeout;
                o
            }
            Err(e) => return Err(e),
        };
        if !secrets {
            options.pool_size = options.pool_size.min(2);
        }
        residency_directory::PgDirectory::connect(options)
            .await
            .map_err(|e| e.to_string())
    }
}
