//! memberlist 0.2.2 messages (`protocol/memberlist.md` §3, §4).
//!
//! Each body is a struct of borrowed views, defined by one table (see
//! [`crate::fields`]): decoding matches map keys by exact name in any order
//! and skips unknown keys (as Go does); encoding writes keys in Go's order
//! (bytewise sorted) and leaves `omitempty` fields out when empty, so
//! captured Go bytes re-encode exactly.
//!
//! Byte fields that Go does not mark `omitempty` are `Option<&[u8]>`: nil
//! (`None`) and empty (`Some(&[])`) are different bytes on the wire.

use super::fields::{
    message, type_byte, Bin, Bool, Count, Decode, Encode, List, ListIter, OmitEmpty, Str, Uint,
};
use super::msgpack::{Reader, Writer};
pub use super::Body;
use super::{Error, Result};

type_byte! {
    /// The first byte of every memberlist message.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub enum MessageType {
        Ping = 0,
        IndirectPing = 1,
        Ack = 2,
        Suspect = 3,
        Alive = 4,
        Dead = 5,
        PushPull = 6,
        Compound = 7,
        User = 8,
        Compress = 9,
        Encrypt = 10,
        Nack = 11,
        HasCrc = 12,
        Err = 13,
    }
}

/// Length of the version vector `[pmin, pmax, pcur, dmin, dmax, dcur]`.
pub const VSN_LEN: usize = 6;

/// The version vector as a fixed array, if present and well formed.
pub fn vsn_array(vsn: Option<&[u8]>) -> Option<[u8; VSN_LEN]> {
    let v = vsn?.get(..VSN_LEN)?;
    let mut a = [0u8; VSN_LEN];
    a.copy_from_slice(v);
    Some(a)
}

/// The `Vsn` field codec: absent/nil/empty reads as is; 1..=5 bytes is
/// [`Error::BadVsn`] (such a vector crashes Go 0.2.2 peers, so we neither
/// accept nor relay it); longer vectors are accepted as Go reads them
/// (first six bytes used). Written as any `[]byte`.
pub struct Vsn;

impl<'a> Decode<'a, Option<&'a [u8]>> for Vsn {
    #[inline]
    fn decode(r: &mut Reader<'a>) -> Result<Option<&'a [u8]>> {
        match r.bytes()? {
            Some(v) if !v.is_empty() && v.len() < VSN_LEN => Err(Error::BadVsn),
            v => Ok(v),
        }
    }
}

impl Encode<Option<&[u8]>> for Vsn {
    #[inline(always)]
    fn encode(w: &mut Writer<'_>, v: Option<&[u8]>) -> Result<()> {
        w.bin_opt(v)
    }
}

message! {
    /// `ping` (type 0): a probe, answered by an [`Ack`].
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct Ping<'a> = MessageType::Ping {
        /// The intended recipient's name; a receiver with another name drops it.
        b"Node" => pub node: &'a str as Str,
        /// Sequence number chosen by the pinger, echoed in the ack.
        b"SeqNo" => pub seq_no: u32 as Uint,
        /// The pinger's advertise IP (4 or 16 bytes); `omitempty`.
        b"SourceAddr" => pub source_addr: &'a [u8] as OmitEmpty<Bin>,
        /// The pinger's name; `omitempty`.
        b"SourceNode" => pub source_node: &'a str as OmitEmpty<Str>,
        /// The pinger's advertise port; `omitempty`.
        b"SourcePort" => pub source_port: u16 as OmitEmpty<Uint>,
    }
}

message! {
    /// `indirectPingReq` (type 1): ask a helper to probe `node` for us.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct IndirectPing<'a> = MessageType::IndirectPing {
        /// Whether the requester wants a nack when the target does not answer.
        b"Nack" => pub nack: bool as Bool,
        /// Target name (put in the forwarded ping).
        b"Node" => pub node: &'a str as Str,
        /// Target port.
        b"Port" => pub port: u16 as Uint,
        /// The requester's sequence number, echoed in the relayed ack/nack.
        b"SeqNo" => pub seq_no: u32 as Uint,
        /// Requester IP; `omitempty`.
        b"SourceAddr" => pub source_addr: &'a [u8] as OmitEmpty<Bin>,
        /// Requester name; `omitempty`.
        b"SourceNode" => pub source_node: &'a str as OmitEmpty<Str>,
        /// Requester port; `omitempty`.
        b"SourcePort" => pub source_port: u16 as OmitEmpty<Uint>,
        /// Target IP.
        b"Target" => pub target: Option<&'a [u8]> as Bin,
    }
}

