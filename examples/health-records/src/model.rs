//! The records: patients (demographics), encounters and observations, as callers send them
//! and as they are kept (sealed) in the store.

use serde::{Deserialize, Serialize};

/// The longest free text accepted (notes, names, values).
pub const MAX_TEXT: usize = 4_000;
/// The most codes one list may hold (diagnoses, procedures, medications).
pub const MAX_CODES: usize = 50;

/// Whether an id is acceptable: 1–64 ASCII letters, digits, `-` or `_`. Ids are stored and
/// logged in clear (they key the records, the audit trail and erasure), so nothing else.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A request body that breaks a rule: the field and why (never the value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// The field, as a JSON pointer.
    pub field: &'static str,
    /// The rule it breaks.
    pub detail: &'static str,
}

fn invalid(field: &'static str, detail: &'static str) -> Invalid {
    Invalid { field, detail }
}

/// A patient's demographics (PHI: the name and date of birth), `POST /patients`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Patient {
    /// The patient id (the tenant's medical record number).
    pub id: String,
    /// The patient's name.
    pub name: String,
    /// The date of birth, `YYYY-MM-DD`.
    pub date_of_birth: String,
    /// The insurance member id billing claims with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_id: Option<String>,
}

impl Patient {
    /// Checks the fields.
    pub fn validate(&self) -> Result<(), Invalid> {
        if !valid_id(&self.id) {
            return Err(invalid("/id", "the id must be 1 to 64 letters, digits, - or _"));
        }
        if self.name.trim().is_empty() || self.name.chars().count() > 200 {
            return Err(invalid("/name", "the name must be 1 to 200 characters"));
        }
        let format = time::macros::format_description!("[year]-[month]-[day]");
        if time::Date::parse(&self.date_of_birth, format).is_err() {
            return Err(invalid("/date_of_birth", "the date of birth must be a date, YYYY-MM-DD"));
        }
        if self.member_id.as_deref().is_some_and(|m| !valid_id(m)) {
            return Err(invalid("/member_id", "the member id must be 1 to 64 letters, digits, - or _"));
        }
        Ok(())
    }
}

/// An encounter (a visit) of a patient, `POST /patients/:id/records`: diagnoses and
/// procedures as codes (ICD-10, CPT), medications and the clinician's notes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Encounter {
    /// The encounter id (generated when absent).
    #[serde(default)]
    pub id: Option<String>,
    /// The date of service, `YYYY-MM-DD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    /// Diagnosis codes (ICD-10).
    #[serde(default)]
    pub diagnoses: Vec<String>,
    /// Procedure codes (CPT).
    #[serde(default)]
    pub procedures: Vec<String>,
    /// Medications prescribed or given.
    #[serde(default)]
    pub medications: Vec<String>,
    /// The clinician's notes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
}

impl Encounter {
    /// Checks the fields.
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.id.as_deref().is_some_and(|id| !valid_id(id)) {
            return Err(invalid("/id", "the id must be 1 to 64 letters, digits, - or _"));
        }
        if let Some(date) = &self.date {
            let format = time::macros::format_description!("[year]-[month]-[day]");
            if time::Date::parse(date, format).is_err() {
                return Err(invalid("/date", "the date must be a date, YYYY-MM-DD"));
            }
        }
        for (field, list) in [
            ("/diagnoses", &self.diagnoses),
            ("/procedures", &self.procedures),
            ("/medications", &self.medications),
        ] {
            if list.len() > MAX_CODES || list.iter().any(|c| c.trim().is_empty() || c.chars().count() > 100) {
                return Err(invalid(field, "at most 50 entries of 1 to 100 characters"));
            }
        }
        if self.notes.as_deref().is_some_and(|n| n.chars().count() > MAX_TEXT) {
            return Err(invalid("/notes", "the notes must be at most 4000 characters"));
        }
        Ok(())
    }
}

/// An observation (a lab result, a vital sign), `POST /patients/:id/observations`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Observation {
    /// The observation id (generated when absent).
    #[serde(default)]
    pub id: Option<String>,
    /// What was observed (a LOINC code).
    pub code: String,
    /// The value.
    pub value: String,
    /// Its unit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
}

impl Observation {
    /// Checks the fields.
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.id.as_deref().is_some_and(|id| !valid_id(id)) {
            return Err(invalid("/id", "the id must be 1 to 64 letters, digits, - or _"));
        }
        if self.code.trim().is_empty() || self.code.chars().count() > 100 {
            return Err(invalid("/code", "the code must be 1 to 100 characters"));
        }
        if self.value.is_empty() || self.value.chars().count() > MAX_TEXT {
            return Err(invalid("/value", "the value must be 1 to 4000 characters"));
        }
        if self.unit.as_deref().is_some_and(|u| u.chars().count() > 50) {
            return Err(invalid("/unit", "the unit must be at most 50 characters"));
        }
        Ok(())
    }
}

/// A patient's whole record as stored, decrypted: what [`crate::access::View`] filters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The patient id.
    pub patient_id: String,
    /// The demographics, when the patient was registered.
    pub patient: Option<Patient>,
    /// The encounters, oldest first (with their ids).
    pub encounters: Vec<Encounter>,
    /// The observations (with their ids).
    pub observations: Vec<Observation>,
}

impl Record {
    /// Whether anything is stored for the patient.
    pub fn is_empty(&self) -> bool {
        self.patient.is_none() && self.encounters.is_empty() && self.observations.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_plain() {
        assert!(valid_id("p-1") && valid_id("MRN_0042"));
        assert!(!valid_id("") && !valid_id("a b") && !valid_id("p/1") && !valid_id(&"x".repeat(65)));
    }

    #[test]
    fn bad_fields_are_named_not_echoed() {
        let p = Patient {
            id: "p-1".into(),
            name: "Ada".into(),
            date_of_birth: "1815-13-10".into(),
            member_id: None,
        };
        assert_eq!(p.validate().unwrap_err().field, "/date_of_birth");
        let ok = Patient { date_of_birth: "1815-12-10".into(), ..p };
        assert!(ok.validate().is_ok());
        let e = Encounter { diagnoses: vec![" ".into()], ..Encounter::default() };
        assert_eq!(e.validate().unwrap_err().field, "/diagnoses");
        let o = Observation { code: "8867-4".into(), value: String::new(), ..Observation::default() };
        assert_eq!(o.validate().unwrap_err().field, "/value");
    }
}
