//! `--mode process`: N real agent processes of any Serf-compatible binary
//! (ours, `target/release/serf`, or Go's `/usr/bin/serf`), each on its own
//! loopback address, observed only through the RPC protocol (a `stream` of
//! member and user events per agent, `members`, `join`, `event`, `query`,
//! `leave`), so both implementations are measured by the same code.
//!
//! Cost figures come from outside the agents: CPU time and RSS from
//! `/proc/PID`, packets and bytes from a capture on `lo` (see [`capture`]),
//! suspicions from the agents' own log lines (both implementations log
//! `Suspect <node> has failed, no acks received` when a probe fails).

// A harness of real processes measures on the OS clock.
#![allow(clippy::disallowed_methods)]

mod agents;
mod capture;
mod observe;
mod scenarios;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::args::{Args, Scenario};
use crate::report::Report;

use agents::Agents;
use observe::{LagProbe, Observed, Views};

/// A running cluster and its observers.
pub struct Cluster {
    pub agents: Agents,
    pub obs: Observed,
    pub lag: LagProbe,
    pub capture: Option<capture::Capture>,
    /// Why there is no capture, if there is none.
    pub capture_error: Option<String>,
    pub timeout: Duration,
    pub seed: u64,
    pub quiet: bool,
    /// Spinner on a terminal; plain lines otherwise (CI logs keep them).
    bar: ProgressBar,
    stop: Arc<AtomicBool>,
    observers: Vec<JoinHandle<()>>,
}

impl Cluster {
    pub fn progress(&self, msg: &str) {
        if self.quiet {
            return;
        }
        if self.bar.is_hidden() {
            eprintln!("loadgen[process]: {msg}");
        } else {
            self.bar.set_message(msg.to_string());
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
        self.stop.store(true, Ordering::Relaxed);
        // Observers end within their 100 ms poll once stop is set.
        for h in self.observers.drain(..) {
            let _ = h.join();
        }
    }
}

/// Runs the scenarios of `args` and records them into `report`.
pub fn run(args: &Args, report: &mut Report) -> Result<(), String> {
    if args.scenario.contains(&Scenario::Partition) {
        return Err("partition is not supported in process mode (it would need the whole \
                    cluster inside a network namespace with filtering rules; not built)"
            .into());
    }
    let bin = args.agent_bin.as_ref().ok_or("--mode process needs --agent-bin PATH")?;
    if !bin.exists() {
        return Err(format!("agent binary {} not found", bin.display()));
    }
    agents::raise_fd_limit();
    let dir = std::env::temp_dir().join(format!("loadgen-process-{}", std::process::id()));
    report.config("agent_bin", bin.display());
    report.config("base_ip", args.base_ip);
    report.config("profile", &args.profile);
    report.config("logs", dir.display());
    report.config(
        "observation",
        "RPC stream per agent (member events after the agent's coalescing); /proc for CPU/RSS; \
         AF_PACKET capture on lo for packets",
    );

    let started = Instant::now();
    let agents = Agents::spawn(bin, args.nodes, args.base_ip, &args.profile, &dir)?;
    let (tx, rx) = std::sync::mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    let mut cluster = Cluster {
        obs: Observed { rx, views: Views::new(args.nodes) },
        lag: LagProbe::start(),
        capture: None,
        capture_error: None,
        timeout: Duration::from_secs(args.timeout_secs),
        seed: args.seed,
        quiet: args.quiet,
        bar: progress_bar(args.quiet),
        stop: stop.clone(),
        observers: Vec::with_capacity(args.nodes),
        agents,
    };
    cluster.progress(&format!("started {} agents of {}", args.nodes, bin.display()));
    let ready_limit = Duration::from_secs(30);
    for i in 0..args.nodes {
        let addr = cluster.agents.list[i].rpc_addr();
        // Wait for the RPC listener, failing fast if the agent exits (e.g.
        // its address is taken by another run).
        let until = Instant::now() + ready_limit;
        while std::net::TcpStream::connect(&addr).is_err() && Instant::now() < until {
            cluster.agents.check_running()?;
            std::thread::sleep(Duration::from_millis(20));
        }
        let h = observe::start(i, &addr, tx.clone(), stop.clone(), Duration::from_secs(1))
            .map_err(|e| format!("{e} (log: {})", cluster.agents.list[i].log.display()))?;
        cluster.observers.push(h);
    }
    drop(tx);
    cluster.agents.check_running()?;
    report.config("startup_secs", format!("{:.2}", started.elapsed().as_secs_f64()));
    cluster.progress(&format!("all {} agents answer RPC", args.nodes));
    let addrs: Vec<_> = cluster.agents.list.iter().map(|a| a.ip).collect();
    match capture::Capture::start(&addrs, agents::GOSSIP_PORT) {
        Ok(c) => cluster.capture = Some(c),
        Err(e) => cluster.capture_error = Some(e),
    }

    // `join` always runs first: it builds the cluster.
    scenarios::join(&mut cluster, args, report)?;
    for s in &args.scenario {
        match s {
            Scenario::Join => {}
            Scenario::Fail => scenarios::fail(&mut cluster, args, report)?,
            Scenario::Leave => scenarios::leave(&mut cluster, args, report)?,
            Scenario::Idle => scenarios::idle(&mut cluster, args, report)?,
            Scenario::Event => scenarios::event(&mut cluster, args, report)?,
            Scenario::Query => scenarios::query(&mut cluster, args, report)?,
            Scenario::Stall => scenarios::stall(&mut cluster, args, report)?,
            Scenario::Partition => unreachable!("refused above"),
        }
    }
    drop(cluster);
    // Logs are kept only when something failed (or LOADGEN_KEEP_LOGS is set).
    if report.passed() && std::env::var_os("LOADGEN_KEEP_LOGS").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}

/// A spinner with the latest progress message, drawn only when stderr is a
/// terminal (indicatif hides it otherwise, and `progress` prints lines).
fn progress_bar(quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let b = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    b.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    if !b.is_hidden() {
        b.enable_steady_tick(Duration::from_millis(200));
    }
    b
}
