//! The AES-GCM keyring and memberlist's encryption envelope
//! (`shared/protocol/memberlist.md` §6).
//!
//! An envelope is `vsn(1) | nonce(12) | ciphertext | tag(16)`. Version 1
//! (what Serf always sends) seals the plaintext as is; version 0 (accepted on
//! input only) sealed the plaintext PKCS#7-padded to a multiple of 16 bytes.
//! UDP datagrams are envelopes with empty AAD; TCP streams wrap one as
//! `0x0a | u32 BE length | envelope` with those first 5 bytes as AAD.
//!
//! The ciphers are the `aes-gcm` crate's, built once per key when the key is
//! added; sealing and opening work in place on the caller's buffer and never
//! allocate. Opening tries every key, primary first: `aes-gcm` 0.10 checks the
//! tag before it decrypts anything, so a key that fails leaves the buffer
//! untouched for the next one.

use core::ops::Range;

use aes_gcm::aead::consts::U12;
use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::aes::Aes192;
use aes_gcm::{Aes128Gcm, Aes256Gcm, AesGcm, Nonce, Tag};

use super::{Error, Result};

/// Length of the random GCM nonce carried in every envelope.
pub const NONCE_LEN: usize = 12;
/// Length of the GCM authentication tag that ends every envelope.
pub const TAG_LEN: usize = 16;
/// Overhead of a version-1 envelope: 1 (version) + 12 (nonce) + 16 (tag) = 29.
pub const ENCRYPT_OVERHEAD: usize = 1 + NONCE_LEN + TAG_LEN;
/// Bytes before the ciphertext: the version byte and the nonce.
pub const HEADER_LEN: usize = 1 + NONCE_LEN;
/// Shortest version-0 envelope: the header, one padding block and the tag.
const MIN_V0_LEN: usize = ENCRYPT_OVERHEAD + BLOCK;
/// AES block size, the PKCS#7 padding unit of version 0.
const BLOCK: usize = 16;
/// The envelope version Serf sends (memberlist protocol ≥ 2).
const VERSION_1: u8 = 1;

/// Errors of keyring management, whose `Display` texts are Go's exactly (they
/// travel back to the CLI in key-query responses).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyringError {
    /// `use_key` named a key the keyring does not hold.
    NotInKeyring,
    /// `remove_key` named the primary key.
    RemovePrimary,
    /// A key that is not 16, 24 or 32 bytes long.
    KeySize,
}

impl core::fmt::Display for KeyringError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            KeyringError::NotInKeyring => "Requested key is not in the keyring",
            KeyringError::RemovePrimary => "Removing the primary key is not allowed",
            KeyringError::KeySize => "key size must be 16, 24 or 32 bytes",
        })
    }
}

impl std::error::Error for KeyringError {}

type Aes192Gcm = AesGcm<Aes192, U12>;

/// One AES-GCM instance; the variant follows the key length.
#[derive(Clone)]
enum Cipher {
    A128(Aes128Gcm),
    A192(Aes192Gcm),
    A256(Aes256Gcm),
}

impl Cipher {
    fn new(key: &[u8]) -> Result<Self> {
        let bad = |_| Error::KeySize;
        Ok(match key.len() {
            16 => Cipher::A128(Aes128Gcm::new_from_slice(key).map_err(bad)?),
            24 => Cipher::A192(Aes192Gcm::new_from_slice(key).map_err(bad)?),
            32 => Cipher::A256(Aes256Gcm::new_from_slice(key).map_err(bad)?),
            _ => return Err(Error::KeySize),
        })
    }

    fn seal(&self, nonce: &Nonce<U12>, aad: &[u8], buf: &mut [u8]) -> Option<Tag> {
        match self {
            Cipher::A128(c) => c.encrypt_in_place_detached(nonce, aad, buf),
            Cipher::A192(c) => c.encrypt_in_place_detached(nonce, aad, buf),
            Cipher::A256(c) => c.encrypt_in_place_detached(nonce, aad, buf),
        }
        .ok()
    }

