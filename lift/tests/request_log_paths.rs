//! The request log's completion event names the route, and never puts card numbers, email
//! addresses or other identifiers from the request path in the logs, whatever subscriber
//! writes them.
#![cfg(feature = "observability")]

use std::convert::Infallible;

use http::{Request, StatusCode};
use lift::middleware::logging::{LogConfig, MemoryWriter, RequestLogLayer};
use lift::{App, Body, Response};
use tower::{Layer, ServiceExt};
use tracing_subscriber::layer::SubscriberExt;

const CARD: &str = "4111111111111111";
const EMAIL: &str = "ada@example.com";

/// `tracing_subscriber`'s own text format at debug: it scrubs nothing.
fn plain(logs: &MemoryWriter) -> tracing::subscriber::DefaultGuard {
    let subscriber = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .finish();
    tracing::subscriber::set_default(subscriber)
}

fn get(uri: &str) -> lift::Request {
    Request::get(uri).body(Body::empty()).unwrap()
}

async fn payment(_req: lift::Request) -> Response {
    Response::default()
}

/// The one completion line (`request completed` or `request failed`).
fn completion(logs: &MemoryWriter) -> String {
    let lines: Vec<String> = logs.lines().into_iter().filter(|l| l.contains("request ")).collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    lines[0].clone()
}

fn assert_no_identifiers(logs: &MemoryWriter) {
    let text = logs.contents();
    for leak in [CARD, "4111%201111", "4111 1111", EMAIL, "ada%40example.com", "ada@"] {
        assert!(!text.contains(leak), "{leak} in the logs: {text}");
    }
}

#[tokio::test]
async fn a_routed_request_logs_the_route_pattern_not_the_card_number_in_its_path() {
    let logs = MemoryWriter::new();
    let _guard = plain(&logs);
    let app = App::new().get("/payments/:id", payment).layer(RequestLogLayer::new()).into_service();
    let res = app.oneshot(get(&format!("/payments/{CARD}"))).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let line = completion(&logs);
    assert!(line.contains(r#"path="/payments/:id""#) && line.contains("status=200"), "{line}");
    assert_no_identifiers(&logs);
}

#[tokio::test]
async fn an_unrouted_path_is_logged_with_its_card_numbers_and_emails_masked() {
    let app = || App::new().get("/payments/:id", payment).layer(RequestLogLayer::new()).into_service();
    for (uri, logged) in [
        (format!("/users/{EMAIL}/cards/{CARD}"), "/users/[REDACTED:email]/cards/[REDACTED:pan]"),
        // Encoded, they hide nothing either.
        (
            "/users/ada%40example.com/cards/4111%201111%201111%201111".to_owned(),
            "/users/[REDACTED:email]/cards/[REDACTED:pan]",
        ),
    ] {
        let logs = MemoryWriter::new();
        let _guard = plain(&logs);
        let res = app().oneshot(get(&uri)).await.unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        let line = completion(&logs);
        assert!(line.contains(&format!("path=\"{logged}\"")) && line.contains("status=404"), "{line}");
        assert_no_identifiers(&logs);
    }
}

#[tokio::test]
async fn a_failed_request_logs_its_path_masked() {
    let logs = MemoryWriter::new();
    let _guard = plain(&logs);
    let svc = RequestLogLayer::new().layer(tower::service_fn(|_req: lift::Request| async {
        Err::<Response, _>(std::io::Error::other("ledger down"))
    }));
    assert!(svc.oneshot(get(&format!("/refunds/{CARD}/{EMAIL}"))).await.is_err());
    let line = completion(&logs);
    assert!(line.contains("request failed"), "{line}");
    assert!(line.contains(r#"path="/refunds/[REDACTED:pan]/[REDACTED:email]""#), "{line}");
    assert_no_identifiers(&logs);
}

#[tokio::test]
async fn a_plain_path_is_logged_as_it_is() {
    let logs = MemoryWriter::new();
    let _guard = plain(&logs);
    let svc = RequestLogLayer::new()
        .layer(tower::service_fn(|_req: lift::Request| async { Ok::<_, Infallible>(Response::default()) }));
    svc.oneshot(get("/payments/pay_7f3a/refunds?limit=5")).await.unwrap();
    let line = completion(&logs);
    assert!(line.contains(r#"path="/payments/pay_7f3a/refunds""#) && line.contains("method=GET"), "{line}");
}

#[tokio::test]
async fn lift_json_logs_mask_an_email_in_the_path_too() {
    // Lift's own format scrubs card numbers in any field, but reads no email in a path.
    let logs = MemoryWriter::new();
    let layer = LogConfig::new().level(tracing::Level::DEBUG).writer(logs.clone()).build().unwrap();
    let _guard = tracing::subscriber::set_default(tracing_subscriber::registry().with(layer));
    let svc = RequestLogLayer::new()
        .layer(tower::service_fn(|_req: lift::Request| async { Ok::<_, Infallible>(Response::default()) }));
    svc.oneshot(get(&format!("/users/{EMAIL}/orders"))).await.unwrap();
    let line: serde_json::Value = serde_json::from_str(&completion(&logs)).unwrap();
    assert_eq!(line["path"], "/users/[REDACTED:email]/orders");
    assert_no_identifiers(&logs);
}
