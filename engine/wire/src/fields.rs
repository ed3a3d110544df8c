//! One definition per message: the field codecs, the lazy list and map
//! views, and the `message!` macro from which every Go struct's decoder
//! and encoder follow.
//!
//! A Go struct travels as a msgpack map whose keys are its field names in
//! bytewise order. `message!` takes one table per struct — key, Rust
//! field, Rust type and *codec* (the wire form: [`Uint`], [`Str`], [`Bin`],
//! [`OmitEmpty`]…) — and generates the struct, its decoder (keys matched by
//! exact name in any order, unknown keys skipped, the last of a repeated key
//! winning, as in Go) and its encoder (the keys in table order, the map
//! length counted from the same table, `omitempty` fields left out when
//! empty). The encoded length follows from the encoder through
//! [`Writer::counting`]. A key, its position and the map's entry count are
//! thus written exactly once; a compile-time check rejects a table whose
//! keys are not strictly ascending, which is the order Go writes.
//!
//! Decoding borrows from the input and never allocates; encoding writes into
//! the caller's [`Writer`]. The codecs are `#[inline]`, so each message's
//! decoder and encoder compile to the straight-line code a hand-written one
//! would.
//!
//! Special cases stay expressible: a codec of its own for a field with its
//! own rules (`memberlist::Vsn`, `memberlist::State`, the coordinate's
//! `Vec`), a `check` run after decoding (push-pull limits), a `then` tail of
//! raw bytes after the map (the relay's inner message), and `via` fields an
//! `encode_with` method takes from the caller instead of a decoded view.

use core::marker::PhantomData;

use super::msgpack::{Reader, Writer};
use super::{Error, Result};

// ---------------------------------------------------------------------------
// Field codecs

/// Reads a field of Rust type `V` in the wire form the implementing codec names.
pub trait Decode<'a, V> {
    /// Reads one value; `r` is positioned at it and must end past it.
    fn decode(r: &mut Reader<'a>) -> Result<V>;
    /// Reads one value into the field `slot` (what a struct's decoder calls).
    #[inline(always)]
    fn decode_into(r: &mut Reader<'a>, slot: &mut V) -> Result<()> {
        *slot = Self::decode(r)?;
        Ok(())
    }
}

/// Writes a field of Rust type `V` in the wire form the implementing codec names.
pub trait Encode<V> {
    /// Whether the field is written at all: false only for an empty
    /// `omitempty` field ([`OmitEmpty`]).
    #[inline(always)]
    fn present(_v: &V) -> bool {
        true
    }
    /// Writes the value (the key is already written).
    fn encode(w: &mut Writer<'_>, v: V) -> Result<()>;
}

/// Any unsigned Go integer: the smallest form on write; any integer that
/// fits on read, nil as 0 ([`Reader::uint`]).
pub struct Uint;

impl<T: TryFrom<u64>> Decode<'_, T> for Uint {
    #[inline(always)]
    fn decode(r: &mut Reader<'_>) -> Result<T> {
        r.uint()
    }
}

impl<T: Into<u64>> Encode<T> for Uint {
    #[inline(always)]
    fn encode(w: &mut Writer<'_>, v: T) -> Result<()> {
        w.uint(v.into())
    }
}

/// A signed Go integer (`int`, `int64`, `time.Duration`): non-negative
/// values in the unsigned family on write ([`Writer::sint`]).
pub struct Sint;

impl<T: TryFrom<i64>> Decode<'_, T> for Sint {
    #[inline(always)]
    fn decode(r: &mut Reader<'_>) -> Result<T> {
        r.sint()
    }
}

impl Encode<i64> for Sint {
    #[inline(always)]
    fn encode(w: &mut Writer<'_>, v: i64) -> Result<()> {
        w.sint(v)
    }
}

/// A Go `int` holding a count or length: signed on the wire, a `usize`
/// here, negative values rejected ([`Reader::count`]).
pub struct Count;

