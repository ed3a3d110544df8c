//! Wire codec throughput: ours next to the naive way a typical Rust program
//! would speak the same protocol, in the same criterion group.
//!
//! The baseline uses serde structs with owned `String`/`Vec<u8>` fields named
//! like Go's (`#[serde(rename)]`), `rmp_serde::from_slice` / `from_read` into
//! them and `rmp_serde::encode::write_named` into a fresh `Vec` per message;
//! for the UDP pipeline a fresh `Vec` per layer, a new `Aes256Gcm` per packet
//! and a `weezl` encoder/decoder per packet. Before timing, the baseline is
//! checked to decode the same captured bytes to the same values as ours.
//!
//! Cases (each a decode and an encode group, `Throughput::Bytes` = wire size):
//! (a) a captured ping, (b) a captured alive with tags meta (tags decoded
//! too), (c) a compound of a ping + 8 piggybacked alive/suspect/dead, (d) a
//! 1000-node push-pull with a Serf push-pull user state, (e) the encrypted
//! and compressed UDP pipeline on a ~1200-byte compound (encode + seal, and
//! open + walk with the Serf messages inside decoded).
//!
//! Run with `scripts/bench-codec.sh` (writes `results/codec.{json,md}`).

use std::collections::HashMap;
use std::hint::black_box;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};

use engine::wire::crypto::Keyring;
use engine::wire::memberlist::{Alive, Body, Message, NodeState, PushNodeState, PushPull};
use engine::wire::msgpack::{Dialect, Writer};
use engine::wire::packet::{write_compound, PacketCodec, SealOptions, HEADROOM, PACKET_BUF};
use engine::wire::serf::{self, write_event_bucket, write_str_list, write_tags, SerfMessage, Tags};
use engine::wire::stream::StreamMessage;

// ---------------------------------------------------------------------------
// Captured inputs

const EXAMPLES: &str =
    include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/vectors/examples.jsonl"));

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

/// The captured bytes of the first example whose kind starts with `kind`.
fn example(kind: &str) -> Vec<u8> {
    let field = |line: &str, name: &str| -> String {
        let start = line.find(&format!("\"{name}\": \"")).unwrap() + name.len() + 5;
        line[start..].split('"').next().unwrap().to_owned()
    };
    let line = EXAMPLES.lines().find(|l| field(l, "kind").starts_with(kind)).unwrap();
    unhex(&field(line, "hex"))
}

// ---------------------------------------------------------------------------
// The baseline

mod baseline {
    use std::collections::HashMap;

    use aes_gcm::aead::{Aead, KeyInit};
    use aes_gcm::{Aes256Gcm, Nonce};
    use serde::{Deserialize, Serialize};

    pub type Error = Box<dyn std::error::Error>;

    /// A Go `[]byte`. Go's gossip msgpack writes it as an old-spec raw
    /// *string*; rmp-serde hands that to the visitor as a str (or as bytes
    /// when it is not UTF-8), which a plain `Vec<u8>` field rejects ("invalid
    /// type: string, expected a sequence"). This is what `serde_bytes`'s
    /// `ByteBuf` does: accept str and bin alike, write bin.
    pub mod go_bytes {
        use serde::de::{Deserializer, Error, SeqAccess, Visitor};
        use serde::Serializer;

        pub struct BytesVisitor;

        impl<'de> Visitor<'de> for BytesVisitor {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E: Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_str<E: Error>(self, v: &str) -> Result<Vec<u8>, E> {
                Ok(v.as_bytes().to_vec())
            }
            fn visit_unit<E: Error>(self) -> Result<Vec<u8>, E> {
                Ok(Vec::new())
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
                let mut out = Vec::new();
                while let Some(b) = seq.next_element()? {
                    out.push(b);
                }
                Ok(out)
            }
        }

        pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(v)
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
            d.deserialize_bytes(BytesVisitor)
        }
    }

    /// A Go `[]byte` that may be nil.
    pub mod go_bytes_opt {
        use serde::de::{Deserializer, Visitor};
        use serde::Serializer;

        struct OptVisitor;

        impl<'de> Visitor<'de> for OptVisitor {
            type Value = Option<Vec<u8>>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("nil or a byte string")
            }
            fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
                super::go_bytes::deserialize(d).map(Some)
            }
        }

        pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
            match v {
                Some(b) => s.serialize_bytes(b),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
            d.deserialize_option(OptVisitor)
        }
    }

    fn is_zero(v: &u16) -> bool {
        *v == 0
    }

    #[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
    pub struct Ping {
        #[serde(rename = "Node")]
        pub node: String,
        #[serde(rename = "SeqNo")]
        pub seq_no: u32,
        #[serde(
            rename = "SourceAddr",
            default,
            with = "go_bytes",
            skip_serializing_if = "Vec::is_empty"
        )]
        pub source_addr: Vec<u8>,
        #[serde(rename = "SourceNode", default, skip_serializing_if = "String::is_empty")]
        pub source_node: String,
        #[serde(rename = "SourcePort", default, skip_serializing_if = "is_zero")]
        pub source_port: u16,
    }

    #[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
    pub struct Ack {
        #[serde(rename = "Payload", with = "go_bytes_opt")]
        pub payload: Option<Vec<u8>>,
        #[serde(rename = "SeqNo")]
        pub seq_no: u32,
    }

    /// Suspect and dead.
    #[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
    pub struct Accusation {
        #[serde(rename = "From")]
        pub from: String,
        #[serde(rename = "Incarnation")]
        pub incarnation: u32,
        #[serde(rename = "Node")]
        pub node: String,
    }

    #[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
    pub struct Alive {
        #[serde(rename = "Addr", with = "go_bytes_opt")]
        pub addr: Option<Vec<u8>>,
        #[serde(rename = "Incarnation")]
        pub incarnation: u32,
        #[serde(rename = "Meta", with = "go_bytes_opt")]
        pub meta: Option<Vec<u8>>,
        #[serde(rename = "Node")]
        pub node: String,
        #[serde(rename = "Port")]
        pub port: u16,
        #[serde(rename = "Vsn", with = "go_bytes_opt")]
        pub vsn: Option<Vec<u8>>,
    }

    /// The same struct with plain `Vec<u8>` fields, as a first attempt
    /// would write it: it cannot read Go's bytes (only the failure is used).
    #[allow(dead_code)]
    #[derive(Deserialize, Debug)]
    pub struct NaiveAlive {
        #[serde(rename = "Addr")]
        pub addr: Option<Vec<u8>>,
        #[serde(rename = "Incarnation")]
        pub incarnation: u32,
        #[serde(rename = "Meta")]
        pub meta: Option<Vec<u8>>,
        #[serde(rename = "Node")]
        pub node: String,
        #[serde(rename = "Port")]
        pub port: u16,
        #[serde(rename = "Vsn")]
        pub vsn: Option<Vec<u8>>,
    }

    #[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
    pub struct Compress {
        #[serde(rename = "Algo")]
        pub algo: u8,
        #[serde(rename = "Buf", with = "go_bytes_opt")]
        pub buf: Option<Vec<u8>>,
    }

    #[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
    pub struct PushPullHeader {
        #[serde(rename = "Join")]
        pub join: bool,
        #[serde(rename = "Nodes")]
        pub nodes: i64,
        #[serde(rename = "UserStateLen")]
        pub user_state_len: i64,
    }

    #[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
    pub struct PushNodeState {
        #[serde(rename = "Addr", with = "go_bytes_opt")]
        pub addr: Option<Vec<u8>>,
        #[serde(rename = "Incarnation")]
        pub incarnation: u32,
        #[serde(rename = "Meta", with = "go_bytes_opt")]
        pub meta: Option<Vec<u8>>,
        #[serde(rename = "Name")]
        pub name: String,
        #[serde(rename = "Port")]
        pub port: u16,
        #[serde(rename = "State")]
        pub state: u8,
        #[serde(rename = "Vsn", with = "go_bytes_opt")]
        pub vsn: Option<Vec<u8>>,
    }

    #[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
    pub struct Join {
        #[serde(rename = "LTime")]
        pub ltime: u64,
        #[serde(rename = "Node")]
        pub node: String,
    }

    #[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
    pub struct Leave {
        #[serde(rename = "LTime")]
        pub ltime: u64,
        #[serde(rename = "Node")]
        pub node: String,
        #[serde(rename = "Prune")]
        pub prune: bool,
    }

    #[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
    pub struct UserEvent {
        #[serde(rename = "CC")]
        pub cc: bool,
        #[serde(rename = "LTime")]
        pub ltime: u64,
        #[serde(rename = "Name")]
        pub name: String,
        #[serde(rename = "Payload", with = "go_bytes_opt")]
        pub payload: Option<Vec<u8>>,
    }

    #[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
    pub struct BufferedEvent {
        #[serde(rename = "Name")]
        pub name: String,
        #[serde(rename = "Payload", with = "go_bytes_opt")]
        pub payload: Option<Vec<u8>>,
    }

    #[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
    pub struct EventBucket {
        #[serde(rename = "Events")]
        pub events: Option<Vec<BufferedEvent>>,
        #[serde(rename = "LTime")]
        pub ltime: u64,
    }

    #[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
    pub struct SerfPushPull {
        #[serde(rename = "EventLTime")]
        pub event_ltime: u64,
        #[serde(rename = "Events")]
        pub events: Option<Vec<Option<EventBucket>>>,
        #[serde(rename = "LTime")]
        pub ltime: u64,
        #[serde(rename = "LeftMembers")]
        pub left_members: Option<Vec<String>>,
        #[serde(rename = "QueryLTime")]
        pub query_ltime: u64,
        #[serde(rename = "StatusLTimes")]
        pub status_ltimes: Option<HashMap<String, u64>>,
    }

    #[derive(Debug, Clone, PartialEq)]
    pub enum Serf {
        Leave(Leave),
        Join(Join),
        UserEvent(UserEvent),
        /// Other Serf types, kept as bytes (none occur in the benchmarks).
        Other(Vec<u8>),
    }

    #[derive(Debug, Clone, PartialEq)]
    pub enum Msg {
        Ping(Ping),
        Ack(Ack),
        Suspect(Accusation),
        Alive(Alive),
        Dead(Accusation),
        User(Serf),
    }

    pub fn decode_serf(bytes: &[u8]) -> Result<Serf, Error> {
        let (t, body) = bytes.split_first().ok_or("empty Serf message")?;
        Ok(match t {
            0 => Serf::Leave(rmp_serde::from_slice(body)?),
            1 => Serf::Join(rmp_serde::from_slice(body)?),
            3 => Serf::UserEvent(rmp_serde::from_slice(body)?),
            _ => Serf::Other(bytes.to_vec()),
        })
    }

    pub fn decode(bytes: &[u8]) -> Result<Msg, Error> {
        let (t, body) = bytes.split_first().ok_or("empty message")?;
        Ok(match t {
            0 => Msg::Ping(rmp_serde::from_slice(body)?),
            2 => Msg::Ack(rmp_serde::from_slice(body)?),
            3 => Msg::Suspect(rmp_serde::from_slice(body)?),
            4 => Msg::Alive(rmp_serde::from_slice(body)?),
            5 => Msg::Dead(rmp_serde::from_slice(body)?),
            8 => Msg::User(decode_serf(body)?),
            t => return Err(format!("message type {t}").into()),
        })
    }

    fn with_type(t: u8, body: &impl Serialize) -> Vec<u8> {
        let mut out = vec![t];
        rmp_serde::encode::write_named(&mut out, body).unwrap();
        out
    }

    pub fn encode_serf(m: &Serf) -> Vec<u8> {
        match m {
            Serf::Leave(b) => with_type(0, b),
            Serf::Join(b) => with_type(1, b),
            Serf::UserEvent(b) => with_type(3, b),
            Serf::Other(b) => b.clone(),
        }
    }

    pub fn encode(m: &Msg) -> Vec<u8> {
        match m {
            Msg::Ping(b) => with_type(0, b),
            Msg::Ack(b) => with_type(2, b),
            Msg::Suspect(b) => with_type(3, b),
            Msg::Alive(b) => with_type(4, b),
            Msg::Dead(b) => with_type(5, b),
            Msg::User(s) => {
                let mut out = vec![8];
                out.extend_from_slice(&encode_serf(s));
                out
            }
        }
    }

    /// A compound (or a single message) into owned messages.
    pub fn decode_compound(bytes: &[u8]) -> Result<Vec<Msg>, Error> {
        if bytes.first() != Some(&7) {
            return Ok(vec![decode(bytes)?]);
        }
        let n = usize::from(*bytes.get(1).ok_or("truncated")?);
        let table = bytes.get(2..2 + 2 * n).ok_or("truncated")?;
        let lens: Vec<usize> =
            table.chunks(2).map(|c| usize::from(u16::from_be_bytes([c[0], c[1]]))).collect();
        let mut pos = 2 + 2 * n;
        let mut out = Vec::new();
        for len in lens {
            out.push(decode(bytes.get(pos..pos + len).ok_or("truncated")?)?);
            pos += len;
        }
        Ok(out)
    }

    pub fn encode_compound(msgs: &[Msg]) -> Vec<u8> {
        let parts: Vec<Vec<u8>> = msgs.iter().map(encode).collect();
        let mut out = vec![7, parts.len() as u8];
        for p in &parts {
            out.extend_from_slice(&(p.len() as u16).to_be_bytes());
        }
        for p in &parts {
            out.extend_from_slice(p);
        }
        out
    }

    /// Encodes and seals a datagram: compound, LZW (if smaller), CRC,
    /// AES-256-GCM version 1, each layer in a fresh `Vec`.
    pub fn seal(msgs: &[Msg], key: &[u8; 32], nonce: [u8; 12]) -> Vec<u8> {
        let payload = encode_compound(msgs);
        let lzw = weezl::encode::Encoder::new(weezl::BitOrder::Lsb, 8).encode(&payload).unwrap();
        let compressed = with_type(9, &Compress { algo: 0, buf: Some(lzw) });
        let payload = if compressed.len() < payload.len() { compressed } else { payload };
        let mut crc = vec![12];
        crc.extend_from_slice(&crc32fast::hash(&payload).to_be_bytes());
        crc.extend_from_slice(&payload);
        let cipher = Aes256Gcm::new(key.into());
        let sealed = cipher.encrypt(Nonce::from_slice(&nonce), &crc[..]).unwrap();
        let mut out = vec![1];
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// Opens a sealed datagram into owned messages.
    pub fn open(packet: &[u8], key: &[u8; 32]) -> Result<Vec<Msg>, Error> {
        if packet.len() < 29 || packet[0] != 1 {
            return Err("not a version 1 envelope".into());
        }
        let cipher = Aes256Gcm::new(key.into());
        let plain = cipher
            .decrypt(Nonce::from_slice(&packet[1..13]), &packet[13..])
            .map_err(|_| "decryption failed")?;
        let payload = if plain.first() == Some(&12) {
            let crc = u32::from_be_bytes(plain.get(1..5).ok_or("truncated")?.try_into()?);
            let rest = plain[5..].to_vec();
            if crc32fast::hash(&rest) != crc {
                return Err("bad CRC".into());
            }
            rest
        } else {
            plain
        };
        let payload = if payload.first() == Some(&9) {
            let c: Compress = rmp_serde::from_slice(&payload[1..])?;
            weezl::decode::Decoder::new(weezl::BitOrder::Lsb, 8)
                .decode(&c.buf.unwrap_or_default())?
        } else {
            payload
        };
        decode_compound(&payload)
    }

    /// A push-pull stream body: header, node states, Serf user state.
    pub fn decode_push_pull(
        bytes: &[u8],
    ) -> Result<(PushPullHeader, Vec<PushNodeState>, SerfPushPull), Error> {
        let (&t, mut rd) = bytes.split_first().ok_or("empty")?;
        if t != 6 {
            return Err("not a push-pull".into());
        }
        let header: PushPullHeader = rmp_serde::from_read(&mut rd)?;
        let mut states = Vec::new();
        for _ in 0..header.nodes {
            states.push(rmp_serde::from_read(&mut rd)?);
        }
        let user = rd.get(1..).ok_or("no user state")?;
        Ok((header, states, rmp_serde::from_slice(user)?))
    }

    pub fn encode_push_pull(join: bool, states: &[PushNodeState], user: &SerfPushPull) -> Vec<u8> {
        let user = with_type(2, user);
        let header =
            PushPullHeader { join, nodes: states.len() as i64, user_state_len: user.len() as i64 };
        let mut out = with_type(6, &header);
        for s in states {
            rmp_serde::encode::write_named(&mut out, s).unwrap();
        }
        out.extend_from_slice(&user);
        out
    }
}

