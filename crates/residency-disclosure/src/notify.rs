//! Customer notice: a signed JSON POST to the customer's webhook, with
//! bounded retries and backoff.
//!
//! The body is signed with HMAC-SHA256 under the webhook's shared secret;
//! the signature travels in [`SIGNATURE_HEADER`] as `sha256=<hex>`. A
//! receiver recomputes it over the raw body bytes (see [`sign`]).

use std::time::Duration;

use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use sha2::Sha256;

use crate::error::DisclosureError;

/// The header carrying `sha256=<hex HMAC-SHA256 of the body>`.
pub const SIGNATURE_HEADER: &str = "x-residency-signature";
/// The header carrying the request id.
pub const REQUEST_HEADER: &str = "x-residency-disclosure-request";

/// `sha256=<hex>`: the HMAC-SHA256 of `body` under `secret`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A customer's webhook and how hard to try it.
#[derive(Clone)]
pub struct Webhook {
    url: Uri,
    secret: Vec<u8>,
    max_attempts: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
    timeout: Duration,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret is never printed.
        f.debug_struct("Webhook")
            .field("url", &self.url.to_string())
            .field("max_attempts", &self.max_attempts)
            .field("initial_backoff", &self.initial_backoff)
            .field("max_backoff", &self.max_backoff)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// What a successful delivery looked like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The accepting status.
    pub status: u16,
    /// Attempts made, the successful one included.
    pub attempts: u32,
}

impl Webhook {
    /// A webhook at `url` (plain `http://`), signed with `secret`: 5 attempts,
    /// backoff from 250 ms doubling up to 5 s, 5 s per attempt.
    ///
    /// # Errors
    /// `Invalid` for a URL that is not `http://host[:port]/path` or an empty secret.
    pub fn new(url: &str, secret: impl Into<Vec<u8>>) -> Result<Webhook, DisclosureError> {
        let uri: Uri = url
            .parse()
            .map_err(|e| DisclosureError::Invalid(format!("webhook URL {url:?}: {e}")))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => {
                return Err(DisclosureError::Invalid(format!(
                    "webhook URL {url:?}: https is not supported by this build; \
                     send through a local TLS-terminating proxy (http://127.0.0.1:...)"
                )))
            }
            _ => {
                return Err(DisclosureError::Invalid(format!(
                    "webhook URL {url:?} must start with http://"
                )))
            }
        }
        if uri.host().is_none() {
            return Err(DisclosureError::Invalid(format!(
                "webhook URL {url:?} has no host"
            )));
        }
        let secret = secret.into();
        if secret.is_empty() {
            return Err(DisclosureError::Invalid(
                "the webhook secret is empty: notices are always signed".to_owned(),
            ));
        }
        Ok(Webhook {
            url: uri,
            secret,
            max_attempts: 5,
            initial_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(5),
            timeout: Duration::from_secs(5),
        })
    }

    /// Attempts in all, the first included (at least 1).
    #[must_use]
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = n.max(1);
        self
    }

    /// The wait before the first retry; it doubles after each failure.
    #[must_use]
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_backoff = initial;
        self.max_backoff = max.max(initial);
        self
    }

    /// The time allowed for one attempt.
    #[must_use]
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    /// The URL.
    pub fn url(&self) -> String {
        self.url.to_string()
    }

    /// POSTs `body` until a 2xx answer, at most `max_attempts` times. A 4xx
    /// other than 408 and 429 is final (the receiver rejected the notice).
    ///
    /// # Errors
    /// `NotifyFailed` with the attempts made and the last error.
    pub async fn deliver(
        &self,
        request_id: &str,
        body: &[u8],
    ) -> Result<Delivery, DisclosureError> {
        let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
        let signature = sign(&self.secret, body);
        let body = Bytes::copy_from_slice(body);
        let mut backoff = self.initial_backoff;
        let mut last_error = String::new();
        for attempt in 1..=self.max_attempts {
            if attempt > 1 {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(self.max_backoff);
            }
            let req = Request::post(self.url.clone())
                .header(http::header::CONTENT_TYPE, "application/json")
                .header(http::header::USER_AGENT, "residency-disclosure")
                .header(SIGNATURE_HEADER, &signature)
                .header(REQUEST_HEADER, request_id)
                .body(Full::new(body.clone()))
                .map_err(|e| DisclosureError::Invalid(format!("webhook request: {e}")))?;
            let outcome = tokio::time::timeout(self.timeout, async {
                let resp = client.request(req).await.map_err(|e| e.to_string())?;
                let status = resp.status();
                // Drain the answer so the connection can be reused.
                let _ = resp.into_body().collect().await;
                Ok::<StatusCode, String>(status)
            })
            .await;
            match outcome {
                Ok(Ok(status)) if status.is_success() => {
                    return Ok(Delivery {
                        status: status.as_u16(),
                        attempts: attempt,
                    })
                }
                Ok(Ok(status)) => {
                    last_error = format!("the webhook answered {status}");
                    let retryable = status.is_server_error()
                        || status == StatusCode::REQUEST_TIMEOUT
                        || status == StatusCode::TOO_MANY_REQUESTS;
                    if !retryable {
                        return Err(DisclosureError::NotifyFailed {
                            attempts: attempt,
                            error: last_error,
                        });
                    }
                }
                Ok(Err(e)) => last_error = format!("cannot reach the webhook: {e}"),
                Err(_) => last_error = format!("no answer within {:?}", self.timeout),
            }
        }
        Err(DisclosureError::NotifyFailed {
            attempts: self.max_attempts,
            error: last_error,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256() {
        // RFC 4231 test case 2.
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn urls() {
        assert!(Webhook::new("http://127.0.0.1:8080/hook", "s").is_ok());
        assert!(Webhook::new("https://example.com/hook", "s").is_err());
        assert!(Webhook::new("ftp://x/", "s").is_err());
        assert!(Webhook::new("http://127.0.0.1/", "").is_err());
    }
}