impl Decode<'_, usize> for Count {
    #[inline(always)]
    fn decode(r: &mut Reader<'_>) -> Result<usize> {
        r.count()
    }
}

impl Encode<usize> for Count {
    #[inline(always)]
    fn encode(w: &mut Writer<'_>, v: usize) -> Result<()> {
        w.uint(v as u64)
    }
}

/// A Go `bool`.
pub struct Bool;

impl Decode<'_, bool> for Bool {
    #[inline(always)]
    fn decode(r: &mut Reader<'_>) -> Result<bool> {
        r.bool()
    }
}

impl Encode<bool> for Bool {
    #[inline(always)]
    fn encode(w: &mut Writer<'_>, v: bool) -> Result<()> {
        w.bool(v)
    }
}

/// A Go `float64`, always written as 9 bytes.
pub struct F64;

impl Decode<'_, f64> for F64 {
    #[inline(always)]
    fn decode(r: &mut Reader<'_>) -> Result<f64> {
        r.f64()
    }
}

impl Encode<f64> for F64 {
    #[inline(always)]
    fn encode(w: &mut Writer<'_>, v: f64) -> Result<()> {
        w.f64(v)
    }
}

/// A Go `string` (nil reads as `""`).
pub struct Str;

impl<'a> Decode<'a, &'a str> for Str {
    #[inline(always)]
    fn decode(r: &mut Reader<'a>) -> Result<&'a str> {
        r.str()
    }
}

impl Encode<&str> for Str {
    #[inline(always)]
    fn encode(w: &mut Writer<'_>, v: &str) -> Result<()> {
        w.str(v)
    }
}

/// A Go `[]byte`: as `Option<&[u8]>` nil and empty stay distinct; as
/// `&[u8]` nil reads as empty (for `omitempty` fields, where Go writes
/// neither).
pub struct Bin;

impl<'a> Decode<'a, Option<&'a [u8]>> for Bin {
    #[inline(always)]
    fn decode(r: &mut Reader<'a>) -> Result<Option<&'a [u8]>> {
        r.bytes()
    }
}

impl<'a> Decode<'a, &'a [u8]> for Bin {
    #[inline(always)]
    fn decode(r: &mut Reader<'a>) -> Result<&'a [u8]> {
        r.bytes_or_empty()
    }
}

impl Encode<Option<&[u8]>> for Bin {
    #[inline(always)]
    fn encode(w: &mut Writer<'_>, v: Option<&[u8]>) -> Result<()> {
        w.bin_opt(v)
    }
}

impl Encode<&[u8]> for Bin {
    #[inline(always)]
    fn encode(w: &mut Writer<'_>, v: &[u8]) -> Result<()> {
        w.bin(v)
    }
}

/// Go's `omitempty`: the field `C` writes, left out of the map (and of its
/// entry count) when it is empty or zero.
pub struct OmitEmpty<C>(PhantomData<C>);

/// A value Go's `omitempty` can leave out.
pub trait Empty {
    /// True for `""`, an empty slice, or 0.
    fn is_empty_value(&self) -> bool;
}

impl Empty for &str {
    #[inline(always)]
    fn is_empty_value(&self) -> bool {
        self.is_empty()
    }
}

impl Empty for &[u8] {
    #[inline(always)]
    fn is_empty_value(&self) -> bool {
        self.is_empty()
    }
}

impl Empty for u16 {
    #[inline(always)]
    fn is_empty_value(&self) -> bool {
        *self == 0
    }
}

impl<'a, V, C: Decode<'a, V>> Decode<'a, V> for OmitEmpty<C> {
    #[inline(always)]
    fn decode(r: &mut Reader<'a>) -> Result<V> {
        C::decode(r)
    }
}

impl<V: Empty, C: Encode<V>> Encode<V> for OmitEmpty<C> {
    #[inline(always)]
    fn present(v: &V) -> bool {
        !v.is_empty_value()
    }
    #[inline(always)]
    fn encode(w: &mut Writer<'_>, v: V) -> Result<()> {
        C::encode(w, v)
    }
}

