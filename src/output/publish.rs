//! Publication: from the partial states of every source to exactly one row set per hour and per day.
//!
//! Stored under the output root (README, "Output layout"):
//! - `_state/sources/<name>.json`: the [`SourceRecord`] of a source, the version it was last built from
//!   (S3 event `sequencer`, version id, ETag) and the keys of its partials. Updated by compare-and-swap.
//! - `_state/dt=YYYY-MM-DD/hour=HH/<name>-<digest>.partial`: one source's [`Partial`] of one hour, named by
//!   its content, never rewritten.
//! - `_state/dt=YYYY-MM-DD/manifest.json`: the [`DayManifest`], which partials make up each hour of the
//!   day, and a generation number raised by every change. Updated by compare-and-swap.
//! - `<table>/dt=…/hour=…/data.parquet` and `daily_<table>/dt=…/data.parquet`: the published tables, each
//!   computed from one generation of its day's manifest and carrying that generation.
//!
//! No lock service: every shared object is changed with a conditional write ([`Sink::put_if`], S3
//! `If-Match` / `If-None-Match`), retried after reading again when another writer got there first. A
//! table is replaced only by one computed from a newer generation ([`put_generation`]), so however runs
//! interleave, each hour and day ends up computed from the last generation of its manifest, which lists
//! every source's latest partials. Versions of one source are ordered by the S3 event's `sequencer`: an
//! older version's run, finishing after a newer one's, stands down ([`supersedes`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::aggregate::partial::{self, OwnDays, Partial, DAY_MICROS, HOUR_MICROS};
use crate::aggregate::tables::{Period, TableSpec};
use crate::contract::parse;
use crate::error::{Error, Result};
use crate::output;
use crate::output::summary::OutputFile;
use crate::storage::{Condition, Sink};

/// How often a conditional write is retried after losing to another writer before the run gives up
/// (with a retryable error). Each retry first reads the object again, so this bounds contention, not time.
const CAS_ATTEMPTS: usize = 200;

/// What a source's state was built from.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Version {
    /// The S3 event's `sequencer` (hex; orders the events of one key), `None` for a run started by hand.
    pub sequencer: Option<String>,
    pub version_id: Option<String>,
    pub etag: Option<String>,
}

/// Whether a run of version `incoming` may replace state built from `stored`. S3 documents that the
/// sequencers of one key compare as hex strings once the shorter is left-padded with zeros. A run started
/// by hand (no sequencer) always may, and any event may replace what a hand-started run stored. Equal
/// sequencers are the same event again (a retry), which may redo its work.
pub fn supersedes(incoming: Option<&str>, stored: Option<&str>) -> bool {
    match (incoming, stored) {
        (Some(a), Some(b)) => {
            let (a, b) = (a.to_ascii_uppercase(), b.to_ascii_uppercase());
            let width = a.len().max(b.len());
            format!("{a:0>width$}") >= format!("{b:0>width$}")
        }
        _ => true,
    }
}

/// What a source's latest version contributes: `present` with partials, or `failed` / `deleted` with none.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SourceRecord {
    pub format: u32,
    pub uri: String,
    pub status: String,
    pub version: Version,
    /// Partial keys by hour (RFC 3339 hour start).
    pub partials: BTreeMap<String, String>,
}

/// One source's entry in a day manifest: its partials of that day by hour (`HH`); none is a tombstone,
/// which keeps the version that removed them so an older one cannot bring them back.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Entry {
    pub uri: String,
    pub version: Version,
    pub partials: BTreeMap<String, String>,
    /// What the reports say of the source's data quality, recorded with its partials so that a report of a
    /// generation sees exactly that generation's sources (absent in manifests written before the reports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<SourceQuality>,
}

/// A source's data-quality facts, kept in the day manifests.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct SourceQuality {
    /// Valid rows by hour (RFC 3339 hour start), every hour of the file.
    pub lines_by_hour: BTreeMap<String, i64>,
    /// Rows the file rejected, and by reason (reasons with none left out).
    pub rejected: u64,
    pub rejects_by_reason: BTreeMap<String, u64>,
}

/// Which partials make up each hour of one UTC day.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct DayManifest {
    pub format: u32,
    /// `YYYY-MM-DD`.
    pub day: String,
    /// Raised by every change; the published tables carry the generation they were computed from.
    pub generation: u64,
    /// Every hour (`HH`) that ever had a partial: published again (empty) when its last source leaves.
    pub hours: BTreeSet<String>,
    /// Entries by source name.
    pub sources: BTreeMap<String, Entry>,
}

pub fn record_key(name: &str) -> String {
    format!("_state/sources/{name}.json")
}

