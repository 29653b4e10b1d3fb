//! Against moto (moto_server from PyPI, started here on loopback): `hourly-insights replay` with its SQS and S3,
//! a failure-queue message wrapping the fixture's S3 event is run through the handler and deleted, a
//! message without an event stays; and a run with `DIGEST_TOPIC_ARN` publishes its digest to moto's SNS.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const MOTO: &str = "moto[server]==5.2.5";

/// moto_server: `MOTO_SERVER`, CI's tool venv, the PATH, or a venv this test makes under target/.
fn moto_server() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    if let Some(p) = std::env::var_os("MOTO_SERVER") {
        return p.into();
    }
    for candidate in [root.join(".ci/.venv/bin/moto_server"), root.join("target/moto-venv/bin/moto_server")] {
        if candidate.exists() {
            return candidate;
        }
    }
    if Command::new("moto_server").arg("--help").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok() {
        return "moto_server".into();
    }
    let venv = root.join("target/moto-venv");
    let ok = Command::new("python3").args(["-m", "venv"]).arg(&venv).status().unwrap().success()
        && Command::new(venv.join("bin/pip")).args(["install", "-q", MOTO]).status().unwrap().success();
    assert!(ok, "could not install {MOTO} into {}", venv.display());
    venv.join("bin/moto_server")
}

struct Moto(Child, String);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
    }
}

fn start_moto() -> Moto {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(moto_server())
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("moto_server starts");
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < Duration::from_secs(60), "moto_server did not listen within 60 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    Moto(child, format!("http://127.0.0.1:{port}"))
}

fn aws(endpoint: &str) -> aws_config::SdkConfig {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(endpoint)
            .credentials_provider(aws_sdk_s3::config::Credentials::new("testing", "testing", None, None, "test"))
            .load(),
    )
}

/// The binary with `args`, its environment cleared but for the AWS settings of moto at `endpoint`,
/// `OUTPUT_BUCKET` and `extra`.
fn hourly_insights(endpoint: &str, args: &[&str], extra: &[(&str, &str)]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_hourly-insights"))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("OUTPUT_BUCKET", "hourly-insights-output")
        .envs(extra.iter().copied())
        .output()
        .unwrap()
}

/// The input and output buckets, with the fixture where fixtures/events/s3-put.json says it is.
async fn buckets_with_the_fixture(s3: &aws_sdk_s3::Client) {
    for bucket in ["hourly-insights-input", "hourly-insights-output"] {
        s3.create_bucket().bucket(bucket).send().await.unwrap();
    }
    let fixture =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/orders-2026-11-22T13.csv")).unwrap();
    s3.put_object()
        .bucket("hourly-insights-input")
        .key("exports/orders-2026-11-22T13.csv")
        .body(fixture.into())
        .send()
        .await
        .unwrap();
}

#[test]
fn replay_runs_the_failure_queues_events_and_deletes_the_ones_that_succeed() {
    let moto = start_moto();
    let shared = aws(&moto.1);
    let s3 = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&shared).force_path_style(true).build());
    let sqs = aws_sdk_sqs::Client::new(&shared);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let event: serde_json::Value = serde_json::from_slice(
        &std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/events/s3-put.json")).unwrap(),
    )
    .unwrap();
    let queue_url = rt.block_on(async {
        buckets_with_the_fixture(&s3).await;
        let queue = sqs.create_queue().queue_name("failed-events").send().await.unwrap();
        let url = queue.queue_url().unwrap().to_string();
        let record = serde_json::json!({"version": "1.0", "timestamp": "2026-11-22T14:00:00.000Z",
            "requestContext": {"requestId": "r1", "condition": "RetriesExhausted", "approximateInvokeCount": 3},
            "requestPayload": event, "responseContext": {"statusCode": 200, "functionError": "Unhandled"}});
        sqs.send_message().queue_url(&url).message_body(record.to_string()).send().await.unwrap();
        sqs.send_message().queue_url(&url).message_body("not an event").send().await.unwrap();
        url
    });

    let output = hourly_insights(
        &moto.1,
        &["replay", "--queue-url", &queue_url, "--visibility-seconds", "1"],
        &[("RUST_LOG", "warn")],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "one message stayed: {stderr}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report, serde_json::json!({"replayed": 1, "failed": 0, "unreadable": 1}), "{stderr}");

    rt.block_on(async {
        let listed =
            s3.list_objects_v2().bucket("hourly-insights-output").prefix("insights/summaries/").send().await.unwrap();
        assert_eq!(listed.contents().len(), 1, "the replayed event's summary");
        let tables =
            s3.list_objects_v2().bucket("hourly-insights-output").prefix("insights/hourly_kpis/").send().await.unwrap();
        assert_eq!(tables.contents().len(), 2, "two hours published");
        // Only the unreadable message is left (once its visibility timeout has passed).
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let left = sqs.receive_message().queue_url(&queue_url).max_number_of_messages(10).send().await.unwrap();
        let bodies: Vec<&str> = left.messages().iter().filter_map(|m| m.body()).collect();
        assert_eq!(bodies, ["not an event"]);
    });
}

