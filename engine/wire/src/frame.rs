//! Fixed wire headers as zerocopy structs: the compound header and length
//! table, the CRC wrapper, the UDP encryption envelope and the stream
//! encryption wrapper (`protocol/memberlist.md` §5.2, §5.3, §6.2, §6.3).
//!
//! Parsing is `ref_from_prefix` on the received bytes (no copies); writing
//! is `write_to_prefix` into the caller's buffer.

use zerocopy::byteorder::big_endian::{U16, U32};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::{Error, Result};

/// `0x0c | crc32 (BE)` in front of a datagram's payload.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct CrcHeader {
    /// Always [`super::memberlist::MessageType::HasCrc`] (12).
    pub kind: u8,
    /// CRC-32/IEEE of everything after this header.
    pub crc: U32,
}
const _: () = assert!(core::mem::size_of::<CrcHeader>() == 5);

/// `0x07 | n` in front of a compound message's length table.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct CompoundHeader {
    /// Always [`super::memberlist::MessageType::Compound`] (7).
    pub kind: u8,
    /// Number of parts; each has a `u16` BE length in the table that follows.
    pub count: u8,
}
const _: () = assert!(core::mem::size_of::<CompoundHeader>() == 2);

/// The start of an encrypted datagram (no type byte on UDP): version and nonce.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct EncryptHeader {
    /// 0 (PKCS7-padded, legacy) or 1.
    pub version: u8,
    /// The 96-bit GCM nonce.
    pub nonce: [u8; 12],
}
const _: () = assert!(core::mem::size_of::<EncryptHeader>() == 13);

/// `0x0a | L (u32 BE)` in front of an encrypted stream body; these 5 bytes
/// are the GCM additional data.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct StreamEncryptHeader {
    /// Always [`super::memberlist::MessageType::Encrypt`] (10).
    pub kind: u8,
    /// Length of the envelope that follows (version + nonce + ciphertext + tag).
    pub len: U32,
}
const _: () = assert!(core::mem::size_of::<StreamEncryptHeader>() == 5);

/// The compound length table: `count` big-endian `u16`s.
pub type LengthTable = [U16];

/// Splits `bytes` into a header of type `H` and the rest.
pub fn split<H>(bytes: &[u8]) -> Result<(&H, &[u8])>
where
    H: FromBytes + KnownLayout + Immutable,
{
    H::ref_from_prefix(bytes).map_err(|_| Error::Truncated)
}

/// Splits a compound body (after the type byte) into the length table and the parts' bytes.
pub fn split_length_table(bytes: &[u8], count: usize) -> Result<(&LengthTable, &[u8])> {
    <[U16]>::ref_from_prefix_with_elems(bytes, count).map_err(|_| Error::Truncated)
}

/// Writes `header` at the start of `out`.
pub fn put<H: IntoBytes + Immutable>(header: &H, out: &mut [u8]) -> Result<()> {
    header.write_to_prefix(out).map_err(|_| Error::NoSpace)
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn crc_header_round_trip() {
        let bytes = [0x0c, 0x4a, 0x38, 0xc0, 0x0e, 0x07];
        let (h, rest): (&CrcHeader, _) = split(&bytes).unwrap();
        assert_eq!(h.kind, 12);
        assert_eq!(h.crc.get(), 0x4a38_c00e);
        assert_eq!(rest, &[0x07]);
        let mut out = [0xAAu8; 6];
        put(h, &mut out).unwrap();
        assert_eq!(&out[..5], &bytes[..5]);
        assert_eq!(out[5], 0xAA);
        assert_eq!(split::<CrcHeader>(&bytes[..4]).unwrap_err(), Error::Truncated);
        assert_eq!(put(h, &mut [0u8; 4]), Err(Error::NoSpace));
    }

    #[test]
    fn length_table() {
        let bytes = [0x00, 0x45, 0x00, 0x44, 0xde, 0xad];
        let (t, rest) = split_length_table(&bytes, 2).unwrap();
        assert_eq!(t.iter().map(|l| l.get()).collect::<Vec<_>>(), [0x45, 0x44]);
        assert_eq!(rest, &[0xde, 0xad]);
        assert!(split_length_table(&bytes, 4).is_err());
    }
}
