//! User events (`protocol/serf.md` §7): size limits, the recent-event ring
//! with its dedupe, delivery and rebroadcast.

use super::config::USER_EVENT_SIZE_SANE_LIMIT;
use super::{Encoded, Event, Level, SerfState, UserEvent};
use crate::time::Instant;
use wire::serf::{BufferedEvent, UserEvent as UserEventMsg};

/// A buffered event: name and payload (nil kept distinct from empty).
pub(super) type Buffered = (String, Option<Vec<u8>>);

/// One ring slot as seen by the push-pull encoder.
pub(super) type BucketView<'a> = Option<(u64, &'a [Buffered])>;

/// Events seen at one Lamport time.
#[derive(Clone, Debug, Default)]
pub(super) struct Slot {
    pub ltime: u64,
    pub events: Vec<Buffered>,
}

/// The recent-event ring: slot = LTime mod size. Gossiped whole in push-pull.
#[derive(Debug)]
pub(super) struct EventRing {
    pub slots: Vec<Option<Slot>>,
}

impl EventRing {
    pub fn new(size: usize) -> Self {
        EventRing { slots: vec![None; size.max(1)] }
    }

    fn index(&self, ltime: u64) -> usize {
        (ltime % self.slots.len() as u64) as usize
    }

    /// Records an event; false if it is a duplicate (same LTime, name and
    /// payload, nil = empty).
    fn record(&mut self, ltime: u64, name: &str, payload: Option<&[u8]>) -> bool {
        let i = self.index(ltime);
        // `index` is below the ring's length, which is never 0.
        let Some(slot) = self.slots.get_mut(i) else { return false };
        match slot {
            Some(s) if s.ltime == ltime => {
                let p = payload.unwrap_or(&[]);
                if s.events.iter().any(|(n, q)| n == name && q.as_deref().unwrap_or(&[]) == p) {
                    return false;
                }
            }
            _ => *slot = Some(Slot { ltime, events: Vec::new() }),
        }
        if let Some(s) = slot {
            s.events.push((name.to_string(), payload.map(<[u8]>::to_vec)));
        }
        true
    }

    /// The slots as push-pull entries.
    pub fn buckets(&self) -> impl ExactSizeIterator<Item = BucketView<'_>> {
        self.slots.iter().map(|s| s.as_ref().map(|s| (s.ltime, &s.events[..])))
    }
}

/// A buffered event as a wire view.
pub(super) fn view(e: &Buffered) -> BufferedEvent<'_> {
    BufferedEvent { name: &e.0, payload: e.1.as_deref() }
}

impl SerfState {
    /// Sends a user event (`UserEvent`): size checks, local delivery, queue.
    pub(super) fn send_user_event(
        &mut self,
        now: Instant,
        name: &str,
        payload: &[u8],
        coalesce: bool,
    ) -> Result<(), String> {
        let limit = self.config.user_event_size_limit;
        let size = name.len() + payload.len();
        if size > limit {
            return Err(super::limits::user_event_too_large(limit));
        }
        if size > USER_EVENT_SIZE_SANE_LIMIT {
            return Err(format!(
                "user event exceeds sane limit of {USER_EVENT_SIZE_SANE_LIMIT} bytes before encoding"
            ));
        }
        let msg = UserEventMsg {
            ltime: self.event_clock.time(),
            name,
            payload: (!payload.is_empty()).then_some(payload),
            cc: coalesce,
        };
        let raw = msg.encoded();
        if raw.len() > limit {
            return Err(format!(
                "encoded user event exceeds configured limit of {limit} bytes after encoding"
            ));
        }
        if raw.len() > USER_EVENT_SIZE_SANE_LIMIT {
            return Err(format!(
                "encoded user event exceeds sane limit of {USER_EVENT_SIZE_SANE_LIMIT} bytes after encoding"
            ));
        }
        self.event_clock.increment();
        self.handle_user_event(now, &msg);
        self.events_q.push(None, &raw, None);
        Ok(())
    }

    /// A user event arrived (`handleUserEvent`); true means rebroadcast it.
    pub(super) fn handle_user_event(&mut self, _now: Instant, e: &UserEventMsg<'_>) -> bool {
        self.event_clock.witness(e.ltime);
        if e.ltime < self.event_min_time {
            return false;
        }
        let cur = self.event_clock.time();
        let size = self.event_ring.slots.len() as u64;
        if cur > size && e.ltime < cur - size {
            let text =
                format!("received old event {} from time {} (current: {})", e.name, e.ltime, cur);
            self.log(Level::Warn, "serf", text);
            return false;
        }
        if !self.event_ring.record(e.ltime, e.name, e.payload) {
            return false;
        }
        self.emit(Event::User(UserEvent {
            ltime: e.ltime,
            name: e.name.to_string(),
            payload: e.payload.unwrap_or(&[]).to_vec(),
            coalesce: e.cc,
        }));
        true
    }
}
