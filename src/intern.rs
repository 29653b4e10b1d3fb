//! Exact, compact interning of order and customer ids to dense codes, and the pipeline stage that does it.
//!
//! Distinct counts are kept as bitmaps over dense codes ([`crate::aggregate`]), so every id is mapped to
//! the code of its first appearance. That map is the largest state of a run, so it is built for memory
//! (front-coded keys) and for cache misses: the hash tag sits next to the code in the table, and a chunk's
//! ids are looked up in batches whose table slots and candidate keys are prefetched first, so the memory
//! latency of many lookups overlaps instead of adding up.

use std::hash::BuildHasher;

use crate::contract::{Chunk, GUEST};

/// Interns byte strings to dense `u32` codes, exactly, in little memory: about 10–20 bytes per distinct key
/// for typical ids (plus the table), instead of the 60–80 of a `HashMap<Vec<u8>, u32>`.
///
/// Keys are front-coded in blocks of [`BLOCK`]: the first key of a block is stored whole, each following
/// one as (length of the prefix shared with its predecessor, the rest). Ids such as `ORD-2026112213-0000017`
/// thus cost a few bytes. Blocks live in pages that are never reallocated, so growth has no 2x slack.
/// A table of codes, keyed by a 32-bit tag per code, finds a key; candidate keys are decoded and compared
/// in full, so the interner is exact. Codes are assigned in order of first appearance.
pub struct Interner {
    /// Open-addressing tables of (32-bit hash tag, code), sharded by tag so that each shard grows on its
    /// own: no moment holds two copies of a big table. The tag sits next to the code, so a probe compares
    /// tags without leaving the table's cache line, and growing never decodes a key.
    shards: Vec<Shard>,
    len: usize,
    pages: Vec<Vec<u8>>,
    /// (page, offset) of each block's first entry.
    blocks: Vec<(u32, u32)>,
    /// The last key appended (the front-coding base of the next entry).
    last_added: Vec<u8>,
    scratch: Vec<u8>,
    hasher: foldhash::fast::FixedState,
}

/// Keys per front-coded block.
pub const BLOCK: usize = 16;
const PAGE: usize = 1 << 20;
const SHARD_BITS: u32 = 6;