pub fn manifest_key(day: &str) -> String {
    format!("_state/dt={day}/manifest.json")
}

/// Key of a table's published file for one hour or day.
pub fn table_key(table: &str, period: Period, start: i64) -> String {
    let (dt, hour) = parse::partition_values(start);
    match period {
        Period::Hour => format!("{table}/dt={dt}/hour={hour}/data.parquet"),
        Period::Day => format!("{table}/dt={dt}/data.parquet"),
    }
}

/// Key of a partial state: named by the XXH3-64 `digest` of its stored bytes.
fn partial_key(name: &str, hour_start: i64, digest: u64) -> String {
    let (dt, hour) = parse::partition_values(hour_start);
    format!("_state/dt={dt}/hour={hour}/{name}-{digest:016x}.partial")
}

/// `YYYY-MM-DD` and `HH` of an RFC 3339 hour start.
fn day_and_hour(hour: &str) -> (String, String) {
    (hour.get(..10).unwrap_or_default().to_string(), hour.get(11..13).unwrap_or_default().to_string())
}

/// The µs start of a day and hour.
fn start_of(day: &str, hour: Option<&str>) -> Result<i64> {
    let text = format!("{day}T{}:00:00Z", hour.unwrap_or("00"));
    parse::event_time_micros(text.as_bytes())
        .ok_or_else(|| Error::Internal { message: format!("not a day or hour in the state: {text}") })
}

/// An hour or day whose tables a run wrote, and the manifest generation they were computed from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeriodRef {
    pub period: Period,
    /// µs start of the hour or day.
    pub start: i64,
    pub generation: u64,
}

/// What a commit did.
#[derive(Debug, Default)]
pub struct Published {
    /// The tables this run wrote (others may have been written by a run with newer state).
    pub outputs: Vec<OutputFile>,
    /// The hours and days those tables belong to, in the order written (their reports follow them).
    pub periods: Vec<PeriodRef>,
    /// Other sources' state objects read from storage to compute them. (The run's own partials are read
    /// back too where another source shares their hour or day; those are not counted.)
    pub partials_read: usize,
    /// The bytes of the tables of those periods, by key, in the order written (a later one of a key
    /// replaces an earlier), for the reports to read without fetching them again.
    pub tables: WrittenTables,
}

/// Table files as a run wrote them: key and bytes.
#[derive(Default)]
pub struct WrittenTables(pub Vec<(String, std::sync::Arc<Vec<u8>>)>);

impl std::fmt::Debug for WrittenTables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} table files", self.0.len())
    }
}

fn parse_json<T: for<'de> Deserialize<'de>>(sink: &dyn Sink, key: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes)
        .map_err(|e| Error::Internal { message: format!("{} is not readable: {e}", sink.uri(key)) })
}

fn lost_races(uri: String) -> Error {
    Error::Storage {
        uri,
        message: format!("still losing to other writers after {CAS_ATTEMPTS} attempts"),
        retryable: true,
    }
}

/// A table of one hour or day, made before it is published: its name, Parquet bytes and rows.
#[derive(Debug)]
pub struct Encoded {
    table: String,
    bytes: std::sync::Arc<Vec<u8>>,
    rows: u64,
}

fn encode(period: Period, start: i64, merged: &mut [(&TableSpec, Vec<partial::Row>)]) -> Result<Vec<Encoded>> {
    merged
        .iter_mut()
        .map(|(spec, rows)| {
            let mut frame = partial::frame(spec, period, start, rows)?;
            let bytes = output::parquet_bytes(&mut frame)?;
            Ok(Encoded { table: spec.table_name(period), bytes: bytes.into(), rows: frame.height() as u64 })
        })
        .collect()
}

/// One hour of a run, made ready while its partial was in memory, so that a run holds one hour's partial
/// at a time: the partial in its stored form (a temporary file, stored by [`commit`]), and the hour's
/// tables as they are published when the day's manifest lists this partial alone for the hour. When the
/// run has no other hour of the day, the day's tables too, for a manifest that lists this partial alone for
/// the day. Where another source's partials share the hour or the day, this partial is read back (from its
/// temporary file where the storage did not move it there, so it is not downloaded again) and merged with
/// them. No file is held open: a file of many hours holds a path per hour, not a descriptor.
#[derive(Debug)]
pub struct OwnHour {
    pub hour_start: i64,
    state: Option<tempfile::TempPath>,
    /// The state's temporary file once it is stored, where the storage copied it rather than moved it.
    stored: Option<tempfile::TempPath>,
    digest: u64,
    hour: Vec<Encoded>,
    day: Option<Vec<Encoded>>,
}

