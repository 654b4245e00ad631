//! A hand-written scanner that redacts card numbers, US SSNs, IBANs and secrets in log text.
//!
//! One left-to-right pass over the bytes; most bytes are skipped by a lookup table, and
//! text with nothing to redact is returned borrowed, without a copy. Card numbers, SSNs
//! and IBANs are found by the crate's one number detector, [`crate::sensitive`], which the
//! masker of `security::protection` uses too.

use std::borrow::Cow;

use crate::sensitive::{chain_extent, field_kind, Kind, Scanner, Span};

/// What a redaction marker stands for.
///
/// # Examples
///
/// ```
/// use lift::middleware::logging::Redaction;
/// assert_eq!(Redaction::Pan.marker(), "[REDACTED:pan]");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Redaction {
    /// A payment card number (12–19 digits of a known issuer range that pass the Luhn check).
    Pan,
    /// A US social security number (`ddd-dd-dddd` or `ddd dd dddd` with a valid area, group
    /// and serial, or the digits of a field named `ssn`).
    Ssn,
    /// An international bank account number.
    Iban,
    /// A value of a secret-named field or key (`password=...`).
    Secret,
    /// The token after `Bearer`.
    Bearer,
    /// An AWS access key id (`AKIA...` or `ASIA...`).
    AwsKey,
    /// A JSON Web Token (`eyJ...` in three dot-separated parts).
    Jwt,
    /// An email address (`local@host.tld`), personal data under GDPR.
    Email,
}

impl Redaction {
    /// The text that replaces the redacted value.
    pub fn marker(self) -> &'static str {
        match self {
            Redaction::Pan => "[REDACTED:pan]",
            Redaction::Ssn => "[REDACTED:ssn]",
            Redaction::Iban => "[REDACTED:iban]",
            Redaction::Secret => "[REDACTED:secret]",
            Redaction::Bearer => "[REDACTED:bearer]",
            Redaction::AwsKey => "[REDACTED:aws_key]",
            Redaction::Jwt => "[REDACTED:jwt]",
            Redaction::Email => "[REDACTED:email]",
        }
    }
}

/// Replaces card numbers, SSNs, IBANs, bearer tokens, AWS access key ids, JWTs, the values
/// of secret-named keys (`password=...`, `"api_key": "..."`), the digits under keys
/// named for card numbers or SSNs (`"ssn": "673756059"`) and email addresses in `text`.
///
/// What counts as a card number, an SSN or an IBAN is [`crate::sensitive`]'s rule: issuer
/// range, length and Luhn for card numbers, alone, grouped, or beside or glued to other
/// digits; digits inside hex digests, UUIDs and USPS tracking numbers are none.
///
/// An email address is `local@host.tld` whose last label starts with a letter, replaced
/// whole by `[REDACTED:email]`, as [`scrub_path`] masks it. A host without a dot
/// (`user@localhost`, `a@b`) is a local account or code, not an Internet address, and is
/// kept, as are handles (`@ada`), versions (`pkg@1.2.3`) and IP addresses (`ec2-user@10.0.0.1`).
/// Text without `@` is not looked at for addresses.
///
/// # Examples
///
/// ```
/// use lift::middleware::logging::scrub;
/// assert_eq!(scrub("card 4111-1111-1111-1111 ok"), "card [REDACTED:pan] ok");
/// assert_eq!(scrub("ssn 078-05-1120"), "ssn [REDACTED:ssn]");
/// assert_eq!(scrub("db password=hunter2 up"), "db password=[REDACTED:secret] up");
/// assert_eq!(scrub("sent to ada@example.com"), "sent to [REDACTED:email]");
/// assert_eq!(scrub("upgraded serde@1.0.210"), "upgraded serde@1.0.210");
/// assert!(matches!(scrub("nothing here"), std::borrow::Cow::Borrowed(_)));
/// ```
pub fn scrub(text: &str) -> Cow<'_, str> {
    let b = text.as_bytes();
    if (is_uuid(b) || is_trace_id(b)) && longest_digit_run(b) < 9 {
        // The request and trace ids on every line, most of them: the scanner would find
        // nothing. Runs of fewer than 9 digits are neither an SSN nor a card number, the
        // letters are hex (no `AKIA`, `eyJ` or `Bearer`), and there is no `=` or `:`.
        return Cow::Borrowed(text);
    }
    let scanned = scan(text);
    // One pass: text without `@` (or a `%40` standing for one) is looked at no more.
    let Some(at) = first_at_sign(b) else { return scanned };
    // Addresses after numbers and secrets, so that a card number glued to an address
    // (`4111 1111 1111 1111@bank.example`) is seen whole by the number detector; no marker
    // holds an `@`, so what the scanner redacted cannot read as an address.
    match scanned {
        Cow::Borrowed(text) => mask_emails_from(text, at),
        Cow::Owned(text) => match mask_emails(&text) {
            Cow::Borrowed(_) => Cow::Owned(text),
            Cow::Owned(masked) => Cow::Owned(masked),
        },
    }
}

/// The offset of the first `@`, or `%40` standing for one, in `b`: one pass over its bytes,
/// a `%` not followed by `40` passed over.
fn first_at_sign(b: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(p) = find_at_or_percent(&b[from..]).map(|p| from + p) {
        if b[p] == b'@' || b[p + 1..].starts_with(b"40") {
            return Some(p);
        }
        from = p + 1;
    }
    None
}

/// The offset of the first `@` or `%` in `b`. Blocks of 16 bytes are tested whole, without
/// a branch per byte, which the compiler turns into vector compares: over a log line with
/// neither, at least as fast as two `memchr`-style searches, one for `@` and one for `%40`
/// (wider blocks are slower).
fn find_at_or_percent(b: &[u8]) -> Option<usize> {
    const BLOCK: usize = 16;
    let mut start = 0;
    for block in b.chunks_exact(BLOCK) {
        if block.iter().fold(false, |hit, &c| hit | (c == b'@') | (c == b'%')) {
            break;
        }
        start += BLOCK;
    }
    b[start..].iter().position(|&c| c == b'@' || c == b'%').map(|p| start + p)
}

/// The scanner behind [`scrub`].
fn scan(text: &str) -> Cow<'_, str> {
    let b = text.as_bytes();
    let mut out = Out { src: text, buf: None, last: 0 };
    let mut numbers = Scanner::new(b);
    let mut spans = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if !INTERESTING[c as usize] {
            i += 1;
            continue;
        }
        let next = match c {
            b'0'..=b'9' => {
                let end = numbers.chain(i, &mut spans);
                out.replace_spans(&mut spans);
                Some(end)
            }
            b'A'..=b'Z' => match numbers.iban(i, &mut spans) {
                Some(end) => {
                    out.replace_spans(&mut spans);
                    Some(end)
                }
                None if c == b'A' => aws_key(b, i, &mut out),
                None if c == b'B' => bearer(b, i, &mut out),
                None => None,
            },
            b'e' => jwt(b, i, &mut out),
            b'b' => bearer(b, i, &mut out),
            b's' | b'g' => vendor_token(b, i, &mut out),
            b'-' => pem(b, i).inspect(|end| out.replace(i, *end, Redaction::Secret)),
            b'=' | b':' => key_value(b, i, &mut out),
            _ => None,
        };
        i = next.unwrap_or(i + 1);
    }
    out.finish()
}

/// A UUID in its canonical form: 8-4-4-4-12 hex digits.
fn is_uuid(b: &[u8]) -> bool {
    b.len() == 36 && hex_groups(b, &[8, 13, 18, 23])
}

/// An X-Ray trace id: `1-` then 8 and 24 hex digits.
fn is_trace_id(b: &[u8]) -> bool {
    b.len() == 35 && b.starts_with(b"1-") && hex_groups(&b[2..], &[8])
}

/// The most digits in a run of digit groups joined by dashes, as the scanner counts them.
fn longest_digit_run(b: &[u8]) -> usize {
    let (mut run, mut longest) = (0, 0);
    for c in b {
        if c.is_ascii_digit() {
            run += 1;
            longest = longest.max(run);
        } else if *c != b'-' {
            run = 0;
        }
    }
    longest
}

