//! The HTML report: one self-contained page, the timeline drawn as inline SVG (no scripts).

use std::fmt::Write as _;

use super::report::{escape, fmt_opt, DrillReport, Summary};

const WIDTH: f64 = 960.0;
const PLOT_LEFT: f64 = 60.0;
const PLOT_RIGHT: f64 = 20.0;
const PANEL: f64 = 150.0;
const GAP: f64 = 70.0;
const TOP: f64 = 64.0;
/// Colours for regions, in declaration order.
const REGION_COLOURS: [&str; 6] = ["#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#76b7b2", "#edc948"];

/// Renders the report as one HTML page.
pub(crate) fn render(report: &DrillReport) -> String {
    let mut html = String::new();
    let verdict = if report.passed { "PASSED" } else { "FAILED" };
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>Drill {name}: {verdict}</title>\n<style>\n\
         body{{font-family:system-ui,sans-serif;margin:2em;color:#222}}\n\
         table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}\n\
         .pass{{color:#2a7d2a;font-weight:bold}}.fail{{color:#c0392b;font-weight:bold}}\n\
         pre{{background:#f6f6f6;padding:1em;overflow:auto}}\n</style>\n</head>\n<body>\n\
         <h1>Drill <code>{name}</code>: <span class=\"{class}\">{verdict}</span></h1>\n<p>{description}</p>\n",
        name = escape(&report.scenario),
        class = if report.passed { "pass" } else { "fail" },
        description = escape(&report.description),
    );
    html.push_str(&chart(report));
    html.push_str(
        "<h2>How detection is measured</h2>\n<p>Two figures, both in the Faults table. \
         <b>Detect after injection</b> is the drill's own: from the moment the fault took effect \
         to lift's monitor declaring the region down. It includes the wait for the next probe round \
         (up to one probe interval) and the failing rounds the threshold asks for; the scenario's \
         <code>max_detect_secs</code> bounds it. <b>Detect after the first failing probe</b> is lift's \
         own: from the start of the first failing probe round to the declaration, what the \
         orchestrator records; it leaves out the time before a probe saw the fault, and can exceed \
         the first figure by up to one probe timeout when a round already in flight at the injection \
         fails. <b>Fail over</b> is from the injection to the first successful operation in the \
         region traffic moved to. A <b>failback</b> (traffic back to the healed primary) is never a \
         fault's failover: it has its own marker and row.</p>\n",
    );
    html.push_str("<h2>Assertions</h2>\n<table>\n<tr><th>assertion</th><th>limit</th><th>actual</th><th>verdict</th><th>why</th></tr>\n");
    for a in &report.assertions {
        let _ = writeln!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td>{}</td></tr>",
            escape(&a.name),
            escape(&a.limit),
            escape(&a.actual),
            if a.passed { "pass" } else { "fail" },
            if a.passed { "pass" } else { "FAIL" },
            escape(a.message.as_deref().unwrap_or(""))
        );
    }
    html.push_str("</table>\n<h2>Measurements</h2>\n<table>\n");
    for (name, value) in [
        ("time to detect", format!("{} ms", fmt_opt(report.time_to_detect_ms))),
        ("time to fail over", format!("{} ms", fmt_opt(report.time_to_failover_ms))),
        ("failovers", report.failovers.to_string()),
        ("failbacks", report.failbacks.to_string()),
        ("errors in fault windows", report.errors_in_window.to_string()),
        ("acknowledged writes", report.writes.acknowledged.to_string()),
        (
            "acknowledged writes lost",
            format!("{} (read back in {})", report.writes.lost, report.writes.checked_in),
        ),
        (
            "missing in the new primary at failover",
            if report.writes.missing_at_failover.is_empty() && report.writes.failovers_unmeasured == 0 {
                "no failover".to_owned()
            } else {
                format!(
                    "{:?}{}",
                    report.writes.missing_at_failover,
                    if report.writes.failovers_unmeasured > 0 {
                        format!(", {} failover(s) not measured", report.writes.failovers_unmeasured)
                    } else {
                        String::new()
                    }
                )
            },
        ),
        ("degraded writes (one region alone)", report.writes.degraded.to_string()),
        (
            "write kinds checked",
            if report.writes.by_kind.is_empty() { "none".to_owned() } else { report.writes.kinds_text() },
        ),
        (
            "replication lag",
            format!(
                "max {} ms, p99 {} ms ({})",
                fmt_opt(report.replication_lag.max_ms),
                fmt_opt(report.replication_lag.p99_ms),
                report.replication_lag.source
            ),
        ),
        (
            "operations",
            format!(
                "{} ok / {} errors / {} shed, success {:.2}%",
                report.totals.ok,
                report.totals.errors,
                report.totals.shed,
                report.totals.success_rate * 100.0
            ),
        ),
        ("cost", report.cost.as_ref().map_or_else(|| "-".to_owned(), super::report::DrillCost::line)),
    ] {
        let _ = writeln!(html, "<tr><th>{name}</th><td>{}</td></tr>", escape(&value));
    }
    html.push_str("</table>\n<h2>Faults</h2>\n<table>\n<tr><th>fault</th><th>action</th><th>injected</th><th>healed</th><th>detect after injection</th><th>detect after the first failing probe</th><th>fail over</th><th>recover after heal</th><th>failback</th><th>errors / ops that called its region</th></tr>\n");
    let ms = |v: Option<f64>| format!("{} ms", fmt_opt(v));
    let secs = |v: Option<f64>| v.map(|t| format!("{:.1} s", t / 1000.0)).unwrap_or_else(|| "-".into());
    for f in &report.faults {
        let _ = writeln!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{:.1} s</td><td>{}</td><td>{}</td><td>{}</td><td>{}{}</td><td>{}</td><td>{}</td><td>{} / {}</td></tr>",
            escape(&f.label()),
            escape(&f.action),
            f.injected_at_ms / 1000.0,
            secs(f.healed_at_ms),
            ms(f.time_to_detect_ms),
            ms(f.time_to_detect_from_probe_ms),
            ms(f.time_to_failover_ms),
            f.failed_over_to.as_ref().map(|t| format!(" to {}", escape(t))).unwrap_or_default(),
            ms(f.time_to_recover_ms),
            secs(f.failed_back_at_ms),
            f.errors_in_window,
            f.ops_in_window
        );
    }
    html.push_str("</table>\n<h2>Switches</h2>\n<table>\n<tr><th>t</th><th>kind</th><th>from</th><th>to</th><th>lift: declared after</th><th>lift: moved after</th><th>answering</th></tr>\n");
    for s in &report.switches {
        let _ = writeln!(
            html,
            "<tr><td>{:.2} s</td><td>{}</td><td>{}</td><td>{}</td><td>{} ms</td><td>{} ms</td><td>{}</td></tr>",
            s.at_ms / 1000.0,
            escape(&s.kind),
            escape(&s.from),
            escape(&s.to),
            fmt_opt(Some(s.lift_detect_ms)),
            fmt_opt(Some(s.lift_switch_ms)),
            escape(s.fault.as_deref().unwrap_or("-"))
        );
    }
    html.push_str("</table>\n<h2>Events</h2>\n<table>\n<tr><th>t</th><th>region</th><th>event</th><th>detail</th></tr>\n");
    for e in &report.events {
        let _ = writeln!(
            html,
            "<tr><td>{:.2} s</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            e.t_ms / 1000.0,
            escape(&e.region),
            escape(&e.kind),
            escape(&e.detail)
        );
    }
    let _ = write!(
        html,
        "</table>\n<h2>Summary</h2>\n<pre>{}</pre>\n</body>\n</html>\n",
        escape(&Summary(report).to_string())
    );
    html
}

/// The timeline: success rate, latency, and the serving region, with fault and failover markers.
fn chart(report: &DrillReport) -> String {
    let span_ms =
        report.samples.last().map(|s| s.t_ms).unwrap_or(0.0).max(report.duration_secs * 1000.0).max(1.0);
    let plot_w = WIDTH - PLOT_LEFT - PLOT_RIGHT;
    let x = |t_ms: f64| PLOT_LEFT + (t_ms / span_ms).clamp(0.0, 1.0) * plot_w;
    let markers = markers(report);
    let labels = layout_labels(&markers, x, WIDTH - PLOT_RIGHT);
    let rows = labels.iter().map(|l| l.row + 1).max().unwrap_or(0);
    let rate_top = TOP + rows as f64 * LABEL_ROW;
    let labels: Vec<Label> =
        labels.into_iter().map(|l| Label { y: rate_top - 8.0 - l.row as f64 * LABEL_ROW, ..l }).collect();
    let lat_top = rate_top + PANEL + GAP;
    let band_top = lat_top + PANEL + GAP;
    let height = band_top + 60.0;
    let (latency_step, max_latency) =
        nice_ticks(report.samples.iter().filter_map(|s| s.p99_ms).fold(10.0f64, f64::max), 5);
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" viewBox=\"0 0 {WIDTH} {height}\" font-family=\"sans-serif\" font-size=\"11\" role=\"img\" aria-label=\"drill timeline\">"
    );
    let _ = writeln!(svg, "<rect x=\"0\" y=\"0\" width=\"{WIDTH}\" height=\"{height}\" fill=\"#fff\"/>");
    // Fault windows as shaded spans behind everything.
    for f in &report.faults {
        let end = f.healed_at_ms.unwrap_or(span_ms);
        let _ = writeln!(
            svg,
            "<rect x=\"{:.1}\" y=\"{rate_top}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#e15759\" fill-opacity=\"0.08\"><title>{} on {}</title></rect>",
            x(f.injected_at_ms),
            (x(end) - x(f.injected_at_ms)).max(1.0),
            band_top + 20.0 - rate_top,
            escape(&f.kind),
            escape(&f.region)
        );
    }
    panel(&mut svg, rate_top, "success rate (%)", 20.0, 100.0, plot_w);
    panel(&mut svg, lat_top, "latency (ms): p50, p99", latency_step, max_latency, plot_w);
    let rate_points: Vec<String> = report
        .samples
        .iter()
        .map(|s| format!("{:.1},{:.1}", x(s.t_ms), rate_top + PANEL - s.success_rate * PANEL))
        .collect();
    let _ = writeln!(
        svg,
        "<polyline fill=\"none\" stroke=\"#2a7d2a\" stroke-width=\"1.5\" points=\"{}\"/>",
        rate_points.join(" ")
    );
    for (pick, colour) in [(0usize, "#4e79a7"), (1, "#e15759")] {
        // A window where nothing finished has no latency: the line breaks there.
        let mut path = String::new();
        let mut pen_down = false;
        for s in &report.samples {
            match if pick == 0 { s.p50_ms } else { s.p99_ms } {
                Some(v) => {
                    let y = lat_top + PANEL - (v / max_latency).min(1.0) * PANEL;
                    let _ = write!(path, "{}{:.1},{:.1} ", if pen_down { "L" } else { "M" }, x(s.t_ms), y);
                    pen_down = true;
                }
                None => pen_down = false,
            }
        }
        let _ = writeln!(
            svg,
            "<path fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.2\" d=\"{}\"/>",
            path.trim_end()
        );
    }
    // Which region served the traffic, as a coloured band.
    let _ = writeln!(svg, "<text x=\"{PLOT_LEFT}\" y=\"{:.1}\">serving region</text>", band_top - 6.0);
    let colour_of = |region: &str| {
        let i = report.regions.iter().position(|r| r == region).unwrap_or(REGION_COLOURS.len() - 1);
        REGION_COLOURS[i % REGION_COLOURS.len()]
    };
    let step = report.samples.windows(2).map(|w| w[1].t_ms - w[0].t_ms).next().unwrap_or(100.0);
    for s in &report.samples {
        let top = s
            .ok_by_region
            .iter()
            .max_by_key(|(_, n)| **n)
            .map(|(r, _)| r.as_str())
            .unwrap_or(&s.active_region);
        let _ = writeln!(
            svg,
            "<rect x=\"{:.1}\" y=\"{band_top}\" width=\"{:.2}\" height=\"14\" fill=\"{}\"/>",
            x(s.t_ms - step),
            (x(s.t_ms) - x(s.t_ms - step)).max(0.5),
            colour_of(top)
        );
    }
    let mut legend_x = PLOT_LEFT;
    for region in &report.regions {
        let _ = writeln!(
            svg,
            "<rect x=\"{legend_x:.1}\" y=\"{:.1}\" width=\"10\" height=\"10\" fill=\"{}\"/><text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            band_top + 22.0,
            colour_of(region),
            legend_x + 14.0,
            band_top + 31.0,
            escape(region)
        );
        legend_x += 110.0;
    }
    // Markers: fault, heal, detection, failover, failback; labels laid out above the chart.
    let bottom = band_top + 14.0;
    for (t, colour, dash, label) in &markers {
        let _ = writeln!(
            svg,
            "<line x1=\"{0:.1}\" y1=\"{rate_top}\" x2=\"{0:.1}\" y2=\"{bottom}\" stroke=\"{colour}\" stroke-width=\"1.5\" stroke-dasharray=\"{dash}\"><title>{1}</title></line>",
            x(*t),
            escape(label),
        );
    }
    for l in &labels {
        let _ = writeln!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"{}\" fill=\"{}\">{}</text>",
            l.x,
            l.y,
            if l.anchor_end { "end" } else { "start" },
            l.colour,
            escape(&l.text)
        );
    }
    // Time axis: round steps (1, 2 or 5 times a power of ten seconds).
    let (step, _) = nice_ticks(span_ms / 1000.0, 10);
    let mut i = 0.0;
    while i * step * 1000.0 <= span_ms + 1e-6 {
        let t = i * step * 1000.0;
        let _ = writeln!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}s</text>",
            x(t),
            lat_top + PANEL + 14.0,
            round_label(i * step)
        );
        i += 1.0;
    }
    svg.push_str("</svg>\n");
    format!("<h2>Timeline</h2>\n<figure>\n{svg}<figcaption>Success rate and latency every 100 ms; red: fault injected, green: healed, orange: region declared down, blue: first success in the region traffic failed over to, purple: failback to the healed primary.</figcaption>\n</figure>\n")
}

