//! One run: input stream -> contract -> aggregation -> outputs -> summary.
//!
//! The input is read record by record ([`RecordReader`], borrowed views of its buffer); valid rows fill a
//! columnar chunk which is handed on every [`Options::chunk_rows`] rows, so memory does not grow with the file.
//! With two or more CPUs, reading and gzip decoding ([`input::prefetch`]), validation (the calling thread),
//! id interning ([`IdInterners`]) and aggregation ([`Engine`]) each run on a thread, linked by bounded
//! channels ([`StageMode::Threads`]). On one CPU they all run one after the other on the calling thread,
//! chunk by chunk ([`StageMode::Inline`]): threads taking turns on one core only add switches and evict
//! each other's data from the cache.
//! Outputs are written in a fixed order: the run's partial states and their publication into the hour and
//! day tables ([`crate::output::publish`]), the rejects file, and the summary last.

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use polars::error::PolarsError;

use crate::aggregate::intern::IdInterners;
use crate::aggregate::partial::{self, Partial};
use crate::aggregate::{Engine, MAX_DECIMAL_18_2};
use crate::contract::parse;
use crate::contract::{accept_row, Chunk, Dictionaries, Header, RejectReason};
use crate::error::{Error, InputError, Result};
use crate::memory;
use crate::output::publish::{self, Published, SourceRef, Version};
use crate::output::summary::{reason_counts, ErrorInfo, HourNumbers, Rows, Status, Summary, Totals};
use crate::output::{self, RejectsWriter};
use crate::read::input::{self, Input, SourceInfo};
use crate::read::records::{RecordReader, Refill};
use crate::settings::Settings;
use crate::storage::{Body, Sink};

/// Valid rows per chunk when the stages run on their own threads. Five chunks can be alive at once (filling,
/// two queued, interning, aggregating), so this sets the memory not spent on distinct keys: smaller
/// chunks cost a little time for much less peak memory (docs/benchmarks.md).
pub const THREADED_CHUNK_ROWS: usize = 64 * 1024;

/// Valid rows per chunk when every stage runs on one thread: only one chunk is alive, so it can be larger
/// (fewer groupings and bitmap merges per row); 128 Ki rows is faster than 64 Ki or 256 Ki
/// (docs/benchmarks.md).
pub const INLINE_CHUNK_ROWS: usize = 128 * 1024;

/// Up to this many hours in a file, each hour's id dictionaries are hashed from the interners' keys as
/// the hour's state is written: a walk over every key per slice of a dictionary (or, for one numbered
/// family, keys made by code), and no hash kept per id.
/// A file of more hours (a backfill) hashes every id once instead, into vectors kept through its hours
/// (16 bytes per id): a 24-hour file took 5% longer with a walk per hour (docs/benchmarks.md, seventh
/// pass).
const HASHED_PER_HOUR_UP_TO: usize = 4;

/// Tuning knobs of a run.
#[derive(Clone, Debug)]
pub struct Options {
    /// Valid rows per chunk handed to the aggregation engine; `None`: by the stage mode
    /// ([`THREADED_CHUNK_ROWS`], [`INLINE_CHUNK_ROWS`]).
    pub chunk_rows: Option<usize>,
    /// How often to log progress on long inputs.
    pub progress_every: Duration,
    /// The Lambda request id, recorded in the summary.
    pub request_id: Option<String>,
    /// Configured Lambda memory in MB; when known, the summary carries an estimated cost.
    pub memory_mb: Option<u32>,
    /// The largest record accepted; a larger one (an unclosed quote, binary data) fails the file as
    /// `corrupt_input` instead of filling memory.
    pub max_record_bytes: u64,
    /// How the stages after reading share the CPU.
    pub stages: StageMode,
    /// When the invocation ends (Lambda's deadline). A run that cannot finish before it, as projected
    /// from its progress plus a margin for the writes ([`needed_time`]), stops with [`Error::Deadline`]
    /// before writing anything.
    pub deadline: Option<std::time::SystemTime>,
    /// The largest rejects file kept in temporary space; more fails the input as `rejects_too_large`.
    pub max_rejects_bytes: u64,
    /// How the reports link to themselves (the digest's link).
    pub report: crate::output::report::Options,
    /// The export's mapping, the dimensions and the tables (a config file, or the defaults).
    pub settings: &'static Settings,
}

/// The default of [`Options::max_rejects_bytes`]: half of Lambda's free 512 MB of /tmp (template.yaml
/// gives 1024 MB), leaving room for the partial states of the run's hours, which wait there until they
/// are published (up to a fifth of the input's size).
pub const MAX_REJECTS_MIB: u64 = 256;

