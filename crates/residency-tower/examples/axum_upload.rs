//! An upload service that writes through Residency's routing layer to two
//! regions, each a local directory.
//!
//! ```text
//! cargo run -p residency-tower --example axum_upload              # serves on 127.0.0.1:3000
//! cargo run -p residency-tower --example axum_upload -- --once    # self-check: PUT + GET, then exit
//! ```
//!
//! `PUT /{tenant}/{*key}` stores the body where the tenant's data-locality
//! contract and the hosting table allow (`./data/example/eu` or
//! `./data/example/us`); `GET /{tenant}/{*key}` reads it back from wherever it
//! is. Both answer with the serving region in `x-residency-region`; a refusal
//! is a `403` (or `404` for an unknown upload) naming the reason, a region that
//! is down a `503`. The tenant comes from the path to keep the example short: a
//! real service takes it from the caller's authentication.
//!
//! Options: `--listen ADDR` (default `127.0.0.1:3000`), `--data DIR` (default
//! `./data/example`), `--directory postgresql://...` (look tenants up in the
//! PostgreSQL tenant directory instead of the example tenants file; the key
//! from `RESIDENCY_DIRECTORY_KEY`, tenants imported with `residency tenants
//! import`), `--once`.
//!
//! An application with its own tenants table implements
//! `residency_directory::Directory` over it (see that crate's documentation)
//! and passes it the same way, to `RulesetHandle::with_directory`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::put;
use axum::Router;
use residency_directory::{DirectoryKey, PgDirectory, PgOptions};
use residency_policy::{Ruleset, CATEGORY_HEADER};
use residency_store::{BoxError, DirBackend, Operation, Outcome, PutMeta};
use residency_tower::{
    RegionalDispatch, RoutingError, RoutingLayer, RoutingService, RulesetHandle, StorageRequest,
    StorageResponse, TracingAuditSink, UploadIdCodec,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tower::{Layer, ServiceExt};

/// The response header naming the region that served the request.
const REGION_HEADER: &str = "x-residency-region";

/// The routed storage stack: policy routing in front of per-region dispatch.
type Storage = RoutingService<RegionalDispatch>;

/// Builds the stack over `<data>/eu` and `<data>/us` under the repository's
/// default hosting policy, its tenants looked up in the example tenants file
/// or in the PostgreSQL directory at `directory`.
async fn storage(data: &Path, directory: Option<&str>) -> Result<Storage, BoxError> {
    let rules = Ruleset::from_toml(
        include_str!("../../../config/hosting-policy.toml"),
        "config/hosting-policy.toml",
        include_str!("../../../config/tenants.example.toml"),
        "config/tenants.example.toml",
    )?;
    // Keep this key stable across restarts (from a secret store) in a real
    // service, or multipart uploads in flight become unknown after a restart.
    let codec = UploadIdCodec::new(b"axum_upload example key".to_vec());
    let eu = DirBackend::open(data.join("eu")).await?;
    let us = DirBackend::open(data.join("us")).await?;
    let dispatch = RegionalDispatch::builder()
        .region("eu", Arc::new(eu))
        .region("us", Arc::new(us))
        .upload_ids(codec.clone())
        .build();
    let handle = match directory {
        None => RulesetHandle::new(rules),
        Some(url) => {
            let key = DirectoryKey::load(None)?;
            let dir = PgDirectory::connect(PgOptions::new(url, key)).await?;
            RulesetHandle::with_directory(rules, dir)
        }
    };
    Ok(RoutingLayer::new(handle)
        .upload_ids(codec)
        .audit(TracingAuditSink)
        .layer(dispatch))
}

fn app(storage: Storage) -> Router {
    Router::new()
        .route("/{tenant}/{*key}", put(put_object).get(get_object))
        .with_state(storage)
}

async fn put_object(
    State(storage): State<Storage>,
    UrlPath((tenant, key)): UrlPath<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let meta = match header(header::CONTENT_TYPE.as_str()) {
        Some(ct) => PutMeta::with_content_type(ct),
        None => PutMeta::default(),
    };
    let mut req = StorageRequest::new(
        tenant,
        Operation::Put {
            key,
            body: body.into(),
            meta: Box::new(meta),
        },
    );
    // The caller may name the category explicitly (a key rule still wins a conflict).
    if let Some(category) = header(CATEGORY_HEADER) {
        req = req.with_category(category);
    }
    match storage.oneshot(req).await {
        Ok(resp) => with_region(StatusCode::OK, &resp, Vec::new()),
        Err(e) => error_response(&e),
    }
}

async fn get_object(
    State(storage): State<Storage>,
    UrlPath((tenant, key)): UrlPath<(String, String)>,
) -> Response {
    let req = StorageRequest::new(
        tenant,
        Operation::Get {
            key,
            range: None,
            sse: Default::default(),
        },
    );
    let resp = match storage.oneshot(req).await {
        Ok(resp) => resp,
        Err(e) => return error_response(&e),
    };
    let region = resp.region.clone();
    let Outcome::Get(out) = resp.outcome else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    // Small objects only: the example reads the body into memory.
    let bytes = match out.body.collect().await {
        Ok(b) => b,
        Err(e) => return (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    };
    let mut response = bytes.into_response();
    if let Some(ct) = out.info.headers.content_type.and_then(|c| c.parse().ok()) {
        response.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    if let Some(r) = region.and_then(|r| r.parse().ok()) {
        response.headers_mut().insert(REGION_HEADER, r);
    }
    response
}

fn with_region(status: StatusCode, resp: &StorageResponse, body: Vec<u8>) -> Response {
    let mut response = (status, body).into_response();
    if let Some(r) = resp.region.as_deref().and_then(|r| r.parse().ok()) {
        response.headers_mut().insert(REGION_HEADER, r);
    }
    response
}

/// Maps a routing error to its HTTP status and a one-line body, in one place.
fn error_response(e: &BoxError) -> Response {
    match e.downcast_ref::<RoutingError>() {
        Some(r) => {
            let status =
                StatusCode::from_u16(r.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            (status, format!("{}: {r}\n", r.s3_code())).into_response()
        }
        None => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}

/// Serves on `listener` until the task is dropped.
async fn serve(listener: TcpListener, storage: Storage) -> std::io::Result<()> {
    axum::serve(listener, app(storage)).await
}

/// One HTTP/1.1 exchange over a fresh connection: (status, region header, body).
async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &[u8],
) -> std::io::Result<(u16, Option<String>, Vec<u8>)> {
    let mut stream = TcpStream::connect(addr).await?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no end of headers"))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("no status"))?;
    let region = head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case(REGION_HEADER)
            .then(|| value.trim().to_owned())
    });
    Ok((status, region, raw[split + 4..].to_vec()))
}

/// Starts the service on 127.0.0.1:0 over `data`, PUTs and GETs through it,
/// and checks where the objects landed.
async fn self_check(data: &Path, directory: Option<&str>) -> Result<(), BoxError> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(serve(listener, storage(data, directory).await?));
    let check = async {
        // globex is a US tenant, but "Chat Content: Available to be Hosted in the EEA only".
        let cases = [
            ("/globex/tickets/1/comment.json", "us"),
            ("/globex/chat/1.json", "eu"),
        ];
        for (path, region) in cases {
            let body = format!("hello from {path}");
            let (status, served_by, _) = http(addr, "PUT", path, body.as_bytes()).await?;
            if status != 200 || served_by.as_deref() != Some(region) {
                return Err(format!(
                    "PUT {path}: {status} from {served_by:?}, expected 200 from {region}"
                )
                .into());
            }
            let (status, served_by, got) = http(addr, "GET", path, b"").await?;
            if status != 200 || served_by.as_deref() != Some(region) || got != body.as_bytes() {
                return Err(format!("GET {path}: {status} from {served_by:?}").into());
            }
            let file = data.join(region).join(path.trim_start_matches('/'));
            if !file.exists() {
                return Err(format!("{} is missing", file.display()).into());
            }
            println!("PUT+GET {path}: 200, stored in {region}");
        }
        // A strict EU tenant may not write US-only call recordings at all.
        let (status, _, body) = http(addr, "PUT", "/eurobank/talk/recordings/1.wav", b"x").await?;
        if status != 403 {
            return Err(format!("strict tenant's US-only write: {status}").into());
        }
        println!(
            "PUT /eurobank/talk/recordings/1.wav: 403 {}",
            String::from_utf8_lossy(&body).trim()
        );
        Ok::<_, BoxError>(())
    };
    let result = check.await;
    server.abort();
    result
}

struct Args {
    listen: SocketAddr,
    data: PathBuf,
    directory: Option<String>,
    once: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        listen: SocketAddr::from(([127, 0, 0, 1], 3000)),
        data: PathBuf::from("data/example"),
        directory: None,
        once: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--once" => args.once = true,
            "--listen" => {
                let v = it.next().ok_or("--listen needs an address")?;
                args.listen = v.parse().map_err(|e| format!("--listen {v}: {e}"))?;
            }
            "--data" => args.data = it.next().ok_or("--data needs a directory")?.into(),
            "--directory" => {
                args.directory = Some(it.next().ok_or("--directory needs a postgresql:// URL")?)
            }
            "-h" | "--help" => {
                return Err(
                    "usage: axum_upload [--listen ADDR] [--data DIR] [--directory URL] [--once]"
                        .into(),
                )
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(args)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    if args.once {
        if let Err(e) = self_check(&args.data, args.directory.as_deref()).await {
            eprintln!("self-check failed: {e}");
            std::process::exit(1);
        }
        println!("self-check passed");
        return;
    }
    let storage = match storage(&args.data, args.directory.as_deref()).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cannot open {}: {e}", args.data.display());
            std::process::exit(1);
        }
    };
    let listener = match TcpListener::bind(args.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot listen on {}: {e}", args.listen);
            std::process::exit(1);
        }
    };
    let addr = listener.local_addr().expect("bound");
    println!(
        "residency axum_upload on http://{addr} (regions: {0}/eu, {0}/us)",
        args.data.display()
    );
    println!("try:");
    println!("  curl -i -X PUT --data-binary 'hello' http://{addr}/globex/chat/1.json   # -> x-residency-region: eu");
    println!("  curl -i http://{addr}/globex/chat/1.json");
    println!("  curl -i -X PUT -H 'content-type: audio/ogg' --data-binary @call.ogg http://{addr}/acme/talk/recordings/call.ogg   # -> us");
    println!("  curl -i -X PUT --data-binary 'x' http://{addr}/eurobank/talk/recordings/1.wav   # -> 403");
    if let Err(e) = serve(listener, storage).await {
        eprintln!("server error: {e}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    /// The example runs: it serves on 127.0.0.1:0, and a PUT and a GET go
    /// through the routing layer to the right directory.
    #[tokio::test]
    async fn put_and_get_through_the_example() {
        let dir = std::env::temp_dir().join(format!(
            "residency-axum-upload-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos()
        ));
        let result = super::self_check(&dir, None).await;
        let _ = std::fs::remove_dir_all(&dir);
        result.expect("self-check");
    }

    /// The same self-check with the tenants in a real PostgreSQL directory.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn put_and_get_through_the_example_on_the_postgresql_directory() {
        use residency_directory::postgres::{connect_client, import, migrate};
        use residency_policy::{Policy, SecretRef, Tenants};

        let pg = residency_testkit::PostgresCluster::start().expect("PostgreSQL");
        pg.create_database("example").unwrap();
        let url = pg.url("example");
        let key = residency_directory::DirectoryKey::generate();
        let policy = Policy::from_toml(
            include_str!("../../../config/hosting-policy.toml"),
            "hosting-policy.toml",
        )
        .unwrap();
        let tenants = Tenants::from_toml(
            include_str!("../../../config/tenants.example.toml"),
            "tenants.example.toml",
            &policy,
        )
        .unwrap();
        let mut c = connect_client(&url, std::time::Duration::from_secs(5))
            .await
            .unwrap();
        migrate(&mut c).await.unwrap();
        let resolve = |s: &SecretRef| match s {
            SecretRef::Inline(v) => Ok(v.clone()),
            other => Err(format!("{other:?}")),
        };
        import(&mut c, &tenants, &policy, resolve, &key)
            .await
            .unwrap();
        // The example reads its key as a deployment would.
        std::env::set_var("RESIDENCY_DIRECTORY_KEY", key.to_hex());
        let dir =
            std::env::temp_dir().join(format!("residency-axum-upload-pg-{}", std::process::id()));
        let result = super::self_check(&dir, Some(&url)).await;
        let _ = std::fs::remove_dir_all(&dir);
        result.expect("self-check on the PostgreSQL directory");
    }
}
