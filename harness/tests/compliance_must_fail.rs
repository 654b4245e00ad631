//! Must-fail compliance features: for each of the 13 built-in rules, a feature under
//! `tests/features/must_fail/` fails against a small service that breaks it, and passes
//! against the same service done right. The service is not payments: the suites drive any
//! [`ComplianceTarget`].
//!
//! Six rules are broken by the handler itself (it logs a card number, answers a CVV...).
//! The other seven are enforced before the handler or by the layers around it, so a
//! handler cannot break them; the service can, as its author might misbuild it, and says
//! how through [`ComplianceTarget::assembly`]:
//!
//! - PCI-DSS 10.2.1, HIPAA 164.312(b): built without the audit layer, so payments and
//!   health records are answered without a stored audit entry.
//! - PCI-DSS 4.2.1, HIPAA 164.312(e)(1): built without the compliance layer (the layer has
//!   no observe-only mode: a critical request-phase violation always blocks), so a card
//!   number or a health record sent over plain HTTP is accepted and stored.
//! - HIPAA 164.312(a)(1), SOC2 CC6.1: the payments routes are left out of the JWT check
//!   (a public path, no scope check), so an anonymous caller reads a payment and the
//!   treatment it paid for.
//! - GDPR Art. 44: the app pins its region to `us-east-1` whatever region it is deployed
//!   in, so EU personal data would be processed outside the EU.
//!
//! Some features also fail against a service that breaks them in a way the rule's own
//! evidence cannot show, so the steps must: a handler that leaks through `tracing` (which
//! a redacting log layer would have hidden), routes that name no audit data class, a card
//! number stored as a number or inside a map, a name, a country or a payment's description
//! kept after the erasure, an email kept lower-cased or behind a mask that knows only
//! lower-case addresses (stored or logged),
//! an erasure that reaches into another tenant, a card number stored or answered without
//! its spaces or with dashes, a name or email kept in another case, a country kept inside a binary value.

use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use http::StatusCode;
use lift::app::App;
use lift::middleware::auth::require_scope;
use lift::middleware::logging::tracing_subscriber::fmt::MakeWriter as _;
use lift::middleware::logging::MemoryWriter;
use lift::security::audit::AuditHandle;
use lift::store::{KeyAttribute, TableDef};
use lift::{Context, Request, Response};
use lift_harness::compliance::{Assembly, ComplianceTarget, TargetEnv};

/// How the handler, or the service around it, breaks its rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Break {
    Nothing,
    LogsCardNumber,
    /// Logs the card number with `tracing::info!`, as a handler does.
    TracesCardNumber,
    /// Stores the card number as a DynamoDB number.
    StoresCardAsNumber,
    /// Stores the card number inside a map.
    StoresCardInMap,
    /// Names no data class in the audit entries of its routes.
    ClassifiesNothing,
    /// Also keeps the customer's name under another attribute, which erasure forgets.
    KeepsNameElsewhere,
    /// Erases the customer's name but keeps their country.
    KeepsCountry,
    /// Erases the customer's name and country but keeps the payment's description (the
    /// treatment), which holds the customer's name too.
    KeepsDescription,
    /// Also keeps the customer's email lower-cased (a lookup key) under another attribute,
    /// which erasure forgets.
    KeepsEmailLowerCased,
    /// Also keeps the customer's email under another attribute through a mask that knows only
    /// lower-case addresses (any other is kept in clear), which erasure forgets as masked.
    KeepsEmailThroughLowerCaseMask,
    /// Logs the customer's email through a mask that knows only lower-case addresses.
    LogsEmailThroughLowerCaseMask,
    /// Erases a customer id in every tenant, not only the caller's.
    ErasesAcrossTenants,
    /// Answers the card number it was sent, without its spaces, with no compliance layer to
    /// withhold that answer.
    AnswersCard,
    /// Also keeps the customer's contact with its case folded (the name lowercased, the email
    /// upper-cased) under another attribute, which erasure forgets, and answers its name.
    FoldsContactCase,
    /// Stores the card number in groups of four joined by dashes (`4111-1111-1111-1111`).
    StoresCardWithDashes,
    /// Also keeps the customer's country inside a binary (MessagePack) profile, which erasure
    /// forgets.
    KeepsCountryInBinary,
    AnswersCvv,
    LogsEmail,
    KeepsErasedData,
    AnswersSecret,
    FailsSilently,
    /// Built without the audit layer.
    ForgetsAudit,
    /// Built without the compliance layer: nothing refuses plain HTTP.
    ForgetsCompliance,
    /// The payments routes skip the JWT and scope checks; a read answers anyone.
    OpensPayments,
    /// The app pins its region to `us-east-1`.
    PinsUsRegion,
}

/// A tiny payments-like service of a clinic: `POST /payments` (with the treatment paid
/// for, from the description), `GET /payments/:id` (which fails for payments in USD, kept
/// in a ledger that is down), `DELETE /customers/:id`.
#[derive(Debug, Clone, Copy)]
struct Ledger(Break);

