//! The thread-per-core mio runtime: real sockets and the OS clock for any
//! number of sans-IO [`Endpoint`] instances.
//!
//! # Threads
//!
//! [`Runtime::new`] starts W worker threads. Each worker owns one mio `Poll`,
//! a [`Scratch`](proto::memberlist::Scratch) shared by its instances,
//! two packet buffers, a bounded pool of stream buffers, one
//! [`TimerWheel`](proto::timer::TimerWheel) and a slab of instances, each
//! with its own UDP socket and TCP listener. Instances never move between
//! workers and nothing else touches them: other threads talk to an instance
//! through its [`InstanceHandle`], whose commands travel on the worker's
//! bounded crossbeam channel followed by a `mio::Waker` wake-up. That
//! channel is the only cross-thread path; the hot path takes no lock.
//!
//! # Driving an instance
//!
//! The runtime is the real-socket twin of the simulator (`sim`): after **every**
//! input to an instance (a datagram, its timer, stream bytes that completed
//! a frame, a stream error, a command) the worker drains `poll_transmit` (each datagram is
//! sent with `send_to`; a failed send is dropped and counted, UDP being
//! lossy), `poll_stream` (each request opens a TCP connection), `poll_event`
//! (each event goes to the instance's bounded event channel; a full channel
//! drops and counts, the worker never blocks), and re-arms the instance's
//! single timer entry from `poll_timeout`.
//!
//! # Time
//!
//! Only the runtime reads the OS clock: the engine [`Instant`] is the number
//! of microseconds since [`Runtime::new`] (one epoch for all workers, so
//! instants compare across workers).
//!
//! # Streams
//!
//! The runtime moves stream bytes and never interprets them. Outbound
//! streams connect without binding a source address (as Go does), write the
//! request and read; inbound streams read. After every read that added
//! bytes, everything read so far goes to `handle_stream_data`, which frames
//! it: it asks for more (and says how large the frame may still grow; the
//! buffer doubles up to that), or handles the complete frame (an inbound
//! request's reply, if any, is then written and the stream closed), or
//! declares the bytes invalid (the stream is closed; an outbound one was
//! failed by the instance itself). Transport failures of an outbound stream
//! are reported with Go's text through `handle_stream_error` (`dial tcp
//! 10.0.0.1:7946: connect: connection refused`, `read tcp
//! 127.0.0.1:4321->10.0.0.1:7946: i/o timeout`, `EOF`, `unexpected EOF`);
//! the request's deadline bounds the whole exchange. Inbound streams finish
//! within [`RuntimeConfig::inbound_timeout`]; at most
//! [`RuntimeConfig::max_inbound_streams`] run per instance, more wait in the
//! listen backlog. A request with `expects_reply == false` is closed after
//! its bytes are written and reported to nobody (no engine asks for one yet).
//! Connection buffers come from the worker's pool (see `worker.rs`).

mod conn;
mod sock;
mod worker;

use core::time::Duration;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};

use proto::rng::Rng;
use proto::time::Instant;
use proto::Endpoint;

/// Settings of a [`Runtime`].
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// Worker threads; 0 picks `available_parallelism()` capped at 8.
    pub workers: usize,
    /// Deadline of an inbound stream, from accept to the last reply byte
    /// (Go's `TCPTimeout`, 10 s).
    pub inbound_timeout: Duration,
    /// Inbound streams one instance serves at once (Go's
    /// `maxPushPullRequests`); connections beyond it wait in the kernel's
    /// listen backlog until a stream closes.
    pub max_inbound_streams: usize,
    /// Datagrams (and accepts) read from one socket per wake-up before the
    /// worker turns to its other sockets; the rest is read on the next pass.
    pub recv_batch: usize,
    /// Commands run per wake-up before the worker turns to its sockets.
    pub command_batch: usize,
    /// Capacity of each worker's command channel (senders block when full).
    pub command_queue: usize,
    /// Stream buffers a worker allocates at start (4 KiB each) and keeps
    /// for reuse.
    pub stream_pool: usize,
    /// A stream buffer that grew beyond this many bytes is freed, not pooled.
    pub stream_pool_max_bytes: usize,
    /// Requested UDP receive buffer; halved until the OS accepts it, like Go.
    pub udp_recv_buffer: usize,
    /// Timers fired per loop iteration before the worker polls its sockets
    /// again (with a zero timeout).
    pub timer_batch: usize,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            workers: 0,
            inbound_timeout: Duration::from_secs(10),
            max_inbound_streams: 128,
            recv_batch: 256,
            command_batch: 256,
            command_queue: 1024,
            stream_pool: 16,
            stream_pool_max_bytes: 1 << 20,
            udp_recv_buffer: 2 << 20,
            timer_batch: 4096,
        }
    }
}

