//! The closed set of event types, in the specification's order.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{record_rejected_name, ParseEventTypeError};

macro_rules! event_types {
    ($( $(#[$doc:meta])* $variant:ident => $name:literal, )*) => {
        /// What happened: the key subscribers register under.
        ///
        /// The discriminant is the slot of the bus's dispatch array
        /// ([`EventType::index`]); the dotted name ([`EventType::as_str`]) is the
        /// stable wire form used by `Display`, `FromStr` and serde.
        ///
        /// ```
        /// use agentbus::EventType;
        ///
        /// let t: EventType = "task.completed".parse().unwrap();
        /// assert_eq!(t, EventType::TaskCompleted);
        /// assert_eq!(t.to_string(), "task.completed");
        /// assert_eq!(EventType::ALL[t.index()], t);
        /// assert!("task.finished".parse::<EventType>().is_err());
        /// ```
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
        #[repr(u8)]
        pub enum EventType {
            $( $(#[$doc])* $variant, )*
        }

        impl EventType {
            /// Every event type, in declaration order (`ALL[t.index()] == t`).
            pub const ALL: [EventType; Self::COUNT] = [$(EventType::$variant,)*];

            /// The number of event types.
            pub const COUNT: usize = [$($name,)*].len();

            /// The dotted wire name, e.g. `"agent.tool.executed"`.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(EventType::$variant => $name,)*
                }
            }
        }

        impl FromStr for EventType {
            type Err = ParseEventTypeError;

            fn from_str(name: &str) -> Result<Self, Self::Err> {
                match name {
                    $($name => Ok(EventType::$variant),)*
                    _ => Err(ParseEventTypeError::new(name)),
                }
            }
        }
    };
}

event_types! {
    /// An agent started processing.
    AgentStarted => "agent.started",
    /// An agent stopped.
    AgentStopped => "agent.stopped",
    /// A task was assigned to an agent.
    AgentTaskAssigned => "agent.task.assigned",
    /// An agent completed a task successfully.
    AgentTaskCompleted => "agent.task.completed",
    /// An agent's task failed.
    AgentTaskFailed => "agent.task.failed",
    /// An agent executed a tool or skill.
    AgentToolExecuted => "agent.tool.executed",
    /// A new memory was stored.
    MemoryCreated => "memory.created",
    /// A memory was shared at circle or project scope.
    MemoryShared => "memory.shared",
    /// A memory was retrieved.
    MemoryRecalled => "memory.recalled",
    /// A circle was created.
    CircleCreated => "circle.created",
    /// A circle started.
    CircleStarted => "circle.started",
    /// A circle stopped.
    CircleStopped => "circle.stopped",
    /// A member joined a circle.
    CircleMemberAdded => "circle.member.added",
    /// A member left a circle.
    CircleMemberRemoved => "circle.member.removed",
    /// A new task was created.
    TaskCreated => "task.created",
    /// A task was assigned to an agent.
    TaskAssigned => "task.assigned",
    /// A task started.
    TaskStarted => "task.started",
    /// A task completed.
    TaskCompleted => "task.completed",
    /// A task failed.
    TaskFailed => "task.failed",
    /// A conflict was detected, e.g. two agents modifying the same file.
    TaskConflictDetected => "task.conflict.detected",
    /// A message in a conversation.
    ConversationMessage => "conversation.message",
    /// A conversation turn completed.
    ConversationTurnComplete => "conversation.turn.complete",
    /// A system error occurred.
    SystemError => "system.error",
    /// A system warning.
    SystemWarning => "system.warning",
}

impl EventType {
    /// The slot of this type in the bus's dispatch array, `0..COUNT`.
    #[inline]
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The bit of this type in an [`EventTypeSet`].
    #[inline]
    const fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad`, not `write_str`, so width and alignment flags work.
        f.pad(self.as_str())
    }
}

impl Serialize for EventType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let Recorded(event_type) = crate::wire::deserialize_parsed(
            deserializer,
            "a dotted event type name such as \"task.completed\"",
        )?;
        Ok(event_type)
    }
}

/// An [`EventType`] parsed for serde: a rejection is recorded for
/// [`DecodeEventError`](crate::DecodeEventError) on its way out.
struct Recorded(EventType);

impl FromStr for Recorded {
    type Err = ParseEventTypeError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        name.parse().map(Recorded).inspect_err(record_rejected_name)
    }
}

/// A set of event types, used to subscribe to several at once.
///
/// ```
/// use agentbus::{EventType, EventTypeSet};
///
/// let set = EventTypeSet::from([EventType::TaskCreated, EventType::TaskCompleted]);
/// assert!(set.contains(EventType::TaskCompleted));
/// assert_eq!(set.len(), 2);
/// assert_eq!(EventTypeSet::all().len(), EventType::COUNT);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct EventTypeSet(u32);

// The set is a bitmask: every type needs its own bit.
const _: () = assert!(EventType::COUNT <= 32);

impl EventTypeSet {
    /// The empty set.
    pub const fn empty() -> Self {
        Self(0)
    }

    /// Every event type.
    pub const fn all() -> Self {
        Self((1u32 << EventType::COUNT) - 1)
    }

    /// This set with `event_type` added.
    #[must_use]
    pub const fn with(self, event_type: EventType) -> Self {
        Self(self.0 | event_type.bit())
    }

    /// Whether `event_type` is in the set.
    pub const fn contains(self, event_type: EventType) -> bool {
        self.0 & event_type.bit() != 0
    }

    /// Whether the type at `index` ([`EventType::index`], below 32) is in
    /// the set: the history ring's test on the type tag of its slots.
    #[inline]
    pub(crate) const fn contains_index(self, index: usize) -> bool {
        self.0 >> index & 1 != 0
    }

    /// The one type of a set that holds exactly one.
    pub(crate) const fn single(self) -> Option<EventType> {
        if self.len() == 1 {
            Some(EventType::ALL[self.0.trailing_zeros() as usize])
        } else {
            None
        }
    }

    /// How many types the set holds.
    pub const fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The types in the set, in declaration order.
    pub fn iter(self) -> EventTypeSetIter {
        self.into_iter()
    }
}

impl fmt::Debug for EventTypeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

impl From<EventType> for EventTypeSet {
    fn from(event_type: EventType) -> Self {
        Self::empty().with(event_type)
    }
}

impl<const N: usize> From<[EventType; N]> for EventTypeSet {
    fn from(types: [EventType; N]) -> Self {
        types.into_iter().collect()
    }
}

impl Extend<EventType> for EventTypeSet {
    fn extend<I: IntoIterator<Item = EventType>>(&mut self, types: I) {
        *self = types.into_iter().fold(*self, Self::with);
    }
}

impl IntoIterator for EventTypeSet {
    type Item = EventType;
    type IntoIter = EventTypeSetIter;

    fn into_iter(self) -> EventTypeSetIter {
        EventTypeSetIter(self.0)
    }
}

/// The types of an [`EventTypeSet`], in declaration order; from its
/// `into_iter`.
#[derive(Clone, Debug)]
pub struct EventTypeSetIter(u32);

impl Iterator for EventTypeSetIter {
    type Item = EventType;

    fn next(&mut self) -> Option<EventType> {
        if self.0 == 0 {
            return None;
        }
        let index = self.0.trailing_zeros() as usize;
        self.0 &= self.0 - 1;
        Some(EventType::ALL[index])
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let len = self.0.count_ones() as usize;
        (len, Some(len))
    }
}

impl ExactSizeIterator for EventTypeSetIter {}

impl std::iter::FusedIterator for EventTypeSetIter {}

impl FromIterator<EventType> for EventTypeSet {
    fn from_iter<I: IntoIterator<Item = EventType>>(types: I) -> Self {
        types.into_iter().fold(Self::empty(), Self::with)
    }
}
