//! The App: routing, groups, layers, context, and every error as problem+json.

use std::time::Duration;

use http::{header, Method, StatusCode};
use lift::error::{Problem, PROBLEM_JSON};
use lift::{App, Context, Error, Request, Response, RouteGroup};
use tower::{Service, ServiceExt};

async fn echo_id(req: Request) -> Result<Response, Error> {
    let id = lift::path_param(&req, "id").unwrap_or("-").to_owned();
    let route =
        req.extensions().get::<lift::MatchedRoute>().map(|r| r.as_str().to_owned()).unwrap_or_default();
    Ok(lift::json_response(StatusCode::OK, &serde_json::json!({ "id": id, "route": route })))
}

#[derive(serde::Deserialize, serde::Serialize)]
struct NewThing {
    name: String,
    size: u32,
}

async fn create(req: Request) -> Result<Response, Error> {
    let thing: NewThing = lift::read_json(&req)?;
    Ok(lift::json_response(StatusCode::CREATED, &thing))
}

async fn whoami(req: Request) -> Result<Response, Error> {
    let ctx = Context::of(&req).expect("the app inserts a context");
    Ok(lift::json_response(
        StatusCode::OK,
        &serde_json::json!({ "request_id": ctx.request_id(), "region": ctx.region() }),
    ))
}

async fn boom(_req: Request) -> Result<Response, Error> {
    Err(Error::internal("db password=hunter2 at 10.1.2.3"))
}

async fn slow(_req: Request) -> Response {
    tokio::time::sleep(Duration::from_secs(60)).await;
    Response::default()
}

fn app() -> App {
    App::new()
        .get("/things/:id", echo_id)
        .post("/things", create)
        .delete("/things/:id", echo_id)
        .get("/whoami", whoami)
        .get("/boom", boom)
        .get("/files/*path", echo_id)
        .group(
            RouteGroup::new("/slow")
                .get("/", slow)
                .layer(tower::timeout::TimeoutLayer::new(Duration::from_millis(50))),
        )
        .body_limit(1024)
        .region("eu-west-1")
}

fn request(method: Method, uri: &str, body: &'static str) -> Request {
    http::Request::builder()
        .method(method)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(lift::Body::from(body))
        .unwrap()
}

async fn call(req: Request) -> Response {
    app().into_service().oneshot(req).await.unwrap()
}

fn problem(res: &Response) -> Problem {
    assert_eq!(res.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
    serde_json::from_slice(res.body().as_bytes()).expect("a problem+json body")
}

fn json(res: &Response) -> serde_json::Value {
    serde_json::from_slice(res.body().as_bytes()).unwrap()
}

#[tokio::test]
async fn routes_by_method_and_path_with_params() {
    let res = call(request(Method::GET, "/things/t%201", "")).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(json(&res)["id"], "t 1");
    assert_eq!(json(&res)["route"], "/things/:id");
    let res = call(request(Method::GET, "/files/a/b/c.txt", "")).await;
    assert_eq!(json(&res)["id"], "-");
    assert_eq!(json(&res)["route"], "/files/*path");
}

#[tokio::test]
async fn unknown_route_is_404_problem() {
    let res = call(request(Method::GET, "/nope", "")).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(problem(&res).status, 404);
}

#[tokio::test]
async fn wrong_method_is_405_with_allow() {
    let res = call(request(Method::PUT, "/things/1", "")).await;
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(res.headers()[header::ALLOW], "GET, DELETE, HEAD");
    assert_eq!(problem(&res).status, 405);
}

#[tokio::test]
async fn head_is_get_without_body() {
    let res = call(request(Method::HEAD, "/things/1", "")).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.body().is_empty());
}

