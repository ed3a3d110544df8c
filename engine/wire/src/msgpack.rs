//! The one msgpack cursor and writer every codec in the engine goes through.
//!
//! Go's go-msgpack 0.5 is used with two configurations (`protocol/README.md`
//! pitfall 1):
//!
//! * [`Dialect::Gossip`] — `MsgpackHandle{}`: the *old* spec. Strings **and**
//!   `[]byte` are raw strings (fixstr / str16 / str32, never str8 or bin).
//! * [`Dialect::Rpc`] — `{RawToString, WriteExt}`: the *new* spec. Strings use
//!   str8 for 32..=255 bytes, `[]byte` uses bin8/16/32.
//!
//! Decoding is lenient like Go's (either family for byte fields, any integer
//! width that fits, nil for the zero value), but never panics: every length
//! read from the wire is bounds-checked against the input before slicing.
//! Structs are maps whose keys the caller matches by exact name; unknown keys
//! are skipped with [`Reader::skip`].

use super::{Error, Result};

/// Deepest nesting [`Reader::skip`] follows. Gossip messages nest at most four
/// levels (push-pull state → events ring → bucket → event); 32 leaves room for
/// unknown fields without letting a hostile packet recurse without bound.
pub const MAX_DEPTH: u32 = 32;

mod marker {
    pub const NIL: u8 = 0xc0;
    pub const FALSE: u8 = 0xc2;
    pub const TRUE: u8 = 0xc3;
    pub const BIN8: u8 = 0xc4;
    pub const BIN16: u8 = 0xc5;
    pub const BIN32: u8 = 0xc6;
    pub const EXT8: u8 = 0xc7;
    pub const EXT16: u8 = 0xc8;
    pub const EXT32: u8 = 0xc9;
    pub const F32: u8 = 0xca;
    pub const F64: u8 = 0xcb;
    pub const U8: u8 = 0xcc;
    pub const U16: u8 = 0xcd;
    pub const U32: u8 = 0xce;
    pub const U64: u8 = 0xcf;
    pub const I8: u8 = 0xd0;
    pub const I16: u8 = 0xd1;
    pub const I32: u8 = 0xd2;
    pub const I64: u8 = 0xd3;
    pub const FIXEXT1: u8 = 0xd4;
    pub const FIXEXT16: u8 = 0xd8;
    pub const STR8: u8 = 0xd9;
    pub const STR16: u8 = 0xda;
    pub const STR32: u8 = 0xdb;
    pub const ARRAY16: u8 = 0xdc;
    pub const ARRAY32: u8 = 0xdd;
    pub const MAP16: u8 = 0xde;
    pub const MAP32: u8 = 0xdf;
}

/// Which go-msgpack configuration to mirror when encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// memberlist and Serf gossip (UDP/TCP 7946): old-spec raw strings.
    Gossip,
    /// The agent RPC protocol (TCP 7373): new-spec str8 and bin.
    Rpc,
}

/// An integer as it appeared on the wire: unsigned family or signed family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Int {
    U(u64),
    I(i64),
}

