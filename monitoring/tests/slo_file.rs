//! SLO files: the example parses; bad and contradictory files name the key at fault.

use lift_monitoring::slo::{Severity, SloError, SloFile, SloKind};

const SERVICE: &str = "[service]\nname = \"payments\"\nnamespace = \"Payments\"\n";

fn invalid(body: &str) -> SloError {
    SloFile::parse(&format!("{SERVICE}{body}")).expect_err("the file was accepted")
}

fn key_of(body: &str) -> String {
    let err = invalid(body);
    let key = err.key().unwrap_or_else(|| panic!("no key in {err}")).to_owned();
    assert!(err.to_string().contains(&key), "the message names the key: {err}");
    key
}

const AVAILABILITY: &str = "[[slo]]\nname = \"availability\"\nkind = \"availability\"\nobjective = 99.9\n";

#[test]
fn the_payments_example_parses_with_the_workbook_defaults() {
    let file = SloFile::load(concat!(env!("CARGO_MANIFEST_DIR"), "/slo/payments.toml")).unwrap();
    assert_eq!(file.service().namespace(), "Payments");
    let names: Vec<&str> = file.slos().iter().map(|s| s.name()).collect();
    assert_eq!(names, ["availability", "create-availability", "create-latency", "acme-create-availability"]);
    let latency = &file.slos()[2];
    assert_eq!(
        (latency.kind(), latency.threshold_ms(), latency.objective()),
        (SloKind::Latency, Some(300.0), 99.0)
    );
    let rules: Vec<(&str, Severity, f64, u64, u64)> = file
        .alerts()
        .iter()
        .map(|r| {
            (r.name(), r.severity(), r.burn_rate(), r.long_window().seconds(), r.short_window().seconds())
        })
        .collect();
    assert_eq!(
        rules,
        [
            ("page-fast", Severity::Page, 14.4, 3_600, 300),
            ("page-slow", Severity::Page, 6.0, 21_600, 1_800),
            ("ticket", Severity::Ticket, 1.0, 259_200, 21_600),
        ]
    );
    assert_eq!(
        file.dimension_sets(),
        [vec![], vec!["Route".to_owned()], vec!["Route".to_owned(), "Tenant".to_owned()]]
    );
    assert_eq!(file.slos()[0].window().seconds(), 30 * 86_400);
}

#[test]
fn alert_rules_in_the_file_replace_the_defaults() {
    let file = SloFile::parse(&format!(
        "{SERVICE}{AVAILABILITY}[[alert]]\nname = \"page\"\nseverity = \"page\"\nburn_rate = 10\nlong_window = \"2h\"\nshort_window = \"10m\"\n"
    ))
    .unwrap();
    assert_eq!(file.alerts().len(), 1);
    assert!((file.alerts()[0].threshold(&file.slos()[0]) - 0.01).abs() < 1e-12);
}

#[test]
fn impossible_objectives_and_thresholds_name_their_key() {
    for objective in ["100", "0", "-1", "100.5", "nan"] {
        let body = AVAILABILITY.replace("99.9", objective);
        assert_eq!(key_of(&body), "slo[0].objective", "objective {objective}");
    }
    let latency = "[[slo]]\nname = \"l\"\nkind = \"latency\"\nobjective = 99.0\n";
    assert_eq!(key_of(latency), "slo[0].threshold_ms");
    assert_eq!(key_of(&format!("{latency}threshold_ms = 0\n")), "slo[0].threshold_ms");
    assert_eq!(key_of(&format!("{AVAILABILITY}threshold_ms = 300\n")), "slo[0].threshold_ms");
    assert_eq!(key_of(&format!("{AVAILABILITY}route = \"payments\"\n")), "slo[0].route");
    assert_eq!(key_of(&format!("{AVAILABILITY}tenant = \" \"\n")), "slo[0].tenant");
    // Route and tenant go into the alert's description as a `[route=... tenant=...]` label block.
    assert_eq!(key_of(&format!("{AVAILABILITY}tenant = \"acme corp\"\n")), "slo[0].tenant");
    assert_eq!(key_of(&format!("{AVAILABILITY}route = \"/pay]ments\"\n")), "slo[0].route");
    assert_eq!(key_of(&format!("{AVAILABILITY}tenant = \"{}\"\n", "t".repeat(129))), "slo[0].tenant");
    assert_eq!(
        key_of(&AVAILABILITY.replace("\"availability\"\nkind", "\"Availability\"\nkind")),
        "slo[0].name"
    );
    let long = format!("{AVAILABILITY}runbook = \"https://runbooks.example.com/{}\"\n", "x".repeat(600));
    assert_eq!(key_of(&long), "slo[0].runbook");
}

