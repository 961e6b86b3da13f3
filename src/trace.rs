//! [`TraceContext`]: the W3C trace context an [`Event`](crate::Event) carries
//! (<https://www.w3.org/TR/trace-context/>), so a trace does not stop at the
//! bus.
//!
//! Both halves are validated when parsed and kept in their text form's
//! meaning: a `traceparent` is stored as its fields (and written back in
//! the same lowercase form), a `tracestate` as the validated string, byte
//! for byte.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::ParseTraceContextError;
use crate::wire::deserialize_parsed;

/// The most bytes a `tracestate` may have (the W3C limit propagators must
/// pass on; longer input is refused rather than truncated).
pub const MAX_TRACESTATE_LEN: usize = 512;

/// The most list members a `tracestate` may have (the W3C limit).
const MAX_TRACESTATE_MEMBERS: usize = 32;

/// A W3C `traceparent`: version, trace id, parent (span) id and flags, as in
/// `00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01`.
///
/// Parsing follows the W3C rules: lowercase hex only, neither id all zeros,
/// version `ff` refused; a version newer than `00` is accepted when its
/// first four fields have the `00` layout, and anything it appends after a
/// further `-` is dropped (written back with its own version byte). Bad
/// input is a [`ParseTraceContextError`], never a panic.
///
/// ```
/// use agentbus::TraceParent;
///
/// let parent: TraceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
///     .parse()
///     .unwrap();
/// assert!(parent.sampled());
/// assert_eq!(parent.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
/// assert_eq!(
///     parent.to_string(),
///     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
/// );
/// assert!("00-00000000000000000000000000000000-00f067aa0ba902b7-01"
///     .parse::<TraceParent>()
///     .is_err());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceParent {
    version: u8,
    trace_id: [u8; 16],
    parent_id: [u8; 8],
    flags: u8,
}

impl TraceParent {
    /// The length of a version-`00` `traceparent`.
    const LEN: usize = 55;

    /// A version-`00` trace parent from its parts; `None` when either id is
    /// all zeros (the W3C invalid value).
    pub fn new(trace_id: [u8; 16], parent_id: [u8; 8], flags: u8) -> Option<Self> {
        if trace_id == [0; 16] || parent_id == [0; 8] {
            return None;
        }
        Some(Self {
            version: 0,
            trace_id,
            parent_id,
            flags,
        })
    }

    /// The 16-byte trace id.
    pub fn trace_id(&self) -> [u8; 16] {
        self.trace_id
    }

    /// The 8-byte id of the span that published the event.
    pub fn parent_id(&self) -> [u8; 8] {
        self.parent_id
    }

    /// The trace flags byte.
    pub fn flags(&self) -> u8 {
        self.flags
    }

    /// Whether the `sampled` flag (bit 0) is set.
    pub fn sampled(&self) -> bool {
        self.flags & 1 == 1
    }

    /// The trace id as 32 lowercase hex digits.
    pub fn trace_id_hex(&self) -> String {
        hex(&self.trace_id)
    }

    /// The parent id as 16 lowercase hex digits.
    pub fn parent_id_hex(&self) -> String {
        hex(&self.parent_id)
    }
}

fn hex(bytes: &[u8]) -> String {
    use fmt::Write as _;
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        let _ = write!(text, "{byte:02x}");
    }
    text
}

/// Decodes lowercase hex into `out`; `None` on any other character.
fn unhex(text: &[u8], out: &mut [u8]) -> Option<()> {
    fn digit(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    if text.len() != out.len() * 2 {
        return None;
    }
    for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        *byte = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(())
}

impl FromStr for TraceParent {
    type Err = ParseTraceContextError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = ParseTraceContextError::traceparent;
        let bytes = text.as_bytes();
        if bytes.len() < Self::LEN {
            return Err(bad("shorter than 55 characters"));
        }
        let mut version = [0u8; 1];
        unhex(&bytes[..2], &mut version)
            .ok_or_else(|| bad("version is not 2 lowercase hex digits"))?;
        let version = version[0];
        if version == 0xff {
            return Err(bad("version ff is invalid"));
        }
        if version == 0 && bytes.len() != Self::LEN {
            return Err(bad("version 00 is exactly 55 characters"));
        }
        if bytes.len() > Self::LEN && bytes[Self::LEN] != b'-' {
            return Err(bad("a newer version's extra fields follow a `-`"));
        }
        if bytes[2] != b'-' || bytes[35] != b'-' || bytes[52] != b'-' {
            return Err(bad("fields are not separated by `-`"));
        }
        let mut trace_id = [0u8; 16];
        unhex(&bytes[3..35], &mut trace_id)
            .ok_or_else(|| bad("trace id is not 32 lowercase hex digits"))?;
        let mut parent_id = [0u8; 8];
        unhex(&bytes[36..52], &mut parent_id)
            .ok_or_else(|| bad("parent id is not 16 lowercase hex digits"))?;
        let mut flags = [0u8; 1];
        unhex(&bytes[53..55], &mut flags)
            .ok_or_else(|| bad("flags are not 2 lowercase hex digits"))?;
        if trace_id == [0; 16] {
            return Err(bad("trace id is all zeros"));
        }
        if parent_id == [0; 8] {
            return Err(bad("parent id is all zeros"));
        }
        Ok(Self {
            version,
            trace_id,
            parent_id,
            flags: flags[0],
        })
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02x}-", self.version)?;
        for byte in self.trace_id {
            write!(f, "{byte:02x}")?;
        }
        f.write_str("-")?;
        for byte in self.parent_id {
            write!(f, "{byte:02x}")?;
        }
        write!(f, "-{:02x}", self.flags)
    }
}

