//! The aggregation engine: turns validated chunks into the insight tables declared in [`crate::aggregate::tables`].
//!
//! Memory is bounded by the number of distinct keys, not by the file. Each chunk becomes a polars
//! DataFrame of integer codes. It is grouped once per [`Grouping`]: by `hour` and the keys of one table, or
//! of tables aggregated together ([`JOINT`]: category_sales and top_products, by category and sku); a table
//! whose metrics a finer grouping gives (hourly_kpis, from channel_performance's) is not grouped at all
//! ([`plan`]). The group key is packed into one integer when it fits; a key of up to 32 bits has its rows
//! put in key order first ([`by_key`], a radix sort), so polars takes its sorted-key path, where a group is
//! a range of rows. polars then sums `units` and `revenue` per group with the eager API; no query plan per
//! chunk. Those *mergeable partial results* are merged into a map of [`GroupState`]s: sums are added, and
//! the ids of each distinct-count metric go from the group's rows into its [`IdSet`]s, sorted vectors for
//! small or sparse sets and Roaring bitmaps for the others (orders at once; customers and products of a
//! bitmap held back over a few chunks and merged together, see [`PENDING_IDS`]). Ids are dense codes
//! assigned in order of first appearance ([`crate::aggregate::intern::IdInterners`]), so a group's ids in a
//! chunk are mostly ascending and above what its set holds, and the sets stay small: about one bit per id
//! for large groups, two bytes per id for dense small ones, four for sparse ones. The chunk is then dropped.
//!
//! At the end every table sums up its groups from its grouping ([`Grouping::sum_up`]: sums added, sets
//! unioned), and the small result is labelled (codes -> strings), ranked and sorted in Rust.

mod groups;
pub mod idset;
pub mod intern;
pub mod partial;
pub mod tables;

use crate::aggregate::idset::{IdSet, SetScratch};
use polars::prelude::*;

use crate::aggregate::tables::{Metric, TableSpec};
use crate::contract::{Chunk, Dim, GUEST};
use crate::error::Result;

/// Largest revenue that fits decimal(18,2), in cents.
pub const MAX_DECIMAL_18_2: i128 = 999_999_999_999_999_999;

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

    /// The ids a table counts.
    fn counted_in(spec: &TableSpec) -> Vec<Distinct> {
        Distinct::ALL.into_iter().filter(|d| d.counted_by(spec)).collect()
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

    fn id_column(self) -> PlSmallStr {
        match self {
            Distinct::Orders => "order".into(),
            Distinct::Customers => "customer".into(),
            Distinct::Products => dim_column(Dim::SKU),
        }
    }

    /// Whether `id` counts (guests are not customers).
    fn counts(self, id: u32) -> bool {
        self != Distinct::Customers || id != GUEST
    }
}

/// Dimension codes a group key holds at most: a grouping's keys (a joint grouping has the keys of all its
/// tables).
pub const MAX_KEYS: usize = 4;

/// Group key: hour start (µs) and up to [`MAX_KEYS`] dimension codes (the unused ones 0).
type GroupKey = (i64, [u32; MAX_KEYS]);

/// Tables aggregated together per chunk, as one [`Grouping`] by the keys of all of them: polars groups a
/// chunk once for both, units and revenue are summed once, and each row's ids are gathered once. At the end
/// each table sums up its groups from the joint ones, as `hourly_kpis` does from `channel_performance`.
/// (`products` needs no ids at all where `sku` is a key: a joint group holds one sku.) Why these tables and
/// no others: see docs/benchmarks.md. Tables named here that are missing from the specs are skipped.
const JOINT: &[&[&str]] = &[&["category_sales", "top_products"]];

/// Groups (over all hours of a run) a joint grouping may hold. Its groups are the combinations of its
/// tables' keys that occur, which real data keeps close to the finest table's (a sku nearly always has one
/// category); many more would leave a few rows per group and chunk, and each group costs a table slot, a
/// state and sets of its own, so past this a joint grouping is split into one grouping per table
/// ([`Engine::split`]), which takes its state over and goes on from there.
const MAX_JOINT_GROUPS: usize = 16 * 1024;

/// The merged state of one group.
#[derive(Default)]
struct GroupState {
    lines: i64,
    units: i64,
    revenue: i128,
    ids: [IdSet; 3],
    /// Ids gathered from recent chunks, not yet in `ids` (see [`PENDING_IDS`]); only a group with a bitmap
    /// has them, so they sit behind a pointer.
    pending: Option<Box<[Vec<u32>; 3]>>,
}

/// Ids a grouping may hold back before merging them into its groups' bitmaps (checked after each chunk, so
/// at most this plus one chunk's ids; a set that is still a vector takes its ids at once). Merging ids
/// that are not above a bitmap's maximum (customers, mostly) builds a bitmap of them and ORs it in, one
/// new array per container touched; a group's ids from several chunks merged at once share that work.
/// Bounds the memory it takes to 4 bytes per id (plus the vectors' slack).
const PENDING_IDS: usize = 512 * 1024;

impl GroupState {
    /// Merges the held-back ids of every kind into the sets.
    fn flush(&mut self, scratch: &mut MergeScratch) {
        if let Some(mut pending) = self.pending.take() {
            for (set, pending) in self.ids.iter_mut().zip(pending.iter_mut()) {
                merge_ids(set, pending, scratch);
            }
        }
    }

    /// Adds a finer group's sums into this one.
    fn absorb(&mut self, finer: &GroupState) {
        self.lines += finer.lines;
        self.units += finer.units;
        self.revenue += finer.revenue;
    }
}

/// The groups of a [`Grouping`], by key.
type Groups = groups::Groups<GroupState>;

/// The distinct sets of `spec` that a grouping by `keys` has to gather per chunk: those it counts, except
/// the products where `sku` is a key (a group then holds one sku).
fn gathered<'a>(spec: &'a TableSpec, keys: &'a [Dim]) -> impl Iterator<Item = Distinct> + 'a {
    let known = move |d: Distinct| d == Distinct::Products && keys.contains(&Dim::SKU);
    Distinct::ALL.into_iter().filter(move |&d| d.counted_by(spec) && !known(d))
}

/// Whether a grouping by `keys` that gathers `distinct` gives every metric of `spec`: the table's keys are
/// among its keys, so each of its groups is the union of whole groups of the grouping (every row of the
/// one lies in exactly one of the others), and each set the table counts is gathered or a key.
fn can_feed(keys: &[Dim], distinct: &[Distinct], spec: &TableSpec) -> bool {
    spec.keys.iter().all(|k| keys.contains(k)) && gathered(spec, keys).all(|d| distinct.contains(&d))
}

/// Where each of `keys` sits among the keys `finer` of a grouping, to map a group of it to a coarser one.
fn key_positions(keys: &[Dim], finer: &[Dim]) -> Vec<usize> {
    keys.iter().map(|k| finer.iter().position(|f| f == k).expect("a coarser key is a finer one's")).collect()
}

