//! A hierarchical timer wheel holding every deadline of one engine instance
//! (probes, probe timeouts, suspicion, gossip, push-pull, reaping, ack
//! handlers, query deadlines, ...).
//!
//! # Model
//!
//! Time is cut into 1 ms *ticks*. A timer's deadline is rounded **up** to the
//! next tick boundary, and [`TimerWheel::poll_expired`] hands a timer out only
//! once `now` has reached that boundary, so a timer never fires early and
//! fires at most 1 ms after its deadline (plus however late the caller polls).
//!
//! The wheel has six levels of 64 slots. A slot at level `L` spans `64^L`
//! ticks, so a level spans `64^(L+1)` ticks and the whole wheel `2^36` ms
//! (about 795 days). Each level keeps a 64-bit occupancy bitmap, so the next
//! non-empty slot is one shift and one `trailing_zeros` away, and
//! [`TimerWheel::next_deadline`] is O(levels) whatever the number of timers.
//! A timer is placed at the level of the highest bit in which its tick differs
//! from the wheel's current tick; when the wheel's time reaches a slot of a
//! higher level, that slot's timers move down to lower levels (each timer at
//! most five times in its life). Timers beyond the wheel's span wait in an
//! overflow list that is redistributed when the wheel's time enters their
//! 2^36 ms block.
//!
//! # Memory
//!
//! Timers live in a slab (`Vec`) whose capacity is fixed at construction and
//! grows (by `Vec`'s doubling) **only when every slot is in use**. Slot lists
//! are doubly linked through `u32` slab indices, so insert, cancel and
//! reschedule are O(1) and nothing allocates once the slab is large enough.
//! There is no `unsafe` and no pointer-linked list.
//!
//! Budget per wheel: the slab, `capacity` entries of the payload plus 24
//! bytes (40 bytes for a `u64` payload), and about 6.2 KB inline in the
//! struct for the 385 lists' heads, tails and tick bounds.
//!
//! # Tokens
//!
//! Every slab slot carries a generation counter that is bumped whenever its
//! timer fires or is cancelled. A [`TimerToken`] names a slot *and* a
//! generation, so using the token of a timer that already fired or was
//! cancelled is a harmless no-op even after the slot holds a new timer. (A
//! slot would have to be reused 2^32 times while an old token is still kept
//! for that token to alias a new timer.)
//!
//! # Order and determinism
//!
//! Timers come out in tick order. Timers due in the same tick come out in the
//! order they were inserted or last rescheduled. A timer scheduled at or
//! before the wheel's current time (see [`TimerWheel::now`]) is due *at* the
//! current time: it comes out on the next poll, after the timers already due.
//! The wheel contains no randomness and no hashing, so the same sequence of
//! calls always produces the same output.
//!
//! This module follows the strict house style of `wire/`: indexing, unchecked
//! arithmetic and `unwrap` are denied outside tests, and no input panics.
#![deny(clippy::indexing_slicing, clippy::arithmetic_side_effects, clippy::unwrap_used)]

use crate::time::Instant;

/// Microseconds per tick: the wheel's resolution is 1 ms.
const MICROS_PER_TICK: u64 = 1000;
/// log2 of the number of slots per level.
const SLOT_BITS: u32 = 6;
/// Slots per level.
const SLOTS: u16 = 1 << SLOT_BITS;
/// Mask of a slot index within a level.
const SLOT_MASK: u64 = (1 << SLOT_BITS) - 1;
/// Number of levels.
const LEVELS: u16 = 6;
/// log2 of the ticks spanned by the whole wheel (`64^6 = 2^36` ms).
const WHEEL_BITS: u32 = SLOT_BITS * LEVELS as u32;
/// Mask of a tick's offset within the wheel's span.
const WHEEL_MASK: u64 = (1 << WHEEL_BITS) - 1;
/// List ids `0..OVERFLOW` are `level * 64 + slot`; `OVERFLOW` is the overflow list.
const OVERFLOW: u16 = LEVELS * SLOTS;
/// Number of lists (every slot of every level, plus the overflow list).
const LISTS: usize = OVERFLOW as usize + 1;
/// The list id of a free slab entry.
const NO_LIST: u16 = u16::MAX;
/// The null slab index.
const NIL: u32 = u32::MAX;
/// Cap on the passes of one `poll_expired` call: 9 are needed (the model
/// test reaches 9 and fails with a cap of 8); the rest is margin.
const MAX_PASSES: u32 = 16;

/// A non-empty list and when it is due.
#[derive(Clone, Copy, Debug)]
struct Expiration {
    /// The list.
    list: u16,
    /// The tick at which `poll_expired` processes it: a level-0 slot's own
    /// tick, a coarser slot's first tick (its timers then move to finer
    /// levels), the overflow list's block start.
    start: u64,
    /// A lower bound on every pending timer's tick, `>= elapsed`: when to
    /// wake up.
    earliest: u64,
}

/// Names one scheduled timer. Returned by [`TimerWheel::insert`] and
/// [`TimerWheel::poll_expired`]; pass it to [`TimerWheel::cancel`],
/// [`TimerWheel::reschedule`] or [`TimerWheel::deadline`]. Once the timer has
/// fired or been cancelled the token is *stale*: every call with it is a
/// no-op, even after its slab slot holds another timer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimerToken {
    index: u32,
    generation: u32,
}

/// One slab slot: a pending timer, or a link in the free list.
#[derive(Debug)]
struct Entry<T> {
    /// The payload; `None` while the slot is free.
    value: Option<T>,
    /// The deadline as scheduled (not rounded).
    deadline: Instant,
    /// Bumped each time the slot's timer fires or is cancelled.
    generation: u32,
    /// Previous entry in the same list, or `NIL`.
    prev: u32,
    /// Next entry in the same list (or in the free list), or `NIL`.
    next: u32,
    /// Which list holds the entry, or `NO_LIST` while it is free.
    list: u16,
}

