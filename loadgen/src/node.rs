//! The engine instance `loadgen` drives in `inproc` and `sim` modes: one
//! Serf node (on memberlist) wrapped so that
//!
//! - its events leave as small [`Obs`] records stamped with the engine time
//!   of the input that caused them (so the harness's own lag does not show
//!   up as protocol latency), and only the kinds the scenarios count;
//! - it answers every user query at once (`ok`), like an agent with a
//!   query handler;
//! - it can be *stalled* (`inproc`): until a deadline it handles nothing,
//!   sends nothing and its timers wait, while arriving datagrams queue in a
//!   bounded backlog handled on resume — what SIGSTOP does to a process.
//!   One difference from SIGSTOP: an inbound TCP stream that arrives during
//!   a stall is closed at once instead of hanging until the caller's
//!   deadline (the runtime wants the reply synchronously);
//! - it can sit behind a partition (`inproc`): datagrams to and from nodes in
//!   another group are dropped, and streams to them fail at their deadline
//!   with an i/o timeout, as over a cut link.
//!
//! In `sim` mode the simulator provides pause and partition itself; the
//! wrapper then only translates events.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::Arc;

use engine::proto::memberlist::{Scratch, StreamId, StreamRequest, Transmit};
use engine::proto::serf::{Event, MemberEventKind, Serf};
use engine::proto::{Endpoint, Forwarding, Input, Layer};
use engine::time::Instant;

/// Datagrams a stalled node queues before dropping (a socket buffer).
pub const STALL_BACKLOG: usize = 1024;
/// Observations a node holds for the harness before dropping.
const MAX_OUT: usize = 1 << 16;

/// What an observation is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `subject` joined (or came back) in the observer's view.
    Alive,
    /// `subject` failed in the observer's view.
    Failed,
    /// `subject` left in the observer's view.
    Left,
    /// The observer suspected `subject` (its own probe got no ack).
    Suspect,
    /// User event number `subject` was delivered to the observer.
    User,
    /// `subject` acked the observer's query.
    QueryAck,
    /// `subject` responded to the observer's query.
    QueryResponse,
    /// The observer's join finished; `subject` nodes were contacted.
    JoinDone,
    /// The observer's graceful leave finished.
    LeaveDone,
}

/// One observation: `observer` saw `kind` about `subject` at `at`.
#[derive(Clone, Copy, Debug)]
pub struct Obs {
    pub observer: u32,
    pub subject: u32,
    pub kind: Kind,
    pub at: Instant,
}

/// The name of node `i` (shared with the simulator helpers).
pub fn name(i: usize) -> String {
    format!("n{i}")
}

/// The index in a name `n{i}`.
pub fn index_of(name: &str) -> Option<u32> {
    name.strip_prefix('n')?.parse().ok()
}

/// The user event name of event number `k`.
pub fn event_name(k: u32) -> String {
    format!("lg-{k}")
}

/// State shared by every instance of an `inproc` cluster (read-only on the
/// hot path except the partition groups).
#[derive(Debug, Default)]
pub struct Control {
    /// Node index by address.
    pub index: HashMap<IpAddr, u32>,
    /// Partition group of each node.
    pub groups: Vec<AtomicU16>,
    /// Whether any partition is in force (skips the lookups when not).
    pub partitioned: AtomicBool,
}

impl Control {
    fn group_of(&self, addr: SocketAddr) -> Option<u16> {
        let i = *self.index.get(&addr.ip())?;
        self.groups.get(i as usize).map(|g| g.load(Ordering::Relaxed))
    }

    /// Whether traffic between node `me` and `addr` is cut.
    fn cut(&self, me: u32, addr: SocketAddr) -> bool {
        if !self.partitioned.load(Ordering::Relaxed) {
            return false;
        }
        let mine = self.groups.get(me as usize).map(|g| g.load(Ordering::Relaxed));
        match (mine, self.group_of(addr)) {
            (Some(a), Some(b)) => a != b,
            _ => false,
        }
    }
}

/// A Serf node as loadgen runs it (see the module docs).
pub struct LgNode {
    pub serf: Serf,
    idx: u32,
    ctl: Option<Arc<Control>>,
    out: VecDeque<Obs>,
    /// Observations dropped because `out` was full.
    pub out_drops: u64,
    stalled_until: Option<Instant>,
    backlog: Vec<(SocketAddr, Vec<u8>)>,
    /// Datagrams dropped by a full stall backlog.
    pub backlog_drops: u64,
    /// Stream outcomes that arrived while stalled.
    stream_backlog: Vec<(StreamId, Result<Vec<u8>, String>)>,
    /// Outbound streams across a partition: failed at their deadline.
    blocked_streams: Vec<(StreamId, Instant)>,
    last_now: Instant,
}

impl LgNode {
    /// Wraps node `idx`; `ctl` enables stalls and partitions (`inproc`).
    pub fn new(serf: Serf, idx: u32, ctl: Option<Arc<Control>>) -> Self {
        let mut n = LgNode {
            serf,
            idx,
            ctl,
            out: VecDeque::new(),
            out_drops: 0,
            stalled_until: None,
            backlog: Vec::new(),
            backlog_drops: 0,
            stream_backlog: Vec::new(),
            blocked_streams: Vec::new(),
            last_now: Instant::ZERO,
        };
        n.collect(Instant::ZERO);
        n.out.clear();
        n
    }

    /// Stalls the node until `until` (see the module docs).
    pub fn stall_until(&mut self, until: Instant) {
        self.stalled_until = Some(until);
    }

    fn stalled(&self, now: Instant) -> bool {
        self.stalled_until.is_some_and(|u| now < u)
    }

