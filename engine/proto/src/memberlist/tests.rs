//! Unit tests, one protocol rule each (`protocol/memberlist.md` §4, §5,
//! §9–§11): a single instance is fed hand-built datagrams and what it
//! sends is decoded back.

use core::time::Duration;
use std::net::SocketAddr;
use std::sync::Arc;

use super::*;
use wire::memberlist::{
    Ack, Alive, Body, Dead, IndirectPing, Message, MessageType, Nack, Ping, PushNodeState,
    PushPull, Suspect,
};
use wire::msgpack::{Dialect, Writer};
use wire::packet::{PacketCodec, PACKET_BUF};

const A: &str = "127.0.0.1:7946";
const B: &str = "127.0.0.2:7946";
const C: &str = "127.0.0.3:7946";
const D: &str = "127.0.0.4:7946";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn ip4(s: &str) -> [u8; 4] {
    match addr(s).ip() {
        IpAddr::V4(v) => v.octets(),
        IpAddr::V6(_) => unreachable!(),
    }
}

/// What a test delegate saw.
#[derive(Default, Debug)]
struct Seen {
    joins: Vec<String>,
    leaves: Vec<(String, NodeState)>,
    updates: Vec<String>,
    conflicts: Vec<String>,
    pings: Vec<(String, Duration, Vec<u8>)>,
    msgs: Vec<Vec<u8>>,
    remote_states: Vec<(Vec<u8>, bool)>,
}

impl Delegate for Seen {
    fn notify_msg(&mut self, _: Instant, body: &[u8]) {
        self.msgs.push(body.to_vec());
    }
    fn ack_payload(&mut self, out: &mut [u8]) -> usize {
        out[..3].copy_from_slice(b"pay");
        3
    }
    fn notify_ping_complete(&mut self, _: Instant, n: &NodeInfo<'_>, rtt: Duration, p: &[u8]) {
        self.pings.push((n.name.to_string(), rtt, p.to_vec()));
    }
    fn notify_join(&mut self, _: Instant, n: &NodeInfo<'_>) {
        self.joins.push(n.name.to_string());
    }
    fn notify_leave(&mut self, _: Instant, n: &NodeInfo<'_>) {
        self.leaves.push((n.name.to_string(), n.state));
    }
    fn notify_update(&mut self, _: Instant, n: &NodeInfo<'_>) {
        self.updates.push(n.name.to_string());
    }
    fn notify_conflict(&mut self, _: Instant, e: &NodeInfo<'_>, _: &NodeInfo<'_>) {
        self.conflicts.push(e.name.to_string());
    }
    fn local_state(&mut self, _join: bool, out: &mut Vec<u8>) {
        out.extend_from_slice(b"state");
    }
    fn merge_remote_state(&mut self, _: Instant, s: &[u8], join: bool) {
        self.remote_states.push((s.to_vec(), join));
    }
}

/// A decoded outgoing message.
#[derive(Debug, Clone, PartialEq)]
enum Out {
    Ping { seq: u32, node: String },
    IndirectPing { seq: u32, node: String, nack: bool },
    Ack { seq: u32, payload: Option<Vec<u8>> },
    Nack { seq: u32 },
    Suspect { node: String, inc: u32, from: String },
    Alive { node: String, inc: u32, meta: Vec<u8> },
    Dead { node: String, inc: u32, from: String },
    User(Vec<u8>),
}

struct Harness {
    ml: Memberlist,
    seen: Seen,
    scratch: Scratch,
    now: Instant,
}

fn config(name: &str, a: &str) -> Config {
    let mut c = Config::lan();
    c.name = name.into();
    c.advertise_addr = addr(a).ip();
    c.advertise_port = addr(a).port();
    c.enable_compression = false;
    c
}

impl Harness {
    fn new() -> Self {
        Self::with(config("a", A), None)
    }

    fn with(c: Config, keyring: Option<Keyring>) -> Self {
        let now = Instant::from_millis(1_000);
        let ml = Memberlist::new(c, now, Rng::seed_from_u64(1), keyring, &[0xff, 0x80]);
        Harness { ml, seen: Seen::default(), scratch: Scratch::new(), now }
    }

    fn feed_from(&mut self, from: &str, msgs: &[&dyn Fn(&mut Writer<'_>)]) {
        let mut buf = vec![0u8; 4096];
        let mut parts: Vec<Vec<u8>> = Vec::new();
        for m in msgs {
            let mut w = Writer::new(&mut buf, Dialect::Gossip);
            m(&mut w);
            parts.push(w.written().to_vec());
        }
        let mut dgram = if parts.len() == 1 {
            parts.pop().unwrap()
        } else {
            let refs: Vec<&[u8]> = parts.iter().map(|p| &p[..]).collect();
            let n = wire::packet::write_compound(&mut buf, &refs).unwrap();
            buf[..n].to_vec()
        };
        self.ml.handle_datagram(
            self.now,
            addr(from),
            &mut dgram,
            &mut self.scratch,
            &mut self.seen,
        );
    }

    fn feed(&mut self, m: &dyn Fn(&mut Writer<'_>)) {
        self.feed_from(B, &[m]);
    }

    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        while let Some(t) = self.ml.poll_timeout() {
            if t > end {
                break;
            }
            self.now = self.now.max(t);
            self.ml.handle_timeout(self.now, &mut self.scratch, &mut self.seen);
        }
        self.now = end;
    }

    /// Runs exactly the next timer, at its own time.
    fn step(&mut self) {
        if let Some(t) = self.ml.poll_timeout() {
            self.now = self.now.max(t);
            self.ml.handle_timeout(self.now, &mut self.scratch, &mut self.seen);
        }
    }

    /// Steps timers until a probe ping goes out; returns (target, seq, name).
    fn next_probe(&mut self) -> (SocketAddr, u32, String) {
        for _ in 0..200 {
            self.step();
            if let Some((dst, _, m)) =
                self.sent().into_iter().find(|(_, _, m)| matches!(m[0], Out::Ping { .. }))
            {
                let Out::Ping { seq, node } = m[0].clone() else { unreachable!() };
                return (dst, seq, node);
            }
        }
        panic!("no probe went out")
    }

    /// Everything sent, decoded: (destination, had CRC, messages).
    fn sent(&mut self) -> Vec<(SocketAddr, bool, Vec<Out>)> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; PACKET_BUF];
        let mut codec = PacketCodec::new();
        while let Some(t) = self.ml.poll_transmit(&mut buf, &mut self.scratch, &mut self.seen) {
            let mut dgram = buf[t.range].to_vec();
            let crc = dgram[0] == MessageType::HasCrc as u8;
            let range = PacketCodec::open(&mut dgram, self.ml.keyring()).unwrap();
            let mut msgs = Vec::new();
            codec.walk(&dgram[range], &mut |m| msgs.push(out_of(m.unwrap())));
            out.push((t.dst, crc, msgs));
        }
        out
    }

