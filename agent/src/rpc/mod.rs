//! The agent RPC (IPC) protocol of `shared/protocol/rpc.md`. The message
//! types ([`codec`]) and the blocking client every CLI subcommand uses
//! ([`client`]) are the `rpc` crate, re-exported here; the [`server`] that
//! serves them for a running agent is the agent's own.

pub use ::rpc::{client, codec, Client, ClientError};
pub mod server;
