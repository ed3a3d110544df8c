//! The captured Go traffic in `testdata/vectors/`, loaded for the wire
//! tests: the integration tests include this module as `mod common;`, the
//! crate's unit tests as `crate::testdata` (see `src/lib.rs`).
//!
//! Each test uses a part of it, so unused items are expected.
#![allow(dead_code)]

/// The directory of the captures.
pub const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/vectors");

/// Decodes lowercase or uppercase hex (no separators).
pub fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len() % 2 == 0, "odd hex length");
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

/// Decodes standard base64 (padding optional).
pub fn base64(s: &str) -> Vec<u8> {
    const ABC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let (mut out, mut acc, mut bits) = (Vec::new(), 0u32, 0u32);
    for c in s.bytes().filter(|&c| c != b'=') {
        let v = ABC.iter().position(|&a| a == c).unwrap_or_else(|| panic!("not base64: {s}"));
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

/// The keyring keys the captured agents used (K1, K2 of `keys.txt`).
pub fn capture_keys() -> Vec<Vec<u8>> {
    let keys: Vec<Vec<u8>> = std::fs::read_to_string(format!("{DIR}/keys.txt"))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| base64(l.trim()))
        .collect();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0][..4], [0xff, 0x66, 0x8b, 0xa5], "K1 decodes to its README hex");
    keys
}

/// One line of `examples.jsonl`: a captured message of one kind.
pub struct Example {
    /// e.g. `memberlist 2 ackResp`, `serf 9 relay`, `memberlist-stream …`.
    pub kind: String,
    /// The raw bytes (`hex`).
    pub bytes: Vec<u8>,
    /// The whole record (`ref`, `decoded`, …).
    pub json: serde_json::Value,
}

/// Every example, in file order.
pub fn examples() -> Vec<Example> {
    std::fs::read_to_string(format!("{DIR}/examples.jsonl"))
        .unwrap()
        .lines()
        .map(|line| {
            let json: serde_json::Value = serde_json::from_str(line).unwrap();
            Example {
                kind: json["kind"].as_str().unwrap().to_owned(),
                bytes: unhex(json["hex"].as_str().unwrap()),
                json,
            }
        })
        .collect()
}

/// The first example of `kind`.
pub fn example(kind: &str) -> Example {
    examples()
        .into_iter()
        .find(|e| e.kind == kind)
        .unwrap_or_else(|| panic!("no example of kind {kind}"))
}

/// One line of `packets.tsv`: a datagram or stream read as it crossed the wire.
pub struct Packet {
    pub scenario: String,
    pub line: usize,
    /// `udp` or `tcp`.
    pub proto: String,
    pub channel: String,
    pub bytes: Vec<u8>,
}

/// Every captured packet, in file order.
pub fn packets() -> Vec<Packet> {
    std::fs::read_to_string(format!("{DIR}/packets.tsv"))
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            Packet {
                scenario: f[0].into(),
                line: f[1].parse().unwrap(),
                proto: f[2].into(),
                channel: f[3].into(),
                bytes: unhex(f[6]),
            }
        })
        .collect()
}
