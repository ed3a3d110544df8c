//! The running agent: one Serf instance on the engine runtime, the event
//! pipeline (log, snapshot, coalescing, handlers, RPC streams) and the
//! [`AgentHandle`] that the RPC server and the CLI front end drive.
//!
//! Threads: the engine worker owns the Serf instance; the dispatcher thread
//! owns the event pipeline (and bumps the membership [`view`] of the HTTP
//! API and DNS); RPC sessions, the HTTP and DNS threads and the signal loop
//! use the handle.
//! Commands that complete later (join, leave, tags, keys, queries) return a
//! channel that the dispatcher fills when the engine reports completion, so
//! no caller ever blocks the engine, and an RPC server can wait on many at
//! once (see [`AgentHandle::set_notifier`]).

mod coalesce;
mod dispatch;
pub mod handlers;
pub mod log;
pub mod snapshot;
pub mod view;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};
use engine::proto::memberlist::Config as MlConfig;
use engine::proto::serf::{
    CommandId, KeyOp, KeyResponse, Member, MemberStatus, QueryId, QueryParams, RespondError, Serf,
    SerfConfig, Tags,
};
use engine::runtime::{Clock, InstanceHandle, Runtime, RuntimeConfig};
use engine::wire::coordinate::Coordinate;
use engine::wire::crypto::Keyring;

use crate::config::{AgentConfig, EventFilter, Profile, StartError, StartPlan};
use crate::metrics::Counters;
use log::{Level, Logger};
use view::View;

/// Engine events buffered between the worker and the dispatcher.
const EVENT_CHANNEL: usize = 2048;
/// Records an RPC stream may fall behind before events are dropped for it
/// (Go's per-stream buffer).
pub const STREAM_BUFFER: usize = 512;

/// A record for an RPC `stream` subscriber.
#[derive(Clone, Debug, PartialEq)]
pub enum StreamItem {
    /// A (coalesced) member event.
    Members { event: &'static str, members: Vec<Member> },
    /// A user event.
    User { ltime: u64, name: String, payload: Vec<u8>, coalesce: bool },
    /// A query to answer with [`AgentHandle::respond`] and `id` before
    /// `deadline` (on the engine clock, [`AgentHandle::now`]).
    Query { id: u64, ltime: u64, name: String, payload: Vec<u8>, deadline: engine::time::Instant },
}

/// The engine's member table, borrowed for one [`AgentHandle::with_members`]
/// call.
#[derive(Clone, Copy)]
pub struct MemberTable<'a> {
    serf: &'a Serf,
}

impl<'a> MemberTable<'a> {
    /// Every member, including failed and left ones not yet reaped, in the
    /// order the engine learnt them (the order `members` replies list them).
    pub fn iter(self) -> impl ExactSizeIterator<Item = &'a Member> {
        self.serf.members()
    }

    /// How many members [`MemberTable::iter`] yields.
    pub fn len(self) -> usize {
        self.iter().len()
    }

    /// True when the table is empty (never, while the agent runs: it lists
    /// itself).
    pub fn is_empty(self) -> bool {
        self.len() == 0
    }
}

/// A record of a query this agent started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QueryRecord {
    Ack { from: String },
    Response { from: String, payload: Vec<u8> },
    Done,
}

/// The outcome of a join: nodes contacted and Go's multierror text when
/// none succeeded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinOutcome {
    pub joined: usize,
    pub error: Option<String>,
}

/// Formats errors as hashicorp/go-multierror does.
pub fn multierror(errors: &[String]) -> String {
    let n = errors.len();
    let mut s =
        if n == 1 { "1 error occurred:\n".to_string() } else { format!("{n} errors occurred:\n") };
    for e in errors {
        s.push_str("\t* ");
        s.push_str(e);
        s.push('\n');
    }
    s.push('\n');
    s
}

struct Subscriber {
    id: u64,
    filters: Vec<EventFilter>,
    tx: Sender<StreamItem>,
}

#[derive(Default)]
struct Waiters {
    /// Join waiters, with the address-resolution errors to report too.
    joins: HashMap<CommandId, (Sender<JoinOutcome>, Vec<String>)>,
    force_leaves: HashMap<CommandId, Sender<Result<(), String>>>,
    tags: HashMap<CommandId, Sender<Result<(), String>>>,
    keys: HashMap<CommandId, Sender<(KeyResponse, Option<String>)>>,
    queries: HashMap<QueryId, QueryWaiter>,
    leave: Option<Sender<Result<(), String>>>,
}

