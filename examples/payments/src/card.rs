//! Card numbers: validation, brand, and what may be kept of them.
//!
//! The service never stores or returns a full card number (PCI-DSS 3.4): it keeps the brand,
//! the last four digits and a keyed fingerprint (HMAC-SHA256) to spot the same card again.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// A card number that passed validation.
#[derive(Clone, PartialEq, Eq)]
pub struct CardNumber(String);

impl std::fmt::Debug for CardNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CardNumber(****{})", self.last4())
    }
}

/// Why a card number was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CardError {
    /// Characters other than digits, spaces and dashes.
    #[error("the card number may contain only digits, spaces and dashes")]
    NotDigits,
    /// Fewer than 12 or more than 19 digits.
    #[error("the card number must have 12 to 19 digits")]
    Length,
    /// The Luhn check digit does not match.
    #[error("the card number fails the Luhn check")]
    Luhn,
}

impl CardNumber {
    /// Validates a card number as typed (spaces and dashes allowed).
    pub fn parse(input: &str) -> Result<Self, CardError> {
        let mut digits = String::with_capacity(19);
        for c in input.chars() {
            match c {
                '0'..='9' => digits.push(c),
                ' ' | '-' => {}
                _ => return Err(CardError::NotDigits),
            }
        }
        if !(12..=19).contains(&digits.len()) {
            return Err(CardError::Length);
        }
        if !luhn_valid(&digits) {
            return Err(CardError::Luhn);
        }
        Ok(Self(digits))
    }

    /// The last four digits.
    pub fn last4(&self) -> &str {
        &self.0[self.0.len() - 4..]
    }

    /// The card brand from its issuer range.
    pub fn brand(&self) -> &'static str {
        brand(&self.0)
    }

    /// A keyed fingerprint: the same card under the same key gives the same value, and the
    /// value reveals nothing of the number without the key.
    pub fn fingerprint(&self, key: &[u8]) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
        mac.update(self.0.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

/// The Luhn (mod 10) check over a string of ASCII digits.
pub fn luhn_valid(digits: &str) -> bool {
    let mut sum = 0u32;
    for (i, b) in digits.bytes().rev().enumerate() {
        let mut d = u32::from(b - b'0');
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    sum % 10 == 0
}

fn prefix_in(digits: &str, len: usize, lo: u32, hi: u32) -> bool {
    digits.get(..len).and_then(|p| p.parse::<u32>().ok()).is_some_and(|p| (lo..=hi).contains(&p))
}

/// The brand of a card number by its IIN range.
pub fn brand(digits: &str) -> &'static str {
    let n = digits.len();
    if digits.starts_with('4') && matches!(n, 13 | 16 | 19) {
        "visa"
    } else if (prefix_in(digits, 2, 51, 55) || prefix_in(digits, 4, 2221, 2720)) && n == 16 {
        "mastercard"
    } else if (digits.starts_with("34") || digits.starts_with("37")) && n == 15 {
        "amex"
    } else if (digits.starts_with("6011") || digits.starts_with("65") || prefix_in(digits, 3, 644, 649))
        && (16..=19).contains(&n)
    {
        "discover"
    } else if prefix_in(digits, 4, 3528, 3589) && (16..=19).contains(&n) {
        "jcb"
    } else if (prefix_in(digits, 3, 300, 305) || digits.starts_with("36") || digits.starts_with("38"))
        && (14..=19).contains(&n)
    {
        "diners"
    } else if digits.starts_with("62") && (16..=19).contains(&n) {
        "unionpay"
    } else {
        "unknown"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Appends the Luhn check digit to a payload of digits.
    fn with_check_digit(payload: &str) -> String {
        (0..10).map(|d| format!("{payload}{d}")).find(|s| luhn_valid(s)).unwrap()
    }

    #[test]
    fn known_test_cards() {
        for (pan, brand) in [
            ("4111 1111 1111 1111", "visa"),
            ("5555-5555-5555-4444", "mastercard"),
            ("378282246310005", "amex"),
            ("6011111111111117", "discover"),
            ("3530111333300000", "jcb"),
        ] {
            let card = CardNumber::parse(pan).unwrap();
            assert_eq!(card.brand(), brand, "{pan}");
        }
        assert_eq!(CardNumber::parse("4111111111111112"), Err(CardError::Luhn));
        assert_eq!(CardNumber::parse("4111x11111111111"), Err(CardError::NotDigits));
        assert_eq!(CardNumber::parse("41111"), Err(CardError::Length));
    }

    #[test]
    fn debug_never_shows_the_number() {
        let card = CardNumber::parse("4111111111111111").unwrap();
        assert_eq!(format!("{card:?}"), "CardNumber(****1111)");
    }

    #[test]
    fn fingerprint_is_keyed() {
        let card = CardNumber::parse("4111111111111111").unwrap();
        assert_eq!(card.fingerprint(b"k1"), card.fingerprint(b"k1"));
        assert_ne!(card.fingerprint(b"k1"), card.fingerprint(b"k2"));
        assert!(!card.fingerprint(b"k1").contains("4111"));
    }

    proptest! {
        #[test]
        fn any_luhn_number_parses_and_any_single_digit_change_fails(payload in "[0-9]{11,18}", pos in 0usize..19, delta in 1u8..10) {
            let pan = with_check_digit(&payload);
            prop_assert!(CardNumber::parse(&pan).is_ok());
            let pos = pos % pan.len();
            let mut bytes = pan.into_bytes();
            bytes[pos] = b'0' + (bytes[pos] - b'0' + delta) % 10;
            let changed = String::from_utf8(bytes).unwrap();
            prop_assert_eq!(CardNumber::parse(&changed), Err(CardError::Luhn));
        }
    }
}