/// A Go slice: nil or an array. Reads into `Option<List<T>>`; writes a
/// `List` again or, for values the caller holds elsewhere, any
/// `Option<impl ExactSizeIterator>` of [`Put`] elements.
pub struct Seq;

impl<'a, T: Item<'a>> Decode<'a, Option<List<'a, T>>> for Seq {
    #[inline(always)]
    fn decode(r: &mut Reader<'a>) -> Result<Option<List<'a, T>>> {
        List::read_opt(r)
    }
}

impl<'a, T: Item<'a> + Put> Encode<Option<List<'a, T>>> for Seq {
    #[inline(always)]
    fn encode(w: &mut Writer<'_>, v: Option<List<'a, T>>) -> Result<()> {
        <Seq as Encode<_>>::encode(w, v.map(|l| l.iter()))
    }
}

impl<I> Encode<Option<I>> for Seq
where
    I: ExactSizeIterator,
    I::Item: Put,
{
    #[inline(always)]
    fn encode(w: &mut Writer<'_>, v: Option<I>) -> Result<()> {
        match v {
            Some(items) => write_array(w, items),
            None => w.nil(),
        }
    }
}

/// A Go map: nil or a map. Reads into `Option<Map<K, V>>`; writes a `Map`
/// again or any `Option<impl ExactSizeIterator<Item = (K, V)>>`.
pub struct Dict;

impl<'a, K: Item<'a>, V: Item<'a>> Decode<'a, Option<Map<'a, K, V>>> for Dict {
    #[inline(always)]
    fn decode(r: &mut Reader<'a>) -> Result<Option<Map<'a, K, V>>> {
        Map::read_opt(r)
    }
}

impl<'a, K: Item<'a> + Put, V: Item<'a> + Put> Encode<Option<Map<'a, K, V>>> for Dict {
    #[inline(always)]
    fn encode(w: &mut Writer<'_>, v: Option<Map<'a, K, V>>) -> Result<()> {
        <Dict as Encode<_>>::encode(w, v.map(|m| m.iter()))
    }
}

impl<I, K: Put, V: Put> Encode<Option<I>> for Dict
where
    I: ExactSizeIterator<Item = (K, V)>,
{
    #[inline(always)]
    fn encode(w: &mut Writer<'_>, v: Option<I>) -> Result<()> {
        match v {
            Some(entries) => write_map(w, entries),
            None => w.nil(),
        }
    }
}

/// A nested struct (itself defined with `message!`). It is decoded in
/// place: a key repeated in the outer map updates the fields the repeated
/// inner map names and keeps the others, as Go's decoder does.
pub struct Nested;

impl<'a, T: ReadFields<'a> + Default> Decode<'a, T> for Nested {
    #[inline(always)]
    fn decode(r: &mut Reader<'a>) -> Result<T> {
        let mut v = T::default();
        v.read_fields(r)?;
        Ok(v)
    }
    #[inline(always)]
    fn decode_into(r: &mut Reader<'a>, slot: &mut T) -> Result<()> {
        slot.read_fields(r)
    }
}

impl<T: WriteFields> Encode<T> for Nested {
    #[inline(always)]
    fn encode(w: &mut Writer<'_>, v: T) -> Result<()> {
        v.write_fields(w)
    }
}

/// A struct defined with `message!`: its map, read into place.
pub trait ReadFields<'a> {
    /// Reads a map into the fields it names (unknown keys skipped; a nil map
    /// names none).
    fn read_fields(&mut self, r: &mut Reader<'a>) -> Result<()>;
}

