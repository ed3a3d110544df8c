//! Event coalescing as the Serf agent configures it (`protocol/serf.md`
//! §7.3): a batch is flushed `quiescent` after its last event or `period`
//! after its first, whichever comes first.
//!
//! * member events: per member only the latest event type survives; a
//!   type equal to the last one emitted for that member is suppressed,
//!   except `member-update`. Go never clears its pending map, so it
//!   re-emits every past `member-update` on each later flush; that is a
//!   bug, and we emit each update once.
//! * user events with the coalesce flag: per event name only the events of
//!   the highest Lamport time in the batch survive.
//!
//! Everything else passes through at once. Sans-IO: the caller passes
//! `now`, drains [`Coalescer::poll`], and wakes at [`Coalescer::next_deadline`].

use core::time::Duration;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use engine::proto::serf::{Event, Member, MemberEventKind, UserEvent};
use engine::time::Instant;

/// What comes out of the coalescer.
#[derive(Clone, Debug, PartialEq)]
pub enum Coalesced {
    /// A batch of members that had the same (latest) event.
    Members { kind: MemberEventKind, members: Vec<Member> },
    /// Any other event, unchanged (user events, queries, ...).
    Event(Event),
}

#[derive(Debug, Default)]
struct Window {
    quantum: Option<Instant>,
    quiescent: Option<Instant>,
}

