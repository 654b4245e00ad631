//! One detector for the numbers that must never be readable: payment card numbers, US
//! social security numbers and IBANs, found in free text.
//!
//! The masker of [`security::protection`](crate::security::protection) and the log
//! scrubber of [`middleware::logging`](crate::middleware::logging) both find these numbers
//! here, so a rule is fixed once for both. No regex engine and no allocation until
//! something is found: one left-to-right pass, linear in the input.
//!
//! # What counts
//!
//! Text is read as *chains*: groups of ASCII digits joined by a single space or dash
//! (`4111 1111 1111 1111`, `673-75-6059 2024-01-15`, `20240115093000123 4012888888881881`).
//!
//! - **Card numbers.** Any run of whole consecutive groups of a chain with 12–19 digits in
//!   all, laid out as card numbers are written (in one piece, or a group of four then
//!   groups of at most six, one kind of separator: 4-4-4-4, 4-6-5), with the issuer prefix
//!   and length of a known network ([`card_brand`]) and a valid Luhn check: plain, spaced,
//!   dashed, alone or beside other numbers.
//! - **Digits glued together.** A group of more than 19 digits is longer than any card
//!   number, so it is several numbers run together: there *every* window of 12–19 digits
//!   with an issuer prefix and a Luhn check is a card number, and overlapping windows form
//!   one span, so a card number glued to a timestamp is covered whole. A group of 19
//!   digits or fewer is one number: a card number as a whole or not at all.
//! - **SSNs.** Three consecutive groups of 3, 2 and 4 digits joined by two dashes or two
//!   spaces, with a valid area (not 000, 666 or 900–999), group (not 00) and serial (not
//!   0000), wherever they sit in a chain. Nine bare digits are not an SSN in free text (ids
//!   and amounts have nine digits too); a field named `ssn` says so ([`field_kind`]).
//! - **IBANs.** A word that starts with an upper-case country code of known IBAN length and
//!   two check digits, then the rest in one piece or in space-separated groups, that passes
//!   the mod-97 check.
//!
//! Not numbers, by rule: digits inside a hex token of 24 or more hex characters with at
//! least one letter (digests and object ids, also after a `prefix_`), digits inside a
//! canonical UUID, a dashed SSN shape right after an ISBN prefix (`978-`) or followed by
//! an ISBN-10 check digit (`612-15-0555-6`), and a chain written in one piece or in groups
//! of four that is a USPS tracking number ([`is_tracking_number`]).
//!
//! # Examples
//!
//! ```
//! use lift::sensitive::{find, Kind};
//! let text = "id 20240115093000123 4012888888881881, applicant 673-75-6059 2024-01-15";
//! let found: Vec<_> = find(text).into_iter().map(|s| (s.kind, &text[s.start..s.end])).collect();
//! assert_eq!(found, [(Kind::Pan, "4012888888881881"), (Kind::Ssn, "673-75-6059")]);
//! ```

/// What a detected number is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kind {
    /// A payment card number.
    Pan,
    /// A US social security number.
    Ssn,
    /// An international bank account number.
    Iban,
}

/// A detected number inside a string (byte offsets, on ASCII boundaries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// What was found.
    pub kind: Kind,
    /// Byte offset of the first byte.
    pub start: usize,
    /// Byte offset one past the last byte.
    pub end: usize,
}

/// A card network, recognised by issuer prefix and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
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
    /// Diners Club: 300–305, 3095, 36, 38–39, lengths 14–19.
    Diners,
    /// UnionPay: 62, lengths 16–19.
    UnionPay,
    /// Maestro: 50, 56–58, 63, 67, lengths 12–19.
    Maestro,
    /// Mir: 2200–2204, lengths 16–19.
    Mir,
    /// RuPay: 60, 81, 82, 508, length 16 (its 65, 353 and 356 cards are Discover and JCB
    /// ranges, found as those).
    RuPay,
    /// Elo: its own six-digit ranges inside 4, 5 and 6, length 16.
    Elo,
    /// Verve: 506099–506198, 507865–507964, 650002–650027, lengths 16, 18, 19.
    Verve,
    /// Troy: 9792, length 16 (its 65 cards are in the Discover range).
    Troy,
    /// UATP: 1, length 15.
    Uatp,
}

