//! Ids that end in a number: `ORD-2026112213-0000017`, `C0700680`, `100045678`.
//!
//! Backends mostly number orders and customers from a counter, so the ids of one export share a prefix and
//! their numbers fill a range. Such a key is split into its *family* (the prefix and the number of
//! trailing digits, so `C007` and `C7` stay apart) and its number. A family whose numbers are dense keeps
//! the codes in pages of a plain array indexed by the number: 4 bytes per id, no hashing, and consecutive
//! orders share a cache line. A sparse family (random numbers) keeps them in hash tables of its own,
//! like any other short key. Which one a family uses is decided from its own numbers: it starts sparse, is
//! checked when its size reaches a power of two (from [`DENSE_CHECK_FROM`]), and moves to pages when they
//! would be at least a quarter full; it moves back for good if new pages would leave them below an
//! eighth full.
//!
//! Whether a key is numbered depends on its bytes only (and, for a family not seen before, on whether
//! [`MAX_FAMILIES`] is reached, which never changes back), so a key always takes the same path.

use std::cell::Cell;
use std::collections::HashMap;

use super::{prefetch, short_hash, ShortEntry, Table};

/// Most trailing digits of a numbered key (numbers stay below 10^13, within 44 bits).
pub const MAX_DIGITS: usize = 13;
/// Longest prefix of a numbered key (it is packed with its length into a `u128`).
const MAX_PREFIX: usize = 15;
/// Families an interner keeps; a key of a family beyond these takes the general path.
pub const MAX_FAMILIES: usize = 4096;
/// Numbers per dense page (2 KB of codes).
const PAGE_BITS: u32 = 9;
const PAGE: usize = 1 << PAGE_BITS;
/// A free slot of a dense page (codes stay below `u32::MAX`).
const FREE: u32 = u32::MAX;
/// A sparse family's hash table is sharded, so that growing one shard never holds two copies of it all.
const SHARD_BITS: u32 = 4;
/// The size from which a sparse family is checked for density (at every power of two).
pub const DENSE_CHECK_FROM: usize = 1024;

/// A numbered key: its family and its number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Numbered {
    /// The prefix packed as [`crate::contract::pack`] does (bytes from the lowest, length in the top byte).
    pub prefix: u128,
    pub digits: u8,
    pub number: u64,
}

/// Splits `key` into prefix and trailing number, when it is numbered: 1 to [`MAX_DIGITS`] trailing ASCII
/// digits after a prefix of at most [`MAX_PREFIX`] bytes (which never ends in a digit).
///
/// A key of at least 16 bytes, or of 8 to 15 whose last 8 bytes are not all digits (nearly every id), is
/// read a word at a time ([`split_words`]); the others byte by byte.
#[inline]
pub fn split(key: &[u8]) -> Option<Numbered> {
    match split_words(key) {
        Some(words) => words,
        None => split_bytes(key),
    }
}

/// The high bit of each byte of `word` that is not an ASCII digit.
#[inline(always)]
fn non_digits(word: u64) -> u64 {
    const LOW: u64 = 0x0F0F_0F0F_0F0F_0F0F;
    // A byte is a digit when its high nibble is 3 and its low nibble plus 6 does not reach 16 (no byte
    // carries into the next).
    let x = ((word & !LOW) ^ 0x3030_3030_3030_3030) | (((word & LOW) + 0x0606_0606_0606_0606) & 0x1010_1010_1010_1010);
    // Each nonzero byte to 0x80.
    (((x & 0x7F7F_7F7F_7F7F_7F7F) + 0x7F7F_7F7F_7F7F_7F7F) | x) & 0x8080_8080_8080_8080
}

/// The value of 8 ASCII digits, the first in the lowest byte.
#[inline(always)]
fn eight_digits(word: u64) -> u64 {
    // The arithmetic wraps on purpose (the products' high bits are dropped), also in debug builds.
    let v = word.wrapping_sub(0x3030_3030_3030_3030);
    let v = v.wrapping_mul(10).wrapping_add(v >> 8); // pairs of digits in every other byte
    let v = (v & 0x00FF_0000_00FF)
        .wrapping_mul(100 + (1_000_000 << 32))
        .wrapping_add(((v >> 16) & 0x00FF_0000_00FF).wrapping_mul(1 + (10_000 << 32)));
    v >> 32
}