/// A panic-free msgpack cursor over a borrowed buffer.
///
/// Every read either advances past exactly one value (or one header) and
/// returns it, or returns an error; after an error the position is
/// unspecified and the reader should be dropped.
#[derive(Clone, Copy, Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader positioned at the start of `buf`.
    pub const fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Bytes consumed so far.
    #[inline]
    pub fn position(&self) -> usize {
        self.pos
    }

    /// The unread rest of the input.
    #[inline]
    pub fn remaining(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or(&[])
    }

    /// True when every byte has been consumed.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.remaining().is_empty()
    }

    /// Succeeds only if the whole input was consumed.
    #[inline]
    pub fn finish(&self) -> Result<()> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(Error::TrailingBytes)
        }
    }

    /// The next byte, without consuming it.
    #[inline]
    pub fn peek(&self) -> Result<u8> {
        self.remaining().first().copied().ok_or(Error::Truncated)
    }

    /// Consumes one raw byte (a message type byte, not a msgpack value).
    #[inline]
    pub fn byte(&mut self) -> Result<u8> {
        let b = self.peek()?;
        self.pos = self.pos.checked_add(1).ok_or(Error::Truncated)?;
        Ok(b)
    }

    /// Consumes `n` raw bytes.
    #[inline]
    pub fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).ok_or(Error::Truncated)?;
        let out = self.buf.get(self.pos..end).ok_or(Error::Truncated)?;
        self.pos = end;
        Ok(out)
    }

    #[inline]
    fn be<const N: usize>(&mut self) -> Result<[u8; N]> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    #[inline]
    fn len_u8(&mut self) -> Result<usize> {
        Ok(usize::from(self.byte()?))
    }
    #[inline]
    fn len_u16(&mut self) -> Result<usize> {
        Ok(usize::from(u16::from_be_bytes(self.be()?)))
    }
    #[inline]
    fn len_u32(&mut self) -> Result<usize> {
        usize::try_from(u32::from_be_bytes(self.be()?)).map_err(|_| Error::TooLarge)
    }

    /// Consumes a nil if one is next. Returns whether it did.
    #[inline]
    pub fn nil(&mut self) -> Result<bool> {
        if self.peek()? == marker::NIL {
            self.byte()?;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    /// A map header; nil reads as `None` (Go's nil map / zero struct).
    #[inline]
    pub fn map_len_or_nil(&mut self) -> Result<Option<usize>> {
        self.container_len(0x80, marker::MAP16, marker::MAP32)
    }

    /// A map header; nil reads as an empty map.
    #[inline]
    pub fn map_len(&mut self) -> Result<usize> {
        Ok(self.map_len_or_nil()?.unwrap_or(0))
    }

    /// An array header; nil reads as `None` (Go's nil slice).
    #[inline]
    pub fn array_len_or_nil(&mut self) -> Result<Option<usize>> {
        self.container_len(0x90, marker::ARRAY16, marker::ARRAY32)
    }

    /// A map or array header: the fix form `fix | n` (n < 16), the 16- or
    /// 32-bit form, or nil (`None`).
    #[inline(always)]
    fn container_len(&mut self, fix: u8, m16: u8, m32: u8) -> Result<Option<usize>> {
        let m = self.byte()?;
        if m & 0xf0 == fix {
            Ok(Some(usize::from(m & 0x0f)))
        } else if m == m16 {
            self.len_u16().map(Some)
        } else if m == m32 {
            self.len_u32().map(Some)
        } else if m == marker::NIL {
            Ok(None)
        } else {
            Err(Error::WrongType)
        }
    }

    /// A str-family value as raw bytes (map keys, and byte fields sent as str).
    /// Nil reads as empty. Bin is rejected, as Go rejects it for strings.
    #[inline]
    pub fn str_bytes(&mut self) -> Result<&'a [u8]> {
        let m = self.byte()?;
        let n = match m {
            0xa0..=0xbf => usize::from(m & 0x1f),
            marker::STR8 => self.len_u8()?,
            marker::STR16 => self.len_u16()?,
            marker::STR32 => self.len_u32()?,
            marker::NIL => 0,
            _ => return Err(Error::WrongType),
        };
        self.take(n)
    }

    /// A Go `string` field: any str form or nil (→ `""`), validated as UTF-8.
    #[inline]
    pub fn str(&mut self) -> Result<&'a str> {
        let b = self.str_bytes()?;
        if b.is_ascii() {
            // Names, addresses and tags are almost always ASCII; the
            // word-at-a-time ASCII check is far cheaper on short strings
            // than full validation.
            // SAFETY: every byte is below 0x80, so `b` is valid UTF-8.
            return Ok(unsafe { core::str::from_utf8_unchecked(b) });
        }
        core::str::from_utf8(b).map_err(|_| Error::InvalidUtf8)
    }

    /// A Go `[]byte` field: any str or bin form; nil reads as `None`, so nil
    /// and empty stay distinct for byte-exact re-encoding.
    #[inline]
    pub fn bytes(&mut self) -> Result<Option<&'a [u8]>> {
        let m = self.byte()?;
        let n = match m {
            0xa0..=0xbf => usize::from(m & 0x1f),
            marker::STR8 | marker::BIN8 => self.len_u8()?,
            marker::STR16 | marker::BIN16 => self.len_u16()?,
            marker::STR32 | marker::BIN32 => self.len_u32()?,
            marker::NIL => return Ok(None),
            _ => return Err(Error::WrongType),
        };
        self.take(n).map(Some)
    }

    /// A `[]byte` field where nil and empty need not be told apart.
    #[inline]
    pub fn bytes_or_empty(&mut self) -> Result<&'a [u8]> {
        Ok(self.bytes()?.unwrap_or(&[]))
    }

    #[inline]
    fn int(&mut self) -> Result<Int> {
        let m = self.byte()?;
        Ok(match m {
            0x00..=0x7f => Int::U(u64::from(m)),
            0xe0..=0xff => Int::I(i64::from(m as i8)),
            marker::U8 => Int::U(u64::from(self.byte()?)),
            marker::U16 => Int::U(u64::from(u16::from_be_bytes(self.be()?))),
            marker::U32 => Int::U(u64::from(u32::from_be_bytes(self.be()?))),
            marker::U64 => Int::U(u64::from_be_bytes(self.be()?)),
            marker::I8 => Int::I(i64::from(i8::from_be_bytes(self.be()?))),
            marker::I16 => Int::I(i64::from(i16::from_be_bytes(self.be()?))),
            marker::I32 => Int::I(i64::from(i32::from_be_bytes(self.be()?))),
            marker::I64 => Int::I(i64::from_be_bytes(self.be()?)),
            marker::NIL => Int::U(0),
            _ => return Err(Error::WrongType),
        })
    }

    /// An unsigned integer field of any wire width that fits `T`; nil is 0.
    /// Negative values and overflow are [`Error::IntRange`], as in Go.
    #[inline(always)]
    pub fn uint<T: TryFrom<u64>>(&mut self) -> Result<T> {
        // Most fields (ports, states, small counters) are positive fixints.
        if let Some(&b) = self.buf.get(self.pos) {
            if b < 0x80 {
                // `pos < buf.len()`, so this cannot wrap.
                self.pos = self.pos.wrapping_add(1);
                return T::try_from(u64::from(b)).map_err(|_| Error::IntRange);
            }
        }
        self.uint_any()
    }

    #[inline(never)]
    fn uint_any<T: TryFrom<u64>>(&mut self) -> Result<T> {
        let v = match self.int()? {
            Int::U(v) => v,
            Int::I(v) => u64::try_from(v).map_err(|_| Error::IntRange)?,
        };
        T::try_from(v).map_err(|_| Error::IntRange)
    }

    /// A signed integer field (Go `int`, `int64`, `time.Duration`); nil is 0.
    #[inline]
    pub fn sint<T: TryFrom<i64>>(&mut self) -> Result<T> {
        let v = match self.int()? {
            Int::U(v) => i64::try_from(v).map_err(|_| Error::IntRange)?,
            Int::I(v) => v,
        };
        T::try_from(v).map_err(|_| Error::IntRange)
    }

    /// A Go `int` that must be a non-negative count or length (e.g.
    /// `Nodes`, `UserStateLen`): signed on the wire, usize here.
    #[inline]
    pub fn count(&mut self) -> Result<usize> {
        let v: i64 = self.sint()?;
        usize::try_from(v).map_err(|_| Error::IntRange)
    }

    /// A bool: `0xc2`/`0xc3`, or the integers 0/1 as Go also accepts; nil is false.
    #[inline]
    pub fn bool(&mut self) -> Result<bool> {
        match self.peek()? {
            marker::TRUE => {
                self.byte()?;
                Ok(true)
            }
            marker::FALSE => {
                self.byte()?;
                Ok(false)
            }
            _ => match self.uint::<u64>()? {
                0 => Ok(false),
                1 => Ok(true),
                _ => Err(Error::WrongType),
            },
        }
    }

    /// A float field: float64 or float32, or an integer; nil is 0.
    #[inline]
    pub fn f64(&mut self) -> Result<f64> {
        match self.peek()? {
            marker::F64 => {
                self.byte()?;
                Ok(f64::from_be_bytes(self.be()?))
            }
            marker::F32 => {
                self.byte()?;
                Ok(f64::from(f32::from_be_bytes(self.be()?)))
            }
            _ => match self.int()? {
                Int::U(v) => Ok(v as f64),
                Int::I(v) => Ok(v as f64),
            },
        }
    }

    /// Skips one complete value of any type, nested up to [`MAX_DEPTH`].
    #[inline]
    pub fn skip(&mut self) -> Result<()> {
        self.skip_depth(0)
    }

    /// Skips one value and returns its raw bytes (for lazily decoded views).
    #[inline]
    pub fn value_bytes(&mut self) -> Result<&'a [u8]> {
        let start = self.pos;
        self.skip()?;
        self.buf.get(start..self.pos).ok_or(Error::Truncated)
    }

    fn skip_depth(&mut self, depth: u32) -> Result<()> {
        if depth >= MAX_DEPTH {
            return Err(Error::TooDeep);
        }
        let m = self.byte()?;
        let (skip, items) = match m {
            0x00..=0x7f | 0xe0..=0xff | marker::NIL | marker::FALSE | marker::TRUE => (0, 0),
            0x80..=0x8f => (0, usize::from(m & 0x0f).checked_mul(2).ok_or(Error::TooLarge)?),
            0x90..=0x9f => (0, usize::from(m & 0x0f)),
            0xa0..=0xbf => (usize::from(m & 0x1f), 0),
            marker::BIN8 | marker::STR8 => (self.len_u8()?, 0),
            marker::BIN16 | marker::STR16 => (self.len_u16()?, 0),
            marker::BIN32 | marker::STR32 => (self.len_u32()?, 0),
            marker::EXT8 => (self.len_u8()?.checked_add(1).ok_or(Error::TooLarge)?, 0),
            marker::EXT16 => (self.len_u16()?.checked_add(1).ok_or(Error::TooLarge)?, 0),
            marker::EXT32 => (self.len_u32()?.checked_add(1).ok_or(Error::TooLarge)?, 0),
            marker::F32 => (4, 0),
            marker::F64 => (8, 0),
            marker::U8 | marker::I8 => (1, 0),
            marker::U16 | marker::I16 => (2, 0),
            marker::U32 | marker::I32 => (4, 0),
            marker::U64 | marker::I64 => (8, 0),
            marker::FIXEXT1..=marker::FIXEXT16 => {
                // fixext 1, 2, 4, 8, 16: a type byte plus 2^(m - 0xd4) data bytes.
                let data = 1usize << (m.wrapping_sub(marker::FIXEXT1) & 7);
                (data.checked_add(1).ok_or(Error::TooLarge)?, 0)
            }
            marker::ARRAY16 => (0, self.len_u16()?),
            marker::ARRAY32 => (0, self.len_u32()?),
            marker::MAP16 => (0, self.len_u16()?.checked_mul(2).ok_or(Error::TooLarge)?),
            marker::MAP32 => (0, self.len_u32()?.checked_mul(2).ok_or(Error::TooLarge)?),
            _ => return Err(Error::WrongType), // 0xc1 is never used
        };
        self.take(skip)?;
        // Each item consumes at least one byte, so a hostile count ends at
        // `Truncated` after at most `remaining()` iterations.
        let next = depth.checked_add(1).ok_or(Error::TooDeep)?;
        for _ in 0..items {
            self.skip_depth(next)?;
        }
        Ok(())
    }
}

