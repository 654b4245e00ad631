//! A small YAML emitter for JSON values: block style, keys in order, every string
//! double-quoted (so no value is ever read back as a number, boolean or date).

use serde_json::Value;

/// Renders `value` as a YAML document.
pub(crate) fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    block(value, 0, &mut out);
    out
}

fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) => serde_json::to_string(s).unwrap_or_default(),
        Value::Array(a) if a.is_empty() => "[]".into(),
        Value::Object(o) if o.is_empty() => "{}".into(),
        other => other.to_string(),
    }
}

fn key(k: &str) -> String {
    if !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        k.to_owned()
    } else {
        serde_json::to_string(k).unwrap_or_default()
    }
}

fn is_block(value: &Value) -> bool {
    match value {
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        _ => false,
    }
}

fn block(value: &Value, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                if is_block(v) {
                    out.push_str(&format!("{pad}{}:\n", key(k)));
                    block(v, indent + 2, out);
                } else {
                    out.push_str(&format!("{pad}{}: {}\n", key(k), scalar(v)));
                }
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for item in items {
                if is_block(item) {
                    out.push_str(&format!("{pad}-\n"));
                    block(item, indent + 2, out);
                } else {
                    out.push_str(&format!("{pad}- {}\n", scalar(item)));
                }
            }
        }
        other => out.push_str(&format!("{pad}{}\n", scalar(other))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn strings_that_look_like_other_types_stay_strings() {
        let yaml = to_yaml(&json!({"a": "true", "b": "012", "Fn::Sub": "x: y", "n": 3, "l": [], "m": {}}));
        assert_eq!(yaml, "\"Fn::Sub\": \"x: y\"\na: \"true\"\nb: \"012\"\nl: []\nm: {}\nn: 3\n");
    }

    #[test]
    fn nesting_indents_lists_and_maps() {
        let yaml = to_yaml(&json!({"r": [{"k": "v", "l": ["x"]}, "s"]}));
        assert_eq!(yaml, "r:\n  -\n    k: \"v\"\n    l:\n      - \"x\"\n  - \"s\"\n");
    }
}
