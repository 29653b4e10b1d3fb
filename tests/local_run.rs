//! End-to-end tests of the local pipeline through the real binary, on the checked-in fixtures.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use hourly_insights::contract::parse::{format_cents, format_rfc3339};
use polars::prelude::*;
use serde_json::Value;

#[path = "support/reference.rs"]
mod reference;

use reference::tree;

const FIXTURE: &str = "fixtures/orders-2026-11-22T13.csv";

fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hourly-insights"));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR")).env("RUST_LOG", "warn");
    cmd
}

fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Runs `hourly-insights run INPUT --out OUT [extra…]`; returns the exit code and the printed summary.
fn run(input: &Path, out: &Path, extra: &[&str]) -> (i32, Value, Output) {
    let output = bin().arg("run").arg(input).arg("--out").arg(out).args(extra).output().unwrap();
    let summary: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("summary JSON on stdout ({e}): {}", String::from_utf8_lossy(&output.stderr)));
    assert_invariant(&summary);
    (output.status.code().unwrap(), summary, output)
}

fn assert_invariant(summary: &Value) {
    let rows = &summary["rows"];
    let (read, valid, rejected) = (rows["read"].as_u64(), rows["valid"].as_u64(), rows["rejected"].as_u64());
    assert_eq!(read.unwrap(), valid.unwrap() + rejected.unwrap(), "rows.read == valid + rejected: {rows}");
    let by_reason: u64 = summary["rejects_by_reason"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(by_reason, rejected.unwrap(), "rejects_by_reason adds up to rows.rejected");
}

/// The Parquet files of a tree, keyed by `table/dt=…/hour=…` (the file name, which depends on the source,
/// dropped).
fn parquet_by_partition(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    tree(dir)
        .into_iter()
        .filter(|(k, _)| k.ends_with(".parquet"))
        .map(|(k, v)| (k.rsplit_once('/').unwrap().0.to_string(), v))
        .collect()
}

/// A Parquet file's rows as `|`-joined cells: hour as `HH`, decimals with two digits.
fn rows_of(path: &Path) -> (Vec<(String, DataType)>, Vec<String>) {
    let df = ParquetReader::new(fs::File::open(path).unwrap()).finish().unwrap();
    let schema = df.schema().iter().map(|(n, t)| (n.to_string(), t.clone())).collect();
    let rows = (0..df.height())
        .map(|i| {
            df.columns()
                .iter()
                .map(|c| match c.dtype() {
                    DataType::Datetime(_, _) => {
                        let micros = c.datetime().unwrap().physical().get(i).unwrap();
                        format_rfc3339(micros)[11..13].to_string()
                    }
                    DataType::Date => {
                        let days = c.date().unwrap().physical().get(i).unwrap();
                        format_rfc3339(i64::from(days) * 86_400_000_000)[..10].to_string()
                    }
                    DataType::Decimal(_, _) => format_cents(c.decimal().unwrap().physical().get(i).unwrap()),
                    DataType::Int64 => c.i64().unwrap().get(i).unwrap().to_string(),
                    DataType::String => c.str().unwrap().get(i).unwrap().to_string(),
                    other => panic!("unexpected column type {other:?}"),
                })
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect();
    (schema, rows)
}

/// Hand-checked values of the fixture (computed independently of this code; see README "Testing").
const EXPECTED: &[(&str, &[&str])] = &[
    ("hourly_kpis", &["12|3|4|8|288.49|2|96.16", "13|19|23|48|1599.48|11|84.18"]),
    (
        "channel_performance",
        &[
            "12|app|push_weekend|1|1|4|62.00|0",
            "12|email|bf_2026|1|1|1|12.00|1",
            "12|web|unknown|1|2|3|214.49|1",
            "13|affiliate|partner_42|1|2|11|170.39|1",
            "13|app|push_weekend|2|2|3|216.19|1",
            "13|app|unknown|1|1|6|6.30|0",
            "13|email|newsletter|1|1|1|5.55|1",
            "13|email|newsletter, week 47|1|1|1|42.00|1",
            "13|email|winback|1|1|3|89.70|1",
            "13|search|brand|1|1|1|29.90|1",
            "13|search|generic, shoes|1|1|2|399.98|1",
            "13|social|insta_reels|1|2|4|45.47|1",
            "13|social|tiktok_spark|1|1|1|49.95|1",
            "13|unknown|unknown|1|1|1|3.33|0",
            "13|web|bf_2026|4|5|7|285.98|3",
            "13|web|unknown|3|4|7|254.74|3",
        ],
    ),
    (
        "category_sales",
        &[
            "12|books|1|1|12.00|1",
            "12|electronics|2|5|261.99|2",
            "12|toys|1|2|14.50|1",
            "13|apparel|2|5|71.97|2",
            "13|beauty|3|5|125.15|2",
            "13|books|2|3|43.99|2",
            "13|electronics|6|19|1216.84|2",
            "13|grocery|1|6|6.30|1",
            "13|home, garden|1|1|42.00|1",
            "13|sports|2|2|49.95|2",
            "13|toys|3|6|39.95|3",
            "13|unknown|1|1|3.33|1",
        ],
    ),
    (
        "geo_device",
        &[
            "12|DE|desktop|1|1|214.49",
            "12|FR|tablet|1|1|12.00",
            "12|US|mobile|1|0|62.00",
            "13|AT|mobile|1|1|16.20",
            "13|CH|tablet|1|1|19.99",
            "13|DE|desktop|4|3|498.98",
            "13|DE|mobile|6|3|165.30",
            "13|FR|mobile|1|1|45.47",
            "13|GB|desktop|2|2|429.88",
            "13|NL|unknown|1|1|170.39",
            "13|PL|mobile|1|1|49.95",
            "13|US|mobile|1|0|199.99",
            "13|unknown|unknown|1|0|3.33",
        ],
    ),
    (
        "top_products",
        &[
            "12|1|SKU-1|1|1|199.99",
            "12|2|SKU-2|1|4|62.00",
            "12|3|SKU-6|1|2|14.50",
            "12|4|SKU-5|1|1|12.00",
            "13|1|SKU-1|4|5|999.95",
            "13|2|SKU-2|3|14|216.89",
            "13|3|SKU-7|2|4|119.60",
            "13|4|SKU-12|1|1|49.95",
            "13|5|SKU-14|1|2|42.00",
            "13|6|SKU-3|1|1|42.00",
            "13|7|SKU-4|1|3|29.97",
            "13|8|SKU-5|1|2|24.00",
            "13|9|SKU-6|1|3|21.75",
            "13|10|SKU-11|1|1|19.99",
        ],
    ),
];

#[test]
fn fixture_gives_the_hand_checked_tables_schema_and_summary() {
    let out = tempfile::tempdir().unwrap();
    let (code, summary, _) = run(&fixture(FIXTURE), out.path(), &[]);
    assert_eq!(code, 0);
    assert_eq!(summary["status"], "succeeded");
    assert_eq!(summary["error"], Value::Null);
    assert_eq!(summary["rows"], serde_json::json!({"read": 41, "valid": 27, "rejected": 14}));
    assert_eq!(
        summary["rejects_by_reason"],
        serde_json::json!({
            "event_time_invalid": 2, "field_count": 2, "invalid_utf8": 2, "order_id_missing": 2,
            "quantity_invalid": 2, "sku_missing": 2, "unit_price_invalid": 2
        })
    );
    assert_eq!(summary["ignored_columns"], serde_json::json!(["note"]));
    assert_eq!(summary["hours"], serde_json::json!(["2026-11-22T12:00:00Z", "2026-11-22T13:00:00Z"]));
    assert_eq!(summary["totals"], serde_json::json!({"orders": 22, "units": 56, "revenue": "1887.97"}));
    assert_eq!(summary["source"]["bytes"], fs::metadata(fixture(FIXTURE)).unwrap().len());
    assert_eq!(summary["source"]["etag"], Value::Null);
    assert_eq!(summary["source"]["version_id"], Value::Null);
    assert_eq!(summary["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(summary["outputs"].as_array().unwrap().len(), 15, "5 tables x 2 hours, and 5 daily tables");

    let name = summary["source"]["uri"].as_str().map(hourly_insights::output::output_name).unwrap();
    assert!(name.starts_with("orders-2026-11-22T13-"), "{name}");
    let stored: Value =
        serde_json::from_slice(&fs::read(out.path().join(format!("summaries/{name}.json"))).unwrap()).unwrap();
    assert_eq!(stored["totals"], summary["totals"]);

    let decimal = DataType::Decimal(18, 2);
    let utc = DataType::Datetime(TimeUnit::Microseconds, Some(TimeZone::UTC));
    let schema_of = |spec: &hourly_insights::aggregate::tables::TableSpec, period| -> Vec<(String, DataType)> {
        spec.columns_of(period)
            .iter()
            .map(|(n, t)| {
                let dtype = match t {
                    hourly_insights::aggregate::tables::ColumnType::Timestamp => utc.clone(),
                    hourly_insights::aggregate::tables::ColumnType::Date => DataType::Date,
                    hourly_insights::aggregate::tables::ColumnType::Int64 => DataType::Int64,
                    hourly_insights::aggregate::tables::ColumnType::String => DataType::String,
                    hourly_insights::aggregate::tables::ColumnType::Decimal => decimal.clone(),
                };
                (n.to_string(), dtype)
            })
            .collect()
    };
    for spec in hourly_insights::aggregate::tables::DEFAULT_TABLES {
        let daily = spec.table_name(hourly_insights::aggregate::tables::Period::Day);
        let (schema, rows) = rows_of(&out.path().join(format!("{daily}/dt=2026-11-22/data.parquet")));
        assert_eq!(schema, schema_of(spec, hourly_insights::aggregate::tables::Period::Day), "schema of {daily}");
        assert!(!rows.is_empty() && rows.iter().all(|r| r.starts_with("2026-11-22|")), "{daily}: {rows:?}");
    }
    for (table, expected) in EXPECTED {
        let spec = hourly_insights::aggregate::tables::DEFAULT_TABLES.iter().find(|t| t.name == *table).unwrap();
        let mut rows = Vec::new();
        for hour in ["12", "13"] {
            let path = out.path().join(format!("{table}/dt=2026-11-22/hour={hour}/data.parquet"));
            let (schema, part) = rows_of(&path);
            assert_eq!(schema, schema_of(spec, hourly_insights::aggregate::tables::Period::Hour), "schema of {table}");
            assert!(part.iter().all(|r| r.starts_with(hour)), "{table} hour={hour} holds only its hour");
            rows.extend(part);
        }
        assert_eq!(rows, *expected, "rows of {table}");
    }
}

#[test]
fn rejects_file_names_line_reason_and_record() {
    let out = tempfile::tempdir().unwrap();
    let (_, summary, _) = run(&fixture(FIXTURE), out.path(), &[]);
    let uri = summary["rejects_uri"].as_str().unwrap();
    let path = uri.strip_prefix("file://").unwrap();
    let mut rdr = csv::Reader::from_path(path).unwrap();
    assert_eq!(rdr.headers().unwrap(), vec!["line", "reason", "record"]);
    let rows: Vec<(u64, String, String)> =
        rdr.records().map(|r| r.unwrap()).map(|r| (r[0].parse().unwrap(), r[1].into(), r[2].into())).collect();
    let lines: Vec<(u64, &str)> = rows.iter().map(|(l, r, _)| (*l, r.as_str())).collect();
    assert_eq!(
        lines,
        [
            (13, "event_time_invalid"),
            (14, "order_id_missing"),
            (15, "sku_missing"),
            (16, "quantity_invalid"),
            (17, "unit_price_invalid"),
            (18, "field_count"),
            (22, "field_count"),
            (28, "quantity_invalid"),
            (29, "unit_price_invalid"),
            (33, "invalid_utf8"),
            (34, "event_time_invalid"),
            (40, "sku_missing"),
            (43, "order_id_missing"),
            (44, "invalid_utf8"),
        ]
    );
    assert_eq!(rows[0].2, "2026-11-22T25:00:00Z,A1006,C04,SKU-1,Electronics,1,199.99,web,,DE,desktop,bad hour");
    assert_eq!(
        rows[6].2,
        "2026-11-22T13:20:00Z,A1012,C08,SKU-3,home, garden,1,42.00,search,generic,GB,desktop,unquoted comma"
    );
    assert!(rows[9].2.contains("caf\u{fffd} \u{fffd}"), "invalid bytes are replaced: {}", rows[9].2);
}

#[test]
fn rerun_is_byte_identical_and_removes_stale_outputs() {
    let work = tempfile::tempdir().unwrap();
    let input = work.path().join("orders.csv");
    fs::copy(fixture(FIXTURE), &input).unwrap();
    let out = work.path().join("out");
    run(&input, &out, &[]);
    let first = tree(&out);
    run(&input, &out, &[]);
    let second = tree(&out);
    let without_summaries = |t: &BTreeMap<String, Vec<u8>>| {
        t.iter().filter(|(k, _)| !k.starts_with("summaries/")).map(|(k, v)| (k.clone(), v.clone())).collect::<Vec<_>>()
    };
    assert_eq!(without_summaries(&first), without_summaries(&second), "same input, same bytes");
    assert!(first.keys().any(|k| k.contains("hour=12")));

    // A corrected file without the late rows of hour 12 and without rejects: hour 12 is published again
    // without them (no rows), its state and the rejects go.
    let text = fs::read_to_string(fixture("fixtures/bad/bom-crlf.csv").as_path()).unwrap();
    fs::write(&input, text).unwrap();
    let (code, summary, _) = run(&input, &out, &[]);
    assert_eq!(code, 0);
    assert_eq!(summary["rejects_uri"], Value::Null);
    let third = tree(&out);
    assert!(!third.keys().any(|k| k.starts_with("rejects/") || k.starts_with("_state/dt=2026-11-22/hour=12/")));
    assert_eq!(third.keys().filter(|k| k.ends_with(".parquet")).count(), 15);
    let kpis = |hour: &str| rows_of(&out.join(format!("hourly_kpis/dt=2026-11-22/hour={hour}/data.parquet"))).1;
    assert_eq!(kpis("12"), Vec::<String>::new(), "hour 12 has no rows left");
    assert_eq!(kpis("13"), ["13|3|3|4|18.50|2|6.17"]);

    // Another source in the same directory adds to the same hours; the first one's state is untouched.
    let other = work.path().join("other.csv");
    fs::copy(fixture(FIXTURE), &other).unwrap();
    run(&other, &out, &[]);
    let fourth = tree(&out);
    assert!(third.keys().filter(|k| k.starts_with("_state/sources/")).all(|k| fourth.get(k) == third.get(k)));
    assert_eq!(kpis("12"), ["12|3|4|8|288.49|2|96.16"], "only the other source has rows in hour 12");

    // Failing as a whole removes the source's contribution: no table claims data the summary denies.
    fs::write(&input, "not,a,header\n").unwrap();
    let (code, summary, _) = run(&input, &out, &[]);
    assert_eq!(code, 2);
    assert_eq!(summary["error"]["kind"], "missing_columns");
    assert_eq!(kpis("13"), ["13|19|23|48|1599.48|11|84.18"], "the other source's numbers alone");
    let name = hourly_insights::output::output_name(summary["source"]["uri"].as_str().unwrap());
    let fifth = tree(&out);
    assert!(!fifth.keys().any(|k| k.starts_with("_state/dt=") && k.contains(&name)), "its partials are gone");
    assert!(fifth.contains_key(&format!("summaries/{name}.json")));
}

#[test]
fn gzip_input_gives_the_same_tables() {
    let plain = tempfile::tempdir().unwrap();
    let gz = tempfile::tempdir().unwrap();
    let (_, a, _) = run(&fixture(FIXTURE), plain.path(), &[]);
    // Decoded on a reader thread of its own (threads), or on the parsing thread (inline).
    for stages in ["threads", "inline"] {
        let (code, b, _) = run(&fixture("fixtures/bad/gzip-input.csv.gz"), gz.path(), &["--stages", stages]);
        assert_eq!(code, 0, "{stages}");
        assert_eq!(a["rows"], b["rows"], "{stages}");
        assert_eq!(a["totals"], b["totals"], "{stages}");
        assert_eq!(b["source"]["bytes"], fs::metadata(fixture("fixtures/bad/gzip-input.csv.gz")).unwrap().len());
        assert_eq!(parquet_by_partition(plain.path()), parquet_by_partition(gz.path()), "{stages}");
    }
}

#[test]
fn bad_inputs_fail_clearly_or_lose_nothing() {
    // (file, exit code, status, error kind, rows [read, valid, rejected], rejects by reason)
    type Case = (&'static str, i32, &'static str, Option<&'static str>, [u64; 3], &'static [(&'static str, u64)]);
    let cases: &[Case] = &[
        ("empty.csv", 2, "failed", Some("empty_file"), [0, 0, 0], &[]),
        ("header-only.csv", 0, "succeeded", None, [0, 0, 0], &[]),
        ("missing-column.csv", 2, "failed", Some("missing_columns"), [0, 0, 0], &[]),
        ("duplicate-column.csv", 2, "failed", Some("duplicate_column"), [0, 0, 0], &[]),
        ("binary-garbage.csv", 2, "failed", Some("invalid_header"), [0, 0, 0], &[]),
        ("invalid-header.csv", 2, "failed", Some("invalid_header"), [0, 0, 0], &[]),
        ("truncated.csv.gz", 2, "failed", Some("corrupt_input"), [0, 0, 0], &[]),
        ("bom-crlf.csv", 0, "succeeded", None, [3, 3, 0], &[]),
        ("quoted-newlines.csv", 0, "succeeded", None, [4, 3, 1], &[("order_id_missing", 1)]),
        ("field-counts.csv", 0, "succeeded", None, [5, 2, 3], &[("field_count", 3)]),
        ("non-utf8-row.csv", 0, "succeeded", None, [3, 2, 1], &[("invalid_utf8", 1)]),
        ("crlf-rejects.csv", 0, "succeeded", None, [5, 2, 3], &[("order_id_missing", 3)]),
        ("cr-only.csv", 0, "succeeded", None, [2, 0, 2], &[("order_id_missing", 2)]),
        // Each row's revenue fits decimal(18,2) in every finer table; only the hour's total does not.
        ("revenue-overflow.csv", 2, "failed", Some("revenue_overflow"), [0, 0, 0], &[]),
        ("utf16le-bom.csv", 2, "failed", Some("unsupported_encoding"), [0, 0, 0], &[]),
        ("utf16be.csv", 2, "failed", Some("unsupported_encoding"), [0, 0, 0], &[]),
        ("utf32le.csv", 2, "failed", Some("unsupported_encoding"), [0, 0, 0], &[]),
        ("zstd-input.csv.zst", 2, "failed", Some("unsupported_compression"), [0, 0, 0], &[]),
        ("bzip2-input.csv.bz2", 2, "failed", Some("unsupported_compression"), [0, 0, 0], &[]),
        ("xz-input.csv.xz", 2, "failed", Some("unsupported_compression"), [0, 0, 0], &[]),
    ];
    // Every case in both stage modes: input read on a thread of its own (threads) or on the parsing thread
    // (inline).
    for ((file, want_code, status, kind, rows, reasons), stages) in
        cases.iter().flat_map(|case| ["threads", "inline"].map(|stages| (case, stages)))
    {
        let out = tempfile::tempdir().unwrap();
        let (code, summary, output) = run(&fixture(&format!("fixtures/bad/{file}")), out.path(), &["--stages", stages]);
        let ctx = format!("case {file}, {stages}: {summary}");
        assert_eq!(code, *want_code, "{ctx}");
        assert_eq!(summary["status"], *status, "{ctx}");
        assert_eq!(summary["error"]["kind"].as_str(), *kind, "{ctx}");
        let r = &summary["rows"];
        assert_eq!(
            [r["read"].as_u64().unwrap(), r["valid"].as_u64().unwrap(), r["rejected"].as_u64().unwrap()],
            *rows,
            "{ctx}"
        );
        for (reason, n) in *reasons {
            assert_eq!(summary["rejects_by_reason"][reason], *n, "{ctx}");
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        if *want_code == 2 {
            assert!(stderr.lines().any(|l| l.starts_with("error: input rejected:")), "{ctx}: {stderr}");
            assert_eq!(summary["outputs"], serde_json::json!([]), "{ctx}");
        }
        let files = tree(out.path());
        assert!(files.keys().any(|k| k.starts_with("summaries/")), "{ctx}: a summary is always written");
    }
}

#[test]
fn unsupported_encodings_and_compressions_are_named() {
    for (file, needle) in [
        ("utf16le-bom.csv", "UTF-16LE (with byte order mark)"),
        ("utf16be.csv", "UTF-16BE (no byte order mark)"),
        ("utf32le.csv", "UTF-32LE (no byte order mark)"),
        ("zstd-input.csv.zst", "zstd"),
        ("bzip2-input.csv.bz2", "bzip2"),
        ("xz-input.csv.xz", "xz"),
    ] {
        let out = tempfile::tempdir().unwrap();
        let (_, summary, _) = run(&fixture(&format!("fixtures/bad/{file}")), out.path(), &[]);
        let message = summary["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{file}: {message}");
    }
}

/// gzip in the shapes real tools write: several members (concatenated files), zero padding after the last
/// member (tape and block tools), a bad CRC, an empty body. The same tables as the plain file, or a clear
/// `corrupt_input` / `empty_file`.
#[test]
fn gzip_members_padding_and_checksums() {
    use std::io::Write;
    let plain = fs::read(fixture(FIXTURE)).unwrap();
    let gz = |bytes: &[u8]| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    };
    let cut = plain.len() / 2;
    let cut = cut + plain[cut..].iter().position(|&b| b == b'\n').unwrap() + 1;
    let two_members = [gz(&plain[..cut]), gz(&plain[cut..])].concat();
    let mut padded = gz(&plain);
    padded.extend_from_slice(&[0u8; 512]);
    let mut bad_crc = gz(&plain);
    let n = bad_crc.len();
    bad_crc[n - 8] ^= 0xff; // the CRC-32 in the trailer
    let work = tempfile::tempdir().unwrap();
    let (_, want, _) = run(&fixture(FIXTURE), &work.path().join("plain"), &[]);
    for (name, bytes, kind) in [
        ("two-members.csv.gz", two_members, None),
        ("padded.csv.gz", padded, Some("corrupt_input")),
        ("bad-crc.csv.gz", bad_crc, Some("corrupt_input")),
        ("empty.csv.gz", gz(b""), Some("empty_file")),
    ] {
        let path = work.path().join(name);
        fs::write(&path, bytes).unwrap();
        let (code, summary, _) = run(&path, &work.path().join(name).with_extension("out"), &[]);
        match kind {
            None => {
                assert_eq!(code, 0, "{name}: {summary}");
                assert_eq!((&summary["rows"], &summary["totals"]), (&want["rows"], &want["totals"]), "{name}");
            }
            Some(kind) => {
                assert_eq!(code, 2, "{name}: {summary}");
                assert_eq!(summary["error"]["kind"], kind, "{name}: {summary}");
            }
        }
    }
}

#[test]
fn bom_crlf_and_quoted_newlines_parse_into_the_right_values() {
    let out = tempfile::tempdir().unwrap();
    let (_, summary, _) = run(&fixture("fixtures/bad/bom-crlf.csv"), out.path(), &[]);
    assert_eq!(summary["totals"], serde_json::json!({"orders": 3, "units": 4, "revenue": "18.50"}));
    assert_eq!(summary["ignored_columns"], serde_json::json!([]), "the BOM is not part of the first name");

    let out = tempfile::tempdir().unwrap();
    let (_, summary, _) = run(&fixture("fixtures/bad/quoted-newlines.csv"), out.path(), &[]);
    let name = hourly_insights::output::output_name(summary["source"]["uri"].as_str().unwrap());
    let (_, rows) = rows_of(&out.path().join("channel_performance/dt=2026-11-22/hour=13/data.parquet"));
    assert_eq!(rows, ["13|app|unknown|2|2|2|4.50|2", "13|web|spring, \"sale\"|1|1|2|10.00|1"]);
    let rejects = fs::read_to_string(out.path().join(format!("rejects/{name}.csv"))).unwrap();
    assert!(rejects.starts_with("line,reason,record\n8,order_id_missing,"), "{rejects}");
}

#[test]
fn a_record_that_never_ends_fails_the_file_instead_of_filling_memory() {
    let work = tempfile::tempdir().unwrap();
    let input = work.path().join("unclosed.csv");
    let mut data = b"event_time,order_id,sku,quantity,unit_price\n2026-11-22T13:00:00Z,A1,S1,1,1.00\n".to_vec();
    data.extend_from_slice(b"2026-11-22T13:00:00Z,\"A2 never closes,S1,1,1.00\n");
    data.extend(std::iter::repeat_n(b"2026-11-22T13:00:00Z,A3,S1,1,1.00\n".as_slice(), 120_000).flatten());
    fs::write(&input, &data).unwrap();
    for stages in ["threads", "inline"] {
        let out = work.path().join(stages);
        let (code, summary, output) = run(&input, &out, &["--max-record-mib", "1", "--stages", stages]);
        assert_eq!(code, 2, "{stages}: {}", String::from_utf8_lossy(&output.stderr));
        assert_eq!(summary["error"]["kind"], "corrupt_input");
        let message = summary["error"]["message"].as_str().unwrap();
        assert!(message.contains("line 3") && message.contains("unclosed quote"), "{stages}: {message}");
        // The same file with the default limit (32 MiB > 4 MiB file) treats the rest as one rejected record.
        let (code, summary, _) = run(&input, &out.join("default-limit"), &["--stages", stages]);
        assert_eq!(code, 0, "{stages}");
        assert_eq!(summary["rows"], serde_json::json!({"read": 2, "valid": 1, "rejected": 1}), "{stages}");
    }
}

#[test]
fn rejects_beyond_the_temporary_space_fail_the_file_clearly() {
    let work = tempfile::tempdir().unwrap();
    let input = work.path().join("dirty.csv");
    let gen = bin()
        .args(["generate", "--rows", "40000", "--seed", "4", "--dirty", "1", "--output"])
        .arg(&input)
        .output()
        .unwrap();
    assert!(gen.status.success());
    let out = work.path().join("out");
    let (code, summary, output) = run(&input, &out, &["--max-rejects-mib", "1"]);
    assert_eq!(code, 2, "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(summary["error"]["kind"], "rejects_too_large");
    let message = summary["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("more than 1 MiB of rejects by line") && message.contains("--max-rejects-mib"),
        "{message}"
    );
    assert_eq!(summary["outputs"], serde_json::json!([]));
    assert!(!tree(&out).keys().any(|k| k.starts_with("rejects/") || k.ends_with(".partial")), "nothing half-kept");
    // With the default limit the same file keeps every rejected row.
    let (code, summary, _) = run(&input, &work.path().join("default"), &[]);
    assert_eq!(code, 0);
    assert_eq!(summary["rows"]["rejected"], 40000);
}

#[test]
fn reject_lines_count_every_line_ending_and_blank_line() {
    for (file, want) in [("crlf-rejects.csv", vec!["3", "5", "8"]), ("cr-only.csv", vec!["2", "4"])] {
        let out = tempfile::tempdir().unwrap();
        let (_, summary, _) = run(&fixture(&format!("fixtures/bad/{file}")), out.path(), &[]);
        let path = summary["rejects_uri"].as_str().unwrap().strip_prefix("file://").unwrap().to_string();
        let mut rdr = csv::Reader::from_path(path).unwrap();
        let lines: Vec<String> = rdr.records().map(|r| r.unwrap()[0].to_string()).collect();
        assert_eq!(lines, want, "case {file}");
    }
}

#[test]
fn generated_dirty_file_gives_the_reported_reject_counts() {
    let work = tempfile::tempdir().unwrap();
    let input = work.path().join("gen.csv.gz");
    let gen = bin()
        .args(["generate", "--rows", "30000", "--seed", "3", "--dirty", "0.01", "--output"])
        .arg(&input)
        .output()
        .unwrap();
    assert!(gen.status.success(), "{}", String::from_utf8_lossy(&gen.stderr));
    let report: Value = serde_json::from_slice(&gen.stdout).unwrap();
    assert_eq!(report["rejected"], 300);

    let (code, summary, _) = run(&input, &work.path().join("out"), &[]);
    assert_eq!(code, 0);
    assert_eq!(summary["rows"]["read"], report["rows"]);
    assert_eq!(summary["rows"]["valid"], report["valid"]);
    assert_eq!(summary["rows"]["rejected"], report["rejected"]);
    assert_eq!(summary["rejects_by_reason"], report["rejects_by_reason"]);
    assert_eq!(summary["ignored_columns"], serde_json::json!(["payment_method"]));
    assert_eq!(summary["hours"], serde_json::json!(["2026-11-22T12:00:00Z", "2026-11-22T13:00:00Z"]));
}

#[test]
fn many_small_chunks_and_either_stage_mode_give_the_same_tables_as_one_chunk() {
    let work = tempfile::tempdir().unwrap();
    let input = work.path().join("gen.csv");
    let gen = bin()
        .args(["generate", "--rows", "20000", "--seed", "9", "--dirty", "0.002", "--output"])
        .arg(&input)
        .output()
        .unwrap();
    assert!(gen.status.success());
    let (_, one, _) = run(&input, &work.path().join("one"), &["--chunk-rows", "1000000", "--stages", "threads"]);
    let a = parquet_by_partition(&work.path().join("one"));
    assert_eq!(a.len(), 15);
    let rejects =
        |dir: &str| tree(&work.path().join(dir)).into_iter().filter(|(k, _)| k.contains("rejects")).collect::<Vec<_>>();
    for (dir, args) in [
        ("many-threads", ["--chunk-rows", "97", "--stages", "threads"]),
        ("many-inline", ["--chunk-rows", "97", "--stages", "inline"]),
        ("one-inline", ["--chunk-rows", "1000000", "--stages", "inline"]),
    ] {
        let (code, summary, _) = run(&input, &work.path().join(dir), &args);
        assert_eq!(code, 0, "{dir}");
        assert_eq!(one["totals"], summary["totals"], "{dir}");
        assert_eq!(one["rows"], summary["rows"], "{dir}");
        assert_eq!(a, parquet_by_partition(&work.path().join(dir)), "{dir}: not a single byte of the tables changes");
        assert_eq!(rejects("one"), rejects(dir), "{dir}: the same rejects");
    }
    // Auto picks inline on one CPU and for a Lambda with one vCPU's worth of memory.
    let (_, auto, _) = run(&input, &work.path().join("auto"), &["--stages", "auto"]);
    assert_eq!(one["totals"], auto["totals"]);
}

#[test]
fn logs_on_a_pipe_have_no_colour_escapes() {
    let out = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_hourly-insights"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("NO_COLOR")
        .env("RUST_LOG", "info")
        .arg("run")
        .arg(FIXTURE)
        .arg("--out")
        .arg(out.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("run finished"), "{stderr}");
    assert!(!stderr.contains('\u{1b}'), "no ANSI escapes in a log written to a pipe: {stderr:?}");
}

#[test]
fn cli_errors_and_help() {
    let out = tempfile::tempdir().unwrap();
    let missing = bin().args(["run", "no/such/file.csv", "--out"]).arg(out.path()).output().unwrap();
    assert_eq!(missing.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert_eq!(stderr.lines().count(), 1, "one-line error: {stderr}");
    assert!(stderr.starts_with("error: cannot open input no/such/file.csv"), "{stderr}");

    let help = bin().args(["run", "--help"]).output().unwrap();
    let text = String::from_utf8_lossy(&help.stdout);
    for needle in ["Required columns", "unit_price", "field_count", "summaries/<name>.json", "Exit codes"] {
        assert!(text.contains(needle), "run --help mentions {needle}: {text}");
    }
    let help = bin().args(["generate", "--help"]).output().unwrap();
    assert!(String::from_utf8_lossy(&help.stdout).contains("--dirty"));

    let bad_hour = bin().args(["generate", "--rows", "1", "--hour", "tomorrow"]).output().unwrap();
    assert_eq!(bad_hour.status.code(), Some(1));
}

/// Every shape of `generate --shape` runs, in both stage modes, with the generator's counts, and its hourly
/// headline numbers equal an independent computation over the file (sets of the raw ids, sums of the
/// parsed fields). The `spread` shape has orders spanning three hours, whose middle hour holds most ids:
/// building its partial states once took the id hashes away from the later hour (a panic).
#[test]
fn every_shape_runs_with_the_generators_counts_and_exact_hours() {
    use hourly_insights::contract::parse::{event_time_micros, format_rfc3339, price_cents, quantity};
    use std::collections::{BTreeMap, HashSet};
    for shape in ["numbered", "uuid", "spread"] {
        let work = tempfile::tempdir().unwrap();
        let input = work.path().join(format!("{shape}.csv"));
        let gen = bin()
            .args(["generate", "--rows", "40000", "--seed", "4", "--shape", shape, "--output"])
            .arg(&input)
            .output()
            .unwrap();
        assert!(gen.status.success(), "{}", String::from_utf8_lossy(&gen.stderr));
        let report: Value = serde_json::from_slice(&gen.stdout).unwrap();

        // The reference: per hour, distinct orders and customers, units and revenue in cents.
        type Hour = (HashSet<String>, HashSet<String>, i64, i128);
        let mut hours: BTreeMap<i64, Hour> = BTreeMap::new();
        for record in csv::Reader::from_path(&input).unwrap().into_byte_records() {
            let r = record.unwrap();
            let hour = event_time_micros(r[0].trim_ascii()).unwrap().div_euclid(3_600_000_000) * 3_600_000_000;
            let h = hours.entry(hour).or_default();
            h.0.insert(String::from_utf8(r[1].trim_ascii().to_vec()).unwrap());
            if !r[2].is_empty() {
                h.1.insert(String::from_utf8(r[2].to_vec()).unwrap());
            }
            let q = quantity(&r[5]).unwrap();
            h.2 += q;
            h.3 += i128::from(q) * price_cents(&r[6]).unwrap();
        }
        if shape == "spread" {
            assert_eq!(hours.len(), 3, "orders spanning three hours");
        }
        for stages in ["inline", "threads"] {
            let out = work.path().join(format!("out-{stages}"));
            let (code, summary, output) = run(&input, &out, &["--stages", stages]);
            assert_eq!(code, 0, "{shape} {stages}: {}", String::from_utf8_lossy(&output.stderr));
            assert_eq!(summary["rows"]["valid"], report["valid"], "{shape}");
            assert_eq!(summary["rows"]["rejected"], 0, "{shape}");
            for (&hour, (orders, customers, units, revenue)) in &hours {
                let (dt, hh) = (&format_rfc3339(hour)[..10], &format_rfc3339(hour)[11..13]);
                let file = out.join(format!("hourly_kpis/dt={dt}/hour={hh}/data.parquet"));
                let row = &reference::parquet_rows(&fs::read(&file).unwrap())[0];
                let cells: Vec<&str> = row.split('|').collect();
                let want =
                    [orders.len().to_string(), units.to_string(), format_cents(*revenue), customers.len().to_string()];
                assert_eq!(
                    [cells[1], cells[3], cells[4], cells[5]],
                    want.each_ref().map(String::as_str),
                    "{shape} {stages} {dt}T{hh}"
                );
            }
            // A day of several hours of one run is summed up from the run's own groups; a rebuild merges
            // the day from its stored hour states: the same bytes (the spread shape's day has three hours).
            let days = |out: &Path| -> BTreeMap<String, Vec<u8>> {
                parquet_by_partition(out).into_iter().filter(|(k, _)| k.starts_with("daily_")).collect()
            };
            let before = days(&out);
            assert_eq!(before.len(), 5, "{shape} {stages}: one file per daily table");
            let rebuilt = bin().arg("rebuild").arg("--out").arg(&out).output().unwrap();
            assert!(rebuilt.status.success(), "{}", String::from_utf8_lossy(&rebuilt.stderr));
            assert_eq!(days(&out), before, "{shape} {stages}: the day from the run's groups and from the states");
        }
    }
}
