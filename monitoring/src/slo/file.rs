//! The SLO file: what it says, and its validation.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::error::SloError;
use super::window::Window;

/// The metric every request counts in (1 per request, Count): lift's `REQUESTS`.
pub const REQUESTS: &str = "Requests";
/// 1 when the response was a 5xx or the service failed, else 0: lift's `SERVER_ERRORS`.
pub const SERVER_ERRORS: &str = "5xx";
/// Milliseconds from the call to the response: lift's `LATENCY`.
pub const LATENCY: &str = "Latency";
/// The route pattern dimension (`/payments/:id`): lift's `ROUTE`.
pub const ROUTE: &str = "Route";
/// The tenant dimension: lift's `TENANT`.
pub const TENANT: &str = "Tenant";
/// The name of the outage alert, which pages when the function is invoked but its
/// invocations count no requests (see [`SloFile::outage_slo`]): no `[[alert]]` may take it.
pub const OUTAGE_ALERT: &str = "outage";

/// The longest window a CloudWatch alarm can evaluate (`Period` x `EvaluationPeriods`).
const MAX_ALARM_WINDOW: u64 = 7 * 86_400;
const DEFAULT_SLO_WINDOW: Window = Window::from_secs(30 * 86_400);

/// How bad an alert is: a page wakes someone, a ticket waits for working hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Someone is woken.
    Page,
    /// Handled in working hours.
    Ticket,
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Page => "page",
            Self::Ticket => "ticket",
        })
    }
}

/// What an SLO counts as a bad request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SloKind {
    /// Bad: the response was a 5xx or the service failed (the `5xx` metric is 1).
    Availability,
    /// Bad: the `Latency` value is above `threshold_ms` (a value equal to it is good).
    Latency,
}

/// Which requests an SLO covers: the service's, a route's, or a tenant's (on a route).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize)]
pub struct Scope {
    /// The route pattern, as lift's router names it (`/payments/:id`); none: every route.
    pub route: Option<String>,
    /// The tenant; none: every tenant.
    pub tenant: Option<String>,
}

/// The service the SLOs belong to.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Service {
    name: String,
    namespace: String,
    dimensions: Vec<(String, String)>,
}

impl Service {
    /// The service's name (in alarm names).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The EMF namespace its metrics are published in.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Dimensions every metric of the service carries (lift's `default_dimension`).
    pub fn dimensions(&self) -> &[(String, String)] {
        &self.dimensions
    }
}

/// One service level objective, validated.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Slo {
    name: String,
    kind: SloKind,
    objective: f64,
    threshold_ms: Option<f64>,
    scope: Scope,
    window: Window,
    description: Option<String>,
    runbook: Option<String>,
}

impl Slo {
    /// The SLO's name, unique in its file.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Availability or latency.
    pub fn kind(&self) -> SloKind {
        self.kind
    }

    /// The objective, in percent of good requests (99.9).
    pub fn objective(&self) -> f64 {
        self.objective
    }

    /// The latency threshold in milliseconds (latency SLOs only).
    pub fn threshold_ms(&self) -> Option<f64> {
        self.threshold_ms
    }

    /// The requests it covers.
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// The window its error budget is spent over (30 days unless the file says).
    pub fn window(&self) -> Window {
        self.window
    }

    /// The description, if the file has one.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// The runbook link, if the file has one.
    pub fn runbook(&self) -> Option<&str> {
        self.runbook.as_deref()
    }

    /// The error budget: the fraction of requests that may be bad, `1 - objective / 100`
    /// (to 12 decimal places: see [`decimal`]).
    pub fn error_budget(&self) -> f64 {
        decimal((100.0 - self.objective) / 100.0)
    }

    /// Whether `latency_ms` is bad for this (latency) SLO: strictly above the threshold,
    /// as CloudWatch's `PR(:threshold)` counts a value equal to it as good.
    pub fn latency_is_bad(&self, latency_ms: f64) -> bool {
        self.threshold_ms.is_some_and(|t| latency_ms > t)
    }

    /// The dimensions its metrics are read under: the service's, then `Route` and
    /// `Tenant` when scoped. The service must publish exactly this dimension set.
    pub fn dimensions(&self, service: &Service) -> Vec<(String, String)> {
        let mut dims = service.dimensions.clone();
        if let Some(route) = &self.scope.route {
            dims.push((ROUTE.to_owned(), route.clone()));
        }
        if let Some(tenant) = &self.scope.tenant {
            dims.push((TENANT.to_owned(), tenant.clone()));
        }
        dims
    }

