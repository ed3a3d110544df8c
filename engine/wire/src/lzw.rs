//! Go `compress/lzw` (LSB bit order, literal width 8), byte for byte.
//!
//! memberlist's compress message (type 9) carries an LZW stream made by Go's
//! `lzw.NewWriter(w, lzw.LSB, 8)` + `Close` (`shared/protocol/memberlist.md`
//! §7). Codes 0..=255 are literals, 256 clears the dictionary, 257 ends the
//! data, 258.. are dictionary entries; codes start 9 bits wide, grow to 12 and
//! are packed least-significant bit first.
//!
//! # Why both directions are our own
//!
//! [`LzwDecoder`] follows Go's reader exactly: it decodes every captured Go
//! buffer, accepts streams with or without the leading clear code (and
//! repeated clear codes), freezes a full table as Go does, and decodes
//! straight into the caller's slice without allocating. A property test
//! checks it against a transcription of Go's reader on random code streams
//! (dictionary growth, KwKwK, the frozen 4096-entry table, repeated clears,
//! invalid codes, truncation). It replaced a wrapper around weezl 0.1.12,
//! whose per-stream table reset and per-code bookkeeping cost more than the
//! decoding itself on datagram-sized streams, and which rejected two clear
//! codes in a row.
//!
//! [`LzwEncoder`] is written here from the §7 rules because weezl 0.1.12
//! cannot reproduce Go's bytes (checked against the 166 distinct captured
//! buffers: 17 came out different, all of them plaintexts above ~700 bytes):
//!
//! * when a prefix code gains its 17th successor, weezl converts its small
//!   successor list into a 256-way node but does not record the new
//!   (prefix, byte) entry, so later occurrences of that pair are emitted as two
//!   codes where Go emits one (the output stays valid, just different);
//! * weezl clears the dictionary one code later than Go: Go emits the clear
//!   code as soon as the last assigned code reaches 4095 and never defines
//!   entry 4095, weezl defines 4095 and clears on the next miss; neither does
//!   weezl do Go's table-limit check for the final code written by `Close`.
//!
//! weezl's encoder also grows internal vectors with the input's dictionary shape,
//! so "no allocation after construction" would not hold for every input.
//!
//! The encoder's dictionary is a fixed open-addressing hash table (8192 slots,
//! at most 3837 used between clears) plus the list of filled slots, so a reset
//! touches only what the last stream filled. A short input probes only the
//! first 512–4096 slots (twice what it can fill), which keeps a datagram's
//! dictionary in a few cache lines.

use super::{Error, Result};

/// Literal width: codes 0..=255 stand for themselves.
const LIT_WIDTH: u32 = 8;
/// Clears the dictionary and resets the code width.
const CLEAR: u16 = 1 << LIT_WIDTH;
/// Ends the data; the rest of the last byte is zero padding.
const EOF: u16 = CLEAR + 1;
/// Code width right after a clear.
const MIN_WIDTH: u32 = LIT_WIDTH + 1;
/// Go's encoder emits a clear code when the last assigned code reaches this.
const MAX_CODE: u16 = 4095;
/// Dictionary entries one stream can hold between clears (258..=4094).
const MAX_ENTRIES: usize = (MAX_CODE - EOF - 1) as usize;

/// Hash table size: a power of two, over twice [`MAX_ENTRIES`] so linear
/// probing always finds an empty slot quickly.
const SLOT_BITS: u32 = 13;
const SLOTS: usize = 1 << SLOT_BITS;
const SLOT_MASK: usize = SLOTS - 1;
/// The smallest table used for short inputs (512 slots, 2 KiB).
const MIN_SLOT_BITS: u32 = 9;
/// A slot holds `key << 12 | code` with `key = prefix << 8 | byte` (20 bits)
/// and `code` < 4095, so all-ones never occurs as an entry.
const EMPTY: u32 = u32::MAX;

/// Inputs shorter than this never come out smaller as a compress message
/// (`memberlist::compress_message_len` of the LZW stream), so a sender that
/// keeps compression only when it shrinks the payload can skip the work.
///
/// Why: the k-th code of a stream stands for at most k bytes (an entry is
/// the previous code's string plus one byte), so c codes cover at most
/// c(c+1)/2 bytes, and every code, plus the leading clear and the EOF code,
/// takes at least 9 bits. A run of one repeated byte reaches that bound;
/// the unit test checks that even it does not shrink below this length.
pub const MIN_COMPRESSIBLE: usize = 25;

/// An upper bound on [`LzwEncoder::compress`] output for an input of `n` bytes.
///
/// Each input byte ends at most one data code, every 3838 data codes add one
/// clear code, the stream adds a leading clear and an EOF code, and no code is
/// wider than 12 bits (1.5 bytes); one more byte covers the final flush.
/// Saturates at `usize::MAX`.
pub fn max_compressed_len(n: usize) -> usize {
    let codes = n.saturating_add(n / 2048).saturating_add(2);
    codes.saturating_add(codes / 2).saturating_add(1)
}