    fn sent_msgs(&mut self) -> Vec<Out> {
        self.sent().into_iter().flat_map(|(_, _, m)| m).collect()
    }

    fn gossiped(&mut self) -> Vec<Out> {
        // Make sure there is somebody to gossip to, then run one gossip round.
        self.advance(Duration::from_millis(250));
        self.sent_msgs()
    }

    fn state(&self, name: &str) -> Option<(NodeState, u32)> {
        self.ml.node(name).map(|n| (n.state, n.incarnation))
    }
}

fn out_of(m: Message<'_>) -> Out {
    match m {
        Message::Ping(p) => Out::Ping { seq: p.seq_no, node: p.node.into() },
        Message::IndirectPing(p) => {
            Out::IndirectPing { seq: p.seq_no, node: p.node.into(), nack: p.nack }
        }
        Message::Ack(a) => Out::Ack { seq: a.seq_no, payload: a.payload.map(<[u8]>::to_vec) },
        Message::Nack(n) => Out::Nack { seq: n.seq_no },
        Message::Suspect(s) => {
            Out::Suspect { node: s.node.into(), inc: s.incarnation, from: s.from.into() }
        }
        Message::Alive(a) => Out::Alive {
            node: a.node.into(),
            inc: a.incarnation,
            meta: a.meta.unwrap_or(&[]).to_vec(),
        },
        Message::Dead(d) => {
            Out::Dead { node: d.node.into(), inc: d.incarnation, from: d.from.into() }
        }
        Message::User(b) => Out::User(b.to_vec()),
    }
}

fn alive<'a>(node: &'a str, a: &'a [u8; 4], inc: u32, meta: &'a [u8]) -> Alive<'a> {
    Alive {
        incarnation: inc,
        node,
        addr: Some(a),
        port: 7946,
        meta: Some(meta),
        vsn: Some(&DEFAULT_VSN),
    }
}

/// A plain push-pull (type byte and body) in which `c` says it is alive at
/// incarnation 1, with `user_state`.
fn push_pull_from_c(join: bool, user_state: &[u8]) -> Vec<u8> {
    let ipc = ip4(C);
    let states = [PushNodeState {
        name: "c",
        addr: Some(&ipc),
        port: 7946,
        meta: Some(b""),
        incarnation: 1,
        state: NodeState::Alive,
        vsn: Some(&DEFAULT_VSN),
    }];
    let mut body = vec![0u8; 1024];
    let mut w = Writer::new(&mut body, Dialect::Gossip);
    PushPull::encode_with(&mut w, join, states.iter().copied(), user_state).unwrap();
    let n = w.len();
    body.truncate(n);
    body
}

/// `a` knowing `b` (and `c`, `d`) alive at incarnation 1.
fn with_peers(names: &[(&str, &str)]) -> Harness {
    let mut h = Harness::new();
    for (n, a) in names {
        let ip = ip4(a);
        let n = *n;
        h.feed(&|w| alive(n, &ip, 1, &[0xff, 0x80]).encode(w).unwrap());
    }
    h.sent();
    h
}

#[test]
fn ping_for_another_name_is_dropped() {
    let mut h = Harness::new();
    h.feed(&|w| Ping { seq_no: 9, node: "zz", ..Default::default() }.encode(w).unwrap());
    assert!(h.sent().is_empty());
    assert_eq!(h.ml.stats().ping_wrong_node, 1);
}

#[test]
fn ping_is_acked_to_its_source_with_the_delegate_payload() {
    let mut h = Harness::new();
    let src = ip4(C);
    h.feed(&|w| {
        Ping { seq_no: 7, node: "a", source_addr: &src, source_port: 7946, source_node: "c" }
            .encode(w)
            .unwrap()
    });
    let sent = h.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, addr(C), "ack goes to SourceAddr:SourcePort, not the UDP source");
    assert!(!sent[0].1, "acks carry no CRC");
    assert_eq!(sent[0].2[0], Out::Ack { seq: 7, payload: Some(b"pay".to_vec()) });
    // Without a source the ack goes to the datagram's sender; empty node name accepted.
    h.feed(&|w| Ping { seq_no: 8, node: "", ..Default::default() }.encode(w).unwrap());
    let sent = h.sent();
    assert_eq!(sent[0].0, addr(B));
}

#[test]
fn alive_for_an_unknown_node_joins_and_is_rebroadcast() {
    let mut h = Harness::new();
    let ip = ip4(B);
    h.feed(&|w| alive("b", &ip, 1, b"\xff\x80").encode(w).unwrap());
    assert_eq!(h.seen.joins, ["b"]);
    assert_eq!(h.state("b"), Some((NodeState::Alive, 1)));
    assert!(h.gossiped().contains(&Out::Alive {
        node: "b".into(),
        inc: 1,
        meta: b"\xff\x80".to_vec()
    }));
    // The same or an older incarnation changes nothing.
    h.feed(&|w| alive("b", &ip, 1, b"\xff\x81").encode(w).unwrap());
    assert!(h.seen.updates.is_empty());
    // A newer one with new meta is an update.
    h.feed(&|w| alive("b", &ip, 2, b"\xff\x81").encode(w).unwrap());
    assert_eq!(h.seen.updates, ["b"]);
}

