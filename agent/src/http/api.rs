//! The endpoints: Consul's paths and JSON shapes, answered from the
//! agent's membership view (the eventually consistent, `?stale`-style
//! answer).
//!
//! | path | method | answer |
//! |---|---|---|
//! | `/v1/catalog/nodes` | GET, blocking | nodes (not left), by name; `?node-meta=k:v` filters |
//! | `/v1/catalog/node/<name>` | GET, blocking | `{Node, Services: {}}`, 404 if unknown or left |
//! | `/v1/catalog/datacenters` | GET | `[dc]` |
//! | `/v1/agent/members` | GET, blocking | every member, Consul's shape, Status 1–4 |
//! | `/v1/agent/self` | GET | `{Config, Coord, Member, Stats, Meta}` |
//! | `/v1/agent/metrics` | GET | Consul's JSON; `?format=prometheus` the text exposition |
//! | `/v1/agent/join/<addr>` | PUT | joins through `addr` |
//! | `/v1/agent/leave` | PUT | leaves gracefully, then the agent stops |
//! | `/v1/agent/force-leave/<node>` | PUT | force-leaves (`?prune` erases) |
//! | `/v1/health/node/<name>` | GET, blocking | its `serfHealth` check (`[]` if unknown or left) |
//! | `/v1/health/state/<state>` | GET, blocking | checks in `any`, `passing`, `warning`, `critical` |
//! | `/v1/status/leader`, `/v1/status/peers` | GET | `""`, `[]` (no server mode) |
//!
//! Blocking endpoints send `X-Consul-Index` (the view index); with
//! `?index=N` at or past the current index the request waits until the
//! view moves past N or `?wait` (default [`DEFAULT_WAIT`], at most
//! [`MAX_WAIT`], plus up to 1/16 random jitter) passes. `?pretty` indents.

use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, TryRecvError};
use engine::proto::serf::{Member, MemberStatus};
use engine::rng::Rng;
use engine::time::Instant;

use super::request::{Method, Request};
use crate::agent::view::{is_passing, Entry, Snapshot};
use crate::agent::{AgentHandle, JoinOutcome, ShutdownReason};
use crate::go::json::Writer;
use crate::metrics::{self, Registry};

/// A blocking query's wait when `?wait` is not given.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(5 * 60);
/// The longest `?wait` (larger values are cut to it).
pub const MAX_WAIT: Duration = Duration::from_secs(10 * 60);
/// How long a join, leave or force-leave may take before a 500.
pub const OP_TIMEOUT: Duration = Duration::from_secs(60);

const JSON: &str = "application/json";
const TEXT: &str = "text/plain; charset=utf-8";

/// A response to write.
#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Arc<Vec<u8>>,
    /// `X-Consul-Index`, for blocking endpoints.
    pub index: Option<u64>,
    /// `Allow`, for 405.
    pub allow: Option<&'static str>,
    /// Stop the agent once this response is written (after a leave).
    pub stop_agent: bool,
}

impl Response {
    fn new(status: u16, content_type: &'static str, body: Vec<u8>) -> Response {
        Response {
            status,
            content_type,
            body: Arc::new(body),
            index: None,
            allow: None,
            stop_agent: false,
        }
    }

    /// A plain-text error (Consul's errors are text with a newline).
    pub fn error(status: u16, text: &str) -> Response {
        Response::new(status, TEXT, format!("{text}\n").into_bytes())
    }

    fn json(text: String) -> Response {
        Response::new(200, JSON, text.into_bytes())
    }

    fn empty() -> Response {
        Response::new(200, TEXT, Vec::new())
    }
}

/// A join, leave or force-leave waiting for the agent.
pub enum Pending {
    Join(Receiver<JoinOutcome>),
    Leave(Receiver<Result<(), String>>),
    ForceLeave(Receiver<Result<(), String>>),
}

