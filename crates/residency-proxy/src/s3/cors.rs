//! Per-bucket CORS for browser clients (a page that uploads through a
//! presigned POST, or reads with fetch): PutBucketCors, GetBucketCors and
//! DeleteBucketCors on a bucket a tenant created (kept with it in the
//! directory's registry), preflight `OPTIONS` answered before any access
//! check (browsers send it unsigned), and the `Access-Control-*` headers
//! added to the answer of a request that carries `Origin`, as S3 does.

use std::sync::Arc;

use residency_tower::RulesetHandle;
use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};
use serde::{Deserialize, Serialize};

use super::Gateway;

/// One rule, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Rule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    origins: Vec<String>,
    methods: Vec<String>,
    #[serde(default)]
    headers: Vec<String>,
    #[serde(default)]
    expose: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_age: Option<i32>,
}

const METHODS: [&str; 5] = ["GET", "PUT", "POST", "DELETE", "HEAD"];

/// `pattern` with at most one `*`, matched against `s` (case-sensitively
/// for origins, as S3 does; headers are lowercased by the caller).
fn wildcard(pattern: &str, s: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == s,
        Some((head, tail)) => {
            s.len() >= head.len() + tail.len() && s.starts_with(head) && s.ends_with(tail)
        }
    }
}

impl Rule {
    fn from_dto(r: CORSRule) -> S3Result<Rule> {
        for m in &r.allowed_methods {
            if !METHODS.contains(&m.as_str()) {
                return Err(s3_error!(
                    InvalidRequest,
                    "Found unsupported HTTP method in CORS config. Unsupported method is {m}"
                ));
            }
        }
        let stars = |v: &[String]| v.iter().any(|s| s.matches('*').count() > 1);
        if stars(&r.allowed_origins) || stars(r.allowed_headers.as_deref().unwrap_or_default()) {
            return Err(s3_error!(
                InvalidRequest,
                "AllowedOrigin and AllowedHeader can contain at most one * wildcard"
            ));
        }
        Ok(Rule {
            id: r.id,
            origins: r.allowed_origins,
            methods: r.allowed_methods,
            headers: r
                .allowed_headers
                .unwrap_or_default()
                .into_iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            expose: r.expose_headers.unwrap_or_default(),
            max_age: r.max_age_seconds,
        })
    }

    fn to_dto(&self) -> CORSRule {
        CORSRule {
            id: self.id.clone(),
            allowed_origins: self.origins.clone(),
            allowed_methods: self.methods.clone(),
            allowed_headers: (!self.headers.is_empty()).then(|| self.headers.clone()),
            expose_headers: (!self.expose.is_empty()).then(|| self.expose.clone()),
            max_age_seconds: self.max_age,
        }
    }

    /// Whether the rule allows `origin` to send `method` with `headers`
    /// (lowercase).
    fn allows(&self, origin: &str, method: &str, headers: &[String]) -> bool {
        self.origins.iter().any(|o| wildcard(o, origin))
            && self.methods.iter().any(|m| m == method)
            && headers
                .iter()
                .all(|h| self.headers.iter().any(|p| wildcard(p, h)))
    }
}

/// The stored rules of a bucket (JSON), or none.
fn parse(stored: Option<&str>) -> Option<Vec<Rule>> {
    serde_json::from_str(stored?).ok()
}

impl Gateway {
    /// The created bucket a CORS request is about, with its tenant.
    async fn cors_bucket(
        &self,
        extensions: &http::Extensions,
        bucket: &str,
    ) -> S3Result<Arc<residency_tower::directory::BucketRecord>> {
        let tenant = self.tenant(extensions, bucket).await?;
        match tenant.created_bucket() {
            Some(b) if !tenant.tenant_in_keys() && !self.shared.contains(bucket) => Ok(b.clone()),
            _ => Err(s3_error!(
                NotImplemented,
                "CORS is kept for the buckets a tenant creates: create one (CreateBucket) for browser clients"
            )),
        }
    }

