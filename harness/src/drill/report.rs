//! The drill report: what was measured, the assertion verdicts, and its renderings (terminal
//! summary, JSON, JUnit XML; HTML in [`super::html`]).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::metrics::Sample;
use super::DrillError;

/// Everything a drill measured, and whether it passed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DrillReport {
    /// The scenario's name.
    pub scenario: String,
    /// The scenario's description.
    pub description: String,
    /// When the load began, in seconds since the Unix epoch.
    pub started_at_unix: f64,
    /// How long the load ran, in seconds (wall clock).
    pub duration_secs: f64,
    /// The regions, primary first.
    pub regions: Vec<String>,
    /// The primary when the drill began.
    pub initial_primary: String,
    /// The region taking traffic when the drill ended.
    pub final_primary: String,
    /// Whether failover was enabled.
    pub failover_enabled: bool,
    /// `sync` or `async`.
    pub replication: String,
    /// What drove the load (the failover client implementation).
    pub target: String,
    /// Totals over the whole drill.
    pub totals: Totals,
    /// One entry per fault of the timeline, with what it caused.
    pub faults: Vec<FaultReport>,
    /// Health and failover events from the failover client, in order.
    pub events: Vec<EventRecord>,
    /// Failovers that happened (traffic moved away from an unhealthy region).
    pub failovers: u32,
    /// Failbacks that happened (traffic moved back to the healed primary).
    #[serde(default)]
    pub failbacks: u32,
    /// Every move of traffic, failovers and failbacks, in order, each with the fault it
    /// answered.
    #[serde(default)]
    pub switches: Vec<SwitchReport>,
    /// Time from injection to the region being declared down, in ms: the worst case over
    /// the faults `max_detect_secs` binds (see [`FaultReport::detect_bound`]); `None` when
    /// one of them was never detected, or none is bound.
    pub time_to_detect_ms: Option<f64>,
    /// Time from injection to the first successful operation in the region traffic moved
    /// to, in ms: the worst case over the faults `max_failover_secs` binds; `None` when one
    /// of them did not move traffic, or none is bound.
    pub time_to_failover_ms: Option<f64>,
    /// Failed operations within the fault windows.
    pub errors_in_window: u64,
    /// The acknowledged-writes check (RPO).
    pub writes: WriteCheck,
    /// Replication lag as observed.
    pub replication_lag: LagSummary,
    /// One verdict per assertion.
    pub assertions: Vec<AssertionResult>,
    /// Whether every assertion passed.
    pub passed: bool,
    /// A sample every 100 ms.
    pub samples: Vec<Sample>,
    /// What the drill's DynamoDB traffic consumed and would cost on demand, measured in
    /// front of each local DynamoDB; `None` when a region is remote (real AWS bills it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<DrillCost>,
}

/// The drill's DynamoDB traffic priced: the request units DynamoDB reported for every
/// request that passed the fault proxies during the load (service calls, synchronous and
/// stream replication, health probes and lag heartbeats), at on-demand prices of each
/// region from [`lift_monitoring::cost::PriceTable`]. Lambda, API Gateway and logs are not
/// in it: a drill drives the service's operations in process.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DrillCost {
    /// The price table's version (`aws-2026-12`).
    pub price_table: String,
    /// Read request units, over every region.
    pub read_units: f64,
    /// Write request units, over every region.
    pub write_units: f64,
    /// Data-plane requests metered.
    pub requests: u64,
    /// Requests whose answer reported no capacity (errors): not priced.
    pub unreported: u64,
    /// Per region: read units, write units, dollars (`None` when the price table has no
    /// such region).
    pub by_region: std::collections::BTreeMap<String, (f64, f64, Option<f64>)>,
    /// The drill's DynamoDB cost in dollars, over the regions the table prices.
    pub dollars: f64,
    /// Dollars per million operations the load completed.
    pub per_million_operations: Option<f64>,
}

