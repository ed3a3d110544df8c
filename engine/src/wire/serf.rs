//! Serf 0.9.4 messages carried in memberlist user messages (`protocol/serf.md`
//! §2, §3, §6, §8.3, §9), plus tags (node meta) and query filters.
//!
//! Lists and maps inside messages are lazy views ([`List`], [`Map`]): decode
//! validates them once, iteration re-reads them from the packet buffer, and
//! nothing is allocated. Iteration yields in wire order, so re-encoding a
//! view reproduces Go's (random) map order byte for byte.

use core::marker::PhantomData;

use super::msgpack::{read_struct, Reader, Writer};
pub use super::Body;
use super::{Error, Result};

/// The first byte of every Serf message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
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

impl TryFrom<u8> for SerfType {
    type Error = Error;
    fn try_from(b: u8) -> Result<Self> {
        const ALL: [SerfType; 10] = [
            SerfType::Leave,
            SerfType::Join,
            SerfType::PushPull,
            SerfType::UserEvent,
            SerfType::Query,
            SerfType::QueryResponse,
            SerfType::ConflictResponse,
            SerfType::KeyRequest,
            SerfType::KeyResponse,
            SerfType::Relay,
        ];
        ALL.get(usize::from(b)).copied().ok_or(Error::UnknownType(b))
    }
}

// ---------------------------------------------------------------------------
// Lazy lists and maps

/// A value that can be read from a msgpack cursor as a list element.
pub trait Item<'a>: Sized {
    /// Reads one element.
    fn read(r: &mut Reader<'a>) -> Result<Self>;
}

impl<'a> Item<'a> for &'a str {
    fn read(r: &mut Reader<'a>) -> Result<Self> {
        r.str()
    }
}

impl<'a> Item<'a> for u64 {
    fn read(r: &mut Reader<'a>) -> Result<Self> {
        r.uint()
    }
}

/// A Go `[]byte` element (nil and empty told apart).
impl<'a> Item<'a> for Option<&'a [u8]> {
    fn read(r: &mut Reader<'a>) -> Result<Self> {
        r.bytes()
    }
}

/// An array decoded lazily: validated at decode time, re-read on iteration.
pub struct List<'a, T> {
    raw: &'a [u8],
    count: usize,
    _t: PhantomData<fn() -> T>,
}

impl<T> Clone for List<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for List<'_, T> {}
impl<T> PartialEq for List<'_, T> {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw && self.count == other.count
    }
}
impl<T> Eq for List<'_, T> {}
impl<T> core::fmt::Debug for List<'_, T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "List(len={})", self.count)
    }
}

impl<'a, T: Item<'a>> List<'a, T> {
    /// Reads an array (or nil, giving `None`) and validates every element.
    pub fn read_opt(r: &mut Reader<'a>) -> Result<Option<Self>> {
        let Some(count) = r.array_len_or_nil()? else { return Ok(None) };
        let start = r.remaining();
        let before = r.position();
        for _ in 0..count {
            T::read(r)?;
        }
        let used = r.position().checked_sub(before).ok_or(Error::Truncated)?;
        let raw = start.get(..used).ok_or(Error::Truncated)?;
        Ok(Some(List { raw, count, _t: PhantomData }))
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.count
    }

    /// True if empty.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The elements in wire order.
    pub fn iter(&self) -> ListIter<'a, T> {
        ListIter { r: Reader::new(self.raw), left: self.count, _t: PhantomData }
    }
}

/// Iterator over a [`List`].
pub struct ListIter<'a, T> {
    r: Reader<'a>,
    left: usize,
    _t: PhantomData<fn() -> T>,
}

impl<'a, T: Item<'a>> Iterator for ListIter<'a, T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.left = self.left.checked_sub(1)?;
        // Validated by `read_opt`; an error cannot occur and ends iteration.
        T::read(&mut self.r).ok()
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}
impl<'a, T: Item<'a>> ExactSizeIterator for ListIter<'a, T> {}

/// A Go map decoded lazily, entries in wire order.
pub struct Map<'a, K, V> {
    raw: &'a [u8],
    count: usize,
    _t: PhantomData<fn() -> (K, V)>,
}