/// The height of a row of marker labels.
const LABEL_ROW: f64 = 13.0;
/// The width of a character of the 11 px sans-serif labels, rounded up.
const CHAR_W: f64 = 6.5;

/// A marker: when, colour, dash pattern, label.
type Marker = (f64, &'static str, &'static str, String);

/// Every marker of the chart, in time order.
fn markers(report: &DrillReport) -> Vec<Marker> {
    let mut out: Vec<Marker> = Vec::new();
    for f in &report.faults {
        out.push((f.injected_at_ms, "#c0392b", "none", format!("{} {}", f.kind, f.region)));
        if let Some(h) = f.healed_at_ms {
            out.push((h, "#2a7d2a", "none", format!("healed {}", f.region)));
        }
        if let Some(d) = f.detected_at_ms {
            out.push((d, "#e67e22", "4 3", format!("{} down", f.region)));
        }
        if let Some(t) = f.failed_over_at_ms {
            out.push((
                t,
                "#2c3e91",
                "2 2",
                format!("failover to {}", f.failed_over_to.as_deref().unwrap_or("?")),
            ));
        }
    }
    for s in report.switches.iter().filter(|s| s.kind == "failback") {
        out.push((s.at_ms, "#8e44ad", "6 2", format!("failback to {}", s.to)));
    }
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    out
}

