//! The agent's view of the membership for the HTTP API and the DNS
//! interface: a view index that grows on every membership change, watchers
//! woken when it grows, and a cached, name-sorted snapshot of the members
//! with Consul-style create/modify indexes.
//!
//! The dispatcher bumps the index for every member event the engine
//! reports (join, leave, fail, update, reap) and wakes the watchers (the
//! HTTP server's poll). Readers take [`View::snapshot`]: it is rebuilt from
//! the engine (one short call that clones the member records) only when the
//! index moved, or when it is older than [`RESYNC`] — the resync catches
//! what no event announces (a member's `leaving` state, an event the
//! runtime dropped when the event channel was full) and bumps the index if
//! it finds a difference. The engine thread therefore does O(members) work
//! at most once per change or per [`RESYNC`], however many requests come.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use engine::proto::serf::{Member, MemberStatus, Serf};
use engine::runtime::{Clock, InstanceHandle};
use engine::time::Instant;

use super::lock;

/// A snapshot older than this is re-read from the engine on the next request.
pub const RESYNC: Duration = Duration::from_secs(1);
/// Watchers registered at once (HTTP servers; each is one closure).
pub const MAX_WATCHERS: usize = 64;

/// A member as the HTTP API and DNS show it.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub member: Member,
    /// The view index when the member was first seen.
    pub create_index: u64,
    /// The view index of its last change (status, address, port, tags).
    pub modify_index: u64,
    /// The view index of its last health change (passing ↔ critical).
    pub health_index: u64,
}

/// A consistent copy of the membership.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// The view index this copy is at least as new as (≥ 1).
    pub index: u64,
    /// Members sorted by name, failed and left ones included until reaped.
    pub members: Vec<Entry>,
}

impl Snapshot {
    /// The member called `name` (exact match).
    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.members
            .binary_search_by(|e| (*e.member.name).cmp(name))
            .ok()
            .and_then(|i| self.members.get(i))
    }

    /// Members by status: (alive, leaving, left, failed).
    pub fn counts(&self) -> (u64, u64, u64, u64) {
        let mut c = (0, 0, 0, 0);
        for e in &self.members {
            match e.member.status {
                MemberStatus::Alive => c.0 += 1,
                MemberStatus::Leaving => c.1 += 1,
                MemberStatus::Left => c.2 += 1,
                MemberStatus::Failed => c.3 += 1,
                MemberStatus::None => {}
            }
        }
        c
    }
}

/// Whether a member is healthy in Consul's sense (serfHealth passing):
/// alive or still leaving.
pub fn is_passing(status: MemberStatus) -> bool {
    matches!(status, MemberStatus::Alive | MemberStatus::Leaving)
}

struct Cache {
    snapshot: Arc<Snapshot>,
    taken: Option<Instant>,
}

type Watcher = Arc<dyn Fn() + Send + Sync>;

/// The view index, its watchers and the snapshot cache (shared by the
/// dispatcher, the HTTP and the DNS threads).
pub struct View {
    index: AtomicU64,
    watchers: Mutex<Vec<(u64, Watcher)>>,
    next_watcher: AtomicU64,
    cache: Mutex<Cache>,
    serf: InstanceHandle<Serf>,
    clock: Clock,
}

impl View {
    pub(crate) fn new(serf: InstanceHandle<Serf>, clock: Clock) -> View {
        View {
            index: AtomicU64::new(1),
            watchers: Mutex::new(Vec::new()),
            next_watcher: AtomicU64::new(1),
            cache: Mutex::new(Cache { snapshot: Arc::new(Snapshot::default()), taken: None }),
            serf,
            clock,
        }
    }

    /// The current view index (starts at 1, never decreases).
    pub fn index(&self) -> u64 {
        self.index.load(Ordering::Acquire)
    }

    /// Records a membership change and wakes the watchers.
    pub fn bump(&self) {
        self.index.fetch_add(1, Ordering::AcqRel);
        self.wake();
    }

    /// Calls every watcher (also used when a handle channel is filled).
    pub fn wake(&self) {
        let ws: Vec<Watcher> = lock(&self.watchers).iter().map(|(_, w)| w.clone()).collect();
        for w in ws {
            w();
        }
    }

    /// Registers `f`, called after every view change and every delivery to
    /// a channel the agent handle returned; `None` past [`MAX_WATCHERS`].
    pub fn watch(&self, f: Watcher) -> Option<u64> {
        let mut ws = lock(&self.watchers);
        if ws.len() >= MAX_WATCHERS {
            return None;
        }
        let id = self.next_watcher.fetch_add(1, Ordering::Relaxed);
        ws.push((id, f));
        Some(id)
    }

