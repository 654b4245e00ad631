//! Shared pieces of Lift's benches: the bare no-op service every middleware is measured
//! against, a realistic request, and the calibration workload.
//!
//! Convention: a bench file measures each middleware in its own criterion group named after
//! the middleware (the key in `budgets.toml`), with two functions: `bare` (the no-op service
//! alone) and `layer` (the middleware over the same no-op service), in the same run. Every
//! group starts with [`calibrate_before`] and ends with [`calibrate_after`], which measure
//! the machine's speed beside it.
#![warn(missing_docs)]

pub mod twins;

use std::convert::Infallible;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use criterion::measurement::{Measurement, WallTime};
use criterion::BenchmarkGroup;

use lift::{Body, Request, Response};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The no-op inner service: answers 200 with an empty body, at once.
///
/// It keeps the request instead of dropping it, and [`get_request`] drops the kept requests
/// when it builds the next one, outside the timed part. Freeing a request's headers and
/// extensions costs a few hundred nanoseconds, the same in `bare` and `layer`: timed, it
/// cancels out of the overhead but not out of the noise, which on a busy shared machine
/// grows with it and swamped overheads of tens of nanoseconds.
pub fn noop() -> Noop {
    Noop
}

/// Defines a no-op service type: it keeps the request and answers 200 with an empty body.
/// A macro, not a shared function, so that each type's `call` compiles as `Noop`'s always has
/// (a shared inlined helper moved every count by 5 instructions a call).
macro_rules! no_op_service {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Default)]
        pub struct $name;

        impl tower::Service<Request> for $name {
            type Response = Response;
            type Error = Infallible;
            type Future = std::future::Ready<Result<Response, Infallible>>;

            fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
                Poll::Ready(Ok(()))
            }

            fn call(&mut self, req: Request) -> Self::Future {
                KEPT.with_borrow_mut(|kept| kept.push(req));
                std::future::ready(Ok::<_, Infallible>(Response::new(Body::empty())))
            }
        }
    };
}

no_op_service!(
    /// The service [`noop`] returns; a named type, so that the instruction benches can name
    /// the layers over it.
    Noop
);

no_op_service!(
    /// The same service as [`Noop`], under a type of its own: a twin built over it shares no
    /// generic instance with the twins built over `Noop`. In one binary built as one codegen
    /// unit, a second user of, say, `ConcurrencyLimit<Noop>` changes how the compiler inlines
    /// it for the first: adding a bench must not move another bench's count.
    NoopAgain
);

