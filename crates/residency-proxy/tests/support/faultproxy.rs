//! A small fault-injecting TCP relay to put between the sidecar and a
//! regional backend: it passes bytes through, delays them, drops or resets
//! connections, or answers every new request with `503` itself.
//!
//! The mode is read for every chunk a client sends, so a change also hits
//! pooled keep-alive connections: in any failing mode an open connection is
//! reset the next time the client writes on it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the relay does to the traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Relay unchanged.
    Pass,
    /// Hold every client chunk this long before relaying it.
    Delay(Duration),
    /// Accept, then close without a word (FIN).
    Drop,
    /// Accept, then reset (RST).
    Reset,
    /// Read the request and answer `503 ServiceUnavailable`.
    Http503,
}

/// A running relay; stops accepting when dropped.
pub struct FaultProxy {
    pub addr: SocketAddr,
    mode: Arc<Mutex<Fault>>,
    /// Connections accepted so far.
    pub connections: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FaultProxy {
    /// Relays 127.0.0.1:<fresh port> to `upstream`.
    pub async fn start(upstream: SocketAddr) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind relay");
        let addr = listener.local_addr().expect("relay addr");
        let mode = Arc::new(Mutex::new(Fault::Pass));
        let connections = Arc::new(AtomicU64::new(0));
        let (m, n) = (mode.clone(), connections.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                n.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(relay(client, upstream, m.clone()));
            }
        });
        FaultProxy {
            addr,
            mode,
            connections,
            task,
        }
    }

    /// `http://<addr>`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set(&self, f: Fault) {
        *self.mode.lock().unwrap() = f;
    }

    pub fn mode(&self) -> Fault {
        *self.mode.lock().unwrap()
    }
}

fn reset(s: TcpStream) {
    // A zero linger makes the close an RST at once (it never blocks).
    #[allow(deprecated)]
    let _ = s.set_linger(Some(Duration::ZERO));
    drop(s);
}

const UNAVAILABLE: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>ServiceUnavailable</Code><Message>injected by the fault proxy</Message></Error>";

/// Reads one request (head, then `Content-Length` bytes or a chunked body)
/// and answers 503.
async fn answer_503(mut s: TcpStream) {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 16 * 1024];
    let read = async {
        loop {
            let n = s.read(&mut tmp).await.unwrap_or(0);
            if n == 0 {
                return;
            }
            buf.extend_from_slice(&tmp[..n]);
            let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok());
            let body = &buf[end + 4..];
            let done = match len {
                Some(n) => body.len() >= n,
                None if head.contains("transfer-encoding: chunked") => body.ends_with(b"0\r\n\r\n"),
                None => true,
            };
            if done {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), read).await;
    let resp = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/xml\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{UNAVAILABLE}",
        UNAVAILABLE.len()
    );
    let _ = s.write_all(resp.as_bytes()).await;
    let _ = s.shutdown().await;
}

async fn relay(client: TcpStream, upstream: SocketAddr, mode: Arc<Mutex<Fault>>) {
    let now = || *mode.lock().unwrap();
    match now() {
        Fault::Drop => return,
        Fault::Reset => return reset(client),
        Fault::Http503 => return answer_503(client).await,
        Fault::Pass | Fault::Delay(_) => {}
    }
    let Ok(up) = TcpStream::connect(upstream).await else {
        return reset(client);
    };
    let _ = up.set_nodelay(true);
    let _ = client.set_nodelay(true);
    let mut client = client;
    let mut up = up;
    let failed = {
        let (mut cr, mut cw) = client.split();
        let (mut ur, mut uw) = up.split();
        let to_upstream = async {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = match cr.read(&mut buf).await {
                    Ok(0) | Err(_) => {
                        let _ = uw.shutdown().await;
                        return false;
                    }
                    Ok(n) => n,
                };
                match now() {
                    Fault::Pass => {}
                    Fault::Delay(d) => tokio::time::sleep(d).await,
                    Fault::Drop | Fault::Reset | Fault::Http503 => return true,
                }
                if uw.write_all(&buf[..n]).await.is_err() {
                    return true;
                }
            }
        };
        let to_client = async {
            let _ = tokio::io::copy(&mut ur, &mut cw).await;
            let _ = cw.shutdown().await;
        };
        tokio::pin!(to_upstream, to_client);
        tokio::select! {
            failed = &mut to_upstream => {
                if !failed {
                    // The client finished sending: let the answer through.
                    (&mut to_client).await;
                }
                failed
            }
            () = &mut to_client => false,
        }
    };
    if failed {
        reset(client);
        reset(up);
    }
}
