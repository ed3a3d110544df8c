//! Whole-cluster simulations of the memberlist core with LAN defaults, in
//! virtual time. Every scenario runs the safety checks after every step;
//! a failure prints `seed=… t=…`, and `SIM_SEED=<n>` replays one seed.
//!
//! Bounds are derived from the LAN configuration (memberlist.md §10):
//! probe interval 1 s, probe timeout 0.5 s, suspicion mult 4 (min timeout
//! 8 s at N = 100), gossip every 200 ms to 3 nodes, 1400-byte packets.

use core::time::Duration;

use proto::memberlist::{suspicion_timeout, Config};
use sim::cluster::{cluster, join_all, percentile, Node, Safety};
use sim::{node_addr, seeds, NetConfig, Sim};
use wire::memberlist::NodeState;

fn lan() -> Config {
    Config::lan()
}

/// Runs until `done`, checking safety each step; panics with the seed on a
/// violation or when `limit` passes.
fn run_checked(
    sim: &mut Sim<Node>,
    safety: &mut Safety,
    healthy: bool,
    limit: Duration,
    what: &str,
    mut done: impl FnMut(&Sim<Node>) -> bool,
) -> Duration {
    let t = sim.run_until_true(limit, |s| {
        if let Err(e) = safety.check(s, healthy) {
            panic!("safety: {e} ({})", s.context());
        }
        done(s)
    });
    t.unwrap_or_else(|| panic!("{what}: not done within {limit:?} ({})", sim.context()))
}

fn run_for_checked(sim: &mut Sim<Node>, safety: &mut Safety, healthy: bool, d: Duration) {
    let end = sim.now() + d;
    sim.run_until_with(end, |s| {
        if let Err(e) = safety.check(s, healthy) {
            panic!("safety: {e} ({})", s.context());
        }
        true
    });
}

fn joined(n: usize, seed: u64) -> (Sim<Node>, Safety, Duration) {
    let mut sim = cluster(seed, n, NetConfig::default(), &lan());
    let mut safety = Safety::new(n);
    join_all(&mut sim, 0);
    let t = run_checked(&mut sim, &mut safety, true, Duration::from_secs(120), "join", |s| {
        s.converged()
    });
    (sim, safety, t)
}

/// Bound on 100 nodes joining one seed at once.
///
/// After the 99 push-pulls the seed knows everyone and queues 99 alive
/// messages (~75 bytes each, so ~18 per 1400-byte packet). Each node
/// gossips 3 packets per 200 ms round; every holder re-broadcasts each
/// alive up to 12 times (4 × ceil(log10 101)). Delivering 99 × 99 alives
/// with an epidemic's ~ln N redundancy takes about 99·99·ln(100) /
/// (100 nodes × 3 × 18 per round) ≈ 8 rounds ≈ 1.7 s. We allow 5× that:
/// 8.5 s, far below the push-pull period (90 s at N = 100) that Go's tail
/// waits for.
const JOIN_100_BOUND: Duration = Duration::from_millis(8_500);

#[test]
fn join_100_at_once_converges_within_bound() {
    let mut times = Vec::new();
    for seed in seeds(&[1, 2, 3, 4, 5]) {
        let (sim, _, t) = joined(100, seed);
        assert!(t <= JOIN_100_BOUND, "join took {t:?} > {JOIN_100_BOUND:?} ({})", sim.context());
        times.push(t);
    }
    let (p50, p99, max) =
        (percentile(&mut times, 50.0), percentile(&mut times, 99.0), percentile(&mut times, 100.0));
    eprintln!("join 100: p50={p50:?} p99={p99:?} max={max:?} over {} seeds", times.len());
}

