//! Shared helpers for the benchmarks and the allocation-count tests.
//!
//! [`Fixture`] is one memberlist instance taken out of a warmed, converged
//! 50-node simulated cluster, plus real datagrams its peers would send it
//! (built with the same wire pipeline and the same config): a ping, an ack
//! for its outstanding probe, and gossip compounds of alive messages.

use core::time::Duration;
use std::net::SocketAddr;

use engine::proto::memberlist::{Config, Scratch};
use engine::sim::cluster::{cluster, join_all, node_name, Node};
use engine::sim::{node_addr, NetConfig};
use engine::time::Instant;
use engine::wire::memberlist::{Ack, Alive, Body, Message, Ping};
use engine::wire::packet::{write_compound, PacketCodec, SealOptions, HEADROOM, PACKET_BUF};

/// Nodes in the warmed cluster.
pub const CLUSTER: usize = 50;
/// The instance under test.
pub const SUBJECT: usize = 1;
/// The peer the ping and the ack come from.
pub const PEER: usize = 7;

/// One warmed instance and the datagrams it receives.
pub struct Fixture {
    /// The instance (memberlist + the simulator's recording delegate, which
    /// keeps no log).
    pub node: Node,
    pub scratch: Scratch,
    /// Virtual now (the cluster's clock when it was taken apart).
    pub now: Instant,
    /// `poll_transmit`'s output buffer.
    pub out: Box<[u8]>,
    /// The received datagram, copied here before each handle (the engine
    /// may decrypt in place).
    pub pkt: Vec<u8>,
    /// A ping from [`PEER`] addressed to the instance.
    pub ping: Vec<u8>,
    /// Gossip from [`PEER`]: a compound of 4 alive messages about known
    /// nodes at their current incarnation (the redundant gossip a converged
    /// cluster mostly carries).
    pub gossip4: Vec<u8>,
    /// Gossip from [`PEER`]: as many alive messages as fit a 1400-byte packet.
    pub gossip_full: Vec<u8>,
    /// Number of alives in `gossip_full`.
    pub gossip_full_count: usize,
    /// The ack answering the instance's current probe (see [`Fixture::next_probe`]).
    pub ack: Vec<u8>,
    /// Sender-side pipeline for building datagrams.
    sender: PacketCodec,
    sender_buf: Box<[u8]>,
    compress: bool,
}

impl Fixture {
    /// Builds a 50-node LAN cluster (`compression` as given), joins it,
    /// runs 60 virtual seconds past convergence, and takes node
    /// [`SUBJECT`] out.
    pub fn new(compression: bool) -> Self {
        let config = Config { enable_compression: compression, ..Config::lan() };
        let mut sim = cluster(0xbe7c4, CLUSTER, NetConfig::default(), &config);
        sim.record_events = false;
        for i in 0..CLUSTER {
            sim.with(i, |ep, _| ep.delegate.keep = false);
        }
        join_all(&mut sim, 0);
        let mut converged = false;
        for _ in 0..120 {
            sim.run_for(Duration::from_millis(500));
            if sim.converged() {
                converged = true;
                break;
            }
        }
        assert!(converged, "the bench cluster did not converge");
        sim.run_for(Duration::from_secs(60));
        assert!(sim.converged(), "the bench cluster fell apart");
        let now = sim.now();
        let node = sim.into_endpoints().swap_remove(SUBJECT);
        let mut f = Fixture {
            node,
            scratch: Scratch::new(),
            now,
            out: vec![0; PACKET_BUF].into_boxed_slice(),
            pkt: Vec::with_capacity(PACKET_BUF),
            ping: Vec::new(),
            gossip4: Vec::new(),
            gossip_full: Vec::new(),
            gossip_full_count: 0,
            ack: Vec::new(),
            sender: PacketCodec::new(),
            sender_buf: vec![0; PACKET_BUF].into_boxed_slice(),
            compress: compression,
        };
        // Drain whatever the instance had queued when it was taken out.
        f.drain();
        f.build_ping();
        f.gossip4 = f.build_gossip(4);
        let (g, n) = f.build_gossip_full();
        f.gossip_full = g;
        f.gossip_full_count = n;
        f
    }

    /// The source address of [`PEER`].
    pub fn peer_addr(&self) -> SocketAddr {
        node_addr(PEER)
    }

    /// Seals `payload` as [`PEER`] would send it; `crc` as Go sets it
    /// (gossip to a protocol-5 peer: yes; pings and acks: no).
    fn seal(&mut self, parts: &[&[u8]], crc: bool) -> Vec<u8> {
        let len = if parts.len() == 1 {
            let p = parts[0];
            self.sender_buf[HEADROOM..HEADROOM + p.len()].copy_from_slice(p);
            p.len()
        } else {
            write_compound(&mut self.sender_buf[HEADROOM..], parts).expect("compound fits")
        };
        let opts = SealOptions { compress: self.compress, crc };
        let r = self.sender.seal(&mut self.sender_buf, len, opts, None, [0; 12]).expect("seal");
        self.sender_buf[r].to_vec()
    }

