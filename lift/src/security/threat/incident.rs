//! Incidents: a scrubbed forensic snapshot of the request, and the playbook run for it
//! (audit entry, alert, automatic block).

use std::net::IpAddr;
use std::time::Duration;

use serde::Serialize;

use super::alert::WebhookAlert;
use super::finding::{Finding, ThreatAssessment};
use super::store::{now_ms, BlockTarget, ThreatStore};
use crate::scrub::mask_emails;
use crate::security::audit::{AuditEntry, AuditTrail, Outcome};

/// The audit action of an incident.
pub const INCIDENT_ACTION: &str = "threat.incident";

/// Longest header or query value kept in a snapshot.
const MAX_VALUE: usize = 256;

/// Longest snapshot JSON ([`Incident::to_json`]) written to the audit trail or sent to a
/// webhook: a request may carry hundreds of headers and a body thousands of findings, and
/// an audit item must stay far below DynamoDB's 400 KB item limit.
pub const MAX_INCIDENT_JSON: usize = 8 * 1024;

/// A forensic snapshot of a request that raised an incident: the request line and headers,
/// scrubbed, who sent it, what was found and the score. Never the body, never
/// `Authorization`, cookies or other credentials.
///
/// # Examples
///
/// ```
/// use lift::security::threat::{Incident, ThreatAssessment};
///
/// let req = http::Request::builder()
///     .uri("/payments?token=s3cret&id=1")
///     .header("authorization", "Bearer abc")
///     .header("user-agent", "curl/8")
///     .body(lift::Body::empty())
///     .unwrap();
/// let incident = Incident::capture(&req, None, ThreatAssessment::default());
/// let json = serde_json::to_string(&incident).unwrap();
/// assert!(!json.contains("abc") && !json.contains("s3cret") && json.contains("curl/8"));
/// ```
#[derive(Debug, Clone, Serialize)]
pub struct Incident {
    /// The request id.
    pub request_id: String,
    /// When, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// The method.
    pub method: String,
    /// The path.
    pub path: String,
    /// The query string, with credential-like parameters redacted.
    pub query: Option<String>,
    /// The headers, without credentials.
    pub headers: Vec<(String, String)>,
    /// The client IP.
    pub client_ip: Option<IpAddr>,
    /// The principal's subject.
    pub principal: Option<String>,
    /// The issuer that vouched for the principal (its token's `iss`), when it had one: a
    /// subject is unique within its issuer only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// The tenant.
    pub tenant: Option<String>,
    /// The risk score.
    pub score: u8,
    /// The findings.
    pub findings: Vec<Finding>,
    /// What the playbook did (`blocked_ip`, `blocked_principal`, `alerted`...), filled in as it runs.
    pub actions: Vec<&'static str>,
}

impl Incident {
    /// Captures the snapshot of a request.
    pub fn capture<B>(
        req: &http::Request<B>,
        client_ip: Option<IpAddr>,
        assessment: ThreatAssessment,
    ) -> Self {
        let ctx = crate::Context::of(req);
        let principal = ctx.and_then(crate::Context::principal);
        Self {
            request_id: ctx.map(|c| c.request_id().to_owned()).unwrap_or_default(),
            at_ms: now_ms(),
            method: req.method().to_string(),
            // `scrub_path` masks email segments; `redact` what the decoded whole still shows.
            path: clip(&redact(&crate::scrub::scrub_path(req.uri().path()))),
            query: req.uri().query().map(scrub_query),
            headers: req
                .headers()
                .iter()
                .filter(|(name, _)| !is_credential(name.as_str()))
                .map(|(name, value)| {
                    let value = mask_emails(&redact(&String::from_utf8_lossy(value.as_bytes()))).into_owned();
                    (clip(name.as_str()), clip(&value))
                })
                .collect(),
            client_ip,
            principal: principal.map(|p| p.subject.clone()),
            issuer: principal.and_then(|p| p.issuer.clone()),
            tenant: principal
                .map(|p| p.tenant.clone())
                .or_else(|| ctx.and_then(|c| c.tenant()).map(str::to_owned)),
            score: assessment.score(),
            findings: assessment.findings().to_vec(),
            actions: Vec::new(),
        }
    }

