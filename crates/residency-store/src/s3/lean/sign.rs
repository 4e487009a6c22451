//! SigV4 for the lean path: the canonical request is built here, for the
//! few headers these calls carry, and signed with `aws-sigv4`'s own key
//! derivation and signature functions, the signing key kept per day.
//!
//! Why not `aws_sigv4::http_request::sign`, which builds the canonical
//! request itself: it derives the signing key (four HMACs) on every call.
//! Measured A/B in one run (`benches/sign.rs`, a 4 KiB PUT, load ~8 on 2
//! cores): this signer 2.93–3.14 µs, `http_request::sign` 7.95–8.33 µs
//! (a second run: 6.8–10.4 vs 17.8–32.4 µs). See `docs/performance.md`.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwapOption;
use http::header::{HeaderName, HeaderValue};
use sha2::{Digest as _, Sha256};

use crate::s3::config::S3BackendConfig;

/// The payload hash sent and signed: the body is not hashed.
pub(super) const UNSIGNED: &str = "UNSIGNED-PAYLOAD";

/// Extra request headers, in the order they were added.
#[derive(Debug, Default, Clone)]
pub(crate) struct Headers(pub(super) Vec<(HeaderName, HeaderValue)>);

impl Headers {
    /// Adds a header; `None` when the name or value is not valid HTTP.
    pub(super) fn push(&mut self, name: &str, value: &str) -> Option<()> {
        let name = HeaderName::from_bytes(name.as_bytes()).ok()?;
        let value = HeaderValue::from_str(value).ok()?;
        self.0.push((name, value));
        Some(())
    }
}

/// `YYYYMMDD` and `YYYYMMDDTHHMMSSZ` for a Unix time in seconds.
fn amz_dates(unix: u64) -> ([u8; 8], [u8; 16]) {
    // RFC 3339 (`2026-11-30T23:59:59Z`, whole seconds) without `-` and `:`.
    let rfc3339 = aws_smithy_types::DateTime::from_secs(i64::try_from(unix).unwrap_or(i64::MAX))
        .fmt(aws_smithy_types::date_time::Format::DateTime)
        .unwrap_or_default();
    let mut stamp = [b'0'; 16];
    for (slot, b) in stamp
        .iter_mut()
        .zip(rfc3339.bytes().filter(|b| !matches!(b, b'-' | b':')))
    {
        *slot = b;
    }
    let mut date = [0u8; 8];
    date.copy_from_slice(&stamp[..8]);
    (date, stamp)
}

/// SigV4 for one access key and region, `UNSIGNED-PAYLOAD`, the signing key
/// kept for the day it was derived for.
pub(super) struct Signer {
    access_key: String,
    secret_key: String,
    region: String,
    pub(super) token: Option<HeaderValue>,
    /// `(YYYYMMDD, key)` of the last day signed for.
    key: ArcSwapOption<([u8; 8], [u8; 32])>,
}

pub(super) struct Signed {
    pub(super) amz_date: HeaderValue,
    pub(super) authorization: HeaderValue,
}

impl Signer {
    pub(super) fn new(config: &S3BackendConfig) -> Self {
        Self {
            access_key: config.access_key.clone(),
            secret_key: config.secret_key.clone(),
            region: config.region.clone(),
            token: config
                .session_token
                .as_deref()
                .and_then(|t| HeaderValue::from_str(t).ok()),
            key: ArcSwapOption::empty(),
        }
    }

    fn signing_key(&self, date: [u8; 8], now: SystemTime) -> [u8; 32] {
        if let Some(k) = self.key.load().as_ref() {
            if k.0 == date {
                return k.1;
            }
        }
        let derived =
            aws_sigv4::sign::v4::generate_signing_key(&self.secret_key, now, &self.region, "s3");
        let mut key = [0u8; 32];
        key.copy_from_slice(derived.as_ref());
        self.key.store(Some(Arc::new((date, key))));
        key
    }

