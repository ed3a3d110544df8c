//! Shared helpers of the `runtime_*` integration tests: building
//! `Membership<Recorder>` instances on loopback and waiting on real time.
#![allow(dead_code)]
// Real sockets, real time: the helpers wait on the OS clock.
#![allow(clippy::disallowed_methods)]

use std::net::SocketAddr;
use std::time::Duration;

use engine::proto::memberlist::{Config, Memberlist};
use engine::proto::Membership;
use engine::rng::Rng;
use engine::runtime::InstanceHandle;
use engine::sim::cluster::Recorder;
use engine::time::Instant;
use engine::wire::crypto::Keyring;
use engine::wire::memberlist::NodeState;

pub type Node = Membership<Recorder>;

/// `127.0.a.b:7946`.
pub fn addr(a: u8, b: u8) -> SocketAddr {
    SocketAddr::from(([127, 0, a, b], 7946))
}

/// `Config::local()` with shorter probe and gossip periods, so failure
/// detection on loopback takes a couple of seconds.
pub fn fast_config() -> Config {
    let mut c = Config::local();
    c.probe_interval = Duration::from_millis(300);
    c.probe_timeout = Duration::from_millis(100);
    c.gossip_interval = Duration::from_millis(50);
    c
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

/// The state in which `h` sees node `name`, if it knows it.
pub fn state_of(h: &InstanceHandle<Node>, name: &'static str) -> Option<NodeState> {
    h.call(move |ep, _| ep.ml.node(name).map(|n| n.state)).ok().flatten()
}

/// Names of the nodes `h` sees alive, sorted.
pub fn alive(h: &InstanceHandle<Node>) -> Vec<String> {
    let mut v = h
        .call(|ep, _| {
            ep.ml
                .nodes()
                .iter()
                .filter(|n| n.state == NodeState::Alive)
                .map(|n| n.name.to_string())
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    v.sort();
    v
}
