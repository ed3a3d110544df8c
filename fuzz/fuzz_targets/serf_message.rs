//! One Serf message, and the Serf values that travel inside others (tags
//! in node meta, query filters, the coordinate in an ack): whatever decodes
//! iterates fully and re-encodes to a fixed point.
#![no_main]

use engine::wire::serf::{Filter, SerfMessage};
use engine_fuzz::{check_coordinate, check_serf, check_tags};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = SerfMessage::decode(data) {
        check_serf(&m);
    }
    check_tags(data);
    if let Ok(Filter::Node(names)) = Filter::decode(data) {
        assert_eq!(names.iter().count(), names.len());
    }
    check_coordinate(data);
});
