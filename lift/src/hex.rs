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
