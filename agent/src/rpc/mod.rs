//! The agent RPC (IPC) protocol of `shared/protocol/rpc.md`: the message
//! types both sides exchange ([`codec`]) and the blocking client every CLI
//! subcommand uses ([`client`]).

pub mod client;
pub mod codec;

pub use client::{Client, ClientError};
pub mod server;
