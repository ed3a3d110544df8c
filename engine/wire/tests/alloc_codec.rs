//! Zero allocation on the codec's hot path, proven with a counting global
//! allocator (this file is its own test binary):
//!
//! * decode + re-encode of every memberlist and Serf message kind captured
//!   from Go (`testdata/vectors/examples.jsonl`), including the layers
//!   around them (CRC, compound, compress, encryption, stream framing) and
//!   what lives inside (Serf messages in user messages and push-pull state,
//!   coordinates in acks, tags in node meta, query filters);
//! * the full UDP pipeline: seal with compression, CRC and AES-GCM, then
//!   open and walk every message;
//! * stream rounds: seal, `frame_len`, open, with the caller's `Vec`s reused.
//!
//! Everything is loaded and constructed before the measured sections; each
//! section runs once to warm up, then thousands of times with the counter
//! checked to stay at zero.

use wire::coordinate::Coordinate;
use wire::crypto::Keyring;
use wire::memberlist::{Message, MessageType};
use wire::msgpack::{Dialect, Writer};
use wire::packet::{write_compound, PacketCodec, SealOptions, HEADROOM, PACKET_BUF};
use wire::serf::{write_node_filter, write_tag_filter, Query, SerfMessage, SerfType, Tags};
use wire::stream::{frame_len, StreamCodec, StreamMessage};

use alloc::thread_allocs as allocs;
use testkit as alloc;

/// Runs `f` and returns how many allocations it made on this thread.
fn count(f: impl FnOnce()) -> u64 {
    let before = allocs();
    f();
    allocs() - before
}

const ITERATIONS: usize = 10_000;

mod common;
use common::{capture_keys, examples};

fn keyrings() -> Vec<Keyring> {
    capture_keys().iter().map(|k| Keyring::new(k).unwrap()).collect()
}

/// One captured example, by how it is processed.
enum Case {
    /// A plaintext datagram payload (a leaf, compound, compress or CRC).
    Datagram(Vec<u8>),
    /// An encrypted datagram and the index of the keyring that opens it.
    Encrypted(Vec<u8>, usize),
    /// A stream message as read from the socket, and its keyring if encrypted.
    Stream(Vec<u8>, Option<usize>),
    /// A bare Serf message.
    Serf(Vec<u8>),
}

/// The examples, with the keyring of each encrypted one found up front.
fn cases(rings: &[Keyring]) -> Vec<Case> {
    let mut out = Vec::new();
    for ex in examples() {
        let (kind, bytes) = (ex.kind.as_str(), ex.bytes);
        let case = if kind.starts_with("memberlist-encryption") {
            let k = (0..rings.len())
                .find(|&k| rings[k].open_in_place(&mut bytes.clone(), &[]).is_ok())
                .expect("no captured key opens the datagram");
            Case::Encrypted(bytes, k)
        } else if kind.starts_with("memberlist-stream") {
            let k = (bytes[0] == MessageType::Encrypt as u8).then(|| {
                (0..rings.len())
                    .find(|&k| {
                        StreamCodec::new()
                            .open(&mut bytes.clone(), Some(&rings[k]), &mut Vec::new())
                            .is_ok()
                    })
                    .expect("no captured key opens the stream")
            });
            Case::Stream(bytes, k)
        } else if kind.starts_with("memberlist ") {
            Case::Datagram(bytes)
        } else if kind.starts_with("serf ") {
            Case::Serf(bytes)
        } else {
            continue; // RPC: not this codec
        };
        out.push(case);
    }
    out
}

/// What the measured loops did, so they cannot be optimised into nothing
/// and the test proves work happened.
#[derive(Default, Debug, Clone, Copy, PartialEq, Eq)]
struct Work {
    messages: usize,
    serf: usize,
    coordinates: usize,
    tags: usize,
    filters: usize,
    node_states: usize,
    bytes_out: usize,
}