    pub(super) fn sign(
        &self,
        method: &str,
        host: &HeaderValue,
        path: &str,
        headers: &Headers,
    ) -> Signed {
        self.sign_at(SystemTime::now(), method, host, path, headers)
    }

    fn sign_at(
        &self,
        now: SystemTime,
        method: &str,
        host: &HeaderValue,
        path: &str,
        headers: &Headers,
    ) -> Signed {
        let unix = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let (date, stamp) = amz_dates(unix);
        let date_s = std::str::from_utf8(&date).expect("ascii digits");
        let stamp_s = std::str::from_utf8(&stamp).expect("ascii digits");
        // Canonical headers: every header sent, names lower-case and sorted,
        // values trimmed with inner runs of spaces folded.
        let mut signed: Vec<(&str, &[u8])> = Vec::with_capacity(headers.0.len() + 4);
        signed.push(("host", host.as_bytes()));
        signed.push(("x-amz-content-sha256", UNSIGNED.as_bytes()));
        signed.push(("x-amz-date", &stamp));
        if let Some(t) = &self.token {
            signed.push(("x-amz-security-token", t.as_bytes()));
        }
        for (n, v) in &headers.0 {
            signed.push((n.as_str(), v.as_bytes()));
        }
        signed.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut canonical = String::with_capacity(256 + path.len());
        canonical.push_str(method);
        canonical.push('\n');
        canonical.push_str(path);
        canonical.push_str("\n\n");
        let mut names = String::with_capacity(96);
        for (i, (n, v)) in signed.iter().enumerate() {
            canonical.push_str(n);
            canonical.push(':');
            push_header_value(&mut canonical, v);
            canonical.push('\n');
            if i > 0 {
                names.push(';');
            }
            names.push_str(n);
        }
        canonical.push('\n');
        canonical.push_str(&names);
        canonical.push('\n');
        canonical.push_str(UNSIGNED);
        let scope = format!("{date_s}/{}/s3/aws4_request", self.region);
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{stamp_s}\n{scope}\n{}",
            hex::encode(Sha256::digest(canonical.as_bytes()))
        );
        let key = self.signing_key(date, now);
        let signature = aws_sigv4::sign::v4::calculate_signature(key, to_sign.as_bytes());
        let authorization = format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={names}, Signature={signature}",
            self.access_key
        );
        Signed {
            amz_date: HeaderValue::from_bytes(&stamp).expect("ascii digits"),
            authorization: HeaderValue::from_str(&authorization)
                .unwrap_or_else(|_| HeaderValue::from_static("invalid")),
        }
    }
}

/// A header value as SigV4 canonicalizes it: trimmed, runs of spaces folded
/// to one. (Values are visible ASCII: `HeaderValue::from_str` checked.)
fn push_header_value(out: &mut String, v: &[u8]) {
    let s = String::from_utf8_lossy(v);
    let mut space = false;
    for c in s.trim().chars() {
        if c == ' ' {
            if !space {
                out.push(' ');
            }
            space = true;
        } else {
            out.push(c);
            space = false;
        }
    }
}

/// The lean path's signer for the signing A/B bench
/// (`benches/sign.rs`); not part of the API.
#[cfg(feature = "bench")]
#[doc(hidden)]
#[derive(Debug)]
pub struct BenchSigner {
    signer: Signer,
    host: HeaderValue,
}

#[cfg(feature = "bench")]
impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer").finish_non_exhaustive()
    }
}

#[cfg(feature = "bench")]
impl BenchSigner {
    /// A signer for `config`, sending to `host`.
    pub fn new(config: &S3BackendConfig, host: &str) -> Self {
        Self {
            signer: Signer::new(config),
            host: HeaderValue::from_str(host).expect("a valid host"),
        }
    }

