//! The summary JSON written last for every run: what was read, what was produced, and whether it worked.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::contract::RejectReason;
use crate::read::input::SourceInfo;

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Succeeded,
    Failed,
}

/// Why a run failed as a whole.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorInfo {
    pub kind: String,
    pub message: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Rows {
    /// Data records read (blank lines are not records).
    pub read: u64,
    pub valid: u64,
    pub rejected: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Totals {
    /// Sum over hours of `hourly_kpis.orders` (an order with lines in two hours counts in each).
    pub orders: i64,
    pub units: i64,
    /// Exact decimal string with two fraction digits.
    pub revenue: String,
}

/// This source's own numbers in one hour (for audit: the published tables hold every source's together).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct HourNumbers {
    /// RFC 3339 hour start.
    pub hour: String,
    pub order_lines: i64,
    /// Distinct orders of this source in the hour.
    pub orders: i64,
    /// Distinct non-empty customers of this source in the hour.
    pub customers: i64,
    pub units: i64,
    /// Exact decimal string.
    pub revenue: String,
    #[serde(skip)]
    pub revenue_cents: i128,
}

/// One Parquet file written.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct OutputFile {
    pub table: String,
    pub uri: String,
    pub rows: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    pub status: Status,
    pub error: Option<ErrorInfo>,
    pub source: SourceInfo,
    pub rows: Rows,
    /// Every reject reason, with zero counts included so the shape never changes.
    pub rejects_by_reason: BTreeMap<String, u64>,
    pub ignored_columns: Vec<String>,
    /// RFC 3339 starts of the UTC hours present, ascending.
    pub hours: Vec<String>,
    /// This source's own numbers per hour, ascending.
    #[serde(default)]
    pub by_hour: Vec<HourNumbers>,
    pub totals: Totals,
    /// The hour and day tables this run published (recomputed from every source's state).
    pub outputs: Vec<OutputFile>,
    /// Partial states of other sources (or of this one's earlier runs) read to compute them.
    #[serde(default)]
    pub partials_read: usize,
    /// Requests this run made of the output storage (S3 bills them).
    #[serde(default)]
    pub requests: crate::storage::Requests,
    pub rejects_uri: Option<String>,
    /// The HTML reports this run wrote (its hours and days, and `reports/latest.html`).
    #[serde(default)]
    pub reports: Vec<String>,
    /// The digest of the newest hour this run published (succeeded runs only; what SNS receives).
    #[serde(default)]
    pub digest: Option<crate::output::report::Digest>,
    pub duration_ms: u64,
    pub version: String,
    /// The Lambda request id of the run (null locally).
    #[serde(default)]
    pub request_id: Option<String>,
    /// duration x configured memory x GB-second price + request price (null when memory is unknown).
    #[serde(default)]
    pub estimated_cost_usd: Option<f64>,
}

/// Every reject reason with its count, zeros included, so the shape never changes.
pub fn reason_counts(counts: &BTreeMap<RejectReason, u64>) -> BTreeMap<String, u64> {
    RejectReason::ALL.iter().map(|r| (r.as_str().to_string(), counts.get(r).copied().unwrap_or(0))).collect()
}

impl Summary {
    /// A summary of `source` with nothing counted or written yet; runs fill in what they produced.
    pub fn empty(status: Status, source: SourceInfo) -> Summary {
        Summary {
            status,
            error: None,
            source,
            rows: Rows::default(),
            rejects_by_reason: reason_counts(&BTreeMap::new()),
            ignored_columns: Vec::new(),
            hours: Vec::new(),
            by_hour: Vec::new(),
            totals: Totals { revenue: "0.00".into(), ..Totals::default() },
            outputs: Vec::new(),
            partials_read: 0,
            requests: Default::default(),
            rejects_uri: None,
            reports: Vec::new(),
            digest: None,
            duration_ms: 0,
            version: env!("CARGO_PKG_VERSION").to_string(),
            request_id: None,
            estimated_cost_usd: None,
        }
    }

    /// Serialises as one line of JSON with a trailing newline: the stored form, one object per line, as
    /// Athena's JSON SerDe reads it.
    pub fn to_json_line(&self) -> String {
        let mut s = serde_json::to_string(self).unwrap_or_default();
        s.push('\n');
        s
    }

    /// Serialises as pretty JSON with a trailing newline (for terminals).
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }
}