/// A hierarchical timer wheel with 1 ms resolution, generic over the payload
/// `T` handed back when a timer fires. See the [module docs](self).
///
/// The wheel's clock moves only inside [`poll_expired`](Self::poll_expired);
/// drive it with a non-decreasing `now`.
pub struct TimerWheel<T> {
    /// The slab. Grows only when every entry is in use.
    entries: Vec<Entry<T>>,
    /// Head of the free list threaded through `Entry::next`.
    free_head: u32,
    /// First entry of each list.
    heads: [u32; LISTS],
    /// Last entry of each list (lists are FIFO).
    tails: [u32; LISTS],
    /// Bit `s` of `occupied[l]` is set iff slot `s` of level `l` is non-empty.
    occupied: [u64; LEVELS as usize],
    /// Per list, a lower bound on its entries' (effective) ticks: exact
    /// while entries are only added, possibly stale-low after one is removed
    /// (still a valid bound), reset when the list empties; `u64::MAX` for an
    /// empty list. Lets `next_deadline` report the earliest timer in a coarse
    /// slot rather than the slot's start.
    least: [u64; LISTS],
    /// The wheel's current tick. Every pending timer's effective tick is
    /// `>= elapsed`; those equal to it sit in level 0's current slot.
    elapsed: u64,
    /// Number of pending timers.
    len: usize,
}

/// The tick a deadline is due in: the deadline rounded up to the millisecond.
fn deadline_tick(deadline: Instant) -> u64 {
    deadline.as_micros().div_ceil(MICROS_PER_TICK)
}

/// The last tick that has fully started at `now`: `now` rounded down, except
/// that [`Instant::MAX`] (the end of time) reaches the last tick, so that
/// every timer, even one scheduled at `Instant::MAX`, is due then.
fn now_tick(now: Instant) -> u64 {
    if now == Instant::MAX {
        deadline_tick(now)
    } else {
        now.as_micros() / MICROS_PER_TICK
    }
}

/// The instant a tick starts (saturating at [`Instant::MAX`] for the last one).
fn tick_instant(tick: u64) -> Instant {
    Instant::from_micros(tick.saturating_mul(MICROS_PER_TICK))
}

/// Bit position of a level's slot index within a tick (`6 * level`).
fn level_shift(level: u16) -> u32 {
    SLOT_BITS.saturating_mul(u32::from(level))
}

/// The list that holds a timer due at `tick` when the wheel is at `elapsed`
/// (`tick >= elapsed`): the level of the highest bit in which the two differ,
/// and the tick's slot at that level; the overflow list if they lie in
/// different `2^36`-tick blocks.
fn list_for(elapsed: u64, tick: u64) -> u16 {
    // `| SLOT_MASK` sends ticks in elapsed's own 64-tick block to level 0.
    let diff = (elapsed ^ tick) | SLOT_MASK;
    if diff > WHEEL_MASK {
        return OVERFLOW;
    }
    // diff is in 63..2^36, so its top bit is in 5..36 and the level in 0..6.
    let top_bit = diff.checked_ilog2().unwrap_or(0);
    let level = u16::try_from(top_bit / SLOT_BITS).unwrap_or(0);
    let slot =
        u16::try_from(tick.checked_shr(level_shift(level)).unwrap_or(0) & SLOT_MASK).unwrap_or(0);
    level.saturating_mul(SLOTS).saturating_add(slot)
}

impl<T> TimerWheel<T> {
    /// An empty wheel whose clock starts at `now` (rounded down to the tick),
    /// with `capacity` timers' worth of slab preallocated. Inserting beyond
    /// `capacity` pending timers grows the slab (an allocation); size it for
    /// the engine's worst case to keep the hot path allocation-free.
    pub fn with_capacity(capacity: usize, now: Instant) -> Self {
        TimerWheel {
            entries: Vec::with_capacity(capacity),
            free_head: NIL,
            heads: [NIL; LISTS],
            tails: [NIL; LISTS],
            occupied: [0; LEVELS as usize],
            least: [u64::MAX; LISTS],
            elapsed: now_tick(now),
            len: 0,
        }
    }

    /// Number of pending timers.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no timer is pending.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How many timers the slab holds before it has to grow.
    pub fn capacity(&self) -> usize {
        self.entries.capacity()
    }

    /// The wheel's current time: the start of the tick it has advanced to.
    /// This is the last `now` given to [`poll_expired`](Self::poll_expired)
    /// (or to the constructor) rounded down to the millisecond, except while
    /// a drain is in progress (a poll returned a timer and the next has not
    /// returned `None` yet), when it is the tick of the timer returned last.
    /// A timer scheduled at or before this time is due on the next poll.
    pub fn now(&self) -> Instant {
        tick_instant(self.elapsed)
    }

    /// Schedules `value` to fire at `deadline` and returns its token. O(1).
    ///
    /// The timer fires on the first [`poll_expired`](Self::poll_expired)
    /// whose `now` is at or after `deadline` rounded up to the millisecond. A
    /// `deadline` at or before the wheel's current time ([`now`](Self::now))
    /// fires on the next poll. Allocates only when all
    /// [`capacity`](Self::capacity) slab slots are in use.
    ///
    /// # Panics
    ///
    /// If `u32::MAX - 1` timers are already pending (memory runs out long
    /// before that); [`try_insert`](Self::try_insert) reports it instead.
    pub fn insert(&mut self, deadline: Instant, value: T) -> TimerToken {
        match self.try_insert(deadline, value) {
            Ok(token) => token,
            Err(_) => panic!("TimerWheel: more than u32::MAX - 1 pending timers"),
        }
    }

    /// [`insert`](Self::insert), handing `value` back instead of panicking
    /// when `u32::MAX - 1` timers are already pending.
    pub fn try_insert(&mut self, deadline: Instant, value: T) -> Result<TimerToken, T> {
        let index = if self.free_head != NIL {
            let index = self.free_head;
            let Some(entry) = self.entries.get_mut(index as usize) else {
                return Err(value);
            };
            self.free_head = entry.next;
            entry.value = Some(value);
            entry.deadline = deadline;
            index
        } else {
            let index = match u32::try_from(self.entries.len()) {
                Ok(index) if index != NIL => index,
                _ => return Err(value),
            };
            self.entries.push(Entry {
                value: Some(value),
                deadline,
                generation: 0,
                prev: NIL,
                next: NIL,
                list: NO_LIST,
            });
            index
        };
        self.len = self.len.saturating_add(1);
        self.link(index);
        let generation = self.entries.get(index as usize).map_or(0, |e| e.generation);
        Ok(TimerToken { index, generation })
    }

    /// Removes a pending timer and returns its value. O(1). Returns `None`,
    /// changing nothing, if the token is stale (the timer already fired or
    /// was cancelled, even if its slot now holds another timer).
    pub fn cancel(&mut self, token: TimerToken) -> Option<T> {
        self.live(token)?;
        self.unlink(token.index);
        self.release(token.index)
    }

