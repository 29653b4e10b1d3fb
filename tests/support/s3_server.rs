#![allow(dead_code)] // the fault hook and counters are used by the tests, not by the example
//! A real S3 protocol server on loopback for tests and CI: `s3s` + `s3s-fs` (objects are files under a root
//! directory, buckets are its subdirectories), served by hyper, with a hook to inject faults.
//!
//! Requests that change objects (PUT, POST, DELETE) run one at a time, and not while a read is being
//! answered. S3 applies each PUT atomically, but s3s-fs writes an object's bytes and its checksum
//! separately (and a GET opens the file before loading the checksum), so a PUT of a key at the same moment
//! as another PUT or a GET of it could pair one version's bytes with the other's checksum.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

pub const ACCESS_KEY: &str = "hourly-insights-test";
pub const SECRET_KEY: &str = "hourly-insights-test-secret";

/// Decides per request (method, path and query, request number) whether to answer with an error status.
pub type FaultRule = Box<dyn FnMut(&str, &str, usize) -> Option<u16> + Send>;

/// Decides per request (method, path and query, `Range` header) whether to break the response body: the
/// answer is the number of body bytes sent before the connection fails.
pub type TruncateRule = Box<dyn FnMut(&str, &str, Option<&str>) -> Option<usize> + Send>;

/// The settings of an aws-sdk-s3 client for the server at `endpoint` (path-style, its credentials); tests
/// add retry or timeout settings of their own.
pub fn client_config(endpoint: &str) -> aws_sdk_s3::config::Builder {
    use aws_sdk_s3::config::{BehaviorVersion, Builder, Credentials, Region};
    Builder::new()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .credentials_provider(Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "test"))
}

/// An aws-sdk-s3 client for the server at `endpoint`.
pub fn client(endpoint: &str) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(client_config(endpoint).build())
}

/// A running server.
pub struct S3Server {
    pub addr: SocketAddr,
    pub requests: Arc<AtomicUsize>,
    /// Conditional writes answered 412 Precondition Failed (another writer got there first).
    pub preconditions_failed: Arc<AtomicUsize>,
    pub faults: Arc<Mutex<Option<FaultRule>>>,
    pub truncations: Arc<Mutex<Option<TruncateRule>>>,
    /// Bytes per second each connection may send (0: no limit; a change applies to open connections too):
    /// one connection to S3 reads at a bounded rate, which the tests of ranged reads reproduce.
    pub bandwidth: Arc<AtomicU64>,
    /// GETs with a `Range` header.
    pub range_gets: Arc<AtomicUsize>,
}

impl S3Server {
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Installs (or clears) the fault rule.
    pub fn set_faults(&self, rule: Option<FaultRule>) {
        *self.faults.lock().unwrap() = rule;
    }

    /// Installs (or clears) the body truncation rule.
    pub fn set_truncations(&self, rule: Option<TruncateRule>) {
        *self.truncations.lock().unwrap() = rule;
    }
}

