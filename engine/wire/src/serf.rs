//! Serf 0.9.4 messages carried in memberlist user messages (`protocol/serf.md`
//! §2, §3, §6, §8.3, §9), plus tags (node meta) and query filters.
//!
//! Every message is one table (see [`crate::fields`]). Lists and maps inside
//! messages are lazy views ([`List`], [`Map`]): decode validates them once,
//! iteration re-reads them from the packet buffer, and nothing is
//! allocated. Iteration yields in wire order, so re-encoding a view
//! reproduces Go's (random) map order byte for byte.

use super::fields::{
    message, type_byte, write_array, write_map, Bin, Bool, Dict, Nested, Seq, Sint, Str, Uint,
};
pub use super::fields::{Item, List, ListIter, Map, MapIter, Put};
use super::msgpack::{Reader, Writer};
pub use super::Body;
use super::{Error, Result};

type_byte! {
    /// The first byte of every Serf message.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub enum SerfType {
        Leave = 0,
        Join = 1,
        PushPull = 2,
        UserEvent = 3,
        Query = 4,
        QueryResponse = 5,
        ConflictResponse = 6,
        KeyRequest = 7,
        KeyResponse = 8,
        Relay = 9,
    }
}

/// Names (node filters, `LeftMembers`, key lists).
pub type StrList<'a> = List<'a, &'a str>;
/// `map[string]string` (tags).
pub type StrMap<'a> = Map<'a, &'a str, &'a str>;

/// Writes `[]string`.
pub fn write_str_list<'s>(
    w: &mut Writer<'_>,
    items: impl ExactSizeIterator<Item = &'s str>,
) -> Result<()> {
    write_array(w, items)
}

/// Writes `map[string]string`.
pub fn write_str_map<'s>(
    w: &mut Writer<'_>,
    items: impl ExactSizeIterator<Item = (&'s str, &'s str)>,
) -> Result<()> {
    write_map(w, items)
}

// ---------------------------------------------------------------------------
// Message bodies

message! {
    /// Join intent (type 1).
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct Join<'a> = SerfType::Join {
        b"LTime" => pub ltime: u64 as Uint,
        b"Node" => pub node: &'a str as Str,
    }
}

message! {
    /// Leave intent (type 0); `prune` erases the member once it has left.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct Leave<'a> = SerfType::Leave {
        b"LTime" => pub ltime: u64 as Uint,
        b"Node" => pub node: &'a str as Str,
        b"Prune" => pub prune: bool as Bool,
    }
}

message! {
    /// User event (type 3).
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct UserEvent<'a> = SerfType::UserEvent {
        /// Coalesce flag (`CC`).
        b"CC" => pub cc: bool as Bool,
        b"LTime" => pub ltime: u64 as Uint,
        b"Name" => pub name: &'a str as Str,
        /// nil when the event has no payload.
        b"Payload" => pub payload: Option<&'a [u8]> as Bin,
    }
}

/// Query flag: the origin wants an ack from every node that processes it.
pub const QUERY_FLAG_ACK: u32 = 1;
/// Query flag: do not re-broadcast (the query is sent to a single node).
pub const QUERY_FLAG_NO_BROADCAST: u32 = 2;

message! {
    /// Query (type 4).
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct Query<'a> = SerfType::Query {
        /// The origin's memberlist address; responses go to `addr:port`.
        b"Addr" => pub addr: Option<&'a [u8]> as Bin,
        /// Encoded filters (see [`Filter`]); nil when there are none. A nil
        /// blob inside the list reads as empty (and then fails to decode as
        /// a filter).
        b"Filters" via filters => pub filters: Option<List<'a, &'a [u8]>> as Seq,
        b"Flags" => pub flags: u32 as Uint,
        /// Random 31-bit id.
        b"ID" => pub id: u32 as Uint,
        b"LTime" => pub ltime: u64 as Uint,
        b"Name" => pub name: &'a str as Str,
        b"Payload" => pub payload: Option<&'a [u8]> as Bin,
        b"Port" => pub port: u16 as Uint,
        b"RelayFactor" => pub relay_factor: u8 as Uint,
        b"SourceNode" => pub source_node: &'a str as Str,
        /// Go `time.Duration` in nanoseconds.
        b"Timeout" => pub timeout_ns: i64 as Sint,
    }
    encode_with
    /// Writes the body with filters given as already-encoded blobs.
    pub fn encode_body_with<'f>(filters: Option<impl ExactSizeIterator<Item = &'f [u8]>>);
}

