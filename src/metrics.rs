//! Metrics and cost: one CloudWatch Embedded Metric Format (EMF) line per processed file, and the
//! estimated Lambda cost of a run.

use serde_json::{json, Value};

use crate::summary::{Status, Summary};

/// Lambda prices used for estimates (USD, us-east-1, on-demand), named so they can be overridden.
pub mod prices {
    /// Per GB-second, arm64 (Graviton).
    pub const ARM64_GB_SECOND: f64 = 0.000_013_333_4;
    /// Per GB-second, x86_64.
    pub const X86_64_GB_SECOND: f64 = 0.000_016_666_7;
    /// Per request.
    pub const REQUEST: f64 = 0.000_000_2;
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
        doc[name] = json!(value);
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_is_duration_times_memory_times_price() {
        let c = estimated_cost_usd(1000, 1024);
        assert!((c - (gb_second_price() + prices::REQUEST)).abs() < 1e-15, "{c}");
        assert!((estimated_cost_usd(0, 1769) - prices::REQUEST).abs() < 1e-15);
    }
}