#[test]
fn contradictions_name_their_key() {
    // Two SLOs of the same name.
    let twice = format!("{AVAILABILITY}{}", AVAILABILITY.replace("99.9", "99.5"));
    assert_eq!(key_of(&twice), "slo[1].name");
    // Two objectives for the same requests.
    let same_scope =
        format!("{AVAILABILITY}{}", AVAILABILITY.replace("\"availability\"\nkind", "\"other\"\nkind"));
    assert_eq!(key_of(&same_scope), "slo[1].objective");
    // 90%: 14.4 x 10% = 144% errors, an alert that can never fire.
    let err = invalid(&AVAILABILITY.replace("99.9", "90"));
    assert_eq!(err.key(), Some("slo[0].objective"));
    assert!(err.to_string().contains("page-fast"), "{err}");
    // A budget window shorter than the ticket's 3 days.
    assert_eq!(key_of(&format!("{AVAILABILITY}window = \"1d\"\n")), "slo[0].window");
    // Two names that become the same alarm id.
    let ids = format!(
        "{}{}",
        AVAILABILITY.replace("\"availability\"\nkind", "\"a-1\"\nkind"),
        AVAILABILITY
            .replace("\"availability\"\nkind", "\"a1\"\nkind")
            .replace("\"availability\"\nobj", "\"latency\"\nthreshold_ms = 5\nobj")
    );
    assert_eq!(key_of(&ids), "slo[1].name");
}

#[test]
fn bad_alert_rules_name_their_key() {
    let rule = |burn: &str, long: &str, short: &str| {
        format!(
            "{AVAILABILITY}[[alert]]\nname = \"page\"\nseverity = \"page\"\nburn_rate = {burn}\nlong_window = \"{long}\"\nshort_window = \"{short}\"\n"
        )
    };
    assert_eq!(key_of(&rule("14.4", "1h", "1h")), "alert[0].short_window");
    assert_eq!(key_of(&rule("14.4", "5m", "1h")), "alert[0].short_window");
    assert_eq!(key_of(&rule("14.4", "90s", "1m")), "alert[0].long_window");
    assert_eq!(key_of(&rule("1", "8d", "1h")), "alert[0].long_window");
    assert_eq!(key_of(&rule("0", "1h", "5m")), "alert[0].burn_rate");
    let empty = SloFile::parse(&format!("alert = []\n{SERVICE}{AVAILABILITY}")).unwrap_err();
    assert_eq!(empty.key(), Some("alert"));
    let two = format!("{}{}", rule("14.4", "1h", "5m"), &rule("6", "6h", "30m")[AVAILABILITY.len()..]);
    assert_eq!(key_of(&two), "alert[1].name");
}

/// `[[alert]]` rules named `names`, all valid on their own.
fn rules(names: &[&str]) -> String {
    names
        .iter()
        .map(|name| {
            format!(
                "[[alert]]\nname = \"{name}\"\nseverity = \"page\"\nburn_rate = 10\nlong_window = \"1h\"\nshort_window = \"5m\"\n"
            )
        })
        .collect()
}