impl OwnHour {
    /// `partial` made ready for [`commit`] under `tables`; `alone_in_day` when the run has no other hour
    /// of its day. `unmade` is what a partial of [`partial::from_groups`] comes with (required for it): it
    /// makes the order and customer dictionaries and maps the sets as the state is written; the rows take
    /// only the sets' lengths. A revenue that does not fit decimal(18,2) in a group is an error.
    pub fn prepare(
        partial: Partial,
        unmade: Option<&partial::Unmade<'_>>,
        tables: &[TableSpec],
        alone_in_day: bool,
    ) -> Result<OwnHour> {
        let (state, digest) = partial.encode_to_temp(unmade)?;
        let hour_start = partial.hour_start;
        let mut rows = partial::into_rows(partial, tables);
        let hour = encode(Period::Hour, hour_start, &mut rows)?;
        // The same rows make the day's tables (a frame leaves its rows as it would make them again).
        let day = match alone_in_day {
            true => Some(encode(Period::Day, partial::day_of(hour_start), &mut rows)?),
            false => None,
        };
        Ok(OwnHour { hour_start, state: Some(state.into_temp_path()), stored: None, digest, hour, day })
    }
}

/// Which source a commit is for: its output name, its URI and the version run.
#[derive(Clone, Copy, Debug)]
pub struct SourceRef<'a> {
    pub name: &'a str,
    pub uri: &'a str,
    pub version: &'a Version,
}

/// Replaces the contribution of source `name` by the partials of `hours` (none for a failed or deleted
/// source), with its data-quality facts, and publishes every hour and day it had or has, as `tables` (the
/// settings' tables).
/// Returns [`Error::Superseded`] when a newer version of the source has already been recorded (nothing is
/// changed then).
pub fn commit(
    sink: &dyn Sink,
    tables: &[TableSpec],
    source: SourceRef<'_>,
    status: &str,
    hours: Vec<OwnHour>,
    own_days: &OwnDays,
    quality: Option<&SourceQuality>,
) -> Result<Published> {
    let SourceRef { name, uri, version } = source;
    let record_key = record_key(name);
    let check = |stored: Option<&SourceRecord>| -> Result<()> {
        match stored {
            Some(r) if !supersedes(version.sequencer.as_deref(), r.version.sequencer.as_deref()) => {
                tracing::warn!(
                    stored = r.version.sequencer.as_deref().unwrap_or(""),
                    incoming = version.sequencer.as_deref().unwrap_or(""),
                    "a newer version of this source is already recorded; standing down"
                );
                Err(Error::Superseded { uri: uri.to_string() })
            }
            _ => Ok(()),
        }
    };
    let read_record = || -> Result<Option<(SourceRecord, String)>> {
        sink.get_tagged(&record_key)?.map(|(b, etag)| Ok((parse_json(sink, &record_key, &b)?, etag))).transpose()
    };
    check(read_record()?.as_ref().map(|(r, _)| r))?;

    // The partials first: a manifest never names a partial that is not stored.
    let mut own: HashMap<String, OwnHour> = HashMap::new();
    let mut keys = BTreeMap::new();
    let started = std::time::Instant::now();
    for mut hour in hours {
        let key = partial_key(name, hour.hour_start, hour.digest);
        let state = hour.state.take().ok_or_else(|| Error::Internal { message: format!("{key} stored twice") })?;
        hour.stored = sink.put_temp(&key, state, "application/octet-stream")?;
        keys.insert(parse::format_rfc3339(hour.hour_start), key.clone());
        own.insert(key, hour);
    }
    tracing::debug!(ms = started.elapsed().as_millis() as u64, "partials stored");
    let record = SourceRecord {
        format: 1,
        uri: uri.to_string(),
        status: status.to_string(),
        version: version.clone(),
        partials: keys.clone(),
    };
    let record_bytes = serde_json::to_vec(&record).expect("a record serialises");
    let mut previous = None;
    for attempt in 0.. {
        if attempt == CAS_ATTEMPTS {
            return Err(lost_races(sink.uri(&record_key)));
        }
        let stored = read_record()?;
        check(stored.as_ref().map(|(r, _)| r))?;
        let condition = stored.as_ref().map_or(Condition::Absent, |(_, etag)| Condition::Matches(etag.clone()));
        if sink.put_if(&record_key, &record_bytes, "application/json", &condition, None)? {
            previous = stored.map(|(r, _)| r);
            break;
        }
    }

    // Every day the source had or has, with the hours of it that change.
    let mut days: BTreeMap<String, (BTreeMap<String, String>, BTreeSet<String>)> = BTreeMap::new();
    for (hour, key) in &keys {
        let (day, hh) = day_and_hour(hour);
        let (now, touched) = days.entry(day).or_default();
        now.insert(hh.clone(), key.clone());
        touched.insert(hh);
    }
    let previous_keys: Vec<String> = previous.iter().flat_map(|r| r.partials.values().cloned()).collect();
    for hour in previous.iter().flat_map(|r| r.partials.keys()) {
        let (day, hh) = day_and_hour(hour);
        days.entry(day).or_default().1.insert(hh);
    }

    let mut published = Published::default();
    for (day, (now, touched)) in &days {
        let entry = Entry {
            uri: uri.to_string(),
            version: version.clone(),
            partials: now.clone(),
            quality: quality.filter(|_| !now.is_empty()).cloned(),
        };
        let Some(manifest) = update_manifest(sink, day, name, &entry)? else { continue };
        publish_day(sink, tables, manifest, touched, (&own, own_days), &mut published)?;
    }
    // Partials of the previous version that no manifest names any more.
    let kept: BTreeSet<&String> = keys.values().collect();
    for key in previous_keys.iter().filter(|k| !kept.contains(k)) {
        sink.delete(key)?;
    }
    Ok(published)
}

