//! The scale run of `sim_report`: a large cluster for some virtual seconds,
//! timed on the OS clock (the report measures the simulator, so it reads
//! the clock; nothing simulated does). Not deterministic in its real-time
//! figures.

use std::time::{Duration, Instant as WallClock};

use serde_json::{json, Value};
use sim::cluster::join_all;

use crate::results::{ms, quiet_cluster, round2, Traffic};

/// Convergence is checked this often in the scale run (`converged` is O(N²)).
const SCALE_CHECK: Duration = Duration::from_millis(500);

/// The OS clock, for the real-time figures (the report measures the
/// simulator, so it reads the clock; nothing simulated does).
#[allow(clippy::disallowed_methods)]
pub fn wall_clock() -> WallClock {
    WallClock::now()
}

/// This thread's (CPU time, time waiting for a CPU) so far, from
/// `/proc/thread-self/schedstat` (Linux; `None` elsewhere). The wait shows
/// how much other work on the machine stretched the real time.
fn thread_cpu() -> Option<(Duration, Duration)> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let mut f = s.split_whitespace().map(|x| x.parse::<u64>().ok());
    let (run, wait) = (f.next()??, f.next()??);
    Some((Duration::from_nanos(run), Duration::from_nanos(wait)))
}

/// A fixed single-threaded workload (LZW-compressing 64 KiB of
/// pseudo-random 16-symbol data 50 times), timed in milliseconds: run next
/// to the scale run, it shows how fast the (shared, virtual) machine was
/// at the time, so real-time figures from different runs can be compared.
fn calibrate() -> f64 {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let input: Vec<u8> = (0..65_536)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 60) as u8
        })
        .collect();
    let mut enc = wire::lzw::LzwEncoder::new();
    let mut out = vec![0u8; wire::lzw::max_compressed_len(input.len())];
    let t = wall_clock();
    for _ in 0..50 {
        std::hint::black_box(enc.compress(std::hint::black_box(&input), &mut out).ok());
    }
    round2(t.elapsed().as_secs_f64() * 1000.0)
}

/// The scale run: `nodes` LAN nodes join node 0 at t = 0 and run for
/// `secs` virtual seconds. Reports the real time it took (not deterministic).
pub fn scale_run(nodes: usize, secs: u64) -> Value {
    let seed = 0x5ca1e;
    let calibration_before = calibrate();
    let wall = wall_clock();
    let cpu0 = thread_cpu();
    let mut sim = quiet_cluster(seed, nodes, 0);
    join_all(&mut sim, 0);
    let end = Duration::from_secs(secs);
    let mut join = None;
    while sim.now().as_micros() < end.as_micros() as u64 {
        sim.run_for(SCALE_CHECK);
        if join.is_none() && sim.converged() {
            join = Some(Duration::from_micros(sim.now().as_micros()));
        }
    }
    let real = wall.elapsed();
    let (cpu, wait) = match (cpu0, thread_cpu()) {
        (Some((r0, w0)), Some((r1, w1))) => {
            (json!(round2((r1 - r0).as_secs_f64())), json!(round2((w1 - w0).as_secs_f64())))
        }
        _ => (Value::Null, Value::Null),
    };
    let t = Traffic::of(&sim);
    json!({
        "nodes": nodes,
        "virtual_seconds": secs,
        "seed": seed,
        "real_seconds": round2(real.as_secs_f64()),
        "cpu_seconds": cpu,
        "runqueue_wait_seconds": wait,
        "calibration_ms": [calibration_before, calibrate()],
        "join_converged_ms": ms(join),
        "check_resolution_ms": SCALE_CHECK.as_millis() as u64,
        "steps": sim.stats.steps,
        "traffic": t.json(nodes, end),
        "converged_at_end": sim.converged(),
        "trace_hash": format!("{:016x}", sim.trace_hash()),
    })
}
