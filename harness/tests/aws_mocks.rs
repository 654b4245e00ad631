//! The AWS mocks over raw HTTP, in the wire format SDKs send, and through the `aws` CLI.

use std::error::Error as _;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};
use lift_harness::aws::{Alg, AwsMocks, Fault, FaultKind, AWSCURRENT, AWSPREVIOUS};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const JSON_1_1: &str = "application/x-amz-json-1.1";
const JSON_1_0: &str = "application/x-amz-json-1.0";
const FORM: &str = "application/x-www-form-urlencoded; charset=utf-8";
const STS_QUERY_BODY: &str = "Action=GetCallerIdentity&Version=2011-06-15";

struct Reply {
    status: u16,
    content_type: String,
    body: Bytes,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not json ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Sends a request the way an AWS SDK does: POST /, signed-looking headers.
async fn send(
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Result<Reply, hyper_util::client::legacy::Error> {
    let mut request =
        http::Request::builder().method(method).uri(uri).header("x-amz-date", "20250101T000000Z").header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=AKIDTEST/20250101/us-east-1/svc/aws4_request, \
             SignedHeaders=host;x-amz-date, Signature=00",
        );
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Full::new(body.into())).unwrap();
    let response = client().request(request).await?;
    let status = response.status().as_u16();
    let content_type =
        response.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Ok(Reply { status, content_type, body })
}

async fn aws_json(uri: &str, target: &str, content_type: &str, body: Value) -> Reply {
    let headers = [("x-amz-target", target), ("content-type", content_type)];
    send("POST", &format!("{uri}/"), &headers, body.to_string()).await.expect("the mock answers")
}

async fn get_secret(mocks: &AwsMocks, body: Value) -> Reply {
    let target = "secretsmanager.GetSecretValue";
    aws_json(&mocks.secrets.uri(), target, JSON_1_1, body).await
}

async fn kms(mocks: &AwsMocks, operation: &str, body: Value) -> Reply {
    let target = format!("TrentService.{operation}");
    aws_json(&mocks.kms.uri(), &target, JSON_1_1, body).await
}

async fn sts_query(mocks: &AwsMocks) -> Result<Reply, hyper_util::client::legacy::Error> {
    let uri = format!("{}/", mocks.sts.uri());
    send("POST", &uri, &[("content-type", FORM)], STS_QUERY_BODY).await
}

fn xml_field<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let start = xml.find(&format!("<{tag}>"))? + tag.len() + 2;
    let end = xml[start..].find(&format!("</{tag}>"))? + start;
    Some(&xml[start..end])
}

#[tokio::test]
async fn get_secret_value_returns_the_stored_value_and_records_the_call() {
    let mocks = AwsMocks::start().await.unwrap();
    let put = mocks.secrets.put_secret("lift/db-password", "s3cr3t");

    let reply = get_secret(&mocks, json!({"SecretId": "lift/db-password"})).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.content_type, JSON_1_1);
    let body = reply.json();
    assert_eq!(body["SecretString"], "s3cr3t");
    assert_eq!(body["Name"], "lift/db-password");
    assert_eq!(body["VersionId"], put.version_id.as_str());
    assert_eq!(body["VersionStages"], json!([AWSCURRENT]));
    assert!(body["CreatedDate"].as_f64().unwrap() > 1.6e9);
    let arn = body["ARN"].as_str().unwrap();
    assert_eq!(arn, put.arn);
    assert!(
        arn.starts_with("arn:aws:secretsmanager:us-east-1:000000000000:secret:lift/db-password-"),
        "{arn}"
    );

    let by_arn = get_secret(&mocks, json!({"SecretId": arn, "VersionStage": AWSCURRENT})).await;
    assert_eq!(by_arn.json()["SecretString"], "s3cr3t");

    let calls = mocks.secrets.calls_to("GetSecretValue");
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].body["SecretId"], "lift/db-password");
    assert_eq!(calls[1].body["SecretId"], arn);
    assert_eq!(calls[0].header("x-amz-target"), Some("secretsmanager.GetSecretValue"));
    assert_eq!(calls[0].method, http::Method::POST);
    assert!(calls[0].fault.is_none());
    assert!(calls[0].at <= calls[1].at);
    assert_eq!(mocks.secrets.calls().len(), 2);
    assert!(mocks.kms.calls().is_empty());
}