/// Compresses exactly like Go's `lzw.NewWriter(w, lzw.LSB, 8)` + `Close`.
///
/// Build one per thread at start (it owns a 32 KiB table and an 8 KiB list)
/// and reuse it for every message: [`compress`](Self::compress) never
/// allocates.
pub struct LzwEncoder {
    /// Open-addressing dictionary: [`EMPTY`] or `key << 12 | code`.
    slots: Box<[u32]>,
    /// Indexes of the slots filled since the last clear.
    filled: Box<[u16]>,
    /// How many entries of `filled` are in use.
    n_filled: usize,
    /// Slots in use for the current input: `slots[..=mask]`, a power of two
    /// at least twice the entries the input can create, so that small
    /// inputs touch few cache lines.
    mask: usize,
    /// `32 - log2(mask + 1)`: the hash shift for the current input.
    shift: u32,
}

impl core::fmt::Debug for LzwEncoder {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("LzwEncoder").field("entries", &self.n_filled).finish_non_exhaustive()
    }
}

impl Default for LzwEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl LzwEncoder {
    /// Allocates the dictionary tables (the only allocation this type makes).
    pub fn new() -> Self {
        LzwEncoder {
            slots: vec![EMPTY; SLOTS].into_boxed_slice(),
            filled: vec![0u16; MAX_ENTRIES].into_boxed_slice(),
            n_filled: 0,
            mask: SLOT_MASK,
            shift: 32 - SLOT_BITS,
        }
    }

    /// Compresses `input` into `out` exactly as Go's `lzw.NewWriter(LSB, 8)`
    /// followed by one `Write(input)` and `Close` does: a leading clear code,
    /// the data codes (with a clear code whenever the dictionary reaches code
    /// 4095), the EOF code, and the remaining bits as one final byte.
    ///
    /// Returns the number of bytes written to `out`. An empty input gives the
    /// three bytes `00 03 02` (clear + EOF). [`max_compressed_len`] of the
    /// input length is always enough room.
    ///
    /// # Errors
    ///
    /// [`Error::NoSpace`] if `out` is too small; `out` then holds a partial
    /// stream and the encoder is still ready for the next call.
    pub fn compress(&mut self, input: &[u8], out: &mut [u8]) -> Result<usize> {
        self.clear_dictionary();
        // An input of n bytes creates at most n - 1 entries between clears:
        // size the probed part of the table to keep it at most half full.
        let entries = input.len().min(MAX_ENTRIES);
        let bits = entries
            .saturating_mul(2)
            .next_power_of_two()
            .trailing_zeros()
            .clamp(MIN_SLOT_BITS, SLOT_BITS);
        self.mask = (1usize << bits).wrapping_sub(1);
        self.shift = 32u32.saturating_sub(bits);
        let mut w = CodeWriter::new(out);
        w.put(CLEAR)?;
        let Some((&first, rest)) = input.split_first() else {
            // Go: Write never saw data, so Close writes the clear code (done
            // above) and the EOF code.
            w.put(EOF)?;
            return w.finish();
        };
        let mut code = u16::from(first);
        for &byte in rest {
            let key = (u32::from(code) << LIT_WIDTH) | u32::from(byte);
            let vacant = match self.find(key) {
                Ok(longer) => {
                    code = longer;
                    continue;
                }
                Err(vacant) => vacant,
            };
            w.put(code)?;
            code = u16::from(byte);
            if w.next_code()? {
                self.fill(vacant, key, w.hi);
            } else {
                self.clear_dictionary();
            }
        }
        w.put(code)?;
        // Close does the same bookkeeping after the last code, so the table
        // limit can put one more clear code before EOF.
        if !w.next_code()? {
            self.clear_dictionary();
        }
        w.put(EOF)?;
        w.finish()
    }

    fn clear_dictionary(&mut self) {
        let used = self.filled.get(..self.n_filled).unwrap_or(&[]);
        for &slot in used {
            if let Some(s) = self.slots.get_mut(usize::from(slot)) {
                *s = EMPTY;
            }
        }
        self.n_filled = 0;
    }

    /// The code for `prefix << 8 | byte` if the dictionary has it, else the
    /// empty slot where that key belongs (for [`LzwEncoder::fill`]).
    #[inline(always)]
    fn find(&self, key: u32) -> core::result::Result<u16, usize> {
        let mut at = self.slot_of(key);
        // The table is never more than half full, so the probe meets an empty
        // slot long before this bound; the bound only makes that evident.
        for _ in 0..SLOTS {
            let Some(&entry) = self.slots.get(at) else { break };
            if entry == EMPTY {
                return Err(at);
            }
            if entry >> 12 == key {
                return Ok((entry & 0xfff) as u16);
            }
            at = at.wrapping_add(1) & self.mask;
        }
        Err(usize::MAX)
    }

    /// Stores `key → code` in the empty slot `at` found by [`LzwEncoder::find`].
    #[inline(always)]
    fn fill(&mut self, at: usize, key: u32, code: u16) {
        let Some(slot) = self.slots.get_mut(at) else { return };
        *slot = (key << 12) | u32::from(code);
        if let (Some(f), Ok(idx)) = (self.filled.get_mut(self.n_filled), u16::try_from(at)) {
            *f = idx;
            self.n_filled = self.n_filled.saturating_add(1);
        }
    }

    /// Home slot of a dictionary key (Fibonacci hashing of the 20-bit key).
    fn slot_of(&self, key: u32) -> usize {
        (key.wrapping_mul(0x9E37_79B1) >> self.shift) as usize
    }
}

