//! Every error the crate returns: one type per fallible operation.
//!
//! Display messages are lowercase and carry no trailing punctuation, as in
//! `std`, so they compose into larger messages. An error caused by another
//! error returns it from `source()` and does not repeat its text; the rest
//! are leaves whose message says everything.

use std::cell::Cell;
use std::fmt;

use thiserror::Error;

/// The longest prefix of a rejected name kept in a [`ParseEventTypeError`].
const MAX_ECHOED_NAME: usize = 64;

/// A string that names no [`EventType`](crate::EventType): a misspelling, or
/// a type added by a newer build (see [`DecodeEventError`] on events from a
/// newer build). [`name`](Self::name) returns the string.
///
/// ```
/// use agentbus::EventType;
///
/// let err = "agent.dreamed".parse::<EventType>().unwrap_err();
/// assert_eq!(err.name(), "agent.dreamed");
/// assert_eq!(err.to_string(), "unknown event type `agent.dreamed`");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Error)]
#[error("unknown event type `{name}`")]
pub struct ParseEventTypeError {
    name: String,
}

impl ParseEventTypeError {
    pub(crate) fn new(name: &str) -> Self {
        let mut end = name.len().min(MAX_ECHOED_NAME);
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        let mut echoed = name[..end].to_owned();
        if end < name.len() {
            echoed.push('…');
        }
        Self { name: echoed }
    }

    /// The rejected name (its first 64 bytes, with `…` if it was longer).
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// A string that is not an [`EventId`](crate::EventId) (a hyphenated UUID).
///
/// The message says what is wrong with the string; there is no `source()`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Error)]
#[error("invalid event id: {reason}")]
pub struct ParseEventIdError {
    reason: String,
}

impl ParseEventIdError {
    pub(crate) fn new(reason: impl ToString) -> Self {
        Self {
            reason: reason.to_string(),
        }
    }
}

/// A `traceparent` or `tracestate` that breaks the W3C trace-context rules
/// ([`TraceParent`](crate::TraceParent), [`TraceState`](crate::TraceState)).
///
/// The message names the header and what is wrong; there is no `source()`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Error)]
#[error("invalid {header}: {reason}")]
pub struct ParseTraceContextError {
    header: &'static str,
    reason: &'static str,
}

impl ParseTraceContextError {
    pub(crate) fn traceparent(reason: &'static str) -> Self {
        Self {
            header: "traceparent",
            reason,
        }
    }

    pub(crate) fn tracestate(reason: &'static str) -> Self {
        Self {
            header: "tracestate",
            reason,
        }
    }

    /// Which half was refused: `"traceparent"` or `"tracestate"`.
    pub fn header(&self) -> &'static str {
        self.header
    }
}

thread_local! {
    /// The name the last failed deserialisation of an
    /// [`EventType`](crate::EventType) on this thread rejected. A serde
    /// error keeps only a message; this lets [`DecodeEventError`] say,
    /// typed, that an event failed on an unknown type and which.
    static REJECTED_NAME: Cell<Option<ParseEventTypeError>> = const { Cell::new(None) };
}

/// Records the name an [`EventType`](crate::EventType) deserialisation
/// rejected, for [`take_rejected_name`].
pub(crate) fn record_rejected_name(rejected: &ParseEventTypeError) {
    let _ = REJECTED_NAME.try_with(|slot| slot.set(Some(rejected.clone())));
}

/// Takes the name recorded by the last failed
/// [`EventType`](crate::EventType) deserialisation on this thread, if any.
fn take_rejected_name() -> Option<ParseEventTypeError> {
    // `try_with`: a decode from a thread-local destructor finds no record.
    REJECTED_NAME.try_with(Cell::take).ok().flatten()
}

/// JSON that does not decode to an [`Event`](crate::Event), from
/// [`Event::from_json`](crate::Event::from_json) (and its `_slice` and
/// `_value` forms).
///
/// Its message is `invalid event json`; what is wrong, and where, is the
/// JSON parser's error in [`source`](std::error::Error::source) (print the
/// chain, as `anyhow`'s `{:#}` does, to see both). [`kind`](Self::kind)
/// tells the cases apart.
///
/// # Events from a newer build
///
/// [`EventType`](crate::EventType) is a closed set, so an event published
/// by a newer build (read back from a store it wrote, or received from a
/// peer over NATS) may carry a type this build does not know. Decoding it is
/// this error, of kind [`UnknownType`](DecodeEventErrorKind::UnknownType),
/// never a panic and never an event silently retyped or dropped:
/// [`unknown_type`](Self::unknown_type) gives the name, so the caller can
/// count and log it and skip the event, keep its raw JSON, or stop. The
/// check comes in document order, like every other: an unknown `"type"`
/// before a malformed field is reported as the unknown type.
///
/// ```
/// use agentbus::{DecodeEventErrorKind, Event};
/// use std::error::Error;
///
/// let err = Event::from_json(r#"{"type": "agent.dreamed", "data": {}}"#).unwrap_err();
/// assert_eq!(err.kind(), DecodeEventErrorKind::UnknownType);
/// assert_eq!(err.unknown_type(), Some("agent.dreamed"));
/// assert_eq!(err.to_string(), "invalid event json");
/// assert_eq!(
///     err.source().unwrap().to_string(),
///     "unknown event type `agent.dreamed` at line 1 column 24"
/// );
///
/// let err = Event::from_json(r#"{"type": "task.created", "circle_id": "five"}"#).unwrap_err();
/// assert_eq!(err.kind(), DecodeEventErrorKind::Data);
/// assert_eq!(err.unknown_type(), None);
/// ```
#[derive(Debug)]
pub struct DecodeEventError {
    json: serde_json::Error,
    /// Set when the JSON names a type this build does not know.
    unknown_type: Option<ParseEventTypeError>,
}

