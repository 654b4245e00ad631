//! Segment and subsegment documents as the X-Ray daemon expects them, written by hand into
//! one buffer per request: the part known when the request arrives is written then, the
//! rest when the response is ready.

use crate::json::{push_json_chars, push_json_str};
use crate::trace::{SegmentId, TraceId};

/// What precedes every document in a datagram to the daemon.
pub(crate) const DAEMON_HEADER: &str = "{\"format\": \"json\", \"version\": 1}\n";

/// The daemon reads datagrams up to 64 KiB; stay a little under.
pub(crate) const MAX_DATAGRAM: usize = 63 * 1024;

/// The X-Ray namespace of a subsegment.
///
/// # Examples
///
/// ```
/// use lift::middleware::xray::Namespace;
/// assert_eq!(Namespace::Aws.as_str(), Some("aws"));
/// assert_eq!(Namespace::Local.as_str(), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Namespace {
    /// A call to an AWS service (DynamoDB, KMS...).
    Aws,
    /// A call to another downstream service over the network.
    Remote,
    /// Work inside the function (no namespace).
    Local,
}

impl Namespace {
    /// The `namespace` value in the document, if any.
    pub fn as_str(self) -> Option<&'static str> {
        match self {
            Namespace::Aws => Some("aws"),
            Namespace::Remote => Some("remote"),
            Namespace::Local => None,
        }
    }
}

/// An annotation value: X-Ray indexes strings, numbers and booleans.
///
/// # Examples
///
/// ```
/// use lift::middleware::xray::AnnotationValue;
/// assert_eq!(AnnotationValue::from("eu-west-1"), AnnotationValue::String("eu-west-1".into()));
/// assert_eq!(AnnotationValue::from(3i64), AnnotationValue::Number(3.0));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub enum AnnotationValue {
    /// A string.
    String(String),
    /// A number.
    Number(f64),
    /// A boolean.
    Bool(bool),
}

impl From<&str> for AnnotationValue {
    fn from(v: &str) -> Self {
        Self::String(v.to_owned())
    }
}

impl From<String> for AnnotationValue {
    fn from(v: String) -> Self {
        Self::String(v)
    }
}

impl From<f64> for AnnotationValue {
    fn from(v: f64) -> Self {
        Self::Number(v)
    }
}

impl From<i64> for AnnotationValue {
    fn from(v: i64) -> Self {
        Self::Number(v as f64)
    }
}

impl From<bool> for AnnotationValue {
    fn from(v: bool) -> Self {
        Self::Bool(v)
    }
}

/// X-Ray annotation keys are letters, digits and underscores.
pub(crate) fn annotation_key(key: &str) -> String {
    key.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect()
}

/// Error, fault and throttle flags.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub(crate) error: bool,
    pub(crate) fault: bool,
    pub(crate) throttle: bool,
}

impl Outcome {
    /// The flags X-Ray derives from an HTTP status: 429 throttle + error, 4xx error, 5xx fault.
    pub(crate) fn from_status(status: u16) -> Self {
        Self { error: (400..500).contains(&status), fault: status >= 500, throttle: status == 429 }
    }

    fn merge(self, other: Self) -> Self {
        Self {
            error: self.error || other.error,
            fault: self.fault || other.fault,
            throttle: self.throttle || other.throttle,
        }
    }

    fn write(self, out: &mut String) {
        for (key, on) in [
            (",\"error\":true", self.error),
            (",\"fault\":true", self.fault),
            (",\"throttle\":true", self.throttle),
        ] {
            if on {
                out.push_str(key);
            }
        }
    }
}

/// A finished downstream call.
#[derive(Debug, Clone)]
pub(crate) struct Subsegment {
    pub(crate) name: String,
    pub(crate) id: SegmentId,
    pub(crate) namespace: Namespace,
    pub(crate) start_time: f64,
    pub(crate) end_time: f64,
    pub(crate) outcome: Outcome,
    pub(crate) http_status: Option<u16>,
    pub(crate) annotations: Vec<(String, AnnotationValue)>,
}

impl Subsegment {
    pub(crate) fn set_status(&mut self, status: u16) {
        self.http_status = Some(status);
        self.outcome = self.outcome.merge(Outcome::from_status(status));
    }

    /// The members after `{` (and after any members written before them).
    fn write_members(&self, out: &mut String) {
        out.push_str("\"name\":");
        push_json_str(out, &self.name);
        push_id(out, ",\"id\":", &self.id.to_ascii());
        out.push_str(",\"start_time\":");
        push_time(out, self.start_time);
        out.push_str(",\"end_time\":");
        push_time(out, self.end_time);
        if let Some(ns) = self.namespace.as_str() {
            out.push_str(",\"namespace\":\"");
            out.push_str(ns);
            out.push('"');
        }
        self.outcome.write(out);
        if let Some(status) = self.http_status {
            out.push_str(",\"http\":{\"response\":{\"status\":");
            push_u64(out, u64::from(status));
            out.push_str("}}");
        }
        push_annotations(out, &self.annotations);
    }
}

