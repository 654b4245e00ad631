//! The `tracing_subscriber` layer that writes one scrubbed JSON line per event.

use std::fmt::{self, Write as _};
use std::io::{self, Write as _};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use crate::json::{push_json_str, push_rfc3339};
use crate::scrub::{is_plain_count, key_rule, scrub, KeyRule, Redaction};
use crate::sensitive::{field_kind, Kind};

/// The target of the span [`RequestLogLayer`](super::RequestLogLayer) opens per request.
pub const REQUEST_SPAN_TARGET: &str = "lift::request";

/// Validated settings, shared by every clone of the layer.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) level: LevelFilter,
    pub(crate) sample_rate: f64,
    pub(crate) function_name: Option<String>,
    pub(crate) function_version: Option<String>,
}

struct Shared {
    settings: Settings,
    /// `,"function_name":"..","function_version":".."`, rendered once.
    static_fields: String,
    /// State of the generator that picks debug-sampled requests.
    rng: AtomicU64,
}

/// A `tracing_subscriber` [`Layer`] that writes each event as one JSON line with
/// CloudWatch-friendly field names, after scrubbing card numbers, SSNs, secrets and email
/// addresses.
///
/// Build it with [`LogConfig`](super::LogConfig). A line carries `timestamp` (RFC 3339 UTC),
/// `level`, `message`, the event's own fields, the fields of the spans it is in (for a
/// request: `request_id`, `tenant`, `xray_trace_id`, `cold_start`, from
/// [`RequestLogLayer`](super::RequestLogLayer)), and `function_name` / `function_version`.
///
/// The level applies to the whole subscriber, so the layer is meant to be the subscriber's
/// only output. Requests picked by the sample rate also get their `debug` events.
///
/// # Examples
///
/// ```
/// use lift::middleware::logging::{LogConfig, MemoryWriter};
/// use tracing_subscriber::layer::SubscriberExt;
///
/// let logs = MemoryWriter::new();
/// let subscriber = tracing_subscriber::registry().with(LogConfig::new().writer(logs.clone()).build()?);
/// tracing::subscriber::with_default(subscriber, || {
///     tracing::info!(card = "4111 1111 1111 1111", "charged");
///     tracing::debug!("not written at the default level");
/// });
/// let line: serde_json::Value = serde_json::from_str(&logs.lines()[0]).unwrap();
/// assert_eq!(line["level"], "INFO");
/// assert_eq!(line["card"], "[REDACTED:pan]");
/// assert_eq!(logs.lines().len(), 1);
/// # Ok::<(), lift::middleware::logging::LogConfigError>(())
/// ```
pub struct JsonLogLayer<W = fn() -> io::Stdout> {
    shared: Arc<Shared>,
    make_writer: W,
}

impl<W: Clone> Clone for JsonLogLayer<W> {
    fn clone(&self) -> Self {
        Self { shared: Arc::clone(&self.shared), make_writer: self.make_writer.clone() }
    }
}

impl<W> fmt::Debug for JsonLogLayer<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonLogLayer").field("settings", &self.shared.settings).finish()
    }
}

