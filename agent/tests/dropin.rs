//! Drop-in behaviours an operator moving from Go Serf relies on, each run
//! side by side with the Go agent: what Go does with a setting, ours does.

mod common;

use std::time::Duration;

use common::*;

/// Runs `serf rtt` through `agent` until it answers (coordinates need a
/// few probe rounds), or the deadline.
fn rtt_until_ok(agent: &GoAgent, other: &str, dir: &std::path::Path) -> Run {
    let deadline = now() + Duration::from_secs(20);
    loop {
        let r = run(OUR_SERF, &["rtt", &agent.rpc_flag, other], &[], dir);
        if r.code == 0 || now() > deadline {
            return r;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Go Serf 0.9.4 reads `disable_coordinates` but never applies it: its
/// agents keep computing coordinates and `serf rtt` answers. Ours starts
/// with a warning that the key has no effect, and answers too.
#[test]
fn disable_coordinates_is_inert_as_in_go() {
    if !go_available("disable_coordinates_is_inert_as_in_go") {
        return;
    }
    let dir = scratch("disable-coordinates");
    let conf = dir.join("nocoord.json");
    std::fs::write(&conf, r#"{"disable_coordinates": true}"#).unwrap();
    let conf_flag = format!("-config-file={}", conf.display());
    let go = GoAgent::start("dc-go", "127.0.110.1", &[&conf_flag], &dir);
    let ours = GoAgent::ours("dc-ours", "127.0.110.2", &[&conf_flag, "-join=127.0.110.1"], &dir);
    for (a, other) in [(&go, "dc-ours"), (&ours, "dc-go")] {
        let r = rtt_until_ok(a, other, &dir);
        assert_eq!(r.code, 0, "serf rtt through {} failed: {} {}", a.name, r.out, r.err);
        assert!(r.out.contains("Estimated"), "{}", r.out);
    }
    let log = std::fs::read_to_string(&ours.log).unwrap();
    assert!(log.contains("'disable_coordinates' has no effect"), "{log}");
}

/// A snapshot that cannot be opened fails the start with Go's words (the
/// OS error as Go's `*PathError` spells it), exit code and all.
#[test]
fn snapshot_open_error_reads_as_go() {
    if !go_available("snapshot_open_error_reads_as_go") {
        return;
    }
    let dir = scratch("snapshot-open-error");
    let args = |ip: &str| {
        vec![
            "agent".to_string(),
            "-node=snap".to_string(),
            format!("-bind={ip}"),
            format!("-rpc-addr={ip}:7373"),
            "-snapshot=/nonexistent-dir/snap".to_string(),
        ]
    };
    let go_args = args("127.0.110.5");
    let our_args = args("127.0.110.6");
    let go = run(GO_SERF, &go_args.iter().map(String::as_str).collect::<Vec<_>>(), &[], &dir);
    let ours = run(OUR_SERF, &our_args.iter().map(String::as_str).collect::<Vec<_>>(), &[], &dir);
    assert!(
        go.out.contains("failed to open snapshot: open /nonexistent-dir/snap: no such file"),
        "{}",
        go.out
    );
    assert_eq!(ours.out, go.out);
    assert_eq!(ours.err, go.err);
    assert_eq!(ours.code, go.code);
}

/// Opens `n` TCP connections to `addr` that never send a byte.
fn idle_sockets(addr: &str, n: usize) -> Vec<std::net::TcpStream> {
    (0..n).filter_map(|_| std::net::TcpStream::connect(addr).ok()).collect()
}

/// 4,200 RPC clients that connect and never handshake (more than our
/// 4,096-client bound) must not lock the CLI out; Go, with no bound, keeps
/// serving. Ours sheds the oldest silent connections to make room.
#[test]
fn idle_rpc_clients_do_not_lock_the_cli_out() {
    if !go_available("idle_rpc_clients_do_not_lock_the_cli_out") {
        return;
    }
    let dir = scratch("idle-rpc-clients");
    let go = GoAgent::start("irc-go", "127.0.110.10", &[], &dir);
    let ours = GoAgent::ours("irc-ours", "127.0.110.11", &[], &dir);
    let mut report = Vec::new();
    for a in [&go, &ours] {
        let held = idle_sockets(&a.rpc_addr(), 4200);
        assert!(held.len() >= 4100, "only {} connections to {}", held.len(), a.name);
        let t0 = now();
        let r = run(OUR_SERF, &["members", &a.rpc_flag], &[], &dir);
        let took = t0.elapsed();
        assert_eq!(
            r.code, 0,
            "{}: serf members failed with 4200 idle clients: {} {}",
            a.name, r.out, r.err
        );
        assert!(r.out.contains(&a.name), "{}", r.out);
        report.push(format!("{} {:?}", if a.is_go() { "go" } else { "ours" }, took));
        drop(held);
    }
    eprintln!("serf members with 4200 idle RPC clients: {}", report.join(", "));
}

/// An RPC request over our 1 MiB object bound (a 2 MiB event payload) is
/// answered as Go answers it — with the size error — and the connection
/// keeps serving; it used to be closed.
#[test]
fn an_oversized_rpc_request_gets_gos_error_reply() {
    use agent::rpc::codec::EventRequest;
    use common::raw::*;
    use std::io::Write;
    if !go_available("an_oversized_rpc_request_gets_gos_error_reply") {
        return;
    }
    let dir = scratch("oversized-rpc");
    let go = GoAgent::start("big-go", "127.0.110.20", &[], &dir);
    let ours = GoAgent::ours("big-ours", "127.0.110.21", &[], &dir);
    let big = req(
        "event",
        2,
        &EventRequest { name: "big".into(), payload: Some(vec![7; 2 << 20]), coalesce: false },
    );
    let mut replies = Vec::new();
    for a in [&go, &ours] {
        let mut c = connect(&a.rpc_addr());
        c.write_all(&handshake(1)).unwrap();
        c.write_all(&big).unwrap();
        c.write_all(&header("members", 3)).unwrap();
        let ex = read_until_quiet(&mut c, Duration::from_millis(500), Duration::from_secs(10));
        let errs: Vec<String> = ex
            .values
            .iter()
            .filter(|v| is_header(v))
            .filter_map(error_of)
            .map(str::to_owned)
            .collect();
        assert!(!ex.closed, "{}: {ex:?}", a.name);
        replies.push(errs);
    }
    assert_eq!(
        replies[0],
        ["", "user event exceeds configured limit of 512 bytes before encoding", ""]
    );
    assert_eq!(replies[1], replies[0]);
}
