//! The RPC codec against every captured RPC connection in
//! `testdata/vectors/packets.tsv` (channel `rpc`: one row per TCP direction,
//! the concatenated msgpack objects).
//!
//! Each connection is replayed the way the two real peers read it: the
//! client direction as header [+ body] per request (rpc.md §4), the server
//! direction as reply header [+ body] and then, for streams, monitors and
//! queries, header + record pairs (§5, §6). Every object must decode with
//! its typed decoder and re-encode to exactly the captured bytes — Go's map
//! order included, because decoded maps keep their wire order.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use agent::rpc::codec::*;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/vectors");

fn hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

/// Decodes one `T` from the front of `buf`, checks that re-encoding gives
/// the same bytes, and returns the value and its length.
fn exact<T: Decode + Encode + std::fmt::Debug>(buf: &[u8], what: &str) -> (T, usize) {
    let (v, n) = T::from_slice(buf).unwrap_or_else(|e| panic!("{what}: decode failed: {e}"));
    let again = v.to_vec().unwrap();
    assert_eq!(hex_of(&again), hex_of(&buf[..n]), "{what}: re-encoding differs for {v:?}");
    (v, n)
}

fn hex_of(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn request_body(cmd: Command, buf: &[u8], what: &str) -> usize {
    match cmd {
        Command::Handshake => exact::<HandshakeRequest>(buf, what).1,
        Command::Auth => exact::<AuthRequest>(buf, what).1,
        Command::Event => exact::<EventRequest>(buf, what).1,
        Command::ForceLeave => exact::<ForceLeaveRequest>(buf, what).1,
        Command::Join => exact::<JoinRequest>(buf, what).1,
        Command::MembersFiltered => exact::<MembersFilteredRequest>(buf, what).1,
        Command::Tags => exact::<TagsRequest>(buf, what).1,
        Command::Stream => exact::<StreamRequest>(buf, what).1,
        Command::Monitor => exact::<MonitorRequest>(buf, what).1,
        Command::Stop => exact::<StopRequest>(buf, what).1,
        Command::Query => exact::<QueryRequest>(buf, what).1,
        Command::Respond => exact::<RespondRequest>(buf, what).1,
        Command::InstallKey | Command::UseKey | Command::RemoveKey => {
            exact::<KeyRequest>(buf, what).1
        }
        Command::GetCoordinate => exact::<CoordinateRequest>(buf, what).1,
        Command::Members | Command::Leave | Command::ListKeys | Command::Stats => {
            unreachable!("{cmd:?} has no request body")
        }
    }
}

fn response_body(cmd: Command, buf: &[u8], what: &str) -> usize {
    match cmd {
        Command::Join => exact::<JoinResponse>(buf, what).1,
        Command::Members | Command::MembersFiltered => exact::<MembersResponse>(buf, what).1,
        Command::InstallKey | Command::UseKey | Command::RemoveKey | Command::ListKeys => {
            exact::<KeyResponse>(buf, what).1
        }
        Command::Stats => exact::<StatsResponse>(buf, what).1,
        Command::GetCoordinate => exact::<CoordinateResponse>(buf, what).1,
        _ => unreachable!("{cmd:?} has no response body"),
    }
}

/// Returns the record's length and whether it ends the query.
fn record(cmd: Command, buf: &[u8], what: &str) -> (usize, bool) {
    match cmd {
        Command::Stream => {
            let (_, n) = exact::<StreamRecord>(buf, what);
            // The generic view the CLI's monitor uses must agree.
            let (_, m) = exact::<Value>(buf, what);
            assert_eq!(n, m);
            (n, false)
        }
        Command::Monitor => (exact::<LogRecord>(buf, what).1, false),
        Command::Query => {
            let (r, n) = exact::<QueryRecord>(buf, what);
            (n, r.kind == query_record::DONE)
        }
        _ => unreachable!(),
    }
}

#[derive(Default)]
struct Conn {
    to_server: Vec<u8>,
    to_client: Vec<u8>,
}

#[test]
fn every_captured_rpc_object_roundtrips_byte_for_byte() {
    let text = std::fs::read_to_string(format!("{DIR}/packets.tsv")).unwrap();
    let mut conns: BTreeMap<(String, String), Conn> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let f: Vec<&str> = line.split('\t').collect();
        if f.get(3) != Some(&"rpc") {
            continue;
        }
        let (scenario, src, dst, bytes) = (f[0], f[4], f[5], hex(f[6]));
        let to_server = dst.ends_with(":7373");
        let client = if to_server { src } else { dst };
        let c = conns.entry((scenario.to_string(), client.to_string())).or_default();
        if to_server {
            c.to_server.extend(bytes);
        } else {
            c.to_client.extend(bytes);
        }
    }
    assert!(conns.len() > 100, "only {} RPC connections", conns.len());

    let mut requests_seen = BTreeSet::new();
    let mut reply_bodies_seen = BTreeSet::new();
    let mut records_seen = BTreeSet::new();
    let mut objects = 0usize;
    for ((scenario, client), c) in &conns {
        // Client direction.
        let mut cmds: HashMap<u64, Command> = HashMap::new();
        let mut pos = 0;
        while pos < c.to_server.len() {
            let what = format!("{scenario} {client} C→S @{pos}");
            let (h, n) = exact::<RequestHeader>(&c.to_server[pos..], &what);
            pos += n;
            objects += 1;
            let cmd = Command::from_name(&h.command).unwrap_or_else(|| panic!("{what}: {h:?}"));
            cmds.insert(h.seq, cmd);
            requests_seen.insert(cmd.name());
            if cmd.has_request_body() {
                pos += request_body(cmd, &c.to_server[pos..], &format!("{what} {cmd:?} body"));
                objects += 1;
            }
        }
        // Server direction.
        let mut answered: HashMap<u64, bool> = HashMap::new(); // seq → streaming live
        let mut pos = 0;
        while pos < c.to_client.len() {
            let what = format!("{scenario} {client} S→C @{pos}");
            let (h, n) = exact::<ResponseHeader>(&c.to_client[pos..], &what);
            pos += n;
            objects += 1;
            let cmd = *cmds.get(&h.seq).unwrap_or_else(|| panic!("{what}: unknown seq {h:?}"));
            match answered.get(&h.seq).copied() {
                None => {
                    let live = cmd.is_streaming() && h.error.is_empty();
                    answered.insert(h.seq, live);
                    if cmd.has_response_body() && h.error != errors::AUTH_REQUIRED {
                        pos += response_body(cmd, &c.to_client[pos..], &format!("{what} {cmd:?}"));
                        reply_bodies_seen.insert(cmd.name());
                        objects += 1;
                    }
                }
                Some(true) => {
                    let (n, done) = record(cmd, &c.to_client[pos..], &format!("{what} record"));
                    pos += n;
                    objects += 1;
                    records_seen.insert(cmd.name());
                    if done {
                        answered.insert(h.seq, false);
                    }
                }
                Some(false) => {
                    // Only Go's duplicate "Authentication required" lands here.
                    assert_eq!(h.error, errors::AUTH_REQUIRED, "{what}: unexpected {h:?}");
                }
            }
        }
    }

    let all: BTreeSet<&str> = Command::ALL.iter().map(|c| c.name()).collect();
    assert_eq!(requests_seen, all, "every command appears in the captures");
    let with_body: BTreeSet<&str> =
        Command::ALL.iter().filter(|c| c.has_response_body()).map(|c| c.name()).collect();
    assert_eq!(reply_bodies_seen, with_body);
    assert_eq!(records_seen, BTreeSet::from(["monitor", "query", "stream"]));
    assert!(objects > 1000, "only {objects} objects");
}