#[test]
fn alive_with_bad_versions_is_ignored() {
    let mut h = Harness::new();
    let ip = ip4(B);
    h.feed(&|w| {
        Alive { vsn: Some(&[0, 5, 2, 2, 5, 5]), ..alive("b", &ip, 1, b"") }.encode(w).unwrap()
    });
    h.feed(&|w| {
        Alive { vsn: Some(&[3, 2, 2, 2, 5, 5]), ..alive("b", &ip, 1, b"") }.encode(w).unwrap()
    });
    assert!(h.ml.node("b").is_none());
    // A 3-byte Vsn would crash Go; we count it as malformed.
    h.feed(&|w| Alive { vsn: Some(&[1, 5, 2]), ..alive("b", &ip, 1, b"") }.encode(w).unwrap());
    assert!(h.ml.node("b").is_none());
    assert_eq!(h.ml.stats().malformed, 1);
}

#[test]
fn claims_about_us_are_refuted() {
    let mut h = with_peers(&[("b", B)]);
    let ip = ip4(A);
    // Suspect at our incarnation → refute with +1.
    h.feed(&|w| Suspect { incarnation: 1, node: "a", from: "b" }.encode(w).unwrap());
    assert_eq!(h.ml.local_node().incarnation, 2);
    assert_eq!(h.ml.health_score(), 1);
    // Suspect at an older incarnation → ignored.
    h.feed(&|w| Suspect { incarnation: 1, node: "a", from: "b" }.encode(w).unwrap());
    assert_eq!(h.ml.local_node().incarnation, 2);
    // Dead far ahead → refute above the accused incarnation.
    h.feed(&|w| Dead { incarnation: 9, node: "a", from: "b" }.encode(w).unwrap());
    assert_eq!(h.ml.local_node().incarnation, 10);
    assert_eq!(h.ml.local_node().state, NodeState::Alive);
    // An alive about us at our incarnation with our meta is fine...
    h.feed(&|w| alive("a", &ip, 10, b"\xff\x80").encode(w).unwrap());
    assert_eq!(h.ml.local_node().incarnation, 10);
    // ...with other meta it is refuted.
    h.feed(&|w| alive("a", &ip, 10, b"\xff\x81").encode(w).unwrap());
    assert_eq!(h.ml.local_node().incarnation, 11);
    assert_eq!(h.ml.local_node().meta, b"\xff\x80");
    assert!(h.gossiped().contains(&Out::Alive {
        node: "a".into(),
        inc: 11,
        meta: b"\xff\x80".to_vec()
    }));
    assert_eq!(h.ml.stats().refutations, 3);
}

#[test]
fn voluntary_dead_is_left_and_a_conflicting_address_is_refused() {
    let mut h = with_peers(&[("b", B), ("c", C)]);
    h.feed(&|w| Dead { incarnation: 1, node: "b", from: "b" }.encode(w).unwrap());
    assert_eq!(h.state("b"), Some((NodeState::Left, 1)));
    assert_eq!(h.seen.leaves, [("b".to_string(), NodeState::Left)]);
    // Someone else claiming c's name from another address is refused.
    let other = ip4(D);
    h.feed(&|w| alive("c", &other, 5, b"").encode(w).unwrap());
    assert_eq!(h.seen.conflicts, ["c"]);
    assert_eq!(h.ml.node("c").unwrap().socket_addr(), addr(C));
    // A left node may come back from a new address.
    h.feed(&|w| alive("b", &other, 2, b"").encode(w).unwrap());
    assert_eq!(h.ml.node("b").unwrap().socket_addr(), addr(D));
    assert_eq!(h.state("b"), Some((NodeState::Alive, 2)));
}

#[test]
fn suspicion_times_out_into_dead_unless_refuted() {
    let mut h = with_peers(&[("b", B), ("c", C)]);
    h.feed(&|w| Suspect { incarnation: 1, node: "b", from: "c" }.encode(w).unwrap());
    assert_eq!(h.state("b"), Some((NodeState::Suspect, 1)));
    assert!(h.gossiped().contains(&Out::Suspect { node: "b".into(), inc: 1, from: "c".into() }));
    // 3 nodes: k = 0, timeout = 4 s (250 ms already passed while gossiping).
    h.advance(Duration::from_millis(3_650));
    assert_eq!(h.state("b").unwrap().0, NodeState::Suspect);
    h.advance(Duration::from_millis(200));
    assert_eq!(h.state("b"), Some((NodeState::Dead, 1)));
    assert!(h.sent_msgs().contains(&Out::Dead { node: "b".into(), inc: 1, from: "a".into() }));
    // Refutation: c suspected, then c's alive at a higher incarnation cancels it.
    let ip = ip4(C);
    h.feed(&|w| Suspect { incarnation: 1, node: "c", from: "b" }.encode(w).unwrap());
    assert_eq!(h.ml.suspicions.len(), 1);
    h.feed(&|w| alive("c", &ip, 2, b"\xff\x80").encode(w).unwrap());
    assert_eq!(h.state("c"), Some((NodeState::Alive, 2)));
    assert!(h.ml.suspicions.is_empty(), "the refutation cancels the suspicion timer");
}

