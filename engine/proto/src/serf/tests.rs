//! Unit tests of Serf rules (`protocol/serf.md`), one rule each: a single
//! instance is fed Serf messages (as user messages) and memberlist alives.

use core::time::Duration;
use std::net::SocketAddr;

use super::*;
use crate::memberlist::{Config, Delegate as _, Scratch, DEFAULT_VSN};
use crate::Endpoint;
use wire::memberlist::{Alive, Body, Dead, Message, MessageType};
use wire::packet::{PacketCodec, PACKET_BUF};
use wire::serf::{
    ConflictResponse, Join, KeyRequest, Leave, Query, QueryResponse, SerfMessage,
    UserEvent as UserEventMsg, QUERY_FLAG_ACK,
};

const A: &str = "127.0.0.1:7946";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

struct H {
    s: Serf,
    scratch: Scratch,
    now: Instant,
}

fn config(name: &str, a: &str) -> SerfConfig {
    let mut ml = Config::lan();
    ml.name = name.into();
    ml.advertise_addr = addr(a).ip();
    ml.enable_compression = false;
    SerfConfig::agent(ml)
}

impl H {
    fn new() -> Self {
        Self::with(config("a", A), None)
    }
    fn with(c: SerfConfig, keyring: Option<Keyring>) -> Self {
        let now = Instant::from_millis(1000);
        H {
            s: Serf::new(c, now, Rng::seed_from_u64(3), keyring).unwrap(),
            scratch: Scratch::new(),
            now,
        }
    }
    /// Delivers a Serf message as a user message datagram.
    fn serf(&mut self, body: &[u8]) {
        let mut d = vec![MessageType::User as u8];
        d.extend_from_slice(body);
        self.s.handle_datagram(self.now, addr("127.0.0.9:7946"), &mut d, &mut self.scratch);
    }
    /// A memberlist alive for `name` at 127.0.0.`i`.
    fn alive(&mut self, name: &str, i: u8, inc: u32, tags: &[(&str, &str)]) {
        self.alive_at(name, [127, 0, 0, i], inc, tags);
    }
    /// A memberlist alive for `name` at `ip`.
    fn alive_at(&mut self, name: &str, ip: [u8; 4], inc: u32, tags: &[(&str, &str)]) {
        let tags: Tags = tags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let meta = encode_tags(&tags, 5);
        let m = Alive {
            incarnation: inc,
            node: name,
            addr: Some(&ip),
            port: 7946,
            meta: Some(&meta),
            vsn: Some(&DEFAULT_VSN),
        };
        let mut buf = vec![0u8; 1024];
        let n = m.encode_to(&mut buf).unwrap();
        self.s.handle_datagram(self.now, addr("127.0.0.9:7946"), &mut buf[..n], &mut self.scratch);
    }
    fn dead(&mut self, name: &str, from: &str, inc: u32) {
        let m = Dead { incarnation: inc, node: name, from };
        let mut buf = vec![0u8; 256];
        let n = m.encode_to(&mut buf).unwrap();
        self.s.handle_datagram(self.now, addr("127.0.0.9:7946"), &mut buf[..n], &mut self.scratch);
    }
    fn events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.s.poll_event()).filter(|e| !matches!(e, Event::Log(_))).collect()
    }
    fn status(&self, name: &str) -> Option<(MemberStatus, u64)> {
        self.s.core.delegate.members.get(name).map(|m| (m.member.status, m.status_ltime))
    }
    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        while let Some(t) = self.s.poll_timeout() {
            if t > end {
                break;
            }
            self.now = self.now.max(t);
            self.s.handle_timeout(self.now, &mut self.scratch);
        }
        self.now = end;
    }
    /// Every user message sent, decoded as Serf messages: (destination, bytes).
    fn sent_serf(&mut self) -> Vec<(SocketAddr, Vec<u8>)> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; PACKET_BUF];
        let mut codec = PacketCodec::new();
        while let Some(t) = self.s.poll_transmit(&mut buf, &mut self.scratch) {
            let mut d = buf[t.range].to_vec();
            let r = PacketCodec::open(&mut d, self.s.keyring()).unwrap();
            codec.walk(&d[r], &mut |m| {
                if let Ok(Message::User(b)) = m {
                    out.push((t.dst, b.to_vec()));
                }
            });
        }
        out
    }
}

