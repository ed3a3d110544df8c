//! Owned request, response and record types of the agent RPC protocol
//! (`shared/protocol/rpc.md` §2, §4, §5), shared by the client and the
//! server.
//!
//! Encoding mirrors Go's go-msgpack `MsgpackHandle{RawToString, WriteExt}`
//! byte for byte ([`Dialect::Rpc`]): structs become maps with their keys in
//! Go's sorted order, strings use str8 from 32 bytes, `[]byte` is bin, nil
//! slices and maps are `0xc0`. Go maps (tags, stats, key counts) are kept as
//! ordered `Vec`s of pairs, so a decoded message re-encodes in the order it
//! arrived (Go's own order is random).
//!
//! Decoding is as lenient as Go's: unknown keys are skipped, a missing key or
//! nil is the zero value, integers of any width that fits are accepted, byte
//! fields accept str or bin. String fields that are not UTF-8 are decoded
//! lossily (U+FFFD) instead of failing, so such strings do not re-encode
//! byte for byte.
//!
//! Every type implements [`Encode`] and [`Decode`]; [`Command`] knows which
//! commands carry a request body, a response body, or a stream of records.
//!
//! For the replies a server sends most, borrowed views write the same bytes
//! without building the owned type first: [`MemberView`] (with
//! [`write_members_response`] and [`write_member_event_record`]) and
//! [`ResponseHeaderView`]; [`append`] encodes into a growable buffer in one
//! pass.

mod view;

pub use view::{
    append, write_member_event_record, write_member_list, write_members_response, MemberView,
    ResponseHeaderView, MAX_APPEND,
};

use wire::msgpack::{encoded_len, read_struct, Dialect, Reader, Writer};
use wire::{Error as WireError, Result as WireResult};

/// A Go `map[string]string` in wire order (tags, filters, messages).
pub type Tags = Vec<(String, String)>;

