//! The aggregation engine: turns validated chunks into the insight tables declared in [`crate::tables`].
//!
//! Memory is bounded by the number of distinct keys, not by the file. Each chunk becomes a polars
//! DataFrame of integer codes. For every table, polars groups the chunk (by `hour` and the table's keys,
//! packed into one integer column when they fit) and sums `units` and `revenue` per group with the eager
//! API; no query plan per chunk. Those *mergeable partial results* are merged into a map of
//! [`GroupState`]s: sums are added, and the ids of each distinct-count metric go from the group's rows
//! into Roaring bitmaps (orders at once; customers and products held back over a few chunks and merged
//! together, see [`PENDING_IDS`]). Ids are dense codes assigned in order of first appearance
//! ([`crate::intern::IdInterners`]), so a group's ids in a chunk are mostly ascending and above what its
//! bitmap holds, and the bitmaps stay small: about one bit per id for large groups and two bytes per id for
//! sparse ones. The chunk is then dropped.
//!
//! At the end the small per-group result is labelled (codes -> strings), ranked and sorted in Rust.

use std::collections::HashMap;

use polars::prelude::*;
use roaring::RoaringBitmap;

use crate::contract::{Chunk, Dictionaries, Dim, GUEST};
use crate::error::{InputError, Result};
use crate::tables::{Metric, TableSpec};

/// Largest revenue that fits decimal(18,2), in cents.
const MAX_DECIMAL_18_2: i128 = 999_999_999_999_999_999;

/// What a distinct-count metric counts, and the chunk column holding its id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Distinct {
    Orders,
    Customers,
    Products,
}

impl Distinct {
    const ALL: [Distinct; 3] = [Distinct::Orders, Distinct::Customers, Distinct::Products];

    /// Whether a table has a metric counting these ids.
    fn counted_by(self, spec: &TableSpec) -> bool {
        spec.metrics.iter().any(|&m| Distinct::of(m) == Some(self))
    }

    /// The ids a metric needs counted (an average order value divides by the distinct orders).
    fn of(metric: Metric) -> Option<Distinct> {
        match metric {
            Metric::Orders | Metric::AvgOrderValue => Some(Distinct::Orders),
            Metric::Customers => Some(Distinct::Customers),
            Metric::Products => Some(Distinct::Products),
            _ => None,
        }
    }

    fn id_column(self) -> &'static str {
        match self {
            Distinct::Orders => "order",
            Distinct::Customers => "customer",
            Distinct::Products => Dim::Sku.name(),
        }
    }

    /// Whether `id` counts (guests are not customers).
    fn counts(self, id: u32) -> bool {
        self != Distinct::Customers || id != GUEST
    }
}

/// Group key: hour start (µs) and up to two dimension codes.
type GroupKey = (i64, [u32; 2]);

/// The merged state of one group.
#[derive(Default)]
struct GroupState {
    lines: i64,
    units: i64,
    revenue: i128,
    ids: [RoaringBitmap; 3],
    /// Ids gathered from recent chunks, not yet in `ids` (see [`PENDING_IDS`]).
    pending: [Vec<u32>; 3],
}

/// Ids a table may hold back before merging them into its groups' bitmaps (checked after each chunk, so at
/// most this plus one chunk's ids). Merging ids that are not above a bitmap's maximum (customers, mostly)
/// builds a bitmap of them and ORs it in, one new array per container touched; a group's ids from several
/// chunks merged at once share that work. Bounds the memory it takes to 4 bytes per id (plus the vectors'
/// slack).
const PENDING_IDS: usize = 512 * 1024;

impl GroupState {
    /// Merges the held-back ids of every kind into the bitmaps.
    fn flush(&mut self, spare: &mut Vec<u32>) {
        for (set, pending) in self.ids.iter_mut().zip(&mut self.pending) {
            merge_ids(set, pending, spare);
            *pending = Vec::new();
        }
    }
}

struct TableState {
    spec: &'static TableSpec,
    /// The group columns: `hour`, then the table's keys.
    group: Vec<&'static str>,
    distinct: Vec<Distinct>,
    groups: HashMap<GroupKey, GroupState, foldhash::fast::FixedState>,
    /// Ids held back in the groups' `pending` vectors, and how many may be ([`PENDING_IDS`]).
    pending: usize,
    pending_budget: usize,
}

impl TableState {
    /// A table whose per-chunk aggregation counts the ids of `distinct` (the others it derives).
    fn new(spec: &'static TableSpec, distinct: Vec<Distinct>) -> Self {
        assert!(spec.keys.len() <= 2, "table {} has more than two keys", spec.name);
        let group = std::iter::once("hour").chain(spec.keys.iter().map(|k| k.name())).collect();
        TableState { spec, group, distinct, groups: HashMap::default(), pending: 0, pending_budget: PENDING_IDS }
    }

