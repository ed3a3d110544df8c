//! A deterministic in-memory cluster: N engine instances in one thread,
//! virtual time, a seeded faulty network.
//!
//! Time jumps straight to the next delivery or timer, so a 1000-node cluster
//! runs minutes of protocol time in seconds. Everything random — latency
//! jitter, loss, duplication, and each node's own RNG — derives from one
//! seed: the same seed replays the same run, event for event
//! ([`Sim::trace_hash`]). A failing check panics with `seed=… t=…`; set
//! `SIM_SEED` to replay one seed (see [`seeds`]).
//!
//! The network model:
//! * datagrams: one-way `latency + uniform(0, jitter)` (so jitter reorders),
//!   dropped with probability `loss`, duplicated with probability
//!   `duplicate`; links can be cut one way or both ways between groups;
//! * streams (TCP): reliable, same latency; the bytes reach the receiver's
//!   framing ([`proto::Endpoint::handle_stream_data`]) in segments; a killed
//!   peer refuses the connection, a cut link or a paused peer makes it time
//!   out at its deadline;
//! * paused nodes (SIGSTOP): process nothing; datagrams queue in a bounded
//!   socket buffer and are handled on resume, timers fire late;
//! * killed nodes (SIGKILL): drop everything.
//!
//! Buffers are pooled, so a warm simulation does not allocate per packet.

pub mod cluster;

use core::cmp::Reverse;
use core::time::Duration;
use std::collections::BinaryHeap;
use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use proto::memberlist::{Scratch, StreamData, StreamDir, StreamId, StreamReply};
use proto::rng::Rng;
use proto::time::Instant;
use proto::Endpoint;
use wire::memberlist::NodeState;
use wire::packet::PACKET_BUF;

/// The network's behaviour.
#[derive(Clone, Copy, Debug)]
pub struct NetConfig {
    /// Base one-way latency.
    pub latency: Duration,
    /// Extra uniform latency in `[0, jitter)`; reorders datagrams.
    pub jitter: Duration,
    /// Probability a datagram is lost.
    pub loss: f64,
    /// Probability a datagram is delivered twice.
    pub duplicate: f64,
    /// Datagrams a paused node's socket buffers before dropping.
    pub socket_buffer: usize,
    /// Stream bytes arrive in segments of this size: the receiver's
    /// `handle_stream_data` sees everything so far after each one, all at
    /// the delivery's instant, so its framing is exercised on every stream
    /// longer than one segment (`usize::MAX`: the whole frame at once).
    pub stream_segment: usize,
}

impl Default for NetConfig {
    /// A healthy LAN: 0.5 ms ± 0.5 ms, no loss.
    fn default() -> Self {
        NetConfig {
            latency: Duration::from_micros(500),
            jitter: Duration::from_micros(500),
            loss: 0.0,
            duplicate: 0.0,
            socket_buffer: 1024,
            stream_segment: STREAM_SEGMENT,
        }
    }
}

/// The default [`NetConfig::stream_segment`]: a TCP segment's payload on
/// Ethernet (1500-byte MTU, IPv4 and TCP headers with timestamps).
pub const STREAM_SEGMENT: usize = 1448;

/// The address of simulated node `i`: `127.(1 + i / 65536).(i / 256 % 256).(i % 256)`, port 7946.
pub fn node_addr(i: usize) -> SocketAddr {
    let ip = Ipv4Addr::new(127, 1 + (i >> 16) as u8, (i >> 8) as u8, i as u8);
    SocketAddr::new(IpAddr::V4(ip), 7946)
}

