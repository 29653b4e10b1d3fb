//! The dimension dictionaries: each dimension's values interned to dense codes, with the caches that make a
//! lookup a few instructions (packed short values, direct-mapped caches, and pair caches for two columns
//! side by side). The rules they apply (trimming, case, `unknown`) are the contract's ([`super::normalise`]);
//! the caches never change an answer, which the tests here check against plain maps.

use std::collections::HashMap;

use super::{normalise, trim, Dim};
use crate::contract::parse;
use crate::settings::{Case, Settings};

/// One dimension's dictionary: raw field bytes (untrimmed) -> canonical code, and canonical code -> normalised
/// value. Two spellings that normalise to the same value (`Email`, `email`, ` email`) share one code.
///
/// Dimension values are short, so a raw value of up to 15 bytes is looked up as one packed `u128` (bytes
/// and length): hashing and comparing it costs a few instructions and no memory access outside the table.
///
/// In front of the maps sits a direct-mapped cache of packed values (one slot per hash, no probing, a few
/// KB that stay in L1): a hit is one multiply, one 16-byte compare and one load, where a hash map probe
/// costs a tag-group match and a mispredicted branch or two. Every row looks up each of its dimensions, so
/// these lookups are on validation's hot path (docs/benchmarks.md).
#[derive(Default, Debug)]
pub(super) struct DimDictionary {
    case: Case,
    cache: DimCache,
    short: HashMap<u128, u32, foldhash::fast::FixedState>,
    long: HashMap<Box<[u8]>, u32, foldhash::fast::FixedState>,
    canonical: HashMap<String, u32, foldhash::fast::FixedState>,
    values: Vec<String>,
}

/// `raw` packed with its length, when it is at most 15 bytes: the bytes in order from the lowest byte, the
/// length in the highest. Built from (overlapping) word loads shifted into place, never through a buffer on
/// the stack: a byte-wise copy followed by a wide load stalls store forwarding, on every lookup
/// (docs/benchmarks.md).
pub(crate) fn pack(raw: &[u8]) -> Option<u128> {
    let n = raw.len();
    let word = |at: usize| u64::from_le_bytes(raw[at..at + 8].try_into().expect("8 bytes"));
    let half = |at: usize| u64::from(u32::from_le_bytes(raw[at..at + 4].try_into().expect("4 bytes")));
    let bytes = match n {
        0 => 0u128,
        1..=3 => {
            u128::from(raw[0]) | (u128::from(raw[n / 2]) << (8 * (n / 2))) | (u128::from(raw[n - 1]) << (8 * (n - 1)))
        }
        4..=7 => u128::from(half(0) | half(n - 4) >> (8 * (8 - n)) << 32),
        8..=15 => u128::from(word(0)) | u128::from(word(n - 8).checked_shr(8 * (16 - n) as u32).unwrap_or(0)) << 64,
        _ => return None,
    };
    Some(bytes | (n as u128) << 120)
}

/// [`pack`] of the field `text[from..to]`, without branching on its length in the common case: 16 bytes
/// that end at the field's end (or start at its start) are loaded from `text` and shifted (or masked) to
/// the field's bytes. Only a field too near both ends of a short text takes [`pack`]'s branches.
#[inline(always)]
fn pack_in(text: &[u8], (from, to): (usize, usize)) -> Option<u128> {
    let n = to - from;
    if n > 15 {
        return None;
    }
    let load = |at: usize| u128::from_le_bytes(text[at..at + 16].try_into().expect("16 bytes"));
    let bytes = if to >= 16 {
        load(to - 16).checked_shr(8 * (16 - n) as u32).unwrap_or(0)
    } else if from + 16 <= text.len() {
        load(from) & (1u128 << (8 * n)).wrapping_sub(1)
    } else {
        return pack(&text[from..to]);
    };
    Some(bytes | (n as u128) << 120)
}

