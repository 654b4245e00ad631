//! The step library as data: every step's cucumber expression, an example and what it
//! does. The features are checked against it before they run (a step that matches nothing,
//! or more than one, fails the run and names the closest step), and `features/README.md`
//! lists it. The same check ([`problems`]) refuses what would make a scenario not test what
//! it names: tags the report cannot count, placeholders nothing fills, Examples with no row.

use std::path::{Path, PathBuf};

/// One step of the library.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepDef {
    /// `Given`, `When` or `Then`.
    pub kind: &'static str,
    /// The cucumber expression (`{word}`, `{int}`, `{string}`).
    pub expression: &'static str,
    /// An example, as written in a feature.
    pub example: &'static str,
    /// What it does.
    pub does: &'static str,
}

const fn step(
    kind: &'static str,
    expression: &'static str,
    example: &'static str,
    does: &'static str,
) -> StepDef {
    StepDef { kind, expression, example, does }
}

/// Every step, in the order `features/README.md` lists them.
pub const STEPS: &[StepDef] = &[
    step("Given", "the service runs in region {word}", "the service runs in region eu-west-1", "(re)builds the service under test in that region (default `eu-west-1`)"),
    step("Given", "users of tenant {word} have roles {string} and scopes {string}", "users of tenant clinic have roles \"nurse\" and scopes \"records:read\"", "the roles and scopes (space separated) in the JWTs of that tenant's users from now on (default: the service's default roles, every scope the service needs)"),
    step("Given", "the next request goes over plain HTTP", "the next request goes over plain HTTP", "the next request says `X-Forwarded-Proto: http`"),
    step("Given", "the next request carries header {string} with value {string}", "the next request carries header \"x-data-residency\" with value \"EU\"", "adds any header to the next request"),
    step("When", "tenant {word} pays {int} {word} with card {string}", "tenant acme pays 1999 USD with card \"4111 1111 1111 1111\"", "`POST /payments` as a user of that tenant (a JWT signed by the harness's JWKS issuer), for customer `cus_1` (Ada Lovelace, a mixed-case email drawn per scenario, a description naming her)"),
    step("When", "tenant {word} pays {int} {word} with card {string} described as {string}", "tenant acme pays 500 EUR with card \"4111 1111 1111 1111\" described as \"call ada@example.com\"", "a payment with a free-text description"),
    step("When", "tenant {word} pays {int} {word} with card {string} for customer {string}", "tenant acme pays 500 EUR with card \"4111 1111 1111 1111\" for customer \"Ada Lovelace\"", "a payment whose customer has that name"),
    step("When", "tenant {word} pays for a customer in {word}", "tenant acme pays for a customer in DE", "a payment whose customer lives in that country"),
    step("When", "tenant {word} refunds {int} of the last payment", "tenant acme refunds 500 of the last payment", "`POST /payments/<id>/refunds` for the payment the scenario created last"),
    step("When", "tenant {word} reads the last payment", "tenant acme reads the last payment", "`GET /payments/<id>` of the payment the scenario created last"),
    step("When", "an anonymous caller reads the last payment", "an anonymous caller reads the last payment", "`GET /payments/<id>` of the payment the scenario created last, without a token"),
    step("When", "tenant {word} lists payments with query {string}", "tenant acme lists payments with query \"limit=5&customer=cus_1\"", "`GET /payments?<query>`, the query sent as written (unencoded)"),
    step("When", "tenant {word} erases customer {word}", "tenant acme erases customer cus_1", "`DELETE /customers/<id>` (GDPR erasure)"),
    step("When", "tenant {word} looks up payment {string}", "tenant acme looks up payment \"1' OR '1'='1\"", "`GET /payments/<text>` (the text is URL-encoded)"),
    step("When", "tenant {word} stores a record for patient {word} with diagnosis {string}", "tenant clinic stores a record for patient p-1 with diagnosis \"J45.909\"", "`POST /patients/<id>/records` with the diagnosis and a medication: the service stores it encrypted (health-records: an encounter sealed under the patient's key; a service without records routes gets the suites' small route, envelope encryption under the KMS mock)"),
    step("When", "tenant {word} stores a record for patient {word} with diagnosis {string} and notes {string}", "tenant clinic stores a record for patient p-1 with diagnosis \"J45.909\" and notes \"wheezing at night\"", "the same, with the clinician's notes"),
    step("When", "patient {word} of tenant {word} reads the records of patient {word}", "patient p-1 of tenant clinic reads the records of patient p-2", "`GET /patients/<id>/records` as that patient (JWT subject: the patient id, role `patient`)"),
    step("When", "patient {word} of tenant {word} lists the disclosures of their record", "patient p-1 of tenant clinic lists the disclosures of their record", "`GET /patients/<own id>/disclosures` as that patient: who read the record, when and why (HIPAA 164.528)"),
    step("When", "tenant {word} reads the records of patient {word}", "tenant clinic reads the records of patient p-1", "`GET /patients/<id>/records`: reads and decrypts the stored records (ePHI)"),
    step("When", "an anonymous caller reads the records of patient {word}", "an anonymous caller reads the records of patient p-1", "the same, without a token"),
    step("When", "the stored records of patient {word} are corrupted", "the stored records of patient p-1 are corrupted", "overwrites that patient's sealed records in DynamoDB with bytes that do not decrypt"),
    step("When", "the stored audit entry {int} of tenant {word} is altered", "the stored audit entry 1 of tenant acme is altered", "rewrites the actor of that entry in DynamoDB"),
    step("Then", "the answer is {int}", "the answer is 201", "the last response's status"),
    step("Then", "the answer contains {string}", "the answer contains \"J45.909\"", "the last response's body contains the text"),
    step("Then", "the answer does not contain {string}", "the answer does not contain \"J45.909\"", "the last response's body does not contain the text in any case (a number also with other separators or none); the text is a whole value a request of the scenario sent, or a word of one of 4 characters or more"),
    step("Then", "no card number appears in the answer, the logs or the stored payments", "no card number appears in the answer, the logs or the stored payments", "scans all three for a PAN in clear"),
    step("Then", "no stored item contains {string}", "no stored item contains \"J45.909\"", "scans every table of the scenario for the text in clear, in any case (a number also with other separators or none); the text is a whole value a request of the scenario sent, or a word of one of 4 characters or more"),
    step("Then", "no stored payment of tenant {word} names customer {word}", "no stored payment of tenant acme names customer cus_1", "the name, email, country and payment descriptions sent for that tenant's customer are gone from DynamoDB and from its payments' answers, in any case; another tenant's customer of the same id keeps its own"),
    step("Then", "the data of tenant {word} is intact", "the data of tenant globex is intact", "that tenant's stored items are exactly as they were after its own last request"),
    step("Then", "the audit trail of tenant {word} records {string} with data class {word}", "the audit trail of tenant acme records \"POST /payments\" with data class pci", "reads the trail back from DynamoDB"),
    step("Then", "the audit trail of tenant {word} records {string} as {word}", "the audit trail of tenant acme records \"GET /payments/:id\" as denied", "an entry of that action with that outcome (success, denied, failure)"),
    step("Then", "the audit trail of tenant {word} records a violation of {string}", "the audit trail of tenant acme records a violation of \"PCI-DSS 4.2.1\"", "a `compliance.violation` entry naming the rule"),
    step("Then", "the audit trail of tenant {word} does not record {string}", "the audit trail of tenant acme does not record \"POST /payments\"", "no entry of that action"),
    step("Then", "the audit chain of tenant {word} verifies", "the audit chain of tenant acme verifies", "walks the stored chain and its signed checkpoints"),
    step("Then", "the audit chain of tenant {word} is broken at entry {int}", "the audit chain of tenant acme is broken at entry 1", "and names the entry"),
    step("Then", "the rule {string} held", "the rule \"PCI-DSS 3.4\" held", "in this scenario the rule applied at least once and held every time"),
    step("Then", "the rule {string} was never violated", "the rule \"HIPAA 164.312(b)\" was never violated", "in this scenario the rule applied and was never broken"),
    step("Then", "the rule {string} was violated", "the rule \"PCI-DSS 3.4\" was violated", "in this scenario a request broke the rule"),
    step("Then", "the rule {string} refused the request", "the rule \"GDPR Art. 44\" refused the request", "in this scenario the rule blocked a request before the handler"),
    step("Then", "the rule {string} could not be proven", "the rule \"PCI-DSS 4.2.1\" could not be proven", "in this scenario the rule applied but the transport or region was unknown"),
    step("Then", "the rule {string} did not apply", "the rule \"HIPAA 164.312(b)\" did not apply", "in this scenario nothing gave the rule evidence"),
    step("Then", "a threat incident was recorded for tenant {word}", "a threat incident was recorded for tenant acme", "a `threat.incident` audit entry exists"),
];

