//! [`IdSet`]: the set of distinct ids (order, customer or sku codes) of one group in the engine.
//!
//! A group of a table with many groups (channel_performance by campaign, on data whose ids are spread
//! over the whole code range) holds a few dozen ids an hour, each in a different 65536-wide container of
//! a Roaring bitmap: as a bitmap, every id costs a container (a header in the bitmap's vector and an
//! array allocation of its own), and unions, iteration and drops walk those containers. Such a set is kept
//! as a sorted vector of its ids instead (4 bytes an id, one allocation). A set whose ids share containers
//! enough that a bitmap is smaller ([`prefers_bitmap`]: about two bytes an id plus a container's cost)
//! becomes a bitmap, and stays one; the large groups of tables with few groups are bitmaps, as before.
//! The measurements behind the choice are in docs/benchmarks.md ("Design decisions and their
//! measurements").

use roaring::{MultiOps, RoaringBitmap};

/// A set of `u32` ids: a sorted vector without repeats while small or sparse, a Roaring bitmap once that
/// is smaller ([`prefers_bitmap`]).
#[derive(Clone, Debug)]
pub enum IdSet {
    /// Ascending, no repeats.
    Small(Vec<u32>),
    Big(RoaringBitmap),
}

impl Default for IdSet {
    fn default() -> Self {
        IdSet::Small(Vec::new())
    }
}

impl PartialEq for IdSet {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

/// Bytes a Roaring bitmap spends per container besides its values: the container in the bitmap's vector
/// and the allocator's overhead of the container's own array.
const CONTAINER_BYTES: usize = std::mem::size_of::<(u16, Vec<u16>)>() + 16;

/// Vectors shorter than this stay vectors whatever their ids.
const MIN_BITMAP_IDS: usize = 64;

/// Whether a set of `ids` ids in `containers` of Roaring's containers takes less memory as a bitmap (two
/// bytes an id in array containers plus [`CONTAINER_BYTES`] per container) than as a vector (four bytes an
/// id), and is long enough to be one.
fn bitmap_is_smaller(ids: usize, containers: usize) -> bool {
    ids >= MIN_BITMAP_IDS && containers <= 2 * ids / CONTAINER_BYTES
}

/// Whether `ids` (ascending, no repeats) take less memory as a Roaring bitmap ([`bitmap_is_smaller`]).
fn prefers_bitmap(ids: &[u32]) -> bool {
    if ids.len() < MIN_BITMAP_IDS {
        return false;
    }
    // The containers counted one jump at a time, no further than the bitmap's budget.
    let budget = 2 * ids.len() / CONTAINER_BYTES;
    bitmap_is_smaller(ids.len(), container_runs(ids).take(budget + 1).count())
}

/// Where the runs of `ids` (ascending) that share their high 16 bits are: Roaring's containers of them,
/// each found by binary search.
fn container_runs(ids: &[u32]) -> impl Iterator<Item = std::ops::Range<usize>> + '_ {
    let mut start = 0;
    std::iter::from_fn(move || {
        let &first = ids.get(start)?;
        let end = start + ids[start..].partition_point(|&id| id >> 16 == first >> 16);
        Some(std::mem::replace(&mut start, end)..end)
    })
}

/// Reused buffers of [`IdSet::extend_sorted`] and [`IdSet::union`].
#[derive(Default)]
pub struct SetScratch {
    /// The serialized bitmap of [`bitmap_of_sorted`], and where its containers' ids are.
    bytes: Vec<u8>,
    containers: Vec<std::ops::Range<usize>>,
    /// Ids gathered for a union, and the second buffer of their sort.
    ids: Vec<u32>,
    spare: Vec<u32>,
}

/// Lists of at least this many ids are made a bitmap in bulk ([`bitmap_of_sorted`]) before they are merged
/// into a bitmap.
const BULK_IDS: usize = 64;

/// The ids of an [`IdSet`], ascending.
pub enum Iter<'a> {
    Small(std::iter::Copied<std::slice::Iter<'a, u32>>),
    Big(roaring::bitmap::Iter<'a>),
}

impl Iterator for Iter<'_> {
    type Item = u32;

    #[inline]
    fn next(&mut self) -> Option<u32> {
        match self {
            Iter::Small(i) => i.next(),
            Iter::Big(i) => i.next(),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            Iter::Small(i) => i.size_hint(),
            Iter::Big(i) => i.size_hint(),
        }
    }

    fn for_each<F: FnMut(u32)>(self, f: F) {
        match self {
            Iter::Small(i) => i.for_each(f),
            Iter::Big(i) => i.for_each(f),
        }
    }
}