#[tokio::test]
async fn rotation_adds_a_version_and_binary_secrets_come_back_as_base64() {
    let mocks = AwsMocks::start().await.unwrap();
    let first = mocks.secrets.put_secret("api-key", "v1");
    let second = mocks.secrets.rotate_secret("api-key", "v2").unwrap();
    assert_ne!(first.version_id, second.version_id);
    assert!(mocks.secrets.rotate_secret("missing", "x").is_err());

    let current = get_secret(&mocks, json!({"SecretId": "api-key"})).await.json();
    assert_eq!(current["SecretString"], "v2");
    assert_eq!(current["VersionId"], second.version_id.as_str());
    let previous = json!({"SecretId": "api-key", "VersionStage": AWSPREVIOUS});
    let previous = get_secret(&mocks, previous).await.json();
    assert_eq!(previous["SecretString"], "v1");
    assert_eq!(previous["VersionStages"], json!([AWSPREVIOUS]));
    let by_id = json!({"SecretId": "api-key", "VersionId": first.version_id});
    assert_eq!(get_secret(&mocks, by_id).await.json()["SecretString"], "v1");

    mocks.secrets.put_secret_binary("blob", &[0, 159, 255]);
    let binary = get_secret(&mocks, json!({"SecretId": "blob"})).await.json();
    assert_eq!(binary["SecretBinary"], B64.encode([0u8, 159, 255]));
    assert!(binary.get("SecretString").is_none());
}

#[tokio::test]
async fn unknown_secret_is_resource_not_found() {
    let mocks = AwsMocks::start().await.unwrap();
    let reply = get_secret(&mocks, json!({"SecretId": "nope"})).await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.content_type, JSON_1_1);
    assert_eq!(
        reply.json(),
        json!({
            "__type": "ResourceNotFoundException",
            "Message": "Secrets Manager can't find the specified secret."
        })
    );
}

#[tokio::test]
async fn kms_data_key_decrypts_to_the_same_plaintext() {
    let mocks = AwsMocks::start().await.unwrap();
    let key = mocks.kms.create_key("alias/payments").unwrap();
    let context = json!({"tenant": "t-1", "purpose": "card"});

    let generated = kms(
        &mocks,
        "GenerateDataKey",
        json!({"KeyId": "alias/payments", "KeySpec": "AES_256", "EncryptionContext": context}),
    )
    .await;
    assert_eq!(generated.status, 200, "{}", generated.text());
    let generated = generated.json();
    let plaintext = B64.decode(generated["Plaintext"].as_str().unwrap()).unwrap();
    assert_eq!(plaintext.len(), 32);
    assert_eq!(generated["KeyId"], key.arn.as_str());
    assert_eq!(key.arn, format!("arn:aws:kms:us-east-1:000000000000:key/{}", key.id));
    let blob = generated["CiphertextBlob"].as_str().unwrap();
    assert_ne!(B64.decode(blob).unwrap(), plaintext);

    let decrypted =
        kms(&mocks, "Decrypt", json!({"CiphertextBlob": blob, "EncryptionContext": context})).await;
    assert_eq!(decrypted.status, 200, "{}", decrypted.text());
    let decrypted = decrypted.json();
    assert_eq!(decrypted["Plaintext"], generated["Plaintext"]);
    assert_eq!(decrypted["KeyId"], key.arn.as_str());

    let sixteen = json!({"KeyId": key.id, "NumberOfBytes": 16});
    let sixteen = kms(&mocks, "GenerateDataKey", sixteen).await.json();
    let plaintext = B64.decode(sixteen["Plaintext"].as_str().unwrap()).unwrap();
    assert_eq!(plaintext.len(), 16);
    assert_eq!(mocks.kms.calls_to("GenerateDataKey").len(), 2);
    assert_eq!(mocks.kms.calls_to("Decrypt").len(), 1);
}

