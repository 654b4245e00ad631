//! Minimum necessary, patients' own records, break-glass and the accounting of disclosures,
//! through the whole stack (real JWTs, DynamoDB Local, the KMS mock, a webhook).

mod support;

use http::{Method, StatusCode};
use lift::security::audit::Outcome;
use support::{env, json, patient_id, text, Caller, Env, BILLING, CLINICIAN, OFFICER};

const NOTES: &str = "reports night-time wheezing since moving flats";

/// A patient with one encounter (diagnosis, procedure, medication, notes) and one observation.
async fn seeded(env: &Env, tenant: &str) -> String {
    let id = patient_id();
    let patient = serde_json::json!({ "id": id, "name": "Ada Lovelace", "date_of_birth": "1815-12-10", "member_id": "M-4471" });
    assert_eq!(env.register(tenant, patient).await.status(), StatusCode::CREATED);
    let encounter = serde_json::json!({
        "date": "2026-03-01", "diagnoses": ["J45.909"], "procedures": ["94010"],
        "medications": ["salbutamol"], "notes": NOTES,
    });
    assert_eq!(env.encounter(tenant, &id, encounter).await.status(), StatusCode::CREATED);
    let observation = serde_json::json!({ "code": "8867-4", "value": "88", "unit": "/min" });
    let res = env
        .send(
            Method::POST,
            &format!("/patients/{id}/observations"),
            Some((tenant, CLINICIAN)),
            Some(observation),
            &[],
        )
        .await;
    assert_eq!(res.status(), StatusCode::CREATED, "{}", text(&res));
    id
}

#[tokio::test]
async fn billing_sees_identifiers_and_codes_but_never_notes() {
    let env = env().await;
    let id = seeded(&env, "clinic").await;
    let res = env.read("clinic", BILLING, &id, &[]).await;
    assert_eq!(res.status(), StatusCode::OK, "{}", text(&res));
    let body = text(&res);
    for shown in ["J45.909", "94010", "M-4471", "Ada Lovelace", "1815-12-10"] {
        assert!(body.contains(shown), "billing misses {shown}: {body}");
    }
    for hidden in [NOTES, "salbutamol", "8867-4", "\"notes\""] {
        assert!(!body.contains(hidden), "billing sees {hidden}: {body}");
    }
    assert_eq!(json(&res)["view"], "billing");
    // The clinician sees the clinical fields, not the insurance member id.
    let res = env.read("clinic", CLINICIAN, &id, &[]).await;
    let body = text(&res);
    assert!(body.contains(NOTES) && body.contains("salbutamol") && body.contains("8867-4"), "{body}");
    assert!(!body.contains("M-4471"), "{body}");
}