impl<K, V> Clone for Map<'_, K, V> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<K, V> Copy for Map<'_, K, V> {}
impl<K, V> PartialEq for Map<'_, K, V> {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw && self.count == other.count
    }
}
impl<K, V> Eq for Map<'_, K, V> {}
impl<K, V> core::fmt::Debug for Map<'_, K, V> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Map(len={})", self.count)
    }
}

impl<'a, K: Item<'a>, V: Item<'a>> Map<'a, K, V> {
    /// Reads a map (or nil, giving `None`) and validates every entry.
    pub fn read_opt(r: &mut Reader<'a>) -> Result<Option<Self>> {
        let Some(count) = r.map_len_or_nil()? else { return Ok(None) };
        let start = r.remaining();
        let before = r.position();
        for _ in 0..count {
            K::read(r)?;
            V::read(r)?;
        }
        let used = r.position().checked_sub(before).ok_or(Error::Truncated)?;
        let raw = start.get(..used).ok_or(Error::Truncated)?;
        Ok(Some(Map { raw, count, _t: PhantomData }))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.count
    }

    /// True if empty.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Entries in wire order.
    pub fn iter(&self) -> MapIter<'a, K, V> {
        MapIter { r: Reader::new(self.raw), left: self.count, _t: PhantomData }
    }
}

impl<'a, V: Item<'a>> Map<'a, &'a str, V> {
    /// The value for `key` (last one wins, as in Go), by linear scan.
    pub fn get(&self, key: &str) -> Option<V> {
        self.iter().filter(|(k, _)| *k == key).last().map(|(_, v)| v)
    }
}

/// Iterator over a [`Map`].
pub struct MapIter<'a, K, V> {
    r: Reader<'a>,
    left: usize,
    _t: PhantomData<fn() -> (K, V)>,
}

impl<'a, K: Item<'a>, V: Item<'a>> Iterator for MapIter<'a, K, V> {
    type Item = (K, V);
    fn next(&mut self) -> Option<(K, V)> {
        self.left = self.left.checked_sub(1)?;
        let k = K::read(&mut self.r).ok()?;
        let v = V::read(&mut self.r).ok()?;
        Some((k, v))
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}
impl<'a, K: Item<'a>, V: Item<'a>> ExactSizeIterator for MapIter<'a, K, V> {}

/// Names (node filters, `LeftMembers`, key lists).
pub type StrList<'a> = List<'a, &'a str>;
/// `map[string]string` (tags).
pub type StrMap<'a> = Map<'a, &'a str, &'a str>;

/// Writes `[]string`.
pub fn write_str_list<'s>(
    w: &mut Writer<'_>,
    items: impl ExactSizeIterator<Item = &'s str>,
) -> Result<()> {
    w.array_len(items.len())?;
    for s in items {
        w.str(s)?;
    }
    Ok(())
}

/// Writes `map[string]string`.
pub fn write_str_map<'s>(
    w: &mut Writer<'_>,
    items: impl ExactSizeIterator<Item = (&'s str, &'s str)>,
) -> Result<()> {
    w.map_len(items.len())?;
    for (k, v) in items {
        w.str(k)?;
        w.str(v)?;
    }
    Ok(())
}

fn write_opt_str_list<'a>(w: &mut Writer<'_>, l: Option<StrList<'a>>) -> Result<()> {
    match l {
        Some(l) => write_str_list(w, l.iter()),
        None => w.nil(),
    }
}

// ---------------------------------------------------------------------------
// Message bodies

/// Join intent (type 1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Join<'a> {
    pub ltime: u64,
    pub node: &'a str,
}

impl<'a> Body<'a> for Join<'a> {
    const TYPE: u8 = SerfType::Join as u8;
    fn decode_from(r: &mut Reader<'a>) -> Result<Self> {
        let mut m = Join::default();
        read_struct(r, |k, r| {
            match k {
                b"LTime" => m.ltime = r.uint()?,
                b"Node" => m.node = r.str()?,
                _ => r.skip()?,
            }
            Ok(())
        })?;
        Ok(m)
    }
    fn encode_body(&self, w: &mut Writer<'_>) -> Result<()> {
        w.map_len(2)?;
        w.key("LTime")?;
        w.uint(self.ltime)?;
        w.key("Node")?;
        w.str(self.node)
    }
}

