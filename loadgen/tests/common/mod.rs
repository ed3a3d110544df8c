//! Runs the `loadgen` binary and reads its JSON report.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

/// A scratch directory removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("loadgen-test-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `loadgen args… --quiet --out <dir> --name run`; returns the report
/// and the stdout table. Panics (with the output) unless it exits 0.
pub fn run(dir: &Scratch, args: &[&str]) -> (Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(args)
        .args(["--quiet", "--name", "run", "--out"])
        .arg(&dir.0)
        .output()
        .expect("run loadgen");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "loadgen {args:?} failed: {:?}\n{stdout}\n{stderr}", out.status);
    let json = std::fs::read_to_string(dir.0.join("run.json")).expect("run.json");
    let v: Value = serde_json::from_str(&json).expect("valid JSON");
    (v, stdout)
}

/// The phase named `scenario`.
pub fn phase<'a>(v: &'a Value, scenario: &str) -> &'a Value {
    v["phases"]
        .as_array()
        .expect("phases")
        .iter()
        .find(|p| p["scenario"] == scenario)
        .unwrap_or_else(|| panic!("no phase {scenario}"))
}

/// Scalar `name` of a phase.
pub fn scalar(p: &Value, name: &str) -> f64 {
    p["scalars"]
        .as_array()
        .expect("scalars")
        .iter()
        .find(|s| s["name"] == name)
        .and_then(|s| s["value"].as_f64())
        .unwrap_or_else(|| panic!("no scalar {name} in {}", p["scenario"]))
}

/// The histogram of a phase whose name starts with `prefix`.
pub fn hist<'a>(p: &'a Value, prefix: &str) -> &'a Value {
    p["hists"]
        .as_array()
        .expect("hists")
        .iter()
        .find(|h| h["name"].as_str().is_some_and(|n| n.starts_with(prefix)))
        .unwrap_or_else(|| panic!("no histogram {prefix} in {}", p["scenario"]))
}

/// Checks common to every run: metadata present, every check passed, the
/// summary and at least one plot written.
pub fn common(v: &Value, dir: &Scratch, mode: &str, nodes: u64) {
    let m = &v["meta"];
    assert_eq!(m["mode"], mode);
    assert_eq!(m["nodes"], nodes);
    for k in ["git_rev", "machine", "command", "date_utc"] {
        assert!(m[k].as_str().is_some_and(|s| !s.is_empty()), "meta.{k} missing: {m}");
    }
    assert!(m["command"].as_str().unwrap().contains("--nodes"), "{}", m["command"]);
    assert!(m["date_utc"].as_str().unwrap().ends_with('Z'));
    let mut checks = 0;
    for p in v["phases"].as_array().expect("phases") {
        for c in p["checks"].as_array().expect("checks") {
            checks += 1;
            assert_eq!(c["pass"], true, "{}: {c}", p["scenario"]);
        }
    }
    assert!(checks > 0, "no checks ran");
    let md = std::fs::read_to_string(dir.0.join("run.md")).expect("run.md");
    assert!(md.contains("all checks passed"), "{md}");
    let join_plot = dir.0.join("run-join-fraction-of-agents-with-full-view.svg");
    let svg = std::fs::read_to_string(&join_plot).expect("join plot");
    assert!(svg.starts_with("<svg") && svg.contains("polyline"), "not a line plot");
}
