//! The transmit-limited broadcast queue (`protocol/memberlist.md` §11.7):
//! what gets piggybacked onto pings, acks and gossip, and how often.
//!
//! Rules (memberlist 0.2.2's `TransmitLimitedQueue`):
//! * each message is sent at most `RetransmitMult × ceil(log10(N + 1))`
//!   times, then dropped (and its completion reported);
//! * a fill walks the transmit-count tiers from the least sent upward and,
//!   within a tier, takes the largest message that still fits (ties: the
//!   newest); each pick costs `overhead + len`; a message is used at most once
//!   per fill;
//! * a message queued under a name replaces any queued message with the same
//!   name (memberlist's alive/suspect/dead about one node); unnamed messages
//!   (Serf's) never replace each other.
//!
//! Storage: payloads live in slab slots whose `Vec`s keep their capacity when
//! a slot is reused, and the send order is a sorted index vector, so a warm
//! queue allocates nothing per message.

use std::sync::Arc;

use std::collections::VecDeque;

/// Smallest payload capacity of a slot (fits every memberlist message
/// with short names and metas).
const MIN_SLOT_CAPACITY: usize = 128;

/// Identifies a queued message for its completion report.
pub type NotifyId = u64;

/// How a message left the queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finished {
    /// Sent its full retransmit count.
    Transmitted,
    /// Replaced by a newer message with the same name.
    Invalidated,
    /// Dropped by [`BroadcastQueue::prune`] or a capacity limit.
    Dropped,
}

#[derive(Debug, Default)]
struct Slot {
    /// Message bytes (capacity kept across reuse).
    msg: Vec<u8>,
    /// Name for invalidation (memberlist broadcasts: the node name).
    name: Option<Arc<str>>,
    transmits: u32,
    /// Insertion order; larger is newer.
    id: u64,
    notify: Option<NotifyId>,
}

/// A live message's place in the send order, with its sort key inline so
/// ordering never chases the slot: (transmits asc, len desc, id desc).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    transmits: u32,
    len: core::cmp::Reverse<u32>,
    id: core::cmp::Reverse<u64>,
    slot: u32,
}

/// A transmit-limited broadcast queue.
#[derive(Debug)]
pub struct BroadcastQueue {
    slots: Vec<Slot>,
    free: Vec<u32>,
    /// Live messages in send order.
    order: Vec<Key>,
    /// Named messages: name → slot.
    names: ahash::AHashMap<Arc<str>, u32>,
    next_id: u64,
    retransmit_mult: u32,
    /// Completions not yet collected by [`BroadcastQueue::poll_finished`].
    finished: VecDeque<(NotifyId, Finished)>,
    /// Scratch for [`BroadcastQueue::fill`]: the keys picked this fill.
    picked: Vec<Key>,
    max_len: usize,
    dropped: u64,
}

/// `RetransmitMult × ceil(log10(n + 1))`.
pub fn retransmit_limit(retransmit_mult: u32, n: usize) -> u32 {
    // ceil(log10(n + 1)) is the number of decimal digits of n (n ≥ 1).
    let mut digits = 0u32;
    let mut v = n;
    while v > 0 {
        digits = digits.saturating_add(1);
        v /= 10;
    }
    retransmit_mult.saturating_mul(digits)
}

impl BroadcastQueue {
    /// A queue that holds at most `max_len` messages (beyond it, the most
    /// transmitted are dropped, as in [`BroadcastQueue::prune`]).
    /// `capacity` slots are preallocated.
    pub fn new(retransmit_mult: u32, capacity: usize, max_len: usize) -> Self {
        BroadcastQueue {
            slots: Vec::with_capacity(capacity),
            free: Vec::with_capacity(capacity),
            order: Vec::with_capacity(capacity),
            names: ahash::AHashMap::with_capacity(capacity),
            next_id: 0,
            retransmit_mult,
            finished: VecDeque::with_capacity(16),
            picked: Vec::with_capacity(64),
            max_len: max_len.max(1),
            dropped: 0,
        }
    }

    /// Number of queued messages.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// True if nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Messages dropped for capacity since creation.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The order key of a live slot (`None` for a slot the queue never made).
    fn key(&self, slot: u32) -> Option<Key> {
        let s = self.slots.get(slot as usize)?;
        Some(Key {
            transmits: s.transmits,
            len: core::cmp::Reverse(s.msg.len() as u32),
            id: core::cmp::Reverse(s.id),
            slot,
        })
    }