/// A cucumber expression as a regex over a step's text (`<placeholders>` of outlines
/// match any value).
fn pattern(expression: &str) -> String {
    let mut out = String::from("^");
    let mut rest = expression;
    while let Some(start) = rest.find('{') {
        out.push_str(&escape(&rest[..start]));
        let end = rest[start..].find('}').map_or(rest.len(), |e| start + e + 1);
        out.push_str(match &rest[start..end] {
            "{int}" => r"(?:-?\d+|<[^>]+>)",
            "{string}" => r#"(?:"[^"]*"|<[^>]+>)"#,
            _ => r"\S+",
        });
        rest = &rest[end..];
    }
    out.push_str(&escape(rest));
    out.push('$');
    out
}

fn escape(text: &str) -> String {
    regex::escape(text)
}

/// The library steps a step's text matches.
pub fn matching(text: &str) -> Vec<&'static StepDef> {
    STEPS
        .iter()
        .filter(|s| regex::Regex::new(&pattern(s.expression)).is_ok_and(|re| re.is_match(text)))
        .collect()
}

/// The library step closest to `text` (normalised Levenshtein over the examples and the
/// expressions).
pub fn closest(text: &str) -> &'static StepDef {
    let score = |s: &StepDef| {
        strsim::normalized_levenshtein(text, s.example)
            .max(strsim::normalized_levenshtein(text, s.expression))
    };
    STEPS
        .iter()
        .max_by(|a, b| score(a).partial_cmp(&score(b)).unwrap_or(std::cmp::Ordering::Equal))
        .unwrap_or(&STEPS[0])
}

