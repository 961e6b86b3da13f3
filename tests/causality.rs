//! Causal ids: events published from inside handlers are stamped as caused
//! by the event being handled, across sync and async handlers, threads,
//! `Publisher`s and `WeakEventBus`es; explicit ids win; a spawned task
//! inherits nothing unless wrapped in `with_cause`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentbus::{with_cause, Event, EventBus, EventId, EventType, HistoryQuery};
use serde_json::json;

fn whole_history(bus: &EventBus) -> Vec<Arc<Event>> {
    bus.history(&HistoryQuery::new().limit(usize::MAX))
}

fn only(bus: &EventBus, event_type: EventType) -> Arc<Event> {
    let found = bus.history(&HistoryQuery::new().event_type(event_type).limit(usize::MAX));
    assert_eq!(found.len(), 1, "expected one {event_type}, found {found:?}");
    Arc::clone(&found[0])
}

fn assert_caused_by(child: &Event, parent: &Event, root: EventId) {
    assert_eq!(
        child.causation_id,
        Some(parent.id),
        "{} should be caused by {}",
        child.event_type,
        parent.event_type
    );
    assert_eq!(
        child.correlation_id,
        Some(root),
        "{} should be in the root's chain",
        child.event_type
    );
}

/// task completed (published outside) -> sync handler publishes a tool call
/// -> async handler, after yielding (so from a later poll, not the first),
/// publishes a memory -> sync handler publishes a message.
#[tokio::test]
async fn three_deep_chain_mixing_sync_and_async_handlers() {
    let bus = EventBus::new();
    let weak = bus.downgrade();
    bus.subscribe(EventType::TaskCompleted, move |_e: &Event| {
        let bus = weak.upgrade().unwrap();
        bus.publish_blocking(Event::new(EventType::AgentToolExecuted));
    });
    let weak = bus.downgrade();
    bus.subscribe_async(EventType::AgentToolExecuted, move |_e: Arc<Event>| {
        let weak = weak.clone();
        async move {
            tokio::task::yield_now().await;
            let bus = weak.upgrade().unwrap();
            bus.publish(Event::new(EventType::MemoryShared)).await;
        }
    });
    let weak = bus.downgrade();
    bus.subscribe(EventType::MemoryShared, move |_e: &Event| {
        weak.upgrade()
            .unwrap()
            .publish_blocking(Event::new(EventType::ConversationMessage));
    });

    let root = Event::new(EventType::TaskCompleted);
    let root_id = root.id;
    let outcome = bus.publish(root).await;
    assert_eq!(outcome.delivered, 1);
    // Something unrelated, after the chain: not part of it.
    bus.publish(Event::new(EventType::SystemWarning)).await;

    let root = only(&bus, EventType::TaskCompleted);
    let call = only(&bus, EventType::AgentToolExecuted);
    let memory = only(&bus, EventType::MemoryShared);
    let message = only(&bus, EventType::ConversationMessage);
    assert_eq!((root.correlation_id, root.causation_id), (None, None));
    assert_caused_by(&call, &root, root_id);
    assert_caused_by(&memory, &call, root_id);
    assert_caused_by(&message, &memory, root_id);
    let unrelated = only(&bus, EventType::SystemWarning);
    assert_eq!(
        (unrelated.correlation_id, unrelated.causation_id),
        (None, None)
    );

    let chain = bus.history(&HistoryQuery::new().correlation_id(root_id));
    let chain_ids: Vec<EventId> = chain.iter().map(|e| e.id).collect();
    assert_eq!(chain_ids, [message.id, memory.id, call.id, root_id]);
}

fn fail_after_publishing() {
    panic!("async handler fails on purpose after publishing");
}