// ---------------------------------------------------------------------------
// Our side of each case

/// Encodes `msgs` as a compound into `out`; returns its length.
fn encode_compound(msgs: &[Message<'_>], scratch: &mut [u8], out: &mut [u8]) -> usize {
    let mut ends = [0usize; 128];
    let mut pos = 0;
    for (i, m) in msgs.iter().enumerate() {
        let mut w = Writer::new(&mut scratch[pos..], Dialect::Gossip);
        m.encode(&mut w).unwrap();
        pos += w.len();
        ends[i + 1] = pos;
    }
    let mut parts: [&[u8]; 127] = [&[]; 127];
    for i in 0..msgs.len() {
        parts[i] = &scratch[ends[i]..ends[i + 1]];
    }
    write_compound(out, &parts[..msgs.len()]).unwrap()
}

/// What a receiver reads out of every message: its fields, and the Serf
/// message inside a user message.
fn consume(m: Message<'_>) {
    match m {
        Message::User(body) => {
            black_box(SerfMessage::decode(body).unwrap());
        }
        m => {
            black_box(m);
        }
    }
}

// ---------------------------------------------------------------------------
// The 1000-node push-pull

const NODES: usize = 1000;

struct Cluster {
    names: Vec<String>,
    addrs: Vec<[u8; 4]>,
    metas: Vec<Vec<u8>>,
}

impl Cluster {
    fn new() -> Self {
        let names: Vec<String> = (0..NODES).map(|i| format!("node-{i:04}.dc1.example")).collect();
        let metas = (0..NODES)
            .map(|i| {
                let role = ["web", "db", "cache", "worker"][i % 4];
                let tags = [("role", role), ("dc", "dc1"), ("rack", "r12")];
                let mut buf = [0u8; 128];
                let mut w = Writer::new(&mut buf, Dialect::Gossip);
                write_tags(&mut w, tags.into_iter()).unwrap();
                w.written().to_vec()
            })
            .collect();
        let addrs = (0..NODES).map(|i| [10, 0, (i >> 8) as u8, i as u8]).collect();
        Cluster { names, addrs, metas }
    }

    fn states(&self) -> Vec<PushNodeState<'_>> {
        (0..NODES)
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

    /// Writes the Serf push-pull user state (type byte included).
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
                write_event_bucket(w, 4000 + slot, Some(events.into_iter()))?;
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
        w.map_len(NODES)?;
        for (i, name) in self.names.iter().enumerate() {
            w.str(name)?;
            w.uint(8000 + i as u64)?;
        }
        Ok(())
    }

    /// Encodes the push-pull stream body into `out` using `scratch` for the
    /// user state; returns its length.
    fn encode(&self, states: &[PushNodeState<'_>], scratch: &mut [u8], out: &mut [u8]) -> usize {
        let mut w = Writer::new(scratch, Dialect::Gossip);
        self.write_serf_state(&mut w).unwrap();
        let user = w.written();
        let mut w = Writer::new(out, Dialect::Gossip);
        PushPull::encode_with(&mut w, false, states.iter().copied(), user).unwrap();
        w.len()
    }
}

/// The baseline's owned copy of a push-pull, from our decoded view.
fn owned_push_pull(bytes: &[u8]) -> (Vec<baseline::PushNodeState>, baseline::SerfPushPull) {
    let StreamMessage::PushPull(pp) = StreamMessage::decode(bytes).unwrap() else { panic!() };
    let states = pp
        .states
        .iter()
        .map(|s| baseline::PushNodeState {
            addr: s.addr.map(<[u8]>::to_vec),
            incarnation: s.incarnation,
            meta: s.meta.map(<[u8]>::to_vec),
            name: s.name.to_owned(),
            port: s.port,
            state: s.state as u8,
            vsn: s.vsn.map(<[u8]>::to_vec),
        })
        .collect();
    let (_, _, user) = baseline::decode_push_pull(bytes).unwrap();
    (states, user)
}

// ---------------------------------------------------------------------------
// Benchmarks

fn group<'a>(c: &'a mut Criterion, name: &str, bytes: usize) -> BenchmarkGroup<'a, WallTime> {
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Bytes(bytes as u64));
    g.sample_size(20);
    g.warm_up_time(Duration::from_millis(400));
    g.measurement_time(Duration::from_millis(1500));
    g
}

