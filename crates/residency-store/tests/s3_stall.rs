//! The lean S3 path against tiny hand-written servers on 127.0.0.1: a
//! service that stops reading an upload body fails the put as unavailable
//! within the stall timeout (and the connection is closed), while a client
//! that is slow to produce the body, or a service that reads slowly but
//! steadily, is not blamed; a put of bytes in memory is bounded by the
//! operation timeout.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt as _;
use residency_store::{Backend, Body, BoxError, PutMeta, S3Backend, S3BackendConfig, StoreError};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

const STALL: Duration = Duration::from_millis(300);
const CHUNK: usize = 64 * 1024;

fn backend(addr: SocketAddr) -> S3Backend {
    let config = S3BackendConfig::builder("residency-eu", "eu-west-1")
        .endpoint(format!("http://{addr}"))
        .credentials("AKIDEXAMPLE", "secret")
        .connect_timeout(Duration::from_secs(2))
        .operation_timeout(Duration::from_millis(500))
        .stall_timeout(STALL)
        .max_attempts(1)
        .build()
        .expect("config");
    let b = S3Backend::new(config).expect("backend");
    assert!(b.uses_fast_path());
    b
}

/// A listener on 127.0.0.1 whose accepted sockets have a receive buffer of
/// `recv_buffer` bytes when given (small: a server that stops reading fills
/// it quickly).
fn listener(recv_buffer: Option<u32>) -> TcpListener {
    let socket = TcpSocket::new_v4().unwrap();
    if let Some(size) = recv_buffer {
        socket.set_recv_buffer_size(size).unwrap();
    }
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    socket.listen(8).unwrap()
}

/// Reads up to the end of the request head; returns the head and any body
/// bytes read with it.
async fn read_head(conn: &mut TcpStream) -> (String, Vec<u8>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = conn.read(&mut chunk).await.expect("read head");
        assert!(n > 0, "closed before the end of the head");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return (String::from_utf8_lossy(&buf).into_owned(), rest);
        }
    }
}

fn content_length(head: &str) -> usize {
    head.lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .expect("content-length")
}

/// A stream of `total` bytes in `CHUNK`s of one shared buffer (nothing the
/// backend can see is in memory: it is a stream with a known length).
fn chunks(total: usize) -> impl futures::Stream<Item = Result<Bytes, BoxError>> {
    let chunk = Bytes::from(vec![b'x'; CHUNK]);
    futures::stream::iter(
        (0..total)
            .step_by(CHUNK)
            .map(move |at| Ok::<_, BoxError>(chunk.slice(..CHUNK.min(total - at)))),
    )
}

/// Puts `body` at `key`, failing the test if the call is still under way
/// after 10 s (every put here must end well before that).
async fn put_within_guard(
    s3: &S3Backend,
    key: &str,
    body: Body,
) -> Result<residency_store::PutOutput, residency_store::StoreError> {
    tokio::time::timeout(
        Duration::from_secs(10),
        s3.put_object(key, body, PutMeta::default()),
    )
    .await
    .unwrap_or_else(|_| panic!("the put of {key} hung past the 10 s guard"))
}

/// Reads a whole request body (after the head), `pause` before each read of
/// at most `read_size` bytes, then answers 200 with an ETag; returns the
/// bytes read.
async fn read_body_and_answer(mut conn: TcpStream, pause: Duration, read_size: usize) -> usize {
    let (head, early) = read_head(&mut conn).await;
    assert!(head.starts_with("PUT /residency-eu/"), "{head}");
    let len = content_length(&head);
    let mut got = early.len();
    let mut buf = vec![0u8; read_size];
    while got < len {
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
        let want = read_size.min(len - got);
        let n = conn.read(&mut buf[..want]).await.expect("read body");
        assert!(n > 0, "closed after {got} of {len} bytes");
        got += n;
    }
    conn.write_all(b"HTTP/1.1 200 OK\r\nETag: \"abc\"\r\nContent-Length: 0\r\n\r\n")
        .await
        .unwrap();
    got
}

/// The service reads the request head and then stops reading (its receive
/// window closes) without closing the connection: the put fails as
/// unavailable once no body data has moved for the stall timeout, and the
/// connection is closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_fails_when_the_backend_stops_reading_the_body() {
    let listener = listener(Some(16 * 1024));
    let addr = listener.local_addr().unwrap();
    let (got_head, head_seen) = tokio::sync::oneshot::channel();
    let (release, released) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let (mut conn, _) = listener.accept().await.unwrap();
        let (head, _) = read_head(&mut conn).await;
        got_head.send(head).unwrap();
        // Hold the connection, reading nothing, until the put has failed;
        // then the client must have closed it: reading drains what was
        // buffered and ends.
        released.await.unwrap();
        let mut buf = vec![0u8; 1 << 20];
        tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match conn.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await
        .expect("the client closed the stalled connection");
    });

    let s3 = backend(addr);
    let total = 32 << 20;
    let body = Body::from_stream(chunks(total), Some(total as u64));
    let t = Instant::now();
    let result = put_within_guard(&s3, "acme/stalled", body).await;
    let elapsed = t.elapsed();
    let err = result.expect_err("nobody answered the put");
    let head = head_seen.await.unwrap();
    assert!(
        head.starts_with("PUT /residency-eu/acme/stalled "),
        "{head}"
    );
    assert!(
        matches!(err, StoreError::Unavailable { .. }),
        "{err:?} after {elapsed:?}"
    );
    assert_eq!(err.http_status(), 503);
    let message = err.to_string();
    assert!(
        message.contains("stopped accepting the upload body for 300ms"),
        "{message}"
    );
    assert!(
        message.contains(&format!("of {total} bytes sent")),
        "{message}"
    );
    assert!(elapsed >= STALL, "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    release.send(()).unwrap();
    server.await.unwrap();
}