thread_local! {
    /// The requests [`noop`] answered since the last [`get_request`].
    static KEPT: std::cell::RefCell<Vec<Request>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Drops the requests [`noop`] kept, keeping the room they took, so that `noop` does not
/// grow its vector (allocate, copy) in a timed part.
pub fn drop_kept() {
    // Taken out first: dropping a request may run code that calls `noop` again.
    let kept = KEPT.with_borrow_mut(|kept| {
        if kept.is_empty() {
            Vec::new()
        } else {
            std::mem::replace(kept, Vec::with_capacity(kept.capacity()))
        }
    });
    drop(kept);
}

/// A GET request with a small set of realistic headers. Drops the requests [`noop`] kept.
pub fn get_request() -> Request {
    drop_kept();
    request_as_made()
}

/// [`get_request`]'s request, leaving what [`noop`] kept alone.
fn request_as_made() -> Request {
    http::Request::builder()
        .method("GET")
        .uri("/payments/pay_123")
        .header("host", "api.example.com")
        .header("user-agent", "lift-bench/1.0")
        .header("x-request-id", "bench-request-1")
        .header(
            "x-amzn-trace-id",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
        )
        .body(Body::empty())
        .expect("valid request")
}

/// A stand-in X-Ray daemon: a local UDP socket drained by a thread of its own.
pub struct Daemon {
    address: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    largest: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    drain: std::thread::JoinHandle<u64>,
}

impl Daemon {
    /// Binds a free local port and starts draining it.
    pub fn start() -> Self {
        use std::sync::atomic::{AtomicBool, Ordering};
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("local socket");
        socket.set_nonblocking(true).expect("non-blocking");
        let address = socket.local_addr().expect("address").to_string();
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let largest = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let drain = {
            let stop = std::sync::Arc::clone(&stop);
            let largest = std::sync::Arc::clone(&largest);
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 65_536];
                let mut received = 0u64;
                loop {
                    // Drain what arrived, then sleep: a receiver blocked in recv would be
                    // woken per datagram and, on a small machine, preempt the measured thread.
                    // Checked after a drain, so what was sent before `stop` is counted.
                    let stopping = stop.load(Ordering::Relaxed);
                    while let Ok(len) = socket.recv(&mut buf) {
                        received += 1;
                        largest.fetch_max(len, Ordering::Relaxed);
                    }
                    if stopping {
                        return received;
                    }
                    std::thread::sleep(std::time::Duration::from_micros(200));
                }
            })
        };
        Self { address, stop, largest, drain }
    }

    /// The largest datagram received so far, waiting up to a second for a first one.
    ///
    /// # Panics
    /// When nothing arrives within the second.
    pub fn largest_datagram(&self) -> usize {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
        loop {
            let largest = self.largest.load(std::sync::atomic::Ordering::Relaxed);
            if largest > 0 {
                return largest;
            }
            assert!(std::time::Instant::now() < deadline, "no datagram reached the daemon");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    /// The kernel's part of a segment, for a group's `udp_send` function: a closure that
    /// sends one datagram of `len` bytes to the daemon on a connected non-blocking UDP
    /// socket, as the X-Ray layer does.
    pub fn sender(&self, len: usize) -> impl FnMut() -> bool {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("local socket");
        socket.connect(&self.address).expect("connect");
        socket.set_nonblocking(true).expect("non-blocking");
        let datagram = vec![b'x'; len];
        move || socket.send(std::hint::black_box(&datagram)).is_ok()
    }

    /// The address to send to (`AWS_XRAY_DAEMON_ADDRESS` form).
    pub fn address(&self) -> String {
        self.address.clone()
    }

    /// Stops draining; returns how many datagrams arrived.
    pub fn stop(self) -> u64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.drain.join().expect("the drain thread")
    }
}

/// Checks that a call left nothing for the untimed part to do that a call to [`noop`] alone
/// does not: the benches drop responses, and the requests [`noop`] kept, outside what they
/// time and count, so a layer that hung work on either (a guard in the response's or the
/// request's extensions, a header to free) would have it left out of its cost. Call it on a
/// call's response before the next [`get_request`].
///
/// Work handed to a task is left out the same way: the benches enter a runtime but never
/// drive it, so a task a layer spawned per call would never run in what they measure, and
/// none may be alive on the runtime of the calling context.
///
/// # Errors
/// What the response or the kept request carries beyond what [`noop`] and [`get_request`]
/// made, or the tasks alive on the current runtime.
pub fn check_nothing_deferred(response: &Response) -> Result<(), String> {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        let alive = runtime.metrics().num_alive_tasks();
        if alive > 0 {
            return Err(format!(
                "{alive} task(s) alive on the runtime: work spawned by a call would not be measured"
            ));
        }
    }
    if response.status() != 200 {
        return Err(format!("the response is {}, not noop's 200", response.status()));
    }
    if !response.headers().is_empty() || !response.extensions().is_empty() || !response.body().is_empty() {
        return Err(format!(
            "the response carries {} header(s), {} extension(s) and {} body byte(s) that noop's does not: \
             their drop would not be measured",
            response.headers().len(),
            response.extensions().len(),
            response.body().len()
        ));
    }
    let sent = request_as_made();
    KEPT.with_borrow(|kept| match kept.last() {
        None => Err("noop kept no request: the call did not reach it".to_owned()),
        Some(req)
            if req.extensions().len() > sent.extensions().len()
                || req.headers().len() > sent.headers().len() =>
        {
            Err(format!(
                "the request noop kept carries {} extension(s) and {} header(s), {} and {} when made: \
                 their drop would not be measured",
                req.extensions().len(),
                req.headers().len(),
                sent.extensions().len(),
                sent.headers().len()
            ))
        }
        Some(_) => Ok(()),
    })
}