    /// The snapshot as compact JSON, at most [`MAX_INCIDENT_JSON`] bytes: a larger one loses
    /// its headers, then findings past the first few, then the text of its fields, and says
    /// so with `"truncated": true`.
    pub fn to_json(&self) -> String {
        let json = serde_json::to_string(self).unwrap_or_default();
        if json.len() <= MAX_INCIDENT_JSON {
            return json;
        }
        let mut small = self.clone();
        for text in [&mut small.request_id, &mut small.method, &mut small.path]
            .into_iter()
            .chain(small.query.as_mut())
            .chain(small.principal.as_mut())
            .chain(small.issuer.as_mut())
            .chain(small.tenant.as_mut())
        {
            *text = clip(text);
        }
        small.headers.clear();
        small.findings.truncate(MAX_FINDINGS);
        let mut json = truncated_json(&small);
        if json.len() > MAX_INCIDENT_JSON {
            // Only escaping (control characters written as `\u00XX`) gets here: the fields
            // are cut to a size no escaping can blow past the limit.
            for text in [&mut small.request_id, &mut small.method, &mut small.path]
                .into_iter()
                .chain(small.query.as_mut())
                .chain(small.principal.as_mut())
                .chain(small.issuer.as_mut())
                .chain(small.tenant.as_mut())
            {
                text.truncate(floor_boundary(text, 64));
            }
            small.findings.clear();
            json = truncated_json(&small);
        }
        json
    }
}

/// Findings kept in a snapshot cut down to [`MAX_INCIDENT_JSON`].
const MAX_FINDINGS: usize = 16;

fn truncated_json(incident: &Incident) -> String {
    let mut value = serde_json::to_value(incident).unwrap_or_default();
    if let Some(object) = value.as_object_mut() {
        object.insert("truncated".to_owned(), serde_json::Value::Bool(true));
    }
    value.to_string()
}

/// Headers that carry credentials or session state: never copied into a snapshot.
fn is_credential(name: &str) -> bool {
    matches!(name, "authorization" | "proxy-authorization" | "cookie" | "set-cookie" | "x-amz-security-token")
        || ["token", "secret", "api-key", "apikey", "password", "session", "auth", "signature"]
            .iter()
            .any(|part| name.contains(part))
}

/// Redacts the values of credential-like query parameters (and of those the log scrubber
/// calls secret: `pin`, `otp`), and long digit runs (card numbers) anywhere.
fn scrub_query(query: &str) -> String {
    let pairs = query.split('&').map(|pair| {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let lower = name.to_ascii_lowercase();
        let secret = [
            "token", "key", "secret", "password", "passwd", "pwd", "sig", "code", "auth", "session", "card",
            "pan", "cvv", "cvc", "ssn", "mail",
        ]
        .iter()
        .any(|part| lower.contains(part))
            // What the logs call a secret: a PIN or a one-time password (`pin`, `otp`).
            || crate::scrub::is_secret_name(name);
        if secret && !value.is_empty() {
            format!("{name}=[redacted]")
        } else {
            pair.to_owned()
        }
    });
    clip(&mask_emails(&redact(&mask_digits(&pairs.collect::<Vec<_>>().join("&")))))
}

/// Text as a snapshot keeps it: percent-decoded, with card numbers, SSNs, IBANs and secrets
/// redacted as in the logs (`4111-1111-1111-1111` and `4111%201111%201111%201111` are card
/// numbers too, which a plain digit run misses).
fn redact(text: &str) -> String {
    crate::scrub::scrub(&crate::app::percent_decode(text)).into_owned()
}