#[test]
fn confirmations_shorten_the_suspicion() {
    let peers: Vec<(String, String)> =
        (0..9).map(|i| (format!("p{i}"), format!("127.0.1.{}:7946", i + 1))).collect();
    let refs: Vec<(&str, &str)> = peers.iter().map(|(n, a)| (n.as_str(), a.as_str())).collect();
    let mut h = with_peers(&refs);
    // 10 nodes: k = 2, min 4 s, max 24 s.
    h.feed(&|w| Suspect { incarnation: 1, node: "p0", from: "p1" }.encode(w).unwrap());
    h.feed(&|w| Suspect { incarnation: 1, node: "p0", from: "p2" }.encode(w).unwrap());
    h.feed(&|w| Suspect { incarnation: 1, node: "p0", from: "p2" }.encode(w).unwrap());
    h.feed(&|w| Suspect { incarnation: 1, node: "p0", from: "p3" }.encode(w).unwrap());
    h.advance(Duration::from_millis(3_900));
    assert_eq!(h.state("p0").unwrap().0, NodeState::Suspect);
    h.advance(Duration::from_millis(200));
    assert_eq!(
        h.state("p0").unwrap().0,
        NodeState::Dead,
        "two confirmations bring it to the 4 s minimum"
    );
}

#[test]
fn indirect_ping_is_forwarded_and_the_ack_relayed() {
    let mut h = with_peers(&[("b", B), ("c", C)]);
    let (target, src) = (ip4(C), ip4(B));
    let req = |nack| {
        move |w: &mut Writer<'_>| {
            IndirectPing {
                seq_no: 77,
                target: Some(&target),
                port: 7946,
                node: "c",
                nack,
                source_addr: &src,
                source_port: 7946,
                source_node: "b",
            }
            .encode(w)
            .unwrap()
        }
    };
    h.feed(&req(true));
    let sent = h.sent();
    let Out::Ping { seq, node } = sent[0].2[0].clone() else { panic!("{sent:?}") };
    assert_eq!((sent[0].0, node.as_str()), (addr(C), "c"));
    // The target answers our ping; we relay an ack with the requester's seq.
    h.feed_from(C, &[&|w| Ack { seq_no: seq, payload: Some(b"x") }.encode(w).unwrap()]);
    let sent = h.sent();
    assert_eq!((sent[0].0, &sent[0].2[0]), (addr(B), &Out::Ack { seq: 77, payload: None }));
    // No answer this time: a nack after the probe timeout, because it was asked for.
    h.feed(&req(true));
    h.sent();
    h.advance(Duration::from_millis(600));
    assert!(h.sent_msgs().contains(&Out::Nack { seq: 77 }));
    // Without Nack requested: silence.
    h.feed(&req(false));
    h.sent();
    h.advance(Duration::from_millis(600));
    assert!(!h.sent_msgs().iter().any(|m| matches!(m, Out::Nack { .. })));
}

#[test]
fn a_failed_probe_asks_helpers_tries_tcp_then_suspects() {
    let mut h = with_peers(&[("b", B), ("c", C), ("d", D)]);
    let (target, seq, node) = h.next_probe();
    // No ack: after the probe timeout, indirect pings with Nack (peers speak 5) and a TCP ping.
    h.advance(Duration::from_millis(510));
    let sent = h.sent();
    let indirect: Vec<_> =
        sent.iter().filter(|(_, _, m)| matches!(m[0], Out::IndirectPing { .. })).collect();
    // Go's kRandomNodes makes 3n random picks, so with two candidates it
    // usually, not always, finds both.
    assert!((1..=2).contains(&indirect.len()), "the other peers are asked: {sent:?}");
    assert!(indirect.iter().all(|(d, _, m)| *d != target
        && m[0] == Out::IndirectPing { seq, node: node.clone(), nack: true }));
    let mut req = Vec::new();
    let sr = h.ml.poll_stream(&mut req, &mut h.scratch, &mut h.seen).expect("a TCP fallback ping");
    assert_eq!(sr.addr, target);
    // One nack arrives; the TCP ping fails; at the deadline the node is suspect.
    h.feed(&|w| Nack { seq_no: seq }.encode(w).unwrap());
    h.ml.handle_stream_error(h.now, sr.id, "connect: connection refused", &mut h.seen);
    h.advance(Duration::from_millis(600));
    assert_eq!(h.state(&node).unwrap().0, NodeState::Suspect);
    // Awareness: one missing nack per helper that did not answer.
    assert_eq!(h.ml.health_score(), indirect.len() as u32 - 1);
}

#[test]
fn a_fallback_ping_reported_late_suspects_at_the_time_of_the_report() {
    let mut h = with_peers(&[("b", B)]);
    let (_, _, node) = h.next_probe();
    h.advance(Duration::from_millis(510));
    h.sent();
    let mut req = Vec::new();
    let sr = h.ml.poll_stream(&mut req, &mut h.scratch, &mut h.seen).expect("a TCP fallback ping");
    // The probe window ends with the TCP ping still out; the caller reports
    // its timeout 100 ms after the shared deadline (within the grace).
    h.advance(sr.deadline.saturating_since(h.now));
    assert_eq!(h.state(&node).unwrap().0, NodeState::Alive, "waiting for the TCP result");
    h.now = sr.deadline + Duration::from_millis(100);
    h.ml.handle_stream_error(h.now, sr.id, "i/o timeout", &mut h.seen);
    let b = h.ml.node(&node).unwrap();
    assert_eq!(b.state, NodeState::Suspect);
    assert_eq!(b.state_change, h.now, "the suspicion starts when the failure was reported");
}

#[test]
fn a_direct_ack_completes_the_probe_and_reports_rtt() {
    let mut h = with_peers(&[("b", B)]);
    let (_, seq, _) = h.next_probe();
    h.now += Duration::from_millis(3);
    h.feed(&|w| Ack { seq_no: seq, payload: Some(b"coord") }.encode(w).unwrap());
    assert_eq!(h.seen.pings, [("b".to_string(), Duration::from_millis(3), b"coord".to_vec())]);
    h.advance(Duration::from_secs(2));
    assert_eq!(h.state("b").unwrap().0, NodeState::Alive);
}

