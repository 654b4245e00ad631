//! Hex digits, shared by the parsers that read them (trace headers, percent escapes).

/// A hex digit's value, either case; none for any other byte.
pub(crate) fn digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// `raw` with its `%XX` escapes decoded to bytes; a `%` not followed by two hex digits
/// stays as it is. What the bytes mean (UTF-8, or not) is the caller's to decide.
pub(crate) fn percent_decode_bytes(raw: &str) -> Vec<u8> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if let (b'%', Some(&high), Some(&low)) = (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            if let (Some(high), Some(low)) = (digit(high), digit(low)) {
                out.push(high << 4 | low);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn digits_of_either_case() {
        for (c, v) in [(b'0', 0), (b'9', 9), (b'a', 10), (b'F', 15)] {
            assert_eq!(super::digit(c), Some(v));
        }
        for c in [b'g', b'G', b'-', b' ', 0xff] {
            assert_eq!(super::digit(c), None);
        }
    }
}
