//! The allocator settings of a run's phases (src/memory.rs). A test binary of its own, with one test
//! (the parts run in turn): the settings are process-wide, and other tests' allocations would disturb
//! the counts.

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn reading_keeps_freed_chunks_and_the_end_phase_maps_large_blocks_apart() {
    use hourly_insights::memory;
    // SAFETY (both): mallinfo2 only reads the allocator's statistics.
    let maps = || unsafe { libc::mallinfo2() }.hblks;
    let free_heap = || unsafe { libc::mallinfo2() }.fordblks;
    assert!(memory::keep_freed_memory());
    let before = maps();
    let chunk = std::hint::black_box(vec![1u8; 12 << 20]);
    assert_eq!(maps(), before, "a chunk-sized block comes from the heap, not from a map of its own");
    drop(chunk);
    assert!(free_heap() >= 12 << 20, "the freed block stays in the heap for the next chunk");
    {
        let _end = memory::end_phase();
        // Larger than any free block of the heap, which it would otherwise reuse.
        let block = std::hint::black_box(vec![1u8; free_heap() + (2 << 20)]);
        assert_eq!(maps(), before + 1, "in the end phase, a large block the heap cannot hold is mapped apart");
        drop(block);
        assert_eq!(maps(), before, "and handed back when freed");
        memory::give_back();
        assert!(free_heap() >= 12 << 20, "handing pages back keeps the heap's free blocks");
    }
    let block = std::hint::black_box(vec![1u8; free_heap() + (2 << 20)]);
    assert_eq!(maps(), before, "after the end phase, the next run's large blocks come from the heap again");
    drop(block);
    a_released_block_leaves_the_resident_set();
}

/// A block released while reading (kept in the heap when freed, otherwise) leaves the resident set at once.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn a_released_block_leaves_the_resident_set() {
    use hourly_insights::memory;
    let resident = || {
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
        statm.split_whitespace().nth(1).unwrap().parse::<usize>().unwrap() * 4096
    };
    let kept = std::hint::black_box(vec![1u8; 32 << 20]);
    let before = resident();
    drop(kept);
    assert!(resident() + (8 << 20) > before, "a block freed while reading stays resident, kept for reuse");
    let released = std::hint::black_box(vec![1u8; 32 << 20]);
    let before = resident();
    memory::release(released);
    assert!(resident() + (24 << 20) < before, "a released block's pages leave the resident set");
}
