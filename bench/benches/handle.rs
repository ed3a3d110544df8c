//! The per-packet receive path of one memberlist instance in a warmed,
//! converged 50-node cluster: `handle_datagram` on a real datagram plus
//! draining `poll_transmit` (the reply, piggybacking included), one element
//! per received packet. With LAN defaults (compression on) and with
//! compression off.
//!
//! Before measuring, each case runs 10,000 times under a counting global
//! allocator and asserts that the path allocates nothing.
//!
//! `cargo bench -p bench --bench handle`

use std::hint::black_box;
use std::time::{Duration, Instant};

use bench::Fixture;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use testkit::total_allocs;

const CHECK_ITERS: u64 = 10_000;

/// Runs `f` `CHECK_ITERS` times after a warm-up and asserts it never allocated.
fn assert_no_alloc(what: &str, mut f: impl FnMut()) {
    for _ in 0..1000 {
        f();
    }
    let before = total_allocs();
    for _ in 0..CHECK_ITERS {
        f();
    }
    let n = total_allocs() - before;
    assert_eq!(n, 0, "{what}: {n} allocations in {CHECK_ITERS} packets");
}

/// Times `iters` acks, each answering a freshly started probe; only the
/// handling (and the drain of replies) is timed.
#[allow(clippy::disallowed_methods)] // a benchmark reads the clock
fn probe_acks(f: &mut Fixture, iters: u64) -> Duration {
    let from = f.peer_addr();
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        f.next_probe();
        let ack = core::mem::take(&mut f.ack);
        let t = Instant::now();
        black_box(f.handle(black_box(&ack), from));
        total += t.elapsed();
        f.ack = ack;
    }
    total
}

fn receive(c: &mut Criterion) {
    for (label, compression) in [("compress", true), ("plain", false)] {
        let mut f = Fixture::new(compression);
        let from = f.peer_addr();
        let mut g = c.benchmark_group(format!("handle/{label}"));
        g.throughput(Throughput::Elements(1));

        let ping = f.ping.clone();
        assert_eq!(f.handle(&ping, from), 1, "a ping is answered by one ack");
        assert_no_alloc("ping", || {
            f.handle(&ping, from);
        });
        g.bench_function("ping+ack", |b| b.iter(|| black_box(f.handle(black_box(&ping), from))));

        // An ack for the outstanding probe: the probe is started (and the
        // ack built) outside the measurement, one per packet.
        let mut in_path = 0;
        for _ in 0..CHECK_ITERS {
            f.next_probe();
            let ack = core::mem::take(&mut f.ack);
            let before = total_allocs();
            f.handle(&ack, from);
            in_path += total_allocs() - before;
            f.ack = ack;
        }
        assert_eq!(in_path, 0, "ack: {in_path} allocations in {CHECK_ITERS} packets");
        g.bench_function("probe-ack", |b| b.iter_custom(|iters| probe_acks(&mut f, iters)));

        let gossip4 = f.gossip4.clone();
        assert_no_alloc("gossip4", || {
            f.handle(&gossip4, from);
        });
        g.bench_function("gossip-4-alives", |b| {
            b.iter(|| black_box(f.handle(black_box(&gossip4), from)))
        });

        let full = f.gossip_full.clone();
        let name = format!("gossip-{}-alives", f.gossip_full_count);
        assert_no_alloc(&name, || {
            f.handle(&full, from);
        });
        g.bench_function(&name, |b| b.iter(|| black_box(f.handle(black_box(&full), from))));
        eprintln!(
            "handle/{label}: ping {} B, ack {} B, gossip-4 {} B, {name} {} B; 0 allocations",
            ping.len(),
            f.ack.len(),
            gossip4.len(),
            full.len()
        );
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = receive
}
criterion_main!(benches);