/// Walks the fields of a struct encoded as a msgpack map, calling `f` with
/// each key and the reader positioned at its value. `f` must consume the
/// value (usually with a typed read, or [`Reader::skip`] for unknown keys).
/// A nil struct has no fields.
#[inline]
pub fn read_struct<'a>(
    r: &mut Reader<'a>,
    mut f: impl FnMut(&'a [u8], &mut Reader<'a>) -> Result<()>,
) -> Result<()> {
    let n = r.map_len()?;
    for _ in 0..n {
        let key = r.str_bytes()?;
        f(key, r)?;
    }
    Ok(())
}

/// A msgpack writer into a caller-provided buffer, or a counter of bytes
/// (see [`Writer::counting`]) used to size a value before writing it.
#[derive(Debug)]
pub struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
    dialect: Dialect,
    counting: bool,
}

impl<'a> Writer<'a> {
    /// A writer that fills `buf` from the start.
    #[inline]
    pub fn new(buf: &'a mut [u8], dialect: Dialect) -> Self {
        Writer { buf, pos: 0, dialect, counting: false }
    }

    /// A writer that only counts: every write succeeds and advances
    /// [`Writer::len`], nothing is stored.
    #[inline]
    pub fn counting(dialect: Dialect) -> Writer<'static> {
        Writer { buf: &mut [], pos: 0, dialect, counting: true }
    }

    /// Bytes written (or counted) so far.
    #[inline]
    pub fn len(&self) -> usize {
        self.pos
    }

    /// True if nothing has been written yet.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.pos == 0
    }

    /// The dialect this writer encodes.
    #[inline]
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The bytes written so far (empty for a counting writer).
    #[inline]
    pub fn written(&self) -> &[u8] {
        if self.counting {
            &[]
        } else {
            self.buf.get(..self.pos).unwrap_or(&[])
        }
    }

    /// Raw bytes, not a msgpack value (type bytes, user state, payloads).
    #[inline(always)]
    pub fn raw(&mut self, bytes: &[u8]) -> Result<()> {
        let end = self.pos.checked_add(bytes.len()).ok_or(Error::NoSpace)?;
        if !self.counting {
            let dst = self.buf.get_mut(self.pos..end).ok_or(Error::NoSpace)?;
            copy_short(dst, bytes);
        }
        self.pos = end;
        Ok(())
    }

    /// One raw byte.
    #[inline(always)]
    pub fn byte(&mut self, b: u8) -> Result<()> {
        if !self.counting {
            *self.buf.get_mut(self.pos).ok_or(Error::NoSpace)? = b;
        }
        self.pos = self.pos.checked_add(1).ok_or(Error::NoSpace)?;
        Ok(())
    }

    #[inline(always)]
    fn head(&mut self, m: u8, len: &[u8]) -> Result<()> {
        self.byte(m)?;
        self.raw(len)
    }

    /// nil (`0xc0`).
    #[inline]
    pub fn nil(&mut self) -> Result<()> {
        self.byte(marker::NIL)
    }

    /// A bool.
    #[inline]
    pub fn bool(&mut self, v: bool) -> Result<()> {
        self.byte(if v { marker::TRUE } else { marker::FALSE })
    }

    /// An unsigned integer in its smallest form, as Go writes every uint.
    #[inline]
    pub fn uint(&mut self, v: u64) -> Result<()> {
        if v <= 0x7f {
            self.byte(v as u8)
        } else if let Ok(v) = u8::try_from(v) {
            self.head(marker::U8, &[v])
        } else if let Ok(v) = u16::try_from(v) {
            self.head(marker::U16, &v.to_be_bytes())
        } else if let Ok(v) = u32::try_from(v) {
            self.head(marker::U32, &v.to_be_bytes())
        } else {
            self.head(marker::U64, &v.to_be_bytes())
        }
    }

    /// A signed integer as Go writes it: non-negative values in the unsigned
    /// family, negative values in the smallest signed form.
    #[inline]
    pub fn sint(&mut self, v: i64) -> Result<()> {
        if let Ok(u) = u64::try_from(v) {
            return self.uint(u);
        }
        if v >= -32 {
            self.byte(v as u8)
        } else if let Ok(v) = i8::try_from(v) {
            self.head(marker::I8, &v.to_be_bytes())
        } else if let Ok(v) = i16::try_from(v) {
            self.head(marker::I16, &v.to_be_bytes())
        } else if let Ok(v) = i32::try_from(v) {
            self.head(marker::I32, &v.to_be_bytes())
        } else {
            self.head(marker::I64, &v.to_be_bytes())
        }
    }

    /// A float64 (always 9 bytes, even for 0.0).
    #[inline]
    pub fn f64(&mut self, v: f64) -> Result<()> {
        self.head(marker::F64, &v.to_be_bytes())
    }

    #[inline(always)]
    fn str_header(&mut self, len: usize) -> Result<()> {
        if len < 32 {
            self.byte(0xa0 | len as u8)
        } else if let (Dialect::Rpc, Ok(n)) = (self.dialect, u8::try_from(len)) {
            self.head(marker::STR8, &[n])
        } else {
            self.sized_head(len, marker::STR16, marker::STR32)
        }
    }

    /// The 16- or 32-bit form of a length header (`m16`/`m32`), for a
    /// length the fix and 8-bit forms do not take.
    #[inline(always)]
    fn sized_head(&mut self, n: usize, m16: u8, m32: u8) -> Result<()> {
        if let Ok(n) = u16::try_from(n) {
            self.head(m16, &n.to_be_bytes())
        } else {
            let n = u32::try_from(n).map_err(|_| Error::TooLarge)?;
            self.head(m32, &n.to_be_bytes())
        }
    }

    /// A string (Go `string`), in the dialect's str forms.
    #[inline(always)]
    pub fn str(&mut self, s: &str) -> Result<()> {
        self.str_bytes(s.as_bytes())
    }

    /// Raw bytes in str form regardless of dialect (map keys, and strings
    /// held as bytes).
    #[inline(always)]
    pub fn str_bytes(&mut self, s: &[u8]) -> Result<()> {
        self.str_header(s.len())?;
        self.raw(s)
    }

    /// A Go `[]byte` value: raw string in the gossip dialect, bin in RPC.
    #[inline]
    pub fn bin(&mut self, b: &[u8]) -> Result<()> {
        match self.dialect {
            Dialect::Gossip => self.str_bytes(b),
            Dialect::Rpc => {
                if let Ok(n) = u8::try_from(b.len()) {
                    self.head(marker::BIN8, &[n])?;
                } else {
                    self.sized_head(b.len(), marker::BIN16, marker::BIN32)?;
                }
                self.raw(b)
            }
        }
    }

    /// A `[]byte` that may be nil: `None` writes nil, `Some` writes the bytes
    /// (an empty non-nil slice stays an empty string/bin, as in Go).
    #[inline]
    pub fn bin_opt(&mut self, b: Option<&[u8]>) -> Result<()> {
        match b {
            Some(b) => self.bin(b),
            None => self.nil(),
        }
    }

    /// A map header for `n` entries.
    #[inline]
    pub fn map_len(&mut self, n: usize) -> Result<()> {
        if n < 16 {
            self.byte(0x80 | n as u8)
        } else {
            self.sized_head(n, marker::MAP16, marker::MAP32)
        }
    }

    /// An array header for `n` items.
    #[inline]
    pub fn array_len(&mut self, n: usize) -> Result<()> {
        if n < 16 {
            self.byte(0x90 | n as u8)
        } else {
            self.sized_head(n, marker::ARRAY16, marker::ARRAY32)
        }
    }

    /// A struct field name (always a short str).
    #[inline(always)]
    pub fn key(&mut self, k: &str) -> Result<()> {
        self.str_bytes(k.as_bytes())
    }
}

