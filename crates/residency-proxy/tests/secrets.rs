//! No secret key and no request signature ever appears in the sidecar's logs
//! or metrics: a session of requests (good ones, failing auth, a presigned
//! URL, a backend failure) runs with every log at debug level, as
//! `RESIDENCY_LOG=debug` gives, and the captured log and `/metrics` are
//! searched for every configured secret and every signature sent.

mod support;

use std::time::{Duration, SystemTime};

use support::*;

fn signature_of(auth: &str) -> Option<String> {
    auth.split("Signature=")
        .nth(1)
        .map(|s| s.split([',', '&', ' ']).next().unwrap_or(s).to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_or_signature_in_logs_or_metrics() {
    bounded("secrets", async {
        // The sidecar's own filter with RESIDENCY_LOG=debug, writing into memory.
        std::env::set_var("RESIDENCY_LOG", "debug");
        let captured = CapturedLog::install();

        let _shared = BUCKETS.read().await;
        let env = Env::start().await;
        let recorder = Recorder::default();
        let acme = env.recorded_client(ACME, &recorder);
        let mut signatures = Vec::new();

        // Ordinary traffic: put, get, list, a miss.
        put(&acme, "acme", "tickets/secrets/1.txt", b"hello").await;
        get(&acme, "acme", "tickets/secrets/1.txt").await;
        list_keys(&acme, "acme", "tickets/").await;
        let _ = within(
            "miss",
            acme.get_object()
                .bucket("acme")
                .key("tickets/secrets/none")
                .send(),
        )
        .await;
        // Failing auth: a wrong secret, an unknown key, another tenant's bucket.
        let wrong = env.recorded_client((ACME.0, "wrong-secret"), &recorder);
        let _ = within(
            "wrong secret",
            wrong.list_objects_v2().bucket("acme").send(),
        )
        .await;
        let _ = within(
            "other tenant",
            acme.list_objects_v2().bucket("globex").send(),
        )
        .await;
        // A presigned GET (the signature travels in the query string).
        let presigned = within(
            "presign",
            acme.get_object()
                .bucket("acme")
                .key("tickets/secrets/1.txt")
                .presigned(
                    aws_sdk_s3::presigning::PresigningConfig::expires_in(Duration::from_secs(300))
                        .expect("presigning config"),
                ),
        )
        .await
        .expect("presigned");
        let uri = presigned.uri().to_string();
        signatures.extend(signature_of(&uri));
        let path = uri
            .split_once(&env.sidecar.addr.to_string())
            .map(|(_, p)| p.to_string())
            .unwrap();
        let r = send_raw(
            env.sidecar.addr,
            "GET",
            &path,
            &[("host", env.sidecar.addr.to_string())],
            b"",
        )
        .await;
        assert_eq!(r.status, 200, "presigned GET: {r:?}");
        // A hand-signed request with a bad signature.
        let (dt, _) = amz_date(SystemTime::now());
        let s = Signer::new((ACME.0, "not-the-secret"), "us-east-1", &dt);
        let headers = vec![
            ("host", env.sidecar.addr.to_string()),
            ("x-amz-content-sha256", EMPTY_SHA256.to_string()),
            ("x-amz-date", dt.clone()),
        ];
        let (sig, auth) = s.seed("GET", "/acme", "list-type=2", &headers, EMPTY_SHA256);
        signatures.push(sig);
        let mut h = headers.clone();
        h.push(("authorization", auth));
        let r = send_raw(env.sidecar.addr, "GET", "/acme?list-type=2", &h, b"").await;
        assert_eq!(r.status, 403);

        for req in recorder.take() {
            if let Some(a) = req.get("authorization") {
                signatures.extend(signature_of(a));
            }
        }
        assert!(
            signatures.len() >= 6,
            "too few signatures captured: {signatures:?}"
        );
        let metrics = send_raw(
            env.sidecar.admin,
            "GET",
            "/metrics",
            &[("host", "admin".into())],
            b"",
        )
        .await;

        let log = captured.text();
        assert!(
            log.len() > 1000,
            "the debug log is suspiciously short:\n{log}"
        );
        let c = cluster();
        let mut secrets: Vec<(&str, String)> = vec![
            ("acme secret", ACME.1.into()),
            ("globex secret", GLOBEX.1.into()),
            ("initech secret", INITECH.1.into()),
            ("eurobank secret", EUROBANK.1.into()),
            ("service key secret", SERVICE.1.into()),
            ("eu backend secret", c.eu().secret_key.clone()),
            ("us backend secret", c.us().secret_key.clone()),
            ("upload id secret", "e2e-upload-id-secret".into()),
        ];
        for s in &signatures {
            secrets.push(("a request signature", s.clone()));
        }
        let mut leaks = Vec::new();
        for (what, value) in &secrets {
            for (place, text) in [("log", &log), ("metrics", &metrics.body)] {
                if let Some(at) = text.find(value.as_str()) {
                    let line = text[..at].rsplit('\n').next().unwrap_or_default();
                    leaks.push(format!(
                        "{what} in the {place}: …{}",
                        &line[line.len().saturating_sub(200)..]
                    ));
                }
            }
        }
        eprintln!(
            "searched {} bytes of debug log and {} bytes of metrics for {} secrets and signatures",
            log.len(),
            metrics.body.len(),
            secrets.len()
        );
        assert!(leaks.is_empty(), "secrets leaked:\n{}", leaks.join("\n"));
    })
    .await;
}