/// Hex digits, with dashes exactly at `dashes`.
fn hex_groups(b: &[u8], dashes: &[usize]) -> bool {
    b.iter().enumerate().all(|(i, c)| if dashes.contains(&i) { *c == b'-' } else { c.is_ascii_hexdigit() })
}

/// Whether a field or key name says its value is secret (`password`, `api_key`,
/// `Authorization`, `client_secret`, `cvv`, `private_key`, `passphrase`, `passcode`...),
/// case-insensitively; the short `pin` and `pwd` only as whole words (`user_pin`,
/// `userPin`, not `spinner` or `pinned`). One-time and verification codes by their last
/// words: `otp`, `totp`, `hotp`, or `code` after a word that makes it a credential
/// (`pin_code`, `otp_code`, `verification_code`, `mfa_code`, `auth_code`, `one_time_code`,
/// `security_code`, `sms_code`, `access_code`), not after any other (`zip_code`,
/// `country_code`, `status_code`, `promo_code`, `area_code`), nor when more words follow
/// (`otp_attempts`), but for qualifiers such as `new` or `confirm` (`otp_code_confirm`).
///
/// A name with `token` in it is a secret's name, even one for a count of tokens
/// (`tokens_used`, `max_tokens`): the name alone cannot tell a count from a token.
/// [`scrub`] and the log format keep a plain count under such a name and redact any other
/// value.
///
/// # Examples
///
/// ```
/// use lift::middleware::logging::is_secret_name;
/// assert!(is_secret_name("db_password") && is_secret_name("X-Api-Key") && is_secret_name("Authorization"));
/// assert!(is_secret_name("otp_code") && is_secret_name("verificationCode") && is_secret_name("sms_code"));
/// assert!(!is_secret_name("tenant") && !is_secret_name("zip_code") && !is_secret_name("area_code"));
/// ```
pub fn is_secret_name(name: &str) -> bool {
    key_rule(name.as_bytes()) != KeyRule::Plain
}

/// What a field or key name says of its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyRule {
    /// Nothing: the value is scrubbed as any text.
    Plain,
    /// A secret's name (see [`is_secret_name`]): the value is redacted whole.
    Secret,
    /// A count of tokens (`tokens_used`, `max_tokens`, see [`counts_tokens`]): a plain
    /// count ([`is_plain_count`]) is kept, any other value redacted as a secret's.
    TokenCount,
}

/// Words that make a name with `token` or `tokens` in it a count's (`tokens_used`,
/// `token_count`, `max_tokens`, `tokens_remaining`).
const COUNT_WORDS: [&[u8]; 12] = [
    b"count",
    b"used",
    b"remaining",
    b"left",
    b"max",
    b"min",
    b"limit",
    b"total",
    b"num",
    b"number",
    b"usage",
    b"spent",
];

/// Words that make a name ending in the plural `tokens` a count's: the parts of a language
/// model's usage (`prompt_tokens`, `completion_tokens`, `input_tokens`).
const USAGE_WORDS: [&[u8]; 6] = [b"prompt", b"completion", b"input", b"output", b"cached", b"reasoning"];

/// Whether a name with `token` in it names a count of tokens: every `token` in it is the
/// whole word `token` or `tokens` (`csrftoken_count` names a token), beside one of
/// [`COUNT_WORDS`], or the last word is `tokens` after one of [`USAGE_WORDS`]. `tokens`
/// alone is a list of tokens as often as a number of them: no count's name.
fn counts_tokens(n: &[u8]) -> bool {
    let is_one = |w: &[u8], list: &[&[u8]]| list.iter().any(|k| w.eq_ignore_ascii_case(k));
    let occurrences = n.windows(5).filter(|w| w.eq_ignore_ascii_case(b"token")).count();
    let (mut token_words, mut count, mut before, mut last): (usize, bool, &[u8], &[u8]) =
        (0, false, b"", b"");
    for w in words(n) {
        if w.eq_ignore_ascii_case(b"token") || w.eq_ignore_ascii_case(b"tokens") {
            token_words += 1;
        }
        count |= is_one(w, &COUNT_WORDS);
        (before, last) = (last, w);
    }
    let usage = last.eq_ignore_ascii_case(b"tokens") && is_one(before, &USAGE_WORDS);
    token_words == occurrences && (count || usage)
}

/// A plain count, as a count of tokens is written: one to nine decimal digits, without a
/// leading zero (a PIN or a one-time code may have one). Longer numbers, signs, decimals
/// and anything else under a count's name are redacted: they may be credentials.
pub(crate) fn is_plain_count(value: &[u8]) -> bool {
    value == b"0"
        || (!value.is_empty() && value.len() <= 9 && value[0] != b'0' && value.iter().all(u8::is_ascii_digit))
}

/// Words before `code` that make it a credential: a card's security code, a PIN, a one-time,
/// second-factor, verification, authorization (OAuth's), access, confirmation, activation,
/// recovery or backup code, or one sent by SMS. The same list as `security::protection`'s
/// classification (a test holds the two to the same answers).
const CODE_KINDS: [&[u8]; 21] = [
    b"security",
    b"card",
    b"pin",
    b"otp",
    b"totp",
    b"hotp",
    b"mfa",
    b"factor",
    b"verification",
    b"verify",
    b"auth",
    b"authentication",
    b"authorization",
    b"onetime",
    b"recovery",
    b"backup",
    b"reset",
    b"sms",
    b"access",
    b"confirmation",
    b"activation",
];

/// Words that name a one-time password on their own.
const ONE_TIME_WORDS: [&[u8]; 3] = [b"otp", b"totp", b"hotp"];

/// Words that may follow a secret's name without changing what the value is
/// (`otp_code_confirm`, `pin_code_new`).
const QUALIFIERS: [&[u8]; 10] = [
    b"confirm",
    b"confirmation",
    b"again",
    b"repeat",
    b"new",
    b"old",
    b"current",
    b"plain",
    b"plaintext",
    b"value",
];

/// Whether the last words of a key name (qualifiers aside) name a one-time password or a
/// credential's code (see [`is_secret_name`]).
fn names_a_code(n: &[u8]) -> bool {
    // Most keys hold neither: skip the split.
    let has = |needle: &[u8]| n.windows(needle.len()).any(|w| w.eq_ignore_ascii_case(needle));
    if !has(b"code") && !has(b"otp") {
        return false;
    }
    let is_one = |w: &[u8], list: &[&[u8]]| list.iter().any(|k| w.eq_ignore_ascii_case(k));
    let (mut second_last, mut before, mut last): (&[u8], &[u8], &[u8]) = (b"", b"", b"");
    for w in words(n) {
        if last.is_empty() || !is_one(w, &QUALIFIERS) {
            (second_last, before, last) = (before, last, w);
        }
    }
    is_one(last, &ONE_TIME_WORDS)
        || (last.eq_ignore_ascii_case(b"code")
            && (is_one(before, &CODE_KINDS)
                || (before.eq_ignore_ascii_case(b"time") && second_last.eq_ignore_ascii_case(b"one"))))
}

/// The [`KeyRule`] of a key name: `token` anywhere in it makes it a secret's name, but for
/// a count of tokens ([`counts_tokens`]).
pub(crate) fn key_rule(n: &[u8]) -> KeyRule {
    if is_secret_key(n) {
        KeyRule::Secret
    } else if !n.windows(5).any(|w| w.eq_ignore_ascii_case(b"token")) {
        KeyRule::Plain
    } else if counts_tokens(n) {
        KeyRule::TokenCount
    } else {
        KeyRule::Secret
    }
}

