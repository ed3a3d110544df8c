//! One RPC connection: buffers, framing, the command state machine, and the
//! records of its streams, monitor and queries (rpc.md §2–§6).
//!
//! A session never blocks. Commands that finish later (join, leave,
//! force-leave, tags, key operations) park their completion channel in
//! [`Session::pending`]; until it fires, no further request is read from the
//! buffer (Go serves a connection's requests strictly in order), while
//! records of streams, the monitor and queries keep flowing.
//!
//! [`Session::execute`] decodes a command's body and hands it to that
//! command's method; the methods are grouped by family (the connection, the
//! cluster, members, subscriptions, keys, information, queries). Replies and
//! records are encoded once, straight into the write buffer
//! ([`codec::append`]); member lists come from the engine's own members
//! through [`super::members`].
//!
//! Memory per session is bounded: the read buffer holds at most
//! [`MAX_OBJECT`] unconsumed bytes (a larger object closes the connection),
//! the write buffer stops taking records and requests at [`WRITE_HIGH_WATER`]
//! (so it holds at most that plus one reply), record channels are bounded by
//! the agent (512 items), and a client that lets both its write buffer and
//! a record channel fill up is disconnected.

use std::collections::{BTreeMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::time::Duration;

use crossbeam_channel::{Receiver, TryRecvError};
use engine::proto::serf::{KeyOp, QueryParams, RespondError};
use engine::time::Instant;
use engine::wire::msgpack::{Dialect, Writer};
use mio::net::TcpStream;

use super::frame::{Framer, Scan, Skip, Skipper};
use super::members::{self, MemberFilter, MembersScratch};
use super::Ctx;
use crate::agent::log::Level;
use crate::agent::{JoinOutcome, QueryRecord as AgentRecord, ShutdownReason, StreamItem};
use crate::rpc::codec::{self, errors, query_record, Command, Decode, Encode, ResponseHeaderView};

/// Largest request object (header or body) a client may send, bytes. The
/// Go CLI's largest requests are a few KiB (a query payload is limited to
/// 1 KiB by the agent); larger objects close the connection with a log line.
pub const MAX_OBJECT: usize = 1 << 20;
/// Pending output above which a session neither takes new requests nor
/// forwards records, bytes.
pub const WRITE_HIGH_WATER: usize = 1 << 20;
/// Event streams one connection may hold (Go has no limit; each holds a
/// 512-event channel).
pub const MAX_STREAMS_PER_SESSION: usize = 64;
/// Queries one connection may have in flight.
pub const MAX_QUERIES_PER_SESSION: usize = 64;
/// Stream query IDs remembered per connection for `respond` (oldest
/// forgotten first; each also expires at its query's deadline).
pub const MAX_RESPOND_IDS: usize = 4096;
/// How long a closing session may take to flush its last reply.
pub const LINGER: Duration = Duration::from_secs(5);
/// Objects handled per pump round, so one busy client cannot starve others.
const OBJECTS_PER_ROUND: usize = 8;
/// Rounds per [`Session::pump`] call before yielding to other sessions.
const PUMP_ROUNDS: usize = 32;
/// Buffer capacity kept across idle periods, bytes.
const KEEP_CAPACITY: usize = 64 * 1024;
/// Room first offered to a reply or record other than a member list, bytes
/// (headers, log lines, query records and the like fit; a larger one is
/// encoded again with twice the room).
const REPLY_SIZE_HINT: usize = 512;

/// Error text for `stream` past [`MAX_STREAMS_PER_SESSION`] or the
/// server-wide stream limit (no Go equivalent).
pub const TOO_MANY_STREAMS: &str = "Too many event streams";
/// Error text for `query` past [`MAX_QUERIES_PER_SESSION`] (no Go
/// equivalent).
pub const TOO_MANY_QUERIES: &str = "Too many queries in flight on this connection";

/// What the session expects next from the client.
#[derive(Clone, Copy, Debug)]
enum Expect {
    Header,
    /// The body of `cmd`; with `discard` it is read and dropped (the
    /// command was refused with `Authentication required`).
    Body {
        seq: u64,
        cmd: Command,
        discard: bool,
    },
    /// The body of `cmd` is over [`MAX_OBJECT`]: its bytes are skipped as
    /// they arrive, then the request is answered with an error (Go, which
    /// has no bound, answers such a request rather than dropping the
    /// connection).
    Oversize {
        seq: u64,
        cmd: Command,
    },
}

/// A command waiting for the agent.
enum Pending {
    Join(u64, Receiver<JoinOutcome>),
    ForceLeave(u64, Receiver<Result<(), String>>),
    Tags(u64, Receiver<Result<(), String>>),
    Leave(u64, Receiver<Result<(), String>>),
    Key(u64, bool, Receiver<(engine::proto::serf::KeyResponse, Option<String>)>),
}

struct EventStream {
    seq: u64,
    id: u64,
    rx: Receiver<StreamItem>,
}

struct Monitor {
    seq: u64,
    id: u64,
    rx: Receiver<String>,
}

struct QueryStream {
    seq: u64,
    rx: Receiver<AgentRecord>,
}

/// A stream query ID handed to the client, valid for `respond` until the
/// query's deadline.
struct RespondId {
    id: u64,
    query: u64,
    deadline: Instant,
}

/// Where the session is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Serving requests.
    Open,
    /// No more requests: flushing the last output, then closing (or at
    /// `deadline` whatever is left).
    Closing { deadline: Instant },
    /// To be removed by the server.
    Dead,
}

/// The result of [`Session::pump`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pump {
    /// Nothing more to do until the next readiness event or wake-up.
    Idle,
    /// The budget ran out with work left: pump again soon.
    Busy,
    /// Remove the session ([`Session::finish`]).
    Dead,
}

