//! Fixed wire-codec workloads for instruction counting (`scripts/regress`).
//! Each workload runs its operation a fixed number of times inside
//! `measured`; with collection toggled on that function only, callgrind's
//! `Collected` total divided by the iterations is the instruction count of
//! one operation (input preparation and checks are not counted):
//!
//! ```text
//! cargo build --profile bench -p bench --bin codec_count
//! target/release/codec_count --list              # workload, iterations
//! valgrind --tool=callgrind --collect-atstart=no \
//!     --toggle-collect='codec_count::measured' \
//!     target/release/codec_count msg/alive 2000
//! ```
//!
//! Inputs are the captured Go messages of `testdata/vectors/examples.jsonl`
//! (compiled in) and a generated 1000-node push-pull; nothing depends on a
//! clock or on random state. Before measuring, each workload checks once
//! that its operation gives the expected result (e.g. a re-encoding equal
//! to the captured bytes), so a broken codec fails here, not silently.
//!
//! Workloads:
//! - `msg/<kind>`: a captured memberlist message, decoded and re-encoded;
//! - `serf/<kind>`: a captured Serf message, decoded and re-encoded;
//! - `stream/<kind>`: a captured plain stream message, decoded and
//!   re-encoded (`stream/compress`: inflated first);
//! - `packet/<layer>`: a captured datagram walked to its leaves (compound,
//!   LZW compress, CRC check, AES-GCM open with the capture's key);
//! - `udp/seal`, `udp/open`: a ~1200-byte compound of 30 messages encoded,
//!   LZW-compressed, CRC'd and encrypted; and opened, walked, every Serf
//!   message inside decoded;
//! - `pushpull1000/decode`, `pushpull1000/encode`: a 1000-node push-pull
//!   with tags meta and a Serf user state.

use std::hint::black_box;

use engine::wire::crypto::Keyring;
use engine::wire::memberlist::{Message, NodeState, PushNodeState, PushPull};
use engine::wire::msgpack::{Dialect, Writer};
use engine::wire::packet::{write_compound, PacketCodec, SealOptions, HEADROOM, PACKET_BUF};
use engine::wire::serf::{self, write_str_list, write_tags, SerfMessage};
use engine::wire::stream::StreamMessage;

const EXAMPLES: &str =
    include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/vectors/examples.jsonl"));
const KEYS: &str =
    include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/vectors/keys.txt"));

/// (workload, iterations).
const WORKLOADS: &[(&str, u64)] = &[
    ("msg/ping", 2000),
    ("msg/indirect-ping", 2000),
    ("msg/ack", 2000),
    ("msg/nack", 2000),
    ("msg/suspect", 2000),
    ("msg/alive", 2000),
    ("msg/dead", 2000),
    ("msg/user", 2000),
    ("serf/leave", 2000),
    ("serf/join", 2000),
    ("serf/push-pull", 500),
    ("serf/user-event", 2000),
    ("serf/query", 2000),
    ("serf/query-response", 2000),
    ("serf/conflict-response", 2000),
    ("serf/key-request", 2000),
    ("serf/key-response", 2000),
    ("serf/relay", 2000),
    ("stream/ping", 2000),
    ("stream/ack", 2000),
    ("stream/push-pull", 500),
    ("stream/compress", 500),
    ("stream/err", 2000),
    ("packet/compound", 1000),
    ("packet/compress", 500),
    ("packet/crc", 1000),
    ("packet/encrypted", 500),
    ("udp/seal", 200),
    ("udp/open", 200),
    ("pushpull1000/decode", 10),
    ("pushpull1000/encode", 10),
];

/// The kind (prefix of the `kind` field) of the captured example of each
/// message workload.
fn captured_kind(workload: &str) -> Option<&'static str> {
    Some(match workload {
        "msg/ping" => "memberlist 0 ping",
        "msg/indirect-ping" => "memberlist 1 indirectPing",
        "msg/ack" => "memberlist 2 ackResp",
        "msg/nack" => "memberlist 11 nackResp",
        "msg/suspect" => "memberlist 3 suspect",
        "msg/alive" => "memberlist 4 alive",
        "msg/dead" => "memberlist 5 dead",
        "msg/user" => "memberlist 8 user",
        "serf/leave" => "serf 0 leave",
        "serf/join" => "serf 1 join",
        "serf/push-pull" => "serf 2 pushPull",
        "serf/user-event" => "serf 3 userEvent",
        "serf/query" => "serf 4 query",
        "serf/query-response" => "serf 5 queryResponse",
        "serf/conflict-response" => "serf 6 conflictResponse",
        "serf/key-request" => "serf 7 keyRequest",
        "serf/key-response" => "serf 8 keyResponse",
        "serf/relay" => "serf 9 relay",
        "stream/ping" => "memberlist-stream 0 ping",
        "stream/ack" => "memberlist-stream 2 ackResp",
        "stream/push-pull" => "memberlist-stream 6 pushPull",
        "stream/compress" => "memberlist-stream 9 compress",
        "stream/err" => "memberlist-stream 13 err",
        "packet/compound" => "memberlist 7 compound",
        "packet/compress" => "memberlist 9 compress",
        "packet/crc" => "memberlist 12 hasCrc",
        "packet/encrypted" => "memberlist-encryption udp vsn=1",
        _ => return None,
    })
}

