//! Streams (`protocol/memberlist.md` §8, §11.9, §11.12): push-pull for
//! joins and anti-entropy, the TCP fallback ping, inbound requests.
//!
//! The instance decides *what* to exchange; the caller owns the sockets.
//! An outbound stream is announced by [`Memberlist::poll_stream`] with its
//! request bytes and a deadline; its outcome comes back through
//! [`Memberlist::handle_stream_reply`] or [`Memberlist::handle_stream_error`].
//! A timer guards against a caller that never reports.
//!
//! Framing is decided here too, not by the caller: [`stream_frame`] says of
//! the bytes read so far whether they hold one complete frame, need more
//! (and how many at most) or can never form one. The caller only moves bytes
//! (through [`Endpoint::handle_stream_data`](crate::Endpoint::handle_stream_data),
//! which frames and then dispatches to the handlers below).

use core::time::Duration;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;

use super::{
    Delegate, Event, IpOctets, JoinId, LogEvent, Memberlist, Scratch, StreamId, StreamReply,
    StreamRequest, Timer, STREAM_ERROR_LOG_EVERY,
};
use crate::time::Instant;
use crate::timer::TimerToken;
use wire::frame::{self, StreamEncryptHeader};
use wire::memberlist::{
    Ack, Body, ErrResp, MessageType, Ping, PushNodeState, PushPullHeader, MAX_PUSH_STATE_BYTES,
};
use wire::msgpack::{Dialect, Writer};
use wire::stream::{frame_len, StreamMessage, ENCRYPT_HEADER_LEN};
use wire::Error as WireError;

/// How long after its deadline a stream the caller never reported is
/// counted as failed.
const STREAM_GRACE: Duration = Duration::from_secs(5);

/// Largest frame a stream may carry: a sealed push-pull of the largest size
/// the codec accepts, with its encryption header.
pub const MAX_STREAM_FRAME: usize = MAX_PUSH_STATE_BYTES + ENCRYPT_HEADER_LEN;

/// The bytes read so far from a stream, framed by [`stream_frame`].
#[derive(Debug, PartialEq, Eq)]
pub enum Framing<'a> {
    /// No complete frame yet: read more, holding at most `limit` bytes in
    /// all. `limit` is the announced length of an encrypted frame once its
    /// header is in; otherwise the size at which an unfinished frame is
    /// refused as too large.
    More { limit: usize },
    /// One complete frame: the first bytes of the input (any bytes after it
    /// are not part of the exchange and are ignored).
    Frame(&'a mut [u8]),
}

/// Frames `data`, the bytes read so far from a stream, from its first byte
/// (`protocol/memberlist.md` §8): an encrypted frame is complete when its
/// announced length has arrived, a compressed one when its msgpack body
/// has, a plain one when its message decodes. `Err` when the bytes can never
/// form a frame: an announced length over the push-pull limit, that many
/// bytes without a complete frame, an unknown or unexpected message type,
/// malformed msgpack. Pure: calling it again with more bytes is fine.
pub fn stream_frame(data: &mut [u8]) -> Result<Framing<'_>, WireError> {
    match frame_len(data)? {
        Some(len) => data.get_mut(..len).map(Framing::Frame).ok_or(WireError::Truncated),
        None => Ok(Framing::More { limit: frame_limit(data) }),
    }
}

/// The most bytes the unfinished frame starting `data` may take.
fn frame_limit(data: &[u8]) -> usize {
    match data.first() {
        Some(&t) if t == MessageType::Encrypt as u8 => frame::split::<StreamEncryptHeader>(data)
            .ok()
            .and_then(|(h, _)| usize::try_from(h.len.get()).ok())
            .and_then(|len| len.checked_add(ENCRYPT_HEADER_LEN))
            .map_or(MAX_STREAM_FRAME, |total| total.min(MAX_STREAM_FRAME)),
        // `frame_len` refuses a plain or compressed frame still unfinished
        // at this size.
        Some(_) => MAX_PUSH_STATE_BYTES,
        None => MAX_STREAM_FRAME,
    }
}

#[derive(Clone, Debug)]
pub(super) enum StreamKind {
    /// Push-pull; `join` names the join it belongs to (periodic: `None`).
    PushPull { join: Option<JoinId> },
    /// TCP fallback ping of the probe with this sequence number.
    Ping { seq: u32, node: Arc<str> },
}

#[derive(Debug)]
struct Active {
    id: StreamId,
    addr: SocketAddr,
    kind: StreamKind,
    /// When it was registered (the input that asked for it).
    started: Instant,
    deadline: Instant,
    token: TimerToken,
}