/// One client connection.
pub struct Session {
    conn: TcpStream,
    peer: SocketAddr,
    /// Received bytes; unconsumed from `rpos`.
    rbuf: Vec<u8>,
    rpos: usize,
    framer: Framer,
    /// Reads past an oversized body ([`Expect::Oversize`]).
    skipper: Skipper,
    /// The socket may have unread bytes (edge-triggered readiness).
    readable: bool,
    eof: bool,
    /// Output; unsent from `wpos`.
    wbuf: Vec<u8>,
    wpos: usize,
    expect: Expect,
    handshaken: bool,
    authed: bool,
    pending: Option<Pending>,
    streams: Vec<EventStream>,
    monitor: Option<Monitor>,
    queries: Vec<QueryStream>,
    respond_ids: VecDeque<RespondId>,
    next_query_id: u64,
    phase: Phase,
    /// The reply to an RPC `leave` is queued: stop the agent once it has
    /// been written (or the connection is gone).
    stop_agent: bool,
}

impl Session {
    /// A new session on an accepted, non-blocking connection.
    pub fn new(conn: TcpStream, peer: SocketAddr) -> Self {
        Session {
            conn,
            peer,
            rbuf: Vec::new(),
            rpos: 0,
            framer: Framer::new(MAX_OBJECT),
            skipper: Skipper::default(),
            readable: true,
            eof: false,
            wbuf: Vec::new(),
            wpos: 0,
            expect: Expect::Header,
            handshaken: false,
            authed: false,
            pending: None,
            streams: Vec::new(),
            monitor: None,
            queries: Vec::new(),
            respond_ids: VecDeque::new(),
            next_query_id: 0,
            phase: Phase::Open,
            stop_agent: false,
        }
    }

    /// The socket, for (de)registration with the poll.
    /// Whether the client completed the handshake.
    pub fn handshaken(&self) -> bool {
        self.handshaken
    }

    pub fn conn_mut(&mut self) -> &mut TcpStream {
        &mut self.conn
    }

    /// Records a readiness event for the socket.
    pub fn set_readable(&mut self) {
        self.readable = true;
    }

    /// Whether the session waits on anything but its socket (and so must
    /// be pumped when the agent's notifier fires or a deadline passes).
    pub fn needs_service(&self) -> bool {
        self.pending.is_some()
            || !self.streams.is_empty()
            || self.monitor.is_some()
            || !self.queries.is_empty()
            || !matches!(self.phase, Phase::Open)
    }

    /// When a closing session gives up flushing.
    pub fn linger_deadline(&self) -> Option<Instant> {
        match self.phase {
            Phase::Closing { deadline } => Some(deadline),
            _ => None,
        }
    }

    fn pending_out(&self) -> usize {
        self.wbuf.len().saturating_sub(self.wpos)
    }

    fn below_high_water(&self) -> bool {
        self.pending_out() < WRITE_HIGH_WATER
    }

    /// Does all the work possible now: completes a pending command,
    /// forwards records, executes buffered requests, writes and reads the
    /// socket, within a budget.
    pub fn pump(&mut self, ctx: &mut Ctx) -> Pump {
        for _ in 0..PUMP_ROUNDS {
            let mut progress = false;
            if self.phase == Phase::Open {
                progress |= self.poll_pending(ctx);
                progress |= self.forward(ctx);
                if self.is_stuck() {
                    ctx.agent.logger().log(
                        Level::Warn,
                        "agent.ipc",
                        &format!(
                            "Client {} is not reading ({} bytes unsent and a stream or monitor \
                             buffer full): stopping its streams and closing the connection",
                            self.peer,
                            self.pending_out()
                        ),
                    );
                    self.release(ctx);
                    self.phase = Phase::Dead;
                    return Pump::Dead;
                }
                progress |= self.process_input(ctx);
            }
            match self.flush() {
                Ok(p) => progress |= p,
                Err(_) => {
                    self.phase = Phase::Dead;
                    return Pump::Dead;
                }
            }
            if self.pending_out() == 0 && self.stop_agent {
                self.stop_agent = false;
                ctx.agent.request_shutdown(ShutdownReason::Left);
            }
            if let Phase::Closing { deadline } = self.phase {
                if self.pending_out() == 0 || ctx.agent.now() >= deadline {
                    self.phase = Phase::Dead;
                    return Pump::Dead;
                }
            }
            if self.phase == Phase::Open {
                match self.fill(&mut ctx.scratch) {
                    Ok(p) => progress |= p,
                    Err(_) => {
                        self.phase = Phase::Dead;
                        return Pump::Dead;
                    }
                }
            }
            if !progress {
                return Pump::Idle;
            }
        }
        Pump::Busy
    }

    /// A client that lets its output reach the high-water mark and a
    /// record channel fill up is not reading: it would only make the agent
    /// drop events (and hold their memory) for nothing.
    fn is_stuck(&self) -> bool {
        !self.below_high_water()
            && (self.monitor.as_ref().is_some_and(|m| m.rx.is_full())
                || self.streams.iter().any(|s| s.rx.is_full()))
    }

    /// Releases everything the session holds at the agent and, for a
    /// pending `leave`, hands its channel back so the server can still stop
    /// the agent when the leave completes (as Go does).
    pub fn finish(mut self, ctx: &mut Ctx) -> Option<Receiver<Result<(), String>>> {
        self.release(ctx);
        if self.stop_agent {
            ctx.agent.request_shutdown(ShutdownReason::Left);
        }
        // Read what the client already sent, so closing does not reset the
        // connection before it has read our last reply.
        let _ = self.conn.shutdown(Shutdown::Write);
        let scratch = &mut ctx.scratch;
        for _ in 0..16 {
            match self.conn.read(scratch) {
                Ok(n) if n > 0 => {}
                _ => break,
            }
        }
        match self.pending.take() {
            Some(Pending::Leave(_, rx)) => Some(rx),
            _ => None,
        }
    }

    /// Ends streams, the monitor and queries at the agent.
    fn release(&mut self, ctx: &mut Ctx) {
        for s in self.streams.drain(..) {
            ctx.agent.unsubscribe(s.id);
            ctx.streams_total = ctx.streams_total.saturating_sub(1);
        }
        if let Some(m) = self.monitor.take() {
            ctx.agent.logger().detach(m.id);
        }
        self.queries.clear();
        self.respond_ids.clear();
    }

