//! The HTTP API (`-http-addr`): Consul's catalog, health, agent, status
//! and metrics endpoints over HTTP/1.1 ([`api`] lists them).
//!
//! One thread runs a mio `Poll` with the listener, a `Waker` and every
//! connection (non-blocking, edge-triggered); it never runs on an engine
//! worker and never blocks on the agent. Blocking queries and pending
//! joins/leaves are connection states, not threads: the agent's view
//! watcher ([`crate::agent::view::View::watch`]) wakes the poll when the
//! membership changes or a handle channel is filled, and a sweep every
//! [`SWEEP`] ends waits, idle connections and slow clients at their
//! deadlines.
//!
//! Bounds:
//! * [`MAX_CONNS`] connections (more are accepted and closed at once);
//! * per connection: [`request::MAX_HEAD`] bytes of request head,
//!   [`request::MAX_BODY`] bytes of body, one request at a time
//!   (pipelined requests wait in the read buffer, at most
//!   [`request::MAX_HEAD`] bytes read ahead), one response buffered;
//! * a waiting blocking query holds its parsed request and a read buffer
//!   shrunk to [`KEEP_CAPACITY`] — a few KiB, so a thousand of them cost a
//!   few MiB and no thread;
//! * timeouts: [`HEAD_TIMEOUT`] to send a request head once started,
//!   [`IDLE_TIMEOUT`] between keep-alive requests, [`WRITE_TIMEOUT`] to
//!   take a response, [`api::MAX_WAIT`] (+ jitter) for a blocking query.
//!
//! A refused request (bad head, too large, bad method) gets its error
//! status with `Connection: close`; the connection then reads and drops
//! what the client still sends for up to [`DRAIN_TIMEOUT`], so the client
//! sees the response rather than a reset.

pub mod api;
pub mod request;

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use engine::time::Instant;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};

use crate::agent::log::Level;
use crate::agent::AgentHandle;
use crate::metrics::Counters;
use api::{Api, Outcome, Pending, Response};
use request::{Parsed, Request};

/// Connections served at once.
pub const MAX_CONNS: usize = 4096;
/// Time to finish a request head once its first byte arrived.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Time a keep-alive connection may sit idle between requests.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Time a client may take to read a response.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Time spent reading and dropping input after a refused request.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
/// How often deadlines are checked (the precision of every timeout).
pub const SWEEP: Duration = Duration::from_millis(100);
/// Buffer capacity kept by an idle or waiting connection.
pub const KEEP_CAPACITY: usize = 4 * 1024;
/// Bytes read per call.
const READ_CHUNK: usize = 64 * 1024;
/// Poll events per wake-up.
const EVENTS: usize = 1024;
/// Requests one connection may have answered per pump before others run.
const REQUESTS_PER_PUMP: usize = 16;

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);
const FIRST_CONN: usize = 2;

/// A running HTTP server; stopped by [`HttpServer::shutdown`] or on drop.
pub struct HttpServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    waker: Arc<Waker>,
    thread: Option<JoinHandle<()>>,
}

impl core::fmt::Debug for HttpServer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("HttpServer").field("addr", &self.addr).finish()
    }
}

