//! The Vivaldi network coordinate Serf carries in every direct ack
//! (`shared/protocol/serf.md` §10).
//!
//! A Serf node answers each direct UDP ping with an ack whose `Payload` is
//! `0x01` (the ping version) followed by the msgpack map
//! `{Adjustment: f64, Error: f64, Height: f64, Vec: [f64; 8]}`: keys in that
//! order, every float a 9-byte float64 (`0xcb`), gossip dialect. The RPC
//! `get-coordinate` reply carries the same map (without the version byte) in
//! the RPC dialect, with `Vec: nil` and zeros when the node is unknown.
//!
//! This module only moves the four fields between bytes and [`Coordinate`];
//! the Vivaldi arithmetic lives in `proto::coordinate`.

use super::fields::{message, Decode, Encode, F64};
use super::msgpack::{Reader, Writer};
use super::{Error, Result};

/// The byte in front of the coordinate in an ack payload (Serf's
/// `PingVersion`). A payload starting with anything else is rejected.
pub const PING_VERSION: u8 = 1;

/// Components in [`Coordinate::vec`]. Serf's default, and the only
/// dimensionality a 0.9.4 agent accepts from its peers.
pub const DIMENSIONALITY: usize = 8;

/// Encoded size of an ack payload: version byte, fixmap, three
/// `key + float64` pairs, `"Vec"` + fixarray of eight float64.
pub const PING_PAYLOAD_LEN: usize = 130;

/// A Vivaldi network coordinate. All distances are in seconds.
///
/// `vec` is the Euclidean part, `height` models the access link, and
/// `adjustment` is a learned offset added to distances; `error` is the
/// (dimensionless) confidence, 1.5 for a node that has measured nothing.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Coordinate {
    /// The Euclidean position, seconds per axis.
    pub vec: [f64; DIMENSIONALITY],
    /// Estimated relative error of this coordinate (0 = certain).
    pub error: f64,
    /// Offset added to distances involving this node, seconds.
    pub adjustment: f64,
    /// Non-Euclidean "access link" height, seconds.
    pub height: f64,
}

impl Coordinate {
    /// True when every component is finite (neither NaN nor ±∞) — Serf's
    /// validity test for a peer's coordinate and for its own after an update.
    pub fn is_valid(&self) -> bool {
        self.vec.iter().all(|v| v.is_finite())
            && self.error.is_finite()
            && self.adjustment.is_finite()
            && self.height.is_finite()
    }

    /// Decodes a non-empty ack payload (version byte + map).
    ///
    /// Call it only when the ack's `Payload` is non-empty: Serf ignores an
    /// empty payload (coordinates disabled on the peer), while this function
    /// reports it as [`Error::Truncated`].
    ///
    /// Errors: [`Error::PingVersion`] for a first byte other than
    /// [`PING_VERSION`]; [`Error::Dimensionality`] when `Vec` is absent, nil,
    /// or not exactly [`DIMENSIONALITY`] long (Go decodes any length and then
    /// rejects the mismatch); any msgpack error for a malformed map. Like Go's
    /// decoder, keys are matched by exact name, unknown keys are skipped,
    /// integers and float32 are accepted for the floats, and bytes after the
    /// map are ignored. The result may hold NaN or ±∞: check
    /// [`Coordinate::is_valid`] (the Vivaldi client does) before using it.
    pub fn decode_ping_payload(payload: &[u8]) -> Result<Coordinate> {
        let mut r = Reader::new(payload);
        let version = r.byte()?;
        if version != PING_VERSION {
            return Err(Error::PingVersion(version));
        }
        Self::decode_map(&mut r)?.ok_or(Error::Dimensionality)
    }

    /// Decodes the bare coordinate map at `r` (no version byte), consuming
    /// exactly one msgpack value.
    ///
    /// Returns `None` when `Vec` is nil or absent — the RPC `get-coordinate`
    /// reply's "unknown" form; the other fields are then ignored.
    /// A `Vec` of any length other than [`DIMENSIONALITY`] (including an
    /// empty array) is [`Error::Dimensionality`]; a nil map reads as `None`.
    pub fn decode_map(r: &mut Reader<'_>) -> Result<Option<Coordinate>> {
        let m = WireCoordinate::decode_from(r)?;
        Ok(m.vec.map(|vec| Coordinate {
            vec,
            error: m.error,
            adjustment: m.adjustment,
            height: m.height,
        }))
    }

    /// Writes the ack payload — [`PING_VERSION`] then the map — into `w`
    /// (which should be a gossip-dialect writer; the map has no strings whose
    /// encoding differs between dialects). Always [`PING_PAYLOAD_LEN`] bytes;
    /// [`Error::NoSpace`] if `w` has less room (partial bytes may have been
    /// written).
    pub fn encode_ping_payload(&self, w: &mut Writer<'_>) -> Result<()> {
        w.byte(PING_VERSION)?;
        self.encode_map(w)
    }

