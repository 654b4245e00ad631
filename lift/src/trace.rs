//! The `X-Amzn-Trace-Id` header and the ids in it, with a strict parser.

use std::fmt;
use std::str::FromStr;

use http::HeaderName;

/// The trace header's name as a `HeaderName`.
pub(crate) const TRACE_HEADER_NAME: HeaderName = HeaderName::from_static("x-amzn-trace-id");

/// A trace header the strict parser rejects.
///
/// # Examples
///
/// ```
/// use lift::middleware::xray::{TraceHeader, TraceHeaderError};
/// let err = "Sampled=1".parse::<TraceHeader>().unwrap_err();
/// assert_eq!(err, TraceHeaderError::MissingRoot);
/// assert_eq!(err.to_string(), "trace header has no root");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TraceHeaderError {
    /// No `Root=` part.
    #[error("trace header has no root")]
    MissingRoot,
    /// A root that is not `1-` + 8 hex + `-` + 24 hex.
    #[error("trace header root is not a valid trace id")]
    InvalidRoot,
    /// A parent that is not 16 hex digits.
    #[error("trace header parent is not a valid segment id")]
    InvalidParent,
    /// `Sampled` other than `0`, `1` or `?`.
    #[error("trace header sampling decision is not 0, 1 or ?")]
    InvalidSampled,
    /// A key given twice.
    #[error("trace header repeats the key `{0}`")]
    DuplicateKey(String),
    /// A part that is not `key=value` with a plain key and printable value.
    #[error("trace header is malformed")]
    Malformed,
    /// Longer than any real trace header.
    #[error("trace header is too long")]
    TooLong,
}

/// The longest header the parser looks at; X-Ray headers are well under 256 bytes.
const MAX_HEADER_LEN: usize = 1024;

/// An X-Ray trace id: `1-` + 8 hex digits of epoch seconds + `-` + 24 random hex digits.
///
/// # Examples
///
/// ```
/// use lift::middleware::xray::TraceId;
/// let id: TraceId = "1-5759e988-bd862e3fe1be46a994272793".parse()?;
/// assert_eq!(id.epoch_seconds(), 0x5759e988);
/// assert_eq!(id.to_string(), "1-5759e988-bd862e3fe1be46a994272793");
/// # Ok::<(), lift::middleware::xray::TraceHeaderError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceId {
    epoch: u32,
    random: u128,
}

impl TraceId {
    /// A trace id from its parts; only the low 96 bits of `random` are kept.
    pub fn from_parts(epoch_seconds: u32, random: u128) -> Self {
        Self { epoch: epoch_seconds, random: random & ((1u128 << 96) - 1) }
    }

    /// When the trace started, in seconds since the Unix epoch.
    pub fn epoch_seconds(&self) -> u32 {
        self.epoch
    }

    /// The 96 random bits.
    pub fn random(&self) -> u128 {
        self.random
    }
}

impl TraceId {
    /// The 35 ASCII bytes of the id, formatted without `fmt` (it is on the hot path).
    pub(crate) fn to_ascii(self) -> [u8; 35] {
        let mut out = [b'-'; 35];
        out[0] = b'1';
        put_hex(&mut out[2..10], u128::from(self.epoch));
        put_hex(&mut out[11..35], self.random);
        out
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(std::str::from_utf8(&self.to_ascii()).map_err(|_| fmt::Error)?)
    }
}

/// Writes `v` as lower-case hex filling `out` (leading zeros kept).
fn put_hex(out: &mut [u8], mut v: u128) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for slot in out.iter_mut().rev() {
        *slot = HEX[(v & 0xf) as usize];
        v >>= 4;
    }
}

impl FromStr for TraceId {
    type Err = TraceHeaderError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_ascii(s.as_bytes())
    }
}

impl TraceId {
    fn from_ascii(b: &[u8]) -> Result<Self, TraceHeaderError> {
        if b.len() != 35 || &b[..2] != b"1-" || b[10] != b'-' {
            return Err(TraceHeaderError::InvalidRoot);
        }
        let epoch = hex(&b[2..10]).ok_or(TraceHeaderError::InvalidRoot)?;
        let random = hex(&b[11..35]).ok_or(TraceHeaderError::InvalidRoot)?;
        Ok(Self { epoch: epoch as u32, random })
    }
}

/// A segment or subsegment id: 16 hex digits.
///
/// # Examples
///
/// ```
/// use lift::middleware::xray::SegmentId;
/// let id: SegmentId = "53995c3f42cd8ad8".parse()?;
/// assert_eq!(id, SegmentId::new(0x53995c3f42cd8ad8));
/// assert_eq!(id.to_string(), "53995c3f42cd8ad8");
/// # Ok::<(), lift::middleware::xray::TraceHeaderError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SegmentId(u64);

impl SegmentId {
    /// A segment id from its 64 bits.
    pub fn new(id: u64) -> Self {
        Self(id)
    }