    /// Verifies `tag` and only then decrypts `buf` in place.
    fn open(&self, nonce: &Nonce<U12>, aad: &[u8], buf: &mut [u8], tag: &Tag) -> bool {
        match self {
            Cipher::A128(c) => c.decrypt_in_place_detached(nonce, aad, buf, tag),
            Cipher::A192(c) => c.decrypt_in_place_detached(nonce, aad, buf, tag),
            Cipher::A256(c) => c.decrypt_in_place_detached(nonce, aad, buf, tag),
        }
        .is_ok()
    }
}

/// A key and its ready cipher.
#[derive(Clone)]
struct Slot {
    key: [u8; 32],
    len: usize,
    cipher: Cipher,
}

impl Slot {
    fn new(key: &[u8]) -> Result<Self> {
        let cipher = Cipher::new(key)?;
        let mut bytes = [0u8; 32];
        bytes.get_mut(..key.len()).ok_or(Error::KeySize)?.copy_from_slice(key);
        Ok(Slot { key: bytes, len: key.len(), cipher })
    }

    fn key(&self) -> &[u8] {
        self.key.get(..self.len).unwrap_or(&[])
    }
}

/// The ordered set of AES keys one node holds: index 0 is the primary key,
/// the only one used to seal; opening tries every key in order.
///
/// Key management (`add_key`, `use_key`, `remove_key`) may allocate and is
/// meant for the rare `serf keys` operations; `seal_in_place` and
/// `open_in_place` never allocate. A keyring always holds at least one key.
#[derive(Clone)]
pub struct Keyring {
    slots: Vec<Slot>,
}

impl core::fmt::Debug for Keyring {
    /// Never prints key material, only how many keys there are.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Keyring").field("keys", &self.slots.len()).finish_non_exhaustive()
    }
}

impl Keyring {
    /// A keyring holding only `primary`.
    ///
    /// # Errors
    ///
    /// [`Error::KeySize`] unless the key is 16, 24 or 32 bytes long.
    pub fn new(primary: &[u8]) -> Result<Self> {
        Ok(Keyring { slots: vec![Slot::new(primary)?] })
    }

    /// A keyring from `keys` in order: the first is the primary key, later
    /// duplicates are ignored (as Go's `NewKeyring` adds them one by one).
    ///
    /// # Errors
    ///
    /// [`Error::Empty`] for an empty list, [`Error::KeySize`] if any key is not
    /// 16, 24 or 32 bytes long.
    pub fn from_keys(keys: &[&[u8]]) -> Result<Self> {
        let (first, rest) = keys.split_first().ok_or(Error::Empty)?;
        let mut ring = Keyring::new(first)?;
        for key in rest {
            ring.add_key(key)?;
        }
        Ok(ring)
    }

    /// Installs `key` as a secondary key (appended, the primary unchanged).
    /// A key already in the keyring is left where it is.
    ///
    /// # Errors
    ///
    /// [`Error::KeySize`] unless the key is 16, 24 or 32 bytes long (checked
    /// first, even for a key that is present: an invalid key never is).
    pub fn add_key(&mut self, key: &[u8]) -> Result<()> {
        if !matches!(key.len(), 16 | 24 | 32) {
            return Err(Error::KeySize);
        }
        if self.position(key).is_none() {
            self.slots.push(Slot::new(key)?);
        }
        Ok(())
    }

    /// Makes `key` the primary key: it moves to index 0 and the others keep
    /// their relative order. From now on every seal uses it.
    ///
    /// # Errors
    ///
    /// [`KeyringError::NotInKeyring`] if the key was never added.
    pub fn use_key(&mut self, key: &[u8]) -> core::result::Result<(), KeyringError> {
        let at = self.position(key).ok_or(KeyringError::NotInKeyring)?;
        let moved = self.slots.get_mut(..=at).ok_or(KeyringError::NotInKeyring)?;
        moved.rotate_right(1);
        Ok(())
    }

