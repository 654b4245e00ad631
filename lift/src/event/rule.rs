//! EventBridge event patterns, compiled once and matched against `serde_json::Value`s.
//!
//! The syntax is AWS's: a pattern is an object whose fields are either nested objects
//! (matched against the event's nested object) or arrays of allowed values and operators
//! (see the matchers in this module's sibling `matcher`), plus `$or` for alternatives.
//! A leaf field matches when any of its matchers accepts any of the event's values there
//! (an array in the event offers each of its scalars). A nested pattern over an array of
//! objects matches when one element matches it whole.

use std::fmt;
use std::str::FromStr;

use serde_json::Value;

use super::error::EventError;
use super::matcher::Matcher;

/// Deeper patterns are refused: no real pattern nests this far.
const MAX_DEPTH: usize = 32;

/// A compiled EventBridge event pattern.
///
/// # Examples
///
/// ```
/// use lift::event::EventRule;
/// use serde_json::json;
///
/// let rule = EventRule::new(json!({
///     "source": ["payments"],
///     "detail-type": ["PaymentSettled"],
///     "detail": { "amount": [{ "numeric": [">", 0, "<=", 5000] }], "currency": ["EUR", "USD"] }
/// }))?;
/// let event = json!({
///     "source": "payments", "detail-type": "PaymentSettled",
///     "detail": { "amount": 120, "currency": "EUR" }
/// });
/// assert!(rule.matches(&event));
/// # Ok::<(), lift::event::EventError>(())
/// ```
#[derive(Clone)]
pub struct EventRule {
    pattern: Pattern,
    source: Value,
}

#[derive(Debug, Clone)]
struct Pattern {
    fields: Vec<(String, Field)>,
    any_of: Vec<Vec<Pattern>>,
}

#[derive(Debug, Clone)]
enum Field {
    Nested(Pattern),
    Leaf(Vec<Matcher>),
}

impl EventRule {
    /// Compiles a pattern; an invalid one is an [`EventError::InvalidPattern`] naming the
    /// field at fault.
    pub fn new(pattern: Value) -> Result<Self, EventError> {
        let compiled = Pattern::compile(&pattern, "", 0).map_err(EventError::InvalidPattern)?;
        Ok(Self { pattern: compiled, source: pattern })
    }

    /// Whether the event matches the pattern.
    pub fn matches(&self, event: &Value) -> bool {
        self.pattern.matches(Some(event))
    }

    /// The pattern as written.
    pub fn pattern(&self) -> &Value {
        &self.source
    }
}

impl FromStr for EventRule {
    type Err = EventError;

    /// Parses and compiles a pattern written as JSON.
    fn from_str(s: &str) -> Result<Self, EventError> {
        let value = serde_json::from_str(s)
            .map_err(|e| EventError::InvalidPattern(format!("not valid JSON: {e}")))?;
        Self::new(value)
    }
}

impl TryFrom<Value> for EventRule {
    type Error = EventError;

    fn try_from(pattern: Value) -> Result<Self, EventError> {
        Self::new(pattern)
    }
}

impl fmt::Debug for EventRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("EventRule").field(&self.source).finish()
    }
}

impl Pattern {
    fn compile(value: &Value, at: &str, depth: usize) -> Result<Self, String> {
        let name = if at.is_empty() { "the pattern" } else { at };
        if depth > MAX_DEPTH {
            return Err(format!("`{name}` nests deeper than {MAX_DEPTH} levels"));
        }
        let obj = match value.as_object() {
            Some(obj) if !obj.is_empty() => obj,
            Some(_) => return Err(format!("`{name}` must not be an empty object")),
            None => return Err(format!("`{name}` must be an object")),
        };
        let mut pattern = Self { fields: Vec::new(), any_of: Vec::new() };
        for (key, value) in obj {
            let path = if at.is_empty() { key.clone() } else { format!("{at}.{key}") };
            if key == "$or" {
                pattern.any_of.push(Self::compile_or(value, &path, depth)?);
                continue;
            }
            let field = match value {
                Value::Object(_) => Field::Nested(Self::compile(value, &path, depth + 1)?),
                Value::Array(items) if !items.is_empty() => {
                    Field::Leaf(items.iter().map(|m| Matcher::compile(m, &path)).collect::<Result<_, _>>()?)
                }
                Value::Array(_) => return Err(format!("`{path}` must not be an empty array")),
                _ => return Err(format!("`{path}` must be an array of values or an object")),
            };
            pattern.fields.push((key.clone(), field));
        }
        Ok(pattern)
    }

