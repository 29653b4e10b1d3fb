//! The Lambda handler against a real S3 protocol server (s3s-fs on loopback, started here), through the
//! real aws-sdk-s3 client with a custom endpoint and path-style addressing. No SDK mocks.

#[path = "support/reference.rs"]
mod reference;
#[path = "support/s3_server.rs"]
mod s3_server;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use hourly_insights::lambda::config::Config;
use hourly_insights::lambda::{Handler, ObjectRef, Outcome};
use hourly_insights::output::output_name;
use hourly_insights::pipeline;
use hourly_insights::read::input;
use hourly_insights::storage::LocalDir;
use serde_json::{json, Value};

const IN: &str = "hourly-insights-input";
const OUT: &str = "hourly-insights-output";
const FIXTURE: &str = "fixtures/orders-2026-11-22T13.csv";
const FIXTURE_KEY: &str = "exports/orders-2026-11-22T13.csv";

struct World {
    server: s3_server::S3Server,
    client: Client,
    _root: tempfile::TempDir,
}

fn manifest(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn test_client(endpoint: &str) -> Client {
    let conf = s3_server::client_config(endpoint)
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(4)
                .with_initial_backoff(Duration::from_millis(5))
                .with_max_backoff(Duration::from_millis(50)),
        )
        .timeout_config(TimeoutConfig::builder().connect_timeout(Duration::from_secs(3)).build())
        .build();
    Client::from_conf(conf)
}

async fn world() -> World {
    let root = tempfile::tempdir().unwrap();
    let server = s3_server::start(&root.path().join("s3"), "127.0.0.1:0").await;
    let client = test_client(&server.endpoint());
    for bucket in [IN, OUT] {
        client.create_bucket().bucket(bucket).send().await.unwrap();
    }
    World { server, client, _root: root }
}

