//! Property tests for the wire codec: arbitrary *valid* messages of every
//! kind round-trip, and so do whole datagrams and streams.
//!
//! Each message is generated as an owned model, encoded through the codec's
//! writers (views and the `write_*` helpers), decoded, compared with the
//! model, and encoded again: the second encoding must be the same bytes.
//! Every encoding is also checked against the counting writer's length and
//! must fail with [`Error::NoSpace`] in a buffer one byte short.
//!
//! Strings are arbitrary Unicode, with lengths straddling the msgpack format
//! edges (31/32 fixstr→str16, 255/256 str8→str16 in the RPC dialect, and
//! 65535/65536 str16→str32) for names and payloads.

use proptest::collection::vec as pvec;
use proptest::prelude::*;

use wire::coordinate::{Coordinate, PING_PAYLOAD_LEN};
use wire::crypto::Keyring;
use wire::memberlist::{
    compress_message_len, Ack, Alive, Body, Compress, Dead, ErrResp, IndirectPing, Message, Nack,
    NodeState, Ping, PushNodeState, PushPull, Suspect, UserMsgHeader, MAX_PUSH_STATE_BYTES,
};
use wire::msgpack::{encoded_len, Dialect, Writer};
use wire::packet::{
    write_compound, PacketCodec, SealOptions, HEADROOM, MAX_COMPOUND_PARTS, MAX_DATAGRAM, TAILROOM,
};
use wire::serf::{
    self, write_event_bucket, write_node_filter, write_str_list, write_tag_filter, write_tags,
    BufferedEvent, ConflictResponse, Filter, Join, KeyRequest, KeyResponse, Leave, Member,
    QueryResponse, Relay, SerfMessage, SerfType, Tags, UdpAddr, UserEvent,
};
use wire::stream::{frame_len, StreamCodec, StreamMessage};
use wire::{Error, Result};

// ---------------------------------------------------------------------------
// Encoding helper

/// Encodes with `f` into a marker-filled buffer and checks the contract of
/// every encoder: the counting writer predicts the length, nothing is
/// written past it, and one byte less is [`Error::NoSpace`].
fn enc(f: impl Fn(&mut Writer<'_>) -> Result<()>) -> Vec<u8> {
    let n = encoded_len(Dialect::Gossip, &f).unwrap();
    let mut buf = vec![0xA5u8; n + 16];
    let mut w = Writer::new(&mut buf, Dialect::Gossip);
    f(&mut w).unwrap();
    assert_eq!(w.len(), n, "counting writer disagrees with the real one");
    assert!(buf[n..].iter().all(|&b| b == 0xA5), "wrote past the encoded length");
    buf.truncate(n);
    if n > 0 {
        let mut short = vec![0u8; n - 1];
        assert_eq!(f(&mut Writer::new(&mut short, Dialect::Gossip)), Err(Error::NoSpace));
    }
    buf
}

// ---------------------------------------------------------------------------
// Strings and bytes

/// Byte lengths on both sides of the msgpack string format edges.
const EDGES: [usize; 6] = [31, 32, 255, 256, 65_535, 65_536];
/// The edges that still fit many times in one datagram.
const SMALL_EDGES: [usize; 4] = [31, 32, 255, 256];

/// Short arbitrary UTF-8 (any scalar value, control characters included).
fn short_text() -> impl Strategy<Value = String> {
    pvec(any::<char>(), 0..12).prop_map(|c| c.into_iter().collect())
}

/// A string of exactly `len` bytes: arbitrary characters, padded with ASCII.
fn text_of_len(len: usize) -> impl Strategy<Value = String> {
    pvec(any::<char>(), 0..8).prop_map(move |chars| {
        let mut s = String::with_capacity(len);
        for c in chars {
            if s.len() + c.len_utf8() <= len {
                s.push(c);
            }
        }
        while s.len() < len {
            s.push('n');
        }
        s
    })
}

/// Names and payload strings: mostly short, sometimes exactly at an edge.
fn text(edges: &'static [usize]) -> BoxedStrategy<String> {
    prop_oneof![
        4 => short_text(),
        1 => prop::sample::select(edges).prop_flat_map(text_of_len),
    ]
    .boxed()
}

/// `n` pseudo-random bytes from a seed (cheaper than a strategy per byte).
fn filled(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(167).wrapping_add(seed) ^ (i >> 8) as u8).collect()
}

/// Byte payloads: short random, or exactly at an edge.
fn blob(edges: &'static [usize]) -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        4 => pvec(any::<u8>(), 0..40),
        1 => (prop::sample::select(edges), any::<u8>()).prop_map(|(n, s)| filled(n, s)),
    ]
    .boxed()
}

/// A Go `[]byte` that may be nil; `Some(empty)` comes from the blob strategy.
fn opt_blob(edges: &'static [usize]) -> BoxedStrategy<Option<Vec<u8>>> {
    prop::option::weighted(0.8, blob(edges)).boxed()
}

/// An IP field: empty, IPv4 or IPv6.
fn ip() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![Just(Vec::new()), pvec(any::<u8>(), 4), pvec(any::<u8>(), 16)]
}

fn opt_ip() -> impl Strategy<Value = Option<Vec<u8>>> {
    prop::option::weighted(0.8, ip())
}

