//! The seed walkthroughs, run as a user would type them, with our `serf`
//! for the agents and the CLI (and the Go CLI as a second client):
//!
//! 1. `serf agent` with no flags (gossip on 0.0.0.0:7946, RPC on
//!    127.0.0.1:7373), then `serf members`: one member, alive;
//! 2. `serf agent -node=a -bind=127.0.0.10` and `serf agent -node=b
//!    -bind=127.0.0.11 -rpc-addr=127.0.0.1:7374`, `serf join 127.0.0.11`
//!    (against a): both `members` list both; Ctrl-C on b (a graceful leave,
//!    exit 0) and a shows b `left`;
//! 3. `serf agent -node=c -bind=127.0.0.1:5000` and `serf agent -node=d
//!    -bind=127.0.0.1:5001 -rpc-addr=127.0.0.1:7374`, `serf join
//!    127.0.0.1:5001`: both list both; `kill -9` d and c shows it `failed`.
//!    (The seed text gives no `-node` here; two agents on one host need
//!    distinct names, which the default — the hostname — is not.)
//!
//! The default ports would collide with anything else on the machine, so
//! the test re-executes itself under `unshare --net --pid --fork
//! --kill-child`: a private network namespace (only `lo`, brought up, plus
//! 10.77.0.1 on it as the private address `serf agent` advertises when
//! bound to 0.0.0.0) and a private PID namespace, so every process started
//! inside dies with it, even if the test fails or times out. With
//! `CI=true`, a missing `unshare` or `/usr/bin/serf` fails the test.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

/// Set in the re-executed test inside the namespaces.
const INNER: &str = "SERF_RPC_WALKTHROUGH_INNER";
const TEST: &str = "seed_walkthroughs_in_a_private_network";

#[allow(clippy::disallowed_methods)] // Tests wait on real processes.
fn now() -> std::time::Instant {
    std::time::Instant::now()
}

/// Kills the namespace (through `unshare --kill-child`) on drop.
struct Namespace(std::process::Child);