    /// Groups a chunk with polars, sums per group with polars, and merges the partial result into the
    /// group states; the ids of each group go straight from the chunk into its Roaring bitmaps.
    fn push(&mut self, chunk: &DataFrame, hours: &HourNumbers, scratch: &mut Scratch) -> Result<()> {
        let by = match packed_key(chunk, hours, self.spec.keys)? {
            Some(key) => vec![key],
            None => self.group.iter().map(|&name| chunk.column(name).cloned()).collect::<PolarsResult<Vec<_>>>()?,
        };
        let grouped = chunk.group_by_with_series(by, false, false)?;
        let groups: &GroupsType = grouped.get_groups();
        // SAFETY: the groups were just computed from this frame, so every index is in bounds.
        let (units, revenue) =
            unsafe { (chunk.column("quantity")?.agg_sum(groups), chunk.column("revenue")?.agg_sum(groups)) };
        let units = units.i64()?;
        let revenue = revenue.decimal()?.physical();
        let slice_u32 = |name: &str| -> PolarsResult<&[u32]> { chunk.column(name)?.u32()?.cont_slice() };
        let hour_starts = chunk.column("hour")?.i64()?.cont_slice()?;
        let keys: Vec<&[u32]> = self.spec.keys.iter().map(|k| slice_u32(k.name())).collect::<PolarsResult<_>>()?;
        let ids: Vec<(Distinct, &[u32])> =
            self.distinct.iter().map(|&d| Ok((d, slice_u32(d.id_column())?))).collect::<PolarsResult<_>>()?;
        for (g, rows) in groups.iter().enumerate() {
            let first = rows.first() as usize;
            let mut key = [0u32; 2];
            for (k, codes) in keys.iter().enumerate() {
                key[k] = codes[first];
            }
            let state = self.groups.entry((hour_starts[first], key)).or_default();
            state.lines += rows.len() as i64;
            state.units += units.get(g).unwrap_or(0);
            state.revenue += revenue.get(g).unwrap_or(0);
            for &(distinct, column) in &ids {
                gather(&rows, column, &mut scratch.ids);
                if distinct == Distinct::Customers {
                    scratch.ids.retain(|&id| distinct.counts(id));
                }
                if distinct == Distinct::Orders {
                    merge_ids(&mut state.ids[distinct as usize], &mut scratch.ids, &mut scratch.spare);
                } else {
                    state.pending[distinct as usize].extend_from_slice(&scratch.ids);
                    self.pending += scratch.ids.len();
                }
            }
        }
        if self.pending >= self.pending_budget {
            self.flush(&mut scratch.spare);
        }
        Ok(())
    }

    /// Merges every group's held-back ids into its bitmaps.
    fn flush(&mut self, spare: &mut Vec<u32>) {
        for state in self.groups.values_mut() {
            state.flush(spare);
        }
        self.pending = 0;
    }
}

/// The values of `column` in a group's rows, into `scratch`, without the repeats of a value in the row
/// before it. The lines of an order are adjacent, so their order (and mostly customer) codes repeat: this
/// halves what the sort and the bitmap merge see, for a compare per row.
fn gather(rows: &GroupsIndicator<'_>, column: &[u32], scratch: &mut Vec<u32>) {
    fn without_repeats(values: impl Iterator<Item = u32>, len: usize, out: &mut Vec<u32>) {
        out.clear();
        out.resize(len, 0);
        let (mut kept, mut last) = (0, None);
        for value in values {
            // Branch-free: always write, keep the value only when it differs from the one before.
            out[kept] = value;
            kept += usize::from(last != Some(value));
            last = Some(value);
        }
        out.truncate(kept);
    }
    match rows {
        GroupsIndicator::Idx((_, idx)) => without_repeats(idx.iter().map(|&r| column[r as usize]), idx.len(), scratch),
        // polars makes slice groups only for keys flagged as sorted, which ours never are; kept for safety.
        GroupsIndicator::Slice([start, len]) => {
            let slice = &column[*start as usize..(*start + *len) as usize];
            without_repeats(slice.iter().copied(), slice.len(), scratch)
        }
    }
}

const HOUR_MICROS: i64 = 3_600_000_000;

/// Each row's hour as a number counted from the chunk's earliest hour, and how many bits those numbers need.
/// Computed once per chunk for every table's packed key.
struct HourNumbers {
    numbers: Vec<u64>,
    width: u32,
}

impl HourNumbers {
    fn of(chunk: &DataFrame) -> Result<Self> {
        let hours = chunk.column("hour")?.i64()?.cont_slice()?;
        let first = hours.iter().copied().min().unwrap_or(0);
        let numbers: Vec<u64> = hours
            .iter()
            .map(|&h| {
                debug_assert_eq!((h - first) % HOUR_MICROS, 0, "hours are hour starts");
                ((h - first) / HOUR_MICROS) as u64
            })
            .collect();
        let width = bits(numbers.iter().copied().max().unwrap_or(0));
        Ok(HourNumbers { numbers, width })
    }
}

