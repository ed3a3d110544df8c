//! `serf agent` (`shared/protocol/cli.md` §2): read and validate the
//! configuration, start the agent and its RPC server, print the banner as
//! the Go agent does, join, then wait for signals.
//!
//! Signals: SIGINT leaves gracefully (unless `skip_leave_on_interrupt`) and
//! exits 0 when the leave completes within 3 s, 1 on a second signal or the
//! timeout; SIGTERM exits 1 at once (leaving first only with
//! `leave_on_terminate`); SIGHUP reloads the log level, event handlers and
//! tags. An RPC `leave` or a lost name-conflict vote exits 0.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam_channel::{select, Receiver};

use super::{texts, Ui};
use crate::agent::log::{Level, Logger};
use crate::agent::{Agent, AgentHandle, ShutdownReason};
use crate::config::{self, AgentConfig, Loaded, ReadError};
use crate::dns::DnsServer;
use crate::http::HttpServer;
use crate::rpc::server::RpcServer;

/// How long a graceful leave on SIGINT may take (Go's `gracefulTimeout`).
const GRACEFUL_TIMEOUT: Duration = Duration::from_secs(3);

/// Runs the command; returns the exit code.
pub fn run(args: &[String], ui: &mut Ui<'_>) -> i32 {
    let loaded = match read(args, ui) {
        Some(l) => l,
        None => return 1,
    };
    ui.output("==> Starting Serf agent...");
    let plan = match config::prepare_start(&loaded.config) {
        Ok(p) => p,
        Err(e) => {
            ui.output(&format!("==> {e}"));
            return 1;
        }
    };
    let c = &loaded.config;
    let gate = Gate::default();
    let logger = Logger::new(Level::of(c.log_level), Box::new(gate.clone()));
    if c.enable_syslog {
        if let Err(e) = logger.enable_syslog(&c.syslog_facility) {
            ui.output(&format!("==> Syslog setup failed: {e}"));
            return 1;
        }
    }
    let agent = match Agent::start(c, &plan, logger.clone()) {
        Ok(a) => a,
        Err(e) => {
            ui.output(&format!("==> {e}"));
            return 1;
        }
    };
    for n in &agent.notices {
        ui.output(&format!("==> {n}"));
        logger.log(Level::Warn, "agent", n);
    }
    let handle = agent.handle();
    ui.output("==> Starting Serf agent RPC...");
    let rpc_addr = match c.rpc_socket_addr() {
        Ok(a) => a,
        Err(e) => {
            ui.output(&format!("==> Error starting RPC listener: {e}"));
            return 1;
        }
    };
    let rpc = match RpcServer::start(rpc_addr, &c.rpc_auth, handle.clone()) {
        Ok(s) => s,
        Err(e) => {
            ui.output(&format!("==> Error starting RPC listener: {e}"));
            return 1;
        }
    };
    // serf-rs only: the HTTP API and the DNS interface, when configured.
    let http = match c.http_addr.map(|a| HttpServer::start(a, handle.clone())).transpose() {
        Ok(h) => h,
        Err(e) => {
            ui.output(&format!("==> Error starting HTTP listener: {e}"));
            return 1;
        }
    };
    let dns = match c.dns_addr.map(|a| DnsServer::start(a, handle.clone())).transpose() {
        Ok(d) => d,
        Err(e) => {
            ui.output(&format!("==> Error starting DNS listener: {e}"));
            return 1;
        }
    };
    banner(ui, c, &agent, http.as_ref(), dns.as_ref());
    if !c.start_join.is_empty() {
        ui.output(&format!("==> Joining cluster...(replay: {})", c.replay_on_join));
        let outcome = handle.join(&c.start_join, c.replay_on_join).recv();
        match outcome {
            Ok(o) if o.error.is_none() => {
                ui.info(&format!("    Join completed. Synced with {} initial agents", o.joined))
            }
            Ok(o) => {
                ui.output(&format!("==> {}", o.error.unwrap_or_default()));
                rpc.shutdown();
                return 1;
            }
            Err(_) => {
                ui.output("==> agent stopped during join");
                return 1;
            }
        }
    }
    let (retry_failed_tx, retry_failed) = crossbeam_channel::bounded(1);
    if !c.retry_join.is_empty() {
        let (h, c2, log) = (handle.clone(), c.clone(), logger.clone());
        std::thread::spawn(move || retry_join(&h, &c2, &log, retry_failed_tx));
    }
    ui.output("");
    ui.output("==> Log data will now stream in as it occurs:");
    ui.output("");
    gate.open();
    let code = wait(&agent, &handle, &logger, args, ui, &retry_failed);
    if let Some(h) = http {
        h.shutdown();
    }
    if let Some(d) = dns {
        d.shutdown();
    }
    rpc.shutdown();
    logger.log(Level::Info, "agent", "requesting serf shutdown");
    let left =
        handle.local_member().is_some_and(|m| m.status == engine::proto::serf::MemberStatus::Left);
    if !left {
        logger.log(Level::Warn, "serf", "Shutdown without a Leave");
    }
    agent.shutdown();
    logger.log(Level::Info, "agent", "shutdown complete");
    code
}

