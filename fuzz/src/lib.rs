//! Checks shared by the fuzz targets.
//!
//! The codec decodes leniently (any integer width, str8 or bin for byte
//! fields, nil for zero values, unknown keys skipped), so re-encoding fuzz
//! input need not give the input back. What must hold for every input that
//! decodes: re-encoding succeeds, the result decodes again, and encoding
//! that gives the same bytes (one round normalises, the second is a fixed
//! point). Lazily decoded lists and maps must iterate fully, since decoding
//! validated them.

use std::sync::LazyLock;

use engine::wire::coordinate::Coordinate;
use engine::wire::crypto::Keyring;
use engine::wire::memberlist::{Message, PushPull};
use engine::wire::msgpack::{encoded_len, Dialect, Writer};
use engine::wire::serf::{Filter, SerfMessage, Tags};
use engine::wire::stream::StreamMessage;
use engine::wire::Result;

/// The AES-256 keys of the encrypted captures (`testdata/vectors/keys.txt`),
/// so corpus seeds taken from those captures decrypt.
pub const KEYS: [[u8; 32]; 2] = [
    [
        0xff, 0x66, 0x8b, 0xa5, 0x77, 0x73, 0x7e, 0xd0, 0x67, 0x02, 0xad, 0x58, 0x70, 0xf3, 0x84,
        0x0e, 0x99, 0xdf, 0x44, 0xe0, 0x2c, 0x4a, 0xd5, 0x9d, 0x30, 0xa4, 0xae, 0x1e, 0x42, 0x22,
        0x79, 0xd2,
    ],
    [
        0xa9, 0x34, 0x99, 0xa3, 0x73, 0x3e, 0x36, 0x8b, 0x57, 0x92, 0x8e, 0x30, 0x8d, 0x4e, 0x8e,
        0x9c, 0xe1, 0x8c, 0x07, 0xcf, 0x6f, 0x61, 0x9b, 0x4d, 0x8c, 0x7e, 0xac, 0x2f, 0x16, 0x4f,
        0x54, 0x2e,
    ],
];

/// A keyring holding both captured keys.
pub static KEYRING: LazyLock<Keyring> =
    LazyLock::new(|| Keyring::from_keys(&[&KEYS[0], &KEYS[1]]).expect("valid keys"));

/// Encodes with `f` into a buffer sized by the counting writer. Encoding a
/// decoded value must not fail, and both writers must agree on the length.
pub fn encode(f: impl Fn(&mut Writer<'_>) -> Result<()>) -> Vec<u8> {
    let n = encoded_len(Dialect::Gossip, &f).expect("counting a decoded value failed");
    let mut out = vec![0u8; n];
    let mut w = Writer::new(&mut out, Dialect::Gossip);
    f(&mut w).expect("encoding a decoded value failed");
    assert_eq!(w.len(), n, "counting writer disagrees with the real one");
    out
}

/// A decoded memberlist leaf: re-encodes to a fixed point that decodes to
/// an equal value; what it carries (Serf message, coordinate, tags) too.
pub fn check_message(m: &Message<'_>) {
    let once = encode(|w| m.encode(w));
    let again = Message::decode(&once).expect("re-encoded message does not decode");
    assert_eq!(&again, m, "re-encoded message decodes differently");
    assert_eq!(encode(|w| again.encode(w)), once, "second encoding differs");
    match *m {
        Message::User(body) => {
            if let Ok(s) = SerfMessage::decode(body) {
                check_serf(&s);
            }
        }
        Message::Ack(a) => {
            if let Some(p) = a.payload {
                check_coordinate(p);
            }
        }
        Message::Alive(a) => {
            if let Some(meta) = a.meta {
                check_tags(meta);
            }
        }
        _ => {}
    }
}

/// Walks every lazy view in a Serf message; each must yield all its items.
fn touch_serf(m: &SerfMessage<'_>) {
    match *m {
        SerfMessage::Query(q) => {
            if let Some(l) = q.filters {
                assert_eq!(l.iter().count(), l.len());
            }
            for f in q.filters() {
                if let Ok(Filter::Node(names)) = f {
                    assert_eq!(names.iter().count(), names.len());
                }
            }
        }
        SerfMessage::ConflictResponse(c) => {
            if let Some(t) = c.member.and_then(|m| m.tags) {
                assert_eq!(t.iter().count(), t.len());
            }
        }
        SerfMessage::KeyResponse(k) => {
            if let Some(l) = k.keys {
                assert_eq!(l.iter().count(), l.len());
            }
        }
        SerfMessage::PushPull(p) => {
            if let Some(s) = p.status_ltimes {
                assert_eq!(s.iter().count(), s.len());
            }
            if let Some(l) = p.left_members {
                assert_eq!(l.iter().count(), l.len());
            }
            if let Some(ring) = p.events {
                assert_eq!(ring.iter().count(), ring.len());
                for b in ring.iter().flatten() {
                    if let Some(e) = b.events {
                        assert_eq!(e.iter().count(), e.len());
                    }
                }
            }
        }
        SerfMessage::Relay(r) => {
            if let Ok(inner) = SerfMessage::decode(r.inner) {
                touch_serf(&inner);
            }
        }
        _ => {}
    }
}

/// A decoded Serf message: its views iterate fully, and re-encoding reaches
/// a fixed point after one round.
pub fn check_serf(m: &SerfMessage<'_>) {
    touch_serf(m);
    let once = encode(|w| m.encode(w));
    let again = SerfMessage::decode(&once).expect("re-encoded Serf message does not decode");
    touch_serf(&again);
    assert_eq!(encode(|w| again.encode(w)), once, "second encoding differs");
}

/// A decoded stream message (and the Serf state in a push-pull).
pub fn check_stream(m: &StreamMessage<'_>) {
    if let StreamMessage::PushPull(p) = m {
        check_push_pull(p);
    }
    let once = encode(|w| m.encode(w));
    let again = StreamMessage::decode(&once).expect("re-encoded stream message does not decode");
    assert_eq!(encode(|w| again.encode(w)), once, "second encoding differs");
}

fn check_push_pull(p: &PushPull<'_>) {
    assert_eq!(p.states.iter().count(), p.states.len());
    for s in p.states.iter() {
        if let Some(meta) = s.meta {
            check_tags(meta);
        }
    }
    if let Ok(s) = SerfMessage::decode(p.user_state) {
        check_serf(&s);
    }
}

/// Node meta that decodes as tags re-encodes to a fixed point.
pub fn check_tags(meta: &[u8]) {
    let Ok(t) = Tags::decode(meta) else { return };
    let n = t.iter().count();
    if let Tags::Map(m) = t {
        assert_eq!(n, m.len());
        let once = encode(|w| engine::wire::serf::write_tags(w, m.iter()));
        let Ok(Tags::Map(again)) = Tags::decode(&once) else { panic!("re-encoded tags") };
        assert_eq!(encode(|w| engine::wire::serf::write_tags(w, again.iter())), once);
    }
}

/// An ack payload that decodes as a coordinate re-encodes to a fixed point
/// (compared as bytes: NaN components are allowed on the wire).
pub fn check_coordinate(payload: &[u8]) {
    let Ok(c) = Coordinate::decode_ping_payload(payload) else { return };
    let once = encode(|w| c.encode_ping_payload(w));
    let again = Coordinate::decode_ping_payload(&once).expect("re-encoded coordinate");
    assert_eq!(encode(|w| again.encode_ping_payload(w)), once);
}