    /// Uninstalls a secondary key; removing a key that is not there succeeds.
    ///
    /// # Errors
    ///
    /// [`KeyringError::RemovePrimary`] if `key` is the primary key.
    pub fn remove_key(&mut self, key: &[u8]) -> core::result::Result<(), KeyringError> {
        match self.position(key) {
            Some(0) => Err(KeyringError::RemovePrimary),
            Some(at) => {
                self.slots.remove(at);
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// The key every seal uses.
    pub fn primary(&self) -> &[u8] {
        self.slots.first().map_or(&[], Slot::key)
    }

    /// All keys in keyring order, primary first.
    pub fn keys(&self) -> impl Iterator<Item = &[u8]> {
        self.slots.iter().map(Slot::key)
    }

    /// Number of installed keys (at least 1).
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Always `false`: a keyring holds at least its primary key.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    fn position(&self, key: &[u8]) -> Option<usize> {
        self.slots.iter().position(|s| s.key() == key)
    }

    /// Seals a version-1 envelope in place with the primary key.
    ///
    /// On input `buf` holds [`HEADER_LEN`] (13) bytes of headroom, then the
    /// `len` plaintext bytes, then at least [`TAG_LEN`] (16) spare bytes. On
    /// output `buf[..len + 29]` is `0x01 | nonce | ciphertext | tag`; the
    /// return value is that length. `aad` is empty for UDP and the 5-byte
    /// stream header (`0x0a` + u32 BE length) for TCP. `nonce` must be fresh
    /// random bytes for every message (the caller's seeded RNG).
    ///
    /// # Errors
    ///
    /// [`Error::NoSpace`] if `buf` is shorter than `len + 29`;
    /// [`Error::TooLarge`] if the plaintext exceeds GCM's limit (64 GiB).
    pub fn seal_in_place(
        &self,
        buf: &mut [u8],
        len: usize,
        nonce: [u8; NONCE_LEN],
        aad: &[u8],
    ) -> Result<usize> {
        let total = len.checked_add(ENCRYPT_OVERHEAD).ok_or(Error::NoSpace)?;
        let envelope = buf.get_mut(..total).ok_or(Error::NoSpace)?;
        let (header, rest) = envelope.split_at_mut_checked(HEADER_LEN).ok_or(Error::NoSpace)?;
        let (body, tag_out) = rest.split_at_mut_checked(len).ok_or(Error::NoSpace)?;
        let (vsn, nonce_out) = header.split_first_mut().ok_or(Error::NoSpace)?;
        *vsn = VERSION_1;
        nonce_out.copy_from_slice(&nonce);
        let primary = self.slots.first().ok_or(Error::NoKeyring)?;
        let tag = primary.cipher.seal(&Nonce::from(nonce), aad, body).ok_or(Error::TooLarge)?;
        tag_out.copy_from_slice(&tag);
        Ok(total)
    }

    /// Opens a version-0 or version-1 envelope in place, trying every key in
    /// keyring order (primary first), and returns where the plaintext now is
    /// within `buf` (it starts at [`HEADER_LEN`]; for version 0 the padding
    /// is validated and left out of the range).
    ///
    /// `aad` must be what the sender used: empty for UDP, the 5-byte stream
    /// header for TCP. On error `buf` is unchanged, except after invalid
    /// version-0 padding (below).
    ///
    /// # Errors
    ///
    /// * [`Error::Truncated`] — shorter than the version's minimum (29 bytes
    ///   for version 1, 45 for version 0), including an empty buffer;
    /// * [`Error::EncryptionVersion`] — a version byte above 1 (checked
    ///   before the length, as Go does);
    /// * [`Error::Decrypt`] — no key authenticates the envelope, or the key
    ///   that does reveals invalid version-0 padding (`buf` then holds that
    ///   garbage plaintext).
    pub fn open_in_place(&self, buf: &mut [u8], aad: &[u8]) -> Result<Range<usize>> {
        let vsn = *buf.first().ok_or(Error::Truncated)?;
        let min_len = match vsn {
            0 => MIN_V0_LEN,
            VERSION_1 => ENCRYPT_OVERHEAD,
            v => return Err(Error::EncryptionVersion(v)),
        };
        if buf.len() < min_len {
            return Err(Error::Truncated);
        }
        let body_len = buf.len().checked_sub(ENCRYPT_OVERHEAD).ok_or(Error::Truncated)?;
        let (header, rest) = buf.split_at_mut_checked(HEADER_LEN).ok_or(Error::Truncated)?;
        let (body, tag) = rest.split_at_mut_checked(body_len).ok_or(Error::Truncated)?;
        let nonce: [u8; NONCE_LEN] =
            header.get(1..).and_then(|n| n.try_into().ok()).ok_or(Error::Truncated)?;
        let tag: [u8; TAG_LEN] = (&*tag).try_into().map_err(|_| Error::Truncated)?;
        let (nonce, tag) = (Nonce::from(nonce), Tag::from(tag));
        if !self.slots.iter().any(|s| s.cipher.open(&nonce, aad, body, &tag)) {
            return Err(Error::Decrypt);
        }
        let plain_len = if vsn == 0 { unpad(body)? } else { body_len };
        let end = HEADER_LEN.checked_add(plain_len).ok_or(Error::Truncated)?;
        Ok(HEADER_LEN..end)
    }
}

/// Length of a PKCS#7-padded version-0 plaintext without its padding: the
/// last byte `k` must be 1..=16 and the last `k` bytes must all equal `k`.
/// (Go only cuts `k` bytes, and panics if `k` exceeds the length; a Go sender
/// always pads correctly, so the stricter check costs no compatibility.)
fn unpad(padded: &[u8]) -> Result<usize> {
    let &k = padded.last().ok_or(Error::Decrypt)?;
    let k_len = usize::from(k);
    if k == 0 || k_len > BLOCK {
        return Err(Error::Decrypt);
    }
    let plain_len = padded.len().checked_sub(k_len).ok_or(Error::Decrypt)?;
    let pad = padded.get(plain_len..).ok_or(Error::Decrypt)?;
    if pad.iter().any(|&b| b != k) {
        return Err(Error::Decrypt);
    }
    Ok(plain_len)
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::arithmetic_side_effects)]
mod tests {
    use super::*;

    use crate::testdata::{capture_keys, packets};

    /// Opens `envelope` with each single-key keyring and with both two-key
    /// orders, then re-seals the plaintext with the key that worked and the
    /// captured nonce; returns that key's index.
    fn check_envelope(keys: &[Vec<u8>], envelope: &[u8], aad: &[u8], what: &str) -> usize {
        let (k1, k2) = (&keys[0][..], &keys[1][..]);
        let mut found = None;
        for (i, key) in keys.iter().enumerate() {
            let mut buf = envelope.to_vec();
            if let Ok(range) = Keyring::new(key).unwrap().open_in_place(&mut buf, aad) {
                assert!(found.is_none(), "{what}: opens with both keys");
                found = Some((i, buf[range].to_vec()));
            }
        }
        let (index, plain) = found.unwrap_or_else(|| panic!("{what}: no key opens it"));
        // Both orders: whenever the first key is wrong, the second still works
        // on the same buffer (a failed attempt must not touch it).
        for ring in [Keyring::from_keys(&[k1, k2]), Keyring::from_keys(&[k2, k1])] {
            let mut buf = envelope.to_vec();
            let range = ring.unwrap().open_in_place(&mut buf, aad).unwrap();
            assert_eq!(buf[range], plain[..], "{what}");
        }
        // Wrong AAD never authenticates.
        let mut buf = envelope.to_vec();
        let ring = Keyring::from_keys(&[k1, k2]).unwrap();
        assert_eq!(ring.open_in_place(&mut buf, b"other aad"), Err(Error::Decrypt), "{what}");
        assert_eq!(buf, envelope, "{what}: failed open changed the buffer");
        // Re-seal: same key, same nonce → the captured bytes.
        let mut buf = vec![0xEE; HEADER_LEN];
        buf.extend_from_slice(&plain);
        buf.extend_from_slice(&[0xEE; TAG_LEN + 3]);
        let nonce: [u8; 12] = envelope[1..13].try_into().unwrap();
        let ring = Keyring::new(&keys[index]).unwrap();
        let n = ring.seal_in_place(&mut buf, plain.len(), nonce, aad).unwrap();
        assert_eq!(n, plain.len() + ENCRYPT_OVERHEAD);
        assert_eq!(buf[..n], envelope[..], "{what}: re-seal differs");
        assert_eq!(buf[n..], [0xEE; 3], "{what}: wrote past the envelope");
        index
    }

    #[test]
    fn captured_udp_envelopes_open_and_reseal() {
        let keys = capture_keys();
        let mut per_key = [0usize; 2];
        for (i, p) in packets().iter().enumerate() {
            let (sc, bytes) = (&p.scenario, &p.bytes[..]);
            if p.proto != "udp" || p.channel != "memberlist-udp" {
                continue;
            }
            if sc != "s2_encrypted" && sc != "s4_rpc" {
                continue;
            }
            assert_eq!(bytes[0], 1, "{sc} #{i}: not a version-1 envelope");
            per_key[check_envelope(&keys, bytes, &[], &format!("{sc} udp #{i}"))] += 1;
        }
        // 491 datagrams: 264 under K1, 227 under K2 (after the rotations).
        assert!(per_key[0] + per_key[1] > 400, "only {per_key:?} UDP envelopes");
        assert_eq!(per_key, [264, 227]);
    }

    #[test]
    fn captured_tcp_envelopes_open_and_reseal() {
        let keys = capture_keys();
        let (mut opened, mut plaintext) = (0, 0);
        for (i, p) in packets().iter().enumerate() {
            let (sc, bytes) = (&p.scenario, &p.bytes[..]);
            if p.proto != "tcp" || p.channel != "memberlist-tcp" {
                continue;
            }
            if !["s2_encrypted", "s4_rpc", "s7_mismatch"].contains(&sc.as_str()) {
                continue;
            }
            if bytes[0] != 0x0a {
                // s7: errResp replies from the plaintext node.
                assert_eq!(sc, "s7_mismatch", "#{i}: plaintext stream");
                plaintext += 1;
                continue;
            }
            let mut rest = bytes;
            while !rest.is_empty() {
                assert_eq!(rest[0], 0x0a, "{sc} #{i}");
                let len = u32::from_be_bytes(rest[1..5].try_into().unwrap()) as usize;
                let (aad, envelope) = (&rest[..5], &rest[5..5 + len]);
                check_envelope(&keys, envelope, aad, &format!("{sc} tcp #{i}"));
                opened += 1;
                rest = &rest[5 + len..];
            }
        }
        // 10 encrypted stream messages; s7's plaintext node sent 2 directions.
        assert_eq!((opened, plaintext), (10, 2));
    }

    const KEY16: [u8; 16] = [1; 16];
    const KEY24: [u8; 24] = [2; 24];
    const KEY32: [u8; 32] = [3; 32];

    fn ring_keys(r: &Keyring) -> Vec<Vec<u8>> {
        r.keys().map(<[u8]>::to_vec).collect()
    }

    #[test]
    fn key_sizes() {
        for key in [&KEY16[..], &KEY24[..], &KEY32[..]] {
            let ring = Keyring::new(key).unwrap();
            assert_eq!(ring.primary(), key);
            assert_eq!(ring.len(), 1);
            assert!(!ring.is_empty());
        }
        for len in [0, 1, 15, 17, 23, 25, 31, 33, 64] {
            let key = vec![7u8; len];
            assert_eq!(Keyring::new(&key).unwrap_err(), Error::KeySize, "len {len}");
            let mut ring = Keyring::new(&KEY16).unwrap();
            assert_eq!(ring.add_key(&key), Err(Error::KeySize), "len {len}");
            assert_eq!(ring.len(), 1);
            assert_eq!(Keyring::from_keys(&[&KEY16, &key]).unwrap_err(), Error::KeySize);
        }
        assert_eq!(Keyring::from_keys(&[]).unwrap_err(), Error::Empty);
    }

    #[test]
    fn key_management_follows_go() {
        let (a, b, c) = ([0xa; 32], [0xb; 16], [0xc; 24]);
        let mut ring = Keyring::from_keys(&[&a, &b, &a]).unwrap();
        assert_eq!(ring_keys(&ring), [a.to_vec(), b.to_vec()]);
        // add: appended, primary unchanged; again: no-op.
        ring.add_key(&c).unwrap();
        ring.add_key(&b).unwrap();
        assert_eq!(ring_keys(&ring), [a.to_vec(), b.to_vec(), c.to_vec()]);
        assert_eq!(ring.primary(), a);
        // use: moved to the front, the others keep their order.
        ring.use_key(&c).unwrap();
        assert_eq!(ring_keys(&ring), [c.to_vec(), a.to_vec(), b.to_vec()]);
        ring.use_key(&c).unwrap();
        assert_eq!(ring_keys(&ring), [c.to_vec(), a.to_vec(), b.to_vec()]);
        ring.use_key(&b).unwrap();
        assert_eq!(ring_keys(&ring), [b.to_vec(), c.to_vec(), a.to_vec()]);
        assert_eq!(ring.use_key(&[0xd; 32]), Err(KeyringError::NotInKeyring));
        // remove: primary refused, absent fine, secondary gone.
        assert_eq!(ring.remove_key(&b), Err(KeyringError::RemovePrimary));
        assert_eq!(ring.remove_key(&[0xd; 32]), Ok(()));
        assert_eq!(ring.remove_key(&[0xd; 5]), Ok(()));
        assert_eq!(ring.remove_key(&c), Ok(()));
        assert_eq!(ring_keys(&ring), [b.to_vec(), a.to_vec()]);
        assert_eq!(ring.len(), 2);
        // Sealing follows the primary.
        let sealed = seal(&ring, b"hi", [9; 12], &[]);
        assert!(Keyring::new(&b).unwrap().open_in_place(&mut sealed.clone(), &[]).is_ok());
        assert_eq!(
            Keyring::new(&a).unwrap().open_in_place(&mut sealed.clone(), &[]),
            Err(Error::Decrypt)
        );
        // Go's messages.
        assert_eq!(KeyringError::NotInKeyring.to_string(), "Requested key is not in the keyring");
        assert_eq!(
            KeyringError::RemovePrimary.to_string(),
            "Removing the primary key is not allowed"
        );
        assert_eq!(KeyringError::KeySize.to_string(), "key size must be 16, 24 or 32 bytes");
        assert_eq!(format!("{ring:?}"), "Keyring { keys: 2, .. }", "Debug prints no key");
    }

    fn seal(ring: &Keyring, plain: &[u8], nonce: [u8; 12], aad: &[u8]) -> Vec<u8> {
        let mut buf = vec![0u8; plain.len() + ENCRYPT_OVERHEAD];
        buf[HEADER_LEN..HEADER_LEN + plain.len()].copy_from_slice(plain);
        let n = ring.seal_in_place(&mut buf, plain.len(), nonce, aad).unwrap();
        assert_eq!(n, buf.len());
        buf
    }

    #[test]
    fn round_trip_all_sizes_and_aad() {
        for key in [&KEY16[..], &KEY24[..], &KEY32[..]] {
            let ring = Keyring::new(key).unwrap();
            for len in [0usize, 1, 15, 16, 17, 1400] {
                let plain: Vec<u8> = (0..len).map(|i| i as u8).collect();
                for aad in [&b""[..], &[0x0a, 0, 0, 0, 99][..]] {
                    let mut env = seal(&ring, &plain, [len as u8; 12], aad);
                    assert_eq!(env[0], 1);
                    assert_eq!(env[1..13], [len as u8; 12]);
                    let range = ring.open_in_place(&mut env, aad).unwrap();
                    assert_eq!(range, HEADER_LEN..HEADER_LEN + len);
                    assert_eq!(env[range], plain[..]);
                }
            }
        }
    }

    #[test]
    fn seal_needs_room() {
        let ring = Keyring::new(&KEY32).unwrap();
        for short in 0..ENCRYPT_OVERHEAD + 10 {
            let mut buf = vec![0u8; short];
            assert_eq!(ring.seal_in_place(&mut buf, 10, [0; 12], &[]), Err(Error::NoSpace));
        }
        let mut buf = vec![0u8; 8];
        assert_eq!(ring.seal_in_place(&mut buf, usize::MAX, [0; 12], &[]), Err(Error::NoSpace));
        assert_eq!(
            ring.seal_in_place(&mut buf, usize::MAX - 10, [0; 12], &[]),
            Err(Error::NoSpace)
        );
    }

    #[test]
    fn malformed_envelopes() {
        let ring = Keyring::from_keys(&[&KEY32, &KEY16]).unwrap();
        let good = seal(&ring, b"hello world", [5; 12], &[]);
        assert_eq!(ring.open_in_place(&mut [], &[]), Err(Error::Truncated));
        for len in 1..ENCRYPT_OVERHEAD {
            let mut buf = good[..len].to_vec();
            assert_eq!(ring.open_in_place(&mut buf, &[]), Err(Error::Truncated), "len {len}");
        }
        // Version 0 needs 45 bytes.
        let mut v0 = vec![0u8; MIN_V0_LEN - 1];
        assert_eq!(ring.open_in_place(&mut v0, &[]), Err(Error::Truncated));
        for v in [2u8, 3, 0x0a, 0xff] {
            let mut buf = good.clone();
            buf[0] = v;
            assert_eq!(ring.open_in_place(&mut buf, &[]), Err(Error::EncryptionVersion(v)));
            assert_eq!(ring.open_in_place(&mut [v], &[]), Err(Error::EncryptionVersion(v)));
        }
        // Any flipped bit after the version byte fails authentication, and a
        // failed open leaves the buffer as it was.
        for i in 1..good.len() {
            let mut buf = good.clone();
            buf[i] ^= 0x40;
            let before = buf.clone();
            assert_eq!(ring.open_in_place(&mut buf, &[]), Err(Error::Decrypt), "byte {i}");
            assert_eq!(buf, before);
        }
        // Dropping or adding a byte fails too.
        let mut buf = good[..good.len() - 1].to_vec();
        assert_eq!(ring.open_in_place(&mut buf, &[]), Err(Error::Decrypt));
        let mut buf = good.clone();
        buf.push(0);
        assert_eq!(ring.open_in_place(&mut buf, &[]), Err(Error::Decrypt));
        // A minimal v1 envelope of garbage.
        let mut buf = [1u8; ENCRYPT_OVERHEAD];
        assert_eq!(ring.open_in_place(&mut buf, &[]), Err(Error::Decrypt));
    }

    /// Builds a version-0 envelope the way memberlist protocol 1 did:
    /// PKCS#7-pad to 16, then seal with GCM.
    fn seal_v0(key: &[u8], plain: &[u8], nonce: [u8; 12], pad: Option<&[u8]>) -> Vec<u8> {
        let mut body = plain.to_vec();
        match pad {
            Some(p) => body.extend_from_slice(p),
            None => {
                let k = 16 - plain.len() % 16;
                body.extend(std::iter::repeat_n(k as u8, k));
            }
        }
        let cipher = Aes256Gcm::new_from_slice(key).unwrap();
        let tag = cipher.encrypt_in_place_detached(&Nonce::from(nonce), &[], &mut body).unwrap();
        let mut env = vec![0u8];
        env.extend_from_slice(&nonce);
        env.extend_from_slice(&body);
        env.extend_from_slice(&tag);
        env
    }

    #[test]
    fn version_0_round_trip_and_padding() {
        let ring = Keyring::from_keys(&[&KEY16, &KEY32]).unwrap();
        for len in [0usize, 1, 15, 16, 17, 31, 32, 100] {
            let plain: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
            let mut env = seal_v0(&KEY32, &plain, [3; 12], None);
            // An aligned plaintext carries a whole block of padding.
            assert_eq!(env.len(), ENCRYPT_OVERHEAD + (len / 16 + 1) * 16);
            let range = ring.open_in_place(&mut env, &[]).unwrap();
            assert_eq!(range, HEADER_LEN..HEADER_LEN + len);
            assert_eq!(env[range], plain[..]);
        }
        // 12 plaintext bytes + 4 bytes that are not valid padding: one block.
        let bad_pads: [[u8; 4]; 5] = [
            [0, 0, 0, 0],     // k = 0
            [1, 2, 2, 3],     // k = 3 but the last three bytes are not all 3
            [9, 5, 5, 5],     // k = 5 but only three bytes are 5
            [17, 17, 17, 17], // k above the block size
            [32, 32, 32, 32], // k above the block size
        ];
        for pad in bad_pads {
            let mut env = seal_v0(&KEY32, b"abcdefghijkl", [4; 12], Some(&pad));
            assert_eq!(env.len(), MIN_V0_LEN);
            assert_eq!(ring.open_in_place(&mut env, &[]), Err(Error::Decrypt), "pad {pad:?}");
        }
        // A full padding block must be sixteen 16s.
        let mut env = seal_v0(&KEY32, b"", [4; 12], Some(&[[1u8; 15].as_slice(), &[16]].concat()));
        assert_eq!(ring.open_in_place(&mut env, &[]), Err(Error::Decrypt));
    }
}
