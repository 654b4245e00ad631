//! The request detectors: which parts of a request are scanned, and the body limits.

use http::header::{CONTENT_TYPE, ORIGIN, REFERER, USER_AGENT};
use http::HeaderName;

use super::finding::{Finding, FindingKind, Location, Severity, ThreatAssessment};
use super::scan::{scan_json_string, scan_raw, Hit, Scratch};

/// The largest body scanned by default: 1 MiB. Larger bodies are a finding themselves.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
/// The deepest JSON nesting allowed by default.
pub const DEFAULT_MAX_DEPTH: usize = 32;

/// Runs the request detectors: SQL injection, XSS, path traversal, command injection and
/// SSRF in the path, the query string, the inspected headers and the body (JSON string
/// keys and values, form fields, text), plus the body size and JSON depth limits.
///
/// Scanned headers by default: `User-Agent`, `Referer`, `Origin`, `X-Forwarded-Host`,
/// `X-Original-URL`, `X-Rewrite-URL`. `Authorization` and cookies are never scanned into
/// findings' locations with their values: findings name the header, never its content.
///
/// # Examples
///
/// ```
/// use lift::security::threat::{Detectors, FindingKind};
///
/// let detectors = Detectors::new();
/// let req = http::Request::builder()
///     .uri("/payments?id=1%27%20OR%20%271%27%3D%271")
///     .body(lift::Body::empty())
///     .unwrap();
/// let assessment = detectors.inspect(&req);
/// assert_eq!(assessment.findings()[0].kind, FindingKind::SqlInjection);
/// assert!(assessment.score() >= 70);
/// ```
#[derive(Debug, Clone)]
pub struct Detectors {
    max_body_bytes: usize,
    max_depth: usize,
    headers: Vec<HeaderName>,
}

impl Default for Detectors {
    fn default() -> Self {
        Self::new()
    }
}

impl Detectors {
    /// The detectors with the default limits and headers.
    pub fn new() -> Self {
        Self {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_depth: DEFAULT_MAX_DEPTH,
            headers: vec![
                USER_AGENT,
                REFERER,
                ORIGIN,
                HeaderName::from_static("x-forwarded-host"),
                HeaderName::from_static("x-original-url"),
                HeaderName::from_static("x-rewrite-url"),
            ],
        }
    }

    /// The largest body accepted (default [`DEFAULT_MAX_BODY_BYTES`]).
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes;
        self
    }

    /// The deepest JSON nesting accepted (default [`DEFAULT_MAX_DEPTH`]).
    pub fn max_depth(mut self, depth: usize) -> Self {
        self.max_depth = depth;
        self
    }

    /// Scans one more header.
    pub fn inspect_header(mut self, name: HeaderName) -> Self {
        if !self.headers.contains(&name) {
            self.headers.push(name);
        }
        self
    }

    /// Assesses a request.
    pub fn inspect(&self, req: &crate::Request) -> ThreatAssessment {
        self.inspect_parts(req.uri(), req.headers(), req.body().as_bytes())
    }

    /// Assesses a request given as its URI, headers and body.
    pub fn inspect_parts(&self, uri: &http::Uri, headers: &http::HeaderMap, body: &[u8]) -> ThreatAssessment {
        let mut findings = Vec::new();
        let mut scratch = Scratch::default();
        let mut hits: Vec<Hit> = Vec::new();

        scan_raw(uri.path().as_bytes(), false, &mut scratch, &mut hits);
        emit(&mut hits, &mut findings, || Location::Path);
        if let Some(query) = uri.query() {
            scan_form(query.as_bytes(), Location::Query, &mut scratch, &mut hits, &mut findings);
        }
        for name in &self.headers {
            for value in headers.get_all(name) {
                scan_raw(value.as_bytes(), false, &mut scratch, &mut hits);
                emit(&mut hits, &mut findings, || Location::Header(name.as_str().to_owned()));
            }
        }
        if body.len() > self.max_body_bytes {
            findings.push(Finding::new(
                FindingKind::OversizedBody,
                Location::Body(String::new()),
                Severity::High,
                "body over limit",
            ));
        } else if !body.is_empty() {
            let content_type = headers.get(CONTENT_TYPE).map(|v| v.as_bytes()).unwrap_or_default();
            let first = body.iter().find(|c| !c.is_ascii_whitespace());
            if contains(content_type, b"json") || matches!(first, Some(b'{' | b'[')) {
                self.scan_json(body, &mut scratch, &mut hits, &mut findings);
            } else if contains(content_type, b"x-www-form-urlencoded") {
                scan_form(body, Location::Body, &mut scratch, &mut hits, &mut findings);
            } else if content_type.starts_with(b"text/") {
                scan_raw(body, false, &mut scratch, &mut hits);
                emit(&mut hits, &mut findings, || Location::Body(String::new()));
            }
        }
        ThreatAssessment::from_findings(findings)
    }

    /// Walks JSON text without building a tree: tracks depth and scans every string, keys
    /// included, naming the last key seen as the location.
    fn scan_json(
        &self,
        body: &[u8],
        scratch: &mut Scratch,
        hits: &mut Vec<Hit>,
        findings: &mut Vec<Finding>,
    ) {
        let mut depth = 0usize;
        let mut key = (0, 0);
        let mut i = 0;
        while i < body.len() {
            match body[i] {
                b'{' | b'[' => {
                    depth += 1;
                    if depth > self.max_depth {
                        findings.push(Finding::new(
                            FindingKind::DeepNesting,
                            Location::Body(String::new()),
                            Severity::High,
                            "json nested too deep",
                        ));
                        return;
                    }
                }
                b'}' | b']' => depth = depth.saturating_sub(1),
                b'"' => {
                    let start = i + 1;
                    let mut j = start;
                    while j < body.len() && body[j] != b'"' {
                        j += if body[j] == b'\\' { 2 } else { 1 };
                    }
                    let end = j.min(body.len());
                    let is_key = body[end.saturating_add(1).min(body.len())..]
                        .iter()
                        .find(|c| !c.is_ascii_whitespace())
                        == Some(&b':');
                    if is_key {
                        key = (start, end);
                    }
                    scan_json_string(&body[start..end], scratch, hits);
                    emit(hits, findings, || Location::Body(location_name(&body[key.0..key.1])));
                    i = end + 1;
                    continue;
                }
                _ => {}
            }
            i += 1;
        }
    }
}

