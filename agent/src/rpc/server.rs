//! The agent RPC server (`shared/protocol/rpc.md`), the endpoint the Go
//! `serf` CLI and other RPC clients drive.
//!
//! One thread runs a mio `Poll` with the listener, a `Waker` and every
//! client connection (a [`session::Session`], non-blocking, edge-triggered).
//! The thread never blocks on the agent: commands that finish later hand
//! back a channel that the session keeps, and the agent's notifier
//! ([`AgentHandle::set_notifier`]) wakes the poll whenever it delivers to
//! such a channel or to a stream or monitor channel. Queries to the engine
//! that answer at once (members, stats, user events, ...) are short calls
//! into the engine thread; `members` and `members-filtered` replies are
//! encoded there, from the engine's member table ([`members`]: about 60 µs
//! per 1000 members, 160 µs with a filter).
//!
//! Bounds (the session module has the per-connection ones):
//! * [`MAX_CLIENTS`] connections. When full, the oldest connection that has
//!   not completed the handshake is shed to make room for the new one; only
//!   when every connection has handshaken is a new one closed at once. A
//!   connection must handshake within [`HANDSHAKE_TIMEOUT`] or is closed,
//!   so clients that connect and never speak cannot lock the CLI out;
//! * [`MAX_STREAMS_TOTAL`] event streams over all connections;
//! * per connection: [`session::MAX_OBJECT`] bytes per request object,
//!   [`session::WRITE_HIGH_WATER`] bytes of output before backpressure,
//!   [`session::MAX_STREAMS_PER_SESSION`] streams,
//!   [`session::MAX_QUERIES_PER_SESSION`] queries in flight,
//!   [`session::MAX_RESPOND_IDS`] query IDs for `respond`.
//!
//! Memory therefore stays bounded whatever clients do: a client that stops
//! reading first stops being served, then loses its connection once its
//! record channels are full too.

mod frame;
pub mod members;
mod session;

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, TryRecvError};
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};

use crate::agent::log::Level;
use crate::agent::{AgentHandle, ShutdownReason};
use session::{Pump, Session};

pub use session::{
    LINGER, MAX_OBJECT, MAX_QUERIES_PER_SESSION, MAX_RESPOND_IDS, MAX_STREAMS_PER_SESSION,
    TOO_MANY_QUERIES, TOO_MANY_STREAMS, WRITE_HIGH_WATER,
};

/// Connections served at once; beyond it a new connection is closed at
/// once (with a rate-limited warning).
pub const MAX_CLIENTS: usize = 4096;
/// Event streams over all connections (each holds a 512-event channel).
pub const MAX_STREAMS_TOTAL: usize = 1024;
/// How long a new connection may take to complete the handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes read from a socket per call.
const READ_CHUNK: usize = 64 * 1024;
/// Poll events handled per wake-up.
const EVENTS: usize = 1024;
/// How long to wait before accepting again after the process ran out of
/// file descriptors (or memory).
const ACCEPT_RETRY: Duration = Duration::from_millis(100);
/// Poll timeout while a session lingers or accepting is paused.
const TICK: Duration = Duration::from_millis(100);

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);
/// Session `i` has token `FIRST_SESSION + i`.
const FIRST_SESSION: usize = 2;

/// What every session needs from the server.
pub(crate) struct Ctx {
    agent: AgentHandle,
    /// The configured `rpc_auth` (empty: none).
    auth: String,
    /// Read buffer shared by all sessions (each copies what it reads).
    scratch: Box<[u8]>,
    /// Event streams open over all sessions.
    streams_total: usize,
    /// Buffers of `members` replies, lent to the engine thread for each.
    members: members::MembersScratch,
}

/// A running RPC server; stopped by [`RpcServer::shutdown`] or on drop.
pub struct RpcServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    waker: Arc<Waker>,
    thread: Option<JoinHandle<()>>,
}

impl core::fmt::Debug for RpcServer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RpcServer").field("addr", &self.addr).finish()
    }
}