/// The fewest and the most digits a card number has.
const MIN_PAN: usize = 12;
const MAX_PAN: usize = 19;

/// Whether the digits pass the Luhn check.
///
/// # Examples
///
/// ```
/// use lift::sensitive::luhn_valid;
/// assert!(luhn_valid(b"4111111111111111"));
/// assert!(!luhn_valid(b"4111111111111112"));
/// ```
pub fn luhn_valid(digits: &[u8]) -> bool {
    !digits.is_empty() && digits.iter().all(u8::is_ascii_digit) && luhn_sum(digits) % 10 == 0
}

/// Twice a digit, its digits summed (Luhn's doubled digits).
const DOUBLED: [u32; 10] = [0, 2, 4, 6, 8, 1, 3, 5, 7, 9];

/// The Luhn sum of ASCII digits (rightmost digit undoubled).
fn luhn_sum(digits: &[u8]) -> u32 {
    digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            let d = usize::from(d - b'0');
            if i % 2 == 1 {
                DOUBLED[d]
            } else {
                d as u32
            }
        })
        .sum()
}

fn prefix(digits: &[u8], n: usize) -> u32 {
    digits.iter().take(n).fold(0, |acc, d| acc * 10 + u32::from(d - b'0'))
}

/// Elo's six-digit issuer ranges.
const ELO: &[(u32, u32)] = &[
    (401178, 401179),
    (431274, 431274),
    (438935, 438935),
    (451416, 451416),
    (457393, 457393),
    (457631, 457632),
    (504175, 504175),
    (506699, 506778),
    (509000, 509999),
    (627780, 627780),
    (636297, 636297),
    (636368, 636368),
    (650031, 650033),
    (650035, 650051),
    (650405, 650439),
    (650485, 650538),
    (650541, 650598),
    (650700, 650718),
    (650720, 650727),
    (650901, 650978),
    (651652, 651679),
    (655000, 655019),
    (655021, 655058),
];

/// Verve's six-digit issuer ranges.
const VERVE: &[(u32, u32)] = &[(506099, 506198), (507865, 507964), (650002, 650027)];

fn in_ranges(p6: u32, ranges: &[(u32, u32)]) -> bool {
    ranges.iter().any(|&(lo, hi)| (lo..=hi).contains(&p6))
}

/// The brand of a card number given as bare ASCII digits, if its issuer prefix and
/// length belong to a real network (the Luhn check is separate).
///
/// # Examples
///
/// ```
/// use lift::sensitive::{card_brand, CardBrand};
/// assert_eq!(card_brand(b"6759649826438453"), Some(CardBrand::Maestro));
/// assert_eq!(card_brand(b"2200000000000004"), Some(CardBrand::Mir));
/// assert_eq!(card_brand(b"1234567812345670"), None);
/// ```
pub fn card_brand(digits: &[u8]) -> Option<CardBrand> {
    use CardBrand::*;
    let len = digits.len();
    if !(MIN_PAN..=MAX_PAN).contains(&len) || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let p = |n| prefix(digits, n);
    let (p1, p2, p3, p4, p6) = (p(1), p(2), p(3), p(4), p(6));
    // The six-digit ranges first: Elo's and Verve's sit inside Visa, Maestro and Discover.
    let brand = if len == 16 && in_ranges(p6, ELO) {
        Elo
    } else if matches!(len, 16 | 18 | 19) && in_ranges(p6, VERVE) {
        Verve
    } else if (2200..=2204).contains(&p4) && len >= 16 {
        Mir
    } else if p4 == 9792 && len == 16 {
        Troy
    } else if p1 == 4 && matches!(len, 13 | 16 | 19) {
        Visa
    } else if ((51..=55).contains(&p2) || (2221..=2720).contains(&p4)) && len == 16 {
        Mastercard
    } else if matches!(p2, 34 | 37) && len == 15 {
        Amex
    } else if (p4 == 6011 || (644..=649).contains(&p3) || p2 == 65) && len >= 16 {
        Discover
    } else if (3528..=3589).contains(&p4) && len >= 16 {
        Jcb
    } else if ((300..=305).contains(&p3) || p4 == 3095 || matches!(p2, 36 | 38 | 39)) && len >= 14 {
        Diners
    } else if p2 == 62 && len >= 16 {
        UnionPay
    } else if matches!(p2, 50 | 56 | 57 | 58 | 63 | 67) {
        Maestro
    } else if (matches!(p2, 60 | 81 | 82) || p3 == 508) && len == 16 {
        RuPay
    } else if p1 == 1 && len == 15 {
        Uatp
    } else {
        return None;
    };
    Some(brand)
}

