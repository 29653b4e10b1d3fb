//! Mergeable partial states: what one source contributes to one UTC hour, enough to recompute every
//! table of that hour (and, merged with the day's other hours, of its day) exactly, together with the
//! contributions of any other sources.
//!
//! A [`Partial`] holds, per table, every group (before any top-N cut) with its additive sums (order lines,
//! units, revenue in cents) and, for each distinct count the table has, the set of ids in the group. Ids are
//! kept as 128-bit hashes ([`crate::aggregate::intern::id_hash`], XXH3-128, as ClickHouse's `uniqExact` keeps strings):
//! each partial has one dictionary per kind (orders, customers, products) listing the hashes of the ids
//! present in its hour, and a group's set is a Roaring bitmap of positions in that dictionary. Merging
//! partials ([`merge`]) unions the dictionaries and the sets, and adds the sums: it is associative and
//! commutative, so any number of files (or byte ranges of one file) can feed an hour or a day.
//!
//! The stored form ([`Partial::encode`]) is documented in README ("Partial states").

use std::collections::{BTreeMap, BTreeSet};

use polars::prelude::*;
use roaring::RoaringBitmap;

use crate::aggregate::idset::{IdSet, SetScratch};
use crate::aggregate::intern::id_hash;
use crate::aggregate::tables::{ColumnType, Metric, Period, TableSpec};
use crate::aggregate::{div_round_half_away, FinalGroup, MAX_DECIMAL_18_2, MAX_KEYS};
use crate::contract::{Dictionaries, Dim};
use crate::error::{Error, InputError, Result};

/// The first bytes of a stored partial (format version 2: each table's layout after its name).
const MAGIC: &[u8; 8] = b"HIPART02";
/// Format version 1, still read: no table layouts.
const MAGIC_V1: &[u8; 8] = b"HIPART01";

/// Microseconds in an hour and in a day.
pub const HOUR_MICROS: i64 = 3_600_000_000;
pub const DAY_MICROS: i64 = 24 * HOUR_MICROS;

/// The start of the UTC day of an instant (µs).
pub fn day_of(micros: i64) -> i64 {
    micros.div_euclid(DAY_MICROS) * DAY_MICROS
}

/// A key value of a group: kept inline up to 24 bytes (dimension values nearly always are), so that a
/// group's keys take one allocation, not one per value.
pub type Key = PlSmallStr;

/// One group of a table in a partial.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupPartial {
    /// The table's key values, in the order of its keys.
    pub keys: Vec<Key>,
    pub lines: i64,
    pub units: i64,
    pub revenue: i128,
    /// Positions in the partial's dictionaries, per kind (orders, customers, products); in a partial of
    /// [`from_groups`], the engine's codes where its [`Unmade`] maps them as they are written.
    pub sets: [IdSet; 3],
}

/// One table's groups in a partial, sorted by keys.
#[derive(Clone, Debug, PartialEq)]
pub struct TablePartial {
    pub name: String,
    /// What the groups were made of; `None` in a state of format version 1, which did not store it.
    pub layout: Option<Layout>,
    pub groups: Vec<GroupPartial>,
}

/// A table's layout as a state was written under: its key dimensions, in order, and the distinct kinds
/// its metrics count (orders, customers, products). A state merges into a table only of the same layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    pub keys: Vec<String>,
    pub counted: [bool; 3],
}

impl Layout {
    /// The layout of a table as the config declares it.
    pub fn of(spec: &TableSpec) -> Layout {
        Layout {
            keys: spec.keys.iter().map(|d| d.name.to_string()).collect(),
            counted: crate::aggregate::counted_kinds(spec),
        }
    }

    /// How a state's table reads in an error message: `keys (a, b), counting orders, customers`.
    fn describe(&self) -> String {
        let counted: Vec<&str> =
            crate::aggregate::DISTINCT_KINDS.iter().zip(self.counted).filter(|(_, c)| *c).map(|(k, _)| *k).collect();
        format!(
            "keys ({}), counting {}",
            self.keys.join(", "),
            if counted.is_empty() { "no distinct ids".to_string() } else { counted.join(", ") }
        )
    }
}

/// One source's contribution to one hour.
#[derive(Clone, Debug, PartialEq)]
pub struct Partial {
    pub hour_start: i64,
    /// Hashes of the ids present, per kind: orders, customers (guests excluded), products (skus).
    pub ids: [Vec<u128>; 3],
    pub tables: Vec<TablePartial>,
}

/// A dictionary may list ids that no set of its partial holds; it is taken whole (no remapping) when
/// its ids' codes run from 0 to at most this many times the number of ids present (the hour that holds most
/// of a file's ids), and made of the present ids alone otherwise.
const WHOLE_RANGE: u64 = 5;
const WHOLE_RANGE_OF: u64 = 4;

/// The hours of a run's final groups, ascending: those [`from_groups`] makes partials of.
pub fn hours_of(groups: &[(&'static TableSpec, Vec<FinalGroup>)]) -> Vec<i64> {
    groups.iter().flat_map(|(_, g)| g.iter().map(|g| g.hour)).collect::<BTreeSet<_>>().into_iter().collect()
}

/// The codes an hour's dictionary lists, each at its place in it.
pub enum Wanted<'a> {
    /// Every code from 0 to this one, each at its own place.
    UpTo(u32),
    /// The codes of a set, each at its rank in it.
    Ranked(&'a IdSet, &'a Ranks),
}

impl Wanted<'_> {
    /// The place of `code` in the dictionary, if it is listed.
    #[inline]
    pub fn place(&self, code: u32) -> Option<usize> {
        match self {
            Wanted::UpTo(max) => (code <= *max).then_some(code as usize),
            Wanted::Ranked(_, ranks) => ranks.place(code),
        }
    }
}

/// Where an hour's dictionary takes its ids' 128-bit hashes ([`id_hash`]) from: the run's interner, which
/// makes them from its keys, or a vector of them all by code.
pub trait IdHashes {
    /// Sets `out[i]` to the hash of the code `wanted` puts at place `from + i`, for every place of `out`.
    fn hashes_into(&self, wanted: &Wanted<'_>, from: usize, out: &mut [u128]);

    /// How many places to make at a time ([`WALK_SLICE`] or [`CHEAP_SLICE`]).
    fn slice(&self) -> usize;
}

/// Calls `f` with the codes of `set` from its `from`-th on, `len` of them, a slice at a time, each with its
/// offset among them.
fn ranked_codes(set: &IdSet, from: usize, len: usize, mut f: impl FnMut(&[u32], usize)) {
    let mut codes = set.slices_from(from);
    let mut buf = [0u32; 1024];
    let mut at = 0;
    while at < len {
        let slice = codes.next(&mut buf[..(len - at).min(1024)]);
        assert!(!slice.is_empty(), "a dictionary lists no more places than its set has codes");
        f(slice, at);
        at += slice.len();
    }
}

impl IdHashes for crate::aggregate::intern::Interner {
    fn hashes_into(&self, wanted: &Wanted<'_>, from: usize, out: &mut [u128]) {
        if let Some(keys) = self.by_code() {
            return match wanted {
                Wanted::UpTo(_) => keys.hashes_into(from as u32.., out),
                Wanted::Ranked(set, _) => ranked_codes(set, from, out.len(), |codes, at| {
                    keys.hashes_into(codes.iter().copied(), &mut out[at..at + codes.len()])
                }),
            };
        }
        let len = out.len();
        let at = |code| wanted.place(code).and_then(|p| p.checked_sub(from)).filter(|&i| i < len);
        crate::aggregate::intern::Interner::hashes_into(self, at, out)
    }

    fn slice(&self) -> usize {
        match self.by_code() {
            Some(_) => CHEAP_SLICE,
            None => WALK_SLICE,
        }
    }
}

impl IdHashes for Vec<u128> {
    fn hashes_into(&self, wanted: &Wanted<'_>, from: usize, out: &mut [u128]) {
        match wanted {
            Wanted::UpTo(_) => out.copy_from_slice(&self[from..from + out.len()]),
            Wanted::Ranked(set, _) => ranked_codes(set, from, out.len(), |codes, at| {
                for (place, &code) in out[at..].iter_mut().zip(codes) {
                    *place = self[code as usize];
                }
            }),
        }
    }