#[test]
fn examples_jsonl_rpc_objects_roundtrip() {
    // The one-per-kind examples, decoded by kind name alone.
    let text = std::fs::read_to_string(format!("{DIR}/examples.jsonl")).unwrap();
    let mut n = 0;
    for line in text.lines() {
        let Some(kind) = field(line, "kind") else { continue };
        let Some(rest) = kind.strip_prefix("rpc ") else { continue };
        let (cmd, part) = rest.split_once(' ').unwrap();
        let cmd = Command::from_name(cmd).unwrap();
        let bytes = hex(&field(line, "hex").unwrap());
        let used = match part {
            "request_header" => exact::<RequestHeader>(&bytes, &kind).1,
            "response_header" => exact::<ResponseHeader>(&bytes, &kind).1,
            "request_body" => request_body(cmd, &bytes, &kind),
            "response_body" if cmd.is_streaming() => record(cmd, &bytes, &kind).0,
            "response_body" => response_body(cmd, &bytes, &kind),
            other => panic!("unknown part {other}"),
        };
        assert_eq!(used, bytes.len(), "{kind}");
        n += 1;
    }
    assert!(n >= 70, "only {n} examples");
}

/// The string value of `"key": "..."` in a JSON line (no escapes needed here).
fn field(line: &str, key: &str) -> Option<String> {
    let pat = format!("\"{key}\": \"");
    let start = line.find(&pat)? + pat.len();
    let end = line[start..].find('"')? + start;
    Some(line[start..end].to_string())
}
