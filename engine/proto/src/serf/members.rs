//! Serf membership (`protocol/serf.md` §5): statuses driven by memberlist
//! notifications and Lamport-clocked join/leave intents, the intent buffer
//! for unknown nodes, pruning, reaping and reconnect selection.

use std::net::SocketAddr;
use std::sync::Arc;

use super::{
    decode_tags, Encoded, Event, Latency, Level, Member, MemberEventKind, MemberStatus, SerfState,
    State, Timer,
};
use crate::memberlist::NodeInfo;
use crate::time::Instant;
use wire::serf::{Join, Leave};

/// One member and Serf's bookkeeping about it.
#[derive(Clone, Debug)]
pub(super) struct MemberState {
    pub member: Member,
    /// Lamport time of the last intent applied.
    pub status_ltime: u64,
    /// When it failed or left.
    pub leave_time: Option<Instant>,
    /// Recent RTT samples for Vivaldi.
    pub latency: Latency,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum IntentKind {
    Join,
    Leave,
}

#[derive(Clone, Copy, Debug)]
pub(super) struct Intent {
    pub kind: IntentKind,
    pub ltime: u64,
    pub at: Instant,
}

/// The member table: insertion-ordered (deterministic iteration), indexed by name.
#[derive(Debug, Default)]
pub(super) struct Members {
    list: Vec<MemberState>,
    index: ahash::AHashMap<Arc<str>, usize>,
    /// Failed members, in the order they failed.
    pub failed: Vec<Arc<str>>,
    /// Left members, in the order they left.
    pub left: Vec<Arc<str>>,
    /// The newest intent about each node we do not know yet.
    pub intents: ahash::AHashMap<Arc<str>, Intent>,
}

impl Members {
    pub fn len(&self) -> usize {
        self.list.len()
    }
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &MemberState> {
        self.list.iter()
    }
    pub fn get(&self, name: &str) -> Option<&MemberState> {
        self.index.get(name).and_then(|&i| self.list.get(i))
    }
    pub fn get_mut(&mut self, name: &str) -> Option<&mut MemberState> {
        self.index.get(name).and_then(|&i| self.list.get_mut(i))
    }
    fn insert(&mut self, m: MemberState) {
        self.index.insert(m.member.name.clone(), self.list.len());
        self.list.push(m);
    }
    fn remove(&mut self, name: &str) -> Option<MemberState> {
        let i = self.index.remove(name)?;
        let m = self.list.remove(i);
        for j in self.index.values_mut() {
            if *j > i {
                *j -= 1;
            }
        }
        Some(m)
    }
    /// `upsertIntent`: keeps the newest intent per node; true if this one is newer.
    fn upsert_intent(&mut self, node: &str, kind: IntentKind, ltime: u64, now: Instant) -> bool {
        match self.intents.get_mut(node) {
            Some(i) if ltime <= i.ltime => false,
            Some(i) => {
                *i = Intent { kind, ltime, at: now };
                true
            }
            None => {
                self.intents.insert(Arc::from(node), Intent { kind, ltime, at: now });
                true
            }
        }
    }
}

fn remove_name(list: &mut Vec<Arc<str>>, name: &str) {
    list.retain(|n| **n != *name);
}

impl SerfState {
    fn member_event(&mut self, kind: MemberEventKind, member: Member, forced: bool) {
        let label = match kind {
            MemberEventKind::Join => "EventMemberJoin",
            MemberEventKind::Leave if forced => "EventMemberLeave (forced)",
            MemberEventKind::Leave => "EventMemberLeave",
            MemberEventKind::Failed => "EventMemberFailed",
            MemberEventKind::Update => "EventMemberUpdate",
            MemberEventKind::Reap => "EventMemberReap",
        };
        let text = format!("{label}: {} {}", member.name, member.addr);
        self.log(Level::Info, "serf", text);
        self.emit(Event::Member { kind, member });
    }

