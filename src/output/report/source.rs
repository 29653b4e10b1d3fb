//! What a report reads: the published tables (Parquet), the day manifests and the source summaries, from
//! any [`Sink`]. Reads are cached for the life of one [`Published`] (a report of an hour and the report of
//! its day share most of what they read), and [`Published::prefetch`] fetches many objects at once, since
//! on S3 each one is a round trip.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use polars::prelude::*;

use crate::aggregate::tables::{ColumnType, Period, TableSpec, DEFAULT_TABLES};
use crate::error::{Error, Result};
use crate::output;
use crate::output::publish::{self, DayManifest};
use crate::output::summary::Summary;
use crate::storage::Sink;

/// One row of a table, as [`Table::from`] takes it in tests: its dimension values, and its metrics by
/// column name (money in cents).
#[cfg(test)]
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Group {
    pub keys: Vec<PlSmallStr>,
    pub metrics: Vec<(&'static str, i128)>,
}

#[cfg(test)]
impl Group {
    /// A metric of the row, 0 when it has no such column.
    pub fn get(&self, metric: &str) -> i128 {
        self.metrics.iter().find(|(name, _)| *name == metric).map_or(0, |(_, v)| *v)
    }
}

/// The rows of one published table file, column by column: a report reads every row of a table of
/// campaigns (a hundred thousand of them) and shows 20, so no row is an object of its own.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Table {
    len: usize,
    /// Per key column, its rows' values (inline up to 24 bytes each).
    keys: Vec<Vec<PlSmallStr>>,
    /// Per metric column (a handful per table, so a list), its name and its rows' values.
    metrics: Vec<(&'static str, Vec<i128>)>,
}

impl Table {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The number of key columns.
    pub fn width(&self) -> usize {
        self.keys.len()
    }

    /// A metric's column, `None` when the table has no such column.
    pub fn metric(&self, name: &str) -> Option<&[i128]> {
        self.metrics.iter().find(|(n, _)| *n == name).map(|(_, values)| values.as_slice())
    }

    /// A metric of row `row`, 0 when the table has no such column.
    pub fn get(&self, row: usize, metric: &str) -> i128 {
        self.metric(metric).map_or(0, |values| values[row])
    }

    /// The `k`-th key of row `row`, if the table has that many.
    pub fn key(&self, row: usize, k: usize) -> Option<&str> {
        self.keys.get(k).map(|column| column[row].as_str())
    }

    /// The keys of row `row`, in column order.
    pub fn keys(&self, row: usize) -> impl Iterator<Item = &str> {
        self.keys.iter().map(move |column| column[row].as_str())
    }
}

#[cfg(test)]
impl From<Vec<Group>> for Table {
    /// The table of `rows`, whose keys and metrics are those of the first row.
    fn from(rows: Vec<Group>) -> Table {
        let width = rows.first().map_or(0, |g| g.keys.len());
        let names: Vec<&'static str> =
            rows.first().map(|g| g.metrics.iter().map(|(n, _)| *n).collect()).unwrap_or_default();
        Table {
            len: rows.len(),
            keys: (0..width).map(|k| rows.iter().map(|g| g.keys[k].clone()).collect()).collect(),
            metrics: names.into_iter().map(|n| (n, rows.iter().map(|g| g.get(n)).collect())).collect(),
        }
    }
}

/// The rows of one published table file, shared by the reports that read it.
pub type Rows = Arc<Table>;

/// Objects fetched in parallel by [`Published::prefetch`] at most.
const PARALLEL_READS: usize = 16;

/// Cached reads of one output root.
pub struct Published<'a> {
    sink: &'a dyn Sink,
    objects: Mutex<HashMap<String, Option<Arc<Vec<u8>>>>>,
    /// Summaries that are not stored yet (the current run's), by source name.
    overrides: HashMap<String, Summary>,
    /// The tables the output has (the settings'). The reports read the default tables that are among them
    /// unchanged, and leave out what the others would show.
    tables: &'a [TableSpec],
}

impl<'a> Published<'a> {
    pub fn new(sink: &'a dyn Sink) -> Self {
        Published { sink, objects: Mutex::new(HashMap::new()), overrides: HashMap::new(), tables: DEFAULT_TABLES }
    }

