//! [`CloudEvent`]: an agentbus [`Event`] in CloudEvents 1.0 form, the one
//! mapping between the two (structured and batch JSON, and the binary
//! mode's `ce-*` headers).

use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use agentbus::{Event, EventId, EventType, TraceContext};
use serde::de::{self, IgnoredAny};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// The only `specversion` spoken.
pub(crate) const SPEC_VERSION: &str = "1.0";
/// The root of every `source` this bus writes.
const SOURCE_ROOT: &str = "/agentbus";
/// The `datacontenttype` this bus writes: `data` is always JSON.
const DATA_CONTENT_TYPE: &str = "application/json";
/// The media type of one event in structured mode.
#[cfg(feature = "server")]
pub(crate) const STRUCTURED: &str = "application/cloudevents+json";
/// The media type of a batch.
#[cfg(feature = "server")]
pub(crate) const BATCH: &str = "application/cloudevents-batch+json";
/// The seconds since the epoch past which RFC 3339 needs a five-digit year.
const RFC3339_MAX_SECS: u64 = 253_402_300_800;

/// An [`Event`] (and its store sequence, when it has one) in the
/// CloudEvents 1.0 JSON format: its `Serialize` writes one structured-mode
/// event, its `Deserialize` reads one, refusing with a message that names
/// the attribute. `Vec<CloudEvent>` is a batch. The server uses it for
/// `application/cloudevents+json` and `application/cloudevents-batch+json`
/// bodies, binary mode (`ce-*` headers) and `?format=cloudevents` replies.
///
/// # The mapping
///
/// | agentbus [`Event`] | CloudEvents attribute | notes |
/// |---|---|---|
/// | — | `specversion` | always `"1.0"`; anything else is refused |
/// | `id` | `id` | the uuid, hyphenated; an `id` that is not a uuid is refused |
/// | `event_type` | `type` | the dotted name (`task.completed`); a type this bus does not have is refused |
/// | `timestamp` | `time` | RFC 3339 in UTC with nanoseconds; read with any offset; absent: now |
/// | `source_agent_id`, `circle_id` | `source` | `/agentbus`, `/agentbus/circles/{circle}`, `/agentbus/agents/{agent}` or `/agentbus/circles/{circle}/agents/{agent}`, ids in decimal as the bus writes them (`5`, `-1`; not `+5` or `05`); any other source is refused |
/// | `project_id` | `agentbusproject` | extension, the integer as a string (a JSON number is read too) |
/// | `correlation_id` | `agentbuscorrelation` | extension, the uuid |
/// | `causation_id` | `agentbuscausation` | extension, the uuid |
/// | `trace_context` | `traceparent`, `tracestate` | the distributed-tracing extension, W3C rules |
/// | `data` | `data` | any JSON value; absent: `{}` |
/// | — | `datacontenttype` | written `application/json`; read: absent, `application/json` or any `*/*+json`, else refused |
/// | [`sequence`](Self::sequence) | `agentbussequence` | extension, written on reads of a server with a store; ignored when posted |
///
/// Each optional attribute is absent when the event has no value for it.
/// An event becomes a CloudEvent and back unchanged: `Event -> CloudEvent
/// -> Event` is the identity.
///
/// # Foreign CloudEvents
///
/// The bus has a closed set of [`EventType`]s and integer agents and
/// circles, so a CloudEvent from another producer maps only if it speaks
/// that vocabulary. A `type` the bus does not have, a `source` outside the
/// scheme above, an `id` that is not a uuid, `data_base64` (binary data)
/// or a non-JSON `datacontenttype` is refused with the attribute named,
/// rather than stored under a made-up type or with its producer forgotten.
/// Attributes the bus has no field for (`subject`, `dataschema`, other
/// extensions) are accepted and dropped, as unknown fields of the native
/// JSON are. `null` is the same as absent, as the JSON format says.
///
/// # Example
///
/// ```
/// use agentbus::{Event, EventType};
/// use agentbus_web::CloudEvent;
/// use serde_json::json;
///
/// let event = Event::new(EventType::TaskCompleted)
///     .with_data(json!({"task_id": 123}))
///     .with_circle(5)
///     .with_source_agent(1)
///     .with_project(7);
/// let json = serde_json::to_value(CloudEvent::new(event.clone())).unwrap();
/// assert_eq!(json["specversion"], "1.0");
/// assert_eq!(json["type"], "task.completed");
/// assert_eq!(json["source"], "/agentbus/circles/5/agents/1");
/// assert_eq!(json["agentbusproject"], "7");
/// assert_eq!(json["data"]["task_id"], 123);
///
/// let back: CloudEvent = serde_json::from_value(json).unwrap();
/// assert_eq!(back.event, event);
///
/// let foreign = json!({"specversion": "1.0", "id": event.id, "type": "com.example.order",
///                      "source": "/agentbus"});
/// let error = serde_json::from_value::<CloudEvent>(foreign).unwrap_err();
/// assert!(error.to_string().starts_with("attribute `type`: unknown event type \"com.example.order\""));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct CloudEvent {
    /// The event.
    pub event: Event,
    /// Its store sequence (`agentbussequence`), when stored.
    pub sequence: Option<u64>,
}