/// What is wrong with the features under `path` before any runs: files that do not parse
/// (with file and line), tags the report cannot count, outlines and placeholders that would
/// not run what they name, steps that match no library step (with the closest one), steps
/// that match several.
pub fn problems(path: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let requirements: Vec<(String, &'static str)> = lift::security::compliance::builtin()
        .iter()
        .map(|r| (requirement_tag(r.id()), framework_tag(r.framework())))
        .collect();
    for file in feature_files(path) {
        let feature =
            match cucumber::gherkin::Feature::parse_path(&file, cucumber::gherkin::GherkinEnv::default()) {
                Ok(feature) => feature,
                Err(cucumber::gherkin::ParseFileError::Parsing { source, .. }) => {
                    out.push(format!("{}: does not parse: {source}", file.display()));
                    continue;
                }
                Err(err) => {
                    out.push(format!("{}: {err}", file.display()));
                    continue;
                }
            };
        // The report counts scenarios under the tags of cucumber's JSON, which holds the
        // feature's and each scenario's tags but leaves a Rule's out.
        for rule in &feature.rules {
            for tag in &rule.tags {
                out.push(format!(
                    "{}:{}: rule \"{}\" has the tag @{tag}, which the report never sees (cucumber's JSON \
                     leaves a Rule's tags out): tag the feature or the rule's scenarios instead",
                    file.display(),
                    rule.position.line,
                    rule.name
                ));
            }
        }
        let scenarios = feature.scenarios.iter().chain(feature.rules.iter().flat_map(|r| r.scenarios.iter()));
        for scenario in scenarios {
            let tags: Vec<&String> = feature.tags.iter().chain(&scenario.tags).collect();
            out.extend(outline_problems(&file, scenario));
            if scenario.examples.is_empty() {
                let at = format!("{}:{}", file.display(), scenario.position.line);
                out.extend(tag_problems(&at, &scenario.name, &tags, &requirements));
            }
            // Cucumber adds an Examples block's tags to each scenario it expands to, so each
            // block is checked with its own tags, at its own line.
            for examples in &scenario.examples {
                let tags: Vec<&String> = tags.iter().copied().chain(&examples.tags).collect();
                let at = format!("{}:{}", file.display(), examples.position.line);
                out.extend(tag_problems(&at, &scenario.name, &tags, &requirements));
            }
        }
        let backgrounds =
            feature.background.iter().chain(feature.rules.iter().filter_map(|r| r.background.as_ref()));
        for step in backgrounds.clone().flat_map(|b| b.steps.iter()) {
            for placeholder in placeholders(step_texts(step)) {
                out.push(format!(
                    "{}:{}: {placeholder} is an outline placeholder in a Background, which cucumber never \
                     expands: the step would run with the text {placeholder} as written",
                    file.display(),
                    step.position.line
                ));
            }
        }
        let scenarios = feature.scenarios.iter().chain(feature.rules.iter().flat_map(|r| r.scenarios.iter()));
        let steps = scenarios.flat_map(|s| s.steps.iter()).chain(backgrounds.flat_map(|b| b.steps.iter()));
        for step in steps {
            let kind = match step.ty {
                cucumber::gherkin::StepType::Given => "Given",
                cucumber::gherkin::StepType::When => "When",
                cucumber::gherkin::StepType::Then => "Then",
            };
            let any_kind = matching(&step.value);
            let found: Vec<_> = any_kind.iter().filter(|s| s.kind == kind).collect();
            let at = format!("{}:{}", file.display(), step.position.line);
            match found.len() {
                1 => {}
                0 if !any_kind.is_empty() => out.push(format!(
                    "{at}: \"{}\" is a {} step, here it follows a {kind} step; start it with {}",
                    step.value, any_kind[0].kind, any_kind[0].kind
                )),
                0 => out.push(format!(
                    "{at}: no step matches \"{}\"; the closest is \"{}\" (see features/README.md)",
                    step.value,
                    closest(&step.value).expression
                )),
                _ => out.push(format!(
                    "{at}: \"{}\" is ambiguous: it matches {}",
                    step.value,
                    found.iter().map(|s| format!("\"{}\"", s.expression)).collect::<Vec<_>>().join(" and ")
                )),
            }
        }
    }
    out
}

/// An outline placeholder, as cucumber finds them when it expands Examples (its
/// `TEMPLATE_REGEX` in `feature.rs`).
static PLACEHOLDER: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
    regex::Regex::new(r"<([^>\s](?:[^>\s]?|[^>\t\n\r\v\f]*[^>\s]))>").expect("the placeholder pattern")
});

