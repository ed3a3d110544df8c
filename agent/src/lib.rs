//! The `serf` binary's library: the agent, its RPC server (the protocol and
//! client are the `rpc` crate, re-exported as [`rpc`]), the CLI
//! subcommands, the agent configuration, and the agent's HTTP API, DNS
//! interface and metrics.
//!
//! `main.rs` only dispatches to [`commands`]; everything testable lives here.

pub mod agent;
pub mod commands;
pub mod config;
pub mod dns;
pub mod go;
pub mod http;
pub mod metrics;
pub mod rpc;
