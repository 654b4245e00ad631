//! The local evaluator: the SLO file's alert rules run over an EMF stream, in event time.
//!
//! Semantics, the same as the CloudWatch alarms of [`alarms`](crate::alarms):
//!
//! - Requests count in the minute of their `_aws.Timestamp` (CloudWatch's 1-minute
//!   resolution); the wall clock is never read.
//! - Alerts are evaluated at every minute boundary `b` from the first document's minute on;
//!   a window `W` at `b` covers the minutes `[b - W, b)`.
//! - The ratio over a window is `bad / requests` (availability: the sum of `5xx` over the
//!   sum of `Requests`; latency: values above the threshold over all values). A window with
//!   no requests does not breach (the alarms' `TreatMissingData: notBreaching`).
//! - A rule fires at the first boundary where the ratio over both its windows is above its
//!   threshold (strictly), and resolves at the first boundary where either is not. The long
//!   window's ratio counts only when it holds at least the minimum number of requests
//!   ([`Evaluator::with_min_requests`], by default the alarms' own default,
//!   [`DEFAULT_MIN_REQUESTS`]): below it the window does not breach, as the alarms'
//!   `IF(requests >= ${SloMinRequests}, ..., 0)` reads 0.
//! - A minute is closed once a document of a later minute arrives: a document older than
//!   that is late, counted in the report and not evaluated. [`evaluate_log`] sorts a log
//!   by timestamp first, so a log has no late documents.
//! - The outage alert, when the file has a service-wide SLO ([`SloFile::outage_slo`]):
//!   invocations of the function are fed with [`Evaluator::observe_invocations`] (a
//!   count at a timestamp, e.g. one per runtime `REPORT` line, or CloudWatch's
//!   `Invocations` per minute). At a boundary `b`, over [`SloFile::outage_window`] ending
//!   there, with `i` invocations and `r` of the SLO's requests, it fires when
//!   `i >= min_invocations` ([`Evaluator::with_outage_min_invocations`]) and
//!   `100 - 100 * r / i` is above the percentage ([`Evaluator::with_outage_percent`]), as the
//!   alarm's `IF(invocations >= ${SloOutageMinInvocations}, 100 - 100 * FILL(requests, 0) /
//!   invocations, 0)` does; without invocations it does not (the alarm has no data). An
//!   evaluator never fed invocations never fires it. Its transitions name the SLO and the
//!   alert [`OUTAGE_ALERT`], with `long_ratio` the fraction of invocations without a request.
//! - An SLO that no document matched has no data: [`SloStatus::NoData`], never healthy,
//!   unless the outage alert is firing on it at the end ([`SloStatus::Firing`]): the
//!   function was invoked and wrote nothing.
//! - An SLO with no alert firing at the end whose window's budget is spent (a burn that
//!   paged and stopped) is [`SloStatus::Exhausted`], not healthy.
//!
//! # Examples
//!
//! ```
//! use lift_monitoring::evaluator::{Evaluator, SloStatus};
//! use lift_monitoring::slo::SloFile;
//!
//! let file = SloFile::parse(r#"
//!     [service]
//!     name = "payments"
//!     namespace = "Payments"
//!     [[slo]]
//!     name = "availability"
//!     kind = "availability"
//!     objective = 99.9
//! "#)?;
//! let mut evaluator = Evaluator::new(file);
//! let report = evaluator.finish();
//! assert_eq!(report.slos[0].status, SloStatus::NoData);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::io::BufRead;

use serde::Serialize;

pub use crate::alarms::{DEFAULT_MIN_REQUESTS, DEFAULT_OUTAGE_MIN_INVOCATIONS, DEFAULT_OUTAGE_PERCENT};
use crate::emf::{EmfDocument, EmfError};
use crate::slo::{Severity, Slo, SloFile, SloKind, Window, LATENCY, OUTAGE_ALERT, REQUESTS, SERVER_ERRORS};

/// One minute, in milliseconds: the resolution requests are counted at.
pub const MINUTE_MS: i64 = 60_000;