#[test]
fn a_rule_whose_alarm_id_is_another_rules_window_alarm_is_refused_by_name() {
    // `page`'s long-window alarm is `PaymentsAvailabilityPageLong`, named
    // `payments-availability-page-long`: the composite alarm of `page-long` would replace it.
    for (second, part) in [("page-long", "long-window"), ("page-short", "short-window")] {
        let err = invalid(&format!("{AVAILABILITY}{}", rules(&["page", second])));
        assert_eq!(err.key(), Some("alert[1].name"), "{err}");
        let message = err.to_string();
        assert!(message.contains(&format!("`{second}`")) && message.contains("`page`'s"), "{message}");
        assert!(message.contains(part), "{message}");
    }
    // The other way round, and a rule clashing with a window alarm's window alarm.
    assert_eq!(key_of(&format!("{AVAILABILITY}{}", rules(&["page-long", "page"]))), "alert[1].name");
    assert_eq!(
        key_of(&format!("{AVAILABILITY}{}", rules(&["page-long", "ticket", "page-long-short"]))),
        "alert[2].name"
    );
    // Near names that make other ids are fine.
    let file = SloFile::parse(&format!("{SERVICE}{AVAILABILITY}{}", rules(&["page", "page-longer", "long"])));
    assert_eq!(file.unwrap().alerts().len(), 3);
}

#[test]
fn an_slo_whose_alarm_id_is_another_slos_window_alarm_is_refused_by_name() {
    // `a` with `page-long` and `a-page` with `long` both make `PaymentsAPageLong`: apart from
    // the rules, the SLO names are what clash.
    let a = AVAILABILITY.replace("\"availability\"\nkind", "\"a\"\nkind");
    let a_page = AVAILABILITY
        .replace("\"availability\"\nkind", "\"a-page\"\nkind")
        .replace("\"availability\"\nobj", "\"latency\"\nthreshold_ms = 5\nobj");
    let err = invalid(&format!("{a}{a_page}{}", rules(&["page", "long"])));
    assert_eq!(err.key(), Some("slo[1].name"), "{err}");
    let message = err.to_string();
    assert!(message.contains("PaymentsAPageLong") && message.contains("alert `long`"), "{message}");
    assert!(message.contains("slo[0] `a`'s long-window alarm of alert `page`"), "{message}");
}

#[test]
fn bad_services_name_their_key() {
    let with = |service: &str| SloFile::parse(&format!("{service}{AVAILABILITY}")).unwrap_err();
    let err = with("[service]\nname = \"payments\"\nnamespace = \"AWS/Lambda\"\n");
    assert_eq!(err.key(), Some("service.namespace"));
    let err = with("[service]\nname = \"payments\"\nnamespace = \"P\"\ndimensions = { Route = \"/x\" }\n");
    assert_eq!(err.key(), Some("service.dimensions.Route"));
    let err = with("[service]\nname = \"Pay ments\"\nnamespace = \"P\"\n");
    assert_eq!(err.key(), Some("service.name"));
    assert_eq!(SloFile::parse(SERVICE).unwrap_err().key(), Some("slo"));
}

#[test]
fn unknown_and_mistyped_keys_are_refused_by_name() {
    let err = invalid(&format!("{AVAILABILITY}treshold_ms = 300\n"));
    assert!(matches!(err, SloError::Syntax { .. }), "{err}");
    assert!(err.to_string().contains("treshold_ms"), "{err}");
    let err = invalid(&AVAILABILITY.replace("kind = \"availability\"", "kind = \"throughput\""));
    assert!(err.to_string().contains("throughput") && err.to_string().contains("kind"), "{err}");
    let err = invalid(&format!("{AVAILABILITY}window = \"30 days\"\n"));
    assert!(err.to_string().contains("30 days"), "{err}");
    let err = SloFile::load("/nonexistent/slo.toml").unwrap_err();
    assert!(matches!(err, SloError::Io { .. }) && err.to_string().contains("/nonexistent/slo.toml"), "{err}");
}