fn to_owned_msg(m: &Message<'_>) -> baseline::Msg {
    let s = |v: &str| v.to_owned();
    let b = |v: Option<&[u8]>| v.map(<[u8]>::to_vec);
    match *m {
        Message::Ping(p) => baseline::Msg::Ping(baseline::Ping {
            node: s(p.node),
            seq_no: p.seq_no,
            source_addr: p.source_addr.to_vec(),
            source_node: s(p.source_node),
            source_port: p.source_port,
        }),
        Message::Ack(a) => {
            baseline::Msg::Ack(baseline::Ack { payload: b(a.payload), seq_no: a.seq_no })
        }
        Message::Suspect(x) => baseline::Msg::Suspect(baseline::Accusation {
            from: s(x.from),
            incarnation: x.incarnation,
            node: s(x.node),
        }),
        Message::Dead(x) => baseline::Msg::Dead(baseline::Accusation {
            from: s(x.from),
            incarnation: x.incarnation,
            node: s(x.node),
        }),
        Message::Alive(a) => baseline::Msg::Alive(baseline::Alive {
            addr: b(a.addr),
            incarnation: a.incarnation,
            meta: b(a.meta),
            node: s(a.node),
            port: a.port,
            vsn: b(a.vsn),
        }),
        Message::User(body) => baseline::Msg::User(match SerfMessage::decode(body).unwrap() {
            SerfMessage::Join(j) => {
                baseline::Serf::Join(baseline::Join { ltime: j.ltime, node: s(j.node) })
            }
            SerfMessage::Leave(l) => baseline::Serf::Leave(baseline::Leave {
                ltime: l.ltime,
                node: s(l.node),
                prune: l.prune,
            }),
            SerfMessage::UserEvent(e) => baseline::Serf::UserEvent(baseline::UserEvent {
                cc: e.cc,
                ltime: e.ltime,
                name: s(e.name),
                payload: b(e.payload),
            }),
            _ => baseline::Serf::Other(body.to_vec()),
        }),
        _ => panic!("no baseline for {m:?}"),
    }
}