    /// The 64 bits.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl SegmentId {
    /// The 16 ASCII hex digits of the id.
    pub(crate) fn to_ascii(self) -> [u8; 16] {
        let mut out = [0u8; 16];
        put_hex(&mut out, u128::from(self.0));
        out
    }
}

impl fmt::Display for SegmentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(std::str::from_utf8(&self.to_ascii()).map_err(|_| fmt::Error)?)
    }
}

impl FromStr for SegmentId {
    type Err = TraceHeaderError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_ascii(s.as_bytes())
    }
}

impl SegmentId {
    fn from_ascii(b: &[u8]) -> Result<Self, TraceHeaderError> {
        if b.len() != 16 {
            return Err(TraceHeaderError::InvalidParent);
        }
        hex64(b).map(Self).ok_or(TraceHeaderError::InvalidParent)
    }
}

/// Spaces around a part of the header.
fn trim_spaces(mut b: &[u8]) -> &[u8] {
    while let [b' ', rest @ ..] = b {
        b = rest;
    }
    while let [rest @ .., b' '] = b {
        b = rest;
    }
    b
}

/// Bytes already checked to be ASCII, as text.
fn ascii(b: &[u8]) -> &str {
    std::str::from_utf8(b).unwrap_or_default()
}

/// Hex digits (either case) to a number; none for anything else or more than 32 digits.
fn hex(b: &[u8]) -> Option<u128> {
    if b.is_empty() || b.len() > 32 {
        return None;
    }
    // 16 digits at a time in a u64, then joined: cheaper than shifting a u128 per digit.
    let (high, low) = b.split_at(b.len().saturating_sub(16));
    Some(u128::from(hex64(high)?) << (low.len() * 4) | u128::from(hex64(low)?))
}

/// Up to 16 hex digits (none is 0).
fn hex64(b: &[u8]) -> Option<u64> {
    b.iter().try_fold(0u64, |acc, &c| Some(acc << 4 | u64::from(crate::hex::digit(c)?)))
}

/// The `Sampled` part of a trace header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SamplingDecision {
    /// `Sampled=1`: record this request.
    Sampled,
    /// `Sampled=0`: do not record it.
    NotSampled,
    /// `Sampled=?`: the caller asks the receiver to decide.
    Requested,
    /// No `Sampled` part: the receiver decides.
    #[default]
    Unknown,
}

/// A parsed `X-Amzn-Trace-Id` header.
///
/// The parser is strict: `Root` is required and must be a well-formed [`TraceId`],
/// `Parent` a [`SegmentId`], `Sampled` one of `0`, `1`, `?`; a key may appear once; other
/// `key=value` parts (`Self`, `Lineage`) are kept, in order, and written back.
/// Spaces around parts are allowed. [`Display`](fmt::Display) writes the canonical form,
/// which parses back to an equal header.
///
/// # Examples
///
/// ```
/// use lift::middleware::xray::{SamplingDecision, TraceHeader};
/// let h: TraceHeader = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1".parse()?;
/// assert_eq!(h.sampled, SamplingDecision::Sampled);
/// assert_eq!(h.parent.unwrap().to_string(), "53995c3f42cd8ad8");
/// assert!("Root=1-xyz;Sampled=1".parse::<TraceHeader>().is_err());
/// # Ok::<(), lift::middleware::xray::TraceHeaderError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TraceHeader {
    /// The trace.
    pub root: TraceId,
    /// The segment that made the call, if any.
    pub parent: Option<SegmentId>,
    /// The caller's sampling decision.
    pub sampled: SamplingDecision,
    /// Other parts, such as `Lineage`, in their order.
    pub extra: Vec<(String, String)>,
}

impl TraceHeader {
    /// A header for a trace with no parent and no decision.
    pub fn new(root: TraceId) -> Self {
        Self { root, parent: None, sampled: SamplingDecision::Unknown, extra: Vec::new() }
    }
}

impl FromStr for TraceHeader {
    type Err = TraceHeaderError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() > MAX_HEADER_LEN {
            return Err(TraceHeaderError::TooLong);
        }
        let mut root = None;
        let mut parent = None;
        let mut sampled = None;
        let mut extra: Vec<(String, String)> = Vec::new();
        // Bytes, not chars: every valid header is ASCII, and a byte loop is several times
        // cheaper than `str` splitting on the path of every request.
        for part in s.as_bytes().split(|&c| c == b';') {
            let part = trim_spaces(part);
            if part.is_empty() {
                continue;
            }
            let eq = part.iter().position(|&c| c == b'=').ok_or(TraceHeaderError::Malformed)?;
            let (key, value) = (&part[..eq], &part[eq + 1..]);
            let valid_key =
                !key.is_empty() && key.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-');
            if !valid_key || value.iter().any(|c| !(0x21..=0x7e).contains(c)) {
                return Err(TraceHeaderError::Malformed);
            }
            let duplicate = match key {
                b"Root" => root.replace(TraceId::from_ascii(value)?).is_some(),
                b"Parent" => parent.replace(SegmentId::from_ascii(value)?).is_some(),
                b"Sampled" => {
                    let decision = match value {
                        b"1" => SamplingDecision::Sampled,
                        b"0" => SamplingDecision::NotSampled,
                        b"?" => SamplingDecision::Requested,
                        _ => return Err(TraceHeaderError::InvalidSampled),
                    };
                    sampled.replace(decision).is_some()
                }
                _ => {
                    // Checked above: printable ASCII.
                    let (key, value) = (ascii(key), ascii(value));
                    let seen = extra.iter().any(|(k, _)| k == key);
                    extra.push((key.to_owned(), value.to_owned()));
                    seen
                }
            };
            if duplicate {
                return Err(TraceHeaderError::DuplicateKey(ascii(key).to_owned()));
            }
        }
        Ok(Self {
            root: root.ok_or(TraceHeaderError::MissingRoot)?,
            parent,
            sampled: sampled.unwrap_or_default(),
            extra,
        })
    }
}

