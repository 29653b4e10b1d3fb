//! The config file (issue 23, docs/config.md) end to end, through the real binary only: no library module is
//! imported (the library's module layout may change), outputs are read back with polars and serde_json.
//!
//! - the default (no config, or `config show` written out and passed back) gives the very bytes the program
//!   wrote before issue 23 (fixtures/golden/fixture-outputs.txt, made once with the pre-issue-23 binary);
//! - a shop's own export (fixtures/config/shop.toml) gives tables equal, cell by cell, to an independent
//!   computation over the CSV;
//! - a European export (semicolons, decimal commas, Windows-1252, day-first times) gives the same tables as
//!   its UTF-8 twin;
//! - `config check`, `catalog --config` and `invoke` with `HOURLY_INSIGHTS_CONFIG`.

#[path = "support/s3_server.rs"]
mod s3_server;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use polars::prelude::*;
use serde_json::Value;

const FIXTURE: &str = "fixtures/orders-2026-11-22T13.csv";
const SHOP: &str = "fixtures/config/shop.toml";
const GOLDEN: &str = "fixtures/golden/fixture-outputs.txt";
const HOUR: i64 = 3_600_000_000;
const DAY: i64 = 24 * HOUR;

fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hourly-insights"));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR")).env("RUST_LOG", "warn").env_remove("HOURLY_INSIGHTS_CONFIG");
    cmd
}

fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Runs `hourly-insights run INPUT --out OUT [extra…]` and checks the summary's invariant; returns the
/// exit code and the printed summary.
fn run(input: &Path, out: &Path, extra: &[&str]) -> (i32, Value) {
    run_with(bin(), input, out, extra)
}

fn run_with(mut cmd: Command, input: &Path, out: &Path, extra: &[&str]) -> (i32, Value) {
    let output = cmd.arg("run").arg(input).arg("--out").arg(out).args(extra).output().unwrap();
    let summary: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("summary JSON on stdout ({e}): {}", stderr(&output)));
    assert_invariant(&summary);
    (output.status.code().unwrap(), summary)
}

fn assert_invariant(summary: &Value) {
    let rows = &summary["rows"];
    let (read, valid, rejected) = (rows["read"].as_u64(), rows["valid"].as_u64(), rows["rejected"].as_u64());
    assert_eq!(read.unwrap(), valid.unwrap() + rejected.unwrap(), "rows.read == valid + rejected: {rows}");
    let by_reason: u64 = summary["rejects_by_reason"].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(by_reason, rejected.unwrap(), "rejects_by_reason adds up to rows.rejected");
}

/// `generate --rows N --seed S --dirty D [extra…] --output PATH`; returns the generator's JSON report.
fn generate(path: &Path, rows: u32, seed: u32, dirty: &str, extra: &[&str]) -> Value {
    let output = bin()
        .args(["generate", "--rows", &rows.to_string(), "--seed", &seed.to_string(), "--dirty", dirty])
        .args(extra)
        .arg("--output")
        .arg(path)
        .output()
        .unwrap();
    assert!(output.status.success(), "generate: {}", stderr(&output));
    serde_json::from_slice(&output.stdout).expect("the generator's report on stdout")
}

/// Every file under `dir`: relative path (`/`-separated) -> bytes.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/");
                out.insert(rel, fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    if dir.exists() {
        walk(dir, dir, &mut out);
    }
    out
}

// ---------------------------------------------------------------------------------------------------------
// 1. Golden default
// ---------------------------------------------------------------------------------------------------------

/// A JSON value as text with every object's keys sorted (independent of serde_json's `preserve_order`).
fn canonical_json(v: &Value) -> String {
    match v {
        Value::Object(map) => {
            let fields: BTreeMap<&String, String> = map.iter().map(|(k, v)| (k, canonical_json(v))).collect();
            let body: Vec<String> =
                fields.into_iter().map(|(k, v)| format!("{}:{v}", Value::String(k.clone()))).collect();
            format!("{{{}}}", body.join(","))
        }
        Value::Array(items) => format!("[{}]", items.iter().map(canonical_json).collect::<Vec<_>>().join(",")),
        other => other.to_string(),
    }
}

/// The manifest of an output directory written by `run SOURCE --out OUT`: one line per file,
/// `path  xxh3-128  bytes`, sorted by path. Made independent of where the run happened: the source's output
/// name (which hashes its URI) is `NAME`, `file://OUT` and `file://SOURCE` stand for the output directory and
/// the source, and the summary loses the fields that vary per run (`duration_ms`, `request_id`,
/// `estimated_cost_usd`). `.lock` (an empty lock file) is left out. Parquet and partial state files are
/// hashed as they are: they name neither the source nor the output directory.
fn manifest(out: &Path) -> String {
    let files = tree(out);
    let summary_path = files.keys().find(|k| k.starts_with("summaries/")).expect("a summary").clone();
    let name = summary_path.strip_prefix("summaries/").unwrap().strip_suffix(".json").unwrap().to_string();
    let summary: Value = serde_json::from_slice(&files[&summary_path]).unwrap();
    let source = summary["source"]["uri"].as_str().unwrap().to_string();
    // The program names its output directory by its canonical path (a temporary directory may be a symlink).
    let out_uri = format!("file://{}", fs::canonicalize(out).unwrap().display());
    // The reports write `/` in attributes as `&#x2f;`: the paths are replaced in that form too.
    let escaped = |uri: &str| uri.replace('/', "&#x2f;");
    let normalise = |text: &str| {
        text.replace(&source, "file://SOURCE")
            .replace(&out_uri, "file://OUT")
            .replace(&escaped(&source), "file://SOURCE")
            .replace(&escaped(&out_uri), "file://OUT")
            .replace(&name, "NAME")
    };
    let mut lines = Vec::new();
    for (path, bytes) in &files {
        if path == ".lock" {
            continue;
        }
        let bytes = if path == &summary_path {
            let mut v: Value = serde_json::from_slice(bytes).unwrap();
            // Timings, and the storage requests (a count of the run's I/O, which a change in how it reads
            // may lower: session 20's reports stopped fetching the tables the run had just written).
            for field in ["duration_ms", "request_id", "estimated_cost_usd", "requests"] {
                v.as_object_mut().unwrap().remove(field).unwrap_or_else(|| panic!("summary has {field}"));
            }
            normalise(&canonical_json(&v)).into_bytes()
        } else if path.ends_with(".parquet") || path.ends_with(".partial") {
            bytes.clone()
        } else {
            normalise(std::str::from_utf8(bytes).unwrap_or_else(|_| panic!("{path} is text"))).into_bytes()
        };
        let hash = xxhash_rust::xxh3::xxh3_128(&bytes);
        lines.push(format!("{}  {hash:032x}  {}", path.replace(&name, "NAME"), bytes.len()));
    }
    lines.join("\n") + "\n"
}

