//! The UDP pipeline exactly as memberlist 0.2.2 layers it
//! (`protocol/memberlist.md` §5, §6, §7):
//!
//! ```text
//! send:    message | compound  →  LZW compress (only if smaller)  →  CRC (if asked)  →  AES-GCM v1 (AAD empty)
//! receive: decrypt (any key, v0/v1)  →  CRC check (if present)  →  compound / compress peeled recursively
//! ```
//!
//! Sealing works in place in one caller buffer: the payload is written at
//! [`HEADROOM`] and each wrapper is prepended into the headroom, so nothing is
//! copied except the compression output. Opening decrypts in place and
//! decompresses into buffers preallocated in [`PacketCodec`].

use core::ops::Range;

use zerocopy::byteorder::big_endian::U32;

use super::crypto::{Keyring, ENCRYPT_OVERHEAD};
use super::frame::{self, CompoundHeader, CrcHeader};
use super::lzw::{max_compressed_len, LzwDecoder, LzwEncoder, MIN_COMPRESSIBLE};
use super::memberlist::{compress_message_len, Body, Compress, Message, MessageType};
use super::msgpack::Writer;
use super::{Error, Result};

/// Largest datagram accepted (memberlist's UDP read buffer).
pub const MAX_DATAGRAM: usize = 65_536;
/// Room a sealed datagram needs in front of its payload: 13 bytes of
/// encryption header + 5 bytes of CRC header.
pub const HEADROOM: usize = 13 + 5;
/// Room a sealed datagram needs after its payload: the GCM tag.
pub const TAILROOM: usize = 16;
/// Size of a packet buffer that can hold any datagram plus wrappers.
pub const PACKET_BUF: usize = HEADROOM + MAX_DATAGRAM + TAILROOM;
/// Largest number of parts a compound may carry. The wire allows 255, but Go
/// 0.2.2 computes the length table size in 8-bit arithmetic and mis-parses
/// compounds of 128 parts or more.
pub const MAX_COMPOUND_PARTS: usize = 127;
/// How many compress layers may nest inside one datagram (Go never nests;
/// one level of nesting is tolerated, more is [`Error::TooDeep`]).
pub const MAX_COMPRESS_NESTING: usize = 2;
/// How deep compound-in-compound may nest.
const MAX_NESTING: u32 = 4;

/// Which optional layers to apply when sealing a datagram.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SealOptions {
    /// Replace the payload by an LZW compress message if that is strictly smaller.
    pub compress: bool,
    /// Prepend the CRC wrapper (only for peers with protocol max >= 5, and in
    /// Go 0.2.2 only on gossip and suspect-probe packets).
    pub crc: bool,
}

/// Reusable state for sealing and opening datagrams: LZW tables and
/// scratch buffers, allocated once.
pub struct PacketCodec {
    enc: LzwEncoder,
    dec: LzwDecoder,
    /// LZW output while sealing.
    deflate: Box<[u8]>,
    /// One decompression buffer per compress nesting level.
    inflate: [Box<[u8]>; MAX_COMPRESS_NESTING],
}

impl core::fmt::Debug for PacketCodec {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("PacketCodec")
    }
}

impl Default for PacketCodec {
    fn default() -> Self {
        Self::new()
    }
}

impl PacketCodec {
    /// Allocates the LZW tables and three 64 KiB scratch buffers.
    pub fn new() -> Self {
        PacketCodec {
            enc: LzwEncoder::new(),
            dec: LzwDecoder::new(),
            deflate: vec![0; max_compressed_len(MAX_DATAGRAM)].into_boxed_slice(),
            inflate: [
                vec![0; MAX_DATAGRAM].into_boxed_slice(),
                vec![0; MAX_DATAGRAM].into_boxed_slice(),
            ],
        }
    }

