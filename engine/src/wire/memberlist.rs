//! memberlist 0.2.2 messages (`protocol/memberlist.md` §3, §4).
//!
//! Each body is a struct of borrowed views. Decoding matches map keys by
//! exact name in any order and skips unknown keys (as Go does); encoding
//! writes keys in Go's order (bytewise sorted) and leaves `omitempty` fields
//! out when empty, so captured Go bytes re-encode exactly.
//!
//! Byte fields that Go does not mark `omitempty` are `Option<&[u8]>`: nil
//! (`None`) and empty (`Some(&[])`) are different bytes on the wire.

use super::msgpack::{read_struct, Reader, Writer};
pub use super::Body;
use super::{Error, Result};

/// The first byte of every memberlist message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
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

impl TryFrom<u8> for MessageType {
    type Error = Error;
    fn try_from(b: u8) -> Result<Self> {
        const ALL: [MessageType; 14] = [
            MessageType::Ping,
            MessageType::IndirectPing,
            MessageType::Ack,
            MessageType::Suspect,
            MessageType::Alive,
            MessageType::Dead,
            MessageType::PushPull,
            MessageType::Compound,
            MessageType::User,
            MessageType::Compress,
            MessageType::Encrypt,
            MessageType::Nack,
            MessageType::HasCrc,
            MessageType::Err,
        ];
        ALL.get(usize::from(b)).copied().ok_or(Error::UnknownType(b))
    }
}

/// Number of map entries: one per `true` (fields always present pass `true`,
/// `omitempty` fields pass "is not empty").
fn entries<const N: usize>(present: [bool; N]) -> usize {
    present.into_iter().filter(|p| *p).count()
}

/// Reads a `Vsn`: absent/nil/empty is `None`; 1..=5 bytes is [`Error::BadVsn`]
/// (such a vector crashes Go 0.2.2 peers, so we neither accept nor relay it);
/// longer vectors are accepted as Go reads them (first six bytes used).
fn read_vsn<'a>(r: &mut Reader<'a>) -> Result<Option<&'a [u8]>> {
    match r.bytes()? {
        None => Ok(None),
        Some(v) if v.is_empty() => Ok(Some(v)),
        Some(v) if v.len() < VSN_LEN => Err(Error::BadVsn),
        Some(v) => Ok(Some(v)),
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

/// `ping` (type 0): a probe, answered by an [`Ack`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ping<'a> {
    /// Sequence number chosen by the pinger, echoed in the ack.
    pub seq_no: u32,
    /// The intended recipient's name; a receiver with another name drops it.
    pub node: &'a str,
    /// The pinger's advertise IP (4 or 16 bytes); `omitempty`.
    pub source_addr: &'a [u8],
    /// The pinger's advertise port; `omitempty`.
    pub source_port: u16,
    /// The pinger's name; `omitempty`.
    pub source_node: &'a str,
}

impl<'a> Body<'a> for Ping<'a> {
    const TYPE: u8 = MessageType::Ping as u8;
    fn decode_from(r: &mut Reader<'a>) -> Result<Self> {
        let mut m = Ping::default();
        read_struct(r, |k, r| {
            match k {
                b"Node" => m.node = r.str()?,
                b"SeqNo" => m.seq_no = r.uint()?,
                b"SourceAddr" => m.source_addr = r.bytes_or_empty()?,
                b"SourceNode" => m.source_node = r.str()?,
                b"SourcePort" => m.source_port = r.uint()?,
                _ => r.skip()?,
            }
            Ok(())
        })?;
        Ok(m)
    }
    fn encode_body(&self, w: &mut Writer<'_>) -> Result<()> {
        let n = entries([
            true,
            true,
            !self.source_addr.is_empty(),
            !self.source_node.is_empty(),
            self.source_port != 0,
        ]);
        w.map_len(n)?;
        w.key("Node")?;
        w.str(self.node)?;
        w.key("SeqNo")?;
        w.uint(self.seq_no.into())?;
        if !self.source_addr.is_empty() {
            w.key("SourceAddr")?;
            w.bin(self.source_addr)?;
        }
        if !self.source_node.is_empty() {
            w.key("SourceNode")?;
            w.str(self.source_node)?;
        }
        if self.source_port != 0 {
            w.key("SourcePort")?;
            w.uint(self.source_port.into())?;
        }
        Ok(())
    }
}