/// The texts of a step cucumber fills an outline's placeholders into: the step, its doc
/// string and its table's cells.
fn step_texts(step: &cucumber::gherkin::Step) -> impl Iterator<Item = &str> + '_ {
    std::iter::once(step.value.as_str())
        .chain(step.docstring.as_deref())
        .chain(step.table.iter().flat_map(|t| t.rows.iter().flatten().map(String::as_str)))
}

/// The distinct placeholders (`<card>`) in `texts`, in order of appearance.
fn placeholders<'a>(texts: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    for found in texts.flat_map(|t| PLACEHOLDER.find_iter(t)) {
        if !out.contains(&found.as_str()) {
            out.push(found.as_str());
        }
    }
    out
}

/// What makes a scenario not run what it names: a placeholder in a scenario without
/// Examples (cucumber runs it with the literal `<secret>`, and the library steps accept
/// placeholders, so `the answer does not contain "<secret>"` passes), a placeholder no
/// column of an Examples block fills (cucumber cannot expand it), and an Examples block
/// without rows under its header (it expands to no scenario, so nothing runs for it).
///
/// A literal `<...>` that a scenario needs goes in an Examples cell: cucumber does not
/// expand the values it fills in.
fn outline_problems(file: &Path, scenario: &cucumber::gherkin::Scenario) -> Vec<String> {
    let mut out = Vec::new();
    let name = &scenario.name;
    if scenario.examples.is_empty() {
        for step in &scenario.steps {
            for placeholder in placeholders(step_texts(step)) {
                out.push(format!(
                    "{}:{}: {placeholder} is an outline placeholder, but scenario \"{name}\" has no Examples: \
                     the step would run with the text {placeholder} as written",
                    file.display(),
                    step.position.line
                ));
            }
        }
        return out;
    }
    for examples in &scenario.examples {
        let header = examples.table.as_ref().and_then(|t| t.rows.first());
        if examples.table.as_ref().is_none_or(|t| t.rows.len() < 2) {
            out.push(format!(
                "{}:{}: the Examples of scenario \"{name}\" have no row under the header: cucumber expands \
                 them to no scenario, so nothing runs for them",
                file.display(),
                examples.position.line
            ));
        }
        let Some(header) = header else { continue };
        let unfilled = |text: &str| -> Vec<String> {
            placeholders(std::iter::once(text))
                .into_iter()
                .filter(|p| !header.iter().any(|column| p[1..p.len() - 1] == *column))
                .map(str::to_owned)
                .collect()
        };
        let lines = std::iter::once((scenario.position.line, name.as_str()))
            .chain(scenario.steps.iter().flat_map(|s| step_texts(s).map(|t| (s.position.line, t))));
        for (line, text) in lines {
            for placeholder in unfilled(text) {
                out.push(format!(
                    "{}:{line}: {placeholder} has no column in the Examples at line {} of scenario \"{name}\" \
                     (columns: {})",
                    file.display(),
                    examples.position.line,
                    header.join(", ")
                ));
            }
        }
    }
    out
}

