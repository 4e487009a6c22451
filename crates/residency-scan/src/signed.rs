//! What every signed document shares: the error, the signing key, the
//! document (`{"statement", "signature", "public_key"}`), the tenant's
//! record, signing, verifying, storing in the home region.

use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use residency_policy::{Policy, Tenant};
use residency_store::{Body, PutMeta, StoreError, StoredHeaders};
use serde::{Deserialize, Serialize};

use crate::error::ScanError;
use crate::scan::Scanner;

/// Why an attestation could not be made or checked.
#[derive(Debug, thiserror::Error)]
pub enum AttestError {
    /// Bad input: an unknown tenant, a malformed key or document.
    #[error("{0}")]
    Usage(String),
    /// The scan, a region or the directory failed.
    #[error(transparent)]
    Scan(#[from] ScanError),
    /// A region could not be read or written.
    #[error("region {region}: {source}")]
    Store {
        /// The region.
        region: String,
        /// The error.
        source: StoreError,
    },
}

pub(crate) fn store(region: &str) -> impl FnOnce(StoreError) -> AttestError + '_ {
    move |source| AttestError::Store {
        region: region.to_owned(),
        source,
    }
}

/// A signing key from 64 hex characters (the 32-byte Ed25519 seed).
///
/// # Errors
/// Not 64 hex characters.
pub fn signing_key(hex_seed: &str) -> Result<SigningKey, AttestError> {
    let bytes = hex::decode(hex_seed.trim()).map_err(|e| {
        AttestError::Usage(format!(
            "the attestation key is not hex ({e}): 64 hex characters"
        ))
    })?;
    let seed: [u8; 32] = bytes.try_into().map_err(|_| {
        AttestError::Usage("the attestation key must be 32 bytes (64 hex characters)".into())
    })?;
    Ok(SigningKey::from_bytes(&seed))
}

/// The tenant's directory record, as a statement records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantRecord {
    /// Tenant id.
    pub id: String,
    /// Locality (`None`: the policy's default region).
    pub locality: Option<String>,
    /// Strict locality.
    pub strict: bool,
    /// Optional features enabled.
    pub features: Vec<String>,
    /// The region an open migration moves from.
    pub migrating_from: Option<String>,
    /// The region a finished migration moved from.
    pub migrated_from: Option<String>,
    /// Where its ledger and attestations are kept.
    pub home_region: String,
}

impl TenantRecord {
    pub(crate) fn of(policy: &Policy, t: &Tenant) -> Self {
        let region = |r| policy.region(r).id().to_owned();
        TenantRecord {
            id: t.id().to_owned(),
            locality: t.locality().map(region),
            strict: t.is_strict(),
            features: t
                .features()
                .iter()
                .map(|f| policy.feature_name(f).to_owned())
                .collect(),
            migrating_from: t.migrating_from().map(region),
            migrated_from: t.migrated_from().map(region),
            home_region: region(t.home_region(policy)),
        }
    }
}

/// An attestation: the statement, its signature and the signer's key.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Attestation {
    /// The statement, as signed.
    pub statement: serde_json::Value,
    /// Ed25519 signature over the statement's JSON bytes (hex).
    pub signature: String,
    /// The signer's public key (hex).
    pub public_key: String,
}

/// Checks `attestation`'s signature against `expected` (the signer's public
/// key) and returns its statement (its `format` says which kind).
///
/// # Errors
/// A malformed document, another signer, or a signature that does not
/// match the statement's bytes (something in it was changed).
pub fn verify_signature(
    attestation: &Attestation,
    expected: &VerifyingKey,
) -> Result<serde_json::Value, String> {
    let public = hex::decode(&attestation.public_key).map_err(|e| format!("public_key: {e}"))?;
    if public != expected.to_bytes() {
        return Err(format!(
            "signed by key {}, not the expected {}",
            attestation.public_key,
            hex::encode(expected.to_bytes())
        ));
    }
    let sig: [u8; 64] = hex::decode(&attestation.signature)
        .map_err(|e| format!("signature: {e}"))?
        .try_into()
        .map_err(|_| "signature: not 64 bytes".to_owned())?;
    let bytes = serde_json::to_vec(&attestation.statement).map_err(|e| e.to_string())?;
    expected
        .verify(&bytes, &Signature::from_bytes(&sig))
        .map_err(|_| {
            "the signature does not match the statement: it was changed after signing".to_owned()
        })?;
    Ok(attestation.statement.clone())
}

/// Signs `statement` (its exact JSON bytes) with `key`.
pub fn sign<T: Serialize>(statement: &T, key: &SigningKey) -> Attestation {
    let value = serde_json::to_value(statement).expect("a statement serializes");
    let bytes = serde_json::to_vec(&value).expect("a value serializes");
    Attestation {
        statement: value,
        signature: hex::encode(key.sign(&bytes).to_bytes()),
        public_key: hex::encode(key.verifying_key().to_bytes()),
    }
}

/// Stores `attestation` as `name` in `tenant`'s home region; returns
/// `<region>:<name>`.
///
/// # Errors
/// The home region is not configured or refuses the write.
pub async fn store_in_home(
    scanner: &Scanner,
    tenant: &Tenant,
    name: &str,
    attestation: &Attestation,
) -> Result<String, AttestError> {
    let policy = scanner.policy();
    let home = policy.region(tenant.home_region(policy)).id().to_owned();
    let (_, backend) = scanner
        .backends()
        .iter()
        .find(|(r, _)| *r == home)
        .ok_or_else(|| AttestError::Usage(format!("the home region {home} is not configured")))?;
    backend
        .put_object(
            name,
            Body::from_bytes(serde_json::to_vec_pretty(attestation).expect("json").into()),
            PutMeta {
                headers: StoredHeaders {
                    content_type: Some("application/json".into()),
                    ..StoredHeaders::default()
                },
                ..PutMeta::default()
            },
        )
        .await
        .map_err(|source| AttestError::Store {
            region: home.clone(),
            source,
        })?;
    Ok(format!("{home}:{name}"))
}
