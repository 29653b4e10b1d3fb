//! The Glue catalog of the output, generated from [`crate::aggregate::tables::TABLES`] so the catalog cannot drift
//! from the Parquet files: `template.yaml` holds the generated block between two marker lines, and a test
//! fails when it differs (`UPDATE_TEMPLATE=1 cargo test --release catalog` rewrites it).
//!
//! Each hourly table gets partition projection on `dt` (date) and `hour` (two digits), each daily table on
//! `dt`, so Athena sees a new hour or day as soon as its file exists, with no crawler and no `MSCK REPAIR`.

use std::fmt::Write;

use crate::aggregate::tables::{Period, TableSpec};

/// First line of the generated block in `template.yaml`.
pub const BEGIN: &str = "  # BEGIN GENERATED GLUE TABLES (src/output/catalog.rs; do not edit by hand)";
/// Last line of the generated block.
pub const END: &str = "  # END GENERATED GLUE TABLES";

/// The Glue type of each summary JSON field, in file order.
pub const SUMMARY_COLUMNS: &[(&str, &str)] = &[
    ("status", "string"),
    ("error", "struct<kind:string,message:string>"),
    ("source", "struct<uri:string,bytes:bigint,etag:string,version_id:string,sequencer:string>"),
    ("rows", "struct<read:bigint,valid:bigint,rejected:bigint>"),
    (
        "rejects_by_reason",
        "struct<event_time_invalid:bigint,field_count:bigint,invalid_utf8:bigint,order_id_missing:bigint,\
         quantity_invalid:bigint,sku_missing:bigint,unit_price_invalid:bigint>",
    ),
    ("ignored_columns", "array<string>"),
    ("hours", "array<string>"),
    (
        "by_hour",
        "array<struct<hour:string,order_lines:bigint,orders:bigint,customers:bigint,units:bigint,revenue:string>>",
    ),
    ("totals", "struct<orders:bigint,units:bigint,revenue:string>"),
    ("outputs", "array<struct<table:string,uri:string,rows:bigint>>"),
    ("partials_read", "bigint"),
    ("requests", "struct<get:bigint,head:bigint,put:bigint,put_conflicts:bigint,delete:bigint,list:bigint>"),
    ("rejects_uri", "string"),
    ("reports", "array<string>"),
    (
        "digest",
        "struct<period:string,start:string,subject:string,text:string,report:string,revenue:string,orders:bigint,\
         customers:bigint,units:bigint,avg_order_value:string,revenue_vs_previous_pct:double,\
         orders_vs_previous_pct:double,revenue_vs_week_pct:double,orders_vs_week_pct:double,outliers:array<string>>",
    ),
    ("duration_ms", "bigint"),
    ("version", "string"),
    ("request_id", "string"),
    ("estimated_cost_usd", "double"),
];

/// CloudFormation logical id of a table resource: `hourly_kpis` -> `GlueTableHourlyKpis`.
pub fn logical_id(table: &str) -> String {
    let camel: String = table
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
        })
        .collect();
    format!("GlueTable{camel}")
}

/// The lines every table resource starts with, up to its `Parameters:` (classification included).
fn table_preamble(out: &mut String, name: &str, description: &str, classification: &str) {
    let _ = writeln!(out, "  {}:", logical_id(name));
    let _ = writeln!(out, "    Type: AWS::Glue::Table");
    let _ = writeln!(out, "    Properties:");
    let _ = writeln!(out, "      CatalogId: !Ref AWS::AccountId");
    let _ = writeln!(out, "      DatabaseName: !Ref GlueDatabase");
    let _ = writeln!(out, "      TableInput:");
    let _ = writeln!(out, "        Name: {name}");
    let _ = writeln!(out, "        Description: \"{description}\"");
    let _ = writeln!(out, "        TableType: EXTERNAL_TABLE");
    let _ = writeln!(out, "        Parameters:");
    let _ = writeln!(out, "          classification: {classification}");
}

