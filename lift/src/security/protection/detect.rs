//! Hand-written value detectors: card numbers, SSNs, IBANs, emails, phones, dates of
//! birth and secrets. No regex engine: each detector is a small scanner.
//!
//! Card numbers, SSNs and IBANs inside text are found by [`crate::sensitive`], the one
//! number detector the log scrubber uses too; this module re-exports its checks
//! ([`luhn_valid`], [`card_brand`], [`is_iban`]) and maps what it finds to [`DataClass`]es.
//!
//! The detectors run on every string of every masked document, so they allocate nothing
//! and give up at the first byte that rules them out (each has a cheap prefilter: a card
//! number or SSN starts with a digit, an IBAN with a letter, an email needs an `@`...).

use super::classify::DataClass;
use crate::sensitive::{self, Kind};

pub use crate::sensitive::{card_brand, is_iban, luhn_valid, CardBrand};

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

fn prefix(digits: &[u8], n: usize) -> u32 {
    digits.iter().take(n).fold(0, |acc, d| acc * 10 + u32::from(d - b'0'))
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
    is_pan_trimmed(s.trim())
}

/// [`is_pan`] of a trimmed string.
fn is_pan_trimmed(s: &str) -> bool {
    let mut buf = [0u8; MAX_PAN_DIGITS];
    let Some(n) = strip_separators(s, &mut buf) else { return false };
    sensitive::is_pan_digits(&buf[..n])
}

/// The most digits a card number has.
const MAX_PAN_DIGITS: usize = 19;

/// The digits of trimmed `s`, written to `buf`, when it is digits separated by at most
/// single spaces or dashes; `None` otherwise, and when it has more digits than any card
/// number.
fn strip_separators(s: &str, buf: &mut [u8; MAX_PAN_DIGITS]) -> Option<usize> {
    let b = s.as_bytes();
    // 19 digits with single separators between them are 37 bytes at most.
    if b.is_empty() || b.len() > 2 * MAX_PAN_DIGITS - 1 {
        return None;
    }
    if !b[0].is_ascii_digit() || !b[b.len() - 1].is_ascii_digit() {
        return None;
    }
    let mut n = 0;
    let mut prev_sep = false;
    for &c in b {
        if c.is_ascii_digit() {
            *buf.get_mut(n)? = c;
            n += 1;
            prev_sep = false;
        } else if (c == b' ' || c == b'-') && !prev_sep {
            prev_sep = true;
        } else {
            return None;
        }
    }
    Some(n)
}

/// Whether `s` is a valid US SSN: `AAA-GG-SSSS` (dashes or spaces) or nine bare digits,
/// area not 000, 666 or 900–999, group not 00, serial not 0000.
pub fn is_ssn(s: &str) -> bool {
    is_ssn_trimmed(s.trim())
}

/// [`is_ssn`] of a trimmed string.
fn is_ssn_trimmed(s: &str) -> bool {
    let b = s.as_bytes();
    let mut digits = [0u8; 9];
    match b.len() {
        9 => digits.copy_from_slice(b),
        11 if (b[3] == b'-' && b[6] == b'-') || (b[3] == b' ' && b[6] == b' ') => {
            digits[..3].copy_from_slice(&b[0..3]);
            digits[3..5].copy_from_slice(&b[4..6]);
            digits[5..].copy_from_slice(&b[7..11]);
        }
        _ => return false,
    }
    sensitive::is_ssn_digits(&digits)
}

/// Whether `s` is an email address (`local@domain.tld`, conservative).
pub fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else { return false };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && local.bytes().all(|c| c.is_ascii_alphanumeric() || b"._%+-".contains(&c));
    if !local_ok {
        return false;
    }
    let mut labels = 0;
    let mut last = "";
    for l in domain.split('.') {
        let ok =
            !l.is_empty() && l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-') && !l.starts_with('-');
        if !ok {
            return false;
        }
        labels += 1;
        last = l;
    }
    labels >= 2 && last.len() >= 2 && last.bytes().all(|c| c.is_ascii_alphabetic())
}

/// Whether `s` is a phone number: E.164 (`+` then 8–15 digits, spaces or dashes
/// allowed) or a common national format (`(555) 123-4567`, `555-123-4567`,
/// `555.123.4567`, `020 7946 0958`).
pub fn is_phone(s: &str) -> bool {
    is_phone_trimmed(s.trim())
}