impl DrillCost {
    /// Prices what each region's meter recorded, for `operations` completed operations.
    pub fn price(
        table: &lift_monitoring::cost::PriceTable,
        recorded: &[(String, Vec<crate::cost::CapacityRecord>)],
        operations: u64,
    ) -> Self {
        let mut cost = DrillCost { price_table: table.version.clone(), ..Default::default() };
        for (region, records) in recorded {
            let read: f64 = records.iter().map(|r| r.read_units).sum();
            let write: f64 = records.iter().map(|r| r.write_units).sum();
            cost.requests += records.len() as u64;
            cost.unreported += records.iter().filter(|r| !r.reported).count() as u64;
            cost.read_units += read;
            cost.write_units += write;
            let dollars = table.region(region).ok().map(|p| {
                read * p.dynamodb.read_request_units_per_million / 1e6
                    + write * p.dynamodb.write_request_units_per_million / 1e6
            });
            cost.dollars += dollars.unwrap_or(0.0);
            cost.by_region.insert(region.clone(), (read, write, dollars));
        }
        cost.per_million_operations = (operations > 0).then(|| cost.dollars / operations as f64 * 1e6);
        cost
    }

    /// One line for summaries.
    pub fn line(&self) -> String {
        let unpriced: Vec<&str> =
            self.by_region.iter().filter(|(_, v)| v.2.is_none()).map(|(r, _)| r.as_str()).collect();
        format!(
            "DynamoDB {:.0} RRU + {:.0} WRU over {} requests = ${:.6} (${} per million operations; {}{})",
            self.read_units,
            self.write_units,
            self.requests,
            self.dollars,
            self.per_million_operations.map_or("-".to_owned(), |d| format!("{d:.2}")),
            self.price_table,
            if unpriced.is_empty() {
                String::new()
            } else {
                format!("; no prices for {}", unpriced.join(", "))
            }
        )
    }
}

/// Totals over the whole drill.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Totals {
    /// Operations started.
    pub started: u64,
    /// Operations finished.
    pub completed: u64,
    /// Successful operations.
    pub ok: u64,
    /// Failed operations (errors and timeouts).
    pub errors: u64,
    /// Of the errors, operations that hit the deadline.
    pub timeouts: u64,
    /// Operations not started because `load.concurrency` were in flight.
    pub shed: u64,
    /// `ok / completed`.
    pub success_rate: f64,
    /// Median latency, ms.
    pub p50_ms: Option<f64>,
    /// 99th percentile latency, ms.
    pub p99_ms: Option<f64>,
    /// Errors by class.
    pub errors_by_class: std::collections::BTreeMap<String, u64>,
    /// Successful operations by serving region.
    pub ok_by_region: std::collections::BTreeMap<String, u64>,
}

/// What one fault caused, from the events of the region it hit: a detection, a failover
/// or a recovery of that region belongs to the latest fault injected there before it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultReport {
    /// Its name in the scenario, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The fault kind (`region_outage`, ...).
    pub kind: String,
    /// The region hit.
    pub region: String,
    /// What was done, e.g. `blackhole on the client and replication paths`.
    pub action: String,
    /// The region serving traffic when it was injected.
    #[serde(default)]
    pub active_at_injection: String,
    /// When it was injected, ms since the load began (measured, not scheduled).
    pub injected_at_ms: f64,
    /// When it was healed, if it was.
    pub healed_at_ms: Option<f64>,
    /// When the failover client declared the region down, if it did (the injection itself
    /// when the region was still held down from before).
    pub detected_at_ms: Option<f64>,
    /// `detected_at_ms - injected_at_ms`: detection as the drill sees it, from its own
    /// injection; includes the wait for the next probe round.
    pub time_to_detect_ms: Option<f64>,
    /// Detection as lift sees it: from the start of the first failing probe round to the
    /// region declared down (`failure_threshold` rounds). A round already in flight when
    /// the fault lands fails too, so this can exceed `time_to_detect_ms` by up to a probe
    /// timeout.
    #[serde(default)]
    pub time_to_detect_from_probe_ms: Option<f64>,
    /// When lift's orchestrator moved traffic away from the region (a failover, never a
    /// failback).
    #[serde(default)]
    pub switched_at_ms: Option<f64>,
    /// The region traffic moved to, if it moved.
    pub failed_over_to: Option<String>,
    /// When the first operation succeeded in that region after the fault.
    pub failed_over_at_ms: Option<f64>,
    /// `failed_over_at_ms - injected_at_ms`.
    pub time_to_failover_ms: Option<f64>,
    /// When the region was declared healthy again after the heal.
    #[serde(default)]
    pub recovered_at_ms: Option<f64>,
    /// `recovered_at_ms - healed_at_ms`.
    #[serde(default)]
    pub time_to_recover_ms: Option<f64>,
    /// When traffic moved back to the region (a failback) after the heal.
    #[serde(default)]
    pub failed_back_at_ms: Option<f64>,
    /// Operations that called the region and finished between injection and heal (or
    /// the end).
    pub ops_in_window: u64,
    /// Of those, failed.
    pub errors_in_window: u64,
    /// Whether `max_detect_secs` binds it: a hard fault (`region_outage`, `process_kill`),
    /// or any other but a partition that its region was declared down for.
    #[serde(default)]
    pub detect_bound: bool,
    /// Whether `max_failover_secs` binds it: a hard fault on the region serving traffic,
    /// or any other but a partition that moved traffic.
    #[serde(default)]
    pub failover_bound: bool,
}