impl Drop for Namespace {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

#[test]
fn seed_walkthroughs_in_a_private_network() {
    if std::env::var_os(INNER).is_some() {
        inside();
        return;
    }
    if !go_available(TEST) {
        return;
    }
    let ci = std::env::var("CI").as_deref() == Ok("true");
    let probe = Command::new("unshare")
        .args(["--net", "--pid", "--fork", "--kill-child", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !probe.is_ok_and(|s| s.success()) {
        assert!(!ci, "`unshare --net --pid` is required in CI (util-linux, run as root)");
        eprintln!("skipping {TEST}: `unshare --net --pid` is not available here");
        return;
    }
    let dir = scratch("walkthrough");
    let log = dir.join("inner.log");
    let exe = std::env::current_exe().unwrap();
    let child = Command::new("unshare")
        .args(["--net", "--pid", "--fork", "--kill-child"])
        .arg(&exe)
        .args([TEST, "--exact", "--nocapture", "--test-threads=1"])
        .env(INNER, dir.as_os_str())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(dir.join("inner.err")).unwrap())
        .spawn()
        .unwrap();
    let mut ns = Namespace(child);
    let deadline = now() + Duration::from_secs(120);
    let status = loop {
        if let Some(st) = ns.0.try_wait().unwrap() {
            break Some(st);
        }
        if now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = std::fs::read_to_string(&log).unwrap_or_default()
        + &std::fs::read_to_string(dir.join("inner.err")).unwrap_or_default();
    assert!(status.is_some(), "the walkthrough timed out:\n{out}");
    assert!(status.unwrap().success(), "the walkthrough failed:\n{out}");
    assert!(out.contains(&format!("test {TEST} ... ok")), "{out}");
}

/// `ip args` inside the namespace.
fn ip(args: &[&str]) {
    let st = Command::new("ip").args(args).status().expect("ip(8) is required");
    assert!(st.success(), "ip {args:?} failed");
}

fn wait_port(addr: &str, what: &Spawned) {
    for _ in 0..100 {
        if std::net::TcpStream::connect(addr).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{addr} never opened; output so far:\n{}", what.stdout_now());
}

type Row = (String, String, String);

/// `serf members` rows as (name, addr, status), with our CLI and with the
/// Go CLI.
fn members(rpc: Option<&str>, dir: &Path) -> (Vec<Row>, Vec<Row>) {
    let mut args = vec!["members".to_string()];
    if let Some(a) = rpc {
        args.push(format!("-rpc-addr={a}"));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let ours = run(OUR_SERF, &args, &[], dir);
    let go = run(GO_SERF, &args, &[], dir);
    assert_eq!(ours.code, 0, "serf members: {ours:?}");
    assert_eq!(go.code, 0, "Go serf members: {go:?}");
    let rows = |out: &str| {
        let mut v: Vec<Row> = out
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f[0].to_string(), f[1].to_string(), f[2].to_string())
            })
            .collect();
        v.sort();
        v
    };
    (rows(&ours.out), rows(&go.out))
}

fn wait_members(rpc: Option<&str>, want: &[(&str, &str, &str)], dir: &Path) {
    let want: Vec<Row> =
        want.iter().map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string())).collect();
    let deadline = now() + Duration::from_secs(30);
    loop {
        // Both CLIs must show it (they run one after the other, so while
        // the cluster changes they may see different moments).
        let (ours, go) = members(rpc, dir);
        if ours == want && go == want {
            return;
        }
        assert!(
            now() < deadline,
            "members via {rpc:?}: want {want:?}, got {ours:?} (our CLI), {go:?} (Go CLI)"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn agent(args: &[&str], dir: &Path, tag: &str) -> Spawned {
    let mut a = vec!["agent"];
    a.extend(args);
    Spawned::start(OUR_SERF, &a, &[], dir, tag)
}

fn inside() {
    let dir = std::path::PathBuf::from(std::env::var_os(INNER).unwrap()).join("inside");
    std::fs::create_dir_all(&dir).unwrap();
    ip(&["link", "set", "lo", "up"]);
    ip(&["addr", "add", "10.77.0.1/32", "dev", "lo"]);
    let host = {
        let out = Command::new("hostname").output().unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };

    // 1. `serf agent` with no flags, `serf members`.
    let solo = agent(&[], &dir, "solo");
    wait_port("127.0.0.1:7373", &solo);
    let banner = solo.stdout_now();
    assert!(banner.contains("Bind addr: '0.0.0.0:7946'"), "{banner}");
    assert!(banner.contains("RPC addr: '127.0.0.1:7373'"), "{banner}");
    wait_members(None, &[(&host, "10.77.0.1:7946", "alive")], &dir);
    solo.interrupt();
    let r = solo.finish(Duration::from_secs(10));
    assert_eq!(r.code, 0, "Ctrl-C on the solo agent: {r:?}");
    assert!(r.out.contains("Gracefully shutting down agent..."), "{}", r.out);

    // 2. a and b on 127.0.0.10/11, join, Ctrl-C b.
    let a = agent(&["-node=a", "-bind=127.0.0.10"], &dir, "a");
    let b = agent(&["-node=b", "-bind=127.0.0.11", "-rpc-addr=127.0.0.1:7374"], &dir, "b");
    wait_port("127.0.0.1:7373", &a);
    wait_port("127.0.0.1:7374", &b);
    let j = run(OUR_SERF, &["join", "127.0.0.11"], &[], &dir);
    assert_eq!(
        (j.code, j.out.as_str()),
        (0, "Successfully joined cluster by contacting 1 nodes.\n"),
        "{j:?}"
    );
    let both = [("a", "127.0.0.10:7946", "alive"), ("b", "127.0.0.11:7946", "alive")];
    wait_members(None, &both, &dir);
    wait_members(Some("127.0.0.1:7374"), &both, &dir);
    b.interrupt();
    let rb = b.finish(Duration::from_secs(10));
    assert_eq!(rb.code, 0, "Ctrl-C on b: {rb:?}");
    wait_members(
        None,
        &[("a", "127.0.0.10:7946", "alive"), ("b", "127.0.0.11:7946", "left")],
        &dir,
    );
    a.interrupt();
    assert_eq!(a.finish(Duration::from_secs(10)).code, 0);

    // 3. c and d on 127.0.0.1:5000/5001, join, kill -9 d.
    let c = agent(&["-node=c", "-bind=127.0.0.1:5000"], &dir, "c");
    let d = agent(&["-node=d", "-bind=127.0.0.1:5001", "-rpc-addr=127.0.0.1:7374"], &dir, "d");
    wait_port("127.0.0.1:7373", &c);
    wait_port("127.0.0.1:7374", &d);
    let j = run(GO_SERF, &["join", "127.0.0.1:5001"], &[], &dir);
    assert_eq!(
        (j.code, j.out.as_str()),
        (0, "Successfully joined cluster by contacting 1 nodes.\n"),
        "{j:?}"
    );
    let both = [("c", "127.0.0.1:5000", "alive"), ("d", "127.0.0.1:5001", "alive")];
    wait_members(None, &both, &dir);
    wait_members(Some("127.0.0.1:7374"), &both, &dir);
    // SAFETY: killing a child we spawned and have not reaped.
    unsafe {
        libc::kill(d.pid() as libc::pid_t, libc::SIGKILL);
    }
    let rd = d.finish(Duration::from_secs(5));
    assert_eq!(rd.code, -1, "kill -9");
    wait_members(
        None,
        &[("c", "127.0.0.1:5000", "alive"), ("d", "127.0.0.1:5001", "failed")],
        &dir,
    );
    c.interrupt();
    assert_eq!(c.finish(Duration::from_secs(10)).code, 0);
}
