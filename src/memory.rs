//! How the C allocator (glibc's) is told to treat freed memory, per phase of a run.
//!
//! While a file is read, freed memory is kept for reuse: each chunk's columns are the size of the last
//! one's, and handing them back to the kernel would fault in and zero fresh pages for every chunk. After
//! aggregation the pattern changes: a few large, short-lived blocks (final groups, an hour's dictionaries
//! and tables) while the reading state is freed. Kept freed memory then only adds up, and peak RSS is what
//! Lambda's memory setting must cover, so the end phase maps large blocks on their own (handed back when
//! freed) and gives the kept free pages back at its steps. Numbers in docs/benchmarks.md.
//!
//! Process-wide settings. The binary opts in once at start ([`keep_freed_memory`]); a library user that did
//! not gets the allocator's defaults, and the phase calls do nothing.

use std::sync::atomic::{AtomicBool, Ordering};

/// Whether the process opted in ([`keep_freed_memory`]) and the allocator took the settings.
static MANAGED: AtomicBool = AtomicBool::new(false);

/// Makes the C allocator keep memory a run frees, for the next chunk to reuse, instead of handing it back
/// to the kernel. A chunk's columns (about 12 MB at [`crate::pipeline::INLINE_CHUNK_ROWS`]) move into
/// polars and are freed after its grouping; by default glibc serves allocations that large with fresh
/// `mmap`s (or trims the heap they were in), so every chunk would fault in and zero new pages. With
/// allocations up to 256 MiB taken from the heap and up to 512 MiB of free heap kept, freed chunks are
/// reused: fewer page faults, at a small cost in peak memory (see docs/benchmarks.md). One arena for all
/// threads: a chunk is allocated on one stage's thread and freed on another's, and with an arena per
/// thread each kept its own free heap (about 65 MB more peak memory on 2 cores, no faster). Process-wide,
/// so the binary calls it once at start, before other threads; returns whether the allocator took the
/// settings (only glibc has them).
pub fn keep_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes the allocator's settings; it is called before other threads start.
        let took = unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) == 1 } && set_mmap_threshold(256 << 20) && {
            // SAFETY: as above.
            unsafe { libc::mallopt(libc::M_TRIM_THRESHOLD, 512 << 20) == 1 }
        };
        MANAGED.store(took, Ordering::Relaxed);
        took
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// The reading phase: large blocks come from the kept heap again ([`keep_freed_memory`]), after an earlier
/// run's end phase in the same process (a warm Lambda) had them mapped apart.
pub fn reading_phase() {
    if MANAGED.load(Ordering::Relaxed) {
        set_mmap_threshold(256 << 20);
    }
}

/// The end phase: a block of 1 MiB or more that no free block of the heap can hold is mapped on its own and
/// handed back to the kernel when freed (the final groups, an hour's dictionaries and encoded tables),
/// instead of growing the kept heap.
pub fn end_phase() {
    if MANAGED.load(Ordering::Relaxed) {
        set_mmap_threshold(1 << 20);
    }
}

/// Hands the kept heap's free pages back to the kernel (what the reading state left, once the end phase
/// has freed it): a few milliseconds, called at the end phase's steps.
pub fn give_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if MANAGED.load(Ordering::Relaxed) {
        // SAFETY: malloc_trim only returns free pages of the heap to the kernel.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}

/// Logs the process's memory at a step of a run, at DEBUG: the heap's blocks in use and kept free, the
/// blocks mapped apart, and the resident set.
pub fn note(step: &str) {
    if !tracing::enabled!(tracing::Level::DEBUG) {
        return;
    }
    let resident_mb = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map(|pages| pages * 4096.0 / 1e6);
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallinfo2 only reads the allocator's statistics.
        let m = unsafe { libc::mallinfo2() };
        let mb = |bytes: usize| bytes as f64 / 1e6;
        tracing::debug!(
            step,
            heap_in_use_mb = mb(m.uordblks),
            heap_free_mb = mb(m.fordblks),
            mapped_mb = mb(m.hblkhd),
            resident_mb,
            "memory"
        );
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    tracing::debug!(step, resident_mb, "memory");
}

fn set_mmap_threshold(bytes: i32) -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes the allocator's settings, which glibc reads under its arena lock.
        unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, bytes) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        let _ = bytes;
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The phases in one test: the settings are process-wide.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn reading_keeps_freed_chunks_and_the_end_phase_maps_large_blocks_apart() {
        // SAFETY (all): mallinfo2 only reads the allocator's statistics.
        let maps = || unsafe { libc::mallinfo2() }.hblks;
        let free_heap = || unsafe { libc::mallinfo2() }.fordblks;
        assert!(keep_freed_memory());
        let before = maps();
        let chunk = std::hint::black_box(vec![1u8; 12 << 20]);
        assert_eq!(maps(), before, "a chunk-sized block comes from the heap, not from a map of its own");
        drop(chunk);
        assert!(free_heap() >= 12 << 20, "the freed block stays in the heap for the next chunk");
        end_phase();
        // Larger than any free block of the heap, which it would otherwise reuse.
        let block = std::hint::black_box(vec![1u8; free_heap() + (2 << 20)]);
        assert_eq!(
            maps(),
            before + 1,
            "in the end phase, a large block that the heap cannot hold is mapped on its own"
        );
        drop(block);
        assert_eq!(maps(), before, "and handed back when freed");
        give_back();
        assert!(free_heap() >= 12 << 20, "trimming frees pages, not the heap's free space");
        reading_phase();
        let chunk = std::hint::black_box(vec![1u8; 12 << 20]);
        assert_eq!(maps(), before, "the next run reads with the kept heap again");
        drop(chunk);
    }
}