/// A handler's cause is put back after a nested publish returns, and after
/// the handler returns or panics.
#[test]
fn cause_is_restored_after_nested_publishes_and_panics() {
    let bus = EventBus::new();
    let weak = bus.downgrade();
    bus.subscribe(EventType::TaskCreated, move |_e: &Event| {
        let bus = weak.upgrade().unwrap();
        bus.publish_blocking(Event::new(EventType::TaskAssigned));
        // After the nested chain below returned: still caused by the task.
        bus.publish_blocking(Event::new(EventType::TaskStarted));
    });
    let weak = bus.downgrade();
    bus.subscribe(EventType::TaskAssigned, move |_e: &Event| {
        weak.upgrade()
            .unwrap()
            .publish_blocking(Event::new(EventType::AgentTaskAssigned));
    });
    bus.subscribe(EventType::SystemError, |_e: &Event| -> () {
        panic!("handler fails on purpose");
    });
    let weak = bus.downgrade();
    bus.subscribe_async(EventType::SystemWarning, move |_e: Arc<Event>| {
        let weak = weak.clone();
        async move {
            let bus = weak.upgrade().unwrap();
            bus.publish(Event::new(EventType::AgentStopped)).await;
            fail_after_publishing();
        }
    });

    let task = Event::new(EventType::TaskCreated);
    let task_id = task.id;
    bus.publish_blocking(task);
    let task = only(&bus, EventType::TaskCreated);
    let assigned = only(&bus, EventType::TaskAssigned);
    assert_caused_by(&assigned, &task, task_id);
    assert_caused_by(
        &only(&bus, EventType::AgentTaskAssigned),
        &assigned,
        task_id,
    );
    assert_caused_by(&only(&bus, EventType::TaskStarted), &task, task_id);

    assert_eq!(
        bus.publish_blocking(Event::new(EventType::SystemError))
            .failed,
        1
    );
    let warning = Event::new(EventType::SystemWarning);
    let warning_id = warning.id;
    assert_eq!(bus.publish_blocking(warning).failed, 1);
    let stopped = only(&bus, EventType::AgentStopped);
    assert_eq!(stopped.causation_id, Some(warning_id));

    // Outside any handler again: nothing is stamped.
    bus.publish_blocking(Event::new(EventType::AgentStarted));
    let after = only(&bus, EventType::AgentStarted);
    assert_eq!((after.correlation_id, after.causation_id), (None, None));
}

/// Async handlers whose later polls run on the workers of a multi-thread
/// runtime, roots published from several threads at once, each async
/// handler's follow-up handled by a sync handler that publishes again: every
/// chain stays separate and complete.
#[test]
fn chains_stay_separate_across_threads_and_runtime_workers() {
    const THREADS: usize = 4;
    const ROOTS_PER_THREAD: usize = 16;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(3)
        .enable_time()
        .build()
        .unwrap();
    let bus = EventBus::new();
    let weak = bus.downgrade();
    bus.subscribe_async(EventType::TaskCreated, move |task: Arc<Event>| {
        let weak = weak.clone();
        async move {
            // Resumed by the timer, on whichever worker picks it up.
            tokio::time::sleep(Duration::from_millis(1)).await;
            let bus = weak.upgrade().unwrap();
            let mut publisher = bus.publisher();
            publisher
                .publish(Event::new(EventType::TaskAssigned).with_data(task.data.clone()))
                .await;
        }
    });
    let weak = bus.downgrade();
    bus.subscribe(EventType::TaskAssigned, move |assigned: &Event| {
        weak.upgrade()
            .unwrap()
            .publish_blocking(Event::new(EventType::TaskStarted).with_data(assigned.data.clone()));
    });

    std::thread::scope(|scope| {
        for thread in 0..THREADS {
            let (bus, handle) = (bus.clone(), runtime.handle().clone());
            scope.spawn(move || {
                let tasks: Vec<_> = (0..ROOTS_PER_THREAD)
                    .map(|i| {
                        let bus = bus.clone();
                        let root = Event::new(EventType::TaskCreated)
                            .with_data(json!({"thread": thread, "i": i}));
                        handle.spawn(async move { bus.publish(root).await })
                    })
                    .collect();
                for task in tasks {
                    assert_eq!(handle.block_on(task).unwrap().delivered, 1);
                }
            });
        }
    });

    let history = whole_history(&bus);
    let by_id: HashMap<EventId, &Arc<Event>> = history.iter().map(|e| (e.id, e)).collect();
    let started: Vec<_> = history
        .iter()
        .filter(|e| e.event_type == EventType::TaskStarted)
        .collect();
    assert_eq!(started.len(), THREADS * ROOTS_PER_THREAD);
    for start in started {
        let assigned = by_id[&start.causation_id.expect("task.started has no cause")];
        assert_eq!(assigned.event_type, EventType::TaskAssigned);
        let root = by_id[&assigned.causation_id.expect("task.assigned has no cause")];
        assert_eq!(root.event_type, EventType::TaskCreated);
        assert_eq!(root.data, start.data, "a chain crossed into another");
        assert_eq!(assigned.correlation_id, Some(root.id));
        assert_eq!(start.correlation_id, Some(root.id));
        assert_eq!(root.causation_id, None);
        let chain = bus.history(&HistoryQuery::new().correlation_id(root.id));
        assert_eq!(chain.len(), 3, "chain of {root:?}: {chain:?}");
    }
}