impl CloudEvent {
    /// `event` without a sequence.
    pub fn new(event: Event) -> Self {
        Self {
            event,
            sequence: None,
        }
    }
}

/// One event's structured-mode JSON (with `agentbussequence` when
/// `sequence` is given): the server's encoding for `?format=cloudevents`.
/// Fails only for a timestamp outside 1970..=9999.
#[cfg(feature = "server")]
pub(crate) fn encode(event: &Event, sequence: Option<u64>) -> Result<String, serde_json::Error> {
    serde_json::to_string(&Borrowed { event, sequence })
}

impl Serialize for CloudEvent {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        Borrowed {
            event: &self.event,
            sequence: self.sequence,
        }
        .serialize(serializer)
    }
}

/// What is written: a [`CloudEvent`] that borrows its event.
struct Borrowed<'a> {
    event: &'a Event,
    sequence: Option<u64>,
}

impl Serialize for Borrowed<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::Error;
        let event = self.event;
        let time = match event.timestamp.duration_since(UNIX_EPOCH) {
            Ok(since) if since.as_secs() < RFC3339_MAX_SECS => {
                humantime::format_rfc3339_nanos(event.timestamp)
            }
            _ => {
                return Err(S::Error::custom(
                    "timestamp outside 1970-01-01..=9999-12-31 cannot be written as rfc 3339",
                ))
            }
        };
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("specversion", SPEC_VERSION)?;
        map.serialize_entry("id", &event.id)?;
        map.serialize_entry("source", &Source(event.circle_id, event.source_agent_id))?;
        map.serialize_entry("type", event.event_type.as_str())?;
        map.serialize_entry("time", &format_args!("{time}"))?;
        map.serialize_entry("datacontenttype", DATA_CONTENT_TYPE)?;
        if let Some(project) = event.project_id {
            map.serialize_entry("agentbusproject", &format_args!("{project}"))?;
        }
        if let Some(correlation) = &event.correlation_id {
            map.serialize_entry("agentbuscorrelation", correlation)?;
        }
        if let Some(causation) = &event.causation_id {
            map.serialize_entry("agentbuscausation", causation)?;
        }
        if let Some(context) = &event.trace_context {
            map.serialize_entry("traceparent", &context.traceparent)?;
            if let Some(state) = &context.tracestate {
                map.serialize_entry("tracestate", state)?;
            }
        }
        if let Some(sequence) = self.sequence {
            map.serialize_entry("agentbussequence", &format_args!("{sequence}"))?;
        }
        map.serialize_entry("data", &event.data)?;
        map.end()
    }
}

/// The `source` of a circle and an agent.
struct Source(Option<i64>, Option<i64>);

impl Serialize for Source {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match (self.0, self.1) {
            (None, None) => serializer.serialize_str(SOURCE_ROOT),
            (Some(circle), None) => {
                serializer.collect_str(&format_args!("{SOURCE_ROOT}/circles/{circle}"))
            }
            (None, Some(agent)) => {
                serializer.collect_str(&format_args!("{SOURCE_ROOT}/agents/{agent}"))
            }
            (Some(circle), Some(agent)) => serializer.collect_str(&format_args!(
                "{SOURCE_ROOT}/circles/{circle}/agents/{agent}"
            )),
        }
    }
}