    fn push(&mut self, subject: u32, kind: Kind, at: Instant) {
        if self.out.len() >= MAX_OUT {
            self.out_drops += 1;
            return;
        }
        self.out.push_back(Obs { observer: self.idx, subject, kind, at });
    }

    /// Moves the Serf node's events into `out`, answering queries.
    fn collect(&mut self, now: Instant) {
        self.last_now = self.last_now.max(now);
        while let Some(e) = self.serf.poll_event() {
            match e {
                Event::Member { kind, member } => {
                    let Some(s) = index_of(&member.name) else { continue };
                    if s == self.idx {
                        continue;
                    }
                    let k = match kind {
                        MemberEventKind::Join => Kind::Alive,
                        MemberEventKind::Failed => Kind::Failed,
                        MemberEventKind::Leave => Kind::Left,
                        MemberEventKind::Update | MemberEventKind::Reap => continue,
                    };
                    self.push(s, k, now);
                }
                Event::User(u) => {
                    if let Some(k) = u.name.strip_prefix("lg-").and_then(|k| k.parse().ok()) {
                        self.push(k, Kind::User, now);
                    }
                }
                Event::Query(q) => {
                    let _ = self.serf.respond(now, q.id, b"ok");
                }
                Event::QueryAck { from, .. } => {
                    if let Some(s) = index_of(&from) {
                        self.push(s, Kind::QueryAck, now);
                    }
                }
                Event::QueryResponse { from, .. } => {
                    if let Some(s) = index_of(&from) {
                        self.push(s, Kind::QueryResponse, now);
                    }
                }
                Event::JoinDone { joined, .. } => {
                    self.push(u32::try_from(joined).unwrap_or(u32::MAX), Kind::JoinDone, now)
                }
                Event::LeaveDone { .. } => self.push(self.idx, Kind::LeaveDone, now),
                Event::Log(l) => {
                    // memberlist's "Suspect <name> has failed, no acks received".
                    if let Some(rest) = l.text.strip_prefix("Suspect ") {
                        if let Some(s) =
                            rest.strip_suffix(" has failed, no acks received").and_then(index_of)
                        {
                            self.push(s, Kind::Suspect, now);
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// Ends a stall: replays the queued datagrams and stream outcomes.
    fn resume(&mut self, now: Instant, scratch: &mut Scratch) {
        self.stalled_until = None;
        for (from, mut dg) in core::mem::take(&mut self.backlog) {
            self.serf.handle_datagram(now, from, &mut dg, scratch);
        }
        for (id, r) in core::mem::take(&mut self.stream_backlog) {
            match r {
                Ok(mut frame) => self.serf.handle_stream_reply(now, id, &mut frame, scratch),
                Err(e) => self.serf.handle_stream_error(now, id, &e),
            }
        }
    }
}

/// The wrapper is a layer over the Serf node: stalls and partitions decide
/// which inputs and outputs pass, events become observations.
impl Layer for LgNode {
    type Inner = Serf;
    type Event = Obs;

    fn inner(&self) -> &Serf {
        &self.serf
    }

    fn inner_mut(&mut self, _: Forwarding) -> &mut Serf {
        &mut self.serf
    }

    fn next_event(&mut self) -> Option<Obs> {
        self.out.pop_front()
    }

    fn admit(&mut self, now: Instant, input: Input<'_>) -> bool {
        match input {
            Input::Datagram { from, datagram } => {
                if self.ctl.as_ref().is_some_and(|c| c.cut(self.idx, from)) {
                    return false;
                }
                if self.stalled(now) {
                    if self.backlog.len() < STALL_BACKLOG {
                        self.backlog.push((from, datagram.to_vec()));
                    } else {
                        self.backlog_drops += 1;
                    }
                    return false;
                }
                true
            }
            Input::Timeout { scratch } => {
                if self.stalled(now) {
                    return false;
                }
                if self.stalled_until.is_some() {
                    self.resume(now, scratch);
                }
                let mut i = 0;
                while i < self.blocked_streams.len() {
                    let (id, deadline) = self.blocked_streams[i];
                    if deadline <= now {
                        self.blocked_streams.swap_remove(i);
                        self.serf.handle_stream_error(now, id, "i/o timeout");
                    } else {
                        i += 1;
                    }
                }
                true
            }
            Input::StreamReply { id, frame } => {
                if self.stalled(now) {
                    self.stream_backlog.push((id, Ok(frame.to_vec())));
                    return false;
                }
                true
            }
            Input::StreamError { id, error } => {
                if self.stalled(now) {
                    self.stream_backlog.push((id, Err(error.to_string())));
                    return false;
                }
                true
            }
            Input::StreamRequest { .. } => !self.stalled(now),
        }
    }

    fn after_input(&mut self, now: Instant) {
        self.collect(now);
    }

    fn deadline(&self) -> Option<Instant> {
        if let Some(u) = self.stalled_until {
            return Some(u);
        }
        let blocked = self.blocked_streams.iter().map(|&(_, d)| d).min();
        match (self.serf.poll_timeout(), blocked) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn after_output(&mut self) {
        // What draining the Serf node's outputs settled, stamped with the
        // time of the input they follow.
        let now = self.last_now;
        self.collect(now);
    }

    fn holds_output(&self) -> bool {
        self.stalled_until.is_some()
    }

    fn keep_transmit(&mut self, t: &Transmit) -> bool {
        !self.ctl.as_ref().is_some_and(|c| c.cut(self.idx, t.dst))
    }

    fn keep_stream(&mut self, r: &StreamRequest, out: &mut Vec<u8>) -> bool {
        if self.ctl.as_ref().is_some_and(|c| c.cut(self.idx, r.addr)) {
            out.clear();
            self.blocked_streams.push((r.id, r.deadline));
            return false;
        }
        true
    }
}