impl RuntimeConfig {
    /// The number of workers this config starts.
    pub fn worker_count(&self) -> usize {
        if self.workers > 0 {
            return self.workers;
        }
        std::thread::available_parallelism().map_or(1, |n| n.get()).min(8)
    }
}

/// Declares [`WorkerStats`], its atomic twin `SharedStats` and how workers'
/// counters combine, from one list: each field with its doc and `sum` (the
/// total adds them) or `max` (the total keeps the largest).
macro_rules! worker_stats {
    ($($(#[doc = $doc:literal])* $f:ident: $combine:ident,)*) => {
        /// Counters of one worker, as of its last loop iteration.
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct WorkerStats {
            $($(#[doc = $doc])* pub $f: u64,)*
        }

        impl WorkerStats {
            /// Folds another worker's counters into these.
            fn combine(&mut self, other: &WorkerStats) {
                $(self.$f = worker_stats!(@$combine self.$f, other.$f);)*
            }
        }

        /// A worker's counters published for [`Runtime::stats`]: relaxed
        /// stores once per loop iteration, no lock.
        #[derive(Debug, Default)]
        struct SharedStats { $($f: AtomicU64,)* }

        impl SharedStats {
            fn publish(&self, s: &WorkerStats) {
                $(self.$f.store(s.$f, Ordering::Relaxed);)*
            }
            fn load(&self) -> WorkerStats {
                WorkerStats { $($f: self.$f.load(Ordering::Relaxed),)* }
            }
        }
    };
    (@sum $a:expr, $b:expr) => { $a.saturating_add($b) };
    (@max $a:expr, $b:expr) => { $a.max($b) };
}

worker_stats! {
    /// Instances hosted now.
    instances: sum,
    /// TCP connections open now (both directions).
    connections: sum,
    datagrams_in: sum,
    datagrams_out: sum,
    bytes_in: sum,
    bytes_out: sum,
    /// Datagrams dropped because `send_to` failed (full buffer, unreachable).
    send_drops: sum,
    /// `recv_from` failures other than `WouldBlock`.
    recv_errors: sum,
    /// Events dropped because the instance's event channel was full.
    event_drops: sum,
    /// Outbound streams started.
    streams_out: sum,
    /// Inbound streams accepted and served.
    streams_in: sum,
    /// Outbound streams reported failed, inbound streams aborted.
    stream_errors: sum,
    /// Times an instance stopped accepting at its stream limit, leaving
    /// further connections in the listen backlog until a stream closed.
    inbound_deferred: sum,
    /// Commands run.
    commands: sum,
    /// Timer entries fired (instance deadlines and connection deadlines).
    timers_fired: sum,
    /// Largest delay between a timer's deadline and its firing, in µs.
    timer_lag_max_us: max,
    /// Timers that fired more than 10 ms late.
    timer_lag_over_10ms: sum,
    /// Loop iterations (one `Poll::poll` each).
    polls: sum,
}

/// The instance or its runtime is gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Closed;

impl core::fmt::Display for Closed {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("instance closed")
    }
}
impl std::error::Error for Closed {}

/// Why [`Runtime::spawn`] failed.
#[derive(Debug)]
pub enum SpawnError {
    /// A socket operation failed (`op` names it, e.g. `bind udp`).
    Io { op: &'static str, addr: SocketAddr, error: std::io::Error },
    /// The runtime has shut down.
    Closed,
}

impl core::fmt::Display for SpawnError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SpawnError::Io { op, addr, error } => write!(f, "{op} {addr}: {error}"),
            SpawnError::Closed => f.write_str("runtime shut down"),
        }
    }
}

impl std::error::Error for SpawnError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SpawnError::Io { error, .. } => Some(error),
            SpawnError::Closed => None,
        }
    }
}

