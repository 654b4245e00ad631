//! Classification of JSON documents by field name and by value.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::LazyLock;

use serde_json::Value;

use super::detect::{self, Match, Profile};

/// How sensitive data is, from least to most.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum Level {
    /// Free to publish.
    Public,
    /// Internal to the business.
    Internal,
    /// Personal data (GDPR): emails, phones, names, dates of birth.
    Confidential,
    /// Card data, government ids, credentials.
    Restricted,
}

/// The kind of a sensitive value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum DataClass {
    /// A payment card number.
    Pan,
    /// A US social security number.
    Ssn,
    /// An international bank account number.
    Iban,
    /// A password.
    Password,
    /// A secret: API key, token, private key.
    Secret,
    /// An email address.
    Email,
    /// A phone number.
    Phone,
    /// A date of birth.
    DateOfBirth,
    /// A person's name.
    PersonName,
    /// A postal address.
    Address,
}

impl DataClass {
    /// How many classes there are (for per-class tables indexed by `class as usize`).
    pub(crate) const COUNT: usize = 10;

    /// The short name used in redactions, e.g. `pan` in `[REDACTED:pan]`.
    pub fn as_str(self) -> &'static str {
        match self {
            DataClass::Pan => "pan",
            DataClass::Ssn => "ssn",
            DataClass::Iban => "iban",
            DataClass::Password => "password",
            DataClass::Secret => "secret",
            DataClass::Email => "email",
            DataClass::Phone => "phone",
            DataClass::DateOfBirth => "dob",
            DataClass::PersonName => "name",
            DataClass::Address => "address",
        }
    }

    /// The default level of the class.
    pub fn level(self) -> Level {
        match self {
            DataClass::Pan | DataClass::Ssn | DataClass::Iban | DataClass::Password | DataClass::Secret => {
                Level::Restricted
            }
            _ => Level::Confidential,
        }
    }
}

/// One sensitive value found in a document.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// JSON pointer of the value (`/card/number`).
    pub path: String,
    /// What the value is.
    pub class: DataClass,
    /// Its level.
    pub level: Level,
}

/// The result of classifying a document: the highest level and every finding.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Classification {
    /// The highest level found (`Public` when nothing was found).
    pub level: Level,
    /// Every sensitive value.
    pub findings: Vec<Finding>,
}

const _: () = assert!(DataClass::Address as usize + 1 == DataClass::COUNT);

/// Field names normalised: lowercase without `_`, `-` (so `cardNumber` = `card_number`).
pub(crate) fn normalise(name: &str) -> String {
    name.chars().filter(|c| *c != '_' && *c != '-').flat_map(char::to_lowercase).collect()
}

/// Field names this long or shorter are normalised on the stack.
const SHORT_NAME: usize = 64;

/// Calls `f` with the bytes of the [`normalise`]d name, without allocating for short
/// ASCII names (lowercasing ASCII is the same by ASCII or Unicode rules).
fn with_normalised<R>(name: &str, f: impl FnOnce(&[u8]) -> R) -> R {
    let mut buf = [0u8; SHORT_NAME];
    let mut n = 0;
    if name.len() <= SHORT_NAME {
        for &c in name.as_bytes() {
            if !c.is_ascii() {
                return f(normalise(name).as_bytes());
            }
            if c != b'_' && c != b'-' {
                buf[n] = c.to_ascii_lowercase();
                n += 1;
            }
        }
        f(&buf[..n])
    } else {
        f(normalise(name).as_bytes())
    }
}

/// Whether `hay` contains `needle` (short field names: a plain scan is fastest).
fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.len() >= needle.len() && hay.windows(needle.len()).any(|w| w[0] == needle[0] && w == needle)
}

/// A multiply-rotate hash over eight bytes at a time (FxHash): field names are short,
/// and SipHash would cost more than the rest of a lookup. The map is only read with
/// names from documents, never written, so colliding names can only make a lookup walk
/// a few more of its few entries.
#[derive(Clone, Copy, Default)]
pub(crate) struct FxHasher(u64);

