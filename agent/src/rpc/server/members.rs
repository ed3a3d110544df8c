//! Member replies (rpc.md §5.1): `members`, `members-filtered` and the
//! member events of a `stream`, encoded straight from the engine's
//! [`Member`]s through [`MemberView`], with no owned copy of a name, a tag or
//! a list in between.
//!
//! `members` and `members-filtered` are encoded on the engine thread, inside
//! [`AgentHandle::with_members`](crate::agent::AgentHandle::with_members),
//! into a [`MembersScratch`] the server reuses; the session then copies the
//! finished reply into its output. Gossip waits only for the encode itself
//! (and the filter's regexps): for 1000 members about 60 µs, 160 µs with a
//! name, status and tag filter (`cargo bench -p bench --bench rpc`; the
//! owned conversion it replaces took 390 µs). Member events already hold
//! their members (names and tags shared, reference-counted) and are encoded
//! on the RPC thread.

use std::collections::BTreeMap;

use engine::proto::serf::{Member, Tags};
use engine::wire::Result as WireResult;
use regex::Regex;

use crate::rpc::codec::{self, Encode, MemberView, ResponseHeaderView};

/// Bytes per member [`codec::append`] is first offered: the keys and fixed
/// values of one member take 123 (an IPv4 member with no name and no tags),
/// a name and a few short tags fit in the rest. A larger reply costs one
/// more encode per doubling.
pub const MEMBER_SIZE_HINT: usize = 192;

/// Reply buffers kept between requests above this capacity are shrunk back
/// to it, bytes.
const KEEP_CAPACITY: usize = 1 << 20;

/// How the RPC protocol shows `m`: its address as 4 or 16 bytes, its
/// versions split into memberlist and Serf ranges, its tags (`{}` when it
/// has none) in the engine's order.
pub fn member_view(m: &Member) -> MemberView<'_, &Tags> {
    let [pmin, pmax, pcur, dmin, dmax, dcur] = m.vsn;
    MemberView {
        addr: m.addr,
        name: &m.name,
        port: m.port,
        status: m.status.as_str(),
        protocol: [pmin, pmax, pcur],
        delegate: [dmin, dmax, dcur],
        tags: &m.tags,
    }
}

/// Go's `filterMembers`: every expression is anchored as `^expr$` (no
/// grouping); all tag filters, the status (if given) and the name (if
/// given) must match. Compiled once per request, on the RPC thread.
#[derive(Debug)]
pub struct MemberFilter {
    /// Tag name and the expression its value must match (a missing tag is
    /// `""`), in tag-name order.
    tags: Vec<(String, Regex)>,
    status: Option<Regex>,
    name: Option<Regex>,
}

impl MemberFilter {
    /// Compiles the request's expressions; a bad one is the request error
    /// Go logs (`Failed to compile regex: …`).
    pub fn compile(r: &codec::MembersFilteredRequest) -> Result<MemberFilter, String> {
        let compile = |expr: &str| {
            Regex::new(&format!("^{expr}$")).map_err(|e| {
                // The regex crate's message spans lines (pattern, caret,
                // error); the log wants one line, as Go's.
                let text = e.to_string();
                let why = text.lines().last().unwrap_or("").trim_start_matches("error: ");
                format!("Failed to compile regex: error parsing regexp: {why}: `^{expr}$`")
            })
        };
        // A Go map keeps the last of duplicate keys.
        let tags: BTreeMap<&str, &str> =
            r.tags.iter().flatten().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let tags = tags
            .into_iter()
            .map(|(k, v)| Ok((k.to_string(), compile(v)?)))
            .collect::<Result<Vec<_>, String>>()?;
        // Go compiles the status and name expressions even when empty.
        let status = compile(&r.status)?;
        let name = compile(&r.name)?;
        Ok(MemberFilter {
            tags,
            status: (!r.status.is_empty()).then_some(status),
            name: (!r.name.is_empty()).then_some(name),
        })
    }

    /// True when every member passes (the Go CLI's `serf members` without
    /// flags).
    pub fn passes_all(&self) -> bool {
        self.tags.is_empty() && self.status.is_none() && self.name.is_none()
    }

    /// Whether `m` passes.
    pub fn matches(&self, m: &Member) -> bool {
        self.tags
            .iter()
            .all(|(k, re)| re.is_match(m.tags.get(k.as_str()).map_or("", String::as_str)))
            && self.status.as_ref().is_none_or(|re| re.is_match(m.status.as_str()))
            && self.name.as_ref().is_none_or(|re| re.is_match(&m.name))
    }
}

/// The buffers of `members` replies, reused from request to request: moved
/// to the engine thread for the encode and handed back with the reply.
#[derive(Debug, Default)]
pub struct MembersScratch {
    /// The encoded reply: header and body.
    pub out: Vec<u8>,
    /// Which members of the table pass the filter, in table order.
    keep: Vec<bool>,
}

