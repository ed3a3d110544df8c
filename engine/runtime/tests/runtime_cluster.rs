//! Memberlist instances on real loopback sockets through the runtime:
//! join, convergence, failure detection after a crash, graceful leave,
//! encryption and a wrong-key join.

// Real sockets, real time: these tests wait on the OS clock.
#![allow(clippy::disallowed_methods)]

#[path = "runtime_util/alive.rs"]
mod alive;
#[path = "runtime_util/fast_config.rs"]
mod fast_config;
mod runtime_util;
#[path = "runtime_util/state_of.rs"]
mod state_of;

use std::time::Duration;

use alive::alive;
use fast_config::fast_config;
use proto::memberlist::Event;
use runtime::{Runtime, RuntimeConfig};
use runtime_util::*;
use state_of::state_of;
use wire::crypto::Keyring;
use wire::memberlist::NodeState;

fn runtime(workers: usize) -> Runtime<Node> {
    Runtime::new(RuntimeConfig { workers, ..RuntimeConfig::default() }).expect("runtime")
}

/// The `JoinCompleted` event of a join, within `limit`.
fn join_result(
    rx: &crossbeam_channel::Receiver<Event>,
    limit: Duration,
) -> Option<(usize, Vec<String>)> {
    let end = std::time::Instant::now() + limit;
    while let Ok(e) = rx.recv_deadline(end) {
        if let Event::JoinCompleted { succeeded, errors, .. } = e {
            return Some((succeeded, errors));
        }
    }
    None
}

#[test]
fn three_nodes_join_detect_crash_and_leave() {
    let rt = runtime(2);
    let mut cfg = fast_config();
    // b and c join at once: should b miss the gossip about c, anti-entropy
    // repairs it — every 2 s here, not the local profile's 15 s, which is
    // longer than the wait below.
    cfg.push_pull_interval = Duration::from_secs(2);
    let names = ["a", "b", "c"];
    let mut handles = Vec::new();
    let mut events = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let at = addr(120, 1 + i as u8);
        let (tx, rx) = crossbeam_channel::bounded(1024);
        let h = rt.spawn(at, Some(tx), node(name, at, &cfg, None, true)).expect("spawn");
        assert_eq!(h.local_addr(), at);
        handles.push(h);
        events.push(rx);
    }
    // Two workers, least-loaded placement: both are used.
    assert_ne!(handles[0].worker(), handles[1].worker());

    // A second instance on a taken address fails with the OS error.
    let taken = addr(120, 1);
    let err = rt.spawn(taken, None, node("dup", taken, &cfg, None, false)).unwrap_err();
    assert!(err.to_string().contains("in use"), "{err}");

    let seed = addr(120, 1);
    for h in &handles[1..] {
        h.call(move |ep, now| ep.ml.join(now, &[seed])).expect("join");
    }
    for rx in &events[1..] {
        let (ok, errors) = join_result(rx, Duration::from_secs(5)).expect("join completed");
        assert_eq!((ok, errors.len()), (1, 0), "{errors:?}");
    }
    let converged =
        wait_until(Duration::from_secs(10), || handles.iter().all(|h| alive(h) == ["a", "b", "c"]));
    assert!(converged, "no convergence: {:?}", handles.iter().map(alive).collect::<Vec<_>>());

    // Crash c: the survivors suspect it, then declare it dead.
    handles[2].remove().expect("remove");
    assert!(handles[2].call(|_, _| ()).is_err(), "a removed instance is closed");
    let dead = wait_until(Duration::from_secs(15), || {
        handles[..2].iter().all(|h| state_of(h, "c") == Some(NodeState::Dead))
    });
    assert!(
        dead,
        "c not dead: {:?}",
        handles[..2].iter().map(|h| state_of(h, "c")).collect::<Vec<_>>()
    );

    // b leaves gracefully: a sees it as left, not dead.
    let notify = handles[1].call(|ep, now| ep.ml.leave(now, &mut ep.delegate)).expect("leave");
    assert!(notify.is_some(), "a is alive and must be told");
    let left =
        wait_until(Duration::from_secs(5), || state_of(&handles[0], "b") == Some(NodeState::Left));
    assert!(left, "b not left in a's view: {:?}", state_of(&handles[0], "b"));
    let log = handles[0].call(|ep, _| ep.delegate.log.clone()).expect("log");
    assert!(log.iter().any(
        |(_, n, c)| &**n == "b" && *c == sim::cluster::Change::Leave { state: NodeState::Left }
    ));

    // Stats are published at the end of each worker loop iteration.
    assert!(wait_until(Duration::from_secs(1), || rt.total_stats().instances == 2));
    let stats = rt.total_stats();
    assert!(stats.datagrams_in > 0 && stats.datagrams_out > 0, "{stats:?}");
    assert!(stats.streams_out >= 2 && stats.streams_in >= 2, "{stats:?}");
    eprintln!("stats: {stats:?}");
    rt.shutdown();
    assert!(handles[0].call(|_, _| ()).is_err(), "shut down");
}

