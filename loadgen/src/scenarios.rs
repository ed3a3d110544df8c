//! The scenarios, written once against [`Cluster`] and run by both the
//! `inproc` (real sockets, OS time) and `sim` (virtual time) modes.

use std::collections::HashSet;
use std::time::Duration;

use engine::rng::Rng;
use engine::time::Instant;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::args::{Args, Scenario};
use crate::node::Kind;
use crate::observe::Observer;
use crate::report::{Phase, Report};

/// Traffic totals (sent), since the cluster started.
#[derive(Clone, Copy, Debug, Default)]
pub struct Traffic {
    pub datagrams: u64,
    pub bytes: u64,
    pub streams: u64,
    /// Stream payload bytes, where the mode can count them.
    pub stream_bytes: Option<u64>,
}

/// Process figures at one moment.
#[derive(Clone, Copy, Debug, Default)]
pub struct Cost {
    /// User + system CPU seconds of this process.
    pub cpu_s: f64,
    /// Resident set, bytes.
    pub rss: u64,
    /// Peak resident set, bytes.
    pub peak_rss: u64,
}

/// A cluster the scenarios can drive.
pub trait Cluster {
    /// Nodes, including removed ones.
    fn n(&self) -> usize;
    /// The cluster's clock (real or virtual).
    fn now(&self) -> Instant;
    /// Whether [`Cluster::now`] is virtual.
    fn is_virtual(&self) -> bool;
    /// Lets `d` pass, feeding every observation to `obs`.
    fn advance(&mut self, d: Duration, obs: &mut Observer);
    /// Node `i` joins node `seed`.
    fn join(&mut self, i: usize, seed: usize);
    /// Node `i` stops abruptly (no goodbye).
    fn kill(&mut self, i: usize);
    /// Node `i` starts a graceful leave.
    fn leave(&mut self, i: usize);
    /// Node `i` fires user event number `k`.
    fn user_event(&mut self, i: usize, k: u32) -> Result<(), String>;
    /// Node `i` starts a query asking for acks; returns its timeout.
    fn query(&mut self, i: usize) -> Result<Duration, String>;
    /// The nodes stop handling anything for `d` (SIGSTOP-like).
    fn stall(&mut self, nodes: &[usize], d: Duration);
    /// Cuts traffic between groups (`groups[i]` is node i's group).
    fn partition(&mut self, groups: &[u16]) -> Result<(), String>;
    /// Restores full connectivity.
    fn heal(&mut self);
    /// Traffic sent so far.
    fn traffic(&self) -> Traffic;
    /// Harness timer-lag samples (ms) since the last call; empty where
    /// there is no real-time harness.
    fn take_lag(&mut self) -> Vec<f64>;
    /// Runtime worker timers that fired > 10 ms late, and the largest
    /// lateness seen (µs), if the mode has workers.
    fn worker_lag(&self) -> Option<(u64, u64)>;
    /// Observation records dropped on the way (full queues).
    fn drops(&self) -> u64;
    /// Events the Serf instances themselves dropped (their bounded event
    /// queues), summed over the nodes that are up.
    fn engine_event_drops(&mut self) -> u64;
}

/// This process's CPU time and memory, from /proc.
pub fn process_cost() -> Cost {
    let mut c = Cost::default();
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
        // Fields after the command name (which may hold spaces), 1-based
        // from field 3: utime is field 14, stime 15.
        if let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) {
            let f: Vec<&str> = rest.split_whitespace().collect();
            let tick = clock_ticks();
            let ut = f.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
            let st = f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
            c.cpu_s = (ut + st) / tick;
        }
    }
    if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
        let kib = |key: &str| {
            status
                .lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
                * 1024
        };
        c.rss = kib("VmRSS:");
        c.peak_rss = kib("VmHWM:");
    }
    c
}

/// Kernel clock ticks per second (the unit of `/proc/*/stat` CPU times).
pub(crate) fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