/// `indirectPingReq` (type 1): ask a helper to probe `node` for us.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IndirectPing<'a> {
    /// The requester's sequence number, echoed in the relayed ack/nack.
    pub seq_no: u32,
    /// Target IP.
    pub target: Option<&'a [u8]>,
    /// Target port.
    pub port: u16,
    /// Target name (put in the forwarded ping).
    pub node: &'a str,
    /// Whether the requester wants a nack when the target does not answer.
    pub nack: bool,
    /// Requester IP; `omitempty`.
    pub source_addr: &'a [u8],
    /// Requester port; `omitempty`.
    pub source_port: u16,
    /// Requester name; `omitempty`.
    pub source_node: &'a str,
}

impl<'a> Body<'a> for IndirectPing<'a> {
    const TYPE: u8 = MessageType::IndirectPing as u8;
    fn decode_from(r: &mut Reader<'a>) -> Result<Self> {
        let mut m = IndirectPing::default();
        read_struct(r, |k, r| {
            match k {
                b"Nack" => m.nack = r.bool()?,
                b"Node" => m.node = r.str()?,
                b"Port" => m.port = r.uint()?,
                b"SeqNo" => m.seq_no = r.uint()?,
                b"SourceAddr" => m.source_addr = r.bytes_or_empty()?,
                b"SourceNode" => m.source_node = r.str()?,
                b"SourcePort" => m.source_port = r.uint()?,
                b"Target" => m.target = r.bytes()?,
                _ => r.skip()?,
            }
            Ok(())
        })?;
        Ok(m)
    }
    fn encode_body(&self, w: &mut Writer<'_>) -> Result<()> {
        let n = entries([
            true,
            true,
            true,
            true,
            true,
            !self.source_addr.is_empty(),
            !self.source_node.is_empty(),
            self.source_port != 0,
        ]);
        w.map_len(n)?;
        w.key("Nack")?;
        w.bool(self.nack)?;
        w.key("Node")?;
        w.str(self.node)?;
        w.key("Port")?;
        w.uint(self.port.into())?;
        w.key("SeqNo")?;
        w.uint(self.seq_no.into())?;
        if !self.source_addr.is_empty() {
            w.key("SourceAddr")?;
            w.bin(self.source_addr)?;
        }
        if !self.source_node.is_empty() {
            w.key("SourceNode")?;
            w.str(self.source_node)?;
        }
        if self.source_port != 0 {
            w.key("SourcePort")?;
            w.uint(self.source_port.into())?;
        }
        w.key("Target")?;
        w.bin_opt(self.target)
    }
}

/// `ackResp` (type 2): answer to a ping.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ack<'a> {
    /// The ping's sequence number.
    pub seq_no: u32,
    /// Ping-delegate payload (Serf: the Vivaldi coordinate); nil when relayed.
    pub payload: Option<&'a [u8]>,
}

impl<'a> Body<'a> for Ack<'a> {
    const TYPE: u8 = MessageType::Ack as u8;
    fn decode_from(r: &mut Reader<'a>) -> Result<Self> {
        let mut m = Ack::default();
        read_struct(r, |k, r| {
            match k {
                b"Payload" => m.payload = r.bytes()?,
                b"SeqNo" => m.seq_no = r.uint()?,
                _ => r.skip()?,
            }
            Ok(())
        })?;
        Ok(m)
    }
    fn encode_body(&self, w: &mut Writer<'_>) -> Result<()> {
        w.map_len(2)?;
        w.key("Payload")?;
        w.bin_opt(self.payload)?;
        w.key("SeqNo")?;
        w.uint(self.seq_no.into())
    }
}