/// The circle and agent a `source` names, or why it names none.
fn parse_source(source: &str) -> Result<(Option<i64>, Option<i64>), String> {
    let refused = || {
        format!(
            "attribute `source`: \"{source}\" is not an agentbus source: expected {SOURCE_ROOT}, \
             {SOURCE_ROOT}/circles/{{id}}, {SOURCE_ROOT}/agents/{{id}} or \
             {SOURCE_ROOT}/circles/{{id}}/agents/{{id}} (decimal integer ids as the bus writes them)"
        )
    };
    let Some(rest) = source.strip_prefix(SOURCE_ROOT) else {
        return Err(refused());
    };
    let mut parts = rest.split('/');
    if parts.next() != Some("") && !rest.is_empty() {
        return Err(refused());
    }
    // Only an id as the bus writes it: `+5` or `05` would parse, but a
    // source is an identifier, and another spelling of it is another source.
    let id = |part: Option<&str>| {
        let text = part?;
        let id = text.parse::<i64>().ok()?;
        (id.to_string() == text).then_some(id)
    };
    let mut circle = None;
    let mut agent = None;
    let mut next = parts.next();
    if next == Some("circles") {
        circle = Some(id(parts.next()).ok_or_else(refused)?);
        next = parts.next();
    }
    if next == Some("agents") {
        agent = Some(id(parts.next()).ok_or_else(refused)?);
        next = parts.next();
    }
    if next.is_some() {
        return Err(refused());
    }
    Ok((circle, agent))
}

/// The attributes as read, before they are checked: from a JSON object
/// (structured mode, a batch) or from `ce-*` headers (binary mode).
/// Attributes the bus has no field for are skipped.
#[derive(Default, Deserialize)]
pub(crate) struct Attributes<'a> {
    #[serde(borrow)]
    pub(crate) specversion: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(crate) id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(crate) source: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "type")]
    pub(crate) event_type: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(crate) time: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(crate) datacontenttype: Option<Cow<'a, str>>,
    /// `Some(Value::Null)` for `"data": null`, `None` when absent.
    #[serde(default, deserialize_with = "present")]
    pub(crate) data: Option<Value>,
    pub(crate) data_base64: Option<IgnoredAny>,
    #[serde(borrow)]
    pub(crate) agentbusproject: Option<Text<'a>>,
    #[serde(borrow)]
    pub(crate) agentbuscorrelation: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(crate) agentbuscausation: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(crate) agentbussequence: Option<Text<'a>>,
    #[serde(borrow)]
    pub(crate) traceparent: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(crate) tracestate: Option<Cow<'a, str>>,
}

/// An extension value read as text: a string, or a JSON integer written
/// out (the CloudEvents type system's integers are 32-bit, so ours travel
/// as strings, and a producer may send either).
#[derive(Debug)]
pub(crate) struct Text<'a>(pub(crate) Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> de::Visitor<'de> for Visitor {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an integer or a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, text: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(text)))
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(text.to_owned())))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(n.to_string())))
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(n.to_string())))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

impl<'de> Deserialize<'de> for CloudEvent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Attributes::deserialize(deserializer)?
            .into_cloud_event()
            .map_err(de::Error::custom)
    }
}