/// The manifest of `run FIXTURE` by the binary `exe` with `extra` arguments.
fn fixture_manifest(exe: &Path, extra: &[&str]) -> String {
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    let mut cmd = Command::new(exe);
    cmd.current_dir(env!("CARGO_MANIFEST_DIR")).env("RUST_LOG", "warn").env_remove("HOURLY_INSIGHTS_CONFIG");
    let (code, _) = run_with(cmd, &fixture(FIXTURE), &out, extra);
    assert_eq!(code, 0);
    manifest(&out)
}

/// Writes fixtures/golden/fixture-outputs.txt with the binary at `HI_GOLDEN_BIN` (the pre-issue-23 build,
/// commit 06e9d13): `HI_GOLDEN_BIN=/path/to/old/hourly-insights cargo nextest run --test config --run-ignored
/// only write_golden_manifest`.
#[test]
#[ignore = "writes the golden manifest; run by hand with HI_GOLDEN_BIN set to the pre-issue-23 binary"]
fn write_golden_manifest() {
    let exe = std::env::var("HI_GOLDEN_BIN").expect("HI_GOLDEN_BIN: the pre-issue-23 binary");
    let text = fixture_manifest(Path::new(&exe), &[]);
    let header =
        "# `run fixtures/orders-2026-11-22T13.csv` by the pre-issue-23 binary (06e9d13): path  xxh3-128  bytes\n\
                  # (normalised as tests/config.rs `manifest` says; regenerate with its `write_golden_manifest`)\n";
    fs::create_dir_all(fixture("fixtures/golden")).unwrap();
    fs::write(fixture(GOLDEN), format!("{header}{text}")).unwrap();
}

fn golden() -> String {
    let text = fs::read_to_string(fixture(GOLDEN)).unwrap();
    text.lines().filter(|l| !l.starts_with('#')).map(|l| format!("{l}\n")).collect()
}

/// The golden manifest without its state files (`_state/`): states changed format on purpose (format 2
/// records each table's layout), and the manifests name them by digest. tests/merge.rs checks that this
/// version's states hold what the golden run's did (`states_of_the_previous_format_are_read_and_merged_alike`,
/// against those very states, kept in fixtures/states/).
fn without_states(manifest: &str) -> String {
    manifest.lines().filter(|l| !l.starts_with("_state/")).map(|l| format!("{l}\n")).collect()
}

/// The format-1 states kept in fixtures/states/ are the golden run's very states (its manifest's hash and
/// size of each).
#[test]
fn the_kept_format_1_states_are_the_golden_runs() {
    let golden = golden();
    for hh in ["12", "13"] {
        let bytes = fs::read(fixture(&format!("fixtures/states/v1-orders-2026-11-22T13-hour{hh}.partial"))).unwrap();
        let line = format!("{:032x}  {}", xxhash_rust::xxh3::xxh3_128(&bytes), bytes.len());
        let prefix = format!("_state/dt=2026-11-22/hour={hh}/NAME-");
        assert!(golden.lines().any(|l| l.starts_with(&prefix) && l.ends_with(&line)), "{hh}:00 state {line}");
    }
}

#[test]
fn without_config_the_outputs_are_the_pre_issue_23_bytes() {
    let want = without_states(&golden());
    assert!(want.lines().filter(|l| l.contains(".parquet ")).count() >= 15, "15 tables in the manifest");
    assert!(want.contains("rejects/NAME.csv  ") && want.contains("summaries/NAME.json  "));
    let exe = Path::new(env!("CARGO_BIN_EXE_hourly-insights"));
    assert_eq!(without_states(&fixture_manifest(exe, &[])), want, "run without a config");

    // The defaults written out by `config show` and read back are the defaults.
    let work = tempfile::tempdir().unwrap();
    let show = bin().args(["config", "show"]).output().unwrap();
    assert!(show.status.success(), "{}", stderr(&show));
    let defaults = work.path().join("defaults.toml");
    fs::write(&defaults, &show.stdout).unwrap();
    let shown = fixture_manifest(exe, &["--config", defaults.to_str().unwrap()]);
    assert_eq!(without_states(&shown), want, "run --config <config show>");
    assert_eq!(shown, fixture_manifest(exe, &[]), "states included");
    // An empty file is the default settings too (docs/config.md).
    let empty = work.path().join("empty.toml");
    fs::write(&empty, "").unwrap();
    assert_eq!(
        without_states(&fixture_manifest(exe, &["--config", empty.to_str().unwrap()])),
        want,
        "run --config <empty file>"
    );
}

#[test]
fn config_show_of_a_file_read_back_gives_the_same_outputs() {
    let work = tempfile::tempdir().unwrap();
    let input = work.path().join("shop.csv");
    generate(&input, 2000, 5, "0.02", &["--config", SHOP]);
    let show = bin().args(["config", "show", SHOP]).output().unwrap();
    assert!(show.status.success(), "{}", stderr(&show));
    let shown = work.path().join("shown.toml");
    fs::write(&shown, &show.stdout).unwrap();
    let text = String::from_utf8(show.stdout).unwrap();
    assert!(text.contains("format = \"unix_millis\"") && text.contains("top = 5"), "{text}");

    let (a, b) = (work.path().join("a"), work.path().join("b"));
    let (code_a, sa) = run(&input, &a, &["--config", SHOP]);
    let (code_b, sb) = run(&input, &b, &["--config", shown.to_str().unwrap()]);
    assert_eq!((code_a, code_b), (0, 0));
    assert_eq!(sa["rows"], sb["rows"]);
    assert!(manifest(&a).contains("store_sales/dt=2026-11-22/hour=13/data.parquet"));
    assert_eq!(manifest(&a), manifest(&b), "the shown config is the same config, to the byte");
}

