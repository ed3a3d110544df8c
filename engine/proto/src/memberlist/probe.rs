//! Failure detection (`protocol/memberlist.md` §11.2, §11.3, §11.6, §11.11):
//! the probe round, indirect probes and their helper side, the TCP fallback
//! ping, gossip and periodic push-pull target selection.
//!
//! A probe runs in phases, each ended by a timer or an ack:
//!
//! ```text
//! start ── ping (or ping+suspect) ──► direct ack within ProbeTimeout ──► success (rtt to delegate)
//!   │ ProbeTimeout
//!   ├─► indirect pings to IndirectChecks alive peers (+ TCP ping if PMax ≥ 3)
//!   │   any ack before the deadline (ProbeInterval × awareness) ──► success
//!   │ deadline: TCP ping succeeded ──► success (logged) ; else ──► suspect the node
//! ```
//!
//! Like Go's ticker, a probe tick that arrives while a probe is running is
//! remembered (one at most) and starts the next probe when this one ends.

use std::net::SocketAddr;
use std::sync::Arc;

use smallvec::SmallVec;

use super::streams::StreamKind;
use super::transmit::Send;
use super::{Delegate, LogEvent, Memberlist, Timer};
use crate::time::Instant;
use crate::timer::TimerToken;
use wire::memberlist::{IndirectPing, NodeState, Ping, Suspect};

/// Largest number of indirect probes we help with at once; beyond it the
/// oldest request is abandoned.
const MAX_HELPERS: usize = 256;

#[derive(Debug, Default)]
pub(super) struct ProbeState {
    pub current: Option<Probe>,
    /// A tick arrived while a probe was running.
    pub tick_pending: bool,
    /// Indirect probes we run on behalf of others.
    pub helpers: Vec<Helper>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fallback {
    None,
    Pending,
    Succeeded,
    Failed,
}

#[derive(Debug)]
pub(super) struct Probe {
    pub seq: u32,
    pub target: Arc<str>,
    /// The target's incarnation when the probe started (the suspicion uses it).
    pub incarnation: u32,
    pub sent: Instant,
    pub indirect: bool,
    pub expected_nacks: u32,
    pub nacks: u32,
    pub fallback: Fallback,
    pub deadline_passed: bool,
    pub timers: SmallVec<[TimerToken; 3]>,
}

#[derive(Debug)]
pub(super) struct Helper {
    /// Our sequence number for the forwarded ping.
    pub local_seq: u32,
    pub requester: SocketAddr,
    /// The requester's sequence number, echoed in our ack/nack.
    pub req_seq: u32,
    pub nack: bool,
    pub token: TimerToken,
}

impl Memberlist {
    /// Up to `k` distinct random node indices not rejected by `exclude`,
    /// trying at most `3 × len` random picks (exhaustive for small tables).
    pub(super) fn k_random_nodes(
        &mut self,
        k: usize,
        mut exclude: impl FnMut(&super::Node) -> bool,
    ) -> SmallVec<[usize; 8]> {
        let n = self.nodes.len();
        let mut out = SmallVec::new();
        let mut tries = 0usize;
        while tries < 3 * n && out.len() < k {
            tries += 1;
            let i = self.rng.index(n);
            if self.nodes.get(i).is_none_or(&mut exclude) || out.contains(&i) {
                continue;
            }
            out.push(i);
        }
        out
    }

    /// A probe tick: start the next probe, or remember the tick.
    pub(super) fn probe_tick(&mut self, now: Instant, d: &mut impl Delegate) {
        if self.probe.current.is_some() {
            self.probe.tick_pending = true;
            return;
        }
        self.start_probe(now, d);
    }