impl<'a> Query<'a> {
    /// The decoded filters, in wire order.
    pub fn filters(&self) -> impl Iterator<Item = Result<Filter<'a>>> + 'a {
        self.filters.into_iter().flat_map(|l| l.iter()).map(Filter::decode)
    }
}

/// Query response flag: this response is an ack.
pub const RESPONSE_FLAG_ACK: u32 = 1;

message! {
    /// Query response or ack (type 5).
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct QueryResponse<'a> = SerfType::QueryResponse {
        b"Flags" => pub flags: u32 as Uint,
        b"From" => pub from: &'a str as Str,
        b"ID" => pub id: u32 as Uint,
        b"LTime" => pub ltime: u64 as Uint,
        b"Payload" => pub payload: Option<&'a [u8]> as Bin,
    }
}

message! {
    /// A Serf member as gossiped in conflict responses (status as an integer).
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct Member<'a> {
        b"Addr" => pub addr: Option<&'a [u8]> as Bin,
        b"DelegateCur" => pub delegate_cur: u8 as Uint,
        b"DelegateMax" => pub delegate_max: u8 as Uint,
        b"DelegateMin" => pub delegate_min: u8 as Uint,
        b"Name" => pub name: &'a str as Str,
        b"Port" => pub port: u16 as Uint,
        b"ProtocolCur" => pub protocol_cur: u8 as Uint,
        b"ProtocolMax" => pub protocol_max: u8 as Uint,
        b"ProtocolMin" => pub protocol_min: u8 as Uint,
        /// Member status: 0 none, 1 alive, 2 leaving, 3 left, 4 failed.
        b"Status" => pub status: i64 as Sint,
        b"Tags" via tags => pub tags: Option<StrMap<'a>> as Dict,
    }
    encode_with
    /// Writes a member map with tags from `tags` (nil when `None`).
    pub fn encode_with<'s>(tags: Option<impl ExactSizeIterator<Item = (&'s str, &'s str)>>);
}

/// Conflict response (type 6): the responder's view of a contested name, or nil.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConflictResponse<'a> {
    pub member: Option<Member<'a>>,
}

// Out of line, so the member's decoder and encoder are not copied into
// `SerfMessage::decode`/`encode`, whose every arm would then pay for the
// registers they save.
impl<'a> Body<'a> for ConflictResponse<'a> {
    const TYPE: u8 = SerfType::ConflictResponse as u8;
    #[inline(never)]
    fn decode_from(r: &mut Reader<'a>) -> Result<Self> {
        Ok(ConflictResponse { member: Item::read(r)? })
    }
    #[inline(never)]
    fn encode_body(&self, w: &mut Writer<'_>) -> Result<()> {
        self.member.put(w)
    }
}

message! {
    /// Key request (type 7), the payload of `_serf_*-key` queries.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct KeyRequest<'a> = SerfType::KeyRequest {
        b"Key" => pub key: Option<&'a [u8]> as Bin,
    }
}

message! {
    /// Key response (type 8), the payload of responses to key queries.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct KeyResponse<'a> = SerfType::KeyResponse {
        /// Base64 keys (list-keys only; nil otherwise).
        b"Keys" via keys => pub keys: Option<StrList<'a>> as Seq,
        b"Message" => pub message: &'a str as Str,
        b"PrimaryKey" => pub primary_key: &'a str as Str,
        b"Result" => pub result: bool as Bool,
    }
    encode_with
    /// Writes the body with keys from `keys` (nil when `None`).
    pub fn encode_body_with<'s>(keys: Option<impl ExactSizeIterator<Item = &'s str>>);
}