/// Bits needed to hold `max`.
fn bits(max: u64) -> u32 {
    64 - max.leading_zeros()
}

/// The group key of every row packed into one `u64` column (hour number within the chunk, then each key
/// code, in as few bits as the chunk needs), when it fits: polars groups one integer column several times
/// faster than several columns, which it has to row-encode first. `None` when the codes need more bits.
fn packed_key(chunk: &DataFrame, hours: &HourNumbers, keys: &[Dim]) -> Result<Option<Column>> {
    let mut width = hours.width;
    let mut columns = Vec::with_capacity(keys.len());
    for key in keys {
        let codes = chunk.column(key.name())?.u32()?.cont_slice()?;
        let w = bits(u64::from(codes.iter().copied().max().unwrap_or(0)));
        width += w;
        columns.push((codes, w));
    }
    if width > 64 {
        return Ok(None);
    }
    // `checked_shl`: with a 64-bit total, a 0-bit hour number is shifted by up to 32, never 64.
    let shift = |p: u64, w: u32, code: u32| p.checked_shl(w).unwrap_or(0) | u64::from(code);
    let mut columns = columns.into_iter();
    // The first key column is combined with the hour numbers into a new vector (no copy of them first).
    let mut packed: Vec<u64> = match columns.next() {
        Some((codes, w)) => hours.numbers.iter().zip(codes).map(|(&p, &code)| shift(p, w, code)).collect(),
        None => hours.numbers.clone(),
    };
    for (codes, w) in columns {
        for (p, &code) in packed.iter_mut().zip(codes) {
            *p = shift(*p, w, code);
        }
    }
    Ok(Some(UInt64Chunked::from_vec("group".into(), packed).into_column()))
}

/// Reused buffers for one group's ids.
#[derive(Default)]
struct Scratch {
    ids: Vec<u32>,
    /// The radix sort's second buffer.
    spare: Vec<u32>,
}

/// Adds `ids` (any order, repeats allowed; reordered in place) to `set`. `spare` is scratch space.
fn merge_ids(set: &mut RoaringBitmap, ids: &mut Vec<u32>, spare: &mut Vec<u32>) {
    if ids.is_empty() {
        return;
    }
    // Ids are codes in order of first appearance, so a group's ids are often already ascending.
    if !ids.is_sorted() {
        sort_ids(ids, spare);
    }
    ids.dedup();
    // New ids above everything in the set (the common case for orders) are appended in place.
    if set.max().is_none_or(|max| max < ids[0]) {
        set.append(ids.iter().copied()).expect("sorted, deduplicated and above the set's maximum");
    } else {
        *set |= RoaringBitmap::from_sorted_iter(ids.iter().copied()).expect("sorted and deduplicated");
    }
}

/// Sorts `ids` ascending. Lists of a few hundred ids or more (a group's customers in a chunk) take an LSD
/// radix sort on bytes, over only the bytes the largest id uses (three for up to 16 M ids), with `spare`
/// as its second buffer: a few linear passes instead of a comparison sort's ~log2(n) (measured: a tenth of
/// the aggregation thread went to sorting customer ids). Shorter lists use the standard sort.
fn sort_ids(ids: &mut Vec<u32>, spare: &mut Vec<u32>) {
    if ids.len() < 256 {
        ids.sort_unstable();
        return;
    }
    let max = ids.iter().copied().max().unwrap_or(0);
    spare.clear();
    spare.resize(ids.len(), 0);
    for byte in 0..(32 - max.leading_zeros()).div_ceil(8) {
        let digit = |id: u32| (id >> (8 * byte)) as usize & 0xFF;
        let mut starts = [0usize; 256];
        for &id in ids.iter() {
            starts[digit(id)] += 1;
        }
        let mut at = 0;
        for start in starts.iter_mut() {
            (*start, at) = (at, at + *start);
        }
        for &id in ids.iter() {
            let d = digit(id);
            spare[starts[d]] = id;
            starts[d] += 1;
        }
        std::mem::swap(ids, spare);
    }
}

/// One finished insight table: the spec and its rows as a DataFrame with the output schema.
pub struct Table {
    pub spec: &'static TableSpec,
    pub frame: DataFrame,
    /// The `hour_start` (µs) of every row, in row order; used to split the table into hour partitions.
    pub hours: Vec<i64>,
}

/// Aggregates chunks into the insight tables.
pub struct Engine {
    tables: Vec<TableState>,
    /// Distinct sets a table derives from a finer table instead of counting per chunk:
    /// (table, what is counted, source table).
    derived: Vec<(usize, Distinct, usize)>,
    /// Tables not aggregated per chunk at all, but summed up at the end from a finer table:
    /// (table, source table). See [`rollups`].
    rollups: Vec<(usize, usize)>,
    /// Reused buffers for the ids of one group.
    scratch: Scratch,
}