/// The digits that end `word` (its high bytes) as a number: the bytes below them are replaced by zeros.
#[inline(always)]
fn trailing_number(word: u64, digits: usize) -> u64 {
    let below = u64::MAX.checked_shr(8 * digits as u32).unwrap_or(0);
    eight_digits((word & !below) | (0x3030_3030_3030_3030 & below))
}

/// [`split`] by words: `None` when the key is too short for them to decide.
#[inline(always)]
fn split_words(key: &[u8]) -> Option<Option<Numbered>> {
    let n = key.len();
    let word = |end: usize| u64::from_le_bytes(key[end - 8..end].try_into().expect("8 bytes"));
    if n < 8 {
        return None;
    }
    let last = word(n);
    let mut digits = (non_digits(last).leading_zeros() / 8) as usize;
    let mut number = 0;
    if digits == 8 {
        if n < 16 {
            return None;
        }
        let before = word(n - 8);
        let more = (non_digits(before).leading_zeros() / 8) as usize;
        if more > MAX_DIGITS - 8 {
            return Some(None);
        }
        number = trailing_number(before, more) * 100_000_000;
        digits += more;
    }
    if digits == 0 || n - digits > MAX_PREFIX {
        return Some(None);
    }
    number += trailing_number(last, digits.min(8));
    Some(crate::contract::pack(&key[..n - digits]).map(|prefix| Numbered { prefix, digits: digits as u8, number }))
}

/// [`split`] byte by byte.
fn split_bytes(key: &[u8]) -> Option<Numbered> {
    let n = key.len();
    let digits = key.iter().rev().take(MAX_DIGITS + 1).take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > MAX_DIGITS || n - digits > MAX_PREFIX {
        return None;
    }
    let number = key[n - digits..].iter().fold(0u64, |v, &b| v * 10 + u64::from(b - b'0'));
    let prefix = crate::contract::pack(&key[..n - digits])?;
    Some(Numbered { prefix, digits: digits as u8, number })
}

/// The key a family's number stands for.
fn join(prefix: u128, digits: u8, number: u64) -> Vec<u8> {
    let mut key = prefix_bytes(prefix);
    push_digits(&mut key, number, digits);
    key
}

/// The keys of an interner whose codes are all one family's ([`Families::by_code`]), by code.
pub struct ByCode {
    prefix: Vec<u8>,
    digits: u8,
    base: u64,
    /// Each code's number, less `base`, or [`OTHER`].
    offsets: Vec<u32>,
    /// The codes and keys of the few keys of no family.
    others: Vec<(u32, Vec<u8>)>,
}

/// The offset of a code of no family.
const OTHER: u32 = u32::MAX;

impl ByCode {
    /// Sets `out[i]` to the [`super::id_hash`] of the key of the `i`-th of `codes`, in order.
    pub fn hashes_into(&self, codes: impl Iterator<Item = u32>, out: &mut [u128]) {
        let mut key = self.key_buffer();
        for (slot, code) in out.iter_mut().zip(codes) {
            *slot = super::id_hash(self.key_in(code, &mut key));
        }
    }

    /// Sets `out[at(code)]` to the hash of each code's key for which `at` gives a place.
    pub fn hashes_where(&self, at: impl Fn(u32) -> Option<usize>, out: &mut [u128]) {
        let mut key = self.key_buffer();
        for code in 0..self.offsets.len() as u32 {
            if let Some(p) = at(code) {
                out[p] = super::id_hash(self.key_in(code, &mut key));
            }
        }
    }

    /// The key of `code`.
    pub fn key(&self, code: u32) -> Vec<u8> {
        self.key_in(code, &mut self.key_buffer()).to_vec()
    }

    /// A buffer for [`ByCode::key_in`]: the family's prefix, written once.
    fn key_buffer(&self) -> [u8; MAX_PREFIX + MAX_DIGITS] {
        let mut key = [0u8; MAX_PREFIX + MAX_DIGITS];
        key[..self.prefix.len()].copy_from_slice(&self.prefix);
        key
    }

    /// The key of `code`: its digits written after the prefix in `key` (from [`ByCode::key_buffer`]), or
    /// one of the others'.
    #[inline]
    fn key_in<'k>(&'k self, code: u32, key: &'k mut [u8; MAX_PREFIX + MAX_DIGITS]) -> &'k [u8] {
        match self.offsets[code as usize] {
            OTHER => self.other(code),
            offset => {
                let (start, end) = (self.prefix.len(), self.prefix.len() + usize::from(self.digits));
                write_digits(&mut key[start..end], self.base + u64::from(offset));
                &key[..end]
            }
        }
    }

