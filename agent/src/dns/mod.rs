//! The DNS interface (`-dns-addr`, UDP and TCP): member names and tags as
//! DNS records, answered from the agent's membership view ([`answer`]
//! says which names and records).
//!
//! One thread runs a mio `Poll` with the UDP socket, the TCP listener and
//! the TCP connections; it never runs on an engine worker. The view is
//! read through [`crate::agent::view::View::snapshot`], which calls into
//! the engine only when the membership changed (or once per
//! [`crate::agent::view::RESYNC`]), so a flood of queries costs the engine
//! nothing.
//!
//! Bounds: [`UDP_BATCH`] datagrams per wake-up before TCP gets a turn;
//! [`MAX_TCP_CONNS`] TCP connections, each with one message of at most
//! 65 535 bytes buffered in and one answer out, closed after
//! [`TCP_IDLE`] without a complete message (a slow or idle client);
//! deadlines are checked every [`SWEEP`].

pub mod answer;

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use engine::time::Instant;
use mio::net::{TcpListener, TcpStream, UdpSocket};
use mio::{Events, Interest, Poll, Token, Waker};

use crate::agent::AgentHandle;
use crate::metrics::Counters;
use answer::{Kind, Zone};

/// TCP connections served at once (more are closed at once).
pub const MAX_TCP_CONNS: usize = 256;
/// A TCP connection without a complete message for this long is closed.
pub const TCP_IDLE: Duration = Duration::from_secs(10);
/// How often TCP deadlines are checked.
pub const SWEEP: Duration = Duration::from_millis(500);
/// Datagrams answered per wake-up before the other sockets are served.
pub const UDP_BATCH: usize = 256;
/// Largest TCP message (the length prefix is 16 bits).
const MAX_MESSAGE: usize = 65_535;

const UDP: Token = Token(0);
const LISTENER: Token = Token(1);
const WAKER: Token = Token(2);
const FIRST_CONN: usize = 3;

/// A running DNS server; stopped by [`DnsServer::shutdown`] or on drop.
pub struct DnsServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    waker: Arc<Waker>,
    thread: Option<JoinHandle<()>>,
}

impl core::fmt::Debug for DnsServer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DnsServer").field("addr", &self.addr).finish()
    }
}

impl DnsServer {
    /// Binds UDP and TCP on `addr` (with port 0, TCP takes UDP's port) and
    /// answers for `agent`'s configured domain on a new thread.
    pub fn start(addr: SocketAddr, agent: AgentHandle) -> io::Result<DnsServer> {
        let mut udp = UdpSocket::bind(addr)?;
        let local = udp.local_addr()?;
        let mut listener = TcpListener::bind(local)?;
        let poll = Poll::new()?;
        poll.registry().register(&mut udp, UDP, Interest::READABLE)?;
        poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let c = agent.config();
        let ttl = u32::try_from(c.dns_ttl.as_secs()).unwrap_or(u32::MAX);
        let zone = Zone::new(&c.domain, &c.datacenter, ttl);
        let stop = Arc::new(AtomicBool::new(false));
        let server = Server {
            poll,
            udp,
            udp_ready: true,
            listener,
            conns: Vec::new(),
            free: Vec::new(),
            count: 0,
            zone,
            agent,
            stop: stop.clone(),
            buf: vec![0u8; MAX_MESSAGE].into_boxed_slice(),
            next_sweep: None,
            busy: Vec::new(),
        };
        let thread =
            std::thread::Builder::new().name("agent-dns".into()).spawn(move || server.run())?;
        Ok(DnsServer { addr: local, stop, waker, thread: Some(thread) })
    }

    /// The bound address (UDP and TCP).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the thread and closes every socket.
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

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop_thread();
    }
}

struct Conn {
    stream: TcpStream,
    rbuf: Vec<u8>,
    wbuf: Vec<u8>,
    wpos: usize,
    readable: bool,
    deadline: Instant,
}

struct Server {
    poll: Poll,
    udp: UdpSocket,
    /// The UDP socket may have datagrams left (edge-triggered).
    udp_ready: bool,
    listener: TcpListener,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    count: usize,
    zone: Zone,
    agent: AgentHandle,
    stop: Arc<AtomicBool>,
    buf: Box<[u8]>,
    next_sweep: Option<Instant>,
    /// TCP connections whose last turn ran out of budget.
    busy: Vec<usize>,
}