/// Whether a key name is a secret's by any word but `token` (see [`key_rule`]).
fn is_secret_key(n: &[u8]) -> bool {
    const KEYWORDS: [&[u8]; 17] = [
        b"password",
        b"passwd",
        b"passphrase",
        b"passcode",
        b"private_key",
        b"private-key",
        b"privatekey",
        b"secret",
        b"api_key",
        b"apikey",
        b"api-key",
        b"authorization",
        b"credential",
        b"signature",
        b"cookie",
        b"cvv",
        b"cvc",
    ];
    (0..n.len()).any(|start| {
        let first = n[start].to_ascii_lowercase();
        matches!(first, b'p' | b's' | b'a' | b'c')
            && KEYWORDS.iter().any(|k| {
                k[0] == first
                    && n.len() - start >= k.len()
                    && n[start..start + k.len()].eq_ignore_ascii_case(k)
            })
    }) || words(n).any(|w| w.eq_ignore_ascii_case(b"pin") || w.eq_ignore_ascii_case(b"pwd"))
        || names_a_code(n)
}

/// The words of a key name: split at bytes other than ASCII letters and digits, where a
/// lowercase letter meets an uppercase one (`userPin`) and before the last capital of a
/// run followed by a lowercase letter (`OTPCode`), trailing digits dropped (`pin2`).
fn words(n: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut start = 0;
    (0..=n.len()).filter_map(move |i| {
        let boundary = i == n.len()
            || !n[i].is_ascii_alphanumeric()
            || (i > 0 && n[i - 1].is_ascii_lowercase() && n[i].is_ascii_uppercase())
            || (i > 0
                && n[i - 1].is_ascii_uppercase()
                && n[i].is_ascii_uppercase()
                && n.get(i + 1).is_some_and(u8::is_ascii_lowercase));
        if !boundary {
            return None;
        }
        let word = &n[start.min(i)..i];
        start = if i < n.len() && n[i].is_ascii_alphanumeric() { i } else { i + 1 };
        let len = word.len() - word.iter().rev().take_while(|c| c.is_ascii_digit()).count();
        (len > 0).then(|| &word[..len])
    })
}

/// Bytes that may start something to redact.
static INTERESTING: [bool; 256] = {
    let mut t = [false; 256];
    let mut d = b'0';
    while d <= b'9' {
        t[d as usize] = true;
        d += 1;
    }
    // Upper-case letters start IBANs, `AKIA` and `Bearer`.
    let mut c = b'A';
    while c <= b'Z' {
        t[c as usize] = true;
        c += 1;
    }
    t[b'e' as usize] = true;
    t[b'b' as usize] = true;
    // `sk_live_`, `ghp_` and the `-----BEGIN` of a PEM key.
    t[b's' as usize] = true;
    t[b'g' as usize] = true;
    t[b'-' as usize] = true;
    t[b'=' as usize] = true;
    t[b':' as usize] = true;
    t
};

/// The scrubbed output, built only once something is redacted.
struct Out<'a> {
    src: &'a str,
    buf: Option<String>,
    last: usize,
}

impl<'a> Out<'a> {
    /// Replaces `src[start..end]` (ASCII-bounded, `start >= last`) with the marker.
    fn replace(&mut self, start: usize, end: usize, what: Redaction) {
        let buf = self.buf.get_or_insert_with(|| String::with_capacity(self.src.len() + 16));
        buf.push_str(&self.src[self.last..start]);
        buf.push_str(what.marker());
        self.last = end;
    }

    /// Replaces the spans the number detector found (in order, past `last`), and clears them.
    fn replace_spans(&mut self, spans: &mut Vec<Span>) {
        for span in spans.drain(..) {
            self.replace(span.start, span.end, redaction(span.kind));
        }
    }

    fn finish(self) -> Cow<'a, str> {
        match self.buf {
            None => Cow::Borrowed(self.src),
            Some(mut buf) => {
                buf.push_str(&self.src[self.last..]);
                Cow::Owned(buf)
            }
        }
    }
}

/// The marker of what the number detector found.
fn redaction(kind: Kind) -> Redaction {
    match kind {
        Kind::Pan => Redaction::Pan,
        Kind::Ssn => Redaction::Ssn,
        _ => Redaction::Iban,
    }
}

/// A redacted value that starts a digit run covers the whole run, so that a grouped card
/// number after `token:` or `Bearer` is not cut after its first group.
fn cover_digit_run(b: &[u8], start: usize, end: usize) -> usize {
    if start < b.len() && b[start].is_ascii_digit() {
        end.max(chain_extent(b, start).0)
    } else {
        end
    }
}

fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// `AKIA` or `ASIA` and 16 more upper-case letters or digits.
fn aws_key(b: &[u8], i: usize, out: &mut Out<'_>) -> Option<usize> {
    let end = i + 20;
    if end > b.len()
        || (i > 0 && is_word(b[i - 1]))
        || !(b[i..].starts_with(b"AKIA") || b[i..].starts_with(b"ASIA"))
    {
        return None;
    }
    if !b[i + 4..end].iter().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()) {
        return None;
    }
    if end < b.len() && is_word(b[end]) {
        return None;
    }
    out.replace(i, end, Redaction::AwsKey);
    Some(end)
}

fn is_b64url(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'-'
}

/// `eyJ...` then `.` and a payload, then `.` and a (possibly empty) signature.
fn jwt(b: &[u8], i: usize, out: &mut Out<'_>) -> Option<usize> {
    if !b[i..].starts_with(b"eyJ") || (i > 0 && (is_b64url(b[i - 1]) || b[i - 1] == b'.')) {
        return None;
    }
    let part = |from: usize| from + b[from..].iter().take_while(|c| is_b64url(**c)).count();
    let header_end = part(i);
    if header_end - i < 10 || b.get(header_end) != Some(&b'.') {
        return None;
    }
    let payload_end = part(header_end + 1);
    if payload_end - header_end - 1 < 2 || b.get(payload_end) != Some(&b'.') {
        return None;
    }
    let end = part(payload_end + 1);
    out.replace(i, end, Redaction::Jwt);
    Some(end)
}

/// A Stripe secret key (`sk_live_`, `sk_test_` and 16 or more letters or digits) or a
/// GitHub token (`ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_` and 36 letters or digits), as the
/// masker of `security::protection` finds them.
fn vendor_token(b: &[u8], i: usize, out: &mut Out<'_>) -> Option<usize> {
    if i > 0 && is_word(b[i - 1]) {
        return None;
    }
    let rest = &b[i..];
    let (prefix, min, max) = if rest.starts_with(b"sk_live_") || rest.starts_with(b"sk_test_") {
        (8, 16, usize::MAX)
    } else if rest.len() > 4 && rest.starts_with(b"gh") && b"pousr".contains(&rest[2]) && rest[3] == b'_' {
        (4, 36, 36)
    } else {
        return None;
    };
    let len = rest[prefix..].iter().take_while(|c| c.is_ascii_alphanumeric()).count();
    let end = i + prefix + len;
    if len < min || len > max || b.get(end).is_some_and(|c| is_word(*c)) {
        return None;
    }
    out.replace(i, end, Redaction::Secret);
    Some(end)
}

/// The end of a PEM private key starting at `i` (`-----BEGIN ... PRIVATE KEY-----`): past
/// its `-----END ...-----` marker, or the end of the text when it has none (a cut line
/// still hides the rest of the key).
fn pem(b: &[u8], i: usize) -> Option<usize> {
    const BEGIN: &[u8] = b"-----BEGIN ";
    if !b[i..].starts_with(BEGIN) {
        return None;
    }
    let label_start = i + BEGIN.len();
    let label_len = find(&b[label_start..], b"-----")?;
    let label = &b[label_start..label_start + label_len];
    if !label.ends_with(b"PRIVATE KEY") || label.len() > 64 {
        return None;
    }
    let body = label_start + label_len + 5;
    let Some(end_at) = find(&b[body..], b"-----END").map(|at| body + at) else { return Some(b.len()) };
    let marker = end_at + 8;
    Some(find(&b[marker..], b"-----").map_or(b.len(), |at| marker + at + 5))
}

/// The offset of the first `needle` in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn is_token_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=')
}