fn bench_ping(c: &mut Criterion) {
    let bytes = example("memberlist 0 ping");
    let ours = Message::decode(&bytes).unwrap();
    let theirs = baseline::decode(&bytes).unwrap();
    assert_eq!(theirs, to_owned_msg(&ours), "baseline reads the captured ping differently");
    let mut out = vec![0u8; 256];

    let mut g = group(c, "a_ping_decode", bytes.len());
    g.bench_function("ours", |b| b.iter(|| Message::decode(black_box(&bytes)).unwrap()));
    g.bench_function("baseline", |b| b.iter(|| baseline::decode(black_box(&bytes)).unwrap()));
    g.finish();

    let Message::Ping(view) = ours else { panic!() };
    let n = view.encode_to(&mut out).unwrap();
    assert_eq!(&out[..n], &bytes[..]);
    let mut g = group(c, "a_ping_encode", bytes.len());
    g.bench_function("ours", |b| b.iter(|| black_box(&view).encode_to(&mut out).unwrap()));
    g.bench_function("baseline", |b| b.iter(|| baseline::encode(black_box(&theirs))));
    g.finish();
}

fn bench_alive(c: &mut Criterion) {
    let bytes = example("memberlist 4 alive");
    let ours = Message::decode(&bytes).unwrap();
    let Message::Alive(view) = ours else { panic!() };
    let theirs = baseline::decode(&bytes).unwrap();
    assert_eq!(theirs, to_owned_msg(&ours), "baseline reads the captured alive differently");
    // A plain Vec<u8> field cannot read Go's raw-string bytes.
    assert!(rmp_serde::from_slice::<baseline::NaiveAlive>(&bytes[1..]).is_err());
    let meta = view.meta.unwrap();
    let tags: Vec<(&str, &str)> = Tags::decode(meta).unwrap().iter().collect();
    assert_eq!(tags, [("role", "web")]);
    let their_tags: HashMap<String, String> = rmp_serde::from_slice(&meta[1..]).unwrap();
    assert_eq!(their_tags.len(), 1);

    let mut g = group(c, "b_alive_decode", bytes.len());
    g.bench_function("ours", |b| {
        b.iter(|| {
            let Message::Alive(a) = Message::decode(black_box(&bytes)).unwrap() else { panic!() };
            for t in Tags::decode(a.meta.unwrap_or(&[])).unwrap().iter() {
                black_box(t);
            }
            a
        })
    });
    g.bench_function("baseline", |b| {
        b.iter(|| {
            let baseline::Msg::Alive(a) = baseline::decode(black_box(&bytes)).unwrap() else {
                panic!()
            };
            let tags: HashMap<String, String> =
                rmp_serde::from_slice(&a.meta.as_deref().unwrap_or(&[0xff, 0x80])[1..]).unwrap();
            (a, tags)
        })
    });
    g.finish();

    // Encode: tags into meta, then the alive around it.
    let mut meta_buf = [0u8; 512];
    let mut out = vec![0u8; 1024];
    let mut encode_ours = |out: &mut [u8]| {
        let mut w = Writer::new(&mut meta_buf, Dialect::Gossip);
        write_tags(&mut w, black_box(&tags).iter().copied()).unwrap();
        let n = w.len();
        Alive { meta: Some(&meta_buf[..n]), ..view }.encode_to(out).unwrap()
    };
    let n = encode_ours(&mut out);
    assert_eq!(&out[..n], &bytes[..]);
    let mut their_alive = theirs;
    let mut g = group(c, "b_alive_encode", bytes.len());
    g.bench_function("ours", |b| b.iter(|| encode_ours(&mut out)));
    g.bench_function("baseline", |b| {
        b.iter(|| {
            let mut meta = vec![0xff];
            rmp_serde::encode::write_named(&mut meta, black_box(&their_tags)).unwrap();
            if let baseline::Msg::Alive(a) = &mut their_alive {
                a.meta = Some(meta);
            }
            baseline::encode(&their_alive)
        })
    });
    g.finish();
}