    /// Seals a datagram in place. On entry `buf[HEADROOM..HEADROOM + len]`
    /// holds the payload (a message or compound); `buf` must be at least
    /// `HEADROOM + len + TAILROOM` long. Returns the range of `buf` to send.
    ///
    /// `nonce` is used only when `keyring` is given (encryption is enabled);
    /// draw it from the engine's RNG for every datagram.
    pub fn seal(
        &mut self,
        buf: &mut [u8],
        len: usize,
        opts: SealOptions,
        keyring: Option<&Keyring>,
        nonce: [u8; 12],
    ) -> Result<Range<usize>> {
        let mut start = HEADROOM;
        let mut end = HEADROOM.checked_add(len).ok_or(Error::NoSpace)?;
        if len == 0 {
            return Err(Error::Empty);
        }
        // Below MIN_COMPRESSIBLE the compress message is never smaller, so
        // it would be discarded: skip building it (same bytes out).
        if opts.compress && len >= MIN_COMPRESSIBLE {
            let payload = buf.get(start..end).ok_or(Error::NoSpace)?;
            let n = self.enc.compress(payload, &mut self.deflate)?;
            let total = compress_message_len(n);
            if total < len {
                let lzw = self.deflate.get(..n).ok_or(Error::NoSpace)?;
                let out = buf.get_mut(start..end).ok_or(Error::NoSpace)?;
                let written = Compress { algo: 0, buf: Some(lzw) }.encode_to(out)?;
                end = start.checked_add(written).ok_or(Error::NoSpace)?;
            }
        }
        if opts.crc {
            let crc = crc32fast::hash(buf.get(start..end).ok_or(Error::NoSpace)?);
            start = start.checked_sub(core::mem::size_of::<CrcHeader>()).ok_or(Error::NoSpace)?;
            let header = CrcHeader { kind: MessageType::HasCrc as u8, crc: U32::new(crc) };
            frame::put(&header, buf.get_mut(start..).ok_or(Error::NoSpace)?)?;
        }
        if let Some(keyring) = keyring {
            let plain = end.checked_sub(start).ok_or(Error::NoSpace)?;
            start = start.checked_sub(ENCRYPT_OVERHEAD - TAILROOM).ok_or(Error::NoSpace)?;
            let sealed = keyring.seal_in_place(
                buf.get_mut(start..).ok_or(Error::NoSpace)?,
                plain,
                nonce,
                &[],
            )?;
            end = start.checked_add(sealed).ok_or(Error::NoSpace)?;
        }
        Ok(start..end)
    }

    /// Strips encryption (in place) and the CRC wrapper from a received
    /// datagram; returns the range of the payload within `packet`.
    ///
    /// With a keyring the datagram must decrypt (memberlist's
    /// `GossipVerifyIncoming`, always on in Serf); without one it is taken as
    /// plaintext. A CRC wrapper is verified when present.
    pub fn open(packet: &mut [u8], keyring: Option<&Keyring>) -> Result<Range<usize>> {
        if packet.is_empty() {
            return Err(Error::Empty);
        }
        let mut range = 0..packet.len();
        if let Some(keyring) = keyring {
            range = keyring.open_in_place(packet, &[])?;
        }
        let payload = packet.get(range.clone()).ok_or(Error::Truncated)?;
        if payload.len() >= core::mem::size_of::<CrcHeader>()
            && payload.first() == Some(&(MessageType::HasCrc as u8))
        {
            let (h, rest): (&CrcHeader, _) = frame::split(payload)?;
            if crc32fast::hash(rest) != h.crc.get() {
                return Err(Error::BadCrc);
            }
            range.start = range
                .start
                .checked_add(core::mem::size_of::<CrcHeader>())
                .ok_or(Error::Truncated)?;
        }
        if range.is_empty() {
            return Err(Error::Empty);
        }
        Ok(range)
    }

