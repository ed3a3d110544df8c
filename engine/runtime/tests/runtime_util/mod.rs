//! Shared helpers of the `runtime_*` integration tests: building
//! `Membership<Recorder>` instances on loopback and waiting on real time.
//! Every test uses all of this module; the helpers only some use live in
//! their own files beside it (`alive.rs`, `state_of.rs`, `fast_config.rs`),
//! which a test includes with `#[path]`.
// Real sockets, real time: the helpers wait on the OS clock.
#![allow(clippy::disallowed_methods)]

use std::net::SocketAddr;
use std::time::Duration;

use proto::memberlist::{Config, Memberlist};
use proto::rng::Rng;
use proto::time::Instant;
use proto::Membership;
use sim::cluster::Recorder;
use wire::crypto::Keyring;

pub type Node = Membership<Recorder>;

/// `127.0.a.b:7946`.
pub fn addr(a: u8, b: u8) -> SocketAddr {
    SocketAddr::from(([127, 0, a, b], 7946))
}

/// A factory for a node named `name` advertising `addr`, with Serf's empty
/// tags as metadata.
pub fn node(
    name: &str,
    addr: SocketAddr,
    config: &Config,
    keyring: Option<Keyring>,
    keep: bool,
) -> impl FnOnce(Instant, Rng) -> Node + Send + 'static {
    let mut c = config.clone();
    c.name = name.to_string();
    c.advertise_addr = addr.ip();
    c.advertise_port = addr.port();
    move |now, rng| Membership {
        ml: Memberlist::new(c, now, rng, keyring, &[0xff, 0x80]),
        delegate: Recorder { keep, ..Recorder::default() },
    }
}

/// Polls `f` every 50 ms until it holds or `limit` passes; returns whether it held.
pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = std::time::Instant::now();
    loop {
        if f() {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
