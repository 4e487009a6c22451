//! The load itself: N workers, each with one keep-alive HTTP/1.1 connection,
//! sending signed PUT or GET requests back to back.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _, Result};
use bytes::{Bytes, BytesMut};
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpStream;

use crate::procstat;
use crate::sign::{uri_encode_path, Signer, UNSIGNED};

/// The largest chunk a request body is sent in.
const CHUNK: usize = 1024 * 1024;

/// What to send and where.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// `host:port`.
    pub(crate) authority: String,
    pub(crate) bucket: String,
    pub(crate) prefix: String,
    pub(crate) access_key: String,
    pub(crate) secret_key: String,
    pub(crate) region: String,
    /// Many tenants: each request goes to a tenant drawn from this spread
    /// (its bucket, its key) instead of `bucket` and the key above.
    pub(crate) spread: Option<crate::tenants::Spread>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Op {
    Put,
    Get,
    /// Only for [`cleanup`]: never measured.
    Delete,
}

/// How long to run.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Stop {
    /// Warm up, then measure for this long.
    Duration { warmup: Duration, measure: Duration },
    /// Exactly this many requests per worker, all measured.
    Count(u64),
}

#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) op: Op,
    pub(crate) size: u64,
    pub(crate) clients: usize,
    /// Distinct objects (keys) the workers cycle through.
    pub(crate) objects: usize,
    pub(crate) stop: Stop,
    pub(crate) pids: Vec<u32>,
    pub(crate) sample_every: Duration,
}

/// A request body: `len` bytes made of copies of `template`, each copy
/// stamped with (request, chunk) numbers in its first 16 bytes so that no two
/// blocks are identical (a deduplicating or compressing store would
/// otherwise not write them).
struct PatternBody {
    template: Bytes,
    remaining: u64,
    stamp: u64,
    chunk_no: u64,
}

impl http_body::Body for PatternBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let n = (self.remaining as usize).min(self.template.len());
        let mut b = BytesMut::from(&self.template[..n]);
        let mut tag = [0u8; 16];
        tag[..8].copy_from_slice(&self.stamp.to_le_bytes());
        tag[8..].copy_from_slice(&self.chunk_no.to_le_bytes());
        let t = tag.len().min(n);
        b[..t].copy_from_slice(&tag[..t]);
        self.remaining -= n as u64;
        self.chunk_no += 1;
        Poll::Ready(Some(Ok(Frame::data(b.freeze()))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

enum ReqBody {
    Empty,
    Pattern(PatternBody),
}

impl http_body::Body for ReqBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.get_mut() {
            ReqBody::Empty => Poll::Ready(None),
            ReqBody::Pattern(p) => Pin::new(p).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ReqBody::Empty => true,
            ReqBody::Pattern(p) => p.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ReqBody::Empty => SizeHint::with_exact(0),
            ReqBody::Pattern(p) => p.size_hint(),
        }
    }
}

