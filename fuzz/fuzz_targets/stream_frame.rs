//! Bytes read from a stream: `frame_len` on growing prefixes is consistent
//! (undecided, then one fixed answer), and a complete frame opens with and
//! without the captured keyring; a complete plaintext frame always decodes.
#![no_main]

use std::cell::RefCell;

use engine::wire::memberlist::MessageType;
use engine::wire::stream::{frame_len, StreamCodec};
use engine_fuzz::{check_stream, KEYRING};
use libfuzzer_sys::fuzz_target;

thread_local! {
    static CODEC: RefCell<(StreamCodec, Vec<u8>)> = RefCell::new((StreamCodec::new(), Vec::new()));
}

fuzz_target!(|data: &[u8]| {
    // Every prefix for short inputs, about 512 evenly spaced ones for long.
    let step = (data.len() / 512).max(1);
    let mut prev = Ok(None);
    for p in (0..=data.len()).step_by(step).chain([data.len()]) {
        let now = frame_len(&data[..p]);
        match (&prev, &now) {
            (Ok(None), _) => {}
            (Ok(Some(a)), Ok(Some(b))) => assert_eq!(a, b, "frame length changed at {p}"),
            (Err(a), Err(b)) => assert_eq!(a, b, "error changed at {p}"),
            _ => panic!("frame_len went from {prev:?} to {now:?} at {p}"),
        }
        if let Ok(Some(n)) = now {
            assert!(n > 0 && n <= p, "frame of {n} bytes in a prefix of {p}");
        }
        prev = now;
    }
    let Ok(Some(n)) = prev else { return };
    assert_eq!(frame_len(&data[..n]), Ok(Some(n)));
    assert_eq!(frame_len(&data[..n - 1]), Ok(None));

    CODEC.with(|c| {
        let (codec, inflate) = &mut *c.borrow_mut();
        let mut msg = data[..n].to_vec();
        let plain = codec.open(&mut msg, None, inflate);
        let first = data[0];
        if first != MessageType::Compress as u8 && first != MessageType::Encrypt as u8 {
            // frame_len decoded it already.
            assert!(plain.is_ok(), "complete plaintext frame does not decode: {plain:?}");
        }
        if let Ok(m) = plain {
            check_stream(&m);
        }
        let mut msg = data[..n].to_vec();
        if let Ok(m) = codec.open(&mut msg, Some(&KEYRING), inflate) {
            check_stream(&m);
        }
    });
});