#[derive(Clone)]
struct Shared {
    client: aws_sdk_dynamodb::Client,
    table: String,
    logs: MemoryWriter,
    broken: Break,
}

/// `email` as a mask that knows only lower-case addresses (`[a-z0-9._%+-]+@[a-z0-9.-]+`)
/// leaves it: redacted when it has no upper-case letter, in clear otherwise.
fn lower_case_mask(email: &str) -> String {
    if email.contains('@') && !email.chars().any(|c| c.is_ascii_uppercase()) {
        "[REDACTED:email]".to_owned()
    } else {
        email.to_owned()
    }
}

fn tenant(req: &Request) -> String {
    Context::of(req).and_then(Context::principal).map(|p| p.tenant.clone()).unwrap_or_default()
}

impl Shared {
    fn log(&self, line: &str) {
        let _ = writeln!(self.logs.make_writer(), "{line}");
    }

    /// Names the data class of the request in its audit entry, as a service must.
    fn classify(&self, req: &Request, class: &str) {
        if let (false, Some(audit)) = (self.broken == Break::ClassifiesNothing, AuditHandle::of(req)) {
            audit.data_class(class);
        }
    }

    async fn pay(&self, req: Request) -> Response {
        self.classify(&req, "pci");
        let body: serde_json::Value = serde_json::from_slice(req.body().as_bytes()).unwrap_or_default();
        let pan = body["card_number"].as_str().unwrap_or_default().replace(' ', "");
        let email = body["customer"]["email"].as_str().unwrap_or_default().to_owned();
        let name = body["customer"]["name"].as_str().unwrap_or_default().to_owned();
        match self.broken {
            Break::LogsCardNumber => self.log(&format!("charging card {pan}")),
            Break::TracesCardNumber => lift::middleware::logging::tracing::info!("charging card {}", pan),
            Break::LogsEmail => self.log(&format!("receipt sent to {email}")),
            Break::LogsEmailThroughLowerCaseMask => {
                self.log(&format!("receipt sent to {}", lower_case_mask(&email)));
            }
            _ => self.log("{\"level\":\"INFO\",\"message\":\"payment created\"}"),
        }
        let id = format!("pay_{}", uuid::Uuid::new_v4().simple());
        let last4 = pan.get(pan.len().saturating_sub(4)..).unwrap_or_default().to_owned();
        let card = match self.broken {
            Break::StoresCardAsNumber => AttributeValue::N(pan.clone()),
            Break::StoresCardInMap => AttributeValue::M(
                [("number".to_owned(), AttributeValue::S(pan.clone()))].into_iter().collect(),
            ),
            Break::StoresCardWithDashes => {
                let groups: Vec<&str> =
                    pan.as_bytes().chunks(4).filter_map(|g| std::str::from_utf8(g).ok()).collect();
                AttributeValue::S(groups.join("-"))
            }
            _ => AttributeValue::S(last4.clone()),
        };
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(format!("TENANT#{}", tenant(&req))))
            .item("sk", AttributeValue::S(id.clone()))
            .item("card", card)
            .item("currency", AttributeValue::S(body["currency"].as_str().unwrap_or_default().into()))
            .item(
                "customer_id",
                AttributeValue::S(body["customer"]["id"].as_str().unwrap_or_default().into()),
            )
            .item("customer_name", AttributeValue::S(name.clone()))
            .item(
                "customer_country",
                AttributeValue::S(body["customer"]["country"].as_str().unwrap_or_default().into()),
            )
            .item("treatment", AttributeValue::S(body["description"].as_str().unwrap_or_default().into()));
        match self.broken {
            Break::FoldsContactCase => {
                let contact = [("name", name.to_lowercase()), ("email", email.to_uppercase())]
                    .into_iter()
                    .map(|(key, text)| (key.to_owned(), AttributeValue::S(text)))
                    .collect();
                put = put.item("contact", AttributeValue::M(contact));
            }
            Break::KeepsCountryInBinary => {
                // {"country": <country>} in MessagePack: a fixmap of one, two fixstrs.
                let country = body["customer"]["country"].as_str().unwrap_or_default();
                let mut profile = vec![0x81, 0xa7];
                profile.extend_from_slice(b"country");
                profile.push(0xa0 | u8::try_from(country.len()).unwrap_or_default());
                profile.extend_from_slice(country.as_bytes());
                put =
                    put.item("profile", AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(profile)));
            }
            Break::KeepsEmailLowerCased => {
                put = put.item("email_key", AttributeValue::S(email.to_lowercase()));
            }
            Break::KeepsEmailThroughLowerCaseMask => {
                put = put.item("receipt_to", AttributeValue::S(lower_case_mask(&email)));
            }
            _ => {}
        }
        if self.broken == Break::KeepsNameElsewhere {
            let receipt = [("to".to_owned(), AttributeValue::S(name))].into_iter().collect();
            put = put.item("receipt", AttributeValue::M(receipt));
        }
        put.send().await.expect("store the payment");
        let mut answer = serde_json::json!({ "id": id, "card": { "last4": last4 } });
        match self.broken {
            Break::AnswersCvv => answer["card"]["cvv"] = "123".into(),
            Break::AnswersSecret => answer["debug_key"] = "AKIAIOSFODNN7EXAMPLE".into(),
            Break::AnswersCard => answer["card"]["number"] = pan.into(),
            _ => {}
        }
        lift::json_response(StatusCode::CREATED, &answer)
    }

    async fn read(&self, req: Request) -> Response {
        // Answers whoever asks when the service is open: the route is public, the tenant is
        // whatever the caller has.
        let id = lift::path_param(&req, "id").unwrap_or_default().to_owned();
        let found = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(format!("TENANT#{}", tenant(&req))))
            .key("sk", AttributeValue::S(id.clone()))
            .send()
            .await
            .expect("read the payment");
        let Some(item) = found.item() else {
            return lift::Error::not_found().into_response();
        };
        let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
        if self.broken == Break::OpensPayments || text("currency").as_deref() != Some("USD") {
            // The treatment paid for is health data: its answer is audited as such.
            if text("treatment").is_some_and(|t| !t.is_empty()) {
                self.classify(&req, "phi");
            }
            let mut answer = serde_json::json!({ "id": id, "treatment": text("treatment"), "customer_name": text("customer_name") });
            if let Some(AttributeValue::M(contact)) = item.get("contact") {
                answer["contact"] = contact.get("name").and_then(|v| v.as_s().ok()).cloned().into();
            }
            return lift::json_response(StatusCode::OK, &answer);
        }
        if self.broken == Break::FailsSilently {
            let mut res = Response::default();
            *res.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            return res;
        }
        // Done right: the failure goes through lift::Error, which logs it at error level.
        self.log("{\"level\":\"ERROR\",\"message\":\"the ledger is unavailable\"}");
        lift::Error::internal(std::io::Error::other("the ledger is unavailable")).render(None)
    }

    async fn erase(&self, req: Request) -> Response {
        self.classify(&req, "pii");
        let customer = lift::path_param(&req, "id").unwrap_or_default().to_owned();
        if self.broken != Break::KeepsErasedData {
            let items = if self.broken == Break::ErasesAcrossTenants {
                let all = self.client.scan().table_name(&self.table).send().await.expect("scan the payments");
                all.items.unwrap_or_default()
            } else {
                let mine = self
                    .client
                    .query()
                    .table_name(&self.table)
                    .key_condition_expression("pk = :pk")
                    .expression_attribute_values(":pk", AttributeValue::S(format!("TENANT#{}", tenant(&req))))
                    .send()
                    .await
                    .expect("query the tenant's payments");
                mine.items.unwrap_or_default()
            };
            let remove = match self.broken {
                Break::KeepsCountry => "REMOVE customer_name, treatment",
                Break::KeepsDescription => "REMOVE customer_name, customer_country",
                _ => "REMOVE customer_name, customer_country, treatment",
            };
            for item in &items {
                if item.get("customer_id").and_then(|v| v.as_s().ok()) != Some(&customer) {
                    continue;
                }
                self.client
                    .update_item()
                    .table_name(&self.table)
                    .key("pk", item["pk"].clone())
                    .key("sk", item["sk"].clone())
                    .update_expression(remove)
                    .send()
                    .await
                    .expect("erase the name");
            }
        }
        lift::json_response(StatusCode::OK, &serde_json::json!({ "erased": customer }))
    }
}

