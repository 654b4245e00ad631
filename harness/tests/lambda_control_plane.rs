//! Versions, aliases and weighted routing in the local Lambda runtime, driven through the
//! real `aws-sdk-lambda` client against the Invoke API's endpoint, with the `lambda-fixture`
//! function echoing its environment and the ARN it was invoked by.

use std::collections::{BTreeMap, HashSet};

use aws_sdk_lambda::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{AliasRoutingConfiguration, Environment};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;
use lift_harness::lambda::http_api::HttpApi;
use lift_harness::lambda::invoke_api::InvokeApi;
use lift_harness::lambda::{Function, LocalLambda};
use serde_json::{json, Value};

const FIXTURE: &str = env!("CARGO_BIN_EXE_lambda-fixture");

/// A local Lambda with one fixture function, its endpoint, and an SDK client for it.
struct Rig {
    name: &'static str,
    lambda: LocalLambda,
    api: InvokeApi,
    client: aws_sdk_lambda::Client,
}

async fn rig(name: &'static str) -> Rig {
    let function = Function::builder(name, FIXTURE).region("us-east-1").timeout_secs(5).build().unwrap();
    let lambda = LocalLambda::builder().function(function).build().unwrap();
    let api = InvokeApi::start(lambda.clone(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let config = aws_sdk_lambda::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("local", "local", None, None, "static"))
        .endpoint_url(api.endpoint())
        .retry_config(aws_sdk_lambda::config::retry::RetryConfig::disabled())
        .build();
    Rig { name, lambda, api, client: aws_sdk_lambda::Client::from_conf(config) }
}

impl Rig {
    /// Sets `$LATEST`'s `USER_VAR` (and memory), then publishes; returns the version.
    async fn publish_with(&self, user_var: &str, memory_mb: i32) -> String {
        self.client
            .update_function_configuration()
            .function_name(self.name)
            .environment(Environment::builder().variables("USER_VAR", user_var).build())
            .memory_size(memory_mb)
            .send()
            .await
            .unwrap();
        let published = self.client.publish_version().function_name(self.name).send().await.unwrap();
        published.version().unwrap().to_owned()
    }

    /// Invokes `target` through the SDK once the sandboxes are idle again (so a warm one is
    /// reused): (executed version, the fixture's echo).
    async fn invoke(&self, target: &str) -> (String, Value) {
        assert!(self.lambda.settle(self.name, std::time::Duration::from_secs(3)).await);
        let out = self
            .client
            .invoke()
            .function_name(target)
            .payload(Blob::new(r#"{"action":"echo"}"#))
            .send()
            .await
            .unwrap();
        assert!(out.function_error().is_none(), "{:?}", out.payload());
        let echo: Value = serde_json::from_slice(out.payload().unwrap().as_ref()).unwrap();
        (out.executed_version().unwrap().to_owned(), echo)
    }

    fn arn(&self, qualifier: &str) -> String {
        format!("arn:aws:lambda:us-east-1:000000000000:function:{}:{qualifier}", self.name)
    }
}

fn weights(version: &str, weight: f64) -> AliasRoutingConfiguration {
    AliasRoutingConfiguration::builder().additional_version_weights(version, weight).build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_versions_keep_their_own_configuration_and_sandboxes() {
    let rig = rig("versions").await;
    let updated = rig
        .client
        .update_function_configuration()
        .function_name("versions")
        .environment(Environment::builder().variables("USER_VAR", "one").build())
        .memory_size(256)
        .send()
        .await
        .unwrap();
    assert_eq!(updated.version(), Some("$LATEST"));
    assert_eq!(updated.memory_size(), Some(256));
    let v1 =
        rig.client.publish_version().function_name("versions").description("first").send().await.unwrap();
    assert_eq!(v1.version(), Some("1"));
    assert_eq!(v1.function_arn(), Some(rig.arn("1").as_str()));
    assert_eq!(v1.description(), Some("first"));
    assert_eq!(v1.memory_size(), Some(256));
    assert_eq!(v1.environment().unwrap().variables().unwrap()["USER_VAR"], "one");
    assert_eq!(v1.state().map(|s| s.as_str()), Some("Active"));
    assert_eq!(v1.last_update_status().map(|s| s.as_str()), Some("Successful"));
    assert!(!v1.code_sha256().unwrap_or_default().is_empty());
    assert!(v1.revision_id().is_some());
    assert_eq!(rig.publish_with("two", 512).await, "2");

    let listed = rig.client.list_versions_by_function().function_name("versions").send().await.unwrap();
    let listed: Vec<&str> = listed.versions().iter().filter_map(|v| v.version()).collect();
    assert_eq!(listed, ["$LATEST", "1", "2"]);
    let one = rig
        .client
        .get_function_configuration()
        .function_name("versions")
        .qualifier("1")
        .send()
        .await
        .unwrap();
    assert_eq!((one.version(), one.memory_size()), (Some("1"), Some(256)));
    assert_eq!(one.environment().unwrap().variables().unwrap()["USER_VAR"], "one");

    // Each version runs its own configuration, in sandboxes of its own.
    for (target, version, user_var, memory) in [
        ("versions:1", "1", "one", "256"),
        ("versions:2", "2", "two", "512"),
        ("versions", "$LATEST", "two", "512"),
    ] {
        let (executed, echo) = rig.invoke(target).await;
        assert_eq!(executed, version, "{target}");
        let env = &echo["env"];
        assert_eq!(env["USER_VAR"], user_var, "{target}");
        assert_eq!(env["AWS_LAMBDA_FUNCTION_VERSION"], version, "{target}");
        assert_eq!(env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], memory, "{target}");
        let stream = env["AWS_LAMBDA_LOG_STREAM_NAME"].as_str().unwrap();
        assert!(stream.contains(&format!("[{version}]")), "{stream}");
        assert_eq!(rig.lambda.cold_starts_of("versions", version), 1, "{target}");
    }
    assert_eq!(rig.invoke("versions:2").await.1["arn"], rig.arn("2"));
    assert_eq!(
        rig.invoke("versions").await.1["arn"],
        "arn:aws:lambda:us-east-1:000000000000:function:versions"
    );
    assert_eq!(rig.lambda.cold_starts("versions"), 3);
    let starts: Vec<(Option<String>, String)> = rig
        .lambda
        .logs("versions")
        .into_iter()
        .filter(|l| l.message.starts_with("START"))
        .map(|l| (l.version().map(str::to_owned), l.message))
        .collect();
    for (version, message) in &starts {
        assert!(message.ends_with(&format!("Version: {}", version.as_deref().unwrap())), "{message}");
    }
    assert!(rig.lambda.settle("versions", std::time::Duration::from_secs(3)).await);
    assert_eq!(rig.lambda.reports_of("versions", "1").len(), 1);

    // A change of $LATEST reaches its next invocation; the versions stay as published.
    rig.client
        .update_function_configuration()
        .function_name("versions")
        .environment(Environment::builder().variables("USER_VAR", "three").build())
        .send()
        .await
        .unwrap();
    assert_eq!(rig.invoke("versions").await.1["env"]["USER_VAR"], "three");
    assert_eq!(rig.invoke("versions:1").await.1["env"]["USER_VAR"], "one");
    assert_eq!(rig.lambda.function("versions").unwrap().env(), [("USER_VAR".to_owned(), "three".to_owned())]);

    let refused =
        rig.client.update_function_configuration().function_name("versions").memory_size(64).send().await;
    assert!(refused.unwrap_err().into_service_error().is_invalid_parameter_value_exception());
    let missing =
        rig.client.get_function_configuration().function_name("versions").qualifier("9").send().await;
    assert!(missing.unwrap_err().into_service_error().is_resource_not_found_exception());
}

#[tokio::test]
async fn publishing_without_a_change_returns_the_last_version() {
    let rig = rig("unchanged").await;
    let first = rig.client.publish_version().function_name("unchanged").send().await.unwrap();
    let again =
        rig.client.publish_version().function_name("unchanged").description("again").send().await.unwrap();
    assert_eq!((first.version(), again.version()), (Some("1"), Some("1")));
    assert_eq!(first.revision_id(), again.revision_id());
    assert_eq!(rig.publish_with("changed", 128).await, "2");
    let same = rig.client.publish_version().function_name("unchanged").send().await.unwrap();
    assert_eq!(same.version(), Some("2"));
    // The API of the crate says the same.
    assert_eq!(rig.lambda.publish_version("unchanged", "").unwrap().version(), "2");
    assert_eq!(rig.lambda.versions("unchanged").unwrap().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alias_splits_invocations_by_its_weights_then_moves_whole() {
    let rig = rig("weighted").await;
    assert_eq!(rig.publish_with("one", 128).await, "1");
    assert_eq!(rig.publish_with("two", 128).await, "2");
    let created = rig
        .client
        .create_alias()
        .function_name("weighted")
        .name("live")
        .function_version("1")
        .send()
        .await
        .unwrap();
    assert_eq!(created.alias_arn(), Some(rig.arn("live").as_str()));
    let updated = rig
        .client
        .update_alias()
        .function_name("weighted")
        .name("live")
        .routing_config(weights("2", 0.3))
        .revision_id(created.revision_id().unwrap())
        .send()
        .await
        .unwrap();
    assert_ne!(updated.revision_id(), created.revision_id());
    assert_eq!(updated.function_version(), Some("1"));
    let got = rig.client.get_alias().function_name("weighted").name("live").send().await.unwrap();
    assert_eq!(got.routing_config().unwrap().additional_version_weights().unwrap()["2"], 0.3);

    let total = 400;
    let mut sandboxes: BTreeMap<String, HashSet<String>> = BTreeMap::new();
    let mut requests: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for _ in 0..total {
        let out = rig.lambda.invoke("weighted:live", r#"{"action":"echo"}"#).await.unwrap();
        let echo = out.json();
        assert_eq!(echo["env"]["AWS_LAMBDA_FUNCTION_VERSION"], out.executed_version.as_str());
        assert_eq!(echo["env"]["USER_VAR"], if out.executed_version == "1" { "one" } else { "two" });
        assert_eq!(echo["arn"], rig.arn("live"));
        sandboxes.entry(out.executed_version.clone()).or_default().insert(out.sandbox_id);
        requests.entry(out.executed_version).or_default().push(out.request_id);
    }
    // Each REPORT is written when its runtime asks for the next invocation.
    assert!(rig.lambda.settle("weighted", std::time::Duration::from_secs(3)).await);
    assert_eq!(requests.keys().collect::<Vec<_>>(), ["1", "2"]);
    let share = requests["2"].len() as f64 / total as f64;
    // 0.3 ± 0.08 is more than 3.4 standard deviations of a binomial share of 400.
    assert!((share - 0.3).abs() <= 0.08, "version 2 ran {share:.3} of the invocations");
    assert!(sandboxes["1"].is_disjoint(&sandboxes["2"]), "{sandboxes:?}");
    for version in ["1", "2"] {
        let reported: HashSet<String> =
            rig.lambda.reports_of("weighted", version).into_iter().map(|r| r.request_id).collect();
        assert_eq!(reported, requests[version].iter().cloned().collect(), "reports of version {version}");
        assert_eq!(rig.lambda.cold_starts_of("weighted", version), sandboxes[version].len() as u64);
    }
    for line in rig.lambda.logs("weighted").iter().filter(|l| l.message.starts_with("REPORT")) {
        let version = line.version().unwrap();
        let id = line.message.split_whitespace().nth(2).unwrap();
        assert!(requests[version].iter().any(|r| r == id), "{line:?}");
    }
    assert_eq!(rig.lambda.reports("weighted").len(), total);

    // The whole alias to version 2, without routing: everything runs 2.
    let moved = rig
        .client
        .update_alias()
        .function_name("weighted")
        .name("live")
        .function_version("2")
        .routing_config(AliasRoutingConfiguration::builder().build())
        .send()
        .await
        .unwrap();
    assert_eq!(moved.function_version(), Some("2"));
    assert!(moved.routing_config().is_none());
    for _ in 0..30 {
        assert_eq!(rig.invoke("weighted:live").await.0, "2");
    }
}

#[tokio::test]
async fn aliases_are_validated_as_lambda_validates_them() {
    let rig = rig("validated").await;
    for (i, var) in ["one", "two", "three"].into_iter().enumerate() {
        assert_eq!(rig.publish_with(var, 128).await, (i + 1).to_string());
    }
    let client = &rig.client;
    let created = client
        .create_alias()
        .function_name("validated")
        .name("live")
        .function_version("1")
        .routing_config(weights("2", 0.0))
        .send()
        .await
        .unwrap();
    for _ in 0..50 {
        assert_eq!(rig.invoke("validated:live").await.0, "1", "a weight of 0 sends nothing to version 2");
    }
    assert_eq!(rig.lambda.cold_starts_of("validated", "2"), 0);

    let update = || client.update_alias().function_name("validated").name("live");
    let err = update().routing_config(weights("2", 1.5)).send().await.unwrap_err().into_service_error();
    assert!(err.is_invalid_parameter_value_exception(), "{err:?}");
    let err = update().routing_config(weights("1", 0.5)).send().await.unwrap_err().into_service_error();
    assert!(err.is_invalid_parameter_value_exception(), "the primary as additional version: {err:?}");
    let two = AliasRoutingConfiguration::builder()
        .additional_version_weights("2", 0.1)
        .additional_version_weights("3", 0.1)
        .build();
    let err = update().routing_config(two).send().await.unwrap_err().into_service_error();
    assert!(err.is_invalid_parameter_value_exception(), "two additional versions: {err:?}");
    let err = update().function_version("$LATEST").send().await.unwrap_err().into_service_error();
    assert!(err.is_invalid_parameter_value_exception(), "$LATEST with routing: {err:?}");
    let err = update().function_version("9").send().await.unwrap_err().into_service_error();
    assert!(err.is_resource_not_found_exception(), "{err:?}");

    let stale = created.revision_id().unwrap();
    update().routing_config(weights("3", 0.2)).revision_id(stale).send().await.unwrap();
    let err =
        update().function_version("2").revision_id(stale).send().await.unwrap_err().into_service_error();
    assert!(err.is_precondition_failed_exception(), "{err:?}");
    assert_eq!(rig.lambda.get_alias("validated", "live").unwrap().routing, Some(("3".to_owned(), 0.2)));

    let create = || client.create_alias().function_name("validated");
    let err = create().name("live").function_version("2").send().await.unwrap_err().into_service_error();
    assert!(err.is_resource_conflict_exception(), "{err:?}");
    let err = create().name("7").function_version("2").send().await.unwrap_err().into_service_error();
    assert!(err.is_invalid_parameter_value_exception(), "a numeric alias name: {err:?}");
    let err = client.get_alias().function_name("validated").name("nope").send().await.unwrap_err();
    assert!(err.into_service_error().is_resource_not_found_exception());

    client.delete_alias().function_name("validated").name("live").send().await.unwrap();
    let err = client.get_alias().function_name("validated").name("live").send().await.unwrap_err();
    assert!(err.into_service_error().is_resource_not_found_exception());
    let err = client.invoke().function_name("validated:live").send().await.unwrap_err();
    assert!(err.into_service_error().is_resource_not_found_exception());

    // The control plane wants a SigV4 signature for the lambda service.
    let url = format!("{}/2015-03-31/functions/validated/versions", rig.api.endpoint());
    let (status, headers, _) = request("GET", &url, &[], "").await;
    assert_eq!(status, 403);
    assert_eq!(headers["x-amzn-errortype"], "MissingAuthenticationTokenException");
    let wrong = "AWS4-HMAC-SHA256 Credential=local/20240501/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00";
    let (status, headers, _) = request("GET", &url, &[("authorization", wrong)], "").await;
    assert_eq!(status, 403);
    assert_eq!(headers["x-amzn-errortype"], "InvalidSignatureException");
    let right = wrong.replace("/s3/", "/lambda/");
    let (status, _, body) = request("GET", &url, &[("authorization", &right)], "").await;
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["Versions"].as_array().unwrap().len(), 4);
}

#[tokio::test]
async fn the_invoke_api_takes_qualifiers_and_arns_and_names_the_executed_version() {
    let rig = rig("qualified").await;
    rig.publish_with("one", 128).await;
    rig.publish_with("two", 128).await;
    rig.lambda.create_alias("qualified", "live", "2", None).unwrap();
    let url = |function: &str| format!("{}/2015-03-31/functions/{function}/invocations", rig.api.endpoint());
    let cases = [
        (url("qualified") + "?Qualifier=1", "1", rig.arn("1")),
        (url("qualified%3A%24LATEST"), "$LATEST", rig.arn("$LATEST")),
        (url("arn%3Aaws%3Alambda%3Aus-east-1%3A000000000000%3Afunction%3Aqualified%3A2"), "2", rig.arn("2")),
        (url("000000000000%3Afunction%3Aqualified%3Alive"), "2", rig.arn("live")),
        (
            url("arn%3Aaws%3Alambda%3Aus-east-1%3A000000000000%3Afunction%3Aqualified") + "?Qualifier=live",
            "2",
            rig.arn("live"),
        ),
    ];
    for (url, version, arn) in cases {
        let (status, headers, body) = request("POST", &url, &[], r#"{"action":"echo"}"#).await;
        assert_eq!(status, 200, "{url}: {}", String::from_utf8_lossy(&body));
        assert_eq!(headers["x-amz-executed-version"], version, "{url}");
        let echo: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            (&echo["arn"], &echo["env"]["AWS_LAMBDA_FUNCTION_VERSION"]),
            (&json!(arn), &json!(version))
        );
    }
    let (status, headers, _) = request("POST", &(url("qualified%3A1") + "?Qualifier=2"), &[], "{}").await;
    assert_eq!(status, 400);
    assert_eq!(headers["x-amzn-errortype"], "InvalidParameterValueException");
    let (status, headers, body) = request("POST", &url("qualified%3A9"), &[], "{}").await;
    assert_eq!(status, 404);
    assert_eq!(headers["x-amzn-errortype"], "ResourceNotFoundException");
    assert!(String::from_utf8_lossy(&body).contains(&rig.arn("9")));

    // The SDK's Qualifier and ARN forms.
    let out = rig.client.invoke().function_name("qualified").qualifier("1").send().await.unwrap();
    assert_eq!(out.executed_version(), Some("1"));
    let out = rig.client.invoke().function_name(rig.arn("live")).send().await.unwrap();
    assert_eq!(out.executed_version(), Some("2"));
    let out = rig.client.invoke().function_name("qualified").send().await.unwrap();
    assert_eq!(out.executed_version(), Some("$LATEST"));
}

#[tokio::test]
async fn the_http_api_front_on_an_alias_routes_by_its_weights() {
    let rig = rig("fronted").await;
    rig.publish_with("one", 128).await;
    rig.publish_with("two", 128).await;
    let client = &rig.client;
    client
        .create_alias()
        .function_name("fronted")
        .name("live")
        .function_version("1")
        .routing_config(weights("2", 0.5))
        .send()
        .await
        .unwrap();
    let front =
        HttpApi::start(rig.lambda.clone(), "fronted:live", "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let mut ran: BTreeMap<String, usize> = BTreeMap::new();
    for _ in 0..60 {
        let resp = front.send(http::Method::GET, "/orders", &[], Bytes::new()).await.unwrap();
        assert_eq!(resp.status, 200);
        let version = resp.json()["env"]["AWS_LAMBDA_FUNCTION_VERSION"].as_str().unwrap().to_owned();
        *ran.entry(version).or_default() += 1;
    }
    // Each side has a chance of 2^-60 to get nothing.
    assert_eq!(ran.keys().collect::<Vec<_>>(), ["1", "2"], "{ran:?}");
}

async fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, http::HeaderMap, Bytes) {
    let client = HttpClient::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut req = http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = client.request(req.body(Full::new(Bytes::from(body.to_owned()))).unwrap()).await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.into_body().collect().await.unwrap().to_bytes())
}