/// `Bearer <token>` (any case): the token is redacted, the scheme kept.
fn bearer(b: &[u8], i: usize, out: &mut Out<'_>) -> Option<usize> {
    if i + 7 > b.len() || (i > 0 && is_word(b[i - 1])) || !b[i..i + 6].eq_ignore_ascii_case(b"bearer") {
        return None;
    }
    let mut t = i + 6;
    let spaces = b[t..].iter().take_while(|c| **c == b' ').count();
    if spaces == 0 {
        return None;
    }
    t += spaces;
    let end = cover_digit_run(b, t, t + b[t..].iter().take_while(|c| is_token_char(**c)).count());
    if end == t {
        return None;
    }
    out.replace(t, end, Redaction::Bearer);
    Some(end)
}

/// At `=` or `:`: when the key before it is secret-named, redacts the value after it.
fn key_value(b: &[u8], i: usize, out: &mut Out<'_>) -> Option<usize> {
    // The key: back over spaces and one closing quote, then over name characters.
    let mut k = i;
    while k > 0 && b[k - 1] == b' ' && i - k < 4 {
        k -= 1;
    }
    if k > 0 && matches!(b[k - 1], b'"' | b'\'') {
        k -= 1;
    }
    let key_end = k;
    while k > 0 && (is_word(b[k - 1]) || b[k - 1] == b'-' || b[k - 1] == b'.') && key_end - k < 64 {
        k -= 1;
    }
    if k == key_end {
        return None;
    }
    let key = &b[k..key_end];
    // A secret-named key loses its value; a key named for a card number or an SSN loses
    // its digits, when there are as many as such a number has (`"ssn": 673756059`).
    let rule = key_rule(key);
    let (what, min_digits) = if rule != KeyRule::Plain {
        (Redaction::Secret, 0)
    } else {
        match std::str::from_utf8(key).ok().and_then(field_kind)? {
            Kind::Pan => (Redaction::Pan, 12),
            Kind::Ssn => (Redaction::Ssn, 9),
            _ => (Redaction::Iban, 8),
        }
    };
    // The value: after spaces, quoted up to the closing quote, else up to a delimiter.
    let mut v = i + 1;
    while v < b.len() && b[v] == b' ' {
        v += 1;
    }
    // Already redacted (text scrubbed twice, or a `[redacted]` placeholder): kept whole,
    // where redacting it again would leave its closing bracket behind. Only a whole marker
    // ending the value: `[redacted]hunter2` is a value, redacted as any other.
    if already_redacted(&b[v..]) {
        return None;
    }
    let quote = match b.get(v) {
        Some(q @ (b'"' | b'\'')) => {
            v += 1;
            Some(*q)
        }
        _ => None,
    };
    let (v, end) = match quote {
        // Up to the closing quote: an escaped one (`"ab\"cd"`) does not close the value.
        Some(q) => (v, closing_quote(b, v, q)),
        None if b[v..].starts_with(b"-----BEGIN ") => (v, pem(b, v).unwrap_or_else(|| word_end(b, v))),
        None => {
            let word = |from: usize| word_end(b, from);
            // A value that opens with a bracket (`[redacted]hunter2`, `[a]b`) runs past its
            // closing one: it is the whole value, not a word in brackets.
            let first = if b[v..].starts_with(b"[") { bracketed_end(b, v) } else { word(v) };
            // `Authorization: Bearer abc`: the credentials follow the scheme.
            let scheme = &b[v..first];
            if (scheme.eq_ignore_ascii_case(b"bearer") || scheme.eq_ignore_ascii_case(b"basic"))
                && b.get(first) == Some(&b' ')
            {
                (first + 1, cover_digit_run(b, first + 1, word(first + 1)))
            } else {
                (v, cover_digit_run(b, v, first))
            }
        }
    };
    // `tokens=abc,def`: a secret's list runs on past its commas, up to the next `key=`.
    let end = if quote.is_none() && what == Redaction::Secret { list_end(b, end) } else { end };
    if end == v || b[v..end].iter().filter(|c| c.is_ascii_digit()).count() < min_digits {
        return None;
    }
    // `tokens_used=12`: a count of tokens, no token.
    if rule == KeyRule::TokenCount && is_plain_count(&b[v..end]) {
        return None;
    }
    out.replace(v, end, what);
    Some(end)
}

/// The end of an unquoted list of values whose first ends at `end`: past each comma that a
/// value follows at once, unless that value is a `key=value` or `key:value` of its own
/// (`token=abc,tenant=acme` keeps `tenant=acme`). Base64's closing `=` makes no key.
fn list_end(b: &[u8], mut end: usize) -> usize {
    while b.get(end) == Some(&b',') {
        let next = word_end(b, end + 1);
        let item = &b[end + 1..next];
        let keyed = item
            .iter()
            .position(|c| matches!(c, b'=' | b':'))
            .is_some_and(|at| at > 0 && item.get(at + 1).is_some_and(|c| *c != b'='));
        if item.is_empty() || keyed {
            break;
        }
        end = next;
    }
    end
}

/// The end of an unquoted value that opens with `[` at `from`: the first space or
/// delimiter, a `]` that ends the text or comes before one included.
fn bracketed_end(b: &[u8], from: usize) -> usize {
    from + b[from..]
        .iter()
        .take_while(|c| {
            !c.is_ascii_whitespace() && !matches!(c, b',' | b';' | b'&' | b'"' | b'\'' | b')' | b'}')
        })
        .count()
}

/// The end of an unquoted value starting at `from`: the first space or delimiter.
fn word_end(b: &[u8], from: usize) -> usize {
    from + b[from..]
        .iter()
        .take_while(|c| {
            !c.is_ascii_whitespace() && !matches!(c, b',' | b';' | b'&' | b'"' | b'\'' | b')' | b'}' | b']')
        })
        .count()
}

/// The offset of the quote `q` that closes a value starting at `from` (the end of the
/// text when none does); a quote after a backslash is part of the value.
fn closing_quote(b: &[u8], from: usize, q: u8) -> usize {
    let mut i = from;
    while i < b.len() && b[i] != q {
        // A backslash skips the byte after it; `i` stops only on a quote or at the end of
        // the text, both character boundaries.
        i += if b[i] == b'\\' { 2 } else { 1 };
    }
    i.min(b.len())
}

/// `path` with each segment that holds something sensitive replaced, for logs, traces and
/// the audit trail: an email address whole, and what [`scrub`] finds (card numbers, SSNs,
/// IBANs, tokens, secrets) by its marker. Each segment is read percent-decoded, so `%20`
/// between digit groups or `%40` for `@` hides nothing; a masked segment is encoded again,
/// so a line stays one line. Borrowed when nothing is sensitive.
///
/// # Examples
///
/// ```
/// use lift::middleware::logging::scrub_path;
///
/// assert_eq!(scrub_path("/users/ada%40example.com/cards/4111111111111111"), "/users/[REDACTED:email]/cards/[REDACTED:pan]");
/// assert_eq!(scrub_path("/payments/pay_7f3a/refunds"), "/payments/pay_7f3a/refunds");
/// ```
pub fn scrub_path(path: &str) -> Cow<'_, str> {
    // Copied only from the first segment that changes.
    let mut out: Option<String> = None;
    let mut start = 0;
    for segment in path.split('/') {
        match (&mut out, redacted_segment(segment)) {
            (None, None) => {}
            (None, Some(redacted)) => {
                let mut copy = String::with_capacity(path.len() + 16);
                copy.push_str(&path[..start]);
                copy.push_str(&redacted);
                out = Some(copy);
            }
            (Some(copy), redacted) => {
                copy.push('/');
                copy.push_str(redacted.as_deref().unwrap_or(segment));
            }
        }
        start += segment.len() + 1;
    }
    out.map_or(Cow::Borrowed(path), Cow::Owned)
}