/// The request as X-Ray records it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HttpRequest<'a> {
    pub(crate) method: &'a str,
    /// `https://host` (or empty); the path follows.
    pub(crate) host: Option<&'a str>,
    pub(crate) path: &'a str,
    pub(crate) user_agent: Option<&'a str>,
    pub(crate) client_ip: Option<&'a str>,
}

/// What is known of the handler's segment when the request arrives.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SegmentStart<'a> {
    pub(crate) name: &'a str,
    pub(crate) id: SegmentId,
    pub(crate) trace_id: TraceId,
    pub(crate) parent_id: Option<SegmentId>,
    /// On Lambda the service owns the segment; the function sends a subsegment of it.
    pub(crate) is_subsegment: bool,
    pub(crate) start_time: f64,
    pub(crate) request: HttpRequest<'a>,
}

/// What is known when the response is ready.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SegmentEnd<'a> {
    pub(crate) end_time: f64,
    pub(crate) status: Option<u16>,
    pub(crate) outcome: Outcome,
    pub(crate) annotations: &'a [(String, AnnotationValue)],
    pub(crate) subsegments: &'a [Subsegment],
}

/// Writes the daemon header and the document up to the open `"http"` object.
pub(crate) fn begin(out: &mut String, seg: &SegmentStart<'_>) {
    out.push_str(DAEMON_HEADER);
    out.push_str("{\"name\":");
    push_json_str(out, seg.name);
    push_id(out, ",\"id\":", &seg.id.to_ascii());
    push_id(out, ",\"trace_id\":", &seg.trace_id.to_ascii());
    if let Some(parent) = seg.parent_id {
        push_id(out, ",\"parent_id\":", &parent.to_ascii());
    }
    if seg.is_subsegment {
        out.push_str(",\"type\":\"subsegment\"");
    }
    out.push_str(",\"start_time\":");
    push_time(out, seg.start_time);
    let req = &seg.request;
    out.push_str(",\"http\":{\"request\":{\"method\":");
    push_json_str(out, req.method);
    out.push_str(",\"url\":");
    match req.host {
        Some(host) => {
            out.push_str("\"https://");
            push_json_chars(out, host);
            push_json_chars(out, req.path);
            out.push('"');
        }
        None => push_json_str(out, req.path),
    }
    for (key, value) in [(",\"user_agent\":", req.user_agent), (",\"client_ip\":", req.client_ip)] {
        if let Some(value) = value {
            out.push_str(key);
            push_json_str(out, value);
        }
    }
    out.push('}');
}

/// Completes the document begun by [`begin`] and calls `send` per datagram: one with the
/// subsegments inside when it fits, else the segment alone and each subsegment on its own.
pub(crate) fn finish(
    mut out: String,
    trace_id: TraceId,
    id: SegmentId,
    end: &SegmentEnd<'_>,
    mut send: impl FnMut(&[u8]),
) {
    if let Some(status) = end.status {
        out.push_str(",\"response\":{\"status\":");
        push_u64(&mut out, u64::from(status));
        out.push('}');
    }
    out.push_str("},\"end_time\":");
    push_time(&mut out, end.end_time);
    end.outcome.write(&mut out);
    push_annotations(&mut out, end.annotations);
    let without_subsegments = out.len();
    if !end.subsegments.is_empty() {
        out.push_str(",\"subsegments\":[");
        for (i, sub) in end.subsegments.iter().enumerate() {
            out.push_str(if i == 0 { "{" } else { ",{" });
            sub.write_members(&mut out);
            out.push('}');
        }
        out.push(']');
    }
    out.push('}');
    if out.len() <= MAX_DATAGRAM {
        send(out.as_bytes());
        return;
    }
    out.truncate(without_subsegments);
    out.push('}');
    if out.len() <= MAX_DATAGRAM {
        send(out.as_bytes());
    }
    for sub in end.subsegments {
        out.clear();
        out.push_str(DAEMON_HEADER);
        out.push_str("{\"type\":\"subsegment\"");
        push_id(&mut out, ",\"trace_id\":", &trace_id.to_ascii());
        push_id(&mut out, ",\"parent_id\":", &id.to_ascii());
        out.push(',');
        sub.write_members(&mut out);
        out.push('}');
        // A subsegment too big on its own is dropped rather than cut into invalid JSON.
        if out.len() <= MAX_DATAGRAM {
            send(out.as_bytes());
        }
    }
}

fn push_id(out: &mut String, key: &str, ascii: &[u8]) {
    out.push_str(key);
    out.push('"');
    out.push_str(std::str::from_utf8(ascii).unwrap_or_default());
    out.push('"');
}

