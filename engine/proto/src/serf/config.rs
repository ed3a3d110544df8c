//! Serf configuration (`protocol/serf.md` §14) and the persistent state a
//! snapshot restores (§12).

use core::time::Duration;
use std::collections::BTreeMap;
use std::net::SocketAddr;

use crate::memberlist;

/// Serf protocol versions this implementation speaks.
pub const PROTOCOL_MIN: u8 = 2;
/// Highest Serf protocol version.
pub const PROTOCOL_MAX: u8 = 5;
/// Hard limit on a user event's name + payload (`UserEventSizeLimit` in Go).
pub const USER_EVENT_SIZE_SANE_LIMIT: usize = 9 * 1024;

/// Serf settings. [`SerfConfig::agent`] gives the `serf agent` defaults.
#[derive(Clone, Debug)]
pub struct SerfConfig {
    /// The membership layer (name, addresses, profile timings).
    pub memberlist: memberlist::Config,
    /// Serf protocol version spoken (2..=5); the agent default is 5.
    pub protocol_version: u8,
    /// This node's tags.
    pub tags: BTreeMap<String, String>,
    /// How long leave, force-leave and tag updates wait for their broadcast.
    pub broadcast_timeout: Duration,
    /// Extra time a leaving node stays up answering probes.
    pub leave_propagate_delay: Duration,
    pub reap_interval: Duration,
    pub reconnect_interval: Duration,
    /// Failed members are erased after this long.
    pub reconnect_timeout: Duration,
    /// Left members are erased after this long.
    pub tombstone_timeout: Duration,
    /// Intents about unknown nodes are kept this long.
    pub recent_intent_timeout: Duration,
    /// Slots of the recent-event ring (Go: 512; it is gossiped whole).
    pub event_buffer: usize,
    /// Slots of the recent-query ring.
    pub query_buffer: usize,
    pub query_timeout_mult: u32,
    pub query_response_size_limit: usize,
    pub query_size_limit: usize,
    pub user_event_size_limit: usize,
    pub queue_check_interval: Duration,
    pub queue_depth_warning: usize,
    pub max_queue_depth: usize,
    /// When > 0, the queue limit is `max(min_queue_depth, 2 × members)`.
    pub min_queue_depth: usize,
    /// Resolve a conflict over our own name by a cluster vote.
    pub enable_name_conflict_resolution: bool,
    pub disable_coordinates: bool,
    /// State restored from a snapshot, if any.
    pub restore: Option<Restore>,
}

impl SerfConfig {
    /// `serf agent` defaults over the given memberlist profile.
    pub fn agent(memberlist: memberlist::Config) -> Self {
        SerfConfig {
            memberlist,
            protocol_version: PROTOCOL_MAX,
            tags: BTreeMap::new(),
            broadcast_timeout: Duration::from_secs(5),
            leave_propagate_delay: Duration::from_secs(1),
            reap_interval: Duration::from_secs(15),
            reconnect_interval: Duration::from_secs(30),
            reconnect_timeout: Duration::from_secs(24 * 3600),
            tombstone_timeout: Duration::from_secs(24 * 3600),
            recent_intent_timeout: Duration::from_secs(5 * 60),
            event_buffer: 512,
            query_buffer: 512,
            query_timeout_mult: 16,
            query_response_size_limit: 1024,
            query_size_limit: 1024,
            user_event_size_limit: 512,
            queue_check_interval: Duration::from_secs(30),
            queue_depth_warning: 128,
            max_queue_depth: 4096,
            min_queue_depth: 0,
            enable_name_conflict_resolution: true,
            disable_coordinates: false,
            restore: None,
        }
    }

    /// The memberlist version vector for this Serf protocol version.
    pub fn vsn(&self) -> [u8; 6] {
        [1, 5, 2, PROTOCOL_MIN, PROTOCOL_MAX, self.protocol_version]
    }
}

/// What a snapshot restores at startup.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Restore {
    /// Member clock.
    pub clock: u64,
    /// Event clock; events at or before it are not delivered again.
    pub event_clock: u64,
    /// Query clock; queries at or before it are not delivered again.
    pub query_clock: u64,
    /// Nodes that were alive, to rejoin: `(name, address)`.
    pub alive: Vec<(String, SocketAddr)>,
}
