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
//! not gets the allocator's defaults, and the phase calls do nothing. (Tested in tests/memory.rs, a process
//! of its own: the settings are process-wide.)

use std::sync::atomic::{AtomicBool, Ordering};

/// While reading, blocks up to this size come from the heap (and go back to it).
const READING_MMAP_THRESHOLD: i32 = 256 << 20;

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
        let took =
            unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) == 1 } && set_mmap_threshold(READING_MMAP_THRESHOLD) && {
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

/// The end phase, until the value returned is dropped (then the reading phase's settings are back, for the
/// next run of a warm process): a block of 1 MiB or more that no free block of the heap can hold is mapped
/// on its own and handed back to the kernel when freed (the final groups, an hour's dictionaries and
/// encoded tables), instead of growing the kept heap.
#[must_use = "the end phase lasts while its value lives"]
pub fn end_phase() -> EndPhase {
    if MANAGED.load(Ordering::Relaxed) {
        set_mmap_threshold(1 << 20);
    }
    EndPhase(())
}

/// The end phase of a run ([`end_phase`]).
pub struct EndPhase(());

impl Drop for EndPhase {
    fn drop(&mut self) {
        if MANAGED.load(Ordering::Relaxed) {
            set_mmap_threshold(READING_MMAP_THRESHOLD);
        }
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

/// Drops `v`, first handing the whole memory pages of its buffer back to the kernel, when the process
/// manages its memory ([`keep_freed_memory`]) and the buffer is 64 KiB or more: a block freed into the heap
/// would otherwise stay resident until the next [`give_back`]. `v` is cleared first (its elements dropped),
/// so that nothing is read from the pages handed back.
pub fn release<T>(mut v: Vec<T>) {
    v.clear();
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let bytes = v.capacity() * std::mem::size_of::<T>();
        if MANAGED.load(Ordering::Relaxed) && bytes >= 64 << 10 {
            // SAFETY: sysconf only reads a constant of the system.
            let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096).max(1);
            let start = v.as_mut_ptr() as usize;
            // Whole pages inside the buffer only: the allocator's own words around it are not touched.
            let (from, to) = (start.next_multiple_of(page), (start + bytes) / page * page);
            if to > from {
                // SAFETY: the range lies inside `v`'s allocation, which holds no live element (cleared above)
                // and is freed right after without being read; the allocator writes its free-list words
                // first, and a page handed back reads as zeros when it is touched again.
                unsafe {
                    libc::madvise(from as *mut libc::c_void, to - from, libc::MADV_DONTNEED);
                }
            }
        }
    }
    drop(v);
}

/// Logs the process's resident memory at a step of a run, at DEBUG: in all, and its anonymous part (the
/// heap and the blocks mapped apart; the rest is the program's file pages). From /proc, not from the
/// allocator's statistics: `mallinfo2` is newer than the glibc the arm64 package links against.
pub fn note(step: &str) {
    if !tracing::enabled!(tracing::Level::DEBUG) {
        return;
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        let line = status.lines().find(|l| l.starts_with(name))?;
        line.split_whitespace().nth(1)?.parse::<f64>().ok().map(|kb| kb * 1024.0 / 1e6)
    };
    tracing::debug!(step, resident_mb = field("VmRSS:"), anonymous_mb = field("RssAnon:"), "memory");
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