impl FxHasher {
    const K: u64 = 0x517c_c1b7_2722_0a95;

    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(Self::K);
    }
}

impl Hasher for FxHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            // Shifted in, not copied to a buffer: a wide load of bytes just stored stalls.
            self.add(rest.iter().rev().fold(0, |word, b| word << 8 | u64::from(*b)));
        }
    }

    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
}

/// The map key of a field name.
fn key(name: &str) -> Box<[u8]> {
    normalise(name).into_bytes().into_boxed_slice()
}

/// Normalised field names (bytes, so lookups need no UTF-8 check) to classes.
type FieldMap = HashMap<Box<[u8]>, DataClass, BuildHasherDefault<FxHasher>>;

/// A scalar's text: strings as they are, numbers formatted on the stack.
pub(crate) fn with_number_text<R>(n: &serde_json::Number, f: impl FnOnce(&str) -> R) -> R {
    let mut buf = NumberText { bytes: [0; 48], len: 0 };
    if write!(buf, "{n}").is_ok() {
        f(std::str::from_utf8(&buf.bytes[..buf.len]).unwrap_or_default())
    } else {
        // Longer than any i64, u64 or f64 (arbitrary precision numbers).
        f(&n.to_string())
    }
}

struct NumberText {
    bytes: [u8; 48],
    len: usize,
}

impl std::fmt::Write for NumberText {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        self.bytes.get_mut(self.len..end).ok_or(std::fmt::Error)?.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Substrings of the [`normalise`]d name one of [`secret_by_words`]'s words needs.
const SECRET_HINTS: [&[u8]; 10] =
    [b"pass", b"pwd", b"cvv", b"cvc", b"pin", b"code", b"otp", b"key", b"secret", b"token"];

/// Words before `code` that make it a credential: a card's security code, a PIN, a one-time,
/// second-factor, verification, authorization (OAuth's), access, confirmation, activation,
/// recovery or backup code, or one sent by SMS (`pin_code`, `otp_code`, `verification_code`,
/// `mfa_code`, `auth_code`, `sms_code`, `access_code`, `activation_code`). Any other code
/// is no secret (`zip_code`, `country_code`, `currency_code`, `status_code`, `error_code`,
/// `promo_code`, `area_code`). The log scrubber has the same list (a test holds the two to
/// the same answers).
const CODE_KINDS: [&str; 21] = [
    "security",
    "card",
    "pin",
    "otp",
    "totp",
    "hotp",
    "mfa",
    "factor",
    "verification",
    "verify",
    "auth",
    "authentication",
    "authorization",
    "onetime",
    "recovery",
    "backup",
    "reset",
    "sms",
    "access",
    "confirmation",
    "activation",
];

/// Words that name a one-time password on their own (`otp`, `totp`).
const ONE_TIME_WORDS: [&str; 3] = ["otp", "totp", "hotp"];

/// Words that may follow a secret's name without changing what the value is
/// (`password_confirmation`, `pin_new`).
const QUALIFIERS: [&str; 10] =
    ["confirm", "confirmation", "again", "repeat", "new", "old", "current", "plain", "plaintext", "value"];

/// The class of a field named after a secret with a prefix or suffix (`new_password`,
/// `card_cvv`, `cvv2`, `securityCode`, `rsa_private_key`, `client_secret`, `id_token`,
/// `otp`, `pin_code`, `mfa_code`, `one_time_code`): the secret's word ends the name, or is
/// followed by [`QUALIFIERS`] only; `code` is a secret after one of [`CODE_KINDS`] only.
/// Whole words only, split at `_`, `-`, `.`, spaces and camelCase, so `pinned`, `spinner`,
/// `tokens_used`, `postcode` and `otp_attempts` are not secrets; trailing digits of a
/// word are dropped (`cvv2`).
fn secret_by_words(name: &str) -> Option<DataClass> {
    let words = split_words(name);
    let end = words.iter().rposition(|w| !QUALIFIERS.contains(&w.as_str()))?;
    let word = |back: usize| end.checked_sub(back).map(|i| words[i].as_str());
    let (last, before) = (words[end].as_str(), word(1));
    match (before, last) {
        (_, "password" | "passwd" | "passphrase" | "passcode" | "pwd") => Some(DataClass::Password),
        (_, "pin" | "cvv" | "cvc" | "secret" | "token") => Some(DataClass::Secret),
        (_, last) if ONE_TIME_WORDS.contains(&last) => Some(DataClass::Secret),
        (Some(kind), "code") if CODE_KINDS.contains(&kind) => Some(DataClass::Secret),
        (Some("time"), "code") if word(2) == Some("one") => Some(DataClass::Secret),
        (Some("private" | "secret" | "signing"), "key") => Some(DataClass::Secret),
        _ => None,
    }
}

/// The words of a field name, lowercase, trailing digits dropped: split at `_`, `-`,
/// `.`, spaces, digits-to-letters and camelCase (`APIToken` is `api`, `token`).
fn split_words(name: &str) -> Vec<String> {
    let chars: Vec<char> = name.chars().collect();
    let mut words = Vec::new();
    let mut word = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_alphanumeric() {
            push_word(&mut words, &mut word);
            continue;
        }
        let prev = i.checked_sub(1).map(|p| chars[p]);
        let next = chars.get(i + 1);
        // `newPassword`, `APIToken` (the last capital of a run starts a word), `2fa`.
        let camel = c.is_uppercase()
            && prev.is_some_and(|p| {
                p.is_lowercase() || (p.is_uppercase() && next.is_some_and(|n| n.is_lowercase()))
            });
        let boundary = camel || (c.is_alphabetic() && prev.is_some_and(|p| p.is_ascii_digit()));
        if boundary {
            push_word(&mut words, &mut word);
        }
        word.extend(c.to_lowercase());
    }
    push_word(&mut words, &mut word);
    words
}

