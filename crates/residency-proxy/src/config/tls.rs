//! `[tls]` (HTTPS on the S3 listener) and the admin listener's bearer
//! token (`admin_token_file` / `admin_token_env`).

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

/// `[tls]`: serve S3 over HTTPS with this certificate chain and key (PEM),
/// read again when either file changes.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The certificate chain (PEM), leaf first.
    pub cert: Option<PathBuf>,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: Option<PathBuf>,
    /// Seconds between checks of the two files for a renewed certificate
    /// (default 10).
    #[serde(default = "default_reload_secs")]
    pub reload_secs: u64,
}

fn default_reload_secs() -> u64 {
    10
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            cert: None,
            key: None,
            reload_secs: default_reload_secs(),
        }
    }
}

impl TlsConfig {
    /// The certificate and key files, when HTTPS is on.
    pub fn files(&self) -> Option<(&PathBuf, &PathBuf)> {
        self.cert.as_ref().zip(self.key.as_ref())
    }

    /// What is wrong with it, with the admin listener it protects.
    pub(super) fn problems(&self, admin: SocketAddr, admin_token: bool) -> Vec<String> {
        let mut out = Vec::new();
        match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => {
                if let Err(e) = crate::tls::load(cert, key) {
                    out.push(e);
                }
                if !admin.ip().is_loopback() && !admin_token {
                    out.push(format!(
                        "admin {admin} is reachable from the network while S3 is served over TLS: set admin_token_file (or admin_token_env) so that /metrics asks for a bearer token, or bind admin to 127.0.0.1"
                    ));
                }
            }
            (None, None) => {}
            _ => out.push("tls: give both cert and key (PEM files), or neither".to_owned()),
        }
        if self.reload_secs == 0 {
            out.push("tls.reload_secs must be at least 1".to_owned());
        }
        out
    }
}