/// Decodes everything inside a Serf message and re-encodes it into `out`.
fn serf(bytes: &[u8], out: &mut [u8], work: &mut Work) {
    let m = SerfMessage::decode(bytes).unwrap();
    let mut w = Writer::new(out, Dialect::Gossip);
    m.encode(&mut w).unwrap();
    assert_eq!(w.written(), bytes);
    work.bytes_out += w.len();
    work.serf += 1;
    match m {
        SerfMessage::Relay(r) => serf(r.inner, out, work),
        SerfMessage::Query(q) => {
            for f in q.filters() {
                f.unwrap();
                work.filters += 1;
            }
        }
        SerfMessage::QueryResponse(r) => {
            // Responses to internal queries carry a Serf message.
            if let Some(p) = r.payload.filter(|p| SerfMessage::decode(p).is_ok()) {
                serf(p, out, work);
            }
        }
        SerfMessage::ConflictResponse(c) => {
            if let Some(t) = c.member.and_then(|m| m.tags) {
                work.tags += t.iter().count();
            }
        }
        _ => {}
    }
}

/// One leaf message from a datagram or stream: its contents decoded, and
/// the message re-encoded into `out`.
fn leaf(m: &Message<'_>, out: &mut [u8], work: &mut Work) {
    let mut w = Writer::new(out, Dialect::Gossip);
    m.encode(&mut w).unwrap();
    work.bytes_out += w.len();
    work.messages += 1;
    match *m {
        Message::User(body) => serf(body, out, work),
        Message::Ack(a) => {
            if let Some(p) = a.payload.filter(|p| !p.is_empty()) {
                let c = Coordinate::decode_ping_payload(p).unwrap();
                let mut w = Writer::new(out, Dialect::Gossip);
                c.encode_ping_payload(&mut w).unwrap();
                assert_eq!(w.written(), p);
                work.coordinates += 1;
            }
        }
        Message::Alive(a) => {
            let t = Tags::decode(a.meta.unwrap_or(&[])).unwrap();
            work.tags += t.iter().count();
        }
        _ => {}
    }
}

/// Buffers and codecs for processing the examples, allocated up front.
struct Rig {
    rings: Vec<Keyring>,
    packets: PacketCodec,
    streams: StreamCodec,
    /// Received datagram / stream bytes (opened in place).
    rx: Vec<u8>,
    /// Decompressed stream bodies.
    inflate: Vec<u8>,
    /// Re-encoding target.
    out: Vec<u8>,
}

impl Rig {
    fn new() -> Self {
        Rig {
            rings: keyrings(),
            packets: PacketCodec::new(),
            streams: StreamCodec::new(),
            rx: Vec::with_capacity(PACKET_BUF),
            inflate: Vec::new(),
            out: vec![0; PACKET_BUF],
        }
    }

    fn datagram(&mut self, bytes: &[u8], ring: Option<usize>, work: &mut Work) {
        self.rx.clear();
        self.rx.extend_from_slice(bytes);
        let ring = ring.map(|k| &self.rings[k]);
        let range = PacketCodec::open(&mut self.rx, ring).unwrap();
        let payload = &self.rx[range];
        if ![7, 9, 12].contains(&payload[0]) {
            // A bare leaf re-encodes to exactly its bytes.
            let m = Message::decode(payload).unwrap();
            let mut w = Writer::new(&mut self.out, Dialect::Gossip);
            m.encode(&mut w).unwrap();
            assert_eq!(w.written(), payload);
        }
        let out = &mut self.out[..];
        self.packets.walk(payload, &mut |m| leaf(&m.unwrap(), out, work));
    }

    fn stream(&mut self, bytes: &[u8], ring: Option<usize>, work: &mut Work) {
        self.rx.clear();
        self.rx.extend_from_slice(bytes);
        assert_eq!(frame_len(&self.rx), Ok(Some(bytes.len())));
        let ring = ring.map(|k| &self.rings[k]);
        let m = self.streams.open(&mut self.rx, ring, &mut self.inflate).unwrap();
        let mut w = Writer::new(&mut self.out, Dialect::Gossip);
        m.encode(&mut w).unwrap();
        work.bytes_out += w.len();
        work.messages += 1;
        let out = &mut self.out[..];
        match m {
            StreamMessage::PushPull(p) => {
                for s in p.states.iter() {
                    work.tags += Tags::decode(s.meta.unwrap_or(&[])).unwrap().iter().count();
                    work.node_states += 1;
                }
                if !p.user_state.is_empty() {
                    serf(p.user_state, out, work);
                }
            }
            StreamMessage::Ping(p) => leaf(&Message::Ping(p), out, work),
            StreamMessage::Ack(a) => leaf(&Message::Ack(a), out, work),
            StreamMessage::Err(_) | StreamMessage::User(_) => {}
        }
    }

