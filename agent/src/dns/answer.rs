//! Answers one DNS message from the membership view. Messages are parsed
//! and built with `simple-dns`; nothing here writes wire format by hand.
//!
//! Names (case-insensitive), under the configured domain:
//! * `<node>.node[.<dc>].<domain>`: `A`/`AAAA` with the member's address,
//!   `TXT` with its tags (`key=value`), `SRV` with its gossip port (target
//!   `<node>.node.<dc>.<domain>`, address in the additional section), `ANY`
//!   the address and the tags;
//! * `<value>.<tag>.tag[.<dc>].<domain>` (no Consul or Serf has this): the
//!   `A`/`AAAA` of every member whose tag `<tag>` is `<value>`, `SRV`
//!   likewise;
//! * the domain itself: `SOA` (and `NS`).
//!
//! Only alive (and still leaving) members are answered: failed and left
//! ones are unknown names. Answers are authoritative, never recursive
//! (names outside the domain are `REFUSED`), with the configured TTL.
//! Unknown names get `NXDOMAIN` and known names without records of the
//! asked type get an empty answer, both with the zone's `SOA` in the
//! authority section. A UDP answer larger than the client's limit (512
//! bytes, or its EDNS0 size up to [`MAX_UDP`]) keeps the records that fit
//! and sets `TC`. A message that cannot be parsed gets `FORMERR` (when it
//! has an ID to answer); other opcodes `NOTIMP`; more than one question
//! `FORMERR`.

use std::net::IpAddr;

use simple_dns::rdata::{RData, A, AAAA, NS, OPT, SOA, SRV, TXT};
use simple_dns::{
    CharacterString, Name, Packet, PacketFlag, Question, ResourceRecord, CLASS, OPCODE, QCLASS,
    QTYPE, RCODE, TYPE,
};

use crate::agent::view::{is_passing, Snapshot};

/// Largest UDP answer, whatever EDNS0 size the client offers.
pub const MAX_UDP: usize = 4096;
/// The classic UDP limit without EDNS0.
pub const MIN_UDP: usize = 512;
/// Largest TCP answer (the two-byte length prefix).
pub const MAX_TCP: usize = 65_535;

/// The zone this server is authoritative for.
#[derive(Clone, Debug)]
pub struct Zone {
    /// Lower-case labels of the domain (`["consul"]`).
    pub domain: Vec<String>,
    /// The domain as text with its final dot (`consul.`).
    pub domain_text: String,
    /// Lower-case datacenter.
    pub datacenter: String,
    /// TTL of every record, seconds.
    pub ttl: u32,
}

impl Zone {
    /// The zone for a configured domain (`consul.`), datacenter and TTL.
    pub fn new(domain: &str, datacenter: &str, ttl: u32) -> Zone {
        let text = if domain.ends_with('.') { domain.to_string() } else { format!("{domain}.") };
        let domain = text
            .trim_end_matches('.')
            .split('.')
            .filter(|l| !l.is_empty())
            .map(str::to_ascii_lowercase)
            .collect();
        Zone { domain, domain_text: text, datacenter: datacenter.to_ascii_lowercase(), ttl }
    }
}

/// What kind of answer was given (for the counters).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// NOERROR, with or without records.
    Ok,
    NxDomain,
    /// FORMERR, NOTIMP or REFUSED.
    Error,
    /// Nothing could be parsed, not even an ID.
    Malformed,
}