/// A direct-mapped cache from packed raw values to codes (or, for [`PairDictionary`], pairs of codes). Its
/// size follows the number of distinct raw values (four slots each, from 64 up to 4096), so a dimension with
/// few values stays in a few cache lines and one with many still hits mostly. A slot that two values share
/// holds the latest; a miss falls back to the maps, so the cache never changes an answer.
#[derive(Debug)]
struct DimCache<V = u32> {
    keys: Vec<u128>,
    values: Vec<V>,
    shift: u32,
}

/// A packed value never has this (its top byte is a length of at most 15, and a pair's split is below its
/// length): marks an empty slot.
const NO_KEY: u128 = u128::MAX;

/// The slots of a cache for `distinct` values: four each, a power of two from 64 to [`MAX_CACHE_SLOTS`].
fn cache_slots(distinct: usize) -> usize {
    (distinct * 4).next_power_of_two().clamp(64, MAX_CACHE_SLOTS)
}

/// At most 640 KB of cache (keys and codes), for a dimension of tens of thousands of values (the spread
/// shape's campaigns), where 4,096 slots mostly missed into the maps: paired CPU 0.994 on that shape; 2^17
/// slots gained nothing more.
const MAX_CACHE_SLOTS: usize = 1 << 15;

impl<V: Copy + Default> Default for DimCache<V> {
    fn default() -> Self {
        DimCache::with_slots(64)
    }
}

impl<V: Copy + Default> DimCache<V> {
    fn with_slots(slots: usize) -> Self {
        debug_assert!(slots.is_power_of_two());
        DimCache { keys: vec![NO_KEY; slots], values: vec![V::default(); slots], shift: 64 - slots.trailing_zeros() }
    }

    /// The cache again with room for `distinct` values, refilled from them, if it has fewer slots than that.
    fn grow_for(&mut self, distinct: usize, entries: impl Iterator<Item = (u128, V)>) {
        let slots = cache_slots(distinct);
        if slots > self.keys.len() {
            *self = DimCache::with_slots(slots);
            for (p, v) in entries {
                self.put(p, v);
            }
        }
    }

    fn slot(&self, packed: u128) -> usize {
        // A folded multiply mixes every input bit into the top bits: values that differ only in their last
        // bytes (`SKU-00017`, `SKU-00018`) spread over the whole table.
        let product = u128::from(packed as u64 ^ 0x243F_6A88_85A3_08D3)
            * u128::from((packed >> 64) as u64 ^ 0x1319_8A2E_0370_7344);
        let folded = (product as u64) ^ ((product >> 64) as u64);
        (folded.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> self.shift) as usize
    }

    fn get(&self, packed: u128) -> Option<V> {
        let i = self.slot(packed);
        (self.keys[i] == packed).then(|| self.values[i])
    }

    fn put(&mut self, packed: u128, value: V) {
        let i = self.slot(packed);
        self.keys[i] = packed;
        self.values[i] = value;
    }
}

impl DimDictionary {
    fn new(case: Case) -> Self {
        DimDictionary { case, ..DimDictionary::default() }
    }

    #[cfg(test)]
    fn code(&mut self, raw: &[u8]) -> u32 {
        self.code_packed(raw, pack(raw))
    }

    /// The code of `raw`, given `pack(raw)`.
    #[inline(always)]
    fn code_packed(&mut self, raw: &[u8], packed: Option<u128>) -> u32 {
        if let Some(code) = packed.and_then(|p| self.cache.get(p)) {
            return code;
        }
        self.code_slow(raw, packed)
    }

