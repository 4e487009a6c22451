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
    match req.uri().path() {
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