    /// The CloudFormation logical id of this SLO's alarms for `rule` (`PaymentsAvailabilityPageFast`).
    pub fn alarm_id(&self, service: &Service, rule: &AlertRule) -> String {
        format!("{}{}{}", pascal(&service.name), pascal(&self.name), pascal(&rule.name))
    }

    /// The CloudWatch alarm name of this SLO's alert for `rule` (`payments-availability-page-fast`).
    pub fn alarm_name(&self, service: &Service, rule: &AlertRule) -> String {
        format!("{}-{}-{}", service.name, self.name, rule.name)
    }
}

/// A multi-window burn-rate alert rule: fires when the error ratio over both windows is
/// above `burn_rate` times the error budget.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertRule {
    name: String,
    severity: Severity,
    burn_rate: f64,
    long_window: Window,
    short_window: Window,
}

impl AlertRule {
    /// A rule (not validated: [`SloFile`] validates the rules it reads).
    pub fn new(
        name: &str,
        severity: Severity,
        burn_rate: f64,
        long_window: Window,
        short_window: Window,
    ) -> Self {
        Self { name: name.to_owned(), severity, burn_rate, long_window, short_window }
    }

    /// The SRE workbook's defaults: page at 14.4x over 1 h and 5 min (2% of a 30-day
    /// budget in an hour), page at 6x over 6 h and 30 min (5% in six hours), ticket at 1x
    /// over 3 d and 6 h (10% in three days).
    pub fn workbook_defaults() -> Vec<Self> {
        let w = Window::from_secs;
        vec![
            Self::new("page-fast", Severity::Page, 14.4, w(3_600), w(300)),
            Self::new("page-slow", Severity::Page, 6.0, w(6 * 3_600), w(1_800)),
            Self::new("ticket", Severity::Ticket, 1.0, w(3 * 86_400), w(6 * 3_600)),
        ]
    }

    /// The rule's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Page or ticket.
    pub fn severity(&self) -> Severity {
        self.severity
    }

    /// How many times faster than the budget allows errors must come.
    pub fn burn_rate(&self) -> f64 {
        self.burn_rate
    }

    /// The long window (catches a real spend of budget).
    pub fn long_window(&self) -> Window {
        self.long_window
    }

    /// The short window (stops the alert soon after the errors do).
    pub fn short_window(&self) -> Window {
        self.short_window
    }

    /// The error ratio above which both windows must be for `slo`: `burn_rate x error budget`
    /// (to 12 decimal places: see [`decimal`]).
    pub fn threshold(&self, slo: &Slo) -> f64 {
        decimal(self.burn_rate * slo.error_budget())
    }
}