    fn remove_key(&mut self, k: Key) {
        if let Ok(pos) = self.order.binary_search(&k) {
            self.order.remove(pos);
        }
    }

    /// Frees a slot that is no longer in `order`.
    fn release(&mut self, slot: u32, how: Finished) {
        let Some(s) = self.slots.get_mut(slot as usize) else { return };
        if let Some(name) = s.name.take() {
            if self.names.get(&name) == Some(&slot) {
                self.names.remove(&name);
            }
        }
        if let Some(n) = s.notify.take() {
            self.finished.push_back((n, how));
        }
        self.free.push(slot);
    }

    /// Queues a copy of `msg`. A `name` replaces any queued message with the
    /// same name (reported as [`Finished::Invalidated`]). `notify` asks for a
    /// completion report via [`BroadcastQueue::poll_finished`].
    pub fn push(&mut self, name: Option<&Arc<str>>, msg: &[u8], notify: Option<NotifyId>) {
        if let Some(&old) = name.and_then(|n| self.names.get(n)) {
            if let Some(k) = self.key(old) {
                self.remove_key(k);
            }
            self.release(old, Finished::Invalidated);
        }
        while self.order.len() >= self.max_len {
            // Drop the most transmitted (last in order).
            let Some(victim) = self.order.pop() else { break };
            self.release(victim.slot, Finished::Dropped);
            self.dropped = self.dropped.saturating_add(1);
        }
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        // Cannot fail: the slot is one `alloc_slot` just made or reused.
        let Some((slot, s)) = self.alloc_slot() else { return };
        s.msg.clear();
        if s.msg.capacity() < msg.len() {
            // Grow in power-of-two classes from a floor, so that reused
            // slots settle at a size every message of their kind fits
            // (exact-fit growth would reallocate whenever a slot next
            // receives a message one byte longer than before).
            s.msg.reserve_exact(msg.len().next_power_of_two().max(MIN_SLOT_CAPACITY));
        }
        s.msg.extend_from_slice(msg);
        s.name = name.cloned();
        s.transmits = 0;
        s.id = id;
        s.notify = notify;
        let k = Key {
            transmits: 0,
            len: core::cmp::Reverse(msg.len() as u32),
            id: core::cmp::Reverse(id),
            slot,
        };
        if let Some(n) = name {
            self.names.insert(n.clone(), slot);
        }
        let pos = self.order.partition_point(|x| *x < k);
        self.order.insert(pos, k);
    }

    /// A free slot (reused, or a new one) and its index; `Some` always
    /// (free slots are indices this queue handed out).
    fn alloc_slot(&mut self) -> Option<(u32, &mut Slot)> {
        let i = match self.free.pop() {
            Some(i) => i as usize,
            None => {
                self.slots.push(Slot::default());
                self.slots.len() - 1
            }
        };
        let s = self.slots.get_mut(i)?;
        Some((i as u32, s))
    }

    /// Picks messages for one packet, least-transmitted tier first and
    /// largest-that-fits within a tier. `overhead` is charged per message;
    /// `limit` is the byte budget. `emit` receives each chosen message and
    /// returns `false` to stop early (e.g. the caller's part limit).
    /// `num_nodes` sets the retransmit limit. Returns the bytes used.
    pub fn fill(
        &mut self,
        overhead: usize,
        limit: usize,
        num_nodes: usize,
        mut emit: impl FnMut(&[u8]) -> bool,
    ) -> usize {
        let transmit_limit = retransmit_limit(self.retransmit_mult, num_nodes);
        let mut used = 0usize;
        let mut picked = core::mem::take(&mut self.picked);
        picked.clear();
        let mut pos = 0usize;
        while pos < self.order.len() {
            let free = limit.saturating_sub(used).saturating_sub(overhead);
            if free == 0 {
                break;
            }
            let Some(&k) = self.order.get(pos) else { break };
            let len = k.len.0 as usize;
            if len > free {
                // Too big now, and free only shrinks: skip to the first entry
                // of this tier that fits (the tier is sorted by length, desc).
                let rest = self.order.get(pos..).unwrap_or_default();
                let skip =
                    rest.partition_point(|x| x.transmits == k.transmits && x.len.0 as usize > free);
                pos += skip.max(1);
                continue;
            }
            pos += 1;
            // Every key in `order` names a live slot.
            let Some(s) = self.slots.get(k.slot as usize) else { continue };
            used = used.saturating_add(overhead).saturating_add(len);
            picked.push(k);
            if !emit(&s.msg) {
                break;
            }
        }
        if !picked.is_empty() {
            // One pass: drop the picked keys from the order, then merge them
            // back with their new transmit counts (or retire them).
            let mut p = 0;
            self.order.retain(|x| {
                if picked.get(p) == Some(x) {
                    p += 1;
                    false
                } else {
                    true
                }
            });
            for k in &picked {
                let Some(s) = self.slots.get_mut(k.slot as usize) else { continue };
                s.transmits = s.transmits.saturating_add(1);
                if s.transmits >= transmit_limit {
                    self.release(k.slot, Finished::Transmitted);
                } else {
                    let nk = Key { transmits: s.transmits, ..*k };
                    let at = self.order.partition_point(|x| *x < nk);
                    self.order.insert(at, nk);
                }
            }
        }
        self.picked = picked;
        used
    }