message! {
    /// `ackResp` (type 2): answer to a ping.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct Ack<'a> = MessageType::Ack {
        /// Ping-delegate payload (Serf: the Vivaldi coordinate); nil when relayed.
        b"Payload" => pub payload: Option<&'a [u8]> as Bin,
        /// The ping's sequence number.
        b"SeqNo" => pub seq_no: u32 as Uint,
    }
}

message! {
    /// `nackResp` (type 11): an indirect helper could not reach the target.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct Nack = MessageType::Nack {
        /// The requester's sequence number.
        b"SeqNo" => pub seq_no: u32 as Uint,
    }
}

/// `suspect` (type 3) and `dead` (type 5) share one layout.
macro_rules! accusation {
    ($(#[$meta:meta])* $name:ident = $ty:path) => {
        message! {
            $(#[$meta])*
            #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
            pub struct $name<'a> = $ty {
                /// The accuser.
                b"From" => pub from: &'a str as Str,
                /// The incarnation of `node` the accusation is about.
                b"Incarnation" => pub incarnation: u32 as Uint,
                /// The accused.
                b"Node" => pub node: &'a str as Str,
            }
        }
    };
}
accusation! {
    /// `suspect` (type 3): `from` suspects `node` at `incarnation`.
    Suspect = MessageType::Suspect
}
accusation! {
    /// `dead` (type 5): `from` declares `node` dead; `from == node` is a graceful leave.
    Dead = MessageType::Dead
}

message! {
    /// `alive` (type 4): `node` is alive at `incarnation`, with its address,
    /// metadata and version vector.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct Alive<'a> = MessageType::Alive {
        /// Advertise IP, 4 or 16 bytes.
        b"Addr" => pub addr: Option<&'a [u8]> as Bin,
        b"Incarnation" => pub incarnation: u32 as Uint,
        /// Delegate metadata (Serf: encoded tags), at most 512 bytes.
        b"Meta" => pub meta: Option<&'a [u8]> as Bin,
        b"Node" => pub node: &'a str as Str,
        b"Port" => pub port: u16 as Uint,
        /// `[pmin, pmax, pcur, dmin, dmax, dcur]`; see [`vsn_array`].
        b"Vsn" => pub vsn: Option<&'a [u8]> as Vsn,
    }
}

message! {
    /// `compress` (type 9): an LZW-compressed message or stream body.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct Compress<'a> = MessageType::Compress {
        /// 0 = LZW, the only algorithm.
        b"Algo" => pub algo: u8 as Uint,
        b"Buf" => pub buf: Option<&'a [u8]> as Bin,
    }
}

/// Size of a `compress` message wrapping `n` bytes of LZW output: the type
/// byte, `{Algo: 0, Buf: <n bytes>}`.
pub fn compress_message_len(n: usize) -> usize {
    // 0x09, fixmap, "Algo", 0, "Buf", str header, data
    let str_header = if n < 32 {
        1
    } else if n <= usize::from(u16::MAX) {
        3
    } else {
        5
    };
    1usize.saturating_add(1 + 5 + 1 + 4).saturating_add(str_header).saturating_add(n)
}

message! {
    /// `errResp` (type 13): a stream reply carrying an error string.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct ErrResp<'a> = MessageType::Err {
        b"Error" => pub error: &'a str as Str,
    }
}

/// Node states in push-pull (`pushNodeState.State`, a Go `int`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum NodeState {
    #[default]
    Alive = 0,
    Suspect = 1,
    Dead = 2,
    Left = 3,
}

impl TryFrom<i64> for NodeState {
    type Error = Error;
    fn try_from(v: i64) -> Result<Self> {
        Ok(match v {
            0 => NodeState::Alive,
            1 => NodeState::Suspect,
            2 => NodeState::Dead,
            3 => NodeState::Left,
            _ => return Err(Error::IntRange),
        })
    }
}