    fn slice(&self) -> usize {
        CHEAP_SLICE
    }
}

/// Places of a dictionary made at a time when it is written ([`Unmade`]) where each slice walks every key
/// of the run (the interner's walk): 16 MB of hashes.
#[cfg(not(test))]
const WALK_SLICE: usize = 1 << 20;
/// Places made at a time where a slice costs only its own places (keys made by code, or a vector of
/// hashes): 512 KB of hashes, below the size that the end phase maps apart (`memory::end_phase`), so that
/// the buffer is taken from the heap rather than faulted in afresh for each dictionary.
#[cfg(not(test))]
const CHEAP_SLICE: usize = 1 << 15;
// A few places in unit tests, so that their dictionaries are written in several slices.
#[cfg(test)]
const WALK_SLICE: usize = 7;
#[cfg(test)]
const CHEAP_SLICE: usize = 5;

/// What a partial of [`from_groups`] still lacks, made as its state is written
/// ([`Partial::encode_to_temp`]):
/// - its order and customer dictionaries, handed on empty and written slice by slice, so that the largest
///   hour holds at most 16 MB of hashes rather than all of its ids' (60 MB on the spread shape's);
/// - its sets' dictionary places, where a dictionary is not taken whole: those sets keep the engine's
///   codes (the same lengths), and each is mapped into a reused buffer as it is written, not rebuilt.
///
/// Such a partial is only right written with this, or for its sets' lengths.
pub struct Unmade<'a> {
    dicts: [Option<(Wanted<'a>, usize)>; 2],
    sources: [&'a dyn IdHashes; 2],
    /// Per kind, the ranks that map the sets' codes to their places in a dictionary that is not taken
    /// whole: the sets keep the engine's codes, and are mapped as they are written.
    mapped: [Option<&'a Ranks>; 3],
}

impl Unmade<'_> {
    /// The dictionary of `kind` (orders 0, customers 1), made whole.
    #[cfg(test)]
    fn make(&self, kind: usize) -> Vec<u128> {
        let Some((wanted, len)) = &self.dicts[kind] else { return Vec::new() };
        let mut dict = vec![0; *len];
        self.sources[kind].hashes_into(wanted, 0, &mut dict);
        dict
    }

    /// Makes `partial`'s order and customer dictionaries, and maps its sets to their places in them: the
    /// partial [`Partial::encode_with`] writes with this (for tests, which compare the two).
    #[cfg(test)]
    fn fill(&self, partial: &mut Partial) {
        for kind in 0..2 {
            partial.ids[kind] = self.make(kind);
        }
        let (scratch, mut ids) = (&mut SetScratch::default(), Vec::new());
        for group in partial.tables.iter_mut().flat_map(|t| &mut t.groups) {
            for (set, ranks) in group.sets.iter_mut().zip(self.mapped) {
                if let Some(ranks) = ranks {
                    ranks.map_into(set, &mut ids);
                    *set = IdSet::from_sorted(std::mem::take(&mut ids), scratch);
                }
            }
        }
    }

    /// Writes the dictionary of `kind` as a state holds it: its length, then its hashes, a slice at a time.
    fn write_into(&self, kind: usize, out: &mut impl std::io::Write) -> std::io::Result<()> {
        let Some((wanted, len)) = &self.dicts[kind] else { return out.write_all(&0u64.to_le_bytes()) };
        out.write_all(&(*len as u64).to_le_bytes())?;
        let per_slice = self.sources[kind].slice();
        let mut slice = vec![0u128; (*len).min(per_slice)];
        let mut block = Vec::new();
        for from in (0..*len).step_by(per_slice) {
            let slice = &mut slice[..(*len - from).min(per_slice)];
            self.sources[kind].hashes_into(wanted, from, slice);
            write_hashes(out, slice, &mut block)?;
        }
        Ok(())
    }
}

/// Writes `hashes` as a state holds them (16 little-endian bytes each), 4,096 at a time through `block`.
fn write_hashes(out: &mut impl std::io::Write, hashes: &[u128], block: &mut Vec<u8>) -> std::io::Result<()> {
    for hashes in hashes.chunks(4096) {
        block.clear();
        block.extend(hashes.iter().flat_map(|h| h.to_le_bytes()));
        out.write_all(block)?;
    }
    Ok(())
}

/// The partials of a run, one per hour present (`hours`, as [`hours_of`] gives them), in ascending order,
/// from the engine's final groups: dimension codes become their values, and id codes dictionary positions
/// (as the state is written, see below). Each is handed to `each` as soon as
/// it is built, and its final groups' sets are moved into it, so that a run holds one hour's dictionaries
/// and partial at a time (if `each` keeps no partial).
///
/// A dictionary lists the hashes of the hour's ids in code order, made for that hour alone from `orders`
/// and `customers` when its state is written: each partial comes with its order and customer dictionaries
/// empty, and with what makes them ([`Unmade`]). Where the hour holds most of the file's codes, it lists
/// every code from 0 up to the hour's largest (a few ids of other hours included, held by no set), so
/// every set is the engine's own, with no remapping; otherwise it lists only the hour's ids, and each set
/// is mapped to their positions (ascending, as codes are) as it is written: until then (or
/// [`Unmade::fill`]) such sets hold the engine's codes, so only their lengths are the partial's.
pub fn from_groups(
    mut groups: Vec<(&'static TableSpec, Vec<FinalGroup>)>,
    hours: &[i64],
    dicts: &Dictionaries,
    ranks: &KeyRanks,
    orders: &dyn IdHashes,
    customers: &dyn IdHashes,
    mut each: impl FnMut(Partial, &Unmade<'_>) -> Result<()>,
) -> Result<()> {
    debug_assert_eq!(hours, hours_of(&groups), "the hours of the groups");
    let sku_hash = |code: u32| id_hash(dicts.value(Dim::SKU, code).as_bytes());
    // Each table's groups are sorted by hour: where each hour's run of them starts, per table.
    let bounds: Vec<Vec<usize>> = groups
        .iter()
        .map(|(_, gs)| {
            let mut at: Vec<usize> = hours.iter().map(|&h| gs.partition_point(|g| g.hour < h)).collect();
            at.push(gs.len());
            at
        })
        .collect();
    // Each hour's groups in vectors of their own, so that they are freed once its partial is built: the
    // hours after the first are cut off each table's vector from the end, which is shrunk in place.
    let scratch = &mut SetScratch::default();
    let mut by_hour: Vec<Vec<Vec<FinalGroup>>> = (0..hours.len()).map(|_| Vec::with_capacity(groups.len())).collect();
    for ((_, gs), bounds) in groups.iter_mut().zip(&bounds) {
        for h in (1..hours.len()).rev() {
            by_hour[h].push(gs.split_off(bounds[h]));
            gs.shrink_to_fit();
        }
        if let Some(first) = by_hour.first_mut() {
            first.push(std::mem::take(gs));
        }
    }
    let specs: Vec<&'static TableSpec> = groups.into_iter().map(|(spec, _)| spec).collect();
    let mut position: [Ranks; 3] = Default::default();
    for h in 0..hours.len() {
        let gs = &by_hour[h];
        // The hour's ids of each kind, and whether its dictionary is taken whole.
        let present: [IdSet; 3] = std::array::from_fn(|kind| {
            // Each table's groups of an hour hold all its rows, so the union over any one table that counts
            // this kind holds every id of it: the one with the fewest groups is the cheapest to union.
            let smallest =
                (0..gs.len()).filter(|&t| gs[t].iter().any(|g| !g.sets[kind].is_empty())).min_by_key(|&t| gs[t].len());
            IdSet::union(smallest.into_iter().flat_map(|t| &gs[t]).map(|g| &g.sets[kind]), scratch)
        });
        let whole: [bool; 3] = std::array::from_fn(|kind| {
            present[kind].max().is_some_and(|max| u64::from(max) < present[kind].len() * WHOLE_RANGE / WHOLE_RANGE_OF)
        });
        for kind in 0..3 {
            if !whole[kind] {
                position[kind].fill(&present[kind]);
            }
        }
        let skus = match present[2].max() {
            None => Vec::new(),
            Some(max) if whole[2] => (0..=max).map(sku_hash).collect(),
            Some(_) => present[2].iter().map(sku_hash).collect(),
        };
        let unmade = Unmade {
            dicts: std::array::from_fn(|kind| {
                let max = present[kind].max()?;
                Some(match whole[kind] {
                    true => (Wanted::UpTo(max), max as usize + 1),
                    false => (Wanted::Ranked(&present[kind], &position[kind]), present[kind].len() as usize),
                })
            }),
            sources: [orders, customers],
            mapped: std::array::from_fn(|kind| (!whole[kind]).then_some(&position[kind])),
        };
        let tables = specs
            .iter()
            .zip(std::mem::take(&mut by_hour[h]))
            .map(|(spec, mut gs)| {
                // The hour's groups are put in the order of their key values by the values' ranks
                // (integers), and made partial groups in that order.
                let ranks = ranks.of(spec);
                let mut order: Vec<([u32; MAX_KEYS], u32)> =
                    gs.iter().enumerate().map(|(i, g)| (ranks.key(&g.codes), i as u32)).collect();
                order.sort_unstable();
                let groups: Vec<GroupPartial> = order
                    .iter()
                    .map(|&(_, i)| {
                        let g = &mut gs[i as usize];
                        GroupPartial {
                            keys: spec.keys.iter().zip(g.codes).map(|(d, c)| Key::from(dicts.value(*d, c))).collect(),
                            lines: g.lines,
                            units: g.units,
                            revenue: g.revenue,
                            // Mapped to dictionary positions as they are written (`Unmade`).
                            sets: std::mem::take(&mut g.sets),
                        }
                    })
                    .collect();
                TablePartial { name: spec.name.to_string(), layout: Some(Layout::of(spec)), groups }
            })
            .collect();
        each(Partial { hour_start: hours[h], ids: [Vec::new(), Vec::new(), skus], tables }, &unmade)?;
    }
    Ok(())
}

/// Each key dimension's codes ranked by their values (for the dimensions of a run's tables): groups put in
/// the order of their keys' ranks are in the order of their key values, compared as integers.
pub struct KeyRanks(Vec<Option<Vec<u32>>>);

/// The ranks of one table's key dimensions ([`KeyRanks::of`]).
pub struct TableRanks<'a>(Vec<&'a [u32]>);

impl KeyRanks {
    /// The ranks of the key dimensions of `specs`.
    pub fn new<'s>(dicts: &Dictionaries, specs: impl IntoIterator<Item = &'s TableSpec>) -> KeyRanks {
        let mut ranks: Vec<Option<Vec<u32>>> = Vec::new();
        ranks.resize_with(dicts.dimensions(), || None);
        for spec in specs {
            for dim in spec.keys {
                if ranks[dim.index].is_none() {
                    ranks[dim.index] = Some(dicts.ranks(*dim));
                }
            }
        }
        KeyRanks(ranks)
    }

    /// The ranks of the key dimensions of `spec`, one of the tables they were made for.
    pub fn of(&self, spec: &TableSpec) -> TableRanks<'_> {
        TableRanks(
            spec.keys.iter().map(|d| self.0[d.index].as_deref().expect("every key dimension is ranked")).collect(),
        )
    }
}

impl TableRanks<'_> {
    /// The ranks of a group's key codes.
    #[inline]
    pub fn key(&self, codes: &[u32; MAX_KEYS]) -> [u32; MAX_KEYS] {
        let mut key = [0; MAX_KEYS];
        for (k, ranks) in self.0.iter().enumerate() {
            key[k] = ranks[codes[k] as usize];
        }
        key
    }
}

/// The position of each code of a set among the set's codes (its rank), for codes of the set: a bit per
/// code, with the count of the bits before each word beside it. A sixteenth of the 4 bytes per code of a
/// position table, so that it stays in the cache while a partial's sets are mapped through it.
#[derive(Default)]
pub struct Ranks(Vec<RankWord>);

#[derive(Clone, Copy, Default)]
struct RankWord {
    bits: u64,
    before: u32,
}

impl Ranks {
    /// The ranks of the codes of `set`.
    fn fill(&mut self, set: &IdSet) {
        let words = set.max().map_or(0, |m| m as usize / 64 + 1);
        self.0.clear();
        self.0.resize(words, RankWord::default());
        set.for_each_slice(|codes| {
            for &code in codes {
                self.0[code as usize / 64].bits |= 1 << (code % 64);
            }
        });
        let mut before = 0;
        for word in &mut self.0 {
            word.before = before;
            before += word.bits.count_ones();
        }
    }

