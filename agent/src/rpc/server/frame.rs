//! Incremental framing of the msgpack objects an RPC client sends.
//!
//! The RPC protocol has no length prefix: a request is one msgpack header
//! object, optionally followed by one body object (rpc.md §2). The server
//! therefore has to know when a complete object has arrived before it can
//! decode it. [`Framer`] answers that question on a growing buffer, keeping
//! its position between calls, so every byte is examined once however the
//! object is split across reads (re-running [`Reader::skip`] over the whole
//! buffer after every read would cost O(n²) for an object trickled in small
//! pieces).
//!
//! It accepts exactly what [`Reader::skip`] accepts (the framing tests check
//! this on every prefix of captured and random inputs): the same nesting
//! limit ([`MAX_DEPTH`]), the same unused marker `0xc1`. On top of that it
//! enforces a size limit, rejecting an object as soon as a declared length
//! or the bytes consumed so far exceed it — before the data arrives.
//!
//! [`Reader::skip`]: engine::wire::msgpack::Reader::skip

use engine::wire::msgpack::MAX_DEPTH;
use engine::wire::Error as WireError;

/// Levels the framer can track: items nest at most `MAX_DEPTH - 1` deep,
/// plus the top level.
const LEVELS: usize = MAX_DEPTH as usize + 1;

/// What [`Framer::scan`] found at the front of the buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scan {
    /// One complete object occupies the first `n` bytes.
    Complete(usize),
    /// More bytes are needed.
    Partial,
    /// The bytes can never form an acceptable object: `WrongType` (marker
    /// `0xc1`), `TooDeep` (nesting) or `TooLarge` (over the size limit).
    Invalid(WireError),
}

/// Scanning state for one object at the front of a buffer that only grows
/// (bytes are appended between calls; the prefix never changes).
#[derive(Clone, Debug)]
pub struct Framer {
    /// Largest acceptable object, bytes.
    limit: usize,
    /// Bytes of the current object consumed so far.
    pos: usize,
    /// Values still to read at each open level, innermost last.
    pending: [u64; LEVELS],
    /// Open levels; 0 once the object is complete.
    depth: usize,
}

impl Framer {
    /// A framer for objects of at most `limit` bytes.
    pub fn new(limit: usize) -> Self {
        let mut f = Framer { limit, pos: 0, pending: [0; LEVELS], depth: 0 };
        f.reset();
        f
    }

    /// Starts over for the next object (call after consuming a complete one
    /// from the front of the buffer).
    pub fn reset(&mut self) {
        self.pos = 0;
        self.depth = 1;
        self.pending[0] = 1;
    }

    /// Continues scanning `buf`, which starts with the current object and
    /// holds at least the bytes of the previous call. After `Complete` or
    /// `Invalid`, call [`Framer::reset`] before scanning another object.
    pub fn scan(&mut self, buf: &[u8]) -> Scan {
        loop {
            if self.depth == 0 {
                return Scan::Complete(self.pos);
            }
            // Items at this level nest `depth - 1` deep (the top level is 0).
            if self.depth > MAX_DEPTH as usize {
                return Scan::Invalid(WireError::TooDeep);
            }
            if self.pos >= self.limit {
                return Scan::Invalid(WireError::TooLarge);
            }
            let Some(&m) = buf.get(self.pos) else { return Scan::Partial };
            let after_marker = self.pos.saturating_add(1);
            let rest = buf.get(after_marker..).unwrap_or(&[]);
            let item = match item_shape(m, rest) {
                Shape::Item(i) => i,
                Shape::NeedLength(n) => {
                    return if after_marker.saturating_add(n) > self.limit {
                        Scan::Invalid(WireError::TooLarge)
                    } else {
                        Scan::Partial
                    };
                }
                Shape::Bad => return Scan::Invalid(WireError::WrongType),
            };
            let end = after_marker.saturating_add(item.header).saturating_add(item.payload);
            if end > self.limit {
                return Scan::Invalid(WireError::TooLarge);
            }
            if end > buf.len() {
                return Scan::Partial;
            }
            self.pos = end;
            if let Some(top) = self.depth.checked_sub(1).and_then(|i| self.pending.get_mut(i)) {
                *top = top.saturating_sub(1);
            }
            if item.children > 0 {
                // `depth <= MAX_DEPTH` was checked above, so this slot exists.
                if let Some(slot) = self.pending.get_mut(self.depth) {
                    *slot = item.children;
                    self.depth += 1;
                }
            }
            while self.depth > 0 && self.pending.get(self.depth - 1) == Some(&0) {
                self.depth -= 1;
            }
        }
    }
}