impl Attributes<'_> {
    /// Checks every attribute and maps it (see [`CloudEvent`]); the error
    /// is one lowercase line naming the attribute.
    pub(crate) fn into_cloud_event(self) -> Result<CloudEvent, String> {
        let missing = |name: &str| format!("attribute `{name}`: missing");
        let specversion = self.specversion.ok_or_else(|| missing("specversion"))?;
        if specversion != SPEC_VERSION {
            return Err(format!(
                "attribute `specversion`: \"{specversion}\" is not supported: only {SPEC_VERSION}"
            ));
        }
        let id = self.id.ok_or_else(|| missing("id"))?;
        let id = event_id("id", &id)?;
        let source = self.source.ok_or_else(|| missing("source"))?;
        let name = self.event_type.ok_or_else(|| missing("type"))?;
        let event_type: EventType = name.parse().map_err(|_| {
            format!(
                "attribute `type`: unknown event type \"{name}\": this bus carries only its own \
                 types, such as \"task.completed\""
            )
        })?;
        let (circle_id, source_agent_id) = parse_source(&source)?;
        let timestamp = match self.time {
            Some(time) => parse_time(&time)?,
            None => SystemTime::now(),
        };
        if let Some(media) = self.datacontenttype {
            if !is_json(&media) {
                return Err(format!(
                    "attribute `datacontenttype`: \"{media}\": the bus carries json data only"
                ));
            }
        }
        if self.data_base64.is_some() {
            return Err(
                "attribute `data_base64`: the bus carries json data only: send it in `data`"
                    .to_owned(),
            );
        }
        let project_id = self
            .agentbusproject
            .map(|Text(text)| {
                text.trim().parse::<i64>().map_err(|_| {
                    format!(
                        "attribute `agentbusproject`: expected a 64-bit integer, got \"{text}\""
                    )
                })
            })
            .transpose()?;
        let correlation_id = self
            .agentbuscorrelation
            .map(|text| event_id("agentbuscorrelation", &text))
            .transpose()?;
        let causation_id = self
            .agentbuscausation
            .map(|text| event_id("agentbuscausation", &text))
            .transpose()?;
        let sequence = self
            .agentbussequence
            .map(|Text(text)| {
                text.trim().parse::<u64>().map_err(|_| {
                    format!(
                        "attribute `agentbussequence`: expected a sequence number, got \"{text}\""
                    )
                })
            })
            .transpose()?;
        let trace_context = match (self.traceparent, self.tracestate) {
            (Some(parent), state) => Some(
                TraceContext::parse(&parent, state.as_deref())
                    .map_err(|error| format!("attribute `{}`: {error}", error.header()))?,
            ),
            (None, None) => None,
            (None, Some(_)) => {
                return Err("attribute `tracestate`: needs a `traceparent`".to_owned())
            }
        };
        let event = Event {
            id,
            event_type,
            data: self.data.unwrap_or_else(|| Value::Object(Map::new())),
            source_agent_id,
            circle_id,
            project_id,
            correlation_id,
            causation_id,
            timestamp,
            trace_context,
        };
        Ok(CloudEvent { event, sequence })
    }
}

fn event_id(name: &str, text: &str) -> Result<EventId, String> {
    text.parse()
        .map_err(|_| format!("attribute `{name}`: \"{text}\" is not an agentbus event id (a uuid)"))
}

/// `application/json`, or any `type/subtype+json`; parameters ignored.
pub(crate) fn is_json(media: &str) -> bool {
    let media = media.split(';').next().unwrap_or("").trim();
    media.eq_ignore_ascii_case("application/json")
        || media.len() > 5
            && media.is_char_boundary(media.len() - 5)
            && media[media.len() - 5..].eq_ignore_ascii_case("+json")
            && media.contains('/')
}