#[tokio::test]
async fn kms_decrypt_with_another_context_is_invalid_ciphertext() {
    let mocks = AwsMocks::start().await.unwrap();
    let encrypt = json!({
        "KeyId": "alias/lift-default",
        "Plaintext": B64.encode(b"card 4111"),
        "EncryptionContext": {"tenant": "t-1"},
    });
    let encrypted = kms(&mocks, "Encrypt", encrypt).await;
    assert_eq!(encrypted.status, 200, "{}", encrypted.text());
    let blob = encrypted.json()["CiphertextBlob"].clone();

    for context in [json!({"tenant": "t-2"}), json!({}), json!({"tenant": "t-1", "x": "y"})] {
        let decrypt = json!({"CiphertextBlob": blob, "EncryptionContext": context});
        let reply = kms(&mocks, "Decrypt", decrypt).await;
        assert_eq!(reply.status, 400);
        assert_eq!(reply.json()["__type"], "InvalidCiphertextException");
    }
    let right = json!({"CiphertextBlob": blob, "EncryptionContext": {"tenant": "t-1"}});
    let right = kms(&mocks, "Decrypt", right).await.json();
    assert_eq!(right["Plaintext"], B64.encode(b"card 4111"));
}

#[tokio::test]
async fn kms_tampered_blob_and_unknown_key_are_rejected() {
    let mocks = AwsMocks::start().await.unwrap();
    let generate = json!({"KeyId": "alias/lift-default", "KeySpec": "AES_256"});
    let generated = kms(&mocks, "GenerateDataKey", generate).await.json();
    let mut blob = B64.decode(generated["CiphertextBlob"].as_str().unwrap()).unwrap();
    let last = blob.len() - 1;
    blob[last] ^= 0x01;
    let reply = kms(&mocks, "Decrypt", json!({"CiphertextBlob": B64.encode(&blob)})).await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.json()["__type"], "InvalidCiphertextException");

    let garbage = json!({"CiphertextBlob": B64.encode(b"not a kms blob at all, no")});
    let reply = kms(&mocks, "Decrypt", garbage).await;
    assert_eq!(reply.json()["__type"], "InvalidCiphertextException");

    let unknown = json!({"KeyId": "alias/missing", "KeySpec": "AES_256"});
    let reply = kms(&mocks, "GenerateDataKey", unknown).await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.json()["__type"], "NotFoundException");

    let too_big = json!({"KeyId": "alias/lift-default", "Plaintext": B64.encode([0u8; 4097])});
    let reply = kms(&mocks, "Encrypt", too_big).await;
    assert_eq!(reply.json()["__type"], "ValidationException");
}

#[tokio::test]
async fn sts_answers_the_query_and_json_protocols() {
    let mocks = AwsMocks::start().await.unwrap();
    let identity = mocks.sts.identity();

    let reply = sts_query(&mocks).await.unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.content_type, "text/xml");
    let xml = reply.text();
    assert!(
        xml.starts_with("<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">")
    );
    assert_eq!(xml_field(&xml, "Arn"), Some(identity.arn.as_str()));
    assert_eq!(xml_field(&xml, "UserId"), Some(identity.user_id.as_str()));
    assert_eq!(xml_field(&xml, "Account"), Some("000000000000"));
    assert!(xml_field(&xml, "RequestId").is_some_and(|id| id.len() == 36));

    let target = "AWSSecurityTokenServiceV20110615.GetCallerIdentity";
    let reply = aws_json(&mocks.sts.uri(), target, JSON_1_0, json!({})).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.content_type, JSON_1_0);
    let body = reply.json();
    assert_eq!(body["Arn"], identity.arn.as_str());
    assert_eq!(body["Account"], "000000000000");
    assert_eq!(body["UserId"], identity.user_id.as_str());

    let calls = mocks.sts.calls_to("GetCallerIdentity");
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].body, json!({"Action": "GetCallerIdentity", "Version": "2011-06-15"}));
}

