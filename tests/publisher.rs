//! Publishing through a `Publisher`: the same results as the bus, changes to
//! the subscriptions seen at once, removed handlers released at its next
//! publish.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use agentbus::{Event, EventBus, EventType, HistoryQuery, PublishOutcome};

mod common;
use common::{counter, counting, runtime, subscribe_failing_handlers, PanicOnDrop, FAILING};

#[test]
fn smoke() {
    let bus = EventBus::new();
    let (_, calls) = counting(&bus, EventType::TaskCompleted);
    let mut publisher = bus.publisher();
    let outcome = publisher.publish_blocking(Event::new(EventType::TaskCompleted));
    assert_eq!(outcome.delivered, 1);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(bus.history(&HistoryQuery::new()).len(), 1);
    assert_eq!(bus.stats().events_published, 1);
    assert_eq!(publisher.bus().stats(), bus.stats());
}

#[test]
fn same_outcomes_history_and_stats_as_the_bus() {
    let through_bus = EventBus::new();
    let through_publisher = EventBus::new();
    let ok_calls = [counter(), counter()];
    subscribe_failing_handlers(&through_bus, &ok_calls[0]);
    subscribe_failing_handlers(&through_publisher, &ok_calls[1]);
    let mut publisher = through_publisher.publisher();
    for round in 0..3 {
        let event = || Event::new(EventType::SystemError).with_circle(round);
        let expected = through_bus.publish_blocking(event());
        assert_eq!(publisher.publish_blocking(event()), expected);
        assert_eq!(expected.failed, FAILING);
    }
    assert_eq!(
        ok_calls[0].load(Ordering::SeqCst),
        ok_calls[1].load(Ordering::SeqCst)
    );
    let (a, b) = (through_bus.stats(), through_publisher.stats());
    assert_eq!(
        (a.events_published, a.events_delivered, a.handler_errors),
        (b.events_published, b.events_delivered, b.handler_errors)
    );
    let circles = |bus: &EventBus| -> Vec<Option<i64>> {
        bus.history(&HistoryQuery::new())
            .iter()
            .map(|e| e.circle_id)
            .collect()
    };
    assert_eq!(circles(&through_bus), circles(&through_publisher));
}

#[test]
fn sees_a_subscribe_and_an_unsubscribe_made_after_it_cached_the_table() {
    let bus = EventBus::new();
    let mut publisher = bus.publisher();
    let (first, second) = (counter(), counter());
    let f = Arc::clone(&first);
    let first_id = bus.subscribe(EventType::TaskStarted, move |_e: &Event| {
        f.fetch_add(1, Ordering::SeqCst);
    });
    assert_eq!(
        publisher
            .publish_blocking(Event::new(EventType::TaskStarted))
            .delivered,
        1
    );

    let s = Arc::clone(&second);
    let second_id = bus.subscribe(EventType::TaskStarted, move |_e: &Event| {
        s.fetch_add(1, Ordering::SeqCst);
    });
    assert_eq!(
        publisher
            .publish_blocking(Event::new(EventType::TaskStarted))
            .delivered,
        2
    );

    assert!(bus.unsubscribe(first_id));
    assert_eq!(
        publisher
            .publish_blocking(Event::new(EventType::TaskStarted))
            .delivered,
        1
    );
    assert_eq!(first.load(Ordering::SeqCst), 2);
    assert_eq!(second.load(Ordering::SeqCst), 2);

    bus.reset();
    assert_eq!(
        publisher.publish_blocking(Event::new(EventType::TaskStarted)),
        PublishOutcome::default()
    );
    assert!(!bus.unsubscribe(second_id));
}

#[test]
fn unsubscribe_on_another_thread_is_seen_by_the_next_publish() {
    let bus = EventBus::new();
    let (id, calls) = counting(&bus, EventType::TaskFailed);
    let mut publisher = bus.publisher();
    for _ in 0..100 {
        publisher.publish_blocking(Event::new(EventType::TaskFailed));
        let other = bus.clone();
        std::thread::spawn(move || {
            let id = other.subscribe(EventType::TaskFailed, |_e: &Event| {});
            assert!(other.unsubscribe(id));
        })
        .join()
        .unwrap();
    }
    assert_eq!(calls.load(Ordering::SeqCst), 100);
    std::thread::spawn({
        let bus = bus.clone();
        move || assert!(bus.unsubscribe(id))
    })
    .join()
    .unwrap();
    // The join orders the unsubscribe before this publish.
    assert_eq!(
        publisher.publish_blocking(Event::new(EventType::TaskFailed)),
        PublishOutcome::default()
    );
    assert_eq!(calls.load(Ordering::SeqCst), 100);
}

