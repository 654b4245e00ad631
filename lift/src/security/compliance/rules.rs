//! The built-in rules: each cites its requirement and inspects the invocation itself.

use std::sync::Arc;

use http::{Method, StatusCode};
use serde_json::Value;

use super::rule::{Facts, Framework, Phase, Rule, Severity, Transport, Verdict};
use crate::security::audit::AuditStorage;
use crate::security::protection::DataClass;

/// Field names that carry protected health information.
const PHI_FIELDS: &[&str] = &[
    "diagnosis",
    "diagnoses",
    "condition",
    "conditions",
    "medication",
    "medications",
    "mrn",
    "medicalrecordnumber",
    "treatment",
    "icd10",
    "labresults",
    "allergies",
    "prescription",
];

/// Field names of card verification codes.
const CVV_FIELDS: &[&str] = &["cvv", "cvc", "cvv2", "cvc2", "cid", "cardverificationcode", "securitycode"];

/// EU and EEA country codes (for GDPR Art. 44).
const EEA: &[&str] = &[
    "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT", "LV", "LT",
    "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE", "IS", "LI", "NO",
];

/// Whether a key, lowercased without separators (`medical_record_number` →
/// `medicalrecordnumber`), is one of `names`, without allocating.
fn key_is(key: &str, names: &[&str]) -> bool {
    names.iter().any(|name| {
        let mut wanted = name.bytes();
        for b in key.bytes().filter(u8::is_ascii_alphanumeric) {
            if wanted.next() != Some(b.to_ascii_lowercase()) {
                return false;
            }
        }
        wanted.next().is_none()
    })
}

