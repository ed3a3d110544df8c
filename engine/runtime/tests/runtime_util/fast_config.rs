//! Faster failure detection for loopback tests (see `mod.rs`).

use std::time::Duration;

use proto::memberlist::Config;

/// `Config::local()` with shorter probe and gossip periods, so failure
/// detection on loopback takes a couple of seconds.
pub fn fast_config() -> Config {
    let mut c = Config::local();
    c.probe_interval = Duration::from_millis(300);
    c.probe_timeout = Duration::from_millis(100);
    c.gossip_interval = Duration::from_millis(50);
    c
}
