//! The hot core of our Serf: a wire codec, sans-IO protocol state machines,
//! a thread-per-core runtime and a deterministic cluster simulator.
//!
//! Dependencies point one way: [`wire`] knows nothing of protocol state;
//! `proto` knows nothing of sockets, threads or the clock; `runtime` knows
//! nothing of Serf semantics. See `DESIGN.md` at the workspace root.

pub mod proto;
pub mod rng;
pub mod runtime;
pub mod sim;
pub mod time;
pub mod timer;
pub mod wire;