/// Packs codes LSB-first into the caller's buffer and tracks Go's encoder
/// state: the current code width, the last assigned code `hi` and the code
/// at which the width grows.
struct CodeWriter<'a> {
    out: &'a mut [u8],
    pos: usize,
    /// Pending bits, the oldest in the low bits; fewer than 8 between codes.
    bits: u32,
    n_bits: u32,
    width: u32,
    hi: u16,
    overflow: u16,
}

impl<'a> CodeWriter<'a> {
    fn new(out: &'a mut [u8]) -> Self {
        CodeWriter {
            out,
            pos: 0,
            bits: 0,
            n_bits: 0,
            width: MIN_WIDTH,
            hi: EOF,
            overflow: 1 << MIN_WIDTH,
        }
    }

    /// Appends `code` at the current width and writes out every full byte.
    fn put(&mut self, code: u16) -> Result<()> {
        // n_bits < 8 and width <= 12, so everything stays below 20 bits.
        self.bits |= u32::from(code) << self.n_bits;
        self.n_bits = self.n_bits.saturating_add(self.width);
        while self.n_bits >= 8 {
            self.push_byte()?;
        }
        Ok(())
    }

    fn push_byte(&mut self) -> Result<()> {
        let slot = self.out.get_mut(self.pos).ok_or(Error::NoSpace)?;
        *slot = self.bits.to_le_bytes()[0];
        self.pos = self.pos.saturating_add(1);
        self.bits >>= 8;
        self.n_bits = self.n_bits.saturating_sub(8);
        Ok(())
    }

    /// Go's `incHi`, called after every data code: assigns the next code and
    /// widens when it needs another bit. When the code space is used up it
    /// emits a clear code, resets the width and returns `Ok(false)`: the
    /// caller must then empty its dictionary instead of inserting.
    fn next_code(&mut self) -> Result<bool> {
        self.hi = self.hi.saturating_add(1);
        if self.hi == self.overflow {
            self.width = self.width.saturating_add(1);
            self.overflow = self.overflow.saturating_mul(2);
        }
        if self.hi == MAX_CODE {
            self.put(CLEAR)?;
            self.width = MIN_WIDTH;
            self.hi = EOF;
            self.overflow = 1 << MIN_WIDTH;
            return Ok(false);
        }
        Ok(true)
    }

    /// Writes the last partial byte (high bits zero); returns the length.
    fn finish(mut self) -> Result<usize> {
        if self.n_bits > 0 {
            self.push_byte()?;
        }
        Ok(self.pos)
    }
}

/// Decompresses Go `compress/lzw` (LSB, 8) streams into a caller's buffer.
///
/// Build one per thread at start and reuse it: [`decompress`](Self::decompress)
/// never allocates.
///
/// A dictionary entry is always "the previous code's string plus the next
/// byte", and both sit next to each other in the output, so an entry is
/// stored as the place in the output where its string already appears
/// (start, length): decoding a code is one copy from earlier output, with no
/// prefix chain to walk and no table to reset between streams (a stream only
/// reads the entries it has defined since its last clear code).
pub struct LzwDecoder {
    /// `(start, len)` in the current output of each code's string; only
    /// entries `258..hi` of the current stream are ever read.
    entries: Box<[(u32, u32)]>,
}

impl core::fmt::Debug for LzwDecoder {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("LzwDecoder").finish_non_exhaustive()
    }
}

impl Default for LzwDecoder {
    fn default() -> Self {
        Self::new()
    }
}

/// Number of codes at the widest width.
const CODES: usize = 1 << MAX_WIDTH;
/// Widest code.
const MAX_WIDTH: u32 = 12;

impl LzwDecoder {
    /// Allocates the dictionary (32 KiB; the only allocation this type makes).
    pub fn new() -> Self {
        LzwDecoder { entries: vec![(0, 0); CODES].into_boxed_slice() }
    }

