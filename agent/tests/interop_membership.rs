//! Membership across a mixed cluster: real Go agents (`/usr/bin/serf`, Serf
//! 0.9.4) and ours (`CARGO_BIN_EXE_serf`) gossiping with each other.
//!
//! Every check reads each agent's own member list over RPC: with the Go CLI
//! (`serf members -format=json`) on every agent, and with our CLI on ours.
//! Waits poll until every view matches, under a bounded deadline; on a
//! timeout the panic message carries each agent's last views and log path.
//!
//! Timing: every agent runs the default LAN profile (probe every 1 s,
//! suspicion multiplier 4), so failure detection in a 6-node cluster takes
//! roughly 5–15 s. Each test uses its own /24 in 127.0.80.0–127.0.89.255
//! (agents on `ip:7946` gossip, `ip:7373` RPC) so the tests run in parallel.
//!
//! 1. 3 Go + 3 ours join each other (ours joins a Go seed, Go joins ours,
//!    through `-join` and through `serf join` from either CLI): everyone
//!    lists all 6 alive.
//! 2. `kill -9` a Go agent and one of ours: every survivor lists both
//!    `failed`.
//! 3. SIGINT one of ours (exits 0) and a Go agent: every survivor lists both
//!    `left`.
//! 4. A Go node and one of ours are killed and restarted under the same name,
//!    once before anyone marks them failed and once after: they rejoin and
//!    are `alive` on every agent again (they refute their own death).
//! 5. The same convergence with `-encrypt` on everyone, with
//!    `-disable-compression` on everyone, and with it on only some; a query
//!    from a Go agent and from ours is acknowledged by all 6.
//! 6. A Go agent and ours with different keys cannot join in either
//!    direction (through either CLI, or `-join` at start, which exits 1),
//!    both stay up and answer RPC, each alone, and both log their failed
//!    joins as decrypt errors (Go also logs each bad inbound stream).
//! 7. Ours with `-protocol=4` and `-protocol=5` joins Go agents, and Go sees
//!    the version it announces.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;

/// How long a cluster may take to agree on a view. Failure detection is a
/// few probe rounds plus a suspicion timeout (~5–15 s), and gossip usually
/// spreads a join in well under a second. But gossip is probabilistic: each
/// node passes a message on only 4 times (6 nodes), so now and then one
/// node hears of a join only from the next push-pull — LAN runs the first
/// one 30–60 s after start (a random stagger plus the 30 s interval), Go
/// and ours alike. The bound covers that with margin for a loaded machine.
const CONVERGE: Duration = Duration::from_secs(90);

/// A wait longer than this is reported as having needed anti-entropy.
const GOSSIP_ONLY: Duration = Duration::from_secs(20);

/// A 16-byte key (AES-128), base64.
const KEY_A: &str = "MDEyMzQ1Njc4OWFiY2RlZg==";
/// Another 16-byte key.
const KEY_B: &str = "ZmVkY2JhOTg3NjU0MzIxMA==";

/// One member list: node name → status.
type View = BTreeMap<String, String>;

/// A test's agents, its scratch directory and its subnet.
struct Cluster {
    dir: PathBuf,
    net: u8,
    agents: Vec<GoAgent>,
}

impl Cluster {
    fn new(tag: &str, net: u8) -> Cluster {
        assert!((80..=89).contains(&net), "this file owns 127.0.80.0–127.0.89.255 only");
        Cluster { dir: scratch(&format!("interop-{tag}")), net, agents: Vec::new() }
    }

    /// `127.0.<net>.<host>`.
    fn ip(&self, host: u8) -> String {
        format!("127.0.{}.{host}", self.net)
    }

    /// Starts `name` (Go when `go`) on host `host` with `extra` flags. A
    /// restarted node logs into a fresh file: `gen` tells them apart.
    fn start(&mut self, go: bool, name: &str, host: u8, extra: &[String], gen: u32) -> usize {
        let ip = self.ip(host);
        let logs = self.dir.join(format!("gen{gen}"));
        std::fs::create_dir_all(&logs).unwrap();
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let bin = if go { GO_SERF } else { OUR_SERF };
        let a = GoAgent::start_bin(bin, name, &ip, &extra, &logs);
        self.agents.push(a);
        self.agents.len() - 1
    }

