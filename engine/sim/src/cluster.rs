//! Building blocks for simulated memberlist clusters: node construction,
//! a recording delegate, and the safety checker every scenario runs each
//! step (tests, benches and `loadgen --mode sim` share them).

use core::time::Duration;
use std::sync::Arc;

use super::{node_addr, NetConfig, Sim};
use proto::memberlist::{Config, Delegate, Memberlist, NodeInfo};
use proto::time::Instant;
use proto::{Endpoint, Membership};
use wire::memberlist::NodeState;

/// A membership change a [`Recorder`] saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Join,
    Leave { state: NodeState },
    Update,
}

/// A delegate that counts notifications and, when `keep` is set, records them.
#[derive(Clone, Debug, Default)]
pub struct Recorder {
    pub joins: u64,
    pub leaves: u64,
    pub updates: u64,
    /// Record every change in `log` (allocates; off for allocation tests).
    pub keep: bool,
    pub log: Vec<(Instant, Arc<str>, Change)>,
}

impl Delegate for Recorder {
    fn notify_join(&mut self, now: Instant, node: &NodeInfo<'_>) {
        self.joins += 1;
        if self.keep {
            self.log.push((now, node.name.clone(), Change::Join));
        }
    }
    fn notify_leave(&mut self, now: Instant, node: &NodeInfo<'_>) {
        self.leaves += 1;
        if self.keep {
            self.log.push((now, node.name.clone(), Change::Leave { state: node.state }));
        }
    }
    fn notify_update(&mut self, now: Instant, node: &NodeInfo<'_>) {
        self.updates += 1;
        if self.keep {
            self.log.push((now, node.name.clone(), Change::Update));
        }
    }
}

/// A simulated memberlist node.
pub type Node = Membership<Recorder>;

/// The name of simulated node `i`.
pub fn node_name(i: usize) -> String {
    format!("n{i}")
}

/// Node `i` of a cluster: named `n{i}`, bound to [`node_addr`]`(i)`, with
/// `config` (its identity fields are overwritten) and Serf's empty tags.
pub fn memberlist_node(sim: &Sim<Node>, i: usize, config: &Config) -> Node {
    let mut c = config.clone();
    c.name = node_name(i);
    c.advertise_addr = node_addr(i).ip();
    c.advertise_port = node_addr(i).port();
    let ml = Memberlist::new(c, sim.now(), sim.node_rng(i), None, &[0xff, 0x80]);
    Membership { ml, delegate: Recorder { keep: true, ..Recorder::default() } }
}

/// A cluster of `n` nodes that have not joined each other yet.
pub fn cluster(seed: u64, n: usize, net: NetConfig, config: &Config) -> Sim<Node> {
    let mut sim = Sim::new(seed, net);
    for i in 0..n {
        let node = memberlist_node(&sim, i, config);
        sim.add(node_addr(i), node);
    }
    sim
}

/// Every node except `seed` joins `seed`, all at the current instant.
pub fn join_all(sim: &mut Sim<Node>, seed: usize) {
    let target = node_addr(seed);
    for i in 0..sim.len() {
        if i != seed {
            sim.with(i, |ep, now| ep.ml.join(now, &[target]));
        }
    }
}

/// A simulated Serf node.
pub type SerfNode = proto::serf::Serf;

/// Serf node `i` of a cluster: named `n{i}` on [`node_addr`]`(i)`, agent
/// defaults over `ml` (identity fields overwritten), tag `idx=i`.
pub fn serf_node<E: Endpoint>(sim: &Sim<E>, i: usize, ml: &Config) -> SerfNode {
    let mut c = proto::serf::SerfConfig::agent(ml.clone());
    c.memberlist.name = node_name(i);
    c.memberlist.advertise_addr = node_addr(i).ip();
    c.memberlist.advertise_port = node_addr(i).port();
    c.tags.insert("idx".into(), i.to_string());
    proto::serf::Serf::new(c, sim.now(), sim.node_rng(i), None).expect("valid config")
}

/// A Serf cluster of `n` nodes that have not joined each other yet.
pub fn serf_cluster(seed: u64, n: usize, net: NetConfig, ml: &Config) -> Sim<SerfNode> {
    let mut sim = Sim::new(seed, net);
    for i in 0..n {
        let node = serf_node(&sim, i, ml);
        sim.add(node_addr(i), node);
    }
    sim
}