    /// Removes a watcher.
    pub fn unwatch(&self, id: u64) {
        lock(&self.watchers).retain(|(i, _)| *i != id);
    }

    /// The membership at the current index (see the module docs for when
    /// it is re-read from the engine). While the engine is gone the last
    /// copy is returned.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        let mut cache = lock(&self.cache);
        let now = self.clock.now();
        let index = self.index();
        let fresh = cache.taken.is_some_and(|t| now.saturating_since(t) < RESYNC);
        if cache.snapshot.index == index && fresh {
            return cache.snapshot.clone();
        }
        let Ok(mut members) = self.serf.call(|s, _| s.members().cloned().collect::<Vec<_>>())
        else {
            return cache.snapshot.clone();
        };
        members.sort_by(|a, b| a.name.cmp(&b.name));
        // An unmoved index with an old copy is a resync: a difference found
        // now is a change no event announced, so it is a new view.
        let resync = cache.snapshot.index == index && cache.taken.is_some();
        let at = if resync { index + 1 } else { index };
        let (next, changed) = merge(&cache.snapshot, members, at);
        cache.taken = Some(now);
        if resync && !changed {
            return cache.snapshot.clone();
        }
        cache.snapshot = Arc::new(next);
        let out = cache.snapshot.clone();
        drop(cache);
        if resync {
            self.index.fetch_add(1, Ordering::AcqRel);
            self.wake();
        }
        out
    }
}

/// Whether two records differ in what the API shows.
fn differs(a: &Member, b: &Member) -> bool {
    a.status != b.status || a.addr != b.addr || a.port != b.port || a.tags != b.tags
}

/// The next snapshot at `index` from the previous one and the engine's
/// members (sorted); `true` if anything changed.
fn merge(prev: &Snapshot, members: Vec<Member>, index: u64) -> (Snapshot, bool) {
    let old: HashMap<&str, &Entry> = prev.members.iter().map(|e| (&*e.member.name, e)).collect();
    let mut changed = members.len() != prev.members.len();
    let entries = members
        .into_iter()
        .map(|m| match old.get(&*m.name) {
            Some(e) if !differs(&e.member, &m) => Entry { member: m, ..(*e).clone() },
            Some(e) => {
                changed = true;
                let health_index = if is_passing(e.member.status) != is_passing(m.status) {
                    index
                } else {
                    e.health_index
                };
                Entry { member: m, create_index: e.create_index, modify_index: index, health_index }
            }
            None => {
                changed = true;
                Entry { member: m, create_index: index, modify_index: index, health_index: index }
            }
        })
        .collect();
    (Snapshot { index, members: entries }, changed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    fn m(name: &str, status: MemberStatus, role: &str) -> Member {
        let mut tags = engine::proto::serf::Tags::new();
        tags.insert("role".into(), role.into());
        Member {
            name: name.into(),
            addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 7946,
            tags: Arc::new(tags),
            status,
            vsn: [1, 5, 2, 2, 5, 4],
        }
    }

    #[test]
    fn merge_keeps_indexes_of_unchanged_members() {
        let (s1, c1) = merge(
            &Snapshot::default(),
            vec![m("a", MemberStatus::Alive, "web"), m("b", MemberStatus::Alive, "db")],
            3,
        );
        assert!(c1);
        assert_eq!(s1.get("a").unwrap().create_index, 3);
        let (s2, c2) = merge(
            &s1,
            vec![m("a", MemberStatus::Alive, "web"), m("b", MemberStatus::Failed, "db")],
            5,
        );
        assert!(c2);
        let a = s2.get("a").unwrap();
        assert_eq!((a.create_index, a.modify_index, a.health_index), (3, 3, 3));
        let b = s2.get("b").unwrap();
        assert_eq!((b.create_index, b.modify_index, b.health_index), (3, 5, 5));
        // A tag change moves the modify index, not the health index.
        let (s3, _) = merge(
            &s2,
            vec![m("a", MemberStatus::Alive, "api"), m("b", MemberStatus::Failed, "db")],
            6,
        );
        let a = s3.get("a").unwrap();
        assert_eq!((a.modify_index, a.health_index), (6, 3));
        let (_, same) = merge(&s3, s3.members.iter().map(|e| e.member.clone()).collect(), 7);
        assert!(!same);
        assert_eq!(s3.counts(), (1, 0, 0, 1));
        assert!(s3.get("c").is_none());
    }
}
