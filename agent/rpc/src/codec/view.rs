//! Borrowed views of the replies a server sends most: encoded straight from
//! the data the server holds (its member table, its error strings), with no
//! owned copy in between, and byte for byte as the owned type with the same
//! values ([`Member`], [`MembersResponse`], [`MemberEventRecord`],
//! [`ResponseHeader`]).
//!
//! msgpack writes a list's or a map's length before its items, so every list
//! here is given as its items *and* their count: nothing is walked twice to
//! count it. A count that does not match the items is an error, never a
//! malformed message. [`append`] writes into a growable buffer in one pass;
//! it encodes again, into a larger buffer, only when its size hint was short.
//!
//! [`Member`]: super::Member
//! [`MembersResponse`]: super::MembersResponse
//! [`MemberEventRecord`]: super::MemberEventRecord
//! [`ResponseHeader`]: super::ResponseHeader

use std::net::IpAddr;

use wire::msgpack::{Dialect, Writer};
use wire::{Error as WireError, Result as WireResult};

use super::Encode;

/// Largest encoding [`append`] produces, bytes: far above any real reply
/// (1000 members are ~150 KiB), low enough that a runaway value fails
/// instead of exhausting memory.
pub const MAX_APPEND: usize = 1 << 30;

/// Room [`append`] starts with when its hint is smaller, bytes.
const MIN_ROOM: usize = 64;

/// Appends what `f` writes, in the RPC dialect, to `out`, and returns its
/// length. `f` first gets `size_hint` bytes of room (at least 64); when that
/// is not enough ([`WireError::NoSpace`]) it runs again with twice the room,
/// up to [`MAX_APPEND`] bytes (then the error is [`WireError::TooLarge`]).
/// `f` must therefore write the same bytes each time it runs. On any error
/// `out` is left as it was.
///
/// Only the room actually offered is initialised, so a hint close to the
/// encoded size costs one pass and no more than that much zeroing.
pub fn append(
    out: &mut Vec<u8>,
    size_hint: usize,
    mut f: impl FnMut(&mut Writer<'_>) -> WireResult<()>,
) -> WireResult<usize> {
    let start = out.len();
    let mut room = size_hint.clamp(MIN_ROOM, MAX_APPEND);
    loop {
        let end = start.checked_add(room).ok_or(WireError::TooLarge)?;
        out.resize(end, 0);
        let result = {
            let mut w = Writer::new(out.get_mut(start..).unwrap_or(&mut []), Dialect::Rpc);
            f(&mut w).map(|()| w.len())
        };
        match result {
            Ok(n) => {
                out.truncate(start.saturating_add(n));
                return Ok(n);
            }
            Err(WireError::NoSpace) if room < MAX_APPEND => {
                room = room.saturating_mul(2).min(MAX_APPEND);
            }
            Err(e) => {
                out.truncate(start);
                return Err(match e {
                    WireError::NoSpace => WireError::TooLarge,
                    e => e,
                });
            }
        }
    }
}

/// [`ResponseHeader`](super::ResponseHeader) borrowing its error text: the
/// header of every reply and record a server sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResponseHeaderView<'a> {
    /// `""` on success, otherwise the error text.
    pub error: &'a str,
    /// The Seq of the request this answers.
    pub seq: u64,
}

impl Encode for ResponseHeaderView<'_> {
    fn encode(&self, w: &mut Writer<'_>) -> WireResult<()> {
        w.map_len(2)?;
        w.key("Error")?;
        w.str(self.error)?;
        w.key("Seq")?;
        w.uint(self.seq)
    }
}

