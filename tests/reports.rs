//! The HTML reports and the digest, end to end through the binary: where they are written, that their
//! numbers are the published tables' (read here with polars, not with the report's reader), comparisons
//! with the previous hour and week, outliers, late rows and rejects, `latest.html` under out-of-order runs,
//! `hourly-insights report`, and what `forget` does to a report.

#[path = "support/history.rs"]
mod history;
#[path = "support/reference.rs"]
mod reference;

use std::fs;
use std::path::Path;
use std::process::Command;

use history::{build, cli, run_generated, BIN};
use reference::{parquet_rows, tree};
use serde_json::Value;

/// The `hourly_kpis` (or `daily_kpis`) row of a period: `[start, orders, order_lines, units, revenue,
/// customers, avg_order_value]`.
fn kpis(out: &Path, rel: &str) -> Vec<String> {
    let rows = parquet_rows(&fs::read(out.join(rel).join("data.parquet")).unwrap());
    assert_eq!(rows.len(), 1, "{rel}");
    rows[0].split('|').map(str::to_string).collect()
}

/// People's spelling of a decimal: `1234.50` -> `1,234.50`.
fn money(s: &str) -> String {
    let (int, frac) = s.split_once('.').unwrap();
    let mut grouped = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    format!("{grouped}.{frac}")
}

fn attr<'a>(html: &'a str, marker: &str) -> &'a str {
    let at = html.find(marker).unwrap_or_else(|| panic!("{marker} not in the page"));
    let rest = &html[at + marker.len()..];
    &rest[..rest.find('"').unwrap()]
}

fn quality(html: &str, what: &str) -> String {
    let marker = format!("data-quality=\"{what}\">");
    let at = html.find(&marker).unwrap() + marker.len();
    html[at..html[at..].find('<').unwrap() + at].replace(',', "")
}

/// Every `href` of every page under `reports` names a page that exists.
fn assert_links_resolve(reports: &Path) {
    for (key, bytes) in tree(reports) {
        if !key.ends_with(".html") {
            continue;
        }
        let page = reports.join(&key);
        let html = String::from_utf8(bytes).unwrap();
        for href in html.split("href=\"").skip(1).map(|h| h.split('"').next().unwrap().replace("&#x2f;", "/")) {
            let target = page.parent().unwrap().join(&href);
            assert!(target.exists(), "{key} links {href}, which does not exist");
        }
    }
}

