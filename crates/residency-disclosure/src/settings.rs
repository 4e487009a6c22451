//! The disclosure guard's settings (`config/disclosure.toml` for the CLI):
//! export limits, the customer webhook, the privacy team and the report's bands.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::error::DisclosureError;
use crate::export::Limits;
use crate::notify::Webhook;
use crate::signing::{check_team, Member, Signer};

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
    /// The privacy team: who may approve, export and freeze reports.
    #[serde(default)]
    pub privacy_team: Vec<Member>,
    /// The transparency report.
    #[serde(default)]
    pub report: ReportSettings,
}

/// How the transparency report is published.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportSettings {
    /// Where the law requires small counts to be published in bands: the
    /// lower bounds of the bands, increasing, from 0 (`[0, 1, 250]`: 0 is
    /// shown as `0`, 1 to 249 as `1-249`); a count at or above the last
    /// bound is shown exactly. Empty (the default): every count exactly.
    #[serde(default)]
    pub bands: Vec<u64>,
}

impl ReportSettings {
    /// Checks the bands: increasing, from 0.
    ///
    /// # Errors
    /// `Invalid`.
    pub fn check(&self) -> Result<(), DisclosureError> {
        if self.bands.is_empty() {
            return Ok(());
        }
        if self.bands[0] != 0 || self.bands.windows(2).any(|w| w[0] >= w[1]) {
            return Err(DisclosureError::Invalid(format!(
                "[report] bands {:?}: the lower bounds must increase from 0, like [0, 1, 250]",
                self.bands
            )));
        }
        Ok(())
    }
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
        let settings: Settings = toml::from_str(source).map_err(|e| {
            let line = e
                .span()
                .map(|s| source[..s.start.min(source.len())].matches('\n').count() + 1);
            DisclosureError::Invalid(match line {
                Some(l) => format!("{file}:{l}: {}", e.message().trim()),
                None => format!("{file}: {}", e.message().trim()),
            })
        })?;
        check_team(&settings.privacy_team)
            .and_then(|()| settings.report.check())
            .map_err(|e| DisclosureError::Invalid(format!("{file}: {e}")))?;
        Ok(settings)
    }

    /// The privacy team member holding the private key `secret_hex`.
    ///
    /// # Errors
    /// `Invalid` when no team is configured or the key is no member's.
    pub fn signer(&self, secret_hex: &str) -> Result<Signer, DisclosureError> {
        if self.privacy_team.is_empty() {
            return Err(DisclosureError::Invalid(
                "no privacy team is configured: add [[privacy_team]] members (name, public_key) \
                 to the disclosure settings (`residency disclosure keygen` makes a key)"
                    .to_owned(),
            ));
        }
        Signer::from_secret(secret_hex, &self.privacy_team)
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