    /// memberlist says a node became alive (`handleNodeJoin`).
    pub(super) fn node_joined(&mut self, now: Instant, n: &NodeInfo<'_>) {
        let tags = Arc::new(decode_tags(n.meta));
        let old = match self.members.get_mut(n.name) {
            None => {
                let mut status = MemberStatus::Alive;
                let mut status_ltime = 0;
                match self.members.intents.get(&**n.name).copied() {
                    Some(i) if i.kind == IntentKind::Join => status_ltime = i.ltime,
                    Some(i) => {
                        status = MemberStatus::Leaving;
                        status_ltime = i.ltime;
                    }
                    None => {}
                }
                let member = Member {
                    name: n.name.clone(),
                    addr: n.addr.ip(),
                    port: n.addr.port(),
                    tags,
                    status,
                    vsn: n.vsn,
                };
                self.members.insert(MemberState {
                    member,
                    status_ltime,
                    leave_time: None,
                    latency: Latency::default(),
                });
                MemberStatus::None
            }
            Some(m) => {
                let old = m.member.status;
                m.member.status = MemberStatus::Alive;
                m.leave_time = None;
                m.member.addr = n.addr.ip();
                m.member.port = n.addr.port();
                m.member.tags = tags;
                m.member.vsn = n.vsn;
                old
            }
        };
        let _ = now;
        if matches!(old, MemberStatus::Failed | MemberStatus::Left) {
            remove_name(&mut self.members.failed, n.name);
            remove_name(&mut self.members.left, n.name);
        }
        if let Some(m) = self.members.get(n.name) {
            let member = m.member.clone();
            self.member_event(MemberEventKind::Join, member, false);
        }
    }

    /// memberlist says a node died or left (`handleNodeLeave`).
    pub(super) fn node_left(&mut self, now: Instant, n: &NodeInfo<'_>) {
        let Some(m) = self.members.get_mut(n.name) else { return };
        let kind = match m.member.status {
            MemberStatus::Leaving => {
                m.member.status = MemberStatus::Left;
                m.leave_time = Some(now);
                MemberEventKind::Leave
            }
            MemberStatus::Alive => {
                m.member.status = MemberStatus::Failed;
                m.leave_time = Some(now);
                MemberEventKind::Failed
            }
            other => {
                let text = format!("Bad state when leave: {}", other as u8);
                self.log(Level::Warn, "serf", text);
                return;
            }
        };
        let member = m.member.clone();
        match kind {
            MemberEventKind::Leave => self.members.left.push(n.name.clone()),
            _ => self.members.failed.push(n.name.clone()),
        }
        self.member_event(kind, member, false);
    }

    /// memberlist says a node's meta changed (`handleNodeUpdate`).
    pub(super) fn node_updated(&mut self, n: &NodeInfo<'_>) {
        let Some(m) = self.members.get_mut(n.name) else { return };
        m.member.addr = n.addr.ip();
        m.member.port = n.addr.port();
        m.member.tags = Arc::new(decode_tags(n.meta));
        m.member.vsn = n.vsn;
        let member = m.member.clone();
        self.member_event(MemberEventKind::Update, member, false);
    }

    /// A join intent (`handleNodeJoinIntent`); true means rebroadcast it.
    pub(super) fn handle_join_intent(&mut self, now: Instant, j: &Join<'_>) -> bool {
        self.clock.witness(j.ltime);
        let Some(m) = self.members.get_mut(j.node) else {
            return self.members.upsert_intent(j.node, IntentKind::Join, j.ltime, now);
        };
        if j.ltime <= m.status_ltime {
            return false;
        }
        m.status_ltime = j.ltime;
        if m.member.status == MemberStatus::Leaving {
            m.member.status = MemberStatus::Alive;
        }
        true
    }

