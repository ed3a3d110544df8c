//! Observation through RPC only: one `stream` connection per agent (member
//! events and user events), read by its own thread and funnelled into one
//! channel with the arrival time. The same code observes any Serf-compatible
//! agent, so ours and Go are measured alike.
//!
//! Member events reach a stream after the agent's event coalescing (member
//! events: up to the coalesce period after the change, rpc.md §5.2), so every
//! time derived from them includes that delay — for both implementations.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rpc::client::{Client, Incoming};
use rpc::codec::Value;

use super::agents::node_index;

/// What an observer saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    Join,
    Leave,
    Failed,
    User(String),
}

/// One stream record from agent `observer`.
#[derive(Clone, Debug)]
pub struct Obs {
    pub observer: usize,
    pub at: Instant,
    pub kind: Kind,
    /// Agent indices of the members in a member event.
    pub nodes: Vec<usize>,
}

/// The stream filter every observer registers.
pub const FILTER: &str = "member-join,member-leave,member-failed,user";

/// Connects to `rpc_addr`, retrying until `limit` (the agent may still be
/// starting).
pub fn connect(rpc_addr: &str, limit: Duration) -> Result<Client, String> {
    let end = Instant::now() + limit;
    loop {
        match Client::connect(rpc_addr, "") {
            Ok(c) => return Ok(c),
            Err(e) if Instant::now() >= end => return Err(format!("rpc {rpc_addr}: {e}")),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// Starts the observer of agent `idx`: registers the stream (before it
/// returns, so no later event is missed) and spawns its reader thread.
pub fn start(
    idx: usize,
    rpc_addr: &str,
    tx: Sender<Obs>,
    stop: Arc<AtomicBool>,
    limit: Duration,
) -> Result<JoinHandle<()>, String> {
    let mut c = connect(rpc_addr, limit)?;
    c.stream(FILTER).map_err(|e| format!("stream on {rpc_addr}: {e}"))?;
    std::thread::Builder::new()
        .name(format!("obs-{idx}"))
        .stack_size(256 * 1024)
        .spawn(move || {
            let interrupted = || stop.load(Ordering::Relaxed);
            // Ends when the agent goes away (Closed) or on stop.
            while let Ok(Some(inc)) = c.next_event(&interrupted) {
                let at = Instant::now();
                let Incoming::Stream { record, .. } = inc else { continue };
                if let Some(obs) = parse(idx, at, &record) {
                    if tx.send(obs).is_err() {
                        break;
                    }
                }
            }
            c.close();
        })
        .map_err(|e| format!("observer thread: {e}"))
}

fn parse(observer: usize, at: Instant, record: &Value) -> Option<Obs> {
    let event = record.get("Event")?.as_str()?;
    let kind = match event {
        "member-join" => Kind::Join,
        "member-leave" => Kind::Leave,
        "member-failed" => Kind::Failed,
        "user" => Kind::User(record.get("Name")?.as_str()?.to_string()),
        _ => return None,
    };
    let mut nodes = Vec::new();
    if let Some(Value::Array(members)) = record.get("Members") {
        for m in members {
            if let Some(i) = m.get("Name").and_then(Value::as_str).and_then(node_index) {
                nodes.push(i);
            }
        }
    }
    Some(Obs { observer, at, kind, nodes })
}

/// Status of node j as seen by agent i, from the stream alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seen {
    Unknown,
    Alive,
    Failed,
    Left,
}

/// Every agent's view of every other, maintained from the observations.
pub struct Views {
    n: usize,
    seen: Vec<Seen>,
}

impl Views {
    pub fn new(n: usize) -> Views {
        let mut v = Views { n, seen: vec![Seen::Unknown; n * n] };
        for i in 0..n {
            v.seen[i * n + i] = Seen::Alive;
        }
        v
    }

    pub fn get(&self, observer: usize, node: usize) -> Seen {
        self.seen.get(observer * self.n + node).copied().unwrap_or(Seen::Unknown)
    }

    pub fn apply(&mut self, o: &Obs) {
        let s = match o.kind {
            Kind::Join => Seen::Alive,
            Kind::Leave => Seen::Left,
            Kind::Failed => Seen::Failed,
            Kind::User(_) => return,
        };
        for &j in &o.nodes {
            if j < self.n && o.observer < self.n {
                self.seen[o.observer * self.n + j] = s;
            }
        }
    }

    /// Whether `observer` sees exactly the nodes in `live` alive.
    pub fn agrees(&self, observer: usize, live: &[usize]) -> bool {
        live.iter().all(|&j| self.get(observer, j) == Seen::Alive)
    }
}

/// Samples how late a 10 ms sleep wakes up in the harness (so a slow harness
/// is never mistaken for a slow protocol).
pub struct LagProbe {
    samples: Arc<Mutex<Vec<(Instant, f64)>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl LagProbe {
    pub fn start() -> LagProbe {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (samples.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("lag-probe".into())
            .spawn(move || {
                let tick = Duration::from_millis(10);
                // Bounded: one sample per 10 ms for at most 24 h of run.
                for _ in 0..8_640_000u32 {
                    if st.load(Ordering::Relaxed) {
                        break;
                    }
                    let t = Instant::now();
                    std::thread::sleep(tick);
                    let late = t.elapsed().saturating_sub(tick).as_secs_f64() * 1000.0;
                    if let Ok(mut v) = s.lock() {
                        v.push((t, late));
                    }
                }
            })
            .ok();
        LagProbe { samples, stop, thread }
    }

    /// Lateness samples (ms) taken since `from`.
    pub fn since(&self, from: Instant) -> Vec<f64> {
        self.samples
            .lock()
            .map(|v| v.iter().filter(|(t, _)| *t >= from).map(|&(_, l)| l).collect())
            .unwrap_or_default()
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

/// A receiver paired with the views it maintains.
pub struct Observed {
    pub rx: Receiver<Obs>,
    pub views: Views,
}

impl Observed {
    /// Next observation before `deadline` (applied to the views), or None.
    pub fn next(&mut self, deadline: Instant) -> Option<Obs> {
        let wait = deadline.saturating_duration_since(Instant::now());
        let o = self.rx.recv_timeout(wait).ok()?;
        self.views.apply(&o);
        Some(o)
    }
}
