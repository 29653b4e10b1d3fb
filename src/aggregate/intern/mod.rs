//! Exact, compact interning of order and customer ids to dense codes, and the pipeline stage that does it.
//!
//! Distinct counts are kept as bitmaps over dense codes ([`crate::aggregate`]), so every id is mapped to
//! the code of its first appearance. That map is the largest state of a run, so it is built for memory
//! (front-coded keys) and for cache misses: short ids sit whole in their table slot, the hash tag of a long
//! one sits next to its code, and a chunk's ids are looked up in batches whose table slots and candidate
//! keys are prefetched first, so the memory latency of many lookups overlaps instead of adding up.

use std::hash::BuildHasher;

use crate::contract::{Chunk, GUEST};

mod families;
mod uuid;

use families::Families;
use uuid::{Uuids, Values};

/// Interns byte strings to dense `u32` codes, exactly, in little memory: about 10–20 bytes per distinct key
/// for typical ids (plus the table), instead of the 60–80 of a `HashMap<Vec<u8>, u32>`.
///
/// Keys are front-coded in blocks of [`BLOCK`]: the first key of a block is stored whole, each following
/// one as (length of the prefix shared with its predecessor, the rest). Ids such as `ORD-2026112213-0000017`
/// thus cost a few bytes. Blocks live in pages that are never reallocated, so growth has no 2x slack.
/// A table of codes, keyed by a 32-bit tag per code, finds a key; candidate keys are decoded and compared
/// in full, so the interner is exact. Codes are assigned in order of first appearance.
///
/// Short keys (1 to 8 bytes without a NUL byte, such as `C0070067`) skip all that: they are packed into a
/// `u64` that sits whole next to its code in a table of their own, so a lookup is one hash, one cache line
/// and integer compares, with no block to decode. They take 16 bytes per slot and nothing in the pages.
///
/// Keys that end in a number (`ORD-2026112213-0000017`, `C0700680`) go first to [`families`]: where a
/// prefix's numbers are dense, as a backend's counters make them, their codes sit in an array indexed by
/// the number (4 bytes per id, no hashing, consecutive ids in one cache line).
///
/// Keys that are canonical lowercase UUIDs go to [`uuid`]: packed into 16 bytes kept by code, found
/// through a table of 4-byte slots.
///
/// No hash is kept per id: the 128-bit hashes the hour states keep are made from the keys after
/// aggregation, a slice of one hour's dictionary at a time ([`Interner::hashes_into`]).
pub struct Interner {
    /// Keys that end in a number, by prefix and digit count.
    families: Families,
    /// Open-addressing tables of (32-bit hash tag, index of a long key), sharded by tag so that each shard
    /// grows on its own: no moment holds two copies of a big table. The tag sits next to the index, so a
    /// probe compares tags without leaving the table's cache line, and growing never decodes a key.
    shards: Vec<Shard>,
    /// Tables of (packed short key, code), sharded the same way.
    short: Vec<ShortShard>,
    /// Codes assigned, short and long keys together.
    len: usize,
    /// Long keys stored; the front-coded pages and `shards` number them 0, 1, ... ...
    long_len: usize,
    /// ...and this gives the code of each, unless no short key was ever added (then index = code, and
    /// this stays empty).
    long_codes: Vec<u32>,
    pages: Vec<Vec<u8>>,
    /// (page, offset) of each block's first entry.
    blocks: Vec<(u32, u32)>,
    /// The last key appended (the front-coding base of the next entry).
    last_added: Vec<u8>,
    scratch: Vec<u8>,
    hasher: foldhash::fast::FixedState,
    /// The packed value of every UUID code, by code (nothing while no UUID came). What the mergeable hour
    /// states keep of an id, its 128-bit hash ([`id_hash`]), is made from the keys at the end
    /// ([`Interner::hashes_into`]).
    values: Values,
    /// Codes of UUID keys, by their packed values in `values`.
    uuids: Uuids,
    /// Whether the lookup tables were freed ([`Interner::end_lookups`]): no key may be interned after.
    ended: bool,
    /// The keys by code, when every key is of one numbered family ([`Interner::end_lookups`]).
    by_code: Option<families::ByCode>,
}

/// The 128-bit hash an id is kept as in the mergeable states: XXH3-128 of its bytes (seed 0). Stable across
/// versions and machines; two distinct ids collide with probability about n^2 / 2^129.
pub fn id_hash(key: &[u8]) -> u128 {
    xxhash_rust::xxh3::xxh3_128(key)
}

/// Keys per front-coded block.
pub const BLOCK: usize = 16;
const PAGE: usize = 1 << 20;
const SHARD_BITS: u32 = 6;

impl Default for Interner {
    fn default() -> Self {
        Interner {
            families: Families::default(),
            shards: (0..1 << SHARD_BITS).map(|_| Shard::default()).collect(),
            short: (0..1 << SHARD_BITS).map(|_| ShortShard::default()).collect(),
            len: 0,
            long_len: 0,
            long_codes: Vec::new(),
            pages: Vec::new(),
            blocks: Vec::new(),
            last_added: Vec::new(),
            scratch: Vec::new(),
            hasher: foldhash::fast::FixedState::default(),
            values: Values::default(),
            uuids: Uuids::default(),
            ended: false,
            by_code: None,
        }
    }
}

impl std::fmt::Debug for Interner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Interner").field("len", &self.len()).field("heap_bytes", &self.heap_bytes()).finish()
    }
}

fn push_varint(out: &mut Vec<u8>, mut v: usize) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn read_varint(bytes: &[u8], pos: &mut usize) -> usize {
    let mut v = 0usize;
    let mut shift = 0;
    loop {
        let b = bytes[*pos];
        *pos += 1;
        v |= usize::from(b & 0x7f) << shift;
        if b < 0x80 {
            return v;
        }
        shift += 7;
    }
}

/// The next free code of an interner holding `len` codes.
fn next_code(len: &mut usize) -> u32 {
    let code = u32::try_from(*len).ok().filter(|&c| c < u32::MAX).expect("fewer than 2^32 - 1 distinct ids");
    *len += 1;
    code
}

/// Where long keys' indexes and codes part ways: before a short or numbered key's first code (until then
/// `long_codes` stays empty and a long key's index is its code).
fn before_other_code(long_codes: &mut Vec<u32>, long_len: usize) {
    if long_codes.is_empty() && long_len > 0 {
        *long_codes = (0..long_len as u32).collect();
    }
}