#[derive(Debug)]
struct Join {
    id: JoinId,
    remaining: usize,
    succeeded: usize,
    errors: Vec<String>,
}

#[derive(Debug, Default)]
pub(super) struct Streams {
    next_id: StreamId,
    active: Vec<Active>,
    /// Streams not yet handed to the caller.
    unpolled: VecDeque<StreamId>,
    joins: Vec<Join>,
    next_join: JoinId,
}

impl Memberlist {
    /// Registers an outbound stream; false if the stream limit is reached.
    pub(super) fn start_stream(
        &mut self,
        now: Instant,
        addr: SocketAddr,
        deadline: Instant,
        kind: StreamKind,
    ) -> bool {
        if self.shutdown || self.streams.active.len() >= self.config.max_streams {
            self.stats.stream_errors = self.stats.stream_errors.saturating_add(1);
            return false;
        }
        self.streams.next_id = self.streams.next_id.wrapping_add(1);
        let id = self.streams.next_id;
        let token = self.timers.insert(deadline + STREAM_GRACE, Timer::Stream(id));
        if matches!(kind, StreamKind::PushPull { .. }) {
            self.stats.push_pulls = self.stats.push_pulls.saturating_add(1);
        }
        self.streams.active.push(Active { id, addr, kind, started: now, deadline, token });
        self.streams.unpolled.push_back(id);
        true
    }

    /// Joins a cluster: a push-pull (with `Join` set) to each address. The
    /// outcome is reported as [`Event::JoinCompleted`] with the returned id.
    pub fn join(&mut self, now: Instant, addrs: &[SocketAddr]) -> JoinId {
        self.streams.next_join = self.streams.next_join.wrapping_add(1);
        let id = self.streams.next_join;
        let mut join = Join { id, remaining: 0, succeeded: 0, errors: Vec::new() };
        let deadline = now + self.config.tcp_timeout;
        for &addr in addrs {
            if self.start_stream(now, addr, deadline, StreamKind::PushPull { join: Some(id) }) {
                join.remaining += 1;
            } else {
                join.errors
                    .push(format!("Failed to join {}: too many concurrent streams", addr.ip()));
            }
        }
        if join.remaining == 0 {
            self.emit(Event::JoinCompleted { id, succeeded: 0, errors: join.errors });
        } else {
            self.streams.joins.push(join);
        }
        id
    }

    fn join_done(&mut self, id: JoinId, error: Option<String>) {
        let Some((pos, j)) = self.streams.joins.iter_mut().enumerate().find(|(_, j)| j.id == id)
        else {
            return;
        };
        j.remaining = j.remaining.saturating_sub(1);
        match error {
            None => j.succeeded += 1,
            Some(e) => j.errors.push(e),
        }
        if j.remaining == 0 {
            let j = self.streams.joins.swap_remove(pos);
            self.emit(Event::JoinCompleted { id, succeeded: j.succeeded, errors: j.errors });
        }
    }

    /// The next stream to open: writes its request bytes into `out`
    /// (cleared first) and returns where to send them. Call until `None`.
    pub fn poll_stream(
        &mut self,
        out: &mut Vec<u8>,
        scratch: &mut Scratch,
        d: &mut impl Delegate,
    ) -> Option<StreamRequest> {
        while let Some(id) = self.streams.unpolled.pop_front() {
            let Some(a) = self.streams.active.iter().find(|a| a.id == id) else { continue };
            let (addr, started, deadline, kind) = (a.addr, a.started, a.deadline, a.kind.clone());
            let ok = match &kind {
                StreamKind::PushPull { join } => {
                    self.encode_local_state(join.is_some(), scratch, d).is_ok()
                }
                StreamKind::Ping { seq, node } => {
                    self.encode_stream_ping(*seq, node, scratch).is_ok()
                }
            };
            if ok && self.seal_stream(scratch, out).is_ok() {
                return Some(StreamRequest { id, addr, deadline, expects_reply: true });
            }
            // Outputs are drained right after the input that started the
            // stream: that input's time is the failure's.
            self.handle_stream_error_inner(started, id, "failed to encode request".into(), d);
        }
        None
    }

    fn encode_stream_ping(
        &mut self,
        seq: u32,
        node: &str,
        scratch: &mut Scratch,
    ) -> Result<(), WireError> {
        let ip = IpOctets::new(&self.config.advertise_addr);
        let ping = Ping {
            seq_no: seq,
            node,
            source_addr: ip.as_slice(),
            source_port: self.config.advertise_port,
            source_node: &self.name,
        };
        write_vec(&mut scratch.plain, |w| ping.encode(w))
    }