/// Sets `name`'s entry of `day`'s manifest to `entry`, unless a newer version's entry is there. Returns the
/// manifest as stored afterwards, or `None` when a newer version owns the entry (its run publishes).
fn update_manifest(sink: &dyn Sink, day: &str, name: &str, entry: &Entry) -> Result<Option<DayManifest>> {
    let key = manifest_key(day);
    for _ in 0..CAS_ATTEMPTS {
        let stored = sink.get_tagged(&key)?;
        let (mut manifest, condition) = match &stored {
            Some((bytes, etag)) => (parse_json::<DayManifest>(sink, &key, bytes)?, Condition::Matches(etag.clone())),
            None => (DayManifest { format: 1, day: day.to_string(), ..DayManifest::default() }, Condition::Absent),
        };
        match manifest.sources.get(name) {
            Some(e) if !supersedes(entry.version.sequencer.as_deref(), e.version.sequencer.as_deref()) => {
                return Ok(None);
            }
            Some(e) if e == entry => return Ok(Some(manifest)),
            _ => {}
        }
        manifest.sources.insert(name.to_string(), entry.clone());
        manifest.hours.extend(entry.partials.keys().cloned());
        manifest.generation += 1;
        let bytes = serde_json::to_vec(&manifest).expect("a manifest serialises");
        if sink.put_if(&key, &bytes, "application/json", &condition, None)? {
            return Ok(Some(manifest));
        }
    }
    Err(lost_races(sink.uri(&key)))
}

/// Reads `day`'s manifest, or `None` when there is none.
pub fn read_manifest(sink: &dyn Sink, day: &str) -> Result<Option<DayManifest>> {
    let key = manifest_key(day);
    sink.get(&key)?.map(|b| parse_json(sink, &key, &b)).transpose()
}

/// Publishes the hours `hours` of a day and the day itself from `manifest`. A partial that is gone (a newer
/// version of its source replaced it after this manifest was read) sends it back to the newest manifest.
fn publish_day(
    sink: &dyn Sink,
    tables: &[TableSpec],
    mut manifest: DayManifest,
    hours: &BTreeSet<String>,
    own: Own<'_>,
    published: &mut Published,
) -> Result<()> {
    for _ in 0..CAS_ATTEMPTS {
        match publish_from(sink, tables, &manifest, hours, own, published) {
            Err(Gone) => {
                let newer = read_manifest(sink, &manifest.day)?.ok_or_else(|| Error::Internal {
                    message: format!("the manifest of {} disappeared", manifest.day),
                })?;
                if newer.generation <= manifest.generation {
                    return Err(Error::Internal {
                        message: format!("a partial of {} named by its manifest is missing", manifest.day),
                    });
                }
                manifest = newer;
            }
            Ok(result) => return result,
        }
    }
    Err(lost_races(sink.uri(&manifest_key(&manifest.day))))
}

/// This run's hours by partial key, and the rows of its days of several hours.
type Own<'a> = (&'a HashMap<String, OwnHour>, &'a OwnDays);

/// A partial named by a manifest was not found.
struct Gone;

