//! Go's `base64.StdEncoding` decoding, whose error names the offending
//! offset (`illegal base64 data at input byte 8`), a text the agent and the
//! CLI print as is. Encoding uses the `base64` crate.

use base64::Engine;

const INVALID: u8 = 0xff;

fn decode_char(c: u8) -> u8 {
    match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => INVALID,
    }
}

/// The error Go reports for corrupt input at byte offset `at`.
fn corrupt(at: usize) -> String {
    format!("illegal base64 data at input byte {at}")
}

/// Decodes standard, padded base64 as Go's `StdEncoding.DecodeString`:
/// `\r` and `\n` are ignored anywhere; padding must be complete; anything
/// after the padding is an error at its offset.
pub fn decode_std(src: &str) -> Result<Vec<u8>, String> {
    let src = src.as_bytes();
    let mut out = Vec::with_capacity(src.len() / 4 * 3);
    let mut si = 0usize;
    loop {
        let mut quantum = [0u8; 4];
        let mut j = 0usize;
        let mut end = false;
        while j < 4 {
            if si == src.len() {
                if j == 0 {
                    return Ok(out);
                }
                // A partial quantum without padding.
                return Err(corrupt(si - j));
            }
            let c = src[si];
            si += 1;
            let v = decode_char(c);
            if v != INVALID {
                quantum[j] = v;
                j += 1;
                continue;
            }
            if c == b'\n' || c == b'\r' {
                continue;
            }
            if c != b'=' {
                return Err(corrupt(si - 1));
            }
            // Padding: valid only in the last two positions.
            match j {
                0 | 1 => return Err(corrupt(si - 1)),
                2 => {
                    while si < src.len() && (src[si] == b'\n' || src[si] == b'\r') {
                        si += 1;
                    }
                    if si == src.len() {
                        return Err(corrupt(src.len()));
                    }
                    if src[si] != b'=' {
                        return Err(corrupt(si - 1));
                    }
                    si += 1;
                }
                _ => {}
            }
            while si < src.len() && (src[si] == b'\n' || src[si] == b'\r') {
                si += 1;
            }
            if si < src.len() {
                return Err(corrupt(si));
            }
            end = true;
            break;
        }
        let val = (u32::from(quantum[0]) << 18)
            | (u32::from(quantum[1]) << 12)
            | (u32::from(quantum[2]) << 6)
            | u32::from(quantum[3]);
        let bytes = [(val >> 16) as u8, (val >> 8) as u8, val as u8];
        let n = if end { j - 1 } else { 3 };
        out.extend_from_slice(&bytes[..n]);
        if end {
            return Ok(out);
        }
    }
}

/// Standard, padded base64 (Go's `StdEncoding.EncodeToString`).
pub fn encode_std(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_like_go() {
        assert_eq!(decode_std("YWJj").unwrap(), b"abc");
        assert_eq!(decode_std("YWI=").unwrap(), b"ab");
        assert_eq!(decode_std("YQ==").unwrap(), b"a");
        assert_eq!(decode_std("").unwrap(), b"");
        assert_eq!(decode_std("YW\nJj").unwrap(), b"abc");
        let k = decode_std("/2aLpXdzftBnAq1YcPOEDpnfROAsStWdMKSuHkIiedI=").unwrap();
        assert_eq!(k.len(), 32);
        assert_eq!(encode_std(&k), "/2aLpXdzftBnAq1YcPOEDpnfROAsStWdMKSuHkIiedI=");
    }

    #[test]
    fn errors_like_go() {
        // Observed: `serf agent -encrypt=zzz` → byte 0 ("zzz" is 3 chars: the
        // quantum is cut at the end), `serf keys -install=abc` → byte 0.
        assert_eq!(decode_std("zzz").unwrap_err(), "illegal base64 data at input byte 0");
        assert_eq!(decode_std("abc").unwrap_err(), "illegal base64 data at input byte 0");
        assert_eq!(decode_std("!!").unwrap_err(), "illegal base64 data at input byte 0");
        assert_eq!(decode_std("YWJjZGVm!").unwrap_err(), "illegal base64 data at input byte 8");
        assert_eq!(decode_std("YWJjZA").unwrap_err(), "illegal base64 data at input byte 4");
        assert_eq!(decode_std("YW=j").unwrap_err(), "illegal base64 data at input byte 2");
        assert_eq!(decode_std("YQ=").unwrap_err(), "illegal base64 data at input byte 3");
        assert_eq!(decode_std("YQ==YQ==").unwrap_err(), "illegal base64 data at input byte 4");
        assert_eq!(decode_std("=").unwrap_err(), "illegal base64 data at input byte 0");
    }
}