/// How validation, id interning and aggregation run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum StageMode {
    /// `inline` when the process may use only one CPU, or is a Lambda with 1769 MB or less (one vCPU's
    /// worth of CPU time); `threads` otherwise.
    #[default]
    Auto,
    /// Each stage on its own thread, reading too (uses two cores).
    Threads,
    /// All stages on one thread, chunk after chunk, reading too (best on one core).
    Inline,
}

/// A resolved [`StageMode`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stages {
    Threads,
    Inline,
}

/// Lambda memory at or below which a function gets at most one vCPU's worth of CPU time (AWS allots CPU in
/// proportion to memory: one full vCPU at 1769 MB), however many vCPUs it can see.
const ONE_VCPU_MB: u32 = 1769;

impl StageMode {
    /// `Auto` picks `Inline` when this process may run on one CPU only, or when it is a Lambda with one
    /// vCPU's worth of CPU time or less (`memory_mb`).
    fn resolve(self, memory_mb: Option<u32>) -> Stages {
        match self {
            StageMode::Threads => Stages::Threads,
            StageMode::Inline => Stages::Inline,
            StageMode::Auto => {
                let one_cpu = std::thread::available_parallelism().is_ok_and(|n| n.get() == 1);
                if one_cpu || memory_mb.is_some_and(|mb| mb <= ONE_VCPU_MB) {
                    Stages::Inline
                } else {
                    Stages::Threads
                }
            }
        }
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            chunk_rows: None,
            progress_every: Duration::from_secs(5),
            request_id: None,
            memory_mb: None,
            max_record_bytes: 32 * 1024 * 1024,
            stages: StageMode::Auto,
            deadline: None,
            max_rejects_bytes: MAX_REJECTS_MIB << 20,
            report: crate::output::report::Options::default(),
            settings: Settings::default_ref(),
        }
    }
}

/// The time a run that has taken `elapsed` and read `fraction` of its input (when known) still needs:
/// the rest of the input at the pace so far, plus a margin for storing and publishing (1 s and a quarter
/// of the time so far: the state to write grows with the input).
pub fn needed_time(elapsed: Duration, fraction: Option<f64>) -> Duration {
    let rest = match fraction {
        Some(f) if f > 0.0 && f < 1.0 => elapsed.mul_f64((1.0 - f) / f),
        _ => Duration::ZERO,
    };
    rest + Duration::from_secs(1) + elapsed / 4
}

/// `Err(Error::Deadline)` when the time left before `deadline` is less than [`needed_time`].
fn check_deadline(
    deadline: Option<std::time::SystemTime>,
    started: Instant,
    fraction: Option<f64>,
    at: &str,
) -> Result<()> {
    let Some(deadline) = deadline else { return Ok(()) };
    let elapsed = started.elapsed();
    let left = deadline.duration_since(std::time::SystemTime::now()).unwrap_or_default();
    let needed = needed_time(elapsed, fraction);
    if needed <= left {
        return Ok(());
    }
    let message = format!(
        "{at} after {:.1} s, {:.1} s were left and about {:.1} s more are needed; nothing was written. A complete \
         run later (Lambda's retry, or a function with a longer Timeout) writes the outputs.",
        elapsed.as_secs_f64(),
        left.as_secs_f64(),
        needed.as_secs_f64()
    );
    tracing::error!(%message, "stopping before the invocation deadline");
    Err(Error::Deadline { message })
}

/// What reading and aggregating an input produced.
struct Processed {
    header: Header,
    rows: Rows,
    rejects_by_reason: BTreeMap<RejectReason, u64>,
    rejects: Option<tempfile::NamedTempFile>,
    /// One partial state per hour present, made ready to store and publish.
    hours: Vec<publish::OwnHour>,
    /// The rows of its days of several hours.
    days: partial::OwnDays,
    /// This source's own numbers per hour (for the summary).
    by_hour: Vec<HourNumbers>,
    /// The end phase of the run's memory settings, begun when aggregation ended.
    end_phase: Option<memory::EndPhase>,
}

/// Runs the whole pipeline on one input and writes every output to `sink`. Returns the summary, which is
/// also stored. An input rejected as a whole gives `Ok` with a `failed` summary; `Err` means the outputs
/// could not be produced or stored (nothing claims success then).
pub fn run(input: Input, sink: &dyn Sink, options: &Options) -> Result<Summary> {
    run_guarded(input, sink, options, &|| Ok(true))
}