    fn run(&mut self, cases: &[Case], work: &mut Work) {
        for c in cases {
            match c {
                Case::Datagram(b) => self.datagram(b, None, work),
                Case::Encrypted(b, k) => self.datagram(b, Some(*k), work),
                Case::Stream(b, k) => self.stream(b, *k, work),
                Case::Serf(b) => serf(b, &mut self.out, work),
            }
        }
    }
}

#[test]
fn the_counter_sees_allocations() {
    let n = count(|| {
        let v: Vec<u8> = Vec::with_capacity(64);
        std::hint::black_box(&v);
    });
    assert_eq!(n, 1);
}

#[test]
fn every_captured_message_kind_decodes_and_encodes_without_allocating() {
    let mut rig = Rig::new();
    let cases = cases(&rig.rings);
    let kinds = |p: fn(&Case) -> bool| cases.iter().filter(|c| p(c)).count();
    assert!(kinds(|c| matches!(c, Case::Datagram(_))) >= 11);
    assert!(kinds(|c| matches!(c, Case::Encrypted(..))) >= 2);
    assert!(kinds(|c| matches!(c, Case::Stream(_, Some(_)))) >= 2);
    assert!(kinds(|c| matches!(c, Case::Stream(_, None))) >= 6);
    assert!(kinds(|c| matches!(c, Case::Serf(_))) >= 19);

    // No captured query had filters: add one with both kinds.
    let mut cases = cases;
    cases.push(Case::Serf(filtered_query()));

    let mut warm = Work::default();
    rig.run(&cases, &mut warm);
    assert!(
        warm.coordinates > 0 && warm.tags > 0 && warm.filters > 0 && warm.node_states > 0,
        "{warm:?}"
    );

    let mut work = Work::default();
    let n = count(|| {
        for _ in 0..ITERATIONS {
            rig.run(&cases, &mut work);
        }
    });
    assert_eq!(work.messages, warm.messages * ITERATIONS);
    assert_eq!(work.serf, warm.serf * ITERATIONS);
    assert_eq!(n, 0, "allocations in {ITERATIONS} rounds over {} captured examples", cases.len());
}

/// A query with a node filter and a tag filter, as `serf query -node a
/// -node b -tag role=web` sends it.
fn filtered_query() -> Vec<u8> {
    let mut node = [0u8; 64];
    let mut w = Writer::new(&mut node, Dialect::Gossip);
    write_node_filter(&mut w, ["a", "b"].into_iter()).unwrap();
    let node = w.written().to_vec();
    let mut tag = [0u8; 64];
    let mut w = Writer::new(&mut tag, Dialect::Gossip);
    write_tag_filter(&mut w, "role", "web").unwrap();
    let tag = w.written().to_vec();
    let q = Query {
        ltime: 7,
        id: 1234,
        addr: Some(&[127, 0, 0, 1]),
        port: 7946,
        source_node: "n1",
        name: "deploy",
        payload: Some(b"v2"),
        timeout_ns: 15_000_000_000,
        ..Default::default()
    };
    let mut buf = vec![0u8; 512];
    let mut w = Writer::new(&mut buf, Dialect::Gossip);
    w.byte(SerfType::Query as u8).unwrap();
    q.encode_body_with(&mut w, Some([&node[..], &tag[..]].into_iter())).unwrap();
    let n = w.len();
    buf.truncate(n);
    buf
}

/// A ~1200-byte compound of captured gossip: a ping and piggybacked
/// alive/suspect/dead/user messages, as a busy node sends them.
fn gossip_compound() -> Vec<u8> {
    let leaves: Vec<Vec<u8>> = examples()
        .into_iter()
        .filter(|e| {
            ["memberlist 0 ", "memberlist 3 ", "memberlist 4 ", "memberlist 5 ", "memberlist 8 "]
                .iter()
                .any(|p| e.kind.starts_with(p))
        })
        .map(|e| e.bytes)
        .collect();
    assert_eq!(leaves.len(), 5);
    let mut parts: Vec<&[u8]> = vec![&leaves[0]];
    let mut total = leaves[0].len();
    for l in leaves[1..].iter().cycle() {
        if total + l.len() > 1150 {
            break;
        }
        parts.push(l);
        total += l.len();
    }
    let mut out = vec![0u8; 4096];
    let n = write_compound(&mut out, &parts).unwrap();
    out.truncate(n);
    out
}