    /// The rank of `code` if it is a code of the set.
    #[inline]
    fn place(&self, code: u32) -> Option<usize> {
        let word = self.0.get(code as usize / 64)?;
        (word.bits >> (code % 64) & 1 == 1)
            .then(|| (word.before + (word.bits & ((1u64 << (code % 64)) - 1)).count_ones()) as usize)
    }

    /// The rank of `code`, a code of the set.
    #[inline(always)]
    fn rank(&self, code: u32) -> u32 {
        let word = self.0[code as usize / 64];
        debug_assert!(word.bits >> (code % 64) & 1 == 1, "{code} is not in the set");
        word.before + (word.bits & ((1u64 << (code % 64)) - 1)).count_ones()
    }

    /// Sets `ids` to the ranks of `set`'s codes (codes of the ranked set), ascending. On x86-64 the baseline
    /// target has no popcount instruction, and `count_ones` in software was most of the time of mapping a
    /// large hour's sets: the loop is compiled a second time with the instruction, for the CPUs that have it
    /// (all but the oldest). Arm64 has it in its baseline.
    fn map_into(&self, set: &IdSet, ids: &mut Vec<u32>) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("popcnt") {
            // SAFETY: the CPU has the instruction the function is compiled with.
            return unsafe { self.map_into_with_popcnt(set, ids) };
        }
        set.map_increasing_into(|c| self.rank(c), ids)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "popcnt")]
    unsafe fn map_into_with_popcnt(&self, set: &IdSet, ids: &mut Vec<u32>) {
        set.map_increasing_into(|c| self.rank(c), ids)
    }
}

/// The rows of the days on which a run's own groups fall in two hours or more, by day start and table:
/// what [`merge`] gives of those hours' partials when they are the day's only ones, computed from the
/// engine's groups before they become partials, and kept with their key codes until they are published.
/// Their sets share the engine's codes, so a group's hours are counted together as they are
/// ([`union_len`]), where merging the partials maps every id through a merged dictionary of hashes. (A day
/// of one hour is that hour's partial, which [`merge`] takes as it is.)
#[derive(Debug, Default)]
pub struct OwnDays {
    /// By day start: each table's rows, with the key codes (labelled when they are asked for).
    days: BTreeMap<i64, Vec<(&'static TableSpec, Vec<CodedRow>)>>,
    /// The run's dimension values by code, to label the codes ([`OwnDays::labelled_by`]).
    values: Vec<Vec<String>>,
}

/// A [`Row`] whose keys are still dimension codes: no string is made for a row before it is published.
#[derive(Debug)]
struct CodedRow {
    codes: [u32; MAX_KEYS],
    lines: i64,
    units: i64,
    revenue: i128,
    distinct: [i64; 3],
}

impl OwnDays {
    /// The days of `groups`, each day's rows in the order of their key values (`ranks`, made for the groups'
    /// tables).
    pub fn of(groups: &[(&'static TableSpec, Vec<FinalGroup>)], ranks: &KeyRanks) -> OwnDays {
        let mut hours: BTreeMap<i64, BTreeSet<i64>> = BTreeMap::new();
        for g in groups.iter().flat_map(|(_, gs)| gs) {
            hours.entry(day_of(g.hour)).or_default().insert(g.hour);
        }
        hours.retain(|_, h| h.len() > 1);
        let mut days: BTreeMap<i64, Vec<(&'static TableSpec, Vec<CodedRow>)>> = BTreeMap::new();
        // A group's hours are counted in a bit set over the codes (sparse sets touch many of a bitmap's
        // containers each, so unioning them as bitmaps allocates a container for every few ids).
        let codes = |kind: usize| groups.iter().flat_map(|(_, gs)| gs).filter_map(|g| g.sets[kind].max()).max();
        let mut seen: [Seen; 3] = std::array::from_fn(|kind| Seen::new(codes(kind).map_or(0, |m| m as usize + 1)));
        let mut sets: Vec<&IdSet> = Vec::new();
        for &(spec, ref gs) in groups {
            // Sorted by day and key values (the ranks of their codes), each worked out once (not in every
            // comparison): a day's rows are in the order its table is written in.
            let ranks = ranks.of(spec);
            let mut of_days: Vec<(i64, [u32; MAX_KEYS], &FinalGroup)> = gs
                .iter()
                .map(|g| (day_of(g.hour), ranks.key(&g.codes), g))
                .filter(|(day, _, _)| hours.contains_key(day))
                .collect();
            of_days.sort_unstable_by_key(|&(day, key, _)| (day, key));
            let mut rows: BTreeMap<i64, Vec<CodedRow>> = hours.keys().map(|&d| (d, Vec::new())).collect();
            for run in of_days.chunk_by(|a, b| (a.0, a.1) == (b.0, b.1)) {
                let (day, _, group) = run[0];
                let row = CodedRow {
                    codes: group.codes,
                    lines: run.iter().map(|(_, _, g)| g.lines).sum(),
                    units: run.iter().map(|(_, _, g)| g.units).sum(),
                    revenue: run.iter().map(|(_, _, g)| g.revenue).sum(),
                    distinct: std::array::from_fn(|kind| {
                        sets.clear();
                        sets.extend(run.iter().map(|(_, _, g)| &g.sets[kind]));
                        union_len(&sets, &mut seen[kind]) as i64
                    }),
                };
                rows.get_mut(&day).expect("a day of two hours or more").push(row);
            }
            for (day, rows) in rows {
                days.entry(day).or_default().push((spec, rows));
            }
        }
        OwnDays { days, values: Vec::new() }
    }

    /// Whether the run has rows of `day` (its start): a day on which its groups fall in two hours or more.
    pub fn has(&self, day: i64) -> bool {
        self.days.contains_key(&day)
    }

    /// These days with the values that label their codes (the run's dictionaries, once its partials are
    /// built; only their values are kept, and nothing when the run has no day of several hours).
    pub fn labelled_by(self, dicts: Dictionaries) -> OwnDays {
        if self.days.is_empty() {
            return self;
        }
        OwnDays { values: dicts.into_values(), ..self }
    }

    /// Rows of default tables given as they are (coded here), for tests of where they are used.
    #[cfg(test)]
    pub fn with_rows(day: i64, rows: Vec<(&'static str, Vec<Row>)>) -> OwnDays {
        let mut values: Vec<Vec<String>> = vec![Vec::new(); Dim::DEFAULTS.len()];
        let mut code = |dim: &Dim, value: &str| -> u32 {
            let known = &mut values[dim.index];
            let at = known.iter().position(|v| v == value).unwrap_or_else(|| {
                known.push(value.to_string());
                known.len() - 1
            });
            at as u32
        };
        let coded = rows
            .into_iter()
            .map(|(name, rows)| {
                let spec = crate::settings::Settings::default_ref().table(name).expect("a default table");
                let rows = rows
                    .into_iter()
                    .map(|r| {
                        let mut codes = [0; MAX_KEYS];
                        for (k, (dim, key)) in spec.keys.iter().zip(&r.keys).enumerate() {
                            codes[k] = code(dim, key);
                        }
                        CodedRow { codes, lines: r.lines, units: r.units, revenue: r.revenue, distinct: r.distinct }
                    })
                    .collect();
                (spec, rows)
            })
            .collect();
        OwnDays { days: BTreeMap::from([(day, coded)]), values }
    }

    /// The rows of `day` (its start), table by table as `tables` lists them, if the run has them.
    pub fn rows<'t>(&self, day: i64, tables: &'t [TableSpec]) -> Option<Vec<(&'t TableSpec, Vec<Row>)>> {
        let of_day = self.days.get(&day)?;
        if self.values.is_empty() {
            debug_assert!(false, "own days are labelled before they are published");
            return None;
        }
        let rows = |name: &str| -> Vec<Row> {
            let Some((spec, rows)) = of_day.iter().find(|(s, _)| s.name == name) else { return Vec::new() };
            rows.iter()
                .map(|r| Row {
                    keys: spec
                        .keys
                        .iter()
                        .zip(r.codes)
                        .map(|(d, c)| Key::from(&self.values[d.index][c as usize]))
                        .collect(),
                    lines: r.lines,
                    units: r.units,
                    revenue: r.revenue,
                    distinct: r.distinct,
                })
                .collect()
        };
        Some(tables.iter().map(|spec| (spec, rows(spec.name))).collect())
    }
}

/// A corrupt stored partial.
fn corrupt(what: &str) -> Error {
    Error::Internal { message: format!("a stored partial state is corrupt: {what}") }
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len()).ok_or_else(|| corrupt("truncated"))?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
    fn i64(&mut self) -> Result<i64> {
        Ok(i64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
    fn i128(&mut self) -> Result<i128> {
        Ok(i128::from_le_bytes(self.take(16)?.try_into().expect("16 bytes")))
    }
    fn string(&mut self) -> Result<String> {
        Ok(self.str()?.to_string())
    }

    fn str(&mut self) -> Result<&'a str> {
        let n = self.u32()? as usize;
        std::str::from_utf8(self.take(n)?).map_err(|_| corrupt("a key is not UTF-8"))
    }
}

impl Partial {
    /// The stored form: little-endian, `HIPART02`, the hour start (i64 µs), three dictionaries (u64 count,
    /// then 16 bytes per hash), the tables (u32 count; each: name, its layout (u32 key count and the key
    /// names, then a byte with a bit per distinct kind counted: 1 orders, 2 customers, 4 products), u32
    /// group count; each group: u32 key
    /// count and keys, lines i64, units i64, revenue i128 cents, then per kind a u32 length and the set in
    /// Roaring's portable serialization). Strings are a u32 length and UTF-8 bytes. The bytes depend only on
    /// the content, so equal partials have equal bytes.
    ///
    /// # Panics
    /// When a table has no layout: only a state read from format 1 lacks them, and states are only written
    /// by the run that made them.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.ids.iter().map(|d| d.len() * 16).sum::<usize>());
        self.encode_into(&mut out).expect("writing to a Vec");
        out
    }

    /// Writes the stored form ([`Partial::encode`]) to `out`, piece by piece (a large state is never held
    /// whole in memory twice).
    pub fn encode_into(&self, out: &mut impl std::io::Write) -> std::io::Result<()> {
        self.encode_with(None, out)
    }

    /// [`Partial::encode_into`], with the order and customer dictionaries made by `unmade` if given.
    fn encode_with(&self, unmade: Option<&Unmade<'_>>, out: &mut impl std::io::Write) -> std::io::Result<()> {
        fn write_str(out: &mut impl std::io::Write, s: &str) -> std::io::Result<()> {
            out.write_all(&(s.len() as u32).to_le_bytes())?;
            out.write_all(s.as_bytes())
        }
        out.write_all(MAGIC)?;
        out.write_all(&self.hour_start.to_le_bytes())?;
        let mut block = Vec::with_capacity(4096 * 16);
        let scratch = &mut SetScratch::default();
        // A set of a kind `unmade` maps, mapped (its dictionary places).
        let mut places = Vec::new();
        for (kind, dict) in self.ids.iter().enumerate() {
            if let Some(unmade) = unmade.filter(|_| kind < 2) {
                unmade.write_into(kind, out)?;
                continue;
            }
            out.write_all(&(dict.len() as u64).to_le_bytes())?;
            write_hashes(out, dict, &mut block)?;
        }
        out.write_all(&(self.tables.len() as u32).to_le_bytes())?;
        for table in &self.tables {
            write_str(out, &table.name)?;
            let layout = table.layout.as_ref().ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "a state is written with its tables' layouts")
            })?;
            out.write_all(&(layout.keys.len() as u32).to_le_bytes())?;
            for key in &layout.keys {
                write_str(out, key)?;
            }
            out.write_all(&[layout.counted.iter().enumerate().map(|(k, &c)| u8::from(c) << k).sum::<u8>()])?;
            out.write_all(&(table.groups.len() as u32).to_le_bytes())?;
            for g in &table.groups {
                out.write_all(&(g.keys.len() as u32).to_le_bytes())?;
                for k in &g.keys {
                    write_str(out, k)?;
                }
                out.write_all(&g.lines.to_le_bytes())?;
                out.write_all(&g.units.to_le_bytes())?;
                out.write_all(&g.revenue.to_le_bytes())?;
                for (kind, set) in g.sets.iter().enumerate() {
                    match unmade.and_then(|u| u.mapped[kind]) {
                        Some(ranks) => {
                            ranks.map_into(set, &mut places);
                            crate::aggregate::idset::serialize_sorted_sized_into(&places, &mut *out, scratch)?;
                        }
                        None => set.serialize_sized_into(&mut *out, scratch)?,
                    }
                }
            }
        }
        Ok(())
    }