/// A struct defined with `message!`: its map, written.
pub trait WriteFields {
    /// Writes the map: the entry count, then each present key and value.
    fn write_fields(&self, w: &mut Writer<'_>) -> Result<()>;
}

// ---------------------------------------------------------------------------
// Elements of lists and maps

/// A value that can be read from a msgpack cursor as a list or map element.
pub trait Item<'a>: Sized {
    /// Reads one element.
    fn read(r: &mut Reader<'a>) -> Result<Self>;
}

/// A value that can be written as a list or map element (or a nested struct).
pub trait Put {
    /// Writes the value.
    fn put(self, w: &mut Writer<'_>) -> Result<()>;
}

impl<'a> Item<'a> for &'a str {
    #[inline(always)]
    fn read(r: &mut Reader<'a>) -> Result<Self> {
        r.str()
    }
}

impl Put for &str {
    #[inline(always)]
    fn put(self, w: &mut Writer<'_>) -> Result<()> {
        w.str(self)
    }
}

impl Item<'_> for u64 {
    #[inline(always)]
    fn read(r: &mut Reader<'_>) -> Result<Self> {
        r.uint()
    }
}

impl Put for u64 {
    #[inline(always)]
    fn put(self, w: &mut Writer<'_>) -> Result<()> {
        w.uint(self)
    }
}

/// A Go `[]byte` element where nil reads as empty (query filter blobs).
impl<'a> Item<'a> for &'a [u8] {
    #[inline(always)]
    fn read(r: &mut Reader<'a>) -> Result<Self> {
        r.bytes_or_empty()
    }
}

impl Put for &[u8] {
    #[inline(always)]
    fn put(self, w: &mut Writer<'_>) -> Result<()> {
        w.bin(self)
    }
}

/// A nil-able element (a Go pointer, or a `[]byte` where nil and empty
/// differ): nil reads as `None`.
impl<'a, T: Item<'a>> Item<'a> for Option<T> {
    #[inline(always)]
    fn read(r: &mut Reader<'a>) -> Result<Self> {
        if r.nil()? {
            return Ok(None);
        }
        T::read(r).map(Some)
    }
}

impl<T: Put> Put for Option<T> {
    #[inline(always)]
    fn put(self, w: &mut Writer<'_>) -> Result<()> {
        match self {
            Some(v) => v.put(w),
            None => w.nil(),
        }
    }
}

/// Writes an array of `items`.
#[inline]
pub fn write_array<P: Put>(
    w: &mut Writer<'_>,
    items: impl ExactSizeIterator<Item = P>,
) -> Result<()> {
    w.array_len(items.len())?;
    for item in items {
        item.put(w)?;
    }
    Ok(())
}

/// Writes a map of `entries`.
#[inline]
pub fn write_map<K: Put, V: Put>(
    w: &mut Writer<'_>,
    entries: impl ExactSizeIterator<Item = (K, V)>,
) -> Result<()> {
    w.map_len(entries.len())?;
    for (k, v) in entries {
        k.put(w)?;
        v.put(w)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Lazy lists and maps

/// Validates `count` values read by `each` and returns the bytes they span.
#[inline]
fn span<'a>(
    r: &mut Reader<'a>,
    count: usize,
    mut each: impl FnMut(&mut Reader<'a>) -> Result<()>,
) -> Result<&'a [u8]> {
    let start = r.remaining();
    let before = r.position();
    for _ in 0..count {
        each(r)?;
    }
    let used = r.position().checked_sub(before).ok_or(Error::Truncated)?;
    start.get(..used).ok_or(Error::Truncated)
}

/// An array decoded lazily: validated at decode time, re-read on iteration.
pub struct List<'a, T> {
    raw: &'a [u8],
    count: usize,
    _t: PhantomData<fn() -> T>,
}

impl<T> Clone for List<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for List<'_, T> {}
impl<T> PartialEq for List<'_, T> {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw && self.count == other.count
    }
}
impl<T> Eq for List<'_, T> {}
impl<T> core::fmt::Debug for List<'_, T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "List(len={})", self.count)
    }
}
/// The empty list.
impl<T> Default for List<'_, T> {
    fn default() -> Self {
        List { raw: &[], count: 0, _t: PhantomData }
    }
}