/// Leave intent (type 0); `prune` erases the member once it has left.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Leave<'a> {
    pub ltime: u64,
    pub node: &'a str,
    pub prune: bool,
}

impl<'a> Body<'a> for Leave<'a> {
    const TYPE: u8 = SerfType::Leave as u8;
    fn decode_from(r: &mut Reader<'a>) -> Result<Self> {
        let mut m = Leave::default();
        read_struct(r, |k, r| {
            match k {
                b"LTime" => m.ltime = r.uint()?,
                b"Node" => m.node = r.str()?,
                b"Prune" => m.prune = r.bool()?,
                _ => r.skip()?,
            }
            Ok(())
        })?;
        Ok(m)
    }
    fn encode_body(&self, w: &mut Writer<'_>) -> Result<()> {
        w.map_len(3)?;
        w.key("LTime")?;
        w.uint(self.ltime)?;
        w.key("Node")?;
        w.str(self.node)?;
        w.key("Prune")?;
        w.bool(self.prune)
    }
}

/// User event (type 3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UserEvent<'a> {
    pub ltime: u64,
    pub name: &'a str,
    /// nil when the event has no payload.
    pub payload: Option<&'a [u8]>,
    /// Coalesce flag (`CC`).
    pub cc: bool,
}

impl<'a> Body<'a> for UserEvent<'a> {
    const TYPE: u8 = SerfType::UserEvent as u8;
    fn decode_from(r: &mut Reader<'a>) -> Result<Self> {
        let mut m = UserEvent::default();
        read_struct(r, |k, r| {
            match k {
                b"CC" => m.cc = r.bool()?,
                b"LTime" => m.ltime = r.uint()?,
                b"Name" => m.name = r.str()?,
                b"Payload" => m.payload = r.bytes()?,
                _ => r.skip()?,
            }
            Ok(())
        })?;
        Ok(m)
    }
    fn encode_body(&self, w: &mut Writer<'_>) -> Result<()> {
        w.map_len(4)?;
        w.key("CC")?;
        w.bool(self.cc)?;
        w.key("LTime")?;
        w.uint(self.ltime)?;
        w.key("Name")?;
        w.str(self.name)?;
        w.key("Payload")?;
        w.bin_opt(self.payload)
    }
}

/// Query flag: the origin wants an ack from every node that processes it.
pub const QUERY_FLAG_ACK: u32 = 1;
/// Query flag: do not re-broadcast (the query is sent to a single node).
pub const QUERY_FLAG_NO_BROADCAST: u32 = 2;

/// Query (type 4).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Query<'a> {
    pub ltime: u64,
    /// Random 31-bit id.
    pub id: u32,
    /// The origin's memberlist address; responses go to `addr:port`.
    pub addr: Option<&'a [u8]>,
    pub port: u16,
    pub source_node: &'a str,
    /// Encoded filters (see [`Filter`]); nil when there are none.
    pub filters: Option<List<'a, Option<&'a [u8]>>>,
    pub flags: u32,
    pub relay_factor: u8,
    /// Go `time.Duration` in nanoseconds.
    pub timeout_ns: i64,
    pub name: &'a str,
    pub payload: Option<&'a [u8]>,
}

impl<'a> Query<'a> {
    /// The decoded filters, in wire order.
    pub fn filters(&self) -> impl Iterator<Item = Result<Filter<'a>>> + 'a {
        self.filters.into_iter().flat_map(|l| l.iter()).map(|b| Filter::decode(b.unwrap_or(&[])))
    }

    /// Writes the body with filters given as already-encoded blobs.
    pub fn encode_body_with<'f>(
        &self,
        w: &mut Writer<'_>,
        filters: Option<impl ExactSizeIterator<Item = &'f [u8]>>,
    ) -> Result<()> {
        w.map_len(11)?;
        w.key("Addr")?;
        w.bin_opt(self.addr)?;
        w.key("Filters")?;
        match filters {
            Some(fs) => {
                w.array_len(fs.len())?;
                for f in fs {
                    w.bin(f)?;
                }
            }
            None => w.nil()?,
        }
        w.key("Flags")?;
        w.uint(self.flags.into())?;
        w.key("ID")?;
        w.uint(self.id.into())?;
        w.key("LTime")?;
        w.uint(self.ltime)?;
        w.key("Name")?;
        w.str(self.name)?;
        w.key("Payload")?;
        w.bin_opt(self.payload)?;
        w.key("Port")?;
        w.uint(self.port.into())?;
        w.key("RelayFactor")?;
        w.uint(self.relay_factor.into())?;
        w.key("SourceNode")?;
        w.str(self.source_node)?;
        w.key("Timeout")?;
        w.sint(self.timeout_ns)
    }
}