const MIB: f64 = 1024.0 * 1024.0;
/// Join attempts per node before it gives up.
const JOIN_ATTEMPTS: u32 = 20;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn since_ms(at: Instant, t0: Instant) -> f64 {
    ms(at.saturating_since(t0))
}

/// Runs `args.scenario` on `c`, filling `report`.
pub struct Runner<'a, C: Cluster> {
    pub c: C,
    pub obs: Observer,
    args: &'a Args,
    /// Nodes that are up and not leaving.
    live: Vec<bool>,
    rng: Rng,
    step: Duration,
    bar: ProgressBar,
    next_event: u32,
    joined: bool,
}

impl<'a, C: Cluster> Runner<'a, C> {
    /// A runner over a cluster whose nodes have not joined yet; `step` is
    /// how often conditions are checked.
    pub fn new(c: C, args: &'a Args, step: Duration) -> Self {
        let n = c.n();
        let bar = if args.quiet {
            ProgressBar::hidden()
        } else {
            // Hidden by indicatif itself when stderr is not a terminal.
            let b = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            b.set_style(
                ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            b
        };
        Runner {
            c,
            obs: Observer::new(n),
            args,
            live: vec![true; n],
            rng: Rng::seed_from_u64(args.seed),
            step,
            bar,
            next_event: 0,
            joined: false,
        }
    }

    fn live_count(&self) -> usize {
        self.live.iter().filter(|&&l| l).count()
    }

    fn limit(&self) -> Duration {
        Duration::from_secs(self.args.timeout_secs)
    }

    fn advance(&mut self) {
        self.c.advance(self.step, &mut self.obs);
    }

    /// Live nodes other than node 0, shuffled; the first `k`.
    fn pick(&mut self, k: usize) -> Vec<usize> {
        let mut v: Vec<usize> = (1..self.c.n()).filter(|&i| self.live[i]).collect();
        self.rng.shuffle(&mut v);
        v.truncate(k);
        v
    }

    /// Runs every scenario in order (`join` first, always).
    pub fn run(&mut self, report: &mut Report) {
        let mut list = self.args.scenario.clone();
        if list.first() != Some(&Scenario::Join) {
            list.retain(|s| *s != Scenario::Join);
            list.insert(0, Scenario::Join);
        }
        for s in list {
            let wall = wall_now();
            let lag_before = self.c.worker_lag();
            let drops_before = self.c.drops();
            let name = format!("{s:?}").to_lowercase();
            self.bar.set_message(name.clone());
            let mut phase = Phase { scenario: name, ..Phase::default() };
            match s {
                Scenario::Join => self.join(&mut phase),
                Scenario::Fail => self.fail(&mut phase),
                Scenario::Leave => self.leave(&mut phase),
                Scenario::Idle => self.idle(&mut phase),
                Scenario::Event => self.event(&mut phase),
                Scenario::Query => self.query(&mut phase),
                Scenario::Stall => self.stall(&mut phase),
                Scenario::Partition => self.partition(&mut phase),
            }
            let lag = self.c.take_lag();
            if !lag.is_empty() {
                phase.hist("harness timer lag (10 ms tick)", &lag);
            }
            if let (Some((o0, _)), Some((o1, max))) = (lag_before, self.c.worker_lag()) {
                phase.scalar("worker timers fired > 10 ms late", (o1 - o0) as f64, "timers");
                phase.scalar("worker timer lag max (whole run so far)", max as f64 / 1000.0, "ms");
            }
            let dropped = self.c.drops() - drops_before;
            phase.scalar("observation records dropped", dropped as f64, "records");
            let engine_drops = self.c.engine_event_drops();
            phase.scalar(
                "Serf events dropped by nodes up (whole run)",
                engine_drops as f64,
                "events",
            );
            phase.scalar("wall time", wall_since(wall), "s");
            report.phases.push(phase);
            if s == Scenario::Join && !self.joined {
                break;
            }
        }
        self.bar.finish_and_clear();
    }

    /// Waits (in steps) until `done` holds or `limit` passes; returns the
    /// time it took (to the step that saw it).
    fn wait_until(
        &mut self,
        limit: Duration,
        mut done: impl FnMut(&Observer, &[bool]) -> bool,
        mut status: impl FnMut(&Observer, &[bool]) -> String,
        mut each: impl FnMut(f64, &Observer, &[bool]),
    ) -> Option<Duration> {
        let t0 = self.c.now();
        loop {
            let el = self.c.now().saturating_since(t0);
            each(el.as_secs_f64(), &self.obs, &self.live);
            if done(&self.obs, &self.live) {
                return Some(el);
            }
            if el >= limit {
                return None;
            }
            self.advance();
            self.bar.set_message(status(&self.obs, &self.live));
            self.bar.tick();
        }
    }

    fn join(&mut self, p: &mut Phase) {
        let n = self.c.n();
        self.obs.full_target = Some(n as u32 - 1);
        let t0 = self.c.now();
        let mut issued = vec![t0; n];
        for (i, at) in issued.iter_mut().enumerate().skip(1) {
            *at = self.c.now();
            self.c.join(i, 0);
            if self.args.stagger_ms > 0 {
                self.c.advance(Duration::from_millis(self.args.stagger_ms), &mut self.obs);
            }
        }
        let last_join = self.c.now();
        let mut series = Vec::new();
        let limit = self.limit();
        // A join the seed refused (it serves at most 128 push-pulls at once,
        // as Go's memberlist does) is retried after 1-2 s, as an agent's
        // retry_join would, at most JOIN_ATTEMPTS times.
        let mut attempts = vec![1u32; n];
        let mut retry_at: Vec<(Instant, usize)> = Vec::new();
        let (mut scanned, mut retries, mut gave_up) = (0, 0u64, 0u64);
        let agreed = loop {
            let el = self.c.now().saturating_since(last_join);
            series.push((el.as_secs_f64(), self.obs.agreeing(&self.live) as f64 / n as f64));
            if self.obs.full_nodes == n && self.obs.agreed(&self.live) {
                break Some(el);
            }
            if el >= limit {
                break None;
            }
            self.advance();
            for &(o, contacted, _) in &self.obs.joins_done[scanned..] {
                let o = o as usize;
                if contacted == 0 && o != 0 {
                    if attempts[o] < JOIN_ATTEMPTS {
                        let wait = Duration::from_millis(1000 + self.rng.below(1000));
                        retry_at.push((self.c.now() + wait, o));
                    } else {
                        gave_up += 1;
                    }
                }
            }
            scanned = self.obs.joins_done.len();
            let now = self.c.now();
            let mut k = 0;
            while k < retry_at.len() {
                if retry_at[k].0 <= now {
                    let (_, o) = retry_at.swap_remove(k);
                    attempts[o] += 1;
                    retries += 1;
                    self.c.join(o, 0);
                } else {
                    k += 1;
                }
            }
            self.bar.set_message(format!(
                "join: {}/{} nodes have seen every other node, {} retries",
                self.obs.full_nodes, n, retries
            ));
            self.bar.tick();
        };
        p.scalar("join retries (seed refused the push-pull)", retries as f64, "joins");
        p.scalar("nodes that gave up joining", gave_up as f64, "nodes");
        // Per-agent time to full view, from its own join (node 0: from t0).
        let samples: Vec<f64> =
            (0..n).filter_map(|i| self.obs.full_at[i].map(|a| since_ms(a, issued[i]))).collect();
        let from_start: Vec<f64> =
            (0..n).filter_map(|i| self.obs.full_at[i].map(|a| since_ms(a, t0))).collect();
        p.hist("time to full view (from own join)", &samples);
        p.hist("time to full view (from first join)", &from_start);
        let last = self.obs.full_at.iter().flatten().max().copied();
        if let Some(last) = last {
            p.scalar("last agent full view (from last join)", since_ms(last, last_join), "ms");
        }
        match agreed {
            Some(d) => p.scalar("all agree (from last join; checked every step)", ms(d), "ms"),
            None => p.scalar("all agree", -1.0, "ms"),
        }
        let joins_ok = self.obs.joins_done.iter().filter(|j| j.1 > 0).count();
        p.scalar("joins that reached the seed", joins_ok as f64, "nodes");
        p.scalar("check step", ms(self.step), "ms");
        p.series("fraction of agents with full view", series);
        self.joined = agreed.is_some();
        p.check(
            "join converges",
            agreed.is_some(),
            match agreed {
                Some(d) => format!(
                    "all {n} agents list all {n} alive {:.1} s after the last join",
                    d.as_secs_f64()
                ),
                None => format!(
                    "after {} s only {}/{n} agents had a full view",
                    limit.as_secs(),
                    self.obs.full_nodes
                ),
            },
        );
        self.obs.full_target = None;
    }

    /// Waits until every live node has a `kind` record about every node
    /// marked in `subject` (records from `mark` on), or the phase limit.
    /// Returns each (observer, subject) pair's first record, in arrival
    /// order, and the time it took if all `target` pairs arrived.
    fn wait_for_downs(
        &mut self,
        kind: Kind,
        subject: &[bool],
        mark: usize,
        target: usize,
        phase: &str,
        what: &str,
    ) -> (Vec<(u32, u32, Instant)>, Option<Duration>) {
        let mut seen: HashSet<(u32, u32)> = HashSet::new();
        let mut scanned = mark;
        let mut first: Vec<(u32, u32, Instant)> = Vec::new();
        let limit = self.limit();
        let all = self.wait_until(
            limit,
            |o, live| {
                for &(ob, s, k, at) in &o.downs[scanned..] {
                    if k == kind && subject[s as usize] && live[ob as usize] && seen.insert((ob, s))
                    {
                        first.push((ob, s, at));
                    }
                }
                scanned = o.downs.len();
                seen.len() >= target
            },
            |_, _| format!("{phase}: waiting for {target} {what}"),
            |_, _, _| {},
        );
        (first, all)
    }

    fn fail(&mut self, p: &mut Phase) {
        let victims = self.pick(self.args.kill);
        let mark = self.obs.downs.len();
        let t0 = self.c.now();
        for &v in &victims {
            self.c.kill(v);
            self.live[v] = false;
        }
        let is_victim = {
            let mut b = vec![false; self.c.n()];
            victims.iter().for_each(|&v| b[v] = true);
            b
        };
        let target = self.live_count() * victims.len();
        let (first, all) = self.wait_for_downs(
            Kind::Failed,
            &is_victim,
            mark,
            target,
            "fail",
            "(survivor, victim) detections",
        );
        let seen = first.len();
        let samples: Vec<f64> = first.iter().map(|&(_, _, at)| since_ms(at, t0)).collect();
        p.hist("detection latency (victim failed, per survivor)", &samples);
        let first_suspect = self
            .obs
            .suspects
            .iter()
            .filter(|&&(_, s, at)| is_victim[s as usize] && at >= t0)
            .map(|&(_, _, at)| since_ms(at, t0))
            .fold(f64::INFINITY, f64::min);
        if first_suspect.is_finite() {
            p.scalar("first suspicion of a victim", first_suspect, "ms");
        }
        p.scalar("victims", victims.len() as f64, "nodes");
        p.scalar("survivors", self.live_count() as f64, "nodes");
        p.scalar("detections", seen as f64, "pairs");
        let false_deaths = self.obs.downs[mark..]
            .iter()
            .filter(|d| d.2 == Kind::Failed && !is_victim[d.1 as usize])
            .count();
        p.scalar("live nodes declared failed", false_deaths as f64, "events");
        p.check(
            "every survivor detects every victim",
            all.is_some(),
            format!(
                "{}/{} (survivor, victim) pairs detected{}",
                seen,
                target,
                all.map(|d| format!(", all within {:.1} s", d.as_secs_f64())).unwrap_or_default()
            ),
        );
        p.check("no live node declared failed", false_deaths == 0, format!("{false_deaths}"));
    }

    fn leave(&mut self, p: &mut Phase) {
        let leavers = self.pick(self.args.leave);
        let mark = self.obs.downs.len();
        let t0 = self.c.now();
        for &l in &leavers {
            self.c.leave(l);
            self.live[l] = false;
        }
        let is_leaver = {
            let mut b = vec![false; self.c.n()];
            leavers.iter().for_each(|&v| b[v] = true);
            b
        };
        let target = self.live_count() * leavers.len();
        let (firsts, all) = self.wait_for_downs(
            Kind::Left,
            &is_leaver,
            mark,
            target,
            "leave",
            "(node, leaver) left records",
        );
        let seen = firsts.len();
        let lat: Vec<f64> = firsts.iter().map(|&(_, _, at)| since_ms(at, t0)).collect();
        // A leaving node stays up until its leave finished, then stops.
        let done_by = self.c.now() + Duration::from_secs(10);
        while self.c.now() < done_by
            && !leavers.iter().all(|&l| self.obs.leaves_done.iter().any(|d| d.0 as usize == l))
        {
            self.advance();
        }
        for &l in &leavers {
            self.c.kill(l);
        }
        if std::env::var_os("LOADGEN_DEBUG").is_some() {
            for d in self.obs.downs[mark..].iter().filter(|d| is_leaver[d.1 as usize]) {
                eprintln!(
                    "leave: n{} saw n{} {:?} at +{:.3} s",
                    d.0,
                    d.1,
                    d.2,
                    since_ms(d.3, t0) / 1e3
                );
            }
        }
        p.hist("leave seen (left, per remaining node)", &lat);
        let failed_instead = self.obs.downs[mark..]
            .iter()
            .filter(|d| d.2 == Kind::Failed && is_leaver[d.1 as usize])
            .count();
        p.scalar("leavers", leavers.len() as f64, "nodes");
        p.scalar("leavers seen failed before left (transient)", failed_instead as f64, "events");
        p.check(
            "every remaining node sees every leaver left",
            all.is_some(),
            format!("{}/{} pairs", seen, target),
        );
        // A node may hear memberlist's dead message before Serf's leave
        // intent and list the leaver failed for a moment (Go's Serf has the
        // same race); what matters is that it ends up left.
        let mut last: std::collections::HashMap<(u32, u32), Kind> = Default::default();
        for d in &self.obs.downs[mark..] {
            if is_leaver[d.1 as usize] {
                last.insert((d.0, d.1), d.2);
            }
        }
        let ends_failed = last.values().filter(|&&k| k == Kind::Failed).count();
        p.scalar("nodes whose last word on a leaver is failed", ends_failed as f64, "pairs");
        p.check(
            "no leaver ends up failed",
            ends_failed == 0,
            format!("{ends_failed} pairs end failed; {failed_instead} transient failed records"),
        );
    }

    /// Traffic and cost figures over a window.
    #[allow(clippy::too_many_arguments)]
    fn costs(
        &self,
        p: &mut Phase,
        secs: f64,
        wall: f64,
        (t0, t1): (Traffic, Traffic),
        (c0, c1): (Cost, Cost),
    ) {
        let live = self.live_count().max(1) as f64;
        let per = |a: u64, b: u64| (b - a) as f64 / live / secs;
        p.scalar("packets sent per agent per second", per(t0.datagrams, t1.datagrams), "pkt/s");
        p.scalar("UDP bytes sent per agent per second", per(t0.bytes, t1.bytes), "B/s");
        p.scalar("streams per agent per second", per(t0.streams, t1.streams), "streams/s");
        if let (Some(a), Some(b)) = (t0.stream_bytes, t1.stream_bytes) {
            p.scalar("stream bytes per agent per second", per(a, b), "B/s");
        }
        // CPU is per wall second in both modes.
        let cpu = (c1.cpu_s - c0.cpu_s) / wall * 100.0;
        if self.c.is_virtual() {
            p.scalar("harness CPU (simulator, per wall second)", cpu, "%");
            p.scalar("harness RSS (simulator)", c1.rss as f64 / MIB, "MiB");
        } else {
            p.scalar("process CPU", cpu, "%");
            p.scalar("CPU per agent", cpu / live, "%");
            p.scalar("process RSS", c1.rss as f64 / MIB, "MiB");
            p.scalar("RSS per agent (process RSS / agents)", c1.rss as f64 / MIB / live, "MiB");
        }
    }

    fn idle(&mut self, p: &mut Phase) {
        let window = Duration::from_secs(self.args.idle_secs);
        let (s0, d0) = (self.obs.suspects.len(), self.obs.downs.len());
        let (tr0, c0, w0) = (self.c.traffic(), process_cost(), wall_now());
        let t0 = self.c.now();
        let live_n = self.live_count();
        self.wait_until(
            window,
            |_, _| false,
            |o, _| {
                format!(
                    "idle {}: {} suspicions, {} deaths",
                    live_n,
                    o.suspects.len() - s0,
                    o.downs.len() - d0
                )
            },
            |_, _, _| {},
        );
        let secs = self.c.now().saturating_since(t0).as_secs_f64().max(1e-3);
        let (tr1, c1) = (self.c.traffic(), process_cost());
        let wall = wall_since(w0).max(1e-3);
        self.costs(p, secs, wall, (tr0, tr1), (c0, c1));
        // Suspicions of live nodes are false; of removed nodes (a victim
        // of an earlier phase), merely late.
        let sus = &self.obs.suspects[s0..];
        let suspicions = sus.iter().filter(|s| self.live[s.1 as usize]).count();
        p.scalar("suspicions of removed nodes", (sus.len() - suspicions) as f64, "events");
        let deaths = self.obs.downs[d0..].iter().filter(|d| self.live[d.1 as usize]).count();
        p.scalar("window", secs, "s");
        p.scalar("false suspicions", suspicions as f64, "events");
        p.scalar("false deaths (live node seen failed/left)", deaths as f64, "events");
        let node_hours = live_n as f64 * secs / 3600.0;
        p.scalar("false suspicions per node-hour", suspicions as f64 / node_hours, "1/node-h");
        let which: Vec<String> = self.obs.suspects[s0..]
            .iter()
            .filter(|s| self.live[s.1 as usize])
            .take(5)
            .map(|&(o, s, at)| {
                format!("n{o} suspected n{s} at +{:.1} s", since_ms(at, t0) / 1000.0)
            })
            .collect();
        p.check(
            "idle: 0 false suspicions",
            suspicions == 0,
            format!("{suspicions} {}", which.join("; ")),
        );
        p.check("idle: 0 false deaths", deaths == 0, format!("{deaths}"));
        let agreed = self.obs.agreed(&self.live);
        p.check("views agree at the end", agreed, format!("{}", self.obs.agreeing(&self.live)));
    }

    fn event(&mut self, p: &mut Phase) {
        let k = self.next_event;
        self.next_event += 1;
        let mark = self.obs.user.len();
        let t0 = self.c.now();
        if let Err(e) = self.c.user_event(0, k) {
            p.check("user event sent", false, e);
            return;
        }
        let target = self.live_count();
        let mut got: HashSet<u32> = HashSet::new();
        let mut scanned = mark;
        let mut lat = Vec::new();
        let limit = self.limit();
        let all = self.wait_until(
            limit,
            |o, live| {
                for &(ev, ob, at) in &o.user[scanned..] {
                    if ev == k && live[ob as usize] && got.insert(ob) {
                        lat.push(since_ms(at, t0));
                    }
                }
                scanned = o.user.len();
                got.len() >= target
            },
            |_, _| format!("event: {target} agents to deliver"),
            |_, _, _| {},
        );
        lat.sort_by(f64::total_cmp);
        let at_frac = |f: f64| {
            let need = ((target as f64) * f).ceil() as usize;
            lat.get(need.max(1) - 1).copied()
        };
        p.hist("user event delivery latency (per agent)", &lat);
        if let Some(t) = at_frac(0.999) {
            p.scalar("delivered to 99.9 % of agents", t, "ms");
        }
        if got.len() >= target {
            p.scalar("delivered to 100 % of agents", lat.last().copied().unwrap_or(0.0), "ms");
        }
        let dups =
            self.obs.user[mark..].iter().filter(|u| u.0 == k).count().saturating_sub(got.len());
        p.scalar("duplicate deliveries", dups as f64, "events");
        p.check(
            "every agent delivers the event once",
            all.is_some() && dups == 0,
            format!("{}/{} delivered, {dups} duplicates", got.len(), target),
        );
    }

    fn query(&mut self, p: &mut Phase) {
        let mark = self.obs.query.len();
        let t0 = self.c.now();
        let timeout = match self.c.query(0) {
            Ok(t) => t,
            Err(e) => {
                p.check("query sent", false, e);
                return;
            }
        };
        let target = self.live_count() - 1;
        let (mut acks, mut resps) = (HashSet::new(), HashSet::new());
        let (mut ack_lat, mut resp_lat) = (Vec::new(), Vec::new());
        let mut scanned = mark;
        let all = self.wait_until(
            timeout,
            |o, live| {
                for &(k, ob, s, at) in &o.query[scanned..] {
                    if ob != 0 || s == 0 || !live[s as usize] {
                        continue;
                    }
                    if k == Kind::QueryAck && acks.insert(s) {
                        ack_lat.push(since_ms(at, t0));
                    }
                    if k == Kind::QueryResponse && resps.insert(s) {
                        resp_lat.push(since_ms(at, t0));
                    }
                }
                scanned = o.query.len();
                acks.len() >= target && resps.len() >= target
            },
            |_, _| format!("query: {target} acks and responses to collect"),
            |_, _, _| {},
        );
        p.hist("query ack latency", &ack_lat);
        p.hist("query response latency", &resp_lat);
        p.scalar("query timeout", ms(timeout), "ms");
        p.scalar("acks", acks.len() as f64, "nodes");
        p.scalar("responses", resps.len() as f64, "nodes");
        p.check(
            "every other agent acks and responds before the timeout",
            all.is_some(),
            format!("{}/{target} acks, {}/{target} responses", acks.len(), resps.len()),
        );
    }

    fn stall(&mut self, p: &mut Phase) {
        let window = Duration::from_secs(self.args.idle_secs);
        let burst = Duration::from_millis(self.args.stall_ms.max(1));
        let m = (self.live_count() * self.args.stall_percent as usize).div_ceil(100);
        let (s0, d0) = (self.obs.suspects.len(), self.obs.downs.len());
        let mut stalled = vec![false; self.c.n()];
        let t0 = self.c.now();
        let mut bursts = 0;
        while self.c.now().saturating_since(t0) < window {
            let set = self.pick(m);
            set.iter().for_each(|&i| stalled[i] = true);
            self.c.stall(&set, burst);
            bursts += 1;
            self.bar.set_message(format!("stall: burst {bursts} ({} nodes)", set.len()));
            let end = self.c.now() + burst * 2;
            while self.c.now() < end {
                self.advance();
            }
        }
        let limit = self.limit();
        let recovered = self.wait_until(
            limit,
            |o, live| o.agreed(live),
            |o, live| format!("stall: recovery, {} agree", o.agreeing(live)),
            |_, _, _| {},
        );
        let sus = &self.obs.suspects[s0..];
        let downs = &self.obs.downs[d0..];
        let healthy_sus = sus.iter().filter(|s| !stalled[s.1 as usize]).count();
        let stalled_sus = sus.len() - healthy_sus;
        let healthy_dead =
            downs.iter().filter(|d| d.2 == Kind::Failed && !stalled[d.1 as usize]).count();
        let stalled_dead = downs.iter().filter(|d| d.2 == Kind::Failed).count() - healthy_dead;
        p.scalar("bursts", bursts as f64, "bursts");
        p.scalar("nodes stalled per burst", m as f64, "nodes");
        p.scalar("burst length", ms(burst), "ms");
        p.scalar("suspicions of stalled nodes", stalled_sus as f64, "events");
        p.scalar("stalled nodes declared failed (false deaths)", stalled_dead as f64, "events");
        p.scalar("suspicions of never-stalled nodes", healthy_sus as f64, "events");
        p.scalar("never-stalled nodes declared failed", healthy_dead as f64, "events");
        if let Some(d) = recovered {
            p.scalar("views agree again after the last burst", ms(d), "ms");
        }
        p.check(
            "no never-stalled node declared failed",
            healthy_dead == 0,
            format!("{healthy_dead}"),
        );
        p.check("views agree again after the stalls", recovered.is_some(), String::new());
    }

    fn partition(&mut self, p: &mut Phase) {
        let n = self.c.n();
        let groups: Vec<u16> = (0..n).map(|i| u16::from(i >= n / 2)).collect();
        let mark = self.obs.downs.len();
        let t0 = self.c.now();
        if let Err(e) = self.c.partition(&groups) {
            p.check("partition supported", false, e);
            return;
        }
        let a = (0..n).filter(|&i| self.live[i] && groups[i] == 0).count();
        let b = self.live_count() - a;
        let target = 2 * a * b;
        let mut seen: HashSet<(u32, u32)> = HashSet::new();
        let mut lat = Vec::new();
        let mut scanned = mark;
        let limit = self.limit();
        let split = self.wait_until(
            limit,
            |o, live| {
                for &(ob, s, k, at) in &o.downs[scanned..] {
                    let (ob_, s_) = (ob as usize, s as usize);
                    if k == Kind::Failed
                        && live[ob_]
                        && live[s_]
                        && groups[ob_] != groups[s_]
                        && seen.insert((ob, s))
                    {
                        lat.push(since_ms(at, t0));
                    }
                }
                scanned = o.downs.len();
                seen.len() >= target
            },
            |_, _| format!("partition: {target} cross-group failures to see"),
            |_, _, _| {},
        );
        p.hist("partition: other side seen failed", &lat);
        self.c.heal();
        let healed = self.wait_until(
            limit,
            |o, live| o.agreed(live),
            |o, live| format!("partition healed: {} agree", o.agreeing(live)),
            |_, _, _| {},
        );
        if let Some(d) = healed {
            p.scalar("reconverged after heal", ms(d), "ms");
        }
        p.scalar("group A (first half) live nodes", a as f64, "nodes");
        p.scalar("group B (second half) live nodes", b as f64, "nodes");
        p.check(
            "each side sees the other side failed",
            split.is_some(),
            format!("{}/{target} pairs", seen.len()),
        );
        p.check("views agree again after healing", healed.is_some(), String::new());
    }
}

/// Wall clock, for phase durations (the harness may read it; the engine
/// may not).
#[allow(clippy::disallowed_methods)]
pub fn wall_now() -> std::time::Instant {
    std::time::Instant::now()
}

/// Seconds since `t`.
pub fn wall_since(t: std::time::Instant) -> f64 {
    t.elapsed().as_secs_f64()
}