message! {
    /// A Go `net.UDPAddr` (the relay destination).
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct UdpAddr<'a> {
        /// 4 or 16 bytes.
        b"IP" => pub ip: Option<&'a [u8]> as Bin,
        /// A Go `int`.
        b"Port" => pub port: i64 as Sint,
        /// The IPv6 zone (always empty for IPv4).
        b"Zone" => pub zone: &'a str as Str,
    }
}

message! {
    /// Relay (type 9): forward `inner` (a complete Serf message) to `dest_addr`.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct Relay<'a> = SerfType::Relay {
        b"DestAddr" => pub dest_addr: UdpAddr<'a> as Nested,
        b"DestName" => pub dest_name: &'a str as Str,
    }
    then
    /// The message to forward, starting with its Serf type byte (the rest of
    /// the body after the header map; must not be empty).
    pub inner: &'a [u8];
    check Relay::check;
}

impl Relay<'_> {
    fn check(&self) -> Result<()> {
        if self.inner.is_empty() {
            return Err(Error::Empty);
        }
        Ok(())
    }
}

message! {
    /// One user event inside a push-pull event bucket.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct BufferedEvent<'a> {
        b"Name" => pub name: &'a str as Str,
        b"Payload" => pub payload: Option<&'a [u8]> as Bin,
    }
}

message! {
    /// One slot of the recent-event ring: every event seen at one LTime.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct EventBucket<'a> {
        b"Events" via events => pub events: Option<List<'a, BufferedEvent<'a>>> as Seq,
        b"LTime" => pub ltime: u64 as Uint,
    }
    encode_with
    /// Writes the bucket with its events from `events` (nil when `None`).
    pub fn encode_with<'s>(events: Option<impl ExactSizeIterator<Item = BufferedEvent<'s>>>);
}

/// Writes one ring slot: `{Events: [...], LTime}` from `events`.
pub fn write_event_bucket<'s>(
    w: &mut Writer<'_>,
    ltime: u64,
    events: Option<impl ExactSizeIterator<Item = BufferedEvent<'s>>>,
) -> Result<()> {
    EventBucket { ltime, events: None }.encode_with(w, events)
}

message! {
    /// Serf's push-pull state (type 2), the memberlist push-pull user state.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct PushPull<'a> = SerfType::PushPull {
        /// Event clock.
        b"EventLTime" => pub event_ltime: u64 as Uint,
        /// The recent-event ring (512 slots in Serf 0.9.4; nil slots are empty).
        b"Events" => pub events: Option<List<'a, Option<EventBucket<'a>>>> as Seq,
        /// Member clock.
        b"LTime" => pub ltime: u64 as Uint,
        /// Names of members that left.
        b"LeftMembers" => pub left_members: Option<StrList<'a>> as Seq,
        /// Query clock.
        b"QueryLTime" => pub query_ltime: u64 as Uint,
        /// `statusLTime` of every known member.
        b"StatusLTimes" => pub status_ltimes: Option<Map<'a, &'a str, u64>> as Dict,
    }
}

