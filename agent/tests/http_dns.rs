//! The HTTP API and the DNS interface as ordinary tools see them: real
//! `curl` and `dig` processes (Debian's `curl` and `dnsutils`) against a
//! mixed 5-agent cluster, 3 of ours and 2 Go agents (`/usr/bin/serf`).
//!
//! 1. The cluster forms (one Go agent joins through `PUT /v1/agent/join`):
//!    the catalog, the health checks and DNS list all five.
//! 2. A blocking query (`?index=N&wait=30s`) returns within 1 s of a join.
//! 3. `kill -9` of a Go agent: its check turns critical, the catalog still
//!    lists it, DNS no longer answers for it.
//! 4. SIGINT of one of ours (a graceful leave): gone from the catalog, the
//!    health checks and DNS.
//! 5. Bad input — an unknown path, a bad `index` (curl), a 1 MiB header
//!    and garbage bytes (a raw socket: curl refuses to send such a header),
//!    a truncated DNS packet and a DNS name of 500 labels (a raw UDP
//!    socket: dig refuses to build them) — gets an error, and the agent
//!    keeps gossiping (its received-datagram counter grows and the members
//!    stay alive).
//!
//! Without Go, curl or dig the test is skipped locally but fails with
//! `CI=true`. Addresses: 127.0.90.1–5.

mod common;

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;

const CURL: &str = "/usr/bin/curl";
const DIG: &str = "/usr/bin/dig";

/// Whether Go Serf, curl and dig are all installed (fails under CI if not).
fn tools_available() -> bool {
    if !go_available("http_dns") {
        return false;
    }
    for (tool, pkg) in [(CURL, "curl"), (DIG, "dnsutils")] {
        if !Path::new(tool).exists() {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("{tool} is required in CI (apt-get install -y {pkg})");
            }
            eprintln!("skipping http_dns: {tool} is not installed (apt-get install -y {pkg})");
            return false;
        }
    }
    true
}

