//! The node table and its state transitions (`protocol/memberlist.md`
//! §11.1, §11.5, §11.8–§11.10): alive, suspect and dead handling,
//! refutation, push-pull merge and reaping.

use std::net::IpAddr;
use std::sync::Arc;

use super::name_key::NameKey;
use super::{Delegate, LogEvent, Memberlist, Node, Suspicion, Timer};
use crate::proto::broadcast::NotifyId;
use crate::time::Instant;
use crate::timer::TimerToken;
use crate::wire::memberlist::{Alive, Body, Dead, NodeState, PushNodeState, Suspect, VSN_LEN};
use crate::wire::msgpack::{Dialect, Writer};

/// A running suspicion timer for one node.
#[derive(Debug)]
pub(super) struct ActiveSuspicion {
    pub node: Arc<str>,
    pub suspicion: Suspicion,
    pub token: TimerToken,
    /// The node's `state_change` when the suspicion started; the timer only
    /// fires if the node is still in that same suspicion.
    pub since: Instant,
}

/// An alive claim, from a packet, a push-pull entry or ourselves.
#[derive(Clone, Copy, Debug)]
pub(super) struct AliveArgs<'a> {
    pub incarnation: u32,
    pub node: &'a str,
    pub addr: IpAddr,
    pub port: u16,
    pub meta: &'a [u8],
    /// `None` when the sender had no version vector (old peers).
    pub vsn: Option<[u8; VSN_LEN]>,
}

/// Parses a 4- or 16-byte address; anything else is unusable.
pub(super) fn ip_from_bytes(b: &[u8]) -> Option<IpAddr> {
    match b.len() {
        4 => {
            let a: [u8; 4] = b.try_into().ok()?;
            Some(IpAddr::from(a))
        }
        16 => {
            let a: [u8; 16] = b.try_into().ok()?;
            let v6 = std::net::Ipv6Addr::from(a);
            // Go's net.IP compares IPv4 and IPv4-mapped IPv6 as equal.
            Some(v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4))
        }
        _ => None,
    }
}

/// The wire form of an address: 4 bytes for IPv4, 16 for IPv6.
pub(super) fn ip_octets(ip: &IpAddr, out: &mut [u8; 16]) -> usize {
    match ip {
        IpAddr::V4(v4) => {
            out[..4].copy_from_slice(&v4.octets());
            4
        }
        IpAddr::V6(v6) => {
            *out = v6.octets();
            16
        }
    }
}

/// Encodes an alive message for `a` into `buf`; returns its length (0 if it
/// did not fit, which a ≤ 512-byte meta never causes).
/// A message larger than this could never fit a gossip packet
/// (`UDPBufferSize` is 1400), so it is refused rather than queued.
const MAX_BROADCAST: usize = 2048;