/// Whether bare ASCII digits are a card number: issuer range, length and Luhn.
pub fn is_pan_digits(digits: &[u8]) -> bool {
    card_brand(digits).is_some() && luhn_sum(digits) % 10 == 0
}

/// Whether nine ASCII digits are a valid SSN: area not 000, 666 or 900–999, group not 00,
/// serial not 0000.
pub fn is_ssn_digits(d: &[u8]) -> bool {
    if d.len() != 9 || !d.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let area = prefix(d, 3);
    area != 0 && area != 666 && area < 900 && prefix(&d[3..], 2) != 0 && prefix(&d[5..], 4) != 0
}

/// IBAN lengths by country (SWIFT's IBAN registry).
const IBAN_LENGTHS: &[(&[u8; 2], usize)] = &[
    (b"AD", 24),
    (b"AE", 23),
    (b"AL", 28),
    (b"AT", 20),
    (b"AZ", 28),
    (b"BA", 20),
    (b"BE", 16),
    (b"BG", 22),
    (b"BH", 22),
    (b"BR", 29),
    (b"BY", 28),
    (b"CH", 21),
    (b"CR", 22),
    (b"CY", 28),
    (b"CZ", 24),
    (b"DE", 22),
    (b"DK", 18),
    (b"DO", 28),
    (b"EE", 20),
    (b"EG", 29),
    (b"ES", 24),
    (b"FI", 18),
    (b"FO", 18),
    (b"FR", 27),
    (b"GB", 22),
    (b"GE", 22),
    (b"GI", 23),
    (b"GL", 18),
    (b"GR", 27),
    (b"GT", 28),
    (b"HR", 21),
    (b"HU", 28),
    (b"IE", 22),
    (b"IL", 23),
    (b"IQ", 23),
    (b"IS", 26),
    (b"IT", 27),
    (b"JO", 30),
    (b"KW", 30),
    (b"KZ", 20),
    (b"LB", 28),
    (b"LC", 32),
    (b"LI", 21),
    (b"LT", 20),
    (b"LU", 20),
    (b"LV", 21),
    (b"MC", 27),
    (b"MD", 24),
    (b"ME", 22),
    (b"MK", 19),
    (b"MR", 27),
    (b"MT", 31),
    (b"MU", 30),
    (b"NL", 18),
    (b"NO", 15),
    (b"PK", 24),
    (b"PL", 28),
    (b"PS", 29),
    (b"PT", 25),
    (b"QA", 29),
    (b"RO", 24),
    (b"RS", 22),
    (b"SA", 24),
    (b"SC", 31),
    (b"SE", 24),
    (b"SI", 19),
    (b"SK", 24),
    (b"SM", 27),
    (b"ST", 25),
    (b"SV", 28),
    (b"TL", 23),
    (b"TN", 24),
    (b"TR", 26),
    (b"UA", 29),
    (b"VA", 22),
    (b"VG", 24),
    (b"XK", 20),
];

/// The longest IBAN of [`IBAN_LENGTHS`] (Saint Lucia).
const MAX_IBAN: usize = 32;

fn iban_length(country: &[u8]) -> Option<usize> {
    IBAN_LENGTHS.iter().find(|(c, _)| c.as_slice() == country).map(|(_, len)| *len)
}

