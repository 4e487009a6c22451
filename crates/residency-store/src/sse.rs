//! Server-side encryption a request asks for, and what a backend reports.
//!
//! Three kinds, as S3 has them: a customer-provided key (SSE-C: the key
//! travels with every request for the object and the service never keeps
//! it), service-managed keys (SSE-S3, `AES256`) and KMS keys (SSE-KMS,
//! `aws:kms`, with a key id). A backend that cannot honour what a request asks
//! refuses it ([`StoreError::EncryptionUnsupported`]); nothing is stored
//! unencrypted instead.
//!
//! The customer key is secret: [`CustomerKey`]'s `Debug` prints only its MD5,
//! and its memory is zeroed when it is dropped. It is never logged, never put
//! in an audit record and never stored.

use zeroize::Zeroizing;

use crate::error::StoreError;

/// A customer-provided key (SSE-C): the algorithm (`AES256`), the key as
/// base64 (as in `x-amz-server-side-encryption-customer-key`) and the
/// base64 MD5 of the key bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct CustomerKey {
    algorithm: String,
    key_base64: Zeroizing<String>,
    key_md5: String,
}

impl CustomerKey {
    /// A key from a request's headers, checked as S3 checks it: the algorithm
    /// must be `AES256`, the key 32 bytes of base64 and the MD5, when given,
    /// the key's. `what` names the header family in errors
    /// (`x-amz-server-side-encryption-customer` or
    /// `x-amz-copy-source-server-side-encryption-customer`).
    ///
    /// # Errors
    /// `InvalidArgument` (400) naming what is wrong; never the key.
    pub fn parse(
        algorithm: &str,
        key_base64: &str,
        key_md5: Option<&str>,
        what: &str,
    ) -> Result<Self, StoreError> {
        use base64::Engine as _;
        use md5::Digest as _;
        if algorithm != "AES256" {
            return Err(StoreError::invalid_argument(format!(
                "{what}-algorithm must be AES256"
            )));
        }
        let bytes = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(key_base64)
                .map_err(|_| {
                    StoreError::invalid_argument(format!("{what}-key is not valid base64"))
                })?,
        );
        if bytes.len() != 32 {
            return Err(StoreError::invalid_argument(format!(
                "{what}-key must be 256 bits (32 bytes) for AES256"
            )));
        }
        let md5 = base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(&*bytes));
        if let Some(given) = key_md5 {
            if given != md5 {
                return Err(StoreError::invalid_argument(format!(
                    "The calculated MD5 hash of the key did not match the hash that was provided ({what}-key-MD5)"
                )));
            }
        }
        Ok(Self {
            algorithm: algorithm.to_owned(),
            key_base64: Zeroizing::new(key_base64.to_owned()),
            key_md5: md5,
        })
    }

    /// `AES256`.
    pub fn algorithm(&self) -> &str {
        &self.algorithm
    }

    /// The key, base64: only for the request to the region's service.
    pub fn key_base64(&self) -> &str {
        &self.key_base64
    }

    /// The base64 MD5 of the key (what S3 answers in `...-customer-key-MD5`).
    pub fn key_md5(&self) -> &str {
        &self.key_md5
    }
}

impl std::fmt::Debug for CustomerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CustomerKey")
            .field("algorithm", &self.algorithm)
            .field("key", &"<redacted>")
            .field("key_md5", &self.key_md5)
            .finish()
    }
}

/// Service-side encryption asked for with `x-amz-server-side-encryption`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerSide {
    /// `AES256`: keys the service manages (SSE-S3).
    S3,
    /// `aws:kms`: a KMS key (SSE-KMS); `None` asks for the region's default key.
    Kms {
        /// `x-amz-server-side-encryption-aws-kms-key-id`.
        key_id: Option<String>,
        /// `x-amz-server-side-encryption-context` (base64 JSON), passed on.
        context: Option<String>,
    },
}

impl ServerSide {
    /// The header value (`AES256`, `aws:kms`).
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::S3 => "AES256",
            Self::Kms { .. } => "aws:kms",
        }
    }
}

/// The encryption one backend call carries. Empty (the default) asks for
/// none: the object is stored as the bucket stores objects.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sse {
    /// SSE-C: the key of the object written or read.
    pub customer: Option<CustomerKey>,
    /// SSE-C: the key of a copy's source object.
    pub copy_source_customer: Option<CustomerKey>,
    /// SSE-S3 or SSE-KMS for the object written.
    pub server_side: Option<ServerSide>,
}

impl Sse {
    /// True when the call asks for no encryption.
    pub fn is_empty(&self) -> bool {
        self.customer.is_none() && self.copy_source_customer.is_none() && self.server_side.is_none()
    }

    /// What the call asks for, for an error message (never the key).
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.customer.is_some() || self.copy_source_customer.is_some() {
            parts.push("SSE-C (customer-provided keys)".to_owned());
        }
        match &self.server_side {
            Some(ServerSide::S3) => parts.push("SSE-S3 (AES256)".to_owned()),
            Some(ServerSide::Kms { .. }) => parts.push("SSE-KMS (aws:kms)".to_owned()),
            None => {}
        }
        parts.join(" and ")
    }
}

/// What a region's backend honours, as configured (`residency.toml`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseSupport {
    /// SSE-C is passed to the service, which encrypts with the client's key.
    pub customer: bool,
    /// SSE-S3 is passed to the service, which encrypts.
    pub s3: bool,
    /// The KMS key ids (ids or ARNs) of the region; the first is the default.
    /// Empty: SSE-KMS is refused.
    pub kms_key_ids: Vec<String>,
}

