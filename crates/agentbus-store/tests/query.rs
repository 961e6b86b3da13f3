//! A [`ReadQuery`] gives back every criterion it was built with, and the
//! defaults when none was set.

use std::time::{Duration, SystemTime};

use agentbus::{Event, EventFilter, EventType, EventTypeSet, Order};
use agentbus_store::ReadQuery;

#[test]
fn a_query_gives_back_what_it_was_built_with() {
    let root = Event::new(EventType::TaskCreated);
    let since = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let until = since + Duration::from_secs(60);
    let query = ReadQuery::new()
        .after(10)
        .up_to(90)
        .event_type(EventType::TaskCompleted)
        .circle_id(-3)
        .source_agent_id(42)
        .project_id(7)
        .correlation_id(root.id)
        .since(since)
        .until(until)
        .descending()
        .limit(25);
    assert_eq!(query.get_after(), 10);
    assert_eq!(query.get_up_to(), Some(90));
    assert_eq!(
        query.get_event_types(),
        EventTypeSet::from([EventType::TaskCompleted])
    );
    assert_eq!(query.get_circle_id(), Some(-3));
    assert_eq!(query.get_source_agent_id(), Some(42));
    assert_eq!(query.get_project_id(), Some(7));
    assert_eq!(query.get_correlation_id(), Some(root.id));
    assert_eq!(query.get_since(), Some(since));
    assert_eq!(query.get_until(), Some(until));
    assert_eq!(query.get_order(), Order::Descending);
    assert_eq!(query.get_limit(), 25);
    assert_eq!(
        query.get_filter(),
        &EventFilter::new()
            .event_type(EventType::TaskCompleted)
            .circle_id(-3)
            .source_agent_id(42)
            .project_id(7)
            .correlation_id(root.id)
    );
}

#[test]
fn a_new_query_reads_everything_oldest_first() {
    let query = ReadQuery::new();
    assert_eq!(query, ReadQuery::default());
    assert_eq!(query.get_after(), 0);
    assert_eq!(query.get_up_to(), None);
    assert_eq!(query.get_event_types(), EventTypeSet::all());
    assert_eq!(
        (
            query.get_circle_id(),
            query.get_source_agent_id(),
            query.get_project_id()
        ),
        (None, None, None)
    );
    assert_eq!(query.get_correlation_id(), None);
    assert_eq!((query.get_since(), query.get_until()), (None, None));
    assert_eq!(query.get_order(), Order::Ascending);
    assert_eq!(query.get_limit(), usize::MAX);
}

/// `matches` applies the filter and the time bounds (`since` inclusive,
/// `until` exclusive), as a read does.
#[test]
fn matches_applies_the_filter_and_the_time_bounds() {
    let event = Event::new(EventType::TaskCompleted).with_circle(5);
    let at = event.timestamp;
    assert!(ReadQuery::new().matches(&event));
    assert!(ReadQuery::new()
        .event_type(EventType::TaskCompleted)
        .circle_id(5)
        .matches(&event));
    assert!(!ReadQuery::new().circle_id(6).matches(&event));
    assert!(!ReadQuery::new()
        .event_type(EventType::TaskCreated)
        .matches(&event));
    assert!(ReadQuery::new()
        .since(at)
        .until(at + Duration::from_nanos(1))
        .matches(&event));
    assert!(!ReadQuery::new()
        .since(at + Duration::from_nanos(1))
        .matches(&event));
    assert!(!ReadQuery::new().until(at).matches(&event));
}