/// Whether table `a` splits every group of table `b` into finer ones.
fn finer(a: &TableSpec, b: &TableSpec) -> bool {
    a.keys.len() > b.keys.len() && b.keys.iter().all(|k| a.keys.contains(k))
}

/// Where each key of `spec` sits among the keys of the finer table `source`, to map a group of `source`
/// to the group of `spec` it lies in.
fn key_positions(spec: &TableSpec, source: &TableSpec) -> Vec<usize> {
    spec.keys.iter().map(|k| source.keys.iter().position(|f| f == k).unwrap_or(0)).collect()
}

/// The group of the coarser table that a finer table's group `(hour, codes)` lies in.
fn coarser_key((hour, codes): GroupKey, positions: &[usize]) -> GroupKey {
    let mut key = [0u32; 2];
    for (k, &i) in positions.iter().enumerate() {
        key[k] = codes[i];
    }
    (hour, key)
}

/// Tables that need no aggregation per chunk: a finer table, itself aggregated per chunk, gives every
/// metric of theirs at the end. Line counts, units and revenue add up over the finer groups a group splits
/// into, and the distinct sets are that table's too ([`derivations`]). So `hourly_kpis` is summed up from
/// `channel_performance`, and each chunk is grouped four times instead of five. Returns (table, source).
fn rollups(specs: &[TableSpec], derived: &[(usize, Distinct, usize)]) -> Vec<(usize, usize)> {
    // Finest tables first: a source must not be a rollup itself.
    let mut order: Vec<usize> = (0..specs.len()).collect();
    order.sort_by_key(|&t| std::cmp::Reverse(specs[t].keys.len()));
    let mut rollups: Vec<(usize, usize)> = Vec::new();
    for t in order {
        let spec = &specs[t];
        let source = (0..specs.len()).find(|&u| {
            finer(&specs[u], spec)
                && !rollups.iter().any(|&(r, _)| r == u)
                && Distinct::ALL.into_iter().filter(|&d| d.counted_by(spec)).all(|d| derived.contains(&(t, d, u)))
        });
        if let Some(u) = source {
            rollups.push((t, u));
        }
    }
    rollups
}

/// The distinct sets a table can take from a finer one: where another table groups by every key of this
/// one (and maybe more) and counts the same ids, this table's set for a group is the union of that
/// table's sets for the groups it splits into (every row of a group lies in exactly one finer group).
/// So `hourly_kpis` takes its orders and customers from `channel_performance`, and two fewer id sets are
/// gathered and merged per chunk. Returns (table, distinct, source).
fn derivations(specs: &[TableSpec]) -> Vec<(usize, Distinct, usize)> {
    let counts = |spec: &TableSpec, d: Distinct| d.counted_by(spec);
    // A source must count per chunk itself: no finer table counts the same ids (so there are no chains).
    let root = |u: &TableSpec, d: Distinct| counts(u, d) && !specs.iter().any(|w| finer(w, u) && counts(w, d));
    let mut derived = Vec::new();
    for (t, spec) in specs.iter().enumerate() {
        for d in Distinct::ALL.into_iter().filter(|&d| counts(spec, d)) {
            if let Some(u) = specs.iter().position(|u| finer(u, spec) && root(u, d)) {
                derived.push((t, d, u));
            }
        }
    }
    derived
}

impl Engine {
    pub fn new(specs: &'static [TableSpec]) -> Self {
        let derived = derivations(specs);
        let tables = specs
            .iter()
            .enumerate()
            .map(|(t, spec)| {
                let counted = Distinct::ALL
                    .into_iter()
                    .filter(|&d| d.counted_by(spec))
                    .filter(|&d| !derived.iter().any(|&(dt, dd, _)| dt == t && dd == d))
                    .collect();
                TableState::new(spec, counted)
            })
            .collect();
        let rollups = rollups(specs, &derived);
        Engine { tables, derived, rollups, scratch: Scratch::default() }
    }

    /// Reduces one chunk into the partial results of every table. The chunk is emptied.
    pub fn push(&mut self, chunk: &mut Chunk) -> Result<()> {
        if chunk.is_empty() {
            return Ok(());
        }
        let frame = chunk_frame(chunk)?;
        let hours = HourNumbers::of(&frame)?;
        for (t, table) in self.tables.iter_mut().enumerate() {
            if !self.rollups.iter().any(|&(r, _)| r == t) {
                table.push(&frame, &hours, &mut self.scratch)?;
            }
        }
        Ok(())
    }

