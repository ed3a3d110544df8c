//! The Go CLI (`/usr/bin/serf`) against our agent's RPC server, side by
//! side with a real Go agent.
//!
//! Two clusters of the same shape run in parallel, with the same node
//! names, tags and handlers:
//! * **Go**: `n1` 127.0.70.1, `n2` .70.2, `n3` .70.3 — all Go agents;
//! * **ours**: `n1` 127.0.71.1 is **our agent**, `n2` .71.2 and `n3` .71.3
//!   are Go agents (so our agent gossips with Go peers too).
//!
//! Every subcommand is run three times: Go CLI → Go `n1`, Go CLI → our
//! `n1`, and our CLI → our `n1`. The three outputs (stdout, stderr, exit
//! code) must be equal once our cluster's addresses are mapped onto the Go
//! cluster's (127.0.71.x → 127.0.70.x) and after the normalisations of
//! `common::norm` for Go's own randomness. `info` values differ by nature
//! (runtime, counters), so only its shape (sections and keys) is compared.
//!
//! The same is done for keys on encrypted clusters (127.0.72.x Go,
//! 127.0.73.x ours + a Go peer) and for `rpc_auth` (127.0.74.1 Go,
//! 127.0.75.1 ours). Finally raw RPC sessions — protocol errors, closes,
//! bodies, records — are replayed byte for byte against a Go agent
//! (127.0.76.1) and ours (127.0.77.1) and the decoded answers compared.

mod common;

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use agent::rpc::codec::*;
use common::norm::*;
use common::raw;
use common::*;

/// Maps our clusters' addresses onto the Go clusters'.
fn unify(s: &str) -> String {
    s.replace("127.0.71.", "127.0.70.")
        .replace("127.0.73.", "127.0.72.")
        .replace("127.0.75.", "127.0.74.")
        .replace("127.0.77.", "127.0.76.")
}

/// `args` with `-rpc-addr=addr` after the subcommand.
fn with_addr(args: &[&str], addr: &str) -> Vec<String> {
    let mut v = vec![args[0].to_string(), format!("-rpc-addr={addr}")];
    v.extend(args[1..].iter().map(|s| s.to_string()));
    v
}

fn norm_run(r: &Run, norm: fn(&str) -> String) -> Run {
    Run { code: r.code, out: norm(&unify(&r.out)), err: unify(&r.err) }
}

/// The Go agent's and our agent's RPC addresses.
struct Targets<'a> {
    go: String,
    ours: String,
    dir: &'a Path,
}

impl Targets<'_> {
    fn run(&self, bin: &str, addr: &str, args: &[&str], env: &[(&str, &str)]) -> Run {
        let a = with_addr(args, addr);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        run(bin, &a, env, self.dir)
    }

    /// Go CLI → Go agent, Go CLI → our agent, our CLI → our agent; all at
    /// once when `parallel`, else the first two at once, then the third.
    fn three(&self, args: &[&str], env: &[(&str, &str)], parallel: bool) -> [Run; 3] {
        std::thread::scope(|s| {
            let a = s.spawn(|| self.run(GO_SERF, &self.go, args, env));
            let b = s.spawn(|| self.run(GO_SERF, &self.ours, args, env));
            if !parallel {
                let (a, b) = (a.join().unwrap(), b.join().unwrap());
                let c = self.run(OUR_SERF, &self.ours, args, env);
                return [a, b, c];
            }
            let c = self.run(OUR_SERF, &self.ours, args, env);
            [a.join().unwrap(), b.join().unwrap(), c]
        })
    }

    fn check(&self, args: &[&str], env: &[(&str, &str)], parallel: bool, norm: fn(&str) -> String) {
        let [go, go_ours, ours_ours] = self.three(args, env, parallel);
        let base = norm_run(&go, norm);
        let what = args.join(" ");
        assert_eq!(
            base,
            norm_run(&go_ours, norm),
            "`serf {what}`: Go CLI → Go agent (left) vs Go CLI → our agent (right)\nraw: {go:?}\n{go_ours:?}"
        );
        assert_eq!(
            base,
            norm_run(&ours_ours, norm),
            "`serf {what}`: Go CLI → Go agent (left) vs our CLI → our agent (right)\nraw: {go:?}\n{ours_ours:?}"
        );
    }

    fn same(&self, args: &[&str]) {
        self.check(args, &[], true, exact);
    }

    fn same_norm(&self, args: &[&str], norm: fn(&str) -> String) {
        self.check(args, &[], true, norm);
    }

    /// For commands that change state: idempotent ones only, run twice on
    /// our agent (Go CLI first, then ours).
    fn same_seq(&self, args: &[&str], norm: fn(&str) -> String) {
        self.check(args, &[], false, norm);
    }
}

