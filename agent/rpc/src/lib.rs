//! The Serf agent's msgpack RPC (IPC) protocol, `shared/protocol/rpc.md`:
//!
//! * [`codec`] — every request, reply and record type, with Go's encoding
//!   (owned types, for decoding and for the client), plus borrowed views
//!   ([`codec::MemberView`] and the member-list bodies built on it) that a
//!   server encodes straight from its own member table, and
//!   [`codec::append`], which encodes into a growable buffer in one pass;
//! * [`client`] — the blocking client every `serf` CLI subcommand and
//!   `loadgen`'s process mode use.
//!
//! The server lives in the agent (`agent::rpc::server`): it needs the
//! running agent. This crate depends only on `wire` (the msgpack cursor) and
//! `gonet` (Go's dial errors), so tools that drive agents over RPC need not
//! build the agent.

pub mod client;
pub mod codec;

pub use client::{Client, ClientError};