/// The group that a finer group `(hour, codes)` lies in.
fn coarser_key((hour, codes): GroupKey, positions: &[usize]) -> GroupKey {
    let mut key = [0u32; MAX_KEYS];
    for (k, &i) in positions.iter().enumerate() {
        key[k] = codes[i];
    }
    (hour, key)
}

/// What polars groups each chunk by, and the merged state of those groups: the keys of one table, or of
/// several aggregated together ([`JOINT`]). Every table is summed up at the end from one grouping whose
/// keys include its own ([`can_feed`]).
struct Grouping {
    /// The tables grouped together here (one, or a joint grouping's).
    members: Vec<usize>,
    keys: Vec<Dim>,
    /// The group columns: `hour`, then `keys`.
    group: Vec<PlSmallStr>,
    /// The ids gathered per chunk.
    distinct: Vec<Distinct>,
    groups: Groups,
    /// Ids held back in the groups' `pending` vectors, and how many may be ([`PENDING_IDS`]).
    pending: usize,
    pending_budget: usize,
}

/// The keys of all the tables `members` of `specs`, in order of first mention.
fn keys_of(specs: &[TableSpec], members: &[usize]) -> Vec<Dim> {
    let mut keys: Vec<Dim> = Vec::new();
    for key in members.iter().flat_map(|&t| specs[t].keys) {
        if !keys.contains(key) {
            keys.push(*key);
        }
    }
    keys
}

impl Grouping {
    /// The grouping of the tables `members` of `specs`, by all of their keys (in order of first mention).
    fn new(specs: &[TableSpec], members: Vec<usize>) -> Self {
        let keys = keys_of(specs, &members);
        assert!(keys.len() <= MAX_KEYS, "a grouping has more than {MAX_KEYS} keys: {keys:?}");
        let distinct: Vec<Distinct> = Distinct::ALL
            .into_iter()
            .filter(|&d| members.iter().any(|&t| gathered(&specs[t], &keys).any(|g| g == d)))
            .collect();
        let group = std::iter::once("hour".into()).chain(keys.iter().map(|&k| dim_column(k))).collect();
        Grouping { members, distinct, keys, group, groups: Groups::default(), pending: 0, pending_budget: PENDING_IDS }
    }

    /// Groups a chunk with polars and merges each group into its state: lines, units and revenue summed and
    /// the ids gathered from the chunk's rows of the group ([`Grouping::merge`]). When the packed group key
    /// has at most [`MAX_SORTED_BITS`], the rows are first put in key order ([`by_key`]) and polars takes
    /// its sorted-key path: each group is a range of rows, with no hash table and no list of row numbers
    /// per group to grow. Otherwise polars hashes the key.
    fn push(&mut self, chunk: &DataFrame, hours: &HourNumbers, scratch: &mut Scratch) -> Result<()> {
        match packed_key(chunk, hours, &self.keys)? {
            Some((packed, width)) if width <= MAX_SORTED_BITS => {
                let (keys, rows) = by_key(packed, width, &mut scratch.sort);
                let mut key = UInt64Chunked::from_vec("group".into(), keys);
                key.set_sorted_flag(polars::series::IsSorted::Ascending);
                let key = key.into_column();
                let sorted = DataFrame::new(rows.len(), vec![key.clone()])?;
                let grouped = sorted.group_by_with_series(vec![key], false, false)?;
                self.merge(chunk, grouped.get_groups(), Some(&rows), scratch)
            }
            packed => {
                let by = match packed {
                    Some((packed, _)) => vec![UInt64Chunked::from_vec("group".into(), packed).into_column()],
                    None => {
                        self.group.iter().map(|name| chunk.column(name).cloned()).collect::<PolarsResult<Vec<_>>>()?
                    }
                };
                let grouped = chunk.group_by_with_series(by, false, false)?;
                self.merge(chunk, grouped.get_groups(), None, scratch)
            }
        }
    }

    /// Merges the groups polars found (in the chunk, or in its rows in the order `order`, which maps a row
    /// of the grouped frame to the chunk's) into the group states: the keys, ids, units and revenue read
    /// from the chunk's rows of each group. (Summed here rather than by polars' `agg_sum`, which makes an
    /// array slice per group and column: with ~100,000 campaign groups an hour that was ~15% of the
    /// aggregation, docs/benchmarks.md.)
    fn merge(
        &mut self,
        chunk: &DataFrame,
        groups: &GroupsType,
        order: Option<&[IdxSize]>,
        scratch: &mut Scratch,
    ) -> Result<()> {
        let quantity = chunk.column("quantity")?.i64()?.cont_slice()?;
        let revenue = chunk.column("revenue")?.decimal()?.physical().cont_slice()?;
        let slice_u32 = |name: &str| -> PolarsResult<&[u32]> { chunk.column(name)?.u32()?.cont_slice() };
        let hour_starts = chunk.column("hour")?.i64()?.cont_slice()?;
        let keys: Vec<&[u32]> = self.keys.iter().map(|&k| slice_u32(&dim_column(k))).collect::<PolarsResult<_>>()?;
        let ids: Vec<(Distinct, &[u32])> =
            self.distinct.iter().map(|&d| Ok((d, slice_u32(&d.id_column())?))).collect::<PolarsResult<_>>()?;
        // Every group's key first, then its index, with the slot of the group a few places ahead
        // prefetched, then the states, with the state a few places ahead prefetched: where nearly every row
        // is a group of its own (high-cardinality keys), the cache misses of many groups overlap.
        let mut listed = Vec::new();
        let found = &mut scratch.found;
        found.clear();
        for group in groups.iter() {
            let first = Rows::of(group, order, &mut listed).first();
            let mut key = [0u32; MAX_KEYS];
            for (k, codes) in keys.iter().enumerate() {
                key[k] = codes[first];
            }
            let key = (hour_starts[first], key);
            found.push((self.groups.hash(&key), key));
        }
        let indexes = &mut scratch.indexes;
        indexes.clear();
        for g in 0..found.len() {
            if let Some(&(hash, _)) = found.get(g + AHEAD) {
                self.groups.prefetch_slot(hash);
            }
            let (hash, key) = found[g];
            indexes.push(self.groups.find_or_insert(key, hash));
        }
        for (g, group) in groups.iter().enumerate() {
            if let Some(&ahead) = indexes.get(g + AHEAD) {
                self.groups.prefetch(ahead);
            }
            // Then, halfway there, the ends of its vectors, where their new ids go: a state prefetched
            // AHEAD / 2 groups ago is in the cache by now, and says where they are.
            if let Some(&near) = indexes.get(g + AHEAD / 2) {
                for set in &self.groups.get(near).ids {
                    if let IdSet::Small(ids) = set {
                        if let Some(last) = ids.last() {
                            intern::prefetch(last);
                        }
                    }
                }
            }
            let rows = Rows::of(group, order, &mut listed);
            let state = self.groups.get_mut(indexes[g]);
            state.lines += rows.len() as i64;
            state.units += rows.sum(quantity);
            state.revenue += rows.sum(revenue);
            for &(distinct, column) in &ids {
                gather(rows, column, &mut scratch.ids);
                if distinct == Distinct::Customers {
                    scratch.ids.retain(|&id| distinct.counts(id));
                }
                let set = &mut state.ids[distinct as usize];
                // A vector takes ids in any order at the cost of one pass over it: only bitmaps hold them back.
                if distinct == Distinct::Orders || matches!(set, IdSet::Small(_)) {
                    merge_ids(set, &mut scratch.ids, &mut scratch.merge);
                } else if !scratch.ids.is_empty() {
                    state.pending.get_or_insert_default()[distinct as usize].extend_from_slice(&scratch.ids);
                    self.pending += scratch.ids.len();
                }
            }
        }
        if self.pending >= self.pending_budget {
            self.flush(&mut scratch.merge);
        }
        Ok(())
    }