impl HttpServer {
    /// Binds `addr` and serves the API for `agent` on a new thread.
    pub fn start(addr: SocketAddr, agent: AgentHandle) -> io::Result<HttpServer> {
        let mut listener = TcpListener::bind(addr)?;
        let local = listener.local_addr()?;
        let poll = Poll::new()?;
        poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let w = waker.clone();
        let watch = agent
            .view()
            .watch(Arc::new(move || {
                let _ = w.wake();
            }))
            .ok_or_else(|| io::Error::other("too many view watchers"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let server = Server {
            poll,
            listener,
            conns: Vec::new(),
            free: Vec::new(),
            count: 0,
            busy: Vec::new(),
            seen_index: agent.view().index(),
            waiting: 0,
            pending: 0,
            next_sweep: None,
            stop: stop.clone(),
            scratch: vec![0u8; READ_CHUNK].into_boxed_slice(),
            api: Api::new(agent.clone()),
            agent,
            watch,
        };
        let thread =
            std::thread::Builder::new().name("agent-http".into()).spawn(move || server.run())?;
        Ok(HttpServer { addr: local, stop, waker, thread: Some(thread) })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Closes the listener and every connection, and waits for the thread.
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

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop_thread();
    }
}

/// Where a connection is.
enum State {
    /// Reading (or parsing buffered) request bytes.
    Reading,
    /// A blocking query waiting for the view to pass `min_index`.
    Waiting { req: Request, min_index: u64 },
    /// A join/leave/force-leave waiting for the agent.
    Pending { req: Request, op: Pending },
    /// Writing a response; then reading again, or closing.
    Writing,
    /// After a refused request: dropping input until EOF or the deadline.
    Draining,
}

struct Conn {
    stream: TcpStream,
    rbuf: Vec<u8>,
    wbuf: Vec<u8>,
    wpos: usize,
    state: State,
    /// Close (drain) once the response is written.
    close_after: bool,
    /// Stop the agent once the response is written (after a leave).
    stop_agent: bool,
    /// The socket may have unread bytes (edge-triggered readiness).
    readable: bool,
    eof: bool,
    /// When the current phase times out.
    deadline: Instant,
    /// Request body bytes still to drop.
    skip: usize,
}

#[derive(PartialEq, Eq)]
enum Pump {
    Idle,
    Busy,
    Dead,
}

struct Server {
    poll: Poll,
    listener: TcpListener,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    count: usize,
    busy: Vec<usize>,
    /// The view index the waiting queries were last checked at.
    seen_index: u64,
    /// Connections in `Waiting`.
    waiting: usize,
    /// Connections in `Pending`.
    pending: usize,
    next_sweep: Option<Instant>,
    stop: Arc<AtomicBool>,
    scratch: Box<[u8]>,
    api: Api,
    agent: AgentHandle,
    watch: u64,
}

impl Server {
    fn run(mut self) {
        let mut events = Events::with_capacity(EVENTS);
        loop {
            let now = self.agent.now();
            let timeout = if !self.busy.is_empty() {
                Some(Duration::ZERO)
            } else {
                self.next_sweep.map(|t| t.saturating_since(now))
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                self.log(Level::Err, &format!("HTTP server poll failed: {e}"));
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
                        let idx = t.wrapping_sub(FIRST_CONN);
                        if let Some(Some(c)) = self.conns.get_mut(idx) {
                            if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                                c.readable = true;
                            }
                            self.pump(idx);
                        }
                    }
                }
            }
            for idx in core::mem::take(&mut self.busy) {
                self.pump(idx);
            }
            // Scan only when something can have finished: the view moved
            // (blocking queries) or an operation is pending.
            let moved = self.agent.view().index() != self.seen_index;
            if (self.waiting > 0 && moved) || self.pending > 0 {
                self.wake_waiting();
            }
            let now = self.agent.now();
            if self.next_sweep.is_some_and(|t| now >= t) {
                self.sweep(now);
            }
        }
        self.close_all();
    }

    fn log(&self, level: Level, text: &str) {
        self.agent.logger().log(level, "agent.http", text);
    }

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((stream, _peer)) => {
                    if self.count >= MAX_CONNS {
                        Counters::inc(&self.agent.counters().http_rejected);
                        drop(stream);
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    let idx = self.free.pop().unwrap_or_else(|| {
                        self.conns.push(None);
                        self.conns.len() - 1
                    });
                    let now = self.agent.now();
                    let mut c = Conn {
                        stream,
                        rbuf: Vec::new(),
                        wbuf: Vec::new(),
                        wpos: 0,
                        state: State::Reading,
                        close_after: false,
                        stop_agent: false,
                        readable: true,
                        eof: false,
                        deadline: now + IDLE_TIMEOUT,
                        skip: 0,
                    };
                    let token = Token(FIRST_CONN + idx);
                    if self
                        .poll
                        .registry()
                        .register(&mut c.stream, token, Interest::READABLE | Interest::WRITABLE)
                        .is_err()
                    {
                        self.free.push(idx);
                        continue;
                    }
                    if let Some(slot) = self.conns.get_mut(idx) {
                        *slot = Some(c);
                    }
                    self.count += 1;
                    Counters::inc(&self.agent.counters().http_connections);
                    self.arm_sweep(now);
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
                    // Out of descriptors: leave the backlog for the next sweep.
                    self.log(Level::Err, &format!("Failed to accept HTTP client: {e}"));
                    return;
                }
            }
        }
    }

    fn arm_sweep(&mut self, now: Instant) {
        if self.next_sweep.is_none() {
            self.next_sweep = Some(now + SWEEP);
        }
    }

    /// Ends phases past their deadline; retries accepting.
    fn sweep(&mut self, now: Instant) {
        self.next_sweep = None;
        for idx in 0..self.conns.len() {
            let expired = matches!(self.conns.get(idx), Some(Some(c)) if now >= c.deadline);
            if expired {
                self.expire(idx, now);
            }
        }
        if self.count > 0 {
            self.next_sweep = Some(now + SWEEP);
        }
        self.accept();
    }

    fn expire(&mut self, idx: usize, now: Instant) {
        let Some(Some(c)) = self.conns.get_mut(idx) else { return };
        match core::mem::replace(&mut c.state, State::Reading) {
            State::Waiting { req, .. } => {
                self.waiting -= 1;
                Counters::dec(&self.agent.counters().http_blocking);
                let out = self.api.handle(&req, now, false);
                let resp = match out {
                    Outcome::Respond(r) => r,
                    _ => Response::error(500, "blocking query did not complete"),
                };
                self.respond(idx, &req, resp, now);
                self.pump(idx);
            }
            State::Pending { req, .. } => {
                self.pending -= 1;
                self.respond(
                    idx,
                    &req,
                    Response::error(500, "timed out waiting for the agent"),
                    now,
                );
                self.pump(idx);
            }
            State::Reading | State::Writing | State::Draining => self.remove(idx),
        }
    }

    /// Answers the blocking queries the view moved past, and the pending
    /// operations that completed.
    fn wake_waiting(&mut self) {
        let index = self.agent.view().index();
        let moved = index != self.seen_index;
        self.seen_index = index;
        let now = self.agent.now();
        for idx in 0..self.conns.len() {
            let Some(Some(c)) = self.conns.get_mut(idx) else { continue };
            let resp = match &c.state {
                State::Waiting { min_index, .. } if moved && index > *min_index => None,
                State::Pending { op, .. } => match Api::complete(op) {
                    Some(r) => Some(r),
                    None => continue,
                },
                _ => continue,
            };
            let (req, resp) = match core::mem::replace(&mut c.state, State::Reading) {
                State::Waiting { req, .. } => {
                    self.waiting -= 1;
                    Counters::dec(&self.agent.counters().http_blocking);
                    let r = match self.api.handle(&req, now, false) {
                        Outcome::Respond(r) => r,
                        _ => Response::error(500, "blocking query did not complete"),
                    };
                    (req, r)
                }
                State::Pending { req, .. } => {
                    self.pending -= 1;
                    (req, resp.unwrap_or_else(|| Response::error(500, "")))
                }
                other => {
                    c.state = other;
                    continue;
                }
            };
            self.respond(idx, &req, resp, now);
            self.pump(idx);
        }
    }

    fn pump(&mut self, idx: usize) {
        let outcome = self.pump_inner(idx);
        match outcome {
            Pump::Idle => {}
            Pump::Busy => self.busy.push(idx),
            Pump::Dead => self.remove(idx),
        }
    }

    fn pump_inner(&mut self, idx: usize) -> Pump {
        for _ in 0..REQUESTS_PER_PUMP {
            let Some(Some(c)) = self.conns.get_mut(idx) else { return Pump::Idle };
            if c.flush().is_err() {
                return Pump::Dead;
            }
            let now = self.agent.now();
            if matches!(c.state, State::Writing) {
                if c.wpos < c.wbuf.len() {
                    return Pump::Idle;
                }
                c.wbuf.clear();
                c.wpos = 0;
                c.wbuf.shrink_to(KEEP_CAPACITY);
                if c.stop_agent {
                    c.stop_agent = false;
                    self.api.stop_agent();
                }
                if c.close_after {
                    c.state = State::Draining;
                    c.deadline = now + DRAIN_TIMEOUT;
                    let _ = c.stream.shutdown(Shutdown::Write);
                } else {
                    c.state = State::Reading;
                    c.deadline = now + if c.rbuf.is_empty() { IDLE_TIMEOUT } else { HEAD_TIMEOUT };
                }
            }
            match c.state {
                State::Draining => {
                    return match c.drain(&mut self.scratch) {
                        Ok(true) | Err(_) => Pump::Dead,
                        Ok(false) => Pump::Idle,
                    };
                }
                State::Waiting { .. } | State::Pending { .. } => {
                    // Watch for the client going away; keep what it sends.
                    return match c.fill(&mut self.scratch, request::MAX_HEAD) {
                        Err(_) => Pump::Dead,
                        Ok(_) if c.eof => Pump::Dead,
                        Ok(_) => Pump::Idle,
                    };
                }
                State::Writing => return Pump::Idle,
                State::Reading => {}
            }
            // Drop the body of the previous request, then parse.
            if c.skip > 0 {
                let n = c.skip.min(c.rbuf.len());
                c.rbuf.drain(..n);
                c.skip -= n;
            }
            let parsed = if c.skip > 0 || c.rbuf.is_empty() {
                Ok(Parsed::Partial)
            } else {
                request::parse(&c.rbuf)
            };
            match parsed {
                Ok(Parsed::Complete { request, head, body }) => {
                    let buffered = c.rbuf.len().min(head + body);
                    c.rbuf.drain(..buffered);
                    c.skip = head + body - buffered;
                    if c.rbuf.capacity() > KEEP_CAPACITY && c.rbuf.len() <= KEEP_CAPACITY {
                        c.rbuf.shrink_to(KEEP_CAPACITY);
                    }
                    self.serve(idx, request, now);
                }
                Ok(Parsed::Partial) => {
                    let was_empty = c.rbuf.is_empty() && c.skip == 0;
                    let limit = request::MAX_HEAD + 1;
                    match c.fill(&mut self.scratch, limit) {
                        Err(_) => return Pump::Dead,
                        Ok(false) if c.eof => return Pump::Dead,
                        Ok(false) => return Pump::Idle,
                        Ok(true) => {
                            if was_empty && !c.rbuf.is_empty() {
                                c.deadline = now + HEAD_TIMEOUT;
                            }
                        }
                    }
                }
                Err(reject) => {
                    let resp = Response::error(reject.status, reject.text);
                    c.close_after = true;
                    self.write_response(idx, resp, false, now);
                }
            }
        }
        Pump::Busy
    }

    /// Routes one request and starts its response or its wait.
    fn serve(&mut self, idx: usize, req: Request, now: Instant) {
        match self.api.handle(&req, now, true) {
            Outcome::Respond(r) => self.respond(idx, &req, r, now),
            Outcome::Block { min_index, deadline } => {
                let Some(Some(c)) = self.conns.get_mut(idx) else { return };
                c.deadline = deadline;
                c.rbuf.shrink_to(KEEP_CAPACITY);
                c.state = State::Waiting { req, min_index };
                self.waiting += 1;
                Counters::inc(&self.agent.counters().http_blocking);
            }
            Outcome::Pending { op, deadline } => {
                let Some(Some(c)) = self.conns.get_mut(idx) else { return };
                c.deadline = deadline;
                c.state = State::Pending { req, op };
                self.pending += 1;
            }
        }
    }

    fn respond(&mut self, idx: usize, req: &Request, resp: Response, now: Instant) {
        self.write_response(idx, resp, req.keep_alive, now);
    }

    fn write_response(&mut self, idx: usize, resp: Response, keep_alive: bool, now: Instant) {
        let c = self.agent.counters();
        Counters::inc(&c.http_requests);
        if resp.status >= 400 {
            Counters::inc(&c.http_errors);
        }
        let Some(Some(conn)) = self.conns.get_mut(idx) else { return };
        let close = conn.close_after || !keep_alive;
        conn.close_after = close;
        conn.stop_agent |= resp.stop_agent;
        write_head(&mut conn.wbuf, &resp, close);
        conn.wbuf.extend_from_slice(&resp.body);
        conn.state = State::Writing;
        conn.deadline = now + WRITE_TIMEOUT;
    }

    fn remove(&mut self, idx: usize) {
        let Some(slot) = self.conns.get_mut(idx) else { return };
        let Some(mut c) = slot.take() else { return };
        match c.state {
            State::Waiting { .. } => {
                self.waiting -= 1;
                Counters::dec(&self.agent.counters().http_blocking);
            }
            State::Pending { .. } => self.pending -= 1,
            _ => {}
        }
        if c.stop_agent {
            self.api.stop_agent();
        }
        let _ = self.poll.registry().deregister(&mut c.stream);
        self.free.push(idx);
        self.count -= 1;
        Counters::dec(&self.agent.counters().http_connections);
    }

    fn close_all(&mut self) {
        self.agent.view().unwatch(self.watch);
        for idx in 0..self.conns.len() {
            self.remove(idx);
        }
        let _ = self.poll.registry().deregister(&mut self.listener);
    }
}