    /// Picks the next node in probe order (reaping and shuffling on wrap).
    fn start_probe(&mut self, now: Instant, _d: &mut impl Delegate) {
        let mut checked = 0usize;
        loop {
            if checked >= self.nodes.len() {
                return;
            }
            let Some(n) = self.nodes.get(self.probe_index) else {
                // Past the end: a new round, in a new order.
                self.reset_nodes(now);
                self.probe_index = 0;
                checked += 1;
                continue;
            };
            let skip = n.name == self.name || n.dead_or_left();
            self.probe_index += 1;
            if skip {
                checked += 1;
                continue;
            }
            let idx = self.probe_index - 1;
            self.probe_node(now, idx);
            return;
        }
    }

    fn probe_node(&mut self, now: Instant, idx: usize) {
        let interval = self.awareness.scale(self.config.probe_interval);
        let Some(node) = self.nodes.get(idx) else { return };
        let (target, to, incarnation, state, pmax) =
            (node.name.clone(), node.socket_addr(), node.incarnation, node.state, node.pmax());
        let seq = self.next_seq();
        if state == NodeState::Alive {
            self.queue(Send::Ping { to, seq, node: target.clone() });
        } else {
            self.queue(Send::PingSuspect {
                to,
                seq,
                node: target.clone(),
                incarnation,
                crc: pmax >= 5,
            });
        }
        let mut timers = SmallVec::new();
        timers.push(self.timers.insert(now + self.config.probe_timeout, Timer::ProbeTimeout(seq)));
        timers.push(self.timers.insert(now + interval, Timer::ProbeDeadline(seq)));
        self.probe.current = Some(Probe {
            seq,
            target,
            incarnation,
            sent: now,
            indirect: false,
            expected_nacks: 0,
            nacks: 0,
            fallback: Fallback::None,
            deadline_passed: false,
            timers,
        });
    }

    fn current_probe(&mut self, seq: u32) -> Option<&mut Probe> {
        self.probe.current.as_mut().filter(|p| p.seq == seq)
    }

    /// No direct ack within `ProbeTimeout`: ask helpers, try TCP.
    pub(super) fn probe_direct_timeout(&mut self, now: Instant, seq: u32) {
        let Some(p) = self.current_probe(seq) else { return };
        p.indirect = true;
        let target = p.target.clone();
        let Some(t) = self.index_of(&target).and_then(|i| self.nodes.get(i)) else { return };
        let (taddr, tpmax) = (t.socket_addr(), t.pmax());
        let me = self.name.clone();
        let peers = self.k_random_nodes(self.config.indirect_checks, |n| {
            n.name == me || n.name == target || n.state != NodeState::Alive
        });
        let mut expected = 0u32;
        for i in peers {
            let Some(peer) = self.nodes.get(i) else { continue };
            let (to, nack) = (peer.socket_addr(), peer.pmax() >= 4);
            expected += u32::from(nack);
            self.queue(Send::IndirectPing { to, seq, target: taddr, node: target.clone(), nack });
        }
        let deadline = self
            .probe
            .current
            .as_ref()
            .map_or(now, |p| p.sent + self.awareness.scale(self.config.probe_interval));
        let tcp = !self.config.disable_tcp_pings && tpmax >= 3;
        let started = tcp
            && self.start_stream(
                now,
                taddr,
                deadline,
                StreamKind::Ping { seq, node: target.clone() },
            );
        if let Some(p) = self.current_probe(seq) {
            p.expected_nacks = expected;
            if started {
                p.fallback = Fallback::Pending;
            }
        }
    }

    /// The probe window ended without an ack.
    pub(super) fn probe_deadline(&mut self, now: Instant, seq: u32, d: &mut impl Delegate) {
        let Some(p) = self.current_probe(seq) else { return };
        p.deadline_passed = true;
        match p.fallback {
            Fallback::Pending => {
                // The TCP ping shares this deadline; give the runtime a
                // moment to report it, as Go drains its fallback channel.
                let token = self
                    .timers
                    .insert(now + core::time::Duration::from_millis(250), Timer::ProbeGrace(seq));
                if let Some(p) = self.current_probe(seq) {
                    p.timers.push(token);
                }
            }
            Fallback::Succeeded => self.finish_probe(now, true, true, d),
            Fallback::None | Fallback::Failed => self.finish_probe(now, false, false, d),
        }
    }

