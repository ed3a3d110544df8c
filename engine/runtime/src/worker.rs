//! One worker thread: a mio `Poll` drained until `WouldBlock`, its
//! instances, their sockets and connections, one timer wheel.
//!
//! # Memory
//!
//! Allocated when the worker starts, reused for its whole life:
//!
//! * `scratch`: LZW tables, decompression and packet assembly (~300 KiB),
//!   shared by every instance of the worker;
//! * `recv`: one received datagram at a time (`PACKET_BUF`, ~64 KiB);
//! * `send`: one outgoing datagram at a time (`PACKET_BUF`, ~64 KiB);
//! * `reply`: assembly area of an inbound stream's reply, 4 KiB at start
//!   like every stream buffer (it grows to the largest reply, then is
//!   swapped with connection buffers, never freed). Starting it empty made
//!   the first reply a worker ever assembled allocate, and put a buffer
//!   smaller than a read area into the pool, whose next outbound stream
//!   then reallocated: the rare allocation of `runtime_alloc`, seen when a
//!   worker served its first inbound stream only after the warm-up;
//! * `pool`: `stream_pool` stream buffers of 4 KiB at start; a buffer
//!   grows to the largest frame it carried and is kept while it is at most
//!   `stream_pool_max_bytes`; more are made only while more streams than
//!   ever before are open;
//! * `events`: 1024 mio events;
//! * the instance and connection slabs, the ready list and the timer wheel:
//!   grown when an instance is spawned or more connections than ever before
//!   are open, never shrunk.
//!
//! So a steady state (datagrams, timers, commands whose closures capture
//! nothing, streams while the pool and slabs are large enough) allocates
//! nothing in the worker.

use core::time::Duration;
use std::collections::VecDeque;
use std::io;
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender, TryRecvError, TrySendError};
use mio::net::{TcpStream, UdpSocket};
use mio::{Events, Interest, Poll, Registry, Token};

use super::conn::{self, Conn, Dir, Failure, Phase, Progress};
use super::{os_rng, sock, Clock, Command, Key, RuntimeConfig, SharedStats, Spawned};
use super::{SpawnError, WorkerStats};
use proto::memberlist::{Scratch, StreamData, StreamDir, StreamReply, StreamRequest};
use proto::time::Instant;
use proto::timer::{TimerToken, TimerWheel};
use proto::Endpoint;
use wire::packet::PACKET_BUF;

/// The worker's `mio::Waker`: commands are waiting.
pub(super) const WAKER: Token = Token(0);
/// Tokens carry a kind in their two low bits and a slab slot above them.
const KIND_BITS: u32 = 2;
const KIND_MASK: usize = (1 << KIND_BITS) - 1;
/// An instance's UDP socket (slot = instance slot).
const KIND_UDP: usize = 1;
/// An instance's TCP listener (slot = instance slot).
const KIND_LISTENER: usize = 2;
/// A TCP connection (slot = connection slot).
const KIND_CONN: usize = 3;

fn token(kind: usize, slot: u32) -> Token {
    Token(((slot as usize) << KIND_BITS) | kind)
}

/// Events taken from the OS per `poll`.
const EVENTS: usize = 1024;
/// Rounds of output draining after one input (a stream that fails at once
/// is reported to the instance, which may produce more output).
const DRAIN_ROUNDS: usize = 16;
/// Passes of one connection per readiness event: a phase change each, plus
/// one per doubling of the read buffer (at most 13 from 4 KiB to the 20 MiB
/// frame limit), so the socket is always read until `WouldBlock` (the
/// registration is edge-triggered).
const DRIVE_PASSES: usize = 32;
/// A timer this late counts as a lag event.
const LAG_THRESHOLD_US: u64 = 10_000;

/// A slab whose keys carry a generation, so a stale key finds nothing.
struct Slab<T> {
    entries: Vec<(u32, Option<T>)>,
    free: Vec<u32>,
    len: usize,
}

impl<T> Slab<T> {
    fn with_capacity(n: usize) -> Self {
        Slab { entries: Vec::with_capacity(n), free: Vec::with_capacity(n), len: 0 }
    }