impl fmt::Display for TraceHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Root={}", self.root)?;
        if let Some(parent) = self.parent {
            write!(f, ";Parent={parent}")?;
        }
        match self.sampled {
            SamplingDecision::Sampled => f.write_str(";Sampled=1")?,
            SamplingDecision::NotSampled => f.write_str(";Sampled=0")?,
            SamplingDecision::Requested => f.write_str(";Sampled=?")?,
            SamplingDecision::Unknown => {}
        }
        for (key, value) in &self.extra {
            write!(f, ";{key}={value}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ROOT: &str = "1-5759e988-bd862e3fe1be46a994272793";

    #[test]
    fn strict_rules() {
        let ok = |s: &str| s.parse::<TraceHeader>();
        assert!(ok(&format!("Root={ROOT}")).is_ok());
        assert!(ok(&format!(" Root={ROOT} ; Sampled=? ;Lineage=a87bd80c:1|68fd508a:5")).is_ok());
        assert_eq!(ok("Parent=53995c3f42cd8ad8;Sampled=1"), Err(TraceHeaderError::MissingRoot));
        assert_eq!(ok("Root=2-5759e988-bd862e3fe1be46a994272793"), Err(TraceHeaderError::InvalidRoot));
        assert_eq!(ok("Root=1-5759e98g-bd862e3fe1be46a994272793"), Err(TraceHeaderError::InvalidRoot));
        assert_eq!(ok(&format!("Root={ROOT};Parent=53995c3f42cd8ad")), Err(TraceHeaderError::InvalidParent));
        assert_eq!(ok(&format!("Root={ROOT};Sampled=yes")), Err(TraceHeaderError::InvalidSampled));
        assert_eq!(
            ok(&format!("Root={ROOT};Root={ROOT}")),
            Err(TraceHeaderError::DuplicateKey("Root".into()))
        );
        assert_eq!(ok(&format!("Root={ROOT};garbage")), Err(TraceHeaderError::Malformed));
        assert_eq!(ok(&"x".repeat(2000)), Err(TraceHeaderError::TooLong));
    }

    fn header() -> impl Strategy<Value = TraceHeader> {
        let extra = proptest::collection::vec(("[A-Z][a-z]{0,8}", "[!-:<-~]{1,20}"), 0..3).prop_map(|kv| {
            let mut seen = std::collections::HashSet::new();
            kv.into_iter()
                .filter(|(k, _)| {
                    !matches!(k.as_str(), "Root" | "Parent" | "Sampled") && seen.insert(k.clone())
                })
                .collect::<Vec<_>>()
        });
        let decision = prop_oneof![
            Just(SamplingDecision::Sampled),
            Just(SamplingDecision::NotSampled),
            Just(SamplingDecision::Requested),
            Just(SamplingDecision::Unknown),
        ];
        (any::<u32>(), any::<u128>(), proptest::option::of(any::<u64>()), decision, extra).prop_map(
            |(epoch, random, parent, sampled, extra)| TraceHeader {
                root: TraceId::from_parts(epoch, random),
                parent: parent.map(SegmentId::new),
                sampled,
                extra,
            },
        )
    }

    proptest! {
        #[test]
        fn round_trips(h in header()) {
            let text = h.to_string();
            let parsed: TraceHeader = text.parse().unwrap();
            prop_assert_eq!(&parsed, &h);
            prop_assert_eq!(parsed.to_string(), text);
        }

        #[test]
        fn never_panics_and_reparses(s in "[ -~]{0,120}") {
            if let Ok(h) = s.parse::<TraceHeader>() {
                prop_assert_eq!(h.to_string().parse::<TraceHeader>().unwrap(), h);
            }
        }

        #[test]
        fn never_panics_near_valid(h in header(), cut in 0usize..140, junk in "[ -~]{0,4}") {
            let mut s = h.to_string();
            let at = cut.min(s.len());
            s.insert_str(at, &junk);
            let _ = s.parse::<TraceHeader>();
        }
    }
}
