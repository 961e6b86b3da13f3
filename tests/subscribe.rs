//! Subscribing and unsubscribing: ids, guards, `subscribe_all` and type sets.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use agentbus::{Event, EventBus, EventType, EventTypeSet};

mod common;
use common::{counter, counting, PanicOnDrop};

#[test]
fn smoke() {
    let bus = EventBus::new();
    let (id, calls) = counting(&bus, EventType::TaskCreated);
    bus.publish_blocking(Event::new(EventType::TaskCreated));
    assert!(bus.unsubscribe(id));
    bus.publish_blocking(Event::new(EventType::TaskCreated));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn unsubscribe_is_true_once_then_false() {
    let bus = EventBus::new();
    let (id, _) = counting(&bus, EventType::TaskCreated);
    assert!(bus.unsubscribe(id));
    assert!(!bus.unsubscribe(id));
    assert!(!bus.unsubscribe(id));
}

#[test]
fn unsubscribe_of_an_id_from_another_bus_removes_nothing_there() {
    let a = EventBus::new();
    let b = EventBus::new();
    let (id_a, calls_a) = counting(&a, EventType::TaskCreated);
    // Ids number per bus, so both are number 1, but they are not equal: an
    // id carries the bus that issued it.
    let (id_b, calls_b) = counting(&b, EventType::TaskCreated);
    assert_eq!(id_a.get(), id_b.get());
    assert_ne!(id_a, id_b);
    assert!(!b.unsubscribe(id_a));
    assert!(!a.unsubscribe(id_b));
    assert_eq!(b.stats().active_subscribers, 1);
    assert_eq!(a.stats().active_subscribers, 1);
    a.publish_blocking(Event::new(EventType::TaskCreated));
    b.publish_blocking(Event::new(EventType::TaskCreated));
    assert_eq!(calls_a.load(Ordering::SeqCst), 1);
    assert_eq!(calls_b.load(Ordering::SeqCst), 1);
    assert!(a.unsubscribe(id_a));
    assert!(b.unsubscribe(id_b));
}

#[test]
fn only_the_unsubscribed_handler_stops() {
    let bus = EventBus::new();
    let (first, first_calls) = counting(&bus, EventType::TaskCreated);
    let (_, second_calls) = counting(&bus, EventType::TaskCreated);
    let (_, third_calls) = counting(&bus, EventType::TaskCreated);
    bus.publish_blocking(Event::new(EventType::TaskCreated));
    assert!(bus.unsubscribe(first));
    for _ in 0..3 {
        bus.publish_blocking(Event::new(EventType::TaskCreated));
    }
    assert_eq!(first_calls.load(Ordering::SeqCst), 1);
    assert_eq!(second_calls.load(Ordering::SeqCst), 4);
    assert_eq!(third_calls.load(Ordering::SeqCst), 4);
}

#[test]
fn after_unsubscribe_returns_no_later_publish_calls_it_across_threads() {
    let bus = EventBus::new();
    let (id, calls) = counting(&bus, EventType::TaskCreated);
    let unsubscriber = std::thread::spawn({
        let bus = bus.clone();
        move || bus.unsubscribe(id)
    });
    assert!(unsubscriber.join().unwrap());
    let before = calls.load(Ordering::SeqCst);
    let publisher = std::thread::spawn({
        let bus = bus.clone();
        move || {
            (0..100)
                .map(|_| {
                    bus.publish_blocking(Event::new(EventType::TaskCreated))
                        .delivered
                })
                .sum::<usize>()
        }
    });
    assert_eq!(publisher.join().unwrap(), 0);
    assert_eq!(calls.load(Ordering::SeqCst), before);
}

#[test]
fn ids_are_unique_and_never_reused() {
    let bus = EventBus::new();
    let mut ids = HashSet::new();
    for round in 0..5 {
        for t in EventType::ALL {
            let id = bus.subscribe(t, |_e: &Event| {});
            assert!(ids.insert(id), "id {id} reused in round {round}");
            if round % 2 == 0 {
                assert!(bus.unsubscribe(id));
            }
        }
        bus.reset();
    }
    assert_eq!(ids.len(), 5 * EventType::COUNT);
}

#[test]
fn ids_survive_reset_and_stale_ids_remove_nothing() {
    let bus = EventBus::new();
    let (old, old_calls) = counting(&bus, EventType::TaskCreated);
    bus.reset();
    let (new, new_calls) = counting(&bus, EventType::TaskCreated);
    assert_ne!(old, new);
    assert!(new.get() > old.get());
    assert!(!bus.unsubscribe(old));
    assert_eq!(bus.stats().active_subscribers, 1);
    assert_eq!(
        bus.publish_blocking(Event::new(EventType::TaskCreated))
            .delivered,
        1
    );
    assert_eq!(old_calls.load(Ordering::SeqCst), 0);
    assert_eq!(new_calls.load(Ordering::SeqCst), 1);
    assert!(bus.unsubscribe(new));
}

#[test]
fn subscription_id_display_and_get() {
    let bus = EventBus::new();
    let first = bus.subscribe(EventType::TaskCreated, |_e: &Event| {});
    let second = bus.subscribe(EventType::TaskCreated, |_e: &Event| {});
    assert_eq!(first.get(), 1);
    assert_eq!(second.get(), 2);
    assert_eq!(first.to_string(), "sub-1");
}

#[test]
fn unsubscribe_drops_the_handler_and_its_captures() {
    let bus = EventBus::new();
    let captured = Arc::new(());
    let held = Arc::clone(&captured);
    let id = bus.subscribe(EventType::TaskCreated, move |_e: &Event| {
        let _ = &held;
    });
    assert_eq!(Arc::strong_count(&captured), 2);
    bus.publish_blocking(Event::new(EventType::TaskCreated));
    assert!(bus.unsubscribe(id));
    assert_eq!(Arc::strong_count(&captured), 1);
}

#[test]
fn handler_whose_drop_panics_does_not_break_unsubscribe() {
    let bus = EventBus::new();
    let bomb = PanicOnDrop;
    let id = bus.subscribe(EventType::TaskCreated, move |_e: &Event| {
        let _ = &bomb;
    });
    assert!(bus.unsubscribe(id));
    let (_, calls) = counting(&bus, EventType::TaskCreated);
    bus.publish_blocking(Event::new(EventType::TaskCreated));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

/// Nested publishes deeper than the per-thread hazard slots (four) take the
/// locked fallback; a handler at the deepest level unsubscribes the handler
/// that every level above is still running: it is dropped when the
/// outermost publish ends, never earlier, and no later publish calls it.
#[test]
fn unsubscribe_deep_in_nested_publishes_drops_the_handler_when_the_outer_publish_ends() {
    const T: EventType = EventType::TaskCreated;
    let bus = EventBus::new();
    let captured = Arc::new(());
    let observed = Arc::new(Mutex::new(Vec::new()));
    let own_id = Arc::new(Mutex::new(None));
    let (handle, held, seen, me) = (
        bus.clone(),
        Arc::clone(&captured),
        Arc::clone(&observed),
        Arc::clone(&own_id),
    );
    let id = bus.subscribe(T, move |e: &Event| {
        let depth = e.circle_id.unwrap_or(0);
        if depth < 7 {
            handle.publish_blocking(Event::new(T).with_circle(depth + 1));
        } else {
            let id = me.lock().unwrap().take().expect("reached once");
            assert!(handle.unsubscribe(id));
        }
        // Every level is still inside a call of this closure: it and its
        // captures must be alive.
        seen.lock().unwrap().push((depth, Arc::strong_count(&held)));
    });
    *own_id.lock().unwrap() = Some(id);
    let outcome = bus.publish_blocking(Event::new(T).with_circle(0));
    assert_eq!(outcome.delivered, 1);
    let observed = observed.lock().unwrap().clone();
    assert_eq!(observed.len(), 8, "{observed:?}");
    assert!(
        observed.iter().all(|&(_, count)| count == 2),
        "{observed:?}"
    );
    assert_eq!(
        Arc::strong_count(&captured),
        1,
        "the handler outlived the last publish that could call it"
    );
    assert_eq!(bus.publish_blocking(Event::new(T)).delivered, 0);
}

/// Publishes on two buses nested inside each other's handlers, while
/// another thread keeps subscribing and unsubscribing on both: every
/// removed handler is dropped exactly once, and once all threads are done
/// nothing but the registrations holds a handler.
#[test]
fn nested_publishes_across_buses_with_churn_release_every_removed_handler() {
    const T: EventType = EventType::TaskCreated;
    let (a, b) = (EventBus::new(), EventBus::new());
    let (to_b, to_a) = (b.clone(), a.clone());
    a.subscribe(T, move |e: &Event| {
        if e.circle_id == Some(0) {
            to_b.publish_blocking(Event::new(T).with_circle(1));
        }
    });
    b.subscribe(T, move |e: &Event| {
        if e.circle_id == Some(1) {
            to_a.publish_blocking(Event::new(T).with_circle(2));
        }
    });
    let captured = Arc::new(());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let churn = {
        let (a, b, captured, stop) = (
            a.clone(),
            b.clone(),
            Arc::clone(&captured),
            Arc::clone(&stop),
        );
        std::thread::spawn(move || {
            let mut rounds = 0;
            while !stop.load(Ordering::Relaxed) || rounds < 100 {
                for bus in [&a, &b] {
                    let held = Arc::clone(&captured);
                    let id = bus.subscribe(T, move |_e: &Event| {
                        let _ = &held;
                    });
                    assert!(bus.unsubscribe(id));
                }
                rounds += 1;
            }
        })
    };
    let publishers: Vec<_> = (0..2)
        .map(|_| {
            let a = a.clone();
            std::thread::spawn(move || {
                for _ in 0..2_000 {
                    assert!(a.publish_blocking(Event::new(T).with_circle(0)).delivered >= 1);
                }
            })
        })
        .collect();
    for publisher in publishers {
        publisher.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    churn.join().unwrap();
    assert_eq!(Arc::strong_count(&captured), 1);
    assert_eq!(b.stats().events_published, 4_000);
    assert_eq!(a.stats().events_published, 8_000);
}

/// Threads that published and exited leave their hazard slots to later
/// threads; a thread that publishes from a thread-local's destructor (after
/// its slots are gone) still delivers.
#[test]
fn publishes_from_many_short_threads_and_thread_teardown() {
    struct PublishOnDrop(EventBus);
    impl Drop for PublishOnDrop {
        fn drop(&mut self) {
            let outcome = self.0.publish_blocking(Event::new(EventType::TaskCreated));
            assert_eq!(outcome.delivered, 1);
        }
    }
    thread_local! {
        static LATE: std::cell::RefCell<Option<PublishOnDrop>> = const { std::cell::RefCell::new(None) };
    }
    let bus = EventBus::new();
    let (_, calls) = counting(&bus, EventType::TaskCreated);
    for _ in 0..200 {
        let bus = bus.clone();
        std::thread::spawn(move || {
            assert_eq!(
                bus.publish_blocking(Event::new(EventType::TaskCreated))
                    .delivered,
                1
            );
            LATE.with(|late| *late.borrow_mut() = Some(PublishOnDrop(bus)));
        })
        .join()
        .unwrap();
    }
    assert_eq!(calls.load(Ordering::SeqCst), 400);
}

// ------------------------------------------------------------------ guards

#[test]
fn guard_unsubscribes_on_drop() {
    let bus = EventBus::new();
    let (id, calls) = counting(&bus, EventType::TaskStarted);
    {
        let guard = bus.guard(id);
        assert_eq!(guard.id(), id);
        bus.publish_blocking(Event::new(EventType::TaskStarted));
    }
    assert_eq!(bus.stats().active_subscribers, 0);
    assert!(!bus.unsubscribe(id));
    bus.publish_blocking(Event::new(EventType::TaskStarted));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn guard_detach_keeps_the_subscription() {
    let bus = EventBus::new();
    let (id, calls) = counting(&bus, EventType::TaskStarted);
    let detached = bus.guard(id).detach();
    assert_eq!(detached, id);
    bus.publish_blocking(Event::new(EventType::TaskStarted));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(bus.stats().active_subscribers, 1);
    assert!(bus.unsubscribe(id));
}

#[test]
fn guard_unsubscribe_reports_whether_it_was_registered() {
    let bus = EventBus::new();
    let (id, _) = counting(&bus, EventType::TaskStarted);
    assert!(bus.guard(id).unsubscribe());
    let (id, _) = counting(&bus, EventType::TaskStarted);
    let guard = bus.guard(id);
    assert!(bus.unsubscribe(id));
    assert!(!guard.unsubscribe());
}

#[test]
fn guard_outliving_the_bus_is_harmless() {
    let bus = EventBus::new();
    let (id, _) = counting(&bus, EventType::TaskStarted);
    let guard = bus.guard(id);
    drop(bus);
    assert!(!guard.unsubscribe());
}

#[test]
fn guard_after_reset_does_not_remove_a_new_subscription() {
    let bus = EventBus::new();
    let (old, _) = counting(&bus, EventType::TaskStarted);
    let guard = bus.guard(old);
    bus.reset();
    let (_, new_calls) = counting(&bus, EventType::TaskStarted);
    drop(guard);
    assert_eq!(bus.stats().active_subscribers, 1);
    bus.publish_blocking(Event::new(EventType::TaskStarted));
    assert_eq!(new_calls.load(Ordering::SeqCst), 1);
}

// ---------------------------------------------------------- subscribe_all

#[test]
fn subscribe_all_receives_every_type_once_per_publish() {
    let bus = EventBus::new();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = Arc::clone(&seen);
    let id = bus.subscribe_all(move |e: &Event| {
        s.lock().unwrap().push(e.event_type);
    });
    assert_eq!(bus.stats().active_subscribers, 1);
    for t in EventType::ALL {
        assert_eq!(bus.publish_blocking(Event::new(t)).delivered, 1);
    }
    assert_eq!(*seen.lock().unwrap(), EventType::ALL.to_vec());
    assert!(bus.unsubscribe(id));
    assert_eq!(bus.stats().active_subscribers, 0);
    for t in EventType::ALL {
        assert_eq!(bus.publish_blocking(Event::new(t)).delivered, 0);
    }
    assert_eq!(seen.lock().unwrap().len(), EventType::COUNT);
}

#[test]
fn subscribe_to_a_type_set() {
    let bus = EventBus::new();
    let set = EventTypeSet::from([EventType::TaskCreated, EventType::TaskCompleted]);
    assert_eq!(set.len(), 2);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = Arc::clone(&seen);
    let id = bus.subscribe(set, move |e: &Event| {
        s.lock().unwrap().push(e.event_type);
    });
    assert_eq!(bus.stats().active_subscribers, 1);
    for t in EventType::ALL {
        bus.publish_blocking(Event::new(t));
    }
    assert_eq!(
        *seen.lock().unwrap(),
        vec![EventType::TaskCreated, EventType::TaskCompleted]
    );
    assert!(bus.unsubscribe(id));
    bus.publish_blocking(Event::new(EventType::TaskCompleted));
    assert_eq!(seen.lock().unwrap().len(), 2);
}

#[test]
fn async_subscription_to_a_type_set() {
    let bus = EventBus::new();
    let calls = counter();
    let c = Arc::clone(&calls);
    bus.subscribe_async(
        [EventType::AgentStarted, EventType::AgentStopped],
        move |_e: Arc<Event>| {
            let c = Arc::clone(&c);
            async move {
                c.fetch_add(1, Ordering::SeqCst);
            }
        },
    );
    bus.publish_blocking(Event::new(EventType::AgentStarted));
    bus.publish_blocking(Event::new(EventType::AgentStopped));
    bus.publish_blocking(Event::new(EventType::AgentTaskFailed));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[test]
fn empty_type_set_subscription_receives_nothing() {
    let bus = EventBus::new();
    let calls = counter();
    let c = Arc::clone(&calls);
    let id = bus.subscribe(EventTypeSet::empty(), move |_e: &Event| {
        c.fetch_add(1, Ordering::SeqCst);
    });
    for t in EventType::ALL {
        bus.publish_blocking(Event::new(t));
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    assert!(bus.unsubscribe(id));
    assert!(!bus.unsubscribe(id));
}

#[test]
fn event_type_set_operations() {
    let set: EventTypeSet = [EventType::SystemError, EventType::SystemWarning]
        .into_iter()
        .collect();
    assert!(set.contains(EventType::SystemError));
    assert!(!set.contains(EventType::TaskCreated));
    assert_eq!(
        set.iter().collect::<Vec<_>>(),
        vec![EventType::SystemError, EventType::SystemWarning]
    );
    assert!(EventTypeSet::empty().is_empty());
    assert!(!set.is_empty());
    assert!(!EventTypeSet::from(EventType::TaskFailed).is_empty());
    assert_eq!(set.len(), 2);
    assert_eq!(EventTypeSet::all().len(), EventType::COUNT);
    assert_eq!(
        EventTypeSet::all().iter().collect::<Vec<_>>(),
        EventType::ALL.to_vec()
    );
    assert_eq!(
        EventTypeSet::from(EventType::TaskFailed),
        EventTypeSet::empty().with(EventType::TaskFailed)
    );
}

#[test]
fn named_builder_subscription_unsubscribes_like_any_other() {
    let bus = EventBus::new();
    let calls = counter();
    let c = Arc::clone(&calls);
    let id = bus
        .subscription(EventType::TaskCompleted)
        .name(String::from("owned-name"))
        .handler(move |_e: &Event| {
            c.fetch_add(1, Ordering::SeqCst);
        });
    bus.publish_blocking(Event::new(EventType::TaskCompleted));
    assert!(bus.unsubscribe(id));
    bus.publish_blocking(Event::new(EventType::TaskCompleted));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn the_global_bus_is_one_instance() {
    let a = agentbus::event_bus();
    let b = agentbus::event_bus();
    assert!(std::ptr::eq(a, b));
    assert_eq!(a.history_capacity(), 1000);
    let calls = counter();
    let c = Arc::clone(&calls);
    let id = a.subscribe(EventType::CircleCreated, move |_e: &Event| {
        c.fetch_add(1, Ordering::SeqCst);
    });
    b.publish_blocking(Event::new(EventType::CircleCreated));
    assert!(b.unsubscribe(id));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn a_handler_owning_another_subscriptions_guard_removes_it_when_dropped() {
    let bus = EventBus::new();
    let (other, other_calls) = counting(&bus, EventType::TaskCreated);
    let guard = bus.guard(other);
    let id = bus.subscribe(EventType::TaskFailed, move |_e: &Event| {
        let _ = &guard;
    });
    assert_eq!(bus.stats().active_subscribers, 2);
    // Unsubscribing drops the handler, whose guard unsubscribes in turn.
    assert!(bus.unsubscribe(id));
    assert_eq!(bus.stats().active_subscribers, 0);
    bus.publish_blocking(Event::new(EventType::TaskCreated));
    assert_eq!(other_calls.load(Ordering::SeqCst), 0);
}

#[test]
fn reset_with_handlers_owning_guards_and_streams() {
    let bus = EventBus::new();
    let (other, _) = counting(&bus, EventType::TaskCreated);
    let guard = bus.guard(other);
    let stream = bus.stream(EventType::TaskCreated, 4);
    bus.subscribe(EventType::TaskFailed, move |_e: &Event| {
        let _ = (&guard, &stream);
    });
    bus.reset();
    assert_eq!(bus.stats().active_subscribers, 0);
    let (_, calls) = counting(&bus, EventType::TaskCreated);
    bus.publish_blocking(Event::new(EventType::TaskCreated));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn a_filter_may_publish_and_subscribe() {
    let bus = EventBus::new();
    let inner = bus.clone();
    let (_, audit_calls) = counting(&bus, EventType::SystemWarning);
    bus.subscription(EventType::TaskCreated)
        .filter(move |e: &Event| {
            if e.circle_id.is_none() {
                inner.publish_blocking(Event::new(EventType::SystemWarning));
                inner.subscribe(EventType::SystemError, |_e: &Event| {});
            }
            e.circle_id.is_some()
        })
        .handler(|_e: &Event| {});
    let outcome = bus.publish_blocking(Event::new(EventType::TaskCreated));
    assert_eq!(outcome.delivered, 0);
    assert_eq!(audit_calls.load(Ordering::SeqCst), 1);
    assert_eq!(bus.stats().active_subscribers, 3);
    bus.reset();
}

#[test]
fn shared_handler_receives_the_published_arc_and_counts_panics() {
    let bus = EventBus::new();
    let kept: Arc<Mutex<Vec<Arc<Event>>>> = Arc::default();
    let sink = Arc::clone(&kept);
    bus.subscription(EventTypeSet::all())
        .shared_handler(move |event: &Arc<Event>| sink.lock().unwrap().push(Arc::clone(event)));
    bus.subscription(EventType::TaskFailed)
        .shared_handler(|_event: &Arc<Event>| panic!("shared handler panics"));

    let created = Arc::new(Event::new(EventType::TaskCreated));
    let outcome = bus.publish_blocking(Arc::clone(&created));
    assert_eq!((outcome.delivered, outcome.failed), (1, 0));
    let failed = bus.publish_blocking(Event::new(EventType::TaskFailed));
    assert_eq!((failed.delivered, failed.failed), (1, 1));

    let kept = kept.lock().unwrap();
    assert_eq!(kept.len(), 2);
    assert!(
        Arc::ptr_eq(&kept[0], &created),
        "the handler gets the publisher's Arc, not a copy"
    );
}