#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Counts {
    requests: f64,
    bad: f64,
}

impl Counts {
    fn add(self, other: Self) -> Self {
        Self { requests: self.requests + other.requests, bad: self.bad + other.bad }
    }

    fn sub(self, other: Self) -> Self {
        Self { requests: self.requests - other.requests, bad: self.bad - other.bad }
    }

    fn ratio(self) -> Option<f64> {
        (self.requests > 0.0).then(|| self.bad / self.requests)
    }
}

/// Whether an alert started or stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    /// Both windows went above the threshold.
    Firing,
    /// One of the windows came back to or below it.
    Resolved,
}

/// An alert that started or stopped, at a minute boundary of event time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Transition {
    /// The SLO's name.
    pub slo: String,
    /// The alert rule's name.
    pub alert: String,
    /// Page or ticket.
    pub severity: Severity,
    /// Firing or resolved.
    pub state: AlertState,
    /// The boundary, in milliseconds since the epoch.
    pub at_ms: i64,
    /// The error ratio over the long window there (none: no requests in it); for the
    /// outage alert ([`OUTAGE_ALERT`]), the fraction of the invocations over its window that
    /// counted no request (none: no invocations).
    pub long_ratio: Option<f64>,
    /// The error ratio over the short window there (none for the outage alert).
    pub short_ratio: Option<f64>,
}

/// An SLO's state at the end of the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SloStatus {
    /// No document carried a request this SLO covers: nothing is known, it is not healthy.
    NoData,
    /// Requests seen, no alert firing.
    Healthy,
    /// No alert firing at the end, but the error budget over the SLO's window is spent
    /// (budget left below zero): a burn that paged and stopped still used it up.
    Exhausted,
    /// An alert is firing (the outage alert too, though no document came).
    Firing,
}

/// The burn rate over one of an SLO's alert windows at the end of the stream.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BurnRate {
    /// The window.
    pub window: Window,
    /// Error ratio over it divided by the error budget (none: no requests in it).
    pub rate: Option<f64>,
}

/// One SLO at the end of the stream.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SloReport {
    /// The SLO's name.
    pub name: String,
    /// No data, healthy or firing.
    pub status: SloStatus,
    /// Requests it covers in its window (ending at the report's `as_of_ms`).
    pub requests: f64,
    /// Bad requests among them.
    pub bad: f64,
    /// Good requests over all, in percent (none without requests).
    pub sli: Option<f64>,
    /// The objective, in percent.
    pub objective: f64,
    /// The error budget, as a fraction of requests.
    pub error_budget: f64,
    /// The part of the budget left over the window, `1 - (bad / requests) / budget`
    /// (negative when overspent; none without requests).
    pub budget_remaining: Option<f64>,
    /// Burn rates over every alert window, shortest first.
    pub burn_rates: Vec<BurnRate>,
    /// The alert rules firing at the end ([`OUTAGE_ALERT`] among them when it is).
    pub firing: Vec<String>,
}

/// What the evaluator found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// The last boundary evaluated (none: no document).
    pub as_of_ms: Option<i64>,
    /// EMF documents observed.
    pub documents: u64,
    /// Invocations observed ([`Evaluator::observe_invocations`]), late ones not included.
    pub invocations: f64,
    /// Documents and invocation counts older than a minute already closed (not evaluated).
    pub late: u64,
    /// Every alert transition, in time order.
    pub transitions: Vec<Transition>,
    /// Each SLO at the end.
    pub slos: Vec<SloReport>,
}

impl Report {
    /// Whether some SLO had no data.
    pub fn has_no_data(&self) -> bool {
        self.slos.iter().any(|s| s.status == SloStatus::NoData)
    }

    /// Whether an alert is firing at the end.
    pub fn is_firing(&self) -> bool {
        self.slos.iter().any(|s| s.status == SloStatus::Firing)
    }

    /// Whether some SLO has spent its error budget over its window.
    pub fn is_exhausted(&self) -> bool {
        self.slos.iter().any(|s| s.status == SloStatus::Exhausted)
    }
}

