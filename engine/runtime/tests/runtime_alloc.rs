//! Zero allocation in the runtime's steady state: three memberlist
//! instances on loopback, converged and warmed up, then ten seconds of
//! probes, acks, push-pull streams (every 2 s) and commands sent with
//! `InstanceHandle::send` must not allocate, on any thread.
//!
//! The counter is a global atomic, so the worker threads are counted. The
//! commands are closures that capture nothing (zero-sized, so their `Box`
//! allocates nothing). Metadata updates are sent the same way afterwards;
//! `Memberlist::update_meta` itself allocates (not the runtime), so those
//! allocations are printed, not asserted.
//!
//! Also prints the process CPU time over the window (`/proc/self/stat`) and
//! the workers' timer lag. `ALLOC_TRACE=1` prints a backtrace of the first
//! allocations in the window.

// Real sockets, real time: these tests wait on the OS clock.
#![allow(clippy::disallowed_methods)]

#[path = "runtime_util/alive.rs"]
mod alive;
mod runtime_util;

use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use alive::alive;
use proto::memberlist::Config;
use runtime::{Runtime, RuntimeConfig};
use runtime_util::*;

/// utime + stime of this process, in clock ticks.
fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // Fields after the parenthesised command name; utime and stime are 14 and 15.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

/// Time on CPU of every thread of this process, in ns (`schedstat`'s first
/// field: finer than the clock ticks of `/proc/self/stat`).
fn cpu_ns() -> u64 {
    let mut total = 0;
    for t in std::fs::read_dir("/proc/self/task").expect("/proc/self/task").flatten() {
        let s = std::fs::read_to_string(t.path().join("schedstat")).unwrap_or_default();
        total += s.split_whitespace().next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    }
    total
}

/// The metadata the next update advertises (same length every time).
static META: AtomicU8 = AtomicU8::new(0);

/// A command that captures nothing: zero-sized, so boxing it does not allocate.
fn update_meta(ep: &mut Node, now: proto::time::Instant) {
    let m = [0xff, 0x81, 0xa1, b'x', 0xa1, b'0' + META.load(Ordering::Relaxed) % 10];
    ep.ml.update_meta(now, &m, &mut ep.delegate);
}

/// A command that captures nothing and only reads: the command path itself.
fn read_state(ep: &mut Node, _now: proto::time::Instant) {
    std::hint::black_box(ep.ml.num_members());
}

/// Counts allocations, on every thread, while `body` runs.
fn counting(body: impl FnOnce()) -> u64 {
    let before = testkit::total_allocs();
    body();
    testkit::total_allocs() - before
}

fn print_traces() {
    for (i, bt) in testkit::take_traces().iter().enumerate() {
        eprintln!("allocation #{i} while counting: {bt}");
    }
}

#[test]
fn steady_state_does_not_allocate() {
    let warmup = Duration::from_secs(4);
    let window = Duration::from_secs(10);
    let rt: Runtime<Node> =
        Runtime::new(RuntimeConfig { workers: 2, ..RuntimeConfig::default() }).expect("runtime");
    // LAN timings, with push-pull every 2 s so that streams run in the window.
    let mut cfg = Config::lan();
    cfg.push_pull_interval = Duration::from_secs(2);
    let mut handles = Vec::new();
    for (i, name) in ["a", "b", "c"].iter().enumerate() {
        let at = addr(124, 1 + i as u8);
        handles.push(rt.spawn(at, None, node(name, at, &cfg, None, false)).expect("spawn"));
    }
    let seed = addr(124, 1);
    for h in &handles[1..] {
        h.call(move |ep, now| ep.ml.join(now, &[seed])).expect("join");
    }
    assert!(wait_until(Duration::from_secs(10), || {
        handles.iter().all(|h| alive(h) == ["a", "b", "c"])
    }));

    // Warm up: pools, slabs and channels reach their working sizes.
    let start = std::time::Instant::now();
    while start.elapsed() < warmup {
        std::thread::sleep(Duration::from_millis(250));
        for h in &handles {
            h.send(read_state).unwrap();
        }
    }

    // The steady state: probes, acks, push-pull streams and commands.
    let trace = testkit::trace_requested();
    let before = rt.total_stats();
    let cpu0 = cpu_ticks();
    let ns0 = cpu_ns();
    let t0 = std::time::Instant::now();
    let allocations = counting(|| {
        // Traces only what the window itself allocates.
        if trace {
            testkit::trace_next(8);
        }
        let mut i = 0usize;
        while t0.elapsed() < window {
            std::thread::sleep(Duration::from_millis(250));
            handles[i % 3].send(read_state).unwrap();
            i += 1;
        }
        testkit::trace_next(0);
    });
    let elapsed = t0.elapsed();
    let cpu1 = cpu_ticks();
    let ns1 = cpu_ns();
    let after = rt.total_stats();
    // Linux reports CPU times in 1/100 s (USER_HZ).
    let cpu_s = (cpu1 - cpu0) as f64 / 100.0;
    eprintln!(
        "steady window {:.1} s: {} allocations; datagrams in {} out {}, streams out {} in {}, \
         commands {}, polls {}; process CPU {:.2} s = {:.2}% of one core (schedstat: {:.1} ms = \
         {:.3}%); timer lag max {} us, \
         >10 ms {} of {} timers",
        elapsed.as_secs_f64(),
        allocations,
        after.datagrams_in - before.datagrams_in,
        after.datagrams_out - before.datagrams_out,
        after.streams_out - before.streams_out,
        after.streams_in - before.streams_in,
        after.commands - before.commands,
        after.polls - before.polls,
        cpu_s,
        100.0 * cpu_s / elapsed.as_secs_f64(),
        (ns1 - ns0) as f64 / 1e6,
        100.0 * (ns1 - ns0) as f64 / 1e9 / elapsed.as_secs_f64(),
        after.timer_lag_max_us,
        after.timer_lag_over_10ms,
        after.timers_fired,
    );
    assert!(after.datagrams_in - before.datagrams_in > 50, "the window must carry traffic");
    assert!(after.streams_out - before.streams_out >= 6, "push-pull must run in the window");
    assert!(after.commands - before.commands >= 30, "commands must run in the window");
    assert_eq!(after.send_drops, 0);
    print_traces();
    assert_eq!(allocations, 0, "the steady state allocated (ALLOC_TRACE=1 shows where)");

    // Metadata updates through the same allocation-free command path: the
    // allocations counted here are memberlist's own (`update_meta` clones
    // the local node and grows broadcast slots), reported, not asserted.
    let updates = 8;
    let n = counting(|| {
        for i in 0..updates {
            META.fetch_add(1, Ordering::Relaxed);
            handles[i % 3].send(update_meta).unwrap();
            std::thread::sleep(Duration::from_millis(250));
        }
    });
    eprintln!("update_meta: {n} allocations over {updates} updates (inside memberlist)");
    assert!(wait_until(Duration::from_secs(2), || {
        rt.total_stats().commands >= after.commands + updates as u64
    }));
    rt.shutdown();
}
