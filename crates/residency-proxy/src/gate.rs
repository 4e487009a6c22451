//! Checks on a request's head that run before s3s sees it, so that they hold
//! whatever s3s accepts: the signature scheme a client may use (SigV2 only
//! when configured, and then with a fresh `Date`), the service named in a
//! SigV4 credential scope, and how long a presigned URL may live.
//!
//! ```text
//! Authorization: AWS KEY:sig                     -> 403 AccessDenied (SigV4 is required)
//! Credential=KEY/20260101/us-east-1/sts/aws4_request
//!                                                -> 400 AuthorizationHeaderMalformed
//! ?X-Amz-Expires=604801                          -> 400 AuthorizationQueryParametersError
//! ```

use std::time::{Duration, SystemTime};

use http::{HeaderMap, StatusCode, Uri};

/// The longest a SigV4 presigned URL may be valid, as S3 allows (7 days).
const MAX_PRESIGN_SECS: u64 = 604_800;
/// How far a SigV2 request's `Date` may be from the server's clock (S3's
/// 15 minutes, as s3s applies to SigV4).
const MAX_SKEW: Duration = Duration::from_secs(15 * 60);

/// A request refused by the gate, answered as an S3 error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) status: StatusCode,
    pub(crate) code: &'static str,
    pub(crate) message: String,
}

impl Refusal {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Refusal {
            status,
            code,
            message: message.into(),
        }
    }
}

/// The head checks, configured by `[auth]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RequestGate {
    pub(crate) allow_sigv2: bool,
}

/// How a request says it is signed.
enum Scheme<'a> {
    /// `Authorization: AWS <key>:<signature>`.
    V2Header,
    /// `?AWSAccessKeyId=..&Expires=..&Signature=..`: `Expires` as sent.
    V2Query {
        expires: Option<String>,
    },
    /// `Authorization: AWS4-HMAC-SHA256 Credential=<scope>, ...`.
    V4Header {
        credential: &'a str,
    },
    /// `?X-Amz-Credential=<scope>&X-Amz-Expires=..`.
    V4Query {
        credential: Option<String>,
        expires: Option<String>,
    },
    Anonymous,
}

fn scheme<'a>(uri: &Uri, headers: &'a HeaderMap) -> Scheme<'a> {
    // s3s looks at the query first (a presigned URL), then the header.
    if let Some(q) = uri.query() {
        let (mut v2, mut v4) = (false, false);
        let (mut v2_expires, mut v4_expires, mut credential) = (None, None, None);
        for (k, v) in form_urlencoded::parse(q.as_bytes()) {
            match &*k {
                "Signature" => v2 = true,
                "Expires" => v2_expires = Some(v.into_owned()),
                "X-Amz-Signature" => v4 = true,
                "X-Amz-Credential" => credential = Some(v.into_owned()),
                "X-Amz-Expires" => v4_expires = Some(v.into_owned()),
                _ => {}
            }
        }
        if v2 {
            return Scheme::V2Query {
                expires: v2_expires,
            };
        }
        if v4 {
            return Scheme::V4Query {
                credential,
                expires: v4_expires,
            };
        }
    }
    let Some(auth) = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return Scheme::Anonymous;
    };
    if auth.starts_with("AWS ") {
        return Scheme::V2Header;
    }
    let credential = auth
        .split([',', ' '])
        .find_map(|p| p.trim().strip_prefix("Credential="))
        .unwrap_or("");
    Scheme::V4Header { credential }
}

/// The service of a credential scope `<key>/<date>/<region>/<service>/aws4_request`
/// (`None` when the scope is malformed: s3s answers that itself).
fn scope_service(credential: &str) -> Option<&str> {
    let parts: Vec<&str> = credential.split('/').collect();
    (parts.len() == 5).then(|| parts[3])
}

fn sigv2_refused() -> Refusal {
    Refusal::new(
        StatusCode::FORBIDDEN,
        "AccessDenied",
        "AWS Signature Version 2 is not accepted: sign requests with Signature Version 4 (AWS4-HMAC-SHA256)",
    )
}

impl RequestGate {
    /// Checks a request's head at the current time.
    pub(crate) fn check(&self, uri: &Uri, headers: &HeaderMap) -> Result<(), Refusal> {
        self.check_at(uri, headers, SystemTime::now())
    }

