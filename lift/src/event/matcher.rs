//! The leaf matchers of an EventBridge event pattern: the values inside a field's array.
//!
//! Supported, with AWS's syntax: exact values (string, number, boolean, null), `prefix`
//! and `suffix` (each also as `{"equals-ignore-case": ..}`), `equals-ignore-case`,
//! `wildcard` (`*` matches any run of characters, `\*` a literal star), `anything-but` (a
//! value, a list of values, or `prefix` / `suffix` / `equals-ignore-case` / `wildcard`),
//! `exists`, and `numeric` (`[op, n]` or `[op, n, op, n]` with `=`, `<`, `<=`, `>`, `>=`).

use serde_json::{Map, Value};

/// One value a leaf accepts.
#[derive(Debug, Clone)]
pub(crate) enum Matcher {
    Exact(Scalar),
    Prefix(Text),
    Suffix(Text),
    EqualsIgnoreCase(String),
    Wildcard(Vec<String>),
    AnythingBut(Vec<Matcher>),
    Exists(bool),
    Numeric(Vec<(Cmp, f64)>),
}

/// A JSON scalar; numbers compare as `f64`, so `5` equals `5.0`, as in AWS.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Scalar {
    Str(String),
    Num(f64),
    Bool(bool),
    Null,
}

/// A string to compare, exactly or ignoring case (then stored lowercase).
#[derive(Debug, Clone)]
pub(crate) struct Text {
    text: String,
    ignore_case: bool,
}

/// A numeric comparison operator.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Cmp {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Matcher {
    /// Compiles one element of a leaf array; `at` names the field, for errors.
    pub(crate) fn compile(value: &Value, at: &str) -> Result<Self, String> {
        if let Some(scalar) = Scalar::of(value) {
            return Ok(Self::Exact(scalar));
        }
        let Some((op, arg)) = value.as_object().and_then(single_entry) else {
            return Err(format!("`{at}` holds a value that is neither a scalar nor one operator"));
        };
        let bad = |what: &str| format!("`{op}` at `{at}` needs {what}");
        let text = || Text::compile(arg).ok_or_else(|| bad("a string"));
        match op.as_str() {
            "prefix" => text().map(Self::Prefix),
            "suffix" => text().map(Self::Suffix),
            "equals-ignore-case" => match arg {
                Value::String(s) => Ok(Self::EqualsIgnoreCase(s.to_lowercase())),
                _ => Err(bad("a string")),
            },
            "wildcard" => match arg {
                Value::String(s) => Ok(Self::Wildcard(glob(s))),
                _ => Err(bad("a string")),
            },
            "exists" => arg.as_bool().map(Self::Exists).ok_or_else(|| bad("true or false")),
            "numeric" => numeric(arg)
                .map(Self::Numeric)
                .ok_or_else(|| bad("`[op, n]` or `[op, n, op, n]` with =, <, <=, >, >=")),
            "anything-but" => anything_but(arg, at).map(Self::AnythingBut),
            _ => Err(format!("unsupported operator `{op}` at `{at}`")),
        }
    }

    /// Whether the matcher accepts a field whose leaf values are `values` (empty when the
    /// field is absent).
    pub(crate) fn accepts(&self, values: &[&Value]) -> bool {
        match self {
            Self::Exists(exists) => values.is_empty() != *exists,
            _ => values.iter().any(|v| self.matches(v)),
        }
    }

    /// Whether the matcher accepts one leaf value.
    fn matches(&self, value: &Value) -> bool {
        let text = value.as_str();
        match self {
            Self::Exact(scalar) => scalar.equals(value),
            Self::Prefix(t) => text.is_some_and(|s| t.starts(s)),
            Self::Suffix(t) => text.is_some_and(|s| t.ends(s)),
            Self::EqualsIgnoreCase(t) => text.is_some_and(|s| s.to_lowercase() == *t),
            Self::Wildcard(parts) => text.is_some_and(|s| glob_matches(parts, s)),
            Self::AnythingBut(excluded) => !excluded.iter().any(|m| m.matches(value)),
            Self::Exists(exists) => *exists,
            Self::Numeric(bounds) => {
                value.as_f64().is_some_and(|n| bounds.iter().all(|(cmp, bound)| cmp.holds(n, *bound)))
            }
        }
    }
}

impl Scalar {
    /// The scalar a JSON value is, if it is one.
    pub(crate) fn of(value: &Value) -> Option<Self> {
        match value {
            Value::String(s) => Some(Self::Str(s.clone())),
            Value::Number(n) => n.as_f64().map(Self::Num),
            Value::Bool(b) => Some(Self::Bool(*b)),
            Value::Null => Some(Self::Null),
            Value::Array(_) | Value::Object(_) => None,
        }
    }