impl Window {
    fn touch(&mut self, now: Instant, period: Duration, quiescent: Duration) {
        if self.quantum.is_none() {
            self.quantum = Some(now + period);
        }
        self.quiescent = Some(now + quiescent);
    }
    fn due(&self, now: Instant) -> bool {
        self.deadline().is_some_and(|d| d <= now)
    }
    fn deadline(&self) -> Option<Instant> {
        match (self.quantum, self.quiescent) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// The agent's pair of coalescers.
#[derive(Debug)]
pub struct Coalescer {
    period: Duration,
    quiescent: Duration,
    member_window: Window,
    latest: BTreeMap<Arc<str>, (MemberEventKind, Member)>,
    last_sent: BTreeMap<Arc<str>, MemberEventKind>,
    user_window: Window,
    users: BTreeMap<String, (u64, Vec<UserEvent>)>,
    out: VecDeque<Coalesced>,
}

impl Coalescer {
    /// Coalescing with the agent's settings: 3 s period, 1 s quiescence.
    pub fn agent() -> Self {
        Self::new(Duration::from_secs(3), Duration::from_secs(1))
    }

    /// Coalescing with the given periods.
    pub fn new(period: Duration, quiescent: Duration) -> Self {
        Coalescer {
            period,
            quiescent,
            member_window: Window::default(),
            latest: BTreeMap::new(),
            last_sent: BTreeMap::new(),
            user_window: Window::default(),
            users: BTreeMap::new(),
            out: VecDeque::new(),
        }
    }

    /// Takes an event in.
    pub fn push(&mut self, now: Instant, e: Event) {
        match e {
            Event::Member { kind, member } => {
                self.member_window.touch(now, self.period, self.quiescent);
                self.latest.insert(member.name.clone(), (kind, member));
            }
            Event::User(u) if u.coalesce => {
                self.user_window.touch(now, self.period, self.quiescent);
                match self.users.get_mut(&u.name) {
                    Some((lt, evs)) if *lt == u.ltime => evs.push(u),
                    Some((lt, _)) if *lt > u.ltime => {}
                    _ => {
                        self.users.insert(u.name.clone(), (u.ltime, vec![u]));
                    }
                }
            }
            other => self.out.push_back(Coalesced::Event(other)),
        }
        self.flush_due(now);
    }

    fn flush_due(&mut self, now: Instant) {
        if self.user_window.due(now) {
            self.user_window = Window::default();
            for (_, (_, evs)) in core::mem::take(&mut self.users) {
                self.out.extend(evs.into_iter().map(|u| Coalesced::Event(Event::User(u))));
            }
        }
        if self.member_window.due(now) {
            self.member_window = Window::default();
            let mut batches: Vec<(MemberEventKind, Vec<Member>)> = Vec::new();
            for (name, (kind, member)) in core::mem::take(&mut self.latest) {
                if self.last_sent.get(&name) == Some(&kind) && kind != MemberEventKind::Update {
                    continue;
                }
                self.last_sent.insert(name, kind);
                match batches.iter_mut().find(|(k, _)| *k == kind) {
                    Some((_, ms)) => ms.push(member),
                    None => batches.push((kind, vec![member])),
                }
            }
            self.out.extend(
                batches.into_iter().map(|(kind, members)| Coalesced::Members { kind, members }),
            );
        }
    }

    /// The next output due at `now`, if any.
    pub fn poll(&mut self, now: Instant) -> Option<Coalesced> {
        self.flush_due(now);
        self.out.pop_front()
    }

    /// Flushes everything pending regardless of time (shutdown).
    pub fn flush(&mut self) -> Vec<Coalesced> {
        let far = Instant::MAX;
        self.flush_due(far);
        self.out.drain(..).collect()
    }

    /// When the next batch is due.
    pub fn next_deadline(&self) -> Option<Instant> {
        match (self.member_window.deadline(), self.user_window.deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::proto::serf::MemberStatus;
    use std::net::{IpAddr, Ipv4Addr};

    fn member(name: &str) -> Member {
        Member {
            name: Arc::from(name),
            addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 7946,
            tags: Arc::default(),
            status: MemberStatus::Alive,
            vsn: [1, 5, 2, 2, 5, 5],
        }
    }

    fn user(name: &str, ltime: u64, cc: bool) -> Event {
        Event::User(UserEvent { ltime, name: name.into(), payload: vec![], coalesce: cc })
    }

    fn drain(c: &mut Coalescer, now: Instant) -> Vec<Coalesced> {
        std::iter::from_fn(|| c.poll(now)).collect()
    }

    #[test]
    fn member_events_batch_latest_type_per_member() {
        let mut c = Coalescer::agent();
        let t0 = Instant::from_millis(10_000);
        c.push(t0, Event::Member { kind: MemberEventKind::Join, member: member("a") });
        c.push(t0, Event::Member { kind: MemberEventKind::Join, member: member("b") });
        c.push(t0, Event::Member { kind: MemberEventKind::Failed, member: member("b") });
        assert!(drain(&mut c, t0 + Duration::from_millis(999)).is_empty());
        let out = drain(&mut c, t0 + Duration::from_secs(1));
        assert_eq!(
            out,
            vec![
                Coalesced::Members { kind: MemberEventKind::Join, members: vec![member("a")] },
                Coalesced::Members { kind: MemberEventKind::Failed, members: vec![member("b")] },
            ]
        );
        // The same type again for a member is suppressed; update never is.
        let t1 = t0 + Duration::from_secs(5);
        c.push(t1, Event::Member { kind: MemberEventKind::Join, member: member("a") });
        c.push(t1, Event::Member { kind: MemberEventKind::Update, member: member("b") });
        let out = drain(&mut c, t1 + Duration::from_secs(2));
        assert_eq!(
            out,
            vec![Coalesced::Members { kind: MemberEventKind::Update, members: vec![member("b")] }]
        );
        c.push(
            t1 + Duration::from_secs(3),
            Event::Member { kind: MemberEventKind::Update, member: member("b") },
        );
        assert_eq!(drain(&mut c, t1 + Duration::from_secs(9)).len(), 1);
        // And nothing is re-emitted on a later unrelated flush.
        c.push(
            t1 + Duration::from_secs(20),
            Event::Member { kind: MemberEventKind::Join, member: member("z") },
        );
        assert_eq!(
            drain(&mut c, t1 + Duration::from_secs(30)),
            vec![Coalesced::Members { kind: MemberEventKind::Join, members: vec![member("z")] }]
        );
    }

    #[test]
    fn the_period_caps_a_busy_window() {
        let mut c = Coalescer::agent();
        let t0 = Instant::from_millis(0);
        for i in 0..10 {
            // An event every 500 ms keeps the quiescent timer from firing.
            c.push(
                t0 + Duration::from_millis(500 * i),
                Event::Member { kind: MemberEventKind::Join, member: member(&format!("m{i}")) },
            );
            if i < 6 {
                assert!(c.out.is_empty(), "{i}");
            }
        }
        assert_eq!(
            c.next_deadline(),
            Some(t0 + Duration::from_millis(4_500 + 1_000)).min(c.next_deadline())
        );
    }

    #[test]
    fn user_events_keep_the_newest_ltime_per_name() {
        let mut c = Coalescer::agent();
        let t0 = Instant::from_millis(0);
        c.push(t0, user("deploy", 3, true));
        c.push(t0, user("deploy", 5, true));
        c.push(t0, user("deploy", 5, true));
        c.push(t0, user("deploy", 4, true));
        c.push(t0, user("other", 1, true));
        c.push(t0, user("now", 9, false));
        assert_eq!(drain(&mut c, t0), vec![Coalesced::Event(user("now", 9, false))]);
        let out = drain(&mut c, t0 + Duration::from_secs(1));
        assert_eq!(
            out,
            vec![
                Coalesced::Event(user("deploy", 5, true)),
                Coalesced::Event(user("deploy", 5, true)),
                Coalesced::Event(user("other", 1, true)),
            ]
        );
    }
}