#[test]
fn runs_write_self_contained_reports_whose_numbers_are_the_tables() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let fixture = build(dir.path(), &out);
    let r = out.join("reports");
    for page in [
        "dt=2026-11-22/hour=13/index.html",
        "dt=2026-11-22/hour=12/index.html",
        "dt=2026-11-22/index.html",
        "dt=2026-11-15/hour=13/index.html",
        "dt=2026-11-15/index.html",
        "latest.html",
    ] {
        assert!(r.join(page).exists(), "{page}");
    }
    let html = fs::read_to_string(r.join("dt=2026-11-22/hour=13/index.html")).unwrap();
    for banned in ["<script", "http://", "https://", " src=", "<link", "@import", "url("] {
        assert!(!html.contains(banned), "the page is self-contained, yet it has {banned}");
    }
    assert!(html.contains("<svg class=\"chart\" data-chart=\"revenue\""));

    // Headline numbers: the tables', with the previous hour and the same hour a week earlier.
    let k13 = kpis(&out, "hourly_kpis/dt=2026-11-22/hour=13");
    let k12 = kpis(&out, "hourly_kpis/dt=2026-11-22/hour=12");
    let week = kpis(&out, "hourly_kpis/dt=2026-11-15/hour=13");
    assert_eq!(attr(&html, "data-kpi=\"revenue\" data-value=\""), k13[4]);
    assert_eq!(attr(&html, "data-kpi=\"orders\" data-value=\""), k13[1]);
    assert_eq!(attr(&html, "data-kpi=\"units\" data-value=\""), k13[3]);
    assert_eq!(attr(&html, "data-kpi=\"customers\" data-value=\""), k13[5]);
    assert_eq!(attr(&html, "data-kpi=\"avg_order_value\" data-value=\""), k13[6]);
    assert!(html.contains(&format!("(was {})", money(&k12[4]))), "previous hour's revenue");
    assert!(html.contains(&format!("(was {})", money(&week[4]))), "last week's revenue");

    // The fixture's hour is far below the 2,000-row hours of the previous weeks: an outlier.
    assert!(html.contains("data-outlier=\"revenue\"") && html.contains("data-outlier=\"orders\""));
    let digest = &fixture["digest"];
    assert_eq!(digest["period"], "hour");
    assert_eq!(digest["start"], "2026-11-22T13:00:00Z");
    assert_eq!(digest["revenue"], k13[4].as_str());
    assert_eq!(digest["orders"].to_string(), k13[1]);
    let outliers: Vec<&str> = digest["outliers"].as_array().unwrap().iter().map(|o| o.as_str().unwrap()).collect();
    assert_eq!(outliers.len(), 2, "{outliers:?}");
    assert!(outliers[0].starts_with("revenue ") && outliers[0].contains("below"), "{outliers:?}");
    let link = format!("file://{}/reports/dt=2026-11-22/hour=13/index.html", fs::canonicalize(&out).unwrap().display());
    assert_eq!(digest["report"], link.as_str());
    assert!(digest["text"].as_str().unwrap().ends_with(&format!("Report: {link}\n")));
    let reports: Vec<&str> = fixture["reports"].as_array().unwrap().iter().map(|r| r.as_str().unwrap()).collect();
    assert_eq!(reports.len(), 4, "hours 12 and 13, the day, latest.html: {reports:?}");
    let stored: Value = serde_json::from_str(
        &fs::read_to_string(
            fs::read_dir(out.join("summaries"))
                .unwrap()
                .map(|e| e.unwrap().path())
                .find(|p| p.file_name().unwrap().to_str().unwrap().starts_with("orders-2026-11-22T13-"))
                .unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(stored["digest"], fixture["digest"], "the stored summary holds the digest");

    // Data quality: the fixture's rejects; its rows of 12:00 are late there.
    assert_eq!(quality(&html, "rejected"), fixture["rows"]["rejected"].to_string());
    assert_eq!(quality(&html, "late"), "0");
    let html12 = fs::read_to_string(r.join("dt=2026-11-22/hour=12/index.html")).unwrap();
    let late = fixture["by_hour"].as_array().unwrap().iter().find(|h| h["hour"] == "2026-11-22T12:00:00Z").unwrap();
    assert_eq!(quality(&html12, "late"), late["order_lines"].to_string());
    assert_eq!(html12.matches("<td title=\"").count(), 2, "two files fed 12:00");

    // The day page reads the daily table.
    let day = fs::read_to_string(r.join("dt=2026-11-22/index.html")).unwrap();
    assert_eq!(attr(&day, "data-kpi=\"revenue\" data-value=\""), kpis(&out, "daily_kpis/dt=2026-11-22")[4]);
    assert!(day.contains("data-report=\"day\""));

    // The 24-hour chart ends with this hour; every link of every page leads to a page that exists.
    let chart = html.split("data-chart=\"revenue\"").nth(1).unwrap().split("</svg>").next().unwrap();
    assert_eq!(chart.matches("<rect class=\"bar").count() + chart.matches("<rect class=\"missing\"").count(), 24);
    assert!(chart.rsplit("<rect ").next().unwrap().starts_with("class=\"bar now\""), "the last column is this hour");
    assert_links_resolve(&r);

    // Reports lost after the tables were out (a run that failed or timed out while writing them) are written
    // by the retry, whose tables are already current.
    let before_retry = tree(&r);
    for page in ["dt=2026-11-22/hour=12", "dt=2026-11-22/hour=13", "dt=2026-11-22"] {
        fs::remove_file(r.join(page).join("index.html")).unwrap();
        fs::remove_file(r.join(page).join(".index.html.meta")).unwrap();
    }
    let fixture_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/orders-2026-11-22T13.csv");
    let again: Value =
        serde_json::from_str(&cli(&["run", fixture_path.to_str().unwrap(), "--out", out.to_str().unwrap()])).unwrap();
    assert_eq!(again["outputs"], serde_json::json!([]), "no table changed");
    assert_eq!(again["reports"].as_array().unwrap().len(), 4, "{}", again["reports"]);
    let after_retry = tree(&r);
    let differ: Vec<&String> = before_retry.keys().filter(|k| before_retry.get(*k) != after_retry.get(*k)).collect();
    assert!(differ.is_empty() && before_retry.len() == after_retry.len(), "the same pages again; differ: {differ:?}");

    // latest.html is the newest hour, from its own folder.
    let latest = fs::read_to_string(r.join("latest.html")).unwrap();
    assert!(latest.contains("data-period=\"2026-11-22T13\"") && latest.contains("href=\"dt=2026-11-22"));

    // A normal hour a week later is not an outlier (its range includes the previous weeks' 2,000-row hours).
    let next = run_generated(dir.path(), &out, "2026-11-29T13", 2_200, 30);
    assert_eq!(next["digest"]["outliers"], serde_json::json!([]), "{}", next["digest"]["text"]);
    assert!(next["digest"]["revenue_vs_week_pct"].is_number());
    // An older hour run afterwards leaves latest.html on the newest hour.
    run_generated(dir.path(), &out, "2026-11-22T10", 500, 31);
    assert!(fs::read_to_string(r.join("latest.html")).unwrap().contains("data-period=\"2026-11-29T13\""));

    // `report` writes the same pages again, byte for byte, and prints the digest.
    let before: Vec<(String, Vec<u8>)> =
        tree(&r).into_iter().filter(|(k, _)| !k.rsplit('/').next().unwrap().starts_with('.')).collect();
    fs::remove_dir_all(&r).unwrap();
    let text = cli(&["report", "--out", out.to_str().unwrap()]);
    assert!(text.starts_with("13:00–14:00 UTC, Sunday 29 November 2026\n"), "{text}");
    let after: Vec<(String, Vec<u8>)> =
        tree(&r).into_iter().filter(|(k, _)| !k.rsplit('/').next().unwrap().starts_with('.')).collect();
    assert_eq!(before.iter().map(|b| &b.0).collect::<Vec<_>>(), after.iter().map(|a| &a.0).collect::<Vec<_>>());
    for ((key, a), (_, b)) in before.iter().zip(&after) {
        // A page shows its neighbours as they were when it was written: the pages of 2026-11-22 were written
        // before 10:00 of that day was run, so only the earlier weeks' pages must come out the same.
        if key.starts_with("dt=2026-11-15") || key.starts_with("dt=2026-11-08") {
            assert_eq!(a, b, "{key} is written again identically");
        }
    }
    let json: Value =
        serde_json::from_str(&cli(&["report", "--out", out.to_str().unwrap(), "--day", "2026-11-22", "--json"]))
            .unwrap();
    assert_eq!(json["period"], "day");
    assert_eq!(json["revenue"], kpis(&out, "daily_kpis/dt=2026-11-22")[4].as_str());
    let text = cli(&[
        "report",
        "--out",
        out.to_str().unwrap(),
        "--hour",
        "2026-11-22T13",
        "--report-base-url",
        "https://bi.example.com/insights/",
    ]);
    assert!(
        text.ends_with("Report: https://bi.example.com/insights/reports/dt=2026-11-22/hour=13/index.html\n"),
        "{text}"
    );
    for (args, message) in [
        (vec!["--hour", "2030-01-01T00"], "hour 2030-01-01T00 is not published"),
        (vec!["--hour", "yesterday"], "--hour must look like 2026-11-22T13"),
        (vec!["--day", "2026-11-23"], "day 2026-11-23 is not published"),
    ] {
        let o = Command::new(BIN).args(["report", "--out", out.to_str().unwrap()]).args(&args).output().unwrap();
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        assert!(
            String::from_utf8_lossy(&o.stderr).contains(message),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let empty = dir.path().join("empty");
    let o = Command::new(BIN).args(["report", "--out", empty.to_str().unwrap()]).output().unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("nothing is published"), "an empty output says so");

    // Forgetting the fixture republishes its hour's report without it.
    cli(&["forget", fixture_path.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    let html = fs::read_to_string(r.join("dt=2026-11-22/hour=13/index.html")).unwrap();
    assert_eq!(attr(&html, "data-kpi=\"revenue\" data-value=\""), "0.00");
    assert!(!html.contains("<td title=\""), "no file feeds the hour any more");
}