/// Ids the publisher set are kept as given, whichever of the two it set.
#[test]
fn explicit_ids_win_over_automatic_ones() {
    let elsewhere = Event::new(EventType::CircleCreated);
    let chosen = Event::new(EventType::CircleStarted).id;
    let bus = EventBus::new();
    let weak = bus.downgrade();
    let other = elsewhere.clone();
    bus.subscribe(EventType::TaskCompleted, move |_e: &Event| {
        let bus = weak.upgrade().unwrap();
        bus.publish_blocking(Event::new(EventType::MemoryCreated).with_correlation(chosen));
        bus.publish_blocking(Event::new(EventType::MemoryShared).caused_by(&other));
        let mut only_cause = Event::new(EventType::MemoryRecalled);
        only_cause.causation_id = Some(chosen);
        bus.publish_blocking(only_cause);
        bus.publish_blocking(Event::new(EventType::AgentStarted));
    });
    let task = Event::new(EventType::TaskCompleted);
    let task_id = task.id;
    bus.publish_blocking(task);

    let created = only(&bus, EventType::MemoryCreated);
    assert_eq!(
        (created.correlation_id, created.causation_id),
        (Some(chosen), None)
    );
    let shared = only(&bus, EventType::MemoryShared);
    assert_eq!(
        (shared.correlation_id, shared.causation_id),
        (Some(elsewhere.id), Some(elsewhere.id))
    );
    let recalled = only(&bus, EventType::MemoryRecalled);
    assert_eq!(
        (recalled.correlation_id, recalled.causation_id),
        (None, Some(chosen))
    );
    let plain = only(&bus, EventType::AgentStarted);
    assert_eq!(
        (plain.correlation_id, plain.causation_id),
        (Some(task_id), Some(task_id))
    );
}

/// Outside any handler an event keeps exactly what it was given.
#[test]
fn publish_outside_handlers_keeps_what_it_was_given() {
    let bus = EventBus::new();
    bus.subscribe_all(|_e: &Event| {});
    let parent = Event::new(EventType::TaskCreated);
    bus.publish_blocking(Event::new(EventType::TaskAssigned));
    bus.publish_blocking(Event::new(EventType::TaskStarted).caused_by(&parent));
    let assigned = only(&bus, EventType::TaskAssigned);
    assert_eq!(
        (assigned.correlation_id, assigned.causation_id),
        (None, None)
    );
    let started = only(&bus, EventType::TaskStarted);
    assert_eq!(
        (started.correlation_id, started.causation_id),
        (Some(parent.id), Some(parent.id))
    );
}

