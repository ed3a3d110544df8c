//! Bad and hostile RPC clients against our agent. Each test runs two of
//! our agents joined together (127.0.78.x), throws something at the RPC
//! server, and after every case checks that the agent is alive, still
//! answers `members` correctly and still has both members.
//!
//! * `malformed_input`: garbage, the unused marker, truncated and
//!   byte-by-byte frames, wrong types, non-map bodies, unknown commands,
//!   deep nesting, oversized objects (declared and real), abrupt
//!   disconnects mid-command, mid-stream and mid-query, 5000 pipelined
//!   requests, and `rpc_auth` refusals whose bodies are discarded.
//! * `idle_clients_and_the_client_limit`: 1000 idle connections, then
//!   normal clients still work; filling up to `MAX_CLIENTS`, further
//!   connections are closed at once; command round-trip times.
//! * `a_client_that_never_reads`: a stream and a monitor nobody reads while
//!   thousands of events and log lines are generated: the server and agent
//!   keep serving, a healthy stream client misses nothing, the stuck client
//!   is dropped, and the agent's resident memory stays within a bound.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use agent::rpc::codec::*;
use agent::rpc::server::{HANDSHAKE_TIMEOUT, MAX_CLIENTS, MAX_OBJECT, WRITE_HIGH_WATER};
use agent::rpc::Client;
use common::raw::*;
use common::*;

#[allow(clippy::disallowed_methods)] // Tests measure wall time.
fn now() -> std::time::Instant {
    std::time::Instant::now()
}

/// Our agent `r1` on `ip1` joined with our agent `r2` on `ip2`.
fn pair(ip1: &str, ip2: &str, extra: &[&str], dir: &Path) -> (GoAgent, GoAgent) {
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| GoAgent::ours("r1", ip1, extra, dir));
        let b = s.spawn(|| GoAgent::ours("r2", ip2, &[], dir));
        (a.join().unwrap(), b.join().unwrap())
    });
    let auth = if extra.iter().any(|e| e.contains("auth")) { "s3cr3t" } else { "" };
    let mut c = Client::connect(&a.rpc_addr(), auth).unwrap();
    assert_eq!(c.join(vec![format!("{ip2}:7946")], false).unwrap(), 1);
    (a, b)
}