    /// The key the next [`Slab::insert`] returns.
    fn next_key(&self) -> Key {
        match self.free.last() {
            Some(&slot) => {
                Key { slot, generation: self.entries.get(slot as usize).map_or(0, |e| e.0) }
            }
            None => Key { slot: self.entries.len() as u32, generation: 0 },
        }
    }

    fn insert(&mut self, value: T) -> Key {
        let key = self.next_key();
        if self.free.pop().is_some() {
            if let Some(e) = self.entries.get_mut(key.slot as usize) {
                e.1 = Some(value);
            }
        } else {
            self.entries.push((0, Some(value)));
            // Keep room for every slot in the free list, so that removing
            // never allocates.
            if self.free.capacity() < self.entries.len() {
                self.free.reserve(self.entries.len() - self.free.len());
            }
        }
        self.len += 1;
        key
    }

    fn get_mut(&mut self, key: Key) -> Option<&mut T> {
        self.entries
            .get_mut(key.slot as usize)
            .filter(|e| e.0 == key.generation)
            .and_then(|e| e.1.as_mut())
    }

    /// The key of the live entry in `slot`.
    fn key_at(&self, slot: usize) -> Option<Key> {
        let e = self.entries.get(slot).filter(|e| e.1.is_some())?;
        Some(Key { slot: slot as u32, generation: e.0 })
    }

    fn remove(&mut self, key: Key) -> Option<T> {
        let e = self.entries.get_mut(key.slot as usize).filter(|e| e.0 == key.generation)?;
        let v = e.1.take()?;
        e.0 = e.0.wrapping_add(1);
        self.free.push(key.slot);
        self.len -= 1;
        Some(v)
    }

    fn slots(&self) -> usize {
        self.entries.len()
    }
}

/// One hosted instance with its sockets.
struct Instance<E: Endpoint> {
    ep: E,
    udp: UdpSocket,
    listener: mio::net::TcpListener,
    events: Option<Sender<E::Event>>,
    /// Its entry in the worker's wheel, if armed.
    timer: Option<TimerToken>,
    /// The deadline of that entry.
    armed: Option<Instant>,
    /// Inbound connections open.
    inbound: usize,
    /// In the ready list (socket left readable / listener left pending).
    udp_queued: bool,
    accept_queued: bool,
    /// Accepting paused at the stream limit: connections wait in the kernel
    /// backlog and accepting resumes when an inbound stream closes.
    accept_deferred: bool,
}

/// What a wheel entry is for.
#[derive(Clone, Copy, Debug)]
enum Due {
    Instance(Key),
    Conn(Key),
}

/// A socket left with work after its batch.
#[derive(Clone, Copy, Debug)]
enum Ready {
    Udp(Key),
    Accept(Key),
}

/// The worker's poll and the state it drives.
pub(super) struct Worker<E: Endpoint> {
    poll: Poll,
    events: Events,
    state: State<E>,
}

struct State<E: Endpoint> {
    registry: Registry,
    commands: Receiver<Command<E>>,
    clock: Clock,
    config: RuntimeConfig,
    shared: Arc<SharedStats>,
    stats: WorkerStats,
    scratch: Scratch,
    recv: Box<[u8]>,
    send: Box<[u8]>,
    reply: Vec<u8>,
    pool: Vec<Vec<u8>>,
    wheel: TimerWheel<Due>,
    instances: Slab<Instance<E>>,
    conns: Slab<Conn>,
    ready: VecDeque<Ready>,
    /// Go-style error text of the last stream failure (reused).
    err_text: String,
    /// More commands are waiting than one batch took.
    commands_pending: bool,
    /// More timers are due than one batch fired.
    timers_pending: bool,
    shutdown: bool,
}

