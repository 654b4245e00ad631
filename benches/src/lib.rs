//! Shared pieces of Lift's benches: the bare no-op service every middleware is measured
//! against, and a realistic request.
//!
//! Convention: a bench file measures each middleware in its own criterion group named after
//! the middleware (the key in `budgets.toml`), with two functions: `bare` (the no-op service
//! alone) and `layer` (the middleware over the same no-op service), in the same run.
#![warn(missing_docs)]

use std::convert::Infallible;

use lift::{Body, Request, Response};

/// The no-op inner service: answers 200 with an empty body, at once.
pub fn noop() -> impl tower::Service<
    Request,
    Response = Response,
    Error = Infallible,
    Future = std::future::Ready<Result<Response, Infallible>>,
> + Clone
       + Send
       + Sync
       + 'static {
    tower::service_fn(|_req: Request| std::future::ready(Ok::<_, Infallible>(Response::new(Body::empty()))))
}

/// A GET request with a small set of realistic headers.
pub fn get_request() -> Request {
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
        let drain = {
            let stop = std::sync::Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 65_536];
                let mut received = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    // Drain what arrived, then sleep: a receiver blocked in recv would be
                    // woken per datagram and, on a small machine, preempt the measured thread.
                    while socket.recv(&mut buf).is_ok() {
                        received += 1;
                    }
                    std::thread::sleep(std::time::Duration::from_micros(200));
                }
                received
            })
        };
        Self { address, stop, drain }
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