/// [`run`], with `still_current` asked right before the first write: when it answers `false` (the source
/// object was replaced while this run read it), nothing is written and [`Error::Superseded`] is returned.
pub fn run_guarded(
    input: Input,
    sink: &dyn Sink,
    options: &Options,
    still_current: &dyn Fn() -> Result<bool>,
) -> Result<Summary> {
    let started = Instant::now();
    let source = input.info.clone();
    let name = output::output_name(&source.uri);
    let span = tracing::info_span!("run", source = %source.uri);
    let _enter = span.enter();
    tracing::info!(bytes = source.bytes, "processing input");

    let mut processed = process(input.reader, &source, options, started);
    // The end phase's memory settings (crate::memory) last through publishing and the reports.
    let _end_phase = processed.as_mut().ok().and_then(|p| p.end_phase.take());
    check_deadline(options.deadline, started, None, "the input was read")?;
    let counted = crate::storage::Counting::new(sink);
    let sink: &dyn Sink = &counted;
    if !still_current()? {
        tracing::warn!("source changed while it was processed; standing down for the newer object");
        return Err(Error::Superseded { uri: source.uri.clone() });
    }
    let version = Version {
        sequencer: source.sequencer.clone(),
        version_id: source.version_id.clone(),
        etag: source.etag.clone(),
    };
    let (tables, me) = (&options.settings.tables, SourceRef { name: &name, uri: &source.uri, version: &version });
    let written_tables;
    let (summary, periods) = match processed {
        Ok(mut p) => {
            let started = Instant::now();
            let quality = publish::SourceQuality {
                lines_by_hour: p.by_hour.iter().map(|h| (h.hour.clone(), h.order_lines)).collect(),
                rejected: p.rows.rejected,
                rejects_by_reason: p.rejects_by_reason.iter().map(|(r, &n)| (r.as_str().to_string(), n)).collect(),
            };
            let mut published =
                publish::commit(sink, tables, me, "present", std::mem::take(&mut p.hours), &p.days, Some(&quality))?;
            written_tables = std::mem::take(&mut published.tables);
            tracing::debug!(ms = started.elapsed().as_millis() as u64, "states stored and hours published");
            let periods = published.periods.clone();
            (write_outputs(p, published, sink, &name, &source)?, periods)
        }
        Err(Error::Input(e)) => {
            tracing::error!(kind = e.kind(), error = %e, "input rejected as a whole");
            let mut published = publish::commit(sink, tables, me, "failed", Vec::new(), &Default::default(), None)?;
            written_tables = std::mem::take(&mut published.tables);
            sink.delete(&output::rejects_key(&name))?;
            (Summary { outputs: published.outputs, ..failed_summary(&source, &e) }, published.periods)
        }
        Err(e) => return Err(e),
    };
    // Reports of the hours and days just published, from their tables (those this run wrote as it wrote
    // them, not fetched again); this run's summary is not stored yet, so they read it from memory. The
    // digest is of the file's main hour (most rows).
    let data = crate::output::report::Published::new(sink)
        .with_tables(&options.settings.tables)
        .with_objects(written_tables.0)
        .with_summary(summary.clone());
    let main_hour =
        summary.by_hour.iter().max_by_key(|h| h.order_lines).and_then(|h| parse::event_time_micros(h.hour.as_bytes()));
    let written = reports(crate::output::report::publish(&data, &periods, &options.report, main_hour))?;
    let digest = written.digest.filter(|_| summary.status == Status::Succeeded);
    let summary = Summary { reports: written.reports, digest, ..summary };
    let duration_ms = started.elapsed().as_millis() as u64;
    let summary = Summary {
        duration_ms,
        request_id: options.request_id.clone(),
        estimated_cost_usd: options.memory_mb.map(|mb| crate::lambda::metrics::estimated_cost_usd(duration_ms, mb)),
        ..summary
    };
    let key = output::summary_key(&name);
    // The summary's own PUT is counted in it.
    let mut requests = counted.requests();
    requests.put += 1;
    let summary = Summary { requests, ..summary };
    sink.put(&key, Body::Bytes(summary.to_json_line().as_bytes()), "application/json")?;
    tracing::info!(
        status = ?summary.status,
        rows_read = summary.rows.read,
        rows_valid = summary.rows.valid,
        rows_rejected = summary.rows.rejected,
        bytes = source.bytes,
        duration_ms = summary.duration_ms,
        "run finished"
    );
    memory::note("run finished");
    Ok(summary)
}