/// Rendered fields of a span, kept in the span's extensions: the JSON values one after
/// another in one string, and where each field's value lies in it.
struct SpanFields {
    values: String,
    inline: [(&'static str, usize, usize); INLINE_FIELDS],
    len: usize,
    /// Fields past the first [`INLINE_FIELDS`].
    more: Vec<(&'static str, usize, usize)>,
}

/// Fields a span can have without another allocation (a request span has four).
const INLINE_FIELDS: usize = 8;

impl SpanFields {
    fn new() -> Self {
        Self {
            values: String::with_capacity(128),
            inline: [("", 0, 0); INLINE_FIELDS],
            len: 0,
            more: Vec::new(),
        }
    }

    /// Each field's name and rendered value, in the order they were first recorded.
    fn iter(&self) -> impl Iterator<Item = (&'static str, &str)> {
        self.inline[..self.len]
            .iter()
            .chain(&self.more)
            .map(|&(name, start, end)| (name, &self.values[start..end]))
    }

    /// Renders a field's value; a field recorded again takes the new value.
    fn set(&mut self, name: &'static str, render: impl FnOnce(&mut String)) {
        let start = self.values.len();
        render(&mut self.values);
        let end = self.values.len();
        let (inline, more) = (&mut self.inline[..self.len], &mut self.more);
        match inline.iter_mut().chain(more.iter_mut()).find(|(n, _, _)| *n == name) {
            Some(slot) => *slot = (name, start, end),
            None if self.len < INLINE_FIELDS => {
                self.inline[self.len] = (name, start, end);
                self.len += 1;
            }
            None => self.more.push((name, start, end)),
        }
    }
}

/// Marks a request span picked for debug sampling.
struct DebugSampled;

impl<W> JsonLogLayer<W> {
    pub(crate) fn new(settings: Settings, make_writer: W) -> Self {
        let mut static_fields = String::new();
        for (name, value) in
            [("function_name", &settings.function_name), ("function_version", &settings.function_version)]
        {
            if let Some(value) = value {
                static_fields.push_str(",\"");
                static_fields.push_str(name);
                static_fields.push_str("\":");
                push_json_str(&mut static_fields, value);
            }
        }
        let seed = uuid::Uuid::new_v4().as_u64_pair().0;
        Self { shared: Arc::new(Shared { settings, static_fields, rng: AtomicU64::new(seed) }), make_writer }
    }

    #[cfg(test)]
    pub(crate) fn settings(&self) -> &Settings {
        &self.shared.settings
    }

    fn pick_for_debug(&self) -> bool {
        let rate = self.shared.settings.sample_rate;
        if rate <= 0.0 {
            return false;
        }
        let x = splitmix(self.shared.rng.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed));
        ((x >> 11) as f64 / (1u64 << 53) as f64) < rate
    }

    /// Whether a level is written outside debug-sampled requests.
    fn level_on(&self, level: &Level) -> bool {
        self.shared.settings.level >= *level
    }

    /// Whether debug sampling could turn this level on.
    fn samplable(&self, level: &Level) -> bool {
        self.shared.settings.sample_rate > 0.0 && *level <= Level::DEBUG
    }
}

fn splitmix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl<S, W> Layer<S> for JsonLogLayer<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'a> MakeWriter<'a> + 'static,
{
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        if self.level_on(meta.level()) || (meta.is_span() && meta.target() == REQUEST_SPAN_TARGET) {
            Interest::always()
        } else if self.samplable(meta.level()) {
            Interest::sometimes()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, meta: &Metadata<'_>, ctx: Context<'_, S>) -> bool {
        if self.level_on(meta.level()) || (meta.is_span() && meta.target() == REQUEST_SPAN_TARGET) {
            return true;
        }
        self.samplable(meta.level())
            && ctx.lookup_current().is_some_and(|span| span.extensions().get::<DebugSampled>().is_some())
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        // The request span is at info, and must exist whatever the level.
        let mut hint = self.shared.settings.level.max(LevelFilter::INFO);
        if self.shared.settings.sample_rate > 0.0 {
            hint = hint.max(LevelFilter::DEBUG);
        }
        Some(hint)
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = SpanFields::new();
        attrs.record(&mut SpanVisitor { fields: &mut fields, scratch: String::new() });
        let sampled = if attrs.metadata().target() == REQUEST_SPAN_TARGET {
            self.pick_for_debug()
        } else {
            // Children of a sampled request stay sampled, so `enabled` looks at one span.
            span.parent().is_some_and(|p| p.extensions().get::<DebugSampled>().is_some())
        };
        let mut ext = span.extensions_mut();
        if sampled {
            ext.insert(DebugSampled);
        }
        ext.insert(fields);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut ext = span.extensions_mut();
        if let Some(fields) = ext.get_mut::<SpanFields>() {
            values.record(&mut SpanVisitor { fields, scratch: String::new() });
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        let mut line = String::with_capacity(384);
        line.push_str("{\"timestamp\":\"");
        push_rfc3339(&mut line, SystemTime::now());
        line.push_str("\",\"level\":\"");
        line.push_str(meta.level().as_str());
        line.push('"');
        let mut visitor =
            EventVisitor { line: &mut line, scratch: String::new(), names: Names::new(), message: false };
        event.record(&mut visitor);
        let EventVisitor { mut names, message, .. } = visitor;
        if !message {
            line.push_str(",\"message\":\"\"");
        }
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope {
                let ext = span.extensions();
                let Some(fields) = ext.get::<SpanFields>() else { continue };
                for (name, value) in fields.iter() {
                    if names.insert(name) {
                        push_key(&mut line, name);
                        line.push_str(value);
                    }
                }
            }
        }
        if !names.contains("function_name") && !names.contains("function_version") {
            line.push_str(&self.shared.static_fields);
        }
        line.push_str("}\n");
        let _ = self.make_writer.make_writer_for(meta).write_all(line.as_bytes());
    }
}

fn push_key(out: &mut String, name: &str) {
    out.push_str(",\"");
    out.push_str(name);
    out.push_str("\":");
}

/// Names already written on a line, to keep keys unique (event fields win over spans').
struct Names {
    names: [&'static str; 32],
    len: usize,
}

impl Names {
    fn new() -> Self {
        let mut names = [""; 32];
        names[0] = "timestamp";
        names[1] = "level";
        names[2] = "message";
        Self { names, len: 3 }
    }

    fn contains(&self, name: &str) -> bool {
        self.names[..self.len].contains(&name)
    }

    /// Adds a name; false when it was already there.
    fn insert(&mut self, name: &'static str) -> bool {
        if self.contains(name) {
            return false;
        }
        if self.len < self.names.len() {
            self.names[self.len] = name;
            self.len += 1;
        }
        true
    }
}

/// What a field's name says of its value: nothing, a secret, or a number kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FieldRule {
    Plain,
    Secret,
    /// Named for a count of tokens (`tokens_used`, `max_tokens`): a plain count is kept,
    /// any other value redacted as a secret's (see [`KeyRule::TokenCount`]).
    TokenCount,
    /// Named for a card number or an SSN (`card`, `ssn`): its digits are redacted as one
    /// when there are as many as such a number has.
    Number(Redaction, usize),
}

thread_local! {
    /// Field names already checked by [`field_rule`], by address and length: a field name
    /// is a static string of its callsite, so the check runs about once per name.
    static FIELD_RULES: [std::cell::Cell<(usize, usize, FieldRule)>; 64] =
        const { [const { std::cell::Cell::new((0, 0, FieldRule::Plain)) }; 64] };
}

/// The [`FieldRule`] of a field name, remembered.
fn field_rule(name: &'static str) -> FieldRule {
    let (at, len) = (name.as_ptr() as usize, name.len());
    FIELD_RULES.with(|seen| {
        let slot = &seen[(at >> 3 ^ len) % 64];
        match slot.get() {
            (a, l, rule) if a == at && l == len => rule,
            _ => {
                let rule = match key_rule(name.as_bytes()) {
                    KeyRule::Secret => FieldRule::Secret,
                    KeyRule::TokenCount => FieldRule::TokenCount,
                    KeyRule::Plain => match field_kind(name) {
                        Some(Kind::Pan) => FieldRule::Number(Redaction::Pan, 12),
                        Some(Kind::Ssn) => FieldRule::Number(Redaction::Ssn, 9),
                        Some(_) => FieldRule::Number(Redaction::Iban, 8),
                        None => FieldRule::Plain,
                    },
                };
                slot.set((at, len, rule));
                rule
            }
        }
    })
}

/// Appends a field value as JSON, scrubbed; secret-named fields lose their value, and
/// fields named for card numbers or SSNs their digits.
fn push_text_value(out: &mut String, name: &'static str, value: &str) {
    match field_rule(name) {
        FieldRule::Secret => push_json_str(out, Redaction::Secret.marker()),
        FieldRule::TokenCount if !is_plain_count(value.as_bytes()) => {
            push_json_str(out, Redaction::Secret.marker());
        }
        FieldRule::Number(what, min) if value.bytes().filter(u8::is_ascii_digit).count() >= min => {
            push_json_str(out, what.marker());
        }
        _ => push_json_str(out, &scrub(value)),
    }
}

/// Appends a number already written to `scratch`: as it is, or as a redacted string when
/// it holds a card number or its field is named for a secret, a card number or an SSN.
fn push_number_text(out: &mut String, name: &'static str, scratch: &str) {
    let redact = match field_rule(name) {
        FieldRule::Secret => true,
        FieldRule::TokenCount => !is_plain_count(scratch.as_bytes()),
        FieldRule::Number(_, min) if scratch.bytes().filter(u8::is_ascii_digit).count() >= min => true,
        _ => scratch.len() >= 12 && matches!(scrub(scratch), std::borrow::Cow::Owned(_)),
    };
    if redact {
        push_text_value(out, name, scratch);
    } else {
        out.push_str(scratch);
    }
}

/// Appends an integer; one that is or holds a card number becomes a redacted string.
fn push_int_value(out: &mut String, name: &'static str, value: impl fmt::Display, scratch: &mut String) {
    scratch.clear();
    let _ = write!(scratch, "{value}");
    push_number_text(out, name, scratch);
}

/// Appends a float; one whose digits are a card number (`4111111111111111.0`) becomes a
/// redacted string, as an integer does.
fn push_f64_value(out: &mut String, name: &'static str, value: f64, scratch: &mut String) {
    if value.is_finite() {
        scratch.clear();
        let _ = write!(scratch, "{value}");
        push_number_text(out, name, scratch);
    } else {
        push_json_str(out, &value.to_string());
    }
}

struct EventVisitor<'a> {
    line: &'a mut String,
    scratch: String,
    names: Names,
    message: bool,
}

impl EventVisitor<'_> {
    /// Writes the key; false when the field is skipped.
    fn key(&mut self, field: &Field) -> bool {
        let name = field.name();
        if name == "message" {
            if self.message {
                return false;
            }
            self.message = true;
            self.line.push_str(",\"message\":");
            return true;
        }
        if name.starts_with("log.") || !self.names.insert(name) {
            return false;
        }
        push_key(self.line, name);
        true
    }
}