/// A marker's label, placed.
#[derive(Debug, Clone)]
struct Label {
    x: f64,
    y: f64,
    row: usize,
    anchor_end: bool,
    colour: &'static str,
    text: String,
}

impl Label {
    /// The horizontal extent it covers.
    fn span(&self) -> (f64, f64) {
        let w = self.text.chars().count() as f64 * CHAR_W;
        if self.anchor_end {
            (self.x - w, self.x)
        } else {
            (self.x, self.x + w)
        }
    }
}

/// Places each label on the lowest row where it overlaps no other label (a label that
/// would run past `right` ends at its marker instead), so close markers stay readable.
fn layout_labels(markers: &[Marker], x: impl Fn(f64) -> f64, right: f64) -> Vec<Label> {
    let mut placed: Vec<Label> = Vec::new();
    for (t, colour, _, text) in markers {
        let mx = x(*t);
        let w = text.chars().count() as f64 * CHAR_W;
        let anchor_end = mx + 3.0 + w > right;
        let mut label = Label {
            x: if anchor_end { mx - 3.0 } else { mx + 3.0 },
            y: 0.0,
            row: 0,
            anchor_end,
            colour,
            text: text.clone(),
        };
        let (from, to) = label.span();
        while placed.iter().any(|p| {
            let (a, b) = p.span();
            p.row == label.row && from < b + 4.0 && a < to + 4.0
        }) {
            label.row += 1;
        }
        placed.push(label);
    }
    placed
}