/// The status line and headers of `resp`.
fn write_head(out: &mut Vec<u8>, resp: &Response, close: bool) {
    use std::fmt::Write as _;
    let mut h = String::with_capacity(256);
    let _ = write!(h, "HTTP/1.1 {} {}\r\n", resp.status, reason(resp.status));
    let _ =
        write!(h, "Content-Type: {}\r\nContent-Length: {}\r\n", resp.content_type, resp.body.len());
    if let Some(i) = resp.index {
        let _ = write!(
            h,
            "X-Consul-Index: {i}\r\nX-Consul-Knownleader: false\r\nX-Consul-Lastcontact: 0\r\n"
        );
    }
    if let Some(a) = resp.allow {
        let _ = write!(h, "Allow: {a}\r\n");
    }
    if close {
        h.push_str("Connection: close\r\n");
    }
    h.push_str("\r\n");
    out.extend_from_slice(h.as_bytes());
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

impl Conn {
    fn flush(&mut self) -> io::Result<()> {
        while self.wpos < self.wbuf.len() {
            match self.stream.write(self.wbuf.get(self.wpos..).unwrap_or(&[])) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.wpos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Reads what the socket has, keeping at most `limit` bytes buffered;
    /// `Ok(true)` if anything was read.
    fn fill(&mut self, scratch: &mut [u8], limit: usize) -> io::Result<bool> {
        let mut progress = false;
        while self.readable && !self.eof && self.rbuf.len() < limit {
            let room = (limit - self.rbuf.len()).min(scratch.len());
            let chunk = scratch.get_mut(..room).unwrap_or(&mut []);
            match self.stream.read(chunk) {
                Ok(0) => self.eof = true,
                Ok(n) => {
                    self.rbuf.extend_from_slice(chunk.get(..n).unwrap_or(&[]));
                    progress = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.readable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(progress)
    }

    /// Reads and drops input; `Ok(true)` at EOF.
    fn drain(&mut self, scratch: &mut [u8]) -> io::Result<bool> {
        self.rbuf = Vec::new();
        for _ in 0..64 {
            if !self.readable {
                return Ok(false);
            }
            match self.stream.read(scratch) {
                Ok(0) => return Ok(true),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.readable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(false)
    }
}
