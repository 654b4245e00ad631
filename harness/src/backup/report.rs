//! The backup drill's HTML and JUnit reports, beside its JSON.

use std::fmt::Write as _;

use super::BackupDrillReport;
use crate::drill::{escape, DrillCost};

/// One self-contained page: the verdict, the recovery timeline as inline SVG, the figures
/// and the assertions.
pub(crate) fn html(r: &BackupDrillReport) -> String {
    let verdict = if r.passed { "PASSED" } else { "FAILED" };
    let mut html = String::new();
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>Backup drill {name}: {verdict}</title>\n<style>\n\
         body{{font-family:system-ui,sans-serif;margin:2em;color:#222}}\n\
         table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}\n\
         .pass{{color:#2a7d2a;font-weight:bold}}.fail{{color:#c0392b;font-weight:bold}}\n</style>\n</head>\n<body>\n\
         <h1>Backup drill <code>{name}</code>: <span class=\"{class}\">{verdict}</span></h1>\n\
         <p>{description}</p>\n<p>Workload <code>{workload}</code>; target {target}.</p>\n",
        name = escape(&r.scenario),
        class = if r.passed { "pass" } else { "fail" },
        description = escape(&r.description),
        workload = escape(&r.workload),
        target = escape(&r.target),
    );
    html.push_str(&timeline(r));
    html.push_str("<h2>Assertions</h2>\n<table>\n<tr><th>assertion</th><th>bound</th><th>measured</th><th>verdict</th></tr>\n");
    for (name, bound, measured, held) in &r.assertions {
        let _ = writeln!(
            html,
            "<tr><td>{}</td><td>{bound}</td><td>{measured:.2}</td><td class=\"{}\">{}</td></tr>",
            escape(name),
            if *held { "pass" } else { "fail" },
            if *held { "ok" } else { "FAIL" }
        );
    }
    html.push_str("</table>\n<h2>Figures</h2>\n<table>\n");
    for (name, value) in figures(r) {
        let _ = writeln!(html, "<tr><th>{}</th><td>{}</td></tr>", escape(name), escape(&value));
    }
    html.push_str("</table>\n");
    if !r.missing_examples.is_empty() {
        html.push_str("<h2>Missing after the restore</h2>\n<ul>\n");
        for example in &r.missing_examples {
            let _ = writeln!(html, "<li><code>{}</code></li>", escape(example));
        }
        html.push_str("</ul>\n");
    }
    html.push_str("</body>\n</html>\n");
    html
}

/// The recovery as bars on one axis: the backup, then from the drop the restore inside
/// the RTO.
fn timeline(r: &BackupDrillReport) -> String {
    const WIDTH: f64 = 900.0;
    let total = (r.backup_secs + r.rto_secs).max(0.001);
    let x = |secs: f64| 20.0 + secs / total * (WIDTH - 40.0);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"110\" role=\"img\" \
         aria-label=\"backup and recovery timeline\">\n"
    );
    let bar = |svg: &mut String, y: f64, from: f64, to: f64, colour: &str, label: String| {
        let _ = writeln!(
            svg,
            "<rect x=\"{:.1}\" y=\"{y}\" width=\"{:.1}\" height=\"22\" fill=\"{colour}\"/>\
             <text x=\"{:.1}\" y=\"{}\" font-size=\"12\">{}</text>",
            x(from),
            (x(to) - x(from)).max(1.0),
            x(from) + 4.0,
            y + 15.0,
            escape(&label)
        );
    };
    bar(&mut svg, 10.0, 0.0, r.backup_secs, "#4e79a7", format!("backup {:.2} s", r.backup_secs));
    let restore_from = r.backup_secs + (r.rto_secs - r.restore_secs).max(0.0);
    bar(
        &mut svg,
        40.0,
        r.backup_secs,
        r.backup_secs + r.rto_secs,
        "#f28e2b",
        format!("RTO {:.2} s", r.rto_secs),
    );
    bar(
        &mut svg,
        70.0,
        restore_from,
        restore_from + r.restore_secs,
        "#59a14f",
        format!("restore {:.2} s at {:.0} items/s", r.restore_secs, r.restore_items_per_sec),
    );
    svg.push_str("</svg>\n<p>Not to scale between the backup and the drop: the load ran in between.</p>\n");
    svg
}

fn figures(r: &BackupDrillReport) -> Vec<(&'static str, String)> {
    vec![
        ("items in the backup", r.items_in_backup.to_string()),
        ("backup", format!("{:.2} s", r.backup_secs)),
        ("acknowledged items", r.acknowledged.to_string()),
        ("last written before the last backup", r.acknowledged_before_backup.to_string()),
        ("last written after it (stream archive)", r.acknowledged_after_backup.to_string()),
        ("unclear writes (not counted as acknowledged)", r.unclear.to_string()),
        ("unclear writes in neither state", r.unclear_in_neither_state.to_string()),
        ("RPO: missing from before the last backup", r.missing_before_backup.to_string()),
        ("RPO: missing from the stream archive", r.missing_after_backup.to_string()),
        (
            "checked / lost by operation",
            r.by_op.iter().map(|(op, (c, l))| format!("{op} {l}/{c}")).collect::<Vec<_>>().join(", "),
        ),
        ("failed before the drop", format!("{:?}", r.failed_before_drop)),
        ("failed after the drop", r.failed_after_drop.to_string()),
        ("shed", r.shed.to_string()),
        ("archived stream records", r.archived_records.to_string()),
        ("archive errors (retried)", r.archive_errors.to_string()),
        ("changes replayed", r.changes_replayed.to_string()),
        ("changes within a poll of the drop", r.changes_near_moment.to_string()),
        ("not restored", r.not_restored.to_string()),
        ("RTO", format!("{:.2} s", r.rto_secs)),
        ("restore", format!("{:.2} s", r.restore_secs)),
        ("restore rate", format!("{:.0} items/s", r.restore_items_per_sec)),
        ("cost", r.cost.as_ref().map_or_else(|| "-".to_owned(), DrillCost::line)),
    ]
}

/// One test suite, one test case per assertion (a failure carries bound and measure), the
/// figures as properties and the summary as system-out.
pub(crate) fn junit(r: &BackupDrillReport) -> String {
    let failures = r.assertions.iter().filter(|a| !a.3).count();
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        xml,
        "<testsuites name=\"lift backup drills\" tests=\"{}\" failures=\"{failures}\">",
        r.assertions.len()
    );
    let _ = writeln!(
        xml,
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" time=\"{:.3}\">",
        escape(&r.scenario),
        r.assertions.len(),
        r.backup_secs + r.rto_secs
    );
    xml.push_str("    <properties>\n");
    for (name, value) in figures(r) {
        let _ = writeln!(xml, "      <property name=\"{}\" value=\"{}\"/>", escape(name), escape(&value));
    }
    xml.push_str("    </properties>\n");
    for (name, bound, measured, held) in &r.assertions {
        let _ = write!(xml, "    <testcase classname=\"{}\" name=\"{}\"", escape(&r.scenario), escape(name));
        if *held {
            xml.push_str("/>\n");
        } else {
            let _ = writeln!(
                xml,
                ">\n      <failure message=\"{} = {measured:.2}, bound {bound}\"/>\n    </testcase>",
                escape(name)
            );
        }
    }
    let _ = writeln!(xml, "    <system-out>{}</system-out>", escape(&r.to_string()));
    xml.push_str("  </testsuite>\n</testsuites>\n");
    xml
}
