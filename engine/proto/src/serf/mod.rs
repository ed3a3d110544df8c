//! Serf 0.9.4 on top of memberlist, as a sans-IO state machine
//! (`protocol/serf.md`): member statuses driven by Lamport-clocked join and
//! leave intents, user events, queries with acks, responses and relays,
//! internal queries (ping, name conflicts, keyring), Vivaldi coordinates,
//! reaping and reconnection.
//!
//! [`Serf`] owns a [`Memberlist`] and plugs its own state in as the
//! delegate: it is a [`Layer`] over [`Membership`]`<SerfState>`, and so an
//! [`Endpoint`](crate::Endpoint): drive it like memberlist (inputs with
//! `now`, drain outputs after each). Commands whose Go counterparts block
//! (join, leave, force-leave, tag updates, key operations, queries) return
//! an id at once and report completion as an [`Event`].
//!
//! What leaves the engine are raw events; coalescing, snapshots and event
//! handlers belong to the agent (`agent/src/agent/coalesce.rs`).

mod config;
mod delegate;
mod events;
mod keys;
pub mod limits;
mod members;
mod query;

use core::time::Duration;
use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

pub use config::{Restore, SerfConfig, PROTOCOL_MAX, PROTOCOL_MIN, USER_EVENT_SIZE_SANE_LIMIT};
pub use keys::{base64, KeyOp, KeyResponse};
pub use query::{QueryParams, CONFLICT_QUERY, INTERNAL_PREFIX, PING_QUERY};

use super::broadcast::{BroadcastQueue, NotifyId};
use super::coordinate::{LatencyFilter, VivaldiClient, VivaldiConfig};
use super::memberlist::{self, Memberlist};
use super::{Forwarding, Layer, Membership};
use crate::rng::Rng;
use crate::time::Instant;
use crate::timer::{TimerToken, TimerWheel};
use wire::coordinate::Coordinate;
use wire::crypto::Keyring;
use wire::msgpack::{Dialect, Writer};
use wire::serf::{write_tags, TAG_MAGIC};
use wire::Body;

/// A member's status as Serf sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum MemberStatus {
    None = 0,
    Alive = 1,
    Leaving = 2,
    Left = 3,
    Failed = 4,
}

impl MemberStatus {
    /// Go's string form (`alive`, `leaving`, `left`, `failed`, `none`).
    pub fn as_str(self) -> &'static str {
        match self {
            MemberStatus::None => "none",
            MemberStatus::Alive => "alive",
            MemberStatus::Leaving => "leaving",
            MemberStatus::Left => "left",
            MemberStatus::Failed => "failed",
        }
    }
}

/// Tags: sorted, so encoding is deterministic.
pub type Tags = BTreeMap<String, String>;

/// A member as reported to the agent (shared pieces are reference counted).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub name: Arc<str>,
    pub addr: IpAddr,
    pub port: u16,
    pub tags: Arc<Tags>,
    pub status: MemberStatus,
    /// `[pmin, pmax, pcur, dmin, dmax, dcur]`.
    pub vsn: [u8; 6],
}

impl Member {
    /// `ip:port` as Go formats a TCP address (IPv6 in brackets).
    pub fn socket_addr(&self) -> SocketAddr {
        SocketAddr::new(self.addr, self.port)
    }
}

/// The kinds of member events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MemberEventKind {
    Join,
    Leave,
    Failed,
    Update,
    Reap,
}

impl MemberEventKind {
    /// Go's event name (`member-join`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            MemberEventKind::Join => "member-join",
            MemberEventKind::Leave => "member-leave",
            MemberEventKind::Failed => "member-failed",
            MemberEventKind::Update => "member-update",
            MemberEventKind::Reap => "member-reap",
        }
    }
}

/// A user event as delivered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserEvent {
    pub ltime: u64,
    pub name: String,
    pub payload: Vec<u8>,
    pub coalesce: bool,
}

/// A query this node should answer (internal `_serf_` queries never appear).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryEvent {
    /// Handle for [`Serf::respond`].
    pub id: u64,
    pub ltime: u64,
    pub name: String,
    pub payload: Vec<u8>,
    /// After this, a response is refused.
    pub deadline: Instant,
}

/// Identifies a command whose completion is reported later.
pub type CommandId = u64;
/// Identifies a query this node started.
pub type QueryId = u64;

/// Log severity, as the agent prints it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

/// A log line from the engine: `[LEVEL] component: text`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogLine {
    pub level: Level,
    /// `serf` or `memberlist`.
    pub component: &'static str,
    pub text: String,
}