/// The ids of an [`IdSet`], ascending, a slice at a time ([`IdSet::slices_from`]).
pub enum Slices<'a> {
    Small(&'a [u32]),
    Big(roaring::bitmap::Iter<'a>),
}

impl<'a> Slices<'a> {
    /// The next ids, at most `buf.len()` of them (a vector's are not copied); empty at the end.
    #[inline]
    pub fn next<'b>(&'b mut self, buf: &'b mut [u32]) -> &'b [u32]
    where
        'a: 'b,
    {
        match self {
            Slices::Small(ids) => {
                let (now, rest) = ids.split_at(ids.len().min(buf.len()));
                *ids = rest;
                now
            }
            Slices::Big(iter) => iter.next_many(buf),
        }
    }
}

impl FromIterator<u32> for IdSet {
    /// The set of ids in any order, repeats allowed.
    fn from_iter<I: IntoIterator<Item = u32>>(iter: I) -> Self {
        let mut ids: Vec<u32> = iter.into_iter().collect();
        ids.sort_unstable();
        ids.dedup();
        IdSet::from_sorted(ids, &mut SetScratch::default())
    }
}

impl IdSet {
    /// The set of `ids` (ascending, no repeats), in the form [`prefers_bitmap`] chooses.
    pub fn from_sorted(ids: Vec<u32>, scratch: &mut SetScratch) -> IdSet {
        debug_assert!(ids.windows(2).all(|w| w[0] < w[1]));
        if prefers_bitmap(&ids) {
            IdSet::Big(bitmap_of_sorted(&ids, &mut scratch.bytes, &mut scratch.containers))
        } else {
            IdSet::Small(ids)
        }
    }

    /// The set of a bitmap's ids, in the form [`prefers_bitmap`] chooses.
    pub fn from_bitmap(bitmap: RoaringBitmap) -> IdSet {
        // The same test as [`prefers_bitmap`], on the bitmap's own containers.
        if bitmap_is_smaller(bitmap.len() as usize, bitmap.statistics().n_containers as usize) {
            IdSet::Big(bitmap)
        } else {
            IdSet::Small(bitmap.iter().collect())
        }
    }

    /// Writes the length of the set's bytes (u32, little-endian), then the set in Roaring's portable
    /// serialization: the bytes the crate writes for a bitmap of the same ids (a vector is never a bitmap
    /// with run containers: those come only from ranges inserted or full containers, which the engine never
    /// makes of a vector's ids). A vector is serialized once, into the scratch buffer, for both.
    pub fn serialize_sized_into(&self, out: &mut impl std::io::Write, scratch: &mut SetScratch) -> std::io::Result<()> {
        match self {
            IdSet::Small(ids) => serialize_sorted_sized_into(ids, out, scratch),
            IdSet::Big(b) => {
                out.write_all(&(b.serialized_size() as u32).to_le_bytes())?;
                b.serialize_into(out)
            }
        }
    }

    /// Sets `ids` to `f(id)` for each id, ascending, where `f` is strictly increasing (codes to dictionary
    /// positions), to be written with [`serialize_sorted_sized_into`] or made a set with
    /// [`IdSet::from_sorted`]. Always inlined, so that `f` is inlined into its loop even where the caller is
    /// compiled with more target features than the crate's baseline.
    #[inline(always)]
    pub fn map_increasing_into(&self, f: impl Fn(u32) -> u32, ids: &mut Vec<u32>) {
        ids.clear();
        ids.reserve(self.len() as usize);
        self.for_each_slice(|batch| ids.extend(batch.iter().map(|&id| f(id))));
        // Checked in release builds too (one compare an id): a set out of order would be stored as a partial
        // that cannot be read back.
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "a mapping said to be increasing is not");
    }

    /// Calls `f` with the set's ids, ascending, a slice at a time: a vector's at once, a bitmap's in batches
    /// the crate reads in bulk (its iterator's `next` walks three levels of iterators per id). Always
    /// inlined, like [`IdSet::map_increasing_into`].
    #[inline(always)]
    pub fn for_each_slice(&self, mut f: impl FnMut(&[u32])) {
        match self {
            IdSet::Small(ids) => f(ids),
            IdSet::Big(b) => {
                let mut batch = [0u32; 1024];
                let mut iter = b.iter();
                loop {
                    let ids = iter.next_many(&mut batch);
                    if ids.is_empty() {
                        break;
                    }
                    f(ids);
                }
            }
        }
    }

    /// The ids from the `skip`-th on, to be taken a slice at a time ([`Slices::next`]).
    pub fn slices_from(&self, skip: usize) -> Slices<'_> {
        match self {
            IdSet::Small(ids) => Slices::Small(ids.get(skip..).unwrap_or_default()),
            IdSet::Big(b) => {
                let mut iter = b.iter();
                if skip > 0 {
                    // The id at that place, found a container at a time; past the end, nothing is left.
                    let Some(first) = u32::try_from(skip).ok().and_then(|n| b.select(n)) else {
                        return Slices::Small(&[]);
                    };
                    iter.advance_to(first);
                }
                Slices::Big(iter)
            }
        }
    }

    pub fn len(&self) -> u64 {
        match self {
            IdSet::Small(ids) => ids.len() as u64,
            IdSet::Big(b) => b.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        match self {
            IdSet::Small(ids) => ids.is_empty(),
            IdSet::Big(b) => b.is_empty(),
        }
    }

    pub fn max(&self) -> Option<u32> {
        match self {
            IdSet::Small(ids) => ids.last().copied(),
            IdSet::Big(b) => b.max(),
        }
    }

    /// The ids, ascending.
    pub fn iter(&self) -> Iter<'_> {
        match self {
            IdSet::Small(ids) => Iter::Small(ids.iter().copied()),
            IdSet::Big(b) => Iter::Big(b.iter()),
        }
    }

    /// The set as a Roaring bitmap (the same as the crate builds from the ids).
    pub fn into_bitmap(self, scratch: &mut SetScratch) -> RoaringBitmap {
        match self {
            IdSet::Small(ids) => bitmap_of_sorted(&ids, &mut scratch.bytes, &mut scratch.containers),
            IdSet::Big(b) => b,
        }
    }

    /// Heap bytes held, allocated capacity included.
    pub fn heap_bytes(&self) -> usize {
        match self {
            IdSet::Small(ids) => ids.capacity() * 4,
            IdSet::Big(b) => {
                // roaring 0.12's statistics count array capacity as 4-byte values (they are u16) and bitset
                // containers as one byte per bit; the real sizes are half and an eighth of those.
                let s = b.statistics();
                let containers = s.n_containers as usize * std::mem::size_of::<(u16, Vec<u16>)>();
                let stores =
                    s.n_bytes_array_containers / 2 + u64::from(s.n_bitset_containers) * 8192 + s.n_bytes_run_containers;
                containers + stores as usize
            }
        }
    }

    /// Adds one id.
    pub fn insert(&mut self, id: u32) {
        match self {
            IdSet::Small(ids) => {
                if let Err(at) = ids.binary_search(&id) {
                    ids.insert(at, id);
                }
            }
            IdSet::Big(b) => {
                b.insert(id);
            }
        }
    }

    /// Adds `ids` (ascending, no repeats).
    pub fn extend_sorted(&mut self, ids: &[u32], scratch: &mut SetScratch) {
        debug_assert!(ids.windows(2).all(|w| w[0] < w[1]));
        let Some(&first) = ids.first() else { return };
        match self {
            IdSet::Small(set) => {
                let before = set.len();
                if set.last().is_none_or(|&max| max < first) {
                    // New ids above everything in the set (the common case for orders) are appended.
                    set.extend_from_slice(ids);
                } else {
                    merge_sorted_into(set, ids);
                }
                // Checked each time the length passes a power of two (at most ~30 times over a set's life).
                if set.len() >= MIN_BITMAP_IDS && set.len().ilog2() > before.max(1).ilog2() && prefers_bitmap(set) {
                    *self = IdSet::Big(bitmap_of_sorted(set, &mut scratch.bytes, &mut scratch.containers));
                }
            }
            IdSet::Big(set) => {
                if ids.len() >= BULK_IDS {
                    *set |= bitmap_of_sorted(ids, &mut scratch.bytes, &mut scratch.containers);
                } else if set.max().is_none_or(|max| max < first) {
                    set.append(ids.iter().copied()).expect("sorted, deduplicated and above the set's maximum");
                } else {
                    *set |= RoaringBitmap::from_sorted_iter(ids.iter().copied()).expect("sorted and deduplicated");
                }
            }
        }
    }

    /// The union of `sets`: the vectors' ids gathered, and marked in a bit set when they are many over a
    /// dense code range ([`dense_bitmap`]) or sorted otherwise; the bitmaps unioned in one pass over their
    /// containers; in the form [`prefers_bitmap`] chooses.
    pub fn union<'a>(sets: impl IntoIterator<Item = &'a IdSet>, scratch: &mut SetScratch) -> IdSet {
        let mut bitmaps = Vec::new();
        let ids = &mut scratch.ids;
        ids.clear();
        let mut small = 0;
        let mut only = None;
        for set in sets {
            match set {
                IdSet::Small(v) if v.is_empty() => {}
                IdSet::Small(v) => {
                    ids.extend_from_slice(v);
                    small += 1;
                    only = Some(v);
                }
                IdSet::Big(b) => bitmaps.push(b),
            }
        }
        match (small, bitmaps.len()) {
            (0, 0) => return IdSet::default(),
            (1, 0) => return IdSet::Small(only.expect("one vector").clone()),
            (0, 1) => return IdSet::Big(bitmaps[0].clone()),
            _ => {}
        }
        if let Some(dense) = dense_bitmap(ids, &mut scratch.bytes) {
            // Many vectors' ids over a code range not much wider than their number (a coarse group summed
            // up from a fine table's groups): marked in a bit set and made a bitmap, without sorting them.
            if bitmaps.is_empty() {
                return IdSet::from_bitmap(dense);
            }
            let mut union = bitmaps.into_iter().union();
            union |= dense;
            return IdSet::Big(union);
        }
        if small > 1 {
            super::sort_ids(ids, &mut scratch.spare);
            ids.dedup();
        }
        if bitmaps.is_empty() {
            return IdSet::from_sorted(ids.clone(), scratch);
        }
        let mut union = bitmaps.into_iter().union();
        if !ids.is_empty() {
            union |= bitmap_of_sorted(ids, &mut scratch.bytes, &mut scratch.containers);
        }
        // A union holds at least as many ids per container as any of its bitmaps: it stays a bitmap.
        IdSet::Big(union)
    }
}