    fn compile_or(value: &Value, at: &str, depth: usize) -> Result<Vec<Self>, String> {
        match value.as_array() {
            Some(alternatives) if alternatives.len() >= 2 => {
                alternatives.iter().map(|alt| Self::compile(alt, at, depth + 1)).collect()
            }
            _ => Err(format!("`{at}` must be an array of at least two patterns")),
        }
    }

    /// Matches against an object, or against nothing when the field is absent (so that
    /// `{"exists": false}` inside a missing object still matches).
    fn matches(&self, event: Option<&Value>) -> bool {
        let object = event.and_then(Value::as_object);
        self.fields.iter().all(|(key, field)| {
            let value = object.and_then(|o| o.get(key));
            match field {
                Field::Leaf(matchers) => {
                    let values = leaf_values(value);
                    matchers.iter().any(|m| m.accepts(&values))
                }
                Field::Nested(inner) => match value {
                    Some(Value::Array(items)) if items.iter().any(Value::is_object) => {
                        items.iter().any(|item| inner.matches(Some(item)))
                    }
                    Some(value @ Value::Object(_)) => inner.matches(Some(value)),
                    _ => inner.matches(None),
                },
            }
        }) && self.any_of.iter().all(|alts| alts.iter().any(|alt| alt.matches(event)))
    }
}

