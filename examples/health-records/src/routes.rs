//! The HTTP API.
//!
//! | Method | Path | Scope | Role | |
//! |---|---|---|---|---|
//! | POST | `/patients` | `records:write` | `clinician` | register a patient |
//! | POST | `/patients/:id/records` | `records:write` | `clinician` | add an encounter to the record |
//! | POST | `/patients/:id/observations` | `records:write` | `clinician` | add an observation |
//! | GET | `/patients/:id/records` | `records:read` | see [`crate::access`] | the record, minimum necessary |
//! | GET | `/patients/:id/disclosures` | `records:read` | the patient, or `privacy_officer` | who read the record, when and why (HIPAA 164.528) |
//! | DELETE | `/patients/:id` | `records:write` | `privacy_officer` | erase the record where retention allows it |
//!
//! Callers authenticate with a bearer JWT; the tenant is the token's. A patient's token
//! carries the role `patient` and the patient id as its subject.
//!
//! Every read of a record is audited (`records.read`, class `phi`) with its view, its
//! purpose and, for break-glass, the stated reason (masked: detected identifiers are
//! redacted). A break-glass read also runs the break-glass [`Playbook`]: a
//! `threat.incident` audit entry and, when configured, a webhook alert.

use http::StatusCode;
use lift::middleware::auth::{require_role, require_scope};
use lift::security::audit::{AuditHandle, AuditQuery, AuditTrail, Outcome};
use lift::security::threat::{Incident, Playbook};
use lift::{json_response, read_json, App, Context, Error, Principal, Request, Response, RouteGroup};

use crate::access::{self, Decision, View, BREAK_GLASS_HEADER, CLINICIAN, PATIENT, PRIVACY_OFFICER};
use crate::model::{valid_id, Encounter, Invalid, Observation, Patient};
use crate::store::{RecordStore, StoreError};

/// The scope needed to read records and disclosures.
pub const READ_SCOPE: &str = "records:read";
/// The scope needed to write records and erase them.
pub const WRITE_SCOPE: &str = "records:write";
/// The realm of the `WWW-Authenticate` challenges.
pub const REALM: &str = "health-records";
/// The audit action of a record read (the accounting of disclosures lists these).
pub const READ_ACTION: &str = "records.read";
/// The audit action of a record write.
pub const WRITE_ACTION: &str = "records.write";

/// What every handler needs.
#[derive(Debug, Clone)]
pub struct HealthRecords {
    /// The store.
    pub store: RecordStore,
    /// The audit trail the accounting of disclosures reads (the one the stack's audit
    /// layer writes). Without it, `GET /patients/:id/disclosures` answers 503.
    pub audit: Option<AuditTrail>,
    /// What a break-glass read sets off: an audited incident, a webhook alert.
    pub break_glass: Playbook,
}

/// The routes inside `stack` (see [`Config::stack`](crate::Config::stack)): each group
/// behind its scope (and role) check, then the stack's per-route layers (compliance, audit,
/// threat detection, then idempotency on POST innermost), then its app-wide layers.
pub fn mount(records: HealthRecords, stack: lift::Stack) -> App {
    let writes = RouteGroup::new("/patients")
        .post("/", register_patient)
        .post("/:id/records", add_encounter)
        .post("/:id/observations", add_observation);
    let reads =
        RouteGroup::new("/patients").get("/:id/records", read_record).get("/:id/disclosures", disclosures);
    let erasure = RouteGroup::new("/patients").delete("/:id", erase_patient);
    let app = App::new()
        .group(stack.guard(writes, require_scope(WRITE_SCOPE)).layer(require_role(CLINICIAN)))
        .group(stack.guard(reads, require_scope(READ_SCOPE)))
        .group(stack.guard(erasure, require_scope(WRITE_SCOPE)).layer(require_role(PRIVACY_OFFICER)))
        .with_state(records);
    stack.apply(app)
}

/// The routes behind an empty stack: authentication, audit and the rest come from
/// outside (the compliance suites wrap it in theirs).
pub fn service(records: HealthRecords) -> App {
    match lift::stack().build() {
        Ok(stack) => mount(records, stack),
        Err(err) => unreachable!("an empty stack builds: {err}"),
    }
}

/// The JWT layer for the API: tokens from `issuer`, realm `health-records`, `/health*`
/// exempt.
pub fn jwt_layer(
    issuer: lift::middleware::auth::Issuer,
) -> Result<lift::middleware::auth::JwtLayer, lift::middleware::auth::ConfigError> {
    lift::middleware::auth::JwtLayer::builder().issuer(issuer).realm(REALM).exempt_path("/health*").build()
}