fn publish_from(
    sink: &dyn Sink,
    tables: &[TableSpec],
    manifest: &DayManifest,
    hours: &BTreeSet<String>,
    (own, own_days): Own<'_>,
    published: &mut Published,
) -> std::result::Result<Result<()>, Gone> {
    let day_start = match start_of(&manifest.day, None) {
        Ok(s) => s,
        Err(e) => return Ok(Err(e)),
    };
    let mut by_hour: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for entry in manifest.sources.values() {
        for (hh, key) in &entry.partials {
            by_hour.entry(hh.as_str()).or_default().push(key.as_str());
        }
    }
    // What the run made ready: an hour whose only partial is the run's, a day whose only partial is the
    // run's hour alone in it. A day whose partials are exactly the run's partials of it has its rows from
    // the run's groups (not after a retry with a newer manifest that lacks some of them, nor for a day of
    // no partials).
    let ready = |keys: &[&str]| match keys {
        [key] => own.get(*key),
        _ => None,
    };
    let ready_hour = |hh: &str| ready(by_hour.get(hh).map_or(&[], Vec::as_slice)).map(|o| o.hour.as_slice());
    let of_day: BTreeSet<&str> = by_hour.values().flatten().copied().collect();
    let own_of_day: BTreeSet<&str> =
        own.iter().filter(|(_, o)| partial::day_of(o.hour_start) == day_start).map(|(k, _)| k.as_str()).collect();
    let own_day = !of_day.is_empty() && of_day == own_of_day && own_days.has(day_start);
    let of_day: Vec<&str> = of_day.into_iter().collect();
    let ready_day = ready(&of_day).and_then(|o| o.day.as_deref());
    // Every other partial needed is read from storage, the run's own included.
    let mut needed: BTreeSet<&str> = BTreeSet::new();
    for hh in hours.iter().filter(|hh| ready_hour(hh).is_none()) {
        needed.extend(by_hour.get(hh.as_str()).into_iter().flatten());
    }
    if !own_day && ready_day.is_none() {
        needed.extend(&of_day);
    }
    let mut loaded: HashMap<&str, Partial> = HashMap::new();
    for key in needed {
        let mine = own.get(key);
        let read = match mine.and_then(|o| o.stored.as_ref()) {
            Some(path) => std::fs::read(path).map(Some).map_err(|source| Error::Internal {
                message: format!("the run's state of {key} could not be read back from {}: {source}", path.display()),
            }),
            None => sink.get(key),
        };
        match read {
            Ok(Some(bytes)) => match Partial::decode(&bytes) {
                Ok(p) => {
                    if let Some(why) = p.layout_mismatch(tables) {
                        return Ok(Err(Error::Storage {
                            uri: sink.uri(key),
                            message: format!(
                                "this partial state of the day does not fit the config's tables: {why}. A table \
                                 cannot change its keys, or add a distinct count, within a day that has states \
                                 written before: run the day's earlier exports again with this config (their states are \
                                 replaced), or give the changed table a new name"
                            ),
                            retryable: false,
                        }));
                    }
                    if mine.is_some() {
                        tracing::debug!(key, "the run's own partial read back to merge");
                    } else {
                        published.partials_read += 1;
                    }
                    loaded.insert(key, p);
                }
                Err(e) => return Ok(Err(e)),
            },
            Ok(None) => return Err(Gone),
            Err(e) => return Ok(Err(e)),
        }
    }
    let merge = |period: Period, start: i64, keys: &[&str]| {
        let started = std::time::Instant::now();
        let parts: Vec<&Partial> = keys.iter().map(|k| &loaded[k]).collect();
        let mut merged = partial::merge(&parts, tables);
        tracing::debug!(?period, ms = started.elapsed().as_millis() as u64, parts = parts.len(), "merged");
        encode(period, start, &mut merged)
    };
    let mut write = |period: Period, start: i64, encoded: &[Encoded]| -> Result<()> {
        let before = published.outputs.len();
        let mut current = false;
        for table in encoded {
            let key = table_key(&table.table, period, start);
            match put_generation(sink, &key, &table.bytes, PARQUET, manifest.generation, false)? {
                Stored::Written => {
                    current = true;
                    published.outputs.push(OutputFile {
                        table: table.table.clone(),
                        uri: sink.uri(&key),
                        rows: table.rows,
                    });
                    published.tables.0.push((key, table.bytes.clone()));
                }
                // Stored by this generation before (a retry after a failure later in the run): the period
                // is still this run's to report on, and the stored bytes are these (one generation, one
                // computation).
                Stored::Same => {
                    current = true;
                    published.tables.0.push((key, table.bytes.clone()));
                }
                Stored::Newer => {}
            }
        }
        debug_assert!(published.outputs.len() >= before);
        if current {
            published.periods.push(PeriodRef { period, start, generation: manifest.generation });
        }
        Ok(())
    };
    let result = (|| -> Result<()> {
        for hh in hours {
            let start = start_of(&manifest.day, Some(hh))?;
            debug_assert_eq!(partial::day_of(start), day_start);
            debug_assert!(start - day_start < DAY_MICROS && (start - day_start) % HOUR_MICROS == 0);
            match ready_hour(hh) {
                Some(encoded) => write(Period::Hour, start, encoded)?,
                None => write(
                    Period::Hour,
                    start,
                    &merge(Period::Hour, start, by_hour.get(hh.as_str()).map_or(&[], Vec::as_slice))?,
                )?,
            }
        }
        match ready_day {
            _ if own_day => {
                let mut rows = own_days.rows(day_start, tables).ok_or_else(|| Error::Internal {
                    message: format!("the run's rows of {} are not labelled", manifest.day),
                })?;
                write(Period::Day, day_start, &encode(Period::Day, day_start, &mut rows)?)
            }
            Some(encoded) => write(Period::Day, day_start, encoded),
            None => write(Period::Day, day_start, &merge(Period::Day, day_start, &of_day)?),
        }
    })();
    Ok(result)
}