/// JSON pointers of object keys (normalised) in `names`, with a non-empty value.
fn fields_named(value: &Value, names: &[&str], path: &mut String, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                let len = path.len();
                path.push('/');
                path.push_str(key);
                let empty = matches!(v, Value::Null) || v.as_str().is_some_and(str::is_empty);
                if !empty && key_is(key, names) {
                    out.push(path.clone());
                }
                fields_named(v, names, path, out);
                path.truncate(len);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                let len = path.len();
                path.push('/');
                path.push_str(&i.to_string());
                fields_named(v, names, path, out);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

fn find_fields(value: &Value, names: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    fields_named(value, names, &mut String::new(), &mut out);
    out
}

/// Where in the record a class of value appears in clear: `the response body`, `log line 3`.
fn places(f: &Facts<'_>, class: DataClass, in_response: bool) -> Vec<String> {
    let mut out = Vec::new();
    if in_response && f.response_classes().contains(&class) {
        out.push("the response body".to_owned());
    }
    for (i, found) in f.log_classes().iter().enumerate() {
        if found.contains(&class) {
            out.push(format!("log line {}", i + 1));
        }
    }
    for (entry, found) in f.audit.iter().zip(f.audit_classes()) {
        if found.contains(&class) {
            out.push(format!("the audit entry for {}", entry.action));
        }
    }
    out
}

fn success(record: &Facts<'_>) -> bool {
    record.response.as_ref().is_some_and(|r| r.status.is_success())
}

/// Whether a durably stored audit entry (of `class`, if given) records the invocation.
fn audited(record: &Facts<'_>, class: Option<&str>) -> bool {
    record.audit_stored()
        && record.audit.iter().any(|e| class.is_none_or(|c| e.data_classes.iter().any(|d| d == c)))
}

/// Why an audit-backed rule did not hold: no entry, an entry of another class, or an
/// entry that was never stored.
fn not_audited(record: &Facts<'_>, class: Option<&str>, what: &str) -> Verdict {
    let entry = record.audit.iter().any(|e| class.is_none_or(|c| e.data_classes.iter().any(|d| d == c)));
    Verdict::Violated(match (entry, record.audit_storage) {
        (true, Some(AuditStorage::Degraded)) => {
            format!("{what}: its audit entry was not stored (audit degraded)")
        }
        (true, _) => format!("{what}: its audit entry was not stored before the response"),
        (false, _) => match class {
            Some(c) => format!("{what} without an audit entry of class {c}"),
            None => format!("{what} without an audit entry"),
        },
    })
}

fn phi_in_response(record: &Facts<'_>) -> Vec<String> {
    record.response_json().map(|v| find_fields(v, PHI_FIELDS)).unwrap_or_default()
}

fn phi_in_request(record: &Facts<'_>) -> Vec<String> {
    record.request_json().map(|v| find_fields(v, PHI_FIELDS)).unwrap_or_default()
}

/// Whether the invocation handled ePHI: PHI fields in the request or the response, or an
/// audit entry of class `phi` (the handler said so).
fn handles_phi(record: &Facts<'_>) -> bool {
    record.audit.iter().any(|e| e.data_classes.iter().any(|c| c == "phi"))
        || !phi_in_response(record).is_empty()
        || !phi_in_request(record).is_empty()
}

/// Whether cardholder data was in the request, the response, the log lines or the audit
/// entries (a card number anywhere, card fields in the answer, an entry of class `pci`).
fn handles_card_data(r: &Facts<'_>) -> bool {
    r.request_classes().contains(&DataClass::Pan)
        || r.response_classes().contains(&DataClass::Pan)
        || r.response_json().is_some_and(|v| !find_fields(v, &["card", "last4"]).is_empty())
        || r.log_classes().iter().any(|c| c.contains(&DataClass::Pan))
        || r.audit_classes().iter().any(|c| c.contains(&DataClass::Pan))
        || r.audit.iter().any(|e| e.data_classes.iter().any(|c| c == "pci" || c.starts_with("pci.")))
}

/// Personal data classes GDPR Art. 32 looks for.
const PERSONAL: [DataClass; 4] = [DataClass::Email, DataClass::Phone, DataClass::Ssn, DataClass::Iban];

/// Whether personal data was in the request, the response, the log lines or the audit
/// entries.
fn handles_personal_data(r: &Facts<'_>) -> bool {
    let any = |found: &[DataClass]| PERSONAL.iter().any(|c| found.contains(c));
    any(r.request_classes())
        || any(r.response_classes())
        || r.log_classes().iter().any(|c| any(c))
        || r.audit_classes().iter().any(|c| any(c))
}

/// Whether the route is public by convention (`/health` and below).
fn public(r: &Facts<'_>) -> bool {
    r.request.path == "/health" || r.request.path.starts_with("/health/")
}

/// The residency a request declares: `X-Data-Residency`, else the customer's country in
/// the body (`/customer/country`, `/country`).
fn declared_residency(record: &Facts<'_>) -> Option<String> {
    if let Some(v) = record.request.headers.get("x-data-residency").and_then(|v| v.to_str().ok()) {
        return Some(v.trim().to_ascii_uppercase());
    }
    let body = record.request_json()?;
    let country = body.pointer("/customer/country").or_else(|| body.pointer("/country"))?.as_str()?;
    let country = country.trim().to_ascii_uppercase();
    EEA.contains(&country.as_str()).then(|| "EU".to_owned())
}

/// Held unless `detail` says what broke.
fn held_unless(detail: Option<String>) -> Verdict {
    detail.map_or(Verdict::Held, Verdict::Violated)
}

/// The verdict of a transport rule that applies: TLS holds, plain HTTP breaks it, and an
/// unknown transport proves nothing.
fn over_tls(r: &Facts<'_>, what: &str) -> Verdict {
    match r.transport() {
        Transport::Tls => Verdict::Held,
        Transport::Plain => Verdict::Violated(format!("{what} arrived over plain HTTP")),
        Transport::Unknown => Verdict::Unknown(format!(
            "{what} arrived and nothing proves the transport (no API Gateway or Function URL event, no X-Forwarded-Proto)"
        )),
    }
}

/// A built-in rule, as data.
struct Builtin {
    id: &'static str,
    framework: Framework,
    severity: Severity,
    phase: Phase,
    title: &'static str,
    block: StatusCode,
    /// [`Rule::withholds_answer`].
    withholds: bool,
    judge: fn(&Facts<'_>) -> Verdict,
}

impl Rule for Builtin {
    fn id(&self) -> &str {
        self.id
    }
    fn framework(&self) -> Framework {
        self.framework
    }
    fn title(&self) -> &str {
        self.title
    }
    fn severity(&self) -> Severity {
        self.severity
    }
    fn phase(&self) -> Phase {
        self.phase
    }
    fn check(&self, facts: &Facts<'_>) -> Option<String> {
        match (self.judge)(facts) {
            Verdict::Violated(detail) => Some(detail),
            _ => None,
        }
    }
    fn applies(&self, facts: &Facts<'_>) -> bool {
        (self.judge)(facts).applied()
    }
    fn judge(&self, facts: &Facts<'_>) -> Verdict {
        (self.judge)(facts)
    }
    fn block_status(&self) -> StatusCode {
        self.block
    }
    fn withholds_answer(&self) -> bool {
        self.withholds
    }
}

fn list(places: Vec<String>, what: &str) -> Option<String> {
    (!places.is_empty()).then(|| format!("{what} in clear in {}", places.join(", ")))
}

/// Every built-in rule, for all four frameworks. Each says when it applies; on other
/// invocations it is not counted, so a service that never handled card data has no PCI
/// evidence, not a PCI pass.
///
/// | Id | Applies when | Holds when |
/// |---|---|---|
/// | `PCI-DSS 3.4` | cardholder data is in the request, response, logs or audit entries | no card number in clear in the response, log lines or audit entries (action, resource, details) |
/// | `PCI-DSS 3.2.2` | cardholder data is handled, or a verification code shows up | no card verification code in the response or log lines |
/// | `PCI-DSS 4.2.1` | a card number is in the request | it came over TLS (plain HTTP blocks; unknown transport is unknown) |
/// | `PCI-DSS 10.2.1` | a 2xx answer handled cardholder data | an audit entry was durably stored before the response |
/// | `HIPAA 164.312(a)(1)` | ePHI is in the response or the handler classed the request `phi` | ePHI is answered only to an authenticated principal |
/// | `HIPAA 164.312(b)` | a 2xx answer handled ePHI | a stored audit entry of class `phi` records it |
/// | `HIPAA 164.312(e)(1)` | ePHI is in the request | it came over TLS (plain HTTP blocks; unknown is unknown) |
/// | `GDPR Art. 44` | the request declares EU personal data | the function runs in an `eu-*` region (else blocks with 451; no region is unknown) |
/// | `GDPR Art. 32` | personal data (email, phone, SSN, IBAN) is in the request, response, logs or audit | none of it is in clear in the log lines or audit entries (action, resource, details) |
/// | `GDPR Art. 17` | a DELETE (erasure) is answered 2xx | an audit entry was durably stored before the response |
/// | `SOC2 CC6.1` | a route other than `/health*` answers | a 2xx answer went to an authenticated principal |
/// | `SOC2 CC6.7` | a route other than `/health*` answers | no secret (API key, token, private key) in the response, logs or audit |
/// | `SOC2 CC7.2` | the answer is a 5xx | an error-level log line records it |
pub fn builtin() -> Vec<Arc<dyn Rule>> {
    let rules = [
        Builtin {
            id: "PCI-DSS 3.4",
            framework: Framework::PciDss,
            severity: Severity::Critical,
            phase: Phase::Invocation,
            title: "PAN is unreadable anywhere it is displayed, logged or stored",
            block: StatusCode::FORBIDDEN,
            withholds: true,
            judge: |r| {
                if !handles_card_data(r) {
                    return Verdict::NotApplicable;
                }
                held_unless(list(places(r, DataClass::Pan, true), "a card number"))
            },
        },
        Builtin {
            id: "PCI-DSS 3.2.2",
            framework: Framework::PciDss,
            severity: Severity::Critical,
            phase: Phase::Invocation,
            title: "card verification codes are not retained after authorization",
            block: StatusCode::FORBIDDEN,
            withholds: true,
            judge: |r| {
                let mut found = r.response_json().map(|v| find_fields(v, CVV_FIELDS)).unwrap_or_default();
                found.extend(r.logs.iter().enumerate().filter_map(|(i, l)| {
                    let lower = l.to_ascii_lowercase();
                    ["\"cvv\":\"", "\"cvc\":\"", "cvv=", "cvc="]
                        .iter()
                        .any(|k| {
                            lower
                                .split(k)
                                .nth(1)
                                .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
                        })
                        .then(|| format!("log line {}", i + 1))
                }));
                let cvv_sent = r.request_json().is_some_and(|v| !find_fields(v, CVV_FIELDS).is_empty());
                if found.is_empty() && !cvv_sent && !handles_card_data(r) {
                    return Verdict::NotApplicable;
                }
                held_unless(
                    (!found.is_empty()).then(|| format!("a card verification code in {}", found.join(", "))),
                )
            },
        },
        Builtin {
            id: "PCI-DSS 4.2.1",
            framework: Framework::PciDss,
            severity: Severity::Critical,
            phase: Phase::Request,
            title: "PAN is protected with strong cryptography in transit",
            block: StatusCode::FORBIDDEN,
            withholds: false,
            judge: |r| {
                if !r.request_classes().contains(&DataClass::Pan) {
                    return Verdict::NotApplicable;
                }
                over_tls(r, "a card number")
            },
        },
        Builtin {
            id: "PCI-DSS 10.2.1",
            framework: Framework::PciDss,
            severity: Severity::High,
            phase: Phase::Invocation,
            title: "audit logs capture individual access to cardholder data",
            block: StatusCode::FORBIDDEN,
            withholds: false,
            judge: |r| {
                if !success(r) || !handles_card_data(r) {
                    return Verdict::NotApplicable;
                }
                if audited(r, None) {
                    return Verdict::Held;
                }
                not_audited(r, None, "cardholder data was handled")
            },
        },
        Builtin {
            id: "HIPAA 164.312(a)(1)",
            framework: Framework::Hipaa,
            severity: Severity::Critical,
            phase: Phase::Invocation,
            title: "access control: only authorized persons access ePHI",
            block: StatusCode::FORBIDDEN,
            withholds: true,
            judge: |r| {
                if !handles_phi(r) {
                    return Verdict::NotApplicable;
                }
                let phi = phi_in_response(r);
                held_unless(
                    (success(r) && r.request.subject.is_none() && !phi.is_empty())
                        .then(|| format!("ePHI ({}) answered to an unauthenticated caller", phi.join(", "))),
                )
            },
        },
        Builtin {
            id: "HIPAA 164.312(b)",
            framework: Framework::Hipaa,
            severity: Severity::High,
            phase: Phase::Invocation,
            title: "audit controls record activity in systems that contain ePHI",
            block: StatusCode::FORBIDDEN,
            withholds: false,
            judge: |r| {
                if !success(r) || !handles_phi(r) {
                    return Verdict::NotApplicable;
                }
                if audited(r, Some("phi")) {
                    return Verdict::Held;
                }
                not_audited(r, Some("phi"), "ePHI was handled")
            },
        },
        Builtin {
            id: "HIPAA 164.312(e)(1)",
            framework: Framework::Hipaa,
            severity: Severity::Critical,
            phase: Phase::Request,
            title: "transmission security: ePHI is protected in transit",
            block: StatusCode::FORBIDDEN,
            withholds: false,
            judge: |r| {
                let phi = phi_in_request(r);
                if phi.is_empty() {
                    return Verdict::NotApplicable;
                }
                over_tls(r, &format!("ePHI ({})", phi.join(", ")))
            },
        },
        Builtin {
            id: "GDPR Art. 44",
            framework: Framework::Gdpr,
            severity: Severity::Critical,
            phase: Phase::Request,
            title: "personal data of the EU is transferred only where the transfer is permitted",
            block: StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS,
            withholds: false,
            judge: |r| {
                if declared_residency(r).as_deref() != Some("EU") {
                    return Verdict::NotApplicable;
                }
                match r.request.region.as_deref() {
                    None => {
                        Verdict::Unknown("EU personal data arrived and no region is configured".to_owned())
                    }
                    Some(region) if region.starts_with("eu-") => Verdict::Held,
                    Some(region) => {
                        Verdict::Violated(format!("EU personal data would be processed in {region}"))
                    }
                }
            },
        },
        Builtin {
            id: "GDPR Art. 32",
            framework: Framework::Gdpr,
            severity: Severity::High,
            phase: Phase::Invocation,
            title: "security of processing: personal data is not written to logs in clear",
            block: StatusCode::FORBIDDEN,
            withholds: false,
            judge: |r| {
                if !handles_personal_data(r) {
                    return Verdict::NotApplicable;
                }
                let mut found = Vec::new();
                for class in PERSONAL {
                    for place in places(r, class, false) {
                        found.push(format!("{} in {place}", class.as_str()));
                    }
                }
                held_unless(
                    (!found.is_empty()).then(|| format!("personal data in clear: {}", found.join(", "))),
                )
            },
        },
        Builtin {
            id: "GDPR Art. 17",
            framework: Framework::Gdpr,
            severity: Severity::Medium,
            phase: Phase::Invocation,
            title: "erasure of personal data is carried out and recorded",
            block: StatusCode::FORBIDDEN,
            withholds: false,
            judge: |r| {
                if r.request.method != Method::DELETE || !success(r) {
                    return Verdict::NotApplicable;
                }
                if audited(r, None) {
                    return Verdict::Held;
                }
                not_audited(r, None, &format!("{} erased data", r.request.path))
            },
        },
        Builtin {
            id: "SOC2 CC6.1",
            framework: Framework::Soc2,
            severity: Severity::High,
            phase: Phase::Invocation,
            title: "logical access: protected resources answer only authenticated callers",
            block: StatusCode::FORBIDDEN,
            withholds: false,
            judge: |r| {
                if public(r) || r.response.is_none() {
                    return Verdict::NotApplicable;
                }
                held_unless((success(r) && r.request.subject.is_none()).then(|| {
                    format!(
                        "{} {} answered without an authenticated principal",
                        r.request.method, r.request.path
                    )
                }))
            },
        },
        Builtin {
            id: "SOC2 CC6.7",
            framework: Framework::Soc2,
            severity: Severity::Critical,
            phase: Phase::Invocation,
            title: "confidential information (secrets) is not disclosed",
            block: StatusCode::FORBIDDEN,
            withholds: true,
            judge: |r| {
                if public(r) || r.response.is_none() {
                    return Verdict::NotApplicable;
                }
                held_unless(list(places(r, DataClass::Secret, true), "a secret"))
            },
        },
        Builtin {
            id: "SOC2 CC7.2",
            framework: Framework::Soc2,
            severity: Severity::Medium,
            phase: Phase::Invocation,
            title: "anomalies and failures are detected and logged",
            block: StatusCode::FORBIDDEN,
            withholds: false,
            judge: |r| {
                if !r.response.as_ref().is_some_and(|res| res.status.is_server_error()) {
                    return Verdict::NotApplicable;
                }
                let logged = r.logs.iter().any(|l| l.contains("\"level\":\"ERROR\""));
                held_unless((!logged).then(|| "a 5xx answer without an error log line".to_owned()))
            },
        },
    ];
    rules.into_iter().map(|b| Arc::new(b) as Arc<dyn Rule>).collect()
}