#[test]
fn a_tables_keys_changed_within_a_day_fail_clearly_until_the_days_exports_run_again() {
    let work = tempfile::tempdir().unwrap();
    let (a, b, out) = (work.path().join("a.csv"), work.path().join("b.csv"), work.path().join("out"));
    generate(&a, 1500, 5, "0", &["--config", SHOP]);
    generate(&b, 1500, 6, "0", &["--config", SHOP]);
    // The same config with one more key for store_sales.
    let changed = work.path().join("changed.toml");
    let text = fs::read_to_string(fixture(SHOP)).unwrap();
    assert!(text.contains("keys = [\"store\"]"));
    fs::write(&changed, text.replace("keys = [\"store\"]", "keys = [\"store\", \"channel\"]")).unwrap();
    let changed = changed.to_str().unwrap();

    assert_eq!(run(&a, &out, &["--config", SHOP]).0, 0);
    // The day now has a state of the old layout: merging it would have panicked (an index out of bounds).
    let second = bin().arg("run").arg(&b).arg("--out").arg(&out).args(["--config", changed]).output().unwrap();
    let err = stderr(&second);
    assert_eq!(second.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        err.contains(
            "`store_sales` was written with keys (store), counting orders, customers where the config's has \
                      keys (store, channel)"
        ),
        "{err}"
    );
    assert!(err.contains("run the day's earlier exports again with this config"), "{err}");
    // What the message says mends it: the earlier export again with the new config, then the other.
    assert_eq!(run(&a, &out, &["--config", changed]).0, 0);
    let (code, summary) = run(&b, &out, &["--config", changed]);
    assert_eq!(code, 0);
    assert_eq!(summary["status"], "succeeded");
    assert!(out.join("daily_store_sales/dt=2026-11-22/data.parquet").exists());
}