    /// Our node table and the delegate's state as a push-pull body in `scratch.plain`.
    fn encode_local_state(
        &mut self,
        join: bool,
        scratch: &mut Scratch,
        d: &mut impl Delegate,
    ) -> Result<(), WireError> {
        scratch.user_state.clear();
        d.local_state(join, &mut scratch.user_state);
        let user_state = &scratch.user_state;
        let nodes = &self.nodes;
        write_vec(&mut scratch.plain, |w| {
            PushPullHeader { nodes: nodes.len(), user_state_len: user_state.len(), join }
                .encode(w)?;
            for n in nodes {
                let ip = IpOctets::new(&n.addr);
                PushNodeState {
                    name: &n.name,
                    addr: Some(ip.as_slice()),
                    port: n.port,
                    meta: Some(&n.meta),
                    incarnation: n.incarnation,
                    state: n.state,
                    vsn: Some(&n.vsn),
                }
                .encode(w)?;
            }
            w.raw(user_state)
        })
    }

    fn seal_stream(&mut self, scratch: &mut Scratch, out: &mut Vec<u8>) -> Result<(), WireError> {
        let mut nonce = [0u8; 12];
        if self.keyring.is_some() {
            self.rng.fill(&mut nonce);
        }
        let Scratch { streams, plain, .. } = scratch;
        streams.seal(plain, out, self.config.enable_compression, self.keyring.as_ref(), nonce)
    }

    /// The reply to stream `id` arrived: one complete frame (see
    /// [`stream_frame`]), decrypted in place.
    pub fn handle_stream_reply(
        &mut self,
        now: Instant,
        id: StreamId,
        frame: &mut [u8],
        scratch: &mut Scratch,
        d: &mut impl Delegate,
    ) {
        let Some(pos) = self.streams.active.iter().position(|a| a.id == id) else { return };
        let a = self.streams.active.swap_remove(pos);
        self.timers.cancel(a.token);
        let Scratch { streams, inflate, .. } = scratch;
        let msg = streams.open(frame, self.keyring.as_ref(), inflate);
        let result: Result<(), String> = match (&a.kind, msg) {
            (_, Err(e)) => Err(e.to_string()),
            (_, Ok(StreamMessage::Err(e))) => Err(format!("remote error: {}", e.error)),
            (StreamKind::PushPull { join }, Ok(StreamMessage::PushPull(pp))) => {
                self.merge_remote(now, &pp, join.is_some(), d)
            }
            (StreamKind::Ping { seq, .. }, Ok(StreamMessage::Ack(ack))) => {
                if ack.seq_no == *seq {
                    Ok(())
                } else {
                    Err(format!(
                        "Sequence number from ack ({}) doesn't match ping ({})",
                        ack.seq_no, seq
                    ))
                }
            }
            (_, Ok(_)) => Err("received invalid msgType".into()),
        };
        self.stream_finished(now, a, result.err(), d);
    }

    /// Stream `id` failed (connect, write, read or timeout); `error` is the
    /// transport's message, e.g. `dial tcp 127.0.1.9:7946: connect: connection refused`.
    pub fn handle_stream_error(
        &mut self,
        now: Instant,
        id: StreamId,
        error: &str,
        d: &mut impl Delegate,
    ) {
        self.handle_stream_error_inner(now, id, error.to_string(), d);
    }

    fn handle_stream_error_inner(
        &mut self,
        now: Instant,
        id: StreamId,
        error: String,
        d: &mut impl Delegate,
    ) {
        let Some(pos) = self.streams.active.iter().position(|a| a.id == id) else { return };
        let a = self.streams.active.swap_remove(pos);
        self.timers.cancel(a.token);
        self.stream_finished(now, a, Some(error), d);
    }

    pub(super) fn stream_expired(&mut self, now: Instant, id: StreamId, d: &mut impl Delegate) {
        let Some(pos) = self.streams.active.iter().position(|a| a.id == id) else { return };
        let a = self.streams.active.swap_remove(pos);
        self.streams.unpolled.retain(|&u| u != id);
        self.stream_finished(now, a, Some("i/o timeout".into()), d);
    }

    fn stream_finished(
        &mut self,
        now: Instant,
        a: Active,
        error: Option<String>,
        d: &mut impl Delegate,
    ) {
        if error.is_some() {
            self.stats.stream_errors = self.stats.stream_errors.saturating_add(1);
        }
        match a.kind {
            StreamKind::PushPull { join: Some(j) } => {
                let e = error.map(|e| format!("Failed to join {}: {}", a.addr.ip(), e));
                self.join_done(j, e);
            }
            StreamKind::PushPull { join: None } => {
                if let Some(error) = error {
                    self.log(LogEvent::PushPullFailed { addr: a.addr, error });
                }
            }
            StreamKind::Ping { seq, .. } => self.fallback_result(now, seq, error.is_none(), d),
        }
    }