    /// Calls `visit` once for every leaf message in `payload` (an opened
    /// datagram), peeling compound and compress layers in order. A part
    /// that fails to decode is reported as `Err` and the walk goes on with
    /// the next part; a truncated compound reports `Err(Truncated)` after
    /// the parts that were complete, as Go does.
    pub fn walk(&mut self, payload: &[u8], visit: &mut dyn FnMut(Result<Message<'_>>)) {
        walk_inner(&mut self.dec, &mut self.inflate, payload, 0, visit);
    }

    /// Decompresses a compress message body (after its type byte) into the
    /// first scratch buffer and returns the plaintext. For tests and tools;
    /// [`PacketCodec::walk`] handles compress layers itself.
    pub fn inflate(&mut self, body: &[u8]) -> Result<&[u8]> {
        let [first, _] = &mut self.inflate;
        let n = decompress_body(&mut self.dec, body, first)?;
        first.get(..n).ok_or(Error::Truncated)
    }
}

fn decompress_body(dec: &mut LzwDecoder, body: &[u8], out: &mut [u8]) -> Result<usize> {
    let c = Compress::decode(body)?;
    if c.algo != 0 {
        return Err(Error::CompressAlgo(c.algo));
    }
    let n = dec.decompress(c.buf.unwrap_or(&[]), out)?;
    if n == 0 {
        return Err(Error::Empty);
    }
    Ok(n)
}

fn walk_inner(
    dec: &mut LzwDecoder,
    inflate: &mut [Box<[u8]>],
    bytes: &[u8],
    depth: u32,
    visit: &mut dyn FnMut(Result<Message<'_>>),
) {
    if depth > MAX_NESTING {
        return visit(Err(Error::TooDeep));
    }
    let Some((&t, body)) = bytes.split_first() else { return visit(Err(Error::Empty)) };
    if t == MessageType::Compound as u8 {
        let Some((&count, rest)) = body.split_first() else { return visit(Err(Error::Truncated)) };
        let (table, mut parts) = match frame::split_length_table(rest, usize::from(count)) {
            Ok(v) => v,
            Err(e) => return visit(Err(e)),
        };
        for len in table {
            let Some((part, more)) = parts.split_at_checked(usize::from(len.get())) else {
                return visit(Err(Error::Truncated));
            };
            parts = more;
            walk_inner(dec, inflate, part, depth.saturating_add(1), visit);
        }
    } else if t == MessageType::Compress as u8 {
        let Some((buf, deeper)) = inflate.split_first_mut() else {
            return visit(Err(Error::TooDeep));
        };
        match decompress_body(dec, body, buf) {
            Ok(n) => match buf.get(..n) {
                Some(plain) => walk_inner(dec, deeper, plain, depth.saturating_add(1), visit),
                None => visit(Err(Error::Truncated)),
            },
            Err(e) => visit(Err(e)),
        }
    } else {
        visit(Message::decode(bytes))
    }
}

/// Size of a compound holding parts of the given total length.
pub fn compound_len(parts: usize, bytes: usize) -> usize {
    // 0x07, count, 2 bytes per part, the parts.
    parts.saturating_mul(2).saturating_add(2).saturating_add(bytes)
}

/// Writes a compound of `parts` into `out`; returns its length. More than
/// [`MAX_COMPOUND_PARTS`] parts is [`Error::TooLarge`]; an empty part is
/// [`Error::Empty`] (both would break Go 0.2.2 peers).
pub fn write_compound(out: &mut [u8], parts: &[&[u8]]) -> Result<usize> {
    if parts.len() > MAX_COMPOUND_PARTS {
        return Err(Error::TooLarge);
    }
    let count = u8::try_from(parts.len()).map_err(|_| Error::TooLarge)?;
    frame::put(&CompoundHeader { kind: MessageType::Compound as u8, count }, out)?;
    let mut pos = core::mem::size_of::<CompoundHeader>();
    for p in parts {
        if p.is_empty() {
            return Err(Error::Empty);
        }
        let len = u16::try_from(p.len()).map_err(|_| Error::TooLarge)?;
        let end = pos.checked_add(2).ok_or(Error::NoSpace)?;
        out.get_mut(pos..end).ok_or(Error::NoSpace)?.copy_from_slice(&len.to_be_bytes());
        pos = end;
    }
    for p in parts {
        let end = pos.checked_add(p.len()).ok_or(Error::NoSpace)?;
        out.get_mut(pos..end).ok_or(Error::NoSpace)?.copy_from_slice(p);
        pos = end;
    }
    Ok(pos)
}

/// Writes a user message (`0x08 | body`) into `w`.
pub fn write_user(w: &mut Writer<'_>, body: &[u8]) -> Result<()> {
    if body.is_empty() {
        return Err(Error::Empty);
    }
    w.byte(MessageType::User as u8)?;
    w.raw(body)
}

/// Reads the compound parts of `bytes` (which starts with the compound type
/// byte) without decoding them. For tests and tools.
pub fn compound_parts(bytes: &[u8]) -> Result<impl Iterator<Item = &[u8]>> {
    let (h, rest): (&CompoundHeader, _) = frame::split(bytes)?;
    if h.kind != MessageType::Compound as u8 {
        return Err(Error::Unexpected(h.kind));
    }
    let (table, mut parts) = frame::split_length_table(rest, usize::from(h.count))?;
    let mut out = smallvec::SmallVec::<[&[u8]; 16]>::new();
    for len in table {
        let (part, more) =
            parts.split_at_checked(usize::from(len.get())).ok_or(Error::Truncated)?;
        out.push(part);
        parts = more;
    }
    Ok(out.into_iter())
}