/// Builds an instance on its worker from the worker's `now` and a fresh
/// OS-seeded [`Rng`].
pub type Factory<E> = Box<dyn FnOnce(Instant, Rng) -> E + Send>;
/// A command run on an instance.
type Job<E> = Box<dyn FnOnce(&mut E, Instant) + Send>;

/// Names one instance on one worker: slab slot and generation (a removed
/// instance's handle never reaches the instance that reuses its slot).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Key {
    slot: u32,
    generation: u32,
}

struct Spawned {
    key: Key,
    addr: SocketAddr,
}

enum Command<E: Endpoint> {
    Spawn {
        addr: SocketAddr,
        events: Option<Sender<E::Event>>,
        factory: Factory<E>,
        reply: Sender<Result<Spawned, SpawnError>>,
    },
    Run {
        key: Key,
        job: Job<E>,
    },
    Remove {
        key: Key,
        done: Sender<()>,
    },
    Shutdown,
}

/// The sending end of one worker.
struct Link<E: Endpoint> {
    commands: Sender<Command<E>>,
    waker: mio::Waker,
    /// Instances placed on this worker (for least-loaded placement).
    load: AtomicUsize,
}

impl<E: Endpoint> Link<E> {
    fn send(&self, c: Command<E>) -> Result<(), Closed> {
        self.commands.send(c).map_err(|_| Closed)?;
        // A failed wake means the worker's poll is gone: it has exited and
        // the command will be dropped with the channel.
        self.waker.wake().map_err(|_| Closed)
    }
}

/// The runtime's clock: engine [`Instant`]s counted from the runtime's start.
/// Copies share the epoch, so instants from any of them compare.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    epoch: std::time::Instant,
}

impl Clock {
    // The runtime is the one place allowed to read the OS clock (see clippy.toml).
    #[allow(clippy::disallowed_methods)]
    fn start() -> Self {
        Clock { epoch: std::time::Instant::now() }
    }

    /// Now, on this clock.
    // The runtime is the one place allowed to read the OS clock (see clippy.toml).
    #[allow(clippy::disallowed_methods)]
    pub fn now(&self) -> Instant {
        let us = self.epoch.elapsed().as_micros();
        Instant::from_micros(u64::try_from(us).unwrap_or(u64::MAX))
    }
}

/// A running set of workers hosting instances of type `E`.
///
/// Dropping it shuts the workers down (as [`Runtime::shutdown`]).
pub struct Runtime<E: Endpoint> {
    links: Vec<Arc<Link<E>>>,
    stats: Vec<Arc<SharedStats>>,
    threads: Vec<JoinHandle<()>>,
    clock: Clock,
}

impl<E: Endpoint> core::fmt::Debug for Runtime<E> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Runtime").field("workers", &self.links.len()).finish_non_exhaustive()
    }
}

