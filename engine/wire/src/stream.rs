//! The TCP stream pipeline (`protocol/memberlist.md` §6.3, §7, §8):
//!
//! ```text
//! send:    body = [type][...]  →  0x09 compress{0, LZW(body)} (always, when enabled)
//!                              →  0x0a | L (u32 BE) | v1 envelope, AAD = those 5 bytes (when encrypted)
//! receive: the reverse; the first byte after each layer names the next one
//! ```
//!
//! A stream carries one request and at most one reply. Streams are rare
//! (join, anti-entropy every 30 s+, fallback pings), so their buffers are
//! `Vec`s the caller keeps and reuses; sealing and opening only grow them.
//! [`frame_len`] tells an incremental reader when a complete message has
//! arrived, for every message type a stream may carry.

use zerocopy::byteorder::big_endian::U32;

use super::crypto::{Keyring, ENCRYPT_OVERHEAD};
use super::frame::{self, StreamEncryptHeader};
use super::lzw::{max_compressed_len, LzwDecoder, LzwEncoder};
use super::memberlist::{
    compress_message_len, Ack, Body, Compress, ErrResp, MessageType, Ping, PushPull, UserMsgHeader,
    MAX_PUSH_STATE_BYTES,
};
use super::msgpack::{Reader, Writer};
use super::{Error, Result};

/// Size of the stream encryption header (`0x0a` + length), also the AAD.
pub const ENCRYPT_HEADER_LEN: usize = core::mem::size_of::<StreamEncryptHeader>();

