//! Zero allocation in the engine: a converged 50-node simulated cluster in
//! steady state — probes, acks, gossip, push-pulls, plus a stream of alive
//! updates (`update_meta` on a rotating node every round) — runs 10,000
//! gossip rounds without a single heap allocation anywhere in the process
//! (engine and simulator alike: the simulator pools its buffers).
//!
//! Debugging a failure: `ALLOC_TRACE=1 cargo test -p sim --test alloc_sim
//! -- --nocapture` prints the backtraces of the first allocations made while
//! counting.

use std::time::Duration;

use proto::memberlist::Config;
use sim::cluster::{cluster, join_all, Node};
use sim::{NetConfig, Sim};
use testkit::thread_allocs as allocs;

const NODES: usize = 50;
const ROUND: Duration = Duration::from_millis(200);
const WARMUP_ROUNDS: usize = 1_500; // 5 virtual minutes
const ROUNDS: usize = 10_000;

/// Serf-style tags (`ff` magic, then `{"k": "<digit>"}`), same length every
/// time; the digit advances each time a node's turn comes round, so every
/// update really changes that node's meta.
fn meta(round: usize) -> [u8; 6] {
    [0xff, 0x81, 0xa1, b'k', 0xa1, b'0' + (round / NODES % 10) as u8]
}

/// One gossip round: an alive update from a rotating node, then 200 ms of
/// protocol traffic.
fn round(sim: &mut Sim<Node>, r: usize) {
    let m = meta(r);
    sim.with(r % NODES, |ep, now| ep.ml.update_meta(now, &m, &mut ep.delegate));
    sim.run_for(ROUND);
}

#[test]
fn the_counter_sees_a_deliberate_allocation() {
    let before = allocs();
    let v: Vec<u64> = std::hint::black_box(Vec::with_capacity(8));
    let after = allocs();
    drop(v);
    assert_eq!(after - before, 1, "the counting allocator must see a Vec allocation");
}

#[test]
fn steady_state_cluster_does_not_allocate() {
    let mut sim = cluster(0xa110c, NODES, NetConfig::default(), &Config::lan());
    sim.record_events = false;
    for i in 0..NODES {
        sim.with(i, |ep, _| ep.delegate.keep = false);
    }
    join_all(&mut sim, 0);
    let mut joined = false;
    for _ in 0..240 {
        sim.run_for(Duration::from_millis(500));
        if sim.converged() {
            joined = true;
            break;
        }
    }
    assert!(joined, "the cluster did not converge ({})", sim.context());

    // Warm up with the same workload so queues, pools, timer slabs and
    // every node's copy of every meta reach their steady sizes.
    for r in 0..WARMUP_ROUNDS {
        round(&mut sim, r);
    }
    assert!(sim.converged(), "not converged after warm-up ({})", sim.context());

    let stats_before = sim.stats;
    let ml_before: Vec<_> = sim.nodes().iter().map(|n| n.endpoint.ml.stats()).collect();
    let updates_before: u64 = sim.nodes().iter().map(|n| n.endpoint.delegate.updates).sum();

    testkit::trace_from_env(4);
    let before = allocs();
    for r in WARMUP_ROUNDS..WARMUP_ROUNDS + ROUNDS {
        round(&mut sim, r);
    }
    testkit::trace_next(0);
    let allocations = allocs() - before;

    for (i, bt) in testkit::take_traces().iter().enumerate() {
        eprintln!("allocation #{i} while counting:\n{bt}");
    }
    // The work really happened: datagrams flowed, push-pulls ran, every
    // update reached the other nodes, and nobody was suspected.
    let net = sim.stats;
    let sent = net.datagrams_sent - stats_before.datagrams_sent;
    let streams = net.streams - stats_before.streams;
    let updates: u64 =
        sim.nodes().iter().map(|n| n.endpoint.delegate.updates).sum::<u64>() - updates_before;
    let suspicions: u64 = sim
        .nodes()
        .iter()
        .zip(&ml_before)
        .map(|(n, b)| n.endpoint.ml.stats().suspicions - b.suspicions)
        .sum();
    let acks_etc: u64 = sim
        .nodes()
        .iter()
        .zip(&ml_before)
        .map(|(n, b)| n.endpoint.ml.stats().datagrams_received - b.datagrams_received)
        .sum();
    eprintln!(
        "{ROUNDS} rounds: {sent} datagrams sent, {acks_etc} received, {streams} streams, \
         {updates} meta updates seen, {suspicions} suspicions, {allocations} allocations"
    );
    assert_eq!(allocations, 0, "the steady-state cluster allocated ({})", sim.context());
    assert!(sim.converged(), "{}", sim.context());
    assert!(sent > (ROUNDS * NODES * 3) as u64, "gossip, probes and acks flowed: {sent}");
    assert!(streams > 100, "push-pulls ran: {streams}");
    assert_eq!(suspicions, 0, "a healthy cluster suspects nobody ({})", sim.context());
    // Each update is applied by its node and seen by (nearly) every other
    // node: gossip is epidemic, and an update can be overtaken by the next
    // one from the same node.
    assert!(
        updates >= (ROUNDS * NODES) as u64 * 9 / 10,
        "alive updates were disseminated: {updates}"
    );
}