impl<'a, T: Item<'a>> List<'a, T> {
    /// Reads an array (or nil, giving `None`) and validates every element.
    #[inline]
    pub fn read_opt(r: &mut Reader<'a>) -> Result<Option<Self>> {
        let Some(count) = r.array_len_or_nil()? else { return Ok(None) };
        Self::read_n(r, count).map(Some)
    }

    /// Reads and validates `count` elements that follow each other with no
    /// array header (the node states of a memberlist push-pull).
    #[inline]
    pub fn read_n(r: &mut Reader<'a>, count: usize) -> Result<Self> {
        let raw = span(r, count, |r| T::read(r).map(drop))?;
        Ok(List { raw, count, _t: PhantomData })
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.count
    }

    /// True if empty.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The elements in wire order.
    pub fn iter(&self) -> ListIter<'a, T> {
        ListIter { r: Reader::new(self.raw), left: self.count, _t: PhantomData }
    }
}

impl<'a, T: Item<'a>> IntoIterator for List<'a, T> {
    type Item = T;
    type IntoIter = ListIter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Iterator over a [`List`].
pub struct ListIter<'a, T> {
    r: Reader<'a>,
    left: usize,
    _t: PhantomData<fn() -> T>,
}

impl<T> Clone for ListIter<'_, T> {
    fn clone(&self) -> Self {
        ListIter { r: self.r, left: self.left, _t: PhantomData }
    }
}
impl<T> core::fmt::Debug for ListIter<'_, T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "ListIter(left={})", self.left)
    }
}

impl<'a, T: Item<'a>> Iterator for ListIter<'a, T> {
    type Item = T;
    #[inline]
    fn next(&mut self) -> Option<T> {
        self.left = self.left.checked_sub(1)?;
        // Validated when the list was read; an error cannot occur here,
        // and would end the iteration rather than panic.
        T::read(&mut self.r).ok()
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}
impl<'a, T: Item<'a>> ExactSizeIterator for ListIter<'a, T> {}

/// A Go map decoded lazily, entries in wire order.
pub struct Map<'a, K, V> {
    raw: &'a [u8],
    count: usize,
    _t: PhantomData<fn() -> (K, V)>,
}

impl<K, V> Clone for Map<'_, K, V> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<K, V> Copy for Map<'_, K, V> {}
impl<K, V> PartialEq for Map<'_, K, V> {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw && self.count == other.count
    }
}
impl<K, V> Eq for Map<'_, K, V> {}
impl<K, V> core::fmt::Debug for Map<'_, K, V> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Map(len={})", self.count)
    }
}
/// The empty map.
impl<K, V> Default for Map<'_, K, V> {
    fn default() -> Self {
        Map { raw: &[], count: 0, _t: PhantomData }
    }
}

impl<'a, K: Item<'a>, V: Item<'a>> Map<'a, K, V> {
    /// Reads a map (or nil, giving `None`) and validates every entry.
    #[inline]
    pub fn read_opt(r: &mut Reader<'a>) -> Result<Option<Self>> {
        let Some(count) = r.map_len_or_nil()? else { return Ok(None) };
        let raw = span(r, count, |r| {
            K::read(r)?;
            V::read(r).map(drop)
        })?;
        Ok(Some(Map { raw, count, _t: PhantomData }))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.count
    }

    /// True if empty.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Entries in wire order.
    pub fn iter(&self) -> MapIter<'a, K, V> {
        MapIter { r: Reader::new(self.raw), left: self.count, _t: PhantomData }
    }
}

impl<'a, V: Item<'a>> Map<'a, &'a str, V> {
    /// The value for `key` (last one wins, as in Go), by linear scan.
    pub fn get(&self, key: &str) -> Option<V> {
        self.iter().filter(|(k, _)| *k == key).last().map(|(_, v)| v)
    }
}