/// An S3 notification record as S3 sends it (every field the typed event requires), for one object.
fn s3_event(bucket: &str, key: &str, event_name: &str, sequencer: Option<&str>) -> Value {
    let mut object = json!({"key": key});
    if let Some(seq) = sequencer {
        object["sequencer"] = json!(seq);
    }
    json!({"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
        "eventTime": "2026-11-22T13:00:00.000Z", "eventName": event_name,
        "userIdentity": {"principalId": "AWS:EXAMPLE"}, "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {}, "s3": {"s3SchemaVersion": "1.0", "bucket": {"name": bucket}, "object": object}}]})
}

/// An upload notification for one key of the input bucket.
fn put_event(key: &str) -> Value {
    s3_event(IN, key, "ObjectCreated:Put", None)
}

fn config() -> Config {
    Config::from_lookup(|k| match k {
        "OUTPUT_BUCKET" => Some(OUT.to_string()),
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE" => Some("1769".to_string()),
        _ => None,
    })
    .unwrap()
}

fn handler(w: &World) -> Arc<Handler> {
    Arc::new(Handler::new(w.client.clone(), config()))
}

fn event(name: &str) -> Value {
    serde_json::from_slice(&std::fs::read(manifest(&format!("fixtures/events/{name}"))).unwrap()).unwrap()
}

async fn put(w: &World, bucket: &str, key: &str, bytes: Vec<u8>) {
    w.client.put_object().bucket(bucket).key(key).body(ByteStream::from(bytes)).send().await.unwrap();
}

async fn get(w: &World, bucket: &str, key: &str) -> Option<Vec<u8>> {
    let out = w.client.get_object().bucket(bucket).key(key).send().await.ok()?;
    Some(out.body.collect().await.unwrap().into_bytes().to_vec())
}

/// Every object of a bucket: key -> bytes.
async fn listing(w: &World, bucket: &str) -> BTreeMap<String, Vec<u8>> {
    let mut keys = Vec::new();
    let mut token = None;
    loop {
        let page = w.client.list_objects_v2().bucket(bucket).set_continuation_token(token).send().await.unwrap();
        keys.extend(page.contents().iter().filter_map(|o| o.key().map(String::from)));
        match page.next_continuation_token() {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    let mut out = BTreeMap::new();
    for key in keys {
        let bytes = get(w, bucket, &key).await.unwrap();
        out.insert(key, bytes);
    }
    out
}

fn without_summaries(l: &BTreeMap<String, Vec<u8>>) -> BTreeMap<String, Vec<u8>> {
    l.iter().filter(|(k, _)| !k.contains("/summaries/")).map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// Parquet files keyed by `table/dt=…/hour=…` (file name dropped: it depends on the source URI).
fn parquet_by_partition(files: impl IntoIterator<Item = (String, Vec<u8>)>) -> BTreeMap<String, Vec<u8>> {
    files
        .into_iter()
        .filter(|(k, _)| k.ends_with(".parquet"))
        .map(|(k, v)| {
            let k = k.strip_prefix("insights/").unwrap_or(&k).to_string();
            (k.rsplit_once('/').unwrap().0.to_string(), v)
        })
        .collect()
}

/// The local run of a file: relative key -> bytes.
fn local_run(path: &Path) -> BTreeMap<String, Vec<u8>> {
    let out = tempfile::tempdir().unwrap();
    let sink = LocalDir::new(out.path()).unwrap();
    pipeline::run(input::open_local(path).unwrap(), &sink, &pipeline::Options::default()).unwrap();
    let mut files = BTreeMap::new();
    // The local directory's lock and generation files have no counterpart in S3 (object metadata there).
    for entry in walk(out.path()).into_iter().filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.')) {
        let rel = entry.strip_prefix(out.path()).unwrap().to_string_lossy().to_string();
        files.insert(rel, std::fs::read(&entry).unwrap());
    }
    files
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// The binary, pointed at the loopback S3 server with test credentials (and nothing else of the environment).
fn cli(w: &World) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_hourly-insights"));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_ENDPOINT_URL", w.server.endpoint())
        .env("AWS_ACCESS_KEY_ID", s3_server::ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", s3_server::SECRET_KEY)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true");
    cmd
}

async fn summary_of(w: &World, source_key: &str) -> Option<Value> {
    let name = output_name(&format!("s3://{IN}/{source_key}"));
    let bytes = get(w, OUT, &format!("insights/summaries/{name}.json")).await?;
    Some(serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_put_event_writes_the_same_outputs_as_a_local_run() {
    let w = world().await;
    let fixture = std::fs::read(manifest(FIXTURE)).unwrap();
    put(&w, IN, FIXTURE_KEY, fixture.clone()).await;
    let response = handler(&w).handle(event("s3-put.json"), "req-1").await.unwrap();
    assert_eq!(response["results"][0]["outcome"], "succeeded", "{response}");

    let name = output_name(&format!("s3://{IN}/{FIXTURE_KEY}"));
    let remote = listing(&w, OUT).await;
    let local = local_run(&manifest(FIXTURE));
    assert_eq!(remote.len(), local.len(), "same number of outputs: {:?}", remote.keys());
    for key in remote.keys() {
        let per_source = ["insights/summaries/", "insights/rejects/", "insights/_state/sources/"];
        assert!(key.starts_with("insights/"), "{key}");
        let own = per_source.iter().any(|p| key.starts_with(p)) || key.ends_with(".partial");
        assert!(!own || key.contains(&name), "{key}");
    }
    assert_eq!(parquet_by_partition(remote.clone()), parquet_by_partition(local.clone()), "same Parquet bytes");
    let local_rejects = local.iter().find(|(k, _)| k.starts_with("rejects/")).unwrap().1;
    assert_eq!(&remote[&format!("insights/rejects/{name}.csv")], local_rejects, "same rejects");

    let summary = summary_of(&w, FIXTURE_KEY).await.unwrap();
    assert_eq!(summary["status"], "succeeded");
    assert_eq!(summary["request_id"], "req-1");
    assert_eq!(summary["rows"], json!({"read": 41, "valid": 27, "rejected": 14}));
    assert_eq!(summary["source"]["uri"], format!("s3://{IN}/{FIXTURE_KEY}"));
    assert_eq!(summary["source"]["bytes"], fixture.len());
    assert!(summary["source"]["etag"].as_str().is_some_and(|e| !e.is_empty()), "{summary}");
    assert!(summary["estimated_cost_usd"].as_f64().is_some_and(|c| c > 0.0 && c < 0.001), "{summary}");
    assert_eq!(summary["rejects_uri"], format!("s3://{OUT}/insights/rejects/{name}.csv"));
    assert_eq!(summary["outputs"].as_array().unwrap().len(), 15);
    assert!(summary["outputs"][0]["uri"].as_str().unwrap().starts_with(&format!("s3://{OUT}/insights/")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn form_encoded_keys_are_decoded() {
    let w = world().await;
    let key = "exports/café orders (2026-11-22T13).csv";
    put(&w, IN, key, std::fs::read(manifest(FIXTURE)).unwrap()).await;
    let response = handler(&w).handle(event("s3-put-encoded-key.json"), "req-2").await.unwrap();
    assert_eq!(response["results"][0]["key"], key);
    assert_eq!(response["results"][0]["outcome"], "succeeded", "{response}");
    assert_eq!(summary_of(&w, key).await.unwrap()["source"]["uri"], format!("s3://{IN}/{key}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reruns_are_idempotent_and_remove_stale_outputs() {
    let w = world().await;
    let h = handler(&w);
    put(&w, IN, FIXTURE_KEY, std::fs::read(manifest(FIXTURE)).unwrap()).await;
    h.handle(event("s3-put.json"), "a").await.unwrap();
    let first = listing(&w, OUT).await;
    h.handle(event("s3-put.json"), "b").await.unwrap();
    let second = listing(&w, OUT).await;
    assert_eq!(first.keys().collect::<Vec<_>>(), second.keys().collect::<Vec<_>>(), "same listing");
    assert_eq!(without_summaries(&first), without_summaries(&second), "same bytes");

    // A corrected re-upload without hour 12 and without rejects.
    put(&w, IN, FIXTURE_KEY, std::fs::read(manifest("fixtures/bad/bom-crlf.csv")).unwrap()).await;
    h.handle(event("s3-put.json"), "c").await.unwrap();
    let third = listing(&w, OUT).await;
    let gone = |k: &String| k.contains("/rejects/") || k.contains("_state/dt=2026-11-22/hour=12/");
    assert!(!third.keys().any(gone), "{:?}", third.keys());
    assert_eq!(third.keys().filter(|k| k.ends_with(".parquet")).count(), 15, "hour 12 published again, empty");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_duplicate_deliveries_leave_one_consistent_result() {
    let w = world().await;
    put(&w, IN, FIXTURE_KEY, std::fs::read(manifest(FIXTURE)).unwrap()).await;
    let h = handler(&w);
    let (a, b) = tokio::join!(h.handle(event("s3-put.json"), "p1"), h.handle(event("s3-put.json"), "p2"));
    a.unwrap();
    b.unwrap();
    let parallel = listing(&w, OUT).await;
    h.handle(event("s3-put.json"), "p3").await.unwrap();
    let single = listing(&w, OUT).await;
    assert_eq!(without_summaries(&parallel), without_summaries(&single));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loop_guard_missing_objects_and_other_suffixes_are_skipped() {
    let w = world().await;
    put(&w, OUT, "insights/summaries/x.csv", b"event_time\n".to_vec()).await;
    let notification = |bucket: &str, key: &str| s3_event(bucket, key, "ObjectCreated:Put", None);
    let h = handler(&w);
    for (bucket, key, reason) in [
        (OUT, "insights/summaries/x.csv", "loop_guard"),
        (IN, "exports/gone.csv", "missing"),
        (IN, "exports/readme.txt", "suffix"),
    ] {
        let response = h.handle(notification(bucket, key), "s").await.unwrap();
        assert_eq!(response["results"][0]["outcome"], "skipped", "{bucket}/{key}: {response}");
        assert_eq!(response["results"][0]["reason"], reason, "{bucket}/{key}");
    }
    assert_eq!(listing(&w, OUT).await.len(), 1, "nothing was written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn input_that_can_never_succeed_writes_a_failed_summary_and_is_not_retried() {
    let w = world().await;
    put(&w, IN, "exports/garbage.csv", std::fs::read(manifest("fixtures/bad/binary-garbage.csv")).unwrap()).await;
    let ev = put_event("exports/garbage.csv");
    let response = handler(&w).handle(ev, "f").await.unwrap();
    assert_eq!(response["results"][0]["outcome"], "failed");
    assert_eq!(response["results"][0]["error_kind"], "invalid_header");
    let summary = summary_of(&w, "exports/garbage.csv").await.unwrap();
    assert_eq!(summary["status"], "failed");
    assert_eq!(summary["error"]["kind"], "invalid_header");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_batches_report_only_failed_messages() {
    let w = world().await;
    put(&w, IN, FIXTURE_KEY, std::fs::read(manifest(FIXTURE)).unwrap()).await;
    let response = handler(&w).handle(event("sqs-batch.json"), "q").await.unwrap();
    assert_eq!(response, json!({"batchItemFailures": [{"itemIdentifier": "22222222-bad-message"}]}));
    assert_eq!(summary_of(&w, FIXTURE_KEY).await.unwrap()["status"], "succeeded");
}

/// As deployed, the role may list the output bucket only under its prefix, so S3 answers a GET or HEAD of a
/// missing output key with 403 AccessDenied, not 404. The first run of a source reads a record, a manifest
/// and tables that do not exist yet: it must still succeed, with the same outputs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_outputs_answered_403_as_in_a_real_account_are_missing() {
    let w = world().await;
    let root = w._root.path().join("s3");
    let forbidden = Arc::new(AtomicUsize::new(0));
    let count = forbidden.clone();
    w.server.set_faults(Some(Box::new(move |method, target, _| {
        let path = target.strip_prefix(&format!("/{OUT}/"))?;
        let (key, query) = path.split_once('?').unwrap_or((path, ""));
        let object_read = matches!(query, "" | "x-id=GetObject") && !key.is_empty();
        if !matches!(method, "GET" | "HEAD") || !object_read {
            return None;
        }
        let key = key.replace("%3D", "=").replace("%2F", "/");
        (!root.join(OUT).join(&key).exists()).then(|| {
            count.fetch_add(1, Ordering::SeqCst);
            403
        })
    })));
    put(&w, IN, FIXTURE_KEY, std::fs::read(manifest(FIXTURE)).unwrap()).await;
    let h = handler(&w);
    let r = h.handle(event("s3-put.json"), "iam").await.unwrap();
    assert_eq!(r["results"][0]["outcome"], "succeeded", "{r}");
    // A second run reads what exists (200) and still meets no 403 it cannot explain.
    let r = h.handle(event("s3-put.json"), "iam-again").await.unwrap();
    assert_eq!(r["results"][0]["outcome"], "succeeded", "{r}");
    let n = forbidden.load(Ordering::SeqCst);
    assert!(n >= 17, "record, manifest and 15 tables were read before they existed: {n} 403s");
    w.server.set_faults(None);
    let remote = listing(&w, OUT).await;
    assert_eq!(parquet_by_partition(remote), parquet_by_partition(local_run(&manifest(FIXTURE))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_event_withdraws_the_source_from_its_hours() {
    let w = world().await;
    put(&w, IN, FIXTURE_KEY, std::fs::read(manifest(FIXTURE)).unwrap()).await;
    let h = handler(&w);
    h.handle(event("s3-put.json"), "put").await.unwrap();
    let r = h.handle(event("s3-delete.json"), "early").await.unwrap();
    assert_eq!(r["results"][0]["reason"], "still_exists", "{r}");
    w.client.delete_object().bucket(IN).key(FIXTURE_KEY).send().await.unwrap();
    let r = h.handle(event("s3-delete.json"), "delete").await.unwrap();
    assert_eq!(r["results"][0]["outcome"], "removed", "{r}");
    assert_eq!(r["results"][0]["tables_published"], 15, "two hours and the day, published again");
    let files = listing(&w, OUT).await;
    reference::assert_tables(&reference::published(&files, "insights/"), &BTreeMap::new(), "deleted");
    assert!(!files.keys().any(|k| k.contains("/summaries/") || k.contains("/rejects/")), "{:?}", files.keys());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eventbridge_test_and_unknown_events() {
    let w = world().await;
    put(&w, IN, FIXTURE_KEY, std::fs::read(manifest(FIXTURE)).unwrap()).await;
    let h = handler(&w);
    let response = h.handle(event("eventbridge-object-created.json"), "e").await.unwrap();
    assert_eq!(response["results"][0]["outcome"], "succeeded", "{response}");
    let response = h.handle(event("s3-test-event.json"), "t").await.unwrap();
    assert_eq!(response["status"], "test_event_acknowledged");
    let response = h.handle(json!({"detail-type": "Scheduled Event", "source": "aws.events"}), "u").await.unwrap();
    assert_eq!(response["status"], "ignored");
    let response = h.handle(json!("just a string"), "u").await.unwrap();
    assert_eq!(response["status"], "ignored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_objects_are_decoded_while_streaming() {
    let w = world().await;
    let key = "exports/orders-2026-11-22T13.csv.gz";
    put(&w, IN, key, std::fs::read(manifest("fixtures/bad/gzip-input.csv.gz")).unwrap()).await;
    let ev = put_event(key);
    handler(&w).handle(ev, "g").await.unwrap();
    let remote = listing(&w, OUT).await;
    assert_eq!(parquet_by_partition(remote), parquet_by_partition(local_run(&manifest(FIXTURE))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_rejects_use_multipart_upload() {
    let w = world().await;
    let opts = hourly_insights::generate::GenerateOptions {
        rows: 70_000,
        seed: 5,
        hour_start: 1_795_352_400_000_000,
        dirty: 1.0,
        shape: Default::default(),
        settings: hourly_insights::settings::Settings::default_ref(),
    };
    let mut data = Vec::new();
    hourly_insights::generate::generate(&opts, &mut data).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("all-dirty.csv");
    std::fs::write(&path, &data).unwrap();
    put(&w, IN, "exports/all-dirty.csv", data).await;
    let mut h = Handler::new(w.client.clone(), config());
    h.multipart = Some((5 * 1024 * 1024, 5 * 1024 * 1024));
    let ev = put_event("exports/all-dirty.csv");
    let before = w.server.requests.load(Ordering::SeqCst);
    Arc::new(h).handle(ev, "m").await.unwrap();
    let name = output_name(&format!("s3://{IN}/exports/all-dirty.csv"));
    let remote = get(&w, OUT, &format!("insights/rejects/{name}.csv")).await.unwrap();
    let local = local_run(&path);
    let local_rejects = local.iter().find(|(k, _)| k.starts_with("rejects/")).unwrap().1;
    assert!(local_rejects.len() > 5 * 1024 * 1024, "rejects are {} bytes", local_rejects.len());
    assert_eq!(&remote, local_rejects);
    let parts_root = w._root.path().join("s3");
    assert!(parts_root.exists());
    assert!(w.server.requests.load(Ordering::SeqCst) - before >= 4, "create + 2 parts + complete");
}

/// A multipart upload whose CompleteMultipartUpload fails (after the SDK's retries) is aborted, so no
/// upload is left open; the run fails with a retryable error and writes no summary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multipart_upload_that_cannot_complete_is_aborted() {
    let w = world().await;
    let opts = hourly_insights::generate::GenerateOptions {
        rows: 70_000,
        seed: 5,
        hour_start: H13,
        dirty: 1.0,
        shape: Default::default(),
        settings: hourly_insights::settings::Settings::default_ref(),
    };
    let mut data = Vec::new();
    hourly_insights::generate::generate(&opts, &mut data).unwrap();
    put(&w, IN, "exports/all-dirty.csv", data).await;
    let seen: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let log = seen.clone();
    w.server.set_faults(Some(Box::new(move |method, target, _| {
        let upload = target.contains("uploadId=");
        if upload {
            log.lock().unwrap().push((method.to_string(), target.to_string()));
        }
        // POST ?uploadId= is CompleteMultipartUpload.
        (upload && method == "POST").then_some(500)
    })));
    let mut h = Handler::new(w.client.clone(), config());
    h.multipart = Some((5 * 1024 * 1024, 5 * 1024 * 1024));
    let ev = put_event("exports/all-dirty.csv");
    let err = Arc::new(h).handle(ev, "abort").await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(err.to_string().contains("CompleteMultipartUpload"), "{err}");
    let seen = seen.lock().unwrap().clone();
    let completes = seen.iter().filter(|(m, _)| m == "POST").count();
    let aborts: Vec<_> = seen.iter().filter(|(m, _)| m == "DELETE").collect();
    assert!(completes >= 1, "{seen:?}");
    assert_eq!(aborts.len(), 1, "the upload is aborted once: {seen:?}");
    w.server.set_faults(None);
    // The aborted upload has no parts left (S3 answers NoSuchUpload; s3s-fs lists no parts).
    let upload_id = aborts[0].1.split("uploadId=").nth(1).unwrap().split('&').next().unwrap().to_string();
    let key = aborts[0].1.split('?').next().unwrap().strip_prefix(&format!("/{OUT}/")).unwrap().to_string();
    let parts = w.client.list_parts().bucket(OUT).key(&key).upload_id(&upload_id).send().await;
    assert!(parts.as_ref().map_or(true, |p| p.parts().is_empty()), "{parts:?}");
    assert!(summary_of(&w, "exports/all-dirty.csv").await.is_none(), "no summary over a failed write");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_s3_faults_are_retried_to_success() {
    let w = world().await;
    put(&w, IN, FIXTURE_KEY, std::fs::read(manifest(FIXTURE)).unwrap()).await;
    let injected = Arc::new(AtomicUsize::new(0));
    let count = injected.clone();
    // Every third request fails with 503 or 500, but at most once per method and path (requests in flight
    // together take turns, so "every third" could otherwise hit one request on each of its attempts); the
    // SDK's retries must absorb it.
    let mut failed = std::collections::HashSet::new();
    w.server.set_faults(Some(Box::new(move |method, target, n| {
        (n % 3 == 0 && failed.insert((method.to_string(), target.to_string()))).then(|| {
            count.fetch_add(1, Ordering::SeqCst);
            if n % 2 == 0 {
                503
            } else {
                500
            }
        })
    })));
    let response = handler(&w).handle(event("s3-put.json"), "r").await.unwrap();
    w.server.set_faults(None);
    assert_eq!(response["results"][0]["outcome"], "succeeded", "{response}");
    assert!(injected.load(Ordering::SeqCst) >= 5, "faults were injected");
    assert_eq!(summary_of(&w, FIXTURE_KEY).await.unwrap()["status"], "succeeded");
    let local = local_run(&manifest(FIXTURE));
    assert_eq!(parquet_by_partition(listing(&w, OUT).await), parquet_by_partition(local));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_stream_broken_mid_file_is_resumed_from_where_it_broke() {
    let w = world().await;
    let input = std::fs::read(manifest(FIXTURE)).unwrap();
    put(&w, IN, FIXTURE_KEY, input.clone()).await;
    let ranges = Arc::new(Mutex::new(Vec::new()));
    let seen = ranges.clone();
    // The first two reads of the input break after 1000 and then 500 more bytes; the third completes.
    w.server.set_truncations(Some(Box::new(move |method, target, range| {
        if method != "GET" || !target.contains("/exports/") {
            return None;
        }
        let mut seen = seen.lock().unwrap();
        seen.push(range.map(str::to_string));
        [Some(1000), Some(500)].get(seen.len() - 1).copied().flatten()
    })));
    let response = handler(&w).handle(event("s3-put.json"), "r").await.unwrap();
    w.server.set_truncations(None);
    assert_eq!(response["results"][0]["outcome"], "succeeded", "{response}");
    assert_eq!(
        *ranges.lock().unwrap(),
        vec![
            // The first read asks for the first part (S3_GET_STREAMS ranged reads), which holds the whole file.
            Some(format!("bytes=0-{}", (8 << 20) - 1)),
            Some("bytes=1000-".to_string()),
            Some("bytes=1500-".to_string())
        ],
        "each resume asks for the rest from the first byte not yet read"
    );
    let summary = summary_of(&w, FIXTURE_KEY).await.unwrap();
    assert_eq!(summary["status"], "succeeded");
    assert_eq!(summary["source"]["bytes"], input.len());
    let local = local_run(&manifest(FIXTURE));
    assert_eq!(parquet_by_partition(listing(&w, OUT).await), parquet_by_partition(local));

    // A body that keeps breaking fails the run as retryable, without a summary.
    let w = world().await;
    put(&w, IN, FIXTURE_KEY, input).await;
    w.server.set_truncations(Some(Box::new(|method, target, _| {
        (method == "GET" && target.contains("/exports/")).then_some(100)
    })));
    let err = handler(&w).handle(event("s3-put.json"), "s").await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(summary_of(&w, FIXTURE_KEY).await.is_none(), "no summary for a partial read");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_s3_faults_end_in_a_retryable_error_and_no_summary() {
    let w = world().await;
    put(&w, IN, FIXTURE_KEY, std::fs::read(manifest(FIXTURE)).unwrap()).await;
    let h = handler(&w);

    // Writes of one table keep failing: the run stops before its summary.
    w.server.set_faults(Some(Box::new(|method, target, _| {
        (method == "PUT" && target.contains("/geo_device/")).then_some(503)
    })));
    let err = h.handle(event("s3-put.json"), "x").await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(summary_of(&w, FIXTURE_KEY).await.is_none(), "no summary for a partial result");

    // Reading the input keeps failing.
    w.server.set_faults(Some(Box::new(|method, target, _| {
        (method == "GET" && target.contains("/exports/")).then_some(500)
    })));
    let err = h.handle(event("s3-put.json"), "y").await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
    assert!(summary_of(&w, FIXTURE_KEY).await.is_none());

    // Once S3 recovers, the retry succeeds.
    w.server.set_faults(None);
    h.handle(event("s3-put.json"), "z").await.unwrap();
    assert_eq!(summary_of(&w, FIXTURE_KEY).await.unwrap()["status"], "succeeded");
}

/// An invocation whose deadline comes before the file can be finished stops before writing anything, with
/// an error Lambda retries; the same file with time enough succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_cannot_finish_before_the_deadline_stops_before_writing() {
    let w = world().await;
    let opts = hourly_insights::generate::GenerateOptions {
        rows: 600_000,
        seed: 3,
        hour_start: H13,
        dirty: 0.0,
        shape: Default::default(),
        settings: hourly_insights::settings::Settings::default_ref(),
    };
    let mut data = Vec::new();
    hourly_insights::generate::generate(&opts, &mut data).unwrap();
    put(&w, IN, FIXTURE_KEY, data).await;
    let invoke = |deadline_ms: &str| {
        let mut cmd = cli(&w);
        cmd.args(["invoke", "--event", "fixtures/events/s3-put.json", "--deadline-ms", deadline_ms])
            .env("OUTPUT_BUCKET", OUT)
            .env("RUST_LOG", "error");
        cmd
    };
    let mut cmd = invoke("400");
    let output = tokio::task::spawn_blocking(move || cmd.output()).await.unwrap().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("Lambda would retry"), "{stderr}");
    assert!(
        stderr.contains("stopped before the invocation deadline") && stderr.contains("nothing was written"),
        "{stderr}"
    );
    assert!(stderr.contains("% of the input read"), "stopped while reading, from the projected time: {stderr}");
    assert!(listing(&w, OUT).await.is_empty(), "no write after the cut-off");

    // A deadline already past (as a Runtime API emulator may send) is no deadline: the run completes.
    let h = handler(&w);
    let past = std::time::SystemTime::now() - Duration::from_secs(5);
    let r = h.handle_until(event("s3-put.json"), "past", Some(past)).await.unwrap();
    assert_eq!(r["results"][0]["outcome"], "succeeded", "{r}");

    let mut cmd = invoke("120000");
    let output = tokio::task::spawn_blocking(move || cmd.output()).await.unwrap().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(summary_of(&w, FIXTURE_KEY).await.unwrap()["status"], "succeeded");
}

/// gzip shapes through S3 with the body stream broken in the middle of the object: two members read as one
/// file (the same tables as the plain file), zero padding after the last member and a bad CRC failing as
/// `corrupt_input`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_shapes_read_from_s3_through_a_broken_body_stream() {
    use std::io::Write;
    let plain = std::fs::read(manifest(FIXTURE)).unwrap();
    let gz = |bytes: &[u8]| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    };
    let cut = plain.len() / 2 + plain[plain.len() / 2..].iter().position(|&b| b == b'\n').unwrap() + 1;
    let two_members = [gz(&plain[..cut]), gz(&plain[cut..])].concat();
    let mut padded = gz(&plain);
    padded.extend_from_slice(&[0u8; 4096]);
    let mut bad_crc = gz(&plain);
    let n = bad_crc.len();
    bad_crc[n - 8] ^= 0xff;
    let key = "exports/orders-2026-11-22T13.csv.gz";
    for (name, bytes, kind) in [
        ("two members", two_members, None),
        ("padded", padded, Some("corrupt_input")),
        ("bad CRC", bad_crc, Some("corrupt_input")),
    ] {
        let w = world().await;
        let at = 700; // inside the first member (the whole fixture is about 1,700 bytes of gzip)
        put(&w, IN, key, bytes).await;
        let broken = Arc::new(AtomicUsize::new(0));
        let count = broken.clone();
        // The first read of the object breaks halfway; the resume reads the rest.
        w.server.set_truncations(Some(Box::new(move |method, target, _| {
            (method == "GET" && target.contains("/exports/") && count.fetch_add(1, Ordering::SeqCst) == 0).then_some(at)
        })));
        let response = handler(&w).handle(put_event(key), "gz").await.unwrap();
        w.server.set_truncations(None);
        assert!(broken.load(Ordering::SeqCst) >= 2, "{name}: the body broke and was resumed");
        match kind {
            None => {
                assert_eq!(response["results"][0]["outcome"], "succeeded", "{name}: {response}");
                let remote = listing(&w, OUT).await;
                assert_eq!(parquet_by_partition(remote), parquet_by_partition(local_run(&manifest(FIXTURE))), "{name}");
            }
            Some(kind) => {
                assert_eq!(response["results"][0]["outcome"], "failed", "{name}: {response}");
                assert_eq!(response["results"][0]["error_kind"], kind, "{name}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invoke_command_runs_the_handler_with_json_logs_and_metrics() {
    let w = world().await;
    put(&w, IN, FIXTURE_KEY, std::fs::read(manifest(FIXTURE)).unwrap()).await;
    let mut cmd = cli(&w);
    cmd.args(["--log-format", "json", "invoke", "--event", "fixtures/events/s3-put.json"])
        .env("OUTPUT_BUCKET", OUT)
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1769");
    let output = tokio::task::spawn_blocking(move || cmd.output()).await.unwrap().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    assert!(output.status.success(), "{stderr}");
    let response: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(response["results"][0]["outcome"], "succeeded", "{response}");

    let lines: Vec<Value> =
        stderr.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("JSON: {l}"))).collect();
    let logs: Vec<&Value> = lines.iter().filter(|l| l.get("_aws").is_none()).collect();
    for line in &logs {
        for field in ["timestamp", "level", "message", "requestId"] {
            assert!(line.get(field).is_some(), "{field} in {line}");
        }
    }
    assert!(logs.iter().any(|l| l["coldStart"] == true), "cold start logged");
    let done = logs.iter().find(|l| l["message"] == "run finished").expect("one INFO line per file");
    assert_eq!(done["level"], "INFO");
    assert_eq!(done["bucket"], IN);
    assert_eq!(done["key"], FIXTURE_KEY);
    for field in ["rows_read", "rows_valid", "rows_rejected", "bytes", "duration_ms"] {
        assert!(done.get(field).is_some(), "{field} in {done}");
    }
    let emf = lines.iter().find(|l| l.get("_aws").is_some()).expect("an EMF line");
    assert_eq!(emf["_aws"]["CloudWatchMetrics"][0]["Namespace"], "HourlyInsights");
    assert_eq!(emf["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([["FunctionName"]]));
    assert_eq!(emf["RowsRead"], 41);
    assert_eq!(emf["RowsValid"], 27);
    assert_eq!(emf["RowsRejected"], 14);
    assert_eq!(emf["FilesSucceeded"], 1);
    assert_eq!(emf["FilesFailed"], 0);
    assert!(!stderr.contains("A1001"), "no row contents in logs at INFO");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_of_replaced_content_stands_down_and_writes_nothing() {
    let w = world().await;
    put(&w, IN, FIXTURE_KEY, std::fs::read(manifest(FIXTURE)).unwrap()).await;
    let etag = w.client.head_object().bucket(IN).key(FIXTURE_KEY).send().await.unwrap().e_tag().map(String::from);
    let check = |etag: Option<String>| {
        let client = w.client.clone();
        async move { hourly_insights::storage::s3::still_current(&client, IN, FIXTURE_KEY, etag.as_deref()).await.unwrap() }
    };
    assert!(check(etag.clone()).await, "unchanged object is current");
    put(&w, IN, FIXTURE_KEY, std::fs::read(manifest("fixtures/bad/bom-crlf.csv")).unwrap()).await;
    assert!(!check(etag.clone()).await, "a re-upload changes the ETag");
    w.client.delete_object().bucket(IN).key(FIXTURE_KEY).send().await.unwrap();
    assert!(!check(etag).await, "a deleted object is not current");

    // The pipeline asks right before its first write and, told "no", writes nothing.
    let out = tempfile::tempdir().unwrap();
    let sink = LocalDir::new(out.path()).unwrap();
    let input = input::open_local(&manifest(FIXTURE)).unwrap();
    let result = pipeline::run_guarded(input, &sink, &pipeline::Options::default(), &|| Ok(false));
    assert!(matches!(result, Err(hourly_insights::Error::Superseded { .. })), "{result:?}");
    assert!(walk(out.path()).is_empty(), "nothing written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_command_reads_and_writes_s3_uris() {
    let w = world().await;
    put(&w, IN, "exports/orders.csv.gz", std::fs::read(manifest("fixtures/bad/gzip-input.csv.gz")).unwrap()).await;
    let mut cmd = cli(&w);
    cmd.args(["run", &format!("s3://{IN}/exports/orders.csv.gz"), "--out", &format!("s3://{OUT}/adhoc/")])
        .env("RUST_LOG", "warn");
    let output = tokio::task::spawn_blocking(move || cmd.output()).await.unwrap().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary["status"], "succeeded");
    assert_eq!(summary["source"]["uri"], format!("s3://{IN}/exports/orders.csv.gz"));
    let remote = listing(&w, OUT).await;
    assert!(remote.keys().all(|k| k.starts_with("adhoc/")), "{:?}", remote.keys());
    let parquet: BTreeMap<String, Vec<u8>> = remote
        .into_iter()
        .filter(|(k, _)| k.ends_with(".parquet"))
        .map(|(k, v)| (k.strip_prefix("adhoc/").unwrap().rsplit_once('/').unwrap().0.to_string(), v))
        .collect();
    assert_eq!(parquet, parquet_by_partition(local_run(&manifest(FIXTURE))));

    // A missing object is a clear one-line error, exit code 1.
    let mut cmd = cli(&w);
    cmd.args(["run", &format!("s3://{IN}/exports/nope.csv"), "--out", &format!("s3://{OUT}/adhoc/")]);
    let output = tokio::task::spawn_blocking(move || cmd.output()).await.unwrap().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no such object"), "{stderr}");

    // rebuild and forget on an s3:// output: the same tables again, then none.
    let parquet_of = |files: BTreeMap<String, Vec<u8>>| -> BTreeMap<String, Vec<u8>> {
        files.into_iter().filter(|(k, _)| k.ends_with(".parquet")).collect()
    };
    let before = parquet_of(listing(&w, OUT).await);
    let mut cmd = cli(&w);
    cmd.args(["rebuild", "--out", &format!("s3://{OUT}/adhoc/")]).env("RUST_LOG", "warn");
    let output = tokio::task::spawn_blocking(move || cmd.output()).await.unwrap().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["days"], json!(["2026-11-22"]));
    assert_eq!(report["tables_written"], 15, "every hour and day rewritten");
    assert_eq!(parquet_of(listing(&w, OUT).await), before, "the same bytes");
    let mut cmd = cli(&w);
    cmd.args(["forget", &format!("s3://{IN}/exports/orders.csv.gz"), "--out", &format!("s3://{OUT}/adhoc/")]);
    let output = tokio::task::spawn_blocking(move || cmd.output()).await.unwrap().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let files = listing(&w, OUT).await;
    reference::assert_tables(&reference::published(&files, "adhoc/"), &BTreeMap::new(), "forgotten");
    assert!(!files.keys().any(|k| k.starts_with("adhoc/summaries/")), "{:?}", files.keys());
}

const H12: i64 = 1_795_348_800_000_000; // 2026-11-22T12:00Z
const H13: i64 = H12 + 3_600_000_000;

/// An S3 notification for one key of the input bucket, with the event name and sequencer S3 would give it.
fn notification(key: &str, event_name: &str, sequencer: &str) -> Value {
    s3_event(IN, key, event_name, Some(sequencer))
}

/// Eight exports of the same hours (sharing order and customer ids), each run by its own handler call at
/// the same moment: the published hours and day are the exact merge of all eight, however their
/// conditional writes interleave. Run twice, the second time with every file corrected at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_concurrent_runs_of_one_hour_publish_the_exact_merge() {
    let w = world().await;
    let h = handler(&w);
    let mut contended = 0;
    for round in 0..2u64 {
        let mut all = Vec::new();
        for i in 0..8u64 {
            let lines = reference::random_lines(100 * round + i, &[H12, H13, H13], 300, i * 50..i * 50 + 200, 0..150);
            let key = format!("exports/part-{i}.csv");
            put(&w, IN, &key, reference::csv_text(&lines, &[]).into_bytes()).await;
            all.extend(lines);
        }
        let before = w.server.preconditions_failed.load(Ordering::SeqCst);
        let runs: Vec<_> = (0..8)
            .map(|i| {
                let h = Arc::clone(&h);
                let object = ObjectRef {
                    bucket: IN.into(),
                    key: format!("exports/part-{i}.csv"),
                    version_id: None,
                    sequencer: Some(format!("{:018X}", 10 * round + 1)),
                    removed: false,
                };
                tokio::spawn(async move { h.process(&object, "concurrent").await })
            })
            .collect();
        for run in runs {
            let outcome = run.await.unwrap().unwrap();
            assert!(matches!(outcome, Outcome::Succeeded { .. }), "{outcome:?}");
        }
        contended += w.server.preconditions_failed.load(Ordering::SeqCst) - before;
        let files = listing(&w, OUT).await;
        let ctx = format!("round {round}");
        reference::assert_tables(&reference::published(&files, "insights/"), &reference::expected(&all), &ctx);
        let manifest: Value = serde_json::from_slice(&files["insights/_state/dt=2026-11-22/manifest.json"]).unwrap();
        assert_eq!(manifest["sources"].as_object().unwrap().len(), 8, "{ctx}");
        // The reports follow the tables' generations too: whatever the interleaving, each page shows the
        // final tables' numbers, and latest.html the newest hour.
        let tables = reference::published(&files, "insights/");
        for (report, table) in [
            ("reports/dt=2026-11-22/hour=12/index.html", "hourly_kpis/dt=2026-11-22/hour=12"),
            ("reports/dt=2026-11-22/hour=13/index.html", "hourly_kpis/dt=2026-11-22/hour=13"),
            ("reports/dt=2026-11-22/index.html", "daily_kpis/dt=2026-11-22"),
        ] {
            let html = String::from_utf8_lossy(&files[&format!("insights/{report}")]);
            let revenue = tables[table][0].split('|').nth(4).unwrap();
            assert!(
                html.contains(&format!("data-kpi=\"revenue\" data-value=\"{revenue}\"")),
                "{ctx}: {report} shows the final revenue {revenue}"
            );
        }
        let latest = String::from_utf8_lossy(&files["insights/reports/latest.html"]);
        assert!(latest.contains("data-period=\"2026-11-22T13\""), "{ctx}: latest.html is the newest hour");
    }
    eprintln!("conditional writes that lost to another writer and were retried: {contended}");
}

/// With versioning, an older version's run can finish after a newer one's (a slow run, a retry, a replay
/// from the failure queue): ordered by the events' sequencers, the newer version's numbers stand, and a
/// deletion stands against an older upload's late event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_versions_late_run_does_not_replace_the_newer_one() {
    let w = world().await;
    let h = handler(&w);
    let key = "exports/versions.csv";
    let v1 = reference::random_lines(1, &[H12, H13], 400, 0..200, 0..100);
    let v2 = reference::random_lines(2, &[H13], 400, 100..300, 50..150);
    let tables = |files: &BTreeMap<String, Vec<u8>>| reference::published(files, "insights/");
    put(&w, IN, key, reference::csv_text(&v2, &[]).into_bytes()).await;
    let r = h.handle(notification(key, "ObjectCreated:Put", "0055AED6DCD90281E6"), "v2").await.unwrap();
    assert_eq!(r["results"][0]["outcome"], "succeeded", "{r}");
    reference::assert_tables(&tables(&listing(&w, OUT).await), &reference::expected(&v2), "v2");

    // v1's event arrives late while v1's bytes are what the run reads.
    put(&w, IN, key, reference::csv_text(&v1, &[]).into_bytes()).await;
    let r = h.handle(notification(key, "ObjectCreated:Put", "0055AED6DCD90281E5"), "v1").await.unwrap();
    assert_eq!(r["results"][0]["outcome"], "skipped", "{r}");
    assert_eq!(r["results"][0]["reason"], "superseded");
    let after = listing(&w, OUT).await;
    reference::assert_tables(&tables(&after), &reference::expected(&v2), "v2 stands");
    let record: Value = serde_json::from_slice(
        &after[&format!("insights/_state/sources/{}.json", output_name(&format!("s3://{IN}/{key}")))],
    )
    .unwrap();
    assert_eq!(record["version"]["sequencer"], "0055AED6DCD90281E6", "the record names what the state was built from");

    // A noncurrent version deleted while the key still has an object: nothing changes.
    let r = h.handle(notification(key, "ObjectRemoved:Delete", "0055AED6DCD90281F0"), "old-version").await.unwrap();
    assert_eq!(r["results"][0]["reason"], "still_exists", "{r}");
    // Once the object is gone, a deletion older than v2 changes nothing; a newer one removes the source.
    w.client.delete_object().bucket(IN).key(key).send().await.unwrap();
    let r = h.handle(notification(key, "ObjectRemoved:Delete", "0055AED6DCD90281E0"), "old-delete").await.unwrap();
    assert_eq!(r["results"][0]["reason"], "superseded", "{r}");
    let r = h.handle(notification(key, "ObjectRemoved:Delete", "0055AED6DCD90281F0"), "delete").await.unwrap();
    assert_eq!(r["results"][0]["outcome"], "removed", "{r}");
    let after = listing(&w, OUT).await;
    reference::assert_tables(&tables(&after), &BTreeMap::new(), "deleted");
    assert!(summary_of(&w, key).await.is_none(), "the deleted source's summary is gone");
    assert!(!after.keys().any(|k| k.ends_with(".partial")), "{:?}", after.keys());

    // v2's event delivered again after the deletion: the deletion stands.
    put(&w, IN, key, reference::csv_text(&v2, &[]).into_bytes()).await;
    let r = h.handle(notification(key, "ObjectCreated:Put", "0055AED6DCD90281E6"), "replay").await.unwrap();
    assert_eq!(r["results"][0]["reason"], "superseded", "{r}");
    reference::assert_tables(&tables(&listing(&w, OUT).await), &BTreeMap::new(), "still deleted");
}