/// Unions of at least this many ids (repeats included) are made in a bit set when their codes are dense
/// enough ([`dense_bitmap`]).
const DENSE_UNION_IDS: usize = 1 << 16;

/// The bitmap of `ids` (any order, repeats allowed) built through a bit set over their code range, when
/// they are many and that range is at most 32 codes an id (a bit set no larger than the ids): marking each
/// id is cheaper than sorting them. `None` otherwise. `bytes` is scratch space.
fn dense_bitmap(ids: &[u32], bytes: &mut Vec<u8>) -> Option<RoaringBitmap> {
    if ids.len() < DENSE_UNION_IDS {
        return None;
    }
    let max = *ids.iter().max()? as usize;
    // The crate takes at most 2^32 bits from bytes (its offset arithmetic is in u32): the highest codes
    // go the sorting way.
    if max / 8 > ids.len() * 4 || max > (u32::MAX - 8) as usize {
        return None;
    }
    bytes.clear();
    bytes.resize(max / 8 + 1, 0);
    for &id in ids {
        bytes[id as usize / 8] |= 1 << (id % 8);
    }
    // The crate makes each container an array (up to 4096 ids) or a bitset by its count, as
    // `bitmap_of_sorted` and the crate's own inserts do: the same stores, so the same serialized bytes.
    Some(RoaringBitmap::from_lsb0_bytes(0, bytes))
}

