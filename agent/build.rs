//! Records the compiler's version for `serf info` (`runtime.version`, where
//! the Go agent shows its toolchain as `go1.19.8`; ours reads `rust1.95.0`).
use std::process::Command;

fn main() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.split_whitespace().nth(1).map(str::to_owned))
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=AGENT_BUILT_WITH_RUSTC=rust{version}");
    println!("cargo:rerun-if-env-changed=RUSTC");
}