/// The same with as many keys but another one (`store_sales` by `channel` instead of `store`), and with a
/// distinct count added (`top_products_by_store` counting customers): a state records its tables' layouts,
/// so such a day fails clearly too. (Before states stored layouts, these merged silently: the old groups'
/// store values under channel, and customer counts from sets that were never gathered.) A count dropped
/// merges: the sets it had are not read.
#[test]
fn a_tables_other_keys_or_counts_within_a_day_fail_clearly() {
    let store_sales =
        "keys = [\"store\"]\nmetrics = [\"orders\", \"order_lines\", \"units\", \"revenue\", \"customers\"]";
    let by_store = "keys = [\"store\", \"sku\"]\nmetrics = [\"orders\", \"units\", \"revenue\"]";
    let text = fs::read_to_string(fixture(SHOP)).unwrap();
    assert!(text.contains(store_sales) && text.contains(by_store));
    let cases = [
        (
            text.replace(store_sales, &store_sales.replace("\"store\"]", "\"channel\"]")),
            Some(
                "`store_sales` was written with keys (store), counting orders, customers where the config's has keys \
                 (channel), counting orders, customers",
            ),
        ),
        (
            text.replace(by_store, &by_store.replace("\"revenue\"]", "\"revenue\", \"customers\"]")),
            Some(
                "`top_products_by_store` was written with keys (store, sku), counting orders where the config's has \
                 keys (store, sku), counting orders, customers",
            ),
        ),
        (text.replace(store_sales, &store_sales.replace(", \"customers\"]", "]")), None),
    ];
    for (changed_text, says) in cases {
        let work = tempfile::tempdir().unwrap();
        let (a, b, out) = (work.path().join("a.csv"), work.path().join("b.csv"), work.path().join("out"));
        generate(&a, 800, 5, "0", &["--config", SHOP]);
        generate(&b, 800, 6, "0", &["--config", SHOP]);
        let changed = work.path().join("changed.toml");
        fs::write(&changed, changed_text).unwrap();
        let changed = changed.to_str().unwrap();
        assert_eq!(run(&a, &out, &["--config", SHOP]).0, 0);
        match says {
            Some(says) => {
                let second =
                    bin().arg("run").arg(&b).arg("--out").arg(&out).args(["--config", changed]).output().unwrap();
                let err = stderr(&second);
                assert_eq!(second.status.code(), Some(1), "{err}");
                assert!(err.contains(says), "{err}");
                assert!(err.contains("run the day's earlier exports again with this config"), "{err}");
            }
            None => {
                let (code, summary) = run(&b, &out, &["--config", changed]);
                assert_eq!(code, 0, "a dropped count merges: {summary}");
                assert_eq!(summary["status"], "succeeded");
                assert!(summary["partials_read"].as_u64().unwrap() >= 1, "a's states were merged: {summary}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Reading the tables back
// ---------------------------------------------------------------------------------------------------------

/// (year, month, day) of a day number (days since 1970-01-01; Howard Hinnant's algorithm).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// The partition path of a period: `dt=YYYY-MM-DD/hour=HH` for an hour start (µs), `dt=YYYY-MM-DD` for a day.
fn partition(start_micros: i64, daily: bool) -> String {
    let (y, m, d) = civil(start_micros.div_euclid(DAY));
    let dt = format!("dt={y:04}-{m:02}-{d:02}");
    if daily {
        dt
    } else {
        format!("{dt}/hour={:02}", start_micros.rem_euclid(DAY) / HOUR)
    }
}

/// A Parquet file's column names and types, and its rows as cells: a timestamp as µs, a date as µs of its
/// midnight, a decimal as its integer cents, counts and text as written.
fn cells(bytes: &[u8]) -> (Vec<(String, DataType)>, Vec<Vec<String>>) {
    let df = ParquetReader::new(std::io::Cursor::new(bytes)).finish().unwrap();
    let schema = df.schema().iter().map(|(n, t)| (n.to_string(), t.clone())).collect();
    let rows = (0..df.height())
        .map(|i| {
            df.columns()
                .iter()
                .map(|c| match c.dtype() {
                    DataType::Datetime(TimeUnit::Microseconds, _) => {
                        c.datetime().unwrap().physical().get(i).unwrap().to_string()
                    }
                    DataType::Date => (i64::from(c.date().unwrap().physical().get(i).unwrap()) * DAY).to_string(),
                    DataType::Decimal(_, _) => c.decimal().unwrap().physical().get(i).unwrap().to_string(),
                    DataType::Int64 => c.i64().unwrap().get(i).unwrap().to_string(),
                    DataType::String => c.str().unwrap().get(i).unwrap().to_string(),
                    other => panic!("unexpected column type {other:?}"),
                })
                .collect()
        })
        .collect();
    (schema, rows)
}

/// Every published Parquet file of an output directory: `table/partition` -> (schema, rows).
type Published = BTreeMap<String, (Vec<(String, DataType)>, Vec<Vec<String>>)>;

fn published(out: &Path) -> Published {
    tree(out)
        .into_iter()
        .filter(|(k, _)| k.ends_with("/data.parquet"))
        .map(|(k, v)| (k.strip_suffix("/data.parquet").unwrap().to_string(), cells(&v)))
        .collect()
}

// ---------------------------------------------------------------------------------------------------------
// 2. A shop's own export, cell by cell
// ---------------------------------------------------------------------------------------------------------

/// One valid order line, as the reference reads it.
struct Line {
    hour: i64,
    order: String,
    customer: String,
    qty: i64,
    cents: i128,
    /// Dimension name -> normalised value.
    dims: BTreeMap<&'static str, String>,
}

/// A table as docs/config.md defines it.
struct Spec {
    name: &'static str,
    keys: &'static [&'static str],
    metrics: &'static [&'static str],
    top: Option<usize>,
}

impl Spec {
    fn daily(&self) -> String {
        format!("daily_{}", self.name.strip_prefix("hourly_").unwrap_or(self.name))
    }

    fn columns(&self, daily: bool) -> Vec<(String, DataType)> {
        let mut cols = vec![if daily {
            ("day".to_string(), DataType::Date)
        } else {
            ("hour_start".to_string(), DataType::Datetime(TimeUnit::Microseconds, Some(TimeZone::UTC)))
        }];
        if self.top.is_some() {
            cols.push(("rank".into(), DataType::Int64));
        }
        cols.extend(self.keys.iter().map(|k| (k.to_string(), DataType::String)));
        cols.extend(self.metrics.iter().map(|m| {
            let t =
                if matches!(*m, "revenue" | "avg_order_value") { DataType::Decimal(18, 2) } else { DataType::Int64 };
            (m.to_string(), t)
        }));
        cols
    }
}

#[derive(Default)]
struct Acc<'a> {
    orders: HashSet<&'a str>,
    customers: HashSet<&'a str>,
    products: HashSet<&'a str>,
    lines: i64,
    units: i64,
    revenue: i128,
}

/// Revenue / orders in cents, rounded half away from zero (revenue is never negative).
fn avg_cents(revenue: i128, orders: i128) -> i128 {
    (2 * revenue + orders) / (2 * orders)
}

/// The expected rows of `spec` over `lines`, per period start (hour or day, µs), in output order.
fn expected(spec: &Spec, lines: &[Line], daily: bool) -> BTreeMap<i64, Vec<Vec<String>>> {
    let mut groups: BTreeMap<i64, BTreeMap<Vec<String>, Acc>> = BTreeMap::new();
    for l in lines {
        let start = if daily { l.hour.div_euclid(DAY) * DAY } else { l.hour };
        let keys = spec.keys.iter().map(|k| l.dims[k].clone()).collect();
        let acc = groups.entry(start).or_default().entry(keys).or_default();
        acc.orders.insert(&l.order);
        if !l.customer.is_empty() {
            acc.customers.insert(&l.customer);
        }
        acc.products.insert(&l.dims["sku"]);
        acc.lines += 1;
        acc.units += l.qty;
        acc.revenue += i128::from(l.qty) * l.cents;
    }
    groups
        .into_iter()
        .map(|(start, groups)| {
            let mut rows: Vec<(Vec<String>, Acc)> = groups.into_iter().collect(); // keys ascending
            if let Some(n) = spec.top {
                rows.sort_by(|a, b| b.1.revenue.cmp(&a.1.revenue).then_with(|| a.0.cmp(&b.0)));
                rows.truncate(n);
            }
            let rows = rows
                .into_iter()
                .enumerate()
                .map(|(i, (keys, acc))| {
                    let mut row = vec![start.to_string()];
                    if spec.top.is_some() {
                        row.push((i + 1).to_string());
                    }
                    row.extend(keys);
                    for m in spec.metrics {
                        row.push(match *m {
                            "orders" => acc.orders.len().to_string(),
                            "order_lines" => acc.lines.to_string(),
                            "units" => acc.units.to_string(),
                            "revenue" => acc.revenue.to_string(),
                            "customers" => acc.customers.len().to_string(),
                            "products" => acc.products.len().to_string(),
                            "avg_order_value" => avg_cents(acc.revenue, acc.orders.len() as i128).to_string(),
                            other => panic!("metric {other}"),
                        });
                    }
                    row
                })
                .collect();
            (start, rows)
        })
        .collect()
}

/// Compares every hourly and daily file of `spec` with the reference: the same partitions, schema and rows.
fn assert_table(published: &Published, spec: &Spec, lines: &[Line]) {
    for daily in [false, true] {
        let table = if daily { spec.daily() } else { spec.name.to_string() };
        let want: BTreeMap<String, Vec<Vec<String>>> = expected(spec, lines, daily)
            .into_iter()
            .map(|(start, rows)| (format!("{table}/{}", partition(start, daily)), rows))
            .collect();
        let got: BTreeMap<String, Vec<Vec<String>>> = published
            .iter()
            .filter(|(k, _)| k.starts_with(&format!("{table}/")))
            .map(|(k, (schema, rows))| {
                assert_eq!(*schema, spec.columns(daily), "schema of {k}");
                (k.clone(), rows.clone())
            })
            .collect();
        assert_eq!(got.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>(), "partitions of {table}");
        for (k, rows) in &want {
            assert!(!rows.is_empty());
            assert_eq!(got[k].len(), rows.len(), "row count of {k}");
            for (i, (g, w)) in got[k].iter().zip(rows).enumerate() {
                assert_eq!(g, w, "{k} row {i} (columns {:?})", spec.columns(daily));
            }
        }
    }
}

/// Unix milliseconds (`[-]digits`, trimmed) as µs.
fn millis(s: &str) -> Option<i64> {
    let (neg, digits) = s.strip_prefix('-').map_or((false, s), |d| (true, d));
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits = digits.trim_start_matches('0');
    if digits.len() > 15 {
        return None;
    }
    let v: i64 = if digits.is_empty() { 0 } else { digits.parse().unwrap() };
    let micros = if neg { -v } else { v } * 1000;
    // Years 0000..=9999.
    (-62_167_219_200..=253_402_300_799).contains(&micros.div_euclid(1_000_000)).then_some(micros)
}

/// A quantity: digits only, 0..=1,000,000.
fn qty(s: &str) -> Option<i64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let s = s.trim_start_matches('0');
    if s.len() > 7 {
        return None;
    }
    let v = if s.is_empty() { 0 } else { s.parse().unwrap() };
    (v <= 1_000_000).then_some(v)
}

/// A price in cents: `digits[<sep>digits]`, at most two significant fraction digits, at most 1e12.
fn price(s: &str, sep: char) -> Option<i128> {
    let (int, frac) = match s.split_once(sep) {
        Some((i, f)) => (i, Some(f)),
        None => (s, None),
    };
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let int = int.trim_start_matches('0');
    if int.len() > 13 {
        return None;
    }
    let mut cents = if int.is_empty() { 0 } else { int.parse::<i128>().unwrap() * 100 };
    if let Some(frac) = frac {
        if frac.is_empty() || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let significant = frac.trim_end_matches('0');
        if significant.len() > 2 {
            return None;
        }
        let padded = format!("{significant:0<2}");
        cents += padded.parse::<i128>().unwrap();
    }
    (cents <= 100_000_000_000_000).then_some(cents)
}

/// The shop export read the obvious way: its header, the valid lines and the rejects by reason.
fn read_shop_export(path: &Path) -> (Vec<Line>, BTreeMap<&'static str, u64>, u64) {
    let mut rdr = csv::ReaderBuilder::new().flexible(true).from_path(path).unwrap();
    let header: Vec<String> = rdr.headers().unwrap().iter().map(|h| h.trim().to_lowercase()).collect();
    let col = |names: &[&str]| names.iter().find_map(|n| header.iter().position(|h| h == n));
    let must = |names: &[&str]| col(names).unwrap_or_else(|| panic!("column {names:?} in {header:?}"));
    let (time, order, sku, quantity, unit_price) = (
        must(&["created_at"]),
        must(&["order_number", "order_no"]),
        must(&["product_sku"]),
        must(&["qty"]),
        must(&["price"]),
    );
    let customer = col(&["email"]);
    // (dimension, column, lowercase?)
    let dims: Vec<(&'static str, Option<usize>, bool)> = vec![
        ("channel", col(&["utm_source"]), true),
        ("campaign", col(&["utm_campaign"]), true),
        ("store", col(&["store_id"]), false),
    ];
    let mut lines = Vec::new();
    let mut rejects: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut read = 0;
    for record in rdr.byte_records() {
        let record = record.unwrap();
        read += 1;
        let reason = (|| {
            if record.len() != header.len() {
                return Err("field_count");
            }
            let fields: Vec<&str> = match record.iter().map(std::str::from_utf8).collect::<Result<_, _>>() {
                Ok(f) => f,
                Err(_) => return Err("invalid_utf8"),
            };
            let f = |c: usize| fields[c].trim();
            let micros = millis(f(time)).ok_or("event_time_invalid")?;
            if f(order).is_empty() {
                return Err("order_id_missing");
            }
            if f(sku).is_empty() {
                return Err("sku_missing");
            }
            let q = qty(f(quantity)).ok_or("quantity_invalid")?;
            let cents = price(f(unit_price), '.').ok_or("unit_price_invalid")?;
            let mut values = BTreeMap::new();
            values.insert("sku", f(sku).to_string());
            for &(dim, c, lower) in &dims {
                let v = c.map_or("", f);
                let v = if v.is_empty() {
                    "unknown".to_string()
                } else if lower {
                    v.to_lowercase()
                } else {
                    v.to_string()
                };
                values.insert(dim, v);
            }
            Ok(Line {
                hour: micros.div_euclid(HOUR) * HOUR,
                order: f(order).to_string(),
                customer: customer.map_or("", f).to_string(),
                qty: q,
                cents,
                dims: values,
            })
        })();
        match reason {
            Ok(line) => lines.push(line),
            Err(reason) => *rejects.entry(reason).or_default() += 1,
        }
    }
    (lines, rejects, read)
}

const SHOP_TABLES: &[Spec] = &[
    Spec {
        name: "hourly_kpis",
        keys: &[],
        metrics: &["orders", "order_lines", "units", "revenue", "customers", "avg_order_value"],
        top: None,
    },
    Spec {
        name: "channel_performance",
        keys: &["channel", "campaign"],
        metrics: &["orders", "order_lines", "units", "revenue", "customers"],
        top: None,
    },
    Spec {
        name: "store_sales",
        keys: &["store"],
        metrics: &["orders", "order_lines", "units", "revenue", "customers"],
        top: None,
    },
    Spec {
        name: "top_products_by_store",
        keys: &["store", "sku"],
        metrics: &["orders", "units", "revenue"],
        top: Some(5),
    },
];

#[test]
fn a_shops_own_export_gives_the_independently_computed_tables_cell_by_cell() {
    let work = tempfile::tempdir().unwrap();
    let input = work.path().join("shop.csv");
    let report = generate(&input, 3000, 11, "0.02", &["--config", SHOP]);
    let text = fs::read_to_string(&input).unwrap();
    let head = text.lines().next().unwrap();
    assert!(head.contains("created_at") && head.contains("store_id") && !head.contains("event_time"), "{head}");

    let (lines, rejects, read) = read_shop_export(&input);
    assert_eq!(read, 3000);
    let out = work.path().join("out");
    let (code, summary) = run(&input, &out, &["--config", SHOP]);
    assert_eq!(code, 0, "{summary}");
    assert_eq!(summary["status"], "succeeded");

    // The counts: the generator's report, the reference's, the summary's.
    assert_eq!(summary["rows"]["read"], report["rows"]);
    assert_eq!(summary["rows"]["valid"], report["valid"]);
    assert_eq!(summary["rows"]["rejected"], report["rejected"]);
    assert_eq!(summary["rejects_by_reason"], report["rejects_by_reason"]);
    assert_eq!(summary["rows"]["valid"], lines.len() as u64, "the reference's valid rows");
    assert!(report["rejected"].as_u64().unwrap() > 0);
    for (reason, n) in summary["rejects_by_reason"].as_object().unwrap() {
        assert_eq!(rejects.get(reason.as_str()).copied().unwrap_or(0), n.as_u64().unwrap(), "rejects {reason}");
    }
    let outputs: BTreeSet<&str> =
        summary["outputs"].as_array().unwrap().iter().map(|o| o["table"].as_str().unwrap()).collect();
    let want: BTreeSet<String> = SHOP_TABLES.iter().flat_map(|t| [t.name.to_string(), t.daily()]).collect();
    assert_eq!(outputs, want.iter().map(String::as_str).collect(), "only the config's tables");

    let tables = published(&out);
    let stores: BTreeSet<&str> = lines.iter().map(|l| l.dims["store"].as_str()).collect();
    assert!(stores.len() > 1 && stores.iter().all(|s| s.starts_with("store-") || *s == "unknown"), "{stores:?}");
    for spec in SHOP_TABLES {
        assert_table(&tables, spec, &lines);
    }
    // No default table besides the config's.
    assert!(!tables.keys().any(|k| k.starts_with("category_sales/") || k.starts_with("top_products/")));

    // The order id's other accepted name, written in another case and padded, reads the same tables.
    let renamed = work.path().join("renamed.csv");
    let (first, rest) = text.split_once('\n').unwrap();
    assert!(first.contains(",order_number,"));
    fs::write(&renamed, format!("{}\n{rest}", first.replace(",order_number,", ", Order_No ,"))).unwrap();
    let (code, again) = run(&renamed, &work.path().join("renamed"), &["--config", SHOP]);
    assert_eq!(code, 0, "{again}");
    assert_eq!(again["rows"], summary["rows"]);
    assert_eq!(again["ignored_columns"], summary["ignored_columns"]);
    assert_eq!(published(&work.path().join("renamed")), tables, "order_no is the same column");
}

// ---------------------------------------------------------------------------------------------------------
// 3. The European twin
// ---------------------------------------------------------------------------------------------------------

#[test]
fn a_windows_1252_semicolon_decimal_comma_export_equals_its_utf8_twin() {
    let bytes = fs::read(fixture("fixtures/config/european-windows-1252.csv")).unwrap();
    assert!(std::str::from_utf8(&bytes).is_err(), "the fixture is Windows-1252, not UTF-8");
    assert!(bytes.windows(4).any(|w| w == b"K\xfcch"), "ü as the one byte 0xFC");
    let twin = fs::read_to_string(fixture("fixtures/config/european-utf8.csv")).unwrap();
    assert!(twin.contains("Küche & Bad"));

    let work = tempfile::tempdir().unwrap();
    let (a, b) = (work.path().join("cp1252"), work.path().join("utf8"));
    let (code_a, sa) =
        run(&fixture("fixtures/config/european-windows-1252.csv"), &a, &["--config", "fixtures/config/european.toml"]);
    let (code_b, sb) =
        run(&fixture("fixtures/config/european-utf8.csv"), &b, &["--config", "fixtures/config/european-utf8.toml"]);
    assert_eq!((code_a, code_b), (0, 0), "{sa}\n{sb}");
    assert_eq!(sa["rows"], serde_json::json!({"read": 25, "valid": 19, "rejected": 6}));
    assert_eq!(sa["rows"], sb["rows"]);
    let reasons = serde_json::json!({
        "event_time_invalid": 1, "field_count": 1, "invalid_utf8": 0, "order_id_missing": 1,
        "quantity_invalid": 1, "sku_missing": 1, "unit_price_invalid": 1
    });
    assert_eq!(sa["rejects_by_reason"], reasons);
    assert_eq!(sb["rejects_by_reason"], reasons);
    // Hand-checked: 17 orders, 42 units, 698.82 of revenue over the 19 valid lines.
    assert_eq!(sa["totals"], serde_json::json!({"orders": 17, "units": 42, "revenue": "698.82"}));
    assert_eq!(sa["totals"], sb["totals"]);
    assert_eq!(sa["hours"], serde_json::json!(["2026-11-22T12:00:00Z", "2026-11-22T13:00:00Z"]));

    // Every table file, row by row.
    let (pa, pb) = (published(&a), published(&b));
    assert_eq!(pa.len(), 12, "4 tables x 2 hours, and 4 daily tables: {:?}", pa.keys());
    assert_eq!(pa, pb, "the same tables");

    // The UTF-8 twin written as UTF-16 (little-endian, with its byte order mark, as spreadsheet tools save
    // "Unicode text"), read with `encoding = "utf-16"`: the same tables again.
    let utf16: Vec<u8> = [0xFF, 0xFE].into_iter().chain(twin.encode_utf16().flat_map(u16::to_le_bytes)).collect();
    let (c, c_config) = (work.path().join("utf16.csv"), work.path().join("utf16.toml"));
    fs::write(&c, utf16).unwrap();
    let config = fs::read_to_string(fixture("fixtures/config/european-utf8.toml")).unwrap();
    fs::write(&c_config, format!("[input]\nencoding = \"utf-16\"\n\n{config}")).unwrap();
    let (code_c, sc) = run(&c, &work.path().join("utf16"), &["--config", c_config.to_str().unwrap()]);
    assert_eq!(code_c, 0, "{sc}");
    assert_eq!((&sc["rows"], &sc["totals"]), (&sb["rows"], &sb["totals"]));
    assert_eq!(published(&work.path().join("utf16")), pb, "UTF-16 gives the same tables");

    // The day's report reads the config's hourly_kpis (the default table's rows, without its description).
    let page = fs::read_to_string(b.join("reports/dt=2026-11-22/index.html")).unwrap();
    assert!(page.contains("698.82"), "the day's revenue in its report");

    // The rejected lines are the same lines, for the same reasons.
    let rejects = |dir: &Path| -> Vec<(String, String)> {
        let (_, data) = tree(dir).into_iter().find(|(k, _)| k.starts_with("rejects/")).expect("a rejects file");
        csv::Reader::from_reader(data.as_slice())
            .records()
            .map(|r| r.unwrap())
            .map(|r| (r[0].into(), r[1].into()))
            .collect()
    };
    let want: Vec<(String, String)> = [
        ("7", "event_time_invalid"),
        ("10", "order_id_missing"),
        ("13", "sku_missing"),
        ("15", "quantity_invalid"),
        ("17", "unit_price_invalid"),
        ("22", "field_count"),
    ]
    .iter()
    .map(|(l, r)| (l.to_string(), r.to_string()))
    .collect();
    assert_eq!(rejects(&a), want);
    assert_eq!(rejects(&b), want);
    // The rejected Windows-1252 records are kept decoded (UTF-8), not as replacement characters.
    let (_, data) = tree(&a).into_iter().find(|(k, _)| k.starts_with("rejects/")).unwrap();
    let text = String::from_utf8(data).expect("the rejects file is UTF-8");
    assert!(text.contains("Küche & Bad") && text.contains("Straße & Garten") && !text.contains('\u{fffd}'), "{text}");

    // Non-ASCII values decoded from Windows-1252 and lowercased (category), kept (store); the quoted
    // semicolon is part of its value. Hand-checked: küche & bad has 4 orders, 7 units, 357.95, 2 SKUs.
    let (_, category) = &pa["daily_category_sales/dt=2026-11-22"];
    let day = (20_779 * DAY).to_string(); // 2026-11-22
    assert!(category.contains(&vec![
        day.clone(),
        "küche & bad".into(),
        "4".into(),
        "7".into(),
        "35795".into(),
        "2".into()
    ]));
    for value in ["café", "bücher", "straße & garten"] {
        assert!(category.iter().any(|r| r[1] == value), "{value} in {category:?}");
    }
    let (_, channels) = &pa["daily_channel_performance/dt=2026-11-22"];
    assert!(channels.iter().any(|r| r[1] == "newsletter" && r[2] == "winter; sale"), "{channels:?}");
    let (_, top) = &pa["top_products_by_store/dt=2026-11-22/hour=13"];
    // ART-6 sold for 129.00 in two stores: the tie goes to the keys, ascending (Düsseldorf before München).
    let hour13 = (20_779 * DAY + 13 * HOUR).to_string();
    assert_eq!(top[0], [&hour13, "1", "Filiale Düsseldorf", "ART-6", "1", "1", "12900"]);
    assert_eq!(top[1], [&hour13, "2", "Filiale München", "ART-6", "1", "1", "12900"]);
}

// ---------------------------------------------------------------------------------------------------------
// 4. config check
// ---------------------------------------------------------------------------------------------------------

#[test]
fn config_check_accepts_a_valid_file_and_names_its_tables() {
    let output = bin().args(["config", "check", SHOP]).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text.lines().find(|l| l.contains("valid")).unwrap_or_else(|| panic!("a verdict line: {text}"));
    assert!(line.starts_with(SHOP), "{line}");
    assert!(line.contains("4 tables: hourly_kpis, channel_performance, store_sales, top_products_by_store"), "{line}");
    assert!(line.contains("sku, channel, campaign, country, store"), "{line}");
    for file in ["fixtures/config/european.toml", "fixtures/config/european-utf8.toml"] {
        let output = bin().args(["config", "check", file]).output().unwrap();
        assert_eq!(output.status.code(), Some(0), "{file}: {}", stderr(&output));
    }
}

/// Problems the file has: each on its own line of stderr, with its place and line.
fn check_problems(toml: &str) -> (Option<i32>, String) {
    let work = tempfile::tempdir().unwrap();
    let path = work.path().join("bad.toml");
    fs::write(&path, toml).unwrap();
    let output = bin().args(["config", "check"]).arg(&path).output().unwrap();
    let err = stderr(&output);
    assert!(err.contains(&path.display().to_string()), "names the file: {err}");
    (output.status.code(), err)
}

#[test]
fn config_check_lists_every_problem_with_its_place() {
    let (code, err) = check_problems(
        r#"[input]
delimiter = "ab"

[dimensions]
store = { column = "store_id", case = "keep" }

[[tables]]
name = "store_sales"
keys = ["store"]
metrics = ["orders"]

[[tables]]
name = "by_region"
keys = ["region"]
metrics = ["orders", "revenu"]

[[tables]]
name = "store_sales"
keys = ["store"]
metrics = ["units"]
"#,
    );
    assert_eq!(code, Some(2), "{err}");
    let problems: Vec<&str> = err.lines().filter(|l| l.starts_with("error at ")).collect();
    assert_eq!(problems.len(), 4, "{err}");
    for (place, needle) in [
        ("error at [input].delimiter (line 2): ", "bad delimiter \"ab\""),
        ("error at [[tables]] #2 (by_region).keys[0] (line 14): ", "key \"region\" is not a dimension"),
        ("error at [[tables]] #2 (by_region).metrics[1] (line 15): ", "unknown metric \"revenu\""),
        ("error at [[tables]] #3 (store_sales).name (line 18): ", "\"store_sales\" is also the name of [[tables]] #1"),
    ] {
        assert!(problems.iter().any(|l| l.starts_with(place) && l.contains(needle)), "{place}{needle} in:\n{err}");
    }
    assert!(err.contains("has 4 problem(s)"), "{err}");
}

/// docs/config.md: "Every problem in the file is reported": a table entry with a problem of its own still
/// takes its name, so a later table of the same name is reported at once.
#[test]
fn config_check_reports_a_duplicate_of_a_table_that_has_a_problem_too() {
    let (code, err) = check_problems(
        r#"[dimensions]
store = { column = "store_id", case = "keep" }

[[tables]]
name = "store_sales"
keys = ["store"]
metrics = ["orders", "revenu"]

[[tables]]
name = "store_sales"
keys = ["store"]
metrics = ["units"]
"#,
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("error at [[tables]] #1 (store_sales).metrics[1] (line 7): unknown metric"), "{err}");
    assert!(err.contains("error at [[tables]] #2 (store_sales).name (line 10):"), "the duplicate too:\n{err}");
}

#[test]
fn config_check_of_a_missing_file_names_it() {
    let work = tempfile::tempdir().unwrap();
    let path = work.path().join("no-such-config.toml");
    for args in [&["config", "check"][..], &["config", "show"][..]] {
        let output = bin().args(args).arg(&path).output().unwrap();
        let err = stderr(&output);
        // Exit code 1 (an error other than a config with problems, which is 2), as `config --help` says.
        assert_eq!(output.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(&format!("cannot read config file {}", path.display())), "{args:?}: {err}");
        assert!(err.contains("No such file"), "{err}");
    }
    // `run --config` with a missing file fails before reading the input.
    let out = work.path().join("out");
    let output =
        bin().arg("run").arg(fixture(FIXTURE)).arg("--out").arg(&out).arg("--config").arg(&path).output().unwrap();
    assert_ne!(output.status.code(), Some(0));
    assert!(stderr(&output).contains(&path.display().to_string()), "{}", stderr(&output));
    assert!(!out.join("summaries").exists(), "nothing written");
}

// ---------------------------------------------------------------------------------------------------------
// 5. catalog
// ---------------------------------------------------------------------------------------------------------

/// The YAML block of one Glue table resource.
fn resource<'a>(yaml: &'a str, name: &str) -> &'a str {
    let start = yaml.find(&format!("\n  {name}:\n")).unwrap_or_else(|| panic!("{name} in:\n{yaml}")) + 1;
    let rest = &yaml[start..];
    let end = rest[1..].find("\n  Glue").map_or(rest.len(), |e| e + 1);
    &rest[..end]
}

