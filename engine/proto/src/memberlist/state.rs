//! The node table and its state transitions (`protocol/memberlist.md`
//! §11.1, §11.5, §11.8–§11.10): alive, suspect and dead handling,
//! refutation, push-pull merge and reaping.

use std::net::IpAddr;
use std::sync::Arc;

use super::name_key::NameKey;
use super::{Delegate, LogEvent, Memberlist, Node, Suspicion, Timer};
use crate::broadcast::NotifyId;
use crate::time::Instant;
use crate::timer::TimerToken;
use wire::memberlist::{Alive, Body, Dead, NodeState, PushNodeState, Suspect, VSN_LEN};
use wire::msgpack::{Dialect, Writer};

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
pub(crate) fn ip_from_bytes(b: &[u8]) -> Option<IpAddr> {
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
#[derive(Clone, Copy, Debug)]
pub(crate) struct IpOctets {
    bytes: [u8; 16],
    v4: bool,
}

impl IpOctets {
    pub(crate) fn new(ip: &IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => {
                let mut bytes = [0u8; 16];
                bytes[..4].copy_from_slice(&v4.octets());
                IpOctets { bytes, v4: true }
            }
            IpAddr::V6(v6) => IpOctets { bytes: v6.octets(), v4: false },
        }
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        if self.v4 {
            &self.bytes[..4]
        } else {
            &self.bytes
        }
    }
}

/// The largest broadcast memberlist queues: a message larger than this could
/// never fit a gossip packet
/// (`UDPBufferSize` is 1400), so it is refused rather than queued.
const MAX_BROADCAST: usize = 2048;