    /// Heap bytes of the merged state, allocated capacity included (for logs and the memory benchmark).
    pub fn state_bytes(&self) -> usize {
        let bitmap = |b: &RoaringBitmap| {
            // roaring 0.12's statistics count array capacity as 4-byte values (they are u16) and bitset
            // containers as one byte per bit; the real sizes are half and an eighth of those.
            let s = b.statistics();
            let containers = s.n_containers as usize * std::mem::size_of::<(u16, Vec<u16>)>();
            let stores =
                s.n_bytes_array_containers / 2 + u64::from(s.n_bitset_containers) * 8192 + s.n_bytes_run_containers;
            containers + stores as usize
        };
        let group = std::mem::size_of::<(GroupKey, GroupState)>() + 1;
        self.tables
            .iter()
            .map(|t| {
                let held: usize = t.groups.values().flat_map(|g| &g.pending).map(|p| p.capacity() * 4).sum();
                t.groups.capacity() * group + held + t.groups.values().flat_map(|g| &g.ids).map(bitmap).sum::<usize>()
            })
            .sum()
    }

    /// Finishes every table. Tables of a run without valid rows have zero rows.
    pub fn finish(mut self, dicts: &Dictionaries) -> Result<Vec<Table>> {
        for table in &mut self.tables {
            table.flush(&mut self.scratch.spare);
        }
        for &(t, u) in &self.rollups {
            let at = key_positions(self.tables[t].spec, self.tables[u].spec);
            let sums: Vec<(GroupKey, i64, i64, i128)> = self.tables[u]
                .groups
                .iter()
                .map(|(&key, g)| (coarser_key(key, &at), g.lines, g.units, g.revenue))
                .collect();
            for (key, lines, units, revenue) in sums {
                let group = self.tables[t].groups.entry(key).or_default();
                group.lines += lines;
                group.units += units;
                group.revenue += revenue;
            }
        }
        for &(t, d, u) in &self.derived {
            let at = key_positions(self.tables[t].spec, self.tables[u].spec);
            let mut unions: HashMap<GroupKey, RoaringBitmap, foldhash::fast::FixedState> = HashMap::default();
            for (&key, group) in &self.tables[u].groups {
                *unions.entry(coarser_key(key, &at)).or_default() |= &group.ids[d as usize];
            }
            for (key, ids) in unions {
                self.tables[t].groups.entry(key).or_default().ids[d as usize] = ids;
            }
        }
        self.tables.into_iter().map(|state| label(state, dicts)).collect()
    }
}

/// Moves the chunk's columns into a DataFrame (no copy), leaving the chunk empty for reuse.
fn chunk_frame(chunk: &mut Chunk) -> Result<DataFrame> {
    let height = chunk.len();
    let take_u32 = |name: &str, v: &mut Vec<u32>| UInt32Chunked::from_vec(name.into(), std::mem::take(v)).into_column();
    let mut columns = vec![
        Int64Chunked::from_vec("hour".into(), std::mem::take(&mut chunk.hour)).into_column(),
        take_u32("order", &mut chunk.order),
        take_u32("customer", &mut chunk.customer),
    ];
    for dim in Dim::ALL {
        columns.push(take_u32(dim.name(), &mut chunk.dims[dim as usize]));
    }
    columns.push(Int64Chunked::from_vec("quantity".into(), std::mem::take(&mut chunk.quantity)).into_column());
    let revenue = Int128Chunked::from_vec("revenue".into(), std::mem::take(&mut chunk.revenue)).into_decimal(38, 2)?;
    columns.push(revenue.into_series().into_column());
    Ok(DataFrame::new(height, columns)?)
}

/// One merged group, in Rust, before labelling.
struct Group {
    hour: i64,
    keys: Vec<String>,
    rank: i64,
    lines: i64,
    units: i64,
    revenue: i128,
    distinct: [i64; 3],
}

impl Group {
    fn metric(&self, m: Metric) -> MetricValue {
        match m {
            Metric::Orders => MetricValue::Int(self.distinct[Distinct::Orders as usize]),
            Metric::Customers => MetricValue::Int(self.distinct[Distinct::Customers as usize]),
            Metric::Products => MetricValue::Int(self.distinct[Distinct::Products as usize]),
            Metric::OrderLines => MetricValue::Int(self.lines),
            Metric::Units => MetricValue::Int(self.units),
            Metric::Revenue => MetricValue::Cents(self.revenue),
            Metric::AvgOrderValue => {
                MetricValue::Cents(div_round_half_away(self.revenue, self.distinct[Distinct::Orders as usize] as i128))
            }
        }
    }
}

enum MetricValue {
    Int(i64),
    Cents(i128),
}

/// `num / den` rounded half away from zero (den > 0).
pub fn div_round_half_away(num: i128, den: i128) -> i128 {
    if den == 0 {
        return 0;
    }
    let q = (2 * num.abs() + den) / (2 * den);
    if num < 0 {
        -q
    } else {
        q
    }
}