    fn check_at(&self, uri: &Uri, headers: &HeaderMap, now: SystemTime) -> Result<(), Refusal> {
        match scheme(uri, headers) {
            Scheme::Anonymous => Ok(()),
            Scheme::V2Header | Scheme::V2Query { .. } if !self.allow_sigv2 => Err(sigv2_refused()),
            Scheme::V2Header => {
                // SigV2 signs `x-amz-date` instead of `Date` when it is sent.
                let date = headers
                    .get("x-amz-date")
                    .or_else(|| headers.get(http::header::DATE))
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| httpdate::parse_http_date(v).ok())
                    .ok_or_else(|| {
                        Refusal::new(
                            StatusCode::FORBIDDEN,
                            "AccessDenied",
                            "AWS authentication requires a valid Date or x-amz-date header",
                        )
                    })?;
                let skew = now
                    .duration_since(date)
                    .or_else(|_| date.duration_since(now))
                    .unwrap_or_default();
                if skew > MAX_SKEW {
                    return Err(Refusal::new(
                        StatusCode::FORBIDDEN,
                        "RequestTimeTooSkewed",
                        "The difference between the request time and the current time is too large.",
                    ));
                }
                Ok(())
            }
            Scheme::V2Query { expires } => {
                // A SigV2 URL names its expiry as a Unix time; s3s refuses it
                // once past. One further away than a SigV4 URL may live would
                // be a replayable credential.
                let limit = now + Duration::from_secs(MAX_PRESIGN_SECS);
                let at = expires
                    .and_then(|e| e.parse::<u64>().ok())
                    .map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s));
                match at {
                    Some(at) if at <= limit => Ok(()),
                    _ => Err(Refusal::new(
                        StatusCode::FORBIDDEN,
                        "AccessDenied",
                        "a SigV2 presigned URL needs an Expires at most 604800 seconds (7 days) ahead",
                    )),
                }
            }
            Scheme::V4Header { credential } => match scope_service(credential) {
                Some(s) if s != "s3" => Err(Refusal::new(
                    StatusCode::BAD_REQUEST,
                    "AuthorizationHeaderMalformed",
                    format!(
                        "The authorization header is malformed; incorrect service \"{s}\". This endpoint belongs to \"s3\"."
                    ),
                )),
                _ => Ok(()),
            },
            Scheme::V4Query {
                credential,
                expires,
            } => {
                if let Some(s) = credential.as_deref().and_then(scope_service) {
                    if s != "s3" {
                        return Err(Refusal::new(
                            StatusCode::BAD_REQUEST,
                            "AuthorizationHeaderMalformed",
                            format!(
                                "Error parsing the X-Amz-Credential parameter; incorrect service \"{s}\". This endpoint belongs to \"s3\"."
                            ),
                        ));
                    }
                }
                // An unparseable value is s3s's to refuse.
                if let Some(secs) = expires.and_then(|e| e.trim().parse::<u64>().ok()) {
                    if secs > MAX_PRESIGN_SECS {
                        return Err(Refusal::new(
                            StatusCode::BAD_REQUEST,
                            "AuthorizationQueryParametersError",
                            "X-Amz-Expires must be less than a week (in seconds); that is, the given X-Amz-Expires must be less than 604800 seconds",
                        ));
                    }
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(gate: RequestGate, uri: &str, headers: &[(&str, &str)]) -> Result<(), Refusal> {
        let uri: Uri = uri.parse().unwrap();
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        let now = httpdate::parse_http_date("Sat, 05 Dec 2026 05:00:00 GMT").unwrap();
        gate.check_at(&uri, &h, now)
    }

    const DENY: RequestGate = RequestGate { allow_sigv2: false };
    const ALLOW: RequestGate = RequestGate { allow_sigv2: true };

    #[test]
    fn sigv2_is_refused_unless_allowed_and_fresh() {
        let v2 = ("authorization", "AWS KEY:c2lnbmF0dXJl");
        let fresh = ("date", "Sat, 05 Dec 2026 05:10:00 GMT");
        let old = ("date", "Mon, 01 Jan 2024 00:00:00 GMT");
        assert_eq!(
            check(DENY, "/acme/k", &[v2, fresh]).unwrap_err().code,
            "AccessDenied"
        );
        assert!(check(ALLOW, "/acme/k", &[v2, fresh]).is_ok());
        let e = check(ALLOW, "/acme/k", &[v2, old]).unwrap_err();
        assert_eq!(
            (e.status, e.code),
            (StatusCode::FORBIDDEN, "RequestTimeTooSkewed")
        );
        // x-amz-date wins over Date, as SigV2 signs it instead.
        let amz_old = ("x-amz-date", "Mon, 01 Jan 2024 00:00:00 GMT");
        assert!(check(ALLOW, "/acme/k", &[v2, fresh, amz_old]).is_err());
        assert!(check(ALLOW, "/acme/k", &[v2]).is_err());
        let q = "/acme/k?AWSAccessKeyId=KEY&Expires=1796446800&Signature=abc";
        assert_eq!(check(DENY, q, &[]).unwrap_err().code, "AccessDenied");
        assert!(check(
            ALLOW,
            "/acme/k?AWSAccessKeyId=KEY&Expires=1796432400&Signature=abc",
            &[]
        )
        .is_ok());
        // Far in the future: a credential that replays for years.
        assert!(check(
            ALLOW,
            "/acme/k?AWSAccessKeyId=KEY&Expires=2147483647&Signature=abc",
            &[]
        )
        .is_err());
    }

    #[test]
    fn sigv4_scope_must_name_s3() {
        let h = |svc: &str| {
            format!("AWS4-HMAC-SHA256 Credential=KEY/20261205/us-east-1/{svc}/aws4_request, SignedHeaders=host, Signature=00")
        };
        assert!(check(DENY, "/acme/k", &[("authorization", &h("s3"))]).is_ok());
        for svc in ["sts", "ec2", "S3"] {
            let e = check(DENY, "/acme/k", &[("authorization", &h(svc))]).unwrap_err();
            assert_eq!(
                (e.status, e.code),
                (StatusCode::BAD_REQUEST, "AuthorizationHeaderMalformed")
            );
        }
        let q = |svc: &str, exp: u64| {
            format!("/acme/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=KEY%2F20261205%2Fus-east-1%2F{svc}%2Faws4_request&X-Amz-Date=20261205T050000Z&X-Amz-Expires={exp}&X-Amz-SignedHeaders=host&X-Amz-Signature=00")
        };
        assert!(check(DENY, &q("s3", 604_800), &[]).is_ok());
        assert_eq!(
            check(DENY, &q("sts", 60), &[]).unwrap_err().code,
            "AuthorizationHeaderMalformed"
        );
        assert_eq!(
            check(DENY, &q("s3", 604_801), &[]).unwrap_err().code,
            "AuthorizationQueryParametersError"
        );
    }
}
