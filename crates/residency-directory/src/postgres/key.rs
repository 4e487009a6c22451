//! The key-encryption key that seals every secret in the database.

use std::fmt;
use std::path::Path;

use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};

/// The environment variable holding the key-encryption key (64 hex digits).
pub const DIRECTORY_KEY_ENV: &str = "RESIDENCY_DIRECTORY_KEY";

/// Length of a sealed secret's nonce (XChaCha20-Poly1305).
pub const NONCE_LEN: usize = 24;

/// Why a key-encryption key could not be read, or a secret not opened.
///
/// No message ever holds a key or a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The key text is not 64 hex digits.
    #[error("the directory key from {0} must be 32 bytes written as 64 hex digits")]
    BadKey(String),
    /// The key file cannot be read.
    #[error("cannot read the directory key file {path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The secret is sealed under a key that is not configured.
    #[error("the secret of access key {access_key:?} is sealed under key-encryption key {kek_id}, which is not configured (configured: {configured})")]
    UnknownKek {
        /// The access key.
        access_key: String,
        /// The key id the row names.
        kek_id: String,
        /// The configured key ids, comma-separated.
        configured: String,
    },
    /// No key is configured.
    #[error("the PostgreSQL directory needs a key-encryption key: set RESIDENCY_DIRECTORY_KEY (64 hex digits) or `directory_key_file`")]
    Missing,
    /// The sealed secret does not open under the key its row names.
    #[error("the secret of access key {access_key:?} does not decrypt under key-encryption key {kek_id}: the key or the row is wrong")]
    Decrypt {
        /// The access key.
        access_key: String,
        /// The key id.
        kek_id: String,
    },
}

/// A 32-byte key-encryption key. `Debug` prints its id only.
#[derive(Clone, PartialEq, Eq)]
pub struct DirectoryKey {
    bytes: [u8; 32],
    id: String,
}

impl fmt::Debug for DirectoryKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DirectoryKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl DirectoryKey {
    /// The key from its 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> DirectoryKey {
        let digest = Sha256::digest(bytes);
        let id = hex::encode(&digest[..8]);
        DirectoryKey { bytes, id }
    }

    /// A new random key (for tests and `rotate-key`).
    pub fn generate() -> DirectoryKey {
        let key = XChaCha20Poly1305::generate_key(&mut OsRng);
        DirectoryKey::from_bytes(key.into())
    }

    /// The key from 64 hex digits (surrounding whitespace ignored); `from`
    /// names where the text came from, for the error.
    ///
    /// # Errors
    /// Not 64 hex digits (the text is not repeated in the error).
    pub fn from_hex(text: &str, from: &str) -> Result<DirectoryKey, KeyError> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut bytes)
            .map_err(|_| KeyError::BadKey(from.to_owned()))?;
        Ok(DirectoryKey::from_bytes(bytes))
    }

    /// The key from a file holding its 64 hex digits (`directory_key_file`).
    ///
    /// # Errors
    /// The file cannot be read or does not hold a key.
    pub fn from_file(path: &Path) -> Result<DirectoryKey, KeyError> {
        let text = std::fs::read_to_string(path).map_err(|e| KeyError::File {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        DirectoryKey::from_hex(&text, &path.display().to_string())
    }

    /// The key from `RESIDENCY_DIRECTORY_KEY`, if it is set.
    ///
    /// # Errors
    /// It is set but does not hold a key.
    pub fn from_env() -> Result<Option<DirectoryKey>, KeyError> {
        match std::env::var(DIRECTORY_KEY_ENV) {
            Ok(v) => DirectoryKey::from_hex(&v, DIRECTORY_KEY_ENV).map(Some),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => {
                Err(KeyError::BadKey(DIRECTORY_KEY_ENV.to_owned()))
            }
        }
    }

    /// The key from `RESIDENCY_DIRECTORY_KEY`, else from `file`
    /// (`directory_key_file`).
    ///
    /// # Errors
    /// Neither is given, or the one given does not hold a key.
    pub fn load(file: Option<&Path>) -> Result<DirectoryKey, KeyError> {
        match (DirectoryKey::from_env()?, file) {
            (Some(k), _) => Ok(k),
            (None, Some(path)) => DirectoryKey::from_file(path),
            (None, None) => Err(KeyError::Missing),
        }
    }

    /// The key's id: the first 16 hex digits of its SHA-256 (what a sealed
    /// row names in `kek_id`).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The key as 64 hex digits (to hand a generated key to an operator).
    pub fn to_hex(&self) -> String {
        hex::encode(self.bytes)
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new((&self.bytes).into())
    }

    /// Seals `secret` for `access_key` (its associated data): the nonce and
    /// the ciphertext.
    pub fn seal(&self, access_key: &str, secret: &str) -> (Vec<u8>, Vec<u8>) {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let sealed = self
            .cipher()
            .encrypt(
                &nonce,
                Payload {
                    msg: secret.as_bytes(),
                    aad: access_key.as_bytes(),
                },
            )
            .expect("XChaCha20-Poly1305 seals any secret of a sane length");
        (nonce.to_vec(), sealed)
    }

    /// Opens a secret sealed by [`Self::seal`] for `access_key`.
    ///
    /// # Errors
    /// It does not decrypt (another key, another access key, a damaged row).
    pub fn open(&self, access_key: &str, nonce: &[u8], sealed: &[u8]) -> Result<String, KeyError> {
        let bad = || KeyError::Decrypt {
            access_key: access_key.to_owned(),
            kek_id: self.id.clone(),
        };
        if nonce.len() != NONCE_LEN {
            return Err(bad());
        }
        let plain = self
            .cipher()
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: access_key.as_bytes(),
                },
            )
            .map_err(|_| bad())?;
        String::from_utf8(plain).map_err(|_| bad())
    }
}