#[test]
fn ping_to_a_suspect_carries_the_suspicion_with_crc() {
    let mut h = with_peers(&[("b", B)]);
    h.feed(&|w| Suspect { incarnation: 1, node: "b", from: "x" }.encode(w).unwrap());
    h.sent();
    let mut found = false;
    for _ in 0..30 {
        h.advance(Duration::from_millis(100));
        for (dst, crc, m) in h.sent() {
            if matches!(m.first(), Some(Out::Ping { .. })) {
                assert_eq!(dst, addr(B));
                assert!(crc, "the suspect probe goes through the CRC path");
                assert_eq!(m[1], Out::Suspect { node: "b".into(), inc: 1, from: "a".into() });
                found = true;
            }
        }
        if found {
            break;
        }
    }
    assert!(found);
}

#[test]
fn gossip_has_crc_and_respects_the_budget() {
    let mut h = with_peers(&[("b", B)]);
    // Queue far more than one packet's worth of broadcasts.
    for i in 0..100 {
        let name = format!("node-with-a-long-name-{i:03}");
        let ip = [127, 0, 2, i as u8];
        h.feed(&|w| alive(&name, &ip, 1, &[0xff, 0x80]).encode(w).unwrap());
    }
    h.sent();
    h.advance(Duration::from_millis(250));
    let mut buf = vec![0u8; PACKET_BUF];
    let mut gossip = 0;
    while let Some(t) = h.ml.poll_transmit(&mut buf, &mut h.scratch, &mut h.seen) {
        if buf[t.range.start] == MessageType::HasCrc as u8 {
            gossip += 1;
            // UDPBufferSize + the unbudgeted 5-byte CRC header.
            assert!(t.range.len() <= 1400 + 5, "{}", t.range.len());
        }
    }
    assert!(gossip >= 1);
}

#[test]
fn push_pull_merge_rules() {
    let mut h = with_peers(&[("b", B)]);
    let (ipb, ipc, ipd) = (ip4(B), ip4(C), ip4(D));
    let states = [
        PushNodeState {
            name: "b",
            addr: Some(&ipb),
            port: 7946,
            meta: Some(b""),
            incarnation: 1,
            state: NodeState::Dead,
            vsn: Some(&DEFAULT_VSN),
        },
        PushNodeState {
            name: "c",
            addr: Some(&ipc),
            port: 0,
            meta: Some(b""),
            incarnation: 3,
            state: NodeState::Alive,
            vsn: Some(&DEFAULT_VSN),
        },
        PushNodeState {
            name: "d",
            addr: Some(&ipd),
            port: 7946,
            meta: Some(b""),
            incarnation: 2,
            state: NodeState::Left,
            vsn: Some(&DEFAULT_VSN),
        },
    ];
    let mut body = vec![0u8; 4096];
    let mut w = Writer::new(&mut body, Dialect::Gossip);
    PushPull::encode_with(&mut w, true, states.iter().copied(), b"remote").unwrap();
    let n = w.len();
    let mut frame = body[..n].to_vec();
    let mut reply = Vec::new();
    let r = h.ml.handle_stream_request(h.now, &mut frame, &mut reply, &mut h.scratch, &mut h.seen);
    assert_eq!(r, StreamReply::Reply);
    // A remote "dead" is only a suspicion; alive is applied with our port for 0; d is unknown
    // so its left state is ignored.
    assert_eq!(h.state("b"), Some((NodeState::Suspect, 1)));
    assert_eq!(h.state("c"), Some((NodeState::Alive, 3)));
    assert_eq!(h.ml.node("c").unwrap().port, 7946);
    assert!(h.ml.node("d").is_none());
    assert_eq!(h.seen.remote_states, [(b"remote".to_vec(), true)]);
    // Our reply is our own push-pull with the join flag echoed and our user state.
    let mut inflate = Vec::new();
    let msg = h.scratch.streams.open(&mut reply, None, &mut inflate).unwrap();
    let wire::stream::StreamMessage::PushPull(pp) = msg else { panic!("{msg:?}") };
    assert!(pp.join);
    assert_eq!(pp.user_state, b"state");
    // Built before the merge (Go answers first): only a and b.
    assert_eq!(pp.states.len(), 2);
}

#[test]
fn incompatible_protocol_versions_abort_the_merge() {
    let mut h = Harness::new();
    let ipb = ip4(B);
    let bad = [1u8, 5, 2, 2, 5, 1]; // delegate version 1 < our min 2
    let states = [PushNodeState {
        name: "b",
        addr: Some(&ipb),
        port: 7946,
        meta: None,
        incarnation: 1,
        state: NodeState::Alive,
        vsn: Some(&bad),
    }];
    let mut body = vec![0u8; 1024];
    let mut w = Writer::new(&mut body, Dialect::Gossip);
    PushPull::encode_with(&mut w, false, states.iter().copied(), b"").unwrap();
    let n = w.len();
    let mut frame = body[..n].to_vec();
    let mut reply = Vec::new();
    h.ml.handle_stream_request(h.now, &mut frame, &mut reply, &mut h.scratch, &mut h.seen);
    assert!(h.ml.node("b").is_none());
    let logged = std::iter::from_fn(|| h.ml.poll_event()).any(|e| {
        matches!(e, Event::Log(LogEvent::IncompatibleProtocol { ref error })
            if error == "Node 'b' delegate protocol version (1) is incompatible: [2, 5]")
    });
    assert!(logged);
}

