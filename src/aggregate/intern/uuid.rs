//! Ids shaped like canonical UUIDs (`5b427596-5d5b-43cb-847b-42050c33e00b`), kept in 16 bytes each.
//!
//! Such an id is 36 bytes of text but 128 bits of information: a lowercase canonical UUID packs into a
//! `u128` ([`pack`]) from which its text is rebuilt exactly ([`unpack`]). The interner keeps the packed
//! UUID by code ([`Values`]), and the [`super::id_hash`] of its text, which the mergeable states keep, is
//! computed from it when an hour's dictionary is made ([`Values::for_each_uuid`]), as other keys'
//! hashes are computed from theirs.
//! A UUID is found through a table of 32-bit slots ([`Uuids`]) that hold its code and, in the high bits
//! the codes do not need yet, a hash tag; a candidate is confirmed by comparing the packed value kept at
//! its code. A UUID thus costs its 16 bytes and a table slot: no front-coded text, no separate hash.
//!
//! An id that is not canonical (uppercase hex, other lengths or dash places) does not pack, since its text
//! could not be rebuilt from 128 bits: it takes the interner's general path.

use super::prefetch;

/// Values per page of [`Values`] (128 KB): pages are never reallocated, so growth leaves no slack.
const PAGE_BITS: u32 = 13;
const PAGE: usize = 1 << PAGE_BITS;
/// The UUID table is sharded, so that growing one shard never holds two copies of it all.
const SHARD_BITS: u32 = 6;

const LOW: u64 = 0x0F0F_0F0F_0F0F_0F0F;
const ONES: u64 = 0x0101_0101_0101_0101;

/// The high bit of each nonzero byte of `x`.
#[inline(always)]
fn nonzero_bytes(x: u64) -> u64 {
    (((x & 0x7F7F_7F7F_7F7F_7F7F) + 0x7F7F_7F7F_7F7F_7F7F) | x) & 0x8080_8080_8080_8080
}

/// The high bit of each byte of `word` that is not a lowercase hex digit (`0-9`, `a-f`).
#[inline(always)]
fn non_hex(word: u64) -> u64 {
    let (high, low) = (word & !LOW, word & LOW);
    let bit4 = 0x1010_1010_1010_1010;
    // A digit: high nibble 3, low nibble at most 9. A letter: high nibble 6, low nibble 1 to 6.
    let not_digit = nonzero_bytes((high ^ 0x3030_3030_3030_3030) | ((low + 0x0606_0606_0606_0606) & bit4));
    let not_letter = nonzero_bytes(
        (high ^ 0x6060_6060_6060_6060)
            | ((low + 0x0909_0909_0909_0909) & bit4)
            | (((low + 0x0F0F_0F0F_0F0F_0F0F) & bit4) ^ bit4),
    );
    not_digit & not_letter
}

/// The value of 8 lowercase hex digits (the first in the lowest byte, the most significant).
#[inline(always)]
fn hex_value(word: u64) -> u32 {
    // Letters have bit 6 set, digits not.
    let nibbles = (word & LOW) + ((word >> 6) & ONES) * 9;
    let pairs = ((nibbles << 4) | (nibbles >> 8)) & 0x00FF_00FF_00FF_00FF;
    let quads = (pairs | (pairs >> 8)) & 0x0000_FFFF_0000_FFFF;
    ((quads | (quads >> 16)) as u32).swap_bytes()
}

/// A canonical lowercase UUID (8-4-4-4-12 hex digits `0-9a-f`, dashes between) as the 128-bit number its
/// digits spell; `None` for any other key.
#[inline]
pub fn pack(key: &[u8]) -> Option<u128> {
    let key: &[u8; 36] = key.try_into().ok()?;
    if key[8] != b'-' || key[13] != b'-' || key[18] != b'-' || key[23] != b'-' {
        return None;
    }
    let word = |at: usize| u64::from_le_bytes(key[at..at + 8].try_into().expect("8 bytes"));
    let half = |at: usize| u64::from(u32::from_le_bytes(key[at..at + 4].try_into().expect("4 bytes")));
    let words = [word(0), half(9) | half(14) << 32, half(19) | half(24) << 32, word(28)];
    let mut bad = 0;
    let mut packed = 0u128;
    for w in words {
        bad |= non_hex(w);
        packed = packed << 32 | u128::from(hex_value(w));
    }
    (bad == 0).then_some(packed)
}

