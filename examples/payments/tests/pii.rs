//! Personal and card data through the real stack (JWT, classification, idempotency,
//! customer keys wrapped by the KMS mock) on DynamoDB Local: card numbers and SSNs sent in
//! every free-text field, id, header and query parameter end up in clear nowhere (not in
//! the payments table, the idempotency records, the key table or the logs); refusals
//! never echo them and are never stored; erasing a customer leaves no readable copy, not
//! even in a backup taken before.

mod support;

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use http::{Method, StatusCode};
use lift::security::protection::sealed_subject;
use lift::{Request, Response};
use proptest::prelude::*;
use rand::Rng;
use support::{captured_logs, card_of, forms, item_text, json, protected, ssn, typed, Protected};

const TENANT: &str = "acme";
const BRANDS: [&str; 4] = ["visa", "mastercard", "amex", "maestro"];

fn with_key(mut req: Request, key: &str) -> Request {
    req.headers_mut().insert("idempotency-key", key.parse().unwrap());
    req
}

/// Sets the field at a JSON pointer (its parent must exist).
fn set(body: &mut serde_json::Value, pointer: &str, value: String) {
    let (parent, name) = pointer.rsplit_once('/').unwrap();
    let parent = if parent.is_empty() { body } else { body.pointer_mut(parent).unwrap() };
    parent.as_object_mut().unwrap().insert(name.to_owned(), value.into());
}

fn text(res: &Response) -> String {
    String::from_utf8_lossy(res.body().as_bytes()).into_owned()
}

/// A create request body for `customer`, with a fresh card.
fn payment(customer: &str, rng: &mut impl Rng) -> serde_json::Value {
    serde_json::json!({
        "card_number": card_of(BRANDS[rng.gen_range(0..BRANDS.len())], rng),
        "amount": 2_500,
        "currency": "EUR",
        "customer": { "id": customer, "name": "Ada Lovelace", "email": "ada@example.com" },
    })
}

impl Protected {
    async fn create(&self, key: &str, body: &serde_json::Value) -> Response {
        let req = self.env.request_as(Method::POST, "/payments", TENANT, Some(body.clone()));
        self.env.call(with_key(req, key)).await
    }

    async fn refund(&self, payment: &str, key: &str, body: serde_json::Value) -> Response {
        let uri = format!("/payments/{payment}/refunds");
        self.env.call(with_key(self.env.request_as(Method::POST, &uri, TENANT, Some(body)), key)).await
    }

    /// Every table the service writes, and the logs, as text.
    async fn everything_stored(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (name, table) in [
            ("payments", &self.env.table),
            ("idempotency", &self.idempotency_table),
            ("subject keys", &self.subject_keys_table),
        ] {
            for item in self.scan(table).await {
                out.push((format!("an item of the {name} table"), item_text(&item)));
            }
        }
        let logs = String::from_utf8_lossy(&captured_logs().lock().unwrap()).into_owned();
        out.push(("the logs".to_owned(), logs));
        out
    }

    /// Asserts that no form of any value is in any table or log.
    async fn assert_nowhere(&self, values: &[String]) {
        let stored = self.everything_stored().await;
        for value in values {
            for form in forms(value) {
                for (place, text) in &stored {
                    assert!(
                        !text.contains(&form),
                        "{place} holds a sent value in clear ({} digits)",
                        form.len()
                    );
                }
            }
        }
    }
}

/// Asserts a refusal: the status, the field named, and none of `values` echoed.
fn assert_refused(res: &Response, status: StatusCode, field: Option<&str>, values: &[&str]) {
    let body = text(res);
    assert_eq!(res.status(), status, "{body}");
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    if let Some(field) = field {
        assert_eq!(json(res)["field"], field, "{body}");
    }
    for value in values {
        for form in forms(value) {
            assert!(!body.contains(&form), "the answer echoes a sent value: {body}");
        }
    }
}

