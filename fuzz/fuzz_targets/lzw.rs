//! LZW: arbitrary input decompresses into a bounded buffer without panic,
//! and arbitrary input compresses and decompresses back to itself (into a
//! buffer of exactly its length).
#![no_main]

use std::cell::RefCell;

use engine::wire::lzw::{max_compressed_len, LzwDecoder, LzwEncoder};
use libfuzzer_sys::fuzz_target;

struct State {
    enc: LzwEncoder,
    dec: LzwDecoder,
    packed: Vec<u8>,
    plain: Vec<u8>,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State {
        enc: LzwEncoder::new(),
        dec: LzwDecoder::new(),
        packed: Vec::new(),
        plain: vec![0; 1 << 16],
    });
}

fuzz_target!(|data: &[u8]| {
    STATE.with(|s| {
        let s = &mut *s.borrow_mut();
        if let Ok(n) = s.dec.decompress(data, &mut s.plain[..1 << 16]) {
            assert!(n <= 1 << 16);
        }
        s.packed.resize(max_compressed_len(data.len()), 0);
        let n = s.enc.compress(data, &mut s.packed).expect("output bound too small");
        s.plain.resize(data.len().max(1 << 16), 0);
        let m = s.dec.decompress(&s.packed[..n], &mut s.plain[..data.len()]).expect("round trip");
        assert_eq!(&s.plain[..m], data);
    });
});