/// The framework tags, as the report counts scenarios under them.
pub const FRAMEWORK_TAGS: [&str; 4] = ["pci_dss", "hipaa", "soc2", "gdpr"];

/// A framework's tag in the features (one of [`FRAMEWORK_TAGS`]).
pub fn framework_tag(framework: lift::security::compliance::Framework) -> &'static str {
    use lift::security::compliance::Framework;
    match framework {
        Framework::PciDss => "pci_dss",
        Framework::Hipaa => "hipaa",
        Framework::Soc2 => "soc2",
        Framework::Gdpr => "gdpr",
    }
}

/// A built-in rule's requirement tag: its id with `@`-safe spelling (`PCI-DSS 3.4` is
/// `PCI-DSS-3.4`, `HIPAA 164.312(a)(1)` is `HIPAA-164.312-a-1`, `GDPR Art. 17` is
/// `GDPR-Art.17`).
pub fn requirement_tag(rule_id: &str) -> String {
    rule_id.replace(". ", ".").replace(' ', "-").replace(")(", "-").replace('(', "-").replace(')', "")
}

/// What is wrong with a scenario's tags (its own, its feature's and, for each Examples block,
/// the block's): it needs a framework tag, or the report counts it under none and its
/// failure fails no framework; a requirement tag must name a built-in rule of a framework
/// the scenario is tagged with, since the report counts the scenario's result under its
/// framework tags only (a `@soc2` scenario tagged `@PCI-DSS-3.4` would fail SOC 2
/// and never PCI DSS); and any other tag is refused, cucumber's own (`@retry`,
/// `@allow.skipped`) included: a retried compliance scenario that passes the second time
/// hides a failure. `requirements` are the built-in rules' tags with their framework's tag.
fn tag_problems(
    at: &str,
    scenario: &str,
    tags: &[&String],
    requirements: &[(String, &'static str)],
) -> Vec<String> {
    let mut out = Vec::new();
    if !tags.iter().any(|t| FRAMEWORK_TAGS.contains(&t.as_str())) {
        out.push(format!(
            "{at}: scenario \"{scenario}\" has no framework tag ({}): the report would count it under none",
            FRAMEWORK_TAGS.map(|t| format!("@{t}")).join(", ")
        ));
    }
    for tag in tags {
        if FRAMEWORK_TAGS.contains(&tag.as_str()) {
            continue;
        }
        if let Some((_, framework)) = requirements.iter().find(|(r, _)| r == *tag) {
            if !tags.iter().any(|t| t == framework) {
                let counted: Vec<String> = tags
                    .iter()
                    .filter(|t| FRAMEWORK_TAGS.contains(&t.as_str()))
                    .map(|t| format!("@{t}"))
                    .collect();
                let counted = if counted.is_empty() { "no framework".to_owned() } else { counted.join(", ") };
                out.push(format!(
                    "{at}: scenario \"{scenario}\" has the requirement tag @{tag} of @{framework} but not the \
                     tag @{framework}: the report would count its result under {counted} only"
                ));
            }
            continue;
        }
        let close = FRAMEWORK_TAGS
            .iter()
            .map(|t| (*t).to_owned())
            .chain(requirements.iter().map(|(r, _)| r.clone()))
            .max_by(|a, b| {
                strsim::normalized_levenshtein(tag, a).total_cmp(&strsim::normalized_levenshtein(tag, b))
            })
            .unwrap_or_default();
        out.push(format!(
            "{at}: scenario \"{scenario}\" has the unknown tag @{tag}; the closest is @{close} (framework tags: {}; \
             requirement tags name a built-in rule)",
            FRAMEWORK_TAGS.join(", ")
        ));
    }
    out
}

/// The feature files under `path` (a file or a directory), sorted, as cucumber's parser
/// finds them: every entry under the directory, at any depth, whose name ends in `.feature`
/// in any case. Like cucumber's walker, it does not follow symbolic links into
/// directories, and lists a directory whose name matches (cucumber then fails to read it,
/// and so do the checks).
pub fn feature_files(path: &Path) -> Vec<PathBuf> {
    if path.is_file() {
        return vec![path.to_owned()];
    }
    let mut files = Vec::new();
    let mut dirs = vec![path.to_owned()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().to_lowercase();
            if name.ends_with(".feature") {
                files.push(entry.path());
            }
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                dirs.push(entry.path());
            }
        }
    }
    files.sort();
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_example_matches_exactly_its_own_step() {
        for s in STEPS {
            let found = matching(s.example);
            assert_eq!(found, vec![s], "{}", s.example);
        }
    }

    #[test]
    fn a_typo_matches_nothing_and_names_the_closest_step() {
        assert!(matching("the anwser is 201").is_empty());
        assert_eq!(closest("the anwser is 201").expression, "the answer is {int}");
        assert!(matching("tenant acme pays 12 USD with card 4111").is_empty(), "the card must be quoted");
        assert_eq!(matching("the answer is <status>").len(), 1, "outline placeholders match");
    }

    /// A misspelled framework tag, a requirement no rule has and cucumber's retry tag are
    /// each named; the tags the shipped features use are not.
    #[test]
    fn misspelled_unknown_and_control_tags_are_problems() {
        let dir = std::env::temp_dir().join(format!("lift-features-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("tags.feature"),
            "@pci-dss\nFeature: tags\n  @PCI-DSS-9.9 @retry(3)\n  Scenario: a\n    \
             Given the service runs in region eu-west-1\n",
        )
        .unwrap();
        let found = problems(&dir);
        assert_eq!(found.len(), 4, "{found:#?}");
        assert!(found[0].contains("tags.feature:4: scenario \"a\" has no framework tag"), "{found:?}");
        assert!(found[1].contains("unknown tag @pci-dss; the closest is @pci_dss"), "{found:?}");
        assert!(found[2].contains("unknown tag @PCI-DSS-9.9"), "{found:?}");
        assert!(found[3].contains("unknown tag @retry(3)"), "{found:?}");
        std::fs::write(
            dir.join("tags.feature"),
            "@hipaa\nFeature: tags\n  @HIPAA-164.312-a-1 @HIPAA-164.312-b\n  Scenario: a\n    \
             Given the service runs in region eu-west-1\n",
        )
        .unwrap();
        assert_eq!(problems(&dir), Vec::<String>::new());
        std::fs::remove_dir_all(&dir).unwrap();
        let ids: Vec<String> =
            lift::security::compliance::builtin().iter().map(|r| requirement_tag(r.id())).collect();
        for tag in ["PCI-DSS-3.4", "HIPAA-164.312-e-1", "GDPR-Art.17", "SOC2-CC6.1"] {
            assert!(ids.iter().any(|id| id == tag), "{tag} among {ids:?}");
        }
    }

    #[test]
    fn a_feature_that_does_not_parse_is_named_with_its_line() {
        let dir = std::env::temp_dir().join(format!("lift-features-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("bad.feature"),
            "@gdpr\nFeature: one\n  Scenario: a\n    Given the answer is 200\nFeature: two\n",
        )
        .unwrap();
        let found = problems(&dir);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("bad.feature: does not parse: Error at 6:1"), "{found:?}");
        std::fs::write(
            dir.join("bad.feature"),
            "@gdpr\nFeature: one\n  Scenario: a\n    When the answer is 200\n",
        )
        .unwrap();
        let found = problems(&dir);
        assert!(found[0].contains("bad.feature:4: \"the answer is 200\" is a Then step"), "{found:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A fresh directory holding `files` (name, text); the caller removes it.
    fn scratch(files: &[(&str, &str)]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("lift-features-{}", uuid::Uuid::new_v4().simple()));
        for (name, text) in files {
            let file = dir.join(name);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, text).unwrap();
        }
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Cucumber gives each scenario an Examples block expands to the block's tags: they are
    /// checked like the scenario's, and a framework tag there counts.
    #[test]
    fn examples_tags_are_checked_like_scenario_tags() {
        let dir = scratch(&[(
            "outline.feature",
            "Feature: outline\n  Scenario Outline: a\n    Then the answer is <status>\n\n    \
             @gdpr @retry(2)\n    Examples:\n      | status |\n      | 201    |\n\n    \
             @soc2 @SOC2-CC6.1\n    Examples:\n      | status |\n      | 403    |\n",
        )]);
        let found = problems(&dir);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(
            found[0].contains("outline.feature:6: scenario \"a\" has the unknown tag @retry(2)"),
            "{found:?}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn examples_without_rows_are_refused() {
        let dir = scratch(&[(
            "outline.feature",
            "@gdpr\nFeature: outline\n  Scenario Outline: a\n    Then the answer is <status>\n\n    \
             Examples:\n      | status |\n\n    Examples:\n      | status |\n      | 201    |\n",
        )]);
        let found = problems(&dir);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(
            found[0]
                .contains("outline.feature:6: the Examples of scenario \"a\" have no row under the header"),
            "{found:?}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Cucumber runs a placeholder it does not expand as written, and the library steps
    /// accept placeholders: a scenario without Examples, a Background and an Examples block
    /// without the placeholder's column would each pass without testing anything.
    #[test]
    fn placeholders_that_nothing_fills_are_refused() {
        let dir = scratch(&[(
            "outline.feature",
            "@soc2\nFeature: outline\n  Background:\n    Given the next request carries header \"x\" with value \"<v>\"\n\n  \
             Scenario Outline: no examples\n    Then the answer does not contain \"<secret>\"\n\n  \
             Scenario Outline: <who> reads\n    Then the answer is <status>\n\n    \
             Examples:\n      | status |\n      | 201    |\n\n  \
             Scenario Outline: filled\n    Then the answer does not contain \"<secret>\"\n\n    \
             Examples:\n      | secret |\n      | 4111   |\n",
        )]);
        let found = problems(&dir);
        assert_eq!(found.len(), 3, "{found:#?}");
        assert!(
            found[0].contains("outline.feature:7: <secret> is an outline placeholder, but scenario"),
            "{found:?}"
        );
        assert!(
            found[1].contains("outline.feature:9: <who> has no column in the Examples at line 12"),
            "{found:?}"
        );
        assert!(
            found[2].contains("outline.feature:4: <v> is an outline placeholder in a Background"),
            "{found:?}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The report counts a scenario's result under its framework tags only, so a
    /// requirement of another framework would be claimed and never judged.
    #[test]
    fn requirement_tags_of_another_framework_are_refused() {
        let dir = scratch(&[(
            "cross.feature",
            "@soc2\nFeature: cross\n  @PCI-DSS-3.4 @SOC2-CC6.1\n  Scenario: a\n    Then the answer is 201\n\n  \
             @pci_dss @PCI-DSS-3.4\n  Scenario: b\n    Then the answer is 201\n",
        )]);
        let found = problems(&dir);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(
            found[0].contains(
                "cross.feature:4: scenario \"a\" has the requirement tag @PCI-DSS-3.4 of @pci_dss but not the tag \
                 @pci_dss: the report would count its result under @soc2 only"
            ),
            "{found:?}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The report reads the tags from cucumber's JSON, which leaves a Rule's tags out: a
    /// framework tag there would leave the rule's scenarios counted under none.
    #[test]
    fn rule_tags_are_refused() {
        let dir = scratch(&[(
            "rule.feature",
            "Feature: rule
  @gdpr
  Rule: r
    Scenario: a
      Then the answer is 201
",
        )]);
        let found = problems(&dir);
        assert_eq!(found.len(), 2, "{found:#?}");
        assert!(
            found[0].contains("rule.feature:3: rule \"r\" has the tag @gdpr, which the report never sees")
        );
        assert!(found[1].contains("rule.feature:4: scenario \"a\" has no framework tag"), "{found:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The checks see every file cucumber runs: compared with cucumber's own parser over
    /// nested, upper-case, symlinked and misleadingly named entries.
    #[test]
    fn feature_files_lists_what_cucumber_runs() {
        use cucumber::Parser as _;
        let ok = "@gdpr\nFeature: f\n  Scenario: a\n    Then the answer is 201\n";
        let dir = scratch(&[
            ("top.feature", ok),
            ("Upper.Feature", ok),
            ("nested/deeper/SHOUT.FEATURE", "@gdpr\nFeature: f\n  Scenario: a\n    Then the anwser is 201\n"),
            ("named.feature/inside.feature", ok),
            ("README.md", "not a feature"),
            ("notes.feature.txt", "not a feature"),
        ]);
        let outside = scratch(&[("linked.feature", ok)]);
        #[cfg(unix)]
        std::os::unix::fs::symlink(&outside, dir.join("link")).unwrap();
        let dir = dir.canonicalize().unwrap();
        let ours = feature_files(&dir);
        let theirs: Vec<PathBuf> = cucumber::parser::Basic::default()
            .parse(&dir, cucumber::parser::basic::Cli::default())
            .into_inner()
            .map(|f| match f {
                Ok(f) => f.path.unwrap(),
                Err(cucumber::parser::Error::Parsing(e)) => match &*e {
                    cucumber::gherkin::ParseFileError::Reading { path, .. }
                    | cucumber::gherkin::ParseFileError::Parsing { path, .. } => path.clone(),
                },
                Err(e) => panic!("{e}"),
            })
            .collect();
        assert_eq!(ours, theirs);
        assert_eq!(ours.len(), 5, "{ours:?}");
        let found = problems(&dir);
        assert_eq!(found.len(), 2, "{found:#?}");
        assert!(found[0].contains("named.feature: Could not read path"), "{found:?}");
        assert!(found[1].contains("SHOUT.FEATURE:4: no step matches \"the anwser is 201\""), "{found:?}");
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::remove_dir_all(&outside).unwrap();
    }

    /// The features the project ships, the must-fail ones included, pass the checks.
    #[test]
    fn the_shipped_features_pass_the_checks() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        for dir in ["../features", "../examples/health-records/features", "tests/features"] {
            let dir = root.join(dir);
            assert!(!feature_files(&dir).is_empty(), "no features under {}", dir.display());
            assert_eq!(problems(&dir), Vec::<String>::new(), "{}", dir.display());
        }
    }

    #[test]
    fn the_features_readme_lists_every_step_with_its_example_and_every_rule() {
        let readme = include_str!("../../../features/README.md");
        for s in STEPS {
            assert!(readme.contains(&format!("`{}`", s.expression)), "README lacks {}", s.expression);
            assert!(
                readme.contains(&format!("`{} {}`", s.kind, s.example)),
                "README lacks the example {}",
                s.example
            );
        }
        for rule in lift::security::compliance::builtin() {
            assert!(readme.contains(&format!("| `{}` |", rule.id())), "README lacks rule {}", rule.id());
        }
    }
}