    /// The key of `code`, a code of no family.
    fn other(&self, code: u32) -> &[u8] {
        &self.others.iter().find(|(c, _)| *c == code).expect("a code of no family is listed").1
    }

    pub fn heap_bytes(&self) -> usize {
        self.offsets.capacity() * 4 + self.others.iter().map(|(_, k)| k.capacity() + 32).sum::<usize>()
    }
}

/// Adds one to the decimal digits `digits` in place; false when they were all nines.
fn count_up(digits: &mut [u8]) -> bool {
    for d in digits.iter_mut().rev() {
        if *d < b'9' {
            *d += 1;
            return true;
        }
        *d = b'0';
    }
    false
}

/// Appends `number` as `digits` decimal digits, zero-padded (the number has at most that many).
fn push_digits(out: &mut Vec<u8>, number: u64, digits: u8) {
    let start = out.len();
    out.resize(start + usize::from(digits), b'0');
    write_digits(&mut out[start..], number);
}

/// Writes `number` into `out` as decimal digits, zero-padded (it has at most `out.len()` of them), two at a
/// time.
#[inline]
fn write_digits(out: &mut [u8], mut number: u64) {
    const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819202122232425262728293031323334353637383940414243444546474849\
                                5051525354555657585960616263646566676869707172737475767778798081828384858687888990919293949596979899";
    let mut end = out.len();
    while end >= 2 {
        let pair = (number % 100) as usize * 2;
        number /= 100;
        out[end - 2..end].copy_from_slice(&PAIRS[pair..pair + 2]);
        end -= 2;
    }
    if end == 1 {
        out[0] = b'0' + (number % 10) as u8;
    }
}

/// The bytes of a packed prefix.
fn prefix_bytes(prefix: u128) -> Vec<u8> {
    prefix.to_le_bytes()[..(prefix >> 120) as usize].to_vec()
}

/// Where a family keeps its codes.
enum Store {
    /// Hash tables of (number + 1, code), sharded.
    Sparse(Vec<Table<ShortEntry>>),
    Dense(Dense),
}

/// Pages of codes indexed by number: page `number >> PAGE_BITS`, slot `number % PAGE`.
struct Dense {
    directory: HashMap<u64, u32, foldhash::fast::FixedState>,
    pages: Vec<Box<[u32]>>,
    /// The last page looked up (page number, index): consecutive orders share a page.
    last: Cell<(u64, u32)>,
}

impl Dense {
    fn page(&self, page_no: u64) -> Option<usize> {
        let (no, index) = self.last.get();
        if no == page_no {
            return Some(index as usize);
        }
        let index = *self.directory.get(&page_no)?;
        self.last.set((page_no, index));
        Some(index as usize)
    }

    fn add_page(&mut self, page_no: u64) -> usize {
        let index = self.pages.len();
        self.pages.push(vec![FREE; PAGE].into_boxed_slice());
        self.directory.insert(page_no, index as u32);
        index
    }

    /// Every (number, code) held.
    fn entries(&self) -> impl Iterator<Item = (u64, u32)> + '_ {
        self.directory.iter().flat_map(move |(&page_no, &index)| {
            self.pages[index as usize]
                .iter()
                .enumerate()
                .filter(|(_, &code)| code != FREE)
                .map(move |(at, &code)| (page_no << PAGE_BITS | at as u64, code))
        })
    }
}

fn page_of(number: u64) -> (u64, usize) {
    (number >> PAGE_BITS, (number & (PAGE as u64 - 1)) as usize)
}

/// The table key of a number in a sparse family (0 marks a free slot), and its hash.
fn sparse_key(number: u64) -> (u64, u64) {
    (number + 1, short_hash(number + 1))
}

fn shard_of(hash: u64) -> usize {
    (hash >> (64 - SHARD_BITS)) as usize
}

fn sparse_tables() -> Vec<Table<ShortEntry>> {
    (0..1 << SHARD_BITS).map(|_| Table::default()).collect()
}

/// The numbers (and codes) of one prefix and digit count.
struct Family {
    prefix: u128,
    digits: u8,
    len: usize,
    store: Store,
    /// Cleared when the family left pages for lack of density: it stays sparse.
    may_be_dense: bool,
}