/// The `State` field codec: a Go `int` that must be a [`NodeState`].
pub struct State;

impl Decode<'_, NodeState> for State {
    #[inline]
    fn decode(r: &mut Reader<'_>) -> Result<NodeState> {
        NodeState::try_from(r.sint::<i64>()?)
    }
}

impl Encode<NodeState> for State {
    #[inline(always)]
    fn encode(w: &mut Writer<'_>, v: NodeState) -> Result<()> {
        w.uint(v as u64)
    }
}

/// Limit on a push-pull body (`maxPushStateBytes`, 20 MiB); also bounds
/// `Nodes` and `UserStateLen` before anything is read.
pub const MAX_PUSH_STATE_BYTES: usize = 20 * 1024 * 1024;

message! {
    /// `pushPullHeader`: the first object of a push-pull stream body.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct PushPullHeader = MessageType::PushPull {
        /// True for the push-pull made by a join, false for periodic sync.
        b"Join" => pub join: bool as Bool,
        /// Number of [`PushNodeState`] objects that follow.
        b"Nodes" => pub nodes: usize as Count,
        /// Bytes of delegate (Serf) state after the last node state.
        b"UserStateLen" => pub user_state_len: usize as Count,
    }
    check PushPullHeader::check;
}

impl PushPullHeader {
    fn check(&self) -> Result<()> {
        if self.nodes > MAX_PUSH_STATE_BYTES || self.user_state_len > MAX_PUSH_STATE_BYTES {
            return Err(Error::TooLarge);
        }
        Ok(())
    }
}

message! {
    /// `pushNodeState`: one node table entry in a push-pull.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct PushNodeState<'a> {
        b"Addr" => pub addr: Option<&'a [u8]> as Bin,
        b"Incarnation" => pub incarnation: u32 as Uint,
        b"Meta" => pub meta: Option<&'a [u8]> as Bin,
        b"Name" => pub name: &'a str as Str,
        /// 0 means "use the receiver's bind port".
        b"Port" => pub port: u16 as Uint,
        b"State" => pub state: NodeState as State,
        b"Vsn" => pub vsn: Option<&'a [u8]> as Vsn,
    }
}

/// The node states of a decoded push-pull, validated up front and decoded
/// again lazily on iteration (no allocation).
pub type NodeStates<'a> = List<'a, PushNodeState<'a>>;

/// Iterator over [`NodeStates`].
pub type NodeStatesIter<'a> = ListIter<'a, PushNodeState<'a>>;

/// A complete push-pull body: header, node states and raw user state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PushPull<'a> {
    pub join: bool,
    pub states: NodeStates<'a>,
    /// The delegate's state (Serf: a complete serf push-pull message), may be empty.
    pub user_state: &'a [u8],
}

impl<'a> PushPull<'a> {
    /// Reads a push-pull body (type byte already consumed).
    pub fn decode_from(r: &mut Reader<'a>) -> Result<Self> {
        let h = PushPullHeader::decode_from(r)?;
        let states = List::read_n(r, h.nodes)?;
        let user_state = r.take(h.user_state_len)?;
        Ok(PushPull { join: h.join, states, user_state })
    }

    /// Decodes a push-pull that fills `bytes` exactly (type byte already stripped).
    pub fn decode(bytes: &'a [u8]) -> Result<Self> {
        let mut r = Reader::new(bytes);
        let v = Self::decode_from(&mut r)?;
        r.finish()?;
        Ok(v)
    }

    /// Writes type byte, header, the given node states and the user state.
    pub fn encode_with<'s>(
        w: &mut Writer<'_>,
        join: bool,
        states: impl ExactSizeIterator<Item = PushNodeState<'s>>,
        user_state: &[u8],
    ) -> Result<()> {
        let h = PushPullHeader { nodes: states.len(), user_state_len: user_state.len(), join };
        h.encode(w)?;
        for s in states {
            s.encode(w)?;
        }
        w.raw(user_state)
    }

    /// Re-encodes this push-pull.
    pub fn encode(&self, w: &mut Writer<'_>) -> Result<()> {
        Self::encode_with(w, self.join, self.states.iter(), self.user_state)
    }
}

