//! The command line. Parsing only; the work is done by the library.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::lambda::logging::LogFormat;
use crate::pipeline;
use crate::settings::Settings;

/// The input contract and the outputs of `settings`, for `run --help`: the default settings' without a config
/// file, the config's with `--config FILE` (or `HOURLY_INSIGHTS_CONFIG`).
pub fn contract_help(settings: &Settings) -> String {
    use crate::aggregate::tables::Period;
    use crate::contract::Field;
    let input = &settings.input;
    let column = |field: Field| -> String {
        match field.accepted(input) {
            [one] => one.clone(),
            more => more.join(" or "),
        }
    };
    let fields = |required: bool| -> Vec<String> {
        Field::ALL.into_iter().filter(|f| f.required() == required).map(column).collect()
    };
    let dims: Vec<String> = settings.dimensions[1..]
        .iter()
        .map(|d| {
            if d.columns == [d.name.clone()] {
                d.name.clone()
            } else {
                format!("{} ({})", d.name, d.columns.join(" or "))
            }
        })
        .collect();
    let encoding = match input.encoding {
        crate::settings::Encoding::Utf8 => "UTF-8".to_string(),
        other => other.name().to_string(),
    };
    let delimiter = match input.delimiter {
        b',' => "CSV".to_string(),
        b'\t' => "tab-separated".to_string(),
        d => format!("'{}'-separated", char::from(d)),
    };
    let time = match &input.time_format {
        crate::settings::TimeFormat::Rfc3339 => {
            "RFC 3339, or 'YYYY-MM-DD HH:MM:SS[.f]' / 'YYYY-MM-DDTHH:MM:SS[.f]' taken as UTC".to_string()
        }
        crate::settings::TimeFormat::UnixSeconds => "seconds since 1970-01-01 UTC".to_string(),
        crate::settings::TimeFormat::UnixMillis => "milliseconds since 1970-01-01 UTC".to_string(),
        crate::settings::TimeFormat::Pattern(p) => format!("'{p}' taken as UTC"),
    };
    let tables = |period: Period| settings.tables.iter().map(|t| t.table_name(period)).collect::<Vec<_>>().join(" | ");
    format!(
        "\
Input contract (one row per order line; --config describes an export laid out otherwise):
  {encoding} {delimiter} with a header, RFC 4180 quoting; BOM and CRLF accepted; blank lines skipped; gzip detected.
  Required columns: {required}
  Optional columns: {optional} (others are ignored)
  Dimensions: sku{dims}
  {event_time}  {time}
  {quantity}  integer 0..=1000000        {unit_price}  decimal >= 0, at most 2 decimals ('{decimal}'), at most 1e12
A row that breaks the contract is written to rejects/<name>.csv with its line and reason
(field_count, invalid_utf8, event_time_invalid, order_id_missing, sku_missing, quantity_invalid,
unit_price_invalid); a file without a required column fails as a whole.

Outputs under --out (Parquet, zstd), one exact row set per UTC hour and per day, merged over every
source file run into the same --out (late rows, several exports per hour):
  {hourly}
    /dt=YYYY-MM-DD/hour=HH/data.parquet
  {daily}
    /dt=YYYY-MM-DD/data.parquet
  rejects/<name>.csv    summaries/<name>.json (written last; also printed to stdout)
  reports/dt=YYYY-MM-DD[/hour=HH]/index.html, reports/latest.html   HTML reports for people
  _state/               mergeable per-source states and day manifests (not for BI)

s3:// inputs and outputs use the standard AWS configuration (AWS_ENDPOINT_URL for S3-compatible servers).
Exit codes: 0 succeeded, 2 input rejected as a whole (a failed summary is written), 1 any other error.",
        required = fields(true).join(", "),
        optional = fields(false)
            .into_iter()
            .chain(settings.dimensions[1..].iter().flat_map(|d| d.columns.clone()))
            .collect::<Vec<_>>()
            .join(", "),
        dims = dims.iter().map(|d| format!(", {d}")).collect::<String>(),
        event_time = column(Field::EventTime),
        quantity = column(Field::Quantity),
        unit_price = column(Field::UnitPrice),
        decimal = char::from(input.decimal_separator),
        hourly = tables(Period::Hour),
        daily = tables(Period::Day),
    )
}