/// Copies `src` into `dst` (same length). Keys, headers and names are
/// mostly under 32 bytes: two overlapping fixed-size moves cover them
/// without a call into `memmove` or a byte loop.
#[inline(always)]
fn copy_short(dst: &mut [u8], src: &[u8]) {
    if src.len() <= 32 && dst.len() == src.len() {
        if copy_ends::<16>(dst, src) || copy_ends::<8>(dst, src) || copy_ends::<4>(dst, src) {
            return;
        }
        for (d, s) in dst.iter_mut().zip(src) {
            *d = *s;
        }
    } else {
        dst.copy_from_slice(src);
    }
}

/// For `N <= len <= 2N`: copies the first and the last `N` bytes (they
/// overlap in the middle). Returns false, copying nothing, if `len < N`.
#[inline(always)]
fn copy_ends<const N: usize>(dst: &mut [u8], src: &[u8]) -> bool {
    if src.len() < N {
        return false;
    }
    if let (Some(d), Some(s)) = (dst.first_chunk_mut::<N>(), src.first_chunk::<N>()) {
        *d = *s;
    }
    if let (Some(d), Some(s)) = (dst.last_chunk_mut::<N>(), src.last_chunk::<N>()) {
        *d = *s;
    }
    true
}

/// The encoded size of whatever `f` writes, in `dialect`.
pub fn encoded_len(
    dialect: Dialect,
    f: impl FnOnce(&mut Writer<'_>) -> Result<()>,
) -> Result<usize> {
    let mut w = Writer::counting(dialect);
    f(&mut w)?;
    Ok(w.len())
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::arithmetic_side_effects)]
mod tests {
    use super::*;