/// Polls a future once with a no-op waker and returns its output: every call over [`noop`]
/// is ready at its first poll.
///
/// # Panics
/// When the future is pending.
pub fn ready<F: Future>(future: F) -> F::Output {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("a call over noop() must be ready at once"),
    }
}

/// One call the way tower's callers make it: `poll_ready`, then `call`, then the response
/// future, each polled once (see [`ready`]).
///
/// Both sides of a comparison go through this, so both pay for `poll_ready` (where tower's
/// `ConcurrencyLimit` takes its permit and `LoadShed` checks its inner service) and neither
/// drops its response here: the caller returns it, and criterion drops it after the timed
/// part.
///
/// # Errors
/// The service's error, from `poll_ready` or from the call.
///
/// # Panics
/// When the service is not ready at once, or its response is pending.
pub fn call_ready<S, R>(service: &mut S, req: R) -> Result<S::Response, S::Error>
where
    S: tower::Service<R>,
{
    match service.poll_ready(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(Ok(())) => {}
        Poll::Ready(Err(err)) => return Err(err),
        Poll::Pending => panic!("a service over noop() must be ready at once"),
    }
    ready(service.call(req))
}

/// Makes room for `calls` requests in what [`noop`] keeps, so that keeping them allocates
/// nothing in a measured part.
pub fn keep_room(calls: usize) {
    KEPT.with_borrow_mut(|kept| kept.reserve(calls));
}

/// Requests made per timed batch in [`bench_call`]. Criterion's `SmallInput` makes a tenth of
/// a sample's iterations per batch: up to about 200 000 requests for a 30 ns call in a
/// 3-second measurement, so every call read its request from main memory and the medians
/// followed the neighbours' memory traffic. A Lambda function's request was parsed just before its
/// call and is in cache; 64 requests are too. Timing a batch costs two clock reads, under a
/// nanosecond a call, the same for every side.
pub const BATCH: u64 = 64;

/// Runs `f` with the stack moved down by `turn % 4` times 16 bytes: four turns in a row see
/// every 16-byte alignment of the stack within a 64-byte cache line.
///
/// A bench process starts at a random stack offset (ASLR moves the stack by multiples of 16
/// bytes), and where the stack falls within a cache line moves a call's cost: with ASLR off,
/// `role_scope_check`'s layer took 57-60 ns in every process whose stack sat 16 bytes past a
/// 64-byte boundary and 40-42 ns at the other three offsets, so one process in four measured
/// 1.4x the others, and twin ratios moved with it. Taking every offset in turn, a process
/// measures their mean, whatever offset it started at.
#[inline(always)]
pub fn at_every_stack_offset<R>(turn: usize, f: impl FnOnce() -> R) -> R {
    match turn % 4 {
        0 => below::<16, R>(f),
        1 => below::<32, R>(f),
        2 => below::<48, R>(f),
        _ => below::<64, R>(f),
    }
}

/// Calls `f` from a frame `PAD` bytes larger.
#[inline(never)]
fn below<const PAD: usize, R>(f: impl FnOnce() -> R) -> R {
    let pad = [0u8; PAD];
    std::hint::black_box(&pad);
    called(f)
}

/// Calls `f` in a frame of its own, which starts below `below`'s pad: were `f` inlined into
/// `below`, the compiler could place `f`'s locals above the pad, where they would not move.
#[inline(never)]
fn called<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// The timed part of one batch: [`call_ready`] on each request, the results kept.
#[inline(never)]
fn timed_batch<S: tower::Service<Request>>(
    service: &mut S,
    requests: &mut Vec<Request>,
    results: &mut Vec<Result<S::Response, S::Error>>,
) -> Duration {
    let start = Instant::now();
    for req in requests.drain(..) {
        results.push(std::hint::black_box(call_ready(service, req)));
    }
    start.elapsed()
}