/// A query this agent started, as the dispatcher follows it.
///
/// Go Serf always holds a query open for its whole timeout. Ours closes it
/// (sends `Done`) as soon as every node that should answer has answered: the
/// alive members that pass the query's filters in our view when it started,
/// each with a response (and an ack, when acks were requested). The wire
/// messages are the same; only the wait ends early. Late replies from nodes
/// our view did not know are the price, so the early end applies only when
/// that set is not empty.
pub(crate) struct QueryWaiter {
    pub tx: Sender<QueryRecord>,
    /// Nodes yet to respond; `None`: wait for the timeout as Go does.
    pub responses_due: Option<HashSet<String>>,
    /// Nodes yet to ack (empty when no acks were requested).
    pub acks_due: HashSet<String>,
}

impl QueryWaiter {
    /// Records a reply from `from`; true when nothing more is due.
    pub fn reply(&mut self, from: &str, ack: bool) -> bool {
        let Some(due) = &mut self.responses_due else { return false };
        if ack {
            self.acks_due.remove(from);
        } else {
            due.remove(from);
        }
        due.is_empty() && self.acks_due.is_empty()
    }
}

/// The alive members of `serf` that a query with `params` reaches, by our
/// view; `None` when a filter cannot be judged (an invalid regexp) or no
/// member passes, so the query waits its timeout.
fn query_audience(serf: &Serf, params: &QueryParams) -> Option<HashSet<String>> {
    let mut tags = Vec::with_capacity(params.filter_tags.len());
    for (tag, expr) in &params.filter_tags {
        tags.push((tag.as_str(), regex::Regex::new(expr).ok()?));
    }
    let due: HashSet<String> = serf
        .members()
        .filter(|m| m.status == MemberStatus::Alive)
        .filter(|m| {
            params.filter_nodes.is_empty() || params.filter_nodes.iter().any(|n| **n == *m.name)
        })
        .filter(|m| {
            tags.iter().all(|(tag, re)| re.is_match(m.tags.get(*tag).map_or("", String::as_str)))
        })
        .map(|m| m.name.to_string())
        .collect();
    (!due.is_empty()).then_some(due)
}

/// State shared by the handle and the dispatcher.
pub(crate) struct Shared {
    serf: InstanceHandle<Serf>,
    name: String,
    config: AgentConfig,
    logger: Logger,
    waiters: Mutex<Waiters>,
    subscribers: Mutex<Vec<Subscriber>>,
    next_sub: Mutex<u64>,
    notifier: Mutex<Option<Arc<dyn Fn() + Send + Sync>>>,
    /// Agent-level shutdown requests (RPC leave, a lost name vote).
    shutdown_tx: Sender<ShutdownReason>,
    keyring_file: Option<PathBuf>,
    tags_file: Option<PathBuf>,
    clock: Clock,
    /// The event handlers, as shown by `stats` (`event_handlers`): those
    /// of the startup configuration. Go's stats read the configuration the
    /// agent started with, so a SIGHUP reload does not change them even
    /// though the new handlers run.
    handler_specs: Vec<(String, String)>,
    /// The scripts the handler runner uses (replaced on reload).
    handler_scripts: Arc<Mutex<Vec<crate::config::EventScript>>>,
    /// The membership view of the HTTP API and DNS.
    view: View,
    /// Agent-side metrics.
    counters: Arc<Counters>,
    /// The engine runtime (here so that metrics can read its counters;
    /// taken out by [`Agent::shutdown`]).
    runtime: Mutex<Option<Runtime<Serf>>>,
}

/// The engine's own counters, read in one call (for metrics).
#[derive(Clone, Copy, Debug)]
pub struct EngineStats {
    pub serf: engine::proto::serf::SerfStats,
    pub memberlist: engine::proto::memberlist::Stats,
    /// Messages in memberlist's broadcast queue.
    pub broadcast_queue: usize,
}

/// Why the agent wants to stop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShutdownReason {
    /// An RPC `leave` completed.
    Left,
    /// The engine stopped itself (e.g. it lost a name-conflict vote).
    Engine(String),
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A cloneable handle to the running agent, usable from any thread.
#[derive(Clone)]
pub struct AgentHandle {
    shared: Arc<Shared>,
}