/// Spreads a 32-bit tag over 64 bits for the table (which uses both high and low bits).
fn spread(tag: u32) -> u64 {
    u64::from(tag).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

fn shard_of(tag: u32) -> usize {
    (tag >> (32 - SHARD_BITS)) as usize
}

/// An entry of an open-addressing [`Table`].
trait Slot: Copy + Default {
    /// Whether the slot is free (the default value is).
    fn is_free(&self) -> bool;
    /// 32 bits of the entry's hash, which place it in the table.
    fn position(&self) -> u32;
}

/// One open-addressing table with linear probing, shared by long and short keys. It is at most 4/5 full
/// and grows by half (not doubling), so it is on average about 2/3 full and takes less memory than a
/// power-of-two table (docs/benchmarks.md).
struct Table<E> {
    slots: Vec<E>,
    len: usize,
}

impl<E> Default for Table<E> {
    fn default() -> Self {
        Table { slots: Vec::new(), len: 0 }
    }
}

impl<E: Slot> Table<E> {
    /// The slot where the probe for an entry at `position` starts (the table is not empty).
    fn home(&self, position: u32) -> usize {
        // Maps the hash onto 0..capacity by a multiply-shift (the capacity is not a power of two).
        ((u64::from(position) * self.slots.len() as u64) >> 32) as usize
    }

    fn home_or_none(&self, position: u32) -> Option<usize> {
        (!self.slots.is_empty()).then(|| self.home(position))
    }

    /// The slot after `i`, wrapping around.
    fn next(&self, i: usize) -> usize {
        if i + 1 == self.slots.len() {
            0
        } else {
            i + 1
        }
    }

    /// Makes room for one more entry, growing by half (and re-placing entries by their hashes) when needed.
    fn reserve_one(&mut self) {
        if (self.len + 1) * 5 <= self.slots.len() * 4 {
            return;
        }
        let capacity = (self.slots.len() + self.slots.len() / 2).max(16);
        let old = std::mem::replace(&mut self.slots, vec![E::default(); capacity]);
        for entry in old.into_iter().filter(|e| !e.is_free()) {
            let mut i = self.home(entry.position());
            while !self.slots[i].is_free() {
                i = self.next(i);
            }
            self.slots[i] = entry;
        }
    }
}

/// Where a long key's tag places it in its table.
fn long_position(tag: u32) -> u32 {
    (spread(tag) >> 32) as u32
}

/// A long-key slot holds `tag << 32 | (index + 1)`; 0 is free.
impl Slot for u64 {
    fn is_free(&self) -> bool {
        *self == 0
    }

    fn position(&self) -> u32 {
        long_position((*self >> 32) as u32)
    }
}

/// The table of long keys (tags and indexes).
type Shard = Table<u64>;

impl Shard {
    /// The code of the first slot carrying `tag` among the first few of its probe (a prefetch hint). Not only
    /// the home slot: with linear probing up to 4/5 full, a third or more of the keys sit further on, and
    /// the next slots are mostly in the same, already prefetched, cache line.
    fn first_candidate(&self, tag: u32) -> Option<u32> {
        let mut i = self.home_or_none(long_position(tag))?;
        for _ in 0..8 {
            let entry = self.slots[i];
            if entry == 0 {
                return None;
            }
            if (entry >> 32) as u32 == tag {
                return Some(entry as u32 - 1);
            }
            i = self.next(i);
        }
        None
    }
}

/// How a key is looked up: a numbered key by its family and number ([`families`]), a short key by its
/// packed bytes ([`pack_short`]), a long one by its hash tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    /// `family` is [`NEW_FAMILY`] when the key's family did not exist yet (it is added, if there is room).
    Numbered {
        family: u32,
        number: u64,
    },
    Short(u64),
    Long(u32),
    /// A canonical lowercase UUID, packed ([`uuid::pack`]).
    Uuid(u128),
}

/// The key a lookup will most likely compare with (a prefetch hint): a long key's index, or a UUID's code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Candidate {
    Long(u32),
    Uuid(u32),
}

/// The family of a [`Probe::Numbered`] key not seen before.
pub const NEW_FAMILY: u32 = u32::MAX;

/// A key of 1 to 8 bytes without a NUL byte, packed into a `u64` (first byte lowest, zero bytes above the
/// key), which is then never 0 and determines the key. Built from overlapping loads, like the dimension
/// values in [`crate::contract`].
fn pack_short(key: &[u8]) -> Option<u64> {
    let n = key.len();
    let half = |at: usize| u64::from(u32::from_le_bytes(key[at..at + 4].try_into().expect("4 bytes")));
    let packed = match n {
        1..=3 => u64::from(key[0]) | u64::from(key[n / 2]) << (8 * (n / 2)) | u64::from(key[n - 1]) << (8 * (n - 1)),
        4..=8 => half(0) | half(n - 4) << (8 * (n - 4)),
        _ => return None,
    };
    // A zero byte among the key's: the classic test flags the lowest zero byte exactly (a borrow only
    // flags bytes above it), and the padding above the key is masked off.
    let zero = packed.wrapping_sub(0x0101_0101_0101_0101) & !packed & 0x8080_8080_8080_8080;
    let mask = u64::MAX >> (64 - 8 * n);
    (zero & mask == 0).then_some(packed)
}

/// The key a packed short key stands for.
fn unpack_short(packed: u64) -> Vec<u8> {
    packed.to_le_bytes().into_iter().take_while(|&b| b != 0).collect()
}

/// The length of a packed short key (its bytes up to the first NUL).
fn short_len(packed: u64) -> usize {
    (8 - packed.leading_zeros() / 8) as usize
}

/// Mixes a packed short key (a folded multiply: every input bit reaches the high bits).
fn short_hash(packed: u64) -> u64 {
    let product = u128::from(packed ^ 0x243F_6A88_85A3_08D3) * 0x9E37_79B9_7F4A_7C15u128;
    (product as u64) ^ ((product >> 64) as u64)
}

/// One slot of a short-key table: the packed key (0: empty) and its code.
#[derive(Clone, Copy, Default)]
struct ShortEntry {
    key: u64,
    code: u32,
}

impl Slot for ShortEntry {
    fn is_free(&self) -> bool {
        self.key == 0
    }

    fn position(&self) -> u32 {
        short_hash(self.key) as u32
    }
}

/// The table of short keys (packed keys and codes).
type ShortShard = Table<ShortEntry>;

impl Table<ShortEntry> {
    /// Makes room for one more entry, then looks up `key` (never 0; `hash` places it): its code, or the
    /// free slot where it goes ([`Table::put`]).
    #[inline(always)]
    fn find(&mut self, key: u64, hash: u64) -> Result<u32, usize> {
        self.reserve_one();
        let mut i = self.home(hash as u32);
        while !self.slots[i].is_free() {
            if self.slots[i].key == key {
                return Ok(self.slots[i].code);
            }
            i = self.next(i);
        }
        Err(i)
    }

    /// Fills the free slot `i` that [`Table::find`] returned.
    fn put(&mut self, i: usize, key: u64, code: u32) {
        self.slots[i] = ShortEntry { key, code };
        self.len += 1;
    }
}

fn short_shard_of(hash: u64) -> usize {
    (hash >> (64 - SHARD_BITS)) as usize
}