fn principal(req: &Request) -> Result<Principal, Error> {
    Context::of(req)
        .and_then(Context::principal)
        .cloned()
        .ok_or_else(|| Error::unauthorized("Bearer").with_detail("authentication is required"))
}

fn patient_id(req: &Request) -> Result<String, Error> {
    let id = lift::path_param(req, "id").unwrap_or_default();
    if valid_id(id) {
        Ok(id.to_owned())
    } else {
        Err(not_found())
    }
}

fn not_found() -> Error {
    Error::not_found().with_detail("patient not found")
}

fn invalid(err: Invalid) -> Error {
    Error::validation(err.field, err.detail)
}

fn store_error(err: StoreError) -> Error {
    match err {
        StoreError::NotFound => not_found(),
        StoreError::Duplicate => Error::conflict("a record with this id already exists"),
        StoreError::Retained { until } => {
            Error::conflict(format!("the record is under retention until {until} and cannot be erased yet"))
        }
        err @ StoreError::Unavailable(_) => Error::service_unavailable(1)
            .with_detail("the records store is busy; retry later")
            .with_source(err),
        other => Error::internal(other),
    }
}

fn audit(req: &Request, action: &str, patient: &str) -> Option<AuditHandle> {
    let handle = AuditHandle::of(req)?.clone();
    handle.action(action).resource(format!("patient/{patient}")).data_class("phi");
    Some(handle)
}

fn created(body: serde_json::Value) -> Response {
    json_response(StatusCode::CREATED, &body)
}

async fn register_patient(req: Request) -> Result<Response, Error> {
    let records = lift::app::state::<HealthRecords>(&req)?;
    let tenant = principal(&req)?.tenant;
    let patient: Patient = read_json(&req)?;
    patient.validate().map_err(invalid)?;
    audit(&req, WRITE_ACTION, &patient.id);
    records.store.register(&tenant, &patient).await.map_err(store_error)?;
    Ok(created(serde_json::json!({ "patient_id": patient.id })))
}

async fn add_encounter(req: Request) -> Result<Response, Error> {
    let records = lift::app::state::<HealthRecords>(&req)?;
    let tenant = principal(&req)?.tenant;
    let patient = patient_id(&req)?;
    let encounter: Encounter = read_json(&req)?;
    encounter.validate().map_err(invalid)?;
    audit(&req, WRITE_ACTION, &patient);
    let id = records.store.add_encounter(&tenant, &patient, encounter).await.map_err(store_error)?;
    Ok(created(serde_json::json!({ "patient_id": patient, "encounter_id": id })))
}

async fn add_observation(req: Request) -> Result<Response, Error> {
    let records = lift::app::state::<HealthRecords>(&req)?;
    let tenant = principal(&req)?.tenant;
    let patient = patient_id(&req)?;
    let observation: Observation = read_json(&req)?;
    observation.validate().map_err(invalid)?;
    audit(&req, WRITE_ACTION, &patient);
    let id = records.store.add_observation(&tenant, &patient, observation).await.map_err(store_error)?;
    Ok(created(serde_json::json!({ "patient_id": patient, "observation_id": id })))
}

/// A reason as it may be kept in the audit trail: detected identifiers redacted.
fn masked_reason(reason: &str) -> String {
    use lift::security::protection::{DataClass, HashKey, MaskStrategy, Policy};
    // Redacted, not hashed: the trail is kept for years and nothing joins on a reason, and
    // a hash of an email is found again by hashing a list of emails. The random key is
    // there because a policy needs one; no class of this policy hashes.
    static POLICY: std::sync::LazyLock<Policy> = std::sync::LazyLock::new(|| {
        Policy::new(HashKey::random()).strategy(DataClass::Email, MaskStrategy::Redact)
    });
    lift::security::protection::mask_spans(reason, &POLICY).unwrap_or_else(|| reason.to_owned())
}

async fn read_record(req: Request) -> Result<Response, Error> {
    let records = lift::app::state::<HealthRecords>(&req)?;
    let principal = principal(&req)?;
    let patient = patient_id(&req)?;
    let reason =
        req.headers().get(BREAK_GLASS_HEADER).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let handle = audit(&req, READ_ACTION, &patient);
    let (view, reason) = match access::decide(&principal, &patient, reason.as_deref()) {
        Decision::Allow(view) => (view, None),
        Decision::BreakGlass { reason } => (View::Clinical, Some(masked_reason(&reason))),
        Decision::NotFound => return Err(not_found()),
        Decision::Forbidden(detail) => return Err(Error::forbidden(detail)),
    };
    let record = records.store.record(&principal.tenant, &patient).await.map_err(store_error)?;
    let detail = serde_json::json!({
        "view": view.as_str(),
        "purpose": view.purpose(),
        "break_glass": reason.is_some(),
        "reason": reason,
    });
    if let Some(handle) = &handle {
        handle.detail(detail.to_string());
    }
    if reason.is_some() {
        break_glass(&records.break_glass, &req, &principal, &patient).await;
    }
    let mut body = access::filter(&record, view);
    body["break_glass"] = serde_json::json!(reason.is_some());
    Ok(json_response(StatusCode::OK, &body))
}

