//! HTTPS on the S3 listener (`[tls]`) and the admin listener's bearer token:
//! an SDK client that trusts the sidecar's certificate writes and reads
//! through it; a renewed certificate is served to new connections without
//! a restart; a broken one keeps the old serving; `/metrics` asks for the
//! token while the probes do not.

mod support;

use std::path::Path;
use std::time::Duration;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};
use support::*;

const ACME: (&str, &str) = ("ACMEEXAMPLEKEY", "acme-example-secret-key-change-me");

/// A self-signed certificate for `localhost` and 127.0.0.1: (cert PEM, key PEM).
fn certificate() -> (String, String) {
    let c = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("certificate");
    (c.cert.pem(), c.signing_key.serialize_pem())
}

/// An SDK client of `endpoint` that trusts only `ca` (PEM).
fn client(endpoint: &str, ca: &str) -> Client {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::AwsLc,
        ))
        .tls_context(
            TlsContext::builder()
                .with_trust_store(TrustStore::empty().with_pem_certificate(ca.as_bytes()))
                .build()
                .expect("tls context"),
        )
        .build_https();
    Client::from_conf(
        base_config(endpoint, "us-east-1", ACME.0, ACME.1)
            .http_client(http)
            .build(),
    )
}

async fn round_trip(c: &Client, key: &str) -> Result<Vec<u8>, String> {
    let body = format!("over tls: {key}");
    c.put_object()
        .bucket("acme")
        .key(key)
        .body(ByteStream::from(body.clone().into_bytes()))
        .send()
        .await
        .map_err(|e| format!("{e:?}"))?;
    let got = c
        .get_object()
        .bucket("acme")
        .key(key)
        .send()
        .await
        .map_err(|e| format!("{e:?}"))?;
    let bytes = got
        .body
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_vec();
    assert_eq!(bytes, body.as_bytes());
    Ok(bytes)
}

fn with_tls(config: &Path, dir: &Path, extra: &str) {
    let mut text = std::fs::read_to_string(config).expect("config");
    text = format!(
        "admin_token_file = {:?}\n{text}\n[tls]\ncert = {:?}\nkey = {:?}\nreload_secs = 1\n{extra}",
        dir.join("admin.token").display().to_string(),
        dir.join("cert.pem").display().to_string(),
        dir.join("key.pem").display().to_string(),
    );
    std::fs::write(config, text).expect("config");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_serves_s3_reloads_a_renewed_certificate_and_admin_asks_for_its_token() {
    let _ = cluster();
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert_a, key_a) = certificate();
    std::fs::write(dir.path().join("cert.pem"), &cert_a).expect("cert");
    std::fs::write(dir.path().join("key.pem"), &key_a).expect("key");
    std::fs::write(dir.path().join("admin.token"), "s3cr3t-scraper-token\n").expect("token");
    let config = write_config(dir.path());
    with_tls(&config, dir.path(), "");
    let running = start_sidecar(&config).await;
    let endpoint = format!("https://localhost:{}", running.addr.port());

    // An SDK client trusting the certificate writes and reads over TLS.
    let a = client(&endpoint, &cert_a);
    within("PUT and GET over TLS", round_trip(&a, "tickets/tls/1.json"))
        .await
        .expect("round trip over TLS");
    // Plain HTTP to the TLS port gets no S3 answer.
    let plain = proxy_client(&format!("http://{}", running.addr), ACME.0, ACME.1, None);
    let r = within("plain HTTP", plain.head_bucket().bucket("acme").send()).await;
    assert!(r.is_err(), "plain HTTP was answered: {r:?}");

    // A renewed certificate: new connections get it, without a restart.
    let (cert_b, key_b) = certificate();
    std::fs::write(dir.path().join("key.pem"), &key_b).expect("key");
    std::fs::write(dir.path().join("cert.pem"), &cert_b).expect("cert");
    let b = client(&endpoint, &cert_b);
    let mut renewed = false;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if round_trip(&b, "tickets/tls/2.json").await.is_ok() {
            renewed = true;
            break;
        }
    }
    assert!(
        renewed,
        "the renewed certificate was not served within 10 s"
    );
    let a_again = client(&endpoint, &cert_a);
    assert!(
        round_trip(&a_again, "tickets/tls/3.json").await.is_err(),
        "a client trusting only the old certificate still connected"
    );

    // A broken pair (a truncated certificate) keeps the renewed one serving.
    std::fs::write(dir.path().join("cert.pem"), &cert_b[..cert_b.len() / 2]).expect("cert");
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let b_again = client(&endpoint, &cert_b);
    within(
        "round trip after a broken reload",
        round_trip(&b_again, "tickets/tls/4.json"),
    )
    .await
    .expect("the previous certificate still serves");

    // The admin listener: probes open, /metrics behind the bearer token.
    let health = send_raw(
        running.admin,
        "GET",
        "/healthz",
        &[("host", "admin".into())],
        b"",
    )
    .await;
    assert_eq!(health.status, 200);
    let denied = send_raw(
        running.admin,
        "GET",
        "/metrics",
        &[("host", "admin".into())],
        b"",
    )
    .await;
    assert_eq!(denied.status, 401);
    let wrong = send_raw(
        running.admin,
        "GET",
        "/metrics",
        &[
            ("host", "admin".into()),
            ("authorization", "Bearer nope".into()),
        ],
        b"",
    )
    .await;
    assert_eq!(wrong.status, 401);
    let metrics = send_raw(
        running.admin,
        "GET",
        "/metrics",
        &[
            ("host", "admin".into()),
            ("authorization", "Bearer s3cr3t-scraper-token".into()),
        ],
        b"",
    )
    .await;
    assert_eq!(metrics.status, 200);
    let text = &metrics.body;
    assert!(
        text.contains("residency_tls_reloads_total{result=\"ok\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("residency_tls_reloads_total{result=\"failed\"} 1"),
        "{text}"
    );
}