fn vsn() -> impl Strategy<Value = Option<[u8; 6]>> {
    prop::option::weighted(0.8, any::<[u8; 6]>())
}

/// Tag maps small enough that their meta stays under 512 bytes.
fn tag_list() -> impl Strategy<Value = Vec<(String, String)>> {
    pvec((short_text(), short_text()), 0..5)
}

fn str_pairs(tags: &[(String, String)]) -> impl ExactSizeIterator<Item = (&str, &str)> {
    tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))
}

/// Node meta: encoded tags, the legacy raw role, or nil; at most 512 bytes.
fn meta() -> impl Strategy<Value = Option<Vec<u8>>> {
    prop_oneof![
        Just(None),
        tag_list().prop_map(|t| Some(enc(|w| write_tags(w, str_pairs(&t))))),
        pvec(any::<u8>(), 0..=512).prop_map(Some),
    ]
    .prop_filter("meta is at most 512 bytes", |m| m.as_ref().is_none_or(|m| m.len() <= 512))
}

fn finite() -> impl Strategy<Value = f64> {
    use prop::num::f64::{NEGATIVE, NORMAL, POSITIVE, SUBNORMAL, ZERO};
    POSITIVE | NEGATIVE | NORMAL | SUBNORMAL | ZERO
}

fn coordinate() -> impl Strategy<Value = Coordinate> {
    (prop::array::uniform8(finite()), finite(), finite(), finite())
        .prop_map(|(vec, error, adjustment, height)| Coordinate { vec, error, adjustment, height })
}

// ---------------------------------------------------------------------------
// memberlist models

/// An owned memberlist leaf message; [`Msg::view`] borrows it as the codec's type.
#[derive(Clone, Debug)]
enum Msg {
    Ping {
        seq: u32,
        node: String,
        saddr: Vec<u8>,
        sport: u16,
        snode: String,
    },
    IndirectPing {
        seq: u32,
        target: Option<Vec<u8>>,
        port: u16,
        node: String,
        nack: bool,
        saddr: Vec<u8>,
        sport: u16,
        snode: String,
    },
    Ack {
        seq: u32,
        payload: Option<Vec<u8>>,
    },
    Nack {
        seq: u32,
    },
    Suspect {
        inc: u32,
        node: String,
        from: String,
    },
    Alive {
        inc: u32,
        node: String,
        addr: Option<Vec<u8>>,
        port: u16,
        meta: Option<Vec<u8>>,
        vsn: Option<[u8; 6]>,
    },
    Dead {
        inc: u32,
        node: String,
        from: String,
    },
    /// A Serf message as a memberlist user message.
    User(Vec<u8>),
}

impl Msg {
    fn view(&self) -> Message<'_> {
        match self {
            Msg::Ping { seq, node, saddr, sport, snode } => Message::Ping(Ping {
                seq_no: *seq,
                node,
                source_addr: saddr,
                source_port: *sport,
                source_node: snode,
            }),
            Msg::IndirectPing { seq, target, port, node, nack, saddr, sport, snode } => {
                Message::IndirectPing(IndirectPing {
                    seq_no: *seq,
                    target: target.as_deref(),
                    port: *port,
                    node,
                    nack: *nack,
                    source_addr: saddr,
                    source_port: *sport,
                    source_node: snode,
                })
            }
            Msg::Ack { seq, payload } => {
                Message::Ack(Ack { seq_no: *seq, payload: payload.as_deref() })
            }
            Msg::Nack { seq } => Message::Nack(Nack { seq_no: *seq }),
            Msg::Suspect { inc, node, from } => {
                Message::Suspect(Suspect { incarnation: *inc, node, from })
            }
            Msg::Alive { inc, node, addr, port, meta, vsn } => Message::Alive(Alive {
                incarnation: *inc,
                node,
                addr: addr.as_deref(),
                port: *port,
                meta: meta.as_deref(),
                vsn: vsn.as_ref().map(|v| &v[..]),
            }),
            Msg::Dead { inc, node, from } => Message::Dead(Dead { incarnation: *inc, node, from }),
            Msg::User(b) => Message::User(b),
        }
    }
}

fn ack_payload(edges: &'static [usize]) -> impl Strategy<Value = Option<Vec<u8>>> {
    prop_oneof![
        Just(None),
        Just(Some(Vec::new())),
        blob(edges).prop_map(Some),
        coordinate().prop_map(|c| Some(enc(|w| c.encode_ping_payload(w)))),
    ]
}

/// A memberlist leaf message. `edges` bounds the long names and payloads;
/// `user` generates the Serf messages carried in user messages.
fn msg(edges: &'static [usize], user: BoxedStrategy<SMsg>) -> BoxedStrategy<Msg> {
    let t = move || text(edges);
    prop_oneof![
        (any::<u32>(), t(), ip(), any::<u16>(), t()).prop_map(
            |(seq, node, saddr, sport, snode)| { Msg::Ping { seq, node, saddr, sport, snode } }
        ),
        (any::<u32>(), opt_ip(), any::<u16>(), t(), any::<bool>(), ip(), any::<u16>(), t())
            .prop_map(|(seq, target, port, node, nack, saddr, sport, snode)| {
                Msg::IndirectPing { seq, target, port, node, nack, saddr, sport, snode }
            }),
        (any::<u32>(), ack_payload(edges)).prop_map(|(seq, payload)| Msg::Ack { seq, payload }),
        any::<u32>().prop_map(|seq| Msg::Nack { seq }),
        (any::<u32>(), t(), t()).prop_map(|(inc, node, from)| Msg::Suspect { inc, node, from }),
        (any::<u32>(), t(), opt_ip(), any::<u16>(), meta(), vsn()).prop_map(
            |(inc, node, addr, port, meta, vsn)| Msg::Alive { inc, node, addr, port, meta, vsn }
        ),
        (any::<u32>(), t(), t()).prop_map(|(inc, node, from)| Msg::Dead { inc, node, from }),
        user.prop_map(|s| Msg::User(s.encode())),
    ]
    .boxed()
}

