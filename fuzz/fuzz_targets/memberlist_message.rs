//! One memberlist message (type byte + body), as a packet leaf, as a stream
//! message and as a compress wrapper: whatever decodes re-encodes to bytes
//! that decode to the same value, and encoding is then a fixed point.
#![no_main]

use engine::wire::memberlist::{Body, Compress, Message, MessageType};
use engine::wire::stream::StreamMessage;
use engine_fuzz::{check_message, check_stream, encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Message::decode(data) {
        check_message(&m);
    }
    if let Ok(m) = StreamMessage::decode(data) {
        check_stream(&m);
    }
    if let Some((&t, body)) = data.split_first() {
        if t == MessageType::Compress as u8 {
            if let Ok(c) = Compress::decode(body) {
                let once = encode(|w| c.encode(w));
                let again = Compress::decode(&once[1..]).expect("re-encoded compress");
                assert_eq!(again, c);
            }
        }
    }
});
