//! Labels of an alarm, from its name and its description.
//!
//! CloudWatch's events carry neither the alarm's tags nor anything but its name and
//! description, so labels come from those, in this order (later wins):
//!
//! 1. `alertname` (the alarm name), `region` (the alarm's region code), `account`.
//! 2. The name, in lift-monitoring's convention `<service>-<slo>-<rule>`
//!    (`payments-availability-page-fast`, see `lift_monitoring::alarms`): `service` is the
//!    longest of the configured services (`[labels] services`) the name starts with
//!    followed by `-`, else the name up to its first `-`; when a `page` or `ticket` part
//!    follows, it is the `severity`, the parts between are the `slo` and the rest the `rule`.
//! 3. The description as lift-monitoring writes it: a first word `page` or `ticket` is the
//!    `severity`; `Runbook: <url>` is the `runbook`.
//! 4. An explicit block in the description, `[key=value key=value]` (keys `a-z`, `0-9`,
//!    `_`; values without spaces or `]`): `tenant`, `route` (`POST:/payments`), `kind`
//!    (`region-down`), or any other label, overriding all the above.
//!
//! Without a severity, an alarm is a `ticket`.
//!
//! lift-monitoring writes the block too: an alert's holds its SLO's `route` and `tenant`;
//! each of the two window alarms it makes beside an alert holds [`WINDOW_LABEL`]
//! (`[lift_window=long]`). A window alarm is a part of an alert, not an alert
//! ([`is_window_alarm`]): the alert is the composite alarm, in ALARM when both windows are.

use std::collections::BTreeMap;

use crate::alarm::AlarmChange;

/// Labels: name to value, sorted.
pub type Labels = BTreeMap<String, String>;

/// The severity of an alarm without one.
pub const DEFAULT_SEVERITY: &str = "ticket";

/// The label lift-monitoring puts in the description of its window alarms
/// (`lift_monitoring::alarms::WINDOW_LABEL`).
pub const WINDOW_LABEL: &str = "lift_window";

/// Whether the labels are a lift-monitoring window alarm's: one window of a burn-rate
/// alert, which fires only when both windows do (its composite alarm).
///
/// # Examples
///
/// ```
/// use alert_router::labels::{is_window_alarm, Labels};
/// let mut labels = Labels::new();
/// labels.insert("alertname".into(), "payments-checkout-long".into());
/// assert!(!is_window_alarm(&labels), "a name alone does not make one");
/// labels.insert("lift_window".into(), "long".into());
/// assert!(is_window_alarm(&labels));
/// ```
pub fn is_window_alarm(labels: &Labels) -> bool {
    labels.contains_key(WINDOW_LABEL)
}

/// The labels of `change`, given the known service names.
///
/// # Examples
///
/// ```
/// use alert_router::alarm::{AlarmChange, AlarmState};
/// use alert_router::labels::labels;
/// let change = AlarmChange {
///     name: "health-records-availability-page-fast".into(),
///     account: "123456789012".into(),
///     region: "eu-west-1".into(),
///     state: AlarmState::Alarm,
///     previous: None,
///     reason: String::new(),
///     changed_at: time::OffsetDateTime::UNIX_EPOCH,
///     description: Some("page SLO availability. Runbook: https://rb.example.com/a [tenant=acme]".into()),
/// };
/// let labels = labels(&change, &["health-records".to_owned()]);
/// assert_eq!(labels["service"], "health-records");
/// assert_eq!(labels["slo"], "availability");
/// assert_eq!(labels["rule"], "page-fast");
/// assert_eq!(labels["severity"], "page");
/// assert_eq!(labels["tenant"], "acme");
/// assert_eq!(labels["runbook"], "https://rb.example.com/a");
/// ```
pub fn labels(change: &AlarmChange, services: &[String]) -> Labels {
    let mut labels = Labels::new();
    labels.insert("alertname".into(), change.name.clone());
    labels.insert("region".into(), change.region.clone());
    labels.insert("account".into(), change.account.clone());
    from_name(&change.name, services, &mut labels);
    if let Some(description) = &change.description {
        from_description(description, &mut labels);
    }
    labels.entry("severity".into()).or_insert_with(|| DEFAULT_SEVERITY.into());
    labels
}

