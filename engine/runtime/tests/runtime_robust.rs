//! Robustness of the runtime against a hostile network: garbage datagrams,
//! garbage and truncated TCP streams, an oversized frame, and more idle
//! connections than an instance serves. Nothing panics, connections stay
//! within the bound and are all closed by their deadline, and the instance
//! keeps working (a new node joins it afterwards).

// Real sockets, real time: these tests wait on the OS clock.
#![allow(clippy::disallowed_methods)]

#[path = "runtime_util/alive.rs"]
mod alive;
#[path = "runtime_util/fast_config.rs"]
mod fast_config;
mod runtime_util;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use alive::alive;
use fast_config::fast_config;
use proto::memberlist::Event;
use proto::rng::Rng;
use runtime::{Runtime, RuntimeConfig};
use runtime_util::*;

const MAX_INBOUND: usize = 32;

/// Whether the peer closed `s` within `limit` (read returns EOF or an error).
fn closed_within(mut s: &TcpStream, limit: Duration) -> bool {
    s.set_read_timeout(Some(limit)).unwrap();
    let mut b = [0u8; 64];
    loop {
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => {} // an error reply: keep reading until the close
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
}

fn send_stream(to: SocketAddr, bytes: &[u8]) {
    if let Ok(mut s) = TcpStream::connect(to) {
        let _ = s.write_all(bytes);
    }
}

#[test]
fn garbage_does_not_hurt() {
    let rt: Runtime<Node> = Runtime::new(RuntimeConfig {
        workers: 1,
        inbound_timeout: Duration::from_secs(1),
        max_inbound_streams: MAX_INBOUND,
        ..RuntimeConfig::default()
    })
    .expect("runtime");
    let cfg = fast_config();
    let victim_addr = addr(125, 1);
    let victim = rt.spawn(victim_addr, None, node("v", victim_addr, &cfg, None, false)).unwrap();
    let mut rng = Rng::seed_from_u64(0x6a72_6261_6765);

    // Garbage datagrams: random lengths and bytes, every message type byte
    // followed by junk, and a few near the UDP maximum.
    let udp = UdpSocket::bind("127.0.125.9:0").unwrap();
    let mut buf = vec![0u8; 65_000];
    for i in 0..3000usize {
        let len = match i % 100 {
            0 => 65_000,
            1 => 0,
            _ => rng.index(1500) + 1,
        };
        rng.fill(&mut buf[..len]);
        if len > 0 && i % 3 == 0 {
            buf[0] = (i / 3 % 16) as u8; // a real message type, junk body
        }
        let _ = udp.send_to(&buf[..len], victim_addr);
        if i % 200 == 0 {
            std::thread::sleep(Duration::from_millis(5)); // let the socket drain
        }
    }

    // Garbage streams: random bytes, half frames, then close.
    let half_frames: [&[u8]; 6] = [
        &[0x0a, 0, 0, 3, 0xe8, 1, 2, 3], // encrypted, 1000 bytes announced
        &[0x09, 0x82, 0xa4],             // compress, msgpack map cut short
        &[0x06, 0x83, 0xa5, b'N', b'o'], // push-pull header cut short
        &[0x00, 0x85],                   // ping cut short
        &[0x08, 0x81, 0xaa],             // user message header cut short
        &[0xff, 0xff, 0xff],             // unknown type
    ];
    for i in 0..60usize {
        if i % 2 == 0 {
            let len = rng.index(4000) + 1;
            rng.fill(&mut buf[..len]);
            send_stream(victim_addr, &buf[..len]);
        } else {
            send_stream(victim_addr, half_frames[i / 2 % half_frames.len()]);
        }
    }
    // A frame announcing more than 20 MiB is refused at once.
    let mut big = TcpStream::connect(victim_addr).unwrap();
    big.write_all(&[0x0a, 0x7f, 0xff, 0xff, 0xff, 0]).unwrap();
    assert!(closed_within(&big, Duration::from_millis(500)), "oversized frame kept open");

    // The instance survived all that.
    let malformed = victim.call(|ep, _| ep.ml.stats().malformed).expect("worker alive");
    assert!(malformed > 100, "garbage datagrams must be seen and counted: {malformed}");

    // Idle connections beyond the bound: the extra ones wait in the listen
    // backlog (never more than the bound open), are accepted when the first
    // ones reach the inbound deadline, and are closed by their own.
    let idle: Vec<TcpStream> =
        (0..MAX_INBOUND + 10).map(|_| TcpStream::connect(victim_addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(200));
    let s = rt.total_stats();
    assert!(s.connections <= MAX_INBOUND as u64, "connections beyond the bound: {s:?}");
    assert!(s.inbound_deferred >= 1, "{s:?}");
    assert!(
        wait_until(Duration::from_secs(4), || rt.total_stats().connections == 0),
        "connections leaked: {:?}",
        rt.total_stats()
    );
    assert!(idle.iter().all(|c| closed_within(c, Duration::from_millis(100))));
    drop(idle);

    // Still a working member: a new node joins it and both converge.
    let peer_addr = addr(125, 2);
    let (tx, rx) = crossbeam_channel::bounded(64);
    let peer = rt.spawn(peer_addr, Some(tx), node("p", peer_addr, &cfg, None, false)).unwrap();
    peer.call(move |ep, now| ep.ml.join(now, &[victim_addr])).unwrap();
    let end = std::time::Instant::now() + Duration::from_secs(5);
    let (ok, errors) = loop {
        if let Event::JoinCompleted { succeeded, errors, .. } =
            rx.recv_deadline(end).expect("join completed")
        {
            break (succeeded, errors);
        }
    };
    assert_eq!(ok, 1, "{errors:?}");
    assert!(wait_until(Duration::from_secs(5), || {
        alive(&victim) == ["p", "v"] && alive(&peer) == ["p", "v"]
    }));
    let s = rt.total_stats();
    eprintln!("after garbage: {s:?}");
    assert!(s.stream_errors >= 60, "{s:?}");
    rt.shutdown();
}

/// A join burst larger than the concurrent-stream bound: the connections
/// past the bound wait in the listen backlog and are served as streams
/// finish, so every join succeeds (accept-and-close made most of them fail).
#[test]
fn join_burst_beyond_the_stream_limit_is_served() {
    const LIMIT: usize = 4;
    const PEERS: u8 = 40;
    let rt: Runtime<Node> = Runtime::new(RuntimeConfig {
        workers: 1,
        max_inbound_streams: LIMIT,
        inbound_timeout: Duration::from_millis(700),
        ..RuntimeConfig::default()
    })
    .expect("runtime");
    let mut cfg = fast_config();
    cfg.tcp_timeout = Duration::from_secs(10);
    let seed_addr = addr(123, 1);
    let seed = rt.spawn(seed_addr, None, node("seed", seed_addr, &cfg, None, false)).unwrap();
    // Silent connections hold every slot until the inbound deadline, so the
    // joins below all arrive while the seed is at its bound.
    let blockers: Vec<TcpStream> =
        (0..LIMIT).map(|_| TcpStream::connect(seed_addr).unwrap()).collect();
    assert!(wait_until(Duration::from_secs(2), || rt.total_stats().connections == LIMIT as u64));
    let mut peers = Vec::new();
    for i in 0..PEERS {
        let a = addr(123, 2 + i);
        let (tx, rx) = crossbeam_channel::bounded(256);
        let name = format!("p{i}");
        let h = rt.spawn(a, Some(tx), node(&name, a, &cfg, None, false)).unwrap();
        peers.push((h, rx));
    }
    // Forty joins against a seed whose four slots are taken.
    for (h, _) in &peers {
        h.call(move |ep, now| ep.ml.join(now, &[seed_addr])).unwrap();
    }
    let end = std::time::Instant::now() + Duration::from_secs(20);
    for (i, (_, rx)) in peers.iter().enumerate() {
        let (ok, errors) = loop {
            if let Event::JoinCompleted { succeeded, errors, .. } =
                rx.recv_deadline(end).expect("join completed")
            {
                break (succeeded, errors);
            }
        };
        assert_eq!(ok, 1, "peer {i}: {errors:?}");
    }
    let s = rt.total_stats();
    eprintln!("after burst: {s:?}");
    assert!(s.inbound_deferred >= 1, "the burst never reached the bound: {s:?}");
    assert!(s.streams_in >= u64::from(PEERS) + LIMIT as u64, "{s:?}");
    assert!(blockers.iter().all(|c| closed_within(c, Duration::from_millis(100))));
    assert!(
        wait_until(Duration::from_secs(10), || alive(&seed).len() == usize::from(PEERS) + 1),
        "seed sees {} alive",
        alive(&seed).len()
    );
    rt.shutdown();
}