fn push_word(words: &mut Vec<String>, word: &mut String) {
    let kept = word.trim_end_matches(|c: char| c.is_ascii_digit());
    if !kept.is_empty() {
        words.push(kept.to_owned());
    }
    word.clear();
}

/// The default classifier, built once.
static DEFAULT: LazyLock<Classifier> = LazyLock::new(Classifier::build_default);

/// Classifies JSON by field name (a configurable map) and by value detectors.
///
/// # Examples
///
/// ```
/// use lift::security::protection::{Classifier, DataClass, Level};
/// let doc = serde_json::json!({ "email": "a@b.io", "note": "card 4111 1111 1111 1111" });
/// let c = Classifier::default().classify(&doc);
/// assert_eq!(c.level, Level::Restricted);
/// assert!(c.findings.iter().any(|f| f.path == "/note" && f.class == DataClass::Pan));
/// ```
#[derive(Clone)]
pub struct Classifier {
    fields: FieldMap,
}

impl std::fmt::Debug for Classifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut fields: Vec<_> = self.fields.iter().map(|(k, v)| (String::from_utf8_lossy(k), *v)).collect();
        fields.sort_by(|a, b| a.0.cmp(&b.0));
        f.debug_struct("Classifier").field("fields", &fields).finish()
    }
}

impl Default for Classifier {
    fn default() -> Self {
        DEFAULT.clone()
    }
}

