//! Format-preserving PAN tokenization with a DynamoDB token vault.
//!
//! Items in [`tables::tokens()`](crate::store::tables::tokens):
//! - `TOKEN#<tenant>#<token>` → the PAN, envelope-encrypted for the tenant, and its keyed hash;
//! - `PANHASH#<tenant>#<keyed hash of the PAN>` → the token, so the same PAN in the same
//!   tenant always gets the same token. Both are written with conditional puts.
//!
//! A token keeps the PAN's length and last four digits, and fails the Luhn check, so it
//! can never be mistaken for a real card.
//!
//! A token is derived from the PAN (a keyed hash of the tenant and the PAN, see
//! [`TokenVault::candidate`]), and the vault checks that link both ways, so an attacker
//! who can write the table cannot redirect a token: a `TOKEN#` item whose PAN does not
//! derive its token (another card's ciphertext copied in, so that refunds to a customer's
//! token reach the attacker's card) is refused on detokenize, and a `PANHASH#` item naming
//! a token its PAN does not derive is refused on tokenize, both with
//! [`ProtectionError::Tampered`].

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use serde_json::Value;

use super::detect::{self, luhn_valid};
use super::envelope::Envelope;
use super::mask::{mask_json_keeping_tokens, HashKey, MaskStrategy, Policy};
use super::{DataClass, ProtectionError};
use crate::Context;

/// The role that may detokenize by default.
pub const DETOKENIZE_ROLE: &str = "pan:detokenize";

/// Attempts at a fresh token before giving up (collisions are astronomically rare).
const ATTEMPTS: u32 = 8;

/// A token vault in DynamoDB.
///
/// # Examples
///
/// ```no_run
/// # async fn run(client: aws_sdk_dynamodb::Client, envelope: lift::security::protection::Envelope)
/// # -> Result<(), lift::security::protection::ProtectionError> {
/// use lift::security::protection::{HashKey, TokenVault};
/// let vault = TokenVault::new(client, "lift-tokens", HashKey::new(*b"an example key of thirty-two b!!"), envelope);
/// let token = vault.tokenize("tenant-a", "4111111111111111").await?;
/// assert!(token.ends_with("1111"));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct TokenVault {
    client: Client,
    table: String,
    key: HashKey,
    envelope: Envelope,
    role: String,
    ttl: Option<Duration>,
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn store_err(e: impl std::fmt::Display) -> ProtectionError {
    ProtectionError::Store(e.to_string())
}

impl TokenVault {
    /// A vault in `table`, hashing PANs under `key`, encrypting them with `envelope`.
    ///
    /// `key` derives the tokens: keep it for the vault's life. A vault under another key
    /// refuses every token the old key derived ([`ProtectionError::Tampered`]).
    pub fn new(client: Client, table: impl Into<String>, key: HashKey, envelope: Envelope) -> Self {
        Self { client, table: table.into(), key, envelope, role: DETOKENIZE_ROLE.into(), ttl: None }
    }

    /// Sets the role required to detokenize (default [`DETOKENIZE_ROLE`]).
    pub fn detokenize_role(mut self, role: impl Into<String>) -> Self {
        self.role = role.into();
        self
    }