impl<'a> Body<'a> for Query<'a> {
    const TYPE: u8 = SerfType::Query as u8;
    fn decode_from(r: &mut Reader<'a>) -> Result<Self> {
        let mut m = Query::default();
        read_struct(r, |k, r| {
            match k {
                b"Addr" => m.addr = r.bytes()?,
                b"Filters" => m.filters = List::read_opt(r)?,
                b"Flags" => m.flags = r.uint()?,
                b"ID" => m.id = r.uint()?,
                b"LTime" => m.ltime = r.uint()?,
                b"Name" => m.name = r.str()?,
                b"Payload" => m.payload = r.bytes()?,
                b"Port" => m.port = r.uint()?,
                b"RelayFactor" => m.relay_factor = r.uint()?,
                b"SourceNode" => m.source_node = r.str()?,
                b"Timeout" => m.timeout_ns = r.sint()?,
                _ => r.skip()?,
            }
            Ok(())
        })?;
        Ok(m)
    }
    fn encode_body(&self, w: &mut Writer<'_>) -> Result<()> {
        let blobs = self.filters.map(|l| l.iter().map(|b| b.unwrap_or(&[])));
        self.encode_body_with(w, blobs)
    }
}

/// Query response flag: this response is an ack.
pub const RESPONSE_FLAG_ACK: u32 = 1;

/// Query response or ack (type 5).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueryResponse<'a> {
    pub ltime: u64,
    pub id: u32,
    pub from: &'a str,
    pub flags: u32,
    pub payload: Option<&'a [u8]>,
}

impl<'a> Body<'a> for QueryResponse<'a> {
    const TYPE: u8 = SerfType::QueryResponse as u8;
    fn decode_from(r: &mut Reader<'a>) -> Result<Self> {
        let mut m = QueryResponse::default();
        read_struct(r, |k, r| {
            match k {
                b"Flags" => m.flags = r.uint()?,
                b"From" => m.from = r.str()?,
                b"ID" => m.id = r.uint()?,
                b"LTime" => m.ltime = r.uint()?,
                b"Payload" => m.payload = r.bytes()?,
                _ => r.skip()?,
            }
            Ok(())
        })?;
        Ok(m)
    }
    fn encode_body(&self, w: &mut Writer<'_>) -> Result<()> {
        w.map_len(5)?;
        w.key("Flags")?;
        w.uint(self.flags.into())?;
        w.key("From")?;
        w.str(self.from)?;
        w.key("ID")?;
        w.uint(self.id.into())?;
        w.key("LTime")?;
        w.uint(self.ltime)?;
        w.key("Payload")?;
        w.bin_opt(self.payload)
    }
}

/// A Serf member as gossiped in conflict responses (status as an integer).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Member<'a> {
    pub name: &'a str,
    pub addr: Option<&'a [u8]>,
    pub port: u16,
    pub tags: Option<StrMap<'a>>,
    /// Member status: 0 none, 1 alive, 2 leaving, 3 left, 4 failed.
    pub status: i64,
    pub protocol_min: u8,
    pub protocol_max: u8,
    pub protocol_cur: u8,
    pub delegate_min: u8,
    pub delegate_max: u8,
    pub delegate_cur: u8,
}

impl<'a> Member<'a> {
    /// Reads a member map.
    pub fn decode_from(r: &mut Reader<'a>) -> Result<Self> {
        let mut m = Member::default();
        read_struct(r, |k, r| {
            match k {
                b"Addr" => m.addr = r.bytes()?,
                b"DelegateCur" => m.delegate_cur = r.uint()?,
                b"DelegateMax" => m.delegate_max = r.uint()?,
                b"DelegateMin" => m.delegate_min = r.uint()?,
                b"Name" => m.name = r.str()?,
                b"Port" => m.port = r.uint()?,
                b"ProtocolCur" => m.protocol_cur = r.uint()?,
                b"ProtocolMax" => m.protocol_max = r.uint()?,
                b"ProtocolMin" => m.protocol_min = r.uint()?,
                b"Status" => m.status = r.sint()?,
                b"Tags" => m.tags = Map::read_opt(r)?,
                _ => r.skip()?,
            }
            Ok(())
        })?;
        Ok(m)
    }