/// The mod-97 check of a compact upper-case IBAN.
fn iban_check(compact: &[u8]) -> bool {
    let mut rem: u32 = 0;
    for &c in compact[4..].iter().chain(&compact[..4]) {
        rem = if c.is_ascii_digit() {
            (rem * 10 + u32::from(c - b'0')) % 97
        } else {
            (rem * 100 + u32::from(c - b'A') + 10) % 97
        };
    }
    rem == 1
}

/// Whether `s` is an IBAN of a known country: its length and the mod-97 check (spaces
/// allowed, case-insensitive).
///
/// # Examples
///
/// ```
/// use lift::sensitive::is_iban;
/// assert!(is_iban("GB82 WEST 1234 5698 7654 32"));
/// assert!(!is_iban("GB82 WEST 1234 5698 7654 33"));
/// ```
pub fn is_iban(s: &str) -> bool {
    let mut buf = [0u8; MAX_IBAN];
    let mut n = 0;
    for c in s.bytes() {
        if c == b' ' {
            continue;
        }
        // Every country code is two letters: give up early on anything else.
        let ok = if n < 2 { c.is_ascii_alphabetic() } else { c.is_ascii_alphanumeric() };
        if !ok || n == MAX_IBAN {
            return false;
        }
        buf[n] = c.to_ascii_uppercase();
        n += 1;
    }
    let compact = &buf[..n];
    n >= 15
        && iban_length(&compact[..2]) == Some(n)
        && compact[2].is_ascii_digit()
        && compact[3].is_ascii_digit()
        && iban_check(compact)
}

/// Whether ASCII digits are a USPS tracking number, which the scanner never reads as
/// card numbers: 22 digits starting with 9 (Intelligent Mail package barcode), 20 digits
/// starting with 0 or 7 (older labels), or either after the `420` ZIP routing prefix
/// (30 or 34 digits in all); the last digit is the GS1 mod-10 check digit.
///
/// # Examples
///
/// ```
/// use lift::sensitive::is_tracking_number;
/// assert!(is_tracking_number(b"9400111899223392478129"));
/// assert!(!is_tracking_number(b"9400111899223392478120"));
/// ```
pub fn is_tracking_number(digits: &[u8]) -> bool {
    if !digits.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let impb = match digits.len() {
        30 | 34 if digits.starts_with(b"420") => &digits[digits.len() - 22..],
        _ => digits,
    };
    let shape = match impb.len() {
        22 => impb[0] == b'9',
        20 => matches!(impb[0], b'0' | b'7'),
        _ => false,
    };
    shape && gs1_valid(impb)
}

/// The GS1 mod-10 check: weights 3 and 1 from the rightmost digit before the check digit.
fn gs1_valid(digits: &[u8]) -> bool {
    let Some((&check, payload)) = digits.split_last() else { return false };
    let sum: u32 = payload
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| u32::from(d - b'0') * if i % 2 == 0 { 3 } else { 1 })
        .sum();
    (10 - sum % 10) % 10 == u32::from(check - b'0')
}

