//! `loadgen --mode inproc` end to end: small clusters on real loopback
//! sockets (127.1.100.x and 127.1.110.x, apart from the ranges other tests
//! use), every check passing and the report's figures sane.

mod common;

use common::*;

#[test]
fn join_fail_leave_idle_event_query() {
    let dir = Scratch::new("inproc-a");
    let (v, table) = run(
        &dir,
        &[
            "--mode",
            "inproc",
            "--nodes",
            "24",
            "--base-ip",
            "127.1.100.1",
            "--scenario",
            "join,fail,leave,idle,event,query",
            "--idle-secs",
            "5",
            "--timeout-secs",
            "40",
            "--workers",
            "2",
        ],
    );
    common(&v, &dir, "inproc", 24);
    assert!(table.contains("== join") && table.contains("[PASS]"), "{table}");

    let join = phase(&v, "join");
    let full = hist(join, "time to full view (from own join)");
    assert_eq!(full["count"], 24);
    assert!(full["max"].as_f64().unwrap() < 40_000.0, "{full}");
    let frac = &join["series"][0]["points"];
    let last = frac.as_array().unwrap().last().unwrap();
    assert_eq!(last[1].as_f64().unwrap(), 1.0, "the join curve ends at 100 %");

    let fail = phase(&v, "fail");
    let det = hist(fail, "detection latency");
    assert_eq!(det["count"], 23, "every survivor detected the victim");
    assert!(det["p50"].as_f64().unwrap() > 100.0, "detection cannot be instant: {det}");

    let leave = phase(&v, "leave");
    assert_eq!(hist(leave, "leave seen")["count"], 22);

    let idle = phase(&v, "idle");
    assert_eq!(scalar(idle, "false suspicions"), 0.0);
    let pkts = scalar(idle, "packets sent per agent per second");
    assert!((0.5..50.0).contains(&pkts), "packets/agent/s {pkts}");
    let rss = scalar(idle, "RSS per agent (process RSS / agents)");
    assert!(rss > 0.0 && rss < 64.0, "RSS/agent {rss} MiB");
    assert!(scalar(idle, "process CPU") >= 0.0);
    let lag = hist(idle, "harness timer lag");
    assert!(lag["count"].as_u64().unwrap() > 100, "the 10 ms ticker ran: {lag}");

    let event = phase(&v, "event");
    assert_eq!(hist(event, "user event delivery latency")["count"], 22);
    assert!(scalar(event, "delivered to 100 % of agents") > 0.0);

    let query = phase(&v, "query");
    assert_eq!(scalar(query, "acks"), 21.0);
    assert_eq!(scalar(query, "responses"), 21.0);

    assert!(dir.0.join("run-fail-detection-latency-victim-failed-per-surv-cdf.svg").exists());
    assert!(dir.0.join("run-event-user-event-delivery-latency-per-agent-cdf.svg").exists());
}

#[test]
fn stall_and_partition() {
    let dir = Scratch::new("inproc-b");
    let (v, _) = run(
        &dir,
        &[
            "--nodes",
            "16",
            "--base-ip",
            "127.1.110.1",
            "--scenario",
            "join,stall,partition",
            "--idle-secs",
            "4",
            "--stall-ms",
            "1000",
            "--stall-percent",
            "20",
            "--timeout-secs",
            "45",
        ],
    );
    common(&v, &dir, "inproc", 16);
    let stall = phase(&v, "stall");
    assert!(scalar(stall, "bursts") >= 2.0);
    assert_eq!(scalar(stall, "nodes stalled per burst"), 4.0);
    let part = phase(&v, "partition");
    // 8 + 8 nodes: each sees the 8 on the other side fail.
    assert_eq!(hist(part, "partition: other side seen failed")["count"], 2 * 8 * 8);
}