fn enc<'a, T: wire::Body<'a>>(m: &T) -> Vec<u8> {
    m.encoded()
}

#[test]
fn clocks_start_at_one_and_join_intent_witnesses() {
    let mut h = H::new();
    assert_eq!(h.s.clocks(), (1, 1, 1));
    h.serf(&enc(&Join { ltime: 9, node: "zz" }));
    assert_eq!(h.s.clocks().0, 10, "witness(9) → 10");
    h.serf(&enc(&Join { ltime: 3, node: "zz" }));
    assert_eq!(h.s.clocks().0, 10, "an older time changes nothing");
}

#[test]
fn intents_for_unknown_nodes_are_buffered_and_applied_on_join() {
    let mut h = H::new();
    h.serf(&enc(&Leave { ltime: 5, node: "b", prune: false }));
    h.serf(&enc(&Join { ltime: 4, node: "b" }));
    assert_eq!(
        h.s.core.delegate.members.intents.get("b").map(|i| (i.kind, i.ltime)),
        Some((members::IntentKind::Leave, 5))
    );
    h.alive("b", 2, 1, &[]);
    assert_eq!(h.status("b"), Some((MemberStatus::Leaving, 5)), "the newest intent (leave@5) wins");
    // A newer join intent brings it back to alive.
    h.serf(&enc(&Join { ltime: 6, node: "b" }));
    assert_eq!(h.status("b"), Some((MemberStatus::Alive, 6)));
}

#[test]
fn graceful_leave_versus_failure() {
    let mut h = H::new();
    h.alive("b", 2, 1, &[]);
    h.alive("c", 3, 1, &[]);
    h.events();
    // b leaves: the intent first, then memberlist's voluntary dead → left.
    h.serf(&enc(&Leave { ltime: 7, node: "b", prune: false }));
    assert_eq!(h.status("b").unwrap().0, MemberStatus::Leaving);
    h.dead("b", "b", 1);
    assert_eq!(h.status("b").unwrap().0, MemberStatus::Left);
    // c dies without an intent → failed.
    h.dead("c", "x", 1);
    assert_eq!(h.status("c").unwrap().0, MemberStatus::Failed);
    let kinds: Vec<_> = h
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::Member { kind, member } => Some((kind, member.name.to_string())),
            _ => None,
        })
        .collect();
    assert_eq!(
        kinds,
        [(MemberEventKind::Leave, "b".into()), (MemberEventKind::Failed, "c".into())]
    );
    assert_eq!(h.s.core.delegate.members.left, [Arc::<str>::from("b")]);
    assert_eq!(h.s.core.delegate.members.failed, [Arc::<str>::from("c")]);
    // A later leave intent turns the failed member into left (forced).
    h.serf(&enc(&Leave { ltime: 8, node: "c", prune: false }));
    assert_eq!(h.status("c").unwrap().0, MemberStatus::Left);
    assert!(h.s.core.delegate.members.failed.is_empty());
    assert!(matches!(&h.events()[..], [Event::Member { kind: MemberEventKind::Leave, .. }]));
}

#[test]
fn our_leave_reports_its_start_before_its_own_member_events() {
    let mut h = H::new();
    h.events();
    h.s.leave(h.now).unwrap();
    h.advance(Duration::from_secs(10));
    let evs = h.events();
    assert_eq!(evs.first(), Some(&Event::LeaveStarted), "{evs:?}");
    assert_eq!(evs.iter().filter(|e| **e == Event::LeaveStarted).count(), 1);
    assert!(evs.contains(&Event::LeaveDone { error: None }), "{evs:?}");
    assert_eq!(h.s.leave(h.now), Ok(()), "a second leave after the first finished");
    assert!(!h.events().contains(&Event::LeaveStarted));
}