impl fmt::Debug for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceParent({self})")
    }
}

impl Serialize for TraceParent {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for TraceParent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_parsed(deserializer, "a W3C traceparent string")
    }
}

/// A W3C `tracestate`: vendor-specific `key=value` members, comma
/// separated, as in `congo=t61rcWkgMzE,rojo=00f067aa0ba902b7`.
///
/// Validated when parsed (at most 512 bytes and 32 members, keys and values
/// in the W3C character sets, no duplicate keys) and kept byte for byte.
///
/// ```
/// use agentbus::TraceState;
///
/// let state: TraceState = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7".parse().unwrap();
/// assert_eq!(state.as_str(), "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7");
/// assert!("Congo=t61".parse::<TraceState>().is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TraceState(Box<str>);

impl TraceState {
    /// The `tracestate` text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn valid_key(key: &str) -> bool {
    fn key_char(c: u8) -> bool {
        matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'*' | b'/')
    }
    let bytes = key.as_bytes();
    match key.split_once('@') {
        None => {
            matches!(bytes.first(), Some(b'a'..=b'z'))
                && bytes.len() <= 256
                && bytes.iter().all(|&c| key_char(c))
        }
        Some((tenant, system)) => {
            let (tenant, system) = (tenant.as_bytes(), system.as_bytes());
            matches!(tenant.first(), Some(b'a'..=b'z' | b'0'..=b'9'))
                && tenant.len() <= 241
                && tenant.iter().all(|&c| key_char(c))
                && matches!(system.first(), Some(b'a'..=b'z'))
                && system.len() <= 14
                && system.iter().all(|&c| key_char(c))
        }
    }
}

fn valid_value(value: &str) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 256
        && bytes
            .iter()
            .all(|&c| (0x20..=0x7e).contains(&c) && c != b',' && c != b'=')
        && bytes.last() != Some(&b' ')
}

impl FromStr for TraceState {
    type Err = ParseTraceContextError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = ParseTraceContextError::tracestate;
        if text.len() > MAX_TRACESTATE_LEN {
            return Err(bad("longer than 512 bytes"));
        }
        let mut keys: Vec<&str> = Vec::new();
        for member in text.split(',') {
            let member = member.trim_matches([' ', '\t']);
            if member.is_empty() {
                continue;
            }
            let (key, value) = member
                .split_once('=')
                .ok_or_else(|| bad("a member is not `key=value`"))?;
            if !valid_key(key) {
                return Err(bad("a key is not a W3C tracestate key"));
            }
            if !valid_value(value) {
                return Err(bad("a value is not a W3C tracestate value"));
            }
            if keys.contains(&key) {
                return Err(bad("a key appears twice"));
            }
            keys.push(key);
        }
        if keys.is_empty() {
            return Err(bad("no member"));
        }
        if keys.len() > MAX_TRACESTATE_MEMBERS {
            return Err(bad("more than 32 members"));
        }
        Ok(Self(text.into()))
    }
}

impl fmt::Display for TraceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TraceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceState({:?})", self.0)
    }
}

impl Serialize for TraceState {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for TraceState {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_parsed(deserializer, "a W3C tracestate string")
    }
}

/// The W3C trace context of an event: the `traceparent` of the span that
/// published it and the optional vendor `tracestate`.
///
/// On an [`Event`](crate::Event) it is written as the JSON fields
/// `"traceparent"` and `"tracestate"`, both absent when unset. The bus
/// stamps it like the causal ids: an event published from inside a handler
/// without one inherits the handled event's (see
/// [`EventBus::publish`](crate::EventBus::publish)).
///
/// ```
/// use agentbus::{Event, EventType, TraceContext};
///
/// let context = TraceContext::parse(
///     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
///     Some("rojo=00f067aa0ba902b7"),
/// )
/// .unwrap();
/// let event = Event::new(EventType::TaskCreated).with_trace_context(context);
/// let json = event.to_json().unwrap();
/// assert!(json.contains(r#""tracestate":"rojo=00f067aa0ba902b7""#));
/// assert_eq!(Event::from_json(&json).unwrap(), event);
///
/// let err = TraceContext::parse("00-not-a-trace", None).unwrap_err();
/// assert_eq!(err.to_string(), "invalid traceparent: shorter than 55 characters");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct TraceContext {
    /// The publishing span.
    pub traceparent: TraceParent,
    /// Vendor-specific state, passed on unchanged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tracestate: Option<TraceState>,
}

