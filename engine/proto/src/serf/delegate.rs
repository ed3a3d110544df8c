//! Serf as memberlist's delegate (`protocol/serf.md` §1, §6, §10, §11):
//! message dispatch and rebroadcast, piggybacked broadcasts from the three
//! queues, push-pull state, coordinates in acks, membership notifications.

use core::time::Duration;

use super::events::view;
use super::{Deferred, Level, SerfState};
use crate::memberlist::{Delegate, NodeInfo};
use crate::time::Instant;
use wire::coordinate::{Coordinate, PING_VERSION};
use wire::msgpack::{Dialect, Writer};
use wire::serf::{write_event_bucket, Join, Leave, PushPull, SerfMessage, SerfType, UserEvent};

impl Delegate for SerfState {
    fn notify_msg(&mut self, now: Instant, body: &[u8]) {
        let msg = match SerfMessage::decode(body) {
            Ok(m) => m,
            Err(wire::Error::UnknownType(t)) => {
                self.log(Level::Warn, "serf", format!("Received message of unknown type: {t}"));
                return;
            }
            Err(e) => {
                self.log(Level::Error, "serf", format!("Failed to decode message: {e}"));
                return;
            }
        };
        // Rebroadcasts are exact copies of the received bytes.
        match msg {
            SerfMessage::Leave(l) => {
                if self.handle_leave_intent(now, &l) {
                    self.intents_q.push(None, body, None);
                }
            }
            SerfMessage::Join(j) => {
                if self.handle_join_intent(now, &j) {
                    self.intents_q.push(None, body, None);
                }
            }
            SerfMessage::UserEvent(e) => {
                if self.handle_user_event(now, &e) {
                    self.events_q.push(None, body, None);
                }
            }
            SerfMessage::Query(q) => {
                if self.handle_query(now, &q) {
                    self.queries_q.push(None, body, None);
                }
            }
            SerfMessage::QueryResponse(r) => self.handle_query_response(&r),
            SerfMessage::Relay(r) => self.handle_relay(&r),
            SerfMessage::PushPull(_)
            | SerfMessage::ConflictResponse(_)
            | SerfMessage::KeyRequest(_)
            | SerfMessage::KeyResponse(_) => {
                let t = body.first().copied().unwrap_or(0);
                self.log(Level::Warn, "serf", format!("Received message of unknown type: {t}"));
            }
        }
    }

    fn get_broadcasts(
        &mut self,
        overhead: usize,
        limit: usize,
        push: &mut dyn FnMut(&[u8]) -> bool,
    ) {
        // Intents first, then queries, then events (each with what is left).
        let n = self.members.len();
        let mut more = true;
        let mut used = 0;
        for q in [&mut self.intents_q, &mut self.queries_q, &mut self.events_q] {
            if !more {
                break;
            }
            used += q.fill(overhead, limit.saturating_sub(used), n, |m| {
                more = push(m);
                more
            });
        }
    }