/// The client is slow: the body stream yields a chunk, then nothing for
/// several stall timeouts, then the rest. The service reads everything: the
/// put succeeds (the backend is not blamed for the client's pause).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_survives_a_slow_source() {
    let listener = listener(None);
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (conn, _) = listener.accept().await.unwrap();
        read_body_and_answer(conn, Duration::ZERO, CHUNK).await
    });

    let s3 = backend(addr);
    let total = 2 << 20;
    let first = chunks(CHUNK);
    let pause = futures::stream::once(tokio::time::sleep(STALL * 4))
        .filter_map(|()| async { None::<Result<Bytes, BoxError>> });
    let rest = chunks(total - CHUNK);
    let body = Body::from_stream(first.chain(pause).chain(rest), Some(total as u64));
    let t = Instant::now();
    let out = put_within_guard(&s3, "acme/slow-client", body)
        .await
        .unwrap_or_else(|e| panic!("put after {:?}: {e:?}", t.elapsed()));
    assert_eq!(out.etag, "\"abc\"");
    assert!(t.elapsed() >= STALL * 4, "{:?}", t.elapsed());
    assert_eq!(server.await.unwrap(), total);
}

/// The service reads slowly but steadily (a read every third of the stall
/// timeout): every chunk it takes is progress, so the put succeeds although
/// handing the body over takes several stall timeouts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_survives_a_slow_but_steady_backend() {
    let listener = listener(Some(1 << 20));
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (conn, _) = listener.accept().await.unwrap();
        read_body_and_answer(conn, STALL / 3, 1 << 20).await
    });

    let s3 = backend(addr);
    let total = 16 << 20;
    // When the last chunk was taken from the stream: the test means
    // something only if that is well after the first stall timeout.
    let handed_over = std::sync::Arc::new(std::sync::Mutex::new(None));
    let h = handed_over.clone();
    let stream = chunks(total).inspect(move |_| *h.lock().unwrap() = Some(Instant::now()));
    let body = Body::from_stream(stream, Some(total as u64));
    let t = Instant::now();
    let out = put_within_guard(&s3, "acme/slow-backend", body)
        .await
        .unwrap_or_else(|e| panic!("put after {:?}: {e:?}", t.elapsed()));
    assert_eq!(out.etag, "\"abc\"");
    assert_eq!(server.await.unwrap(), total);
    let handed_over = handed_over.lock().unwrap().expect("chunks were sent") - t;
    assert!(
        handed_over > STALL * 2,
        "the body was taken in {handed_over:?}: the socket buffers hid the slow reader"
    );
}

/// A put of bytes in memory to a service that reads the request and never
/// answers fails as unavailable within the operation timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn put_of_bytes_in_memory_is_bounded_by_the_operation_timeout() {
    let listener = listener(None);
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut conn, _) = listener.accept().await.unwrap();
        let (head, _) = read_head(&mut conn).await;
        // Read the body, never answer; hold the connection a while.
        let mut buf = vec![0u8; CHUNK];
        let _ = tokio::time::timeout(Duration::from_secs(3), async {
            while conn.read(&mut buf).await.is_ok_and(|n| n > 0) {}
        })
        .await;
        head
    });

    let s3 = backend(addr);
    let t = Instant::now();
    let body = Body::from_bytes(Bytes::from(vec![b'y'; 4096]));
    let err = put_within_guard(&s3, "acme/small", body)
        .await
        .expect_err("nobody answered the put");
    let elapsed = t.elapsed();
    assert!(err.is_unavailable(), "{err:?}");
    assert!(err.to_string().contains("did not answer within"), "{err}");
    assert!(elapsed >= Duration::from_millis(500), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    assert!(server
        .await
        .unwrap()
        .starts_with("PUT /residency-eu/acme/small "));
}

/// An empty streamed body is handed over at once (hyper never polls it):
/// a service that takes longer than the stall timeout to answer is not
/// blamed for a stalled body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_streamed_put_waits_for_a_slow_answer() {
    let listener = listener(None);
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut conn, _) = listener.accept().await.unwrap();
        let (head, _) = read_head(&mut conn).await;
        assert_eq!(content_length(&head), 0, "{head}");
        tokio::time::sleep(STALL * 3).await;
        conn.write_all(b"HTTP/1.1 200 OK\r\nETag: \"empty\"\r\nContent-Length: 0\r\n\r\n")
            .await
            .unwrap();
        // Keep the connection open until the client is done with it.
        let _ = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut [0u8; 16])).await;
    });

    let s3 = backend(addr);
    let body = Body::from_stream(futures::stream::empty(), Some(0));
    let out = put_within_guard(&s3, "acme/empty", body)
        .await
        .expect("put");
    assert_eq!(out.etag, "\"empty\"");
    drop(s3);
    server.await.unwrap();
}
