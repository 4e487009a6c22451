//! How to reach one regional bucket: [`S3BackendConfig`] and its builder.

use std::fmt;
use std::time::Duration;

use crate::error::StoreError;

/// How to reach one regional bucket.
#[derive(Clone)]
pub struct S3BackendConfig {
    /// The endpoint URL (`http://127.0.0.1:3900`); `None` for AWS's own.
    pub endpoint: Option<String>,
    /// The region to sign for (`eu-west-1`).
    pub region: String,
    /// The bucket.
    pub bucket: String,
    /// Access key id.
    pub access_key: String,
    /// Secret access key (never printed by `Debug`).
    pub secret_key: String,
    /// Session token, for temporary credentials.
    pub session_token: Option<String>,
    /// Path-style addressing (`endpoint/bucket/key`). Default `true`: most
    /// self-hosted S3 services need it.
    pub force_path_style: bool,
    /// Time allowed to open a connection. Default 5 s.
    pub connect_timeout: Duration,
    /// Bound on calls without a long body (see [`S3Backend`]). Default 30 s.
    pub operation_timeout: Duration,
    /// A put on the lean path whose streamed body the service stops taking
    /// (no data handed to the connection for this long, while the body itself
    /// had data ready) is aborted as unavailable. Time the body spends waiting
    /// on its own source (a slow client) does not count. Default 30 s; must be
    /// more than zero. (The SDK path has the SDK's stalled-stream protection.)
    pub stall_timeout: Duration,
    /// Attempts per call, the first included. Default 2.
    pub max_attempts: u32,
    /// Put, get, head and delete take the lean outbound path (pooled hyper
    /// client, SigV4 with the signing key kept per day) instead of the SDK's
    /// orchestrator. Default `true`; `false` sends every call through the SDK.
    pub fast_path: bool,
    /// The encryption the service honours (SSE-C, SSE-S3, the region's KMS
    /// key ids). Default: none (every request asking for some is refused).
    pub sse: crate::SseSupport,
}

impl fmt::Debug for S3BackendConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3BackendConfig")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("bucket", &self.bucket)
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .field("force_path_style", &self.force_path_style)
            .field("connect_timeout", &self.connect_timeout)
            .field("operation_timeout", &self.operation_timeout)
            .field("stall_timeout", &self.stall_timeout)
            .field("max_attempts", &self.max_attempts)
            .field("fast_path", &self.fast_path)
            .field("sse", &self.sse)
            .finish()
    }
}

impl S3BackendConfig {
    /// Starts a configuration for `bucket` in `region`.
    pub fn builder(bucket: impl Into<String>, region: impl Into<String>) -> S3BackendConfigBuilder {
        S3BackendConfigBuilder {
            config: S3BackendConfig {
                endpoint: None,
                region: region.into(),
                bucket: bucket.into(),
                access_key: String::new(),
                secret_key: String::new(),
                session_token: None,
                force_path_style: true,
                connect_timeout: Duration::from_secs(5),
                operation_timeout: Duration::from_secs(30),
                stall_timeout: Duration::from_secs(30),
                max_attempts: 2,
                fast_path: true,
                sse: crate::SseSupport::default(),
            },
        }
    }

    /// Every problem with this configuration, one line each.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if !(3..=63).contains(&self.bucket.len()) {
            p.push(format!(
                "bucket {:?}: a bucket name has 3 to 63 characters",
                self.bucket
            ));
        }
        if self.region.trim().is_empty() {
            p.push("region is empty".to_owned());
        }
        if self.access_key.is_empty() || self.secret_key.is_empty() {
            p.push("access key and secret key are required".to_owned());
        }
        if let Some(e) = &self.endpoint {
            if !(e.starts_with("http://") || e.starts_with("https://")) {
                p.push(format!(
                    "endpoint {e:?} must start with http:// or https://"
                ));
            }
        }
        if self.max_attempts == 0 {
            p.push("max_attempts must be at least 1".to_owned());
        }
        if self.stall_timeout.is_zero() {
            p.push("stall_timeout must be more than zero".to_owned());
        }
        p
    }
}

/// Builds an [`S3BackendConfig`].
#[derive(Debug, Clone)]
pub struct S3BackendConfigBuilder {
    config: S3BackendConfig,
}

impl S3BackendConfigBuilder {
    /// Sets the endpoint URL.
    #[must_use]
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.config.endpoint = Some(url.into());
        self
    }

    /// Sets static credentials.
    #[must_use]
    pub fn credentials(
        mut self,
        access_key: impl Into<String>,
        secret_key: impl Into<String>,
    ) -> Self {
        self.config.access_key = access_key.into();
        self.config.secret_key = secret_key.into();
        self
    }

    /// Sets a session token.
    #[must_use]
    pub fn session_token(mut self, token: impl Into<String>) -> Self {
        self.config.session_token = Some(token.into());
        self
    }

    /// Chooses path-style (`true`, the default) or virtual-host addressing.
    #[must_use]
    pub fn force_path_style(mut self, yes: bool) -> Self {
        self.config.force_path_style = yes;
        self
    }

    /// Sets the connect timeout.
    #[must_use]
    pub fn connect_timeout(mut self, t: Duration) -> Self {
        self.config.connect_timeout = t;
        self
    }

    /// Sets the operation timeout.
    #[must_use]
    pub fn operation_timeout(mut self, t: Duration) -> Self {
        self.config.operation_timeout = t;
        self
    }

    /// Sets the stall timeout of streamed uploads on the lean path (see
    /// [`S3BackendConfig::stall_timeout`]).
    #[must_use]
    pub fn stall_timeout(mut self, t: Duration) -> Self {
        self.config.stall_timeout = t;
        self
    }

    /// Sets the number of attempts per call (1 = no retry).
    #[must_use]
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.config.max_attempts = n;
        self
    }

    /// Chooses the lean outbound path for put, get, head and delete (`true`,
    /// the default) or the SDK for every call.
    #[must_use]
    pub fn fast_path(mut self, yes: bool) -> Self {
        self.config.fast_path = yes;
        self
    }

    /// Sets the encryption the service honours (see [`S3BackendConfig::sse`]).
    #[must_use]
    pub fn sse(mut self, support: crate::SseSupport) -> Self {
        self.config.sse = support;
        self
    }

    /// Checks and returns the configuration.
    ///
    /// # Errors
    /// `InvalidArgument` listing every problem at once.
    pub fn build(self) -> Result<S3BackendConfig, StoreError> {
        let problems = self.config.problems();
        if problems.is_empty() {
            Ok(self.config)
        } else {
            Err(StoreError::invalid_argument(problems.join("; ")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_reports_every_problem() {
        let err = S3BackendConfig::builder("eu", "")
            .endpoint("localhost:3900")
            .build()
            .unwrap_err()
            .to_string();
        for needle in ["3 to 63", "region is empty", "secret key", "http://"] {
            assert!(err.contains(needle), "{err}");
        }
        let ok = S3BackendConfig::builder("residency-eu", "eu-west-1")
            .credentials("k", "s")
            .build()
            .unwrap();
        assert!(!format!("{ok:?}").contains("\"s\""));
        assert!(ok.force_path_style);
        assert_eq!(ok.max_attempts, 2);
    }
}