/// Any Serf message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SerfMessage<'a> {
    Leave(Leave<'a>),
    Join(Join<'a>),
    PushPull(PushPull<'a>),
    UserEvent(UserEvent<'a>),
    Query(Query<'a>),
    QueryResponse(QueryResponse<'a>),
    ConflictResponse(ConflictResponse<'a>),
    KeyRequest(KeyRequest<'a>),
    KeyResponse(KeyResponse<'a>),
    Relay(Relay<'a>),
}

impl<'a> SerfMessage<'a> {
    /// Decodes a Serf message (type byte + body), e.g. the body of a
    /// memberlist user message. An empty slice is [`Error::Empty`].
    pub fn decode(bytes: &'a [u8]) -> Result<Self> {
        let (&t, body) = bytes.split_first().ok_or(Error::Empty)?;
        Ok(match SerfType::try_from(t)? {
            SerfType::Leave => SerfMessage::Leave(Leave::decode(body)?),
            SerfType::Join => SerfMessage::Join(Join::decode(body)?),
            SerfType::PushPull => SerfMessage::PushPull(PushPull::decode(body)?),
            SerfType::UserEvent => SerfMessage::UserEvent(UserEvent::decode(body)?),
            SerfType::Query => SerfMessage::Query(Query::decode(body)?),
            SerfType::QueryResponse => SerfMessage::QueryResponse(QueryResponse::decode(body)?),
            SerfType::ConflictResponse => {
                SerfMessage::ConflictResponse(ConflictResponse::decode(body)?)
            }
            SerfType::KeyRequest => SerfMessage::KeyRequest(KeyRequest::decode(body)?),
            SerfType::KeyResponse => SerfMessage::KeyResponse(KeyResponse::decode(body)?),
            SerfType::Relay => {
                // The relay body is a header followed by raw bytes: no trailing check.
                let mut r = Reader::new(body);
                SerfMessage::Relay(Relay::decode_from(&mut r)?)
            }
        })
    }

    /// Writes type byte + body.
    pub fn encode(&self, w: &mut Writer<'_>) -> Result<()> {
        match self {
            SerfMessage::Leave(m) => m.encode(w),
            SerfMessage::Join(m) => m.encode(w),
            SerfMessage::PushPull(m) => m.encode(w),
            SerfMessage::UserEvent(m) => m.encode(w),
            SerfMessage::Query(m) => m.encode(w),
            SerfMessage::QueryResponse(m) => m.encode(w),
            SerfMessage::ConflictResponse(m) => m.encode(w),
            SerfMessage::KeyRequest(m) => m.encode(w),
            SerfMessage::KeyResponse(m) => m.encode(w),
            SerfMessage::Relay(m) => m.encode(w),
        }
    }
}

// ---------------------------------------------------------------------------
// Query filters

/// Filter type byte: node names.
pub const FILTER_NODE: u8 = 0;
/// Filter type byte: tag regexp.
pub const FILTER_TAG: u8 = 1;

message! {
    /// The body of a tag filter (Go's `filterTag`).
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct TagFilter<'a> {
        /// The (unanchored) regexp the tag's value must match.
        b"Expr" => pub expr: &'a str as Str,
        /// The tag's name.
        b"Tag" => pub tag: &'a str as Str,
    }
}

/// A decoded query filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Filter<'a> {
    /// Only the named nodes process the query.
    Node(StrList<'a>),
    /// Only nodes whose tag `tag` matches the (unanchored) regexp `expr`.
    Tag { tag: &'a str, expr: &'a str },
}

impl<'a> Filter<'a> {
    /// Decodes one filter blob (`type | msgpack`). Unknown types are
    /// [`Error::UnknownType`] (the receiver then rejects the query).
    pub fn decode(blob: &'a [u8]) -> Result<Self> {
        let (&t, body) = blob.split_first().ok_or(Error::Empty)?;
        let mut r = Reader::new(body);
        let f = match t {
            FILTER_NODE => Filter::Node(List::read_opt(&mut r)?.unwrap_or_default()),
            FILTER_TAG => {
                let TagFilter { tag, expr } = TagFilter::decode_from(&mut r)?;
                Filter::Tag { tag, expr }
            }
            _ => return Err(Error::UnknownType(t)),
        };
        r.finish()?;
        Ok(f)
    }
}

/// Writes a node filter blob: `0x00 | [names]`.
pub fn write_node_filter<'s>(
    w: &mut Writer<'_>,
    names: impl ExactSizeIterator<Item = &'s str>,
) -> Result<()> {
    w.byte(FILTER_NODE)?;
    write_str_list(w, names)
}

/// Writes a tag filter blob: `0x01 | {Expr, Tag}`.
pub fn write_tag_filter(w: &mut Writer<'_>, tag: &str, expr: &str) -> Result<()> {
    w.byte(FILTER_TAG)?;
    TagFilter { tag, expr }.encode(w)
}

// ---------------------------------------------------------------------------
// Tags (node meta)

/// The byte that marks msgpack-encoded tags in node meta (Serf protocol ≥ 3).
pub const TAG_MAGIC: u8 = 0xff;
/// Largest node meta memberlist accepts (`MetaMaxSize`).
pub const META_MAX_SIZE: usize = 512;

/// Tags decoded from node meta.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tags<'a> {
    /// Meta without the magic byte: the whole meta is the `role` tag (an
    /// empty meta gives `role = ""`, as Go decodes it).
    Role(&'a [u8]),
    /// `0xff | map[string]string`.
    Map(StrMap<'a>),
}

impl<'a> Tags<'a> {
    /// Decodes node meta into tags.
    pub fn decode(meta: &'a [u8]) -> Result<Self> {
        match meta.split_first() {
            Some((&TAG_MAGIC, rest)) => {
                let mut r = Reader::new(rest);
                let m = Map::read_opt(&mut r)?.unwrap_or_default();
                r.finish()?;
                Ok(Tags::Map(m))
            }
            _ => Ok(Tags::Role(meta)),
        }
    }

    /// Number of tags.
    pub fn len(&self) -> usize {
        match self {
            Tags::Role(_) => 1,
            Tags::Map(m) => m.len(),
        }
    }

    /// True if there are no tags.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every `(key, value)` pair; the legacy form yields `("role", meta)`
    /// (skipped if the meta is not UTF-8).
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        let (role, map) = match *self {
            Tags::Role(b) => (core::str::from_utf8(b).ok().map(|s| ("role", s)), None),
            Tags::Map(m) => (None, Some(m.iter())),
        };
        role.into_iter().chain(map.into_iter().flatten())
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&'a str> {
        self.iter().filter(|(k, _)| *k == key).last().map(|(_, v)| v)
    }
}

/// Writes node meta for `tags`: `0xff | map`. No tags gives `ff 80`.
pub fn write_tags<'s>(
    w: &mut Writer<'_>,
    tags: impl ExactSizeIterator<Item = (&'s str, &'s str)>,
) -> Result<()> {
    w.byte(TAG_MAGIC)?;
    write_str_map(w, tags)
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::arithmetic_side_effects)]
mod tests {
    use super::*;
    use crate::msgpack::Dialect;

    /// Hex with white space between bytes.
    fn hex(s: &str) -> Vec<u8> {
        crate::testdata::unhex(&s.split_whitespace().collect::<String>())
    }

    fn round_trip(bytes: &[u8]) -> SerfMessage<'_> {
        let m = SerfMessage::decode(bytes).unwrap();
        let mut out = vec![0xAA; bytes.len() + 64];
        let mut w = Writer::new(&mut out, Dialect::Gossip);
        m.encode(&mut w).unwrap();
        let n = w.len();
        assert_eq!(&out[..n], bytes);
        m
    }

    #[test]
    fn captured_query_and_filters() {
        // `serf query -tag role=db whoami only-db` style query with a tag filter.
        let mut buf = [0u8; 256];
        let mut fw = Writer::new(&mut buf, Dialect::Gossip);
        write_tag_filter(&mut fw, "role", ".*").unwrap();
        let n = fw.len();
        assert_eq!(&buf[..n], &hex("01 82 a4 45787072 a2 2e2a a3 546167 a4 726f6c65"));
        assert_eq!(Filter::decode(&buf[..n]).unwrap(), Filter::Tag { tag: "role", expr: ".*" });
        let mut fw = Writer::new(&mut buf, Dialect::Gossip);
        write_node_filter(&mut fw, ["nodeB"].into_iter()).unwrap();
        let n = fw.len();
        assert_eq!(&buf[..n], &hex("00 91 a5 6e6f646542"));
        let Filter::Node(l) = Filter::decode(&buf[..n]).unwrap() else { panic!() };
        assert_eq!(l.iter().collect::<Vec<_>>(), ["nodeB"]);
        assert!(matches!(Filter::decode(&[9, 0xc0]), Err(Error::UnknownType(9))));
    }

    #[test]
    fn captured_relay() {
        let b = hex("09 82 a8 4465737441646472 83 a2 4950 a4 7f000101 a4 506f7274 cd1f0a a4 5a6f6e65 a0
                     a8 446573744e616d65 a5 6e6f646541
                     05 85 a5 466c616773 00 a4 46726f6d a5 6e6f646541 a2 4944 ce52cff014 a5 4c54696d65 03
                     a7 5061796c6f6164 b0 726573702d66726f6d2d6e6f6465410a");
        let SerfMessage::Relay(r) = round_trip(&b) else { panic!() };
        assert_eq!(r.dest_name, "nodeA");
        assert_eq!(r.dest_addr.port, 7946);
        assert_eq!(r.dest_addr.ip, Some(&[127, 0, 1, 1][..]));
        let SerfMessage::QueryResponse(q) = SerfMessage::decode(r.inner).unwrap() else { panic!() };
        assert_eq!(q.payload, Some(&b"resp-from-nodeA\n"[..]));
    }

    #[test]
    fn tags_forms() {
        let meta = hex("ff82a4726f6c65a3776562a26463a465617374");
        let t = Tags::decode(&meta).unwrap();
        assert_eq!(t.iter().collect::<Vec<_>>(), [("role", "web"), ("dc", "east")]);
        assert_eq!(t.get("dc"), Some("east"));
        assert_eq!(Tags::decode(&[0xff, 0x80]).unwrap().len(), 0);
        assert_eq!(Tags::decode(b"old").unwrap().get("role"), Some("old"));
        assert_eq!(Tags::decode(b"").unwrap().get("role"), Some(""));
        assert!(Tags::decode(&[0xff, 0x81, 0xa1]).is_err());
        let mut buf = [0u8; 64];
        let mut w = Writer::new(&mut buf, Dialect::Gossip);
        write_tags(&mut w, core::iter::empty()).unwrap();
        assert_eq!(w.written(), &[0xff, 0x80]);
    }

    #[test]
    fn push_pull_fresh_state() {
        let mut b = hex("02 86 aa 4576656e744c54696d65 01 a6 4576656e7473 dc0200");
        b.extend(std::iter::repeat_n(0xc0, 512));
        b.extend(hex("a5 4c54696d65 01 ab 4c6566744d656d62657273 90 aa 51756572794c54696d65 01
                      ac 5374617475734c54696d6573 81 a5 6e6f646542 00"));
        let SerfMessage::PushPull(p) = round_trip(&b) else { panic!() };
        assert_eq!(b.len(), 589);
        assert_eq!(p.events.unwrap().len(), 512);
        assert!(p.events.unwrap().iter().all(|s| s.is_none()));
        assert_eq!(p.status_ltimes.unwrap().get("nodeB"), Some(0));
        assert_eq!(p.left_members.unwrap().len(), 0);
    }

    #[test]
    fn errors() {
        assert_eq!(SerfMessage::decode(&[]), Err(Error::Empty));
        assert_eq!(SerfMessage::decode(&[10]), Err(Error::UnknownType(10)));
        assert_eq!(SerfMessage::decode(&[1, 0x81]), Err(Error::Truncated));
        assert_eq!(SerfMessage::decode(&[9, 0x80]), Err(Error::Empty));
        assert_eq!(
            SerfMessage::decode(&[6, 0xc0]),
            Ok(SerfMessage::ConflictResponse(ConflictResponse { member: None }))
        );
    }
}
