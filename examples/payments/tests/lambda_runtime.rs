//! The payments service's real Lambda binary (`payments`) in the harness's local Lambda
//! runtime, on DynamoDB Local: create, get, list and refund through the API Gateway HTTP API
//! front, and the Invoke API as the stock `aws lambda invoke` calls it; no card number in
//! an answer or the function's log.

mod support;

use http::Method;
use lift_harness::dynamodb::DynamoDbLocal;
use lift_harness::lambda::http_api::HttpApi;
use lift_harness::lambda::invoke_api::InvokeApi;
use lift_harness::lambda::sandbox::aws_cli_for_test;
use lift_harness::lambda::{Function, LocalLambda};
use serde_json::{json, Value};
use std::time::Duration;

/// The card number in `fixtures/apigw_v2_create_payment.json` (its body, base64), which the
/// request sends as `4111 1111 1111 1111`.
const FIXTURE_PAN: &str = "4111111111111111";

/// The card numbers in `text`, found without lift's own detector (a blind spot the scrubber and
/// its test shared would hide a leak): runs of 13 to 19 digits, in one piece or in groups joined
/// by single spaces or dashes, not inside a word or a decimal number (the fraction of a
/// latency in an EMF document has 15 digits), starting with an issuer digit from 2 to 6
/// (every card network but UATP, whose 1 is also how Unix timestamps in s, ms, µs and ns
/// start), that pass the Luhn check. Each run of whole consecutive groups counts, so a card
/// number written next to another number is found too.
fn card_numbers_in(text: &str) -> Vec<String> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let word_before = i > 0 && (bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        let fraction = i > 1 && bytes[i - 1] == b'.' && bytes[i - 2].is_ascii_digit();
        if !bytes[i].is_ascii_digit() || word_before || fraction {
            i += 1;
            continue;
        }
        // A chain: digit groups joined by one space or dash each.
        let mut groups: Vec<&str> = Vec::new();
        let mut end = i;
        loop {
            let start = end;
            while end < bytes.len() && bytes[end].is_ascii_digit() {
                end += 1;
            }
            groups.push(&text[start..end]);
            let joined =
                end + 1 < bytes.len() && matches!(bytes[end], b' ' | b'-') && bytes[end + 1].is_ascii_digit();
            if !joined {
                break;
            }
            end += 1;
        }
        let word_after = end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_');
        let decimal = end + 1 < bytes.len() && bytes[end] == b'.' && bytes[end + 1].is_ascii_digit();
        if !word_after && !decimal {
            for first in 0..groups.len() {
                let mut digits = String::new();
                for group in &groups[first..] {
                    digits.push_str(group);
                    let issuer = matches!(digits.as_bytes()[0], b'2'..=b'6');
                    if (13..=19).contains(&digits.len()) && issuer && payments::card::luhn_valid(&digits) {
                        found.push(digits.clone());
                    }
                }
            }
        }
        i = end.max(i + 1);
    }
    found
}