impl core::fmt::Debug for AgentHandle {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("AgentHandle").field("name", &self.shared.name).finish()
    }
}

/// The running agent.
pub struct Agent {
    handle: AgentHandle,
    dispatcher: Option<JoinHandle<()>>,
    shutdown_rx: Receiver<ShutdownReason>,
    /// The address gossiped to peers.
    pub advertise: SocketAddr,
    /// A notice to print at start-up (e.g. loopback-only advertise address).
    pub notices: Vec<String>,
}

/// Picks the address to advertise: the configured one, the bind address, or
/// for a wildcard bind a private IPv4 address of this host. On a host whose
/// only address is loopback, Go fails; we advertise 127.0.0.1 and say so.
pub fn advertise_address(c: &AgentConfig) -> (SocketAddr, Option<String>) {
    if let Some(a) = c.advertise {
        return (a, None);
    }
    if !c.bind.ip().is_unspecified() {
        return (c.bind, None);
    }
    let port = c.bind.port();
    if let Some(ip) = private_ipv4() {
        return (SocketAddr::new(IpAddr::V4(ip), port), None);
    }
    let lo = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
    let notice = format!(
        "No private IP address found, and explicit IP not provided: advertising {lo} (only this host \
         can reach it; set -advertise to choose an address)"
    );
    (lo, Some(notice))
}

/// The private (RFC 1918 or RFC 6598) IPv4 address Go's `GetPrivateIP`
/// picks: interfaces holding the IPv4 default route come first, then the
/// rest in the kernel's order.
fn private_ipv4() -> Option<Ipv4Addr> {
    let default_ifaces =
        default_route_interfaces(&std::fs::read_to_string("/proc/net/route").unwrap_or_default());
    pick_private_ipv4(&gonet::interface_addrs().ok()?, &default_ifaces)
}

fn is_private_v4(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    ip.is_private() || (o[0] == 100 && (o[1] & 0xc0) == 64)
}

/// The first private IPv4 address, preferring those of `preferred`
/// interfaces in that order.
fn pick_private_ipv4(addrs: &[gonet::InterfaceAddr], preferred: &[String]) -> Option<Ipv4Addr> {
    let private = |a: &gonet::InterfaceAddr| match a.ip {
        IpAddr::V4(ip) if is_private_v4(ip) => Some(ip),
        _ => None,
    };
    preferred
        .iter()
        .find_map(|iface| addrs.iter().filter(|a| &a.name == iface).find_map(private))
        .or_else(|| addrs.iter().find_map(private))
}

/// The interfaces of the IPv4 default routes in `/proc/net/route`
/// (destination and mask 0), lowest metric first.
fn default_route_interfaces(route_table: &str) -> Vec<String> {
    let mut found: Vec<(u32, String)> = route_table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (iface, dest, metric, mask) = (f.first()?, f.get(1)?, f.get(6)?, f.get(7)?);
            (*dest == "00000000" && *mask == "00000000")
                .then(|| (metric.parse().unwrap_or(u32::MAX), iface.to_string()))
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, i)| i).collect()
}

/// The Serf configuration for an agent configuration.
pub fn serf_config(c: &AgentConfig, plan: &StartPlan, advertise: SocketAddr) -> SerfConfig {
    let mut ml = match c.profile {
        Profile::Lan => MlConfig::lan(),
        Profile::Wan => MlConfig::wan(),
        Profile::Local => MlConfig::local(),
    };
    ml.name = c.node_name.clone();
    ml.advertise_addr = advertise.ip();
    ml.advertise_port = advertise.port();
    ml.enable_compression = c.enable_compression;
    let mut s = SerfConfig::agent(ml);
    s.protocol_version = plan.protocol;
    s.tags = plan.tags.clone();
    s.broadcast_timeout = c.broadcast_timeout;
    s.reconnect_interval = c.reconnect_interval;
    s.reconnect_timeout = c.reconnect_timeout;
    s.tombstone_timeout = c.tombstone_timeout;
    s.query_response_size_limit = usize::try_from(c.query_response_size_limit).unwrap_or(1024);
    s.query_size_limit = usize::try_from(c.query_size_limit).unwrap_or(1024);
    s.user_event_size_limit = usize::try_from(c.user_event_size_limit).unwrap_or(512);
    s.enable_name_conflict_resolution = !c.disable_name_resolution;
    // Go Serf 0.9.4 parses `disable_coordinates` but never applies it, so
    // its agents always answer `serf rtt`; the drop-in does the same (the
    // configuration reader warns that the key has no effect).
    s.disable_coordinates = false;
    s
}

