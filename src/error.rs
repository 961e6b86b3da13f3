//! Every error the crate returns: one type per fallible operation.
//!
//! Display messages are lowercase and carry no trailing punctuation, as in
//! `std`, so they compose into larger messages.

use thiserror::Error;

/// The longest prefix of a rejected name kept in a [`ParseEventTypeError`].
const MAX_ECHOED_NAME: usize = 64;

/// A string that names no [`EventType`](crate::EventType).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
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
#[derive(Debug, Clone, PartialEq, Eq, Error)]
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

/// JSON that does not decode to an [`Event`](crate::Event): malformed, nested
/// deeper than 128 levels, missing `"type"`, an unknown type name, or a field
/// of the wrong type.
#[derive(Debug, Error)]
#[error("invalid event json: {0}")]
pub struct DecodeEventError(#[from] serde_json::Error);

impl DecodeEventError {
    /// The line of the input where decoding failed (1-based, 0 if unknown).
    pub fn line(&self) -> usize {
        self.0.line()
    }

    /// The column of the input where decoding failed (1-based, 0 if unknown).
    pub fn column(&self) -> usize {
        self.0.column()
    }
}

/// An [`Event`](crate::Event) that cannot be written as JSON.
///
/// The only cause is a `timestamp` outside what RFC 3339 can express
/// (before 1970-01-01 or after 9999-12-31).
#[derive(Debug, Error)]
#[error("event cannot be encoded: {0}")]
pub struct EncodeEventError(#[from] serde_json::Error);

/// An [`EventBusBuilder`](crate::EventBusBuilder) setting that cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("the stream lagged and missed {0} events")]
pub struct Lagged(pub u64);