    /// Sets a retention for vault items (`expires_at`); by default they do not expire.
    pub fn retention(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// The candidate token number `attempt` for a PAN in a tenant: derived from a keyed
    /// hash, so it is deterministic per tenant and differs across tenants.
    pub fn candidate(&self, tenant: &str, digits: &str, attempt: u32) -> String {
        let hex =
            self.key.hash_hex(&[b"token", tenant.as_bytes(), digits.as_bytes(), &attempt.to_be_bytes()]);
        let n = digits.len();
        let mut token: Vec<u8> = hex.bytes().cycle().take(n - 4).map(|c| b'0' + (c % 10)).collect();
        token.extend_from_slice(&digits.as_bytes()[n - 4..]);
        if luhn_valid(&token) {
            // Any change of one digit breaks the Luhn sum.
            token[0] = b'0' + (token[0] - b'0' + 1) % 10;
        }
        String::from_utf8(token).expect("ascii digits")
    }

    /// Whether `token` is one of the candidates of `digits` in `tenant`: the link from a
    /// PAN to its token that no write to the table can forge without the hash key.
    fn derives(&self, tenant: &str, digits: &str, token: &str) -> bool {
        digits.len() == token.len()
            && (0..ATTEMPTS).any(|attempt| self.candidate(tenant, digits, attempt) == token)
    }

    /// The token a `PANHASH#` item names, refused unless `digits` derive it.
    async fn checked_reverse(
        &self,
        tenant: &str,
        digits: &str,
        pk: &str,
    ) -> Result<Option<String>, ProtectionError> {
        match self.reverse(pk).await? {
            Some(token) if !self.derives(tenant, digits, &token) => {
                tracing::warn!(
                    tenant,
                    "token vault: a card number's lookup item names a token it does not derive"
                );
                Err(ProtectionError::Tampered)
            }
            found => Ok(found),
        }
    }

    fn expires_at(&self) -> Option<AttributeValue> {
        let ttl = self.ttl?;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        Some(AttributeValue::N((now + ttl).as_secs().to_string()))
    }

    /// The token of a PAN for a tenant: the existing one, or a new one. Refused
    /// ([`ProtectionError::Tampered`]) when the PAN's lookup item names a token the PAN does
    /// not derive.
    pub async fn tokenize(&self, tenant: &str, pan: &str) -> Result<String, ProtectionError> {
        if !detect::is_pan(pan) {
            return Err(ProtectionError::NotAPan);
        }
        let digits: String = pan.chars().filter(char::is_ascii_digit).collect();
        let pan_hash = self.key.hash_hex(&[b"pan", tenant.as_bytes(), digits.as_bytes()]);
        let reverse_pk = format!("PANHASH#{tenant}#{pan_hash}");
        if let Some(token) = self.checked_reverse(tenant, &digits, &reverse_pk).await? {
            return Ok(token);
        }
        let ciphertext = self.envelope.encrypt(tenant, digits.as_bytes()).await?;
        for attempt in 0..ATTEMPTS {
            let token = self.candidate(tenant, &digits, attempt);
            let pk = format!("TOKEN#{tenant}#{token}");
            let mut put = self
                .client
                .put_item()
                .table_name(&self.table)
                .item("pk", s(&pk))
                .item("pan", AttributeValue::B(ciphertext.clone().into()))
                .item("pan_hash", s(&pan_hash))
                .condition_expression("attribute_not_exists(pk)");
            if let Some(exp) = self.expires_at() {
                put = put.item("expires_at", exp);
            }
            let put = put.send().await;
            match put {
                Ok(_) => {}
                Err(e) if is_conditional(&e) => {
                    // Same PAN written concurrently: same token. Otherwise a collision.
                    if self.token_pan_hash(&pk).await?.as_deref() != Some(pan_hash.as_str()) {
                        continue;
                    }
                }
                Err(e) => return Err(store_err(aws_sdk_dynamodb::error::DisplayErrorContext(e))),
            }
            let mut reverse = self
                .client
                .put_item()
                .table_name(&self.table)
                .item("pk", s(&reverse_pk))
                .item("token", s(&token))
                .condition_expression("attribute_not_exists(pk)");
            if let Some(exp) = self.expires_at() {
                reverse = reverse.item("expires_at", exp);
            }
            return match reverse.send().await {
                Ok(_) => Ok(token),
                Err(e) if is_conditional(&e) => self
                    .checked_reverse(tenant, &digits, &reverse_pk)
                    .await?
                    .ok_or(ProtectionError::TokenNotFound),
                Err(e) => Err(store_err(aws_sdk_dynamodb::error::DisplayErrorContext(e))),
            };
        }
        Err(ProtectionError::Store("no free token after 8 attempts".into()))
    }

    async fn reverse(&self, pk: &str) -> Result<Option<String>, ProtectionError> {
        let item = self.get(pk).await?;
        Ok(item.and_then(|i| i.get("token").and_then(|v| v.as_s().ok()).cloned()))
    }

    async fn token_pan_hash(&self, pk: &str) -> Result<Option<String>, ProtectionError> {
        let item = self.get(pk).await?;
        Ok(item.and_then(|i| i.get("pan_hash").and_then(|v| v.as_s().ok()).cloned()))
    }

    async fn get(&self, pk: &str) -> Result<Option<HashMap<String, AttributeValue>>, ProtectionError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_err(aws_sdk_dynamodb::error::DisplayErrorContext(e)))?;
        Ok(out.item)
    }

    /// The PAN of a token, for a principal holding the detokenize role; the tenant is the
    /// principal's. Refused ([`ProtectionError::Tampered`]) when the PAN the item holds does
    /// not derive the token.
    pub async fn detokenize(&self, ctx: &Context, token: &str) -> Result<String, ProtectionError> {
        let principal = ctx
            .principal()
            .filter(|p| p.has_role(&self.role))
            .ok_or_else(|| ProtectionError::NotPermitted { role: self.role.clone() })?;
        let tenant = principal.tenant.as_str();
        let item =
            self.get(&format!("TOKEN#{tenant}#{token}")).await?.ok_or(ProtectionError::TokenNotFound)?;
        let ct = item.get("pan").and_then(|v| v.as_b().ok()).ok_or(ProtectionError::TokenNotFound)?;
        let pan = self.envelope.decrypt(tenant, ct.as_ref()).await?;
        let pan = String::from_utf8(pan).map_err(|_| ProtectionError::Format)?;
        if !self.derives(tenant, &pan, token) {
            tracing::warn!(
                tenant,
                "token vault: a token item holds a card number that does not derive its token"
            );
            return Err(ProtectionError::Tampered);
        }
        Ok(pan)
    }

    /// Replaces every PAN of a document (whole values and inside text) by its token when
    /// the policy tokenizes PANs, then masks everything else per the policy, keyed hashes
    /// under the tenant's own key ([`Policy::for_tenant`]). A token stays in place whatever
    /// its field is named (`card_number`, `pan`).
    pub async fn tokenize_json(
        &self,
        tenant: &str,
        value: &mut Value,
        policy: &Policy,
    ) -> Result<(), ProtectionError> {
        let mut tokens = HashMap::new();
        if policy.strategy_for(DataClass::Pan) == MaskStrategy::Tokenize {
            let mut pans = Vec::new();
            collect_pans(value, &mut pans);
            pans.sort();
            pans.dedup();
            for pan in pans {
                let token = self.tokenize(tenant, &pan).await?;
                tokens.insert(pan, token);
            }
            replace_pans(value, &tokens);
        }
        let tokens: Vec<&str> = tokens.values().map(String::as_str).collect();
        // Keyed hashes of the tenant's own: one tenant's pseudonyms join no other's.
        let keyed = policy.uses(MaskStrategy::KeyedHash).then(|| policy.for_tenant(tenant));
        mask_json_keeping_tokens(value, keyed.as_ref().unwrap_or(policy), &tokens);
        Ok(())
    }
}

