//! DynamoDB JSON: an item as the DynamoDB API writes it (`{"pk": {"S": "a"}}`), the form of
//! every line of a segment and of every archived stream record.

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine as _;
use serde_json::{Map, Value};

use crate::disaster::Item;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// `value` in DynamoDB JSON.
pub(crate) fn attribute_to_json(value: &AttributeValue) -> Value {
    let (tag, inner) = match value {
        AttributeValue::S(s) => ("S", Value::String(s.clone())),
        AttributeValue::N(n) => ("N", Value::String(n.clone())),
        AttributeValue::B(b) => ("B", Value::String(B64.encode(b.as_ref()))),
        AttributeValue::Bool(b) => ("BOOL", Value::Bool(*b)),
        AttributeValue::Null(b) => ("NULL", Value::Bool(*b)),
        AttributeValue::Ss(v) => ("SS", v.iter().cloned().map(Value::String).collect()),
        AttributeValue::Ns(v) => ("NS", v.iter().cloned().map(Value::String).collect()),
        AttributeValue::Bs(v) => ("BS", v.iter().map(|b| Value::String(B64.encode(b.as_ref()))).collect()),
        AttributeValue::L(v) => ("L", v.iter().map(attribute_to_json).collect()),
        AttributeValue::M(m) => ("M", item_to_json(m)),
        // A type this SDK does not know yet: kept as NULL, as the replicator does.
        _ => ("NULL", Value::Bool(true)),
    };
    let mut map = Map::with_capacity(1);
    map.insert(tag.to_owned(), inner);
    Value::Object(map)
}

/// `item` in DynamoDB JSON, attributes in name order (so equal items encode to equal bytes).
pub(crate) fn item_to_json(item: &Item) -> Value {
    let mut names: Vec<&String> = item.keys().collect();
    names.sort_unstable();
    Value::Object(names.into_iter().map(|n| (n.clone(), attribute_to_json(&item[n]))).collect())
}

/// An attribute from DynamoDB JSON; `None` when it is not one.
pub(crate) fn json_to_attribute(value: &Value) -> Option<AttributeValue> {
    let map = value.as_object()?;
    if map.len() != 1 {
        return None;
    }
    let (tag, inner) = map.iter().next()?;
    let strings =
        || inner.as_array()?.iter().map(|v| v.as_str().map(str::to_owned)).collect::<Option<Vec<_>>>();
    let blob = |v: &Value| B64.decode(v.as_str()?).ok().map(Blob::new);
    Some(match tag.as_str() {
        "S" => AttributeValue::S(inner.as_str()?.to_owned()),
        "N" => AttributeValue::N(inner.as_str()?.to_owned()),
        "B" => AttributeValue::B(blob(inner)?),
        "BOOL" => AttributeValue::Bool(inner.as_bool()?),
        "NULL" => AttributeValue::Null(inner.as_bool()?),
        "SS" => AttributeValue::Ss(strings()?),
        "NS" => AttributeValue::Ns(strings()?),
        "BS" => AttributeValue::Bs(inner.as_array()?.iter().map(blob).collect::<Option<Vec<_>>>()?),
        "L" => {
            AttributeValue::L(inner.as_array()?.iter().map(json_to_attribute).collect::<Option<Vec<_>>>()?)
        }
        "M" => AttributeValue::M(json_to_item(inner)?),
        _ => return None,
    })
}

/// An item from DynamoDB JSON; `None` when it is not one.
pub(crate) fn json_to_item(value: &Value) -> Option<Item> {
    value.as_object()?.iter().map(|(k, v)| Some((k.clone(), json_to_attribute(v)?))).collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Any attribute value, nested up to three levels.
    pub(crate) fn attribute() -> impl Strategy<Value = AttributeValue> {
        let leaf = prop_oneof![
            any::<String>().prop_map(AttributeValue::S),
            any::<i64>().prop_map(|n| AttributeValue::N(n.to_string())),
            proptest::collection::vec(any::<u8>(), 0..16).prop_map(|b| AttributeValue::B(Blob::new(b))),
            any::<bool>().prop_map(AttributeValue::Bool),
            Just(AttributeValue::Null(true)),
            proptest::collection::vec(any::<String>(), 1..4).prop_map(AttributeValue::Ss),
            proptest::collection::vec(any::<u16>().prop_map(|n| n.to_string()), 1..4)
                .prop_map(AttributeValue::Ns),
            proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..8).prop_map(Blob::new), 1..3)
                .prop_map(AttributeValue::Bs),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(AttributeValue::L),
                proptest::collection::hash_map("[a-z]{1,6}", inner, 0..4).prop_map(AttributeValue::M),
            ]
        })
    }

    /// Any item with a string `pk`.
    pub(crate) fn item() -> impl Strategy<Value = Item> {
        ("[a-z0-9]{1,12}", proptest::collection::hash_map("[a-z_]{1,8}", attribute(), 0..6)).prop_map(
            |(pk, mut attrs)| {
                attrs.insert("pk".to_owned(), AttributeValue::S(pk));
                attrs
            },
        )
    }

    proptest! {
        #[test]
        fn every_attribute_survives_dynamodb_json(value in attribute()) {
            let json = attribute_to_json(&value);
            prop_assert_eq!(json_to_attribute(&json), Some(value));
        }
    }

    #[test]
    fn malformed_json_is_not_an_attribute() {
        for bad in
            [r#"{"S": 1}"#, r#"{"X": "a"}"#, r#"{"S": "a", "N": "1"}"#, r#"{"B": "not base64!"}"#, "[]"]
        {
            let value: Value = serde_json::from_str(bad).unwrap();
            assert_eq!(json_to_attribute(&value), None, "{bad}");
        }
    }
}