/// Encodes with `f` into `buf`; the length, or `None` if it did not fit.
fn encode_into(
    buf: &mut [u8],
    f: impl FnOnce(&mut Writer<'_>) -> crate::wire::Result<()>,
) -> Option<usize> {
    let mut w = Writer::new(buf, Dialect::Gossip);
    f(&mut w).ok().map(|()| w.len())
}

fn encode_alive(a: &AliveArgs<'_>, w: &mut Writer<'_>) -> crate::wire::Result<()> {
    let mut ip = [0u8; 16];
    let n = ip_octets(&a.addr, &mut ip);
    let msg = Alive {
        incarnation: a.incarnation,
        node: a.node,
        addr: Some(&ip[..n]),
        port: a.port,
        meta: Some(a.meta),
        vsn: a.vsn.as_ref().map(|v| &v[..]),
    };
    msg.encode(w)
}

impl Memberlist {
    pub(super) fn index_of(&self, name: &str) -> Option<usize> {
        self.index.get(name.as_bytes()).map(|&i| i as usize)
    }

    /// Shared handle to a known node's name (no allocation), or a new one.
    pub(super) fn intern(&self, name: &str) -> Arc<str> {
        match self.index_of(name).and_then(|i| self.nodes.get(i)) {
            Some(n) => n.name.clone(),
            None => Arc::from(name),
        }
    }

    /// Creates our own entry at startup (`setAlive`).
    pub(super) fn set_alive(&mut self, now: Instant, meta: &[u8]) {
        self.incarnation = self.incarnation.wrapping_add(1);
        let name = self.name.clone();
        let a = AliveArgs {
            incarnation: self.incarnation,
            node: &name,
            addr: self.config.advertise_addr,
            port: self.config.advertise_port,
            meta,
            vsn: Some(self.config.vsn),
        };
        self.alive_node(now, &a, None, true, &mut super::NoDelegate);
    }

    /// Inserts a new node at a random position of the probe order.
    fn insert_node(&mut self, node: Node) -> usize {
        let name = node.name.clone();
        self.nodes.push(node);
        let last = self.nodes.len() - 1;
        let j = self.rng.index(self.nodes.len());
        self.nodes.swap(last, j);
        self.index.insert(NameKey::new(&name), j as u32);
        if j != last {
            let moved = NameKey::new(&self.nodes[last].name);
            self.index.insert(moved, last as u32);
        }
        j
    }

    /// Queues a memberlist broadcast named after `node`.
    /// Queues a memberlist broadcast named after `node`, encoded by `encode`.
    fn broadcast(
        &mut self,
        node: &Arc<str>,
        encode: impl FnOnce(&mut Writer<'_>) -> crate::wire::Result<()>,
        notify: Option<NotifyId>,
    ) {
        let mut buf = [0u8; MAX_BROADCAST];
        let len = encode_into(&mut buf, encode);
        self.queue_encoded(node, len.map(|n| &buf[..n]), notify);
    }

    /// Queues an encoded broadcast, or refuses (and counts) one that failed
    /// to encode — never a torn prefix. A waiter learns it was dropped.
    fn queue_encoded(&mut self, node: &Arc<str>, msg: Option<&[u8]>, notify: Option<NotifyId>) {
        match msg {
            Some(m) if !m.is_empty() => self.broadcasts.push(Some(node), m, notify),
            _ => {
                self.stats.broadcasts_too_large = self.stats.broadcasts_too_large.saturating_add(1);
                if let Some(n) = notify {
                    self.emit(super::Event::BroadcastFinished {
                        id: n,
                        how: crate::proto::broadcast::Finished::Dropped,
                    });
                }
            }
        }
    }

    fn broadcast_alive(&mut self, a: &AliveArgs<'_>, name: &Arc<str>, notify: Option<NotifyId>) {
        self.broadcast(name, |w| encode_alive(a, w), notify);
    }

    /// Handles an alive claim (`aliveNode`). `bootstrap` marks our own
    /// startup/update, which is applied rather than refuted.
    pub(super) fn alive_node(
        &mut self,
        now: Instant,
        a: &AliveArgs<'_>,
        notify: Option<NotifyId>,
        bootstrap: bool,
        d: &mut impl Delegate,
    ) {
        let is_local = *a.node == *self.name;
        if self.leaving && is_local {
            return;
        }
        if let Some(v) = a.vsn {
            if v[0] == 0 || v[1] == 0 || v[0] > v[1] {
                return;
            }
        }
        let mut updates_node = false;
        let idx = match self.index_of(a.node) {
            Some(i) => {
                let n = &self.nodes[i];
                if n.addr != a.addr || n.port != a.port {
                    let reclaim = !self.config.dead_node_reclaim_time.is_zero()
                        && now.saturating_since(n.state_change)
                            > self.config.dead_node_reclaim_time;
                    if n.state == NodeState::Left || (n.state == NodeState::Dead && reclaim) {
                        updates_node = true;
                    } else {
                        let other = Node {
                            name: n.name.clone(),
                            addr: a.addr,
                            port: a.port,
                            meta: a.meta.to_vec(),
                            vsn: a.vsn.unwrap_or([0; VSN_LEN]),
                            incarnation: a.incarnation,
                            state: NodeState::Alive,
                            state_change: now,
                        };
                        let existing = n.socket_addr();
                        let name = n.name.clone();
                        d.notify_conflict(now, &self.nodes[i].info(), &other.info());
                        self.log(LogEvent::ConflictingAddress {
                            node: name,
                            existing,
                            other: other.socket_addr(),
                        });
                        return;
                    }
                }
                i
            }
            None => {
                let node = Node {
                    name: Arc::from(a.node),
                    addr: a.addr,
                    port: a.port,
                    meta: a.meta.to_vec(),
                    vsn: a.vsn.unwrap_or([0; VSN_LEN]),
                    incarnation: 0,
                    state: NodeState::Dead,
                    state_change: now,
                };
                self.insert_node(node)
            }
        };
        let known = self.nodes[idx].incarnation;
        if a.incarnation <= known && !is_local && !updates_node {
            return;
        }
        if a.incarnation < known && is_local {
            return;
        }
        let name = self.nodes[idx].name.clone();
        self.cancel_suspicion(&name);
        let old_state = self.nodes[idx].state;
        if !bootstrap && is_local {
            let n = &self.nodes[idx];
            if a.incarnation == n.incarnation && a.meta == &n.meta[..] && a.vsn == Some(n.vsn) {
                return;
            }
            self.refute(now, idx, a.incarnation);
            self.log(LogEvent::Refuting { what: "alive", from: name });
            return;
        }
        self.broadcast_alive(a, &name, notify);
        let meta_changed = {
            let n = &mut self.nodes[idx];
            if let Some(v) = a.vsn {
                n.vsn = v;
            }
            n.incarnation = a.incarnation;
            let changed = n.meta != a.meta;
            if changed {
                n.meta.clear();
                n.meta.extend_from_slice(a.meta);
            }
            n.addr = a.addr;
            n.port = a.port;
            if n.state != NodeState::Alive {
                n.state = NodeState::Alive;
                n.state_change = now;
            }
            changed
        };
        if is_local {
            self.incarnation = self.incarnation.max(a.incarnation);
        }
        if matches!(old_state, NodeState::Dead | NodeState::Left) {
            d.notify_join(now, &self.nodes[idx].info());
        } else if meta_changed {
            d.notify_update(now, &self.nodes[idx].info());
        }
    }

    /// Raises our incarnation above `accused` and broadcasts an alive (`refute`).
    fn refute(&mut self, _now: Instant, idx: usize, accused: u32) {
        let mut inc = self.incarnation.wrapping_add(1);
        if accused >= inc {
            inc = accused.wrapping_add(1);
        }
        self.incarnation = inc;
        self.nodes[idx].incarnation = inc;
        self.awareness.apply_delta(1);
        self.stats.refutations = self.stats.refutations.saturating_add(1);
        let n = &self.nodes[idx];
        let a = AliveArgs {
            incarnation: inc,
            node: &n.name,
            addr: n.addr,
            port: n.port,
            meta: &n.meta,
            vsn: Some(n.vsn),
        };
        // Encode while borrowing the entry (no copy of its meta), then queue.
        let mut buf = [0u8; MAX_BROADCAST];
        let len = encode_into(&mut buf, |w| encode_alive(&a, w));
        let name = n.name.clone();
        self.queue_encoded(&name, len.map(|l| &buf[..l]), None);
    }

    /// Handles a suspicion (`suspectNode`).
    pub(super) fn suspect_node(&mut self, now: Instant, s: &Suspect<'_>) {
        let Some(idx) = self.index_of(s.node) else { return };
        if s.incarnation < self.nodes[idx].incarnation {
            return;
        }
        let name = self.nodes[idx].name.clone();
        if let Some(pos) = self.suspicions.iter().position(|x| *x.node == *s.node) {
            let from = self.intern(s.from);
            if let Some(deadline) = self.suspicions[pos].suspicion.confirm(&from) {
                let token = self.suspicions[pos].token;
                if !self.timers.reschedule(token, deadline.max(now)) {
                    self.suspicions[pos].token =
                        self.timers.insert(deadline.max(now), Timer::Suspicion(name.clone()));
                }
                self.broadcast_suspect(&name, s);
            }
            return;
        }
        if self.nodes[idx].state != NodeState::Alive {
            return;
        }
        if *name == *self.name {
            self.refute(now, idx, s.incarnation);
            let from = self.intern(s.from);
            self.log(LogEvent::Refuting { what: "suspect", from });
            return;
        }
        self.broadcast_suspect(&name, s);
        let n = &mut self.nodes[idx];
        n.incarnation = s.incarnation;
        n.state = NodeState::Suspect;
        n.state_change = now;
        self.stats.suspicions = self.stats.suspicions.saturating_add(1);
        let from = self.intern(s.from);
        let (suspicion, deadline) = Suspicion::new(
            from,
            now,
            self.nodes.len(),
            self.config.suspicion_mult,
            self.config.suspicion_max_timeout_mult,
            self.config.probe_interval,
        );
        let token = self.timers.insert(deadline, Timer::Suspicion(name.clone()));
        self.suspicions.push(ActiveSuspicion { node: name, suspicion, token, since: now });
    }

    fn broadcast_suspect(&mut self, name: &Arc<str>, s: &Suspect<'_>) {
        let msg = *s;
        self.broadcast(name, |w| msg.encode(w), None);
    }

    /// A suspicion timer fired: declare the node dead if it is still in
    /// the same suspicion.
    pub(super) fn suspicion_expired(
        &mut self,
        now: Instant,
        node: &Arc<str>,
        d: &mut impl Delegate,
    ) {
        let Some(pos) = self.suspicions.iter().position(|x| x.node == *node) else { return };
        let s = self.suspicions.swap_remove(pos);
        let Some(idx) = self.index_of(node) else { return };
        let n = &self.nodes[idx];
        if n.state != NodeState::Suspect || n.state_change != s.since {
            return;
        }
        let inc = n.incarnation;
        self.log(LogEvent::MarkedDead {
            node: node.clone(),
            confirmations: s.suspicion.confirmations(),
        });
        let me = self.name.clone();
        self.dead_node(now, inc, node, &me, d);
    }

    pub(super) fn cancel_suspicion(&mut self, node: &str) {
        if let Some(pos) = self.suspicions.iter().position(|x| *x.node == *node) {
            let s = self.suspicions.swap_remove(pos);
            self.timers.cancel(s.token);
        }
    }

    /// Handles a death or leave claim (`deadNode`); `from == node` is a leave.
    pub(super) fn dead_node(
        &mut self,
        now: Instant,
        incarnation: u32,
        node: &str,
        from: &str,
        d: &mut impl Delegate,
    ) {
        let Some(idx) = self.index_of(node) else { return };
        if incarnation < self.nodes[idx].incarnation {
            return;
        }
        self.cancel_suspicion(node);
        if self.nodes[idx].dead_or_left() {
            return;
        }
        let name = self.nodes[idx].name.clone();
        let msg = Dead { incarnation, node, from };
        if *name == *self.name {
            if !self.leaving {
                self.refute(now, idx, incarnation);
                let from = self.intern(from);
                self.log(LogEvent::Refuting { what: "dead", from });
                return;
            }
            let notify = self.leave_notify;
            self.broadcast(&name, |w| msg.encode(w), notify);
        } else {
            self.broadcast(&name, |w| msg.encode(w), None);
        }
        let n = &mut self.nodes[idx];
        n.incarnation = incarnation;
        n.state = if node == from { NodeState::Left } else { NodeState::Dead };
        n.state_change = now;
        if n.state == NodeState::Dead {
            self.stats.deaths = self.stats.deaths.saturating_add(1);
        }
        d.notify_leave(now, &self.nodes[idx].info());
    }

    /// Handles a received alive message.
    pub(super) fn handle_alive(&mut self, now: Instant, m: &Alive<'_>, d: &mut impl Delegate) {
        let Some(addr) = m.addr.and_then(ip_from_bytes) else {
            self.stats.malformed = self.stats.malformed.saturating_add(1);
            return;
        };
        let a = AliveArgs {
            incarnation: m.incarnation,
            node: m.node,
            addr,
            port: m.port,
            meta: m.meta.unwrap_or(&[]),
            vsn: crate::wire::memberlist::vsn_array(m.vsn),
        };
        self.alive_node(now, &a, None, false, d);
    }

    /// Checks that every entry's versions fit the cluster-wide range
    /// (`verifyProtocol`, §9): bounds over alive entries, check over all.
    pub(super) fn verify_protocol<'a>(
        &self,
        remote: impl Iterator<Item = PushNodeState<'a>> + Clone,
    ) -> Result<(), String> {
        let (mut maxpmin, mut minpmax, mut maxdmin, mut mindmax) = (0u8, u8::MAX, 0u8, u8::MAX);
        let mut bound = |v: &[u8]| {
            maxpmin = maxpmin.max(v[0]);
            minpmax = minpmax.min(v[1]);
            maxdmin = maxdmin.max(v[3]);
            mindmax = mindmax.min(v[4]);
        };
        for r in remote.clone() {
            if r.state != NodeState::Alive {
                continue;
            }
            if let Some(v) = crate::wire::memberlist::vsn_array(r.vsn) {
                bound(&v);
            }
        }
        for n in &self.nodes {
            if n.state == NodeState::Alive {
                bound(&n.vsn);
            }
        }
        let check = |name: &str, pcur: u8, dcur: u8| -> Result<(), String> {
            if pcur < maxpmin || pcur > minpmax {
                return Err(format!(
                    "Node '{name}' protocol version ({pcur}) is incompatible: [{maxpmin}, {minpmax}]"
                ));
            }
            if dcur < maxdmin || dcur > mindmax {
                return Err(format!(
                    "Node '{name}' delegate protocol version ({dcur}) is incompatible: [{maxdmin}, {mindmax}]"
                ));
            }
            Ok(())
        };
        for r in remote {
            let v = crate::wire::memberlist::vsn_array(r.vsn).unwrap_or([0; VSN_LEN]);
            check(r.name, v[2], v[5])?;
        }
        for n in &self.nodes {
            check(&n.name, n.vsn[2], n.vsn[5])?;
        }
        Ok(())
    }

    /// Applies a remote node table (`mergeState`, §11.9).
    pub(super) fn merge_state<'a>(
        &mut self,
        now: Instant,
        remote: impl Iterator<Item = PushNodeState<'a>>,
        d: &mut impl Delegate,
    ) {
        for r in remote {
            match r.state {
                NodeState::Alive => {
                    let Some(addr) = r.addr.and_then(ip_from_bytes) else { continue };
                    let port = if r.port == 0 { self.config.advertise_port } else { r.port };
                    let a = AliveArgs {
                        incarnation: r.incarnation,
                        node: r.name,
                        addr,
                        port,
                        meta: r.meta.unwrap_or(&[]),
                        vsn: crate::wire::memberlist::vsn_array(r.vsn),
                    };
                    self.alive_node(now, &a, None, false, d);
                }
                NodeState::Left => self.dead_node(now, r.incarnation, r.name, r.name, d),
                NodeState::Dead | NodeState::Suspect => {
                    let me = self.name.clone();
                    self.suspect_node(
                        now,
                        &Suspect { incarnation: r.incarnation, node: r.name, from: &me },
                    );
                }
            }
        }
    }

    /// When the probe order wraps: reap nodes dead for longer than
    /// `GossipToTheDeadTime` (never ourselves, never left nodes) and shuffle.
    pub(super) fn reset_nodes(&mut self, now: Instant) {
        let ttl = self.config.gossip_to_the_dead_time;
        let me = self.name.clone();
        let before = self.nodes.len();
        self.nodes.retain(|n| {
            !(n.state == NodeState::Dead
                && now.saturating_since(n.state_change) > ttl
                && n.name != me)
        });
        self.rng.shuffle(&mut self.nodes);
        if self.nodes.len() != before {
            // Rebuild instead of searching `nodes` for every key (O(N) rather
            // than O(N²)); the map keeps its capacity and the keys are the
            // nodes' own `Arc`s, so nothing is allocated.
            self.index.clear();
            for (i, n) in self.nodes.iter().enumerate() {
                self.index.insert(NameKey::new(&n.name), i as u32);
            }
        } else {
            for (i, n) in self.nodes.iter().enumerate() {
                if let Some(slot) = self.index.get_mut(n.name.as_bytes()) {
                    *slot = i as u32;
                }
            }
        }
    }
}