fn is_conditional<R>(
    e: &aws_sdk_dynamodb::error::SdkError<aws_sdk_dynamodb::operation::put_item::PutItemError, R>,
) -> bool {
    e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception())
}

fn digits_of(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

fn pans_in(text: &str) -> Vec<(usize, usize, String)> {
    if detect::is_pan(text) {
        return vec![(0, text.len(), digits_of(text))];
    }
    detect::scan_text(text)
        .into_iter()
        .filter(|m| m.class == DataClass::Pan)
        .map(|m| (m.start, m.end, digits_of(&text[m.start..m.end])))
        .collect()
}

fn collect_pans(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => map.values().for_each(|v| collect_pans(v, out)),
        Value::Array(items) => items.iter().for_each(|v| collect_pans(v, out)),
        Value::String(s) => out.extend(pans_in(s).into_iter().map(|p| p.2)),
        Value::Number(n) => out.extend(pans_in(&n.to_string()).into_iter().map(|p| p.2)),
        Value::Bool(_) | Value::Null => {}
    }
}

fn replace_text(text: &str, tokens: &HashMap<String, String>) -> Option<String> {
    let spans = pans_in(text);
    if spans.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (start, end, digits) in spans {
        out.push_str(&text[at..start]);
        out.push_str(tokens.get(&digits).map_or("[REDACTED:pan]", String::as_str));
        at = end;
    }
    out.push_str(&text[at..]);
    Some(out)
}

fn replace_pans(value: &mut Value, tokens: &HashMap<String, String>) {
    match value {
        Value::Object(map) => map.values_mut().for_each(|v| replace_pans(v, tokens)),
        Value::Array(items) => items.iter_mut().for_each(|v| replace_pans(v, tokens)),
        Value::String(s) => {
            if let Some(r) = replace_text(s, tokens) {
                *s = r;
            }
        }
        Value::Number(n) => {
            if let Some(r) = replace_text(&n.to_string(), tokens) {
                *value = Value::String(r);
            }
        }
        Value::Bool(_) | Value::Null => {}
    }
}