impl Server {
    fn run(mut self) {
        let mut events = Events::with_capacity(256);
        loop {
            let now = self.agent.now();
            let timeout = if self.udp_ready || !self.busy.is_empty() {
                Some(Duration::ZERO)
            } else {
                self.next_sweep.map(|t| t.saturating_since(now))
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                break;
            }
            if self.stop.load(Ordering::Acquire) {
                break;
            }
            for ev in events.iter() {
                match ev.token() {
                    UDP => self.udp_ready = true,
                    LISTENER => self.accept(),
                    WAKER => {}
                    Token(t) => {
                        let idx = t.wrapping_sub(FIRST_CONN);
                        if let Some(Some(c)) = self.conns.get_mut(idx) {
                            if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                                c.readable = true;
                            }
                            self.serve_tcp(idx);
                        }
                    }
                }
            }
            for idx in core::mem::take(&mut self.busy) {
                self.serve_tcp(idx);
            }
            if self.udp_ready {
                self.serve_udp();
            }
            let now = self.agent.now();
            if self.next_sweep.is_some_and(|t| now >= t) {
                self.sweep(now);
            }
        }
        for idx in 0..self.conns.len() {
            self.remove(idx);
        }
    }

    fn count(&self, kind: Kind, truncated: bool) {
        let c = self.agent.counters();
        match kind {
            Kind::Ok => {}
            Kind::NxDomain => Counters::inc(&c.dns_nxdomain),
            Kind::Error => Counters::inc(&c.dns_errors),
            Kind::Malformed => Counters::inc(&c.dns_malformed),
        }
        if kind != Kind::Malformed {
            Counters::inc(&c.dns_queries);
        }
        if truncated {
            Counters::inc(&c.dns_truncated);
        }
    }

    fn serve_udp(&mut self) {
        let view = self.agent.view().snapshot();
        for _ in 0..UDP_BATCH {
            let (n, from) = match self.udp.recv_from(&mut self.buf) {
                Ok(v) => v,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.udp_ready = false;
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // ICMP errors of earlier replies and the like: next datagram.
                Err(_) => continue,
            };
            let (reply, kind, tc) =
                answer::answer(self.buf.get(..n).unwrap_or(&[]), &self.zone, &view, false);
            self.count(kind, tc);
            if let Some(r) = reply {
                // UDP is lossy: a full socket buffer drops the answer.
                let _ = self.udp.send_to(&r, from);
            }
        }
    }

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if self.count >= MAX_TCP_CONNS {
                        drop(stream);
                        continue;
                    }
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
                        readable: true,
                        deadline: now + TCP_IDLE,
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
                    Counters::inc(&self.agent.counters().dns_tcp_connections);
                    if self.next_sweep.is_none() {
                        self.next_sweep = Some(now + SWEEP);
                    }
                    self.serve_tcp(idx);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    }

    fn sweep(&mut self, now: Instant) {
        self.next_sweep = None;
        for idx in 0..self.conns.len() {
            if matches!(self.conns.get(idx), Some(Some(c)) if now >= c.deadline) {
                self.remove(idx);
            }
        }
        if self.count > 0 {
            self.next_sweep = Some(now + SWEEP);
        }
        self.accept();
    }

    /// Reads length-prefixed messages and answers them one at a time.
    fn serve_tcp(&mut self, idx: usize) {
        for _ in 0..64 {
            let Some(Some(c)) = self.conns.get_mut(idx) else { return };
            // Write the pending answer first.
            while c.wpos < c.wbuf.len() {
                match c.stream.write(c.wbuf.get(c.wpos..).unwrap_or(&[])) {
                    Ok(0) => return self.remove(idx),
                    Ok(n) => c.wpos += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => return self.remove(idx),
                }
            }
            c.wbuf.clear();
            c.wpos = 0;
            // A complete message buffered?
            let len = match (c.rbuf.first(), c.rbuf.get(1)) {
                (Some(&hi), Some(&lo)) => Some(usize::from(u16::from_be_bytes([hi, lo]))),
                _ => None,
            };
            if let Some(len) = len.filter(|l| c.rbuf.len() >= 2 + l) {
                let msg = c.rbuf.get(2..2 + len).unwrap_or(&[]);
                let view = self.agent.view().snapshot();
                let (reply, kind, tc) = answer::answer(msg, &self.zone, &view, true);
                c.rbuf.drain(..2 + len);
                c.deadline = self.agent.now() + TCP_IDLE;
                match reply {
                    Some(r) => {
                        let n = u16::try_from(r.len()).unwrap_or(u16::MAX);
                        c.wbuf.extend_from_slice(&n.to_be_bytes());
                        c.wbuf.extend_from_slice(r.get(..usize::from(n)).unwrap_or(&[]));
                    }
                    None if kind == Kind::Malformed => {
                        self.count(kind, tc);
                        return self.remove(idx);
                    }
                    None => {}
                }
                self.count(kind, tc);
                continue;
            }
            // Read more (at most one message and its prefix buffered).
            if !c.readable {
                return;
            }
            let want = len.map_or(2, |l| 2 + l).saturating_sub(c.rbuf.len()).max(1);
            let chunk = self.buf.get_mut(..want.min(MAX_MESSAGE)).unwrap_or(&mut []);
            match c.stream.read(chunk) {
                Ok(0) => return self.remove(idx),
                Ok(n) => c.rbuf.extend_from_slice(chunk.get(..n).unwrap_or(&[])),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => c.readable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return self.remove(idx),
            }
        }
        self.busy.push(idx);
    }

    fn remove(&mut self, idx: usize) {
        let Some(slot) = self.conns.get_mut(idx) else { return };
        let Some(mut c) = slot.take() else { return };
        let _ = self.poll.registry().deregister(&mut c.stream);
        self.free.push(idx);
        self.count -= 1;
        Counters::dec(&self.agent.counters().dns_tcp_connections);
    }
}