    /// Writes a member map with tags from `tags` (nil when `None`).
    pub fn encode_with<'s>(
        &self,
        w: &mut Writer<'_>,
        tags: Option<impl ExactSizeIterator<Item = (&'s str, &'s str)>>,
    ) -> Result<()> {
        w.map_len(11)?;
        w.key("Addr")?;
        w.bin_opt(self.addr)?;
        w.key("DelegateCur")?;
        w.uint(self.delegate_cur.into())?;
        w.key("DelegateMax")?;
        w.uint(self.delegate_max.into())?;
        w.key("DelegateMin")?;
        w.uint(self.delegate_min.into())?;
        w.key("Name")?;
        w.str(self.name)?;
        w.key("Port")?;
        w.uint(self.port.into())?;
        w.key("ProtocolCur")?;
        w.uint(self.protocol_cur.into())?;
        w.key("ProtocolMax")?;
        w.uint(self.protocol_max.into())?;
        w.key("ProtocolMin")?;
        w.uint(self.protocol_min.into())?;
        w.key("Status")?;
        w.sint(self.status)?;
        w.key("Tags")?;
        match tags {
            Some(t) => write_str_map(w, t),
            None => w.nil(),
        }
    }

    /// Re-encodes this member.
    pub fn encode(&self, w: &mut Writer<'_>) -> Result<()> {
        self.encode_with(w, self.tags.map(|t| t.iter()))
    }
}

/// Conflict response (type 6): the responder's view of a contested name, or nil.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConflictResponse<'a> {
    pub member: Option<Member<'a>>,
}

impl<'a> Body<'a> for ConflictResponse<'a> {
    const TYPE: u8 = SerfType::ConflictResponse as u8;
    fn decode_from(r: &mut Reader<'a>) -> Result<Self> {
        if r.nil()? {
            return Ok(ConflictResponse { member: None });
        }
        Ok(ConflictResponse { member: Some(Member::decode_from(r)?) })
    }
    fn encode_body(&self, w: &mut Writer<'_>) -> Result<()> {
        match &self.member {
            Some(m) => m.encode(w),
            None => w.nil(),
        }
    }
}

/// Key request (type 7), the payload of `_serf_*-key` queries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeyRequest<'a> {
    pub key: Option<&'a [u8]>,
}

impl<'a> Body<'a> for KeyRequest<'a> {
    const TYPE: u8 = SerfType::KeyRequest as u8;
    fn decode_from(r: &mut Reader<'a>) -> Result<Self> {
        let mut m = KeyRequest::default();
        read_struct(r, |k, r| {
            match k {
                b"Key" => m.key = r.bytes()?,
                _ => r.skip()?,
            }
            Ok(())
        })?;
        Ok(m)
    }
    fn encode_body(&self, w: &mut Writer<'_>) -> Result<()> {
        w.map_len(1)?;
        w.key("Key")?;
        w.bin_opt(self.key)
    }
}

/// Key response (type 8), the payload of responses to key queries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeyResponse<'a> {
    pub result: bool,
    pub message: &'a str,
    /// Base64 keys (list-keys only; nil otherwise).
    pub keys: Option<StrList<'a>>,
    pub primary_key: &'a str,
}

impl<'a> KeyResponse<'a> {
    /// Writes the body with keys from `keys` (nil when `None`).
    pub fn encode_body_with<'s>(
        &self,
        w: &mut Writer<'_>,
        keys: Option<impl ExactSizeIterator<Item = &'s str>>,
    ) -> Result<()> {
        w.map_len(4)?;
        w.key("Keys")?;
        match keys {
            Some(k) => write_str_list(w, k)?,
            None => w.nil()?,
        }
        w.key("Message")?;
        w.str(self.message)?;
        w.key("PrimaryKey")?;
        w.str(self.primary_key)?;
        w.key("Result")?;
        w.bool(self.result)
    }
}

