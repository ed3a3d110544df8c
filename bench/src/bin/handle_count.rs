//! A fixed number of operations on one warmed instance, for instruction
//! counting and profiling. The setup (a converged 50-node simulated cluster,
//! see [`bench::Fixture`]) and everything the test side does (building acks,
//! reading what the instance sent) are excluded by toggling collection on
//! the `measured*` functions only:
//!
//! ```text
//! cargo build --profile bench -p bench --bin handle_count
//! valgrind --tool=callgrind --collect-atstart=no \
//!     --toggle-collect='handle_count::measured*' \
//!     target/release/handle_count ping on 10000
//! ```
//!
//! Arguments: case, compression (`on`, `off`), iterations. Cases:
//!
//! - `ping`: a received ping (the ack reply included);
//! - `gossip4`, `gossip-full`: a gossip compound of 4 alives / as many as
//!   fit a packet, about known nodes at their current incarnation;
//! - `ack`: the ack answering the instance's outstanding probe (the probe
//!   itself is sent unmeasured before each iteration);
//! - `probe-round`: one iteration is a whole probe round over the 49 other
//!   members in virtual time: every timer that fires (probes, gossip,
//!   push-pull), what the instance sends, and the ack answering each probe.
//!
//! Callgrind's `Collected` total divided by the iterations is the
//! instruction count per operation. `handle_count --list` prints the cases
//! `scripts/regress` runs (case, compression, iterations).

use std::hint::black_box;

use bench::Fixture;
use engine::wire::memberlist::Message;
use engine::wire::packet::PacketCodec;

/// The cases `scripts/regress` runs: (case, compression, iterations).
const REGRESS: [(&str, &str, u64); 7] = [
    ("ping", "on", 2000),
    ("ping", "off", 2000),
    ("gossip4", "on", 1000),
    ("gossip4", "off", 1000),
    ("gossip-full", "on", 200),
    ("ack", "on", 200),
    ("probe-round", "on", 2),
];

/// The measured loop over one datagram (collection toggled on here).
#[inline(never)]
fn measured(f: &mut Fixture, datagram: &[u8], iters: u64) -> usize {
    let from = f.peer_addr();
    let mut sent = 0;
    for _ in 0..iters {
        sent += f.handle(black_box(datagram), from);
    }
    sent
}

/// What the instance sent from one timer firing, copied out.
#[derive(Default)]
struct Sent {
    bytes: Vec<u8>,
    ends: Vec<usize>,
    streams: Vec<engine::proto::memberlist::StreamId>,
    stream_buf: Vec<u8>,
}

/// Fires the instance's due timers at `f.now` and drains what it sends:
/// datagrams (copied into `sent`), streams (failed at once: there is no
/// network) and events.
#[inline(never)]
fn measured_timeout(f: &mut Fixture, sent: &mut Sent) {
    let Fixture { node, scratch, out, now, .. } = f;
    node.ml.handle_timeout(*now, scratch, &mut node.delegate);
    while let Some(t) = node.ml.poll_transmit(out, scratch, &mut node.delegate) {
        sent.bytes.extend_from_slice(&out[t.range]);
        sent.ends.push(sent.bytes.len());
    }
    while let Some(req) = node.ml.poll_stream(&mut sent.stream_buf, scratch, &mut node.delegate) {
        sent.streams.push(req.id);
    }
    for &id in &sent.streams {
        node.ml.handle_stream_error(*now, id, "connect: connection refused", &mut node.delegate);
    }
    while node.ml.poll_event().is_some() {}
}

/// One received datagram and the replies (collection toggled on here).
#[inline(never)]
fn measured_one(f: &mut Fixture, datagram: &[u8]) -> usize {
    let from = f.peer_addr();
    f.handle(black_box(datagram), from)
}

/// `iters` acks, each answering a probe started (unmeasured) just before.
fn acks(f: &mut Fixture, iters: u64) -> usize {
    let mut sent = 0;
    for _ in 0..iters {
        f.next_probe();
        let ack = core::mem::take(&mut f.ack);
        sent += measured_one(f, &ack);
    }
    sent
}

/// The probe sequence numbers in the datagrams of `sent` (unmeasured).
fn probes_in(codec: &mut PacketCodec, sent: &Sent) -> Vec<u32> {
    let mut seqs = Vec::new();
    let mut start = 0;
    for &end in &sent.ends {
        let mut pkt = sent.bytes[start..end].to_vec();
        start = end;
        let Ok(r) = PacketCodec::open(&mut pkt, None) else { continue };
        codec.walk(&pkt[r], &mut |m| {
            if let Ok(Message::Ping(p)) = m {
                seqs.push(p.seq_no);
            }
        });
    }
    seqs
}

/// `rounds` probe rounds: virtual time advances timer by timer until the
/// instance has probed every other member once per round, each probe
/// answered by an ack. Returns the number of timer firings.
fn probe_rounds(f: &mut Fixture, rounds: u64) -> u64 {
    let members = f.node.ml.num_members() as u64 - 1;
    let mut codec = PacketCodec::new();
    let mut sent = Sent::default();
    sent.bytes.reserve(1 << 20);
    sent.ends.reserve(1024);
    sent.streams.reserve(16);
    let (mut probes, mut firings) = (0u64, 0u64);
    // Bounded: a round is ~50 probes plus ~5 gossip ticks per probe.
    for _ in 0..rounds * members * 100 {
        if probes == rounds * members {
            return firings;
        }
        let t = f.node.ml.poll_timeout().expect("a running instance has timers");
        f.now = f.now.max(t);
        sent.bytes.clear();
        sent.ends.clear();
        sent.streams.clear();
        measured_timeout(f, &mut sent);
        firings += 1;
        for seq in probes_in(&mut codec, &sent) {
            let ack = f.ack_datagram(seq);
            measured_one(f, &ack);
            probes += 1;
        }
    }
    panic!("{probes} probes after {firings} timer firings: the probe rounds did not finish");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--list") {
        for (case, compression, iters) in REGRESS {
            println!("{case} {compression} {iters}");
        }
        return;
    }
    let case = args.get(1).map_or("ping", String::as_str);
    let compression = args.get(2).map_or("on", String::as_str) != "off";
    let iters: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let mut f = Fixture::new(compression);
    let datagram = match case {
        "ping" => f.ping.clone(),
        "gossip4" => f.gossip4.clone(),
        "gossip-full" => f.gossip_full.clone(),
        "ack" => {
            let sent = acks(&mut f, iters);
            println!("case={case} iterations={iters} replies={sent}");
            return;
        }
        "probe-round" => {
            let firings = probe_rounds(&mut f, iters);
            println!(
                "case={case} iterations={iters} members={} timer_firings={firings}",
                f.node.ml.num_members()
            );
            return;
        }
        other => {
            eprintln!("unknown case {other}: ping, gossip4, gossip-full, ack, probe-round");
            std::process::exit(2);
        }
    };
    // One unmeasured packet first: the warm path, not first-touch costs.
    let from = f.peer_addr();
    f.handle(&datagram, from);
    let sent = measured(&mut f, &datagram, iters);
    println!(
        "case={case} compression={} iterations={iters} datagram={} B replies={sent}",
        if compression { "on" } else { "off" },
        datagram.len()
    );
}