impl Visit for EventVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if self.key(field) {
            push_text_value(self.line, field.name(), value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.key(field) {
            self.scratch.clear();
            let _ = write!(self.scratch, "{value:?}");
            push_text_value(self.line, field.name(), &self.scratch);
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        if self.key(field) {
            self.scratch.clear();
            let _ = write!(self.scratch, "{value}");
            push_text_value(self.line, field.name(), &self.scratch);
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if self.key(field) {
            push_int_value(self.line, field.name(), value, &mut self.scratch);
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if self.key(field) {
            push_int_value(self.line, field.name(), value, &mut self.scratch);
        }
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        if self.key(field) {
            push_int_value(self.line, field.name(), value, &mut self.scratch);
        }
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        if self.key(field) {
            push_int_value(self.line, field.name(), value, &mut self.scratch);
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if self.key(field) {
            self.line.push_str(if value { "true" } else { "false" });
        }
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if self.key(field) {
            push_f64_value(self.line, field.name(), value, &mut self.scratch);
        }
    }
}

struct SpanVisitor<'a> {
    fields: &'a mut SpanFields,
    scratch: String,
}

impl SpanVisitor<'_> {
    fn set(&mut self, field: &Field, render: impl FnOnce(&mut String, &mut String)) {
        let scratch = &mut self.scratch;
        self.fields.set(field.name(), |out| render(out, scratch));
    }
}

impl Visit for SpanVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.set(field, |out, _| push_text_value(out, field.name(), value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.set(field, |out, scratch| {
            scratch.clear();
            let _ = write!(scratch, "{value:?}");
            push_text_value(out, field.name(), scratch);
        });
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.set(field, |out, scratch| push_int_value(out, field.name(), value, scratch));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.set(field, |out, scratch| push_int_value(out, field.name(), value, scratch));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.set(field, |out, _| out.push_str(if value { "true" } else { "false" }));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.set(field, |out, scratch| push_f64_value(out, field.name(), value, scratch));
    }
}

#[cfg(test)]
mod tests {
    use super::super::{LogConfig, MemoryWriter};
    use tracing_subscriber::layer::SubscriberExt;

    fn capture(config: LogConfig, f: impl FnOnce()) -> Vec<serde_json::Value> {
        let logs = MemoryWriter::new();
        let subscriber = tracing_subscriber::registry().with(config.writer(logs.clone()).build().unwrap());
        tracing::subscriber::with_default(subscriber, f);
        logs.lines().iter().map(|l| serde_json::from_str(l).expect("each line is JSON")).collect()
    }

    #[test]
    fn writes_fields_of_the_event_and_its_spans() {
        let lines = capture(LogConfig::new().function_name("fn").function_version("$LATEST"), || {
            let span = tracing::info_span!("outer", tenant = "t-1", attempt = 1u64);
            let _g = span.enter();
            tracing::warn!(amount = 12.5, ok = true, n = -3i64, err = %"boom", "charged {}", "card");
        });
        let l = &lines[0];
        assert_eq!(l["message"], "charged card");
        assert_eq!(l["level"], "WARN");
        assert_eq!(
            (l["amount"].as_f64(), l["ok"].as_bool(), l["n"].as_i64()),
            (Some(12.5), Some(true), Some(-3))
        );
        assert_eq!((&l["err"], &l["tenant"], &l["attempt"]), (&"boom".into(), &"t-1".into(), &1.into()));
        assert_eq!((&l["function_name"], &l["function_version"]), (&"fn".into(), &"$LATEST".into()));
        assert!(l["timestamp"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn event_fields_win_and_keys_stay_unique() {
        let logs = MemoryWriter::new();
        let subscriber =
            tracing_subscriber::registry().with(LogConfig::new().writer(logs.clone()).build().unwrap());
        tracing::subscriber::with_default(subscriber, || {
            let _g = tracing::info_span!("s", tenant = "span").entered();
            tracing::info!(tenant = "event", level = "fake", "m");
        });
        let line = &logs.lines()[0];
        assert_eq!(line.matches("\"tenant\"").count(), 1, "{line}");
        assert_eq!(line.matches("\"level\"").count(), 1, "{line}");
        assert!(line.contains(r#""tenant":"event""#));
    }

    #[test]
    fn secrets_and_numbers_are_scrubbed() {
        let lines = capture(LogConfig::new(), || {
            tracing::info!(
                password = "hunter2",
                card = 4111111111111111u64,
                small = 42u64,
                "auth Bearer abc"
            );
        });
        let l = &lines[0];
        assert_eq!(l["password"], "[REDACTED:secret]");
        assert_eq!(l["card"], "[REDACTED:pan]");
        assert_eq!(l["small"], 42);
        assert_eq!(l["message"], "auth Bearer [REDACTED:bearer]");
    }

    #[test]
    fn emails_and_one_time_codes_are_scrubbed() {
        let lines = capture(LogConfig::new(), || {
            let email = "ada@example.com";
            let _g = tracing::info_span!("s", customer = email).entered();
            tracing::info!(
                to = email,
                otp_code = "482913",
                pin_code = 4821u64,
                zip_code = "94105",
                dependency = "serde@1.0.210",
                "sent to {email}"
            );
        });
        let l = &lines[0];
        assert_eq!(l["message"], "sent to [REDACTED:email]");
        assert_eq!((&l["to"], &l["customer"]), (&"[REDACTED:email]".into(), &"[REDACTED:email]".into()));
        assert_eq!(
            (&l["otp_code"], &l["pin_code"]),
            (&"[REDACTED:secret]".into(), &"[REDACTED:secret]".into())
        );
        assert_eq!((&l["zip_code"], &l["dependency"]), (&"94105".into(), &"serde@1.0.210".into()));
    }

    /// A count of tokens is kept as the number it is; a token, or anything but a plain
    /// count under a count's name, is redacted; credential codes too, other codes kept.
    #[test]
    fn counts_of_tokens_are_kept_and_tokens_and_credential_codes_redacted() {
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl";
        let lines = capture(LogConfig::new(), || {
            tracing::info!(
                tokens_used = 12u64,
                max_tokens = 100i64,
                token_count = "3",
                tokens_remaining = 12345678901u64,
                access_token = "abc",
                session_token = 482913u64,
                tokens = 12u64,
                total_tokens = jwt,
                sms_code = "482913",
                backup_code = 48291300u64,
                area_code = "415",
                "usage"
            );
        });
        let l = &lines[0];
        assert_eq!(
            (&l["tokens_used"], &l["max_tokens"], &l["token_count"]),
            (&12.into(), &100.into(), &"3".into())
        );
        // Too long for a count: it may be a numeric token.
        for secret in [
            "tokens_remaining",
            "access_token",
            "session_token",
            "tokens",
            "total_tokens",
            "sms_code",
            "backup_code",
        ] {
            assert_eq!(l[secret], "[REDACTED:secret]", "{secret}");
        }
        assert_eq!(l["area_code"], "415");
    }

    #[test]
    fn level_filters_and_sampling_raises_to_debug() {
        let lines = capture(LogConfig::new().level(tracing::Level::WARN), || {
            tracing::info!("dropped");
            tracing::warn!("kept");
        });
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0]["message"], "kept");
        let lines = capture(LogConfig::new().sample_rate(1.0), || {
            tracing::debug!("outside a request: dropped");
            let _g = tracing::info_span!(target: "lift::request", "request").entered();
            tracing::debug!("sampled request: kept");
            tracing::trace!("trace stays off");
        });
        let messages: Vec<_> = lines.iter().map(|l| l["message"].as_str().unwrap().to_owned()).collect();
        assert_eq!(messages, ["sampled request: kept"]);
    }
}
