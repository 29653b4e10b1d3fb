//! Configuration of the Lambda (and of `invoke`), from environment variables, validated once at start.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `OUTPUT_BUCKET` | required | bucket the outputs are written to |
//! | `OUTPUT_PREFIX` | `insights/` | key prefix of every output (the local layout goes below it) |
//! | `INPUT_SUFFIXES` | `.csv,.csv.gz` | keys ending otherwise are skipped (case-insensitive) |
//! | `METRICS_NAMESPACE` | `HourlyInsights` | CloudWatch namespace of the EMF metrics |
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
        Ok(Config {
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
    }
}
