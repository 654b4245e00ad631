//! Hand-written value detectors: card numbers, SSNs, IBANs, emails, phones, dates of
//! birth and secrets. No regex engine: each detector is a small scanner.

use super::classify::DataClass;

/// A detected sensitive span inside a string (byte offsets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Match {
    /// What was found.
    pub class: DataClass,
    /// Byte offset of the first byte.
    pub start: usize,
    /// Byte offset one past the last byte.
    pub end: usize,
}

/// A card network, recognised by issuer prefix and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CardBrand {
    /// Visa: 4, lengths 13, 16, 19.
    Visa,
    /// Mastercard: 51–55 and 2221–2720, length 16.
    Mastercard,
    /// American Express: 34, 37, length 15.
    Amex,
    /// Discover: 6011, 644–649, 65, lengths 16–19.
    Discover,
    /// JCB: 3528–3589, lengths 16–19.
    Jcb,
    /// Diners Club: 300–305, 36, 38–39, lengths 14–19.
    Diners,
    /// UnionPay: 62, lengths 16–19.
    UnionPay,
}

/// Whether the digits pass the Luhn check.
///
/// # Examples
///
/// ```
/// use lift::security::protection::detect::luhn_valid;
/// assert!(luhn_valid(b"4111111111111111"));
/// assert!(!luhn_valid(b"4111111111111112"));
/// ```
pub fn luhn_valid(digits: &[u8]) -> bool {
    !digits.is_empty() && digits.iter().all(u8::is_ascii_digit) && luhn_sum(digits) % 10 == 0
}

/// The Luhn sum of ASCII digits (rightmost digit undoubled).
pub(crate) fn luhn_sum(digits: &[u8]) -> u32 {
    digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            let d = u32::from(d - b'0');
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            }
        })
        .sum()
}

fn prefix(digits: &[u8], n: usize) -> u32 {
    digits.iter().take(n).fold(0, |acc, d| acc * 10 + u32::from(d - b'0'))
}

/// The brand of a card number given as bare ASCII digits, if its issuer prefix and
/// length belong to a real network (the Luhn check is separate).
pub fn card_brand(digits: &[u8]) -> Option<CardBrand> {
    let len = digits.len();
    if !(13..=19).contains(&len) || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let (p1, p2, p3, p4) = (prefix(digits, 1), prefix(digits, 2), prefix(digits, 3), prefix(digits, 4));
    let brand = if p1 == 4 && matches!(len, 13 | 16 | 19) {
        CardBrand::Visa
    } else if ((51..=55).contains(&p2) || (2221..=2720).contains(&p4)) && len == 16 {
        CardBrand::Mastercard
    } else if matches!(p2, 34 | 37) && len == 15 {
        CardBrand::Amex
    } else if (p4 == 6011 || (644..=649).contains(&p3) || p2 == 65) && len >= 16 {
        CardBrand::Discover
    } else if (3528..=3589).contains(&p4) && len >= 16 {
        CardBrand::Jcb
    } else if ((300..=305).contains(&p3) || p2 == 36 || p2 == 38 || p2 == 39) && len >= 14 {
        CardBrand::Diners
    } else if p2 == 62 && len >= 16 {
        CardBrand::UnionPay
    } else {
        return None;
    };
    Some(brand)
}

/// Whether `s` is a card number (issuer range, length and Luhn), with or without
/// single spaces or dashes between digits.
///
/// # Examples
///
/// ```
/// use lift::security::protection::detect::is_pan;
/// assert!(is_pan("4111 1111 1111 1111"));
/// assert!(is_pan("378282246310005"));
/// assert!(!is_pan("1234567812345670")); // Luhn-valid, but no issuer starts with 1
/// ```
pub fn is_pan(s: &str) -> bool {
    let Some(digits) = strip_separators(s) else { return false };
    card_brand(&digits).is_some() && luhn_valid(&digits)
}

/// Digits of `s` when it is digits separated by at most single spaces or dashes.
fn strip_separators(s: &str) -> Option<Vec<u8>> {
    let b = s.trim().as_bytes();
    if b.is_empty() || !b[0].is_ascii_digit() || !b[b.len() - 1].is_ascii_digit() {
        return None;
    }
    let mut out = Vec::with_capacity(b.len());
    let mut prev_sep = false;
    for &c in b {
        if c.is_ascii_digit() {
            out.push(c);
            prev_sep = false;
        } else if (c == b' ' || c == b'-') && !prev_sep {
            prev_sep = true;
        } else {
            return None;
        }
    }
    Some(out)
}