impl Default for Interner {
    fn default() -> Self {
        Interner {
            shards: (0..1 << SHARD_BITS).map(|_| Shard::default()).collect(),
            len: 0,
            pages: Vec::new(),
            blocks: Vec::new(),
            last_added: Vec::new(),
            scratch: Vec::new(),
            hasher: foldhash::fast::FixedState::default(),
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

/// Spreads a 32-bit tag over 64 bits for the table (which uses both high and low bits).
fn spread(tag: u32) -> u64 {
    u64::from(tag).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

fn shard_of(tag: u32) -> usize {
    (tag >> (32 - SHARD_BITS)) as usize
}

/// One open-addressing table with linear probing. A slot holds `tag << 32 | (code + 1)`; 0 is empty. It is
/// at most 4/5 full and grows by half (not doubling), so it is on average about 2/3 full: at 14 M ids that
/// is ~100 MB less than a power-of-two table.
#[derive(Default)]
struct Shard {
    slots: Vec<u64>,
    len: usize,
}

impl Shard {
    /// The slot where the probe for `tag` starts (the table is not empty).
    fn home(&self, tag: u32) -> usize {
        // Maps the hash onto 0..capacity by a multiply-shift (the capacity is not a power of two).
        (((spread(tag) >> 32) * self.slots.len() as u64) >> 32) as usize
    }

    /// The slot after `i`, wrapping around.
    fn next(&self, i: usize) -> usize {
        if i + 1 == self.slots.len() {
            0
        } else {
            i + 1
        }
    }

    /// Makes room for one more entry, growing by half (and re-placing entries by their tags) when needed.
    fn reserve_one(&mut self) {
        if (self.len + 1) * 5 <= self.slots.len() * 4 {
            return;
        }
        let capacity = (self.slots.len() + self.slots.len() / 2).max(16);
        let old = std::mem::replace(&mut self.slots, vec![0; capacity]);
        for entry in old.into_iter().filter(|&e| e != 0) {
            let mut i = self.home((entry >> 32) as u32);
            while self.slots[i] != 0 {
                i = self.next(i);
            }
            self.slots[i] = entry;
        }
    }

    /// The code of the first slot carrying `tag` among the first few of its probe (a prefetch hint). Not only
    /// the home slot: with linear probing up to 4/5 full, a third or more of the keys sit further on, and
    /// the next slots are mostly in the same, already prefetched, cache line.
    fn first_candidate(&self, tag: u32) -> Option<u32> {
        let mut i = self.home_or_none(tag)?;
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

    fn home_or_none(&self, tag: u32) -> Option<usize> {
        (!self.slots.is_empty()).then(|| self.home(tag))
    }
}

/// Asks the CPU to start loading the cache line of `value` (a hint: it never faults, and does nothing
/// on other architectures).
#[inline(always)]
fn prefetch<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint; the address is a valid reference.
    #[allow(unused_unsafe)]
    unsafe {
        std::arch::x86_64::_mm_prefetch(value as *const T as *const i8, std::arch::x86_64::_MM_HINT_T0)
    }
    #[cfg(target_arch = "aarch64")]
    // SAFETY: `prfm` is only a hint; it reads nothing architecturally visible and cannot fault.
    unsafe {
        std::arch::asm!("prfm pldl1keep, [{0}]", in(reg) value as *const T, options(nostack, readonly, preserves_flags))
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    let _ = value;
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
    /// The key of a code.
    pub fn key(&self, code: u32) -> Vec<u8> {
        let mut out = Vec::new();
        decode_into(&self.pages, &self.blocks, code, &mut out);
        out
    }

    /// The code of `key`, assigning the next free code to a new key.
    pub fn intern(&mut self, key: &[u8]) -> u32 {
        let tag = self.tag(key);
        self.intern_tagged(key, tag)
    }

    /// The 32-bit hash tag of a key (for the batched lookup: [`Interner::prefetch`], then
    /// [`Interner::intern_tagged`]).
    pub fn tag(&self, key: &[u8]) -> u32 {
        self.hasher.hash_one(key) as u32
    }

    /// Starts loading the table slot where the lookup of `tag` begins: the first of the three levels of a
    /// batched lookup. Each level reads what the previous one prefetched, so a batch runs
    /// [`Interner::prefetch_slot`] for all its keys, then [`Interner::candidate`] and
    /// [`Interner::prefetch_block`], then [`Interner::prefetch_key`].
    pub fn prefetch_slot(&self, tag: u32) {
        let shard = &self.shards[shard_of(tag)];
        if let Some(home) = shard.home_or_none(tag) {
            prefetch(&shard.slots[home]);
        }
    }

    /// The code a lookup of `tag` will most likely compare its key with (a prefetch hint, from the
    /// slot [`Interner::prefetch_slot`] loaded), if any.
    pub fn candidate(&self, tag: u32) -> Option<u32> {
        self.shards[shard_of(tag)].first_candidate(tag)
    }

    /// Starts loading the block index entry of a candidate code.
    pub fn prefetch_block(&self, code: u32) {
        if let Some(block) = self.blocks.get(code as usize / BLOCK) {
            prefetch(block);
        }
    }

    /// Starts loading the first bytes of a candidate code's block (its index entry is loaded by now).
    pub fn prefetch_key(&self, code: u32) {
        let Some(&(page, offset)) = self.blocks.get(code as usize / BLOCK) else { return };
        if let Some(byte) = self.pages.get(page as usize).and_then(|p| p.get(offset as usize)) {
            prefetch(byte);
        }
    }

    /// [`Interner::intern`] with the key's tag already computed.
    pub fn intern_tagged(&mut self, key: &[u8], tag: u32) -> u32 {
        let Interner { shards, pages, blocks, scratch, last_added, len, .. } = self;
        let shard = &mut shards[shard_of(tag)];
        shard.reserve_one();
        let mut i = shard.home(tag);
        loop {
            let entry = shard.slots[i];
            if entry == 0 {
                let code =
                    u32::try_from(*len).ok().filter(|&c| c < u32::MAX).expect("fewer than 2^32 - 1 distinct ids");
                append(pages, blocks, last_added, code, key);
                *len += 1;
                shard.slots[i] = u64::from(tag) << 32 | u64::from(code + 1);
                shard.len += 1;
                return code;
            }
            if (entry >> 32) as u32 == tag {
                let candidate = entry as u32 - 1;
                decode_into(pages, blocks, candidate, scratch);
                if scratch.as_slice() == key {
                    return candidate;
                }
            }
            i = shard.next(i);
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Approximate heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.pages.iter().map(Vec::capacity).sum::<usize>()
            + self.blocks.capacity() * 8
            + self.shards.iter().map(|t| t.slots.capacity() * 8).sum::<usize>()
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

impl IdInterners {
    /// Fills the chunk's `order` and `customer` codes from its raw ids, and drops the raw ids.
    ///
    /// Rows go in batches of [`BATCH`]: first every lookup's table slot, candidate block and candidate key
    /// bytes are prefetched, level by level, then the lookups run on (mostly) cached memory.
    pub fn intern_chunk(&mut self, chunk: &mut Chunk) {
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
        let repeats = |row: usize| row > 0 && order_id(row) == order_id(row - 1);
        let mut tags = [None; BATCH];
        let mut candidates = [(None, None); BATCH];
        for first in (0..rows).step_by(BATCH) {
            let batch = first..rows.min(first + BATCH);
            for row in batch.clone() {
                tags[row - first] =
                    (!repeats(row)).then(|| (self.orders.tag(order_id(row)), self.customers.tag(customer_id(row))));
            }
            let (tags, candidates) = (&tags[..batch.len()], &mut candidates[..batch.len()]);
            for &(order, customer) in tags.iter().flatten() {
                self.orders.prefetch_slot(order);
                self.customers.prefetch_slot(customer);
            }
            for (tag, found) in tags.iter().zip(candidates.iter_mut()) {
                *found = match *tag {
                    Some((order, customer)) => (self.orders.candidate(order), self.customers.candidate(customer)),
                    None => (None, None),
                };
                if let Some(code) = found.0 {
                    self.orders.prefetch_block(code);
                }
                if let Some(code) = found.1 {
                    self.customers.prefetch_block(code);
                }
            }
            for &(order, customer) in candidates.iter() {
                if let Some(code) = order {
                    self.orders.prefetch_key(code);
                }
                if let Some(code) = customer {
                    self.customers.prefetch_key(code);
                }
            }
            for row in batch {
                let (order, customer) = match tags[row - first] {
                    Some((order, customer)) => (
                        self.orders.intern_tagged(order_id(row), order),
                        self.customers.intern_tagged(customer_id(row), customer),
                    ),
                    None => {
                        let customer = if customer_id(row) == customer_id(row - 1) {
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
    fn the_prefetch_hint_finds_keys_displaced_from_their_home_slot() {
        let mut i = Interner::default();
        let keys: Vec<String> = (0..50_000).map(|n| format!("C{n:07}")).collect();
        for k in &keys {
            i.intern(k.as_bytes());
        }
        let (mut home, mut found) = (0, 0); // keys in their home slot; keys the hint names
        for (code, k) in keys.iter().enumerate() {
            let tag = i.tag(k.as_bytes());
            let shard = &i.shards[shard_of(tag)];
            home += usize::from(shard.slots[shard.home(tag)] & 0xFFFF_FFFF == code as u64 + 1);
            found += usize::from(shard.first_candidate(tag) == Some(code as u32));
        }
        assert!(home < keys.len() * 9 / 10, "the table is full enough to displace keys ({home} at home)");
        assert!(found >= keys.len() * 97 / 100, "the hint names {found} of {} keys ({home} at home)", keys.len());
    }

    #[test]
    fn batched_chunk_interning_matches_one_by_one() {
        let mut chunk = Chunk::default();
        let mut expected = IdInterners::default();
        let mut want = (Vec::new(), Vec::new());
        // Runs of adjacent lines of one order (whose customer mostly repeats, sometimes not), orders
        // interleaved, customers drawn from a small pool (hits), guests, and a batch-size tail.
        for row in 0..(40 * BATCH + 7) {
            let interleaved = if row % 10 < 6 { 0 } else { (row % 5) * 1000 };
            let order = format!("ORD-{}", row / 3 + interleaved);
            let customer = if row % 7 == 0 { String::new() } else { format!("C{}", (row / 3 * 31 + row % 4 / 3) % 97) };
            chunk.ids.extend_from_slice(order.as_bytes());
            chunk.id_ends.push(chunk.ids.len() as u32);
            chunk.ids.extend_from_slice(customer.as_bytes());
            chunk.id_ends.push(chunk.ids.len() as u32);
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
    }
}