/// The reply to `query` (`None`: nothing to send, e.g. a response or a
/// message too short to carry an ID), what kind it is, and whether it was
/// truncated. `tcp` lifts the size limit to [`MAX_TCP`].
pub fn answer(
    query: &[u8],
    zone: &Zone,
    view: &Snapshot,
    tcp: bool,
) -> (Option<Vec<u8>>, Kind, bool) {
    let q = match Packet::parse(query) {
        Ok(q) => q,
        Err(_) => {
            // Answer FORMERR to whoever sent something with an ID (and not
            // the response bit: never answer a response).
            let (Some(&hi), Some(&lo), flags) = (query.first(), query.get(1), query.get(2)) else {
                return (None, Kind::Malformed, false);
            };
            if flags.is_some_and(|f| f & 0x80 != 0) {
                return (None, Kind::Malformed, false);
            }
            let mut r = Packet::new_reply(u16::from_be_bytes([hi, lo]));
            *r.rcode_mut() = RCODE::FormatError;
            return (r.build_bytes_vec().ok(), Kind::Error, false);
        }
    };
    if q.has_flags(PacketFlag::RESPONSE) {
        return (None, Kind::Malformed, false);
    }
    let mut r = Packet::new_reply(q.id());
    r.set_flags(PacketFlag::AUTHORITATIVE_ANSWER);
    if q.has_flags(PacketFlag::RECURSION_DESIRED) {
        r.set_flags(PacketFlag::RECURSION_DESIRED);
    }
    let limit = if tcp {
        MAX_TCP
    } else {
        q.opt().map_or(MIN_UDP, |o| usize::from(o.udp_packet_size).clamp(MIN_UDP, MAX_UDP))
    };
    if q.opt().is_some() {
        *r.opt_mut() =
            Some(OPT { opt_codes: Vec::new(), udp_packet_size: MAX_UDP as u16, version: 0 });
    }
    if q.opcode() != OPCODE::StandardQuery {
        *r.opcode_mut() = q.opcode();
        *r.rcode_mut() = RCODE::NotImplemented;
        return finish(r, Kind::Error, limit);
    }
    let [question] = q.questions.as_slice() else {
        *r.rcode_mut() = RCODE::FormatError;
        return finish(r, Kind::Error, limit);
    };
    r.questions.push(question.clone());
    let labels: Vec<String> = question
        .qname
        .get_labels()
        .iter()
        .map(|l| String::from_utf8_lossy(l.as_ref()).to_ascii_lowercase())
        .collect();
    let class_ok = matches!(question.qclass, QCLASS::CLASS(CLASS::IN) | QCLASS::ANY);
    let Some(rest) = labels.len().checked_sub(zone.domain.len()).and_then(|n| {
        (labels.get(n..) == Some(zone.domain.as_slice())).then(|| labels.get(..n).unwrap_or(&[]))
    }) else {
        *r.rcode_mut() = RCODE::Refused;
        return finish(r, Kind::Error, limit);
    };
    if !class_ok {
        *r.rcode_mut() = RCODE::Refused;
        return finish(r, Kind::Error, limit);
    }
    // Owned strings the records borrow (targets, tag texts, zone names).
    let ns = format!("ns.{}", zone.domain_text);
    let hostmaster = format!("hostmaster.{}", zone.domain_text);
    let lookup = parse_name(rest, &zone.datacenter);
    let qtype = question.qtype;
    let wants = |t: TYPE| qtype == QTYPE::TYPE(t) || qtype == QTYPE::ANY;
    let owner = question.qname.clone();
    let ttl = zone.ttl;
    let mut targets: Vec<(String, IpAddr, u16)> = Vec::new();
    let mut texts: Vec<String> = Vec::new();
    let kind = match lookup {
        Lookup::Apex => {
            if wants(TYPE::SOA) {
                r.answers.push(soa(&owner, &ns, &hostmaster, view, ttl));
            }
            if wants(TYPE::NS) {
                if let Ok(n) = Name::new(&ns) {
                    r.answers.push(ResourceRecord::new(
                        owner.clone(),
                        CLASS::IN,
                        ttl,
                        RData::NS(NS(n)),
                    ));
                }
            }
            Kind::Ok
        }
        Lookup::Unknown => Kind::NxDomain,
        Lookup::Node(name) => {
            let found = view
                .members
                .iter()
                .find(|e| e.member.name.eq_ignore_ascii_case(&name) && is_passing(e.member.status));
            match found {
                None => Kind::NxDomain,
                Some(e) => {
                    let m = &e.member;
                    if let Some(rr) = address(&owner, m.addr, ttl, &wants) {
                        r.answers.push(rr);
                    }
                    if wants(TYPE::TXT) {
                        texts = m.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    }
                    if qtype == QTYPE::TYPE(TYPE::SRV) {
                        let t = format!("{}.node.{}.{}", m.name, zone.datacenter, zone.domain_text);
                        targets.push((t, m.addr, m.port));
                    }
                    Kind::Ok
                }
            }
        }
        Lookup::Tag { tag, value } => {
            let mut any = false;
            for e in view.members.iter().filter(|e| is_passing(e.member.status)) {
                let m = &e.member;
                let hit = m
                    .tags
                    .iter()
                    .any(|(k, v)| k.eq_ignore_ascii_case(&tag) && v.eq_ignore_ascii_case(&value));
                if !hit {
                    continue;
                }
                any = true;
                if let Some(rr) = address(&owner, m.addr, ttl, &wants) {
                    r.answers.push(rr);
                }
                if qtype == QTYPE::TYPE(TYPE::SRV) {
                    let t = format!("{}.node.{}.{}", m.name, zone.datacenter, zone.domain_text);
                    targets.push((t, m.addr, m.port));
                }
            }
            if any {
                Kind::Ok
            } else {
                Kind::NxDomain
            }
        }
    };
    if !texts.is_empty() {
        let mut txt = TXT::new();
        for t in &texts {
            // A character-string holds at most 255 bytes: longer tags are left out.
            if let Ok(cs) = CharacterString::new(t.as_bytes()) {
                txt.add_char_string(cs);
            }
        }
        r.answers.push(ResourceRecord::new(owner.clone(), CLASS::IN, ttl, RData::TXT(txt)));
    }
    for (t, ip, port) in &targets {
        let Ok(target) = Name::new(t) else { continue };
        let port = *port;
        let srv = SRV { priority: 1, weight: 1, port, target: target.clone() };
        r.answers.push(ResourceRecord::new(owner.clone(), CLASS::IN, ttl, RData::SRV(srv)));
        if let Some(rr) = address(&target, *ip, ttl, &|_| true) {
            r.additional_records.push(rr);
        }
    }
    if kind == Kind::NxDomain {
        *r.rcode_mut() = RCODE::NameError;
    }
    if r.answers.is_empty() {
        if let Ok(apex) = Name::new(&zone.domain_text) {
            r.name_servers.push(soa(&apex, &ns, &hostmaster, view, ttl));
        }
    }
    finish(r, kind, limit)
}