/// Captured leaves for compounds: ping, then alive/suspect/dead (and Serf
/// join user messages when `user`), cycled to `n` messages.
fn leaves(n: usize, user: bool) -> Vec<Vec<u8>> {
    let mut kinds = vec!["memberlist 4 alive", "memberlist 3 suspect", "memberlist 5 dead"];
    if user {
        kinds.push("memberlist 8 user");
    }
    let mut out = vec![example("memberlist 0 ping")];
    out.extend(kinds.iter().cycle().take(n - 1).map(|k| example(k)));
    out
}

fn bench_compound(c: &mut Criterion) {
    let parts = leaves(9, false);
    let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    let mut compound = vec![0u8; 4096];
    let n = write_compound(&mut compound, &refs).unwrap();
    compound.truncate(n);
    let views: Vec<Message<'_>> = parts.iter().map(|p| Message::decode(p).unwrap()).collect();
    let theirs = baseline::decode_compound(&compound).unwrap();
    assert_eq!(theirs, views.iter().map(to_owned_msg).collect::<Vec<_>>());
    let mut codec = PacketCodec::new();

    let mut g = group(c, "c_compound_decode", compound.len());
    g.bench_function("ours", |b| {
        b.iter(|| codec.walk(black_box(&compound), &mut |m| consume(m.unwrap())))
    });
    g.bench_function("baseline", |b| {
        b.iter(|| baseline::decode_compound(black_box(&compound)).unwrap())
    });
    g.finish();

    let mut scratch = vec![0u8; 4096];
    let mut out = vec![0u8; 4096];
    let n = encode_compound(&views, &mut scratch, &mut out);
    assert_eq!(&out[..n], &compound[..]);
    let mut g = group(c, "c_compound_encode", compound.len());
    g.bench_function("ours", |b| {
        b.iter(|| encode_compound(black_box(&views), &mut scratch, &mut out))
    });
    g.bench_function("baseline", |b| b.iter(|| baseline::encode_compound(black_box(&theirs))));
    g.finish();
}

