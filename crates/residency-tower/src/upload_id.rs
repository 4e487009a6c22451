//! Multipart upload ids that carry their region and tenant, signed so that a
//! client cannot forge or redirect them.
//!
//! Format: `r1.<region>.<tenant>.<base64url backend id>.<base64url mac>` where
//! the MAC is HMAC-SHA256 over the first four fields.

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// What a verified upload id says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadToken {
    /// Region id the upload was created in.
    pub region: String,
    /// Tenant id that created it.
    pub tenant: String,
    /// The backend's own upload id.
    pub backend_id: String,
}

/// Signs and verifies upload ids.
#[derive(Clone)]
pub struct UploadIdCodec {
    // Shared: the dispatch service clones its codec on every call.
    key: Arc<[u8]>,
}

impl std::fmt::Debug for UploadIdCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UploadIdCodec(<key redacted>)")
    }
}

impl UploadIdCodec {
    /// A codec with this signing key (keep it stable across restarts, or
    /// uploads in flight become unknown).
    pub fn new(key: impl Into<Vec<u8>>) -> Self {
        Self {
            key: Arc::from(key.into()),
        }
    }

    /// A codec with a random key (uploads do not survive a restart).
    pub fn random() -> Self {
        let mut key = vec![0u8; 32];
        getrandom::fill(&mut key).expect("the OS random source is available");
        Self::new(key)
    }

    fn mac(&self, body: &str) -> Vec<u8> {
        let mut h = <HmacSha256 as KeyInit>::new_from_slice(&self.key).expect("any key size");
        h.update(body.as_bytes());
        h.finalize().into_bytes().to_vec()
    }

    /// Wraps a backend upload id.
    pub fn encode(&self, region: &str, tenant: &str, backend_id: &str) -> String {
        let body = format!(
            "r1.{region}.{tenant}.{}",
            URL_SAFE_NO_PAD.encode(backend_id.as_bytes())
        );
        let mac = URL_SAFE_NO_PAD.encode(self.mac(&body));
        format!("{body}.{mac}")
    }

    /// Verifies and unwraps an upload id; `None` if it is malformed, forged or
    /// signed with another key.
    pub fn decode(&self, id: &str) -> Option<UploadToken> {
        let (body, mac) = id.rsplit_once('.')?;
        let mac = URL_SAFE_NO_PAD.decode(mac).ok()?;
        let mut h = <HmacSha256 as KeyInit>::new_from_slice(&self.key).expect("any key size");
        h.update(body.as_bytes());
        h.verify_slice(&mac).ok()?;
        let mut parts = body.splitn(4, '.');
        if parts.next()? != "r1" {
            return None;
        }
        let region = parts.next()?.to_string();
        let tenant = parts.next()?.to_string();
        let backend_id = String::from_utf8(URL_SAFE_NO_PAD.decode(parts.next()?).ok()?).ok()?;
        Some(UploadToken {
            region,
            tenant,
            backend_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_forgery() {
        let c = UploadIdCodec::new(b"k1".to_vec());
        let id = c.encode("eu", "acme", "abc/def+==");
        let t = c.decode(&id).unwrap();
        assert_eq!(t.region, "eu");
        assert_eq!(t.tenant, "acme");
        assert_eq!(t.backend_id, "abc/def+==");
        // Change the region: the MAC no longer matches.
        let forged = id.replacen("r1.eu.", "r1.us.", 1);
        assert!(c.decode(&forged).is_none());
        assert!(UploadIdCodec::new(b"k2".to_vec()).decode(&id).is_none());
        assert!(c.decode("garbage").is_none());
        assert!(c.decode("").is_none());
    }
}