/// `nackResp` (type 11): an indirect helper could not reach the target.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Nack {
    /// The requester's sequence number.
    pub seq_no: u32,
}

impl<'a> Body<'a> for Nack {
    const TYPE: u8 = MessageType::Nack as u8;
    fn decode_from(r: &mut Reader<'a>) -> Result<Self> {
        let mut m = Nack::default();
        read_struct(r, |k, r| {
            match k {
                b"SeqNo" => m.seq_no = r.uint()?,
                _ => r.skip()?,
            }
            Ok(())
        })?;
        Ok(m)
    }
    fn encode_body(&self, w: &mut Writer<'_>) -> Result<()> {
        w.map_len(1)?;
        w.key("SeqNo")?;
        w.uint(self.seq_no.into())
    }
}

/// `suspect` (type 3): `from` suspects `node` at `incarnation`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Suspect<'a> {
    pub incarnation: u32,
    pub node: &'a str,
    pub from: &'a str,
}

/// `dead` (type 5): `from` declares `node` dead; `from == node` is a graceful leave.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dead<'a> {
    pub incarnation: u32,
    pub node: &'a str,
    pub from: &'a str,
}

macro_rules! accusation {
    ($t:ident, $ty:expr) => {
        impl<'a> Body<'a> for $t<'a> {
            const TYPE: u8 = $ty as u8;
            fn decode_from(r: &mut Reader<'a>) -> Result<Self> {
                let mut m = $t::default();
                read_struct(r, |k, r| {
                    match k {
                        b"From" => m.from = r.str()?,
                        b"Incarnation" => m.incarnation = r.uint()?,
                        b"Node" => m.node = r.str()?,
                        _ => r.skip()?,
                    }
                    Ok(())
                })?;
                Ok(m)
            }
            fn encode_body(&self, w: &mut Writer<'_>) -> Result<()> {
                w.map_len(3)?;
                w.key("From")?;
                w.str(self.from)?;
                w.key("Incarnation")?;
                w.uint(self.incarnation.into())?;
                w.key("Node")?;
                w.str(self.node)
            }
        }
    };
}
accusation!(Suspect, MessageType::Suspect);
accusation!(Dead, MessageType::Dead);

/// `alive` (type 4): `node` is alive at `incarnation`, with its address,
/// metadata and version vector.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Alive<'a> {
    pub incarnation: u32,
    pub node: &'a str,
    /// Advertise IP, 4 or 16 bytes.
    pub addr: Option<&'a [u8]>,
    pub port: u16,
    /// Delegate metadata (Serf: encoded tags), at most 512 bytes.
    pub meta: Option<&'a [u8]>,
    /// `[pmin, pmax, pcur, dmin, dmax, dcur]`; see [`vsn_array`].
    pub vsn: Option<&'a [u8]>,
}

impl<'a> Body<'a> for Alive<'a> {
    const TYPE: u8 = MessageType::Alive as u8;
    fn decode_from(r: &mut Reader<'a>) -> Result<Self> {
        let mut m = Alive::default();
        read_struct(r, |k, r| {
            match k {
                b"Addr" => m.addr = r.bytes()?,
                b"Incarnation" => m.incarnation = r.uint()?,
                b"Meta" => m.meta = r.bytes()?,
                b"Node" => m.node = r.str()?,
                b"Port" => m.port = r.uint()?,
                b"Vsn" => m.vsn = read_vsn(r)?,
                _ => r.skip()?,
            }
            Ok(())
        })?;
        Ok(m)
    }
    fn encode_body(&self, w: &mut Writer<'_>) -> Result<()> {
        w.map_len(6)?;
        w.key("Addr")?;
        w.bin_opt(self.addr)?;
        w.key("Incarnation")?;
        w.uint(self.incarnation.into())?;
        w.key("Meta")?;
        w.bin_opt(self.meta)?;
        w.key("Node")?;
        w.str(self.node)?;
        w.key("Port")?;
        w.uint(self.port.into())?;
        w.key("Vsn")?;
        w.bin_opt(self.vsn)
    }
}