    /// The TCP fallback result never came.
    pub(super) fn probe_grace(&mut self, now: Instant, seq: u32, d: &mut impl Delegate) {
        if self.current_probe(seq).is_some() {
            self.finish_probe(now, false, false, d);
        }
    }

    /// The TCP fallback ping of probe `seq` finished.
    pub(super) fn fallback_result(
        &mut self,
        now: Instant,
        seq: u32,
        ok: bool,
        d: &mut impl Delegate,
    ) {
        let Some(p) = self.current_probe(seq) else { return };
        p.fallback = if ok { super::probe::Fallback::Succeeded } else { Fallback::Failed };
        if p.deadline_passed {
            self.finish_probe(now, ok, ok, d);
        }
    }

    /// Ends the current probe and applies the awareness delta; a failed
    /// probe suspects the target.
    fn finish_probe(&mut self, now: Instant, success: bool, tcp_only: bool, d: &mut impl Delegate) {
        let Some(p) = self.probe.current.take() else { return };
        self.stats.probes = self.stats.probes.saturating_add(1);
        let took = now.as_micros().saturating_sub(p.sent.as_micros());
        self.stats.probe_time_us = self.stats.probe_time_us.saturating_add(took);
        if !success {
            self.stats.probe_failures = self.stats.probe_failures.saturating_add(1);
        }
        for t in p.timers {
            self.timers.cancel(t);
        }
        if success {
            self.awareness.apply_delta(-1);
            if tcp_only {
                self.log(LogEvent::FallbackPingOnly { node: p.target.clone() });
            }
        } else {
            let delta = if p.expected_nacks > 0 {
                p.expected_nacks.saturating_sub(p.nacks) as i32
            } else {
                1
            };
            self.awareness.apply_delta(delta);
            self.log(LogEvent::SuspectNoAcks { node: p.target.clone() });
            let me = self.name.clone();
            let s = Suspect { incarnation: p.incarnation, node: &p.target, from: &me };
            self.suspect_node(now, &s);
        }
        if self.probe.tick_pending {
            self.probe.tick_pending = false;
            self.start_probe(now, d);
        }
    }

    /// An ack arrived: completes our probe, or is forwarded for a helper.
    pub(super) fn handle_ack(
        &mut self,
        now: Instant,
        seq: u32,
        payload: Option<&[u8]>,
        d: &mut impl Delegate,
    ) {
        if let Some(p) = self.current_probe(seq) {
            if !p.indirect {
                let (target, rtt) = (p.target.clone(), now.saturating_since(p.sent));
                let rtt_us = now.as_micros().saturating_sub(p.sent.as_micros());
                self.stats.probe_acks = self.stats.probe_acks.saturating_add(1);
                self.stats.probe_rtt_us = self.stats.probe_rtt_us.saturating_add(rtt_us);
                if let Some(n) = self.index_of(&target).and_then(|i| self.nodes.get(i)) {
                    d.notify_ping_complete(now, &n.info(), rtt, payload.unwrap_or(&[]));
                }
            }
            self.finish_probe(now, true, false, d);
            return;
        }
        if let Some(pos) = self.probe.helpers.iter().position(|h| h.local_seq == seq) {
            let h = self.probe.helpers.swap_remove(pos);
            self.timers.cancel(h.token);
            self.queue(Send::Ack { to: h.requester, seq: h.req_seq, direct: false });
        }
    }

    /// A nack for our probe: the helper is alive, the target did not answer.
    pub(super) fn handle_nack(&mut self, seq: u32) {
        if let Some(p) = self.current_probe(seq) {
            p.nacks = p.nacks.saturating_add(1);
            self.stats.nacks = self.stats.nacks.saturating_add(1);
        }
    }