/// Merges `ids` (ascending, no repeats) into `set` (the same), in place: from the back, each slot written
/// once, then repeats dropped.
fn merge_sorted_into(set: &mut Vec<u32>, ids: &[u32]) {
    let old = set.len();
    set.resize(old + ids.len(), 0);
    let (mut i, mut j, mut out) = (old, ids.len(), old + ids.len());
    while j > 0 {
        out -= 1;
        if i > 0 && set[i - 1] > ids[j - 1] {
            i -= 1;
            set[out] = set[i];
        } else {
            j -= 1;
            set[out] = ids[j];
        }
    }
    set.dedup();
}

/// The bitmap of `ids` (ascending, no repeats), built in bulk: written in Roaring's portable serialized
/// form ([`serialize_sorted`]) into `bytes`, and read back by the crate. `append` and `from_sorted_iter`
/// take each value through two calls and a container check; here an id is two bytes written and copied
/// (see docs/benchmarks.md).
pub fn bitmap_of_sorted(
    ids: &[u32],
    bytes: &mut Vec<u8>,
    containers: &mut Vec<std::ops::Range<usize>>,
) -> RoaringBitmap {
    serialize_sorted(ids, bytes, containers);
    RoaringBitmap::deserialize_unchecked_from(&bytes[..]).expect("a bitmap serialized just now")
}