/// The seeds a test should run: `SIM_SEED` if set (replay), else `default`.
pub fn seeds(default: &[u64]) -> Vec<u64> {
    match std::env::var("SIM_SEED") {
        Ok(s) => vec![s.trim().parse().expect("SIM_SEED must be an integer")],
        Err(_) => default.to_vec(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Run {
    Running,
    Paused,
    Killed,
}

/// One simulated node.
#[derive(Debug)]
pub struct SimNode<E> {
    /// The engine instance.
    pub endpoint: E,
    /// Its address.
    pub addr: SocketAddr,
    run: Run,
    /// Datagrams that arrived while paused.
    backlog: Vec<usize>,
    /// The deadline last pushed to the timer heap.
    armed: Option<Instant>,
    /// Network group (for partitions).
    group: u16,
}

impl<E> SimNode<E> {
    /// Not killed.
    pub fn is_up(&self) -> bool {
        self.run != Run::Killed
    }
    /// Neither killed nor paused.
    pub fn is_running(&self) -> bool {
        self.run == Run::Running
    }
}

/// Hands the stream bytes `buf` to `ep` as TCP delivers them: `segment`
/// bytes more each time, everything so far in each call, until its framing
/// stops asking for more. `More` comes back when `buf` ended without a
/// complete frame; a frame that would outgrow the limit the endpoint gave
/// is `Invalid`, as the runtime treats it.
fn feed<E: Endpoint>(
    ep: &mut E,
    now: Instant,
    dir: StreamDir,
    buf: &mut [u8],
    reply: &mut Vec<u8>,
    scratch: &mut Scratch,
    segment: usize,
) -> StreamData {
    let mut end = 0usize;
    loop {
        end = end.saturating_add(segment.max(1)).min(buf.len());
        match ep.handle_stream_data(now, dir, &mut buf[..end], reply, scratch) {
            StreamData::More { limit } if end >= limit => {
                return StreamData::Invalid(wire::Error::TooLarge);
            }
            StreamData::More { .. } if end < buf.len() => {}
            outcome => return outcome,
        }
    }
}

#[derive(Debug)]
enum Delivery {
    Datagram {
        to: usize,
        from: SocketAddr,
        buf: Vec<u8>,
    },
    StreamRequest {
        to: usize,
        from: usize,
        id: StreamId,
        buf: Vec<u8>,
    },
    StreamReply {
        to: usize,
        id: StreamId,
        buf: Vec<u8>,
    },
    StreamError {
        to: usize,
        id: StreamId,
        error: &'static str,
    },
    /// The deadline of stream `id` of node `to`: fails it unless it finished.
    StreamDeadline {
        to: usize,
        id: StreamId,
    },
}

/// Counters of the simulated network.
#[derive(Clone, Copy, Debug, Default)]
pub struct NetStats {
    pub datagrams_sent: u64,
    pub datagrams_delivered: u64,
    pub datagrams_lost: u64,
    pub bytes_sent: u64,
    pub streams: u64,
    pub stream_bytes: u64,
    pub steps: u64,
}

/// A simulated cluster of endpoints of type `E`.
pub struct Sim<E: Endpoint> {
    now: Instant,
    seed: u64,
    rng: Rng,
    net: NetConfig,
    nodes: Vec<SimNode<E>>,
    by_addr: ahash::AHashMap<SocketAddr, usize>,
    /// Deliveries by (time, sequence, slot).
    queue: BinaryHeap<Reverse<(Instant, u64, usize)>>,
    slots: Vec<Option<Delivery>>,
    free_slots: Vec<usize>,
    seq: u64,
    /// Node timers by (deadline, node); stale entries are skipped.
    timers: BinaryHeap<Reverse<(Instant, usize)>>,
    pool: Vec<Vec<u8>>,
    scratch: Scratch,
    buf: Box<[u8]>,
    stream_buf: Vec<u8>,
    /// Outbound streams in flight, by (node, id).
    open_streams: Vec<(usize, StreamId)>,
    /// `blocked[from_group][to_group]`.
    blocked: Vec<Vec<bool>>,
    trace: u64,
    hasher: ahash::RandomState,
    /// Network counters.
    pub stats: NetStats,
    /// Whether to keep the endpoints' events in [`Sim::events`].
    pub record_events: bool,
    /// Events the endpoints reported: (time, node, event).
    pub events: Vec<(Instant, usize, E::Event)>,
    /// Nodes that handled an input in the last step.
    touched: Vec<usize>,
}

impl<E: Endpoint> core::fmt::Debug for Sim<E> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Sim")
            .field("seed", &self.seed)
            .field("now", &self.now)
            .finish_non_exhaustive()
    }
}

impl<E: Endpoint> Sim<E> {
    /// An empty cluster whose network draws from `seed`.
    pub fn new(seed: u64, net: NetConfig) -> Self {
        Sim {
            now: Instant::ZERO,
            seed,
            rng: Rng::seed_from_u64(seed ^ 0x005e_ed0f_5eed),
            net,
            nodes: Vec::new(),
            by_addr: ahash::AHashMap::new(),
            queue: BinaryHeap::with_capacity(4096),
            slots: Vec::with_capacity(4096),
            free_slots: Vec::with_capacity(4096),
            seq: 0,
            timers: BinaryHeap::with_capacity(1024),
            pool: Vec::with_capacity(4096),
            scratch: Scratch::new(),
            buf: vec![0; PACKET_BUF].into_boxed_slice(),
            stream_buf: Vec::new(),
            open_streams: Vec::new(),
            blocked: vec![vec![false; 1]; 1],
            trace: 0,
            hasher: ahash::RandomState::with_seeds(1, 2, 3, 4),
            stats: NetStats::default(),
            record_events: true,
            events: Vec::new(),
            touched: Vec::with_capacity(64),
        }
    }

    /// The seed of this run.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Virtual now.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// A seeded RNG for node `i`'s engine (derived from the run's seed).
    pub fn node_rng(&self, i: usize) -> Rng {
        Rng::seed_from_u64(self.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15).wrapping_add(i as u64))
    }

    /// `seed=… t=…`, for failure messages.
    pub fn context(&self) -> String {
        format!("seed={} t={} (replay: SIM_SEED={})", self.seed, self.now, self.seed)
    }

    /// Adds a node; its endpoint must be bound to `addr`. Returns its index.
    pub fn add(&mut self, addr: SocketAddr, endpoint: E) -> usize {
        let i = self.nodes.len();
        self.nodes.push(SimNode {
            endpoint,
            addr,
            run: Run::Running,
            backlog: Vec::new(),
            armed: None,
            group: 0,
        });
        self.by_addr.insert(addr, i);
        self.after_input(i);
        i
    }

    /// Replaces node `i`'s endpoint (a restart: same address, fresh state).
    pub fn restart(&mut self, i: usize, endpoint: E) {
        let n = &mut self.nodes[i];
        n.endpoint = endpoint;
        n.run = Run::Running;
        n.backlog.clear();
        n.armed = None;
        self.open_streams.retain(|&(node, _)| node != i);
        self.after_input(i);
    }

    /// Number of nodes (including killed ones).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True if there are no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Node `i`.
    pub fn node(&self, i: usize) -> &SimNode<E> {
        &self.nodes[i]
    }

    /// Every node.
    pub fn nodes(&self) -> &[SimNode<E>] {
        &self.nodes
    }

    /// Ends the simulation and hands back the endpoints (benchmarks drive a
    /// warmed instance directly).
    pub fn into_endpoints(self) -> Vec<E> {
        self.nodes.into_iter().map(|n| n.endpoint).collect()
    }

    /// Runs `f` on node `i`'s endpoint (a command: join, leave, ...), then
    /// collects its output.
    pub fn with<R>(&mut self, i: usize, f: impl FnOnce(&mut E, Instant) -> R) -> R {
        let now = self.now;
        let r = f(&mut self.nodes[i].endpoint, now);
        self.after_input(i);
        r
    }

    /// SIGKILL: node `i` stops and drops everything.
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].run = Run::Killed;
        self.nodes[i].backlog.clear();
    }

    /// SIGSTOP: node `i` stops processing until [`Sim::resume`].
    pub fn pause(&mut self, i: usize) {
        if self.nodes[i].run == Run::Running {
            self.nodes[i].run = Run::Paused;
        }
    }

    /// SIGCONT: node `i` handles its backlog and overdue timers.
    pub fn resume(&mut self, i: usize) {
        if self.nodes[i].run != Run::Paused {
            return;
        }
        self.nodes[i].run = Run::Running;
        let backlog = core::mem::take(&mut self.nodes[i].backlog);
        for slot in &backlog {
            self.deliver(*slot);
        }
        let mut b = backlog;
        b.clear();
        self.nodes[i].backlog = b;
        self.fire_timers(i);
    }

    /// Splits the network: node `i` belongs to group `groups[i]`; traffic
    /// between different groups is dropped both ways.
    pub fn partition(&mut self, groups: &[u16]) {
        let n = groups.iter().copied().max().map_or(1, |m| usize::from(m) + 1);
        self.blocked = vec![vec![false; n]; n];
        for (a, row) in self.blocked.iter_mut().enumerate() {
            for (b, cell) in row.iter_mut().enumerate() {
                *cell = a != b;
            }
        }
        for (i, &g) in groups.iter().enumerate() {
            if let Some(node) = self.nodes.get_mut(i) {
                node.group = g;
            }
        }
    }

    /// Cuts traffic from group `from` to group `to` only (one-way).
    pub fn cut_one_way(&mut self, groups: &[u16], from: u16, to: u16) {
        let n = groups
            .iter()
            .copied()
            .max()
            .map_or(1, |m| usize::from(m) + 1)
            .max(usize::from(from.max(to)) + 1);
        self.blocked = vec![vec![false; n]; n];
        self.blocked[usize::from(from)][usize::from(to)] = true;
        for (i, &g) in groups.iter().enumerate() {
            if let Some(node) = self.nodes.get_mut(i) {
                node.group = g;
            }
        }
    }

    /// Restores full connectivity.
    pub fn heal(&mut self) {
        self.blocked = vec![vec![false; 1]; 1];
        for n in &mut self.nodes {
            n.group = 0;
        }
    }

    /// Changes the network's behaviour from now on.
    pub fn set_net(&mut self, net: NetConfig) {
        self.net = net;
    }

    /// The network's behaviour.
    pub fn net(&self) -> NetConfig {
        self.net
    }

    fn link_ok(&self, from: usize, to: usize) -> bool {
        let (a, b) = (usize::from(self.nodes[from].group), usize::from(self.nodes[to].group));
        !self.blocked.get(a).and_then(|r| r.get(b)).copied().unwrap_or(false)
    }

    /// Nodes that handled an input during the last [`Sim::step`] (or command).
    pub fn touched(&self) -> &[usize] {
        &self.touched
    }

    /// A hash of everything delivered so far; equal for equal seeds.
    pub fn trace_hash(&self) -> u64 {
        self.trace
    }

    fn mix(&mut self, parts: &[u64], bytes: &[u8]) {
        let mut h = self.hasher.build_hasher();
        h.write_u64(self.trace);
        for p in parts {
            h.write_u64(*p);
        }
        h.write(bytes);
        self.trace = h.finish();
    }

    fn pooled(pool: &mut Vec<Vec<u8>>, bytes: &[u8]) -> Vec<u8> {
        let mut v = pool.pop().unwrap_or_default();
        v.clear();
        v.extend_from_slice(bytes);
        v
    }

    fn recycle(&mut self, v: Vec<u8>) {
        if self.pool.len() < 8192 {
            self.pool.push(v);
        }
    }

    fn schedule(&mut self, at: Instant, d: Delivery) {
        let slot = match self.free_slots.pop() {
            Some(s) => {
                self.slots[s] = Some(d);
                s
            }
            None => {
                self.slots.push(Some(d));
                self.slots.len() - 1
            }
        };
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq, slot)));
    }

    fn latency(&mut self) -> Duration {
        let jitter = self.net.jitter.as_nanos() as u64;
        self.net.latency + Duration::from_nanos(self.rng.below(jitter))
    }

    /// Drains node `i`'s output into the network and re-arms its timer.
    fn after_input(&mut self, i: usize) {
        if self.nodes[i].run == Run::Killed {
            return;
        }
        if self.touched.last() != Some(&i) {
            self.touched.push(i);
        }
        let from = self.nodes[i].addr;
        loop {
            let Sim { nodes, buf, scratch, .. } = self;
            let Some(t) = nodes[i].endpoint.poll_transmit(buf, scratch) else { break };
            let Some(&to) = self.by_addr.get(&t.dst) else { continue };
            self.stats.datagrams_sent += 1;
            self.stats.bytes_sent += t.range.len() as u64;
            if !self.link_ok(i, to) || self.rng.chance(self.net.loss) {
                self.stats.datagrams_lost += 1;
                continue;
            }
            let copies = if self.rng.chance(self.net.duplicate) { 2 } else { 1 };
            for _ in 0..copies {
                let bytes = Self::pooled(&mut self.pool, &self.buf[t.range.clone()]);
                let at = self.now + self.latency();
                self.schedule(at, Delivery::Datagram { to, from, buf: bytes });
            }
        }
        loop {
            let Sim { nodes, stream_buf, scratch, .. } = self;
            let Some(req) = nodes[i].endpoint.poll_stream(stream_buf, scratch) else { break };
            self.stats.streams += 1;
            self.stats.stream_bytes += self.stream_buf.len() as u64;
            self.open_streams.push((i, req.id));
            let deadline = req.deadline;
            self.schedule(deadline, Delivery::StreamDeadline { to: i, id: req.id });
            match self.by_addr.get(&req.addr).copied() {
                Some(to)
                    if self.nodes[to].is_up() && self.link_ok(i, to) && self.link_ok(to, i) =>
                {
                    let bytes = Self::pooled(&mut self.pool, &self.stream_buf);
                    let at = self.now + self.latency();
                    self.schedule(
                        at,
                        Delivery::StreamRequest { to, from: i, id: req.id, buf: bytes },
                    );
                }
                Some(to) if !self.nodes[to].is_up() => {
                    let at = self.now + self.latency();
                    self.schedule(
                        at,
                        Delivery::StreamError {
                            to: i,
                            id: req.id,
                            error: "connect: connection refused",
                        },
                    );
                }
                _ => {} // cut link or unknown address: times out at the deadline
            }
        }
        while let Some(e) = self.nodes[i].endpoint.poll_event() {
            if self.record_events {
                self.events.push((self.now, i, e));
            }
        }
        self.arm(i);
    }

    fn arm(&mut self, i: usize) {
        let next = self.nodes[i].endpoint.poll_timeout();
        if next != self.nodes[i].armed {
            self.nodes[i].armed = next;
            if let Some(t) = next {
                self.timers.push(Reverse((t, i)));
            }
        }
    }

    fn fire_timers(&mut self, i: usize) {
        if self.nodes[i].run != Run::Running {
            return;
        }
        let now = self.now;
        self.nodes[i].armed = None;
        let Sim { nodes, scratch, .. } = self;
        nodes[i].endpoint.handle_timeout(now, scratch);
        self.after_input(i);
    }

    fn stream_open(&self, node: usize, id: StreamId) -> bool {
        self.open_streams.contains(&(node, id))
    }

    fn close_stream(&mut self, node: usize, id: StreamId) -> bool {
        match self.open_streams.iter().position(|&s| s == (node, id)) {
            Some(p) => {
                self.open_streams.swap_remove(p);
                true
            }
            None => false,
        }
    }

    fn deliver(&mut self, slot: usize) {
        let Some(d) = self.slots[slot].take() else { return };
        self.free_slots.push(slot);
        let now = self.now;
        match d {
            Delivery::Datagram { to, from, mut buf } => {
                match self.nodes[to].run {
                    Run::Killed => {}
                    Run::Paused => {
                        if self.nodes[to].backlog.len() < self.net.socket_buffer {
                            // Keep it for the resume.
                            let s = self.park(Delivery::Datagram { to, from, buf });
                            self.nodes[to].backlog.push(s);
                            return;
                        }
                    }
                    Run::Running => {
                        self.stats.datagrams_delivered += 1;
                        self.mix(&[now.as_micros(), to as u64, 1], &buf);
                        let Sim { nodes, scratch, .. } = self;
                        nodes[to].endpoint.handle_datagram(now, from, &mut buf, scratch);
                        self.after_input(to);
                    }
                }
                self.recycle(buf);
            }
            Delivery::StreamRequest { to, from, id, mut buf } => {
                if !self.nodes[to].is_running() {
                    // Paused: the connection hangs until the caller's deadline.
                    self.recycle(buf);
                    return;
                }
                self.mix(&[now.as_micros(), to as u64, 2], &buf);
                let mut reply = core::mem::take(&mut self.stream_buf);
                reply.clear();
                let segment = self.net.stream_segment;
                let Sim { nodes, scratch, .. } = self;
                let outcome = feed(
                    &mut nodes[to].endpoint,
                    now,
                    StreamDir::Inbound,
                    &mut buf,
                    &mut reply,
                    scratch,
                    segment,
                );
                self.after_input(to);
                let at = now + self.latency();
                match outcome {
                    // The request never completes a frame: the receiver
                    // waits for more and the caller times out.
                    StreamData::More { .. } => {}
                    StreamData::Frame { reply: StreamReply::Reply, .. }
                        if !reply.is_empty() && self.link_ok(to, from) =>
                    {
                        let bytes = Self::pooled(&mut self.pool, &reply);
                        self.schedule(at, Delivery::StreamReply { to: from, id, buf: bytes });
                    }
                    StreamData::Frame { .. } | StreamData::Invalid(_) => {
                        if self.link_ok(to, from) {
                            self.schedule(at, Delivery::StreamError { to: from, id, error: "EOF" });
                        }
                    }
                }
                self.stream_buf = reply;
                self.recycle(buf);
            }
            Delivery::StreamReply { to, id, mut buf } => {
                if self.nodes[to].is_running() && self.close_stream(to, id) {
                    self.mix(&[now.as_micros(), to as u64, 3], &buf);
                    let segment = self.net.stream_segment;
                    let Sim { nodes, scratch, stream_buf, .. } = self;
                    let ep = &mut nodes[to].endpoint;
                    let dir = StreamDir::Outbound(id);
                    // An outbound stream's reply leaves `stream_buf` alone.
                    let outcome = feed(ep, now, dir, &mut buf, stream_buf, scratch, segment);
                    if let StreamData::More { .. } = outcome {
                        // The replier closed the stream before a whole frame.
                        ep.handle_stream_error(now, id, "unexpected EOF");
                    }
                    self.after_input(to);
                }
                self.recycle(buf);
            }
            Delivery::StreamError { to, id, error } => {
                if self.nodes[to].is_running() && self.close_stream(to, id) {
                    self.nodes[to].endpoint.handle_stream_error(now, id, error);
                    self.after_input(to);
                }
            }
            Delivery::StreamDeadline { to, id } => {
                if self.nodes[to].is_running() && self.stream_open(to, id) {
                    self.close_stream(to, id);
                    self.nodes[to].endpoint.handle_stream_error(now, id, "i/o timeout");
                    self.after_input(to);
                }
            }
        }
    }

    fn park(&mut self, d: Delivery) -> usize {
        match self.free_slots.pop() {
            Some(s) => {
                self.slots[s] = Some(d);
                s
            }
            None => {
                self.slots.push(Some(d));
                self.slots.len() - 1
            }
        }
    }

    /// The time of the next event, if any.
    pub fn next_event(&mut self) -> Option<Instant> {
        // Drop stale timer entries.
        while let Some(&Reverse((t, i))) = self.timers.peek() {
            if self.nodes[i].armed == Some(t) && self.nodes[i].run != Run::Killed {
                break;
            }
            self.timers.pop();
        }
        let a = self.queue.peek().map(|Reverse((t, _, _))| *t);
        let b = self.timers.peek().map(|Reverse((t, _))| *t);
        match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Advances to the next event time and processes everything due then.
    /// Returns false if nothing is scheduled.
    pub fn step(&mut self) -> bool {
        let Some(t) = self.next_event() else { return false };
        self.now = self.now.max(t);
        self.stats.steps += 1;
        self.touched.clear();
        while let Some(&Reverse((at, _, slot))) = self.queue.peek() {
            if at > self.now {
                break;
            }
            self.queue.pop();
            self.deliver(slot);
        }
        while let Some(&Reverse((at, i))) = self.timers.peek() {
            if at > self.now {
                break;
            }
            self.timers.pop();
            if self.nodes[i].armed != Some(at) {
                continue;
            }
            if self.nodes[i].run == Run::Paused {
                // Re-armed on resume.
                self.nodes[i].armed = None;
                continue;
            }
            self.fire_timers(i);
        }
        true
    }

    /// Runs until virtual time `t` (events at `t` included), calling
    /// `check` after every step; stops early if `check` returns false.
    pub fn run_until_with(&mut self, t: Instant, mut check: impl FnMut(&Sim<E>) -> bool) -> bool {
        while let Some(next) = self.next_event() {
            if next > t {
                break;
            }
            self.step();
            if !check(self) {
                return false;
            }
        }
        self.now = self.now.max(t);
        true
    }

    /// Runs until virtual time `t`.
    pub fn run_until(&mut self, t: Instant) {
        self.run_until_with(t, |_| true);
    }

    /// Runs for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        let t = self.now + d;
        self.run_until(t);
    }

    /// Runs until `done` holds (checked after every step) or `limit` of
    /// virtual time passes; returns the time it took, or `None`.
    pub fn run_until_true(
        &mut self,
        limit: Duration,
        mut done: impl FnMut(&Sim<E>) -> bool,
    ) -> Option<Duration> {
        let start = self.now;
        let end = start + limit;
        if done(self) {
            return Some(Duration::ZERO);
        }
        let mut hit = None;
        self.run_until_with(end, |s| {
            if done(s) {
                hit = Some(s.now - start);
                false
            } else {
                true
            }
        });
        hit
    }

    /// Whether node `observer` sees node `subject` (by index) in `state`.
    pub fn sees(&self, observer: usize, subject: usize, state: NodeState) -> bool {
        let name = self.nodes[subject].endpoint.memberlist().name().clone();
        self.nodes[observer].endpoint.memberlist().node(&name).is_some_and(|n| n.state == state)
    }

    /// Indices of nodes that are up (not killed).
    pub fn up(&self) -> impl Iterator<Item = usize> + '_ {
        self.nodes.iter().enumerate().filter(|(_, n)| n.is_up()).map(|(i, _)| i)
    }

    /// True if every up node sees every up node alive (and knows no more
    /// alive nodes than that).
    pub fn converged(&self) -> bool {
        let up: Vec<usize> = self.up().collect();
        up.iter().all(|&o| {
            let ml = self.nodes[o].endpoint.memberlist();
            ml.num_members() == up.len() && up.iter().all(|&s| self.sees(o, s, NodeState::Alive))
        })
    }
}