    /// A leave intent (`handleNodeLeaveIntent`); true means rebroadcast it.
    pub(super) fn handle_leave_intent(&mut self, now: Instant, l: &Leave<'_>) -> bool {
        self.clock.witness(l.ltime);
        let is_self = *l.node == *self.name;
        let alive = self.state == State::Alive;
        let Some(m) = self.members.get_mut(l.node) else {
            return self.members.upsert_intent(l.node, IntentKind::Leave, l.ltime, now);
        };
        if l.ltime <= m.status_ltime {
            return false;
        }
        if is_self && alive {
            // Refute an older leave intent about us with a fresh join intent.
            self.log(Level::Debug, "serf", "Refuting an older leave intent".into());
            self.broadcast_join(now);
            return false;
        }
        m.status_ltime = l.ltime;
        match m.member.status {
            MemberStatus::Alive => {
                m.member.status = MemberStatus::Leaving;
            }
            MemberStatus::Failed => {
                m.member.status = MemberStatus::Left;
                let member = m.member.clone();
                let name = member.name.clone();
                remove_name(&mut self.members.failed, &name);
                self.members.left.push(name);
                self.member_event(MemberEventKind::Leave, member, true);
            }
            MemberStatus::Leaving | MemberStatus::Left => {}
            MemberStatus::None => return false,
        }
        if l.prune {
            self.prune(now, l.node);
        }
        true
    }

    /// Erases a member now, or (when it is still leaving) after the
    /// broadcast timeout plus the leave propagation delay.
    fn prune(&mut self, now: Instant, node: &str) {
        let Some(m) = self.members.get(node) else { return };
        if m.member.status == MemberStatus::Leaving {
            let delay = self.config.broadcast_timeout + self.config.leave_propagate_delay;
            let name = m.member.name.clone();
            self.timers.insert(now + delay, Timer::Prune(name));
        } else {
            self.erase(node);
        }
    }

    /// Forgets a member entirely (`eraseNode`) with a reap event.
    pub(super) fn erase(&mut self, node: &str) {
        remove_name(&mut self.members.left, node);
        remove_name(&mut self.members.failed, node);
        if let Some(m) = self.members.remove(node) {
            self.coord_cache.remove(node);
            self.member_event(MemberEventKind::Reap, m.member, false);
        }
    }

    /// Broadcasts (and applies) a join intent at the current member clock.
    pub(super) fn broadcast_join(&mut self, now: Instant) {
        let ltime = self.clock.time();
        let name = self.name.clone();
        let msg = Join { ltime, node: &name };
        self.clock.witness(ltime);
        self.handle_join_intent(now, &msg);
        self.broadcast_intent(&msg.encoded(), false);
    }

    /// The reaper: erase failed/left members past their timeouts, expire intents.
    pub(super) fn reap(&mut self, now: Instant) {
        let (reconnect, tombstone) = (self.config.reconnect_timeout, self.config.tombstone_timeout);
        let expired = |name: &Arc<str>, members: &Members, timeout| {
            members
                .get(name)
                .and_then(|m| m.leave_time)
                .is_some_and(|t| now.saturating_since(t) > timeout)
        };
        let mut gone: Vec<Arc<str>> = Vec::new();
        for n in &self.members.failed {
            if expired(n, &self.members, reconnect) {
                gone.push(n.clone());
            }
        }
        for n in &self.members.left {
            if expired(n, &self.members, tombstone) {
                gone.push(n.clone());
            }
        }
        for n in gone {
            self.erase(&n);
        }
        let ttl = self.config.recent_intent_timeout;
        self.members.intents.retain(|_, i| now.saturating_since(i.at) <= ttl);
    }

    /// Picks a failed member to try to rejoin, with probability
    /// `failed / max(1, members − failed − left)`.
    pub(super) fn pick_reconnect(&mut self) -> Option<SocketAddr> {
        let failed = self.members.failed.len();
        if failed == 0 {
            return None;
        }
        let alive = self
            .members
            .len()
            .saturating_sub(failed)
            .saturating_sub(self.members.left.len())
            .max(1);
        let prob = failed as f64 / alive as f64;
        if self.rng.f64() > prob {
            return None;
        }
        let name = self.members.failed.get(self.rng.index(failed))?.clone();
        let addr = self.members.get(&name)?.member.socket_addr();
        self.log(Level::Info, "serf", format!("attempting reconnect to {name} {addr}"));
        Some(addr)
    }
}