/// What [`Skipper::feed`] reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skip {
    /// The object ended; bytes after it belong to the next one.
    Done,
    /// Every byte given was consumed (or the next item's length bytes have
    /// not arrived); feed more.
    More,
    /// The bytes can never form an object (`WrongType` or `TooDeep`).
    Invalid(WireError),
}

/// Reads past one object of any size without keeping it: the bytes of an
/// oversized request body are consumed as they arrive, so it costs CPU, not
/// memory, and the request can still be answered with an error.
#[derive(Clone, Copy, Debug)]
pub struct Skipper {
    pending: [u64; LEVELS],
    depth: usize,
    /// Data bytes of the current string, binary or extension still to skip.
    payload_left: u64,
}

impl Default for Skipper {
    fn default() -> Self {
        let mut pending = [0; LEVELS];
        pending[0] = 1;
        Skipper { pending, depth: 1, payload_left: 0 }
    }
}

impl Skipper {
    /// Consumes a prefix of `buf` (the next bytes of the object); returns
    /// how many bytes it consumed and where it got to.
    pub fn feed(&mut self, buf: &[u8]) -> (usize, Skip) {
        let mut pos = 0usize;
        loop {
            if self.payload_left > 0 {
                let left = buf.len().saturating_sub(pos);
                let take = usize::try_from(self.payload_left).unwrap_or(usize::MAX).min(left);
                pos += take;
                self.payload_left -= take as u64;
                if self.payload_left > 0 {
                    return (pos, Skip::More);
                }
            }
            if self.depth == 0 {
                return (pos, Skip::Done);
            }
            if self.depth > MAX_DEPTH as usize {
                return (pos, Skip::Invalid(WireError::TooDeep));
            }
            let Some(&m) = buf.get(pos) else { return (pos, Skip::More) };
            let rest = buf.get(pos + 1..).unwrap_or(&[]);
            let item = match item_shape(m, rest) {
                Shape::Item(i) => i,
                Shape::NeedLength(_) => return (pos, Skip::More),
                Shape::Bad => return (pos, Skip::Invalid(WireError::WrongType)),
            };
            pos += 1 + item.header;
            self.payload_left = item.payload as u64;
            if let Some(top) = self.depth.checked_sub(1).and_then(|i| self.pending.get_mut(i)) {
                *top = top.saturating_sub(1);
            }
            if item.children > 0 {
                if let Some(slot) = self.pending.get_mut(self.depth) {
                    *slot = item.children;
                    self.depth += 1;
                }
            }
            while self.depth > 0 && self.pending.get(self.depth - 1) == Some(&0) {
                self.depth -= 1;
            }
        }
    }
}

/// The layout of one value after its marker byte.
struct Item {
    /// Length bytes after the marker.
    header: usize,
    /// Data bytes after the length.
    payload: usize,
    /// Values nested inside (array items, map keys and values).
    children: u64,
}

enum Shape {
    Item(Item),
    /// The marker's `n` length bytes have not all arrived.
    NeedLength(usize),
    /// `0xc1`, never used.
    Bad,
}

/// Reads a big-endian length of `n` bytes from the front of `rest`.
fn length(rest: &[u8], n: usize) -> Option<u64> {
    let b = rest.get(..n)?;
    Some(b.iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x)))
}