/// The agent is alive and reports both members alive.
fn healthy(a: &mut GoAgent, auth: &str, what: &str) {
    assert!(a.alive(), "the agent died after: {what}");
    let mut members = Vec::new();
    for _ in 0..50 {
        let mut c = Client::connect(&a.rpc_addr(), auth)
            .unwrap_or_else(|e| panic!("no RPC after {what}: {e}"));
        members = c.members().unwrap_or_else(|e| panic!("members after {what}: {e}"));
        if members.len() == 2 && members.iter().all(|m| m.status == "alive") {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("after {what}: members {members:?}");
}

/// Sends `bytes` and returns what came back.
fn send(a: &GoAgent, bytes: &[u8]) -> Exchange {
    exchange(&a.rpc_addr(), bytes, Duration::from_millis(300))
}

fn errors(ex: &Exchange) -> Vec<&str> {
    ex.values.iter().filter(|v| is_header(v)).filter_map(error_of).collect()
}

#[test]
fn malformed_input() {
    let dir = scratch("rpc-robust-input");
    let (mut a, _b) = pair("127.0.78.1", "127.0.78.2", &[], &dir);
    healthy(&mut a, "", "start");

    // Garbage, and the one byte msgpack never uses.
    let mut x: u32 = 12345;
    let garbage: Vec<u8> = (0..4096)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (x >> 16) as u8
        })
        .collect();
    for (what, bytes) in [("garbage", garbage.clone()), ("0xc1", vec![0xc1])] {
        let ex = send(&a, &bytes);
        assert!(ex.closed, "{what}: {ex:?}");
        healthy(&mut a, "", what);
    }
    let ex = send(&a, &[handshake(1), garbage].concat());
    assert!(ex.closed && errors(&ex) == [""], "garbage after a handshake: {ex:?}");

    // A request trickled in one byte at a time still gets its answer.
    let mut c = connect(&a.rpc_addr());
    for b in [handshake(1), header("members", 2)].concat() {
        c.write_all(&[b]).unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
    let ex = read_until_quiet(&mut c, Duration::from_millis(300), Duration::from_secs(5));
    assert_eq!(errors(&ex), ["", ""]);
    let (m, _) = MembersResponse::from_slice(&ex.values[2].to_vec().unwrap()).unwrap();
    assert_eq!(m.members.unwrap().len(), 2);

    // Truncated: half a header gets no answer and the connection stays;
    // completing it gets the answer; then an abrupt close.
    let hdr = [handshake(1), header("members", 2)].concat();
    let mut c = connect(&a.rpc_addr());
    c.write_all(&hdr[..hdr.len() - 3]).unwrap();
    let ex = read_until_quiet(&mut c, Duration::from_millis(300), Duration::from_secs(2));
    assert!(!ex.closed && errors(&ex) == [""], "{ex:?}");
    c.write_all(&hdr[hdr.len() - 3..]).unwrap();
    let ex = read_until_quiet(&mut c, Duration::from_millis(300), Duration::from_secs(2));
    assert_eq!(errors(&ex), [""], "the completed request");
    c.write_all(&header("members", 3)[..4]).unwrap();
    drop(c);
    healthy(&mut a, "", "truncated frames");

    // Protocol errors that close the connection, with or without a reply.
    let cases: Vec<(&str, Vec<u8>, Vec<&str>)> = vec![
        ("no handshake", header("members", 1), vec!["Handshake required"]),
        (
            "unknown command",
            [handshake(1), header("bogus", 2)].concat(),
            vec!["", "Unsupported command"],
        ),
        ("body not a map", [handshake(1), header("event", 2), vec![0x05]].concat(), vec![""]),
        ("string body", [handshake(1), header("join", 2), vec![0xa1, b'x']].concat(), vec![""]),
        (
            "wrong field type",
            [handshake(1), header("event", 2), map(&[("Name", Value::Int(5))])].concat(),
            vec![""],
        ),
        (
            "negative unsigned",
            [handshake(1), header("stop", 2), map(&[("Stop", Value::Int(-1))])].concat(),
            vec![""],
        ),
        (
            "map in a string field",
            [handshake(1), header("members-filtered", 2), map(&[("Name", Value::Map(vec![]))])]
                .concat(),
            vec![""],
        ),
        ("header not a map", vec![0x93, 0x01, 0x02, 0x03], vec![]),
        ("nested too deep", [handshake(1), vec![0x91; 100], vec![0x01]].concat(), vec![""]),
        (
            "bad regexp",
            [
                handshake(1),
                req(
                    "members-filtered",
                    2,
                    &MembersFilteredRequest { name: "(".into(), ..Default::default() },
                ),
            ]
            .concat(),
            vec![""],
        ),
    ];
    for (what, bytes, want) in cases {
        let ex = send(&a, &bytes);
        assert!(ex.closed, "{what}: not closed: {ex:?}");
        assert_eq!(errors(&ex), want, "{what}: {ex:?}");
        healthy(&mut a, "", what);
    }

    // A declared 4 GiB string in a body: nothing is buffered for it; the
    // server reads past whatever arrives (as Go would wait for it), and the
    // agent stays healthy meanwhile.
    let mut c = connect(&a.rpc_addr());
    let declared = [
        handshake(1),
        header("event", 2),
        vec![0x81, 0xa4],
        b"Name".to_vec(),
        vec![0xdb, 0xff, 0xff, 0xff, 0xff],
        vec![b'x'; 100_000],
    ]
    .concat();
    c.write_all(&declared).unwrap();
    let ex = read_until_quiet(&mut c, Duration::from_millis(300), Duration::from_secs(5));
    assert!(!ex.closed && errors(&ex) == [""], "declared 4 GiB string: {ex:?}");
    healthy(&mut a, "", "declared 4 GiB string");
    drop(c);

    // A body over MAX_OBJECT that really arrives is read past, not kept, and
    // answered with the error Go gives for its size (Go has no bound and
    // answers); the connection goes on serving.
    let big = req(
        "event",
        2,
        &EventRequest {
            name: "big".into(),
            payload: Some(vec![7; MAX_OBJECT + 10]),
            coalesce: false,
        },
    );
    let mut c = connect(&a.rpc_addr());
    c.write_all(&handshake(1)).unwrap();
    c.write_all(&big).unwrap();
    c.write_all(&header("members", 3)).unwrap();
    let ex = read_until_quiet(&mut c, Duration::from_millis(500), Duration::from_secs(5));
    assert!(!ex.closed, "oversized: {ex:?}");
    assert_eq!(
        errors(&ex),
        ["", "user event exceeds configured limit of 512 bytes before encoding", ""],
        "oversized: {ex:?}"
    );
    // Other commands: our bound in plain words.
    let big_join = req(
        "join",
        4,
        &JoinRequest { existing: Some(vec!["x".repeat(MAX_OBJECT)]), replay: false },
    );
    c.write_all(&big_join).unwrap();
    let ex = read_until_quiet(&mut c, Duration::from_millis(500), Duration::from_secs(5));
    assert_eq!(errors(&ex), [format!("request body larger than {MAX_OBJECT} bytes")], "{ex:?}");
    drop(c);
    healthy(&mut a, "", "oversized object");
    // One just under the limit is a normal request (refused by the
    // agent's event size limit, but answered).
    let fits = req(
        "event",
        2,
        &EventRequest {
            name: "big".into(),
            payload: Some(vec![7; MAX_OBJECT - 100]),
            coalesce: false,
        },
    );
    let ex = send(&a, &[handshake(1), fits].concat());
    assert!(!ex.closed, "{ex:?}");
    assert_eq!(errors(&ex)[1], "user event exceeds configured limit of 512 bytes before encoding");

    // Abrupt disconnects: mid-command (a join that takes a while, a key
    // listing), mid-stream and monitor, mid-query.
    for bytes in [
        [
            handshake(1),
            req(
                "join",
                2,
                &JoinRequest { existing: Some(vec!["10.255.255.1".into()]), replay: false },
            ),
        ]
        .concat(),
        [handshake(1), header("list-keys", 2)].concat(),
        [
            handshake(1),
            req("stream", 2, &StreamRequest { kind: "*".into() }),
            req("monitor", 3, &MonitorRequest { log_level: "trace".into() }),
            req(
                "query",
                4,
                &QueryRequest {
                    name: "q".into(),
                    request_ack: true,
                    timeout_ns: 2_000_000_000,
                    ..Default::default()
                },
            ),
            req("event", 5, &EventRequest { name: "e".into(), payload: None, coalesce: false }),
        ]
        .concat(),
    ] {
        let mut c = connect(&a.rpc_addr());
        c.write_all(&bytes).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        drop(c);
    }
    let mut c = Client::connect(&a.rpc_addr(), "").unwrap();
    c.user_event("after", None, false).unwrap();
    healthy(&mut a, "", "abrupt disconnects");

    // 5000 pipelined requests written before reading anything: the replies
    // (over the output high-water mark) all arrive, in order.
    let n = 5000u64;
    let mut bytes = handshake(1);
    for seq in 2..n + 2 {
        bytes.extend(header("members", seq));
    }
    let mut c = connect(&a.rpc_addr());
    let reader = c.try_clone().unwrap();
    let t = std::thread::spawn(move || {
        let mut reader = reader;
        read_until_quiet(&mut reader, Duration::from_millis(1000), Duration::from_secs(30))
    });
    c.write_all(&bytes).unwrap();
    let ex = t.join().unwrap();
    let seqs: Vec<u64> = ex.values.iter().filter(|v| is_header(v)).filter_map(seq_of).collect();
    assert_eq!(seqs, (1..n + 2).collect::<Vec<_>>(), "pipelined replies");
    let bytes_back: usize = ex.values.iter().map(|v| v.to_vec().unwrap().len()).sum();
    assert!(bytes_back > WRITE_HIGH_WATER, "the test should exceed the high-water mark");
    healthy(&mut a, "", "pipelined requests");
}

#[test]
fn auth_refusals_discard_the_body() {
    let dir = scratch("rpc-robust-auth");
    let cfg = dir.join("auth.json");
    std::fs::write(&cfg, r#"{"rpc_auth": "s3cr3t"}"#).unwrap();
    let flag = format!("-config-file={}", cfg.display());
    let (mut a, _b) = pair("127.0.78.5", "127.0.78.6", &[&flag], &dir);
    let auth = |k: &str| AuthRequest { auth_key: k.into() };
    let ex = send(
        &a,
        &[
            handshake(1),
            header("members", 2),
            req(
                "members-filtered",
                3,
                &MembersFilteredRequest { name: "r1".into(), ..Default::default() },
            ),
            req(
                "event",
                4,
                &EventRequest { name: "x".into(), payload: Some(vec![1; 100]), coalesce: true },
            ),
            header("bogus", 5),
            req("auth", 6, &auth("wrong")),
            req("auth", 7, &auth("s3cr3t")),
            req("auth", 8, &auth("wrong")),
            req(
                "members-filtered",
                9,
                &MembersFilteredRequest { name: "r1".into(), ..Default::default() },
            ),
            header("bogus", 10),
        ]
        .concat(),
    );
    let got: Vec<(u64, &str)> = ex
        .values
        .iter()
        .filter(|v| is_header(v))
        .map(|v| (seq_of(v).unwrap(), error_of(v).unwrap()))
        .collect();
    assert_eq!(
        got,
        [
            (1, ""),
            (2, "Authentication required"),
            (3, "Authentication required"),
            (4, "Authentication required"),
            (5, "Authentication required"),
            (6, "Invalid authentication token"),
            (7, ""),
            // A wrong key after a good one does not undo it (as in Go).
            (8, "Invalid authentication token"),
            (9, ""),
            (10, "Unsupported command"),
        ]
    );
    assert!(ex.closed);
    // The one body that followed a header is the filtered member list.
    let bodies: Vec<&Value> = ex.values.iter().filter(|v| !is_header(v)).collect();
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    healthy(&mut a, "s3cr3t", "auth refusals");
}

#[test]
fn idle_clients_and_the_client_limit() {
    let dir = scratch("rpc-robust-idle");
    let (mut a, _b) = pair("127.0.78.10", "127.0.78.11", &[], &dir);
    let addr = a.rpc_addr();
    let rss_before = a.rss_kib();
    // 1000 idle clients, half of them handshaken.
    let mut idle: Vec<TcpStream> = Vec::new();
    for i in 0..1000 {
        let mut c = connect(&addr);
        if i % 2 == 0 {
            c.write_all(&handshake(1)).unwrap();
        }
        idle.push(c);
    }
    // Normal clients still work while they sit there; time some commands.
    let mut c = Client::connect(&addr, "").unwrap();
    let t0 = now();
    let rounds = 2000u128;
    for _ in 0..rounds {
        assert_eq!(c.members().unwrap().len(), 2);
    }
    let members_us = t0.elapsed().as_micros() / rounds;
    let t0 = now();
    for _ in 0..rounds {
        c.stats().unwrap();
    }
    let stats_us = t0.elapsed().as_micros() / rounds;
    let t0 = now();
    for i in 0..rounds {
        c.user_event(&format!("e{i}"), None, true).unwrap();
    }
    let event_us = t0.elapsed().as_micros() / rounds;
    let t0 = now();
    for _ in 0..200 {
        Client::connect(&addr, "").unwrap().members().unwrap();
    }
    let connect_us = t0.elapsed().as_micros() / 200;
    eprintln!(
        "round trips with 1000 idle clients: members {members_us} µs, stats {stats_us} µs, \
         event {event_us} µs, connect+handshake+members {connect_us} µs"
    );
    drop(c);
    healthy(&mut a, "", "1000 idle clients");
    // The handshaken ones are sessions like any other.
    let mut first = idle.swap_remove(0);
    first.write_all(&header("members", 2)).unwrap();
    let ex = read_until_quiet(&mut first, Duration::from_millis(300), Duration::from_secs(5));
    assert_eq!(errors(&ex), ["", ""]);
    idle.push(first);
    let rss_idle = a.rss_kib();

    // Fill up to the limit with handshaken clients and 16 fresh ones that
    // never handshake (the first 1000's silent half may already have met
    // their deadline, so they are closed first). A few more connections shed the oldest silent ones,
    // and each new one is served instead of refused.
    drop(idle);
    std::thread::sleep(Duration::from_millis(300));
    let mut full: Vec<TcpStream> = Vec::new();
    while full.len() + 16 < MAX_CLIENTS {
        let mut c = connect(&addr);
        c.write_all(&handshake(1)).unwrap();
        full.push(c);
    }
    std::thread::sleep(Duration::from_millis(500));
    let mut unshaken: Vec<TcpStream> = (0..16).map(|_| connect(&addr)).collect();
    std::thread::sleep(Duration::from_millis(300));
    let extra: Vec<TcpStream> = (0..8).map(|_| connect(&addr)).collect();
    std::thread::sleep(Duration::from_millis(500));
    let closed = |c: &mut TcpStream| {
        c.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
        let mut b = [0u8; 1];
        matches!(c.read(&mut b), Ok(0))
    };
    let shed: Vec<usize> =
        unshaken.iter_mut().enumerate().filter_map(|(i, c)| closed(c).then_some(i)).collect();
    assert_eq!(shed, [0, 1, 2, 3, 4, 5, 6, 7], "the oldest un-handshaken clients are shed");
    let log = std::fs::read_to_string(&a.log).unwrap();
    assert!(log.contains("did not complete the handshake"), "no shedding logged");

    // Un-handshaken clients are closed after HANDSHAKE_TIMEOUT.
    let mut extra = extra;
    std::thread::sleep(HANDSHAKE_TIMEOUT + Duration::from_millis(500));
    assert!(
        extra.iter_mut().chain(&mut unshaken[8..]).all(closed),
        "un-handshaken clients outlived the deadline"
    );
    drop(extra);
    drop(unshaken);

    // When every connection has handshaken, a new one is closed at once.
    while full.len() < MAX_CLIENTS {
        let mut c = connect(&addr);
        c.write_all(&handshake(1)).unwrap();
        full.push(c);
    }
    std::thread::sleep(Duration::from_millis(500));
    let extra: Vec<TcpStream> = (0..8).map(|_| connect(&addr)).collect();
    let mut refused = 0;
    for mut c in extra {
        c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut b = [0u8; 1];
        if matches!(c.read(&mut b), Ok(0) | Err(_)) {
            refused += 1;
        }
    }
    assert_eq!(refused, 8, "connections over MAX_CLIENTS are closed");
    let log = std::fs::read_to_string(&a.log).unwrap();
    assert!(log.contains("clients are already connected"), "no warning logged");
    let mut idle = full;
    drop(idle.pop());
    std::thread::sleep(Duration::from_millis(200));
    healthy(&mut a, "", "the client limit");
    let rss_full = a.rss_kib();
    drop(idle);
    std::thread::sleep(Duration::from_millis(300));
    healthy(&mut a, "", "all idle clients gone");
    eprintln!(
        "agent VmRSS: {rss_before} KiB at start, {rss_idle} KiB with 1000 idle clients, \
         {rss_full} KiB with {MAX_CLIENTS}"
    );
    // Bound: an idle session costs its struct and small buffers; 4096 of
    // them stay well under 64 MiB.
    assert!(rss_full < rss_before + 64 * 1024, "{rss_before} → {rss_full} KiB");
}

/// A TCP connection whose receive buffer is set to 4 KiB before the
/// handshake (so the window stays small: the kernel does not absorb
/// megabytes for a client that never reads).
fn connect_small_rcvbuf(ip: &str, port: u16) -> TcpStream {
    use std::os::fd::FromRawFd;
    let ip: std::net::Ipv4Addr = ip.parse().unwrap();
    // SAFETY: plain socket calls on a descriptor we create and hand to
    // TcpStream, which then owns it.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0);
        let size: libc::c_int = 4096;
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&size as *const libc::c_int).cast(),
            core::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        let sa = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr { s_addr: u32::from(ip).to_be() },
            sin_zero: [0; 8],
        };
        let rc = libc::connect(
            fd,
            (&sa as *const libc::sockaddr_in).cast(),
            core::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
        assert_eq!(rc, 0, "connect: {}", std::io::Error::last_os_error());
        TcpStream::from_raw_fd(fd)
    }
}

