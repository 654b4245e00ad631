//! The response future of [`RequestLog`](super::RequestLog).

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use http::{Method, Response, Uri};
use pin_project_lite::pin_project;
use tracing::Span;

use super::format::REQUEST_SPAN_TARGET;
use crate::context::MatchedRoute;
use crate::scrub::scrub;

/// What replaces a path segment that holds an email address.
const EMAIL_MARKER: &str = "[REDACTED:email]";

pin_project! {
    /// Polls the inner future inside the request span; logs completion at `debug`.
    ///
    /// The completion event's `path` is the route pattern the router matched
    /// (`/payments/:id`), read from the response's [`MatchedRoute`]; without one (no route
    /// matched, the request failed, or the layer runs inside the router), it is the request
    /// path with card numbers, SSNs, IBANs, tokens, secrets and email addresses in its
    /// segments replaced by markers. Paths carry identifiers, and whatever subscriber the
    /// application installs, the event must not put them in its logs.
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        span: Span,
        // The request's method and URI, when the completion event is on.
        completion: Option<(Method, Uri)>,
        start: Instant,
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(inner: F, span: Span, completion: Option<(Method, Uri)>, start: Instant) -> Self {
        Self { inner, span, completion, start }
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let _entered = this.span.enter();
        let result = std::task::ready!(this.inner.poll(cx));
        let Some((method, uri)) = this.completion.take() else { return Poll::Ready(result) };
        let latency_ms = this.start.elapsed().as_secs_f64() * 1000.0;
        match &result {
            // The path is worked out inside the macro, so only when the event is enabled.
            Ok(res) => tracing::debug!(
                target: REQUEST_SPAN_TARGET,
                method = %method,
                path = &*match res.extensions().get::<MatchedRoute>() {
                    Some(route) => Cow::Borrowed(route.as_str()),
                    None => redacted_path(uri.path()),
                },
                status = res.status().as_u16(),
                latency_ms,
                "request completed"
            ),
            Err(_) => tracing::debug!(
                target: REQUEST_SPAN_TARGET,
                method = %method,
                path = &*redacted_path(uri.path()),
                latency_ms,
                "request failed"
            ),
        }
        Poll::Ready(result)
    }
}

/// `path` with each segment that holds something sensitive replaced (see
/// [`redacted_segment`]); borrowed when nothing is.
fn redacted_path(path: &str) -> Cow<'_, str> {
    // Copied only from the first segment that changes.
    let mut out: Option<String> = None;
    let mut start = 0;
    for segment in path.split('/') {
        match (&mut out, redacted_segment(segment)) {
            (None, None) => {}
            (None, Some(redacted)) => {
                let mut copy = String::with_capacity(path.len() + 16);
                copy.push_str(&path[..start]);
                copy.push_str(&redacted);
                out = Some(copy);
            }
            (Some(copy), redacted) => {
                copy.push('/');
                copy.push_str(redacted.as_deref().unwrap_or(segment));
            }
        }
        start += segment.len() + 1;
    }
    out.map_or(Cow::Borrowed(path), Cow::Owned)
}

/// A path segment as it may be logged, when it differs from the segment: an email address
/// replaced whole, and what [`scrub`] finds (card numbers, SSNs, IBANs, tokens, secrets)
/// replaced by its marker. The segment is read percent-decoded, so that `%20` between
/// digit groups or `%40` for `@` hides nothing.
fn redacted_segment(segment: &str) -> Option<String> {
    let decoded = percent_decoded(segment);
    if is_email(&decoded) {
        return Some(EMAIL_MARKER.to_owned());
    }
    match scrub(&decoded) {
        Cow::Borrowed(_) => None,
        // Decoded text may hold spaces, line breaks or quotes: encoded again, so a plain
        // text subscriber's line stays one line.
        Cow::Owned(scrubbed) => Some(encode_unprintable(&scrubbed)),
    }
}

/// `segment` with its `%XX` escapes decoded; bytes that are not UTF-8 become U+FFFD, which
/// hides no digit from [`scrub`].
fn percent_decoded(segment: &str) -> Cow<'_, str> {
    if !segment.contains('%') {
        return Cow::Borrowed(segment);
    }
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if let (b'%', Some(&high), Some(&low)) = (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            if let (Some(high), Some(low)) = (crate::hex::digit(high), crate::hex::digit(low)) {
                out.push(high << 4 | low);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

/// Text before and after an `@`, with a dot after it: an address (`ada@example.com`),
/// where a handle (`@ada`) or a version (`pkg@1`) is none.
fn is_email(text: &str) -> bool {
    text.split_once('@').is_some_and(|(local, domain)| {
        !local.is_empty()
            && domain.split_once('.').is_some_and(|(host, tld)| !host.is_empty() && !tld.is_empty())
    })
}

/// Percent-encodes every byte but printable ASCII (and `%` itself).
fn encode_unprintable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for &b in text.as_bytes() {
        if b.is_ascii_graphic() && b != b'%' {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(b"0123456789ABCDEF"[usize::from(b >> 4)]));
            out.push(char::from(b"0123456789ABCDEF"[usize::from(b & 0xF)]));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sensitive_segments_are_replaced_and_plain_paths_kept() {
        assert!(matches!(redacted_path("/payments/pay_123/refunds"), Cow::Borrowed(_)));
        assert_eq!(redacted_path("/payments/4111111111111111"), "/payments/[REDACTED:pan]");
        assert_eq!(redacted_path("/cards/4111%201111%201111%201111/x"), "/cards/[REDACTED:pan]/x");
        assert_eq!(redacted_path("/users/ada@example.com/orders"), "/users/[REDACTED:email]/orders");
        assert_eq!(redacted_path("/users/ada%40example.com"), "/users/[REDACTED:email]");
        assert_eq!(redacted_path("/people/078-05-1120"), "/people/[REDACTED:ssn]");
        // Handles and versions are not addresses.
        assert!(matches!(redacted_path("/@ada/pkg@1"), Cow::Borrowed(_)));
        // A byte that is not UTF-8 does not stop the decoding, nor a malformed escape.
        assert_eq!(redacted_path("/x/%FF4111%201111%201111%201111"), "/x/%EF%BF%BD[REDACTED:pan]");
        assert!(matches!(redacted_path("/100%/%zz"), Cow::Borrowed(_)));
    }

    #[test]
    fn decoded_text_is_encoded_again() {
        assert_eq!(encode_unprintable("a b\n%\"é"), "a%20b%0A%25\"%C3%A9");
    }
}