#[test]
fn udp_pipeline_does_not_allocate() {
    let payload = gossip_compound();
    assert!((1100..1300).contains(&payload.len()), "{}", payload.len());
    let rings = keyrings();
    let recv = Keyring::from_keys(&[rings[1].primary(), rings[0].primary()]).unwrap();
    let mut tx = PacketCodec::new();
    let mut rx = PacketCodec::new();
    let mut buf = vec![0u8; PACKET_BUF];
    let mut packet = vec![0u8; PACKET_BUF];
    let mut out = vec![0u8; PACKET_BUF];
    let opts = SealOptions { compress: true, crc: true };

    // Every layer is applied: encryption, then CRC, then compression.
    buf[HEADROOM..HEADROOM + payload.len()].copy_from_slice(&payload);
    let sealed = tx.seal(&mut buf, payload.len(), opts, Some(&rings[0]), [0; 12]).unwrap();
    let mut envelope = buf[sealed].to_vec();
    let plain = rings[0].open_in_place(&mut envelope, &[]).unwrap();
    assert_eq!(envelope[plain.start], MessageType::HasCrc as u8);
    assert_eq!(envelope[plain.start + 5], MessageType::Compress as u8);

    let mut round = |i: usize, work: &mut Work| {
        buf[HEADROOM..HEADROOM + payload.len()].copy_from_slice(&payload);
        let mut nonce = [0u8; 12];
        nonce[..8].copy_from_slice(&(i as u64).to_le_bytes());
        let sealed = tx.seal(&mut buf, payload.len(), opts, Some(&rings[0]), nonce).unwrap();
        let n = sealed.len();
        packet[..n].copy_from_slice(&buf[sealed]);
        // The receiver holds both keys, the sender's second.
        let range = PacketCodec::open(&mut packet[..n], Some(&recv)).unwrap();
        assert_eq!(packet[range.start], MessageType::Compress as u8);
        let opened = &packet[range];
        rx.walk(opened, &mut |m| leaf(&m.unwrap(), &mut out, work));
    };

    let mut warm = Work::default();
    round(0, &mut warm);
    assert!(warm.messages > 10 && warm.serf > 0, "{warm:?}");
    let mut work = Work::default();
    let n = count(|| {
        for i in 1..=ITERATIONS {
            round(i, &mut work);
        }
    });
    assert_eq!(work.messages, warm.messages * ITERATIONS);
    assert_eq!(n, 0, "allocations in {ITERATIONS} seal + open + walk rounds");
}

#[test]
fn stream_rounds_do_not_allocate() {
    let plains: Vec<Vec<u8>> = examples()
        .into_iter()
        .filter(|e| e.kind.starts_with("memberlist-stream") && [0, 2, 6, 13].contains(&e.bytes[0]))
        .map(|e| e.bytes)
        .collect();
    assert_eq!(plains.len(), 5);
    let ring = Keyring::from_keys(&[&[7u8; 32], &[9u8; 16]]).unwrap();
    let mut codec = StreamCodec::new();
    let (mut wire, mut inflate) = (Vec::new(), Vec::new());
    let mut out = vec![0u8; PACKET_BUF];

    let mut round = |i: usize, bytes_out: &mut usize| {
        for (j, plain) in plains.iter().enumerate() {
            let compress = (i + j) % 2 == 0;
            let keyring = ((i + j) % 3 != 0).then_some(&ring);
            let nonce = [(i % 251) as u8; 12];
            codec.seal(plain, &mut wire, compress, keyring, nonce).unwrap();
            assert_eq!(frame_len(&wire), Ok(Some(wire.len())));
            assert_eq!(frame_len(&wire[..wire.len() - 1]), Ok(None));
            let m = codec.open(&mut wire, keyring, &mut inflate).unwrap();
            let mut w = Writer::new(&mut out, Dialect::Gossip);
            m.encode(&mut w).unwrap();
            assert_eq!(w.written(), &plain[..]);
            *bytes_out += w.len();
        }
    };

    // Six warm-up rounds reach every (compress, encrypt) combination for
    // every message, so the reused Vecs reach their largest sizes.
    let mut warm = 0;
    for i in 0..6 {
        round(i, &mut warm);
    }
    let mut bytes_out = 0;
    let n = count(|| {
        for i in 6..6 + ITERATIONS {
            round(i, &mut bytes_out);
        }
    });
    assert!(bytes_out > 0);
    assert_eq!(n, 0, "allocations in {ITERATIONS} rounds of stream seal + frame_len + open");
}