    /// A cache miss: the maps, and a new code for a value not seen before.
    #[inline(never)]
    fn code_slow(&mut self, raw: &[u8], packed: Option<u128>) -> u32 {
        let known = match packed {
            Some(p) => self.short.get(&p),
            None => self.long.get(raw),
        };
        if let Some(&code) = known {
            if let Some(p) = packed {
                self.cache.put(p, code);
            }
            return code;
        }
        // `raw` was validated as UTF-8 with the whole record. It is looked up untrimmed (so that the hot path
        // need not trim it): ` DE` and `DE` are two raw values with one code.
        let value = normalise(self.case, std::str::from_utf8(trim(raw)).unwrap_or_default());
        let next = self.values.len() as u32;
        let code = *self.canonical.entry(value.clone()).or_insert(next);
        if code == next {
            self.values.push(value);
        }
        match packed {
            Some(p) => {
                self.short.insert(p, code);
                self.cache.grow_for(self.short.len(), self.short.iter().map(|(&p, &c)| (p, c)));
                self.cache.put(p, code);
            }
            None => {
                self.long.insert(raw.into(), code);
            }
        }
        code
    }
}

/// Distinct pairs a [`PairDictionary`] takes (its cache then has 4,096 slots). A pair of dimensions with
/// more is looked up value by value for the rest of the run, where a pair cache would mostly miss.
const MAX_PAIRS: usize = 1024;

/// A cache of the codes of two dimension values that lie exactly one byte apart in the text, keyed by the
/// bytes from the start of the first to the end of the second (at most 15, packed as [`pack`] does, with
/// the length) and where the first ends. The values are untrimmed, so the one byte between them is the
/// comma; it is part of the key but of neither value, so the key determines both values: a hit gives
/// the same codes as looking up each value in its own [`DimDictionary`], which is what fills it. Quoted
/// fields (two or more bytes apart) and csv_core's fields (back to back) are looked up value by value.
#[derive(Default, Debug)]
pub(super) struct PairDictionary {
    cache: DimCache<(u32, u32)>,
    pub(super) seen: HashMap<u128, (u32, u32), foldhash::fast::FixedState>,
    /// More than [`MAX_PAIRS`] distinct pairs were seen: this pair is no longer cached.
    pub(super) full: bool,
}

/// The [`PairDictionary`] key of the fields `a` and `b` of `text`, when `b` starts one byte after `a` ends
/// and both fit in 15 bytes with that byte.
#[inline(always)]
fn pair_key(text: &[u8], a: (usize, usize), b: (usize, usize)) -> Option<u128> {
    if b.0 != a.1 + 1 || b.1 - a.0 > 15 {
        return None;
    }
    pack_in(text, (a.0, b.1)).map(|packed| packed | ((a.1 - a.0) as u128) << 124)
}

/// Per-run dimension dictionaries. Codes are stable for the whole run, so chunk results can be merged by
/// code. (Order and customer ids are interned by [`crate::aggregate::intern::IdInterners`], on a stage of their own.)
#[derive(Debug)]
pub struct Dictionaries {
    /// One per dimension of the settings.
    pub(super) dims: Vec<DimDictionary>,
    /// One per pair of the header's dimension lookups.
    pub(super) pairs: Vec<PairDictionary>,
    /// The last event date parsed (rows share a date or two; see [`parse::DateMemo`]).
    pub(super) dates: parse::DateMemo,
    /// How event times and prices are written (RFC 3339 and a decimal point take the paths tuned for them).
    pub(super) time_format: parse::TimeFormat,
    pub(super) decimal: parse::DecimalSeparator,
}

impl Default for Dictionaries {
    /// The dictionaries of the default settings.
    fn default() -> Self {
        Dictionaries::new(Settings::default_ref())
    }
}

impl Dictionaries {
    pub fn new(settings: &Settings) -> Self {
        Dictionaries {
            dims: settings.dimensions.iter().map(|d| DimDictionary::new(d.case)).collect(),
            pairs: Vec::new(),
            dates: parse::DateMemo::default(),
            time_format: settings.input.time_format.parser().unwrap_or_else(|e| {
                panic!("settings with a time format that does not compile ({e}); the config check lets none through")
            }),
            decimal: if settings.input.decimal_separator == b',' {
                parse::DecimalSeparator::Comma
            } else {
                parse::DecimalSeparator::Point
            },
        }
    }

    /// The code of a value of `dim` (tests that make groups by hand).
    #[cfg(test)]
    pub fn code_of(&mut self, dim: Dim, value: &str) -> u32 {
        self.dims[dim.index].code(value.as_bytes())
    }