impl ComplianceTarget for Ledger {
    fn tables(&self) -> Vec<TableDef> {
        vec![TableDef::new("ledger", KeyAttribute::string("pk")).with_sort_key(KeyAttribute::string("sk"))]
    }

    fn scopes(&self) -> Vec<String> {
        vec!["ledger:write".into()]
    }

    fn assembly(&self) -> Assembly {
        match self.0 {
            Break::ForgetsAudit => Assembly::default().without_audit(),
            // Without the compliance layer, which would withhold an answer carrying a card
            // number (PCI-DSS 3.4) and leave the scenario's own checks of the answer nothing
            // to find.
            Break::ForgetsCompliance | Break::AnswersCard => Assembly::default().without_compliance(),
            Break::OpensPayments => Assembly::default().public_path("/payments*"),
            Break::PinsUsRegion => Assembly::default().pinned_region("us-east-1"),
            _ => Assembly::default(),
        }
    }

    fn app(&self, env: &TargetEnv) -> App {
        let shared = Arc::new(Shared {
            client: env.client.clone(),
            table: env.tables[0].clone(),
            logs: env.logs.clone(),
            broken: self.0,
        });
        let open = self.0 == Break::OpensPayments;
        let (pay, read, erase) = (shared.clone(), shared.clone(), shared);
        let pay = lift::app::Route::from_handler(move |req| {
            let s = pay.clone();
            async move { s.pay(req).await }
        });
        App::new()
            .route(
                http::Method::POST,
                "/payments",
                if open { pay } else { pay.layer(require_scope("ledger:write")) },
            )
            .route(
                http::Method::GET,
                "/payments/:id",
                lift::app::Route::from_handler(move |req| {
                    let s = read.clone();
                    async move { s.read(req).await }
                }),
            )
            .route(
                http::Method::DELETE,
                "/customers/:id",
                lift::app::Route::from_handler(move |req| {
                    let s = erase.clone();
                    async move { s.erase(req).await }
                }),
            )
    }
}