/// `curl` output: status code and body.
fn curl(args: &[&str]) -> (u16, String) {
    let out = Command::new(CURL)
        .args(["-s", "--max-time", "40", "-o", "-", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

fn get_json(url: &str) -> serde_json::Value {
    let (code, body) = curl(&[url]);
    assert_eq!(code, 200, "GET {url}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {url}: {e}: {body}"))
}

/// `dig` at our DNS server: (status, answer lines).
fn dig(server: &str, name: &str, qtype: &str) -> (String, Vec<String>) {
    let out = Command::new(DIG)
        .args([&format!("@{server}"), "-p", "8600", "+time=2", "+tries=2", name, qtype])
        .output()
        .expect("run dig");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let status = text
        .lines()
        .find_map(|l| l.split("status: ").nth(1))
        .map(|s| s.split(',').next().unwrap_or("").to_string())
        .unwrap_or_else(|| format!("no answer: {text}"));
    let answers = text
        .split(";; ANSWER SECTION:")
        .nth(1)
        .map(|s| {
            let section = s.trim_start_matches('\n');
            let section = section.split("\n\n").next().unwrap_or("");
            section.lines().filter(|l| !l.is_empty()).map(str::to_string).collect()
        })
        .unwrap_or_default();
    (status, answers)
}

fn names(v: &serde_json::Value) -> Vec<String> {
    v.as_array().unwrap().iter().map(|n| n["Node"].as_str().unwrap().to_string()).collect()
}

/// Polls `f` every 200 ms until it is true or `timeout` passes.
fn until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = now() + timeout;
    while now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}

fn udp_received(http: &str) -> u64 {
    let m = get_json(&format!("{http}/v1/agent/metrics"));
    m["Counters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["Name"] == "memberlist.udp.received")
        .map(|c| c["Count"].as_u64().unwrap())
        .expect("memberlist.udp.received")
}

#[test]
fn curl_and_dig_follow_a_mixed_cluster() {
    if !tools_available() {
        return;
    }
    let dir = scratch("http-dns");
    let ip = |i: u8| format!("127.0.90.{i}");
    let outer =
        |i: u8| vec![format!("-http-addr={}:8500", ip(i)), format!("-dns-addr={}:8600", ip(i))];
    let o1x = outer(1);
    let mut o1_args: Vec<&str> = o1x.iter().map(String::as_str).collect();
    o1_args.extend(["-tag", "role=web"]);
    let o1 = GoAgent::ours("o1", &ip(1), &o1_args, &dir);
    let seed = format!("-join={}", ip(1));
    let o2x = outer(2);
    let mut o2_args: Vec<&str> = o2x.iter().map(String::as_str).collect();
    o2_args.extend(["-tag", "role=web", &seed]);
    let _o2 = GoAgent::ours("o2", &ip(2), &o2_args, &dir);
    let mut o3 = GoAgent::ours("o3", &ip(3), &["-tag", "role=db", &seed], &dir);
    let mut g1 = GoAgent::start("g1", &ip(4), &["-tag", "role=web"], &dir);
    let http = format!("http://{}:8500", ip(1));
    let dns = ip(1);

    // 1. A Go agent joins through the HTTP API; the catalog follows.
    let (code, body) = curl(&["-X", "PUT", &format!("{http}/v1/agent/join/{}", ip(4))]);
    assert_eq!(code, 200, "join: {body}");
    until("4 nodes in the catalog", Duration::from_secs(30), || {
        names(&get_json(&format!("{http}/v1/catalog/nodes"))) == ["g1", "o1", "o2", "o3"]
    });
    let (code, _) = curl(&[&format!("{http}/v1/agent/join/{}", ip(4))]);
    assert_eq!(code, 405, "join needs PUT");

    // 2. A blocking query returns within 1 s of the next join.
    let (_, head) = curl(&["-i", &format!("{http}/v1/catalog/nodes")]);
    let index: u64 = head
        .lines()
        .find_map(|l| l.strip_prefix("X-Consul-Index: "))
        .expect("X-Consul-Index")
        .trim()
        .parse()
        .unwrap();
    let blocked = Spawned::start(
        CURL,
        &["-s", "-i", &format!("{http}/v1/catalog/nodes?index={index}&wait=30s")],
        &[],
        &dir,
        "blocking",
    );
    std::thread::sleep(Duration::from_millis(500));
    assert!(blocked.stdout_now().is_empty(), "the blocking query answered before any change");
    let _g2 = GoAgent::start("g2", &ip(5), &["-tag", "role=db", &seed], &dir);
    let joined = now();
    let run = blocked.finish(Duration::from_secs(35));
    let took = now() - joined;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        took < Duration::from_secs(1) + Duration::from_millis(500),
        "blocking query took {took:?}"
    );
    let new_index: u64 = run
        .out
        .lines()
        .find_map(|l| l.strip_prefix("X-Consul-Index: "))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(new_index > index);
    until("5 nodes in the catalog", Duration::from_secs(30), || {
        names(&get_json(&format!("{http}/v1/catalog/nodes"))).len() == 5
    });
    let web = get_json(&format!("{http}/v1/catalog/nodes?node-meta=role:web"));
    assert_eq!(names(&web), ["g1", "o1", "o2"]);
    let node = get_json(&format!("{http}/v1/catalog/node/g1"));
    assert_eq!(node["Node"]["Address"], ip(4));
    assert_eq!(node["Node"]["Meta"]["role"], "web");
    let members = get_json(&format!("{http}/v1/agent/members"));
    assert_eq!(members.as_array().unwrap().len(), 5);
    assert!(members.as_array().unwrap().iter().all(|m| m["Status"] == 1 && m["Port"] == 7946));
    let me = get_json(&format!("{http}/v1/agent/self"));
    assert_eq!(me["Config"]["NodeName"], "o1");
    assert_eq!(me["Member"]["Name"], "o1");
    assert_eq!(get_json(&format!("{http}/v1/catalog/datacenters")), serde_json::json!(["dc1"]));
    assert_eq!(get_json(&format!("{http}/v1/status/leader")), serde_json::json!(""));
    assert_eq!(get_json(&format!("{http}/v1/status/peers")), serde_json::json!([]));
    let passing = get_json(&format!("{http}/v1/health/state/passing"));
    assert_eq!(passing.as_array().unwrap().len(), 5);
    assert!(passing.as_array().unwrap().iter().all(|c| c["CheckID"] == "serfHealth"));
    for (name, i) in [("o1", 1), ("o2", 2), ("o3", 3), ("g1", 4), ("g2", 5)] {
        let (status, answers) = dig(&dns, &format!("{name}.node.consul"), "A");
        assert_eq!(status, "NOERROR", "{name}");
        assert!(answers.iter().any(|a| a.ends_with(&ip(i))), "{name}: {answers:?}");
    }
    let (_, web) = dig(&dns, "web.role.tag.consul", "A");
    assert_eq!(web.len(), 3, "{web:?}");
    let (_, srv) = dig(&dns, "db.role.tag.dc1.consul", "SRV");
    assert_eq!(srv.len(), 2, "{srv:?}");
    assert!(srv.iter().all(|l| l.contains(" 7946 ")), "{srv:?}");
    let (_, txt) = dig(&dns, "g1.node.consul", "TXT");
    assert!(txt.iter().any(|l| l.contains("\"role=web\"")), "{txt:?}");
    // The second of our DNS servers answers too, over TCP as well.
    let (status, _) = dig(&ip(2), "o1.node.consul", "+tcp");
    assert_eq!(status, "NOERROR");

    // 3. kill -9 of a Go agent: critical, still listed, no DNS answer.
    g1.kill9();
    until("g1 critical", Duration::from_secs(60), || {
        let h = get_json(&format!("{http}/v1/health/node/g1"));
        h.as_array().is_some_and(|a| a.len() == 1 && a[0]["Status"] == "critical")
    });
    assert!(names(&get_json(&format!("{http}/v1/catalog/nodes"))).contains(&"g1".to_string()));
    let critical = get_json(&format!("{http}/v1/health/state/critical"));
    assert_eq!(names(&critical), ["g1"]);
    let (status, _) = dig(&dns, "g1.node.consul", "A");
    assert_eq!(status, "NXDOMAIN");
    let (_, web) = dig(&dns, "web.role.tag.consul", "A");
    assert_eq!(web.len(), 2, "failed g1 is not a web answer: {web:?}");

    // 4. Ctrl-C of one of ours: a graceful leave, gone everywhere.
    o3.signal(libc::SIGINT);
    assert_eq!(o3.wait_exit(Duration::from_secs(10)), Some(0));
    until("o3 gone from the catalog", Duration::from_secs(30), || {
        !names(&get_json(&format!("{http}/v1/catalog/nodes"))).contains(&"o3".to_string())
    });
    assert_eq!(get_json(&format!("{http}/v1/health/node/o3")), serde_json::json!([]));
    let (code, _) = curl(&[&format!("{http}/v1/catalog/node/o3")]);
    assert_eq!(code, 404);
    let (status, _) = dig(&dns, "o3.node.consul", "A");
    assert_eq!(status, "NXDOMAIN");

    // 5. Bad input gets an error; the agent keeps gossiping.
    let before = udp_received(&http);
    assert_eq!(curl(&[&format!("{http}/v1/nope")]).0, 404);
    assert_eq!(curl(&[&format!("{http}/v1/catalog/nodes?index=abc")]).0, 400);
    assert_eq!(curl(&[&format!("{http}/v1/catalog/nodes?index=1&wait=soon")]).0, 400);
    assert_eq!(curl(&[&format!("{http}/v1/health/state/sideways")]).0, 400);
    // curl will not send a 1 MiB header line, so this one goes raw.
    let mut huge = TcpStream::connect(format!("{}:8500", ip(1))).unwrap();
    huge.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let head = format!(
        "GET /v1/catalog/nodes HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(1 << 20)
    );
    let _ = huge.write_all(head.as_bytes());
    let mut reply = Vec::new();
    let _ = huge.read_to_end(&mut reply);
    assert!(reply.starts_with(b"HTTP/1.1 431 "), "{:?}", String::from_utf8_lossy(&reply));
    let mut garbage = TcpStream::connect(format!("{}:8500", ip(1))).unwrap();
    garbage.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    garbage.write_all(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 garbage\r\n\r\n").unwrap();
    let mut reply = Vec::new();
    let _ = garbage.read_to_end(&mut reply);
    assert!(reply.starts_with(b"HTTP/1.1 400 "), "{:?}", String::from_utf8_lossy(&reply));
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    // A truncated query: the 12-byte header claims a question that is cut off.
    let truncated = [0xab, 0xcd, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 3, b'f', b'o'];
    udp.send_to(&truncated, format!("{dns}:8600")).unwrap();
    let mut buf = [0u8; 512];
    let (n, _) = udp.recv_from(&mut buf).expect("an answer to the truncated packet");
    assert!(n >= 12 && buf[0] == 0xab && buf[1] == 0xcd && buf[3] & 0x0f == 1, "FORMERR");
    // 500 one-byte labels (a name may have at most 255 bytes).
    let mut long = vec![0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0];
    for _ in 0..500 {
        long.extend_from_slice(&[1, b'a']);
    }
    long.extend_from_slice(&[0, 0, 1, 0, 1]);
    udp.send_to(&long, format!("{dns}:8600")).unwrap();
    let (n, _) = udp.recv_from(&mut buf).expect("an answer to the 500-label query");
    assert!(n >= 12 && buf[0] == 0x12 && buf[3] & 0x0f == 1, "FORMERR");
    // Still serving and gossiping.
    let (status, _) = dig(&dns, "o2.node.consul", "A");
    assert_eq!(status, "NOERROR");
    until("gossip still flowing", Duration::from_secs(10), || udp_received(&http) > before + 5);
    let members = get_json(&format!("{http}/v1/agent/members"));
    let alive: Vec<&str> = members
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["Status"] == 1)
        .map(|m| m["Name"].as_str().unwrap())
        .collect();
    assert_eq!(alive, ["g2", "o1", "o2"], "{members}");
    // Metrics in both shapes.
    let (code, prom) = curl(&[&format!("{http}/v1/agent/metrics?format=prometheus")]);
    assert_eq!(code, 200);
    assert!(prom.contains("# TYPE serf_member_join_total counter"), "{prom}");
    assert!(prom.contains("memberlist_probeNode_count"), "{prom}");
    let m = get_json(&format!("{http}/v1/agent/metrics"));
    let count = |name: &str| {
        m["Counters"].as_array().unwrap().iter().find(|c| c["Name"] == name).unwrap()["Count"]
            .as_u64()
            .unwrap()
    };
    assert!(count("serf.member.join") >= 4);
    assert!(count("serf.member.failed") >= 1);
    assert!(count("agent.http.errors") >= 6);
    assert!(count("agent.dns.errors") >= 2);
    drop(o1);
}
