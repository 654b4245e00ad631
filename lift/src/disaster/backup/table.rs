//! Which table a backup, a chunk index or a restore names: a table name (`orders`) or a
//! table ARN (`arn:aws:dynamodb:us-east-1:123456789012:table/orders`), compared as tables
//! rather than as strings.
//!
//! Two names are the same table when the table names are equal (case-sensitive, as
//! DynamoDB's are) and, when both are ARNs, their partition, region and account are equal
//! too: `orders` in us-east-1 and `orders` in eu-west-1 are two tables. A bare name says
//! nothing of where its table is, so it is the same table as its ARN in any account and
//! region.

/// Where a table named by its ARN lives.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Scope {
    partition: String,
    region: String,
    account: String,
}

/// A table named by its name or its ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TableRef {
    name: String,
    /// Present when it was named by its ARN.
    scope: Option<Scope>,
}

impl TableRef {
    /// Reads a table name or a table ARN; refuses anything else (an ARN of another service,
    /// of a table's stream or index, a malformed ARN, a name DynamoDB would not accept).
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let Some(rest) = text.strip_prefix("arn:") else {
            if text.contains([':', '/']) {
                return Err(format!(
                    "{text:?} is neither a table name nor a table ARN \
                     (arn:<partition>:dynamodb:<region>:<account>:table/<name>)"
                ));
            }
            check_name(text).map_err(|why| format!("{text:?} is not a table name: {why}"))?;
            return Ok(Self { name: text.to_owned(), scope: None });
        };
        let malformed = |why: &str| {
            format!(
                "{text:?} is not a table ARN: {why} (expected arn:<partition>:dynamodb:<region>:<account>:table/<name>)"
            )
        };
        let parts: Vec<&str> = rest.splitn(5, ':').collect();
        let [partition, service, region, account, resource] = parts[..] else {
            return Err(malformed("it has too few parts"));
        };
        let lowercase = |s: &str| {
            !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        };
        if !lowercase(partition) {
            return Err(malformed("the partition is empty or not lowercase letters, digits and dashes"));
        }
        if service != "dynamodb" {
            return Err(malformed(&format!("the service is {service:?}, not dynamodb")));
        }
        if !lowercase(region) {
            return Err(malformed("the region is empty or not lowercase letters, digits and dashes"));
        }
        if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
            return Err(malformed("the account is not 12 digits"));
        }
        let Some(name) = resource.strip_prefix("table/") else {
            return Err(malformed("the resource is not table/<name>"));
        };
        if let Some((_, sub)) = name.split_once('/') {
            let kind = sub.split('/').next().unwrap_or_default();
            return Err(malformed(&format!("it names a table's {kind}, not a table")));
        }
        check_name(name).map_err(|why| malformed(&format!("the table name {why}")))?;
        Ok(Self {
            name: name.to_owned(),
            scope: Some(Scope {
                partition: partition.to_owned(),
                region: region.to_owned(),
                account: account.to_owned(),
            }),
        })
    }

    /// Whether `other` is the same table: equal names, and equal partition, region and
    /// account when both are ARNs.
    pub(crate) fn is(&self, other: &TableRef) -> bool {
        self.name == other.name
            && match (&self.scope, &other.scope) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            }
    }

    /// Whether `stored` (a manifest's or a chunk index's table) names this table. One that
    /// is neither a table name nor a table ARN names no table.
    pub(crate) fn names(&self, stored: &str) -> bool {
        Self::parse(stored).is_ok_and(|t| self.is(&t))
    }

    /// This table, with the account and region `stored` names when this one names none: a
    /// restore of `orders` that chose a backup of `arn:...:us-east-1:...:table/orders`
    /// replays only chunks of that table, not of an `orders` elsewhere.
    pub(crate) fn narrowed(&self, stored: &str) -> Self {
        match Self::parse(stored) {
            Ok(found) if self.scope.is_none() && self.is(&found) => found,
            _ => self.clone(),
        }
    }
}