/// Opens a secret with whichever of `keys` its row names.
///
/// # Errors
/// No configured key has that id, or it does not decrypt.
pub fn open_with(
    keys: &[DirectoryKey],
    access_key: &str,
    kek_id: &str,
    nonce: &[u8],
    sealed: &[u8],
) -> Result<String, KeyError> {
    match keys.iter().find(|k| k.id == kek_id) {
        Some(k) => k.open(access_key, nonce, sealed),
        None => Err(KeyError::UnknownKek {
            access_key: access_key.to_owned(),
            kek_id: kek_id.to_owned(),
            configured: keys
                .iter()
                .map(|k| k.id.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_opens_and_never_prints_the_key() {
        let key = DirectoryKey::from_hex(&"ab".repeat(32), "test").unwrap();
        assert_eq!(key.id().len(), 16);
        assert!(!format!("{key:?}").contains("abab"));
        let (nonce, sealed) = key.seal("AK", "s3cr3t");
        assert_eq!(nonce.len(), NONCE_LEN);
        assert!(!sealed.windows(6).any(|w| w == b"s3cr3t"));
        assert_eq!(key.open("AK", &nonce, &sealed).unwrap(), "s3cr3t");
        assert!(
            key.open("OTHER", &nonce, &sealed).is_err(),
            "the access key is bound"
        );
        let other = DirectoryKey::generate();
        let err = open_with(
            std::slice::from_ref(&other),
            "AK",
            key.id(),
            &nonce,
            &sealed,
        )
        .unwrap_err();
        assert!(err.to_string().contains("not configured"), "{err}");
        assert!(other.open("AK", &nonce, &sealed).is_err());
        let bad =
            DirectoryKey::from_hex("nothex-secretish", "RESIDENCY_DIRECTORY_KEY").unwrap_err();
        assert!(!bad.to_string().contains("secretish"));
        let from_file = std::env::temp_dir().join(format!("residency-key-{}", std::process::id()));
        std::fs::write(&from_file, format!("{}\n", key.to_hex())).unwrap();
        assert_eq!(DirectoryKey::from_file(&from_file).unwrap(), key);
        if std::env::var_os(DIRECTORY_KEY_ENV).is_none() {
            assert_eq!(DirectoryKey::load(Some(&from_file)).unwrap(), key);
            assert_eq!(DirectoryKey::load(None).unwrap_err(), KeyError::Missing);
        }
        let _ = std::fs::remove_file(from_file);
    }
}
