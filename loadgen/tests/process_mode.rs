//! `loadgen --mode process` end to end: 8 real agents of ours and of Go's
//! `/usr/bin/serf`, scenarios join, fail, idle (short), every check passing.
//!
//! Our agent binary: `cargo build -p agent --bin serf` is run first with the
//! profile of this test's `loadgen` binary (a no-op when it is up to date),
//! and `serf` is then taken from the same target directory. Go's binary is
//! optional locally (the test says so and skips it) but required under
//! `CI=true`.

use std::path::{Path, PathBuf};
use std::process::Command;

const LOADGEN: &str = env!("CARGO_BIN_EXE_loadgen");
const GO_SERF: &str = "/usr/bin/serf";

/// Builds (if needed) and returns our `serf` next to the `loadgen` binary.
fn our_serf() -> PathBuf {
    let dir = Path::new(LOADGEN).parent().expect("target dir");
    let release = dir.file_name().is_some_and(|n| n == "release");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--quiet", "-p", "agent", "--bin", "serf"]);
    if release {
        cmd.arg("--release");
    }
    let st = cmd.status().expect("run cargo build");
    assert!(st.success(), "cargo build -p agent failed");
    let bin = dir.join("serf");
    assert!(bin.exists(), "{} missing after the build", bin.display());
    bin
}

/// Runs join,fail,idle on 8 agents of `bin` and checks the JSON report.
fn run(bin: &Path, base_ip: &str, name: &str) {
    let out = std::env::temp_dir().join(format!("loadgen-test-{}", std::process::id()));
    let o = Command::new(LOADGEN)
        .args(["--mode", "process", "--nodes", "8", "--scenario", "join,fail,idle"])
        .args(["--idle-secs", "5", "--timeout-secs", "40", "--quiet"])
        .args(["--base-ip", base_ip, "--name", name])
        .arg("--agent-bin")
        .arg(bin)
        .arg("--out")
        .arg(&out)
        .output()
        .expect("run loadgen");
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{name}: loadgen {:?}\n{stdout}\n{stderr}", o.status);
    let json = std::fs::read_to_string(out.join(format!("{name}.json"))).expect("report");
    let _ = std::fs::remove_dir_all(&out);
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    let phases = v["phases"].as_array().expect("phases");
    let scenarios: Vec<&str> = phases.iter().filter_map(|p| p["scenario"].as_str()).collect();
    assert_eq!(scenarios, ["join", "fail", "idle"], "{name}");
    for p in phases {
        let checks = p["checks"].as_array().expect("checks");
        assert!(!checks.is_empty(), "{name}: phase without checks");
        for c in checks {
            assert_eq!(c["pass"], true, "{name}: {c}");
        }
    }
    let scalar = |phase: usize, key: &str| -> f64 {
        phases[phase]["scalars"]
            .as_array()
            .and_then(|s| s.iter().find(|x| x["name"] == key))
            .and_then(|x| x["value"].as_f64())
            .unwrap_or_else(|| panic!("{name}: no scalar {key}"))
    };
    let agree = scalar(0, "all-agree time");
    assert!(agree > 0.0 && agree < 40.0, "{name}: all-agree {agree}");
    let detect = scalar(1, "all-agree detection");
    assert!(detect > 0.0 && detect < 40.0, "{name}: detection {detect}");
    // Every figure the comparison table uses is measured.
    assert!(scalar(2, "RSS per agent (mean)") > 1.0, "{name}: RSS");
    assert!(scalar(2, "packets sent per agent per s (mean)") > 0.1, "{name}: no packets counted");
    assert!(scalar(2, "bytes sent per agent per s (mean)") > 10.0, "{name}: no bytes counted");
    eprintln!("{name}: all-agree {agree:.2} s, detection {detect:.2} s");
}

#[test]
fn process_mode_ours_and_go() {
    run(&our_serf(), "127.2.0.1", "ours");
    if Path::new(GO_SERF).exists() {
        run(Path::new(GO_SERF), "127.2.1.1", "go");
    } else if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{GO_SERF} is required under CI=true");
    } else {
        eprintln!("SKIPPED the Go half: {GO_SERF} not installed");
    }
}