/// [`is_phone`] of a trimmed string.
fn is_phone_trimmed(s: &str) -> bool {
    if let Some(rest) = s.strip_prefix('+') {
        if !rest.starts_with(|c: char| c.is_ascii_digit() && c != '0') {
            return false;
        }
        let mut digits = 0;
        for c in rest.bytes() {
            if c.is_ascii_digit() {
                digits += 1;
            } else if c != b' ' && c != b'-' {
                return false;
            }
        }
        return (8..=15).contains(&digits);
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
    is_token_secret(s) || is_pem(s)
}

/// An AWS access key id, a Stripe key, a GitHub token or a JWT: each starts with a
/// known prefix, so the first byte rules most strings out.
fn is_token_secret(s: &str) -> bool {
    let alnum = |t: &str| t.bytes().all(|c| c.is_ascii_alphanumeric());
    match s.as_bytes().first() {
        Some(b'A') => {
            (s.starts_with("AKIA") || s.starts_with("ASIA"))
                && s.len() == 20
                && s.bytes().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        }
        Some(b's') => ["sk_live_", "sk_test_"]
            .iter()
            .any(|p| s.strip_prefix(p).is_some_and(|rest| rest.len() >= 16 && alnum(rest))),
        Some(b'g') => s.strip_prefix("ghp_").is_some_and(|rest| rest.len() == 36 && alnum(rest)),
        Some(b'e') => is_jwt(s),
        _ => false,
    }
}

/// A PEM private key anywhere in `s`.
fn is_pem(s: &str) -> bool {
    has_five_dashes(s.as_bytes()) && s.contains("-----BEGIN") && s.contains("PRIVATE KEY-----")
}

/// Whether `b` has five dashes in a row, as every PEM marker does.
fn has_five_dashes(b: &[u8]) -> bool {
    let mut run = 0;
    for &c in b {
        run = if c == b'-' { run + 1 } else { 0 };
        if run == 5 {
            return true;
        }
    }
    false
}

fn is_jwt(s: &str) -> bool {
    if !s.starts_with("eyJ") {
        return false;
    }
    let mut parts = s.split('.');
    let (Some(a), Some(b), Some(c), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    a.len() >= 8
        && b.len() >= 8
        && [a, b, c].iter().all(|p| p.bytes().all(|x| x.is_ascii_alphanumeric() || x == b'-' || x == b'_'))
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
    detect_value_in(s, &Profile::of(s))
}

/// Byte classes of [`BYTES`].
const DIGIT: u8 = 1;
const AT: u8 = 2;
const DASH: u8 = 4;
/// A byte that ends a word in [`scan_text`] (ASCII whitespace and punctuation).
const SEPARATOR: u8 = 8;

/// The class of each byte (non-ASCII bytes: none).
static BYTES: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 128 {
        table[i] = match i as u8 {
            b'0'..=b'9' => DIGIT,
            b'@' => AT,
            b'-' => DASH,
            b'\t' | b'\n' | b'\x0B' | b'\x0C' | b'\r' | b' ' => SEPARATOR,
            b',' | b';' | b'"' | b'\'' | b'<' | b'>' | b'(' | b')' => SEPARATOR,
            _ => 0,
        };
        i += 1;
    }
    table
};

/// The shortest word [`is_secret`] can accept: a JWT of two 8-character parts and two
/// dots (AWS key ids are 20 characters, Stripe keys 24 or more, GitHub tokens 40).
const MIN_SECRET_WORD: usize = 18;

/// What one pass over a string tells of it: which detectors can match at all.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Profile {
    /// Some ASCII digit: card numbers, SSNs, phones.
    digit: bool,
    /// Some `@`: emails.
    at: bool,
    /// Five dashes in a row: PEM keys.
    dashes: bool,
    /// The longest run of bytes without an ASCII separator: an upper bound on the
    /// length of the words of [`scan_text`] (which also splits at Unicode whitespace).
    longest_word: usize,
}