impl FaultReport {
    /// `kind on region at t s` (and its name), to name it in messages.
    pub fn label(&self) -> String {
        format!(
            "{}{} on {} at {:.1}s",
            self.name.as_ref().map(|n| format!("{n}: ")).unwrap_or_default(),
            self.kind,
            self.region,
            self.injected_at_ms / 1000.0
        )
    }
}

/// A move of traffic by lift's orchestrator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SwitchReport {
    /// `failover` (away from an unhealthy region) or `failback` (back to the healed primary).
    pub kind: String,
    /// Where traffic was.
    pub from: String,
    /// Where it went.
    pub to: String,
    /// When the router moved, ms since the load began.
    pub at_ms: f64,
    /// Lift's own figure: first failing (failback: passing) probe round to the region
    /// declared down (up).
    pub lift_detect_ms: f64,
    /// Lift's own figure: first failing (passing) probe round to the move.
    pub lift_switch_ms: f64,
    /// The fault it answered ([`FaultReport::label`]): for a failover the fault on `from`,
    /// for a failback the healed fault on `to`.
    pub fault: Option<String>,
}

/// A health or failover event, as the failover client reported it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventRecord {
    /// When, ms since the load began.
    pub t_ms: f64,
    /// The region concerned.
    pub region: String,
    /// `region_down`, `region_up`, `failover`, ...
    pub kind: String,
    /// Details.
    pub detail: String,
}

/// Every acknowledged effect, read back at each failover and after the drill.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WriteCheck {
    /// Operations acknowledged to the caller that left an effect.
    pub acknowledged: u64,
    /// Where they were read back (the final primary).
    pub checked_in: String,
    /// Acknowledged effects missing or stale there after settle.
    pub lost: u64,
    /// Up to 20 of the lost keys.
    pub lost_examples: Vec<String>,
    /// Acknowledged effects the final primary holds and each other region still lacks after
    /// settle (not yet, or never, replicated).
    pub missing_by_region: std::collections::BTreeMap<String, u64>,
    /// Acknowledged effects each other region holds and the final primary still lacks after
    /// settle (that region's writes not yet, or never, replicated to it).
    #[serde(default)]
    pub missing_in_primary_by_region: std::collections::BTreeMap<String, u64>,
    /// At each failover: acknowledged effects the new primary did not hold when traffic
    /// moved, read from it while replication from the region traffic left was held cut
    /// (the RPO exposure of that moment; 0 with sync replication).
    pub missing_at_failover: Vec<u64>,
    /// Failovers whose new primary could not be read (no figure in `missing_at_failover`).
    #[serde(default)]
    pub failovers_unmeasured: u64,
    /// Sync replication: acknowledged operations whose writes one region alone held, because
    /// the monitor held every other region unhealthy (degraded writes).
    #[serde(default)]
    pub degraded: u64,
    /// Per operation kind that left an effect (`create`, `refund`, `erase`): what was
    /// checked, lost in the final primary and still divergent elsewhere after settle.
    #[serde(default)]
    pub by_kind: std::collections::BTreeMap<String, KindCheck>,
}

