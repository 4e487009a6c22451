//! Computing and verifying MD5 / ETags and the S3 `x-amz-checksum-*` values.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use crc_fast::{CrcAlgorithm, Digest as Crc};
use md5::{Digest as _, Md5};
use sha1::Sha1;
use sha2::Sha256;

use crate::error::StoreError;
use crate::object::Checksums;

/// Hashes a body as it streams by: MD5 always (for the ETag), and every
/// checksum the client sent (to verify it).
pub(crate) struct BodyHasher {
    md5: Md5,
    crc32: Option<Crc>,
    crc32c: Option<Crc>,
    crc64nvme: Option<Crc>,
    sha1: Option<Sha1>,
    sha256: Option<Sha256>,
    len: u64,
}

/// What [`BodyHasher`] computed.
pub(crate) struct Digests {
    pub(crate) md5: [u8; 16],
    pub(crate) len: u64,
    /// The computed `x-amz-checksum-*` values (those that were asked for).
    pub(crate) checksums: Checksums,
}

impl Digests {
    pub(crate) fn etag(&self) -> String {
        etag_of(&self.md5)
    }
}

fn check_len(name: &str, value: &Option<String>, len: usize) -> Result<(), StoreError> {
    if let Some(v) = value {
        match B64.decode(v.trim()) {
            Ok(raw) if raw.len() == len => {}
            _ => {
                return Err(StoreError::InvalidDigest {
                    detail: format!("the {name} you specified is not valid base64 of {len} bytes"),
                })
            }
        }
    }
    Ok(())
}

impl BodyHasher {
    /// A hasher for a body expected to carry `expected`.
    ///
    /// # Errors
    /// `InvalidDigest` when a checksum is not base64 of the right size.
    pub(crate) fn new(expected: &Checksums) -> Result<Self, StoreError> {
        check_len("Content-MD5", &expected.content_md5, 16)?;
        check_len("crc32", &expected.crc32, 4)?;
        check_len("crc32c", &expected.crc32c, 4)?;
        check_len("crc64nvme", &expected.crc64nvme, 8)?;
        check_len("sha1", &expected.sha1, 20)?;
        check_len("sha256", &expected.sha256, 32)?;
        let compute = |alg: &str| {
            expected
                .compute
                .as_deref()
                .is_some_and(|c| c.eq_ignore_ascii_case(alg))
        };
        Ok(Self {
            md5: Md5::new(),
            crc32: (expected.crc32.is_some() || compute("crc32"))
                .then(|| Crc::new(CrcAlgorithm::Crc32IsoHdlc)),
            crc32c: (expected.crc32c.is_some() || compute("crc32c"))
                .then(|| Crc::new(CrcAlgorithm::Crc32Iscsi)),
            crc64nvme: (expected.crc64nvme.is_some() || compute("crc64nvme"))
                .then(|| Crc::new(CrcAlgorithm::Crc64Nvme)),
            sha1: (expected.sha1.is_some() || compute("sha1")).then(Sha1::new),
            sha256: (expected.sha256.is_some() || compute("sha256")).then(Sha256::new),
            len: 0,
        })
    }

    /// Bytes hashed so far.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    pub(crate) fn update(&mut self, data: &[u8]) {
        self.len += data.len() as u64;
        self.md5.update(data);
        for crc in [&mut self.crc32, &mut self.crc32c, &mut self.crc64nvme]
            .into_iter()
            .flatten()
        {
            crc.update(data);
        }
        if let Some(h) = &mut self.sha1 {
            h.update(data);
        }
        if let Some(h) = &mut self.sha256 {
            h.update(data);
        }
    }

    pub(crate) fn finish(self) -> Digests {
        let crc32 = |c: Crc| B64.encode((c.finalize() as u32).to_be_bytes());
        Digests {
            md5: self.md5.finalize().into(),
            len: self.len,
            checksums: Checksums {
                content_md5: None,
                compute: None,
                crc32: self.crc32.map(crc32),
                crc32c: self.crc32c.map(crc32),
                crc64nvme: self
                    .crc64nvme
                    .map(|c| B64.encode(c.finalize().to_be_bytes())),
                sha1: self.sha1.map(|h| B64.encode(h.finalize())),
                sha256: self.sha256.map(|h| B64.encode(h.finalize())),
            },
        }
    }
}

/// Checks a body that has ended: as long as `declared` (when declared), and
/// its digests as the client sent them ([`verify`]).
///
/// # Errors
/// `IncompleteBody` for another length; `BadDigest` as [`verify`].
pub(crate) fn verify_ended(
    declared: Option<u64>,
    expected: &Checksums,
    got: &Digests,
) -> Result<(), StoreError> {
    if let Some(expected) = declared {
        if expected != got.len {
            return Err(StoreError::IncompleteBody {
                expected,
                actual: got.len,
            });
        }
    }
    verify(expected, got)
}