    /// Moves a pending timer to `deadline` (earlier or later), keeping its
    /// token valid. O(1). The timer then fires as if it had just been
    /// inserted with that deadline (so after other timers of the same tick).
    /// Returns `false`, changing nothing, if the token is stale.
    pub fn reschedule(&mut self, token: TimerToken, deadline: Instant) -> bool {
        if self.live(token).is_none() {
            return false;
        }
        self.unlink(token.index);
        if let Some(entry) = self.entries.get_mut(token.index as usize) {
            entry.deadline = deadline;
        }
        self.link(token.index);
        true
    }

    /// The deadline of a pending timer as it was scheduled (not rounded), or
    /// `None` if the token is stale.
    pub fn deadline(&self, token: TimerToken) -> Option<Instant> {
        self.live(token).map(|e| e.deadline)
    }

    /// The value of a pending timer, or `None` if the token is stale.
    pub fn get(&self, token: TimerToken) -> Option<&T> {
        self.live(token).and_then(|e| e.value.as_ref())
    }

    /// The value of a pending timer, mutably, or `None` if the token is stale.
    pub fn get_mut(&mut self, token: TimerToken) -> Option<&mut T> {
        self.live(token)?;
        self.entries.get_mut(token.index as usize).and_then(|e| e.value.as_mut())
    }