impl Family {
    fn new(prefix: u128, digits: u8) -> Self {
        Family { prefix, digits, len: 0, store: Store::Sparse(sparse_tables()), may_be_dense: true }
    }

    fn prefetch(&self, number: u64) {
        match &self.store {
            Store::Sparse(tables) => {
                let (_, hash) = sparse_key(number);
                let table = &tables[shard_of(hash)];
                if let Some(home) = table.home_or_none(hash as u32) {
                    prefetch(&table.slots[home]);
                }
            }
            Store::Dense(dense) => {
                let (page_no, at) = page_of(number);
                if let Some(index) = dense.page(page_no) {
                    prefetch(&dense.pages[index][at]);
                }
            }
        }
    }

    /// The code of `number`, taking `new_code()` for a number not seen before.
    fn intern(&mut self, number: u64, new_code: &mut dyn FnMut() -> u32) -> u32 {
        match &mut self.store {
            Store::Dense(dense) => {
                let (page_no, at) = page_of(number);
                let index = match dense.page(page_no) {
                    Some(index) => index,
                    // (A family reaches pages with at least 1024 ids a quarter full, so this bounds pages at
                    // 32 bytes per id from the start, whatever numbers follow.)
                    None if (dense.pages.len() + 1) * PAGE > 8 * (self.len + 1) => {
                        // A new page would leave them less than an eighth full: hash tables from now on.
                        self.move_to_sparse();
                        return self.intern(number, new_code);
                    }
                    None => dense.add_page(page_no),
                };
                let slot = &mut dense.pages[index][at];
                if *slot == FREE {
                    *slot = new_code();
                    self.len += 1;
                }
                *slot
            }
            Store::Sparse(tables) => {
                let (key, hash) = sparse_key(number);
                let table = &mut tables[shard_of(hash)];
                let i = match table.find(key, hash) {
                    Ok(code) => return code,
                    Err(i) => i,
                };
                let code = new_code();
                table.put(i, key, code);
                self.len += 1;
                if self.may_be_dense && self.len >= DENSE_CHECK_FROM && self.len.is_power_of_two() {
                    self.maybe_move_to_pages();
                }
                code
            }
        }
    }

    fn sparse_entries(tables: &[Table<ShortEntry>]) -> impl Iterator<Item = (u64, u32)> + '_ {
        tables.iter().flat_map(|t| &t.slots).filter(|e| e.key != 0).map(|e| (e.key - 1, e.code))
    }

    /// Moves the codes to pages when those would be at least a quarter full.
    fn maybe_move_to_pages(&mut self) {
        let Store::Sparse(tables) = &self.store else { return };
        // Counting stops as soon as the pages would be too many, so the set stays at len / 128 entries.
        let mut pages: std::collections::HashSet<u64, foldhash::fast::FixedState> = Default::default();
        for (number, _) in Family::sparse_entries(tables) {
            pages.insert(page_of(number).0);
            if pages.len() * PAGE > 4 * self.len {
                return;
            }
        }
        let mut dense = Dense { directory: HashMap::default(), pages: Vec::new(), last: Cell::new((u64::MAX, 0)) };
        for (number, code) in Family::sparse_entries(tables) {
            let (page_no, at) = page_of(number);
            let index = dense.page(page_no).unwrap_or_else(|| dense.add_page(page_no));
            dense.pages[index][at] = code;
        }
        self.store = Store::Dense(dense);
    }

    fn move_to_sparse(&mut self) {
        let Store::Dense(dense) = &self.store else { return };
        let mut tables = sparse_tables();
        for (number, code) in dense.entries() {
            let (key, hash) = sparse_key(number);
            let table = &mut tables[shard_of(hash)];
            if let Err(i) = table.find(key, hash) {
                table.put(i, key, code);
            }
        }
        self.store = Store::Sparse(tables);
        self.may_be_dense = false;
    }

    fn number_of(&self, code: u32) -> Option<u64> {
        match &self.store {
            Store::Sparse(tables) => Family::sparse_entries(tables).find(|&(_, c)| c == code).map(|(n, _)| n),
            Store::Dense(dense) => dense.entries().find(|&(_, c)| c == code).map(|(n, _)| n),
        }
    }

    fn heap_bytes(&self) -> usize {
        match &self.store {
            Store::Sparse(tables) => {
                tables.iter().map(|t| t.slots.capacity() * size_of::<ShortEntry>()).sum::<usize>()
                    + tables.capacity() * size_of::<Table<ShortEntry>>()
            }
            Store::Dense(dense) => {
                dense.pages.len() * PAGE * 4 + dense.pages.capacity() * 16 + dense.directory.capacity() * 16
            }
        }
    }
}

