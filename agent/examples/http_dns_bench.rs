//! The HTTP API and DNS interface under load, at N members; writes
//! `results/http-dns.md` and `results/http-dns.json`.
//!
//! ```text
//! cargo run --release -p agent --example http_dns_bench -- [--members 1000] [--seconds 10]
//! ```
//!
//! One process: N−1 Serf peers on one engine runtime worker (127.91.x.y,
//! LAN profile, like `loadgen`'s in-process mode), and one agent started as
//! `serf agent` starts it (its own runtime worker, event thread, HTTP and
//! DNS threads). Every peer joins the agent; once it lists N alive, the
//! phases run for `--seconds` each:
//!
//! 1. idle — nothing but gossip;
//! 2. HTTP — 4 keep-alive clients loop on `GET /v1/catalog/nodes`
//!    (requests/s, latency p50/p99/max);
//! 3. DNS — one UDP client keeps 16 queries for `<node>.node.consul` in
//!    flight (answers/s);
//! 4. loaded — 1000 blocking queries (`?index=<current>&wait=10m`) wait on
//!    their own connections while the DNS flood runs again.
//!
//! In phases 1 and 4 (and 2) the agent's engine worker is watched twice:
//! the runtime's own timer counters (timers fired, timers more than 10 ms
//! late, the largest lag since start) and a probe that every 20 ms sends a
//! command to the worker and times its round trip (the same loop fires the
//! gossip and probe timers). The machine's 2 cores are shared by the
//! peers, the agent and the load generators; ratios between phases are the
//! point, absolute numbers drift with the machine.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agent::agent::log::{Level, Logger};
use agent::agent::{Agent, AgentHandle};
use agent::dns::DnsServer;
use agent::http::HttpServer;
use engine::proto::memberlist::Config as MlConfig;
use engine::proto::serf::{Serf, SerfConfig};
use engine::runtime::{Runtime, RuntimeConfig};
use hdrhistogram::Histogram;
use serde_json::json;

#[allow(clippy::disallowed_methods)]
fn wall() -> Instant {
    Instant::now()
}

fn arg(args: &[String], name: &str, default: u64) -> u64 {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{name}: not a number: {v}")))
        .unwrap_or(default)
}

fn raise_nofile() {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// Times a round trip through the agent's engine worker every 20 ms.
struct Probe {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Histogram<u64>>>,
}

impl Probe {
    fn start(h: &AgentHandle) -> Probe {
        let stop = Arc::new(AtomicBool::new(false));
        let (st, h) = (stop.clone(), h.clone());
        let thread = std::thread::spawn(move || {
            let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
            while !st.load(Ordering::Relaxed) {
                let t = wall();
                let _ = h.engine_stats();
                let _ = hist.record((t.elapsed().as_micros() as u64).max(1));
                std::thread::sleep(Duration::from_millis(20));
            }
            hist
        });
        Probe { stop, thread: Some(thread) }
    }

    fn finish(mut self) -> Histogram<u64> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap()
    }
}

/// The agent worker's timer counters over a phase, and the probe.
fn worker_window(h: &AgentHandle, seconds: u64, during: impl FnOnce()) -> serde_json::Value {
    let before = h.runtime_stats().unwrap();
    let probe = Probe::start(h);
    during();
    let hist = probe.finish();
    let after = h.runtime_stats().unwrap();
    json!({
        "seconds": seconds,
        "timers_fired": after.timers_fired - before.timers_fired,
        "timers_late_over_10ms": after.timer_lag_over_10ms - before.timer_lag_over_10ms,
        "timer_lag_max_since_start_ms": after.timer_lag_max_us as f64 / 1000.0,
        "worker_round_trip_us": {
            "p50": hist.value_at_quantile(0.5),
            "p99": hist.value_at_quantile(0.99),
            "max": hist.max(),
            "samples": hist.len(),
        },
    })
}

