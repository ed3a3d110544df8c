//! The counting global allocator behind the zero-allocation tests. A test
//! binary includes it with `#[path = "support/alloc.rs"] mod alloc;`, which
//! installs it as that binary's allocator; it forwards to `System` and
//! counts allocations (and reallocations) per thread and process-wide.

// Each test binary uses the helpers it needs.
#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

/// Forwards to `System`, counting.
pub struct Counting;

thread_local! {
    static THREAD: Cell<u64> = const { Cell::new(0) };
}
static TOTAL: AtomicU64 = AtomicU64::new(0);

fn count() {
    // `try_with`: allocations during thread teardown must not panic.
    let _ = THREAD.try_with(|c| c.set(c.get() + 1));
    TOTAL.fetch_add(1, Ordering::Relaxed);
}

// SAFETY: every call is forwarded to `System` unchanged; we only count.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made by the calling thread so far.
pub fn thread_allocs() -> u64 {
    THREAD.with(Cell::get)
}

/// Allocations made by every thread so far.
pub fn total_allocs() -> u64 {
    TOTAL.load(Ordering::Relaxed)
}

/// Allocations `f` makes on the calling thread.
pub fn allocations_in(f: impl FnOnce()) -> u64 {
    let before = thread_allocs();
    f();
    thread_allocs() - before
}

/// Proves the counter works: a deliberate `Vec` must be seen.
pub fn assert_counting() {
    let n = allocations_in(|| {
        let v: Vec<u8> = Vec::with_capacity(64);
        std::hint::black_box(v);
    });
    assert!(n >= 1, "the counting allocator did not see a Vec allocation");
}
