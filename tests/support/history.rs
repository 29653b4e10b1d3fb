//! An output directory with some history, for the report tests: the same hour on the four previous weeks
//! and the two hours before, from the generator, then the bundled fixture (2026-11-22T13, with late rows
//! of 12:00 and rejects).

use std::path::Path;
use std::process::Command;

pub const BIN: &str = env!("CARGO_BIN_EXE_hourly-insights");

/// Runs `hourly-insights` with `args`, asserting success, and returns its stdout.
pub fn cli(args: &[&str]) -> String {
    let out = Command::new(BIN).args(args).env("RUST_LOG", "warn").env("NO_COLOR", "1").output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Generates an export of `rows` rows for `hour` (YYYY-MM-DDTHH) and runs it into `out`; returns the summary.
pub fn run_generated(dir: &Path, out: &Path, hour: &str, rows: u64, seed: u64) -> serde_json::Value {
    let file = dir.join(format!("orders-{hour}-{seed}.csv"));
    let (rows, seed) = (rows.to_string(), seed.to_string());
    cli(&[
        "generate",
        "--rows",
        &rows,
        "--seed",
        &seed,
        "--hour",
        hour,
        "--dirty",
        "0.01",
        "--output",
        file.to_str().unwrap(),
    ]);
    serde_json::from_str(&cli(&["run", file.to_str().unwrap(), "--out", out.to_str().unwrap()])).unwrap()
}

/// Builds the history in `out` (inputs go to `dir`) and returns the fixture's run summary, run last.
pub fn build(dir: &Path, out: &Path) -> serde_json::Value {
    for (i, hour) in ["2026-10-25T13", "2026-11-01T13", "2026-11-08T13", "2026-11-15T13"].iter().enumerate() {
        run_generated(dir, out, hour, 2_000 + 300 * i as u64, 10 + i as u64);
    }
    run_generated(dir, out, "2026-11-22T11", 1_500, 21);
    run_generated(dir, out, "2026-11-22T12", 1_800, 22);
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/orders-2026-11-22T13.csv");
    serde_json::from_str(&cli(&["run", fixture.to_str().unwrap(), "--out", out.to_str().unwrap()])).unwrap()
}
