//! HTTPS on the S3 listener (`[tls]`): the certificate chain and key read
//! from PEM files, offered with ALPN `h2` and `http/1.1`, and read again
//! when either file changes (a renewed certificate is served to new
//! connections without a restart; a pair that does not load keeps the old
//! one serving, and says so in the log and in
//! `residency_tls_reloads_total{result}`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;

const RELOADS: &str = "residency_tls_reloads_total";

/// Reads a certificate chain and its key into a server configuration.
///
/// # Errors
/// A file that cannot be read, holds no certificate or no key, or a key
/// that does not go with the certificate.
pub(crate) fn load(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("tls.cert {}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("tls.cert {}: {e}", cert.display()))?;
    if chain.is_empty() {
        return Err(format!(
            "tls.cert {}: no PEM certificate in it",
            cert.display()
        ));
    }
    let key_der =
        PrivateKeyDer::from_pem_file(key).map_err(|e| format!("tls.key {}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("tls: {e}"))?
        .with_no_client_auth()
        .with_single_cert(chain, key_der)
        .map_err(|e| {
            format!(
                "tls: the key {} does not go with the certificate {}: {e}",
                key.display(),
                cert.display()
            )
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The certificate being served, and the files it came from.
pub(crate) struct Certificates {
    current: ArcSwap<ServerConfig>,
    cert: PathBuf,
    key: PathBuf,
}

fn modified(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

impl Certificates {
    /// Loads the pair.
    ///
    /// # Errors
    /// As [`load`].
    pub(crate) fn new(cert: &Path, key: &Path) -> Result<Arc<Certificates>, String> {
        metrics::counter!(RELOADS, "result" => "ok").absolute(0);
        metrics::counter!(RELOADS, "result" => "failed").absolute(0);
        Ok(Arc::new(Certificates {
            current: ArcSwap::new(load(cert, key)?),
            cert: cert.to_owned(),
            key: key.to_owned(),
        }))
    }

    /// The acceptor for the next connection.
    pub(crate) fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.current.load_full())
    }

    /// Checks the files every `every`; when either changed, loads the pair
    /// again (a pair that fails keeps the current one).
    pub(crate) fn watch(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let mut seen = (modified(&this.cert), modified(&this.key));
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let now = (modified(&this.cert), modified(&this.key));
                if now == seen {
                    continue;
                }
                seen = now;
                match load(&this.cert, &this.key) {
                    Ok(c) => {
                        this.current.store(c);
                        metrics::counter!(RELOADS, "result" => "ok").increment(1);
                        tracing::info!(cert = %this.cert.display(), "TLS certificate reloaded");
                    }
                    Err(e) => {
                        metrics::counter!(RELOADS, "result" => "failed").increment(1);
                        tracing::error!(error = %e, "TLS certificate not reloaded: the previous one stays in use");
                    }
                }
            }
        })
    }
}
