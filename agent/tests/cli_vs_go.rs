//! Our `serf` CLI against the reference Go binary (`/usr/bin/serf`, Debian's
//! 0.9.4): the same arguments, run against the same real Go agents, must
//! give the same stdout, stderr and exit code.
//!
//! Normalisation is applied only where the Go binary itself is random or
//! timing-dependent, and always to both outputs alike:
//! * `members` text: rows sorted (Go's member order is a map order), the
//!   `k=v,k=v` tags cell sorted (Go's `range` over the tags map), and the
//!   trailing two-space gutter of rows with no tags dropped (Go trims it from
//!   whichever row happens to be last; the quirk itself is unit-tested);
//! * `members`/`query -format=json`: parsed, members sorted by name, `Acks`
//!   sorted (network arrival order);
//! * `query` text: the ack/response lines between the first and the two
//!   total lines compared as a sorted multiset (arrival order);
//! * `keys`: the `failed:` lines and key lines sorted (Go map order);
//! * `info`: the values of counters that move between two calls
//!   (`goroutines`, `*_time`, `*_queue`, `health_score`) masked;
//! * `rtt`: the milliseconds masked after checking they have 3 decimals
//!   (coordinates move between two runs);
//! * `reachability -verbose`: the two timings masked, ack lines sorted;
//! * `monitor`: only the `Event Info:` block of the event we fire is
//!   compared, its lines sorted (Go ranges over the record map); log lines
//!   carry timestamps and connection ports.
//!
//! Each test uses its own 127.0.x.y addresses so they run in parallel. If
//! the Go binary is missing the tests are skipped, except when `CI=true`.

mod common;

use std::path::Path;
use std::time::Duration;

use common::norm::*;
use common::*;

/// Asserts two runs are identical after `norm` (applied to stdout).
fn check(what: &str, go: &Run, ours: &Run, norm: fn(&str) -> String) {
    let g = Run { code: go.code, out: norm(&go.out), err: go.err.clone() };
    let o = Run { code: ours.code, out: norm(&ours.out), err: ours.err.clone() };
    assert_eq!(g, o, "`serf {what}`: Go (left) and ours (right) differ");
}

fn same(args: &[&str], dir: &Path) {
    same_env(args, &[], dir, exact);
}

fn same_norm(args: &[&str], dir: &Path, norm: fn(&str) -> String) {
    same_env(args, &[], dir, norm);
}

fn same_env(args: &[&str], env: &[(&str, &str)], dir: &Path, norm: fn(&str) -> String) {
    let (go, ours) = both_sequential(args, env, dir);
    check(&args.join(" "), &go, &ours, norm);
}

/// The block `serf agent -h` has beyond Go's text (serf-rs's own flags).
const AGENT_EXTENSIONS: &str = include_str!("../src/commands/help/agent-extensions.txt");

/// Go's output with [`AGENT_EXTENSIONS`] appended to the stream that
/// carries `serf agent`'s usage text, if one does (see [`same_agent_help`]).
fn with_agent_extensions(mut go: Run) -> Run {
    if go.err.contains("Usage: serf agent") {
        go.err.push_str(AGENT_EXTENSIONS);
    } else if go.out.contains("Usage: serf agent") {
        go.out.push_str(AGENT_EXTENSIONS);
    }
    go
}

/// `serf agent` help output: ours is Go's, with [`AGENT_EXTENSIONS`]
/// appended to the stream that carries the help text (stderr for `-h`,
/// stdout for a bad flag); everything else is identical.
fn same_agent_help(args: &[&str], dir: &Path) {
    let (go, ours) = both_sequential(args, &[], dir);
    let mut want = go.clone();
    if want.err.contains("Usage: serf agent") {
        want.err.push_str(AGENT_EXTENSIONS);
    } else {
        assert!(want.out.contains("Usage: serf agent"), "no help in Go's output: {go:?}");
        want.out.push_str(AGENT_EXTENSIONS);
    }
    assert_eq!(
        want,
        ours,
        "`serf {}`: Go + our block (left) and ours (right) differ",
        args.join(" ")
    );
}

// ---------------------------------------------------------------------------

