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

use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use http::StatusCode;
use lift::app::App;
use lift::middleware::auth::require_scope;
use lift::middleware::logging::tracing_subscriber::fmt::MakeWriter as _;
use lift::middleware::logging::MemoryWriter;
use lift::store::{KeyAttribute, TableDef};
use lift::{Context, Request, Response};
use lift_harness::compliance::{Assembly, ComplianceTarget, TargetEnv};

/// How the handler, or the service around it, breaks its rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Break {
    Nothing,
    LogsCardNumber,
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
/// for, from the description), `GET /payments/:id` (which fails, unless the service is
/// open), `DELETE /customers/:id`.
#[derive(Debug, Clone, Copy)]
struct Ledger(Break);

#[derive(Clone)]
struct Shared {
    client: aws_sdk_dynamodb::Client,
    table: String,
    logs: MemoryWriter,
    broken: Break,
}

fn tenant(req: &Request) -> String {
    Context::of(req).and_then(Context::principal).map(|p| p.tenant.clone()).unwrap_or_default()
}

impl Shared {
    fn log(&self, line: &str) {
        let _ = writeln!(self.logs.make_writer(), "{line}");
    }

    async fn pay(&self, req: Request) -> Response {
        let body: serde_json::Value = serde_json::from_slice(req.body().as_bytes()).unwrap_or_default();
        let pan = body["card_number"].as_str().unwrap_or_default().replace(' ', "");
        let email = body["customer"]["email"].as_str().unwrap_or_default().to_owned();
        match self.broken {
            Break::LogsCardNumber => self.log(&format!("charging card {pan}")),
            Break::LogsEmail => self.log(&format!("receipt sent to {email}")),
            _ => self.log("{\"level\":\"INFO\",\"message\":\"payment created\"}"),
        }
        let id = format!("pay_{}", uuid::Uuid::new_v4().simple());
        let last4 = pan.get(pan.len().saturating_sub(4)..).unwrap_or_default().to_owned();
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", AttributeValue::S(format!("TENANT#{}", tenant(&req))))
            .item("sk", AttributeValue::S(id.clone()))
            .item("card_last4", AttributeValue::S(last4.clone()))
            .item(
                "customer_id",
                AttributeValue::S(body["customer"]["id"].as_str().unwrap_or_default().into()),
            )
            .item(
                "customer_name",
                AttributeValue::S(body["customer"]["name"].as_str().unwrap_or_default().into()),
            )
            .item("treatment", AttributeValue::S(body["description"].as_str().unwrap_or_default().into()))
            .send()
            .await
            .expect("store the payment");
        let mut answer = serde_json::json!({ "id": id, "card": { "last4": last4 } });
        match self.broken {
            Break::AnswersCvv => answer["card"]["cvv"] = "123".into(),
            Break::AnswersSecret => answer["debug_key"] = "AKIAIOSFODNN7EXAMPLE".into(),
            _ => {}
        }
        lift::json_response(StatusCode::CREATED, &answer)
    }

    async fn read(&self, req: Request) -> Response {
        if self.broken == Break::OpensPayments {
            // Answers whoever asks: the route is public, the tenant is whatever the caller has.
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
            let treatment =
                found.item().and_then(|i| i.get("treatment")).and_then(|v| v.as_s().ok()).cloned();
            return lift::json_response(
                StatusCode::OK,
                &serde_json::json!({ "id": id, "treatment": treatment }),
            );
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
        let customer = lift::path_param(&req, "id").unwrap_or_default().to_owned();
        if self.broken != Break::KeepsErasedData {
            let items = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", AttributeValue::S(format!("TENANT#{}", tenant(&req))))
                .send()
                .await
                .expect("query the tenant's payments");
            for item in items.items() {
                if item.get("customer_id").and_then(|v| v.as_s().ok()) != Some(&customer) {
                    continue;
                }
                self.client
                    .update_item()
                    .table_name(&self.table)
                    .key("pk", item["pk"].clone())
                    .key("sk", item["sk"].clone())
                    .update_expression("REMOVE customer_name")
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
            Break::ForgetsCompliance => Assembly::default().without_compliance(),
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
        ("pci_dss_3_2_2.feature", Break::AnswersCvv, Some("PCI-DSS 3.2.2")),
        ("gdpr_art_32.feature", Break::LogsEmail, Some("GDPR Art. 32")),
        ("gdpr_art_17.feature", Break::KeepsErasedData, None),
        ("soc2_cc6_7.feature", Break::AnswersSecret, Some("SOC2 CC6.7")),
        ("soc2_cc7_2.feature", Break::FailsSilently, Some("SOC2 CC7.2")),
        ("pci_dss_10_2_1.feature", Break::ForgetsAudit, Some("PCI-DSS 10.2.1")),
        ("hipaa_164_312_b.feature", Break::ForgetsAudit, Some("HIPAA 164.312(b)")),
        ("pci_dss_4_2_1.feature", Break::ForgetsCompliance, None),
        ("hipaa_164_312_e_1.feature", Break::ForgetsCompliance, None),
        ("hipaa_164_312_a_1.feature", Break::OpensPayments, Some("HIPAA 164.312(a)(1)")),
        ("soc2_cc6_1.feature", Break::OpensPayments, Some("SOC2 CC6.1")),
        ("gdpr_art_44.feature", Break::PinsUsRegion, Some("GDPR Art. 44")),
    ];
    let features = lift_harness::compliance::library::feature_files(&dir);
    assert_eq!(features.len(), cases.len(), "a case per must-fail feature: {features:?}");
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
