//! Publishing: fan-out, filters, async handlers, error isolation, logging,
//! re-entrancy and ordering.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use agentbus::{Event, EventBus, EventType, HistoryQuery, PublishOutcome, SubscriptionId};
use serde_json::json;

mod common;
use common::{
    counter, runtime, subscribe_failing_handlers, within, PanicOnDrop, YieldOnce, FAILING,
};

#[test]
fn smoke() {
    let bus = EventBus::new();
    let calls = counter();
    let c = Arc::clone(&calls);
    bus.subscribe(EventType::TaskCompleted, move |e: &Event| {
        assert_eq!(e.data["task_id"], 123);
        c.fetch_add(1, Ordering::SeqCst);
    });
    let outcome = bus
        .publish_blocking(Event::new(EventType::TaskCompleted).with_data(json!({"task_id": 123})));
    assert_eq!(
        outcome,
        PublishOutcome {
            delivered: 1,
            failed: 0,
            retrying: 0,
        }
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

// ---------------------------------------------------------------- fan-out

#[test]
fn every_matching_subscriber_once_other_types_never() {
    let bus = EventBus::new();
    let matching: Vec<_> = (0..5).map(|_| counter()).collect();
    for c in &matching {
        let c = Arc::clone(c);
        bus.subscribe(EventType::TaskCompleted, move |_e: &Event| {
            c.fetch_add(1, Ordering::SeqCst);
        });
    }
    let others: Vec<_> = EventType::ALL
        .into_iter()
        .filter(|t| *t != EventType::TaskCompleted)
        .map(|t| {
            let c = counter();
            let c2 = Arc::clone(&c);
            bus.subscribe(t, move |e: &Event| {
                assert_eq!(e.event_type, t);
                c2.fetch_add(1, Ordering::SeqCst);
            });
            c
        })
        .collect();

    for round in 1..=3 {
        let outcome = bus.publish_blocking(Event::new(EventType::TaskCompleted));
        assert_eq!(outcome.delivered, 5);
        assert_eq!(outcome.failed, 0);
        for c in &matching {
            assert_eq!(c.load(Ordering::SeqCst), round);
        }
        for c in &others {
            assert_eq!(c.load(Ordering::SeqCst), 0);
        }
    }
    let outcome = bus.publish_blocking(Event::new(EventType::SystemWarning));
    assert_eq!(outcome.delivered, 1);
    assert_eq!(
        others
            .iter()
            .map(|c| c.load(Ordering::SeqCst))
            .sum::<usize>(),
        1
    );
}

#[test]
fn publish_with_no_subscribers_delivers_nothing() {
    let bus = EventBus::new();
    let outcome = bus.publish_blocking(Event::new(EventType::AgentStopped));
    assert_eq!(outcome, PublishOutcome::default());
    assert_eq!(bus.stats().events_published, 1);
}

#[test]
fn same_closure_subscribed_twice_runs_twice() {
    let bus = EventBus::new();
    let calls = counter();
    let handler = {
        let calls = Arc::clone(&calls);
        move |_e: &Event| {
            calls.fetch_add(1, Ordering::SeqCst);
        }
    };
    bus.subscribe(EventType::TaskCreated, handler.clone());
    bus.subscribe(EventType::TaskCreated, handler);
    assert_eq!(
        bus.publish_blocking(Event::new(EventType::TaskCreated))
            .delivered,
        2
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[test]
fn sync_handlers_run_in_subscription_order() {
    let bus = EventBus::new();
    let order = Arc::new(Mutex::new(Vec::new()));
    for n in 0..10 {
        let order = Arc::clone(&order);
        bus.subscribe(EventType::TaskCreated, move |_e: &Event| {
            order.lock().unwrap().push(n);
        });
    }
    bus.publish_blocking(Event::new(EventType::TaskCreated));
    assert_eq!(*order.lock().unwrap(), (0..10).collect::<Vec<_>>());
}

#[test]
fn publish_accepts_event_and_arc_event() {
    let bus = EventBus::new();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = Arc::clone(&seen);
    bus.subscribe(EventType::TaskCreated, move |e: &Event| {
        s.lock().unwrap().push(e.id);
    });
    let owned = Event::new(EventType::TaskCreated);
    let owned_id = owned.id;
    let shared = Arc::new(Event::new(EventType::TaskCreated));
    bus.publish_blocking(owned);
    bus.publish_blocking(Arc::clone(&shared));
    futures::executor::block_on(bus.publish(Arc::clone(&shared)));
    assert_eq!(*seen.lock().unwrap(), vec![owned_id, shared.id, shared.id]);
    // The history holds the very Arc that was published, not a copy.
    let history = bus.history(&HistoryQuery::new().limit(1));
    assert!(Arc::ptr_eq(&history[0], &shared));
}

#[test]
fn filters_run_before_the_handler_on_the_publishing_thread() {
    let bus = EventBus::new();
    let log = Arc::new(Mutex::new(Vec::new()));
    let (filter_log, handler_log) = (Arc::clone(&log), Arc::clone(&log));
    bus.subscription(EventType::TaskCompleted)
        .filter(move |e: &Event| {
            filter_log
                .lock()
                .unwrap()
                .push(("filter", std::thread::current().id(), e.circle_id));
            e.circle_id == Some(5)
        })
        .name("circle-5-watcher")
        .handler(move |e: &Event| {
            handler_log
                .lock()
                .unwrap()
                .push(("handler", std::thread::current().id(), e.circle_id));
        });

    let publisher = std::thread::spawn({
        let bus = bus.clone();
        move || {
            let hit = bus.publish_blocking(Event::new(EventType::TaskCompleted).with_circle(5));
            let miss = bus.publish_blocking(Event::new(EventType::TaskCompleted).with_circle(6));
            let none = bus.publish_blocking(Event::new(EventType::TaskCompleted));
            (std::thread::current().id(), hit, miss, none)
        }
    });
    let (publisher_id, hit, miss, none) = publisher.join().unwrap();
    assert_ne!(publisher_id, std::thread::current().id());
    assert_eq!(
        hit,
        PublishOutcome {
            delivered: 1,
            failed: 0,
            retrying: 0,
        }
    );
    assert_eq!(miss, PublishOutcome::default());
    assert_eq!(none, PublishOutcome::default());
    assert_eq!(
        *log.lock().unwrap(),
        vec![
            ("filter", publisher_id, Some(5)),
            ("handler", publisher_id, Some(5)),
            ("filter", publisher_id, Some(6)),
            ("filter", publisher_id, None),
        ]
    );
}

#[test]
fn async_handler_filter_runs_on_publishing_thread() {
    let bus = EventBus::new();
    let filter_thread = Arc::new(Mutex::new(None));
    let ft = Arc::clone(&filter_thread);
    let calls = counter();
    let c = Arc::clone(&calls);
    bus.subscription(EventType::MemoryShared)
        .filter(move |e: &Event| {
            *ft.lock().unwrap() = Some(std::thread::current().id());
            e.project_id == Some(1)
        })
        .async_handler(move |_e: Arc<Event>| {
            let c = Arc::clone(&c);
            async move {
                c.fetch_add(1, Ordering::SeqCst);
            }
        });
    let miss = bus.publish_blocking(Event::new(EventType::MemoryShared).with_project(2));
    assert_eq!(miss.delivered, 0);
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    let hit = bus.publish_blocking(Event::new(EventType::MemoryShared).with_project(1));
    assert_eq!(hit.delivered, 1);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(
        *filter_thread.lock().unwrap(),
        Some(std::thread::current().id())
    );
}

// ------------------------------------------------------------------ async

fn three_sleepers(bus: &EventBus) -> Arc<AtomicUsize> {
    let done = counter();
    for _ in 0..3 {
        let done = Arc::clone(&done);
        bus.subscribe_async(EventType::TaskStarted, move |_e: Arc<Event>| {
            let done = Arc::clone(&done);
            async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                done.fetch_add(1, Ordering::SeqCst);
            }
        });
    }
    done
}

#[test]
fn async_handlers_run_concurrently_current_thread() {
    let bus = EventBus::new();
    let done = three_sleepers(&bus);
    let (outcome, elapsed) = runtime().block_on(async {
        let start = Instant::now();
        let outcome = bus.publish(Event::new(EventType::TaskStarted)).await;
        (outcome, start.elapsed())
    });
    // publish awaited all three: every one had finished when it returned.
    assert_eq!(done.load(Ordering::SeqCst), 3);
    assert_eq!(
        outcome,
        PublishOutcome {
            delivered: 3,
            failed: 0,
            retrying: 0,
        }
    );
    assert!(elapsed >= Duration::from_millis(100), "{elapsed:?}");
    // Sequential awaiting would take 300 ms.
    assert!(elapsed < Duration::from_millis(190), "{elapsed:?}");
}

#[test]
fn async_handlers_run_concurrently_multi_thread() {
    let bus = EventBus::new();
    let done = three_sleepers(&bus);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    let (outcome, elapsed) = rt.block_on({
        let bus = bus.clone();
        async move {
            // On a worker thread, through tokio::spawn: needs a Send future.
            tokio::spawn(async move {
                let start = Instant::now();
                let outcome = bus.publish(Event::new(EventType::TaskStarted)).await;
                (outcome, start.elapsed())
            })
            .await
            .unwrap()
        }
    });
    assert_eq!(done.load(Ordering::SeqCst), 3);
    assert_eq!(outcome.delivered, 3);
    assert!(elapsed < Duration::from_millis(190), "{elapsed:?}");
    assert_eq!(bus.stats().events_delivered, 3);
}

#[test]
fn sync_and_async_handlers_mix() {
    let bus = EventBus::new();
    let sync_calls = counter();
    let async_calls = counter();
    let s = Arc::clone(&sync_calls);
    bus.subscribe(EventType::TaskCreated, move |_e: &Event| {
        s.fetch_add(1, Ordering::SeqCst);
    });
    let a = Arc::clone(&async_calls);
    bus.subscribe_async(EventType::TaskCreated, move |e: Arc<Event>| {
        let a = Arc::clone(&a);
        async move {
            tokio::task::yield_now().await;
            assert_eq!(e.event_type, EventType::TaskCreated);
            a.fetch_add(1, Ordering::SeqCst);
        }
    });
    let outcome = runtime().block_on(bus.publish(Event::new(EventType::TaskCreated)));
    assert_eq!(
        outcome,
        PublishOutcome {
            delivered: 2,
            failed: 0,
            retrying: 0,
        }
    );
    assert_eq!(sync_calls.load(Ordering::SeqCst), 1);
    assert_eq!(async_calls.load(Ordering::SeqCst), 1);
    let stats = bus.stats();
    assert_eq!((stats.events_published, stats.events_delivered), (1, 2));
}

#[test]
fn nothing_happens_until_publish_future_is_polled() {
    let bus = EventBus::new();
    let calls = counter();
    let c = Arc::clone(&calls);
    bus.subscribe(EventType::TaskCreated, move |_e: &Event| {
        c.fetch_add(1, Ordering::SeqCst);
    });
    let future = bus.publish(Event::new(EventType::TaskCreated));
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    assert_eq!(bus.stats().events_published, 0);
    assert_eq!(futures::executor::block_on(future).delivered, 1);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

fn assert_send<T: Send>(_: &T) {}

#[test]
fn publish_future_is_send() {
    let bus = EventBus::new();
    let future = bus.publish(Event::new(EventType::TaskCreated));
    assert_send(&future);
    let future = bus.publish(Arc::new(Event::new(EventType::TaskCreated)));
    assert_send(&future);
    assert_eq!(
        futures::executor::block_on(future),
        PublishOutcome::default()
    );
}

#[test]
fn publish_blocking_from_plain_thread_without_runtime() {
    let bus = EventBus::new();
    let sync_calls = counter();
    let async_calls = counter();
    let s = Arc::clone(&sync_calls);
    bus.subscribe(EventType::AgentStarted, move |_e: &Event| {
        assert!(tokio::runtime::Handle::try_current().is_err());
        s.fetch_add(1, Ordering::SeqCst);
    });
    for _ in 0..2 {
        let a = Arc::clone(&async_calls);
        bus.subscribe_async(EventType::AgentStarted, move |_e: Arc<Event>| {
            let a = Arc::clone(&a);
            async move {
                // Runtime-agnostic awaiting: a future that is pending once.
                let mut first = true;
                std::future::poll_fn(|cx| {
                    if std::mem::take(&mut first) {
                        cx.waker().wake_by_ref();
                        std::task::Poll::Pending
                    } else {
                        std::task::Poll::Ready(())
                    }
                })
                .await;
                a.fetch_add(1, Ordering::SeqCst);
            }
        });
    }
    bus.subscribe_async(EventType::AgentStarted, |_e: Arc<Event>| async {});
    let outcomes = within(Duration::from_secs(30), {
        let bus = bus.clone();
        move || {
            assert!(tokio::runtime::Handle::try_current().is_err());
            (0..10)
                .map(|_| bus.publish_blocking(Event::new(EventType::AgentStarted)))
                .collect::<Vec<_>>()
        }
    });
    for outcome in outcomes {
        assert_eq!(
            outcome,
            PublishOutcome {
                delivered: 4,
                failed: 0,
                retrying: 0,
            }
        );
    }
    assert_eq!(sync_calls.load(Ordering::SeqCst), 10);
    assert_eq!(async_calls.load(Ordering::SeqCst), 20);
    let stats = bus.stats();
    assert_eq!(stats.events_published, 10);
    assert_eq!(stats.events_delivered, 40);
    assert_eq!(stats.handler_errors, 0);
}

#[test]
fn publish_blocking_wakes_when_another_thread_consumes_the_waker() {
    let bus = EventBus::new();
    let polls = counter();
    let p = Arc::clone(&polls);
    bus.subscribe_async(EventType::AgentStarted, move |_e: Arc<Event>| {
        let done = Arc::new(AtomicBool::new(false));
        let latest: Arc<Mutex<Option<std::task::Waker>>> = Arc::default();
        let mut waker_thread = None;
        let polls = Arc::clone(&p);
        std::future::poll_fn(move |cx| {
            polls.fetch_add(1, Ordering::SeqCst);
            if done.load(Ordering::SeqCst) {
                return std::task::Poll::Ready(());
            }
            // Like a well-behaved future: keep the latest waker, and have
            // another thread wake it by value (`Waker::wake`, not `wake_by_ref`).
            *latest.lock().unwrap() = Some(cx.waker().clone());
            waker_thread.get_or_insert_with(|| {
                let (done, latest) = (Arc::clone(&done), Arc::clone(&latest));
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(20));
                    done.store(true, Ordering::SeqCst);
                    if let Some(waker) = latest.lock().unwrap().take() {
                        waker.wake();
                    }
                })
            });
            std::task::Poll::Pending
        })
    });
    let outcome = within(Duration::from_secs(10), move || {
        bus.publish_blocking(Event::new(EventType::AgentStarted))
    });
    assert_eq!(outcome.delivered, 1);
    // During the fan-out, once more by the blocking executor, and once after
    // the wake (unless the 20 ms were over before the executor's poll): the
    // executor parks in between instead of spinning.
    let polls = polls.load(Ordering::SeqCst);
    assert!((2..=3).contains(&polls), "{polls} polls");
}

/// Sets its flag when dropped: shows that a handler's future, and what it
/// captured, was released.
struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[test]
fn dropping_the_publish_future_cancels_async_handlers() {
    let bus = EventBus::new();
    let finished = counter();
    let future_dropped = Arc::new(AtomicBool::new(false));
    let (f, d) = (Arc::clone(&finished), Arc::clone(&future_dropped));
    bus.subscribe_async(EventType::TaskCreated, move |_e: Arc<Event>| {
        let f = Arc::clone(&f);
        let on_drop = SetOnDrop(Arc::clone(&d));
        async move {
            let _on_drop = on_drop;
            std::future::pending::<()>().await;
            f.fetch_add(1, Ordering::SeqCst);
        }
    });
    let mut future = Box::pin(bus.publish(Event::new(EventType::TaskCreated)));
    let waker = futures::task::noop_waker();
    let mut cx = std::task::Context::from_waker(&waker);
    assert!(future.as_mut().poll(&mut cx).is_pending());
    // The test, the handler closure and the running future.
    assert_eq!(Arc::strong_count(&finished), 3);
    assert!(!future_dropped.load(Ordering::SeqCst));
    drop(future);
    assert!(
        future_dropped.load(Ordering::SeqCst),
        "the cancelled handler's future was not dropped"
    );
    assert_eq!(
        Arc::strong_count(&finished),
        2,
        "the cancelled future's captures were not released"
    );
    assert_eq!(finished.load(Ordering::SeqCst), 0);
    // The bus is unaffected; a cancelled handler is neither delivered nor failed.
    let stats = bus.stats();
    assert_eq!(
        (
            stats.events_published,
            stats.events_delivered,
            stats.handler_errors
        ),
        (1, 0, 0)
    );
}

/// Pending until it has been polled `limit` times, then fails: counts how
/// often the bus polls a handler that is waiting for something else.
struct CountsPolls {
    polls: Arc<AtomicUsize>,
    limit: usize,
}

impl Future for CountsPolls {
    type Output = Result<(), &'static str>;
    fn poll(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        if self.polls.fetch_add(1, Ordering::SeqCst) + 1 >= self.limit {
            std::task::Poll::Ready(Err("polled in a loop instead of on wakeups"))
        } else {
            std::task::Poll::Pending
        }
    }
}

#[test]
fn a_pending_async_handler_is_polled_once_per_poll_of_the_publish_future() {
    let bus = EventBus::new();
    let polls = counter();
    let p = Arc::clone(&polls);
    bus.subscribe_async(EventType::TaskCreated, move |_e: Arc<Event>| CountsPolls {
        polls: Arc::clone(&p),
        limit: 100,
    });
    let mut future = Box::pin(bus.publish(Event::new(EventType::TaskCreated)));
    let waker = futures::task::noop_waker();
    let mut cx = std::task::Context::from_waker(&waker);
    for expected_polls in 1..=3 {
        assert!(future.as_mut().poll(&mut cx).is_pending());
        assert_eq!(polls.load(Ordering::SeqCst), expected_polls);
    }
}

#[test]
fn async_handlers_failing_after_a_pending_poll_are_counted_as_failures() {
    let bus = EventBus::new();
    bus.subscribe_async(EventType::TaskFailed, |_e: Arc<Event>| async {
        YieldOnce::default().await;
        Err::<(), _>("failed on the second poll")
    });
    bus.subscribe_async(EventType::TaskFailed, |_e: Arc<Event>| async {
        YieldOnce::default().await;
        if true {
            panic!("panicked on the second poll");
        }
    });
    bus.subscribe_async(EventType::TaskFailed, |_e: Arc<Event>| async {
        YieldOnce::default().await;
    });
    let expected = PublishOutcome {
        delivered: 1,
        failed: 2,
        retrying: 0,
    };
    assert_eq!(
        bus.publish_blocking(Event::new(EventType::TaskFailed)),
        expected
    );
    assert_eq!(
        runtime().block_on(bus.publish(Event::new(EventType::TaskFailed))),
        expected
    );
    let mut publisher = bus.publisher();
    assert_eq!(
        runtime().block_on(publisher.publish(Event::new(EventType::TaskFailed))),
        expected
    );
    let stats = bus.stats();
    assert_eq!(
        (
            stats.events_published,
            stats.events_delivered,
            stats.handler_errors
        ),
        (3, 3, 6)
    );
}

// ------------------------------------------------------- error isolation

#[test]
fn every_kind_of_failure_is_isolated_and_counted() {
    let bus = EventBus::new();
    let ok_calls = counter();
    subscribe_failing_handlers(&bus, &ok_calls);

    let outcome = bus.publish_blocking(Event::new(EventType::SystemError));
    assert_eq!(
        outcome,
        PublishOutcome {
            delivered: 3,
            failed: FAILING,
            retrying: 0,
        }
    );
    assert_eq!(ok_calls.load(Ordering::SeqCst), 3);

    let outcome = runtime().block_on(bus.publish(Event::new(EventType::SystemError)));
    assert_eq!(
        outcome,
        PublishOutcome {
            delivered: 3,
            failed: FAILING,
            retrying: 0,
        }
    );
    assert_eq!(ok_calls.load(Ordering::SeqCst), 6);

    let stats = bus.stats();
    assert_eq!(stats.events_published, 2);
    assert_eq!(stats.events_delivered, 6);
    assert_eq!(stats.handler_errors, 2 * FAILING as u64);

    // Still fully usable.
    let later = counter();
    let l = Arc::clone(&later);
    let id = bus.subscribe(EventType::TaskCreated, move |_e: &Event| {
        l.fetch_add(1, Ordering::SeqCst);
    });
    assert_eq!(
        bus.publish_blocking(Event::new(EventType::TaskCreated))
            .delivered,
        1
    );
    assert!(bus.unsubscribe(id));
    assert_eq!(later.load(Ordering::SeqCst), 1);
    assert_eq!(bus.history(&HistoryQuery::new()).len(), 3);
}

#[test]
fn failures_from_another_thread_do_not_poison_the_bus() {
    let bus = EventBus::new();
    let ok_calls = counter();
    subscribe_failing_handlers(&bus, &ok_calls);
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let bus = bus.clone();
            std::thread::spawn(move || {
                (0..20)
                    .map(|_| bus.publish_blocking(Event::new(EventType::SystemError)))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for thread in threads {
        for outcome in thread.join().unwrap() {
            assert_eq!(
                outcome,
                PublishOutcome {
                    delivered: 3,
                    failed: FAILING,
                    retrying: 0,
                }
            );
        }
    }
    assert_eq!(ok_calls.load(Ordering::SeqCst), 120);
    assert_eq!(bus.stats().handler_errors, 40 * FAILING as u64);
}

#[test]
fn a_payload_whose_drop_panics_is_contained() {
    struct Bomb;
    impl Drop for Bomb {
        fn drop(&mut self) {
            panic!("payload drop panicked");
        }
    }
    let bus = EventBus::new();
    bus.subscribe::<_, ()>(EventType::SystemError, |_e: &Event| {
        std::panic::panic_any(Bomb)
    });
    let after = counter();
    let a = Arc::clone(&after);
    bus.subscribe(EventType::SystemError, move |_e: &Event| {
        a.fetch_add(1, Ordering::SeqCst);
    });
    let outcome = bus.publish_blocking(Event::new(EventType::SystemError));
    assert_eq!(
        outcome,
        PublishOutcome {
            delivered: 1,
            failed: 1,
            retrying: 0,
        }
    );
    assert_eq!(after.load(Ordering::SeqCst), 1);
}

// ------------------------------------------------------------ re-entrancy

#[test]
fn handler_may_publish_recursively() {
    let (calls, stats, depths) = within(Duration::from_secs(30), || {
        let bus = EventBus::new();
        let calls = counter();
        let depths = Arc::new(Mutex::new(Vec::new()));
        let inner = bus.clone();
        let c = Arc::clone(&calls);
        let d = Arc::clone(&depths);
        bus.subscribe(EventType::TaskCreated, move |e: &Event| {
            c.fetch_add(1, Ordering::SeqCst);
            let depth = e.data["depth"].as_u64().unwrap();
            d.lock().unwrap().push(depth);
            if depth < 5 {
                let outcome = inner.publish_blocking(
                    Event::new(EventType::TaskCreated).with_data(json!({"depth": depth + 1})),
                );
                assert_eq!(outcome.delivered, 1);
            }
        });
        let outcome =
            bus.publish_blocking(Event::new(EventType::TaskCreated).with_data(json!({"depth": 0})));
        assert_eq!(outcome.delivered, 1);
        let stats = bus.stats();
        let depths = depths.lock().unwrap().clone();
        // Break the bus → handler → bus cycle.
        bus.reset();
        (calls.load(Ordering::SeqCst), stats, depths)
    });
    assert_eq!(calls, 6);
    assert_eq!(depths, vec![0, 1, 2, 3, 4, 5]);
    assert_eq!(stats.events_published, 6);
    assert_eq!(stats.events_delivered, 6);
    assert_eq!(stats.history_size, 6);
}

#[test]
fn async_handler_may_publish() {
    let bus = EventBus::new();
    let followups = counter();
    let f = Arc::clone(&followups);
    bus.subscribe(EventType::TaskCompleted, move |_e: &Event| {
        f.fetch_add(1, Ordering::SeqCst);
    });
    let inner = bus.clone();
    bus.subscribe_async(EventType::TaskCreated, move |e: Arc<Event>| {
        let bus = inner.clone();
        async move {
            tokio::task::yield_now().await;
            let outcome = bus
                .publish(Event::new(EventType::TaskCompleted).with_circle(e.circle_id.unwrap()))
                .await;
            assert_eq!(outcome.delivered, 1);
        }
    });
    let outcome = within(Duration::from_secs(30), {
        let bus = bus.clone();
        move || runtime().block_on(bus.publish(Event::new(EventType::TaskCreated).with_circle(3)))
    });
    assert_eq!(
        outcome,
        PublishOutcome {
            delivered: 1,
            failed: 0,
            retrying: 0,
        }
    );
    assert_eq!(followups.load(Ordering::SeqCst), 1);
    assert_eq!(bus.history(&HistoryQuery::new().circle_id(3)).len(), 2);
    bus.reset();
}

#[test]
fn handler_may_subscribe_a_new_handler() {
    within(Duration::from_secs(30), || {
        let bus = EventBus::new();
        let added = counter();
        let once = Arc::new(AtomicBool::new(false));
        let inner = bus.clone();
        let a = Arc::clone(&added);
        bus.subscribe(EventType::TaskCreated, move |_e: &Event| {
            if !once.swap(true, Ordering::SeqCst) {
                let a = Arc::clone(&a);
                inner.subscribe(EventType::TaskCreated, move |_e: &Event| {
                    a.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        // The dispatch in flight keeps the table it started with.
        let first = bus.publish_blocking(Event::new(EventType::TaskCreated));
        assert_eq!(first.delivered, 1);
        assert_eq!(added.load(Ordering::SeqCst), 0);
        assert_eq!(bus.stats().active_subscribers, 2);
        let second = bus.publish_blocking(Event::new(EventType::TaskCreated));
        assert_eq!(second.delivered, 2);
        assert_eq!(added.load(Ordering::SeqCst), 1);
        bus.reset();
    });
}

#[test]
fn handler_may_unsubscribe_itself() {
    within(Duration::from_secs(30), || {
        let bus = EventBus::new();
        let calls = counter();
        let own_id: Arc<OnceLock<SubscriptionId>> = Arc::new(OnceLock::new());
        let results = Arc::new(Mutex::new(Vec::new()));
        let (inner, c, me, r) = (
            bus.clone(),
            Arc::clone(&calls),
            Arc::clone(&own_id),
            Arc::clone(&results),
        );
        let id = bus.subscribe(EventType::TaskCreated, move |_e: &Event| {
            c.fetch_add(1, Ordering::SeqCst);
            r.lock()
                .unwrap()
                .push(inner.unsubscribe(*me.get().unwrap()));
        });
        own_id.set(id).unwrap();
        assert_eq!(bus.stats().active_subscribers, 1);
        for _ in 0..3 {
            bus.publish_blocking(Event::new(EventType::TaskCreated));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(*results.lock().unwrap(), vec![true]);
        assert_eq!(bus.stats().active_subscribers, 0);
        assert!(!bus.unsubscribe(id));
    });
}

#[test]
fn field_filters_deliver_only_events_with_those_field_values() {
    let bus = EventBus::new();
    let seen = Arc::new(Mutex::new(Vec::new()));
    for circle in [1, 2] {
        let seen = Arc::clone(&seen);
        bus.subscription(EventType::TaskCompleted)
            .circle_id(circle)
            .handler(move |e: &Event| seen.lock().unwrap().push((circle, e.circle_id)));
    }
    let publish = |event: Event| bus.publish_blocking(event).delivered;
    assert_eq!(
        publish(Event::new(EventType::TaskCompleted).with_circle(1)),
        1
    );
    assert_eq!(
        publish(Event::new(EventType::TaskCompleted).with_circle(2)),
        1
    );
    assert_eq!(
        publish(Event::new(EventType::TaskCompleted).with_circle(3)),
        0
    );
    // An event without the field matches no scope on it.
    assert_eq!(publish(Event::new(EventType::TaskCompleted)), 0);
    assert_eq!(*seen.lock().unwrap(), vec![(1, Some(1)), (2, Some(2))]);
}

#[test]
fn field_filters_and_a_filter_closure_must_all_pass() {
    let bus = EventBus::new();
    let filter_calls = counter();
    let handled = Arc::new(Mutex::new(Vec::new()));
    let (calls, log) = (Arc::clone(&filter_calls), Arc::clone(&handled));
    bus.subscription(EventType::AgentToolExecuted)
        .source_agent_id(7)
        .circle_id(5)
        .project_id(3)
        .filter(move |e: &Event| {
            calls.fetch_add(1, Ordering::SeqCst);
            e.data["urgent"] == json!(true)
        })
        .handler(move |e: &Event| log.lock().unwrap().push(e.data["n"].clone()));

    let event = |agent: i64, circle: i64, project: i64, urgent: bool, n: u32| {
        Event::new(EventType::AgentToolExecuted)
            .with_source_agent(agent)
            .with_circle(circle)
            .with_project(project)
            .with_data(json!({"urgent": urgent, "n": n}))
    };
    for e in [
        event(7, 5, 3, true, 0),  // all pass
        event(7, 5, 3, false, 1), // the closure says no
        event(8, 5, 3, true, 2),  // wrong agent
        event(7, 6, 3, true, 3),  // wrong circle
        event(7, 5, 4, true, 4),  // wrong project
    ] {
        bus.publish_blocking(e);
    }
    assert_eq!(*handled.lock().unwrap(), vec![json!(0)]);
    // The closure runs only for events inside the field filters.
    assert_eq!(filter_calls.load(Ordering::SeqCst), 2);
}

#[test]
fn field_filters_apply_to_async_handlers_and_streams() {
    let bus = EventBus::new();
    let calls = counter();
    let c = Arc::clone(&calls);
    bus.subscription(EventType::TaskCompleted)
        .project_id(9)
        .async_handler(move |_e: Arc<Event>| {
            let c = Arc::clone(&c);
            async move {
                c.fetch_add(1, Ordering::SeqCst);
            }
        });
    let mut stream = bus
        .subscription(EventType::TaskCompleted)
        .project_id(9)
        .stream(8);
    bus.publish_blocking(Event::new(EventType::TaskCompleted).with_project(8));
    bus.publish_blocking(Event::new(EventType::TaskCompleted).with_project(9));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(stream.try_recv().unwrap().project_id, Some(9));
    assert!(stream.try_recv().is_err());
}

#[test]
fn handler_unsubscribing_a_later_handler_skips_it_in_the_same_dispatch() {
    within(Duration::from_secs(30), || {
        let bus = EventBus::new();
        let later_calls = counter();
        let later_id: Arc<OnceLock<SubscriptionId>> = Arc::new(OnceLock::new());
        let (inner, later) = (bus.clone(), Arc::clone(&later_id));
        bus.subscribe(EventType::TaskAssigned, move |_e: &Event| {
            if let Some(id) = later.get() {
                inner.unsubscribe(*id);
            }
        });
        let l = Arc::clone(&later_calls);
        // Field-filtered, so the skip must also hold for a scoped subscriber.
        let id = bus
            .subscription(EventType::TaskAssigned)
            .circle_id(1)
            .handler(move |_e: &Event| {
                l.fetch_add(1, Ordering::SeqCst);
            });
        later_id.set(id).unwrap();
        let outcome = bus.publish_blocking(Event::new(EventType::TaskAssigned).with_circle(1));
        assert_eq!(
            outcome,
            PublishOutcome {
                delivered: 1,
                failed: 0,
                retrying: 0,
            }
        );
        assert_eq!(later_calls.load(Ordering::SeqCst), 0);
        assert_eq!(bus.stats().active_subscribers, 1);
        bus.publish_blocking(Event::new(EventType::TaskAssigned).with_circle(1));
        assert_eq!(later_calls.load(Ordering::SeqCst), 0);
        bus.reset();
    });
}

#[test]
fn async_handler_unsubscribing_a_later_async_handler_skips_it() {
    let bus = EventBus::new();
    let later_calls = counter();
    let later_id: Arc<OnceLock<SubscriptionId>> = Arc::new(OnceLock::new());
    let (inner, later) = (bus.clone(), Arc::clone(&later_id));
    // A sync handler runs during the fan-out, before the async one is started.
    bus.subscribe(EventType::TaskAssigned, move |_e: &Event| {
        inner.unsubscribe(*later.get().unwrap());
    });
    let l = Arc::clone(&later_calls);
    let id = bus.subscribe_async(EventType::TaskAssigned, move |_e: Arc<Event>| {
        let l = Arc::clone(&l);
        async move {
            l.fetch_add(1, Ordering::SeqCst);
        }
    });
    later_id.set(id).unwrap();
    let outcome = bus.publish_blocking(Event::new(EventType::TaskAssigned));
    assert_eq!(outcome.delivered, 1);
    assert_eq!(later_calls.load(Ordering::SeqCst), 0);
    bus.reset();
}

#[test]
fn handler_may_reset_the_bus() {
    within(Duration::from_secs(30), || {
        let bus = EventBus::new();
        let inner = bus.clone();
        let later = counter();
        bus.subscribe(EventType::SystemError, move |_e: &Event| inner.reset());
        let l = Arc::clone(&later);
        bus.subscribe(EventType::SystemError, move |_e: &Event| {
            l.fetch_add(1, Ordering::SeqCst);
        });
        bus.publish_blocking(Event::new(EventType::SystemError));
        // reset deactivated the later subscriber before the dispatch reached it.
        assert_eq!(later.load(Ordering::SeqCst), 0);
        assert_eq!(bus.stats().active_subscribers, 0);
        assert_eq!(
            bus.publish_blocking(Event::new(EventType::SystemError))
                .delivered,
            0
        );
    });
}

// ---------------------------------------------------------------- ordering

#[test]
fn sequential_publishes_arrive_in_order_sync() {
    let bus = EventBus::new();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = Arc::clone(&seen);
    bus.subscribe(EventType::ConversationMessage, move |e: &Event| {
        s.lock().unwrap().push(e.data["seq"].as_u64().unwrap());
    });
    for seq in 0..1000u64 {
        bus.publish_blocking(
            Event::new(EventType::ConversationMessage).with_data(json!({"seq": seq})),
        );
    }
    assert_eq!(*seen.lock().unwrap(), (0..1000).collect::<Vec<_>>());
}

#[test]
fn sequential_publishes_arrive_in_order_async() {
    let bus = EventBus::new();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = Arc::clone(&seen);
    bus.subscribe_async(EventType::ConversationMessage, move |e: Arc<Event>| {
        let s = Arc::clone(&s);
        async move {
            // Later sequence numbers sleep less: order must still hold.
            let seq = e.data["seq"].as_u64().unwrap();
            tokio::time::sleep(Duration::from_micros(200 - seq)).await;
            s.lock().unwrap().push(seq);
        }
    });
    runtime().block_on(async {
        for seq in 0..200u64 {
            bus.publish(Event::new(EventType::ConversationMessage).with_data(json!({"seq": seq})))
                .await;
        }
    });
    assert_eq!(*seen.lock().unwrap(), (0..200).collect::<Vec<_>>());
}

// ------------------------------------------------- hostile handler values

struct DisplayPanics;

impl std::fmt::Display for DisplayPanics {
    fn fmt(&self, _f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        panic!("Display of the error panicked")
    }
}

/// A future that is ready at once and panics when dropped.
struct DropPanics;

impl Future for DropPanics {
    type Output = ();
    fn poll(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        std::task::Poll::Ready(())
    }
}

impl Drop for DropPanics {
    fn drop(&mut self) {
        panic!("future drop panicked");
    }
}

#[test]
fn an_error_whose_display_panics_is_a_failure() {
    let bus = EventBus::new();
    bus.subscribe(
        EventType::SystemError,
        |_e: &Event| -> Result<(), DisplayPanics> { Err(DisplayPanics) },
    );
    bus.subscribe_async(EventType::SystemError, |_e: Arc<Event>| async {
        Err::<(), _>(DisplayPanics)
    });
    let ok = counter();
    let o = Arc::clone(&ok);
    bus.subscribe(EventType::SystemError, move |_e: &Event| {
        o.fetch_add(1, Ordering::SeqCst);
    });
    let outcome = bus.publish_blocking(Event::new(EventType::SystemError));
    assert_eq!(
        outcome,
        PublishOutcome {
            delivered: 1,
            failed: 2,
            retrying: 0,
        }
    );
    assert_eq!(ok.load(Ordering::SeqCst), 1);
}

#[test]
fn a_future_whose_drop_panics_is_contained_and_counted_as_failed() {
    let bus = EventBus::new();
    bus.subscribe_async(EventType::SystemError, |_e: Arc<Event>| DropPanics);
    let ok = counter();
    let o = Arc::clone(&ok);
    bus.subscribe(EventType::SystemError, move |_e: &Event| {
        o.fetch_add(1, Ordering::SeqCst);
    });
    // The bus drops a handler's future within the poll that completes it, so
    // a panic in its Drop is that handler's panic: a failure, not a delivery.
    // The other handler is unaffected.
    let expected = PublishOutcome {
        delivered: 1,
        failed: 1,
        retrying: 0,
    };
    assert_eq!(
        bus.publish_blocking(Event::new(EventType::SystemError)),
        expected
    );
    assert_eq!(ok.load(Ordering::SeqCst), 1);
    assert_eq!(
        runtime().block_on(bus.publish(Event::new(EventType::SystemError))),
        expected
    );
    assert_eq!(ok.load(Ordering::SeqCst), 2);
    let stats = bus.stats();
    assert_eq!((stats.events_delivered, stats.handler_errors), (2, 2));
}

#[test]
fn a_future_whose_drop_panics_after_a_pending_poll_fails() {
    let bus = EventBus::new();
    bus.subscribe_async(EventType::SystemError, |_e: Arc<Event>| async {
        let _armed = PanicOnDrop;
        YieldOnce::default().await;
    });
    // Completed on a later poll, by the publish future: still a failure.
    let failed = PublishOutcome {
        delivered: 0,
        failed: 1,
        retrying: 0,
    };
    assert_eq!(
        bus.publish_blocking(Event::new(EventType::SystemError)),
        failed
    );
    assert_eq!(
        runtime().block_on(bus.publish(Event::new(EventType::SystemError))),
        failed
    );
    let stats = bus.stats();
    assert_eq!((stats.events_delivered, stats.handler_errors), (0, 2));
}

#[test]
fn cancelling_a_publish_whose_future_drop_panics_is_contained() {
    let bus = EventBus::new();
    let future_dropped = Arc::new(AtomicBool::new(false));
    let d = Arc::clone(&future_dropped);
    bus.subscribe_async(EventType::SystemError, move |_e: Arc<Event>| {
        // Dropped in reverse order: the flag is set, then the drop panics.
        let armed = (PanicOnDrop, SetOnDrop(Arc::clone(&d)));
        async move {
            let _armed = armed;
            std::future::pending::<()>().await;
        }
    });
    let mut future = Box::pin(bus.publish(Event::new(EventType::SystemError)));
    let waker = futures::task::noop_waker();
    let mut cx = std::task::Context::from_waker(&waker);
    assert!(future.as_mut().poll(&mut cx).is_pending());
    assert_eq!(Arc::strong_count(&future_dropped), 3);
    let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(future)));
    assert!(dropped.is_ok(), "dropping the publish future panicked");
    assert!(
        future_dropped.load(Ordering::SeqCst),
        "the cancelled handler's future was not dropped"
    );
    assert_eq!(
        Arc::strong_count(&future_dropped),
        2,
        "the cancelled future's captures were not released"
    );
    assert_eq!(
        bus.publish_blocking(Event::new(EventType::TaskCreated)),
        PublishOutcome::default()
    );
}

/// Panics when dropped: stands for a handler capture with a hostile `Drop`.
/// Subscribes to `TaskCreated` a handler, sync or async, that holds
/// `capture` and unsubscribes itself when called.
fn subscribe_self_removing<C: Send + Sync + 'static>(
    bus: &EventBus,
    asynchronous: bool,
    capture: C,
) -> SubscriptionId {
    let own_id: Arc<OnceLock<SubscriptionId>> = Arc::new(OnceLock::new());
    let (inner, me) = (bus.clone(), Arc::clone(&own_id));
    let id = if asynchronous {
        bus.subscribe_async(EventType::TaskCreated, move |_e: Arc<Event>| {
            let _ = &capture;
            let (bus, me) = (inner.clone(), Arc::clone(&me));
            async move {
                bus.unsubscribe(*me.get().unwrap());
            }
        })
    } else {
        bus.subscribe(EventType::TaskCreated, move |_e: &Event| {
            let _ = &capture;
            inner.unsubscribe(*me.get().unwrap());
        })
    };
    own_id.set(id).unwrap();
    id
}

#[test]
fn handler_unsubscribing_itself_with_a_capture_whose_drop_panics() {
    for asynchronous in [false, true] {
        let bus = EventBus::new();
        subscribe_self_removing(&bus, asynchronous, PanicOnDrop);
        let published = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            bus.publish_blocking(Event::new(EventType::TaskCreated))
        }));
        let outcome = published.expect("publish panicked");
        assert_eq!(outcome.delivered, 1, "async: {asynchronous}");
        assert_eq!(bus.stats().active_subscribers, 0, "async: {asynchronous}");
    }
}

#[test]
fn async_handler_may_publish_blocking_under_publish_blocking() {
    let bus = EventBus::new();
    let inner_calls = counter();
    let c = Arc::clone(&inner_calls);
    bus.subscribe_async(EventType::TaskCompleted, move |_e: Arc<Event>| {
        let c = Arc::clone(&c);
        async move {
            c.fetch_add(1, Ordering::SeqCst);
        }
    });
    let inner = bus.clone();
    bus.subscribe_async(EventType::TaskCreated, move |_e: Arc<Event>| {
        let bus = inner.clone();
        async move {
            let outcome = bus.publish_blocking(Event::new(EventType::TaskCompleted));
            assert_eq!(outcome.delivered, 1);
        }
    });
    let outcome = within(Duration::from_secs(30), {
        let bus = bus.clone();
        move || bus.publish_blocking(Event::new(EventType::TaskCreated))
    });
    assert_eq!(
        outcome,
        PublishOutcome {
            delivered: 1,
            failed: 0,
            retrying: 0,
        }
    );
    assert_eq!(inner_calls.load(Ordering::SeqCst), 1);
    bus.reset();
}

#[test]
fn publish_blocking_inside_another_executor() {
    let bus = EventBus::new();
    bus.subscribe_async(EventType::TaskCreated, |_e: Arc<Event>| async {
        tokio::task::yield_now().await;
    });
    let outcome = within(Duration::from_secs(30), {
        let bus = bus.clone();
        move || {
            futures::executor::block_on(async {
                bus.publish_blocking(Event::new(EventType::TaskCreated))
            })
        }
    });
    assert_eq!(
        outcome,
        PublishOutcome {
            delivered: 1,
            failed: 0,
            retrying: 0,
        }
    );
}