    /// The index of the running agent called `name`.
    fn idx(&self, name: &str) -> usize {
        self.agents.iter().position(|a| a.name == name).unwrap_or_else(|| panic!("no agent {name}"))
    }

    /// Removes `name` from the cluster (its guard kills it if still up).
    fn take(&mut self, name: &str) -> GoAgent {
        let i = self.idx(name);
        self.agents.remove(i)
    }

    /// `serf join` through `via`'s RPC to `target`'s gossip address, with
    /// the Go CLI or ours.
    fn join(&self, cli: &str, via: &str, target: &str) -> Run {
        let via = &self.agents[self.idx(via)];
        let target = format!("{}:7946", self.agents[self.idx(target)].ip);
        run(cli, &["join", &via.rpc_flag, &target], &[], &self.dir)
    }

    /// Waits until every running agent's view (Go CLI on all, ours on ours)
    /// is exactly `expect`. Returns the time it took.
    fn wait_all(&self, what: &str, expect: &View) -> Duration {
        let observers: Vec<&GoAgent> = self.agents.iter().collect();
        wait_views(what, &observers, expect, &self.dir)
    }

    /// The running agents.
    fn observers(&self) -> Vec<&GoAgent> {
        self.agents.iter().collect()
    }

    /// The cluster's six starting members, all alive.
    fn all_alive(&self) -> View {
        self.agents.iter().map(|a| (a.name.clone(), "alive".to_string())).collect()
    }
}

impl Drop for Cluster {
    /// Stops the agents; keeps the scratch directory (logs, CLI output)
    /// only when the test failed.
    fn drop(&mut self) {
        self.agents.clear();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Which CLIs read `a`'s view: the Go CLI always, ours too on our agents.
fn clis(a: &GoAgent) -> &'static [&'static str] {
    if a.is_go() {
        &[GO_SERF]
    } else {
        &[GO_SERF, OUR_SERF]
    }
}

fn cli_name(cli: &str) -> &'static str {
    if cli == GO_SERF {
        "go-cli"
    } else {
        "our-cli"
    }
}

/// `a`'s member list through `cli`, or why it could not be read.
fn members(cli: &str, a: &GoAgent, dir: &Path) -> Result<View, String> {
    let r = run(cli, &["members", &a.rpc_flag, "-format=json"], &[], dir);
    if r.code != 0 {
        return Err(format!("exit {}: {}{}", r.code, r.out.trim(), r.err.trim()));
    }
    let v: serde_json::Value =
        serde_json::from_str(&r.out).map_err(|e| format!("bad JSON ({e}): {}", r.out))?;
    let list = v["members"].as_array().ok_or_else(|| format!("no members array: {}", r.out))?;
    let mut view = View::new();
    for m in list {
        let name = m["name"].as_str().unwrap_or("?").to_string();
        let status = m["status"].as_str().unwrap_or("?").to_string();
        view.insert(name, status);
    }
    Ok(view)
}