#[test]
fn each_must_fail_feature_fails_against_the_service_that_breaks_its_rule_and_passes_without() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/features/must_fail");
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/compliance-must-fail");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    // The rule whose evidence must show the breach (violated, or refused) in the failing
    // run; none where other steps show it: Art. 17's audited erasure kept the data, and a
    // service without the compliance layer records no evidence at all (its plain-HTTP
    // request is accepted instead of refused).
    let cases = [
        ("pci_dss_3_4.feature", Break::LogsCardNumber, Some("PCI-DSS 3.4")),
        ("pci_dss_3_4.feature", Break::TracesCardNumber, Some("PCI-DSS 3.4")),
        ("pci_dss_3_4.feature", Break::StoresCardAsNumber, None),
        ("pci_dss_3_4.feature", Break::StoresCardInMap, None),
        ("pci_dss_3_2_2.feature", Break::AnswersCvv, Some("PCI-DSS 3.2.2")),
        ("gdpr_art_32.feature", Break::LogsEmail, Some("GDPR Art. 32")),
        ("gdpr_art_17.feature", Break::KeepsErasedData, None),
        ("gdpr_art_17.feature", Break::KeepsNameElsewhere, None),
        ("gdpr_art_17.feature", Break::KeepsCountry, None),
        ("gdpr_art_17.feature", Break::KeepsDescription, None),
        ("gdpr_art_17.feature", Break::KeepsEmailLowerCased, None),
        ("gdpr_art_17.feature", Break::KeepsEmailThroughLowerCaseMask, None),
        ("gdpr_art_32.feature", Break::LogsEmailThroughLowerCaseMask, Some("GDPR Art. 32")),
        ("soc2_cc6_7.feature", Break::AnswersSecret, Some("SOC2 CC6.7")),
        ("soc2_cc7_2.feature", Break::FailsSilently, Some("SOC2 CC7.2")),
        ("pci_dss_10_2_1.feature", Break::ForgetsAudit, Some("PCI-DSS 10.2.1")),
        ("pci_dss_10_2_1.feature", Break::ClassifiesNothing, None),
        ("hipaa_164_312_b.feature", Break::ForgetsAudit, Some("HIPAA 164.312(b)")),
        ("pci_dss_4_2_1.feature", Break::ForgetsCompliance, None),
        ("hipaa_164_312_e_1.feature", Break::ForgetsCompliance, None),
        ("hipaa_164_312_a_1.feature", Break::OpensPayments, Some("HIPAA 164.312(a)(1)")),
        ("soc2_cc6_1.feature", Break::OpensPayments, Some("SOC2 CC6.1")),
        ("gdpr_art_44.feature", Break::PinsUsRegion, Some("GDPR Art. 44")),
    ];
    let mut features: Vec<String> = lift_harness::compliance::library::feature_files(&dir)
        .iter()
        .filter_map(|f| f.file_name()?.to_str().map(str::to_owned))
        .collect();
    features.sort();
    let mut covered: Vec<String> = cases.iter().map(|(f, _, _)| (*f).to_owned()).collect();
    covered.sort();
    covered.dedup();
    assert_eq!(features, covered, "a case or more per must-fail feature");
    for (feature, broken, rule) in cases {
        let path = dir.join(feature);
        let good = rt
            .block_on(lift_harness::compliance::run(Ledger(Break::Nothing), &path, &out.join("good")))
            .unwrap();
        assert!(good.problems.is_empty(), "{feature}: {:?}", good.problems);
        assert_eq!(good.failed, 0, "{feature} fails against the correct service");
        let bad =
            rt.block_on(lift_harness::compliance::run(Ledger(broken), &path, &out.join("bad"))).unwrap();
        assert!(bad.failed > 0, "{feature} passed against a service that {broken:?}");
        let report: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&bad.report).unwrap()).unwrap();
        assert!(
            report["frameworks"].as_array().unwrap().iter().all(|f| f["status"] != "Pass"),
            "{feature}: a framework passed in a failing run"
        );
        let requirements: Vec<&serde_json::Value> = report["frameworks"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|f| f["requirements"].as_array().unwrap())
            .collect();
        if let Some(rule) = rule {
            let r = requirements.iter().find(|r| r["id"] == rule).unwrap();
            let breaches = r["violated"].as_u64().unwrap() + r["blocked"].as_u64().unwrap();
            assert!(
                breaches > 0,
                "{feature}: no evidence of {rule} breached against a service that {broken:?}: {r}"
            );
        }
        if broken == Break::ForgetsCompliance {
            assert!(
                requirements.iter().all(|r| r["applied"] == 0),
                "{feature}: a service without the compliance layer recorded evidence"
            );
        }
    }
}