/// A validated SLO file: the service, its SLOs and the alert rules every SLO gets.
///
/// # Examples
///
/// ```
/// use lift_monitoring::slo::SloFile;
/// let err = SloFile::parse(r#"
///     [service]
///     name = "payments"
///     namespace = "Payments"
///     [[slo]]
///     name = "availability"
///     kind = "availability"
///     objective = 100.0
/// "#).unwrap_err();
/// assert_eq!(err.key(), Some("slo[0].objective"));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SloFile {
    service: Service,
    slos: Vec<Slo>,
    alerts: Vec<AlertRule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    service: RawService,
    #[serde(default)]
    slo: Vec<RawSlo>,
    alert: Option<Vec<RawAlert>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    name: String,
    namespace: String,
    #[serde(default)]
    dimensions: BTreeMap<String, String>,
    window: Option<Window>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSlo {
    name: String,
    kind: SloKind,
    objective: f64,
    threshold_ms: Option<f64>,
    route: Option<String>,
    tenant: Option<String>,
    window: Option<Window>,
    description: Option<String>,
    runbook: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlert {
    name: String,
    severity: Severity,
    burn_rate: f64,
    long_window: Window,
    short_window: Window,
}

impl SloFile {
    /// Reads and validates the SLO file at `path`.
    ///
    /// # Errors
    /// [`SloError::Io`] when it cannot be read, else as [`parse`](Self::parse).
    pub fn load(path: impl AsRef<Path>) -> Result<Self, SloError> {
        let path = path.as_ref();
        let text =
            std::fs::read_to_string(path).map_err(|source| SloError::Io { path: path.to_owned(), source })?;
        Self::parse_named(&text, &path.display().to_string())
    }

    /// Parses and validates SLO file text.
    ///
    /// # Errors
    /// [`SloError::Syntax`] for bad TOML, missing or unknown keys; [`SloError::Invalid`],
    /// naming the key, for values that cannot be right or contradict each other.
    pub fn parse(text: &str) -> Result<Self, SloError> {
        Self::parse_named(text, "<input>")
    }

    fn parse_named(text: &str, file: &str) -> Result<Self, SloError> {
        let raw: RawFile =
            toml::from_str(text).map_err(|source| SloError::Syntax { file: file.to_owned(), source })?;
        let invalid =
            |key: String, message: String| SloError::Invalid { file: file.to_owned(), key, message };
        let window = raw.service.window.unwrap_or(DEFAULT_SLO_WINDOW);
        let service = validate_service(raw.service).map_err(|(k, m)| invalid(k, m))?;
        let alerts = match raw.alert {
            None => AlertRule::workbook_defaults(),
            Some(list) => validate_alerts(list).map_err(|(k, m)| invalid(k, m))?,
        };
        let slos = validate_slos(raw.slo, &service, &alerts, window).map_err(|(k, m)| invalid(k, m))?;
        Ok(Self { service, slos, alerts })
    }

    /// The service.
    pub fn service(&self) -> &Service {
        &self.service
    }

    /// The SLOs, in file order.
    pub fn slos(&self) -> &[Slo] {
        &self.slos
    }

    /// The alert rules every SLO gets.
    pub fn alerts(&self) -> &[AlertRule] {
        &self.alerts
    }

    /// The SLO whose requests the outage alert compares with the function's invocations: the
    /// first service-wide (no route, no tenant) availability SLO, else the first
    /// service-wide latency SLO; none when every SLO is scoped to a route or a tenant (a
    /// route's requests are a part of the invocations, and a quiet route is no outage).
    ///
    /// An outage that stops the function from writing EMF (an init failure, a crash, out of
    /// memory, a timeout) leaves every SLO without data, and a window without data does not
    /// breach; the outage alert sees the invocations those requests should have been.
    ///
    /// # Examples
    ///
    /// ```
    /// use lift_monitoring::slo::SloFile;
    /// let file = SloFile::parse(r#"
    ///     [service]
    ///     name = "payments"
    ///     namespace = "Payments"
    ///     [[slo]]
    ///     name = "create"
    ///     kind = "availability"
    ///     route = "/payments"
    ///     objective = 99.9
    ///     [[slo]]
    ///     name = "availability"
    ///     kind = "availability"
    ///     objective = 99.9
    /// "#)?;
    /// assert_eq!(file.outage_slo().map(|s| s.name()), Some("availability"));
    /// # Ok::<(), lift_monitoring::slo::SloError>(())
    /// ```
    pub fn outage_slo(&self) -> Option<&Slo> {
        let service_wide = |kind: SloKind| {
            self.slos.iter().find(|s| s.kind == kind && s.scope.route.is_none() && s.scope.tenant.is_none())
        };
        service_wide(SloKind::Availability).or_else(|| service_wide(SloKind::Latency))
    }

    /// The CloudFormation logical id of the outage alarm (`PaymentsOutage`): no SLO's alarm
    /// can have it, as theirs add two capitalized parts to the service's.
    pub fn outage_alarm_id(&self) -> String {
        format!("{}{}", pascal(&self.service.name), pascal(OUTAGE_ALERT))
    }

    /// The CloudWatch alarm name of the outage alarm (`payments-outage`): no SLO's alarm can
    /// have it, as theirs add `<slo>-<rule>` to the service's.
    pub fn outage_alarm_name(&self) -> String {
        format!("{}-{OUTAGE_ALERT}", self.service.name)
    }

    /// The window the outage alert counts invocations and requests over: the shortest short
    /// window of the page rules (5 minutes with the workbook's defaults), else of every rule.
    pub fn outage_window(&self) -> Window {
        let shortest = |page_only: bool| {
            self.alerts
                .iter()
                .filter(|r| !page_only || r.severity == Severity::Page)
                .map(|r| r.short_window)
                .min()
        };
        // Validation keeps at least one rule, so the fallback is never used.
        shortest(true).or_else(|| shortest(false)).unwrap_or(Window::from_secs(300))
    }

    /// The dimension sets the service must publish for these SLOs (lift's
    /// `MetricsBuilder::dimension_set`), without duplicates, in file order.
    pub fn dimension_sets(&self) -> Vec<Vec<String>> {
        let mut sets: Vec<Vec<String>> = Vec::new();
        for slo in &self.slos {
            let set: Vec<String> = slo.dimensions(&self.service).into_iter().map(|(k, _)| k).collect();
            if !sets.contains(&set) {
                sets.push(set);
            }
        }
        sets
    }
}

/// A validation failure: the key and the message.
type Invalid = (String, String);

/// `page-fast` → `PageFast`: names become parts of CloudFormation logical ids.
fn pascal(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map(|c| c.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
        })
        .collect()
}

