//! Command-line flags shared by every mode.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

/// Where the cluster runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// N engine instances on the thread-per-core runtime in this process.
    Inproc,
    /// N agent processes of `--agent-bin`, observed through RPC.
    Process,
    /// The deterministic simulator (virtual time).
    Sim,
}

/// One experiment phase. Phases run in the order given on one cluster;
/// `join` always runs first (it builds the cluster).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    Join,
    Fail,
    Leave,
    Idle,
    Event,
    Query,
    Stall,
    Partition,
}

#[derive(Debug, Parser)]
#[command(
    name = "loadgen",
    about = "Serf cluster experiments: convergence, detection, dissemination, cost"
)]
pub struct Args {
    /// Where the cluster runs.
    #[arg(long, value_enum, default_value = "inproc")]
    pub mode: Mode,
    /// Cluster size.
    #[arg(long, default_value_t = 64)]
    pub nodes: usize,
    /// Scenarios, in order, on one cluster.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "join,fail,idle")]
    pub scenario: Vec<Scenario>,
    /// Agent binary for `--mode process` (ours or `/usr/bin/serf`).
    #[arg(long)]
    pub agent_bin: Option<PathBuf>,
    /// `join`: simultaneous (all at once) or staggered by this many ms.
    #[arg(long, default_value_t = 0)]
    pub stagger_ms: u64,
    /// `fail`: agents killed.
    #[arg(long, default_value_t = 1)]
    pub kill: usize,
    /// `leave`: agents that leave gracefully.
    #[arg(long, default_value_t = 1)]
    pub leave: usize,
    /// `idle`: observation window in seconds.
    #[arg(long, default_value_t = 60)]
    pub idle_secs: u64,
    /// `stall`: percentage of agents stopped per burst.
    #[arg(long, default_value_t = 10)]
    pub stall_percent: u32,
    /// `stall`: burst length in ms.
    #[arg(long, default_value_t = 2000)]
    pub stall_ms: u64,
    /// Upper bound on any single wait, seconds (a phase that does not finish
    /// in time is reported as failed, never hangs).
    #[arg(long, default_value_t = 300)]
    pub timeout_secs: u64,
    /// Memberlist profile.
    #[arg(long, default_value = "lan")]
    pub profile: String,
    /// First address; agent i gets base + i spread over 127.x.y.z.
    #[arg(long, default_value = "127.1.0.1")]
    pub base_ip: std::net::Ipv4Addr,
    /// Worker threads for `--mode inproc` (default: cores).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Seed (sim mode; also shuffles victims in every mode).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Directory for JSON and plots; nothing is written without it.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// File stem inside `--out` (default: loadgen-<mode>-<nodes>).
    #[arg(long)]
    pub name: Option<String>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

impl Args {
    /// Checks combinations clap cannot.
    pub fn validate(&self) -> Result<(), String> {
        if self.nodes < 2 {
            return Err("--nodes must be at least 2".into());
        }
        if self.mode == Mode::Process && self.agent_bin.is_none() {
            return Err("--mode process needs --agent-bin PATH".into());
        }
        if !self.base_ip.is_loopback() {
            return Err(format!("--base-ip {} is not a loopback address", self.base_ip));
        }
        Ok(())
    }
}