/// The check of one write kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindCheck {
    /// Distinct items whose last acknowledged effect was of this kind.
    pub checked: u64,
    /// Of those, missing or stale in the final primary.
    pub lost: u64,
    /// Of those, where another region still disagrees with the final primary after settle
    /// (held by one of the two only; summed over regions). An effect lost in both is lost,
    /// not divergent.
    pub divergent: u64,
}

impl WriteCheck {
    /// `kind checked/lost/divergent` for each kind, for summaries.
    pub fn kinds_text(&self) -> String {
        self.by_kind
            .iter()
            .map(|(kind, c)| {
                format!("{kind}: {} checked, {} lost, {} divergent", c.checked, c.lost, c.divergent)
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Replication lag over the drill.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LagSummary {
    /// How it was measured.
    pub source: String,
    /// Measurements taken.
    pub samples: u64,
    /// Highest lag, ms.
    pub max_ms: Option<f64>,
    /// 99th percentile, ms.
    pub p99_ms: Option<f64>,
    /// Median, ms.
    pub p50_ms: Option<f64>,
}

/// One assertion's verdict.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AssertionResult {
    /// The assertion, as named in the scenario (`max_failover_secs`).
    pub name: String,
    /// The bound, as written.
    pub limit: String,
    /// What was measured, in the same unit.
    pub actual: String,
    /// Whether it held.
    pub passed: bool,
    /// Why not, when it failed.
    pub message: Option<String>,
}

/// The files a report was written to.
#[derive(Debug, Clone)]
pub struct ReportFiles {
    /// `<name>.json`.
    pub json: PathBuf,
    /// `<name>.html`.
    pub html: PathBuf,
    /// `<name>.junit.xml`.
    pub junit: PathBuf,
}

impl DrillReport {
    /// Writes the JSON, HTML and JUnit reports into `dir` (created if needed).
    pub fn write_to(&self, dir: &Path) -> Result<ReportFiles, DrillError> {
        std::fs::create_dir_all(dir).map_err(|source| DrillError::Io { path: dir.to_owned(), source })?;
        let files = ReportFiles {
            json: dir.join(format!("{}.json", self.scenario)),
            html: dir.join(format!("{}.html", self.scenario)),
            junit: dir.join(format!("{}.junit.xml", self.scenario)),
        };
        let json = serde_json::to_string_pretty(self).expect("the report serializes") + "\n";
        for (path, text) in
            [(&files.json, json), (&files.html, super::html::render(self)), (&files.junit, self.junit())]
        {
            std::fs::write(path, text).map_err(|source| DrillError::Io { path: path.clone(), source })?;
        }
        Ok(files)
    }

    /// The names of the failed assertions.
    pub fn failed_assertions(&self) -> Vec<&str> {
        self.assertions.iter().filter(|a| !a.passed).map(|a| a.name.as_str()).collect()
    }

    /// JUnit XML: one test suite for the drill, one test case per assertion.
    pub fn junit(&self) -> String {
        let mut properties: Vec<(String, String)> = [
            ("initial_primary", self.initial_primary.clone()),
            ("final_primary", self.final_primary.clone()),
            ("time_to_detect_ms", fmt_opt(self.time_to_detect_ms)),
            ("time_to_failover_ms", fmt_opt(self.time_to_failover_ms)),
            ("failovers", self.failovers.to_string()),
            ("failbacks", self.failbacks.to_string()),
            ("errors_in_window", self.errors_in_window.to_string()),
            ("acknowledged_writes_lost", self.writes.lost.to_string()),
            (
                "writes_missing_at_failover",
                self.writes.missing_at_failover.iter().max().map_or("-".to_owned(), u64::to_string),
            ),
            ("degraded_writes", self.writes.degraded.to_string()),
            ("replication_lag_max_ms", fmt_opt(self.replication_lag.max_ms)),
            ("cost", self.cost.as_ref().map_or("-".to_owned(), DrillCost::line)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        for (kind, c) in &self.writes.by_kind {
            for (what, n) in [("checked", c.checked), ("lost", c.lost), ("divergent", c.divergent)] {
                properties.push((format!("writes_{what}_{kind}"), n.to_string()));
            }
        }
        junit_suite(
            &self.scenario,
            self.duration_secs,
            &properties,
            &self.assertions,
            &Summary(self).to_string(),
        )
    }
}

/// JUnit XML for one drill: a test suite with the figures as properties, one test case per
/// assertion (a failure names the limit and what was measured), the summary as system-out.
pub(crate) fn junit_suite(
    scenario: &str,
    secs: f64,
    properties: &[(String, String)],
    assertions: &[AssertionResult],
    summary: &str,
) -> String {
    let failures = assertions.iter().filter(|a| !a.passed).count();
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        xml,
        "<testsuites name=\"lift-drill\" tests=\"{}\" failures=\"{failures}\" time=\"{secs:.3}\">",
        assertions.len()
    );
    let _ = writeln!(
        xml,
        "  <testsuite name=\"drill.{}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" time=\"{secs:.3}\">",
        escape(scenario),
        assertions.len()
    );
    let _ = writeln!(xml, "    <properties>");
    for (name, value) in properties {
        let _ = writeln!(xml, "      <property name=\"{}\" value=\"{}\"/>", escape(name), escape(value));
    }
    let _ = writeln!(xml, "    </properties>");
    for a in assertions {
        let _ = write!(
            xml,
            "    <testcase classname=\"drill.{}\" name=\"{}\" time=\"0\"",
            escape(scenario),
            escape(&a.name)
        );
        if a.passed {
            xml.push_str("/>\n");
        } else {
            let message = a.message.clone().unwrap_or_default();
            let _ = writeln!(xml, ">");
            let _ = writeln!(
                xml,
                "      <failure message=\"{}\" type=\"AssertionFailed\">limit {}, actual {}</failure>",
                escape(&message),
                escape(&a.limit),
                escape(&a.actual)
            );
            let _ = writeln!(xml, "    </testcase>");
        }
    }
    let _ = writeln!(xml, "    <system-out>{}</system-out>", escape(summary));
    xml.push_str("  </testsuite>\n</testsuites>\n");
    xml
}

/// The terminal summary of a report (`Display`).
#[derive(Debug)]
pub struct Summary<'a>(pub &'a DrillReport);

impl std::fmt::Display for Summary<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let r = self.0;
        writeln!(f, "drill {}: {}", r.scenario, if r.passed { "PASSED" } else { "FAILED" })?;
        if !r.description.is_empty() {
            writeln!(f, "  {}", r.description)?;
        }
        writeln!(
            f,
            "  regions {} (primary {} -> {}), failover {}, {} replication, via {}",
            r.regions.join(", "),
            r.initial_primary,
            r.final_primary,
            if r.failover_enabled { "on" } else { "off" },
            r.replication,
            r.target
        )?;
        let t = &r.totals;
        writeln!(
            f,
            "  {:.1}s, {} ops: {} ok, {} errors ({} timeouts), {} shed; success {:.2}%, p50 {} ms, p99 {} ms",
            r.duration_secs,
            t.completed,
            t.ok,
            t.errors,
            t.timeouts,
            t.shed,
            t.success_rate * 100.0,
            fmt_opt(t.p50_ms),
            fmt_opt(t.p99_ms)
        )?;
        if let Some(cost) = &r.cost {
            writeln!(f, "  cost: {}", cost.line())?;
        }
        for fault in &r.faults {
            writeln!(
                f,
                "  fault {}{} on {} at {:.1}s{}: {}",
                fault.name.as_ref().map(|n| format!("{n} ")).unwrap_or_default(),
                fault.kind,
                fault.region,
                fault.injected_at_ms / 1000.0,
                fault.healed_at_ms.map(|h| format!(" (healed {:.1}s)", h / 1000.0)).unwrap_or_default(),
                fault.action
            )?;
            writeln!(
                f,
                "    detect {} ms after injection ({} ms after the first failing probe), fail over {} ms{}, recover {} ms after heal{}, {} errors of {} ops that called {} in window",
                fmt_opt(fault.time_to_detect_ms),
                fmt_opt(fault.time_to_detect_from_probe_ms),
                fmt_opt(fault.time_to_failover_ms),
                fault.failed_over_to.as_ref().map(|to| format!(" (to {to})")).unwrap_or_default(),
                fmt_opt(fault.time_to_recover_ms),
                fault.failed_back_at_ms.map(|t| format!(", failed back at {:.1}s", t / 1000.0)).unwrap_or_default(),
                fault.errors_in_window,
                fault.ops_in_window,
                fault.region
            )?;
        }
        for s in &r.switches {
            writeln!(
                f,
                "  {} {} -> {} at {:.1}s (lift: {} ms to declare, {} ms to move, from the first {} probe){}",
                s.kind,
                s.from,
                s.to,
                s.at_ms / 1000.0,
                fmt_opt(Some(s.lift_detect_ms)),
                fmt_opt(Some(s.lift_switch_ms)),
                if s.kind == "failback" { "passing" } else { "failing" },
                s.fault.as_ref().map(|l| format!(", answering {l}")).unwrap_or_default()
            )?;
        }
        writeln!(
            f,
            "  worst case: time to detect {} ms, time to fail over {} ms; {} failover(s), {} failback(s), {} errors in fault windows",
            fmt_opt(r.time_to_detect_ms),
            fmt_opt(r.time_to_failover_ms),
            r.failovers,
            r.failbacks,
            r.errors_in_window
        )?;
        let w = &r.writes;
        writeln!(
            f,
            "  acknowledged writes: {}, lost in {}: {}, missing in the new primary at failover: {:?}{}, degraded (one region alone): {}",
            w.acknowledged,
            w.checked_in,
            w.lost,
            w.missing_at_failover,
            if w.failovers_unmeasured > 0 {
                format!(" ({} failover(s) not measured)", w.failovers_unmeasured)
            } else {
                String::new()
            },
            w.degraded
        )?;
        if !w.missing_by_region.is_empty() {
            let text: Vec<String> = w
                .missing_by_region
                .iter()
                .map(|(region, n)| {
                    let back = w.missing_in_primary_by_region.get(region).copied().unwrap_or(0);
                    format!(
                        "missing in {region}: {n}, held by {region} and missing in {}: {back}",
                        w.checked_in
                    )
                })
                .collect();
            writeln!(f, "  after settle: {}", text.join("; "))?;
        }
        if !r.writes.by_kind.is_empty() {
            writeln!(f, "  write kinds checked: {}", r.writes.kinds_text())?;
        }
        writeln!(
            f,
            "  replication lag ({}): max {} ms, p99 {} ms over {} samples",
            r.replication_lag.source,
            fmt_opt(r.replication_lag.max_ms),
            fmt_opt(r.replication_lag.p99_ms),
            r.replication_lag.samples
        )?;
        for a in &r.assertions {
            writeln!(
                f,
                "  [{}] {} {} {}: {}{}",
                if a.passed { "pass" } else { "FAIL" },
                a.name,
                if a.name.starts_with("min_") { ">=" } else { "<=" },
                a.limit,
                a.actual,
                a.message.as_ref().map(|m| format!(" ({m})")).unwrap_or_default()
            )?;
        }
        Ok(())
    }
}

pub(crate) fn fmt_opt(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.0}"))
}

