//! memberlist 0.2.2 as a sans-IO state machine: SWIM failure detection with
//! Lifeguard, transmit-limited gossip, push-pull anti-entropy
//! (`protocol/memberlist.md` §9–§11).
//!
//! # Driving it
//!
//! Inputs carry `now`; outputs are drained after every input:
//!
//! * [`Memberlist::handle_datagram`] for every UDP datagram received;
//! * [`Memberlist::handle_timeout`] when [`Memberlist::poll_timeout`] is due;
//! * streams: [`Memberlist::poll_stream`] asks the caller to open a TCP
//!   connection and send the given bytes; the caller reads until
//!   [`stream_frame`] finds one reply frame and hands it to
//!   [`Memberlist::handle_stream_reply`], or reports
//!   [`Memberlist::handle_stream_error`]. Inbound connections: read one frame
//!   the same way, call [`Memberlist::handle_stream_request`], write the
//!   reply it produced. Through [`crate::Endpoint`], the caller only hands
//!   over the bytes read so far and `handle_stream_data` does all of this;
//! * commands: [`Memberlist::join`], [`Memberlist::leave`],
//!   [`Memberlist::update_meta`], [`Memberlist::send_user`].
//!
//! Then call [`Memberlist::poll_transmit`] until `None`,
//! [`Memberlist::poll_stream`] until `None`, [`Memberlist::poll_event`]
//! until `None`, and re-arm the timer with [`Memberlist::poll_timeout`].
//!
//! The instance never reads a clock, never touches a socket and draws all
//! randomness from the [`Rng`] it is given. The worker-level [`Scratch`]
//! (LZW tables and packet scratch) is passed in by the caller so that many
//! instances on one thread share it.
//!
//! # The delegate
//!
//! The layer above (Serf) plugs in through [`Delegate`], passed to every
//! input that may need it: user messages, piggybacked broadcasts, push-pull
//! user state, ack payloads and membership notifications.

mod config;
mod name_key;
mod probe;
mod state;
mod streams;
mod suspicion;
mod transmit;

use core::time::Duration;
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

pub use config::{Config, DEFAULT_VSN};
pub(crate) use state::{ip_from_bytes, IpOctets};
pub use streams::{stream_frame, Framing, MAX_STREAM_FRAME};
pub use suspicion::{suspicion_timeout, Awareness, Suspicion};

use super::broadcast::{BroadcastQueue, Finished, NotifyId};
use crate::rng::Rng;
use crate::time::Instant;
use crate::timer::TimerWheel;
use wire::crypto::Keyring;
use wire::memberlist::{Message, NodeState};
use wire::packet::{PacketCodec, MAX_DATAGRAM};
use wire::stream::StreamCodec;

/// Worker-level scratch shared by every instance on a thread: LZW tables,
/// decompression buffers and the packet assembly area. Allocated once.
pub struct Scratch {
    /// The UDP pipeline.
    pub codec: PacketCodec,
    /// The stream pipeline.
    pub streams: StreamCodec,
    /// Decompressed stream bodies.
    pub inflate: Vec<u8>,
    /// Assembly area for compound parts and encoded messages.
    parts: Box<[u8]>,
    /// Scratch for push-pull user state.
    user_state: Vec<u8>,
    /// Scratch for a plain stream message before sealing.
    plain: Vec<u8>,
}

impl core::fmt::Debug for Scratch {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Scratch")
    }
}

impl Default for Scratch {
    fn default() -> Self {
        Self::new()
    }
}

impl Scratch {
    /// Allocates the tables and buffers (about 300 KiB).
    pub fn new() -> Self {
        Scratch {
            codec: PacketCodec::new(),
            streams: StreamCodec::new(),
            inflate: Vec::new(),
            parts: vec![0; MAX_DATAGRAM].into_boxed_slice(),
            user_state: Vec::new(),
            plain: Vec::new(),
        }
    }
}