impl Agent {
    /// Starts the Serf instance and the event pipeline. Errors are worded as
    /// the Go agent prints them after `==> `.
    pub fn start(c: &AgentConfig, plan: &StartPlan, logger: Logger) -> Result<Agent, StartError> {
        let (advertise, notice) = advertise_address(c);
        let mut notices = Vec::new();
        if let Some(n) = notice {
            notices.push(n);
        }
        let keyring = if plan.keys.is_empty() {
            None
        } else {
            let keys: Vec<&[u8]> = plan.keys.iter().map(Vec::as_slice).collect();
            Some(Keyring::from_keys(&keys).map_err(|e| {
                StartError::Start(format!("Error creating Serf: Failed to create memberlist: {e}"))
            })?)
        };
        let mut scfg = serf_config(c, plan, advertise);
        // Snapshot: replay it before the instance exists.
        let snap = match &c.snapshot_path {
            Some(p) => Some(
                snapshot::Snapshotter::open(p, c.rejoin_after_leave, &logger).map_err(|e| {
                    StartError::Start(format!("Error creating Serf: Failed to setup snapshot: {e}"))
                })?,
            ),
            None => None,
        };
        if let Some(s) = &snap {
            scfg.restore = Some(s.restore());
        }
        // Validate what Serf::new validates, on this thread, for a clean error.
        Serf::new(
            scfg.clone(),
            engine::time::Instant::ZERO,
            engine::rng::Rng::seed_from_u64(0),
            keyring.clone(),
        )
        .map_err(|e| StartError::Start(format!("Error creating Serf: {e}")))?;
        let runtime =
            Runtime::<Serf>::new(RuntimeConfig { workers: 1, ..RuntimeConfig::default() })
                .map_err(|e| StartError::Start(format!("Error creating Serf: {e}")))?;
        let (ev_tx, ev_rx) = crossbeam_channel::bounded(EVENT_CHANNEL);
        let factory_cfg = scfg.clone();
        let kr = keyring.clone();
        let serf = runtime
            .spawn(c.bind, Some(ev_tx), move |now, rng| {
                Serf::new(factory_cfg, now, rng, kr)
                    .unwrap_or_else(|e| panic!("validated above: {e}"))
            })
            .map_err(|e| {
                StartError::Start(format!(
                    "Error creating Serf: Failed to create memberlist: {}",
                    spawn_error(&e)
                ))
            })?;
        let (shutdown_tx, shutdown_rx) = crossbeam_channel::unbounded();
        let view = View::new(serf.clone(), runtime.clock());
        let shared = Arc::new(Shared {
            serf,
            name: c.node_name.clone(),
            config: c.clone(),
            logger: logger.clone(),
            waiters: Mutex::new(Waiters::default()),
            subscribers: Mutex::new(Vec::new()),
            next_sub: Mutex::new(0),
            notifier: Mutex::new(None),
            shutdown_tx,
            keyring_file: c.keyring_file.clone(),
            tags_file: c.tags_file.clone(),
            clock: runtime.clock(),
            handler_specs: c
                .event_handlers
                .iter()
                .map(|h| (h.stats_key(), h.script.clone()))
                .collect(),
            handler_scripts: Arc::new(Mutex::new(c.event_handlers.clone())),
            view,
            counters: Arc::new(Counters::default()),
            runtime: Mutex::new(Some(runtime)),
        });
        let handlers = handlers::Runner::start(
            shared.handler_scripts.clone(),
            &logger,
            shared.serf.clone(),
            &shared.name,
            shared.counters.clone(),
        );
        let dispatcher = dispatch::Dispatcher::new(shared.clone(), ev_rx, snap, handlers);
        let thread = std::thread::Builder::new()
            .name("agent-events".into())
            .spawn(move || dispatcher.run())
            .map_err(|e| StartError::Start(format!("Error starting event loop: {e}")))?;
        if let (Some(path), Some(_)) = (&c.keyring_file, &keyring) {
            logger.log(
                Level::Info,
                "agent",
                &format!("Restored keyring with {} keys from {}", plan.keys.len(), path.display()),
            );
        }
        logger.log(Level::Info, "agent", "Serf agent starting");
        Ok(Agent {
            handle: AgentHandle { shared },
            dispatcher: Some(thread),
            shutdown_rx,
            advertise,
            notices,
        })
    }

