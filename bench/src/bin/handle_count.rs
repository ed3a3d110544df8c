//! A fixed number of received packets on one warmed instance, for
//! instruction counting and profiling (the setup is excluded by toggling
//! collection on `measured`):
//!
//! ```text
//! cargo build --profile bench -p bench --bin handle_count
//! valgrind --tool=callgrind --toggle-collect='handle_count::measured' \
//!     target/release/handle_count ping on 10000
//! ```
//!
//! Arguments: case (`ping`, `gossip4`, `gossip-full`), compression (`on`,
//! `off`), iterations. Prints the case and the packet sizes; callgrind's
//! `Collected` total divided by the iterations is the instruction count per
//! packet (reply included).

use std::hint::black_box;

use bench::Fixture;

/// The measured loop (callgrind toggles collection on this function).
#[inline(never)]
fn measured(f: &mut Fixture, datagram: &[u8], iters: u64) -> usize {
    let from = f.peer_addr();
    let mut sent = 0;
    for _ in 0..iters {
        sent += f.handle(black_box(datagram), from);
    }
    sent
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let case = args.get(1).map_or("ping", String::as_str);
    let compression = args.get(2).map_or("on", String::as_str) != "off";
    let iters: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let mut f = Fixture::new(compression);
    let datagram = match case {
        "ping" => f.ping.clone(),
        "gossip4" => f.gossip4.clone(),
        "gossip-full" => f.gossip_full.clone(),
        other => {
            eprintln!("unknown case {other}: ping, gossip4, gossip-full");
            std::process::exit(2);
        }
    };
    // One untoggled packet first: the warm path, not first-touch costs.
    let from = f.peer_addr();
    f.handle(&datagram, from);
    let sent = measured(&mut f, &datagram, iters);
    println!(
        "case={case} compression={} iterations={iters} datagram={} B replies={sent}",
        if compression { "on" } else { "off" },
        datagram.len()
    );
}