    /// Reads the output of a run with these tables (the default tables otherwise).
    pub fn with_tables(mut self, tables: &'a [TableSpec]) -> Self {
        self.tables = tables;
        self
    }

    /// Takes `objects` (key and bytes) as read: the tables a run has just written, which its reports would
    /// otherwise fetch again.
    pub fn with_objects(self, objects: impl IntoIterator<Item = (String, Arc<Vec<u8>>)>) -> Self {
        let mut cache = self.objects.into_inner().unwrap_or_else(|e| e.into_inner());
        cache.extend(objects.into_iter().map(|(key, bytes)| (key, Some(bytes))));
        Published { objects: Mutex::new(cache), ..self }
    }

    /// Uses `summary` as the summary of its source instead of the stored one (a run's own summary is stored
    /// after its reports).
    pub fn with_summary(mut self, summary: Summary) -> Self {
        self.overrides.insert(output::output_name(&summary.source.uri), summary);
        self
    }

    pub fn sink(&self) -> &dyn Sink {
        self.sink
    }

    fn object(&self, key: &str) -> Result<Option<Arc<Vec<u8>>>> {
        if let Some(hit) = self.objects.lock().map_err(|_| poisoned())?.get(key) {
            return Ok(hit.clone());
        }
        let value = self.sink.get(key)?.map(Arc::new);
        self.objects.lock().map_err(|_| poisoned())?.insert(key.to_string(), value.clone());
        Ok(value)
    }

    /// Fetches `keys` into the cache, [`PARALLEL_READS`] at a time, each key once (a report lists some keys
    /// twice: two threads reading the same key at once would both miss the cache).
    pub fn prefetch(&self, keys: &[String]) -> Result<()> {
        let missing: Vec<&String> = {
            let cache = self.objects.lock().map_err(|_| poisoned())?;
            let mut seen = std::collections::HashSet::new();
            keys.iter().filter(|k| !cache.contains_key(k.as_str()) && seen.insert(k.as_str())).collect()
        };
        for batch in missing.chunks(PARALLEL_READS) {
            std::thread::scope(|s| {
                let handles: Vec<_> = batch.iter().map(|k| s.spawn(move || self.object(k))).collect();
                handles.into_iter().try_for_each(|h| {
                    h.join().map_err(|_| Error::Internal { message: "a report read panicked".into() })?.map(drop)
                })
            })?;
        }
        Ok(())
    }

    /// The key of a table's file for one hour or day (`name` is the hourly table's name).
    pub fn table_key(name: &str, period: Period, start: i64) -> Option<String> {
        let spec = DEFAULT_TABLES.iter().find(|t| t.name == name)?;
        Some(publish::table_key(&spec.table_name(period), period, start))
    }

    /// The rows of table `name` (its hourly name, e.g. `hourly_kpis`) for the hour or day starting at
    /// `start`, or `None` when nothing is published for it.
    pub fn table(&self, name: &str, period: Period, start: i64) -> Result<Option<Rows>> {
        let Some(key) = Self::table_key(name, period, start) else { return Ok(None) };
        let default = DEFAULT_TABLES.iter().find(|t| t.name == name).expect("table_key found it");
        let Some(spec) = self.tables.iter().find(|t| t.same_rows_as(default)) else { return Ok(None) };
        let Some(bytes) = self.object(&key)? else { return Ok(None) };
        let unreadable = |e: &dyn std::fmt::Display| Error::Internal {
            message: format!("{} is not a readable table: {e}", self.sink.uri(&key)),
        };
        let frame = ParquetReader::new(std::io::Cursor::new(bytes.as_slice())).finish().map_err(|e| unreadable(&e))?;
        let mut metrics: Vec<(&'static str, ColumnType)> =
            spec.metrics.iter().map(|m| (m.name(), m.column_type())).collect();
        if spec.top.is_some() {
            metrics.push(("rank", ColumnType::Int64));
        }
        let keys = spec
            .keys
            .iter()
            .map(|dim| {
                let column = frame.column(dim.name()).map_err(|e| unreadable(&e))?;
                let values = column.str().map_err(|e| unreadable(&e))?;
                Ok(values.iter().map(|v| PlSmallStr::from(v.unwrap_or_default())).collect())
            })
            .collect::<Result<Vec<Vec<PlSmallStr>>>>()?;
        let metrics = metrics
            .into_iter()
            .map(|(name, ty)| {
                let column = frame.column(name).map_err(|e| unreadable(&e))?;
                let values: Vec<i128> = match ty {
                    ColumnType::Decimal => {
                        let c = column.decimal().map_err(|e| unreadable(&e))?;
                        c.physical().iter().map(|v| v.unwrap_or(0)).collect()
                    }
                    _ => {
                        let c = column.i64().map_err(|e| unreadable(&e))?;
                        c.iter().map(|v| i128::from(v.unwrap_or(0))).collect()
                    }
                };
                Ok((name, values))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(Arc::new(Table { len: frame.height(), keys, metrics })))
    }

    /// The manifest of a day (`YYYY-MM-DD`), or `None`.
    pub fn manifest(&self, day: &str) -> Result<Option<DayManifest>> {
        self.json(&publish::manifest_key(day))
    }

    /// The summary of source `name`, or `None` when it has none (yet).
    pub fn summary(&self, name: &str) -> Result<Option<Summary>> {
        if let Some(s) = self.overrides.get(name) {
            return Ok(Some(s.clone()));
        }
        self.json(&output::summary_key(name))
    }

    /// A stored JSON object, or `None` when there is none.
    fn json<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        match self.object(key)? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| Error::Internal { message: format!("{} is not readable: {e}", self.sink.uri(key)) }),
        }
    }
}