/// The startup block after `Serf agent running!`.
fn banner(
    ui: &mut Ui<'_>,
    c: &AgentConfig,
    agent: &Agent,
    http: Option<&HttpServer>,
    dns: Option<&DnsServer>,
) {
    ui.output("==> Serf agent running!");
    let line = |label: &str, value: String| format!("{label:>31}: {value}");
    ui.info(&line("Node name", format!("'{}'", c.node_name)));
    ui.info(&line("Bind addr", format!("'{}'", c.bind)));
    if c.advertise.is_some() {
        // Go prints this one without the alignment.
        ui.info(&format!("    Advertise addr: '{}'", agent.advertise));
    }
    ui.info(&line("RPC addr", format!("'{}'", c.rpc_addr)));
    // Only when turned on, so the banner stays Go's otherwise.
    if let Some(h) = http {
        ui.info(&line("HTTP addr", format!("'{}'", h.local_addr())));
    }
    if let Some(d) = dns {
        ui.info(&line("DNS addr", format!("'{}' (domain {})", d.local_addr(), c.domain)));
    }
    let encrypted = c.encrypt_key.is_some() || c.keyring_file.is_some();
    ui.info(&line("Encrypted", encrypted.to_string()));
    ui.info(&line("Snapshot", c.snapshot_path.is_some().to_string()));
    ui.info(&line("Profile", c.profile.name().to_string()));
    if let Some(d) = &c.discover {
        ui.info(&line("mDNS cluster", d.clone()));
    }
    ui.info(&line("Message Compression Enabled", c.enable_compression.to_string()));
}

fn retry_join(
    h: &AgentHandle,
    c: &AgentConfig,
    log: &Logger,
    failed: crossbeam_channel::Sender<()>,
) {
    let mut attempt = 0i64;
    loop {
        log.log(Level::Info, "agent", &format!("Joining cluster...(replay: {})", c.replay_on_join));
        match h.join(&c.retry_join, c.replay_on_join).recv() {
            Ok(o) if o.error.is_none() => {
                log.log(
                    Level::Info,
                    "agent",
                    &format!("Join completed. Synced with {} initial agents", o.joined),
                );
                return;
            }
            Ok(o) => {
                attempt += 1;
                if c.retry_max_attempts > 0 && attempt > c.retry_max_attempts {
                    log.log(Level::Err, "agent", "maximum retry join attempts made, exiting");
                    let _ = failed.send(());
                    return;
                }
                let err = o.error.unwrap_or_default();
                log.log(
                    Level::Warn,
                    "agent",
                    &format!(
                        "Join failed: {err}, retrying in {}",
                        crate::go::time::format_duration(c.retry_interval.as_nanos() as i64)
                    ),
                );
                std::thread::sleep(c.retry_interval);
            }
            Err(_) => return,
        }
    }
}