#[tokio::test]
async fn jwks_serves_the_keys_that_verify_signed_tokens() {
    let mocks = AwsMocks::start().await.unwrap();
    let jwks = &mocks.jwks;

    let config = send("GET", &jwks.openid_configuration_url(), &[], "").await.unwrap().json();
    assert_eq!(config["issuer"], jwks.issuer().as_str());
    assert_eq!(config["jwks_uri"], jwks.jwks_url().as_str());

    let claims = jwks.claims("user-1", "payments");
    for alg in [Alg::Rs256, Alg::Es256] {
        let token = jwks.sign(&claims, alg, None).unwrap();
        let set: JwkSet = send("GET", &jwks.jwks_url(), &[], "")
            .await
            .unwrap()
            .json()
            .as_object()
            .map(|o| serde_json::from_value(Value::Object(o.clone())).unwrap())
            .unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        let kid = header.kid.expect("tokens carry a kid");
        let jwk = set.find(&kid).expect("the kid is served");
        let key = DecodingKey::from_jwk(jwk).unwrap();
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[jwks.issuer()]);
        validation.set_audience(&["payments"]);
        let verified = jsonwebtoken::decode::<Value>(&token, &key, &validation).unwrap();
        assert_eq!(verified.claims["sub"], "user-1", "{alg}");

        // A key of the other algorithm in the same set must not verify it.
        let other = set.keys.iter().find(|k| k.common.key_id.as_deref() != Some(&kid));
        let other = DecodingKey::from_jwk(other.unwrap()).unwrap();
        assert!(jsonwebtoken::decode::<Value>(&token, &other, &validation).is_err());
    }
    assert_eq!(mocks.jwks.calls_to("GetJwks").len(), 2);
    assert_eq!(mocks.jwks.calls_to("GetOpenIdConfiguration").len(), 1);
}

#[tokio::test]
async fn jwks_rotation_and_unpublished_keys_change_the_served_set() {
    let mocks = AwsMocks::start().await.unwrap();
    let jwks = &mocks.jwks;
    let first = jwks.published_kids();
    assert_eq!(first.len(), 2);

    let added = jwks.rotate().unwrap();
    assert_eq!(added.len(), 2);
    assert!(added.iter().all(|kid| !first.contains(kid)));
    let token = jwks.sign(&json!({"sub": "u"}), Alg::Rs256, None).unwrap();
    let kid = jsonwebtoken::decode_header(&token).unwrap().kid.unwrap();
    assert!(added.contains(&kid), "signs with the newest key");
    let served = jwks_kids(&mocks).await;
    assert_eq!(served.len(), 4);
    assert!(served.contains(&kid));

    jwks.unpublish(&kid).unwrap();
    assert!(!jwks_kids(&mocks).await.contains(&kid));
    jwks.unpublish_all();
    assert!(jwks_kids(&mocks).await.is_empty());
    jwks.publish(&kid).unwrap();
    assert_eq!(jwks_kids(&mocks).await, vec![kid.clone()]);

    assert!(jwks.sign(&json!({}), Alg::Es256, Some(&kid)).is_err());
    assert!(jwks.sign(&json!({}), Alg::Rs256, Some("nope")).is_err());
}