/// Turns hourly orders CSV exports into Parquet insight tables for BI.
#[derive(Parser, Debug)]
#[command(name = "hourly-insights", version, about, long_about = None)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value = "text", env = "HOURLY_INSIGHTS_LOG_FORMAT")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Process one orders export into insight tables, a rejects file and a summary.
    Run(RunArgs),
    /// Write a deterministic synthetic orders export (for tests, benchmarks and trying the tool).
    #[command(after_long_help = GENERATE_HELP)]
    Generate(GenerateArgs),
    /// Measure throughput and print the monthly cost of one file per hour on Lambda vs. an always-on instance.
    Cost(CostArgs),
    /// Run the real Lambda handler once on an event file, without the Lambda runtime API.
    #[command(after_long_help = INVOKE_HELP)]
    Invoke(InvokeArgs),
    /// Remove a source: its rows leave every hour and day table they fed (as an S3 ObjectRemoved event does).
    Forget(ForgetArgs),
    /// Recompute and republish every hour and day from the stored states (recovery, or after an upgrade).
    Rebuild(RebuildArgs),
    /// Run the events waiting in the failure queue through the handler, deleting the ones that succeed.
    #[command(after_long_help = REPLAY_HELP)]
    Replay(ReplayArgs),
    /// Write the HTML reports of published hours and days (all of them by default) and print a digest.
    #[command(after_long_help = REPORT_HELP)]
    Report(ReportArgs),
    /// Check a config file (your export's columns, dimensions and tables), or print the effective config.
    #[command(subcommand, after_long_help = CONFIG_HELP)]
    Config(ConfigCommand),
    /// Print the Glue tables of the output (CloudFormation YAML, as template.yaml holds them) for a config.
    Catalog(CatalogArgs),
}

const CONFIG_HELP: &str = "\
A config file (TOML) describes an export that is not in the contract's own layout: its column names,
delimiter, decimal separator, encoding and time format ([input]), the dimensions to group by
([dimensions]) and the tables to build ([[tables]]). A section left out keeps the default; docs/config.md
is the reference. `run`, `invoke`, `generate`, `forget`, `rebuild`, `report` and `catalog` take it with
--config FILE (or HOURLY_INSIGHTS_CONFIG: a path, or s3://bucket/key).
Exit codes: 0 the config is valid, 2 it is not (every problem is listed with its place and a fix), 1 other errors.";

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Report every problem of a config file, with its place and a fix (exit code 2 when there is one).
    Check {
        /// The config file (TOML).
        file: PathBuf,
    },
    /// Print the effective config as TOML, defaults included (the built-in defaults without FILE).
    Show {
        /// The config file (TOML).
        file: Option<PathBuf>,
    },
}

/// The config file option shared by the commands that read or write tables.
#[derive(Args, Debug, Clone, Default)]
pub struct ConfigArg {
    /// A config file for an export with its own columns, dimensions and tables (TOML; a path or
    /// s3://bucket/key). See `hourly-insights config --help` and docs/config.md.
    #[arg(long = "config", value_name = "FILE", env = "HOURLY_INSIGHTS_CONFIG")]
    pub config: Option<String>,
}

#[derive(Args, Debug)]
pub struct CatalogArgs {
    #[command(flatten)]
    pub config: ConfigArg,
}

const REPORT_HELP: &str = "\
Reads the published tables under --out (a directory or s3://bucket/prefix/) and writes, beside them:
  reports/dt=YYYY-MM-DD/hour=HH/index.html   one page per hour
  reports/dt=YYYY-MM-DD/index.html           one page per day
  reports/latest.html                        the newest hour (when hours are written)