    /// Writes the bare map `{Adjustment, Error, Height, Vec}` in `w`'s
    /// dialect, keys in that order and every float as float64, as Go does.
    /// Used inside the ack payload and as `Coord` in the RPC
    /// `get-coordinate` reply.
    pub fn encode_map(&self, w: &mut Writer<'_>) -> Result<()> {
        WireCoordinate {
            adjustment: self.adjustment,
            error: self.error,
            height: self.height,
            vec: Some(self.vec),
        }
        .encode(w)
    }

    /// Writes the map Go sends for an unknown node (or with coordinates
    /// disabled): `{Adjustment: 0.0, Error: 0.0, Height: 0.0, Vec: nil}`,
    /// the `Coord` of a `get-coordinate` reply with `Ok: false`.
    pub fn encode_unknown_map(w: &mut Writer<'_>) -> Result<()> {
        WireCoordinate::default().encode(w)
    }
}

message! {
    /// Go's `coordinate.Coordinate` as it travels; `vec: None` is a nil or
    /// absent `Vec`.
    #[derive(Clone, Copy, Debug, Default)]
    struct WireCoordinate {
        b"Adjustment" => adjustment: f64 as F64,
        b"Error" => error: f64 as F64,
        b"Height" => height: f64 as F64,
        b"Vec" => vec: Option<[f64; DIMENSIONALITY]> as Components,
    }
}

/// The `Vec` field codec: nil, or an array of exactly [`DIMENSIONALITY`]
/// floats (any other length is [`Error::Dimensionality`], found at the
/// array header). Written as eight float64.
struct Components;

impl Decode<'_, Option<[f64; DIMENSIONALITY]>> for Components {
    #[inline]
    fn decode(r: &mut Reader<'_>) -> Result<Option<[f64; DIMENSIONALITY]>> {
        match r.array_len_or_nil()? {
            None => Ok(None),
            Some(DIMENSIONALITY) => {
                let mut vec = [0.0; DIMENSIONALITY];
                for slot in vec.iter_mut() {
                    *slot = r.f64()?;
                }
                Ok(Some(vec))
            }
            Some(_) => Err(Error::Dimensionality),
        }
    }
}