/// Raises the break-glass alert: an incident (no headers, no body: the reason stays in the
/// read's own audit entry) through the playbook.
async fn break_glass(playbook: &Playbook, req: &Request, principal: &Principal, patient: &str) {
    tracing::warn!(tenant = %principal.tenant, actor = %principal.subject, %patient, "break-glass access to a health record");
    let incident = Incident {
        request_id: Context::of(req).map(|c| c.request_id().to_owned()).unwrap_or_default(),
        at_ms: now_ms(),
        method: req.method().to_string(),
        path: format!("/patients/{patient}/records"),
        query: None,
        headers: Vec::new(),
        client_ip: None,
        principal: Some(principal.subject.clone()),
        issuer: principal.issuer.clone(),
        tenant: Some(principal.tenant.clone()),
        score: 0,
        findings: Vec::new(),
        actions: vec!["break_glass"],
    };
    playbook.run(incident).await;
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// One read of a record, as the accounting of disclosures lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Disclosure {
    /// When, RFC 3339.
    pub at: String,
    /// Who read it (the token's subject).
    pub actor: String,
    /// Why: the purpose of the reader's role, or `break-glass`.
    pub purpose: String,
    /// The fields the reader saw.
    pub view: String,
    /// Whether it was a break-glass read.
    pub break_glass: bool,
    /// The stated reason of a break-glass read.
    pub reason: Option<String>,
}

async fn disclosures(req: Request) -> Result<Response, Error> {
    let records = lift::app::state::<HealthRecords>(&req)?;
    let principal = principal(&req)?;
    let patient = patient_id(&req)?;
    if !principal.has_role(PRIVACY_OFFICER) {
        if !principal.has_role(PATIENT) {
            return Err(Error::forbidden("only the patient or a privacy officer may list disclosures"));
        }
        if principal.subject != patient {
            return Err(not_found());
        }
    }
    let scope = DisclosureScope::from_query(req.uri().query())?;
    audit(&req, "records.disclosures", &patient);
    let Some(trail) = &records.audit else {
        return Err(Error::service_unavailable(5).with_detail("the audit trail is not configured"));
    };
    let entries =
        trail.query(AuditQuery::tenant(&principal.tenant).action(READ_ACTION)).await.map_err(|e| {
            Error::service_unavailable(1).with_detail("the audit trail is busy; retry later").with_source(e)
        })?;
    let resource = format!("patient/{patient}");
    let list: Vec<(u64, Disclosure)> = entries
        .into_iter()
        .map(|sealed| sealed.entry)
        .filter(|e| e.resource == resource && e.outcome == Outcome::Success)
        .map(|e| {
            let detail: serde_json::Value = serde_json::from_str(&e.detail).unwrap_or_default();
            let break_glass = detail["break_glass"].as_bool().unwrap_or(false);
            let at_ms = e.at_ms;
            (
                at_ms,
                Disclosure {
                    at: crate::store::rfc3339_ms(at_ms),
                    actor: e.actor,
                    purpose: if break_glass {
                        "break-glass".to_owned()
                    } else {
                        detail["purpose"].as_str().unwrap_or("unknown").to_owned()
                    },
                    view: detail["view"].as_str().unwrap_or("unknown").to_owned(),
                    break_glass,
                    reason: detail["reason"].as_str().map(str::to_owned),
                },
            )
        })
        .collect();
    let (list, excluded) = scope.apply(list, std::time::SystemTime::now());
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({
            "patient_id": patient,
            "scope": scope.as_str(),
            "basis": scope.basis(),
            "disclosures": list,
            "excluded": excluded,
        }),
    ))
}

/// Which reads `GET /patients/:id/disclosures` lists (`?scope=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisclosureScope {
    /// Every successful read of the record, with its purpose (an access report): the
    /// default.
    Access,
    /// The accounting of disclosures of HIPAA 164.528: reads for treatment, payment or
    /// health care operations (164.528(a)(1)(i)) and the patient's own access
    /// (164.528(a)(1)(ii)) are excluded, as are reads older than six years
    /// (164.528(a)(3)). Break-glass reads, made outside the reader's role, are listed.
    Accounting,
}

/// Six years, the span an accounting of disclosures covers (164.528(a)(3)), in ms.
const SIX_YEARS_MS: u64 = 6 * 36_525 * 24 * 3_600 * 10;