message! {
    /// `userMsgHeader`: the header of a user message sent over a stream.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct UserMsgHeader = MessageType::User {
        b"UserMsgLen" => pub user_msg_len: usize as Count,
    }
    check UserMsgHeader::check;
}

impl UserMsgHeader {
    fn check(&self) -> Result<()> {
        if self.user_msg_len > MAX_PUSH_STATE_BYTES {
            return Err(Error::TooLarge);
        }
        Ok(())
    }
}

/// A decoded packet-level message, after compound and compress layers are
/// peeled (see [`super::packet`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Message<'a> {
    Ping(Ping<'a>),
    IndirectPing(IndirectPing<'a>),
    Ack(Ack<'a>),
    Nack(Nack),
    Suspect(Suspect<'a>),
    Alive(Alive<'a>),
    Dead(Dead<'a>),
    /// A delegate (Serf) message: the bytes after the `0x08` type byte.
    User(&'a [u8]),
}

impl<'a> Message<'a> {
    /// Decodes one leaf message (type byte + body). Wrapper types (compound,
    /// compress, CRC, encrypt) and stream-only types are [`Error::Unexpected`];
    /// unknown type bytes are [`Error::UnknownType`]; an empty slice is [`Error::Empty`].
    pub fn decode(bytes: &'a [u8]) -> Result<Self> {
        let (&t, body) = bytes.split_first().ok_or(Error::Empty)?;
        Ok(match MessageType::try_from(t)? {
            MessageType::Ping => Message::Ping(Ping::decode(body)?),
            MessageType::IndirectPing => Message::IndirectPing(IndirectPing::decode(body)?),
            MessageType::Ack => Message::Ack(Ack::decode(body)?),
            MessageType::Nack => Message::Nack(Nack::decode(body)?),
            MessageType::Suspect => Message::Suspect(Suspect::decode(body)?),
            MessageType::Alive => Message::Alive(Alive::decode(body)?),
            MessageType::Dead => Message::Dead(Dead::decode(body)?),
            MessageType::User => Message::User(body),
            _ => return Err(Error::Unexpected(t)),
        })
    }

    /// Writes type byte + body.
    pub fn encode(&self, w: &mut Writer<'_>) -> Result<()> {
        match self {
            Message::Ping(m) => m.encode(w),
            Message::IndirectPing(m) => m.encode(w),
            Message::Ack(m) => m.encode(w),
            Message::Nack(m) => m.encode(w),
            Message::Suspect(m) => m.encode(w),
            Message::Alive(m) => m.encode(w),
            Message::Dead(m) => m.encode(w),
            Message::User(b) => {
                w.byte(MessageType::User as u8)?;
                w.raw(b)
            }
        }
    }

    /// The type byte of this message.
    pub fn kind(&self) -> MessageType {
        match self {
            Message::Ping(_) => MessageType::Ping,
            Message::IndirectPing(_) => MessageType::IndirectPing,
            Message::Ack(_) => MessageType::Ack,
            Message::Nack(_) => MessageType::Nack,
            Message::Suspect(_) => MessageType::Suspect,
            Message::Alive(_) => MessageType::Alive,
            Message::Dead(_) => MessageType::Dead,
            Message::User(_) => MessageType::User,
        }
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::arithmetic_side_effects)]
mod tests {
    use super::*;
    use crate::msgpack::Dialect;

    use crate::testdata::unhex as hex;

    fn reencode(m: &Message<'_>) -> Vec<u8> {
        let mut buf = vec![0xAA; 4096];
        let mut w = Writer::new(&mut buf, Dialect::Gossip);
        m.encode(&mut w).unwrap();
        let n = w.len();
        assert!(buf[n..].iter().all(|&b| b == 0xAA), "wrote past its length");
        buf.truncate(n);
        buf
    }

    #[test]
    fn captured_ping() {
        let b = hex("0085a44e6f6465a26e32a55365714e6f01aa536f7572636541646472a47f000101aa536f757263654e6f6465a26e31aa536f75726365506f7274cd1f0a");
        let m = Message::decode(&b).unwrap();
        let Message::Ping(p) = m else { panic!("{m:?}") };
        assert_eq!((p.node, p.seq_no, p.source_node, p.source_port), ("n2", 1, "n1", 7946));
        assert_eq!(p.source_addr, &[127, 0, 1, 1]);
        assert_eq!(reencode(&m), b);
        assert_eq!(p.encoded_len(), b.len());
    }

    #[test]
    fn ping_without_source_omits_fields() {
        let p = Ping { seq_no: 5, node: "x", ..Default::default() };
        let mut buf = [0u8; 64];
        let n = p.encode_to(&mut buf).unwrap();
        assert_eq!(&buf[..n], &hex("0082a44e6f6465a178a55365714e6f05"));
        assert_eq!(Ping::decode(&buf[1..n]).unwrap(), p);
    }

    #[test]
    fn alive_vsn_rules() {
        let mut a = Alive { node: "n", vsn: Some(&[1, 5, 2, 2, 5, 5]), ..Default::default() };
        let mut buf = [0u8; 128];
        let n = a.encode_to(&mut buf).unwrap();
        assert_eq!(Message::decode(&buf[..n]).unwrap(), Message::Alive(a));
        a.vsn = Some(&[1, 5, 2]);
        let n = a.encode_to(&mut buf).unwrap();
        assert_eq!(Message::decode(&buf[..n]), Err(Error::BadVsn));
        a.vsn = None;
        let n = a.encode_to(&mut buf).unwrap();
        assert!(Message::decode(&buf[..n]).is_ok());
        assert_eq!(vsn_array(Some(&[1, 5, 2, 2, 5, 5, 9])), Some([1, 5, 2, 2, 5, 5]));
        assert_eq!(vsn_array(Some(&[1])), None);
    }

    #[test]
    fn message_type_errors() {
        assert_eq!(Message::decode(&[]), Err(Error::Empty));
        assert_eq!(Message::decode(&[99]), Err(Error::UnknownType(99)));
        assert_eq!(Message::decode(&[7, 0]), Err(Error::Unexpected(7)));
        assert_eq!(Message::decode(&[0]), Err(Error::Truncated));
        // trailing garbage after a complete body
        assert_eq!(
            Message::decode(&[11, 0x81, 0xa5, b'S', b'e', b'q', b'N', b'o', 1, 0]),
            Err(Error::TrailingBytes)
        );
        // wrong field types
        assert_eq!(
            Message::decode(&[11, 0x81, 0xa5, b'S', b'e', b'q', b'N', b'o', 0xa1, b'x']),
            Err(Error::WrongType)
        );
        assert_eq!(
            Message::decode(&[11, 0x81, 0xa5, b'S', b'e', b'q', b'N', b'o', 0xff]),
            Err(Error::IntRange)
        );
    }

    #[test]
    fn push_pull_bounds() {
        let mut buf = [0u8; 64];
        let mut w = Writer::new(&mut buf, Dialect::Gossip);
        PushPullHeader { nodes: 3, user_state_len: 0, join: true }.encode_body(&mut w).unwrap();
        let n = w.len();
        // claims 3 node states, has none
        assert_eq!(PushPull::decode(&buf[..n]), Err(Error::Truncated));
        let mut w = Writer::new(&mut buf, Dialect::Gossip);
        w.map_len(1).unwrap();
        w.key("Nodes").unwrap();
        w.sint(-1).unwrap();
        let n = w.len();
        assert_eq!(PushPull::decode(&buf[..n]), Err(Error::IntRange));
        let mut w = Writer::new(&mut buf, Dialect::Gossip);
        w.map_len(1).unwrap();
        w.key("UserStateLen").unwrap();
        w.uint(1 << 40).unwrap();
        let n = w.len();
        assert_eq!(PushPull::decode(&buf[..n]), Err(Error::TooLarge));
    }

    #[test]
    fn compress_len_formula() {
        for n in [0usize, 5, 31, 32, 200, 65535, 65536] {
            let data = vec![7u8; n];
            let c = Compress { algo: 0, buf: Some(&data) };
            assert_eq!(c.encoded_len(), compress_message_len(n), "{n}");
        }
    }
}
