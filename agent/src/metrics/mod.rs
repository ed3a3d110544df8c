//! The agent's metrics: one registry read on scrape, several exporters.
//!
//! Nothing is counted on the packet path that was not counted already: the
//! engine's own counters (`proto` memberlist and Serf stats, plain integers
//! owned by the instance) and the runtime's per-worker counters (published
//! with relaxed atomic stores once per loop iteration) are read when
//! [`Registry::collect`] runs, with one short call into the engine thread.
//! The agent side (event pipeline, handlers, RPC, HTTP, DNS; never the
//! packet path) counts into [`Counters`], relaxed atomics without a lock.
//!
//! [`Registry::collect`] returns plain [`Sample`]s; the exporters format
//! them: [`prometheus`] (text exposition 0.0.4 through `prometheus-client`),
//! [`json`] (Consul's `/v1/agent/metrics` shape); a statsd/statsite sink
//! can read the same samples.
//!
//! Names follow Go Serf and memberlist telemetry where a counterpart exists
//! (`serf.member.join`, `memberlist.udp.received`, `memberlist.probeNode`,
//! ...); ours use the `engine.` (runtime workers) and `agent.` prefixes.
//! Values are cumulative since the agent started (Go's in-memory sink
//! reports 10 s intervals instead).

pub mod json;
pub mod prometheus;

use std::sync::atomic::{AtomicU64, Ordering};

use crate::agent::AgentHandle;

/// Agent-side counters and gauges (relaxed atomics).
#[derive(Debug, Default)]
pub struct Counters {
    pub member_join: AtomicU64,
    pub member_left: AtomicU64,
    pub member_failed: AtomicU64,
    pub member_update: AtomicU64,
    pub member_reap: AtomicU64,
    /// User events received.
    pub events: AtomicU64,
    /// Queries received.
    pub queries: AtomicU64,
    /// Acks and responses to queries we started.
    pub query_acks: AtomicU64,
    pub query_responses: AtomicU64,
    /// Records dropped for RPC streams that fell behind.
    pub stream_drops: AtomicU64,
    /// Handler scripts started, and events dropped at the full backlog.
    pub handler_runs: AtomicU64,
    pub handler_drops: AtomicU64,
    /// RPC clients connected now (gauge).
    pub rpc_clients: AtomicU64,
    /// HTTP requests answered, of which with a 4xx/5xx status.
    pub http_requests: AtomicU64,
    pub http_errors: AtomicU64,
    /// HTTP connections open now, and blocking queries waiting now (gauges).
    pub http_connections: AtomicU64,
    pub http_blocking: AtomicU64,
    /// HTTP connections refused at the connection limit.
    pub http_rejected: AtomicU64,
    /// DNS queries answered (UDP and TCP), with NXDOMAIN, with an error
    /// code (FORMERR, NOTIMP, REFUSED, SERVFAIL), and truncated.
    pub dns_queries: AtomicU64,
    pub dns_nxdomain: AtomicU64,
    pub dns_errors: AtomicU64,
    pub dns_truncated: AtomicU64,
    /// DNS packets or TCP messages that could not be parsed at all.
    pub dns_malformed: AtomicU64,
    /// DNS TCP connections open now (gauge).
    pub dns_tcp_connections: AtomicU64,
}

impl Counters {
    /// Adds one.
    pub fn inc(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds `n`.
    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    /// Subtracts one from a gauge (never below zero).
    pub fn dec(c: &AtomicU64) {
        let _ = c.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| Some(v.saturating_sub(1)));
    }

    fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

/// A sample's value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value {
    /// A counter: `count` increments adding up to `sum` (equal for counts
    /// of events; for bytes, `count` is packets and `sum` bytes).
    Counter { count: u64, sum: u64 },
    /// A gauge.
    Gauge(f64),
    /// A timing: `count` measurements adding up to `sum_ms` milliseconds.
    Timer { count: u64, sum_ms: f64 },
}

/// One metric as of the scrape.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    /// The Go-style dotted name (`serf.member.join`).
    pub name: &'static str,
    /// What it counts, with its unit.
    pub help: &'static str,
    pub value: Value,
}

impl Sample {
    fn count(name: &'static str, help: &'static str, n: u64) -> Sample {
        Sample { name, help, value: Value::Counter { count: n, sum: n } }
    }

    fn bytes(name: &'static str, help: &'static str, count: u64, sum: u64) -> Sample {
        Sample { name, help, value: Value::Counter { count, sum } }
    }

    fn gauge(name: &'static str, help: &'static str, v: f64) -> Sample {
        Sample { name, help, value: Value::Gauge(v) }
    }

    fn timer(name: &'static str, help: &'static str, count: u64, sum_us: u64) -> Sample {
        Sample { name, help, value: Value::Timer { count, sum_ms: sum_us as f64 / 1000.0 } }
    }
}

/// The agent's metrics, read on demand.
#[derive(Clone, Debug)]
pub struct Registry {
    agent: AgentHandle,
}

impl Registry {
    /// The registry of `agent`.
    pub fn new(agent: AgentHandle) -> Registry {
        Registry { agent }
    }