impl Classifier {
    fn build_default() -> Self {
        use DataClass::*;
        let pairs = [
            ("card_number", Pan),
            ("pan", Pan),
            ("card", Pan),
            ("cc_number", Pan),
            ("account_number", Iban),
            ("iban", Iban),
            ("ssn", Ssn),
            ("social_security_number", Ssn),
            ("password", Password),
            ("passwd", Password),
            ("secret", Secret),
            ("api_key", Secret),
            ("client_secret", Secret),
            ("access_token", Secret),
            ("refresh_token", Secret),
            ("token", Secret),
            ("private_key", Secret),
            ("cvv", Secret),
            ("cvc", Secret),
            ("email", Email),
            ("phone", Phone),
            ("phone_number", Phone),
            ("mobile", Phone),
            ("dob", DateOfBirth),
            ("date_of_birth", DateOfBirth),
            ("birth_date", DateOfBirth),
            ("name", PersonName),
            ("full_name", PersonName),
            ("first_name", PersonName),
            ("last_name", PersonName),
            ("cardholder_name", PersonName),
            ("address", Address),
            ("street", Address),
            ("postal_code", Address),
        ];
        Self { fields: pairs.iter().map(|(k, v)| (key(k), *v)).collect() }
    }

    /// A classifier with no field names of its own: the value detectors, and the names
    /// of secrets every classifier knows (`new_password`, `card_cvv`, `api_token`...).
    pub fn empty() -> Self {
        Self { fields: FieldMap::default() }
    }

    /// Maps a field name (any case, `_`/`-` ignored) to a class.
    pub fn field(mut self, name: &str, class: DataClass) -> Self {
        self.fields.insert(key(name), class);
        self
    }

    /// The class a field name maps to.
    pub fn class_of_field(&self, name: &str) -> Option<DataClass> {
        with_normalised(name, |norm| self.fields.get(norm).copied())
    }

    /// The class of a whole value under `field` by its content or its field name: the
    /// value detectors win over the name (a PAN is Restricted whatever its field), then
    /// the name. `None` leaves the value to text scanning.
    pub(crate) fn whole_class(&self, field: Option<&str>, text: &str, p: &Profile) -> Option<DataClass> {
        detect::detect_value_in(text, p).or_else(|| self.field_class(field, text))
    }

    /// The class of a value by its field name alone (no value detectors).
    pub(crate) fn field_class(&self, field: Option<&str>, text: &str) -> Option<DataClass> {
        let name = field?;
        with_normalised(name, |norm| {
            if let Some(class) = self.fields.get(norm).copied() {
                // A date-of-birth field holds a date; a mistyped field is not a finding.
                if class != DataClass::DateOfBirth || detect::is_plausible_date(text) {
                    return Some(class);
                }
            }
            // Cheap tests first: a high-entropy value has at least 16 bytes.
            let high_entropy = text.len() >= 16
                && (norm.ends_with(b"key") || contains(norm, b"secret") || contains(norm, b"token"))
                && detect::is_high_entropy(text);
            if high_entropy {
                return Some(DataClass::Secret);
            }
            // Only names that mention a secret's word can be one: skip the split otherwise.
            SECRET_HINTS.iter().any(|h| contains(norm, h)).then(|| secret_by_words(name)).flatten()
        })
    }

    /// Classifies a scalar under `field`: the value detectors win over the name (a PAN
    /// is Restricted whatever its field), then the name, then text scanning. Each class
    /// goes to `emit` (consecutive repeats once); `spans` is scratch space.
    fn scalar_classes(
        &self,
        field: Option<&str>,
        text: &str,
        spans: &mut Vec<Match>,
        mut emit: impl FnMut(DataClass),
    ) {
        let profile = Profile::of(text);
        if let Some(class) = self.whole_class(field, text, &profile) {
            return emit(class);
        }
        detect::scan_text_in(text, &profile, spans);
        let mut last = None;
        for m in spans.iter() {
            if last != Some(m.class) {
                emit(m.class);
                last = Some(m.class);
            }
        }
    }