    fn enc(d: Dialect, f: impl FnOnce(&mut Writer<'_>) -> Result<()>) -> Vec<u8> {
        let mut buf = vec![0xAAu8; 1 << 17];
        let mut w = Writer::new(&mut buf, d);
        f(&mut w).unwrap();
        let n = w.len();
        assert_eq!(encoded_len(d, |_| Ok(())).unwrap(), 0);
        buf.truncate(n);
        buf
    }

    #[test]
    fn uint_uses_smallest_form() {
        let cases: &[(u64, &[u8])] = &[
            (0, &[0x00]),
            (127, &[0x7f]),
            (128, &[0xcc, 0x80]),
            (7946, &[0xcd, 0x1f, 0x0a]),
            (3_200_000_000, &[0xce, 0xbe, 0xbc, 0x20, 0x00]),
            (1 << 40, &[0xcf, 0, 0, 1, 0, 0, 0, 0, 0]),
        ];
        for &(v, bytes) in cases {
            assert_eq!(enc(Dialect::Gossip, |w| w.uint(v)), bytes, "{v}");
            assert_eq!(Reader::new(bytes).uint::<u64>().unwrap(), v);
        }
    }

    #[test]
    fn sint_positive_is_unsigned_family() {
        assert_eq!(enc(Dialect::Gossip, |w| w.sint(3_000_000_000)), [0xce, 0xb2, 0xd0, 0x5e, 0x00]);
        assert_eq!(enc(Dialect::Gossip, |w| w.sint(-1)), [0xff]);
        assert_eq!(enc(Dialect::Gossip, |w| w.sint(-33)), [0xd0, 0xdf]);
        assert_eq!(enc(Dialect::Gossip, |w| w.sint(-200)), [0xd1, 0xff, 0x38]);
        for v in [-1i64, -33, -200, -70000, i64::MIN, 0, 5, i64::MAX] {
            let b = enc(Dialect::Gossip, |w| w.sint(v));
            assert_eq!(Reader::new(&b).sint::<i64>().unwrap(), v);
        }
    }

    #[test]
    fn int_range_checks() {
        assert_eq!(Reader::new(&[0xff]).uint::<u32>(), Err(Error::IntRange));
        assert_eq!(Reader::new(&[0xcd, 0x01, 0x00]).uint::<u8>(), Err(Error::IntRange));
        assert_eq!(Reader::new(&[0xd0, 0x05]).uint::<u8>(), Ok(5));
        assert_eq!(
            Reader::new(&[0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).sint::<i64>(),
            Err(Error::IntRange)
        );
        assert_eq!(Reader::new(&[0xc0]).uint::<u16>(), Ok(0));
        assert_eq!(Reader::new(&[0xa0]).uint::<u16>(), Err(Error::WrongType));
        assert_eq!(Reader::new(&[0xff]).count(), Err(Error::IntRange));
    }

    #[test]
    fn strings_per_dialect() {
        let s32 = "x".repeat(32);
        let g = enc(Dialect::Gossip, |w| w.str(&s32));
        assert_eq!(&g[..3], &[0xda, 0x00, 0x20]);
        let r = enc(Dialect::Rpc, |w| w.str(&s32));
        assert_eq!(&r[..2], &[0xd9, 0x20]);
        let big = "y".repeat(70_000);
        assert_eq!(enc(Dialect::Gossip, |w| w.str(&big))[0], 0xdb);
        assert_eq!(enc(Dialect::Gossip, |w| w.str("ab")), [0xa2, b'a', b'b']);
        // bytes: raw str in gossip, bin in rpc
        assert_eq!(enc(Dialect::Gossip, |w| w.bin(&[1, 2])), [0xa2, 1, 2]);
        assert_eq!(enc(Dialect::Rpc, |w| w.bin(&[1, 2])), [0xc4, 2, 1, 2]);
        assert_eq!(enc(Dialect::Rpc, |w| w.bin(&[0; 300]))[..3], [0xc5, 0x01, 0x2c]);
        assert_eq!(enc(Dialect::Gossip, |w| w.bin_opt(None)), [0xc0]);
        assert_eq!(enc(Dialect::Gossip, |w| w.bin_opt(Some(&[]))), [0xa0]);
    }

    #[test]
    fn string_fields_reject_bin_byte_fields_accept_both() {
        assert_eq!(Reader::new(&[0xc4, 1, b'a']).str(), Err(Error::WrongType));
        assert_eq!(Reader::new(&[0xc4, 1, b'a']).bytes(), Ok(Some(&b"a"[..])));
        assert_eq!(Reader::new(&[0xd9, 1, b'a']).str(), Ok("a"));
        assert_eq!(Reader::new(&[0xc0]).str(), Ok(""));
        assert_eq!(Reader::new(&[0xc0]).bytes(), Ok(None));
        assert_eq!(Reader::new(&[0xa0]).bytes(), Ok(Some(&b""[..])));
        assert_eq!(Reader::new(&[0xa2, 0xff, 0xfe]).str(), Err(Error::InvalidUtf8));
        assert_eq!(Reader::new(&[0xa2, 0xff, 0xfe]).bytes(), Ok(Some(&[0xff, 0xfe][..])));
    }

    #[test]
    fn truncation_is_an_error_not_a_panic() {
        let samples: &[&[u8]] = &[
            &[0xda, 0x00],
            &[0xda, 0x00, 0x05, b'a'],
            &[0xdb, 0xff, 0xff, 0xff, 0xff],
            &[0xcd, 0x01],
            &[0xcb, 0, 0],
            &[0xdd, 0xff, 0xff, 0xff, 0xff],
            &[0xdf, 0xff, 0xff, 0xff, 0xff, 0x01],
            &[],
        ];
        for s in samples {
            let mut r = Reader::new(s);
            assert!(r.skip().is_err(), "{s:02x?}");
            assert!(Reader::new(s).str().is_err());
            assert!(Reader::new(s).uint::<u64>().is_err() || s.is_empty());
        }
    }

    #[test]
    fn skip_depth_is_bounded() {
        let deep = vec![0x91u8; 100];
        assert_eq!(Reader::new(&deep).skip(), Err(Error::TooDeep));
        let mut ok = vec![0x91u8; 10];
        ok.push(0xc0);
        let mut r = Reader::new(&ok);
        r.skip().unwrap();
        assert!(r.is_empty());
    }

    #[test]
    fn skip_covers_every_format() {
        let mut v = Vec::new();
        v.extend_from_slice(&[0x05, 0xe0, 0xc0, 0xc2, 0xc3]);
        v.extend_from_slice(&[0xc4, 1, 9, 0xc5, 0, 1, 9, 0xc6, 0, 0, 0, 1, 9]);
        v.extend_from_slice(&[0xc7, 1, 7, 9, 0xc8, 0, 1, 7, 9, 0xc9, 0, 0, 0, 1, 7, 9]);
        v.extend_from_slice(&[0xca, 0, 0, 0, 0, 0xcb, 0, 0, 0, 0, 0, 0, 0, 0]);
        v.extend_from_slice(&[0xcc, 1, 0xcd, 0, 1, 0xce, 0, 0, 0, 1, 0xcf, 0, 0, 0, 0, 0, 0, 0, 1]);
        v.extend_from_slice(&[0xd0, 1, 0xd1, 0, 1, 0xd2, 0, 0, 0, 1, 0xd3, 0, 0, 0, 0, 0, 0, 0, 1]);
        v.extend_from_slice(&[
            0xd4, 1, 2, 0xd5, 1, 2, 3, 0xd6, 1, 0, 0, 0, 0, 0xd7, 1, 0, 0, 0, 0, 0, 0, 0, 0,
        ]);
        v.extend_from_slice(&[0xd8, 1]);
        v.extend_from_slice(&[0; 16]);
        v.extend_from_slice(&[0xd9, 1, b'a', 0xda, 0, 1, b'a', 0xdb, 0, 0, 0, 1, b'a']);
        v.extend_from_slice(&[0xdc, 0, 1, 0xc0, 0xdd, 0, 0, 0, 1, 0xc0]);
        v.extend_from_slice(&[0xde, 0, 1, 0xa1, b'k', 0xc0, 0xdf, 0, 0, 0, 1, 0xa1, b'k', 0xc0]);
        v.extend_from_slice(&[0x81, 0xa1, b'k', 0x91, 0x01]);
        let mut r = Reader::new(&v);
        let mut n = 0;
        while !r.is_empty() {
            r.skip().unwrap();
            n += 1;
        }
        assert_eq!(n, 34);
        assert_eq!(Reader::new(&[0xc1]).skip(), Err(Error::WrongType));
    }

    #[test]
    fn bool_and_float() {
        assert_eq!(Reader::new(&[0xc3]).bool(), Ok(true));
        assert_eq!(Reader::new(&[0x01]).bool(), Ok(true));
        assert_eq!(Reader::new(&[0x00]).bool(), Ok(false));
        assert_eq!(Reader::new(&[0x02]).bool(), Err(Error::WrongType));
        let b = enc(Dialect::Gossip, |w| w.f64(1.5));
        assert_eq!(b, [0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0]);
        assert_eq!(Reader::new(&b).f64(), Ok(1.5));
        assert_eq!(Reader::new(&[0xca, 0x3f, 0xc0, 0, 0]).f64(), Ok(1.5));
    }

    #[test]
    fn no_space_is_reported() {
        let mut buf = [0u8; 3];
        let mut w = Writer::new(&mut buf, Dialect::Gossip);
        assert_eq!(w.str("abcd"), Err(Error::NoSpace));
        let mut w = Writer::new(&mut buf, Dialect::Gossip);
        w.uint(7946).unwrap();
        assert_eq!(w.byte(0), Err(Error::NoSpace));
        assert_eq!(w.written(), &[0xcd, 0x1f, 0x0a]);
    }

    #[test]
    fn struct_walk_skips_unknown_keys() {
        // {"Foo": [1, 2], "SeqNo": 9}
        let b = [0x82, 0xa3, b'F', b'o', b'o', 0x92, 1, 2, 0xa5, b'S', b'e', b'q', b'N', b'o', 9];
        let mut seq = 0u32;
        let mut r = Reader::new(&b);
        read_struct(&mut r, |k, r| {
            match k {
                b"SeqNo" => seq = r.uint()?,
                _ => r.skip()?,
            }
            Ok(())
        })
        .unwrap();
        r.finish().unwrap();
        assert_eq!(seq, 9);
    }
}