#[test]
fn catalog_with_a_config_names_its_tables_and_columns() {
    let output = bin().args(["catalog", "--config", SHOP]).output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let yaml = String::from_utf8(output.stdout).unwrap();
    let store = resource(&yaml, "GlueTableStoreSales");
    assert!(store.contains("Name: store_sales\n"), "{store}");
    assert!(store.contains("Type: AWS::Glue::Table"));
    assert!(store.contains("${OutputPrefix}store_sales/dt=${!dt}/hour=${!hour}/"), "{store}");
    for column in [
        "{Name: hour_start, Type: \"timestamp\"}",
        "{Name: store, Type: \"string\"}",
        "{Name: orders, Type: \"bigint\"}",
        "{Name: order_lines, Type: \"bigint\"}",
        "{Name: units, Type: \"bigint\"}",
        "{Name: revenue, Type: \"decimal(18,2)\"}",
        "{Name: customers, Type: \"bigint\"}",
    ] {
        assert!(store.contains(column), "{column} in {store}");
    }
    let daily = resource(&yaml, "GlueTableDailyStoreSales");
    assert!(daily.contains("Name: daily_store_sales\n") && daily.contains("{Name: day, Type: \"date\"}"), "{daily}");
    let top = resource(&yaml, "GlueTableTopProductsByStore");
    let columns = &top[top.find("Columns:").expect("its columns")..];
    let cols: Vec<&str> = columns.lines().filter(|l| l.trim_start().starts_with("- {Name: ")).collect();
    let names: Vec<&str> = cols.iter().map(|l| l.split("Name: ").nth(1).unwrap().split(',').next().unwrap()).collect();
    assert_eq!(names, ["hour_start", "rank", "store", "sku", "orders", "units", "revenue"], "{top}");
    assert!(!yaml.contains("GlueTableCategorySales"), "only the config's tables");
}

