//! Zero allocation: `LzwEncoder::compress` and `LzwDecoder::decompress` after
//! construction, on captured Go buffers and on inputs long enough to reset the
//! dictionary several times.

use wire::lzw::{max_compressed_len, LzwDecoder, LzwEncoder};

use alloc::thread_allocs as allocs;
use testkit as alloc;

mod common;
use common::{unhex, DIR};

#[test]
fn compress_and_decompress_do_not_allocate() {
    let text = std::fs::read_to_string(format!("{DIR}/lzw.tsv")).unwrap();
    let mut inputs: Vec<Vec<u8>> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| unhex(l.split_once('\t').unwrap().1))
        .collect();
    // Several dictionary resets, plus the empty and one-byte inputs.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    inputs.push(
        (0..150_000)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed >> 60) as u8
            })
            .collect(),
    );
    inputs.push(Vec::new());
    inputs.push(vec![0x42]);
    let longest = inputs.iter().map(Vec::len).max().unwrap();
    let mut packed = vec![0u8; max_compressed_len(longest)];
    let mut plain = vec![0u8; longest];
    let (mut enc, mut dec) = (LzwEncoder::new(), LzwDecoder::new());

    let mut run = |rounds: usize| {
        let mut bytes = 0usize;
        for round in 0..rounds {
            let input = &inputs[round % inputs.len()];
            let n = enc.compress(input, &mut packed).unwrap();
            let m = dec.decompress(&packed[..n], &mut plain).unwrap();
            assert_eq!(m, input.len());
            bytes += n;
        }
        bytes
    };
    run(inputs.len());
    let before = allocs();
    let bytes = run(3000);
    let after = allocs();
    assert!(bytes > 0);
    assert_eq!(after - before, 0, "allocations during 3000 compress+decompress rounds");
}