/// What the layer above memberlist (Serf) provides and learns.
///
/// Every method has a default that does nothing, so a bare memberlist
/// (tests, the simulator) can use [`NoDelegate`].
pub trait Delegate {
    /// A user message arrived (UDP or stream); `body` follows the `0x08`
    /// type byte and is never empty.
    fn notify_msg(&mut self, _now: Instant, _body: &[u8]) {}

    /// Offers room for broadcasts in an outgoing packet: call `push(msg)`
    /// for each message (a complete Serf message, without the `0x08` user
    /// type byte) while `overhead + len` fits in what is left of `limit`.
    /// `push` returns `false` when the packet cannot take more parts.
    fn get_broadcasts(
        &mut self,
        _overhead: usize,
        _limit: usize,
        _push: &mut dyn FnMut(&[u8]) -> bool,
    ) {
    }

    /// Appends this node's push-pull user state to `out` (Serf: its
    /// push-pull message). Leave `out` untouched for none.
    fn local_state(&mut self, _join: bool, _out: &mut Vec<u8>) {}

    /// Merges a remote node's push-pull user state.
    fn merge_remote_state(&mut self, _now: Instant, _state: &[u8], _join: bool) {}

    /// Writes the payload for an ack to a direct ping into `out`; returns
    /// its length (0 for none, sent as nil).
    fn ack_payload(&mut self, _out: &mut [u8]) -> usize {
        0
    }

    /// A direct probe of `node` completed after `rtt`, with the ack's payload.
    fn notify_ping_complete(
        &mut self,
        _now: Instant,
        _node: &NodeInfo<'_>,
        _rtt: Duration,
        _payload: &[u8],
    ) {
    }

    /// A node became alive (it was unknown, dead or left).
    fn notify_join(&mut self, _now: Instant, _node: &NodeInfo<'_>) {}

    /// A node was declared dead or left.
    fn notify_leave(&mut self, _now: Instant, _node: &NodeInfo<'_>) {}

    /// A node's metadata changed.
    fn notify_update(&mut self, _now: Instant, _node: &NodeInfo<'_>) {}

    /// Another address claims a known node's name (`other`); the claim was
    /// refused.
    fn notify_conflict(&mut self, _now: Instant, _existing: &NodeInfo<'_>, _other: &NodeInfo<'_>) {}
}

/// A delegate that ignores everything.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoDelegate;
impl Delegate for NoDelegate {}

/// A view of one node's state, handed to the delegate.
#[derive(Clone, Copy, Debug)]
pub struct NodeInfo<'a> {
    pub name: &'a Arc<str>,
    pub addr: SocketAddr,
    pub meta: &'a [u8],
    /// `[pmin, pmax, pcur, dmin, dmax, dcur]`.
    pub vsn: [u8; 6],
    pub incarnation: u32,
    pub state: NodeState,
}

/// One entry of the node table.
#[derive(Clone, Debug)]
pub struct Node {
    /// The node's name, shared (not copied) with everything that refers to it.
    pub name: Arc<str>,
    pub addr: IpAddr,
    pub port: u16,
    /// Delegate metadata (Serf: encoded tags).
    pub meta: Vec<u8>,
    pub vsn: [u8; 6],
    pub incarnation: u32,
    pub state: NodeState,
    /// When `state` last changed.
    pub state_change: Instant,
}

impl Node {
    /// The node's gossip address.
    pub fn socket_addr(&self) -> SocketAddr {
        SocketAddr::new(self.addr, self.port)
    }

    /// Dead or left.
    pub fn dead_or_left(&self) -> bool {
        matches!(self.state, NodeState::Dead | NodeState::Left)
    }

    /// The node's highest memberlist protocol version.
    pub fn pmax(&self) -> u8 {
        self.vsn[1]
    }

    /// A view for the delegate.
    pub fn info(&self) -> NodeInfo<'_> {
        NodeInfo {
            name: &self.name,
            addr: self.socket_addr(),
            meta: &self.meta,
            vsn: self.vsn,
            incarnation: self.incarnation,
            state: self.state,
        }
    }
}

/// Identifies a join started with [`Memberlist::join`].
pub type JoinId = u64;
/// Identifies a stream this instance asked the caller to open.
pub type StreamId = u64;

/// Something the caller (agent, simulator) may want to know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Every push-pull of a join has finished.
    JoinCompleted {
        id: JoinId,
        /// Exchanges that succeeded.
        succeeded: usize,
        /// One line per failed address, Go's `Failed to join <ip>: <err>`.
        errors: Vec<String>,
    },
    /// A broadcast queued with a notify id left the queue.
    BroadcastFinished { id: NotifyId, how: Finished },
    /// A notable protocol event, for logs.
    Log(LogEvent),
}