/// The report's verdict fails the run too: a scenario that pays with a card number and only
/// checks the status, never asking whether PCI-DSS 3.4 held, passes every step against a
/// handler that logs the number, and the run still fails on the recorded breach. Against
/// the correct handler it passes.
#[test]
fn a_breach_no_step_asserted_on_fails_the_run() {
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/compliance-must-fail/unasserted");
    std::fs::create_dir_all(&out).unwrap();
    let feature = out.join("pays_without_asking.feature");
    std::fs::write(
        &feature,
        "@pci_dss\nFeature: a payment, and no question about the logs\n\n  @PCI-DSS-3.4\n  \
         Scenario: a card payment is accepted\n    Given the service runs in region eu-west-1\n    \
         When tenant acme pays 1999 USD with card \"4111 1111 1111 1111\"\n    Then the answer is 201\n",
    )
    .unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let good = rt
        .block_on(lift_harness::compliance::run(Ledger(Break::Nothing), &feature, &out.join("good")))
        .unwrap();
    assert_eq!((good.failed, good.failed_frameworks.len()), (0, 0), "{:?}", good.problems);
    let bad = rt
        .block_on(lift_harness::compliance::run(Ledger(Break::LogsCardNumber), &feature, &out.join("bad")))
        .unwrap();
    assert!(bad.passed > 0 && bad.problems.is_empty(), "every step ran: {:?}", bad.problems);
    assert_eq!(bad.failed_frameworks, ["pci_dss"], "the breach was recorded but did not fail PCI-DSS");
    assert!(bad.failed > 0, "a run with a failing framework exited as passed");
}

/// An absence in the trail is asserted only of a tenant that sent a request and of an action
/// the service records: with the action or the tenant misspelled, the step fails instead of
/// passing on the nothing it matched. Spelled right, it passes where the request was
/// refused before the handler.
#[test]
fn an_absence_asserted_with_a_typo_fails() {
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/compliance-must-fail/absence");
    std::fs::create_dir_all(&out).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let run = |name: &str, absence: &str| {
        let feature = out.join(format!("{name}.feature"));
        std::fs::write(
            &feature,
            format!(
                "@pci_dss\nFeature: {name}\n\n  @PCI-DSS-4.2.1\n  Scenario: refused over plain HTTP\n    \
                 Given the service runs in region eu-west-1\n    And the next request goes over plain HTTP\n    \
                 When tenant acme pays 1999 USD with card \"4111 1111 1111 1111\"\n    Then the answer is 403\n    \
                 And {absence}\n"
            ),
        )
        .unwrap();
        rt.block_on(lift_harness::compliance::run(Ledger(Break::Nothing), &feature, &out.join(name))).unwrap()
    };
    let right = run("right", "the audit trail of tenant acme does not record \"POST /payments\"");
    assert_eq!(right.failed, 0, "{:?}", right.problems);
    let action = run("action", "the audit trail of tenant acme does not record \"POST /payment\"");
    assert!(action.failed > 0, "an absence of a misspelled action passed");
    let tenant = run("tenant", "the audit trail of tenant acmee does not record \"POST /payments\"");
    assert!(tenant.failed > 0, "an absence in a misspelled tenant's trail passed");
}

/// A negative text check is accepted only of a text a request of the scenario sent: with the
/// text misspelled, `the answer does not contain` and `no stored item contains` fail
/// instead of passing on a text the service could never have answered or stored.
#[test]
fn an_absence_of_a_text_never_sent_fails() {
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/compliance-must-fail/never-sent");
    std::fs::create_dir_all(&out).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let run = |name: &str, absence: &str| {
        let feature = out.join(format!("{name}.feature"));
        std::fs::write(
            &feature,
            format!(
                "@hipaa\nFeature: {name}\n\n  @HIPAA-164.312-a-1\n  Scenario: stored encrypted, refused to others\n    \
                 Given the service runs in region eu-west-1\n    \
                 When tenant clinic stores a record for patient p-1 with diagnosis \"J45.909\" and notes \"wheezing since the move\"\n    \
                 And tenant globex reads the records of patient p-1\n    Then the answer is 404\n    \
                 And {absence}\n"
            ),
        )
        .unwrap();
        rt.block_on(lift_harness::compliance::run(Ledger(Break::Nothing), &feature, &out.join(name))).unwrap()
    };
    let answered = run("answered", "the answer does not contain \"wheezing since the move\"");
    assert_eq!(answered.failed, 0, "{:?}", answered.problems);
    let stored = run("stored", "no stored item contains \"wheezing since the move\"");
    assert_eq!(stored.failed, 0, "{:?}", stored.problems);
    let answered_typo = run("answered-typo", "the answer does not contain \"wheezing since teh move\"");
    assert!(answered_typo.failed > 0, "an absence from the answer of a text never sent passed");
    let stored_typo = run("stored-typo", "no stored item contains \"wheezing since teh move\"");
    assert!(stored_typo.failed > 0, "an absence from the stored items of a text never sent passed");
}

