//! Go interop smoke: the Go reference agent (`/usr/bin/serf`, Serf 0.9.4)
//! and one of our memberlist instances, on real loopback sockets through
//! the runtime. Our instance joins the Go agent; the Go CLI must list it
//! alive and we must list the Go agent alive; after we crash (the instance
//! is removed without a leave) the Go agent must mark us failed. Run plain
//! and with encryption.
//!
//! A missing `/usr/bin/serf` fails the test under `CI=true` and skips it
//! (with a message) elsewhere; install it with `apt-get install -y serf`.

// Real sockets, real time: these tests wait on the OS clock.
#![allow(clippy::disallowed_methods)]

mod runtime_util;
#[path = "runtime_util/state_of.rs"]
mod state_of;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use proto::memberlist::{Config, Event};
use runtime::{Runtime, RuntimeConfig};
use runtime_util::*;
use state_of::state_of;
use wire::crypto::Keyring;
use wire::memberlist::NodeState;

const SERF: &str = "/usr/bin/serf";
const KEY: &[u8; 16] = b"0123456789abcdef";
const KEY_B64: &str = "MDEyMzQ1Njc4OWFiY2RlZg==";

/// Whether the Go binary is there; panics under CI when it is not.
fn have_serf() -> bool {
    if Path::new(SERF).exists() {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{SERF} is missing: CI must install it (apt-get install -y serf)");
    }
    eprintln!("skipping: {SERF} not installed (apt-get install -y serf)");
    false
}

/// A Go agent killed (by its PID) when dropped.
struct GoAgent {
    child: Child,
    rpc: String,
    log: std::path::PathBuf,
}

impl GoAgent {
    fn start(name: &str, bind: SocketAddr, rpc: SocketAddr, encrypt: Option<&str>) -> GoAgent {
        let log = std::env::temp_dir().join(format!("runtime-interop-{name}-{}.log", bind.ip()));
        let out = std::fs::File::create(&log).expect("log file");
        let mut cmd = Command::new(SERF);
        cmd.arg("agent")
            .arg(format!("-node={name}"))
            .arg(format!("-bind={bind}"))
            .arg(format!("-rpc-addr={rpc}"))
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log file"))
            .stderr(out);
        if let Some(k) = encrypt {
            cmd.arg(format!("-encrypt={k}"));
        }
        let child = cmd.spawn().expect("start serf agent");
        GoAgent { child, rpc: format!("-rpc-addr={rpc}"), log }
    }

    /// `serf members` output, if the RPC answered.
    fn members(&self) -> Option<String> {
        let out = Command::new(SERF).arg("members").arg(&self.rpc).output().ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The status column of member `name` in `serf members`.
    fn status_of(&self, name: &str) -> Option<String> {
        let members = self.members()?;
        members.lines().find_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            (cols.first() == Some(&name)).then(|| cols.get(2).unwrap_or(&"").to_string())
        })
    }

    fn log_tail(&self) -> String {
        let s = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for GoAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn smoke(net: u8, encrypt: bool) {
    if !have_serf() {
        return;
    }
    let go_addr = addr(net, 10);
    let go = GoAgent::start(
        "go1",
        go_addr,
        SocketAddr::from(([127, 0, net, 10], 7373)),
        encrypt.then_some(KEY_B64),
    );
    assert!(
        wait_until(Duration::from_secs(10), || go.members().is_some()),
        "Go agent did not come up:\n{}",
        go.log_tail()
    );

    let rt: Runtime<Node> =
        Runtime::new(RuntimeConfig { workers: 2, ..RuntimeConfig::default() }).expect("runtime");
    let at = addr(net, 11);
    let keyring = encrypt.then(|| Keyring::new(KEY).unwrap());
    let (tx, rx) = crossbeam_channel::bounded(1024);
    let rs1 =
        rt.spawn(at, Some(tx), node("rs1", at, &Config::lan(), keyring, true)).expect("spawn");

    rs1.call(move |ep, now| ep.ml.join(now, &[go_addr])).expect("join");
    let end = std::time::Instant::now() + Duration::from_secs(10);
    let joined = loop {
        match rx.recv_deadline(end) {
            Ok(Event::JoinCompleted { succeeded, errors, .. }) => break (succeeded, errors),
            Ok(_) => {}
            Err(_) => panic!("no JoinCompleted:\n{}", go.log_tail()),
        }
    };
    assert_eq!(joined.0, 1, "join failed: {:?}\n{}", joined.1, go.log_tail());

    let both = wait_until(Duration::from_secs(10), || {
        go.status_of("rs1").as_deref() == Some("alive")
            && state_of(&rs1, "go1") == Some(NodeState::Alive)
    });
    assert!(
        both,
        "go sees rs1 {:?}, rs1 sees go1 {:?}\n{}",
        go.status_of("rs1"),
        state_of(&rs1, "go1"),
        go.log_tail()
    );

    // A few probe rounds both ways: nobody suspects anybody.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(go.status_of("rs1").as_deref(), Some("alive"), "{}", go.log_tail());
    assert_eq!(state_of(&rs1, "go1"), Some(NodeState::Alive));
    let (suspicions, decrypt_failed, malformed) = rs1
        .call(|ep, _| {
            let s = ep.ml.stats();
            (s.suspicions, s.decrypt_failed, s.malformed)
        })
        .unwrap();
    assert_eq!((suspicions, decrypt_failed, malformed), (0, 0, 0));

    // Crash: the Go agent detects it (LAN: probe, suspicion ~4 s, failed).
    rs1.remove().expect("remove");
    let failed =
        wait_until(Duration::from_secs(20), || go.status_of("rs1").as_deref() == Some("failed"));
    assert!(failed, "go sees rs1 {:?}\n{}", go.status_of("rs1"), go.log_tail());
    let stats = rt.total_stats();
    eprintln!("encrypt={encrypt}: {stats:?}");
    assert_eq!(stats.send_drops, 0);
    rt.shutdown();
}

#[test]
fn go_agent_plain() {
    smoke(122, false);
}

#[test]
fn go_agent_encrypted() {
    smoke(123, true);
}