/// The name under the domain, parsed.
enum Lookup {
    Apex,
    Node(String),
    Tag { tag: String, value: String },
    Unknown,
}

/// `rest` is the lower-case labels before the domain: `<name>.node`,
/// `<value>.<tag>.tag`, each optionally followed by the datacenter.
fn parse_name(rest: &[String], dc: &str) -> Lookup {
    fn kind(body: &[String]) -> Option<Lookup> {
        match body {
            [name @ .., last] if last == "node" && !name.is_empty() => {
                Some(Lookup::Node(name.join(".")))
            }
            [value @ .., tag, last] if last == "tag" && !value.is_empty() => {
                Some(Lookup::Tag { tag: tag.clone(), value: value.join(".") })
            }
            _ => None,
        }
    }
    if rest.is_empty() {
        return Lookup::Apex;
    }
    if let Some(l) = kind(rest) {
        return l;
    }
    match rest {
        [body @ .., d] => match kind(body) {
            Some(l) if d == dc => l,
            _ => Lookup::Unknown,
        },
        [] => Lookup::Unknown,
    }
}

fn address<'a>(
    owner: &Name<'a>,
    ip: IpAddr,
    ttl: u32,
    wants: &dyn Fn(TYPE) -> bool,
) -> Option<ResourceRecord<'a>> {
    let rdata = match ip {
        IpAddr::V4(v4) if wants(TYPE::A) => RData::A(A { address: u32::from(v4) }),
        IpAddr::V6(v6) if wants(TYPE::AAAA) => RData::AAAA(AAAA { address: u128::from(v6) }),
        _ => return None,
    };
    Some(ResourceRecord::new(owner.clone(), CLASS::IN, ttl, rdata))
}

fn soa<'a>(
    owner: &Name<'a>,
    ns: &'a str,
    hostmaster: &'a str,
    view: &Snapshot,
    ttl: u32,
) -> ResourceRecord<'a> {
    let soa = SOA {
        mname: Name::new_unchecked(ns),
        rname: Name::new_unchecked(hostmaster),
        serial: view.index as u32,
        refresh: 3600,
        retry: 600,
        expire: 86_400,
        minimum: ttl,
    };
    ResourceRecord::new(owner.clone(), CLASS::IN, ttl, RData::SOA(soa))
}

/// Builds `r`; beyond `limit` keeps the answers that fit, drops the other
/// sections and sets `TC`.
fn finish(mut r: Packet<'_>, kind: Kind, limit: usize) -> (Option<Vec<u8>>, Kind, bool) {
    let Ok(bytes) = r.build_bytes_vec_compressed() else {
        let mut e = Packet::new_reply(r.id());
        *e.rcode_mut() = RCODE::ServerFailure;
        return (e.build_bytes_vec().ok(), Kind::Error, false);
    };
    if bytes.len() <= limit {
        return (Some(bytes), kind, false);
    }
    r.set_flags(PacketFlag::TRUNCATION);
    r.additional_records.clear();
    r.name_servers.clear();
    let all = core::mem::take(&mut r.answers);
    // The largest prefix of the answers that fits (binary search).
    let (mut lo, mut hi) = (0usize, all.len());
    let mut best: Option<Vec<u8>> = None;
    while lo <= hi {
        let mid = (lo + hi) / 2;
        r.answers = all.get(..mid).unwrap_or(&[]).to_vec();
        match r.build_bytes_vec_compressed() {
            Ok(b) if b.len() <= limit => {
                best = Some(b);
                lo = mid + 1;
            }
            _ => {
                if mid == 0 {
                    break;
                }
                hi = mid - 1;
            }
        }
    }
    (best, kind, true)
}

