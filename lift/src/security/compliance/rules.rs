//! The built-in rules: each cites its requirement and inspects the invocation itself.

use std::sync::Arc;

use http::{Method, StatusCode};
use serde_json::Value;

use super::rule::{rule, Facts, Framework, Phase, Rule, Severity};
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

fn audited(record: &Facts<'_>, class: Option<&str>) -> bool {
    record.audit.iter().any(|e| class.is_none_or(|c| e.data_classes.iter().any(|d| d == c)))
}

fn phi_in_response(record: &Facts<'_>) -> Vec<String> {
    record.response_json().map(|v| find_fields(v, PHI_FIELDS)).unwrap_or_default()
}

fn phi_in_request(record: &Facts<'_>) -> Vec<String> {
    record.request_json().map(|v| find_fields(v, PHI_FIELDS)).unwrap_or_default()
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

/// A built-in rule, as data.
struct Builtin {
    id: &'static str,
    framework: Framework,
    severity: Severity,
    phase: Phase,
    title: &'static str,
    block: StatusCode,
    check: fn(&Facts<'_>) -> Option<String>,
}

fn list(places: Vec<String>, what: &str) -> Option<String> {
    (!places.is_empty()).then(|| format!("{what} in clear in {}", places.join(", ")))
}

/// Every built-in rule, for all four frameworks.
///
/// | Id | Checks |
/// |---|---|
/// | `PCI-DSS 3.4` | no card number in clear in the response, log lines or audit details |
/// | `PCI-DSS 3.2.2` | no card verification code in the response or log lines |
/// | `PCI-DSS 4.2.1` | card numbers arrive only over TLS (blocks) |
/// | `PCI-DSS 10.2.1` | an invocation that handles card data leaves an audit entry |
/// | `HIPAA 164.312(a)(1)` | ePHI is answered only to an authenticated principal |
/// | `HIPAA 164.312(b)` | a response carrying ePHI leaves an audit entry with the `phi` class |
/// | `HIPAA 164.312(e)(1)` | ePHI arrives only over TLS (blocks) |
/// | `GDPR Art. 44` | EU personal data is processed only in `eu-*` regions (blocks with 451) |
/// | `GDPR Art. 32` | no email, phone, SSN or IBAN in clear in log lines |
/// | `GDPR Art. 17` | a successful erasure (DELETE) leaves an audit entry |
/// | `SOC2 CC6.1` | only `/health*` answers 2xx without an authenticated principal |
/// | `SOC2 CC6.7` | no secret (API key, token, private key) in the response or logs |
/// | `SOC2 CC7.2` | a 5xx answer is logged at error level |
pub fn builtin() -> Vec<Arc<dyn Rule>> {
    let rules = [
        Builtin {
            id: "PCI-DSS 3.4",
            framework: Framework::PciDss,
            severity: Severity::Critical,
            phase: Phase::Invocation,
            title: "PAN is unreadable anywhere it is displayed, logged or stored",
            block: StatusCode::FORBIDDEN,
            check: |r| list(places(r, DataClass::Pan, true), "a card number"),
        },
        Builtin {
            id: "PCI-DSS 3.2.2",
            framework: Framework::PciDss,
            severity: Severity::Critical,
            phase: Phase::Invocation,
            title: "card verification codes are not retained after authorization",
            block: StatusCode::FORBIDDEN,
            check: |r| {
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
                (!found.is_empty()).then(|| format!("a card verification code in {}", found.join(", ")))
            },
        },
        Builtin {
            id: "PCI-DSS 4.2.1",
            framework: Framework::PciDss,
            severity: Severity::Critical,
            phase: Phase::Request,
            title: "PAN is protected with strong cryptography in transit",
            block: StatusCode::FORBIDDEN,
            check: |r| {
                (!r.over_tls() && r.request_classes().contains(&DataClass::Pan))
                    .then(|| "a card number arrived over plain HTTP".to_owned())
            },
        },
        Builtin {
            id: "PCI-DSS 10.2.1",
            framework: Framework::PciDss,
            severity: Severity::High,
            phase: Phase::Invocation,
            title: "audit logs capture individual access to cardholder data",
            block: StatusCode::FORBIDDEN,
            check: |r| {
                // Cheap tests first: most invocations are audited and stop here.
                let card_data = || {
                    r.request_classes().contains(&DataClass::Pan)
                        || r.response_json().is_some_and(|v| !find_fields(v, &["card", "last4"]).is_empty())
                };
                (success(r) && !audited(r, None) && card_data())
                    .then(|| "cardholder data was handled without an audit entry".to_owned())
            },
        },
        Builtin {
            id: "HIPAA 164.312(a)(1)",
            framework: Framework::Hipaa,
            severity: Severity::Critical,
            phase: Phase::Invocation,
            title: "access control: only authorized persons access ePHI",
            block: StatusCode::FORBIDDEN,
            check: |r| {
                if !success(r) || r.request.subject.is_some() {
                    return None;
                }
                let phi = phi_in_response(r);
                (!phi.is_empty())
                    .then(|| format!("ePHI ({}) answered to an unauthenticated caller", phi.join(", ")))
            },
        },
        Builtin {
            id: "HIPAA 164.312(b)",
            framework: Framework::Hipaa,
            severity: Severity::High,
            phase: Phase::Invocation,
            title: "audit controls record activity in systems that contain ePHI",
            block: StatusCode::FORBIDDEN,
            check: |r| {
                if !success(r) || audited(r, Some("phi")) {
                    return None;
                }
                let phi = phi_in_response(r);
                (!phi.is_empty())
                    .then(|| format!("ePHI ({}) read without an audit entry of class phi", phi.join(", ")))
            },
        },
        Builtin {
            id: "HIPAA 164.312(e)(1)",
            framework: Framework::Hipaa,
            severity: Severity::Critical,
            phase: Phase::Request,
            title: "transmission security: ePHI is protected in transit",
            block: StatusCode::FORBIDDEN,
            check: |r| {
                if r.over_tls() {
                    return None;
                }
                let phi = phi_in_request(r);
                (!phi.is_empty()).then(|| format!("ePHI ({}) arrived over plain HTTP", phi.join(", ")))
            },
        },
        Builtin {
            id: "GDPR Art. 44",
            framework: Framework::Gdpr,
            severity: Severity::Critical,
            phase: Phase::Request,
            title: "personal data of the EU is transferred only where the transfer is permitted",
            block: StatusCode::UNAVAILABLE_FOR_LEGAL_REASONS,
            check: |r| {
                let region = r.request.region.as_deref().filter(|region| !region.starts_with("eu-"))?;
                let residency = declared_residency(r)?;
                (residency == "EU").then(|| format!("EU personal data would be processed in {region}"))
            },
        },
        Builtin {
            id: "GDPR Art. 32",
            framework: Framework::Gdpr,
            severity: Severity::High,
            phase: Phase::Invocation,
            title: "security of processing: personal data is not written to logs in clear",
            block: StatusCode::FORBIDDEN,
            check: |r| {
                let mut found = Vec::new();
                for class in [DataClass::Email, DataClass::Phone, DataClass::Ssn, DataClass::Iban] {
                    for place in places(r, class, false) {
                        found.push(format!("{} in {place}", class.as_str()));
                    }
                }
                (!found.is_empty()).then(|| format!("personal data in clear: {}", found.join(", ")))
            },
        },
        Builtin {
            id: "GDPR Art. 17",
            framework: Framework::Gdpr,
            severity: Severity::Medium,
            phase: Phase::Invocation,
            title: "erasure of personal data is carried out and recorded",
            block: StatusCode::FORBIDDEN,
            check: |r| {
                (r.request.method == Method::DELETE && success(r) && !audited(r, None))
                    .then(|| format!("{} erased data without an audit entry", r.request.path))
            },
        },
        Builtin {
            id: "SOC2 CC6.1",
            framework: Framework::Soc2,
            severity: Severity::High,
            phase: Phase::Invocation,
            title: "logical access: protected resources answer only authenticated callers",
            block: StatusCode::FORBIDDEN,
            check: |r| {
                let public = r.request.path == "/health" || r.request.path.starts_with("/health/");
                (success(r) && !public && r.request.subject.is_none()).then(|| {
                    format!(
                        "{} {} answered without an authenticated principal",
                        r.request.method, r.request.path
                    )
                })
            },
        },
        Builtin {
            id: "SOC2 CC6.7",
            framework: Framework::Soc2,
            severity: Severity::Critical,
            phase: Phase::Invocation,
            title: "confidential information (secrets) is not disclosed",
            block: StatusCode::FORBIDDEN,
            check: |r| list(places(r, DataClass::Secret, true), "a secret"),
        },
        Builtin {
            id: "SOC2 CC7.2",
            framework: Framework::Soc2,
            severity: Severity::Medium,
            phase: Phase::Invocation,
            title: "anomalies and failures are detected and logged",
            block: StatusCode::FORBIDDEN,
            check: |r| {
                let failed = r.response.as_ref().is_some_and(|res| res.status.is_server_error());
                let logged = r.logs.iter().any(|l| l.contains("\"level\":\"ERROR\""));
                (failed && !logged).then(|| "a 5xx answer without an error log line".to_owned())
            },
        },
    ];
    rules
        .into_iter()
        .map(|b| {
            Arc::new(rule(b.id, b.framework, b.severity, b.phase, b.title, b.check).block_with(b.block))
                as Arc<dyn Rule>
        })
        .collect()
}