    pub(super) async fn put_cors(
        &self,
        req: S3Request<PutBucketCorsInput>,
    ) -> S3Result<S3Response<PutBucketCorsOutput>> {
        let b = self.cors_bucket(&req.extensions, &req.input.bucket).await?;
        let rules = req
            .input
            .cors_configuration
            .cors_rules
            .into_iter()
            .map(Rule::from_dto)
            .collect::<S3Result<Vec<_>>>()?;
        if rules.is_empty() || rules.len() > 100 {
            return Err(s3_error!(
                MalformedXML,
                "a CORS configuration has 1 to 100 rules"
            ));
        }
        let json = serde_json::to_string(&rules).map_err(|e| s3_error!(InternalError, "{e}"))?;
        self.set_cors(&b, Some(json)).await?;
        Ok(S3Response::new(PutBucketCorsOutput {}))
    }

    pub(super) async fn get_cors(
        &self,
        req: S3Request<GetBucketCorsInput>,
    ) -> S3Result<S3Response<GetBucketCorsOutput>> {
        let b = self.cors_bucket(&req.extensions, &req.input.bucket).await?;
        let Some(rules) = parse(b.cors.as_deref()) else {
            return Err(s3_error!(
                NoSuchCORSConfiguration,
                "The CORS configuration does not exist"
            ));
        };
        Ok(S3Response::new(GetBucketCorsOutput {
            cors_rules: Some(rules.iter().map(Rule::to_dto).collect()),
        }))
    }

    pub(super) async fn delete_cors(
        &self,
        req: S3Request<DeleteBucketCorsInput>,
    ) -> S3Result<S3Response<DeleteBucketCorsOutput>> {
        let b = self.cors_bucket(&req.extensions, &req.input.bucket).await?;
        self.set_cors(&b, None).await?;
        let mut resp = S3Response::new(DeleteBucketCorsOutput {});
        resp.status = Some(http::StatusCode::NO_CONTENT);
        Ok(resp)
    }

    async fn set_cors(
        &self,
        b: &residency_tower::directory::BucketRecord,
        cors: Option<String>,
    ) -> S3Result<()> {
        self.rules
            .current()
            .directory()
            .set_bucket_cors(&b.name, &b.tenant, cors)
            .await
            .map_err(super::buckets::bucket_error)
    }
}

/// The bucket a request addresses: `<bucket>.<domain>` for a configured
/// virtual-host domain, else the first path segment.
fn bucket_of<B>(req: &http::Request<B>, domains: &[String]) -> Option<String> {
    let host = req
        .headers()
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(crate::host::without_port);
    if let Some(host) = host {
        for d in domains {
            if let Some(b) = host
                .strip_suffix(d.as_str())
                .and_then(|h| h.strip_suffix('.'))
            {
                return Some(b.to_owned());
            }
        }
    }
    let seg = req.uri().path().trim_start_matches('/').split('/').next()?;
    (!seg.is_empty()).then(|| seg.to_owned())
}

/// What CORS decides for one request that carries `Origin`.
pub(crate) enum Decision {
    /// A preflight, answered here.
    Preflight(http::Response<s3s::Body>),
    /// The request goes on; these headers go on its answer.
    Decorate(http::HeaderMap),
    /// No CORS headers.
    Nothing,
}

fn header(v: &str) -> http::HeaderValue {
    http::HeaderValue::from_str(v).unwrap_or_else(|_| http::HeaderValue::from_static(""))
}

