//! `--mode inproc`: N Serf instances on the thread-per-core runtime in this
//! process, each with its own UDP socket and TCP listener on its own
//! loopback address (`--base-ip` + i, skipping `.0` and `.255` host bytes),
//! port 7946, real time.
//!
//! Every instance sends its observations ([`Obs`]) to one shared channel
//! the harness drains; a harness thread ticks every 10 ms and records how
//! late each tick fires, so a starved harness shows in the report.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::Receiver;
use engine::proto::memberlist::Config as MlConfig;
use engine::proto::serf::{QueryParams, Serf, SerfConfig};
use engine::runtime::{InstanceHandle, Runtime, RuntimeConfig};
use engine::time::Instant;

use crate::args::Args;
use crate::node::{self, Control, LgNode, Obs};
use crate::observe::Observer;
use crate::report::Report;
use crate::scenarios::{process_cost, wall_now, wall_since, Cluster, Runner, Traffic};

/// Observation records buffered between the workers and the harness.
const OBS_QUEUE: usize = 1 << 18;
/// Serf's gossip port.
const PORT: u16 = 7946;

/// The memberlist profile named by `--profile`.
pub fn profile(name: &str) -> Result<MlConfig, String> {
    match name {
        "lan" => Ok(MlConfig::lan()),
        "wan" => Ok(MlConfig::wan()),
        "local" => Ok(MlConfig::local()),
        other => Err(format!("unknown --profile {other} (lan, wan, local)")),
    }
}

/// The Serf config of node `i` at `addr` (agent defaults over `ml`).
pub fn serf_config(ml: &MlConfig, i: usize, addr: SocketAddr) -> SerfConfig {
    let mut m = ml.clone();
    m.name = node::name(i);
    m.advertise_addr = addr.ip();
    m.advertise_port = addr.port();
    SerfConfig::agent(m)
}

/// `n` loopback addresses from `base`, skipping host bytes 0 and 255.
pub fn addresses(base: Ipv4Addr, n: usize) -> Result<Vec<SocketAddr>, String> {
    let mut out = Vec::with_capacity(n);
    let mut ip = u32::from(base);
    while out.len() < n {
        let a = Ipv4Addr::from(ip);
        if !a.is_loopback() {
            return Err(format!("{n} nodes from {base} run past 127.255.255.254"));
        }
        let last = a.octets()[3];
        if last != 0 && last != 255 {
            out.push(SocketAddr::new(IpAddr::V4(a), PORT));
        }
        ip = ip.checked_add(1).ok_or("address overflow")?;
    }
    Ok(out)
}

/// The 10 ms ticker measuring the harness's own scheduling lag.
struct LagProbe {
    samples: Arc<Mutex<Vec<f64>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl LagProbe {
    fn start() -> std::io::Result<Self> {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (samples.clone(), stop.clone());
        let thread = std::thread::Builder::new().name("loadgen-lag".into()).spawn(move || {
            const TICK: Duration = Duration::from_millis(10);
            while !st.load(Ordering::Relaxed) {
                let t = wall_now();
                std::thread::sleep(TICK);
                let late = t.elapsed().saturating_sub(TICK);
                if let Ok(mut v) = s.lock() {
                    // Bounded: a phase is bounded by --timeout-secs.
                    if v.len() < 1_000_000 {
                        v.push(late.as_secs_f64() * 1000.0);
                    }
                }
            }
        })?;
        Ok(LagProbe { samples, stop, thread: Some(thread) })
    }

    fn take(&self) -> Vec<f64> {
        self.samples.lock().map(|mut v| core::mem::take(&mut *v)).unwrap_or_default()
    }
}

impl Drop for LagProbe {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// N instances on the runtime.
struct Inproc {
    rt: Runtime<LgNode>,
    handles: Vec<Option<InstanceHandle<LgNode>>>,
    addrs: Vec<SocketAddr>,
    rx: Receiver<Obs>,
    ctl: Arc<Control>,
    lag: LagProbe,
}

impl Inproc {
    fn handle(&self, i: usize) -> Option<&InstanceHandle<LgNode>> {
        self.handles.get(i).and_then(Option::as_ref)
    }
}

impl Cluster for Inproc {
    fn n(&self) -> usize {
        self.handles.len()
    }

    fn now(&self) -> Instant {
        self.rt.now()
    }

    fn is_virtual(&self) -> bool {
        false
    }

    #[allow(clippy::disallowed_methods)]
    fn advance(&mut self, d: Duration, obs: &mut Observer) {
        let deadline = std::time::Instant::now() + d;
        while let Ok(o) = self.rx.recv_deadline(deadline) {
            obs.feed(o);
            while let Ok(o) = self.rx.try_recv() {
                obs.feed(o);
            }
        }
    }

    fn join(&mut self, i: usize, seed: usize) {
        let target = self.addrs[seed];
        if let Some(h) = self.handle(i) {
            let _ = h.send(move |n, now| {
                n.serf.join(now, &[target], true);
            });
        }
    }

    fn kill(&mut self, i: usize) {
        if let Some(h) = self.handles.get_mut(i).and_then(Option::take) {
            let _ = h.remove();
        }
    }

    fn leave(&mut self, i: usize) {
        if let Some(h) = self.handle(i) {
            let _ = h.send(|n, now| {
                let _ = n.serf.leave(now);
            });
        }
    }