    /// Writes the stored form to a temporary file; returns it with the XXH3-64 digest of its bytes.
    /// With `unmade`, the order and customer dictionaries are made as they are written ([`Unmade`]).
    pub fn encode_to_temp(&self, unmade: Option<&Unmade<'_>>) -> Result<(tempfile::NamedTempFile, u64)> {
        if let Some(t) = self.tables.iter().find(|t| t.layout.is_none()) {
            return Err(Error::Internal { message: format!("a state's table `{}` has no layout to write", t.name) });
        }
        struct Hashing<W> {
            inner: W,
            hasher: xxhash_rust::xxh3::Xxh3,
        }
        impl<W: std::io::Write> std::io::Write for Hashing<W> {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                let n = self.inner.write(buf)?;
                self.hasher.update(&buf[..n]);
                Ok(n)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                self.inner.flush()
            }
        }
        let err = |source| Error::Write { path: std::env::temp_dir(), source };
        let file = tempfile::NamedTempFile::new().map_err(err)?;
        // Hashed behind the buffer, so that the hasher sees large blocks, not every field.
        let hashing = Hashing { inner: file.reopen().map_err(err)?, hasher: xxhash_rust::xxh3::Xxh3::new() };
        let mut out = std::io::BufWriter::with_capacity(256 * 1024, hashing);
        self.encode_with(unmade, &mut out).map_err(err)?;
        let hashing = out.into_inner().map_err(|e| err(e.into_error()))?;
        Ok((file, hashing.hasher.digest()))
    }

    /// Why this partial cannot be merged into `tables`, if it cannot: a table of the same name written under
    /// another layout, with other keys or without a distinct count the config's table has (one it has no
    /// more is fine: those sets are not read). A state of format version 1 has no layout: only its groups'
    /// number of keys is checked.
    pub fn layout_mismatch(&self, tables: &[TableSpec]) -> Option<String> {
        for t in &self.tables {
            let Some(spec) = tables.iter().find(|s| s.name == t.name) else { continue };
            if let Some(layout) = &t.layout {
                let config = Layout::of(spec);
                let counts_enough = config.counted.iter().zip(layout.counted).all(|(&wanted, had)| had || !wanted);
                if layout.keys != config.keys || !counts_enough {
                    return Some(format!(
                        "its table `{}` was written with {} where the config's has {}",
                        t.name,
                        layout.describe(),
                        config.describe()
                    ));
                }
                continue;
            }
            if let Some(g) = t.groups.iter().find(|g| g.keys.len() != spec.keys.len()) {
                let names: Vec<&str> = spec.keys.iter().map(|d| d.name).collect();
                return Some(format!(
                    "its table `{}` has {} key(s) a group where the config's has {} ({})",
                    t.name,
                    g.keys.len(),
                    spec.keys.len(),
                    names.join(", ")
                ));
            }
        }
        None
    }

    /// Reads the stored form back, checking every length and every set against its dictionary.
    pub fn decode(bytes: &[u8]) -> Result<Partial> {
        let mut r = Reader { bytes, at: 0 };
        let with_layouts = match r.take(MAGIC.len())? {
            magic if magic == MAGIC => true,
            magic if magic == MAGIC_V1 => false,
            magic if magic.starts_with(b"HIPART") => {
                return Err(Error::Internal {
                    message: format!(
                        "a stored partial state is of format {}, which this build does not read (it reads HIPART01 \
                         and HIPART02): it was written by a newer version, which has to process this day",
                        String::from_utf8_lossy(magic)
                    ),
                })
            }
            _ => return Err(corrupt("not a partial state (magic bytes)")),
        };
        let hour_start = r.i64()?;
        let mut ids: [Vec<u128>; 3] = Default::default();
        for dict in &mut ids {
            let n = usize::try_from(r.u64()?).map_err(|_| corrupt("dictionary size"))?;
            let raw = r.take(n.checked_mul(16).ok_or_else(|| corrupt("dictionary size"))?)?;
            *dict = raw.chunks_exact(16).map(|c| u128::from_le_bytes(c.try_into().expect("16 bytes"))).collect();
        }
        let n_tables = r.u32()?;
        let mut tables = Vec::new();
        for _ in 0..n_tables {
            let name = r.string()?;
            let layout = match with_layouts {
                true => {
                    let n_keys = r.u32()?;
                    let keys = (0..n_keys).map(|_| r.string()).collect::<Result<Vec<_>>>()?;
                    let mask = r.take(1)?[0];
                    if mask >> 3 != 0 {
                        return Err(corrupt("a table's counted kinds"));
                    }
                    Some(Layout { keys, counted: std::array::from_fn(|k| mask >> k & 1 == 1) })
                }
                false => None,
            };
            let n_groups = r.u32()?;
            let mut groups = Vec::new();
            for _ in 0..n_groups {
                let n_keys = r.u32()?;
                if layout.as_ref().is_some_and(|l| l.keys.len() != n_keys as usize) {
                    return Err(corrupt("a group's keys do not match its table's layout"));
                }
                let keys = (0..n_keys).map(|_| r.str().map(Key::from)).collect::<Result<Vec<_>>>()?;
                let (lines, units, revenue) = (r.i64()?, r.i64()?, r.i128()?);
                let mut sets: [IdSet; 3] = Default::default();
                for (kind, set) in sets.iter_mut().enumerate() {
                    let n = r.u32()? as usize;
                    let bitmap = RoaringBitmap::deserialize_from(r.take(n)?).map_err(|_| corrupt("a set"))?;
                    *set = IdSet::from_bitmap(bitmap);
                    if set.max().is_some_and(|m| m as usize >= ids[kind].len()) {
                        return Err(corrupt("a set refers past its dictionary"));
                    }
                }
                groups.push(GroupPartial { keys, lines, units, revenue, sets });
            }
            tables.push(TablePartial { name, layout, groups });
        }
        if r.at != bytes.len() {
            return Err(corrupt("trailing bytes"));
        }
        Ok(Partial { hour_start, ids, tables })
    }
}