/// Protocol events an agent logs (names are shared, nothing is formatted here).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogEvent {
    /// A probe got no ack, direct, indirect or TCP: the node is now suspect.
    SuspectNoAcks { node: Arc<str> },
    /// A suspicion timed out: the node is now dead.
    MarkedDead { node: Arc<str>, confirmations: u32 },
    /// Another node accused us; we raised our incarnation.
    Refuting { what: &'static str, from: Arc<str> },
    /// Another address claims a known name.
    ConflictingAddress { node: Arc<str>, existing: SocketAddr, other: SocketAddr },
    /// TCP reached a node that UDP probes could not.
    FallbackPingOnly { node: Arc<str> },
    /// A periodic or join push-pull failed.
    PushPullFailed { addr: SocketAddr, error: String },
    /// A merge was refused because of incompatible protocol versions.
    IncompatibleProtocol { error: String },
    /// An inbound stream could not be read (wrong key, garbage, a version
    /// we do not speak). Logged at most once per [`STREAM_ERROR_LOG_EVERY`];
    /// `suppressed` counts the rejections not logged since the last line.
    StreamRejected { error: String, suppressed: u64 },
}

/// The least time between two [`LogEvent::StreamRejected`] lines, so a peer
/// (or an attacker) sending junk cannot flood the log.
pub const STREAM_ERROR_LOG_EVERY: Duration = Duration::from_secs(10);

/// Counters of what was dropped and why (never a log line per packet).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub datagrams_received: u64,
    pub datagrams_sent: u64,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    /// Datagrams or messages that failed to decode, decrypt or verify.
    pub malformed: u64,
    /// Datagrams that no key could decrypt.
    pub decrypt_failed: u64,
    /// Pings addressed to another node name.
    pub ping_wrong_node: u64,
    /// Outgoing datagrams dropped because the send queue was full.
    pub send_queue_full: u64,
    /// Streams refused or failed.
    pub stream_errors: u64,
    /// Events dropped because the event queue was full.
    pub events_dropped: u64,
    /// Times this node moved another node to suspect.
    pub suspicions: u64,
    /// Times this node marked another node dead (not left).
    pub deaths: u64,
    /// Times this node refuted a claim about itself.
    pub refutations: u64,
    /// Broadcasts refused because they could never fit a gossip packet.
    pub broadcasts_too_large: u64,
    /// Probes finished (acked, or ended without an ack).
    pub probes: u64,
    /// Sum of probe durations, from the ping to the ack or the end of the
    /// probe window, µs (Go's `memberlist.probeNode` timer).
    pub probe_time_us: u64,
    /// Probes that ended without an ack (the target was suspected).
    pub probe_failures: u64,
    /// Direct acks of our probes.
    pub probe_acks: u64,
    /// Sum of the round-trip times of those acks, µs.
    pub probe_rtt_us: u64,
    /// Nacks received for our indirect probes.
    pub nacks: u64,
    /// Gossip rounds run.
    pub gossip_rounds: u64,
    /// Push-pull exchanges started (periodic and joins).
    pub push_pulls: u64,
}

/// One datagram to send: `buf[range]` to `dst`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    pub dst: SocketAddr,
    pub range: core::ops::Range<usize>,
}

/// A stream the caller must open: connect to `addr`, write the bytes
/// [`Memberlist::poll_stream`] produced, then (for push-pull and ping) read
/// one reply frame, all before `deadline`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamRequest {
    pub id: StreamId,
    pub addr: SocketAddr,
    pub deadline: Instant,
    /// Whether a reply is expected.
    pub expects_reply: bool,
}

