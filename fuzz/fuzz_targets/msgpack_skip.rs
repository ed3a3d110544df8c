//! The msgpack cursor on arbitrary input: `skip` and `value_bytes` agree,
//! always advance, and never move past the input; typed reads (chosen by
//! the first byte) either succeed within bounds or fail.
#![no_main]

use engine::wire::msgpack::Reader;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut r = Reader::new(data);
    while !r.is_empty() {
        let before = r.position();
        let mut probe = r;
        let value = probe.value_bytes();
        match r.skip() {
            Ok(()) => {
                let after = r.position();
                assert!(after > before && after <= data.len());
                assert_eq!(value, Ok(&data[before..after]));
                assert_eq!(probe.position(), after);
            }
            Err(e) => {
                assert_eq!(value, Err(e));
                break;
            }
        }
    }

    let seed = usize::from(data.first().copied().unwrap_or(0));
    let mut r = Reader::new(data.get(1..).unwrap_or(&[]));
    for i in 0.. {
        let before = r.position();
        let ok = match (seed + i) % 11 {
            0 => r.str().is_ok(),
            1 => r.bytes().is_ok(),
            2 => r.uint::<u64>().is_ok(),
            3 => r.sint::<i64>().is_ok(),
            4 => r.bool().is_ok(),
            5 => r.f64().is_ok(),
            6 => r.map_len_or_nil().is_ok(),
            7 => r.array_len_or_nil().is_ok(),
            8 => r.count().is_ok(),
            9 => r.nil().is_ok(),
            _ => engine::wire::msgpack::read_struct(&mut r, |_, r| r.skip()).is_ok(),
        };
        assert!(r.position() <= data.len());
        if !ok || r.is_empty() {
            break;
        }
        assert!(r.position() >= before);
        if r.position() == before && (seed + i) % 11 != 9 {
            panic!("a successful read consumed nothing");
        }
        if i > data.len() * 2 + 16 {
            break;
        }
    }
});