Each page is one self-contained HTML file (inline CSS and SVG; nothing is fetched) with the headline
numbers and their change against the previous hour/day and the same one a week earlier, revenue and
orders by hour, channels and campaigns, top products, countries and devices, and data quality.
An hour or day outside the range of the same hour/day on the previous 4 weeks (widened by 20%) is marked.
Runs write these pages themselves whenever they publish; this command writes them again (after an
upgrade, or to refresh neighbours' comparisons).
Prints the digest (the text the SNS topic receives) of --hour, of --day, or of the newest hour.";

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// The output directory, or s3://bucket/prefix/.
    #[arg(long)]
    pub out: String,
    /// Only this hour, as YYYY-MM-DDTHH.
    #[arg(long, conflicts_with = "day")]
    pub hour: Option<String>,
    /// Only this day (and none of its hours), as YYYY-MM-DD.
    #[arg(long)]
    pub day: Option<String>,
    /// Print the digest as JSON (as the summary holds it) instead of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub config: ConfigArg,
    /// The address of --out for people (e.g. https://reports.example.com/insights/): the digest links the
    /// report under it instead of its storage URI.
    #[arg(long, env = "REPORT_BASE_URL")]
    pub report_base_url: Option<String>,
}

const REPLAY_HELP: &str = "\
Each message is Lambda's on-failure destination record; its requestPayload (the original S3, SQS or
EventBridge event) runs through the real handler here, with the function's configuration from the
environment (OUTPUT_BUCKET, OUTPUT_PREFIX, ...) and the standard AWS variables. A message whose event
succeeds is deleted; one that fails again, or holds no event, stays in the queue. Prints
{replayed, failed, unreadable}; exit code 1 when any message stayed.";

#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// The failure queue's URL (the stack output FailedEventsQueueUrl).
    #[arg(long)]
    pub queue_url: String,
    /// Messages to take at most.
    #[arg(long, default_value_t = 1000)]
    pub max: usize,
    /// Seconds a received message stays hidden from other readers while its event runs.
    #[arg(long, default_value_t = 900)]
    pub visibility_seconds: i32,
}

#[derive(Args, Debug)]
pub struct ForgetArgs {
    /// The source as it was run: a local path (the file may be gone) or s3://bucket/key.
    pub source: String,
    /// The output directory, or s3://bucket/prefix/.
    #[arg(long)]
    pub out: String,
    #[command(flatten)]
    pub config: ConfigArg,
}

#[derive(Args, Debug)]
pub struct RebuildArgs {
    /// The output directory, or s3://bucket/prefix/.
    #[arg(long)]
    pub out: String,
    #[command(flatten)]
    pub config: ConfigArg,
}

const INVOKE_HELP: &str = "\
Accepts the events the function accepts: S3 notifications, SQS messages carrying them, EventBridge
'Object Created' events, and the s3:TestEvent. Configuration comes from the environment, as in Lambda:
  OUTPUT_BUCKET (required), OUTPUT_PREFIX (default insights/), INPUT_SUFFIXES (default .csv,.csv.gz),
  METRICS_NAMESPACE (default HourlyInsights), plus the standard AWS variables. Any S3-compatible endpoint
  works with AWS_ENDPOINT_URL (path-style addressing is then used).
Prints the handler's response as JSON on stdout (metrics go to stderr here). Exit code 1 when the handler
returns an error, i.e. when Lambda would retry the event.";

#[derive(Args, Debug)]
pub struct CostArgs {
    /// Use this throughput (MB/s) instead of measuring one (measure with `taskset -c 0` for one core,
    /// which is what a 1769 MB Lambda has).
    #[arg(long)]
    pub throughput_mb_s: Option<f64>,
    /// Rows of the generated file the throughput is measured on.
    #[arg(long, default_value_t = 400_000)]
    pub measure_rows: u64,
    /// Lambda memory in MB.
    #[arg(long, default_value_t = 1769)]
    pub memory_mb: u32,
    /// Read rate of one S3 connection in Lambda, MB/s (about 75-90 measured by AWS users; a run takes the
    /// longer of parsing and reading).
    #[arg(long, default_value_t = 85.0)]
    pub s3_stream_mb_s: f64,
    /// S3 connections a run reads with (default: S3_GET_STREAMS, or 4).
    #[arg(long)]
    pub s3_streams: Option<usize>,
    /// Lambda price per GB-second (arm64).
    #[arg(long, default_value_t = crate::lambda::metrics::prices::ARM64_GB_SECOND)]
    pub gb_second: f64,
    /// Lambda price per request.
    #[arg(long, default_value_t = crate::lambda::metrics::prices::REQUEST)]
    pub request: f64,
    /// Price per hour of the always-on comparison instance.
    #[arg(long, default_value_t = crate::lambda::metrics::prices::INSTANCE_PER_HOUR)]
    pub instance_per_hour: f64,
    /// Name of the comparison instance.
    #[arg(long, default_value = crate::lambda::metrics::prices::INSTANCE_NAME)]
    pub instance_name: String,
}