/// A scenario that moves its service to another region builds a new service with a new
/// trail: the chains of the one it replaces are verified then and reported, not dropped.
#[test]
fn the_audit_chains_of_a_replaced_service_are_verified() {
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/compliance-must-fail/replaced");
    std::fs::create_dir_all(&out).unwrap();
    let feature = out.join("moves.feature");
    std::fs::write(
        &feature,
        "@pci_dss\nFeature: moves\n\n  @PCI-DSS-10.2.1\n  Scenario: pays, then moves\n    \
         Given the service runs in region eu-west-1\n    \
         When tenant acme pays 1999 USD with card \"4111 1111 1111 1111\"\n    \
         Given the service runs in region eu-central-1\n    \
         When tenant globex pays 1999 USD with card \"4111 1111 1111 1111\"\n    Then the answer is 201\n",
    )
    .unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let run = rt
        .block_on(lift_harness::compliance::run(Ledger(Break::Nothing), &feature, &out.join("run")))
        .unwrap();
    assert_eq!(run.failed, 0, "{:?}", run.problems);
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&run.report).unwrap()).unwrap();
    let chains: Vec<&str> = report["frameworks"][0]["audit"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["problem"].is_null() && c["entries"].as_u64() > Some(0))
        .filter_map(|c| c["tenant"].as_str())
        .collect();
    assert!(
        chains.iter().any(|t| t.starts_with("acme ")),
        "the replaced service's chain is missing: {chains:?}"
    );
    assert!(chains.iter().any(|t| t.starts_with("globex ")), "{chains:?}");
}

/// A failing step's message goes into the JUnit and cucumber JSON files: the answer's body it
/// quotes is scrubbed, so a card number the service answered is not copied into them.
#[test]
fn a_failure_message_quotes_no_card_number() {
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/compliance-must-fail/quoted");
    std::fs::create_dir_all(&out).unwrap();
    let feature = out.join("quotes.feature");
    std::fs::write(
        &feature,
        "@hipaa\nFeature: quotes\n\n  @HIPAA-164.312-b\n  Scenario: a record holding a card number is read back\n    \
         Given the service runs in region eu-west-1\n    \
         When tenant clinic stores a record for patient p-1 with diagnosis \"4111 1111 1111 1111\"\n    \
         And tenant clinic reads the records of patient p-1\n    Then the answer is 201\n",
    )
    .unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    // Without the compliance layer, which would withhold the answer carrying the number.
    let run = rt
        .block_on(lift_harness::compliance::run(Ledger(Break::ForgetsCompliance), &feature, &out.join("run")))
        .unwrap();
    assert!(run.failed > 0, "the answer was 200, the step asked for 201");
    for file in [&run.junit, &run.json] {
        let text = std::fs::read_to_string(file).unwrap();
        // The feature's own step text holds the number; the answer's body holds it inside
        // the record's JSON list, which is what must not be copied (in any of the files'
        // escapings).
        let quoted = ["1111 1111\"]", "1111 1111\\\"]", "1111 1111&quot;]"];
        assert!(!quoted.iter().any(|q| text.contains(q)), "{}: {text}", file.display());
        assert!(
            text.contains("REDACTED:pan"),
            "{}: the failure message is not there: {text}",
            file.display()
        );
    }
}

/// The scenario's log lines are all of them, from its first request on: moving the service
/// to another region does not skip the lines its first service wrote.
#[test]
fn a_card_number_logged_before_a_move_is_still_found() {
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/compliance-must-fail/moved-logs");
    std::fs::create_dir_all(&out).unwrap();
    let feature = out.join("moves.feature");
    std::fs::write(
        &feature,
        "@pci_dss\nFeature: moves\n\n  @PCI-DSS-3.4\n  Scenario: pays, then moves\n    \
         Given the service runs in region eu-west-1\n    \
         When tenant acme pays 1999 USD with card \"4111 1111 1111 1111\"\n    \
         Given the service runs in region eu-central-1\n    \
         Then no card number appears in the answer, the logs or the stored payments\n",
    )
    .unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let good = rt
        .block_on(lift_harness::compliance::run(Ledger(Break::Nothing), &feature, &out.join("good")))
        .unwrap();
    assert_eq!(good.failed, 0, "{:?}", good.problems);
    let bad = rt
        .block_on(lift_harness::compliance::run(Ledger(Break::TracesCardNumber), &feature, &out.join("bad")))
        .unwrap();
    let junit = std::fs::read_to_string(&bad.junit).unwrap();
    assert!(junit.contains("log line(s) carry a card number"), "the step passed: {junit}");
}