impl SseSupport {
    /// Checks `sse` against what the backend honours and fills in the
    /// region's default KMS key for `aws:kms` without a key id.
    ///
    /// # Errors
    /// [`StoreError::EncryptionUnsupported`] when the backend cannot honour
    /// it; [`StoreError::EncryptionDenied`] for a KMS key id that is not the
    /// region's.
    pub fn resolve(&self, kind: &str, sse: &mut Sse) -> Result<(), StoreError> {
        let unsupported = |what: &str| StoreError::EncryptionUnsupported {
            message: format!(
                "the region's {kind} backend cannot honour {what}; nothing was stored"
            ),
        };
        if (sse.customer.is_some() || sse.copy_source_customer.is_some()) && !self.customer {
            return Err(unsupported("SSE-C (customer-provided keys)"));
        }
        match &mut sse.server_side {
            None => Ok(()),
            Some(ServerSide::S3) if self.s3 => Ok(()),
            Some(ServerSide::S3) => Err(unsupported("SSE-S3 (x-amz-server-side-encryption: AES256)")),
            Some(ServerSide::Kms { .. }) if self.kms_key_ids.is_empty() => Err(unsupported(
                "SSE-KMS (x-amz-server-side-encryption: aws:kms): it names no KMS key",
            )),
            Some(ServerSide::Kms { key_id, .. }) => match key_id {
                None => {
                    *key_id = self.kms_key_ids.first().cloned();
                    Ok(())
                }
                Some(id) if self.kms_key_ids.iter().any(|k| k == id) => Ok(()),
                Some(id) => Err(StoreError::EncryptionDenied {
                    message: format!(
                        "the KMS key {id:?} is not a key of the region the object is placed in; a region's objects are encrypted only with its own keys"
                    ),
                }),
            },
        }
    }
}

/// The encryption a service reports for an object or a write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseReport {
    /// `x-amz-server-side-encryption` (`AES256`, `aws:kms`).
    pub server_side: Option<String>,
    /// `x-amz-server-side-encryption-aws-kms-key-id`.
    pub kms_key_id: Option<String>,
    /// `x-amz-server-side-encryption-customer-algorithm`.
    pub customer_algorithm: Option<String>,
    /// `x-amz-server-side-encryption-customer-key-MD5`.
    pub customer_key_md5: Option<String>,
}

impl SseReport {
    /// The encryption headers of an HTTP answer.
    pub fn from_http(h: &http::HeaderMap) -> Self {
        let get = |name: &str| h.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        Self {
            server_side: get("x-amz-server-side-encryption"),
            kms_key_id: get("x-amz-server-side-encryption-aws-kms-key-id"),
            customer_algorithm: get("x-amz-server-side-encryption-customer-algorithm"),
            customer_key_md5: get("x-amz-server-side-encryption-customer-key-md5"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "a2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2s="; // 32 × 'k'

    #[test]
    fn a_customer_key_is_checked_and_never_printed() {
        let k = CustomerKey::parse("AES256", KEY, None, "x").unwrap();
        assert_eq!(k.key_md5(), "mT2HRsMGJ5IX5C+0rreZ8Q==");
        let shown = format!(
            "{k:?} {:?}",
            Sse {
                customer: Some(k.clone()),
                ..Sse::default()
            }
        );
        assert!(!shown.contains(KEY) && !shown.contains("kkkk"), "{shown}");
        assert!(CustomerKey::parse("AES256", KEY, Some(k.key_md5()), "x").is_ok());
        for (alg, key, md5, needle) in [
            ("AES128", KEY, None, "must be AES256"),
            ("AES256", "a2tr", None, "256 bits"),
            ("AES256", "!!", None, "base64"),
            ("AES256", KEY, Some("AAAA"), "MD5"),
        ] {
            let e = CustomerKey::parse(alg, key, md5, "x").unwrap_err();
            assert!(e.to_string().contains(needle), "{e}");
            assert!(!e.to_string().contains(KEY));
            assert_eq!(e.http_status(), 400);
        }
    }

    #[test]
    fn support_refuses_what_it_cannot_honour_and_picks_the_default_kms_key() {
        let none = SseSupport::default();
        let key = CustomerKey::parse("AES256", KEY, None, "x").unwrap();
        let mut c = Sse {
            customer: Some(key),
            ..Sse::default()
        };
        let e = none.resolve("dir", &mut c).unwrap_err();
        assert_eq!((e.s3_code(), e.http_status()), ("NotImplemented", 501));
        assert!(
            e.to_string().contains("dir backend cannot honour SSE-C"),
            "{e}"
        );
        let mut s3 = Sse {
            server_side: Some(ServerSide::S3),
            ..Sse::default()
        };
        assert!(none.resolve("s3", &mut s3).is_err());
        let kms = SseSupport {
            kms_key_ids: vec!["eu-1".into(), "eu-2".into()],
            ..SseSupport::default()
        };
        let mut k = Sse {
            server_side: Some(ServerSide::Kms {
                key_id: None,
                context: None,
            }),
            ..Sse::default()
        };
        kms.resolve("s3", &mut k).unwrap();
        assert_eq!(
            k.server_side,
            Some(ServerSide::Kms {
                key_id: Some("eu-1".into()),
                context: None
            })
        );
        let mut other = Sse {
            server_side: Some(ServerSide::Kms {
                key_id: Some("us-1".into()),
                context: None,
            }),
            ..Sse::default()
        };
        let e = kms.resolve("s3", &mut other).unwrap_err();
        assert_eq!((e.s3_code(), e.http_status()), ("AccessDenied", 403));
        let mut eu2 = Sse {
            server_side: Some(ServerSide::Kms {
                key_id: Some("eu-2".into()),
                context: None,
            }),
            ..Sse::default()
        };
        kms.resolve("s3", &mut eu2).unwrap();
    }
}
