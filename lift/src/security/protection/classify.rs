//! Classification of JSON documents by field name and by value.

use std::collections::HashMap;

use serde_json::Value;

use super::detect;

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

/// Field names normalised: lowercase without `_`, `-` (so `cardNumber` = `card_number`).
pub(crate) fn normalise(name: &str) -> String {
    name.chars().filter(|c| *c != '_' && *c != '-').flat_map(char::to_lowercase).collect()
}

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
#[derive(Debug, Clone)]
pub struct Classifier {
    fields: HashMap<String, DataClass>,
}

impl Default for Classifier {
    fn default() -> Self {
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
        Self { fields: pairs.iter().map(|(k, v)| (normalise(k), *v)).collect() }
    }
}

impl Classifier {
    /// A classifier with no field names (value detectors only).
    pub fn empty() -> Self {
        Self { fields: HashMap::new() }
    }

    /// Maps a field name (any case, `_`/`-` ignored) to a class.
    pub fn field(mut self, name: &str, class: DataClass) -> Self {
        self.fields.insert(normalise(name), class);
        self
    }

    /// The class a field name maps to.
    pub fn class_of_field(&self, name: &str) -> Option<DataClass> {
        self.fields.get(&normalise(name)).copied()
    }

    /// Classifies a scalar under `field`: the value detectors win over the name (a PAN
    /// is Restricted whatever its field), then the name, then text scanning.
    pub(crate) fn classify_scalar(&self, field: Option<&str>, text: &str) -> Vec<DataClass> {
        if let Some(class) = detect::detect_value(text) {
            return vec![class];
        }
        if let Some(field) = field {
            let norm = normalise(field);
            if let Some(class) = self.fields.get(&norm).copied() {
                // A date-of-birth field holds a date; a mistyped field is not a finding.
                if class != DataClass::DateOfBirth || detect::is_plausible_date(text) {
                    return vec![class];
                }
            }
            if (norm.contains("secret") || norm.contains("token") || norm.ends_with("key"))
                && detect::is_high_entropy(text)
            {
                return vec![DataClass::Secret];
            }
        }
        let mut classes: Vec<DataClass> = detect::scan_text(text).into_iter().map(|m| m.class).collect();
        classes.dedup();
        classes
    }

    /// Classifies a JSON document.
    pub fn classify(&self, value: &Value) -> Classification {
        let mut findings = Vec::new();
        self.walk(value, None, &mut String::new(), &mut findings);
        let level = findings.iter().map(|f| f.level).max().unwrap_or(Level::Public);
        Classification { level, findings }
    }

    fn walk(&self, value: &Value, field: Option<&str>, path: &mut String, out: &mut Vec<Finding>) {
        let len = path.len();
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    path.push('/');
                    path.push_str(&k.replace('~', "~0").replace('/', "~1"));
                    self.walk(v, Some(k), path, out);
                    path.truncate(len);
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    path.push('/');
                    path.push_str(&i.to_string());
                    self.walk(v, field, path, out);
                    path.truncate(len);
                }
            }
            Value::String(s) => self.push(field, s, path, out),
            Value::Number(n) => self.push(field, &n.to_string(), path, out),
            Value::Bool(_) | Value::Null => {}
        }
    }

    fn push(&self, field: Option<&str>, text: &str, path: &str, out: &mut Vec<Finding>) {
        for class in self.classify_scalar(field, text) {
            out.push(Finding { path: path.to_owned(), class, level: class.level() });
        }
    }
}

/// Classifies a document with the default [`Classifier`].
pub fn classify_json(value: &Value) -> Classification {
    Classifier::default().classify(value)
}