#[test]
fn a_leave_intent_about_us_is_refuted_with_a_join() {
    let mut h = H::new();
    h.alive("b", 2, 1, &[]);
    h.sent_serf();
    h.serf(&enc(&Leave { ltime: 50, node: "a", prune: false }));
    assert_eq!(h.status("a").unwrap().0, MemberStatus::Alive);
    h.advance(Duration::from_millis(250));
    let joins: Vec<_> = h
        .sent_serf()
        .into_iter()
        .filter_map(|(_, b)| match SerfMessage::decode(&b) {
            Ok(SerfMessage::Join(j)) => Some((j.node.to_string(), j.ltime)),
            _ => None,
        })
        .collect();
    assert!(joins.iter().any(|(n, lt)| n == "a" && *lt >= 51), "{joins:?}");
}

#[test]
fn force_leave_with_prune_erases() {
    let mut h = H::new();
    h.alive("b", 2, 1, &[]);
    h.dead("b", "x", 1);
    h.events();
    let id = h.s.force_leave(h.now, "b", true);
    assert!(h.s.member("b").is_none(), "pruned at once (it was not leaving)");
    let evs = h.events();
    assert!(evs.iter().any(|e| matches!(e, Event::Member { kind: MemberEventKind::Reap, .. })));
    assert!(evs
        .iter()
        .any(|e| matches!(e, Event::ForceLeaveDone { id: i, error: None } if *i == id)));
}

#[test]
fn user_event_limits_and_go_errors() {
    let mut h = H::new();
    let big = vec![b'x'; 510];
    assert_eq!(
        h.s.user_event(h.now, "abc", &big, true),
        Err("user event exceeds configured limit of 512 bytes before encoding".into())
    );
    // Fits before encoding, not after (the map keys add ~25 bytes).
    let almost = vec![b'x'; 500];
    assert_eq!(
        h.s.user_event(h.now, "ab", &almost, true),
        Err("encoded user event exceeds configured limit of 512 bytes after encoding".into())
    );
    let mut c = config("a", A);
    c.user_event_size_limit = 20_000;
    let mut h = H::with(c, None);
    assert_eq!(
        h.s.user_event(h.now, "e", &vec![0; 9300], false),
        Err("user event exceeds sane limit of 9216 bytes before encoding".into())
    );
    assert!(h.s.user_event(h.now, "ok", b"", false).is_ok());
}

#[test]
fn user_events_are_deduplicated_and_old_ones_dropped() {
    let mut h = H::new();
    h.serf(&enc(&UserEventMsg { ltime: 3, name: "d", payload: Some(b"p"), cc: true }));
    h.serf(&enc(&UserEventMsg { ltime: 3, name: "d", payload: Some(b"p"), cc: true }));
    h.serf(&enc(&UserEventMsg { ltime: 3, name: "d", payload: Some(b"q"), cc: true }));
    // nil and empty payloads are the same event.
    h.serf(&enc(&UserEventMsg { ltime: 4, name: "e", payload: None, cc: false }));
    h.serf(&enc(&UserEventMsg { ltime: 4, name: "e", payload: Some(b""), cc: false }));
    let users: Vec<_> = h.events().into_iter().filter(|e| matches!(e, Event::User(_))).collect();
    assert_eq!(users.len(), 3);
    assert_eq!(h.s.clocks().1, 5);
    // Far in the future, then something 513 behind it is too old.
    h.serf(&enc(&UserEventMsg { ltime: 2000, name: "f", payload: None, cc: false }));
    h.serf(&enc(&UserEventMsg { ltime: 1400, name: "g", payload: None, cc: false }));
    let names: Vec<_> = h
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::User(u) => Some(u.name),
            _ => None,
        })
        .collect();
    assert_eq!(names, ["f"]);
}

fn query<'a>(ltime: u64, id: u32, name: &'a str, flags: u32, filters: Option<&'a [u8]>) -> Vec<u8> {
    let q = Query {
        ltime,
        id,
        addr: Some(&[127, 0, 0, 5]),
        port: 7946,
        source_node: "e",
        filters: None,
        flags,
        relay_factor: 0,
        timeout_ns: 2_000_000_000,
        name,
        payload: Some(b"hi"),
    };
    let mut w = Writer::counting(Dialect::Gossip);
    let f = filters.map(core::iter::once);
    w.byte(4).unwrap();
    q.encode_body_with(&mut w, f.clone()).unwrap();
    let mut out = vec![0u8; w.len()];
    let mut w = Writer::new(&mut out, Dialect::Gossip);
    w.byte(4).unwrap();
    q.encode_body_with(&mut w, f).unwrap();
    out
}

