//! Who decides: the privacy team's Ed25519 keys.
//!
//! Seed (Government Data Request Policy, 3.1): a request goes to "Zendesk's
//! Chief Privacy Officer and Privacy Team (collectively, the “Privacy
//! Team”)", which reviews it (3.3). The disclosure settings list the team
//! (`[[privacy_team]]`: a name and an Ed25519 public key, hex); the member
//! running a command holds the private key (a 32-byte seed, hex, in a file or
//! an environment variable). Entries recorded with a key carry the member's
//! name, public key and a signature over the entry (which names the hash of
//! the entry before it, so a signature cannot be moved to another ledger or
//! position). Approvals, exports and raised limits need a key; two
//! approvals by different members approve a request.

use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::error::DisclosureError;

/// One member of the privacy team, as configured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    /// The member's name, recorded as who did it.
    pub name: String,
    /// The Ed25519 public key, 64 hex digits.
    pub public_key: String,
}

/// The signature on a ledger entry (or a frozen report).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntrySignature {
    /// The member's name.
    pub member: String,
    /// The member's public key, 64 hex digits.
    pub public_key: String,
    /// Ed25519 signature, 128 hex digits.
    pub signature: String,
}

/// The member running a command, with their private key.
#[derive(Clone)]
pub struct Signer {
    member: String,
    key: SigningKey,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("member", &self.member)
            .field("public_key", &self.public_key())
            .finish_non_exhaustive()
    }
}

fn decode_32(hex_text: &str, what: &str) -> Result<[u8; 32], DisclosureError> {
    let bytes = hex::decode(hex_text.trim())
        .map_err(|e| DisclosureError::Invalid(format!("{what} is not hex: {e}")))?;
    bytes.try_into().map_err(|b: Vec<u8>| {
        DisclosureError::Invalid(format!(
            "{what} has {} bytes, an Ed25519 key has 32",
            b.len()
        ))
    })
}

/// Checks the team: distinct names and keys, valid public keys.
///
/// # Errors
/// `Invalid`, naming the member.
pub fn check_team(team: &[Member]) -> Result<(), DisclosureError> {
    for (i, m) in team.iter().enumerate() {
        if m.name.trim().is_empty() {
            return Err(DisclosureError::Invalid(
                "[[privacy_team]]: a member needs a name".to_owned(),
            ));
        }
        let raw = decode_32(&m.public_key, &format!("the public key of {}", m.name))?;
        VerifyingKey::from_bytes(&raw).map_err(|e| {
            DisclosureError::Invalid(format!("the public key of {} is invalid: {e}", m.name))
        })?;
        for other in &team[..i] {
            if other.name == m.name {
                return Err(DisclosureError::Invalid(format!(
                    "[[privacy_team]]: {} is listed twice",
                    m.name
                )));
            }
            if other.public_key.eq_ignore_ascii_case(&m.public_key) {
                return Err(DisclosureError::Invalid(format!(
                    "[[privacy_team]]: {} and {} share a public key",
                    other.name, m.name
                )));
            }
        }
    }
    Ok(())
}

impl Signer {
    /// A new random key for `member` (the `keygen` command).
    ///
    /// # Errors
    /// `Invalid` when the system has no randomness.
    pub fn generate(member: &str) -> Result<Signer, DisclosureError> {
        let mut seed = [0u8; 32];
        getrandom::getrandom(&mut seed)
            .map_err(|e| DisclosureError::Invalid(format!("no randomness for a key: {e}")))?;
        Ok(Signer {
            member: member.to_owned(),
            key: SigningKey::from_bytes(&seed),
        })
    }

    /// The key whose private seed is `secret_hex`, identified against the
    /// team: the member whose configured public key matches.
    ///
    /// # Errors
    /// `Invalid` for a malformed key or one that belongs to no member.
    pub fn from_secret(secret_hex: &str, team: &[Member]) -> Result<Signer, DisclosureError> {
        let key = SigningKey::from_bytes(&decode_32(secret_hex, "the private key")?);
        let public = hex::encode(key.verifying_key().to_bytes());
        let member = team
            .iter()
            .find(|m| m.public_key.eq_ignore_ascii_case(&public))
            .ok_or_else(|| {
                DisclosureError::Invalid(format!(
                    "the private key (public key {public}) belongs to no [[privacy_team]] member"
                ))
            })?;
        Ok(Signer {
            member: member.name.clone(),
            key,
        })
    }

    /// The key whose private seed is `secret_hex`, as `member`, without a
    /// team to check it against (tests, tools).
    ///
    /// # Errors
    /// `Invalid` for a malformed key.
    pub fn named(member: &str, secret_hex: &str) -> Result<Signer, DisclosureError> {
        Ok(Signer {
            member: member.to_owned(),
            key: SigningKey::from_bytes(&decode_32(secret_hex, "the private key")?),
        })
    }

    /// The team entry of this key.
    pub fn as_member(&self) -> Member {
        Member {
            name: self.member.clone(),
            public_key: self.public_key(),
        }
    }

    /// The member's name.
    pub fn member(&self) -> &str {
        &self.member
    }

    /// The public key, 64 hex digits.
    pub fn public_key(&self) -> String {
        hex::encode(self.key.verifying_key().to_bytes())
    }

    /// The private seed, 64 hex digits (written by `keygen` only).
    pub fn secret_hex(&self) -> String {
        hex::encode(self.key.to_bytes())
    }

    /// Signs `message`.
    pub fn sign(&self, message: &[u8]) -> EntrySignature {
        EntrySignature {
            member: self.member.clone(),
            public_key: self.public_key(),
            signature: hex::encode(self.key.sign(message).to_bytes()),
        }
    }
}

impl EntrySignature {
    /// Whether the signature over `message` verifies with its public key.
    pub fn verifies(&self, message: &[u8]) -> bool {
        let Ok(raw) = decode_32(&self.public_key, "public key") else {
            return false;
        };
        let Ok(key) = VerifyingKey::from_bytes(&raw) else {
            return false;
        };
        let Ok(sig) = hex::decode(&self.signature) else {
            return false;
        };
        let Ok(sig) = Signature::from_slice(&sig) else {
            return false;
        };
        key.verify(message, &sig).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_verify() {
        let a = Signer::generate("alice").unwrap();
        let team = vec![Member {
            name: "alice".into(),
            public_key: a.public_key(),
        }];
        check_team(&team).unwrap();
        let again = Signer::from_secret(&a.secret_hex(), &team).unwrap();
        assert_eq!(again.member(), "alice");
        let s = again.sign(b"hello");
        assert!(s.verifies(b"hello"));
        assert!(!s.verifies(b"hellO"));
        let b = Signer::generate("bob").unwrap();
        assert!(Signer::from_secret(&b.secret_hex(), &team).is_err());
    }
}