/// What to do with an inbound stream after [`Memberlist::handle_stream_request`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamReply {
    /// Write the reply bytes, then close.
    Reply,
    /// Close without replying.
    Close,
}

/// Which end of a TCP stream the bytes handed to
/// [`Endpoint::handle_stream_data`](crate::Endpoint::handle_stream_data) come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamDir {
    /// A peer opened the stream on our listener: the bytes are its request.
    Inbound,
    /// We opened the stream for [`StreamRequest::id`]: the bytes are the reply.
    Outbound(StreamId),
}

/// Where the bytes read so far from a stream stand, as
/// [`Endpoint::handle_stream_data`](crate::Endpoint::handle_stream_data) answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamData {
    /// The frame is not complete: read more, holding at most `limit` bytes
    /// in all (the frame's announced length once its header is in, else
    /// the largest frame a stream may carry, [`MAX_STREAM_FRAME`]).
    More { limit: usize },
    /// The first `len` bytes were one frame and have been handled. For an
    /// inbound stream `reply` says whether to write the reply bytes; for an
    /// outbound stream it is [`StreamReply::Close`].
    Frame { len: usize, reply: StreamReply },
    /// The bytes can never form a frame (too large, an unknown type,
    /// malformed msgpack); close the connection. Its `Display` is the error
    /// text Go gives; an outbound stream has been failed with it already.
    Invalid(wire::Error),
}

#[derive(Clone, Debug)]
enum Timer {
    ProbeTick,
    /// Direct-ack wait of the probe with this sequence number ended.
    ProbeTimeout(u32),
    /// The whole probe window of this sequence number ended.
    ProbeDeadline(u32),
    /// Last wait for a TCP fallback result.
    ProbeGrace(u32),
    Gossip,
    PushPull,
    Suspicion(Arc<str>),
    /// An indirect-probe helper's wait for the target's ack ended.
    IndirectExpire(u32),
    /// Safety net: a stream the caller never reported on.
    Stream(StreamId),
}

/// Largest number of events held for [`Memberlist::poll_event`].
const MAX_EVENTS: usize = 1024;

/// The memberlist state machine. See the module docs for how to drive it.
pub struct Memberlist {
    config: Config,
    name: Arc<str>,
    rng: Rng,
    keyring: Option<Keyring>,
    /// The node table in probe order (shuffled).
    nodes: Vec<Node>,
    /// Name → index into `nodes`.
    index: ahash::AHashMap<name_key::NameKey, u32>,
    probe_index: usize,
    /// Our own incarnation counter (only we raise it).
    incarnation: u32,
    leaving: bool,
    leave_notify: Option<NotifyId>,
    awareness: Awareness,
    seq_no: u32,
    timers: TimerWheel<Timer>,
    probe: probe::ProbeState,
    suspicions: Vec<state::ActiveSuspicion>,
    broadcasts: BroadcastQueue,
    pending: VecDeque<transmit::Send>,
    /// Bytes of queued user packets, indexed by `Send::User::slot`.
    user_slots: Vec<Vec<u8>>,
    user_free: Vec<u32>,
    streams: streams::Streams,
    events: VecDeque<Event>,
    next_notify: NotifyId,
    stats: Stats,
    /// Rate limit of the "failed to receive" log line for rejected streams:
    /// when it was last logged and how many were rejected since.
    stream_error_log: Option<Instant>,
    stream_errors_unlogged: u64,
    shutdown: bool,
}

impl core::fmt::Debug for Memberlist {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Memberlist")
            .field("name", &self.name)
            .field("nodes", &self.nodes.len())
            .field("incarnation", &self.incarnation)
            .finish_non_exhaustive()
    }
}