/// Bound on "every survivor marks the killed nodes dead" for N nodes:
/// 3 probe intervals for some node to probe a victim (each victim is
/// probed ~once per second cluster-wide), 1 interval for that probe to fail
/// (direct, indirect and TCP), the suspicion timeout for N (its minimum,
/// reached after k = 2 independent confirmations, which arrive at the same
/// ~1/s probe rate), and 10 gossip intervals to disseminate the dead message.
fn detection_bound(n: usize) -> Duration {
    let c = lan();
    c.probe_interval * 4
        + suspicion_timeout(c.suspicion_mult, n, c.probe_interval)
        + c.gossip_interval * 10
}

fn kill_and_detect(victims: &[usize], seed: u64) -> Duration {
    let (mut sim, mut safety, _) = joined(100, seed);
    run_for_checked(&mut sim, &mut safety, true, Duration::from_secs(5));
    for &v in victims {
        sim.kill(v);
    }
    let bound = detection_bound(100);
    let t = run_checked(&mut sim, &mut safety, false, bound * 3, "detection", |s| {
        s.up().all(|o| victims.iter().all(|&v| s.sees(o, v, NodeState::Dead)))
    });
    assert!(t <= bound, "detection took {t:?} > {bound:?} ({})", sim.context());
    // Nobody alive was declared dead along the way.
    for o in sim.up() {
        for s in sim.up() {
            assert!(sim.sees(o, s, NodeState::Alive), "n{o} lost n{s} ({})", sim.context());
        }
    }
    t
}

#[test]
fn kill_1_of_100_detected_within_bound() {
    let mut times: Vec<Duration> =
        seeds(&[11, 12, 13]).into_iter().map(|s| kill_and_detect(&[42], s)).collect();
    eprintln!(
        "kill 1/100: bound={:?} p50={:?} max={:?}",
        detection_bound(100),
        percentile(&mut times, 50.0),
        percentile(&mut times, 100.0)
    );
}

#[test]
fn kill_10_of_100_detected_within_bound() {
    let victims: Vec<usize> = (1..=10).map(|i| i * 9).collect();
    let mut times: Vec<Duration> =
        seeds(&[21, 22, 23]).into_iter().map(|s| kill_and_detect(&victims, s)).collect();
    eprintln!(
        "kill 10/100: bound={:?} p50={:?} max={:?}",
        detection_bound(100),
        percentile(&mut times, 50.0),
        percentile(&mut times, 100.0)
    );
}

#[test]
fn idle_ten_minutes_no_suspicions() {
    for seed in seeds(&[31]) {
        let (mut sim, mut safety, _) = joined(100, seed);
        let before: u64 = sim.nodes().iter().map(|n| n.endpoint.ml.stats().suspicions).sum();
        run_for_checked(&mut sim, &mut safety, true, Duration::from_secs(600));
        let after: u64 = sim.nodes().iter().map(|n| n.endpoint.ml.stats().suspicions).sum();
        assert_eq!(after - before, 0, "suspicions while idle ({})", sim.context());
        assert!(sim.converged());
        let sent: u64 = sim.nodes().iter().map(|n| n.endpoint.ml.stats().datagrams_sent).sum();
        eprintln!("idle 10 min: {} datagrams/node/s", sent as f64 / 100.0 / 600.0);
    }
}

#[test]
fn five_percent_loss_no_false_deaths() {
    for seed in seeds(&[41]) {
        let (mut sim, mut safety, _) = joined(100, seed);
        sim.set_net(NetConfig { loss: 0.05, ..NetConfig::default() });
        // `healthy = true`: any live node seen dead fails the check.
        run_for_checked(&mut sim, &mut safety, true, Duration::from_secs(600));
        let suspicions: u64 = sim.nodes().iter().map(|n| n.endpoint.ml.stats().suspicions).sum();
        let deaths: u64 = sim.nodes().iter().map(|n| n.endpoint.ml.stats().deaths).sum();
        eprintln!("5% loss, 10 min: suspicions={suspicions} deaths={deaths}");
        assert_eq!(deaths, 0, "{}", sim.context());
        assert!(sim.converged());
    }
}