/// What a Serf instance reports.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// A member joined, left, failed, changed tags or was reaped.
    Member { kind: MemberEventKind, member: Member },
    /// A user event arrived (or was sent locally).
    User(UserEvent),
    /// A query to answer with [`Serf::respond`].
    Query(QueryEvent),
    /// An ack to a query we started.
    QueryAck { id: QueryId, from: Arc<str> },
    /// A response to a query we started.
    QueryResponse { id: QueryId, from: Arc<str>, payload: Vec<u8> },
    /// A query we started reached its deadline; nothing more will come.
    QueryDone { id: QueryId },
    /// A [`Serf::join`] finished: contacted nodes and per-address errors.
    JoinDone { id: CommandId, joined: usize, errors: Vec<String> },
    /// A graceful leave began; emitted before any event the leave itself
    /// causes (a snapshot records `leave` here and nothing after, as Go's
    /// does).
    LeaveStarted,
    /// The graceful leave finished (`error` if it timed out).
    LeaveDone { error: Option<String> },
    /// A force-leave broadcast finished.
    ForceLeaveDone { id: CommandId, error: Option<String> },
    /// A tag update finished.
    TagsDone { id: CommandId, error: Option<String> },
    /// A cluster-wide key operation finished.
    KeysDone { id: CommandId, response: KeyResponse, error: Option<String> },
    /// The local keyring changed (persist it if a keyring file is configured).
    KeyringChanged,
    /// The instance shut itself down (e.g. it lost a name-conflict vote).
    Shutdown { reason: String },
    /// A log line.
    Log(LogLine),
}

/// The instance's own lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Alive,
    Leaving,
    Left,
    Shutdown,
}

/// A Lamport clock.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LamportClock(u64);

impl LamportClock {
    /// The current time.
    pub fn time(&self) -> u64 {
        self.0
    }
    /// Advances by one and returns the new time.
    pub fn increment(&mut self) -> u64 {
        self.0 = self.0.saturating_add(1);
        self.0
    }
    /// Moves past `v` if it is not behind: the clock becomes `v + 1`.
    pub fn witness(&mut self, v: u64) {
        if v >= self.0 {
            self.0 = v.saturating_add(1);
        }
    }
}

/// Counters for `serf info` (Go's `stats`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SerfStats {
    pub members: usize,
    pub failed: usize,
    pub left: usize,
    pub health_score: u32,
    pub member_time: u64,
    pub event_time: u64,
    pub query_time: u64,
    pub intent_queue: usize,
    pub event_queue: usize,
    pub query_queue: usize,
    pub encrypted: bool,
    pub coordinate_resets: Option<u64>,
    /// Messages dropped by the queue-depth guard.
    pub queue_pruned: u64,
    /// Events dropped because the event queue was full.
    pub events_dropped: u64,
}

/// Timers of the Serf layer.
#[derive(Clone, Debug)]
enum Timer {
    Reap,
    Reconnect,
    QueueCheck,
    /// A query we started reaches its deadline.
    QueryDone(QueryId),
    /// A query we received can no longer be answered.
    ResponseExpire(u64),
    /// A broadcast we wait for took too long.
    WaitTimeout(NotifyId),
    /// The end of the leave's propagation delay.
    LeavePropagated,
    /// Erase a pruned member after the propagation delay.
    Prune(Arc<str>),
}

/// Something waiting for a broadcast to finish.
#[derive(Clone, Debug)]
enum Waiter {
    /// Leave, phase 1: our leave intent; then memberlist's leave.
    LeaveIntent,
    /// Leave, phase 2: memberlist's dead message about us.
    LeaveMemberlist,
    ForceLeave(CommandId),
    Tags(CommandId),
}

#[derive(Debug)]
struct Wait {
    notify: NotifyId,
    waiter: Waiter,
    token: TimerToken,
}

/// Work a delegate callback could not do (it has no access to memberlist),
/// done right after the input.
#[derive(Debug)]
enum Deferred {
    /// Send `body` as a user message to `addr`.
    Send(SocketAddr, Vec<u8>),
    /// Apply a key query to our keyring and answer it.
    Key { op: KeyOp, key: Option<Vec<u8>>, respond: u64 },
    /// Run the name-conflict vote.
    ResolveConflict,
}

/// One Serf instance.
pub struct Serf {
    /// Memberlist with Serf's state as its delegate.
    core: Membership<SerfState>,
}

impl core::fmt::Debug for Serf {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Serf")
            .field("name", &self.core.delegate.name)
            .field("state", &self.core.delegate.state)
            .finish_non_exhaustive()
    }
}

/// The delegate half of [`Serf`]: everything but memberlist. Opaque: it is
/// public only as the delegate type of Serf's inner endpoint ([`Layer::Inner`]).
pub struct SerfState {
    config: SerfConfig,
    name: Arc<str>,
    rng: Rng,
    state: State,
    clock: LamportClock,
    event_clock: LamportClock,
    query_clock: LamportClock,
    members: members::Members,
    event_ring: events::EventRing,
    event_min_time: u64,
    /// Ignore events older than the remote's clock during a join push-pull.
    event_join_ignore: bool,
    query_ring: query::QueryRing,
    query_min_time: u64,
    intents_q: BroadcastQueue,
    events_q: BroadcastQueue,
    queries_q: BroadcastQueue,
    collectors: Vec<query::Collector>,
    responders: Vec<query::Responder>,
    next_query: QueryId,
    next_respond: u64,
    next_command: CommandId,
    next_notify: NotifyId,
    waits: Vec<Wait>,
    joins: Vec<(memberlist::JoinId, CommandId, bool)>,
    key_ops: Vec<keys::KeyCollect>,
    timers: TimerWheel<Timer>,
    coord: Option<VivaldiClient>,
    coord_cache: ahash::AHashMap<Arc<str>, Coordinate>,
    /// Encoded tags advertised as our memberlist meta.
    meta: Vec<u8>,
    deferred: Vec<Deferred>,
    events: VecDeque<Event>,
    stats: SerfStats,
    /// Remaining snapshot rejoin targets (tried one at a time).
    rejoin: Vec<SocketAddr>,
    rejoin_join: Option<memberlist::JoinId>,
    /// The name-conflict vote in progress.
    conflict_vote: Option<query::Vote>,
    /// The time of the last input (for work settled while its outputs are
    /// drained, see [`Layer::after_output`]).
    last_now: Instant,
}