/// The families of one interner.
#[derive(Default)]
pub struct Families {
    list: Vec<Family>,
    index: HashMap<(u128, u8), u32, foldhash::fast::FixedState>,
    /// The last family looked up: an interner's keys mostly share one.
    last: Cell<Option<(u128, u8, u32)>>,
}

impl Families {
    /// The family of a numbered key, when it exists.
    pub fn find(&self, key: &Numbered) -> Option<u32> {
        if let Some((prefix, digits, family)) = self.last.get() {
            if (prefix, digits) == (key.prefix, key.digits) {
                return Some(family);
            }
        }
        let family = *self.index.get(&(key.prefix, key.digits))?;
        self.last.set(Some((key.prefix, key.digits, family)));
        Some(family)
    }

    /// Whether a new family can be added.
    pub fn has_room(&self) -> bool {
        self.list.len() < MAX_FAMILIES
    }

    /// The family of a numbered key, added when new and there is room.
    pub fn find_or_add(&mut self, key: &Numbered) -> Option<u32> {
        if let Some(family) = self.find(key) {
            return Some(family);
        }
        if !self.has_room() {
            return None;
        }
        let family = self.list.len() as u32;
        self.list.push(Family::new(key.prefix, key.digits));
        self.index.insert((key.prefix, key.digits), family);
        Some(family)
    }

    pub fn prefetch(&self, family: u32, number: u64) {
        self.list[family as usize].prefetch(number);
    }

    pub fn intern(&mut self, family: u32, number: u64, new_code: &mut dyn FnMut() -> u32) -> u32 {
        self.list[family as usize].intern(number, new_code)
    }

    /// The key of a code held by a family (a scan: for tests and debugging).
    pub fn key(&self, code: u32) -> Option<Vec<u8>> {
        self.list.iter().find_map(|f| f.number_of(code).map(|n| join(f.prefix, f.digits, n)))
    }

    /// Each code's number, when the interner's `len` codes are keys of one family held in pages (a
    /// backend's counter), with numbers less than 2^32 apart, but for at most `max_others` others (code and
    /// key, such as the guests' empty customer id, given by `others`): what makes the keys in code order
    /// ([`ByCode`]), 4 bytes a code, built once after aggregation.
    pub fn by_code(
        &self,
        len: usize,
        max_others: usize,
        others: impl FnOnce() -> Vec<(u32, Vec<u8>)>,
    ) -> Option<ByCode> {
        let [family] = self.list.as_slice() else { return None };
        let Store::Dense(dense) = &family.store else { return None };
        if len - family.len > max_others {
            return None;
        }
        let (first, last) = (*dense.directory.keys().min()?, *dense.directory.keys().max()?);
        let base = first << PAGE_BITS;
        if ((last + 1) << PAGE_BITS) - base > u64::from(u32::MAX) {
            return None;
        }
        let mut offsets = vec![OTHER; len];
        for (number, code) in dense.entries() {
            offsets[code as usize] = (number - base) as u32;
        }
        let others = others();
        debug_assert_eq!(family.len + others.len(), len, "every code is the family's or listed");
        Some(ByCode { prefix: prefix_bytes(family.prefix), digits: family.digits, base, offsets, others })
    }

