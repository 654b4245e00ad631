//! Masking: partial, full, keyed hash, tokenize and redact, applied per class.

use std::collections::HashMap;
use std::fmt::Write as _;

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use super::classify::{Classifier, DataClass};
use super::detect;

/// How a sensitive value is replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaskStrategy {
    /// Everything but the last four digits (or characters) becomes `*`: `************1111`.
    Partial,
    /// Every character becomes `*`.
    Full,
    /// HMAC-SHA256 under the policy's key, hex: equal values stay joinable, never reversible.
    KeyedHash,
    /// A vault token ([`TokenVault::tokenize_json`](super::TokenVault::tokenize_json));
    /// the synchronous [`mask_json`] redacts instead, as it has no vault.
    Tokenize,
    /// `[REDACTED:<class>]`.
    Redact,
}

/// The key of keyed hashes (HMAC-SHA256); never logged.
#[derive(Clone)]
pub struct HashKey(Vec<u8>);

impl HashKey {
    /// A key from bytes (at least 32 bytes are recommended).
    pub fn new(key: impl Into<Vec<u8>>) -> Self {
        Self(key.into())
    }

    /// HMAC-SHA256 of the parts (each length-prefixed so parts cannot run together), hex.
    pub fn hash_hex(&self, parts: &[&[u8]]) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes any key length");
        for p in parts {
            mac.update(&(p.len() as u64).to_be_bytes());
            mac.update(p);
        }
        let bytes = mac.finalize().into_bytes();
        let mut out = String::with_capacity(64);
        for b in bytes {
            let _ = write!(out, "{b:02x}");
        }
        out
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
    strategies: HashMap<DataClass, MaskStrategy>,
    default: MaskStrategy,
    classifier: Classifier,
    key: HashKey,
}

impl Policy {
    /// The default policy: PANs partial, emails keyed-hashed, everything else redacted.
    pub fn new(key: HashKey) -> Self {
        let strategies =
            [(DataClass::Pan, MaskStrategy::Partial), (DataClass::Email, MaskStrategy::KeyedHash)].into();
        Self { strategies, default: MaskStrategy::Redact, classifier: Classifier::default(), key }
    }

    /// Sets the strategy of a class.
    pub fn strategy(mut self, class: DataClass, strategy: MaskStrategy) -> Self {
        self.strategies.insert(class, strategy);
        self
    }

    /// Sets the classifier.
    pub fn classifier(mut self, classifier: Classifier) -> Self {
        self.classifier = classifier;
        self
    }

    /// The strategy of a class.
    pub fn strategy_for(&self, class: DataClass) -> MaskStrategy {
        self.strategies.get(&class).copied().unwrap_or(self.default)
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
}

/// Applies a strategy to a value.
pub fn apply(strategy: MaskStrategy, class: DataClass, value: &str, key: &HashKey) -> String {
    match strategy {
        MaskStrategy::Partial => partial(value),
        MaskStrategy::Full => "*".repeat(value.chars().count().max(1)),
        MaskStrategy::KeyedHash => key.hash_hex(&[class.as_str().as_bytes(), value.as_bytes()]),
        MaskStrategy::Tokenize | MaskStrategy::Redact => format!("[REDACTED:{}]", class.as_str()),
    }
}

/// Last four kept: digits-only for numbers with separators, characters otherwise; short
/// values (eight characters or fewer) are masked whole, as four would reveal too much.
fn partial(value: &str) -> String {
    let digits: Vec<char> = value.chars().filter(char::is_ascii_digit).collect();
    let chars: Vec<char> = if digits.len() >= 9 { digits } else { value.chars().collect() };
    if chars.len() <= 8 {
        return "*".repeat(chars.len().max(1));
    }
    let keep = chars.len() - 4;
    let mut out = "*".repeat(keep);
    out.extend(&chars[keep..]);
    out
}

/// Masks every sensitive value of a JSON document in place, per the policy's strategies.
/// Whole values are replaced when their field or content is sensitive; inside free text
/// only the sensitive spans are.
pub fn mask_json(value: &mut Value, policy: &Policy) {
    walk(value, None, policy);
}

fn walk(value: &mut Value, field: Option<&str>, policy: &Policy) {
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                walk(v, Some(k), policy);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| walk(v, field, policy)),
        Value::String(s) => {
            if let Some(masked) = mask_scalar(field, s, policy) {
                *s = masked;
            }
        }
        Value::Number(n) => {
            let text = n.to_string();
            if let Some(masked) = mask_scalar(field, &text, policy) {
                *value = Value::String(masked);
            }
        }
        Value::Bool(_) | Value::Null => {}
    }
}

/// The masked text, or `None` when nothing is sensitive.
pub(crate) fn mask_scalar(field: Option<&str>, text: &str, policy: &Policy) -> Option<String> {
    let whole = detect::detect_value(text).or_else(|| {
        let classes = policy.classifier.classify_scalar(field, text);
        // Whole-value classes are those from the field name; text findings are spans.
        let spans = detect::scan_text(text);
        classes.first().copied().filter(|c| !spans.iter().any(|m| m.class == *c))
    });
    if let Some(class) = whole {
        return Some(policy.mask_value(class, text));
    }
    mask_spans(text, policy)
}

/// Replaces sensitive spans of free text, or `None` when there are none.
pub fn mask_spans(text: &str, policy: &Policy) -> Option<String> {
    let spans = detect::scan_text(text);
    if spans.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for m in spans {
        if m.start < at {
            continue;
        }
        out.push_str(&text[at..m.start]);
        out.push_str(&policy.mask_value(m.class, &text[m.start..m.end]));
        at = m.end;
    }
    out.push_str(&text[at..]);
    Some(out)
}