#[test]
fn a_tls_config_that_cannot_serve_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, _) = certificate();
    let (_, other_key) = certificate();
    std::fs::write(dir.path().join("cert.pem"), &cert).expect("cert");
    std::fs::write(dir.path().join("key.pem"), &other_key).expect("key");
    let base = "listen = \"127.0.0.1:9000\"\n[regions.eu]\nkind = \"null\"\n";
    let parse = |text: String| {
        residency_proxy::Config::parse(&text, Path::new("residency.toml"))
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    let pem = |f: &str| dir.path().join(f).display().to_string();
    // A key of another certificate.
    let e = parse(format!(
        "{base}[tls]\ncert = {:?}\nkey = {:?}\n",
        pem("cert.pem"),
        pem("key.pem")
    ))
    .expect_err("mismatched key");
    assert!(e.contains("does not go with the certificate"), "{e}");
    // Only one of the two.
    let e = parse(format!("{base}[tls]\ncert = {:?}\n", pem("cert.pem"))).expect_err("half");
    assert!(e.contains("give both cert and key"), "{e}");
    // TLS with /metrics open to the network and no token.
    let (cert, key) = certificate();
    std::fs::write(dir.path().join("cert.pem"), &cert).expect("cert");
    std::fs::write(dir.path().join("key.pem"), &key).expect("key");
    let e = parse(format!(
        "admin = \"0.0.0.0:9001\"\n{base}[tls]\ncert = {:?}\nkey = {:?}\n",
        pem("cert.pem"),
        pem("key.pem")
    ))
    .expect_err("open admin");
    assert!(e.contains("admin_token_file"), "{e}");
    parse(format!(
        "admin = \"127.0.0.1:9001\"\n{base}[tls]\ncert = {:?}\nkey = {:?}\n",
        pem("cert.pem"),
        pem("key.pem")
    ))
    .expect("TLS with a loopback admin listener");
}