fn tag_filter(tag: &str, expr: &str) -> Vec<u8> {
    let mut buf = vec![0u8; 128];
    let mut w = Writer::new(&mut buf, Dialect::Gossip);
    wire::serf::write_tag_filter(&mut w, tag, expr).unwrap();
    w.written().to_vec()
}

#[test]
fn queries_ack_deliver_respond_and_dedupe() {
    let mut c = config("a", A);
    c.tags.insert("role".into(), "web-1".into());
    let mut h = H::with(c, None);
    h.serf(&query(2, 77, "load", QUERY_FLAG_ACK, None));
    h.serf(&query(2, 77, "load", QUERY_FLAG_ACK, None));
    let evs = h.events();
    let qs: Vec<_> = evs
        .iter()
        .filter_map(|e| if let Event::Query(q) = e { Some(q.clone()) } else { None })
        .collect();
    assert_eq!(qs.len(), 1, "duplicates are dropped");
    assert_eq!((qs[0].name.as_str(), &qs[0].payload[..]), ("load", &b"hi"[..]));
    // The ack went straight to the origin.
    let sent = h.sent_serf();
    let to_origin: Vec<_> = sent.iter().filter(|(d, _)| *d == addr("127.0.0.5:7946")).collect();
    assert_eq!(to_origin.len(), 1);
    let Ok(SerfMessage::QueryResponse(ack)) = SerfMessage::decode(&to_origin[0].1) else {
        panic!()
    };
    assert_eq!((ack.id, ack.flags, ack.payload, ack.from), (77, 1, None, "a"));
    // Respond once; twice is an error; after the deadline too.
    assert_eq!(h.s.respond(h.now, qs[0].id, b"fine"), Ok(()));
    assert_eq!(
        h.s.respond(h.now, qs[0].id, b"again"),
        Err(RespondError::Failed("response already sent".into()))
    );
    // As in Go, the size is checked before "already sent".
    assert_eq!(
        h.s.respond(h.now, qs[0].id, &vec![b'x'; 1100]),
        Err(RespondError::Failed("response exceeds limit of 1024 bytes".into()))
    );
    let resp = h.sent_serf();
    let Ok(SerfMessage::QueryResponse(r)) = SerfMessage::decode(&resp[0].1) else { panic!() };
    assert_eq!((r.flags, r.payload), (0, Some(&b"fine"[..])));
    assert_eq!(h.s.respond(h.now, 999, b"x"), Err(RespondError::NoSuchQuery));
    h.serf(&query(3, 78, "load", 0, None));
    let q = h
        .events()
        .into_iter()
        .find_map(|e| if let Event::Query(q) = e { Some(q) } else { None })
        .unwrap();
    assert_eq!(
        h.s.respond(h.now, q.id, &vec![b'x'; 1100]),
        Err(RespondError::Failed("response exceeds limit of 1024 bytes".into()))
    );
    h.now += Duration::from_millis(1500);
    let late = h.now + Duration::from_millis(600);
    assert_eq!(
        h.s.respond(late, q.id, b"late"),
        Err(RespondError::Failed("response is past the deadline".into()))
    );
}

#[test]
fn query_filters_are_unanchored_regexps_and_node_lists() {
    let mut c = config("a", A);
    c.tags.insert("role".into(), "web-1".into());
    let mut h = H::with(c, None);
    let f = tag_filter("role", "eb");
    h.serf(&query(2, 1, "x", 0, Some(&f)));
    let f = tag_filter("role", "^db");
    h.serf(&query(3, 2, "x", 0, Some(&f)));
    let f = tag_filter("missing", "^$");
    h.serf(&query(4, 3, "x", 0, Some(&f)));
    let f = tag_filter("role", "(");
    h.serf(&query(5, 4, "x", 0, Some(&f)));
    let mut nodes = vec![0u8; 64];
    let mut w = Writer::new(&mut nodes, Dialect::Gossip);
    wire::serf::write_node_filter(&mut w, ["b", "a"].into_iter()).unwrap();
    let n = w.written().to_vec();
    h.serf(&query(6, 5, "x", 0, Some(&n)));
    let got: Vec<u64> = h
        .events()
        .into_iter()
        .filter_map(|e| if let Event::Query(q) = e { Some(q.ltime) } else { None })
        .collect();
    assert_eq!(got, [2, 4, 6], "substring match, missing tag = \"\", invalid regexp rejects");
}

