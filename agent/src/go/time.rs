//! Go `time.Duration`: `ParseDuration` (with Go's error texts) and
//! `String()`. Durations are signed nanoseconds, as in Go.

/// Go's `time.ParseDuration`: `[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+` with units
/// `ns`, `us`, `µs`, `μs`, `ms`, `s`, `m`, `h`; `"0"` alone needs no unit.
/// Errors read `time: invalid duration "x"`, `time: missing unit in
/// duration "1"`, `time: unknown unit "x" in duration "1x"`.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    let orig = s;
    let invalid = || format!("time: invalid duration {}", quote(orig));
    let mut rest = s.as_bytes();
    let mut neg = false;
    if let Some(&c) = rest.first() {
        if c == b'-' || c == b'+' {
            neg = c == b'-';
            rest = &rest[1..];
        }
    }
    if rest == b"0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: u64 = 0;
    while !rest.is_empty() {
        // The next character must be [0-9.].
        if !(rest[0] == b'.' || rest[0].is_ascii_digit()) {
            return Err(invalid());
        }
        // Integer part.
        let n_int = rest.iter().take_while(|c| c.is_ascii_digit()).count();
        let mut v: u64 = 0;
        for &c in &rest[..n_int] {
            v = v
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(c - b'0')))
                .filter(|&v| v <= 1 << 63)
                .ok_or_else(invalid)?;
        }
        rest = &rest[n_int..];
        let pre = n_int > 0;
        // Fraction.
        let mut frac: u64 = 0;
        let mut scale: f64 = 1.0;
        let mut post = false;
        if rest.first() == Some(&b'.') {
            rest = &rest[1..];
            let n_frac = rest.iter().take_while(|c| c.is_ascii_digit()).count();
            let mut overflow = false;
            for &c in &rest[..n_frac] {
                if overflow {
                    continue;
                }
                if frac > (i64::MAX as u64 - 9) / 10 {
                    overflow = true;
                    continue;
                }
                frac = frac * 10 + u64::from(c - b'0');
                scale *= 10.0;
            }
            post = n_frac > 0;
            rest = &rest[n_frac..];
        }
        if !pre && !post {
            return Err(invalid());
        }
        // Unit.
        let n_unit = rest.iter().take_while(|&&c| c != b'.' && !c.is_ascii_digit()).count();
        if n_unit == 0 {
            return Err(format!("time: missing unit in duration {}", quote(orig)));
        }
        let unit_bytes = &rest[..n_unit];
        rest = &rest[n_unit..];
        let unit: u64 = match unit_bytes {
            b"ns" => 1,
            b"us" | [0xc2, 0xb5, b's'] | [0xce, 0xbc, b's'] => 1_000,
            b"ms" => 1_000_000,
            b"s" => 1_000_000_000,
            b"m" => 60_000_000_000,
            b"h" => 3_600_000_000_000,
            _ => {
                let u = String::from_utf8_lossy(unit_bytes);
                return Err(format!(
                    "time: unknown unit {} in duration {}",
                    quote(&u),
                    quote(orig)
                ));
            }
        };
        if v > (1u64 << 63) / unit {
            return Err(invalid());
        }
        v *= unit;
        if frac > 0 {
            v += (frac as f64 * (unit as f64 / scale)) as u64;
            if v > 1 << 63 {
                return Err(invalid());
            }
        }
        total = total.checked_add(v).filter(|&t| t <= 1 << 63).ok_or_else(invalid)?;
    }
    if neg {
        return Ok((total as i128).wrapping_neg() as i64);
    }
    if total > i64::MAX as u64 {
        return Err(invalid());
    }
    Ok(total as i64)
}

/// Go's `time` package quoting in error messages: `"` + s + `"`, with
/// non-printable and non-ASCII bytes escaped (it is close to `strconv.Quote`).
fn quote(s: &str) -> String {
    super::fmt::quote_str(s)
}

/// Go's `Duration.String()`: `0s`, `1.5µs`, `100ms`, `1m30s`, `24h0m0s`.
pub fn format_duration(d: i64) -> String {
    let neg = d < 0;
    let u = d.unsigned_abs();
    let mut out = String::new();
    if u < 1_000_000_000 {
        if u == 0 {
            return "0s".to_string();
        }
        let (div, unit) = if u < 1_000 {
            (1, "ns")
        } else if u < 1_000_000 {
            (1_000, "µs")
        } else {
            (1_000_000, "ms")
        };
        out.push_str(&frac_str(u, div));
        out.push_str(unit);
    } else {
        let secs = u / 1_000_000_000;
        let sub = u % 1_000_000_000;
        let mut s = (secs % 60).to_string();
        if sub > 0 {
            let f = format!("{sub:09}");
            s.push('.');
            s.push_str(f.trim_end_matches('0'));
        }
        let mins = secs / 60;
        if mins > 0 {
            let hours = mins / 60;
            if hours > 0 {
                out.push_str(&format!("{hours}h"));
            }
            out.push_str(&format!("{}m", mins % 60));
        }
        out.push_str(&s);
        out.push('s');
    }
    if neg {
        out.insert(0, '-');
    }
    out
}

/// `u / div` with the remainder as trimmed decimals.
fn frac_str(u: u64, div: u64) -> String {
    let whole = u / div;
    let rem = u % div;
    if rem == 0 {
        return whole.to_string();
    }
    let width = div.to_string().len() - 1;
    let f = format!("{rem:0width$}");
    format!("{whole}.{}", f.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_go() {
        let s = 1_000_000_000;
        assert_eq!(parse_duration("30s"), Ok(30 * s));
        assert_eq!(parse_duration("1m30s"), Ok(90 * s));
        assert_eq!(parse_duration("500ms"), Ok(s / 2));
        assert_eq!(parse_duration("24h"), Ok(24 * 3600 * s));
        assert_eq!(parse_duration("1.5h"), Ok(5400 * s));
        assert_eq!(parse_duration(".5s"), Ok(s / 2));
        assert_eq!(parse_duration("1µs"), Ok(1000));
        assert_eq!(parse_duration("-2s"), Ok(-2 * s));
        assert_eq!(parse_duration("0"), Ok(0));
        assert_eq!(parse_duration("+0"), Ok(0));
        assert_eq!(parse_duration("1h2m3s4ms5us6ns"), Ok(3_723_004_005_006));
        assert_eq!(parse_duration("bogus"), Err("time: invalid duration \"bogus\"".into()));
        assert_eq!(parse_duration(""), Err("time: invalid duration \"\"".into()));
        assert_eq!(parse_duration("1"), Err("time: missing unit in duration \"1\"".into()));
        assert_eq!(parse_duration("1x"), Err("time: unknown unit \"x\" in duration \"1x\"".into()));
        assert_eq!(parse_duration("."), Err("time: invalid duration \".\"".into()));
        assert_eq!(
            parse_duration("9999999999999h"),
            Err("time: invalid duration \"9999999999999h\"".into())
        );
    }

    #[test]
    fn formats_like_go() {
        let s = 1_000_000_000;
        assert_eq!(format_duration(0), "0s");
        assert_eq!(format_duration(s), "1s");
        assert_eq!(format_duration(90 * s), "1m30s");
        assert_eq!(format_duration(24 * 3600 * s), "24h0m0s");
        assert_eq!(format_duration(s / 2), "500ms");
        assert_eq!(format_duration(1500), "1.5µs");
        assert_eq!(format_duration(7), "7ns");
        assert_eq!(format_duration(1_500_000_000), "1.5s");
        assert_eq!(format_duration(-s), "-1s");
    }
}
