//! Output writing: the public layout, Parquet encoding of the tables, and the rejects file.
//!
//! Layout under the output root (identical locally and in S3):
//! - the published tables and the states behind them: see [`crate::output::publish`];
//! - `rejects/<name>.csv`: when the run has rejects;
//! - `summaries/<name>.json`: written last; its presence means the source's outputs are complete.
//!
//! `<name>` is derived from the source URI only (see [`output_name`]), so reprocessing a source overwrites
//! its own files and never another source's.

pub mod catalog;
pub mod publish;
pub mod report;
pub mod summary;

use std::path::Path;

use polars::prelude::*;

use crate::contract::RejectReason;
use crate::error::{Error, InputError, Result};

/// The output file name stem of a source: the sanitised file name without `.csv`/`.gz`, a dash, and 16 hex
/// digits of the FNV-1a 64 hash of the full source URI (stable across versions and machines).
pub fn output_name(source_uri: &str) -> String {
    let file = source_uri.rsplit('/').next().unwrap_or(source_uri);
    let stem = file.strip_suffix(".gz").unwrap_or(file);
    let stem = stem.strip_suffix(".csv").unwrap_or(stem);
    let mut clean: String = stem
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' })
        .take(80)
        .collect();
    if clean.is_empty() {
        clean.push_str("input");
    }
    format!("{clean}-{:016x}", fnv1a64(source_uri.as_bytes()))
}

fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

pub fn rejects_key(name: &str) -> String {
    format!("rejects/{name}.csv")
}

pub fn summary_key(name: &str) -> String {
    format!("summaries/{name}.json")
}

/// Encodes a frame as Parquet (zstd). The bytes depend only on the frame, so reruns are byte-identical.
pub fn parquet_bytes(frame: &mut DataFrame) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    ParquetWriter::new(&mut buf)
        .with_compression(ParquetCompression::Zstd(None))
        .with_statistics(StatisticsOptions::full())
        .finish(frame)?;
    Ok(buf)
}

/// Streams rejected rows to a temporary CSV file (`line,reason,record`).
pub struct RejectsWriter {
    file: tempfile::NamedTempFile,
    writer: csv::Writer<std::io::BufWriter<std::fs::File>>,
    pub count: u64,
    /// The most the file may hold (checked as it grows, so it may pass it by one buffer): a file of rejects
    /// larger than the temporary space fails the input as a whole, with a clear error, instead of an
    /// unexplained write error (Lambda's /tmp holds 512 MB).
    max_bytes: u64,
}

impl RejectsWriter {
    pub fn new(max_bytes: u64) -> Result<Self> {
        let tmp_err = |source| Error::Write { path: std::env::temp_dir(), source };
        let file = tempfile::NamedTempFile::new().map_err(tmp_err)?;
        let handle = file.reopen().map_err(tmp_err)?;
        let mut writer = csv::Writer::from_writer(std::io::BufWriter::with_capacity(64 * 1024, handle));
        writer.write_record(["line", "reason", "record"]).map_err(|e| csv_err(file.path(), e))?;
        Ok(RejectsWriter { file, writer, count: 0, max_bytes })
    }

    /// Records one rejected row: its 1-based start line, the reason, and its fields re-joined as CSV text
    /// (bytes that are not UTF-8 are replaced by U+FFFD).
    pub fn write(&mut self, line: u64, reason: RejectReason, record: &csv::ByteRecord) -> Result<()> {
        let path = self.file.path().to_path_buf();
        if self.writer.get_ref().get_ref().metadata().is_ok_and(|m| m.len() > self.max_bytes) {
            return Err(InputError::RejectsTooLarge {
                message: format!(
                    "more than {} MiB of rejects by line {line}; fix the export, or raise --max-rejects-mib \
                     (MAX_REJECTS_MIB in Lambda, whose /tmp holds 512 MB)",
                    self.max_bytes >> 20
                ),
            }
            .into());
        }
        let mut joined = csv::WriterBuilder::new().terminator(csv::Terminator::Any(b'\n')).from_writer(Vec::new());
        joined.write_byte_record(record).map_err(|e| csv_err(&path, e))?;
        let mut joined = joined.into_inner().map_err(|e| csv_err(&path, e.into_error().into()))?;
        if joined.last() == Some(&b'\n') {
            joined.pop();
        }
        let text = String::from_utf8_lossy(&joined);
        let line = line.to_string();
        self.writer.write_record([line.as_str(), reason.as_str(), &text]).map_err(|e| csv_err(&path, e))?;
        self.count += 1;
        Ok(())
    }

    /// Flushes and returns the temporary file holding the rejects (deleted when dropped).
    pub fn finish(mut self) -> Result<tempfile::NamedTempFile> {
        let path = self.file.path().to_path_buf();
        self.writer.flush().map_err(|source| Error::Write { path, source })?;
        drop(self.writer);
        Ok(self.file)
    }
}

fn csv_err(path: &Path, e: csv::Error) -> Error {
    Error::Write { path: path.to_path_buf(), source: std::io::Error::other(e) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_stable_and_distinct() {
        let a = output_name("s3://in/exports/orders-2026-11-22T13.csv.gz");
        assert_eq!(a, output_name("s3://in/exports/orders-2026-11-22T13.csv.gz"));
        assert!(a.starts_with("orders-2026-11-22T13-"), "{a}");
        assert_eq!(a.len(), "orders-2026-11-22T13-".len() + 16);
        assert_ne!(a, output_name("s3://in/other/orders-2026-11-22T13.csv.gz"));
        assert!(output_name("s3://in/a b/ü x.csv").starts_with("__x-"));
        assert!(output_name("s3://in/dir/").starts_with("input-"));
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn keys() {
        assert_eq!(rejects_key("x"), "rejects/x.csv");
        assert_eq!(summary_key("x"), "summaries/x.json");
    }

    #[test]
    fn rejects_rejoin_records() {
        let mut w = RejectsWriter::new(1 << 30).unwrap();
        let rec = csv::ByteRecord::from(vec![&b"a,b"[..], b"say \"hi\"", b"multi\nline", b"\xff"]);
        w.write(7, RejectReason::FieldCount, &rec).unwrap();
        let file = w.finish().unwrap();
        let text = std::fs::read_to_string(file.path()).unwrap();
        let mut rdr = csv::Reader::from_reader(text.as_bytes());
        let row = rdr.records().next().unwrap().unwrap();
        assert_eq!(&row[0], "7");
        assert_eq!(&row[1], "field_count");
        assert_eq!(&row[2], "\"a,b\",\"say \"\"hi\"\"\",\"multi\nline\",\u{fffd}");
    }
}
