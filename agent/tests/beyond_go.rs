//! Failures users file against Go Serf, reproduced with the Go agent and
//! shown absent in ours, in one mixed cluster on the same wire.

mod common;

use std::time::Duration;

use common::*;

/// Waits until `agent` lists `n` alive members, or panics at the deadline.
fn wait_alive(agent: &GoAgent, n: usize, dir: &std::path::Path) {
    let deadline = now() + Duration::from_secs(20);
    loop {
        let r = run(OUR_SERF, &["members", &agent.rpc_flag, "-status=alive"], &[], dir);
        if r.out.lines().count() == n {
            return;
        }
        assert!(now() < deadline, "{} never saw {n} alive members: {}", agent.name, r.out);
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs the Go CLI's `serf query` through `agent` and returns its output and
/// how long the CLI took.
fn timed_query(agent: &GoAgent, args: &[&str], dir: &std::path::Path) -> (Run, Duration) {
    let mut all = vec!["query", agent.rpc_flag.as_str(), "-timeout=6s"];
    all.extend_from_slice(args);
    let t0 = now();
    let r = run(GO_SERF, &all, &[], dir);
    let took = t0.elapsed();
    assert_eq!(r.code, 0, "serf query {args:?} through {}: {} {}", agent.name, r.out, r.err);
    (r, took)
}

fn responses(out: &str) -> usize {
    out.lines()
        .find_map(|l| l.strip_prefix("Total Responses: "))
        .map_or(0, |n| n.trim().parse().unwrap())
}

fn acks(out: &str) -> usize {
    out.lines()
        .find_map(|l| l.strip_prefix("Total Acks: "))
        .map_or(0, |n| n.trim().parse().unwrap())
}

/// serf#398 / #509: `serf query` always waits its whole timeout, even when
/// every node has answered long before. Reproduced through a Go agent; ours,
/// in the same cluster and with the same Go CLI, ends the query once every
/// alive node that passes the filters has responded (and acked, with acks
/// requested) — same messages on the wire, so the Go agents answer it too.
/// A node that never responds (no handler for the query) keeps the full
/// wait, as in Go.
#[test]
fn a_query_ends_when_every_node_has_answered() {
    if !go_available("a_query_ends_when_every_node_has_answered") {
        return;
    }
    let dir = scratch("query-early-done");
    let handler = "-event-handler=query:uptime=echo up";
    let go1 = GoAgent::start("q-go1", "127.0.117.1", &[handler, "-tag=role=web"], &dir);
    let go2 = GoAgent::start(
        "q-go2",
        "127.0.117.2",
        &[handler, "-tag=role=db", "-join=127.0.117.1"],
        &dir,
    );
    let ours = GoAgent::ours(
        "q-ours",
        "127.0.117.3",
        &[handler, "-tag=role=web", "-join=127.0.117.1"],
        &dir,
    );
    for a in [&go1, &go2, &ours] {
        wait_alive(a, 3, &dir);
    }

    // Unfiltered, with acks: Go holds the query for the full 6 s.
    let (go, go_took) = timed_query(&go1, &["uptime"], &dir);
    assert_eq!((acks(&go.out), responses(&go.out)), (3, 3), "{}", go.out);
    assert!(go_took >= Duration::from_secs(5), "Go ended its query after {go_took:?}");
    let (r, ours_took) = timed_query(&ours, &["uptime"], &dir);
    assert_eq!((acks(&r.out), responses(&r.out)), (3, 3), "{}", r.out);
    assert!(ours_took < Duration::from_secs(3), "ours took {ours_took:?}: {}", r.out);

    // Filtered by name and by tag (over our view), without acks.
    let (r, took) = timed_query(&ours, &["-no-ack", "-node=q-go2", "uptime"], &dir);
    assert_eq!(responses(&r.out), 1, "{}", r.out);
    assert!(r.out.contains("q-go2"), "{}", r.out);
    assert!(took < Duration::from_secs(3), "ours (by name) took {took:?}");
    let (r, took) = timed_query(&ours, &["-no-ack", "-tag=role=web", "uptime"], &dir);
    assert_eq!(responses(&r.out), 2, "{}", r.out);
    assert!(r.out.contains("q-go1") && r.out.contains("q-ours"), "{}", r.out);
    assert!(took < Duration::from_secs(3), "ours (by tag) took {took:?}");

    // Nobody handles `other`: acks arrive, no response does, so ours waits
    // the whole timeout like Go rather than ending on acks alone.
    let (r, took) = timed_query(&ours, &["other"], &dir);
    assert_eq!((acks(&r.out), responses(&r.out)), (3, 0), "{}", r.out);
    assert!(took >= Duration::from_secs(5), "ours ended a silent query after {took:?}");
    eprintln!(
        "query answered by all 3: go {go_took:?}, ours {ours_took:?}; silent query: ours {took:?}"
    );
}