    /// Decompresses one complete LZW stream into `out` and returns the number
    /// of bytes written, following Go's reader: the leading clear code is
    /// optional (the reader starts cleared), a clear code may come anywhere
    /// (also twice in a row), a full 12-bit table freezes until the next
    /// clear, and bytes after the EOF code are ignored.
    ///
    /// # Errors
    ///
    /// * [`Error::Lzw`] — a code above the next free code, a dictionary code
    ///   before any literal, or input that ends before the EOF code;
    /// * [`Error::TooLarge`] — the output does not fit in `out` (outputs
    ///   are limited to 4 GiB).
    ///
    /// Bytes of `out` past the returned length (up to 16) may be overwritten.
    pub fn decompress(&mut self, input: &[u8], out: &mut [u8]) -> Result<usize> {
        let cap = out.len().min(u32::MAX as usize);
        let out = out.get_mut(..cap).ok_or(Error::TooLarge)?;
        // Bit reader: `acc` holds `n_bits` unread bits, oldest lowest; the
        // next unread input byte is `input[next]`.
        let (mut acc, mut n_bits, mut next) = (0u64, 0u32, 0usize);
        let mut width = MIN_WIDTH;
        // The code the next entry gets, and the first code needing more bits.
        let mut hi = EOF;
        let mut overflow = 1u16 << MIN_WIDTH;
        // Where the previous code's string was written; `last_len == 0`
        // after a clear code and while the table is frozen.
        let (mut last_start, mut last_len) = (0usize, 0usize);
        let mut pos = 0usize;
        loop {
            if n_bits < width {
                // n_bits < 12: room for 32 more bits in the accumulator.
                let four = next.checked_add(4).and_then(|end| input.get(next..end));
                if let Some(&[a, b, c, d]) = four {
                    acc |= u64::from(u32::from_le_bytes([a, b, c, d])) << n_bits;
                    next = next.wrapping_add(4);
                    n_bits = n_bits.wrapping_add(32);
                } else {
                    while n_bits < width {
                        let &b = input.get(next).ok_or(Error::Lzw)?;
                        acc |= u64::from(b) << n_bits;
                        next = next.wrapping_add(1);
                        n_bits = n_bits.wrapping_add(8);
                    }
                }
            }
            let code = (acc as u16) & ((1u16 << width).wrapping_sub(1));
            acc >>= width;
            n_bits = n_bits.wrapping_sub(width);
            let len = if code < CLEAR {
                *out.get_mut(pos).ok_or(Error::TooLarge)? = code as u8;
                1
            } else if code > EOF && (code < hi || (code == hi && last_len == 0)) {
                // A defined entry (`code == hi` only while the table is frozen,
                // when entry 4095 is the last one defined).
                let &(start, len) = self.entries.get(usize::from(code)).ok_or(Error::Lzw)?;
                let len = len as usize;
                copy_back(out, start as usize, len, pos)?;
                len
            } else if code > EOF && code == hi {
                // KwKwK (`last_len > 0`): the previous string plus its own
                // first byte.
                copy_back(out, last_start, last_len, pos)?;
                let first = *out.get(last_start).ok_or(Error::Lzw)?;
                *out.get_mut(pos.wrapping_add(last_len)).ok_or(Error::TooLarge)? = first;
                last_len.wrapping_add(1)
            } else if code == CLEAR {
                width = MIN_WIDTH;
                hi = EOF;
                overflow = 1 << MIN_WIDTH;
                last_len = 0;
                continue;
            } else if code == EOF {
                return Ok(pos);
            } else {
                return Err(Error::Lzw);
            };
            if last_len > 0 {
                // Entry `hi`: the previous string and the first byte written
                // now, which follows it in the output.
                if let Some(e) = self.entries.get_mut(usize::from(hi)) {
                    *e = (last_start as u32, last_len.wrapping_add(1) as u32);
                }
            }
            last_start = pos;
            last_len = len;
            // pos + len <= out.len(): the string was just written there.
            pos = pos.wrapping_add(len);
            hi = hi.wrapping_add(1);
            if hi >= overflow {
                if width == MAX_WIDTH {
                    // Frozen: nothing more is defined until a clear code.
                    last_len = 0;
                    hi = hi.wrapping_sub(1);
                } else {
                    width = width.wrapping_add(1);
                    overflow = overflow.wrapping_mul(2);
                }
            }
        }
    }
}

