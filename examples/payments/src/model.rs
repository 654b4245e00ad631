//! The payments domain: what a caller sends, what is stored, what is returned.

use serde::{Deserialize, Serialize};

use crate::card::{CardError, CardNumber};
use crate::currency;

/// The largest amount accepted, in minor units (a sanity bound, not a business limit).
pub const MAX_AMOUNT: u64 = 100_000_000_000;

/// A request to create a payment.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreatePayment {
    /// A caller-chosen id; generated when absent.
    #[serde(default)]
    pub id: Option<String>,
    /// The card number as typed.
    pub card_number: String,
    /// The amount in minor units (cents for USD, yen for JPY).
    pub amount: u64,
    /// The ISO 4217 currency code.
    pub currency: String,
    /// Who pays.
    pub customer: Customer,
    /// A free-text description.
    #[serde(default)]
    pub description: Option<String>,
}

impl std::fmt::Debug for CreatePayment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatePayment")
            .field("id", &self.id)
            .field("card_number", &"[redacted]")
            .field("amount", &self.amount)
            .field("currency", &self.currency)
            .finish()
    }
}

/// The customer of a payment.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Customer {
    /// The customer's id in the tenant's system.
    pub id: String,
    /// The customer's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The customer's email address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Where the customer lives (ISO 3166-1 alpha-2): decides data residency rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
}

/// A request to refund (part of) a payment.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRefund {
    /// The amount to refund, in minor units.
    pub amount: u64,
    /// Why.
    #[serde(default)]
    pub reason: Option<String>,
}

/// A validation failure: the field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// The request field at fault.
    pub field: &'static str,
    /// What is wrong.
    pub detail: String,
}

fn invalid(field: &'static str, detail: impl Into<String>) -> Invalid {
    Invalid { field, detail: detail.into() }
}

/// Ids are short and plain: they become DynamoDB keys and appear in URLs.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A validated amount in minor units.
pub fn validate_amount(field: &'static str, amount: u64) -> Result<u64, Invalid> {
    if amount == 0 {
        return Err(invalid(field, "the amount must be positive"));
    }
    if amount > MAX_AMOUNT {
        return Err(invalid(field, format!("the amount must be at most {MAX_AMOUNT} minor units")));
    }
    Ok(amount)
}

/// A payment that passed validation, ready to store.
#[derive(Debug, Clone)]
pub struct NewPayment {
    /// The payment id.
    pub id: String,
    /// The validated card.
    pub card: CardNumber,
    /// The amount in minor units.
    pub amount: u64,
    /// The ISO 4217 code.
    pub currency: String,
    /// The customer.
    pub customer: Customer,
    /// A description.
    pub description: Option<String>,
}

impl CreatePayment {
    /// Validates the request: id, Luhn, known currency, positive amount, customer.
    pub fn validate(self) -> Result<NewPayment, Invalid> {
        let id = match self.id {
            Some(id) if valid_id(&id) => id,
            Some(_) => return Err(invalid("id", "the id must be 1 to 64 letters, digits, '_' or '-'")),
            None => format!("pay_{}", uuid::Uuid::new_v4().simple()),
        };
        let card = CardNumber::parse(&self.card_number)
            .map_err(|e: CardError| invalid("card_number", e.to_string()))?;
        let amount = validate_amount("amount", self.amount)?;
        if currency::minor_units(&self.currency).is_none() {
            return Err(invalid("currency", "the currency must be an ISO 4217 code such as USD"));
        }
        if !valid_id(&self.customer.id) {
            return Err(invalid(
                "customer.id",
                "the customer id must be 1 to 64 letters, digits, '_' or '-'",
            ));
        }
        if let Some(email) = &self.customer.email {
            let ok = email.len() <= 254
                && email.split_once('@').is_some_and(|(local, domain)| {
                    !local.is_empty()
                        && domain.contains('.')
                        && !domain.starts_with('.')
                        && !domain.ends_with('.')
                })
                && !email.chars().any(char::is_whitespace);
            if !ok {
                return Err(invalid("customer.email", "the email address is not valid"));
            }
        }
        if self
            .customer
            .country
            .as_ref()
            .is_some_and(|c| c.len() != 2 || !c.bytes().all(|b| b.is_ascii_uppercase()))
        {
            return Err(invalid(
                "customer.country",
                "the country must be an ISO 3166-1 alpha-2 code, e.g. DE",
            ));
        }
        if self.customer.name.as_ref().is_some_and(|n| n.chars().count() > 200) {
            return Err(invalid("customer.name", "the name must be at most 200 characters"));
        }
        if self.description.as_ref().is_some_and(|d| d.chars().count() > 500) {
            return Err(invalid("description", "the description must be at most 500 characters"));
        }
        Ok(NewPayment {
            id,
            card,
            amount,
            currency: self.currency,
            customer: self.customer,
            description: self.description,
        })
    }
}