    /// Verifies and merges a remote push-pull.
    fn merge_remote(
        &mut self,
        now: Instant,
        pp: &wire::memberlist::PushPull<'_>,
        join: bool,
        d: &mut impl Delegate,
    ) -> Result<(), String> {
        if let Err(e) = self.verify_protocol(pp.states.iter()) {
            self.log(LogEvent::IncompatibleProtocol { error: e.clone() });
            return Err(e);
        }
        self.merge_state(now, pp.states.iter(), d);
        if !pp.user_state.is_empty() {
            d.merge_remote_state(now, pp.user_state, join);
        }
        Ok(())
    }

    /// An inbound stream delivered one complete frame (see
    /// [`stream_frame`]). Writes the reply (if any) into
    /// `reply` and says whether to send it; the remote state of a push-pull
    /// is merged after the reply is built, as Go answers before merging.
    pub fn handle_stream_request(
        &mut self,
        now: Instant,
        frame: &mut [u8],
        reply: &mut Vec<u8>,
        scratch: &mut Scratch,
        d: &mut impl Delegate,
    ) -> StreamReply {
        if self.shutdown {
            return StreamReply::Close;
        }
        let Scratch { streams, inflate, .. } = &mut *scratch;
        // Decode into the shared inflate buffer, then move it out so the
        // reply can be built with the rest of the scratch.
        let mut inflated = core::mem::take(inflate);
        let outcome = match streams.open(frame, self.keyring.as_ref(), &mut inflated) {
            Err(e) => {
                self.stats.stream_errors = self.stats.stream_errors.saturating_add(1);
                let text = e.to_string();
                let due = self.stream_error_log.is_none_or(|t| now - t >= STREAM_ERROR_LOG_EVERY);
                if due {
                    self.stream_error_log = Some(now);
                    let suppressed = core::mem::take(&mut self.stream_errors_unlogged);
                    self.log(LogEvent::StreamRejected { error: text.clone(), suppressed });
                } else {
                    self.stream_errors_unlogged = self.stream_errors_unlogged.saturating_add(1);
                }
                let ok = write_vec(&mut scratch.plain, |w| ErrResp { error: &text }.encode(w))
                    .is_ok()
                    && self.seal_stream(scratch, reply).is_ok();
                if ok {
                    StreamReply::Reply
                } else {
                    StreamReply::Close
                }
            }
            Ok(StreamMessage::PushPull(pp)) => {
                let ok = self.encode_local_state(pp.join, scratch, d).is_ok()
                    && self.seal_stream(scratch, reply).is_ok();
                // The reply is ready; merging a bad remote state does not
                // change it (Go has already sent its own state too).
                let _ = self.merge_remote(now, &pp, pp.join, d);
                if ok {
                    StreamReply::Reply
                } else {
                    StreamReply::Close
                }
            }
            Ok(StreamMessage::Ping(p)) => {
                if !p.node.is_empty() && *p.node != *self.name {
                    self.stats.ping_wrong_node = self.stats.ping_wrong_node.saturating_add(1);
                    StreamReply::Close
                } else {
                    let ack = Ack { seq_no: p.seq_no, payload: None };
                    let ok = write_vec(&mut scratch.plain, |w| ack.encode(w)).is_ok()
                        && self.seal_stream(scratch, reply).is_ok();
                    if ok {
                        StreamReply::Reply
                    } else {
                        StreamReply::Close
                    }
                }
            }
            Ok(StreamMessage::User(body)) => {
                if !body.is_empty() {
                    d.notify_msg(now, body);
                }
                StreamReply::Close
            }
            Ok(StreamMessage::Ack(_) | StreamMessage::Err(_)) => {
                self.stats.stream_errors = self.stats.stream_errors.saturating_add(1);
                StreamReply::Close
            }
        };
        scratch.inflate = inflated;
        outcome
    }

    /// Streams in flight (requested and not yet finished).
    pub fn streams_in_flight(&self) -> usize {
        self.streams.active.len()
    }
}

/// Encodes with `f` into `out` (resized to fit exactly).
fn write_vec(
    out: &mut Vec<u8>,
    f: impl Fn(&mut Writer<'_>) -> Result<(), WireError>,
) -> Result<(), WireError> {
    let mut counter = Writer::counting(Dialect::Gossip);
    f(&mut counter)?;
    out.clear();
    out.resize(counter.len(), 0);
    let mut w = Writer::new(out, Dialect::Gossip);
    f(&mut w)
}
