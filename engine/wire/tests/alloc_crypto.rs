//! Zero allocation: `Keyring::seal_in_place` and `Keyring::open_in_place`,
//! including opens that try a wrong key first and opens that fail.

use wire::crypto::{Keyring, ENCRYPT_OVERHEAD, HEADER_LEN};
use wire::Error;

use alloc::thread_allocs as allocs;
use testkit as alloc;

#[test]
fn seal_and_open_do_not_allocate() {
    let (k1, k2, k3) = ([1u8; 32], [2u8; 16], [3u8; 24]);
    // The receiver holds the sender's key last: every open tries two wrong
    // keys first.
    let sender = Keyring::new(&k1).unwrap();
    let receiver = Keyring::from_keys(&[&k2, &k3, &k1]).unwrap();
    let outsider = Keyring::new(&k2).unwrap();
    let mut buf = vec![0u8; 1400 + ENCRYPT_OVERHEAD];
    let aad = [0x0a, 0, 0, 5, 0x95];

    let mut run = |rounds: u32| {
        let mut opened = 0usize;
        for round in 0..rounds {
            let len = (round as usize * 37) % 1400;
            let nonce = [round as u8; 12];
            let aad: &[u8] = if round % 2 == 0 { &[] } else { &aad };
            buf[HEADER_LEN..HEADER_LEN + len].fill(round as u8);
            let n = sender.seal_in_place(&mut buf, len, nonce, aad).unwrap();
            assert_eq!(outsider.open_in_place(&mut buf[..n], aad), Err(Error::Decrypt));
            let range = receiver.open_in_place(&mut buf[..n], aad).unwrap();
            assert_eq!(range.len(), len);
            opened += range.len();
        }
        opened
    };
    run(10);
    let before = allocs();
    let opened = run(5000);
    let after = allocs();
    assert!(opened > 0);
    assert_eq!(after - before, 0, "allocations during 5000 seal+open rounds");
}
