//! The routing file (TOML): receivers, the route tree, inhibition and delivery settings.
//!
//! ```toml
//! [labels]
//! services = ["payments", "health-records"]   # for the alarm-name convention
//!
//! [delivery]
//! attempts = 4          # tries per step within one invocation (exponential backoff)
//! backoff = "200ms"     # first delay; doubles each try
//! max_backoff = "5s"
//! timeout = "10s"       # per request
//! lease = "60s"         # how long a claimed step is its sender's before another may retry it
//!
//! [[receivers]]
//! name = "oncall"
//! kind = "pagerduty"                       # webhook | slack | pagerduty | sns
//! url_env = "PAGERDUTY_EVENTS_URL"         # or url = "..."; /v2/enqueue is appended
//! routing_key_env = "PAGERDUTY_KEY_ONCALL" # never written in the file
//!
//! [[receivers]]
//! name = "team-chat"
//! kind = "slack"
//! url_env = "SLACK_WEBHOOK_TEAM"          # a URL with a token: from the environment
//!
//! [[receivers]]
//! name = "pages-topic"
//! kind = "sns"
//! topic_arn_env = "PAGES_TOPIC_ARN"        # or topic_arn = "arn:aws:sns:..."
//!
//! [route]                                  # the root: every alert enters here
//! receiver = "team-chat"
//! group_by = ["service", "region"]
//! runbook = "https://runbooks.example.com/{service}/{alertname}"
//!
//! [[route.routes]]
//! id = "pages"                             # optional; see "Route ids" below
//! matchers = ['severity="page"']           # =, !=, =~ and !~ (a regex for the whole value)
//! receiver = "oncall"
//! continue = true                          # also try the next siblings
//! escalation = [{ after = "15m", receiver = "pages-topic" }]
//!
//! [[inhibit]]                              # a region-down alert mutes route alerts of its region
//! source = ['kind="region-down"']
//! target = ['route=~".+"']
//! equal = ["region"]
//! ```
//!
//! Routing is Alertmanager's: an alert enters the root and descends into every child whose
//! matchers all match, stopping at the first unless that child has `continue = true`; where
//! no child matches, the node itself takes the alert. A child inherits `receiver`,
//! `group_by`, `runbook` and `escalation` from its parent unless it sets them.
//!
//! Escalation levels: level 1 is the route's `receiver`, at once; level `n + 1` is
//! `escalation[n - 1].receiver`, `after` the group fired, unless acknowledged by then. A
//! silence or inhibition delays the whole ladder: level `n + 1` also waits, from when
//! level `n` was sent, the time between the two levels' `after`s (see [`crate::engine`]).
//!
//! # Route ids
//!
//! Every route has an id, stored with each group it forms and shown in its notifications
//! (`route` in the webhook JSON, `group` in PagerDuty's payload). The root's is `root`. A
//! child's is its `id` if it sets one (letters, digits, `-` and `_`; unique in the tree),
//! else `<parent's id>.<receiver>-<hash>`, the hash taken over the parent's id, the child's
//! matchers (in any order) and its receiver: `root.oncall-9b299c72`. So adding, removing or
//! reordering routes leaves the other routes' ids, and so their groups, alone; a route
//! whose matchers or receiver change (or whose parent's id does) is a new route, unless it
//! sets an `id`. Two siblings with the same matchers and receiver need an `id` on one.
//!
//! A group whose route is no longer in the tree (removed, or changed without an `id`)
//! falls to the root: while it fires, the root's receiver and escalation notify it; when
//! it resolves, every receiver it notified is told, as always (see [`crate::engine`]).
//!
//! A runbook is the alarm's own (`Runbook:` in its description, see [`crate::labels`]), else
//! the route's template with `{label}` replaced by the alert's labels.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::labels::Labels;

/// Why the routing file is unusable; names the part at fault (never a secret's value).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid routing configuration: {0}")]
pub struct ConfigError(pub String);

/// A value that must not be shown: a routing key, a URL with a token.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// One label matcher, as Alertmanager's: `name="value"`, `name!="value"`, `name=~"regex"`
/// or `name!~"regex"`. A regex must match the whole value (`pay.*` matches `payments`, not
/// `repay`), in [`regex_lite`]'s syntax (Go's RE2 without Unicode classes such as `\pL`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matcher {
    name: String,
    op: MatchOp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum MatchOp {
    Equal(String),
    NotEqual(String),
    Regex(Pattern),
    NotRegex(Pattern),
}