fn bench_push_pull(c: &mut Criterion) {
    let cluster = Cluster::new();
    let states = cluster.states();
    let mut scratch = vec![0u8; 1 << 20];
    let mut out = vec![0u8; 1 << 20];
    let n = cluster.encode(&states, &mut scratch, &mut out);
    let bytes = out[..n].to_vec();
    let (their_states, their_user) = owned_push_pull(&bytes);
    assert_eq!(their_states.len(), NODES);
    assert_eq!(their_states[999].name, "node-0999.dc1.example");
    assert_eq!(their_user.status_ltimes.as_ref().unwrap().len(), NODES);
    assert_eq!(their_user.events.as_ref().unwrap().len(), 512);

    let decode_ours = |bytes: &[u8]| {
        let StreamMessage::PushPull(pp) = StreamMessage::decode(bytes).unwrap() else { panic!() };
        let mut incarnations = 0u64;
        for s in pp.states.iter() {
            incarnations += u64::from(s.incarnation);
            black_box(s);
        }
        let SerfMessage::PushPull(user) = SerfMessage::decode(pp.user_state).unwrap() else {
            panic!()
        };
        for (name, ltime) in user.status_ltimes.unwrap().iter() {
            black_box((name, ltime));
        }
        for e in user.events.unwrap().iter().flatten() {
            black_box(e);
        }
        incarnations
    };
    assert_eq!(
        decode_ours(&bytes),
        their_states.iter().map(|s| u64::from(s.incarnation)).sum::<u64>()
    );

    let mut g = group(c, "d_push_pull_1000_decode", bytes.len());
    g.bench_function("ours", |b| b.iter(|| decode_ours(black_box(&bytes))));
    g.bench_function("baseline", |b| {
        b.iter(|| baseline::decode_push_pull(black_box(&bytes)).unwrap())
    });
    g.finish();

    let mut g = group(c, "d_push_pull_1000_encode", bytes.len());
    g.bench_function("ours", |b| {
        b.iter(|| cluster.encode(black_box(&states), &mut scratch, &mut out))
    });
    g.bench_function("baseline", |b| {
        b.iter(|| baseline::encode_push_pull(false, black_box(&their_states), &their_user))
    });
    g.finish();
}

