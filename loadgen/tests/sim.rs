//! `loadgen --mode sim` end to end: every scenario on the simulator in
//! virtual time, checks passing, and the same seed giving the same figures.

mod common;

use common::*;

const ALL: &str = "join,fail,leave,idle,event,query,stall,partition";

fn sim(dir: &Scratch, seed: &str) -> serde_json::Value {
    let (v, _) = run(
        dir,
        &[
            "--mode",
            "sim",
            "--nodes",
            "64",
            "--scenario",
            ALL,
            "--idle-secs",
            "30",
            "--seed",
            seed,
            "--kill",
            "2",
        ],
    );
    v
}

#[test]
fn every_scenario_in_virtual_time() {
    let dir = Scratch::new("sim-a");
    let v = sim(&dir, "7");
    common(&v, &dir, "sim", 64);
    assert!(v["meta"]["config"].to_string().contains("virtual"), "time base labelled");

    let join = phase(&v, "join");
    assert_eq!(hist(join, "time to full view (from own join)")["count"], 64);

    let fail = phase(&v, "fail");
    assert_eq!(scalar(fail, "victims"), 2.0);
    assert_eq!(hist(fail, "detection latency")["count"], 2 * 62);

    let idle = phase(&v, "idle");
    assert_eq!(scalar(idle, "false suspicions"), 0.0);
    assert_eq!(scalar(idle, "window"), 30.0);
    let bytes = scalar(idle, "UDP bytes sent per agent per second");
    assert!((10.0..10_000.0).contains(&bytes), "bytes/agent/s {bytes}");

    let event = phase(&v, "event");
    let n = 64.0 - 2.0 - 1.0;
    assert_eq!(hist(event, "user event delivery latency")["count"].as_f64(), Some(n));
    let part = phase(&v, "partition");
    assert!(scalar(part, "reconverged after heal") >= 0.0);

    let harness = phase(&v, "harness");
    assert!(scalar(harness, "virtual time simulated") > 30.0);
    assert!(scalar(harness, "peak RSS") > 0.0);
}

#[test]
fn same_seed_same_figures() {
    let (a, b) = (Scratch::new("sim-b1"), Scratch::new("sim-b2"));
    let (va, vb) = (sim(&a, "11"), sim(&b, "11"));
    for scenario in ["join", "fail", "event", "partition"] {
        let (pa, pb) = (phase(&va, scenario), phase(&vb, scenario));
        assert_eq!(pa["hists"], pb["hists"], "{scenario} differs between equal seeds");
    }
}