impl<E> Worker<E>
where
    E: Endpoint,
{
    pub(super) fn new(
        poll: Poll,
        commands: Receiver<Command<E>>,
        clock: Clock,
        config: RuntimeConfig,
        shared: Arc<SharedStats>,
    ) -> io::Result<Self> {
        let registry = poll.registry().try_clone()?;
        let pool = (0..config.stream_pool).map(|_| Vec::with_capacity(conn::MIN_READ)).collect();
        let state = State {
            registry,
            commands,
            clock,
            shared,
            stats: WorkerStats::default(),
            scratch: Scratch::new(),
            recv: vec![0; PACKET_BUF].into_boxed_slice(),
            send: vec![0; PACKET_BUF].into_boxed_slice(),
            reply: Vec::with_capacity(conn::MIN_READ),
            pool,
            wheel: TimerWheel::with_capacity(256, clock.now()),
            instances: Slab::with_capacity(16),
            conns: Slab::with_capacity(64),
            ready: VecDeque::with_capacity(32),
            err_text: String::with_capacity(128),
            commands_pending: false,
            timers_pending: false,
            shutdown: false,
            config,
        };
        Ok(Worker { poll, events: Events::with_capacity(EVENTS), state })
    }

    /// The worker's loop; returns after a shutdown command.
    pub(super) fn run(mut self) {
        let Worker { poll, events, state } = &mut self;
        let mut now = state.clock.now();
        while !state.shutdown {
            let timeout = state.poll_timeout(now);
            if let Err(e) = poll.poll(events, timeout) {
                if e.kind() != io::ErrorKind::Interrupted {
                    // The poll itself failed (should not happen): leave
                    // rather than spin; handles report `Closed`.
                    break;
                }
            }
            now = state.clock.now();
            state.stats.polls += 1;
            for event in events.iter() {
                state.dispatch(event.token(), now);
            }
            if state.commands_pending {
                state.run_commands(now);
            }
            state.run_ready(now);
            // Handling a busy batch takes time: timers see a fresh clock.
            now = state.clock.now();
            state.fire_timers(now);
            state.publish();
        }
        state.close_all();
        state.publish();
    }
}

impl<E: Endpoint> State<E> {
    /// How long `poll` may sleep: zero while work is left over, else until
    /// the wheel's next deadline (mio rounds up to whole milliseconds).
    fn poll_timeout(&self, now: Instant) -> Option<Duration> {
        if self.commands_pending || self.timers_pending || !self.ready.is_empty() {
            return Some(Duration::ZERO);
        }
        self.wheel.next_deadline().map(|d| d.saturating_since(now))
    }

    fn publish(&mut self) {
        self.stats.instances = self.instances.len as u64;
        self.stats.connections = self.conns.len as u64;
        self.shared.publish(&self.stats);
    }

    fn dispatch(&mut self, token: Token, now: Instant) {
        if token == WAKER {
            self.run_commands(now);
            return;
        }
        let slot = token.0 >> KIND_BITS;
        match token.0 & KIND_MASK {
            KIND_UDP => {
                let Some(key) = self.instances.key_at(slot) else { return };
                self.on_readable(Ready::Udp(key), now);
            }
            KIND_LISTENER => {
                let Some(key) = self.instances.key_at(slot) else { return };
                self.on_readable(Ready::Accept(key), now);
            }
            KIND_CONN => {
                if let Some(key) = self.conns.key_at(slot) {
                    self.drive_conn(key, now);
                }
            }
            _ => {}
        }
    }

    // ----- commands -------------------------------------------------------

    fn run_commands(&mut self, now: Instant) {
        for _ in 0..self.config.command_batch.max(1) {
            match self.commands.try_recv() {
                Ok(c) => self.command(c, now),
                Err(TryRecvError::Empty) => {
                    self.commands_pending = false;
                    return;
                }
                Err(TryRecvError::Disconnected) => {
                    self.shutdown = true;
                    self.commands_pending = false;
                    return;
                }
            }
        }
        self.commands_pending = true;
    }

    fn command(&mut self, c: Command<E>, now: Instant) {
        match c {
            Command::Spawn { addr, events, factory, reply } => {
                let r = self.spawn(addr, events, factory, now);
                let key = r.as_ref().ok().map(|s| s.key);
                if reply.send(r).is_err() {
                    // The caller is gone: nobody can reach the instance.
                    if let Some(key) = key {
                        self.remove(key);
                    }
                }
            }
            Command::Run { key, job } => {
                let Some(inst) = self.instances.get_mut(key) else { return };
                self.stats.commands += 1;
                job(&mut inst.ep, now);
                self.after_input(key, now);
            }
            Command::Remove { key, done } => {
                if self.remove(key) {
                    let _ = done.send(());
                }
            }
            Command::Shutdown => self.shutdown = true,
        }
    }