/// Removes a source: its partial states leave every hour and day they fed, which are published again, and
/// its summary and rejects file are deleted. `sequencer` is the deletion event's, so that an older upload's
/// late run cannot bring the source back. Returns what was published (the reports of the hours and days it
/// fed are written again too).
pub fn forget(
    sink: &dyn Sink,
    uri: &str,
    sequencer: Option<String>,
    report: &crate::output::report::Options,
    settings: &'static Settings,
) -> Result<Published> {
    let name = output::output_name(uri);
    let version = Version { sequencer, ..Version::default() };
    let mut published = publish::commit(
        sink,
        &settings.tables,
        SourceRef { name: &name, uri, version: &version },
        "deleted",
        Vec::new(),
        &Default::default(),
        None,
    )?;
    sink.delete(&output::rejects_key(&name))?;
    sink.delete(&output::summary_key(&name))?;
    let data = crate::output::report::Published::new(sink)
        .with_tables(&settings.tables)
        .with_objects(std::mem::take(&mut published.tables).0);
    reports(crate::output::report::publish(&data, &published.periods, report, None))?;
    tracing::info!(source = uri, tables = published.outputs.len(), "source forgotten");
    Ok(published)
}

/// The reports are part of publishing, but a report that cannot be built must not hold the tables hostage:
/// trouble worth retrying (storage) fails the run, so Lambda retries it and the retry writes the pages
/// (the tables stand; [`publish`] reports the periods of its generation again); anything else is logged as
/// an ERROR and the run goes on without its pages.
fn reports(result: Result<crate::output::report::Written>) -> Result<crate::output::report::Written> {
    match result {
        Err(e) if !e.is_retryable() => {
            tracing::error!(error = %e, "the reports could not be written; the tables are published");
            Ok(crate::output::report::Written::default())
        }
        other => other,
    }
}

fn process(
    reader: Box<dyn Read + Send>,
    source: &SourceInfo,
    options: &Options,
    started: Instant,
) -> Result<Processed> {
    let read_err = |e: std::io::Error| match (input::decode_error(&e), input::unsupported(&e)) {
        (Some(d), _) => Error::Input(InputError::CorruptInput { message: d.to_string() }),
        (_, Some(input::Unsupported::Encoding(m))) => {
            Error::Input(InputError::UnsupportedEncoding { message: m.clone() })
        }
        (_, Some(input::Unsupported::Compression(m))) => {
            Error::Input(InputError::UnsupportedCompression { message: m.clone() })
        }
        (None, None) => Error::Read { uri: source.uri.clone(), source: e },
    };
    let stages = options.stages.resolve(options.memory_mb);
    let input = &options.settings.input;
    let decoded = input::decoded_as(reader, input.encoding).map_err(read_err)?;
    let delimiter =
        crate::read::records::Delimiter::new(input.delimiter).map_err(|message| Error::Internal { message })?;
    match stages {
        // On one CPU, reading and gzip decoding run on the parsing thread too: a reader thread would only take
        // turns with it on the core, and hand over a buffer (a wake-up and a switch) every 256 KiB
        // (docs/benchmarks.md).
        Stages::Inline => {
            let reader = RecordReader::with_delimiter(decoded, options.max_record_bytes, delimiter);
            records(reader, stages, options, &read_err, source, started)
        }
        Stages::Threads => {
            let prefetched = input::prefetch(decoded).map_err(read_err)?;
            records(
                RecordReader::with_delimiter(prefetched, options.max_record_bytes, delimiter),
                stages,
                options,
                &read_err,
                source,
                started,
            )
        }
    }
}