/// The signal loop; returns the exit code.
fn wait(
    agent: &Agent,
    handle: &AgentHandle,
    logger: &Logger,
    args: &[String],
    ui: &mut Ui<'_>,
    retry_failed: &Receiver<()>,
) -> i32 {
    let signals = match signal_channel() {
        Ok(s) => s,
        Err(e) => {
            ui.output(&format!("==> Failed to install signal handlers: {e}"));
            return 1;
        }
    };
    loop {
        let sig = select! {
            recv(signals) -> s => match s { Ok(s) => s, Err(_) => return 1 },
            recv(agent.shutdown_requests()) -> r => {
                return match r {
                    Ok(ShutdownReason::Left) => 0,
                    Ok(ShutdownReason::Engine(reason)) => {
                        logger.log(Level::Warn, "agent", &format!("Serf shutdown detected, quitting: {reason}"));
                        0
                    }
                    Err(_) => 1,
                };
            },
            recv(retry_failed) -> _ => return 1,
        };
        let name = match sig {
            libc::SIGINT => "interrupt",
            libc::SIGTERM => "terminated",
            libc::SIGHUP => "hangup",
            _ => "unknown",
        };
        ui.output(&format!("==> Caught signal: {name}"));
        if sig == libc::SIGHUP {
            reload(handle, logger, args, ui);
            continue;
        }
        let c = handle.config();
        let graceful = (sig == libc::SIGINT && !c.skip_leave_on_interrupt)
            || (sig == libc::SIGTERM && c.leave_on_terminate);
        if !graceful {
            return 1;
        }
        ui.output("==> Gracefully shutting down agent...");
        logger.log(Level::Info, "agent", "requesting graceful leave from Serf");
        let done = handle.leave();
        select! {
            recv(done) -> r => return match r {
                Ok(Ok(())) => 0,
                Ok(Err(e)) => {
                    ui.output(&format!("Error: {e}"));
                    1
                }
                Err(_) => 1,
            },
            recv(signals) -> _ => return 1,
            default(GRACEFUL_TIMEOUT) => return 1,
        }
    }
}

/// SIGINT, SIGTERM and SIGHUP as a channel.
fn signal_channel() -> std::io::Result<Receiver<i32>> {
    let mut signals =
        signal_hook::iterator::Signals::new([libc::SIGINT, libc::SIGTERM, libc::SIGHUP])?;
    let (tx, rx) = crossbeam_channel::unbounded();
    std::thread::Builder::new().name("signals".into()).spawn(move || {
        for s in signals.forever() {
            if tx.send(s).is_err() {
                break;
            }
        }
    })?;
    Ok(rx)
}

/// SIGHUP: re-read the configuration; apply log level, handlers and tags.
fn reload(handle: &AgentHandle, logger: &Logger, args: &[String], ui: &mut Ui<'_>) {
    ui.output("==> Reloading configuration...");
    let new = match config::read_config(args) {
        Ok(l) => l.config,
        Err(ReadError::Invalid { message, .. }) => {
            ui.output(&format!("==> Failed to reload configs: {message}"));
            return;
        }
        Err(ReadError::Usage(m)) => {
            ui.output(&format!("==> Failed to reload configs: {}", m.unwrap_or_default()));
            return;
        }
    };
    logger.set_level(Level::of(new.log_level));
    handle.reload_handlers(&new.event_handlers);
    if new.tags_file.is_none() && new.tags != handle.config().tags {
        let current: std::collections::BTreeMap<String, String> =
            handle.local_member().map(|m| (*m.tags).clone()).unwrap_or_default();
        let delete: Vec<String> =
            current.keys().filter(|k| !new.tags.contains_key(*k)).cloned().collect();
        if let Ok(Err(e)) = handle.set_tags(&new.tags, &delete).recv() {
            logger.log(Level::Err, "agent", &format!("Failed to update tags: {e}"));
        }
    }
}

/// Reads the configuration from `args` (flags, files, defaults), printing
/// warnings and errors the way the Go agent does (`==> ` prefix on the
/// first line). `None` means "exit 1".
pub fn read(args: &[String], ui: &mut Ui<'_>) -> Option<Loaded> {
    match config::read_config(args) {
        Ok(loaded) => {
            for w in &loaded.warnings {
                ui.output(&format!("==> {w}"));
            }
            Some(loaded)
        }
        Err(ReadError::Usage(msg)) => {
            if let Some(msg) = msg {
                eprintln!("{msg}");
            }
            ui.output(&format!("==> {}", texts::AGENT));
            None
        }
        Err(ReadError::Invalid { warnings, message }) => {
            for w in &warnings {
                ui.output(&format!("==> {w}"));
            }
            ui.output(&format!("==> {message}"));
            None
        }
    }
}

/// Log output that is held back until the banner has been printed (Go's
/// `logGate`), then goes to stdout.
#[derive(Clone, Default)]
struct Gate {
    inner: Arc<Mutex<(bool, Vec<u8>)>>,
}

impl Gate {
    fn open(&self) {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.0 = true;
        let mut out = std::io::stdout();
        let _ = out.write_all(&g.1);
        let _ = out.flush();
        g.1.clear();
    }
}

impl Write for Gate {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if g.0 {
            let mut out = std::io::stdout();
            out.write_all(buf)?;
        } else if g.1.len() < 1 << 20 {
            g.1.extend_from_slice(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stdout().flush()
    }
}