#[test]
fn encrypted_cluster_refuses_a_wrong_key() {
    let rt = runtime(2);
    let cfg = fast_config();
    let key = Keyring::new(b"0123456789abcdef").unwrap();
    let mut handles = Vec::new();
    for (i, name) in ["e1", "e2", "e3"].iter().enumerate() {
        let at = addr(121, 1 + i as u8);
        let h = rt.spawn(at, None, node(name, at, &cfg, Some(key.clone()), false)).expect("spawn");
        handles.push(h);
    }
    let seed = addr(121, 1);
    for h in &handles[1..] {
        h.call(move |ep, now| ep.ml.join(now, &[seed])).expect("join");
    }
    let converged = wait_until(Duration::from_secs(10), || {
        handles.iter().all(|h| alive(h) == ["e1", "e2", "e3"])
    });
    assert!(converged, "no convergence: {:?}", handles.iter().map(alive).collect::<Vec<_>>());
    let decrypt_failed: u64 =
        handles.iter().map(|h| h.call(|ep, _| ep.ml.stats().decrypt_failed).unwrap()).sum();
    assert_eq!(decrypt_failed, 0);

    // A fourth node with another key: its push-pull cannot be read.
    let other = Keyring::new(b"fedcba9876543210").unwrap();
    let at = addr(121, 4);
    let (tx, rx) = crossbeam_channel::bounded(64);
    let x = rt.spawn(at, Some(tx), node("x", at, &cfg, Some(other), false)).expect("spawn");
    x.call(move |ep, now| ep.ml.join(now, &[seed])).expect("join");
    let (ok, errors) = join_result(&rx, Duration::from_secs(5)).expect("join completed");
    assert_eq!(ok, 0, "a wrong key must not join: {errors:?}");
    assert_eq!(errors.len(), 1);
    assert!(errors[0].starts_with("Failed to join 127.0.121.1: "), "{errors:?}");
    eprintln!("wrong-key join error: {}", errors[0]);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(state_of(&handles[0], "x"), None, "e1 must not learn x");
    assert_eq!(alive(&x), ["x"]);
    rt.shutdown();
}

#[test]
fn stream_failures_read_like_go() {
    let rt = runtime(1);
    let mut cfg = fast_config();
    cfg.tcp_timeout = Duration::from_millis(300);
    let at = addr(126, 1);
    let (tx, rx) = crossbeam_channel::bounded(64);
    let h = rt.spawn(at, Some(tx), node("g", at, &cfg, None, false)).expect("spawn");

    // Nobody listens: the connect is refused.
    let closed = addr(126, 9);
    h.call(move |ep, now| ep.ml.join(now, &[closed])).unwrap();
    let (ok, errors) = join_result(&rx, Duration::from_secs(5)).expect("join completed");
    assert_eq!(ok, 0);
    assert_eq!(
        errors,
        ["Failed to join 127.0.126.9: dial tcp 127.0.126.9:7946: connect: connection refused"]
    );

    // A listener that accepts and never answers: the read times out at the
    // request's deadline.
    let silent = std::net::TcpListener::bind(addr(126, 8)).unwrap();
    let target = addr(126, 8);
    h.call(move |ep, now| ep.ml.join(now, &[target])).unwrap();
    let (ok, errors) = join_result(&rx, Duration::from_secs(5)).expect("join completed");
    let (_held, _) = silent.accept().unwrap();
    assert_eq!(ok, 0);
    assert_eq!(errors.len(), 1);
    let e = &errors[0];
    assert!(
        e.starts_with("Failed to join 127.0.126.8: read tcp 127.0.0.1:")
            && e.ends_with("->127.0.126.8:7946: i/o timeout"),
        "{e}"
    );

    // A listener that accepts and closes at once: EOF.
    let eof = std::net::TcpListener::bind(addr(126, 7)).unwrap();
    let target = addr(126, 7);
    let closer = std::thread::spawn(move || {
        let (s, _) = eof.accept().unwrap();
        drop(s);
    });
    h.call(move |ep, now| ep.ml.join(now, &[target])).unwrap();
    let (ok, errors) = join_result(&rx, Duration::from_secs(5)).expect("join completed");
    closer.join().unwrap();
    assert_eq!(ok, 0);
    assert!(
        errors[0] == "Failed to join 127.0.126.7: EOF"
            || errors[0].contains("connection reset by peer"),
        "{errors:?}"
    );
    // Stats are published at the end of each worker loop iteration.
    let settled = wait_until(Duration::from_secs(1), || {
        let s = rt.total_stats();
        (s.streams_out, s.stream_errors, s.connections) == (3, 3, 0)
    });
    assert!(settled, "{:?}", rt.total_stats());
    rt.shutdown();
}
