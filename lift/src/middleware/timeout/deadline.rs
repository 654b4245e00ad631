//! Where a request's deadline comes from.

use std::time::{Duration, SystemTime};

use crate::context::{Context, Invocation};

/// Time left before the Lambda invocation of this request ends, if it has a deadline.
///
/// Looks in request extensions for a [`lift::Context`](crate::Context) (inserted by the
/// App), then a [`lift::Invocation`](crate::Invocation), then (feature `lambda`) the
/// `lambda_runtime::Context` that lambda_http inserts. Zero once the deadline has passed.
///
/// # Examples
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use lift::middleware::timeout::remaining;
///
/// let mut ctx = lift::Context::new("req-1");
/// ctx.set_deadline(SystemTime::now() + Duration::from_secs(5));
/// let mut req = http::Request::new(lift::Body::empty());
/// req.extensions_mut().insert(ctx);
/// assert!(remaining(&req).unwrap() <= Duration::from_secs(5));
/// assert_eq!(remaining(&http::Request::new(())), None);
/// ```
pub fn remaining<B>(req: &http::Request<B>) -> Option<Duration> {
    let ext = req.extensions();
    if let Some(ctx) = ext.get::<Context>() {
        return ctx.remaining();
    }
    if let Some(deadline) = ext.get::<Invocation>().and_then(|i| i.deadline) {
        return Some(until(deadline));
    }
    #[cfg(feature = "lambda")]
    if let Some(ctx) = ext.get::<lambda_runtime::Context>() {
        // lambda_runtime reports 0 when it has no deadline (e.g. a hand-built context).
        if ctx.deadline > 0 {
            return Some(until(ctx.deadline()));
        }
    }
    None
}

fn until(deadline: SystemTime) -> Duration {
    deadline.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO)
}
