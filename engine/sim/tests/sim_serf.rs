//! Whole-cluster simulations of the Serf layer (LAN defaults, virtual time).
//! `SIM_SEED=<n>` replays one seed.

use core::time::Duration;
use std::collections::BTreeSet;

use proto::memberlist::Config;
use proto::serf::{Event, MemberStatus, QueryParams, Serf};
use sim::cluster::{
    node_name, percentile, serf_cluster, serf_converged, serf_join_all, serf_node, SerfNode,
};
use sim::{node_addr, seeds, NetConfig, Sim};

fn joined(n: usize, seed: u64) -> Sim<SerfNode> {
    let mut sim = serf_cluster(seed, n, NetConfig::default(), &Config::lan());
    serf_join_all(&mut sim, 0);
    let t = sim.run_until_true(Duration::from_secs(120), serf_converged);
    assert!(t.is_some(), "no convergence ({})", sim.context());
    sim.events.clear();
    sim
}

#[test]
fn smoke_join_event_leave() {
    let mut sim = joined(5, 1);
    sim.with(2, |s, now| s.user_event(now, "deploy", b"v1", false).unwrap());
    sim.run_for(Duration::from_secs(5));
    let got = sim
        .events
        .iter()
        .filter(|(_, _, e)| matches!(e, Event::User(u) if u.name == "deploy"))
        .count();
    assert_eq!(got, 5);
    sim.with(3, |s, now| s.leave(now).unwrap());
    sim.run_for(Duration::from_secs(10));
    for i in [0, 1, 2, 4] {
        assert_eq!(sim.node(i).endpoint.member("n3").unwrap().status, MemberStatus::Left, "n{i}");
    }
    assert!(sim
        .events
        .iter()
        .any(|(_, i, e)| *i == 3 && matches!(e, Event::LeaveDone { error: None })));
}

/// An event fired on one node reaches all 100. Each node re-broadcasts it
/// with a fresh retransmit budget (4 × ceil(log10(101)) = 12 sends) on the
/// event queue, gossiped every 200 ms to 3 nodes, so dissemination is
/// epidemic: O(log N) rounds. It must never wait for a push-pull period
/// (90 s at N = 100); we bound it at 5 s.
#[test]
fn event_reaches_all_100_nodes() {
    let mut times = Vec::new();
    for seed in seeds(&[1, 2, 3]) {
        let mut sim = joined(100, seed);
        let start = sim.now();
        sim.with(7, |s, now| s.user_event(now, "deploy", b"v2", false).unwrap());
        let mut seen = BTreeSet::new();
        let mut last = Duration::ZERO;
        let done = sim.run_until_true(Duration::from_secs(30), |s| {
            for (t, i, e) in &s.events {
                if matches!(e, Event::User(u) if u.name == "deploy") && seen.insert(*i) {
                    last = *t - start;
                }
            }
            seen.len() == 100
        });
        assert!(done.is_some(), "reached {} of 100 ({})", seen.len(), sim.context());
        assert!(last <= Duration::from_secs(5), "took {last:?} ({})", sim.context());
        times.push(last);
        // Exactly once per node.
        let deliveries = sim.events.iter().filter(|(_, _, e)| matches!(e, Event::User(_))).count();
        assert_eq!(deliveries, 100);
    }
    let (p50, p99, max) =
        (percentile(&mut times, 50.0), percentile(&mut times, 99.0), percentile(&mut times, 100.0));
    eprintln!("event to 100/100: p50={p50:?} p99={p99:?} max={max:?}");
}

/// A query with acks collects an ack and a response from all 100 nodes.
#[test]
fn query_collects_acks_and_responses_from_all_100() {
    for seed in seeds(&[4]) {
        let mut sim = joined(100, seed);
        let params = QueryParams { request_ack: true, ..QueryParams::default() };
        let qid = sim.with(0, |s, now| s.query(now, "load", b"?", &params).unwrap());
        let mut answered = 0;
        let (mut acks, mut responses) = (BTreeSet::new(), BTreeSet::new());
        let mut done = false;
        while !done && sim.step() {
            let new: Vec<_> = sim.events.drain(answered..).collect();
            answered = 0;
            for (_, i, e) in new {
                match e {
                    Event::Query(q) if q.name == "load" => {
                        let reply = format!("n{i} ok");
                        sim.with(i, |s: &mut Serf, now| {
                            s.respond(now, q.id, reply.as_bytes()).unwrap()
                        });
                    }
                    Event::QueryAck { id, from } if id == qid && i == 0 => {
                        acks.insert(from.to_string());
                    }
                    Event::QueryResponse { id, from, payload } if id == qid && i == 0 => {
                        assert_eq!(payload, format!("{from} ok").into_bytes());
                        responses.insert(from.to_string());
                    }
                    Event::QueryDone { id } if id == qid => done = true,
                    _ => {}
                }
            }
        }
        assert_eq!(acks.len(), 100, "{}", sim.context());
        assert_eq!(responses.len(), 100, "{}", sim.context());
    }
}