/// A regex anchored at both ends, compared by the text it was written as.
#[derive(Debug, Clone)]
struct Pattern {
    text: String,
    regex: regex_lite::Regex,
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for Pattern {}

impl Pattern {
    fn new(text: &str) -> Result<Self, regex_lite::Error> {
        // Checked alone first: `a)|(b` is not a regex, yet wrapped it would parse as one
        // anchored at one end only.
        regex_lite::Regex::new(text)?;
        let regex = regex_lite::Regex::new(&format!("^(?:{text})$"))?;
        Ok(Self { text: text.to_owned(), regex })
    }
}

impl fmt::Display for Matcher {
    /// The matcher as written, with no spaces: `severity="page"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (op, value) = match &self.op {
            MatchOp::Equal(v) => ("=", v.as_str()),
            MatchOp::NotEqual(v) => ("!=", v.as_str()),
            MatchOp::Regex(p) => ("=~", p.text.as_str()),
            MatchOp::NotRegex(p) => ("!~", p.text.as_str()),
        };
        write!(f, "{}{op}\"{value}\"", self.name)
    }
}

impl Matcher {
    /// Parses a matcher.
    ///
    /// # Examples
    ///
    /// ```
    /// use alert_router::config::Matcher;
    /// let m = Matcher::parse(r#"service=~"pay.*""#)?;
    /// let labels = |v: &str| [("service".to_owned(), v.to_owned())].into_iter().collect();
    /// assert!(m.matches(&labels("payments")));
    /// assert!(!m.matches(&labels("repay")));
    /// assert!(Matcher::parse("severity page").is_err());
    /// assert!(Matcher::parse(r#"service=~"pay(""#).is_err());
    /// # Ok::<(), alert_router::config::ConfigError>(())
    /// ```
    ///
    /// # Errors
    /// [`ConfigError`] naming the matcher when it is not one of the four forms, or its regex
    /// does not compile.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let bad = || {
            ConfigError(format!(
                "matcher `{text}`: expected name=\"value\", name!=\"value\", name=~\"regex\" or name!~\"regex\""
            ))
        };
        let at = text.find(['=', '!']).ok_or_else(bad)?;
        let name = text[..at].trim();
        let rest = &text[at..];
        let (op, value) = if let Some(v) = rest.strip_prefix("=~") {
            ("=~", v)
        } else if let Some(v) = rest.strip_prefix("!~") {
            ("!~", v)
        } else if let Some(v) = rest.strip_prefix("!=") {
            ("!=", v)
        } else if let Some(v) = rest.strip_prefix('=') {
            ("=", v)
        } else {
            return Err(bad());
        };
        let value = value.trim();
        let value = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).ok_or_else(bad)?;
        let valid_name = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !valid_name {
            return Err(bad());
        }
        let pattern =
            || Pattern::new(value).map_err(|e| ConfigError(format!("matcher `{text}`: not a regex: {e}")));
        let op = match op {
            "=" => MatchOp::Equal(value.to_owned()),
            "!=" => MatchOp::NotEqual(value.to_owned()),
            "=~" => MatchOp::Regex(pattern()?),
            _ => MatchOp::NotRegex(pattern()?),
        };
        Ok(Self { name: name.to_owned(), op })
    }

    /// Whether `labels` satisfy the matcher (a missing label is the empty value).
    pub fn matches(&self, labels: &Labels) -> bool {
        let value = labels.get(&self.name).map(String::as_str).unwrap_or("");
        match &self.op {
            MatchOp::Equal(v) => value == v,
            MatchOp::NotEqual(v) => value != v,
            MatchOp::Regex(p) => p.regex.is_match(value),
            MatchOp::NotRegex(p) => !p.regex.is_match(value),
        }
    }
}

/// Whether every matcher matches.
pub fn all_match(matchers: &[Matcher], labels: &Labels) -> bool {
    matchers.iter().all(|m| m.matches(labels))
}

/// Where a receiver sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelConfig {
    /// JSON POSTed to a URL.
    Webhook {
        /// The URL (may carry a token).
        url: Secret,
    },
    /// A Slack incoming webhook (or one that speaks its format: `text` + `blocks`).
    Slack {
        /// The webhook URL (carries a token).
        url: Secret,
    },
    /// PagerDuty Events API v2.
    PagerDuty {
        /// The base URL; events go to `<url>/v2/enqueue`.
        url: String,
        /// The integration's routing key.
        routing_key: Secret,
    },
    /// An SNS topic, through the AWS SDK.
    Sns {
        /// The topic.
        topic_arn: String,
    },
}

impl ChannelConfig {
    /// The kind's name (`webhook`, `slack`, `pagerduty`, `sns`).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Webhook { .. } => "webhook",
            Self::Slack { .. } => "slack",
            Self::PagerDuty { .. } => "pagerduty",
            Self::Sns { .. } => "sns",
        }
    }
}

/// One escalation level after the first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Level {
    /// How long after the group fired this level is notified.
    pub after: Duration,
    /// Who is notified.
    pub receiver: String,
}

