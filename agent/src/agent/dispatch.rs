//! The agent's event pipeline, on its own thread, in Go's order: raw engine
//! events go to the snapshot, then through the coalescers, then to the
//! event handlers and the RPC streams. Completion events resolve the
//! channels [`super::AgentHandle`] handed out; log lines go to the logger.

use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, TrySendError};
use engine::proto::serf::{Event, MemberEventKind};

use super::coalesce::{Coalesced, Coalescer};
use super::handlers::Runner;
use super::log::Level;
use super::snapshot::Snapshotter;
use super::{
    lock, matches, multierror, JoinOutcome, QueryRecord, Shared, ShutdownReason, StreamItem,
};
use crate::metrics::Counters;

/// How often the snapshot's member clock is checked and its file flushed.
const TICK: Duration = Duration::from_millis(500);

pub(super) struct Dispatcher {
    shared: Arc<Shared>,
    events: Receiver<Event>,
    snapshot: Option<Snapshotter>,
    handlers: Option<Runner>,
    coalescer: Coalescer,
}

impl Dispatcher {
    pub fn new(
        shared: Arc<Shared>,
        events: Receiver<Event>,
        snapshot: Option<Snapshotter>,
        handlers: Option<Runner>,
    ) -> Self {
        Dispatcher { shared, events, snapshot, handlers, coalescer: Coalescer::agent() }
    }