/// Whether `s` is a valid US SSN: `AAA-GG-SSSS` (dashes or spaces) or nine bare digits,
/// area not 000, 666 or 900–999, group not 00, serial not 0000.
pub fn is_ssn(s: &str) -> bool {
    let b = s.trim().as_bytes();
    let digits: Vec<u8> = match b.len() {
        9 => b.to_vec(),
        11 if (b[3] == b'-' && b[6] == b'-') || (b[3] == b' ' && b[6] == b' ') => {
            [&b[0..3], &b[4..6], &b[7..11]].concat()
        }
        _ => return false,
    };
    ssn_digits_valid(&digits)
}

fn ssn_digits_valid(d: &[u8]) -> bool {
    if d.len() != 9 || !d.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let area = prefix(d, 3);
    let group = prefix(&d[3..], 2);
    let serial = prefix(&d[5..], 4);
    area != 0 && area != 666 && area < 900 && group != 0 && serial != 0
}

/// IBAN lengths for common countries.
const IBAN_LENGTHS: &[(&str, usize)] = &[
    ("AD", 24),
    ("AT", 20),
    ("BE", 16),
    ("BG", 22),
    ("CH", 21),
    ("CY", 28),
    ("CZ", 24),
    ("DE", 22),
    ("DK", 18),
    ("EE", 20),
    ("ES", 24),
    ("FI", 18),
    ("FR", 27),
    ("GB", 22),
    ("GR", 27),
    ("HR", 21),
    ("HU", 28),
    ("IE", 22),
    ("IS", 26),
    ("IT", 27),
    ("LI", 21),
    ("LT", 20),
    ("LU", 20),
    ("LV", 21),
    ("MC", 27),
    ("MT", 31),
    ("NL", 18),
    ("NO", 15),
    ("PL", 28),
    ("PT", 25),
    ("RO", 24),
    ("SE", 24),
    ("SI", 19),
    ("SK", 24),
    ("SM", 27),
];

/// Whether `s` is an IBAN of a known country: its length and the mod-97 check (spaces
/// allowed, case-insensitive).
///
/// # Examples
///
/// ```
/// use lift::security::protection::detect::is_iban;
/// assert!(is_iban("GB82 WEST 1234 5698 7654 32"));
/// assert!(!is_iban("GB82 WEST 1234 5698 7654 33"));
/// ```
pub fn is_iban(s: &str) -> bool {
    let compact: Vec<u8> = s.bytes().filter(|c| *c != b' ').map(|c| c.to_ascii_uppercase()).collect();
    if compact.len() < 15 || !compact.iter().all(u8::is_ascii_alphanumeric) {
        return false;
    }
    let country = std::str::from_utf8(&compact[..2]).unwrap_or("");
    let Some(&(_, len)) = IBAN_LENGTHS.iter().find(|(c, _)| *c == country) else { return false };
    if compact.len() != len || !compact[2].is_ascii_digit() || !compact[3].is_ascii_digit() {
        return false;
    }
    let mut rem: u32 = 0;
    for &c in compact[4..].iter().chain(&compact[..4]) {
        let v = if c.is_ascii_digit() { u32::from(c - b'0') } else { u32::from(c - b'A') + 10 };
        rem = if v >= 10 { (rem * 100 + v) % 97 } else { (rem * 10 + v) % 97 };
    }
    rem == 1
}

/// Whether `s` is an email address (`local@domain.tld`, conservative).
pub fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else { return false };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && local.bytes().all(|c| c.is_ascii_alphanumeric() || b"._%+-".contains(&c));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty() && l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-') && !l.starts_with('-')
        })
        && labels.last().is_some_and(|tld| tld.len() >= 2 && tld.bytes().all(|c| c.is_ascii_alphabetic()));
    local_ok && domain_ok
}