/// What a field or key name says its value is: `ssn`, `customer_ssn`,
/// `social_security_number` are SSNs; `pan`, `card`, `cardNumber`, `cc_number` card
/// numbers; `iban` an IBAN (any case, `_`, `-` and `.` ignored).
///
/// # Examples
///
/// ```
/// use lift::sensitive::{field_kind, Kind};
/// assert_eq!(field_kind("applicant.ssn"), Some(Kind::Ssn));
/// assert_eq!(field_kind("cardNumber"), Some(Kind::Pan));
/// assert_eq!(field_kind("classname"), None);
/// assert_eq!(field_kind("card_brand"), None);
/// ```
pub fn field_kind(name: &str) -> Option<Kind> {
    const LONG: &[(&[u8], Kind)] = &[
        (b"cardnumber", Kind::Pan),
        (b"cardno", Kind::Pan),
        (b"ccnumber", Kind::Pan),
        (b"ccnum", Kind::Pan),
        (b"creditcard", Kind::Pan),
        (b"primaryaccountnumber", Kind::Pan),
        (b"socialsecuritynumber", Kind::Ssn),
        (b"socialsecurityno", Kind::Ssn),
    ];
    const WORDS: &[(&[u8], Kind)] =
        &[(b"pan", Kind::Pan), (b"card", Kind::Pan), (b"ssn", Kind::Ssn), (b"iban", Kind::Iban)];
    let b = name.as_bytes();
    // The last word: after the last `_`, `-`, `.` or lower-to-upper case change.
    let mut word = 0;
    for i in 1..b.len() {
        if matches!(b[i - 1], b'_' | b'-' | b'.')
            || (b[i - 1].is_ascii_lowercase() && b[i].is_ascii_uppercase())
        {
            word = i;
        }
    }
    let last = &b[word..];
    if let Some(&(_, kind)) = WORDS.iter().find(|(w, _)| last.eq_ignore_ascii_case(w)) {
        return Some(kind);
    }
    let mut buf = [0u8; 64];
    let mut n = 0;
    for &c in b.iter().rev() {
        if matches!(c, b'_' | b'-' | b'.') {
            continue;
        }
        if n == buf.len() {
            break;
        }
        buf[n] = c.to_ascii_lowercase();
        n += 1;
    }
    // `buf` holds the normalised name reversed: compare its ends.
    let rev = &buf[..n];
    LONG.iter()
        .find(|(w, _)| w.len() <= rev.len() && w.iter().rev().zip(rev).all(|(a, b)| a == b))
        .map(|(_, kind)| *kind)
}

/// Every card number, SSN and IBAN in `text`, in order; overlapping finds are one span.
pub fn find(text: &str) -> Vec<Span> {
    let mut out = Vec::new();
    find_into(text, &mut out);
    out
}

/// [`find`] into `out` (cleared first), so callers can reuse one buffer; nothing is
/// allocated when nothing is found.
pub fn find_into(text: &str, out: &mut Vec<Span>) {
    out.clear();
    let b = text.as_bytes();
    let mut scanner = Scanner::new(b);
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        i = if c.is_ascii_digit() {
            scanner.chain(i, out)
        } else if c.is_ascii_uppercase() {
            scanner.iban(i, out).unwrap_or(i + 1)
        } else {
            i + 1
        };
    }
}

fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// A group of digits in a chain: its bytes and the separator before it (0 for none).
#[derive(Debug, Clone, Copy, Default)]
struct Group {
    start: usize,
    end: usize,
    sep: u8,
}

impl Group {
    fn len(&self) -> usize {
        self.end - self.start
    }
}

/// The groups a window can reach back over: each has a digit, a window at most 19.
const GROUPS: usize = MAX_PAN + 1;

/// The scanner's state over one text: the last word and hex-dash run it looked at, so
/// that each is examined once however many digit groups it holds.
#[derive(Debug)]
pub(crate) struct Scanner<'a> {
    b: &'a [u8],
    /// The last word (`[A-Za-z0-9_]+`) looked at, and the hex token inside it if any.
    word: std::ops::Range<usize>,
    hex: std::ops::Range<usize>,
    /// The last run of hex digits and dashes looked at, and whether it is a UUID.
    run: std::ops::Range<usize>,
    uuid: bool,
}

impl<'a> Scanner<'a> {
    /// A scanner over `b`.
    pub(crate) fn new(b: &'a [u8]) -> Self {
        Self { b, word: 0..0, hex: 0..0, run: 0..0, uuid: false }
    }

    /// Whether the digit at `pos` belongs to a hex token or a UUID, where digits are no
    /// number.
    fn in_identifier(&mut self, pos: usize) -> bool {
        let b = self.b;
        if !self.word.contains(&pos) {
            let (mut from, mut to) = (pos, pos);
            while from > 0 && is_word(b[from - 1]) {
                from -= 1;
            }
            while to < b.len() && is_word(b[to]) {
                to += 1;
            }
            self.word = from..to;
            // An id like `pay_<hex>` keeps its prefix before the last `_`.
            let hex_from = b[from..to].iter().rposition(|c| *c == b'_').map_or(from, |u| from + u + 1);
            let token = &b[hex_from..to];
            self.hex = if token.len() >= 24
                && token.iter().all(u8::is_ascii_hexdigit)
                && token.iter().any(u8::is_ascii_alphabetic)
            {
                hex_from..to
            } else {
                0..0
            };
        }
        if self.hex.contains(&pos) {
            return true;
        }
        if !self.run.contains(&pos) {
            let hexdash = |c: &u8| c.is_ascii_hexdigit() || *c == b'-';
            let (mut from, mut to) = (pos, pos);
            while from > 0 && hexdash(&b[from - 1]) {
                from -= 1;
            }
            while to < b.len() && hexdash(&b[to]) {
                to += 1;
            }
            self.run = from..to;
            self.uuid = is_uuid(&b[from..to]);
        }
        self.uuid
    }

