//! The codec against real Go Serf traffic (`testdata/vectors/`, extracted
//! from `shared/vectors` by `scripts/extract-vectors.py`).
//!
//! For every captured UDP datagram and TCP stream direction:
//! * every layer opens (decryption with the captured keys, CRC, LZW) and
//!   every message in it decodes, including the Serf messages inside user
//!   messages and the coordinates inside acks;
//! * re-encoding each decoded message reproduces its bytes exactly;
//! * sealing the decoded payload again through our pipeline, with the same
//!   key and nonce, reproduces the whole captured datagram or stream byte
//!   for byte — so our compression decision, CRC and encryption match Go's.

use wire::coordinate::Coordinate;
use wire::crypto::Keyring;
use wire::memberlist::{Message, MessageType};
use wire::msgpack::{Dialect, Writer};
use wire::packet::{self, PacketCodec, SealOptions, HEADROOM, PACKET_BUF};
use wire::serf::SerfMessage;
use wire::stream::{frame_len, StreamCodec, StreamMessage};

mod common;
use common::{capture_keys, examples, packets};

fn encode_with(f: impl FnOnce(&mut Writer<'_>)) -> Vec<u8> {
    let mut buf = vec![0xA5u8; 1 << 20];
    let mut w = Writer::new(&mut buf, Dialect::Gossip);
    f(&mut w);
    let n = w.len();
    assert!(buf[n..n + 16].iter().all(|&b| b == 0xA5), "encoder wrote past its length");
    buf.truncate(n);
    buf
}

#[derive(Default, Debug)]
struct Counts {
    messages: usize,
    serf: usize,
    coordinates: usize,
    compressed: usize,
    crc: usize,
    compound: usize,
}

/// Re-encodes one serf message and checks it matches.
fn check_serf(body: &[u8], ctx: &str, c: &mut Counts) {
    let m = SerfMessage::decode(body).unwrap_or_else(|e| panic!("{ctx}: serf decode: {e}"));
    let again = encode_with(|w| m.encode(w).unwrap());
    assert_eq!(again, body, "{ctx}: serf re-encode differs");
    c.serf += 1;
    if let SerfMessage::Relay(r) = m {
        check_serf(r.inner, ctx, c);
    }
}

/// Peels compound/compress layers of a plaintext payload, checking every
/// leaf; returns the payload with compression removed (what was sealed).
fn check_payload(codec: &mut PacketCodec, bytes: &[u8], ctx: &str, c: &mut Counts) {
    match MessageType::try_from(bytes[0]).unwrap() {
        MessageType::Compound => {
            c.compound += 1;
            let parts: Vec<Vec<u8>> =
                packet::compound_parts(bytes).unwrap().map(|p| p.to_vec()).collect();
            let refs: Vec<&[u8]> = parts.iter().map(|p| &p[..]).collect();
            let mut out = vec![0u8; bytes.len()];
            let n = packet::write_compound(&mut out, &refs).unwrap();
            assert_eq!(&out[..n], bytes, "{ctx}: compound re-encode differs");
            for p in &parts {
                check_payload(codec, p, ctx, c);
            }
        }
        MessageType::HasCrc => {
            let mut b = bytes.to_vec();
            let range = PacketCodec::open(&mut b, None).unwrap_or_else(|e| panic!("{ctx}: {e}"));
            check_payload(codec, &b[range], ctx, c);
        }
        MessageType::Compress => {
            c.compressed += 1;
            let plain = codec.inflate(&bytes[1..]).unwrap().to_vec();
            check_payload(codec, &plain, ctx, c);
        }
        _ => {
            let m = Message::decode(bytes).unwrap_or_else(|e| panic!("{ctx}: decode: {e}"));
            let again = encode_with(|w| m.encode(w).unwrap());
            assert_eq!(again, bytes, "{ctx}: re-encode differs");
            c.messages += 1;
            match m {
                Message::User(body) => check_serf(body, ctx, c),
                Message::Ack(a) => {
                    if let Some(p) = a.payload.filter(|p| !p.is_empty()) {
                        let coord = Coordinate::decode_ping_payload(p).unwrap();
                        let again = encode_with(|w| coord.encode_ping_payload(w).unwrap());
                        assert_eq!(again, p, "{ctx}: coordinate re-encode differs");
                        c.coordinates += 1;
                    }
                }
                _ => {}
            }
        }
    }
}

/// Strips one compress layer, if present, for re-sealing.
fn uncompressed(codec: &mut PacketCodec, payload: &[u8]) -> Vec<u8> {
    if payload[0] == MessageType::Compress as u8 {
        codec.inflate(&payload[1..]).unwrap().to_vec()
    } else {
        payload.to_vec()
    }
}

/// Which single key opens `bytes` (a UDP envelope or a stream body), if any.
fn key_for(keys: &[Vec<u8>], bytes: &[u8], aad: &[u8]) -> Option<usize> {
    keys.iter().position(|k| {
        let ring = Keyring::new(k).unwrap();
        ring.open_in_place(&mut bytes.to_vec(), aad).is_ok()
    })
}

#[test]
fn every_captured_datagram_round_trips() {
    let keys = capture_keys();
    let mut codec = PacketCodec::new();
    let mut c = Counts::default();
    let (mut datagrams, mut encrypted) = (0, 0);
    for r in packets().iter().filter(|r| r.proto == "udp") {
        let ctx = format!("{}:{}", r.scenario, r.line);
        let compress = r.scenario != "s5_nocompress";
        // Layer 1: encryption (the encrypted scenarios' datagrams start with version 1).
        let key = if matches!(&*r.scenario, "s2_encrypted" | "s4_rpc") {
            Some(key_for(&keys, &r.bytes, &[]).unwrap_or_else(|| panic!("{ctx}: no key opens it")))
        } else {
            None
        };
        let ring = key.map(|k| Keyring::new(&keys[k]).unwrap());
        let mut buf = r.bytes.clone();
        let plain = match &ring {
            Some(ring) => {
                let range = ring.open_in_place(&mut buf, &[]).unwrap();
                buf[range].to_vec()
            }
            None => buf.clone(),
        };
        // Layer 2: CRC, checked by the real receive path.
        let had_crc = plain[0] == MessageType::HasCrc as u8;
        c.crc += usize::from(had_crc);
        let mut again = r.bytes.clone();
        let range =
            PacketCodec::open(&mut again, ring.as_ref()).unwrap_or_else(|e| panic!("{ctx}: {e}"));
        let payload = again[range].to_vec();
        // Layers 3+: every message decodes and re-encodes exactly.
        check_payload(&mut codec, &payload, &ctx, &mut c);
        let mut walked = 0;
        codec.walk(&payload, &mut |m| {
            m.unwrap_or_else(|e| panic!("{ctx}: walk: {e}"));
            walked += 1;
        });
        assert!(walked > 0);
        // The whole datagram, rebuilt by our sealing pipeline.
        let inner = uncompressed(&mut codec, &payload);
        let mut out = vec![0u8; PACKET_BUF];
        out[HEADROOM..HEADROOM + inner.len()].copy_from_slice(&inner);
        let nonce: [u8; 12] =
            if key.is_some() { r.bytes[1..13].try_into().unwrap() } else { [0; 12] };
        let opts = SealOptions { compress, crc: had_crc };
        let sealed = codec.seal(&mut out, inner.len(), opts, ring.as_ref(), nonce).unwrap();
        assert_eq!(&out[sealed], &r.bytes[..], "{ctx}: sealed datagram differs");
        datagrams += 1;
        encrypted += usize::from(key.is_some());
    }
    eprintln!("datagrams={datagrams} encrypted={encrypted} {c:?}");
    assert_eq!(datagrams, 1822);
    assert_eq!(encrypted, 491);
    assert!(
        c.compressed > 40
            && c.crc > 800
            && c.compound > 400
            && c.serf > 1000
            && c.coordinates > 300
    );
}

#[test]
fn every_captured_stream_round_trips() {
    let keys = capture_keys();
    let mut streams = StreamCodec::new();
    let mut codec = PacketCodec::new();
    let mut c = Counts::default();
    let (mut checked, mut encrypted, mut push_pulls) = (0, 0, 0);
    for r in packets().iter().filter(|r| r.channel == "memberlist-tcp") {
        let ctx = format!("{}:{}", r.scenario, r.line);
        assert_eq!(frame_len(&r.bytes).unwrap(), Some(r.bytes.len()), "{ctx}: framing");
        for cut in [1, r.bytes.len() / 2, r.bytes.len() - 1] {
            assert_eq!(frame_len(&r.bytes[..cut]).unwrap(), None, "{ctx}: incomplete at {cut}");
        }
        let enc = r.bytes[0] == MessageType::Encrypt as u8;
        let key = if enc {
            match key_for(&keys, &r.bytes[5..], &r.bytes[..5]) {
                Some(k) => Some(k),
                None => panic!("{ctx}: no key opens the stream"),
            }
        } else {
            None
        };
        let ring = key.map(|k| Keyring::new(&keys[k]).unwrap());
        // What was inside the envelope: compressed or not?
        let inner_first = match &ring {
            Some(ring) => {
                let mut b = r.bytes[5..].to_vec();
                let range = ring.open_in_place(&mut b, &r.bytes[..5]).unwrap();
                b[range][0]
            }
            None => r.bytes[0],
        };
        let compressed = inner_first == MessageType::Compress as u8;
        c.compressed += usize::from(compressed);
        let mut buf = r.bytes.clone();
        let mut inflate = Vec::new();
        let msg = streams
            .open(&mut buf, ring.as_ref(), &mut inflate)
            .unwrap_or_else(|e| panic!("{ctx}: {e}"));
        let plain = encode_with(|w| msg.encode(w).unwrap());
        match msg {
            StreamMessage::PushPull(pp) => {
                push_pulls += 1;
                assert_eq!(pp.states.len(), pp.states.iter().count());
                if !pp.user_state.is_empty() {
                    check_serf(pp.user_state, &ctx, &mut c);
                }
            }
            StreamMessage::Ping(_) | StreamMessage::Ack(_) | StreamMessage::Err(_) => {}
            StreamMessage::User(_) => panic!("{ctx}: no stream user messages were captured"),
        }
        // Rebuild the stream through our pipeline with the captured nonce.
        let nonce: [u8; 12] = if enc { r.bytes[6..18].try_into().unwrap() } else { [0; 12] };
        let mut out = Vec::new();
        streams.seal(&plain, &mut out, compressed, ring.as_ref(), nonce).unwrap();
        assert_eq!(out, r.bytes, "{ctx}: sealed stream differs");
        // The decompressed body also decodes through the packet-level helpers.
        if compressed && !enc {
            let p = codec.inflate(&r.bytes[1..]).unwrap().to_vec();
            assert_eq!(p, plain);
        }
        checked += 1;
        encrypted += usize::from(enc);
    }
    eprintln!("streams={checked} encrypted={encrypted} push_pulls={push_pulls} {c:?}");
    assert_eq!(checked, 72);
    assert!(encrypted >= 10 && push_pulls >= 39 && c.serf >= 39);
}

#[test]
fn every_example_decodes_and_reencodes() {
    let mut codec = PacketCodec::new();
    let mut c = Counts::default();
    let mut seen = 0;
    for ex in examples() {
        let (kind, bytes) = (ex.kind.as_str(), &ex.bytes[..]);
        let ctx = format!("{} ({kind})", ex.json["ref"].as_str().unwrap());
        if kind.starts_with("memberlist ") {
            check_payload(&mut codec, bytes, &ctx, &mut c);
        } else if kind.starts_with("memberlist-stream") {
            if bytes[0] == MessageType::Encrypt as u8 {
                // Envelopes are covered by the stream test with their keys.
                assert_eq!(frame_len(bytes).unwrap(), Some(bytes.len()));
            } else if bytes[0] == MessageType::Compress as u8 {
                let plain = codec.inflate(&bytes[1..]).unwrap().to_vec();
                let m = StreamMessage::decode(&plain).unwrap();
                assert_eq!(encode_with(|w| m.encode(w).unwrap()), plain, "{ctx}");
            } else {
                let m = StreamMessage::decode(bytes).unwrap_or_else(|e| panic!("{ctx}: {e}"));
                assert_eq!(encode_with(|w| m.encode(w).unwrap()), bytes, "{ctx}");
            }
        } else if kind.starts_with("serf ") {
            check_serf(bytes, &ctx, &mut c);
        } else {
            continue; // rpc and encryption kinds are covered elsewhere
        }
        seen += 1;
    }
    eprintln!("examples={seen} {c:?}");
    assert!(seen >= 30, "{seen}");
}
