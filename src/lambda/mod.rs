//! Lambda event handling: which objects an event names, whether to process them, and what to answer.
//!
//! Accepted events:
//! - S3 event notifications (`Records[].s3`): keys are form-encoded and decoded with [`decode_key`];
//! - SQS messages whose bodies are S3 notifications: failed messages are answered in `batchItemFailures`,
//!   so only those are retried;
//! - EventBridge "Object Created" events from S3 (keys are not encoded there);
//! - the `s3:TestEvent` S3 sends when a notification is set up: acknowledged and ignored.
//!
//! Anything else is logged as an ERROR with its shape and answered without an error, so a misrouted event
//! cannot crash or loop the function.
//!
//! Per object: a key without an accepted suffix is skipped (INFO); an object inside the output location is
//! skipped (WARN, the loop guard); a missing object is skipped (WARN); input that can never succeed gives a
//! `failed` summary and counts as handled (no retry); transient trouble is an error, so Lambda retries.

pub mod config;
pub mod logging;
pub mod metrics;
pub mod replay;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use aws_lambda_events::event::s3::S3EventRecord;
use aws_lambda_events::event::sqs::SqsEvent;
use aws_sdk_s3::Client;
use serde::Serialize;
use serde_json::{json, Value};
use tracing::Instrument;

use crate::error::{Error, Result};
use crate::lambda::config::Config;
use crate::output::summary::{Status, Summary};
use crate::pipeline::{self, Options};
use crate::storage::s3::{self, S3Sink};

/// An object an event refers to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ObjectRef {
    pub bucket: String,
    /// Decoded key.
    pub key: String,
    pub version_id: Option<String>,
    /// The event's `sequencer`: orders the events of one key (a newer upload or deletion wins).
    pub sequencer: Option<String>,
    /// An `ObjectRemoved` (or EventBridge "Object Deleted") event: the source is forgotten.
    pub removed: bool,
}

/// What an event is.
#[derive(Debug, PartialEq)]
pub enum Event {
    /// Objects from an S3 notification or an EventBridge event.
    Objects(Vec<ObjectRef>),
    /// SQS messages: (message id, objects of its S3 notification, or why it could not be read).
    Sqs(Vec<(String, std::result::Result<Vec<ObjectRef>, String>)>),
    /// The S3 test event (or an SQS batch of only test events): nothing to do.
    Test,
    /// Not a shape this function handles; the string describes it.
    Unrecognized(String),
}

/// Decodes an S3 notification key: `+` is a space, `%XX` are bytes (decoded by `percent-encoding`), the
/// result is UTF-8. A `%` not followed by two hex digits is an error (S3 never sends one).
pub fn decode_key(raw: &str) -> std::result::Result<String, String> {
    let bytes = raw.as_bytes();
    if let Some(at) = (0..bytes.len())
        .find(|&i| bytes[i] == b'%' && !bytes.get(i + 1..i + 3).is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)))
    {
        return Err(format!("bad percent escape at byte {at} of key '{raw}'"));
    }
    let spaced = raw.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .map(|k| k.into_owned())
        .map_err(|_| format!("key '{raw}' does not decode to UTF-8"))
}

fn is_test_event(v: &Value) -> bool {
    v.get("Event").and_then(Value::as_str) == Some("s3:TestEvent")
}

/// The object of one typed S3 notification record.
fn object_of(record: &S3EventRecord) -> std::result::Result<ObjectRef, String> {
    let bucket = record.s3.bucket.name.clone().ok_or("a record without s3.bucket.name")?;
    let raw = record.s3.object.key.as_deref().ok_or("a record without s3.object.key")?;
    Ok(ObjectRef {
        bucket,
        key: decode_key(raw)?,
        version_id: record.s3.object.version_id.clone().filter(|v| !v.is_empty()),
        sequencer: record.s3.object.sequencer.clone().filter(|s| !s.is_empty()),
        removed: record.event_name.as_deref().is_some_and(|n| n.starts_with("ObjectRemoved")),
    })
}