    fn user_event(&mut self, i: usize, k: u32) -> Result<(), String> {
        let h = self.handle(i).ok_or("node is gone")?;
        h.call(move |n, now| n.serf.user_event(now, &node::event_name(k), b"loadgen", false))
            .map_err(|e| e.to_string())?
    }

    fn query(&mut self, i: usize) -> Result<Duration, String> {
        let h = self.handle(i).ok_or("node is gone")?;
        h.call(|n, now| {
            let params = QueryParams { request_ack: true, ..QueryParams::default() };
            let t = n.serf.default_query_timeout();
            n.serf.query(now, "lg-query", b"?", &params).map(|_| t)
        })
        .map_err(|e| e.to_string())?
    }

    fn stall(&mut self, nodes: &[usize], d: Duration) {
        for &i in nodes {
            if let Some(h) = self.handle(i) {
                let _ = h.send(move |n, now| n.stall_until(now + d));
            }
        }
    }

    fn partition(&mut self, groups: &[u16]) -> Result<(), String> {
        for (g, &v) in self.ctl.groups.iter().zip(groups) {
            g.store(v, Ordering::Relaxed);
        }
        self.ctl.partitioned.store(true, Ordering::Relaxed);
        Ok(())
    }

    fn heal(&mut self) {
        self.ctl.partitioned.store(false, Ordering::Relaxed);
        for g in &self.ctl.groups {
            g.store(0, Ordering::Relaxed);
        }
    }

    fn traffic(&self) -> Traffic {
        let s = self.rt.total_stats();
        Traffic {
            datagrams: s.datagrams_out,
            bytes: s.bytes_out,
            streams: s.streams_out,
            stream_bytes: None,
        }
    }

    fn take_lag(&mut self) -> Vec<f64> {
        self.lag.take()
    }

    fn worker_lag(&self) -> Option<(u64, u64)> {
        let s = self.rt.total_stats();
        Some((s.timer_lag_over_10ms, s.timer_lag_max_us))
    }

    fn drops(&self) -> u64 {
        self.rt.total_stats().event_drops
    }

    fn engine_event_drops(&mut self) -> u64 {
        self.handles
            .iter()
            .flatten()
            .filter_map(|h| h.call(|n, _| n.serf.stats().events_dropped).ok())
            .sum()
    }
}

/// Runs the scenarios of `args` and records them into `report`.
pub fn run(args: &Args, report: &mut Report) -> Result<(), String> {
    let wall = wall_now();
    let ml = profile(&args.profile)?;
    let n = args.nodes;
    let addrs = addresses(args.base_ip, n)?;
    let workers = args.workers.unwrap_or(0);
    let rt: Runtime<LgNode> = Runtime::new(RuntimeConfig { workers, ..RuntimeConfig::default() })
        .map_err(|e| format!("runtime: {e}"))?;
    report.config("workers", rt.workers());
    report.config("profile", &args.profile);
    report.config("first address", addrs[0]);
    report.config("last address", addrs[n - 1]);
    let ctl = Arc::new(Control {
        index: addrs.iter().enumerate().map(|(i, a)| (a.ip(), i as u32)).collect(),
        groups: (0..n).map(|_| AtomicU16::new(0)).collect(),
        partitioned: AtomicBool::new(false),
    });
    let (tx, rx) = crossbeam_channel::bounded(OBS_QUEUE);
    let base = process_cost();
    let mut handles = Vec::with_capacity(n);
    for (i, &addr) in addrs.iter().enumerate() {
        let cfg = serf_config(&ml, i, addr);
        let ctl = ctl.clone();
        let h = rt
            .spawn_on_worker(i, addr, Some(tx.clone()), move |now, rng| {
                let serf = Serf::new(cfg, now, rng, None).expect("valid config");
                LgNode::new(serf, i as u32, Some(ctl))
            })
            .map_err(|e| format!("spawning node {i} on {addr}: {e}"))?;
        handles.push(Some(h));
    }
    drop(tx);
    let spawned = process_cost();
    let lag = LagProbe::start().map_err(|e| format!("lag probe: {e}"))?;
    let cluster = Inproc { rt, handles, addrs, rx, ctl, lag };
    let mut runner = Runner::new(cluster, args, Duration::from_millis(100));
    runner.run(report);
    let end = process_cost();
    let h = report.phase("harness");
    h.scalar("RSS before spawning agents", base.rss as f64 / (1024.0 * 1024.0), "MiB");
    h.scalar(
        "RSS per agent right after spawning",
        spawned.rss.saturating_sub(base.rss) as f64 / n as f64 / 1024.0,
        "KiB",
    );
    h.scalar("peak RSS", end.peak_rss as f64 / (1024.0 * 1024.0), "MiB");
    h.scalar("observation records", runner.obs.records as f64, "records");
    h.scalar("total wall time", wall_since(wall), "s");
    h.scalar("total CPU time", end.cpu_s, "s");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_skip_host_bytes_0_and_255() {
        let a = addresses(Ipv4Addr::new(127, 1, 0, 253), 4).unwrap();
        let ips: Vec<String> = a.iter().map(|s| s.ip().to_string()).collect();
        assert_eq!(ips, ["127.1.0.253", "127.1.0.254", "127.1.1.1", "127.1.1.2"]);
        assert!(a.iter().all(|s| s.port() == PORT));
        assert!(addresses(Ipv4Addr::new(127, 255, 255, 250), 10).is_err());
    }

    #[test]
    fn profiles() {
        assert!(profile("lan").is_ok() && profile("wan").is_ok() && profile("local").is_ok());
        assert!(profile("moon").is_err());
    }
}
