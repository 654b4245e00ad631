//! Minimum necessary (HIPAA 164.502(b)): who may read a patient's record, and which fields.
//!
//! | Caller | View | Fields |
//! |---|---|---|
//! | role `clinician` | clinical (treatment) | name, date of birth; encounters with diagnoses, procedures, medications, notes; observations |
//! | role `billing` | billing (payment) | name, date of birth, member id; encounters with date, diagnosis and procedure codes only: no medications, no notes, no observations |
//! | role `patient`, subject = the patient id | own (right of access) | everything of their own record; any other patient is 404, as if it did not exist |
//! | other staff (role `billing` or `privacy_officer`), with `X-Break-Glass-Reason` | clinical (break-glass) | as a clinician; audited with the reason, alerted |
//! | anyone else, with a reason or without | none | 403 |
//!
//! Break-glass is for staff ([`STAFF`]) whose role does not cover what they need (an
//! emergency). The reason must be stated ([`MIN_REASON`] characters at least); a header
//! without one is refused (403), never silently downgraded. Patients, tokens without a role
//! and roles this table does not know cannot break the glass.

use lift::Principal;
use serde_json::{json, Value};

use crate::model::{Encounter, Observation, Patient, Record};

/// The role that sees the clinical view.
pub const CLINICIAN: &str = "clinician";
/// The role that sees the billing view.
pub const BILLING: &str = "billing";
/// The role of patients: the token's subject is the patient id.
pub const PATIENT: &str = "patient";
/// The role that may erase a patient's record where the law allows it.
pub const PRIVACY_OFFICER: &str = "privacy_officer";
/// The roles of staff: only they may break the glass (a clinician never needs to).
pub const STAFF: [&str; 3] = [CLINICIAN, BILLING, PRIVACY_OFFICER];
/// The header that states why a caller breaks the glass.
pub const BREAK_GLASS_HEADER: &str = "x-break-glass-reason";
/// The fewest characters a break-glass reason may have (without surrounding spaces).
pub const MIN_REASON: usize = 10;
/// The most characters a break-glass reason may have.
pub const MAX_REASON: usize = 500;

/// Which fields of a record a caller gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// Clinical fields, for treatment.
    Clinical,
    /// Identifiers and codes, for payment: no notes, no medications, no observations.
    Billing,
    /// The patient's own record, whole.
    Own,
}

impl View {
    /// The view's name in answers and audit entries.
    pub fn as_str(self) -> &'static str {
        match self {
            View::Clinical => "clinical",
            View::Billing => "billing",
            View::Own => "own",
        }
    }

    /// The purpose of a read in this view, as the accounting of disclosures states it.
    pub fn purpose(self) -> &'static str {
        match self {
            View::Clinical => "treatment",
            View::Billing => "payment",
            View::Own => "patient access",
        }
    }
}

/// What a caller may do with a patient's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Read it in this view.
    Allow(View),
    /// Read it in the clinical view, outside the caller's role, for the stated reason.
    BreakGlass {
        /// The reason, trimmed.
        reason: String,
    },
    /// Answer 404, exactly as for a patient that does not exist.
    NotFound,
    /// Answer 403 with this detail.
    Forbidden(&'static str),
}

/// Decides how `principal` may read the record of `patient_id`, given the break-glass
/// reason header when one was sent.
///
/// # Examples
///
/// ```
/// use health_records::access::{decide, Decision, View};
/// use lift::Principal;
///
/// let billing = Principal::new("b-1", "clinic").with_roles(["billing"]);
/// assert_eq!(decide(&billing, "p-1", None), Decision::Allow(View::Billing));
/// let ada = Principal::new("p-1", "clinic").with_roles(["patient"]);
/// assert_eq!(decide(&ada, "p-2", None), Decision::NotFound);
/// ```
pub fn decide(principal: &Principal, patient_id: &str, reason: Option<&str>) -> Decision {
    if principal.has_role(CLINICIAN) {
        return Decision::Allow(View::Clinical);
    }
    let staff = STAFF.iter().any(|role| principal.has_role(role));
    if principal.has_role(PATIENT) && !staff {
        // Another patient's record does not exist for a patient, break-glass or not.
        return if principal.subject == patient_id { Decision::Allow(View::Own) } else { Decision::NotFound };
    }
    if !staff {
        // A token that names no staff role (none at all, or one this table does not know)
        // is no one's emergency access: a reason does not make it staff.
        return Decision::Forbidden("your role may not read health records");
    }
    if let Some(reason) = reason {
        let reason = reason.trim();
        let length = reason.chars().count();
        if length < MIN_REASON {
            return Decision::Forbidden("break-glass access needs a stated reason of at least 10 characters");
        }
        if length > MAX_REASON {
            return Decision::Forbidden("the break-glass reason must be at most 500 characters");
        }
        return Decision::BreakGlass { reason: reason.to_owned() };
    }
    if principal.has_role(BILLING) {
        return Decision::Allow(View::Billing);
    }
    Decision::Forbidden(
        "your role may not read health records; state why in X-Break-Glass-Reason to break the glass",
    )
}

