//! Go `fmt`/`strconv` renderings: `strconv.Quote` (`%q`), `%v` of a
//! float64, and `%#v` of the values Go's msgpack decoder produces (what
//! `serf monitor` prints after `Event Info:`).

use crate::rpc::codec::Value;

/// Whether Go's `strconv.IsPrint` holds for `c`: letters, marks, numbers,
/// punctuation, symbols and the ASCII space. Rust has no category table, so
/// this treats every non-control character as printable except the space,
/// format and private-use ranges Go rejects.
pub fn is_print(c: char) -> bool {
    let u = c as u32;
    if u < 0x20 || (0x7f..0xa0).contains(&u) {
        return false;
    }
    if u < 0x7f {
        return true;
    }
    !matches!(
        u,
        0xa0 | 0xad
            | 0x600..=0x605
            | 0x61c
            | 0x6dd
            | 0x70f
            | 0x1680
            | 0x180e
            | 0x2000..=0x200f
            | 0x2028..=0x202f
            | 0x205f..=0x2064
            | 0x2066..=0x206f
            | 0x3000
            | 0xe000..=0xf8ff
            | 0xfeff
            | 0xfff9..=0xfffb
            | 0xfffe
            | 0xffff
            | 0xe0001
            | 0xe0020..=0xe007f
            | 0xf0000..=0x10ffff
    )
}

/// Go's `strconv.Quote` of a byte string (which need not be UTF-8): invalid
/// bytes become `\xNN`, non-printable runes `\a`…`\v`, `\xNN`, `\uNNNN` or
/// `\UNNNNNNNN`.
pub fn quote(s: &[u8]) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    let mut rest = s;
    while !rest.is_empty() {
        let (c, width) = decode_rune(rest);
        match c {
            None => {
                out.push_str(&format!("\\x{:02x}", rest[0]));
            }
            Some(c) => push_escaped(&mut out, c),
        }
        rest = &rest[width..];
    }
    out.push('"');
    out
}

/// `strconv.Quote` of a Rust string.
pub fn quote_str(s: &str) -> String {
    quote(s.as_bytes())
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '"' | '\\' => {
            out.push('\\');
            out.push(c);
        }
        c if is_print(c) => out.push(c),
        '\u{7}' => out.push_str("\\a"),
        '\u{8}' => out.push_str("\\b"),
        '\u{c}' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\u{b}' => out.push_str("\\v"),
        c if (c as u32) < 0x20 || c as u32 == 0x7f => {
            out.push_str(&format!("\\x{:02x}", c as u32));
        }
        c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
        c => out.push_str(&format!("\\U{:08x}", c as u32)),
    }
}

/// Decodes one UTF-8 rune from the front of `b` the way Go does: `None`
/// with width 1 for an invalid or truncated sequence.
pub fn decode_rune(b: &[u8]) -> (Option<char>, usize) {
    let n = match b.first() {
        None => return (None, 0),
        Some(&x) if x < 0x80 => return (Some(x as char), 1),
        Some(&x) if (0xc2..0xe0).contains(&x) => 2,
        Some(&x) if (0xe0..0xf0).contains(&x) => 3,
        Some(&x) if (0xf0..0xf5).contains(&x) => 4,
        Some(_) => return (None, 1),
    };
    match b.get(..n).and_then(|s| core::str::from_utf8(s).ok()) {
        Some(s) => (s.chars().next(), n),
        None => (None, 1),
    }
}