    fn equals(&self, value: &Value) -> bool {
        match (self, value) {
            (Self::Str(a), Value::String(b)) => a == b,
            (Self::Num(a), Value::Number(b)) => b.as_f64() == Some(*a),
            (Self::Bool(a), Value::Bool(b)) => a == b,
            (Self::Null, Value::Null) => true,
            _ => false,
        }
    }
}

impl Text {
    /// `"text"` or `{"equals-ignore-case": "text"}`.
    fn compile(arg: &Value) -> Option<Self> {
        match arg {
            Value::String(s) => Some(Self { text: s.clone(), ignore_case: false }),
            Value::Object(o) => match single_entry(o)? {
                (op, Value::String(s)) if op == "equals-ignore-case" => {
                    Some(Self { text: s.to_lowercase(), ignore_case: true })
                }
                _ => None,
            },
            _ => None,
        }
    }

    fn starts(&self, s: &str) -> bool {
        if self.ignore_case {
            s.to_lowercase().starts_with(&self.text)
        } else {
            s.starts_with(&self.text)
        }
    }

    fn ends(&self, s: &str) -> bool {
        if self.ignore_case {
            s.to_lowercase().ends_with(&self.text)
        } else {
            s.ends_with(&self.text)
        }
    }
}

impl Cmp {
    fn parse(op: &Value) -> Option<Self> {
        Some(match op.as_str()? {
            "=" => Self::Eq,
            "<" => Self::Lt,
            "<=" => Self::Le,
            ">" => Self::Gt,
            ">=" => Self::Ge,
            _ => return None,
        })
    }

    fn holds(self, n: f64, bound: f64) -> bool {
        match self {
            Self::Eq => n == bound,
            Self::Lt => n < bound,
            Self::Le => n <= bound,
            Self::Gt => n > bound,
            Self::Ge => n >= bound,
        }
    }
}

/// The only entry of a one-entry object.
fn single_entry(obj: &Map<String, Value>) -> Option<(&String, &Value)> {
    let mut entries = obj.iter();
    let first = entries.next()?;
    entries.next().is_none().then_some(first)
}

/// `[op, n]`, or a range `[>|>=, low, <|<=, high]` with `low < high`.
fn numeric(arg: &Value) -> Option<Vec<(Cmp, f64)>> {
    let items = arg.as_array()?;
    if items.len() != 2 && items.len() != 4 {
        return None;
    }
    let bounds = items
        .chunks(2)
        .map(|pair| Some((Cmp::parse(&pair[0])?, pair[1].as_f64()?)))
        .collect::<Option<Vec<_>>>()?;
    if let [(lower, low), (upper, high)] = bounds[..] {
        let range = matches!(lower, Cmp::Gt | Cmp::Ge) && matches!(upper, Cmp::Lt | Cmp::Le);
        if !range || low >= high {
            return None;
        }
    }
    Some(bounds)
}

/// The exclusions of `anything-but`.
fn anything_but(arg: &Value, at: &str) -> Result<Vec<Matcher>, String> {
    let bad = || {
        format!("`anything-but` at `{at}` needs a value, a non-empty list of values, or one of prefix, suffix, equals-ignore-case, wildcard")
    };
    match arg {
        Value::Array(items) if !items.is_empty() => {
            items.iter().map(|v| Scalar::of(v).map(Matcher::Exact).ok_or_else(bad)).collect()
        }
        Value::Object(o) => {
            let (op, inner) = single_entry(o).ok_or_else(bad)?;
            let list = match inner {
                Value::Array(items) if !items.is_empty() && op != "prefix" && op != "suffix" => items.clone(),
                Value::String(_) => vec![inner.clone()],
                _ => return Err(bad()),
            };
            let mut matchers = Vec::with_capacity(list.len());
            for item in list {
                match Matcher::compile(&Value::Object(Map::from_iter([(op.clone(), item)])), at)? {
                    m @ (Matcher::Prefix(_)
                    | Matcher::Suffix(_)
                    | Matcher::EqualsIgnoreCase(_)
                    | Matcher::Wildcard(_)) => matchers.push(m),
                    _ => return Err(bad()),
                }
            }
            Ok(matchers)
        }
        other => Scalar::of(other).map(|s| vec![Matcher::Exact(s)]).ok_or_else(bad),
    }
}

/// Splits a wildcard pattern on unescaped `*`; `\*` and `\\` are literal.
fn glob(pattern: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '*' => parts.push(std::mem::take(&mut current)),
            '\\' => match chars.next() {
                Some(next @ ('*' | '\\')) => current.push(next),
                Some(next) => current.extend(['\\', next]),
                None => current.push('\\'),
            },
            _ => current.push(c),
        }
    }
    parts.push(current);
    parts
}

