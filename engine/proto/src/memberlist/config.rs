//! memberlist configuration and Go's three profiles (`protocol/memberlist.md` §10).

use core::time::Duration;
use std::net::{IpAddr, Ipv4Addr};

/// Protocol version vector a Serf agent advertises: memberlist protocol
/// min 1, max 5, current 2; delegate (Serf) protocol min 2, max 5, current 5.
pub const DEFAULT_VSN: [u8; 6] = [1, 5, 2, 2, 5, 5];

/// memberlist settings. Build one with [`Config::lan`], [`Config::wan`] or
/// [`Config::local`] and adjust the identity fields.
#[derive(Clone, Debug)]
pub struct Config {
    /// This node's name; unique in the cluster.
    pub name: String,
    /// Address gossiped to peers (acks, pushes and probes come back here).
    pub advertise_addr: IpAddr,
    /// Port gossiped to peers; also the default port for joins.
    pub advertise_port: u16,
    /// `[pmin, pmax, pcur, dmin, dmax, dcur]`; see [`DEFAULT_VSN`].
    pub vsn: [u8; 6],
    /// Dial and whole-exchange deadline for streams.
    pub tcp_timeout: Duration,
    /// Helpers asked to probe a node that missed a direct probe.
    pub indirect_checks: usize,
    /// Retransmits per broadcast = mult × ceil(log10(N + 1)).
    pub retransmit_mult: u32,
    /// Suspicion timeout scale (see `suspicion`).
    pub suspicion_mult: u32,
    /// Upper suspicion timeout = this × lower.
    pub suspicion_max_timeout_mult: u32,
    /// Anti-entropy period (scaled with cluster size above 32 nodes); zero disables.
    pub push_pull_interval: Duration,
    /// How long to wait for a direct ack before indirect probes.
    pub probe_timeout: Duration,
    /// Period of the probe round; zero disables probing.
    pub probe_interval: Duration,
    /// Never fall back to TCP pings.
    pub disable_tcp_pings: bool,
    /// Lifeguard: the probe interval stretches up to this factor.
    pub awareness_max_multiplier: u32,
    /// Peers per gossip round.
    pub gossip_nodes: usize,
    /// Gossip period; zero disables gossip.
    pub gossip_interval: Duration,
    /// Keep gossiping to a dead node for this long (and reap it after).
    pub gossip_to_the_dead_time: Duration,
    /// LZW-compress datagrams (when smaller) and stream bodies.
    pub enable_compression: bool,
    /// Budget of one gossip datagram before wrappers.
    pub udp_buffer_size: usize,
    /// Largest number of queued memberlist broadcasts (beyond it the most
    /// transmitted are dropped and counted).
    pub max_broadcasts: usize,
    /// Largest number of queued outgoing datagrams (beyond it new sends are
    /// dropped and counted).
    pub max_pending_sends: usize,
    /// Largest number of concurrent streams this instance starts.
    pub max_streams: usize,
    /// A dead node's name may be claimed by another address after this long
    /// (zero: never, as in Serf).
    pub dead_node_reclaim_time: Duration,
}

impl Config {
    /// Go's `DefaultLANConfig`.
    pub fn lan() -> Self {
        Config {
            name: String::new(),
            advertise_addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
            advertise_port: 7946,
            vsn: DEFAULT_VSN,
            tcp_timeout: Duration::from_secs(10),
            indirect_checks: 3,
            retransmit_mult: 4,
            suspicion_mult: 4,
            suspicion_max_timeout_mult: 6,
            push_pull_interval: Duration::from_secs(30),
            probe_timeout: Duration::from_millis(500),
            probe_interval: Duration::from_secs(1),
            disable_tcp_pings: false,
            awareness_max_multiplier: 8,
            gossip_nodes: 3,
            gossip_interval: Duration::from_millis(200),
            gossip_to_the_dead_time: Duration::from_secs(30),
            enable_compression: true,
            udp_buffer_size: 1400,
            max_broadcasts: 8192,
            max_pending_sends: 1024,
            max_streams: 128,
            dead_node_reclaim_time: Duration::ZERO,
        }
    }

    /// Go's `DefaultWANConfig`.
    pub fn wan() -> Self {
        Config {
            tcp_timeout: Duration::from_secs(30),
            suspicion_mult: 6,
            push_pull_interval: Duration::from_secs(60),
            probe_timeout: Duration::from_secs(3),
            probe_interval: Duration::from_secs(5),
            gossip_nodes: 4,
            gossip_interval: Duration::from_millis(500),
            gossip_to_the_dead_time: Duration::from_secs(60),
            ..Config::lan()
        }
    }

    /// Go's `DefaultLocalConfig`.
    pub fn local() -> Self {
        Config {
            tcp_timeout: Duration::from_secs(1),
            indirect_checks: 1,
            retransmit_mult: 2,
            suspicion_mult: 3,
            push_pull_interval: Duration::from_secs(15),
            probe_timeout: Duration::from_millis(200),
            probe_interval: Duration::from_secs(1),
            gossip_interval: Duration::from_millis(100),
            gossip_to_the_dead_time: Duration::from_secs(15),
            ..Config::lan()
        }
    }

    /// The profile by its agent name (`lan`, `wan`, `local`).
    pub fn profile(name: &str) -> Option<Self> {
        match name {
            "lan" => Some(Config::lan()),
            "wan" => Some(Config::wan()),
            "local" => Some(Config::local()),
            _ => None,
        }
    }
}