    /// A handle for RPC sessions and the front end.
    pub fn handle(&self) -> AgentHandle {
        self.handle.clone()
    }

    /// Requests to stop (RPC leave done, engine shutdown).
    pub fn shutdown_requests(&self) -> &Receiver<ShutdownReason> {
        &self.shutdown_rx
    }

    /// Stops everything: the instance (no leave message), the runtime and the
    /// event pipeline (pending handler runs finish or are abandoned).
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let _ = self.handle.shared.serf.call(|s, _| {
            if s.state() != engine::proto::serf::State::Left {
                Some(())
            } else {
                None
            }
        });
        let _ = self.handle.shared.serf.remove();
        let runtime = lock(&self.handle.shared.runtime).take();
        if let Some(rt) = runtime {
            rt.shutdown();
        }
        if let Some(t) = self.dispatcher.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.stop();
    }
}

fn spawn_error(e: &engine::runtime::SpawnError) -> String {
    match e {
        engine::runtime::SpawnError::Io { op, addr, error } => {
            let text = error.to_string();
            let text = match text.find(" (os error") {
                Some(i) => text[..i].to_string(),
                None => text,
            };
            let mut chars = text.chars();
            let text = match chars.next() {
                Some(c) => c.to_lowercase().collect::<String>() + chars.as_str(),
                None => text,
            };
            format!(
                "Failed to start TCP listener on \"{}\" port {}: {op} {addr}: {text}",
                addr.ip(),
                addr.port()
            )
        }
        engine::runtime::SpawnError::Closed => "runtime closed".into(),
    }
}

/// Resolves a join address: `host[:port]` or `name/host[:port]`, port
/// defaulting to `default_port`.
pub fn resolve_join_addr(addr: &str, default_port: u16) -> Result<Vec<SocketAddr>, String> {
    let host = addr.split_once('/').map_or(addr, |(_, h)| h);
    let with_port = if host.parse::<SocketAddr>().is_ok() {
        host.to_string()
    } else if host.parse::<IpAddr>().is_ok() {
        match host.parse::<IpAddr>() {
            Ok(IpAddr::V6(v6)) => format!("[{v6}]:{default_port}"),
            _ => format!("{host}:{default_port}"),
        }
    } else if host.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        && !host.starts_with('[')
    {
        host.to_string()
    } else {
        format!("{host}:{default_port}")
    };
    with_port.to_socket_addrs().map(|it| it.collect()).map_err(|e| e.to_string())
}

impl AgentHandle {
    /// Registers a function the dispatcher calls after it delivers anything
    /// to a channel returned by this handle (an RPC server wakes its poll);
    /// the logger calls it too after a line reaches a monitor channel from
    /// [`log::Logger::attach`].
    pub fn set_notifier(&self, f: Arc<dyn Fn() + Send + Sync>) {
        self.shared.logger.set_notifier(f.clone());
        *lock(&self.shared.notifier) = Some(f);
    }

    /// The node name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The agent configuration.
    pub fn config(&self) -> &AgentConfig {
        &self.shared.config
    }

    /// The logger (for `monitor`).
    pub fn logger(&self) -> &Logger {
        &self.shared.logger
    }

    fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Serf, engine::time::Instant) -> R + Send + 'static,
    ) -> Result<R, String> {
        self.shared.serf.call(f).map_err(|_| "agent is shutting down".to_string())
    }

    /// Runs `f` on the engine thread with the member table borrowed, and
    /// returns what `f` returns; `Err` when the agent is shutting down (`f`
    /// is then dropped unrun). Gossip waits while `f` runs, so `f` should
    /// only read and encode: the RPC server writes its `members` replies
    /// here, straight from the table (about 60 µs per 1000 members, see
    /// `agent::rpc::server::members`), instead of copying members out.
    pub fn with_members<R: Send + 'static>(
        &self,
        f: impl FnOnce(MemberTable<'_>) -> R + Send + 'static,
    ) -> Result<R, String> {
        self.call(|s, _| f(MemberTable { serf: s }))
    }

    /// Our own member record.
    pub fn local_member(&self) -> Option<Member> {
        self.call(|s, _| s.local_member()).ok()
    }

    /// Joins through `addrs` (push-pull with each). With `replay` false,
    /// user events older than the cluster's event clock are not delivered.
    pub fn join(&self, addrs: &[String], replay: bool) -> Receiver<JoinOutcome> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let port = self.shared.config.bind.port();
        let mut errors = Vec::new();
        let mut resolved = Vec::new();
        for a in addrs {
            match resolve_join_addr(a, port) {
                Ok(list) => resolved.extend(list),
                Err(e) => errors.push(format!("Failed to resolve {a}: {e}")),
            }
        }
        self.shared.logger.log(
            Level::Info,
            "agent",
            &format!("joining: [{}] replay: {replay}", addrs.join(" ")),
        );
        let shared = self.shared.clone();
        let tx2 = tx.clone();
        let sent = self.call(move |s, now| {
            let id = s.join(now, &resolved, !replay);
            lock(&shared.waiters).joins.insert(id, (tx2, errors));
        });
        if sent.is_err() {
            let _ =
                tx.send(JoinOutcome { joined: 0, error: Some("agent is shutting down".into()) });
        }
        rx
    }

    /// Starts a graceful leave; the result arrives when it finishes.
    pub fn leave(&self) -> Receiver<Result<(), String>> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let shared = self.shared.clone();
        let tx2 = tx.clone();
        let r = self.call(move |s, now| match s.leave(now) {
            Ok(()) if s.state() == engine::proto::serf::State::Left => Err(None),
            Ok(()) => {
                lock(&shared.waiters).leave = Some(tx2);
                Ok(())
            }
            Err(e) => Err(Some(e)),
        });
        match r {
            Ok(Ok(())) => {}
            Ok(Err(None)) => {
                let _ = tx.send(Ok(()));
            }
            Ok(Err(Some(e))) => {
                let _ = tx.send(Err(e));
            }
            Err(e) => {
                let _ = tx.send(Err(e));
            }
        }
        rx
    }

    /// Force-leaves `node` (and with `prune`, erases it).
    pub fn force_leave(&self, node: &str, prune: bool) -> Receiver<Result<(), String>> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let shared = self.shared.clone();
        let node = node.to_string();
        let tx2 = tx.clone();
        if let Err(e) = self.call(move |s, now| {
            let id = s.force_leave(now, &node, prune);
            lock(&shared.waiters).force_leaves.insert(id, tx2);
        }) {
            let _ = tx.send(Err(e));
        }
        rx
    }

    /// Sends a user event.
    pub fn user_event(&self, name: &str, payload: &[u8], coalesce: bool) -> Result<(), String> {
        let (name, payload) = (name.to_string(), payload.to_vec());
        self.shared.logger.log(
            Level::Debug,
            "agent",
            &format!(
                "Requesting user event send: {name}. Coalesced: {coalesce}. Payload: {:?}",
                String::from_utf8_lossy(&payload)
            ),
        );
        let r = self.call(move |s, now| s.user_event(now, &name, &payload, coalesce))?;
        if let Err(e) = &r {
            self.shared.logger.log(
                Level::Warn,
                "agent",
                &format!("failed to send user event: {e}"),
            );
        }
        r
    }

    /// Replaces tags (current − `delete` + `set`), persisting the tags file.
    pub fn set_tags(
        &self,
        set: &BTreeMap<String, String>,
        delete: &[String],
    ) -> Receiver<Result<(), String>> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let current = self.call(|s, _| s.tags().clone()).unwrap_or_default();
        let mut tags: Tags = current;
        for d in delete {
            tags.remove(d);
        }
        for (k, v) in set {
            tags.insert(k.clone(), v.clone());
        }
        if let Some(path) = &self.shared.tags_file {
            let pairs: Vec<(String, String)> =
                tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            let text =
                crate::go::json::marshal_indent(&crate::go::json::Out::string_map(Some(&pairs)));
            if let Err(e) = write_json_file(path, &text) {
                let _ = tx.send(Err(format!("Failed to write tags file: {e}")));
                return rx;
            }
        }
        let shared = self.shared.clone();
        let tx2 = tx.clone();
        match self.call(move |s, now| match s.set_tags(now, tags) {
            Ok(id) => {
                lock(&shared.waiters).tags.insert(id, tx2);
                Ok(())
            }
            Err(e) => Err(e),
        }) {
            Ok(Ok(())) => {}
            Ok(Err(e)) | Err(e) => {
                let _ = tx.send(Err(e));
            }
        }
        rx
    }

    /// Starts a query; records arrive on the returned channel, ending with `Done`.
    pub fn query(
        &self,
        name: &str,
        payload: &[u8],
        params: QueryParams,
    ) -> Result<Receiver<QueryRecord>, String> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let shared = self.shared.clone();
        let (name, payload) = (name.to_string(), payload.to_vec());
        self.call(move |s, now| {
            let responses_due = query_audience(s, &params);
            let acks_due = match (&responses_due, params.request_ack) {
                (Some(due), true) => due.clone(),
                _ => Default::default(),
            };
            let id = s.query(now, &name, &payload, &params)?;
            let waiter = QueryWaiter { tx, responses_due, acks_due };
            lock(&shared.waiters).queries.insert(id, waiter);
            Ok::<(), String>(())
        })??;
        Ok(rx)
    }

    /// Answers a query delivered on a stream.
    pub fn respond(&self, id: u64, payload: &[u8]) -> Result<(), RespondError> {
        let payload = payload.to_vec();
        self.call(move |s, now| s.respond(now, id, &payload))
            .unwrap_or(Err(RespondError::NoSuchQuery))
    }

    /// Runs a key operation over the cluster; `key` is the raw key.
    pub fn key_op(&self, op: KeyOp, key: &[u8]) -> Receiver<(KeyResponse, Option<String>)> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let shared = self.shared.clone();
        let key = key.to_vec();
        let tx2 = tx.clone();
        if let Err(e) = self.call(move |s, now| {
            let id = s.key_op(now, op, &key, 0);
            lock(&shared.waiters).keys.insert(id, tx2);
        }) {
            let _ = tx.send((KeyResponse::default(), Some(e)));
        }
        rx
    }

    /// The coordinate last seen for `node` (ours included).
    pub fn coordinate(&self, node: &str) -> Option<Coordinate> {
        let node = node.to_string();
        self.call(move |s, _| s.cached_coordinate(&node)).ok().flatten()
    }

    /// The `stats` sections, as `serf info` shows them.
    pub fn stats(&self) -> BTreeMap<String, BTreeMap<String, String>> {
        let (st, tags) = match self.call(|s, _| (s.stats(), s.tags().clone())) {
            Ok(v) => v,
            Err(_) => return BTreeMap::new(),
        };
        let mut out = BTreeMap::new();
        let mut agent = BTreeMap::new();
        agent.insert("name".to_string(), self.shared.name.clone());
        out.insert("agent".to_string(), agent);
        let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).to_string();
        let mut rt = BTreeMap::new();
        rt.insert("os".into(), std::env::consts::OS.to_string());
        rt.insert("arch".into(), go_arch().to_string());
        rt.insert("version".into(), env!("AGENT_BUILT_WITH_RUSTC").into());
        rt.insert("max_procs".into(), cpus.clone());
        rt.insert("goroutines".into(), thread_count().to_string());
        rt.insert("cpu_count".into(), cpus);
        out.insert("runtime".to_string(), rt);
        let mut serf = BTreeMap::new();
        let b = |v: bool| if v { "true" } else { "false" }.to_string();
        serf.insert("members".into(), st.members.to_string());
        serf.insert("failed".into(), st.failed.to_string());
        serf.insert("left".into(), st.left.to_string());
        serf.insert("health_score".into(), st.health_score.to_string());
        serf.insert("member_time".into(), st.member_time.to_string());
        serf.insert("event_time".into(), st.event_time.to_string());
        serf.insert("query_time".into(), st.query_time.to_string());
        serf.insert("intent_queue".into(), st.intent_queue.to_string());
        serf.insert("event_queue".into(), st.event_queue.to_string());
        serf.insert("query_queue".into(), st.query_queue.to_string());
        serf.insert("encrypted".into(), b(st.encrypted));
        if let Some(r) = st.coordinate_resets {
            serf.insert("coordinate_resets".into(), r.to_string());
        }
        out.insert("serf".to_string(), serf);
        out.insert("tags".to_string(), tags);
        let handlers: BTreeMap<String, String> =
            self.shared.handler_specs.iter().cloned().collect();
        out.insert("event_handlers".to_string(), handlers);
        out
    }

    /// Subscribes to events matching `filters` (post-coalescing); returns an
    /// id for [`AgentHandle::unsubscribe`] and the bounded channel.
    pub fn subscribe(&self, filters: Vec<EventFilter>) -> (u64, Receiver<StreamItem>) {
        let (tx, rx) = crossbeam_channel::bounded(STREAM_BUFFER);
        let mut n = lock(&self.shared.next_sub);
        *n += 1;
        let id = *n;
        lock(&self.shared.subscribers).push(Subscriber { id, filters, tx });
        (id, rx)
    }

    /// Ends a subscription.
    pub fn unsubscribe(&self, id: u64) {
        lock(&self.shared.subscribers).retain(|s| s.id != id);
    }

    /// Asks the agent to stop (used after an RPC leave).
    pub fn request_shutdown(&self, reason: ShutdownReason) {
        let _ = self.shared.shutdown_tx.send(reason);
    }

    /// Replaces the event handlers that run (SIGHUP reload); `stats` keeps
    /// listing the startup ones, as Go's does.
    pub fn reload_handlers(&self, scripts: &[crate::config::EventScript]) {
        *lock(&self.shared.handler_scripts) = scripts.to_vec();
    }

    /// The engine's clock.
    pub fn now(&self) -> engine::time::Instant {
        self.shared.clock.now()
    }

    /// The membership view (index, watchers, snapshots) of the HTTP API and DNS.
    pub fn view(&self) -> &View {
        &self.shared.view
    }

    /// The agent-side metric counters.
    pub fn counters(&self) -> &Arc<Counters> {
        &self.shared.counters
    }

    /// The engine's counters (one short call into the engine thread);
    /// `None` once it stopped.
    pub fn engine_stats(&self) -> Option<EngineStats> {
        self.call(|s, _| EngineStats {
            serf: s.stats(),
            memberlist: s.memberlist().stats(),
            broadcast_queue: s.memberlist().broadcast_queue_len(),
        })
        .ok()
    }

    /// The runtime workers' counters as last published; `None` once it stopped.
    pub fn runtime_stats(&self) -> Option<engine::runtime::WorkerStats> {
        lock(&self.shared.runtime).as_ref().map(Runtime::total_stats)
    }
}

