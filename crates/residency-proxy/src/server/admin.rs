//! The admin listener: `/metrics`, `/healthz`, `/readyz`.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;

use super::Sidecar;

pub(super) async fn admin_response(
    sidecar: &Sidecar,
    req: &http::Request<hyper::body::Incoming>,
) -> http::Response<Full<Bytes>> {
    let text = |status: u16, ct: &'static str, body: String| {
        let mut r = http::Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static(ct),
        );
        r
    };
    let path = req.uri().path();
    if let Some(token) = &sidecar.config.admin_token {
        // Probes need no token; everything else (metrics) does.
        let open = matches!(path, "/healthz" | "/readyz");
        if !open && !bearer_is(req, token) {
            let mut r = text(
                401,
                "text/plain",
                "a bearer token is required (Authorization: Bearer ...)\n".into(),
            );
            r.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static("Bearer"),
            );
            return r;
        }
    }
    match path {
        "/metrics" => match &sidecar.prometheus {
            Some(p) => text(200, "text/plain; version=0.0.4", p.render()),
            None => text(503, "text/plain", "metrics recorder unavailable\n".into()),
        },
        "/healthz" => text(200, "text/plain", "ok\n".into()),
        "/readyz" => {
            let mut ok = true;
            let mut lines = Vec::new();
            for (id, b) in &sidecar.backends {
                let r = tokio::time::timeout(Duration::from_secs(2), b.health()).await;
                match r {
                    Ok(Ok(())) => lines.push(format!("{id}: ok")),
                    Ok(Err(e)) => {
                        ok = false;
                        lines.push(format!("{id}: unavailable: {e}"));
                    }
                    Err(_) => {
                        ok = false;
                        lines.push(format!("{id}: unavailable: health check timed out"));
                    }
                }
            }
            // The tenant directory: without it no request can be decided.
            let d = sidecar.rules.directory().health();
            let staleness = d
                .staleness
                .map(|s| format!(", confirmed {:.1} s ago", s.as_secs_f64()))
                .unwrap_or_default();
            if d.available {
                lines.push(format!("directory ({}): ok{staleness}", d.source));
            } else {
                ok = false;
                lines.push(format!(
                    "directory ({}): unavailable{staleness}: {}",
                    d.source,
                    d.detail.as_deref().unwrap_or("no detail")
                ));
            }
            text(
                if ok { 200 } else { 503 },
                "text/plain",
                lines.join("\n") + "\n",
            )
        }
        _ => text(
            404,
            "text/plain",
            "not found: try /metrics, /healthz, /readyz\n".into(),
        ),
    }
}

/// Whether the request carries `Authorization: Bearer <token>` (compared in
/// constant time).
fn bearer_is(req: &http::Request<hyper::body::Incoming>, token: &str) -> bool {
    use subtle::ConstantTimeEq as _;
    req.headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|given| bool::from(given.trim().as_bytes().ct_eq(token.as_bytes())))
}