#[test]
fn a_client_that_never_reads() {
    let dir = scratch("rpc-robust-slow");
    let (mut a, _b) = pair("127.0.78.20", "127.0.78.21", &[], &dir);
    let addr = a.rpc_addr();
    healthy(&mut a, "", "start");
    let rss_before = a.rss_kib();

    // The stuck client: a stream and a debug monitor, a tiny receive
    // buffer, and it never reads.
    let mut stuck = connect_small_rcvbuf(&a.ip, 7373);
    stuck
        .write_all(
            &[
                handshake(1),
                req("stream", 2, &StreamRequest { kind: "*".into() }),
                req("monitor", 3, &MonitorRequest { log_level: "debug".into() }),
            ]
            .concat(),
        )
        .unwrap();

    // A healthy client streaming user events alongside.
    let mut healthy_client = Client::connect(&addr, "").unwrap();
    let h = healthy_client.stream("user").unwrap();
    let events = 8000;
    let reader = std::thread::spawn(move || {
        let mut n = 0;
        while n < events {
            match healthy_client.next_event(&|| false) {
                Ok(Some(agent::rpc::client::Incoming::Stream { seq, .. })) if seq == h => n += 1,
                Ok(_) => {}
                Err(e) => panic!("the healthy stream broke after {n} events: {e}"),
            }
        }
        n
    });

    // Generate events (each also logs two lines for the monitor).
    let mut c = Client::connect(&addr, "").unwrap();
    let payload = vec![b'p'; 440];
    let t0 = now();
    let mut rss_peak = 0;
    for i in 0..events {
        c.user_event(&format!("ev{i}"), Some(payload.clone()), false).unwrap();
        if i % 500 == 0 {
            rss_peak = rss_peak.max(a.rss_kib());
            // The server keeps serving others meanwhile.
            assert_eq!(Client::connect(&addr, "").unwrap().members().unwrap().len(), 2);
        }
    }
    let took = t0.elapsed();
    let got = reader.join().unwrap();
    assert_eq!(got, events, "the healthy stream missed events");
    rss_peak = rss_peak.max(a.rss_kib());
    let log = std::fs::read_to_string(&a.log).unwrap();
    assert!(log.contains("is not reading"), "the stuck client was not dropped");
    // What the stuck client can still read is finite and ends in a close.
    let ex = read_until_quiet(&mut stuck, Duration::from_millis(1000), Duration::from_secs(30));
    assert!(ex.closed, "the stuck client is still connected after {} values", ex.values.len());
    healthy(&mut a, "", "a client that never reads");
    let rss_after = a.rss_kib();
    eprintln!(
        "{events} events in {took:?} with a stuck stream+monitor client; agent VmRSS {rss_before} KiB \
         before, peak {rss_peak} KiB, {rss_after} KiB after; the stuck client read {} records before \
         the close",
        ex.values.len() / 2
    );
    // Bound: the stuck session holds at most WRITE_HIGH_WATER (1 MiB) of
    // output plus a reply, and its stream and monitor channels 512 items
    // each (~1 KiB here); the rest is the agent's own churn. 32 MiB.
    assert!(rss_peak < rss_before + 32 * 1024, "RSS {rss_before} → peak {rss_peak} KiB");
}