/// Whether `s` matches the literal parts of a wildcard, in order, anchored at both ends.
fn glob_matches(parts: &[String], s: &str) -> bool {
    let [first, middle @ .., last] = parts else {
        return parts.first().is_some_and(|only| only == s);
    };
    let Some(mut rest) = s.strip_prefix(first.as_str()) else {
        return false;
    };
    for part in middle {
        match rest.find(part.as_str()) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn accepts(matcher: Value, value: Value) -> bool {
        Matcher::compile(&matcher, "f").unwrap().accepts(&[&value])
    }

    #[test]
    fn exact_values() {
        assert!(accepts(json!("a"), json!("a")));
        assert!(!accepts(json!("a"), json!("A")));
        assert!(accepts(json!(5), json!(5.0)));
        assert!(!accepts(json!(5), json!("5")));
        assert!(accepts(json!(null), json!(null)));
        assert!(accepts(json!(true), json!(true)));
    }

    #[test]
    fn prefix_suffix_and_case() {
        assert!(accepts(json!({"prefix": "arn:aws:"}), json!("arn:aws:sqs")));
        assert!(!accepts(json!({"prefix": "arn:aws:"}), json!(5)));
        assert!(accepts(json!({"suffix": ".png"}), json!("a.png")));
        assert!(accepts(json!({"prefix": {"equals-ignore-case": "EU-"}}), json!("eu-west-1")));
        assert!(accepts(json!({"equals-ignore-case": "Alice"}), json!("ALICE")));
        assert!(!accepts(json!({"equals-ignore-case": "Alice"}), json!("Alicia")));
    }

    #[test]
    fn wildcards() {
        let w = |p: &str, s: &str| accepts(json!({"wildcard": p}), json!(s));
        assert!(w("arn:*:rule/*", "arn:aws:events:rule/nightly"));
        assert!(w("*.fifo", "q.fifo") && !w("*.fifo", "q.fifo.x"));
        assert!(w("a*a", "aa") && !w("a*a", "a"));
        assert!(w(r"a\*", "a*") && !w(r"a\*", "ab"));
        assert!(w("exact", "exact") && !w("exact", "exactly"));
    }

    #[test]
    fn anything_but_forms() {
        assert!(accepts(json!({"anything-but": "a"}), json!("b")));
        assert!(!accepts(json!({"anything-but": "a"}), json!("a")));
        assert!(!accepts(json!({"anything-but": ["a", "b"]}), json!("b")));
        assert!(!accepts(json!({"anything-but": {"prefix": "test-"}}), json!("test-1")));
        assert!(accepts(json!({"anything-but": {"suffix": ".tmp"}}), json!("a.txt")));
        assert!(!accepts(json!({"anything-but": {"equals-ignore-case": ["X", "Y"]}}), json!("y")));
        // anything-but needs the field: an absent field matches no value.
        let m = Matcher::compile(&json!({"anything-but": "a"}), "f").unwrap();
        assert!(!m.accepts(&[]));
    }

    #[test]
    fn exists_and_numeric() {
        let exists = Matcher::compile(&json!({"exists": true}), "f").unwrap();
        assert!(exists.accepts(&[&json!(1)]) && !exists.accepts(&[]));
        let absent = Matcher::compile(&json!({"exists": false}), "f").unwrap();
        assert!(absent.accepts(&[]) && !absent.accepts(&[&json!("x")]));
        let range = json!({"numeric": [">", 0, "<=", 5]});
        assert!(accepts(range.clone(), json!(5)) && accepts(range.clone(), json!(0.5)));
        assert!(!accepts(range.clone(), json!(0)) && !accepts(range, json!("3")));
        assert!(accepts(json!({"numeric": ["=", 3]}), json!(3.0)));
    }

    #[test]
    fn invalid_matchers_are_rejected() {
        for bad in [
            json!({"prefix": 5}),
            json!({"numeric": [">", "x"]}),
            json!({"numeric": ["<", 5, ">", 1]}),
            json!({"numeric": [">", 5, "<", 1]}),
            json!({"numeric": [">", 1, "<"]}),
            json!({"anything-but": []}),
            json!({"anything-but": [{"a": 1}]}),
            json!({"anything-but": {"exists": true}}),
            json!({"exists": "yes"}),
            json!({"cidr": "10.0.0.0/8"}),
            json!({"prefix": "a", "suffix": "b"}),
            json!([1]),
        ] {
            assert!(Matcher::compile(&bad, "f").is_err(), "{bad}");
        }
    }
}