    /// Sets `out[at(code)]` to the [`super::id_hash`] of each family key whose code `at` gives a place.
    pub fn hashes_into(&self, at: &impl Fn(u32) -> Option<usize>, out: &mut [u128]) {
        let mut put = |code: u32, key: &[u8]| {
            if let Some(p) = at(code) {
                out[p] = super::id_hash(key);
            }
        };
        let mut key = Vec::with_capacity(MAX_PREFIX + MAX_DIGITS);
        for family in &self.list {
            key.clear();
            key.extend_from_slice(&prefix_bytes(family.prefix));
            let start = key.len();
            match &family.store {
                Store::Sparse(tables) => {
                    for (number, code) in Family::sparse_entries(tables) {
                        key.truncate(start);
                        push_digits(&mut key, number, family.digits);
                        put(code, &key);
                    }
                }
                // A page's numbers are consecutive: its first number is written out once, and counted up in
                // place from there.
                Store::Dense(dense) => {
                    for (&page_no, &index) in &dense.directory {
                        key.truncate(start);
                        push_digits(&mut key, page_no << PAGE_BITS, family.digits);
                        for (at, &code) in dense.pages[index as usize].iter().enumerate() {
                            if at > 0 && !count_up(&mut key[start..]) {
                                break; // past the family's largest number
                            }
                            if code != FREE {
                                put(code, &key);
                            }
                        }
                    }
                }
            }
        }
    }

    /// Families whose codes sit in pages (for tests and the state log).
    pub fn dense(&self) -> usize {
        self.list.iter().filter(|f| matches!(f.store, Store::Dense(_))).count()
    }