#[test]
fn top_level_help_version_and_flag_errors() {
    if !go_available("top_level_help_version_and_flag_errors") {
        return;
    }
    let dir = scratch("static");
    let dead = "-rpc-addr=127.0.63.1:1";
    for args in [
        &[][..],
        &["-h"],
        &["--help"],
        &["-help"],
        &["bogus"],
        &["-x"],
        &["-x", "members"],
        &["-h", "bogus"],
        &["bogus", "-h"],
        &["-h", "-x", "members"],
        &["-version"],
        &["-v"],
        &["--version"],
        &["members", "-v"],
        &["version"],
        &["version", "extra", "-x"],
        &["--", "members"],
        &["--", "-v"],
        &["members", "--h"],
        &["leave", "-h=true"],
        &["members", "---x"],
        &["members", "-=x"],
        &["members", "-x", "-h"],
        &["query", "foo", "-h"],
        &["event", "-coalesce=maybe", "x"],
        &["query", "-timeout=5", "x"],
        &["query", "-relay-factor=abc", "x"],
        &["query", "-relay-factor=99999999999999999999", "x"],
        &["monitor", "-log-level"],
        &["members", "-detailed=maybe"],
    ] {
        same(args, &dir);
    }
    // Every command's help, and a bad flag for every command.
    for cmd in [
        "agent",
        "event",
        "force-leave",
        "info",
        "join",
        "keygen",
        "keys",
        "leave",
        "members",
        "monitor",
        "query",
        "reachability",
        "rtt",
        "tags",
        "version",
    ] {
        if cmd == "agent" {
            // Our agent help is Go's text followed by a block of our own
            // flags (HTTP API, DNS): compare with that block appended.
            same_agent_help(&["agent", "-h"], &dir);
            same_agent_help(&["agent", "--help"], &dir);
            same_agent_help(&["-help", "agent"], &dir);
            same_agent_help(&["agent", "-bogus-flag"], &dir);
            continue;
        }
        same(&[cmd, "-h"], &dir);
        same(&[cmd, "--help"], &dir);
        same(&["-help", cmd], &dir);
        if !matches!(cmd, "keygen" | "version") {
            same(&[cmd, "-bogus-flag"], &dir);
        }
    }
    // Argument errors found before connecting.
    for args in [
        &["event", dead][..],
        &["event", dead, "a", "b", "c"],
        &["query", dead],
        &["query", dead, "a", "b", "c"],
        &["query", dead, "-relay-factor=256", "q"],
        &["query", dead, "-relay-factor=-1", "q"],
        &["query", dead, "-tag", "foo", "q"],
        &["join", dead],
        &["force-leave", dead],
        &["force-leave", dead, "a", "b"],
        &["keys", dead],
        &["keys", dead, "-list", "-install=x"],
        &["keys", dead, "-use=a", "-remove=b"],
        &["tags", dead],
        &["members", dead, "-tag", "foo"],
        &["members", dead, "-role=x", "-tag", "=bad"],
    ] {
        same(args, &dir);
    }
    // Connection errors.
    for args in [
        &["members", dead][..],
        &["join", dead, "x"],
        &["leave", dead],
        &["force-leave", dead, "n"],
        &["event", dead, "e"],
        &["query", dead, "q"],
        &["tags", dead, "-set", "a=b"],
        &["tags", dead, "-set", "bad"],
        &["info", dead],
        &["monitor", dead],
        &["keys", dead, "-list"],
        &["rtt", dead, "n"],
        &["rtt", dead],
        &["reachability", dead],
        &["members", "-rpc-addr=bogus"],
        &["members", "-rpc-addr=127.0.0.1"],
        &["members", "-rpc-addr=127.0.0.1:99999"],
        &["members", "-rpc-addr=127.0.0.1:abc"],
        &["members", "-rpc-addr=1.2.3.4:-1"],
        &["members", "-rpc-addr=a:b:c"],
        &["members", "-rpc-addr="],
        &["members", "-rpc-addr", "127.0.63.2:1"],
        &["members", "--rpc-addr=127.0.63.3:1"],
    ] {
        same(args, &dir);
    }
    same_env(&["members"], &[("SERF_RPC_ADDR", "127.0.63.4:1")], &dir, exact);
    same_env(&["info", dead], &[("SERF_RPC_AUTH", "x")], &dir, exact);

    // keygen: random, so compare the shape.
    let (go, ours) = both(&["keygen"], &[], &dir);
    for r in [&go, &ours] {
        assert_eq!(r.code, 0);
        let key = r.out.strip_suffix('\n').unwrap();
        assert_eq!(key.len(), 44, "{key}");
        assert!(key.ends_with('=') && !key.ends_with("=="));
        assert!(r.err.is_empty());
    }
    assert_ne!(go.out, ours.out);
}