#[derive(Clone, Debug)]
struct StateModel {
    name: String,
    addr: Option<Vec<u8>>,
    port: u16,
    meta: Option<Vec<u8>>,
    inc: u32,
    state: NodeState,
    vsn: Option<[u8; 6]>,
}

impl StateModel {
    fn view(&self) -> PushNodeState<'_> {
        PushNodeState {
            name: &self.name,
            addr: self.addr.as_deref(),
            port: self.port,
            meta: self.meta.as_deref(),
            incarnation: self.inc,
            state: self.state,
            vsn: self.vsn.as_ref().map(|v| &v[..]),
        }
    }
}

fn node_state(edges: &'static [usize]) -> impl Strategy<Value = StateModel> {
    let state = prop::sample::select(vec![
        NodeState::Alive,
        NodeState::Suspect,
        NodeState::Dead,
        NodeState::Left,
    ]);
    (text(edges), opt_ip(), any::<u16>(), meta(), any::<u32>(), state, vsn()).prop_map(
        |(name, addr, port, meta, inc, state, vsn)| StateModel {
            name,
            addr,
            port,
            meta,
            inc,
            state,
            vsn,
        },
    )
}

#[derive(Clone, Debug)]
struct PushPullModel {
    join: bool,
    states: Vec<StateModel>,
    /// Raw user state: random bytes or an encoded Serf push-pull.
    user: Vec<u8>,
    /// The Serf push-pull in `user`, if that is what it holds.
    serf: Option<SMsg>,
}

impl PushPullModel {
    fn encode(&self, w: &mut Writer<'_>) -> Result<()> {
        PushPull::encode_with(w, self.join, self.states.iter().map(StateModel::view), &self.user)
    }

    fn check(&self, got: &PushPull<'_>) {
        assert_eq!(got.join, self.join);
        assert_eq!(got.states.len(), self.states.len());
        let want: Vec<_> = self.states.iter().map(StateModel::view).collect();
        assert_eq!(got.states.iter().collect::<Vec<_>>(), want);
        assert_eq!(got.user_state, &self.user[..]);
    }
}

fn push_pull(edges: &'static [usize]) -> impl Strategy<Value = PushPullModel> {
    let user = prop_oneof![
        blob(edges).prop_map(|b| (b, None)),
        serf_push_pull().prop_map(|p| {
            let m = SMsg::PushPull(p);
            (m.encode(), Some(m))
        }),
    ];
    (any::<bool>(), pvec(node_state(edges), 0..50), user)
        .prop_map(|(join, states, (user, serf))| PushPullModel { join, states, user, serf })
}

// ---------------------------------------------------------------------------
// Serf models

#[derive(Clone, Debug, PartialEq, Eq)]
enum FilterModel {
    Node(Vec<String>),
    Tag { tag: String, expr: String },
}