/// Every Serf node except `seed` joins `seed` (ignoring old events).
pub fn serf_join_all(sim: &mut Sim<SerfNode>, seed: usize) {
    let target = node_addr(seed);
    for i in 0..sim.len() {
        if i != seed {
            sim.with(i, |s, now| s.join(now, &[target], true));
        }
    }
}

/// True if every up node's Serf lists every up node alive.
pub fn serf_converged(sim: &Sim<SerfNode>) -> bool {
    use proto::serf::MemberStatus;
    let up: Vec<usize> = sim.up().collect();
    up.iter().all(|&o| {
        let s = &sim.node(o).endpoint;
        up.iter().all(|&x| s.member(&node_name(x)).is_some_and(|m| m.status == MemberStatus::Alive))
    })
}

/// Per-step safety invariants (`issues`: incarnations never decrease; a
/// node never stays dead in its own view; while the network is healthy no
/// live node is declared dead).
#[derive(Debug, Default)]
pub struct Safety {
    /// `last[observer][subject]`: the highest incarnation seen.
    last: Vec<Vec<u32>>,
    /// Subjects whose incarnation may legitimately restart (restarted nodes).
    restarted: Vec<bool>,
    /// Steps checked.
    pub checks: u64,
}

impl Safety {
    /// A checker for a cluster of `n` nodes.
    pub fn new(n: usize) -> Self {
        Safety { last: vec![vec![0; n]; n], restarted: vec![false; n], checks: 0 }
    }

    /// Node `i` restarted with a fresh state: forget what was seen of it.
    pub fn restarted(&mut self, i: usize) {
        for row in &mut self.last {
            row[i] = 0;
        }
        self.last[i].iter_mut().for_each(|v| *v = 0);
        self.restarted[i] = true;
    }

    /// Checks the invariants on the nodes touched by the last step (call
    /// after every step). `healthy` asserts that no node that is up and not
    /// leaving is seen dead. Returns the first violation.
    pub fn check<E: Endpoint>(&mut self, sim: &Sim<E>, healthy: bool) -> Result<(), String> {
        self.checks += 1;
        for &o in sim.touched() {
            self.check_node(sim, o, healthy)?;
        }
        Ok(())
    }

    /// Checks the invariants on every node.
    pub fn check_all<E: Endpoint>(&mut self, sim: &Sim<E>, healthy: bool) -> Result<(), String> {
        for o in 0..sim.len() {
            self.check_node(sim, o, healthy)?;
        }
        Ok(())
    }

    fn check_node<E: Endpoint>(
        &mut self,
        sim: &Sim<E>,
        o: usize,
        healthy: bool,
    ) -> Result<(), String> {
        let n = sim.len();
        {
            let node = sim.node(o);
            if !node.is_running() {
                return Ok(());
            }
            let ml = node.endpoint.memberlist();
            let me = ml.local_node();
            if !ml.is_leaving() && me.state != NodeState::Alive {
                return Err(format!("{} is {:?} in its own view", me.name, me.state));
            }
            for entry in ml.nodes() {
                let Some(s) = index_of(&entry.name, n) else { continue };
                let last = &mut self.last[o][s];
                if entry.incarnation < *last && !self.restarted[s] {
                    return Err(format!(
                        "{} sees {} at incarnation {} after {}",
                        me.name, entry.name, entry.incarnation, *last
                    ));
                }
                *last = (*last).max(entry.incarnation);
                if healthy && entry.state == NodeState::Dead {
                    let subject = sim.node(s);
                    if subject.is_up() && !subject.endpoint.memberlist().is_leaving() {
                        return Err(format!("{} declared live node {} dead", me.name, entry.name));
                    }
                }
            }
        }
        Ok(())
    }
}

/// The index in names `n{i}`.
pub fn index_of(name: &str, n: usize) -> Option<usize> {
    name.strip_prefix('n')?.parse().ok().filter(|&i| i < n)
}

/// Percentile (0–100) of `samples` (sorted in place); nearest-rank.
pub fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    samples.sort_unstable();
    let rank = ((p / 100.0) * samples.len() as f64).ceil() as usize;
    samples[rank.clamp(1, samples.len()) - 1]
}