/// Adds a function to the group that times [`call_ready`] of `service` on requests made by
/// `request` outside the timed part, [`BATCH`] at a time, each batch at the next stack offset
/// ([`at_every_stack_offset`]). The results, responses or errors, are dropped after the timed
/// part: the same for `bare`, `layer` and a tower twin.
pub fn bench_call<S>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    function: &str,
    request: fn() -> Request,
    mut service: S,
) where
    S: tower::Service<Request>,
{
    group.bench_function(function, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut requests = Vec::with_capacity(BATCH as usize);
            let mut results = Vec::with_capacity(BATCH as usize);
            let mut done = 0;
            let mut turn = 0;
            while done < iters {
                let calls = (iters - done).min(BATCH);
                requests.extend((0..calls).map(|_| request()));
                total +=
                    at_every_stack_offset(turn, || timed_batch(&mut service, &mut requests, &mut results));
                results.clear();
                drop_kept();
                done += calls;
                turn += 1;
            }
            total
        })
    });
}

/// The input of the calibration workload: an API Gateway v2 event (1.7 KB of JSON), a copy
/// of its own rather than a test fixture, so that no edit made for a test moves the
/// calibration. Every time budget scales with the workload's cost against `reference_ns`
/// (up to `max_factor`): a longer input would widen them all. A test pins its length and
/// digest; change them only together with `reference_ns` in `budgets.toml`.
const CALIBRATION_INPUT: &str = include_str!("../fixtures/calibration-input.json");
/// How many times the workload parses its input; pinned with the input.
const CALIBRATION_ROUNDS: usize = 4;

/// The calibration workload: checks an API Gateway v2 event's JSON four times over with
/// `serde_json`, building nothing. It is the byte scanning and branching request handling is
/// full of, none of it is Lift's code, and it allocates nothing, so neither a change to Lift
/// nor the allocator's state after a bench's earlier work moves its cost: only the machine
/// does. (A round trip through `serde_json::Value` ran up to 1.3 times slower in one bench
/// binary than in another on the same quiet machine, from the heap each left behind.)
///
/// `budgets.toml` holds its median on the reference machine (`[calibration]`); measure it
/// again there after changing this function, its input, or the `serde_json` version.
///
/// # Panics
/// Never: the input is a fixed JSON document.
pub fn calibration_workload(input: &str) -> usize {
    let mut total = 0;
    for _ in 0..CALIBRATION_ROUNDS {
        let mut de = serde_json::Deserializer::from_str(std::hint::black_box(input));
        let _: serde::de::IgnoredAny =
            serde::Deserialize::deserialize(&mut de).expect("the calibration input is JSON");
        total += input.len();
    }
    total
}

/// Adds the group's `calibrate_before` function, the [`calibration_workload`]: call it
/// first in every group, and [`calibrate_after`] last. The gate scales the group's budget
/// by the faster of the two, so a slowdown that lasts through the group counts and a burst
/// that hits one of them does not.
pub fn calibrate_before<M: Measurement>(group: &mut BenchmarkGroup<'_, M>) {
    calibrate(group, "calibrate_before");
}

/// Adds the group's `calibrate_after` function: see [`calibrate_before`].
pub fn calibrate_after<M: Measurement>(group: &mut BenchmarkGroup<'_, M>) {
    calibrate(group, "calibrate_after");
}

fn calibrate<M: Measurement>(group: &mut BenchmarkGroup<'_, M>, function: &str) {
    group.bench_function(function, |b| {
        b.iter(|| calibration_workload(std::hint::black_box(CALIBRATION_INPUT)))
    });
}

// --- JWT: bench-only keys and tokens (signed once, expiring in 2100) ---------------------