/// Runs one scenario (its steps after `Given the service runs in region eu-west-1`) against
/// the ledger broken as `broken`, and gives the run and its JUnit file's text.
fn run_scenario(
    dir: &str,
    name: &str,
    tags: (&str, &str),
    steps: &[&str],
    broken: Break,
) -> (lift_harness::compliance::SuiteRun, String) {
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/compliance-must-fail").join(dir);
    std::fs::create_dir_all(&out).unwrap();
    let feature = out.join(format!("{name}.feature"));
    let steps: String = steps.iter().map(|s| format!("    {s}\n")).collect();
    std::fs::write(
        &feature,
        format!(
            "@{}\nFeature: {name}\n\n  @{}\n  Scenario: {name}\n    \
             Given the service runs in region eu-west-1\n{steps}",
            tags.0, tags.1
        ),
    )
    .unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let run = rt
        .block_on(lift_harness::compliance::run(
            Ledger(broken),
            &feature,
            &out.join(format!("{name}-{broken:?}")),
        ))
        .unwrap();
    let junit = std::fs::read_to_string(&run.junit).unwrap();
    (run, junit)
}

/// An erasure in one tenant is checked against what that tenant sent for the customer, and
/// must leave another tenant's customer of the same id alone: with globex's `cus_1` named
/// otherwise, or named the same, the check passes against a ledger that erases only the
/// caller's customer, and fails against one whose erasure reaches into globex (the attack),
/// or that keeps what acme sent.
#[test]
fn an_erasure_is_checked_per_tenant_and_must_not_reach_another_tenant() {
    const GDPR: (&str, &str) = ("gdpr", "GDPR-Art.17");
    let erase = ["And tenant acme erases customer cus_1", "Then the answer is 200"];
    let check = "And no stored payment of tenant acme names customer cus_1";
    let scenarios = [
        (
            "other-name",
            [
                "When tenant acme pays 500 EUR with card \"4111 1111 1111 1111\" for customer \"Ada Lovelace\"",
                "And tenant globex pays 500 EUR with card \"4111 1111 1111 1111\" for customer \"Grace Hopper\"",
            ],
        ),
        (
            "same-name",
            [
                "When tenant acme pays 500 EUR with card \"4111 1111 1111 1111\"",
                "And tenant globex pays 700 EUR with card \"4111 1111 1111 1111\"",
            ],
        ),
    ];
    for (name, pays) in scenarios {
        let steps: Vec<&str> = pays.iter().copied().chain(erase).chain([check]).collect();
        let (good, junit) = run_scenario("tenants", name, GDPR, &steps, Break::Nothing);
        assert_eq!(good.failed, 0, "{name}: an erasure in acme failed for globex's data: {junit}");
        for broken in [Break::ErasesAcrossTenants, Break::KeepsErasedData] {
            let (bad, junit) = run_scenario("tenants", name, GDPR, &steps, broken);
            assert!(bad.failed > 0, "{name}: passed against a ledger that {broken:?}");
            let said = match broken {
                Break::ErasesAcrossTenants => "of tenant globex",
                _ => "still holds personal data of cus_1",
            };
            assert!(junit.contains(said), "{name}: {broken:?} was not caught by the erasure check: {junit}");
        }
    }
}

/// An absence is asserted of a whole value the scenario sent (or a word of one, of four
/// characters or more), never of a part of one: "4111 1111" is absent from a card stored as
/// "4111111111111111", and would prove nothing. A number is looked for with and without its
/// separators, so a card stored or answered without its spaces is found.
#[test]
fn an_absence_of_a_part_of_a_value_is_refused_and_numbers_are_found_without_separators() {
    const PCI: (&str, &str) = ("pci_dss", "PCI-DSS-3.4");
    let pays = "When tenant acme pays 1999 EUR with card \"4111 1111 1111 1111\"";
    let refused = "its absence proves nothing";
    let stored = ["Then the answer is 201", "And no stored item contains \"4111 1111 1111 1111\""];
    let (good, junit) =
        run_scenario("absence-forms", "stored", PCI, &[&[pays][..], &stored].concat(), Break::Nothing);
    assert_eq!(good.failed, 0, "{junit}");
    let (bad, junit) = run_scenario(
        "absence-forms",
        "stored",
        PCI,
        &[&[pays][..], &stored].concat(),
        Break::StoresCardAsNumber,
    );
    assert!(bad.failed > 0 && junit.contains("in clear"), "a card stored without its spaces passed: {junit}");
    let answered = ["Then the answer is 201", "And the answer does not contain \"4111 1111 1111 1111\""];
    let (good, junit) =
        run_scenario("absence-forms", "answered", PCI, &[&[pays][..], &answered].concat(), Break::Nothing);
    assert_eq!(good.failed, 0, "{junit}");
    let (_, junit) = run_scenario(
        "absence-forms",
        "answered",
        PCI,
        &[&[pays][..], &answered].concat(),
        Break::AnswersCard,
    );
    assert!(junit.contains("the answer contains"), "a card answered without its spaces passed: {junit}");
    for (name, part) in [
        ("stored-part", "And no stored item contains \"4111 1111\""),
        ("answered-part", "And the answer does not contain \"4111 1111\""),
        ("short-word", "And the answer does not contain \"411\""),
    ] {
        let (bad, junit) = run_scenario(
            "absence-forms",
            name,
            PCI,
            &[pays, "Then the answer is 201", part],
            Break::StoresCardAsNumber,
        );
        assert!(
            bad.failed > 0 && junit.contains(refused),
            "{name}: an absence of a part of the card was accepted: {junit}"
        );
    }
    // A whole word of a value sent, four characters or more, is one.
    let (word, junit) = run_scenario(
        "absence-forms",
        "word",
        PCI,
        &[pays, "Then the answer is 201", "And the answer does not contain \"Lovelace\""],
        Break::Nothing,
    );
    assert_eq!(word.failed, 0, "{junit}");
}