#[test]
fn rejected_streams_are_logged_at_most_once_per_period() {
    let mut h = Harness::new();
    let mut reply = Vec::new();
    let mut reject = |h: &mut Harness| {
        // Type 0xee is no stream message: the stream is answered with an
        // error and counted.
        let mut frame = vec![0xee, 0x80];
        h.ml.handle_stream_request(h.now, &mut frame, &mut reply, &mut h.scratch, &mut h.seen);
    };
    let rejections = |h: &mut Harness| -> Vec<u64> {
        std::iter::from_fn(|| h.ml.poll_event())
            .filter_map(|e| match e {
                Event::Log(LogEvent::StreamRejected { suppressed, .. }) => Some(suppressed),
                _ => None,
            })
            .collect()
    };
    for _ in 0..5 {
        reject(&mut h);
    }
    assert_eq!(rejections(&mut h), [0], "the first rejection is logged, the next four are not");
    h.advance(STREAM_ERROR_LOG_EVERY);
    reject(&mut h);
    assert_eq!(rejections(&mut h), [4], "the next line says how many went unlogged");
    assert_eq!(h.ml.stats().stream_errors, 6);
}

#[test]
fn join_reports_per_address_errors() {
    let mut h = Harness::new();
    let id = h.ml.join(h.now, &[addr(B), addr(C)]);
    let mut out = Vec::new();
    let s1 = h.ml.poll_stream(&mut out, &mut h.scratch, &mut h.seen).unwrap();
    let s2 = h.ml.poll_stream(&mut out, &mut h.scratch, &mut h.seen).unwrap();
    assert!(h.ml.poll_stream(&mut out, &mut h.scratch, &mut h.seen).is_none());
    h.ml.handle_stream_error(
        h.now,
        s1.id,
        "dial tcp 127.0.0.2:7946: connect: connection refused",
        &mut h.seen,
    );
    // The second answers with its state.
    let mut frame = push_pull_from_c(true, b"");
    h.ml.handle_stream_reply(h.now, s2.id, &mut frame, &mut h.scratch, &mut h.seen);
    let done =
        std::iter::from_fn(|| h.ml.poll_event()).find(|e| matches!(e, Event::JoinCompleted { .. }));
    assert_eq!(
        done,
        Some(Event::JoinCompleted {
            id,
            succeeded: 1,
            errors: vec![
                "Failed to join 127.0.0.2: dial tcp 127.0.0.2:7946: connect: connection refused"
                    .into()
            ]
        })
    );
    assert_eq!(h.state("c"), Some((NodeState::Alive, 1)));
}

#[test]
fn leave_broadcasts_our_death_and_ignores_later_alives_about_us() {
    let mut h = with_peers(&[("b", B)]);
    let notify = h.ml.leave(h.now, &mut h.seen).expect("another node is alive");
    assert!(h.ml.is_leaving());
    assert_eq!(h.ml.local_node().state, NodeState::Left);
    let ip = ip4(A);
    h.feed(&|w| alive("a", &ip, 5, b"").encode(w).unwrap());
    assert_eq!(h.ml.local_node().state, NodeState::Left);
    // Retransmitted until done (limit 4 for 2 nodes), then reported finished.
    let mut deads = 0;
    for _ in 0..20 {
        deads += h
            .gossiped()
            .iter()
            .filter(|m| **m == Out::Dead { node: "a".into(), inc: 1, from: "a".into() })
            .count();
    }
    assert_eq!(deads, 4);
    let finished = std::iter::from_fn(|| h.ml.poll_event())
        .any(|e| e == Event::BroadcastFinished { id: notify, how: Finished::Transmitted });
    assert!(finished);
}

#[test]
fn update_meta_raises_the_incarnation() {
    let mut h = with_peers(&[("b", B)]);
    assert!(h.ml.update_meta(h.now, b"\xff\x81\xa1k\xa1v", &mut h.seen).is_some());
    assert_eq!(h.ml.local_node().incarnation, 2);
    assert_eq!(h.seen.updates, ["a"]);
    assert!(h.gossiped().contains(&Out::Alive {
        node: "a".into(),
        inc: 2,
        meta: b"\xff\x81\xa1k\xa1v".to_vec()
    }));
}

#[test]
fn dead_nodes_are_reaped_after_gossip_to_the_dead_time_left_nodes_are_not() {
    let mut h = with_peers(&[("b", B), ("c", C)]);
    h.feed(&|w| Dead { incarnation: 1, node: "b", from: "c" }.encode(w).unwrap());
    h.feed(&|w| Dead { incarnation: 1, node: "c", from: "c" }.encode(w).unwrap());
    h.advance(Duration::from_secs(29));
    assert!(h.ml.node("b").is_some());
    // Reaping happens when the probe order wraps after 30 s (nothing alive to probe: every tick wraps).
    h.advance(Duration::from_secs(3));
    assert!(h.ml.node("b").is_none(), "dead nodes are reaped");
    assert!(h.ml.node("c").is_some(), "left nodes are kept");
    assert_eq!(h.ml.num_nodes(), 2);
    // The name index was rebuilt: every remaining node is found at its own
    // position, and a new node lands in a consistent table.
    let names: Vec<String> = h.ml.nodes().iter().map(|n| n.name.to_string()).collect();
    for name in &names {
        assert_eq!(h.ml.node(name).map(|n| n.name.to_string()).as_deref(), Some(name.as_str()));
    }
    h.feed(&|w| alive("d", &ip4(D), 1, b"").encode(w).unwrap());
    for name in names.iter().map(String::as_str).chain(["d"]) {
        assert_eq!(h.ml.node(name).map(|n| n.name.to_string()).as_deref(), Some(name));
    }
}

#[test]
fn user_messages_go_to_the_delegate_and_send_user_is_bare() {
    let mut h = Harness::new();
    h.feed(&|w| {
        w.byte(MessageType::User as u8).unwrap();
        w.raw(b"\x01hello").unwrap()
    });
    assert_eq!(h.seen.msgs, [b"\x01hello".to_vec()]);
    h.ml.send_user(addr(C), b"\x05resp");
    let sent = h.sent();
    assert_eq!(sent, [(addr(C), false, vec![Out::User(b"\x05resp".to_vec())])]);
}