/// A query for `name` and `qtype`, with an EDNS0 size if given (tests and
/// the benchmark build queries with it).
pub fn query(id: u16, name: &str, qtype: TYPE, edns: Option<u16>) -> Option<Vec<u8>> {
    let mut p = Packet::new_query(id);
    p.questions.push(Question::new(Name::new(name).ok()?, qtype.into(), CLASS::IN.into(), false));
    if let Some(size) = edns {
        *p.opt_mut() = Some(OPT { opt_codes: Vec::new(), udp_packet_size: size, version: 0 });
    }
    p.build_bytes_vec().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::view::Entry;
    use engine::proto::serf::{Member, MemberStatus, Tags};
    use std::net::Ipv4Addr;
    use std::sync::Arc;

    fn member(name: &str, ip: [u8; 4], status: MemberStatus, role: &str) -> Entry {
        let mut tags = Tags::new();
        tags.insert("role".into(), role.into());
        Entry {
            member: Member {
                name: name.into(),
                addr: IpAddr::V4(Ipv4Addr::from(ip)),
                port: 7946,
                tags: Arc::new(tags),
                status,
                vsn: [1, 5, 2, 2, 5, 4],
            },
            create_index: 1,
            modify_index: 1,
            health_index: 1,
        }
    }

    fn view(n: usize) -> Snapshot {
        let mut members = vec![
            member("alpha", [10, 0, 0, 1], MemberStatus::Alive, "web"),
            member("beta", [10, 0, 0, 2], MemberStatus::Failed, "web"),
            member("gamma", [10, 0, 0, 3], MemberStatus::Left, "db"),
        ];
        for i in 0..n {
            members.push(member(
                &format!("w{i:04}"),
                [10, 1, (i / 256) as u8, i as u8],
                MemberStatus::Alive,
                "web",
            ));
        }
        members.sort_by(|a, b| a.member.name.cmp(&b.member.name));
        Snapshot { index: 7, members }
    }

    fn ask(
        name: &str,
        t: TYPE,
        edns: Option<u16>,
        tcp: bool,
        v: &Snapshot,
    ) -> (Vec<u8>, Kind, bool) {
        let zone = Zone::new("consul.", "dc1", 0);
        let q = query(0x1234, name, t, edns).unwrap();
        let (r, k, tc) = answer(&q, &zone, v, tcp);
        (r.unwrap(), k, tc)
    }

    #[test]
    fn node_answers() {
        let v = view(0);
        let (r, k, _) = ask("Alpha.node.consul", TYPE::A, None, false, &v);
        let p = Packet::parse(&r).unwrap();
        assert_eq!((k, p.rcode(), p.id()), (Kind::Ok, RCODE::NoError, 0x1234));
        assert!(p.has_flags(PacketFlag::AUTHORITATIVE_ANSWER | PacketFlag::RESPONSE));
        assert!(!p.has_flags(PacketFlag::RECURSION_AVAILABLE));
        assert_eq!(p.answers.len(), 1);
        assert_eq!(
            p.answers[0].rdata,
            RData::A(A { address: u32::from(Ipv4Addr::new(10, 0, 0, 1)) })
        );
        assert_eq!(p.answers[0].ttl, 0);
        // With the datacenter.
        let (r, _, _) = ask("alpha.node.dc1.consul", TYPE::A, None, false, &v);
        assert_eq!(Packet::parse(&r).unwrap().answers.len(), 1);
        // Another datacenter, failed and left members, unknown names: NXDOMAIN + SOA.
        for name in [
            "alpha.node.dc2.consul",
            "beta.node.consul",
            "gamma.node.consul",
            "nobody.node.consul",
            "x.y.consul",
        ] {
            let (r, k, _) = ask(name, TYPE::A, None, false, &v);
            let p = Packet::parse(&r).unwrap();
            assert_eq!((k, p.rcode()), (Kind::NxDomain, RCODE::NameError), "{name}");
            assert!(matches!(p.name_servers[0].rdata, RData::SOA(_)), "{name}");
        }
        // AAAA of an IPv4 member: no records, NOERROR, SOA.
        let (r, k, _) = ask("alpha.node.consul", TYPE::AAAA, None, false, &v);
        let p = Packet::parse(&r).unwrap();
        assert_eq!(
            (k, p.rcode(), p.answers.len(), p.name_servers.len()),
            (Kind::Ok, RCODE::NoError, 0, 1)
        );
        // TXT: the tags.
        let (r, _, _) = ask("alpha.node.consul", TYPE::TXT, None, false, &v);
        let p = Packet::parse(&r).unwrap();
        let RData::TXT(t) = &p.answers[0].rdata else { panic!() };
        assert_eq!(t.attributes().get("role"), Some(&Some("web".to_string())));
        // SRV: the port, the target's address in the additional section.
        let (r, _, _) = ask("alpha.node.consul", TYPE::SRV, None, false, &v);
        let p = Packet::parse(&r).unwrap();
        let RData::SRV(s) = &p.answers[0].rdata else { panic!() };
        assert_eq!((s.port, s.target.to_string().as_str()), (7946, "alpha.node.dc1.consul"));
        assert_eq!(p.additional_records.len(), 1);
        // Outside the zone: REFUSED. The apex: SOA.
        let (r, k, _) = ask("example.com", TYPE::A, None, false, &v);
        assert_eq!((k, Packet::parse(&r).unwrap().rcode()), (Kind::Error, RCODE::Refused));
        let (r, _, _) = ask("consul", TYPE::SOA, None, false, &v);
        assert!(matches!(Packet::parse(&r).unwrap().answers[0].rdata, RData::SOA(_)));
    }

    #[test]
    fn tag_answers_and_truncation() {
        let v = view(100);
        let (r, k, tc) = ask("db.role.tag.consul", TYPE::A, None, false, &v);
        assert_eq!((k, tc), (Kind::NxDomain, false), "gamma has left");
        let (r2, _, _) = ask("web.role.tag.dc1.consul", TYPE::A, None, true, &v);
        let p = Packet::parse(&r2).unwrap();
        assert_eq!(p.answers.len(), 101, "alpha and the 100 workers, not failed beta");
        drop(r);
        // Over UDP without EDNS0: at most 512 bytes, TC set.
        let (r, _, tc) = ask("web.role.tag.consul", TYPE::A, None, false, &v);
        let p = Packet::parse(&r).unwrap();
        assert!(tc && r.len() <= 512 && p.has_flags(PacketFlag::TRUNCATION));
        assert!(!p.answers.is_empty() && p.answers.len() < 101);
        // EDNS0 4096: more fit.
        let (r4, _, _) = ask("web.role.tag.consul", TYPE::A, Some(4096), false, &v);
        let p4 = Packet::parse(&r4).unwrap();
        assert!(p4.answers.len() > p.answers.len() && r4.len() <= 4096);
        assert!(p4.opt().is_some());
        let (r, _, _) = ask("web.role.tag.consul", TYPE::SRV, None, true, &v);
        assert_eq!(Packet::parse(&r).unwrap().additional_records.len(), 101);
    }

    #[test]
    fn malformed() {
        let zone = Zone::new("consul", "dc1", 5);
        let v = view(0);
        // Truncated: FORMERR with the ID.
        let q = query(7, "alpha.node.consul", TYPE::A, None).unwrap();
        let (r, k, _) = answer(&q[..q.len() - 3], &zone, &v, false);
        let r = r.unwrap();
        let p = Packet::parse(&r).unwrap();
        assert_eq!((k, p.id(), p.rcode()), (Kind::Error, 7, RCODE::FormatError));
        // One byte: nothing to answer.
        assert_eq!(answer(&[1], &zone, &v, false).0, None);
        // 500 labels: longer than a name may be, FORMERR.
        let mut long = q[..12].to_vec();
        for _ in 0..500 {
            long.extend_from_slice(&[1, b'a']);
        }
        long.extend_from_slice(&[0, 0, 1, 0, 1]);
        let (r, _, _) = answer(&long, &zone, &v, false);
        assert_eq!(Packet::parse(&r.unwrap()).unwrap().rcode(), RCODE::FormatError);
        // A response is never answered.
        let mut resp = q.clone();
        resp[2] |= 0x80;
        assert_eq!(answer(&resp, &zone, &v, false).0, None);
        // TTL from the zone.
        let (r, _, _) = answer(&q, &zone, &v, false);
        assert_eq!(Packet::parse(&r.unwrap()).unwrap().answers[0].ttl, 5);
    }
}