const PARQUET: &str = "application/vnd.apache.parquet";

/// What [`put_generation`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stored {
    /// The object was written.
    Written,
    /// An object of the same generation was there and was kept.
    Same,
    /// An object of a newer generation was there and was kept.
    Newer,
}

/// Stores a published object computed from `generation` unless the stored one was computed from a newer
/// generation (or, without `replace_same`, from the same one): a compare-and-swap on the object's entity
/// tag, so an older computation that finishes late never replaces a newer one.
pub fn put_generation(
    sink: &dyn Sink,
    key: &str,
    bytes: &[u8],
    content_type: &str,
    generation: u64,
    replace_same: bool,
) -> Result<Stored> {
    for _ in 0..CAS_ATTEMPTS {
        let condition = match sink.head(key)? {
            Some(head) if head.generation.unwrap_or(0) > generation => return Ok(Stored::Newer),
            Some(head) if head.generation.unwrap_or(0) == generation && !replace_same => return Ok(Stored::Same),
            Some(head) => Condition::Matches(head.etag),
            None => Condition::Absent,
        };
        if sink.put_if(key, bytes, content_type, &condition, Some(generation))? {
            return Ok(Stored::Written);
        }
    }
    Err(lost_races(sink.uri(key)))
}

/// Recomputes and republishes every hour and day from the stored states (after an upgrade of the output
/// format, or to recover): each day's manifest generation is raised, so every table is rewritten.
/// Returns the days rebuilt and what was written.
pub fn rebuild(sink: &dyn Sink, tables: &[TableSpec]) -> Result<(Vec<String>, Published)> {
    let mut published = Published::default();
    let mut days = Vec::new();
    for key in sink.list("_state/dt=")? {
        let Some(day) = key.strip_prefix("_state/dt=").and_then(|k| k.strip_suffix("/manifest.json")) else {
            continue;
        };
        let manifest = bump(sink, day)?;
        let hours = manifest.hours.clone();
        publish_day(sink, tables, manifest, &hours, (&HashMap::new(), &OwnDays::default()), &mut published)?;
        // Every day's tables are rewritten: their bytes are not kept for the reports (read as needed).
        published.tables.0.clear();
        tracing::info!(day, "day rebuilt from its states");
        days.push(day.to_string());
    }
    Ok((days, published))
}