#[tokio::test]
async fn a_patient_reads_their_own_record_and_no_other_which_reads_as_missing() {
    let env = env().await;
    let mine = seeded(&env, "clinic").await;
    let theirs = seeded(&env, "clinic").await;
    let own = env.read("clinic", Caller::Patient(&mine), &mine, &[]).await;
    assert_eq!(own.status(), StatusCode::OK);
    assert!(text(&own).contains(NOTES), "a patient sees their whole record");
    let other = env.read("clinic", Caller::Patient(&mine), &theirs, &[]).await;
    let missing = env.read("clinic", Caller::Patient(&mine), &patient_id(), &[]).await;
    assert_eq!(other.status(), StatusCode::NOT_FOUND);
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    // Same answer whether the other patient exists or not: nothing leaks their existence.
    let (a, b) = (json(&other), json(&missing));
    for field in ["type", "title", "status", "detail"] {
        assert_eq!(a[field], b[field], "{field}: {a} vs {b}");
    }
    assert!(!text(&other).contains(&theirs) && !text(&other).contains(NOTES));
    // Not even with a break-glass reason.
    let glass = [("x-break-glass-reason", "I am sure they would not mind at all")];
    let res = env.read("clinic", Caller::Patient(&mine), &theirs, &glass).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    // Nor their disclosures.
    let res = env
        .send(
            Method::GET,
            &format!("/patients/{theirs}/disclosures"),
            Some(("clinic", Caller::Patient(&mine))),
            None,
            &[],
        )
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn tenants_and_roles_without_a_view_get_nothing() {
    let env = env().await;
    let id = seeded(&env, "clinic").await;
    // Another tenant's clinician: as if the patient did not exist.
    let res = env.read("other-clinic", CLINICIAN, &id, &[]).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    // A role with no view: 403, nothing of the record.
    let res = env.read("clinic", Caller::Staff("aud-1", &["auditor"]), &id, &[]).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(!text(&res).contains(NOTES) && !text(&res).contains("J45"));
    // No token: 401.
    let res = env.send(Method::GET, &format!("/patients/{id}/records"), None, None, &[]).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    // Billing cannot write records.
    let body = serde_json::json!({ "diagnoses": ["Z00.00"] });
    let res = env
        .send(Method::POST, &format!("/patients/{id}/records"), Some(("clinic", BILLING)), Some(body), &[])
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn break_glass_without_a_stated_reason_is_refused_and_raises_nothing() {
    let env = env().await;
    let id = seeded(&env, "clinic").await;
    for caller in [BILLING, Caller::Staff("porter-1", &["auditor"])] {
        for reason in ["", "   ", "urgent"] {
            let res = env.read("clinic", caller, &id, &[("x-break-glass-reason", reason)]).await;
            assert_eq!(res.status(), StatusCode::FORBIDDEN, "{caller:?} with {reason:?}");
            assert!(!text(&res).contains(NOTES), "{}", text(&res));
        }
    }
    assert!(env.alerts().await.is_empty(), "a refused break-glass alerted");
    let incidents = env.audit("clinic").await.into_iter().filter(|e| e.action == "threat.incident").count();
    assert_eq!(incidents, 0);
}

#[tokio::test]
async fn break_glass_is_for_staff_roles_a_reason_makes_no_one_staff() {
    let env = env().await;
    let id = seeded(&env, "clinic").await;
    let glass = [("x-break-glass-reason", "patient unconscious in the emergency room")];
    // A token with records:read and no role, or a role the access table does not know.
    for caller in [Caller::Staff("svc-1", &[]), Caller::Staff("desk-1", &["receptionist"])] {
        let res = env.read("clinic", caller, &id, &glass).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{caller:?}: {}", text(&res));
        assert!(!text(&res).contains(NOTES) && !text(&res).contains("J45"), "{}", text(&res));
    }
    assert!(env.alerts().await.is_empty(), "a refused break-glass alerted");
    let entries = env.audit("clinic").await;
    assert!(!entries.iter().any(|e| e.action == "threat.incident"), "{entries:?}");
    for actor in ["svc-1", "desk-1"] {
        let read = entries.iter().find(|e| e.actor == actor).expect("the refused read is audited");
        assert_eq!((read.action.as_str(), read.outcome), ("records.read", Outcome::Denied));
    }
    // Staff whose role has no view still break the glass with the same reason.
    let res = env.read("clinic", OFFICER, &id, &glass).await;
    assert_eq!(res.status(), StatusCode::OK, "{}", text(&res));
    assert_eq!(json(&res)["break_glass"], true);
    assert!(text(&res).contains(NOTES), "break-glass gives the clinical view");
}

#[tokio::test]
async fn break_glass_with_a_reason_is_allowed_audited_alerted_and_disclosed() {
    let env = env().await;
    let id = seeded(&env, "clinic").await;
    let reason = "patient unconscious in the emergency room";
    let res = env.read("clinic", BILLING, &id, &[("x-break-glass-reason", reason)]).await;
    assert_eq!(res.status(), StatusCode::OK, "{}", text(&res));
    assert!(text(&res).contains(NOTES), "break-glass gives the clinical view");
    assert_eq!(json(&res)["break_glass"], true);

    // Audited: the read, with the reason, and an incident.
    let entries = env.audit("clinic").await;
    let read = entries
        .iter()
        .find(|e| e.action == "records.read" && e.resource == format!("patient/{id}"))
        .expect("the read is audited");
    assert_eq!(read.actor, "clerk-1");
    assert!(read.data_classes.iter().any(|c| c == "phi"));
    let detail: serde_json::Value = serde_json::from_str(&read.detail).unwrap();
    assert_eq!((detail["break_glass"].as_bool(), detail["reason"].as_str()), (Some(true), Some(reason)));
    assert!(entries.iter().any(|e| e.action == "threat.incident" && e.actor == "clerk-1"));

    // Alerted: one webhook call, naming who and which record, carrying no PHI nor token.
    let alerts = env.alerts().await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["principal"], "clerk-1");
    assert_eq!(alerts[0]["path"], format!("/patients/{id}/records"));
    let alert = alerts[0].to_string();
    assert!(!alert.contains(NOTES) && !alert.contains("Ada") && !alert.contains("Bearer"), "{alert}");

    // Disclosed to the patient: who, when, why.
    let res = env
        .send(
            Method::GET,
            &format!("/patients/{id}/disclosures"),
            Some(("clinic", Caller::Patient(&id))),
            None,
            &[],
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK, "{}", text(&res));
    let list = json(&res)["disclosures"].as_array().cloned().unwrap();
    let glass: Vec<_> = list.iter().filter(|d| d["break_glass"] == true).collect();
    assert_eq!(glass.len(), 1, "{list:?}");
    assert_eq!(glass[0]["actor"], "clerk-1");
    assert_eq!(glass[0]["reason"], reason);
    assert_eq!(glass[0]["purpose"], "break-glass");
    assert!(glass[0]["at"].as_str().is_some_and(|at| at.starts_with("20")), "{:?}", glass[0]);
}

#[tokio::test]
async fn the_accounting_of_disclosures_lists_every_read_with_its_purpose_and_only_reads() {
    let env = env().await;
    let id = seeded(&env, "clinic").await;
    let other = seeded(&env, "clinic").await;
    assert_eq!(env.read("clinic", CLINICIAN, &id, &[]).await.status(), StatusCode::OK);
    assert_eq!(env.read("clinic", BILLING, &id, &[]).await.status(), StatusCode::OK);
    assert_eq!(env.read("clinic", CLINICIAN, &other, &[]).await.status(), StatusCode::OK);
    // A refused read disclosed nothing.
    let refused = env.read("clinic", Caller::Staff("aud-1", &["auditor"]), &id, &[]).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);

    let uri = format!("/patients/{id}/disclosures");
    let res = env.send(Method::GET, &uri, Some(("clinic", Caller::Patient(&id))), None, &[]).await;
    assert_eq!(res.status(), StatusCode::OK, "{}", text(&res));
    let list = json(&res)["disclosures"].as_array().cloned().unwrap();
    let seen: Vec<(String, String)> = list
        .iter()
        .map(|d| (d["actor"].as_str().unwrap().to_owned(), d["purpose"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(
        seen,
        [("dr-house".to_owned(), "treatment".to_owned()), ("clerk-1".to_owned(), "payment".to_owned())]
    );
    assert!(!text(&res).contains("J45") && !text(&res).contains(NOTES), "no PHI in the accounting");
    // A privacy officer may list it; a clinician may not.
    assert_eq!(
        env.send(Method::GET, &uri, Some(("clinic", OFFICER)), None, &[]).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        env.send(Method::GET, &uri, Some(("clinic", CLINICIAN)), None, &[]).await.status(),
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn the_164_528_accounting_excludes_treatment_payment_and_own_access_but_not_break_glass() {
    let env = env().await;
    let id = seeded(&env, "clinic").await;
    assert_eq!(env.read("clinic", CLINICIAN, &id, &[]).await.status(), StatusCode::OK);
    assert_eq!(env.read("clinic", BILLING, &id, &[]).await.status(), StatusCode::OK);
    assert_eq!(env.read("clinic", Caller::Patient(&id), &id, &[]).await.status(), StatusCode::OK);
    let reason = "covering the night shift";
    let glass = env
        .read(
            "clinic",
            Caller::Staff("officer-7", &["privacy_officer"]),
            &id,
            &[("x-break-glass-reason", reason)],
        )
        .await;
    assert_eq!(glass.status(), StatusCode::OK, "{}", text(&glass));

    let uri = |scope: &str| format!("/patients/{id}/disclosures{scope}");
    let list = |res: &lift::Response| json(res)["disclosures"].as_array().cloned().unwrap();
    let me = Some(("clinic", Caller::Patient(&id)));

    // The access report (the default) lists every read, the patient's own among them.
    let all = env.send(Method::GET, &uri(""), me, None, &[]).await;
    assert_eq!(all.status(), StatusCode::OK, "{}", text(&all));
    assert_eq!(json(&all)["scope"], "access");
    let purposes: Vec<String> =
        list(&all).iter().map(|d| d["purpose"].as_str().unwrap().to_owned()).collect();
    assert_eq!(purposes, ["treatment", "payment", "patient access", "break-glass"], "{}", text(&all));

    // The accounting keeps the break-glass read alone; the rest are counted, not named.
    let acc = env.send(Method::GET, &uri("?scope=accounting"), me, None, &[]).await;
    assert_eq!(acc.status(), StatusCode::OK, "{}", text(&acc));
    let body = json(&acc);
    assert_eq!(body["scope"], "accounting");
    assert!(body["basis"].as_str().unwrap().contains("164.528"));
    let kept = list(&acc);
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert_eq!((kept[0]["actor"].as_str(), kept[0]["reason"].as_str()), (Some("officer-7"), Some(reason)));
    assert_eq!(
        body["excluded"],
        serde_json::json!({ "treatment": 1, "payment": 1, "patient access": 1 }),
        "{body}"
    );
    let text_of = text(&acc);
    assert!(
        !text_of.contains("dr-house") && !text_of.contains("clerk-1"),
        "excluded readers named: {text_of}"
    );

    // A misspelt scope is refused by name, not read as the default.
    let bad = env.send(Method::GET, &uri("?scope=acounting"), me, None, &[]).await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST, "{}", text(&bad));
    assert!(text(&bad).contains("scope"), "{}", text(&bad));
}

#[tokio::test]
async fn writes_need_an_idempotency_key_and_valid_fields_named_without_their_value() {
    let env = env().await;
    let id = patient_id();
    let bad = serde_json::json!({ "id": id, "name": "Grace Hopper", "date_of_birth": "1906-13-09" });
    let res = env.register("clinic", bad).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{}", text(&res));
    assert!(!text(&res).contains("1906-13-09") && !text(&res).contains("Grace"), "{}", text(&res));
    // Without Idempotency-Key, a POST is refused before it stores anything.
    let token = env.token("clinic", CLINICIAN);
    let req = http::Request::post("/patients")
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(lift::Body::from(
            serde_json::json!({ "id": id, "name": "Grace Hopper", "date_of_birth": "1906-12-09" })
                .to_string(),
        ))
        .unwrap();
    let res = tower::ServiceExt::oneshot(env.service.clone(), req).await.unwrap();
    assert!(res.status().is_client_error(), "{}", res.status());
    assert!(env.scan(&env.table).await.is_empty());
}
