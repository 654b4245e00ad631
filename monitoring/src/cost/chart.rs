//! The right-sizing chart: a standalone HTML page with an inline SVG of duration and cost
//! against memory size.

use std::fmt::Write as _;

use super::rightsize::Recommendation;

/// A standalone HTML page (no scripts, no external files): p50 and p90 real duration (left
/// axis) and cost per million invocations (right axis) against memory size, the three
/// recommendations, and `notes` (what was emulated and what measured) under the chart.
///
/// # Examples
///
/// ```
/// use lift_monitoring::cost::rightsize::{recommend, SizeSamples};
/// use lift_monitoring::cost::{rightsize_html, Arch, PriceTable};
///
/// let table = PriceTable::embedded();
/// let prices = table.region("us-east-1")?.lambda.arch(Arch::X86_64).clone();
/// let r = recommend(&[SizeSamples::new(128, vec![9.0], vec![9]), SizeSamples::new(256, vec![5.0], vec![5])], &prices, 0.5).unwrap();
/// let html = rightsize_html("fixture", &r, &["CPU share emulated with a CFS quota"]);
/// assert!(html.contains("<svg") && html.contains("256 MB") && html.contains("CFS quota"));
/// # Ok::<(), lift_monitoring::cost::PriceError>(())
/// ```
pub fn rightsize_html(function: &str, r: &Recommendation, notes: &[&str]) -> String {
    let (w, h, left, right, top, bottom) = (760.0, 360.0, 70.0, 90.0, 30.0, 50.0);
    let plot_w = w - left - right;
    let plot_h = h - top - bottom;
    let n = r.sizes.len().max(1);
    let x = |i: usize| left + if n == 1 { plot_w / 2.0 } else { plot_w * i as f64 / (n - 1) as f64 };
    let max_ms = r.sizes.iter().map(|s| s.duration_p90_ms).fold(0.0, f64::max).max(1e-9) * 1.1;
    let max_cost = r.sizes.iter().map(|s| s.cost_per_invocation * 1e6).fold(0.0, f64::max).max(1e-12) * 1.1;
    let y_ms = |v: f64| top + plot_h * (1.0 - v / max_ms);
    let y_cost = |v: f64| top + plot_h * (1.0 - v * 1e6 / max_cost);
    let line = |f: &dyn Fn(usize) -> (f64, f64)| {
        (0..r.sizes.len()).map(f).map(|(a, b)| format!("{a:.1},{b:.1}")).collect::<Vec<_>>().join(" ")
    };
    let mut svg = String::new();
    let _ = write!(
        svg,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">
<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#999"/>
"##
    );
    for k in 0..=4 {
        let f = k as f64 / 4.0;
        let y = top + plot_h * (1.0 - f);
        let _ = writeln!(
            svg,
            r##"<line x1="{left}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#eee"/><text x="{}" y="{:.1}" text-anchor="end" fill="#1f77b4">{:.1}</text><text x="{}" y="{:.1}" fill="#d62728">${:.4}</text>"##,
            left + plot_w,
            left - 6.0,
            y + 4.0,
            max_ms * f,
            left + plot_w + 6.0,
            y + 4.0,
            max_cost * f
        );
    }
    for (i, s) in r.sizes.iter().enumerate() {
        let _ = writeln!(
            svg,
            r##"<text x="{:.1}" y="{}" text-anchor="middle">{} MB</text>"##,
            x(i),
            top + plot_h + 18.0,
            s.memory_mb
        );
    }
    let p50 = line(&|i| (x(i), y_ms(r.sizes[i].duration_p50_ms)));
    let p90 = line(&|i| (x(i), y_ms(r.sizes[i].duration_p90_ms)));
    let cost = line(&|i| (x(i), y_cost(r.sizes[i].cost_per_invocation)));
    let _ =
        writeln!(svg, r##"<polyline points="{p90}" fill="none" stroke="#1f77b4" stroke-dasharray="4 3"/>"##);
    let _ = writeln!(svg, r##"<polyline points="{p50}" fill="none" stroke="#1f77b4" stroke-width="2"/>"##);
    let _ = writeln!(svg, r##"<polyline points="{cost}" fill="none" stroke="#d62728" stroke-width="2"/>"##);
    for (i, s) in r.sizes.iter().enumerate() {
        let _ = writeln!(
            svg,
            r##"<circle cx="{:.1}" cy="{:.1}" r="3" fill="#1f77b4"/><circle cx="{:.1}" cy="{:.1}" r="3" fill="#d62728"/>"##,
            x(i),
            y_ms(s.duration_p50_ms),
            x(i),
            y_cost(s.cost_per_invocation)
        );
    }
    let _ = writeln!(
        svg,
        r##"<text x="{left}" y="16" fill="#1f77b4">duration ms (p50 solid, p90 dashed)</text><text x="{}" y="16" text-anchor="end" fill="#d62728">cost per million invocations</text>
<text x="{}" y="{}" text-anchor="middle">memory</text></svg>"##,
        left + plot_w,
        left + plot_w / 2.0,
        h - 8.0
    );
    let mut rows = String::new();
    for s in &r.sizes {
        let _ = writeln!(
            rows,
            "<tr><td>{} MB</td><td>{}</td><td>{:.2}</td><td>{:.2}</td><td>{:.2}</td><td>{:.0}</td><td>{:.0}</td><td>{:.0}</td><td>${:.4}</td></tr>",
            s.memory_mb,
            s.invocations,
            s.duration_p50_ms,
            s.duration_p90_ms,
            s.duration_p99_ms,
            s.billed_p50_ms,
            s.billed_p90_ms,
            s.billed_p99_ms,
            s.cost_per_invocation * 1e6
        );
    }
    let notes: String = notes.iter().map(|n| format!("<li>{}</li>", escape(n))).collect();
    format!(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Right-sizing: {name}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}</style></head>
<body><h1>Right-sizing: {name}</h1>
<p>Cheapest: <b>{cheapest} MB</b> &middot; fastest: <b>{fastest} MB</b> &middot; balanced (weight {weight} on cost): <b>{balanced} MB</b></p>
{svg}
<table><tr><th>memory</th><th>n</th><th>p50 ms</th><th>p90 ms</th><th>p99 ms</th><th>billed p50</th><th>billed p90</th><th>billed p99</th><th>per million</th></tr>
{rows}</table>
<ul>{notes}</ul>
</body></html>
"#,
        name = escape(function),
        cheapest = r.cheapest,
        fastest = r.fastest,
        balanced = r.balanced,
        weight = r.balance_weight,
    )
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}