struct Series {
    /// `cum[i]`: the counts of the first `i` closed minutes.
    cum: Vec<Counts>,
    open: Counts,
    seen: Counts,
    firing: Vec<bool>,
}

/// Evaluates the alert rules of an SLO file over EMF documents, in event time.
///
/// Feed documents in timestamp order with [`observe`](Self::observe) (or lines with
/// [`observe_line`](Self::observe_line)); [`transitions`](Self::transitions) grows as minutes
/// close; [`finish`](Self::finish) closes the last minute and reports.
pub struct Evaluator {
    file: SloFile,
    dims: Vec<Vec<(String, String)>>,
    origin: Option<i64>,
    next_boundary: i64,
    series: Vec<Series>,
    transitions: Vec<Transition>,
    documents: u64,
    late: u64,
    min_requests: f64,
    /// `invocations[i]`: the invocations of the first `i` closed minutes.
    invocations: Vec<f64>,
    invocations_open: f64,
    outage: Option<Outage>,
}

/// The outage alert's settings and state.
struct Outage {
    /// The index of [`SloFile::outage_slo`] among the file's SLOs.
    slo: usize,
    window: Window,
    min_invocations: f64,
    percent: f64,
    firing: bool,
}

impl fmt::Debug for Evaluator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Evaluator")
            .field("service", &self.file.service().name())
            .field("next_boundary_ms", &(self.next_boundary * MINUTE_MS))
            .field("min_requests", &self.min_requests)
            .field("outage_min_invocations", &self.outage.as_ref().map(|o| o.min_invocations))
            .field("outage_percent", &self.outage.as_ref().map(|o| o.percent))
            .finish_non_exhaustive()
    }
}

impl Evaluator {
    /// An evaluator of `file`'s SLOs and alert rules.
    pub fn new(file: SloFile) -> Self {
        let dims = file.slos().iter().map(|s| s.dimensions(file.service())).collect();
        let series = file
            .slos()
            .iter()
            .map(|_| Series {
                cum: vec![Counts::default()],
                open: Counts::default(),
                seen: Counts::default(),
                firing: vec![false; file.alerts().len()],
            })
            .collect();
        let outage =
            file.outage_slo().and_then(|slo| file.slos().iter().position(|s| s == slo)).map(|slo| Outage {
                slo,
                window: file.outage_window(),
                min_invocations: f64::from(DEFAULT_OUTAGE_MIN_INVOCATIONS),
                percent: f64::from(DEFAULT_OUTAGE_PERCENT),
                firing: false,
            });
        Self {
            file,
            dims,
            origin: None,
            next_boundary: 0,
            series,
            transitions: Vec::new(),
            documents: 0,
            late: 0,
            min_requests: f64::from(DEFAULT_MIN_REQUESTS),
            invocations: vec![0.0],
            invocations_open: 0.0,
            outage,
        }
    }