/// One row of a finished table, before ranking: its key values, sums and distinct counts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub keys: Vec<Key>,
    pub lines: i64,
    pub units: i64,
    pub revenue: i128,
    /// Distinct orders, customers, products.
    pub distinct: [i64; 3],
}

/// Where each partial's dictionary positions of one kind go in the merged dictionary: `None` for the
/// partial whose dictionary the merged one starts with (its positions stay), a position per entry for
/// the others.
fn merge_dicts(dicts: &[&[u128]]) -> Vec<Option<Vec<u32>>> {
    let Some(base) = (0..dicts.len()).max_by_key(|&i| (dicts[i].len(), std::cmp::Reverse(i))) else {
        return Vec::new();
    };
    // Only the smaller dictionaries are hashed; the largest is scanned once against them.
    let mut found: hashbrown::HashMap<u128, u32, foldhash::fast::FixedState> = Default::default();
    for (i, d) in dicts.iter().enumerate() {
        if i != base {
            for &h in d.iter() {
                found.insert(h, u32::MAX);
            }
        }
    }
    if !found.is_empty() {
        // A bit per low 20 bits of the hashes looked for (128 KiB, cache-resident) answers most of the
        // largest dictionary's entries without a hash-table probe.
        const FILTER_BITS: u32 = 20;
        let mut filter = vec![0u64; 1 << (FILTER_BITS - 6)];
        let bit = |h: u128| (h as u32 & ((1 << FILTER_BITS) - 1)) as usize;
        for &h in found.keys() {
            filter[bit(h) >> 6] |= 1 << (bit(h) & 63);
        }
        for (at, &h) in dicts[base].iter().enumerate() {
            if filter[bit(h) >> 6] & (1 << (bit(h) & 63)) != 0 {
                if let Some(slot) = found.get_mut(&h) {
                    *slot = at as u32;
                }
            }
        }
    }
    let mut next = dicts[base].len() as u32;
    dicts
        .iter()
        .enumerate()
        .map(|(i, d)| {
            (i != base).then(|| {
                d.iter()
                    .map(|h| {
                        let slot = found.get_mut(h).expect("every entry was added");
                        if *slot == u32::MAX {
                            *slot = next;
                            next += 1;
                        }
                        *slot
                    })
                    .collect()
            })
        })
        .collect()
}

/// An hour's totals over every valid row of a partial (whatever its tables: each holds every row once).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Totals {
    pub lines: i64,
    pub units: i64,
    pub revenue: i128,
    /// Distinct orders and customers, from the sets of a table that counts them (`None` when no table does).
    pub orders: Option<i64>,
    pub customers: Option<i64>,
}

/// The totals of `partial`, whose tables are among `tables`; `None` for a partial without tables.
pub fn totals(partial: &Partial, tables: &[TableSpec]) -> Option<Totals> {
    let first = partial.tables.first()?;
    let sum = |f: fn(&GroupPartial) -> i128| first.groups.iter().map(f).sum::<i128>();
    let distinct = |kind: usize| -> Option<i64> {
        let table = partial
            .tables
            .iter()
            .find(|t| tables.iter().any(|s| s.name == t.name && crate::aggregate::counted_kinds(s)[kind]))?;
        let union = IdSet::union(table.groups.iter().map(|g| &g.sets[kind]), &mut SetScratch::default());
        Some(union.len() as i64)
    };
    Some(Totals {
        lines: sum(|g| i128::from(g.lines)) as i64,
        units: sum(|g| i128::from(g.units)) as i64,
        revenue: sum(|g| g.revenue),
        orders: distinct(0),
        customers: distinct(1),
    })
}

/// The rows of every table of `tables` over the union of `parts` (any hours, any sources): groups with
/// equal keys are merged, sums added, sets unioned through the merged dictionaries. Rows are sorted by keys.
pub fn merge<'t>(parts: &[&Partial], tables: &'t [TableSpec]) -> Vec<(&'t TableSpec, Vec<Row>)> {
    match parts {
        // One source in the hour (the common case): its groups are the rows, sorted, one per key.
        [only] => tables.iter().map(|spec| (spec, rows_of(only, spec))).collect(),
        _ => merge_all(parts, tables),
    }
}

/// The rows [`merge`] gives of `part` alone, taken from it: its dictionaries are freed first, and its
/// groups' keys become the rows' without a copy.
pub fn into_rows(part: Partial, tables: &[TableSpec]) -> Vec<(&TableSpec, Vec<Row>)> {
    let Partial { ids, tables: mut parts, .. } = part;
    drop(ids);
    tables
        .iter()
        .map(|spec| {
            let groups = parts.iter_mut().find(|t| t.name == spec.name).map(|t| std::mem::take(&mut t.groups));
            let rows = groups
                .unwrap_or_default()
                .into_iter()
                .map(|g| Row {
                    distinct: std::array::from_fn(|kind| g.sets[kind].len() as i64),
                    keys: g.keys,
                    lines: g.lines,
                    units: g.units,
                    revenue: g.revenue,
                })
                .collect();
            (spec, rows)
        })
        .collect()
}

/// The rows of one partial's table: a partial holds each key once, in key order.
fn rows_of(part: &Partial, spec: &TableSpec) -> Vec<Row> {
    let Some(table) = part.tables.iter().find(|t| t.name == spec.name) else { return Vec::new() };
    table
        .groups
        .iter()
        .map(|g| Row {
            keys: g.keys.clone(),
            lines: g.lines,
            units: g.units,
            revenue: g.revenue,
            distinct: std::array::from_fn(|kind| g.sets[kind].len() as i64),
        })
        .collect()
}

/// The number of ids in the union of `sets`. Two or three vectors alone by merging them in order. Else the
/// bitmaps among them, if two or three, by inclusion and exclusion (intersections counted without building
/// them, but for the small one of two), then the vectors' ids in none of those bitmaps counted in `seen`;
/// more bitmaps, and all ids, in `seen`.
fn union_len(sets: &[&IdSet], seen: &mut Seen) -> u64 {
    match sets {
        [a] => return a.len(),
        // Two or three vectors (a fine group's hours, most of a table of campaigns): merged in order, which
        // reads each list once, where marking each id in the bit set touches a word of it at random.
        [IdSet::Small(a), IdSet::Small(b)] => return sorted_union_len(a, b) as u64,
        [IdSet::Small(a), IdSet::Small(b), IdSet::Small(c)] => {
            sorted_union_into(a, b, &mut seen.merged);
            return sorted_union_len(&seen.merged, c) as u64;
        }
        _ => {}
    }
    let bitmaps: Vec<&RoaringBitmap> = sets
        .iter()
        .filter_map(|s| match s {
            IdSet::Big(b) => Some(b),
            IdSet::Small(_) => None,
        })
        .collect();
    let in_bitmaps = match *bitmaps.as_slice() {
        [] => 0,
        [a] => a.len(),
        [a, b] => a.union_len(b),
        [a, b, c] => {
            let ab = a & b;
            a.len() + b.len() + c.len() - ab.len() - a.intersection_len(c) - b.intersection_len(c)
                + ab.intersection_len(c)
        }
        _ => {
            sets.iter().flat_map(|s| s.iter()).for_each(|id| seen.insert(id));
            return seen.take_count() as u64;
        }
    };
    for set in sets {
        if let IdSet::Small(ids) = set {
            ids.iter().filter(|&&id| !bitmaps.iter().any(|b| b.contains(id))).for_each(|&id| seen.insert(id));
        }
    }
    in_bitmaps + seen.take_count() as u64
}

