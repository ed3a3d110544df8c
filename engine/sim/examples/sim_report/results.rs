//! The simulator report's deterministic part: the sweep `sim_report` runs
//! and how its results are written (`results/sim.json`, `results/sim.md`).
//! Shared with the snapshot test `tests/sim_sweep_snapshot.rs`, which
//! recomputes the sweep and compares it with the committed JSON; the
//! real-time scale run is in `scale.rs`, the example's alone.
//!
//! Everything but the real-time figures is deterministic: fixed seeds,
//! virtual time, integer counters (rates are rounded to 0.01).

use std::time::Duration;

use proto::memberlist::Config;
use serde_json::{json, Value};
use sim::cluster::{cluster, join_all, Node};
use sim::{NetConfig, Sim};
use wire::memberlist::NodeState;

/// The sweep's cluster sizes.
pub const SWEEP_NODES: [usize; 4] = [16, 64, 128, 256];
/// The sweep's datagram loss rates, in percent.
pub const SWEEP_LOSS_PCT: [u32; 3] = [0, 1, 5];
/// Convergence and detection are checked this often in the sweep.
pub const SWEEP_CHECK: Duration = Duration::from_millis(100);
/// Idle traffic is measured over this long.
pub const IDLE: Duration = Duration::from_secs(60);
/// Give up on a join or a detection after this long.
pub const LIMIT: Duration = Duration::from_secs(300);

/// The path of a file under the workspace's `results/`.
pub fn results_path(file: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../results").join(file)
}

/// The seed of one sweep point.
pub fn sweep_seed(nodes: usize, loss_pct: u32) -> u64 {
    0x5eed_0000 + nodes as u64 * 100 + u64::from(loss_pct)
}

fn net(loss_pct: u32) -> NetConfig {
    NetConfig { loss: f64::from(loss_pct) / 100.0, ..NetConfig::default() }
}

/// A cluster of `n` LAN nodes that keep no event logs (nothing is
/// recorded that the report does not need).
pub fn quiet_cluster(seed: u64, n: usize, loss_pct: u32) -> Sim<Node> {
    let mut sim = cluster(seed, n, net(loss_pct), &Config::lan());
    sim.record_events = false;
    for i in 0..n {
        sim.with(i, |ep, _| ep.delegate.keep = false);
    }
    sim
}

/// Runs in steps of `every` until `done` holds (checked after each) or
/// `limit` passes; returns the elapsed virtual time at the first check
/// that held.
fn run_until_checked(
    sim: &mut Sim<Node>,
    every: Duration,
    limit: Duration,
    mut done: impl FnMut(&Sim<Node>) -> bool,
) -> Option<Duration> {
    let start = sim.now();
    let mut elapsed = Duration::ZERO;
    while elapsed < limit {
        sim.run_for(every);
        elapsed += every;
        if done(sim) {
            return Some(elapsed);
        }
    }
    let _ = start;
    None
}

/// Datagrams and streams over an interval, for `nodes` nodes.
#[derive(Clone, Copy, Debug, Default)]
pub struct Traffic {
    pub datagrams: u64,
    pub bytes: u64,
    pub streams: u64,
    pub stream_bytes: u64,
}

impl Traffic {
    pub fn of(sim: &Sim<Node>) -> Self {
        let s = sim.stats;
        Traffic {
            datagrams: s.datagrams_sent,
            bytes: s.bytes_sent,
            streams: s.streams,
            stream_bytes: s.stream_bytes,
        }
    }

    fn since(self, before: Traffic) -> Self {
        Traffic {
            datagrams: self.datagrams - before.datagrams,
            bytes: self.bytes - before.bytes,
            streams: self.streams - before.streams,
            stream_bytes: self.stream_bytes - before.stream_bytes,
        }
    }