/// An RFC 3339 time with any offset (`Z`, `+00:00`, `+02:00`, ...).
fn parse_time(text: &str) -> Result<SystemTime, String> {
    let invalid = || {
        format!(
            "attribute `time`: \"{text}\" is not an rfc 3339 time such as \
             \"2026-11-23T23:54:30.123456789Z\""
        )
    };
    let bytes = text.as_bytes();
    // A numeric offset is the last six bytes: `+hh:mm` or `-hh:mm`, after
    // at least `YYYY-MM-DDTHH:MM:SS` (19 bytes).
    let offset = (bytes.len() >= 25)
        .then(|| &bytes[bytes.len() - 6..])
        .filter(|tail| matches!(tail[0], b'+' | b'-') && tail[3] == b':')
        .map(|tail| -> Result<(bool, u64), String> {
            // Two digits, nothing else (`parse` would take a sign).
            let digits = |pair: &[u8]| -> Option<u64> {
                pair.iter().try_fold(0, |sum, &digit| {
                    digit
                        .is_ascii_digit()
                        .then(|| sum * 10 + u64::from(digit - b'0'))
                })
            };
            let hours = digits(&tail[1..3])
                .filter(|&h| h < 24)
                .ok_or_else(invalid)?;
            let minutes = digits(&tail[4..6])
                .filter(|&m| m < 60)
                .ok_or_else(invalid)?;
            Ok((tail[0] == b'-', (hours * 60 + minutes) * 60))
        })
        .transpose()?;
    let Some((west, seconds)) = offset else {
        return humantime::parse_rfc3339(text).map_err(|_| invalid());
    };
    let utc = format!("{}Z", &text[..text.len() - 6]);
    let local = humantime::parse_rfc3339(&utc).map_err(|_| invalid())?;
    let shift = Duration::from_secs(seconds);
    // West of UTC (`-05:00`) the same wall time is later in UTC.
    if west {
        local.checked_add(shift)
    } else {
        local.checked_sub(shift)
    }
    .ok_or_else(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_map_both_ways_and_foreign_ones_are_refused() {
        for (circle, agent, text) in [
            (None, None, "/agentbus"),
            (Some(5), None, "/agentbus/circles/5"),
            (None, Some(-1), "/agentbus/agents/-1"),
            (
                Some(i64::MAX),
                Some(i64::MIN),
                "/agentbus/circles/9223372036854775807/agents/-9223372036854775808",
            ),
        ] {
            assert_eq!(serde_json::to_value(Source(circle, agent)).unwrap(), text);
            assert_eq!(parse_source(text).unwrap(), (circle, agent));
        }
        for foreign in [
            "",
            "https://example.com/orders",
            "/agentbusx",
            "/agentbus/",
            "/agentbus/circles",
            "/agentbus/circles/five",
            "/agentbus/agents/1/circles/5",
            "/agentbus/circles/5/agents/1/more",
            "/agentbus/circles/+5",
            "/agentbus/agents/05",
            "/agentbus/circles/-0",
        ] {
            let error = parse_source(foreign).unwrap_err();
            assert!(
                error.starts_with("attribute `source`:"),
                "{foreign}: {error}"
            );
        }
    }

    #[test]
    fn times_are_read_with_any_offset() {
        let utc = parse_time("2026-11-23T23:54:30.123456789Z").unwrap();
        assert_eq!(
            parse_time("2026-11-23T23:54:30.123456789+00:00").unwrap(),
            utc
        );
        assert_eq!(
            parse_time("2026-11-24T01:54:30.123456789+02:00").unwrap(),
            utc
        );
        assert_eq!(
            parse_time("2026-11-23T18:54:30.123456789-05:00").unwrap(),
            utc
        );
        assert_eq!(
            parse_time("2026-11-24T05:24:30.123456789+05:30").unwrap(),
            utc
        );
        // Whole seconds: the shortest form with an offset.
        assert_eq!(
            parse_time("2026-11-24T01:54:30+02:00").unwrap(),
            parse_time("2026-11-23T23:54:30Z").unwrap()
        );
        for bad in [
            "yesterday",
            "2026-11-23",
            "2026-11-23T23:54:30.1+25:00",
            "2026-11-23T23:54:30",
            "2026-11-23T23:54:30.1+24:00",
            "2026-11-23T23:54:30.1+05:60",
            "2026-11-23T23:54:30.1+05000",
            "2026-11-23T23:54:30.1+05:0x",
        ] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn times_are_written_from_1970_up_to_the_end_of_9999_and_refused_outside() {
        let at = |time: SystemTime| {
            let mut event = Event::new(EventType::TaskCreated);
            event.timestamp = time;
            encode(&event, None).map(|json| {
                serde_json::from_str::<Value>(&json).unwrap()["time"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
        };
        let end = UNIX_EPOCH + Duration::from_secs(RFC3339_MAX_SECS);
        assert_eq!(at(UNIX_EPOCH).unwrap(), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            at(end - Duration::from_nanos(1)).unwrap(),
            "9999-12-31T23:59:59.999999999Z"
        );
        assert!(at(end).is_err());
        assert!(at(UNIX_EPOCH - Duration::from_nanos(1)).is_err());
    }

    #[test]
    fn json_media_types() {
        for json in [
            "application/json",
            "Application/JSON; charset=utf-8",
            "application/vnd.x+json",
            "text/x+json",
            "a/b+JSON ; v=1",
        ] {
            assert!(is_json(json), "{json}");
        }
        for other in [
            "text/plain",
            "application/octet-stream",
            "+json",
            "application/jsonx",
            // A suffix without a type before it, or split inside a character.
            "vnd.x+json",
            "a/éjson",
        ] {
            assert!(!is_json(other), "{other}");
        }
    }
}