#[tokio::test]
async fn no_card_number_or_ssn_sent_anywhere_is_stored_or_logged_in_clear() {
    captured_logs();
    let p = protected().await;
    let mut rng = rand::thread_rng();
    let mut sent: Vec<String> = Vec::new();
    let mut accepted_posts = 0;

    // Accepted: SSNs in the free text and the email, the card in card_number.
    let mut payments = Vec::new();
    for i in 0..3 {
        let (in_description, in_name, in_email, in_reason) =
            (ssn(&mut rng), ssn(&mut rng), ssn(&mut rng), ssn(&mut rng));
        let mut body = payment(&format!("cus_{i}"), &mut rng);
        body["description"] = format!("Invoice 7, customer SSN {in_description}, thanks").into();
        body["customer"]["name"] = format!("Ada Lovelace {in_name}").into();
        body["customer"]["email"] = format!("{in_email}@example.com").into();
        sent.extend([in_description.clone(), in_name.clone(), in_email, in_reason.clone()]);
        sent.push(body["card_number"].as_str().unwrap().to_owned());
        let res = p.create(&format!("order-{i}"), &body).await;
        assert_eq!(res.status(), StatusCode::CREATED, "{}", text(&res));
        accepted_posts += 1;
        let created = json(&res);
        // Free text is masked before it is stored (and so in the answer too).
        let (description, name) =
            (created["description"].to_string(), created["customer"]["name"].to_string());
        assert!(
            !description.contains(&in_description) && description.contains("[REDACTED:ssn]"),
            "{description}"
        );
        assert!(!name.contains(&in_name) && name.contains("Ada Lovelace"), "{name}");
        let id = created["id"].as_str().unwrap().to_owned();
        let res = p
            .refund(
                &id,
                &format!("refund-{i}"),
                serde_json::json!({ "amount": 100, "reason": format!("asked by SSN holder {in_reason}") }),
            )
            .await;
        assert_eq!(res.status(), StatusCode::CREATED, "{}", text(&res));
        assert!(!text(&res).contains(&in_reason));
        accepted_posts += 1;
        payments.push(id);
    }

    // Refused with 422: a card number anywhere but card_number, in every typed form.
    let mut n = 0;
    for brand in BRANDS {
        for sep in [None, Some(' '), Some('-')] {
            let pan = typed(&card_of(brand, &mut rng), sep);
            sent.push(pan.clone());
            for field in ["/description", "/customer/name", "/customer/id", "/id"] {
                let mut body = payment("cus_x", &mut rng);
                let value = if field.ends_with("id") { pan.clone() } else { format!("see {pan}") };
                set(&mut body, field, value);
                n += 1;
                let res = p.create(&format!("refused-{n}"), &body).await;
                assert_refused(&res, StatusCode::UNPROCESSABLE_ENTITY, Some(field), &[&pan]);
            }
            let res = p
                .refund(
                    &payments[0],
                    &format!("refused-refund-{n}"),
                    serde_json::json!({ "amount": 1, "reason": format!("card {pan}") }),
                )
                .await;
            assert_refused(&res, StatusCode::UNPROCESSABLE_ENTITY, Some("/reason"), &[&pan]);
            // In the email: refused, or at worst kept encrypted (checked by the scans).
            let mut body = payment("cus_x", &mut rng);
            body["customer"]["email"] = format!("{}@example.com", pan.replace(' ', "")).into();
            n += 1;
            let res = p.create(&format!("refused-{n}"), &body).await;
            assert!(matches!(
                res.status(),
                StatusCode::UNPROCESSABLE_ENTITY | StatusCode::BAD_REQUEST | StatusCode::CREATED
            ));
            if res.status() == StatusCode::CREATED {
                accepted_posts += 1;
            } else {
                assert_refused(&res, res.status(), None, &[&pan]);
            }
            // In the idempotency key, and in list's query parameters.
            let res = p.create(&pan.replace(' ', "-"), &payment("cus_x", &mut rng)).await;
            assert_refused(&res, StatusCode::UNPROCESSABLE_ENTITY, Some("header.idempotency-key"), &[&pan]);
            for uri in [
                format!("/payments?cursor={}", pan.replace(' ', "%20")),
                format!("/payments?limit=5&q={}", pan.replace(' ', "+")),
            ] {
                let res = p.env.send(Method::GET, &uri, TENANT, None).await;
                let field = if uri.contains("cursor") { "query.cursor" } else { "query.q" };
                assert_refused(&res, StatusCode::UNPROCESSABLE_ENTITY, Some(field), &[&pan]);
            }
        }
    }

    // Refused: SSNs in ids, the idempotency key and the query; never echoed.
    let id_ssn = ssn(&mut rng);
    sent.push(id_ssn.clone());
    for field in ["/customer/id", "/id"] {
        let mut body = payment("cus_x", &mut rng);
        set(&mut body, field, id_ssn.clone());
        n += 1;
        let res = p.create(&format!("refused-{n}"), &body).await;
        assert_refused(&res, StatusCode::UNPROCESSABLE_ENTITY, Some(field), &[&id_ssn]);
    }
    let res = p.create(&id_ssn, &payment("cus_x", &mut rng)).await;
    assert_refused(&res, StatusCode::UNPROCESSABLE_ENTITY, Some("header.idempotency-key"), &[&id_ssn]);
    let res = p.env.send(Method::GET, &format!("/payments?cursor={id_ssn}"), TENANT, None).await;
    assert_refused(&res, StatusCode::UNPROCESSABLE_ENTITY, Some("query.cursor"), &[&id_ssn]);

    // Wrong types: 400 naming the field, never the value.
    let pan = card_of("visa", &mut rng);
    let wrong_ssn = ssn(&mut rng);
    sent.extend([pan.clone(), wrong_ssn.clone()]);
    let mut body = payment("cus_x", &mut rng);
    body["amount"] = wrong_ssn.clone().into();
    let res = p.create("wrong-type-1", &body).await;
    assert_refused(&res, StatusCode::BAD_REQUEST, Some("amount"), &[&wrong_ssn]);
    let mut body = payment("cus_x", &mut rng);
    body["customer"]["country"] = wrong_ssn.clone().into();
    let res = p.create("wrong-type-2", &body).await;
    assert_refused(&res, StatusCode::BAD_REQUEST, Some("customer.country"), &[&wrong_ssn]);
    // A card number in a wrong-typed field is a card number outside card_number: 422.
    let mut body = payment("cus_x", &mut rng);
    body["amount"] = pan.clone().into();
    let res = p.create("wrong-type-3", &body).await;
    assert_refused(&res, StatusCode::UNPROCESSABLE_ENTITY, Some("/amount"), &[&pan]);

    p.assert_nowhere(&sent).await;
    // Refusals are never stored: the idempotency records are those of accepted requests.
    let records = p.scan(&p.idempotency_table).await;
    assert_eq!(records.len(), accepted_posts, "only accepted creates and refunds leave a record");
    // The digest a repeat must match is keyed: a plain SHA-256 of a body with a card number
    // could be reversed by trying the numbers its brand and last four leave possible.
    for record in &records {
        let digest = record["payload_hash"].as_s().unwrap();
        assert!(digest.starts_with("k:"), "an unkeyed body digest: {digest}");
    }
    // What is stored of personal data is sealed, and opens for the service.
    let keys = p.fresh_keys();
    let mut opened = 0;
    for item in p.scan(&p.env.table).await {
        for value in item.values() {
            if let Ok(bytes) = value.as_b() {
                assert!(sealed_subject(bytes.as_ref()).is_some());
                assert!(keys.decrypt(TENANT, bytes.as_ref()).await.unwrap().is_some());
                opened += 1;
            }
        }
    }
    assert!(opened >= 6, "payments and refund reasons are sealed ({opened})");
}

