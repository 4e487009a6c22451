//! AWS Signature Version 4 for S3 requests with `UNSIGNED-PAYLOAD`: the
//! signing key is derived once per day, so a request costs one SHA-256 of the
//! canonical request and one HMAC.

use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit, Mac};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

pub(crate) const UNSIGNED: &str = "UNSIGNED-PAYLOAD";

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut m = HmacSha256::new_from_slice(key).expect("hmac takes any key length");
    m.update(data);
    m.finalize().into_bytes().into()
}

/// `(YYYYMMDD, YYYYMMDDTHHMMSSZ)` for a Unix time in seconds.
pub(crate) fn amz_dates(unix: u64) -> (String, String) {
    let t = i64::try_from(unix)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let date = format!("{:04}{:02}{:02}", t.year(), u8::from(t.month()), t.day());
    let stamp = format!("{date}T{:02}{:02}{:02}Z", t.hour(), t.minute(), t.second());
    (date, stamp)
}

/// Percent-encodes a path as S3 canonical requests expect (`/` kept).
pub(crate) fn uri_encode_path(path: &str) -> String {
    const KEPT: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~')
        .remove(b'/');
    utf8_percent_encode(path, KEPT).to_string()
}

/// Signs requests for one access key and region.
pub(crate) struct Signer {
    access_key: String,
    secret_key: String,
    region: String,
    /// `(date, signing key)` of the last day signed for.
    cached: Option<(String, [u8; 32])>,
}

/// The headers a signed request carries.
pub(crate) struct Signed {
    pub(crate) amz_date: String,
    pub(crate) authorization: String,
}

impl Signer {
    pub(crate) fn new(access_key: &str, secret_key: &str, region: &str) -> Self {
        Self {
            access_key: access_key.to_owned(),
            secret_key: secret_key.to_owned(),
            region: region.to_owned(),
            cached: None,
        }
    }

    fn signing_key(&mut self, date: &str) -> [u8; 32] {
        if let Some((d, k)) = &self.cached {
            if d == date {
                return *k;
            }
        }
        let k = hmac(
            format!("AWS4{}", self.secret_key).as_bytes(),
            date.as_bytes(),
        );
        let k = hmac(&k, self.region.as_bytes());
        let k = hmac(&k, b"s3");
        let k = hmac(&k, b"aws4_request");
        self.cached = Some((date.to_owned(), k));
        k
    }

    /// Signs `method` on the already-encoded `path` (no query) for `host`.
    pub(crate) fn sign(&mut self, method: &str, host: &str, path: &str) -> Signed {
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let (date, amz_date) = amz_dates(unix);
        let canonical = format!(
            "{method}\n{path}\n\nhost:{host}\nx-amz-content-sha256:{UNSIGNED}\nx-amz-date:{amz_date}\n\nhost;x-amz-content-sha256;x-amz-date\n{UNSIGNED}"
        );
        let scope = format!("{date}/{}/s3/aws4_request", self.region);
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
            hex::encode(Sha256::digest(canonical.as_bytes()))
        );
        let key = self.signing_key(&date);
        let sig = hex::encode(hmac(&key, to_sign.as_bytes()));
        Signed {
            authorization: format!(
                "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature={sig}",
                self.access_key
            ),
            amz_date,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(amz_dates(0), ("19700101".into(), "19700101T000000Z".into()));
        assert_eq!(
            amz_dates(1_440_938_160),
            ("20150830".into(), "20150830T123600Z".into())
        );
        assert_eq!(amz_dates(951_782_400).0, "20000229");
    }

    #[test]
    fn signing_key_matches_aws_example() {
        // The derived key from AWS's SigV4 documentation example.
        let mut s = Signer::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "us-east-1",
        );
        let k = s.signing_key("20150830");
        let k2 = hmac(
            &hmac(
                &hmac(
                    &hmac(b"AWS4wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", b"20150830"),
                    b"us-east-1",
                ),
                b"s3",
            ),
            b"aws4_request",
        );
        assert_eq!(k, k2);
        assert_eq!(uri_encode_path("/b/a b"), "/b/a%20b");
    }
}