    /// Signs a request at `now`; `(authorization, x-amz-date)`.
    pub fn sign(
        &self,
        now: SystemTime,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (HeaderValue, HeaderValue) {
        let mut h = Headers::default();
        for (n, v) in headers {
            h.push(n, v).expect("valid headers");
        }
        let s = self.signer.sign_at(now, method, &self.host, path, &h);
        (s.authorization, s.amz_date)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::s3::lean::tests::config;
    use crate::s3::path::encode_key;

    #[test]
    fn dates() {
        let s = |u| {
            let (d, t) = amz_dates(u);
            (
                String::from_utf8(d.to_vec()).unwrap(),
                String::from_utf8(t.to_vec()).unwrap(),
            )
        };
        assert_eq!(s(0), ("19700101".into(), "19700101T000000Z".into()));
        assert_eq!(
            s(1_440_938_160),
            ("20150830".into(), "20150830T123600Z".into())
        );
        assert_eq!(s(951_782_400).0, "20000229");
        assert_eq!(s(1_796_083_199).1, "20261130T235959Z");
        assert_eq!(s(1_796_083_200).1, "20261201T000000Z");
    }

    /// The signature equals what `aws-sigv4`'s full request signer computes
    /// for the same request, headers with odd spacing and a session token
    /// included.
    #[test]
    fn signature_matches_aws_sigv4() {
        use aws_sigv4::http_request::{
            sign, PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings,
        };
        use aws_sigv4::sign::v4::SigningParams;
        let mut cfg = config();
        cfg.session_token = Some("token/with+chars=".into());
        let signer = Signer::new(&cfg);
        let host = HeaderValue::from_static("127.0.0.1:3900");
        let mut headers = Headers::default();
        headers.push("content-length", "5").unwrap();
        headers.push("content-type", "text/plain").unwrap();
        headers
            .push("x-amz-meta-origin", "  two  spaces  ")
            .unwrap();
        headers.push("x-amz-checksum-crc32", "AAAAAA==").unwrap();
        let key = "tickets/a b+c/é~.json";
        let path = format!("/residency-eu/{}", encode_key(key));
        let now = UNIX_EPOCH + Duration::from_secs(1_795_996_799);
        for _ in 0..2 {
            // twice: the second signature uses the cached key
            let ours = signer.sign_at(now, "PUT", &host, &path, &headers);
            let stamp = ours.amz_date.to_str().unwrap().to_owned();
            let all: Vec<(String, String)> = [
                ("host".to_string(), "127.0.0.1:3900".to_string()),
                ("x-amz-content-sha256".into(), UNSIGNED.into()),
                ("x-amz-date".into(), stamp.clone()),
                ("x-amz-security-token".into(), "token/with+chars=".into()),
            ]
            .into_iter()
            .chain(
                headers
                    .0
                    .iter()
                    .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_owned())),
            )
            .collect();
            let identity = aws_credential_types::Credentials::new(
                "AKIDEXAMPLE",
                "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                Some("token/with+chars=".into()),
                None,
                "test",
            )
            .into();
            let mut settings = SigningSettings::default();
            settings.payload_checksum_kind = PayloadChecksumKind::NoHeader;
            settings.percent_encoding_mode = aws_sigv4::http_request::PercentEncodingMode::Single;
            settings.uri_path_normalization_mode =
                aws_sigv4::http_request::UriPathNormalizationMode::Disabled;
            let params = SigningParams::builder()
                .identity(&identity)
                .region("eu-west-1")
                .name("s3")
                .time(now)
                .settings(settings)
                .build()
                .unwrap()
                .into();
            let signable = SignableRequest::new(
                "PUT",
                format!("http://127.0.0.1:3900/residency-eu/{}", encode_key(key)),
                all.iter().map(|(n, v)| (n.as_str(), v.as_str())),
                SignableBody::UnsignedPayload,
            )
            .unwrap();
            let (instructions, theirs) = sign(signable, &params).unwrap().into_parts();
            let auth = ours.authorization.to_str().unwrap();
            assert!(
                auth.ends_with(&format!("Signature={theirs}")),
                "{auth} vs {theirs}"
            );
            let (their_headers, _) = instructions.into_parts();
            let their_auth = their_headers
                .iter()
                .find(|h| h.name() == "authorization")
                .map(|h| h.value().to_owned())
                .unwrap();
            assert_eq!(auth, their_auth);
        }
    }
}