fn bench_udp_pipeline(c: &mut Criterion) {
    let parts = leaves(30, true);
    let views: Vec<Message<'_>> = parts.iter().map(|p| Message::decode(p).unwrap()).collect();
    let theirs: Vec<baseline::Msg> = views.iter().map(to_owned_msg).collect();
    let key = [0x42u8; 32];
    let nonce = [7u8; 12];
    let ring = Keyring::new(&key).unwrap();
    let opts = SealOptions { compress: true, crc: true };
    let (mut tx, mut rx) = (PacketCodec::new(), PacketCodec::new());
    let mut scratch = vec![0u8; PACKET_BUF];
    let mut buf = vec![0u8; PACKET_BUF];
    let mut packet = vec![0u8; PACKET_BUF];

    let mut seal_ours = |buf: &mut [u8]| {
        let n = encode_compound(&views, &mut scratch, &mut buf[HEADROOM..]);
        tx.seal(buf, n, opts, Some(&ring), nonce).unwrap()
    };
    let sealed = seal_ours(&mut buf);
    let datagram = buf[sealed].to_vec();
    let payload_len = 2 + 2 * parts.len() + parts.iter().map(Vec::len).sum::<usize>();
    assert!((1100..1300).contains(&payload_len), "{payload_len}");
    // Both directions read each other's datagrams.
    assert_eq!(baseline::open(&datagram, &key).unwrap(), theirs);
    let their_datagram = baseline::seal(&theirs, &key, nonce);
    let mut copy = their_datagram.clone();
    let range = PacketCodec::open(&mut copy, Some(&ring)).unwrap();
    let mut walked = Vec::new();
    rx.walk(&copy[range], &mut |m| walked.push(to_owned_msg(&m.unwrap())));
    assert_eq!(walked, theirs);

    let mut g = group(c, "e_udp_seal", payload_len);
    g.bench_function("ours", |b| b.iter(|| seal_ours(&mut buf)));
    g.bench_function("baseline", |b| b.iter(|| baseline::seal(black_box(&theirs), &key, nonce)));
    g.finish();

    let mut open_ours = |packet: &mut [u8]| {
        packet[..datagram.len()].copy_from_slice(&datagram);
        let range = PacketCodec::open(&mut packet[..datagram.len()], Some(&ring)).unwrap();
        let mut n = 0;
        rx.walk(&packet[range], &mut |m| {
            consume(m.unwrap());
            n += 1;
        });
        n
    };
    assert_eq!(open_ours(&mut packet), parts.len());
    let mut g = group(c, "e_udp_open", payload_len);
    g.bench_function("ours", |b| b.iter(|| open_ours(&mut packet)));
    g.bench_function("baseline", |b| {
        b.iter(|| baseline::open(black_box(&datagram), &key).unwrap())
    });
    g.finish();
}

criterion_group!(
    benches,
    bench_ping,
    bench_alive,
    bench_compound,
    bench_push_pull,
    bench_udp_pipeline
);
criterion_main!(benches);
