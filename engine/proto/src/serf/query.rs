//! Queries (`protocol/serf.md` §8, §9): issuing, receiving with the dedupe
//! ring and filters, acks, responses and relays, collecting at the origin,
//! and the internal `_serf_ping` / `_serf_conflict` queries.

use core::time::Duration;
use std::net::SocketAddr;
use std::sync::Arc;

use super::{
    Deferred, Encoded, Event, KeyOp, Level, MemberStatus, QueryEvent, QueryId, RespondError,
    SerfState, Timer,
};
use crate::memberlist::{ip_from_bytes, IpOctets};
use crate::time::Instant;
use wire::msgpack::{Dialect, Writer};
use wire::serf::{
    write_node_filter, write_tag_filter, ConflictResponse, Filter, Query, QueryResponse, Relay,
    SerfMessage, SerfType, UdpAddr, QUERY_FLAG_ACK, QUERY_FLAG_NO_BROADCAST, RESPONSE_FLAG_ACK,
};

/// Prefix of queries Serf answers itself.
pub const INTERNAL_PREFIX: &str = "_serf_";
/// Reachability probe (`serf reachability`).
pub const PING_QUERY: &str = "_serf_ping";
/// Name-conflict vote.
pub const CONFLICT_QUERY: &str = "_serf_conflict";

/// How to run a query.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueryParams {
    /// Only these nodes process it (empty: all).
    pub filter_nodes: Vec<String>,
    /// Only nodes whose tag matches the (unanchored) regexp process it.
    pub filter_tags: Vec<(String, String)>,
    /// Ask every processing node for an ack.
    pub request_ack: bool,
    /// Extra members each response is relayed through.
    pub relay_factor: u8,
    /// Zero: the default, `GossipInterval × 16 × ceil(log10(N + 1))`.
    pub timeout: Duration,
}

/// Query ids seen at one Lamport time.
#[derive(Clone, Debug, Default)]
pub(super) struct Seen {
    ltime: u64,
    ids: smallvec::SmallVec<[u32; 4]>,
}

/// The recent-query ring used to drop duplicates.
#[derive(Debug)]
pub(super) struct QueryRing {
    slots: Vec<Option<Seen>>,
}

impl QueryRing {
    pub fn new(size: usize) -> Self {
        QueryRing { slots: vec![None; size.max(1)] }
    }
    fn len(&self) -> u64 {
        self.slots.len() as u64
    }
    /// Records (ltime, id); false if seen before.
    fn record(&mut self, ltime: u64, id: u32) -> bool {
        let i = (ltime % self.len()) as usize;
        // Below the ring's length, which is never 0.
        let Some(slot) = self.slots.get_mut(i) else { return false };
        match slot {
            Some(s) if s.ltime == ltime => {
                if s.ids.contains(&id) {
                    return false;
                }
                s.ids.push(id);
            }
            _ => {
                let mut ids = smallvec::SmallVec::new();
                ids.push(id);
                *slot = Some(Seen { ltime, ids });
            }
        }
        true
    }
}

/// Who consumes a query's results.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Consumer {
    /// The caller, via events.
    Events,
    /// The name-conflict vote.
    Conflict,
    /// A key operation (its command id).
    Keys(super::CommandId),
}

/// A query this node started.
#[derive(Debug)]
pub(super) struct Collector {
    pub id: QueryId,
    ltime: u64,
    wire_id: u32,
    acks: Vec<Arc<str>>,
    responses: Vec<Arc<str>>,
    consumer: Consumer,
    pub closed: bool,
}

/// A query this node received and may still answer.
#[derive(Debug)]
pub(super) struct Responder {
    pub id: u64,
    ltime: u64,
    wire_id: u32,
    addr: SocketAddr,
    source: Arc<str>,
    relay_factor: u8,
    deadline: Instant,
    responded: bool,
}

/// The name-conflict vote in progress.
#[derive(Debug)]
pub(super) struct Vote {
    id: QueryId,
    responses: u32,
    matching: u32,
}

impl Vote {
    pub fn new(id: QueryId) -> Self {
        Vote { id, responses: 0, matching: 0 }
    }
}

