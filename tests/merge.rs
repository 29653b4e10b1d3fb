//! Exact hours and days whatever number of files feed them, through the real binary: several exports per
//! hour, late rows, ids shared across files, a corrected re-upload that drops an hour, a deletion, and a
//! rebuild. Every published table is compared cell by cell with an independent computation over the union
//! of the valid rows (tests/support/reference.rs).

#[path = "support/reference.rs"]
mod reference;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;

use reference::{assert_tables, csv_text, expected, published, random_lines, tree, Line};

const H12: i64 = 1_795_348_800_000_000; // 2026-11-22T12:00Z
const H13: i64 = H12 + 3_600_000_000;
const H14: i64 = H13 + 3_600_000_000;
const NEXT_DAY: i64 = H12 + 12 * 3_600_000_000; // 2026-11-23T00:00Z

fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hourly-insights"));
    cmd.env("RUST_LOG", "warn");
    cmd
}

fn run(input: &Path, out: &Path) -> serde_json::Value {
    let output = bin().arg("run").arg(input).arg("--out").arg(out).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

fn tables(out: &Path) -> BTreeMap<String, Vec<String>> {
    published(&tree(out), "")
}

/// Rows that must be rejected (and so stay out of every table).
const BAD: &[&str] = &[
    "2026-11-22T13:01:00Z,O-1,C-1,SKU-1,toys,many,1.00,web,,DE,mobile",
    "2026-11-22T13:02:00Z,,C-1,SKU-1,toys,1,1.00,web,,DE,mobile",
];

#[test]
fn several_files_per_hour_give_exact_hours_and_days() {
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    // The 13:00 export with late rows of 12:xx; a second backend's 13:00 export sharing order and customer
    // ids with it; the 14:00 export with late rows of 13:xx; and an export whose rows cross midnight.
    let a = random_lines(1, &[H12, H13, H13, H13], 1500, 0..600, 0..300);
    let b = random_lines(2, &[H13], 900, 400..900, 200..500);
    let c = random_lines(3, &[H13, H14, H14], 1200, 800..1400, 0..400);
    let d = random_lines(4, &[H14, NEXT_DAY], 300, 1300..1500, 350..450);
    let mut files = Vec::new();
    for (name, lines) in [("a.csv", &a), ("b.csv", &b), ("c.csv", &c), ("d.csv", &d)] {
        let path = work.path().join(name);
        fs::write(&path, csv_text(lines, BAD)).unwrap();
        files.push(path);
    }
    let union = |parts: &[&Vec<Line>]| -> Vec<Line> { parts.iter().flat_map(|p| p.iter().cloned()).collect() };
    for f in &files {
        let summary = run(f, &out);
        assert_eq!(summary["rows"]["rejected"], 2, "{summary}");
    }
    let want = expected(&union(&[&a, &b, &c, &d]));
    assert!(want.contains_key("daily_kpis/dt=2026-11-23") && want.contains_key("hourly_kpis/dt=2026-11-22/hour=12"));
    assert_tables(&tables(&out), &want, "four files");

    // Distinct counts merge: hour 13's customers are fewer than the sum over the files that feed it.
    let kpis13 = &tables(&out)["hourly_kpis/dt=2026-11-22/hour=13"][0];
    let customers: usize = kpis13.split('|').nth(5).unwrap().parse().unwrap();
    let sum: usize = [&a, &b, &c]
        .iter()
        .map(|l| {
            let set: std::collections::BTreeSet<&str> = l
                .iter()
                .filter(|l| l.time / 3_600_000_000 * 3_600_000_000 == H13 && !l.customer.is_empty())
                .map(|l| l.customer.as_str())
                .collect();
            set.len()
        })
        .sum();
    assert!(customers < sum, "shared customers count once: {customers} < {sum}");

    // The same files in another order give the same bytes.
    let other = work.path().join("other");
    for f in files.iter().rev() {
        run(f, &other);
    }
    let parquet = |dir: &Path| -> BTreeMap<String, Vec<u8>> {
        tree(dir).into_iter().filter(|(k, _)| k.ends_with("data.parquet")).collect()
    };
    assert_eq!(parquet(&out), parquet(&other), "publication does not depend on the order of the runs");

    // A corrected re-upload of a without its late rows of hour 12: hour 12 is empty now.
    let a2: Vec<Line> = a.iter().filter(|l| l.time >= H13).cloned().collect();
    fs::write(&files[0], csv_text(&a2, &[])).unwrap();
    let summary = run(&files[0], &out);
    assert_eq!(summary["hours"], serde_json::json!(["2026-11-22T13:00:00Z"]));
    let want = expected(&union(&[&a2, &b, &c, &d]));
    assert!(!want.contains_key("hourly_kpis/dt=2026-11-22/hour=12"));
    assert_tables(&tables(&out), &want, "corrected a");
    assert_eq!(tables(&out)["hourly_kpis/dt=2026-11-22/hour=12"], Vec::<String>::new());

    // Deleting b (the file is gone, as after an S3 delete): its rows leave hour 13 and the day.
    let b_name =
        hourly_insights::output::output_name(&format!("file://{}", fs::canonicalize(&files[1]).unwrap().display()));
    fs::remove_file(&files[1]).unwrap();
    let forgot = bin().arg("forget").arg(&files[1]).arg("--out").arg(&out).output().unwrap();
    assert!(forgot.status.success(), "{}", String::from_utf8_lossy(&forgot.stderr));
    let want = expected(&union(&[&a2, &c, &d]));
    assert_tables(&tables(&out), &want, "b deleted");
    let left = tree(&out);
    assert!(!left.keys().any(|k| k.contains(&b_name) && !k.starts_with("_state/sources/")), "{:?}", left.keys());
    let record: serde_json::Value = serde_json::from_slice(&left[&format!("_state/sources/{b_name}.json")]).unwrap();
    assert_eq!(record["status"], "deleted", "the deletion is recorded, so an older version cannot come back");
    let again = bin().arg("forget").arg(&files[1]).arg("--out").arg(&out).output().unwrap();
    assert!(again.status.success(), "forgetting twice is harmless");
    let unknown = bin().arg("forget").arg(work.path().join("never.csv")).arg("--out").arg(&out).output().unwrap();
    assert_eq!(unknown.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("has no state under"));

    // A rebuild recomputes every hour and day from the states: the same bytes, lost files restored.
    let before = parquet(&out);
    fs::remove_file(out.join("daily_geo_device/dt=2026-11-22/data.parquet")).unwrap();
    let rebuilt = bin().arg("rebuild").arg("--out").arg(&out).output().unwrap();
    assert!(rebuilt.status.success(), "{}", String::from_utf8_lossy(&rebuilt.stderr));
    let report: serde_json::Value = serde_json::from_slice(&rebuilt.stdout).unwrap();
    assert_eq!(report["days"], serde_json::json!(["2026-11-22", "2026-11-23"]));
    assert_eq!(parquet(&out), before);
}

/// A backfill of more than four hours (its id dictionaries are hashed once for all its hours, where a
/// file of a few hours has each hour's hashed from the keys as its state is written) merges exactly with
/// files that share its hours and ids.
#[test]
fn a_backfill_of_many_hours_merges_exactly_with_the_files_sharing_its_hours() {
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    let hours: Vec<i64> = (0..7).map(|h| H12 + (h - 3) * 3_600_000_000).collect();
    // Enough orders that an hour's ids span several bitmap containers (codes past 65,536).
    let backfill = random_lines(5, &hours, 150_000, 0..100_000, 0..30_000);
    let late = random_lines(6, &[hours[1], hours[4], hours[6]], 20_000, 90_000..120_000, 20_000..40_000);
    let few = random_lines(7, &[hours[4], hours[5]], 5_000, 0..3_000, 0..2_000);
    for (name, lines) in [("backfill.csv", &backfill), ("late.csv", &late), ("few.csv", &few)] {
        let path = work.path().join(name);
        fs::write(&path, csv_text(lines, &[])).unwrap();
        let summary = run(&path, &out);
        if name == "backfill.csv" {
            assert_eq!(summary["hours"].as_array().unwrap().len(), 7, "{summary}");
        }
    }
    let all: Vec<Line> = [&backfill, &late, &few].iter().flat_map(|l| l.iter().cloned()).collect();
    assert_tables(&tables(&out), &expected(&all), "a backfill and the files sharing its hours");
}

#[test]
fn rerunning_a_file_changes_no_byte() {
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    let (a, b) = (work.path().join("a.csv"), work.path().join("b.csv"));
    fs::write(&a, csv_text(&random_lines(7, &[H12, H13], 500, 0..300, 0..100), BAD)).unwrap();
    fs::write(&b, csv_text(&random_lines(8, &[H13], 500, 200..400, 50..150), &[])).unwrap();
    run(&a, &out);
    run(&b, &out);
    let first = tree(&out);
    run(&a, &out);
    let second = tree(&out);
    assert_eq!(first.keys().collect::<Vec<_>>(), second.keys().collect::<Vec<_>>());
    // Hidden files hold the generation a table was computed from: a rerun may publish the same bytes again
    // under the newer generation of its day.
    let hidden = |k: &str| k.rsplit('/').next().unwrap().starts_with('.');
    let changed: Vec<&String> =
        first.keys().filter(|k| !k.starts_with("summaries/") && !hidden(k) && first[*k] != second[*k]).collect();
    assert!(changed.is_empty(), "changed by the rerun: {changed:?}");
}

#[test]
fn concurrent_local_runs_into_one_directory_publish_the_exact_merge() {
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out");
    let mut all = Vec::new();
    let mut paths = Vec::new();
    for i in 0..6u64 {
        let lines = random_lines(40 + i, &[H12, H13, H13], 2000, i * 200..i * 200 + 800, 0..400);
        let path = work.path().join(format!("part-{i}.csv"));
        fs::write(&path, csv_text(&lines, &[])).unwrap();
        all.extend(lines);
        paths.push(path);
    }
    // Six processes at once: the directory's conditional writes hold an flock, as S3 applies If-Match.
    let children: Vec<_> = paths
        .iter()
        .map(|p| bin().arg("run").arg(p).arg("--out").arg(&out).stdout(std::process::Stdio::null()).spawn().unwrap())
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    assert_tables(&tables(&out), &expected(&all), "six concurrent processes");
}

/// States written before table layouts were stored (format 1, `HIPART01`; fixtures/states/ holds the
/// 12:00 and 13:00 states of a run of the bundled fixture by that version, the ones
/// fixtures/golden/fixture-outputs.txt lists) are still read and merged: they hold what a run writes now,
/// and an hour that merges them with a newer export publishes the same tables as with this version's
/// states. (If what a run of the fixture stores changes on purpose, this test changes with it.)
#[test]
fn states_of_the_previous_format_are_read_and_merged_alike() {
    use hourly_insights::aggregate::partial::{Layout, Partial};
    use hourly_insights::settings::Settings;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let work = tempfile::tempdir().unwrap();
    let later = work.path().join("later.csv");
    fs::write(&later, csv_text(&random_lines(7, &[H13], 400, 0..300, 0..200), &[])).unwrap();
    let mut published = Vec::new();
    for old in [false, true] {
        let out = work.path().join(if old { "old" } else { "new" });
        run(&root.join("fixtures/orders-2026-11-22T13.csv"), &out);
        for hh in ["12", "13"] {
            let dir = out.join(format!("_state/dt=2026-11-22/hour={hh}"));
            let state = fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).next().expect("the hour's state");
            let written = Partial::decode(&fs::read(&state).unwrap()).unwrap();
            for t in &written.tables {
                let spec = Settings::default_ref().table(&t.name).expect("a default table");
                assert_eq!(t.layout, Some(Layout::of(spec)), "{hh}:00 {}", t.name);
            }
            if old {
                let old_state =
                    fs::read(root.join(format!("fixtures/states/v1-orders-2026-11-22T13-hour{hh}.partial"))).unwrap();
                assert_eq!(&old_state[..8], b"HIPART01");
                let mut without = written.clone();
                for t in &mut without.tables {
                    t.layout = None;
                }
                assert_eq!(
                    Partial::decode(&old_state).unwrap(),
                    without,
                    "{hh}:00: the old state holds what a run writes"
                );
                fs::write(&state, &old_state).unwrap();
            }
        }
        let summary = run(&later, &out);
        assert_eq!(summary["partials_read"], 2, "the fixture's states (12:00, 13:00) were read: {summary}");
        published.push(tables(&out));
    }
    assert_eq!(published[0], published[1]);
}