/// The scalar values of a field: none when absent or an object, each scalar of an array.
fn leaf_values(value: Option<&Value>) -> Vec<&Value> {
    fn collect<'a>(value: &'a Value, out: &mut Vec<&'a Value>) {
        match value {
            Value::Array(items) => items.iter().for_each(|item| collect(item, out)),
            Value::Object(_) => {}
            scalar => out.push(scalar),
        }
    }
    let mut out = Vec::new();
    if let Some(value) = value {
        collect(value, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn rule(v: Value) -> EventRule {
        EventRule::new(v).unwrap()
    }

    fn settled(amount: Value) -> Value {
        json!({
            "source": "payments", "detail-type": "PaymentSettled", "resources": [],
            "detail": {"amount": amount, "card": {"brand": "visa"}, "tags": ["eu", "vip"]}
        })
    }

    #[test]
    fn nested_detail_and_arrays() {
        let r = rule(json!({"source": ["payments"], "detail": {"card": {"brand": ["visa"]}}}));
        assert!(r.matches(&settled(json!(1))));
        let tags = rule(json!({"detail": {"tags": ["vip"]}}));
        assert!(tags.matches(&settled(json!(1))));
        let other = rule(json!({"detail": {"card": {"brand": ["amex"]}}}));
        assert!(!other.matches(&settled(json!(1))));
        let missing = rule(json!({"detail": {"refund": {"id": ["x"]}}}));
        assert!(!missing.matches(&settled(json!(1))));
    }

    #[test]
    fn exists_false_on_missing_parents() {
        let r = rule(json!({"detail": {"refund": {"id": [{"exists": false}]}}}));
        assert!(r.matches(&settled(json!(1))));
        let r = rule(json!({"detail": {"card": [{"exists": true}]}}));
        // `card` is an object, not a leaf: exists matches leaves only, as in AWS.
        assert!(!r.matches(&settled(json!(1))));
    }

    #[test]
    fn numeric_and_or() {
        let r = rule(json!({"$or": [
            {"detail": {"amount": [{"numeric": [">", 1000]}]}},
            {"detail": {"tags": ["fraud-review"]}}
        ]}));
        assert!(r.matches(&settled(json!(5000))));
        assert!(!r.matches(&settled(json!(10))));
    }

    #[test]
    fn nested_arrays_of_objects_match_per_element() {
        let r = rule(json!({"detail": {"items": {"sku": ["a"], "qty": [2]}}}));
        let event = json!({"detail": {"items": [{"sku": "a", "qty": 1}, {"sku": "b", "qty": 2}]}});
        assert!(!r.matches(&event));
        let event = json!({"detail": {"items": [{"sku": "b", "qty": 1}, {"sku": "a", "qty": 2}]}});
        assert!(r.matches(&event));
    }

    #[test]
    fn invalid_patterns_name_the_field() {
        let err = EventRule::new(json!({"detail": {"amount": 5}})).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid event pattern: `detail.amount` must be an array of values or an object"
        );
        for bad in [json!([]), json!({}), json!({"a": []}), json!({"$or": [{"a": [1]}]})] {
            assert!(EventRule::new(bad).is_err());
        }
        assert!("{not json".parse::<EventRule>().is_err());
        assert!(r#"{"source": ["a"]}"#.parse::<EventRule>().is_ok());
    }

    fn scalar() -> impl Strategy<Value = Value> {
        prop_oneof![
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            (-1.0e9..1.0e9f64).prop_map(Value::from),
            "[a-zA-Z0-9 :/._*-]{0,12}".prop_map(Value::from),
            Just(Value::Null),
        ]
    }

    fn event() -> impl Strategy<Value = Value> {
        let leaf =
            prop_oneof![4 => scalar(), 1 => prop::collection::vec(scalar(), 0..4).prop_map(Value::from)];
        let tree = leaf.prop_recursive(4, 32, 6, |inner| {
            prop::collection::btree_map("[a-z]{1,6}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect()))
        });
        (prop::collection::btree_map("[a-z]{1,6}", tree, 0..6), "[a-z]{1,8}").prop_map(|(m, id)| {
            let mut obj: serde_json::Map<String, Value> = m.into_iter().collect();
            obj.insert("id".into(), Value::from(id));
            Value::Object(obj)
        })
    }

    /// The pattern that asks for exactly what the event has.
    fn pattern_of(event: &Value) -> Option<Value> {
        let obj = event.as_object()?;
        let fields: serde_json::Map<String, Value> = obj
            .iter()
            .filter_map(|(k, v)| {
                let p = match v {
                    Value::Object(_) => pattern_of(v)?,
                    Value::Array(_) => {
                        let values = leaf_values(Some(v));
                        (!values.is_empty())
                            .then(|| Value::from(values.into_iter().cloned().collect::<Vec<_>>()))?
                    }
                    scalar => json!([scalar]),
                };
                Some((k.clone(), p))
            })
            .collect();
        (!fields.is_empty()).then_some(Value::Object(fields))
    }

    proptest! {
        #[test]
        fn a_pattern_built_from_an_event_matches_it(event in event()) {
            let pattern = pattern_of(&event).expect("the id field is always there");
            prop_assert!(rule(pattern).matches(&event));
        }

        #[test]
        fn anything_but_a_value_never_matches_it(value in scalar(), other in event()) {
            let mut event = other;
            event["id"] = value.clone();
            let r = rule(json!({"id": [{"anything-but": value.clone()}]}));
            prop_assert!(!r.matches(&event));
            let r = rule(json!({"id": [{"anything-but": [value, "sentinel-value-x"]}]}));
            prop_assert!(!r.matches(&event));
        }

        #[test]
        fn prefixes_and_ranges_match(s in "[a-z]{1,10}", cut in 0usize..10, n in -1.0e6..1.0e6f64) {
            let event = json!({"s": s, "n": n});
            let prefix = &s[..cut.min(s.len())];
            let by_prefix = rule(json!({"s": [{"prefix": prefix}]}));
            let in_range = rule(json!({"n": [{"numeric": [">=", n - 1.0, "<", n + 1.0]}]}));
            let above = rule(json!({"n": [{"numeric": [">", n]}]}));
            prop_assert!(by_prefix.matches(&event));
            prop_assert!(in_range.matches(&event));
            prop_assert!(!above.matches(&event));
        }

        #[test]
        fn compiling_and_matching_never_panic(pattern in event(), target in event()) {
            if let Ok(r) = EventRule::new(pattern) {
                let _ = r.matches(&target);
            }
        }
    }
}