    /// Stops reading requests; the output queued so far is still written.
    fn begin_close(&mut self, ctx: &mut Ctx) {
        self.release(ctx);
        self.phase = Phase::Closing { deadline: ctx.agent.now() + LINGER };
    }

    // --- I/O ---------------------------------------------------------------

    fn flush(&mut self) -> io::Result<bool> {
        let mut progress = false;
        while self.wpos < self.wbuf.len() {
            let out = self.wbuf.get(self.wpos..).unwrap_or(&[]);
            match self.conn.write(out) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.wpos += n;
                    progress = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if self.wpos == self.wbuf.len() {
            self.wbuf.clear();
            self.wpos = 0;
            if self.wbuf.capacity() > KEEP_CAPACITY {
                self.wbuf.shrink_to(KEEP_CAPACITY);
            }
        } else if self.wpos >= KEEP_CAPACITY && self.wpos * 2 >= self.wbuf.len() {
            self.wbuf.drain(..self.wpos);
            self.wpos = 0;
        }
        Ok(progress)
    }

    fn fill(&mut self, scratch: &mut [u8]) -> io::Result<bool> {
        if !self.readable || self.eof {
            return Ok(false);
        }
        let unread = self.rbuf.len() - self.rpos;
        if unread >= MAX_OBJECT {
            // Backpressure: requests are waiting on a command or on output.
            return Ok(false);
        }
        let room = (MAX_OBJECT - unread).min(scratch.len());
        let chunk = scratch.get_mut(..room).unwrap_or(&mut []);
        match self.conn.read(chunk) {
            Ok(0) => {
                self.eof = true;
                Ok(true)
            }
            Ok(n) => {
                if self.rpos > 0 {
                    self.rbuf.drain(..self.rpos);
                    self.rpos = 0;
                }
                self.rbuf.extend_from_slice(chunk.get(..n).unwrap_or(&[]));
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.readable = false;
                Ok(false)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(true),
            Err(e) => Err(e),
        }
    }

    /// Appends header and body as one unit (Go writes the pair under one
    /// lock, so pairs never interleave).
    fn send(&mut self, ctx: &Ctx, seq: u64, error: &str, body: Option<&dyn Encode>) {
        let header = ResponseHeaderView { error, seq };
        let r = codec::append(&mut self.wbuf, REPLY_SIZE_HINT, |w| {
            header.encode(w)?;
            body.map_or(Ok(()), |b| b.encode(w))
        });
        self.log_encode_failure(ctx, r);
    }

    /// Logs a reply that could not be encoded (nothing of it was queued).
    fn log_encode_failure(&self, ctx: &Ctx, r: engine::wire::Result<usize>) {
        if let Err(e) = r {
            ctx.agent.logger().log(
                Level::Err,
                "agent.ipc",
                &format!("Failed to encode a reply to {}: {e}", self.peer),
            );
        }
    }

    fn reply(&mut self, ctx: &Ctx, seq: u64, error: &str) {
        self.send(ctx, seq, error, None);
    }

    // --- requests ------------------------------------------------------------

    fn process_input(&mut self, ctx: &mut Ctx) -> bool {
        let mut progress = false;
        for _ in 0..OBJECTS_PER_ROUND {
            if self.phase != Phase::Open || self.pending.is_some() || !self.below_high_water() {
                return progress;
            }
            let unread = self.rbuf.get(self.rpos..).unwrap_or(&[]);
            if let Expect::Oversize { seq, cmd } = self.expect {
                let (used, step) = self.skipper.feed(unread);
                self.rpos += used;
                match step {
                    Skip::Done => {
                        self.expect = Expect::Header;
                        self.framer.reset();
                        let why = oversize_error(ctx, cmd);
                        self.reply(ctx, seq, &why);
                        progress = true;
                        continue;
                    }
                    Skip::More => {
                        if self.eof {
                            self.log_decode_failure(ctx, "unexpected EOF");
                            self.begin_close(ctx);
                            return true;
                        }
                        if self.rpos == self.rbuf.len() {
                            self.rbuf.clear();
                            self.rpos = 0;
                        }
                        return progress || used > 0;
                    }
                    Skip::Invalid(e) => {
                        self.log_decode_failure(ctx, &e.to_string());
                        self.begin_close(ctx);
                        return true;
                    }
                }
            }
            match self.framer.scan(unread) {
                Scan::Complete(n) => {
                    let start = self.rpos;
                    self.rpos += n;
                    self.framer.reset();
                    let rbuf = core::mem::take(&mut self.rbuf);
                    self.on_object(ctx, rbuf.get(start..start + n).unwrap_or(&[]));
                    self.rbuf = rbuf;
                    if self.rpos == self.rbuf.len() {
                        self.rbuf.clear();
                        self.rpos = 0;
                        if self.rbuf.capacity() > KEEP_CAPACITY {
                            self.rbuf.shrink_to(KEEP_CAPACITY);
                        }
                    }
                    progress = true;
                }
                Scan::Partial => {
                    if self.eof {
                        if !unread.is_empty() {
                            self.log_decode_failure(ctx, "unexpected EOF");
                        }
                        self.begin_close(ctx);
                        return true;
                    }
                    return progress;
                }
                Scan::Invalid(engine::wire::Error::TooLarge)
                    if matches!(self.expect, Expect::Body { discard: false, .. }) =>
                {
                    if let Expect::Body { seq, cmd, .. } = self.expect {
                        self.expect = Expect::Oversize { seq, cmd };
                        self.skipper = Skipper::default();
                    }
                    progress = true;
                }
                Scan::Invalid(e) => {
                    let why = match e {
                        engine::wire::Error::TooLarge => {
                            format!("object larger than {MAX_OBJECT} bytes")
                        }
                        e => e.to_string(),
                    };
                    self.log_decode_failure(ctx, &why);
                    self.begin_close(ctx);
                    return true;
                }
            }
        }
        progress
    }

    fn log_decode_failure(&self, ctx: &Ctx, why: &str) {
        let what = match self.expect {
            Expect::Header => "failed to decode request header".to_string(),
            Expect::Body { cmd, .. } | Expect::Oversize { cmd, .. } => {
                format!("Failed to evaluate request: decode failed ({})", cmd.name())
            }
        };
        ctx.agent.logger().log(Level::Err, "agent.ipc", &format!("{what}: {why} ({})", self.peer));
    }

    fn on_object(&mut self, ctx: &mut Ctx, obj: &[u8]) {
        match self.expect {
            Expect::Header => self.on_header(ctx, obj),
            // Skipped in `process_input`, never framed.
            Expect::Oversize { .. } => {}
            Expect::Body { seq, cmd, discard } => {
                self.expect = Expect::Header;
                if !discard {
                    if let Err(e) = self.execute(ctx, cmd, seq, obj) {
                        self.fail(ctx, &e);
                    }
                }
            }
        }
    }

    /// Logs a request error as Go does and closes without a reply.
    fn fail(&mut self, ctx: &mut Ctx, e: &str) {
        ctx.agent.logger().log(
            Level::Err,
            "agent.ipc",
            &format!("Failed to evaluate request: {e}"),
        );
        self.begin_close(ctx);
    }

    fn on_header(&mut self, ctx: &mut Ctx, obj: &[u8]) {
        let converted = positional(obj, HEADER_FIELDS);
        let obj = converted.as_deref().unwrap_or(obj);
        let header = match codec::RequestHeader::from_slice(obj) {
            Ok((h, _)) => h,
            Err(e) => {
                ctx.agent.logger().log(
                    Level::Err,
                    "agent.ipc",
                    &format!("failed to decode request header: {e} ({})", self.peer),
                );
                self.begin_close(ctx);
                return;
            }
        };
        let seq = header.seq;
        let cmd = Command::from_name(&header.command);
        if cmd != Some(Command::Handshake) && !self.handshaken {
            self.reply(ctx, seq, errors::HANDSHAKE_REQUIRED);
            self.fail(ctx, errors::HANDSHAKE_REQUIRED);
            return;
        }
        if !ctx.auth.is_empty()
            && !self.authed
            && !matches!(cmd, Some(Command::Auth | Command::Handshake))
        {
            ctx.agent.logger().log(Level::Warn, "agent.ipc", "Client sending commands before auth");
            self.reply(ctx, seq, errors::AUTH_REQUIRED);
            if let Some(cmd) = cmd.filter(|c| c.has_request_body()) {
                self.expect = Expect::Body { seq, cmd, discard: true };
            }
            return;
        }
        match cmd {
            None => {
                self.reply(ctx, seq, errors::UNSUPPORTED_COMMAND);
                self.fail(ctx, &format!("command '{}' not recognized", header.command));
            }
            Some(cmd) if cmd.has_request_body() => {
                self.expect = Expect::Body { seq, cmd, discard: false };
            }
            Some(cmd) => {
                if let Err(e) = self.execute(ctx, cmd, seq, &[]) {
                    self.fail(ctx, &e);
                }
            }
        }
    }

    /// Runs `cmd`. `Err` is Go's "failed to evaluate" text: the connection
    /// closes without a reply. Each command's body is decoded here, before
    /// anything else happens, and handed to its method (grouped below by
    /// family).
    fn execute(
        &mut self,
        ctx: &mut Ctx,
        cmd: Command,
        seq: u64,
        body: &[u8],
    ) -> Result<(), String> {
        let converted = positional(body, go_fields(cmd));
        let body = converted.as_deref().unwrap_or(body);
        match cmd {
            Command::Handshake => self.handshake(ctx, seq, decode(body)?),
            Command::Auth => self.auth(ctx, seq, decode(body)?),
            Command::Event => self.user_event(ctx, seq, decode(body)?),
            Command::ForceLeave => self.force_leave(ctx, seq, decode(body)?),
            Command::Join => self.join(ctx, seq, decode(body)?),
            Command::Members => self.send_members(ctx, seq, None),
            Command::MembersFiltered => self.members_filtered(ctx, seq, decode(body)?)?,
            Command::Tags => self.set_tags(ctx, seq, decode(body)?),
            Command::Stream => self.stream(ctx, seq, decode(body)?),
            Command::Monitor => self.monitor(ctx, seq, decode(body)?),
            Command::Stop => self.stop(ctx, seq, decode(body)?),
            Command::Leave => self.leave(ctx, seq),
            Command::Query => self.query(ctx, seq, decode(body)?),
            Command::Respond => self.respond(ctx, seq, decode(body)?),
            Command::InstallKey => {
                self.change_key(ctx, seq, KeyOp::Install, "key installation", decode(body)?);
            }
            Command::UseKey => {
                self.change_key(ctx, seq, KeyOp::Use, "primary key change", decode(body)?);
            }
            Command::RemoveKey => {
                self.change_key(ctx, seq, KeyOp::Remove, "key removal", decode(body)?);
            }
            Command::ListKeys => self.list_keys(ctx, seq),
            Command::Stats => self.send_stats(ctx, seq),
            Command::GetCoordinate => self.send_coordinate(ctx, seq, decode(body)?),
        }
        Ok(())
    }

    // --- the connection: handshake, auth ---------------------------------

    fn handshake(&mut self, ctx: &Ctx, seq: u64, r: codec::HandshakeRequest) {
        let err = if r.version != 1 {
            errors::UNSUPPORTED_IPC_VERSION
        } else if self.handshaken {
            errors::DUPLICATE_HANDSHAKE
        } else {
            self.handshaken = true;
            ""
        };
        self.reply(ctx, seq, err);
    }

    fn auth(&mut self, ctx: &Ctx, seq: u64, r: codec::AuthRequest) {
        let err = if r.auth_key == ctx.auth {
            self.authed = true;
            ""
        } else {
            errors::INVALID_AUTH_TOKEN
        };
        self.reply(ctx, seq, err);
    }

    // --- the cluster: event, force-leave, join, tags, leave ----------------
    // All but `event` finish later: their completion is a [`Pending`].

    fn user_event(&mut self, ctx: &Ctx, seq: u64, r: codec::EventRequest) {
        let payload = r.payload.as_deref().unwrap_or(&[]);
        let err = ctx.agent.user_event(&r.name, payload, r.coalesce).err().unwrap_or_default();
        self.reply(ctx, seq, &err);
    }

    fn force_leave(&mut self, ctx: &Ctx, seq: u64, r: codec::ForceLeaveRequest) {
        let prune = if r.prune { " (prune)" } else { "" };
        let text = format!("Force leaving node{prune}: {}", r.node);
        ctx.agent.logger().log(Level::Info, "agent", &text);
        self.pending = Some(Pending::ForceLeave(seq, ctx.agent.force_leave(&r.node, r.prune)));
    }

    fn join(&mut self, ctx: &Ctx, seq: u64, r: codec::JoinRequest) {
        let addrs = r.existing.unwrap_or_default();
        if addrs.is_empty() {
            // Go's memberlist contacts nobody and reports no error.
            let text = format!("joining: [] replay: {}", r.replay);
            ctx.agent.logger().log(Level::Info, "agent", &text);
            self.send(ctx, seq, "", Some(&codec::JoinResponse { num: 0 }));
        } else {
            self.pending = Some(Pending::Join(seq, ctx.agent.join(&addrs, r.replay)));
        }
    }

    fn set_tags(&mut self, ctx: &Ctx, seq: u64, r: codec::TagsRequest) {
        let set: BTreeMap<String, String> = r.tags.unwrap_or_default().into_iter().collect();
        let delete = r.delete_tags.unwrap_or_default();
        self.pending = Some(Pending::Tags(seq, ctx.agent.set_tags(&set, &delete)));
    }

    fn leave(&mut self, ctx: &Ctx, seq: u64) {
        let log = ctx.agent.logger();
        log.log(Level::Info, "agent.ipc", "Graceful leave triggered");
        log.log(Level::Info, "agent", "requesting graceful leave from Serf");
        self.pending = Some(Pending::Leave(seq, ctx.agent.leave()));
    }

    // --- members, members-filtered -------------------------------------------

    /// A bad expression is the request's error (no reply).
    fn members_filtered(
        &mut self,
        ctx: &mut Ctx,
        seq: u64,
        r: codec::MembersFilteredRequest,
    ) -> Result<(), String> {
        let filter = MemberFilter::compile(&r)?;
        self.send_members(ctx, seq, Some(filter));
        Ok(())
    }

    /// Replies with every member (that passes `filter`), encoded on the
    /// engine thread straight from its member table into the server's
    /// reusable [`MembersScratch`], then copied into the output.
    fn send_members(&mut self, ctx: &mut Ctx, seq: u64, filter: Option<MemberFilter>) {
        let mut scratch = core::mem::take(&mut ctx.members);
        let done = ctx.agent.with_members(move |table| {
            let r = scratch.encode(seq, || table.iter(), filter.as_ref());
            (scratch, r)
        });
        let (mut scratch, r) = done.unwrap_or_else(|_| {
            // The engine is gone (and took the buffers): as Go's agent
            // would at this point, list nobody.
            let mut scratch = MembersScratch::default();
            let r = scratch.encode_empty(seq);
            (scratch, r)
        });
        if r.is_ok() {
            self.wbuf.extend_from_slice(&scratch.out);
        }
        self.log_encode_failure(ctx, r);
        scratch.release();
        ctx.members = scratch;
    }

    // --- stream, monitor, stop ---------------------------------------------

    fn stream(&mut self, ctx: &mut Ctx, seq: u64, r: codec::StreamRequest) {
        let filters = crate::config::parse_event_filter(&r.kind);
        let err = if filters.iter().any(|f| !f.is_valid()) {
            errors::INVALID_FILTER
        } else if self.streams.iter().any(|s| s.seq == seq) {
            errors::STREAM_EXISTS
        } else if self.streams.len() >= MAX_STREAMS_PER_SESSION
            || ctx.streams_total >= super::MAX_STREAMS_TOTAL
        {
            TOO_MANY_STREAMS
        } else {
            let (id, rx) = ctx.agent.subscribe(filters);
            self.streams.push(EventStream { seq, id, rx });
            ctx.streams_total += 1;
            ""
        };
        self.reply(ctx, seq, err);
    }

    fn monitor(&mut self, ctx: &Ctx, seq: u64, r: codec::MonitorRequest) {
        let name = r.log_level.to_uppercase();
        let level = match name.as_str() {
            "TRACE" => Some(Level::Trace),
            "DEBUG" => Some(Level::Debug),
            "INFO" => Some(Level::Info),
            "WARN" => Some(Level::Warn),
            "ERR" => Some(Level::Err),
            _ => None,
        };
        let err = match level {
            None => format!("Unknown log level: {name}"),
            Some(_) if self.monitor.is_some() => errors::MONITOR_EXISTS.to_string(),
            Some(level) => {
                let (id, rx) = ctx.agent.logger().attach(level);
                self.monitor = Some(Monitor { seq, id, rx });
                String::new()
            }
        };
        self.reply(ctx, seq, &err);
    }

    fn stop(&mut self, ctx: &mut Ctx, seq: u64, r: codec::StopRequest) {
        if self.monitor.as_ref().is_some_and(|m| m.seq == r.stop) {
            if let Some(m) = self.monitor.take() {
                ctx.agent.logger().detach(m.id);
            }
        }
        if let Some(i) = self.streams.iter().position(|s| s.seq == r.stop) {
            let s = self.streams.remove(i);
            ctx.agent.unsubscribe(s.id);
            ctx.streams_total = ctx.streams_total.saturating_sub(1);
        }
        self.reply(ctx, seq, "");
    }

    // --- keys: install-key, use-key, remove-key, list-keys -------------------

    /// `install-key`, `use-key`, `remove-key`: `what` names `op` in the log.
    fn change_key(&mut self, ctx: &Ctx, seq: u64, op: KeyOp, what: &str, r: codec::KeyRequest) {
        ctx.agent.logger().log(Level::Info, "agent", &format!("Initiating {what}"));
        match crate::go::base64::decode_std(&r.key) {
            Ok(key) => self.pending = Some(Pending::Key(seq, false, ctx.agent.key_op(op, &key))),
            Err(e) => {
                let body = codec::KeyResponse { messages: Some(Vec::new()), ..Default::default() };
                self.send(ctx, seq, &e, Some(&body));
            }
        }
    }

    fn list_keys(&mut self, ctx: &Ctx, seq: u64) {
        ctx.agent.logger().log(Level::Info, "agent", "Initiating key listing");
        self.pending = Some(Pending::Key(seq, true, ctx.agent.key_op(KeyOp::List, &[])));
    }

    // --- stats, get-coordinate ---------------------------------------------

    fn send_stats(&mut self, ctx: &Ctx, seq: u64) {
        let stats = ctx.agent.stats();
        let body = codec::StatsResponse(Some(
            stats.into_iter().map(|(k, m)| (k, Some(m.into_iter().collect()))).collect(),
        ));
        self.send(ctx, seq, "", Some(&body));
    }

    fn send_coordinate(&mut self, ctx: &Ctx, seq: u64, r: codec::CoordinateRequest) {
        let body = match ctx.agent.coordinate(&r.node) {
            Some(c) => codec::CoordinateResponse {
                coord: codec::Coordinate {
                    adjustment: c.adjustment,
                    error: c.error,
                    height: c.height,
                    vec: Some(c.vec.to_vec()),
                },
                ok: true,
            },
            None => codec::CoordinateResponse::default(),
        };
        self.send(ctx, seq, "", Some(&body));
    }

    // --- query, respond ------------------------------------------------------

    fn query(&mut self, ctx: &mut Ctx, seq: u64, r: codec::QueryRequest) {
        let err = self.start_query(ctx, seq, r);
        self.reply(ctx, seq, &err);
    }

    fn respond(&mut self, ctx: &Ctx, seq: u64, r: codec::RespondRequest) {
        let err = self.answer_query(ctx, r.id, r.payload.as_deref().unwrap_or(&[]));
        self.reply(ctx, seq, err.as_deref().unwrap_or(""));
    }

    /// Starts a query; returns the reply's error text (`""` on success).
    fn start_query(&mut self, ctx: &mut Ctx, seq: u64, r: codec::QueryRequest) -> String {
        // go-msgpack decodes an empty `[]byte` as nil, so only a non-empty
        // payload disqualifies a ping.
        let has_payload = r.payload.as_ref().is_some_and(|p| !p.is_empty());
        if r.name.starts_with("_serf_") && (r.name != "_serf_ping" || has_payload) {
            return "Queries cannot contain the '_serf_' prefix".into();
        }
        if self.queries.len() >= MAX_QUERIES_PER_SESSION {
            return TOO_MANY_QUERIES.into();
        }
        let payload = r.payload.unwrap_or_default();
        let log = ctx.agent.logger();
        log.log(
            Level::Debug,
            "agent",
            &format!(
                "Requesting query send: {}. Payload: {}",
                r.name,
                crate::go::fmt::quote(&payload)
            ),
        );
        let timeout = match u64::try_from(r.timeout_ns) {
            Ok(ns) => Duration::from_nanos(ns),
            // A negative timeout: the deadline has already passed.
            Err(_) => Duration::from_nanos(1),
        };
        let params = QueryParams {
            filter_nodes: r.filter_nodes.unwrap_or_default(),
            filter_tags: r.filter_tags.unwrap_or_default(),
            request_ack: r.request_ack,
            relay_factor: r.relay_factor,
            timeout,
        };
        match ctx.agent.query(&r.name, &payload, params) {
            Ok(rx) => {
                self.queries.push(QueryStream { seq, rx });
                String::new()
            }
            Err(e) => {
                log.log(Level::Warn, "agent", &format!("failed to start user query: {e}"));
                e
            }
        }
    }

    /// Answers a stream query by its per-connection ID; `Some` is the error.
    fn answer_query(&mut self, ctx: &Ctx, id: u64, payload: &[u8]) -> Option<String> {
        let now = ctx.agent.now();
        while self.respond_ids.front().is_some_and(|r| r.deadline < now) {
            self.respond_ids.pop_front();
        }
        let found = self
            .respond_ids
            .binary_search_by_key(&id, |r| r.id)
            .ok()
            .and_then(|i| self.respond_ids.get(i))
            .filter(|r| now <= r.deadline)
            .map(|r| r.query);
        let Some(query) = found else { return Some(errors::INVALID_QUERY_ID.into()) };
        match ctx.agent.respond(query, payload) {
            Ok(()) => None,
            Err(RespondError::NoSuchQuery) => Some(errors::INVALID_QUERY_ID.into()),
            Err(RespondError::Failed(e)) => Some(format!("failed to respond to key query: {e}")),
        }
    }

    /// Gives a stream query a per-connection ID (Go's `RegisterQuery`).
    fn register_query(&mut self, query: u64, deadline: Instant, now: Instant) -> u64 {
        self.next_query_id += 1;
        let id = self.next_query_id;
        if deadline >= now {
            if self.respond_ids.len() >= MAX_RESPOND_IDS {
                self.respond_ids.pop_front();
            }
            self.respond_ids.push_back(RespondId { id, query, deadline });
        }
        id
    }

    // --- completions and records ------------------------------------------

    /// Replies to the pending command if the agent has finished it.
    fn poll_pending(&mut self, ctx: &mut Ctx) -> bool {
        let Some(p) = self.pending.take() else { return false };
        let log = ctx.agent.logger().clone();
        match p {
            Pending::Join(seq, rx) => match rx.try_recv() {
                Ok(o) => {
                    let num = i32::try_from(o.joined).unwrap_or(i32::MAX);
                    let err = o.error.unwrap_or_default();
                    self.send(ctx, seq, &err, Some(&codec::JoinResponse { num }));
                }
                Err(TryRecvError::Empty) => self.pending = Some(Pending::Join(seq, rx)),
                Err(TryRecvError::Disconnected) => self.send(
                    ctx,
                    seq,
                    "agent is shutting down",
                    Some(&codec::JoinResponse { num: 0 }),
                ),
            },
            Pending::ForceLeave(seq, rx) => match rx.try_recv() {
                Ok(r) => {
                    if let Err(e) = &r {
                        log.log(Level::Warn, "agent", &format!("failed to remove node: {e}"));
                    }
                    self.reply(ctx, seq, r.err().as_deref().unwrap_or(""));
                }
                Err(TryRecvError::Empty) => self.pending = Some(Pending::ForceLeave(seq, rx)),
                Err(TryRecvError::Disconnected) => self.reply(ctx, seq, "agent is shutting down"),
            },
            Pending::Tags(seq, rx) => match rx.try_recv() {
                Ok(r) => self.reply(ctx, seq, r.err().as_deref().unwrap_or("")),
                Err(TryRecvError::Empty) => self.pending = Some(Pending::Tags(seq, rx)),
                Err(TryRecvError::Disconnected) => self.reply(ctx, seq, "agent is shutting down"),
            },
            Pending::Leave(seq, rx) => {
                let r = match rx.try_recv() {
                    Ok(r) => r,
                    Err(TryRecvError::Empty) => {
                        self.pending = Some(Pending::Leave(seq, rx));
                        return false;
                    }
                    Err(TryRecvError::Disconnected) => Err("agent is shutting down".to_string()),
                };
                if let Err(e) = &r {
                    log.log(Level::Err, "agent.ipc", &format!("leave failed: {e}"));
                }
                self.reply(ctx, seq, r.err().as_deref().unwrap_or(""));
                // Go shuts the agent down after the reply, whatever the outcome.
                self.stop_agent = true;
            }
            Pending::Key(seq, list, rx) => match rx.try_recv() {
                Ok((resp, err)) => {
                    let body = key_response(&resp, list);
                    self.send(ctx, seq, err.as_deref().unwrap_or(""), Some(&body));
                }
                Err(TryRecvError::Empty) => self.pending = Some(Pending::Key(seq, list, rx)),
                Err(TryRecvError::Disconnected) => {
                    let body =
                        codec::KeyResponse { messages: Some(Vec::new()), ..Default::default() };
                    self.send(ctx, seq, "agent is shutting down", Some(&body));
                }
            },
        }
        self.pending.is_none()
    }

    /// Writes records of the monitor, streams and queries, while the
    /// output is below the high-water mark.
    fn forward(&mut self, ctx: &mut Ctx) -> bool {
        let mut progress = false;
        if let Some(m) = &self.monitor {
            let (seq, rx) = (m.seq, m.rx.clone());
            while self.below_high_water() {
                let Ok(line) = rx.try_recv() else { break };
                self.send(ctx, seq, "", Some(&codec::LogRecord { log: line }));
                progress = true;
            }
        }
        for i in 0..self.streams.len() {
            let Some(s) = self.streams.get(i) else { break };
            let (seq, rx) = (s.seq, s.rx.clone());
            while self.below_high_water() {
                let Ok(item) = rx.try_recv() else { break };
                self.send_stream_item(ctx, seq, item);
                progress = true;
            }
        }
        let mut i = 0;
        while i < self.queries.len() {
            let Some(q) = self.queries.get(i) else { break };
            let (seq, rx) = (q.seq, q.rx.clone());
            let mut done = false;
            while self.below_high_water() {
                let record = match rx.try_recv() {
                    Ok(AgentRecord::Ack { from }) => {
                        codec::QueryRecord { from, payload: None, kind: query_record::ACK.into() }
                    }
                    Ok(AgentRecord::Response { from, payload }) => codec::QueryRecord {
                        from,
                        payload: (!payload.is_empty()).then_some(payload),
                        kind: query_record::RESPONSE.into(),
                    },
                    // The agent stopping ends the query too: the client
                    // needs `done` to finish.
                    Ok(AgentRecord::Done) | Err(TryRecvError::Disconnected) => {
                        done = true;
                        codec::QueryRecord {
                            from: String::new(),
                            payload: None,
                            kind: query_record::DONE.into(),
                        }
                    }
                    Err(TryRecvError::Empty) => break,
                };
                self.send(ctx, seq, "", Some(&record));
                progress = true;
                if done {
                    break;
                }
            }
            if done {
                self.queries.remove(i);
            } else {
                i += 1;
            }
        }
        progress
    }

    fn send_stream_item(&mut self, ctx: &Ctx, seq: u64, item: StreamItem) {
        match item {
            StreamItem::Members { event, members } => {
                let r = members::append_member_event(&mut self.wbuf, seq, event, &members);
                self.log_encode_failure(ctx, r);
            }
            StreamItem::User { ltime, name, payload, coalesce } => {
                let rec = codec::UserEventRecord {
                    coalesce,
                    event: "user".into(),
                    ltime,
                    name,
                    payload: (!payload.is_empty()).then_some(payload),
                };
                self.send(ctx, seq, "", Some(&rec));
            }
            StreamItem::Query { id, ltime, name, payload, deadline } => {
                let conn_id = self.register_query(id, deadline, ctx.agent.now());
                let rec = codec::QueryEventRecord {
                    event: "query".into(),
                    id: conn_id,
                    ltime,
                    name,
                    payload: (!payload.is_empty()).then_some(payload),
                };
                self.send(ctx, seq, "", Some(&rec));
            }
        }
    }
}

/// Decodes a request body; the error is Go's "decode failed" text.
fn decode<T: Decode>(body: &[u8]) -> Result<T, String> {
    T::from_slice(body).map(|(v, _)| v).map_err(|e| format!("decode failed: {e}"))
}

/// The fields of each request struct in Go's declaration order: go-msgpack
/// also decodes a struct from an array, positionally in this order.
fn go_fields(cmd: Command) -> &'static [&'static str] {
    match cmd {
        Command::Handshake => &["Version"],
        Command::Auth => &["AuthKey"],
        Command::Event => &["Name", "Payload", "Coalesce"],
        Command::ForceLeave => &["Node", "Prune"],
        Command::Join => &["Existing", "Replay"],
        Command::MembersFiltered => &["Tags", "Status", "Name"],
        Command::Tags => &["Tags", "DeleteTags"],
        Command::Stream => &["Type"],
        Command::Monitor => &["LogLevel"],
        Command::Stop => &["Stop"],
        Command::Query => &[
            "FilterNodes",
            "FilterTags",
            "RequestAck",
            "RelayFactor",
            "Timeout",
            "Name",
            "Payload",
        ],
        Command::Respond => &["ID", "Payload"],
        Command::InstallKey | Command::UseKey | Command::RemoveKey => &["Key"],
        Command::GetCoordinate => &["Node"],
        Command::Members | Command::Leave | Command::ListKeys | Command::Stats => &[],
    }
}

/// Request header fields in Go's declaration order.
const HEADER_FIELDS: &[&str] = &["Command", "Seq"];

/// When `obj` is an array, the map go-msgpack would have read from it:
/// item `i` is field `fields[i]`; extra items are dropped, missing fields
/// keep their zero value. `None` when `obj` is not an array (or is broken,
/// which the typed decoder then reports).
fn positional(obj: &[u8], fields: &[&str]) -> Option<Vec<u8>> {
    use engine::wire::msgpack::Reader;
    if !matches!(obj.first(), Some(0x90..=0x9f | 0xdc | 0xdd)) {
        return None;
    }
    let mut r = Reader::new(obj);
    let n = r.array_len_or_nil().ok()??;
    let k = n.min(fields.len());
    let room = obj.len() + 5 + fields.iter().map(|f| f.len() + 2).sum::<usize>();
    let mut out = vec![0u8; room];
    let mut w = Writer::new(&mut out, Dialect::Rpc);
    w.map_len(k).ok()?;
    for field in fields.iter().take(k) {
        w.key(field).ok()?;
        w.raw(r.value_bytes().ok()?).ok()?;
    }
    let len = w.len();
    out.truncate(len);
    Some(out)
}

/// The key response body: `Keys` only for `list-keys`, `Messages` never nil.
fn key_response(r: &engine::proto::serf::KeyResponse, list: bool) -> codec::KeyResponse {
    let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    codec::KeyResponse {
        keys: list.then(|| r.keys.iter().map(|(k, n)| (k.clone(), count(*n))).collect()),
        messages: Some(r.messages.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
        num_err: count(r.num_err),
        num_nodes: count(r.num_nodes),
        num_resp: count(r.num_resp),
    }
}

/// The error for a request whose body is over [`MAX_OBJECT`]: where Go
/// would refuse such a body on its size, its words with this agent's limit;
/// otherwise a plain statement of our bound.
fn oversize_error(ctx: &Ctx, cmd: Command) -> String {
    use engine::proto::serf::limits;
    let c = ctx.agent.config();
    let limit = |v: i64| usize::try_from(v).unwrap_or(0);
    match cmd {
        Command::Event => limits::user_event_too_large(limit(c.user_event_size_limit)),
        Command::Query => limits::query_too_large(limit(c.query_size_limit)),
        Command::Respond => limits::response_too_large(limit(c.query_response_size_limit)),
        Command::Tags => limits::tags_too_large(),
        _ => format!("request body larger than {MAX_OBJECT} bytes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrays_decode_positionally_like_go_msgpack() {
        let arr = |items: &[codec::Value]| codec::Value::Array(items.to_vec()).to_vec().unwrap();
        let s = |t: &str| codec::Value::Str(t.as_bytes().to_vec());
        let b = positional(
            &arr(&[s("deploy"), codec::Value::Nil, codec::Value::Bool(true)]),
            go_fields(Command::Event),
        )
        .unwrap();
        let e: codec::EventRequest = decode(&b).unwrap();
        assert_eq!((e.name.as_str(), e.payload, e.coalesce), ("deploy", None, true));
        // Fewer items keep zero values; extra ones are dropped.
        let b = positional(&arr(&[s("x")]), go_fields(Command::ForceLeave)).unwrap();
        let f: codec::ForceLeaveRequest = decode(&b).unwrap();
        assert_eq!((f.node.as_str(), f.prune), ("x", false));
        let b = positional(&arr(&[codec::Value::Int(9), s("extra")]), go_fields(Command::Stop))
            .unwrap();
        assert_eq!(decode::<codec::StopRequest>(&b).unwrap().stop, 9);
        let b = positional(&arr(&[s("members"), codec::Value::Int(3)]), HEADER_FIELDS).unwrap();
        let h: codec::RequestHeader = decode(&b).unwrap();
        assert_eq!((h.command.as_str(), h.seq), ("members", 3));
        assert_eq!(positional(&[0x81, 0xa1, b'a', 0x01], HEADER_FIELDS), None);
        // A broken array is left to the typed decoder to refuse.
        assert_eq!(positional(&[0x92, 0xa1], HEADER_FIELDS), None);
    }

    #[test]
    fn key_response_lists_keys_only_for_list() {
        let mut r = engine::proto::serf::KeyResponse::default();
        r.keys.insert("k".into(), 2);
        r.num_nodes = 2;
        let b = key_response(&r, false);
        assert_eq!((b.keys, b.messages, b.num_nodes), (None, Some(vec![]), 2));
        assert_eq!(key_response(&r, true).keys, Some(vec![("k".into(), 2)]));
    }
}