/// The CORS headers a matching rule gives.
fn allow_headers(
    rule: &Rule,
    origin: &str,
    requested: &[String],
    preflight: bool,
) -> http::HeaderMap {
    use http::header::*;
    let mut h = HeaderMap::new();
    let any = rule.origins.iter().any(|o| o == "*");
    h.insert(
        ACCESS_CONTROL_ALLOW_ORIGIN,
        header(if any { "*" } else { origin }),
    );
    if !any {
        h.insert(
            ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
    h.insert(
        ACCESS_CONTROL_ALLOW_METHODS,
        header(&rule.methods.join(", ")),
    );
    if preflight && !requested.is_empty() {
        h.insert(ACCESS_CONTROL_ALLOW_HEADERS, header(&requested.join(", ")));
    }
    if !rule.expose.is_empty() {
        h.insert(
            ACCESS_CONTROL_EXPOSE_HEADERS,
            header(&rule.expose.join(", ")),
        );
    }
    if let Some(age) = rule.max_age {
        h.insert(ACCESS_CONTROL_MAX_AGE, header(&age.to_string()));
    }
    h.insert(
        VARY,
        HeaderValue::from_static(
            "Origin, Access-Control-Request-Headers, Access-Control-Request-Method",
        ),
    );
    h
}

/// Decides CORS for a request (`Nothing` without `Origin`).
pub(crate) async fn decide<B>(
    rules: &RulesetHandle,
    domains: &[String],
    req: &http::Request<B>,
) -> Decision {
    let Some(origin) = req
        .headers()
        .get(http::header::ORIGIN)
        .and_then(|o| o.to_str().ok())
    else {
        return Decision::Nothing;
    };
    let preflight = req.method() == http::Method::OPTIONS;
    let forbidden = |why: &str| {
        Decision::Preflight(crate::error::response(
            s3s::S3ErrorCode::Custom("AccessForbidden".into()),
            why,
            http::StatusCode::FORBIDDEN,
        ))
    };
    let Some(bucket) = bucket_of(req, domains) else {
        return if preflight {
            forbidden("CORSResponse: this CORS request is not allowed: it names no bucket")
        } else {
            Decision::Nothing
        };
    };
    let stored = match rules.directory().bucket(&bucket).await {
        Ok(Some(b)) => parse(b.cors.as_deref()),
        _ => None,
    };
    let Some(stored) = stored else {
        return if preflight {
            forbidden("CORSResponse: CORS is not enabled for this bucket.")
        } else {
            Decision::Nothing
        };
    };
    let (method, requested): (String, Vec<String>) = if preflight {
        let method = req
            .headers()
            .get(http::header::ACCESS_CONTROL_REQUEST_METHOD)
            .and_then(|m| m.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let requested = req
            .headers()
            .get(http::header::ACCESS_CONTROL_REQUEST_HEADERS)
            .and_then(|h| h.to_str().ok())
            .map(|h| {
                h.split(',')
                    .map(|s| s.trim().to_ascii_lowercase())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        (method, requested)
    } else {
        (req.method().as_str().to_owned(), Vec::new())
    };
    match stored.iter().find(|r| r.allows(origin, &method, &requested)) {
        Some(rule) if preflight => {
            let mut resp = http::Response::new(s3s::Body::empty());
            *resp.headers_mut() = allow_headers(rule, origin, &requested, true);
            Decision::Preflight(resp)
        }
        Some(rule) => Decision::Decorate(allow_headers(rule, origin, &requested, false)),
        None if preflight => forbidden(
            "CORSResponse: This CORS request is not allowed. This is usually because the evalution of Origin, request method / Access-Control-Request-Method or Access-Control-Request-Headers are not whitelisted by the resource's CORS spec.",
        ),
        None => Decision::Nothing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_methods_and_headers_match_as_s3_does() {
        let r = Rule {
            id: None,
            origins: vec![
                "http://*.example.com".into(),
                "http://127.0.0.1:8080".into(),
            ],
            methods: vec!["POST".into(), "GET".into()],
            headers: vec!["x-amz-*".into(), "content-type".into()],
            expose: vec![],
            max_age: None,
        };
        assert!(r.allows("http://app.example.com", "POST", &[]));
        assert!(r.allows(
            "http://127.0.0.1:8080",
            "GET",
            &["x-amz-date".into(), "content-type".into()]
        ));
        assert!(!r.allows("http://127.0.0.1:8081", "GET", &[]));
        assert!(!r.allows("https://app.example.com", "POST", &[]));
        assert!(!r.allows("http://app.example.com", "DELETE", &[]));
        assert!(!r.allows("http://app.example.com", "POST", &["authorization".into()]));
        assert!(wildcard("*", "anything"));
        assert!(!wildcard("a*b", "ab-"));
    }
}
