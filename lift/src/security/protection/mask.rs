//! Masking: partial, full, keyed hash, tokenize and redact, applied per class.

use hmac::{Hmac, Mac};
use rand::RngCore;
use serde_json::Value;
use sha2::Sha256;

use super::classify::{with_number_text, Classifier, DataClass};
use super::detect::{self, Match, Profile};
use super::ProtectionError;

/// How a sensitive value is replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaskStrategy {
    /// Everything but the last four digits (or characters) becomes `*`: `************1111`.
    Partial,
    /// Every character becomes `*`.
    Full,
    /// HMAC-SHA256 under the policy's key, hex: equal values stay joinable, never reversible.
    /// One policy hashes a value alike in every tenant, so a pseudonymised email links one
    /// tenant's records to another's; [`Policy::for_tenant`] gives each tenant hashes of its
    /// own (the vault's [`tokenize_json`](super::TokenVault::tokenize_json) uses it).
    KeyedHash,
    /// A vault token ([`TokenVault::tokenize_json`](super::TokenVault::tokenize_json));
    /// the synchronous [`mask_json`] redacts instead, as it has no vault.
    Tokenize,
    /// `[REDACTED:<class>]`.
    Redact,
}

/// The key of keyed hashes (HMAC-SHA256); never logged.
///
/// Holds the HMAC already keyed (its inner and outer pads absorbed), so each hash clones
/// that state instead of keying again.
#[derive(Clone)]
pub struct HashKey(Hmac<Sha256>);

impl HashKey {
    /// The shortest key [`try_new`](Self::try_new) accepts, in bytes.
    pub const MIN_LEN: usize = 32;

    /// A key from bytes; prefer [`try_new`](Self::try_new), which refuses short keys.
    ///
    /// # Panics
    ///
    /// When `key` is empty: the HMAC under a known key is a public hash, and a hashed
    /// email or name is found again by hashing a list of them.
    pub fn new(key: impl Into<Vec<u8>>) -> Self {
        let key = key.into();
        assert!(!key.is_empty(), "a hash key must not be empty");
        Self::keyed(&key)
    }

    /// A key from bytes, refused ([`ProtectionError::Config`]) when shorter than
    /// [`MIN_LEN`](Self::MIN_LEN) bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// use lift::security::protection::HashKey;
    /// assert!(HashKey::try_new(*b"an example key of thirty-two b!!").is_ok());
    /// assert!(HashKey::try_new(Vec::new()).is_err());
    /// ```
    pub fn try_new(key: impl Into<Vec<u8>>) -> Result<Self, ProtectionError> {
        let key = key.into();
        if key.len() < Self::MIN_LEN {
            return Err(ProtectionError::Config(format!(
                "a hash key must be at least {} bytes",
                Self::MIN_LEN
            )));
        }
        Ok(Self::keyed(&key))
    }

    /// A random key of [`MIN_LEN`](Self::MIN_LEN) bytes, for hashes that only need to be
    /// equal within one process (nothing hashed under it can be joined with anything
    /// hashed elsewhere or later).
    pub fn random() -> Self {
        let mut key = [0u8; Self::MIN_LEN];
        rand::thread_rng().fill_bytes(&mut key);
        Self::keyed(&key)
    }

    /// A key of `tenant`'s own, derived from this one: hashes under it join within the
    /// tenant and with no other tenant's.
    pub fn for_tenant(&self, tenant: &str) -> Self {
        let mut mac = self.0.clone();
        mac.update(b"lift tenant hash key\0");
        mac.update(tenant.as_bytes());
        Self::keyed(&mac.finalize().into_bytes())
    }

    fn keyed(key: &[u8]) -> Self {
        Self(<Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length"))
    }

    /// HMAC-SHA256 of the parts (each length-prefixed so parts cannot run together), hex.
    pub fn hash_hex(&self, parts: &[&[u8]]) -> String {
        let mut out = String::with_capacity(64);
        self.hash_hex_into(parts, &mut out);
        out
    }

    /// [`hash_hex`](Self::hash_hex) appended to `out`.
    fn hash_hex_into(&self, parts: &[&[u8]], out: &mut String) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut mac = self.0.clone();
        for p in parts {
            mac.update(&(p.len() as u64).to_be_bytes());
            mac.update(p);
        }
        out.reserve(64);
        for b in mac.finalize().into_bytes() {
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
}

impl std::fmt::Debug for HashKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HashKey(..)")
    }
}