    /// When to poll next, or `None` if no timer is pending. O(levels): call
    /// it after every input (this is what `poll_timeout` reports).
    ///
    /// It is never later than the earliest pending timer is due (its
    /// deadline rounded up to the millisecond, or [`now`](Self::now) for a
    /// timer that is already overdue), so sleeping until it never misses a
    /// timer. Each list of timers keeps a lower bound on its ticks, so the
    /// answer is exact unless the earliest timer of a list was cancelled or
    /// rescheduled away since the list was last emptied; then it may be
    /// earlier (but never before the start of the earliest occupied slot),
    /// polling then returns `None` after moving timers to finer levels, and
    /// asking again gives a later, tighter answer. Alternating
    /// `now = next_deadline(); poll_expired(now)` therefore fires every timer
    /// at its tick, with one wake-up per distinct tick when nothing is
    /// cancelled.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.next_expiration().map(|e| tick_instant(e.earliest))
    }

    /// Advances the wheel's clock to `now` and returns one timer that is due
    /// (`deadline <= now`, the deadline rounded up to the millisecond), or
    /// `None` when no timer is due. Call it repeatedly until it returns
    /// `None`; timers may be inserted, cancelled or rescheduled between calls.
    ///
    /// `now` may jump arbitrarily far: every overdue timer comes out, in tick
    /// order, at a cost of O(levels) per timer rather than per elapsed tick.
    /// A `now` before the wheel's current time ([`now`](Self::now)) returns
    /// `None` and changes nothing: the wheel's clock never goes back.
    pub fn poll_expired(&mut self, now: Instant) -> Option<(TimerToken, T)> {
        let now_tick = now_tick(now);
        if now_tick < self.elapsed {
            return None;
        }
        // Each pass that does not return either lands on a level-0 slot (the
        // next pass returns from it) or empties a coarser list into finer
        // ones, after which the next list due is at a finer level. So a call
        // takes at most 9 passes: the overflow list twice (once more when its
        // bound was stale), levels 5 down to 1, the level-0 slot, the return.
        // The cap only guards against a broken invariant: hitting it returns
        // `None` without moving the clock past unprocessed timers, and the
        // caller, seeing `next_deadline() <= now`, simply polls again.
        for _ in 0..MAX_PASSES {
            let current = self.head(self.current_list());
            if current != NIL {
                return self.fire(current);
            }
            match self.next_expiration() {
                Some(e) if e.start <= now_tick => {
                    self.elapsed = e.start.max(self.elapsed);
                    if e.list != self.current_list() {
                        self.redistribute(e.list);
                    }
                }
                _ => {
                    self.elapsed = now_tick;
                    return None;
                }
            }
        }
        debug_assert!(false, "timer wheel: poll_expired exceeded {MAX_PASSES} passes");
        None
    }

    /// The entry a token names, if the token is not stale.
    fn live(&self, token: TimerToken) -> Option<&Entry<T>> {
        self.entries
            .get(token.index as usize)
            .filter(|e| e.generation == token.generation && e.value.is_some())
    }

    /// Level 0's slot for the current tick: where due timers wait.
    fn current_list(&self) -> u16 {
        u16::try_from(self.elapsed & SLOT_MASK).unwrap_or(0)
    }

    fn head(&self, list: u16) -> u32 {
        self.heads.get(usize::from(list)).copied().unwrap_or(NIL)
    }

    /// The non-empty list to process first, with `earliest` lowered to the
    /// least bound of *all* lists (in practice the same list's: a coarser
    /// level's slots all start after the finer levels' timers, and the
    /// overflow list's block after every level's). Levels win ties.
    fn next_expiration(&self) -> Option<Expiration> {
        let mut best: Option<Expiration> = None;
        let mut earliest = u64::MAX;
        for level in 0..LEVELS {
            let bits = self.occupied.get(usize::from(level)).copied().unwrap_or(0);
            if bits == 0 {
                continue;
            }
            let shift = level_shift(level);
            let current = self.elapsed.checked_shr(shift).unwrap_or(0) & SLOT_MASK;
            // Every occupied slot is at or after the current one: slots the
            // clock has passed were emptied when it reached them.
            let ahead = bits.checked_shr(u32::try_from(current).unwrap_or(0)).unwrap_or(0);
            debug_assert!(ahead != 0, "timer wheel: occupied slot behind the clock");
            let slot = if ahead != 0 {
                current.saturating_add(u64::from(ahead.trailing_zeros()))
            } else {
                // Unreachable; if it were, process the slot now (late, never early).
                u64::from(bits.trailing_zeros())
            };
            let level_mask = 1u64
                .checked_shl(shift.saturating_add(SLOT_BITS))
                .map_or(u64::MAX, |span| span.wrapping_sub(1));
            let start = (self.elapsed & !level_mask) | slot.checked_shl(shift).unwrap_or(0);
            let start = start.max(self.elapsed);
            let list = level.saturating_mul(SLOTS).saturating_add(u16::try_from(slot).unwrap_or(0));
            earliest = earliest.min(self.earliest(list, start));
            if best.is_none_or(|b| start < b.start) {
                best = Some(Expiration { list, start, earliest });
            }
        }
        if self.head(OVERFLOW) != NIL {
            // Redistributed when the clock enters the 2^36-tick block of its
            // earliest entry, so every entry of a block reaches the levels
            // before the clock can place a later timer of the same tick there.
            let least = self.least.get(usize::from(OVERFLOW)).copied().unwrap_or(0);
            let start = (least & !WHEEL_MASK).max(self.elapsed);
            earliest = earliest.min(self.earliest(OVERFLOW, start));
            if best.is_none_or(|b| start < b.start) {
                best = Some(Expiration { list: OVERFLOW, start, earliest });
            }
        }
        best.map(|b| Expiration { earliest, ..b })
    }

    /// The earliest tick a timer in `list` can be due, given the tick at
    /// which the list is processed.
    fn earliest(&self, list: u16, start: u64) -> u64 {
        self.least.get(usize::from(list)).copied().unwrap_or(0).max(start)
    }

    /// Links a detached entry into the list for its deadline (clamped to the
    /// current tick).
    fn link(&mut self, index: u32) {
        let Some(entry) = self.entries.get(index as usize) else {
            return;
        };
        let tick = deadline_tick(entry.deadline).max(self.elapsed);
        let list = list_for(self.elapsed, tick);
        self.push_back(list, index, tick);
    }

    /// Appends a detached entry due at `tick` to `list`, marking the list
    /// occupied.
    fn push_back(&mut self, list: u16, index: u32, tick: u64) {
        let tail = self.tails.get(usize::from(list)).copied().unwrap_or(NIL);
        let Some(entry) = self.entries.get_mut(index as usize) else {
            return;
        };
        entry.prev = tail;
        entry.next = NIL;
        entry.list = list;
        if tail == NIL {
            if let Some(head) = self.heads.get_mut(usize::from(list)) {
                *head = index;
            }
            self.mark(list, true);
        } else if let Some(prev) = self.entries.get_mut(tail as usize) {
            prev.next = index;
        }
        if let Some(slot) = self.tails.get_mut(usize::from(list)) {
            *slot = index;
        }
        if let Some(least) = self.least.get_mut(usize::from(list)) {
            *least = tick.min(*least);
        }
    }

    /// Removes an entry from whatever list holds it. O(1).
    fn unlink(&mut self, index: u32) {
        let Some(entry) = self.entries.get_mut(index as usize) else {
            return;
        };
        let (prev, next, list) = (entry.prev, entry.next, entry.list);
        entry.prev = NIL;
        entry.next = NIL;
        entry.list = NO_LIST;
        if list == NO_LIST {
            return;
        }
        // `NIL` is never a slab index (`try_insert` refuses it), so a lookup
        // of `NIL` misses and the list's head or tail is updated instead.
        match self.entries.get_mut(prev as usize) {
            Some(p) => p.next = next,
            None => {
                if let Some(head) = self.heads.get_mut(usize::from(list)) {
                    *head = next;
                }
            }
        }
        match self.entries.get_mut(next as usize) {
            Some(n) => n.prev = prev,
            None => {
                if let Some(tail) = self.tails.get_mut(usize::from(list)) {
                    *tail = prev;
                }
            }
        }
        if self.head(list) == NIL {
            self.mark(list, false);
        }
    }

    /// Sets or clears a list's occupancy bit; an emptied list also forgets
    /// its lower bound.
    fn mark(&mut self, list: u16, occupied: bool) {
        if !occupied {
            if let Some(least) = self.least.get_mut(usize::from(list)) {
                *least = u64::MAX;
            }
        }
        if list >= OVERFLOW {
            return;
        }
        let bit = 1u64.checked_shl(u32::from(list) & SLOT_MASK as u32).unwrap_or(0);
        if let Some(bits) = self.occupied.get_mut(usize::from(list >> SLOT_BITS)) {
            if occupied {
                *bits |= bit;
            } else {
                *bits &= !bit;
            }
        }
    }

    /// Empties `list` and re-links each of its entries relative to the
    /// current tick, which moves them to finer levels (or keeps far ones in
    /// the overflow list). Order within the list is kept.
    fn redistribute(&mut self, list: u16) {
        let mut index = self.head(list);
        if let Some(head) = self.heads.get_mut(usize::from(list)) {
            *head = NIL;
        }
        if let Some(tail) = self.tails.get_mut(usize::from(list)) {
            *tail = NIL;
        }
        self.mark(list, false);
        // A list is no longer than the slab; the cap only guards a cycle.
        for _ in 0..self.entries.len() {
            let Some(entry) = self.entries.get_mut(index as usize) else {
                break;
            };
            let next = entry.next;
            entry.list = NO_LIST;
            self.link(index);
            index = next;
        }
        debug_assert!(index == NIL, "timer wheel: list longer than the slab");
    }

    /// Unlinks a due entry and hands it out.
    fn fire(&mut self, index: u32) -> Option<(TimerToken, T)> {
        self.unlink(index);
        let generation = self.entries.get(index as usize)?.generation;
        let value = self.release(index)?;
        Some((TimerToken { index, generation }, value))
    }

    /// Frees an unlinked entry: takes its value, bumps its generation so
    /// outstanding tokens go stale, and pushes it on the free list.
    fn release(&mut self, index: u32) -> Option<T> {
        let entry = self.entries.get_mut(index as usize)?;
        let value = entry.value.take()?;
        entry.generation = entry.generation.wrapping_add(1);
        entry.list = NO_LIST;
        entry.prev = NIL;
        entry.next = self.free_head;
        self.free_head = index;
        self.len = self.len.saturating_sub(1);
        Some(value)
    }
}