/// A member as the RPC protocol shows it (rpc.md §5.1), borrowed from
/// wherever the server keeps it. [`MemberView::write`] produces the bytes of
/// the owned [`Member`](super::Member) with `addr: Some(octets)`, the same
/// numbers and strings, and `tags: Some(pairs)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemberView<'a, T> {
    /// Written as 4 bytes for IPv4 and 16 for IPv6 (Go's `net.IP` as the
    /// agent holds it).
    pub addr: IpAddr,
    /// The node name.
    pub name: &'a str,
    /// The gossip port.
    pub port: u16,
    /// `alive`, `leaving`, `left`, `failed`.
    pub status: &'a str,
    /// Memberlist protocol versions `[min, max, cur]`.
    pub protocol: [u8; 3],
    /// Serf (delegate) protocol versions `[min, max, cur]`.
    pub delegate: [u8; 3],
    /// The tags as `(name, value)` pairs in the order to write them; an
    /// iterator that knows its length (`&BTreeMap<String, String>` is one).
    /// No tags is `{}`, never nil, as the agent sends it.
    pub tags: T,
}

impl<T, K, V> MemberView<'_, T>
where
    T: IntoIterator<Item = (K, V)>,
    T::IntoIter: ExactSizeIterator,
    K: AsRef<str>,
    V: AsRef<str>,
{
    /// Writes the member as one msgpack map (keys in Go's sorted order).
    /// [`WireError::IntRange`] if the tags yield more or fewer pairs than
    /// their iterator's `len()` said.
    pub fn write(self, w: &mut Writer<'_>) -> WireResult<()> {
        let [pmin, pmax, pcur] = self.protocol;
        let [dmin, dmax, dcur] = self.delegate;
        w.map_len(11)?;
        w.key("Addr")?;
        match self.addr {
            IpAddr::V4(a) => w.bin(&a.octets())?,
            IpAddr::V6(a) => w.bin(&a.octets())?,
        }
        w.key("DelegateCur")?;
        w.uint(dcur.into())?;
        w.key("DelegateMax")?;
        w.uint(dmax.into())?;
        w.key("DelegateMin")?;
        w.uint(dmin.into())?;
        w.key("Name")?;
        w.str(self.name)?;
        w.key("Port")?;
        w.uint(self.port.into())?;
        w.key("ProtocolCur")?;
        w.uint(pcur.into())?;
        w.key("ProtocolMax")?;
        w.uint(pmax.into())?;
        w.key("ProtocolMin")?;
        w.uint(pmin.into())?;
        w.key("Status")?;
        w.str(self.status)?;
        w.key("Tags")?;
        let tags = self.tags.into_iter();
        let len = tags.len();
        w.map_len(len)?;
        exactly(len, tags, |(k, v)| {
            w.str(k.as_ref())?;
            w.str(v.as_ref())
        })
    }
}

impl<T, K, V> Encode for MemberView<'_, T>
where
    T: IntoIterator<Item = (K, V)> + Clone,
    T::IntoIter: ExactSizeIterator,
    K: AsRef<str>,
    V: AsRef<str>,
{
    fn encode(&self, w: &mut Writer<'_>) -> WireResult<()> {
        self.clone().write(w)
    }
}

/// Runs `f` on each item, checking that there are exactly `len`.
fn exactly<I: Iterator>(
    len: usize,
    items: I,
    mut f: impl FnMut(I::Item) -> WireResult<()>,
) -> WireResult<()> {
    let mut n = 0usize;
    for item in items {
        if n == len {
            return Err(WireError::IntRange);
        }
        f(item)?;
        n = n.saturating_add(1);
    }
    if n == len {
        Ok(())
    } else {
        Err(WireError::IntRange)
    }
}

/// Writes `[]Member`: an array of `len` items, the views `members` yields.
/// [`WireError::IntRange`] if it yields more or fewer than `len`.
pub fn write_member_list<'a, T, K, V>(
    w: &mut Writer<'_>,
    len: usize,
    members: impl IntoIterator<Item = MemberView<'a, T>>,
) -> WireResult<()>
where
    T: IntoIterator<Item = (K, V)>,
    T::IntoIter: ExactSizeIterator,
    K: AsRef<str>,
    V: AsRef<str>,
{
    w.array_len(len)?;
    exactly(len, members.into_iter(), |m| m.write(w))
}