/// Masks runs of 12 or more digits (card and account numbers).
fn mask_digits(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        let run = bytes[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        if run >= 12 {
            out.extend(std::iter::repeat_n('*', run));
            i += run;
        } else if run > 0 {
            out.push_str(&text[i..i + run]);
            i += run;
        } else {
            let ch = text[i..].chars().next().unwrap_or('?');
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

fn clip(text: &str) -> String {
    text[..floor_boundary(text, MAX_VALUE)].to_owned()
}

/// The largest char boundary of `text` at or below `max`.
fn floor_boundary(text: &str, max: usize) -> usize {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    end
}

/// What to do when an incident is raised: write the snapshot to the audit trail, alert a
/// webhook, block the client IP or the principal for a while. Each step that fails is logged and the next
/// one still runs.
///
/// # Examples
///
/// ```no_run
/// # fn demo(trail: lift::security::audit::AuditTrail, store: lift::security::threat::ThreatStore)
/// # -> Result<(), lift::security::threat::InvalidConfig> {
/// use std::time::Duration;
/// use lift::security::threat::{Playbook, WebhookAlert};
///
/// let playbook = Playbook::new()
///     .audit(trail)
///     .alert(WebhookAlert::new("http://alerts.internal/threat")?)
///     .block_ip(store, Duration::from_secs(900));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default)]
pub struct Playbook {
    trail: Option<AuditTrail>,
    alert: Option<WebhookAlert>,
    block: Option<(ThreatStore, Duration)>,
    block_caller: Option<(ThreatStore, Duration)>,
}

impl Playbook {
    /// A playbook that only logs.
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes each incident's snapshot to the audit trail (action [`INCIDENT_ACTION`],
    /// outcome denied) and flushes it.
    pub fn audit(mut self, trail: AuditTrail) -> Self {
        self.trail = Some(trail);
        self
    }

    /// Alerts a webhook.
    pub fn alert(mut self, alert: WebhookAlert) -> Self {
        self.alert = Some(alert);
        self
    }

    pub(crate) fn has_alert(&self) -> bool {
        self.alert.is_some()
    }

    /// Blocks the client IP for `duration`.
    pub fn block_ip(mut self, store: ThreatStore, duration: Duration) -> Self {
        self.block = Some((store, duration));
        self
    }

    /// Blocks the incident's principal for `duration`: that issuer's subject alone
    /// ([`BlockTarget::of`]), so another issuer's user of the same name is not locked out
    /// by an attack made under it. An incident without a principal blocks no one.
    pub fn block_principal(mut self, store: ThreatStore, duration: Duration) -> Self {
        self.block_caller = Some((store, duration));
        self
    }

    /// Runs the playbook for an incident; returns the incident with the actions taken.
    pub async fn run(&self, incident: Incident) -> Incident {
        self.run_blocking(incident, true).await
    }

    /// Runs the playbook, blocking the client IP only when `block_ip` (and
    /// [`block_ip`](Self::block_ip) is set): an incident the IP did not cause alone, such as
    /// too many failed logins for one user, must not block whichever client sent the last
    /// request (a victim, or everyone behind its NAT).
    pub(crate) async fn run_blocking(&self, mut incident: Incident, block_ip: bool) -> Incident {
        tracing::warn!(
            request_id = %incident.request_id,
            score = incident.score,
            findings = incident.findings.len(),
            "threat incident"
        );
        if let (Some((store, duration)), Some(ip), true) = (&self.block, incident.client_ip, block_ip) {
            let reason = incident.findings.first().map_or("threat", |f| f.kind.as_str());
            match store.block(&BlockTarget::Ip(ip), *duration, reason).await {
                Ok(()) => incident.actions.push("blocked_ip"),
                Err(err) => tracing::error!(error = %err, "client ip not blocked"),
            }
        }
        if let (Some((store, duration)), Some(subject)) = (&self.block_caller, &incident.principal) {
            let reason = incident.findings.first().map_or("threat", |f| f.kind.as_str());
            let target =
                BlockTarget::caller(incident.issuer.as_deref().unwrap_or_default(), subject.as_str());
            match store.block(&target, *duration, reason).await {
                Ok(()) => incident.actions.push("blocked_principal"),
                Err(err) => tracing::error!(error = %err, "principal not blocked"),
            }
        }
        if let Some(alert) = &self.alert {
            if alert.send(&incident).await {
                incident.actions.push("alerted");
            }
        }
        // The place first, in the trail's security headroom above its ceiling: with DynamoDB
        // down for long, ordinary requests are refused at the ceiling and the incident is
        // still kept; past the headroom it is not recorded, and its actions do not say it was.
        let place = match &self.trail {
            Some(trail) => match trail.reserve_security_event().await {
                Ok(place) => Some((trail, place)),
                Err(err) => {
                    tracing::error!(error = %err, "threat incident not recorded in the audit trail");
                    None
                }
            },
            None => None,
        };
        if let Some((trail, place)) = place {
            incident.actions.push("audited");
            let entry = AuditEntry::new(
                incident.tenant.clone().unwrap_or_else(|| "-".to_owned()),
                incident.principal.clone().unwrap_or_else(|| "anonymous".to_owned()),
                INCIDENT_ACTION,
                incident.path.clone(),
                Outcome::Denied,
            )
            .from_where(incident.client_ip.map(|ip| ip.to_string()).unwrap_or_default())
            .request_id(incident.request_id.clone())
            .detail(incident.to_json());
            let entry = match &incident.issuer {
                Some(issuer) => entry.issuer(issuer.clone()),
                None => entry,
            };
            place.fill(entry);
            if let Err(err) = trail.flush().await {
                tracing::error!(error = %err, "threat incident not stored in the audit trail yet");
            }
        }
        incident
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_never_carry_credentials() {
        let mut req = http::Request::builder()
            .uri("/pay/4111%201111%201111%201111/users/ada%40example.com?access_token=tok123&card=4111111111111111&id=7&q=4111111111111111&r=4111-1111-1111-1111&s=078-05-1120&email=grace%40example.org&to=x%20linus@example.net")
            .header("authorization", "Bearer eyJsecret")
            .header("referer", "https://shop.example.com/?card=4111 1111 1111 1111")
            .header("x-ref", "4111-1111-1111-1111")
            .header("cookie", "session=abc")
            .header("x-api-key", "k-123")
            .header("user-agent", "sqlmap/1.7")
            .header("from", "Margaret <margaret.h@example.co.uk>")
            .header("referer", "https://shop.example.com/account?user=barbara%40example.com")
            .body(())
            .unwrap();
        let mut ctx = crate::Context::new("r-1");
        ctx.set_principal(crate::Principal::new("alice", "acme").with_issuer("https://id.example.com"));
        req.extensions_mut().insert(ctx);
        let json = Incident::capture(&req, "203.0.113.9".parse().ok(), ThreatAssessment::default()).to_json();
        for secret in [
            "eyJsecret",
            "session=abc",
            "k-123",
            "tok123",
            "4111111111111111",
            "078-05-1120",
            "ada",
            "grace",
            "linus",
            "margaret",
            "barbara",
        ] {
            assert!(!json.contains(secret), "{secret} leaked: {json}");
        }
        let digits: String = json.chars().filter(char::is_ascii_digit).collect();
        assert!(!digits.contains("4111111111111111"), "a card number, grouped or encoded, leaked: {json}");
        for kept in ["sqlmap/1.7", "alice", "https://id.example.com", "acme", "r-1", "id=7", "203.0.113.9"] {
            assert!(json.contains(kept), "{kept} missing: {json}");
        }
    }

    #[test]
    fn emails_are_masked_where_they_stand() {
        assert_eq!(mask_emails("to ada@example.com, cc @ada"), "to [REDACTED:email], cc @ada");
        assert_eq!(mask_emails("<b.c+d@x.example.org>."), "<[REDACTED:email]>.");
        assert_eq!(mask_emails("a@b @ x@y.z"), "a@b @ [REDACTED:email]");
        // Letters past ASCII are part of an address, and no byte of one is cut.
        assert_eq!(mask_emails("é@é.é"), "[REDACTED:email]");
        assert_eq!(mask_emails("a@1.2.3 é@é"), "a@1.2.3 é@é");
    }

    #[test]
    fn pins_and_one_time_passwords_in_the_query_are_redacted() {
        assert_eq!(scrub_query("pin=4821&otp=482913&id=7"), "pin=[redacted]&otp=[redacted]&id=7");
        assert_eq!(scrub_query("zip=94105&spin=1"), "zip=94105&spin=1");
    }

    #[test]
    fn the_json_is_bounded_however_large_the_request() {
        let mut req = http::Request::builder().uri(format!("/{}", "p".repeat(2000)));
        for i in 0..300 {
            req = req.header(format!("x-h{i}"), "v".repeat(1000));
        }
        let mut ctx = crate::Context::new("\u{1}".repeat(5000));
        ctx.set_principal(crate::Principal::new("\u{1}".repeat(5000), "\u{1}".repeat(5000)));
        let mut req = req.body(()).unwrap();
        req.extensions_mut().insert(ctx);
        let findings: Vec<_> = (0..2000)
            .map(|_| {
                let location = super::super::finding::Location::Header("x".repeat(300));
                Finding::new(
                    super::super::finding::FindingKind::Xss,
                    location,
                    super::super::finding::Severity::High,
                    "t",
                )
            })
            .collect();
        let incident = Incident::capture(&req, None, ThreatAssessment::from_findings(findings));
        let json = incident.to_json();
        assert!(json.len() <= MAX_INCIDENT_JSON, "{}", json.len());
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["truncated"], true);
        let small =
            Incident::capture(&http::Request::get("/p").body(()).unwrap(), None, ThreatAssessment::default());
        assert!(!small.to_json().contains("truncated"));
    }

    #[test]
    fn long_values_are_clipped_on_char_boundaries() {
        let text = "é".repeat(300);
        assert!(clip(&text).len() <= MAX_VALUE);
    }
}