/// Objects of an S3 notification (`{"Records":[…]}`), each record parsed as `aws_lambda_events`' typed
/// record; an error names the record and what is wrong with it.
fn s3_notification(v: &Value) -> std::result::Result<Vec<ObjectRef>, String> {
    let records = v.get("Records").and_then(Value::as_array).ok_or("no Records array")?;
    records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let record: S3EventRecord = serde_json::from_value(r.clone()).map_err(|e| format!("Records[{i}]: {e}"))?;
            object_of(&record).map_err(|e| format!("Records[{i}]: {e}"))
        })
        .collect()
}

/// The `detail` of an EventBridge event from S3.
#[derive(serde::Deserialize, serde::Serialize)]
struct S3Detail {
    bucket: S3DetailBucket,
    object: S3DetailObject,
}

#[derive(serde::Deserialize, serde::Serialize)]
struct S3DetailBucket {
    name: String,
}

#[derive(serde::Deserialize, serde::Serialize)]
struct S3DetailObject {
    key: String,
    #[serde(rename = "version-id", default)]
    version_id: Option<String>,
    #[serde(default)]
    sequencer: Option<String>,
}

/// Classifies an event payload.
pub fn parse_event(v: &Value) -> Event {
    if is_test_event(v) {
        return Event::Test;
    }
    if let Some(records) = v.get("Records").and_then(Value::as_array) {
        let source = records.first().and_then(|r| r.get("eventSource")).and_then(Value::as_str).unwrap_or("");
        if source == "aws:sqs" {
            let batch: SqsEvent = match serde_json::from_value(v.clone()) {
                Ok(batch) => batch,
                Err(e) => return Event::Unrecognized(format!("SQS batch that cannot be read: {e}")),
            };
            let messages: Vec<_> = batch
                .records
                .iter()
                .map(|m| {
                    let id = m.message_id.clone().unwrap_or_default();
                    let body = m.body.as_deref().unwrap_or_default();
                    let parsed = serde_json::from_str::<Value>(body)
                        .map_err(|e| format!("body is not JSON: {e}"))
                        .and_then(|b| if is_test_event(&b) { Ok(Vec::new()) } else { s3_notification(&b) });
                    (id, parsed)
                })
                .collect();
            if messages.iter().all(|(_, r)| matches!(r, Ok(o) if o.is_empty())) {
                return Event::Test;
            }
            return Event::Sqs(messages);
        }
        if records.iter().all(|r| r.get("s3").is_some()) && !records.is_empty() {
            return match s3_notification(v) {
                Ok(objects) => Event::Objects(objects),
                Err(e) => Event::Unrecognized(format!("S3 notification that cannot be read: {e}")),
            };
        }
    }
    let detail_type = v.get("detail-type").and_then(Value::as_str);
    if v.get("source").and_then(Value::as_str) == Some("aws.s3")
        && matches!(detail_type, Some("Object Created" | "Object Deleted"))
    {
        return match serde_json::from_value::<EventBridgeEvent<S3Detail>>(v.clone()) {
            Ok(event) => Event::Objects(vec![ObjectRef {
                bucket: event.detail.bucket.name,
                // Keys are not encoded in EventBridge events.
                key: event.detail.object.key,
                version_id: event.detail.object.version_id,
                sequencer: event.detail.object.sequencer,
                removed: detail_type == Some("Object Deleted"),
            }]),
            Err(e) => Event::Unrecognized(format!("EventBridge S3 event that cannot be read: {e}")),
        };
    }
    Event::Unrecognized(describe(v))
}