impl Memberlist {
    /// Creates an instance and makes the local node alive (incarnation 1,
    /// advertising `meta`). Probe, gossip and push-pull start after a random
    /// stagger within their intervals. `keyring` enables encryption.
    ///
    /// `meta` must be at most 512 bytes (callers validate; longer is cut).
    pub fn new(
        config: Config,
        now: Instant,
        mut rng: Rng,
        keyring: Option<Keyring>,
        meta: &[u8],
    ) -> Self {
        let name: Arc<str> = Arc::from(config.name.as_str());
        let mut timers = TimerWheel::with_capacity(64, now);
        for (interval, timer) in [
            (config.probe_interval, Timer::ProbeTick),
            (config.gossip_interval, Timer::Gossip),
            (config.push_pull_interval, Timer::PushPull),
        ] {
            if !interval.is_zero() {
                let stagger = Duration::from_nanos(rng.below(interval.as_nanos() as u64));
                timers.insert(now + stagger, timer);
            }
        }
        let mut ml = Memberlist {
            broadcasts: BroadcastQueue::new(config.retransmit_mult, 64, config.max_broadcasts),
            pending: VecDeque::with_capacity(config.max_pending_sends.min(4096)),
            awareness: Awareness::new(config.awareness_max_multiplier),
            config,
            name,
            rng,
            keyring,
            nodes: Vec::with_capacity(16),
            index: ahash::AHashMap::with_capacity(16),
            probe_index: 0,
            incarnation: 0,
            leaving: false,
            leave_notify: None,
            seq_no: 0,
            timers,
            probe: probe::ProbeState::default(),
            suspicions: Vec::new(),
            user_slots: Vec::new(),
            user_free: Vec::new(),
            streams: streams::Streams::default(),
            events: VecDeque::with_capacity(16),
            next_notify: 1,
            stats: Stats::default(),
            stream_error_log: None,
            stream_errors_unlogged: 0,
            shutdown: false,
        };
        ml.set_alive(now, meta);
        ml
    }

