//! JSON string escaping and RFC 3339 timestamps, written by hand for the hot path.

use std::time::{SystemTime, UNIX_EPOCH};

/// Appends `s` as a quoted JSON string.
pub(crate) fn push_json_str(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    push_json_chars(out, s);
    out.push('"');
}

/// Appends `s` escaped for a JSON string, without the quotes.
pub(crate) fn push_json_chars(out: &mut String, s: &str) {
    let bytes = s.as_bytes();
    let mut last = 0;
    for (i, &c) in bytes.iter().enumerate() {
        if !NEEDS_ESCAPE[usize::from(c)] {
            continue;
        }
        out.push_str(&s[last..i]);
        match c {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.push_str("\\u00");
                out.push(HEX[usize::from(c >> 4)] as char);
                out.push(HEX[usize::from(c & 0xf)] as char);
            }
        }
        last = i + 1;
    }
    out.push_str(&s[last..]);
}

/// Bytes a JSON string cannot hold as they are: quote, backslash, control characters
/// (and DEL, escaped too so log viewers show it).
static NEEDS_ESCAPE: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t[0x7f] = true;
    t
};

/// Appends `t` as RFC 3339 UTC with milliseconds: `2024-05-01T12:00:00.123Z`.
pub(crate) fn push_rfc3339(out: &mut String, t: SystemTime) {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let millis = since.subsec_millis();
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let sod = secs % 86_400;
    let mut buf = *b"0000-00-00T00:00:00.000Z";
    let mut put = |at: usize, width: usize, mut v: u64| {
        for k in (0..width).rev() {
            buf[at + k] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, y.clamp(0, 9999) as u64);
    put(5, 2, u64::from(m));
    put(8, 2, u64::from(d));
    put(11, 2, sod / 3600);
    put(14, 2, sod % 3600 / 60);
    put(17, 2, sod % 60);
    put(20, 3, u64::from(millis));
    out.push_str(std::str::from_utf8(&buf).unwrap_or("1970-01-01T00:00:00.000Z"));
}

/// Days since 1970-01-01 to (year, month, day), after Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn escapes_like_serde_json() {
        for s in ["plain", "q\"uote\\", "line\nbreak\ttab\r", "\u{1}\u{1f}ctl", "üñí €"] {
            let mut out = String::new();
            push_json_str(&mut out, s);
            assert_eq!(serde_json::from_str::<String>(&out).unwrap(), s);
        }
    }

    #[test]
    fn formats_rfc3339() {
        let mut out = String::new();
        push_rfc3339(&mut out, UNIX_EPOCH + Duration::from_millis(1_709_251_199_007));
        assert_eq!(out, "2024-02-29T23:59:59.007Z");
        out.clear();
        push_rfc3339(&mut out, UNIX_EPOCH);
        assert_eq!(out, "1970-01-01T00:00:00.000Z");
    }
}