#[test]
fn encryption_round_trip_and_undecryptable_input_is_counted() {
    let key = [7u8; 32];
    let mut h = Harness::with(config("a", A), Some(Keyring::new(&key).unwrap()));
    // A plaintext ping is dropped.
    h.feed(&|w| Ping { seq_no: 1, node: "a", ..Default::default() }.encode(w).unwrap());
    assert!(h.sent().is_empty());
    assert_eq!(h.ml.stats().decrypt_failed, 1);
    // An encrypted one is answered, encrypted (the harness decrypts with our keyring).
    let ring = Keyring::new(&key).unwrap();
    let mut buf = vec![0u8; PACKET_BUF];
    let mut w = Writer::new(&mut buf[wire::packet::HEADROOM..], Dialect::Gossip);
    Ping { seq_no: 2, node: "a", ..Default::default() }.encode(&mut w).unwrap();
    let n = w.len();
    let range =
        PacketCodec::new().seal(&mut buf, n, Default::default(), Some(&ring), [3; 12]).unwrap();
    let mut dgram = buf[range].to_vec();
    h.ml.handle_datagram(h.now, addr(B), &mut dgram, &mut h.scratch, &mut h.seen);
    let sent = h.sent();
    // (Our own queued alive rides along, piggybacked.)
    assert_eq!(sent[0].2[0], Out::Ack { seq: 2, payload: Some(b"pay".to_vec()) });
}

#[test]
fn shared_names_are_not_reallocated() {
    let mut h = with_peers(&[("b", B)]);
    let before = Arc::strong_count(&h.ml.node("b").unwrap().name);
    h.feed(&|w| Suspect { incarnation: 1, node: "b", from: "b" }.encode(w).unwrap());
    assert!(
        Arc::strong_count(&h.ml.node("b").unwrap().name) > before,
        "suspicion refers to the shared name"
    );
}

#[test]
fn a_message_too_large_to_gossip_is_refused_not_torn() {
    let mut h = with_peers(&[("b", B)]);
    let name = "x".repeat(2100);
    let ip = [127, 0, 3, 1];
    // The node is learnt (it is valid), but its alive can never fit a packet.
    h.feed(&|w| alive(&name, &ip, 1, &[0xff, 0x80]).encode(w).unwrap());
    assert!(h.ml.node(&name).is_some());
    assert_eq!(h.ml.stats().broadcasts_too_large, 1);
    for m in h.gossiped() {
        if let Out::Alive { node, .. } = m {
            assert_ne!(node.len(), 2100, "a torn or oversized alive was gossiped");
        }
    }
}

// ----- stream framing through `Endpoint::handle_stream_data` -------------

mod stream_data {
    use super::*;
    use crate::{Endpoint, Membership};
    use wire::memberlist::MAX_PUSH_STATE_BYTES;
    use wire::stream::ENCRYPT_HEADER_LEN;

    const KEY: [u8; 16] = [5; 16];

    fn endpoint(compress: bool, encrypt: bool) -> Membership<Seen> {
        let mut c = config("a", A);
        c.enable_compression = compress;
        let keyring = encrypt.then(|| Keyring::new(&KEY).unwrap());
        let ml =
            Memberlist::new(c, Instant::from_millis(1_000), Rng::seed_from_u64(1), keyring, &[]);
        Membership { ml, delegate: Seen::default() }
    }

    /// A push-pull from `c`, sealed as the wire carries it.
    fn push_pull(scratch: &mut Scratch, compress: bool, encrypt: bool) -> Vec<u8> {
        let body = push_pull_from_c(false, b"remote");
        let ring = Keyring::new(&KEY).unwrap();
        let mut out = Vec::new();
        scratch.streams.seal(&body, &mut out, compress, encrypt.then_some(&ring), [9; 12]).unwrap();
        out
    }

    fn data(
        ep: &mut Membership<Seen>,
        dir: StreamDir,
        bytes: &mut [u8],
        reply: &mut Vec<u8>,
        scratch: &mut Scratch,
    ) -> StreamData {
        reply.clear();
        ep.handle_stream_data(Instant::from_millis(1_000), dir, bytes, reply, scratch)
    }

    #[test]
    fn truncated_input_asks_for_more_and_changes_nothing_until_the_frame_is_complete() {
        for (compress, encrypt) in [(false, false), (true, false), (false, true), (true, true)] {
            let case = format!("compress={compress} encrypt={encrypt}");
            let mut ep = endpoint(compress, encrypt);
            let mut scratch = Scratch::new();
            let sealed = push_pull(&mut scratch, compress, encrypt);
            let mut reply = Vec::new();
            for n in 0..sealed.len() {
                let mut bytes = sealed[..n].to_vec();
                let got = data(&mut ep, StreamDir::Inbound, &mut bytes, &mut reply, &mut scratch);
                let want = match n {
                    0 => MAX_STREAM_FRAME,
                    _ if !encrypt => MAX_PUSH_STATE_BYTES,
                    _ if n < ENCRYPT_HEADER_LEN => MAX_STREAM_FRAME,
                    // The announced length, once the header is in.
                    _ => sealed.len(),
                };
                assert_eq!(got, StreamData::More { limit: want }, "{case}, {n} bytes");
                assert_eq!(bytes, sealed[..n], "{case}: not decrypted before it is complete");
                assert!(reply.is_empty(), "{case}");
                assert!(ep.ml.node("c").is_none(), "{case}");
                assert!(ep.poll_event().is_none(), "{case}");
            }
            // Bytes after the frame are not part of it.
            let mut bytes = sealed.clone();
            bytes.extend_from_slice(b"after");
            let got = data(&mut ep, StreamDir::Inbound, &mut bytes, &mut reply, &mut scratch);
            assert_eq!(
                got,
                StreamData::Frame { len: sealed.len(), reply: StreamReply::Reply },
                "{case}"
            );
            assert_eq!(ep.ml.node("c").map(|n| n.state), Some(NodeState::Alive), "{case}");
            assert_eq!(ep.delegate.remote_states, [(b"remote".to_vec(), false)], "{case}");
            let mut inflate = Vec::new();
            let ring = Keyring::new(&KEY).unwrap();
            let msg = scratch.streams.open(&mut reply, encrypt.then_some(&ring), &mut inflate);
            assert!(matches!(msg, Ok(wire::stream::StreamMessage::PushPull(_))), "{case}: {msg:?}");
        }
    }