    fn build_ping(&mut self) {
        let ip = match node_addr(PEER).ip() {
            std::net::IpAddr::V4(v4) => v4.octets(),
            std::net::IpAddr::V6(_) => unreachable!("simulated nodes are IPv4"),
        };
        let subject = node_name(SUBJECT);
        let peer = node_name(PEER);
        let ping = Ping {
            seq_no: 0x1234_5678,
            node: &subject,
            source_addr: &ip,
            source_port: node_addr(PEER).port(),
            source_node: &peer,
        };
        let mut m = [0u8; 256];
        let n = ping.encode_to(&mut m).expect("ping fits");
        self.ping = self.seal(&[&m[..n]], false);
    }

    /// Encoded alive messages about the first `k` known nodes other than
    /// the subject, as their owners last announced them.
    fn alives(&self, k: usize) -> Vec<Vec<u8>> {
        let subject = node_name(SUBJECT);
        self.node
            .ml
            .nodes()
            .iter()
            .filter(|n| *n.name != *subject)
            .take(k)
            .map(|n| {
                let ip = match n.addr {
                    std::net::IpAddr::V4(v4) => v4.octets(),
                    std::net::IpAddr::V6(_) => unreachable!("simulated nodes are IPv4"),
                };
                let a = Alive {
                    incarnation: n.incarnation,
                    node: &n.name,
                    addr: Some(&ip),
                    port: n.port,
                    meta: Some(&n.meta),
                    vsn: Some(&n.vsn),
                };
                let mut m = vec![0u8; 1024];
                let len = a.encode_to(&mut m).expect("alive fits");
                m.truncate(len);
                m
            })
            .collect()
    }

    fn build_gossip(&mut self, k: usize) -> Vec<u8> {
        let alives = self.alives(k);
        let parts: Vec<&[u8]> = alives.iter().map(Vec::as_slice).collect();
        self.seal(&parts, true)
    }

    /// As many alives as a gossip packet holds (`UDPBufferSize − 2`, each
    /// part costing its length + 2).
    fn build_gossip_full(&mut self) -> (Vec<u8>, usize) {
        let budget = self.node.ml.config().udp_buffer_size - 2;
        let alives = self.alives(CLUSTER);
        let mut used = 0;
        let mut parts: Vec<&[u8]> = Vec::new();
        for a in &alives {
            if used + a.len() + 2 > budget {
                break;
            }
            used += a.len() + 2;
            parts.push(a);
        }
        let n = parts.len();
        (self.seal(&parts, true), n)
    }

    /// Receives `datagram` from `from` and drains the replies; returns how
    /// many datagrams were sent back. This is the measured operation.
    #[inline]
    pub fn handle(&mut self, datagram: &[u8], from: SocketAddr) -> usize {
        self.pkt.clear();
        self.pkt.extend_from_slice(datagram);
        let Fixture { node, scratch, out, pkt, now, .. } = self;
        node.ml.handle_datagram(*now, from, pkt, scratch, &mut node.delegate);
        let mut sent = 0;
        while let Some(t) = node.ml.poll_transmit(out, scratch, &mut node.delegate) {
            core::hint::black_box(&t);
            sent += 1;
        }
        sent
    }

    /// Drains datagrams, streams (failed at once: there is no network) and
    /// events. Not measured.
    fn drain(&mut self) -> Option<u32> {
        let Fixture { node, scratch, out, now, .. } = self;
        let mut probe_seq = None;
        while let Some(t) = node.ml.poll_transmit(out, scratch, &mut node.delegate) {
            let mut pkt = out[t.range].to_vec();
            let Ok(r) = PacketCodec::open(&mut pkt, None) else { continue };
            scratch.codec.walk(&pkt[r], &mut |m| {
                if let Ok(Message::Ping(p)) = m {
                    probe_seq = Some(p.seq_no);
                }
            });
        }
        let mut stream = Vec::new();
        let mut ids = Vec::new();
        while let Some(req) = node.ml.poll_stream(&mut stream, scratch, &mut node.delegate) {
            ids.push(req.id);
        }
        for id in ids {
            node.ml.handle_stream_error(
                *now,
                id,
                "connect: connection refused",
                &mut node.delegate,
            );
        }
        while node.ml.poll_event().is_some() {}
        probe_seq
    }

    /// Advances virtual time through the instance's timers until it sends
    /// its next probe ping, and builds the ack answering it into
    /// [`Fixture::ack`]. Not measured.
    pub fn next_probe(&mut self) {
        for _ in 0..1000 {
            let Some(t) = self.node.ml.poll_timeout() else { break };
            self.now = self.now.max(t);
            let Fixture { node, scratch, now, .. } = self;
            node.ml.handle_timeout(*now, scratch, &mut node.delegate);
            if let Some(seq) = self.drain() {
                self.ack = self.ack_datagram(seq);
                return;
            }
        }
        panic!("the instance sent no probe");
    }

    /// The datagram [`PEER`] sends to answer probe `seq` (an ack with no
    /// payload, sealed as the peer's pipeline would). Not measured.
    pub fn ack_datagram(&mut self, seq: u32) -> Vec<u8> {
        let mut m = [0u8; 64];
        let n = Ack { seq_no: seq, payload: None }.encode_to(&mut m).expect("ack fits");
        self.seal(&[&m[..n]], false)
    }
}