    /// Every metric now. Costs one short call into the engine thread and
    /// one read of the runtime's published counters.
    pub fn collect(&self) -> Vec<Sample> {
        let mut out = Vec::with_capacity(96);
        let c = self.agent.counters();
        let g = Counters::get;
        // Serf (counted by the agent from the engine's events, as Go counts them).
        out.push(Sample::count("serf.member.join", "Members that joined", g(&c.member_join)));
        out.push(Sample::count("serf.member.left", "Members that left", g(&c.member_left)));
        out.push(Sample::count("serf.member.failed", "Members that failed", g(&c.member_failed)));
        out.push(Sample::count("serf.member.update", "Members updated", g(&c.member_update)));
        out.push(Sample::count("serf.member.reap", "Members reaped", g(&c.member_reap)));
        out.push(Sample::count("serf.events", "User events received", g(&c.events)));
        out.push(Sample::count("serf.queries", "Queries received", g(&c.queries)));
        out.push(Sample::count("serf.query_acks", "Acks to our queries", g(&c.query_acks)));
        out.push(Sample::count(
            "serf.query_responses",
            "Responses to our queries",
            g(&c.query_responses),
        ));
        let view = self.agent.view().snapshot();
        let (alive, leaving, left, failed) = view.counts();
        out.push(Sample::gauge("serf.members.alive", "Members alive", alive as f64));
        out.push(Sample::gauge("serf.members.leaving", "Members leaving", leaving as f64));
        out.push(Sample::gauge("serf.members.left", "Members left, not yet reaped", left as f64));
        out.push(Sample::gauge(
            "serf.members.failed",
            "Members failed, not yet reaped",
            failed as f64,
        ));
        out.push(Sample::gauge(
            "agent.view.index",
            "The membership view index (X-Consul-Index)",
            self.agent.view().index() as f64,
        ));
        if let Some(e) = self.agent.engine_stats() {
            let (s, m) = (e.serf, e.memberlist);
            out.push(Sample::gauge("serf.queue.Intent", "Intents queued", s.intent_queue as f64));
            out.push(Sample::gauge("serf.queue.Event", "User events queued", s.event_queue as f64));
            out.push(Sample::gauge("serf.queue.Query", "Queries queued", s.query_queue as f64));
            out.push(Sample::count(
                "serf.queue.pruned",
                "Broadcasts dropped by the queue depth guard",
                s.queue_pruned,
            ));
            out.push(Sample::count(
                "serf.queue.events.drops",
                "Serf events dropped at the full event queue",
                s.events_dropped,
            ));
            if let Some(r) = s.coordinate_resets {
                out.push(Sample::count("serf.coordinate.resets", "Coordinate resets", r));
            }
            out.push(Sample::gauge(
                "memberlist.health.score",
                "Lifeguard awareness (0 = healthy)",
                f64::from(s.health_score),
            ));
            out.push(Sample::gauge(
                "memberlist.queue.broadcasts",
                "Memberlist broadcasts queued",
                e.broadcast_queue as f64,
            ));
            out.push(Sample::bytes(
                "memberlist.udp.received",
                "Gossip datagrams (count) and bytes (sum) received",
                m.datagrams_received,
                m.bytes_received,
            ));
            out.push(Sample::bytes(
                "memberlist.udp.sent",
                "Gossip datagrams (count) and bytes (sum) sent",
                m.datagrams_sent,
                m.bytes_sent,
            ));
            out.push(Sample::count(
                "memberlist.msg.suspect",
                "Nodes we marked suspect",
                m.suspicions,
            ));
            out.push(Sample::count("memberlist.msg.dead", "Nodes we marked dead", m.deaths));
            out.push(Sample::count(
                "memberlist.msg.refute",
                "Claims about us we refuted",
                m.refutations,
            ));
            out.push(Sample::timer(
                "memberlist.probeNode",
                "Probes and their duration (ping to ack or end of window), ms",
                m.probes,
                m.probe_time_us,
            ));
            out.push(Sample::count(
                "memberlist.probe.failures",
                "Probes that ended without an ack",
                m.probe_failures,
            ));
            out.push(Sample::timer(
                "memberlist.probe.rtt",
                "Direct acks of our probes and their round-trip time, ms",
                m.probe_acks,
                m.probe_rtt_us,
            ));
            out.push(Sample::count(
                "memberlist.probe.nacks",
                "Nacks to our indirect probes",
                m.nacks,
            ));
            out.push(Sample::count("memberlist.gossip.rounds", "Gossip rounds", m.gossip_rounds));
            out.push(Sample::count(
                "memberlist.pushPull",
                "Push-pull exchanges started (periodic and joins)",
                m.push_pulls,
            ));
            out.push(Sample::count(
                "memberlist.packet.malformed",
                "Datagrams or messages that failed to decode, decrypt or verify",
                m.malformed,
            ));
            out.push(Sample::count(
                "memberlist.packet.decrypt_failed",
                "Datagrams no key could decrypt",
                m.decrypt_failed,
            ));
            out.push(Sample::count(
                "memberlist.ping.wrong_node",
                "Pings for another node name",
                m.ping_wrong_node,
            ));
            out.push(Sample::count(
                "memberlist.stream.errors",
                "Streams refused or failed",
                m.stream_errors,
            ));
            out.push(Sample::count(
                "memberlist.queue.send.drops",
                "Datagrams dropped at the full send queue",
                m.send_queue_full,
            ));
            out.push(Sample::count(
                "memberlist.queue.events.drops",
                "Memberlist events dropped at the full event queue",
                m.events_dropped,
            ));
            out.push(Sample::count(
                "memberlist.broadcast.too_large",
                "Broadcasts refused as larger than a gossip packet",
                m.broadcasts_too_large,
            ));
        }
        if let Some(w) = self.agent.runtime_stats() {
            out.push(Sample::count(
                "memberlist.tcp.accept",
                "Inbound streams served",
                w.streams_in,
            ));
            out.push(Sample::count("memberlist.tcp.connect", "Outbound streams", w.streams_out));
            out.push(Sample::count(
                "engine.tcp.errors",
                "Streams failed or aborted",
                w.stream_errors,
            ));
            out.push(Sample::count(
                "engine.tcp.deferred",
                "Times inbound streams waited at the stream limit",
                w.inbound_deferred,
            ));
            out.push(Sample::gauge(
                "engine.tcp.connections",
                "TCP connections open",
                w.connections as f64,
            ));
            out.push(Sample::bytes(
                "engine.udp.in",
                "Datagrams (count) and bytes (sum) read from the socket",
                w.datagrams_in,
                w.bytes_in,
            ));
            out.push(Sample::bytes(
                "engine.udp.out",
                "Datagrams (count) and bytes (sum) written to the socket",
                w.datagrams_out,
                w.bytes_out,
            ));
            out.push(Sample::count(
                "engine.udp.send_drops",
                "Datagrams dropped because the send failed",
                w.send_drops,
            ));
            out.push(Sample::count("engine.udp.recv_errors", "Receive errors", w.recv_errors));
            out.push(Sample::count(
                "engine.events.drops",
                "Engine events dropped at the full agent event channel",
                w.event_drops,
            ));
            out.push(Sample::count("engine.commands", "Commands run on the worker", w.commands));
            out.push(Sample::count("engine.polls", "Worker loop iterations", w.polls));
            out.push(Sample::count("engine.timers.fired", "Timers fired", w.timers_fired));
            out.push(Sample::count(
                "engine.timers.late",
                "Timers that fired more than 10 ms after their deadline",
                w.timer_lag_over_10ms,
            ));
            out.push(Sample::gauge(
                "engine.timers.lag_max_ms",
                "Largest timer lag since start, ms",
                w.timer_lag_max_us as f64 / 1000.0,
            ));
        }
        out.push(Sample::count(
            "agent.rpc.stream_drops",
            "Records dropped for RPC streams that fell behind",
            g(&c.stream_drops),
        ));
        out.push(Sample::gauge(
            "agent.rpc.clients",
            "RPC clients connected",
            g(&c.rpc_clients) as f64,
        ));
        out.push(Sample::count(
            "agent.handler.runs",
            "Event handler scripts run",
            g(&c.handler_runs),
        ));
        out.push(Sample::count(
            "agent.handler.drops",
            "Events dropped at the full handler backlog",
            g(&c.handler_drops),
        ));
        out.push(Sample::count(
            "agent.http.requests",
            "HTTP requests answered",
            g(&c.http_requests),
        ));
        out.push(Sample::count(
            "agent.http.errors",
            "HTTP requests answered with a 4xx or 5xx status",
            g(&c.http_errors),
        ));
        out.push(Sample::count(
            "agent.http.rejected",
            "HTTP connections refused at the connection limit",
            g(&c.http_rejected),
        ));
        out.push(Sample::gauge(
            "agent.http.connections",
            "HTTP connections open",
            g(&c.http_connections) as f64,
        ));
        out.push(Sample::gauge(
            "agent.http.blocking",
            "Blocking queries waiting",
            g(&c.http_blocking) as f64,
        ));
        out.push(Sample::count("agent.dns.queries", "DNS queries answered", g(&c.dns_queries)));
        out.push(Sample::count("agent.dns.nxdomain", "DNS answers NXDOMAIN", g(&c.dns_nxdomain)));
        out.push(Sample::count(
            "agent.dns.errors",
            "DNS answers FORMERR, NOTIMP, REFUSED or SERVFAIL",
            g(&c.dns_errors),
        ));
        out.push(Sample::count(
            "agent.dns.truncated",
            "DNS answers truncated (TC)",
            g(&c.dns_truncated),
        ));
        out.push(Sample::count(
            "agent.dns.malformed",
            "DNS messages that could not be parsed",
            g(&c.dns_malformed),
        ));
        out.push(Sample::gauge(
            "agent.dns.tcp_connections",
            "DNS TCP connections open",
            g(&c.dns_tcp_connections) as f64,
        ));
        out
    }
}