/// A value that encodes itself as one msgpack object in the RPC dialect.
pub trait Encode {
    /// Writes `self` as one msgpack value.
    fn encode(&self, w: &mut Writer<'_>) -> WireResult<()>;

    /// Encodes into a new buffer of exactly the right size.
    fn to_vec(&self) -> WireResult<Vec<u8>> {
        let n = encoded_len(Dialect::Rpc, |w| self.encode(w))?;
        let mut buf = vec![0u8; n];
        let mut w = Writer::new(&mut buf, Dialect::Rpc);
        self.encode(&mut w)?;
        debug_assert_eq!(w.len(), n);
        Ok(buf)
    }
}

/// A value decoded from one msgpack object.
pub trait Decode: Sized {
    /// Reads exactly one msgpack value. On error the reader's position is
    /// unspecified; [`WireError::Truncated`] means "need more bytes".
    fn decode(r: &mut Reader<'_>) -> WireResult<Self>;

    /// Decodes one value from the front of `buf`, returning it and the
    /// number of bytes it used.
    fn from_slice(buf: &[u8]) -> WireResult<(Self, usize)> {
        let mut r = Reader::new(buf);
        let v = Self::decode(&mut r)?;
        Ok((v, r.position()))
    }
}

/// A struct field type: how it is written and read, and its zero value.
pub trait Field: Sized + Default {
    /// Writes the field's value.
    fn write(&self, w: &mut Writer<'_>) -> WireResult<()>;
    /// Reads the field's value (nil gives the zero value).
    fn read(r: &mut Reader<'_>) -> WireResult<Self>;
}

fn read_string(r: &mut Reader<'_>) -> WireResult<String> {
    let b = r.str_bytes()?;
    Ok(String::from_utf8_lossy(b).into_owned())
}

impl Field for String {
    fn write(&self, w: &mut Writer<'_>) -> WireResult<()> {
        w.str(self)
    }
    fn read(r: &mut Reader<'_>) -> WireResult<Self> {
        read_string(r)
    }
}

impl Field for bool {
    fn write(&self, w: &mut Writer<'_>) -> WireResult<()> {
        w.bool(*self)
    }
    fn read(r: &mut Reader<'_>) -> WireResult<Self> {
        r.bool()
    }
}

macro_rules! uint_field {
    ($($t:ty),*) => {$(
        impl Field for $t {
            fn write(&self, w: &mut Writer<'_>) -> WireResult<()> {
                w.uint(u64::from(*self))
            }
            fn read(r: &mut Reader<'_>) -> WireResult<Self> {
                r.uint()
            }
        }
    )*};
}
uint_field!(u8, u16, u32, u64);

macro_rules! sint_field {
    ($($t:ty),*) => {$(
        impl Field for $t {
            fn write(&self, w: &mut Writer<'_>) -> WireResult<()> {
                w.sint(i64::from(*self))
            }
            fn read(r: &mut Reader<'_>) -> WireResult<Self> {
                r.sint()
            }
        }
    )*};
}
sint_field!(i32, i64);

impl Field for f64 {
    fn write(&self, w: &mut Writer<'_>) -> WireResult<()> {
        w.f64(*self)
    }
    fn read(r: &mut Reader<'_>) -> WireResult<Self> {
        r.f64()
    }
}

/// `[]byte`: nil stays `None`, so nil and empty re-encode as they came.
impl Field for Option<Vec<u8>> {
    fn write(&self, w: &mut Writer<'_>) -> WireResult<()> {
        w.bin_opt(self.as_deref())
    }
    fn read(r: &mut Reader<'_>) -> WireResult<Self> {
        Ok(r.bytes()?.map(<[u8]>::to_vec))
    }
}

/// `[]string`.
impl Field for Option<Vec<String>> {
    fn write(&self, w: &mut Writer<'_>) -> WireResult<()> {
        match self {
            None => w.nil(),
            Some(v) => {
                w.array_len(v.len())?;
                v.iter().try_for_each(|s| w.str(s))
            }
        }
    }
    fn read(r: &mut Reader<'_>) -> WireResult<Self> {
        read_list(r, read_string)
    }
}

/// `[]float64`.
impl Field for Option<Vec<f64>> {
    fn write(&self, w: &mut Writer<'_>) -> WireResult<()> {
        match self {
            None => w.nil(),
            Some(v) => {
                w.array_len(v.len())?;
                v.iter().try_for_each(|x| w.f64(*x))
            }
        }
    }
    fn read(r: &mut Reader<'_>) -> WireResult<Self> {
        read_list(r, |r| r.f64())
    }
}

/// `map[string]string`.
impl Field for Option<Tags> {
    fn write(&self, w: &mut Writer<'_>) -> WireResult<()> {
        write_map(w, self.as_deref(), |w, v| w.str(v))
    }
    fn read(r: &mut Reader<'_>) -> WireResult<Self> {
        read_map(r, read_string)
    }
}

/// `map[string]int`.
impl Field for Option<Vec<(String, i64)>> {
    fn write(&self, w: &mut Writer<'_>) -> WireResult<()> {
        write_map(w, self.as_deref(), |w, v| w.sint(*v))
    }
    fn read(r: &mut Reader<'_>) -> WireResult<Self> {
        read_map(r, |r| r.sint())
    }
}

/// `[]Member`.
impl Field for Option<Vec<Member>> {
    fn write(&self, w: &mut Writer<'_>) -> WireResult<()> {
        match self {
            None => w.nil(),
            Some(v) => {
                w.array_len(v.len())?;
                v.iter().try_for_each(|m| m.encode(w))
            }
        }
    }
    fn read(r: &mut Reader<'_>) -> WireResult<Self> {
        read_list(r, Member::decode)
    }
}

impl Field for Coordinate {
    fn write(&self, w: &mut Writer<'_>) -> WireResult<()> {
        self.encode(w)
    }
    fn read(r: &mut Reader<'_>) -> WireResult<Self> {
        Coordinate::decode(r)
    }
}

/// Reads an array (nil → `None`) whose items `f` reads. The capacity is not
/// trusted from the wire: each item consumes at least one byte.
fn read_list<T>(
    r: &mut Reader<'_>,
    mut f: impl FnMut(&mut Reader<'_>) -> WireResult<T>,
) -> WireResult<Option<Vec<T>>> {
    let Some(n) = r.array_len_or_nil()? else { return Ok(None) };
    let mut out = Vec::with_capacity(n.min(r.remaining().len()));
    for _ in 0..n {
        out.push(f(r)?);
    }
    Ok(Some(out))
}

/// Reads a map with string keys (nil → `None`) whose values `f` reads.
fn read_map<V>(
    r: &mut Reader<'_>,
    mut f: impl FnMut(&mut Reader<'_>) -> WireResult<V>,
) -> WireResult<Option<Vec<(String, V)>>> {
    let Some(n) = r.map_len_or_nil()? else { return Ok(None) };
    let mut out = Vec::with_capacity(n.min(r.remaining().len() / 2));
    for _ in 0..n {
        let k = read_string(r)?;
        out.push((k, f(r)?));
    }
    Ok(Some(out))
}

fn write_map<V>(
    w: &mut Writer<'_>,
    m: Option<&[(String, V)]>,
    mut f: impl FnMut(&mut Writer<'_>, &V) -> WireResult<()>,
) -> WireResult<()> {
    match m {
        None => w.nil(),
        Some(m) => {
            w.map_len(m.len())?;
            for (k, v) in m {
                w.str(k)?;
                f(w, v)?;
            }
            Ok(())
        }
    }
}

/// Declares an RPC struct: its fields (keys listed in Go's sorted order),
/// and its [`Encode`]/[`Decode`] impls.
macro_rules! rpc_struct {
    (
        $(#[$m:meta])*
        pub struct $name:ident {
            $( $(#[$fm:meta])* $key:literal => $field:ident : $ty:ty ),* $(,)?
        }
    ) => {
        $(#[$m])*
        #[derive(Clone, Debug, Default, PartialEq)]
        pub struct $name {
            $( $(#[$fm])* pub $field: $ty, )*
        }

        impl $name {
            /// The map keys in encoding order.
            pub const KEYS: &'static [&'static str] = &[$($key),*];
        }

        impl Encode for $name {
            fn encode(&self, w: &mut Writer<'_>) -> WireResult<()> {
                w.map_len(Self::KEYS.len())?;
                $( w.key($key)?; Field::write(&self.$field, w)?; )*
                Ok(())
            }
        }

        impl Decode for $name {
            fn decode(r: &mut Reader<'_>) -> WireResult<Self> {
                let mut out = Self::default();
                read_struct(r, |k, r| {
                    $( if k == $key.as_bytes() {
                        out.$field = Field::read(r)?;
                        return Ok(());
                    } )*
                    r.skip()
                })?;
                Ok(out)
            }
        }
    };
}

rpc_struct! {
    /// Every request starts with this header (rpc.md §2).
    pub struct RequestHeader {
        /// The command name, e.g. `members-filtered`.
        "Command" => command: String,
        /// Chosen by the client, echoed in the reply; the Go client counts from 1.
        "Seq" => seq: u64,
    }
}

rpc_struct! {
    /// Every reply and every streamed record starts with this header.
    pub struct ResponseHeader {
        /// `""` on success, otherwise the error text.
        "Error" => error: String,
        /// The Seq of the request this answers.
        "Seq" => seq: u64,
    }
}

rpc_struct! {
    /// `handshake`: must be the first command; Version 1.
    pub struct HandshakeRequest {
        "Version" => version: i32,
    }
}

rpc_struct! {
    /// `auth`.
    pub struct AuthRequest {
        "AuthKey" => auth_key: String,
    }
}

rpc_struct! {
    /// `event`: a user event.
    pub struct EventRequest {
        "Coalesce" => coalesce: bool,
        "Name" => name: String,
        /// nil when the CLI got no payload argument.
        "Payload" => payload: Option<Vec<u8>>,
    }
}

rpc_struct! {
    /// `force-leave`.
    pub struct ForceLeaveRequest {
        "Node" => node: String,
        "Prune" => prune: bool,
    }
}

rpc_struct! {
    /// `join`.
    pub struct JoinRequest {
        "Existing" => existing: Option<Vec<String>>,
        "Replay" => replay: bool,
    }
}

rpc_struct! {
    /// Reply body of `join`, sent also when the join failed.
    pub struct JoinResponse {
        "Num" => num: i32,
    }
}

rpc_struct! {
    /// `members-filtered`: each value is a regexp the agent anchors.
    pub struct MembersFilteredRequest {
        "Name" => name: String,
        "Status" => status: String,
        /// The Go CLI always sends a map, `{}` when there is no tag filter.
        "Tags" => tags: Option<Tags>,
    }
}

rpc_struct! {
    /// A member as the RPC protocol shows it (rpc.md §5.1).
    pub struct Member {
        /// 4 or 16 bytes.
        "Addr" => addr: Option<Vec<u8>>,
        "DelegateCur" => delegate_cur: u8,
        "DelegateMax" => delegate_max: u8,
        "DelegateMin" => delegate_min: u8,
        "Name" => name: String,
        "Port" => port: u16,
        "ProtocolCur" => protocol_cur: u8,
        "ProtocolMax" => protocol_max: u8,
        "ProtocolMin" => protocol_min: u8,
        /// `alive`, `leaving`, `left`, `failed`.
        "Status" => status: String,
        /// `{}` (not nil) when the member has no tags.
        "Tags" => tags: Option<Tags>,
    }
}

rpc_struct! {
    /// Reply body of `members` and `members-filtered`.
    pub struct MembersResponse {
        "Members" => members: Option<Vec<Member>>,
    }
}

rpc_struct! {
    /// `tags`: new tags = current − DeleteTags + Tags.
    pub struct TagsRequest {
        "DeleteTags" => delete_tags: Option<Vec<String>>,
        "Tags" => tags: Option<Tags>,
    }
}

rpc_struct! {
    /// `stream`: an event filter (`""` = `*`).
    pub struct StreamRequest {
        "Type" => kind: String,
    }
}

rpc_struct! {
    /// `monitor`: TRACE, DEBUG, INFO, WARN or ERR, any case.
    pub struct MonitorRequest {
        "LogLevel" => log_level: String,
    }
}

rpc_struct! {
    /// `stop`: the Seq of a stream or monitor to end.
    pub struct StopRequest {
        "Stop" => stop: u64,
    }
}

rpc_struct! {
    /// `query`.
    pub struct QueryRequest {
        /// nil when no `-node` filter was given.
        "FilterNodes" => filter_nodes: Option<Vec<String>>,
        /// Always a map from the Go CLI, possibly empty.
        "FilterTags" => filter_tags: Option<Tags>,
        "Name" => name: String,
        "Payload" => payload: Option<Vec<u8>>,
        "RelayFactor" => relay_factor: u8,
        "RequestAck" => request_ack: bool,
        /// Nanoseconds; 0 = the agent's default.
        "Timeout" => timeout_ns: i64,
    }
}

rpc_struct! {
    /// `respond`: answer a query received on a stream.
    pub struct RespondRequest {
        "ID" => id: u64,
        "Payload" => payload: Option<Vec<u8>>,
    }
}

rpc_struct! {
    /// `install-key`, `use-key`, `remove-key`: a base64 key.
    pub struct KeyRequest {
        "Key" => key: String,
    }
}

rpc_struct! {
    /// Reply body of the four key commands, sent also on error.
    pub struct KeyResponse {
        /// nil except for `list-keys`: base64 key → nodes holding it.
        "Keys" => keys: Option<Vec<(String, i64)>>,
        /// Node name → error or warning; `{}` when none.
        "Messages" => messages: Option<Tags>,
        "NumErr" => num_err: i64,
        "NumNodes" => num_nodes: i64,
        "NumResp" => num_resp: i64,
    }
}

rpc_struct! {
    /// `get-coordinate`.
    pub struct CoordinateRequest {
        "Node" => node: String,
    }
}

rpc_struct! {
    /// A Vivaldi coordinate as the RPC reply carries it (any `Vec` length).
    pub struct Coordinate {
        "Adjustment" => adjustment: f64,
        "Error" => error: f64,
        "Height" => height: f64,
        /// nil in the zero coordinate of an unknown node.
        "Vec" => vec: Option<Vec<f64>>,
    }
}

rpc_struct! {
    /// Reply body of `get-coordinate`.
    pub struct CoordinateResponse {
        "Coord" => coord: Coordinate,
        /// False for an unknown node or when coordinates are disabled.
        "Ok" => ok: bool,
    }
}

rpc_struct! {
    /// A `monitor` record: one log line without its newline.
    pub struct LogRecord {
        "Log" => log: String,
    }
}

rpc_struct! {
    /// A `query` record (rpc.md §5.3).
    pub struct QueryRecord {
        "From" => from: String,
        "Payload" => payload: Option<Vec<u8>>,
        /// `ack`, `response` or `done`.
        "Type" => kind: String,
    }
}

rpc_struct! {
    /// A `stream` record for member-join/-leave/-failed/-update/-reap.
    pub struct MemberEventRecord {
        "Event" => event: String,
        "Members" => members: Option<Vec<Member>>,
    }
}

rpc_struct! {
    /// A `stream` record for a user event.
    pub struct UserEventRecord {
        "Coalesce" => coalesce: bool,
        "Event" => event: String,
        "LTime" => ltime: u64,
        "Name" => name: String,
        "Payload" => payload: Option<Vec<u8>>,
    }
}

rpc_struct! {
    /// A `stream` record for a query; `ID` is valid for `respond`.
    pub struct QueryEventRecord {
        "Event" => event: String,
        "ID" => id: u64,
        "LTime" => ltime: u64,
        "Name" => name: String,
        "Payload" => payload: Option<Vec<u8>>,
    }
}

/// `QueryRecord::kind` values.
pub mod query_record {
    /// An ack from a node.
    pub const ACK: &str = "ack";
    /// A response from a node.
    pub const RESPONSE: &str = "response";
    /// The query's deadline passed; nothing follows.
    pub const DONE: &str = "done";
}

/// Reply body of `stats`: `map[string]map[string]string` in wire order.
/// `None` is a nil map.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StatsResponse(pub Option<Vec<(String, Option<Tags>)>>);

impl StatsResponse {
    /// The value of `section.key`, if present.
    pub fn get(&self, section: &str, key: &str) -> Option<&str> {
        let (_, m) = self.0.as_ref()?.iter().find(|(s, _)| s == section)?;
        m.as_ref()?.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

impl Encode for StatsResponse {
    fn encode(&self, w: &mut Writer<'_>) -> WireResult<()> {
        write_map(w, self.0.as_deref(), |w, inner| inner.write(w))
    }
}

impl Decode for StatsResponse {
    fn decode(r: &mut Reader<'_>) -> WireResult<Self> {
        read_map(r, <Option<Tags> as Field>::read).map(StatsResponse)
    }
}

/// A `stream` record, typed by its `Event` field.
#[derive(Clone, Debug, PartialEq)]
pub enum StreamRecord {
    /// member-join, member-leave, member-failed, member-update, member-reap.
    Member(MemberEventRecord),
    /// A user event.
    User(UserEventRecord),
    /// A query to answer with `respond`.
    Query(QueryEventRecord),
}

impl Encode for StreamRecord {
    fn encode(&self, w: &mut Writer<'_>) -> WireResult<()> {
        match self {
            StreamRecord::Member(m) => m.encode(w),
            StreamRecord::User(u) => u.encode(w),
            StreamRecord::Query(q) => q.encode(w),
        }
    }
}

impl Decode for StreamRecord {
    /// Looks ahead for `Event` (`user`, `query`, anything else is a member
    /// event) and decodes the matching record.
    fn decode(r: &mut Reader<'_>) -> WireResult<Self> {
        let mut probe = *r;
        let mut event = String::new();
        read_struct(&mut probe, |k, r| {
            if k == b"Event" {
                event = read_string(r)?;
                Ok(())
            } else {
                r.skip()
            }
        })?;
        Ok(match event.as_str() {
            "user" => StreamRecord::User(UserEventRecord::decode(r)?),
            "query" => StreamRecord::Query(QueryEventRecord::decode(r)?),
            _ => StreamRecord::Member(MemberEventRecord::decode(r)?),
        })
    }
}

/// Any msgpack value, as Go's decoder builds it into an `interface{}` with
/// `RawToString`: the integer family is kept because Go prints positive
/// fixints (int64) and `0xcc..0xcf` values (uint64) differently.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// nil.
    Nil,
    /// A bool.
    Bool(bool),
    /// A fixint or signed integer (Go `int64`).
    Int(i64),
    /// A uint8..uint64 encoded integer (Go `uint64`).
    Uint(u64),
    /// float32.
    F32(f32),
    /// float64.
    F64(f64),
    /// Any str form (Go `string`; the bytes need not be UTF-8).
    Str(Vec<u8>),
    /// Any bin form (Go `[]byte`).
    Bin(Vec<u8>),
    /// An array (Go `[]interface{}`).
    Array(Vec<Value>),
    /// A map in wire order (Go `map[interface{}]interface{}`; the top level
    /// of a stream record is `map[string]interface{}`).
    Map(Vec<(Value, Value)>),
    /// An extension value (type, data).
    Ext(i8, Vec<u8>),
}

impl Value {
    /// The map entry whose key is the string `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Map(m) => m.iter().find(|(k, _)| k.as_str() == Some(key)).map(|(_, v)| v),
            _ => None,
        }
    }

    /// A str value as text (lossy).
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => core::str::from_utf8(s).ok(),
            _ => None,
        }
    }

    fn decode_depth(r: &mut Reader<'_>, depth: u32) -> WireResult<Self> {
        if depth >= wire::msgpack::MAX_DEPTH {
            return Err(WireError::TooDeep);
        }
        let m = r.peek()?;
        Ok(match m {
            0x00..=0x7f | 0xd0..=0xd3 | 0xe0..=0xff => Value::Int(r.sint()?),
            0xcc..=0xcf => Value::Uint(r.uint()?),
            0xc0 => {
                r.byte()?;
                Value::Nil
            }
            0xc2 | 0xc3 => Value::Bool(r.bool()?),
            0xca => {
                r.byte()?;
                let b = r.take(4)?;
                Value::F32(f32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            }
            0xcb => Value::F64(r.f64()?),
            0xa0..=0xbf | 0xd9..=0xdb => Value::Str(r.str_bytes()?.to_vec()),
            0xc4..=0xc6 => Value::Bin(r.bytes()?.unwrap_or_default().to_vec()),
            0x90..=0x9f | 0xdc | 0xdd => {
                let n = r.array_len_or_nil()?.unwrap_or(0);
                let mut v = Vec::with_capacity(n.min(r.remaining().len()));
                for _ in 0..n {
                    v.push(Value::decode_depth(r, depth + 1)?);
                }
                Value::Array(v)
            }
            0x80..=0x8f | 0xde | 0xdf => {
                let n = r.map_len()?;
                let mut v = Vec::with_capacity(n.min(r.remaining().len() / 2));
                for _ in 0..n {
                    let k = Value::decode_depth(r, depth + 1)?;
                    v.push((k, Value::decode_depth(r, depth + 1)?));
                }
                Value::Map(v)
            }
            0xd4..=0xd8 | 0xc7..=0xc9 => {
                let raw = r.value_bytes()?;
                let (ty, data) = split_ext(raw).ok_or(WireError::WrongType)?;
                Value::Ext(ty, data.to_vec())
            }
            _ => return Err(WireError::WrongType),
        })
    }
}

/// Splits a complete ext value into its type and data.
fn split_ext(raw: &[u8]) -> Option<(i8, &[u8])> {
    let (&m, rest) = raw.split_first()?;
    let hdr = match m {
        0xd4..=0xd8 => 0,
        0xc7 => 1,
        0xc8 => 2,
        0xc9 => 4,
        _ => return None,
    };
    let rest = rest.get(hdr..)?;
    let (&ty, data) = rest.split_first()?;
    Some((ty as i8, data))
}

impl Decode for Value {
    fn decode(r: &mut Reader<'_>) -> WireResult<Self> {
        Value::decode_depth(r, 0)
    }
}

impl Encode for Value {
    fn encode(&self, w: &mut Writer<'_>) -> WireResult<()> {
        match self {
            Value::Nil => w.nil(),
            Value::Bool(b) => w.bool(*b),
            Value::Int(i) => w.sint(*i),
            Value::Uint(u) => {
                // Go would have written these in the unsigned family; small
                // values can only have come as fixints, so this is lossless
                // for Go-produced input.
                w.uint(*u)
            }
            Value::F32(f) => {
                w.byte(0xca)?;
                w.raw(&f.to_be_bytes())
            }
            Value::F64(f) => w.f64(*f),
            Value::Str(s) => w.str_bytes(s),
            Value::Bin(b) => w.bin(b),
            Value::Array(v) => {
                w.array_len(v.len())?;
                v.iter().try_for_each(|x| x.encode(w))
            }
            Value::Map(m) => {
                w.map_len(m.len())?;
                m.iter().try_for_each(|(k, v)| {
                    k.encode(w)?;
                    v.encode(w)
                })
            }
            Value::Ext(ty, data) => {
                match data.len() {
                    1 => w.byte(0xd4)?,
                    2 => w.byte(0xd5)?,
                    4 => w.byte(0xd6)?,
                    8 => w.byte(0xd7)?,
                    16 => w.byte(0xd8)?,
                    n => {
                        if let Ok(n) = u8::try_from(n) {
                            w.byte(0xc7)?;
                            w.byte(n)?;
                        } else if let Ok(n) = u16::try_from(n) {
                            w.byte(0xc8)?;
                            w.raw(&n.to_be_bytes())?;
                        } else {
                            let n = u32::try_from(n).map_err(|_| WireError::TooLarge)?;
                            w.byte(0xc9)?;
                            w.raw(&n.to_be_bytes())?;
                        }
                    }
                }
                w.byte(*ty as u8)?;
                w.raw(data)
            }
        }
    }
}

/// The RPC commands (rpc.md §4) and what follows their headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Command {
    /// `handshake`
    Handshake,
    /// `auth`
    Auth,
    /// `event`
    Event,
    /// `force-leave`
    ForceLeave,
    /// `join`
    Join,
    /// `members`
    Members,
    /// `members-filtered`
    MembersFiltered,
    /// `tags`
    Tags,
    /// `stream`
    Stream,
    /// `monitor`
    Monitor,
    /// `stop`
    Stop,
    /// `leave`
    Leave,
    /// `query`
    Query,
    /// `respond`
    Respond,
    /// `install-key`
    InstallKey,
    /// `use-key`
    UseKey,
    /// `remove-key`
    RemoveKey,
    /// `list-keys`
    ListKeys,
    /// `stats`
    Stats,
    /// `get-coordinate`
    GetCoordinate,
}

impl Command {
    /// Every command, in rpc.md §4 order.
    pub const ALL: [Command; 20] = [
        Command::Handshake,
        Command::Auth,
        Command::Event,
        Command::ForceLeave,
        Command::Join,
        Command::Members,
        Command::MembersFiltered,
        Command::Tags,
        Command::Stream,
        Command::Monitor,
        Command::Stop,
        Command::Leave,
        Command::Query,
        Command::Respond,
        Command::InstallKey,
        Command::UseKey,
        Command::RemoveKey,
        Command::ListKeys,
        Command::Stats,
        Command::GetCoordinate,
    ];

    /// The wire name.
    pub const fn name(self) -> &'static str {
        match self {
            Command::Handshake => "handshake",
            Command::Auth => "auth",
            Command::Event => "event",
            Command::ForceLeave => "force-leave",
            Command::Join => "join",
            Command::Members => "members",
            Command::MembersFiltered => "members-filtered",
            Command::Tags => "tags",
            Command::Stream => "stream",
            Command::Monitor => "monitor",
            Command::Stop => "stop",
            Command::Leave => "leave",
            Command::Query => "query",
            Command::Respond => "respond",
            Command::InstallKey => "install-key",
            Command::UseKey => "use-key",
            Command::RemoveKey => "remove-key",
            Command::ListKeys => "list-keys",
            Command::Stats => "stats",
            Command::GetCoordinate => "get-coordinate",
        }
    }

    /// The command with this wire name (exact, case-sensitive).
    pub fn from_name(name: &str) -> Option<Command> {
        Command::ALL.into_iter().find(|c| c.name() == name)
    }

    /// Whether a request body follows the request header.
    pub const fn has_request_body(self) -> bool {
        !matches!(self, Command::Members | Command::Leave | Command::ListKeys | Command::Stats)
    }

    /// Whether the reply header is followed by a body (rpc.md §6): always,
    /// error or not, except that Go's client reads none after
    /// `Authentication required`.
    pub const fn has_response_body(self) -> bool {
        matches!(
            self,
            Command::Join
                | Command::Members
                | Command::MembersFiltered
                | Command::InstallKey
                | Command::UseKey
                | Command::RemoveKey
                | Command::ListKeys
                | Command::Stats
                | Command::GetCoordinate
        )
    }

    /// Whether, after a successful header-only reply, further headers with
    /// the same Seq each carry one record.
    pub const fn is_streaming(self) -> bool {
        matches!(self, Command::Stream | Command::Monitor | Command::Query)
    }
}

/// Error strings the server sends (rpc.md §3), that the client matches.
pub mod errors {
    /// The server wants an `auth` first; no body follows this reply.
    pub const AUTH_REQUIRED: &str = "Authentication required";
    /// Wrong `auth` key (or any key when the agent has none).
    pub const INVALID_AUTH_TOKEN: &str = "Invalid authentication token";
    /// First command was not `handshake`.
    pub const HANDSHAKE_REQUIRED: &str = "Handshake required";
    /// Handshake with a version other than 1.
    pub const UNSUPPORTED_IPC_VERSION: &str = "Unsupported IPC version";
    /// Second handshake on a connection.
    pub const DUPLICATE_HANDSHAKE: &str = "Handshake already performed";
    /// Unknown command name.
    pub const UNSUPPORTED_COMMAND: &str = "Unsupported command";
    /// Second `monitor` on a connection.
    pub const MONITOR_EXISTS: &str = "Monitor already exists";
    /// `stream` with a bad filter.
    pub const INVALID_FILTER: &str = "Invalid event filter";
    /// `stream` reusing a live Seq.
    pub const STREAM_EXISTS: &str = "Stream with given sequence exists";
    /// `respond` to an unknown or expired query ID.
    pub const INVALID_QUERY_ID: &str = "No pending queries matching ID";
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    fn roundtrip<T: Encode + Decode + PartialEq + core::fmt::Debug>(bytes: &[u8]) -> T {
        let (v, n) = T::from_slice(bytes).unwrap();
        assert_eq!(n, bytes.len());
        assert_eq!(v.to_vec().unwrap(), bytes);
        v
    }

    #[test]
    fn keys_are_sorted_like_go() {
        let all: &[&[&str]] = &[
            RequestHeader::KEYS,
            ResponseHeader::KEYS,
            EventRequest::KEYS,
            ForceLeaveRequest::KEYS,
            JoinRequest::KEYS,
            MembersFilteredRequest::KEYS,
            Member::KEYS,
            TagsRequest::KEYS,
            QueryRequest::KEYS,
            RespondRequest::KEYS,
            KeyResponse::KEYS,
            Coordinate::KEYS,
            CoordinateResponse::KEYS,
            QueryRecord::KEYS,
            MemberEventRecord::KEYS,
            UserEventRecord::KEYS,
            QueryEventRecord::KEYS,
        ];
        for keys in all {
            assert!(keys.windows(2).all(|w| w[0].as_bytes() < w[1].as_bytes()), "{keys:?}");
        }
    }

    #[test]
    fn header_and_handshake_from_capture() {
        // rpc.md §2: C→S handshake, Seq 1, {Version: 1}.
        let h: RequestHeader = roundtrip(&hex("82a7436f6d6d616e64a968616e647368616b65a353657101"));
        assert_eq!(h, RequestHeader { command: "handshake".into(), seq: 1 });
        let b: HandshakeRequest = roundtrip(&hex("81a756657273696f6e01"));
        assert_eq!(b.version, 1);
        let r: ResponseHeader = roundtrip(&hex("82a54572726f72a0a353657101"));
        assert_eq!(r, ResponseHeader { error: String::new(), seq: 1 });
    }

    #[test]
    fn nil_versus_empty_as_go_writes_them() {
        let q = QueryRequest {
            filter_tags: Some(vec![]),
            name: "load".into(),
            request_ack: true,
            ..Default::default()
        };
        let b = q.to_vec().unwrap();
        // FilterNodes nil, FilterTags {}, Payload nil.
        assert_eq!(&b[..15], &hex("87ab46696c7465724e6f646573c0aa")[..]);
        let pos = b.windows(10).position(|w| w == b"FilterTags").unwrap();
        assert_eq!(b[pos + 10], 0x80);
        let pos = b.windows(7).position(|w| w == b"Payload").unwrap();
        assert_eq!(b[pos + 7], 0xc0);
        let t = TagsRequest { delete_tags: None, tags: Some(vec![("a".into(), "b".into())]) };
        assert_eq!(t.to_vec().unwrap(), hex("82aa44656c65746554616773c0a45461677381a161a162"));
    }

    #[test]
    fn lenient_decode() {
        // Unknown key skipped, nil string, int16 width, bin for a []byte,
        // str8 for a string.
        let mut b = vec![0x84];
        b.extend(hex("a3466f6f92c0c0")); // Foo: [nil, nil]
        b.extend(hex("a44e616d65c0")); // Name: nil
        b.extend(hex("a8436f616c65736365c3")); // Coalesce: true
        b.extend(hex("a75061796c6f6164d9026869")); // Payload: str8 "hi"
        let (e, n) = EventRequest::from_slice(&b).unwrap();
        assert_eq!(n, b.len());
        assert_eq!(
            e,
            EventRequest { coalesce: true, name: String::new(), payload: Some(b"hi".to_vec()) }
        );
        let (s, _) = StopRequest::from_slice(&hex("81a453746f70cd0102")).unwrap();
        assert_eq!(s.stop, 0x102);
        // A nil struct is the zero value.
        let (z, _) = JoinResponse::from_slice(&[0xc0]).unwrap();
        assert_eq!(z.num, 0);
        // Strings reject bin, as Go does.
        assert!(AuthRequest::from_slice(&hex("81a7417574684b6579c40161")).is_err());
        // Truncated input says so.
        assert_eq!(
            MembersResponse::from_slice(&hex("81a74d656d626572739182")).unwrap_err(),
            WireError::Truncated
        );
    }

    #[test]
    fn value_keeps_integer_family() {
        let (v, _) = Value::from_slice(&hex("83a14101a142cd1f0aa143ff")).unwrap();
        assert_eq!(v.get("A"), Some(&Value::Int(1)));
        assert_eq!(v.get("B"), Some(&Value::Uint(0x1f0a)));
        assert_eq!(v.get("C"), Some(&Value::Int(-1)));
        assert_eq!(v.to_vec().unwrap(), hex("83a14101a142cd1f0aa143ff"));
    }

    #[test]
    fn stream_record_dispatch() {
        let u = UserEventRecord {
            coalesce: true,
            event: "user".into(),
            ltime: 7,
            name: "deploy".into(),
            payload: None,
        };
        let b = u.to_vec().unwrap();
        let (r, _) = StreamRecord::from_slice(&b).unwrap();
        assert_eq!(r, StreamRecord::User(u));
        let q = QueryEventRecord { event: "query".into(), id: 1, ..Default::default() };
        let (r, _) = StreamRecord::from_slice(&q.to_vec().unwrap()).unwrap();
        assert_eq!(r, StreamRecord::Query(q));
    }

    #[test]
    fn command_table() {
        for c in Command::ALL {
            assert_eq!(Command::from_name(c.name()), Some(c));
        }
        assert_eq!(Command::from_name("Members"), None);
        assert!(!Command::Members.has_request_body());
        assert!(Command::Members.has_response_body());
        assert!(!Command::Query.has_response_body());
        assert!(Command::Query.is_streaming());
    }

    #[test]
    fn stats_lookup() {
        let s = StatsResponse(Some(vec![(
            "agent".into(),
            Some(vec![("name".into(), "nodeA".into())]),
        )]));
        assert_eq!(s.get("agent", "name"), Some("nodeA"));
        assert_eq!(s.get("agent", "x"), None);
        let b = s.to_vec().unwrap();
        assert_eq!(StatsResponse::from_slice(&b).unwrap().0, s);
    }
}
