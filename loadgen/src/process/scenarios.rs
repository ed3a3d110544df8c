//! The scenarios of `--mode process`. Every wait is bounded by
//! `--timeout-secs`; a phase that does not finish in time is reported with a
//! failed check rather than hanging.

use std::collections::HashSet;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rpc::client::{Incoming, QueryParams};

use super::agents::{count_log_lines, count_log_lines_where, log_sizes, node_name};
use super::observe::{self, Kind, Obs};
use super::Cluster;
use crate::args::Args;
use crate::report::{Phase, Report};

/// Log texts both implementations print (memberlist's wording).
const SUSPECT_LINE: &str = "has failed, no acks received";
const REFUTE_LINE: &str = "Refuting a suspect message";

/// The node a probe-failure line is about: both implementations log
/// `Suspect <node> has failed, no acks received`.
fn suspect_of(line: &str) -> Option<&str> {
    let rest = &line[line.find("Suspect ")? + "Suspect ".len()..];
    let end = rest.find(SUSPECT_LINE)?;
    Some(rest[..end].trim_end())
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Victim choice: a seeded shuffle (splitmix64) of the live agents other than
/// agent 0, which issues events and queries.
fn pick(c: &Cluster, k: usize, salt: u64) -> Vec<usize> {
    let mut pool: Vec<usize> = c.agents.live().into_iter().filter(|&i| i != 0).collect();
    let mut x = c.seed ^ salt.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let mut next = || {
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    for i in (1..pool.len()).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        pool.swap(i, j);
    }
    pool.truncate(k);
    pool
}

fn lag(c: &Cluster, p: &mut Phase, from: Instant) {
    p.hist("harness timer lag (10 ms sleep)", &c.lag.since(from));
}

/// Applies every observation already queued.
fn drain(c: &mut Cluster) {
    while c.obs.next(Instant::now()).is_some() {}
}

/// Asks every live agent for `members` and counts those whose alive set is
/// exactly the live agents.
fn members_agree(c: &Cluster, live: &[usize]) -> (usize, String) {
    let want: HashSet<String> = live.iter().map(|&i| node_name(i)).collect();
    let mut agree = 0;
    let mut first_bad = String::new();
    for &i in live {
        let a = &c.agents.list[i];
        let got = observe::connect(&a.rpc_addr(), Duration::from_secs(5))
            .and_then(|mut cl| cl.members().map_err(|e| e.to_string()));
        match got {
            Ok(ms) => {
                let alive: HashSet<String> =
                    ms.into_iter().filter(|m| m.status == "alive").map(|m| m.name).collect();
                if alive == want {
                    agree += 1;
                } else if first_bad.is_empty() {
                    first_bad = format!("{} sees {} alive", a.name, alive.len());
                }
            }
            Err(e) if first_bad.is_empty() => first_bad = format!("{}: {e}", a.name),
            Err(_) => {}
        }
    }
    (agree, first_bad)
}

/// `join`: N−1 simultaneous (or staggered) `join` RPCs to agent 0.
pub fn join(c: &mut Cluster, args: &Args, report: &mut Report) -> Result<(), String> {
    let n = c.agents.list.len();
    let seed = c.agents.list[0].gossip_addr();
    let (jtx, jrx) = mpsc::channel::<(usize, Result<i32, String>, Duration)>();
    let start = Instant::now();
    for i in 1..n {
        if args.stagger_ms > 0 && i > 1 {
            std::thread::sleep(Duration::from_millis(args.stagger_ms));
        }
        let rpc = c.agents.list[i].rpc_addr();
        let (seed, tx) = (seed.clone(), jtx.clone());
        std::thread::Builder::new()
            .name(format!("join-{i}"))
            .stack_size(128 * 1024)
            .spawn(move || {
                let t = Instant::now();
                let r = observe::connect(&rpc, Duration::from_secs(10))
                    .and_then(|mut cl| cl.join(vec![seed], false).map_err(|e| e.to_string()));
                let _ = tx.send((i, r, t.elapsed()));
            })
            .map_err(|e| format!("join thread: {e}"))?;
    }
    drop(jtx);
    c.progress(&format!("{} join RPCs issued", n - 1));

    let live: Vec<usize> = (0..n).collect();
    let mut full: Vec<Option<f64>> = vec![None; n];
    let mut complete = 0;
    let mut curve = vec![(0.0, 0.0)];
    let deadline = start + c.timeout;
    while complete < n {
        let Some(o) = c.obs.next(deadline) else { break };
        if o.kind != Kind::Join || full[o.observer].is_some() {
            continue;
        }
        if c.obs.views.agrees(o.observer, &live) {
            let t = secs(o.at.saturating_duration_since(start));
            full[o.observer] = Some(t * 1000.0);
            complete += 1;
            curve.push((t, complete as f64 / n as f64));
        }
    }
    let elapsed = start.elapsed();
    // The last agent to get the full view, for the report.
    let slowest = (0..n)
        .max_by(|&a, &b| {
            let key = |i: usize| full[i].unwrap_or(f64::INFINITY);
            key(a).total_cmp(&key(b))
        })
        .map(|i| {
            let missing: Vec<String> = live
                .iter()
                .filter(|&&j| c.obs.views.get(i, j) != observe::Seen::Alive)
                .map(|&j| node_name(j))
                .collect();
            match full[i] {
                Some(t) => format!("last: {} at {:.2} s", node_name(i), t / 1000.0),
                None => format!(
                    "last: {} still missing {} (first: {:?})",
                    node_name(i),
                    missing.len(),
                    &missing[..missing.len().min(5)]
                ),
            }
        })
        .unwrap_or_default();
    let mut ok = 0;
    let mut rpc_ms = Vec::new();
    let mut first_err = String::new();
    let rpc_deadline = Instant::now() + Duration::from_secs(15);
    for _ in 1..n {
        let Ok((i, r, d)) =
            jrx.recv_timeout(rpc_deadline.saturating_duration_since(Instant::now()))
        else {
            break;
        };
        match r {
            Ok(num) if num >= 1 => {
                ok += 1;
                rpc_ms.push(ms(d));
            }
            Ok(num) if first_err.is_empty() => first_err = format!("agent {i}: joined {num}"),
            Err(e) if first_err.is_empty() => first_err = format!("agent {i}: {e}"),
            _ => {}
        }
    }
    let (agree, bad) = members_agree(c, &live);

    let p = report.phase("join");
    let samples: Vec<f64> = full.iter().flatten().copied().collect();
    p.hist("time to full view per agent", &samples);
    p.hist("join RPC latency", &rpc_ms);
    let all_agree = samples.iter().copied().fold(0.0, f64::max) / 1000.0;
    if complete == n {
        p.scalar("all-agree time", all_agree, "s");
    }
    p.scalar("agents with full view", complete as f64, "agents");
    p.series("fraction of agents with full view", curve);
    p.check(
        "converged",
        complete == n,
        format!("{complete}/{n} agents saw all {n} alive within {:.1} s; {slowest}", secs(elapsed)),
    );
    p.check("join RPCs succeeded", ok == n - 1, format!("{ok}/{} {first_err}", n - 1));
    p.check(
        "members RPC agrees",
        agree == n,
        format!("{agree}/{n} agents list exactly the {n} agents alive {bad}"),
    );
    lag(c, p, start);
    c.progress(&format!("join: {complete}/{n} full view, all-agree {all_agree:.2} s"));
    Ok(())
}

/// Waits for every survivor to report `kind` for every victim; returns the
/// per-(survivor, victim) latencies, the count of `kind`/failed events about
/// agents that are not victims, and whether it completed.
fn await_removal(
    c: &mut Cluster,
    victims: &[usize],
    kind: Kind,
    start: Instant,
) -> (Vec<f64>, u64, bool) {
    let survivors = c.agents.live();
    let vset: HashSet<usize> = victims.iter().copied().collect();
    let sset: HashSet<usize> = survivors.iter().copied().collect();
    let mut seen: HashSet<(usize, usize)> = HashSet::new();
    let mut samples = Vec::new();
    let mut false_removals = 0;
    let want = survivors.len() * victims.len();
    let deadline = start + c.timeout;
    while seen.len() < want {
        let Some(o) = c.obs.next(deadline) else { break };
        if !matches!(o.kind, Kind::Failed | Kind::Leave) {
            continue;
        }
        for &j in &o.nodes {
            if vset.contains(&j) {
                if o.kind == kind && sset.contains(&o.observer) && seen.insert((o.observer, j)) {
                    samples.push(ms(o.at.saturating_duration_since(start)));
                }
            } else if sset.contains(&j) {
                false_removals += 1;
            }
        }
    }
    let done = seen.len() == want;
    (samples, false_removals, done)
}

/// `fail`: SIGKILL `--kill` agents; every survivor must report them failed.
pub fn fail(c: &mut Cluster, args: &Args, report: &mut Report) -> Result<(), String> {
    drain(c);
    let victims = pick(c, args.kill, 1);
    if victims.is_empty() {
        return Err("fail: no agent to kill".into());
    }
    let start = Instant::now();
    for &v in &victims {
        c.agents.list[v].kill()?;
    }
    let (samples, false_deaths, done) = await_removal(c, &victims, Kind::Failed, start);
    let survivors = c.agents.live().len();
    let p = report.phase("fail");
    p.hist("detection latency per survivor", &samples);
    let max = samples.iter().copied().fold(0.0, f64::max) / 1000.0;
    if done {
        p.scalar("all-agree detection", max, "s");
    }
    p.scalar("killed", victims.len() as f64, "agents");
    p.scalar("false deaths", false_deaths as f64, "events");
    p.check(
        "every survivor detected every victim",
        done,
        format!(
            "{}/{} (survivor, victim) pairs within {:.1} s",
            samples.len(),
            survivors * victims.len(),
            secs(start.elapsed())
        ),
    );
    p.check(
        "no false deaths",
        false_deaths == 0,
        format!("{false_deaths} failed/left events about live agents"),
    );
    lag(c, p, start);
    c.progress(&format!("fail: all-agree detection {max:.2} s (done={done})"));
    Ok(())
}

/// `leave`: `--leave` agents leave gracefully (the `leave` RPC, as
/// `serf leave` does); every survivor must report them left.
pub fn leave(c: &mut Cluster, args: &Args, report: &mut Report) -> Result<(), String> {
    drain(c);
    let victims = pick(c, args.leave, 2);
    if victims.is_empty() {
        return Err("leave: no agent to leave".into());
    }
    let start = Instant::now();
    let mut threads = Vec::new();
    for &v in &victims {
        let rpc = c.agents.list[v].rpc_addr();
        c.agents.list[v].live = false;
        threads.push(std::thread::spawn(move || {
            observe::connect(&rpc, Duration::from_secs(5))
                .and_then(|mut cl| cl.leave().map_err(|e| e.to_string()))
        }));
    }
    let (samples, false_deaths, done) = await_removal(c, &victims, Kind::Leave, start);
    let mut rpc_ok = 0;
    for t in threads {
        if matches!(t.join(), Ok(Ok(()))) {
            rpc_ok += 1;
        }
    }
    let mut exited = 0;
    for &v in &victims {
        if c.agents.list[v].reap(Duration::from_secs(15)) {
            exited += 1;
        }
    }
    let survivors = c.agents.live().len();
    let p = report.phase("leave");
    p.hist("leave seen per survivor", &samples);
    let max = samples.iter().copied().fold(0.0, f64::max) / 1000.0;
    if done {
        p.scalar("all-agree leave", max, "s");
    }
    p.scalar("false deaths", false_deaths as f64, "events");
    p.check(
        "every survivor saw every leave",
        done,
        format!("{}/{} pairs", samples.len(), survivors * victims.len()),
    );
    p.check("leave RPCs succeeded", rpc_ok == victims.len(), format!("{rpc_ok}/{}", victims.len()));
    p.check("left agents exited", exited == victims.len(), format!("{exited}/{}", victims.len()));
    p.check("no false deaths", false_deaths == 0, format!("{false_deaths}"));
    lag(c, p, start);
    Ok(())
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

fn maxf(v: &[f64]) -> f64 {
    v.iter().copied().fold(0.0, f64::max)
}

/// `idle`: a quiet cluster for `--idle-secs`: false suspicions and deaths,
/// CPU and RSS per agent, packets and bytes per agent per second.
pub fn idle(c: &mut Cluster, args: &Args, report: &mut Report) -> Result<(), String> {
    drain(c);
    let live = c.agents.live();
    let logs0 = log_sizes(&c.agents);
    let cpu0: Vec<Option<f64>> = live.iter().map(|&i| c.agents.list[i].cpu_seconds()).collect();
    if let Some(cap) = &c.capture {
        let _ = cap.drops(); // reset the kernel's counters
    }
    let cap0 = c.capture.as_ref().map(|cap| cap.counters.snapshot());
    let start = Instant::now();
    c.progress(&format!("idle for {} s", args.idle_secs));
    let end = start + Duration::from_secs(args.idle_secs);
    let lset: HashSet<usize> = live.iter().copied().collect();
    let mut false_deaths = 0u64;
    while let Some(o) = next_until(c, end) {
        if matches!(o.kind, Kind::Failed | Kind::Leave) {
            false_deaths += o.nodes.iter().filter(|j| lset.contains(j)).count() as u64;
        }
    }
    let elapsed = secs(start.elapsed());
    let cpu: Vec<f64> = live
        .iter()
        .zip(&cpu0)
        .filter_map(|(&i, c0)| Some((c.agents.list[i].cpu_seconds()? - (*c0)?) / elapsed * 100.0))
        .collect();
    let rss: Vec<f64> = live
        .iter()
        .filter_map(|&i| c.agents.list[i].rss_bytes())
        .map(|b| b as f64 / (1024.0 * 1024.0))
        .collect();
    // A probe of an agent killed in an earlier phase can still fail early in
    // the window (its death is not yet known to every prober): only
    // suspicions of live agents are false.
    let live_names: HashSet<&str> = live.iter().map(|&i| c.agents.list[i].name.as_str()).collect();
    let suspicions: u64 = count_log_lines_where(&c.agents, &logs0, |l| {
        suspect_of(l).is_some_and(|n| live_names.contains(n))
    })
    .iter()
    .sum();
    let of_gone: u64 = count_log_lines_where(&c.agents, &logs0, |l| {
        suspect_of(l).is_some_and(|n| !live_names.contains(n))
    })
    .iter()
    .sum();
    let refutes: u64 = count_log_lines(&c.agents, &logs0, &[REFUTE_LINE]).iter().sum();
    let intact = live.iter().filter(|&&i| c.obs.views.agrees(i, &live)).count();

    let p = report.phase("idle");
    p.scalar("window", elapsed, "s");
    p.scalar("CPU per agent (mean)", mean(&cpu), "%");
    p.scalar("CPU per agent (max)", maxf(&cpu), "%");
    p.scalar("RSS per agent (mean)", mean(&rss), "MiB");
    p.scalar("RSS per agent (max)", maxf(&rss), "MiB");
    p.scalar("false suspicions (probe failures logged)", suspicions as f64, "events");
    p.scalar("probe failures of agents already gone", of_gone as f64, "events");
    p.scalar("refutations logged", refutes as f64, "events");
    p.scalar("false deaths", false_deaths as f64, "events");
    match (&c.capture, cap0) {
        (Some(cap), Some(before)) => {
            let after = cap.counters.snapshot();
            let drops = cap.drops();
            let mut pps = Vec::new();
            let mut bps = Vec::new();
            for &i in &live {
                pps.push((after[i].0 - before[i].0) as f64 / elapsed);
                bps.push((after[i].1 - before[i].1) as f64 / elapsed);
            }
            p.scalar("packets sent per agent per s (mean)", mean(&pps), "pkt/s");
            p.scalar("packets sent per agent per s (max)", maxf(&pps), "pkt/s");
            p.scalar("bytes sent per agent per s (mean)", mean(&bps), "B/s");
            p.scalar("bytes sent per agent per s (max)", maxf(&bps), "B/s");
            p.scalar("capture drops", drops as f64, "packets");
        }
        _ => {
            let why = c.capture_error.clone().unwrap_or_default();
            p.check("packet capture", false, format!("no packet counts: {why}"));
        }
    }
    p.check(
        "no false deaths",
        false_deaths == 0,
        format!("{false_deaths} failed/left events about live agents"),
    );
    p.check(
        "no false suspicions",
        suspicions == 0,
        format!("{suspicions} probe failures of live agents logged"),
    );
    p.check(
        "views intact",
        intact == live.len(),
        format!("{intact}/{} agents see every live agent alive", live.len()),
    );
    lag(c, p, start);
    c.progress(&format!(
        "idle: cpu {:.3} %/agent, rss {:.1} MiB/agent, {suspicions} suspicions, {false_deaths} false deaths",
        mean(&cpu),
        mean(&rss)
    ));
    Ok(())
}

/// The next observation before `end`, or None once `end` has passed.
fn next_until(c: &mut Cluster, end: Instant) -> Option<Obs> {
    loop {
        if Instant::now() >= end {
            return None;
        }
        if let Some(o) = c.obs.next(end) {
            return Some(o);
        }
    }
}

/// `event`: three user events from agent 0 (no coalescing); latency until
/// each live agent's stream delivers them.
pub fn event(c: &mut Cluster, _args: &Args, report: &mut Report) -> Result<(), String> {
    drain(c);
    let live = c.agents.live();
    let origin = *live.first().ok_or("event: no live agent")?;
    let mut cl = observe::connect(&c.agents.list[origin].rpc_addr(), Duration::from_secs(5))?;
    let phase_start = Instant::now();
    let mut samples = Vec::new();
    let mut delivered_all = 0;
    const EVENTS: usize = 3;
    for k in 0..EVENTS {
        let name = format!("lg-event-{}-{k}", std::process::id());
        let start = Instant::now();
        cl.user_event(&name, Some(vec![0x5a; 16]), false).map_err(|e| format!("event: {e}"))?;
        let mut got: HashSet<usize> = HashSet::new();
        // Dissemination takes seconds; a cluster that never converged would
        // otherwise hold each event for the whole --timeout-secs.
        let deadline = start + c.timeout.min(Duration::from_secs(60));
        while got.len() < live.len() {
            let Some(o) = c.obs.next(deadline) else { break };
            if o.kind == Kind::User(name.clone()) && got.insert(o.observer) {
                samples.push(ms(o.at.saturating_duration_since(start)));
            }
        }
        if got.len() == live.len() {
            delivered_all += 1;
        }
    }
    let p = report.phase("event");
    p.hist("event delivery latency per agent", &samples);
    p.check(
        "every event reached every live agent",
        delivered_all == EVENTS,
        format!("{delivered_all}/{EVENTS} events reached all {} agents", live.len()),
    );
    lag(c, p, phase_start);
    Ok(())
}

/// `query`: one query from agent 0 asking for acks; latency of each live
/// agent's ack as the origin's RPC client receives it.
pub fn query(c: &mut Cluster, _args: &Args, report: &mut Report) -> Result<(), String> {
    drain(c);
    let live = c.agents.live();
    let origin = *live.first().ok_or("query: no live agent")?;
    let mut cl = observe::connect(&c.agents.list[origin].rpc_addr(), Duration::from_secs(5))?;
    let qtimeout = c.timeout.min(Duration::from_secs(30));
    let start = Instant::now();
    cl.query(QueryParams {
        name: "lg-query".into(),
        request_ack: true,
        timeout_ns: qtimeout.as_nanos() as i64,
        ..QueryParams::default()
    })
    .map_err(|e| format!("query: {e}"))?;
    let deadline = start + qtimeout + Duration::from_secs(2);
    let mut acks: HashSet<String> = HashSet::new();
    let mut samples = Vec::new();
    let past = || Instant::now() >= deadline;
    while acks.len() < live.len() {
        match cl.next_event(&past) {
            Ok(Some(Incoming::Query { record, .. })) => {
                if record.kind == "ack" && acks.insert(record.from.clone()) {
                    samples.push(ms(start.elapsed()));
                } else if record.kind == "done" {
                    break;
                }
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    cl.close();
    let p = report.phase("query");
    p.hist("query ack latency per agent", &samples);
    p.check(
        "every live agent acked",
        acks.len() == live.len(),
        format!("{}/{} acks", acks.len(), live.len()),
    );
    lag(c, p, start);
    drain(c);
    Ok(())
}

/// `stall`: SIGSTOP `--stall-percent` % of the agents for `--stall-ms`, then
/// SIGCONT; false positives during the stall and a settle window after it.
pub fn stall(c: &mut Cluster, args: &Args, report: &mut Report) -> Result<(), String> {
    drain(c);
    let live = c.agents.live();
    let k = (live.len() * args.stall_percent as usize).div_ceil(100).max(1);
    let victims = pick(c, k, 3);
    let logs0 = log_sizes(&c.agents);
    let start = Instant::now();
    for &v in &victims {
        c.agents.list[v].stop()?;
    }
    let lset: HashSet<usize> = live.iter().copied().collect();
    let mut false_deaths = 0u64;
    let mut count = |o: &Obs| {
        if matches!(o.kind, Kind::Failed | Kind::Leave) {
            false_deaths += o.nodes.iter().filter(|j| lset.contains(j)).count() as u64;
        }
    };
    let resume = start + Duration::from_millis(args.stall_ms);
    while let Some(o) = next_until(c, resume) {
        count(&o);
    }
    for &v in &victims {
        c.agents.list[v].cont()?;
    }
    // Settle: at least 10 s, and until every view is whole again.
    let settle_end = Instant::now() + Duration::from_secs(10);
    while let Some(o) = next_until(c, settle_end) {
        count(&o);
    }
    let deadline = Instant::now() + c.timeout;
    while !live.iter().all(|&i| c.obs.views.agrees(i, &live)) {
        let Some(o) = c.obs.next(deadline) else { break };
        count(&o);
    }
    let intact = live.iter().filter(|&&i| c.obs.views.agrees(i, &live)).count();
    let suspicions: u64 = count_log_lines(&c.agents, &logs0, &[SUSPECT_LINE]).iter().sum();
    let p = report.phase("stall");
    p.scalar("stalled", victims.len() as f64, "agents");
    p.scalar("stall", args.stall_ms as f64 / 1000.0, "s");
    p.scalar("suspicions (probe failures logged)", suspicions as f64, "events");
    p.scalar("false deaths", false_deaths as f64, "events");
    p.check(
        "no false deaths",
        false_deaths == 0,
        format!("{false_deaths} failed/left events about stalled or live agents"),
    );
    p.check(
        "views recovered",
        intact == live.len(),
        format!("{intact}/{} agents see every agent alive", live.len()),
    );
    lag(c, p, start);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::suspect_of;

    #[test]
    fn probe_failure_lines_name_their_node() {
        let go = "2026/12/07 02:20:11 [INFO] memberlist: Suspect lg-3 has failed, no acks received";
        let ours =
            "    2026/12/07 02:20:11 [INFO] memberlist: Suspect lg-12 has failed, no acks received";
        assert_eq!(suspect_of(go), Some("lg-3"));
        assert_eq!(suspect_of(ours), Some("lg-12"));
        assert_eq!(suspect_of("[INFO] serf: EventMemberJoin: lg-3 127.3.0.4"), None);
    }
}