impl<'a> Body<'a> for KeyResponse<'a> {
    const TYPE: u8 = SerfType::KeyResponse as u8;
    fn decode_from(r: &mut Reader<'a>) -> Result<Self> {
        let mut m = KeyResponse::default();
        read_struct(r, |k, r| {
            match k {
                b"Keys" => m.keys = List::read_opt(r)?,
                b"Message" => m.message = r.str()?,
                b"PrimaryKey" => m.primary_key = r.str()?,
                b"Result" => m.result = r.bool()?,
                _ => r.skip()?,
            }
            Ok(())
        })?;
        Ok(m)
    }
    fn encode_body(&self, w: &mut Writer<'_>) -> Result<()> {
        self.encode_body_with(w, self.keys.map(|k| k.iter()))
    }
}

/// Relay (type 9): forward `inner` (a complete Serf message) to `dest`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Relay<'a> {
    /// `DestAddr.IP`.
    pub dest_ip: Option<&'a [u8]>,
    /// `DestAddr.Port` (a Go `int`).
    pub dest_port: i64,
    /// `DestAddr.Zone` (always empty for IPv4).
    pub dest_zone: &'a str,
    pub dest_name: &'a str,
    /// The message to forward, starting with its Serf type byte.
    pub inner: &'a [u8],
}

impl<'a> Body<'a> for Relay<'a> {
    const TYPE: u8 = SerfType::Relay as u8;
    fn decode_from(r: &mut Reader<'a>) -> Result<Self> {
        let mut m = Relay::default();
        read_struct(r, |k, r| {
            match k {
                b"DestAddr" => read_struct(r, |k, r| {
                    match k {
                        b"IP" => m.dest_ip = r.bytes()?,
                        b"Port" => m.dest_port = r.sint()?,
                        b"Zone" => m.dest_zone = r.str()?,
                        _ => r.skip()?,
                    }
                    Ok(())
                })?,
                b"DestName" => m.dest_name = r.str()?,
                _ => r.skip()?,
            }
            Ok(())
        })?;
        m.inner = r.take(r.remaining().len())?;
        if m.inner.is_empty() {
            return Err(Error::Empty);
        }
        Ok(m)
    }
    fn encode_body(&self, w: &mut Writer<'_>) -> Result<()> {
        w.map_len(2)?;
        w.key("DestAddr")?;
        w.map_len(3)?;
        w.key("IP")?;
        w.bin_opt(self.dest_ip)?;
        w.key("Port")?;
        w.sint(self.dest_port)?;
        w.key("Zone")?;
        w.str(self.dest_zone)?;
        w.key("DestName")?;
        w.str(self.dest_name)?;
        w.raw(self.inner)
    }
}

/// One user event inside a push-pull event bucket.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BufferedEvent<'a> {
    pub name: &'a str,
    pub payload: Option<&'a [u8]>,
}

impl<'a> Item<'a> for BufferedEvent<'a> {
    fn read(r: &mut Reader<'a>) -> Result<Self> {
        let mut m = BufferedEvent::default();
        read_struct(r, |k, r| {
            match k {
                b"Name" => m.name = r.str()?,
                b"Payload" => m.payload = r.bytes()?,
                _ => r.skip()?,
            }
            Ok(())
        })?;
        Ok(m)
    }
}

impl BufferedEvent<'_> {
    /// Writes `{Name, Payload}`.
    pub fn encode(&self, w: &mut Writer<'_>) -> Result<()> {
        w.map_len(2)?;
        w.key("Name")?;
        w.str(self.name)?;
        w.key("Payload")?;
        w.bin_opt(self.payload)
    }
}

/// One slot of the recent-event ring: every event seen at one LTime.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventBucket<'a> {
    pub ltime: u64,
    pub events: Option<List<'a, BufferedEvent<'a>>>,
}

/// A ring slot: nil or a bucket.
impl<'a> Item<'a> for Option<EventBucket<'a>> {
    fn read(r: &mut Reader<'a>) -> Result<Self> {
        if r.nil()? {
            return Ok(None);
        }
        let mut m = EventBucket::default();
        read_struct(r, |k, r| {
            match k {
                b"Events" => m.events = List::read_opt(r)?,
                b"LTime" => m.ltime = r.uint()?,
                _ => r.skip()?,
            }
            Ok(())
        })?;
        Ok(Some(m))
    }
}