    /// Inputs that can never form a frame, with the error they get.
    fn invalid_inputs() -> Vec<(&'static str, Vec<u8>, wire::Error)> {
        // An encrypted frame announcing one byte more than a push-pull may take.
        let mut oversized = vec![MessageType::Encrypt as u8];
        oversized
            .extend_from_slice(&u32::try_from(MAX_PUSH_STATE_BYTES + 1).unwrap().to_be_bytes());
        // A compressed frame whose msgpack body is still unfinished at the limit.
        let mut unfinished = vec![MessageType::Compress as u8, 0xc6, 0x40, 0, 0, 0];
        unfinished.resize(MAX_PUSH_STATE_BYTES, 0);
        vec![
            ("unknown type", vec![0xee, 0x80], wire::Error::UnknownType(0xee)),
            (
                "gossip-only type",
                vec![MessageType::Suspect as u8, 0x80],
                wire::Error::Unexpected(MessageType::Suspect as u8),
            ),
            ("bad msgpack", vec![MessageType::PushPull as u8, 0xc1], wire::Error::WrongType),
            ("oversized", oversized, wire::Error::TooLarge),
            ("unfinished at the limit", unfinished, wire::Error::TooLarge),
        ]
    }

    #[test]
    fn garbage_and_oversized_requests_are_invalid_and_answered_by_nothing() {
        let mut ep = endpoint(false, false);
        let mut scratch = Scratch::new();
        let mut reply = Vec::new();
        for (case, mut bytes, error) in invalid_inputs() {
            let got = data(&mut ep, StreamDir::Inbound, &mut bytes, &mut reply, &mut scratch);
            assert_eq!(got, StreamData::Invalid(error), "{case}");
            assert!(reply.is_empty(), "{case}");
        }
        // One byte short of the limit, the unfinished frame may still complete.
        let mut short = vec![MessageType::Compress as u8, 0xc6, 0x40, 0, 0, 0];
        short.resize(MAX_PUSH_STATE_BYTES - 1, 0);
        let got = data(&mut ep, StreamDir::Inbound, &mut short, &mut reply, &mut scratch);
        assert_eq!(got, StreamData::More { limit: MAX_PUSH_STATE_BYTES });
        assert!(ep.poll_event().is_none());
        assert_eq!(ep.ml.num_nodes(), 1);
    }

    #[test]
    fn garbage_and_oversized_replies_fail_their_stream_with_the_codec_text() {
        let mut ep = endpoint(false, false);
        let mut scratch = Scratch::new();
        let inputs = invalid_inputs();
        let addrs: Vec<SocketAddr> =
            (0..inputs.len()).map(|i| SocketAddr::from(([127, 0, 1, i as u8 + 1], 7946))).collect();
        let join = ep.ml.join(Instant::from_millis(1_000), &addrs);
        let mut out = Vec::new();
        let mut reply = Vec::new();
        let mut want = Vec::new();
        for (case, mut bytes, error) in inputs {
            let s = ep.poll_stream(&mut out, &mut scratch).expect("a stream per address");
            let got =
                data(&mut ep, StreamDir::Outbound(s.id), &mut bytes, &mut reply, &mut scratch);
            assert_eq!(got, StreamData::Invalid(error), "{case}");
            want.push(format!("Failed to join {}: {error}", s.addr.ip()));
        }
        assert_eq!(ep.ml.streams_in_flight(), 0);
        assert_eq!(ep.ml.stats().stream_errors, want.len() as u64);
        let done = std::iter::from_fn(|| ep.poll_event())
            .find(|e| matches!(e, Event::JoinCompleted { .. }));
        assert_eq!(done, Some(Event::JoinCompleted { id: join, succeeded: 0, errors: want }));
    }

    #[test]
    fn a_reply_split_anywhere_completes_the_stream_once() {
        let mut ep = endpoint(true, true);
        let mut scratch = Scratch::new();
        let join = ep.ml.join(Instant::from_millis(1_000), &[addr(B)]);
        let mut out = Vec::new();
        let s = ep.poll_stream(&mut out, &mut scratch).unwrap();
        let sealed = push_pull(&mut scratch, true, true);
        let mut reply = Vec::new();
        let dir = StreamDir::Outbound(s.id);
        for n in [0, 1, ENCRYPT_HEADER_LEN, sealed.len() - 1] {
            let mut bytes = sealed[..n].to_vec();
            let got = data(&mut ep, dir, &mut bytes, &mut reply, &mut scratch);
            assert!(matches!(got, StreamData::More { .. }), "{n}: {got:?}");
            assert_eq!(ep.ml.streams_in_flight(), 1);
        }
        let mut bytes = sealed.clone();
        let got = data(&mut ep, dir, &mut bytes, &mut reply, &mut scratch);
        assert_eq!(got, StreamData::Frame { len: sealed.len(), reply: StreamReply::Close });
        assert!(reply.is_empty(), "a reply to our stream is not answered");
        assert_eq!(ep.ml.streams_in_flight(), 0);
        assert_eq!(ep.ml.node("c").map(|n| n.state), Some(NodeState::Alive));
        let done = std::iter::from_fn(|| ep.poll_event())
            .find(|e| matches!(e, Event::JoinCompleted { .. }));
        assert_eq!(done, Some(Event::JoinCompleted { id: join, succeeded: 1, errors: vec![] }));
    }
}
