//! Wire codec: byte-exact memberlist 0.2.2 and Serf 0.9.4 messages.
//!
//! Everything here is pure: bytes in, views out; views in, bytes out. Decoding
//! borrows from the caller's buffer and never allocates; encoding writes into a
//! caller-provided buffer and reports the length or [`Error::NoSpace`].
//!
//! Layers (see `shared/protocol/memberlist.md` §5–§8):
//!
//! * [`msgpack`] — the one panic-free cursor and writer, in both dialects;
//! * [`fields`] — the field codecs, lazy list/map views and the table macro
//!   from which every message's decoder and encoder follow;
//! * [`memberlist`] / [`serf`] — message bodies, one table each;
//! * [`coordinate`] — the Vivaldi coordinate Serf carries in every ack payload;
//! * [`frame`] — zerocopy fixed headers (compound table, CRC, encryption, stream);
//! * [`lzw`], [`crypto`] — Go-compatible LZW and the AES-GCM keyring;
//! * [`packet`], [`stream`] — the UDP and TCP pipelines as Go layers them.
//!
//! This module is where bytes meet code, so indexing, unchecked arithmetic and
//! `unwrap` are denied outside tests.
#![deny(clippy::indexing_slicing, clippy::arithmetic_side_effects, clippy::unwrap_used)]

pub mod coordinate;
pub mod crypto;
pub mod fields;
pub mod frame;
pub mod lzw;
pub mod memberlist;
pub mod msgpack;
pub mod packet;
pub mod serf;
pub mod stream;

/// The captured Go traffic, for the unit tests (the same module the
/// integration tests include).
#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::arithmetic_side_effects)]
#[path = "../tests/common/mod.rs"]
mod testdata;

/// Why a decode (or encode) failed. Small and `Copy`: a junk packet costs a
/// counter increment, never an allocation or a log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Error {
    /// The input ended before the value did.
    Truncated,
    /// The output buffer is too small for the encoded value.
    NoSpace,
    /// A msgpack marker of the wrong family for the field (e.g. bin for a string).
    WrongType,
    /// An integer does not fit the field, or is negative for an unsigned field.
    IntRange,
    /// A string field holds bytes that are not UTF-8.
    InvalidUtf8,
    /// Nesting deeper than the decoder allows.
    TooDeep,
    /// Bytes left over after a value that must fill its frame exactly.
    TrailingBytes,
    /// A length or count read from the wire exceeds a protocol limit.
    TooLarge,
    /// A message or compound part of length zero (crashes Go 0.2.2 peers).
    Empty,
    /// An unknown memberlist or Serf message type byte.
    UnknownType(u8),
    /// A message type that is valid but not where it appeared (e.g. push-pull on UDP).
    Unexpected(u8),
    /// A `Vsn` that is neither absent nor at least 6 bytes long.
    BadVsn,
    /// The CRC wrapper's checksum does not match.
    BadCrc,
    /// No key in the keyring authenticates the ciphertext.
    Decrypt,
    /// An encryption version byte other than 0 or 1.
    EncryptionVersion(u8),
    /// Encryption is configured locally but the input is plaintext.
    NotEncrypted,
    /// The input is encrypted but no keyring is configured.
    NoKeyring,
    /// A key that is not 16, 24 or 32 bytes long.
    KeySize,
    /// A compress message naming an algorithm other than LZW (0).
    CompressAlgo(u8),
    /// An LZW stream that is malformed or ends before its EOF code.
    Lzw,
    /// A Serf ack payload whose ping version byte is not 1.
    PingVersion(u8),
    /// A network coordinate whose `Vec` does not have 8 components.
    Dimensionality,
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::Truncated => f.write_str("truncated input"),
            Error::NoSpace => f.write_str("output buffer too small"),
            Error::WrongType => f.write_str("unexpected msgpack type"),
            Error::IntRange => f.write_str("integer out of range"),
            Error::InvalidUtf8 => f.write_str("string is not UTF-8"),
            Error::TooDeep => f.write_str("nesting too deep"),
            Error::TrailingBytes => f.write_str("trailing bytes"),
            Error::TooLarge => f.write_str("length exceeds limit"),
            Error::Empty => f.write_str("empty message"),
            Error::UnknownType(t) => write!(f, "unknown message type {t}"),
            Error::Unexpected(t) => write!(f, "message type {t} not valid here"),
            Error::BadVsn => f.write_str("malformed version vector"),
            Error::BadCrc => f.write_str("CRC mismatch"),
            Error::Decrypt => f.write_str("No installed keys could decrypt the message"),
            Error::EncryptionVersion(_) => f.write_str("Unsupported encryption version"),
            Error::NotEncrypted => {
                f.write_str("Encryption is configured but remote state is not encrypted")
            }
            Error::NoKeyring => {
                f.write_str("Remote state is encrypted and encryption is not configured")
            }
            Error::KeySize => f.write_str("key size must be 16, 24 or 32 bytes"),
            Error::CompressAlgo(_) => f.write_str("Cannot decompress unknown algorithm"),
            Error::Lzw => f.write_str("malformed LZW data"),
            Error::PingVersion(v) => write!(f, "Unsupported ping version: {v}"),
            Error::Dimensionality => f.write_str("dimensions aren't compatible"),
        }
    }
}

impl std::error::Error for Error {}

/// Result alias for the wire module.
pub type Result<T> = core::result::Result<T, Error>;

/// A message body with a fixed type byte: every memberlist and Serf message.
///
/// Decoding matches map keys by exact name in any order and skips unknown
/// keys (as Go does); encoding writes Go's key order.
pub trait Body<'a>: Sized {
    /// The type byte written before the body.
    const TYPE: u8;
    /// Reads one body from `r` (the type byte already consumed).
    fn decode_from(r: &mut msgpack::Reader<'a>) -> Result<Self>;
    /// Writes the body (no type byte) into `w`.
    fn encode_body(&self, w: &mut msgpack::Writer<'_>) -> Result<()>;

    /// Decodes a body that must fill `bytes` exactly.
    fn decode(bytes: &'a [u8]) -> Result<Self> {
        let mut r = msgpack::Reader::new(bytes);
        let v = Self::decode_from(&mut r)?;
        r.finish()?;
        Ok(v)
    }

    /// Writes the type byte and the body.
    fn encode(&self, w: &mut msgpack::Writer<'_>) -> Result<()> {
        w.byte(Self::TYPE)?;
        self.encode_body(w)
    }

    /// Encodes type byte + body into `out` (gossip dialect); returns the length.
    fn encode_to(&self, out: &mut [u8]) -> Result<usize> {
        let mut w = msgpack::Writer::new(out, msgpack::Dialect::Gossip);
        self.encode(&mut w)?;
        Ok(w.len())
    }

    /// Length of type byte + body.
    fn encoded_len(&self) -> usize {
        let mut w = msgpack::Writer::counting(msgpack::Dialect::Gossip);
        // A counting writer cannot run out of space; the only other failure
        // is a length over u32::MAX, which no caller can build in memory.
        let _ = self.encode(&mut w);
        w.len()
    }
}