/// The issuer of the bench tokens.
pub const ISSUER: &str = "https://issuer.bench.lift";
/// Their audience.
pub const AUDIENCE: &str = "payments";
/// The HS256 key of [`HS256_TOKEN`].
pub const HS256_SECRET: &[u8] = b"bench-only-hs256-secret-0123456789abcdef";
/// A token of tenant `acme` with both payments scopes, HS256, expiring in 2100.
pub const HS256_TOKEN: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJodHRwczovL2lzc3Vlci5iZW5jaC5saWZ0Iiwic3ViIjoidXNlci0xIiwiYXVkIjoicGF5bWVudHMiLCJpYXQiOjE3MDAwMDAwMDAsImV4cCI6NDEwMjQ0NDgwMCwidGVuYW50X2lkIjoiYWNtZSIsInJvbGVzIjpbInN1cHBvcnQiXSwic2NvcGUiOiJwYXltZW50czpyZWFkIHBheW1lbnRzOndyaXRlIn0.ZO_lFRcr_T-cx-ylK3OdFeEnEuqEnoAIbwf9iK3UPwM";
/// The same claims, RS256 (`kid` `bench-rs256`), its key served by [`serve_jwks`].
pub const RS256_TOKEN: &str = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6ImJlbmNoLXJzMjU2In0.eyJpc3MiOiJodHRwczovL2lzc3Vlci5iZW5jaC5saWZ0Iiwic3ViIjoidXNlci0xIiwiYXVkIjoicGF5bWVudHMiLCJpYXQiOjE3MDAwMDAwMDAsImV4cCI6NDEwMjQ0NDgwMCwidGVuYW50X2lkIjoiYWNtZSIsInJvbGVzIjpbInN1cHBvcnQiXSwic2NvcGUiOiJwYXltZW50czpyZWFkIHBheW1lbnRzOndyaXRlIn0.F1ALpkH4xo3AhOt9Ja5sA-MzC4qFMTwc_SQp5Q6v5-qHbS6e_G7xizXjdWHhUwlbDV3BDZFnshqqtqZbsR1ENUqXXpLTWi_tAmMC3V06DNQNUZ3maOHOOYcXtWgpqwmOTFewengIPhu9lS9fpgjO1iHHeenU8MqJ44yHYP6piG-Wt4TRAzsgdSoHtjuVUlLmMmvE7OxQ0X0Zw5U7MmL8rCZisJDAX1LlehL6msUOBjSihp_tQu5lRKukUnt7zdLZ-RB4xK4b1nReVBi9_z-CpHwxzFyTjN998rCpH74_BgH_jaDMNfN02BqrmFMR0ObgwS3VP0HmLBMsWot7wAxwpg";
/// The public half of the RS256 bench key (`kid` `bench-rs256`).
const RS256_MODULUS: &str = "08slFRCsKoxypwYjtFlsMqErmCaGFvWhtEdVuoGfnKmhxwhtcGuZEApU7gKXVwsEg0yIgcVBNpHVelEw94vnVCjsGCmgIeNovuuBUWFAfVGxTHmvdI3CQDsMJkkRqgjU9decCLjeI-6cEe7tKBUcnYuocym3jknOt68c4L_L4Z3Ee81AXQ9jSMckPnf18iiqp5hq5iTOx40jSYNNBOvb4IMjduHxTyfUCcEeNnM9MQC99hG509sA9kctyYqzfPpaatJ0n_JnQayQXMbvFWIo_B1AfmIGTUD_i6CP16RAx1MFQXyrL0IsXxyBh85l6wSUONsYww-itvACji9ci8pBRQ";