/// Go's `%v` of a float64 (`strconv.FormatFloat(v, 'g', -1, 64)`): the
/// shortest round-trip digits, in exponent form when the decimal exponent is
/// below -4 or at least 6, e.g. `5`, `1.5`, `100000`, `1e+06`, `1e-07`, `-0`,
/// `+Inf`.
pub fn format_float(v: f64) -> String {
    if v.is_nan() {
        return "NaN".to_string();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    // Rust's `{:e}` gives the shortest round-trip digits: "-1.2345e-7".
    let sci = format!("{:e}", v);
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let neg = mant.starts_with('-');
    let digits: String = mant.chars().filter(char::is_ascii_digit).collect();
    let sign = if neg { "-" } else { "" };
    if v == 0.0 {
        return format!("{sign}0");
    }
    if !(-4..6).contains(&exp) {
        let (first, rest) = digits.split_at(1);
        let frac = if rest.is_empty() { String::new() } else { format!(".{rest}") };
        let esign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{first}{frac}e{esign}{:02}", exp.unsigned_abs());
    }
    // Fixed notation: the decimal point sits after exp+1 digits.
    let point = exp + 1;
    if point <= 0 {
        let zeros = "0".repeat(point.unsigned_abs() as usize);
        format!("{sign}0.{zeros}{digits}")
    } else {
        let point = point as usize;
        if digits.len() <= point {
            format!("{sign}{digits}{}", "0".repeat(point - digits.len()))
        } else {
            format!("{sign}{}.{}", &digits[..point], &digits[point..])
        }
    }
}

/// Go's `%#v` of a value decoded into an `interface{}`, as printed for a
/// top-level entry of a stream record (`fmt.Sprintf("%#v", val)`).
pub fn sharp_v(v: &Value) -> String {
    let mut out = String::new();
    write_sharp_v(&mut out, v, true);
    out
}

fn write_sharp_v(out: &mut String, v: &Value, top: bool) {
    match v {
        // A nil interface prints `<nil>` as an argument, and with its type
        // when reached through a container.
        Value::Nil => out.push_str(if top { "<nil>" } else { "interface {}(nil)" }),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => out.push_str(&i.to_string()),
        Value::Uint(u) => out.push_str(&format!("0x{u:x}")),
        Value::F32(f) => out.push_str(&format_float(f64::from(*f))),
        Value::F64(f) => out.push_str(&format_float(*f)),
        Value::Str(s) => out.push_str(&quote(s)),
        Value::Bin(b) => {
            out.push_str(if top { "[]byte{" } else { "[]uint8{" });
            for (i, x) in b.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&format!("0x{x:x}"));
            }
            out.push('}');
        }
        Value::Ext(_, data) => {
            out.push_str("[]uint8{");
            for (i, x) in data.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&format!("0x{x:x}"));
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push_str("[]interface {}{");
            for (i, x) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_sharp_v(out, x, false);
            }
            out.push('}');
        }
        Value::Map(entries) => {
            out.push_str("map[interface {}]interface {}{");
            let mut sorted: Vec<&(Value, Value)> = entries.iter().collect();
            sorted.sort_by(|a, b| key_order(&a.0, &b.0));
            for (i, (k, x)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_sharp_v(out, k, false);
                out.push(':');
                write_sharp_v(out, x, false);
            }
            out.push('}');
        }
    }
}

/// Go's `fmt` sorts map keys; string keys sort bytewise. Keys of other types
/// (never seen in Serf records) sort after strings by their rendering.
fn key_order(a: &Value, b: &Value) -> core::cmp::Ordering {
    match (a, b) {
        (Value::Str(x), Value::Str(y)) => x.cmp(y),
        (Value::Str(_), _) => core::cmp::Ordering::Less,
        (_, Value::Str(_)) => core::cmp::Ordering::Greater,
        _ => sharp_v(a).cmp(&sharp_v(b)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_like_strconv() {
        assert_eq!(quote_str("mon-evt"), "\"mon-evt\"");
        assert_eq!(quote_str("a\"b\\c\n\t\u{1}\u{7f}"), "\"a\\\"b\\\\c\\n\\t\\x01\\x7f\"");
        assert_eq!(quote_str("héllo ☃"), "\"héllo ☃\"");
        assert_eq!(quote_str("\u{ad}\u{feff}"), "\"\\u00ad\\ufeff\"");
        assert_eq!(quote(&[0x61, 0xff, 0x62]), "\"a\\xffb\"");
        assert_eq!(quote_str("\u{f0000}"), "\"\\U000f0000\"");
    }

    #[test]
    fn floats_like_go_v() {
        for (v, s) in [
            (5.0, "5"),
            (1.5, "1.5"),
            (1e23, "1e+23"),
            (0.000001, "1e-06"),
            (1e-7, "1e-07"),
            (-0.0, "-0"),
            (100000.0, "100000"),
            (1000000.0, "1e+06"),
            (123456789.0, "1.23456789e+08"),
            (0.0001, "0.0001"),
            (0.00012, "0.00012"),
            (2.7, "2.7"),
            (-12.5, "-12.5"),
            (f64::INFINITY, "+Inf"),
        ] {
            assert_eq!(format_float(v), s, "{v}");
        }
    }

    #[test]
    fn sharp_v_like_go() {
        // Observed from `serf monitor` against the Go agent.
        assert_eq!(sharp_v(&Value::Bin(b"hi".to_vec())), "[]byte{0x68, 0x69}");
        assert_eq!(sharp_v(&Value::Nil), "<nil>");
        assert_eq!(sharp_v(&Value::Int(1)), "1");
        assert_eq!(sharp_v(&Value::Bool(false)), "false");
        let member = Value::Map(vec![
            (Value::Str(b"Name".to_vec()), Value::Str(b"eb".to_vec())),
            (Value::Str(b"Addr".to_vec()), Value::Bin(vec![0x7f, 0, 7, 2])),
            (Value::Str(b"Port".to_vec()), Value::Uint(0x1f0a)),
            (Value::Str(b"X".to_vec()), Value::Nil),
        ]);
        assert_eq!(
            sharp_v(&Value::Array(vec![member])),
            "[]interface {}{map[interface {}]interface {}{\"Addr\":[]uint8{0x7f, 0x0, 0x7, 0x2}, \
             \"Name\":\"eb\", \"Port\":0x1f0a, \"X\":interface {}(nil)}}"
        );
        assert_eq!(sharp_v(&Value::Bin(vec![])), "[]byte{}");
    }
}