    /// The number of dimensions.
    pub fn dimensions(&self) -> usize {
        self.dims.len()
    }

    /// The rank of each code of `dim` among its values in byte order (as `String`s sort), by code: groups
    /// are put in the order of their key values by comparing integers.
    pub fn ranks(&self, dim: Dim) -> Vec<u32> {
        let values = &self.dims[dim.index].values;
        let mut codes: Vec<u32> = (0..values.len() as u32).collect();
        codes.sort_unstable_by(|&a, &b| values[a as usize].cmp(&values[b as usize]));
        let mut ranks = vec![0; values.len()];
        for (rank, &code) in codes.iter().enumerate() {
            ranks[code as usize] = rank as u32;
        }
        ranks
    }

    /// Every dimension's values, by code (what labels codes once the run's rows are read).
    pub fn into_values(self) -> Vec<Vec<String>> {
        self.dims.into_iter().map(|d| d.values).collect()
    }

    /// The normalised value of a dimension code.
    pub fn value(&self, dim: Dim, code: u32) -> &str {
        &self.dims[dim.index].values[code as usize]
    }

    /// The code of the field `text[span]` (untrimmed) of dimension `dim`.
    #[inline(always)]
    pub(super) fn code(&mut self, dim: usize, text: &[u8], (from, to): (usize, usize)) -> u32 {
        self.dims[dim].code_packed(&text[from..to], pack_in(text, (from, to)))
    }

    /// The codes of the fields `a` and `b` of text for the dimensions `dims` of lookup `pair`: from the
    /// pair's cache when the two are close enough for a [`pair_key`] (and the pair is still cached), else
    /// value by value.
    #[inline(always)]
    pub(super) fn pair_codes(
        &mut self,
        pair: usize,
        dims: (usize, usize),
        text: &[u8],
        a: (usize, usize),
        b: (usize, usize),
    ) -> (u32, u32) {
        // A pair that is no longer cached does not build its key.
        let key = if self.pairs[pair].full { None } else { pair_key(text, a, b) };
        match key {
            Some(key) => match self.pairs[pair].cache.get(key) {
                Some(codes) => codes,
                None => self.pair_miss(pair, dims, text, a, b, key),
            },
            None => (self.code(dims.0, text, a), self.code(dims.1, text, b)),
        }
    }