#[test]
fn the_card_scan_finds_card_numbers_however_written_and_not_timestamps() {
    assert_eq!(card_numbers_in("card 4111111111111111."), ["4111111111111111"]);
    assert_eq!(card_numbers_in(r#"{"pan":"4111 1111 1111 1111"}"#), ["4111111111111111"]);
    assert_eq!(card_numbers_in("pan=3782-822463-10005 ok"), ["378282246310005"]);
    assert_eq!(card_numbers_in("at 20240115 4012888888881881 then"), ["4012888888881881"]);
    assert!(card_numbers_in("4111111111111112").is_empty(), "not Luhn-valid");
    assert!(card_numbers_in("id a4111111111111111b").is_empty(), "inside a word");
    // Luhn-valid numbers that are timestamps in ms and µs, and decimals.
    assert!(card_numbers_in(r#"{"Timestamp":1795378503001,"us":1795378503000009}"#).is_empty());
    assert!(card_numbers_in(r#"{"Latency":28.4111111111111111,"x":4111111111111111.5}"#).is_empty());
    assert!(card_numbers_in("411111******1111 last4 1111").is_empty(), "masked");
}

/// Every card number that reached `text`, by the forms a leak takes: the fixture's card
/// number in one piece or spaced, and any card number ([`card_numbers_in`]).
fn leaked_card_numbers(text: &str) -> Vec<String> {
    let spaced = FIXTURE_PAN
        .as_bytes()
        .chunks(4)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(" ");
    let mut leaked = card_numbers_in(text);
    leaked.extend([FIXTURE_PAN.to_owned(), spaced].into_iter().filter(|form| text.contains(form.as_str())));
    leaked
}

/// The payments binary as a function, over the test's tables, trusting the mocked issuer.
async fn payments_function(env: &support::Env) -> Function {
    let ddb = DynamoDbLocal::shared().await.expect("DynamoDB Local");
    let idempotency = ddb.create_table(&lift::store::tables::idempotency()).await.expect("idempotency table");
    // Every table the stack writes is the test's own: none may depend on another test having
    // made a default-named one on the shared instance.
    let rate_limits = ddb.create_table(&lift::store::tables::rate_limits()).await.expect("rate limit table");
    let audit = ddb.create_table(&lift::store::tables::audit()).await.expect("audit table");
    Function::builder("payments", env!("CARGO_BIN_EXE_payments"))
        .memory_mb(256)
        .timeout_secs(10)
        .env("PAYMENTS_TABLE", &env.table)
        .env("PAYMENTS_IDEMPOTENCY_TABLE", idempotency)
        .env("PAYMENTS_RATE_LIMIT_TABLE", rate_limits)
        .env("PAYMENTS_AUDIT_TABLE", audit)
        .env("PAYMENTS_FINGERPRINT_KEY", std::str::from_utf8(support::FINGERPRINT_KEY).unwrap())
        .env("PAYMENTS_JWT_ISSUER", env.jwks.issuer())
        .env("PAYMENTS_JWKS_URL", env.jwks.jwks_url())
        .env("AWS_ENDPOINT_URL_DYNAMODB", ddb.endpoint())
        .build()
        .expect("a valid function")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_binary_serves_create_get_list_and_refund_through_the_http_api_front() {
    let env = support::env_with(false).await;
    let lambda = LocalLambda::builder().function(payments_function(&env).await).build().unwrap();
    let front = HttpApi::start(lambda.clone(), "payments", "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let bearer = format!("Bearer {}", env.token("acme", support::ALL_SCOPES));
    let auth = |key: &'static str| [("authorization", bearer.clone()), ("idempotency-key", key.to_owned())];
    let headers = |pairs: &[(&'static str, String)]| -> Vec<(&'static str, String)> {
        let mut h = vec![("content-type", "application/json".to_owned())];
        h.extend(pairs.iter().cloned());
        h
    };
    // Each request waits for the sandbox to be parked again (its runtime asked for the next
    // invocation and it is frozen), as Lambda's would be before a client's next request: one
    // sent before that finds the sandbox busy and starts another, as on Lambda, and the
    // number of cold starts would depend on how loaded the machine is.
    let send = |method: Method, path: String, h: Vec<(&'static str, String)>, body: Option<Value>| {
        let (front, lambda) = (&front, &lambda);
        async move {
            let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let body = body.map(|b| b.to_string()).unwrap_or_default();
            let res = front.send(method, &path, &h, body).await.expect("the front answers");
            assert!(lambda.settle("payments", Duration::from_secs(10)).await, "the sandbox never parked");
            res
        }
    };

    let body = support::new_payment(2500, "USD");
    let pan = body["card_number"].as_str().unwrap().to_owned();
    let created =
        send(Method::POST, "/payments".into(), headers(&auth("create-1")), Some(body.clone())).await;
    assert_eq!(created.status, 201, "{:?}", String::from_utf8_lossy(&created.body));
    assert!(!String::from_utf8_lossy(&created.body).contains(&pan), "the card number is echoed");
    let payment = created.json();
    let id = payment["id"].as_str().unwrap().to_owned();
    assert_eq!(payment["amount"], 2500);
    assert_eq!(payment["card"]["last4"], &pan[pan.len() - 4..]);
    // Stored in DynamoDB Local by the binary, read back by the test's own store.
    assert_eq!(env.store.get("acme", &id).await.unwrap().amount, 2500);

    let got =
        send(Method::GET, format!("/payments/{id}"), headers(&[("authorization", bearer.clone())]), None)
            .await;
    assert_eq!(got.status, 200);
    assert_eq!(got.json(), payment);

    let list =
        send(Method::GET, "/payments".into(), headers(&[("authorization", bearer.clone())]), None).await;
    assert_eq!(list.status, 200);
    assert_eq!(list.json()["payments"][0]["id"], id.as_str());

    let refund_path = format!("/payments/{id}/refunds");
    let refund =
        send(Method::POST, refund_path.clone(), headers(&auth("refund-1")), Some(json!({"amount": 1000})))
            .await;
    assert_eq!(refund.status, 201, "{:?}", String::from_utf8_lossy(&refund.body));
    assert_eq!(refund.json()["payment"]["status"], "partially_refunded");
    // A retry with the same key replays the answer and refunds nothing more.
    let replay =
        send(Method::POST, refund_path, headers(&auth("refund-1")), Some(json!({"amount": 1000}))).await;
    assert_eq!(replay.status, 201);
    assert_eq!(env.store.get("acme", &id).await.unwrap().refunded_amount, 1000);

    // Another tenant sees nothing; no token gets nothing.
    let other = format!("Bearer {}", env.token("globex", support::ALL_SCOPES));
    let hidden =
        send(Method::GET, format!("/payments/{id}"), headers(&[("authorization", other)]), None).await;
    assert_eq!(hidden.status, 404);
    let anonymous = send(Method::GET, format!("/payments/{id}"), headers(&[]), None).await;
    assert_eq!(anonymous.status, 401);

    // Everything the sandbox printed, read to the end of its pipes (and every REPORT, each
    // written when the runtime asked for its next invocation): an absence is checked on the
    // whole log, not on what had been read when the last answer came.
    let log: Vec<String> = lambda.drained_logs("payments").await.into_iter().map(|l| l.message).collect();
    // One sandbox served them all: the first invocation cold, the rest warm.
    let reports = lambda.reports("payments");
    assert!(reports.len() >= 7, "{reports:?}");
    assert!(reports[0].init_duration.is_some());
    assert_eq!(lambda.cold_starts("payments"), 1);
    assert!(reports.iter().all(|r| r.memory_size_mb == 256 && r.max_memory_used_mb > 0));
    // Sensitive data never reaches the function's log: not this card number, not any other.
    assert!(log.iter().all(|l| !l.contains(&pan)), "the card number is logged");
    let leaked: Vec<String> = log.iter().flat_map(|l| card_numbers_in(l)).collect();
    assert!(leaked.is_empty(), "card numbers in the log: {leaked:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stock_aws_cli_invokes_the_real_binary_through_the_invoke_api() {
    // A skip is printed past the capture, and fails under CI's LIFT_REQUIRE_CGROUPS=1.
    if !aws_cli_for_test("the_stock_aws_cli_invokes_the_real_binary_through_the_invoke_api") {
        return;
    }
    let env = support::env_with(false).await;
    let lambda = LocalLambda::builder().function(payments_function(&env).await).build().unwrap();
    let api = InvokeApi::start(lambda.clone(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let mut event: Value =
        serde_json::from_str(include_str!("fixtures/apigw_v2_create_payment.json")).unwrap();
    let headers = event["headers"].as_object_mut().unwrap();
    headers.remove(payments::DEV_TENANT_HEADER);
    headers
        .insert("authorization".into(), format!("Bearer {}", env.token("acme", support::ALL_SCOPES)).into());
    headers.insert("idempotency-key".into(), "cli-create-1".into());
    let dir = std::env::temp_dir().join(format!("lift-payments-lambda-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let event_file = dir.join("event.json");
    std::fs::write(&event_file, event.to_string()).unwrap();
    let out_file = dir.join("out.json");
    let run = tokio::process::Command::new("aws")
        .args(["lambda", "invoke", "--endpoint-url", &api.endpoint(), "--region", "us-east-1"])
        .args(["--function-name", "payments", "--payload"])
        .arg(format!("file://{}", event_file.display()))
        .arg(&out_file)
        .env("AWS_ACCESS_KEY_ID", "local")
        .env("AWS_SECRET_ACCESS_KEY", "local")
        .output()
        .await
        .expect("the aws CLI runs");
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let printed: Value = serde_json::from_slice(&run.stdout).unwrap();
    assert_eq!(printed["StatusCode"], 200);
    assert!(printed.get("FunctionError").is_none(), "{printed}");
    let answer: Value = serde_json::from_slice(&std::fs::read(&out_file).unwrap()).unwrap();
    assert_eq!(answer["statusCode"], 201, "{answer}");
    let payment: Value = serde_json::from_str(answer["body"].as_str().unwrap()).unwrap();
    assert_eq!(payment["amount"], 1999);
    let leaked = leaked_card_numbers(&answer.to_string());
    assert!(leaked.is_empty(), "card numbers in the answer: {leaked:?}");
    let log: Vec<String> = lambda.drained_logs("payments").await.into_iter().map(|l| l.message).collect();
    let leaked = leaked_card_numbers(&log.join("\n"));
    assert!(leaked.is_empty(), "card numbers in the log: {leaked:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