async fn jwks_kids(mocks: &AwsMocks) -> Vec<String> {
    let set = send("GET", &mocks.jwks.jwks_url(), &[], "").await.unwrap();
    let set = set.json();
    let keys = set["keys"].as_array().unwrap();
    keys.iter().map(|k| k["kid"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn error_fault_answers_n_times_then_normal_again() {
    let mocks = AwsMocks::start().await.unwrap();
    mocks.secrets.put_secret("s", "v");
    mocks.secrets.fault("GetSecretValue", Fault::throttling().times(2));

    for _ in 0..2 {
        let reply = get_secret(&mocks, json!({"SecretId": "s"})).await;
        assert_eq!(reply.status, 400);
        assert_eq!(reply.content_type, JSON_1_1);
        assert_eq!(reply.json(), json!({"__type": "ThrottlingException", "Message": "Rate exceeded"}));
    }
    let reply = get_secret(&mocks, json!({"SecretId": "s"})).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["SecretString"], "v");

    let calls = mocks.secrets.calls_to("GetSecretValue");
    assert_eq!(calls.len(), 3);
    assert!(matches!(&calls[0].fault, Some(FaultKind::AwsError(e)) if e.status == 400));
    assert!(calls[2].fault.is_none());

    mocks.kms.fault("*", Fault::service_unavailable());
    let reply = kms(&mocks, "Encrypt", json!({})).await;
    assert_eq!(reply.status, 503);
    assert_eq!(reply.json()["__type"], "ServiceUnavailable");
    mocks.clear_faults();
    let reply = kms(&mocks, "Encrypt", json!({})).await;
    assert_eq!(reply.json()["__type"], "ValidationException");
}

#[tokio::test]
async fn error_fault_on_sts_query_is_an_xml_error_response() {
    let mocks = AwsMocks::start().await.unwrap();
    mocks.sts.fault("GetCallerIdentity", Fault::aws_error(500, "InternalFailure", "boom").times(1));
    let reply = sts_query(&mocks).await.unwrap();
    assert_eq!(reply.status, 500);
    let xml = reply.text();
    assert!(xml.starts_with("<ErrorResponse"), "{xml}");
    assert_eq!(xml_field(&xml, "Type"), Some("Receiver"));
    assert_eq!(xml_field(&xml, "Code"), Some("InternalFailure"));
    assert_eq!(xml_field(&xml, "Message"), Some("boom"));
    assert_eq!(sts_query(&mocks).await.unwrap().status, 200);
}

#[tokio::test]
async fn delay_fault_delays_a_normal_answer() {
    let mocks = AwsMocks::start().await.unwrap();
    mocks.secrets.put_secret("s", "v");
    let delay = Duration::from_millis(200);
    mocks.secrets.fault("GetSecretValue", Fault::delay(delay).times(1));

    let started = Instant::now();
    let reply = get_secret(&mocks, json!({"SecretId": "s"})).await;
    assert!(started.elapsed() >= delay, "{:?}", started.elapsed());
    assert_eq!(reply.json()["SecretString"], "v");
    let calls = mocks.secrets.calls();
    assert_eq!(calls[0].fault, Some(FaultKind::Delay(delay)));
}

#[tokio::test]
async fn drop_fault_closes_the_connection_without_a_response() {
    let mocks = AwsMocks::start().await.unwrap();
    mocks.sts.fault("GetCallerIdentity", Fault::drop_connection().times(2));

    let error = match sts_query(&mocks).await {
        Ok(reply) => panic!("expected no response, got {}", reply.status),
        Err(error) => error,
    };
    let hyper_error = std::iter::successors(error.source(), |e| (*e).source())
        .find_map(|e| e.downcast_ref::<hyper::Error>())
        .unwrap_or_else(|| panic!("not a hyper error: {error:?}"));
    assert!(hyper_error.is_incomplete_message(), "{hyper_error}");

    // On a raw socket: the request goes out, the connection closes, no byte comes back.
    let address = mocks.sts.uri().trim_start_matches("http://").to_owned();
    let mut socket = tokio::net::TcpStream::connect(&address).await.unwrap();
    let request = format!(
        "POST / HTTP/1.1\r\nhost: {address}\r\ncontent-type: {FORM}\r\n\
         content-length: {}\r\n\r\n{STS_QUERY_BODY}",
        STS_QUERY_BODY.len()
    );
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut received = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), socket.read_to_end(&mut received));
    let _ = read.await.expect("the server closes the connection");
    assert!(received.is_empty(), "{}", String::from_utf8_lossy(&received));

    assert_eq!(sts_query(&mocks).await.unwrap().status, 200);
    let calls = mocks.sts.calls();
    assert_eq!(calls.len(), 3);
    assert_eq!(calls[0].fault, Some(FaultKind::DropConnection));
    assert_eq!(calls[1].fault, Some(FaultKind::DropConnection));
    assert_eq!(calls[2].fault, None);
}