/// Writes one ring slot: `{Events: [...], LTime}` from `events`.
pub fn write_event_bucket<'s>(
    w: &mut Writer<'_>,
    ltime: u64,
    events: Option<impl ExactSizeIterator<Item = BufferedEvent<'s>>>,
) -> Result<()> {
    w.map_len(2)?;
    w.key("Events")?;
    match events {
        Some(evs) => {
            w.array_len(evs.len())?;
            for e in evs {
                e.encode(w)?;
            }
        }
        None => w.nil()?,
    }
    w.key("LTime")?;
    w.uint(ltime)
}

/// Serf's push-pull state (type 2), the memberlist push-pull user state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PushPull<'a> {
    /// Member clock.
    pub ltime: u64,
    /// `statusLTime` of every known member.
    pub status_ltimes: Option<Map<'a, &'a str, u64>>,
    /// Names of members that left.
    pub left_members: Option<StrList<'a>>,
    /// Event clock.
    pub event_ltime: u64,
    /// The recent-event ring (512 slots in Serf 0.9.4; nil slots are empty).
    pub events: Option<List<'a, Option<EventBucket<'a>>>>,
    /// Query clock.
    pub query_ltime: u64,
}

impl<'a> Body<'a> for PushPull<'a> {
    const TYPE: u8 = SerfType::PushPull as u8;
    fn decode_from(r: &mut Reader<'a>) -> Result<Self> {
        let mut m = PushPull::default();
        read_struct(r, |k, r| {
            match k {
                b"EventLTime" => m.event_ltime = r.uint()?,
                b"Events" => m.events = List::read_opt(r)?,
                b"LTime" => m.ltime = r.uint()?,
                b"LeftMembers" => m.left_members = List::read_opt(r)?,
                b"QueryLTime" => m.query_ltime = r.uint()?,
                b"StatusLTimes" => m.status_ltimes = Map::read_opt(r)?,
                _ => r.skip()?,
            }
            Ok(())
        })?;
        Ok(m)
    }
    fn encode_body(&self, w: &mut Writer<'_>) -> Result<()> {
        w.map_len(6)?;
        w.key("EventLTime")?;
        w.uint(self.event_ltime)?;
        w.key("Events")?;
        match self.events {
            Some(ring) => {
                w.array_len(ring.len())?;
                for slot in ring.iter() {
                    match slot {
                        Some(b) => write_event_bucket(w, b.ltime, b.events.map(|e| e.iter()))?,
                        None => w.nil()?,
                    }
                }
            }
            None => w.nil()?,
        }
        w.key("LTime")?;
        w.uint(self.ltime)?;
        w.key("LeftMembers")?;
        write_opt_str_list(w, self.left_members)?;
        w.key("QueryLTime")?;
        w.uint(self.query_ltime)?;
        w.key("StatusLTimes")?;
        match self.status_ltimes {
            Some(m) => {
                w.map_len(m.len())?;
                for (k, v) in m.iter() {
                    w.str(k)?;
                    w.uint(v)?;
                }
                Ok(())
            }
            None => w.nil(),
        }
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
            FILTER_NODE => Filter::Node(List::read_opt(&mut r)?.unwrap_or(List {
                raw: &[],
                count: 0,
                _t: PhantomData,
            })),
            FILTER_TAG => {
                let (mut tag, mut expr) = ("", "");
                read_struct(&mut r, |k, r| {
                    match k {
                        b"Expr" => expr = r.str()?,
                        b"Tag" => tag = r.str()?,
                        _ => r.skip()?,
                    }
                    Ok(())
                })?;
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
    w.map_len(2)?;
    w.key("Expr")?;
    w.str(expr)?;
    w.key("Tag")?;
    w.str(tag)
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
                let m =
                    Map::read_opt(&mut r)?.unwrap_or(Map { raw: &[], count: 0, _t: PhantomData });
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
    use crate::wire::msgpack::Dialect;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
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
        assert_eq!(r.dest_port, 7946);
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