impl Encode<Option<[f64; DIMENSIONALITY]>> for Components {
    #[inline]
    fn encode(w: &mut Writer<'_>, v: Option<[f64; DIMENSIONALITY]>) -> Result<()> {
        match v {
            Some(vec) => {
                w.array_len(DIMENSIONALITY)?;
                vec.iter().try_for_each(|&c| w.f64(c))
            }
            None => w.nil(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::arithmetic_side_effects)]
mod tests {
    use super::super::memberlist::{Ack, Body};
    use super::super::msgpack::{encoded_len, read_struct, Dialect};
    use super::*;

    use crate::testdata::{example, packets, unhex};

    /// Encodes with `f` into a buffer pre-filled with a marker byte and
    /// checks nothing beyond the reported length was touched.
    fn enc(d: Dialect, f: impl Fn(&mut Writer<'_>) -> Result<()>) -> Vec<u8> {
        let mut buf = vec![0xA5u8; 512];
        let mut w = Writer::new(&mut buf, d);
        f(&mut w).unwrap();
        let n = w.len();
        assert_eq!(encoded_len(d, &f).unwrap(), n);
        assert!(buf[n..].iter().all(|&b| b == 0xA5));
        buf.truncate(n);
        buf
    }

    /// The `Payload` bytes of an uncompressed, unencrypted ackResp packet.
    fn ack_payload(packet: &[u8]) -> Option<Vec<u8>> {
        let (&ty, body) = packet.split_first()?;
        if ty != 2 {
            return None;
        }
        let payload = Ack::decode(body).unwrap().payload;
        payload.filter(|p| !p.is_empty()).map(<[u8]>::to_vec)
    }

    fn fresh() -> Coordinate {
        Coordinate { vec: [0.0; 8], error: 1.5, adjustment: 0.0, height: 1e-5 }
    }

    #[test]
    fn captured_fresh_ack_payload_roundtrips() {
        let ex = example("memberlist 2 ackResp");
        let hex = ex.json["decoded"]["body"]["msgpack"]["Payload"]["$str_hex"].as_str().unwrap();
        let payload = unhex(hex);
        assert_eq!(payload.len(), PING_PAYLOAD_LEN);
        // The same bytes as the Payload field inside the whole captured packet.
        assert_eq!(ack_payload(&ex.bytes).unwrap(), payload);

        let c = Coordinate::decode_ping_payload(&payload).unwrap();
        assert_eq!(c, fresh());
        assert!(c.is_valid());
        assert_eq!(enc(Dialect::Gossip, |w| c.encode_ping_payload(w)), payload);
    }

    #[test]
    fn every_captured_udp_ack_payload_roundtrips() {
        let mut checked = 0;
        let mut moved = 0;
        for p in packets().iter().filter(|p| p.proto == "udp") {
            // Only bare ackResp datagrams (0x02); compressed / encrypted /
            // CRC-wrapped packets belong to other layers' tests.
            let Some(payload) = ack_payload(&p.bytes) else { continue };
            let c = Coordinate::decode_ping_payload(&payload)
                .unwrap_or_else(|e| panic!("{} line {}: {e}", p.scenario, p.line));
            assert!(c.is_valid());
            let again = enc(Dialect::Gossip, |w| c.encode_ping_payload(w));
            assert_eq!(again, payload, "{} line {}", p.scenario, p.line);
            checked += 1;
            if c != fresh() {
                moved += 1;
            }
        }
        assert!(checked >= 250, "only {checked} ack payloads found");
        // Most captured coordinates have already moved away from the origin.
        assert!(moved > 100, "{moved}");
    }

    #[test]
    fn captured_rpc_get_coordinate_reply_roundtrips() {
        let ex = example("rpc get-coordinate response_body");
        let body = ex.bytes;
        let mut r = Reader::new(&body);
        let mut coord = None;
        let mut ok = false;
        read_struct(&mut r, |k, r| {
            match k {
                b"Coord" => coord = Coordinate::decode_map(r)?,
                b"Ok" => ok = r.bool()?,
                _ => r.skip()?,
            }
            Ok(())
        })
        .unwrap();
        r.finish().unwrap();
        assert!(ok);
        let c = coord.unwrap();
        // serde_json's default float parsing may be one ulp off; the
        // byte-exact re-encoding below is the exact check.
        let want = &ex.json["decoded"]["body"]["msgpack"]["Coord"];
        let close = |got: f64, want: &serde_json::Value| {
            let want = want.as_f64().unwrap();
            assert!((got - want).abs() <= 1e-15 * want.abs(), "{got} vs {want}");
        };
        close(c.adjustment, &want["Adjustment"]);
        close(c.error, &want["Error"]);
        close(c.height, &want["Height"]);
        for (i, v) in c.vec.iter().enumerate() {
            close(*v, &want["Vec"][i]);
        }

        let again = enc(Dialect::Rpc, |w| {
            w.map_len(2)?;
            w.key("Coord")?;
            c.encode_map(w)?;
            w.key("Ok")?;
            w.bool(true)
        });
        assert_eq!(again, body);
    }

    #[test]
    fn unknown_coordinate_map() {
        let b = enc(Dialect::Rpc, Coordinate::encode_unknown_map);
        let mut want = vec![0x84, 0xaa];
        want.extend_from_slice(b"Adjustment");
        want.extend_from_slice(&[0xcb, 0, 0, 0, 0, 0, 0, 0, 0, 0xa5]);
        want.extend_from_slice(b"Error");
        want.extend_from_slice(&[0xcb, 0, 0, 0, 0, 0, 0, 0, 0, 0xa6]);
        want.extend_from_slice(b"Height");
        want.extend_from_slice(&[0xcb, 0, 0, 0, 0, 0, 0, 0, 0, 0xa3]);
        want.extend_from_slice(b"Vec");
        want.push(0xc0);
        assert_eq!(b, want);
        let mut r = Reader::new(&b);
        assert_eq!(Coordinate::decode_map(&mut r), Ok(None));
        r.finish().unwrap();
        // A nil map is unknown too.
        assert_eq!(Coordinate::decode_map(&mut Reader::new(&[0xc0])), Ok(None));
    }

    #[test]
    fn rejects_wrong_version_and_dimensionality() {
        let c = Coordinate { vec: [0.25; 8], error: 0.5, adjustment: -1e-4, height: 2e-5 };
        let good = enc(Dialect::Gossip, |w| c.encode_ping_payload(w));

        let mut bad = good.clone();
        bad[0] = 2;
        assert_eq!(Coordinate::decode_ping_payload(&bad), Err(Error::PingVersion(2)));
        bad[0] = 0;
        assert_eq!(Coordinate::decode_ping_payload(&bad), Err(Error::PingVersion(0)));

        // Vec of 7 or 9 elements, an empty Vec, a nil Vec, no Vec at all.
        for n in [0usize, 1, 7, 9, 16] {
            let b = enc(Dialect::Gossip, |w| {
                w.byte(PING_VERSION)?;
                w.map_len(2)?;
                w.key("Error")?;
                w.f64(1.0)?;
                w.key("Vec")?;
                w.array_len(n)?;
                (0..n).try_for_each(|_| w.f64(0.0))
            });
            assert_eq!(Coordinate::decode_ping_payload(&b), Err(Error::Dimensionality), "{n}");
        }
        let nil_vec = enc(Dialect::Gossip, |w| {
            w.byte(PING_VERSION)?;
            Coordinate::encode_unknown_map(w)
        });
        assert_eq!(Coordinate::decode_ping_payload(&nil_vec), Err(Error::Dimensionality));
        assert_eq!(
            Coordinate::decode_ping_payload(&[PING_VERSION, 0x80]),
            Err(Error::Dimensionality)
        );

        // Vec of the wrong msgpack type.
        let b = enc(Dialect::Gossip, |w| {
            w.byte(PING_VERSION)?;
            w.map_len(1)?;
            w.key("Vec")?;
            w.str("nope")
        });
        assert_eq!(Coordinate::decode_ping_payload(&b), Err(Error::WrongType));
        assert_eq!(Coordinate::decode_ping_payload(&[]), Err(Error::Truncated));
    }

    #[test]
    fn every_truncation_is_an_error() {
        let c = Coordinate { vec: [1.0; 8], error: 0.5, adjustment: 0.0, height: 1e-5 };
        let good = enc(Dialect::Gossip, |w| c.encode_ping_payload(w));
        for n in 0..good.len() {
            assert!(Coordinate::decode_ping_payload(&good[..n]).is_err(), "prefix {n}");
        }
        assert_eq!(Coordinate::decode_ping_payload(&good), Ok(c));
    }

    #[test]
    fn decoding_is_lenient_like_go() {
        // Keys out of order, an unknown key, integer and float32 values, and
        // trailing bytes after the map (Go's decoder reads one value and stops).
        let b = enc(Dialect::Gossip, |w| {
            w.byte(PING_VERSION)?;
            w.map_len(5)?;
            w.key("Vec")?;
            w.array_len(8)?;
            (0..8).try_for_each(|i| w.sint(i - 3))?;
            w.key("Extra")?;
            w.array_len(2)?;
            w.str("x")?;
            w.nil()?;
            w.key("Height")?;
            w.raw(&[0xca, 0x3f, 0xc0, 0, 0])?; // float32 1.5
            w.key("Error")?;
            w.uint(1)?;
            w.key("Adjustment")?;
            w.nil()?;
            w.raw(&[0xde, 0xad])
        });
        let c = Coordinate::decode_ping_payload(&b).unwrap();
        assert_eq!(
            c,
            Coordinate {
                vec: [-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0, 4.0],
                error: 1.0,
                adjustment: 0.0,
                height: 1.5
            }
        );
        // Keys are case-sensitive: "height" is an unknown key.
        let b = enc(Dialect::Gossip, |w| {
            w.byte(PING_VERSION)?;
            w.map_len(2)?;
            w.key("height")?;
            w.f64(9.0)?;
            w.key("Vec")?;
            w.array_len(8)?;
            (0..8).try_for_each(|_| w.f64(0.0))
        });
        assert_eq!(Coordinate::decode_ping_payload(&b).unwrap().height, 0.0);
    }

    #[test]
    fn non_finite_values_decode_but_are_not_valid() {
        let mut c = fresh();
        c.vec[3] = f64::NAN;
        let b = enc(Dialect::Gossip, |w| c.encode_ping_payload(w));
        let d = Coordinate::decode_ping_payload(&b).unwrap();
        assert!(d.vec[3].is_nan());
        assert!(!d.is_valid());
        for bad in [f64::INFINITY, f64::NEG_INFINITY, f64::NAN] {
            let mut c = fresh();
            assert!(c.is_valid());
            c.height = bad;
            assert!(!c.is_valid());
            let mut c = fresh();
            c.error = bad;
            assert!(!c.is_valid());
            let mut c = fresh();
            c.adjustment = bad;
            assert!(!c.is_valid());
        }
    }

    #[test]
    fn encoding_reports_no_space() {
        let c = fresh();
        assert_eq!(
            encoded_len(Dialect::Gossip, |w| c.encode_ping_payload(w)),
            Ok(PING_PAYLOAD_LEN)
        );
        let mut buf = [0u8; PING_PAYLOAD_LEN - 1];
        let mut w = Writer::new(&mut buf, Dialect::Gossip);
        assert_eq!(c.encode_ping_payload(&mut w), Err(Error::NoSpace));
        let mut buf = [0u8; PING_PAYLOAD_LEN];
        let mut w = Writer::new(&mut buf, Dialect::Gossip);
        c.encode_ping_payload(&mut w).unwrap();
        assert_eq!(w.len(), PING_PAYLOAD_LEN);
    }
}