/// Starts the server on `bind` (use port 0 for any free port) inside the current tokio runtime.
pub async fn start(root: &Path, bind: &str) -> S3Server {
    std::fs::create_dir_all(root).unwrap();
    let fs = s3s_fs::FileSystem::new(root).expect("s3s-fs root");
    let mut builder = S3ServiceBuilder::new(fs);
    builder.set_auth(SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
    let s3 = builder.build();
    let listener = TcpListener::bind(bind).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let requests = Arc::new(AtomicUsize::new(0));
    let preconditions_failed = Arc::new(AtomicUsize::new(0));
    let faults: Arc<Mutex<Option<FaultRule>>> = Arc::new(Mutex::new(None));
    let truncations: Arc<Mutex<Option<TruncateRule>>> = Arc::new(Mutex::new(None));
    let bandwidth = Arc::new(AtomicU64::new(0));
    let range_gets = Arc::new(AtomicUsize::new(0));
    let (count, rule, cuts, failed, rate, ranges) = (
        requests.clone(),
        faults.clone(),
        truncations.clone(),
        preconditions_failed.clone(),
        bandwidth.clone(),
        range_gets.clone(),
    );
    let writes = Arc::new(tokio::sync::RwLock::new(()));
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let stream = Throttled::new(stream, rate.clone());
            let (s3, count, rule, cuts, writes, failed, ranges) =
                (s3.clone(), count.clone(), rule.clone(), cuts.clone(), writes.clone(), failed.clone(), ranges.clone());
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    let (s3, writes, failed) = (s3.clone(), writes.clone(), failed.clone());
                    let writing = !matches!(*req.method(), hyper::Method::GET | hyper::Method::HEAD);
                    let n = count.fetch_add(1, Ordering::SeqCst);
                    let target = req.uri().path_and_query().map(|p| p.to_string()).unwrap_or_default();
                    let injected = rule.lock().unwrap().as_mut().and_then(|f| f(req.method().as_str(), &target, n));
                    let range = req.headers().get("range").and_then(|v| v.to_str().ok());
                    if range.is_some() && req.method() == hyper::Method::GET {
                        ranges.fetch_add(1, Ordering::SeqCst);
                    }
                    let cut = cuts.lock().unwrap().as_mut().and_then(|f| f(req.method().as_str(), &target, range));
                    async move {
                        if let Some(status) = injected {
                            let code = if status == 403 { "AccessDenied" } else { "ServiceUnavailable" };
                            let body = format!(
                                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code>\
                                 <Message>injected fault</Message></Error>"
                            );
                            let mut resp = Response::new(s3s::Body::from(body));
                            *resp.status_mut() = StatusCode::from_u16(status).unwrap();
                            return Ok::<_, s3s::HttpError>(resp);
                        }
                        // A GET's body is streamed from the file it opened, so holding the lock while the
                        // request is answered covers the file and its checksum.
                        let (_write, _read) = if writing {
                            (Some(writes.write().await), None)
                        } else {
                            (None, Some(writes.read().await))
                        };
                        // Conditional writes (If-Match / If-None-Match) are checked by s3s-fs; holding the
                        // write lock makes the check and the write one atomic step, as S3 does.
                        let response = s3.call(req.map(s3s::Body::from)).await?;
                        if response.status() == StatusCode::PRECONDITION_FAILED {
                            failed.fetch_add(1, Ordering::SeqCst);
                        }
                        let Some(cut) = cut else { return Ok(response) };
                        // The headers (Content-Length included) go out as they are; the body stops after
                        // `cut` bytes with an error, so hyper aborts the connection mid-body.
                        let (parts, body) = response.into_parts();
                        let bytes = http_body_util::BodyExt::collect(body).await.unwrap().to_bytes();
                        let sent = bytes.slice(..cut.min(bytes.len()));
                        Ok(Response::from_parts(parts, s3s::Body::http_body(Broken::new(sent))))
                    }
                });
                let _ = ConnBuilder::new(TokioExecutor::new()).serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    S3Server { addr, requests, preconditions_failed, faults, truncations, bandwidth, range_gets }
}

/// A connection that sends at most `limit` bytes a second (after a first 64 KiB), sleeping when ahead.
struct Throttled {
    inner: TcpStream,
    limit: Arc<AtomicU64>,
    /// The limit in force since `start`, and the bytes sent since.
    rate: u64,
    start: Instant,
    sent: u64,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Throttled {
    fn new(inner: TcpStream, limit: Arc<AtomicU64>) -> Self {
        Throttled { inner, limit, rate: 0, start: Instant::now(), sent: 0, sleep: None }
    }
}

const BURST: u64 = 64 * 1024;

impl AsyncRead for Throttled {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Throttled {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        let limit = this.limit.load(Ordering::Relaxed);
        if limit != this.rate {
            (this.rate, this.start, this.sent, this.sleep) = (limit, Instant::now(), 0, None);
        }
        if this.rate == 0 {
            return Pin::new(&mut this.inner).poll_write(cx, buf);
        }
        loop {
            if let Some(sleep) = this.sleep.as_mut() {
                if sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                this.sleep = None;
            }
            let earned = (this.start.elapsed().as_secs_f64() * this.rate as f64) as u64 + BURST;
            let allowed = earned.saturating_sub(this.sent);
            if allowed == 0 {
                let wait = Duration::from_secs_f64((this.sent + 1 - earned.min(this.sent)) as f64 / this.rate as f64);
                this.sleep = Some(Box::pin(tokio::time::sleep(wait.max(Duration::from_millis(1)))));
                continue;
            }
            let n = buf.len().min(allowed as usize);
            let written = std::task::ready!(Pin::new(&mut this.inner).poll_write(cx, &buf[..n]))?;
            this.sent += written as u64;
            return Poll::Ready(Ok(written));
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A response body that sends its bytes, then fails. It waits a moment before failing, so that hyper has
/// flushed the headers and the bytes: the client sees a body that breaks, not a request that failed (which
/// the SDK would retry by itself).
struct Broken(Option<bytes::Bytes>, std::pin::Pin<Box<tokio::time::Sleep>>);

impl Broken {
    fn new(sent: bytes::Bytes) -> Self {
        Broken(Some(sent), Box::pin(tokio::time::sleep(std::time::Duration::from_millis(50))))
    }
}

impl http_body::Body for Broken {
    type Data = bytes::Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, std::io::Error>>> {
        use std::task::Poll;
        if let Some(bytes) = self.0.take() {
            return Poll::Ready(Some(Ok(http_body::Frame::data(bytes))));
        }
        match self.1.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(std::io::Error::other("injected: connection lost mid-body")))),
            Poll::Pending => Poll::Pending,
        }
    }
}