/// Turns the merged state of a table into its output: dimension codes become strings, distinct counts and
/// derived metrics are computed, top-N is applied, rows are sorted by `hour_start` then the dimensions (or
/// rank).
fn label(state: TableState, dicts: &Dictionaries) -> Result<Table> {
    let spec = state.spec;
    let mut groups: Vec<Group> = state
        .groups
        .into_iter()
        .map(|((hour, codes), g)| Group {
            hour,
            keys: spec.keys.iter().zip(codes).map(|(dim, code)| dicts.value(*dim, code).to_string()).collect(),
            rank: 0,
            lines: g.lines,
            units: g.units,
            revenue: g.revenue,
            distinct: Distinct::ALL.map(|d| g.ids[d as usize].len() as i64),
        })
        .collect();
    if let Some(n) = spec.top {
        groups.sort_by(|a, b| a.hour.cmp(&b.hour).then(b.revenue.cmp(&a.revenue)).then(a.keys.cmp(&b.keys)));
        let mut kept = Vec::with_capacity(groups.len());
        let mut current = None;
        let mut rank = 0;
        for mut g in groups {
            if current != Some(g.hour) {
                current = Some(g.hour);
                rank = 0;
            }
            rank += 1;
            if rank <= n as i64 {
                g.rank = rank;
                kept.push(g);
            }
        }
        groups = kept;
    } else {
        groups.sort_by(|a, b| a.hour.cmp(&b.hour).then(a.keys.cmp(&b.keys)));
    }
    for g in &groups {
        if g.revenue > MAX_DECIMAL_18_2 {
            return Err(InputError::RevenueOverflow {
                message: format!("table {} has revenue {} cents in one group", spec.name, g.revenue),
            }
            .into());
        }
    }
    let frame = build_frame(spec, &groups)?;
    Ok(Table { spec, frame, hours: groups.iter().map(|g| g.hour).collect() })
}

