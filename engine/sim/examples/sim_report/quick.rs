//! The quick deterministic figures `scripts/regress` compares with
//! `results/regress.json`: small fixed simulations (fixed seeds, virtual
//! time, integer counters) that finish in seconds, printed as one JSON
//! object of flat `name: integer` figures. Any change in protocol behaviour
//! or in the simulator moves at least one of them.
//!
//! - `ml100_loss{0,5}.*`: the sweep point at 100 memberlist nodes (join,
//!   60 s idle traffic, kill one, time until every survivor sees it dead).
//! - `serf100.*`: 100 Serf nodes join; a user event fired on one node until
//!   all 100 delivered it; a query with acks until all 100 acked; a
//!   graceful leave until every other node lists the node as left; a kill
//!   until every survivor lists it as failed; traffic totals at the end.
//! - `ml500.*`: 500 memberlist nodes join node 0 at once: time until
//!   convergence and the traffic it took.

use std::collections::BTreeSet;
use std::time::Duration;

use proto::memberlist::Config;
use proto::serf::{Event, MemberStatus, QueryParams};
use serde_json::{json, Map, Value};
use sim::cluster::{
    cluster, join_all, node_name, serf_cluster, serf_converged, serf_join_all, Node, SerfNode,
};
use sim::{NetConfig, Sim};

use crate::results;

/// Checks are made this often (virtual time).
const CHECK: Duration = Duration::from_millis(100);
/// A phase that has not finished by then is reported as `-1`.
const LIMIT: Duration = Duration::from_secs(300);

/// Runs in steps of [`CHECK`] until `done` holds or [`LIMIT`] passes;
/// returns the virtual milliseconds to the first check that held, or -1.
fn ms_until<E: proto::Endpoint>(
    sim: &mut Sim<E>,
    mut done: impl FnMut(&mut Sim<E>) -> bool,
) -> i64 {
    let mut elapsed = Duration::ZERO;
    while elapsed < LIMIT {
        sim.run_for(CHECK);
        elapsed += CHECK;
        if done(sim) {
            return elapsed.as_millis() as i64;
        }
    }
    -1
}

/// Copies the integer leaves of `v` into `out` as `prefix.path` keys.
fn flatten(prefix: &str, v: &Value, out: &mut Map<String, Value>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                flatten(&format!("{prefix}.{k}"), x, out);
            }
        }
        Value::Number(n) if n.is_i64() || n.is_u64() => {
            out.insert(prefix.to_owned(), v.clone());
        }
        Value::Null => {
            out.insert(prefix.to_owned(), json!(-1));
        }
        // Rates (floats) are derived from the integer totals next to them.
        _ => {}
    }
}

/// Nodes that received the user event `name` so far, scanning `events`
/// from `*from` on.
fn user_deliveries(sim: &Sim<SerfNode>, name: &str, from: &mut usize, seen: &mut BTreeSet<usize>) {
    for (_, i, e) in &sim.events[*from..] {
        if matches!(e, Event::User(u) if u.name == name) {
            seen.insert(*i);
        }
    }
    *from = sim.events.len();
}

/// The Serf scenario (see the module docs).
fn serf100() -> Value {
    const N: usize = 100;
    let mut sim = serf_cluster(0x5e7f_0100, N, NetConfig::default(), &Config::lan());
    serf_join_all(&mut sim, 0);
    let join = ms_until(&mut sim, |s| serf_converged(s));
    sim.events.clear();

    // A user event from node 7.
    sim.with(7, |s, now| s.user_event(now, "deploy", b"v2", false)).expect("user event");
    let (mut from, mut seen) = (0, BTreeSet::new());
    let event = ms_until(&mut sim, |s| {
        user_deliveries(s, "deploy", &mut from, &mut seen);
        seen.len() == N
    });
    sim.run_for(Duration::from_secs(5));
    let deliveries = sim
        .events
        .iter()
        .filter(|(_, _, e)| matches!(e, Event::User(u) if u.name == "deploy"))
        .count();
    sim.events.clear();

    // A query with acks from node 0 (nobody responds).
    let params = QueryParams { request_ack: true, ..QueryParams::default() };
    let qid = sim.with(0, |s, now| s.query(now, "load", b"?", &params)).expect("query");
    let (mut next, mut acks) = (0, BTreeSet::new());
    let query = ms_until(&mut sim, |s| {
        for (_, i, e) in &s.events[next..] {
            if let Event::QueryAck { id, from } = e {
                if *id == qid && *i == 0 {
                    acks.insert(from.to_string());
                }
            }
        }
        next = s.events.len();
        acks.len() == N
    });
    sim.events.clear();

    // Node 50 leaves gracefully.
    let leaver = 50;
    sim.with(leaver, |s, now| s.leave(now)).expect("leave");
    let name = node_name(leaver);
    let leave = ms_until(&mut sim, |s| {
        s.up().filter(|&o| o != leaver).all(|o| {
            s.node(o).endpoint.member(&name).is_some_and(|m| m.status == MemberStatus::Left)
        })
    });
    sim.events.clear();

    // Node 60 is killed.
    let victim = 60;
    sim.kill(victim);
    let name = node_name(victim);
    let fail = ms_until(&mut sim, |s| {
        s.up().filter(|&o| o != leaver).all(|o| {
            s.node(o).endpoint.member(&name).is_some_and(|m| m.status == MemberStatus::Failed)
        })
    });
    sim.events.clear();

    let st = sim.stats;
    json!({
        "join_converged_ms": join,
        "user_event_all_ms": event,
        "user_event_deliveries": deliveries,
        "query_all_acked_ms": query,
        "leave_all_see_left_ms": leave,
        "kill_all_see_failed_ms": fail,
        "datagrams": st.datagrams_sent,
        "bytes": st.bytes_sent,
        "streams": st.streams,
        "stream_bytes": st.stream_bytes,
        "steps": st.steps,
        "virtual_end_ms": sim.now().as_millis(),
    })
}

/// 500 memberlist nodes join node 0 at once.
fn ml500() -> Value {
    const N: usize = 500;
    let mut sim: Sim<Node> = cluster(0x5ca1_0500, N, NetConfig::default(), &Config::lan());
    sim.record_events = false;
    for i in 0..N {
        sim.with(i, |ep, _| ep.delegate.keep = false);
    }
    join_all(&mut sim, 0);
    // `converged` is O(N²): check every 500 ms here.
    let mut join = -1;
    let mut elapsed = Duration::ZERO;
    while elapsed < LIMIT {
        sim.run_for(Duration::from_millis(500));
        elapsed += Duration::from_millis(500);
        if sim.converged() {
            join = elapsed.as_millis() as i64;
            break;
        }
    }
    let st = sim.stats;
    json!({
        "join_converged_ms": join,
        "datagrams": st.datagrams_sent,
        "bytes": st.bytes_sent,
        "streams": st.streams,
        "stream_bytes": st.stream_bytes,
        "steps": st.steps,
    })
}

/// All quick figures, flattened to `name: integer`.
pub fn figures() -> Value {
    let mut out = Map::new();
    for loss in [0, 5] {
        let mut p = results::sweep_point(100, loss);
        // Inputs, not results.
        if let Some(m) = p.as_object_mut() {
            for k in ["nodes", "loss_pct", "seed", "kill_victim"] {
                m.remove(k);
            }
        }
        flatten(&format!("sim.ml100_loss{loss}"), &p, &mut out);
    }
    flatten("sim.serf100", &serf100(), &mut out);
    flatten("sim.ml500", &ml500(), &mut out);
    Value::Object(out)
}