impl TraceContext {
    /// A context with `traceparent` and no `tracestate`.
    pub fn new(traceparent: TraceParent) -> Self {
        Self {
            traceparent,
            tracestate: None,
        }
    }

    /// Parses the two header values (see [`TraceParent`] and
    /// [`TraceState`] for the rules).
    pub fn parse(
        traceparent: &str,
        tracestate: Option<&str>,
    ) -> Result<Self, ParseTraceContextError> {
        Ok(Self {
            traceparent: traceparent.parse()?,
            tracestate: tracestate.map(str::parse).transpose()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn traceparent_round_trips_and_rejects_w3c_invalid_forms() {
        let parent: TraceParent = PARENT.parse().unwrap();
        assert_eq!(parent.to_string(), PARENT);
        assert_eq!(parent.parent_id_hex(), "00f067aa0ba902b7");
        assert_eq!(parent.flags(), 1);
        for bad in [
            "",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
            "é0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert!(bad.parse::<TraceParent>().is_err(), "{bad:?} accepted");
        }
        for separator in [2, 35, 52] {
            let mut bad = PARENT.to_owned();
            bad.replace_range(separator..=separator, "_");
            assert!(bad.parse::<TraceParent>().is_err(), "{bad:?} accepted");
        }
        assert_eq!(format!("{parent:?}"), format!("TraceParent({PARENT})"));
        // A newer version keeps the 00 layout and may append fields.
        let newer: TraceParent = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what"
            .parse()
            .unwrap();
        assert_eq!(
            newer.to_string(),
            "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        );
        assert!(TraceParent::new([0; 16], [1; 8], 0).is_none());
        assert_eq!(
            TraceParent::new(parent.trace_id(), parent.parent_id(), 1),
            Some(parent)
        );
    }

    #[test]
    fn tracestate_follows_the_w3c_grammar_and_limits() {
        for good in [
            "rojo=00f067aa0ba902b7",
            "congo=t61rcWkgMzE, rojo=00f067aa0ba902b7",
            "fw529a3039@dt=xyz,,a_*/-1=v",
        ] {
            let state: TraceState = good.parse().unwrap();
            assert_eq!(state.as_str(), good);
            assert_eq!(state.to_string(), good);
            assert_eq!(format!("{state:?}"), format!("TraceState({good:?})"));
        }
        // At the limits: 512 bytes, 32 members, 256-byte keys, a 241-byte
        // tenant and a 14-byte system.
        let longest = format!("a={},b={}", "v".repeat(254), "w".repeat(253));
        let most = (0..32)
            .map(|i| format!("k{i}=v"))
            .collect::<Vec<_>>()
            .join(",");
        let long_key = format!("{}=v", "k".repeat(256));
        let long_tenant = format!("{}@{}=v", "t".repeat(241), "s".repeat(14));
        for good in [&longest, &most, &long_key, &long_tenant] {
            assert_eq!(good.parse::<TraceState>().unwrap().as_str(), good);
        }
        assert_eq!(longest.len(), MAX_TRACESTATE_LEN);
        let too_many = (0..33)
            .map(|i| format!("k{i}=v"))
            .collect::<Vec<_>>()
            .join(",");
        let too_long = format!("k={}", "v".repeat(MAX_TRACESTATE_LEN));
        let one_byte_over = format!("a={},b={}", "v".repeat(254), "w".repeat(254));
        let longer_key = format!("{}=v", "k".repeat(257));
        let longer_tenant = format!("{}@s=v", "t".repeat(242));
        let longer_system = format!("t@{}=v", "s".repeat(15));
        for bad in [
            "",
            " , ",
            "rojo",
            "Rojo=1",
            "1rojo=1",
            "ro.jo=1",
            "rojoX=1",
            &longer_key,
            "@dt=1",
            "Tenant@dt=1",
            "ten.ant@dt=1",
            &longer_tenant,
            "tenant@=1",
            "tenant@1dt=1",
            "tenant@d.t=1",
            &longer_system,
            &one_byte_over,
            "rojo=a,rojo=b",
            "rojo=a=b",
            "rojo=\u{7f}",
            &too_many,
            &too_long,
        ] {
            assert!(bad.parse::<TraceState>().is_err(), "{bad:?} accepted");
        }
    }
}