#[test]
fn paused_three_seconds_is_refuted_not_dead() {
    for seed in seeds(&[51, 52]) {
        let (mut sim, mut safety, _) = joined(100, seed);
        run_for_checked(&mut sim, &mut safety, true, Duration::from_secs(5));
        let victim = 17;
        let inc_before = sim.node(victim).endpoint.ml.local_node().incarnation;
        sim.pause(victim);
        run_for_checked(&mut sim, &mut safety, true, Duration::from_secs(3));
        let suspected = sim.up().filter(|&o| sim.sees(o, victim, NodeState::Suspect)).count();
        sim.resume(victim);
        // Healthy checks stay on: the paused node must never be declared dead.
        run_for_checked(&mut sim, &mut safety, true, Duration::from_secs(60));
        let inc_after = sim.node(victim).endpoint.ml.local_node().incarnation;
        eprintln!("pause 3 s: suspected by {suspected}, incarnation {inc_before} -> {inc_after}");
        assert!(suspected > 0, "the pause should have raised a suspicion ({})", sim.context());
        assert!(inc_after > inc_before, "the node should have refuted ({})", sim.context());
        assert!(sim.converged(), "{}", sim.context());
    }
}

#[test]
fn partition_50_50_each_side_declares_the_other_dead_then_a_join_heals() {
    for seed in seeds(&[61]) {
        let (mut sim, mut safety, _) = joined(100, seed);
        let groups: Vec<u16> = (0..100).map(|i| u16::from(i >= 50)).collect();
        sim.partition(&groups);
        let split =
            run_checked(&mut sim, &mut safety, false, Duration::from_secs(120), "split", |s| {
                (0..100).all(|o| {
                    (0..100).all(|x| (groups[o] == groups[x]) == s.sees(o, x, NodeState::Alive))
                })
            });
        sim.heal();
        run_for_checked(&mut sim, &mut safety, false, Duration::from_secs(5));
        // One join across the former cut.
        sim.with(0, |ep, now| ep.ml.join(now, &[node_addr(50)]));
        let healed =
            run_checked(&mut sim, &mut safety, false, Duration::from_secs(120), "heal", |s| {
                s.converged()
            });
        eprintln!("partition 50/50: split after {split:?}, healed {healed:?} after the join");
        assert!(healed <= Duration::from_secs(30), "{}", sim.context());
    }
}

#[test]
fn restarted_node_rejoins_by_refuting_its_death() {
    use sim::cluster::memberlist_node;
    for seed in seeds(&[71]) {
        let (mut sim, mut safety, _) = joined(10, seed);
        sim.kill(3);
        run_checked(&mut sim, &mut safety, false, Duration::from_secs(60), "dead", |s| {
            s.up().all(|o| s.sees(o, 3, NodeState::Dead))
        });
        let fresh = memberlist_node(&sim, 3, &lan());
        sim.restart(3, fresh);
        safety.restarted(3);
        sim.with(3, |ep, now| ep.ml.join(now, &[node_addr(0)]));
        run_checked(&mut sim, &mut safety, false, Duration::from_secs(30), "rejoin", |s| {
            s.converged()
        });
        let inc = sim.node(3).endpoint.ml.local_node().incarnation;
        assert!(inc > 1, "rejoin must refute with a higher incarnation, got {inc}");
    }
}

#[test]
fn same_seed_same_trace() {
    let run = |seed| {
        let (mut sim, _, _) = joined(50, seed);
        sim.set_net(NetConfig { loss: 0.02, duplicate: 0.01, ..NetConfig::default() });
        sim.kill(5);
        sim.run_for(Duration::from_secs(60));
        (sim.trace_hash(), sim.stats.datagrams_sent)
    };
    let a = run(7);
    assert_eq!(a, run(7), "same seed must replay identically");
    assert_ne!(a.0, run(8).0, "different seeds should differ");
}