/// The measured loop (callgrind toggles collection on this function).
#[inline(never)]
fn measured(op: &mut dyn FnMut() -> usize, iters: u64) -> usize {
    let mut acc = 0usize;
    for _ in 0..iters {
        acc = acc.wrapping_add(op());
    }
    acc
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
}

/// A JSON string field of one examples line (the file is machine-written:
/// `"name": "value"`, values without escapes).
fn field<'a>(line: &'a str, name: &str) -> &'a str {
    let key = format!("\"{name}\": \"");
    let start = line.find(&key).map(|i| i + key.len()).expect("field present");
    line[start..].split('"').next().expect("closing quote")
}

/// The captured bytes and variant of the first example whose kind starts
/// with `kind` (followed by the end of the kind or a space).
fn example(kind: &str) -> (Vec<u8>, String) {
    let line = EXAMPLES
        .lines()
        .find(|l| {
            let k = field(l, "kind");
            k == kind || k.strip_prefix(kind).is_some_and(|rest| rest.starts_with(' '))
        })
        .unwrap_or_else(|| panic!("no captured example of kind {kind}"));
    (unhex(field(line, "hex")), field(line, "variant").to_owned())
}

/// Standard base64 (the capture keys).
fn unbase64(s: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c}"),
        }
    };
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for &c in s.trim().trim_end_matches('=').as_bytes() {
        acc = (acc << 6) | value(c);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

/// The capture key `key#i`.
fn capture_key(i: usize) -> Vec<u8> {
    let line = KEYS.lines().filter(|l| !l.starts_with('#')).nth(i).expect("key line");
    unbase64(line)
}

/// Encodes with `f` into `buf`; returns the length.
fn encode_into(buf: &mut [u8], f: impl FnOnce(&mut Writer<'_>)) -> usize {
    let mut w = Writer::new(buf, Dialect::Gossip);
    f(&mut w);
    w.len()
}

/// What a receiver reads out of a leaf: its fields, and the Serf message
/// inside a user message.
fn consume(m: Message<'_>) -> usize {
    match m {
        Message::User(body) => {
            black_box(SerfMessage::decode(body).expect("serf message"));
            1
        }
        m => {
            black_box(m);
            1
        }
    }
}

/// Encodes `msgs` (at most 127) as a compound into `out`; returns its
/// length. No allocation: the measured path is the codec's.
fn encode_compound(msgs: &[Message<'_>], scratch: &mut [u8], out: &mut [u8]) -> usize {
    let mut ends = [0usize; 128];
    let mut pos = 0;
    for (i, m) in msgs.iter().enumerate() {
        pos += encode_into(&mut scratch[pos..], |w| m.encode(w).expect("encode"));
        ends[i + 1] = pos;
    }
    let mut parts: [&[u8]; 127] = [&[]; 127];
    for i in 0..msgs.len() {
        parts[i] = &scratch[ends[i]..ends[i + 1]];
    }
    write_compound(out, &parts[..msgs.len()]).expect("compound fits")
}

/// A 1000-node push-pull: node names, tags meta, a Serf user state with
/// events, left members and status times.
struct PushPull1000 {
    names: Vec<String>,
    metas: Vec<Vec<u8>>,
    addrs: Vec<[u8; 4]>,
}

impl PushPull1000 {
    const NODES: usize = 1000;

    fn new() -> Self {
        let names = (0..Self::NODES).map(|i| format!("node-{i:04}.dc1.example")).collect();
        let metas = (0..Self::NODES)
            .map(|i| {
                let role = ["web", "db", "cache", "worker"][i % 4];
                let mut buf = [0u8; 128];
                let n = encode_into(&mut buf, |w| {
                    write_tags(w, [("role", role), ("dc", "dc1"), ("rack", "r12")].into_iter())
                        .expect("tags")
                });
                buf[..n].to_vec()
            })
            .collect();
        let addrs = (0..Self::NODES).map(|i| [10, 0, (i >> 8) as u8, i as u8]).collect();
        PushPull1000 { names, metas, addrs }
    }

    fn states(&self) -> Vec<PushNodeState<'_>> {
        (0..Self::NODES)
            .map(|i| PushNodeState {
                name: &self.names[i],
                addr: Some(&self.addrs[i]),
                port: 7946,
                meta: Some(&self.metas[i]),
                incarnation: (i % 7) as u32,
                state: if i % 50 == 0 { NodeState::Dead } else { NodeState::Alive },
                vsn: Some(&[1, 5, 2, 2, 5, 5]),
            })
            .collect()
    }

    /// The Serf push-pull user state (type byte included).
    fn write_serf_state(&self, w: &mut Writer<'_>) -> engine::wire::Result<()> {
        w.byte(serf::SerfType::PushPull as u8)?;
        w.map_len(6)?;
        w.key("EventLTime")?;
        w.uint(4242)?;
        w.key("Events")?;
        w.array_len(512)?;
        for slot in 0..512u64 {
            if slot % 64 == 0 {
                let events = [serf::BufferedEvent { name: "deploy", payload: Some(b"v1.2.3") }];
                serf::write_event_bucket(w, 4000 + slot, Some(events.into_iter()))?;
            } else {
                w.nil()?;
            }
        }
        w.key("LTime")?;
        w.uint(9001)?;
        w.key("LeftMembers")?;
        write_str_list(w, self.names[..10].iter().map(String::as_str))?;
        w.key("QueryLTime")?;
        w.uint(77)?;
        w.key("StatusLTimes")?;
        w.map_len(Self::NODES)?;
        for (i, name) in self.names.iter().enumerate() {
            w.str(name)?;
            w.uint(8000 + i as u64)?;
        }
        Ok(())
    }

    fn encode(&self, states: &[PushNodeState<'_>], scratch: &mut [u8], out: &mut [u8]) -> usize {
        let mut w = Writer::new(scratch, Dialect::Gossip);
        self.write_serf_state(&mut w).expect("user state fits");
        let user = w.written();
        let mut w = Writer::new(out, Dialect::Gossip);
        PushPull::encode_with(&mut w, false, states.iter().copied(), user).expect("fits");
        w.len()
    }
}

/// Decodes a push-pull and everything in it; returns the sum of the
/// incarnations (a checked result).
fn decode_push_pull(bytes: &[u8]) -> usize {
    let StreamMessage::PushPull(pp) = StreamMessage::decode(bytes).expect("push-pull") else {
        panic!("not a push-pull")
    };
    let mut incarnations = 0usize;
    for s in pp.states.iter() {
        incarnations += s.incarnation as usize;
        black_box(s);
    }
    let SerfMessage::PushPull(user) = SerfMessage::decode(pp.user_state).expect("user state")
    else {
        panic!("not a serf push-pull")
    };
    for (name, ltime) in user.status_ltimes.expect("status times").iter() {
        black_box((name, ltime));
    }
    for e in user.events.expect("events").iter().flatten() {
        black_box(e);
    }
    incarnations
}

/// Runs workload `name` `iters` times; returns a checksum of the results.
fn run(name: &str, iters: u64) -> usize {
    let mut out = vec![0u8; PACKET_BUF];
    if let Some(kind) = captured_kind(name) {
        let (bytes, _) = example(kind);
        if let Some(layer) = name.strip_prefix("packet/") {
            return run_packet(layer, &bytes, iters);
        }
        let mut op: Box<dyn FnMut() -> usize> = if name.starts_with("msg/") {
            Box::new(|| {
                let m = Message::decode(black_box(&bytes)).expect("decode");
                encode_into(&mut out, |w| m.encode(w).expect("encode"))
            })
        } else if name.starts_with("serf/") {
            Box::new(|| {
                let m = SerfMessage::decode(black_box(&bytes)).expect("decode");
                encode_into(&mut out, |w| m.encode(w).expect("encode"))
            })
        } else if name == "stream/compress" {
            let mut codec = PacketCodec::new();
            let mut plain = vec![0u8; PACKET_BUF];
            let body = bytes[1..].to_vec();
            Box::new(move || {
                let p = codec.inflate(black_box(&body)).expect("inflate");
                let m = StreamMessage::decode(p).expect("decode");
                encode_into(&mut plain, |w| m.encode(w).expect("encode"))
            })
        } else {
            Box::new(|| {
                let m = StreamMessage::decode(black_box(&bytes)).expect("decode");
                encode_into(&mut out, |w| m.encode(w).expect("encode"))
            })
        };
        // Check once: the re-encoding is the captured message.
        let n = op();
        if name != "stream/compress" {
            assert_eq!(n, bytes.len(), "{name}: re-encoded length differs");
        }
        return measured(&mut *op, iters);
    }
    match name {
        "udp/seal" | "udp/open" => run_udp(name, iters),
        "pushpull1000/decode" | "pushpull1000/encode" => {
            let pp = PushPull1000::new();
            let states = pp.states();
            let mut scratch = vec![0u8; 1 << 20];
            let mut buf = vec![0u8; 1 << 20];
            let n = pp.encode(&states, &mut scratch, &mut buf);
            let bytes = buf[..n].to_vec();
            let want: usize = states.iter().map(|s| s.incarnation as usize).sum();
            assert_eq!(decode_push_pull(&bytes), want, "push-pull decode");
            if name.ends_with("decode") {
                measured(&mut || decode_push_pull(black_box(&bytes)), iters)
            } else {
                measured(&mut || pp.encode(black_box(&states), &mut scratch, &mut buf), iters)
            }
        }
        other => {
            eprintln!("unknown workload {other} (see --list)");
            std::process::exit(2);
        }
    }
}

/// A captured datagram walked to its leaves (opened first: CRC checked,
/// and decrypted with the capture's key when encrypted).
fn run_packet(layer: &str, bytes: &[u8], iters: u64) -> usize {
    let ring = (layer == "encrypted").then(|| Keyring::new(&capture_key(0)).expect("key"));
    let mut codec = PacketCodec::new();
    let mut pkt = vec![0u8; bytes.len()];
    let mut op = || {
        pkt.copy_from_slice(black_box(bytes));
        let r = PacketCodec::open(&mut pkt, ring.as_ref()).expect("open");
        let mut leaves = 0;
        codec.walk(&pkt[r], &mut |m| leaves += consume(m.expect("leaf")));
        leaves
    };
    let leaves = op();
    assert!(leaves >= 1, "packet/{layer}: no leaves");
    measured(&mut op, iters)
}

/// The UDP pipeline on a compound of 30 captured messages (a ping, then
/// alive, suspect, dead and Serf join user messages in turn).
fn run_udp(name: &str, iters: u64) -> usize {
    let kinds =
        ["memberlist 4 alive", "memberlist 3 suspect", "memberlist 5 dead", "memberlist 8 user"];
    let mut leaves = vec![example("memberlist 0 ping").0];
    leaves.extend(kinds.iter().cycle().take(29).map(|k| example(k).0));
    let views: Vec<Message<'_>> =
        leaves.iter().map(|b| Message::decode(b).expect("captured leaf")).collect();
    let ring = Keyring::new(&[0x42; 32]).expect("key");
    let opts = SealOptions { compress: true, crc: true };
    let nonce = [7u8; 12];
    let (mut tx, mut rx) = (PacketCodec::new(), PacketCodec::new());
    let mut scratch = vec![0u8; PACKET_BUF];
    let mut buf = vec![0u8; PACKET_BUF];
    let mut seal = |buf: &mut [u8]| {
        let n = encode_compound(&views, &mut scratch, &mut buf[HEADROOM..]);
        tx.seal(buf, n, opts, Some(&ring), nonce).expect("seal")
    };
    let sealed = seal(&mut buf);
    let datagram = buf[sealed].to_vec();
    let mut pkt = vec![0u8; datagram.len()];
    let mut open = || {
        pkt.copy_from_slice(black_box(&datagram));
        let r = PacketCodec::open(&mut pkt, Some(&ring)).expect("open");
        let mut n = 0;
        rx.walk(&pkt[r], &mut |m| n += consume(m.expect("leaf")));
        n
    };
    assert_eq!(open(), 30, "udp: the opened datagram has 30 leaves");
    if name == "udp/seal" {
        measured(&mut || seal(&mut buf).len(), iters)
    } else {
        measured(&mut open, iters)
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("--list") | None => {
            for (name, iters) in WORKLOADS {
                println!("{name} {iters}");
            }
        }
        Some(name) => {
            let default = WORKLOADS.iter().find(|(n, _)| *n == name).map_or(1000, |(_, i)| *i);
            let iters = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(default);
            let check = run(name, iters);
            println!("workload={name} iterations={iters} checksum={check}");
        }
    }
}