/// A node of the route tree, with what it inherits applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Its id, stored with each group it forms: `root`, the `id` the file gives it, or one
    /// derived from its parent's id, matchers and receiver (`root.oncall-9b299c72`), so that
    /// it does not change when other routes are added, removed or reordered.
    pub id: String,
    /// What an alert must match to enter.
    pub matchers: Vec<Matcher>,
    /// Whether siblings after this one are tried too.
    pub continue_matching: bool,
    /// Level 1.
    pub receiver: String,
    /// Labels that make up a group.
    pub group_by: Vec<String>,
    /// Runbook template (`{label}` placeholders).
    pub runbook: Option<String>,
    /// Levels 2 and up.
    pub escalation: Vec<Level>,
    /// Children.
    pub routes: Vec<Route>,
}

impl Route {
    /// Every level: the receiver at zero, then the escalation.
    pub fn levels(&self) -> Vec<Level> {
        let first = Level { after: Duration::ZERO, receiver: self.receiver.clone() };
        std::iter::once(first).chain(self.escalation.iter().cloned()).collect()
    }

    /// The runbook link for `labels`: the alarm's own, else this route's template filled in.
    pub fn runbook_for(&self, labels: &Labels) -> Option<String> {
        if let Some(own) = labels.get("runbook") {
            return Some(own.clone());
        }
        let mut text = self.runbook.clone()?;
        for (name, value) in labels {
            text = text.replace(&format!("{{{name}}}"), value);
        }
        Some(text)
    }

    fn collect<'a>(&'a self, labels: &Labels, out: &mut Vec<&'a Route>) {
        let mut matched = false;
        for child in &self.routes {
            if all_match(&child.matchers, labels) {
                matched = true;
                child.collect(labels, out);
                if !child.continue_matching {
                    break;
                }
            }
        }
        if !matched {
            out.push(self);
        }
    }

    fn find(&self, id: &str) -> Option<&Route> {
        if self.id == id {
            return Some(self);
        }
        self.routes.iter().find_map(|r| r.find(id))
    }
}

/// An inhibition rule: while an alert matching `source` fires, alerts matching `target`
/// with the same values of `equal` are not notified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InhibitRule {
    /// What the muting alert matches.
    pub source: Vec<Matcher>,
    /// What the muted alerts match.
    pub target: Vec<Matcher>,
    /// Labels both must share.
    pub equal: Vec<String>,
}

impl InhibitRule {
    /// Whether `source` (a firing alert other than `target`) mutes `target`.
    pub fn inhibits(&self, source: &Labels, target: &Labels) -> bool {
        all_match(&self.source, source)
            && all_match(&self.target, target)
            && self.equal.iter().all(|l| source.get(l) == target.get(l))
    }
}

/// Delivery settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Tries per step within one invocation.
    pub attempts: u32,
    /// The first backoff; it doubles each try.
    pub backoff: Duration,
    /// The longest backoff.
    pub max_backoff: Duration,
    /// Per request.
    pub timeout: Duration,
    /// How long a claimed step stays its sender's.
    pub lease: Duration,
}

impl Default for Delivery {
    fn default() -> Self {
        Self {
            attempts: 4,
            backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
            timeout: Duration::from_secs(10),
            lease: Duration::from_secs(60),
        }
    }
}

impl Delivery {
    /// The delay before try `n + 1` (after `n` failed tries, `n >= 1`): `backoff * 2^(n-1)`,
    /// at most `max_backoff`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// let d = alert_router::config::Delivery::default();
    /// assert_eq!(d.backoff_after(1), Duration::from_millis(200));
    /// assert_eq!(d.backoff_after(3), Duration::from_millis(800));
    /// assert_eq!(d.backoff_after(30), Duration::from_secs(5));
    /// ```
    pub fn backoff_after(&self, failed: u32) -> Duration {
        let factor = 1u32.checked_shl(failed.saturating_sub(1)).unwrap_or(u32::MAX);
        self.backoff.saturating_mul(factor).min(self.max_backoff)
    }
}

