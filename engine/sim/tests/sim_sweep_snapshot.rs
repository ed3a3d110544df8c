//! The simulator sweep in `results/sim.json` is deterministic (fixed seeds,
//! virtual time): recompute it and compare exactly. A change in protocol
//! behaviour or in the simulator shows up here as a diff in join times,
//! detection times or traffic.
//!
//! After an intended change: `UPDATE_RESULTS=1 cargo test -p sim --test
//! sim_sweep_snapshot` rewrites the sweep section of `results/sim.json`
//! (and `results/sim.md`); the real-time figures of the scale run are not
//! part of the comparison (`cargo run --release -p sim --example
//! sim_report` refreshes them).

#[path = "../examples/sim_report/results.rs"]
mod results;

use serde_json::Value;

/// The first difference between two JSON values, as a path and both sides.
fn first_diff(path: &str, want: &Value, got: &Value) -> Option<String> {
    match (want, got) {
        (Value::Object(a), Value::Object(b)) => {
            for k in a.keys().chain(b.keys()) {
                let (x, y) = (a.get(k).unwrap_or(&Value::Null), b.get(k).unwrap_or(&Value::Null));
                if let Some(d) = first_diff(&format!("{path}.{k}"), x, y) {
                    return Some(d);
                }
            }
            None
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => a
            .iter()
            .zip(b)
            .enumerate()
            .find_map(|(i, (x, y))| first_diff(&format!("{path}[{i}]"), x, y)),
        _ if want == got => None,
        _ => Some(format!("{path}: committed {want}, recomputed {got}")),
    }
}

#[test]
fn sweep_matches_the_committed_results() {
    let sweep = results::sweep(&results::SWEEP_NODES, &results::SWEEP_LOSS_PCT);
    let committed = results::read();
    if std::env::var_os("UPDATE_RESULTS").is_some() {
        let doc = results::with_sweep(committed, sweep);
        results::write(&doc).expect("write results/sim.json and results/sim.md");
        eprintln!("rewrote the sweep in {}", results::results_path("sim.json").display());
        return;
    }
    let committed = committed.expect("results/sim.json is missing or not JSON");
    let want = committed.get("sweep").expect("results/sim.json has no sweep section");
    let points = sweep["points"].as_array().map_or(0, Vec::len);
    assert_eq!(points, results::SWEEP_NODES.len() * results::SWEEP_LOSS_PCT.len());
    if let Some(d) = first_diff("sweep", want, &sweep) {
        panic!(
            "the simulator sweep changed: {d}\n(if intended: UPDATE_RESULTS=1 cargo test -p \
             sim --test sim_sweep_snapshot)"
        );
    }
}