/// A path segment as it may be logged, when it differs from the segment: an email address
/// replaced whole, and what [`scrub`] finds (card numbers, SSNs, IBANs, tokens, secrets)
/// replaced by its marker. The segment is read percent-decoded, so that `%20` between
/// digit groups or `%40` for `@` hides nothing.
fn redacted_segment(segment: &str) -> Option<String> {
    match scrub(&percent_decoded(segment)) {
        Cow::Borrowed(_) => None,
        // Decoded text may hold spaces, line breaks or quotes: encoded again, so a plain
        // text subscriber's line stays one line.
        Cow::Owned(scrubbed) => Some(encode_unprintable(&scrubbed)),
    }
}

/// `segment` with its `%XX` escapes decoded; bytes that are not UTF-8 become U+FFFD, which
/// hides no digit from [`scrub`].
fn percent_decoded(segment: &str) -> Cow<'_, str> {
    if !segment.contains('%') {
        return Cow::Borrowed(segment);
    }
    Cow::Owned(String::from_utf8_lossy(&crate::hex::percent_decode_bytes(segment)).into_owned())
}

/// Whether `value` starts with a whole redaction marker (`[redacted]`, `[REDACTED:pan]`)
/// that ends the value: nothing of a word follows its closing bracket.
fn already_redacted(value: &[u8]) -> bool {
    if value.len() < 10 || !value[..9].eq_ignore_ascii_case(b"[redacted") {
        return false;
    }
    let Some(close) = value.iter().position(|&c| c == b']') else { return false };
    let kind = &value[9..close];
    let marker = kind.is_empty()
        || (kind.len() > 1
            && kind[0] == b':'
            && kind[1..].iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_'));
    let word_after = value.get(close + 1).is_some_and(|&c| {
        !c.is_ascii()
            || c.is_ascii_alphanumeric()
            || matches!(c, b'_' | b'-' | b'.' | b'/' | b'+' | b'=' | b':' | b'[')
    });
    marker && !word_after
}

/// `text` with every email address in it (`local@host.tld`) replaced by
/// [`Redaction::Email`]'s marker. An address's host has a dot, and its last label starts
/// with a letter (top-level domains do): a handle (`@ada`), a version (`pkg@1.2.3`), an IP
/// address (`ec2-user@10.0.0.1`) or a host without a dot (`user@localhost`, `a@b`) is no
/// address. Non-ASCII letters belong to the address (`jörg@bücher.example`), so none of
/// it is left beside the marker. An `@` written `%40` (a form body or query string logged
/// as it came) counts as one, and an apostrophe between letters belongs to the local part
/// (`o'neil@example.com`). Borrowed when there is none.
pub(crate) fn mask_emails(text: &str) -> Cow<'_, str> {
    match first_at_sign(text.as_bytes()) {
        Some(at) => mask_emails_from(text, at),
        None => Cow::Borrowed(text),
    }
}

/// [`mask_emails`] of `text` whose first `@` (or `%40`) is at `first`.
fn mask_emails_from(text: &str, first: usize) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    // The `@` of an address at `p`, and its length: `@`, or `%40` in any case.
    let at_sign = |p: usize| match bytes[p] {
        b'@' => Some(1),
        b'%' if bytes.get(p + 1) == Some(&b'4') && bytes.get(p + 2) == Some(&b'0') => Some(3),
        _ => None,
    };
    // Bytes past ASCII are parts of UTF-8 letters; each run ends at a character boundary.
    let local =
        |c: u8| !c.is_ascii() || c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'%' | b'+' | b'-');
    let domain = |c: u8| !c.is_ascii() || c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-');
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut i = first;
    while let Some((at, at_len)) = (i..bytes.len()).find_map(|p| at_sign(p).map(|len| (p, len))) {
        let local_start =
            |to: usize| bytes[copied..to].iter().rposition(|&c| !local(c)).map_or(copied, |p| copied + p + 1);
        let mut start = local_start(at);
        // `o'neil`: an apostrophe with a letter on each side joins the two runs.
        while start >= copied + 2
            && bytes[start - 1] == b'\''
            && bytes[start - 2].is_ascii_alphanumeric()
            && bytes.get(start).is_some_and(u8::is_ascii_alphanumeric)
        {
            start = local_start(start - 1);
        }
        let host_start = at + at_len;
        let end =
            bytes[host_start..].iter().position(|&c| !domain(c)).map_or(bytes.len(), |p| host_start + p);
        let host = text[host_start..end].trim_end_matches(['.', '-']);
        if let Some(host_len) = email_host_len(host).filter(|_| start < at) {
            out.push_str(&text[copied..start]);
            out.push_str(Redaction::Email.marker());
            copied = host_start + host_len;
        }
        i = (at + 1).max(copied);
    }
    if copied == 0 {
        return Cow::Borrowed(text);
    }
    out.push_str(&text[copied..]);
    Cow::Owned(out)
}

/// How much of `host` is an email address's domain: the longest run of its labels, two or
/// more, whose first is not empty and whose last starts with a letter (top-level domains
/// do): `example.com`, `163.com`, `bücher.example`, and `example.com` of `example.com.0`.
/// None for `1.2.3`, `10.0.0.1`, `localhost`, or a version's three numbers
/// (`2.0.0-alpha.beta`).
fn email_host_len(host: &str) -> Option<usize> {
    let mut labels = host.split('.');
    let numeric =
        |label: Option<&str>| label.is_some_and(|l| !l.is_empty() && l.bytes().all(|c| c.is_ascii_digit()));
    let version = numeric(labels.next())
        && numeric(labels.next())
        && labels.next().and_then(|l| l.bytes().next()).is_some_and(|c| c.is_ascii_digit());
    if version || host.starts_with('.') {
        return None;
    }
    let mut domain = host;
    while let Some((rest, tld)) = domain.rsplit_once('.') {
        if tld.bytes().next().is_some_and(|c| !c.is_ascii() || c.is_ascii_alphabetic()) {
            return Some(domain.len());
        }
        domain = rest;
    }
    None
}