    /// Whether `spec`'s groups are this grouping's own: the same keys in the same order, and every set it
    /// counts gathered (products are not where `sku` is a key: they come from the key).
    fn is_own(&self, spec: &TableSpec) -> bool {
        spec.keys == self.keys.as_slice() && Distinct::counted_in(spec).iter().all(|d| self.distinct.contains(d))
    }

    /// Merges every group's held-back ids into its sets.
    fn flush(&mut self, scratch: &mut MergeScratch) {
        for state in self.groups.values_mut() {
            state.flush(scratch);
        }
        self.pending = 0;
    }

    /// The groups (flushed) summed up by the coarser `keys`, one coarse group at a time, in key order: sums
    /// added, the sets of `distinct` this grouping gathered unioned, and the products from the `sku` key
    /// where `distinct` asks for products that were not gathered. Only one coarse group's sets exist at a
    /// time besides this grouping's, so summing up adds little to the peak memory of a run.
    fn sum_up(
        &self,
        keys: &[Dim],
        distinct: &[Distinct],
        scratch: &mut SetScratch,
        mut visit: impl FnMut(GroupKey, GroupState),
    ) {
        let at = key_positions(keys, &self.keys);
        let sets: Vec<Distinct> = distinct.iter().copied().filter(|d| self.distinct.contains(d)).collect();
        let sku = distinct
            .contains(&Distinct::Products)
            .then(|| self.keys.iter().position(|&k| k == Dim::SKU))
            .flatten()
            .filter(|_| !self.distinct.contains(&Distinct::Products));
        let mut finer: Vec<(GroupKey, GroupKey, &GroupState)> =
            self.groups.iter().map(|(key, group)| (coarser_key(key, &at), key, group)).collect();
        finer.sort_unstable_by_key(|&(coarse, key, _)| (coarse, key));
        for run in finer.chunk_by(|a, b| a.0 == b.0) {
            let mut coarse = GroupState::default();
            for &(_, _, group) in run {
                coarse.absorb(group);
            }
            // The run is in the order of the finer keys, where the sku need not come first: its codes are
            // gathered and sorted together (inserted one by one, a run of many skus would be quadratic).
            if let Some(i) = sku {
                coarse.ids[Distinct::Products as usize] = run.iter().map(|&(_, key, _)| key.1[i]).collect();
            }
            // Each set unioned over the whole run at once: one pass over the bitmaps' containers, where
            // unioning the finer sets one after another reallocates the growing set's containers again and
            // again; the vectors' ids sorted together.
            for &d in &sets {
                coarse.ids[d as usize] = IdSet::union(run.iter().map(|(_, _, group)| &group.ids[d as usize]), scratch);
            }
            visit(run[0].0, coarse);
        }
    }
}

/// The values of `column` in a group's rows, into `scratch`, without the repeats of a value in the row
/// before it. The lines of an order are adjacent, so their order (and mostly customer) codes repeat: a run
/// of them reaches the sort and the bitmap merge as one value, for a compare per row.
fn gather(rows: Rows<'_>, column: &[u32], scratch: &mut Vec<u32>) {
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
        Rows::Listed(rows) => without_repeats(rows.iter().map(|&r| column[r as usize]), rows.len(), scratch),
        Rows::Range(start, len) => {
            let slice = &column[start..start + len];
            without_repeats(slice.iter().copied(), slice.len(), scratch)
        }
    }
}

/// A group's rows of a chunk, in chunk order.
#[derive(Clone, Copy, Debug)]
enum Rows<'a> {
    /// By row number, ascending.
    Listed(&'a [IdxSize]),
    /// `len` rows from `start` (polars makes such groups only for keys flagged as sorted, which the chunk's
    /// columns never are; kept for safety).
    Range(usize, usize),
}