/// Scans `a=1&b=2` pairs (each pair whole, so a payload split across `=` is still seen).
fn scan_form(
    form: &[u8],
    location: impl Fn(String) -> Location,
    scratch: &mut Scratch,
    hits: &mut Vec<Hit>,
    findings: &mut Vec<Finding>,
) {
    for pair in form.split(|&c| c == b'&') {
        scan_raw(pair, true, scratch, hits);
        emit(hits, findings, || {
            let name = &pair[..pair.iter().position(|&c| c == b'=').unwrap_or(pair.len())];
            location(location_name(name))
        });
    }
}

/// What replaces a field or parameter name that may not be stored.
pub(crate) const REDACTED_NAME: &str = "[redacted]";

/// A JSON key or query parameter name as a finding may name it: the name itself when it is
/// a short identifier (letters, digits, `_` and `-`, at most 64 bytes, fewer than four
/// digits, as `lift::body::parse_json` shows field names), else [`REDACTED_NAME`]. The name
/// is chosen by the client: a key that matched a rule is the payload itself, and a key may
/// hold an email or a card number, or be megabytes long. Findings go into the audit trail
/// and alerts, which must never carry such text.
fn location_name(name: &[u8]) -> String {
    let safe = !name.is_empty()
        && name.len() <= 64
        && name.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        && name.iter().filter(|b| b.is_ascii_digit()).count() < 4;
    if safe {
        // Only ASCII passed the check.
        String::from_utf8_lossy(name).into_owned()
    } else {
        REDACTED_NAME.to_owned()
    }
}