/// Asks the CPU to start loading the cache line of `value` (a hint: it never faults, and does nothing
/// on other architectures).
#[inline(always)]
pub(crate) fn prefetch<T>(value: &T) {
    prefetch_address(value as *const T as *const u8)
}

/// Starts loading the cache line of `address` (only a hint: it need not be valid).
#[inline(always)]
pub(crate) fn prefetch_address(address: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint: it reads nothing and never faults, whatever the address.
    #[allow(unused_unsafe)]
    unsafe {
        std::arch::x86_64::_mm_prefetch(address as *const i8, std::arch::x86_64::_MM_HINT_T0)
    }
    #[cfg(target_arch = "aarch64")]
    // SAFETY: `prfm` is only a hint; it reads nothing architecturally visible and cannot fault.
    unsafe {
        std::arch::asm!("prfm pldl1keep, [{0}]", in(reg) address, options(nostack, readonly, preserves_flags))
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    let _ = address;
}

/// Decodes the key of `code` into `out`.
fn decode_into(pages: &[Vec<u8>], blocks: &[(u32, u32)], code: u32, out: &mut Vec<u8>) {
    let (page, offset) = blocks[code as usize / BLOCK];
    let bytes = &pages[page as usize];
    let mut pos = offset as usize;
    out.clear();
    for i in 0..=(code as usize % BLOCK) {
        let shared = if i == 0 { 0 } else { read_varint(bytes, &mut pos) };
        let rest = read_varint(bytes, &mut pos);
        out.truncate(shared);
        out.extend_from_slice(&bytes[pos..pos + rest]);
        pos += rest;
    }
}

/// Calls `f` with the index and bytes of each of the first `len` keys of the front-coded pages, in order
/// (each block decoded once).
fn for_each_long_key(pages: &[Vec<u8>], blocks: &[(u32, u32)], len: usize, mut f: impl FnMut(usize, &[u8])) {
    let mut key = Vec::new();
    for (b, &(page, offset)) in blocks.iter().enumerate() {
        let bytes = &pages[page as usize];
        let mut pos = offset as usize;
        for index in b * BLOCK..len.min((b + 1) * BLOCK) {
            let shared = if index % BLOCK == 0 { 0 } else { read_varint(bytes, &mut pos) };
            let rest = read_varint(bytes, &mut pos);
            key.truncate(shared);
            key.extend_from_slice(&bytes[pos..pos + rest]);
            pos += rest;
            f(index, &key);
        }
    }
}

/// Appends `key` (code `code`) to the front-coded pages.
fn append(pages: &mut Vec<Vec<u8>>, blocks: &mut Vec<(u32, u32)>, last_added: &mut Vec<u8>, code: u32, key: &[u8]) {
    if (code as usize).is_multiple_of(BLOCK) {
        if pages.last().is_none_or(|p| p.len() >= PAGE) {
            pages.push(Vec::with_capacity(PAGE + 64 * 1024));
        }
        let page = pages.len() - 1;
        blocks.push((page as u32, pages[page].len() as u32));
        let out = &mut pages[page];
        push_varint(out, key.len());
        out.extend_from_slice(key);
    } else {
        let shared = key.iter().zip(last_added.iter()).take_while(|(a, b)| a == b).count();
        let out = pages.last_mut().expect("a block is open");
        push_varint(out, shared);
        push_varint(out, key.len() - shared);
        out.extend_from_slice(&key[shared..]);
    }
    last_added.clear();
    last_added.extend_from_slice(key);
}

impl Interner {
    /// The key of a code (a scan of the short-key tables: for tests and debugging, not for the hot path).
    pub fn key(&self, code: u32) -> Vec<u8> {
        if let Some(keys) = &self.by_code {
            return keys.key(code);
        }
        if let Some(key) = self.values.uuid_key(code) {
            return key;
        }
        if let Some(key) = self.families.key(code) {
            return key;
        }
        let short = self.short.iter().flat_map(|s| &s.slots).find(|e| !e.is_free() && e.code == code);
        if let Some(entry) = short {
            return unpack_short(entry.key);
        }
        let index = if self.long_codes.is_empty() {
            code
        } else {
            self.long_codes.iter().position(|&c| c == code).expect("an assigned code") as u32
        };
        let mut out = Vec::new();
        decode_into(&self.pages, &self.blocks, index, &mut out);
        out
    }

    /// The code of `key`, assigning the next free code to a new key.
    pub fn intern(&mut self, key: &[u8]) -> u32 {
        let probe = self.probe(key);
        self.intern_probed(key, probe)
    }

    /// How `key` is looked up: packed when it is short, else by its 32-bit hash tag (for the batched lookup:
    /// [`Interner::prefetch_slot`], then [`Interner::intern_probed`]).
    pub fn probe(&self, key: &[u8]) -> Probe {
        if let Some(numbered) = families::split(key) {
            match self.families.find(&numbered) {
                Some(family) => return Probe::Numbered { family, number: numbered.number },
                None if self.families.has_room() => {
                    return Probe::Numbered { family: NEW_FAMILY, number: numbered.number }
                }
                None => {}
            }
        }
        self.general_probe(key)
    }

    /// The probe of a key that is not numbered, or whose family cannot be added.
    fn general_probe(&self, key: &[u8]) -> Probe {
        match pack_short(key) {
            Some(packed) => Probe::Short(packed),
            None => match uuid::pack(key) {
                Some(packed) => Probe::Uuid(packed),
                None => Probe::Long(self.hasher.hash_one(key) as u32),
            },
        }
    }

    /// Starts loading the table slot where a lookup begins: the first of the levels of a batched lookup.
    /// Each level reads what the previous one prefetched, so a batch runs [`Interner::prefetch_slot`] for
    /// all its keys, then (long and UUID keys only) [`Interner::candidate`] and [`Interner::prefetch_block`],
    /// then [`Interner::prefetch_key`]. A short key has all it needs in that first slot.
    pub fn prefetch_slot(&self, probe: Probe) {
        match probe {
            Probe::Numbered { family: NEW_FAMILY, .. } => {}
            Probe::Numbered { family, number } => self.families.prefetch(family, number),
            Probe::Short(packed) => {
                let hash = short_hash(packed);
                let shard = &self.short[short_shard_of(hash)];
                if let Some(home) = shard.home_or_none(hash as u32) {
                    prefetch(&shard.slots[home]);
                }
            }
            Probe::Long(tag) => {
                let shard = &self.shards[shard_of(tag)];
                if let Some(home) = shard.home_or_none(long_position(tag)) {
                    prefetch(&shard.slots[home]);
                }
            }
            Probe::Uuid(packed) => self.uuids.prefetch_slot(uuid::hash(packed)),
        }
    }

    /// The key a lookup will most likely compare its key with (a prefetch hint, from the slot
    /// [`Interner::prefetch_slot`] loaded); `None` for short and numbered keys.
    pub fn candidate(&self, probe: Probe) -> Option<Candidate> {
        match probe {
            Probe::Numbered { .. } | Probe::Short(_) => None,
            Probe::Long(tag) => self.shards[shard_of(tag)].first_candidate(tag).map(Candidate::Long),
            Probe::Uuid(packed) => self.uuids.candidate(uuid::hash(packed)).map(Candidate::Uuid),
        }
    }

    /// Starts loading the block index entry of a candidate long key (and where its code is kept), or the
    /// packed value of a candidate UUID.
    pub fn prefetch_block(&self, candidate: Candidate) {
        let index = match candidate {
            Candidate::Long(index) => index,
            Candidate::Uuid(code) => return self.values.prefetch(code),
        };
        if let Some(block) = self.blocks.get(index as usize / BLOCK) {
            prefetch(block);
        }
        if let Some(code) = self.long_codes.get(index as usize) {
            prefetch(code);
        }
    }

    /// Starts loading the first bytes of a candidate long key's block (its index entry is loaded by now).
    pub fn prefetch_key(&self, candidate: Candidate) {
        let Candidate::Long(index) = candidate else { return };
        let Some(&(page, offset)) = self.blocks.get(index as usize / BLOCK) else { return };
        if let Some(byte) = self.pages.get(page as usize).and_then(|p| p.get(offset as usize)) {
            prefetch(byte);
        }
    }

    /// The next free code.
    fn next_code(&mut self) -> u32 {
        next_code(&mut self.len)
    }

    /// [`Interner::intern`] with the key's probe already computed.
    pub fn intern_probed(&mut self, key: &[u8], probe: Probe) -> u32 {
        assert!(!self.ended, "an interner takes no key after its lookups are ended");
        let before = self.len;
        let code = self.lookup_probed(key, probe);
        // (A new UUID has stored its packed value already.)
        if self.len > before && self.values.len() < self.len {
            self.values.push_other();
        }
        code
    }

    /// Sets `out[at(code)]` to the 128-bit hash of the key ([`id_hash`]) of each code for which `at` gives a
    /// place: a slice of one hour's dictionary at a time. The hashes are made from the keys, not kept while
    /// interning: a vector of them all would be the largest state of a run (16 bytes per id, and its
    /// doubling). Every key is visited, and only the wanted ones are hashed.
    pub fn hashes_into(&self, at: impl Fn(u32) -> Option<usize>, out: &mut [u128]) {
        if let Some(keys) = &self.by_code {
            return keys.hashes_where(at, out);
        }
        self.families.hashes_into(&at, out);
        self.for_each_key_of_no_family(
            |code| at(code).is_some(),
            |code, key| {
                if let Some(p) = at(code) {
                    out[p] = id_hash(key);
                }
            },
        );
    }

    /// Calls `f` with the code and key of every key of no numbered family (UUIDs, short and long keys), or,
    /// for UUIDs, of those `want` wants (a UUID's text is only made when wanted).
    #[inline(always)]
    fn for_each_key_of_no_family(&self, want: impl Fn(u32) -> bool, mut f: impl FnMut(u32, &[u8])) {
        self.values.for_each_uuid(want, &mut f);
        for entry in self.short.iter().flat_map(|s| &s.slots).filter(|e| !e.is_free()) {
            f(entry.code, &entry.key.to_le_bytes()[..short_len(entry.key)]);
        }
        let long_codes = &self.long_codes;
        for_each_long_key(&self.pages, &self.blocks, self.long_len, |index, key| {
            f(long_codes.get(index).map_or(index as u32, |&c| c), key);
        });
    }

    /// The 128-bit hash of every code's key ([`id_hash`]), indexed by code ([`Interner::hashes_into`]).
    pub fn hashes(&self) -> Vec<u128> {
        let mut hashes = vec![0u128; self.len];
        self.hashes_into(|code| Some(code as usize), &mut hashes);
        hashes
    }

    /// Ends the interning: the lookup tables that only find keys are freed, and what gives each code's key
    /// back ([`Interner::hashes_into`]) is kept. Interning a key after this panics.
    pub fn end_lookups(&mut self) {
        self.shards = Vec::new();
        self.uuids = Uuids::default();
        self.ended = true;
        // Up to this many keys of no family (a guest's empty customer id) are kept whole beside the index.
        const OTHERS: usize = 16;
        self.by_code = self.families.by_code(self.len, OTHERS, || {
            let mut keys = Vec::new();
            self.for_each_key_of_no_family(|_| true, |code, key| keys.push((code, key.to_vec())));
            keys
        });
        if self.by_code.is_some() {
            // Its pages (numbers to codes) hold what the index by code does, the other way round.
            self.families = Families::default();
        }
    }

    /// The keys by code, when every key is of one numbered family: an hour's dictionary is then made in
    /// code order, from the codes it lists, instead of by a walk over every key ([`Interner::hashes_into`]).
    pub fn by_code(&self) -> Option<&families::ByCode> {
        self.by_code.as_ref()
    }

    fn lookup_probed(&mut self, key: &[u8], probe: Probe) -> u32 {
        match probe {
            Probe::Numbered { family, number } => {
                let family = match family {
                    NEW_FAMILY => families::split(key).and_then(|numbered| self.families.find_or_add(&numbered)),
                    known => Some(known),
                };
                match family {
                    Some(family) => self.intern_numbered(family, number),
                    // Its family did not fit (another key of this batch took the last room): as before families.
                    None => {
                        let probe = self.general_probe(key);
                        self.lookup_probed(key, probe)
                    }
                }
            }
            Probe::Short(packed) => self.intern_short(packed),
            Probe::Long(tag) => self.intern_long(key, tag),
            Probe::Uuid(packed) => self.intern_uuid(packed),
        }
    }

    fn intern_uuid(&mut self, packed: u128) -> u32 {
        let hash = uuid::hash(packed);
        let i = match self.uuids.find(packed, hash, &self.values) {
            Ok(code) => return code,
            Err(i) => i,
        };
        before_other_code(&mut self.long_codes, self.long_len);
        let code = self.next_code();
        self.uuids.put(hash, i, code);
        self.values.push_uuid(packed);
        code
    }

    fn intern_numbered(&mut self, family: u32, number: u64) -> u32 {
        let Interner { families, len, long_codes, long_len, .. } = self;
        families.intern(family, number, &mut || {
            before_other_code(long_codes, *long_len);
            next_code(len)
        })
    }

    fn intern_short(&mut self, packed: u64) -> u32 {
        let hash = short_hash(packed);
        let shard = short_shard_of(hash);
        let i = match self.short[shard].find(packed, hash) {
            Ok(code) => return code,
            Err(i) => i,
        };
        before_other_code(&mut self.long_codes, self.long_len);
        let code = self.next_code();
        self.short[shard].put(i, packed, code);
        code
    }

    fn intern_long(&mut self, key: &[u8], tag: u32) -> u32 {
        let Interner { shards, pages, blocks, scratch, last_added, long_len, long_codes, .. } = self;
        let shard = &mut shards[shard_of(tag)];
        shard.reserve_one();
        let mut i = shard.home(long_position(tag));
        loop {
            let entry = shard.slots[i];
            if entry.is_free() {
                break;
            }
            if (entry >> 32) as u32 == tag {
                let candidate = entry as u32 - 1;
                decode_into(pages, blocks, candidate, scratch);
                if scratch.as_slice() == key {
                    return long_codes.get(candidate as usize).copied().unwrap_or(candidate);
                }
            }
            i = shard.next(i);
        }
        let index = *long_len as u32;
        append(pages, blocks, last_added, index, key);
        *long_len += 1;
        shard.slots[i] = u64::from(tag) << 32 | u64::from(index + 1);
        shard.len += 1;
        let identity = self.long_codes.is_empty() && self.len == index as usize;
        let code = self.next_code();
        if !identity {
            self.long_codes.push(code);
        }
        code
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Families of numbered keys whose codes sit in dense pages.
    pub fn dense_families(&self) -> usize {
        self.families.dense()
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Approximate heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.families.heap_bytes()
            + self.pages.iter().map(Vec::capacity).sum::<usize>()
            + self.blocks.capacity() * 8
            + self.shards.iter().map(|t| t.slots.capacity() * 8).sum::<usize>()
            + self.short.iter().map(|t| t.slots.capacity() * std::mem::size_of::<ShortEntry>()).sum::<usize>()
            + self.long_codes.capacity() * 4
            + self.values.heap_bytes()
            + self.by_code.as_ref().map_or(0, |k| k.heap_bytes())
            + self.uuids.heap_bytes()
    }
}

/// Rows whose lookups are prefetched together.
pub const BATCH: usize = 16;

/// The id interners of a run. They live on their own pipeline stage: validation copies each row's ids
/// into the chunk ([`Chunk::ids`]) and this stage turns them into codes, on another core.
#[derive(Debug)]
pub struct IdInterners {
    /// order_id -> code.
    pub orders: Interner,
    /// customer_id -> code; the empty id (a guest) is always [`GUEST`].
    pub customers: Interner,
}

impl Default for IdInterners {
    fn default() -> Self {
        let mut customers = Interner::default();
        let guest = customers.intern(b"");
        debug_assert_eq!(guest, GUEST);
        IdInterners { orders: Interner::default(), customers }
    }
}

/// `a == b`, inline for keys of up to 32 bytes: two overlapping loads from each (whose width follows the
/// length, the same for every id of a column) instead of a call to `memcmp`, which is costly for the
/// per-row repeat tests of [`IdInterners::intern_chunk`] (docs/benchmarks.md).
#[inline(always)]
fn same(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    fn ends<const W: usize>(s: &[u8]) -> ([u8; W], [u8; W]) {
        (s[..W].try_into().expect("W bytes"), s[s.len() - W..].try_into().expect("W bytes"))
    }
    match n {
        0 => true,
        1..=3 => a[0] == b[0] && a[n / 2] == b[n / 2] && a[n - 1] == b[n - 1],
        4..=7 => ends::<4>(a) == ends::<4>(b),
        8..=16 => ends::<8>(a) == ends::<8>(b),
        17..=32 => ends::<16>(a) == ends::<16>(b),
        _ => a == b,
    }
}

impl IdInterners {
    /// Fills the chunk's `order` and `customer` codes from its raw ids, and drops the raw ids.
    ///
    /// Rows go in batches of [`BATCH`]: first every lookup's table slot, candidate block and candidate key
    /// bytes are prefetched, level by level, then the lookups run on (mostly) cached memory.
    pub fn intern_chunk(&mut self, chunk: &mut Chunk) {
        assert!(!self.orders.ended && !self.customers.ended, "no key is interned after the lookups are ended");
        let rows = chunk.len();
        chunk.order.clear();
        chunk.customer.clear();
        chunk.order.reserve(rows);
        chunk.customer.reserve(rows);
        let ids = &chunk.ids;
        let ends = &chunk.id_ends;
        let order_id = |row: usize| {
            let start = if row == 0 { 0 } else { ends[2 * row - 1] as usize };
            &ids[start..ends[2 * row] as usize]
        };
        let customer_id = |row: usize| &ids[ends[2 * row] as usize..ends[2 * row + 1] as usize];
        // The lines of one order are mostly adjacent: a row repeating the previous row's order id (and
        // then mostly its customer id) takes the previous codes without hashing or probing.
        let repeats = |row: usize| row > 0 && same(order_id(row), order_id(row - 1));
        let mut probes = [None; BATCH];
        let mut candidates = [(None, None); BATCH];
        for first in (0..rows).step_by(BATCH) {
            let batch = first..rows.min(first + BATCH);
            // Whether a long or UUID key is in the batch: only those have the next two levels of prefetches.
            let mut long = false;
            for row in batch.clone() {
                let probe =
                    (!repeats(row)).then(|| (self.orders.probe(order_id(row)), self.customers.probe(customer_id(row))));
                long |=
                    matches!(probe, Some((Probe::Long(_) | Probe::Uuid(_), _) | (_, Probe::Long(_) | Probe::Uuid(_))));
                probes[row - first] = probe;
            }
            let (probes, candidates) = (&probes[..batch.len()], &mut candidates[..batch.len()]);
            for &(order, customer) in probes.iter().flatten() {
                self.orders.prefetch_slot(order);
                self.customers.prefetch_slot(customer);
            }
            for (probe, found) in probes.iter().zip(candidates.iter_mut()).filter(|_| long) {
                *found = match *probe {
                    Some((order, customer)) => (self.orders.candidate(order), self.customers.candidate(customer)),
                    None => (None, None),
                };
                if let Some(index) = found.0 {
                    self.orders.prefetch_block(index);
                }
                if let Some(index) = found.1 {
                    self.customers.prefetch_block(index);
                }
            }
            for &(order, customer) in candidates.iter().filter(|_| long) {
                if let Some(index) = order {
                    self.orders.prefetch_key(index);
                }
                if let Some(index) = customer {
                    self.customers.prefetch_key(index);
                }
            }
            for row in batch {
                let (order, customer) = match probes[row - first] {
                    Some((order, customer)) => (
                        self.orders.intern_probed(order_id(row), order),
                        self.customers.intern_probed(customer_id(row), customer),
                    ),
                    None => {
                        let customer = if same(customer_id(row), customer_id(row - 1)) {
                            chunk.customer[row - 1]
                        } else {
                            self.customers.intern(customer_id(row))
                        };
                        (chunk.order[row - 1], customer)
                    }
                };
                chunk.order.push(order);
                chunk.customer.push(customer);
            }
        }
        chunk.ids = Vec::new();
        chunk.id_ends = Vec::new();
    }

    /// Approximate heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.orders.heap_bytes() + self.customers.heap_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_is_slice_equality() {
        let mut x = 3u64;
        for _ in 0..100_000 {
            crate::testing::xorshift(&mut x);
            let len = (x % 40) as usize;
            let a: Vec<u8> = (0..len).map(|i| b"ab"[((x >> (i % 60)) & 1) as usize]).collect();
            let mut b = a.clone();
            if x & (1 << 61) != 0 && len > 0 {
                b[(x >> 8) as usize % len] ^= 1; // one byte differs, anywhere
            }
            if x & (1 << 62) != 0 {
                b.push(b'a');
            }
            assert_eq!(same(&a, &b), a == b, "{a:?} {b:?}");
        }
    }

    #[test]
    fn interner_is_exact_and_dense() {
        let mut i = Interner::default();
        let keys: Vec<String> = (0..10_000).map(|n| format!("ORD-{n}")).collect();
        for (n, k) in keys.iter().enumerate() {
            assert_eq!(i.intern(k.as_bytes()), n as u32);
            assert_eq!(i.intern(k.as_bytes()), n as u32, "a repeat finds its code");
        }
        for (n, k) in keys.iter().enumerate().rev() {
            assert_eq!(i.intern(k.as_bytes()), n as u32, "lookup after growth");
            assert_eq!(i.key(n as u32), k.as_bytes());
        }
        // Keys that share prefixes, are prefixes of each other, or are long, round-trip exactly.
        let mut j = Interner::default();
        let tricky: Vec<Vec<u8>> = vec![
            b"abc".to_vec(),
            b"ab".to_vec(),
            b"abcd".to_vec(),
            b"".to_vec(),
            vec![b'x'; 1000],
            [vec![b'x'; 999], b"y".to_vec()].concat(),
            "ü-ORD".as_bytes().to_vec(),
        ];
        for round in 0..3 {
            for (n, k) in tricky.iter().enumerate() {
                assert_eq!(j.intern(k), n as u32, "round {round} key {n}");
            }
        }
        for (n, k) in tricky.iter().enumerate() {
            assert_eq!(&j.key(n as u32), k);
        }
        assert_eq!(i.intern(b""), 10_000);
        assert_eq!(i.intern(b"ORD-1"), 1);
        assert_eq!(i.len(), 10_001);
    }

    #[test]
    fn long_keys_at_scale_grow_decode_and_map_to_codes() {
        // Long ids only (more than 8 bytes): table growth, re-lookup after many rehashes and decoding across
        // blocks and more than one page. Then short ids arrive (long indexes and codes part ways), and long
        // ones again; every key keeps its first code.
        let mut i = Interner::default();
        let long = |n: usize| format!("ORD-2026112213-{n:07}-{}", "x".repeat(n % 40));
        let n_long = 60_000;
        for n in 0..n_long {
            assert_eq!(i.intern(long(n).as_bytes()), n as u32);
        }
        assert!(i.pages.len() > 1, "the keys span {} page(s)", i.pages.len());
        for n in (0..n_long).rev() {
            assert_eq!(i.intern(long(n).as_bytes()), n as u32, "long key {n} after growth");
        }
        for n in 0..1000 {
            assert_eq!(i.intern(format!("S{n}").as_bytes()), (n_long + 2 * n) as u32);
            assert_eq!(i.intern(long(n_long + n).as_bytes()), (n_long + 2 * n + 1) as u32);
        }
        for n in (0..n_long + 1000).step_by(97) {
            assert_eq!(i.intern(long(n).as_bytes()), if n < n_long { n } else { n_long + 2 * (n - n_long) + 1 } as u32);
        }
        for code in [0, 1, 4095, 4096, n_long - 1, n_long + 1, n_long + 1999] {
            let want = if code < n_long { long(code) } else { long(n_long + (code - n_long) / 2) };
            assert_eq!(i.key(code as u32), want.as_bytes(), "code {code}");
        }
        assert_eq!(i.key(n_long as u32 + 2), b"S1");
        assert_eq!(i.len(), n_long + 2000);
    }

    #[test]
    fn short_keys_pack_exactly_and_nul_bytes_take_the_long_path() {
        assert_eq!(pack_short(b""), None);
        assert_eq!(pack_short(b"123456789"), None);
        let mut seen = std::collections::HashSet::new();
        for n in 1..=8usize {
            let key: Vec<u8> = (0..n).map(|i| b'a' + i as u8).collect();
            let packed = pack_short(&key).unwrap_or_else(|| panic!("{n} bytes are short"));
            assert_eq!(unpack_short(packed), key);
            assert!(seen.insert(packed), "{n} bytes pack to a value of their own");
            // A prefix followed by 0x01 differs from the prefix, and a NUL anywhere sends a key to the long path.
            let mut longer = key[..n - 1].to_vec();
            longer.push(1);
            assert_ne!(pack_short(&longer), pack_short(&key[..n - 1]));
            for at in 0..n {
                let mut with_nul = key.clone();
                with_nul[at] = 0;
                assert_eq!(pack_short(&with_nul), None, "NUL at {at} of {n}");
            }
            let high: Vec<u8> = (0..n).map(|i| 0x80 | i as u8).collect();
            assert_eq!(unpack_short(pack_short(&high).unwrap()), high);
        }
    }

    #[test]
    fn short_and_long_keys_share_one_dense_code_space() {
        // Long keys first (their indexes equal their codes until a short key arrives), then short ones,
        // then long ones again, and a table that starts with a short key.
        let order: Vec<Vec<u8>> = vec![
            b"a-long-order-id-1".to_vec(),
            b"a-long-order-id-2".to_vec(),
            b"C001x".to_vec(),
            b"a-long-order-id-3".to_vec(),
            b"C002x".to_vec(),
            b"".to_vec(),
            b"nul\0key".to_vec(),
            vec![b'n', 0, b'k'],
            b"1234567x".to_vec(),
            b"12345678x".to_vec(),
            b"C0000042".to_vec(), // numbered: a third kind in the same code space
        ];
        assert!(matches!(Interner::default().probe(b"C001x"), Probe::Short(_)));
        assert!(matches!(Interner::default().probe(b"12345678x"), Probe::Long(_)));
        for start in 0..3 {
            let keys: Vec<&Vec<u8>> = order[start..].iter().chain(&order[..start]).collect();
            let mut i = Interner::default();
            for round in 0..3 {
                for (n, k) in keys.iter().enumerate() {
                    assert_eq!(i.intern(k), n as u32, "start {start}, round {round}, key {n}");
                }
            }
            for (n, k) in keys.iter().enumerate() {
                assert_eq!(&i.key(n as u32), *k, "start {start}");
            }
            assert_eq!(i.len(), keys.len());
        }
    }

    #[test]
    fn the_prefetch_hint_finds_keys_displaced_from_their_home_slot() {
        let mut i = Interner::default();
        let keys: Vec<String> = (0..50_000).map(|n| format!("CUST-{n:07}-x")).collect();
        for k in &keys {
            i.intern(k.as_bytes());
        }
        let (mut home, mut found) = (0, 0); // keys in their home slot; keys the hint names
        for (code, k) in keys.iter().enumerate() {
            let Probe::Long(tag) = i.probe(k.as_bytes()) else { panic!("{k} is a long key") };
            let shard = &i.shards[shard_of(tag)];
            home += usize::from(shard.slots[shard.home(long_position(tag))] & 0xFFFF_FFFF == code as u64 + 1);
            found += usize::from(shard.first_candidate(tag) == Some(code as u32));
        }
        assert!(home < keys.len() * 9 / 10, "the table is full enough to displace keys ({home} at home)");
        assert!(found >= keys.len() * 97 / 100, "the hint names {found} of {} keys ({home} at home)", keys.len());
    }

    #[test]
    fn a_family_added_within_a_batch_may_take_the_last_room() {
        // One family short of the limit: in one batch, two new families' keys are probed as new; the first
        // takes the last room and the second falls back to the general path, as it will from then on.
        let fill = |i: &mut IdInterners| {
            for f in 0..families::MAX_FAMILIES - 1 {
                i.orders.intern(format!("F{f}-1").as_bytes());
            }
        };
        let mut chunk = Chunk::default();
        let rows: Vec<String> =
            (0..3 * BATCH).map(|r| format!("{}-{}", ["NEWA", "NEWB", "F7"][r % 3], r / 2)).collect();
        let (mut expected, mut want) = (IdInterners::default(), Vec::new());
        fill(&mut expected);
        for order in &rows {
            chunk.push_ids(order.as_bytes(), b"");
            chunk.hour.push(0);
            want.push(expected.orders.intern(order.as_bytes()));
        }
        let mut ids = IdInterners::default();
        fill(&mut ids);
        ids.intern_chunk(&mut chunk);
        assert_eq!(chunk.order, want);
        assert!(matches!(ids.orders.probe(b"NEWA-1"), Probe::Numbered { .. }));
        assert!(matches!(ids.orders.probe(b"NEWB-1"), Probe::Short(_)));
        for order in &rows {
            assert_eq!(ids.orders.intern(order.as_bytes()), expected.orders.intern(order.as_bytes()), "{order}");
        }
    }

    #[test]
    fn batched_chunk_interning_matches_one_by_one() {
        let mut chunk = Chunk::default();
        let mut expected = IdInterners::default();
        let mut want = (Vec::new(), Vec::new());
        // Runs of adjacent lines of one order (whose customer mostly repeats, sometimes not), orders
        // interleaved, customers drawn from a small pool (hits), guests, and a batch-size tail.
        for row in 0..(400 * BATCH + 7) {
            let interleaved = if row % 10 < 6 { 0 } else { (row % 5) * 1000 };
            // Numbered order ids of one family (dense once a thousand are seen), short numbered ids of many
            // families, and long ids that are not numbered (front-coded), mixed.
            let n = row / 3 + interleaved;
            let order = match n % 3 {
                0 => format!("ORD-2026112213-{:07}", n / 3),
                1 => format!("ORD-{n}"),
                _ => format!("order-{n:x}-{}", "z".repeat(n % 9)),
            };
            let customer = if row % 7 == 0 { String::new() } else { format!("C{}", (row / 3 * 31 + row % 4 / 3) % 97) };
            chunk.push_ids(order.as_bytes(), customer.as_bytes());
            chunk.hour.push(0);
            want.0.push(expected.orders.intern(order.as_bytes()));
            want.1.push(expected.customers.intern(customer.as_bytes()));
        }
        let mut ids = IdInterners::default();
        ids.intern_chunk(&mut chunk);
        assert_eq!((chunk.order, chunk.customer), want);
        assert!(chunk.ids.is_empty() && chunk.id_ends.is_empty());
        assert_eq!(ids.orders.len(), expected.orders.len());
        assert_eq!(*want.1.iter().step_by(7).next().unwrap(), GUEST);
        assert!(ids.orders.dense_families() >= 1, "numbered order ids reach pages in this test");
    }

    /// A key of one of the shapes that meet at the UUID path, drawn from `kind` and `n` (equal `n`, equal key).
    fn mixed_key(kind: u8, n: u64) -> Vec<u8> {
        let x = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (n >> 7);
        let h = format!("{:016x}{:016x}", x, x.rotate_left(29) ^ n);
        let uuid = format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..]);
        let key = match kind % 10 {
            0..=3 => uuid,
            4 => uuid.to_uppercase(),
            5 => format!("{}g{}", &uuid[..(n % 36) as usize], &uuid[(n % 36) as usize + 1..]),
            6 => {
                let mut moved = uuid.into_bytes();
                let dash = 8 + 5 * (n as usize % 4);
                moved.swap(dash, dash + 1); // a dash one place off
                String::from_utf8(moved).expect("ASCII")
            }
            7 => {
                if n.is_multiple_of(2) {
                    uuid[..35].to_string()
                } else {
                    format!("{uuid}{}", n % 10)
                }
            }
            8 => format!("C{n}"),
            _ => format!("ORD-2026112213-{n:07}"),
        };
        key.into_bytes()
    }

    /// Interns `keys` one by one and in chunks (batched, as the pipeline does) and checks codes and hashes
    /// against a plain map and [`id_hash`].
    fn check_against_a_map(keys: &[Vec<u8>]) {
        let mut model: std::collections::HashMap<Vec<u8>, u32> = std::collections::HashMap::new();
        let mut model_hashes = Vec::new();
        let want: Vec<u32> = keys
            .iter()
            .map(|k| {
                let next = model.len() as u32;
                *model.entry(k.clone()).or_insert_with(|| {
                    model_hashes.push(id_hash(k));
                    next
                })
            })
            .collect();
        let mut one = Interner::default();
        let got: Vec<u32> = keys.iter().map(|k| one.intern(k)).collect();
        assert_eq!(got, want, "one by one");
        for (k, &code) in model.iter().take(2000) {
            assert_eq!(&one.key(code), k);
        }
        assert_eq!(one.len(), model.len());
        assert_eq!(one.hashes(), model_hashes, "hashes, one by one");
        let mut ids = IdInterners::default();
        let mut codes = Vec::new();
        for part in keys.chunks(1000) {
            let mut chunk = Chunk::default();
            for k in part {
                chunk.push_ids(k, k);
                chunk.hour.push(0);
            }
            ids.intern_chunk(&mut chunk);
            codes.extend_from_slice(&chunk.order);
        }
        assert_eq!(codes, want, "batched");
        assert_eq!(ids.orders.hashes(), model_hashes, "hashes, batched");
    }

    #[test]
    fn uuid_keys_get_the_codes_and_hashes_of_a_plain_map() {
        for (seed, len, pool) in [(1u64, 300_000, 150_000u64), (2, 100_000, 1_000), (3, 50_000, 40_000)] {
            let mut x = seed;
            let keys: Vec<Vec<u8>> = (0..len)
                .map(|_| {
                    let r = crate::testing::xorshift(&mut x);
                    mixed_key((r >> 56) as u8, (r >> 8) % pool)
                })
                .collect();
            assert!(
                keys.iter().any(|k| uuid::pack(k).is_some())
                    && keys.iter().any(|k| k.len() == 36 && uuid::pack(k).is_none())
            );
            check_against_a_map(&keys);
        }
        // UUIDs only (their indexes in the pages are their codes), then after a million other codes.
        let only: Vec<Vec<u8>> = (0..200_000u64).map(|n| mixed_key(0, n % 120_000)).collect();
        check_against_a_map(&only);
        let late: Vec<Vec<u8>> =
            (0..1_100_000u64).map(|n| if n < 1_000_000 { mixed_key(8, n) } else { mixed_key(0, n % 50_000) }).collect();
        check_against_a_map(&late);
    }

    /// The hashes are made from the keys at the end (not kept while interning): every path a key can take
    /// gives back its key's hash, by code, whatever path came first.
    #[test]
    fn hashes_are_made_from_the_keys_of_every_path() {
        let mut x = 5u64;
        let keys: Vec<Vec<u8>> = (0..120_000u64)
            .map(|i| {
                let r = crate::testing::xorshift(&mut x);
                let n = (r >> 8) % 40_000;
                match r % 7 {
                    0 => format!("k{n:x}z").into_bytes(),                            // short
                    1 => format!("customer-{n:x}-{}", n % 7).into_bytes(),           // long
                    2 => format!("S{}", (r >> 16) % 1_000_000_000_000).into_bytes(), // sparse family
                    3 => format!("ORD-{:07}", i / 3).into_bytes(),                   // dense family
                    4 => format!("P{:04}", n % 10_000).into_bytes(),                 // zero-padded family
                    5 if i > 60_000 => mixed_key(0, n),                              // UUIDs, after the others
                    _ => Vec::new(),                                                 // the empty key
                }
            })
            .collect();
        check_against_a_map(&keys);
        let mut interner = Interner::default();
        for k in &keys {
            interner.intern(k);
        }
        assert!(interner.dense_families() >= 1 && interner.long_len > 0 && !interner.long_codes.is_empty());
        assert!(interner.short.iter().any(|s| s.len > 0));
        // One hour's dictionary: a subset of the codes, each hashed into its place, once the lookups are gone.
        let all: Vec<u128> = interner.hashes();
        interner.end_lookups();
        let wanted: Vec<u32> = (0..interner.len() as u32).filter(|c| c % 3 == 1 || c % 7 == 0).collect();
        let mut dict = vec![0u128; wanted.len()];
        interner.hashes_into(|code| wanted.binary_search(&code).ok(), &mut dict);
        let want: Vec<u128> = wanted.iter().map(|&c| all[c as usize]).collect();
        assert_eq!(dict, want, "a subset's hashes, in its order");
    }

    /// A backend's counter (one numbered family held in pages) and a guest's empty id: after the lookups
    /// end, the keys are made by code from an index of their numbers, not by a walk, with the same hashes
    /// and keys; the family's pages are freed.
    #[test]
    fn one_counters_keys_are_made_by_code_after_the_lookups_end() {
        let mut interner = Interner::default();
        interner.intern(b"");
        let mut x = 9u64;
        for _ in 0..20_000 {
            let n = 100_000 + crate::testing::xorshift(&mut x) % 30_000;
            interner.intern(format!("ORD-{n:09}").as_bytes());
        }
        let (hashes, keys): (Vec<u128>, Vec<Vec<u8>>) =
            (interner.hashes(), (0..interner.len() as u32).map(|c| interner.key(c)).collect());
        interner.end_lookups();
        assert!(interner.by_code().is_some() && interner.dense_families() == 0, "indexed by code, pages freed");
        assert_eq!(interner.hashes(), hashes, "every hash, by code");
        assert!((0..interner.len() as u32).all(|c| interner.key(c) == keys[c as usize]), "every key");
        let mut some = vec![0u128; 100];
        interner.by_code().unwrap().hashes_into((0..interner.len() as u32).rev().step_by(7), &mut some);
        let want: Vec<u128> = (0..interner.len()).rev().step_by(7).take(100).map(|c| hashes[c]).collect();
        assert_eq!(some, want, "codes in any order");
        // Keys of several families keep the walk.
        let mut two = Interner::default();
        for n in 0..5_000 {
            two.intern(format!("A{n:06}").as_bytes());
            two.intern(format!("B{n:06}").as_bytes());
        }
        two.end_lookups();
        assert!(two.by_code().is_none());
    }

    #[test]
    #[should_panic(expected = "after its lookups are ended")]
    fn no_key_is_interned_after_the_lookups_are_ended() {
        let mut interner = Interner::default();
        interner.intern(b"5b427596-5d5b-43cb-847b-42050c33e00b");
        interner.end_lookups();
        // (A UUID would have been given a second code, its table being gone.)
        interner.intern(b"5b427596-5d5b-43cb-847b-42050c33e00b");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 256, ..Default::default() })]
        /// The same, searched by proptest: any mix of UUIDs, near-UUIDs, short and numbered keys, repeated.
        #[test]
        fn uuid_mixes_match_a_plain_map(keys in proptest::collection::vec((0u8..10, 0u64..64), 0..400)) {
            let keys: Vec<Vec<u8>> = keys.into_iter().map(|(kind, n)| mixed_key(kind, n)).collect();
            check_against_a_map(&keys);
        }
    }

    #[test]
    fn a_uuid_takes_at_most_24_bytes() {
        // Issue 24: the state of distinct UUIDs, table slack and growth included, at sizes across a growth.
        let mut i = Interner::default();
        let mut x = 11u64;
        let mut checked = 0;
        for n in 1..=3_000_000usize {
            let (a, b) = (crate::testing::xorshift(&mut x), crate::testing::xorshift(&mut x));
            let h = format!("{a:016x}{b:016x}");
            let key = format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..]);
            i.intern(key.as_bytes());
            if n >= 1_000_000 && n % 100_000 == 0 {
                let per_id = i.heap_bytes() as f64 / i.len() as f64;
                assert!(per_id <= 24.0, "{per_id:.2} bytes per UUID at {n}");
                checked += 1;
            }
        }
        assert_eq!((i.len(), checked), (3_000_000, 21));
    }
}