    /// The same evaluator with a long window counting only from `min_requests` requests on:
    /// set it to the stack's `SloMinRequests` when that is not the default, so the evaluator
    /// pages when the alarms do.
    ///
    /// # Examples
    ///
    /// ```
    /// # use lift_monitoring::{evaluator::Evaluator, slo::SloFile};
    /// # let file = SloFile::parse("[service]\nname = \"p\"\nnamespace = \"P\"\n[[slo]]\nname = \"a\"\nkind = \"availability\"\nobjective = 99.9\n")?;
    /// let evaluator = Evaluator::new(file).with_min_requests(500);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_min_requests(mut self, min_requests: u32) -> Self {
        self.min_requests = f64::from(min_requests);
        self
    }

    /// The same evaluator with the outage alert reading invocations only from
    /// `min_invocations` in its window on (at least 1): set it to the stack's
    /// `SloOutageMinInvocations` when that is not the default ([`DEFAULT_OUTAGE_MIN_INVOCATIONS`]).
    ///
    /// # Examples
    ///
    /// ```
    /// # use lift_monitoring::{evaluator::Evaluator, slo::SloFile};
    /// # let file = SloFile::parse("[service]\nname = \"p\"\nnamespace = \"P\"\n[[slo]]\nname = \"a\"\nkind = \"availability\"\nobjective = 99.9\n")?;
    /// let evaluator = Evaluator::new(file).with_outage_min_invocations(10).with_outage_percent(80);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_outage_min_invocations(mut self, min_invocations: u32) -> Self {
        if let Some(outage) = &mut self.outage {
            // The alarm's parameter has `MinValue: 1`; without invocations it has no data.
            outage.min_invocations = f64::from(min_invocations.max(1));
        }
        self
    }

    /// The same evaluator with the outage alert firing above `percent` of the invocations
    /// without a request: set it to the stack's `SloOutagePercent` when that is not the
    /// default ([`DEFAULT_OUTAGE_PERCENT`]). 100 or more never fires, as in the alarm.
    pub fn with_outage_percent(mut self, percent: u8) -> Self {
        if let Some(outage) = &mut self.outage {
            outage.percent = f64::from(percent);
        }
        self
    }

    /// Counts `count` invocations of the function at `timestamp_ms` (one per runtime
    /// `REPORT` line, or a minute's `Invocations`), first evaluating every minute boundary up
    /// to it, as [`observe`](Self::observe) does for a document: an invocation count older
    /// than a closed minute is late and not counted.
    ///
    /// # Examples
    ///
    /// ```
    /// use lift_monitoring::evaluator::{Evaluator, SloStatus};
    /// use lift_monitoring::slo::{SloFile, OUTAGE_ALERT};
    /// let file = SloFile::parse("[service]\nname = \"p\"\nnamespace = \"P\"\n[[slo]]\nname = \"a\"\nkind = \"availability\"\nobjective = 99.9\n")?;
    /// let mut evaluator = Evaluator::new(file);
    /// // Ten invocations a minute, and the function wrote no EMF: it crashed every time.
    /// for minute in 0..5 {
    ///     evaluator.observe_invocations(minute * 60_000, 10.0);
    /// }
    /// let report = evaluator.finish();
    /// assert_eq!(report.slos[0].status, SloStatus::Firing);
    /// assert_eq!(report.slos[0].firing, [OUTAGE_ALERT]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn observe_invocations(&mut self, timestamp_ms: i64, count: f64) {
        if !(count.is_finite() && count > 0.0) {
            return;
        }
        if self.admit(timestamp_ms) {
            self.invocations_open += count;
        }
    }

    /// Whether what happened at `timestamp_ms` counts: its minute is still open (every
    /// boundary up to it is evaluated first). A late one is counted as late.
    fn admit(&mut self, timestamp_ms: i64) -> bool {
        let minute = timestamp_ms.div_euclid(MINUTE_MS);
        if self.origin.is_none() {
            self.origin = Some(minute);
            self.next_boundary = minute + 1;
        }
        if minute < self.next_boundary - 1 {
            self.late += 1;
            return false;
        }
        self.advance_to(timestamp_ms);
        true
    }

    /// Parses a log line and observes it if it is an EMF document; `Ok(false)` for lines
    /// that are not.
    ///
    /// # Errors
    /// [`EmfError`] when the line looks like an EMF document but is not one (see
    /// [`EmfDocument::parse`]).
    pub fn observe_line(&mut self, line: &str) -> Result<bool, EmfError> {
        match EmfDocument::parse(line)? {
            Some(doc) => {
                self.observe(&doc);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Counts a document's requests for every SLO it matches, first evaluating every
    /// minute boundary up to its timestamp.
    pub fn observe(&mut self, doc: &EmfDocument) {
        self.documents += 1;
        if !self.admit(doc.timestamp_ms()) {
            return;
        }
        let namespace = self.file.service().namespace();
        for ((slo, dims), series) in self.file.slos().iter().zip(&self.dims).zip(&mut self.series) {
            if let Some(counts) = count(slo, doc, namespace, dims) {
                series.open = series.open.add(counts);
                series.seen = series.seen.add(counts);
            }
        }
    }

    /// Declares that no document older than `timestamp_ms` will come: evaluates every
    /// minute boundary up to it.
    pub fn advance_to(&mut self, timestamp_ms: i64) {
        if self.origin.is_none() {
            return;
        }
        let target = timestamp_ms.div_euclid(MINUTE_MS);
        while self.next_boundary <= target {
            self.close_minute();
        }
    }

    /// The transitions so far.
    pub fn transitions(&self) -> &[Transition] {
        &self.transitions
    }

    /// Closes the last minute, evaluates its boundary, and reports.
    pub fn finish(mut self) -> Report {
        let as_of_ms = self.origin.map(|_| {
            self.close_minute();
            (self.next_boundary - 1) * MINUTE_MS
        });
        let slos = self.file.slos().iter().enumerate().map(|(i, slo)| self.slo_report(i, slo)).collect();
        let invocations = self.invocations.last().copied().unwrap_or(0.0) + self.invocations_open;
        Report {
            as_of_ms,
            documents: self.documents,
            invocations,
            late: self.late,
            transitions: self.transitions,
            slos,
        }
    }

    fn close_minute(&mut self) {
        for series in &mut self.series {
            let last = *series.cum.last().unwrap_or(&Counts::default());
            series.cum.push(last.add(series.open));
            series.open = Counts::default();
        }
        let last = self.invocations.last().copied().unwrap_or(0.0);
        self.invocations.push(last + self.invocations_open);
        self.invocations_open = 0.0;
        let b = self.next_boundary;
        self.evaluate(b);
        self.next_boundary += 1;
    }

    /// The counts over `window` ending at boundary `b` (every minute up to `b` closed).
    fn window(&self, i: usize, b: i64, window: Window) -> Counts {
        let origin = self.origin.unwrap_or(b);
        let cum = &self.series[i].cum;
        let end = usize::try_from(b - origin).unwrap_or(0).min(cum.len() - 1);
        let start = usize::try_from(b - window.minutes() as i64 - origin).unwrap_or(0).min(end);
        cum[end].sub(cum[start])
    }

    /// The invocations over `window` ending at boundary `b`, as [`window`](Self::window).
    fn invocations_in(&self, b: i64, window: Window) -> f64 {
        let origin = self.origin.unwrap_or(b);
        let cum = &self.invocations;
        let end = usize::try_from(b - origin).unwrap_or(0).min(cum.len() - 1);
        let start = usize::try_from(b - window.minutes() as i64 - origin).unwrap_or(0).min(end);
        cum[end] - cum[start]
    }

    /// The outage alert at boundary `b` (see the module's docs).
    fn evaluate_outage(&mut self, b: i64) {
        let Some(outage) = &self.outage else { return };
        let invocations = self.invocations_in(b, outage.window);
        let requests = self.window(outage.slo, b, outage.window).requests;
        // The alarm's expression: no invocations is no data, which does not breach.
        let without = (invocations > 0.0).then(|| 100.0 - 100.0 * requests / invocations);
        let firing =
            invocations >= outage.min_invocations && without.is_some_and(|percent| percent > outage.percent);
        if firing != outage.firing {
            let slo = &self.file.slos()[outage.slo];
            self.transitions.push(Transition {
                slo: slo.name().to_owned(),
                alert: OUTAGE_ALERT.to_owned(),
                severity: Severity::Page,
                state: if firing { AlertState::Firing } else { AlertState::Resolved },
                at_ms: b * MINUTE_MS,
                long_ratio: without.map(|percent| percent / 100.0),
                short_ratio: None,
            });
            if let Some(outage) = &mut self.outage {
                outage.firing = firing;
            }
        }
    }

    fn evaluate(&mut self, b: i64) {
        self.evaluate_outage(b);
        for (i, slo) in self.file.slos().iter().enumerate() {
            for (r, rule) in self.file.alerts().iter().enumerate() {
                let threshold = rule.threshold(slo);
                let long_counts = self.window(i, b, rule.long_window());
                let (long, short) = (long_counts.ratio(), self.window(i, b, rule.short_window()).ratio());
                let breached = |ratio: Option<f64>| ratio.is_some_and(|r| r > threshold);
                // One error among a few requests is a large ratio and no evidence of a burn.
                let enough = long_counts.requests >= self.min_requests;
                let firing = enough && breached(long) && breached(short);
                if firing != self.series[i].firing[r] {
                    self.series[i].firing[r] = firing;
                    self.transitions.push(Transition {
                        slo: slo.name().to_owned(),
                        alert: rule.name().to_owned(),
                        severity: rule.severity(),
                        state: if firing { AlertState::Firing } else { AlertState::Resolved },
                        at_ms: b * MINUTE_MS,
                        long_ratio: long,
                        short_ratio: short,
                    });
                }
            }
        }
    }

    fn slo_report(&self, i: usize, slo: &Slo) -> SloReport {
        let series = &self.series[i];
        let b = self.next_boundary - 1;
        let in_window =
            if self.origin.is_some() { self.window(i, b, slo.window()) } else { Counts::default() };
        let budget = slo.error_budget();
        let mut windows: Vec<Window> =
            self.file.alerts().iter().flat_map(|r| [r.short_window(), r.long_window()]).collect();
        windows.sort();
        windows.dedup();
        let burn_rates = windows
            .into_iter()
            .map(|window| {
                let ratio = if self.origin.is_some() { self.window(i, b, window).ratio() } else { None };
                BurnRate { window, rate: ratio.map(|r| r / budget) }
            })
            .collect();
        let firing: Vec<String> = self
            .file
            .alerts()
            .iter()
            .zip(&series.firing)
            .filter(|(_, on)| **on)
            .map(|(rule, _)| rule.name().to_owned())
            .chain(self.outage.as_ref().filter(|o| o.firing && o.slo == i).map(|_| OUTAGE_ALERT.to_owned()))
            .collect();
        let ratio = in_window.ratio();
        let budget_remaining = ratio.map(|r| 1.0 - r / budget);
        let status = match () {
            () if !firing.is_empty() => SloStatus::Firing,
            () if series.seen.requests == 0.0 => SloStatus::NoData,
            () if budget_remaining.is_some_and(|left| left < 0.0) => SloStatus::Exhausted,
            () => SloStatus::Healthy,
        };
        SloReport {
            name: slo.name().to_owned(),
            status,
            requests: in_window.requests,
            bad: in_window.bad,
            sli: ratio.map(|r| (1.0 - r) * 100.0),
            objective: slo.objective(),
            error_budget: budget,
            budget_remaining,
            burn_rates,
            firing,
        }
    }
}

/// The requests and bad requests `doc` holds for `slo`, if it publishes its metrics under
/// the SLO's dimensions.
/// The requests and bad requests one document holds for `slo` of `service`: `None` when the
/// document does not carry the SLO's metrics under its dimensions. A rollout's gate sums
/// these over a canary's documents.
pub fn slo_counts(slo: &Slo, service: &crate::slo::Service, doc: &EmfDocument) -> Option<(f64, f64)> {
    count(slo, doc, service.namespace(), &slo.dimensions(service)).map(|c| (c.requests, c.bad))
}

fn count(slo: &Slo, doc: &EmfDocument, namespace: &str, dims: &[(String, String)]) -> Option<Counts> {
    match slo.kind() {
        SloKind::Availability => {
            let requests: f64 = doc.values(namespace, dims, REQUESTS)?.iter().sum();
            let bad: f64 = doc.values(namespace, dims, SERVER_ERRORS)?.iter().sum();
            Some(Counts { requests, bad })
        }
        SloKind::Latency => {
            let values = doc.values(namespace, dims, LATENCY)?;
            let bad = values.iter().filter(|v| slo.latency_is_bad(**v)).count();
            Some(Counts { requests: values.len() as f64, bad: bad as f64 })
        }
    }
}

/// Why an EMF log could not be evaluated.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The log could not be read.
    #[error("cannot read the EMF log: {0}")]
    Io(#[from] std::io::Error),
    /// A line looks like an EMF document but is not one (see [`EmfDocument::parse`]).
    #[error("line {line}: {source}")]
    Emf {
        /// 1-based.
        line: usize,
        /// What is wrong.
        source: EmfError,
    },
    /// The documents span more than [`MAX_LOG_SPAN_DAYS`]: the evaluator steps through every
    /// minute between the first and the last, and such a span is almost always one
    /// timestamp in seconds, or zero, among timestamps in milliseconds.
    #[error(
        "the log's documents span {} to {}, more than {MAX_LOG_SPAN_DAYS} days: \
         is a timestamp in seconds, not milliseconds? (the first on line {first_line}, \
         the last on line {last_line})",
        utc(*first_ms),
        utc(*last_ms)
    )]
    Span {
        /// The earliest timestamp.
        first_ms: i64,
        /// Its line, 1-based.
        first_line: usize,
        /// The latest timestamp.
        last_ms: i64,
        /// Its line, 1-based.
        last_line: usize,
    },
}