#[tokio::test]
async fn dropping_the_mocks_stops_the_servers() {
    let mocks = AwsMocks::start().await.unwrap();
    let addresses: Vec<String> = mocks
        .env_vars()
        .into_iter()
        .filter(|(name, _)| name.starts_with("AWS_ENDPOINT_URL_") || name == "LIFT_JWT_ISSUER")
        .map(|(_, url)| url.trim_start_matches("http://").to_owned())
        .collect();
    assert_eq!(addresses.len(), 5, "secrets manager, kms, sts, route 53 and the jwks issuer");
    for address in &addresses {
        assert!(address.starts_with("127.0.0.1:"), "{address}");
        tokio::net::TcpStream::connect(address).await.expect("serving while alive");
    }
    drop(mocks);
    // The servers shut down on their own threads; give them a moment.
    for address in &addresses {
        let mut refused = false;
        for _ in 0..50 {
            if tokio::net::TcpStream::connect(address).await.is_err() {
                refused = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(refused, "{address} still accepts connections");
    }
}

#[tokio::test]
async fn stock_aws_cli_talks_to_the_mocks() {
    let probe = tokio::process::Command::new("aws").arg("--version").output().await;
    if !probe.is_ok_and(|o| o.status.success()) {
        println!("skipping: the aws CLI is not on PATH");
        return;
    }
    let mocks = AwsMocks::start().await.unwrap();
    mocks.secrets.put_secret("cli/secret", "from-the-mock");

    let secret = aws_cli(
        &mocks,
        &[
            "secretsmanager",
            "get-secret-value",
            "--secret-id",
            "cli/secret",
            "--endpoint-url",
            &mocks.secrets.uri(),
        ],
    )
    .await;
    assert_eq!(secret["SecretString"], "from-the-mock");
    assert_eq!(secret["Name"], "cli/secret");
    assert_eq!(mocks.secrets.calls_to("GetSecretValue").len(), 1);

    // No --endpoint-url: the endpoint comes from AWS_ENDPOINT_URL_STS in env_vars().
    let identity = aws_cli(&mocks, &["sts", "get-caller-identity"]).await;
    assert_eq!(identity["Account"], "000000000000");
    assert_eq!(identity["Arn"], mocks.sts.identity().arn.as_str());
    assert_eq!(mocks.sts.calls_to("GetCallerIdentity").len(), 1);

    let key = aws_cli(
        &mocks,
        &[
            "kms",
            "generate-data-key",
            "--key-id",
            "alias/lift-default",
            "--key-spec",
            "AES_256",
            "--encryption-context",
            "tenant=t-1",
            "--endpoint-url",
            &mocks.kms.uri(),
        ],
    )
    .await;
    let plaintext = B64.decode(key["Plaintext"].as_str().unwrap()).unwrap();
    assert_eq!(plaintext.len(), 32);
    assert_eq!(key["KeyId"], mocks.kms.default_key().arn.as_str());
    let blob = B64.decode(key["CiphertextBlob"].as_str().unwrap()).unwrap();
    let context = [("tenant".to_owned(), "t-1".to_owned())].into();
    let (_, decrypted) = mocks.kms.decrypt(&blob, &context).unwrap();
    assert_eq!(decrypted, plaintext);
}

/// Runs `aws <args> --region us-east-1 --output json` with dummy credentials and the
/// mocks' environment, isolated from any local AWS configuration.
async fn aws_cli(mocks: &AwsMocks, args: &[&str]) -> Value {
    let output = tokio::process::Command::new("aws")
        .args(args)
        .args(["--region", "us-east-1", "--output", "json"])
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL")
        .env("AWS_ACCESS_KEY_ID", "AKIDLIFTTEST")
        .env("AWS_SECRET_ACCESS_KEY", "lift-test-secret")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_MAX_ATTEMPTS", "1")
        .envs(mocks.env_vars())
        .output()
        .await
        .expect("aws runs");
    assert!(output.status.success(), "aws {args:?} failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("aws prints json")
}