/// Iterator over a [`Map`].
pub struct MapIter<'a, K, V> {
    r: Reader<'a>,
    left: usize,
    _t: PhantomData<fn() -> (K, V)>,
}

impl<'a, K: Item<'a>, V: Item<'a>> Iterator for MapIter<'a, K, V> {
    type Item = (K, V);
    #[inline]
    fn next(&mut self) -> Option<(K, V)> {
        self.left = self.left.checked_sub(1)?;
        let k = K::read(&mut self.r).ok()?;
        let v = V::read(&mut self.r).ok()?;
        Some((k, v))
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left, Some(self.left))
    }
}
impl<'a, K: Item<'a>, V: Item<'a>> ExactSizeIterator for MapIter<'a, K, V> {}

// ---------------------------------------------------------------------------
// Tables

/// True if every key is bytewise greater than the one before: the order Go
/// writes struct fields in, checked at compile time for every table.
pub const fn keys_ascending(mut keys: &[&[u8]]) -> bool {
    while let [a, rest @ ..] = keys {
        if let [b, ..] = rest {
            if !bytes_less(a, b) {
                return false;
            }
        }
        keys = rest;
    }
    true
}

const fn bytes_less(mut a: &[u8], mut b: &[u8]) -> bool {
    loop {
        match (a, b) {
            (_, []) => return false,
            ([], _) => return true,
            ([x, ra @ ..], [y, rb @ ..]) => {
                if *x != *y {
                    return *x < *y;
                }
                a = ra;
                b = rb;
            }
        }
    }
}

