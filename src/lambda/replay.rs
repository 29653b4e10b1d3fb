//! Replaying the failure queue. An event that still failed after Lambda's retries waits in the on-failure
//! SQS queue, wrapped in Lambda's destination record (`requestPayload` is the original event). Once the
//! cause is fixed, `hourly-insights replay` runs each waiting event through the same handler as the
//! function, here, and deletes the messages whose event succeeded; the others stay for the next attempt.

use std::sync::Arc;

use aws_sdk_sqs::error::DisplayErrorContext;
use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::lambda::Handler;

/// What a replay did.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct Report {
    /// Events that succeeded; their messages were deleted.
    pub replayed: usize,
    /// Events that failed again; their messages stay in the queue.
    pub failed: usize,
    /// Messages that hold no event this program can read; they stay in the queue.
    pub unreadable: usize,
}

/// The event a failure-queue message carries: the `requestPayload` of Lambda's destination record, or
/// the body itself when it is an event (a message sent by hand, or an S3 notification routed to SQS).
pub fn event_of(body: &str) -> Option<Value> {
    let value: Value = serde_json::from_str(body).ok()?;
    match value.get("requestPayload") {
        Some(payload) => Some(payload.clone()),
        None if value.get("Records").is_some() || value.get("detail-type").is_some() => Some(value),
        None => None,
    }
}

fn sqs_error<E: std::error::Error + 'static>(queue_url: &str, op: &str, e: &aws_sdk_sqs::error::SdkError<E>) -> Error {
    Error::Storage { uri: queue_url.to_string(), message: format!("{op}: {}", DisplayErrorContext(e)), retryable: true }
}

/// Replays up to `max` messages of `queue_url` through `handler`. Each message received stays invisible to
/// other readers for `visibility_seconds` while its event runs.
pub async fn replay(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    handler: &Arc<Handler>,
    max: usize,
    visibility_seconds: i32,
) -> Result<Report> {
    let mut report = Report::default();
    let mut seen = 0;
    while seen < max {
        let received = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10.min((max - seen) as i32))
            .visibility_timeout(visibility_seconds)
            .wait_time_seconds(1)
            .send()
            .await
            .map_err(|e| sqs_error(queue_url, "ReceiveMessage", &e))?;
        let messages = received.messages();
        if messages.is_empty() {
            break;
        }
        for message in messages {
            seen += 1;
            let id = message.message_id().unwrap_or_default();
            let Some(event) = message.body().and_then(event_of) else {
                tracing::error!(message_id = id, "failure-queue message holds no event; left in the queue");
                report.unreadable += 1;
                continue;
            };
            match handler.handle(event, &format!("replay-{id}")).await {
                Ok(response) => {
                    tracing::info!(message_id = id, %response, "replayed; message deleted");
                    if let Some(receipt) = message.receipt_handle() {
                        sqs.delete_message()
                            .queue_url(queue_url)
                            .receipt_handle(receipt)
                            .send()
                            .await
                            .map_err(|e| sqs_error(queue_url, "DeleteMessage", &e))?;
                    }
                    report.replayed += 1;
                }
                Err(e) => {
                    tracing::error!(message_id = id, error = %e, "replay failed again; message left in the queue");
                    report.failed += 1;
                }
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_taken_from_destination_records_or_as_they_are() {
        let s3 = serde_json::json!({"Records": [{"eventSource": "aws:s3"}]});
        let record = serde_json::json!({"version": "1.0", "requestContext": {"condition": "RetriesExhausted"},
            "requestPayload": s3, "responseContext": {"statusCode": 200}});
        assert_eq!(event_of(&record.to_string()), Some(s3.clone()));
        assert_eq!(event_of(&s3.to_string()), Some(s3));
        assert_eq!(event_of("not json"), None);
        assert_eq!(event_of("{\"hello\": 1}"), None);
    }
}