/// Validates, interns and aggregates the records of `reader` ([`process`]).
fn records<R: Refill>(
    mut reader: RecordReader<R>,
    stages: Stages,
    options: &Options,
    read_err: &dyn Fn(std::io::Error) -> Error,
    source: &SourceInfo,
    started: Instant,
) -> Result<Processed> {
    // No record at all: a 0-byte file, an empty gzip body, or only blank lines.
    let Some((_, first)) = reader.read().map_err(read_err)? else {
        return Err(InputError::EmptyFile.into());
    };
    let record = first.to_byte_record();
    if record.as_slice().contains(&0) {
        return Err(InputError::InvalidHeader {
            message: "binary data (NUL bytes): this is not a CSV text file".into(),
        }
        .into());
    }
    let header = Header::resolve_with(&record, options.settings)?;
    if !header.ignored.is_empty() {
        tracing::info!(columns = ?header.ignored, "ignoring unknown columns");
    }

    let chunk_rows = options.chunk_rows.unwrap_or(match stages {
        Stages::Threads => THREADED_CHUNK_ROWS,
        Stages::Inline => INLINE_CHUNK_ROWS,
    });
    tracing::debug!(?stages, chunk_rows, "pipeline stages");
    let mut v = Validation {
        header,
        chunk_rows,
        progress_every: options.progress_every,
        read_err,
        dicts: Dictionaries::new(options.settings),
        settings: options.settings,
        rejects: None,
        rows: Rows::default(),
        by_reason: BTreeMap::new(),
        deadline: options.deadline,
        started,
        max_rejects_bytes: options.max_rejects_bytes,
        input_bytes: source.bytes,
    };
    let (engine, mut ids) = match stages {
        Stages::Inline => inline(&mut reader, &mut v)?,
        Stages::Threads => threaded(&mut reader, &mut v)?,
    };
    tracing::debug!(
        orders = ids.orders.len(),
        orders_mb = ids.orders.heap_bytes() as f64 / 1e6,
        customers = ids.customers.len(),
        customers_mb = ids.customers.heap_bytes() as f64 / 1e6,
        dense_families = ids.orders.dense_families() + ids.customers.dense_families(),
        groups_mb = engine.state_bytes() as f64 / 1e6,
        "distinct-key state"
    );
    memory::note("aggregated");
    let started = Instant::now();
    // From here on (to the end of the run's publishing), large blocks are mapped apart and the heap's free
    // pages handed back (crate::memory).
    let end_phase = memory::end_phase();
    let groups = engine.finish();
    memory::give_back();
    memory::note("groups summed up");
    tracing::debug!(ms = started.elapsed().as_millis() as u64, "groups summed up");
    // The key values' order, by code, for the days' rows and the partials' groups.
    let ranks = partial::KeyRanks::new(&v.dicts, groups.iter().map(|(spec, _)| *spec));
    let days = partial::OwnDays::of(&groups, &ranks);
    tracing::debug!(ms = started.elapsed().as_millis() as u64, "days of the run summed up");
    // What only finds ids is freed; each hour's dictionaries are made from the interners' keys.
    ids.orders.end_lookups();
    ids.customers.end_lookups();
    memory::give_back();
    // One hour at a time: its partial is built, its numbers taken, its stored form and tables made, and
    // it is dropped before the next hour's is built.
    let tables = &options.settings.tables;
    // A revenue that does not fit decimal(18,2) in a group fails the file before any state is written.
    if let Some((spec, group)) =
        groups.iter().find_map(|(spec, gs)| gs.iter().find(|g| g.revenue > MAX_DECIMAL_18_2).map(|g| (spec, g)))
    {
        return Err(InputError::RevenueOverflow {
            message: format!("table {} has revenue {} cents in one group", spec.name, group.revenue),
        }
        .into());
    }
    let (mut hours, mut numbers) = (Vec::new(), OwnNumbers::default());
    let of_groups = partial::hours_of(&groups);
    let mut each = |p: Partial, unmade: &partial::Unmade<'_>| -> Result<()> {
        numbers.add(&p, tables);
        let (hour_start, alone_in_day) = (p.hour_start, !days.has(partial::day_of(p.hour_start)));
        hours.push(publish::OwnHour::prepare(p, Some(unmade), tables, alone_in_day)?);
        // (Not after the last hour: what follows reuses the kept pages, and the peak is behind.)
        if of_groups.last() != Some(&hour_start) {
            memory::give_back();
        }
        memory::note("hour prepared");
        Ok(())
    };
    if of_groups.len() <= HASHED_PER_HOUR_UP_TO {
        partial::from_groups(groups, &of_groups, &v.dicts, &ranks, &ids.orders, &ids.customers, &mut each)?;
        drop(ids);
    } else {
        let all = (ids.orders.hashes(), ids.customers.hashes());
        drop(ids);
        partial::from_groups(groups, &of_groups, &v.dicts, &ranks, &all.0, &all.1, &mut each)?;
    }
    hours.sort_by_key(|h| h.hour_start);
    let days = days.labelled_by(v.dicts);
    tracing::debug!(ms = started.elapsed().as_millis() as u64, hours = hours.len(), "partial states built");
    let by_hour = numbers.finish()?;
    let rejects = v.rejects.map(RejectsWriter::finish).transpose()?;
    Ok(Processed {
        header: v.header,
        rows: v.rows,
        rejects_by_reason: v.by_reason,
        rejects,
        hours,
        days,
        by_hour,
        end_phase: Some(end_phase),
    })
}

/// This source's numbers per hour, from its own partials; a revenue that does not fit decimal(18,2) in the
/// source's part of a day fails the file as a whole (one of a group is found before the partials are built).
#[derive(Default)]
struct OwnNumbers {
    hours: Vec<HourNumbers>,
    days: BTreeMap<i64, i128>,
}

impl OwnNumbers {
    fn add(&mut self, p: &Partial, specs: &[crate::aggregate::tables::TableSpec]) {
        let Some(t) = partial::totals(p, specs) else { return };
        *self.days.entry(partial::day_of(p.hour_start)).or_default() += t.revenue;
        self.hours.push(HourNumbers {
            hour: parse::format_rfc3339(p.hour_start),
            order_lines: t.lines,
            orders: t.orders.unwrap_or(0),
            customers: t.customers.unwrap_or(0),
            units: t.units,
            revenue: parse::format_cents(t.revenue),
            revenue_cents: t.revenue,
        });
    }

