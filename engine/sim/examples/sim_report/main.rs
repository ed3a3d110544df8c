//! The simulator scale report: a 1000-node × 60 s run (real time, join
//! convergence, traffic) and a deterministic sweep (nodes × loss → join
//! time, kill-1 detection, idle traffic). Writes `results/sim.json` and
//! `results/sim.md`.
//!
//! ```text
//! cargo run --release -p sim --example sim_report            # everything
//! cargo run --release -p sim --example sim_report -- scale   # the 1000-node run only
//! cargo run --release -p sim --example sim_report -- scale 200 20   # other size (not saved)
//! cargo run --release -p sim --example sim_report -- sweep   # the sweep only
//! cargo run --release -p sim --example sim_report -- quick   # scripts/regress's figures
//! ```
//!
//! `quick` prints the small deterministic figures `scripts/regress` checks
//! (JSON on stdout) and writes nothing.
//!
//! A partial run keeps the other section of the existing `sim.json`.

mod quick;
mod results;
mod scale;

use std::process::Command;

use serde_json::{json, Value};

fn command_output(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into())
}

fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    json!({
        "git_revision": command_output("git", &["rev-parse", "--short=12", "HEAD"]),
        "git_dirty": !command_output("git", &["status", "--porcelain", "--untracked-files=no"]).is_empty(),
        "date_utc": command_output("date", &["-u", "+%Y-%m-%dT%H:%M:%SZ"]),
        "cpu": cpu,
        "cores": cores,
        "rustc": command_output("rustc", &["-V"]),
        "profile": if cfg!(debug_assertions) { "debug" } else { "release" },
    })
}

fn main() {
    let what = std::env::args().nth(1).unwrap_or_else(|| "all".into());
    if what == "quick" {
        println!("{}", serde_json::to_string_pretty(&quick::figures()).unwrap_or_default());
        return;
    }
    let (do_scale, do_sweep) = match what.as_str() {
        "all" => (true, true),
        "scale" => (true, false),
        "sweep" => (false, true),
        other => {
            eprintln!("usage: sim_report [all|scale|sweep|quick] (got {other})");
            std::process::exit(2);
        }
    };
    let mut doc = results::read().unwrap_or_else(|| json!({}));
    doc["machine"] = machine();
    doc["reproduce"] = json!([
        "cargo run --release -p sim --example sim_report",
        "cargo test -p sim --test sim_sweep_snapshot   # checks the sweep against sim.json",
        "UPDATE_RESULTS=1 cargo test -p sim --test sim_sweep_snapshot   # rewrites the sweep",
    ]);
    if do_scale {
        let arg = |i: usize| std::env::args().nth(i).and_then(|s| s.parse::<u64>().ok());
        if let (Some(n), Some(secs)) = (arg(2), arg(3)) {
            // A profiling run: print, do not save.
            let r = scale::scale_run(n as usize, secs);
            eprintln!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
            return;
        }
        eprintln!("scale: 1000 nodes × 60 virtual s ...");
        let r = scale::scale_run(1000, 60);
        eprintln!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
        doc["scale"] = r;
    }
    if do_sweep {
        let wall = scale::wall_clock();
        let mut points = Vec::new();
        for &n in &results::SWEEP_NODES {
            for &l in &results::SWEEP_LOSS_PCT {
                let t = scale::wall_clock();
                let p = results::sweep_point(n, l);
                eprintln!(
                    "sweep n={n} loss={l}%: join {} ms, kill-1 {} ms, idle {} datagrams/node/s ({:.1} s real)",
                    p["join_converged_ms"],
                    p["kill1_all_agree_ms"],
                    p["idle"]["datagrams_per_node_s"],
                    t.elapsed().as_secs_f64()
                );
                points.push(p);
            }
        }
        let mut sweep = results::sweep(&[], &[]);
        sweep["points"] = Value::Array(points);
        doc["sweep_real_seconds"] = json!((wall.elapsed().as_secs_f64() * 100.0).round() / 100.0);
        doc = results::with_sweep(Some(doc), sweep);
    }
    if let Err(e) = results::write(&doc) {
        eprintln!("writing results: {e}");
        std::process::exit(1);
    }
    eprintln!("wrote {}", results::results_path("sim.json").display());
}