#[test]
fn catalog_without_a_config_is_the_block_in_template_yaml() {
    let output = bin().arg("catalog").output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let printed = String::from_utf8(output.stdout).unwrap();
    let template = fs::read_to_string(fixture("template.yaml")).unwrap();
    let begin = template.find("  # BEGIN GENERATED GLUE TABLES").expect("begin marker");
    let end_marker = "  # END GENERATED GLUE TABLES\n";
    let end = template.find(end_marker).expect("end marker") + end_marker.len();
    assert_eq!(printed, template[begin..end]);
}

// ---------------------------------------------------------------------------------------------------------
// 6. The Lambda's config, read at cold start
// ---------------------------------------------------------------------------------------------------------

const IN: &str = "hourly-insights-input";
const OUT: &str = "hourly-insights-output";

/// `invoke --event fixtures/events/s3-put.json` against the S3 server at `endpoint`, its environment cleared
/// but for the AWS settings, `OUTPUT_BUCKET` and `HOURLY_INSIGHTS_CONFIG`.
fn invoke(endpoint: &str, config: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hourly-insights"));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "warn")
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", s3_server::ACCESS_KEY)
        .env("AWS_SECRET_ACCESS_KEY", s3_server::SECRET_KEY)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("OUTPUT_BUCKET", OUT)
        .env("HOURLY_INSIGHTS_CONFIG", config)
        .args(["invoke", "--event", "fixtures/events/s3-put.json"]);
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invoke_with_a_bad_config_fails_before_any_s3_request_and_a_good_one_builds_its_tables() {
    let root = tempfile::tempdir().unwrap();
    let server = s3_server::start(&root.path().join("s3"), "127.0.0.1:0").await;
    let client = s3_server::client(&server.endpoint());
    for bucket in [IN, OUT] {
        client.create_bucket().bucket(bucket).send().await.unwrap();
    }
    // The event's object: a shop export, which only shop.toml can read.
    let export = root.path().join("shop.csv");
    generate(&export, 500, 3, "0", &["--config", SHOP]);
    client
        .put_object()
        .bucket(IN)
        .key("exports/orders-2026-11-22T13.csv")
        .body(fs::read(&export).unwrap().into())
        .send()
        .await
        .unwrap();

    // An invalid config: the process fails naming the file and each problem, with no S3 request made.
    let bad = root.path().join("bad.toml");
    fs::write(&bad, "[[tables]]\nname = \"t\"\nmetrics = [\"revenu\"]\n").unwrap();
    let before = server.requests.load(std::sync::atomic::Ordering::SeqCst);
    let mut cmd = invoke(&server.endpoint(), &bad);
    let output = tokio::task::spawn_blocking(move || cmd.output()).await.unwrap().unwrap();
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("config file {}", bad.display())), "names the file: {err}");
    assert!(err.contains("error at [[tables]] #1 (t).metrics[0] (line 3): unknown metric \"revenu\""), "{err}");
    assert_eq!(server.requests.load(std::sync::atomic::Ordering::SeqCst), before, "no S3 request: {err}");
    assert!(client.list_objects_v2().bucket(OUT).send().await.unwrap().contents().is_empty());

    // A missing config file: the same, naming the path.
    let missing = root.path().join("missing.toml");
    let before = server.requests.load(std::sync::atomic::Ordering::SeqCst);
    let mut cmd = invoke(&server.endpoint(), &missing);
    let output = tokio::task::spawn_blocking(move || cmd.output()).await.unwrap().unwrap();
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("cannot read config file {}", missing.display())), "{err}");
    assert_eq!(server.requests.load(std::sync::atomic::Ordering::SeqCst), before, "no S3 request: {err}");

    // The valid config: the handler reads the shop's export and publishes the config's tables.
    let mut cmd = invoke(&server.endpoint(), &fixture(SHOP));
    let output = tokio::task::spawn_blocking(move || cmd.output()).await.unwrap().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let response: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(response["results"][0]["outcome"], "succeeded", "{response}");
    let listing = client.list_objects_v2().bucket(OUT).send().await.unwrap();
    let keys: Vec<&str> = listing.contents().iter().filter_map(|o| o.key()).collect();
    for key in [
        "insights/store_sales/dt=2026-11-22/hour=13/data.parquet",
        "insights/top_products_by_store/dt=2026-11-22/hour=13/data.parquet",
        "insights/daily_store_sales/dt=2026-11-22/data.parquet",
    ] {
        assert!(keys.contains(&key), "{key} in {keys:?}");
    }
    assert!(!keys.iter().any(|k| k.starts_with("insights/category_sales/")), "{keys:?}");
    let body = client
        .get_object()
        .bucket(OUT)
        .key("insights/daily_store_sales/dt=2026-11-22/data.parquet")
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes();
    let (schema, rows) = cells(&body);
    assert_eq!(schema[1], ("store".to_string(), DataType::String));
    let orders: i64 = rows.iter().map(|r| r[2].parse::<i64>().unwrap()).sum();
    assert!(orders > 0 && rows.iter().all(|r| r[1].starts_with("store-") || r[1] == "unknown"), "{rows:?}");

    // The config read from S3 (as the template's ConfigKey sets it): the same run succeeds again...
    client
        .put_object()
        .bucket(IN)
        .key("config/shop.toml")
        .body(fs::read(fixture(SHOP)).unwrap().into())
        .send()
        .await
        .unwrap();
    let mut cmd = invoke(&server.endpoint(), Path::new(&format!("s3://{IN}/config/shop.toml")));
    let output = tokio::task::spawn_blocking(move || cmd.output()).await.unwrap().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let response: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(response["results"][0]["outcome"], "succeeded", "{response}");
    // ...and a config key that does not exist fails the start, naming it.
    let mut cmd = invoke(&server.endpoint(), Path::new(&format!("s3://{IN}/config/missing.toml")));
    let output = tokio::task::spawn_blocking(move || cmd.output()).await.unwrap().unwrap();
    let err = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("cannot read the config s3://{IN}/config/missing.toml")), "{err}");
    assert!(err.contains("HOURLY_INSIGHTS_CONFIG"), "{err}");
}