type Item = HashMap<String, AttributeValue>;

/// Tries to open every sealed attribute of every item: (subject, opened) pairs.
async fn open_all(p: &Protected, items: &[Item]) -> Vec<(String, bool)> {
    let keys = p.fresh_keys();
    let mut out = Vec::new();
    for item in items {
        for value in item.values() {
            let Ok(bytes) = value.as_b() else { continue };
            let Some(subject) = sealed_subject(bytes.as_ref()) else { continue };
            let opened = keys.decrypt(TENANT, bytes.as_ref()).await.expect("a well-formed ciphertext");
            out.push((subject.to_owned(), opened.is_some()));
        }
    }
    out
}

#[tokio::test]
async fn erasing_a_customer_leaves_no_readable_copy_anywhere_not_even_in_a_backup() {
    captured_logs();
    let p = protected().await;
    let mut rng = rand::thread_rng();
    let mut ids = HashMap::new();
    let mut bodies = Vec::new();
    for (i, customer) in ["cus_gone", "cus_kept", "cus_gone"].iter().enumerate() {
        let mut body = payment(customer, &mut rng);
        body["description"] = format!("order {i} for {customer}").into();
        bodies.push(body.clone());
        let res = p.create(&format!("erase-{i}"), &body).await;
        assert_eq!(res.status(), StatusCode::CREATED, "{}", text(&res));
        let id = json(&res)["id"].as_str().unwrap().to_owned();
        let res = p
            .refund(
                &id,
                &format!("erase-refund-{i}"),
                serde_json::json!({ "amount": 10, "reason": "damaged" }),
            )
            .await;
        assert_eq!(res.status(), StatusCode::CREATED, "{}", text(&res));
        ids.insert(*customer, id);
    }
    // A backup of both tables, taken before the erasure.
    let backup: Vec<Item> = [p.scan(&p.env.table).await, p.scan(&p.idempotency_table).await].concat();
    // Every stored answer is sealed too: replayable, and erasable with its customer.
    for record in p.scan(&p.idempotency_table).await {
        if let Some(body) = record.get("response_body").and_then(|v| v.as_b().ok()) {
            assert!(
                sealed_subject(body.as_ref()).is_some(),
                "an idempotency record holds an answer in clear"
            );
        }
    }
    let before = open_all(&p, &backup).await;
    assert!(before.iter().all(|(_, opened)| *opened));
    assert!(
        before.iter().filter(|(s, _)| s == "cus_gone").count() >= 4,
        "payments, refunds and records of cus_gone are sealed: {before:?}"
    );

    let res = p.env.send(Method::DELETE, "/customers/cus_gone", TENANT, None).await;
    assert_eq!(res.status(), StatusCode::OK, "{}", text(&res));
    assert_eq!(json(&res)["payments_erased"], 2);

    let now: Vec<Item> = [p.scan(&p.env.table).await, p.scan(&p.idempotency_table).await].concat();
    for (copy, items) in [("the tables", &now), ("the backup", &backup)] {
        let results = open_all(&p, items).await;
        let gone: Vec<_> = results.iter().filter(|(s, _)| s == "cus_gone").collect();
        assert!(!gone.is_empty(), "{copy} still hold ciphertexts of cus_gone");
        assert!(gone.iter().all(|(_, opened)| !opened), "a copy in {copy} still opens after the erasure");
        let kept: Vec<_> = results.iter().filter(|(s, _)| s == "cus_kept").collect();
        assert!(
            !kept.is_empty() && kept.iter().all(|(_, opened)| *opened),
            "cus_kept's data in {copy} still opens"
        );
    }
    // A retry of an erased customer's create is not replayed (its answer is gone) and not
    // run again (that would charge twice): 410. The other customer's retry replays.
    let res = p.create("erase-0", &bodies[0]).await;
    assert_eq!(res.status(), StatusCode::GONE, "{}", text(&res));
    assert!(!text(&res).contains("Ada Lovelace"));
    let res = p.create("erase-1", &bodies[1]).await;
    assert_eq!(res.status(), StatusCode::CREATED, "{}", text(&res));
    assert_eq!(res.headers()["idempotent-replayed"], "true");
    assert_eq!(json(&res)["customer"]["name"], "Ada Lovelace");
    assert_eq!(
        p.scan(&p.env.table).await.iter().filter(|i| i["sk"].as_s().unwrap().starts_with("PAYMENT#")).count(),
        3
    );
    // The service shows the payments without the erased customer's data.
    let res = p.env.send(Method::GET, &format!("/payments/{}", ids["cus_gone"]), TENANT, None).await;
    assert_eq!(res.status(), StatusCode::OK);
    let payment = json(&res);
    assert_eq!(payment["customer"], serde_json::json!({ "id": "cus_gone" }));
    assert!(payment.get("description").is_none(), "{payment}");
    let res = p.env.send(Method::GET, &format!("/payments/{}", ids["cus_kept"]), TENANT, None).await;
    assert_eq!(json(&res)["customer"]["name"], "Ada Lovelace");
}