/// A masking policy: a strategy per class, the classifier and the hash key.
///
/// # Examples
///
/// ```
/// use lift::security::protection::{mask_json, DataClass, HashKey, MaskStrategy, Policy};
/// let policy = Policy::new(HashKey::new(*b"an example key of thirty-two b!!"));
/// let mut doc = serde_json::json!({ "card_number": "4111111111111111", "ssn": "123-45-6789" });
/// mask_json(&mut doc, &policy);
/// assert_eq!(doc["card_number"], "************1111");
/// assert_eq!(doc["ssn"], "[REDACTED:ssn]");
/// ```
#[derive(Debug, Clone)]
pub struct Policy {
    /// The strategy of each class, indexed by `class as usize`.
    strategies: [MaskStrategy; DataClass::COUNT],
    classifier: Classifier,
    key: HashKey,
}

impl Policy {
    /// The default policy: PANs partial, emails keyed-hashed, everything else redacted.
    pub fn new(key: HashKey) -> Self {
        let mut strategies = [MaskStrategy::Redact; DataClass::COUNT];
        strategies[DataClass::Pan as usize] = MaskStrategy::Partial;
        strategies[DataClass::Email as usize] = MaskStrategy::KeyedHash;
        Self { strategies, classifier: Classifier::default(), key }
    }

    /// Sets the strategy of a class.
    pub fn strategy(mut self, class: DataClass, strategy: MaskStrategy) -> Self {
        self.strategies[class as usize] = strategy;
        self
    }

    /// Sets the classifier.
    pub fn classifier(mut self, classifier: Classifier) -> Self {
        self.classifier = classifier;
        self
    }

    /// The strategy of a class.
    pub fn strategy_for(&self, class: DataClass) -> MaskStrategy {
        self.strategies[class as usize]
    }

    /// This policy with `tenant`'s own hash key ([`HashKey::for_tenant`]): the same email
    /// hashes apart in two tenants, alike within one.
    ///
    /// # Examples
    ///
    /// ```
    /// use lift::security::protection::{DataClass, HashKey, Policy};
    /// let policy = Policy::new(HashKey::new(*b"an example key of thirty-two b!!"));
    /// let in_acme = policy.for_tenant("acme").mask_value(DataClass::Email, "ada@example.com");
    /// let in_globex = policy.for_tenant("globex").mask_value(DataClass::Email, "ada@example.com");
    /// assert_ne!(in_acme, in_globex);
    /// assert_eq!(in_acme, policy.for_tenant("acme").mask_value(DataClass::Email, "ada@example.com"));
    /// ```
    pub fn for_tenant(&self, tenant: &str) -> Self {
        Self { key: self.key.for_tenant(tenant), ..self.clone() }
    }

    /// Whether some class is masked with `strategy`.
    pub(crate) fn uses(&self, strategy: MaskStrategy) -> bool {
        self.strategies.contains(&strategy)
    }

    /// The hash key.
    pub fn key(&self) -> &HashKey {
        &self.key
    }

    /// The classifier.
    pub fn classifier_ref(&self) -> &Classifier {
        &self.classifier
    }

    /// Masks one value of a class with the class's strategy.
    pub fn mask_value(&self, class: DataClass, value: &str) -> String {
        apply(self.strategy_for(class), class, value, &self.key)
    }

    /// [`mask_value`](Self::mask_value) appended to `out`.
    fn mask_value_into(&self, class: DataClass, value: &str, out: &mut String) {
        apply_into(self.strategy_for(class), class, value, &self.key, out);
    }
}

/// Applies a strategy to a value.
pub fn apply(strategy: MaskStrategy, class: DataClass, value: &str, key: &HashKey) -> String {
    let mut out = String::new();
    apply_into(strategy, class, value, key, &mut out);
    out
}

/// [`apply`] appended to `out`.
fn apply_into(strategy: MaskStrategy, class: DataClass, value: &str, key: &HashKey, out: &mut String) {
    match strategy {
        MaskStrategy::Partial => partial(value, out),
        MaskStrategy::Full => stars(value.chars().count().max(1), out),
        MaskStrategy::KeyedHash => key.hash_hex_into(&[class.as_str().as_bytes(), value.as_bytes()], out),
        MaskStrategy::Tokenize | MaskStrategy::Redact => {
            out.push_str("[REDACTED:");
            out.push_str(class.as_str());
            out.push(']');
        }
    }
}

fn stars(n: usize, out: &mut String) {
    out.extend(std::iter::repeat_n('*', n));
}

