//! A loopback S3 server for trying the Lambda without AWS (used by `.ci/run` for `cargo lambda watch`):
//! `cargo run --release --example s3_server -- <root-dir> [127.0.0.1:9000]`. Credentials:
//! `AWS_ACCESS_KEY_ID=hourly-insights-test AWS_SECRET_ACCESS_KEY=hourly-insights-test-secret`.
//! Buckets are the subdirectories of the root directory.

#[path = "../tests/support/s3_server.rs"]
mod s3_server;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let root = args.next().expect("usage: s3_server <root-dir> [addr]");
    let bind = args.next().unwrap_or_else(|| "127.0.0.1:9000".to_string());
    let server = s3_server::start(std::path::Path::new(&root), &bind).await;
    println!("S3 server listening on {} (root {root})", server.endpoint());
    std::future::pending::<()>().await;
}