/// `compress` (type 9): an LZW-compressed message or stream body.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Compress<'a> {
    /// 0 = LZW, the only algorithm.
    pub algo: u8,
    pub buf: Option<&'a [u8]>,
}

impl<'a> Body<'a> for Compress<'a> {
    const TYPE: u8 = MessageType::Compress as u8;
    fn decode_from(r: &mut Reader<'a>) -> Result<Self> {
        let mut m = Compress::default();
        read_struct(r, |k, r| {
            match k {
                b"Algo" => m.algo = r.uint()?,
                b"Buf" => m.buf = r.bytes()?,
                _ => r.skip()?,
            }
            Ok(())
        })?;
        Ok(m)
    }
    fn encode_body(&self, w: &mut Writer<'_>) -> Result<()> {
        w.map_len(2)?;
        w.key("Algo")?;
        w.uint(self.algo.into())?;
        w.key("Buf")?;
        w.bin_opt(self.buf)
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

/// `errResp` (type 13): a stream reply carrying an error string.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ErrResp<'a> {
    pub error: &'a str,
}

impl<'a> Body<'a> for ErrResp<'a> {
    const TYPE: u8 = MessageType::Err as u8;
    fn decode_from(r: &mut Reader<'a>) -> Result<Self> {
        let mut m = ErrResp::default();
        read_struct(r, |k, r| {
            match k {
                b"Error" => m.error = r.str()?,
                _ => r.skip()?,
            }
            Ok(())
        })?;
        Ok(m)
    }
    fn encode_body(&self, w: &mut Writer<'_>) -> Result<()> {
        w.map_len(1)?;
        w.key("Error")?;
        w.str(self.error)
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

/// `pushPullHeader`: the first object of a push-pull stream body.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PushPullHeader {
    /// Number of [`PushNodeState`] objects that follow.
    pub nodes: usize,
    /// Bytes of delegate (Serf) state after the last node state.
    pub user_state_len: usize,
    /// True for the push-pull made by a join, false for periodic sync.
    pub join: bool,
}

/// Limit on a push-pull body (`maxPushStateBytes`, 20 MiB); also bounds
/// `Nodes` and `UserStateLen` before anything is read.
pub const MAX_PUSH_STATE_BYTES: usize = 20 * 1024 * 1024;

impl<'a> Body<'a> for PushPullHeader {
    const TYPE: u8 = MessageType::PushPull as u8;
    fn decode_from(r: &mut Reader<'a>) -> Result<Self> {
        let mut m = PushPullHeader::default();
        read_struct(r, |k, r| {
            match k {
                b"Join" => m.join = r.bool()?,
                b"Nodes" => m.nodes = r.count()?,
                b"UserStateLen" => m.user_state_len = r.count()?,
                _ => r.skip()?,
            }
            Ok(())
        })?;
        if m.nodes > MAX_PUSH_STATE_BYTES || m.user_state_len > MAX_PUSH_STATE_BYTES {
            return Err(Error::TooLarge);
        }
        Ok(m)
    }
    fn encode_body(&self, w: &mut Writer<'_>) -> Result<()> {
        w.map_len(3)?;
        w.key("Join")?;
        w.bool(self.join)?;
        w.key("Nodes")?;
        w.uint(self.nodes as u64)?;
        w.key("UserStateLen")?;
        w.uint(self.user_state_len as u64)
    }
}

/// `pushNodeState`: one node table entry in a push-pull.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PushNodeState<'a> {
    pub name: &'a str,
    pub addr: Option<&'a [u8]>,
    /// 0 means "use the receiver's bind port".
    pub port: u16,
    pub meta: Option<&'a [u8]>,
    pub incarnation: u32,
    pub state: NodeState,
    pub vsn: Option<&'a [u8]>,
}