    pub fn heap_bytes(&self) -> usize {
        self.list.iter().map(Family::heap_bytes).sum::<usize>()
            + self.list.capacity() * size_of::<Family>()
            + self.index.capacity() * 32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::intern::Interner;

    #[test]
    fn digits_are_written_zero_padded_to_their_width() {
        for digits in 1..=MAX_DIGITS as u8 {
            let max = 10u64.pow(u32::from(digits)) - 1;
            for number in [0, 1, 9, 10, 99, 100, 12_345, 9_999_999_999_999, max / 3, max - 1, max] {
                if number <= max {
                    let mut key = b"P-".to_vec();
                    push_digits(&mut key, number, digits);
                    assert_eq!(key, format!("P-{number:0width$}", width = usize::from(digits)).into_bytes());
                }
            }
        }
    }

    #[test]
    fn numbered_keys_split_into_family_and_number() {
        let s = |key: &str| split(key.as_bytes()).map(|n| (n.prefix, n.digits, n.number));
        let prefix = |key: &str| split(key.as_bytes()).map(|n| String::from_utf8(prefix_bytes(n.prefix)).unwrap());
        assert_eq!(prefix("ORD-2026112213-0000017").as_deref(), Some("ORD-2026112213-"));
        assert_eq!(s("ORD-2026112213-0000017").map(|(_, d, n)| (d, n)), Some((7, 17)));
        assert_eq!(s("C0700680").map(|(_, d, n)| (d, n)), Some((7, 700680)));
        assert_eq!(prefix("100045678").as_deref(), Some(""), "all digits: an empty prefix");
        assert_eq!(s("0").map(|(_, d, n)| (d, n)), Some((1, 0)));
        assert_eq!(s("9999999999999").map(|(_, d, n)| (d, n)), Some((13, 9_999_999_999_999)));
        for general in ["", "abc", "12a", "x12345678901234", "abcdefghijklmnop1", "ORD-1-", "ü"] {
            assert_eq!(split(general.as_bytes()), None, "{general:?} is not numbered");
        }
        assert!(split(b"abcdefghijklmno1").is_some(), "a 15-byte prefix is packed");
        // Leading zeros make other families: C7, C07 and C007 are three ids.
        let [a, b, c] = ["C7", "C07", "C007"].map(|k| split(k.as_bytes()).unwrap());
        assert_eq!((a.number, b.number, c.number), (7, 7, 7));
        assert!(a.digits != b.digits && b.digits != c.digits);
        // Word by word as byte by byte: keys of every length up to 24 from digits and the bytes around
        // them, and every 8-digit run.
        let alphabet = b"0123456789/:-A ";
        let mut x = 88172645463325252u64;
        for round in 0..200_000 {
            crate::testing::xorshift(&mut x);
            let len = (x % 25) as usize;
            let digits_from = (x >> 8) as usize % (len + 1);
            let key: Vec<u8> = (0..len)
                .map(|i| {
                    let r = (x >> (16 + i % 40)) as usize ^ (i * 7) ^ round;
                    if i >= digits_from {
                        b'0' + (r % 10) as u8
                    } else {
                        alphabet[r % alphabet.len()]
                    }
                })
                .collect();
            assert_eq!(split(&key), split_bytes(&key), "{:?}", String::from_utf8_lossy(&key));
        }
        for v in [0u64, 1, 9, 10, 12345678, 99999999, 10000000, 90817263] {
            assert_eq!(eight_digits(u64::from_le_bytes(format!("{v:08}").as_bytes().try_into().unwrap())), v);
        }
        for key in ["C0700680", "ORD-2026112213-0000017", "0", "00", "1-2-3", "ü-042"] {
            let n = split(key.as_bytes()).unwrap();
            assert_eq!(join(n.prefix, n.digits, n.number), key.as_bytes());
        }
    }

    /// Interns `keys` twice, checking every code against a plain map of first appearances.
    fn check_exact(i: &mut Interner, keys: &[String]) {
        let mut reference: HashMap<&str, u32> = HashMap::new();
        for round in 0..2 {
            for k in keys {
                let next = reference.len() as u32;
                let want = *reference.entry(k).or_insert(next);
                assert_eq!(i.intern(k.as_bytes()), want, "round {round}, key {k}");
            }
        }
        for (k, &code) in reference.iter().step_by(37) {
            assert_eq!(i.key(code), k.as_bytes(), "code {code}");
        }
        assert_eq!(i.len(), reference.len());
    }

    #[test]
    fn sequential_numbers_move_to_pages_and_random_ones_stay_hashed() {
        let mut x = 88172645463325252u64;
        let mut random = move |below: u64| {
            crate::testing::xorshift(&mut x);
            x % below
        };
        let mut keys = Vec::new();
        for n in 0..20_000u64 {
            // Two hours of sequential orders, interleaved; customers in a range they fill (dense only once
            // enough of them are seen); ids from a huge range (sparse for good); a few other shapes.
            keys.push(format!("ORD-2026112213-{:07}", n));
            if n % 3 == 0 {
                keys.push(format!("ORD-2026112214-{:07}", n / 3));
            }
            keys.push(format!("C{:07}", random(12_000)));
            keys.push(format!("R{}", random(1 << 40)));
            keys.push(["guest", "", "c-x", "a-much-longer-id-without-digits"][n as usize % 4].to_string());
            keys.push(format!("C{}", n % 50)); // same numbers, other digit counts than C0000007
        }
        let mut i = Interner::default();
        check_exact(&mut i, &keys);
        assert_eq!(i.dense_families(), 3, "both order hours and the filled customer range");
        let per_id = i.families.heap_bytes() as f64 / i.len() as f64;
        assert!(per_id < 24.0, "{per_id:.1} bytes per id");
    }

    #[test]
    fn a_family_that_thins_out_leaves_pages_for_good() {
        // Dense at first (sequential), then numbers far apart: new pages would be almost empty, so the
        // family moves to hash tables, and stays there whatever comes next.
        let mut keys: Vec<String> = (0..2048).map(|n| format!("ID{n:08}")).collect();
        keys.extend((0..3000u64).map(|n| format!("ID{:08}", 10_000 + n * 9973 % 90_000_000)));
        keys.extend((2048..6000).map(|n| format!("ID{n:08}")));
        let mut i = Interner::default();
        for k in &keys[..2048] {
            i.intern(k.as_bytes());
        }
        assert_eq!(i.dense_families(), 1);
        // Far-apart numbers leave the pages once they would be less than an eighth full: after about 30
        // of them here (4 pages of 2048 ids), not after some fixed number of pages.
        for k in &keys[2048..2048 + 40] {
            i.intern(k.as_bytes());
        }
        assert_eq!(i.dense_families(), 0, "left the pages within 40 scattered ids");
        check_exact(&mut i, &keys);
        assert_eq!(i.dense_families(), 0);
        assert!(!i.families.list[0].may_be_dense);
    }

    #[test]
    fn beyond_the_last_family_keys_take_the_general_path() {
        let keys: Vec<String> = (0..MAX_FAMILIES + 500).flat_map(|f| [format!("F{f}-1"), format!("F{f}-22")]).collect();
        let mut i = Interner::default();
        check_exact(&mut i, &keys);
        assert_eq!(i.families.list.len(), MAX_FAMILIES);
        assert!(!i.families.has_room());
        assert!(matches!(i.probe(b"F1-1"), crate::aggregate::intern::Probe::Numbered { .. }));
        assert!(matches!(i.probe(b"F5000-1"), crate::aggregate::intern::Probe::Short(_)));
        assert!(matches!(i.probe(b"F5000-0000001"), crate::aggregate::intern::Probe::Long(_)));
    }
}