impl<'a> Rows<'a> {
    /// The rows of the chunk that polars' `group` of `frame` stands for (`order` maps a row of `frame` to
    /// the chunk's, when the frame is the chunk in key order); `listed` holds them when they have to be
    /// mapped one by one.
    fn of(group: GroupsIndicator<'a>, order: Option<&'a [IdxSize]>, listed: &'a mut Vec<IdxSize>) -> Rows<'a> {
        match (group, order) {
            (GroupsIndicator::Idx((_, idx)), None) => Rows::Listed(idx),
            (GroupsIndicator::Slice([first, len]), None) => Rows::Range(first as usize, len as usize),
            (GroupsIndicator::Slice([first, len]), Some(order)) => {
                Rows::Listed(&order[first as usize..(first + len) as usize])
            }
            // polars keeps a sorted key's groups as ranges; mapped row by row should it not.
            (GroupsIndicator::Idx((_, idx)), Some(order)) => {
                listed.clear();
                listed.extend(idx.iter().map(|&i| order[i as usize]));
                Rows::Listed(listed)
            }
        }
    }

    fn first(self) -> usize {
        match self {
            Rows::Listed(rows) => rows[0] as usize,
            Rows::Range(start, _) => start,
        }
    }

    fn len(self) -> usize {
        match self {
            Rows::Listed(rows) => rows.len(),
            Rows::Range(_, len) => len,
        }
    }

    /// The sum of a column's values over these rows.
    fn sum<T: Copy + std::iter::Sum<T>>(self, column: &[T]) -> T {
        match self {
            Rows::Listed(rows) => rows.iter().map(|&r| column[r as usize]).sum(),
            Rows::Range(start, len) => column[start..start + len].iter().copied().sum(),
        }
    }
}

/// Widest packed group key whose rows are put in key order for polars' sorted-key group_by ([`by_key`]:
/// three passes of [`DIGIT_BITS`] at most). Wider keys are hashed by polars.
const MAX_SORTED_BITS: u32 = 32;

/// Bits of the key sorted per pass of [`by_key`]: its counts (8 KiB) stay in L1.
const DIGIT_BITS: u32 = 11;

/// Reused buffers of [`by_key`].
#[derive(Default)]
struct SortScratch {
    items: Vec<u64>,
    spare: Vec<u64>,
    counts: Vec<u32>,
}

/// The chunk's rows in the order of their packed group keys (`width` bits, at most 32), stable, so that a
/// group's rows keep the chunk's order: the sorted keys, and the row each comes from. An LSD radix sort of
/// (key << 32 | row) on the key's bits, [`DIGIT_BITS`] per pass: one pass for the tables of a few
/// dimension values, two for the SKUs. (One pass of up to 16 bits for the SKUs, or moving the quantities
/// and revenues in the last pass instead of polars' gather, is slower: see docs/benchmarks.md.)
fn by_key(packed: Vec<u64>, width: u32, scratch: &mut SortScratch) -> (Vec<u64>, Vec<IdxSize>) {
    debug_assert!(width <= MAX_SORTED_BITS && packed.len() <= u32::MAX as usize);
    let SortScratch { items, spare, counts } = scratch;
    items.clear();
    items.extend(packed.iter().enumerate().map(|(row, &key)| key << 32 | row as u64));
    radix_sort(items, spare, counts, 32..32 + width, DIGIT_BITS, |item| item);
    let mut keys = packed;
    for (key, &item) in keys.iter_mut().zip(items.iter()) {
        *key = item >> 32;
    }
    (keys, items.iter().map(|&item| item as IdxSize).collect())
}

/// Sorts `items` by the bits `bits` of `key(item)`, stable: an LSD radix sort, `digit` bits per pass (fewer
/// in the last), with `spare` as its second buffer and `counts` for the digits' counts.
fn radix_sort<T: Copy + Default>(
    items: &mut Vec<T>,
    spare: &mut Vec<T>,
    counts: &mut Vec<u32>,
    bits: std::ops::Range<u32>,
    digit: u32,
    key: impl Fn(T) -> u64,
) {
    let mut shift = bits.start;
    while shift < bits.end {
        let width = digit.min(bits.end - shift);
        let digit_of = |item: T| ((key(item) >> shift) & ((1 << width) - 1)) as usize;
        counts.clear();
        counts.resize(1 << width, 0);
        for &item in items.iter() {
            counts[digit_of(item)] += 1;
        }
        let mut at = 0;
        for count in counts.iter_mut() {
            (*count, at) = (at, at + *count);
        }
        // Every slot is written below: only a length change touches memory here (clearing and refilling
        // would zero the whole buffer on every pass).
        spare.truncate(items.len());
        spare.resize(items.len(), T::default());
        for &item in items.iter() {
            let slot = &mut counts[digit_of(item)];
            spare[*slot as usize] = item;
            *slot += 1;
        }
        std::mem::swap(items, spare);
        shift += width;
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
/// code, in as few bits as the chunk needs), when it fits: polars groups one integer column directly,
/// where several columns have to be row-encoded first. `None` when the codes need more bits.
fn packed_key(chunk: &DataFrame, hours: &HourNumbers, keys: &[Dim]) -> Result<Option<(Vec<u64>, u32)>> {
    let mut width = hours.width;
    let mut columns = Vec::with_capacity(keys.len());
    for key in keys {
        let codes = chunk.column(&dim_column(*key))?.u32()?.cont_slice()?;
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
    Ok(Some((packed, width)))
}

/// Groups ahead of the one being merged whose slot and state are prefetched ([`Grouping::merge`]).
const AHEAD: usize = 8;

/// Reused buffers for one group's ids.
#[derive(Default)]
struct Scratch {
    ids: Vec<u32>,
    /// A chunk's groups: hash and key, then index ([`Grouping::merge`]).
    found: Vec<(u64, GroupKey)>,
    indexes: Vec<u32>,
    /// The buffers of [`merge_ids`].
    merge: MergeScratch,
    /// The buffers of [`by_key`].
    sort: SortScratch,
}

/// Reused buffers of [`merge_ids`].
#[derive(Default)]
struct MergeScratch {
    /// The radix sort's second buffer.
    spare: Vec<u32>,
    /// The buffers of [`IdSet`]'s merges and unions.
    sets: SetScratch,
}

/// Adds `ids` (any order, repeats allowed; reordered in place) to `set`. `scratch` is scratch space.
fn merge_ids(set: &mut IdSet, ids: &mut Vec<u32>, scratch: &mut MergeScratch) {
    if ids.is_empty() {
        return;
    }
    // Ids are codes in order of first appearance, so a group's ids are often already ascending.
    if !ids.is_sorted() {
        sort_ids(ids, &mut scratch.spare);
    }
    ids.dedup();
    set.extend_sorted(ids, &mut scratch.sets);
}

/// Sorts `ids` ascending. Lists of a few hundred ids or more (a group's customers in a chunk) take an LSD
/// radix sort on bytes, over only the bytes the largest id uses (three for up to 16 M ids), with `spare`
/// as its second buffer: a few linear passes instead of a comparison sort's ~log2(n), since sorting
/// customer ids is a visible part of aggregation (docs/benchmarks.md). Shorter lists use the standard sort.
fn sort_ids(ids: &mut Vec<u32>, spare: &mut Vec<u32>) {
    if ids.len() < 256 {
        ids.sort_unstable();
        return;
    }
    let max = ids.iter().copied().max().unwrap_or(0);
    let mut counts = Vec::with_capacity(256);
    radix_sort(ids, spare, &mut counts, 0..32 - max.leading_zeros(), 8, u64::from);
}

/// One group of a table at the end of a run: its hour, key codes (the table's keys, in order; the rest 0),
/// sums, and the sets of codes of each distinct kind the table counts (indexed by [`DISTINCT_KINDS`]; the
/// others empty). Guests are not in the customer sets; products are `sku` dimension codes.
pub struct FinalGroup {
    pub hour: i64,
    pub codes: [u32; MAX_KEYS],
    pub lines: i64,
    pub units: i64,
    pub revenue: i128,
    pub sets: [IdSet; 3],
}

/// The distinct kinds, in the order of [`FinalGroup::sets`]: order codes, customer codes, sku codes.
pub const DISTINCT_KINDS: [&str; 3] = ["orders", "customers", "products"];

/// Which distinct kinds ([`DISTINCT_KINDS`]) a table's metrics count.
pub fn counted_kinds(spec: &TableSpec) -> [bool; 3] {
    Distinct::ALL.map(|d| d.counted_by(spec))
}

/// Aggregates chunks into the insight tables.
pub struct Engine {
    specs: &'static [TableSpec],
    /// What each chunk is grouped by: one grouping per table or per joint set of tables ([`JOINT`]).
    groupings: Vec<Grouping>,
    /// The grouping each table is summed up from at the end.
    feeds: Vec<usize>,
    /// Groups a joint grouping may hold before it is split ([`MAX_JOINT_GROUPS`]).
    max_joint_groups: usize,
    /// Reused buffers for the ids of one group.
    scratch: Scratch,
}

/// The groupings for `specs` and the grouping each table is summed up from. First the joint groupings of
/// `joint` (sets of table names). Then, finest first, every other table is summed up from a grouping one of
/// whose tables alone could give it all its metrics (so that it still can after a split), or gets a
/// grouping of its own: `hourly_kpis` is summed up from `channel_performance`'s grouping, and is not grouped
/// per chunk.
fn plan(specs: &[TableSpec], joint: &[&[&str]]) -> (Vec<Grouping>, Vec<usize>) {
    let mut groupings: Vec<Grouping> = Vec::new();
    let mut feeds: Vec<Option<usize>> = vec![None; specs.len()];
    for names in joint {
        let members: Vec<usize> = (0..specs.len()).filter(|&t| names.contains(&specs[t].name)).collect();
        if members.len() < 2 || members.iter().any(|&t| feeds[t].is_some()) {
            continue;
        }
        if keys_of(specs, &members).len() > MAX_KEYS {
            continue;
        }
        for &t in &members {
            feeds[t] = Some(groupings.len());
        }
        groupings.push(Grouping::new(specs, members));
    }
    let mut rest: Vec<usize> = (0..specs.len()).filter(|&t| feeds[t].is_none()).collect();
    rest.sort_by_key(|&t| std::cmp::Reverse(specs[t].keys.len()));
    for t in rest {
        let fed_by_member = |g: &Grouping| {
            g.members.iter().any(|&m| {
                let keys = specs[m].keys;
                can_feed(keys, &gathered(&specs[m], keys).collect::<Vec<_>>(), &specs[t])
            })
        };
        feeds[t] = Some(groupings.iter().position(fed_by_member).unwrap_or_else(|| {
            groupings.push(Grouping::new(specs, vec![t]));
            groupings.len() - 1
        }));
    }
    (groupings, feeds.into_iter().map(|f| f.expect("every table is planned")).collect())
}

impl Engine {
    pub fn new(specs: &'static [TableSpec]) -> Self {
        Engine::with_joint(specs, JOINT)
    }

    fn with_joint(specs: &'static [TableSpec], joint: &[&[&str]]) -> Self {
        let (groupings, feeds) = plan(specs, joint);
        Engine { specs, groupings, feeds, max_joint_groups: MAX_JOINT_GROUPS, scratch: Scratch::default() }
    }

    /// Reduces one chunk into the partial results of every grouping. The chunk is emptied.
    pub fn push(&mut self, chunk: &mut Chunk) -> Result<()> {
        if chunk.is_empty() {
            return Ok(());
        }
        let frame = chunk_frame(chunk)?;
        let hours = HourNumbers::of(&frame)?;
        for grouping in &mut self.groupings {
            grouping.push(&frame, &hours, &mut self.scratch)?;
        }
        let max = self.max_joint_groups;
        while let Some(g) = self.groupings.iter().position(|g| g.members.len() > 1 && g.groups.len() > max) {
            self.split(g);
        }
        Ok(())
    }

    /// Replaces the joint grouping `g` by one grouping per table, each starting from the joint state summed
    /// up by its keys: the first table's takes `g`'s place, the others come last. The tables summed up from
    /// `g` are summed up from those.
    fn split(&mut self, g: usize) {
        let specs = self.specs;
        let joint = &mut self.groupings[g];
        tracing::info!(
            tables = ?joint.members.iter().map(|&t| specs[t].name).collect::<Vec<_>>(),
            groups = joint.groups.len(),
            "too many groups to aggregate these tables together; going on table by table"
        );
        joint.flush(&mut self.scratch.merge);
        let own: Vec<Grouping> = joint
            .members
            .iter()
            .map(|&t| {
                let mut own = Grouping::new(specs, vec![t]);
                let groups = &mut own.groups;
                joint.sum_up(&own.keys, &own.distinct, &mut self.scratch.merge.sets, |key, group| {
                    *groups.entry(key) = group;
                });
                own
            })
            .collect();
        let at: Vec<usize> =
            std::iter::once(g).chain(self.groupings.len()..self.groupings.len() + own.len() - 1).collect();
        let mut own = own.into_iter();
        self.groupings[g] = own.next().expect("a joint grouping has tables");
        self.groupings.extend(own);
        for (t, spec) in specs.iter().enumerate() {
            if self.feeds[t] != g {
                continue;
            }
            // `plan` sums a table up from a joint grouping only where one of its tables' groupings can.
            self.feeds[t] = *at
                .iter()
                .find(|&&o| can_feed(&self.groupings[o].keys, &self.groupings[o].distinct, spec))
                .expect("a table of the joint grouping gives this table's metrics");
        }
    }

    /// Heap bytes of the merged state, allocated capacity included (for logs and the memory benchmark).
    pub fn state_bytes(&self) -> usize {
        self.groupings
            .iter()
            .map(|t| {
                let held: usize = t
                    .groups
                    .values()
                    .filter_map(|g| g.pending.as_deref())
                    .map(|p| std::mem::size_of::<[Vec<u32>; 3]>() + p.iter().map(|v| v.capacity() * 4).sum::<usize>())
                    .sum();
                t.groups.table_bytes()
                    + held
                    + t.groups.values().flat_map(|g| &g.ids).map(IdSet::heap_bytes).sum::<usize>()
            })
            .sum()
    }

    /// Every table's groups, summed up from its grouping, each kept as `keep` makes it of the group's
    /// state (which holds the sets the table counts). Each grouping is dropped once its tables are done.
    ///
    /// A table is summed up from the grouping with the fewest groups among those that can give its metrics
    /// ([`Engine::sources`]); the plan's feed is one of them, and still gives the table on a tie. A table
    /// whose keys are its grouping's own takes the groups over instead of copying them, after the
    /// grouping's other tables are done.
    fn merged<T>(mut self, keep: impl Fn(&TableSpec, GroupKey, GroupState) -> T) -> Vec<(&'static TableSpec, Vec<T>)> {
        let sources = self.sources();
        let mut tables: Vec<(&'static TableSpec, Vec<T>)> = self.specs.iter().map(|s| (s, Vec::new())).collect();
        for (g, mut grouping) in std::mem::take(&mut self.groupings).into_iter().enumerate() {
            grouping.flush(&mut self.scratch.merge);
            let mut fed: Vec<usize> = (0..tables.len()).filter(|&t| sources[t] == g).collect();
            // One table whose keys are the grouping's own takes its groups over, after every other table
            // it feeds (two tables may have the same keys, and the groups are gone once taken).
            let taken = fed.iter().rposition(|&t| grouping.is_own(&self.specs[t])).map(|i| fed.remove(i));
            for &t in &fed {
                let (spec, groups) = &mut tables[t];
                let counted = Distinct::counted_in(spec);
                grouping.sum_up(spec.keys, &counted, &mut self.scratch.merge.sets, |key, group| {
                    groups.push(keep(spec, key, group))
                });
            }
            if let Some(t) = taken {
                let (spec, groups) = &mut tables[t];
                let counted = Distinct::counted_in(spec);
                debug_assert!(groups.is_empty(), "a table has one source");
                *groups = grouping.groups.drain_sorted(|key, mut group| {
                    for d in Distinct::ALL {
                        if !counted.contains(&d) {
                            group.ids[d as usize] = IdSet::default();
                        }
                    }
                    keep(spec, key, group)
                });
            }
        }
        tables
    }

    /// The grouping each table is summed up from: of the groupings that can give its metrics, the one
    /// holding the fewest groups now (on the spread shape, `hourly_kpis` from `geo_device`'s few hundred
    /// groups instead of `channel_performance`'s tens of thousands), the plan's feed on a tie.
    fn sources(&self) -> Vec<usize> {
        self.specs
            .iter()
            .zip(&self.feeds)
            .map(|(spec, &feed)| {
                let groups = |g: usize| self.groupings[g].groups.len();
                (0..self.groupings.len())
                    .filter(|&g| {
                        let grouping = &self.groupings[g];
                        can_feed(&grouping.keys, &grouping.distinct, spec)
                    })
                    .min_by_key(|&g| (groups(g), g != feed))
                    .unwrap_or(feed)
            })
            .collect()
    }

    /// Every table's groups with their sets (see [`FinalGroup`]), each table's sorted by hour, then keys.
    pub fn finish(self) -> Vec<(&'static TableSpec, Vec<FinalGroup>)> {
        self.merged(|_, (hour, codes), g| FinalGroup {
            hour,
            codes,
            lines: g.lines,
            units: g.units,
            revenue: g.revenue,
            sets: g.ids,
        })
    }
}

/// The column of a dimension's codes in a chunk frame: named by its index, so that no dimension name a
/// config gives can clash with the frame's own columns.
fn dim_column(dim: Dim) -> PlSmallStr {
    PlSmallStr::from_string(format!("dim{}", dim.index))
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
    for (index, codes) in chunk.dims.iter_mut().enumerate() {
        columns.push(take_u32(&dim_column(Dim { index, name: "" }), codes));
    }
    columns.push(Int64Chunked::from_vec("quantity".into(), std::mem::take(&mut chunk.quantity)).into_column());
    let revenue = Int128Chunked::from_vec("revenue".into(), std::mem::take(&mut chunk.revenue)).into_decimal(38, 2)?;
    columns.push(revenue.into_series().into_column());
    Ok(DataFrame::new(height, columns)?)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Groupings (tables, keys, ids gathered) and feeds (table, first table of its grouping).
    type Described = (Vec<(Vec<&'static str>, Vec<Dim>, Vec<Distinct>)>, Vec<(&'static str, &'static str)>);

    /// The groupings of `specs` by their tables' names, with their keys and the ids they gather, and the
    /// grouping (by its first table) each table is summed up from.
    fn described(engine: &Engine) -> Described {
        let specs: &'static [TableSpec] = engine.specs;
        let name = |t: usize| specs[t].name;
        let groupings = engine
            .groupings
            .iter()
            .map(|g| (g.members.iter().map(|&t| name(t)).collect(), g.keys.clone(), g.distinct.clone()));
        let feeds = engine.feeds.iter().enumerate().map(|(t, &g)| (name(t), name(engine.groupings[g].members[0])));
        (groupings.collect(), feeds.collect())
    }

    #[test]
    fn the_insight_tables_are_grouped_three_times_per_chunk() {
        let (groupings, feeds) = described(&Engine::new(crate::aggregate::tables::DEFAULT_TABLES));
        assert_eq!(
            groupings,
            vec![
                // Products are the sku key: no ids but the orders gathered.
                (vec!["category_sales", "top_products"], vec![Dim::CATEGORY, Dim::SKU], vec![Distinct::Orders]),
                (
                    vec!["channel_performance"],
                    vec![Dim::CHANNEL, Dim::CAMPAIGN],
                    vec![Distinct::Orders, Distinct::Customers]
                ),
                (vec!["geo_device"], vec![Dim::COUNTRY, Dim::DEVICE], vec![Distinct::Orders, Distinct::Customers]),
            ]
        );
        assert_eq!(
            feeds,
            vec![
                ("hourly_kpis", "channel_performance"),
                ("channel_performance", "channel_performance"),
                ("category_sales", "category_sales"),
                ("geo_device", "geo_device"),
                ("top_products", "category_sales"),
            ]
        );
        // Table by table, hourly_kpis is still summed up from channel_performance, and category_sales
        // gathers its products.
        let (groupings, feeds) = described(&Engine::with_joint(crate::aggregate::tables::DEFAULT_TABLES, &[]));
        assert_eq!(groupings.len(), 4, "{groupings:?}");
        assert!(groupings.contains(&(
            vec!["category_sales"],
            vec![Dim::CATEGORY],
            vec![Distinct::Orders, Distinct::Products]
        )));
        assert_eq!(feeds[0], ("hourly_kpis", "channel_performance"));
    }

    #[test]
    fn an_average_order_value_counts_orders_even_without_an_orders_column() {
        static AVG_ONLY: TableSpec = TableSpec {
            name: "avg_only",
            keys: &[Dim::CHANNEL],
            metrics: &[Metric::Revenue, Metric::AvgOrderValue],
            top: None,
            description: "",
        };
        assert!(Distinct::Orders.counted_by(&AVG_ONLY));
        assert!(!Distinct::Customers.counted_by(&AVG_ONLY));
        let engine = Engine::new(std::slice::from_ref(&AVG_ONLY));
        assert_eq!(engine.groupings[0].distinct, vec![Distinct::Orders]);
    }

    /// One test row: hour, channel code, campaign code, order code, customer code, quantity. Revenue is
    /// `quantity * 100 + order` cents, so every row's revenue differs.
    type Row = (i64, u32, u32, u32, u32, i64);

    /// A chunk frame of `rows`, every other dimension code 0.
    fn frame(rows: &[Row]) -> DataFrame {
        let mut chunk = Chunk { dims: vec![Vec::new(); 6], ..Chunk::with_capacity(rows.len()) };
        for &(hour, channel, campaign, order, customer, quantity) in rows {
            chunk.hour.push(hour);
            chunk.order.push(order);
            chunk.customer.push(customer);
            for dim in Dim::DEFAULTS {
                let code = match dim {
                    Dim::CHANNEL => channel,
                    Dim::CAMPAIGN => campaign,
                    _ => 0,
                };
                chunk.dims[dim.index].push(code);
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
        let table =
            crate::aggregate::tables::DEFAULT_TABLES.iter().position(|t| t.name == "channel_performance").unwrap();
        let mut table = Grouping::new(crate::aggregate::tables::DEFAULT_TABLES, vec![table]);
        assert_eq!(table.distinct, vec![Distinct::Orders, Distinct::Customers]);
        table.pending_budget = pending_budget;
        let mut scratch = Scratch::default();
        for rows in chunks {
            let frame = frame(rows);
            table.push(&frame, &HourNumbers::of(&frame).unwrap(), &mut scratch).unwrap();
            assert!(table.pending < pending_budget, "held-back ids are merged once they reach the budget");
        }
        table.flush(&mut scratch.merge);
        let mut groups: Vec<Merged> = table.groups.drain_sorted(|key, g| {
            (key, g.lines, g.units, g.revenue, g.ids[0].iter().collect(), g.ids[1].iter().collect())
        });
        groups.sort();
        groups
    }

    /// How a chunk of `rows` is grouped for channel_performance: by polars' sorted-key path after
    /// [`by_key`], by hashing the packed key, or by the key columns as they are.
    fn path(rows: &[Row]) -> &'static str {
        let frame = frame(rows);
        match packed_key(&frame, &HourNumbers::of(&frame).unwrap(), &[Dim::CHANNEL, Dim::CAMPAIGN]).unwrap() {
            Some((_, width)) if width <= MAX_SORTED_BITS => "sorted",
            Some(_) => "hashed",
            None => "columns",
        }
    }

    /// A channel_performance group key.
    fn key(hour: i64, channel: u32, campaign: u32) -> GroupKey {
        (hour, [channel, campaign, 0, 0])
    }

    #[test]
    fn sorted_hashed_and_column_group_keys_group_alike() {
        const H: i64 = HOUR_MICROS;
        // Hours far apart (years 0000 and 9999: 27 bits of hour numbers), before 1970, or two adjacent ones;
        // codes that need 3 bits, 17 bits (1 + 17 + 17 bits: too wide to sort, so the packed key is hashed),
        // or 32 bits in both keys (1 + 32 + 32 bits: too wide to pack, so the key columns are grouped). Far
        // hours leave room for 5 bits of codes in a sorted key (27 + 3 + 3 bits are hashed).
        let far = (-62_167_219_200_000_000, 253_402_297_200_000_000);
        for ((h1, h2), a, b, how) in [
            ((H, 2 * H), 5, 6, "sorted"),
            ((-5 * H, -4 * H), 5, 6, "sorted"),
            (far, 1, 2, "sorted"),
            (far, 5, 6, "hashed"),
            (far, 1 << 16, 1 << 16 | 1, "hashed"),
            ((H, 2 * H), 1 << 16, 1 << 16 | 1, "hashed"),
            ((H, 2 * H), u32::MAX - 1, u32::MAX, "columns"),
        ] {
            let rows = [
                (h1, a, a, 7, 1, 2),
                (h1, a, b, 3, 0, 1),
                (h2, a, a, 9, 2, 5),
                (h1, a, a, 7, 2, 1),
                (h1, a, a, 0, 1, 3), // order code 0 counts (only customer 0, a guest, does not)
            ];
            assert_eq!(path(&rows), how, "hours {h1}, {h2}, codes {a}, {b}");
            assert_eq!(
                channel_groups(&rows),
                vec![
                    (key(h1, a, a), 3, 6, 600 + 7 + 7, vec![0, 7], vec![1, 2]),
                    (key(h1, a, b), 1, 1, 100 + 3, vec![3], vec![]),
                    (key(h2, a, a), 1, 5, 500 + 9, vec![9], vec![2]),
                ],
                "hours {h1}, {h2}, codes {a}, {b}"
            );
        }
        // Exactly 32 bits (one hour, two 16-bit codes) are still sorted; exactly 64 bits still pack.
        for (a, b, how) in
            [(u32::from(u16::MAX), u32::from(u16::MAX) - 1, "sorted"), (u32::MAX, u32::MAX - 1, "hashed")]
        {
            let rows = [(H, a, b, 1, 1, 1), (H, b, a, 2, 1, 1), (H, a, b, 3, 2, 1)];
            assert_eq!(path(&rows), how, "codes {a}, {b}");
            assert_eq!(
                channel_groups(&rows),
                vec![(key(H, b, a), 1, 1, 102, vec![2], vec![1]), (key(H, a, b), 2, 2, 204, vec![1, 3], vec![1, 2])]
            );
        }
    }

    #[test]
    fn packed_keys_of_tables_with_no_or_one_key() {
        const H: i64 = HOUR_MICROS;
        let frame = frame(&[(3 * H, 4, 0, 1, 1, 1), (H, 2, 0, 1, 1, 1), (3 * H, 1, 0, 1, 1, 1)]);
        let hours = HourNumbers::of(&frame).unwrap();
        let values = |keys: &[Dim]| packed_key(&frame, &hours, keys).unwrap().unwrap();
        assert_eq!(values(&[]), (vec![2, 0, 2], 2), "the hour numbers alone");
        assert_eq!(values(&[Dim::CHANNEL]), (vec![2 << 3 | 4, 2, 2 << 3 | 1], 5), "then 3 bits of channel");
    }

    #[test]
    fn rows_in_key_order_keep_the_chunk_order_within_a_key() {
        let mut x = 99u64;
        let mut scratch = SortScratch::default();
        for width in [0, 1, 5, 11, 12, 22, 23, 32] {
            let mask = if width == 0 { 0 } else { u64::MAX >> (64 - width) };
            for n in [0, 1, 2, 1000, 5000] {
                let keys: Vec<u64> = (0..n)
                    .map(|_| {
                        crate::testing::xorshift(&mut x);
                        // Few distinct keys (many ties), spread over the whole width.
                        ((x % 7) * 0x9E37_79B9) & mask
                    })
                    .collect();
                let (sorted, rows) = by_key(keys.clone(), width, &mut scratch);
                let mut want: Vec<(u64, IdxSize)> = keys.iter().enumerate().map(|(r, &k)| (k, r as IdxSize)).collect();
                want.sort();
                let got: Vec<(u64, IdxSize)> = sorted.into_iter().zip(rows).collect();
                assert_eq!(got, want, "width {width}, {n} rows");
            }
        }
    }

    /// Random chunks of every dimension: two hours, multi-line orders, guests, a sku that is mostly in
    /// one category (as in real exports) but not always.
    fn random_chunks(seed: u64, chunks: usize, rows: usize) -> Vec<Chunk> {
        let mut x = seed;
        let mut next = |n: u32| {
            crate::testing::xorshift(&mut x);
            (x % u64::from(n)) as u32
        };
        let mut order = 0;
        (0..chunks)
            .map(|_| {
                let mut chunk = Chunk { dims: vec![Vec::new(); 6], ..Chunk::with_capacity(rows) };
                for _ in 0..rows {
                    order += u32::from(next(3) == 0);
                    chunk.hour.push(i64::from(next(2)) * HOUR_MICROS);
                    chunk.order.push(if next(20) == 0 { next(order + 1) } else { order });
                    chunk.customer.push(next(50) * u32::from(next(5) != 0));
                    let sku = next(40);
                    for dim in Dim::DEFAULTS {
                        chunk.dims[dim.index].push(match dim {
                            Dim::SKU => sku,
                            Dim::CATEGORY if next(10) != 0 => sku % 6,
                            _ => next(5),
                        });
                    }
                    let quantity = i64::from(next(4));
                    chunk.quantity.push(quantity);
                    chunk.revenue.push(i128::from(quantity) * i128::from(next(100_000)));
                }
                chunk
            })
            .collect()
    }

    /// Every table's groups, each as (key, lines, units, revenue, the sets the table counts).
    type TableGroups = Vec<(&'static str, Vec<(GroupKey, i64, i64, i128, Vec<Vec<u32>>)>)>;

    fn tables_of(mut engine: Engine, chunks: &[Chunk]) -> TableGroups {
        for chunk in chunks {
            engine.push(&mut chunk.clone()).unwrap();
        }
        let sets = |spec: &TableSpec, key: GroupKey, g: GroupState| {
            let counted = Distinct::ALL.into_iter().filter(|d| d.counted_by(spec));
            (key, g.lines, g.units, g.revenue, counted.map(|d| g.ids[d as usize].iter().collect()).collect())
        };
        engine
            .merged(sets)
            .into_iter()
            .map(|(spec, mut groups)| {
                groups.sort();
                (spec.name, groups)
            })
            .collect()
    }

    #[test]
    fn joint_split_and_table_by_table_groupings_give_the_same_tables() {
        let chunks = random_chunks(7, 4, 3000);
        let tables = crate::aggregate::tables::DEFAULT_TABLES;
        let each = tables_of(Engine::with_joint(tables, &[]), &chunks);
        assert!(each.iter().all(|(_, groups)| !groups.is_empty()));
        let products: usize = each[2].1.iter().map(|g| g.4[1].len()).sum();
        assert!(products > 40, "category_sales counts products ({products})");
        assert_eq!(tables_of(Engine::new(tables), &chunks), each, "joint");
        // All four keyed tables in two joint groupings of four keys (hourly_kpis from the first).
        let wide: &[&[&str]] = &[&["channel_performance", "geo_device"], &["category_sales", "top_products"]];
        let engine = Engine::with_joint(tables, wide);
        assert_eq!(engine.groupings.len(), 2);
        assert_eq!(tables_of(engine, &chunks), each, "two joint groupings");
        // Split after the first chunk, when it has more groups than allowed.
        for limit in [1, 100] {
            let mut engine = Engine::with_joint(tables, wide);
            engine.max_joint_groups = limit;
            let mut first = chunks[0].clone();
            engine.push(&mut first).unwrap();
            assert_eq!(engine.groupings.len(), 4, "split at {limit} groups: one grouping per keyed table");
            assert_eq!(described(&engine).1[0], ("hourly_kpis", "channel_performance"));
            assert_eq!(tables_of(engine, &chunks[1..]), each, "split at {limit} groups");
        }
    }

    /// Every table computed row by row from the chunks, as [`tables_of`] gives it: the model the engine's
    /// groupings, joint groupings and choice of source are checked against.
    fn tables_by_rows(specs: &'static [TableSpec], chunks: &[Chunk]) -> TableGroups {
        type Model = BTreeMap<GroupKey, (i64, i64, i128, [std::collections::BTreeSet<u32>; 3])>;
        use std::collections::BTreeMap;
        specs
            .iter()
            .map(|spec| {
                let mut groups: Model = BTreeMap::new();
                for chunk in chunks {
                    for r in 0..chunk.len() {
                        let mut codes = [0u32; MAX_KEYS];
                        for (k, dim) in spec.keys.iter().enumerate() {
                            codes[k] = chunk.dims[dim.index][r];
                        }
                        let g = groups.entry((chunk.hour[r], codes)).or_default();
                        g.0 += 1;
                        g.1 += chunk.quantity[r];
                        g.2 += chunk.revenue[r];
                        g.3[0].insert(chunk.order[r]);
                        if chunk.customer[r] != GUEST {
                            g.3[1].insert(chunk.customer[r]);
                        }
                        g.3[2].insert(chunk.dims[Dim::SKU.index][r]);
                    }
                }
                let counted = Distinct::counted_in(spec);
                let groups = groups
                    .into_iter()
                    .map(|(key, (l, u, r, sets))| {
                        (key, l, u, r, counted.iter().map(|&d| sets[d as usize].iter().copied().collect()).collect())
                    })
                    .collect();
                (spec.name, groups)
            })
            .collect()
    }

    #[test]
    fn two_tables_with_the_same_keys_both_get_their_groups() {
        // The second is fed by the first's grouping: one of them takes its groups over, the other is
        // summed up from them first (a config can have a table and its top-N cut by the same keys).
        static SPECS: [TableSpec; 3] = [
            TableSpec {
                name: "store_sales",
                keys: &[Dim::CHANNEL],
                metrics: &[Metric::Orders, Metric::Revenue],
                top: None,
                description: "",
            },
            TableSpec {
                name: "top_stores",
                keys: &[Dim::CHANNEL],
                metrics: &[Metric::Revenue],
                top: Some(5),
                description: "",
            },
            TableSpec { name: "all", keys: &[], metrics: &[Metric::Customers], top: None, description: "" },
        ];
        let chunks = random_chunks(11, 3, 2000);
        let engine = Engine::new(&SPECS);
        assert_eq!(engine.groupings.len(), 2, "top_stores is fed by store_sales's grouping");
        let want = tables_by_rows(&SPECS, &chunks);
        assert!(want.iter().all(|(_, groups)| !groups.is_empty()));
        assert_eq!(tables_of(engine, &chunks), want);
    }

    #[test]
    fn every_table_equals_its_rows_whichever_grouping_gives_it() {
        let tables = crate::aggregate::tables::DEFAULT_TABLES;
        let mut chunks = random_chunks(11, 3, 2000);
        assert_eq!(tables_of(Engine::new(tables), &chunks), tables_by_rows(tables, &chunks), "few campaigns");
        // Many campaigns (as in the spread shape): hourly_kpis is summed up from geo_device's few groups.
        let mut x = 5u64;
        for chunk in &mut chunks {
            for code in &mut chunk.dims[Dim::CAMPAIGN.index] {
                crate::testing::xorshift(&mut x);
                *code = (x % 400) as u32;
            }
        }
        let mut engine = Engine::new(tables);
        for chunk in &chunks {
            engine.push(&mut chunk.clone()).unwrap();
        }
        let source = engine.sources()[0];
        assert_eq!(engine.groupings[source].members, [3], "hourly_kpis from geo_device's grouping");
        assert_eq!(engine.feeds[0], engine.feeds[1], "the plan's feed: channel_performance's grouping");
        assert_eq!(tables_of(Engine::new(tables), &chunks), tables_by_rows(tables, &chunks), "many campaigns");
        assert_eq!(tables_of(Engine::with_joint(tables, &[]), &chunks), tables_by_rows(tables, &chunks));
    }

    #[test]
    fn listed_and_range_rows_gather_their_values() {
        let column = [10, 11, 12, 13, 14];
        let mut scratch = vec![99];
        gather(Rows::Range(1, 3), &column, &mut scratch);
        assert_eq!(scratch, vec![11, 12, 13]);
        gather(Rows::Listed(&[4, 0]), &column, &mut scratch);
        assert_eq!(scratch, vec![14, 10]);
        // Repeats of the row before are dropped; a value seen earlier but not just before is kept.
        let column = [7, 7, 8, 7, 7, 9, 9];
        gather(Rows::Listed(&[0, 1, 2, 3, 4, 5, 6]), &column, &mut scratch);
        assert_eq!(scratch, vec![7, 8, 7, 9]);
        gather(Rows::Range(0, 2), &column, &mut scratch);
        assert_eq!(scratch, vec![7]);
    }

    #[test]
    fn merged_ids_are_a_set_union() {
        let mut set = IdSet::default();
        let spare = &mut MergeScratch::default();
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
                        crate::testing::xorshift(&mut x);
                        (x % (u64::from(max) + 1)) as u32
                    })
                    .collect();
                let mut sorted = ids.clone();
                sort_ids(&mut sorted, &mut spare.spare);
                let mut want = ids.clone();
                want.sort_unstable();
                assert_eq!(sorted, want, "max {max}, {len} ids");
                let mut set = IdSet::default();
                merge_ids(&mut set, &mut vec![3u32, max / 2], spare);
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
