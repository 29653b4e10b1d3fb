//! Log setup.
//!
//! - Text: human-readable lines (terminal use).
//! - JSON: one object per line with top-level `timestamp`, `level`, `message`, the fields of the event and
//!   the fields of every enclosing span flattened in (so `requestId` from the Lambda runtime's span, and
//!   `bucket`/`key` from the per-object span, appear on every line they apply to). CloudWatch Logs parses
//!   these lines as JSON.
//!
//! In Lambda the format follows `AWS_LAMBDA_LOG_FORMAT` (`JSON`/`Text`, default JSON) and the level
//! `AWS_LAMBDA_LOG_LEVEL`; lines go to stdout. On the command line logs go to stderr, the level follows
//! `RUST_LOG` (default `info`).

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Where log lines go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Stdout,
    Stderr,
}

/// Installs the global subscriber (a second call keeps the first).
pub fn init(format: LogFormat, filter: EnvFilter, target: Target) {
    let registry = tracing_subscriber::registry().with(filter);
    let _ = match (format, target) {
        (LogFormat::Json, _) => registry.with(JsonLayer { target }).try_init(),
        (LogFormat::Text, Target::Stderr) => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_target(false)
                    .with_ansi(colour(std::io::IsTerminal::is_terminal(&std::io::stderr()), |k| std::env::var_os(k)))
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        (LogFormat::Text, Target::Stdout) => registry
            .with(tracing_subscriber::fmt::layer().with_target(false).with_ansi(false).with_writer(std::io::stdout))
            .try_init(),
    };
}

/// Whether text logs are coloured: only on a terminal, and not when `NO_COLOR` is set to anything but the
/// empty string (no-color.org).
fn colour(terminal: bool, env: impl Fn(&str) -> Option<std::ffi::OsString>) -> bool {
    terminal && env("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Command-line logging: `RUST_LOG` or `info`, to stderr.
pub fn init_cli(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    init(format, filter, Target::Stderr);
}

/// Lambda logging: `AWS_LAMBDA_LOG_FORMAT` and `AWS_LAMBDA_LOG_LEVEL`, to stdout.
pub fn init_lambda() {
    let format = match std::env::var("AWS_LAMBDA_LOG_FORMAT") {
        Ok(f) if f.eq_ignore_ascii_case("text") => LogFormat::Text,
        _ => LogFormat::Json,
    };
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL").unwrap_or_else(|_| "INFO".into()).to_ascii_lowercase();
    let level = match level.as_str() {
        "fatal" => "error",
        "trace" | "debug" | "info" | "warn" | "error" => level.as_str(),
        _ => "info",
    };
    init(format, EnvFilter::new(level), Target::Stdout);
}

/// The fields of a span, kept in its extensions.
struct SpanFields(Map<String, Value>);

struct JsonVisitor<'a>(&'a mut Map<String, Value>);

impl Visit for JsonVisitor<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_string(), Value::String(format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), Value::String(value.to_string()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_string(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_string(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_string(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_string(), value.into());
    }
}

/// Writes events as flat JSON lines.
pub struct JsonLayer {
    target: Target,
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for JsonLayer {
    fn on_new_span(&self, attrs: &tracing::span::Attributes<'_>, id: &tracing::span::Id, ctx: Context<'_, S>) {
        let mut fields = Map::new();
        attrs.record(&mut JsonVisitor(&mut fields));
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanFields(fields));
        }
    }

    fn on_record(&self, id: &tracing::span::Id, values: &tracing::span::Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            if let Some(fields) = span.extensions_mut().get_mut::<SpanFields>() {
                values.record(&mut JsonVisitor(&mut fields.0));
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut line = Map::new();
        line.insert("timestamp".into(), Value::String(now_rfc3339_millis()));
        line.insert("level".into(), Value::String(event.metadata().level().to_string()));
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(fields) = span.extensions().get::<SpanFields>() {
                    line.extend(fields.0.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
            }
        }
        event.record(&mut JsonVisitor(&mut line));
        line.entry("message").or_insert(Value::String(String::new()));
        let mut text = Value::Object(line).to_string();
        text.push('\n');
        let _ = match self.target {
            Target::Stdout => std::io::stdout().lock().write_all(text.as_bytes()),
            Target::Stderr => std::io::stderr().lock().write_all(text.as_bytes()),
        };
    }
}

fn now_rfc3339_millis() -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let micros = now.as_micros() as i64;
    let base = crate::contract::parse::format_rfc3339(micros);
    format!("{}.{:03}Z", base.trim_end_matches('Z'), now.subsec_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        let none = |_: &str| None;
        let set = |v: &'static str| move |k: &str| (k == "NO_COLOR").then(|| std::ffi::OsString::from(v));
        assert!(colour(true, none));
        assert!(!colour(false, none), "a pipe or a file gets no escapes");
        assert!(!colour(true, set("1")));
        assert!(colour(true, set("")), "an empty NO_COLOR does not count");
    }
}