/// Polls every observer's view (through each of its CLIs) until all equal
/// `expect`, or panics after [`CONVERGE`] with every last view and log.
fn wait_views(what: &str, observers: &[&GoAgent], expect: &View, dir: &Path) -> Duration {
    let start = now();
    let deadline = start + CONVERGE;
    let mut last: BTreeMap<String, Result<View, String>> = BTreeMap::new();
    loop {
        let mut all = true;
        for a in observers {
            for cli in clis(a) {
                let key = format!("{} ({}, {}) via {}", a.name, kind(a), a.ip, cli_name(cli));
                let got = members(cli, a, dir);
                if got.as_ref() != Ok(expect) {
                    all = false;
                }
                last.insert(key, got);
                if !all {
                    break;
                }
            }
            if !all {
                break;
            }
        }
        if all {
            let took = start.elapsed();
            eprintln!("[interop] {what}: converged in {:.2} s", took.as_secs_f64());
            if took > GOSSIP_ONLY {
                eprintln!(
                    "[interop] {what}: slow (> {GOSSIP_ONLY:?}): a node probably heard of the \
                     change only through a periodic push-pull"
                );
            }
            return took;
        }
        if now() > deadline {
            // One more full pass so the report shows every agent, not just
            // the first one that disagreed.
            for a in observers {
                for cli in clis(a) {
                    let key = format!("{} ({}, {}) via {}", a.name, kind(a), a.ip, cli_name(cli));
                    last.insert(key, members(cli, a, dir));
                }
            }
            panic!("{what}: no agreement after {CONVERGE:?}\n{}", report(expect, &last, observers));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Asserts every observer keeps the view `expect` for `hold`.
fn assert_holds(what: &str, observers: &[&GoAgent], expect: &View, hold: Duration, dir: &Path) {
    let end = now() + hold;
    let mut rounds = 0;
    while now() < end || rounds == 0 {
        rounds += 1;
        let mut last = BTreeMap::new();
        let mut bad = false;
        for a in observers {
            for cli in clis(a) {
                let got = members(cli, a, dir);
                bad |= got.as_ref() != Ok(expect);
                last.insert(format!("{} ({}) via {}", a.name, kind(a), cli_name(cli)), got);
            }
        }
        assert!(
            !bad,
            "{what}: the view changed after agreeing\n{}",
            report(expect, &last, observers)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn kind(a: &GoAgent) -> &'static str {
    if a.is_go() {
        "go"
    } else {
        "ours"
    }
}

/// The diagnostic text for a failed wait.
fn report(
    expect: &View,
    last: &BTreeMap<String, Result<View, String>>,
    agents: &[&GoAgent],
) -> String {
    let mut s = format!("expected: {expect:?}\n");
    for (k, v) in last {
        s += &format!("  {k}: {v:?}\n");
    }
    s += "logs:\n";
    for a in agents {
        s += &format!("  {} ({}): {}\n", a.name, kind(a), a.log.display());
    }
    s
}

/// The standard mixed cluster on `c`'s subnet: go1 (seed), ours1, go2,
/// ours2, go3, ours3 on hosts .1–.6, every one started with `flags(name)`.
/// Joins: ours1 `-join` go1 (ours → Go seed); go2 `-join` ours1 (Go → ours);
/// ours2 asked by the Go CLI to join go2; go3 asked by our CLI to join
/// ours2; ours3 `-join` go3 and ours1. Waits until all 6 agree.
fn six(c: &mut Cluster, flags: &dyn Fn(&str) -> Vec<String>) -> Duration {
    let t0 = now();
    let with = |name: &str, join: &[&str]| {
        let mut f = flags(name);
        f.extend(join.iter().map(|ip| format!("-join={ip}:7946")));
        f
    };
    let (ip1, ip2, ip5) = (c.ip(1), c.ip(2), c.ip(5));
    c.start(true, "go1", 1, &with("go1", &[]), 0);
    c.start(false, "ours1", 2, &with("ours1", &[&ip1]), 0);
    c.start(true, "go2", 3, &with("go2", &[&ip2]), 0);
    c.start(false, "ours2", 4, &with("ours2", &[]), 0);
    let r = c.join(GO_SERF, "ours2", "go2");
    assert_eq!(r.code, 0, "go CLI: ours2 joins go2: {r:?}");
    assert!(r.out.contains("Successfully joined cluster by contacting 1 nodes"), "{r:?}");
    c.start(true, "go3", 5, &with("go3", &[]), 0);
    let r = c.join(OUR_SERF, "go3", "ours2");
    assert_eq!(r.code, 0, "our CLI: go3 joins ours2: {r:?}");
    assert!(r.out.contains("Successfully joined cluster by contacting 1 nodes"), "{r:?}");
    c.start(false, "ours3", 6, &with("ours3", &[&ip5, &ip2]), 0);
    let started = t0.elapsed();
    let expect = c.all_alive();
    let took = c.wait_all("6 agents alive", &expect);
    eprintln!(
        "[interop] net {}: 6 agents started in {:.2} s, agreed {:.2} s after the last start",
        c.net,
        started.as_secs_f64(),
        took.as_secs_f64()
    );
    took
}

fn no_flags(_: &str) -> Vec<String> {
    Vec::new()
}

/// `view` with `changes` applied.
fn with_status(mut view: View, changes: &[(&str, &str)]) -> View {
    for (n, s) in changes {
        view.insert(n.to_string(), s.to_string());
    }
    view
}

/// Queries from `via` (with `cli`) must be acknowledged by every name in
/// `expect`. A query spreads by gossip like everything else, so one node
/// occasionally misses one (Go-only clusters too, ~1–2% per node and query
/// here): up to 3 queries are sent and every node must ack at least one.
/// Acks are direct datagrams back to `via`, so this exercises gossip of a
/// Serf user message and a direct reply between the two implementations.
fn query_acked_by_all(c: &Cluster, cli: &str, via: &str, expect: &View) {
    let a = &c.agents[c.idx(via)];
    let want: BTreeSet<String> = expect.keys().cloned().collect();
    let mut acked = BTreeSet::new();
    let mut outputs = Vec::new();
    for n in 1..=3 {
        let name = format!("interop-q{n}");
        let r =
            run(cli, &["query", &a.rpc_flag, "-format=json", "-timeout=3s", &name], &[], &c.dir);
        assert_eq!(r.code, 0, "query via {via} ({}): {r:?}", cli_name(cli));
        let v: serde_json::Value =
            serde_json::from_str(&r.out).unwrap_or_else(|e| panic!("query JSON ({e}): {r:?}"));
        let acks = v["Acks"].as_array().unwrap_or_else(|| panic!("no Acks: {r:?}"));
        acked.extend(acks.iter().map(|x| x.as_str().unwrap_or("?").to_string()));
        outputs.push(r.out);
        if acked == want {
            if n > 1 {
                eprintln!(
                    "[interop] query via {via} ({}): all acked after {n} queries",
                    cli_name(cli)
                );
            }
            return;
        }
    }
    panic!(
        "3 queries via {via} ({}) were acked by {acked:?} only\n{}\noutputs: {outputs:?}",
        cli_name(cli),
        report(expect, &BTreeMap::new(), &c.observers())
    );
}

#[test]
fn three_go_and_three_ours_converge() {
    if !go_available("three_go_and_three_ours_converge") {
        return;
    }
    let mut c = Cluster::new("converge", 80);
    six(&mut c, &no_flags);
    // Every agent reports the others with the gossip address they bound.
    for a in &c.agents {
        let r = run(GO_SERF, &["members", &a.rpc_flag], &[], &c.dir);
        for b in &c.agents {
            let row = format!("{}  {}:7946  alive", b.name, b.ip);
            assert!(
                r.out.lines().any(|l| l.split_whitespace().collect::<Vec<_>>().join("  ") == row),
                "{} lacks `{row}`:\n{}\nlog: {}",
                a.name,
                r.out,
                a.log.display()
            );
        }
    }
}

#[test]
fn kill9_is_seen_failed_both_ways() {
    if !go_available("kill9_is_seen_failed_both_ways") {
        return;
    }
    let mut c = Cluster::new("kill9", 81);
    six(&mut c, &no_flags);
    let all = c.all_alive();
    // The Go agent go2 and our ours2 die at once.
    let mut g = c.take("go2");
    let mut o = c.take("ours2");
    g.kill9();
    o.kill9();
    let expect = with_status(all, &[("go2", "failed"), ("ours2", "failed")]);
    c.wait_all("kill -9 go2 + ours2 → failed everywhere", &expect);
}

#[test]
fn sigint_is_seen_left_both_ways() {
    if !go_available("sigint_is_seen_left_both_ways") {
        return;
    }
    let mut c = Cluster::new("sigint", 82);
    six(&mut c, &no_flags);
    let all = c.all_alive();
    let mut o = c.take("ours2");
    let mut g = c.take("go2");
    o.signal(libc::SIGINT);
    g.signal(libc::SIGINT);
    let code = o.wait_exit(Duration::from_secs(30));
    assert_eq!(code, Some(0), "ours2 after SIGINT; log: {}", o.log.display());
    let gcode = g.wait_exit(Duration::from_secs(30));
    assert_eq!(gcode, Some(0), "go2 after SIGINT; log: {}", g.log.display());
    let expect = with_status(all, &[("go2", "left"), ("ours2", "left")]);
    c.wait_all("SIGINT go2 + ours2 → left everywhere", &expect);
    for a in [&o, &g] {
        let log = std::fs::read_to_string(&a.log).unwrap_or_default();
        assert!(log.contains("Gracefully shutting down agent"), "{}:\n{log}", a.name);
    }
}

#[test]
fn restarted_nodes_refute_their_death() {
    if !go_available("restarted_nodes_refute_their_death") {
        return;
    }
    let mut c = Cluster::new("restart", 83);
    six(&mut c, &no_flags);
    let all = c.all_alive();
    // (go2 on .3, ours2 on .4) come back under the same names and
    // addresses, joining a node of the other kind.
    let restart = |c: &mut Cluster, gen: u32| {
        let (seed_for_go, seed_for_ours) = (c.ip(2), c.ip(1));
        c.start(true, "go2", 3, &[format!("-join={seed_for_go}:7946")], gen);
        c.start(false, "ours2", 4, &[format!("-join={seed_for_ours}:7946")], gen);
    };

    // Before anyone declares them failed: kill and restart at once.
    let (mut g, mut o) = (c.take("go2"), c.take("ours2"));
    g.kill9();
    o.kill9();
    drop((g, o));
    restart(&mut c, 1);
    c.wait_all("restarted before failure detection → alive", &all);
    assert_holds("after the quick restart", &c.observers(), &all, Duration::from_secs(4), &c.dir);

    // After every survivor lists them failed.
    let (mut g, mut o) = (c.take("go2"), c.take("ours2"));
    g.kill9();
    o.kill9();
    drop((g, o));
    let failed = with_status(all.clone(), &[("go2", "failed"), ("ours2", "failed")]);
    c.wait_all("kill -9 go2 + ours2 → failed", &failed);
    restart(&mut c, 2);
    c.wait_all("restarted after being failed → alive", &all);
    assert_holds("after the late restart", &c.observers(), &all, Duration::from_secs(4), &c.dir);
    // The join's push-pull told each that the cluster holds it dead: it
    // raised its incarnation over that claim.
    for name in ["go2", "ours2"] {
        let a = &c.agents[c.idx(name)];
        let log = std::fs::read_to_string(&a.log).unwrap_or_default();
        assert!(
            log.contains(&format!("[WARN] memberlist: Refuting a suspect message (from: {name})")),
            "{name} ({}) did not refute its death:\n{log}",
            kind(a)
        );
    }
}

#[test]
fn encrypted_mixed_cluster_converges() {
    if !go_available("encrypted_mixed_cluster_converges") {
        return;
    }
    let mut c = Cluster::new("encrypt", 84);
    six(&mut c, &|_| vec![format!("-encrypt={KEY_A}")]);
    for a in &c.agents {
        let log = std::fs::read_to_string(&a.log).unwrap_or_default();
        assert!(log.contains("Encrypted: true"), "{} ({}):\n{log}", a.name, kind(a));
    }
    let all = c.all_alive();
    query_acked_by_all(&c, GO_SERF, "go1", &all);
    query_acked_by_all(&c, OUR_SERF, "ours3", &all);
}

#[test]
fn uncompressed_mixed_cluster_converges() {
    if !go_available("uncompressed_mixed_cluster_converges") {
        return;
    }
    let mut c = Cluster::new("nocompress", 85);
    six(&mut c, &|_| vec!["-disable-compression".to_string()]);
    for a in &c.agents {
        let log = std::fs::read_to_string(&a.log).unwrap_or_default();
        assert!(log.contains("Message Compression Enabled: false"), "{}:\n{log}", a.name);
    }
    let all = c.all_alive();
    query_acked_by_all(&c, GO_SERF, "go2", &all);
    query_acked_by_all(&c, OUR_SERF, "ours1", &all);
}

#[test]
fn partly_compressed_mixed_cluster_converges() {
    if !go_available("partly_compressed_mixed_cluster_converges") {
        return;
    }
    let mut c = Cluster::new("somecompress", 86);
    // One Go agent and one of ours send uncompressed; the rest compress.
    let off = |n: &str| {
        if n == "go1" || n == "ours2" {
            vec!["-disable-compression".to_string()]
        } else {
            Vec::new()
        }
    };
    six(&mut c, &off);
    let all = c.all_alive();
    query_acked_by_all(&c, GO_SERF, "go1", &all);
    query_acked_by_all(&c, GO_SERF, "go3", &all);
    query_acked_by_all(&c, OUR_SERF, "ours2", &all);
    query_acked_by_all(&c, OUR_SERF, "ours3", &all);
}

#[test]
fn key_mismatch_fails_both_ways_without_crashing() {
    if !go_available("key_mismatch_fails_both_ways_without_crashing") {
        return;
    }
    let mut c = Cluster::new("keymismatch", 87);
    c.start(true, "go1", 1, &[format!("-encrypt={KEY_A}")], 0);
    c.start(false, "ours1", 2, &[format!("-encrypt={KEY_B}")], 0);
    // Go → ours and ours → Go, each with both CLIs.
    for (via, target) in [("go1", "ours1"), ("ours1", "go1")] {
        for cli in [GO_SERF, OUR_SERF] {
            let r = c.join(cli, via, target);
            assert_ne!(
                r.code,
                0,
                "{via} joined {target} with the wrong key ({}): {r:?}",
                cli_name(cli)
            );
            let text = format!("{}{}", r.out, r.err);
            assert!(
                text.contains("Error joining the cluster")
                    && text.contains("No installed keys could decrypt the message"),
                "{}: {r:?}",
                cli_name(cli)
            );
        }
    }
    // An agent started with `-join` of the other key gives up and exits 1
    // rather than joining (Go and ours alike).
    for (go, name, host, key, seed) in [(true, "go9", 9, KEY_A, 2), (false, "ours9", 10, KEY_B, 1)]
    {
        let ip = c.ip(host);
        let log = c.dir.join(format!("{name}.log"));
        let r = run(
            if go { GO_SERF } else { OUR_SERF },
            &[
                "agent",
                &format!("-node={name}"),
                &format!("-bind={ip}:7946"),
                &format!("-rpc-addr={ip}:7373"),
                &format!("-encrypt={key}"),
                &format!("-join={}:7946", c.ip(seed)),
            ],
            &[],
            &c.dir,
        );
        std::fs::write(&log, format!("{}{}", r.out, r.err)).unwrap();
        assert_eq!(r.code, 1, "{name} with -join under the wrong key: {r:?}");
    }
    // Both are alive, each alone, a while after the attempts.
    std::thread::sleep(Duration::from_secs(2));
    for name in ["go1", "ours1"] {
        let i = c.idx(name);
        assert!(c.agents[i].alive(), "{name} died; log: {}", c.agents[i].log.display());
    }
    let obs = c.observers();
    wait_views("go1 alone", &obs[..1], &View::from([("go1".into(), "alive".into())]), &c.dir);
    wait_views("ours1 alone", &obs[1..], &View::from([("ours1".into(), "alive".into())]), &c.dir);
    // Each logs its own failed joins as decrypt errors (the peer answered
    // with an error frame sealed under the other key). Go also logs every
    // inbound stream it could not open; ours only counts those (no log line
    // per bad input), so that line is checked on Go only.
    for a in &c.agents {
        let log = std::fs::read_to_string(&a.log).unwrap_or_default();
        let peer = if a.is_go() { c.ip(2) } else { c.ip(1) };
        let joined = format!("Failed to join {peer}: No installed keys could decrypt the message");
        assert!(log.contains(&joined), "{} ({}) lacks `{joined}`:\n{log}", a.name, kind(a));
        if a.is_go() {
            let inbound = "[ERR] memberlist: failed to receive: No installed keys could decrypt";
            assert!(log.contains(inbound), "{} lacks `{inbound}`:\n{log}", a.name);
        }
        assert!(!log.contains("panic"), "{} ({}) panicked:\n{log}", a.name, kind(a));
    }
}

#[test]
fn our_protocol_4_and_5_join_go() {
    if !go_available("our_protocol_4_and_5_join_go") {
        return;
    }
    let mut c = Cluster::new("protocol", 88);
    let seed = format!("-join={}:7946", c.ip(1));
    c.start(true, "go1", 1, &[], 0);
    c.start(false, "ours-p4", 2, &["-protocol=4".to_string(), seed.clone()], 0);
    c.start(false, "ours-p5", 3, &["-protocol=5".to_string(), seed.clone()], 0);
    c.start(true, "go-p4", 4, &["-protocol=4".to_string(), format!("-join={}:7946", c.ip(2))], 0);
    let all = c.all_alive();
    c.wait_all("protocol 4/5 mix", &all);
    // The version each announces, as the Go agent go1 reports it.
    let r = run(GO_SERF, &["members", &c.agents[0].rpc_flag, "-format=json"], &[], &c.dir);
    let v: serde_json::Value = serde_json::from_str(&r.out).unwrap();
    let versions: BTreeMap<String, u64> = v["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (m["name"].as_str().unwrap().to_string(), m["protocol"]["version"].as_u64().unwrap())
        })
        .collect();
    let want = BTreeMap::from([
        ("go1".to_string(), 5),
        ("go-p4".to_string(), 4),
        ("ours-p4".to_string(), 4),
        ("ours-p5".to_string(), 5),
    ]);
    assert_eq!(versions, want, "{}", r.out);
}