/// Last four kept: digits-only for numbers with separators, characters otherwise; short
/// values (eight characters or fewer) are masked whole, as four would reveal too much.
fn partial(value: &str, out: &mut String) {
    let digits = value.bytes().filter(u8::is_ascii_digit).count();
    if digits >= 9 {
        // The last four digits, the separators dropped.
        stars(digits - 4, out);
        out.extend(value.bytes().filter(u8::is_ascii_digit).skip(digits - 4).map(char::from));
        return;
    }
    let chars = value.chars().count();
    if chars <= 8 {
        return stars(chars.max(1), out);
    }
    stars(chars - 4, out);
    let (last_four, _) = value.char_indices().nth_back(3).unwrap_or((0, ' '));
    out.push_str(&value[last_four..]);
}

/// Masks every sensitive value of a JSON document in place, per the policy's strategies.
/// Whole values are replaced when their field or content is sensitive; inside free text
/// only the sensitive spans are.
pub fn mask_json(value: &mut Value, policy: &Policy) {
    walk(value, None, &mut Walk { policy, tokens: &[], spans: Vec::new() });
}

/// [`mask_json`] of a document whose card numbers were just replaced by vault `tokens`:
/// a value holding a token keeps it, whatever its field's name says (`card_number` names
/// a card number, and the synchronous masker would redact the token in it).
pub(super) fn mask_json_keeping_tokens(value: &mut Value, policy: &Policy, tokens: &[&str]) {
    walk(value, None, &mut Walk { policy, tokens, spans: Vec::new() });
}

/// What a walk over a document needs; `spans` is scratch space, reused for every value.
struct Walk<'a> {
    policy: &'a Policy,
    tokens: &'a [&'a str],
    spans: Vec<Match>,
}

fn walk(value: &mut Value, field: Option<&str>, w: &mut Walk<'_>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                walk(v, Some(k), w);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| walk(v, field, w)),
        Value::String(s) => {
            if let Some(masked) = mask_scalar(field, s, w) {
                *s = masked;
            }
        }
        Value::Number(n) => {
            if let Some(masked) = with_number_text(n, |text| mask_scalar(field, text, w)) {
                *value = Value::String(masked);
            }
        }
        Value::Bool(_) | Value::Null => {}
    }
}

/// The masked text, or `None` when nothing is sensitive.
///
/// The whole value is masked when its content is sensitive, or its field name is and the
/// text holds no span of that same class (then only the spans are: a `note` field with
/// an email in it keeps the rest of the note).
///
/// A card-number field holding a vault token (`w.tokens`) is left to the span scan: the
/// token is what the vault returns the card by.
fn mask_scalar(field: Option<&str>, text: &str, w: &mut Walk<'_>) -> Option<String> {
    let Walk { policy, tokens, spans } = w;
    let profile = Profile::of(text);
    if let Some(class) = detect::detect_value_in(text, &profile) {
        return Some(policy.mask_value(class, text));
    }
    let by_field = policy.classifier.field_class(field, text);
    detect::scan_text_in(text, &profile, spans);
    let tokenized = |c: &DataClass| *c == DataClass::Pan && tokens.iter().any(|t| text.contains(t));
    if let Some(class) = by_field.filter(|c| !spans.iter().any(|m| m.class == *c) && !tokenized(c)) {
        return Some(policy.mask_value(class, text));
    }
    mask_with_spans(text, spans, policy)
}

/// Replaces sensitive spans of free text, or `None` when there are none.
pub fn mask_spans(text: &str, policy: &Policy) -> Option<String> {
    mask_with_spans(text, &detect::scan_text(text), policy)
}

/// Overlapping spans (sorted by start) are masked as one: their union, as the most
/// sensitive of their classes. Skipping the later of two spans would leave its tail in
/// clear (a PEM key's match starts at byte 0, where an email may start too).
fn mask_with_spans(text: &str, spans: &[Match], policy: &Policy) -> Option<String> {
    if spans.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(text.len() + 16);
    let mut at = 0;
    let mut rest = spans.iter().peekable();
    while let Some(first) = rest.next() {
        let (start, mut end, mut class) = (first.start.max(at), first.end, first.class);
        while let Some(m) = rest.next_if(|m| m.start < end) {
            end = end.max(m.end);
            if m.class.level() > class.level() {
                class = m.class;
            }
        }
        if end <= start {
            continue;
        }
        out.push_str(&text[at..start]);
        policy.mask_value_into(class, &text[start..end], &mut out);
        at = end;
    }
    out.push_str(&text[at..]);
    Some(out)
}