impl SerfState {
    /// Starts a user query; `_serf_`-prefixed names are refused by the agent,
    /// not here (internal callers use them).
    pub(super) fn start_query(
        &mut self,
        now: Instant,
        name: &str,
        payload: &[u8],
        params: &QueryParams,
        timeout: Duration,
        num_members: usize,
    ) -> Result<QueryId, String> {
        self.start_query_as(now, name, payload, params, timeout, num_members, Consumer::Events)
    }

    /// Starts an internal query whose results Serf consumes itself.
    pub(super) fn start_query_internal(
        &mut self,
        now: Instant,
        name: &str,
        payload: &[u8],
        params: &QueryParams,
        timeout: Duration,
        num_members: usize,
    ) -> Result<QueryId, String> {
        self.start_query_as(now, name, payload, params, timeout, num_members, Consumer::Conflict)
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn start_query_as(
        &mut self,
        now: Instant,
        name: &str,
        payload: &[u8],
        params: &QueryParams,
        timeout: Duration,
        _num_members: usize,
        consumer: Consumer,
    ) -> Result<QueryId, String> {
        if self.config.protocol_version < 4 {
            return Err("Feature not supported".into());
        }
        // Encode the filters: node filter first, then one per tag.
        let mut filters: Vec<Vec<u8>> = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        if !params.filter_nodes.is_empty() {
            let mut w = Writer::new(&mut buf, Dialect::Gossip);
            write_node_filter(&mut w, params.filter_nodes.iter().map(String::as_str))
                .map_err(|e| e.to_string())?;
            filters.push(w.written().to_vec());
        }
        for (tag, expr) in &params.filter_tags {
            let mut w = Writer::new(&mut buf, Dialect::Gossip);
            write_tag_filter(&mut w, tag, expr).map_err(|e| e.to_string())?;
            filters.push(w.written().to_vec());
        }
        let ip = IpOctets::new(&self.config.memberlist.advertise_addr);
        let q = Query {
            ltime: self.query_clock.time(),
            id: self.rng.int31(),
            addr: Some(ip.as_slice()),
            port: self.config.memberlist.advertise_port,
            source_node: &self.name.clone(),
            filters: None,
            flags: if params.request_ack { QUERY_FLAG_ACK } else { 0 },
            relay_factor: params.relay_factor,
            timeout_ns: i64::try_from(timeout.as_nanos()).unwrap_or(i64::MAX),
            name,
            payload: (!payload.is_empty()).then_some(payload),
        };
        let has_filters = !filters.is_empty();
        let blobs = has_filters.then(|| filters.iter().map(Vec::as_slice));
        let mut w = Writer::counting(Dialect::Gossip);
        w.byte(SerfType::Query as u8).map_err(|e| e.to_string())?;
        q.encode_body_with(&mut w, blobs.clone()).map_err(|e| e.to_string())?;
        let len = w.len();
        if len > self.config.query_size_limit {
            return Err(super::limits::query_too_large(self.config.query_size_limit));
        }
        let mut raw = vec![0u8; len];
        let mut w = Writer::new(&mut raw, Dialect::Gossip);
        w.byte(SerfType::Query as u8).map_err(|e| e.to_string())?;
        q.encode_body_with(&mut w, blobs).map_err(|e| e.to_string())?;
        self.next_query = self.next_query.wrapping_add(1);
        let id = self.next_query;
        self.collectors.push(Collector {
            id,
            ltime: q.ltime,
            wire_id: q.id,
            acks: Vec::new(),
            responses: Vec::new(),
            consumer,
            closed: false,
        });
        self.timers.insert(now + timeout, Timer::QueryDone(id));
        // Process locally (we may ack/answer ourselves), then gossip it.
        if let Ok(SerfMessage::Query(decoded)) = SerfMessage::decode(&raw) {
            self.handle_query(now, &decoded);
        }
        self.queries_q.push(None, &raw, None);
        Ok(id)
    }

    /// A query arrived (`handleQuery`); true means rebroadcast it.
    pub(super) fn handle_query(&mut self, now: Instant, q: &Query<'_>) -> bool {
        self.query_clock.witness(q.ltime);
        if q.ltime < self.query_min_time {
            return false;
        }
        let cur = self.query_clock.time();
        let size = self.query_ring.len();
        if cur > size && q.ltime < cur - size {
            let text =
                format!("received old query {} from time {} (current: {})", q.name, q.ltime, cur);
            self.log(Level::Warn, "serf", text);
            return false;
        }
        if !self.query_ring.record(q.ltime, q.id) {
            return false;
        }
        let rebroadcast = q.flags & QUERY_FLAG_NO_BROADCAST == 0;
        if !self.should_process(q) {
            return rebroadcast;
        }
        let Some(addr) = q.addr.and_then(ip_from_bytes).map(|ip| SocketAddr::new(ip, q.port))
        else {
            return rebroadcast;
        };
        let source: Arc<str> = Arc::from(q.source_node);
        if q.flags & QUERY_FLAG_ACK != 0 {
            let ack = QueryResponse {
                ltime: q.ltime,
                id: q.id,
                from: &self.name.clone(),
                flags: RESPONSE_FLAG_ACK,
                payload: None,
            };
            let raw = ack.encoded();
            self.deferred.push(Deferred::Send(addr, raw.clone()));
            self.relay(q.relay_factor, addr, &source, &raw);
        }
        self.next_respond = self.next_respond.wrapping_add(1);
        let id = self.next_respond;
        let deadline = now + Duration::from_nanos(u64::try_from(q.timeout_ns).unwrap_or(0));
        self.responders.push(Responder {
            id,
            ltime: q.ltime,
            wire_id: q.id,
            addr,
            source,
            relay_factor: q.relay_factor,
            deadline,
            responded: false,
        });
        self.timers.insert(deadline, Timer::ResponseExpire(id));
        if q.name.starts_with(INTERNAL_PREFIX) {
            self.internal_query(now, q, id);
        } else {
            self.emit(Event::Query(QueryEvent {
                id,
                ltime: q.ltime,
                name: q.name.to_string(),
                payload: q.payload.unwrap_or(&[]).to_vec(),
                deadline,
            }));
        }
        rebroadcast
    }

    /// Every filter must pass (`shouldProcessQuery`); an unknown filter or an
    /// invalid regexp rejects the query.
    fn should_process(&self, q: &Query<'_>) -> bool {
        for f in q.filters() {
            match f {
                Ok(Filter::Node(names)) => {
                    if !names.iter().any(|n| *n == *self.name) {
                        return false;
                    }
                }
                Ok(Filter::Tag { tag, expr }) => {
                    let value = self.config.tags.get(tag).map_or("", String::as_str);
                    match regex::Regex::new(expr) {
                        Ok(re) if re.is_match(value) => {}
                        _ => return false,
                    }
                }
                Err(_) => return false,
            }
        }
        true
    }

    /// Internal queries are answered here and never delivered.
    fn internal_query(&mut self, now: Instant, q: &Query<'_>, respond: u64) {
        let op = &q.name[INTERNAL_PREFIX.len()..];
        match op {
            "ping" => {}
            "conflict" => {
                let node = String::from_utf8_lossy(q.payload.unwrap_or(&[])).into_owned();
                if node == *self.name {
                    return;
                }
                self.log(
                    Level::Debug,
                    "serf",
                    format!("Got conflict resolution query for '{node}'"),
                );
                let raw = match self.members.get(&node) {
                    Some(m) => {
                        let ip = IpOctets::new(&m.member.addr);
                        let wire = wire::serf::Member {
                            name: &m.member.name,
                            addr: Some(ip.as_slice()),
                            port: m.member.port,
                            tags: None,
                            status: m.member.status as i64,
                            protocol_min: m.member.vsn[0],
                            protocol_max: m.member.vsn[1],
                            protocol_cur: m.member.vsn[2],
                            delegate_min: m.member.vsn[3],
                            delegate_max: m.member.vsn[4],
                            delegate_cur: m.member.vsn[5],
                        };
                        let tags = m.member.tags.clone();
                        let mut w = Writer::counting(Dialect::Gossip);
                        let enc = |w: &mut Writer<'_>| -> wire::Result<()> {
                            w.byte(SerfType::ConflictResponse as u8)?;
                            wire.encode_with(
                                w,
                                Some(tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
                            )
                        };
                        let _ = enc(&mut w);
                        let mut out = vec![0u8; w.len()];
                        let _ = enc(&mut Writer::new(&mut out, Dialect::Gossip));
                        out
                    }
                    None => ConflictResponse { member: None }.encoded(),
                };
                if let Err(e) = self.respond(now, respond, &raw) {
                    self.log(
                        Level::Error,
                        "serf",
                        format!("Failed to respond to conflict query: {e}"),
                    );
                }
            }
            "install-key" | "use-key" | "remove-key" | "list-keys" => {
                let op = match op {
                    "install-key" => KeyOp::Install,
                    "use-key" => KeyOp::Use,
                    "remove-key" => KeyOp::Remove,
                    _ => KeyOp::List,
                };
                let key = match q.payload.map(SerfMessage::decode) {
                    Some(Ok(SerfMessage::KeyRequest(r))) => r.key.map(<[u8]>::to_vec),
                    _ => {
                        self.deferred.push(Deferred::Key {
                            op: KeyOp::Invalid,
                            key: None,
                            respond,
                        });
                        return;
                    }
                };
                self.deferred.push(Deferred::Key { op, key, respond });
            }
            _ => {}
        }
    }

    /// Answers a received query (`Query.Respond`).
    pub(super) fn respond(
        &mut self,
        now: Instant,
        id: u64,
        payload: &[u8],
    ) -> Result<(), RespondError> {
        let Some(r) = self.responders.iter_mut().find(|r| r.id == id) else {
            return Err(RespondError::NoSuchQuery);
        };
        // Go's order of checks: size, then already sent, then deadline.
        let resp = QueryResponse {
            ltime: r.ltime,
            id: r.wire_id,
            from: &self.name,
            flags: 0,
            payload: (!payload.is_empty()).then_some(payload),
        };
        let raw = resp.encoded();
        if raw.len() > self.config.query_response_size_limit {
            return Err(RespondError::Failed(super::limits::response_too_large(
                self.config.query_response_size_limit,
            )));
        }
        if r.responded {
            return Err(RespondError::Failed("response already sent".into()));
        }
        if now > r.deadline {
            return Err(RespondError::Failed("response is past the deadline".into()));
        }
        r.responded = true;
        let (addr, source, rf) = (r.addr, r.source.clone(), r.relay_factor);
        self.deferred.push(Deferred::Send(addr, raw.clone()));
        self.relay(rf, addr, &source, &raw);
        Ok(())
    }

    /// Sends `resp` (an encoded query response) through `relay_factor`
    /// random alive members that speak protocol 5 (`relayResponse`).
    fn relay(&mut self, relay_factor: u8, dest: SocketAddr, dest_name: &Arc<str>, resp: &[u8]) {
        let rf = usize::from(relay_factor);
        if rf == 0 || self.members.len() < rf + 1 {
            return;
        }
        let ip = IpOctets::new(&dest.ip());
        let relay = Relay {
            dest_addr: UdpAddr { ip: Some(ip.as_slice()), port: i64::from(dest.port()), zone: "" },
            dest_name,
            inner: resp,
        };
        let raw = relay.encoded();
        if raw.len() > self.config.query_response_size_limit {
            let limit = self.config.query_response_size_limit;
            self.log(
                Level::Error,
                "serf",
                format!("relayed response exceeds limit of {limit} bytes"),
            );
            return;
        }
        // Go's kRandomMembers: up to 3n random picks, filtered and distinct.
        let n = self.members.len();
        let mut picked: Vec<SocketAddr> = Vec::with_capacity(rf);
        let mut names: Vec<Arc<str>> = Vec::with_capacity(rf);
        for _ in 0..3 * n {
            if picked.len() >= rf {
                break;
            }
            let i = self.rng.index(n);
            let Some(m) = self.members.iter().nth(i) else { continue };
            let m = &m.member;
            if m.status != MemberStatus::Alive
                || m.vsn[1] < 5
                || m.name == self.name
                || names.contains(&m.name)
            {
                continue;
            }
            names.push(m.name.clone());
            picked.push(m.socket_addr());
        }
        for addr in picked {
            self.deferred.push(Deferred::Send(addr, raw.clone()));
        }
    }

    /// A response or ack to one of our queries (`handleQueryResponse`).
    pub(super) fn handle_query_response(&mut self, r: &QueryResponse<'_>) {
        let Some(c) = self.collectors.iter_mut().find(|c| c.ltime == r.ltime) else {
            let text = format!(
                "reply for non-running query (LTime: {}, ID: {}) From: {}",
                r.ltime, r.id, r.from
            );
            self.log(Level::Warn, "serf", text);
            return;
        };
        if c.wire_id != r.id {
            let text =
                format!("Query reply ID mismatch (Local: {}, Response: {})", c.wire_id, r.id);
            self.log(Level::Warn, "serf", text);
            return;
        }
        if c.closed {
            return;
        }
        let from: Arc<str> = Arc::from(r.from);
        let (id, consumer) = (c.id, c.consumer);
        if r.flags & RESPONSE_FLAG_ACK != 0 {
            if c.acks.contains(&from) {
                return;
            }
            c.acks.push(from.clone());
            if consumer == Consumer::Events {
                self.emit(Event::QueryAck { id, from });
            }
        } else {
            if c.responses.contains(&from) {
                return;
            }
            c.responses.push(from.clone());
            let payload = r.payload.unwrap_or(&[]);
            match consumer {
                Consumer::Events => {
                    self.emit(Event::QueryResponse { id, from, payload: payload.to_vec() })
                }
                Consumer::Conflict => self.conflict_response(id, payload),
                Consumer::Keys(cmd) => self.key_response(cmd, &from, payload),
            }
        }
    }

    fn conflict_response(&mut self, id: QueryId, payload: &[u8]) {
        let Some(vote) = self.conflict_vote.as_mut().filter(|v| v.id == id) else { return };
        let member = match SerfMessage::decode(payload) {
            Ok(SerfMessage::ConflictResponse(ConflictResponse { member: Some(m) })) => m,
            _ => return,
        };
        vote.responses += 1;
        let ours = (self.config.memberlist.advertise_addr, self.config.memberlist.advertise_port);
        if member.addr.and_then(ip_from_bytes) == Some(ours.0) && member.port == ours.1 {
            vote.matching += 1;
        }
    }

    /// A query we started reached its deadline.
    pub(super) fn query_done(&mut self, _now: Instant, id: QueryId) {
        let Some(pos) = self.collectors.iter().position(|c| c.id == id) else { return };
        let c = self.collectors.swap_remove(pos);
        match c.consumer {
            Consumer::Events => self.emit(Event::QueryDone { id }),
            Consumer::Conflict => {
                let Some(vote) = self.conflict_vote.take() else { return };
                let majority = vote.responses / 2 + 1;
                if vote.matching >= majority {
                    let text = format!(
                        "majority in name conflict resolution [{} / {}]",
                        vote.matching, vote.responses
                    );
                    self.log(Level::Info, "serf", text);
                } else {
                    let text = format!(
                        "minority in name conflict resolution, quitting [{} / {}]",
                        vote.matching, vote.responses
                    );
                    self.log(Level::Warn, "serf", text.clone());
                    self.state = super::State::Shutdown;
                    self.emit(Event::Shutdown { reason: text });
                }
            }
            Consumer::Keys(cmd) => self.key_op_done(cmd),
        }
    }

    /// Forwards a relayed response to its destination.
    pub(super) fn handle_relay(&mut self, r: &Relay<'_>) {
        let Some(ip) = r.dest_addr.ip.and_then(ip_from_bytes) else { return };
        let Ok(port) = u16::try_from(r.dest_addr.port) else { return };
        self.deferred.push(Deferred::Send(SocketAddr::new(ip, port), r.inner.to_vec()));
    }
}