/// What to do with a request.
pub enum Outcome {
    Respond(Response),
    /// Wait until the view index passes `min_index` or `deadline`.
    Block {
        min_index: u64,
        deadline: Instant,
    },
    /// Wait for the agent (the handle's channel) until `deadline`.
    Pending {
        op: Pending,
        deadline: Instant,
    },
}

/// Endpoints that answer the same bytes at the same view index, cached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cached {
    Nodes,
    Members,
    HealthAny,
}

/// The endpoints' state (on the HTTP thread).
pub struct Api {
    agent: AgentHandle,
    registry: Registry,
    exporter: prometheus_client::registry::Registry,
    rng: Rng,
    /// (endpoint, pretty, view index) → body.
    cache: Vec<(Cached, bool, u64, Arc<Vec<u8>>)>,
}

impl Api {
    pub fn new(agent: AgentHandle) -> Api {
        let registry = Registry::new(agent.clone());
        let exporter = metrics::prometheus::exporter(registry.clone());
        let seed = agent.now().as_micros() ^ u64::from(std::process::id()).rotate_left(32);
        Api { agent, registry, exporter, rng: Rng::seed_from_u64(seed), cache: Vec::new() }
    }

    /// Routes `req`. With `may_block` false (a woken blocking query) the
    /// answer is given now.
    pub fn handle(&mut self, req: &Request, now: Instant, may_block: bool) -> Outcome {
        let path = req.path.as_str();
        let get = |f: &mut dyn FnMut() -> Outcome| -> Outcome {
            if req.method == Method::Get {
                f()
            } else {
                Outcome::Respond(method_not_allowed(req, "GET"))
            }
        };
        let put = |f: &mut dyn FnMut() -> Outcome| -> Outcome {
            if req.method == Method::Put {
                f()
            } else {
                Outcome::Respond(method_not_allowed(req, "PUT"))
            }
        };
        if let Some(name) = path.strip_prefix("/v1/catalog/node/") {
            return get(&mut || {
                self.blocking(req, now, may_block, |api, s, w| api.node(s, name, w))
            });
        }
        if let Some(name) = path.strip_prefix("/v1/health/node/") {
            return get(&mut || {
                self.blocking(req, now, may_block, |_, s, w| {
                    let e = s.get(name).filter(|e| listed(&e.member));
                    w.begin_array();
                    if let Some(e) = e {
                        check(w, e);
                    }
                    w.end_array();
                    200
                })
            });
        }
        if let Some(state) = path.strip_prefix("/v1/health/state/") {
            let want = match state {
                "any" => None,
                "passing" => Some("passing"),
                "warning" => Some("warning"),
                "critical" => Some("critical"),
                other => {
                    let other = other.to_string();
                    return get(&mut || {
                        Outcome::Respond(Response::error(400, &format!("Invalid state: {other}")))
                    });
                }
            };
            return get(&mut || {
                if want.is_none() {
                    return self.cached(req, now, may_block, Cached::HealthAny);
                }
                self.blocking(req, now, may_block, |_, s, w| health_state(s, want, w))
            });
        }
        if let Some(addr) = path.strip_prefix("/v1/agent/join/") {
            return put(&mut || {
                if addr.is_empty() {
                    return Outcome::Respond(Response::error(400, "Missing address to join"));
                }
                let rx = self.agent.join(&[addr.to_string()], false);
                Outcome::Pending { op: Pending::Join(rx), deadline: now + OP_TIMEOUT }
            });
        }
        if let Some(node) = path.strip_prefix("/v1/agent/force-leave/") {
            return put(&mut || {
                if node.is_empty() {
                    return Outcome::Respond(Response::error(400, "Missing node name"));
                }
                let rx = self.agent.force_leave(node, req.has("prune"));
                Outcome::Pending { op: Pending::ForceLeave(rx), deadline: now + OP_TIMEOUT }
            });
        }
        match path {
            "/v1/catalog/nodes" => get(&mut || {
                if req.has("node-meta") {
                    let filters: Vec<(String, String)> = req
                        .params("node-meta")
                        .map(|f| {
                            let (k, v) = f.split_once(':').unwrap_or((f, ""));
                            (k.to_string(), v.to_string())
                        })
                        .collect();
                    self.blocking(req, now, may_block, |api, s, w| api.nodes(s, &filters, w))
                } else {
                    self.cached(req, now, may_block, Cached::Nodes)
                }
            }),
            "/v1/catalog/datacenters" => get(&mut || {
                let mut w = writer(req);
                w.begin_array().str(&self.agent.config().datacenter).end_array();
                Outcome::Respond(Response::json(w.finish()))
            }),
            "/v1/agent/members" => get(&mut || self.cached(req, now, may_block, Cached::Members)),
            "/v1/agent/self" => get(&mut || Outcome::Respond(self.agent_self(req))),
            "/v1/agent/metrics" => get(&mut || Outcome::Respond(self.metrics(req))),
            "/v1/agent/leave" => put(&mut || {
                let rx = self.agent.leave();
                Outcome::Pending { op: Pending::Leave(rx), deadline: now + OP_TIMEOUT }
            }),
            "/v1/status/leader" => get(&mut || Outcome::Respond(Response::json("\"\"".into()))),
            "/v1/status/peers" => get(&mut || Outcome::Respond(Response::json("[]".into()))),
            _ => Outcome::Respond(Response::error(404, "404 page not found")),
        }
    }