/// A round step (1, 2 or 5 times a power of ten) that covers `max` in at most `ticks`
/// steps, and the top of the axis (a multiple of it, at least `max`).
fn nice_ticks(max: f64, ticks: u32) -> (f64, f64) {
    let max = max.max(f64::MIN_POSITIVE);
    let step = nice_ceiling(max / f64::from(ticks));
    (step, (max / step).ceil() * step)
}

/// 1, 2 or 5 times a power of ten, at least `v`.
fn nice_ceiling(v: f64) -> f64 {
    let power = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|c| *c >= v * (1.0 - 1e-9))
        .unwrap_or(10.0 * power)
}

/// A tick value without float noise (`0.30000000000000004` is `0.3`).
fn round_label(v: f64) -> String {
    let text = format!("{v:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

fn panel(svg: &mut String, top: f64, title: &str, step: f64, max: f64, plot_w: f64) {
    let _ = writeln!(
        svg,
        "<rect x=\"{PLOT_LEFT}\" y=\"{top}\" width=\"{plot_w}\" height=\"{PANEL}\" fill=\"none\" stroke=\"#999\"/>\n<text x=\"{PLOT_LEFT}\" y=\"{:.1}\" font-weight=\"bold\">{}</text>",
        top - 6.0,
        escape(title)
    );
    let mut i = 0.0;
    while i * step <= max * (1.0 + 1e-9) {
        let y = top + PANEL - PANEL * (i * step) / max;
        let _ = writeln!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text><line x1=\"{PLOT_LEFT}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#eee\"/>",
            PLOT_LEFT - 4.0,
            y + 4.0,
            round_label(i * step),
            PLOT_LEFT + plot_w
        );
        i += 1.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drill::metrics::Sample;
    use crate::drill::report::tests::sample_report;

    #[test]
    fn the_page_has_an_svg_timeline_and_escapes() {
        let mut report = sample_report();
        report.samples = (1..=20)
            .map(|i| Sample {
                t_ms: f64::from(i) * 100.0,
                completed: 5,
                ok: 5,
                errors: 0,
                success_rate: 1.0,
                p50_ms: Some(3.0),
                p99_ms: Some(9.0),
                in_flight: 0,
                active_region: "a".into(),
                ok_by_region: [("a".to_owned(), 5)].into_iter().collect(),
                replication_lag_ms: None,
            })
            .collect();
        let html = render(&report);
        assert!(html.contains("<svg"), "no svg");
        assert!(html.contains("<polyline") && html.contains("<path"), "no lines");
        assert_eq!(nice_ceiling(1007.0), 2000.0);
        assert_eq!(nice_ceiling(40.0), 50.0);
        assert_eq!(nice_ceiling(10.0), 10.0);
        assert!(html.contains("a &lt;test&gt;"));
        assert!(!html.contains("<script"));
    }

    #[test]
    fn close_markers_get_labels_that_do_not_overlap() {
        let markers: Vec<Marker> = vec![
            (5_000.0, "#c0392b", "none", "region_outage us-east-1".into()),
            (5_100.0, "#c0392b", "none", "throttling eu-west-1".into()),
            (6_400.0, "#e67e22", "4 3", "us-east-1 down".into()),
            (6_500.0, "#2c3e91", "2 2", "failover to eu-west-1".into()),
            (6_450.0, "#8e44ad", "6 2", "failback to us-east-1".into()),
            (29_900.0, "#2a7d2a", "none", "healed us-east-1".into()),
        ];
        let x = |t: f64| PLOT_LEFT + t / 30_000.0 * (WIDTH - PLOT_LEFT - PLOT_RIGHT);
        let labels = layout_labels(&markers, x, WIDTH - PLOT_RIGHT);
        assert_eq!(labels.len(), markers.len());
        for (i, a) in labels.iter().enumerate() {
            let (from, to) = a.span();
            assert!(from >= 0.0 && to <= WIDTH - PLOT_RIGHT + 0.5, "{a:?} leaves the chart");
            for b in &labels[i + 1..] {
                let (c, d) = b.span();
                assert!(a.row != b.row || to <= c || d <= from, "{a:?} overlaps {b:?}");
            }
        }
        assert!(labels.iter().any(|l| l.row > 0), "close markers stack");
        assert!(labels.last().unwrap().anchor_end, "a label at the right edge ends at its marker");
        // The rendered chart makes room for every row, and draws the failback marker.
        let mut report = sample_report();
        report.switches.push(crate::drill::SwitchReport {
            kind: "failback".into(),
            from: "b".into(),
            to: "a".into(),
            at_ms: 900.0,
            lift_detect_ms: 1.0,
            lift_switch_ms: 2.0,
            fault: None,
        });
        assert!(render(&report).contains("failback to a"));
    }

    #[test]
    fn axis_ticks_are_round() {
        let round = |v: f64| {
            let power = 10f64.powf(v.log10().floor());
            [1.0, 2.0, 5.0].iter().any(|m| ((v / power) - m).abs() < 1e-9)
        };
        for (max, ticks) in [(45.0, 10), (57.3, 10), (1_007.0, 5), (12.0, 5), (0.7, 10), (123_456.0, 5)] {
            let (step, top) = nice_ticks(max, ticks);
            assert!(round(step), "step {step} for {max}");
            assert!(top >= max && (top / step - (top / step).round()).abs() < 1e-9, "top {top} for {max}");
            assert!((top / step).round() as u32 <= ticks, "{max}: {top}/{step} is more than {ticks} ticks");
        }
        assert_eq!(nice_ticks(45.0, 10), (5.0, 45.0));
        assert_eq!(round_label(0.1 + 0.2), "0.3");
        let mut report = sample_report();
        report.duration_secs = 45.0;
        let html = render(&report);
        assert!(html.contains(">40s<") && html.contains(">45s<"), "a 45 s span in 5 s steps");
        assert!(!html.contains(">4s<") && !html.contains(">9s<"), "no tick at 4.5 s or 9 s");
    }
}