/// The longest span of a log [`evaluate_log`] evaluates: a year and a month, past the
/// longest SLO window (a quarter) with room for a report over a year of logs.
pub const MAX_LOG_SPAN_DAYS: i64 = 400;

/// Evaluates a whole log (EMF documents among other lines), sorted by timestamp first,
/// with the default minimum of requests ([`DEFAULT_MIN_REQUESTS`]) and outage settings.
///
/// A runtime's `REPORT` line that starts with its RFC 3339 time, as `aws logs tail` prints
/// it (`2026-01-01T00:16:00.123000+00:00 <stream> REPORT RequestId: ...`), is one invocation
/// at that time ([`Evaluator::observe_invocations`]): a log of invocations without EMF is an
/// outage. A `REPORT` line without a time is skipped, as other lines are.
///
/// # Errors
/// [`EvalError`] when the log cannot be read or has a broken EMF document.
pub fn evaluate_log(file: SloFile, log: impl BufRead) -> Result<Report, EvalError> {
    enum Event {
        Document(EmfDocument),
        Invocation,
    }
    let mut events = Vec::new();
    for (n, line) in log.lines().enumerate() {
        let line = line?;
        if let Some(doc) =
            EmfDocument::parse(&line).map_err(|source| EvalError::Emf { line: n + 1, source })?
        {
            events.push((n + 1, doc.timestamp_ms(), Event::Document(doc)));
        } else if let Some(at_ms) = report_time(&line) {
            events.push((n + 1, at_ms, Event::Invocation));
        }
    }
    events.sort_by_key(|(_, at_ms, _)| *at_ms);
    if let (Some((first_line, first_ms, _)), Some((last_line, last_ms, _))) = (events.first(), events.last())
    {
        if last_ms - first_ms > MAX_LOG_SPAN_DAYS * 24 * 60 * MINUTE_MS {
            return Err(EvalError::Span {
                first_ms: *first_ms,
                first_line: *first_line,
                last_ms: *last_ms,
                last_line: *last_line,
            });
        }
    }
    let mut evaluator = Evaluator::new(file);
    for (_, at_ms, event) in &events {
        match event {
            Event::Document(doc) => evaluator.observe(doc),
            Event::Invocation => evaluator.observe_invocations(*at_ms, 1.0),
        }
    }
    Ok(evaluator.finish())
}