    /// Drops the most-transmitted messages until at most `max` remain
    /// (Serf's queue-depth guard); returns how many were dropped.
    pub fn prune(&mut self, max: usize) -> usize {
        let mut n = 0;
        while self.order.len() > max {
            let Some(victim) = self.order.pop() else { break };
            self.release(victim.slot, Finished::Dropped);
            n += 1;
        }
        n
    }

    /// Drops everything (e.g. on shutdown); completions are reported as dropped.
    pub fn clear(&mut self) {
        while let Some(k) = self.order.pop() {
            self.release(k.slot, Finished::Dropped);
        }
    }

    /// The next completion report, if any.
    pub fn poll_finished(&mut self) -> Option<(NotifyId, Finished)> {
        self.finished.pop_front()
    }

    /// True if a message with this notify id is still queued.
    pub fn is_pending(&self, notify: NotifyId) -> bool {
        self.order
            .iter()
            .any(|k| self.slots.get(k.slot as usize).is_some_and(|s| s.notify == Some(notify)))
    }

    /// Changes the retransmit multiplier (config reload).
    pub fn set_retransmit_mult(&mut self, mult: u32) {
        self.retransmit_mult = mult;
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn collect(q: &mut BroadcastQueue, overhead: usize, limit: usize, n: usize) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        q.fill(overhead, limit, n, |m| {
            out.push(m.to_vec());
            true
        });
        out
    }

    #[test]
    fn limit_formula() {
        assert_eq!(retransmit_limit(4, 1), 4);
        assert_eq!(retransmit_limit(4, 9), 4);
        assert_eq!(retransmit_limit(4, 10), 8);
        assert_eq!(retransmit_limit(4, 99), 8);
        assert_eq!(retransmit_limit(4, 100), 12);
        assert_eq!(retransmit_limit(4, 0), 0);
    }

    #[test]
    fn largest_that_fits_then_newest() {
        let mut q = BroadcastQueue::new(4, 8, 100);
        q.push(None, &[1; 10], None);
        q.push(None, &[2; 30], None);
        q.push(None, &[3; 20], None);
        q.push(None, &[4; 20], None);
        // budget 45 with overhead 2: 30 first (32 used), then 11 free: the 10.
        let got = collect(&mut q, 2, 45, 1);
        assert_eq!(got, vec![vec![2; 30], vec![1; 10]]);
        // Next fill: tier 0 holds the two 20s (newest first), then tier 1.
        let got = collect(&mut q, 2, 1000, 1);
        assert_eq!(got.iter().map(|m| m[0]).collect::<Vec<_>>(), [4, 3, 2, 1]);
    }

    #[test]
    fn retire_after_limit_and_notify() {
        let mut q = BroadcastQueue::new(2, 8, 100);
        q.push(None, b"abc", Some(7));
        for _ in 0..2 {
            assert_eq!(collect(&mut q, 0, 100, 5).len(), 1);
        }
        assert!(q.is_empty());
        assert_eq!(q.poll_finished(), Some((7, Finished::Transmitted)));
        assert_eq!(q.poll_finished(), None);
    }

    #[test]
    fn named_replaces() {
        let mut q = BroadcastQueue::new(4, 8, 100);
        let a: Arc<str> = Arc::from("a");
        q.push(Some(&a), b"old", Some(1));
        q.push(None, b"unnamed", None);
        q.push(Some(&a), b"new", None);
        assert_eq!(q.len(), 2);
        assert_eq!(q.poll_finished(), Some((1, Finished::Invalidated)));
        let got = collect(&mut q, 0, 100, 1);
        assert!(got.contains(&b"new".to_vec()) && !got.contains(&b"old".to_vec()));
    }

