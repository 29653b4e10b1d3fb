//! Configuration of the Lambda (and of `invoke`), from environment variables, validated once at start.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `OUTPUT_BUCKET` | required | bucket the outputs are written to |
//! | `OUTPUT_PREFIX` | `insights/` | key prefix of every output (the local layout goes below it) |
//! | `INPUT_SUFFIXES` | `.csv,.csv.gz` | keys ending otherwise are skipped (case-insensitive) |
//! | `METRICS_NAMESPACE` | `HourlyInsights` | CloudWatch namespace of the EMF metrics |
//! | `DIGEST_TOPIC_ARN` | unset | SNS topic the digest of each run's newest hour is published to |
//! | `REPORT_BASE_URL` | unset | http(s) address of the output prefix for people; the digest links reports under it |
//!
//! The standard AWS variables (region, credentials, `AWS_ENDPOINT_URL`, …) are read by the SDK itself.

/// Validated configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub output_bucket: String,
    /// Empty, or ends with `/`; never starts with `/`.
    pub output_prefix: String,
    /// Lowercase suffixes.
    pub input_suffixes: Vec<String>,
    pub metrics_namespace: String,
    /// `AWS_LAMBDA_FUNCTION_NAME`, or `hourly-insights` outside Lambda.
    pub function_name: String,
    /// `AWS_LAMBDA_FUNCTION_MEMORY_SIZE` in MB (for the cost estimate), if known.
    pub memory_mb: Option<u32>,
    /// `MAX_REJECTS_MIB`: the largest rejects file kept in /tmp (default 256).
    pub max_rejects_mib: u64,
    /// `DIGEST_TOPIC_ARN`: where digests are published; none when unset.
    pub digest_topic_arn: Option<String>,
    /// `REPORT_BASE_URL`: the digest's links are this plus the report's key; storage URIs when unset.
    pub report_base_url: Option<String>,
    /// `HOURLY_INSIGHTS_CONFIG`: the config file describing the export and its tables (a path inside the
    /// package, or s3://bucket/key), read once per cold start; the defaults when unset.
    pub settings_uri: Option<String>,
}

