//! Whether a URL's host is an address a server must not be made to call: loopback,
//! private, link-local, unique-local, cloud metadata, including integer, hex and octal
//! spellings of IPv4 addresses (`2130706433`, `0x7f000001`, `0177.0.0.1`).

use std::net::Ipv6Addr;

use super::finding::Severity;

/// Classifies the authority that starts at `rest` (just after `://`, lowercase).
pub(crate) fn classify_authority(rest: &[u8]) -> Option<(Severity, &'static str)> {
    let end = rest
        .iter()
        .position(|&c| {
            matches!(c, b'/' | b'?' | b'#' | b'\\' | b'"' | b'\'' | b'<' | b'>' | b'`' | b' ' | b'\t' | b'\n')
        })
        .unwrap_or(rest.len());
    let authority = &rest[..end];
    let host = &authority[authority.iter().rposition(|&c| c == b'@').map_or(0, |p| p + 1)..];
    if let Some(v6) = host.strip_prefix(b"[") {
        let close = v6.iter().position(|&c| c == b']')?;
        return classify_v6(&v6[..close]);
    }
    let host = &host[..host.iter().position(|&c| c == b':').unwrap_or(host.len())];
    classify_host(host.strip_suffix(b".").unwrap_or(host))
}

/// Classifies a host name or IPv4 address (lowercase).
pub(crate) fn classify_host(host: &[u8]) -> Option<(Severity, &'static str)> {
    if host == b"localhost" || host.ends_with(b".localhost") {
        return Some((Severity::High, "loopback host"));
    }
    if matches!(
        host,
        b"metadata.google.internal" | b"metadata" | b"instance-data" | b"instance-data.ec2.internal"
    ) {
        return Some((Severity::Critical, "metadata host"));
    }
    let (ip, canonical) = parse_v4(host)?;
    classify_v4(ip, canonical)
}

/// Parses IPv4 the way `inet_aton` does: one to four parts, each decimal, `0x` hex or
/// `0`-prefixed octal, the last part filling the remaining bytes. Returns the address and
/// whether it was written as four plain decimal parts.
fn parse_v4(host: &[u8]) -> Option<(u32, bool)> {
    if !host.first()?.is_ascii_digit() {
        return None;
    }
    let mut parts = [0u64; 4];
    let mut count = 0;
    let mut canonical = true;
    for part in host.split(|&c| c == b'.') {
        if count == 4 || part.is_empty() {
            return None;
        }
        let (digits, radix) = if let Some(h) = part.strip_prefix(b"0x") {
            (h, 16)
        } else if part.len() > 1 && part[0] == b'0' {
            (&part[1..], 8)
        } else {
            (part, 10)
        };
        canonical &= radix == 10;
        let text = std::str::from_utf8(digits).ok()?;
        parts[count] = if text.is_empty() { 0 } else { u64::from_str_radix(text, radix).ok()? };
        count += 1;
    }
    canonical &= count == 4;
    let value = match count {
        1 => parts[0],
        2 if parts[0] < 256 => (parts[0] << 24) | parts[1].min(1 << 24),
        3 if parts[0] < 256 && parts[1] < 256 => (parts[0] << 24) | (parts[1] << 16) | parts[2].min(1 << 16),
        4 if parts.iter().all(|&p| p < 256) => {
            (parts[0] << 24) | (parts[1] << 16) | (parts[2] << 8) | parts[3]
        }
        _ => return None,
    };
    u32::try_from(value).ok().map(|v| (v, canonical))
}

fn classify_v4(ip: u32, canonical: bool) -> Option<(Severity, &'static str)> {
    let [a, b, c, d] = ip.to_be_bytes();
    let (severity, rule) = match (a, b, c, d) {
        (169, 254, 169, 254) | (100, 100, 100, 200) | (192, 0, 0, 192) => {
            (Severity::Critical, "metadata address")
        }
        (127, ..) => (Severity::High, "loopback address"),
        (10, ..) | (192, 168, ..) => (Severity::High, "private address"),
        (172, b, ..) if b & 0xf0 == 16 => (Severity::High, "private address"),
        (169, 254, ..) => (Severity::High, "link-local address"),
        (0, ..) => (Severity::High, "unspecified address"),
        (100, b, ..) if b & 0xc0 == 64 => (Severity::Medium, "shared address space"),
        _ => return None,
    };
    // An internal address spelled as an integer or in hex is an attempt to slip past filters.
    if !canonical && severity < Severity::Critical {
        return Some((Severity::High, "encoded internal address"));
    }
    Some((severity, rule))
}

fn classify_v6(text: &[u8]) -> Option<(Severity, &'static str)> {
    // Drop a zone id (`fe80::1%25eth0`, decoded to `%eth0`).
    let text = &text[..text.iter().position(|&c| c == b'%').unwrap_or(text.len())];
    let ip: Ipv6Addr = std::str::from_utf8(text).ok()?.parse().ok()?;
    if let Some(v4) = ip.to_ipv4_mapped() {
        return classify_v4(u32::from(v4), true);
    }
    let first = ip.segments()[0];
    if ip == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) {
        Some((Severity::Critical, "metadata address"))
    } else if ip.is_loopback() {
        Some((Severity::High, "loopback address"))
    } else if ip.is_unspecified() {
        Some((Severity::High, "unspecified address"))
    } else if first & 0xfe00 == 0xfc00 {
        Some((Severity::High, "unique local address"))
    } else if first & 0xffc0 == 0xfe80 {
        Some((Severity::High, "link-local address"))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(url_rest: &str) -> Option<&'static str> {
        classify_authority(url_rest.as_bytes()).map(|c| c.1)
    }

    #[test]
    fn internal_targets_are_named() {
        assert_eq!(class("169.254.169.254/latest/meta-data/"), Some("metadata address"));
        assert_eq!(class("metadata.google.internal/computeMetadata/v1/"), Some("metadata host"));
        assert_eq!(class("localhost:8080/admin"), Some("loopback host"));
        assert_eq!(class("user:pw@127.0.0.1/"), Some("loopback address"));
        assert_eq!(class("10.1.2.3"), Some("private address"));
        assert_eq!(class("172.20.0.1"), Some("private address"));
        assert_eq!(class("192.168.1.1:443"), Some("private address"));
        assert_eq!(class("[::1]:80/"), Some("loopback address"));
        assert_eq!(class("[fd00::1]/"), Some("unique local address"));
        assert_eq!(class("[fd00:ec2::254]/"), Some("metadata address"));
        assert_eq!(class("[::ffff:10.0.0.1]/"), Some("private address"));
        assert_eq!(class("2130706433/"), Some("encoded internal address"));
        assert_eq!(class("0x7f000001/"), Some("encoded internal address"));
        assert_eq!(class("0177.0.0.1/"), Some("encoded internal address"));
        assert_eq!(class("2852039166/"), Some("metadata address"));
    }

    #[test]
    fn public_targets_pass() {
        for rest in
            ["example.com/x", "203.0.113.7/", "172.32.0.1", "1password.com", "[2001:db8::1]/", "8.8.8.8"]
        {
            assert_eq!(class(rest), None, "{rest}");
        }
    }
}