fn push_annotations(out: &mut String, annotations: &[(String, AnnotationValue)]) {
    if annotations.is_empty() {
        return;
    }
    out.push_str(",\"annotations\":{");
    for (i, (key, value)) in annotations.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_json_str(out, key);
        out.push(':');
        match value {
            AnnotationValue::String(v) => push_json_str(out, v),
            AnnotationValue::Number(v) if v.is_finite() => {
                use std::fmt::Write as _;
                let _ = write!(out, "{v}");
            }
            AnnotationValue::Number(v) => push_json_str(out, &v.to_string()),
            AnnotationValue::Bool(v) => out.push_str(if *v { "true" } else { "false" }),
        }
    }
    out.push('}');
}

fn push_u64(out: &mut String, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.push_str(std::str::from_utf8(&buf[at..]).unwrap_or_default());
}

/// Epoch seconds with microseconds, as the X-Ray SDKs write them.
fn push_time(out: &mut String, seconds: f64) {
    let micros = (seconds.max(0.0) * 1e6).round() as u64;
    push_u64(out, micros / 1_000_000);
    let frac = micros % 1_000_000;
    out.push('.');
    let mut buf = [b'0'; 6];
    let mut v = frac;
    for slot in buf.iter_mut().rev() {
        *slot = b'0' + (v % 10) as u8;
        v /= 10;
    }
    out.push_str(std::str::from_utf8(&buf).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(name: &str, annotation: usize) -> Subsegment {
        Subsegment {
            name: name.to_owned(),
            id: SegmentId::new(7),
            namespace: Namespace::Aws,
            start_time: 1.5,
            end_time: 2.25,
            outcome: Outcome::default(),
            http_status: Some(200),
            annotations: vec![("big".into(), AnnotationValue::String("x".repeat(annotation)))],
        }
    }

    fn encoded(subs: &[Subsegment]) -> Vec<serde_json::Value> {
        let start = SegmentStart {
            name: "svc \"q\"",
            id: SegmentId::new(1),
            trace_id: TraceId::from_parts(1, 2),
            parent_id: Some(SegmentId::new(0xabc)),
            is_subsegment: false,
            start_time: 1_700_000_000.000_25,
            request: HttpRequest {
                method: "GET",
                host: Some("api.example.com"),
                path: "/p",
                user_agent: Some("ua"),
                client_ip: None,
            },
        };
        let annotations = [("tenant".to_owned(), AnnotationValue::Bool(true))];
        let end = SegmentEnd {
            end_time: 1_700_000_001.5,
            status: Some(503),
            outcome: Outcome::from_status(503),
            annotations: &annotations,
            subsegments: subs,
        };
        let mut out = String::new();
        begin(&mut out, &start);
        let mut docs = Vec::new();
        finish(out, start.trace_id, start.id, &end, |d| {
            assert!(d.starts_with(DAEMON_HEADER.as_bytes()) && d.len() <= MAX_DATAGRAM);
            docs.push(serde_json::from_slice(&d[DAEMON_HEADER.len()..]).expect("valid JSON"));
        });
        docs
    }

    #[test]
    fn subsegments_nest_when_they_fit() {
        let docs = encoded(&[sub("DynamoDB", 10)]);
        assert_eq!(docs.len(), 1);
        let d = &docs[0];
        assert_eq!(
            (&d["name"], &d["id"], &d["parent_id"]),
            (&"svc \"q\"".into(), &"0000000000000001".into(), &"0000000000000abc".into())
        );
        assert_eq!(d["trace_id"], "1-00000001-000000000000000000000002");
        assert_eq!(
            (d["start_time"].as_f64(), d["end_time"].as_f64()),
            (Some(1_700_000_000.000_25), Some(1_700_000_001.5))
        );
        assert_eq!(d["http"]["request"]["url"], "https://api.example.com/p");
        assert_eq!((&d["fault"], &d["http"]["response"]["status"]), (&true.into(), &503.into()));
        assert_eq!(d["annotations"]["tenant"], true);
        assert_eq!(d["subsegments"][0]["namespace"], "aws");
        assert_eq!(d["subsegments"][0]["http"]["response"]["status"], 200);
    }

    #[test]
    fn oversized_documents_send_subsegments_alone() {
        let docs = encoded(&[sub("a", 40_000), sub("b", 40_000)]);
        assert_eq!(docs.len(), 3);
        assert!(docs[0].get("subsegments").is_none());
        assert_eq!(docs[1]["type"], "subsegment");
        assert_eq!(docs[1]["parent_id"], "0000000000000001");
        assert_eq!(docs[2]["name"], "b");
    }

    #[test]
    fn status_flags() {
        assert_eq!(Outcome::from_status(429), Outcome { error: true, fault: false, throttle: true });
        assert_eq!(Outcome::from_status(404), Outcome { error: true, fault: false, throttle: false });
        assert_eq!(Outcome::from_status(500), Outcome { error: false, fault: true, throttle: false });
        assert_eq!(Outcome::from_status(200), Outcome::default());
    }
}
