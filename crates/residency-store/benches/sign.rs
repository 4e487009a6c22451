//! Signing one 4 KiB PUT, A/B in the same run: the lean path's signer (the
//! canonical request built by hand, the signing key derived once per day and
//! kept) against `aws_sigv4::http_request::sign` (it builds the canonical
//! request itself and derives the key on every call). Both sign
//! `UNSIGNED-PAYLOAD`, so the 4 KiB body is not hashed by either; what is
//! measured is the header work and the HMACs.
//!
//! `cargo bench -p residency-store --bench sign -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode,
};
use aws_sigv4::sign::v4::SigningParams;
use criterion::{criterion_main, Criterion};
use residency_store::{BenchSigner, S3BackendConfig};

const HOST: &str = "127.0.0.1:3900";
const PATH: &str = "/residency-eu/acme/tickets/2026/12/05/ticket-000123.json";
/// The headers the lean path sends with a 4 KiB put, besides host, date and
/// payload hash.
const HEADERS: [(&str, &str); 4] = [
    ("content-length", "4096"),
    ("content-type", "application/json"),
    ("x-amz-checksum-crc32", "AAAAAA=="),
    ("x-amz-meta-residency-category", "tickets"),
];

fn signing(c: &mut Criterion) {
    let config = S3BackendConfig::builder("residency-eu", "eu-west-1")
        .endpoint(format!("http://{HOST}"))
        .credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
        .build()
        .unwrap();
    let now = UNIX_EPOCH + Duration::from_secs(1_796_083_199);
    let ours = BenchSigner::new(&config, HOST);
    let identity = aws_credential_types::Credentials::new(
        "AKIDEXAMPLE",
        "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        None,
        None,
        "bench",
    )
    .into();
    let mut settings = SigningSettings::default();
    settings.payload_checksum_kind = PayloadChecksumKind::NoHeader;
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    let uri = format!("http://{HOST}{PATH}");

    // The same signature from both, or the comparison means nothing.
    let (auth, stamp) = ours.sign(now, "PUT", PATH, &HEADERS);
    let theirs = |now: SystemTime, stamp: &str| {
        let params = SigningParams::builder()
            .identity(&identity)
            .region("eu-west-1")
            .name("s3")
            .time(now)
            .settings(settings.clone())
            .build()
            .unwrap()
            .into();
        let headers = [
            ("host", HOST),
            ("x-amz-content-sha256", "UNSIGNED-PAYLOAD"),
            ("x-amz-date", stamp),
        ]
        .into_iter()
        .chain(HEADERS);
        let req =
            SignableRequest::new("PUT", &uri, headers, SignableBody::UnsignedPayload).unwrap();
        sign(req, &params).unwrap().into_parts()
    };
    let (instructions, signature) = theirs(now, stamp.to_str().unwrap());
    assert!(auth.to_str().unwrap().ends_with(&signature));
    drop(instructions);

    let mut g = c.benchmark_group("sigv4_put_4k");
    g.bench_function("lean_cached_key", |b| {
        b.iter(|| black_box(ours.sign(black_box(now), "PUT", PATH, &HEADERS)))
    });
    g.bench_function("http_request_sign", |b| {
        // The date header is given, as the lean path's test does; the
        // signer still formats its own date for the scope.
        let stamp = stamp.to_str().unwrap();
        b.iter(|| black_box(theirs(black_box(now), stamp)))
    });
    g.finish();
}

#[allow(missing_docs)]
mod group {
    criterion::criterion_group!(benches, super::signing);
}
criterion_main!(group::benches);
