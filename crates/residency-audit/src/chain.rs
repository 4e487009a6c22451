//! The hash chain every Residency trail is stored as: each link names the
//! SHA-256 (lowercase hex) of the exact stored bytes of the link before it,
//! so an edited, removed or reordered link breaks the chain at the next one.
//!
//! Audit batches (`prev_sha256`, empty before the first batch) and the
//! disclosure ledger (`prev`, 64 zeros before the first entry) differ only in
//! their genesis value; both formats are kept as they are stored.
//!
//! ```
//! use residency_audit::chain::{sha256_hex, HashChain};
//!
//! let mut writer = HashChain::new("");
//! let first = format!("{{\"prev\":\"{}\"}}", writer.head());
//! writer.append(first.as_bytes());
//! let second = format!("{{\"prev\":\"{}\"}}", writer.head());
//! writer.append(second.as_bytes());
//!
//! // A reader follows the same chain and checks each link's `prev`.
//! let mut reader = HashChain::new("");
//! assert!(reader.follows(""));
//! reader.append(first.as_bytes());
//! assert!(reader.follows(&sha256_hex(first.as_bytes())));
//! reader.append(second.as_bytes());
//! assert_eq!(reader.head(), writer.head());
//! ```

use sha2::{Digest, Sha256};

/// The `prev` of the first disclosure ledger entry.
pub const ZERO_GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The end of a chain: the hash the next link must name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HashChain {
    head: String,
}

impl HashChain {
    /// An empty chain whose first link names `genesis`.
    pub fn new(genesis: &str) -> Self {
        Self {
            head: genesis.to_owned(),
        }
    }

    /// A chain that continues after a link whose hash is `head`.
    pub fn resume(head: String) -> Self {
        Self { head }
    }

    /// The hash the next link must name as its previous one.
    pub fn head(&self) -> &str {
        &self.head
    }

    /// Whether a link naming `prev` continues this chain.
    pub fn follows(&self, prev: &str) -> bool {
        self.head == prev
    }

    /// Adds the link stored as `bytes`; returns its hash (the new head).
    pub fn append(&mut self, bytes: &[u8]) -> &str {
        self.head = sha256_hex(bytes);
        &self.head
    }

    /// The head, consuming the chain.
    pub fn into_head(self) -> String {
        self.head
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_known_input() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(ZERO_GENESIS.len(), 64);
    }
}
