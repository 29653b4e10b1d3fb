//! Property tests of reading and validation together (proptest, in the normal test run): whatever rows a
//! file holds, valid or not, every record the `csv` crate (the reference splitter) sees is either
//! aggregated or in the rejects file with its line, and `rows.read = rows.valid + rows.rejected`.

use hourly_insights::pipeline;
use hourly_insights::read::input;
use hourly_insights::storage::LocalDir;
use proptest::prelude::*;

/// A field value: mostly plausible, often broken in the ways exports break.
fn field(kind: usize) -> impl Strategy<Value = String> {
    let good: Vec<&'static str> = match kind {
        0 => {
            vec!["2026-11-22T13:05:09Z", "2026-11-22 13:59:59", "2026-11-22T14:05:09+01:00", "2026-11-22T25:00:00Z", ""]
        }
        1 => vec!["O-1", "O-2", " O-3 ", "", "\"O,4\""],
        2 => vec!["SKU-1", "SKU-2", "", "\"SKU \"\"5\"\"\""],
        3 => vec!["1", "0", "007", "-1", "1.5", "x", ""],
        4 => vec!["19.99", "0", "1.999", "1e3", "", "12.30"],
        _ => vec!["web", "", " DE ", "caf\u{e9}", "\"a\nb\""],
    };
    prop::sample::select(good).prop_map(String::from)
}

fn row() -> impl Strategy<Value = String> {
    (field(0), field(1), field(2), field(3), field(4), field(5), 0usize..10).prop_map(|(t, o, s, q, p, c, shape)| {
        match shape {
            0 => format!("{t},{o},{s},{q}"),           // a field short
            1 => format!("{t},{o},{s},{q},{p},{c},x"), // a field too many
            _ => format!("{t},{o},{s},{q},{p},{c}"),
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn every_record_is_aggregated_or_rejected_with_its_line(
        rows in prop::collection::vec(row(), 0..40),
        crlf in any::<bool>(),
    ) {
        let end = if crlf { "\r\n" } else { "\n" };
        let mut text = format!("event_time,order_id,sku,quantity,unit_price,channel{end}");
        for r in &rows {
            text.push_str(r);
            text.push_str(end);
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.csv");
        std::fs::write(&path, &text).unwrap();
        let records = csv::ReaderBuilder::new().flexible(true).from_reader(text.as_bytes()).byte_records().count() as u64;
        let sink = LocalDir::new(dir.path().join("out")).unwrap();
        let summary = pipeline::run(input::open_local(&path).unwrap(), &sink, &pipeline::Options::default()).unwrap();
        prop_assert_eq!(summary.rows.read, records, "the csv crate's record count");
        prop_assert_eq!(summary.rows.read, summary.rows.valid + summary.rows.rejected);
        let kept = match summary.rejects_uri {
            Some(uri) => {
                let path = uri.strip_prefix("file://").unwrap().to_string();
                let mut rdr = csv::Reader::from_path(path).unwrap();
                let lines: Vec<u64> = rdr.records().map(|r| r.unwrap()[0].parse().unwrap()).collect();
                prop_assert!(lines.windows(2).all(|w| w[0] < w[1]), "lines ascending: {:?}", lines);
                lines.len() as u64
            }
            None => 0,
        };
        prop_assert_eq!(kept, summary.rows.rejected, "every rejected row is in the rejects file");
        let hourly: i64 = summary.by_hour.iter().map(|h| h.order_lines).sum();
        prop_assert_eq!(hourly as u64, summary.rows.valid, "every valid row is aggregated");
    }
}