/// The number of ids in `a` or `b` (each ascending, without repeats), counted in one pass without a branch
/// on the ids.
fn sorted_union_len(a: &[u32], b: &[u32]) -> usize {
    let (mut i, mut j, mut common) = (0, 0, 0);
    while i < a.len() && j < b.len() {
        let (x, y) = (a[i], b[j]);
        common += usize::from(x == y);
        i += usize::from(x <= y);
        j += usize::from(y <= x);
    }
    a.len() + b.len() - common
}

/// Sets `out` to the ids of `a` or `b` (each ascending, without repeats), ascending, without repeats.
fn sorted_union_into(a: &[u32], b: &[u32], out: &mut Vec<u32>) {
    out.clear();
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        let (x, y) = (a[i], b[j]);
        out.push(x.min(y));
        i += usize::from(x <= y);
        j += usize::from(y <= x);
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
}

/// A set of dictionary positions that counts its distinct members, and forgets them cheaply: only the
/// words it touched are cleared.
struct Seen {
    words: Vec<u64>,
    touched: Vec<u32>,
    count: usize,
    /// Scratch space of [`union_len`].
    merged: Vec<u32>,
}

impl Seen {
    fn new(positions: usize) -> Self {
        Seen { words: vec![0; positions.div_ceil(64)], touched: Vec::new(), count: 0, merged: Vec::new() }
    }

    fn insert(&mut self, position: u32) {
        let (w, bit) = (position as usize / 64, 1u64 << (position % 64));
        let word = &mut self.words[w];
        if *word == 0 {
            self.touched.push(w as u32);
        }
        self.count += usize::from(*word & bit == 0);
        *word |= bit;
    }

    /// The number of distinct positions inserted since the last call; the set is empty afterwards.
    fn take_count(&mut self) -> usize {
        for &w in &self.touched {
            self.words[w as usize] = 0;
        }
        self.touched.clear();
        std::mem::take(&mut self.count)
    }
}

/// [`merge`] of any number of partials.
fn merge_all<'t>(parts: &[&Partial], tables: &'t [TableSpec]) -> Vec<(&'t TableSpec, Vec<Row>)> {
    let remaps: [Vec<Option<Vec<u32>>>; 3] = std::array::from_fn(|kind| {
        let dicts: Vec<&[u128]> = parts.iter().map(|p| p.ids[kind].as_slice()).collect();
        merge_dicts(&dicts)
    });
    // A group's union is counted in a bit set over the merged dictionary, cleared after each group.
    let mut seen: [Seen; 3] = std::array::from_fn(|kind| {
        let appended = remaps[kind].iter().flatten().flat_map(|r| r.iter().max()).max().map_or(0, |&m| m as usize + 1);
        let base = parts.iter().zip(&remaps[kind]).find(|(_, r)| r.is_none()).map_or(0, |(p, _)| p.ids[kind].len());
        Seen::new(base.max(appended))
    });
    tables
        .iter()
        .map(|spec| {
            // Each group's contributions, by keys; a group's sets are counted one group at a time, so the
            // merge holds one bit per merged dictionary entry besides the partials.
            let mut merged: BTreeMap<&[Key], Vec<(usize, &GroupPartial)>> = BTreeMap::new();
            for (p, part) in parts.iter().enumerate() {
                let Some(table) = part.tables.iter().find(|t| t.name == spec.name) else { continue };
                for g in &table.groups {
                    merged.entry(g.keys.as_slice()).or_default().push((p, g));
                }
            }
            let rows = merged
                .into_iter()
                .map(|(keys, feeds)| {
                    let distinct = std::array::from_fn(|kind| {
                        if let [(_, g)] = feeds.as_slice() {
                            return g.sets[kind].len() as i64;
                        }
                        let seen = &mut seen[kind];
                        for (p, g) in &feeds {
                            match &remaps[kind][*p] {
                                None => g.sets[kind].iter().for_each(|i| seen.insert(i)),
                                Some(remap) => g.sets[kind].iter().for_each(|i| seen.insert(remap[i as usize])),
                            }
                        }
                        seen.take_count() as i64
                    });
                    Row {
                        keys: keys.to_vec(),
                        lines: feeds.iter().map(|(_, g)| g.lines).sum(),
                        units: feeds.iter().map(|(_, g)| g.units).sum(),
                        revenue: feeds.iter().map(|(_, g)| g.revenue).sum(),
                        distinct,
                    }
                })
                .collect();
            (spec, rows)
        })
        .collect()
}

/// A table's output frame for one period (`hour_start` or `day` first): the top-N cut and ranking where
/// the table has one (by revenue descending, keys ascending), rows sorted by keys otherwise. `rows` are
/// left cut and sorted so, which another frame of them (another period) does again to the same rows. A
/// revenue that does not fit decimal(18,2) is an error.
pub fn frame(spec: &TableSpec, period: Period, start: i64, rows: &mut Vec<Row>) -> Result<DataFrame> {
    if let Some(row) = rows.iter().find(|r| r.revenue > MAX_DECIMAL_18_2) {
        return Err(InputError::RevenueOverflow {
            message: format!("table {} has revenue {} cents in one group", spec.table_name(period), row.revenue),
        }
        .into());
    }
    let mut ranks = Vec::new();
    if let Some(n) = spec.top {
        // The largest `n` by revenue, ties by keys (unique in a table): picked, then sorted.
        let order = |a: &Row, b: &Row| b.revenue.cmp(&a.revenue).then_with(|| a.keys.cmp(&b.keys));
        if rows.len() > n {
            rows.select_nth_unstable_by(n, order);
            rows.truncate(n);
        }
        rows.sort_by(order);
        ranks = (1..=rows.len() as i64).collect();
    } else {
        rows.sort_by(|a, b| a.keys.cmp(&b.keys));
    }
    let height = rows.len();
    let mut columns = Vec::new();
    let (first, _) = period.column();
    columns.push(match period {
        Period::Hour => Int64Chunked::from_vec(first.into(), vec![start; height])
            .into_datetime(TimeUnit::Microseconds, Some(TimeZone::UTC))
            .into_series()
            .into_column(),
        Period::Day => {
            let days = i32::try_from(start.div_euclid(DAY_MICROS)).map_err(|_| corrupt("day out of range"))?;
            Int32Chunked::from_vec(first.into(), vec![days; height]).into_date().into_series().into_column()
        }
    });
    if spec.top.is_some() {
        columns.push(Column::new("rank".into(), ranks));
    }
    for (k, dim) in spec.keys.iter().enumerate() {
        let values: Vec<&str> = rows.iter().map(|r| r.keys[k].as_str()).collect();
        columns.push(Column::new(dim.name().into(), values));
    }
    for &metric in spec.metrics {
        let column = match metric.column_type() {
            ColumnType::Decimal => {
                let cents: Vec<i128> = rows.iter().map(|r| cents_of(metric, r)).collect();
                Int128Chunked::from_vec(metric.name().into(), cents).into_decimal(18, 2)?.into_series().into_column()
            }
            _ => Column::new(metric.name().into(), rows.iter().map(|r| count_of(metric, r)).collect::<Vec<i64>>()),
        };
        columns.push(column);
    }
    Ok(DataFrame::new(height, columns)?)
}

fn count_of(metric: Metric, r: &Row) -> i64 {
    match metric {
        Metric::Orders => r.distinct[0],
        Metric::Customers => r.distinct[1],
        Metric::Products => r.distinct[2],
        Metric::OrderLines => r.lines,
        Metric::Units => r.units,
        Metric::Revenue | Metric::AvgOrderValue => 0,
    }
}