    /// JSON with totals and per-node-per-second rates.
    pub fn json(self, nodes: usize, over: Duration) -> Value {
        let per = |x: u64| round2(x as f64 / nodes as f64 / over.as_secs_f64());
        json!({
            "seconds": over.as_secs_f64(),
            "datagrams": self.datagrams,
            "bytes": self.bytes,
            "streams": self.streams,
            "stream_bytes": self.stream_bytes,
            "datagrams_per_node_s": per(self.datagrams),
            "bytes_per_node_s": per(self.bytes),
            "streams_per_node_s": per(self.streams),
            "stream_bytes_per_node_s": per(self.stream_bytes),
        })
    }
}

pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

pub fn ms(d: Option<Duration>) -> Value {
    d.map_or(Value::Null, |d| json!(d.as_millis() as u64))
}

fn suspicions_and_deaths(sim: &Sim<Node>) -> (u64, u64) {
    sim.nodes().iter().fold((0, 0), |(s, d), n| {
        let st = n.endpoint.ml.stats();
        (s + st.suspicions, d + st.deaths)
    })
}

/// One sweep point: `nodes` LAN nodes join node 0 at t = 0 over a network
/// losing `loss_pct` % of datagrams; then 60 s idle; then the node in the
/// middle is killed. Deterministic.
pub fn sweep_point(nodes: usize, loss_pct: u32) -> Value {
    let seed = sweep_seed(nodes, loss_pct);
    let mut sim = quiet_cluster(seed, nodes, loss_pct);
    join_all(&mut sim, 0);
    let join = run_until_checked(&mut sim, SWEEP_CHECK, LIMIT, Sim::converged);

    let (idle, idle_susp, idle_deaths) = if join.is_some() {
        let before = Traffic::of(&sim);
        let (s0, d0) = suspicions_and_deaths(&sim);
        sim.run_for(IDLE);
        let (s1, d1) = suspicions_and_deaths(&sim);
        (Traffic::of(&sim).since(before).json(nodes, IDLE), s1 - s0, d1 - d0)
    } else {
        (Value::Null, 0, 0)
    };

    let victim = nodes / 2;
    sim.kill(victim);
    let detect = run_until_checked(&mut sim, SWEEP_CHECK, LIMIT, |s| {
        s.up().all(|o| s.sees(o, victim, NodeState::Dead))
    });
    json!({
        "nodes": nodes,
        "loss_pct": loss_pct,
        "seed": seed,
        "join_converged_ms": ms(join),
        "idle": idle,
        "idle_suspicions": idle_susp,
        "idle_deaths": idle_deaths,
        "kill_victim": victim,
        "kill1_all_agree_ms": ms(detect),
        "virtual_end_ms": sim.now().as_millis(),
    })
}

/// The sweep over `nodes` × `loss`, in that order.
pub fn sweep(nodes: &[usize], loss: &[u32]) -> Value {
    let mut points = Vec::new();
    for &n in nodes {
        for &l in loss {
            points.push(sweep_point(n, l));
        }
    }
    json!({
        "config": "lan",
        "check_resolution_ms": SWEEP_CHECK.as_millis() as u64,
        "idle_seconds": IDLE.as_secs(),
        "points": points,
    })
}

/// Replaces the sweep section of `doc`, or builds a document around it.
pub fn with_sweep(doc: Option<Value>, sweep: Value) -> Value {
    let mut doc = doc.unwrap_or_else(|| json!({}));
    doc["sweep"] = sweep;
    doc
}

fn fmt_ms(v: &Value) -> String {
    match v.as_u64() {
        Some(ms) => format!("{:.1} s", ms as f64 / 1000.0),
        None => "—".into(),
    }
}

