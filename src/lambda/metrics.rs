//! Metrics and cost: one CloudWatch Embedded Metric Format (EMF) line per processed file, and the
//! estimated Lambda cost of a run.

use serde_json::{json, Value};

use crate::output::summary::{Status, Summary};

/// Prices used for estimates (USD, us-east-1, on-demand, list prices of 2026), named so they can be
/// overridden (the `cost` command takes flags for each).
pub mod prices {
    /// Lambda, per GB-second, arm64 (Graviton).
    pub const ARM64_GB_SECOND: f64 = 0.000_013_333_4;
    /// Lambda, per GB-second, x86_64.
    pub const X86_64_GB_SECOND: f64 = 0.000_016_666_7;
    /// Lambda, per request.
    pub const REQUEST: f64 = 0.000_000_2;
    /// S3 PUT/COPY/POST/LIST, per request.
    pub const S3_PUT: f64 = 0.000_005;
    /// S3 GET/HEAD, per request.
    pub const S3_GET: f64 = 0.000_000_4;
    /// The always-on comparison: an EC2 t4g.small (2 vCPU, 2 GiB), per hour.
    pub const INSTANCE_PER_HOUR: f64 = 0.0168;
    pub const INSTANCE_NAME: &str = "EC2 t4g.small, always on";
    /// Hours in an average month.
    pub const HOURS_PER_MONTH: f64 = 730.0;
}

/// Inputs of the monthly cost table.
#[derive(Clone, Debug)]
pub struct CostInputs {
    /// Measured end-to-end throughput, MB of input per second (the CPU's pace, reading a local file).
    pub throughput_mb_s: f64,
    /// Read rate of one S3 connection (MB/s) and the connections a run reads with
    /// ([`crate::storage::s3::ReadOptions`]): a run in Lambda takes the longer of parsing and reading.
    pub s3_stream_mb_s: f64,
    pub s3_streams: usize,
    pub memory_mb: u32,
    pub gb_second: f64,
    pub request: f64,
    pub instance_per_hour: f64,
    pub instance_name: String,
}

/// One row of the table: a file size processed once an hour for a month.
#[derive(Clone, Debug, PartialEq)]
pub struct CostRow {
    pub file_mb: f64,
    pub seconds_per_run: f64,
    pub lambda_per_run: f64,
    pub lambda_per_month: f64,
    pub instance_per_month: f64,
}

/// S3 requests of one run (PUT-priced, GET-priced), as a summary's `requests` counts them for a file of one
/// hour with a day and four weeks of history already published (the count is in docs/benchmarks.md,
/// "Reports"). The PUTs are the states, records, manifest, 10 tables, 4 reports, rejects and summary; the
/// GET-priced ones are that run's GETs and HEADs, most of them the reports' reads (neighbouring hours,
/// weeks, manifests, summaries), plus the input's GET. (124 before the reports took the tables the run
/// had just written from memory: 15 GETs fewer in that run, 92 → 77.)
pub const S3_REQUESTS_PER_RUN: (f64, f64) = (24.0, 109.0);

pub fn cost_rows(inputs: &CostInputs, sizes_mb: &[f64]) -> Vec<CostRow> {
    sizes_mb
        .iter()
        .map(|&file_mb| {
            // Reading overlaps parsing (the object streams in while it is parsed): the slower one sets the pace.
            let s3_mb_s = inputs.s3_stream_mb_s * inputs.s3_streams.max(1) as f64;
            let seconds = file_mb / inputs.throughput_mb_s.min(s3_mb_s);
            let compute = seconds * f64::from(inputs.memory_mb) / 1024.0 * inputs.gb_second;
            let s3 = S3_REQUESTS_PER_RUN.0 * prices::S3_PUT + S3_REQUESTS_PER_RUN.1 * prices::S3_GET;
            let per_run = compute + inputs.request + s3;
            CostRow {
                file_mb,
                seconds_per_run: seconds,
                lambda_per_run: per_run,
                lambda_per_month: per_run * prices::HOURS_PER_MONTH,
                instance_per_month: inputs.instance_per_hour * prices::HOURS_PER_MONTH,
            }
        })
        .collect()
}

