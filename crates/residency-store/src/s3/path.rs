//! A key as an S3 request path.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// The characters a key keeps in a request path: RFC 3986 unreserved and `/`
/// (S3's canonical URI encoding; the same string is the canonical URI).
const KEPT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// Percent-encodes a key for a request path or `x-amz-copy-source`, `/` kept.
pub(super) fn encode_key(key: &str) -> String {
    utf8_percent_encode(key, KEPT).to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_are_encoded_as_s3_expects() {
        assert_eq!(
            super::encode_key("t/a b+c/é~.json"),
            "t/a%20b%2Bc/%C3%A9~.json"
        );
    }
}