#[test]
fn internal_queries_are_answered_not_delivered() {
    let mut h = H::new();
    h.alive("b", 2, 1, &[("role", "db")]);
    h.sent_serf();
    // _serf_conflict about b: answered with our view of b.
    let mut q = query(2, 9, "_serf_conflict", 0, None);
    // payload "hi" → replace with "b": rebuild
    q = {
        let qq = Query {
            ltime: 2,
            id: 9,
            addr: Some(&[127, 0, 0, 5]),
            port: 7946,
            source_node: "e",
            filters: None,
            flags: 0,
            relay_factor: 0,
            timeout_ns: 1_000_000_000,
            name: "_serf_conflict",
            payload: Some(b"b"),
        };
        let _ = q;
        qq.encoded()
    };
    h.serf(&q);
    assert!(!h.events().iter().any(|e| matches!(e, Event::Query(_))));
    let sent = h.sent_serf();
    let (_, body) = sent.iter().find(|(d, _)| *d == addr("127.0.0.5:7946")).unwrap();
    let Ok(SerfMessage::QueryResponse(r)) = SerfMessage::decode(body) else { panic!() };
    let Ok(SerfMessage::ConflictResponse(ConflictResponse { member: Some(m) })) =
        SerfMessage::decode(r.payload.unwrap())
    else {
        panic!()
    };
    assert_eq!((m.name, m.port, m.status), ("b", 7946, 1));
    assert_eq!(m.tags.unwrap().get("role"), Some("db"));
}

#[test]
fn key_queries_change_the_keyring_with_go_messages() {
    let k1 = [1u8; 32];
    let k2 = [2u8; 32];
    let mut h = H::with(config("a", A), Some(Keyring::new(&k1).unwrap()));
    let ask = |h: &mut H, ltime: u64, name: &str, key: &[u8]| -> (bool, String, Vec<String>) {
        let req = KeyRequest { key: Some(key) }.encoded();
        let q = Query {
            ltime,
            id: ltime as u32,
            addr: Some(&[127, 0, 0, 5]),
            port: 7946,
            source_node: "e",
            filters: None,
            flags: 0,
            relay_factor: 0,
            timeout_ns: 1_000_000_000,
            name,
            payload: Some(&req),
        };
        let enc = q.encoded();
        // Encrypted instance: feed as an already-decrypted user message via the delegate.
        h.s.core.delegate.notify_msg(h.now, &enc);
        h.s.settle(h.now);
        let sent = h.sent_serf();
        let (_, body) =
            sent.iter().find(|(d, _)| *d == addr("127.0.0.5:7946")).expect("a response");
        let Ok(SerfMessage::QueryResponse(r)) = SerfMessage::decode(body) else { panic!() };
        let Ok(SerfMessage::KeyResponse(k)) = SerfMessage::decode(r.payload.unwrap()) else {
            panic!()
        };
        (
            k.result,
            k.message.to_string(),
            k.keys.map(|l| l.iter().map(String::from).collect()).unwrap_or_default(),
        )
    };
    assert_eq!(ask(&mut h, 2, "_serf_install-key", &k2), (true, String::new(), vec![]));
    assert_eq!(h.s.keyring().unwrap().len(), 2);
    assert!(h.events().contains(&Event::KeyringChanged));
    assert_eq!(
        ask(&mut h, 3, "_serf_remove-key", &k1),
        (false, "Removing the primary key is not allowed".into(), vec![])
    );
    assert_eq!(
        ask(&mut h, 4, "_serf_use-key", &[3; 32]),
        (false, "Requested key is not in the keyring".into(), vec![])
    );
    assert_eq!(
        ask(&mut h, 5, "_serf_install-key", &[3; 7]),
        (false, "key size must be 16, 24 or 32 bytes".into(), vec![])
    );
    assert_eq!(ask(&mut h, 6, "_serf_use-key", &k2), (true, String::new(), vec![]));
    let (ok, _, keys) = ask(&mut h, 7, "_serf_list-keys", b"");
    assert!(ok);
    assert_eq!(keys, [keys::base64(&k2), keys::base64(&k1)]);
    // Without a keyring.
    let mut plain = H::new();
    assert_eq!(
        ask(&mut plain, 2, "_serf_install-key", &k2),
        (false, "No keyring to modify (encryption not enabled)".into(), vec![])
    );
    assert_eq!(
        ask(&mut plain, 3, "_serf_list-keys", b""),
        (false, "Keyring is empty (encryption not enabled)".into(), vec![])
    );
    // Go's log lines for all of the above.
    let serf_logs = |h: &mut H| -> Vec<String> {
        std::iter::from_fn(|| h.s.poll_event())
            .filter_map(|e| match e {
                Event::Log(l) if l.component == "serf" && l.text.to_lowercase().contains("key") => {
                    Some(format!("{:?} {}", l.level, l.text))
                }
                _ => None,
            })
            .collect()
    };
    assert_eq!(
        serf_logs(&mut h),
        [
            "Info Received remove-key query",
            "Error Failed to remove key: Removing the primary key is not allowed",
            "Info Received use-key query",
            "Error Failed to change primary key: Requested key is not in the keyring",
            "Info Received install-key query",
            "Error Failed to install key: key size must be 16, 24 or 32 bytes",
            "Info Received use-key query",
            "Info Received list-keys query",
        ]
    );
    assert_eq!(
        serf_logs(&mut plain),
        [
            "Error No keyring to modify (encryption not enabled)",
            "Error Keyring is empty (encryption not enabled)",
        ]
    );
}