#[derive(Args, Debug)]
pub struct InvokeArgs {
    /// The event JSON file (e.g. fixtures/events/s3-put.json).
    #[arg(long)]
    pub event: PathBuf,
    /// The invocation's time limit in milliseconds from now, as Lambda's deadline: a file that cannot be
    /// finished in it stops before writing anything, with an error Lambda would retry.
    #[arg(long)]
    pub deadline_ms: Option<u64>,
    #[command(flatten)]
    pub config: ConfigArg,
}

const GENERATE_HELP: &str = "\
The file looks like a real shop's hourly export: skewed SKU popularity, several channels, campaigns,
countries and devices, multi-line orders, repeat customers and guests, ~3% late rows from the previous
hour, mixed timestamp spellings, quoted fields with commas and an extra ignored column. With --dirty R,
that fraction of rows carries exactly one defect, cycling through every reject reason.
A JSON report (rows, valid, rejected, rejects_by_reason) goes to stdout, or to stderr when the CSV does.";

#[derive(Args, Debug)]
pub struct RunArgs {
    /// The input: a .csv or .csv.gz file, or s3://bucket/key.
    pub input: String,
    /// The output directory (created if missing), or s3://bucket/prefix/.
    #[arg(long)]
    pub out: String,
    /// Valid rows per aggregation chunk (memory vs. overhead); by default 64 Ki with threads, 128 Ki inline.
    #[arg(long, hide = true)]
    pub chunk_rows: Option<usize>,
    /// Largest record (MiB) accepted before the file fails as corrupt (guards against unclosed quotes).
    #[arg(long, default_value_t = 32)]
    pub max_record_mib: u64,
    /// Largest rejects file (MiB) kept in temporary space; a file with more rejected rows fails as a whole
    /// (`rejects_too_large`) instead of running out of disk.
    #[arg(long, default_value_t = pipeline::MAX_REJECTS_MIB, env = "MAX_REJECTS_MIB")]
    pub max_rejects_mib: u64,
    /// How reading, validation, id interning and aggregation share the CPU: `threads` (one thread each, for
    /// two or more cores), `inline` (one after the other on one thread, for one core), or `auto` (`inline` when
    /// this process may use one CPU only). The Lambda handler always uses `auto`, which there also picks
    /// `inline` for a function of 1769 MB or less.
    #[arg(long, value_enum, default_value_t = pipeline::StageMode::Auto, env = "HOURLY_INSIGHTS_STAGES")]
    pub stages: pipeline::StageMode,
    /// The address of --out for people (e.g. https://reports.example.com/insights/): the summary's digest
    /// links the hour's report under it instead of its storage URI.
    #[arg(long, env = "REPORT_BASE_URL")]
    pub report_base_url: Option<String>,
    #[command(flatten)]
    pub config: ConfigArg,
}

#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// Number of data rows.
    #[arg(long)]
    pub rows: u64,
    /// Random seed; the same arguments always give the same file.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// The main UTC hour of the file, as YYYY-MM-DDTHH.
    #[arg(long, default_value = "2026-11-22T13")]
    pub hour: String,
    /// Fraction of rows (0 to 1) with one defect each.
    #[arg(long, default_value_t = 0.0)]
    pub dirty: f64,
    /// Output file (gzip when it ends in .gz); stdout when omitted.
    #[arg(long)]
    pub output: Option<PathBuf>,
    /// The kind of shop whose export it looks like: `numbered` (numbered ids, a few late rows), `uuid`
    /// (UUID order ids, opaque customer ids, a quoted free-text column, millisecond times in file order),
    /// `spread` (times in no order, orders spanning two hours, ~20,000 campaigns).
    #[arg(long, value_enum, default_value_t = crate::generate::Shape::Numbered)]
    pub shape: crate::generate::Shape,
    /// Lay the export out as this config file describes it (column names, time format, delimiter, decimal
    /// separator, encoding, and a column per dimension of its own).
    #[command(flatten)]
    pub config: ConfigArg,
}