/// Renders `results/sim.md` from the JSON document.
pub fn render_md(doc: &Value) -> String {
    let mut s = String::new();
    s.push_str("# Simulator scale report\n\n");
    s.push_str(
        "Generated by `cargo run --release -p sim --example sim_report` \
         (machine-readable: `sim.json`). The sweep is deterministic and checked by \
         `cargo test -p sim --test sim_sweep_snapshot` against `sim.json`; \
         `UPDATE_RESULTS=1` rewrites its section.\n\n",
    );
    if let Some(m) = doc.get("machine") {
        s.push_str("## Machine\n\n");
        for (k, v) in m.as_object().into_iter().flatten() {
            let v = v.as_str().map_or_else(|| v.to_string(), str::to_string);
            s.push_str(&format!("- {k}: {v}\n"));
        }
        s.push('\n');
    }
    if let Some(r) = doc.get("scale") {
        let t = &r["traffic"];
        s.push_str(&format!(
            "## Scale: {} nodes × {} virtual s\n\n",
            r["nodes"], r["virtual_seconds"]
        ));
        s.push_str("All nodes join node 0 at t = 0, LAN config, no loss.\n\n");
        s.push_str("| real time | CPU time | waiting for a CPU | join converged (checked every 500 ms) | datagrams/node/s | bytes/node/s | streams/node/s | stream bytes/node/s | steps |\n");
        s.push_str("|---|---|---|---|---|---|---|---|---|\n");
        s.push_str(&format!(
            "| {:.2} s | {} s | {} s | {} | {} | {} | {} | {} | {} |\n\n",
            r["real_seconds"].as_f64().unwrap_or(f64::NAN),
            r["cpu_seconds"],
            r["runqueue_wait_seconds"],
            fmt_ms(&r["join_converged_ms"]),
            t["datagrams_per_node_s"],
            t["bytes_per_node_s"],
            t["streams_per_node_s"],
            t["stream_bytes_per_node_s"],
            r["steps"],
        ));
        s.push_str(
            "Rates are averaged over the whole run, join included. CPU time and the time \
             spent runnable but waiting for a CPU come from `/proc/thread-self/schedstat`: \
             the machine is shared, so real time = CPU time + wait. The machine is a \
             shared virtual machine whose speed varies from run to run (up to ~1.5× for \
             the same binary); `calibration_ms` in `sim.json` times a fixed LZW workload \
             before and after the run, for comparing real times across runs.\n\n",
        );
    }
    if let Some(sw) = doc.get("sweep") {
        s.push_str("## Sweep: nodes × datagram loss\n\n");
        s.push_str(&format!(
            "LAN config; all nodes join node 0 at t = 0; after convergence {} s idle \
             (traffic per node per second, UDP and TCP push-pull); then node N/2 is killed \
             and we time until every survivor sees it dead. Times are checked every {} ms \
             of virtual time.\n\n",
            sw["idle_seconds"], sw["check_resolution_ms"]
        ));
        s.push_str("| nodes | loss | join converged | kill-1 all agree | idle datagrams/node/s | idle bytes/node/s | idle streams/node/s | idle stream bytes/node/s | idle suspicions | idle deaths |\n");
        s.push_str("|---|---|---|---|---|---|---|---|---|---|\n");
        for p in sw["points"].as_array().into_iter().flatten() {
            let i = &p["idle"];
            s.push_str(&format!(
                "| {} | {} % | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                p["nodes"],
                p["loss_pct"],
                fmt_ms(&p["join_converged_ms"]),
                fmt_ms(&p["kill1_all_agree_ms"]),
                i["datagrams_per_node_s"],
                i["bytes_per_node_s"],
                i["streams_per_node_s"],
                i["stream_bytes_per_node_s"],
                p["idle_suspicions"],
                p["idle_deaths"],
            ));
        }
        s.push('\n');
    }
    if let Some(r) = doc.get("reproduce") {
        s.push_str("## Reproduce\n\n");
        for c in r.as_array().into_iter().flatten() {
            s.push_str(&format!("    {}\n", c.as_str().unwrap_or_default()));
        }
    }
    s
}

/// Writes `results/sim.json` (pretty, trailing newline) and `results/sim.md`.
pub fn write(doc: &Value) -> std::io::Result<()> {
    std::fs::create_dir_all(results_path(""))?;
    let mut text = serde_json::to_string_pretty(doc).map_err(std::io::Error::other)?;
    text.push('\n');
    std::fs::write(results_path("sim.json"), text)?;
    std::fs::write(results_path("sim.md"), render_md(doc))
}

/// The committed `results/sim.json`, if any.
pub fn read() -> Option<Value> {
    let text = std::fs::read_to_string(results_path("sim.json")).ok()?;
    serde_json::from_str(&text).ok()
}