fn insight_table(out: &mut String, spec: &TableSpec, period: Period) {
    let name = spec.table_name(period);
    let description = match period {
        Period::Hour => spec.description.to_string(),
        Period::Day => format!("{} (per UTC day)", spec.description.replace("hour", "day")),
    };
    table_preamble(out, &name, &description, "parquet");
    let _ = writeln!(out, "          projection.enabled: \"true\"");
    let _ = writeln!(out, "          projection.dt.type: date");
    let _ = writeln!(out, "          projection.dt.format: yyyy-MM-dd");
    let _ = writeln!(out, "          projection.dt.range: 2020-01-01,NOW");
    let _ = writeln!(out, "          projection.dt.interval: \"1\"");
    let _ = writeln!(out, "          projection.dt.interval.unit: DAYS");
    let partitions = match period {
        Period::Hour => {
            let _ = writeln!(out, "          projection.hour.type: integer");
            let _ = writeln!(out, "          projection.hour.range: 0,23");
            let _ = writeln!(out, "          projection.hour.digits: \"2\"");
            "dt=${!dt}/hour=${!hour}/"
        }
        Period::Day => "dt=${!dt}/",
    };
    let _ = writeln!(
        out,
        "          storage.location.template: !Sub \"s3://${{OutputBucket}}/${{OutputPrefix}}{name}/{partitions}\""
    );
    let _ = writeln!(out, "        PartitionKeys:");
    let _ = writeln!(out, "          - {{Name: dt, Type: string}}");
    if period == Period::Hour {
        let _ = writeln!(out, "          - {{Name: hour, Type: string}}");
    }
    let _ = writeln!(out, "        StorageDescriptor:");
    let _ = writeln!(out, "          Location: !Sub \"s3://${{OutputBucket}}/${{OutputPrefix}}{name}/\"");
    let _ = writeln!(out, "          InputFormat: org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat");
    let _ = writeln!(out, "          OutputFormat: org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat");
    let _ = writeln!(out, "          SerdeInfo:");
    let _ =
        writeln!(out, "            SerializationLibrary: org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe");
    let _ = writeln!(out, "          Columns:");
    for (column, ty) in spec.columns_of(period) {
        let _ = writeln!(out, "            - {{Name: {column}, Type: \"{}\"}}", ty.sql());
    }
}

fn summaries_table(out: &mut String) {
    let description = "one row per processed source file: status, counts, totals, outputs";
    table_preamble(out, "summaries", description, "json");
    let _ = writeln!(out, "        StorageDescriptor:");
    let _ = writeln!(out, "          Location: !Sub \"s3://${{OutputBucket}}/${{OutputPrefix}}summaries/\"");
    let _ = writeln!(out, "          InputFormat: org.apache.hadoop.mapred.TextInputFormat");
    let _ = writeln!(out, "          OutputFormat: org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat");
    let _ = writeln!(out, "          SerdeInfo:");
    let _ = writeln!(out, "            SerializationLibrary: org.openx.data.jsonserde.JsonSerDe");
    let _ = writeln!(out, "          Columns:");
    for (column, ty) in SUMMARY_COLUMNS {
        let _ = writeln!(out, "            - {{Name: {column}, Type: \"{ty}\"}}");
    }
}