/// Free text around an embedded value: letters, digits-free words and punctuation.
fn free_text() -> impl Strategy<Value = String> {
    "[A-Za-z ,.]{0,40}"
}

#[test]
fn generated_free_text_with_embedded_card_numbers_and_ssns_never_reaches_storage() {
    captured_logs();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let p = rt.block_on(protected());
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(16));
    let strategy = (
        free_text(),
        free_text(),
        0usize..BRANDS.len(),
        proptest::option::of(prop_oneof![Just(' '), Just('-')]),
        any::<bool>(),
        any::<u64>(),
    );
    let case = std::sync::atomic::AtomicUsize::new(0);
    runner
        .run(&strategy, |(before, after, brand, sep, embed_pan, seed)| {
            let case = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed);
            let value = if embed_pan { typed(&card_of(BRANDS[brand], &mut rng), sep) } else { ssn(&mut rng) };
            let description = format!("{before} {value} {after}");
            let mut body = payment("cus_prop", &mut rng);
            body["description"] = description.into();
            body["customer"]["name"] = format!("{after} {value}").into();
            let res = rt.block_on(p.create(&format!("prop-{case}"), &body));
            if embed_pan {
                prop_assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
                let answer = json(&res);
                prop_assert!(answer["field"] == "/description" || answer["field"] == "/customer/name");
            } else {
                prop_assert_eq!(res.status(), StatusCode::CREATED, "{}", text(&res));
            }
            for form in forms(&value) {
                prop_assert!(!text(&res).contains(&form), "the answer holds the value");
            }
            let stored = rt.block_on(p.everything_stored());
            for form in forms(&value) {
                for (place, text) in &stored {
                    prop_assert!(!text.contains(&form), "{} holds the value", place);
                }
            }
            Ok(())
        })
        .unwrap();
}

#[tokio::test]
async fn anonymous_callers_are_refused_before_classification_and_leave_nothing() {
    captured_logs();
    let p = protected().await;
    let mut rng = rand::thread_rng();
    let pan = typed(&card_of("mastercard", &mut rng), Some(' '));
    let mut body = payment("cus_anon", &mut rng);
    body["description"] = format!("card {pan}").into();
    let req = support::request(Method::POST, "/payments", None, Some(body));
    let res = p.env.call(with_key(req, "anon-1")).await;
    // 401, not the 422 an authenticated caller gets: nothing is said about the content.
    assert_refused(&res, StatusCode::UNAUTHORIZED, None, &[&pan]);
    assert!(json(&res).get("field").is_none());
    // A token of the tenant without the write scope is refused (403) and stores nothing.
    let token = p.env.token(TENANT, &[payments::READ_SCOPE]);
    let clean = payment("cus_anon", &mut rng);
    let res = p
        .env
        .call(with_key(support::authorized(Method::POST, "/payments", &token, Some(clean)), "ro-1"))
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(p.scan(&p.env.table).await.is_empty() && p.scan(&p.idempotency_table).await.is_empty());
    p.assert_nowhere(&[pan]).await;
}
