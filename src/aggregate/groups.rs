//! The merged groups of one grouping ([`crate::aggregate`]): every group's state in pages that never move,
//! found by its key through an open-addressing table of small slots (the key and the state's index).
//!
//! A grouping by a high-cardinality key (the spread shape's ~100,000 campaigns an hour) touches nearly one
//! group per row, so the cost is the memory a group takes and the cache misses of finding it. A slot is
//! 32 bytes, so growing the table moves little and never copies a state, and a chunk's lookups can be
//! prefetched ([`Groups::prefetch_slot`], [`Groups::prefetch`]) before they are made. (A `HashMap` of the
//! states themselves took ~233 bytes per bucket, and held two tables while it grew.)

use std::hash::BuildHasher;

use super::GroupKey;

/// States per page: a page is allocated whole when the last one is full, and never reallocated.
const PAGE_BITS: u32 = 12;
const PAGE: usize = 1 << PAGE_BITS;

/// The index of a free slot.
const FREE: u32 = u32::MAX;

#[derive(Clone, Copy)]
struct Slot {
    key: GroupKey,
    index: u32,
}

const EMPTY: Slot = Slot { key: (0, [0; super::MAX_KEYS]), index: FREE };

/// Groups by key, with a state `V` each (created as `V::default()`), numbered in order of insertion.
pub struct Groups<V> {
    /// A power of two of slots, at most 3/4 of them used; linear probing.
    slots: Vec<Slot>,
    pages: Vec<Vec<V>>,
    len: usize,
    hasher: foldhash::fast::FixedState,
}

impl<V: Default> Default for Groups<V> {
    fn default() -> Self {
        Groups { slots: Vec::new(), pages: Vec::new(), len: 0, hasher: Default::default() }
    }
}

impl<V: Default> Groups<V> {
    pub fn len(&self) -> usize {
        self.len
    }

    /// The hash of a key, for [`Groups::prefetch_slot`] and [`Groups::find_or_insert`].
    #[inline]
    pub fn hash(&self, key: &GroupKey) -> u64 {
        self.hasher.hash_one(key)
    }

    /// Starts loading the slot where the search for a key of hash `hash` begins.
    #[inline]
    pub fn prefetch_slot(&self, hash: u64) {
        if !self.slots.is_empty() {
            super::intern::prefetch(&self.slots[hash as usize & (self.slots.len() - 1)]);
        }
    }

    /// Starts loading the state of group `index`: each cache line of it (a state with three sets spans
    /// three).
    #[inline]
    pub fn prefetch(&self, index: u32) {
        let state = self.get(index) as *const V as *const u8;
        for line in (0..std::mem::size_of::<V>()).step_by(64) {
            super::intern::prefetch_address(state.wrapping_add(line));
        }
    }