fn wait_status(addr: &str, status: &str, n: usize, dir: &Path) {
    for _ in 0..300 {
        let r = run(
            GO_SERF,
            &["members", &format!("-rpc-addr={addr}"), &format!("-status={status}")],
            &[],
            dir,
        );
        if r.out.lines().count() == n {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{addr}: never saw {n} members {status}");
}

/// `info` shape: every value masked, so only sections and keys count.
fn info_shape(s: &str) -> String {
    s.lines()
        .map(|l| {
            if let Some((k, _)) = l.split_once(" = ") {
                format!("{k} = V")
            } else if let Some((k, v)) = l.split_once("\": ") {
                if v.trim_end_matches(',') == "{" {
                    l.to_string()
                } else {
                    let comma = if v.ends_with(',') { "," } else { "" };
                    format!("{k}\": V{comma}")
                }
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// An Event Info block with its Lamport time masked.
fn event_block_no_ltime(out: &str, needle: &str) -> Option<String> {
    event_block(out, needle).map(|b| {
        b.lines()
            .map(|l| if l.starts_with("\tLTime: ") { "\tLTime: N" } else { l })
            .collect::<Vec<_>>()
            .join("\n")
    })
}

fn handler_script(dir: &Path) -> String {
    let handler = dir.join("respond.sh");
    std::fs::write(&handler, "#!/bin/sh\necho \"resp-from-$SERF_SELF_NAME\"\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&handler, std::fs::Permissions::from_mode(0o755)).unwrap();
    format!("-event-handler=query={}", handler.display())
}

#[test]
fn go_cli_against_our_agent_in_a_go_cluster() {
    if !go_available("go_cli_against_our_agent_in_a_go_cluster") {
        return;
    }
    let dir = scratch("rpc-cluster");
    let h = handler_script(&dir);
    let n1: &[&str] = &["-tag", "role=web", "-tag", "dc=east", &h];
    let n2: &[&str] = &["-tag", "role=db", &h];
    let (g1, g2, g3, mut r1, r2, r3) = std::thread::scope(|s| {
        let g1 = s.spawn(|| GoAgent::start("n1", "127.0.70.1", n1, &dir));
        let g2 = s.spawn(|| GoAgent::start("n2", "127.0.70.2", n2, &dir));
        let g3 = s.spawn(|| GoAgent::start("n3", "127.0.70.3", &[], &dir));
        let r1 = s.spawn(|| GoAgent::ours("n1", "127.0.71.1", n1, &dir));
        let r2 = s.spawn(|| GoAgent::start("n2", "127.0.71.2", n2, &dir));
        let r3 = s.spawn(|| GoAgent::start("n3", "127.0.71.3", &[], &dir));
        (
            g1.join().unwrap(),
            g2.join().unwrap(),
            g3.join().unwrap(),
            r1.join().unwrap(),
            r2.join().unwrap(),
            r3.join().unwrap(),
        )
    });
    let t = Targets { go: g1.rpc_addr(), ours: r1.rpc_addr(), dir: &dir };

    // join (first with the Go CLI on both, so both clusters form alike)
    let [go, ours, _] = {
        let a = with_addr(&["join", "127.0.70.2", "127.0.70.3"], &t.go);
        let b = with_addr(&["join", "127.0.71.2", "127.0.71.3"], &t.ours);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let b: Vec<&str> = b.iter().map(String::as_str).collect();
        [
            run(GO_SERF, &a, &[], &dir),
            run(GO_SERF, &b, &[], &dir),
            Run { code: 0, out: String::new(), err: String::new() },
        ]
    };
    assert_eq!(go.code, 0, "{go:?}");
    assert_eq!(norm_run(&go, exact), norm_run(&ours, exact));
    wait_status(&t.go, "alive", 3, &dir);
    wait_status(&t.ours, "alive", 3, &dir);
    // Joining a member again, with replay, a refused address, and nothing.
    for (go_args, our_args) in [
        (vec!["join", "127.0.70.2"], vec!["join", "127.0.71.2"]),
        (
            vec!["join", "-replay", "127.0.70.2:7946", "127.0.70.3"],
            vec!["join", "-replay", "127.0.71.2:7946", "127.0.71.3"],
        ),
        (vec!["join", "127.0.70.99"], vec!["join", "127.0.71.99"]),
        (vec!["join", "127.0.70.98", "127.0.70.97"], vec!["join", "127.0.71.98", "127.0.71.97"]),
        (vec!["join"], vec!["join"]),
    ] {
        let go = t.run(GO_SERF, &t.go, &go_args, &[]);
        let go_ours = t.run(GO_SERF, &t.ours, &our_args, &[]);
        let ours = t.run(OUR_SERF, &t.ours, &our_args, &[]);
        assert_eq!(norm_run(&go, exact), norm_run(&go_ours, exact), "join {go_args:?}");
        assert_eq!(norm_run(&go, exact), norm_run(&ours, exact), "join {go_args:?} (our CLI)");
    }

    // members, every flag
    for extra in [
        &[][..],
        &["-detailed"],
        &["-status=alive"],
        &["-status=alive|failed"],
        &["-status=left"],
        &["-name=n[12]"],
        &["-name=n1|n2"],
        &["-tag", "role=web"],
        &["-tag", "role=w.*", "-tag", "dc=east"],
        &["-tag", "role="],
        &["-role=db"],
        &["-tag=role=nomatch"],
    ] {
        let mut args = vec!["members"];
        args.extend(extra);
        t.same_norm(&args, norm_members);
    }
    for extra in [
        &["-format=json"][..],
        &["-format=json", "-detailed"],
        &["-format=json", "-name=n1"],
        &["-format=json", "-name=zz"],
    ] {
        let mut args = vec!["members"];
        args.extend(extra);
        t.same_norm(&args, norm_json);
    }
    t.same(&["members", "-format=xml"]);
    t.same(&["members", "-status=["]);
    t.same(&["members", "-name=("]);
    t.same(&["members", "-tag", "role=a(b"]);
    t.same(&["members", "-tag", "foo"]);

    // event
    let big = "x".repeat(600);
    t.same(&["event", "deploy"]);
    t.same(&["event", "-coalesce=false", "deploy", "payload v1"]);
    t.same(&["event", "big", &big]);
    t.same(&["event", "edge", &"y".repeat(505)]);
    t.same(&["event"]);
    t.same(&["event", "a", "b", "c"]);
    t.same(&["event", "-rpc-auth=x", "ev"]);

    // query: acks and responses from the handler scripts on n1 and n2.
    type Case<'a> = (Vec<&'a str>, fn(&str) -> String);
    let timed: Vec<Case<'_>> = vec![
        (vec!["query", "-timeout=1s", "q1", "pay"], norm_query),
        (vec!["query", "-timeout=1s", "-no-ack", "q2"], norm_query),
        (vec!["query", "-timeout=1s", "-node=n2", "q3"], norm_query),
        (vec!["query", "-timeout=1s", "-node=n2", "-node=n3", "q3b"], norm_query),
        (vec!["query", "-timeout=1s", "-tag", "role=web", "q4"], norm_query),
        (vec!["query", "-timeout=1s", "-relay-factor=2", "q5"], norm_query),
        (vec!["query", "-timeout=1s", "-format=json", "q6", "x"], norm_json),
        (vec!["query", "-timeout=1s", "-format=json", "-node=nobody", "q7"], norm_json),
        (vec!["query", "-timeout=1s", "-format=json", "-no-ack", "q8"], norm_json),
        (vec!["reachability"], exact),
        (vec!["reachability", "-verbose"], norm_reach),
    ];
    for (args, norm) in &timed {
        t.same_seq(args, *norm);
    }
    t.same(&["query", "-format=xml", "q"]);
    t.same(&["query", "-timeout=1s", "_serf_x"]);
    t.same(&["query", "-timeout=1s", "big", &"z".repeat(1100)]);

    // tags (idempotent operations), then members shows them
    t.same_seq(&["tags", "-set", "zone=a", "-set", "rack=1"], exact);
    t.same_norm(&["members", "-detailed"], norm_members);
    t.same_seq(&["tags", "-delete", "zone"], exact);
    t.same_seq(&["tags", "-set", "rack=2", "-delete", "rack"], exact);
    t.same_norm(&["members", "-tag", "rack=2"], norm_members);
    t.same_seq(&["tags", "-delete", "rack"], exact);
    t.same(&["tags", "-set", "foo"]);
    t.same(&["tags"]);
    t.same_seq(&["tags", "-set", &format!("huge={}", "h".repeat(600))], exact);
    t.same_norm(&["members", "-format=json"], norm_json);

    // info: shape only
    t.same_norm(&["info"], info_shape);
    t.same_norm(&["info", "-format=json"], info_shape);
    t.same(&["info", "-format=xml"]);

    // rtt: shape (the milliseconds are masked)
    std::thread::sleep(Duration::from_millis(500));
    t.same_norm(&["rtt", "n1", "n2"], norm_rtt);
    t.same_norm(&["rtt", "n2"], norm_rtt);
    t.same_norm(&["rtt", "n2", "n3"], norm_rtt);
    t.same(&["rtt", "nosuch"]);
    t.same(&["rtt", "n1", "nosuch"]);
    t.same(&["rtt"]);
    t.same(&["rtt", "a", "b", "c"]);

    // keys on a cluster without encryption
    t.same_norm(&["keys", "-list"], sorted_lines);
    t.same_norm(&["keys", "-install=abc"], sorted_lines);
    t.same_norm(&["keys", "-install=YWJjZGVmZ2hpamtsbW5vcA=="], sorted_lines);

    // monitor: a few lines, an event, then Ctrl-C; all three exit 0 and
    // show the same event block.
    let mons = [
        Spawned::start(
            GO_SERF,
            &["monitor", &format!("-rpc-addr={}", t.go), "-log-level=debug"],
            &[],
            &dir,
            "mon-go",
        ),
        Spawned::start(
            GO_SERF,
            &["monitor", &format!("-rpc-addr={}", t.ours), "-log-level=debug"],
            &[],
            &dir,
            "mon-go-ours",
        ),
        Spawned::start(
            OUR_SERF,
            &["monitor", &format!("-rpc-addr={}", t.ours), "-log-level=debug"],
            &[],
            &dir,
            "mon-ours",
        ),
    ];
    std::thread::sleep(Duration::from_millis(700));
    for addr in [&t.go, &t.ours] {
        let ev = run(
            GO_SERF,
            &["event", &format!("-rpc-addr={addr}"), "-coalesce=false", "mon-evt", "hi"],
            &[],
            &dir,
        );
        assert_eq!(ev.code, 0, "{ev:?}");
    }
    std::thread::sleep(Duration::from_millis(1000));
    for m in &mons {
        m.interrupt();
    }
    let outs: Vec<Run> = mons.into_iter().map(|m| m.finish(Duration::from_secs(5))).collect();
    let blocks: Vec<Option<String>> =
        outs.iter().map(|r| event_block_no_ltime(&r.out, "\"mon-evt\"")).collect();
    for (r, b) in outs.iter().zip(&blocks) {
        assert_eq!((r.code, r.err.as_str()), (0, ""), "monitor: {r:?}");
        assert!(r.out.contains("[DEBUG] agent: Requesting user event send: mon-evt"), "{}", r.out);
        assert!(b.is_some(), "monitor missed the event: {}", r.out);
    }
    assert_eq!(blocks[0], blocks[1]);
    assert_eq!(blocks[0], blocks[2]);
    t.same(&["monitor", "-log-level=foo"]);
    t.same(&["monitor", "-log-level=error"]);

    // force-leave: n3 dies in both clusters; both show it failed, then
    // force-leave makes it left.
    t.same(&["force-leave", "nosuch"]);
    t.same(&["force-leave", "-prune", "nosuch2"]);
    t.same(&["force-leave"]);
    drop((g3, r3));
    wait_status(&t.go, "failed", 1, &dir);
    wait_status(&t.ours, "failed", 1, &dir);
    t.same_norm(&["members"], norm_members);
    t.same_seq(&["force-leave", "n3"], exact);
    wait_status(&t.go, "left", 1, &dir);
    wait_status(&t.ours, "left", 1, &dir);
    t.same_norm(&["members"], norm_members);
    t.same_norm(&["members", "-status=left", "-format=json"], norm_json);
    // Pruning a member that has already left changes nothing in Go 0.9.4.
    t.same_seq(&["force-leave", "-prune", "n3"], exact);
    t.same_norm(&["members"], norm_members);

    // leave: the Go CLI makes both n1 leave; our agent then exits 0.
    let go = t.run(GO_SERF, &t.go, &["leave"], &[]);
    let ours = t.run(GO_SERF, &t.ours, &["leave"], &[]);
    assert_eq!(norm_run(&go, exact), norm_run(&ours, exact));
    assert_eq!(ours.out, "Graceful leave complete\n");
    assert_eq!(r1.wait_exit(Duration::from_secs(10)), Some(0), "our agent after an RPC leave");
    wait_status(&g2.rpc_addr(), "left", 1, &dir);
    wait_status(&r2.rpc_addr(), "left", 1, &dir);
    drop((g1, g2, r2));
}

#[test]
fn go_cli_against_our_agent_keys_on_an_encrypted_cluster() {
    if !go_available("go_cli_against_our_agent_keys_on_an_encrypted_cluster") {
        return;
    }
    const K1: &str = "/2aLpXdzftBnAq1YcPOEDpnfROAsStWdMKSuHkIiedI=";
    const K2: &str = "qTSZo3M+NotXko4wjU6OnOGMB89vYZtNjH6sLxZPVC4=";
    let dir = scratch("rpc-keys");
    let enc = format!("-encrypt={K1}");
    let (g1, _g2, r1, _r2) = std::thread::scope(|s| {
        let g1 = s.spawn(|| GoAgent::start("k1", "127.0.72.1", &[&enc], &dir));
        let g2 = s.spawn(|| GoAgent::start("k2", "127.0.72.2", &[&enc], &dir));
        let r1 = s.spawn(|| GoAgent::ours("k1", "127.0.73.1", &[&enc], &dir));
        let r2 = s.spawn(|| GoAgent::start("k2", "127.0.73.2", &[&enc], &dir));
        (g1.join().unwrap(), g2.join().unwrap(), r1.join().unwrap(), r2.join().unwrap())
    });
    let t = Targets { go: g1.rpc_addr(), ours: r1.rpc_addr(), dir: &dir };
    for (addr, peer) in [(&t.go, "127.0.72.2"), (&t.ours, "127.0.73.2")] {
        let r = run(GO_SERF, &["join", &format!("-rpc-addr={addr}"), peer], &[], &dir);
        assert_eq!(r.code, 0, "{r:?}");
        wait_status(addr, "alive", 2, &dir);
    }
    let install = format!("-install={K2}");
    let use_k2 = format!("-use={K2}");
    let use_k1 = format!("-use={K1}");
    let remove_k1 = format!("-remove={K1}");
    let remove_k2 = format!("-remove={K2}");
    // Each operation is idempotent, so running it twice on our agent
    // compares like with like.
    for args in [
        vec!["keys", "-list"],
        vec!["keys", &install],
        vec!["keys", "-list"],
        vec!["keys", &use_k2],
        vec!["keys", &remove_k2], // removing the primary key fails
        vec!["keys", "-list"],
        vec!["keys", &remove_k1],
        vec!["keys", "-list"],
        vec!["keys", &use_k1], // not installed any more
        vec!["keys", "-install=abc"],
        vec!["keys", "-use=YWJj"],
        vec!["keys", "-remove=!!!!"],
        vec!["keys", "-install=YWJj"],
    ] {
        t.same_seq(&args, sorted_lines);
    }
    t.same_norm(&["members"], norm_members);
    t.same_norm(&["info"], info_shape);
}

#[test]
fn go_cli_against_our_agent_with_rpc_auth() {
    if !go_available("go_cli_against_our_agent_with_rpc_auth") {
        return;
    }
    let dir = scratch("rpc-auth");
    let cfg = dir.join("auth.json");
    std::fs::write(&cfg, r#"{"rpc_auth": "s3cr3t"}"#).unwrap();
    let auth = format!("-config-file={}", cfg.display());
    let (g, mut r) = std::thread::scope(|s| {
        let g = s.spawn(|| GoAgent::start("a1", "127.0.74.1", &[&auth], &dir));
        let r = s.spawn(|| GoAgent::ours("a1", "127.0.75.1", &[&auth], &dir));
        (g.join().unwrap(), r.join().unwrap())
    });
    let t = Targets { go: g.rpc_addr(), ours: r.rpc_addr(), dir: &dir };
    t.same(&["members"]);
    t.same(&["info"]);
    t.same(&["event", "e"]);
    t.same(&["monitor"]);
    t.same(&["keys", "-list"]);
    t.same(&["members", "-rpc-auth=wrong"]);
    t.same(&["leave", "-rpc-auth=wrong"]);
    t.same_norm(&["members", "-rpc-auth=s3cr3t"], norm_members);
    t.same_norm(&["info", "-rpc-auth=s3cr3t"], info_shape);
    t.same(&["event", "-rpc-auth=s3cr3t", "e"]);
    t.check(&["members"], &[("SERF_RPC_AUTH", "s3cr3t")], true, norm_members);
    t.check(&["members"], &[("SERF_RPC_AUTH", "nope")], true, exact);
    // SERF_RPC_ADDR and SERF_RPC_AUTH both from the environment.
    let go =
        run(GO_SERF, &["members"], &[("SERF_RPC_ADDR", &t.go), ("SERF_RPC_AUTH", "s3cr3t")], &dir);
    let ours = run(
        OUR_SERF,
        &["members"],
        &[("SERF_RPC_ADDR", &t.ours), ("SERF_RPC_AUTH", "s3cr3t")],
        &dir,
    );
    assert_eq!(norm_run(&go, norm_members), norm_run(&ours, norm_members));
    // Leave with the right token: Go CLI → Go agent, our CLI → our agent.
    let go = t.run(GO_SERF, &t.go, &["leave", "-rpc-auth=s3cr3t"], &[]);
    let ours = t.run(OUR_SERF, &t.ours, &["leave", "-rpc-auth=s3cr3t"], &[]);
    assert_eq!(go, ours);
    assert_eq!(ours.code, 0);
    assert_eq!(r.wait_exit(Duration::from_secs(10)), Some(0));
    drop(g);
}

// --- raw sessions -----------------------------------------------------------

/// Our address in a decoded value mapped onto the Go agent's, maps sorted
/// (Go's map order is random; struct keys are sorted anyway).
fn norm_value(v: &Value, mask_strings: bool) -> Value {
    match v {
        Value::Bin(b) if b.len() == 4 && b[..3] == [127, 0, 77] => {
            Value::Bin(vec![127, 0, 76, b[3]])
        }
        Value::Str(s) if mask_strings => {
            Value::Str(if s.is_empty() { vec![] } else { b"V".to_vec() })
        }
        Value::Str(s) => Value::Str(unify(&String::from_utf8_lossy(s)).into_bytes()),
        Value::Array(a) => Value::Array(a.iter().map(|x| norm_value(x, mask_strings)).collect()),
        Value::Map(m) => {
            let mut m: Vec<(Value, Value)> =
                m.iter().map(|(k, x)| (k.clone(), norm_value(x, mask_strings))).collect();
            m.sort_by_key(|(k, _)| format!("{k:?}"));
            Value::Map(m)
        }
        other => other.clone(),
    }
}

struct Session {
    name: &'static str,
    bytes: Vec<u8>,
    /// Compare string values as "empty or not" only (stats).
    mask: bool,
    /// Compare the answers as a multiset (async records may interleave).
    unordered: bool,
}

fn session(name: &'static str, parts: Vec<Vec<u8>>) -> Session {
    Session { name, bytes: parts.concat(), mask: false, unordered: false }
}

fn sessions() -> Vec<Session> {
    use raw::*;
    let stop = |seq, s| req("stop", seq, &StopRequest { stop: s });
    let stream = |seq, ty: &str| req("stream", seq, &StreamRequest { kind: ty.into() });
    let monitor = |seq, l: &str| req("monitor", seq, &MonitorRequest { log_level: l.into() });
    let query = |seq, name: &str, payload: Option<&[u8]>, ack: bool, ms: i64| {
        req(
            "query",
            seq,
            &QueryRequest {
                filter_tags: Some(vec![]),
                name: name.into(),
                payload: payload.map(<[u8]>::to_vec),
                request_ack: ack,
                timeout_ns: ms * 1_000_000,
                ..Default::default()
            },
        )
    };
    let key = |cmd, seq, k: &str| req(cmd, seq, &KeyRequest { key: k.into() });
    let filtered = |seq, name: &str, status: &str| {
        req(
            "members-filtered",
            seq,
            &MembersFilteredRequest {
                name: name.into(),
                status: status.into(),
                tags: Some(vec![]),
            },
        )
    };
    let mut v = vec![
        // First, while no ERR line is in the log ring to replay.
        session(
            "monitor",
            vec![
                handshake(1),
                monitor(2, "bogus"),
                monitor(3, "err"),
                monitor(4, "info"),
                stop(5, 3),
                stop(6, 99),
                monitor(7, ""),
            ],
        ),
        session("no handshake", vec![header("members", 1), handshake(2)]),
        session(
            "bad version",
            vec![req("handshake", 1, &HandshakeRequest { version: 2 }), header("members", 2)],
        ),
        session("double handshake", vec![handshake(1), handshake(2), stop(3, 1)]),
        session("unknown command", vec![handshake(1), header("bogus", 2), header("members", 3)]),
        session("unknown before handshake", vec![header("bogus", 1)]),
        session("case matters", vec![handshake(1), header("Members", 2)]),
        session("body not a map", vec![handshake(1), header("event", 2), vec![0x05]]),
        session("body is an array", vec![handshake(1), header("stop", 2), vec![0x91, 0x01]]),
        session(
            "wrong field type",
            vec![handshake(1), header("event", 2), map(&[("Name", Value::Int(5))])],
        ),
        session(
            "bin for a string",
            vec![handshake(1), header("event", 2), map(&[("Name", Value::Bin(b"x".to_vec()))])],
        ),
        session(
            "nil body",
            vec![handshake(1), header("stop", 2), vec![0xc0], header("members", 3)],
        ),
        session(
            "unknown fields",
            vec![
                handshake(1),
                header("stop", 2),
                map(&[("Bogus", Value::Array(vec![Value::Nil])), ("Stop", Value::Int(1))]),
            ],
        ),
        session("header not a map", vec![vec![0x93, 0x01, 0x02, 0x03]]),
        session(
            "header without seq",
            vec![map(&[("Command", s("handshake"))]), map(&[("Version", Value::Int(1))])],
        ),
        session(
            "stream filters",
            vec![
                handshake(1),
                stream(2, "bogus"),
                stream(3, "member-join,user:x,query:y"),
                stream(3, "*"),
                stream(4, "member-join,bogus"),
                stop(5, 3),
                stream(3, ""),
            ],
        ),
        session(
            "respond unknown id",
            vec![
                handshake(1),
                req("respond", 2, &RespondRequest { id: 7, payload: Some(b"x".to_vec()) }),
            ],
        ),
        session(
            "internal query names",
            vec![
                handshake(1),
                query(2, "_serf_x", None, false, 100),
                query(3, "_serf_ping", Some(b"x"), false, 100),
                query(4, "_serf_ping", Some(b""), false, 100),
            ],
        ),
        session(
            "join nobody",
            vec![
                handshake(1),
                req("join", 2, &JoinRequest { existing: None, replay: false }),
                req("join", 3, &JoinRequest { existing: Some(vec![]), replay: true }),
            ],
        ),
        session(
            "coordinate of a stranger",
            vec![
                handshake(1),
                req("get-coordinate", 2, &CoordinateRequest { node: "nosuch".into() }),
            ],
        ),
        session(
            "bad base64 keys",
            vec![
                handshake(1),
                key("install-key", 2, "abc"),
                key("use-key", 3, "YWJj="),
                key("remove-key", 4, "!!!!"),
                key("install-key", 5, "YWJjZA=x"),
            ],
        ),
        session(
            "keys without encryption",
            vec![
                handshake(1),
                header("list-keys", 2),
                key("install-key", 3, "YWJjZGVmZ2hpamtsbW5vcA=="),
            ],
        ),
        session("bad regexp", vec![handshake(1), filtered(2, "[", ""), header("members", 3)]),
        session(
            "auth without auth",
            vec![
                handshake(1),
                req("auth", 2, &AuthRequest { auth_key: "x".into() }),
                req("auth", 3, &AuthRequest { auth_key: String::new() }),
                filtered(4, "raw", "alive"),
            ],
        ),
        session(
            "members",
            vec![
                handshake(1),
                header("members", 2),
                filtered(3, "r.*", "alive|left"),
                filtered(4, "", "failed"),
            ],
        ),
        session(
            "no-op writes",
            vec![
                handshake(1),
                req(
                    "tags",
                    2,
                    &TagsRequest { delete_tags: Some(vec!["nosuch".into()]), tags: None },
                ),
                req("force-leave", 3, &ForceLeaveRequest { node: "nosuch".into(), prune: false }),
                req(
                    "event",
                    4,
                    &EventRequest {
                        coalesce: true,
                        name: "big".into(),
                        payload: Some(vec![1; 600]),
                    },
                ),
            ],
        ),
        session("ping query", vec![handshake(1), query(2, "_serf_ping", None, true, 300)]),
        session("query without ack", vec![handshake(1), query(2, "plain", None, false, 300)]),
        session("truncated request", vec![handshake(1), header("members", 2)[..5].to_vec()]),
    ];
    v.push(Session {
        mask: true,
        ..session("stats", vec![raw::handshake(1), raw::header("stats", 2)])
    });
    v.push(Session {
        unordered: true,
        ..session(
            "stream and event",
            vec![
                raw::handshake(1),
                stream(2, "user"),
                raw::req(
                    "event",
                    3,
                    &EventRequest {
                        coalesce: false,
                        name: "e1".into(),
                        payload: Some(b"p".to_vec()),
                    },
                ),
                raw::req(
                    "event",
                    4,
                    &EventRequest { coalesce: false, name: "e2".into(), payload: None },
                ),
            ],
        )
    });
    v
}

/// What `sessions()` gets from one agent, normalised.
fn replay(addr: &str) -> Vec<(String, Vec<Value>, bool)> {
    sessions()
        .into_iter()
        .map(|s| {
            let ex = raw::exchange(addr, &s.bytes, Duration::from_millis(300));
            let mut values: Vec<Value> = ex.values.iter().map(|v| norm_value(v, s.mask)).collect();
            if s.unordered {
                values.sort_by_key(|v| format!("{v:?}"));
            }
            (s.name.to_string(), values, ex.closed)
        })
        .collect()
}

/// A query answered through a stream on another connection: the
/// per-connection ID, `respond` twice, and the origin's records.
fn respond_flow(addr: &str) -> Vec<Value> {
    use raw::*;
    let mut a = connect(addr);
    a.write_all(
        &[handshake(1), req("stream", 2, &StreamRequest { kind: "query".into() })].concat(),
    )
    .unwrap();
    let first = read_until_quiet(&mut a, Duration::from_millis(300), Duration::from_secs(5));
    let mut b = connect(addr);
    b.write_all(
        &[
            handshake(1),
            req(
                "query",
                2,
                &QueryRequest {
                    filter_tags: Some(vec![]),
                    name: "rq".into(),
                    payload: Some(b"ping".to_vec()),
                    timeout_ns: 1_500_000_000,
                    ..Default::default()
                },
            ),
        ]
        .concat(),
    )
    .unwrap();
    let rec = read_until_quiet(&mut a, Duration::from_millis(500), Duration::from_secs(5));
    let id = match rec.values.iter().find_map(|v| v.get("ID")) {
        Some(Value::Int(i)) => *i as u64,
        Some(Value::Uint(u)) => *u,
        other => panic!("no query record on the stream: {other:?} {rec:?}"),
    };
    a.write_all(
        &[
            req("respond", 3, &RespondRequest { id, payload: Some(b"pong".to_vec()) }),
            req("respond", 4, &RespondRequest { id, payload: Some(b"again".to_vec()) }),
            req("respond", 5, &RespondRequest { id, payload: Some(vec![b'x'; 1100]) }),
            req("respond", 6, &RespondRequest { id: id + 1, payload: None }),
        ]
        .concat(),
    )
    .unwrap();
    let replies = read_until_quiet(&mut a, Duration::from_millis(300), Duration::from_secs(5));
    let origin = read_until_quiet(&mut b, Duration::from_millis(1200), Duration::from_secs(5));
    // After the deadline the ID is forgotten.
    a.write_all(&req("respond", 7, &RespondRequest { id, payload: None })).unwrap();
    let late = read_until_quiet(&mut a, Duration::from_millis(300), Duration::from_secs(5));
    [first.values, rec.values, replies.values, origin.values, late.values]
        .concat()
        .iter()
        .map(|v| norm_value(v, false))
        .collect()
}

#[test]
fn raw_rpc_sessions_match_go() {
    if !go_available("raw_rpc_sessions_match_go") {
        return;
    }
    let dir = scratch("rpc-raw");
    let (g, mut r) = std::thread::scope(|s| {
        let g = s.spawn(|| GoAgent::start("raw", "127.0.76.1", &[], &dir));
        let r = s.spawn(|| GoAgent::ours("raw", "127.0.77.1", &[], &dir));
        (g.join().unwrap(), r.join().unwrap())
    });
    let (go, ours) = std::thread::scope(|s| {
        let go = s.spawn(|| replay(&g.rpc_addr()));
        (go.join().unwrap(), replay(&r.rpc_addr()))
    });
    for (g, o) in go.iter().zip(&ours) {
        assert_eq!(g, o, "raw session {:?}: Go (left) and ours (right) differ", g.0);
    }
    let (go, ours) = std::thread::scope(|s| {
        let go = s.spawn(|| respond_flow(&g.rpc_addr()));
        (go.join().unwrap(), respond_flow(&r.rpc_addr()))
    });
    assert_eq!(go, ours, "respond flow: Go (left) and ours (right) differ");
    assert!(r.alive(), "our agent died");
    let m = run(GO_SERF, &["members", &format!("-rpc-addr={}", r.rpc_addr())], &[], &dir);
    assert_eq!((m.code, m.out.split_whitespace().next()), (0, Some("raw")), "{m:?}");
}