fn emit(hits: &mut Vec<Hit>, findings: &mut Vec<Finding>, location: impl FnOnce() -> Location) {
    if hits.is_empty() {
        return;
    }
    let location = location();
    findings.extend(
        hits.drain(..).map(|(kind, severity, rule)| Finding::new(kind, location.clone(), severity, rule)),
    );
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn post(body: &str) -> crate::Request {
        http::Request::builder()
            .method("POST")
            .uri("/payments")
            .header("content-type", "application/json")
            .header("user-agent", "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0")
            .body(crate::Body::from(body.to_owned()))
            .unwrap()
    }

    #[test]
    fn benign_payment_bodies_score_zero() {
        let body = r#"{"amount": 12999, "currency": "EUR", "description": "2x shoes; deliver to the back door",
            "customer": {"name": "Siobhán O'Brien", "email": "s.obrien+shop@example.ie", "phone": "+353 1 234 5678",
            "address": {"street": "12 O'Connell St.", "city": "Dublin", "postal_code": "D01 F5P2"}},
            "metadata": {"note": "price was 15.00 (now 12.99) -- 13% off!", "ip": "10.0.0.4",
            "return_url": "https://shop.example.com/orders/48213?status=paid&x=1"}}"#;
        let a = Detectors::new().inspect(&post(body));
        assert_eq!(a.score(), 0, "{:?}", a.findings());
    }

    #[test]
    fn body_findings_name_the_field() {
        let a = Detectors::new().inspect(&post(r#"{"card": {"holder": "x' OR '1'='1"}}"#));
        assert_eq!(a.findings()[0].location, Location::Body("holder".into()));
        let a =
            Detectors::new().inspect(&post(r#"{"callback": "http://169.254.169.254/latest/meta-data/"}"#));
        assert_eq!(a.findings()[0].kind, FindingKind::Ssrf);
        assert_eq!(a.findings()[0].severity, Severity::Critical);
        let a = Detectors::new().inspect(&post(r#"{"webhook": "gopher://127.0.0.1:6379/_INFO"}"#));
        assert_eq!(a.findings()[0].kind, FindingKind::Ssrf);
    }

    #[test]
    fn client_chosen_names_are_never_stored_unless_plain() {
        // A key that matched a rule is the payload; a key may hold personal data or be huge.
        let big = format!(r#"{{"{}": "<script>"}}"#, "k".repeat(100_000));
        for body in [
            r#"{"<img src=x onerror=alert(1)>": 1}"#,
            r#"{"ada@example.com": "<script>alert(1)</script>"}"#,
            r#"{"4111111111111111": "<script>alert(1)</script>"}"#,
            big.as_str(),
        ] {
            let a = Detectors::new().inspect(&post(body));
            assert!(!a.is_clean(), "{body:.80}");
            for f in a.findings() {
                assert_eq!(f.location, Location::Body(REDACTED_NAME.into()), "{body:.80}");
            }
        }
        let req = http::Request::builder()
            .uri("/p?%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E=1&ok_name=%3Cscript%3E")
            .body(crate::Body::empty())
            .unwrap();
        let locations: Vec<_> =
            Detectors::new().inspect(&req).findings().iter().map(|f| f.location.clone()).collect();
        assert!(locations.contains(&Location::Query(REDACTED_NAME.into())), "{locations:?}");
        assert!(locations.contains(&Location::Query("ok_name".into())), "{locations:?}");
    }

    #[test]
    fn limits_apply() {
        let deep = format!("{}{}", "[".repeat(40), "]".repeat(40));
        let a = Detectors::new().inspect(&post(&deep));
        assert_eq!(a.findings()[0].kind, FindingKind::DeepNesting);
        assert!(Detectors::new().max_depth(64).inspect(&post(&deep)).is_clean());
        let big = format!(r#"{{"a": "{}"}}"#, "x".repeat(2000));
        let a = Detectors::new().max_body_bytes(1000).inspect(&post(&big));
        assert_eq!(a.findings()[0].kind, FindingKind::OversizedBody);
    }

    #[test]
    fn headers_and_query_are_scanned() {
        let req = http::Request::builder()
            .uri("/files/..%2f..%2fetc%2fpasswd?q=%3Cscript%3Ealert(1)%3C/script%3E")
            .header("user-agent", "() { :; }; /bin/bash -c 'cat /etc/passwd'")
            .body(crate::Body::empty())
            .unwrap();
        let a = Detectors::new().inspect(&req);
        let kinds: Vec<_> = a.findings().iter().map(|f| (f.kind, f.location.clone())).collect();
        assert!(kinds.contains(&(FindingKind::PathTraversal, Location::Path)), "{kinds:?}");
        assert!(kinds.contains(&(FindingKind::Xss, Location::Query("q".into()))), "{kinds:?}");
        assert!(kinds.contains(&(FindingKind::CommandInjection, Location::Header("user-agent".into()))));
        assert_eq!(a.score(), 100.min(70 + 5 * (a.findings().len() as u8 - 1)));
    }

    proptest! {
        #[test]
        fn detectors_never_panic(path in "/[a-z0-9%./]{0,40}", query in "\\PC{0,80}", body in proptest::collection::vec(any::<u8>(), 0..400)) {
            let uri = format!("{path}?{}", query.replace(['#', ' '], ""));
            let Ok(uri) = uri.parse::<http::Uri>() else { return Ok(()) };
            let req = http::Request::builder().uri(uri).header("content-type", "application/json").body(crate::Body::from(body)).unwrap();
            let a = Detectors::new().inspect(&req);
            prop_assert!(a.score() <= 100);
        }

        #[test]
        fn scanners_never_panic_on_any_text(text in "\\PC{0,200}") {
            let json = serde_json::to_string(&serde_json::json!({ "k": text })).unwrap();
            let _ = Detectors::new().inspect(&post(&json));
        }

        #[test]
        fn plain_words_are_never_flagged(words in proptest::collection::vec("[A-Za-z]{1,10}", 0..30)) {
            let json = serde_json::to_string(&serde_json::json!({ "note": words.join(" ") })).unwrap();
            // Two-word SQL (`union select`) is the one way plain words can match.
            let a = Detectors::new().inspect(&post(&json));
            let sql_words = a.findings().iter().all(|f| f.kind == FindingKind::SqlInjection);
            prop_assert!(a.is_clean() || sql_words);
        }
    }
}
