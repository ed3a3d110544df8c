//! Helpers for tests that compare our `serf` with the reference Go binary:
//! a guard that runs a real Go agent on a loopback address and kills it on
//! drop, and runners for both CLIs that capture stdout, stderr and the exit
//! code.
#![allow(dead_code)]

pub mod norm;
pub mod raw;

use std::io::Read;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The reference binary.
pub const GO_SERF: &str = "/usr/bin/serf";

/// Our binary.
pub const OUR_SERF: &str = env!("CARGO_BIN_EXE_serf");

/// Whether the Go binary is available. Without it a test is skipped locally
/// (with a message) but fails when `CI=true`.
pub fn go_available(test: &str) -> bool {
    if Path::new(GO_SERF).exists() {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{GO_SERF} is required in CI (apt-get install -y serf)");
    }
    eprintln!("skipping {test}: {GO_SERF} is not installed (apt-get install -y serf)");
    false
}

/// A scratch directory for one test, emptied first.
pub fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("serf-cli-vs-go-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The wall clock (tests wait on real processes).
#[allow(clippy::disallowed_methods)]
pub fn now() -> Instant {
    Instant::now()
}

/// A real Go agent on `ip:7946` (gossip) and `ip:7373` (RPC), killed by
/// PID when dropped.
pub struct GoAgent {
    child: Child,
    /// Node name.
    pub name: String,
    /// Its IP.
    pub ip: String,
    /// `-rpc-addr=ip:7373`.
    pub rpc_flag: String,
    /// Its log file.
    pub log: PathBuf,
    /// The binary it runs ([`GO_SERF`] or [`OUR_SERF`]).
    pub bin: String,
}

impl GoAgent {
    /// Starts `serf agent -node=name -bind=ip:7946 -rpc-addr=ip:7373
    /// <extra>` and waits until its RPC port accepts connections.
    pub fn start(name: &str, ip: &str, extra: &[&str], dir: &Path) -> GoAgent {
        GoAgent::start_bin(GO_SERF, name, ip, extra, dir)
    }

    /// The same with our binary (the guard works alike for both).
    pub fn ours(name: &str, ip: &str, extra: &[&str], dir: &Path) -> GoAgent {
        GoAgent::start_bin(OUR_SERF, name, ip, extra, dir)
    }

    /// The same with `bin`.
    pub fn start_bin(bin: &str, name: &str, ip: &str, extra: &[&str], dir: &Path) -> GoAgent {
        let log = dir.join(format!("agent-{name}-{ip}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(bin)
            .arg("agent")
            .arg(format!("-node={name}"))
            .arg(format!("-bind={ip}:7946"))
            .arg(format!("-rpc-addr={ip}:7373"))
            .args(extra)
            .env_remove("SERF_RPC_ADDR")
            .env_remove("SERF_RPC_AUTH")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        let agent = GoAgent {
            child,
            name: name.to_string(),
            ip: ip.to_string(),
            rpc_flag: format!("-rpc-addr={ip}:7373"),
            log,
            bin: bin.to_string(),
        };
        agent.wait_rpc();
        agent
    }

    fn wait_rpc(&self) {
        let deadline = now() + Duration::from_secs(10);
        let addr = format!("{}:7373", self.ip);
        while now() < deadline {
            if TcpStream::connect(&addr).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("Go agent {} never opened {addr}; log: {}", self.name, self.log.display());
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `ip:7373`.
    pub fn rpc_addr(&self) -> String {
        format!("{}:7373", self.ip)
    }

    /// Sends `sig` to the agent.
    pub fn signal(&self, sig: i32) {
        // SAFETY: signalling a child we spawned and have not reaped.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, sig);
        }
    }

    /// Resident memory from /proc, KiB.
    pub fn rss_kib(&self) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        s.lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    /// Whether this is the reference Go binary.
    pub fn is_go(&self) -> bool {
        self.bin == GO_SERF
    }

    /// `kill -9`, then reaps the process (so its ports are free again).
    pub fn kill9(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits (up to `timeout`) for the agent to exit on its own.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = now() + timeout;
        while now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for GoAgent {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// What a CLI run produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Run {
    /// Exit code (-1 when killed by a signal or timed out).
    pub code: i32,
    /// Standard output.
    pub out: String,
    /// Standard error.
    pub err: String,
}

/// A child process with its output captured to files, killed by PID on drop.
pub struct Spawned {
    child: Child,
    out: PathBuf,
    err: PathBuf,
}

impl Spawned {
    /// Starts `bin args` with `env` (SERF_RPC_* cleared unless given).
    pub fn start(bin: &str, args: &[&str], env: &[(&str, &str)], dir: &Path, tag: &str) -> Spawned {
        let out = dir.join(format!("{tag}.out"));
        let err = dir.join(format!("{tag}.err"));
        let mut cmd = Command::new(bin);
        cmd.args(args)
            .env_remove("SERF_RPC_ADDR")
            .env_remove("SERF_RPC_AUTH")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        Spawned { child: cmd.spawn().unwrap(), out, err }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGINT.
    pub fn interrupt(&self) {
        // SAFETY: signalling a child we spawned and have not reaped.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGINT);
        }
    }

    /// Output captured so far.
    pub fn stdout_now(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// Waits for exit (killing it after `timeout`) and collects the output.
    pub fn finish(mut self, timeout: Duration) -> Run {
        let deadline = now() + timeout;
        let code = loop {
            match self.child.try_wait() {
                Ok(Some(st)) => break st.code().unwrap_or(-1),
                _ if now() >= deadline => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break -1;
                }
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        };
        let read = |p: &Path| {
            let mut s = Vec::new();
            if let Ok(mut f) = std::fs::File::open(p) {
                let _ = f.read_to_end(&mut s);
            }
            String::from_utf8_lossy(&s).into_owned()
        };
        Run { code, out: read(&self.out), err: read(&self.err) }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `bin args` to completion (at most 20 s).
pub fn run(bin: &str, args: &[&str], env: &[(&str, &str)], dir: &Path) -> Run {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    Spawned::start(bin, args, env, dir, &format!("run{n}")).finish(Duration::from_secs(20))
}

/// Runs the Go CLI and ours with the same arguments, at the same time.
pub fn both(args: &[&str], env: &[(&str, &str)], dir: &Path) -> (Run, Run) {
    std::thread::scope(|s| {
        let go = s.spawn(|| run(GO_SERF, args, env, dir));
        let ours = run(OUR_SERF, args, env, dir);
        (go.join().unwrap(), ours)
    })
}

/// Runs the Go CLI, then ours, with the same arguments.
pub fn both_sequential(args: &[&str], env: &[(&str, &str)], dir: &Path) -> (Run, Run) {
    let go = run(GO_SERF, args, env, dir);
    let ours = run(OUR_SERF, args, env, dir);
    (go, ours)
}
