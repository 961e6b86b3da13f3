//! Identifiers: [`EventId`] (time-ordered UUID v7) and [`SubscriptionId`].
//!
//! Event ids are made without a system call: each thread seeds a 74-bit
//! counter once from the standard library's per-thread random keys and then
//! counts up, so ids from one thread are strictly increasing and ids from
//! different threads collide only if two random 74-bit ranges overlap.

use std::cell::Cell;
use std::fmt;
use std::hash::{BuildHasher, Hasher, RandomState};
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

use crate::error::ParseEventIdError;

/// The unique id of an [`Event`](crate::Event): a UUID v7, so ids sort by
/// creation time (to the millisecond across threads, strictly within one).
///
/// ```
/// use agentbus::{Event, EventId, EventType};
///
/// let a = Event::new(EventType::TaskCreated).id;
/// let b = Event::new(EventType::TaskCreated).id;
/// assert!(a < b);
/// let text = a.to_string();
/// assert_eq!(text.parse::<EventId>().unwrap(), a);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventId(Uuid);

/// Bits of a v7 UUID left to us after the 48-bit timestamp, version and variant.
const COUNTER_BITS: u32 = 74;
const COUNTER_MASK: u128 = (1 << COUNTER_BITS) - 1;

thread_local! {
    /// The last millisecond and counter this thread used.
    static ID_STATE: Cell<Option<(u64, u128)>> = const { Cell::new(None) };
}

fn random_counter_seed() -> u128 {
    // RandomState draws OS randomness once per thread, then varies its keys
    // per instance, so two instances give independent 64-bit hashes.
    let half = || {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u64(0x9e37_79b9_7f4a_7c15);
        u128::from(hasher.finish())
    };
    ((half() << 64) | half()) & COUNTER_MASK
}

impl EventId {
    /// A fresh id stamped with `now`, which must be a reading of the real
    /// clock (`SystemTime::now()`), never a time taken from input: the
    /// thread keeps the largest millisecond it has seen, so one far-future
    /// time would stamp every later id of the thread with it.
    pub(crate) fn generate(now: SystemTime) -> Self {
        // u64 arithmetic: `Duration::as_millis` works in u128, which costs a
        // wide division on every event. Saturates ~584 million years out.
        let millis = now.duration_since(UNIX_EPOCH).map_or(0, |since| {
            since
                .as_secs()
                .saturating_mul(1000)
                .saturating_add(u64::from(since.subsec_millis()))
        });
        let (millis, counter) = ID_STATE.with(|state| {
            let (last_millis, counter) = state
                .get()
                .unwrap_or_else(|| (millis, random_counter_seed()));
            let next = (
                // A clock that steps back must not break per-thread ordering.
                millis.max(last_millis),
                (counter + 1) & COUNTER_MASK,
            );
            state.set(Some(next));
            next
        });
        Self(encode_v7(millis, counter))
    }

    /// The UUID form of this id.
    pub fn as_uuid(&self) -> Uuid {
        self.0
    }

    /// The id's embedded creation time, in milliseconds since the Unix epoch.
    pub fn timestamp_millis(&self) -> u64 {
        (self.0.as_u128() >> 80) as u64
    }
}

/// Lays out a v7 UUID: 48 bits of milliseconds, version 7, the top 12 bits of
/// `counter`, variant `10`, the low 62 bits of `counter`.
fn encode_v7(millis: u64, counter: u128) -> Uuid {
    let millis = u128::from(millis & ((1 << 48) - 1));
    let high12 = (counter >> 62) & 0xfff;
    let low62 = counter & ((1 << 62) - 1);
    Uuid::from_u128((millis << 80) | (0x7 << 76) | (high12 << 64) | (0b10 << 62) | low62)
}

impl From<Uuid> for EventId {
    fn from(uuid: Uuid) -> Self {
        Self(uuid)
    }
}

impl From<EventId> for Uuid {
    fn from(id: EventId) -> Self {
        id.0
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventId({})", self.0.hyphenated())
    }
}

impl FromStr for EventId {
    type Err = ParseEventIdError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Uuid::try_parse(text)
            .map(Self)
            .map_err(ParseEventIdError::new)
    }
}

impl Serialize for EventId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Written into a stack buffer and handed over whole: `collect_str`
        // would go through `fmt` and the serializer's escaping piece by piece.
        let mut text = Uuid::encode_buffer();
        serializer.serialize_str(self.0.hyphenated().encode_lower(&mut text))
    }
}

impl<'de> Deserialize<'de> for EventId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        crate::wire::deserialize_parsed(deserializer, "an event id as a UUID string")
    }
}

/// The handle [`EventBus::subscribe`](crate::EventBus::subscribe) returns, to
/// unsubscribe later.
///
/// Ids are unique for the life of a bus, `reset` included, and carry the
/// identity of the bus that issued them: a stale id, or one from another
/// bus, never removes somebody else's subscription.
///
/// ```
/// use agentbus::{Event, EventBus, EventType};
///
/// let (a, b) = (EventBus::new(), EventBus::new());
/// let id_a = a.subscribe(EventType::TaskCreated, |_e: &Event| {});
/// let _id_b = b.subscribe(EventType::TaskCreated, |_e: &Event| {});
/// assert!(!b.unsubscribe(id_a)); // same number, other bus: untouched
/// assert_eq!(b.stats().active_subscribers, 1);
/// assert!(a.unsubscribe(id_a));
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct SubscriptionId {
    bus: u64,
    number: u64,
}

impl SubscriptionId {
    pub(crate) fn new(bus: u64, number: u64) -> Self {
        Self { bus, number }
    }

    pub(crate) fn bus(self) -> u64 {
        self.bus
    }

    /// The id's number within its bus (numbers count up from 1 per bus).
    pub fn get(self) -> u64 {
        self.number
    }
}

impl fmt::Display for SubscriptionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Padded as a whole, so width and alignment flags work.
        f.pad(&format!("sub-{}", self.number))
    }
}