/// What kind of [`DecodeEventError`] happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DecodeEventErrorKind {
    /// The input is not JSON (or has trailing characters after it).
    Syntax,
    /// The input ends in the middle of the JSON value: truncated.
    Eof,
    /// Well-formed JSON that is not an event: not an object, no `"type"`, or
    /// a field of the wrong type or out of range (ids, timestamps, numbers).
    Data,
    /// An event whose `"type"` this build does not know: from a newer build,
    /// or misspelt. See [`DecodeEventError::unknown_type`].
    UnknownType,
}

impl DecodeEventError {
    /// Runs `decode` (a `serde_json` call that decodes an event) and turns
    /// its error into a `DecodeEventError`, noting an unknown event type.
    pub(crate) fn catch<T>(
        decode: impl FnOnce() -> Result<T, serde_json::Error>,
    ) -> Result<T, Self> {
        // A name rejected by some earlier, unrelated decode on this thread
        // must not be blamed on this one.
        drop(take_rejected_name());
        decode().map_err(|json| {
            // A rejected name aborts decoding, so if one was recorded it is
            // what this error is about.
            let unknown_type = take_rejected_name().filter(|_| json.is_data());
            Self { json, unknown_type }
        })
    }

    /// What kind of error this is.
    pub fn kind(&self) -> DecodeEventErrorKind {
        use serde_json::error::Category;
        if self.unknown_type.is_some() {
            return DecodeEventErrorKind::UnknownType;
        }
        match self.json.classify() {
            Category::Syntax => DecodeEventErrorKind::Syntax,
            Category::Eof => DecodeEventErrorKind::Eof,
            // No I/O happens: every input is already in memory.
            Category::Data | Category::Io => DecodeEventErrorKind::Data,
        }
    }

    /// The `"type"` this build does not know, if that is what failed (its
    /// first 64 bytes, with `…` if it was longer, as
    /// [`ParseEventTypeError::name`]).
    pub fn unknown_type(&self) -> Option<&str> {
        self.unknown_type.as_ref().map(ParseEventTypeError::name)
    }

    /// The line of the input where decoding failed (1-based, 0 if unknown).
    pub fn line(&self) -> usize {
        self.json.line()
    }

    /// The column of the input where decoding failed (1-based, 0 if unknown).
    pub fn column(&self) -> usize {
        self.json.column()
    }
}

impl fmt::Display for DecodeEventError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid event json")
    }
}

impl std::error::Error for DecodeEventError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.json)
    }
}

/// An [`Event`](crate::Event) that cannot be written as JSON, from
/// [`Event::to_json`](crate::Event::to_json).
///
/// The only cause is a `timestamp` outside what RFC 3339 can express
/// (before 1970-01-01 or after 9999-12-31); it is the error's
/// [`source`](std::error::Error::source), not part of its message.
#[derive(Debug, Error)]
#[error("event cannot be encoded as json")]
pub struct EncodeEventError {
    #[source]
    json: serde_json::Error,
}

impl EncodeEventError {
    pub(crate) fn new(json: serde_json::Error) -> Self {
        Self { json }
    }
}

/// An [`EventBusBuilder`](crate::EventBusBuilder) setting that cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The requested history capacity is above [`MAX_HISTORY_CAPACITY`](crate::MAX_HISTORY_CAPACITY).
    #[error("history capacity {requested} exceeds the maximum of {max}")]
    HistoryCapacityTooLarge {
        /// What was asked for.
        requested: usize,
        /// The largest capacity accepted.
        max: usize,
    },
}

/// Why [`EventStream::try_recv`](crate::EventStream::try_recv) returned no event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Error)]
pub enum TryRecvError {
    /// Nothing is buffered right now.
    #[error("no event is buffered")]
    Empty,
    /// The stream fell behind: this many events were dropped, oldest first,
    /// to keep the buffer bounded. The next call returns the oldest survivor.
    #[error("the stream lagged and missed {0} events")]
    Lagged(u64),
    /// The subscription was removed (by `reset` or by dropping the bus) and
    /// every buffered event has been received.
    #[error("the stream is closed")]
    Closed,
}

/// A stream fell behind and missed this many events.
///
/// Yielded by [`EventStream`](crate::EventStream) as a `Stream` item before
/// the oldest event that survived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Error)]
#[error("the stream lagged and missed {0} events")]
pub struct Lagged(pub u64);