impl Profile {
    /// The profile of `s`.
    pub(crate) fn of(s: &str) -> Self {
        let (mut any, mut dash_run, mut dashes, mut word, mut longest_word) = (0u8, 0u32, false, 0, 0);
        for &c in s.as_bytes() {
            let class = BYTES[usize::from(c)];
            any |= class;
            dash_run = if class == DASH { dash_run + 1 } else { 0 };
            dashes |= dash_run >= 5;
            word = if class == SEPARATOR { 0 } else { word + 1 };
            longest_word = longest_word.max(word);
        }
        Self { digit: any & DIGIT != 0, at: any & AT != 0, dashes, longest_word }
    }
}

/// [`detect_value`] given the profile of `s`.
pub(crate) fn detect_value_in(s: &str, p: &Profile) -> Option<DataClass> {
    let t = s.trim();
    // Card numbers and SSNs start with a digit; IBANs with letters.
    let first = t.as_bytes().first().copied().unwrap_or(b' ');
    if first.is_ascii_digit() && is_pan_trimmed(t) {
        Some(DataClass::Pan)
    } else if first.is_ascii_digit() && t.len() == 11 && is_ssn_trimmed(t) {
        // Bare nine digits are too common (ids, amounts) to be an SSN without a field name.
        Some(DataClass::Ssn)
    } else if s.len() >= 15 && is_iban(s) {
        Some(DataClass::Iban)
    } else if is_token_secret(t) || (p.dashes && is_pem(t)) {
        Some(DataClass::Secret)
    } else if p.at && is_email(s) {
        Some(DataClass::Email)
    } else if p.digit && is_phone_trimmed(t) {
        Some(DataClass::Phone)
    } else {
        None
    }
}

/// Finds card numbers, SSNs (`AAA-GG-SSSS` or `AAA GG SSSS`), IBANs, emails and secrets
/// inside free text (what counts as a number: [`crate::sensitive`]).
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
    scan_text_in(text, &Profile::of(text), &mut found);
    found
}

/// [`scan_text`] given the profile of `text`, into `found` (cleared first), so callers
/// can reuse one buffer.
pub(crate) fn scan_text_in(text: &str, p: &Profile, found: &mut Vec<Match>) {
    found.clear();
    // Card numbers and SSNs are digits; an IBAN has its check digits.
    if p.digit {
        scan_numbers(text, found);
    }
    // Whitespace-separated words: emails, secrets. Only a word with an `@` can be an
    // email, and only one of 18 bytes or more starting with `A`, `s`, `g` or `e` a secret
    // (AKIA/ASIA, sk_live_/sk_test_, ghp_, eyJ); a PEM key has a space, so is no word.
    if p.at || p.longest_word >= MIN_SECRET_WORD {
        scan_words(text, found);
    }
    if p.dashes && is_pem(text) {
        found.push(Match { class: DataClass::Secret, start: 0, end: text.len() });
    }
    found.sort_by_key(|m| m.start);
}

/// Emails and secrets in the words of `text`.
fn scan_words(text: &str, found: &mut Vec<Match>) {
    let b = text.as_bytes();
    let mut start = None;
    let mut at_sign = false;
    let mut i = 0;
    while i <= b.len() {
        let (separator, width) = match b.get(i) {
            None => (true, 1),
            Some(&c) if c.is_ascii() => {
                at_sign |= c == b'@';
                (BYTES[usize::from(c)] == SEPARATOR, 1)
            }
            Some(_) => {
                let c = text[i..].chars().next().unwrap_or(' ');
                (c.is_whitespace(), c.len_utf8())
            }
        };
        if separator {
            if let Some(s) = start.take() {
                let secret_like = i - s >= MIN_SECRET_WORD && matches!(b[s], b'A' | b's' | b'g' | b'e');
                if at_sign || secret_like {
                    check_word(text, s, i, found);
                }
            }
            at_sign = false;
        } else if start.is_none() {
            start = Some(i);
        }
        i += width;
    }
}