/// Go's `runtime.GOARCH` names.
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        other => other,
    }
}

fn thread_count() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:").map(|v| v.trim().parse().unwrap_or(0)))
        })
        .unwrap_or(0)
}

/// Writes `contents` to `path` with mode 0600, as Go writes keyring and
/// tags files.
pub fn write_json_file(path: &std::path::Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(contents.as_bytes())
}

/// Whether `item` passes any of `filters` (RPC stream and handler rules).
pub fn matches(filters: &[EventFilter], kind: &str, name: &str) -> bool {
    filters
        .iter()
        .any(|f| f.event == "*" || (f.event == kind && (f.name.is_empty() || f.name == name)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advertise_prefers_the_default_route_interface() {
        let table =
            "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\n\
                     docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n\
                     wlan0\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0\n\
                     eth0\t00000000\t0100000A\t0003\t0\t0\t100\t00000000\t0\t0\t0\n";
        assert_eq!(default_route_interfaces(table), ["eth0", "wlan0"]);
        let a = |name: &str, ip: [u8; 4]| gonet::InterfaceAddr {
            name: name.into(),
            ip: IpAddr::V4(Ipv4Addr::from(ip)),
        };
        let addrs = [
            a("lo", [127, 0, 0, 1]),
            a("docker0", [172, 17, 0, 1]),
            a("wlan0", [192, 168, 1, 5]),
            a("eth0", [8, 8, 8, 8]),
            a("eth0", [10, 0, 0, 7]),
        ];
        let pref = default_route_interfaces(table);
        // Interface order alone would pick docker0's 172.17.0.1.
        assert_eq!(pick_private_ipv4(&addrs, &pref), Some(Ipv4Addr::new(10, 0, 0, 7)));
        assert_eq!(pick_private_ipv4(&addrs, &[]), Some(Ipv4Addr::new(172, 17, 0, 1)));
        assert_eq!(pick_private_ipv4(&addrs[..1], &pref), None);
        assert!(default_route_interfaces("").is_empty());
    }
}