impl MembersScratch {
    /// Encodes the whole reply to request `seq` (header, then the members
    /// that pass `filter`) into [`MembersScratch::out`], replacing what was
    /// there. `members` gives the member table from the start each time it
    /// is called (the session passes [`MemberTable::iter`], on the engine
    /// thread): once for the filter (not without one) and once for the
    /// encode, again only if the size guess was short.
    ///
    /// [`MemberTable::iter`]: crate::agent::MemberTable::iter
    pub fn encode<'a, I>(
        &mut self,
        seq: u64,
        members: impl Fn() -> I,
        filter: Option<&MemberFilter>,
    ) -> WireResult<usize>
    where
        I: ExactSizeIterator<Item = &'a Member>,
    {
        self.out.clear();
        match filter.filter(|f| !f.passes_all()) {
            None => append_reply(&mut self.out, seq, members().len(), members),
            Some(f) => {
                self.keep.clear();
                self.keep.extend(members().map(|m| f.matches(m)));
                let keep = &self.keep;
                let len = keep.iter().filter(|k| **k).count();
                append_reply(&mut self.out, seq, len, || {
                    members().zip(keep).filter_map(|(m, k)| k.then_some(m))
                })
            }
        }
    }

    /// Encodes the reply that lists no members (the agent is shutting down).
    pub fn encode_empty(&mut self, seq: u64) -> WireResult<usize> {
        self.out.clear();
        append_reply(&mut self.out, seq, 0, core::iter::empty)
    }

    /// Call once [`MembersScratch::out`] has been copied out: empties it
    /// and keeps the retained capacity bounded after a very large reply.
    pub fn release(&mut self) {
        self.out.clear();
        self.out.shrink_to(KEEP_CAPACITY);
        self.keep.clear();
        self.keep.shrink_to(KEEP_CAPACITY);
    }
}

/// Appends a successful reply to `seq` listing the `len` members `members`
/// yields; `members` is called again if the first size guess was short.
fn append_reply<'a, I: Iterator<Item = &'a Member>>(
    out: &mut Vec<u8>,
    seq: u64,
    len: usize,
    members: impl Fn() -> I,
) -> WireResult<usize> {
    let hint = len.saturating_mul(MEMBER_SIZE_HINT).saturating_add(64);
    codec::append(out, hint, |w| {
        ResponseHeaderView { error: "", seq }.encode(w)?;
        codec::write_members_response(w, len, members().map(member_view))
    })
}