fn build_frame(spec: &TableSpec, groups: &[Group]) -> Result<DataFrame> {
    let mut columns = Vec::new();
    let hours = Int64Chunked::from_vec("hour_start".into(), groups.iter().map(|g| g.hour).collect());
    columns.push(hours.into_datetime(TimeUnit::Microseconds, Some(TimeZone::UTC)).into_series().into_column());
    if spec.top.is_some() {
        columns.push(Column::new("rank".into(), groups.iter().map(|g| g.rank).collect::<Vec<_>>()));
    }
    for (k, dim) in spec.keys.iter().enumerate() {
        let values: Vec<&str> = groups.iter().map(|g| g.keys[k].as_str()).collect();
        columns.push(Column::new(dim.name().into(), values));
    }
    for &metric in spec.metrics {
        let values = groups.iter().map(|g| g.metric(metric));
        let column = match metric.column_type() {
            crate::tables::ColumnType::Decimal => {
                let cents: Vec<i128> = values.map(|v| if let MetricValue::Cents(c) = v { c } else { 0 }).collect();
                Int128Chunked::from_vec(metric.name().into(), cents).into_decimal(18, 2)?.into_series().into_column()
            }
            _ => {
                let ints: Vec<i64> = values.map(|v| if let MetricValue::Int(n) = v { n } else { 0 }).collect();
                Column::new(metric.name().into(), ints)
            }
        };
        columns.push(column);
    }
    Ok(DataFrame::new(groups.len(), columns)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hourly_kpis_are_summed_up_from_channel_performance() {
        let name = |t: usize| crate::tables::TABLES[t].name;
        let derived: Vec<(&str, Distinct, &str)> =
            derivations(crate::tables::TABLES).into_iter().map(|(t, d, u)| (name(t), d, name(u))).collect();
        assert_eq!(
            derived,
            vec![
                ("hourly_kpis", Distinct::Orders, "channel_performance"),
                ("hourly_kpis", Distinct::Customers, "channel_performance"),
            ]
        );
        // Its sums too: it is not aggregated per chunk at all.
        let rollups: Vec<(&str, &str)> = rollups(crate::tables::TABLES, &derivations(crate::tables::TABLES))
            .into_iter()
            .map(|(t, u)| (name(t), name(u)))
            .collect();
        assert_eq!(rollups, vec![("hourly_kpis", "channel_performance")]);
    }

    #[test]
    fn an_average_order_value_counts_orders_even_without_an_orders_column() {
        static AVG_ONLY: TableSpec = TableSpec {
            name: "avg_only",
            keys: &[Dim::Channel],
            metrics: &[Metric::Revenue, Metric::AvgOrderValue],
            top: None,
            description: "",
        };
        assert!(Distinct::Orders.counted_by(&AVG_ONLY));
        assert!(!Distinct::Customers.counted_by(&AVG_ONLY));
        let engine = Engine::new(std::slice::from_ref(&AVG_ONLY));
        assert_eq!(engine.tables[0].distinct, vec![Distinct::Orders]);
    }

    /// One test row: hour, channel code, campaign code, order code, customer code, quantity. Revenue is
    /// `quantity * 100 + order` cents, so every row's revenue differs.
    type Row = (i64, u32, u32, u32, u32, i64);

    /// A chunk frame of `rows`, every other dimension code 0.
    fn frame(rows: &[Row]) -> DataFrame {
        let mut chunk = Chunk::with_capacity(rows.len());
        for &(hour, channel, campaign, order, customer, quantity) in rows {
            chunk.hour.push(hour);
            chunk.order.push(order);
            chunk.customer.push(customer);
            for dim in Dim::ALL {
                let code = match dim {
                    Dim::Channel => channel,
                    Dim::Campaign => campaign,
                    _ => 0,
                };
                chunk.dims[dim as usize].push(code);
            }
            chunk.quantity.push(quantity);
            chunk.revenue.push(i128::from(quantity) * 100 + i128::from(order));
        }
        chunk_frame(&mut chunk).unwrap()
    }

    /// (key, lines, units, revenue, orders, customers) of each `channel_performance` group of one chunk.
    type Merged = (GroupKey, i64, i64, i128, Vec<u32>, Vec<u32>);

    fn channel_groups(rows: &[Row]) -> Vec<Merged> {
        channel_groups_in_chunks(&[rows], PENDING_IDS)
    }

    /// [`channel_groups`] of several chunks, holding back at most `pending_budget` ids.
    fn channel_groups_in_chunks(chunks: &[&[Row]], pending_budget: usize) -> Vec<Merged> {
        let spec = crate::tables::TABLES.iter().find(|t| t.name == "channel_performance").unwrap();
        let mut table = TableState::new(spec, vec![Distinct::Orders, Distinct::Customers]);
        table.pending_budget = pending_budget;
        let mut scratch = Scratch::default();
        for rows in chunks {
            let frame = frame(rows);
            table.push(&frame, &HourNumbers::of(&frame).unwrap(), &mut scratch).unwrap();
            assert!(table.pending < pending_budget, "held-back ids are merged once they reach the budget");
        }
        table.flush(&mut scratch.spare);
        let mut groups: Vec<Merged> = table
            .groups
            .into_iter()
            .map(|(key, g)| (key, g.lines, g.units, g.revenue, g.ids[0].iter().collect(), g.ids[1].iter().collect()))
            .collect();
        groups.sort();
        groups
    }

    fn is_packed(rows: &[Row]) -> bool {
        let frame = frame(rows);
        packed_key(&frame, &HourNumbers::of(&frame).unwrap(), &[Dim::Channel, Dim::Campaign]).unwrap().is_some()
    }

    #[test]
    fn packed_and_unpacked_group_keys_group_alike() {
        const H: i64 = HOUR_MICROS;
        // Hours far apart (years 0000 and 9999), before 1970, or two adjacent ones; codes that need 3 bits,
        // or 32 bits in both keys (1 + 32 + 32 bits: too wide, so the key columns are grouped as they are).
        let far = (-62_167_219_200_000_000, 253_402_297_200_000_000);
        for ((h1, h2), a, b, packed) in [
            ((H, 2 * H), 5, 6, true),
            ((-5 * H, -4 * H), 5, 6, true),
            (far, 5, 6, true),
            ((H, 2 * H), u32::MAX - 1, u32::MAX, false),
        ] {
            let rows = [
                (h1, a, a, 7, 1, 2),
                (h1, a, b, 3, 0, 1),
                (h2, a, a, 9, 2, 5),
                (h1, a, a, 7, 2, 1),
                (h1, a, a, 0, 1, 3), // order code 0 counts (only customer 0, a guest, does not)
            ];
            assert_eq!(is_packed(&rows), packed, "hours {h1}, {h2}, codes {a}, {b}");
            assert_eq!(
                channel_groups(&rows),
                vec![
                    ((h1, [a, a]), 3, 6, 600 + 7 + 7, vec![0, 7], vec![1, 2]),
                    ((h1, [a, b]), 1, 1, 100 + 3, vec![3], vec![]),
                    ((h2, [a, a]), 1, 5, 500 + 9, vec![9], vec![2]),
                ],
                "hours {h1}, {h2}, codes {a}, {b}"
            );
        }
        // Exactly 64 bits: one hour (0 bits) and two 32-bit codes still pack, and group right.
        let (a, b) = (u32::MAX, u32::MAX - 1);
        let rows = [(H, a, b, 1, 1, 1), (H, b, a, 2, 1, 1), (H, a, b, 3, 2, 1)];
        assert!(is_packed(&rows));
        assert_eq!(
            channel_groups(&rows),
            vec![((H, [b, a]), 1, 1, 102, vec![2], vec![1]), ((H, [a, b]), 2, 2, 204, vec![1, 3], vec![1, 2])]
        );
    }

    #[test]
    fn packed_keys_of_tables_with_no_or_one_key() {
        const H: i64 = HOUR_MICROS;
        let frame = frame(&[(3 * H, 4, 0, 1, 1, 1), (H, 2, 0, 1, 1, 1), (3 * H, 1, 0, 1, 1, 1)]);
        let hours = HourNumbers::of(&frame).unwrap();
        let values = |keys: &[Dim]| -> Vec<u64> {
            let key = packed_key(&frame, &hours, keys).unwrap().unwrap();
            key.u64().unwrap().into_no_null_iter().collect()
        };
        assert_eq!(values(&[]), vec![2, 0, 2], "the hour numbers alone");
        assert_eq!(values(&[Dim::Channel]), vec![2 << 3 | 4, 2, 2 << 3 | 1], "then 3 bits of channel");
    }

    #[test]
    fn slice_groups_gather_their_row_range() {
        let column = [10, 11, 12, 13, 14];
        let mut scratch = vec![99];
        gather(&GroupsIndicator::Slice([1, 3]), &column, &mut scratch);
        assert_eq!(scratch, vec![11, 12, 13]);
        let item: IdxItem = (4, vec![4, 0].into());
        gather(&GroupsIndicator::Idx((item.0, &item.1)), &column, &mut scratch);
        assert_eq!(scratch, vec![14, 10]);
        // Repeats of the row before are dropped; a value seen earlier but not just before is kept.
        let column = [7, 7, 8, 7, 7, 9, 9];
        let item: IdxItem = (0, vec![0, 1, 2, 3, 4, 5, 6].into());
        gather(&GroupsIndicator::Idx((item.0, &item.1)), &column, &mut scratch);
        assert_eq!(scratch, vec![7, 8, 7, 9]);
        gather(&GroupsIndicator::Slice([0, 2]), &column, &mut scratch);
        assert_eq!(scratch, vec![7]);
    }

    #[test]
    fn merged_ids_are_a_set_union() {
        let mut set = RoaringBitmap::new();
        let spare = &mut Vec::new();
        merge_ids(&mut set, &mut vec![5, 3, 5, 9], spare);
        merge_ids(&mut set, &mut vec![10, 12, 12], spare); // above the maximum: appended
        merge_ids(&mut set, &mut vec![1, 9, 11], spare); // inside: or-ed
        merge_ids(&mut set, &mut vec![], spare);
        assert_eq!(set.iter().collect::<Vec<_>>(), vec![1, 3, 5, 9, 10, 11, 12]);
        // Long lists (the radix sort), unsorted with repeats, across every byte width of the largest id.
        let mut x = 7u64;
        for max in [0u32, 1, 255, 256, 65_535, 65_536, 1 << 24, u32::MAX] {
            for len in [255, 256, 1000, 5000] {
                let ids: Vec<u32> = (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        (x % (u64::from(max) + 1)) as u32
                    })
                    .collect();
                let mut sorted = ids.clone();
                sort_ids(&mut sorted, spare);
                let mut want = ids.clone();
                want.sort_unstable();
                assert_eq!(sorted, want, "max {max}, {len} ids");
                let mut set = RoaringBitmap::from_iter([3u32, max / 2]);
                merge_ids(&mut set, &mut ids.clone(), spare);
                want.extend([3, max / 2]);
                want.sort_unstable();
                want.dedup();
                assert_eq!(set.iter().collect::<Vec<_>>(), want, "merged, max {max}, {len} ids");
            }
        }
    }

    #[test]
    fn held_back_ids_give_the_same_sets_whenever_they_are_merged() {
        // Four chunks over two hours and three channels; customers repeat across chunks and come back out
        // of order (so merges take the OR path), guests (0) included, orders revisited in later chunks.
        let chunks: Vec<Vec<Row>> = (0..4u32)
            .map(|c| {
                (0..300u32)
                    .map(|r| {
                        let order = if r % 11 == 0 { r / 7 } else { c * 1000 + r / 2 };
                        let customer = (r * 37 + c * 101) % 211 * u32::from(r % 5 != 0);
                        (i64::from(r % 2) * HOUR_MICROS, r % 3, 0, order, customer, i64::from(r % 4))
                    })
                    .collect()
            })
            .collect();
        let chunks: Vec<&[Row]> = chunks.iter().map(Vec::as_slice).collect();
        let at_the_end = channel_groups_in_chunks(&chunks, usize::MAX);
        let every_chunk = channel_groups_in_chunks(&chunks, 1);
        assert_eq!(every_chunk, at_the_end);
        let all: Vec<Row> = chunks.concat();
        assert_eq!(channel_groups(&all), at_the_end, "as one chunk");
        let customers: usize = at_the_end.iter().map(|g| g.5.len()).sum();
        assert!(customers > 200 && at_the_end.iter().all(|g| !g.5.contains(&GUEST)), "{customers} customers");
    }

    #[test]
    fn rounding_half_away_from_zero() {
        assert_eq!(div_round_half_away(1000, 3), 333);
        assert_eq!(div_round_half_away(1001, 2), 501);
        assert_eq!(div_round_half_away(1003, 2), 502);
        assert_eq!(div_round_half_away(5, 10), 1);
        assert_eq!(div_round_half_away(4, 10), 0);
        assert_eq!(div_round_half_away(-5, 10), -1);
        assert_eq!(div_round_half_away(7, 0), 0);
    }
}