impl RpcServer {
    /// Binds `addr` and serves RPC clients for `agent` on a new thread.
    /// With a non-empty `auth`, clients must send `auth` with that key
    /// before any other command but `handshake`.
    ///
    /// Also raises this process's open-file soft limit to its hard limit,
    /// as the Go runtime (≥ 1.19) does at start-up, so that
    /// [`MAX_CLIENTS`] connections fit.
    pub fn start(addr: SocketAddr, auth: &str, agent: AgentHandle) -> io::Result<RpcServer> {
        raise_open_file_limit();
        let mut listener = TcpListener::bind(addr)?;
        let local = listener.local_addr()?;
        let poll = Poll::new()?;
        poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let notify = waker.clone();
        agent.set_notifier(Arc::new(move || {
            let _ = notify.wake();
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let server = Server {
            poll,
            listener,
            sessions: Vec::new(),
            free: Vec::new(),
            count: 0,
            busy: Vec::new(),
            lingering: 0,
            orphan_leaves: Vec::new(),
            accept_paused_until: None,
            unshaken: VecDeque::new(),
            serial: Vec::new(),
            accepted: 0,
            shed: 0,
            last_shed_log: None,
            rejected: 0,
            last_reject_log: None,
            stop: stop.clone(),
            ctx: Ctx {
                agent,
                auth: auth.to_string(),
                scratch: vec![0u8; READ_CHUNK].into_boxed_slice(),
                streams_total: 0,
                members: members::MembersScratch::default(),
            },
        };
        let thread = std::thread::Builder::new().name("agent-rpc".into()).spawn(move || {
            server.run();
        })?;
        Ok(RpcServer { addr: local, stop, waker, thread: Some(thread) })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Closes the listener and every connection (streams and monitors
    /// end), and waits for the server thread.
    pub fn shutdown(mut self) {
        self.stop_thread();
    }

    fn stop_thread(&mut self) {
        if let Some(t) = self.thread.take() {
            self.stop.store(true, Ordering::Release);
            let _ = self.waker.wake();
            let _ = t.join();
        }
    }
}

impl Drop for RpcServer {
    fn drop(&mut self) {
        self.stop_thread();
    }
}

/// The server thread's state.
struct Server {
    poll: Poll,
    listener: TcpListener,
    /// Session slots, indexed by token − [`FIRST_SESSION`].
    sessions: Vec<Option<Session>>,
    /// Free slots.
    free: Vec<usize>,
    /// Live sessions.
    count: usize,
    /// Sessions whose last pump ran out of budget.
    busy: Vec<usize>,
    /// Sessions closing with output left to flush (need a timer tick).
    lingering: usize,
    /// Leaves whose connection went away: the agent still stops after them.
    orphan_leaves: Vec<Receiver<Result<(), String>>>,
    /// Accepting is paused (out of descriptors) until then.
    accept_paused_until: Option<engine::time::Instant>,
    /// Connections not yet handshaken, oldest first: (deadline, slot,
    /// accept number). Stale entries (slot reused or handshaken) are skipped.
    unshaken: VecDeque<(engine::time::Instant, usize, u64)>,
    /// Accept number of each slot's session.
    serial: Vec<u64>,
    accepted: u64,
    /// Un-handshaken connections closed (timeout or shed) since the last warning.
    shed: u64,
    last_shed_log: Option<engine::time::Instant>,
    /// Connections refused since the last warning.
    rejected: u64,
    last_reject_log: Option<engine::time::Instant>,
    stop: Arc<AtomicBool>,
    ctx: Ctx,
}

impl Server {
    fn run(mut self) {
        let mut events = Events::with_capacity(EVENTS);
        loop {
            let timeout = if !self.busy.is_empty() {
                Some(Duration::ZERO)
            } else if self.lingering > 0 || self.accept_paused_until.is_some() {
                Some(TICK)
            } else {
                self.unshaken.front().map(|&(at, ..)| {
                    at.saturating_since(self.ctx.agent.now()) + Duration::from_millis(1)
                })
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                self.log(Level::Err, &format!("RPC server poll failed: {e}"));
                break;
            }
            if self.stop.load(Ordering::Acquire) {
                break;
            }
            for ev in events.iter() {
                match ev.token() {
                    LISTENER => self.accept(),
                    WAKER => {}
                    Token(t) => {
                        let idx = t.wrapping_sub(FIRST_SESSION);
                        if let Some(Some(s)) = self.sessions.get_mut(idx) {
                            if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                                s.set_readable();
                            }
                            self.pump(idx);
                        }
                    }
                }
            }
            if let Some(at) = self.accept_paused_until {
                if self.ctx.agent.now() >= at {
                    self.accept_paused_until = None;
                    self.accept();
                }
            }
            self.service();
            self.expire_handshakes();
            self.check_orphan_leaves();
        }
        self.close_all();
    }

    fn log(&self, level: Level, text: &str) {
        self.ctx.agent.logger().log(level, "agent.ipc", text);
    }

    /// Pumps sessions that wait on the agent or a deadline, and those that
    /// ran out of budget.
    fn service(&mut self) {
        let busy = core::mem::take(&mut self.busy);
        for idx in busy {
            self.pump(idx);
        }
        let mut lingering = 0;
        for idx in 0..self.sessions.len() {
            let needs =
                self.sessions.get(idx).and_then(Option::as_ref).is_some_and(|s| s.needs_service());
            if needs {
                self.pump(idx);
                if let Some(Some(s)) = self.sessions.get(idx) {
                    lingering += usize::from(s.linger_deadline().is_some());
                }
            }
        }
        self.lingering = lingering;
    }

    fn pump(&mut self, idx: usize) {
        let Some(Some(s)) = self.sessions.get_mut(idx) else { return };
        match s.pump(&mut self.ctx) {
            Pump::Idle => {}
            Pump::Busy => self.busy.push(idx),
            Pump::Dead => self.remove(idx),
        }
    }

    fn remove(&mut self, idx: usize) {
        let Some(slot) = self.sessions.get_mut(idx) else { return };
        let Some(mut s) = slot.take() else { return };
        let _ = self.poll.registry().deregister(s.conn_mut());
        if let Some(rx) = s.finish(&mut self.ctx) {
            self.orphan_leaves.push(rx);
        }
        self.free.push(idx);
        self.count -= 1;
        crate::metrics::Counters::dec(&self.ctx.agent.counters().rpc_clients);
    }

    fn check_orphan_leaves(&mut self) {
        let agent = &self.ctx.agent;
        self.orphan_leaves.retain(|rx| match rx.try_recv() {
            Err(TryRecvError::Empty) => true,
            Ok(_) | Err(TryRecvError::Disconnected) => {
                agent.request_shutdown(ShutdownReason::Left);
                false
            }
        });
    }

    /// The oldest live session that has not handshaken, dropping stale
    /// entries on the way; `due` only if its deadline has passed.
    fn oldest_unshaken(&mut self, due: Option<engine::time::Instant>) -> Option<usize> {
        while let Some(&(at, idx, serial)) = self.unshaken.front() {
            let live = self.serial.get(idx) == Some(&serial)
                && self.sessions.get(idx).and_then(Option::as_ref).is_some_and(|s| !s.handshaken());
            if !live {
                self.unshaken.pop_front();
                continue;
            }
            if due.is_some_and(|now| now < at) {
                return None;
            }
            self.unshaken.pop_front();
            return Some(idx);
        }
        None
    }

    /// Closes connections that did not handshake in time.
    fn expire_handshakes(&mut self) {
        let now = self.ctx.agent.now();
        while let Some(idx) = self.oldest_unshaken(Some(now)) {
            self.shed_session(idx);
        }
    }

    /// Closes an un-handshaken session; warns at most once a second.
    fn shed_session(&mut self, idx: usize) {
        self.remove(idx);
        self.shed += 1;
        let now = self.ctx.agent.now();
        if self.last_shed_log.is_some_and(|t| now.saturating_since(t) < Duration::from_secs(1)) {
            return;
        }
        self.last_shed_log = Some(now);
        let n = core::mem::take(&mut self.shed);
        self.log(
            Level::Warn,
            &format!(
                "Closed {n} client(s) that did not complete the handshake (within {}s, or to \
                 make room)",
                HANDSHAKE_TIMEOUT.as_secs()
            ),
        );
    }

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((conn, peer)) => {
                    if self.count >= MAX_CLIENTS {
                        match self.oldest_unshaken(None) {
                            Some(idx) => self.shed_session(idx),
                            None => {
                                drop(conn);
                                self.note_rejection();
                                continue;
                            }
                        }
                    }
                    self.log(Level::Info, &format!("Accepted client: {peer}"));
                    let _ = conn.set_nodelay(true);
                    let idx = match self.free.pop() {
                        Some(i) => i,
                        None => {
                            self.sessions.push(None);
                            self.sessions.len() - 1
                        }
                    };
                    let mut s = Session::new(conn, peer);
                    let token = Token(FIRST_SESSION + idx);
                    if let Err(e) = self.poll.registry().register(
                        s.conn_mut(),
                        token,
                        Interest::READABLE | Interest::WRITABLE,
                    ) {
                        self.log(Level::Err, &format!("Failed to register client {peer}: {e}"));
                        self.free.push(idx);
                        continue;
                    }
                    if let Some(slot) = self.sessions.get_mut(idx) {
                        *slot = Some(s);
                    }
                    self.count += 1;
                    self.accepted += 1;
                    if self.serial.len() <= idx {
                        self.serial.resize(idx + 1, 0);
                    }
                    if let Some(n) = self.serial.get_mut(idx) {
                        *n = self.accepted;
                    }
                    let deadline = self.ctx.agent.now() + HANDSHAKE_TIMEOUT;
                    self.unshaken.push_back((deadline, idx, self.accepted));
                    crate::metrics::Counters::inc(&self.ctx.agent.counters().rpc_clients);
                    self.pump(idx);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted
                            | io::ErrorKind::ConnectionAborted
                            | io::ErrorKind::ConnectionReset
                    ) => {}
                Err(e) => {
                    // Out of descriptors or memory: the connection stays in
                    // the backlog; try again shortly rather than spin.
                    self.log(Level::Err, &format!("Failed to accept client: {e}"));
                    self.accept_paused_until = Some(self.ctx.agent.now() + ACCEPT_RETRY);
                    return;
                }
            }
        }
    }

    /// Counts a refused connection; warns at most once a second.
    fn note_rejection(&mut self) {
        self.rejected += 1;
        let now = self.ctx.agent.now();
        if self.last_reject_log.is_some_and(|t| now.saturating_since(t) < Duration::from_secs(1)) {
            return;
        }
        self.last_reject_log = Some(now);
        let n = core::mem::take(&mut self.rejected);
        self.log(
            Level::Warn,
            &format!(
                "Refused {n} client(s): {MAX_CLIENTS} clients are already connected and \
                 handshaken"
            ),
        );
    }

    fn close_all(&mut self) {
        self.ctx.agent.set_notifier(Arc::new(|| {}));
        for idx in 0..self.sessions.len() {
            self.remove(idx);
        }
        let _ = self.poll.registry().deregister(&mut self.listener);
    }
}

/// Raises `RLIMIT_NOFILE`'s soft limit to the hard limit.
fn raise_open_file_limit() {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}