    /// Scans the chain of digit groups that starts at `start` (a digit after a non-digit),
    /// appends what it holds to `out`, and returns where the chain ends.
    pub(crate) fn chain(&mut self, start: usize, out: &mut Vec<Span>) -> usize {
        let b = self.b;
        // Most chains (amounts, years, dates, times) are too short to hold an SSN (nine
        // digits) or a card number: counted, they cost no more.
        let (end, total) = chain_extent(b, start);
        if total < 9 {
            return end;
        }
        let first_out = out.len();
        let mut groups = [Group::default(); GROUPS];
        let mut n = 0;
        // Digits of the whole chain, and whether it can be a tracking number: every group
        // counted, and written in one piece or in groups of four (the last one shorter).
        let (mut total, mut whole, mut last_len) = (0usize, true, 0usize);
        let mut i = start;
        let mut sep = 0u8;
        loop {
            let from = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            let group = Group { start: from, end: i, sep };
            if self.in_identifier(from) {
                // Windows never reach over an identifier's digits.
                n = 0;
                whole = false;
            } else {
                if n == GROUPS {
                    groups.copy_within(1.., 0);
                    n -= 1;
                }
                groups[n] = group;
                n += 1;
                whole &= last_len == 0 || last_len == 4;
                last_len = group.len();
                total += group.len();
                self.group(&groups[..n], out);
            }
            if i + 1 < b.len() && matches!(b[i], b' ' | b'-') && b[i + 1].is_ascii_digit() {
                sep = b[i];
                i += 1;
            } else {
                break;
            }
        }
        let tracking_shape = whole && (total == last_len || last_len <= 4);
        if out.len() > first_out && tracking_shape && matches!(total, 20 | 22 | 30 | 34) {
            let mut digits = [0u8; 34];
            let mut k = 0;
            for &c in &b[start..i] {
                if c.is_ascii_digit() {
                    digits[k] = c;
                    k += 1;
                }
            }
            if is_tracking_number(&digits[..k]) {
                out.truncate(first_out);
            }
        }
        i
    }

    /// The card numbers and SSNs that end with the last of `groups`.
    fn group(&mut self, groups: &[Group], out: &mut Vec<Span>) {
        let b = self.b;
        let k = groups.len() - 1;
        let last = groups[k];
        if last.len() > MAX_PAN {
            glued_windows(b, last.start, last.end, out);
        }
        // Windows of whole groups ending here.
        let mut buf = [0u8; MAX_PAN];
        let mut digits = 0;
        for j in (0..=k).rev() {
            let g = groups[j];
            digits += g.len();
            if digits > MAX_PAN {
                break;
            }
            if digits >= MIN_PAN && card_layout(&groups[j..=k]) {
                let mut at = 0;
                for h in &groups[j..=k] {
                    buf[at..at + h.len()].copy_from_slice(&b[h.start..h.end]);
                    at += h.len();
                }
                if is_pan_digits(&buf[..digits]) {
                    push(out, Span { kind: Kind::Pan, start: g.start, end: last.end });
                }
            }
        }
        if k >= 2 {
            let (area, group, serial) = (groups[k - 2], groups[k - 1], groups[k]);
            let shape = (area.len(), group.len(), serial.len()) == (3, 2, 4)
                && group.sep == serial.sep
                && matches!(serial.sep, b'-' | b' ');
            // `978-612-34-5678-9` is an ISBN, not an SSN after a prefix; `612-15-0555-6` an
            // ISBN-10 when its last digit checks.
            let isbn = || {
                serial.sep == b'-'
                    && ((area.sep == b'-'
                        && k >= 3
                        && matches!(&b[groups[k - 3].start..groups[k - 3].end], b"978" | b"979"))
                        || isbn10_after(b, area.start, serial.end))
            };
            if shape && !isbn() {
                let mut d = [0u8; 9];
                d[..3].copy_from_slice(&b[area.start..area.end]);
                d[3..5].copy_from_slice(&b[group.start..group.end]);
                d[5..].copy_from_slice(&b[serial.start..serial.end]);
                if is_ssn_digits(&d) {
                    push(out, Span { kind: Kind::Ssn, start: area.start, end: serial.end });
                }
            }
        }
    }

