//! [`StoredEvent`] and the column codec both backends share.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use agentbus::{Event, EventId, EventType};
use serde_json::Value;
use uuid::Uuid;

use crate::error::StoreError;

/// An event as the store holds it: the event and its sequence.
///
/// Sequences start at 1, are unique, gap-free and ascending in commit
/// order: the cursor that catch-up, replay and projections resume from.
///
/// The event is shared: a row read from the store is decoded into one
/// `Arc` once, and an event a [catch-up stream](crate::CatchUp) delivers
/// live is the very `Arc` published on the bus. Passing it on (to a bus, a
/// web client, another task) clones the `Arc`, never the event; fields read
/// through it as before (`stored.event.id`).
///
/// ```
/// use agentbus::{Event, EventType};
/// use agentbus_store::StoredEvent;
/// use std::sync::Arc;
///
/// let event = Arc::new(Event::new(EventType::TaskCreated));
/// let stored = StoredEvent { sequence: 1, event: Arc::clone(&event) };
/// assert_eq!(stored.event.id, event.id);
/// assert!(Arc::ptr_eq(&stored.event, &event));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct StoredEvent {
    /// The event's position in the store.
    pub sequence: u64,
    /// The event, with the id, timestamp and causal ids it was published with.
    pub event: Arc<Event>,
}

/// Nanoseconds since the Unix epoch, as both schemas store timestamps.
pub(crate) fn timestamp_nanos(event: &Event) -> Result<i64, StoreError> {
    event
        .timestamp
        .duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|since| i64::try_from(since.as_nanos()).ok())
        .ok_or_else(|| StoreError::TimestampOutOfRange {
            id: event.id.to_string(),
        })
}

pub(crate) fn system_time(nanos: i64) -> SystemTime {
    let magnitude = Duration::from_nanos(nanos.unsigned_abs());
    if nanos >= 0 {
        UNIX_EPOCH + magnitude
    } else {
        UNIX_EPOCH - magnitude
    }
}

/// The columns of one stored row, decoded into a [`StoredEvent`] with a
/// typed error naming the sequence when a column does not decode.
pub(crate) struct Columns<'a> {
    pub(crate) sequence: u64,
    pub(crate) id: Uuid,
    pub(crate) event_type: &'a str,
    pub(crate) data: Value,
    pub(crate) source_agent_id: Option<i64>,
    pub(crate) circle_id: Option<i64>,
    pub(crate) project_id: Option<i64>,
    pub(crate) correlation_id: Option<Uuid>,
    pub(crate) causation_id: Option<Uuid>,
    pub(crate) timestamp_nanos: i64,
}

impl Columns<'_> {
    pub(crate) fn decode(self) -> Result<StoredEvent, StoreError> {
        let event_type: EventType =
            self.event_type
                .parse()
                .map_err(|_| StoreError::UnknownEventType {
                    sequence: self.sequence,
                    event_type: self.event_type.to_owned(),
                })?;
        // A literal rather than `Event::new` plus assignments: no fresh id
        // or clock read per row, which catch-up reads pay for every event.
        let event = Event {
            id: EventId::from(self.id),
            event_type,
            data: self.data,
            source_agent_id: self.source_agent_id,
            circle_id: self.circle_id,
            project_id: self.project_id,
            correlation_id: self.correlation_id.map(EventId::from),
            causation_id: self.causation_id.map(EventId::from),
            timestamp: system_time(self.timestamp_nanos),
        };
        Ok(StoredEvent {
            sequence: self.sequence,
            event: Arc::new(event),
        })
    }
}

pub(crate) fn corrupt(
    sequence: u64,
    field: &'static str,
    source: Option<crate::error::Cause>,
) -> StoreError {
    StoreError::Corrupt {
        sequence,
        field,
        source,
    }
}