/// Percent-encodes every byte but printable ASCII (and `%` itself).
fn encode_unprintable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for &b in text.as_bytes() {
        if b.is_ascii_graphic() && b != b'%' {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(b"0123456789ABCDEF"[usize::from(b >> 4)]));
            out.push(char::from(b"0123456789ABCDEF"[usize::from(b & 0xF)]));
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn redacts_card_numbers_in_common_layouts() {
        for pan in ["4111111111111111", "4111 1111 1111 1111", "4111-1111-1111-1111", "3782 822463 10005"] {
            let text = format!("paid with {pan}.");
            assert_eq!(scrub(&text), "paid with [REDACTED:pan].", "{pan}");
        }
        assert_eq!(scrub("4012888888881881"), "[REDACTED:pan]");
        let around = scrub("ref 12 4111 1111 1111 1111 2024");
        assert!(around.contains("[REDACTED:pan]") && !around.contains("4111 1111"), "{around}");
    }

    #[test]
    fn keeps_numbers_that_are_not_cards() {
        // Fails Luhn.
        assert_eq!(scrub("order 4111111111111112"), "order 4111111111111112");
        // No issuer starts with 1 at sixteen digits, though the number passes Luhn.
        assert_eq!(scrub("ref 1234567812345670"), "ref 1234567812345670");
        // Digits of a hex digest are no number, even a Luhn-valid run of them.
        let digest = "sha256 9f86d081884c7d659a2feaa0c55ad0154111111111111111a2feaa0c55ad015b";
        assert_eq!(scrub(digest), digest);
        // A run of more than 19 digits is digits glued together: a card number inside it is
        // found (this run used to pass as "too long to be a card").
        assert!(!scrub("id 41111111111111110000000").contains("4111111111111111"));
        // ... but a run with no card number in it stays.
        assert_eq!(scrub("id 11111111111111111111111"), "id 11111111111111111111111");
        assert_eq!(scrub("2024-01-15 12345"), "2024-01-15 12345");
    }

    #[test]
    fn ssn_rules() {
        assert_eq!(scrub("ssn=078-05-1120;"), "ssn=[REDACTED:ssn];");
        for bad in ["000-12-3456", "666-12-3456", "900-12-3456", "123-00-4567", "123-45-0000", "123-45-67890"]
        {
            assert_eq!(scrub(bad), bad, "{bad}");
        }
    }

    #[test]
    fn secrets() {
        assert_eq!(scrub("Authorization: Bearer abc.def-ghi"), "Authorization: Bearer [REDACTED:secret]");
        assert_eq!(scrub("sent Bearer abc.def"), "sent Bearer [REDACTED:bearer]");
        assert_eq!(scrub("key AKIAIOSFODNN7EXAMPLE used"), "key [REDACTED:aws_key] used");
        assert_eq!(scrub("xAKIAIOSFODNN7EXAMPLE"), "xAKIAIOSFODNN7EXAMPLE");
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl";
        assert_eq!(scrub(&format!("jwt {jwt} end")), "jwt [REDACTED:jwt] end");
        assert_eq!(scrub(r#"{"api_key": "k-123", "n": 1}"#), r#"{"api_key": "[REDACTED:secret]", "n": 1}"#);
        assert_eq!(scrub("url?a=1&token=xyz&b=2"), "url?a=1&token=[REDACTED:secret]&b=2");
        assert_eq!(scrub("error: not found"), "error: not found");
    }

    #[test]
    fn spaced_ssns_ibans_and_number_named_keys() {
        assert_eq!(scrub("applicant 673 75 6059 2024-01-15"), "applicant [REDACTED:ssn] 2024-01-15");
        assert_eq!(
            scrub("applicant 673-75-6059 2024-01-15 approved"),
            "applicant [REDACTED:ssn] 2024-01-15 approved"
        );
        assert_eq!(scrub("wire to DE89 3704 0044 0532 0130 00"), "wire to [REDACTED:iban]");
        assert_eq!(scrub(r#"{"ssn":"673756059","n":1}"#), r#"{"ssn":"[REDACTED:ssn]","n":1}"#);
        assert_eq!(scrub(r#"{"ssn": 673756059}"#), r#"{"ssn": [REDACTED:ssn]}"#);
        assert_eq!(scrub(r#"{"card": 6759649826438453}"#), r#"{"card": [REDACTED:pan]}"#);
        // Names alone redact nothing without the digits of such a number.
        assert_eq!(
            scrub(r#"{"card": "visa", "ssn_last4": "6059"}"#),
            r#"{"card": "visa", "ssn_last4": "6059"}"#
        );
        assert_eq!(scrub("id 20240115093000123 4012888888881881"), "id 20240115093000123 [REDACTED:pan]");
    }

    #[test]
    fn secrets_the_masker_finds_are_scrubbed_too() {
        let pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA0Z3VS5\n-----END RSA PRIVATE KEY-----";
        assert_eq!(scrub(&format!("loaded {pem} ok")), "loaded [REDACTED:secret] ok");
        // Escaped line breaks of a JSON string, and a key cut short: the rest is hidden.
        let json =
            r#"{"cert": "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADAN\n-----END PRIVATE KEY-----", "n": 1}"#;
        assert_eq!(scrub(json), r#"{"cert": "[REDACTED:secret]", "n": 1}"#);
        assert_eq!(scrub("key -----BEGIN PRIVATE KEY-----\nMIIEvQIB"), "key [REDACTED:secret]");
        assert_eq!(
            scrub("private_key: -----BEGIN EC PRIVATE KEY----- MHcCAQEE"),
            "private_key: [REDACTED:secret]"
        );
        // Not a private key: kept.
        for kept in ["-----BEGIN CERTIFICATE-----\nMIIB", "a ----- b", "x-----BEGIN"] {
            assert_eq!(scrub(kept), kept);
        }
        let stripe = format!("sk_live_{}", "4eC39HqLyjWDarjtT1zdp7dc");
        assert_eq!(scrub(&format!("charge with {stripe}.")), "charge with [REDACTED:secret].");
        let github = format!("ghp_{}", "a".repeat(36));
        assert_eq!(scrub(&format!("push {github}")), "push [REDACTED:secret]");
        for kept in ["task_live_abcdefghijklmnop1234", "sk_live_short", "ghp_short", "sketch", "go"] {
            assert_eq!(scrub(kept), kept);
        }
    }

    #[test]
    fn more_secret_names_with_word_boundaries() {
        for key in
            ["private_key", "privateKey", "passphrase", "pwd", "db_pwd", "pin", "user_pin", "userPin", "PIN2"]
        {
            assert!(is_secret_name(key), "{key}");
            assert_eq!(scrub(&format!("{key}=hunter2 ok")), format!("{key}=[REDACTED:secret] ok"));
        }
        for key in ["spinner", "pinned", "shipping", "pinyin", "pwdx", "opinion"] {
            assert!(!is_secret_name(key), "{key}");
        }
    }

    /// One-time, verification and PIN codes are secrets by their last words; other codes
    /// and look-alikes are not.
    #[test]
    fn one_time_and_verification_codes_are_secret_names() {
        for key in CODE_SECRETS {
            assert!(is_secret_name(key), "{key}");
            assert_eq!(
                scrub(&format!("{key}=482913 sent")),
                format!("{key}=[REDACTED:secret] sent"),
                "{key}"
            );
            assert_eq!(
                scrub(&format!(r#"{{"{key}": "482913"}}"#)),
                format!(r#"{{"{key}": "[REDACTED:secret]"}}"#),
                "{key}"
            );
        }
        for key in CODE_PLAIN {
            assert!(!is_secret_name(key), "{key}");
            assert_eq!(scrub(&format!("{key}=US42 sent")), format!("{key}=US42 sent"), "{key}");
        }
    }

    /// Names of one-time and verification codes, and of codes and look-alikes that are
    /// none, shared with the classification's agreement test.
    const CODE_SECRETS: [&str; 22] = [
        "pin_code",
        "pinCode",
        "otp",
        "OTP",
        "otp_code",
        "OTPCode",
        "totp",
        "hotp",
        "user_totp",
        "verification_code",
        "verificationCode",
        "verify_code",
        "mfa_code",
        "mfaCode",
        "two_factor_code",
        "auth_code",
        "authorization_code",
        "one_time_code",
        "onetime_code",
        "security_code",
        "recovery_code",
        "otp_code_confirm",
    ];
    const CODE_PLAIN: [&str; 18] = [
        "zip_code",
        "zipCode",
        "country_code",
        "currency_code",
        "status_code",
        "statusCode",
        "error_code",
        "promo_code",
        "postcode",
        "postal_code",
        "code",
        "otp_attempts",
        "mfa_enabled",
        "otp_sent_at",
        "hotpot",
        "spotted",
        "codec",
        "time_code",
    ];

    /// The log scrubber and the classification of `security::protection` class the same
    /// code names as secrets.
    #[cfg(feature = "protection")]
    #[test]
    fn log_and_document_rules_agree_on_code_names() {
        use crate::security::protection::{classify_json, Level};
        for key in CODE_SECRETS.iter().chain(&CODE_PLAIN) {
            let doc = serde_json::json!({ *key: "482913" });
            let restricted = classify_json(&doc).level == Level::Restricted;
            assert_eq!(restricted, is_secret_name(key), "{key}");
        }
    }

    /// Codes that are credentials: sent by SMS, given for access, confirming or activating
    /// an account, authorising (OAuth's authorization code), recovering or backing up a
    /// second factor, and a card's security code (its CVC).
    pub(crate) const CREDENTIAL_CODES: [&str; 8] = [
        "sms_code",
        "access_code",
        "confirmation_code",
        "activation_code",
        "auth_code",
        "recovery_code",
        "backup_code",
        "security_code",
    ];
    /// Codes that identify or describe something, and hide nothing.
    pub(crate) const DESCRIPTIVE_CODES: [&str; 13] = [
        "zip_code",
        "postal_code",
        "country_code",
        "status_code",
        "promo_code",
        "currency_code",
        "error_code",
        "area_code",
        "discount_code",
        "product_code",
        "region_code",
        "language_code",
        "http_code",
    ];

    /// A snake_case name as it is also spelt: camelCase, kebab-case and UPPER_SNAKE.
    pub(crate) fn spellings(snake: &str) -> [String; 4] {
        let mut camel = String::new();
        let mut upper = false;
        for c in snake.chars() {
            match c {
                '_' => upper = true,
                c if upper => {
                    camel.extend(c.to_uppercase());
                    upper = false;
                }
                c => camel.push(c),
            }
        }
        [snake.to_owned(), camel, snake.replace('_', "-"), snake.to_ascii_uppercase()]
    }

    /// Every spelling of a credential's code loses its value, as a `key=value` pair, a
    /// JSON member or a `key: value` pair; every spelling of a descriptive code keeps it.
    #[test]
    fn credential_codes_are_secret_in_every_spelling() {
        for key in CREDENTIAL_CODES.iter().flat_map(|k| spellings(k)) {
            assert!(is_secret_name(&key), "{key}");
            assert_eq!(scrub(&format!("{key}=482913 sent")), format!("{key}=[REDACTED:secret] sent"));
            assert_eq!(
                scrub(&format!(r#"{{"{key}":"Xk-482913","n":1}}"#)),
                format!(r#"{{"{key}":"[REDACTED:secret]","n":1}}"#)
            );
            assert_eq!(scrub(&format!("{key}: 482913")), format!("{key}: [REDACTED:secret]"));
        }
        for key in DESCRIPTIVE_CODES.iter().flat_map(|k| spellings(k)) {
            assert!(!is_secret_name(&key), "{key}");
            for text in
                [format!("{key}=US42 sent"), format!(r#"{{"{key}":"US42","n":1}}"#), format!("{key}: 200")]
            {
                assert_eq!(scrub(&text), text);
            }
        }
    }

    /// The log scrubber and the classification agree on every spelling of these codes.
    #[cfg(feature = "protection")]
    #[test]
    fn log_and_document_rules_agree_on_credential_codes() {
        use crate::security::protection::{classify_json, Level};
        for key in CREDENTIAL_CODES.iter().chain(&DESCRIPTIVE_CODES).flat_map(|k| spellings(k)) {
            let doc = serde_json::json!({ key.clone(): "482913" });
            let restricted = classify_json(&doc).level == Level::Restricted;
            assert_eq!(restricted, is_secret_name(&key), "{key}");
        }
    }

    /// A count of tokens is no token: a plain count under a count's name is kept.
    #[test]
    fn counts_of_tokens_are_kept() {
        for text in [
            "tokens_used=12",
            "token_count=3",
            "max_tokens=100",
            "tokens_remaining=5",
            "maxTokens=100",
            "MAX_TOKENS=0",
            "total-tokens=4096",
            r#"{"prompt_tokens": 12, "completion_tokens": 30, "max_tokens": "100"}"#,
            "usage tokens_used: 12, tokens_remaining: 5",
        ] {
            assert_eq!(scrub(text), text);
            assert!(matches!(scrub(text), Cow::Borrowed(_)), "{text}");
        }
    }

    /// Whatever looks like a credential under a token's name is still redacted: every
    /// token's own name, a count's name with something other than a plain count under it,
    /// and `tokens` alone (a list of tokens as often as a number of them).
    #[test]
    fn tokens_stay_redacted_beside_counts_of_tokens() {
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl";
        for (text, scrubbed) in [
            ("token=abc", "token=[REDACTED:secret]"),
            ("access_token=abc123", "access_token=[REDACTED:secret]"),
            ("refresh_token=r-1", "refresh_token=[REDACTED:secret]"),
            ("id_token=x.y.z", "id_token=[REDACTED:secret]"),
            ("api_token=12", "api_token=[REDACTED:secret]"),
            ("session_token=482913", "session_token=[REDACTED:secret]"),
            ("csrftoken=12", "csrftoken=[REDACTED:secret]"),
            ("tokens=12", "tokens=[REDACTED:secret]"),
            ("tokens_used=abc", "tokens_used=[REDACTED:secret]"),
            ("max_tokens=0482913", "max_tokens=[REDACTED:secret]"),
            ("token_count=12345678901", "token_count=[REDACTED:secret]"),
            ("token_count=-3", "token_count=[REDACTED:secret]"),
            ("token_count=3.5", "token_count=[REDACTED:secret]"),
            ("secret_tokens_used=12", "secret_tokens_used=[REDACTED:secret]"),
            ("csrftoken_count=12", "csrftoken_count=[REDACTED:secret]"),
            (r#"{"max_tokens": "sk-abc"}"#, r#"{"max_tokens": "[REDACTED:secret]"}"#),
        ] {
            assert_eq!(scrub(text), scrubbed, "{text}");
        }
        assert_eq!(scrub(&format!("token: {jwt}")), "token: [REDACTED:secret]");
        // A list of tokens is redacted whole, up to the next key.
        for (text, scrubbed) in [
            ("tokens=abc,def", "tokens=[REDACTED:secret]"),
            ("tokens=abc,def,ghi user=ada", "tokens=[REDACTED:secret] user=ada"),
            ("token=abc,tenant=acme", "token=[REDACTED:secret],tenant=acme"),
            ("password=abc, next", "password=[REDACTED:secret], next"),
            ("api_keys=abc,ZGVm==,eHl6=", "api_keys=[REDACTED:secret]"),
            ("secrets=a,b:c", "secrets=[REDACTED:secret],b:c"),
            ("tokens=abc,", "tokens=[REDACTED:secret],"),
        ] {
            assert_eq!(scrub(text), scrubbed, "{text}");
        }
        assert_eq!(scrub(&format!("tokens={jwt}")), "tokens=[REDACTED:secret]");
        assert_eq!(scrub(&format!("tokens_used={jwt}")), "tokens_used=[REDACTED:secret]");
        // The name alone cannot tell a count from a token: it is a secret's name.
        assert!(is_secret_name("tokens_used") && is_secret_name("max_tokens"));
    }

    proptest::proptest! {
        /// Under a count's name, only a plain count is kept: any other value is redacted.
        #[test]
        fn under_a_count_of_tokens_only_a_count_is_kept(
            key in "(tokens_used|token_count|max_tokens|tokens_remaining|maxTokens)",
            value in "[A-Za-z0-9._~+/-]{1,40}",
        ) {
            let text = format!("{key}={value} ok");
            let out = scrub(&text);
            // `bearer x` would be a scheme and its credentials.
            let scheme = value.eq_ignore_ascii_case("bearer") || value.eq_ignore_ascii_case("basic");
            proptest::prop_assume!(!scheme);
            let count = value.len() <= 9
                && value.bytes().all(|c| c.is_ascii_digit())
                && (value == "0" || !value.starts_with('0'));
            if count {
                proptest::prop_assert_eq!(out, Cow::Borrowed(text.as_str()));
            } else {
                proptest::prop_assert_eq!(out, format!("{key}=[REDACTED:secret] ok"));
            }
        }

        /// One search for `@` or `%40` answers as the two searches it replaced did.
        #[test]
        fn one_search_for_an_at_sign(text in "[a-z@%40 ]{0,80}") {
            let two = text.contains('@') || text.contains("%40");
            proptest::prop_assert_eq!(first_at_sign(text.as_bytes()).is_some(), two);
        }
    }

    #[test]
    fn scrubbing_twice_changes_nothing_more() {
        for text in ["password=hunter2 ok", "otp_code: 482913", "to ada@example.com", "token=[redacted]&n=1"]
        {
            let once = scrub(text).into_owned();
            assert_eq!(scrub(&once), once, "{text}");
        }
    }

    /// Only a whole marker is taken for a value already redacted: one with more after it is
    /// a value like any other.
    #[test]
    fn a_marker_with_more_after_it_hides_nothing() {
        for text in
            ["password=[redacted]hunter2", "password=[REDACTED:secret]hunter2", "token=[redacted-hunter2"]
        {
            let out = scrub(text);
            assert!(!out.contains("hunter2"), "{text} -> {out}");
        }
        assert_eq!(scrub("password=[REDACTED:secret], n=1"), "password=[REDACTED:secret], n=1");
    }

    #[test]
    fn quoted_values_run_to_the_unescaped_quote() {
        assert_eq!(scrub(r#"{"password":"ab\"cd","n":1}"#), r#"{"password":"[REDACTED:secret]","n":1}"#);
        assert_eq!(scrub(r#"{"password":"ab\\","n":1}"#), r#"{"password":"[REDACTED:secret]","n":1}"#);
        assert_eq!(scrub(r#"token='it\'s'"#), "token='[REDACTED:secret]'");
        assert_eq!(scrub(r#"{"password":"ab\"#), r#"{"password":"[REDACTED:secret]"#);
    }

    #[test]
    fn secret_values_cover_grouped_digits() {
        assert_eq!(scrub("token: 4111 1111 1111 1111 ok"), "token: [REDACTED:secret] ok");
        assert_eq!(scrub("Bearer 4111 1111 1111 1111 ok"), "Bearer [REDACTED:bearer] ok");
    }

    #[test]
    fn id_shapes() {
        assert!(is_uuid(b"c6af9ac6-7b61-11e6-9a41-93e8deadbeef"));
        assert!(is_trace_id(b"1-5e9f0c65-1de4d666d4dd26aced652b6c"));
        for not in
            ["c6af9ac6-7b61-11e6-9a41-93e8deadbeeg", "c6af9ac67b61-11e6-9a41-93e8deadbeef0", "078-05-1120"]
        {
            assert!(!is_uuid(not.as_bytes()) && !is_trace_id(not.as_bytes()), "{not}");
        }
        assert!(!is_trace_id(b"2-5e9f0c65-1de4d666d4dd26aced652b6c"));
        // Scrubbed as any text: an SSN is not an id, nor is an id with a card number in it.
        assert_eq!(scrub("078-05-1120"), "[REDACTED:ssn]");
        // A UUID's digits are no card number (this was redacted as one before issuer checks).
        assert_eq!(scrub("a0000000-a000-a000-a000-0000000000a0"), "a0000000-a000-a000-a000-0000000000a0");
        assert_eq!(scrub("12345678-4111-1111-1111-111111111111"), "12345678-4111-1111-1111-111111111111");
        assert!(
            longest_digit_run(b"c6af9ac6-7b61-11e6-9a41-93e8deadbeef") < 9,
            "a typical id takes the shortcut"
        );
    }

    #[test]
    fn multibyte_text_around_redactions() {
        assert_eq!(scrub("café 4111111111111111 ünï"), "café [REDACTED:pan] ünï");
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_any_text(text in proptest::prelude::any::<String>()) {
            let _ = scrub(&text);
        }

        /// Ids that take the shortcut are ids the scanner finds nothing in. Two digits
        /// in three give the scanner every chance of a card number or an SSN.
        #[test]
        fn ids_skip_the_scanner_only_when_it_finds_nothing(
            uuid in "(?:[0-9]|[0-9]|[a-fA-F]){8}-(?:[0-9]|[0-9]|[a-f]){4}-(?:[0-9]|[0-9]|[a-f]){4}-(?:[0-9]|[0-9]|[a-f]){4}-(?:[0-9]|[0-9]|[a-fA-F]){12}",
            trace in "1-(?:[0-9]|[0-9]|[a-f]){8}-(?:[0-9]|[0-9]|[a-f]){24}",
        ) {
            for id in [uuid, trace] {
                proptest::prop_assert!(is_uuid(id.as_bytes()) || is_trace_id(id.as_bytes()), "{}", id);
                if longest_digit_run(id.as_bytes()) < 9 {
                    proptest::prop_assert!(matches!(scan(&id), Cow::Borrowed(_)), "the scanner redacts {}", id);
                }
                proptest::prop_assert_eq!(scrub(&id), scan(&id));
            }
        }

        #[test]
        fn never_panics_on_pattern_soup(text in "[0-9 \\-AKISeyJ.=:Bbearr\"'_é]{0,120}") {
            let _ = scrub(&text);
        }
    }

    #[test]
    fn sensitive_segments_are_replaced_and_plain_paths_kept() {
        assert!(matches!(scrub_path("/payments/pay_123/refunds"), Cow::Borrowed(_)));
        assert_eq!(scrub_path("/payments/4111111111111111"), "/payments/[REDACTED:pan]");
        assert_eq!(scrub_path("/cards/4111%201111%201111%201111/x"), "/cards/[REDACTED:pan]/x");
        assert_eq!(scrub_path("/users/ada@example.com/orders"), "/users/[REDACTED:email]/orders");
        assert_eq!(scrub_path("/users/ada%40example.com"), "/users/[REDACTED:email]");
        assert_eq!(scrub_path("/people/078-05-1120"), "/people/[REDACTED:ssn]");
        // Handles and versions are not addresses.
        assert!(matches!(scrub_path("/@ada/pkg@1"), Cow::Borrowed(_)));
        // A byte that is not UTF-8 does not stop the decoding, nor a malformed escape.
        assert_eq!(scrub_path("/x/%FF4111%201111%201111%201111"), "/x/%EF%BF%BD[REDACTED:pan]");
        assert!(matches!(scrub_path("/100%/%zz"), Cow::Borrowed(_)));
    }

    /// Log text loses its email addresses, in the form `scrub_path` masks them; what only
    /// looks like one stays.
    #[test]
    fn emails_are_masked_in_text() {
        assert_eq!(scrub("sent to ada@example.com"), "sent to [REDACTED:email]");
        assert_eq!(
            scrub(r#"{"to":"Ada.Lovelace+bills@mail.example.co.uk","n":1}"#),
            r#"{"to":"[REDACTED:email]","n":1}"#
        );
        assert_eq!(scrub("<b.c+d@x.example.org>."), "<[REDACTED:email]>.");
        assert_eq!(
            scrub("from ada@163.com, cc li@bücher.example"),
            "from [REDACTED:email], cc [REDACTED:email]"
        );
        // No letter of a non-ASCII address is left beside the marker.
        assert_eq!(scrub("jörg@example.de"), "[REDACTED:email]");
        // An address followed by a dot and digits ends before them.
        assert_eq!(scrub("mailed ada@example.com.0 left"), "mailed [REDACTED:email].0 left");
        // With card numbers and secrets on the same line.
        assert_eq!(
            scrub("card 4111 1111 1111 1111 for ada@example.com, password=hunter2"),
            "card [REDACTED:pan] for [REDACTED:email], password=[REDACTED:secret]"
        );
        // A card number glued to an address is a card number whole.
        assert!(!scrub("4111 1111 1111 1111@bank.example").contains("1111"));
        // An apostrophe between letters is part of the address; quotes around it are not.
        assert_eq!(scrub("to mary-jane.o'neil@example.com"), "to [REDACTED:email]");
        assert_eq!(scrub("to='ada@example.com'"), "to='[REDACTED:email]'");
        // `%40` for `@`, as a form body or query string is logged.
        assert_eq!(scrub("body email=ada%40example.com&n=1"), "body email=[REDACTED:email]&n=1");
        assert_eq!(scrub("GET /u?to=o'neil%40example.org"), "GET /u?to=[REDACTED:email]");
        // Not addresses: handles, versions, IP addresses, hosts without a dot.
        for kept in [
            "@ada",
            "50%40 of them",
            "pkg@1",
            "upgraded serde@1.0.210",
            "npm i @scope/pkg@2.0.0-alpha.beta",
            "ssh ec2-user@10.0.0.1",
            "user@localhost",
            "let a = x@b;",
            "a@b",
            "@ at @",
            "ada@.com",
        ] {
            assert_eq!(scrub(kept), kept, "{kept}");
            assert!(matches!(scrub(kept), Cow::Borrowed(_)), "{kept}");
        }
    }

    #[test]
    fn decoded_text_is_encoded_again() {
        assert_eq!(encode_unprintable("a b\n%\"é"), "a%20b%0A%25\"%C3%A9");
    }
}