    /// An IBAN that starts at `start` (an upper-case letter): appended to `out`, and where
    /// it ends returned.
    pub(crate) fn iban(&mut self, start: usize, out: &mut Vec<Span>) -> Option<usize> {
        let b = self.b;
        if (start > 0 && is_word(b[start - 1])) || start + 4 > b.len() {
            return None;
        }
        let head = &b[start..start + 4];
        if !(head[1].is_ascii_uppercase() && head[2].is_ascii_digit() && head[3].is_ascii_digit()) {
            return None;
        }
        let len = iban_length(&head[..2])?;
        let mut buf = [0u8; MAX_IBAN];
        let (mut n, mut i) = (0, start);
        while n < len {
            let c = *b.get(i)?;
            if c.is_ascii_digit() || c.is_ascii_uppercase() {
                buf[n] = c;
                n += 1;
            } else if !(c == b' ' && b.get(i + 1).is_some_and(u8::is_ascii_alphanumeric)) {
                return None;
            }
            i += 1;
        }
        if b.get(i).is_some_and(|c| is_word(*c)) || !iban_check(&buf[..len]) {
            return None;
        }
        out.push(Span { kind: Kind::Iban, start, end: i });
        Some(i)
    }
}

/// Whether groups are written as people write card numbers: in one piece, or from a group
/// of four (the issuer's digits) on in groups of at most six (4-4-4-4, 4-6-5, 4-4-4-4-3),
/// with one kind of separator. An SSN beside a date (`673-75-6059 2024-01`) is none.
fn card_layout(groups: &[Group]) -> bool {
    groups.len() == 1
        || (groups[0].len() == 4 && groups[1..].iter().all(|g| g.sep == groups[1].sep && g.len() <= 6))
}

/// Whether the dashed SSN shape `b[start..end]` is followed by `-` and a check digit (or
/// `X`) that make it an ISBN-10.
fn isbn10_after(b: &[u8], start: usize, end: usize) -> bool {
    let (Some(b'-'), Some(&check)) = (b.get(end), b.get(end + 1)) else { return false };
    if !(check.is_ascii_digit() || check == b'X') || b.get(end + 2).is_some_and(|c| is_word(*c)) {
        return false;
    }
    let digits = b[start..end].iter().filter(|c| c.is_ascii_digit());
    let sum: u32 = digits.enumerate().map(|(i, d)| u32::from(d - b'0') * (10 - i as u32)).sum();
    let check = if check == b'X' { 10 } else { u32::from(check - b'0') };
    (sum + check) % 11 == 0
}

/// Where the chain that starts at `start` ends, and how many digits it has.
pub(crate) fn chain_extent(b: &[u8], start: usize) -> (usize, usize) {
    let (mut i, mut digits) = (start, 0);
    loop {
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
            digits += 1;
        }
        if i + 1 < b.len() && matches!(b[i], b' ' | b'-') && b[i + 1].is_ascii_digit() {
            i += 1;
        } else {
            return (i, digits);
        }
    }
}

/// Every card number inside a group of more than 19 digits, `b[start..end]`.
fn glued_windows(b: &[u8], start: usize, end: usize, out: &mut Vec<Span>) {
    for e in start + MIN_PAN..=end {
        // The Luhn sums of the windows ending at `e`, longest 19.
        let mut sum = 0;
        for len in 1..=MAX_PAN.min(e - start) {
            let d = usize::from(b[e - len] - b'0');
            sum += if len % 2 == 0 { DOUBLED[d] } else { d as u32 };
            if len >= MIN_PAN && sum % 10 == 0 && card_brand(&b[e - len..e]).is_some() {
                push(out, Span { kind: Kind::Pan, start: e - len, end: e });
            }
        }
    }
}

