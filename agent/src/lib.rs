//! The `serf` binary's library: the agent RPC protocol and client, the CLI
//! subcommands, and the agent configuration.
//!
//! `main.rs` only dispatches to [`commands`]; everything testable lives here.

pub mod agent;
pub mod commands;
pub mod config;
pub mod go;
pub mod rpc;
