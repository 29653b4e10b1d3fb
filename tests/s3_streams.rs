//! Ranged reads of large objects (several `GetObject`s in flight), against the loopback S3 server with a
//! bandwidth cap per connection, through the real aws-sdk-s3 client: the bytes arrive whole and in order
//! whatever the number of streams, a broken part is resumed on its own, and a replaced object fails the
//! read instead of mixing two versions.

#[path = "support/s3_server.rs"]
mod s3_server;

use std::io::Read;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use hourly_insights::storage::s3::{open_object_with, ReadOptions};

const BUCKET: &str = "streams";

/// `n` bytes of text that differ at every position (so a part out of place shows).
fn text(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b'a' + (x % 26) as u8
        })
        .collect()
}

async fn server() -> (s3_server::S3Server, Client, tempfile::TempDir) {
    let root = tempfile::tempdir().unwrap();
    let server = s3_server::start(&root.path().join("s3"), "127.0.0.1:0").await;
    let client = s3_server::client(&server.endpoint());
    client.create_bucket().bucket(BUCKET).send().await.unwrap();
    (server, client, root)
}

async fn put(client: &Client, key: &str, bytes: &[u8]) {
    client.put_object().bucket(BUCKET).key(key).body(ByteStream::from(bytes.to_vec())).send().await.unwrap();
}

/// Reads the whole object with `options`; the bytes (or the read's error) and the wall time.
async fn read(client: &Client, key: &str, options: ReadOptions) -> (std::io::Result<Vec<u8>>, u64, Duration) {
    let started = Instant::now();
    let input = open_object_with(client, BUCKET, key, None, options).await.unwrap().expect("the object exists");
    let size = input.info.bytes;
    let mut reader = input.reader;
    let bytes = tokio::task::spawn_blocking(move || {
        let mut all = Vec::new();
        reader.read_to_end(&mut all).map(|_| all)
    })
    .await
    .unwrap();
    (bytes, size, started.elapsed())
}

const MIB: u64 = 1 << 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_number_of_streams_reads_the_objects_bytes_in_order() {
    let (server, client, _root) = server().await;
    // Not a whole number of parts, so the last part is short.
    let big = text(21 * MIB as usize + 12_345, 7);
    put(&client, "big.csv", &big).await;
    put(&client, "small.csv", b"event_time,order_id\n").await;
    put(&client, "empty.csv", b"").await;
    for streams in [1, 2, 4, 8] {
        let options = ReadOptions { streams, part_bytes: 4 * MIB };
        let before = server.range_gets.load(Ordering::SeqCst);
        let (bytes, size, _) = read(&client, "big.csv", options).await;
        assert_eq!(size, big.len() as u64, "{streams} streams: the object's size");
        let bytes = bytes.unwrap();
        assert_eq!(bytes.len(), big.len(), "{streams} streams");
        assert!(bytes == big, "{streams} streams: the bytes in order");
        let ranged = server.range_gets.load(Ordering::SeqCst) - before;
        // One GET of the whole object, or one ranged GET per part (6 parts of 4 MiB).
        assert_eq!(ranged, if streams == 1 { 0 } else { 6 }, "{streams} streams: ranged GETs");
        for (key, want) in [("small.csv", &b"event_time,order_id\n"[..]), ("empty.csv", &b""[..])] {
            let (bytes, size, _) = read(&client, key, options).await;
            assert_eq!((bytes.unwrap().as_slice(), size), (want, want.len() as u64), "{key}, {streams} streams");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broken_part_is_resumed_on_its_own() {
    let (server, client, _root) = server().await;
    let big = text(10 * MIB as usize, 11);
    put(&client, "big.csv", &big).await;
    // The second part's body (from 2 MiB) and the first's break once each, after a few KB.
    let broken = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = broken.clone();
    server.set_truncations(Some(Box::new(move |method, _, range| {
        let range = range?.to_string();
        let first_time = method == "GET"
            && (range.starts_with("bytes=0-") || range.starts_with(&format!("bytes={}-", 2 * MIB)))
            && !seen.lock().unwrap().contains(&range);
        first_time.then(|| {
            seen.lock().unwrap().push(range);
            5_000
        })
    })));
    let (bytes, _, _) = read(&client, "big.csv", ReadOptions { streams: 3, part_bytes: 2 * MIB }).await;
    assert!(bytes.unwrap() == big, "the bytes whole after the resumes");
    assert_eq!(broken.lock().unwrap().len(), 2, "both parts broke once: {:?}", broken.lock().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_object_replaced_during_a_read_fails_it() {
    let (server, client, _root) = server().await;
    let old = text(8 * MIB as usize, 3);
    put(&client, "big.csv", &old).await;
    // Slow enough that the object is replaced while parts are still being fetched.
    server.bandwidth.store(4 * MIB, Ordering::SeqCst);
    let input = open_object_with(&client, BUCKET, "big.csv", None, ReadOptions { streams: 2, part_bytes: MIB })
        .await
        .unwrap()
        .unwrap();
    put(&client, "big.csv", &text(8 * MIB as usize, 4)).await;
    let mut reader = input.reader;
    let result = tokio::task::spawn_blocking(move || {
        let mut all = Vec::new();
        reader.read_to_end(&mut all).map(|_| all)
    })
    .await
    .unwrap();
    // The loopback server ignores `If-Match` on reads, as some S3-compatible stores do: the reader's own
    // ETag check stops the read.
    let e = result.expect_err("a read of a replaced object fails");
    assert!(e.to_string().contains("the object changed while it was read"), "{e}");
}

/// Wall time of a read against the number of streams, with each connection capped at 16 MiB/s (one S3
/// connection reads at about 75-90 MB/s in Lambda; the cap scales that down so the test stays short).
/// Printed, not asserted: `cargo nextest run --release --test s3_streams --no-capture`, and in
/// docs/benchmarks.md.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wall_time_against_the_number_of_streams() {
    let (server, client, _root) = server().await;
    let big = text(32 * MIB as usize, 5);
    put(&client, "big.csv", &big).await;
    server.bandwidth.store(16 * MIB, Ordering::SeqCst);
    for streams in [1, 2, 4, 8] {
        let (bytes, _, wall) = read(&client, "big.csv", ReadOptions { streams, part_bytes: 4 * MIB }).await;
        assert!(bytes.unwrap() == big);
        println!(
            "streams {streams}: {:.2} s, {:.0} MiB/s (each connection capped at 16 MiB/s)",
            wall.as_secs_f64(),
            32.0 / wall.as_secs_f64()
        );
    }
}