    /// A pair cache miss: a pair seen before (its slot was taken by another), or a new one, looked up value
    /// by value.
    #[inline(never)]
    fn pair_miss(
        &mut self,
        pair: usize,
        dims: (usize, usize),
        text: &[u8],
        a: (usize, usize),
        b: (usize, usize),
        key: u128,
    ) -> (u32, u32) {
        if let Some(&codes) = self.pairs[pair].seen.get(&key) {
            self.pairs[pair].cache.put(key, codes);
            return codes;
        }
        let codes = (self.code(dims.0, text, a), self.code(dims.1, text, b));
        let cached = &mut self.pairs[pair];
        if cached.seen.len() >= MAX_PAIRS {
            *cached = PairDictionary { full: true, ..PairDictionary::default() };
            return codes;
        }
        cached.seen.insert(key, codes);
        cached.cache.grow_for(cached.seen.len(), cached.seen.iter().map(|(&k, &v)| (k, v)));
        cached.cache.put(key, codes);
        codes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_order_codes_as_their_values_sort() {
        let mut dicts = Dictionaries::default();
        let values = ["b", "a", "ab", "B", "", "zz", "a b", "é", "10", "9"];
        for v in values {
            dicts.code_of(Dim::CAMPAIGN, v);
        }
        let ranks = dicts.ranks(Dim::CAMPAIGN);
        let mut by_rank: Vec<(u32, &str)> =
            (0..ranks.len() as u32).map(|c| (ranks[c as usize], dicts.value(Dim::CAMPAIGN, c))).collect();
        by_rank.sort();
        let ranked: Vec<u32> = by_rank.iter().map(|&(r, _)| r).collect();
        assert_eq!(ranked, (0..ranks.len() as u32).collect::<Vec<_>>(), "every rank once");
        assert!(by_rank.windows(2).all(|w| w[0].1 < w[1].1), "values in rank order ascend: {by_rank:?}");
    }

    #[test]
    fn packed_keys_are_the_bytes_and_the_length() {
        // The reference: bytes in order from the lowest byte, the length in the top byte.
        let naive = |raw: &[u8]| {
            let mut b = [0u8; 16];
            b[..raw.len()].copy_from_slice(raw);
            b[15] = raw.len() as u8;
            u128::from_le_bytes(b)
        };
        let text = b"abcdefghijklmnopqrstuvwxyz\x00\xff";
        for start in 0..text.len() {
            for end in start..=text.len().min(start + 15) {
                let raw = &text[start..end];
                assert_eq!(pack(raw), Some(naive(raw)), "{raw:?}");
            }
        }
        assert_eq!(pack(b"\0\0"), Some(naive(b"\0\0")));
        // Packed in place: a field anywhere in texts of every length, near both ends or neither.
        for len in 0..=40 {
            let text: Vec<u8> = (0..len).map(|i| b'A' + (i * 7 % 26) as u8).collect();
            for from in 0..=len {
                for to in from..=len {
                    assert_eq!(pack_in(&text, (from, to)), pack(&text[from..to]), "{len} bytes, {from}..{to}");
                }
            }
        }
        assert_ne!(pack(b"\0"), pack(b"\0\0"), "trailing zero bytes differ by length");
        assert_eq!(pack(&[b'x'; 16]), None);
    }

    #[test]
    fn the_dimension_cache_never_changes_a_code() {
        // More distinct values than the largest cache has slots, so slots are shared and overwritten,
        // looked up in a scrambled order with repeats, against a plain map of first appearances.
        let mut d = DimDictionary::new(Case::Keep);
        let mut reference: std::collections::HashMap<String, u32> = std::collections::HashMap::new();
        let mut x = 12345u64;
        for _ in 0..200_000 {
            crate::testing::xorshift(&mut x);
            let raw = format!("SKU-{:06}", (x % 60_000) * (x % 3 + 1));
            let next = reference.len() as u32;
            let want = *reference.entry(raw.clone()).or_insert(next);
            assert_eq!(d.code(raw.as_bytes()), want, "{raw}");
        }
        assert_eq!(d.cache.keys.len(), MAX_CACHE_SLOTS, "the cache stops growing at its most slots");
        assert!(reference.len() > MAX_CACHE_SLOTS);
        let mut few = DimDictionary::default();
        for raw in [&b"web"[..], b"app", b"", b"web", b"App"] {
            few.code(raw);
        }
        assert_eq!(few.cache.keys.len(), 64);
        assert_eq!((few.code(b"app"), few.code(b"APP")), (1, 1));
    }

    #[test]
    fn dimension_values_short_and_long_share_codes_by_normalised_value() {
        let mut d = DimDictionary::default();
        let long = b"Black-Friday-Weekend-2026"; // longer than a packed key
        let a = d.code(long);
        assert_eq!(d.code(b"black-friday-weekend-2026"), a);
        assert_eq!(d.code(long), a, "a repeat hits the long map");
        let short = d.code(b"Winback");
        assert_ne!(short, a);
        assert_eq!(d.code(b"winback"), short);
        // 15 bytes is packed, 16 is not; values differing only after byte 15 or in length stay apart.
        let fifteen = d.code(b"abcdefghijklmno");
        let sixteen = d.code(b"abcdefghijklmnop");
        let shorter = d.code(b"abcdefghijklmn");
        assert_eq!([fifteen, sixteen, shorter].iter().collect::<std::collections::HashSet<_>>().len(), 3);
        assert_eq!(d.code(b""), d.code(b"unknown"), "empty is 'unknown'");
        assert_eq!(d.values.len(), 6);
    }
}