#[tokio::test]
async fn bad_json_is_400_naming_the_field() {
    let res = call(request(Method::POST, "/things", r#"{"name":"x","size":"big"}"#)).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let p = problem(&res);
    assert_eq!(p.field.as_deref(), Some("size"));
    assert!(p.detail.unwrap().contains("size"));
}

#[tokio::test]
async fn invalid_json_syntax_is_400() {
    let res = call(request(Method::POST, "/things", r#"{"name": "#)).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(problem(&res).problem_type, "https://lift.dev/problems/malformed-json");
}

#[tokio::test]
async fn oversized_body_is_413() {
    let big: &'static str = Box::leak("x".repeat(2048).into_boxed_str());
    let res = call(request(Method::POST, "/things", big)).await;
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(problem(&res).status, 413);
}

#[tokio::test]
async fn declared_oversized_body_is_413_before_reading() {
    let mut req = request(Method::POST, "/things", "{}");
    req.headers_mut().insert(header::CONTENT_LENGTH, "999999".parse().unwrap());
    assert_eq!(call(req).await.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn wrong_content_type_is_415() {
    let req = http::Request::builder()
        .method(Method::POST)
        .uri("/things")
        .header(header::CONTENT_TYPE, "text/plain")
        .body(lift::Body::from("name=x"))
        .unwrap();
    let res = call(req).await;
    assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(problem(&res).status, 415);
}

#[tokio::test]
async fn internal_errors_do_not_leak() {
    let mut req = request(Method::GET, "/boom", "");
    req.headers_mut().insert("x-request-id", "req-42".parse().unwrap());
    let res = call(req).await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let raw = String::from_utf8(res.body().as_bytes().to_vec()).unwrap();
    assert!(!raw.contains("hunter2") && !raw.contains("10.1.2.3"), "{raw}");
    assert_eq!(problem(&res).request_id.as_deref(), Some("req-42"));
    assert_eq!(res.headers()["x-request-id"], "req-42");
}

#[tokio::test]
async fn context_carries_request_id_and_region() {
    let res = call(request(Method::GET, "/whoami", "")).await;
    let body = json(&res);
    assert_eq!(body["region"], "eu-west-1");
    assert_eq!(res.headers()["x-request-id"], body["request_id"].as_str().unwrap());
}

#[tokio::test]
async fn lambda_invocation_id_wins_over_header() {
    let mut req = request(Method::GET, "/whoami", "");
    req.headers_mut().insert("x-request-id", "from-header".parse().unwrap());
    req.extensions_mut().insert(lift::Invocation {
        request_id: "lambda-req-1".into(),
        deadline: None,
        invoked_function_arn: None,
        xray_trace_id: None,
    });
    let res = call(req).await;
    assert_eq!(json(&res)["request_id"], "lambda-req-1");
}

#[tokio::test(start_paused = true)]
async fn group_layer_times_out_its_routes_only() {
    let res = call(request(Method::GET, "/slow", "")).await;
    assert_eq!(res.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(problem(&res).status, 504);
    // Routes outside the group have no timeout layer.
    assert_eq!(call(request(Method::GET, "/things/1", "")).await.status(), StatusCode::OK);
}

/// A layer that tags responses, to check global layers and their order.
#[derive(Clone)]
struct Tag(&'static str);

impl<S> tower::Layer<S> for Tag {
    type Service = Tagged<S>;
    fn layer(&self, inner: S) -> Self::Service {
        Tagged { inner, tag: self.0 }
    }
}

#[derive(Clone)]
struct Tagged<S> {
    inner: S,
    tag: &'static str,
}

impl<S> Service<Request> for Tagged<S>
where
    S: Service<Request, Response = Response> + Clone + Send + 'static,
    S::Future: Send,
{
    type Response = Response;
    type Error = S::Error;
    type Future = futures_util::future::BoxFuture<'static, Result<Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let fut = self.inner.call(req);
        let tag = self.tag;
        Box::pin(async move {
            let mut res = fut.await?;
            res.headers_mut().append("x-tags", tag.parse().unwrap());
            Ok(res)
        })
    }
}

#[tokio::test]
async fn global_layers_wrap_everything_in_order() {
    let svc = App::new().get("/a", whoami).layer(Tag("inner")).layer(Tag("outer")).into_service();
    let res = svc.clone().oneshot(request(Method::GET, "/a", "")).await.unwrap();
    let tags: Vec<_> = res.headers().get_all("x-tags").iter().map(|v| v.to_str().unwrap()).collect();
    assert_eq!(tags, ["inner", "outer"]);
    // 404s pass through global layers too.
    let res = svc.oneshot(request(Method::GET, "/missing", "")).await.unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(res.headers().get_all("x-tags").iter().count(), 2);
}

#[tokio::test]
async fn per_route_layer() {
    let route = lift::app::Route::from_handler(whoami).layer(Tag("route"));
    let svc = App::new().get("/a", route).get("/b", whoami).into_service();
    let a = svc.clone().oneshot(request(Method::GET, "/a", "")).await.unwrap();
    let b = svc.oneshot(request(Method::GET, "/b", "")).await.unwrap();
    assert_eq!(a.headers()["x-tags"], "route");
    assert!(b.headers().get("x-tags").is_none());
}

#[test]
#[should_panic(expected = "registered twice")]
fn duplicate_route_panics_at_build() {
    let _ = App::new().get("/a", whoami).get("/a", whoami).into_service();
}

#[tokio::test]
async fn serves_on_a_local_port() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app().serve_listener(listener, async {
        let _ = stopped.await;
    }));
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(b"GET /things/42 HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.contains(r#""id":"42""#), "{out}");
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn the_matched_route_reaches_layers_outside_the_router() {
    // An App layer wraps the router: it sees the request before any route matched, and
    // finds the pattern on the response instead.
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = {
        let seen = seen.clone();
        tower::layer::layer_fn(move |inner: lift::app::Route| {
            let seen = seen.clone();
            tower::service_fn(move |req: Request| {
                let before = req.extensions().get::<lift::MatchedRoute>().is_some();
                let seen = seen.clone();
                let inner = inner.clone();
                async move {
                    let res = inner.oneshot(req).await?;
                    let after = res.extensions().get::<lift::MatchedRoute>().map(|r| r.as_str().to_owned());
                    seen.lock().unwrap().push((before, after));
                    Ok::<_, std::convert::Infallible>(res)
                }
            })
        })
    };
    let svc = App::new().get("/payments/:id", echo_id).layer(record).into_service();
    let res = svc.clone().oneshot(request(Method::GET, "/payments/p-1", "")).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let res = svc.oneshot(request(Method::GET, "/nowhere", "")).await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        *seen.lock().unwrap(),
        [(false, Some("/payments/:id".to_owned())), (false, None)],
        "the pattern, never the raw path, and nothing for an unmatched request"
    );
}

/// A layer whose service is not ready: `poll_ready` fails, as a closed buffer's does.
#[derive(Clone)]
struct Broken;

impl<S> tower::Layer<S> for Broken {
    type Service = BrokenService;

    fn layer(&self, _inner: S) -> BrokenService {
        BrokenService
    }
}

#[derive(Clone)]
struct BrokenService;

impl Service<Request> for BrokenService {
    type Response = Response;
    type Error = tower::BoxError;
    type Future = std::future::Ready<Result<Response, tower::BoxError>>;

    fn poll_ready(&mut self, _cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Err(Box::new(tower::load_shed::error::Overloaded::new())))
    }

    fn call(&mut self, _req: Request) -> Self::Future {
        panic!("called although poll_ready failed")
    }
}

#[tokio::test]
async fn a_layer_failing_poll_ready_answers_with_its_error_and_is_never_called() {
    let service = App::new().get("/things/:id", echo_id).layer(Broken).into_service();
    let res = service.clone().oneshot(request(Method::GET, "/things/1", "")).await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE, "Overloaded is 503");
    assert_eq!(problem(&res).status, 503);
    // Every request clones the app's service, so each one gets the same answer.
    let again = service.oneshot(request(Method::GET, "/things/2", "")).await.unwrap();
    assert_eq!(again.status(), StatusCode::SERVICE_UNAVAILABLE);
}

/// A layer that reserves in `poll_ready` (tower's concurrency limit) works on the clone
/// each request gets: a second request waits for the first one's permit, and both answer.
#[tokio::test(start_paused = true)]
async fn a_layer_reserving_in_poll_ready_holds_its_permit_per_request() {
    let service =
        App::new().get("/slow", slow).layer(tower::limit::ConcurrencyLimitLayer::new(1)).into_service();
    let started = tokio::time::Instant::now();
    let (a, b) = tokio::join!(
        service.clone().oneshot(request(Method::GET, "/slow", "")),
        service.clone().oneshot(request(Method::GET, "/slow", "")),
    );
    assert_eq!((a.unwrap().status(), b.unwrap().status()), (StatusCode::OK, StatusCode::OK));
    assert!(started.elapsed() >= Duration::from_secs(120), "one at a time: {:?}", started.elapsed());
}