    /// This node's name.
    pub fn name(&self) -> &Arc<str> {
        &self.name
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The node table (probe order; includes us, suspect, dead and left nodes).
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// A node by name.
    pub fn node(&self, name: &str) -> Option<&Node> {
        let i = *self.index.get(name.as_bytes())?;
        self.nodes.get(i as usize)
    }

    /// Our own entry.
    pub fn local_node(&self) -> &Node {
        // The local node is inserted by `new` and never removed.
        self.node(&self.name).unwrap_or_else(|| unreachable_local())
    }

    /// Nodes that are alive or suspect (Go's `NumMembers`).
    pub fn num_members(&self) -> usize {
        self.nodes.iter().filter(|n| !n.dead_or_left()).count()
    }

    /// Entries in the node table, including dead and left (the `N` of every formula).
    pub fn num_nodes(&self) -> usize {
        self.nodes.len()
    }

    /// Lifeguard health score (Serf's `health_score`).
    pub fn health_score(&self) -> u32 {
        self.awareness.score()
    }

    /// Drop counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Messages waiting in memberlist's own broadcast queue.
    pub fn broadcast_queue_len(&self) -> usize {
        self.broadcasts.len()
    }

    /// The keyring, if encryption is enabled.
    pub fn keyring(&self) -> Option<&Keyring> {
        self.keyring.as_ref()
    }

    /// Mutable keyring access (key rotation); new keys apply to the next packet.
    pub fn keyring_mut(&mut self) -> Option<&mut Keyring> {
        self.keyring.as_mut()
    }

    /// True once [`Memberlist::leave`] was called.
    pub fn is_leaving(&self) -> bool {
        self.leaving
    }

    /// The next deadline at which [`Memberlist::handle_timeout`] must be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.shutdown {
            return None;
        }
        self.timers.next_deadline()
    }

    /// Processes every timer due at `now`. (The scratch is not needed yet:
    /// what timers queue is built when polled; it is taken like every
    /// input's so the signature can stay when that changes.)
    pub fn handle_timeout(&mut self, now: Instant, _scratch: &mut Scratch, d: &mut impl Delegate) {
        if self.shutdown {
            return;
        }
        // Bound the work per call: timers scheduled for `now` by handlers run
        // in the same call, but a pathological loop cannot spin forever.
        for _ in 0..100_000 {
            let Some((_, timer)) = self.timers.poll_expired(now) else { break };
            self.on_timer(now, timer, d);
        }
    }

    fn on_timer(&mut self, now: Instant, timer: Timer, d: &mut impl Delegate) {
        match timer {
            Timer::ProbeTick => {
                let next = now + self.config.probe_interval;
                self.timers.insert(next, Timer::ProbeTick);
                self.probe_tick(now, d);
            }
            Timer::ProbeTimeout(seq) => self.probe_direct_timeout(now, seq),
            Timer::ProbeDeadline(seq) => self.probe_deadline(now, seq, d),
            Timer::ProbeGrace(seq) => self.probe_grace(now, seq, d),
            Timer::Gossip => {
                self.timers.insert(now + self.config.gossip_interval, Timer::Gossip);
                self.gossip(now);
            }
            Timer::PushPull => {
                let interval = push_pull_scale(self.config.push_pull_interval, self.nodes.len());
                self.timers.insert(now + interval, Timer::PushPull);
                self.periodic_push_pull(now);
            }
            Timer::Suspicion(node) => self.suspicion_expired(now, &node, d),
            Timer::IndirectExpire(seq) => self.indirect_expired(seq),
            Timer::Stream(id) => self.stream_expired(now, id, d),
        }
    }

    /// Processes one received datagram (`protocol/memberlist.md` §5.5):
    /// decrypts it in place, checks its CRC, and handles every message in
    /// it. `from` is the datagram's source address, used to answer pings
    /// that carry no source. Malformed input is counted in [`Stats`] and
    /// dropped; one bad part of a compound does not drop the others.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        datagram: &mut [u8],
        scratch: &mut Scratch,
        d: &mut impl Delegate,
    ) {
        if self.shutdown {
            return;
        }
        self.stats.datagrams_received = self.stats.datagrams_received.saturating_add(1);
        self.stats.bytes_received = self.stats.bytes_received.saturating_add(datagram.len() as u64);
        let range = match PacketCodec::open(datagram, self.keyring.as_ref()) {
            Ok(r) => r,
            Err(e) => {
                use wire::Error as E;
                // With a keyring, anything that fails before the CRC stage
                // (too short, unknown version, no key authenticates) is a
                // decryption failure: Go logs all of them as such.
                if self.keyring.is_some()
                    && matches!(e, E::Decrypt | E::Truncated | E::EncryptionVersion(_))
                {
                    self.stats.decrypt_failed = self.stats.decrypt_failed.saturating_add(1);
                }
                self.stats.malformed = self.stats.malformed.saturating_add(1);
                return;
            }
        };
        let Some(payload) = datagram.get(range) else {
            self.stats.malformed = self.stats.malformed.saturating_add(1);
            return;
        };
        scratch.codec.walk(payload, &mut |m| match m {
            Ok(m) => self.handle_message(now, from, &m, d),
            Err(_) => self.stats.malformed = self.stats.malformed.saturating_add(1),
        });
    }

    fn handle_message(
        &mut self,
        now: Instant,
        from: SocketAddr,
        m: &Message<'_>,
        d: &mut impl Delegate,
    ) {
        match m {
            Message::Ping(p) => self.handle_ping(from, p),
            Message::IndirectPing(r) => self.handle_indirect_ping(now, from, r),
            Message::Ack(a) => self.handle_ack(now, a.seq_no, a.payload, d),
            Message::Nack(n) => self.handle_nack(n.seq_no),
            Message::Suspect(s) => self.suspect_node(now, s),
            Message::Alive(a) => self.handle_alive(now, a, d),
            Message::Dead(x) => self.dead_node(now, x.incarnation, x.node, x.from, d),
            Message::User(body) => {
                if !body.is_empty() {
                    d.notify_msg(now, body);
                }
            }
        }
    }

    /// The next memberlist-level event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        if let Some((id, how)) = self.broadcasts.poll_finished() {
            return Some(Event::BroadcastFinished { id, how });
        }
        self.events.pop_front()
    }

    fn emit(&mut self, e: Event) {
        if self.events.len() >= MAX_EVENTS {
            self.stats.events_dropped = self.stats.events_dropped.saturating_add(1);
            return;
        }
        self.events.push_back(e);
    }

    fn log(&mut self, e: LogEvent) {
        self.emit(Event::Log(e));
    }

    fn next_seq(&mut self) -> u32 {
        self.seq_no = self.seq_no.wrapping_add(1);
        self.seq_no
    }

    fn new_notify(&mut self) -> NotifyId {
        let id = self.next_notify;
        self.next_notify = self.next_notify.wrapping_add(1);
        id
    }

    /// Starts a graceful leave: our entry becomes `left` and a `dead` message
    /// about us (From = us) is broadcast. Returns the notify id reported in
    /// [`Event::BroadcastFinished`] once that message has been fully
    /// retransmitted, or `None` if no other live node exists to tell (the
    /// leave is complete at once). Keep driving the instance (it still
    /// answers pings) until then or until your timeout.
    pub fn leave(&mut self, now: Instant, d: &mut impl Delegate) -> Option<NotifyId> {
        if self.leaving {
            return self.leave_notify.filter(|id| self.broadcasts.is_pending(*id));
        }
        self.leaving = true;
        let notify = self.new_notify();
        self.leave_notify = Some(notify);
        let inc = self.local_node().incarnation;
        let me = self.name.clone();
        self.dead_node(now, inc, &me, &me, d);
        let any_alive = self.nodes.iter().any(|n| !n.dead_or_left() && n.name != self.name);
        if any_alive && self.broadcasts.is_pending(notify) {
            Some(notify)
        } else {
            None
        }
    }

    /// Replaces our metadata: raises our incarnation and broadcasts a fresh
    /// alive. Returns a notify id as [`Memberlist::leave`] does, or `None`
    /// when there is nobody to tell.
    pub fn update_meta(
        &mut self,
        now: Instant,
        meta: &[u8],
        d: &mut impl Delegate,
    ) -> Option<NotifyId> {
        self.incarnation = self.incarnation.wrapping_add(1);
        let notify = self.new_notify();
        // Copy the identity fields only: cloning the whole entry would
        // allocate a copy of the old meta.
        let me = self.local_node();
        let (name, addr, port, vsn) = (me.name.clone(), me.addr, me.port, me.vsn);
        let alive = state::AliveArgs {
            incarnation: self.incarnation,
            node: &name,
            addr,
            port,
            meta,
            vsn: Some(vsn),
        };
        self.alive_node(now, &alive, Some(notify), true, d);
        let any_alive = self.nodes.iter().any(|n| !n.dead_or_left() && n.name != self.name);
        (any_alive && self.broadcasts.is_pending(notify)).then_some(notify)
    }

    /// Stops all activity (no message is sent; use [`Memberlist::leave`]
    /// first for a graceful exit). Pending output is discarded.
    pub fn shutdown(&mut self) {
        self.shutdown = true;
        self.pending.clear();
        self.broadcasts.clear();
    }

    /// True after [`Memberlist::shutdown`].
    pub fn is_shutdown(&self) -> bool {
        self.shutdown
    }
}

/// The push-pull period for a cluster of `n` nodes: unchanged up to 32
/// nodes, then `interval × (ceil(log2(n) − log2(32)) + 1)`.
pub fn push_pull_scale(interval: Duration, n: usize) -> Duration {
    const THRESHOLD: usize = 32;
    if n <= THRESHOLD {
        return interval;
    }
    let mult = ((n as f64).log2() - (THRESHOLD as f64).log2()).ceil() + 1.0;
    interval.saturating_mul(mult as u32)
}

#[cold]
fn unreachable_local() -> ! {
    // `Memberlist::new` inserts the local node and nothing removes it.
    panic!("local node missing from the node table")
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests;