    /// The hours' numbers, in order.
    fn finish(mut self) -> Result<Vec<HourNumbers>> {
        if let Some((day, cents)) = self.days.iter().find(|(_, &c)| c > MAX_DECIMAL_18_2) {
            return Err(InputError::RevenueOverflow {
                message: format!("the day {} has revenue {cents} cents", &parse::format_rfc3339(*day)[..10]),
            }
            .into());
        }
        self.hours.sort_by(|a, b| a.hour.cmp(&b.hour));
        Ok(self.hours)
    }
}

/// The validation stage: how it reads, and what it found besides the chunks it hands on.
struct Validation<'a> {
    header: Header,
    settings: &'static Settings,
    /// Valid rows per chunk handed on.
    chunk_rows: usize,
    progress_every: Duration,
    read_err: &'a dyn Fn(std::io::Error) -> Error,
    dicts: Dictionaries,
    rejects: Option<RejectsWriter>,
    rows: Rows,
    by_reason: BTreeMap<RejectReason, u64>,
    deadline: Option<std::time::SystemTime>,
    started: Instant,
    max_rejects_bytes: u64,
    /// The input's stored size: the decoded offset over it is the fraction read for a plain file (a
    /// compressed one's decoded offset outgrows it, and the fraction is then unknown).
    input_bytes: u64,
}

/// What the later stages report for the progress log.
#[derive(Default)]
struct Progress {
    orders: AtomicUsize,
    state_bytes: AtomicUsize,
}

impl Progress {
    fn update(&self, ids: &IdInterners) {
        self.orders.store(ids.orders.len(), Ordering::Relaxed);
        self.state_bytes.store(ids.heap_bytes(), Ordering::Relaxed);
    }
}

/// A joined stage's result, with a panic turned into an error that names the stage.
fn joined<T>(stage: &str, result: std::thread::Result<T>) -> Result<T> {
    result.map_err(|panic| {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".into());
        tracing::error!(stage, %message, "pipeline stage panicked");
        Error::Internal { message: format!("the {stage} stage panicked: {message}") }
    })
}

/// Runs one stage's work on this thread, with a panic turned into an error that names the stage (as
/// [`joined`] does for a stage on a thread of its own). The work's state is dropped with the run on error.
fn guarded<T>(stage: &str, work: impl FnOnce() -> T) -> Result<T> {
    joined(stage, std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)))
}

/// The error a hand-off returns when a later stage has stopped; the stage's own error replaces it.
fn stopped() -> Error {
    PolarsError::ComputeError("aggregation stopped early".into()).into()
}

/// Reads and validates every record: accepted rows fill chunks of `chunk_rows` rows, each handed
/// to `hand_on` when full (and the last one at the end); rejected rows go to the rejects file.
fn validate<R: Refill>(
    reader: &mut RecordReader<R>,
    v: &mut Validation<'_>,
    progress: &Progress,
    hand_on: &mut dyn FnMut(Chunk) -> Result<()>,
) -> Result<()> {
    let (chunk_rows, read_err) = (v.chunk_rows, v.read_err);
    let mut last_progress = Instant::now();
    let mut chunk = Chunk::with_capacity(chunk_rows);
    while let Some(line) = reader.next_record().map_err(read_err)? {
        let record = reader.record();
        v.rows.read += 1;
        match accept_row(&v.header, &record, &mut v.dicts, &mut chunk) {
            Ok(()) => {
                v.rows.valid += 1;
                if chunk.is_full(chunk_rows) {
                    hand_on(std::mem::replace(&mut chunk, Chunk::with_capacity(chunk_rows)))?;
                }
            }
            Err(reason) => {
                v.rows.rejected += 1;
                *v.by_reason.entry(reason).or_default() += 1;
                let writer = match &mut v.rejects {
                    Some(w) => w,
                    None => v.rejects.insert(RejectsWriter::new(v.max_rejects_bytes)?),
                };
                writer.write(line, reason, &record.to_byte_record())?;
            }
        }
        if v.rows.read.is_multiple_of(65_536) && v.deadline.is_some() {
            let done = reader.offset() as f64 / v.input_bytes.max(1) as f64;
            let at = format!("at line {line} ({:.0}% of the input read)", (done * 100.0).min(100.0));
            check_deadline(v.deadline, v.started, (done < 1.0).then_some(done), &at)?;
        }
        if v.rows.read.is_multiple_of(65_536) && last_progress.elapsed() >= v.progress_every {
            last_progress = Instant::now();
            tracing::info!(
                rows_read = v.rows.read,
                rows_rejected = v.rows.rejected,
                decoded_mb = reader.offset() as f64 / 1e6,
                orders = progress.orders.load(Ordering::Relaxed),
                id_state_mb = progress.state_bytes.load(Ordering::Relaxed) as f64 / 1e6,
                "progress"
            );
        }
    }
    if !chunk.is_empty() {
        hand_on(chunk)?;
    }
    Ok(())
}