/// 8 lowercase hex digits of `value` (the most significant in the lowest byte): [`hex_value`] undone.
#[inline(always)]
fn hex_digits(value: u32) -> u64 {
    let quads = u64::from(value.swap_bytes());
    let quads = (quads | quads << 16) & 0x0000_FFFF_0000_FFFF;
    let pairs = (quads | quads << 8) & 0x00FF_00FF_00FF_00FF;
    let nibbles = ((pairs >> 4) & 0x000F_000F_000F_000F) | ((pairs << 8) & 0x0F00_0F00_0F00_0F00);
    // Past 9, a nibble's byte moves from the digits to the letters ('a' is 39 after '9' + 1).
    nibbles + 0x3030_3030_3030_3030 + (((nibbles + 0x0606_0606_0606_0606) >> 4) & ONES) * 39
}

/// The text of a packed UUID ([`pack`]).
#[inline]
pub fn unpack(packed: u128) -> [u8; 36] {
    let word = |at: u32| hex_digits((packed >> (96 - 32 * at)) as u32).to_le_bytes();
    let (a, b, c, d) = (word(0), word(1), word(2), word(3));
    let mut out = [b'-'; 36];
    out[..8].copy_from_slice(&a);
    out[9..13].copy_from_slice(&b[..4]);
    out[14..18].copy_from_slice(&b[4..]);
    out[19..23].copy_from_slice(&c[..4]);
    out[24..28].copy_from_slice(&c[4..]);
    out[28..].copy_from_slice(&d);
    out
}

/// The 64-bit hash that places a packed UUID in [`Uuids`]: a folded multiply of its halves, with the halves
/// themselves folded in too, so that a half equal to its constant (the product is then 0 whatever the other
/// half) does not put every such UUID in one place.
#[inline(always)]
pub fn hash(packed: u128) -> u64 {
    let (low, high) = (packed as u64, (packed >> 64) as u64);
    let product = u128::from(low ^ 0x243F_6A88_85A3_08D3) * u128::from(high ^ 0x1319_8A2E_0370_7344);
    (product as u64) ^ ((product >> 64) as u64) ^ low.rotate_left(29) ^ high
}

fn shard_of(hash: u64) -> usize {
    (hash >> (64 - SHARD_BITS)) as usize
}

/// Where the hash places its key within the shard (the 32 bits below the shard's).
fn position(hash: u64) -> u32 {
    (hash >> (32 - SHARD_BITS)) as u32
}