/// One keep-alive HTTP/1.1 GET; returns the body length.
fn http_get(s: &mut TcpStream, path: &str, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n").as_bytes())?;
    buf.clear();
    let mut chunk = [0u8; 64 * 1024];
    loop {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                return Ok(len);
            }
        }
    }
}

fn http_phase(addr: SocketAddr, seconds: u64, clients: usize) -> serde_json::Value {
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
                let mut s = TcpStream::connect(addr).unwrap();
                s.set_nodelay(true).unwrap();
                let mut buf = Vec::new();
                let mut bytes = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    let t = wall();
                    bytes = http_get(&mut s, "/v1/catalog/nodes", &mut buf).unwrap();
                    let _ = hist.record((t.elapsed().as_micros() as u64).max(1));
                }
                (hist, bytes)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    let mut all = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    let mut body = 0;
    for t in threads {
        let (h, b) = t.join().unwrap();
        all.add(&h).unwrap();
        body = b;
    }
    json!({
        "clients": clients,
        "requests": all.len(),
        "requests_per_s": all.len() as f64 / seconds as f64,
        "latency_us": {"p50": all.value_at_quantile(0.5), "p99": all.value_at_quantile(0.99), "max": all.max()},
        "body_bytes": body,
    })
}

/// Keeps `window` queries in flight over one UDP socket for `seconds`.
fn dns_flood(addr: SocketAddr, names: &[String], seconds: u64, window: usize) -> serde_json::Value {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let queries: Vec<Vec<u8>> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            agent::dns::answer::query(
                i as u16,
                &format!("{n}.node.consul"),
                simple_dns::TYPE::A,
                None,
            )
            .unwrap()
        })
        .collect();
    let (mut sent, mut answered, mut timeouts) = (0usize, 0u64, 0u64);
    let end = wall() + Duration::from_secs(seconds);
    let mut buf = [0u8; 1500];
    for _ in 0..window {
        sock.send_to(&queries[sent % queries.len()], addr).unwrap();
        sent += 1;
    }
    while wall() < end {
        match sock.recv_from(&mut buf) {
            Ok(_) => answered += 1,
            Err(_) => {
                timeouts += 1;
                for _ in 0..window {
                    let _ = sock.send_to(&queries[sent % queries.len()], addr);
                    sent += 1;
                }
                continue;
            }
        }
        let _ = sock.send_to(&queries[sent % queries.len()], addr);
        sent += 1;
    }
    json!({
        "in_flight": window,
        "answers": answered,
        "answers_per_s": answered as f64 / seconds as f64,
        "timeouts": timeouts,
    })
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n = arg(&args, "--members", 1000) as usize;
    let seconds = arg(&args, "--seconds", 10);
    raise_nofile();
    let started = wall();

    // The agent, as `serf agent` starts it.
    let agent_ip = "127.91.0.1";
    let flags: Vec<String> = [
        "-node=bench-agent".to_string(),
        format!("-bind={agent_ip}"),
        format!("-rpc-addr={agent_ip}:7373"),
        format!("-http-addr={agent_ip}:8500"),
        format!("-dns-addr={agent_ip}:8600"),
        "-tag=role=bench".to_string(),
    ]
    .to_vec();
    let loaded = agent::config::read_config(&flags).expect("config");
    let plan = agent::config::prepare_start(&loaded.config).expect("plan");
    let logger = Logger::new(Level::Err, Box::new(std::io::sink()));
    let agent = Agent::start(&loaded.config, &plan, logger).expect("agent");
    let h = agent.handle();
    let http = HttpServer::start(loaded.config.http_addr.unwrap(), h.clone()).expect("http");
    let dns = DnsServer::start(loaded.config.dns_addr.unwrap(), h.clone()).expect("dns");
    let agent_addr: SocketAddr = format!("{agent_ip}:7946").parse().unwrap();

    // N−1 peers on one worker, each joining the agent.
    let peers_rt =
        Runtime::<Serf>::new(RuntimeConfig { workers: 1, ..RuntimeConfig::default() }).unwrap();
    let mut peers = Vec::new();
    let mut names = Vec::new();
    for i in 1..n {
        let ip = Ipv4Addr::new(127, 91, 1 + (i / 250) as u8, 1 + (i % 250) as u8);
        let addr = SocketAddr::new(IpAddr::V4(ip), 7946);
        let name = format!("peer-{i:04}");
        let mut ml = MlConfig::lan();
        ml.name = name.clone();
        ml.advertise_addr = addr.ip();
        ml.advertise_port = 7946;
        let mut sc = SerfConfig::agent(ml);
        sc.tags.insert("role".into(), if i % 2 == 0 { "web" } else { "db" }.into());
        let p = peers_rt
            .spawn(addr, None, move |now, rng| Serf::new(sc, now, rng, None).unwrap())
            .unwrap();
        let _ = p.call(move |s, now| {
            s.join(now, &[agent_addr], true);
        });
        names.push(name);
        peers.push(p);
        if i % 50 == 0 {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let join_deadline = wall() + Duration::from_secs(300);
    loop {
        let (alive, ..) = h.view().snapshot().counts();
        if alive as usize >= n {
            break;
        }
        assert!(wall() < join_deadline, "only {alive} of {n} alive after 300 s");
        std::thread::sleep(Duration::from_millis(500));
    }
    let converged_s = started.elapsed().as_secs_f64();
    // Let the joins' gossip settle before measuring.
    std::thread::sleep(Duration::from_secs(5));
    let http_addr = http.local_addr();
    let dns_addr = dns.local_addr();

    eprintln!("{n} members after {converged_s:.1} s; idle phase");
    let idle = worker_window(&h, seconds, || std::thread::sleep(Duration::from_secs(seconds)));
    eprintln!("HTTP phase");
    let mut http_result = json!(null);
    let http_worker =
        worker_window(&h, seconds, || http_result = http_phase(http_addr, seconds, 4));
    eprintln!("DNS phase");
    let dns_alone = dns_flood(dns_addr, &names, seconds, 16);
    eprintln!("loaded phase: 1000 blocking queries + DNS flood");
    let index = h.view().index();
    let blockers: Vec<TcpStream> = (0..1000)
        .map(|_| {
            let mut s = TcpStream::connect(http_addr).unwrap();
            s.write_all(
                format!(
                    "GET /v1/catalog/nodes?index={index}&wait=10m HTTP/1.1\r\nHost: bench\r\n\r\n"
                )
                .as_bytes(),
            )
            .unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let waiting = h.counters().http_blocking.load(Ordering::Relaxed);
    let mut dns_loaded = json!(null);
    let loaded_worker = worker_window(&h, seconds, || {
        dns_loaded = dns_flood(dns_addr, &names, seconds, 16);
    });
    let still_waiting = h.counters().http_blocking.load(Ordering::Relaxed);
    drop(blockers);
    let rss_kib = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .unwrap_or(0);

    let rev = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let cpus = std::thread::available_parallelism().map_or(1, |c| c.get());
    let command = format!(
        "cargo run --release -p agent --example http_dns_bench -- --members {n} --seconds {seconds}"
    );
    let report = json!({
        "command": command,
        "git": rev,
        "cpus": cpus,
        "members": n,
        "converged_after_s": converged_s,
        "idle": idle,
        "http": {"catalog_nodes": http_result, "worker": http_worker},
        "dns": {"alone": dns_alone},
        "loaded": {
            "blocking_queries_waiting": waiting,
            "blocking_queries_still_waiting_at_end": still_waiting,
            "dns": dns_loaded,
            "worker": loaded_worker,
        },
        "process_rss_kib_at_end": rss_kib,
    });
    std::fs::create_dir_all("results").unwrap();
    std::fs::write("results/http-dns.json", serde_json::to_string_pretty(&report).unwrap() + "\n")
        .unwrap();
    std::fs::write("results/http-dns.md", markdown(&report)).unwrap();
    println!("{}", markdown(&report));
    http.shutdown();
    dns.shutdown();
    drop(peers);
    peers_rt.shutdown();
    agent.shutdown();
}

fn markdown(r: &serde_json::Value) -> String {
    let w = |p: &serde_json::Value| {
        format!(
            "{} | {} | {} | {} | {} | {}",
            p["timers_fired"],
            p["timers_late_over_10ms"],
            p["timer_lag_max_since_start_ms"],
            p["worker_round_trip_us"]["p50"],
            p["worker_round_trip_us"]["p99"],
            p["worker_round_trip_us"]["max"]
        )
    };
    let c = &r["http"]["catalog_nodes"];
    format!(
        "# HTTP API and DNS under load ({members} members)\n\n\
         Command (from the workspace root; writes this file and `http-dns.json`):\n\n\
         ```\n{command}\n```\n\n\
         git `{git}`, {cpus} CPUs shared by everything below. One process: {peers} Serf peers on one \
         engine worker and the agent (its own engine worker, event, HTTP and DNS threads), \
         started as `serf agent -http-addr -dns-addr` starts it; every peer joined the agent \
         ({members} alive after {conv:.1} s). Each phase ran {secs} s.\n\n\
         ## Throughput\n\n\
         | what | result |\n|---|---|\n\
         | `GET /v1/catalog/nodes` ({members} nodes, {body} bytes), {clients} keep-alive clients | {rps:.0} requests/s, p50 {p50} µs, p99 {p99} µs, max {max} µs |\n\
         | DNS `<node>.node.consul` A over UDP, 16 in flight | {qps:.0} answers/s ({to} timeouts) |\n\
         | the same DNS flood with 1000 blocking queries waiting | {qps2:.0} answers/s ({to2} timeouts) |\n\n\
         ## The agent's engine worker (gossip, probes, timers)\n\n\
         Timer counters are the runtime's own (`WorkerStats`); the largest lag is since the \
         agent started (the phases run in this order, so a larger value first seen in a later \
         row happened in that phase). The round trip is a command sent to the worker every \
         20 ms and timed until it answered: it waits in the same loop that fires the gossip \
         and probe timers.\n\n\
         | phase | timers fired | timers > 10 ms late | largest lag since start, ms | round trip p50 µs | p99 µs | max µs |\n\
         |---|---|---|---|---|---|---|\n\
         | idle | {idle} |\n\
         | HTTP load ({clients} clients on `/v1/catalog/nodes`) | {httpw} |\n\
         | {waiting} blocking queries waiting + DNS flood | {loaded} |\n\n\
         {still} of the blocking queries were still waiting at the end (none may return: \
         the view did not change). Process RSS at the end: {rss} KiB (all {members} \
         engines, the agent, and the load generators' buffers).\n",
        members = r["members"],
        command = r["command"].as_str().unwrap_or(""),
        git = r["git"].as_str().unwrap_or(""),
        cpus = r["cpus"],
        peers = r["members"].as_u64().unwrap_or(1) - 1,
        conv = r["converged_after_s"].as_f64().unwrap_or(0.0),
        secs = r["idle"]["seconds"],
        body = c["body_bytes"],
        clients = c["clients"],
        rps = c["requests_per_s"].as_f64().unwrap_or(0.0),
        p50 = c["latency_us"]["p50"],
        p99 = c["latency_us"]["p99"],
        max = c["latency_us"]["max"],
        qps = r["dns"]["alone"]["answers_per_s"].as_f64().unwrap_or(0.0),
        to = r["dns"]["alone"]["timeouts"],
        qps2 = r["loaded"]["dns"]["answers_per_s"].as_f64().unwrap_or(0.0),
        to2 = r["loaded"]["dns"]["timeouts"],
        idle = w(&r["idle"]),
        httpw = w(&r["http"]["worker"]),
        loaded = w(&r["loaded"]["worker"]),
        waiting = r["loaded"]["blocking_queries_waiting"],
        still = r["loaded"]["blocking_queries_still_waiting_at_end"],
        rss = r["process_rss_kib_at_end"],
    )
}