fn template() -> Bytes {
    // xorshift: incompressible bytes, generated once.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut v = Vec::with_capacity(CHUNK);
    while v.len() < CHUNK {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    Bytes::from(v)
}

struct Worker {
    id: usize,
    target: Arc<Target>,
    signer: Signer,
    conn: Option<SendRequest<ReqBody>>,
    template: Bytes,
}

/// One request's outcome.
enum Outcome {
    Ok { bytes: u64 },
    Err(String),
}

impl Worker {
    async fn connect(&mut self) -> Result<()> {
        let stream = TcpStream::connect(&self.target.authority)
            .await
            .with_context(|| format!("connect {}", self.target.authority))?;
        stream.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::Builder::new()
            .max_buf_size(4 * 1024 * 1024)
            .handshake(TokioIo::new(stream))
            .await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        self.conn = Some(sender);
        Ok(())
    }

    fn path(&self, bucket: &str, object: usize) -> String {
        uri_encode_path(&format!(
            "/{bucket}/{}w{}-o{object}",
            self.target.prefix, self.id
        ))
    }

    async fn request(&mut self, op: Op, object: usize, size: u64, stamp: u64) -> Outcome {
        match self.try_request(op, object, size, stamp).await {
            Ok(o) => o,
            Err(e) => {
                self.conn = None;
                Outcome::Err(format!("{e:#}"))
            }
        }
    }

    async fn try_request(
        &mut self,
        op: Op,
        object: usize,
        size: u64,
        stamp: u64,
    ) -> Result<Outcome> {
        if self.conn.as_ref().is_none_or(|c| c.is_closed()) {
            self.connect().await?;
        }
        let method = match op {
            Op::Put => "PUT",
            Op::Get => "GET",
            Op::Delete => "DELETE",
        };
        let (path, signed) = match &self.target.spread {
            None => {
                let path = self.path(&self.target.bucket, object);
                let signed = self.signer.sign(method, &self.target.authority, &path);
                (path, signed)
            }
            Some(spread) => {
                // A tenant's own bucket and key: the signing key is derived
                // per request, as a fleet of tenants' clients would.
                let n = spread.pick(&mut rand::rng());
                let path = self.path(&crate::tenants::tenant_id(n), object);
                let mut signer = Signer::new(
                    &crate::tenants::access_key(n),
                    &crate::tenants::secret_key(n),
                    &self.target.region,
                );
                let signed = signer.sign(method, &self.target.authority, &path);
                (path, signed)
            }
        };
        let mut b = http::Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, &self.target.authority)
            .header("x-amz-date", signed.amz_date)
            .header("x-amz-content-sha256", UNSIGNED)
            .header(http::header::AUTHORIZATION, signed.authorization);
        let body = match op {
            Op::Put => {
                b = b
                    .header(http::header::CONTENT_LENGTH, size)
                    .header(http::header::CONTENT_TYPE, "application/octet-stream");
                ReqBody::Pattern(PatternBody {
                    template: if (size as usize) < self.template.len() {
                        self.template.slice(..size as usize)
                    } else {
                        self.template.clone()
                    },
                    remaining: size,
                    stamp,
                    chunk_no: 0,
                })
            }
            Op::Get | Op::Delete => ReqBody::Empty,
        };
        let req = b.body(body)?;
        let conn = self.conn.as_mut().ok_or_else(|| anyhow!("no connection"))?;
        conn.ready().await?;
        let resp = conn.send_request(req).await?;
        let status = resp.status();
        let mut body = resp.into_body();
        let mut got = 0u64;
        let mut text = Vec::new();
        while let Some(frame) = body.frame().await {
            if let Ok(d) = frame?.into_data() {
                got += d.len() as u64;
                if !status.is_success() && text.len() < 512 {
                    text.extend_from_slice(&d);
                }
            }
        }
        if !status.is_success() {
            return Ok(Outcome::Err(format!(
                "HTTP {status}: {}",
                String::from_utf8_lossy(&text)
                    .chars()
                    .take(300)
                    .collect::<String>()
            )));
        }
        match op {
            Op::Get if got != size => Ok(Outcome::Err(format!(
                "GET returned {got} bytes, expected {size}"
            ))),
            Op::Get => Ok(Outcome::Ok { bytes: got }),
            Op::Put => Ok(Outcome::Ok { bytes: size }),
            Op::Delete => Ok(Outcome::Ok { bytes: 0 }),
        }
    }
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub(crate) struct Latency {
    pub(crate) p50: f64,
    pub(crate) p99: f64,
    pub(crate) p999: f64,
    pub(crate) max: f64,
    pub(crate) mean: f64,
}

/// Resource use of the processes under test during the measured phase.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub(crate) struct ProcUse {
    pub(crate) pids: Vec<u32>,
    /// CPU seconds (user + system) during the measured phase.
    pub(crate) cpu_s: f64,
    /// CPU microseconds per measured request.
    pub(crate) cpu_us_per_op: f64,
    /// Largest sampled sum of RSS, KiB.
    pub(crate) peak_rss_kib: u64,
    /// Largest VmHWM (lifetime peak RSS) of any one process at the end, KiB.
    pub(crate) hwm_kib: u64,
}