    #[test]
    fn capacity_and_prune_drop_most_transmitted() {
        let mut q = BroadcastQueue::new(10, 4, 3);
        q.push(None, b"a", None);
        collect(&mut q, 0, 100, 100); // a sent once
        q.push(None, b"b", None);
        q.push(None, b"c", None);
        q.push(None, b"d", None); // full: drops a (most transmitted)
        assert_eq!(q.len(), 3);
        assert_eq!(q.dropped(), 1);
        let got = collect(&mut q, 0, 100, 100);
        assert!(!got.contains(&b"a".to_vec()));
        assert_eq!(q.prune(1), 2);
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn no_budget_no_picks() {
        let mut q = BroadcastQueue::new(4, 8, 100);
        q.push(None, &[0; 50], None);
        assert!(collect(&mut q, 3, 40, 1).is_empty());
        assert!(collect(&mut q, 3, 3, 1).is_empty());
        assert_eq!(collect(&mut q, 3, 53, 1).len(), 1);
    }
    /// A plain model of the queue's rules: sort everything, take greedily.
    #[derive(Clone, Debug)]
    struct Model {
        entries: Vec<(Option<u8>, Vec<u8>, u32, u64)>,
        next_id: u64,
        max_len: usize,
    }

    impl Model {
        fn sorted(&self) -> Vec<(Option<u8>, Vec<u8>, u32, u64)> {
            let mut e = self.entries.clone();
            e.sort_by_key(|(_, m, t, id)| {
                (*t, core::cmp::Reverse(m.len()), core::cmp::Reverse(*id))
            });
            e
        }
        fn push(&mut self, name: Option<u8>, msg: &[u8]) {
            if name.is_some() {
                self.entries.retain(|e| e.0 != name);
            }
            while self.entries.len() >= self.max_len {
                let last = self.sorted().pop().unwrap();
                self.entries.retain(|e| e.3 != last.3);
            }
            self.entries.push((name, msg.to_vec(), 0, self.next_id));
            self.next_id += 1;
        }
        fn fill(&mut self, overhead: usize, limit: usize, n: usize) -> Vec<Vec<u8>> {
            let (mut used, mut out, mut ids) = (0usize, Vec::new(), Vec::new());
            for (_, m, _, id) in self.sorted() {
                let free = limit.saturating_sub(used).saturating_sub(overhead);
                if free == 0 {
                    break;
                }
                if m.len() <= free {
                    used += overhead + m.len();
                    out.push(m);
                    ids.push(id);
                }
            }
            // Only a message just sent is retired (as in Go: the limit is
            // checked when a message is picked).
            let lim = retransmit_limit(4, n);
            for e in &mut self.entries {
                if ids.contains(&e.3) {
                    e.2 += 1;
                }
            }
            self.entries.retain(|e| !(ids.contains(&e.3) && e.2 >= lim));
            out
        }
    }

    proptest::proptest! {
        /// Random pushes (named and not) and fills: the queue emits what the
        /// model emits, and its send order always lists exactly the live
        /// messages, sorted.
        #[test]
        fn matches_a_sorting_model(
            ops in proptest::collection::vec(
                (0u8..3, 0u8..6, 1usize..40, 0usize..120, 1usize..200),
                1..300,
            ),
        ) {
            let mut q = BroadcastQueue::new(4, 4, 24);
            let mut m = Model { entries: Vec::new(), next_id: 0, max_len: 24 };
            let names: Vec<Arc<str>> = (0..6).map(|i| Arc::from(format!("n{i}"))).collect();
            for (i, (op, name, len, limit, nodes)) in ops.into_iter().enumerate() {
                if op < 2 {
                    let msg = vec![i as u8; len];
                    let named = (op == 0).then_some(name);
                    q.push(named.map(|n| &names[usize::from(n)]), &msg, None);
                    m.push(named, &msg);
                } else {
                    let got = collect(&mut q, 2, limit, nodes);
                    let want = m.fill(2, limit, nodes);
                    proptest::prop_assert_eq!(got, want);
                }
                let live: Vec<(Vec<u8>, u32)> = q
                    .order
                    .iter()
                    .map(|k| {
                        let s = &q.slots[k.slot as usize];
                        (s.msg.clone(), s.transmits)
                    })
                    .collect();
                let want: Vec<(Vec<u8>, u32)> =
                    m.sorted().into_iter().map(|(_, msg, t, _)| (msg, t)).collect();
                proptest::prop_assert_eq!(live, want);
                proptest::prop_assert!(q.order.windows(2).all(|w| w[0] < w[1]));
            }
        }
    }
}