/// Every stage on this thread: each chunk is interned and aggregated as soon as it is full, while it is
/// still in the cache, with no hand-offs between threads that would take turns on one core.
fn inline<R: Refill>(reader: &mut RecordReader<R>, v: &mut Validation<'_>) -> Result<(Engine, IdInterners)> {
    let mut ids = IdInterners::default();
    let mut engine = Engine::new(&v.settings.tables);
    let progress = Progress::default();
    // A panic (a bug) in interning or aggregation becomes an error naming the stage, as in `threaded`.
    validate(reader, v, &progress, &mut |mut chunk| {
        guarded("intern-ids", || ids.intern_chunk(&mut chunk))?;
        progress.update(&ids);
        guarded("aggregate", || engine.push(&mut chunk))?
    })?;
    Ok((engine, ids))
}

/// Validation (this thread) -> id interning -> aggregation, each on its own thread, linked by bounded
/// channels (one chunk queued each), so both cores work and memory holds a handful of chunks.
fn threaded<R: Refill>(reader: &mut RecordReader<R>, v: &mut Validation<'_>) -> Result<(Engine, IdInterners)> {
    let (full_chunks, to_ids) = std::sync::mpsc::sync_channel::<Chunk>(1);
    let (interned, to_engine) = std::sync::mpsc::sync_channel::<Chunk>(1);
    let progress = &Progress::default();
    std::thread::scope(|scope| -> Result<(Engine, IdInterners)> {
        let spawn_err =
            |e: std::io::Error| Error::Polars(PolarsError::ComputeError(format!("cannot start a thread: {e}").into()));
        let id_stage = std::thread::Builder::new()
            .name("intern-ids".into())
            .spawn_scoped(scope, move || {
                let interned = interned; // owned: aggregation sees the end of input when this stage ends
                let mut ids = IdInterners::default();
                for mut chunk in to_ids {
                    ids.intern_chunk(&mut chunk);
                    progress.update(&ids);
                    if interned.send(chunk).is_err() {
                        break; // aggregation stopped: its error is the run's
                    }
                }
                ids
            })
            .map_err(spawn_err)?;
        let aggregation = std::thread::Builder::new()
            .name("aggregate".into())
            .spawn_scoped(scope, || -> Result<Engine> {
                let mut engine = Engine::new(&v.settings.tables);
                for mut chunk in to_engine {
                    engine.push(&mut chunk)?;
                }
                Ok(engine)
            })
            .map_err(spawn_err)?;
        let validated = validate(reader, v, progress, &mut |chunk| full_chunks.send(chunk).map_err(|_| stopped()));
        // The stages see the end of input. Both are joined before any result is judged, so no stage's failure
        // hides another's: a panic (a bug) is reported first, then an aggregation error (which is why
        // validation saw "stopped").
        drop(full_chunks);
        let (id_result, aggregation_result) = (id_stage.join(), aggregation.join());
        let ids = joined("intern-ids", id_result)?;
        let engine = joined("aggregate", aggregation_result)?;
        Ok((outcome(validated, engine)?, ids))
    })
}

/// The run's result from validation's and aggregation's, once both stages have ended: an aggregation error
/// is the run's error even when validation failed too, because validation then only saw that aggregation
/// had stopped taking chunks ([`stopped`]); otherwise validation's error is.
fn outcome<T>(validated: Result<()>, aggregated: Result<T>) -> Result<T> {
    match (validated, aggregated) {
        (Ok(()), aggregated) => aggregated,
        (Err(_), Err(stage)) => Err(stage),
        (Err(e), Ok(_)) => Err(e),
    }
}