/// Whether `s` is a phone number: E.164 (`+` then 8–15 digits, spaces or dashes
/// allowed) or a common national format (`(555) 123-4567`, `555-123-4567`,
/// `555.123.4567`, `020 7946 0958`).
pub fn is_phone(s: &str) -> bool {
    let s = s.trim();
    if let Some(rest) = s.strip_prefix('+') {
        let digits: String = rest.chars().filter(char::is_ascii_digit).collect();
        return rest.chars().all(|c| c.is_ascii_digit() || c == ' ' || c == '-')
            && rest.starts_with(|c: char| c.is_ascii_digit() && c != '0')
            && (8..=15).contains(&digits.len());
    }
    let b = s.as_bytes();
    let shape = |pat: &[u8]| {
        b.len() == pat.len()
            && b.iter().zip(pat).all(|(c, p)| if *p == b'd' { c.is_ascii_digit() } else { c == p })
    };
    shape(b"(ddd) ddd-dddd")
        || shape(b"ddd-ddd-dddd")
        || shape(b"ddd.ddd.dddd")
        || shape(b"ddd ddd dddd")
        || shape(b"0ddd ddd dddd")
        || shape(b"0dd dddd dddd")
}

/// Whether `s` is a plausible date of birth: `YYYY-MM-DD`, `MM/DD/YYYY` or
/// `DD.MM.YYYY`, a real calendar date with a year from 1900 to 2100.
pub fn is_plausible_date(s: &str) -> bool {
    let b = s.trim().as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = b.get(r)?;
        part.iter().all(u8::is_ascii_digit).then(|| prefix(part, part.len()))
    };
    let (y, m, d) = match b.len() {
        10 if b[4] == b'-' && b[7] == b'-' => (num(0..4), num(5..7), num(8..10)),
        10 if b[2] == b'/' && b[5] == b'/' => (num(6..10), num(0..2), num(3..5)),
        10 if b[2] == b'.' && b[5] == b'.' => (num(6..10), num(3..5), num(0..2)),
        _ => return false,
    };
    let (Some(y), Some(m), Some(d)) = (y, m, d) else { return false };
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1900..=2100).contains(&y) && (1..=days).contains(&d)
}

/// Whether `s` looks like a secret whatever its field: an AWS access key id, a Stripe
/// key, a GitHub token, a JWT or a PEM private key.
///
/// # Examples
///
/// ```
/// use lift::security::protection::detect::is_secret;
/// assert!(is_secret("AKIAIOSFODNN7EXAMPLE"));
/// assert!(is_secret("-----BEGIN RSA PRIVATE KEY-----\nMIIE..."));
/// assert!(!is_secret("hello world"));
/// ```
pub fn is_secret(s: &str) -> bool {
    let s = s.trim();
    let alnum = |t: &str| t.bytes().all(|c| c.is_ascii_alphanumeric());
    let aws = (s.starts_with("AKIA") || s.starts_with("ASIA"))
        && s.len() == 20
        && s.bytes().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
    let stripe = ["sk_live_", "sk_test_"]
        .iter()
        .any(|p| s.strip_prefix(p).is_some_and(|rest| rest.len() >= 16 && alnum(rest)));
    let github = s.strip_prefix("ghp_").is_some_and(|rest| rest.len() == 36 && alnum(rest));
    let pem = s.contains("-----BEGIN") && s.contains("PRIVATE KEY-----");
    aws || stripe || github || pem || is_jwt(s)
}