/// Raises the generation of `day`'s manifest, changing nothing else.
fn bump(sink: &dyn Sink, day: &str) -> Result<DayManifest> {
    let key = manifest_key(day);
    for _ in 0..CAS_ATTEMPTS {
        let (bytes, etag) = sink
            .get_tagged(&key)?
            .ok_or_else(|| Error::Internal { message: format!("{} disappeared", sink.uri(&key)) })?;
        let mut manifest: DayManifest = parse_json(sink, &key, &bytes)?;
        manifest.generation += 1;
        let bytes = serde_json::to_vec(&manifest).expect("a manifest serialises");
        if sink.put_if(&key, &bytes, "application/json", &Condition::Matches(etag), None)? {
            return Ok(manifest);
        }
    }
    Err(lost_races(sink.uri(&key)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_object_is_replaced_only_by_a_newer_generation_or_on_request_by_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let sink = crate::storage::LocalDir::new(dir.path()).unwrap();
        let put = |bytes: &[u8], generation, replace_same| {
            put_generation(&sink, "t/x.html", bytes, "text/html", generation, replace_same).unwrap()
        };
        assert_eq!(put(b"five", 5, false), Stored::Written);
        assert_eq!(put(b"four", 4, true), Stored::Newer, "an older generation never replaces a newer one");
        assert_eq!(put(b"five again", 5, false), Stored::Same);
        assert_eq!(sink.get("t/x.html").unwrap().unwrap(), b"five");
        assert_eq!(put(b"five again", 5, true), Stored::Written, "a retry of the same generation may");
        assert_eq!(sink.get("t/x.html").unwrap().unwrap(), b"five again");
        assert_eq!(put(b"six", 6, false), Stored::Written);
        assert_eq!(sink.head("t/x.html").unwrap().unwrap().generation, Some(6));
    }

    /// A partial of `hourly_kpis` alone: one group of one line, one order (id hash `id`) and `revenue`.
    fn kpis_partial(hour_start: i64, id: u128, revenue: i128) -> Partial {
        use crate::aggregate::partial::{GroupPartial, Layout, TablePartial};
        Partial {
            hour_start,
            ids: [vec![id], vec![], vec![]],
            tables: vec![TablePartial {
                name: "hourly_kpis".into(),
                layout: Some(Layout::of(crate::settings::Settings::default_ref().table("hourly_kpis").unwrap())),
                groups: vec![GroupPartial {
                    keys: vec![],
                    lines: 1,
                    units: 1,
                    revenue,
                    sets: [[0].into_iter().collect(), Default::default(), Default::default()],
                }],
            }],
        }
    }

    #[test]
    fn a_day_is_taken_from_the_runs_groups_only_when_its_partials_are_exactly_the_runs() {
        use crate::aggregate::partial::Row;
        let day = start_of("2026-11-22", None).unwrap();
        let hour = |h: i64, revenue: i128| kpis_partial(day + h * HOUR_MICROS, h as u128, revenue);
        let tables = crate::aggregate::tables::DEFAULT_TABLES;
        let (p10, p11) = (hour(10, 100), hour(11, 200));
        let ready = |p: &Partial| OwnHour::prepare(p.clone(), None, tables, false).unwrap();
        let own: HashMap<String, OwnHour> =
            HashMap::from([("k10".to_string(), ready(&p10)), ("k11".to_string(), ready(&p11))]);
        // Rows that no merge of these partials gives: where they are published, the run's groups were used.
        let fake = OwnDays::with_rows(
            day,
            vec![("hourly_kpis", vec![Row { keys: vec![], lines: 9, units: 9, revenue: 99_900, distinct: [9, 0, 0] }])],
        );
        let daily = |hours: &[(&str, &str)], own_days: &OwnDays| -> Vec<u8> {
            let dir = tempfile::tempdir().unwrap();
            let sink = crate::storage::LocalDir::new(dir.path()).unwrap();
            // Stored as commit stores them: a day merged from them reads them back.
            for (key, p) in [("k10", &p10), ("k11", &p11)] {
                sink.put(key, crate::storage::Body::Bytes(&p.encode()), "application/octet-stream").unwrap();
            }
            let entry = Entry {
                uri: "file:///x.csv".into(),
                version: Version::default(),
                partials: hours.iter().map(|(h, k)| (h.to_string(), k.to_string())).collect(),
                quality: None,
            };
            let manifest = DayManifest {
                format: 1,
                day: "2026-11-22".into(),
                generation: 2,
                hours: ["10".to_string(), "11".to_string()].into(),
                sources: BTreeMap::from([("x".to_string(), entry)]),
            };
            let hours: BTreeSet<String> = manifest.hours.clone();
            let mut published = Published::default();
            assert!(matches!(
                publish_from(&sink, tables, &manifest, &hours, (&own, own_days), &mut published),
                Ok(Ok(()))
            ));
            sink.get(&table_key("daily_kpis", Period::Day, day)).unwrap().expect("the day is published")
        };
        let none = OwnDays::default();
        let both = [("10", "k10"), ("11", "k11")];
        assert_ne!(daily(&both, &fake), daily(&both, &none), "the run's two hours: its groups give the day");
        // A newer manifest (a retry after a newer version of the source withdrew hour 11) lists only one of
        // the run's partials: the day is merged from what it lists.
        assert_eq!(daily(&both[..1], &fake), daily(&both[..1], &none));
    }

    #[test]
    fn the_runs_partial_of_a_shared_hour_is_read_back_from_its_own_file() {
        let day = start_of("2026-11-22", None).unwrap();
        let partial = |id: u128, revenue: i128| kpis_partial(day + 10 * HOUR_MICROS, id, revenue);
        let tables = crate::aggregate::tables::DEFAULT_TABLES;
        let (mine, theirs) = (partial(1, 100), partial(2, 250));
        let manifest = DayManifest {
            format: 1,
            day: "2026-11-22".into(),
            generation: 3,
            hours: ["10".to_string()].into(),
            sources: [("mine", "k-mine"), ("theirs", "k-theirs")]
                .into_iter()
                .map(|(name, key)| {
                    let entry = Entry {
                        uri: format!("file:///{name}.csv"),
                        version: Version::default(),
                        partials: BTreeMap::from([("10".to_string(), key.to_string())]),
                        quality: None,
                    };
                    (name.to_string(), entry)
                })
                .collect(),
        };
        let hourly = |own: &HashMap<String, OwnHour>, stored: &[(&str, &Partial)]| -> (Vec<u8>, usize) {
            let dir = tempfile::tempdir().unwrap();
            let sink = crate::storage::LocalDir::new(dir.path()).unwrap();
            for (key, p) in stored {
                sink.put(key, crate::storage::Body::Bytes(&p.encode()), "application/octet-stream").unwrap();
            }
            let mut published = Published::default();
            let hours = manifest.hours.clone();
            assert!(matches!(
                publish_from(&sink, tables, &manifest, &hours, (own, &OwnDays::default()), &mut published),
                Ok(Ok(()))
            ));
            let key = table_key("hourly_kpis", Period::Hour, day + 10 * HOUR_MICROS);
            (sink.get(&key).unwrap().expect("the hour is published"), published.partials_read)
        };
        // Both states in storage, none of them the run's: the general merge.
        let (want, read) = hourly(&HashMap::new(), &[("k-mine", &mine), ("k-theirs", &theirs)]);
        assert_eq!(read, 2);
        // The run's state is not in storage (as if it could not be downloaded): it is read from its file.
        let mut ready = OwnHour::prepare(mine.clone(), None, tables, true).unwrap();
        ready.stored = ready.state.take();
        let own = HashMap::from([("k-mine".to_string(), ready)]);
        let (got, read) = hourly(&own, &[("k-theirs", &theirs)]);
        assert_eq!(got, want, "the shared hour merges the run's state with the other source's");
        assert_eq!(read, 1, "only the other source's state counts as read");
    }

    /// A file of many hours (a backfill) holds a prepared state per hour until its commit: a path each, not
    /// an open file, or a run of a thousand hours would run out of descriptors.
    #[cfg(target_os = "linux")]
    #[test]
    fn prepared_hours_hold_no_open_files() {
        let open = || std::fs::read_dir("/proc/self/fd").unwrap().count();
        let tables = crate::aggregate::tables::DEFAULT_TABLES;
        let before = open();
        let hours: Vec<OwnHour> = (0..64)
            .map(|h| {
                let partial = kpis_partial(start_of("2026-11-22", None).unwrap() + h * HOUR_MICROS, h as u128, 100);
                OwnHour::prepare(partial, None, tables, true).unwrap()
            })
            .collect();
        assert!(hours.iter().all(|h| h.state.as_ref().is_some_and(|p| p.exists())), "the states wait in files");
        assert!(open() < before + 8, "{} files open for {} prepared hours", open() - before, hours.len());
    }

    #[test]
    fn sequencers_compare_as_padded_hex() {
        assert!(supersedes(Some("0055AED6DCD90281E6"), Some("0055AED6DCD90281E5")));
        assert!(!supersedes(Some("0055AED6DCD90281E5"), Some("0055AED6DCD90281E6")));
        assert!(supersedes(Some("0055AED6DCD90281E5"), Some("0055AED6DCD90281E5")), "the same event again");
        // Different lengths: left-padded with zeros first.
        assert!(supersedes(Some("100"), Some("FF")));
        assert!(!supersedes(Some("FF"), Some("100")));
        assert!(supersedes(Some("ab"), Some("AA")), "hex case does not matter");
        assert!(supersedes(None, Some("FF")), "a run by hand always may");
        assert!(supersedes(Some("01"), None));
    }

    #[test]
    fn keys_follow_the_layout() {
        let hour = 1_795_352_400_000_000; // 2026-11-22T13:00Z
        assert_eq!(table_key("hourly_kpis", Period::Hour, hour), "hourly_kpis/dt=2026-11-22/hour=13/data.parquet");
        assert_eq!(table_key("daily_kpis", Period::Day, hour), "daily_kpis/dt=2026-11-22/data.parquet");
        assert_eq!(manifest_key("2026-11-22"), "_state/dt=2026-11-22/manifest.json");
        assert_eq!(partial_key("x-1", hour, 0xab), "_state/dt=2026-11-22/hour=13/x-1-00000000000000ab.partial");
        assert_eq!(day_and_hour("2026-11-22T13:00:00Z"), ("2026-11-22".into(), "13".into()));
        assert_eq!(start_of("2026-11-22", Some("13")).unwrap(), hour);
    }
}
