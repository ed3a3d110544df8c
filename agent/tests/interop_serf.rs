//! Mixed clusters of Go agents (`/usr/bin/serf`) and ours, checked at the
//! Serf layer: event handlers (environment, stdin, filters), queries and
//! their responses, tags, keyring rotation, snapshots and rejoin, size
//! limits, misbehaving handlers and SIGHUP reloads.
//!
//! Every agent of a test runs the same handler scripts; what a Go agent's
//! handler records and what ours records must be the same apart from what
//! is about the agent itself (its name and tags), which is checked against
//! the agent's own configuration instead.
//!
//! Go behaviours these tests pin down (and ours follows):
//! * handlers run one at a time: a hung handler delays later handlers, but
//!   RPC, acks and gossip go on;
//! * `serf info` keeps listing the startup handlers after a SIGHUP reload,
//!   although the reloaded ones run;
//! * a graceful leave writes `leave` to the snapshot when it starts, so the
//!   agent's own departure is never written as `not-alive`;
//! * Go's snapshot writer flushes only when it appends a line 500 ms after
//!   its last flush (or on shutdown), so Go's file is compared after its
//!   graceful leave.
//!
//! Addresses: 127.0.90.x – 127.0.96.x, one /24 per test, so the tests run in
//! parallel. Every wait is bounded; on failure the agents' log paths and the
//! last observed state are printed.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::norm::*;
use common::*;

// ---------------------------------------------------------------------------
// Helpers

#[allow(clippy::disallowed_methods)] // Tests wait on real processes.
fn now() -> Instant {
    Instant::now()
}

fn sleep_ms(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

/// One agent to start: Go or ours, name, IP, extra flags.
struct Spec {
    go: bool,
    name: &'static str,
    ip: &'static str,
    extra: Vec<String>,
}

impl Spec {
    fn new(go: bool, name: &'static str, ip: &'static str, extra: &[String]) -> Spec {
        Spec { go, name, ip, extra: extra.to_vec() }
    }
    fn bin(&self) -> &'static str {
        if self.go {
            GO_SERF
        } else {
            OUR_SERF
        }
    }
}

