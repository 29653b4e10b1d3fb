//! Exact, compact interning of order and customer ids to dense codes, and the pipeline stage that does it.
//!
//! Distinct counts are kept as bitmaps over dense codes ([`crate::aggregate`]), so every id is mapped to
//! the code of its first appearance. That map is the largest state of a run, so it is built for memory
//! (front-coded keys) and for cache misses (the hash tag sits next to the code in the table).

use std::hash::BuildHasher;

use hashbrown::hash_table::Entry;

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
    /// (code, 32-bit hash tag of its key), sharded by tag so that each shard grows on its own: no moment
    /// holds two copies of a big table. The tag sits next to the code, so a probe compares tags without
    /// leaving the table's cache line, and growing the table never decodes a key.
    shards: Vec<hashbrown::HashTable<(u32, u32)>>,
    len: usize,
    pages: Vec<Vec<u8>>,
    /// (page, offset) of each block's first entry.
    blocks: Vec<(u32, u32)>,
    /// The last key appended (the front-coding base of the next entry).
    last_added: Vec<u8>,
    /// The last key looked up and its code: order lines usually come in runs of the same order.
    recent: Option<(Vec<u8>, u32)>,
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
            shards: (0..1 << SHARD_BITS).map(|_| hashbrown::HashTable::new()).collect(),
            len: 0,
            pages: Vec::new(),
            blocks: Vec::new(),
            last_added: Vec::new(),
            recent: None,
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
        if let Some((recent, code)) = &self.recent {
            if recent.as_slice() == key {
                return *code;
            }
        }
        let tag = self.hasher.hash_one(key) as u32;
        let Interner { shards, pages, blocks, scratch, last_added, len, .. } = self;
        let entry = shards[shard_of(tag)].entry(
            spread(tag),
            |&(c, t)| {
                t == tag && {
                    decode_into(pages, blocks, c, scratch);
                    scratch.as_slice() == key
                }
            },
            |&(_, t)| spread(t),
        );
        let code = match entry {
            Entry::Occupied(found) => found.get().0,
            Entry::Vacant(slot) => {
                let code = *len as u32;
                append(pages, blocks, last_added, code, key);
                *len += 1;
                slot.insert((code, tag));
                code
            }
        };
        match &mut self.recent {
            Some((recent, c)) => {
                recent.clear();
                recent.extend_from_slice(key);
                *c = code;
            }
            None => self.recent = Some((key.to_vec(), code)),
        }
        code
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
            + self.shards.iter().map(|t| t.capacity() * 9).sum::<usize>()
    }
}

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
    pub fn intern_chunk(&mut self, chunk: &mut Chunk) {
        chunk.order.clear();
        chunk.customer.clear();
        chunk.order.reserve(chunk.len());
        chunk.customer.reserve(chunk.len());
        let mut start = 0;
        for ends in chunk.id_ends.chunks_exact(2) {
            let (order_end, customer_end) = (ends[0] as usize, ends[1] as usize);
            chunk.order.push(self.orders.intern(&chunk.ids[start..order_end]));
            chunk.customer.push(self.customers.intern(&chunk.ids[order_end..customer_end]));
            start = customer_end;
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
            assert_eq!(i.intern(k.as_bytes()), n as u32, "repeat hits the run cache");
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
}