/// Writes the reply body of `members` and `members-filtered`: the bytes of
/// [`MembersResponse`](super::MembersResponse) with `members: Some(list)`
/// (see [`write_member_list`] for `len`).
pub fn write_members_response<'a, T, K, V>(
    w: &mut Writer<'_>,
    len: usize,
    members: impl IntoIterator<Item = MemberView<'a, T>>,
) -> WireResult<()>
where
    T: IntoIterator<Item = (K, V)>,
    T::IntoIter: ExactSizeIterator,
    K: AsRef<str>,
    V: AsRef<str>,
{
    w.map_len(1)?;
    w.key("Members")?;
    write_member_list(w, len, members)
}

/// Writes a member-event `stream` record: the bytes of
/// [`MemberEventRecord`](super::MemberEventRecord) with this `event` (e.g.
/// `member-join`) and `members: Some(list)`.
pub fn write_member_event_record<'a, T, K, V>(
    w: &mut Writer<'_>,
    event: &str,
    len: usize,
    members: impl IntoIterator<Item = MemberView<'a, T>>,
) -> WireResult<()>
where
    T: IntoIterator<Item = (K, V)>,
    T::IntoIter: ExactSizeIterator,
    K: AsRef<str>,
    V: AsRef<str>,
{
    w.map_len(2)?;
    w.key("Event")?;
    w.str(event)?;
    w.key("Members")?;
    write_member_list(w, len, members)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::super::{Member, MemberEventRecord, MembersResponse, ResponseHeader};
    use super::*;

    /// The owned member with the same values as the view.
    fn owned(v: &MemberView<'_, &BTreeMap<String, String>>) -> Member {
        let addr = match v.addr {
            IpAddr::V4(a) => a.octets().to_vec(),
            IpAddr::V6(a) => a.octets().to_vec(),
        };
        Member {
            addr: Some(addr),
            delegate_cur: v.delegate[2],
            delegate_max: v.delegate[1],
            delegate_min: v.delegate[0],
            name: v.name.to_string(),
            port: v.port,
            protocol_cur: v.protocol[2],
            protocol_max: v.protocol[1],
            protocol_min: v.protocol[0],
            status: v.status.to_string(),
            tags: Some(v.tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
        }
    }

    fn enc(f: impl FnMut(&mut Writer<'_>) -> WireResult<()>) -> Vec<u8> {
        let mut out = Vec::new();
        append(&mut out, 0, f).unwrap();
        out
    }

    /// Tag maps of 0, 1, 15, 16 (fixmap → map16) entries, with short and
    /// str8-long keys and values.
    fn tag_sets() -> Vec<BTreeMap<String, String>> {
        [0usize, 1, 15, 16]
            .iter()
            .map(|&n| {
                (0..n)
                    .map(|i| (format!("k{i:02}{}", "x".repeat(i * 3)), "v".repeat(i * 5)))
                    .collect()
            })
            .collect()
    }

    #[test]
    fn member_view_encodes_as_the_owned_member() {
        let long = "n".repeat(40);
        let huge = "h".repeat(300);
        let names = ["", "n1", &long, &huge];
        let addrs = [
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)),
            IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 7)),
        ];
        let tags = tag_sets();
        let mut cases = 0;
        for name in names {
            for addr in addrs {
                for (i, t) in tags.iter().enumerate() {
                    let port = [0u16, 127, 128, 7946, u16::MAX][i % 5];
                    let v = MemberView {
                        addr,
                        name,
                        port,
                        status: ["alive", "failed", "left"][i % 3],
                        protocol: [1, 5, 2],
                        delegate: [2, 5, u8::MAX],
                        tags: t,
                    };
                    let want = owned(&v).to_vec().unwrap();
                    assert_eq!(v.to_vec().unwrap(), want, "{name} {addr} {i}");
                    assert_eq!(enc(|w| v.write(w)), want);
                    cases += 1;
                }
            }
        }
        assert_eq!(cases, 32);
    }

    #[test]
    fn member_bodies_encode_as_the_owned_bodies() {
        let tags = tag_sets();
        // 0, 1, 15, 16 and 70,000 members: fixarray, array16, array32.
        for n in [0usize, 1, 15, 16, 70_000] {
            let names: Vec<String> = (0..n).map(|i| format!("node-{i}")).collect();
            let view = |i: usize| MemberView {
                addr: IpAddr::V4(Ipv4Addr::new(10, 0, (i >> 8) as u8, i as u8)),
                name: names[i].as_str(),
                port: 7946,
                status: "alive",
                protocol: [1, 5, 2],
                delegate: [2, 5, 4],
                tags: &tags[i % tags.len()],
            };
            let owned_list: Vec<Member> = (0..n).map(|i| owned(&view(i))).collect();
            let body = enc(|w| write_members_response(w, n, (0..n).map(view)));
            let want = MembersResponse { members: Some(owned_list.clone()) }.to_vec().unwrap();
            assert_eq!(body, want, "members, n={n}");
            let rec = enc(|w| write_member_event_record(w, "member-join", n, (0..n).map(view)));
            let want = MemberEventRecord { event: "member-join".into(), members: Some(owned_list) }
                .to_vec()
                .unwrap();
            assert_eq!(rec, want, "member event, n={n}");
        }
    }

    #[test]
    fn wrong_counts_are_errors() {
        let t: BTreeMap<String, String> = BTreeMap::new();
        let v = MemberView {
            addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
            name: "a",
            port: 1,
            status: "alive",
            protocol: [1, 5, 2],
            delegate: [2, 5, 4],
            tags: &t,
        };
        let mut out = vec![0xee];
        for (len, items) in [(2, 1), (1, 2), (0, 1), (1, 0)] {
            let r = append(&mut out, 0, |w| write_members_response(w, len, (0..items).map(|_| v)));
            assert_eq!(r, Err(WireError::IntRange), "len {len}, items {items}");
            assert_eq!(out, [0xee], "the buffer is left as it was");
        }
        /// Claims one pair more than it yields.
        #[derive(Clone)]
        struct Liar(u8);
        impl Iterator for Liar {
            type Item = (&'static str, &'static str);
            fn next(&mut self) -> Option<Self::Item> {
                self.0 = self.0.checked_sub(1)?;
                Some(("k", "v"))
            }
            fn size_hint(&self) -> (usize, Option<usize>) {
                let n = usize::from(self.0) + 1;
                (n, Some(n))
            }
        }
        impl ExactSizeIterator for Liar {}
        let v = MemberView {
            addr: v.addr,
            name: v.name,
            port: v.port,
            status: v.status,
            protocol: v.protocol,
            delegate: v.delegate,
            tags: Liar(2),
        };
        assert_eq!(v.to_vec(), Err(WireError::IntRange));
    }

    #[test]
    fn append_grows_and_keeps_what_was_there() {
        let mut out = b"prefix".to_vec();
        let big = "z".repeat(10_000);
        // A 1-byte hint: 64 bytes of room first, doubled until 10 KiB fit.
        let mut runs = 0;
        let n = append(&mut out, 1, |w| {
            runs += 1;
            w.str(&big)
        })
        .unwrap();
        assert_eq!(n, 3 + big.len());
        assert_eq!(&out[..6], b"prefix");
        assert_eq!(&out[6..9], &[0xda, 0x27, 0x10]);
        assert_eq!(out.len(), 6 + n);
        assert_eq!(runs, 9, "64 → 16384 bytes of room");
        // A hint that fits is one pass.
        let mut runs = 0;
        append(&mut out, 20_000, |w| {
            runs += 1;
            w.str(&big)
        })
        .unwrap();
        assert_eq!(runs, 1);
        // Errors other than a short buffer leave `out` as it was.
        let len = out.len();
        assert_eq!(append(&mut out, 0, |_| Err(WireError::WrongType)), Err(WireError::WrongType));
        assert_eq!(out.len(), len);
    }

    #[test]
    fn response_header_view_encodes_as_the_owned_header() {
        for (error, seq) in [("", 0u64), ("", 1), ("Invalid event filter", 300), ("x", u64::MAX)] {
            let owned = ResponseHeader { error: error.to_string(), seq }.to_vec().unwrap();
            assert_eq!(ResponseHeaderView { error, seq }.to_vec().unwrap(), owned);
        }
    }
}