fn from_name(name: &str, services: &[String], labels: &mut Labels) {
    let service = services
        .iter()
        .filter(|s| name.len() > s.len() && name.starts_with(s.as_str()) && name.as_bytes()[s.len()] == b'-')
        .max_by_key(|s| s.len())
        .map(String::as_str)
        .unwrap_or_else(|| name.split('-').next().unwrap_or(name));
    labels.insert("service".into(), service.to_owned());
    let Some(rest) = name.get(service.len() + 1..) else { return };
    let parts: Vec<&str> = rest.split('-').collect();
    if let Some(at) = parts.iter().position(|p| matches!(*p, "page" | "ticket")) {
        labels.insert("severity".into(), parts[at].to_owned());
        if at > 0 {
            labels.insert("slo".into(), parts[..at].join("-"));
        }
        labels.insert("rule".into(), parts[at..].join("-"));
    }
}

fn from_description(description: &str, labels: &mut Labels) {
    if let Some(first) = description.split_whitespace().next() {
        if matches!(first, "page" | "ticket") {
            labels.insert("severity".into(), first.to_owned());
        }
    }
    if let Some((_, after)) = description.split_once("Runbook: ") {
        if let Some(url) = after.split_whitespace().next() {
            let url = url.trim_end_matches(['.', ',', ';']);
            if url.starts_with("https://") || url.starts_with("http://") {
                labels.insert("runbook".into(), url.to_owned());
            }
        }
    }
    let mut rest = description;
    while let Some(open) = rest.find('[') {
        let Some(close) = rest[open..].find(']') else { break };
        let block = &rest[open + 1..open + close];
        let pairs: Option<Vec<(&str, &str)>> = block
            .split_whitespace()
            .map(|pair| pair.split_once('=').filter(|(k, v)| valid_key(k) && !v.is_empty()))
            .collect();
        if let Some(pairs) = pairs.filter(|p| !p.is_empty()) {
            for (key, value) in pairs {
                labels.insert(key.to_owned(), value.to_owned());
            }
        }
        rest = &rest[open + close + 1..];
    }
}

fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 64
        && key.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alarm::AlarmState;
    use proptest::prelude::*;

    fn change(name: &str, description: Option<&str>) -> AlarmChange {
        AlarmChange {
            name: name.into(),
            account: "1".into(),
            region: "eu-west-1".into(),
            state: AlarmState::Alarm,
            previous: None,
            reason: String::new(),
            changed_at: time::OffsetDateTime::UNIX_EPOCH,
            description: description.map(str::to_owned),
        }
    }

    #[test]
    fn lift_monitoring_names_without_configured_services() {
        let l = labels(&change("payments-latency-ticket-slow", None), &[]);
        assert_eq!(l["service"], "payments");
        assert_eq!(l["slo"], "latency");
        assert_eq!(l["rule"], "ticket-slow");
        assert_eq!(l["severity"], "ticket");
    }

    #[test]
    fn explicit_labels_win_and_bad_blocks_are_ignored() {
        let d = "ticket [severity=page kind=region-down] [not a label] [Bad=x]";
        let l = labels(&change("edge-region-health", Some(d)), &[]);
        assert_eq!(l["severity"], "page");
        assert_eq!(l["kind"], "region-down");
        assert!(!l.contains_key("Bad"));
        assert_eq!(labels(&change("x", None), &[])["severity"], DEFAULT_SEVERITY);
    }

    proptest! {
        #[test]
        fn any_name_and_description_give_the_base_labels(name in ".{1,40}", d in ".{0,80}") {
            let l = labels(&change(&name, Some(&d)), &["pay".into()]);
            prop_assert!(l.contains_key("service") && l.contains_key("severity"));
        }
    }
}