    /// The response to a finished join, leave or force-leave; `None` while
    /// it is still running.
    pub fn complete(op: &Pending) -> Option<Response> {
        fn done<T>(r: Result<T, TryRecvError>) -> Option<Result<T, String>> {
            match r {
                Ok(v) => Some(Ok(v)),
                Err(TryRecvError::Empty) => None,
                Err(TryRecvError::Disconnected) => Some(Err("agent is shutting down".into())),
            }
        }
        let result = match op {
            Pending::Join(rx) => done(rx.try_recv())?.and_then(|o| match o.error {
                None => Ok(()),
                Some(e) => Err(e.trim_end().to_string()),
            }),
            Pending::Leave(rx) | Pending::ForceLeave(rx) => done(rx.try_recv())?.and_then(|r| r),
        };
        Some(match result {
            Ok(()) => {
                let mut r = Response::empty();
                r.stop_agent = matches!(op, Pending::Leave(_));
                r
            }
            Err(e) => Response::error(500, &e),
        })
    }

    /// Asks the agent to stop (after a leave's response was written).
    pub fn stop_agent(&self) {
        self.agent.request_shutdown(ShutdownReason::Left);
    }

    /// A blocking endpoint: parse `index`/`wait`, wait or answer with
    /// `render` (which writes the body and returns the status).
    fn blocking(
        &mut self,
        req: &Request,
        now: Instant,
        may_block: bool,
        render: impl FnOnce(&Api, &Snapshot, &mut Writer) -> u16,
    ) -> Outcome {
        match self.block(req, now, may_block) {
            Ok(Some(o)) => o,
            Err(r) => Outcome::Respond(r),
            Ok(None) => {
                let snap = self.agent.view().snapshot();
                let mut w = writer(req);
                let status = render(self, &snap, &mut w);
                let mut r = Response::new(status, JSON, w.finish().into_bytes());
                if status == 404 {
                    r = Response::error(404, "Unknown node");
                }
                r.index = Some(snap.index);
                Outcome::Respond(r)
            }
        }
    }