/// Starts every agent at once and returns them in `specs` order.
fn start_all(specs: &[Spec], dir: &Path) -> Vec<GoAgent> {
    std::thread::scope(|s| {
        let hs: Vec<_> = specs
            .iter()
            .map(|sp| {
                s.spawn(move || {
                    let extra: Vec<&str> = sp.extra.iter().map(String::as_str).collect();
                    GoAgent::start_bin(sp.bin(), sp.name, sp.ip, &extra, dir)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// Log paths of `agents`, for failure messages.
fn logs(agents: &[&GoAgent]) -> String {
    agents.iter().map(|a| format!("\n  {} log: {}", a.name, a.log.display())).collect()
}

/// Polls `f` every 200 ms until it returns `Ok` or `timeout` passes; then
/// panics with the last error and the log paths.
fn wait_for<T>(
    what: &str,
    timeout: Duration,
    agents: &[&GoAgent],
    mut f: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = now() + timeout;
    let mut last;
    loop {
        match f() {
            Ok(v) => return v,
            Err(e) => last = e,
        }
        if now() >= deadline {
            panic!(
                "timed out ({timeout:?}) waiting for {what}; last state: {last}{}",
                logs(agents)
            );
        }
        sleep_ms(200);
    }
}

/// `rpc-addr` flag for an agent.
fn rpc(a: &GoAgent) -> String {
    a.rpc_flag.clone()
}

/// Members as seen by `a` (via the Go CLI, JSON): name → (addr, status, tags).
type MemberView = BTreeMap<String, (String, String, BTreeMap<String, String>)>;

fn members_json(bin: &str, a: &GoAgent, dir: &Path) -> Result<MemberView, String> {
    let r = run(bin, &["members", &rpc(a), "-format=json"], &[], dir);
    if r.code != 0 {
        return Err(format!("members on {} failed: {r:?}", a.name));
    }
    let v: serde_json::Value =
        serde_json::from_str(&r.out).map_err(|e| format!("bad JSON {e}: {}", r.out))?;
    let mut out = MemberView::new();
    for m in v["members"].as_array().ok_or("no members array")? {
        let tags = m["tags"]
            .as_object()
            .map(|t| {
                t.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string())).collect()
            })
            .unwrap_or_default();
        out.insert(
            m["name"].as_str().unwrap_or("").to_string(),
            (
                m["addr"].as_str().unwrap_or("").to_string(),
                m["status"].as_str().unwrap_or("").to_string(),
                tags,
            ),
        );
    }
    Ok(out)
}

/// Names of members `a` sees alive.
fn alive_names(a: &GoAgent, dir: &Path) -> Result<BTreeSet<String>, String> {
    Ok(members_json(GO_SERF, a, dir)?
        .into_iter()
        .filter(|(_, (_, st, _))| st == "alive")
        .map(|(n, _)| n)
        .collect())
}

/// Waits until every agent in `agents` sees exactly `names` alive.
fn wait_converged(agents: &[&GoAgent], names: &[&str], dir: &Path, timeout: Duration) {
    let want: BTreeSet<String> = names.iter().map(|s| s.to_string()).collect();
    for a in agents {
        wait_for(&format!("{} to see {want:?} alive", a.name), timeout, agents, || {
            let got = alive_names(a, dir)?;
            if got == want {
                Ok(())
            } else {
                Err(format!("{got:?}"))
            }
        });
    }
}

/// Starts `specs`, joins them all through the first and waits for every
/// agent to see every other alive.
fn cluster(specs: &[Spec], dir: &Path) -> Vec<GoAgent> {
    let agents = start_all(specs, dir);
    let mut args = vec!["join".to_string(), rpc(&agents[0])];
    args.extend(agents[1..].iter().map(|a| a.ip.clone()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = run(GO_SERF, &args, &[], dir);
    let refs: Vec<&GoAgent> = agents.iter().collect();
    assert_eq!(r.code, 0, "join failed: {r:?}{}", logs(&refs));
    let names: Vec<&str> = specs.iter().map(|s| s.name).collect();
    wait_converged(&refs, &names, dir, Duration::from_secs(30));
    agents
}

fn write_exec(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// A handler that appends one record per run to the file given as its
/// argument: `BEGIN`, its `SERF_*` variables sorted, `STDIN`, its stdin,
/// `END`. The record is written to a temporary file first and appended
/// whole; readers only take complete records.
fn recorder(dir: &Path) -> PathBuf {
    let p = dir.join("record.sh");
    write_exec(
        &p,
        "#!/bin/sh\nout=\"$1\"\ntmp=\"$out.tmp.$$\"\n{\n  echo BEGIN\n  env | grep '^SERF_' | \
         LC_ALL=C sort\n  echo STDIN\n  cat\n  echo END\n} > \"$tmp\"\ncat \"$tmp\" >> \
         \"$out\"\nrm -f \"$tmp\"\n",
    );
    p
}

/// One handler run, as recorded by [`recorder`].
#[derive(Clone, Debug, PartialEq, Eq)]
struct Rec {
    env: BTreeMap<String, String>,
    stdin: String,
}

impl Rec {
    fn event(&self) -> &str {
        self.env.get("SERF_EVENT").map_or("", String::as_str)
    }
    fn var(&self, k: &str) -> &str {
        self.env.get(k).map_or("", String::as_str)
    }
    /// The environment without what describes the agent itself.
    fn env_not_self(&self) -> BTreeMap<String, String> {
        self.env
            .iter()
            .filter(|(k, _)| {
                !k.starts_with("SERF_TAG_") && *k != "SERF_SELF_NAME" && *k != "SERF_SELF_ROLE"
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
    /// The environment that describes the agent itself.
    fn env_self(&self) -> BTreeMap<String, String> {
        let not = self.env_not_self();
        self.env
            .iter()
            .filter(|(k, _)| !not.contains_key(*k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

/// Complete records in `path` (none if it does not exist yet).
fn records(path: &Path) -> Vec<Rec> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut out = Vec::new();
    let mut rest = text.as_str();
    while let Some(start) = rest.find("BEGIN\n") {
        let body = &rest[start + 6..];
        let Some(end) = body.find("\nEND\n").map(|e| e + 1).or_else(|| {
            // A record whose stdin was empty: "STDIN\nEND\n".
            body.find("STDIN\nEND\n").map(|e| e + 6)
        }) else {
            break;
        };
        let rec = &body[..end];
        let (env, stdin) = rec.split_once("STDIN\n").unwrap_or((rec, ""));
        let env = env
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        out.push(Rec { env, stdin: stdin.to_string() });
        rest = &body[end + 4..];
    }
    out
}

/// `SERF_*` variables an agent with these tags must set about itself.
fn self_env(name: &str, tags: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    m.insert("SERF_SELF_NAME".to_string(), name.to_string());
    let role = tags.iter().find(|(k, _)| *k == "role").map_or("", |(_, v)| v);
    m.insert("SERF_SELF_ROLE".to_string(), role.to_string());
    for (k, v) in tags {
        let key: String = k
            .to_uppercase()
            .chars()
            .map(|c| if c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_' { c } else { '_' })
            .collect();
        m.insert(format!("SERF_TAG_{key}"), v.to_string());
    }
    m
}

/// A member-event stdin line with its tags cell sorted (Go writes the tags
/// in map order).
fn norm_member_line(l: &str) -> String {
    let mut f: Vec<String> = l.split('\t').map(str::to_string).collect();
    if f.len() == 4 {
        let mut t: Vec<&str> = f[3].split(',').filter(|s| !s.is_empty()).collect();
        t.sort_unstable();
        f[3] = t.join(",");
    }
    f.join("\t")
}

/// The stdin line a member with these tags must produce.
fn member_line(name: &str, ip: &str, tags: &[(&str, &str)]) -> String {
    let role = tags.iter().find(|(k, _)| *k == "role").map_or("", |(_, v)| v);
    let esc = |s: &str| s.replace('\t', "\\t").replace('\n', "\\n");
    let mut t: Vec<String> = tags.iter().map(|(k, v)| esc(&format!("{k}={v}"))).collect();
    t.sort();
    format!("{name}\t{ip}\t{}\t{}", esc(role), t.join(","))
}

/// Tag flags for `tags`.
fn tag_flags(tags: &[(&str, &str)]) -> Vec<String> {
    tags.iter().flat_map(|(k, v)| ["-tag".to_string(), format!("{k}={v}")]).collect()
}

/// The lines of `a`'s log that contain `needle`, without the timestamp,
/// sorted.
fn log_lines(a: &GoAgent, needle: &str) -> Vec<String> {
    let text = std::fs::read_to_string(&a.log).unwrap_or_default();
    let mut v: Vec<String> = text
        .lines()
        .filter(|l| l.contains(needle))
        .map(|l| l.trim_start().splitn(3, ' ').nth(2).unwrap_or("").to_string())
        .collect();
    v.sort();
    v
}

/// Kills a process we started indirectly (a handler's child) by PID on drop.
struct PidGuard(Vec<PathBuf>);

impl PidGuard {
    fn kill_all(&self) {
        for p in &self.0 {
            if let Some(pid) =
                std::fs::read_to_string(p).ok().and_then(|s| s.trim().parse::<i32>().ok())
            {
                // SAFETY: the PID was written by a handler script we made;
                // it exec'd into `sleep` and nothing else reuses it while
                // the agent that started it still runs.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

impl Drop for PidGuard {
    fn drop(&mut self) {
        self.kill_all();
    }
}

// ---------------------------------------------------------------------------
// 1. Event handlers

/// Go or ours, name, IP, tags.
type Node = (bool, &'static str, &'static str, Vec<(&'static str, &'static str)>);

#[test]
fn event_handlers_environment_stdin_and_filters() {
    if !go_available("event_handlers_environment_stdin_and_filters") {
        return;
    }
    let dir = scratch("interop-handlers");
    let rec = recorder(&dir);
    // Tags with a tab: the stdin line escapes it as `\t`, the environment
    // carries it as is.
    let nodes: [Node; 4] = [
        (true, "g1", "127.0.90.1", vec![("role", "web"), ("dc", "east"), ("my-tag.x", "1")]),
        (false, "o1", "127.0.90.2", vec![("role", "web"), ("dc", "east"), ("my-tag.x", "2")]),
        (true, "g2", "127.0.90.3", vec![("role", "db"), ("dc", "west"), ("note", "a\tb")]),
        (false, "o2", "127.0.90.4", vec![("role", "db"), ("dc", "west"), ("note", "a\tb")]),
    ];
    let file = |kind: &str, name: &str| dir.join(format!("{kind}-{name}.rec"));
    let specs: Vec<Spec> = nodes
        .iter()
        .map(|(go, name, ip, tags)| {
            let mut extra = tag_flags(tags);
            let h = |filter: &str, kind: &str| {
                let f = if filter.is_empty() { String::new() } else { format!("{filter}=") };
                format!("-event-handler={f}{} {}", rec.display(), file(kind, name).display())
            };
            extra.push(h("", "all"));
            extra.push(h("user:deploy", "user"));
            extra.push(h("member-join,member-leave", "member"));
            extra.push(h("query:x", "query"));
            Spec::new(*go, name, ip, &extra)
        })
        .collect();
    let agents = cluster(&specs, &dir);
    let refs: Vec<&GoAgent> = agents.iter().collect();
    let t = Duration::from_secs(30);

    // member-join: every agent sees one line per member (itself included),
    // and the lines are the same on Go and ours.
    let want_lines: BTreeSet<String> =
        nodes.iter().map(|(_, n, ip, tags)| member_line(n, ip, tags)).collect();
    for (_, name, _, _) in &nodes {
        wait_for(&format!("member-join records on {name}"), t, &refs, || {
            let got: BTreeSet<String> = records(&file("member", name))
                .iter()
                .filter(|r| r.event() == "member-join")
                .flat_map(|r| r.stdin.lines().map(norm_member_line).collect::<Vec<_>>())
                .collect();
            if got == want_lines {
                Ok(())
            } else {
                Err(format!("{got:#?}"))
            }
        });
    }

    for (_, name, _, tags) in &nodes {
        for r in records(&file("member", name)) {
            assert_eq!(r.env_self(), self_env(name, tags), "member-join env on {name}");
            assert_eq!(r.env_not_self().keys().collect::<Vec<_>>(), ["SERF_EVENT"], "{r:?}");
        }
    }
    assert!(want_lines.iter().any(|l| l.contains(",note=a\\tb,")), "{want_lines:?}");

    // The environment of a record: what is about the agent itself must
    // match its configuration; the rest must be the same on every agent.
    let check_same = |kind: &str, pick: &dyn Fn(&Rec) -> bool, what: &str| -> Rec {
        let mut seen: Vec<(String, Rec)> = Vec::new();
        for (_, name, _, tags) in &nodes {
            let r = wait_for(&format!("{what} on {name}"), t, &refs, || {
                let rs = records(&file(kind, name));
                let hits: Vec<&Rec> = rs.iter().filter(|r| pick(r)).collect();
                match hits.len() {
                    1 => Ok(hits[0].clone()),
                    _ => Err(format!("{} matching records: {rs:#?}", hits.len())),
                }
            });
            assert_eq!(r.env_self(), self_env(name, tags), "{what}: self env on {name}");
            seen.push((name.to_string(), r));
        }
        let (first_name, first) = &seen[0];
        for (name, r) in &seen[1..] {
            assert_eq!(
                (r.env_not_self(), &r.stdin),
                (first.env_not_self(), &first.stdin),
                "{what}: records differ between {first_name} (left) and {name} (right)"
            );
        }
        first.clone()
    };

    // A user event sent through a Go agent (Go CLI), then one through ours
    // (our CLI), and an event of another name.
    let r = run(GO_SERF, &["event", &rpc(&agents[0]), "deploy", "payload from go"], &[], &dir);
    assert_eq!(
        (r.code, r.out.as_str()),
        (0, "Event 'deploy' dispatched! Coalescing enabled: true\n")
    );
    let go_ev = check_same("user", &|r| r.stdin == "payload from go\n", "deploy from Go");
    assert_eq!(go_ev.var("SERF_EVENT"), "user");
    assert_eq!(go_ev.var("SERF_USER_EVENT"), "deploy");
    let r = run(OUR_SERF, &["event", &rpc(&agents[3]), "other", "x"], &[], &dir);
    assert_eq!(r.code, 0, "{r:?}");
    let r = run(OUR_SERF, &["event", &rpc(&agents[1]), "deploy", "payload from ours"], &[], &dir);
    assert_eq!(
        (r.code, r.out.as_str()),
        (0, "Event 'deploy' dispatched! Coalescing enabled: true\n")
    );
    let our_ev = check_same("user", &|r| r.stdin == "payload from ours\n", "deploy from ours");
    assert_eq!(our_ev.var("SERF_USER_EVENT"), "deploy");
    let (l1, l2): (u64, u64) = (
        go_ev.var("SERF_USER_LTIME").parse().unwrap(),
        our_ev.var("SERF_USER_LTIME").parse().unwrap(),
    );
    assert!(l2 > l1, "LTimes {l1} then {l2}");
    assert_eq!(
        go_ev.env_not_self().keys().collect::<Vec<_>>(),
        ["SERF_EVENT", "SERF_USER_EVENT", "SERF_USER_LTIME"]
    );
    // The catch-all handler saw `other` everywhere, with the same record.
    let other = check_same("all", &|r| r.var("SERF_USER_EVENT") == "other", "event other");
    assert_eq!(other.stdin, "x\n");
    // An empty payload gives an empty stdin on both.
    let r = run(GO_SERF, &["event", &rpc(&agents[2]), "-coalesce=false", "deploy"], &[], &dir);
    assert_eq!(r.code, 0, "{r:?}");
    let empty = check_same(
        "user",
        &|r| r.stdin.is_empty() && r.var("SERF_USER_EVENT") == "deploy",
        "deploy without payload",
    );
    assert_eq!(empty.stdin, "");

    // Queries: `x` reaches the `query:x` handler, `y` does not.
    let r = run(GO_SERF, &["query", &rpc(&agents[2]), "-timeout=2s", "x", "qp"], &[], &dir);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.out.ends_with("Total Acks: 4\nTotal Responses: 0\n"), "{r:?}");
    let qx = check_same("query", &|r| r.var("SERF_QUERY_NAME") == "x", "query x");
    assert_eq!(qx.stdin, "qp\n");
    assert_eq!(
        qx.env_not_self().keys().collect::<Vec<_>>(),
        ["SERF_EVENT", "SERF_QUERY_LTIME", "SERF_QUERY_NAME"]
    );
    assert_eq!(qx.var("SERF_EVENT"), "query");
    let r = run(OUR_SERF, &["query", &rpc(&agents[3]), "-timeout=2s", "y", "yp"], &[], &dir);
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.out.ends_with("Total Acks: 4\nTotal Responses: 0\n"), "{r:?}");
    check_same("all", &|r| r.var("SERF_QUERY_NAME") == "y", "query y");

    // member-leave: ours leaves, then a Go agent leaves.
    for (leaver, cli, watchers) in
        [(3usize, OUR_SERF, vec![0usize, 1, 2]), (2, GO_SERF, vec![0, 1])]
    {
        let r = run(cli, &["leave", &rpc(&agents[leaver])], &[], &dir);
        assert_eq!(r.code, 0, "{r:?}");
        let (_, lname, lip, ltags) = &nodes[leaver];
        let want = member_line(lname, lip, ltags);
        for w in watchers {
            let (_, wname, _, wtags) = &nodes[w];
            let rec = wait_for(&format!("member-leave of {lname} on {wname}"), t, &refs, || {
                let rs = records(&file("member", wname));
                rs.into_iter()
                    .find(|r| {
                        r.event() == "member-leave"
                            && r.stdin.lines().any(|l| norm_member_line(l) == want)
                    })
                    .ok_or_else(|| "none yet".to_string())
            });
            assert_eq!(rec.env_self(), self_env(wname, wtags));
            assert_eq!(
                rec.env_not_self().keys().collect::<Vec<_>>(),
                ["SERF_EVENT"],
                "member-leave env on {wname}"
            );
        }
    }

    // Filters: every record in a filtered file is of the filtered kind, and
    // the catch-all file has everything.
    for (_, name, _, _) in &nodes {
        for r in records(&file("user", name)) {
            assert_eq!((r.event(), r.var("SERF_USER_EVENT")), ("user", "deploy"), "on {name}");
        }
        assert_eq!(records(&file("user", name)).len(), 3, "user:deploy records on {name}");
        for r in records(&file("member", name)) {
            assert!(matches!(r.event(), "member-join" | "member-leave"), "{r:?} on {name}");
        }
        for r in records(&file("query", name)) {
            assert_eq!((r.event(), r.var("SERF_QUERY_NAME")), ("query", "x"), "on {name}");
        }
        let all = records(&file("all", name));
        let kinds: BTreeSet<&str> = all.iter().map(Rec::event).collect();
        for k in ["member-join", "user", "query"] {
            assert!(kinds.contains(k), "catch-all on {name} lacks {k}: {kinds:?}");
        }
    }
}

// ---------------------------------------------------------------------------
// 2. Queries

/// The text `serf query` prints for these acks and responses (lines
/// between the header and the totals sorted, as `norm_query` does).
fn query_text(name: &str, acks: &[&str], resps: &[(&str, String)], no_ack: bool) -> String {
    let mut mid: Vec<String> = Vec::new();
    if !no_ack {
        mid.extend(acks.iter().map(|a| format!("Ack from '{a}'")));
    }
    mid.extend(resps.iter().map(|(n, r)| format!("Response from '{n}': {r}")));
    mid.sort();
    let mut out = vec![format!("Query '{name}' dispatched")];
    out.extend(mid);
    if !no_ack {
        out.push(format!("Total Acks: {}", acks.len()));
    }
    out.push(format!("Total Responses: {}", resps.len()));
    out.join("\n")
}

#[test]
fn queries_from_go_and_ours_collect_every_agent() {
    if !go_available("queries_from_go_and_ours_collect_every_agent") {
        return;
    }
    let dir = scratch("interop-query");
    let respond = dir.join("respond.sh");
    write_exec(
        &respond,
        "#!/bin/sh\nread -r line\ncase \"$SERF_QUERY_NAME\" in\n  big) head -c 2000 /dev/zero | tr \
         '\\000' z; exit 0 ;;\n  fail) echo \"failing-$SERF_SELF_NAME\"; exit 3 ;;\nesac\necho \
         \"from-$SERF_SELF_NAME $SERF_QUERY_NAME [$line] $SERF_SELF_ROLE\"\n",
    );
    let h = format!("-event-handler=query={}", respond.display());
    let nodes = [
        (true, "g1", "127.0.91.1", "web"),
        (false, "o1", "127.0.91.2", "web"),
        (true, "g2", "127.0.91.3", "db"),
        (false, "o2", "127.0.91.4", "db"),
    ];
    let specs: Vec<Spec> = nodes
        .iter()
        .map(|(go, n, ip, role)| {
            Spec::new(*go, n, ip, &["-tag".into(), format!("role={role}"), h.clone()])
        })
        .collect();
    let agents = cluster(&specs, &dir);
    let refs: Vec<&GoAgent> = agents.iter().collect();
    let role = |n: &str| nodes.iter().find(|x| x.1 == n).unwrap().3;

    // (flags, name, payload, the agents that ack and respond). `big`
    // produces 2000 bytes (over the 1024-byte response limit) and `fail`
    // exits 3: the handlers run, but no agent responds.
    let cases: Vec<(Vec<&str>, &str, &str, Vec<&str>)> = vec![
        (vec![], "q1", "pay", vec!["g1", "o1", "g2", "o2"]),
        (vec!["-tag", "role=web"], "big", "", vec!["g1", "o1"]),
        (vec!["-node=g1", "-node=o2"], "fail", "f", vec!["g1", "o2"]),
        (vec!["-node=g2", "-node=o1"], "q2", "p2", vec!["o1", "g2"]),
        (vec!["-tag", "role=web"], "q3", "p3", vec!["g1", "o1"]),
        // Tag filters are unanchored regexps on the responder.
        (vec!["-tag", "role=d"], "q4", "", vec!["g2", "o2"]),
        (vec!["-no-ack", "-node=o2"], "q5", "p5", vec!["o2"]),
    ];
    // Go CLI → Go agent, our CLI → our agent and the crossed pairs, all at
    // once. A Go agent cannot run two of its own queries at once, so each
    // agent issues one.
    let rounds = [[(GO_SERF, 0usize), (OUR_SERF, 1usize), (GO_SERF, 3), (OUR_SERF, 2)]];
    for (flags, qname, payload, responders) in &cases {
        for round in &rounds {
            let runs: Vec<(String, Run)> = std::thread::scope(|s| {
                let hs: Vec<_> = round
                    .iter()
                    .map(|(bin, idx)| {
                        let dir = &dir;
                        let a = &agents[*idx];
                        s.spawn(move || {
                            let mut args = vec!["query".to_string(), rpc(a), "-timeout=3s".into()];
                            args.extend(flags.iter().map(|f| f.to_string()));
                            args.push(qname.to_string());
                            if !payload.is_empty() {
                                args.push(payload.to_string());
                            }
                            let args: Vec<&str> = args.iter().map(String::as_str).collect();
                            let who = if *bin == GO_SERF { "Go CLI" } else { "our CLI" };
                            (format!("{who} -> {}", a.name), run(bin, &args, &[], dir))
                        })
                    })
                    .collect();
                hs.into_iter().map(|h| h.join().unwrap()).collect()
            });
            let no_ack = flags.contains(&"-no-ack");
            let answers = !matches!(*qname, "big" | "fail");
            let resps: Vec<(&str, String)> = responders
                .iter()
                .filter(|_| answers)
                .map(|n| (*n, format!("from-{n} {qname} [{payload}] {}", role(n))))
                .collect();
            let want = query_text(qname, responders, &resps, no_ack);
            for (who, r) in runs {
                assert_eq!(
                    (r.code, norm_query(&r.out), r.err.as_str()),
                    (0, want.clone(), ""),
                    "query {qname} {flags:?} via {who}{}",
                    logs(&refs)
                );
            }
        }
    }

    // The handler failures are logged alike (timestamps cut): `big` ran on
    // g1 and o1 (role=web), `fail` on g1 and o2: four times each (four
    // queries at once).
    let logged = log_lines;
    let resp_fail = "Failed to respond to query";
    let exit_fail = "Error invoking script";
    assert_eq!(logged(&agents[0], resp_fail).len(), 4, "{}", logs(&refs));
    assert_eq!(logged(&agents[0], resp_fail), logged(&agents[1], resp_fail));
    assert_eq!(logged(&agents[0], exit_fail).len(), 4, "{}", logs(&refs));
    assert_eq!(logged(&agents[0], exit_fail), logged(&agents[3], exit_fail));

    // JSON form through both CLIs against ours: the same document.
    let q = |bin: &str, a: &GoAgent| {
        run(
            bin,
            &["query", &rpc(a), "-timeout=2s", "-format=json", "-tag", "role=web", "qj", "j"],
            &[],
            &dir,
        )
    };
    let go = q(GO_SERF, &agents[3]);
    let ours = q(OUR_SERF, &agents[1]);
    assert_eq!((go.code, ours.code), (0, 0), "{go:?} {ours:?}");
    let v: serde_json::Value = serde_json::from_str(&ours.out).unwrap();
    assert_eq!(norm_json(&go.out), norm_json(&ours.out));
    let mut acks: Vec<&str> =
        v["Acks"].as_array().unwrap().iter().map(|x| x.as_str().unwrap()).collect();
    acks.sort_unstable();
    assert_eq!(acks, ["g1", "o1"]);
    assert_eq!(v["Responses"].as_object().unwrap().len(), 2, "{v}");
}

// ---------------------------------------------------------------------------
// 3. Tags

#[test]
fn tags_set_and_delete_cross_implementations() {
    if !go_available("tags_set_and_delete_cross_implementations") {
        return;
    }
    let dir = scratch("interop-tags");
    let specs = [
        Spec::new(true, "g1", "127.0.92.1", &["-tag".into(), "role=web".into()]),
        Spec::new(false, "o1", "127.0.92.2", &["-tag".into(), "role=db".into()]),
    ];
    let agents = cluster(&specs, &dir);
    let refs: Vec<&GoAgent> = agents.iter().collect();
    let t = Duration::from_secs(20);
    let tags_of =
        |viewer: &GoAgent, bin: &str, node: &str| -> Result<BTreeMap<String, String>, String> {
            members_json(bin, viewer, &dir)?
                .remove(node)
                .map(|(_, _, t)| t)
                .ok_or("no such member".into())
        };
    let map = |kv: &[(&str, &str)]| -> BTreeMap<String, String> {
        kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    };
    // (CLI, agent whose tags change, the other agent, the other's CLI)
    for (cli, target, viewer, viewer_cli) in [
        (OUR_SERF, 1usize, 0usize, GO_SERF),
        (GO_SERF, 0, 1, OUR_SERF),
        (GO_SERF, 1, 0, OUR_SERF),
        (OUR_SERF, 0, 1, GO_SERF),
    ] {
        let a = &agents[target];
        let base = if target == 0 { ("role", "web") } else { ("role", "db") };
        let r = run(cli, &["tags", &rpc(a), "-set", "zone=a", "-set", "rack=1"], &[], &dir);
        assert_eq!((r.code, r.out.as_str()), (0, "Successfully updated agent tags\n"), "{r:?}");
        let want = map(&[base, ("zone", "a"), ("rack", "1")]);
        wait_for(&format!("{}'s tags on {}", a.name, agents[viewer].name), t, &refs, || {
            let got = tags_of(&agents[viewer], viewer_cli, &a.name)?;
            if got == want {
                Ok(())
            } else {
                Err(format!("{got:?}"))
            }
        });
        // `members -detailed` text of the viewer shows them too.
        let d = run(viewer_cli, &["members", &rpc(&agents[viewer]), "-detailed"], &[], &dir);
        let row = d.out.lines().find(|l| l.starts_with(&format!("{} ", a.name))).unwrap_or("");
        let cell = norm_members(row);
        assert!(cell.contains("rack=1,role=") && cell.contains("zone=a"), "{d:?}");
        assert!(row.contains("Protocol Version: 5") && row.contains("[2, 5]"), "{row}");

        let r = run(cli, &["tags", &rpc(a), "-delete", "zone", "-delete", "rack"], &[], &dir);
        assert_eq!(r.code, 0, "{r:?}");
        let want = map(&[base]);
        wait_for(
            &format!("{}'s tags deleted on {}", a.name, agents[viewer].name),
            t,
            &refs,
            || {
                let got = tags_of(&agents[viewer], viewer_cli, &a.name)?;
                if got == want {
                    Ok(())
                } else {
                    Err(format!("{got:?}"))
                }
            },
        );
    }
    // Both views agree in the end (Go CLI against each).
    let a = members_json(GO_SERF, &agents[0], &dir).unwrap();
    let b = members_json(GO_SERF, &agents[1], &dir).unwrap();
    assert_eq!(a, b);
}

// ---------------------------------------------------------------------------
// 4. Keys

const K1: &str = "/2aLpXdzftBnAq1YcPOEDpnfROAsStWdMKSuHkIiedI=";
const K2: &str = "qTSZo3M+NotXko4wjU6OnOGMB89vYZtNjH6sLxZPVC4=";
const K3: &str = "T9jncgl9mbLus+baTTa7q7nPSUrXwbDi2dhbtqir37s=";

/// A keyring file the way Go writes it: 2-space indented, no newline.
fn keyring_text(keys: &[&str]) -> String {
    let body: Vec<String> = keys.iter().map(|k| format!("  \"{k}\"")).collect();
    format!("[\n{}\n]", body.join(",\n"))
}

/// Polls `members` on `watch` until told to stop; returns every state in
/// which some member was not alive.
fn watch_members(
    watch: &GoAgent,
    n: usize,
    dir: &Path,
    stop: &std::sync::atomic::AtomicBool,
) -> Vec<String> {
    let mut bad = Vec::new();
    for _ in 0..2000 {
        if stop.load(std::sync::atomic::Ordering::SeqCst) {
            break;
        }
        match members_json(GO_SERF, watch, dir) {
            Ok(m) => {
                let alive = m.values().filter(|(_, st, _)| st == "alive").count();
                if alive != n || m.len() != n {
                    bad.push(format!("{m:?}"));
                }
            }
            Err(e) => bad.push(e),
        }
        sleep_ms(300);
    }
    bad
}

#[test]
fn keyring_rotation_across_go_and_ours() {
    if !go_available("keyring_rotation_across_go_and_ours") {
        return;
    }
    let dir = scratch("interop-keys");
    let nodes = [
        (true, "g1", "127.0.93.1"),
        (false, "o1", "127.0.93.2"),
        (true, "g2", "127.0.93.3"),
        (false, "o2", "127.0.93.4"),
    ];
    let kfile = |n: &str| dir.join(format!("keyring-{n}.json"));
    // A member-failed handler, for when o2 is killed at the end.
    let rec = recorder(&dir);
    let failed_file = |n: &str| dir.join(format!("failed-{n}.rec"));
    let specs: Vec<Spec> = nodes
        .iter()
        .map(|(go, n, ip)| {
            std::fs::write(kfile(n), format!("[\"{K1}\"]")).unwrap();
            let h = format!(
                "-event-handler=member-failed={} {}",
                rec.display(),
                failed_file(n).display()
            );
            Spec::new(*go, n, ip, &[format!("-keyring-file={}", kfile(n).display()), h])
        })
        .collect();
    let mut agents = cluster(&specs, &dir);
    let names: Vec<&str> = nodes.iter().map(|x| x.1).collect();

    let stop = std::sync::atomic::AtomicBool::new(false);
    let (g1, o1, g2, o2) = (&agents[0], &agents[1], &agents[2], &agents[3]);
    let refs = [g1, o1, g2, o2];
    let keys = |bin: &str, a: &GoAgent, op: &str| run(bin, &["keys", &rpc(a), op], &[], &dir);
    let logstr = logs(&refs);
    let list_ok = |bin: &str, a: &GoAgent, want: &[&str]| {
        let r = keys(bin, a, "-list");
        let mut lines: Vec<String> = want.iter().map(|k| format!("{k}  [4/4]")).collect();
        lines.sort();
        let want = format!(
            "==> Asking all members for installed keys...\n==> Keys gathered, listing cluster keys...\n\n{}\n",
            lines.join("\n")
        );
        assert_eq!(
            (r.code, sorted_lines(&r.out)),
            (0, sorted_lines(&want)),
            "keys -list on {}{logstr}",
            a.name
        );
    };
    let files_are = |want: &[&str]| {
        for n in &names {
            // Files are rewritten after the reply; allow a moment.
            wait_for(&format!("keyring file of {n}"), Duration::from_secs(10), &refs, || {
                let got = std::fs::read_to_string(kfile(n)).unwrap_or_default();
                if got == keyring_text(want) {
                    Ok(())
                } else {
                    Err(got)
                }
            });
        }
    };
    let ok = |r: Run, what: &str, line: &str| {
        assert_eq!(
            (r.code, r.out.as_str(), r.err.as_str()),
            (0, format!("==> {what} on all members...\n==> {line}\n").as_str(), ""),
            "keys {what}{}",
            logs(&refs)
        );
    };

    let bad = std::thread::scope(|s| {
        let watcher = s.spawn(|| watch_members(g1, 4, &dir, &stop));
        // Round 1: our CLI against ours.
        list_ok(OUR_SERF, o1, &[K1]);
        ok(
            keys(OUR_SERF, o1, &format!("-install={K2}")),
            "Installing key",
            "Successfully installed key!",
        );
        list_ok(GO_SERF, g2, &[K1, K2]);
        files_are(&[K1, K2]);
        // Removing the primary key fails on every node, reported alike.
        let go = keys(GO_SERF, g1, &format!("-remove={K1}"));
        let ours = keys(OUR_SERF, o2, &format!("-remove={K1}"));
        assert_eq!((go.code, ours.code), (1, 1), "{go:?} {ours:?}");
        assert_eq!(sorted_lines(&go.out), sorted_lines(&ours.out));
        for n in &names {
            assert!(
                ours.out.lines().any(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")
                    == format!("failed: {n} Removing the primary key is not allowed")),
                "{ours:?}"
            );
        }
        assert!(ours.out.ends_with("Error removing key: 4/4 nodes reported failure\n"), "{ours:?}");
        ok(
            keys(OUR_SERF, o1, &format!("-use={K2}")),
            "Changing primary key",
            "Successfully changed primary key!",
        );
        files_are(&[K2, K1]);
        ok(
            keys(OUR_SERF, o1, &format!("-remove={K1}")),
            "Removing key",
            "Successfully removed key!",
        );
        files_are(&[K2]);
        list_ok(OUR_SERF, o2, &[K2]);

        // Round 2: Go CLI against Go.
        ok(
            keys(GO_SERF, g2, &format!("-install={K3}")),
            "Installing key",
            "Successfully installed key!",
        );
        files_are(&[K2, K3]);
        list_ok(GO_SERF, g1, &[K2, K3]);
        ok(
            keys(GO_SERF, g2, &format!("-use={K3}")),
            "Changing primary key",
            "Successfully changed primary key!",
        );
        files_are(&[K3, K2]);
        ok(
            keys(GO_SERF, g2, &format!("-remove={K2}")),
            "Removing key",
            "Successfully removed key!",
        );
        files_are(&[K3]);
        list_ok(OUR_SERF, o1, &[K3]);
        // A key no one has: every node fails alike.
        let go = keys(GO_SERF, g1, &format!("-use={K1}"));
        let ours = keys(OUR_SERF, o1, &format!("-use={K1}"));
        assert_eq!((go.code, ours.code), (1, 1), "{go:?} {ours:?}");
        assert_eq!(sorted_lines(&go.out), sorted_lines(&ours.out));
        assert!(ours.out.contains("Requested key is not in the keyring"), "{ours:?}");
        // Let failure detection catch up with anything that went wrong.
        sleep_ms(2000);
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        watcher.join().unwrap()
    });
    assert!(bad.is_empty(), "members were lost during the rotation: {bad:#?}{}", logs(&refs));
    // Every node logged the same key requests and refusals, and its
    // keyring restore at startup (Go's and our log lines alike).
    let key_log = |a: &GoAgent| -> Vec<String> {
        let mut v = log_lines(a, "serf: Received ");
        v.extend(log_lines(a, "serf: Failed to "));
        v.extend(log_lines(a, "agent: Restored keyring").iter().map(|l| l.replace(&a.name, "N")));
        v
    };
    let (gl, ol) = (key_log(&agents[0]), key_log(&agents[1]));
    assert_eq!(gl, ol, "key log lines: Go (left) vs ours (right)");
    assert!(ol.iter().any(|l| l.contains("Received install-key query")), "{ol:?}");
    assert!(
        ol.iter()
            .any(|l| l
                == "[ERR] serf: Failed to remove key: Removing the primary key is not allowed"),
        "{ol:?}"
    );
    assert!(
        ol.iter().any(|l| l.starts_with("[INFO] agent: Restored keyring with 1 keys from")),
        "{ol:?}"
    );

    // Restart one of ours with only its keyring file (now [K3]).
    agents[3].signal(libc::SIGKILL);
    agents[3].wait_exit(Duration::from_secs(5));
    assert!(!agents[3].alive(), "o2 survived SIGKILL");
    // Go and ours report the failure alike.
    let want = member_line("o2", "127.0.93.4", &[]);
    for (i, n) in names.iter().enumerate().take(3) {
        let refs: Vec<&GoAgent> = agents.iter().collect();
        let r = wait_for(
            &format!("member-failed of o2 on {n}"),
            Duration::from_secs(40),
            &refs,
            || {
                let rs = records(&failed_file(n));
                match &rs[..] {
                    [r] => Ok(r.clone()),
                    _ => Err(format!("{rs:?}")),
                }
            },
        );
        assert_eq!(
            r.stdin.lines().map(norm_member_line).collect::<Vec<_>>(),
            std::slice::from_ref(&want)
        );
        assert_eq!(
            r.env_not_self().into_iter().collect::<Vec<_>>(),
            [("SERF_EVENT".to_string(), "member-failed".to_string())]
        );
        assert_eq!(r.env_self(), self_env(n, &[]), "on {}", agents[i].name);
    }
    let o2 = GoAgent::ours(
        "o2",
        "127.0.93.4",
        &[&format!("-keyring-file={}", kfile("o2").display()), "-join=127.0.93.1"],
        &dir,
    );
    agents[3] = o2;
    let refs: Vec<&GoAgent> = agents.iter().collect();
    wait_converged(&refs, &names, &dir, Duration::from_secs(30));
    list_ok(GO_SERF, &agents[0], &[K3]);
    list_ok(OUR_SERF, &agents[3], &[K3]);
}

// ---------------------------------------------------------------------------
// 5. Snapshots

/// Checks every snapshot line has one of the kinds Go writes; returns the
/// lines parsed as (kind, rest).
fn snapshot_lines(path: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    assert!(text.is_empty() || text.ends_with('\n'), "{}: unterminated line", path.display());
    text.lines()
        .map(|l| {
            let (kind, rest) = match l.split_once(": ") {
                Some((k, r)) => (k.to_string(), r.to_string()),
                None => (l.to_string(), String::new()),
            };
            let ok = match kind.as_str() {
                "alive" => rest.rsplit_once(' ').is_some_and(|(n, a)| {
                    !n.is_empty() && a.parse::<std::net::SocketAddr>().is_ok()
                }),
                "not-alive" => !rest.is_empty() && !rest.contains(' '),
                "clock" | "event-clock" | "query-clock" => rest.parse::<u64>().is_ok(),
                "leave" => rest.is_empty(),
                _ => false,
            };
            assert!(ok, "{}: unexpected snapshot line {l:?}", path.display());
            (kind, rest)
        })
        .collect()
}

/// The last value of a clock line.
fn last_clock(lines: &[(String, String)], kind: &str) -> Option<u64> {
    lines.iter().rev().find(|(k, _)| k == kind).and_then(|(_, v)| v.parse().ok())
}

#[test]
fn snapshot_restart_rejoins_without_replaying_events() {
    if !go_available("snapshot_restart_rejoins_without_replaying_events") {
        return;
    }
    let dir = scratch("interop-snap");
    let rec = recorder(&dir);
    let gsnap = dir.join("g1.snap");
    let osnap = dir.join("o1.snap");
    let grec = dir.join("g1.rec");
    let orec = dir.join("o1.rec");
    let h = |f: &Path| format!("-event-handler=user={} {}", rec.display(), f.display());
    let oflags = vec![format!("-snapshot={}", osnap.display()), h(&orec)];
    let specs = [
        Spec::new(true, "g1", "127.0.94.1", &[format!("-snapshot={}", gsnap.display()), h(&grec)]),
        Spec::new(false, "o1", "127.0.94.2", &oflags),
    ];
    let mut agents = cluster(&specs, &dir);
    let t = Duration::from_secs(30);
    // Sorted: events sent back to back may arrive in either order.
    let user_events = |f: &Path| -> Vec<String> {
        let mut v: Vec<String> = records(f)
            .iter()
            .map(|r| format!("{} {}", r.var("SERF_USER_EVENT"), r.stdin.trim_end()))
            .collect();
        v.sort();
        v
    };
    let wait_events = |agents: &[GoAgent], f: &Path, want: &[&str]| {
        let refs: Vec<&GoAgent> = agents.iter().collect();
        wait_for(&format!("events {want:?} in {}", f.display()), t, &refs, || {
            let got = user_events(f);
            if got == want {
                Ok(())
            } else {
                Err(format!("{got:?}"))
            }
        });
    };
    for (n, p) in [("e1", "p1"), ("e2", "p2")] {
        let r = run(GO_SERF, &["event", &rpc(&agents[0]), "-coalesce=false", n, p], &[], &dir);
        assert_eq!(r.code, 0, "{r:?}");
    }
    let r = run(OUR_SERF, &["query", &rpc(&agents[1]), "-timeout=1s", "sq"], &[], &dir);
    assert_eq!(r.code, 0, "{r:?}");
    wait_events(&agents, &orec, &["e1 p1", "e2 p2"]);
    wait_events(&agents, &grec, &["e1 p1", "e2 p2"]);
    let ltime: u64 = records(&orec)
        .iter()
        .map(|r| r.var("SERF_USER_LTIME").parse::<u64>().unwrap())
        .max()
        .unwrap();

    // Ours has flushed the clocks and members (within 500 ms). (Go's
    // snapshot writer flushes only when it appends a line more than 500 ms
    // after its last flush, so its file lags until the next line or the
    // shutdown; it is compared at the end.)
    {
        let refs: Vec<&GoAgent> = agents.iter().collect();
        wait_for("our snapshot to hold the clocks", t, &refs, || {
            let o = snapshot_lines(&osnap);
            let ok = last_clock(&o, "event-clock") == Some(ltime)
                && last_clock(&o, "query-clock").is_some()
                && last_clock(&o, "clock").is_some()
                && ["g1 127.0.94.1:7946", "o1 127.0.94.2:7946"]
                    .iter()
                    .all(|m| o.iter().any(|(k, r)| k == "alive" && r == m));
            if ok {
                Ok(())
            } else {
                Err(format!("{o:?}"))
            }
        });
    }

    // SIGKILL ours and restart it with the same snapshot and no -join.
    agents[1].signal(libc::SIGKILL);
    agents[1].wait_exit(Duration::from_secs(5));
    let extra: Vec<&str> = oflags.iter().map(String::as_str).collect();
    agents[1] = GoAgent::ours("o1", "127.0.94.2", &extra, &dir);
    {
        let refs: Vec<&GoAgent> = agents.iter().collect();
        wait_converged(&refs, &["g1", "o1"], &dir, t);
    }
    let r = run(GO_SERF, &["event", &rpc(&agents[0]), "-coalesce=false", "e3", "p3"], &[], &dir);
    assert_eq!(r.code, 0, "{r:?}");
    wait_events(&agents, &orec, &["e1 p1", "e2 p2", "e3 p3"]);
    wait_events(&agents, &grec, &["e1 p1", "e2 p2", "e3 p3"]);
    sleep_ms(1000);
    assert_eq!(user_events(&orec), ["e1 p1", "e2 p2", "e3 p3"], "old events were replayed");

    // Graceful leave (SIGINT) writes `leave`; `-rejoin` ignores it.
    agents[1].signal(libc::SIGINT);
    let code = agents[1].wait_exit(Duration::from_secs(15));
    assert_eq!(code, Some(0), "our agent after SIGINT{}", logs(&[&agents[1]]));
    {
        let refs: Vec<&GoAgent> = agents.iter().collect();
        wait_for("g1 to see o1 left", t, &refs, || {
            let m = members_json(GO_SERF, &agents[0], &dir)?;
            match m.get("o1") {
                Some((_, st, _)) if st == "left" => Ok(()),
                other => Err(format!("{other:?}")),
            }
        });
    }
    let o = snapshot_lines(&osnap);
    assert!(o.iter().any(|(k, _)| k == "leave"), "no leave line in ours: {o:?}");
    let mut extra = extra.clone();
    extra.push("-rejoin");
    agents[1] = GoAgent::ours("o1", "127.0.94.2", &extra, &dir);
    {
        let refs: Vec<&GoAgent> = agents.iter().collect();
        wait_converged(&refs, &["g1", "o1"], &dir, t);
    }
    let r = run(OUR_SERF, &["event", &rpc(&agents[1]), "-coalesce=false", "e4", "p4"], &[], &dir);
    assert_eq!(r.code, 0, "{r:?}");
    wait_events(&agents, &orec, &["e1 p1", "e2 p2", "e3 p3", "e4 p4"]);
    wait_events(&agents, &grec, &["e1 p1", "e2 p2", "e3 p3", "e4 p4"]);

    let e4: u64 = records(&orec)
        .iter()
        .map(|r| r.var("SERF_USER_LTIME").parse::<u64>().unwrap())
        .max()
        .unwrap();

    // The Go agent's own graceful leave writes the same `leave` line, and
    // flushes its file: now both can be compared.
    agents[0].signal(libc::SIGINT);
    assert_eq!(agents[0].wait_exit(Duration::from_secs(15)), Some(0));
    let g = snapshot_lines(&gsnap);
    let refs: Vec<&GoAgent> = agents.iter().collect();
    let o = wait_for("our snapshot to record g1's leave", t, &refs, || {
        let o = snapshot_lines(&osnap);
        if o.iter().any(|(k, r)| k == "not-alive" && r == "g1") {
            Ok(o)
        } else {
            Err(format!("{o:?}"))
        }
    });
    for (who, lines, other) in [("Go", &g, "o1"), ("ours", &o, "g1")] {
        let has = |kind: &str, rest: &str| lines.iter().any(|(k, r)| k == kind && r == rest);
        assert!(
            has("alive", "g1 127.0.94.1:7946") && has("alive", "o1 127.0.94.2:7946"),
            "{who}: {lines:?}"
        );
        assert!(has("not-alive", other), "{who}: {lines:?}");
        // The leave is recorded when it starts: the agent's own departure
        // is never written as `not-alive`.
        let me = if other == "o1" { "g1" } else { "o1" };
        assert!(!has("not-alive", me), "{who}: {lines:?}");
        assert!(has("leave", ""), "{who}: {lines:?}");
        assert_eq!(last_clock(lines, "event-clock"), Some(e4), "{who}: {lines:?}");
    }
    assert_eq!(last_clock(&g, "query-clock"), last_clock(&o, "query-clock"));
    let go_kinds: BTreeSet<&String> = g.iter().map(|(k, _)| k).collect();
    let our_kinds: BTreeSet<&String> = o.iter().map(|(k, _)| k).collect();
    assert_eq!(go_kinds, our_kinds, "snapshot line kinds: Go (left) vs ours (right)");
}

// ---------------------------------------------------------------------------
// 6. Bad input and misbehaving handlers

#[test]
fn size_limits_and_misbehaving_handlers() {
    if !go_available("size_limits_and_misbehaving_handlers") {
        return;
    }
    let dir = scratch("interop-bad");
    let rec = recorder(&dir);
    let hang = dir.join("hang.sh");
    write_exec(&hang, "#!/bin/sh\necho $$ > \"$1\"\nexec sleep 1000\n");
    let pid_go = dir.join("hang-g1.pid");
    let pid_ours = dir.join("hang-o1.pid");
    let guard = PidGuard(vec![pid_go.clone(), pid_ours.clone()]);
    let rec_of = |n: &str| dir.join(format!("{n}.rec"));
    let flags = |n: &str, pid: &Path| {
        vec![
            format!("-event-handler=user={} {}", rec.display(), rec_of(n).display()),
            format!("-event-handler=user:hang={} {}", hang.display(), pid.display()),
            "-event-handler=user:flood=yes | head -c 50000000".to_string(),
        ]
    };
    let specs = [
        Spec::new(true, "g1", "127.0.95.1", &flags("g1", &pid_go)),
        Spec::new(false, "o1", "127.0.95.2", &flags("o1", &pid_ours)),
    ];
    let agents = cluster(&specs, &dir);
    let refs: Vec<&GoAgent> = agents.iter().collect();
    let (g1, o1) = (&agents[0], &agents[1]);

    // Sizes around the limits: the Go CLI against Go, the Go CLI against
    // ours and our CLI against ours must agree (code, stdout, stderr).
    for len in [400usize, 470, 480, 485, 490, 495, 500, 509, 510] {
        let p = "x".repeat(len);
        let args = |a: &GoAgent| vec!["event".to_string(), rpc(a), "big".into(), p.clone()];
        let a = run(GO_SERF, &args(g1).iter().map(String::as_str).collect::<Vec<_>>(), &[], &dir);
        let b = run(GO_SERF, &args(o1).iter().map(String::as_str).collect::<Vec<_>>(), &[], &dir);
        let c = run(OUR_SERF, &args(o1).iter().map(String::as_str).collect::<Vec<_>>(), &[], &dir);
        assert_eq!(a, b, "event payload {len}: Go agent (left) vs ours (right)");
        assert_eq!(a, c, "event payload {len}: Go (left) vs our CLI+agent (right)");
        if len == 510 {
            assert_eq!(
                (a.code, a.out.as_str()),
                (1, "Error sending event: user event exceeds configured limit of 512 bytes before encoding\n")
            );
        }
    }
    let mut saw_error = false;
    for len in [800usize, 930, 950, 960, 970, 980, 990, 1000, 1100] {
        let p = "y".repeat(len);
        let args = |a: &GoAgent| {
            vec![
                "query".to_string(),
                rpc(a),
                "-timeout=500ms".into(),
                "-no-ack".into(),
                "bigq".into(),
                p.clone(),
            ]
        };
        let (a, b) = std::thread::scope(|s| {
            let a = s.spawn(|| {
                run(GO_SERF, &args(g1).iter().map(String::as_str).collect::<Vec<_>>(), &[], &dir)
            });
            let b =
                run(OUR_SERF, &args(o1).iter().map(String::as_str).collect::<Vec<_>>(), &[], &dir);
            (a.join().unwrap(), b)
        });
        assert_eq!(a, b, "query payload {len}: Go (left) vs ours (right)");
        if a.code != 0 {
            saw_error = true;
            assert_eq!(a.out, "Error sending query: query exceeds limit of 1024 bytes\n");
        }
        let c = run(GO_SERF, &args(o1).iter().map(String::as_str).collect::<Vec<_>>(), &[], &dir);
        assert_eq!(a, c, "query payload {len}: Go agent (left) vs ours (right), Go CLI");
    }
    assert!(saw_error, "no query size hit the limit");
    // The failed event sends are logged alike (o1 got each one twice).
    let warn = "agent: failed to send user event";
    let mut twice = log_lines(g1, warn);
    twice.extend(log_lines(g1, warn));
    twice.sort();
    assert!(!twice.is_empty());
    assert_eq!(twice, log_lines(o1, warn), "event send failures logged by Go (left) and ours");

    // A handler flooding stdout (50 MB), then one that hangs, then a
    // normal event; each sent once the previous one reached the handlers
    // (gossip does not keep the order of events sent in a burst).
    let t = Duration::from_secs(40);
    let send = |name: &str| {
        let r = run(GO_SERF, &["event", &rpc(g1), "-coalesce=false", name, "z"], &[], &dir);
        assert_eq!(r.code, 0, "{r:?}");
    };
    let has =
        |n: &str, ev: &str| records(&rec_of(n)).iter().any(|r| r.var("SERF_USER_EVENT") == ev);
    send("flood");
    for n in ["g1", "o1"] {
        wait_for(&format!("flood on {n}"), t, &refs, || {
            if has(n, "flood") {
                Ok(())
            } else {
                Err("no".into())
            }
        });
    }
    send("hang");
    for p in [&pid_go, &pid_ours] {
        wait_for(&format!("hanging handler {}", p.display()), t, &refs, || {
            std::fs::read_to_string(p).map(|_| ()).map_err(|e| e.to_string())
        });
    }
    send("after");
    // While the handler hangs, both agents still answer RPC, still ack
    // queries and still receive events.
    for a in [g1, o1] {
        let started = now();
        let r = run(OUR_SERF, &["members", &rpc(a), "-status=alive"], &[], &dir);
        assert_eq!((r.code, r.out.lines().count()), (0, 2), "members on {} {r:?}", a.name);
        assert!(now() - started < Duration::from_secs(5), "members on {} was slow", a.name);
        let r = run(GO_SERF, &["info", &rpc(a), "-format=json"], &[], &dir);
        assert_eq!(r.code, 0, "{r:?}");
    }
    let r = run(GO_SERF, &["query", &rpc(g1), "-timeout=1s", "ping-while-hung"], &[], &dir);
    assert_eq!(
        (r.code, norm_query(&r.out)),
        (0, query_text("ping-while-hung", &["g1", "o1"], &[], false)),
        "{}",
        logs(&refs)
    );
    let event_time = |a: &GoAgent| -> Result<u64, String> {
        let r = run(GO_SERF, &["info", &rpc(a), "-format=json"], &[], &dir);
        let v: serde_json::Value =
            serde_json::from_str(&r.out).map_err(|e| format!("{e}: {r:?}"))?;
        v["serf"]["event_time"].as_str().and_then(|s| s.parse().ok()).ok_or(format!("{v}"))
    };
    let r = run(GO_SERF, &["event", &rpc(g1), "-coalesce=false", "later", "z"], &[], &dir);
    assert_eq!(r.code, 0, "{r:?}");
    let want = event_time(g1).unwrap();
    wait_for("ours to receive the later event", t, &refs, || {
        let got = event_time(o1)?;
        if got == want {
            Ok(())
        } else {
            Err(format!("event_time {got}, Go {want}"))
        }
    });
    // Handlers run one at a time on both: the recorder has seen flood and
    // hang (it runs first) but not yet `after`.
    // (The `big` events above were coalesced, each agent in its own
    // windows, so they are left out.)
    let names = |n: &str| -> Vec<String> {
        records(&rec_of(n))
            .iter()
            .map(|r| r.var("SERF_USER_EVENT").to_string())
            .filter(|e| e != "big")
            .collect()
    };
    sleep_ms(500);
    assert_eq!(names("g1"), names("o1"), "while a handler hangs");
    assert!(!names("o1").contains(&"after".to_string()), "{:?}", names("o1"));
    guard.kill_all();
    for n in ["g1", "o1"] {
        wait_for(&format!("{n}'s handler to catch up"), t, &refs, || {
            let got = names(n);
            let big = records(&rec_of(n)).iter().any(|r| r.var("SERF_USER_EVENT") == "big");
            if got == ["flood", "hang", "after", "later"] && big {
                Ok(())
            } else {
                Err(format!("{got:?}"))
            }
        });
    }
    // Both stayed up.
    wait_converged(&refs, &["g1", "o1"], &dir, t);
    drop(guard);
}

// ---------------------------------------------------------------------------
// 7. SIGHUP reload

#[test]
fn sighup_reloads_event_handlers() {
    if !go_available("sighup_reloads_event_handlers") {
        return;
    }
    let dir = scratch("interop-hup");
    let rec = recorder(&dir);
    let cfg = |n: &str| dir.join(format!("{n}.json"));
    let out = |which: &str, n: &str| dir.join(format!("{which}-{n}.rec"));
    let write_cfg = |n: &str, which: &str| {
        let spec = format!("user={} {}", rec.display(), out(which, n).display());
        std::fs::write(cfg(n), serde_json::json!({ "event_handlers": [spec] }).to_string())
            .unwrap();
    };
    for n in ["g1", "o1"] {
        write_cfg(n, "A");
    }
    let specs = [
        Spec::new(true, "g1", "127.0.96.1", &[format!("-config-file={}", cfg("g1").display())]),
        Spec::new(false, "o1", "127.0.96.2", &[format!("-config-file={}", cfg("o1").display())]),
    ];
    let agents = cluster(&specs, &dir);
    let refs: Vec<&GoAgent> = agents.iter().collect();
    let t = Duration::from_secs(30);
    let events = |p: &Path| -> Vec<String> {
        records(p).iter().map(|r| r.var("SERF_USER_EVENT").to_string()).collect()
    };
    let wait_events = |p: &Path, want: &[&str]| {
        wait_for(&format!("{want:?} in {}", p.display()), t, &refs, || {
            let got = events(p);
            if got == want {
                Ok(())
            } else {
                Err(format!("{got:?}"))
            }
        });
    };
    let r = run(OUR_SERF, &["event", &rpc(&agents[1]), "-coalesce=false", "first"], &[], &dir);
    assert_eq!(r.code, 0, "{r:?}");
    for n in ["g1", "o1"] {
        wait_events(&out("A", n), &["first"]);
    }
    for (i, n) in ["g1", "o1"].iter().enumerate() {
        write_cfg(n, "B");
        agents[i].signal(libc::SIGHUP);
    }
    for a in &agents {
        wait_for(&format!("{} to reload", a.name), t, &refs, || {
            let log = std::fs::read_to_string(&a.log).unwrap_or_default();
            if log.lines().any(|l| l == "==> Reloading configuration...") {
                Ok(())
            } else {
                Err("no reload logged".into())
            }
        });
    }
    // The reload is applied right after it is logged; give it a moment.
    sleep_ms(1000);
    let r = run(GO_SERF, &["event", &rpc(&agents[0]), "-coalesce=false", "second"], &[], &dir);
    assert_eq!(r.code, 0, "{r:?}");
    for n in ["g1", "o1"] {
        wait_events(&out("B", n), &["second"]);
    }
    sleep_ms(500);
    for n in ["g1", "o1"] {
        assert_eq!(events(&out("A", n)), ["first"], "the old handler ran again on {n}");
    }
    // `info` still lists the startup handler on both: Go's stats show the
    // configuration the agent started with, whatever a reload changed.
    let section = |a: &GoAgent| -> String {
        let r = run(GO_SERF, &["info", &rpc(a)], &[], &dir);
        assert_eq!(r.code, 0, "{r:?}");
        let lines: Vec<&str> = r.out.lines().collect();
        let start = lines.iter().position(|l| *l == "event_handlers:").unwrap_or(lines.len());
        let body: Vec<&str> =
            lines.iter().skip(start + 1).take_while(|l| l.starts_with('\t')).copied().collect();
        body.join("\n").replace(&format!("-{}.rec", a.name), "-SELF.rec")
    };
    let (gs, os) = (section(&agents[0]), section(&agents[1]));
    assert_eq!(gs, os, "info event_handlers: Go (left) vs ours (right)");
    assert!(gs.contains("A-SELF.rec") && !gs.contains("B-SELF.rec"), "{gs}");
    assert!(agents.iter().all(|a| a.log.exists()));
}