/// Defines a Go struct that travels as a msgpack map, from one table.
///
/// ```text
/// message! {
///     /// doc
///     #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
///     pub struct Name<'a> = TYPE_BYTE {        // `= TYPE_BYTE`: a message body (Body)
///         /// field doc
///         b"Key" => pub field: Type as Codec,   // one line per key, in Go's order
///         b"Other" via param => pub other: Type as Codec,
///     }
///     then /// doc
///         pub tail: &'a [u8];                   // optional: raw bytes after the map
///     check validate_fn;                        // optional: fn(&Self) -> Result<()>
///     encode_with /// doc
///         pub fn encode_other_with<'s>(param: ParamType);
/// }
/// ```
///
/// It generates the struct (which must be `Copy + Default`) and:
/// * with `= TYPE_BYTE`: an impl of [`Body`](crate::Body) (`decode_from`,
///   `encode_body`; `encode`, `encode_to` and `encoded_len` follow);
/// * without: inherent `decode_from` and `encode`, and [`Item`] / [`Put`]
///   so the struct can be a list element or a nil-able value;
/// * always: [`ReadFields`] / [`WriteFields`] (the bare map), through which
///   the struct can be a [`Nested`] field of another;
/// * with `encode_with`: a method writing the same map with every field
///   marked `via param` taken from that parameter instead of `self`
///   (elements the caller holds outside any decoded buffer).
///
/// Decoding starts from `Default`, assigns each known key with its codec
/// ([`Decode`]) and skips unknown ones; then takes the tail (the rest of
/// the input) and runs the check. Encoding writes the map length (fields
/// whose codec says not [`Encode::present`] are not counted), each present
/// key and value in table order, then the tail.
macro_rules! message {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident<$lt:lifetime> $(= $ty:path)? { $($body:tt)* }
        $($rest:tt)*
    ) => {
        $crate::fields::message!(@parse [$(#[$meta])*] $vis $name [<$lt>] [$name<$lt>] $lt
            [$($ty)?] { $($body)* } $($rest)*);
    };
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident $(= $ty:path)? { $($body:tt)* }
        $($rest:tt)*
    ) => {
        $crate::fields::message!(@parse [$(#[$meta])*] $vis $name [] [$name] 'a
            [$($ty)?] { $($body)* } $($rest)*);
    };

    (@parse [$($meta:tt)*] $vis:vis $name:ident [$($gen:tt)*] [$self_ty:ty] $lt:lifetime
        [$($ty:path)?]
        {
            $(
                $(#[$fmeta:meta])*
                $key:literal $(via $param:ident)? => $fvis:vis $field:ident : $fty:ty as $codec:ty
            ),* $(,)?
        }
        $(then $(#[$tmeta:meta])* $tvis:vis $tail:ident : $tty:ty;)?
        $(check $check:path;)?
        $(encode_with $($with:tt)*)?
    ) => {
        $($meta)*
        $vis struct $name $($gen)* {
            $( $(#[$fmeta])* $fvis $field: $fty, )*
            $( $(#[$tmeta])* $tvis $tail: $tty, )?
        }

        const _: () = assert!(
            $crate::fields::keys_ascending(&[$($key.as_slice()),*]),
            concat!("the keys of `", stringify!($name), "` must ascend, as Go writes them")
        );

        impl<$lt> $crate::fields::ReadFields<$lt> for $self_ty {
            #[inline]
            fn read_fields(&mut self, r: &mut $crate::msgpack::Reader<$lt>) -> $crate::Result<()> {
                $crate::msgpack::read_struct(r, |k, r| {
                    match k {
                        $( $key => <$codec as $crate::fields::Decode<$lt, $fty>>::decode_into(
                            r, &mut self.$field)?, )*
                        _ => r.skip()?,
                    }
                    Ok(())
                })
            }
        }

        impl<$lt> $crate::fields::WriteFields for $self_ty {
            #[inline]
            fn write_fields(&self, w: &mut $crate::msgpack::Writer<'_>) -> $crate::Result<()> {
                let n = 0usize $(.wrapping_add(usize::from(
                    <$codec as $crate::fields::Encode<$fty>>::present(&self.$field))))*;
                w.map_len(n)?;
                $(
                    if <$codec as $crate::fields::Encode<$fty>>::present(&self.$field) {
                        w.str_bytes($key)?;
                        <$codec as $crate::fields::Encode<$fty>>::encode(w, self.$field)?;
                    }
                )*
                Ok(())
            }
        }

        impl<$lt> $self_ty {
            /// Reads the map and the tail, then runs the check.
            #[inline]
            fn read_map(r: &mut $crate::msgpack::Reader<$lt>) -> $crate::Result<Self> {
                let mut m = Self::default();
                $crate::fields::ReadFields::read_fields(&mut m, r)?;
                $( m.$tail = r.take(r.remaining().len())?; )?
                $( $check(&m)?; )?
                Ok(m)
            }

            /// Writes the map and the tail.
            #[inline]
            fn write_map(&self, w: &mut $crate::msgpack::Writer<'_>) -> $crate::Result<()> {
                $crate::fields::WriteFields::write_fields(self, w)?;
                self.write_tail(w)
            }

            /// Writes the raw bytes after the map, if the struct has any.
            #[inline(always)]
            fn write_tail(&self, _w: &mut $crate::msgpack::Writer<'_>) -> $crate::Result<()> {
                $( _w.raw(self.$tail)?; )?
                Ok(())
            }
        }

        $crate::fields::message!(@with [$self_ty] $lt [$($($with)*)?]
            [$( $key $(via $param)? => $field : $fty as $codec ),*]);
        $crate::fields::message!(@kind [$($ty)?] [$self_ty] $lt $name);
    };

    (@with [$self_ty:ty] $lt:lifetime [] [$($fields:tt)*]) => {};
    (@with [$self_ty:ty] $lt:lifetime
        [
            $(#[$emeta:meta])*
            $evis:vis fn $ename:ident<$($elt:lifetime),*>($($pname:ident : $pty:ty),* $(,)?);
        ]
        [$( $key:literal $(via $param:ident)? => $field:ident : $fty:ty as $codec:ty ),*]
    ) => {
        impl<$lt> $self_ty {
            $(#[$emeta])*
            $evis fn $ename<$($elt),*>(
                &self,
                w: &mut $crate::msgpack::Writer<'_>,
                $($pname: $pty),*
            ) -> $crate::Result<()> {
                let n = 0usize $(.wrapping_add(usize::from(
                    <$codec as $crate::fields::Encode<_>>::present(
                        &$crate::fields::message!(@source (self.$field) $($param)?)))))*;
                w.map_len(n)?;
                $(
                    let v = $crate::fields::message!(@source (self.$field) $($param)?);
                    if <$codec as $crate::fields::Encode<_>>::present(&v) {
                        w.str_bytes($key)?;
                        <$codec as $crate::fields::Encode<_>>::encode(w, v)?;
                    }
                )*
                self.write_tail(w)
            }
        }
    };

    (@source ($($v:tt)*)) => { $($v)* };
    (@source ($($v:tt)*) $param:ident) => { $param };

    (@kind [$ty:path] [$self_ty:ty] $lt:lifetime $name:ident) => {
        impl<$lt> $crate::Body<$lt> for $self_ty {
            const TYPE: u8 = $ty as u8;
            fn decode_from(r: &mut $crate::msgpack::Reader<$lt>) -> $crate::Result<Self> {
                Self::read_map(r)
            }
            fn encode_body(&self, w: &mut $crate::msgpack::Writer<'_>) -> $crate::Result<()> {
                self.write_map(w)
            }
        }
    };
    (@kind [] [$self_ty:ty] $lt:lifetime $name:ident) => {
        impl<$lt> $self_ty {
            #[doc = concat!("Reads one `", stringify!($name), "` map.")]
            pub fn decode_from(r: &mut $crate::msgpack::Reader<$lt>) -> $crate::Result<Self> {
                Self::read_map(r)
            }
            #[doc = concat!("Writes one `", stringify!($name), "` map.")]
            pub fn encode(&self, w: &mut $crate::msgpack::Writer<'_>) -> $crate::Result<()> {
                self.write_map(w)
            }
        }
        impl<$lt> $crate::fields::Item<$lt> for $self_ty {
            #[inline]
            fn read(r: &mut $crate::msgpack::Reader<$lt>) -> $crate::Result<Self> {
                Self::read_map(r)
            }
        }
        impl<$lt> $crate::fields::Put for $self_ty {
            #[inline]
            fn put(self, w: &mut $crate::msgpack::Writer<'_>) -> $crate::Result<()> {
                self.write_map(w)
            }
        }
    };
}
pub(crate) use message;

/// Defines a type-byte enum and its `TryFrom<u8>` (an unknown byte is
/// [`Error::UnknownType`]) from one list of variants.
macro_rules! type_byte {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident { $($variant:ident = $value:literal),* $(,)? }
    ) => {
        $(#[$meta])*
        #[repr(u8)]
        $vis enum $name { $($variant = $value),* }

        impl TryFrom<u8> for $name {
            type Error = $crate::Error;
            #[inline]
            fn try_from(b: u8) -> $crate::Result<Self> {
                match b {
                    $( $value => Ok($name::$variant), )*
                    _ => Err($crate::Error::UnknownType(b)),
                }
            }
        }
    };
}
pub(crate) use type_byte;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_order_check() {
        assert!(keys_ascending(&[]));
        assert!(keys_ascending(&[b"A"]));
        assert!(keys_ascending(&[b"EventLTime", b"Events", b"LTime", b"LeftMembers"]));
        assert!(keys_ascending(&[b"Node", b"SeqNo", b"SourceAddr", b"SourceNode"]));
        assert!(!keys_ascending(&[b"SeqNo", b"Node"]));
        assert!(!keys_ascending(&[b"Node", b"Node"]), "a repeated key");
        assert!(!keys_ascending(&[b"Nodes", b"Node"]), "a prefix sorts first");
        assert!(keys_ascending(&[b"Node", b"Nodes"]));
    }
}