fn poisoned() -> Error {
    Error::Internal { message: "the report cache lock was poisoned".into() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{Counting, LocalDir};

    /// A sink whose reads take a while, so that two reads of one key would overlap.
    struct Slow(LocalDir);

    impl Sink for Slow {
        fn uri(&self, key: &str) -> String {
            self.0.uri(key)
        }
        fn put(&self, key: &str, body: crate::storage::Body<'_>, content_type: &str) -> Result<()> {
            self.0.put(key, body, content_type)
        }
        fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
            std::thread::sleep(std::time::Duration::from_millis(50));
            self.0.get(key)
        }
        fn delete(&self, key: &str) -> Result<()> {
            self.0.delete(key)
        }
        fn get_tagged(&self, key: &str) -> Result<Option<(Vec<u8>, String)>> {
            self.0.get_tagged(key)
        }
        fn head(&self, key: &str) -> Result<Option<crate::storage::Head>> {
            self.0.head(key)
        }
        fn put_if(
            &self,
            key: &str,
            bytes: &[u8],
            content_type: &str,
            condition: &crate::storage::Condition,
            generation: Option<u64>,
        ) -> Result<bool> {
            self.0.put_if(key, bytes, content_type, condition, generation)
        }
        fn list(&self, prefix: &str) -> Result<Vec<String>> {
            self.0.list(prefix)
        }
    }

    #[test]
    fn objects_a_run_wrote_are_read_without_fetching_them() {
        let dir = tempfile::tempdir().unwrap();
        let sink = LocalDir::new(dir.path()).unwrap();
        sink.put("a", crate::storage::Body::Bytes(b"stored"), "text/plain").unwrap();
        let counting = Counting::new(&sink);
        let published = Published::new(&counting).with_objects([("a".to_string(), Arc::new(b"written".to_vec()))]);
        published.prefetch(&["a".to_string()]).unwrap();
        assert_eq!(published.object("a").unwrap().as_deref(), Some(&b"written".to_vec()));
        assert_eq!(counting.requests().get, 0, "no GET for what the run wrote");
    }

    #[test]
    fn prefetch_reads_each_key_once_however_often_it_is_listed() {
        let dir = tempfile::tempdir().unwrap();
        let slow = Slow(LocalDir::new(dir.path()).unwrap());
        slow.put("a", crate::storage::Body::Bytes(b"1"), "text/plain").unwrap();
        let counting = Counting::new(&slow);
        let published = Published::new(&counting);
        let keys: Vec<String> = ["a", "missing", "a", "missing", "a"].map(String::from).into();
        published.prefetch(&keys).unwrap();
        assert_eq!(counting.requests().get, 2, "one GET per distinct key, present or not");
        published.prefetch(&keys).unwrap();
        assert_eq!(published.object("a").unwrap().as_deref(), Some(&b"1".to_vec()));
        assert_eq!(counting.requests().get, 2, "the second prefetch and the read are answered from the cache");
    }
}