/// A 50/50 partition: each side marks the other failed; when the network
/// heals, reconnect attempts (every ReconnectInterval, with probability
/// failed/alive = 1) merge the halves with no operator action, within
/// 2 × ReconnectInterval.
#[test]
fn partition_heals_by_itself_within_two_reconnect_intervals() {
    for seed in seeds(&[5]) {
        let mut sim = joined(100, seed);
        let groups: Vec<u16> = (0..100).map(|i| u16::from(i >= 50)).collect();
        sim.partition(&groups);
        let split = sim.run_until_true(Duration::from_secs(120), |s| {
            (0..100).all(|o| {
                let x = if o < 50 { 99 } else { 0 };
                s.node(o)
                    .endpoint
                    .member(&node_name(x))
                    .is_some_and(|m| m.status == MemberStatus::Failed)
            })
        });
        assert!(split.is_some(), "{}", sim.context());
        sim.heal();
        let interval = sim.node(0).endpoint.config().reconnect_interval;
        let healed = sim.run_until_true(interval * 3, serf_converged);
        eprintln!("partition: split after {split:?}, healed {healed:?} after the network healed");
        let healed = healed.unwrap_or_else(|| panic!("did not heal ({})", sim.context()));
        assert!(healed <= interval * 2, "{healed:?} ({})", sim.context());
    }
}

/// A second node claiming an existing name loses the vote and shuts down,
/// as Go's newcomer does (`[0 / 2]`); the incumbent stays.
#[test]
fn name_conflict_newcomer_loses() {
    for seed in seeds(&[6]) {
        let mut sim = joined(3, seed);
        // A newcomer on another address, also named "n1".
        let mut dup = serf_node(&sim, 3, &Config::lan());
        let mut c = dup.config().clone();
        c.memberlist.name = "n1".into();
        dup = Serf::new(c, sim.now(), sim.node_rng(99), None).unwrap();
        let i = sim.add(node_addr(3), dup);
        sim.with(i, |s, now| s.join(now, &[node_addr(0)], true));
        let lost = sim.run_until_true(Duration::from_secs(30), |s| {
            s.events.iter().any(|(_, n, e)| *n == i && matches!(e, Event::Shutdown { .. }))
        });
        assert!(lost.is_some(), "the newcomer should lose ({})", sim.context());
        let incumbent_ok =
            !sim.events.iter().any(|(_, n, e)| *n == 1 && matches!(e, Event::Shutdown { .. }));
        assert!(incumbent_ok);
        let reason = sim.events.iter().find_map(|(_, n, e)| match e {
            Event::Shutdown { reason } if *n == i => Some(reason.clone()),
            _ => None,
        });
        eprintln!("{reason:?}");
        assert!(reason.unwrap().contains("minority in name conflict resolution"));
    }
}

#[test]
fn join_reports_completion() {
    let mut sim = serf_cluster(9, 2, NetConfig::default(), &Config::lan());
    let id = sim.with(1, |s, now| s.join(now, &[node_addr(0)], true));
    sim.run_for(Duration::from_secs(2));
    let done: Vec<_> = sim
        .events
        .iter()
        .filter(|(_, i, e)| *i == 1 && matches!(e, Event::JoinDone { .. }))
        .collect();
    assert_eq!(
        done.len(),
        1,
        "{:?}",
        sim.events.iter().filter(|(_, i, _)| *i == 1).collect::<Vec<_>>()
    );
    assert!(matches!(&done[0].2, Event::JoinDone { id: i, joined: 1, .. } if *i == id));
}