/// A `Publisher` used from a sync handler, one made inside an async handler,
/// and a `WeakEventBus` upgraded in either all stamp like the bus.
#[test]
fn publisher_and_weak_bus_inside_handlers() {
    let bus = EventBus::new();
    let publisher = Mutex::new(bus.publisher());
    bus.subscribe(EventType::CircleCreated, move |_e: &Event| {
        publisher
            .lock()
            .unwrap()
            .publish_blocking(Event::new(EventType::CircleStarted));
    });
    let weak = bus.downgrade();
    bus.subscribe_async(EventType::CircleStarted, move |_e: Arc<Event>| {
        let weak = weak.clone();
        async move {
            let bus = weak.upgrade().unwrap();
            let mut publisher = bus.publisher();
            publisher
                .publish(Event::new(EventType::CircleMemberAdded))
                .await;
            // And a weak handle's blocking publish from inside the future.
            weak.upgrade()
                .unwrap()
                .publish_blocking(Event::new(EventType::CircleMemberRemoved));
        }
    });

    let created = Event::new(EventType::CircleCreated);
    let root = created.id;
    futures::executor::block_on(bus.publisher().publish(created));
    let created = only(&bus, EventType::CircleCreated);
    let started = only(&bus, EventType::CircleStarted);
    assert_caused_by(&started, &created, root);
    assert_caused_by(&only(&bus, EventType::CircleMemberAdded), &started, root);
    assert_caused_by(&only(&bus, EventType::CircleMemberRemoved), &started, root);
    // The publisher in the handler holds the bus: let it go.
    bus.reset();
}

/// A shared `Arc<Event>` published from a handler is stamped as a copy; a
/// unique one in place.
#[test]
fn shared_arc_is_stamped_as_a_copy_and_a_unique_one_in_place() {
    let template = Arc::new(Event::new(EventType::SystemWarning).with_data(json!({"n": 1})));
    let unique_at = Arc::new(Mutex::new(0usize));
    let bus = EventBus::new();
    let weak = bus.downgrade();
    let (shared, at) = (Arc::clone(&template), Arc::clone(&unique_at));
    bus.subscribe(EventType::TaskFailed, move |_e: &Event| {
        let bus = weak.upgrade().unwrap();
        bus.publish_blocking(Arc::clone(&shared));
        let unique = Arc::new(Event::new(EventType::SystemError));
        *at.lock().unwrap() = Arc::as_ptr(&unique) as usize;
        bus.publish_blocking(unique);
    });
    let failed = Event::new(EventType::TaskFailed);
    let failed_id = failed.id;
    bus.publish_blocking(failed);

    assert_eq!(
        (template.correlation_id, template.causation_id),
        (None, None),
        "the caller's shared event was changed"
    );
    let copy = only(&bus, EventType::SystemWarning);
    assert!(!Arc::ptr_eq(&copy, &template));
    assert_eq!((copy.id, &copy.data), (template.id, &template.data));
    assert_eq!(copy.causation_id, Some(failed_id));
    let error = only(&bus, EventType::SystemError);
    assert_eq!(Arc::as_ptr(&error) as usize, *unique_at.lock().unwrap());
    assert_eq!(error.causation_id, Some(failed_id));
}

/// A handler that forwards the event it handles (to another bus) does not
/// make it its own cause.
#[test]
fn forwarding_the_handled_event_leaves_it_unstamped() {
    let downstream = EventBus::new();
    let upstream = EventBus::new();
    let to = downstream.clone();
    upstream.subscribe_async(EventType::MemoryShared, move |e: Arc<Event>| {
        let to = to.clone();
        async move {
            to.publish(e).await;
        }
    });
    upstream.publish_blocking(Event::new(EventType::MemoryShared));
    let forwarded = only(&downstream, EventType::MemoryShared);
    assert_eq!(
        (forwarded.correlation_id, forwarded.causation_id),
        (None, None)
    );
}

