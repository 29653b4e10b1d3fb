#![allow(dead_code)] // the fault hook and counters are used by the tests, not by the example
//! A real S3 protocol server on loopback for tests and CI: `s3s` + `s3s-fs` (objects are files under a root
//! directory, buckets are its subdirectories), served by hyper, with a hook to inject faults.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use tokio::net::TcpListener;

pub const ACCESS_KEY: &str = "hourly-insights-test";
pub const SECRET_KEY: &str = "hourly-insights-test-secret";

/// Decides per request (method, path and query, request number) whether to answer with an error status.
pub type FaultRule = Box<dyn FnMut(&str, &str, usize) -> Option<u16> + Send>;

/// A running server.
pub struct S3Server {
    pub addr: SocketAddr,
    pub requests: Arc<AtomicUsize>,
    pub faults: Arc<Mutex<Option<FaultRule>>>,
}

impl S3Server {
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Installs (or clears) the fault rule.
    pub fn set_faults(&self, rule: Option<FaultRule>) {
        *self.faults.lock().unwrap() = rule;
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
    let faults: Arc<Mutex<Option<FaultRule>>> = Arc::new(Mutex::new(None));
    let (count, rule) = (requests.clone(), faults.clone());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let (s3, count, rule) = (s3.clone(), count.clone(), rule.clone());
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    let s3 = s3.clone();
                    let n = count.fetch_add(1, Ordering::SeqCst);
                    let target = req.uri().path_and_query().map(|p| p.to_string()).unwrap_or_default();
                    let injected = rule.lock().unwrap().as_mut().and_then(|f| f(req.method().as_str(), &target, n));
                    async move {
                        if let Some(status) = injected {
                            let body =
                                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>ServiceUnavailable</Code>\
                                        <Message>injected fault</Message></Error>";
                            let mut resp = Response::new(s3s::Body::from(body.to_string()));
                            *resp.status_mut() = StatusCode::from_u16(status).unwrap();
                            return Ok::<_, s3s::HttpError>(resp);
                        }
                        s3.call(req.map(s3s::Body::from)).await
                    }
                });
                let _ = ConnBuilder::new(TokioExecutor::new()).serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    S3Server { addr, requests, faults }
}