fn write_outputs(
    p: Processed,
    published: Published,
    sink: &dyn Sink,
    name: &str,
    source: &SourceInfo,
) -> Result<Summary> {
    let rejects_key = output::rejects_key(name);
    let rejects_uri = match &p.rejects {
        Some(file) => {
            sink.put(&rejects_key, Body::File(file.path()), "text/csv")?;
            Some(sink.uri(&rejects_key))
        }
        None => {
            sink.delete(&rejects_key)?;
            None
        }
    };
    let empty = Summary::empty(Status::Succeeded, source.clone());
    let totals = Totals {
        orders: p.by_hour.iter().map(|h| h.orders).sum(),
        units: p.by_hour.iter().map(|h| h.units).sum(),
        revenue: parse::format_cents(p.by_hour.iter().map(|h| h.revenue_cents).sum()),
    };
    Ok(Summary {
        rows: p.rows,
        rejects_by_reason: reason_counts(&p.rejects_by_reason),
        ignored_columns: p.header.ignored,
        hours: p.by_hour.iter().map(|h| h.hour.clone()).collect(),
        by_hour: p.by_hour,
        totals,
        outputs: published.outputs,
        partials_read: published.partials_read,
        rejects_uri,
        ..empty
    })
}

fn failed_summary(source: &SourceInfo, e: &InputError) -> Summary {
    Summary {
        error: Some(ErrorInfo { kind: e.kind().to_string(), message: e.to_string() }),
        ..Summary::empty(Status::Failed, source.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_aggregation_error_is_reported_as_itself_not_as_validation_stopping() {
        let failed = || Error::from(PolarsError::ComputeError("the group state overflowed".into()));
        let invalid = || Error::from(InputError::CorruptInput { message: "not gzip".into() });
        let message = |r: Result<u8>| r.map_err(|e| e.to_string());
        // Validation stopped because aggregation did: the run fails with aggregation's error.
        assert_eq!(message(outcome(Err(stopped()), Err(failed()))), Err(failed().to_string()));
        assert_eq!(message(outcome(Ok(()), Err(failed()))), Err(failed().to_string()));
        // Validation failed on its own (aggregation finished what it was given): validation's error.
        assert_eq!(message(outcome(Err(invalid()), Ok(1))), Err(invalid().to_string()));
        assert_eq!(message(outcome(Ok(()), Ok(1))), Ok(1));
        assert_ne!(stopped().to_string(), failed().to_string());
    }

    #[test]
    fn the_time_needed_is_the_rest_at_the_pace_so_far_plus_a_margin() {
        let s = Duration::from_secs;
        assert_eq!(needed_time(s(4), Some(0.5)), s(4) + s(1) + s(1), "half done: as long again, plus the margin");
        assert_eq!(needed_time(s(4), None), s(2), "unknown progress (compressed input): the margin only");
        assert_eq!(needed_time(s(0), Some(0.0)), s(1));
        let now = std::time::SystemTime::now();
        let started = Instant::now();
        assert!(check_deadline(None, started, Some(0.1), "x").is_ok());
        assert!(check_deadline(Some(now + s(60)), started, Some(0.5), "x").is_ok());
        let stop = check_deadline(Some(now + Duration::from_millis(500)), started, Some(0.5), "at line 7");
        assert!(
            matches!(&stop, Err(Error::Deadline { message }) if message.starts_with("at line 7 after")),
            "{stop:?}"
        );
        assert!(stop.unwrap_err().is_retryable());
    }

    #[test]
    fn auto_runs_inline_on_one_cpu_or_one_vcpu_of_lambda_memory() {
        assert_eq!(StageMode::Inline.resolve(None), Stages::Inline);
        assert_eq!(StageMode::Threads.resolve(Some(512)), Stages::Threads);
        assert_eq!(StageMode::Auto.resolve(Some(ONE_VCPU_MB)), Stages::Inline);
        assert_eq!(StageMode::Auto.resolve(Some(512)), Stages::Inline);
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let more = if cpus > 1 { Stages::Threads } else { Stages::Inline };
        assert_eq!(StageMode::Auto.resolve(None), more, "{cpus} CPUs");
        assert_eq!(StageMode::Auto.resolve(Some(ONE_VCPU_MB + 1)), more, "{cpus} CPUs");
    }

    #[test]
    fn a_stage_that_panics_becomes_an_error_naming_it() {
        let quiet = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let formatted = std::thread::spawn(|| panic!("bad chunk {}", 7)).join();
        let literal = std::thread::spawn(|| panic!("boom")).join();
        let inline = guarded("intern-ids", || -> u32 { panic!("on this thread") });
        std::panic::set_hook(quiet);
        let message = |r| match joined::<()>("aggregate", r) {
            Err(Error::Internal { message }) => message,
            other => panic!("expected an internal error, got {other:?}"),
        };
        assert_eq!(message(formatted), "the aggregate stage panicked: bad chunk 7");
        assert_eq!(message(literal), "the aggregate stage panicked: boom");
        assert_eq!(joined("x", Ok(5)).unwrap(), 5);
        assert!(
            matches!(inline, Err(Error::Internal { message }) if message == "the intern-ids stage panicked: on this thread")
        );
        assert_eq!(guarded("aggregate", || 7).unwrap(), 7);
    }
}