impl<T> core::fmt::Debug for TimerWheel<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TimerWheel")
            .field("now", &self.now())
            .field("len", &self.len)
            .field("capacity", &self.capacity())
            .field("next_deadline", &self.next_deadline())
            .finish()
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::arithmetic_side_effects, clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::rng::Rng;
    use std::collections::{BTreeMap, BTreeSet};

    const MS: u64 = 1000;
    const SEC: u64 = 1_000_000;

    fn us(micros: u64) -> Instant {
        Instant::from_micros(micros)
    }

    /// Polls until `None`, returning the values in firing order.
    fn drain<T>(w: &mut TimerWheel<T>, now: Instant) -> Vec<T> {
        let mut out = Vec::new();
        while let Some((_, v)) = w.poll_expired(now) {
            out.push(v);
        }
        out
    }

    #[test]
    fn deadlines_round_up_to_the_millisecond_and_never_fire_early() {
        let mut w = TimerWheel::with_capacity(4, Instant::ZERO);
        let t = w.insert(us(1500), "a");
        assert_eq!(w.deadline(t), Some(us(1500)), "deadline is reported as scheduled");
        assert_eq!(w.next_deadline(), Some(us(2000)));
        assert_eq!(w.poll_expired(us(1499)), None);
        assert_eq!(w.poll_expired(us(1999)), None, "due at 1.5 ms, but only whole ticks fire");
        assert_eq!(w.poll_expired(us(2000)), Some((t, "a")));
        assert_eq!(w.poll_expired(us(2000)), None);
        assert!(w.is_empty());
        assert_eq!(w.next_deadline(), None);
    }

    #[test]
    fn whole_millisecond_deadline_fires_at_that_instant() {
        let mut w = TimerWheel::with_capacity(4, us(10 * MS + 700));
        assert_eq!(w.now(), us(10 * MS), "clock starts at the tick");
        w.insert(us(250 * MS), 1);
        assert_eq!(w.next_deadline(), Some(us(250 * MS)));
        assert_eq!(drain(&mut w, us(250 * MS - 1)), Vec::<i32>::new());
        assert_eq!(drain(&mut w, us(250 * MS)), vec![1]);
    }

    #[test]
    fn past_and_current_deadlines_fire_on_the_next_poll() {
        let mut w = TimerWheel::with_capacity(4, Instant::ZERO);
        assert_eq!(drain(&mut w, us(5 * SEC + 300)), Vec::<u8>::new());
        assert_eq!(w.now(), us(5 * SEC));
        w.insert(Instant::ZERO, 1); // long past
        w.insert(us(5 * SEC), 2); // exactly the current tick
        w.insert(us(4 * SEC + 999 * MS + 1), 3); // rounds up to the current tick
        w.insert(us(5 * SEC + 300), 4); // the caller's `now`: rounds up to the next tick
        assert_eq!(w.next_deadline(), Some(us(5 * SEC)));
        assert_eq!(drain(&mut w, us(5 * SEC + 300)), vec![1, 2, 3]);
        assert_eq!(w.next_deadline(), Some(us(5 * SEC + MS)));
        assert_eq!(drain(&mut w, us(5 * SEC + MS)), vec![4]);
    }

    #[test]
    fn a_large_jump_drains_every_level_in_tick_order() {
        let mut w = TimerWheel::with_capacity(64, Instant::ZERO);
        // One timer per level and a few more between, inserted out of order.
        let ticks = [
            1u64,
            63,
            64,
            65,
            4095,
            4096,
            262_143,
            262_144,
            16_777_216,
            1 << 30,
            1 << 35,
            3,
            (1 << 36) - 1,
        ];
        for &t in ticks.iter().rev() {
            w.insert(Instant::from_millis(t), t);
        }
        let mut sorted = ticks.to_vec();
        sorted.sort_unstable();
        assert_eq!(drain(&mut w, Instant::from_millis(1 << 36)), sorted);
        assert!(w.is_empty());
    }

    #[test]
    fn same_tick_timers_fire_in_insertion_order() {
        let mut w = TimerWheel::with_capacity(16, Instant::ZERO);
        // Tick 300 000 from different distances: levels 2, 1 and 0 at insertion.
        w.insert(us(300_000 * MS - 1), 'a');
        drain(&mut w, us(299_000 * MS));
        w.insert(us(300_000 * MS), 'b');
        drain(&mut w, us(299_990 * MS));
        w.insert(us(300_000 * MS - 10), 'c');
        w.insert(us(299_999 * MS + 1), 'd');
        w.insert(us(300_001 * MS), 'e');
        assert_eq!(drain(&mut w, us(400_000 * MS)), vec!['a', 'b', 'c', 'd', 'e']);
    }

    #[test]
    fn cancel_removes_the_timer_and_a_stale_cancel_does_nothing() {
        let mut w = TimerWheel::with_capacity(4, Instant::ZERO);
        let a = w.insert(us(10 * MS), 'a');
        let b = w.insert(us(20 * MS), 'b');
        assert_eq!(w.len(), 2);
        assert_eq!(w.cancel(a), Some('a'));
        assert_eq!(w.cancel(a), None);
        assert_eq!(w.deadline(a), None);
        assert!(!w.reschedule(a, us(5 * MS)));
        assert_eq!(w.len(), 1);
        assert_eq!(w.next_deadline(), Some(us(20 * MS)));
        assert_eq!(drain(&mut w, us(SEC)), vec!['b']);
        assert_eq!(w.cancel(b), None, "a fired timer cannot be cancelled");
        assert_eq!(w.next_deadline(), None);
    }

    #[test]
    fn stale_tokens_never_touch_the_timer_that_reuses_their_slot() {
        let mut w = TimerWheel::with_capacity(1, Instant::ZERO);
        let fired = w.insert(us(MS), 1);
        assert_eq!(w.poll_expired(us(MS)), Some((fired, 1)));
        let cancelled = w.insert(us(5 * MS), 2);
        assert_eq!(cancelled.index, fired.index, "the slot is reused");
        assert_eq!(w.cancel(cancelled), Some(2));
        let live = w.insert(us(7 * MS), 3);
        assert_eq!(live.index, fired.index);
        for stale in [fired, cancelled] {
            assert_ne!(stale, live);
            assert_eq!(w.cancel(stale), None);
            assert!(!w.reschedule(stale, us(MS)));
            assert_eq!(w.deadline(stale), None);
            assert_eq!(w.get(stale), None);
            assert_eq!(w.get_mut(stale), None);
        }
        assert_eq!(w.deadline(live), Some(us(7 * MS)));
        assert_eq!(w.capacity(), 1);
        assert_eq!(w.poll_expired(us(7 * MS)), Some((live, 3)));
    }

    #[test]
    fn reschedule_moves_a_timer_and_keeps_its_token() {
        let mut w = TimerWheel::with_capacity(4, Instant::ZERO);
        let t = w.insert(us(100 * MS), 'x');
        let other = w.insert(us(50 * MS), 'o');
        // Later, into a coarser level.
        assert!(w.reschedule(t, us(3600 * SEC + 7)));
        assert_eq!(w.deadline(t), Some(us(3600 * SEC + 7)));
        assert_eq!(drain(&mut w, us(100 * MS)), vec!['o']);
        assert_eq!(w.next_deadline().map(|d| d <= us(3600 * SEC + MS)), Some(true));
        // Earlier again, then to the past: due on the next poll.
        assert!(w.reschedule(t, us(200 * MS)));
        assert_eq!(w.next_deadline(), Some(us(200 * MS)));
        assert!(w.reschedule(t, us(MS)));
        assert_eq!(w.next_deadline(), Some(us(100 * MS)), "overdue: due at the wheel's time");
        *w.get_mut(t).unwrap() = 'y';
        assert_eq!(w.get(t), Some(&'y'));
        assert_eq!(w.poll_expired(us(100 * MS)), Some((t, 'y')));
        assert!(!w.reschedule(other, us(SEC)));
    }

    #[test]
    fn timers_changed_between_polls_of_a_drain_behave() {
        let mut w = TimerWheel::with_capacity(8, Instant::ZERO);
        w.insert(us(10 * MS), 10);
        let t20 = w.insert(us(20 * MS), 20);
        let t30 = w.insert(us(30 * MS), 30);
        w.insert(us(40 * MS), 40);
        let now = us(35 * MS);
        assert_eq!(w.poll_expired(now).map(|(_, v)| v), Some(10));
        assert_eq!(w.now(), us(10 * MS), "mid-drain the clock is at the fired timer's tick");
        // Cancel one that is due, move another past `now`, add new ones.
        assert_eq!(w.cancel(t20), Some(20));
        assert!(w.reschedule(t30, us(36 * MS)));
        w.insert(us(15 * MS), 15); // due, after the last fired one
        w.insert(us(MS), 1); // overdue: treated as due now (10 ms), fires next
        w.insert(us(36 * MS), 36); // not due yet
        assert_eq!(drain(&mut w, now), vec![1, 15]);
        assert_eq!(w.now(), us(35 * MS));
        assert_eq!(drain(&mut w, us(40 * MS)), vec![30, 36, 40]);
        assert!(w.is_empty());
    }

    #[test]
    fn polling_before_the_wheel_time_returns_nothing() {
        let mut w = TimerWheel::with_capacity(4, us(SEC));
        w.insert(Instant::ZERO, 1);
        assert_eq!(w.poll_expired(us(SEC - 1)), None);
        assert_eq!(w.now(), us(SEC), "the clock does not go back");
        assert_eq!(drain(&mut w, us(SEC)), vec![1]);
    }

    #[test]
    fn next_deadline_is_never_later_than_the_earliest_timer() {
        let mut rng = Rng::seed_from_u64(11);
        let mut w = TimerWheel::with_capacity(256, Instant::ZERO);
        let mut pending: Vec<(TimerToken, u64)> = Vec::new();
        let mut now = 0u64;
        for _ in 0..20_000 {
            match rng.below(4) {
                0 | 1 => {
                    let span = [100 * MS, 10 * SEC, 3600 * SEC][rng.index(3)];
                    let d = now + rng.below(span);
                    pending.push((w.insert(us(d), d), d));
                }
                2 => {
                    if !pending.is_empty() {
                        let (t, d) = pending.swap_remove(rng.index(pending.len()));
                        assert_eq!(w.cancel(t), Some(d));
                    }
                }
                _ => {
                    now += rng.below(2 * SEC);
                    while let Some((t, d)) = w.poll_expired(us(now)) {
                        assert!(d <= now);
                        let at = pending.iter().position(|&p| p == (t, d)).unwrap();
                        pending.swap_remove(at);
                    }
                }
            }
            let earliest = pending.iter().map(|&(_, d)| d.div_ceil(MS)).min();
            let due = earliest.map(|tick| us(tick * MS).max(w.now()));
            match (w.next_deadline(), due) {
                (None, None) => {}
                (Some(next), Some(due)) => {
                    assert!(next <= due, "{next} later than the earliest timer at {due}");
                    assert!(next >= w.now());
                }
                other => panic!("next_deadline disagrees with emptiness: {other:?}"),
            }
            assert_eq!(w.len(), pending.len());
        }
    }

    /// Sleeps to `next_deadline` and drains, like a simulator or the runtime
    /// would; every timer must come out exactly at its tick, with no wasted
    /// wake-up.
    fn sleep_loop(deadlines: &[u64]) {
        let mut w = TimerWheel::with_capacity(deadlines.len(), Instant::ZERO);
        for (i, &d) in deadlines.iter().enumerate() {
            w.insert(us(d), i);
        }
        let mut fired = vec![false; deadlines.len()];
        let mut wakeups = 0usize;
        let mut last = Instant::ZERO;
        while let Some(now) = w.next_deadline() {
            assert!(now >= last, "time goes forward");
            last = now;
            wakeups += 1;
            while let Some((_, i)) = w.poll_expired(now) {
                let tick = deadlines[i].div_ceil(MS);
                assert_eq!(now, tick_instant(tick), "timer {i} fired off its tick");
                assert!(!fired[i]);
                fired[i] = true;
            }
        }
        assert!(fired.iter().all(|&f| f));
        let ticks: BTreeSet<u64> = deadlines.iter().map(|d| d.div_ceil(MS)).collect();
        assert_eq!(wakeups, ticks.len(), "one wake-up per distinct tick");
    }

    #[test]
    fn sleeping_until_next_deadline_fires_every_timer_on_its_tick() {
        let mut rng = Rng::seed_from_u64(5);
        let spread: Vec<u64> = (0..10_000).map(|_| rng.below(3 * 3600 * SEC)).collect();
        sleep_loop(&spread);
        let levels: Vec<u64> = (0..36).map(|b| (1u64 << b) * MS + 1).collect();
        sleep_loop(&levels);
        let far: Vec<u64> = vec![(1 << 36) * MS, (3 << 36) * MS + 5, u64::MAX / 2, 7 * MS];
        sleep_loop(&far);
    }

    #[test]
    fn timers_beyond_the_wheel_span_wait_in_the_overflow_list() {
        let start = us(123_456_789);
        let mut w = TimerWheel::with_capacity(8, start);
        let span = (1u64 << 36) * MS;
        let a = w.insert(us(start.as_micros() + 2 * span + 3 * MS), 'a');
        let b = w.insert(us(start.as_micros() + span), 'b');
        let never = w.insert(Instant::MAX, 'z');
        w.insert(us(start.as_micros() + 2 * span), 'c');
        assert_eq!(w.cancel(b), Some('b'));
        // The cancelled minimum leaves a stale, early bound: only a wake-up.
        let mut now = start;
        let mut woke = 0;
        let mut out = Vec::new();
        while let Some(next) = w.next_deadline() {
            if next == Instant::MAX {
                break;
            }
            assert!(next >= now);
            now = next;
            woke += 1;
            out.extend(drain(&mut w, now));
        }
        assert_eq!(out, vec!['c', 'a']);
        assert!(woke < 20, "{woke} wake-ups");
        assert_eq!(w.deadline(never), Some(Instant::MAX));
        assert_eq!(w.poll_expired(us(u64::MAX - 1)), None, "rounded up past u64::MAX - 1");
        assert_eq!(w.poll_expired(Instant::MAX), Some((never, 'z')));
        assert_eq!(w.deadline(a), None);
    }

    #[test]
    fn a_hundred_thousand_timers_over_hours() {
        const N: usize = 100_000;
        let mut rng = Rng::seed_from_u64(0x5eed);
        let start = 42 * SEC + 17;
        let mut w = TimerWheel::with_capacity(N, us(start));
        let mut deadlines = Vec::with_capacity(N);
        for i in 0..N {
            let d = start + rng.below(6 * 3600 * SEC);
            deadlines.push(d);
            w.insert(us(d), i);
        }
        assert_eq!(w.len(), N);
        let mut now = start;
        let mut prev_now = start;
        let mut last_tick = 0;
        let mut count = 0;
        while !w.is_empty() {
            now += rng.below(30 * SEC);
            while let Some((_, i)) = w.poll_expired(us(now)) {
                let d = deadlines[i];
                let tick = d.div_ceil(MS);
                assert!(d <= now, "early");
                assert!(tick > prev_now / MS, "late: was due at the previous poll");
                assert!(tick >= last_tick, "out of order");
                last_tick = tick;
                count += 1;
            }
            prev_now = now;
        }
        assert_eq!(count, N);
        assert_eq!(w.capacity(), N, "no growth");
    }

    #[test]
    fn the_slab_reuses_slots_and_grows_only_when_full() {
        let mut w = TimerWheel::with_capacity(4, Instant::ZERO);
        let first: Vec<_> = (0..4).map(|i| w.insert(us((i + 1) * MS), i)).collect();
        assert_eq!(w.capacity(), 4);
        assert_eq!(drain(&mut w, us(4 * MS)), vec![0, 1, 2, 3]);
        for round in 0..100u64 {
            let toks: Vec<_> = (0..4).map(|i| w.insert(us((10 + round) * SEC + i), i)).collect();
            assert!(toks.iter().all(|t| t.index < 4));
            for t in &first {
                assert_eq!(w.cancel(*t), None);
            }
            for t in toks {
                assert!(w.cancel(t).is_some());
            }
        }
        assert_eq!(w.capacity(), 4, "steady state below capacity never grows");
        let toks: Vec<_> = (0..5).map(|i| w.insert(us(SEC), i)).collect();
        assert!(w.capacity() >= 5, "a full slab grows");
        assert_eq!(w.len(), 5);
        assert!(toks.iter().all(|&t| w.deadline(t) == Some(us(SEC))));
        assert_eq!(drain(&mut w, us(SEC)), vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn the_same_calls_give_the_same_output() {
        fn run(seed: u64) -> Vec<(TimerToken, u64, Instant)> {
            let mut rng = Rng::seed_from_u64(seed);
            let mut w = TimerWheel::with_capacity(64, Instant::ZERO);
            let mut toks = Vec::new();
            let mut out = Vec::new();
            let mut now = 0;
            for i in 0..5_000u64 {
                match rng.below(5) {
                    0 | 1 => toks.push(w.insert(us(now + rng.below(20 * MS)), i)),
                    2 => {
                        if !toks.is_empty() {
                            w.cancel(toks[rng.index(toks.len())]);
                        }
                    }
                    3 => {
                        if !toks.is_empty() {
                            w.reschedule(toks[rng.index(toks.len())], us(now + rng.below(SEC)));
                        }
                    }
                    _ => {
                        now += rng.below(5 * MS);
                        while let Some((t, v)) = w.poll_expired(us(now)) {
                            out.push((t, v, us(now)));
                        }
                    }
                }
            }
            out
        }
        let a = run(99);
        assert!(a.len() > 1000);
        assert_eq!(a, run(99));
        assert_ne!(a, run(100));
    }

    #[test]
    fn list_placement() {
        assert_eq!(list_for(0, 0), 0);
        assert_eq!(list_for(0, 63), 63);
        assert_eq!(list_for(0, 64), SLOTS + 1);
        assert_eq!(list_for(64, 127), 63);
        assert_eq!(list_for(63, 64), SLOTS + 1, "a block boundary is a coarser level");
        assert_eq!(list_for(0, (1 << 36) - 1), 5 * SLOTS + 63);
        assert_eq!(list_for(0, 1 << 36), OVERFLOW);
        assert_eq!(list_for((1 << 36) - 1, 1 << 36), OVERFLOW);
        assert_eq!(deadline_tick(us(0)), 0);
        assert_eq!(deadline_tick(us(1)), 1);
        assert_eq!(deadline_tick(us(1000)), 1);
        assert_eq!(now_tick(us(1999)), 1);
        assert_eq!(tick_instant(now_tick(Instant::MAX)), Instant::MAX);
        assert_eq!(now_tick(Instant::MAX), deadline_tick(Instant::MAX));
    }

    mod model {
        use super::*;
        use proptest::prelude::*;
        use std::collections::HashMap;

        /// A reference wheel: a sorted map keyed by (effective tick, sequence).
        struct Model {
            elapsed: u64,
            seq: u64,
            pending: BTreeMap<(u64, u64), (TimerToken, u32)>,
            keys: HashMap<TimerToken, (u64, u64)>,
        }

        impl Model {
            fn schedule(&mut self, token: TimerToken, deadline: Instant, value: u32) {
                let tick = deadline_tick(deadline).max(self.elapsed);
                self.seq += 1;
                self.pending.insert((tick, self.seq), (token, value));
                self.keys.insert(token, (tick, self.seq));
            }
            fn cancel(&mut self, token: TimerToken) -> Option<u32> {
                let key = self.keys.remove(&token)?;
                self.pending.remove(&key).map(|(_, v)| v)
            }
            fn poll(&mut self, now: Instant) -> Option<(TimerToken, u32)> {
                let now_tick = now_tick(now);
                if now_tick < self.elapsed {
                    return None;
                }
                match self.pending.first_key_value() {
                    Some((&(tick, seq), _)) if tick <= now_tick => {
                        let (token, v) = self.pending.remove(&(tick, seq)).unwrap();
                        self.keys.remove(&token);
                        self.elapsed = tick;
                        Some((token, v))
                    }
                    _ => {
                        self.elapsed = now_tick;
                        None
                    }
                }
            }
        }

        #[derive(Clone, Debug)]
        enum Op {
            Insert(i64),
            /// Insert with the deadline of an issued timer (same tick: tests order).
            InsertLike(usize),
            /// Advance to a little before an issued timer's deadline, and drain.
            AdvanceBefore(usize, u64),
            Cancel(usize),
            Reschedule(usize, i64),
            PollOnce,
            Advance(u64),
            SleepUntilNext,
        }

        /// A deadline offset from `now` in µs; `i64::MAX` stands for `Instant::MAX`.
        fn offset() -> impl Strategy<Value = i64> {
            prop_oneof![
                4 => -5_000i64..5_000,
                4 => 0i64..70_000_000,
                2 => 0i64..(1 << 45),
                1 => -(1i64 << 40)..0,
                1 => (1i64 << 45)..(1 << 50),
                1 => Just(i64::MAX),
            ]
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                6 => offset().prop_map(Op::Insert),
                2 => any::<usize>().prop_map(Op::InsertLike),
                1 => (any::<usize>(), prop_oneof![0u64..5_000, 0u64..(1 << 40)])
                    .prop_map(|(i, d)| Op::AdvanceBefore(i, d)),
                2 => any::<usize>().prop_map(Op::Cancel),
                2 => (any::<usize>(), offset()).prop_map(|(i, o)| Op::Reschedule(i, o)),
                2 => Just(Op::PollOnce),
                3 => prop_oneof![0u64..3_000, 0u64..2_000_000, 0u64..(1 << 44), 0u64..(1 << 52)]
                    .prop_map(Op::Advance),
                1 => Just(Op::SleepUntilNext),
            ]
        }

        fn at(now: Instant, offset: i64) -> Instant {
            if offset == i64::MAX {
                Instant::MAX
            } else if offset < 0 {
                us(now.as_micros().saturating_sub(offset.unsigned_abs()))
            } else {
                us(now.as_micros().saturating_add(offset as u64))
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

            #[test]
            fn wheel_matches_a_sorted_map(
                start in prop_oneof![Just(0u64), 0u64..(1 << 50)],
                ops in proptest::collection::vec(op(), 1..250),
            ) {
                let mut now = us(start);
                let mut w = TimerWheel::with_capacity(8, now);
                let mut m = Model {
                    elapsed: now_tick(now),
                    seq: 0,
                    pending: BTreeMap::new(),
                    keys: HashMap::new(),
                };
                let mut issued: Vec<TimerToken> = Vec::new();
                let mut deadlines: HashMap<TimerToken, Instant> = HashMap::new();
                let mut next_value = 0u32;
                for op in ops {
                    let mut drain_to = None;
                    let insert_at = match op {
                        Op::Insert(off) => Some(at(now, off)),
                        Op::InsertLike(i) if !issued.is_empty() => {
                            Some(deadlines[&issued[i % issued.len()]])
                        }
                        _ => None,
                    };
                    match op {
                        Op::Insert(_) | Op::InsertLike(_) => {
                            let Some(d) = insert_at else { continue };
                            let t = w.insert(d, next_value);
                            prop_assert!(!deadlines.contains_key(&t), "token reissued");
                            m.schedule(t, d, next_value);
                            next_value += 1;
                            issued.push(t);
                            deadlines.insert(t, d);
                        }
                        Op::Cancel(i) if !issued.is_empty() => {
                            let t = issued[i % issued.len()];
                            prop_assert_eq!(w.cancel(t), m.cancel(t));
                        }
                        Op::Reschedule(i, off) if !issued.is_empty() => {
                            let t = issued[i % issued.len()];
                            let d = at(now, off);
                            let live = m.keys.contains_key(&t);
                            prop_assert_eq!(w.reschedule(t, d), live);
                            if live {
                                let v = m.cancel(t).unwrap();
                                m.schedule(t, d, v);
                                deadlines.insert(t, d);
                            }
                        }
                        Op::AdvanceBefore(i, delta) if !issued.is_empty() => {
                            let d = deadlines[&issued[i % issued.len()]];
                            drain_to = Some(us(d.as_micros().saturating_sub(delta)).max(now));
                        }
                        Op::Cancel(_) | Op::Reschedule(..) | Op::AdvanceBefore(..) => {}
                        Op::PollOnce => {
                            let got = w.poll_expired(now);
                            prop_assert_eq!(got, m.poll(now));
                        }
                        Op::Advance(delta) => {
                            drain_to = Some(us(now.as_micros().saturating_add(delta)));
                        }
                        Op::SleepUntilNext => drain_to = w.next_deadline().map(|d| d.max(now)),
                    }
                    if let Some(to) = drain_to {
                        now = to;
                        loop {
                            let got = w.poll_expired(now);
                            prop_assert_eq!(got, m.poll(now));
                            match got {
                                Some((t, _)) => prop_assert!(deadlines[&t] <= now, "fired early"),
                                None => break,
                            }
                        }
                    }
                    prop_assert_eq!(w.len(), m.pending.len());
                    prop_assert_eq!(w.now(), tick_instant(m.elapsed));
                    match m.pending.first_key_value() {
                        None => prop_assert_eq!(w.next_deadline(), None),
                        Some((&(tick, _), _)) => {
                            let next = w.next_deadline().unwrap();
                            prop_assert!(next <= tick_instant(tick), "oversleeps");
                            prop_assert!(next >= w.now());
                        }
                    }
                    for (&t, &(tick, _)) in m.keys.iter().take(4) {
                        prop_assert_eq!(w.deadline(t), Some(deadlines[&t]));
                        prop_assert!(deadline_tick(deadlines[&t]) <= tick.max(m.elapsed));
                    }
                }
            }
        }
    }
}