    pub fn run(mut self) {
        let mut next_tick = self.shared.clock.now() + TICK;
        loop {
            let now = self.shared.clock.now();
            while let Some(c) = self.coalescer.poll(now) {
                self.deliver(c);
            }
            if now >= next_tick {
                next_tick = now + TICK;
                self.tick();
            }
            // Without a snapshot there is nothing periodic to do: sleep until
            // the coalescer's next flush or the next event.
            let tick = self.snapshot.is_some().then_some(next_tick);
            let wake = match (self.coalescer.next_deadline(), tick) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let received = match wake {
                Some(w) => {
                    let timeout =
                        w.saturating_since(self.shared.clock.now()).max(Duration::from_millis(1));
                    self.events.recv_timeout(timeout)
                }
                None => self.events.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            match received {
                Ok(e) => self.on_event(e),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        for c in self.coalescer.flush() {
            self.deliver(c);
        }
        if let Some(s) = self.snapshot.take() {
            s.close();
        }
        if let Some(h) = self.handlers.take() {
            h.stop();
        }
    }

    /// Every 500 ms: record the member clock in the snapshot.
    fn tick(&mut self) {
        if let Some(s) = &mut self.snapshot {
            if let Ok((clock, _, _)) = self.shared.serf.call(|s, _| s.clocks()) {
                s.clock(clock);
            }
            s.flush();
        }
    }

    fn notify(&self) {
        let n = lock(&self.shared.notifier).clone();
        if let Some(f) = n {
            f();
        }
        self.shared.view.wake();
    }

    fn on_event(&mut self, e: Event) {
        let now = self.shared.clock.now();
        match e {
            Event::Log(l) => self.shared.logger.log(l.level.into(), l.component, &l.text),
            Event::Member { kind, member } => {
                let c = &self.shared.counters;
                Counters::inc(match kind {
                    MemberEventKind::Join => &c.member_join,
                    MemberEventKind::Leave => &c.member_left,
                    MemberEventKind::Failed => &c.member_failed,
                    MemberEventKind::Update => &c.member_update,
                    MemberEventKind::Reap => &c.member_reap,
                });
                self.shared.view.bump();
                if let Some(s) = &mut self.snapshot {
                    s.member(kind, &member);
                    if let Ok((clock, _, _)) = self.shared.serf.call(|s, _| s.clocks()) {
                        s.clock(clock);
                    }
                }
                self.coalescer.push(now, Event::Member { kind, member });
            }
            Event::User(u) => {
                Counters::inc(&self.shared.counters.events);
                if let Some(s) = &mut self.snapshot {
                    s.event_clock(u.ltime);
                }
                self.coalescer.push(now, Event::User(u));
            }
            Event::Query(q) => {
                Counters::inc(&self.shared.counters.queries);
                if let Some(s) = &mut self.snapshot {
                    s.query_clock(q.ltime);
                }
                self.coalescer.push(now, Event::Query(q));
            }
            Event::QueryAck { id, from } => {
                Counters::inc(&self.shared.counters.query_acks);
                self.query_record(id, QueryRecord::Ack { from: from.to_string() })
            }
            Event::QueryResponse { id, from, payload } => {
                Counters::inc(&self.shared.counters.query_responses);
                self.query_record(id, QueryRecord::Response { from: from.to_string(), payload })
            }
            Event::QueryDone { id } => {
                self.query_record(id, QueryRecord::Done);
                lock(&self.shared.waiters).queries.remove(&id);
            }
            Event::JoinDone { id, joined, errors } => {
                let (tx, mut all) = match lock(&self.shared.waiters).joins.remove(&id) {
                    Some((tx, pre)) => (Some(tx), pre),
                    None => (None, Vec::new()),
                };
                all.extend(errors);
                let errors = all;
                let outcome = if joined > 0 {
                    self.shared.logger.log(
                        Level::Info,
                        "agent",
                        &format!("joined: {joined} nodes"),
                    );
                    JoinOutcome { joined, error: None }
                } else {
                    let text = if errors.is_empty() {
                        multierror(&["no addresses to join".to_string()])
                    } else {
                        multierror(&errors)
                    };
                    self.shared.logger.log(Level::Warn, "agent", &format!("error joining: {text}"));
                    JoinOutcome { joined: 0, error: Some(text) }
                };
                if let Some(tx) = tx {
                    let _ = tx.send(outcome);
                    self.notify();
                }
            }
            // Like Go, the snapshot records the leave when it starts, so the
            // leave's own member events (ours included) are not recorded.
            Event::LeaveStarted => {
                if let Some(s) = &mut self.snapshot {
                    s.leave();
                }
            }
            Event::LeaveDone { error } => {
                if let Some(tx) = lock(&self.shared.waiters).leave.take() {
                    let _ = tx.send(error.map_or(Ok(()), Err));
                }
                self.notify();
            }
            Event::ForceLeaveDone { id, error } => {
                if let Some(tx) = lock(&self.shared.waiters).force_leaves.remove(&id) {
                    let _ = tx.send(error.map_or(Ok(()), Err));
                }
                self.notify();
            }
            Event::TagsDone { id, error } => {
                if let Some(tx) = lock(&self.shared.waiters).tags.remove(&id) {
                    let _ = tx.send(error.map_or(Ok(()), Err));
                }
                self.notify();
            }
            Event::KeysDone { id, response, error } => {
                if let Some(tx) = lock(&self.shared.waiters).keys.remove(&id) {
                    let _ = tx.send((response, error));
                }
                self.notify();
            }
            Event::KeyringChanged => self.persist_keyring(),
            Event::Shutdown { reason } => {
                let _ = self.shared.shutdown_tx.send(ShutdownReason::Engine(reason));
            }
        }
    }

    /// Forwards a record of query `id` to its RPC stream, and ends the
    /// stream with `Done` once every node due has replied
    /// ([`super::QueryWaiter`]); later records of that query are dropped.
    fn query_record(&self, id: u64, r: QueryRecord) {
        let mut waiters = lock(&self.shared.waiters);
        let Some(w) = waiters.queries.get_mut(&id) else { return };
        let complete = match &r {
            QueryRecord::Ack { from } => w.reply(from, true),
            QueryRecord::Response { from, .. } => w.reply(from, false),
            QueryRecord::Done => false,
        };
        let _ = w.tx.send(r);
        if complete {
            let _ = w.tx.send(QueryRecord::Done);
            waiters.queries.remove(&id);
        }
        drop(waiters);
        self.notify();
    }

    /// Rewrites the keyring file (JSON array of base64 keys, primary first).
    fn persist_keyring(&self) {
        let Some(path) = self.shared.keyring_file.clone() else { return };
        let keys = self.shared.serf.call(|s, _| {
            s.keyring().map(|k| k.keys().map(engine::proto::serf::base64).collect::<Vec<_>>())
        });
        let Ok(Some(keys)) = keys else { return };
        let out = crate::go::json::Out::Array(
            keys.iter().map(|k| crate::go::json::Out::str(k)).collect(),
        );
        let text = crate::go::json::marshal_indent(&out);
        if let Err(e) = super::write_json_file(&path, &text) {
            self.shared.logger.log(
                Level::Err,
                "agent",
                &format!("Failed to write keyring file: {e}"),
            );
        }
    }

    /// One coalesced output: log it, run handlers, feed RPC streams.
    fn deliver(&mut self, c: Coalesced) {
        let (kind, name, item) = match c {
            Coalesced::Members { kind, members } => {
                let ev = kind.as_str();
                (ev, String::new(), StreamItem::Members { event: ev, members })
            }
            Coalesced::Event(Event::User(u)) => (
                "user",
                u.name.clone(),
                StreamItem::User {
                    ltime: u.ltime,
                    name: u.name,
                    payload: u.payload,
                    coalesce: u.coalesce,
                },
            ),
            Coalesced::Event(Event::Query(q)) => (
                "query",
                q.name.clone(),
                StreamItem::Query {
                    id: q.id,
                    ltime: q.ltime,
                    name: q.name,
                    payload: q.payload,
                    deadline: q.deadline,
                },
            ),
            Coalesced::Event(_) => return,
        };
        let described = match &item {
            StreamItem::Members { event, .. } => event.to_string(),
            StreamItem::User { name, .. } => format!("user-event: {name}"),
            StreamItem::Query { name, .. } => format!("query: {name}"),
        };
        self.shared.logger.log(Level::Info, "agent", &format!("Received event: {described}"));
        if let Some(h) = &self.handlers {
            h.dispatch(&item);
        }
        let mut dropped = 0;
        lock(&self.shared.subscribers).retain(|s| {
            if !matches(&s.filters, kind, &name) {
                return true;
            }
            match s.tx.try_send(item.clone()) {
                Ok(()) => true,
                Err(TrySendError::Full(_)) => {
                    dropped += 1;
                    true
                }
                Err(TrySendError::Disconnected(_)) => false,
            }
        });
        if dropped > 0 {
            Counters::add(&self.shared.counters.stream_drops, dropped);
            self.shared.logger.log(
                Level::Warn,
                "agent.ipc",
                &format!("Dropping event to {dropped} slow stream(s)"),
            );
        }
        self.notify();
    }
}