/// Appends a member-event `stream` record (header and body) for `event`
/// (e.g. `member-join`) to `out`.
pub fn append_member_event(
    out: &mut Vec<u8>,
    seq: u64,
    event: &str,
    members: &[Member],
) -> WireResult<usize> {
    let hint = members.len().saturating_mul(MEMBER_SIZE_HINT).saturating_add(64);
    codec::append(out, hint, |w| {
        ResponseHeaderView { error: "", seq }.encode(w)?;
        codec::write_member_event_record(w, event, members.len(), members.iter().map(member_view))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::codec::{MemberEventRecord, MembersResponse, ResponseHeader};
    use engine::proto::serf::MemberStatus;
    use std::sync::Arc;

    fn member(name: &str, status: MemberStatus, tags: &[(&str, &str)]) -> Member {
        Member {
            name: name.into(),
            addr: "127.0.0.1".parse().unwrap(),
            port: 7946,
            tags: Arc::new(tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
            status,
            vsn: [1, 5, 2, 2, 5, 4],
        }
    }

    /// The owned conversion the server made before the views: the oracle
    /// the views must match byte for byte.
    fn owned(m: &Member) -> codec::Member {
        let addr = match m.addr {
            std::net::IpAddr::V4(a) => a.octets().to_vec(),
            std::net::IpAddr::V6(a) => a.octets().to_vec(),
        };
        let [pmin, pmax, pcur, dmin, dmax, dcur] = m.vsn;
        codec::Member {
            addr: Some(addr),
            delegate_cur: dcur,
            delegate_max: dmax,
            delegate_min: dmin,
            name: m.name.to_string(),
            port: m.port,
            protocol_cur: pcur,
            protocol_max: pmax,
            protocol_min: pmin,
            status: m.status.as_str().to_string(),
            tags: Some(m.tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
        }
    }

    fn owned_reply(seq: u64, members: &[&Member]) -> Vec<u8> {
        let mut b = ResponseHeader { error: String::new(), seq }.to_vec().unwrap();
        let list = members.iter().map(|m| owned(m)).collect();
        b.extend(MembersResponse { members: Some(list) }.to_vec().unwrap());
        b
    }

    /// A varied table: IPv4 and IPv6, every status, names short and long,
    /// no tags to tags far beyond [`MEMBER_SIZE_HINT`].
    fn table() -> Vec<Member> {
        let statuses = [
            MemberStatus::Alive,
            MemberStatus::Leaving,
            MemberStatus::Left,
            MemberStatus::Failed,
            MemberStatus::None,
        ];
        (0..40)
            .map(|i| {
                let name = format!("node-{i}{}", "x".repeat(i * 2));
                let tags: Vec<(String, String)> = (0..i % 7)
                    .map(|t| (format!("tag{t}"), format!("value-{}", "v".repeat(t * i))))
                    .collect();
                let tags: Vec<(&str, &str)> =
                    tags.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                let mut m = member(&name, statuses[i % statuses.len()], &tags);
                if i % 3 == 0 {
                    m.addr = format!("fd00::{i:x}").parse().unwrap();
                }
                m.port = [7946, 0, 127, 128, u16::MAX][i % 5];
                m.vsn = [1, 5, (i % 6) as u8, 2, 5, (i % 250) as u8];
                m
            })
            .collect()
    }

    fn req(name: &str, status: &str, tags: &[(&str, &str)]) -> codec::MembersFilteredRequest {
        codec::MembersFilteredRequest {
            name: name.into(),
            status: status.into(),
            tags: Some(tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
        }
    }

    #[test]
    fn members_reply_is_the_owned_reply() {
        let all = table();
        let mut s = MembersScratch::default();
        for seq in [1u64, 300] {
            let n = s.encode(seq, || all.iter(), None).unwrap();
            let refs: Vec<&Member> = all.iter().collect();
            assert_eq!(s.out, owned_reply(seq, &refs));
            assert_eq!(n, s.out.len());
            s.release();
            assert!(s.out.is_empty());
        }
        // With filters: the same bytes as the owned reply of the members
        // that pass.
        for r in [
            req("", "", &[]),
            req("node-1.*", "", &[]),
            req("", "alive|failed", &[("tag1", "value-.*")]),
            req("nobody", "", &[]),
        ] {
            let f = MemberFilter::compile(&r).unwrap();
            s.encode(7, || all.iter(), Some(&f)).unwrap();
            let refs: Vec<&Member> = all.iter().filter(|m| f.matches(m)).collect();
            assert_eq!(s.out, owned_reply(7, &refs), "{r:?}");
        }
        // One member larger than the first room offered: encoded again.
        let big = &all[39..];
        let n = s.encode(8, || big.iter(), None).unwrap();
        assert!(n > MEMBER_SIZE_HINT + 64, "{n} bytes do not exercise the retry");
        assert_eq!(s.out, owned_reply(8, &[&big[0]]));
        s.encode_empty(9).unwrap();
        assert_eq!(s.out, owned_reply(9, &[]));
    }

    #[test]
    fn member_event_is_the_owned_record() {
        let all = table();
        for event in ["member-join", "member-update"] {
            for members in [&all[..0], &all[..1], &all[..]] {
                let mut out = b"queued".to_vec();
                append_member_event(&mut out, 5, event, members).unwrap();
                let mut want = b"queued".to_vec();
                want.extend(ResponseHeader { error: String::new(), seq: 5 }.to_vec().unwrap());
                let rec = MemberEventRecord {
                    event: event.to_string(),
                    members: Some(members.iter().map(owned).collect()),
                };
                want.extend(rec.to_vec().unwrap());
                assert_eq!(out, want, "{event}, {} members", members.len());
            }
        }
    }

    #[test]
    fn member_view_shape() {
        let m = member("n1", MemberStatus::Alive, &[]);
        let v = member_view(&m);
        assert_eq!(v.addr, std::net::IpAddr::from([127, 0, 0, 1]));
        assert!(v.tags.is_empty());
        assert_eq!(v.protocol, [1, 5, 2], "memberlist versions");
        assert_eq!(v.delegate, [2, 5, 4], "serf versions");
        assert_eq!(v.status, "alive");
    }

    #[test]
    fn members_filter_is_anchored_without_grouping() {
        let all = [
            member("n1", MemberStatus::Alive, &[("role", "web")]),
            member("n2", MemberStatus::Failed, &[("role", "db")]),
            member("xn1", MemberStatus::Left, &[]),
        ];
        let f = |r| {
            let f = MemberFilter::compile(&r).unwrap();
            all.iter().filter(|m| f.matches(m)).map(|m| &*m.name).collect::<Vec<_>>().join(",")
        };
        assert_eq!(f(req("", "", &[])), "n1,n2,xn1");
        assert!(MemberFilter::compile(&req("", "", &[])).unwrap().passes_all());
        assert!(!MemberFilter::compile(&req("", "", &[("role", "")])).unwrap().passes_all());
        assert_eq!(f(req("n1", "", &[])), "n1");
        assert_eq!(f(req("n.", "", &[])), "n1,n2");
        // `^n1|n2$`: "xn1" does not start with n1 and does not end with n2.
        assert_eq!(f(req("n1|n2", "", &[])), "n1,n2");
        assert_eq!(f(req("", "alive|failed", &[])), "n1,n2");
        assert_eq!(f(req("", "", &[("role", "w.*")])), "n1");
        // A missing tag is "", which `^$` matches.
        assert_eq!(f(req("", "", &[("role", "")])), "xn1");
        // Duplicate keys: the last wins.
        assert_eq!(f(req("", "", &[("role", "web"), ("role", "db")])), "n2");
        let e = MemberFilter::compile(&req("[", "", &[])).unwrap_err();
        assert!(
            e.starts_with("Failed to compile regex: error parsing regexp: ") && !e.contains('\n'),
            "{e}"
        );
        assert!(MemberFilter::compile(&req("", "", &[("role", "(")])).is_err());
    }
}