/// Writes the set of `ids` (ascending, no repeats) as [`IdSet::serialize_sized_into`] writes it, whatever
/// form the set would take.
pub fn serialize_sorted_sized_into(
    ids: &[u32],
    out: &mut impl std::io::Write,
    scratch: &mut SetScratch,
) -> std::io::Result<()> {
    serialize_sorted(ids, &mut scratch.bytes, &mut scratch.containers);
    out.write_all(&(scratch.bytes.len() as u32).to_le_bytes())?;
    out.write_all(&scratch.bytes)
}

/// Most ids of an array container in Roaring; a container of more is a bitset.
const ARRAY_LIMIT: usize = 4096;

/// Serialized bytes of a container of `ids` ids: an array of them, or a bitset of 65536 bits.
fn container_bytes(ids: usize) -> usize {
    if ids <= ARRAY_LIMIT {
        2 * ids
    } else {
        8192
    }
}

/// Writes `ids` (ascending, no repeats) into `bytes` (cleared first) in Roaring's portable serialization
/// without run containers, as the crate writes a bitmap of them; `containers` is scratch space.
fn serialize_sorted(ids: &[u32], bytes: &mut Vec<u8>, containers: &mut Vec<std::ops::Range<usize>>) {
    /// The format's cookie when it has no run containers.
    const COOKIE: u32 = 12346;
    if ids.windows(2).all(|w| w[0] >> 16 != w[1] >> 16) {
        // Every id alone in its container (a sparse set, as most small groups' are): its key, a
        // cardinality of one (stored as 0), its offset and its low bits, written in one pass.
        let n = ids.len();
        let header = 8 + 8 * n;
        bytes.clear();
        bytes.resize(header + 2 * n, 0);
        bytes[..4].copy_from_slice(&COOKIE.to_le_bytes());
        bytes[4..8].copy_from_slice(&(n as u32).to_le_bytes());
        let (keys, rest) = bytes[8..].split_at_mut(4 * n);
        let (offsets, values) = rest.split_at_mut(4 * n);
        let slots = keys.chunks_exact_mut(4).zip(offsets.chunks_exact_mut(4)).zip(values.chunks_exact_mut(2));
        for (i, (&id, ((key, at), value))) in ids.iter().zip(slots).enumerate() {
            key[..2].copy_from_slice(&((id >> 16) as u16).to_le_bytes());
            at.copy_from_slice(&((header + 2 * i) as u32).to_le_bytes());
            value.copy_from_slice(&(id as u16).to_le_bytes());
        }
        return;
    }
    containers.clear();
    containers.extend(container_runs(ids));
    // The cookie, the container count, a key and cardinality and an offset per container, then the
    // containers: every byte is written in place, in a buffer sized once.
    let header = 8 + 8 * containers.len();
    let total = header + containers.iter().map(|r| container_bytes(r.len())).sum::<usize>();
    bytes.clear();
    bytes.resize(total, 0);
    bytes[..4].copy_from_slice(&COOKIE.to_le_bytes());
    bytes[4..8].copy_from_slice(&(containers.len() as u32).to_le_bytes());
    let (keys, offsets) = bytes[8..header].split_at_mut(4 * containers.len());
    let mut offset = header;
    for ((run, key), at) in containers.iter().zip(keys.chunks_exact_mut(4)).zip(offsets.chunks_exact_mut(4)) {
        key[..2].copy_from_slice(&((ids[run.start] >> 16) as u16).to_le_bytes());
        key[2..].copy_from_slice(&((run.len() - 1) as u16).to_le_bytes());
        at.copy_from_slice(&(offset as u32).to_le_bytes());
        offset += container_bytes(run.len());
    }
    let mut at = header;
    for run in containers.iter().map(|r| &ids[r.clone()]) {
        if run.len() <= ARRAY_LIMIT {
            for (slot, &id) in bytes[at..at + 2 * run.len()].chunks_exact_mut(2).zip(run) {
                slot.copy_from_slice(&(id as u16).to_le_bytes());
            }
            at += 2 * run.len();
        } else {
            let mut words = [0u64; 1024];
            for &id in run {
                words[(id & 0xFFFF) as usize >> 6] |= 1 << (id & 63);
            }
            for (slot, word) in bytes[at..at + 8 * words.len()].chunks_exact_mut(8).zip(words) {
                slot.copy_from_slice(&word.to_le_bytes());
            }
            at += 8 * words.len();
        }
    }
    debug_assert_eq!(at, total);
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn ids_of(set: &IdSet) -> Vec<u32> {
        set.iter().collect()
    }

    /// Random ascending batches, over ranges from one container to the whole code range, checked against
    /// a BTreeSet after every batch: below, above and across what the set holds, and across the switch to
    /// a bitmap.
    #[test]
    fn sets_equal_a_model_through_batches_and_unions() {
        let mut x = 3u64;
        let mut next = move |n: u64| crate::testing::xorshift(&mut x) % n;
        let scratch = &mut SetScratch::default();
        for spread in [100u64, 1 << 16, 1 << 20, 1 << 32] {
            for batch in [1u64, 5, 63, 64, 200, 3000] {
                let mut sets: Vec<(IdSet, BTreeSet<u32>)> = Vec::new();
                for _ in 0..4 {
                    let mut set = IdSet::default();
                    let mut model = BTreeSet::new();
                    let mut floor = 0u64;
                    for round in 0..12 {
                        // Every third batch above the set's maximum (the append path), the rest anywhere.
                        let base = if round % 3 == 0 { floor } else { 0 };
                        let mut ids: Vec<u32> = (0..1 + next(batch))
                            .map(|_| (base + next(spread)).min(u64::from(u32::MAX)) as u32)
                            .collect();
                        ids.sort_unstable();
                        ids.dedup();
                        set.extend_sorted(&ids, scratch);
                        model.extend(&ids);
                        floor = u64::from(*model.last().unwrap()) + 1;
                        assert_eq!(set.len(), model.len() as u64, "spread {spread}, batch {batch}");
                        assert_eq!(ids_of(&set), model.iter().copied().collect::<Vec<_>>());
                        assert_eq!(set.max(), model.last().copied());
                        let big = matches!(set, IdSet::Big(_));
                        if !big {
                            assert!(set.heap_bytes() >= 4 * model.len());
                        }
                    }
                    let inserted = next(1 << 32) as u32;
                    set.insert(inserted);
                    model.insert(inserted);
                    assert_eq!(ids_of(&set), model.iter().copied().collect::<Vec<_>>());
                    let bitmap = set.clone().into_bitmap(scratch);
                    assert_eq!(bitmap, RoaringBitmap::from_sorted_iter(model.iter().copied()).unwrap());
                    assert_serialized_alike(&set, scratch);
                    assert_eq!(IdSet::from_bitmap(bitmap), set);
                    sets.push((set, model));
                }
                sets.push((IdSet::default(), BTreeSet::new()));
                // Unions of every prefix (one set, a vector and a bitmap, several of each).
                for n in 0..=sets.len() {
                    let union = IdSet::union(sets[..n].iter().map(|(s, _)| s), scratch);
                    let model: BTreeSet<u32> = sets[..n].iter().flat_map(|(_, m)| m).copied().collect();
                    assert_eq!(ids_of(&union), model.into_iter().collect::<Vec<_>>(), "union of {n}");
                }
            }
        }
    }

    /// A union of many vectors over a dense code range (made in a bit set) holds their ids, in the form
    /// and with the bytes a union of fewer ids (sorted) gives them: with and without bitmaps among the sets,
    /// and over ranges where the bit set is and is not used.
    #[test]
    fn dense_unions_equal_sorted_ones() {
        let mut x = 5u64;
        let scratch = &mut SetScratch::default();
        for (range, per_set) in [(200_000u64, 60u64), (3_000_000, 40), (50_000_000, 40)] {
            let sets: Vec<IdSet> = (0..3000)
                .map(|_| (0..per_set).map(|_| (crate::testing::xorshift(&mut x) % range) as u32).collect())
                .collect();
            let big: IdSet = IdSet::Big((0..range.min(1 << 22) as u32).step_by(7).collect());
            for with_bitmap in [false, true] {
                let mut all: Vec<&IdSet> = sets.iter().collect();
                if with_bitmap {
                    all.push(&big);
                }
                let union = IdSet::union(all.iter().copied(), scratch);
                let model: BTreeSet<u32> = all.iter().flat_map(|s| s.iter()).collect();
                let model: Vec<u32> = model.into_iter().collect();
                assert_eq!(ids_of(&union), model, "range {range}, bitmap {with_bitmap}");
                let sorted = if with_bitmap {
                    IdSet::Big(RoaringBitmap::from_sorted_iter(model.iter().copied()).unwrap())
                } else {
                    IdSet::from_sorted(model, scratch)
                };
                assert_eq!(matches!(union, IdSet::Big(_)), matches!(sorted, IdSet::Big(_)), "range {range}");
                let (mut a, mut b) = (Vec::new(), Vec::new());
                union.serialize_sized_into(&mut a, scratch).unwrap();
                sorted.serialize_sized_into(&mut b, scratch).unwrap();
                assert!(a == b, "range {range}, bitmap {with_bitmap}: the same bytes");
            }
        }
        assert!(dense_bitmap(&[1, 2, 3], &mut Vec::new()).is_none(), "too few ids");
        let highest: Vec<u32> = (0..DENSE_UNION_IDS as u32).map(|i| u32::MAX - (i % 8)).collect();
        assert!(dense_bitmap(&highest, &mut Vec::new()).is_none(), "codes the crate cannot take from bytes");
    }

    /// `set` serializes to the bytes the crate writes for a bitmap of its ids.
    fn assert_serialized_alike(set: &IdSet, scratch: &mut SetScratch) {
        let bitmap = RoaringBitmap::from_sorted_iter(set.iter()).unwrap();
        let (mut mine, mut theirs) = (Vec::new(), Vec::new());
        set.serialize_sized_into(&mut mine, scratch).unwrap();
        bitmap.serialize_into(&mut theirs).unwrap();
        assert_eq!(mine[..4], (theirs.len() as u32).to_le_bytes(), "the length before the bytes");
        assert_eq!(mine[4..], theirs, "{} ids", set.len());
        assert_eq!(RoaringBitmap::deserialize_from(&mine[4..]).unwrap(), bitmap);
    }

    #[test]
    fn vectors_serialize_as_the_crate_serializes_their_bitmaps() {
        let scratch = &mut SetScratch::default();
        // Empty, one id, the ends of the range, a vector with a container of more than 4096 ids among many
        // sparse ones (a bitset in the serialized form), one id to every container, and all but one pair.
        let mut wide: Vec<u32> = (0..5000).map(|i| (7 << 16) + i * 3).collect();
        wide.extend((8..20_000u32).map(|c| c << 16 | c));
        let sparse: Vec<u32> = (0..300u32).map(|c| c << 16 | ((c * 7919) & 0xFFFF)).collect();
        let mut nearly = sparse.clone();
        nearly.insert(150, (149 << 16) | 0xFFFF);
        for ids in [vec![], vec![0], vec![0, u32::MAX], (0..4096).collect(), (0..4097).collect(), wide, sparse, nearly]
        {
            assert_serialized_alike(&IdSet::Small(ids), scratch);
        }
        let mut ids = Vec::new();
        IdSet::Small((0..10_000u32).map(|i| i * 2).collect()).map_increasing_into(|id| id / 2, &mut ids);
        let halved = IdSet::from_sorted(ids, scratch);
        assert!(matches!(halved, IdSet::Big(_)), "dense after mapping: a bitmap");
        assert_eq!(ids_of(&halved), (0..10_000).collect::<Vec<_>>());
    }

    #[test]
    fn dense_sets_become_bitmaps_and_sparse_ones_stay_vectors() {
        let scratch = &mut SetScratch::default();
        let mut dense = IdSet::default();
        let mut sparse = IdSet::default();
        for batch in 0..100u32 {
            let ids: Vec<u32> = (0..10).map(|i| batch * 10 + i).collect();
            dense.extend_sorted(&ids, scratch);
            let ids: Vec<u32> = (0..10).map(|i| (batch * 10 + i) << 16).collect();
            sparse.extend_sorted(&ids, scratch);
        }
        assert!(matches!(dense, IdSet::Big(_)));
        assert!(matches!(sparse, IdSet::Small(_)));
        assert_eq!(dense.len(), 1000);
        assert_eq!(sparse.len(), 1000);
        assert!(matches!(IdSet::union([&dense, &sparse], scratch), IdSet::Big(_)));
        assert!(matches!(IdSet::union([&sparse, &IdSet::Small(vec![1])], scratch), IdSet::Small(_)));
        assert!(!prefers_bitmap(&[1, 2, 3]));
    }

    #[test]
    fn merging_in_place_is_a_sorted_union() {
        for (a, b, want) in [
            (vec![], vec![1, 2], vec![1, 2]),
            (vec![5], vec![1, 5, 9], vec![1, 5, 9]),
            (vec![1, 3, 5], vec![2, 4, 6], vec![1, 2, 3, 4, 5, 6]),
            (vec![10, 20], vec![1], vec![1, 10, 20]),
            (vec![1, 2, 3], vec![1, 2, 3], vec![1, 2, 3]),
        ] {
            let mut set = a.clone();
            merge_sorted_into(&mut set, &b);
            assert_eq!(set, want, "{a:?} and {b:?}");
        }
    }

    #[test]
    fn slices_from_a_place_are_the_ids_from_it() {
        let mut x = 5u64;
        let ids: Vec<u32> = (0..30_000)
            .map(|_| {
                crate::testing::xorshift(&mut x);
                (x % (1 << 20)) as u32
            })
            .chain([u32::MAX])
            .collect::<BTreeSet<u32>>()
            .into_iter()
            .collect();
        let big = IdSet::Big(RoaringBitmap::from_sorted_iter(ids.iter().copied()).unwrap());
        for set in [IdSet::Small(ids.clone()), big] {
            for skip in [0, 1, 4095, 4096, 20_000, ids.len() - 1, ids.len(), ids.len() + 7] {
                let mut slices = set.slices_from(skip);
                let (mut got, mut buf) = (Vec::new(), [0u32; 1000]);
                loop {
                    let slice = slices.next(&mut buf[..777]);
                    if slice.is_empty() {
                        break;
                    }
                    assert!(slice.len() <= 777);
                    got.extend_from_slice(slice);
                }
                assert_eq!(got, ids.get(skip..).unwrap_or_default(), "from {skip}");
            }
        }
    }

    #[test]
    fn bulk_bitmaps_equal_the_crates() {
        let mut x = 11u64;
        let mut next = move || {
            crate::testing::xorshift(&mut x);
            x
        };
        let bytes = &mut Vec::new();
        // Sparse and dense containers (a dense one of more than 4096 ids is a bitset), one or many, the
        // ends of the range included.
        for (len, spread) in
            [(1, 1u64 << 32), (64, 100), (5000, 1 << 16), (4096, 4096), (4097, 4097), (20_000, 1 << 18)]
        {
            for offset in [0u64, 65_530, (1 << 32) - spread] {
                let mut ids: Vec<u32> = (0..len).map(|_| (offset + next() % spread) as u32).collect();
                ids.extend([offset as u32, (offset + spread - 1) as u32]);
                ids.sort_unstable();
                ids.dedup();
                let want = RoaringBitmap::from_sorted_iter(ids.iter().copied()).unwrap();
                let got = bitmap_of_sorted(&ids, bytes, &mut Vec::new());
                assert_eq!(got, want, "{} ids over {spread} from {offset}", ids.len());
                assert_eq!(got.len(), ids.len() as u64);
                let mut set = RoaringBitmap::from_iter([7u32, 70_000, u32::MAX]);
                set |= got;
                assert_eq!(set.len(), (ids.iter().chain(&[7, 70_000, u32::MAX]).collect::<BTreeSet<_>>()).len() as u64);
            }
        }
    }
}