    /// Classifies a JSON document.
    pub fn classify(&self, value: &Value) -> Classification {
        let mut walker = Walker { classifier: self, path: String::new(), spans: Vec::new(), out: Vec::new() };
        walker.walk(value, None);
        let findings = walker.out;
        let level = findings.iter().map(|f| f.level).max().unwrap_or(Level::Public);
        Classification { level, findings }
    }
}

/// A classification in progress: the JSON pointer so far and reused scratch space.
struct Walker<'a> {
    classifier: &'a Classifier,
    path: String,
    spans: Vec<Match>,
    out: Vec<Finding>,
}

impl Walker<'_> {
    fn walk(&mut self, value: &Value, field: Option<&str>) {
        let len = self.path.len();
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    self.path.push('/');
                    push_escaped(&mut self.path, k);
                    self.walk(v, Some(k));
                    self.path.truncate(len);
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    self.path.push('/');
                    push_index(&mut self.path, i);
                    self.walk(v, field);
                    self.path.truncate(len);
                }
            }
            Value::String(s) => self.push(field, s),
            Value::Number(n) => with_number_text(n, |text| self.push(field, text)),
            Value::Bool(_) | Value::Null => {}
        }
    }

    fn push(&mut self, field: Option<&str>, text: &str) {
        let Self { classifier, path, spans, out } = self;
        classifier.scalar_classes(field, text, spans, |class| {
            out.push(Finding { path: path.clone(), class, level: class.level() });
        });
    }
}

/// Appends an array index in decimal.
fn push_index(path: &mut String, i: usize) {
    if i < 10 {
        path.push(char::from(b'0' + i as u8));
    } else {
        let _ = write!(path, "{i}");
    }
}

/// Appends a JSON pointer reference token: `~` as `~0`, `/` as `~1`.
fn push_escaped(path: &mut String, key: &str) {
    if !key.bytes().any(|c| c == b'~' || c == b'/') {
        return path.push_str(key);
    }
    for c in key.chars() {
        match c {
            '~' => path.push_str("~0"),
            '/' => path.push_str("~1"),
            c => path.push(c),
        }
    }
}

/// Classifies a document with the default [`Classifier`].
pub fn classify_json(value: &Value) -> Classification {
    DEFAULT.classify(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scrub::tests::{spellings, CREDENTIAL_CODES, DESCRIPTIVE_CODES};
    use crate::security::protection::{mask_json, HashKey, Policy};

    /// Codes sent by SMS, given for access, confirming or activating an account,
    /// authorising (OAuth's authorization code), recovering or backing up a second factor,
    /// and a card's security code are secrets in every spelling, classified and masked.
    #[test]
    fn credential_codes_are_secrets_in_every_spelling() {
        for name in CREDENTIAL_CODES.iter().flat_map(|n| spellings(n)) {
            let mut doc = serde_json::json!({ name.clone(): "482913", "n": 1 });
            let c = classify_json(&doc);
            let classes: Vec<_> = c.findings.iter().map(|f| (f.path.as_str(), f.class)).collect();
            assert_eq!(classes, [(format!("/{name}").as_str(), DataClass::Secret)], "{name}");
            assert_eq!(c.level, Level::Restricted, "{name}");
            mask_json(&mut doc, &Policy::new(HashKey::new(*b"test key: thirty-two bytes long!")));
            assert_eq!(doc[&name], "[REDACTED:secret]", "{name}");
        }
    }

    /// Codes that identify or describe something are no secrets in any spelling.
    #[test]
    fn descriptive_codes_are_not_secrets() {
        for name in DESCRIPTIVE_CODES.iter().flat_map(|n| spellings(n)) {
            let class = DEFAULT.field_class(Some(&name), "US42");
            // A postal code is part of an address, personal data but no secret.
            let expected = (normalise(&name) == "postalcode").then_some(DataClass::Address);
            assert_eq!(class, expected, "{name}");
            let doc = serde_json::json!({ name.clone(): "US42", "n": 1 });
            assert!(classify_json(&doc).level < Level::Restricted, "{name}");
        }
    }
}