/// 32 bits of the hash mixed anew, of which a slot keeps the high ones as its tag.
fn tag(hash: u64) -> u32 {
    (hash.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as u32
}

/// The packed UUID of every UUID code, by code, in pages (marked as such). Other codes keep no value: their
/// hash ([`super::id_hash`]) is made from their key when an hour's dictionary is made
/// ([`super::Interner::hashes_into`]). Until the first UUID nothing is stored at all; from then on every
/// code has a slot (0 for the others), so that a UUID's value is found by its code.
#[derive(Default)]
pub struct Values {
    pages: Vec<Vec<u128>>,
    /// A bit per code: set where the value is a packed UUID.
    uuid: Vec<u64>,
    len: usize,
}

impl Values {
    pub fn len(&self) -> usize {
        self.len
    }

    /// Notes the next code, which is not a UUID (nothing is kept for it while no UUID came before).
    #[inline(always)]
    pub fn push_other(&mut self) {
        if self.pages.is_empty() {
            self.len += 1;
        } else {
            self.push(0, false);
        }
    }

    /// Appends the packed UUID of the next code.
    #[inline(always)]
    pub fn push_uuid(&mut self, packed: u128) {
        if self.pages.is_empty() {
            self.move_to_pages();
        }
        self.push(packed, true);
    }

    #[inline(always)]
    fn push(&mut self, value: u128, is_uuid: bool) {
        let n = self.len;
        if n.is_multiple_of(PAGE) {
            self.pages.push(Vec::with_capacity(PAGE));
        }
        if n.is_multiple_of(64) {
            self.uuid.push(0);
        }
        self.uuid[n / 64] |= u64::from(is_uuid) << (n % 64);
        self.pages.last_mut().expect("a page is open").push(value);
        self.len += 1;
    }

    /// Gives the codes before the first UUID their (empty) slots.
    #[cold]
    fn move_to_pages(&mut self) {
        let before = std::mem::take(&mut self.len);
        for _ in 0..before {
            self.push(0, false);
        }
    }

    #[inline(always)]
    fn get(&self, code: u32) -> u128 {
        self.pages[code as usize >> PAGE_BITS][code as usize % PAGE]
    }

    pub fn prefetch(&self, code: u32) {
        if let Some(value) = self.pages.get(code as usize >> PAGE_BITS).and_then(|p| p.get(code as usize % PAGE)) {
            prefetch(value);
        }
    }

    fn is_uuid(&self, code: u32) -> bool {
        self.uuid.get(code as usize / 64).is_some_and(|w| w >> (code % 64) & 1 == 1)
    }

    /// The key of `code` when it is a UUID.
    pub fn uuid_key(&self, code: u32) -> Option<Vec<u8>> {
        self.is_uuid(code).then(|| unpack(self.get(code)).to_vec())
    }

    /// Calls `f` with the code and key (its text) of each UUID code that `want` wants (a key is only
    /// unpacked when wanted).
    #[inline(always)]
    pub fn for_each_uuid(&self, want: impl Fn(u32) -> bool, mut f: impl FnMut(u32, &[u8])) {
        for (page_no, page) in self.pages.iter().enumerate() {
            let marks = &self.uuid[page_no * PAGE / 64..];
            for (i, &value) in page.iter().enumerate() {
                let code = (page_no * PAGE + i) as u32;
                if marks[i / 64] >> (i % 64) & 1 == 1 && want(code) {
                    f(code, &unpack(value));
                }
            }
        }
    }

    pub fn heap_bytes(&self) -> usize {
        self.pages.iter().map(|p| p.capacity() * 16).sum::<usize>()
            + self.pages.capacity() * 24
            + self.uuid.capacity() * 8
    }
}

/// A shard of [`Uuids`]: open addressing with linear probing; a slot holds `tag bits | (code + 1)`, 0 is
/// free. At most 4/5 full, it grows by half, like the interner's other tables.
#[derive(Default)]
struct Shard {
    slots: Vec<u32>,
    len: usize,
}

impl Shard {
    fn home(&self, hash: u64) -> usize {
        ((u64::from(position(hash)) * self.slots.len() as u64) >> 32) as usize
    }

    fn next(&self, i: usize) -> usize {
        if i + 1 == self.slots.len() {
            0
        } else {
            i + 1
        }
    }

    /// Makes room for one more entry. Growing re-places the entries by the hashes of their packed values,
    /// read from `values` (prefetched a few slots ahead, as they are scattered).
    fn reserve_one(&mut self, values: &Values, codes: u32) {
        if (self.len + 1) * 5 <= self.slots.len() * 4 {
            return;
        }
        let capacity = (self.slots.len() + self.slots.len() / 2).max(16);
        let old = std::mem::replace(&mut self.slots, vec![0; capacity]);
        const AHEAD: usize = 16;
        for (at, &slot) in old.iter().enumerate() {
            if let Some(&ahead) = old.get(at + AHEAD).filter(|&&s| s != 0) {
                values.prefetch((ahead & codes) - 1);
            }
            if slot == 0 {
                continue;
            }
            let mut i = self.home(hash(values.get((slot & codes) - 1)));
            while self.slots[i] != 0 {
                i = self.next(i);
            }
            self.slots[i] = slot;
        }
    }
}

/// Finds the codes of packed UUIDs: a table of 32-bit slots, sharded, whose packed values sit at their
/// codes in [`Values`].
pub struct Uuids {
    shards: Vec<Shard>,
    /// The low bits of a slot that hold `code + 1`; the bits above hold the tag. Widened (clearing the
    /// lowest tag bits of every slot, in place) when a code needs more bits.
    code_bits: u32,
}

impl Default for Uuids {
    fn default() -> Self {
        Uuids { shards: (0..1 << SHARD_BITS).map(|_| Shard::default()).collect(), code_bits: 0 }
    }
}

impl Uuids {
    /// The mask of the code bits of a slot.
    fn codes(&self) -> u32 {
        ((1u64 << self.code_bits) - 1) as u32
    }

    /// Starts loading the slot where the lookup of `hash` begins.
    pub fn prefetch_slot(&self, hash: u64) {
        let shard = &self.shards[shard_of(hash)];
        if !shard.slots.is_empty() {
            prefetch(&shard.slots[shard.home(hash)]);
        }
    }

    /// The code of the first slot whose tag matches `hash`'s among the first few of its probe (a prefetch
    /// hint).
    pub fn candidate(&self, hash: u64) -> Option<u32> {
        let shard = &self.shards[shard_of(hash)];
        if shard.slots.is_empty() {
            return None;
        }
        let codes = self.codes();
        let tag = tag(hash) & !codes;
        let mut i = shard.home(hash);
        for _ in 0..8 {
            let slot = shard.slots[i];
            if slot == 0 {
                return None;
            }
            if slot & !codes == tag {
                return Some((slot & codes) - 1);
            }
            i = shard.next(i);
        }
        None
    }

    /// The code of `packed` (`hash` is its [`hash`]), whose value is found in `values`; else, with room
    /// made for it, the free slot where it goes ([`Uuids::put`]).
    #[inline]
    pub fn find(&mut self, packed: u128, hash: u64, values: &Values) -> Result<u32, usize> {
        let codes = self.codes();
        let shard = &mut self.shards[shard_of(hash)];
        shard.reserve_one(values, codes);
        let tag = tag(hash) & !codes;
        let mut i = shard.home(hash);
        loop {
            let slot = shard.slots[i];
            if slot == 0 {
                return Err(i);
            }
            if slot & !codes == tag {
                let code = (slot & codes) - 1;
                if values.get(code) == packed {
                    return Ok(code);
                }
            }
            i = shard.next(i);
        }
    }

    /// Fills the free slot `i` that [`Uuids::find`] returned for `hash` with `code`.
    pub fn put(&mut self, hash: u64, i: usize, code: u32) {
        let bits = 32 - (code + 1).leading_zeros();
        if bits > self.code_bits {
            // The new code bits leave the tags (in place: no slot moves, so `i` stays free).
            let lost = !self.codes() & ((1u64 << bits) - 1) as u32;
            for slot in self.shards.iter_mut().flat_map(|s| s.slots.iter_mut()) {
                *slot &= !lost;
            }
            self.code_bits = bits;
        }
        let slot = (tag(hash) & !self.codes()) | (code + 1);
        let shard = &mut self.shards[shard_of(hash)];
        debug_assert_eq!(shard.slots[i], 0);
        shard.slots[i] = slot;
        shard.len += 1;
    }

    pub fn heap_bytes(&self) -> usize {
        self.shards.iter().map(|s| s.slots.capacity() * 4).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn random_uuid(x: &mut u64) -> u128 {
        crate::testing::xorshift(x);
        let hi = *x;
        crate::testing::xorshift(x);
        u128::from(hi) << 64 | u128::from(*x)
    }

    fn text(packed: u128) -> String {
        let h = format!("{packed:032x}");
        format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
    }

    #[test]
    fn canonical_uuids_pack_to_their_number_and_back() {
        let mut x = 7u64;
        for n in 0..100_000 {
            let packed = match n {
                0 => 0,
                1 => u128::MAX,
                _ => random_uuid(&mut x),
            };
            let s = text(packed);
            assert_eq!(pack(s.as_bytes()), Some(packed), "{s}");
            assert_eq!(unpack(packed), s.as_bytes());
        }
    }

    #[test]
    fn uuids_with_a_half_equal_to_the_hash_constant_still_spread() {
        // Either half equal to its constant makes the folded product 0: such UUIDs differ in the other half.
        for (low, high) in [(0x243F_6A88_85A3_08D3u64, None), (0, Some(0x1319_8A2E_0370_7344u64))] {
            let hashes: std::collections::HashSet<u64> = (0..1000u64)
                .map(|i| {
                    let other = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
                    let packed = match high {
                        None => u128::from(low) | u128::from(other) << 64,
                        Some(h) => u128::from(other) | u128::from(h) << 64,
                    };
                    hash(packed)
                })
                .collect();
            assert_eq!(hashes.len(), 1000, "distinct hashes");
            let shards: std::collections::HashSet<usize> = hashes.iter().map(|&h| shard_of(h)).collect();
            assert!(shards.len() > 32, "spread over the shards: {}", shards.len());
        }
    }

    #[test]
    fn other_keys_do_not_pack() {
        let good = b"5b427596-5d5b-43cb-847b-42050c33e00b";
        assert!(pack(good).is_some());
        for byte in 0..=255u8 {
            let valid = byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte);
            for at in 0..36 {
                let mut key = *good;
                key[at] = byte;
                let dash = matches!(at, 8 | 13 | 18 | 23);
                let want = if dash { byte == b'-' } else { valid };
                assert_eq!(pack(&key).is_some(), want, "byte {byte:#x} at {at}");
            }
        }
        assert_eq!(pack(b"5B427596-5D5B-43CB-847B-42050C33E00B"), None, "uppercase");
        assert_eq!(pack(&good[..35]), None);
        assert_eq!(pack(&[&good[..], b"0"].concat()), None);
        assert_eq!(pack(b"5b4275965-d5b-43cb-847b-42050c33e00b"), None, "a dash moved");
        assert_eq!(pack(b"5b4275965d5b143cb1847b142050c33e00b0"), None, "no dashes");
    }
}