/// The table as Markdown.
pub fn cost_markdown(inputs: &CostInputs, rows: &[CostRow]) -> String {
    let mut out = format!(
        "Throughput {:.0} MB/s parsing, S3 read {} x {:.0} MB/s, Lambda arm64 at {} MB (${}/GB-s, \
         ${}/request, S3 requests included), one file per hour, {} hours a month.\n\n",
        inputs.throughput_mb_s,
        inputs.s3_streams,
        inputs.s3_stream_mb_s,
        inputs.memory_mb,
        inputs.gb_second,
        inputs.request,
        prices::HOURS_PER_MONTH
    );
    out.push_str(&format!(
        "| file per hour | run time | Lambda per run | Lambda per month | {} per month | instance / Lambda |\n",
        inputs.instance_name
    ));
    out.push_str("|---:|---:|---:|---:|---:|---:|\n");
    for r in rows {
        let size =
            if r.file_mb >= 1000.0 { format!("{:.0} GB", r.file_mb / 1000.0) } else { format!("{:.0} MB", r.file_mb) };
        out.push_str(&format!(
            "| {size} | {:.2} s | ${:.6} | ${:.2} | ${:.2} | {:.0}x |\n",
            r.seconds_per_run,
            r.lambda_per_run,
            r.lambda_per_month,
            r.instance_per_month,
            r.instance_per_month / r.lambda_per_month
        ));
    }
    out
}

/// The GB-second price of the machine this runs on (arm64 when compiled for aarch64).
pub fn gb_second_price() -> f64 {
    if cfg!(target_arch = "aarch64") {
        prices::ARM64_GB_SECOND
    } else {
        prices::X86_64_GB_SECOND
    }
}

/// Estimated cost of one invocation: duration x memory x GB-second price + the request price.
pub fn estimated_cost_usd(duration_ms: u64, memory_mb: u32) -> f64 {
    let gb_seconds = duration_ms as f64 / 1000.0 * f64::from(memory_mb) / 1024.0;
    gb_seconds * gb_second_price() + prices::REQUEST
}

/// The EMF document for one processed file.
pub fn emf(namespace: &str, function_name: &str, summary: &Summary, timestamp_ms: u64) -> Value {
    let succeeded = u64::from(summary.status == Status::Succeeded);
    let metrics = [
        ("RowsRead", "Count", summary.rows.read),
        ("RowsValid", "Count", summary.rows.valid),
        ("RowsRejected", "Count", summary.rows.rejected),
        ("BytesRead", "Bytes", summary.source.bytes),
        ("DurationMs", "Milliseconds", summary.duration_ms),
        ("FilesSucceeded", "Count", succeeded),
        ("FilesFailed", "Count", 1 - succeeded),
    ];
    document(namespace, function_name, &metrics, timestamp_ms)
}

/// An EMF document with one count metric of value 1 (events such as a digest that could not be sent).
pub fn count_metric(namespace: &str, function_name: &str, name: &str) -> Value {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    document(namespace, function_name, &[(name, "Count", 1)], now)
}

/// An EMF document of `metrics` (name, unit, value), with the `FunctionName` dimension.
fn document(namespace: &str, function_name: &str, metrics: &[(&str, &str, u64)], timestamp_ms: u64) -> Value {
    let mut doc = json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": [["FunctionName"]],
                "Metrics": metrics.iter().map(|(n, u, _)| json!({"Name": n, "Unit": u})).collect::<Vec<_>>(),
            }],
        },
        "FunctionName": function_name,
    });
    for (name, _, value) in metrics {
        doc[*name] = json!(value);
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monthly_table() {
        let inputs = CostInputs {
            throughput_mb_s: 100.0,
            s3_stream_mb_s: 80.0,
            s3_streams: 4,
            memory_mb: 1024,
            gb_second: 0.00001,
            request: 0.0,
            instance_per_hour: 0.01,
            instance_name: "box".into(),
        };
        let rows = cost_rows(&inputs, &[10.0, 1000.0]);
        assert!((rows[0].seconds_per_run - 0.1).abs() < 1e-12);
        let s3 = S3_REQUESTS_PER_RUN.0 * prices::S3_PUT + S3_REQUESTS_PER_RUN.1 * prices::S3_GET;
        assert!((rows[1].lambda_per_run - (10.0 * 0.00001 + s3)).abs() < 1e-12);
        assert!((rows[1].instance_per_month - 7.3).abs() < 1e-9);
        let md = cost_markdown(&inputs, &rows);
        assert!(md.contains("| 1 GB | 10.00 s |"), "{md}");
        // One S3 connection at 80 MB/s is slower than parsing: the run takes the reading's time.
        let one = CostInputs { s3_streams: 1, ..inputs };
        assert!((cost_rows(&one, &[1000.0])[0].seconds_per_run - 12.5).abs() < 1e-9);
    }

    #[test]
    fn cost_is_duration_times_memory_times_price() {
        let c = estimated_cost_usd(1000, 1024);
        assert!((c - (gb_second_price() + prices::REQUEST)).abs() < 1e-15, "{c}");
        assert!((estimated_cost_usd(0, 1769) - prices::REQUEST).abs() < 1e-15);
    }
}