/// The logical ids and alarm names [`alarms`](crate::alarms) makes of one alert from its
/// own `id` and `name`, with what each is: the composite alarm, then one alarm per window.
fn alarm_parts(id: &str, name: &str) -> [(String, String, &'static str); 3] {
    [
        (id.to_owned(), name.to_owned(), "composite alarm"),
        (format!("{id}Long"), format!("{name}-long"), "long-window alarm"),
        (format!("{id}Short"), format!("{name}-short"), "short-window alarm"),
    ]
}

/// `x` to 12 decimal places. Objectives and burn rates are written in decimal, and binary
/// arithmetic leaves `(100 - 99.9) / 100` at 0.000999999999999943 and 14.4 times it at
/// 0.014399999999999183: 144 bad requests in 10,000 were then "strictly above" a 14.4x
/// threshold on a 99.9% SLO, which they equal.
fn decimal(x: f64) -> f64 {
    (x * 1e12).round() / 1e12
}

/// Names go into alarm names and logical ids: lowercase letters, digits and single dashes,
/// starting with a letter.
fn check_name(key: &str, name: &str) -> Result<(), Invalid> {
    let ok = name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-')
        && !name.contains("--")
        && name.len() <= 64;
    if ok {
        Ok(())
    } else {
        Err((
            key.to_owned(),
            format!(
                "`{name}` must be 1-64 lowercase letters, digits and single dashes, starting with a letter"
            ),
        ))
    }
}

fn validate_service(raw: RawService) -> Result<Service, Invalid> {
    check_name("service.name", &raw.name)?;
    let ns = raw.namespace.trim();
    if ns.is_empty() || ns.len() > 255 {
        return Err(("service.namespace".into(), "must be 1-255 characters".into()));
    }
    if ns.starts_with("AWS/") {
        return Err(("service.namespace".into(), "`AWS/` namespaces are AWS's own, not EMF's".into()));
    }
    let mut dimensions = Vec::new();
    for (key, value) in raw.dimensions {
        let at = format!("service.dimensions.{key}");
        if key == ROUTE || key == TENANT {
            return Err((at, format!("`{key}` is set per SLO (route, tenant), not for the whole service")));
        }
        if key.is_empty() || value.trim().is_empty() {
            return Err((at, "dimension names and values must not be empty".into()));
        }
        dimensions.push((key, value));
    }
    // Two more for Route and Tenant, and CloudWatch's limit is 30 per metric.
    if dimensions.len() > 28 {
        return Err((
            "service.dimensions".into(),
            "at most 28 (CloudWatch takes 30 with Route and Tenant)".into(),
        ));
    }
    Ok(Service { name: raw.name, namespace: ns.to_owned(), dimensions })
}

fn validate_alerts(list: Vec<RawAlert>) -> Result<Vec<AlertRule>, Invalid> {
    if list.is_empty() {
        return Err((
            "alert".into(),
            "an empty list; leave `[[alert]]` out for the SRE workbook defaults".into(),
        ));
    }
    let mut rules: Vec<AlertRule> = Vec::with_capacity(list.len());
    for (i, raw) in list.into_iter().enumerate() {
        let key = |field: &str| format!("alert[{i}].{field}");
        check_name(&key("name"), &raw.name)?;
        if raw.name == OUTAGE_ALERT {
            return Err((
                key("name"),
                format!("`{OUTAGE_ALERT}` is the outage alert's name (invocations without requests)"),
            ));
        }
        // Every SLO's alarm ids and names start the same way, so two rules clash for all
        // SLOs or for none: `page`'s long-window alarm is `...PageLong`, as is the
        // composite alarm of a rule `page-long`.
        let parts = alarm_parts(&pascal(&raw.name), &raw.name);
        for (j, rule) in rules.iter().enumerate() {
            for (other_id, other_name, other_what) in alarm_parts(&pascal(&rule.name), &rule.name) {
                if let Some((_, _, what)) =
                    parts.iter().find(|(id, name, _)| *id == other_id || *name == other_name)
                {
                    return Err((
                        key("name"),
                        format!(
                            "`{}` clashes with alert[{j}] `{}`: its {what} and `{}`'s {other_what} would both be `<Service><Slo>{other_id}`",
                            raw.name, rule.name, rule.name
                        ),
                    ));
                }
            }
        }
        if !(raw.burn_rate.is_finite() && raw.burn_rate > 0.0) {
            return Err((key("burn_rate"), format!("{} must be a positive number", raw.burn_rate)));
        }
        for (field, w) in [("long_window", raw.long_window), ("short_window", raw.short_window)] {
            if w.seconds() % 60 != 0 {
                return Err((key(field), format!("{w} is not whole minutes (CloudWatch periods are)")));
            }
            if w.seconds() > MAX_ALARM_WINDOW {
                return Err((
                    key(field),
                    format!("{w} is longer than the 7 days a CloudWatch alarm can evaluate"),
                ));
            }
        }
        if raw.short_window >= raw.long_window {
            return Err((
                key("short_window"),
                format!("{} is not shorter than long_window {}", raw.short_window, raw.long_window),
            ));
        }
        rules.push(AlertRule::new(&raw.name, raw.severity, raw.burn_rate, raw.long_window, raw.short_window));
    }
    Ok(rules)
}

fn validate_slos(
    list: Vec<RawSlo>,
    service: &Service,
    alerts: &[AlertRule],
    default_window: Window,
) -> Result<Vec<Slo>, Invalid> {
    let mut slos: Vec<Slo> = Vec::with_capacity(list.len());
    // Every logical id and alarm name made so far, with whose it is: (slo, its name, alert, part).
    let mut ids: HashMap<String, (usize, String, String, &str)> = HashMap::new();
    for (i, raw) in list.into_iter().enumerate() {
        let key = |field: &str| format!("slo[{i}].{field}");
        check_name(&key("name"), &raw.name)?;
        if let Some(j) = slos.iter().position(|s| s.name == raw.name) {
            return Err((key("name"), format!("`{}` is already the name of slo[{j}]", raw.name)));
        }
        let o = raw.objective;
        if !(o.is_finite() && o > 0.0 && o < 100.0) {
            return Err((
                key("objective"),
                format!("{o} must be a percentage above 0 and below 100 (100 leaves no error budget)"),
            ));
        }
        match (raw.kind, raw.threshold_ms) {
            (SloKind::Latency, None) => {
                return Err((key("threshold_ms"), "a latency SLO needs its threshold in milliseconds".into()))
            }
            (SloKind::Latency, Some(t)) if !(t.is_finite() && t > 0.0) => {
                return Err((key("threshold_ms"), format!("{t} must be a positive number of milliseconds")))
            }
            (SloKind::Availability, Some(_)) => {
                return Err((key("threshold_ms"), "only latency SLOs have a threshold".into()))
            }
            _ => {}
        }
        for (field, value) in [("route", &raw.route), ("tenant", &raw.tenant)] {
            if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
                return Err((key(field), "must not be empty (leave it out to cover every one)".into()));
            }
        }
        if raw.route.as_deref().is_some_and(|r| !r.starts_with('/')) {
            return Err((key("route"), "a route pattern starts with `/`, as lift's router names it".into()));
        }
        // Both go into the alert's description as labels, `[route=/payments tenant=acme]`.
        for (field, value) in [("route", &raw.route), ("tenant", &raw.tenant)] {
            let Some(value) = value.as_deref() else { continue };
            if value.chars().any(|c| c.is_whitespace() || c == ']') {
                return Err((
                    key(field),
                    "must not contain whitespace or `]` (it goes into the alarm description as a label)"
                        .into(),
                ));
            }
            if value.len() > 128 {
                return Err((
                    key(field),
                    "at most 128 characters (it goes into the alarm description)".into(),
                ));
            }
        }
        // Both go into alarm descriptions, which CloudWatch caps at 1024 characters.
        for (field, value) in [("runbook", &raw.runbook), ("description", &raw.description)] {
            if value.as_deref().is_some_and(|v| v.len() > 512) {
                return Err((
                    key(field),
                    "at most 512 characters (it goes into the alarm description)".into(),
                ));
            }
        }
        let window = raw.window.unwrap_or(default_window);
        let slo = Slo {
            name: raw.name,
            kind: raw.kind,
            objective: o,
            threshold_ms: raw.threshold_ms,
            scope: Scope { route: raw.route, tenant: raw.tenant },
            window,
            description: raw.description,
            runbook: raw.runbook,
        };
        if let Some(j) = slos
            .iter()
            .position(|s| s.kind == slo.kind && s.scope == slo.scope && s.threshold_ms == slo.threshold_ms)
        {
            return Err((
                key("objective"),
                format!(
                    "slo[{j}] `{}` already sets an objective ({}) for the same kind, route, tenant and threshold",
                    slos[j].name, slos[j].objective
                ),
            ));
        }
        for rule in alerts {
            let threshold = rule.threshold(&slo);
            if threshold >= 1.0 {
                return Err((
                    key("objective"),
                    format!(
                        "with alert `{}` at {}x the alert needs an error ratio of {:.1}%, which cannot happen",
                        rule.name,
                        rule.burn_rate,
                        threshold * 100.0
                    ),
                ));
            }
            if rule.long_window > slo.window {
                return Err((
                    key("window"),
                    format!(
                        "{} is shorter than alert `{}`'s long_window {}",
                        slo.window, rule.name, rule.long_window
                    ),
                ));
            }
            let id = slo.alarm_id(service, rule);
            let name = slo.alarm_name(service, rule);
            // Ids and names both: CloudFormation keeps one resource per id, CloudWatch one alarm per name.
            for (part_id, part_name, what) in alarm_parts(&id, &name) {
                for made in [part_id, part_name] {
                    if let Some((j, other, other_rule, other_what)) = ids.get(&made) {
                        return Err((
                            key("name"),
                            format!(
                                "with alert `{}` its {what} would be `{made}`, already slo[{j}] `{other}`'s {other_what} of alert `{other_rule}`",
                                rule.name
                            ),
                        ));
                    }
                    ids.insert(made, (i, slo.name.clone(), rule.name.clone(), what));
                }
            }
        }
        slos.push(slo);
    }
    if slos.is_empty() {
        return Err(("slo".into(), "no SLO: add at least one `[[slo]]`".into()));
    }
    Ok(slos)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logical_id_parts_are_pascal_case() {
        assert_eq!(pascal("page-fast"), "PageFast");
        assert_eq!(pascal("create-p99-latency"), "CreateP99Latency");
    }

    /// A ratio equal to the threshold, as written in decimal, is not above it.
    #[test]
    fn budgets_and_thresholds_are_the_decimal_numbers_written() {
        let slo = |objective: f64| Slo {
            name: "a".into(),
            kind: SloKind::Availability,
            objective,
            threshold_ms: None,
            scope: Scope::default(),
            window: DEFAULT_SLO_WINDOW,
            description: None,
            runbook: None,
        };
        let rules = AlertRule::workbook_defaults();
        let page_fast = rules.iter().find(|r| r.burn_rate == 14.4).expect("the 14.4x rule");
        assert_eq!(slo(99.9).error_budget(), 0.001);
        assert_eq!(page_fast.threshold(&slo(99.9)), 0.0144);
        assert!(144.0 / 10_000.0 <= page_fast.threshold(&slo(99.9)), "exactly at the threshold");
        assert!(145.0 / 10_000.0 > page_fast.threshold(&slo(99.9)));
        assert_eq!(page_fast.threshold(&slo(99.95)), 0.0072);
        assert_eq!(slo(99.0).error_budget(), 0.01);
    }

    #[test]
    fn latency_equal_to_the_threshold_is_good() {
        let slo = Slo {
            name: "l".into(),
            kind: SloKind::Latency,
            objective: 99.0,
            threshold_ms: Some(300.0),
            scope: Scope::default(),
            window: DEFAULT_SLO_WINDOW,
            description: None,
            runbook: None,
        };
        assert!(!slo.latency_is_bad(300.0));
        assert!(slo.latency_is_bad(300.000_001));
        assert!(!slo.latency_is_bad(299.9));
    }
}