fn is_jwt(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() == 3
        && parts[0].starts_with("eyJ")
        && parts[..2].iter().all(|p| p.len() >= 8)
        && parts.iter().all(|p| p.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'))
}

/// Shannon entropy of `s` in bits per character.
pub fn shannon_entropy(s: &str) -> f64 {
    let mut counts = [0u32; 256];
    for b in s.bytes() {
        counts[usize::from(b)] += 1;
    }
    let n = s.len() as f64;
    counts.iter().filter(|c| **c > 0).map(|&c| -(f64::from(c) / n) * (f64::from(c) / n).log2()).sum()
}

/// Whether `s` is a high-entropy string (at least 16 characters, no spaces, over 3.5
/// bits per character): a likely secret in a field named secret/token/key.
pub fn is_high_entropy(s: &str) -> bool {
    s.len() >= 16 && !s.contains(' ') && shannon_entropy(s) > 3.5
}

/// Which class a whole value belongs to by its content alone, if any.
pub fn detect_value(s: &str) -> Option<DataClass> {
    if is_pan(s) {
        Some(DataClass::Pan)
    } else if is_ssn(s) && s.trim().len() == 11 {
        // Bare nine digits are too common (ids, amounts) to be an SSN without a field name.
        Some(DataClass::Ssn)
    } else if is_iban(s) {
        Some(DataClass::Iban)
    } else if is_secret(s) {
        Some(DataClass::Secret)
    } else if is_email(s) {
        Some(DataClass::Email)
    } else if is_phone(s) {
        Some(DataClass::Phone)
    } else {
        None
    }
}

/// Finds card numbers, SSNs (`AAA-GG-SSSS`), emails and secrets inside free text.
///
/// # Examples
///
/// ```
/// use lift::security::protection::{detect::scan_text, DataClass};
/// let found = scan_text("pay with 4111-1111-1111-1111 please");
/// assert_eq!(found[0].class, DataClass::Pan);
/// assert_eq!(&"pay with 4111-1111-1111-1111 please"[found[0].start..found[0].end], "4111-1111-1111-1111");
/// ```
pub fn scan_text(text: &str) -> Vec<Match> {
    let mut found = Vec::new();
    scan_digit_runs(text, &mut found);
    // Whitespace-separated words: emails, secrets.
    let mut start = None;
    for (i, c) in text.char_indices().chain(std::iter::once((text.len(), ' '))) {
        if c.is_whitespace() || matches!(c, ',' | ';' | '"' | '\'' | '<' | '>' | '(' | ')') {
            if let Some(s) = start.take() {
                let word = text[s..i].trim_end_matches(['.', ':', '!', '?']);
                let end = s + word.len();
                let class = if is_email(word) {
                    Some(DataClass::Email)
                } else if is_secret(word) {
                    Some(DataClass::Secret)
                } else {
                    None
                };
                if let Some(class) = class {
                    if !found.iter().any(|m: &Match| m.start < end && s < m.end) {
                        found.push(Match { class, start: s, end });
                    }
                }
            }
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if text.contains("-----BEGIN") && text.contains("PRIVATE KEY-----") {
        found.push(Match { class: DataClass::Secret, start: 0, end: text.len() });
    }
    found.sort_by_key(|m| m.start);
    found
}

/// Card numbers and dashed SSNs in runs of digits joined by single spaces or dashes.
fn scan_digit_runs(text: &str, found: &mut Vec<Match>) {
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        // A run: digits with single separators between them; positions of its digits.
        let start = i;
        let mut pos = Vec::new();
        let mut j = i;
        while j < b.len() {
            if b[j].is_ascii_digit() {
                pos.push(j);
                j += 1;
            } else if (b[j] == b' ' || b[j] == b'-') && j + 1 < b.len() && b[j + 1].is_ascii_digit() {
                j += 1;
            } else {
                break;
            }
        }
        let run = &text[start..j];
        let digits: Vec<u8> = pos.iter().map(|&p| b[p]).collect();
        if is_ssn(run) && run.len() == 11 {
            found.push(Match { class: DataClass::Ssn, start, end: j });
        } else if digits.len() >= 13 {
            // Every window of 13–19 digits: a card number may touch other digits.
            let mut covered = 0;
            for w_start in 0..digits.len() {
                for len in (13..=19).rev() {
                    let w_end = w_start + len;
                    if w_end > digits.len() || w_start < covered {
                        continue;
                    }
                    let w = &digits[w_start..w_end];
                    if card_brand(w).is_some() && luhn_valid(w) {
                        found.push(Match {
                            class: DataClass::Pan,
                            start: pos[w_start],
                            end: pos[w_end - 1] + 1,
                        });
                        covered = w_end;
                        break;
                    }
                }
            }
        } else {
            // Dashed or spaced SSNs inside a longer run of separated groups.
            for k in 0..pos.len().saturating_sub(8) {
                let (s, e) = (pos[k], pos[k + 8] + 1);
                if e - s == 11 && is_ssn(&text[s..e]) {
                    found.push(Match { class: DataClass::Ssn, start: s, end: e });
                    break;
                }
            }
        }
        i = j.max(i + 1);
    }
}