/// Checks the computed digests against what the client sent.
///
/// # Errors
/// `BadDigest` naming the first checksum that does not match.
pub(crate) fn verify(expected: &Checksums, got: &Digests) -> Result<(), StoreError> {
    let bad = |name: &str| StoreError::BadDigest {
        detail: format!("the {name} you specified did not match the calculated checksum"),
    };
    if let Some(md5) = &expected.content_md5 {
        if B64.decode(md5.trim()).ok().as_deref() != Some(&got.md5[..]) {
            return Err(bad("Content-MD5"));
        }
    }
    let pairs = [
        ("crc32", &expected.crc32, &got.checksums.crc32),
        ("crc32c", &expected.crc32c, &got.checksums.crc32c),
        ("crc64nvme", &expected.crc64nvme, &got.checksums.crc64nvme),
        ("sha1", &expected.sha1, &got.checksums.sha1),
        ("sha256", &expected.sha256, &got.checksums.sha256),
    ];
    for (name, want, have) in pairs {
        if let Some(want) = want {
            if Some(want.trim()) != have.as_deref() {
                return Err(bad(name));
            }
        }
    }
    Ok(())
}

/// `"<md5 hex>"`.
pub(crate) fn etag_of(md5: &[u8; 16]) -> String {
    format!("\"{}\"", hex::encode(md5))
}

/// The ETag S3 gives a multipart object: the MD5 of the parts' binary MD5s,
/// then `-<number of parts>`.
pub(crate) fn multipart_etag<'a>(part_md5s: impl IntoIterator<Item = &'a [u8; 16]>) -> String {
    let mut h = Md5::new();
    let mut n = 0usize;
    for md5 in part_md5s {
        h.update(md5);
        n += 1;
    }
    format!("\"{}-{n}\"", hex::encode(h.finalize()))
}

/// The bare hex of an ETag, quoted or not.
pub(crate) fn unquote(etag: &str) -> &str {
    etag.trim().trim_matches('"')
}

/// Checksums of `data` for tests and for callers that build requests
/// (the conformance suite): Content-MD5, crc32, crc32c, sha1, sha256, crc64nvme.
pub fn checksums_of(data: &[u8]) -> Checksums {
    let mut h = BodyHasher {
        md5: Md5::new(),
        crc32: Some(Crc::new(CrcAlgorithm::Crc32IsoHdlc)),
        crc32c: Some(Crc::new(CrcAlgorithm::Crc32Iscsi)),
        crc64nvme: Some(Crc::new(CrcAlgorithm::Crc64Nvme)),
        sha1: Some(Sha1::new()),
        sha256: Some(Sha256::new()),
        len: 0,
    };
    h.update(data);
    let d = h.finish();
    Checksums {
        content_md5: Some(B64.encode(d.md5)),
        ..d.checksums
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        // Reference values for "123456789" from the CRC catalogue.
        let c = checksums_of(b"123456789");
        assert_eq!(c.crc32.unwrap(), B64.encode(0xcbf4_3926u32.to_be_bytes()));
        assert_eq!(c.crc32c.unwrap(), B64.encode(0xe306_9283u32.to_be_bytes()));
        assert_eq!(
            c.crc64nvme.unwrap(),
            B64.encode(0xae8b_1486_0a79_9888u64.to_be_bytes())
        );
        let empty = checksums_of(b"");
        assert_eq!(empty.content_md5.unwrap(), "1B2M2Y8AsgTpgAmY7PhCfg==");
        assert_eq!(
            empty.sha256.unwrap(),
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
    }

    #[test]
    fn verify_detects_mismatch_and_malformed() {
        let good = checksums_of(b"hello");
        let mut h = BodyHasher::new(&good).unwrap();
        h.update(b"hello");
        let d = h.finish();
        verify(&good, &d).unwrap();
        assert_eq!(d.etag(), "\"5d41402abc4b2a76b9719d911017c592\"");

        let mut h = BodyHasher::new(&good).unwrap();
        h.update(b"hellO");
        assert!(matches!(
            verify(&good, &h.finish()),
            Err(StoreError::BadDigest { .. })
        ));

        let bad = Checksums {
            sha256: Some("not base64!".into()),
            ..Checksums::default()
        };
        assert!(matches!(
            BodyHasher::new(&bad),
            Err(StoreError::InvalidDigest { .. })
        ));
    }

    #[test]
    fn multipart_etag_like_s3() {
        let a = [0u8; 16];
        let e = multipart_etag([&a, &a]);
        assert!(e.ends_with("-2\""), "{e}");
        assert_eq!(e.len(), 2 + 32 + 2);
    }
}