    /// A blocking endpoint whose answer depends on the view alone: the body
    /// is rendered once per view index (and `pretty`).
    fn cached(&mut self, req: &Request, now: Instant, may_block: bool, which: Cached) -> Outcome {
        match self.block(req, now, may_block) {
            Ok(Some(o)) => return o,
            Err(r) => return Outcome::Respond(r),
            Ok(None) => {}
        }
        let snap = self.agent.view().snapshot();
        let pretty = req.has("pretty");
        let hit = self
            .cache
            .iter()
            .find(|(w, p, i, _)| *w == which && *p == pretty && *i == snap.index)
            .map(|(_, _, _, b)| b.clone());
        let body = match hit {
            Some(b) => b,
            None => {
                let mut w = writer(req);
                match which {
                    Cached::Nodes => self.nodes(&snap, &[], &mut w),
                    Cached::Members => members(&snap, &mut w),
                    Cached::HealthAny => health_state(&snap, None, &mut w),
                };
                let b = Arc::new(w.finish().into_bytes());
                self.cache.retain(|(w, p, _, _)| !(*w == which && *p == pretty));
                self.cache.push((which, pretty, snap.index, b.clone()));
                b
            }
        };
        let mut r = Response::new(200, JSON, Vec::new());
        r.body = body;
        r.index = Some(snap.index);
        Outcome::Respond(r)
    }

    /// `Ok(Some(Block))` to wait, `Ok(None)` to answer now.
    fn block(
        &mut self,
        req: &Request,
        now: Instant,
        may_block: bool,
    ) -> Result<Option<Outcome>, Response> {
        let wait = match req.param("wait") {
            None => DEFAULT_WAIT,
            Some(w) => {
                let ns = crate::go::time::parse_duration(w)
                    .ok()
                    .filter(|ns| *ns >= 0)
                    .ok_or_else(|| Response::error(400, "Invalid wait time"))?;
                Duration::from_nanos(ns as u64).min(MAX_WAIT)
            }
        };
        let Some(index) = req.param("index") else { return Ok(None) };
        let min_index: u64 = index.parse().map_err(|_| Response::error(400, "Invalid index"))?;
        if !may_block || min_index < self.agent.view().index() {
            return Ok(None);
        }
        let jitter_us = (wait.as_micros() as u64 / 16).max(1);
        let wait = wait + Duration::from_micros(self.rng.below(jitter_us));
        Ok(Some(Outcome::Block { min_index, deadline: now + wait }))
    }

    fn node(&self, s: &Snapshot, name: &str, w: &mut Writer) -> u16 {
        let Some(e) = s.get(name).filter(|e| listed(&e.member)) else { return 404 };
        w.begin_object().key("Node");
        self.node_object(w, e);
        w.key("Services").begin_object().end_object().end_object();
        200
    }

    fn nodes(&self, s: &Snapshot, filters: &[(String, String)], w: &mut Writer) -> u16 {
        w.begin_array();
        for e in s.members.iter().filter(|e| listed(&e.member)) {
            let tags = &e.member.tags;
            if filters.iter().all(|(k, v)| tags.get(k).is_some_and(|t| t == v)) {
                self.node_object(w, e);
            }
        }
        w.end_array();
        200
    }