#[test]
fn push_pull_state_round_trips_and_merges() {
    let mut h = H::new();
    h.alive("b", 2, 1, &[]);
    h.serf(&enc(&Leave { ltime: 4, node: "b", prune: false }));
    h.dead("b", "b", 1);
    h.s.user_event(h.now, "deploy", b"v", false).unwrap();
    let mut state = Vec::new();
    h.s.core.delegate.local_state(false, &mut state);
    let Ok(SerfMessage::PushPull(pp)) = SerfMessage::decode(&state) else { panic!() };
    assert_eq!(pp.events.unwrap().len(), 512);
    assert_eq!(pp.left_members.unwrap().iter().collect::<Vec<_>>(), ["b"]);
    assert_eq!(pp.status_ltimes.unwrap().get("b"), Some(4));
    // A fresh node merging it learns the leave (ltime 4 + 1) and the event.
    let mut other = H::with(config("z", "127.0.0.26:7946"), None);
    other.alive("b", 2, 1, &[]);
    other.events();
    other.s.core.delegate.merge_remote_state(other.now, &state, false);
    assert_eq!(other.status("b"), Some((MemberStatus::Leaving, 5)));
    let evs = other.events();
    assert!(evs.iter().any(|e| matches!(e, Event::User(u) if u.name == "deploy")));
    // Clocks witnessed at remote − 1, then +1: equal to the remote's.
    assert_eq!(other.s.clocks().1, h.s.clocks().1);
    // Joining with ignore-old: events below the remote event clock are not delivered.
    let mut late = H::with(config("y", "127.0.0.25:7946"), None);
    late.s.core.delegate.event_join_ignore = true;
    late.s.core.delegate.merge_remote_state(late.now, &state, true);
    assert!(!late.events().iter().any(|e| matches!(e, Event::User(_))));
}

#[test]
fn tags_encoding_and_limits() {
    let mut t = Tags::new();
    assert_eq!(encode_tags(&t, 5), [0xff, 0x80]);
    t.insert("role".into(), "web".into());
    t.insert("dc".into(), "east".into());
    assert_eq!(decode_tags(&encode_tags(&t, 5)), t);
    assert_eq!(encode_tags(&t, 2), b"web", "protocol 2 carries only the role");
    assert_eq!(decode_tags(b"").get("role").map(String::as_str), Some(""));
    let mut h = H::new();
    let mut big = Tags::new();
    big.insert("k".into(), "v".repeat(600));
    assert_eq!(
        h.s.set_tags(h.now, big),
        Err("Encoded length of tags exceeds limit of 512 bytes".into())
    );
    let mut c = config("a", A);
    c.protocol_version = 1;
    assert_eq!(
        Serf::new(c, Instant::ZERO, Rng::seed_from_u64(1), None).err(),
        Some("Protocol version '1' too low. Must be in range: [2, 5]".into())
    );
}