/// A decoded stream message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamMessage<'a> {
    /// Fallback probe.
    Ping(Ping<'a>),
    /// Reply to a fallback probe.
    Ack(Ack<'a>),
    /// State exchange (request or reply).
    PushPull(PushPull<'a>),
    /// A user message sent reliably: the payload after its header.
    User(&'a [u8]),
    /// The remote failed to read our request.
    Err(ErrResp<'a>),
}

impl<'a> StreamMessage<'a> {
    /// Decodes a plain (decrypted, decompressed) stream message that fills `bytes`.
    pub fn decode(bytes: &'a [u8]) -> Result<Self> {
        let (&t, body) = bytes.split_first().ok_or(Error::Empty)?;
        let mut r = Reader::new(body);
        let m = match MessageType::try_from(t)? {
            MessageType::Ping => StreamMessage::Ping(Ping::decode_from(&mut r)?),
            MessageType::Ack => StreamMessage::Ack(Ack::decode_from(&mut r)?),
            MessageType::PushPull => StreamMessage::PushPull(PushPull::decode_from(&mut r)?),
            MessageType::Err => StreamMessage::Err(ErrResp::decode_from(&mut r)?),
            MessageType::User => {
                let h = UserMsgHeader::decode_from(&mut r)?;
                StreamMessage::User(r.take(h.user_msg_len)?)
            }
            _ => return Err(Error::Unexpected(t)),
        };
        r.finish()?;
        Ok(m)
    }

    /// Writes the plain message (type byte and body) into `w`.
    pub fn encode(&self, w: &mut Writer<'_>) -> Result<()> {
        match self {
            StreamMessage::Ping(m) => m.encode(w),
            StreamMessage::Ack(m) => m.encode(w),
            StreamMessage::PushPull(m) => m.encode(w),
            StreamMessage::Err(m) => m.encode(w),
            StreamMessage::User(b) => {
                UserMsgHeader { user_msg_len: b.len() }.encode(w)?;
                w.raw(b)
            }
        }
    }
}

/// Reports whether `buf` (bytes read so far from a stream) holds a complete
/// message: `Ok(Some(len))` when the first `len` bytes are one, `Ok(None)`
/// when more bytes are needed, `Err` when the bytes can never form one.
///
/// Works on the outermost layer: an encrypted message is complete when its
/// announced length has arrived; a compress message when its msgpack body
/// is complete; a plain message when it decodes.
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>> {
    let Some(&t) = buf.first() else { return Ok(None) };
    if t == MessageType::Encrypt as u8 {
        let Ok((h, _)) = frame::split::<StreamEncryptHeader>(buf) else { return Ok(None) };
        let len = usize::try_from(h.len.get()).map_err(|_| Error::TooLarge)?;
        if len > MAX_PUSH_STATE_BYTES {
            return Err(Error::TooLarge);
        }
        let total = ENCRYPT_HEADER_LEN.checked_add(len).ok_or(Error::TooLarge)?;
        return Ok((buf.len() >= total).then_some(total));
    }
    let mut r = Reader::new(buf);
    r.byte()?;
    let parsed = if t == MessageType::Compress as u8 {
        r.skip()
    } else {
        match MessageType::try_from(t)? {
            MessageType::Ping => Ping::decode_from(&mut r).map(drop),
            MessageType::Ack => Ack::decode_from(&mut r).map(drop),
            MessageType::PushPull => PushPull::decode_from(&mut r).map(drop),
            MessageType::Err => ErrResp::decode_from(&mut r).map(drop),
            MessageType::User => {
                UserMsgHeader::decode_from(&mut r).and_then(|h| r.take(h.user_msg_len).map(drop))
            }
            _ => return Err(Error::Unexpected(t)),
        }
    };
    match parsed {
        Ok(()) => Ok(Some(r.position())),
        Err(Error::Truncated) if buf.len() < MAX_PUSH_STATE_BYTES => Ok(None),
        Err(Error::Truncated) => Err(Error::TooLarge),
        Err(e) => Err(e),
    }
}

/// Reusable LZW state and scratch for sealing and opening streams.
pub struct StreamCodec {
    enc: LzwEncoder,
    dec: LzwDecoder,
    scratch: Vec<u8>,
}

impl core::fmt::Debug for StreamCodec {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("StreamCodec")
    }
}

impl Default for StreamCodec {
    fn default() -> Self {
        Self::new()
    }
}

impl StreamCodec {
    /// Allocates the LZW tables; scratch grows on first use.
    pub fn new() -> Self {
        StreamCodec { enc: LzwEncoder::new(), dec: LzwDecoder::new(), scratch: Vec::new() }
    }

    /// Seals the plain message `body` (type byte + body) for the wire into
    /// `out` (cleared first): compressed when `compress`, then encrypted with
    /// the primary key when `keyring` is given.
    pub fn seal(
        &mut self,
        body: &[u8],
        out: &mut Vec<u8>,
        compress: bool,
        keyring: Option<&Keyring>,
        nonce: [u8; 12],
    ) -> Result<()> {
        if body.is_empty() {
            return Err(Error::Empty);
        }
        out.clear();
        let inner_at =
            if keyring.is_some() { ENCRYPT_HEADER_LEN + ENCRYPT_OVERHEAD - 16 } else { 0 };
        out.resize(inner_at, 0);
        if compress {
            self.scratch.resize(max_compressed_len(body.len()), 0);
            let n = self.enc.compress(body, &mut self.scratch)?;
            let lzw = self.scratch.get(..n).ok_or(Error::NoSpace)?;
            out.resize(inner_at.saturating_add(compress_message_len(n)), 0);
            let dst = out.get_mut(inner_at..).ok_or(Error::NoSpace)?;
            Compress { algo: 0, buf: Some(lzw) }.encode_to(dst)?;
        } else {
            out.extend_from_slice(body);
        }
        if let Some(keyring) = keyring {
            let plain = out.len().saturating_sub(inner_at);
            let envelope = plain.checked_add(ENCRYPT_OVERHEAD).ok_or(Error::TooLarge)?;
            let len = u32::try_from(envelope).map_err(|_| Error::TooLarge)?;
            out.resize(inner_at.saturating_add(plain).saturating_add(16), 0);
            let header =
                StreamEncryptHeader { kind: MessageType::Encrypt as u8, len: U32::new(len) };
            frame::put(&header, out)?;
            let (aad, rest) = out.split_at_mut(ENCRYPT_HEADER_LEN);
            keyring.seal_in_place(rest, plain, nonce, aad)?;
        }
        Ok(())
    }

    /// Opens one complete stream message (see [`frame_len`]) in place and
    /// decodes it. `encrypted_expected` is whether the local node has a
    /// keyring: Go refuses plaintext when it does
    /// ([`Error::NotEncrypted`]) and encrypted input when it does not
    /// ([`Error::NoKeyring`]). Decompressed bytes live in `inflate`.
    pub fn open<'a>(
        &mut self,
        msg: &'a mut [u8],
        keyring: Option<&Keyring>,
        inflate: &'a mut Vec<u8>,
    ) -> Result<StreamMessage<'a>> {
        let first = *msg.first().ok_or(Error::Empty)?;
        let plain: &'a mut [u8] = match (first == MessageType::Encrypt as u8, keyring) {
            (true, Some(k)) => {
                let (aad, rest) =
                    msg.split_at_mut_checked(ENCRYPT_HEADER_LEN).ok_or(Error::Truncated)?;
                let range = k.open_in_place(rest, aad)?;
                rest.get_mut(range).ok_or(Error::Truncated)?
            }
            (true, None) => return Err(Error::NoKeyring),
            (false, Some(_)) => return Err(Error::NotEncrypted),
            (false, None) => msg,
        };
        let (&t, body) = plain.split_first().ok_or(Error::Empty)?;
        if t != MessageType::Compress as u8 {
            return StreamMessage::decode(plain);
        }
        let c = Compress::decode(body)?;
        if c.algo != 0 {
            return Err(Error::CompressAlgo(c.algo));
        }
        let lzw = c.buf.unwrap_or(&[]);
        // The decompressed size is unknown: start generous and double on
        // overflow, bounded by the push-pull limit.
        let mut cap = lzw.len().saturating_mul(8).clamp(4096, MAX_PUSH_STATE_BYTES);
        let n = loop {
            inflate.resize(cap, 0);
            match self.dec.decompress(lzw, inflate) {
                Ok(n) => break n,
                Err(Error::TooLarge) if cap < MAX_PUSH_STATE_BYTES => {
                    cap = cap.saturating_mul(2).min(MAX_PUSH_STATE_BYTES);
                }
                Err(e) => return Err(e),
            }
        };
        inflate.truncate(n);
        if inflate.first() == Some(&(MessageType::Compress as u8)) {
            // Go decompresses a stream once; a nested compress is not a message.
            return Err(Error::Unexpected(MessageType::Compress as u8));
        }
        StreamMessage::decode(inflate)
    }
}
