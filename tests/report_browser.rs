//! The reports in a real browser: headless Chromium (Debian's `chromium`), driven by Playwright for Python,
//! loads the fixture's hour report, its day and latest.html, and checks them against the tables
//! (tests/browser/check_report.py says what). Writes target/report-hour.png, the screenshot in docs/.
//!
//! Chromium: `CHROMIUM`, or /usr/bin/chromium (installed here with apt-get when missing and this runs as
//! root; .ci/run installs it). Playwright and DuckDB: `BROWSER_VENV`, CI's .ci/.venv-browser, or a venv this
//! test makes under target/ (from PyPI; the browser itself is never downloaded).

#[path = "support/history.rs"]
mod history;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const PACKAGES: [&str; 2] = ["playwright==1.65.2", "duckdb==2.0.0"];

fn chromium() -> PathBuf {
    if let Some(p) = std::env::var_os("CHROMIUM") {
        return p.into();
    }
    let path = PathBuf::from("/usr/bin/chromium");
    if !path.exists() {
        let root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0"));
        if root {
            let quiet = |args: &[&str]| {
                Command::new("apt-get")
                    .args(args)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            };
            let _ = quiet(&["install", "-y", "-q", "chromium"])
                || (quiet(&["update", "-q"]) && quiet(&["install", "-y", "-q", "chromium"]));
        }
    }
    assert!(path.exists(), "Chromium is needed: apt-get install chromium (Debian), or set CHROMIUM to its path");
    path
}

fn python() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let has = |venv: &Path| {
        venv.join("bin/python").exists() && {
            Command::new(venv.join("bin/python"))
                .args(["-c", "import playwright, duckdb"])
                .status()
                .is_ok_and(|s| s.success())
        }
    };
    let candidates: Vec<PathBuf> = std::env::var_os("BROWSER_VENV")
        .map(PathBuf::from)
        .into_iter()
        .chain([root.join(".ci/.venv-browser"), root.join("target/browser-venv")])
        .collect();
    if let Some(venv) = candidates.iter().find(|v| has(v)) {
        return venv.join("bin/python");
    }
    let venv = root.join("target/browser-venv");
    let ok = Command::new("python3").args(["-m", "venv"]).arg(&venv).status().unwrap().success()
        && Command::new(venv.join("bin/pip")).args(["install", "-q"]).args(PACKAGES).status().unwrap().success();
    assert!(ok, "could not install {PACKAGES:?} into {}", venv.display());
    venv.join("bin/python")
}

#[test]
fn the_fixtures_reports_open_in_chromium_with_the_tables_numbers() {
    let chromium = chromium();
    let python = python();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    history::build(dir.path(), &out);
    let shot = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/report-hour.png");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/check_report.py");
    let output = Command::new(python)
        .arg(script)
        .arg(&out)
        .arg("2026-11-22T13")
        .arg(&shot)
        .env("CHROMIUM", chromium)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "browser checks failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("all report checks passed"), "{stdout}");
    assert!(std::fs::metadata(&shot).unwrap().len() > 10_000, "a screenshot was written");
}