/// The fields of `record` that `view` may see, as the answer's JSON.
///
/// # Examples
///
/// ```
/// use health_records::access::{filter, View};
/// use health_records::model::{Encounter, Record};
///
/// let record = Record {
///     patient_id: "p-1".into(),
///     encounters: vec![Encounter { diagnoses: vec!["J45.909".into()], notes: Some("wheezing".into()), ..Default::default() }],
///     ..Default::default()
/// };
/// let billing = filter(&record, View::Billing).to_string();
/// assert!(billing.contains("J45.909") && !billing.contains("wheezing"));
/// ```
pub fn filter(record: &Record, view: View) -> Value {
    let patient = record.patient.as_ref().map(|p| patient(p, view));
    let encounters: Vec<Value> = record.encounters.iter().map(|e| encounter(e, view)).collect();
    let observations: Vec<Value> = match view {
        View::Billing => Vec::new(),
        View::Clinical | View::Own => record.observations.iter().map(observation).collect(),
    };
    json!({
        "patient_id": record.patient_id,
        "view": view.as_str(),
        "patient": patient,
        "encounters": encounters,
        "observations": observations,
    })
}

fn patient(p: &Patient, view: View) -> Value {
    let mut out = json!({ "id": p.id, "name": p.name, "date_of_birth": p.date_of_birth });
    // The member id is for claims: treatment does not need it.
    if view != View::Clinical {
        out["member_id"] = json!(p.member_id);
    }
    out
}

fn encounter(e: &Encounter, view: View) -> Value {
    let mut out = json!({ "id": e.id, "date": e.date, "diagnoses": e.diagnoses, "procedures": e.procedures });
    if view != View::Billing {
        out["medications"] = json!(e.medications);
        out["notes"] = json!(e.notes);
    }
    out
}

fn observation(o: &Observation) -> Value {
    json!({ "id": o.id, "code": o.code, "value": o.value, "unit": o.unit })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(subject: &str, roles: &[&str]) -> Principal {
        Principal::new(subject, "clinic").with_roles(roles.iter().copied())
    }

    fn record() -> Record {
        Record {
            patient_id: "p-1".into(),
            patient: Some(Patient {
                id: "p-1".into(),
                name: "Ada Lovelace".into(),
                date_of_birth: "1815-12-10".into(),
                member_id: Some("M-77".into()),
            }),
            encounters: vec![Encounter {
                id: Some("e-1".into()),
                date: Some("2026-01-02".into()),
                diagnoses: vec!["J45.909".into()],
                procedures: vec!["94010".into()],
                medications: vec!["salbutamol".into()],
                notes: Some("wheezing at night".into()),
            }],
            observations: vec![Observation {
                id: Some("o-1".into()),
                code: "8867-4".into(),
                value: "88".into(),
                unit: Some("/min".into()),
            }],
        }
    }

    #[test]
    fn each_role_gets_its_view_and_nothing_else() {
        assert_eq!(decide(&who("c-1", &["clinician"]), "p-1", None), Decision::Allow(View::Clinical));
        assert_eq!(decide(&who("b-1", &["billing"]), "p-1", None), Decision::Allow(View::Billing));
        assert_eq!(decide(&who("p-1", &["patient"]), "p-1", None), Decision::Allow(View::Own));
        assert_eq!(decide(&who("p-2", &["patient"]), "p-1", None), Decision::NotFound);
        assert!(matches!(decide(&who("u-1", &[]), "p-1", None), Decision::Forbidden(_)));
        assert!(matches!(decide(&who("u-1", &["auditor"]), "p-1", None), Decision::Forbidden(_)));
    }

    #[test]
    fn break_glass_needs_a_reason_and_a_staff_role_and_is_not_for_patients() {
        let reason = "unconscious in the emergency room";
        assert_eq!(
            decide(&who("b-1", &["billing"]), "p-1", Some(reason)),
            Decision::BreakGlass { reason: reason.into() }
        );
        for empty in ["", "   ", "because"] {
            assert!(matches!(decide(&who("b-1", &["billing"]), "p-1", Some(empty)), Decision::Forbidden(_)));
            assert!(matches!(decide(&who("u-1", &[]), "p-1", Some(empty)), Decision::Forbidden(_)));
        }
        assert!(matches!(decide(&who("u-1", &[]), "p-1", Some(&"x".repeat(501))), Decision::Forbidden(_)));
        assert_eq!(
            decide(&who("o-1", &["privacy_officer"]), "p-1", Some(reason)),
            Decision::BreakGlass { reason: reason.into() }
        );
        // A reason does not make staff of a token without a role, or with one the table
        // does not know.
        for roles in [&[][..], &["receptionist"], &["auditor", "reader"]] {
            assert_eq!(
                decide(&who("u-1", roles), "p-1", Some(reason)),
                Decision::Forbidden("your role may not read health records"),
                "{roles:?}"
            );
        }
        // A patient breaking the glass into another record still finds nothing.
        assert_eq!(decide(&who("p-2", &["patient"]), "p-1", Some(reason)), Decision::NotFound);
    }

    #[test]
    fn billing_never_sees_notes_medications_or_observations() {
        let text = filter(&record(), View::Billing).to_string();
        for hidden in ["wheezing", "salbutamol", "8867-4", "\"notes\"", "\"medications\""] {
            assert!(!text.contains(hidden), "billing sees {hidden}: {text}");
        }
        for shown in ["J45.909", "94010", "M-77", "Ada Lovelace"] {
            assert!(text.contains(shown), "billing misses {shown}: {text}");
        }
    }

    #[test]
    fn clinicians_see_clinical_fields_but_not_the_member_id() {
        let text = filter(&record(), View::Clinical).to_string();
        for shown in ["wheezing", "salbutamol", "8867-4", "J45.909", "Ada Lovelace"] {
            assert!(text.contains(shown), "{text}");
        }
        assert!(!text.contains("M-77"), "{text}");
        let own = filter(&record(), View::Own).to_string();
        assert!(own.contains("M-77") && own.contains("wheezing"), "{own}");
    }
}