    fn node_object(&self, w: &mut Writer, e: &Entry) {
        let m = &e.member;
        let addr = m.addr.to_string();
        w.begin_object().key("ID").str("").key("Node").str(&m.name);
        w.key("Address").str(&addr).key("Datacenter").str(&self.agent.config().datacenter);
        w.key("TaggedAddresses").string_map([("lan", addr.as_str()), ("wan", addr.as_str())]);
        w.key("Meta").string_map(m.tags.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        w.key("CreateIndex").uint(e.create_index).key("ModifyIndex").uint(e.modify_index);
        w.end_object();
    }

    fn agent_self(&self, req: &Request) -> Response {
        let c = self.agent.config();
        let mut w = writer(req);
        w.begin_object().key("Config").begin_object();
        w.key("Datacenter").str(&c.datacenter).key("NodeName").str(self.agent.name());
        w.key("NodeID").str("").key("Server").bool(false);
        w.key("Version").str(&format!("serf-rs {}", env!("CARGO_PKG_VERSION")));
        w.key("Domain").str(&c.domain).end_object();
        w.key("Coord");
        match self.agent.coordinate(self.agent.name()) {
            Some(co) => {
                w.begin_object().key("Vec").begin_array();
                for x in co.vec {
                    w.float(x);
                }
                w.end_array().key("Error").float(co.error);
                w.key("Adjustment").float(co.adjustment).key("Height").float(co.height);
                w.end_object();
            }
            None => {
                w.null();
            }
        }
        w.key("Member");
        match self.agent.local_member() {
            Some(m) => member(&mut w, &m),
            None => {
                w.null();
            }
        }
        w.key("Stats").begin_object();
        for (section, kv) in self.agent.stats() {
            w.key(&section).string_map(kv.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        }
        w.end_object();
        let tags = self.agent.local_member().map(|m| m.tags).unwrap_or_default();
        w.key("Meta").string_map(tags.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        w.end_object();
        Response::json(w.finish())
    }

    fn metrics(&self, req: &Request) -> Response {
        match req.param("format") {
            Some("prometheus") => {
                // Always the 0.0.4 text (what Prometheus asks for first and
                // every scraper reads), with its own content type.
                let text = metrics::prometheus::render(&self.exporter);
                Response::new(200, metrics::prometheus::CONTENT_TYPE, text.into_bytes())
            }
            Some(other) => Response::error(400, &format!("Invalid format: {other}")),
            None => {
                let samples = self.registry.collect();
                let unix = unix_now();
                let uptime = self.agent.now().as_micros() as f64 / 1e6;
                let indent = if req.has("pretty") { "    " } else { "" };
                Response::json(metrics::json::render(&samples, unix, uptime, indent))
            }
        }
    }
}

/// Seconds since the Unix epoch (the agent may read the wall clock).
#[allow(clippy::disallowed_methods)]
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn writer(req: &Request) -> Writer {
    Writer::new(if req.has("pretty") { "    " } else { "" })
}

fn method_not_allowed(req: &Request, allow: &'static str) -> Response {
    let mut r = Response::error(405, &format!("method {} not allowed", req.method_text));
    r.allow = Some(allow);
    r
}

/// Whether the catalog lists a member: everything but left members.
fn listed(m: &Member) -> bool {
    !matches!(m.status, MemberStatus::Left | MemberStatus::None)
}

fn members(s: &Snapshot, w: &mut Writer) -> u16 {
    w.begin_array();
    for e in &s.members {
        member(w, &e.member);
    }
    w.end_array();
    200
}

/// One member in Consul's `/v1/agent/members` shape.
fn member(w: &mut Writer, m: &Member) {
    w.begin_object().key("Name").str(&m.name).key("Addr").str(&m.addr.to_string());
    w.key("Port").uint(u64::from(m.port));
    w.key("Tags").string_map(m.tags.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    w.key("Status").uint(m.status as u64);
    let names =
        ["ProtocolMin", "ProtocolMax", "ProtocolCur", "DelegateMin", "DelegateMax", "DelegateCur"];
    for (n, v) in names.iter().zip(m.vsn) {
        w.key(n).uint(u64::from(v));
    }
    w.end_object();
}

/// The `serfHealth` check of a member.
fn check(w: &mut Writer, e: &Entry) {
    let passing = is_passing(e.member.status);
    let (status, output) = if passing {
        ("passing", "Agent alive and reachable")
    } else {
        ("critical", "Agent not live or unreachable")
    };
    w.begin_object().key("Node").str(&e.member.name).key("CheckID").str("serfHealth");
    w.key("Name").str("Serf Health Status").key("Status").str(status);
    w.key("Notes").str("").key("Output").str(output);
    w.key("ServiceID").str("").key("ServiceName").str("");
    w.key("ServiceTags").begin_array().end_array().key("Type").str("");
    w.key("Definition").begin_object().end_object();
    w.key("CreateIndex").uint(e.create_index).key("ModifyIndex").uint(e.health_index);
    w.end_object();
}

fn health_state(s: &Snapshot, want: Option<&str>, w: &mut Writer) -> u16 {
    w.begin_array();
    for e in s.members.iter().filter(|e| listed(&e.member)) {
        let status = if is_passing(e.member.status) { "passing" } else { "critical" };
        if want.is_none_or(|x| x == status) {
            check(w, e);
        }
    }
    w.end_array();
    200
}