/// One measured cell.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub(crate) struct CellResult {
    pub(crate) target: String,
    pub(crate) workload: String,
    pub(crate) op: String,
    pub(crate) size: u64,
    pub(crate) clients: usize,
    pub(crate) seconds: f64,
    pub(crate) requests: u64,
    pub(crate) errors: u64,
    pub(crate) first_error: Option<String>,
    pub(crate) req_per_s: f64,
    pub(crate) mib_per_s: f64,
    pub(crate) latency_us: Latency,
    pub(crate) process: ProcUse,
    pub(crate) client_cpu_s: f64,
    pub(crate) unix_time: u64,
}

const WARMUP: u8 = 0;
const MEASURE: u8 = 1;
const DONE: u8 = 2;

/// Writes the objects GET will read (one PUT each, not measured).
pub(crate) async fn prepare(target: Arc<Target>, plan: &Plan) -> Result<()> {
    each_object(target, plan, Op::Put, "preparing").await
}

/// Deletes the cell's objects (not measured), so that a run's data does not
/// pile up on the backend's disk.
pub(crate) async fn cleanup(target: Arc<Target>, plan: &Plan) -> Result<()> {
    each_object(target, plan, Op::Delete, "deleting").await
}

/// One `op` request for each object of each worker, the workers in parallel.
async fn each_object(target: Arc<Target>, plan: &Plan, op: Op, doing: &'static str) -> Result<()> {
    let template = template();
    let mut tasks = Vec::new();
    for id in 0..plan.clients {
        let mut w = Worker {
            id,
            signer: Signer::new(&target.access_key, &target.secret_key, &target.region),
            target: target.clone(),
            conn: None,
            template: template.clone(),
        };
        let (objects, size) = (plan.objects, plan.size);
        tasks.push(tokio::spawn(async move {
            for o in 0..objects {
                if let Outcome::Err(e) = w.request(op, o, size, o as u64).await {
                    bail!("{doing} object {o} of worker {id}: {e}");
                }
            }
            Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

/// Runs one cell.
pub(crate) async fn run(target: Arc<Target>, plan: &Plan) -> Result<CellResult> {
    let template = template();
    let phase = Arc::new(AtomicU8::new(match plan.stop {
        Stop::Duration { .. } => WARMUP,
        Stop::Count(_) => MEASURE,
    }));
    let stamp = Arc::new(AtomicU64::new(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1),
    ));
    let mut tasks = Vec::new();
    for id in 0..plan.clients {
        let mut w = Worker {
            id,
            signer: Signer::new(&target.access_key, &target.secret_key, &target.region),
            target: target.clone(),
            conn: None,
            template: template.clone(),
        };
        let phase = phase.clone();
        let stamp = stamp.clone();
        let (op, size, objects, stop) = (plan.op, plan.size, plan.objects.max(1), plan.stop);
        tasks.push(tokio::spawn(async move {
            let mut lat: Vec<u32> = Vec::with_capacity(1 << 16);
            let (mut bytes, mut errors) = (0u64, 0u64);
            let mut first_error = None;
            let mut i = 0usize;
            loop {
                let p = phase.load(Ordering::Relaxed);
                if p == DONE {
                    break;
                }
                if let Stop::Count(n) = stop {
                    if i as u64 >= n {
                        break;
                    }
                }
                let s = stamp.fetch_add(1, Ordering::Relaxed);
                let t0 = Instant::now();
                let out = w.request(op, i % objects, size, s).await;
                let us = t0.elapsed().as_micros().min(u32::MAX as u128) as u32;
                i += 1;
                // Throughput is what completes inside the measured window,
                // whenever it started: counting only requests that also
                // started inside it would drop up to one request per client
                // at each edge, which for 64 MiB cells (a few requests per
                // client) undercounts the slower target most.
                if phase.load(Ordering::Relaxed) != MEASURE {
                    continue;
                }
                match out {
                    Outcome::Ok { bytes: b } => {
                        bytes += b;
                        lat.push(us);
                    }
                    Outcome::Err(e) => {
                        errors += 1;
                        if first_error.is_none() {
                            first_error = Some(e);
                        }
                        // Do not spin on a dead target.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            (lat, bytes, errors, first_error)
        }));
    }

    // Sampler: peak RSS over the whole cell.
    let pids = plan.pids.clone();
    let sampling = Arc::new(AtomicU8::new(1));
    let sampler = {
        let sampling = sampling.clone();
        let every = plan.sample_every;
        tokio::spawn(async move {
            let mut peak = 0u64;
            while sampling.load(Ordering::Relaxed) == 1 {
                peak = peak.max(procstat::total_rss(&pids).0);
                tokio::time::sleep(every).await;
            }
            peak.max(procstat::total_rss(&pids).0)
        })
    };

    if let Stop::Duration { warmup, .. } = plan.stop {
        tokio::time::sleep(warmup).await;
        phase.store(MEASURE, Ordering::Relaxed);
    }
    let cpu0 = procstat::total_cpu(&plan.pids);
    let self0 = procstat::self_cpu();
    let t0 = Instant::now();
    let mut results = Vec::new();
    if let Stop::Duration { measure, .. } = plan.stop {
        tokio::time::sleep(measure).await;
        phase.store(DONE, Ordering::Relaxed);
        let elapsed = t0.elapsed();
        let cpu1 = procstat::total_cpu(&plan.pids);
        let self1 = procstat::self_cpu();
        for t in tasks {
            results.push(t.await?);
        }
        return Ok(finish(
            plan,
            results,
            elapsed,
            cpu1 - cpu0,
            self1 - self0,
            sampling,
            sampler,
        )
        .await);
    }
    for t in tasks {
        results.push(t.await?);
    }
    let elapsed = t0.elapsed();
    let cpu1 = procstat::total_cpu(&plan.pids);
    let self1 = procstat::self_cpu();
    Ok(finish(
        plan,
        results,
        elapsed,
        cpu1 - cpu0,
        self1 - self0,
        sampling,
        sampler,
    )
    .await)
}

type WorkerOut = (Vec<u32>, u64, u64, Option<String>);

async fn finish(
    plan: &Plan,
    results: Vec<WorkerOut>,
    elapsed: Duration,
    cpu: f64,
    client_cpu: f64,
    sampling: Arc<AtomicU8>,
    sampler: tokio::task::JoinHandle<u64>,
) -> CellResult {
    sampling.store(0, Ordering::Relaxed);
    let peak = sampler.await.unwrap_or(0);
    let mut lat = Vec::new();
    let (mut bytes, mut errors) = (0u64, 0u64);
    let mut first_error = None;
    for (l, b, e, fe) in results {
        lat.extend(l);
        bytes += b;
        errors += e;
        if first_error.is_none() {
            first_error = fe;
        }
    }
    lat.sort_unstable();
    let pct = |q: f64| -> f64 {
        if lat.is_empty() {
            return 0.0;
        }
        let i = ((lat.len() as f64 * q).ceil() as usize).clamp(1, lat.len()) - 1;
        f64::from(lat[i])
    };
    let secs = elapsed.as_secs_f64();
    let requests = lat.len() as u64;
    let hwm = procstat::total_rss(&plan.pids).1;
    CellResult {
        op: format!("{:?}", plan.op).to_lowercase(),
        size: plan.size,
        clients: plan.clients,
        seconds: secs,
        requests,
        errors,
        first_error,
        req_per_s: requests as f64 / secs,
        mib_per_s: bytes as f64 / secs / (1024.0 * 1024.0),
        latency_us: Latency {
            p50: pct(0.50),
            p99: pct(0.99),
            p999: pct(0.999),
            max: lat.last().copied().map(f64::from).unwrap_or(0.0),
            mean: if lat.is_empty() {
                0.0
            } else {
                lat.iter().map(|&x| f64::from(x)).sum::<f64>() / lat.len() as f64
            },
        },
        process: ProcUse {
            pids: plan.pids.clone(),
            cpu_s: cpu,
            cpu_us_per_op: if requests > 0 {
                cpu * 1e6 / requests as f64
            } else {
                0.0
            },
            peak_rss_kib: peak,
            hwm_kib: hwm,
        },
        client_cpu_s: client_cpu,
        unix_time: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        ..CellResult::default()
    }
}