/// The whole routing configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterConfig {
    /// Service names for the alarm-name convention.
    pub services: Vec<String>,
    /// Receivers by name.
    pub receivers: BTreeMap<String, ChannelConfig>,
    /// The route tree.
    pub route: Route,
    /// Inhibition rules.
    pub inhibit: Vec<InhibitRule>,
    /// Delivery settings.
    pub delivery: Delivery,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    labels: LabelsFile,
    #[serde(default)]
    delivery: DeliveryFile,
    #[serde(default)]
    receivers: Vec<ReceiverFile>,
    route: RouteFile,
    #[serde(default)]
    inhibit: Vec<InhibitFile>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct LabelsFile {
    #[serde(default)]
    services: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DeliveryFile {
    attempts: Option<u32>,
    backoff: Option<String>,
    max_backoff: Option<String>,
    timeout: Option<String>,
    lease: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReceiverFile {
    name: String,
    kind: String,
    url: Option<String>,
    url_env: Option<String>,
    routing_key_env: Option<String>,
    topic_arn: Option<String>,
    topic_arn_env: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteFile {
    id: Option<String>,
    #[serde(default)]
    matchers: Vec<String>,
    #[serde(default, rename = "continue")]
    continue_matching: bool,
    receiver: Option<String>,
    group_by: Option<Vec<String>>,
    runbook: Option<String>,
    escalation: Option<Vec<LevelFile>>,
    #[serde(default)]
    routes: Vec<RouteFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LevelFile {
    after: String,
    receiver: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InhibitFile {
    source: Vec<String>,
    target: Vec<String>,
    #[serde(default)]
    equal: Vec<String>,
}

/// Parses `1h`, `15m`, `30s`, `250ms` (a whole number and a unit).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// assert_eq!(alert_router::config::parse_duration("15m"), Some(Duration::from_secs(900)));
/// assert_eq!(alert_router::config::parse_duration("15"), None);
/// ```
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().ok()?;
    match unit {
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        "m" => Some(Duration::from_secs(n.checked_mul(60)?)),
        "h" => Some(Duration::from_secs(n.checked_mul(3600)?)),
        "d" => Some(Duration::from_secs(n.checked_mul(86_400)?)),
        _ => None,
    }
}

impl RouterConfig {
    /// Parses the routing file; `env` resolves the `*_env` names (URLs and keys).
    ///
    /// # Examples
    ///
    /// ```
    /// use alert_router::config::RouterConfig;
    /// let toml = r#"
    ///     [[receivers]]
    ///     name = "chat"
    ///     kind = "slack"
    ///     url_env = "CHAT_URL"
    ///     [route]
    ///     receiver = "chat"
    ///     runbook = "https://runbooks.example.com/{alertname}"
    /// "#;
    /// let config = RouterConfig::parse(toml, |name| (name == "CHAT_URL").then(|| "https://hooks.example.com/T/x".to_owned()))?;
    /// assert_eq!(config.route.receiver, "chat");
    /// assert!(!format!("{config:?}").contains("hooks.example.com"));
    /// let missing = RouterConfig::parse(toml, |_| None).unwrap_err();
    /// assert!(missing.to_string().contains("CHAT_URL"));
    /// # Ok::<(), alert_router::config::ConfigError>(())
    /// ```
    pub fn parse(text: &str, env: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let file: File = toml::from_str(text).map_err(|e| ConfigError(e.message().to_owned()))?;
        let duration = |field: &str, value: Option<&String>, default: Duration| match value {
            None => Ok(default),
            Some(text) => parse_duration(text).ok_or_else(|| {
                ConfigError(format!("{field}: `{text}` is not a duration like 30s, 15m, 250ms"))
            }),
        };
        let defaults = Delivery::default();
        let delivery = Delivery {
            attempts: file.delivery.attempts.unwrap_or(defaults.attempts).max(1),
            backoff: duration("delivery.backoff", file.delivery.backoff.as_ref(), defaults.backoff)?,
            max_backoff: duration(
                "delivery.max_backoff",
                file.delivery.max_backoff.as_ref(),
                defaults.max_backoff,
            )?,
            timeout: duration("delivery.timeout", file.delivery.timeout.as_ref(), defaults.timeout)?,
            lease: duration("delivery.lease", file.delivery.lease.as_ref(), defaults.lease)?,
        };
        // A sender keeps its claim on a step for the lease; every try of a step (each up to
        // the timeout, with the backoffs between) must fit in it, or a tick would claim the
        // step again while its first sender still retries, and send it twice.
        let longest = (1..delivery.attempts)
            .fold(delivery.timeout.saturating_mul(delivery.attempts), |d, n| {
                d.saturating_add(delivery.backoff_after(n))
            });
        if longest >= delivery.lease {
            return Err(ConfigError(format!(
                "delivery.lease: {:?} is not longer than a step's tries can take ({} attempts of up to {:?} \
                 each, with their backoffs: {:?}); a step would be claimed again while its sender still \
                 tries, and sent twice",
                delivery.lease, delivery.attempts, delivery.timeout, longest
            )));
        }
        let mut receivers = BTreeMap::new();
        for r in file.receivers {
            let channel = receiver(&r, &env)?;
            if receivers.insert(r.name.clone(), channel).is_some() {
                return Err(ConfigError(format!("receivers: `{}` is defined twice", r.name)));
            }
        }
        let base = Route {
            id: String::new(),
            matchers: Vec::new(),
            continue_matching: false,
            receiver: String::new(),
            group_by: Vec::new(),
            runbook: None,
            escalation: Vec::new(),
            routes: Vec::new(),
        };
        if file.route.id.is_some() {
            return Err(ConfigError("route: the root's id is always `root`; it takes no `id`".into()));
        }
        let mut ids = BTreeSet::new();
        let route = route(&file.route, "route", None, &base, &receivers, &duration, &mut ids)?;
        if route.runbook.is_none() {
            return Err(ConfigError(
                "route: the root needs a runbook (every notification carries one)".into(),
            ));
        }
        if !file.route.matchers.is_empty() {
            return Err(ConfigError("route: the root takes every alert and has no matchers".into()));
        }
        let inhibit = file
            .inhibit
            .iter()
            .enumerate()
            .map(|(i, rule)| {
                let parse = |list: &[String]| -> Result<Vec<Matcher>, ConfigError> {
                    list.iter()
                        .map(|m| Matcher::parse(m).map_err(|e| ConfigError(format!("inhibit[{i}]: {}", e.0))))
                        .collect()
                };
                Ok(InhibitRule {
                    source: parse(&rule.source)?,
                    target: parse(&rule.target)?,
                    equal: rule.equal.clone(),
                })
            })
            .collect::<Result<_, ConfigError>>()?;
        Ok(Self { services: file.labels.services, receivers, route, inhibit, delivery })
    }

    /// Reads the routing file at `path`.
    pub fn load(path: &str, env: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError(format!("{path}: {e}")))?;
        Self::parse(&text, env)
    }

    /// The routes an alert with `labels` takes.
    pub fn routes_for(&self, labels: &Labels) -> Vec<&Route> {
        let mut out = Vec::new();
        self.route.collect(labels, &mut out);
        out
    }

    /// The route with this id, if the tree has it.
    pub fn route(&self, id: &str) -> Option<&Route> {
        self.route.find(id).or_else(|| self.positional_route(id))
    }

    /// A route by the positional id earlier versions of the router gave routes (`root.0.1`:
    /// the second child of the first child). Groups opened before ids were stable stored
    /// their route under such an id; read by position in the tree they formed under, they
    /// keep their route across the upgrade instead of all falling to the root at once. No id
    /// of this version has that form: an explicit id has no `.`, a derived one ends in
    /// `<receiver>-<hash>`.
    fn positional_route(&self, id: &str) -> Option<&Route> {
        let mut route = &self.route;
        for index in id.strip_prefix("root.")?.split('.') {
            if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            route = route.routes.get(index.parse::<usize>().ok()?)?;
        }
        Some(route)
    }

    /// Whether one of `firing` (other alerts) mutes `target` through an inhibition rule.
    pub fn inhibited(&self, target: &Labels, firing: &[Labels]) -> bool {
        self.inhibit
            .iter()
            .any(|rule| firing.iter().any(|source| source != target && rule.inhibits(source, target)))
    }
}

fn receiver(r: &ReceiverFile, env: &impl Fn(&str) -> Option<String>) -> Result<ChannelConfig, ConfigError> {
    let at = |what: &str| format!("receiver `{}`: {what}", r.name);
    let from_env = |name: &String| {
        env(name).filter(|v| !v.is_empty()).ok_or_else(|| ConfigError(at(&format!("{name} is not set"))))
    };
    let url = || -> Result<String, ConfigError> {
        let url = match (&r.url, &r.url_env) {
            (Some(url), None) => url.clone(),
            (None, Some(name)) => from_env(name)?,
            _ => return Err(ConfigError(at("set one of url and url_env"))),
        };
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(ConfigError(at("the url is not http(s)")));
        }
        Ok(url)
    };
    match r.kind.as_str() {
        "webhook" => Ok(ChannelConfig::Webhook { url: Secret::new(url()?) }),
        "slack" => Ok(ChannelConfig::Slack { url: Secret::new(url()?) }),
        "pagerduty" => {
            let name =
                r.routing_key_env.as_ref().ok_or_else(|| ConfigError(at("routing_key_env is required")))?;
            Ok(ChannelConfig::PagerDuty { url: url()?, routing_key: Secret::new(from_env(name)?) })
        }
        "sns" => {
            let topic_arn = match (&r.topic_arn, &r.topic_arn_env) {
                (Some(arn), None) => arn.clone(),
                (None, Some(name)) => from_env(name)?,
                _ => return Err(ConfigError(at("set one of topic_arn and topic_arn_env"))),
            };
            if !topic_arn.starts_with("arn:") || topic_arn.split(':').nth(2) != Some("sns") {
                return Err(ConfigError(at("topic_arn is not an SNS topic ARN")));
            }
            Ok(ChannelConfig::Sns { topic_arn })
        }
        other => Err(ConfigError(at(&format!("kind `{other}` is not webhook, slack, pagerduty or sns")))),
    }
}

type DurationField<'a> = dyn Fn(&str, Option<&String>, Duration) -> Result<Duration, ConfigError> + 'a;

/// The route `file` at `at` (its place in the file, for errors: `route.routes[0]`), a child
/// of `parent` unless it is the root. `ids` holds the ids taken so far.
fn route(
    file: &RouteFile,
    at: &str,
    parent: Option<&Route>,
    base: &Route,
    receivers: &BTreeMap<String, ChannelConfig>,
    duration: &DurationField<'_>,
    ids: &mut BTreeSet<String>,
) -> Result<Route, ConfigError> {
    let err = |what: String| ConfigError(format!("{at}: {what}"));
    let inherited = parent.unwrap_or(base);
    let matchers = file
        .matchers
        .iter()
        .map(|m| Matcher::parse(m).map_err(|e| err(e.0)))
        .collect::<Result<Vec<_>, _>>()?;
    let receiver = file.receiver.clone().unwrap_or_else(|| inherited.receiver.clone());
    if receiver.is_empty() {
        return Err(err("has no receiver (set one on the root)".into()));
    }
    let escalation = match &file.escalation {
        None => inherited.escalation.clone(),
        Some(levels) => {
            let mut out = Vec::new();
            for (i, level) in levels.iter().enumerate() {
                let after =
                    duration(&format!("{at}: escalation[{i}].after"), Some(&level.after), Duration::ZERO)?;
                if out.last().is_some_and(|prev: &Level| prev.after >= after) || after.is_zero() {
                    return Err(err(format!("escalation[{i}].after must be later than the level before")));
                }
                out.push(Level { after, receiver: level.receiver.clone() });
            }
            out
        }
    };
    for name in std::iter::once(&receiver).chain(escalation.iter().map(|l| &l.receiver)) {
        if !receivers.contains_key(name) {
            return Err(err(format!("receiver `{name}` is not defined")));
        }
    }
    let id = match (parent, &file.id) {
        (None, _) => "root".to_owned(),
        (Some(_), Some(id)) => {
            let valid = !id.is_empty()
                && id.len() <= 64
                && id != "root"
                && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !valid {
                return Err(err(format!(
                    "id `{id}`: use up to 64 letters, digits, `-` and `_` (and not `root`)"
                )));
            }
            id.clone()
        }
        (Some(parent), None) => derived_id(&parent.id, &matchers, &receiver),
    };
    if !ids.insert(id.clone()) {
        return Err(err(format!(
            "another route has the id `{id}` (the same matchers and receiver under the same parent, \
             or the same `id`); give one of them an `id` of its own"
        )));
    }
    let mut node = Route {
        id,
        matchers,
        continue_matching: file.continue_matching,
        receiver,
        group_by: file.group_by.clone().unwrap_or_else(|| inherited.group_by.clone()),
        runbook: file.runbook.clone().or_else(|| inherited.runbook.clone()),
        escalation,
        routes: Vec::new(),
    };
    let mut children = Vec::with_capacity(file.routes.len());
    for (i, child) in file.routes.iter().enumerate() {
        let at = format!("{at}.routes[{i}]");
        children.push(route(child, &at, Some(&node), base, receivers, duration, ids)?);
    }
    node.routes = children;
    Ok(node)
}

/// The id of a child route without an `id`: `<parent>.<receiver>-<hash>`. The hash covers
/// what the route is (where it hangs, what it matches, whom it notifies), not its place
/// among its siblings, so adding or reordering siblings keeps it.
fn derived_id(parent: &str, matchers: &[Matcher], receiver: &str) -> String {
    let mut written: Vec<String> = matchers.iter().map(Matcher::to_string).collect();
    written.sort();
    let mut text = format!("{parent}\n{receiver}");
    for matcher in &written {
        text.push('\n');
        text.push_str(matcher);
    }
    // The receiver is there to be read; the hash keeps ids apart.
    let readable: String =
        receiver.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
    format!("{parent}.{readable}-{}", hex::encode(&Sha256::digest(text)[..4]))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TREE: &str = r#"
        [[receivers]]
        name = "default"
        kind = "webhook"
        url = "http://127.0.0.1:1/hook"
        [[receivers]]
        name = "pager"
        kind = "webhook"
        url = "http://127.0.0.1:1/pager"
        [[receivers]]
        name = "db"
        kind = "webhook"
        url = "http://127.0.0.1:1/db"
        [route]
        receiver = "default"
        group_by = ["service"]
        runbook = "https://runbooks.example.com/{service}"
        [[route.routes]]
        matchers = ['severity="page"']
        receiver = "pager"
        continue = true
        escalation = [{ after = "15m", receiver = "default" }]
          [[route.routes.routes]]
          matchers = ['service="db"']
          receiver = "db"
        [[route.routes]]
        matchers = ['service=~"db|cache"']
        group_by = ["service", "region"]
    "#;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    /// The ids of the routes `labels` take.
    fn ids(config: &RouterConfig, labels: &Labels) -> Vec<String> {
        config.routes_for(labels).iter().map(|r| r.id.clone()).collect()
    }

    #[test]
    fn the_tree_routes_like_alertmanager() {
        let config = RouterConfig::parse(TREE, |_| None).unwrap();
        let (page, cache) = (&config.route.routes[0], &config.route.routes[1]);
        let db = &page.routes[0];
        assert_eq!(ids(&config, &labels(&[("severity", "ticket"), ("service", "web")])), ["root"]);
        assert_eq!(ids(&config, &labels(&[("severity", "page"), ("service", "web")])), [page.id.as_str()]);
        // continue: the page route and the db route both take it; the page route's child wins there.
        assert_eq!(
            ids(&config, &labels(&[("severity", "page"), ("service", "db")])),
            [db.id.as_str(), cache.id.as_str()]
        );
        let child = config.route(&db.id).unwrap();
        assert_eq!(child.receiver, "db");
        assert_eq!(child.escalation.len(), 1, "inherits the escalation");
        assert_eq!(config.route(&cache.id).unwrap().receiver, "default", "inherits the receiver");
        // Readable: the parent's id, then the receiver.
        assert!(
            page.id.starts_with("root.pager-") && db.id.starts_with(&format!("{}.db-", page.id)),
            "{db:?}"
        );
        assert!(cache.id.starts_with("root.default-"), "{cache:?}");
    }

    /// Groups stored under an earlier version's positional ids keep their routes.
    #[test]
    fn positional_ids_of_earlier_versions_find_their_routes() {
        let config = RouterConfig::parse(TREE, |_| None).unwrap();
        let first = &config.route.routes[0];
        assert_eq!(config.route("root.0").map(|r| &r.id), Some(&first.id));
        assert_eq!(config.route("root.0.0").map(|r| &r.id), Some(&first.routes[0].id));
        assert_eq!(config.route("root.1").map(|r| &r.id), Some(&config.route.routes[1].id));
        for gone in ["root.2", "root.0.5", "root.", "root.0.", "root.x", "root.+1", "0"] {
            assert!(config.route(gone).is_none(), "{gone}");
        }
    }

    #[test]
    fn route_ids_do_not_move_when_routes_are_added_removed_or_reordered() {
        let before = RouterConfig::parse(TREE, |_| None).unwrap();
        let page_db = labels(&[("severity", "page"), ("service", "db")]);
        // A route in front of the others.
        let front =
            "[[route.routes]]\n        matchers = ['tenant=\"globex\"']\n        receiver = \"db\"\n        ";
        let added = TREE.replacen("[[route.routes]]", &format!("{front}[[route.routes]]"), 1);
        let added = RouterConfig::parse(&added, |_| None).unwrap();
        assert_eq!(added.route.routes.len(), 3);
        assert_eq!(ids(&added, &page_db), ids(&before, &page_db));
        // The page route removed: the db|cache route keeps its id.
        let cache_id = before.route.routes[1].id.clone();
        let page = &TREE[TREE.find("[[route.routes]]").unwrap()..TREE.rfind("[[route.routes]]").unwrap()];
        let removed = RouterConfig::parse(&TREE.replace(page, ""), |_| None).unwrap();
        assert_eq!(ids(&removed, &page_db), [cache_id]);
        // Matchers in another order are the same route.
        let two = TREE.replace(r#"['service="db"']"#, r#"['service="db"', 'region!="us-east-1"']"#);
        let swapped = TREE.replace(r#"['service="db"']"#, r#"['region!="us-east-1"', 'service="db"']"#);
        let (two, swapped) =
            (RouterConfig::parse(&two, |_| None).unwrap(), RouterConfig::parse(&swapped, |_| None).unwrap());
        assert_eq!(two.route.routes[0].routes[0].id, swapped.route.routes[0].routes[0].id);
        // Other matchers or another receiver make another route.
        assert_ne!(two.route.routes[0].routes[0].id, before.route.routes[0].routes[0].id);
        let other = RouterConfig::parse(&TREE.replace("receiver = \"db\"", "receiver = \"pager\""), |_| None);
        assert_ne!(other.unwrap().route.routes[0].routes[0].id, before.route.routes[0].routes[0].id);
    }

    #[test]
    fn an_explicit_id_names_a_route_and_anchors_its_children() {
        let tree = TREE.replacen(
            "matchers = ['severity=\"page\"']",
            "id = \"pages\"\n        matchers = ['severity=\"page\"']",
            1,
        );
        let config = RouterConfig::parse(&tree, |_| None).unwrap();
        assert_eq!(config.route.routes[0].id, "pages");
        assert!(config.route.routes[0].routes[0].id.starts_with("pages.db-"));
        // It stays when the route's matchers change.
        let edited = RouterConfig::parse(
            &tree.replace(r#"'severity="page"'"#, r#"'severity=~"page|critical"'"#),
            |_| None,
        );
        assert_eq!(edited.unwrap().route.routes[0].id, "pages");
        // Ids are unique, well formed, and the root's is `root`.
        let twice = tree.replace(
            "group_by = [\"service\", \"region\"]",
            "id = \"pages\"\n        group_by = [\"service\", \"region\"]",
        );
        let err = RouterConfig::parse(&twice, |_| None).unwrap_err().to_string();
        assert!(err.contains("route.routes[1]") && err.contains("`pages`"), "{err}");
        for bad in ["root", "", "a.b", "with space"] {
            let tree = tree.replace("id = \"pages\"", &format!("id = \"{bad}\""));
            let err = RouterConfig::parse(&tree, |_| None).unwrap_err().to_string();
            assert!(err.contains("route.routes[0]: id"), "{bad}: {err}");
        }
        let root = TREE.replace(
            "receiver = \"default\"\n        group_by",
            "id = \"top\"\n        receiver = \"default\"\n        group_by",
        );
        assert!(RouterConfig::parse(&root, |_| None).unwrap_err().to_string().contains("root"));
        // Siblings that are the same route need an id to tell them apart.
        let copy = "[[route.routes]]\n        matchers = ['service=~\"db|cache\"']\n        ";
        let copied = TREE.replacen(
            "[[route.routes]]\n        matchers = ['service=~",
            &format!("{copy}[[route.routes]]\n        matchers = ['service=~"),
            1,
        );
        let err = RouterConfig::parse(&copied, |_| None).unwrap_err().to_string();
        assert!(err.contains("route.routes[2]") && err.contains("give one of them an `id`"), "{err}");
    }

    #[test]
    fn the_shipped_file_parses() {
        let config = RouterConfig::parse(include_str!("../alert-router.toml"), |name| {
            Some(if name.ends_with("_ARN") {
                "arn:aws:sns:eu-west-1:123456789012:pages".into()
            } else {
                "https://example.com/x".into()
            })
        })
        .unwrap();
        assert_eq!(config.receivers.len(), 4);
        assert_eq!(config.route.routes[0].escalation[0].after, Duration::from_secs(900));
        let ids: Vec<&str> = config.route.routes.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["pages-oncall", "team-chat"]);
    }

    #[test]
    fn mistakes_are_named() {
        let unknown = TREE.replace("receiver = \"db\"", "receiver = \"nobody\"");
        let err = RouterConfig::parse(&unknown, |_| None).unwrap_err().to_string();
        assert!(err.contains("route.routes[0].routes[0]:") && err.contains("nobody"), "{err}");
        let matcher = TREE.replace(r#"'severity="page"'"#, "'severity page'");
        assert!(RouterConfig::parse(&matcher, |_| None).unwrap_err().to_string().contains("severity page"));
        let order = TREE.replace("after = \"15m\"", "after = \"0s\"");
        assert!(RouterConfig::parse(&order, |_| None).is_err());
        // Eight tries of up to 10 s cannot fit in the default 60 s lease.
        let slow = format!("[delivery]\nattempts = 8\ntimeout = \"10s\"\n{TREE}");
        let err = RouterConfig::parse(&slow, |_| None).unwrap_err().to_string();
        assert!(err.contains("delivery.lease") && err.contains("8 attempts"), "{err}");
    }

    #[test]
    fn regex_matchers_match_the_whole_value_as_alertmanagers_do() {
        let service = |v: &str| labels(&[("service", v)]);
        let pay = Matcher::parse(r#"service=~"pay.*""#).unwrap();
        assert!(pay.matches(&service("payments")) && pay.matches(&service("pay")));
        assert!(!pay.matches(&service("repay")), "anchored at the start");
        let either = Matcher::parse(r#"service=~"db|cache""#).unwrap();
        assert!(either.matches(&service("db")) && either.matches(&service("cache")));
        assert!(
            !either.matches(&service("dbx")) && !either.matches(&service("my-cache")),
            "anchored at both ends"
        );
        let any = Matcher::parse(r#"route=~".+""#).unwrap();
        assert!(any.matches(&labels(&[("route", "GET:/x")])) && !any.matches(&labels(&[])));
        let not = Matcher::parse(r#"service!~"pay.*|db""#).unwrap();
        assert!(!not.matches(&service("payments")) && !not.matches(&service("db")));
        assert!(not.matches(&service("dbx")) && not.matches(&labels(&[])));
        // Refused, naming the matcher: not a regex, or one that would be anchored at one end only.
        for bad in [r#"service=~"pay(""#, r#"service!~"[a""#, r#"service=~"a)|(b""#] {
            let err = Matcher::parse(bad).unwrap_err().to_string();
            assert!(err.contains(bad) && err.contains("not a regex"), "{err}");
        }
        // In a routing file too.
        let tree = TREE.replace(r#"'service=~"db|cache"'"#, r#"'service=~"db|(cache"'"#);
        let err = RouterConfig::parse(&tree, |_| None).unwrap_err().to_string();
        assert!(err.contains("db|(cache") && err.contains("not a regex"), "{err}");
    }

    #[test]
    fn inhibition_needs_equal_labels_and_another_alert() {
        let rule = InhibitRule {
            source: vec![Matcher::parse(r#"kind="region-down""#).unwrap()],
            target: vec![Matcher::parse(r#"route=~".+""#).unwrap()],
            equal: vec!["region".into()],
        };
        let down = labels(&[("kind", "region-down"), ("region", "eu-west-1")]);
        let eu = labels(&[("route", "GET:/x"), ("region", "eu-west-1")]);
        let us = labels(&[("route", "GET:/x"), ("region", "us-east-1")]);
        assert!(rule.inhibits(&down, &eu));
        assert!(!rule.inhibits(&down, &us));
        assert!(!rule.inhibits(&eu, &eu));
    }
}