/// Events held for [`Serf::poll_event`] before new ones are dropped and
/// counted (Go's agent buffers 64 and blocks; we never stall the engine):
/// at least this many, and [`EVENTS_PER_MEMBER`] per known member, because
/// one input can legitimately produce that much — a push-pull merge announces
/// every member it brings (a log line and a member event each), and the
/// join's own completion comes after them. The bound still holds memory to
/// the cluster's size when the consumer stops polling.
const MAX_EVENTS: usize = 4096;

/// Room per known member in the event queue (see [`MAX_EVENTS`]).
const EVENTS_PER_MEMBER: usize = 4;

/// Encodes tags as node meta for `protocol_version` (`serf.md` §3).
pub fn encode_tags(tags: &Tags, protocol_version: u8) -> Vec<u8> {
    if protocol_version < 3 {
        return tags.get("role").map(|r| r.as_bytes().to_vec()).unwrap_or_default();
    }
    let mut w = Writer::counting(Dialect::Gossip);
    let _ = write_tags(&mut w, tags.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let mut out = vec![0u8; w.len()];
    let mut w = Writer::new(&mut out, Dialect::Gossip);
    let _ = write_tags(&mut w, tags.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    out
}

/// Decodes node meta into tags (a partial map is kept on errors, as Go does).
pub fn decode_tags(meta: &[u8]) -> Tags {
    let mut out = Tags::new();
    match meta.first() {
        Some(&TAG_MAGIC) => {
            if let Ok(t) = wire::serf::Tags::decode(meta) {
                for (k, v) in t.iter() {
                    out.insert(k.to_string(), v.to_string());
                }
            }
        }
        _ => {
            out.insert("role".into(), String::from_utf8_lossy(meta).into_owned());
        }
    }
    out
}

impl Serf {
    /// Creates an instance: memberlist starts, this node becomes alive, the
    /// clocks start at 1 (then witness a snapshot's values), and the reaper,
    /// reconnector and queue checker are scheduled. A snapshot's alive nodes
    /// are rejoined one at a time until one succeeds.
    ///
    /// Errors: invalid protocol version, tags over 512 bytes.
    pub fn new(
        config: SerfConfig,
        now: Instant,
        mut rng: Rng,
        keyring: Option<Keyring>,
    ) -> Result<Self, String> {
        if !(PROTOCOL_MIN..=PROTOCOL_MAX).contains(&config.protocol_version) {
            return Err(format!(
                "Protocol version '{}' too low. Must be in range: [{}, {}]",
                config.protocol_version, PROTOCOL_MIN, PROTOCOL_MAX
            ));
        }
        let meta = encode_tags(&config.tags, config.protocol_version);
        if meta.len() > wire::serf::META_MAX_SIZE {
            return Err(limits::tags_too_large());
        }
        let mut mlc = config.memberlist.clone();
        mlc.vsn = config.vsn();
        let name: Arc<str> = Arc::from(mlc.name.as_str());
        let ml_rng = rng.fork();
        let mut st = SerfState::new(config, name, rng, now, meta.clone());
        let ml = Memberlist::new(mlc, now, ml_rng, keyring, &meta);
        // memberlist's bootstrap alive made us a member; replay it to Serf.
        let local = ml.local_node().info();
        use memberlist::Delegate;
        st.notify_join(now, &local);
        let mut serf = Serf { core: Membership { ml, delegate: st } };
        if let Some(r) = serf.core.delegate.config.restore.clone() {
            serf.core.delegate.rejoin = r
                .alive
                .iter()
                .filter(|(n, _)| **n != *serf.core.delegate.name)
                .map(|(_, a)| *a)
                .collect();
            let mut rejoin = core::mem::take(&mut serf.core.delegate.rejoin);
            serf.core.delegate.rng.shuffle(&mut rejoin);
            serf.core.delegate.rejoin = rejoin;
            serf.next_rejoin(now);
        }
        Ok(serf)
    }

    /// The membership layer.
    pub fn memberlist(&self) -> &Memberlist {
        &self.core.ml
    }

    /// This node's name.
    pub fn name(&self) -> &Arc<str> {
        &self.core.delegate.name
    }

    /// The instance's lifecycle state.
    pub fn state(&self) -> State {
        self.core.delegate.state
    }

    /// The configuration in force.
    pub fn config(&self) -> &SerfConfig {
        &self.core.delegate.config
    }

    /// Every member Serf knows, including failed and left ones not yet
    /// reaped, in the order they were learnt; the iterator knows its length.
    pub fn members(&self) -> impl ExactSizeIterator<Item = &Member> {
        self.core.delegate.members.iter().map(|m| &m.member)
    }

    /// A member by name.
    pub fn member(&self, name: &str) -> Option<&Member> {
        self.core.delegate.members.get(name).map(|m| &m.member)
    }

    /// Our own member record.
    pub fn local_member(&self) -> Member {
        self.member(&self.core.delegate.name.clone()).cloned().unwrap_or_else(|| Member {
            name: self.core.delegate.name.clone(),
            addr: self.core.delegate.config.memberlist.advertise_addr,
            port: self.core.delegate.config.memberlist.advertise_port,
            tags: Arc::new(self.core.delegate.config.tags.clone()),
            status: MemberStatus::Alive,
            vsn: self.core.delegate.config.vsn(),
        })
    }

    /// Our tags.
    pub fn tags(&self) -> &Tags {
        &self.core.delegate.config.tags
    }

    /// The three Lamport clocks: (member, event, query).
    pub fn clocks(&self) -> (u64, u64, u64) {
        (
            self.core.delegate.clock.time(),
            self.core.delegate.event_clock.time(),
            self.core.delegate.query_clock.time(),
        )
    }

    /// Counters for `serf info`.
    pub fn stats(&self) -> SerfStats {
        let s = &self.core.delegate;
        SerfStats {
            members: s.members.len(),
            failed: s.members.failed.len(),
            left: s.members.left.len(),
            health_score: self.core.ml.health_score(),
            member_time: s.clock.time(),
            event_time: s.event_clock.time(),
            query_time: s.query_clock.time(),
            intent_queue: s.intents_q.len(),
            event_queue: s.events_q.len(),
            query_queue: s.queries_q.len(),
            encrypted: self.core.ml.keyring().is_some_and(|k| !k.is_empty()),
            coordinate_resets: s.coord.as_ref().map(VivaldiClient::resets),
            ..s.stats
        }
    }

    /// Our network coordinate, or `None` when coordinates are disabled.
    pub fn coordinate(&self) -> Option<Coordinate> {
        self.core.delegate.coord.as_ref().map(VivaldiClient::coordinate)
    }

    /// The last coordinate seen for `name` (ours included).
    pub fn cached_coordinate(&self, name: &str) -> Option<Coordinate> {
        self.core.delegate.coord.as_ref()?;
        if *name == *self.core.delegate.name {
            return self.coordinate();
        }
        self.core.delegate.coord_cache.get(name).copied()
    }

    /// The keyring, if encryption is enabled.
    pub fn keyring(&self) -> Option<&Keyring> {
        self.core.ml.keyring()
    }

    fn command_id(&mut self) -> CommandId {
        self.core.delegate.next_command = self.core.delegate.next_command.wrapping_add(1);
        self.core.delegate.next_command
    }

    /// Joins the cluster through `addrs` (push-pull with each); completion
    /// arrives as [`Event::JoinDone`]. With `ignore_old`, user events older
    /// than the cluster's event clock are not delivered (`-replay` off).
    pub fn join(&mut self, now: Instant, addrs: &[SocketAddr], ignore_old: bool) -> CommandId {
        let id = self.command_id();
        if self.core.delegate.state != State::Alive {
            self.core.delegate.emit(Event::JoinDone {
                id,
                joined: 0,
                errors: vec!["Serf can't Join after Leave or Shutdown".into()],
            });
            return id;
        }
        if ignore_old {
            self.core.delegate.event_join_ignore = true;
        }
        let jid = self.core.ml.join(now, addrs);
        self.core.delegate.joins.push((jid, id, ignore_old));
        self.settle(now);
        id
    }

    fn next_rejoin(&mut self, now: Instant) {
        let Some(addr) = self.core.delegate.rejoin.pop() else { return };
        let jid = self.core.ml.join(now, &[addr]);
        self.core.delegate.rejoin_join = Some(jid);
    }

    /// Starts a graceful leave: leave intent, then memberlist's leave, then
    /// the propagation delay. [`Event::LeaveDone`] reports the outcome.
    pub fn leave(&mut self, now: Instant) -> Result<(), String> {
        match self.core.delegate.state {
            State::Leaving => return Err("Leave already in progress".into()),
            State::Shutdown => return Err("Leave called after Shutdown".into()),
            State::Left => return Ok(()),
            State::Alive => {}
        }
        self.core.delegate.state = State::Leaving;
        self.core.delegate.emit(Event::LeaveStarted);
        let ltime = self.core.delegate.clock.time();
        self.core.delegate.clock.increment();
        let name = self.core.delegate.name.clone();
        let msg = wire::serf::Leave { ltime, node: &name, prune: false };
        self.core.delegate.handle_leave_intent(now, &msg);
        if self.core.delegate.has_alive_members() {
            let notify = self.core.delegate.broadcast_intent(&msg.encoded(), true);
            self.core.delegate.wait(now, notify.unwrap_or_default(), Waiter::LeaveIntent);
        } else {
            self.leave_memberlist(now);
        }
        self.settle(now);
        Ok(())
    }

    fn leave_memberlist(&mut self, now: Instant) {
        match self.core.ml.leave(now, &mut self.core.delegate) {
            Some(notify) => self.core.delegate.wait(now, notify, Waiter::LeaveMemberlist),
            None => self.core.delegate.leave_propagate(now),
        }
    }

    /// Marks `node` as left (and with `prune`, erases it); completion is
    /// [`Event::ForceLeaveDone`].
    pub fn force_leave(&mut self, now: Instant, node: &str, prune: bool) -> CommandId {
        let id = self.command_id();
        let ltime = self.core.delegate.clock.time();
        self.core.delegate.clock.increment();
        let msg = wire::serf::Leave { ltime, node, prune };
        self.core.delegate.handle_leave_intent(now, &msg);
        if self.core.delegate.has_alive_members() {
            match self.core.delegate.broadcast_intent(&msg.encoded(), true) {
                Some(n) => self.core.delegate.wait(now, n, Waiter::ForceLeave(id)),
                None => self.core.delegate.emit(Event::ForceLeaveDone { id, error: None }),
            }
        } else {
            self.core.delegate.emit(Event::ForceLeaveDone { id, error: None });
        }
        self.settle(now);
        id
    }

    /// Sends a user event to the cluster (and delivers it locally).
    pub fn user_event(
        &mut self,
        now: Instant,
        name: &str,
        payload: &[u8],
        coalesce: bool,
    ) -> Result<(), String> {
        let r = self.core.delegate.send_user_event(now, name, payload, coalesce);
        self.settle(now);
        r
    }

    /// Replaces our tags: new incarnation, alive broadcast; completion is
    /// [`Event::TagsDone`].
    pub fn set_tags(&mut self, now: Instant, tags: Tags) -> Result<CommandId, String> {
        let meta = encode_tags(&tags, self.core.delegate.config.protocol_version);
        if meta.len() > wire::serf::META_MAX_SIZE {
            return Err(limits::tags_too_large());
        }
        let id = self.command_id();
        self.core.delegate.config.tags = tags;
        self.core.delegate.meta = meta.clone();
        match self.core.ml.update_meta(now, &meta, &mut self.core.delegate) {
            Some(n) => self.core.delegate.wait(now, n, Waiter::Tags(id)),
            None => self.core.delegate.emit(Event::TagsDone { id, error: None }),
        }
        self.settle(now);
        Ok(id)
    }

    /// Starts a query; acks, responses and the end arrive as events with
    /// the returned id.
    pub fn query(
        &mut self,
        now: Instant,
        name: &str,
        payload: &[u8],
        params: &QueryParams,
    ) -> Result<QueryId, String> {
        let timeout =
            if params.timeout.is_zero() { self.default_query_timeout() } else { params.timeout };
        let r = self.core.delegate.start_query(
            now,
            name,
            payload,
            params,
            timeout,
            self.core.ml.num_members(),
        );
        self.settle(now);
        r
    }

    /// `GossipInterval × QueryTimeoutMult × ceil(log10(N + 1))`, N = alive members.
    pub fn default_query_timeout(&self) -> Duration {
        let n = self.core.ml.num_members();
        let scale = crate::broadcast::retransmit_limit(1, n).max(1);
        self.core.delegate.config.memberlist.gossip_interval
            * self.core.delegate.config.query_timeout_mult
            * scale
    }

    /// Answers query `id` (from [`Event::Query`]).
    pub fn respond(&mut self, now: Instant, id: u64, payload: &[u8]) -> Result<(), RespondError> {
        let r = self.core.delegate.respond(now, id, payload);
        self.settle(now);
        r
    }

    /// Runs a key operation on every member (`_serf_*-key` queries);
    /// completion is [`Event::KeysDone`]. `key` is the raw key (the agent
    /// decodes the base64 the user gave; empty for [`KeyOp::List`]).
    pub fn key_op(&mut self, now: Instant, op: KeyOp, key: &[u8], relay_factor: u8) -> CommandId {
        let id = self.command_id();
        let timeout = self.default_query_timeout();
        let nodes = self.core.ml.num_members();
        self.core.delegate.start_key_op(now, id, op, key, relay_factor, timeout, nodes);
        self.settle(now);
        id
    }

    /// Stops without a leave: no message is sent; pending waits fail.
    pub fn shutdown(&mut self) {
        self.core.delegate.state = State::Shutdown;
        self.core.ml.shutdown();
    }

    /// Runs deferred work and memberlist's events through the Serf layer.
    fn settle(&mut self, now: Instant) {
        self.core.delegate.last_now = self.core.delegate.last_now.max(now);
        // Bounded: each pass consumes what the previous produced.
        for _ in 0..64 {
            let mut progressed = false;
            while let Some(e) = self.core.ml.poll_event() {
                progressed = true;
                self.on_memberlist_event(now, e);
            }
            for d in core::mem::take(&mut self.core.delegate.deferred) {
                progressed = true;
                self.run_deferred(now, d);
            }
            for notify in self.core.delegate.poll_queue_finished() {
                progressed = true;
                self.broadcast_done(now, notify, None);
            }
            if !progressed {
                break;
            }
        }
    }

    fn on_memberlist_event(&mut self, now: Instant, e: memberlist::Event) {
        match e {
            memberlist::Event::JoinCompleted { id, succeeded, errors } => {
                if self.core.delegate.rejoin_join == Some(id) {
                    self.core.delegate.rejoin_join = None;
                    if succeeded > 0 {
                        self.core.delegate.rejoin.clear();
                        self.core.delegate.log(
                            Level::Info,
                            "serf",
                            "Re-joined to previously known node".into(),
                        );
                        self.core.delegate.broadcast_join(now);
                    } else if self.core.delegate.rejoin.is_empty() {
                        self.core.delegate.log(
                            Level::Warn,
                            "serf",
                            "Failed to re-join any previously known node".into(),
                        );
                    } else {
                        self.next_rejoin(now);
                    }
                    return;
                }
                if let Some(pos) = self.core.delegate.joins.iter().position(|j| j.0 == id) {
                    let (_, cid, ignore_old) = self.core.delegate.joins.swap_remove(pos);
                    if ignore_old {
                        self.core.delegate.event_join_ignore = false;
                    }
                    if succeeded > 0 {
                        self.core.delegate.broadcast_join(now);
                    }
                    self.core.delegate.emit(Event::JoinDone { id: cid, joined: succeeded, errors });
                    return;
                }
                // A reconnect attempt.
                if succeeded == 0 {
                    for e in errors {
                        self.core.delegate.log(
                            Level::Debug,
                            "serf",
                            format!("reconnect failed: {e}"),
                        );
                    }
                }
            }
            memberlist::Event::BroadcastFinished { id, how } => {
                let _ = how;
                self.broadcast_done(now, id, None);
            }
            memberlist::Event::Log(l) => self.core.delegate.memberlist_log(l),
        }
    }

    fn broadcast_done(&mut self, now: Instant, notify: NotifyId, error: Option<String>) {
        let Some(pos) = self.core.delegate.waits.iter().position(|w| w.notify == notify) else {
            return;
        };
        let w = self.core.delegate.waits.swap_remove(pos);
        self.core.delegate.timers.cancel(w.token);
        match w.waiter {
            Waiter::LeaveIntent => match error {
                Some(_) => {
                    self.core.delegate.state = State::Alive;
                    self.core.delegate.emit(Event::LeaveDone {
                        error: Some("timeout while waiting for graceful leave".into()),
                    });
                }
                None => self.leave_memberlist(now),
            },
            Waiter::LeaveMemberlist => match error {
                Some(_) => self.core.delegate.emit(Event::LeaveDone {
                    error: Some("timeout waiting for leave broadcast".into()),
                }),
                None => self.core.delegate.leave_propagate(now),
            },
            Waiter::ForceLeave(id) => self.core.delegate.emit(Event::ForceLeaveDone {
                id,
                error: error.map(|_| "timed out broadcasting node removal".into()),
            }),
            Waiter::Tags(id) => self.core.delegate.emit(Event::TagsDone {
                id,
                error: error.map(|_| "timeout waiting for update broadcast".into()),
            }),
        }
    }

    fn run_deferred(&mut self, now: Instant, d: Deferred) {
        match d {
            Deferred::Send(addr, body) => self.core.ml.send_user(addr, &body),
            Deferred::Key { op, key, respond } => {
                let changed = keys::apply(
                    self.core.ml.keyring_mut(),
                    op,
                    key.as_deref(),
                    &mut self.core.delegate,
                    now,
                    respond,
                );
                if changed {
                    self.core.delegate.emit(Event::KeyringChanged);
                }
            }
            Deferred::ResolveConflict => {
                let name = self.core.delegate.name.clone();
                let params = QueryParams::default();
                let timeout = self.default_query_timeout();
                let n = self.core.ml.num_members();
                if let Ok(id) = self.core.delegate.start_query_internal(
                    now,
                    query::CONFLICT_QUERY,
                    name.as_bytes(),
                    &params,
                    timeout,
                    n,
                ) {
                    self.core.delegate.conflict_vote = Some(query::Vote::new(id));
                }
            }
        }
    }

    fn on_serf_timer(&mut self, now: Instant, t: Timer) {
        match t {
            Timer::Reap => {
                self.core
                    .delegate
                    .timers
                    .insert(now + self.core.delegate.config.reap_interval, Timer::Reap);
                self.core.delegate.reap(now);
            }
            Timer::Reconnect => {
                self.core
                    .delegate
                    .timers
                    .insert(now + self.core.delegate.config.reconnect_interval, Timer::Reconnect);
                if let Some(addr) = self.core.delegate.pick_reconnect() {
                    self.core.ml.join(now, &[addr]);
                }
            }
            Timer::QueueCheck => {
                self.core.delegate.timers.insert(
                    now + self.core.delegate.config.queue_check_interval,
                    Timer::QueueCheck,
                );
                self.core.delegate.check_queues();
            }
            Timer::QueryDone(id) => self.core.delegate.query_done(now, id),
            Timer::ResponseExpire(id) => self.core.delegate.responders.retain(|r| r.id != id),
            Timer::WaitTimeout(notify) => {
                self.broadcast_done(now, notify, Some("timeout".into()));
            }
            Timer::LeavePropagated => {
                if self.core.delegate.state != State::Shutdown {
                    self.core.delegate.state = State::Left;
                }
                self.core.delegate.emit(Event::LeaveDone { error: None });
            }
            Timer::Prune(name) => self.core.delegate.erase(&name),
        }
    }

    /// The next event, if any. Only drains: every input settles what it
    /// causes, and draining the outputs settles the broadcasts that
    /// finished while packets were built ([`Layer::after_output`]).
    pub fn poll_event(&mut self) -> Option<Event> {
        self.core.delegate.events.pop_front()
    }
}

/// Serf is memberlist with Serf's state as its delegate, plus what runs
/// after each input (deferred work, memberlist's events) and Serf's own
/// timers.
impl Layer for Serf {
    type Inner = Membership<SerfState>;
    type Event = Event;

    fn inner(&self) -> &Membership<SerfState> {
        &self.core
    }

    fn inner_mut(&mut self, _: Forwarding) -> &mut Membership<SerfState> {
        &mut self.core
    }

    fn next_event(&mut self) -> Option<Event> {
        Serf::poll_event(self)
    }

    fn after_input(&mut self, now: Instant) {
        self.settle(now);
    }

    fn after_output(&mut self) {
        let now = self.core.delegate.last_now;
        self.settle(now);
    }

    fn on_timeout(&mut self, now: Instant) {
        for _ in 0..10_000 {
            let Some((_, t)) = self.core.delegate.timers.poll_expired(now) else { break };
            self.on_serf_timer(now, t);
        }
    }

    fn deadline(&self) -> Option<Instant> {
        if self.core.delegate.state == State::Shutdown {
            return None;
        }
        match (self.core.ml.poll_timeout(), self.core.delegate.timers.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Why [`Serf::respond`] failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RespondError {
    /// No pending query has this id (never existed, or past its deadline).
    NoSuchQuery,
    /// Go's error text (`response already sent`, ...).
    Failed(String),
}

impl core::fmt::Display for RespondError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            RespondError::NoSuchQuery => f.write_str("No pending queries matching ID"),
            RespondError::Failed(s) => f.write_str(s),
        }
    }
}

impl SerfState {
    fn new(config: SerfConfig, name: Arc<str>, rng: Rng, now: Instant, meta: Vec<u8>) -> Self {
        let mut timers = TimerWheel::with_capacity(64, now);
        timers.insert(now + config.reap_interval, Timer::Reap);
        timers.insert(now + config.reconnect_interval, Timer::Reconnect);
        timers.insert(now + config.queue_check_interval, Timer::QueueCheck);
        let mult = config.memberlist.retransmit_mult;
        let cap = config.max_queue_depth.max(1);
        let coord =
            (!config.disable_coordinates).then(|| VivaldiClient::new(VivaldiConfig::default()));
        let mut st = SerfState {
            name,
            rng,
            state: State::Alive,
            clock: LamportClock::default(),
            event_clock: LamportClock::default(),
            query_clock: LamportClock::default(),
            members: members::Members::default(),
            event_ring: events::EventRing::new(config.event_buffer),
            event_min_time: 0,
            event_join_ignore: false,
            query_ring: query::QueryRing::new(config.query_buffer),
            query_min_time: 0,
            intents_q: BroadcastQueue::new(mult, 16, cap.saturating_mul(2)),
            events_q: BroadcastQueue::new(mult, 16, cap.saturating_mul(2)),
            queries_q: BroadcastQueue::new(mult, 16, cap.saturating_mul(2)),
            collectors: Vec::new(),
            responders: Vec::new(),
            next_query: 0,
            next_respond: 0,
            next_command: 0,
            next_notify: 1 << 40,
            waits: Vec::new(),
            joins: Vec::new(),
            key_ops: Vec::new(),
            timers,
            coord,
            coord_cache: ahash::AHashMap::new(),
            meta,
            deferred: Vec::new(),
            events: VecDeque::with_capacity(64),
            stats: SerfStats::default(),
            rejoin: Vec::new(),
            rejoin_join: None,
            conflict_vote: None,
            last_now: now,
            config,
        };
        st.clock.increment();
        st.event_clock.increment();
        st.query_clock.increment();
        if let Some(r) = st.config.restore.clone() {
            st.clock.witness(r.clock);
            st.event_clock.witness(r.event_clock);
            st.query_clock.witness(r.query_clock);
            st.event_min_time = r.event_clock.saturating_add(1);
            st.query_min_time = r.query_clock.saturating_add(1);
        }
        st
    }

    fn emit(&mut self, e: Event) {
        let cap = MAX_EVENTS.max(self.members.len().saturating_mul(EVENTS_PER_MEMBER));
        if self.events.len() >= cap {
            self.stats.events_dropped = self.stats.events_dropped.saturating_add(1);
            return;
        }
        self.events.push_back(e);
    }

    fn log(&mut self, level: Level, component: &'static str, text: String) {
        self.emit(Event::Log(LogLine { level, component, text }));
    }

    fn memberlist_log(&mut self, l: memberlist::LogEvent) {
        use memberlist::LogEvent as L;
        let (level, text) = match l {
            L::SuspectNoAcks { node } => (Level::Info, format!("Suspect {node} has failed, no acks received")),
            L::MarkedDead { node, confirmations } => (
                Level::Info,
                format!("Marking {node} as failed, suspect timeout reached ({confirmations} peer confirmations)"),
            ),
            L::Refuting { what, from } => (Level::Warn, format!("Refuting a {what} message (from: {from})")),
            L::ConflictingAddress { node, existing, other } => (
                Level::Error,
                format!("Conflicting address for {node}. Mine: {existing} Theirs: {other}"),
            ),
            L::FallbackPingOnly { node } => (
                Level::Warn,
                format!("Was able to connect to {node} but other probes failed, network may be misconfigured"),
            ),
            L::PushPullFailed { addr, error } => (Level::Error, format!("Push/Pull with {addr} failed: {error}")),
            L::IncompatibleProtocol { error } => (Level::Error, error),
            L::StreamRejected { error, suppressed: 0 } => (Level::Error, format!("failed to receive: {error}")),
            L::StreamRejected { error, suppressed } => (
                Level::Error,
                format!("failed to receive: {error} ({suppressed} more since the last report)"),
            ),
        };
        self.log(level, "memberlist", text);
    }

    fn new_notify(&mut self) -> NotifyId {
        self.next_notify = self.next_notify.wrapping_add(1);
        self.next_notify
    }

    /// Waits for broadcast `notify` for at most the broadcast timeout.
    fn wait(&mut self, now: Instant, notify: NotifyId, waiter: Waiter) {
        let token =
            self.timers.insert(now + self.config.broadcast_timeout, Timer::WaitTimeout(notify));
        self.waits.push(Wait { notify, waiter, token });
    }

    fn leave_propagate(&mut self, now: Instant) {
        self.timers.insert(now + self.config.leave_propagate_delay, Timer::LeavePropagated);
    }

    /// Queues an intent; with `notify`, returns the id its completion is reported under.
    fn broadcast_intent(&mut self, msg: &[u8], notify: bool) -> Option<NotifyId> {
        let n = notify.then(|| self.new_notify());
        self.intents_q.push(None, msg, n);
        n
    }

    /// Completions of Serf's own queues (intents carry leave notifications).
    fn poll_queue_finished(&mut self) -> Vec<NotifyId> {
        let mut out = Vec::new();
        for q in [&mut self.intents_q, &mut self.events_q, &mut self.queries_q] {
            while let Some((id, _)) = q.poll_finished() {
                out.push(id);
            }
        }
        out
    }

    fn has_alive_members(&self) -> bool {
        self.members
            .iter()
            .any(|m| m.member.status == MemberStatus::Alive && m.member.name != self.name)
    }

    fn check_queues(&mut self) {
        let members = self.members.len();
        let limit = if self.config.min_queue_depth > 0 {
            self.config.min_queue_depth.max(2 * members)
        } else {
            self.config.max_queue_depth
        };
        let warn = self.config.queue_depth_warning;
        for (name, i) in [("Intent", 0), ("Event", 1), ("Query", 2)] {
            let q = match i {
                0 => &mut self.intents_q,
                1 => &mut self.events_q,
                _ => &mut self.queries_q,
            };
            let depth = q.len();
            let pruned = if depth > limit { q.prune(limit) } else { 0 };
            if depth >= warn {
                self.log(Level::Warn, "serf", format!("{name} queue depth: {depth}"));
            }
            if pruned > 0 {
                self.stats.queue_pruned = self.stats.queue_pruned.saturating_add(pruned as u64);
                self.log(
                    Level::Warn,
                    "serf",
                    format!(
                        "{name} queue depth ({depth}) exceeds limit ({limit}), dropping messages!"
                    ),
                );
            }
        }
    }
}

trait Encoded {
    fn encoded(&self) -> Vec<u8>;
}

impl<'a, T: Body<'a>> Encoded for T {
    fn encoded(&self) -> Vec<u8> {
        let mut out = vec![0u8; self.encoded_len()];
        let _ = self.encode_to(&mut out);
        out
    }
}

/// A member's per-peer latency filter lives with its record.
pub(crate) type Latency = LatencyFilter;

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests;