/// The time of a `REPORT` line that starts with one in RFC 3339
/// (`2026-01-01T00:16:00.123000+00:00`, `...Z`), in milliseconds since the epoch.
fn report_time(line: &str) -> Option<i64> {
    let (time, rest) = line.split_once(char::is_whitespace)?;
    if !rest.contains("REPORT RequestId: ") {
        return None;
    }
    rfc3339_ms(time)
}

/// An RFC 3339 time in milliseconds since the epoch.
fn rfc3339_ms(text: &str) -> Option<i64> {
    let at = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(at.unix_timestamp_nanos().div_euclid(1_000_000)).ok()
}

/// `ms` since the epoch as RFC 3339 UTC to the second (`2026-01-01T00:15:00Z`).
pub fn utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3_600, rem % 3_600 / 60, rem % 60)
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pct = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.3}%"));
        write!(f, "{} EMF documents, ", self.documents)?;
        if self.invocations > 0.0 {
            write!(f, "{} invocations, ", self.invocations)?;
        }
        write!(f, "{} late", self.late)?;
        match self.as_of_ms {
            Some(ms) => writeln!(f, ", evaluated up to {}", utc(ms))?,
            None => writeln!(f)?,
        }
        for t in &self.transitions {
            writeln!(
                f,
                "{} {:<8} {} {} ({}) long {} short {}",
                utc(t.at_ms),
                match t.state {
                    AlertState::Firing => "FIRING",
                    AlertState::Resolved => "RESOLVED",
                },
                t.slo,
                t.alert,
                t.severity,
                pct(t.long_ratio.map(|r| r * 100.0)),
                pct(t.short_ratio.map(|r| r * 100.0)),
            )?;
        }
        for s in &self.slos {
            let status = match s.status {
                SloStatus::NoData => "NO DATA",
                SloStatus::Healthy => "healthy",
                SloStatus::Exhausted => "EXHAUSTED",
                SloStatus::Firing => "FIRING",
            };
            write!(
                f,
                "{:<24} {:<8} sli {} of {} requests (objective {}%), budget left {}",
                s.name,
                status,
                pct(s.sli),
                s.requests,
                s.objective,
                pct(s.budget_remaining.map(|r| r * 100.0)),
            )?;
            for b in &s.burn_rates {
                write!(
                    f,
                    ", {} {}",
                    b.window,
                    b.rate.map_or_else(|| "-".to_owned(), |r| format!("{r:.2}x"))
                )?;
            }
            if !s.firing.is_empty() {
                write!(f, ", firing: {}", s.firing.join(", "))?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{report_time, rfc3339_ms, utc};

    #[test]
    fn rfc_3339_times_read_back_as_utc_prints_them() {
        for ms in [0, 951_782_400_000, 1_767_225_600_000 + 15 * 60_000 + 59_000, -1_000] {
            assert_eq!(rfc3339_ms(&utc(ms)), Some(ms), "{}", utc(ms));
        }
        assert_eq!(
            rfc3339_ms("2026-01-01T00:16:00.123456+00:00"),
            Some(1_767_225_600_000 + 16 * 60_000 + 123)
        );
        assert_eq!(rfc3339_ms("2026-01-01T01:16:00.5+01:00"), Some(1_767_225_600_000 + 16 * 60_000 + 500));
        assert_eq!(rfc3339_ms("2025-12-31T23:00:00-01:00"), Some(1_767_225_600_000));
        for bad in [
            "",
            "2026-01-01",
            "2026-01-01T00:00:00",
            "2026-13-01T00:00:00Z",
            "2026-01-01T00:00:00.x1Z",
            "a-b-cT0:0:0Z",
        ] {
            assert_eq!(rfc3339_ms(bad), None, "{bad}");
        }
        let line = "2026-01-01T00:16:00.123000+00:00 2026/01/01/[$LATEST]8f1c REPORT RequestId: r1\tDuration: 1.00 ms";
        assert_eq!(report_time(line), Some(1_767_225_600_000 + 16 * 60_000 + 123));
        assert_eq!(report_time("REPORT RequestId: r1\tDuration: 1.00 ms"), None);
        assert_eq!(report_time("2026-01-01T00:16:00Z stream START RequestId: r1"), None);
    }

    #[test]
    fn utc_prints_rfc_3339() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(1_767_225_600_000 + 15 * 60_000 + 59_999), "2026-01-01T00:15:59Z");
        assert_eq!(utc(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(utc(-1_000), "1969-12-31T23:59:59Z");
    }
}