#[test]
fn queries_need_protocol_4_and_fit_the_size_limit() {
    let mut c = config("a", A);
    c.protocol_version = 3;
    let mut h = H::with(c, None);
    assert_eq!(
        h.s.query(h.now, "q", b"", &QueryParams::default()),
        Err("Feature not supported".into())
    );
    let mut h = H::new();
    assert_eq!(
        h.s.query(h.now, "q", &vec![0; 1100], &QueryParams::default()),
        Err("query exceeds limit of 1024 bytes".into())
    );
    // Default timeout: 200 ms × 16 × ceil(log10(1 + 1)) = 3.2 s.
    assert_eq!(h.s.default_query_timeout(), Duration::from_millis(3200));
}

#[test]
fn our_own_query_is_answered_to_ourselves_and_finishes() {
    let mut h = H::new();
    let params = QueryParams { request_ack: true, ..QueryParams::default() };
    let id = h.s.query(h.now, "who", b"", &params).unwrap();
    let q = h
        .events()
        .into_iter()
        .find_map(|e| if let Event::Query(q) = e { Some(q) } else { None })
        .unwrap();
    h.s.respond(h.now, q.id, b"me").unwrap();
    // The ack and response go to our own address as datagrams; loop them back.
    let mut buf = vec![0u8; PACKET_BUF];
    while let Some(t) = h.s.poll_transmit(&mut buf, &mut h.scratch) {
        assert_eq!(t.dst, addr(A));
        let mut d = buf[t.range].to_vec();
        h.s.handle_datagram(h.now, addr(A), &mut d, &mut h.scratch);
    }
    h.advance(Duration::from_secs(4));
    let evs = h.events();
    assert!(evs.contains(&Event::QueryAck { id, from: Arc::from("a") }));
    assert!(evs.contains(&Event::QueryResponse {
        id,
        from: Arc::from("a"),
        payload: b"me".to_vec()
    }));
    assert!(evs.contains(&Event::QueryDone { id }));
    let _ = QueryResponse::default();
}

#[test]
fn reaper_erases_failed_members_after_the_reconnect_timeout() {
    let mut c = config("a", A);
    c.reconnect_timeout = Duration::from_secs(60);
    c.tombstone_timeout = Duration::from_secs(120);
    let mut h = H::with(c, None);
    h.alive("b", 2, 1, &[]);
    h.alive("c", 3, 1, &[]);
    h.dead("b", "x", 1);
    h.serf(&enc(&Leave { ltime: 9, node: "c", prune: false }));
    h.dead("c", "c", 1);
    h.events();
    h.advance(Duration::from_secs(80));
    assert!(h.s.member("b").is_none(), "failed member reaped after 60 s (+ reap interval)");
    assert!(h.s.member("c").is_some(), "left member kept until 120 s");
    h.advance(Duration::from_secs(60));
    assert!(h.s.member("c").is_none());
    let reaps = h
        .events()
        .into_iter()
        .filter(|e| matches!(e, Event::Member { kind: MemberEventKind::Reap, .. }))
        .count();
    assert_eq!(reaps, 2);
}

#[test]
fn a_burst_of_joins_larger_than_the_event_floor_loses_no_member_event() {
    // 3000 members announced before the consumer polls (as one push-pull
    // merge of a 3000-node cluster does): two events each, past the fixed
    // floor of 4096 that used to drop the excess and the join's completion.
    let mut h = H::new();
    h.events(); // our own join
    for i in 0..3000u16 {
        let [hi, lo] = i.to_be_bytes();
        h.alive_at(&format!("n{i:04}"), [127, 1, hi, lo], 1, &[]);
    }
    let joins = h
        .events()
        .iter()
        .filter(|e| matches!(e, Event::Member { kind: MemberEventKind::Join, .. }))
        .count();
    assert_eq!(joins, 3000);
    assert_eq!(h.s.stats().events_dropped, 0);
}