    fn local_state(&mut self, _join: bool, out: &mut Vec<u8>) {
        let status: Vec<(&str, u64)> =
            self.members.iter().map(|m| (&*m.member.name, m.status_ltime)).collect();
        let left: Vec<&str> = self.members.left.iter().map(|n| &**n).collect();
        let enc = |w: &mut Writer<'_>| -> wire::Result<()> {
            w.byte(SerfType::PushPull as u8)?;
            w.map_len(6)?;
            w.key("EventLTime")?;
            w.uint(self.event_clock.time())?;
            w.key("Events")?;
            w.array_len(self.event_ring.slots.len())?;
            for slot in self.event_ring.buckets() {
                match slot {
                    Some((ltime, events)) => {
                        write_event_bucket(w, ltime, Some(events.iter().map(view)))?
                    }
                    None => w.nil()?,
                }
            }
            w.key("LTime")?;
            w.uint(self.clock.time())?;
            w.key("LeftMembers")?;
            w.array_len(left.len())?;
            for n in &left {
                w.str(n)?;
            }
            w.key("QueryLTime")?;
            w.uint(self.query_clock.time())?;
            w.key("StatusLTimes")?;
            w.map_len(status.len())?;
            for (n, t) in &status {
                w.str(n)?;
                w.uint(*t)?;
            }
            Ok(())
        };
        let mut c = Writer::counting(Dialect::Gossip);
        if enc(&mut c).is_err() {
            return;
        }
        let start = out.len();
        out.resize(start + c.len(), 0);
        let written = out.get_mut(start..).map(|area| enc(&mut Writer::new(area, Dialect::Gossip)));
        if !matches!(written, Some(Ok(()))) {
            out.truncate(start);
        }
    }

    fn merge_remote_state(&mut self, now: Instant, state: &[u8], join: bool) {
        let pp = match SerfMessage::decode(state) {
            Ok(SerfMessage::PushPull(pp)) => pp,
            Ok(_) => {
                self.log(Level::Error, "serf", "Remote state has bad type prefix".into());
                return;
            }
            Err(e) => {
                self.log(Level::Error, "serf", format!("Failed to decode remote state: {e}"));
                return;
            }
        };
        self.merge_push_pull(now, &pp, join);
    }

    fn ack_payload(&mut self, out: &mut [u8]) -> usize {
        let Some(c) = &self.coord else { return 0 };
        let coord = c.coordinate();
        let mut w = Writer::new(out, Dialect::Gossip);
        match coord.encode_ping_payload(&mut w) {
            Ok(()) => w.len(),
            Err(_) => 0,
        }
    }

    fn notify_ping_complete(
        &mut self,
        _now: Instant,
        node: &NodeInfo<'_>,
        rtt: Duration,
        payload: &[u8],
    ) {
        let Some(client) = self.coord.as_mut() else { return };
        let Some(&version) = payload.first() else { return };
        if version != PING_VERSION {
            let text = format!("Unsupported ping version: {version}");
            self.log(Level::Error, "serf", text);
            return;
        }
        let other = match Coordinate::decode_ping_payload(payload) {
            Ok(c) => c,
            Err(e) => {
                self.log(
                    Level::Error,
                    "serf",
                    format!("Failed to decode coordinate from ping: {e}"),
                );
                return;
            }
        };
        let Some(m) = self.members.get_mut(node.name) else { return };
        match client.update(&mut m.latency, &other, rtt, &mut self.rng) {
            Ok(_) => {
                let own = client.coordinate();
                self.coord_cache.insert(node.name.clone(), other);
                let me = self.name.clone();
                self.coord_cache.insert(me, own);
            }
            Err(e) => {
                self.log(
                    Level::Error,
                    "serf",
                    format!("Rejected coordinate from {}: {e}", node.name),
                );
            }
        }
    }

    fn notify_join(&mut self, now: Instant, node: &NodeInfo<'_>) {
        self.node_joined(now, node);
    }

    fn notify_leave(&mut self, now: Instant, node: &NodeInfo<'_>) {
        self.node_left(now, node);
    }

    fn notify_update(&mut self, _now: Instant, node: &NodeInfo<'_>) {
        self.node_updated(node);
    }

    fn notify_conflict(&mut self, _now: Instant, existing: &NodeInfo<'_>, other: &NodeInfo<'_>) {
        if **existing.name != *self.name {
            let text = format!(
                "Name conflict for '{}' both {} and {} are claiming",
                existing.name, existing.addr, other.addr
            );
            self.log(Level::Warn, "serf", text);
            return;
        }
        let resolve = self.config.enable_name_conflict_resolution;
        let text = format!(
            "Node name conflicts with another node at {}. Names must be unique! (Resolution enabled: {resolve})",
            other.addr
        );
        self.log(Level::Error, "serf", text);
        if resolve && self.conflict_vote.is_none() {
            self.deferred.push(Deferred::ResolveConflict);
        }
    }
}

impl SerfState {
    /// `MergeRemoteState` (§6): clocks, left members, status times, events.
    fn merge_push_pull(&mut self, now: Instant, pp: &PushPull<'_>, join: bool) {
        if pp.ltime > 0 {
            self.clock.witness(pp.ltime - 1);
        }
        if pp.event_ltime > 0 {
            self.event_clock.witness(pp.event_ltime - 1);
        }
        if pp.query_ltime > 0 {
            self.query_clock.witness(pp.query_ltime - 1);
        }
        let status = pp.status_ltimes;
        let left = pp.left_members;
        // Left members first: a leave one past the join time recorded for them.
        for name in left.iter().flat_map(|l| l.iter()) {
            let ltime = status.and_then(|s| s.get(name)).unwrap_or(0).saturating_add(1);
            self.handle_leave_intent(now, &Leave { ltime, node: name, prune: false });
        }
        for (name, ltime) in status.iter().flat_map(|s| s.iter()) {
            if left.is_some_and(|l| l.iter().any(|n| n == name)) {
                continue;
            }
            self.handle_join_intent(now, &Join { ltime, node: name });
        }
        if join && self.event_join_ignore && pp.event_ltime > self.event_min_time {
            self.event_min_time = pp.event_ltime;
        }
        for bucket in pp.events.iter().flat_map(|r| r.iter()).flatten() {
            for e in bucket.events.iter().flat_map(|l| l.iter()) {
                let msg =
                    UserEvent { ltime: bucket.ltime, name: e.name, payload: e.payload, cc: false };
                self.handle_user_event(now, &msg);
            }
        }
    }
}