fn item_shape(m: u8, rest: &[u8]) -> Shape {
    let fixed = |payload: usize| Shape::Item(Item { header: 0, payload, children: 0 });
    // A length-prefixed value: `n` length bytes, then `extra` + length data
    // bytes (ext has a type byte), or `per` × length nested values.
    let sized = |n: usize, extra: u64, per: u64| match length(rest, n) {
        None => Shape::NeedLength(n),
        Some(len) if per > 0 => {
            Shape::Item(Item { header: n, payload: 0, children: len.saturating_mul(per) })
        }
        Some(len) => Shape::Item(Item {
            header: n,
            payload: usize::try_from(len.saturating_add(extra)).unwrap_or(usize::MAX),
            children: 0,
        }),
    };
    match m {
        0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => fixed(0),
        0x80..=0x8f => {
            Shape::Item(Item { header: 0, payload: 0, children: u64::from(m & 0x0f) * 2 })
        }
        0x90..=0x9f => Shape::Item(Item { header: 0, payload: 0, children: u64::from(m & 0x0f) }),
        0xa0..=0xbf => fixed(usize::from(m & 0x1f)),
        0xc4 | 0xd9 => sized(1, 0, 0),
        0xc5 | 0xda => sized(2, 0, 0),
        0xc6 | 0xdb => sized(4, 0, 0),
        0xc7 => sized(1, 1, 0),
        0xc8 => sized(2, 1, 0),
        0xc9 => sized(4, 1, 0),
        0xca => fixed(4),
        0xcb => fixed(8),
        0xcc | 0xd0 => fixed(1),
        0xcd | 0xd1 => fixed(2),
        0xce | 0xd2 => fixed(4),
        0xcf | 0xd3 => fixed(8),
        // fixext 1, 2, 4, 8, 16: a type byte and 2^(m - 0xd4) data bytes.
        0xd4..=0xd8 => fixed(1 + (1usize << (m - 0xd4))),
        0xdc => sized(2, 0, 1),
        0xdd => sized(4, 0, 1),
        0xde => sized(2, 0, 2),
        0xdf => sized(4, 0, 2),
        0xc1 => Shape::Bad,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::wire::msgpack::Reader;

    // No limit: the framer must then agree with `Reader::skip` exactly.
    const BIG: usize = usize::MAX;

    /// What `Reader::skip` says about `buf`, in framer terms.
    fn reference(buf: &[u8]) -> Scan {
        let mut r = Reader::new(buf);
        match r.skip() {
            Ok(()) => Scan::Complete(r.position()),
            Err(WireError::Truncated) => Scan::Partial,
            Err(e) => Scan::Invalid(e),
        }
    }

    /// Feeds `buf` in pieces of `step` bytes to one framer and returns the
    /// first non-partial answer (or `Partial`).
    fn fed(buf: &[u8], step: usize) -> Scan {
        let mut f = Framer::new(BIG);
        let mut end = 0;
        loop {
            end = (end + step).min(buf.len());
            let s = f.scan(&buf[..end]);
            if s != Scan::Partial || end == buf.len() {
                return s;
            }
        }
    }

    fn objects() -> Vec<Vec<u8>> {
        use crate::rpc::codec::*;
        let mut out = vec![
            RequestHeader { command: "members-filtered".into(), seq: 2 }.to_vec().unwrap(),
            QueryRequest {
                filter_nodes: Some(vec!["a".into(), "b".repeat(40)]),
                filter_tags: Some(vec![("role".into(), "web".into())]),
                name: "q".into(),
                payload: Some(vec![7; 300]),
                relay_factor: 2,
                request_ack: true,
                timeout_ns: -5,
            }
            .to_vec()
            .unwrap(),
            CoordinateResponse {
                coord: Coordinate { vec: Some(vec![0.5; 8]), ..Default::default() },
                ok: true,
            }
            .to_vec()
            .unwrap(),
        ];
        // Every scalar and length form, and ext values.
        out.push(vec![0xcb, 1, 2, 3, 4, 5, 6, 7, 8]);
        out.push(vec![0xd8, 1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
        out.push(vec![0xc7, 2, 9, 0xaa, 0xbb]);
        out.push(vec![0xc8, 0, 1, 9, 0xaa]);
        out.push(vec![0xc9, 0, 0, 0, 0, 9]);
        out.push(vec![0xdc, 0, 2, 0xc0, 0xd1, 1, 2]);
        out.push(vec![0xdf, 0, 0, 0, 1, 0xa1, b'k', 0xdd, 0, 0, 0, 0]);
        out.push([vec![0xc6, 0, 0, 1, 0], vec![0x55; 256]].concat());
        out.push([vec![0xda, 1, 0], vec![b'x'; 256]].concat());
        // Nesting right at the limit, and one deeper.
        out.push([vec![0x91; MAX_DEPTH as usize - 1], vec![0x01]].concat());
        out.push([vec![0x91; MAX_DEPTH as usize], vec![0x01]].concat());
        out.push([vec![0x91; MAX_DEPTH as usize], vec![0x90]].concat());
        out.push(vec![0x92, 0x80, 0xc1]);
        out
    }

    #[test]
    fn agrees_with_reader_skip_on_every_prefix_and_split() {
        for obj in objects() {
            let mut with_tail = obj.clone();
            with_tail.extend_from_slice(&[0x81, 0xa1, b'x', 0x01]);
            for end in 0..=with_tail.len() {
                let prefix = &with_tail[..end];
                assert_eq!(Framer::new(BIG).scan(prefix), reference(prefix), "{prefix:02x?}");
            }
            for step in [1, 2, 3, 7, 64] {
                assert_eq!(fed(&with_tail, step), reference(&with_tail), "step {step}");
            }
        }
    }

    #[test]
    fn agrees_with_reader_skip_on_random_bytes() {
        // A small LCG: deterministic, no dependency.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (x >> 33) as u8
        };
        for round in 0..20_000 {
            let len = usize::from(next() % 40);
            let mut buf: Vec<u8> = (0..len).map(|_| next()).collect();
            if round % 3 == 0 {
                // Bias towards containers and short lengths.
                for b in buf.iter_mut().step_by(3) {
                    *b = [0x92, 0x81, 0xa1, 0x00, 0xc4, 0x01, 0xdc][usize::from(*b % 7)];
                }
            }
            assert_eq!(Framer::new(BIG).scan(&buf), reference(&buf), "{buf:02x?}");
            assert_eq!(fed(&buf, 1), reference(&buf), "bytewise {buf:02x?}");
        }
    }

    #[test]
    fn declared_lengths_over_the_limit_fail_before_the_data() {
        let mut f = Framer::new(1024);
        // str32 of 4 GiB: rejected from its five header bytes.
        assert_eq!(f.scan(&[0xdb, 0xff, 0xff, 0xff, 0xff]), Scan::Invalid(WireError::TooLarge));
        // A length whose bytes have not arrived, but whose header alone fits.
        let mut f = Framer::new(1024);
        assert_eq!(f.scan(&[0xdb, 0x00]), Scan::Partial);
        // Many small items adding up past the limit.
        let mut f = Framer::new(1024);
        let mut buf = vec![0xdd, 0, 1, 0, 0];
        buf.extend([0x01; 2000]);
        assert_eq!(f.scan(&buf), Scan::Invalid(WireError::TooLarge));
        // Exactly at the limit is fine.
        let mut f = Framer::new(1024);
        let obj = [vec![0xc5, 0x03, 0xfd], vec![0; 1021]].concat();
        assert_eq!(obj.len(), 1024);
        assert_eq!(f.scan(&obj), Scan::Complete(1024));
    }

    #[test]
    fn the_skipper_agrees_with_the_framer_on_every_split() {
        for obj in objects() {
            let mut with_next = obj.clone();
            with_next.extend_from_slice(&[0x93, 1, 2, 3]);
            for step in [1, 2, 3, 7, 64, usize::MAX] {
                let mut sk = Skipper::default();
                let mut consumed = 0;
                let mut fed = 0usize;
                let outcome = loop {
                    fed = fed.saturating_add(step).min(with_next.len());
                    let (n, r) = sk.feed(&with_next[consumed..fed]);
                    consumed += n;
                    if r != Skip::More || fed == with_next.len() {
                        break r;
                    }
                };
                match reference(&obj) {
                    Scan::Complete(n) => {
                        assert_eq!(outcome, Skip::Done, "{obj:02x?} step {step}");
                        assert_eq!(consumed, n, "{obj:02x?} step {step}");
                    }
                    Scan::Invalid(e) => assert_eq!(outcome, Skip::Invalid(e), "{obj:02x?}"),
                    Scan::Partial => unreachable!("objects() are complete or invalid"),
                }
            }
        }
    }

    #[test]
    fn the_skipper_keeps_nothing_of_a_huge_binary() {
        // bin32 of 3 MiB inside a map, fed in 64 KiB chunks.
        let len: u32 = 3 << 20;
        let mut head = vec![0x81, 0xa7];
        head.extend_from_slice(b"Payload");
        head.push(0xc6);
        head.extend_from_slice(&len.to_be_bytes());
        let mut sk = Skipper::default();
        assert_eq!(sk.feed(&head), (head.len(), Skip::More));
        let chunk = vec![0u8; 64 * 1024];
        let mut left = len as usize;
        while left > 0 {
            let n = left.min(chunk.len());
            let (used, r) = sk.feed(&chunk[..n]);
            assert_eq!(used, n);
            left -= n;
            assert_eq!(r, if left == 0 { Skip::Done } else { Skip::More });
        }
    }

    #[test]
    fn reset_frames_consecutive_objects() {
        let a = [0x82, 0xa1, b'a', 0x01, 0xa1, b'b', 0x92, 0x01, 0x02];
        let b = [0x81, 0xa1, b'c', 0xc0];
        let buf = [&a[..], &b[..]].concat();
        let mut f = Framer::new(BIG);
        assert_eq!(f.scan(&buf), Scan::Complete(a.len()));
        f.reset();
        assert_eq!(f.scan(&buf[a.len()..a.len() + 2]), Scan::Partial);
        assert_eq!(f.scan(&buf[a.len()..]), Scan::Complete(b.len()));
    }
}