fn cents_of(metric: Metric, r: &Row) -> i128 {
    match metric {
        Metric::Revenue => r.revenue,
        Metric::AvgOrderValue => div_round_half_away(r.revenue, i128::from(r.distinct[0])),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::xorshift;

    /// Ranks map a set's codes to their positions alike whichever loop runs (with the popcount instruction
    /// or without), for vectors and bitmaps, sparse and dense.
    #[test]
    fn ranks_map_codes_to_their_positions() {
        let mut x = 11u64;
        for (n, range) in [(50u64, 1u64 << 30), (5_000, 1 << 20), (200_000, 300_000)] {
            let present: IdSet = (0..n).map(|_| (xorshift(&mut x) % range) as u32).collect();
            let codes: Vec<u32> = present.iter().collect();
            let mut ranks = Ranks::default();
            ranks.fill(&present);
            for step in [1, 3, 97] {
                let subset: IdSet = codes.iter().step_by(step).copied().collect();
                let want: Vec<u32> = subset.iter().map(|c| codes.binary_search(&c).unwrap() as u32).collect();
                let (mut plain, mut mapped) = (Vec::new(), Vec::new());
                subset.map_increasing_into(|c| ranks.rank(c), &mut plain);
                ranks.map_into(&subset, &mut mapped);
                assert_eq!(mapped, want, "{n} ids, every {step}th");
                assert_eq!(plain, want, "{n} ids, every {step}th");
            }
        }
    }

    /// A partial of one table with random groups over a dictionary of `n` random hashes drawn from `pool`.
    fn random_partial(seed: u64, pool: &[u128], n: usize) -> Partial {
        let mut x = seed;
        let mut picked: Vec<u128> = (0..n).map(|_| pool[(xorshift(&mut x) % pool.len() as u64) as usize]).collect();
        picked.sort_unstable();
        picked.dedup();
        let groups = ["a", "b", "c"]
            .iter()
            .map(|k| GroupPartial {
                keys: vec![Key::from(*k), "x".into()],
                lines: 3,
                units: 4,
                revenue: 500,
                sets: std::array::from_fn(|_| {
                    (0..picked.len() as u32).filter(|_| xorshift(&mut x).is_multiple_of(3)).collect()
                }),
            })
            .collect();
        Partial {
            hour_start: 0,
            ids: [picked.clone(), picked.clone(), picked],
            tables: vec![TablePartial {
                name: "channel_performance".into(),
                layout: Some(Layout::of(spec_named("channel_performance"))),
                groups,
            }],
        }
    }

    /// The distinct hashes of each group of the channel table, over all `parts`, the obvious way.
    fn reference(parts: &[&Partial]) -> BTreeMap<Vec<Key>, [usize; 3]> {
        let mut sets: BTreeMap<Vec<Key>, [BTreeSet<u128>; 3]> = BTreeMap::new();
        for p in parts {
            for g in &p.tables[0].groups {
                let acc = sets.entry(g.keys.clone()).or_default();
                for ((acc, set), ids) in acc.iter_mut().zip(&g.sets).zip(&p.ids) {
                    acc.extend(set.iter().map(|i| ids[i as usize]));
                }
            }
        }
        sets.into_iter().map(|(k, s)| (k, s.map(|s| s.len()))).collect()
    }

    #[test]
    fn union_counts_equal_the_unions() {
        let mut x = 5;
        let mut seen = Seen::new(1 << 20);
        let (mut mixed, mut merged) = (0, 0);
        for n in 0..7 {
            for round in 0..20 {
                // Sparse and dense sets, overlapping more or less; vectors and bitmaps mixed.
                let range = [300, 70_000, 1 << 20][round % 3];
                let sets: Vec<IdSet> = (0..n)
                    .map(|_| {
                        let len = xorshift(&mut x) % [5000, 50][(xorshift(&mut x) % 2) as usize];
                        (0..len).map(|_| (xorshift(&mut x) % range) as u32).collect()
                    })
                    .collect();
                let refs: Vec<&IdSet> = sets.iter().collect();
                let bitmaps = sets.iter().filter(|s| matches!(s, IdSet::Big(_))).count();
                mixed += usize::from(bitmaps > 0 && bitmaps < sets.len());
                merged += usize::from(bitmaps == 0 && (2..=3).contains(&n));
                let want: BTreeSet<u32> = sets.iter().flat_map(|s| s.iter()).collect();
                assert_eq!(union_len(&refs, &mut seen), want.len() as u64, "{n} sets, round {round}");
            }
        }
        assert!(mixed > 30, "{mixed} unions of vectors and bitmaps");
        assert!(merged >= 8, "{merged} unions of two or three vectors alone (merged in order)");
    }

    #[test]
    fn merging_is_exact_associative_and_commutative() {
        let mut x = 99;
        let pool: Vec<u128> =
            (0..500).map(|_| u128::from(xorshift(&mut x)) << 64 | u128::from(xorshift(&mut x))).collect();
        let parts: Vec<Partial> = (0..5).map(|i| random_partial(i + 1, &pool, 50 + 80 * i as usize)).collect();
        let all: Vec<&Partial> = parts.iter().collect();
        let rows = |parts: &[&Partial]| {
            merge(parts, crate::aggregate::tables::DEFAULT_TABLES)
                .into_iter()
                .find(|(s, _)| s.name == "channel_performance")
                .unwrap()
                .1
        };
        let want = reference(&all);
        let got: BTreeMap<Vec<Key>, [usize; 3]> =
            rows(&all).into_iter().map(|r| (r.keys, r.distinct.map(|d| d as usize))).collect();
        assert_eq!(got, want);
        let mut reversed = all.clone();
        reversed.reverse();
        assert_eq!(rows(&reversed), rows(&all), "commutative");
        for r in rows(&all) {
            assert_eq!((r.lines, r.units, r.revenue), (15, 20, 2500), "sums are added");
        }
    }

    #[test]
    fn one_partial_gives_the_rows_the_general_merge_gives() {
        let mut x = 17;
        let pool: Vec<u128> = (0..400).map(|_| u128::from(xorshift(&mut x)) << 3).collect();
        for (seed, groups) in [(1, 1), (2, 40), (3, 300)] {
            let p = random_partial(seed, &pool, groups);
            let tables = crate::aggregate::tables::DEFAULT_TABLES;
            let fast = merge(&[&p], tables);
            let general = merge_all(&[&p], tables);
            assert_eq!(fast.len(), general.len());
            for ((a, rows_a), (b, rows_b)) in fast.iter().zip(&general) {
                assert_eq!(a.name, b.name);
                assert_eq!(rows_a, rows_b, "table {}", a.name);
            }
        }
    }

    /// An hour's dictionary is the same whether its hashes come from the interner's keys (a walk per hour)
    /// or from a vector of every id's hash (a file of many hours), whole or of a subset.
    #[test]
    fn the_interner_and_a_vector_of_hashes_give_the_same_dictionaries() {
        use crate::aggregate::intern::Interner;
        // Keys of every kind (walked), and one counter with a guest's empty id (made by code).
        let mut mixed = Interner::default();
        for i in 0..3000u32 {
            let key = match i % 4 {
                0 => format!("ORD-{:07}", i * 7),
                1 => format!("5b427596-5d5b-43cb-847b-{:012x}", i),
                2 => format!("cus_{:x}q{}", i * 2_654_435_761u32, i % 13),
                _ => format!("c{i}"),
            };
            mixed.intern(key.as_bytes());
        }
        let mut counter = Interner::default();
        counter.intern(b"");
        for i in 0..3000u32 {
            counter.intern(format!("ORD-2026112213-{:07}", (i * 7919) % 3000).as_bytes());
        }
        for (mut interner, by_code) in [(mixed, false), (counter, true)] {
            let all = interner.hashes();
            interner.end_lookups();
            assert_eq!(interner.by_code().is_some(), by_code);
            assert_eq!(IdHashes::slice(&interner), if by_code { CHEAP_SLICE } else { WALK_SLICE });
            // A bitmap and a vector.
            let dense: IdSet = (0..3000u32).filter(|c| c % 5 != 2 && c % 11 != 0).collect();
            let sparse: IdSet = (0..3000u32).step_by(97).collect();
            assert!(matches!(dense, IdSet::Big(_)) && matches!(sparse, IdSet::Small(_)));
            for subset in [&dense, &sparse] {
                let mut ranks = Ranks::default();
                ranks.fill(subset);
                for (wanted, len) in
                    [(Wanted::UpTo(1999), 2000), (Wanted::Ranked(subset, &ranks), subset.len() as usize)]
                {
                    let (mut walked, mut copied) = (vec![0; len], vec![0; len]);
                    IdHashes::hashes_into(&interner, &wanted, 0, &mut walked);
                    all.hashes_into(&wanted, 0, &mut copied);
                    // And in windows, as a state is written: to the end, or shorter than the rest.
                    for (from, n) in [(0, len), (1, len - 1), (len / 3, len / 3), (len / 2, 1), (len - 1, 1)] {
                        let (mut a, mut b) = (vec![0; n], vec![0; n]);
                        IdHashes::hashes_into(&interner, &wanted, from, &mut a);
                        all.hashes_into(&wanted, from, &mut b);
                        assert_eq!((&a[..], &b[..]), (&walked[from..from + n], &walked[from..from + n]), "{from}+{n}");
                    }
                    assert_eq!(walked, copied);
                    let want: Vec<u128> = match &wanted {
                        Wanted::UpTo(max) => all[..=*max as usize].to_vec(),
                        Wanted::Ranked(set, _) => set.iter().map(|c| all[c as usize]).collect(),
                    };
                    assert_eq!(copied, want, "by code: {by_code}");
                }
            }
        }
    }

    #[test]
    fn a_runs_own_day_is_what_merging_its_hours_partials_gives() {
        let tables = crate::aggregate::tables::DEFAULT_TABLES;
        let mut dicts = Dictionaries::default();
        // Products are sku codes: every code a set may hold has a value.
        for i in 0..60 {
            dicts.code_of(Dim::SKU, &format!("sku-{i}"));
        }
        let mut x = 5;
        let day = 20_000 * DAY_MICROS;
        // Two hours of one day and one hour of the next; random groups of every table, ids shared by hours.
        // As in a run, every table's groups of an hour hold the same ids in all (the first group holds all).
        let hours = [day + 3 * HOUR_MICROS, day + 9 * HOUR_MICROS, day + DAY_MICROS];
        let of_hour: Vec<[Vec<u32>; 3]> = hours
            .iter()
            .map(|_| std::array::from_fn(|_| (0..60u32).filter(|_| !xorshift(&mut x).is_multiple_of(3)).collect()))
            .collect();
        let groups: Vec<(&'static TableSpec, Vec<FinalGroup>)> = tables
            .iter()
            .map(|spec| {
                let mut gs = Vec::new();
                for (h, &hour) in hours.iter().enumerate() {
                    for g in 0..6u32 {
                        let mut codes = [0; MAX_KEYS];
                        for (k, dim) in spec.keys.iter().enumerate() {
                            codes[k] = dicts.code_of(*dim, &format!("{}-{}", dim.name, (g + k as u32 * g) % 5));
                        }
                        let set = |x: &mut u64, kind: usize| -> IdSet {
                            let ids = of_hour[h][kind].iter().copied();
                            match (crate::aggregate::counted_kinds(spec)[kind], g) {
                                (false, _) => IdSet::default(),
                                (true, 0) => ids.collect(),
                                (true, _) => ids.filter(|_| xorshift(x).is_multiple_of(2)).collect(),
                            }
                        };
                        gs.push(FinalGroup {
                            hour,
                            codes,
                            lines: 3,
                            units: i64::from(g) + 1,
                            revenue: 1000 + i128::from(g),
                            sets: std::array::from_fn(|kind| set(&mut x, kind)),
                        });
                    }
                }
                gs.sort_by_key(|g| (g.hour, g.codes));
                gs.dedup_by_key(|g| (g.hour, g.codes));
                (spec, gs)
            })
            .collect();
        let ranks = KeyRanks::new(&dicts, groups.iter().map(|(spec, _)| *spec));
        let own = OwnDays::of(&groups, &ranks);
        let hashes = |seed: u128| (0..60u128).map(|i| (i + 1) * 0x9e37_79b9 + seed).collect::<Vec<_>>();
        let mut partials = Vec::new();
        let hours = hours_of(&groups);
        from_groups(groups, &hours, &dicts, &ranks, &hashes(1), &hashes(2), |mut p, unmade| {
            // A state written with its dictionaries made slice by slice is the state of the whole partial.
            let mut streamed = Vec::new();
            p.encode_with(Some(unmade), &mut streamed).unwrap();
            unmade.fill(&mut p);
            assert!(p.ids[0].len() > CHEAP_SLICE && p.ids[1].len() > CHEAP_SLICE, "dictionaries of several slices");
            assert_eq!(streamed, p.encode());
            partials.push(p);
            Ok(())
        })
        .unwrap();
        partials.sort_by_key(|p| p.hour_start);
        let own = own.labelled_by(dicts);
        let of_day: Vec<&Partial> = partials.iter().filter(|p| day_of(p.hour_start) == day).collect();
        assert_eq!(of_day.len(), 2);
        for p in &partials {
            for t in &p.tables {
                assert!(t.groups.windows(2).all(|w| w[0].keys < w[1].keys), "{} in key order", t.name);
            }
        }
        let fast = own.rows(day, tables).expect("a day of two hours of the run");
        let general = merge_all(&of_day, tables);
        for ((a, rows_a), (b, rows_b)) in fast.iter().zip(&general) {
            assert_eq!(a.name, b.name);
            assert!(!rows_a.is_empty(), "table {}", a.name);
            assert_eq!(rows_a, rows_b, "table {}", a.name);
        }
        assert!(own.rows(day + DAY_MICROS, tables).is_none(), "a day of one hour is that hour's partial");
    }

    #[test]
    fn ranks_are_positions_in_the_set() {
        let mut x = 3;
        let mut ranks = Ranks::default();
        for n in [0usize, 1, 63, 64, 65, 1000, 50_000] {
            let set: IdSet = (0..n as u32 * 3).filter(|_| !xorshift(&mut x).is_multiple_of(3)).collect();
            ranks.fill(&set);
            for (i, code) in set.iter().enumerate() {
                assert_eq!(ranks.rank(code), i as u32, "{n}: code {code}");
            }
        }
    }

    #[test]
    fn partials_round_trip_and_reject_corruption() {
        let mut x = 5;
        let pool: Vec<u128> = (0..300).map(|_| u128::from(xorshift(&mut x)) * 3).collect();
        let p = random_partial(3, &pool, 200);
        let bytes = p.encode();
        assert_eq!(Partial::decode(&bytes).unwrap(), p);
        assert_eq!(p.encode(), bytes, "the same content gives the same bytes");
        let (file, digest) = p.encode_to_temp(None).unwrap();
        assert_eq!(std::fs::read(file.path()).unwrap(), bytes);
        assert_eq!(digest, xxhash_rust::xxh3::xxh3_64(&bytes));
        for cut in [0, 7, 8, 20, bytes.len() - 1] {
            assert!(Partial::decode(&bytes[..cut]).is_err(), "truncated at {cut}");
        }
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(Partial::decode(&extra).is_err());
    }

    fn spec_named(name: &str) -> &'static TableSpec {
        crate::settings::Settings::default_ref().table(name).expect("a default table")
    }

    /// A state records each table's layout, and one written under another layout of a table (other keys,
    /// even as many; other kinds counted) does not merge into it: the message says both. A state of
    /// format 1, which has no layout, is still checked by its groups' number of keys.
    #[test]
    fn a_state_of_another_table_layout_is_named_not_merged() {
        let mut x = 5;
        let pool: Vec<u128> = (0..300).map(|_| u128::from(xorshift(&mut x)) * 3).collect();
        let p = random_partial(3, &pool, 200);
        let tables = crate::aggregate::tables::DEFAULT_TABLES;
        assert_eq!(p.layout_mismatch(tables), None);
        let with = |keys: &[&str], counted: [bool; 3]| {
            let mut q = p.clone();
            q.tables[0].layout = Some(Layout { keys: keys.iter().map(|k| k.to_string()).collect(), counted });
            Partial::decode(&q.encode()).unwrap()
        };
        let swapped = with(&["campaign", "channel"], [true, true, false]);
        let why = swapped.layout_mismatch(tables).expect("swapped keys");
        assert_eq!(
            why,
            "its table `channel_performance` was written with keys (campaign, channel), counting orders, customers \
             where the config's has keys (channel, campaign), counting orders, customers"
        );
        // A state without a count the table has cannot give it; one with a count more (products, which the
        // table no longer counts) can: that set is not read.
        let fewer = with(&["channel", "campaign"], [true, false, false]);
        assert!(fewer.layout_mismatch(tables).expect("a count missing").contains("counting orders where"));
        let more = with(&["channel", "campaign"], [true, true, true]);
        assert_eq!(more.tables[0].layout.as_ref().unwrap().counted, [true, true, true], "every bit read back");
        assert_eq!(more.layout_mismatch(tables), None);
        // A group whose keys are not as many as its table's layout says is a corrupt state (merging it would
        // index past its keys).
        let mut short = p.clone();
        short.tables[0].groups[1].keys.pop();
        assert!(Partial::decode(&short.encode()).unwrap_err().to_string().contains("do not match its table's layout"));
        // The counted-kinds byte has three bits; another is corrupt, and a newer format is named as such.
        let bytes = p.encode();
        // The byte after the layout's last key name (the first `campaign` in the bytes: group keys are a, b, c).
        let mask_at = bytes.windows(8).position(|w| w == b"campaign").expect("the layout's keys") + 8;
        assert_eq!(bytes[mask_at], 0b011, "orders and customers");
        let mut high = bytes.clone();
        high[mask_at] = 0b1011;
        assert!(Partial::decode(&high).unwrap_err().to_string().contains("counted kinds"));
        let mut newer = bytes.clone();
        newer[..8].copy_from_slice(b"HIPART03");
        assert!(Partial::decode(&newer).unwrap_err().to_string().contains("written by a newer version"));
        // Format 1: the layout is unknown, so only the number of keys can tell.
        let mut v1 = p.clone();
        v1.tables[0].layout = None;
        assert_eq!(v1.layout_mismatch(tables), None);
        v1.tables[0].groups[0].keys.pop();
        assert!(v1.layout_mismatch(tables).expect("one key fewer").contains("has 1 key(s) a group"));
    }

    /// A state written by the previous format (a run of the bundled fixture, kept in fixtures/states/) is
    /// still read: the same groups and dictionaries as this version writes, without table layouts.
    #[test]
    fn a_state_of_format_1_is_still_read() {
        let bytes = std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("fixtures/states/v1-orders-2026-11-22T13-hour13.partial"),
        )
        .unwrap();
        assert_eq!(&bytes[..8], b"HIPART01");
        let v1 = Partial::decode(&bytes).unwrap();
        assert_eq!(crate::contract::parse::format_rfc3339(v1.hour_start), "2026-11-22T13:00:00Z");
        assert!(v1.tables.iter().all(|t| t.layout.is_none()));
        assert_eq!(v1.tables.len(), crate::aggregate::tables::DEFAULT_TABLES.len());
        assert_eq!(v1.layout_mismatch(crate::aggregate::tables::DEFAULT_TABLES), None);
        // Written again, it needs its layouts: they are the default tables' (the fixture's run used those).
        let mut again = v1.clone();
        assert!(again.encode_to_temp(None).is_err(), "a state is not written without layouts");
        for t in &mut again.tables {
            t.layout = Some(Layout::of(spec_named(&t.name)));
        }
        let v2 = Partial::decode(&again.encode()).unwrap();
        assert_eq!(&again.encode()[..8], b"HIPART02");
        assert_eq!(v2, again);
        assert_eq!((v2.ids, v2.hour_start), (v1.ids, v1.hour_start));
    }

    #[test]
    fn merged_dictionaries_keep_the_largest_and_append_the_rest() {
        let remaps = merge_dicts(&[&[5, 6], &[1, 2, 3, 4], &[4, 7, 1]]);
        assert_eq!(remaps, vec![Some(vec![4, 5]), None, Some(vec![3, 6, 0])]);
    }

    #[test]
    fn days_start_at_utc_midnight() {
        let hour = 1_795_352_400_000_000; // 2026-11-22T13:00Z
        assert_eq!(crate::contract::parse::format_rfc3339(day_of(hour)), "2026-11-22T00:00:00Z");
        assert_eq!(day_of(day_of(hour)), day_of(hour));
    }
}