/// A short description of an unknown payload's shape (never its values).
fn describe(v: &Value) -> String {
    match v {
        Value::Object(map) => {
            let keys: Vec<&str> = map.keys().map(String::as_str).take(8).collect();
            let kind = map
                .get("detail-type")
                .or_else(|| map.get("eventSource"))
                .or_else(|| map.get("source"))
                .and_then(Value::as_str)
                .unwrap_or("unknown");
            format!("object of type '{kind}' with keys {keys:?}")
        }
        Value::Array(a) => format!("array of {} items", a.len()),
        other => format!("JSON {}", type_name(other)),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// What happened to one object.
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Succeeded {
        summary_uri: String,
        rows_read: u64,
        rows_rejected: u64,
    },
    Failed {
        summary_uri: String,
        error_kind: String,
    },
    /// The object was deleted: its state left every hour and day it fed, which were published again.
    Removed {
        tables_published: usize,
    },
    Skipped {
        reason: String,
    },
}

/// One object's result, in the handler's response.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ObjectResult {
    pub bucket: String,
    pub key: String,
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// The handler, built once per process: S3 client, configuration, options.
pub struct Handler {
    client: Client,
    config: Config,
    options: Options,
    cold: AtomicBool,
    /// Overrides the sink's multipart settings (tests use small parts).
    pub multipart: Option<(u64, u64)>,
    /// Write EMF metric lines to stderr instead of stdout (for `invoke`, whose stdout is the response).
    pub metrics_to_stderr: bool,
    /// Publishes digests to `DIGEST_TOPIC_ARN` (set when the topic is configured).
    pub sns: Option<aws_sdk_sns::Client>,
}

impl Handler {
    /// Runs with these settings (a config file's) instead of the defaults.
    pub fn set_settings(&mut self, settings: &'static crate::settings::Settings) {
        self.options.settings = settings;
    }

    pub fn new(client: Client, config: Config) -> Self {
        let options = Options {
            max_rejects_bytes: config.max_rejects_mib << 20,
            report: crate::output::report::Options { link_base: config.report_base_url.clone() },
            ..Options::default()
        };
        Handler {
            client,
            config,
            options,
            cold: AtomicBool::new(true),
            multipart: None,
            metrics_to_stderr: false,
            sns: None,
        }
    }

    /// Whether digests go to a topic: the SNS client is then needed ([`Handler::sns`]).
    pub fn wants_sns(&self) -> bool {
        self.config.digest_topic_arn.is_some()
    }

    /// Publishes the run's digest to `DIGEST_TOPIC_ARN`, when both are there. A failure is logged as an
    /// ERROR and counted (`DigestsFailed`), not retried: the tables and reports are published already, and
    /// a retry would redo the whole file for a notification.
    async fn send_digest(&self, summary: &Summary) {
        let (Some(topic), Some(digest)) = (&self.config.digest_topic_arn, &summary.digest) else { return };
        let Some(sns) = &self.sns else {
            tracing::error!("DIGEST_TOPIC_ARN is set but the handler has no SNS client; digest not sent");
            return;
        };
        let sent = sns.publish().topic_arn(topic).subject(&digest.subject).message(&digest.text).send().await;
        match sent {
            Ok(out) => {
                tracing::info!(message_id = out.message_id().unwrap_or(""), hour = %digest.start, "digest published")
            }
            Err(e) => {
                tracing::error!(error = %aws_sdk_sns::error::DisplayErrorContext(&e), "cannot publish the digest");
                self.emit_line(&metrics::count_metric(
                    &self.config.metrics_namespace,
                    &self.config.function_name,
                    "DigestsFailed",
                ));
            }
        }
    }

    /// Handles one invocation. `Err` means "retry me" (transient trouble); everything else is `Ok`.
    pub async fn handle(self: &Arc<Self>, event: Value, request_id: &str) -> Result<Value> {
        self.handle_until(event, request_id, None).await
    }

    /// [`Handler::handle`] for an invocation that must end by `deadline` (Lambda's): a run that cannot
    /// finish in the time left stops before writing anything, with a retryable error (see
    /// [`crate::pipeline::Options::deadline`]).
    pub async fn handle_until(
        self: &Arc<Self>,
        event: Value,
        request_id: &str,
        deadline: Option<std::time::SystemTime>,
    ) -> Result<Value> {
        // Lambda's deadline is always ahead; one already past comes from an emulator that does not set it
        // (cargo lambda watch sends such a value): run without one rather than stop at once.
        let deadline = deadline.filter(|d| {
            let ahead = *d > std::time::SystemTime::now();
            if !ahead {
                tracing::warn!("the invocation's deadline is already past; running without a deadline");
            }
            ahead
        });
        let cold = self.cold.swap(false, Ordering::Relaxed);
        if cold {
            tracing::info!(coldStart = true, "first invocation of this process");
        }
        match parse_event(&event) {
            Event::Test => {
                tracing::info!("S3 test event acknowledged; nothing to process");
                Ok(json!({"status": "test_event_acknowledged"}))
            }
            Event::Unrecognized(what) => {
                tracing::error!(event_type = %what, "unrecognized event ignored");
                Ok(json!({"status": "ignored", "reason": format!("unrecognized event: {what}")}))
            }
            Event::Objects(objects) => {
                let mut results = Vec::new();
                let mut first_error = None;
                for object in objects {
                    match self.process_until(&object, request_id, deadline).await {
                        Ok(outcome) => results.push(ObjectResult { bucket: object.bucket, key: object.key, outcome }),
                        Err(e) => {
                            first_error.get_or_insert(e);
                        }
                    }
                }
                match first_error {
                    Some(e) => Err(e),
                    None => Ok(json!({"results": results})),
                }
            }
            Event::Sqs(messages) => {
                let mut failures = Vec::new();
                for (id, objects) in messages {
                    let ok = match objects {
                        Ok(objects) => {
                            let mut ok = true;
                            for object in objects {
                                if let Err(e) = self.process_until(&object, request_id, deadline).await {
                                    tracing::error!(message_id = %id, error = %e, "SQS message failed; it will be retried");
                                    ok = false;
                                }
                            }
                            ok
                        }
                        Err(why) => {
                            tracing::error!(message_id = %id, reason = %why, "SQS message is not an S3 notification");
                            false
                        }
                    };
                    if !ok {
                        failures.push(json!({"itemIdentifier": id}));
                    }
                }
                Ok(json!({"batchItemFailures": failures}))
            }
        }
    }

    /// Processes one object. `Err` only for trouble worth retrying (or unexpected failures).
    pub async fn process(self: &Arc<Self>, object: &ObjectRef, request_id: &str) -> Result<Outcome> {
        self.process_until(object, request_id, None).await
    }

    /// [`Handler::process`] with the invocation's deadline.
    pub async fn process_until(
        self: &Arc<Self>,
        object: &ObjectRef,
        request_id: &str,
        deadline: Option<std::time::SystemTime>,
    ) -> Result<Outcome> {
        let span = tracing::info_span!("object", bucket = %object.bucket, key = %object.key);
        self.process_inner(object, request_id, deadline).instrument(span).await
    }

    async fn process_inner(
        self: &Arc<Self>,
        object: &ObjectRef,
        request_id: &str,
        deadline: Option<std::time::SystemTime>,
    ) -> Result<Outcome> {
        let skip = |reason: &str| Ok(Outcome::Skipped { reason: reason.to_string() });
        if self.config.is_output(&object.bucket, &object.key) {
            tracing::warn!("object is inside the output location; skipped (loop guard)");
            return skip("loop_guard");
        }
        if !self.config.accepts(&object.key) {
            tracing::info!(suffixes = ?self.config.input_suffixes, "key has no accepted suffix; skipped");
            return skip("suffix");
        }
        if object.removed {
            return self.remove(object).await;
        }
        let input = match s3::open_object(&self.client, &object.bucket, &object.key, object.version_id.as_deref()).await
        {
            Ok(Some(mut input)) => {
                input.info.sequencer = object.sequencer.clone();
                input
            }
            Ok(None) => {
                tracing::warn!("object does not exist (deleted before processing?); skipped");
                return skip("missing");
            }
            Err(e) => {
                tracing::error!(error = %e, retryable = e.is_retryable(), "cannot read object");
                return Err(e);
            }
        };
        let me = Arc::clone(self);
        let object_uri = format!("s3://{}/{}", object.bucket, object.key);
        let object = object.clone();
        let handle = tokio::runtime::Handle::current();
        let request_id = request_id.to_string();
        let span = tracing::Span::current();
        let summary = tokio::task::spawn_blocking(move || {
            span.in_scope(|| {
                let mut sink =
                    S3Sink::new(me.client.clone(), &me.config.output_bucket, &me.config.output_prefix, handle);
                if let Some((threshold, part)) = me.multipart {
                    sink.multipart_threshold = threshold;
                    sink.part_size = part;
                }
                let options = Options {
                    request_id: Some(request_id),
                    memory_mb: me.config.memory_mb,
                    deadline,
                    ..me.options.clone()
                };
                let (bucket, key, etag) = (object.bucket.clone(), object.key.clone(), input.info.etag.clone());
                // Pinned to a version, the object cannot change under us; otherwise a re-upload may have.
                let pinned = object.version_id.is_some();
                let still_current = || {
                    if pinned {
                        return Ok(true);
                    }
                    sink.handle().block_on(s3::still_current(&me.client, &bucket, &key, etag.as_deref()))
                };
                pipeline::run_guarded(input, &sink, &options, &still_current)
            })
        })
        .await
        .map_err(|e| Error::Storage {
            uri: object_uri,
            message: format!("worker panicked: {e}"),
            retryable: false,
        })?;
        let summary = match summary {
            Ok(s) => s,
            Err(Error::Superseded { .. }) => return skip("superseded"),
            Err(e) => {
                tracing::error!(error = %e, retryable = e.is_retryable(), "processing failed; no summary written");
                return Err(e);
            }
        };
        self.emit_metrics(&summary);
        self.send_digest(&summary).await;
        let summary_uri = self.summary_uri(&summary);
        Ok(match summary.status {
            Status::Succeeded => {
                Outcome::Succeeded { summary_uri, rows_read: summary.rows.read, rows_rejected: summary.rows.rejected }
            }
            Status::Failed => {
                let kind = summary.error.as_ref().map_or("unknown", |e| e.kind.as_str()).to_string();
                tracing::error!(
                    reason = %kind,
                    message = summary.error.as_ref().map_or("", |e| e.message.as_str()),
                    "input rejected as a whole; failed summary written, not retried"
                );
                Outcome::Failed { summary_uri, error_kind: kind }
            }
        })
    }

    /// Forgets a deleted object's source (see [`pipeline::forget`]), unless the key still has a current
    /// object: then a noncurrent version was deleted, or the key was uploaded again (whose own event
    /// processes it).
    async fn remove(self: &Arc<Self>, object: &ObjectRef) -> Result<Outcome> {
        if s3::still_exists(&self.client, &object.bucket, &object.key).await? {
            tracing::info!("the key still has a current object (a noncurrent version was deleted); kept");
            return Ok(Outcome::Skipped { reason: "still_exists".into() });
        }
        let me = Arc::clone(self);
        let uri = format!("s3://{}/{}", object.bucket, object.key);
        let sequencer = object.sequencer.clone();
        let handle = tokio::runtime::Handle::current();
        let span = tracing::Span::current();
        let task_uri = uri.clone();
        let published = tokio::task::spawn_blocking(move || {
            span.in_scope(|| {
                let sink = S3Sink::new(me.client.clone(), &me.config.output_bucket, &me.config.output_prefix, handle);
                pipeline::forget(&sink, &task_uri, sequencer, &me.options.report, me.options.settings)
            })
        })
        .await
        .map_err(|e| Error::Storage { uri, message: format!("worker panicked: {e}"), retryable: false })?;
        match published {
            Ok(p) => Ok(Outcome::Removed { tables_published: p.outputs.len() }),
            Err(Error::Superseded { .. }) => Ok(Outcome::Skipped { reason: "superseded".into() }),
            Err(e) => {
                tracing::error!(error = %e, retryable = e.is_retryable(), "removing the source failed");
                Err(e)
            }
        }
    }

    fn summary_uri(&self, summary: &Summary) -> String {
        let name = crate::output::output_name(&summary.source.uri);
        format!("s3://{}/{}{}", self.config.output_bucket, self.config.output_prefix, crate::output::summary_key(&name))
    }

    fn emit_metrics(&self, summary: &Summary) {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        self.emit_line(&metrics::emf(&self.config.metrics_namespace, &self.config.function_name, summary, now));
    }

    /// Writes one EMF document: a line of its own on stdout, outside the log formatter.
    fn emit_line(&self, doc: &Value) {
        if self.metrics_to_stderr {
            eprintln!("{doc}");
        } else {
            println!("{doc}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_form_decoded() {
        let cases: &[(&str, Result<&str, ()>)] = &[
            ("plain/key.csv", Ok("plain/key.csv")),
            ("with+space.csv", Ok("with space.csv")),
            ("with%20space.csv", Ok("with space.csv")),
            ("plus%2Bsign.csv", Ok("plus+sign.csv")),
            ("caf%C3%A9/%E2%82%AC.csv", Ok("café/€.csv")),
            ("a%2fb", Ok("a/b")),
            ("bad%2", Err(())),
            ("bad%zz.csv", Err(())),
            ("%FF.csv", Err(())),
        ];
        for (raw, want) in cases {
            assert_eq!(decode_key(raw).map_err(|_| ()), want.map(String::from), "case {raw:?}");
        }
    }

    #[test]
    fn event_shapes() {
        // A notification record as S3 sends it.
        let record = |name: &str, object: Value| {
            json!({"eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
                "eventTime": "2026-11-22T13:00:00.000Z", "eventName": name,
                "userIdentity": {"principalId": "AWS:EXAMPLE"}, "requestParameters": {"sourceIPAddress": "127.0.0.1"},
                "responseElements": {"x-amz-request-id": "R"},
                "s3": {"s3SchemaVersion": "1.0", "bucket": {"name": "in"}, "object": object}})
        };
        let s3 = json!({"Records": [record("ObjectCreated:Put",
            json!({"key": "a+b.csv", "versionId": "v1", "sequencer": "0055AED6DCD90281E5"}))]});
        assert_eq!(
            parse_event(&s3),
            Event::Objects(vec![ObjectRef {
                bucket: "in".into(),
                key: "a b.csv".into(),
                version_id: Some("v1".into()),
                sequencer: Some("0055AED6DCD90281E5".into()),
                removed: false,
            }])
        );
        assert_eq!(parse_event(&json!({"Service": "Amazon S3", "Event": "s3:TestEvent"})), Event::Test);
        let eb = json!({"source": "aws.s3", "detail-type": "Object Created",
            "detail": {"bucket": {"name": "in"}, "object": {"key": "a+b.csv"}}});
        assert_eq!(
            parse_event(&eb),
            Event::Objects(vec![ObjectRef {
                bucket: "in".into(),
                key: "a+b.csv".into(),
                version_id: None,
                sequencer: None,
                removed: false
            }])
        );
        let removed = json!({"Records": [record("ObjectRemoved:Delete", json!({"key": "x.csv", "sequencer": "0A"}))]});
        match parse_event(&removed) {
            Event::Objects(o) => assert!(o[0].removed && o[0].sequencer.as_deref() == Some("0A")),
            other => panic!("{other:?}"),
        }
        let eb_deleted = json!({"source": "aws.s3", "detail-type": "Object Deleted",
            "detail": {"bucket": {"name": "in"}, "object": {"key": "x.csv", "sequencer": "0B"}}});
        match parse_event(&eb_deleted) {
            Event::Objects(o) => assert!(o[0].removed && o[0].sequencer.as_deref() == Some("0B")),
            other => panic!("{other:?}"),
        }
        let sqs = json!({"Records": [
            {"eventSource": "aws:sqs", "messageId": "m1", "body": s3.to_string()},
            {"eventSource": "aws:sqs", "messageId": "m2", "body": "not json"}]});
        match parse_event(&sqs) {
            Event::Sqs(m) => {
                assert_eq!(m.len(), 2);
                assert!(m[0].1.is_ok() && m[1].1.is_err());
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(parse_event(&json!({"hello": "world"})), Event::Unrecognized(_)));
        assert!(matches!(parse_event(&json!([1, 2])), Event::Unrecognized(_)));
        assert!(matches!(parse_event(&json!({"Records": []})), Event::Unrecognized(_)));
        // A malformed record fails with a typed error that names the record and the field.
        let mut broken = record("ObjectCreated:Put", json!({"key": "ok.csv"}));
        broken.as_object_mut().unwrap().remove("eventTime");
        let two = json!({"Records": [record("ObjectCreated:Put", json!({"key": "a.csv"})), broken]});
        match parse_event(&two) {
            Event::Unrecognized(why) => assert!(why.contains("Records[1]") && why.contains("eventTime"), "{why}"),
            other => panic!("{other:?}"),
        }
        let no_key = json!({"Records": [record("ObjectCreated:Put", json!({"size": 1}))]});
        assert!(matches!(parse_event(&no_key), Event::Unrecognized(why) if why.contains("s3.object.key")));
        let bad_eb = json!({"source": "aws.s3", "detail-type": "Object Created", "detail": {"bucket": {}}});
        assert!(matches!(parse_event(&bad_eb), Event::Unrecognized(why) if why.contains("EventBridge")));
    }
}