/// Encodes with `f` into `buf`; the encoded bytes, or `None` if they did
/// not fit.
fn encode_into(
    buf: &mut [u8],
    f: impl FnOnce(&mut Writer<'_>) -> wire::Result<()>,
) -> Option<&[u8]> {
    let mut w = Writer::new(buf, Dialect::Gossip);
    f(&mut w).ok()?;
    let len = w.len();
    buf.get(..len)
}

fn encode_alive(a: &AliveArgs<'_>, w: &mut Writer<'_>) -> wire::Result<()> {
    let ip = IpOctets::new(&a.addr);
    let msg = Alive {
        incarnation: a.incarnation,
        node: a.node,
        addr: Some(ip.as_slice()),
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
        if let Some(moved) = self.nodes.get(last).filter(|_| j != last) {
            self.index.insert(NameKey::new(&moved.name), last as u32);
        }
        j
    }

    /// Queues a memberlist broadcast named after `node`, encoded by `encode`.
    fn broadcast(
        &mut self,
        node: &Arc<str>,
        encode: impl FnOnce(&mut Writer<'_>) -> wire::Result<()>,
        notify: Option<NotifyId>,
    ) {
        let mut buf = [0u8; MAX_BROADCAST];
        let msg = encode_into(&mut buf, encode);
        self.queue_encoded(node, msg, notify);
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
                        how: crate::broadcast::Finished::Dropped,
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
                let Some(n) = self.nodes.get(i) else { return };
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
                        d.notify_conflict(now, &n.info(), &other.info());
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
        let Some(n) = self.nodes.get(idx) else { return };
        let known = n.incarnation;
        if a.incarnation <= known && !is_local && !updates_node {
            return;
        }
        if a.incarnation < known && is_local {
            return;
        }
        let (name, old_state) = (n.name.clone(), n.state);
        self.cancel_suspicion(&name);
        if !bootstrap && is_local {
            // Our own claim repeated as we hold it: nothing to refute.
            let unchanged = self.nodes.get(idx).is_some_and(|n| {
                a.incarnation == n.incarnation && a.meta == &n.meta[..] && a.vsn == Some(n.vsn)
            });
            if unchanged {
                return;
            }
            self.refute(now, idx, a.incarnation);
            self.log(LogEvent::Refuting { what: "alive", from: name });
            return;
        }
        self.broadcast_alive(a, &name, notify);
        let Some(n) = self.nodes.get_mut(idx) else { return };
        let meta_changed = {
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
        let info = n.info();
        if is_local {
            self.incarnation = self.incarnation.max(a.incarnation);
        }
        if matches!(old_state, NodeState::Dead | NodeState::Left) {
            d.notify_join(now, &info);
        } else if meta_changed {
            d.notify_update(now, &info);
        }
    }

    /// Raises our incarnation above `accused` and broadcasts an alive (`refute`).
    fn refute(&mut self, _now: Instant, idx: usize, accused: u32) {
        let mut inc = self.incarnation.wrapping_add(1);
        if accused >= inc {
            inc = accused.wrapping_add(1);
        }
        self.incarnation = inc;
        self.awareness.apply_delta(1);
        self.stats.refutations = self.stats.refutations.saturating_add(1);
        let Some(n) = self.nodes.get_mut(idx) else { return };
        n.incarnation = inc;
        let n = &*n;
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
        let msg = encode_into(&mut buf, |w| encode_alive(&a, w));
        let name = n.name.clone();
        self.queue_encoded(&name, msg, None);
    }

    /// Handles a suspicion (`suspectNode`).
    pub(super) fn suspect_node(&mut self, now: Instant, s: &Suspect<'_>) {
        let Some(idx) = self.index_of(s.node) else { return };
        let Some(n) = self.nodes.get(idx) else { return };
        if s.incarnation < n.incarnation {
            return;
        }
        let (name, state) = (n.name.clone(), n.state);
        if let Some(pos) = self.suspicions.iter().position(|x| *x.node == *s.node) {
            let from = self.intern(s.from);
            let Some(active) = self.suspicions.get_mut(pos) else { return };
            if let Some(deadline) = active.suspicion.confirm(&from) {
                if !self.timers.reschedule(active.token, deadline.max(now)) {
                    active.token =
                        self.timers.insert(deadline.max(now), Timer::Suspicion(name.clone()));
                }
                self.broadcast_suspect(&name, s);
            }
            return;
        }
        if state != NodeState::Alive {
            return;
        }
        if *name == *self.name {
            self.refute(now, idx, s.incarnation);
            let from = self.intern(s.from);
            self.log(LogEvent::Refuting { what: "suspect", from });
            return;
        }
        self.broadcast_suspect(&name, s);
        let Some(n) = self.nodes.get_mut(idx) else { return };
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
        let Some(n) = self.index_of(node).and_then(|i| self.nodes.get(i)) else { return };
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
        let Some(n) = self.nodes.get(idx) else { return };
        if incarnation < n.incarnation {
            return;
        }
        let (name, dead_or_left) = (n.name.clone(), n.dead_or_left());
        self.cancel_suspicion(node);
        if dead_or_left {
            return;
        }
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
        let Some(n) = self.nodes.get_mut(idx) else { return };
        n.incarnation = incarnation;
        n.state = if node == from { NodeState::Left } else { NodeState::Dead };
        n.state_change = now;
        if n.state == NodeState::Dead {
            self.stats.deaths = self.stats.deaths.saturating_add(1);
        }
        d.notify_leave(now, &n.info());
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
            vsn: wire::memberlist::vsn_array(m.vsn),
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
        let mut bound = |v: &[u8; VSN_LEN]| {
            maxpmin = maxpmin.max(v[0]);
            minpmax = minpmax.min(v[1]);
            maxdmin = maxdmin.max(v[3]);
            mindmax = mindmax.min(v[4]);
        };
        for r in remote.clone() {
            if r.state != NodeState::Alive {
                continue;
            }
            if let Some(v) = wire::memberlist::vsn_array(r.vsn) {
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
            let v = wire::memberlist::vsn_array(r.vsn).unwrap_or([0; VSN_LEN]);
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
                        vsn: wire::memberlist::vsn_array(r.vsn),
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