impl FilterModel {
    fn encode(&self) -> Vec<u8> {
        match self {
            FilterModel::Node(names) => {
                enc(|w| write_node_filter(w, names.iter().map(String::as_str)))
            }
            FilterModel::Tag { tag, expr } => enc(|w| write_tag_filter(w, tag, expr)),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct QueryModel {
    ltime: u64,
    id: u32,
    addr: Option<Vec<u8>>,
    port: u16,
    source_node: String,
    filters: Option<Vec<FilterModel>>,
    flags: u32,
    relay_factor: u8,
    timeout_ns: i64,
    name: String,
    payload: Option<Vec<u8>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct MemberModel {
    name: String,
    addr: Option<Vec<u8>>,
    port: u16,
    tags: Option<Vec<(String, String)>>,
    status: i64,
    versions: [u8; 6],
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct EventModel {
    name: String,
    payload: Option<Vec<u8>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct BucketModel {
    ltime: u64,
    events: Option<Vec<EventModel>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct SerfPushPullModel {
    ltime: u64,
    status_ltimes: Option<Vec<(String, u64)>>,
    left_members: Option<Vec<String>>,
    event_ltime: u64,
    events: Option<Vec<Option<BucketModel>>>,
    query_ltime: u64,
}

/// An owned Serf message. Decoded messages are turned back into models with
/// [`SMsg::from_view`], so lazy lists and maps compare element by element.
#[derive(Clone, Debug, PartialEq, Eq)]
enum SMsg {
    Leave { ltime: u64, node: String, prune: bool },
    Join { ltime: u64, node: String },
    UserEvent { ltime: u64, name: String, payload: Option<Vec<u8>>, cc: bool },
    Query(QueryModel),
    QueryResponse { ltime: u64, id: u32, from: String, flags: u32, payload: Option<Vec<u8>> },
    Conflict(Option<MemberModel>),
    KeyRequest(Option<Vec<u8>>),
    KeyResponse { result: bool, message: String, keys: Option<Vec<String>>, primary: String },
    Relay { ip: Option<Vec<u8>>, port: i64, zone: String, name: String, inner: Box<SMsg> },
    PushPull(SerfPushPullModel),
}

fn strs(v: &[String]) -> impl ExactSizeIterator<Item = &str> {
    v.iter().map(String::as_str)
}

impl SMsg {
    /// Encodes type byte + body through the codec's writers.
    fn write(&self, w: &mut Writer<'_>) -> Result<()> {
        match self {
            SMsg::Leave { ltime, node, prune } => {
                Leave { ltime: *ltime, node, prune: *prune }.encode(w)
            }
            SMsg::Join { ltime, node } => Join { ltime: *ltime, node }.encode(w),
            SMsg::UserEvent { ltime, name, payload, cc } => {
                UserEvent { ltime: *ltime, name, payload: payload.as_deref(), cc: *cc }.encode(w)
            }
            SMsg::Query(q) => {
                let blobs: Option<Vec<Vec<u8>>> =
                    q.filters.as_ref().map(|f| f.iter().map(FilterModel::encode).collect());
                w.byte(SerfType::Query as u8)?;
                serf::Query {
                    ltime: q.ltime,
                    id: q.id,
                    addr: q.addr.as_deref(),
                    port: q.port,
                    source_node: &q.source_node,
                    filters: None,
                    flags: q.flags,
                    relay_factor: q.relay_factor,
                    timeout_ns: q.timeout_ns,
                    name: &q.name,
                    payload: q.payload.as_deref(),
                }
                .encode_body_with(w, blobs.as_ref().map(|b| b.iter().map(Vec::as_slice)))
            }
            SMsg::QueryResponse { ltime, id, from, flags, payload } => QueryResponse {
                ltime: *ltime,
                id: *id,
                from,
                flags: *flags,
                payload: payload.as_deref(),
            }
            .encode(w),
            SMsg::Conflict(None) => ConflictResponse { member: None }.encode(w),
            SMsg::Conflict(Some(m)) => {
                w.byte(SerfType::ConflictResponse as u8)?;
                let [pmin, pmax, pcur, dmin, dmax, dcur] = m.versions;
                Member {
                    name: &m.name,
                    addr: m.addr.as_deref(),
                    port: m.port,
                    tags: None,
                    status: m.status,
                    protocol_min: pmin,
                    protocol_max: pmax,
                    protocol_cur: pcur,
                    delegate_min: dmin,
                    delegate_max: dmax,
                    delegate_cur: dcur,
                }
                .encode_with(w, m.tags.as_deref().map(str_pairs))
            }
            SMsg::KeyRequest(key) => KeyRequest { key: key.as_deref() }.encode(w),
            SMsg::KeyResponse { result, message, keys, primary } => {
                w.byte(SerfType::KeyResponse as u8)?;
                KeyResponse { result: *result, message, keys: None, primary_key: primary }
                    .encode_body_with(w, keys.as_deref().map(strs))
            }
            SMsg::Relay { ip, port, zone, name, inner } => {
                let inner = inner.encode();
                Relay {
                    dest_addr: UdpAddr { ip: ip.as_deref(), port: *port, zone },
                    dest_name: name,
                    inner: &inner,
                }
                .encode(w)
            }
            SMsg::PushPull(p) => {
                w.byte(SerfType::PushPull as u8)?;
                w.map_len(6)?;
                w.key("EventLTime")?;
                w.uint(p.event_ltime)?;
                w.key("Events")?;
                match &p.events {
                    Some(ring) => {
                        w.array_len(ring.len())?;
                        for slot in ring {
                            match slot {
                                Some(b) => write_event_bucket(
                                    w,
                                    b.ltime,
                                    b.events.as_ref().map(|e| {
                                        e.iter().map(|e| BufferedEvent {
                                            name: &e.name,
                                            payload: e.payload.as_deref(),
                                        })
                                    }),
                                )?,
                                None => w.nil()?,
                            }
                        }
                    }
                    None => w.nil()?,
                }
                w.key("LTime")?;
                w.uint(p.ltime)?;
                w.key("LeftMembers")?;
                match &p.left_members {
                    Some(l) => write_str_list(w, strs(l))?,
                    None => w.nil()?,
                }
                w.key("QueryLTime")?;
                w.uint(p.query_ltime)?;
                w.key("StatusLTimes")?;
                match &p.status_ltimes {
                    Some(m) => {
                        w.map_len(m.len())?;
                        for (k, v) in m {
                            w.str(k)?;
                            w.uint(*v)?;
                        }
                        Ok(())
                    }
                    None => w.nil(),
                }
            }
        }
    }

    fn encode(&self) -> Vec<u8> {
        enc(|w| self.write(w))
    }

    fn from_view(m: &SerfMessage<'_>) -> SMsg {
        let bytes = |b: Option<&[u8]>| b.map(<[u8]>::to_vec);
        let names = |l: serf::StrList<'_>| l.iter().map(String::from).collect::<Vec<_>>();
        let pairs = |m: serf::StrMap<'_>| {
            m.iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect::<Vec<_>>()
        };
        match *m {
            SerfMessage::Leave(l) => {
                SMsg::Leave { ltime: l.ltime, node: l.node.into(), prune: l.prune }
            }
            SerfMessage::Join(j) => SMsg::Join { ltime: j.ltime, node: j.node.into() },
            SerfMessage::UserEvent(e) => SMsg::UserEvent {
                ltime: e.ltime,
                name: e.name.into(),
                payload: bytes(e.payload),
                cc: e.cc,
            },
            SerfMessage::Query(q) => SMsg::Query(QueryModel {
                ltime: q.ltime,
                id: q.id,
                addr: bytes(q.addr),
                port: q.port,
                source_node: q.source_node.into(),
                filters: q.filters.map(|_| {
                    q.filters()
                        .map(|f| match f.unwrap() {
                            Filter::Node(l) => FilterModel::Node(names(l)),
                            Filter::Tag { tag, expr } => {
                                FilterModel::Tag { tag: tag.into(), expr: expr.into() }
                            }
                        })
                        .collect()
                }),
                flags: q.flags,
                relay_factor: q.relay_factor,
                timeout_ns: q.timeout_ns,
                name: q.name.into(),
                payload: bytes(q.payload),
            }),
            SerfMessage::QueryResponse(r) => SMsg::QueryResponse {
                ltime: r.ltime,
                id: r.id,
                from: r.from.into(),
                flags: r.flags,
                payload: bytes(r.payload),
            },
            SerfMessage::ConflictResponse(c) => SMsg::Conflict(c.member.map(|m| MemberModel {
                name: m.name.into(),
                addr: bytes(m.addr),
                port: m.port,
                tags: m.tags.map(pairs),
                status: m.status,
                versions: [
                    m.protocol_min,
                    m.protocol_max,
                    m.protocol_cur,
                    m.delegate_min,
                    m.delegate_max,
                    m.delegate_cur,
                ],
            })),
            SerfMessage::KeyRequest(k) => SMsg::KeyRequest(bytes(k.key)),
            SerfMessage::KeyResponse(k) => SMsg::KeyResponse {
                result: k.result,
                message: k.message.into(),
                keys: k.keys.map(names),
                primary: k.primary_key.into(),
            },
            SerfMessage::Relay(r) => SMsg::Relay {
                ip: bytes(r.dest_addr.ip),
                port: r.dest_addr.port,
                zone: r.dest_addr.zone.into(),
                name: r.dest_name.into(),
                inner: Box::new(SMsg::from_view(&SerfMessage::decode(r.inner).unwrap())),
            },
            SerfMessage::PushPull(p) => SMsg::PushPull(SerfPushPullModel {
                ltime: p.ltime,
                status_ltimes: p
                    .status_ltimes
                    .map(|m| m.iter().map(|(k, v)| (k.to_owned(), v)).collect()),
                left_members: p.left_members.map(names),
                event_ltime: p.event_ltime,
                events: p.events.map(|ring| {
                    ring.iter()
                        .map(|slot| {
                            slot.map(|b| BucketModel {
                                ltime: b.ltime,
                                events: b.events.map(|e| {
                                    e.iter()
                                        .map(|e| EventModel {
                                            name: e.name.into(),
                                            payload: bytes(e.payload),
                                        })
                                        .collect()
                                }),
                            })
                        })
                        .collect()
                }),
                query_ltime: p.query_ltime,
            }),
        }
    }
}

fn filter_model(edges: &'static [usize]) -> impl Strategy<Value = FilterModel> {
    prop_oneof![
        pvec(text(edges), 0..6).prop_map(FilterModel::Node),
        (text(edges), short_text()).prop_map(|(tag, expr)| FilterModel::Tag { tag, expr }),
    ]
}

fn query(edges: &'static [usize]) -> impl Strategy<Value = QueryModel> {
    (
        (any::<u64>(), any::<u32>(), opt_ip(), any::<u16>(), text(edges)),
        prop::option::weighted(0.7, pvec(filter_model(edges), 0..4)),
        (any::<u32>(), any::<u8>(), any::<i64>(), text(edges), opt_blob(edges)),
    )
        .prop_map(
            |(
                (ltime, id, addr, port, source_node),
                filters,
                (flags, relay_factor, timeout_ns, name, payload),
            )| QueryModel {
                ltime,
                id,
                addr,
                port,
                source_node,
                filters,
                flags,
                relay_factor,
                timeout_ns,
                name,
                payload,
            },
        )
}

fn query_response(edges: &'static [usize]) -> impl Strategy<Value = SMsg> {
    (any::<u64>(), any::<u32>(), text(edges), any::<u32>(), opt_blob(edges)).prop_map(
        |(ltime, id, from, flags, payload)| SMsg::QueryResponse { ltime, id, from, flags, payload },
    )
}

fn member(edges: &'static [usize]) -> impl Strategy<Value = MemberModel> {
    (
        text(edges),
        opt_ip(),
        any::<u16>(),
        prop::option::of(tag_list()),
        any::<i64>(),
        any::<[u8; 6]>(),
    )
        .prop_map(|(name, addr, port, tags, status, versions)| MemberModel {
            name,
            addr,
            port,
            tags,
            status,
            versions,
        })
}

fn serf_push_pull() -> impl Strategy<Value = SerfPushPullModel> {
    let event = (short_text(), prop::option::of(pvec(any::<u8>(), 0..20)))
        .prop_map(|(name, payload)| EventModel { name, payload });
    let bucket = (any::<u64>(), prop::option::weighted(0.8, pvec(event, 0..3)))
        .prop_map(|(ltime, events)| BucketModel { ltime, events })
        .boxed();
    // Mostly nil slots, as in a real ring; up to the full 512.
    let ring = prop_oneof![0usize..20, Just(512usize), 0usize..=512]
        .prop_flat_map(move |n| pvec(prop::option::weighted(0.1, bucket.clone()), n));
    (
        any::<u64>(),
        prop::option::weighted(0.9, pvec((short_text(), any::<u64>()), 0..20)),
        prop::option::weighted(0.9, pvec(short_text(), 0..10)),
        any::<u64>(),
        prop::option::weighted(0.9, ring),
        any::<u64>(),
    )
        .prop_map(|(ltime, status_ltimes, left_members, event_ltime, events, query_ltime)| {
            SerfPushPullModel {
                ltime,
                status_ltimes,
                left_members,
                event_ltime,
                events,
                query_ltime,
            }
        })
}

/// A Serf message of any type except push-pull (which travels only in
/// push-pull user state; see [`serf_push_pull`]).
fn serf_msg(edges: &'static [usize]) -> BoxedStrategy<SMsg> {
    let t = move || text(edges);
    prop_oneof![
        (any::<u64>(), t(), any::<bool>()).prop_map(|(ltime, node, prune)| SMsg::Leave {
            ltime,
            node,
            prune
        }),
        (any::<u64>(), t()).prop_map(|(ltime, node)| SMsg::Join { ltime, node }),
        (any::<u64>(), t(), opt_blob(edges), any::<bool>())
            .prop_map(|(ltime, name, payload, cc)| SMsg::UserEvent { ltime, name, payload, cc }),
        query(edges).prop_map(SMsg::Query),
        query_response(edges),
        prop::option::of(member(edges)).prop_map(SMsg::Conflict),
        opt_blob(edges).prop_map(SMsg::KeyRequest),
        (any::<bool>(), t(), prop::option::of(pvec(short_text(), 0..6)), t()).prop_map(
            |(result, message, keys, primary)| SMsg::KeyResponse { result, message, keys, primary }
        ),
        (opt_ip(), any::<i64>(), short_text(), t(), query_response(edges)).prop_map(
            |(ip, port, zone, name, inner)| SMsg::Relay {
                ip,
                port,
                zone,
                name,
                inner: Box::new(inner)
            }
        ),
    ]
    .boxed()
}

// ---------------------------------------------------------------------------
// Single messages

/// Decodes `bytes` as a memberlist message, compares with `want`, and
/// checks that it re-encodes to the same bytes.
fn check_memberlist(want: &Message<'_>, bytes: &[u8]) {
    let got = Message::decode(bytes).unwrap();
    assert_eq!(&got, want);
    assert_eq!(enc(|w| got.encode(w)), bytes);
    if let Message::User(body) = got {
        check_serf_bytes(body);
    }
}

/// Decodes a Serf message and checks that it re-encodes to the same bytes.
fn check_serf_bytes(bytes: &[u8]) -> SMsg {
    let got = SerfMessage::decode(bytes).unwrap();
    assert_eq!(enc(|w| got.encode(w)), bytes);
    SMsg::from_view(&got)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn memberlist_messages_round_trip(m in msg(&EDGES, serf_msg(&EDGES))) {
        let view = m.view();
        let bytes = enc(|w| view.encode(w));
        prop_assert_eq!(bytes[0], view.kind() as u8);
        check_memberlist(&view, &bytes);
    }

    #[test]
    fn serf_messages_round_trip(m in serf_msg(&EDGES)) {
        let bytes = m.encode();
        prop_assert_eq!(check_serf_bytes(&bytes), m);
    }

    #[test]
    fn compress_err_and_user_headers_round_trip(
        algo in any::<u8>(),
        buf in opt_blob(&EDGES),
        error in text(&EDGES),
        user_msg_len in 0..=MAX_PUSH_STATE_BYTES,
    ) {
        let c = Compress { algo, buf: buf.as_deref() };
        let bytes = enc(|w| c.encode(w));
        prop_assert_eq!(Compress::decode(&bytes[1..]).unwrap(), c);
        prop_assert_eq!(enc(|w| Compress::decode(&bytes[1..]).unwrap().encode(w)), bytes.clone());
        if let (0, Some(b)) = (algo, &buf) {
            prop_assert_eq!(compress_message_len(b.len()), bytes.len());
        }

        let e = ErrResp { error: &error };
        let bytes = enc(|w| e.encode(w));
        prop_assert_eq!(ErrResp::decode(&bytes[1..]).unwrap(), e);
        prop_assert_eq!(enc(|w| ErrResp::decode(&bytes[1..]).unwrap().encode(w)), bytes);

        let h = UserMsgHeader { user_msg_len };
        let bytes = enc(|w| h.encode(w));
        prop_assert_eq!(UserMsgHeader::decode(&bytes[1..]).unwrap(), h);
        prop_assert_eq!(enc(|w| UserMsgHeader::decode(&bytes[1..]).unwrap().encode(w)), bytes);
    }

    #[test]
    fn tags_round_trip(tags in tag_list(), legacy in pvec(any::<u8>(), 0..64)) {
        let meta = enc(|w| write_tags(w, str_pairs(&tags)));
        let t = Tags::decode(&meta).unwrap();
        prop_assert_eq!(t.len(), tags.len());
        let got: Vec<(String, String)> =
            t.iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
        prop_assert_eq!(&got, &tags);
        let Tags::Map(m) = t else { panic!("tags decoded as the legacy form") };
        prop_assert_eq!(enc(|w| write_tags(w, m.iter())), meta);

        // Meta without the magic byte is the legacy `role` tag.
        if legacy.first() != Some(&serf::TAG_MAGIC) {
            let t = Tags::decode(&legacy).unwrap();
            prop_assert_eq!(t, Tags::Role(&legacy));
            prop_assert_eq!(t.get("role"), core::str::from_utf8(&legacy).ok());
        }
    }

    #[test]
    fn coordinates_round_trip(c in coordinate()) {
        let bytes = enc(|w| c.encode_ping_payload(w));
        prop_assert_eq!(bytes.len(), PING_PAYLOAD_LEN);
        let got = Coordinate::decode_ping_payload(&bytes).unwrap();
        prop_assert!(got.is_valid());
        prop_assert_eq!(got, c);
        prop_assert_eq!(enc(|w| got.encode_ping_payload(w)), bytes);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn push_pulls_round_trip(p in push_pull(&EDGES)) {
        let bytes = enc(|w| p.encode(w));
        let got = PushPull::decode(&bytes[1..]).unwrap();
        p.check(&got);
        prop_assert_eq!(enc(|w| got.encode(w)), bytes.clone());
        // The same bytes through the stream decoder.
        let StreamMessage::PushPull(s) = StreamMessage::decode(&bytes).unwrap() else {
            panic!("not a push-pull")
        };
        prop_assert_eq!(s, got);
        if let Some(m) = &p.serf {
            prop_assert_eq!(&check_serf_bytes(got.user_state), m);
        }
    }

    #[test]
    fn serf_push_pulls_round_trip(p in serf_push_pull()) {
        let m = SMsg::PushPull(p);
        let bytes = m.encode();
        prop_assert_eq!(check_serf_bytes(&bytes), m);
    }
}

// ---------------------------------------------------------------------------
// Datagrams

/// Encryption for one datagram or stream: the sender's key and nonce, and
/// whether the receiver holds it as a secondary key behind another one.
#[derive(Clone, Debug)]
struct Crypt {
    key: Vec<u8>,
    nonce: [u8; 12],
    rotated: bool,
}

impl Crypt {
    fn rings(&self) -> (Keyring, Keyring) {
        let send = Keyring::new(&self.key).unwrap();
        let recv = if self.rotated {
            let other = vec![!self.key[0]; self.key.len()];
            Keyring::from_keys(&[&other, &self.key]).unwrap()
        } else {
            Keyring::new(&self.key).unwrap()
        };
        (send, recv)
    }
}

fn crypt() -> impl Strategy<Value = Option<Crypt>> {
    let key = prop::sample::select(vec![16usize, 24, 32]).prop_flat_map(|n| pvec(any::<u8>(), n));
    prop::option::of(
        (key, any::<[u8; 12]>(), any::<bool>()).prop_map(|(key, nonce, rotated)| Crypt {
            key,
            nonce,
            rotated,
        }),
    )
}

fn datagram_msgs() -> impl Strategy<Value = Vec<Msg>> {
    pvec(msg(&SMALL_EDGES, serf_msg(&SMALL_EDGES)), 1..=MAX_COMPOUND_PARTS)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn datagrams_round_trip(
        mut msgs in datagram_msgs(),
        bare in any::<bool>(),
        compress in any::<bool>(),
        crc in any::<bool>(),
        crypt in crypt(),
    ) {
        let mut parts: Vec<Vec<u8>> = msgs.iter().map(|m| { let v = m.view(); enc(|w| v.encode(w)) }).collect();
        // Keep the compound within one datagram.
        while parts.len() > 1 && 2 + 2 * parts.len() + parts.iter().map(Vec::len).sum::<usize>() > MAX_DATAGRAM {
            parts.pop();
            msgs.pop();
        }
        let payload = if bare && parts.len() == 1 {
            parts[0].clone()
        } else {
            let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
            let mut out = vec![0u8; MAX_DATAGRAM];
            let n = write_compound(&mut out, &refs).unwrap();
            out.truncate(n);
            out
        };
        let rings = crypt.as_ref().map(Crypt::rings);
        let nonce = crypt.as_ref().map_or([0; 12], |c| c.nonce);

        let mut codec = PacketCodec::new();
        let mut buf = vec![0xEEu8; HEADROOM + payload.len() + TAILROOM];
        buf[HEADROOM..HEADROOM + payload.len()].copy_from_slice(&payload);
        let opts = SealOptions { compress, crc };
        let sealed = codec.seal(&mut buf, payload.len(), opts, rings.as_ref().map(|r| &r.0), nonce).unwrap();
        let sealed_bytes = buf[sealed].to_vec();
        let mut wire = sealed_bytes.clone();
        if crypt.is_none() && !crc && !compress {
            prop_assert_eq!(&wire, &payload);
        }

        // A receiver with its own codec.
        let mut rx = PacketCodec::new();
        let range = PacketCodec::open(&mut wire, rings.as_ref().map(|r| &r.1)).unwrap();
        let opened = wire[range].to_vec();
        let want: Vec<Message<'_>> = msgs.iter().map(Msg::view).collect();
        let mut seen = 0usize;
        rx.walk(&opened, &mut |m| {
            let m = m.unwrap();
            assert_eq!(m, want[seen], "message {seen}");
            assert_eq!(enc(|w| m.encode(w)), parts[seen], "message {seen} re-encoded");
            if let Message::User(body) = m {
                check_serf_bytes(body);
            }
            seen += 1;
        });
        prop_assert_eq!(seen, msgs.len());

        // A keyring without the sender's key does not open it.
        if let Some(c) = &crypt {
            let other = Keyring::new(&vec![!c.key[0]; c.key.len()]).unwrap();
            let mut copy = sealed_bytes.clone();
            prop_assert_eq!(PacketCodec::open(&mut copy, Some(&other)), Err(Error::Decrypt));
        }
    }
}

// ---------------------------------------------------------------------------
// Streams

#[derive(Clone, Debug)]
enum StreamModel {
    /// A ping or an ack.
    Leaf(Msg),
    PushPull(PushPullModel),
    Err(String),
    User(Vec<u8>),
}

impl StreamModel {
    fn encode(&self, w: &mut Writer<'_>) -> Result<()> {
        match self {
            StreamModel::Leaf(m) => m.view().encode(w),
            StreamModel::PushPull(p) => p.encode(w),
            StreamModel::Err(e) => ErrResp { error: e }.encode(w),
            StreamModel::User(b) => StreamMessage::User(b).encode(w),
        }
    }

    fn check(&self, got: &StreamMessage<'_>) {
        match (self, got) {
            (StreamModel::Leaf(m), StreamMessage::Ping(p)) => {
                assert_eq!(m.view(), Message::Ping(*p))
            }
            (StreamModel::Leaf(m), StreamMessage::Ack(a)) => assert_eq!(m.view(), Message::Ack(*a)),
            (StreamModel::PushPull(p), StreamMessage::PushPull(g)) => p.check(g),
            (StreamModel::Err(e), StreamMessage::Err(g)) => assert_eq!(g.error, e.as_str()),
            (StreamModel::User(b), StreamMessage::User(g)) => assert_eq!(*g, &b[..]),
            (want, got) => panic!("{want:?} came back as {got:?}"),
        }
    }
}

fn stream_model() -> impl Strategy<Value = StreamModel> {
    let leaf = prop_oneof![
        (any::<u32>(), text(&SMALL_EDGES), ip(), any::<u16>(), text(&SMALL_EDGES)).prop_map(
            |(seq, node, saddr, sport, snode)| Msg::Ping { seq, node, saddr, sport, snode }
        ),
        (any::<u32>(), ack_payload(&EDGES)).prop_map(|(seq, payload)| Msg::Ack { seq, payload }),
    ];
    prop_oneof![
        leaf.prop_map(StreamModel::Leaf),
        push_pull(&SMALL_EDGES).prop_map(StreamModel::PushPull),
        text(&EDGES).prop_map(StreamModel::Err),
        blob(&EDGES).prop_map(StreamModel::User),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn streams_round_trip(
        m in stream_model(),
        compress in any::<bool>(),
        crypt in crypt(),
        cut in any::<prop::sample::Index>(),
        junk in pvec(any::<u8>(), 0..8),
    ) {
        let plain = enc(|w| m.encode(w));
        m.check(&StreamMessage::decode(&plain).unwrap());

        let rings = crypt.as_ref().map(Crypt::rings);
        let nonce = crypt.as_ref().map_or([0; 12], |c| c.nonce);
        let mut codec = StreamCodec::new();
        let mut wire = Vec::new();
        codec.seal(&plain, &mut wire, compress, rings.as_ref().map(|r| &r.0), nonce).unwrap();

        // Framing: exact length, with or without bytes of the next message.
        let len = wire.len();
        prop_assert_eq!(frame_len(&wire), Ok(Some(len)));
        let mut longer = wire.clone();
        longer.extend_from_slice(&junk);
        prop_assert_eq!(frame_len(&longer), Ok(Some(len)));
        for c in [0, 1, len / 2, len - 1, cut.index(len)] {
            prop_assert_eq!(frame_len(&wire[..c]), Ok(None), "prefix of {} bytes of {}", c, len);
        }

        let mut rx = StreamCodec::new();
        let mut inflate = Vec::new();
        let got = rx.open(&mut wire, rings.as_ref().map(|r| &r.1), &mut inflate).unwrap();
        m.check(&got);
        prop_assert_eq!(enc(|w| got.encode(w)), plain);
    }
}

/// The property tests above would pass vacuously if a strategy never hit
/// the format edges; check the generators reach them.
#[test]
fn strategies_reach_the_format_edges() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = text(&EDGES);
    let mut lens = std::collections::BTreeSet::new();
    for _ in 0..2000 {
        lens.insert(strategy.new_tree(&mut runner).unwrap().current().len());
    }
    for e in EDGES {
        assert!(lens.contains(&e), "no string of {e} bytes generated");
    }
}