/// A configuration problem, with what to do about it.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("configuration error: {0}")]
pub struct ConfigError(pub String);

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads variables through `get` (testable without touching the environment).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let var = |name: &str| get(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let output_bucket = var("OUTPUT_BUCKET").ok_or_else(|| {
            ConfigError("OUTPUT_BUCKET is required: set it to the bucket the insight tables are written to".into())
        })?;
        let valid_bucket = (3..=63).contains(&output_bucket.len())
            && output_bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !valid_bucket {
            return Err(ConfigError(format!(
                "OUTPUT_BUCKET '{output_bucket}' is not a bucket name (3-63 characters: a-z, 0-9, '-', '.'); \
                 give the name only, not an s3:// URI"
            )));
        }
        let mut output_prefix = var("OUTPUT_PREFIX").unwrap_or_else(|| "insights/".into());
        output_prefix = output_prefix.trim_start_matches('/').to_string();
        if !output_prefix.is_empty() && !output_prefix.ends_with('/') {
            output_prefix.push('/');
        }
        let suffixes = var("INPUT_SUFFIXES").unwrap_or_else(|| ".csv,.csv.gz".into());
        let input_suffixes: Vec<String> =
            suffixes.split(',').map(|s| s.trim().to_ascii_lowercase()).filter(|s| !s.is_empty()).collect();
        if input_suffixes.is_empty() {
            return Err(ConfigError("INPUT_SUFFIXES lists no suffix; use e.g. '.csv,.csv.gz'".into()));
        }
        let metrics_namespace = var("METRICS_NAMESPACE").unwrap_or_else(|| "HourlyInsights".into());
        let memory_mb = match var("AWS_LAMBDA_FUNCTION_MEMORY_SIZE") {
            Some(v) => Some(v.parse().map_err(|_| {
                ConfigError(format!("AWS_LAMBDA_FUNCTION_MEMORY_SIZE must be a number of MB, got '{v}'"))
            })?),
            None => None,
        };
        let max_rejects_mib = match var("MAX_REJECTS_MIB") {
            None => crate::pipeline::MAX_REJECTS_MIB,
            Some(v) => v.parse::<u64>().ok().filter(|&n| n > 0).ok_or_else(|| {
                ConfigError(format!("MAX_REJECTS_MIB '{v}' is not a positive number of MiB (default 256)"))
            })?,
        };
        let digest_topic_arn = var("DIGEST_TOPIC_ARN");
        if let Some(arn) = &digest_topic_arn {
            if !(arn.starts_with("arn:") && arn.split(':').nth(2) == Some("sns") && arn.split(':').count() == 6) {
                return Err(ConfigError(format!(
                    "DIGEST_TOPIC_ARN '{arn}' is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME); \
                     leave it unset to send no digest"
                )));
            }
        }
        let report_base_url = var("REPORT_BASE_URL");
        if let Some(url) = &report_base_url {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(ConfigError(format!(
                    "REPORT_BASE_URL '{url}' must be an http(s) address of the output prefix \
                     (e.g. https://reports.example.com/insights/); leave it unset to link storage URIs"
                )));
            }
        }
        Ok(Config {
            settings_uri: var("HOURLY_INSIGHTS_CONFIG"),
            digest_topic_arn,
            report_base_url,
            max_rejects_mib,
            output_bucket,
            output_prefix,
            input_suffixes,
            metrics_namespace,
            function_name: var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_else(|| "hourly-insights".into()),
            memory_mb,
        })
    }

    /// Whether a key has one of the accepted input suffixes.
    pub fn accepts(&self, key: &str) -> bool {
        let key = key.to_ascii_lowercase();
        self.input_suffixes.iter().any(|s| key.ends_with(s.as_str()))
    }

    /// Whether an object lies inside the output location (the loop guard).
    pub fn is_output(&self, bucket: &str, key: &str) -> bool {
        bucket == self.output_bucket && key.starts_with(&self.output_prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_and_validation() {
        let c = cfg(&[("OUTPUT_BUCKET", "out-bucket")]).unwrap();
        assert_eq!(c.output_prefix, "insights/");
        assert_eq!(c.input_suffixes, [".csv", ".csv.gz"]);
        assert_eq!(c.metrics_namespace, "HourlyInsights");
        assert_eq!(c.function_name, "hourly-insights");
        assert!(c.accepts("a/b/Orders.CSV") && c.accepts("x.csv.gz") && !c.accepts("x.parquet"));
        assert!(c.is_output("out-bucket", "insights/hourly_kpis/x.parquet"));
        assert!(!c.is_output("out-bucket", "raw/x.csv") && !c.is_output("in-bucket", "insights/x.csv"));

        let c = cfg(&[("OUTPUT_BUCKET", "b-1"), ("OUTPUT_PREFIX", "/bi/x"), ("INPUT_SUFFIXES", " .TSV , ")]).unwrap();
        assert_eq!(c.output_prefix, "bi/x/");
        assert_eq!(c.input_suffixes, [".tsv"]);
        let c = cfg(&[("OUTPUT_BUCKET", "b-1"), ("OUTPUT_PREFIX", "/")]).unwrap();
        assert_eq!(c.output_prefix, "");
        assert!(c.is_output("b-1", "anything.csv"), "an empty prefix guards the whole bucket");

        let err = |vars: &[(&str, &str)]| cfg(vars).unwrap_err().0;
        assert!(err(&[]).contains("OUTPUT_BUCKET is required"));
        assert!(err(&[("OUTPUT_BUCKET", "s3://b/x")]).contains("not a bucket name"));
        assert!(err(&[("OUTPUT_BUCKET", "bkt"), ("INPUT_SUFFIXES", ",")]).contains("INPUT_SUFFIXES"));
        assert!(err(&[("OUTPUT_BUCKET", "bkt"), ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "lots")]).contains("MB"));
        assert!(err(&[("OUTPUT_BUCKET", "bkt"), ("DIGEST_TOPIC_ARN", "my-topic")]).contains("not an SNS topic ARN"));
        assert!(err(&[("OUTPUT_BUCKET", "bkt"), ("DIGEST_TOPIC_ARN", "arn:aws:sqs:us-east-1:1:q")]).contains("SNS"));
        assert!(err(&[("OUTPUT_BUCKET", "bkt"), ("REPORT_BASE_URL", "s3://b/x/")]).contains("http(s)"));
        let c = cfg(&[
            ("OUTPUT_BUCKET", "bkt"),
            ("DIGEST_TOPIC_ARN", "arn:aws:sns:us-east-1:123456789012:digest"),
            ("REPORT_BASE_URL", "https://r.example.com/insights/"),
        ])
        .unwrap();
        assert_eq!(c.digest_topic_arn.as_deref(), Some("arn:aws:sns:us-east-1:123456789012:digest"));
        assert_eq!(c.report_base_url.as_deref(), Some("https://r.example.com/insights/"));
        assert_eq!(cfg(&[("OUTPUT_BUCKET", "bkt")]).unwrap().digest_topic_arn, None);
    }
}