impl<'a> PushNodeState<'a> {
    /// Reads one node state object.
    pub fn decode_from(r: &mut Reader<'a>) -> Result<Self> {
        let mut m = PushNodeState::default();
        read_struct(r, |k, r| {
            match k {
                b"Addr" => m.addr = r.bytes()?,
                b"Incarnation" => m.incarnation = r.uint()?,
                b"Meta" => m.meta = r.bytes()?,
                b"Name" => m.name = r.str()?,
                b"Port" => m.port = r.uint()?,
                b"State" => m.state = NodeState::try_from(r.sint::<i64>()?)?,
                b"Vsn" => m.vsn = read_vsn(r)?,
                _ => r.skip()?,
            }
            Ok(())
        })?;
        Ok(m)
    }

    /// Writes one node state object.
    pub fn encode(&self, w: &mut Writer<'_>) -> Result<()> {
        w.map_len(7)?;
        w.key("Addr")?;
        w.bin_opt(self.addr)?;
        w.key("Incarnation")?;
        w.uint(self.incarnation.into())?;
        w.key("Meta")?;
        w.bin_opt(self.meta)?;
        w.key("Name")?;
        w.str(self.name)?;
        w.key("Port")?;
        w.uint(self.port.into())?;
        w.key("State")?;
        w.uint(self.state as u64)?;
        w.key("Vsn")?;
        w.bin_opt(self.vsn)
    }
}

/// The node states of a decoded push-pull, validated up front and decoded
/// again lazily on iteration (no allocation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeStates<'a> {
    raw: &'a [u8],
    count: usize,
}

impl<'a> NodeStates<'a> {
    /// Number of node states.
    pub fn len(&self) -> usize {
        self.count
    }
    /// True if there are none.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
    /// The node states in wire order.
    pub fn iter(&self) -> NodeStatesIter<'a> {
        NodeStatesIter { r: Reader::new(self.raw), left: self.count }
    }
}

impl<'a> IntoIterator for NodeStates<'a> {
    type Item = PushNodeState<'a>;
    type IntoIter = NodeStatesIter<'a>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Iterator over [`NodeStates`].
#[derive(Clone, Debug)]
pub struct NodeStatesIter<'a> {
    r: Reader<'a>,
    left: usize,
}

impl<'a> Iterator for NodeStatesIter<'a> {
    type Item = PushNodeState<'a>;
    fn next(&mut self) -> Option<Self::Item> {
        self.left = self.left.checked_sub(1)?;
        // Validated when the push-pull was decoded; a failure here cannot
        // happen, and ends the iteration rather than panicking.
        PushNodeState::decode_from(&mut self.r).ok()
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}

impl ExactSizeIterator for NodeStatesIter<'_> {}

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
        let start = r.remaining();
        let before = r.position();
        for _ in 0..h.nodes {
            PushNodeState::decode_from(r)?;
        }
        let used = r.position().checked_sub(before).ok_or(Error::Truncated)?;
        let raw = start.get(..used).ok_or(Error::Truncated)?;
        let user_state = r.take(h.user_state_len)?;
        Ok(PushPull { join: h.join, states: NodeStates { raw, count: h.nodes }, user_state })
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

/// `userMsgHeader`: the header of a user message sent over a stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UserMsgHeader {
    pub user_msg_len: usize,
}

impl<'a> Body<'a> for UserMsgHeader {
    const TYPE: u8 = MessageType::User as u8;
    fn decode_from(r: &mut Reader<'a>) -> Result<Self> {
        let mut m = UserMsgHeader::default();
        read_struct(r, |k, r| {
            match k {
                b"UserMsgLen" => m.user_msg_len = r.count()?,
                _ => r.skip()?,
            }
            Ok(())
        })?;
        if m.user_msg_len > MAX_PUSH_STATE_BYTES {
            return Err(Error::TooLarge);
        }
        Ok(m)
    }
    fn encode_body(&self, w: &mut Writer<'_>) -> Result<()> {
        w.map_len(1)?;
        w.key("UserMsgLen")?;
        w.uint(self.user_msg_len as u64)
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
    use crate::wire::msgpack::Dialect;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

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