/// Serves the bench key's JWK set over HTTP/1.1 on a local port; returns its URL.
pub async fn serve_jwks() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/jwks.json", listener.local_addr().expect("local addr"));
    let body = serde_json::json!({ "keys": [{
        "kty": "RSA", "kid": "bench-rs256", "use": "sig", "alg": "RS256", "n": RS256_MODULUS, "e": "AQAB",
    }]})
    .to_string();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf).await;
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
        }
    });
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A layer's response and kept request are checked against noop's: a guard hung on
    /// either, whose drop the benches would not measure, is caught; noop alone, and a layer
    /// that only passes the call on, pass.
    #[test]
    fn work_left_for_the_untimed_drop_is_caught() {
        use tower::ServiceExt;
        /// Work for a drop: what a layer could hang on a request or a response.
        #[derive(Clone)]
        struct Guard;
        let run = |service: &mut dyn FnMut(Request) -> Response| {
            let response = service(get_request());
            check_nothing_deferred(&response)
        };
        let mut bare = noop();
        assert_eq!(run(&mut |req| call_ready(&mut bare, req).unwrap()), Ok(()));
        let mut passing = noop().map_request(|req: Request| req);
        assert_eq!(run(&mut |req| call_ready(&mut passing, req).unwrap()), Ok(()));

        let mut on_response = noop().map_response(|mut res: Response| {
            res.extensions_mut().insert(Guard);
            res
        });
        let err = run(&mut |req| call_ready(&mut on_response, req).unwrap()).unwrap_err();
        assert!(err.contains("1 extension(s)"), "{err}");
        let mut header = noop().map_response(|mut res: Response| {
            res.headers_mut().insert("x-layer", http::HeaderValue::from_static("1"));
            res
        });
        assert!(run(&mut |req| call_ready(&mut header, req).unwrap()).is_err());
        let mut on_request = noop().map_request(|mut req: Request| {
            req.extensions_mut().insert(Guard);
            req
        });
        let err = run(&mut |req| call_ready(&mut on_request, req).unwrap()).unwrap_err();
        assert!(err.contains("request noop kept carries 1 extension(s)"), "{err}");

        drop_kept();
        let err = check_nothing_deferred(&Response::new(Body::empty())).unwrap_err();
        assert!(err.contains("kept no request"), "{err}");

        // Work handed to a task on the runtime the benches enter and never drive.
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let _context = rt.enter();
        let mut bare = noop();
        assert_eq!(run(&mut |req| call_ready(&mut bare, req).unwrap()), Ok(()));
        let mut spawning = noop().map_request(|req: Request| {
            tokio::spawn(async { std::hint::black_box(0u64) });
            req
        });
        let err = run(&mut |req| call_ready(&mut spawning, req).unwrap()).unwrap_err();
        assert!(err.contains("1 task(s) alive"), "{err}");
    }

    /// The calibration workload is what `reference_ns` in `budgets.toml` was measured on:
    /// an input twice as long would double the speed factor and so every time budget, up to
    /// `max_factor`. Its input, its rounds and its result are pinned here; a change to them
    /// must come with `reference_ns` measured again on the reference machine.
    #[test]
    fn the_calibration_workload_is_the_one_its_reference_was_measured_on() {
        // FNV-1a, 64 bits: enough to notice an edit, with no dependency.
        let digest = CALIBRATION_INPUT
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
        assert_eq!(
            (CALIBRATION_INPUT.len(), CALIBRATION_ROUNDS, digest),
            (1683, 4, PINNED_DIGEST),
            "the calibration input or rounds changed: measure reference_ns again (budgets.toml)"
        );
        assert_eq!(calibration_workload(CALIBRATION_INPUT), 4 * 1683);
    }

    /// FNV-1a of `benches/fixtures/calibration-input.json` as `reference_ns` was measured.
    const PINNED_DIGEST: u64 = 0x72f8_eecc_8aba_f34c;

    /// Four turns in a row run at four stack addresses, one in each 16-byte slot of a
    /// 64-byte cache line, and the fifth turn runs where the first did. Were `below` inlined
    /// or its pad optimized away, every turn would run at one address and a bench would
    /// measure one offset only.
    #[test]
    fn four_turns_take_every_offset_within_a_cache_line() {
        let at = |turn| {
            at_every_stack_offset(turn, || {
                let local = 0u8;
                std::hint::black_box(std::ptr::addr_of!(local)) as usize
            })
        };
        let addresses: Vec<usize> = (0..5).map(at).collect();
        let mut slots: Vec<usize> = addresses[..4].iter().map(|a| a % 64 / 16).collect();
        slots.sort_unstable();
        assert_eq!(slots, [0, 1, 2, 3], "stack addresses {addresses:x?}");
        assert!(addresses[..4].iter().all(|a| a % 16 == addresses[0] % 16), "{addresses:x?}");
        assert_eq!(addresses[4], addresses[0], "the turns cycle");
    }

    /// `drop_kept` empties what `noop` kept and keeps its room, so a batch's calls allocate
    /// nothing for it.
    #[test]
    fn dropping_the_kept_requests_keeps_their_room() {
        let mut service = noop();
        for _ in 0..BATCH {
            call_ready(&mut service, http::Request::new(Body::empty())).expect("infallible");
        }
        drop_kept();
        let (len, room) = KEPT.with_borrow(|kept| (kept.len(), kept.capacity()));
        assert_eq!(len, 0);
        assert!(room >= BATCH as usize, "room for {room}");
    }
}