/// `tokio::spawn` from a handler inherits no cause; `with_cause` carries it,
/// on whichever worker the task runs.
#[test]
fn spawned_tasks_inherit_nothing_unless_wrapped_in_with_cause() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let bus = EventBus::new();
    let weak = bus.downgrade();
    bus.subscribe_async(EventType::AgentTaskCompleted, move |e: Arc<Event>| {
        let weak = weak.clone();
        async move {
            let bare = {
                let weak = weak.clone();
                tokio::spawn(async move {
                    let bus = weak.upgrade().unwrap();
                    bus.publish(Event::new(EventType::AgentTaskFailed)).await;
                })
            };
            let carried = tokio::spawn(with_cause(&e, async move {
                tokio::task::yield_now().await;
                let bus = weak.upgrade().unwrap();
                bus.publish(Event::new(EventType::AgentToolExecuted)).await;
                // A blocking publish from a plain thread the task starts
                // inherits nothing either.
                std::thread::spawn(move || {
                    bus.publish_blocking(Event::new(EventType::AgentStopped));
                })
                .join()
                .unwrap();
            }));
            bare.await.unwrap();
            carried.await.unwrap();
        }
    });
    let done = Event::new(EventType::AgentTaskCompleted);
    let done_id = done.id;
    runtime.block_on(bus.publish(done));

    let bare = only(&bus, EventType::AgentTaskFailed);
    assert_eq!((bare.correlation_id, bare.causation_id), (None, None));
    let carried = only(&bus, EventType::AgentToolExecuted);
    assert_eq!(
        (carried.correlation_id, carried.causation_id),
        (Some(done_id), Some(done_id))
    );
    let thread = only(&bus, EventType::AgentStopped);
    assert_eq!((thread.correlation_id, thread.causation_id), (None, None));
}

/// `with_cause` from a sync handler, driven by another thread's executor,
/// joins the chain of the handled event's correlation.
#[test]
fn with_cause_from_a_sync_handler_joins_the_parents_chain() {
    let bus = EventBus::new();
    let root = Event::new(EventType::ConversationMessage);
    let root_id = root.id;
    let spawned = Arc::new(Mutex::new(None));
    let slot = Arc::clone(&spawned);
    let weak = bus.downgrade();
    bus.subscribe(EventType::ConversationTurnComplete, move |turn: &Event| {
        let weak = weak.clone();
        let future = with_cause(turn, async move {
            let bus = weak.upgrade().unwrap();
            bus.publish(Event::new(EventType::MemoryCreated)).await
        });
        *slot.lock().unwrap() = Some(std::thread::spawn(move || {
            futures::executor::block_on(future)
        }));
    });
    let turn = Event::new(EventType::ConversationTurnComplete).caused_by(&root);
    let turn_id = turn.id;
    bus.publish_blocking(turn);
    let thread = spawned.lock().unwrap().take().unwrap();
    thread.join().unwrap();

    let memory = only(&bus, EventType::MemoryCreated);
    assert_eq!(
        (memory.correlation_id, memory.causation_id),
        (Some(root_id), Some(turn_id))
    );
}

/// `HistoryQuery::correlation_id` returns one chain, newest first, root
/// included, and combines with the other criteria.
#[test]
fn history_query_by_correlation_id_returns_one_chain() {
    let bus = EventBus::new();
    let a = Event::new(EventType::TaskCreated);
    let b = Event::new(EventType::TaskCreated);
    let a1 = Event::new(EventType::TaskAssigned).caused_by(&a);
    let b1 = Event::new(EventType::TaskAssigned).caused_by(&b);
    let a2 = Event::new(EventType::TaskStarted)
        .caused_by(&a1)
        .with_circle(3);
    let b2 = Event::new(EventType::TaskStarted)
        .caused_by(&b1)
        .with_circle(3);
    let ids = |events: &[Arc<Event>]| events.iter().map(|e| e.id).collect::<Vec<_>>();
    let (a_ids, b_ids) = ([a2.id, a1.id, a.id], [b2.id, b1.id, b.id]);
    let (a_id, b_id, a2_id) = (a.id, b.id, a2.id);
    for event in [a, b, a1, b1, a2, b2] {
        bus.publish_blocking(event);
    }
    assert_eq!(
        ids(&bus.history(&HistoryQuery::new().correlation_id(a_id))),
        a_ids
    );
    assert_eq!(
        ids(&bus.history(&HistoryQuery::new().correlation_id(b_id))),
        b_ids
    );
    assert_eq!(
        ids(&bus.history(
            &HistoryQuery::new()
                .correlation_id(a_id)
                .event_type(EventType::TaskStarted)
                .circle_id(3)
        )),
        [a2_id]
    );
    // An id that is not a chain's root matches nothing.
    assert!(bus
        .history(&HistoryQuery::new().correlation_id(a2_id))
        .is_empty());
}
