//! X-Ray: trace headers in and out, segment documents over real UDP.

mod support;

use support::*;

#[tokio::test]
async fn a_sampled_request_sends_its_segment_with_subsegments_over_udp() {
    let daemon = Daemon::bind();
    let mut svc = daemon.layer(SamplingRule::new(0, 0.0), false).layer(tower::service_fn(downstream_handler));
    let res = svc.ready().await.unwrap().call(traced_request(&trace_header("1"))).await.unwrap();
    assert_eq!(res.headers()["x-amzn-trace-id"], format!("Root={ROOT};Sampled=1"));

    let doc = daemon.receive();
    assert_eq!(doc["name"], "payments");
    assert_eq!(doc["trace_id"], ROOT);
    assert!(is_trace_id(doc["trace_id"].as_str().unwrap()));
    assert_eq!(doc["parent_id"], PARENT);
    assert!(is_hex(doc["id"].as_str().unwrap(), 16));
    assert!(doc.get("type").is_none(), "off Lambda the handler is a segment");
    let (start, end) = (doc["start_time"].as_f64().unwrap(), doc["end_time"].as_f64().unwrap());
    assert!(start > 1.6e9 && start <= end, "{start} {end}");
    assert_eq!(doc["http"]["request"]["method"], "GET");
    assert_eq!(doc["http"]["request"]["url"], "https://api.example.com/payments/pay_1", "no query string");
    assert_eq!(doc["http"]["response"]["status"], 200);
    assert!(doc.get("fault").is_none() && doc.get("error").is_none());

    let subs = doc["subsegments"].as_array().unwrap();
    assert_eq!(subs.len(), 2);
    assert_eq!((&subs[0]["name"], &subs[0]["namespace"]), (&"DynamoDB".into(), &"aws".into()));
    assert_eq!(subs[0]["http"]["response"]["status"], 200);
    assert_eq!(subs[0]["annotations"]["table"], "payments");
    assert_ne!(subs[0]["id"], subs[1]["id"]);
    for sub in subs {
        let (s, e) = (sub["start_time"].as_f64().unwrap(), sub["end_time"].as_f64().unwrap());
        assert!(start <= s && s <= e && e <= end, "subsegment inside the segment");
    }
    assert_eq!(
        (&subs[1]["namespace"], &subs[1]["throttle"], &subs[1]["error"]),
        (&"remote".into(), &true.into(), &true.into())
    );
}

#[tokio::test]
async fn on_lambda_the_handler_is_a_subsegment_of_the_facade() {
    let daemon = Daemon::bind();
    let mut svc = daemon.layer(SamplingRule::default(), true).layer(tower::service_fn(status_handler(200)));
    // The Lambda invocation's trace header comes through the Context.
    svc.ready().await.unwrap().call(lift_request("r", "t")).await.unwrap();
    let doc = daemon.receive();
    assert_eq!(doc["type"], "subsegment");
    assert_eq!(doc["parent_id"], PARENT);
    assert_eq!(doc["trace_id"], ROOT);
}

#[tokio::test]
async fn server_errors_are_faults_and_client_errors_errors() {
    let daemon = Daemon::bind();
    for (status, fault, error) in [(503u16, true, false), (404, false, true)] {
        let mut svc =
            daemon.layer(SamplingRule::default(), false).layer(tower::service_fn(status_handler(status)));
        svc.ready().await.unwrap().call(traced_request(&trace_header("1"))).await.unwrap();
        let doc = daemon.receive();
        assert_eq!(doc["http"]["response"]["status"], status);
        assert_eq!(doc.get("fault").is_some(), fault, "{status}: {doc}");
        assert_eq!(doc.get("error").is_some(), error, "{status}: {doc}");
    }
}

#[tokio::test]
async fn unsampled_requests_send_nothing() {
    let daemon = Daemon::bind();
    let mut svc =
        daemon.layer(SamplingRule::new(100, 1.0), false).layer(tower::service_fn(downstream_handler));
    let res = svc.ready().await.unwrap().call(traced_request(&trace_header("0"))).await.unwrap();
    assert_eq!(res.headers()["x-amzn-trace-id"], format!("Root={ROOT};Sampled=0"));
    // Then a sampled request with another trace: the first datagram must be its.
    let other = "1-5759e988-000000000000000000000001";
    svc.ready().await.unwrap().call(traced_request(&format!("Root={other};Sampled=1"))).await.unwrap();
    assert_eq!(daemon.receive()["trace_id"], other);
}

#[tokio::test]
async fn without_a_header_a_new_trace_follows_the_local_rule() {
    let daemon = Daemon::bind();
    let plain = || Request::builder().uri("/x").body(Body::empty()).unwrap();
    let mut never =
        daemon.layer(SamplingRule::new(0, 0.0), false).layer(tower::service_fn(status_handler(200)));
    let res = never.ready().await.unwrap().call(plain()).await.unwrap();
    let header = res.headers()["x-amzn-trace-id"].to_str().unwrap().to_owned();
    assert!(header.ends_with(";Sampled=0") && is_trace_id(&header[5..40]), "{header}");

    let mut reservoir =
        daemon.layer(SamplingRule::new(1, 0.0), false).layer(tower::service_fn(status_handler(200)));
    let res = reservoir.ready().await.unwrap().call(plain()).await.unwrap();
    let header = res.headers()["x-amzn-trace-id"].to_str().unwrap().to_owned();
    assert!(header.ends_with(";Sampled=1"), "the reservoir takes the first request: {header}");
    let doc = daemon.receive();
    assert_eq!(doc["trace_id"].as_str().unwrap(), &header[5..40]);
    assert!(doc.get("parent_id").is_none());
}

/// A segment document goes to X-Ray, outside the account's own logs: a card number or an
/// email address in a path segment, plain or percent-encoded, never reaches it.
#[tokio::test]
async fn a_segments_url_masks_card_numbers_and_emails_in_the_path() {
    let daemon = Daemon::bind();
    let mut svc = daemon.layer(SamplingRule::new(0, 0.0), false).layer(tower::service_fn(downstream_handler));
    let req = Request::builder()
        .uri("/users/ada%40example.com/cards/4111%201111%201111%201111")
        .header("host", "api.example.com")
        .header("x-amzn-trace-id", trace_header("1"))
        .body(Body::empty())
        .unwrap();
    svc.ready().await.unwrap().call(req).await.unwrap();
    let doc = daemon.receive();
    let text = doc.to_string();
    for leak in ["ada%40", "ada@", "4111"] {
        assert!(!text.contains(leak), "{leak} in the segment: {text}");
    }
    assert_eq!(
        doc["http"]["request"]["url"],
        "https://api.example.com/users/[REDACTED:email]/cards/[REDACTED:pan]"
    );
}
