//! The agent's `members` reply for 1000 members, as its RPC server encodes
//! it on the engine thread (gossip waits for this long): borrowed member
//! views written straight from the engine's `Member`s into a reused buffer,
//! without and with a `members-filtered` filter, next to the owned path the
//! server took before (a `codec::Member` per member with its own strings,
//! tags and address, then a counting pass, then the encode into a new
//! buffer). One element = one member. `engine_share_before` is the part of
//! the baseline that ran on the engine thread: copying the `Member`s out
//! (names and tags shared, reference-counted).
//!
//! Before measuring, the views are checked to produce the baseline's bytes
//! and, after a warm-up, to allocate nothing.
//!
//! `cargo bench -p bench --bench rpc`

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use agent::rpc::codec::{self, Encode};
use agent::rpc::server::members::{MemberFilter, MembersScratch};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use engine::proto::serf::{Member, MemberStatus};
use engine::wire::msgpack::{encoded_len, Dialect, Writer};
use testkit::total_allocs;

const MEMBERS: usize = 1000;

/// 1000 members as a 1000-node cluster shows them: `node-0042` names,
/// 10.0.x.y addresses, three short tags, a few failed.
fn members() -> Vec<Member> {
    (0..MEMBERS)
        .map(|i| Member {
            name: format!("node-{i:04}").into(),
            addr: std::net::IpAddr::from([10, 0, (i >> 8) as u8, i as u8]),
            port: 7946,
            tags: Arc::new(
                [("role", "web"), ("dc", "dc1"), ("version", "0.9.4")]
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            status: if i % 50 == 0 { MemberStatus::Failed } else { MemberStatus::Alive },
            vsn: [1, 5, 2, 2, 5, 4],
        })
        .collect()
}

/// The server's former path: owned RPC members, a counting pass, then the
/// encode into a buffer of exactly that size.
fn owned_reply(seq: u64, members: &[Member]) -> Vec<u8> {
    let list = members
        .iter()
        .map(|m| {
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
        })
        .collect();
    let header = codec::ResponseHeader { error: String::new(), seq };
    let body = codec::MembersResponse { members: Some(list) };
    let encode = |w: &mut Writer<'_>| {
        header.encode(w)?;
        body.encode(w)
    };
    let n = encoded_len(Dialect::Rpc, encode).unwrap();
    let mut out = vec![0u8; n];
    encode(&mut Writer::new(&mut out, Dialect::Rpc)).unwrap();
    out
}

fn filtered_request() -> codec::MembersFilteredRequest {
    codec::MembersFilteredRequest {
        name: "node-.*".into(),
        status: "alive".into(),
        tags: Some(vec![("role".into(), "web|db".into())]),
    }
}

fn check(members: &[Member]) {
    let mut s = MembersScratch::default();
    s.encode(3, || members.iter(), None).unwrap();
    assert_eq!(s.out, owned_reply(3, members), "views and baseline differ");
    let f = MemberFilter::compile(&filtered_request()).unwrap();
    s.encode(3, || members.iter(), Some(&f)).unwrap();
    let alive: Vec<Member> = members.iter().filter(|m| f.matches(m)).cloned().collect();
    assert_eq!(alive.len(), MEMBERS - MEMBERS / 50);
    assert_eq!(s.out, owned_reply(3, &alive), "filtered views and baseline differ");
    for filter in [None, Some(&f)] {
        for _ in 0..10 {
            s.encode(3, || members.iter(), filter).unwrap();
            s.release();
        }
        let before = total_allocs();
        for _ in 0..1000 {
            s.encode(3, || members.iter(), filter).unwrap();
            s.release();
        }
        let n = total_allocs() - before;
        assert_eq!(n, 0, "views allocated {n} times in 1000 replies");
    }
}

fn bench_members(c: &mut Criterion) {
    let members = members();
    check(&members);
    let mut g = c.benchmark_group("rpc_members_reply_1000");
    g.throughput(Throughput::Elements(MEMBERS as u64));
    let mut s = MembersScratch::default();
    g.bench_function("views", |b| {
        b.iter(|| {
            s.encode(black_box(3), || members.iter(), None).unwrap();
            black_box(&s.out);
            s.release();
        })
    });
    let f = MemberFilter::compile(&filtered_request()).unwrap();
    g.bench_function("views_filtered", |b| {
        b.iter(|| {
            s.encode(black_box(3), || members.iter(), Some(&f)).unwrap();
            black_box(&s.out);
            s.release();
        })
    });
    g.bench_function("owned_baseline", |b| b.iter(|| black_box(owned_reply(3, &members))));
    // What the engine thread did before (the rest of the baseline ran on
    // the RPC thread): copy the members out, sharing names and tags.
    g.bench_function("engine_share_before", |b| b.iter(|| black_box(members.to_vec())));
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = bench_members
}
criterion_main!(benches);