/// With `DIGEST_TOPIC_ARN` set, a run publishes its newest hour's digest to the topic: moto's SNS delivers
/// it to an SQS queue subscribed here, and the message is the summary's digest, linking the report under
/// `REPORT_BASE_URL`.
#[test]
fn the_digest_of_a_run_is_published_to_the_sns_topic() {
    let moto = start_moto();
    let shared = aws(&moto.1);
    let s3 = aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&shared).force_path_style(true).build());
    let sqs = aws_sdk_sqs::Client::new(&shared);
    let sns = aws_sdk_sns::Client::new(&shared);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (topic, queue_url) = rt.block_on(async {
        buckets_with_the_fixture(&s3).await;
        let topic = sns.create_topic().name("digest").send().await.unwrap().topic_arn().unwrap().to_string();
        let queue = sqs.create_queue().queue_name("digest-inbox").send().await.unwrap();
        let url = queue.queue_url().unwrap().to_string();
        let attrs = sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .unwrap();
        let arn = attrs.attributes().unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn].clone();
        sns.subscribe().topic_arn(&topic).protocol("sqs").endpoint(arn).send().await.unwrap();
        (topic, url)
    });

    let event = root.join("fixtures/events/s3-put.json").to_string_lossy().into_owned();
    let digest_env = [
        ("DIGEST_TOPIC_ARN", topic.as_str()),
        ("REPORT_BASE_URL", "https://reports.example.test/insights/"),
        ("RUST_LOG", "info"),
    ];
    let output = hourly_insights(&moto.1, &["invoke", "--event", &event], &digest_env);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("digest published"), "{stderr}");

    rt.block_on(async {
        let summaries =
            s3.list_objects_v2().bucket("hourly-insights-output").prefix("insights/summaries/").send().await.unwrap();
        let key = summaries.contents()[0].key().unwrap().to_string();
        let body = s3.get_object().bucket("hourly-insights-output").key(&key).send().await.unwrap();
        let summary: serde_json::Value =
            serde_json::from_slice(&body.body.collect().await.unwrap().into_bytes()).unwrap();
        let digest = &summary["digest"];
        assert_eq!(digest["report"], "https://reports.example.test/insights/reports/dt=2026-11-22/hour=13/index.html");
        for page in
            ["reports/dt=2026-11-22/hour=13/index.html", "reports/dt=2026-11-22/index.html", "reports/latest.html"]
        {
            let head = s3.head_object().bucket("hourly-insights-output").key(format!("insights/{page}")).send().await;
            let head = head.unwrap_or_else(|e| panic!("{page}: {e}"));
            assert_eq!(head.content_type(), Some("text/html; charset=utf-8"), "{page}");
        }

        let received = sqs
            .receive_message()
            .queue_url(&queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(5)
            .send()
            .await
            .unwrap();
        let messages = received.messages();
        assert_eq!(messages.len(), 1, "one digest for one file");
        let envelope: serde_json::Value = serde_json::from_str(messages[0].body().unwrap()).unwrap();
        assert_eq!(envelope["TopicArn"], topic.as_str());
        assert_eq!(envelope["Subject"], digest["subject"]);
        assert_eq!(envelope["Message"], digest["text"]);
        let text = envelope["Message"].as_str().unwrap();
        assert!(text.starts_with("13:00–14:00 UTC, Sunday 22 November 2026\nRevenue "), "{text}");
        assert!(
            text.ends_with("Report: https://reports.example.test/insights/reports/dt=2026-11-22/hour=13/index.html\n")
        );
    });

    // A digest that cannot be published (here: no such topic) is an ERROR and a DigestsFailed metric, not a
    // failed run: the tables and reports are out, and a retry would redo the whole file for a notification.
    let missing = [("DIGEST_TOPIC_ARN", "arn:aws:sns:us-east-1:123456789012:no-such-topic"), ("RUST_LOG", "info")];
    let output = hourly_insights(&moto.1, &["invoke", "--event", &event], &missing);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("cannot publish the digest") && stderr.contains("\"DigestsFailed\":1"), "{stderr}");
}
