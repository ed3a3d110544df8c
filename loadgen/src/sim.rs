//! `--mode sim`: the same scenarios on the deterministic simulator
//! ([`engine::sim`]), in virtual time (every latency in the report is
//! virtual; wall time and the harness's memory are reported next to it).
//! Network: the simulator's healthy LAN (0.5 ms ± 0.5 ms, no loss). A stall
//! is the simulator's pause (SIGSTOP: datagrams queue, timers wait); a
//! partition is its group cut.

use std::time::Duration;

use engine::proto::serf::{QueryParams, Serf};
use engine::sim::{node_addr, NetConfig, Sim};
use engine::time::Instant;

use crate::args::Args;
use crate::inproc::{profile, serf_config};
use crate::node::{self, LgNode};
use crate::observe::Observer;
use crate::report::Report;
use crate::scenarios::{process_cost, wall_now, wall_since, Cluster, Runner, Traffic};

struct SimCluster {
    sim: Sim<LgNode>,
    /// Stalled nodes and when they resume.
    resumes: Vec<(Instant, usize)>,
}

impl SimCluster {
    fn resume_due(&mut self) {
        let now = self.sim.now();
        let mut i = 0;
        while i < self.resumes.len() {
            if self.resumes[i].0 <= now {
                let (_, n) = self.resumes.swap_remove(i);
                if self.sim.node(n).is_up() {
                    self.sim.resume(n);
                }
            } else {
                i += 1;
            }
        }
    }
}

impl Cluster for SimCluster {
    fn n(&self) -> usize {
        self.sim.len()
    }

    fn now(&self) -> Instant {
        self.sim.now()
    }

    fn is_virtual(&self) -> bool {
        true
    }

    fn advance(&mut self, d: Duration, obs: &mut Observer) {
        let target = self.sim.now() + d;
        loop {
            let next = self.resumes.iter().map(|r| r.0).min().filter(|&t| t <= target);
            match next {
                Some(t) => {
                    self.sim.run_until(t);
                    self.resume_due();
                }
                None => break,
            }
        }
        self.sim.run_until(target);
        for (_, _, o) in self.sim.events.drain(..) {
            obs.feed(o);
        }
    }

    fn join(&mut self, i: usize, seed: usize) {
        let target = node_addr(seed);
        self.sim.with(i, |n, now| {
            n.serf.join(now, &[target], true);
        });
    }

    fn kill(&mut self, i: usize) {
        self.sim.kill(i);
    }

    fn leave(&mut self, i: usize) {
        self.sim.with(i, |n, now| {
            let _ = n.serf.leave(now);
        });
    }

    fn user_event(&mut self, i: usize, k: u32) -> Result<(), String> {
        self.sim.with(i, |n, now| n.serf.user_event(now, &node::event_name(k), b"loadgen", false))
    }

    fn query(&mut self, i: usize) -> Result<Duration, String> {
        self.sim.with(i, |n, now| {
            let params = QueryParams { request_ack: true, ..QueryParams::default() };
            let t = n.serf.default_query_timeout();
            n.serf.query(now, "lg-query", b"?", &params).map(|_| t)
        })
    }

    fn stall(&mut self, nodes: &[usize], d: Duration) {
        let until = self.sim.now() + d;
        for &i in nodes {
            if self.sim.node(i).is_running() {
                self.sim.pause(i);
                self.resumes.push((until, i));
            }
        }
    }

    fn partition(&mut self, groups: &[u16]) -> Result<(), String> {
        self.sim.partition(groups);
        Ok(())
    }

    fn heal(&mut self) {
        self.sim.heal();
    }

    fn traffic(&self) -> Traffic {
        let s = self.sim.stats;
        Traffic {
            datagrams: s.datagrams_sent,
            bytes: s.bytes_sent,
            streams: s.streams,
            stream_bytes: Some(s.stream_bytes),
        }
    }

    fn take_lag(&mut self) -> Vec<f64> {
        Vec::new()
    }

    fn worker_lag(&self) -> Option<(u64, u64)> {
        None
    }

    fn drops(&self) -> u64 {
        0
    }

    fn engine_event_drops(&mut self) -> u64 {
        (0..self.sim.len())
            .filter(|&i| self.sim.node(i).is_up())
            .map(|i| self.sim.node(i).endpoint.serf.stats().events_dropped)
            .sum()
    }
}

/// Runs the scenarios of `args` and records them into `report`.
pub fn run(args: &Args, report: &mut Report) -> Result<(), String> {
    let wall = wall_now();
    let ml = profile(&args.profile)?;
    let n = args.nodes;
    report.config("profile", &args.profile);
    report.config("network", "simulated LAN: 0.5 ms + U(0, 0.5 ms), no loss");
    report.config("time", "virtual (latencies are simulated time)");
    let mut sim: Sim<LgNode> = Sim::new(args.seed, NetConfig::default());
    sim.record_events = true;
    for i in 0..n {
        let addr = node_addr(i);
        let cfg = serf_config(&ml, i, addr);
        let serf = Serf::new(cfg, sim.now(), sim.node_rng(i), None)?;
        sim.add(addr, LgNode::new(serf, i as u32, None));
    }
    let built = process_cost();
    let cluster = SimCluster { sim, resumes: Vec::new() };
    let mut runner = Runner::new(cluster, args, Duration::from_millis(100));
    runner.run(report);
    let end = process_cost();
    let virt = runner.c.sim.now().as_millis() as f64 / 1000.0;
    let steps = runner.c.sim.stats.steps;
    let h = report.phase("harness");
    h.scalar("RSS after building the cluster", built.rss as f64 / (1024.0 * 1024.0), "MiB");
    h.scalar("peak RSS", end.peak_rss as f64 / (1024.0 * 1024.0), "MiB");
    h.scalar("virtual time simulated", virt, "s");
    h.scalar("simulator steps", steps as f64, "steps");
    h.scalar("total wall time", wall_since(wall), "s");
    h.scalar("total CPU time", end.cpu_s, "s");
    h.scalar("observation records", runner.obs.records as f64, "records");
    Ok(())
}