impl<E> Runtime<E>
where
    E: Endpoint + Send + 'static,
    E::Event: Send + 'static,
{
    /// Starts the workers. Fails only if the OS refuses a poll instance,
    /// a waker or a thread.
    pub fn new(config: RuntimeConfig) -> std::io::Result<Self> {
        let n = config.worker_count();
        let clock = Clock::start();
        let mut rt = Runtime { links: Vec::new(), stats: Vec::new(), threads: Vec::new(), clock };
        for i in 0..n {
            let poll = mio::Poll::new()?;
            let waker = mio::Waker::new(poll.registry(), worker::WAKER)?;
            let (tx, rx): (Sender<Command<E>>, Receiver<Command<E>>) =
                crossbeam_channel::bounded(config.command_queue.max(1));
            let stats = Arc::new(SharedStats::default());
            let w = worker::Worker::new(poll, rx, clock, config.clone(), stats.clone())?;
            let thread = std::thread::Builder::new()
                .name(format!("engine-worker-{i}"))
                .spawn(move || w.run())?;
            rt.links.push(Arc::new(Link { commands: tx, waker, load: AtomicUsize::new(0) }));
            rt.stats.push(stats);
            rt.threads.push(thread);
        }
        Ok(rt)
    }

    /// Number of workers.
    pub fn workers(&self) -> usize {
        self.links.len()
    }

    /// The runtime's notion of now (what its workers pass to instances).
    pub fn now(&self) -> Instant {
        self.clock.now()
    }

    /// A copy of the runtime's clock, for other threads that need engine time.
    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// Creates an instance on the least-loaded worker: binds its TCP
    /// listener and UDP socket on `addr` (SO_REUSEADDR, non-blocking; with
    /// port 0 the UDP socket takes the listener's port), then builds it with
    /// `factory` on the worker and drains its first outputs. Events go to
    /// `events` (bounded; dropped and counted when full) or are discarded.
    ///
    /// Blocks until the worker has bound the sockets; returns the bind error
    /// (e.g. address in use) if it could not.
    pub fn spawn<F>(
        &self,
        addr: SocketAddr,
        events: Option<Sender<E::Event>>,
        factory: F,
    ) -> Result<InstanceHandle<E>, SpawnError>
    where
        F: FnOnce(Instant, Rng) -> E + Send + 'static,
    {
        let (worker, link) = self
            .links
            .iter()
            .enumerate()
            .min_by_key(|(_, l)| l.load.load(Ordering::Relaxed))
            .ok_or(SpawnError::Closed)?;
        self.spawn_on(worker, link, addr, events, Box::new(factory))
    }

    /// As [`Runtime::spawn`], on worker `worker` (modulo the worker count).
    pub fn spawn_on_worker<F>(
        &self,
        worker: usize,
        addr: SocketAddr,
        events: Option<Sender<E::Event>>,
        factory: F,
    ) -> Result<InstanceHandle<E>, SpawnError>
    where
        F: FnOnce(Instant, Rng) -> E + Send + 'static,
    {
        if self.links.is_empty() {
            return Err(SpawnError::Closed);
        }
        let worker = worker % self.links.len();
        self.spawn_on(worker, &self.links[worker], addr, events, Box::new(factory))
    }

    fn spawn_on(
        &self,
        worker: usize,
        link: &Arc<Link<E>>,
        addr: SocketAddr,
        events: Option<Sender<E::Event>>,
        factory: Factory<E>,
    ) -> Result<InstanceHandle<E>, SpawnError> {
        let (reply, result) = crossbeam_channel::bounded(1);
        link.send(Command::Spawn { addr, events, factory, reply })
            .map_err(|_| SpawnError::Closed)?;
        let spawned = result.recv().map_err(|_| SpawnError::Closed)??;
        link.load.fetch_add(1, Ordering::Relaxed);
        Ok(InstanceHandle { link: link.clone(), key: spawned.key, addr: spawned.addr, worker })
    }

    /// Every worker's counters (as of its last loop iteration).
    pub fn stats(&self) -> Vec<WorkerStats> {
        self.stats.iter().map(|s| s.load()).collect()
    }

    /// The sum of every worker's counters (maxima for the lag maximum).
    pub fn total_stats(&self) -> WorkerStats {
        let mut t = WorkerStats::default();
        for s in self.stats() {
            t.combine(&s);
        }
        t
    }

    /// Stops every worker (instances are dropped, sockets closed) and joins
    /// the threads. Handles return [`Closed`] afterwards.
    pub fn shutdown(mut self) {
        self.stop();
    }
}