    /// A ping: answer with an ack carrying the delegate's payload.
    pub(super) fn handle_ping(&mut self, from: SocketAddr, p: &Ping<'_>) {
        if !p.node.is_empty() && *p.node != *self.name {
            self.stats.ping_wrong_node = self.stats.ping_wrong_node.saturating_add(1);
            return;
        }
        let to = reply_addr(p.source_addr, p.source_port).unwrap_or(from);
        self.queue(Send::Ack { to, seq: p.seq_no, direct: true });
    }

    /// Someone asks us to probe a node for them.
    pub(super) fn handle_indirect_ping(
        &mut self,
        now: Instant,
        from: SocketAddr,
        r: &IndirectPing<'_>,
    ) {
        let Some(ip) = r.target.and_then(super::state::ip_from_bytes) else {
            self.stats.malformed = self.stats.malformed.saturating_add(1);
            return;
        };
        let port = if r.port == 0 { self.config.advertise_port } else { r.port };
        let local_seq = self.next_seq();
        let node = self.intern(r.node);
        self.queue(Send::Ping { to: SocketAddr::new(ip, port), seq: local_seq, node });
        let requester = reply_addr(r.source_addr, r.source_port).unwrap_or(from);
        if self.probe.helpers.len() >= MAX_HELPERS {
            let old = self.probe.helpers.remove(0);
            self.timers.cancel(old.token);
        }
        let token =
            self.timers.insert(now + self.config.probe_timeout, Timer::IndirectExpire(local_seq));
        self.probe.helpers.push(Helper {
            local_seq,
            requester,
            req_seq: r.seq_no,
            nack: r.nack,
            token,
        });
    }

    /// Our forwarded ping got no ack in time: nack if asked to.
    pub(super) fn indirect_expired(&mut self, seq: u32) {
        if let Some(pos) = self.probe.helpers.iter().position(|h| h.local_seq == seq) {
            let h = self.probe.helpers.swap_remove(pos);
            if h.nack {
                self.queue(Send::Nack { to: h.requester, seq: h.req_seq });
            }
        }
    }

    /// One gossip round: queue a gossip datagram to up to `GossipNodes`
    /// peers (alive, suspect, or recently dead).
    pub(super) fn gossip(&mut self, now: Instant) {
        self.stats.gossip_rounds = self.stats.gossip_rounds.saturating_add(1);
        let me = self.name.clone();
        let ttl = self.config.gossip_to_the_dead_time;
        let peers = self.k_random_nodes(self.config.gossip_nodes, |n| {
            n.name == me
                || match n.state {
                    NodeState::Alive | NodeState::Suspect => false,
                    NodeState::Dead => now.saturating_since(n.state_change) > ttl,
                    NodeState::Left => true,
                }
        });
        for i in peers {
            let Some(peer) = self.nodes.get(i) else { continue };
            let (to, crc) = (peer.socket_addr(), peer.pmax() >= 5);
            self.queue(Send::Gossip { to, crc });
        }
    }

    /// Periodic anti-entropy with one random alive peer.
    pub(super) fn periodic_push_pull(&mut self, now: Instant) {
        let me = self.name.clone();
        let peers = self.k_random_nodes(1, |n| n.name == me || n.state != NodeState::Alive);
        if let Some(peer) = peers.first().and_then(|&i| self.nodes.get(i)) {
            let addr = peer.socket_addr();
            let deadline = now + self.config.tcp_timeout;
            self.start_stream(now, addr, deadline, StreamKind::PushPull { join: None });
        }
    }
}

/// `SourceAddr:SourcePort` when both are usable.
fn reply_addr(addr: &[u8], port: u16) -> Option<SocketAddr> {
    if port == 0 {
        return None;
    }
    super::state::ip_from_bytes(addr).map(|ip| SocketAddr::new(ip, port))
}
