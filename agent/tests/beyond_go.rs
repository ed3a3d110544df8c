//! Failures users file against Go Serf, reproduced with the Go agent and
//! shown absent in ours, in one mixed cluster on the same wire.

mod common;

use std::time::Duration;

use common::*;

/// Waits until `agent` lists `n` alive members, or panics at the deadline.
fn wait_alive(agent: &GoAgent, n: usize, dir: &std::path::Path) {
    let deadline = now() + Duration::from_secs(20);
    loop {
        let r = run(OUR_SERF, &["members", &agent.rpc_flag, "-status=alive"], &[], dir);
        if r.out.lines().count() == n {
            return;
        }
        assert!(now() < deadline, "{} never saw {n} alive members: {}", agent.name, r.out);
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs the Go CLI's `serf query` through `agent` and returns its output and
/// how long the CLI took.
fn timed_query(agent: &GoAgent, args: &[&str], dir: &std::path::Path) -> (Run, Duration) {
    let mut all = vec!["query", agent.rpc_flag.as_str(), "-timeout=6s"];
    all.extend_from_slice(args);
    let t0 = now();
    let r = run(GO_SERF, &all, &[], dir);
    let took = t0.elapsed();
    assert_eq!(r.code, 0, "serf query {args:?} through {}: {} {}", agent.name, r.out, r.err);
    (r, took)
}

fn responses(out: &str) -> usize {
    out.lines()
        .find_map(|l| l.strip_prefix("Total Responses: "))
        .map_or(0, |n| n.trim().parse().unwrap())
}

fn acks(out: &str) -> usize {
    out.lines()
        .find_map(|l| l.strip_prefix("Total Acks: "))
        .map_or(0, |n| n.trim().parse().unwrap())
}

/// serf#398 / #509: `serf query` always waits its whole timeout, even when
/// every node has answered long before. Reproduced through a Go agent; ours,
/// in the same cluster and with the same Go CLI, ends the query once every
/// alive node that passes the filters has responded (and acked, with acks
/// requested) — same messages on the wire, so the Go agents answer it too.
/// A node that never responds (no handler for the query) keeps the full
/// wait, as in Go.
#[test]
fn a_query_ends_when_every_node_has_answered() {
    if !go_available("a_query_ends_when_every_node_has_answered") {
        return;
    }
    let dir = scratch("query-early-done");
    let handler = "-event-handler=query:uptime=echo up";
    let go1 = GoAgent::start("q-go1", "127.0.117.1", &[handler, "-tag=role=web"], &dir);
    let go2 = GoAgent::start(
        "q-go2",
        "127.0.117.2",
        &[handler, "-tag=role=db", "-join=127.0.117.1"],
        &dir,
    );
    let ours = GoAgent::ours(
        "q-ours",
        "127.0.117.3",
        &[handler, "-tag=role=web", "-join=127.0.117.1"],
        &dir,
    );
    for a in [&go1, &go2, &ours] {
        wait_alive(a, 3, &dir);
    }

    // Unfiltered, with acks: Go holds the query for the full 6 s.
    let (go, go_took) = timed_query(&go1, &["uptime"], &dir);
    assert_eq!((acks(&go.out), responses(&go.out)), (3, 3), "{}", go.out);
    assert!(go_took >= Duration::from_secs(5), "Go ended its query after {go_took:?}");
    let (r, ours_took) = timed_query(&ours, &["uptime"], &dir);
    assert_eq!((acks(&r.out), responses(&r.out)), (3, 3), "{}", r.out);
    assert!(ours_took < Duration::from_secs(3), "ours took {ours_took:?}: {}", r.out);

    // Filtered by name and by tag (over our view), without acks.
    let (r, took) = timed_query(&ours, &["-no-ack", "-node=q-go2", "uptime"], &dir);
    assert_eq!(responses(&r.out), 1, "{}", r.out);
    assert!(r.out.contains("q-go2"), "{}", r.out);
    assert!(took < Duration::from_secs(3), "ours (by name) took {took:?}");
    let (r, took) = timed_query(&ours, &["-no-ack", "-tag=role=web", "uptime"], &dir);
    assert_eq!(responses(&r.out), 2, "{}", r.out);
    assert!(r.out.contains("q-go1") && r.out.contains("q-ours"), "{}", r.out);
    assert!(took < Duration::from_secs(3), "ours (by tag) took {took:?}");

    // Nobody handles `other`: acks arrive, no response does, so ours waits
    // the whole timeout like Go rather than ending on acks alone.
    let (r, took) = timed_query(&ours, &["other"], &dir);
    assert_eq!((acks(&r.out), responses(&r.out)), (3, 0), "{}", r.out);
    assert!(took >= Duration::from_secs(5), "ours ended a silent query after {took:?}");
    eprintln!(
        "query answered by all 3: go {go_took:?}, ours {ours_took:?}; silent query: ours {took:?}"
    );
}

/// serf#684: IPv6 bind, advertise and join. Two of ours and a Go agent on
/// `[::1]` (ports apart), joined over IPv6; every view lists all three
/// alive at their IPv6 addresses, through both CLIs.
#[test]
fn ipv6_bind_and_join_with_go() {
    if !go_available("ipv6_bind_and_join_with_go") {
        return;
    }
    if std::net::UdpSocket::bind("[::1]:0").is_err() {
        // No IPv6 loopback on this machine: nothing to show, and CI has it.
        assert_ne!(std::env::var("CI").as_deref(), Ok("true"), "CI needs IPv6 loopback");
        eprintln!("skipping ipv6_bind_and_join_with_go: no ::1");
        return;
    }
    let dir = scratch("ipv6");
    let agent = |bin: &str, name: &str, port: u16, rpc: u16, join: bool| {
        let mut args = vec![
            "agent".to_string(),
            format!("-node={name}"),
            format!("-bind=[::1]:{port}"),
            format!("-rpc-addr=127.0.117.20:{rpc}"),
        ];
        if join {
            args.push("-join=[::1]:27946".into());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let a = Spawned::start(bin, &args, &[], &dir, name);
        let deadline = now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.117.20", rpc)).is_err() {
            assert!(now() < deadline, "{name} never opened its RPC port");
            std::thread::sleep(Duration::from_millis(50));
        }
        a
    };
    let _a = agent(OUR_SERF, "v6-ours1", 27946, 27373, false);
    let _b = agent(OUR_SERF, "v6-ours2", 27947, 27374, true);
    let _c = agent(GO_SERF, "v6-go", 27948, 27375, true);
    let expect = ["v6-ours1  [::1]:27946", "v6-ours2  [::1]:27947", "v6-go     [::1]:27948"];
    for (cli, rpc) in [(OUR_SERF, 27373), (GO_SERF, 27374), (OUR_SERF, 27375)] {
        let flag = format!("-rpc-addr=127.0.117.20:{rpc}");
        let deadline = now() + Duration::from_secs(20);
        loop {
            let r = run(cli, &["members", &flag, "-status=alive"], &[], &dir);
            let ok = expect.iter().all(|e| {
                r.out.lines().any(|l| l.split_whitespace().take(2).eq(e.split_whitespace()))
            });
            if ok {
                break;
            }
            assert!(now() < deadline, "members through {rpc}: {} {}", r.out, r.err);
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// consul#1299: a bad key must never reach the keyring file. `serf keys
/// -install` with a key that is not base64 or has the wrong size fails on
/// every member and leaves the file as it was — in ours as in Go.
#[test]
fn a_bad_key_never_reaches_the_keyring_file() {
    if !go_available("a_bad_key_never_reaches_the_keyring_file") {
        return;
    }
    let dir = scratch("keyring-validation");
    let key = run(OUR_SERF, &["keygen"], &[], &dir).out.trim().to_string();
    let ring = format!("[\n  \"{key}\"\n]");
    let mut files = Vec::new();
    let mut agents = Vec::new();
    for (bin, name, ip) in
        [(GO_SERF, "kr-go", "127.0.117.40"), (OUR_SERF, "kr-ours", "127.0.117.41")]
    {
        let file = dir.join(format!("{name}.keyring"));
        std::fs::write(&file, &ring).unwrap();
        let flag = format!("-keyring-file={}", file.display());
        agents.push(GoAgent::start_bin(bin, name, ip, &[&flag], &dir));
        files.push(file);
    }
    for (a, file) in agents.iter().zip(&files) {
        for bad in ["notbase64!", "QUJD"] {
            let install = format!("-install={bad}");
            let r = run(OUR_SERF, &["keys", &a.rpc_flag, &install], &[], &dir);
            assert_eq!(r.code, 1, "{}: install {bad}: {} {}", a.name, r.out, r.err);
            let now_ring = std::fs::read_to_string(file).unwrap();
            assert!(now_ring.contains(&key) && !now_ring.contains(bad), "{}: {now_ring}", a.name);
        }
        let list = run(OUR_SERF, &["keys", &a.rpc_flag, "-list"], &[], &dir);
        assert!(list.out.contains(&key) && !list.out.contains("QUJD"), "{}", list.out);
    }
}
