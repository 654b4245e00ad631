//! Plain JSON to DynamoDB attribute values and back.
//!
//! Strings become `S`, numbers `N`, booleans `BOOL`, `null` `NULL`, arrays `L` and objects `M`.

use std::collections::HashMap;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine as _;
use serde_json::{Map, Number, Value};

use super::DynamoDbError;

/// The DynamoDB attribute value for a plain JSON value.
///
/// # Examples
///
/// ```
/// use aws_sdk_dynamodb::types::AttributeValue;
/// use lift_harness::dynamodb::json_to_attribute;
///
/// let value = json_to_attribute(&serde_json::json!([1, "a"]));
/// assert_eq!(
///     value,
///     AttributeValue::L(vec![AttributeValue::N("1".into()), AttributeValue::S("a".into())])
/// );
/// ```
pub fn json_to_attribute(value: &Value) -> AttributeValue {
    match value {
        Value::Null => AttributeValue::Null(true),
        Value::Bool(b) => AttributeValue::Bool(*b),
        Value::Number(n) => AttributeValue::N(n.to_string()),
        Value::String(s) => AttributeValue::S(s.clone()),
        Value::Array(items) => AttributeValue::L(items.iter().map(json_to_attribute).collect()),
        Value::Object(fields) => {
            AttributeValue::M(fields.iter().map(|(k, v)| (k.clone(), json_to_attribute(v))).collect())
        }
    }
}

/// The DynamoDB item for a plain JSON object; anything else is an error.
///
/// # Examples
///
/// ```
/// use aws_sdk_dynamodb::types::AttributeValue;
/// use lift_harness::dynamodb::json_to_item;
///
/// let item = json_to_item(&serde_json::json!({"pk": "tenant#1", "seq": 7})).unwrap();
/// assert_eq!(item["seq"], AttributeValue::N("7".into()));
/// assert!(json_to_item(&serde_json::json!([1])).is_err());
/// ```
pub fn json_to_item(value: &Value) -> Result<HashMap<String, AttributeValue>, DynamoDbError> {
    match value {
        Value::Object(fields) => Ok(fields.iter().map(|(k, v)| (k.clone(), json_to_attribute(v))).collect()),
        other => Err(DynamoDbError::NotAnItem(json_kind(other))),
    }
}

/// The plain JSON for a DynamoDB attribute value.
///
/// `N` becomes a JSON number when it fits one (else a string), binaries become base64
/// strings, and sets become arrays.
pub fn attribute_to_json(value: &AttributeValue) -> Value {
    match value {
        AttributeValue::S(s) => Value::String(s.clone()),
        AttributeValue::N(n) => number_to_json(n),
        AttributeValue::Bool(b) => Value::Bool(*b),
        AttributeValue::Null(_) => Value::Null,
        AttributeValue::B(b) => Value::String(base64_of(b)),
        AttributeValue::L(items) => Value::Array(items.iter().map(attribute_to_json).collect()),
        AttributeValue::M(fields) => Value::Object(
            fields.iter().map(|(k, v)| (k.clone(), attribute_to_json(v))).collect::<Map<_, _>>(),
        ),
        AttributeValue::Ss(items) => Value::Array(items.iter().cloned().map(Value::String).collect()),
        AttributeValue::Ns(items) => Value::Array(items.iter().map(|n| number_to_json(n)).collect()),
        AttributeValue::Bs(items) => {
            Value::Array(items.iter().map(|b| Value::String(base64_of(b))).collect())
        }
        _ => Value::Null,
    }
}

/// The plain JSON object for a DynamoDB item.
pub fn item_to_json(item: &HashMap<String, AttributeValue>) -> Value {
    Value::Object(item.iter().map(|(k, v)| (k.clone(), attribute_to_json(v))).collect())
}

pub(crate) fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn number_to_json(n: &str) -> Value {
    if let Ok(i) = n.parse::<i64>() {
        return Value::Number(i.into());
    }
    if let Ok(u) = n.parse::<u64>() {
        return Value::Number(u.into());
    }
    n.parse::<f64>()
        .ok()
        .and_then(Number::from_f64)
        .map_or_else(|| Value::String(n.to_owned()), Value::Number)
}

fn base64_of(blob: &Blob) -> String {
    base64::engine::general_purpose::STANDARD.encode(blob.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scalars_map_to_their_types() {
        assert_eq!(json_to_attribute(&json!("x")), AttributeValue::S("x".into()));
        assert_eq!(json_to_attribute(&json!(true)), AttributeValue::Bool(true));
        assert_eq!(json_to_attribute(&json!(null)), AttributeValue::Null(true));
        assert_eq!(json_to_attribute(&json!(42)), AttributeValue::N("42".into()));
        assert_eq!(json_to_attribute(&json!(-7)), AttributeValue::N("-7".into()));
        assert_eq!(json_to_attribute(&json!(1.5)), AttributeValue::N("1.5".into()));
        assert_eq!(json_to_attribute(&json!(u64::MAX)), AttributeValue::N("18446744073709551615".into()));
    }

    #[test]
    fn nested_objects_and_arrays_become_m_and_l() {
        let item = json_to_item(&json!({
            "pk": "tenant#acme",
            "card": {"last4": "4242", "tags": ["a", 1, {"deep": null}]},
        }))
        .unwrap();
        let AttributeValue::M(card) = &item["card"] else {
            panic!("card is not a map: {:?}", item["card"]);
        };
        assert_eq!(card["last4"], AttributeValue::S("4242".into()));
        let AttributeValue::L(tags) = &card["tags"] else {
            panic!("tags is not a list: {:?}", card["tags"]);
        };
        assert_eq!(tags[0], AttributeValue::S("a".into()));
        assert_eq!(tags[1], AttributeValue::N("1".into()));
        assert_eq!(
            tags[2],
            AttributeValue::M(HashMap::from([("deep".to_owned(), AttributeValue::Null(true))]))
        );
    }

    #[test]
    fn only_objects_are_items() {
        for value in [json!([]), json!("x"), json!(1), json!(null), json!(false)] {
            let err = json_to_item(&value).unwrap_err();
            assert!(matches!(err, DynamoDbError::NotAnItem(_)), "{err:?}");
        }
    }

    #[test]
    fn items_round_trip_through_json() {
        let value = json!({
            "pk": "p", "n": 3, "f": -0.25, "b": false, "z": null,
            "l": [1, [2, "three"]], "m": {"x": {"y": [true]}},
        });
        assert_eq!(item_to_json(&json_to_item(&value).unwrap()), value);
    }

    #[test]
    fn sets_and_binaries_become_arrays_and_base64() {
        assert_eq!(attribute_to_json(&AttributeValue::Ns(vec!["1".into(), "2.5".into()])), json!([1, 2.5]));
        assert_eq!(attribute_to_json(&AttributeValue::B(Blob::new(b"hi".to_vec()))), json!("aGk="));
        assert_eq!(attribute_to_json(&AttributeValue::N("1e400".into())), json!("1e400"));
    }
}