#[test]
fn agent_config_errors_match_go() {
    if !go_available("agent_config_errors_match_go") {
        return;
    }
    let dir = scratch("agentcfg");
    let f = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.to_string_lossy().into_owned()
    };
    let bad = f("bad.json", r#"{"bogus_key": 1, "another": 2, "node_name": "x"}"#);
    let trunc = f("trunc.json", r#"{"node_name": "#);
    let types =
        f("types.json", r#"{"node_name": 5, "protocol": "x", "tags": 3, "start_join": "y"}"#);
    let dur = f("dur.json", r#"{"retry_interval": "bogus"}"#);
    let dur2 = f("dur2.json", r#"{"reconnect_interval": "1x"}"#);
    let uesl = f("uesl.json", r#"{"user_event_size_limit": 10000}"#);
    let arr = f("arr.json", "[]");
    let syntax = f("syntax.json", r#"{"node_name": "a",}"#);
    let tags = f("tags.json", r#"{"a": "b"}"#);
    let badtags = f("badtags.json", r#"{"a": 1}"#);
    let keyring = f("keyring.json", r#"["YWJjZGVmZ2hpamtsbW5vcA=="]"#);
    let shortkey = f("short.json", r#"["YWJj"]"#);
    let nokeys = f("nokeys.json", "[]");
    let confdir = dir.join("confdir");
    std::fs::create_dir_all(&confdir).unwrap();
    std::fs::write(confdir.join("a.json"), r#"{"node_name": "a"}"#).unwrap();
    std::fs::write(confdir.join("b.json"), r#"{"bogus": 1}"#).unwrap();
    std::fs::write(confdir.join("c.txt"), "not json").unwrap();
    let confdir = confdir.to_string_lossy().into_owned();

    // Every case is invalid, so neither binary starts an agent. A valid
    // config would start a real Go agent: the timeout below catches that.
    let cases: Vec<Vec<String>> = [
        &["-protocol=1"][..],
        &["-protocol=6"],
        &["-protocol=258", "-log-level=x"],
        &["-log-level=foo"],
        &["-profile=bad"],
        &["-tag", "foo"],
        &["-tag", "=x"],
        &["-retry-interval=bogus"],
        &["-broadcast-timeout=x"],
        &["-encrypt=zzz"],
        &["-encrypt=YWJj"],
        &["-role=x", "-protocol=1"],
        &["-x"],
        &["--h"],
        &["-retry-max=abc"],
        &["-retry-interval=500ms", "-broadcast-timeout=1ms", "-rejoin", "-protocol=1"],
        &["-event-handler=bogus=foo.sh"],
        &["-event-handler=member-join,user:x,bogus=foo.sh"],
        &["-event-handler=user:=foo.sh", "-protocol=9"],
        &["-iface=nosuch0"],
        &["-iface=lo", "-bind=10.1.1.1", "-protocol=1"],
        &["-bind=foo:bar:baz"],
        &["-bind=1.2.3.4:99999"],
        &["-bind=::1"],
        &["-bind=1.2.3.4:abc"],
        &["-advertise=xyz:1:2"],
        &["-advertise=1.2.3.4:abc"],
        &["-keyring-file=/nonexistent", "-protocol=1"],
        &["-config-file=/nonexistent.json"],
        &["-config-dir=/nonexistent"],
        &["-syslog", "-protocol=1"],
    ]
    .iter()
    .map(|a| a.iter().map(|s| s.to_string()).collect())
    .chain([
        vec![format!("-config-file={bad}")],
        vec![format!("-config-file={trunc}")],
        vec![format!("-config-file={types}")],
        vec![format!("-config-file={dur}")],
        vec![format!("-config-file={dur2}")],
        vec![format!("-config-file={uesl}")],
        vec![format!("-config-file={arr}")],
        vec![format!("-config-file={syntax}")],
        vec![format!("-config-dir={confdir}")],
        vec![format!("-tags-file={tags}"), "-tag".into(), "x=y".into()],
        vec![format!("-tags-file={badtags}")],
        vec![format!("-keyring-file={keyring}"), "-encrypt=YWJjZGVmZ2hpamtsbW5vcA==".into()],
        vec![format!("-keyring-file={shortkey}")],
        vec![format!("-keyring-file={nokeys}")],
    ])
    .collect();

    std::thread::scope(|s| {
        let handles: Vec<_> = cases
            .iter()
            .enumerate()
            .map(|(i, case)| {
                let dir = &dir;
                s.spawn(move || {
                    let mut args =
                        vec!["agent", "-bind=127.0.64.1:7946", "-rpc-addr=127.0.64.1:7373"];
                    args.extend(case.iter().map(String::as_str));
                    let go = Spawned::start(GO_SERF, &args, &[], dir, &format!("go-{i}"));
                    let go = go.finish(Duration::from_secs(5));
                    assert_ne!(
                        go.code, -1,
                        "the Go agent started with {case:?}: not an invalid config"
                    );
                    let ours = run(OUR_SERF, &args, &[], dir);
                    check(&args.join(" "), &with_agent_extensions(go), &ours, exact);
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    });
}

fn wait_members(agent: &GoAgent, alive: usize, dir: &Path) {
    for _ in 0..100 {
        let r = run(GO_SERF, &["members", &agent.rpc_flag, "-status=alive"], &[], dir);
        if r.out.lines().count() == alive {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("cluster did not converge to {alive} alive members");
}

#[test]
fn cluster_commands_match_go() {
    if !go_available("cluster_commands_match_go") {
        return;
    }
    let dir = scratch("cluster");
    let handler = dir.join("respond.sh");
    std::fs::write(&handler, "#!/bin/sh\necho \"resp-from-$SERF_SELF_NAME\"\n").unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&handler, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let auth_cfg = dir.join("auth.json");
    std::fs::write(&auth_cfg, r#"{"rpc_auth": "s3cr3t"}"#).unwrap();
    let h = format!("-event-handler=query={}", handler.display());
    let auth = format!("-config-file={}", auth_cfg.display());
    let (a1, a2, a3) = std::thread::scope(|s| {
        let a1 = s.spawn(|| {
            GoAgent::start("n1", "127.0.61.1", &["-tag", "role=web", "-tag", "dc=east", &h], &dir)
        });
        let a2 = s.spawn(|| GoAgent::start("n2", "127.0.61.2", &["-tag", "role=db", &h], &dir));
        let a3 = s.spawn(|| GoAgent::start("n3", "127.0.61.3", &[&auth], &dir));
        (a1.join().unwrap(), a2.join().unwrap(), a3.join().unwrap())
    });
    let r1 = a1.rpc_flag.as_str();
    let r2 = a2.rpc_flag.as_str();
    let r3 = a3.rpc_flag.as_str();
    let setup = run(GO_SERF, &["join", r1, "127.0.61.2", "127.0.61.3"], &[], &dir);
    assert_eq!(setup.code, 0, "{setup:?}");
    wait_members(&a1, 3, &dir);

    // members
    for extra in [
        &[][..],
        &["-detailed"],
        &["-status=alive"],
        &["-name=n[12]"],
        &["-tag", "role=web"],
        &["-tag", "role=w.*", "-tag", "dc=east"],
        &["-role=db"],
        &["-tag=role=nomatch"],
        &["-name=n1|n2"],
    ] {
        let mut args = vec!["members", r1];
        args.extend(extra);
        same_norm(&args, &dir, norm_members);
    }
    for extra in
        [&["-format=json"][..], &["-format=json", "-name=n1"], &["-format=json", "-name=zz"]]
    {
        let mut args = vec!["members", r1];
        args.extend(extra);
        same_norm(&args, &dir, norm_json);
    }
    same(&["members", r1, "-format=xml"], &dir);
    same(&["members", r1, "-status=["], &dir);
    same(&["members", r1, "-tag", "foo"], &dir);

    // join
    same(&["join", r1, "127.0.61.2"], &dir);
    same(&["join", r1, "-replay", "127.0.61.2:7946", "127.0.61.3"], &dir);
    same(&["join", r1, "127.0.61.99"], &dir);
    same(&["join", r1], &dir);

    // event
    let big = "x".repeat(600);
    same(&["event", r1, "deploy"], &dir);
    same(&["event", r1, "-coalesce=false", "deploy", "payload v1"], &dir);
    same(&["event", r1, "big", &big], &dir);
    same(&["event", r1], &dir);
    same(&["event", r1, "a", "b", "c"], &dir);

    // tags
    same(&["tags", r2, "-set", "zone=a", "-set", "rack=1"], &dir);
    same(&["tags", r2, "-delete", "zone"], &dir);
    same(&["tags", r2, "-set", "rack=2", "-delete", "rack"], &dir);
    same(&["tags", r2, "-set", "foo"], &dir);
    same(&["tags", r2], &dir);
    same_norm(&["members", r1, "-detailed"], &dir, norm_members);

    // query and reachability. Go Serf keys pending queries by Lamport time,
    // so two queries started at once from one agent clash ("query reply ID
    // mismatch"); each round therefore runs the Go CLI against n1 and ours
    // against n2 at the same time. The outputs do not depend on the origin.
    type Case<'a> = (Vec<&'a str>, fn(&str) -> String);
    let timed: Vec<Case<'_>> = vec![
        (vec!["query", "-timeout=1s", "q1", "pay"], norm_query),
        (vec!["query", "-timeout=1s", "-no-ack", "q2"], norm_query),
        (vec!["query", "-timeout=1s", "-node=n2", "q3"], norm_query),
        (vec!["query", "-timeout=1s", "-tag", "role=web", "q4"], norm_query),
        (vec!["query", "-timeout=1s", "-relay-factor=2", "q5"], norm_query),
        (vec!["query", "-timeout=1s", "-format=json", "q6", "x"], norm_json),
        (vec!["query", "-timeout=1s", "-format=json", "-node=nobody", "q7"], norm_json),
        (vec!["reachability"], exact),
        (vec!["reachability", "-verbose"], norm_reach),
    ];
    for (args, norm) in &timed {
        let with = |rpc: &'static str| {
            let mut v = vec![args[0], rpc];
            v.extend(&args[1..]);
            v
        };
        let (go_args, our_args) =
            (with("-rpc-addr=127.0.61.1:7373"), with("-rpc-addr=127.0.61.2:7373"));
        let (go, ours) = std::thread::scope(|s| {
            let go = s.spawn(|| run(GO_SERF, &go_args, &[], &dir));
            let ours = run(OUR_SERF, &our_args, &[], &dir);
            (go.join().unwrap(), ours)
        });
        check(&args.join(" "), &go, &ours, *norm);
    }
    same(&["query", r1, "-format=xml", "q"], &dir);
    same(&["query", r1, "-timeout=1s", "_serf_x"], &dir);

    // info, rtt
    same_norm(&["info", r1], &dir, norm_info);
    same_norm(&["info", r1, "-format=json"], &dir, norm_info);
    same(&["info", r1, "-format=xml"], &dir);
    same_norm(&["rtt", r1, "n1", "n2"], &dir, norm_rtt);
    same_norm(&["rtt", r1, "n2"], &dir, norm_rtt);
    same(&["rtt", r1, "nosuch"], &dir);
    same(&["rtt", r1], &dir);
    same(&["rtt", r1, "a", "b", "c"], &dir);

    // keys without encryption
    same_norm(&["keys", r1, "-list"], &dir, sorted_lines);
    same(&["keys", r1, "-install=abc"], &dir);

    // force-leave of names that do not exist is a no-op
    same(&["force-leave", r1, "nosuch"], &dir);
    same(&["force-leave", r1, "-prune", "nosuch2"], &dir);
    same(&["force-leave", r1], &dir);

    // auth
    same(&["members", r3], &dir);
    same(&["info", r3], &dir);
    same(&["members", r3, "-rpc-auth=wrong"], &dir);
    same_norm(&["members", r3, "-rpc-auth=s3cr3t"], &dir, norm_members);
    same_env(
        &["members"],
        &[("SERF_RPC_ADDR", "127.0.61.3:7373"), ("SERF_RPC_AUTH", "s3cr3t")],
        &dir,
        norm_members,
    );
    same(&["event", r1, "-rpc-auth=x", "ev"], &dir);

    // monitor: both see the same event; Ctrl-C ends both with 0.
    let go_mon = Spawned::start(GO_SERF, &["monitor", r1, "-log-level=debug"], &[], &dir, "gomon");
    let our_mon =
        Spawned::start(OUR_SERF, &["monitor", r1, "-log-level=debug"], &[], &dir, "ourmon");
    std::thread::sleep(Duration::from_millis(700));
    let ev = run(GO_SERF, &["event", r1, "-coalesce=false", "mon-evt", "hi"], &[], &dir);
    assert_eq!(ev.code, 0);
    std::thread::sleep(Duration::from_millis(800));
    assert!(go_mon.stdout_now().contains("[DEBUG]"), "Go monitor saw no debug log");
    go_mon.interrupt();
    our_mon.interrupt();
    let go = go_mon.finish(Duration::from_secs(5));
    let ours = our_mon.finish(Duration::from_secs(5));
    assert_eq!((go.code, ours.code), (0, 0), "monitor exit codes\nGo: {go:?}\nours: {ours:?}");
    assert_eq!(go.err, ours.err);
    let gb = event_block(&go.out, "\"mon-evt\"").expect("Go monitor missed the event");
    assert_eq!(event_block(&ours.out, "\"mon-evt\""), Some(gb), "Event Info blocks differ");
    same(&["monitor", r1, "-log-level=foo"], &dir);

    // leave (last): our CLI makes n1 leave while both monitors watch it;
    // the Go CLI makes n2 leave.
    let go_mon = Spawned::start(GO_SERF, &["monitor", r1], &[], &dir, "gomon2");
    let our_mon = Spawned::start(OUR_SERF, &["monitor", r1], &[], &dir, "ourmon2");
    std::thread::sleep(Duration::from_millis(500));
    let (go, ours) = std::thread::scope(|s| {
        let go = s.spawn(|| run(GO_SERF, &["leave", r2], &[], &dir));
        let ours = run(OUR_SERF, &["leave", r1], &[], &dir);
        (go.join().unwrap(), ours)
    });
    check("leave", &go, &ours, exact);
    assert_eq!(ours.out, "Graceful leave complete\n");
    let go = go_mon.finish(Duration::from_secs(10));
    let ours = our_mon.finish(Duration::from_secs(10));
    assert_eq!((go.code, ours.code), (1, 1), "monitors after leave\nGo: {go:?}\nours: {ours:?}");
    fn tail(s: &str) -> Vec<&str> {
        s.lines().rev().take(3).collect()
    }
    assert_eq!(tail(&go.out), tail(&ours.out));
    assert_eq!(
        tail(&ours.out),
        [
            "remote side has exited or crashed.",
            "Remote side ended the monitor! This usually means that the",
            ""
        ]
    );
    drop((a1, a2, a3));
}

#[test]
fn encrypted_cluster_keys_match_go() {
    if !go_available("encrypted_cluster_keys_match_go") {
        return;
    }
    const K1: &str = "/2aLpXdzftBnAq1YcPOEDpnfROAsStWdMKSuHkIiedI=";
    const K2: &str = "qTSZo3M+NotXko4wjU6OnOGMB89vYZtNjH6sLxZPVC4=";
    let dir = scratch("keys");
    let enc = format!("-encrypt={K1}");
    let (a1, _a2) = std::thread::scope(|s| {
        let a1 = s.spawn(|| GoAgent::start("k1", "127.0.62.1", &[&enc], &dir));
        let a2 = s.spawn(|| GoAgent::start("k2", "127.0.62.2", &[&enc], &dir));
        (a1.join().unwrap(), a2.join().unwrap())
    });
    let r = a1.rpc_flag.as_str();
    let setup = run(GO_SERF, &["join", r, "127.0.62.2"], &[], &dir);
    assert_eq!(setup.code, 0, "{setup:?}");
    wait_members(&a1, 2, &dir);

    let install = format!("-install={K2}");
    let use_k2 = format!("-use={K2}");
    let remove_k1 = format!("-remove={K1}");
    let remove_k2 = format!("-remove={K2}");
    // Each operation is idempotent, so running it twice compares like with
    // like. Failure tables list nodes in Go's map order: lines sorted.
    for args in [
        vec!["keys", r, "-list"],
        vec!["keys", r, &install],
        vec!["keys", r, "-list"],
        vec!["keys", r, &use_k2],
        vec!["keys", r, &remove_k2],
        vec!["keys", r, &remove_k1],
        vec!["keys", r, "-list"],
        vec!["keys", r, "-install=abc"],
        vec!["keys", r, "-use=YWJj"],
    ] {
        same_norm(&args, &dir, sorted_lines);
    }
    same_norm(&["members", r], &dir, norm_members);
}
