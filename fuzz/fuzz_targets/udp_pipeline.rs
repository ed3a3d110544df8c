//! A received datagram: opened without and with the captured keyring
//! (decryption, CRC), then every compound / compress layer peeled and every
//! leaf decoded, re-encoded, and (for user messages) decoded as Serf.
#![no_main]

use std::cell::RefCell;

use engine::wire::packet::PacketCodec;
use engine_fuzz::{check_message, KEYRING};
use libfuzzer_sys::fuzz_target;

thread_local! {
    static CODEC: RefCell<PacketCodec> = RefCell::new(PacketCodec::new());
}

fuzz_target!(|data: &[u8]| {
    CODEC.with(|codec| {
        let mut codec = codec.borrow_mut();
        for ring in [None, Some(&*KEYRING)] {
            let mut packet = data.to_vec();
            let Ok(range) = PacketCodec::open(&mut packet, ring) else { continue };
            assert!(range.start < range.end && range.end <= data.len());
            // (A compound of zero parts legitimately yields nothing, as in Go.)
            codec.walk(&packet[range], &mut |m| {
                if let Ok(m) = m {
                    check_message(&m);
                }
            });
        }
    });
});
