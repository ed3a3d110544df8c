//! The hot core of our Serf, as one import for the binaries: the wire codec,
//! the sans-IO protocol state machines, the thread-per-core runtime and the
//! deterministic cluster simulator. Each lives in its own crate so that the
//! compiler keeps the arrows of `ARCHITECTURE.md`:
//!
//! `wire` ← `proto` ← {`runtime`, `sim`} ← `engine` (this facade).

pub use proto;
pub use proto::{rng, time, timer};
pub use runtime;
pub use sim;
pub use wire;
