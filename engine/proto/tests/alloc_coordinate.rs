//! Zero allocation on the per-probe path: decoding a peer's ack payload,
//! updating the Vivaldi client, encoding our own payload and estimating a
//! distance allocate nothing once set up.

use std::time::Duration;

use proto::coordinate::{distance_duration, LatencyFilter, VivaldiClient, VivaldiConfig};
use proto::rng::Rng;
use wire::coordinate::{Coordinate, PING_PAYLOAD_LEN};
use wire::msgpack::{Dialect, Writer};

use alloc::thread_allocs as allocations;
use testkit as alloc;

const PEERS: usize = 16;

struct World {
    client: VivaldiClient,
    peers: Vec<Coordinate>,
    filters: Vec<LatencyFilter>,
    rng: Rng,
    wire: [u8; 256],
    ack: [u8; 256],
    checksum: u128,
}

impl World {
    fn new() -> Self {
        let mut rng = Rng::seed_from_u64(2024);
        let peers = (0..PEERS)
            .map(|_| {
                let mut c = VivaldiConfig::default().fresh_coordinate();
                for v in c.vec.iter_mut() {
                    *v = (rng.f64() - 0.5) * 0.05;
                }
                c.error = 0.2 + rng.f64();
                c
            })
            .collect();
        World {
            client: VivaldiClient::new(VivaldiConfig::default()),
            peers,
            filters: vec![LatencyFilter::new(); PEERS + 1],
            rng,
            wire: [0; 256],
            ack: [0; 256],
            checksum: 0,
        }
    }

    /// One completed probe of peer `i % (PEERS + 1)`: the last "peer" is a
    /// node at our own position (the random-direction path), and every 500th
    /// probe reports an overflowing coordinate (the reset path).
    fn probe(&mut self, i: usize) {
        let who = i % (PEERS + 1);
        let mut peer = match self.peers.get(who) {
            Some(p) => *p,
            None => self.client.coordinate(),
        };
        if i % 500 == 499 {
            peer.vec = [1e300; 8];
        }
        // The peer's ack payload, as it would arrive.
        let mut w = Writer::new(&mut self.wire, Dialect::Gossip);
        peer.encode_ping_payload(&mut w).unwrap();
        assert_eq!(w.len(), PING_PAYLOAD_LEN);
        let decoded = Coordinate::decode_ping_payload(&self.wire[..PING_PAYLOAD_LEN]).unwrap();

        let rtt = Duration::from_micros(200 + self.rng.below(20_000));
        let filter = &mut self.filters[who];
        let own = self.client.update(filter, &decoded, rtt, &mut self.rng).unwrap();

        // Our next ack carries the new coordinate.
        let mut w = Writer::new(&mut self.ack, Dialect::Gossip);
        own.encode_ping_payload(&mut w).unwrap();
        self.checksum += u128::from(self.ack[PING_PAYLOAD_LEN - 1]);
        self.checksum += distance_duration(&own, &decoded).as_nanos();
    }
}

#[test]
fn coordinate_path_does_not_allocate() {
    // The counter sees allocations at all.
    let probe = allocations();
    drop(std::hint::black_box(Box::new(7u64)));
    assert!(allocations() > probe);

    let mut world = World::new();
    for i in 0..1000 {
        world.probe(i);
    }

    let before = allocations();
    for i in 0..20_000 {
        world.probe(i);
    }
    let after = allocations();
    assert_eq!(after - before, 0, "{} allocations in 20 000 probes", after - before);

    // The loop really exercised the reset path and produced output.
    assert!(world.client.resets() >= 40, "resets {}", world.client.resets());
    assert!(world.client.coordinate().is_valid());
    assert!(world.checksum > 0);
}