/// A service may keep what it was sent in another case (a mailer folds names and emails)
/// and still keeps it: the erasure, the stored-item and the answer checks compare without
/// case, so a name sent as "Ada Lovelace" and kept as "ada lovelace" (an email sent as
/// "ada@example.com", kept as "ADA@EXAMPLE.COM") is found.
#[test]
fn personal_data_kept_in_another_case_is_found() {
    const GDPR: (&str, &str) = ("gdpr", "GDPR-Art.17");
    let erased = [
        "When tenant acme pays 500 EUR with card \"4111 1111 1111 1111\" for customer \"Ada Lovelace\"",
        "And tenant acme erases customer cus_1",
        "Then the answer is 200",
    ];
    let checks: [(&str, &[&str], &str); 3] = [
        (
            "erased",
            &["And no stored payment of tenant acme names customer cus_1"],
            "still holds personal data",
        ),
        ("stored", &["And no stored item contains \"Ada Lovelace\""], "in clear"),
        (
            "answered",
            &["When tenant acme reads the last payment", "Then the answer does not contain \"Ada Lovelace\""],
            "the answer contains",
        ),
    ];
    for (name, check, said) in checks {
        let steps = [&erased[..], check].concat();
        let (good, junit) = run_scenario("case", name, GDPR, &steps, Break::Nothing);
        assert_eq!(good.failed, 0, "{name}: {junit}");
        let (bad, junit) = run_scenario("case", name, GDPR, &steps, Break::FoldsContactCase);
        assert!(
            bad.failed > 0 && junit.contains(said),
            "{name}: a contact kept in another case passed: {junit}"
        );
    }
}

/// A number is found however the service separates its digits: a card sent with spaces, or
/// with none, and stored in groups joined by dashes.
#[test]
fn a_number_stored_with_other_separators_is_found() {
    const PCI: (&str, &str) = ("pci_dss", "PCI-DSS-3.4");
    for (name, card) in [("spaced", "4111 1111 1111 1111"), ("bare", "4111111111111111")] {
        let pays = format!("When tenant acme pays 1999 EUR with card \"{card}\"");
        let check = format!("And no stored item contains \"{card}\"");
        let steps = [pays.as_str(), "Then the answer is 201", check.as_str()];
        let (good, junit) = run_scenario("separators", name, PCI, &steps, Break::Nothing);
        assert_eq!(good.failed, 0, "{name}: {junit}");
        let (bad, junit) = run_scenario("separators", name, PCI, &steps, Break::StoresCardWithDashes);
        assert!(
            bad.failed > 0 && junit.contains("in clear"),
            "{name}: a card stored with dashes passed: {junit}"
        );
    }
}

/// A binary value that is not ciphertext (a MessagePack profile, decoded with a few
/// replacement characters) still holds the words in it: a country kept there after the
/// erasure is found.
#[test]
fn a_country_kept_inside_a_binary_value_is_found() {
    const GDPR: (&str, &str) = ("gdpr", "GDPR-Art.17");
    let steps = [
        "When tenant acme pays for a customer in DE",
        "And tenant acme erases customer cus_1",
        "Then the answer is 200",
        "And no stored payment of tenant acme names customer cus_1",
    ];
    let (good, junit) = run_scenario("binary", "country", GDPR, &steps, Break::Nothing);
    assert_eq!(good.failed, 0, "{junit}");
    let (bad, junit) = run_scenario("binary", "country", GDPR, &steps, Break::KeepsCountryInBinary);
    assert!(
        bad.failed > 0 && junit.contains("still holds personal data"),
        "a country kept in a binary profile passed: {junit}"
    );
}