    fn spawn(
        &mut self,
        addr: std::net::SocketAddr,
        events: Option<Sender<E::Event>>,
        factory: super::Factory<E>,
        now: Instant,
    ) -> Result<Spawned, SpawnError> {
        let (mut listener, mut udp, bound) = sock::bind(addr, self.config.udp_recv_buffer)?;
        let rng =
            os_rng().map_err(|error| SpawnError::Io { op: "read /dev/urandom", addr, error })?;
        let key = self.instances.next_key();
        let reg = |error| SpawnError::Io { op: "register", addr: bound, error };
        self.registry
            .register(&mut udp, token(KIND_UDP, key.slot), Interest::READABLE)
            .map_err(reg)?;
        self.registry
            .register(&mut listener, token(KIND_LISTENER, key.slot), Interest::READABLE)
            .map_err(reg)?;
        let ep = factory(now, rng);
        let inserted = self.instances.insert(Instance {
            ep,
            udp,
            listener,
            events,
            timer: None,
            armed: None,
            inbound: 0,
            udp_queued: false,
            accept_queued: false,
            accept_deferred: false,
        });
        debug_assert_eq!(inserted, key);
        // Room for both sockets of every instance in the ready list.
        let want = self.instances.slots() * 2;
        if self.ready.capacity() < want {
            self.ready.reserve(want - self.ready.len());
        }
        self.after_input(key, now);
        Ok(Spawned { key, addr: bound })
    }

    /// Closes an instance's connections and sockets and drops it.
    fn remove(&mut self, key: Key) -> bool {
        let Some(mut inst) = self.instances.remove(key) else { return false };
        for slot in 0..self.conns.slots() {
            let Some(ck) = self.conns.key_at(slot) else { continue };
            if self.conns.get_mut(ck).is_some_and(|c| c.owner == key) {
                self.close_conn(ck);
            }
        }
        if let Some(t) = inst.timer {
            self.wheel.cancel(t);
        }
        let _ = self.registry.deregister(&mut inst.udp);
        let _ = self.registry.deregister(&mut inst.listener);
        true
    }

    fn close_all(&mut self) {
        for slot in 0..self.instances.slots() {
            if let Some(key) = self.instances.key_at(slot) {
                self.remove(key);
            }
        }
    }

    // ----- outputs --------------------------------------------------------