    /// The index of the group `key` (of hash `hash`), added with a default state when it is new.
    #[inline]
    pub fn find_or_insert(&mut self, key: GroupKey, hash: u64) -> u32 {
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            self.grow();
        }
        let mask = self.slots.len() - 1;
        let mut i = hash as usize & mask;
        loop {
            let slot = self.slots[i];
            if slot.index == FREE {
                let index = self.len as u32;
                assert!(index < FREE, "more than 2^32 - 1 groups");
                self.slots[i] = Slot { key, index };
                if self.len.is_multiple_of(PAGE) {
                    // The first page grows as a vector does (a grouping of a few groups stays small); the
                    // others are allocated whole.
                    self.pages.push(if self.len == 0 { Vec::new() } else { Vec::with_capacity(PAGE) });
                }
                self.pages.last_mut().expect("a page with room").push(V::default());
                self.len += 1;
                return index;
            }
            if slot.key == key {
                return slot.index;
            }
            i = (i + 1) & mask;
        }
    }

    /// The state of `key`, added with a default state when it is new.
    pub fn entry(&mut self, key: GroupKey) -> &mut V {
        let index = self.find_or_insert(key, self.hash(&key));
        self.get_mut(index)
    }

    #[inline]
    pub fn get(&self, index: u32) -> &V {
        let i = index as usize;
        &self.pages[i >> PAGE_BITS][i & (PAGE - 1)]
    }

    #[inline]
    pub fn get_mut(&mut self, index: u32) -> &mut V {
        let i = index as usize;
        &mut self.pages[i >> PAGE_BITS][i & (PAGE - 1)]
    }

    /// Every group's key and state, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (GroupKey, &V)> + '_ {
        self.slots.iter().filter(|s| s.index != FREE).map(|s| (s.key, self.get(s.index)))
    }

    /// Every group's state, in order of insertion.
    pub fn values(&self) -> impl Iterator<Item = &V> + '_ {
        self.pages.iter().flatten()
    }

    /// Every group's state, in order of insertion.
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut V> + '_ {
        self.pages.iter_mut().flatten()
    }

    /// Every group, sorted by key, as `f` makes it of its key and state; the table is emptied. The states
    /// are moved out page by page, in the order they were added, and each page is handed back once empty
    /// ([`crate::memory::release`]); the result is then put in key order in place, by swaps. So the pages
    /// and the result are not alive at once (on the spread shape, ~45 MB of pages against ~50 MB of final
    /// groups), and the result's memory is touched in order as it fills.
    pub fn drain_sorted<T>(&mut self, mut f: impl FnMut(GroupKey, V) -> T) -> Vec<T> {
        let mut keys: Vec<(GroupKey, u32)> =
            self.slots.iter().filter(|s| s.index != FREE).map(|s| (s.key, s.index)).collect();
        keys.sort_unstable_by_key(|&(key, _)| key);
        let pages = std::mem::take(&mut self.pages);
        *self = Groups::default();
        // The place in key order of each group, by index.
        let mut place = vec![0u32; keys.len()];
        for (at, &(_, index)) in keys.iter().enumerate() {
            place[index as usize] = at as u32;
        }
        let mut out = Vec::with_capacity(keys.len());
        for mut page in pages {
            for state in page.drain(..) {
                out.push(f(keys[place[out.len()] as usize].0, state));
            }
            crate::memory::release(page);
        }
        drop(keys);
        // Each swap puts one group at its place for good.
        for i in 0..out.len() {
            while place[i] as usize != i {
                let to = place[i] as usize;
                out.swap(i, to);
                place.swap(i, to);
            }
        }
        out
    }

    /// Bytes allocated for the slots and the pages (not what the states own).
    pub fn table_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Slot>()
            + self.pages.iter().map(|p| p.capacity()).sum::<usize>() * std::mem::size_of::<V>()
    }

    /// Doubles the slots (from 16), placing every used slot again; the states stay where they are.
    #[cold]
    fn grow(&mut self) {
        let size = (self.slots.len() * 2).max(16);
        let old = std::mem::replace(&mut self.slots, vec![EMPTY; size]);
        let mask = size - 1;
        for slot in old.into_iter().filter(|s| s.index != FREE) {
            let mut i = self.hash(&slot.key) as usize & mask;
            while self.slots[i].index != FREE {
                i = (i + 1) & mask;
            }
            self.slots[i] = slot;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn groups_match_a_hash_map_whatever_the_keys() {
        // Keys that collide in their low bits, spread ones, repeats; past several pages and table sizes.
        let mut groups: Groups<u64> = Groups::default();
        let mut model: HashMap<GroupKey, u64> = HashMap::new();
        let mut x: u64 = 7;
        for n in 0..40_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let key: GroupKey = match n % 3 {
                0 => ((x % 5) as i64 * 3_600_000_000, [(x % 200) as u32, 0, 0, 0]),
                1 => (0, [(x % 9000) as u32, (x >> 20) as u32 % 3, 0, 0]),
                _ => (-1, [n as u32 % 4096 * 4096, 1, 2, (x >> 40) as u32]),
            };
            *groups.entry(key) += n;
            *model.entry(key).or_default() += n;
            assert_eq!(groups.len(), model.len());
        }
        let mut seen: Vec<(GroupKey, u64)> = groups.iter().map(|(k, &v)| (k, v)).collect();
        seen.sort();
        let mut want: Vec<(GroupKey, u64)> = model.into_iter().collect();
        want.sort();
        assert_eq!(seen, want);
        assert_eq!(groups.values().sum::<u64>(), want.iter().map(|(_, v)| v).sum::<u64>());
        for v in groups.values_mut() {
            *v += 1;
        }
        let taken: Vec<_> = groups.drain_sorted(|key, v| (key, v));
        assert_eq!(taken, want.iter().map(|&(k, v)| (k, v + 1)).collect::<Vec<_>>());
        assert!(groups.len() == 0 && groups.iter().next().is_none());
    }

    #[test]
    fn indexes_are_stable_and_in_order_of_insertion() {
        let mut groups: Groups<u32> = Groups::default();
        for n in 0..10_000u32 {
            let key = (i64::from(n), [n; 4]);
            let index = groups.find_or_insert(key, groups.hash(&key));
            assert_eq!(index, n);
            *groups.get_mut(index) = n * 2;
        }
        for n in (0..10_000u32).rev() {
            let key = (i64::from(n), [n; 4]);
            assert_eq!(groups.find_or_insert(key, groups.hash(&key)), n, "found again after growing");
            assert_eq!(*groups.get(n), n * 2);
        }
        assert_eq!(groups.values().copied().collect::<Vec<_>>(), (0..10_000).map(|n| n * 2).collect::<Vec<_>>());
    }
}