/// The generated block for `tables` (the settings' tables), marker lines included.
pub fn glue_tables_yaml(tables: &[TableSpec]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{BEGIN}");
    for period in Period::ALL {
        for spec in tables {
            insight_table(&mut out, spec, period);
        }
    }
    summaries_table(&mut out);
    let _ = writeln!(out, "{END}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logical_ids() {
        assert_eq!(logical_id("hourly_kpis"), "GlueTableHourlyKpis");
        assert_eq!(logical_id("summaries"), "GlueTableSummaries");
        assert_eq!(logical_id("daily_kpis"), "GlueTableDailyKpis");
    }

    #[test]
    fn summary_columns_match_the_summary_json() {
        let summary =
            crate::output::summary::Summary::empty(crate::output::summary::Status::Succeeded, Default::default());
        let json: serde_json::Value = serde_json::from_str(&summary.to_json()).unwrap();
        let keys: Vec<&str> = json.as_object().unwrap().keys().map(String::as_str).collect();
        let mut want: Vec<&str> = SUMMARY_COLUMNS.iter().map(|c| c.0).collect();
        want.sort_unstable();
        let mut keys = keys;
        keys.sort_unstable();
        assert_eq!(keys, want, "every summary field has a Glue column");
        let reasons: Vec<&str> = json["rejects_by_reason"].as_object().unwrap().keys().map(String::as_str).collect();
        let glue = SUMMARY_COLUMNS.iter().find(|c| c.0 == "rejects_by_reason").unwrap().1;
        for reason in reasons {
            assert!(glue.contains(&format!("{reason}:bigint")), "{reason} in {glue}");
        }
    }

    /// The deployed permissions stay least-privilege: the function has its own role (not the one SAM would
    /// generate with logs on every log group), no statement has a `*` resource, logs go to its own log
    /// group only, and incomplete multipart uploads of the output bucket are aborted after a day.
    #[test]
    fn template_permissions_are_scoped() {
        let template = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/template.yaml")).unwrap();
        let function =
            template.split("\n  InsightsFunction:\n").nth(1).unwrap().split("\n  GlueDatabase:").next().unwrap();
        assert!(function.contains("      Role: !GetAtt InsightsFunctionRole.Arn"), "an explicit role");
        assert!(!function.contains("      Policies:"), "no policies for SAM to put in a generated role");
        assert!(!template.contains("AWSLambdaBasicExecutionRole"));
        for line in template.lines().filter(|l| l.trim_start().starts_with("Resource:")) {
            assert!(!line.contains("\"*\"") && !line.trim_end().ends_with(": *"), "a * resource: {line}");
        }
        let role =
            template.split("  InsightsFunctionRole:\n").nth(1).unwrap().split("\n  InsightsFunction:").next().unwrap();
        let logs = role.split("- Sid: OwnLogGroupOnly").nth(1).unwrap().split("- Sid:").next().unwrap();
        assert!(logs.contains("Resource: !GetAtt FunctionLogGroup.Arn"), "{logs}");
        assert!(template.contains("AbortIncompleteMultipartUpload:\n              DaysAfterInitiation: 1"));
        assert!(template.contains("Events: [s3:ObjectCreated:*, s3:ObjectRemoved:*]"), "deletions reach the function");
        for (alarm, metric) in [
            ("FunctionErrorsAlarm", "MetricName: Errors"),
            ("FunctionThrottlesAlarm", "MetricName: Throttles"),
            ("FunctionDurationAlarm", "MetricName: Duration"),
            ("FailedEventsAlarm", "MetricName: ApproximateNumberOfMessagesVisible"),
            ("FilesFailedAlarm", "MetricName: FilesFailed"),
        ] {
            let body = template.split(&format!("\n  {alarm}:\n")).nth(1).unwrap_or_else(|| panic!("{alarm}"));
            let body = body.split("\n\n").next().unwrap();
            assert!(body.contains(metric) && body.contains("AlarmActions: [!Ref AlarmTopic]"), "{alarm}: {body}");
        }
        assert!(function.contains("ReservedConcurrentExecutions: !If [HasReservedConcurrency"));
        // Digests: the function may publish to its own digest topic only, which the template creates
        // encrypted, and it is told the topic's ARN.
        let digest = role.split("- Sid: PublishDigest").nth(1).unwrap().split("- Sid:").next().unwrap();
        assert!(digest.contains("Action: sns:Publish") && digest.contains("Resource: !Ref DigestTopic"), "{digest}");
        assert!(function.contains("DIGEST_TOPIC_ARN: !Ref DigestTopic"));
        let topic = template.split("\n  DigestTopic:\n").nth(1).unwrap().split("\n\n").next().unwrap();
        assert!(topic.contains("Type: AWS::SNS::Topic") && topic.contains("KmsMasterKeyId: alias/aws/sns"), "{topic}");
    }

    /// `template.yaml` holds exactly the generated block.
    #[test]
    fn template_glue_tables_match_the_parquet_schema() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/template.yaml");
        let template = std::fs::read_to_string(path).expect("template.yaml");
        let (start, end) = match (template.find(BEGIN), template.find(END)) {
            (Some(s), Some(e)) => (s, e + END.len() + 1),
            _ => panic!("template.yaml lacks the generated-block markers"),
        };
        let want = glue_tables_yaml(crate::aggregate::tables::DEFAULT_TABLES);
        if template[start..end] != want {
            if std::env::var_os("UPDATE_TEMPLATE").is_some() {
                let updated = format!("{}{}{}", &template[..start], want, &template[end..]);
                std::fs::write(path, updated).unwrap();
                return;
            }
            panic!("template.yaml's Glue tables differ from src/aggregate/tables.rs; run UPDATE_TEMPLATE=1 cargo test --release catalog");
        }
    }
}