/// An email or a secret in the word `text[s..i]`, unless it overlaps an earlier match.
fn check_word(text: &str, s: usize, i: usize, found: &mut Vec<Match>) {
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

/// Card numbers, SSNs and IBANs, found by the crate's one number detector
/// ([`crate::sensitive`]), as matches.
fn scan_numbers(text: &str, found: &mut Vec<Match>) {
    let mut spans = Vec::new();
    sensitive::find_into(text, &mut spans);
    found.extend(spans.into_iter().map(|s| {
        let class = match s.kind {
            Kind::Pan => DataClass::Pan,
            Kind::Ssn => DataClass::Ssn,
            _ => DataClass::Iban,
        };
        Match { class, start: s.start, end: s.end }
    }));
}

#[cfg(test)]
mod hex_tests {
    use super::*;

    #[test]
    fn digit_runs_inside_hashes_and_ids_are_not_card_numbers() {
        // 4111111111111111 passes Luhn; inside a hex hash or id it is not a card number.
        for text in ["9f86d0814111111111111111a2feaa0c55ad015b", "pay_ab4111111111111111cdef0123456789ab"] {
            assert!(scan_text(text).iter().all(|m| m.class != DataClass::Pan), "{text}");
        }
        for text in ["card 4111111111111111 ok", "pan:4111111111111111", "x4111111111111111"] {
            assert!(scan_text(text).iter().any(|m| m.class == DataClass::Pan), "{text}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classes(text: &str) -> Vec<(DataClass, &str)> {
        scan_text(text).into_iter().map(|m| (m.class, &text[m.start..m.end])).collect()
    }

    #[test]
    fn words_split_at_unicode_whitespace_and_punctuation() {
        let text = "mail\u{a0}ada@example.com\u{2003}or (AKIAIOSFODNN7EXAMPLE).";
        assert_eq!(
            classes(text),
            [(DataClass::Email, "ada@example.com"), (DataClass::Secret, "AKIAIOSFODNN7EXAMPLE")]
        );
        // A vertical tab is whitespace too.
        assert_eq!(classes("x\x0Bada@example.com"), [(DataClass::Email, "ada@example.com")]);
    }

    #[test]
    fn the_shortest_secret_word_is_found() {
        // A JWT of two 8-character parts: 18 bytes, the prefilter's bound.
        assert!(is_secret("eyJabcde.abcdefgh."));
        assert_eq!("eyJabcde.abcdefgh.".len(), MIN_SECRET_WORD);
        // In text a word loses a trailing dot, so the shortest JWT found there has 19.
        let jwt = "eyJabcde.abcdefgh.x";
        assert_eq!(classes(&format!("token {jwt} sent")), [(DataClass::Secret, jwt)]);
        assert_eq!(classes("a AKIAIOSFODNN7EXAMPLE"), [(DataClass::Secret, "AKIAIOSFODNN7EXAMPLE")]);
    }

    #[test]
    fn pem_keys_need_five_dashes() {
        let pem = "-----BEGIN PRIVATE KEY-----\nMIIE...";
        assert!(is_secret(pem) && detect_value(pem) == Some(DataClass::Secret));
        assert_eq!(classes(&format!("key: {pem}")).len(), 1);
        assert!(!is_secret("----BEGIN PRIVATE KEY----"));
        // The markers may share their dashes.
        assert!(is_secret("PRIVATE KEY-----BEGIN"));
    }

    #[test]
    fn long_digit_runs_are_scanned_whole() {
        // More digits than the stack buffers hold: the heap path.
        // Glued digits: the card number is covered whole (other windows may widen the span).
        let run = format!("{}4111111111111111{}", "9".repeat(40), "9".repeat(40));
        let found = scan_text(&run);
        assert!(found.iter().any(|m| m.class == DataClass::Pan && m.start <= 40 && m.end >= 56), "{found:?}");
        // Runs too short for an SSN or a card number hold neither.
        assert!(scan_text("order 12345678 and 1234-5678").is_empty());
        assert_eq!(classes("ssn 123-45-6789-1"), [(DataClass::Ssn, "123-45-6789")]);
    }

    #[test]
    fn values_are_detected_after_the_prefilters() {
        assert_eq!(detect_value(" 4111 1111 1111 1111 "), Some(DataClass::Pan));
        assert_eq!(detect_value("123-45-6789"), Some(DataClass::Ssn));
        assert_eq!(detect_value("nl91abna0417164300"), Some(DataClass::Iban));
        assert_eq!(detect_value("ada@example.com"), Some(DataClass::Email));
        assert_eq!(detect_value(" ada@example.com"), None, "emails are not trimmed");
        assert_eq!(detect_value("(415) 555-2671"), Some(DataClass::Phone));
        assert_eq!(detect_value("Ada Lovelace"), None);
        assert!(!is_iban("GB82 WEST 1234 5698 7654 32 1234 5678 9012"), "longer than any IBAN");
    }
}
