//! Matching on the fields every event carries: its source agent, circle and
//! project.
//!
//! One [`Scope`] holds the field criteria of an
//! [`EventFilter`](crate::EventFilter) (and so of
//! [`HistoryQuery`](crate::HistoryQuery)) and the field filters of
//! [`SubscriptionBuilder`](crate::SubscriptionBuilder)
//! (`source_agent_id`, `circle_id`, `project_id`): the rule is written here
//! once. Each field set must equal the event's, and an event without that
//! field never matches. A subscriber scoped this way is checked inline on
//! the publishing thread, without calling a closure, which is what makes it
//! cheaper than the equivalent [`filter`](crate::SubscriptionBuilder::filter).
//!
//! A subscriber keeps a `Scope` rather than a whole `EventFilter`: the
//! subscriber table already routes by type, subscriptions have no chain
//! criterion, and the filter's type set and chain id would add 24 bytes to
//! the publishing thread's cache line of every subscriber.

use crate::event::Event;

/// Which events match: every field that is `Some` must equal the event's.
///
/// `repr(C)` keeps `circle_id`, the field most subscriptions scope on, first:
/// it then shares the publishers' cache line in `Subscriber`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct Scope {
    pub(crate) circle_id: Option<i64>,
    pub(crate) source_agent_id: Option<i64>,
    pub(crate) project_id: Option<i64>,
}

impl Scope {
    /// Matches every event.
    pub(crate) const ANY: Self = Self {
        circle_id: None,
        source_agent_id: None,
        project_id: None,
    };

    pub(crate) fn is_any(&self) -> bool {
        *self == Self::ANY
    }

    #[inline]
    pub(crate) fn admits(&self, event: &Event) -> bool {
        fn field(wanted: Option<i64>, actual: Option<i64>) -> bool {
            wanted.is_none_or(|wanted| actual == Some(wanted))
        }
        field(self.circle_id, event.circle_id)
            && field(self.source_agent_id, event.source_agent_id)
            && field(self.project_id, event.project_id)
    }
}