/// DynamoDB's rule for table names: 3 to 255 of `a-z A-Z 0-9 _ - .`.
fn check_name(name: &str) -> Result<(), &'static str> {
    if !(3..=255).contains(&name.len()) {
        return Err("must be 3 to 255 characters long");
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')) {
        return Err("may hold only letters, digits, '_', '-' and '.'");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const ORDERS: &str = "arn:aws:dynamodb:us-east-1:123456789012:table/orders";

    fn table(text: &str) -> TableRef {
        TableRef::parse(text).unwrap()
    }

    #[test]
    fn a_name_and_its_table_arn_are_the_same_table() {
        assert!(table("orders").is(&table(ORDERS)));
        assert!(table(ORDERS).is(&table("orders")));
        assert!(table(ORDERS).is(&table(ORDERS)));
        assert!(table("orders").names(ORDERS) && table(ORDERS).names("orders"));
        assert!(table("orders").is(&table("arn:aws-cn:dynamodb:cn-north-1:000000000000:table/orders")));
    }

    #[test]
    fn different_names_are_different_tables() {
        assert!(!table("orders").is(&table("patients")));
        assert!(!table("orders").is(&table("Orders")), "table names are case-sensitive");
        assert!(!table(ORDERS).is(&table("orders-restored")));
        assert!(!table("orders").names("arn:aws:dynamodb:us-east-1:123456789012:table/patients"));
    }

    /// A table is its account and region as well as its name: two ARNs that differ in
    /// either (or in the partition) name two tables.
    #[test]
    fn arns_of_another_account_region_or_partition_are_different_tables() {
        for other in [
            "arn:aws:dynamodb:eu-west-1:123456789012:table/orders",
            "arn:aws:dynamodb:us-east-1:210987654321:table/orders",
            "arn:aws-us-gov:dynamodb:us-east-1:123456789012:table/orders",
        ] {
            assert!(!table(ORDERS).is(&table(other)), "{other}");
            assert!(!table(other).names(ORDERS), "{other}");
        }
    }

    #[test]
    fn a_malformed_arn_or_name_is_refused_and_named() {
        for (text, why) in [
            ("arn:aws:dynamodb:us-east-1:123456789012:orders", "not table/<name>"),
            ("arn:aws:dynamodb:us-east-1:123456789012", "too few parts"),
            ("arn:aws:s3:us-east-1:123456789012:table/orders", "not dynamodb"),
            ("arn:aws:dynamodb:us-east-1:1234:table/orders", "12 digits"),
            ("arn:aws:dynamodb::123456789012:table/orders", "region"),
            ("arn::dynamodb:us-east-1:123456789012:table/orders", "partition"),
            ("arn:aws:dynamodb:us-east-1:123456789012:table/", "3 to 255"),
            ("arn:aws:dynamodb:us-east-1:123456789012:table/orders/stream/2026-12-05T00:00:00.000", "stream"),
            ("arn:aws:dynamodb:us-east-1:123456789012:table/orders/index/by-date", "index"),
            ("arn:aws:dynamodb:us-east-1:123456789012:table/ord ers", "letters, digits"),
            ("table/orders", "neither a table name nor a table ARN"),
            ("aws:dynamodb:us-east-1:123456789012:table/orders", "neither"),
            ("or", "3 to 255"),
            ("", "3 to 255"),
        ] {
            let err = TableRef::parse(text).unwrap_err();
            assert!(err.contains(why) && err.contains(&format!("{text:?}")), "{text}: {err}");
        }
        assert!(!table("orders").names("arn:aws:dynamodb:us-east-1:1234:table/orders"));
    }

    #[test]
    fn a_bare_name_narrows_to_the_arn_it_matched() {
        let narrowed = table("orders").narrowed(ORDERS);
        assert_eq!(narrowed, table(ORDERS));
        assert!(!narrowed.is(&table("arn:aws:dynamodb:eu-west-1:123456789012:table/orders")));
        assert!(narrowed.is(&table("orders")));
        assert_eq!(table(ORDERS).narrowed("orders"), table(ORDERS));
        assert_eq!(table("orders").narrowed("patients"), table("orders"));
    }

    fn name() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9_.-]{3,40}"
    }

    fn arn_of(name: &str, (region, account): &(String, String)) -> String {
        format!("arn:aws:dynamodb:{region}:{account}:table/{name}")
    }

    fn scope() -> impl Strategy<Value = (String, String)> {
        ("[a-z]{2}-[a-z]{4,9}-[1-3]", "[0-9]{12}")
    }

    proptest! {
        /// Whichever way each side is written (name or ARN), two references are the same
        /// table exactly when the names are equal and no two ARNs disagree on where; the
        /// answer does not depend on the order.
        #[test]
        fn same_table_exactly_when_names_match_and_arns_agree(
            a in name(), other_name in name(), sa in scope(), other_scope in scope(),
            same_name: bool, same_scope: bool, arn_a: bool, arn_b: bool,
        ) {
            // About half the pairs share a name, and half a scope: independent random ones
            // rarely would.
            let b = if same_name { a.clone() } else { other_name };
            let sb = if same_scope { sa.clone() } else { other_scope };
            let ta = if arn_a { arn_of(&a, &sa) } else { a.clone() };
            let tb = if arn_b { arn_of(&b, &sb) } else { b.clone() };
            let expected = a == b && (!(arn_a && arn_b) || sa == sb);
            prop_assert_eq!(table(&ta).is(&table(&tb)), expected, "{} {}", ta, tb);
            prop_assert_eq!(table(&tb).is(&table(&ta)), expected);
            prop_assert!(table(&ta).names(&ta));
        }

        /// Reading any text never panics, and what reads as a table reads back the same.
        #[test]
        fn parsing_never_panics(text in "\\PC{0,80}", arn_tail in "[a-z0-9:/_.-]{0,60}") {
            let _ = TableRef::parse(&text);
            let arn = format!("arn:{arn_tail}");
            if let Ok(parsed) = TableRef::parse(&arn) {
                prop_assert!(parsed.scope.is_some());
                prop_assert!(parsed.is(&TableRef::parse(&arn).unwrap()));
            }
        }
    }
}
