//! The disclosure guard's settings (`config/disclosure.toml` for the CLI):
//! export limits and the customer webhook.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::error::DisclosureError;
use crate::export::Limits;
use crate::notify::Webhook;

/// Everything configurable.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Export limits.
    #[serde(default)]
    pub limits: Limits,
    /// The default webhook.
    #[serde(default)]
    pub webhook: WebhookSettings,
    /// Per-tenant overrides.
    #[serde(default)]
    pub tenants: BTreeMap<String, TenantSettings>,
}

/// How notices are sent.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// `http://host:port/path`.
    pub url: Option<String>,
    /// The HMAC secret, inline (prefer `secret_env`).
    pub secret: Option<String>,
    /// An environment variable holding the HMAC secret.
    pub secret_env: Option<String>,
    /// Attempts in all (default 5).
    pub max_attempts: Option<u32>,
    /// First retry delay in milliseconds (default 250), doubling.
    pub initial_backoff_ms: Option<u64>,
    /// Longest retry delay in milliseconds (default 5000).
    pub max_backoff_ms: Option<u64>,
    /// Time allowed per attempt in milliseconds (default 5000).
    pub timeout_ms: Option<u64>,
}

/// One tenant's overrides.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantSettings {
    /// The tenant's own webhook URL.
    pub webhook_url: Option<String>,
    /// An environment variable holding the tenant's webhook secret.
    pub webhook_secret_env: Option<String>,
}

impl Settings {
    /// Parses the settings file (`file` names it in errors).
    ///
    /// # Errors
    /// `Invalid` with the line of the problem.
    pub fn from_toml(source: &str, file: &str) -> Result<Settings, DisclosureError> {
        toml::from_str(source).map_err(|e| {
            let line = e
                .span()
                .map(|s| source[..s.start.min(source.len())].matches('\n').count() + 1);
            DisclosureError::Invalid(match line {
                Some(l) => format!("{file}:{l}: {}", e.message().trim()),
                None => format!("{file}: {}", e.message().trim()),
            })
        })
    }

    /// The webhook for `tenant`: the URL and secret variable from the
    /// arguments, else the tenant's override, else the default.
    ///
    /// # Errors
    /// `Invalid` when no URL is configured or the secret is missing.
    pub fn webhook_for(
        &self,
        tenant: &str,
        url: Option<&str>,
        secret_env: Option<&str>,
    ) -> Result<Webhook, DisclosureError> {
        let t = self.tenants.get(tenant);
        let url = url
            .map(str::to_owned)
            .or_else(|| t.and_then(|t| t.webhook_url.clone()))
            .or_else(|| self.webhook.url.clone())
            .ok_or_else(|| {
                DisclosureError::Invalid(format!(
                    "no webhook URL for tenant {tenant:?}: pass --webhook-url or set [webhook] url"
                ))
            })?;
        let env = secret_env
            .map(str::to_owned)
            .or_else(|| t.and_then(|t| t.webhook_secret_env.clone()))
            .or_else(|| self.webhook.secret_env.clone());
        let secret = match (env, &self.webhook.secret) {
            (Some(var), _) => std::env::var(&var).map_err(|_| {
                DisclosureError::Invalid(format!("the webhook secret variable {var} is not set"))
            })?,
            (None, Some(s)) => s.clone(),
            (None, None) => {
                return Err(DisclosureError::Invalid(
                    "no webhook secret: set [webhook] secret_env (or pass --webhook-secret-env)"
                        .to_owned(),
                ))
            }
        };
        let w = &self.webhook;
        let initial = Duration::from_millis(w.initial_backoff_ms.unwrap_or(250));
        Ok(Webhook::new(&url, secret)?
            .max_attempts(w.max_attempts.unwrap_or(5))
            .backoff(
                initial,
                Duration::from_millis(w.max_backoff_ms.unwrap_or(5000)),
            )
            .timeout(Duration::from_millis(w.timeout_ms.unwrap_or(5000))))
    }
}