/// Copies `out[src..src + len]` (earlier output) to `out[dst..]`, `dst >= src + len`.
#[inline(always)]
fn copy_back(out: &mut [u8], src: usize, len: usize, dst: usize) -> Result<()> {
    let src_end = src.checked_add(len).ok_or(Error::Lzw)?;
    if src_end > dst {
        return Err(Error::Lzw);
    }
    if len <= 16 {
        // Short strings dominate: move a fixed 16 bytes (one load, one
        // store). The first `len` all come from before `dst`; the bytes past
        // `len` are scratch that the following output overwrites.
        let chunk = src.checked_add(16).and_then(|end| out.get(src..end));
        if let Some(&chunk) = chunk.and_then(|c| <&[u8; 16]>::try_from(c).ok()) {
            if let Some(to) = dst.checked_add(16).and_then(|end| out.get_mut(dst..end)) {
                to.copy_from_slice(&chunk);
                return Ok(());
            }
        }
    }
    let dst_end = dst.checked_add(len).ok_or(Error::TooLarge)?;
    if dst_end > out.len() {
        return Err(Error::TooLarge);
    }
    out.copy_within(src..src_end, dst);
    Ok(())
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::arithmetic_side_effects)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LZW_TSV: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/vectors/lzw.tsv");

    fn unhex(s: &str) -> Vec<u8> {
        assert!(s.len() % 2 == 0, "odd hex length");
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    fn vectors() -> Vec<(Vec<u8>, Vec<u8>)> {
        let text = std::fs::read_to_string(LZW_TSV).unwrap();
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(|l| {
                let (c, p) = l.split_once('\t').unwrap();
                (unhex(c), unhex(p))
            })
            .collect()
    }

    fn compress(input: &[u8]) -> Vec<u8> {
        let mut out = vec![0xAA; max_compressed_len(input.len())];
        let n = LzwEncoder::new().compress(input, &mut out).unwrap();
        out.truncate(n);
        out
    }

    fn decompress(input: &[u8], cap: usize) -> Result<Vec<u8>> {
        let mut out = vec![0xAA; cap];
        let n = LzwDecoder::new().decompress(input, &mut out)?;
        out.truncate(n);
        Ok(out)
    }

    /// Packs codes LSB-first at the widths Go's decoder expects (the test's
    /// own writer, used to build streams no encoder would make). A code too
    /// wide for its slot loses its high bits.
    fn pack(codes: &[u16]) -> Vec<u8> {
        let (mut out, mut acc, mut n) = (Vec::new(), 0u64, 0u32);
        let mut t = Tracker::default();
        for &c in codes {
            acc |= (u64::from(c) & ((1 << t.width) - 1)) << n;
            n += t.width;
            while n >= 8 {
                out.push(acc as u8);
                acc >>= 8;
                n -= 8;
            }
            t.step(c);
        }
        if n > 0 {
            out.push(acc as u8);
        }
        out
    }

    /// Go's decoder width bookkeeping without the strings (§7 decoder rules).
    struct Tracker {
        width: u32,
        hi: u32,
        overflow: u32,
    }

    impl Default for Tracker {
        fn default() -> Self {
            Tracker { width: 9, hi: 257, overflow: 512 }
        }
    }

    impl Tracker {
        fn step(&mut self, code: u16) {
            match code {
                CLEAR => *self = Tracker::default(),
                EOF => {}
                _ => {
                    self.hi += 1;
                    if self.hi >= self.overflow {
                        if self.width == 12 {
                            self.hi -= 1;
                        } else {
                            self.width += 1;
                            self.overflow *= 2;
                        }
                    }
                }
            }
        }
    }

    /// Splits a stream into (code, width) pairs up to and including EOF, the
    /// way Go's decoder reads it, and checks that nothing but zero padding
    /// follows the EOF code.
    fn trace(stream: &[u8]) -> Vec<(u16, u32)> {
        let (mut acc, mut n, mut t) = (0u64, 0u32, Tracker::default());
        let mut bytes = stream.iter();
        let mut codes = Vec::new();
        loop {
            while n < t.width {
                match bytes.next() {
                    Some(&b) => {
                        acc |= u64::from(b) << n;
                        n += 8;
                    }
                    None => panic!("stream ends before EOF: {codes:?}"),
                }
            }
            let code = (acc & ((1 << t.width) - 1)) as u16;
            codes.push((code, t.width));
            acc >>= t.width;
            n -= t.width;
            if code == EOF {
                assert!(bytes.next().is_none(), "bytes after the EOF code's byte");
                assert_eq!(acc, 0, "padding bits must be zero");
                return codes;
            }
            t.step(code);
        }
    }

    fn codes_of(stream: &[u8]) -> Vec<u16> {
        trace(stream).into_iter().map(|(c, _)| c).collect()
    }

    /// Deterministic pseudo-random bytes over an alphabet of `k` symbols.
    fn noise(len: usize, k: u32, mut seed: u64) -> Vec<u8> {
        (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                ((seed >> 32) as u32 % k) as u8
            })
            .collect()
    }

    #[test]
    fn captured_buffers_decompress_and_recompress_byte_for_byte() {
        let v = vectors();
        assert!(v.len() >= 66, "expected the 46 UDP + 20 TCP captures, got {}", v.len());
        let (mut enc, mut dec) = (LzwEncoder::new(), LzwDecoder::new());
        let (mut out, mut plain) = (vec![0u8; 16384], vec![0u8; 16384]);
        for (i, (c, p)) in v.iter().enumerate() {
            let n = dec.decompress(c, &mut plain).unwrap_or_else(|e| panic!("#{i}: {e}"));
            assert_eq!(&plain[..n], &p[..], "#{i} decompress");
            out.fill(0xAA);
            let n = enc.compress(p, &mut out).unwrap();
            assert_eq!(&out[..n], &c[..], "#{i} recompress ({} bytes)", p.len());
            assert!(n <= max_compressed_len(p.len()));
            assert_eq!(out[n], 0xAA, "#{i}: wrote past the reported length");
            // Go 1.19's writer always starts with a clear code.
            assert_eq!(trace(c)[0], (CLEAR, 9));
        }
    }

    #[test]
    fn captured_s8_stream_grows_to_12_bits_and_resets() {
        let v = vectors();
        let (c, p) = v.iter().find(|(_, p)| p.len() == 12183).expect("s8 push-pull reply");
        let t = trace(c);
        for w in 9..=12 {
            assert!(t.iter().any(|&(_, width)| width == w), "no {w}-bit code");
        }
        let clears: Vec<usize> =
            t.iter().enumerate().filter(|(_, &(c, _))| c == CLEAR).map(|(i, _)| i).collect();
        assert!(clears.len() >= 2, "no table reset: {clears:?}");
        // The reset comes after exactly 4095 - 257 data codes, at 12 bits.
        assert_eq!(clears[1] - clears[0] - 1, 3838);
        assert_eq!(t[clears[1]].1, 12);
        assert_eq!(t[clears[1] + 1].1, 9);
        assert_eq!(compress(p), *c);
    }

    #[test]
    fn shorter_than_min_compressible_never_shrinks() {
        use crate::memberlist::compress_message_len;
        // The most compressible input of each length: one repeated byte.
        for n in 0..MIN_COMPRESSIBLE {
            let c = compress(&vec![b'a'; n]);
            // The bound behind the constant: c codes cover at most c(c+1)/2 bytes.
            let codes = codes_of(&c).len() - 2;
            assert!(codes * (codes + 1) / 2 >= n, "len {n}");
            assert!(compress_message_len(c.len()) >= n, "len {n} shrinks");
        }
        // The bound is tight: one byte more can shrink.
        let c = compress(&[b'a'; MIN_COMPRESSIBLE]);
        assert!(compress_message_len(c.len()) < MIN_COMPRESSIBLE);
    }

    #[test]
    fn empty_input_is_clear_then_eof() {
        assert_eq!(compress(&[]), [0x00, 0x03, 0x02]);
        assert_eq!(codes_of(&[0x00, 0x03, 0x02]), [CLEAR, EOF]);
        assert_eq!(decompress(&[0x00, 0x03, 0x02], 0).unwrap(), b"");
        assert_eq!(decompress(&[0x00, 0x03, 0x02], 8).unwrap(), b"");
        assert_eq!(max_compressed_len(0), 4);
    }

    #[test]
    fn single_byte_and_kwkwk() {
        assert_eq!(codes_of(&compress(b"a")), [CLEAR, 97, EOF]);
        // "aaa": 'a' defines 258 = "aa", which is used before the decoder can
        // have defined it (the KwKwK case).
        let aaa = compress(b"aaa");
        assert_eq!(codes_of(&aaa), [CLEAR, 97, 258, EOF]);
        assert_eq!(decompress(&aaa, 3).unwrap(), b"aaa");
        let s = b"abababababab";
        let c = compress(s);
        assert_eq!(codes_of(&c), [CLEAR, 97, 98, 258, 260, 259, 262, EOF]);
        assert_eq!(decompress(&c, s.len()).unwrap(), s);
        // A hand-packed KwKwK stream decodes too.
        assert_eq!(decompress(&pack(&[CLEAR, 120, 258, 259, EOF]), 16).unwrap(), b"xxxxxx");
    }

    #[test]
    fn prefix_with_seventeen_successors_keeps_them_all() {
        // weezl 0.1.12 drops the 17th successor of a prefix; Go keeps it.
        let mut input = Vec::new();
        for c in 0..17u8 {
            input.extend_from_slice(&[b'a', b'A' + c]);
        }
        input.extend_from_slice(b"aQ");
        let mut want = vec![CLEAR];
        for c in 0..17u16 {
            want.extend_from_slice(&[97, 65 + c]);
        }
        // (a, Q) was entry 258 + 2 * 16.
        want.extend_from_slice(&[290, EOF]);
        let c = compress(&input);
        assert_eq!(codes_of(&c), want);
        assert_eq!(decompress(&c, input.len()).unwrap(), input);
    }

    #[test]
    fn width_grows_when_the_next_code_needs_it() {
        // Incompressible input: every byte pair is new, one code per byte.
        let input = noise(600, 256, 7);
        let t = trace(&compress(&input));
        // The code written when hi becomes 511 is still 9 bits; the one after
        // hi became 512 is 10 bits (Go widens before writing the next code).
        for (hi, &(code, width)) in (257u32..).zip(&t[1..t.len() - 1]) {
            assert_eq!(width, if hi < 512 { 9 } else { 10 }, "code {code} at hi {hi}");
        }
        assert_eq!(decompress(&compress(&input), 600).unwrap(), input);
    }

    #[test]
    fn long_inputs_reset_the_table_every_3838_codes() {
        let input = noise(200 * 1024, 16, 42);
        let c = compress(&input);
        assert!(c.len() <= max_compressed_len(input.len()));
        let t = trace(&c);
        let clears: Vec<usize> =
            t.iter().enumerate().filter(|(_, &(c, _))| c == CLEAR).map(|(i, _)| i).collect();
        assert!(clears.len() > 5, "only {} clears", clears.len());
        for pair in clears.windows(2) {
            assert_eq!(pair[1] - pair[0] - 1, 3838);
            assert_eq!(t[pair[1]].1, 12);
        }
        assert_eq!(decompress(&c, input.len()).unwrap(), input);
    }

    #[test]
    fn clear_before_eof_when_the_last_code_fills_the_table() {
        // Find a length whose final code is the 3838th data code: Close then
        // writes a clear code (12 bits) and the EOF code at 9 bits.
        let base = noise(5000, 256, 99);
        let mut found = 0;
        for len in 3700..5000 {
            let c = compress(&base[..len]);
            let t = trace(&c);
            let k = t.len();
            if t[k - 2].0 == CLEAR && k == 3838 + 3 {
                assert_eq!(t[k - 2].1, 12);
                assert_eq!(t[k - 1], (EOF, 9));
                assert_eq!(decompress(&c, len).unwrap(), &base[..len]);
                found += 1;
            }
        }
        assert!(found > 0, "no length ends exactly at the table limit");
    }

    #[test]
    fn all_same_byte() {
        for len in [1, 2, 3, 100, 4096, 100_000, 300_000] {
            let input = vec![0x5a; len];
            let c = compress(&input);
            assert_eq!(decompress(&c, len).unwrap(), input, "len {len}");
        }
    }

    #[test]
    fn compress_reports_no_space() {
        let input = noise(3000, 8, 3);
        let full = compress(&input);
        let mut enc = LzwEncoder::new();
        for cap in [0, 1, 2, full.len() / 2, full.len() - 1] {
            let mut out = vec![0u8; cap];
            assert_eq!(enc.compress(&input, &mut out), Err(Error::NoSpace), "cap {cap}");
        }
        // The encoder is reusable after a failed call.
        let mut out = vec![0u8; full.len()];
        assert_eq!(enc.compress(&input, &mut out), Ok(full.len()));
        assert_eq!(out, full);
        assert_eq!(enc.compress(&[], &mut [0u8; 2]), Err(Error::NoSpace));
    }

    #[test]
    fn decoder_accepts_a_stream_without_the_leading_clear() {
        // The real agent acked a ping compressed without it (§7).
        let s = b"no clear code here, no clear code";
        let c = compress(s);
        let codes = codes_of(&c);
        assert_eq!(decompress(&pack(&codes[1..]), s.len()).unwrap(), s);
        assert_eq!(decompress(&pack(&[104, 105, EOF]), 8).unwrap(), b"hi");
    }

    #[test]
    fn decoder_rejects_malformed_streams() {
        let s = b"some text, some text, some text";
        let c = compress(s);
        // Every strict prefix lacks the EOF code: the last byte holds its bits.
        for cut in 0..c.len() {
            assert_eq!(decompress(&c[..cut], 1024), Err(Error::Lzw), "cut {cut}");
        }
        // No EOF code at all.
        assert_eq!(decompress(&pack(&[CLEAR, 97, 98]), 64), Err(Error::Lzw));
        // A code above the next free code (258 is next after one literal).
        assert_eq!(decompress(&pack(&[CLEAR, 97, 259, EOF]), 64), Err(Error::Lzw));
        assert_eq!(decompress(&pack(&[CLEAR, 97, 511, EOF]), 64), Err(Error::Lzw));
        // A dictionary code before any literal.
        assert_eq!(decompress(&pack(&[CLEAR, 258, EOF]), 64), Err(Error::Lzw));
        assert_eq!(decompress(&pack(&[300, EOF]), 64), Err(Error::Lzw));
        // Bytes after EOF are ignored, as Go ignores them.
        let mut trailing = c.clone();
        trailing.extend_from_slice(&[0xff, 0x00, 0x13]);
        assert_eq!(decompress(&trailing, 1024).unwrap(), s);
    }

    #[test]
    fn decoder_respects_the_output_bound() {
        for (c, p) in vectors().iter().take(20) {
            let mut dec = LzwDecoder::new();
            let mut out = vec![0xAA; p.len() + 1];
            assert_eq!(dec.decompress(c, &mut out[..p.len()]), Ok(p.len()));
            assert_eq!(out[p.len()], 0xAA);
            assert_eq!(dec.decompress(c, &mut out[..p.len() - 1]), Err(Error::TooLarge));
            assert_eq!(dec.decompress(c, &mut []), Err(Error::TooLarge));
        }
        // A decoder that failed is fine for the next stream.
        let mut dec = LzwDecoder::new();
        let c = compress(b"reuse");
        assert!(dec.decompress(&[0xff; 7], &mut [0u8; 4]).is_err());
        let mut out = [0u8; 5];
        assert_eq!(dec.decompress(&c, &mut out), Ok(5));
        assert_eq!(&out, b"reuse");
    }

    #[test]
    fn max_compressed_len_bounds_the_worst_case() {
        for (len, seed) in [(1usize, 1u64), (255, 2), (3837, 3), (3838, 4), (20_000, 5)] {
            let input = noise(len, 256, seed);
            assert!(compress(&input).len() <= max_compressed_len(len), "len {len}");
        }
        assert_eq!(max_compressed_len(usize::MAX), usize::MAX);
    }

    /// Go's reader, transcribed from the §7 decoder rules with plain vectors:
    /// the reference the decoder is checked against. `None` is
    /// any error (invalid code, or input ending before EOF).
    fn reference_decode(stream: &[u8]) -> Option<Vec<u8>> {
        let (mut prefix, mut suffix) = (vec![0u16; 4096], vec![0u8; 4096]);
        let (mut acc, mut n, mut t) = (0u64, 0u32, Tracker::default());
        let (mut bytes, mut out, mut last) = (stream.iter(), Vec::new(), None::<u16>);
        let expand = |prefix: &[u16], suffix: &[u8], mut c: u16| {
            let mut s = Vec::new();
            while c > EOF {
                s.push(suffix[usize::from(c)]);
                c = prefix[usize::from(c)];
            }
            s.push(c as u8);
            s.reverse();
            s
        };
        loop {
            while n < t.width {
                acc |= u64::from(*bytes.next()?) << n;
                n += 8;
            }
            let code = (acc & ((1 << t.width) - 1)) as u16;
            acc >>= t.width;
            n -= t.width;
            let hi = t.hi as u16;
            let s = match code {
                CLEAR => {
                    t = Tracker::default();
                    last = None;
                    continue;
                }
                EOF => return Some(out),
                c if c < CLEAR => vec![c as u8],
                c if c == hi && last.is_some() => {
                    let mut s = expand(&prefix, &suffix, last.unwrap());
                    s.push(s[0]);
                    s
                }
                c if c <= hi => expand(&prefix, &suffix, c),
                _ => return None,
            };
            if let Some(l) = last {
                prefix[usize::from(hi)] = l;
                suffix[usize::from(hi)] = s[0];
            }
            out.extend_from_slice(&s);
            last = Some(code);
            t.step(code);
            if t.width == 12 && t.hi == 4095 && hi == 4095 {
                // Frozen table: Go forgets `last` so nothing more is defined.
                last = None;
            }
        }
    }

    /// A code stream steered by `choices`: codes the decoder accepts
    /// (literals and dictionary codes up to `hi`), with `invalid` sometimes
    /// `hi + 1`, a clear code when `clear_every` says so (sometimes two in a
    /// row), EOF at the end.
    fn steered_codes(choices: &[u32], clear_every: u32, invalid: bool) -> Vec<u16> {
        let mut t = Tracker::default();
        let mut codes = Vec::new();
        for &ch in choices {
            let c = if clear_every > 0 && ch % clear_every == 0 {
                CLEAR
            } else {
                let range = if invalid { t.hi + 2 } else { t.hi + 1 };
                match (ch % range) as u16 {
                    CLEAR | EOF => (ch & 0xff) as u16,
                    c => c,
                }
            };
            codes.push(c);
            t.step(c);
        }
        codes.push(EOF);
        codes
    }

    #[test]
    fn consecutive_clear_codes_reset_twice_as_in_go() {
        // Go's reader resets twice and goes on (Go's writer never emits
        // this, but a decoder must not be stricter than Go's).
        for codes in [&[CLEAR, CLEAR, 97, EOF][..], &[CLEAR, 97, CLEAR, CLEAR, 98, EOF]] {
            let stream = pack(codes);
            let want = reference_decode(&stream).unwrap();
            assert_eq!(decompress(&stream, 16).unwrap(), want);
        }
        assert_eq!(decompress(&pack(&[CLEAR, 97, CLEAR, 98, EOF]), 16).unwrap(), b"ab");
        assert_eq!(decompress(&pack(&[CLEAR, 97, CLEAR, CLEAR, 98, EOF]), 16).unwrap(), b"ab");
    }

    #[test]
    fn reference_decoder_agrees_on_captures() {
        for (c, p) in vectors() {
            assert_eq!(reference_decode(&c).unwrap(), p);
        }
        // And on a table that fills up and freezes without a clear.
        let choices: Vec<u32> = noise(6000, 256, 5).iter().map(|&b| u32::from(b) * 16).collect();
        let codes = steered_codes(&choices, 0, false);
        let stream = pack(&codes);
        let want = reference_decode(&stream).unwrap();
        let mut out = vec![0u8; 1 << 22];
        let n = LzwDecoder::new().decompress(&stream, &mut out).unwrap();
        assert_eq!(out[..n], want[..]);
        // Past the freeze a code above 4095 cannot be sent, but 4095 can.
        let mut frozen = codes[..codes.len() - 1].to_vec();
        frozen.extend_from_slice(&[4095, 4095, 65, EOF]);
        let want = reference_decode(&pack(&frozen)).unwrap();
        let n = LzwDecoder::new().decompress(&pack(&frozen), &mut out).unwrap();
        assert_eq!(out[..n], want[..]);
    }

    proptest! {
        #[test]
        fn round_trip(input in prop::collection::vec(any::<u8>(), 0..3000)) {
            let c = compress(&input);
            prop_assert!(c.len() <= max_compressed_len(input.len()));
            prop_assert_eq!(decompress(&c, input.len()).unwrap(), input);
        }

        #[test]
        fn round_trip_small_alphabet(
            input in prop::collection::vec(0u8..4, 0..20_000),
        ) {
            let c = compress(&input);
            prop_assert_eq!(decompress(&c, input.len()).unwrap(), input);
        }

        #[test]
        fn decoder_matches_go_rules_on_any_code_stream(
            choices in prop::collection::vec(any::<u32>(), 0..6000),
            clear_every in prop_oneof![Just(0u32), 50u32..5000],
            invalid in any::<bool>(),
            junk in prop::collection::vec(any::<u8>(), 0..4),
        ) {
            let mut stream = pack(&steered_codes(&choices, clear_every, invalid));
            stream.extend_from_slice(&junk);
            let want = reference_decode(&stream);
            let mut out = vec![0u8; 1 << 20];
            let got = LzwDecoder::new().decompress(&stream, &mut out);
            match (want, got) {
                (Some(w), Ok(n)) => prop_assert_eq!(&out[..n], &w[..]),
                (Some(w), Err(Error::TooLarge)) => prop_assert!(w.len() > out.len()),
                (None, Err(Error::Lzw)) => {}
                (w, g) => prop_assert!(false, "reference {:?} vs {:?}", w.map(|v| v.len()), g),
            }
        }

        #[test]
        fn garbage_never_panics(
            input in prop::collection::vec(any::<u8>(), 0..600),
            cap in 0usize..4096,
        ) {
            let mut out = vec![0u8; cap];
            if let Ok(n) = LzwDecoder::new().decompress(&input, &mut out) {
                prop_assert!(n <= cap);
            }
        }

        #[test]
        fn valid_prefix_then_garbage_never_panics(
            cut in 0usize..200,
            tail in prop::collection::vec(any::<u8>(), 0..64),
        ) {
            let mut s = compress(&noise(400, 6, 11));
            s.truncate(cut.min(s.len()));
            s.extend_from_slice(&tail);
            let mut out = vec![0u8; 1024];
            let _ = LzwDecoder::new().decompress(&s, &mut out);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(8))]
        #[test]
        fn round_trip_long(
            seed in any::<u64>(),
            k in 2u32..64,
            len in 100_000usize..300_000,
        ) {
            let input = noise(len, k, seed | 1);
            let c = compress(&input);
            let clears = codes_of(&c).iter().filter(|&&c| c == CLEAR).count();
            prop_assert!(clears >= 2, "no reset in {} bytes", len);
            prop_assert_eq!(decompress(&c, len).unwrap(), input);
        }
    }
}