/// The status of a payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Captured, nothing refunded.
    Succeeded,
    /// Part of the amount refunded.
    PartiallyRefunded,
    /// The whole amount refunded.
    Refunded,
}

impl Status {
    /// The status of a payment of `amount` of which `refunded` has been refunded.
    pub fn of(amount: u64, refunded: u64) -> Self {
        match refunded {
            0 => Status::Succeeded,
            r if r >= amount => Status::Refunded,
            _ => Status::PartiallyRefunded,
        }
    }
}

/// The card as the API shows it: never the number.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CardSummary {
    /// The brand.
    pub brand: String,
    /// The last four digits.
    pub last4: String,
    /// A keyed fingerprint of the number.
    pub fingerprint: String,
}

/// A payment as stored and returned.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Payment {
    /// The payment id.
    pub id: String,
    /// The amount in minor units.
    pub amount: u64,
    /// The ISO 4217 code.
    pub currency: String,
    /// The status.
    pub status: Status,
    /// How much has been refunded.
    pub refunded_amount: u64,
    /// The card.
    pub card: CardSummary,
    /// The customer.
    pub customer: Customer,
    /// A description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// When it was created (RFC 3339).
    pub created_at: String,
}

/// A refund as returned.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Refund {
    /// The refund id.
    pub id: String,
    /// The payment refunded.
    pub payment_id: String,
    /// The amount refunded.
    pub amount: u64,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When (RFC 3339).
    pub created_at: String,
    /// The payment after the refund.
    pub payment: Payment,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(card: &str, amount: u64, currency: &str) -> CreatePayment {
        CreatePayment {
            id: None,
            card_number: card.into(),
            amount,
            currency: currency.into(),
            customer: Customer {
                id: "c_1".into(),
                name: None,
                email: Some("a@example.com".into()),
                country: None,
            },
            description: None,
        }
    }

    #[test]
    fn validation_names_the_field() {
        assert_eq!(request("4111111111111112", 100, "USD").validate().unwrap_err().field, "card_number");
        assert_eq!(request("4111111111111111", 0, "USD").validate().unwrap_err().field, "amount");
        assert_eq!(
            request("4111111111111111", MAX_AMOUNT + 1, "USD").validate().unwrap_err().field,
            "amount"
        );
        assert_eq!(request("4111111111111111", 100, "ZZZ").validate().unwrap_err().field, "currency");
        let mut bad_email = request("4111111111111111", 100, "USD");
        bad_email.customer.email = Some("not-an-email".into());
        assert_eq!(bad_email.validate().unwrap_err().field, "customer.email");
        let mut bad_id = request("4111111111111111", 100, "USD");
        bad_id.id = Some("../etc".into());
        assert_eq!(bad_id.validate().unwrap_err().field, "id");
    }

    #[test]
    fn valid_request_gets_an_id() {
        let p = request("4111 1111 1111 1111", 1999, "EUR").validate().unwrap();
        assert!(p.id.starts_with("pay_"));
        assert_eq!(p.card.last4(), "1111");
    }

    #[test]
    fn debug_redacts_the_card() {
        let dbg = format!("{:?}", request("4111111111111111", 1, "USD"));
        assert!(!dbg.contains("4111111111111111"), "{dbg}");
    }
}