/// Escapes text for XML and HTML.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && c != '\n' && c != '\t' && c != '\r' => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn sample_report() -> DrillReport {
        DrillReport {
            scenario: "t".into(),
            description: "a <test>".into(),
            started_at_unix: 0.0,
            duration_secs: 10.0,
            regions: vec!["a".into(), "b".into()],
            initial_primary: "a".into(),
            final_primary: "b".into(),
            failover_enabled: true,
            replication: "sync".into(),
            target: "test".into(),
            totals: Totals { completed: 10, ok: 9, errors: 1, success_rate: 0.9, ..Totals::default() },
            faults: vec![],
            events: vec![],
            failovers: 1,
            failbacks: 0,
            switches: vec![],
            time_to_detect_ms: Some(700.0),
            time_to_failover_ms: Some(900.0),
            errors_in_window: 1,
            writes: WriteCheck::default(),
            replication_lag: LagSummary::default(),
            assertions: vec![
                AssertionResult {
                    name: "max_failover_secs".into(),
                    limit: "30".into(),
                    actual: "0.9".into(),
                    passed: true,
                    message: None,
                },
                AssertionResult {
                    name: "max_errors_in_window".into(),
                    limit: "0".into(),
                    actual: "1".into(),
                    passed: false,
                    message: Some("1 > 0 & more".into()),
                },
            ],
            passed: false,
            samples: vec![],
            cost: None,
        }
    }

    #[test]
    fn drill_cost_is_the_units_at_each_regions_prices() {
        use crate::cost::CapacityRecord;
        let record = |read: f64, write: f64, reported: bool| CapacityRecord {
            operation: "PutItem".into(),
            read_units: read,
            write_units: write,
            reported,
        };
        let table = lift_monitoring::cost::PriceTable::embedded();
        let east = &table.region("us-east-1").unwrap().dynamodb;
        let recorded = vec![
            ("us-east-1".to_owned(), vec![record(1_500_000.0, 0.0, true), record(0.0, 500_000.0, true)]),
            ("eu-west-1".to_owned(), vec![record(0.0, 1_000_000.0, true), record(0.0, 0.0, false)]),
            ("mars-north-1".to_owned(), vec![record(0.0, 7.0, true)]),
        ];
        let cost = DrillCost::price(&table, &recorded, 4_000);
        // By hand: 1.5 M reads and 0.5 M writes at us-east-1's prices per million, plus
        // 1 M writes at eu-west-1's; Mars has no prices and adds none.
        let west = &table.region("eu-west-1").unwrap().dynamodb;
        let dollars = 1.5 * east.read_request_units_per_million
            + 0.5 * east.write_request_units_per_million
            + west.write_request_units_per_million;
        assert!((cost.dollars - dollars).abs() < 1e-9, "{cost:?}");
        assert_eq!((cost.read_units, cost.write_units), (1_500_000.0, 1_500_007.0));
        assert_eq!((cost.requests, cost.unreported), (5, 1));
        assert_eq!(cost.by_region["mars-north-1"].2, None);
        assert!((cost.per_million_operations.unwrap() - dollars / 4_000.0 * 1e6).abs() < 1e-6);
        assert!(cost.line().contains("no prices for mars-north-1"), "{}", cost.line());
        assert_eq!(DrillCost::price(&table, &[], 0).per_million_operations, None);
    }

    #[test]
    fn junit_has_a_testcase_per_assertion_and_escapes() {
        let xml = sample_report().junit();
        assert_eq!(xml.matches("<testcase ").count(), 2);
        assert_eq!(xml.matches("<failure ").count(), 1);
        assert!(xml.contains("failures=\"1\""));
        assert!(xml.contains("1 &gt; 0 &amp; more"));
        assert!(xml.contains("a &lt;test&gt;"));
    }

    #[test]
    fn the_summary_names_verdicts() {
        let text = Summary(&sample_report()).to_string();
        assert!(text.starts_with("drill t: FAILED"), "{text}");
        assert!(text.contains("[FAIL] max_errors_in_window"), "{text}");
        assert!(text.contains("time to fail over 900 ms"), "{text}");
        assert!(text.contains("1 failover(s), 0 failback(s)"), "{text}");
    }
}