impl DisclosureScope {
    /// Reads `scope=` from a query string; absent is [`DisclosureScope::Access`].
    ///
    /// # Errors
    /// A 400 naming `scope` when its value is neither `access` nor `accounting`.
    pub fn from_query(query: Option<&str>) -> Result<Self, Error> {
        let value = query
            .unwrap_or("")
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .find_map(|(k, v)| (k == "scope").then_some(v));
        match value {
            None | Some("access") => Ok(Self::Access),
            Some("accounting") => Ok(Self::Accounting),
            Some(_) => Err(Error::validation("scope", "must be `access` or `accounting`")),
        }
    }

    /// The name in answers.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Access => "access",
            Self::Accounting => "accounting",
        }
    }

    /// What the list is, in one sentence, for the answer.
    pub fn basis(self) -> &'static str {
        match self {
            Self::Access => "every read of the record, with its purpose (access report)",
            Self::Accounting => {
                "HIPAA 164.528: disclosures of the last six years, excluding treatment, payment, \
                 health care operations and the patient's own access"
            }
        }
    }

    /// Keeps the reads this scope lists (each with its time, epoch ms), and counts the
    /// excluded ones by reason (the count only: who read for treatment is not an
    /// accounting's to show).
    pub fn apply(
        self,
        list: Vec<(u64, Disclosure)>,
        now: std::time::SystemTime,
    ) -> (Vec<Disclosure>, std::collections::BTreeMap<String, u64>) {
        let mut excluded = std::collections::BTreeMap::new();
        if self == Self::Access {
            return (list.into_iter().map(|(_, d)| d).collect(), excluded);
        }
        let now_ms = now.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        let kept = list
            .into_iter()
            .filter(|(at_ms, d)| {
                let reason = if !d.break_glass
                    && ["treatment", "payment", "operations", View::Own.purpose()]
                        .contains(&d.purpose.as_str())
                {
                    Some(d.purpose.clone())
                } else if now_ms.saturating_sub(*at_ms) > SIX_YEARS_MS {
                    Some("older than six years".to_owned())
                } else {
                    None
                };
                if let Some(reason) = reason {
                    *excluded.entry(reason).or_insert(0) += 1;
                    return false;
                }
                true
            })
            .map(|(_, d)| d)
            .collect();
        (kept, excluded)
    }
}

async fn erase_patient(req: Request) -> Result<Response, Error> {
    let records = lift::app::state::<HealthRecords>(&req)?;
    let tenant = principal(&req)?.tenant;
    let patient = patient_id(&req)?;
    audit(&req, "records.erase", &patient);
    let erased =
        records.store.erase(&tenant, &patient, std::time::SystemTime::now()).await.map_err(store_error)?;
    Ok(json_response(StatusCode::OK, &serde_json::json!({ "patient_id": patient, "items_erased": erased })))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;

    fn read(purpose: &str, break_glass: bool) -> Disclosure {
        Disclosure {
            at: String::new(),
            actor: "a".into(),
            purpose: purpose.into(),
            view: "clinical".into(),
            break_glass,
            reason: None,
        }
    }

    #[test]
    fn the_accounting_covers_six_years_and_the_access_report_everything() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000_000);
        let now_ms = 2_000_000_000_000;
        let day = 86_400_000;
        let list = vec![
            (now_ms - 10 * day, read("break-glass", true)),
            // Six years and a day ago: out of the accounting's span.
            (now_ms - SIX_YEARS_MS - day, read("break-glass", true)),
            // Five years and 364 days ago: in it.
            (now_ms - SIX_YEARS_MS + day, read("unknown", false)),
            (now_ms - day, read("operations", false)),
        ];
        let (kept, excluded) = DisclosureScope::Accounting.apply(list.clone(), now);
        assert_eq!(kept.len(), 2, "{kept:?}");
        assert!(kept.iter().any(|d| d.purpose == "unknown"), "an unknown purpose is disclosed, not excused");
        assert_eq!(excluded.get("older than six years"), Some(&1));
        assert_eq!(excluded.get("operations"), Some(&1));
        let (all, none) = DisclosureScope::Access.apply(list, now);
        assert_eq!((all.len(), none.len()), (4, 0));
    }

    #[test]
    fn the_scope_is_read_by_name_and_a_misspelling_is_refused() {
        assert_eq!(DisclosureScope::from_query(None).unwrap(), DisclosureScope::Access);
        assert_eq!(
            DisclosureScope::from_query(Some("a=1&scope=accounting")).unwrap(),
            DisclosureScope::Accounting
        );
        assert!(DisclosureScope::from_query(Some("scope=Accounting")).is_err());
    }
}
