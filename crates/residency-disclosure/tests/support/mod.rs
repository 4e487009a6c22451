//! Shared helpers: the example rules, a desk over two regions, objects put
//! and read back, a webhook receiver on 127.0.0.1.

#![allow(dead_code, unreachable_pub)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use residency_disclosure::{
    sign, DisclosureError, NewRequest, RequestType, Scope, Signer, SIGNATURE_HEADER,
};
use residency_policy::Ruleset;
use residency_store::{Backend, Body, PutMeta};

/// The example policy and tenants of `config/`.
pub fn rules() -> Ruleset {
    Ruleset::from_toml(
        include_str!("../../../../config/hosting-policy.toml"),
        "hosting-policy.toml",
        include_str!("../../../../config/tenants.example.toml"),
        "tenants.example.toml",
    )
    .expect("the example config is valid")
}

/// Asserts that `r` is a refusal whose message contains `needle`.
pub fn refused<T: std::fmt::Debug>(r: Result<T, DisclosureError>, needle: &str) {
    match r {
        Err(DisclosureError::Refused(m)) => assert!(m.contains(needle), "{m:?} lacks {needle:?}"),
        other => panic!("expected a refusal containing {needle:?}, got {other:?}"),
    }
}

/// A desk over regions `eu` and `us` under `rules`, with the privacy team
/// of [`team`].
pub fn desk_on(
    rules: Ruleset,
    eu: &Arc<dyn Backend>,
    us: &Arc<dyn Backend>,
) -> residency_disclosure::Disclosures {
    residency_disclosure::Disclosures::new(
        rules,
        [("eu".to_owned(), eu.clone()), ("us".to_owned(), us.clone())],
    )
    .unwrap()
    .with_team(team().0)
}

/// Stores `data` at `key` (no content type).
pub async fn put(b: &Arc<dyn Backend>, key: &str, data: &[u8]) {
    b.put_object(
        key,
        Body::from_bytes(Bytes::copy_from_slice(data)),
        PutMeta::default(),
    )
    .await
    .unwrap();
}

/// The bytes stored at `key`.
pub async fn get(b: &Arc<dyn Backend>, key: &str) -> Vec<u8> {
    b.get_object(key, None)
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .to_vec()
}

/// One notice the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    /// When it arrived.
    pub at: SystemTime,
    /// The parsed body.
    pub body: serde_json::Value,
    /// Whether the signature matched.
    pub signature_ok: bool,
}

/// A webhook receiver: checks the HMAC signature, answers 503 to the first
/// `fail_first` requests, 204 afterwards (401 on a bad signature).
pub struct Receiver {
    pub url: String,
    pub received: Arc<Mutex<Vec<Received>>>,
    pub hits: Arc<AtomicU32>,
}

impl Receiver {
    pub async fn start(secret: &'static str, fail_first: u32) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let hits = Arc::new(AtomicU32::new(0));
        let (rec, h) = (received.clone(), hits.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (rec, h) = (rec.clone(), h.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let (rec, h) = (rec.clone(), h.clone());
                        async move {
                            let n = h.fetch_add(1, Ordering::SeqCst) + 1;
                            let sig = req
                                .headers()
                                .get(SIGNATURE_HEADER)
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("")
                                .to_owned();
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            let status = if n <= fail_first {
                                StatusCode::SERVICE_UNAVAILABLE
                            } else {
                                let ok = sig == sign(secret.as_bytes(), &body);
                                rec.lock().unwrap().push(Received {
                                    at: SystemTime::now(),
                                    body: serde_json::from_slice(&body).unwrap(),
                                    signature_ok: ok,
                                });
                                if ok {
                                    StatusCode::NO_CONTENT
                                } else {
                                    StatusCode::UNAUTHORIZED
                                }
                            };
                            Ok::<_, Infallible>(
                                Response::builder()
                                    .status(status)
                                    .body(Full::new(Bytes::new()))
                                    .unwrap(),
                            )
                        }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Receiver {
            url: format!("http://{addr}/hooks/disclosure"),
            received,
            hits,
        }
    }

    pub fn notices(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

/// A request for `tenant` with the given scope.
pub fn request(tenant: &str, scope: Scope) -> NewRequest {
    NewRequest {
        tenant: tenant.into(),
        authority: "Bundeskriminalamt".into(),
        country: "de".into(),
        legal_basis: "StPO §95".into(),
        received: "2026-07-15".parse().unwrap(),
        request_type: RequestType::CourtOrder,
        scope,
        notice_prohibited: None,
    }
}

/// A scope of specific keys.
pub fn keys(keys: &[&str]) -> Scope {
    Scope {
        keys: keys.iter().map(|k| k.to_string()).collect(),
        ..Scope::default()
    }
}

/// Two privacy team members with fixed keys, and the team to configure.
pub fn team() -> (Vec<residency_disclosure::Member>, Signer, Signer) {
    let alice = Signer::named("alice", &"a1".repeat(32)).unwrap();
    let bob = Signer::named("bob", &"b2".repeat(32)).unwrap();
    (vec![alice.as_member(), bob.as_member()], alice, bob)
}

/// Both members approve `id`.
pub async fn approve_both(desk: &residency_disclosure::Disclosures, id: &str) {
    let (_, alice, bob) = team();
    desk.approve(id, &alice, "compelling legal obligation")
        .await
        .unwrap();
    desk.approve(id, &bob, "agreed: compelling legal obligation")
        .await
        .unwrap();
}
