//! A compact copy of a request, kept for the retries.

use http::header::{HeaderName, HeaderValue};
use http::uri::{Authority, Parts, PathAndQuery, Scheme};
use http::{Extensions, HeaderMap, Method, Uri, Version};

/// What a retry needs to send a request again, copied in one allocation: the URI parts and
/// the headers packed into one buffer.
///
/// `Request::clone` would allocate once per header name and value (each `Bytes` built from a
/// `&str` is promoted to a shared buffer on its first clone) and twice for the `HeaderMap`:
/// on the first attempt, which usually succeeds, that would be most of the layer's cost. The
/// request is rebuilt (and its parts validated again) only when a retry is due.
pub(crate) struct RequestCopy<B> {
    method: Method,
    version: Version,
    extensions: Extensions,
    body: B,
    /// Three URI parts (scheme, authority, path and query), each a presence byte, a length
    /// and the bytes; then each header: name length, value length, sensitive flag, name,
    /// value. Lengths are little-endian `u32`.
    bytes: Vec<u8>,
    headers: usize,
}

impl<B: Clone> RequestCopy<B> {
    pub(crate) fn new(req: &http::Request<B>) -> Self {
        let uri = req.uri();
        let parts = [
            uri.scheme_str(),
            uri.authority().map(Authority::as_str),
            uri.path_and_query().map(PathAndQuery::as_str),
        ];
        let headers = req.headers();
        // One pass over the headers: room for typical names and values up front, growing
        // (rarely) for large ones.
        let uri_len: usize = parts.iter().map(|p| 5 + p.map_or(0, str::len)).sum();
        let mut bytes = Vec::with_capacity(uri_len + headers.len() * 64);
        for part in parts {
            bytes.push(u8::from(part.is_some()));
            put(&mut bytes, part.unwrap_or_default().as_bytes());
        }
        for (name, value) in headers {
            let (name, sensitive, value) = (name.as_str().as_bytes(), value.is_sensitive(), value.as_bytes());
            let [a, b, c, d] = len_of(name);
            let [e, f, g, h] = len_of(value);
            bytes.extend_from_slice(&[a, b, c, d, e, f, g, h, u8::from(sensitive)]);
            bytes.extend_from_slice(name);
            bytes.extend_from_slice(value);
        }
        Self {
            method: req.method().clone(),
            version: req.version(),
            extensions: req.extensions().clone(),
            body: req.body().clone(),
            bytes,
            headers: headers.len(),
        }
    }

    /// The request again; `None` only if a part no longer parses (it did once).
    pub(crate) fn to_request(&self) -> Option<http::Request<B>> {
        let mut rest = self.bytes.as_slice();
        let mut uri = Parts::default();
        let mut part = || -> Option<Option<&[u8]>> {
            let (&present, tail) = rest.split_first()?;
            rest = tail;
            let len = read_len(&mut rest)?;
            let bytes = take(&mut rest, len)?;
            Some((present == 1).then_some(bytes))
        };
        let (scheme, authority, path) = (part()?, part()?, part()?);
        uri.scheme = scheme.map(Scheme::try_from).transpose().ok()?;
        uri.authority = authority.map(Authority::try_from).transpose().ok()?;
        uri.path_and_query = path.map(PathAndQuery::try_from).transpose().ok()?;
        let mut headers = HeaderMap::with_capacity(self.headers);
        for _ in 0..self.headers {
            let (name_len, value_len) = (read_len(&mut rest)?, read_len(&mut rest)?);
            let (&sensitive, tail) = rest.split_first()?;
            rest = tail;
            let name = HeaderName::from_bytes(take(&mut rest, name_len)?).ok()?;
            let mut value = HeaderValue::from_bytes(take(&mut rest, value_len)?).ok()?;
            value.set_sensitive(sensitive == 1);
            headers.append(name, value);
        }
        let mut req = http::Request::new(self.body.clone());
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = Uri::from_parts(uri).ok()?;
        *req.version_mut() = self.version;
        *req.headers_mut() = headers;
        *req.extensions_mut() = self.extensions.clone();
        Some(req)
    }
}

/// A length as 4 little-endian bytes (header values over 4 GiB do not exist).
fn len_of(bytes: &[u8]) -> [u8; 4] {
    u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_le_bytes()
}

fn put(buf: &mut Vec<u8>, bytes: &[u8]) {
    buf.extend_from_slice(&len_of(bytes));
    buf.extend_from_slice(bytes);
}

fn read_len(rest: &mut &[u8]) -> Option<usize> {
    let bytes = take(rest, 4)?;
    Some(u32::from_le_bytes(bytes.try_into().ok()?) as usize)
}

fn take<'a>(rest: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    if rest.len() < n {
        return None;
    }
    let (head, tail) = rest.split_at(n);
    *rest = tail;
    Some(head)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(req: http::Request<&'static str>) {
        let copy = RequestCopy::new(&req).to_request().expect("rebuilt");
        assert_eq!(copy.method(), req.method());
        assert_eq!(copy.uri(), req.uri());
        assert_eq!(copy.version(), req.version());
        assert_eq!(copy.headers(), req.headers());
        assert_eq!(copy.body(), req.body());
    }

    #[test]
    fn copies_survive_the_round_trip() {
        let mut req = http::Request::post("https://psp.example:8443/v1/charges?expand=card")
            .version(Version::HTTP_2)
            .header("idempotency-key", "k-1")
            .header("x-custom", "a")
            .header("x-custom", "b")
            .header("accept", "application/json")
            .body("{\"amount\":100}")
            .unwrap();
        req.headers_mut().insert("authorization", {
            let mut v = HeaderValue::from_static("Bearer t");
            v.set_sensitive(true);
            v
        });
        req.extensions_mut().insert(7u32);
        let copy = RequestCopy::new(&req).to_request().unwrap();
        assert!(copy.headers()["authorization"].is_sensitive());
        assert_eq!(copy.headers().get_all("x-custom").iter().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(copy.extensions().get::<u32>(), Some(&7));
        round_trip(req);
        round_trip(http::Request::get("/").body("").unwrap());
        round_trip(http::Request::get("/payments/p1?x=%20y").header("host", "api").body("").unwrap());
        round_trip(http::Request::connect("example.com:443").body("").unwrap());
    }
}