impl<E: Endpoint> Runtime<E> {
    fn stop(&mut self) {
        for link in &self.links {
            let _ = link.send(Command::Shutdown);
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl<E: Endpoint> Drop for Runtime<E> {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A handle to one instance, usable from any thread. Cloning it gives
/// another handle to the same instance.
pub struct InstanceHandle<E: Endpoint> {
    link: Arc<Link<E>>,
    key: Key,
    addr: SocketAddr,
    worker: usize,
}

impl<E: Endpoint> Clone for InstanceHandle<E> {
    fn clone(&self) -> Self {
        InstanceHandle {
            link: self.link.clone(),
            key: self.key,
            addr: self.addr,
            worker: self.worker,
        }
    }
}

impl<E: Endpoint> core::fmt::Debug for InstanceHandle<E> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("InstanceHandle")
            .field("addr", &self.addr)
            .field("worker", &self.worker)
            .finish_non_exhaustive()
    }
}

impl<E> InstanceHandle<E>
where
    E: Endpoint + Send + 'static,
{
    /// The address the instance's UDP socket and TCP listener are bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The worker hosting the instance.
    pub fn worker(&self) -> usize {
        self.worker
    }

    /// Runs `f` on the instance (on its worker, with the worker's `now`),
    /// drains the instance's outputs and returns `f`'s result. Blocks for
    /// the round trip. Do not call it from inside another command: the
    /// worker would wait for itself.
    pub fn call<R, F>(&self, f: F) -> Result<R, Closed>
    where
        R: Send + 'static,
        F: FnOnce(&mut E, Instant) -> R + Send + 'static,
    {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let job: Job<E> = Box::new(move |ep, now| {
            let _ = tx.send(f(ep, now));
        });
        self.link.send(Command::Run { key: self.key, job })?;
        // The job (and its sender) is dropped unrun if the instance is gone.
        rx.recv().map_err(|_| Closed)
    }

    /// Runs `f` on the instance without waiting. A closure that captures
    /// nothing is zero-sized, so sending it allocates nothing.
    pub fn send<F>(&self, f: F) -> Result<(), Closed>
    where
        F: FnOnce(&mut E, Instant) + Send + 'static,
    {
        self.link.send(Command::Run { key: self.key, job: Box::new(f) })
    }

    /// Removes the instance: closes its sockets and connections and drops
    /// it without any goodbye (call the engine's leave first for a graceful
    /// exit). Blocks until done; `Closed` if it was already gone.
    pub fn remove(&self) -> Result<(), Closed> {
        let (done, rx) = crossbeam_channel::bounded(1);
        self.link.send(Command::Remove { key: self.key, done })?;
        rx.recv().map_err(|_| Closed)?;
        self.link.load.fetch_sub(1, Ordering::Relaxed);
        Ok(())
    }
}

/// Seeds an [`Rng`] from 32 bytes of `/dev/urandom`.
fn os_rng() -> std::io::Result<Rng> {
    use std::io::Read;
    let mut seed = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut seed)?;
    Ok(Rng::from_seed_bytes(seed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_totals_add_counters_and_keep_the_largest_lag() {
        let a = WorkerStats {
            polls: 3,
            timer_lag_max_us: 70,
            stream_errors: u64::MAX,
            ..Default::default()
        };
        let b =
            WorkerStats { polls: 4, timer_lag_max_us: 20, stream_errors: 1, ..Default::default() };
        let mut t = WorkerStats::default();
        t.combine(&a);
        t.combine(&b);
        assert_eq!(
            t,
            WorkerStats {
                polls: 7,
                timer_lag_max_us: 70,
                stream_errors: u64::MAX,
                ..Default::default()
            }
        );
        let shared = SharedStats::default();
        shared.publish(&t);
        assert_eq!(shared.load(), t);
    }
}