/// Appends a span, merged with the spans it overlaps (spans come in order of their ends).
fn push(out: &mut Vec<Span>, mut span: Span) {
    while let Some(last) = out.last() {
        if span.start >= last.end {
            break;
        }
        span.start = span.start.min(last.start);
        span.end = span.end.max(last.end);
        if last.kind == Kind::Pan {
            span.kind = Kind::Pan;
        }
        out.pop();
    }
    out.push(span);
}

/// A UUID in its canonical form: 8-4-4-4-12 hex digits.
fn is_uuid(b: &[u8]) -> bool {
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| {
            if matches!(i, 8 | 13 | 18 | 23) {
                *c == b'-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(text: &str) -> Vec<(Kind, &str)> {
        find(text).into_iter().map(|s| (s.kind, &text[s.start..s.end])).collect()
    }

    #[test]
    fn every_card_number_beside_other_digits() {
        assert_eq!(found("id 20240115093000123 4012888888881881"), [(Kind::Pan, "4012888888881881")]);
        assert_eq!(found("ref 12 4111 1111 1111 1111 2024"), [(Kind::Pan, "4111 1111 1111 1111")]);
        // Glued: the whole card number is covered, whatever windows overlap it.
        let glued = "x 202401150930001234012888888881881 y";
        let spans = find(glued);
        let at = glued.find("4012888888881881").unwrap();
        assert!(spans.iter().any(|s| s.start <= at && s.end >= at + 16), "{spans:?}");
        // Two card numbers in one chain are two spans.
        assert_eq!(found("4111111111111111 5555555555554444").len(), 2);
    }

    #[test]
    fn ssns_beside_other_digits() {
        assert_eq!(found("applicant 673-75-6059 2024-01-15 approved"), [(Kind::Ssn, "673-75-6059")]);
        assert_eq!(found("2024 673 75 6059 17"), [(Kind::Ssn, "673 75 6059")]);
        assert!(found("673-75 6059").is_empty(), "mixed separators");
        assert!(found("978-612-34-5678-9").is_empty(), "an ISBN");
        assert!(found("666-12-3456 900-12-3456 123-00-4567 123-45-0000").is_empty());
    }

    #[test]
    fn ibans_in_free_text() {
        assert_eq!(
            found("wire to DE89 3704 0044 0532 0130 00."),
            [(Kind::Iban, "DE89 3704 0044 0532 0130 00")]
        );
        assert_eq!(found("iban:GB82WEST12345698765432"), [(Kind::Iban, "GB82WEST12345698765432")]);
        assert!(found("DE89 3704 0044 0532 0130 01").is_empty(), "mod 97");
        assert!(found("DE89 3704 0044 0532 0130 0012").is_empty(), "too long");
    }

    #[test]
    fn identifiers_hold_no_numbers() {
        for text in [
            "9f86d0814111111111111111a2feaa0c55ad015b",
            "pay_ab4111111111111111cdef0123456789ab",
            "12345678-4111-1111-1111-111111111111",
            "9400 1118 9922 3392 4781 29",
        ] {
            assert!(found(text).is_empty(), "{text}");
        }
        assert_eq!(found("x4111111111111111"), [(Kind::Pan, "4111111111111111")]);
    }

    #[test]
    fn field_names() {
        for (name, kind) in [
            ("ssn", Some(Kind::Ssn)),
            ("customerSsn", Some(Kind::Ssn)),
            ("social_security_number", Some(Kind::Ssn)),
            ("card", Some(Kind::Pan)),
            ("card_number", Some(Kind::Pan)),
            ("payment.pan", Some(Kind::Pan)),
            ("iban", Some(Kind::Iban)),
            ("lessn", None),
            ("panel", None),
            ("discard", None),
        ] {
            assert_eq!(field_kind(name), kind, "{name}");
        }
    }
}