    /// Drains an instance's outputs after an input and re-arms its timer.
    fn after_input(&mut self, key: Key, now: Instant) {
        for _ in 0..DRAIN_ROUNDS {
            let Some(inst) = self.instances.get_mut(key) else { return };
            while let Some(t) = inst.ep.poll_transmit(&mut self.send, &mut self.scratch) {
                let sent = match self.send.get(t.range) {
                    Some(bytes) => inst.udp.send_to(bytes, t.dst),
                    None => Err(io::ErrorKind::InvalidInput.into()),
                };
                match sent {
                    Ok(n) => {
                        self.stats.datagrams_out += 1;
                        self.stats.bytes_out += n as u64;
                    }
                    Err(_) => self.stats.send_drops += 1,
                }
            }

            let mut reported = false;
            loop {
                let mut buf = self.pool_buffer();
                let Some(inst) = self.instances.get_mut(key) else { return };
                let Some(req) = inst.ep.poll_stream(&mut buf, &mut self.scratch) else {
                    self.recycle(buf);
                    break;
                };
                self.stats.streams_out += 1;
                if let Err(e) = self.open_outbound(key, req, buf) {
                    self.stats.stream_errors += 1;
                    gonet::write_dial_error(req.addr, &e, &mut self.err_text);
                    if let Some(inst) = self.instances.get_mut(key) {
                        inst.ep.handle_stream_error(now, req.id, &self.err_text);
                    }
                    reported = true;
                }
            }

            let Some(inst) = self.instances.get_mut(key) else { return };
            while let Some(ev) = inst.ep.poll_event() {
                if let Some(tx) = &inst.events {
                    match tx.try_send(ev) {
                        Ok(()) => {}
                        Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                            self.stats.event_drops += 1;
                        }
                    }
                }
            }
            if !reported {
                break;
            }
        }
        self.arm(key);
    }

    /// Makes the instance's wheel entry match its `poll_timeout`.
    fn arm(&mut self, key: Key) {
        let Some(inst) = self.instances.get_mut(key) else { return };
        let next = inst.ep.poll_timeout();
        match (next, inst.timer) {
            (Some(t), Some(token)) => {
                if inst.armed != Some(t) && !self.wheel.reschedule(token, t) {
                    inst.timer = Some(self.wheel.insert(t, Due::Instance(key)));
                }
            }
            (Some(t), None) => inst.timer = Some(self.wheel.insert(t, Due::Instance(key))),
            (None, Some(token)) => {
                self.wheel.cancel(token);
                inst.timer = None;
            }
            (None, None) => {}
        }
        inst.armed = next;
    }

    /// Returns a stream buffer to the pool (an empty placeholder left by
    /// `mem::take` is not a buffer and is dropped).
    fn recycle(&mut self, mut buf: Vec<u8>) {
        if buf.capacity() > 0
            && self.pool.len() < self.config.stream_pool
            && buf.capacity() <= self.config.stream_pool_max_bytes
        {
            buf.clear();
            self.pool.push(buf);
        }
    }

    /// A buffer from the pool (a new one when the pool is empty).
    fn pool_buffer(&mut self) -> Vec<u8> {
        self.pool.pop().unwrap_or_else(|| Vec::with_capacity(conn::MIN_READ))
    }

    /// A buffer from the pool with at least [`conn::MIN_READ`] bytes of read area.
    fn read_buffer(&mut self) -> Vec<u8> {
        let mut buf = self.pool_buffer();
        if buf.len() < conn::MIN_READ {
            buf.resize(conn::MIN_READ, 0);
        }
        buf
    }

    // ----- timers ---------------------------------------------------------

    fn fire_timers(&mut self, now: Instant) {
        for _ in 0..self.config.timer_batch.max(1) {
            let Some((_, due)) = self.wheel.poll_expired(now) else {
                self.timers_pending = false;
                return;
            };
            match due {
                Due::Instance(key) => {
                    let Some(inst) = self.instances.get_mut(key) else { continue };
                    inst.timer = None;
                    let deadline = inst.armed.take().unwrap_or(now);
                    Self::lag(&mut self.stats, now, deadline);
                    inst.ep.handle_timeout(now, &mut self.scratch);
                    self.after_input(key, now);
                }
                Due::Conn(key) => {
                    let Some(c) = self.conns.get_mut(key) else { continue };
                    c.timer = None;
                    let deadline = c.deadline;
                    Self::lag(&mut self.stats, now, deadline);
                    self.fail_conn(key, Failure::Timeout, now);
                }
            }
        }
        self.timers_pending = true;
    }

    fn lag(stats: &mut WorkerStats, now: Instant, deadline: Instant) {
        stats.timers_fired += 1;
        let lag = now.as_micros().saturating_sub(deadline.as_micros());
        stats.timer_lag_max_us = stats.timer_lag_max_us.max(lag);
        if lag > LAG_THRESHOLD_US {
            stats.timer_lag_over_10ms += 1;
        }
    }

    // ----- UDP and accept -------------------------------------------------

    fn on_readable(&mut self, r: Ready, now: Instant) {
        let Some(inst) = self.instances.get_mut(r.key()) else { return };
        let queued = match r {
            Ready::Udp(_) => &mut inst.udp_queued,
            Ready::Accept(_) => &mut inst.accept_queued,
        };
        if *queued {
            return; // the ready pass will get to it
        }
        if self.service(r, now) {
            self.queue(r);
        }
    }

    fn queue(&mut self, r: Ready) {
        let Some(inst) = self.instances.get_mut(r.key()) else { return };
        match r {
            Ready::Udp(_) => inst.udp_queued = true,
            Ready::Accept(_) => inst.accept_queued = true,
        }
        self.ready.push_back(r);
    }

    /// One batch of reads or accepts; true if the socket may have more.
    fn service(&mut self, r: Ready, now: Instant) -> bool {
        match r {
            Ready::Udp(key) => self.read_udp(key, now),
            Ready::Accept(key) => self.accept(key, now),
        }
    }

    /// Gives every socket left with work one more batch, in turn.
    fn run_ready(&mut self, now: Instant) {
        for _ in 0..self.ready.len() {
            let Some(r) = self.ready.pop_front() else { break };
            if self.service(r, now) {
                self.ready.push_back(r);
            } else if let Some(inst) = self.instances.get_mut(r.key()) {
                match r {
                    Ready::Udp(_) => inst.udp_queued = false,
                    Ready::Accept(_) => inst.accept_queued = false,
                }
            }
        }
    }

    fn read_udp(&mut self, key: Key, now: Instant) -> bool {
        for _ in 0..self.config.recv_batch.max(1) {
            let Some(inst) = self.instances.get_mut(key) else { return false };
            match inst.udp.recv_from(&mut self.recv) {
                Ok((n, from)) => {
                    self.stats.datagrams_in += 1;
                    self.stats.bytes_in += n as u64;
                    let Some(datagram) = self.recv.get_mut(..n) else { continue };
                    inst.ep.handle_datagram(now, from, datagram, &mut self.scratch);
                    self.after_input(key, now);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => self.stats.recv_errors += 1,
            }
        }
        true
    }

    fn accept(&mut self, key: Key, now: Instant) -> bool {
        for _ in 0..self.config.recv_batch.max(1) {
            let Some(inst) = self.instances.get_mut(key) else { return false };
            if inst.inbound >= self.config.max_inbound_streams {
                // Leave further connections in the listen backlog rather
                // than accept and close them (a join burst beyond the limit
                // would fail); `close_conn` resumes accepting.
                if !inst.accept_deferred {
                    inst.accept_deferred = true;
                    self.stats.inbound_deferred += 1;
                }
                return false;
            }
            match inst.listener.accept() {
                Ok((stream, remote)) => {
                    inst.inbound += 1;
                    self.stats.streams_in += 1;
                    let buf = self.read_buffer();
                    let deadline = now.saturating_add(self.config.inbound_timeout);
                    let c = Conn {
                        stream,
                        owner: key,
                        dir: Dir::In,
                        phase: Phase::Reading,
                        buf,
                        pos: 0,
                        end: 0,
                        remote,
                        deadline,
                        timer: None,
                    };
                    if self.add_conn(c).is_err() {
                        self.stats.stream_errors += 1;
                        if let Some(inst) = self.instances.get_mut(key) {
                            inst.inbound = inst.inbound.saturating_sub(1);
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // EMFILE and friends: the next connection retries.
                Err(_) => {
                    self.stats.stream_errors += 1;
                    return false;
                }
            }
        }
        true
    }

    // ----- TCP connections ------------------------------------------------

    /// Registers `c` and its deadline and moves it into the slab; on error
    /// `c` is closed and its buffer recycled.
    fn add_conn(&mut self, mut c: Conn) -> io::Result<Key> {
        let key = self.conns.next_key();
        if let Err(e) = self.registry.register(
            &mut c.stream,
            token(KIND_CONN, key.slot),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            self.recycle(c.buf);
            return Err(e);
        }
        c.timer = Some(self.wheel.insert(c.deadline, Due::Conn(key)));
        let inserted = self.conns.insert(c);
        debug_assert_eq!(inserted, key);
        Ok(key)
    }

    fn open_outbound(&mut self, owner: Key, req: StreamRequest, buf: Vec<u8>) -> io::Result<()> {
        let stream = match TcpStream::connect(req.addr) {
            Ok(s) => s,
            Err(e) => {
                self.recycle(buf);
                return Err(e);
            }
        };
        let end = buf.len();
        let c = Conn {
            stream,
            owner,
            dir: Dir::Out { id: req.id, expects_reply: req.expects_reply },
            phase: Phase::Connecting,
            buf,
            pos: 0,
            end,
            remote: req.addr,
            deadline: req.deadline,
            timer: None,
        };
        self.add_conn(c).map(drop)
    }

    /// Advances connection `key` and acts on what it achieved, until it
    /// waits for the socket or is done.
    fn drive_conn(&mut self, key: Key, now: Instant) {
        for _ in 0..DRIVE_PASSES {
            let Some(c) = self.conns.get_mut(key) else { return };
            match c.drive() {
                Progress::Pending => return,
                Progress::Failed(f) => return self.fail_conn(key, f, now),
                Progress::Written => match c.dir {
                    Dir::Out { expects_reply: true, .. } => c.start_reading(),
                    Dir::Out { expects_reply: false, .. } | Dir::In => {
                        return self.close_conn(key);
                    }
                },
                Progress::Read { eof } => {
                    if !self.on_data(key, eof, now) {
                        return;
                    }
                }
            }
        }
    }

    /// New bytes on connection `key`: the instance frames everything read
    /// so far and handles a complete frame. True if the connection goes on
    /// (more to read, or a reply to write).
    fn on_data(&mut self, key: Key, eof: bool, now: Instant) -> bool {
        let Some(c) = self.conns.get_mut(key) else { return false };
        let (owner, pos) = (c.owner, c.pos);
        let dir = match c.dir {
            Dir::Out { id, .. } => StreamDir::Outbound(id),
            Dir::In => StreamDir::Inbound,
        };
        let mut buf = core::mem::take(&mut c.buf);
        self.reply.clear();
        let (Some(inst), Some(data)) = (self.instances.get_mut(owner), buf.get_mut(..pos)) else {
            self.close_conn(key);
            self.recycle(buf);
            return false;
        };
        let outcome =
            inst.ep.handle_stream_data(now, dir, data, &mut self.reply, &mut self.scratch);
        match outcome {
            StreamData::More { limit } => {
                let Some(c) = self.conns.get_mut(key) else {
                    self.recycle(buf);
                    return false;
                };
                c.buf = buf;
                if eof {
                    self.fail_conn(key, Failure::Eof { partial: pos > 0 }, now);
                    return false;
                }
                if !c.grow(limit) {
                    self.fail_conn(key, Failure::TooLarge, now);
                    return false;
                }
                true
            }
            StreamData::Frame { reply, .. } => {
                self.after_input(owner, now);
                if matches!(dir, StreamDir::Inbound)
                    && reply == StreamReply::Reply
                    && !self.reply.is_empty()
                {
                    // The connection takes the reply; the request buffer
                    // becomes the next reply's assembly area.
                    let end = self.reply.len();
                    core::mem::swap(&mut buf, &mut self.reply);
                    if let Some(c) = self.conns.get_mut(key) {
                        c.buf = buf;
                        c.start_writing(end);
                        return true;
                    }
                }
                self.close_conn(key);
                self.recycle(buf);
                false
            }
            StreamData::Invalid(_) => {
                // An outbound stream was failed by the instance itself.
                self.stats.stream_errors += 1;
                self.close_conn(key);
                self.recycle(buf);
                self.after_input(owner, now);
                false
            }
        }
    }

    /// Removes a connection that is done (or abandoned) without reporting.
    fn close_conn(&mut self, key: Key) {
        let Some(mut c) = self.conns.remove(key) else { return };
        if let Some(t) = c.timer {
            self.wheel.cancel(t);
        }
        let _ = self.registry.deregister(&mut c.stream);
        if matches!(c.dir, Dir::In) {
            if let Some(inst) = self.instances.get_mut(c.owner) {
                inst.inbound = inst.inbound.saturating_sub(1);
                if inst.accept_deferred {
                    // The listener is edge-triggered: no new readiness comes
                    // for connections already waiting, so queue it here.
                    inst.accept_deferred = false;
                    if !inst.accept_queued {
                        self.queue(Ready::Accept(c.owner));
                    }
                }
            }
        }
        self.recycle(core::mem::take(&mut c.buf));
    }

    /// Removes a failed connection; an outbound failure is reported to its
    /// instance with Go's error text.
    fn fail_conn(&mut self, key: Key, failure: Failure, now: Instant) {
        self.stats.stream_errors += 1;
        let Some(c) = self.conns.get_mut(key) else { return };
        let (owner, dir) = (c.owner, c.dir);
        if let Dir::Out { id, .. } = dir {
            c.describe(&failure, &mut self.err_text);
            self.close_conn(key);
            if let Some(inst) = self.instances.get_mut(owner) {
                inst.ep.handle_stream_error(now, id, &self.err_text);
                self.after_input(owner, now);
            }
        } else {
            self.close_conn(key);
        }
    }
}

impl Ready {
    fn key(self) -> Key {
        match self {
            Ready::Udp(k) | Ready::Accept(k) => k,
        }
    }
}
