//! Test support shared by every crate of the workspace: the counting global
//! allocator behind the zero-allocation tests.
//!
//! Linking this crate installs [`Counting`] as the binary's allocator, so
//! only test binaries that name it (`use testkit::...`) get it. It forwards
//! every call to `System` and counts allocations and reallocations, per
//! thread (immune to the test harness's own threads) and process-wide (for
//! tests that run the real multi-threaded runtime).
//!
//! Debugging a failure: [`trace_next`] makes the allocator capture the
//! backtraces of the next few counted allocations (all threads), and
//! [`take_traces`] hands them back. Tests turn it on from `ALLOC_TRACE=1`
//! through [`trace_requested`] / [`trace_from_env`].

use std::alloc::{GlobalAlloc, Layout, System};
use std::backtrace::Backtrace;
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

/// Forwards to `System`, counting.
pub struct Counting;

thread_local! {
    static THREAD: Cell<u64> = const { Cell::new(0) };
    /// Inside a trace capture on this thread: its own allocations are not
    /// counted and do not recurse into another capture.
    static IN_TRACE: Cell<bool> = const { Cell::new(false) };
}
static TOTAL: AtomicU64 = AtomicU64::new(0);
/// Backtraces still to capture (0: tracing off).
static TRACE_LEFT: AtomicUsize = AtomicUsize::new(0);
static TRACES: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn count() {
    // `try_with`: allocations during thread teardown must not panic.
    if IN_TRACE.try_with(Cell::get).unwrap_or(false) {
        return;
    }
    let _ = THREAD.try_with(|c| c.set(c.get() + 1));
    TOTAL.fetch_add(1, Ordering::Relaxed);
    if TRACE_LEFT.load(Ordering::Relaxed) > 0 {
        capture();
    }
}

#[cold]
fn capture() {
    let claimed =
        TRACE_LEFT.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1)).is_ok();
    if !claimed {
        return;
    }
    IN_TRACE.with(|t| t.set(true));
    let thread = std::thread::current().name().unwrap_or("<unnamed>").to_owned();
    let trace = format!("allocation on thread {thread}:\n{}", Backtrace::force_capture());
    if let Ok(mut traces) = TRACES.lock() {
        traces.push(trace);
    }
    IN_TRACE.with(|t| t.set(false));
}

// SAFETY: every call is forwarded to `System` unchanged; we only count (a
// trace capture re-enters the allocator, which is allowed: `System` holds no
// lock of ours, and the capture's own allocations skip the counting).
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

/// Captures the backtraces of the next `n` counted allocations, on any
/// thread (0 turns tracing off).
pub fn trace_next(n: usize) {
    TRACE_LEFT.store(n, Ordering::Relaxed);
}

/// Whether `ALLOC_TRACE` asks for backtraces (set to anything but `0`).
/// Reading the environment allocates: ask before the counted window.
pub fn trace_requested() -> bool {
    std::env::var_os("ALLOC_TRACE").is_some_and(|v| v != "0")
}

/// [`trace_next`]`(n)` if [`trace_requested`]; returns whether tracing is
/// on. It allocates (it reads the environment), so call it before the
/// counted window, or use [`trace_requested`] before and [`trace_next`]
/// inside.
pub fn trace_from_env(n: usize) -> bool {
    let on = trace_requested();
    if on {
        trace_next(n);
    }
    on
}

/// The backtraces captured so far, oldest first; clears them.
pub fn take_traces() -> Vec<String> {
    TRACES.lock().map(|mut t| std::mem::take(&mut *t)).unwrap_or_default()
}
