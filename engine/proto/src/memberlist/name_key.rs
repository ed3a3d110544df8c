//! Node names as keys of the name → index map.
//!
//! Every received alive, suspect and dead message starts with a lookup by
//! name, and in a large cluster most of those messages are duplicates that
//! end right there. With `Arc<str>` keys a lookup that finds its bucket still
//! follows a pointer to compare the name: one more cache miss per message
//! once many node tables share the cache (the simulator, `loadgen`). A
//! [`NameKey`] keeps names up to [`INLINE`] bytes — hostnames, in practice —
//! in the bucket itself; longer names share the node's `Arc`. Neither form
//! allocates.

use core::borrow::Borrow;
use core::hash::{Hash, Hasher};
use std::sync::Arc;

/// Longest name stored inline (the key is 32 bytes either way).
const INLINE: usize = 30;

#[derive(Clone)]
pub(super) enum NameKey {
    Inline { len: u8, bytes: [u8; INLINE] },
    Shared(Arc<str>),
}

impl NameKey {
    pub(super) fn new(name: &Arc<str>) -> Self {
        let src = name.as_bytes();
        let mut bytes = [0u8; INLINE];
        match (u8::try_from(src.len()), bytes.get_mut(..src.len())) {
            (Ok(len), Some(dst)) => {
                dst.copy_from_slice(src);
                NameKey::Inline { len, bytes }
            }
            _ => NameKey::Shared(name.clone()),
        }
    }

    pub(super) fn as_bytes(&self) -> &[u8] {
        match self {
            // `new` stores at most `INLINE` bytes.
            NameKey::Inline { len, bytes } => bytes.get(..usize::from(*len)).unwrap_or(&[]),
            NameKey::Shared(s) => s.as_bytes(),
        }
    }
}

// Searching the map with a plain `&[u8]` needs `Borrow<[u8]>`, which in turn
// needs `Hash` and `Eq` to agree with the slice's: both delegate to it.
impl Borrow<[u8]> for NameKey {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl Hash for NameKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl PartialEq for NameKey {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for NameKey {}

impl core::fmt::Debug for NameKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        core::fmt::Debug::fmt(&String::from_utf8_lossy(self.as_bytes()), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::hash_map::RandomState;
    use std::hash::BuildHasher;

    #[test]
    fn short_names_are_inline_and_long_ones_shared() {
        let short: Arc<str> = Arc::from("node-1.example");
        let edge: Arc<str> = Arc::from("b".repeat(INLINE).as_str());
        let long: Arc<str> = Arc::from("a".repeat(INLINE + 1).as_str());
        assert!(matches!(NameKey::new(&short), NameKey::Inline { .. }));
        assert!(matches!(NameKey::new(&edge), NameKey::Inline { .. }));
        assert!(matches!(NameKey::new(&long), NameKey::Shared(_)));
        assert_eq!(std::mem::size_of::<NameKey>(), 32);
    }

    #[test]
    fn key_and_slice_hash_and_compare_alike() {
        let s = RandomState::new();
        for name in ["", "x", "node-0042", &"c".repeat(INLINE), &"d".repeat(200)] {
            let arc: Arc<str> = Arc::from(name);
            let key = NameKey::new(&arc);
            assert_eq!(key.as_bytes(), name.as_bytes());
            assert_eq!(s.hash_one(&key), s.hash_one(name.as_bytes()));
            let mut map = ahash::AHashMap::new();
            map.insert(key, 7u32);
            assert_eq!(map.get(name.as_bytes()), Some(&7));
            assert_eq!(map.get(b"other".as_slice()), None);
        }
    }
}