/// The documented difference from the bus: a removed handler is released at
/// the publisher's next publish of its type, within the sweep interval of
/// publishes of other types, or when the publisher is dropped.
#[test]
fn a_removed_handler_is_released_by_the_publisher() {
    let subscribe = |bus: &EventBus, captured: &Arc<()>| {
        let held = Arc::clone(captured);
        bus.subscribe(EventType::TaskCreated, move |_e: &Event| {
            let _ = &held;
        })
    };
    let bus = EventBus::new();
    let captured = Arc::new(());
    let mut publisher = bus.publisher();

    // At the next publish of the same type.
    let id = subscribe(&bus, &captured);
    publisher.publish_blocking(Event::new(EventType::TaskCreated));
    assert!(bus.unsubscribe(id));
    assert_eq!(Arc::strong_count(&captured), 2, "the publisher's copy");
    publisher.publish_blocking(Event::new(EventType::TaskCreated));
    assert_eq!(Arc::strong_count(&captured), 1);

    // Within the sweep interval of publishes of another type.
    let id = subscribe(&bus, &captured);
    publisher.publish_blocking(Event::new(EventType::TaskCreated));
    assert!(bus.unsubscribe(id));
    for _ in 0..64 {
        publisher.publish_blocking(Event::new(EventType::TaskStarted));
    }
    assert_eq!(Arc::strong_count(&captured), 1);

    // When the publisher is dropped.
    let id = subscribe(&bus, &captured);
    publisher.publish_blocking(Event::new(EventType::TaskCreated));
    assert!(bus.unsubscribe(id));
    assert_eq!(Arc::strong_count(&captured), 2);
    drop(publisher);
    assert_eq!(Arc::strong_count(&captured), 1);
}

#[test]
fn a_removed_handler_whose_drop_panics_does_not_break_the_publisher() {
    let bus = EventBus::new();
    let bomb = PanicOnDrop;
    let id = bus.subscribe(EventType::TaskCreated, move |_e: &Event| {
        let _ = &bomb;
    });
    let mut publisher = bus.publisher();
    assert_eq!(
        publisher
            .publish_blocking(Event::new(EventType::TaskCreated))
            .delivered,
        1
    );
    assert!(bus.unsubscribe(id));
    // The publisher drops the last reference here.
    assert_eq!(
        publisher.publish_blocking(Event::new(EventType::TaskCreated)),
        PublishOutcome::default()
    );
    assert_eq!(bus.stats().events_published, 2);
}

#[test]
fn async_publish_awaits_async_handlers() {
    let bus = EventBus::new();
    let calls = counter();
    let c = Arc::clone(&calls);
    bus.subscribe_async(EventType::MemoryShared, move |_e: Arc<Event>| {
        let c = Arc::clone(&c);
        async move {
            tokio::task::yield_now().await;
            c.fetch_add(1, Ordering::SeqCst);
        }
    });
    let mut publisher = bus.publisher();
    let outcome =
        runtime().block_on(async { publisher.publish(Event::new(EventType::MemoryShared)).await });
    assert_eq!(outcome.delivered, 1);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn publisher_moves_to_another_thread() {
    let bus = EventBus::new();
    let (_, calls) = counting(&bus, EventType::TaskCompleted);
    let mut publisher = bus.publisher();
    let handle = std::thread::spawn(move || {
        (0..10)
            .map(|_| {
                publisher
                    .publish_blocking(Event::new(EventType::TaskCompleted))
                    .delivered
            })
            .sum::<usize>()
    });
    assert_eq!(handle.join().unwrap(), 10);
    assert_eq!(calls.load(Ordering::SeqCst), 10);
}

#[test]
fn handlers_may_subscribe_and_unsubscribe_during_a_publishers_dispatch() {
    let bus = EventBus::new();
    let later_calls = counter();
    let (inner, later) = (bus.clone(), Arc::clone(&later_calls));
    // Each call adds a subscriber and removes it again before returning.
    bus.subscribe(EventType::TaskAssigned, move |_e: &Event| {
        let later = Arc::clone(&later);
        let id = inner.subscribe(EventType::TaskAssigned, move |_e: &Event| {
            later.fetch_add(1, Ordering::SeqCst);
        });
        assert!(inner.unsubscribe(id));
    });
    let mut publisher = bus.publisher();
    for _ in 0..3 {
        let outcome = publisher.publish_blocking(Event::new(EventType::TaskAssigned));
        assert_eq!(outcome.delivered, 1);
    }
    assert_eq!(later_calls.load(Ordering::SeqCst), 0);
    assert_eq!(bus.stats().active_subscribers, 1);
}

#[test]
fn publisher_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<agentbus::Publisher>();
}

/// A stream ends when its handler is dropped; after `reset`, a publisher
/// holding the stream's table drops it at its next publish.
#[test]
fn a_reset_stream_ends_at_the_publishers_next_publish() {
    use agentbus::TryRecvError;
    let bus = EventBus::new();
    let mut stream = bus.stream(EventType::TaskCompleted, 4);
    let mut publisher = bus.publisher();
    publisher.publish_blocking(Event::new(EventType::TaskCompleted));
    bus.reset();
    assert!(stream.try_recv().is_ok(), "the buffered event survives");
    assert_eq!(stream.try_recv(), Err(TryRecvError::Empty), "still held");
    let outcome = publisher.publish_blocking(Event::new(EventType::TaskCompleted));
    assert_eq!(outcome, PublishOutcome::default());
    assert_eq!(stream.try_recv(), Err(TryRecvError::Closed));
}
