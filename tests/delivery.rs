//! Reliable delivery: retries, timeouts, dead letters and redrive,
//! concurrency limits, per-key ordering, and handlers that publish under
//! them.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentbus::{DeadLetterQuery, Event, EventBus, EventType, PublishOutcome, RedriveError, Retry};
use futures::executor::block_on;
use serde_json::json;

mod common;
use common::{counter, settle, within, PanicOnDrop, YieldOnce};

const TYPE: EventType = EventType::TaskCompleted;

fn fast(attempts: u32) -> Retry {
    Retry::attempts(attempts).delay(Duration::from_millis(1))
}

/// Tracks how many calls run at once and the most there ever were.
#[derive(Default)]
struct InFlight {
    now: AtomicUsize,
    most: AtomicUsize,
}

impl InFlight {
    fn enter(&self) {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
    }

    fn leave(&self) {
        self.now.fetch_sub(1, Ordering::SeqCst);
    }

    fn most(&self) -> usize {
        self.most.load(Ordering::SeqCst)
    }
}

#[test]
fn smoke() {
    let bus = EventBus::new();
    let calls = counter();
    let seen = Arc::clone(&calls);
    bus.subscription(TYPE).name("flaky").retry(fast(2)).handler(
        move |_e: &Event| -> Result<(), String> {
            match seen.fetch_add(1, Ordering::SeqCst) {
                0 => Err("first call fails".into()),
                _ => Ok(()),
            }
        },
    );
    let outcome = bus.publish_blocking(Event::new(TYPE));
    assert_eq!(
        outcome,
        PublishOutcome {
            delivered: 0,
            failed: 0,
            retrying: 1
        }
    );
    settle(&bus);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    let stats = bus.stats();
    assert_eq!((stats.retries, stats.events_delivered), (1, 1));
    assert_eq!((stats.dead_letters, stats.retries_pending), (0, 0));
}

#[test]
fn failing_twice_then_succeeding_with_three_attempts_is_called_three_times() {
    let bus = EventBus::new();
    let calls = Arc::new(AtomicU32::new(0));
    let seen = Arc::clone(&calls);
    bus.subscription(TYPE)
        .retry(fast(3))
        .async_handler(move |_e: Arc<Event>| {
            let attempt = seen.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                if attempt < 3 {
                    Err(format!("attempt {attempt} failed"))
                } else {
                    Ok(())
                }
            }
        });
    let outcome = block_on(bus.publish(Event::new(TYPE)));
    assert_eq!(outcome.retrying, 1);
    settle(&bus);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert!(bus.dead_letters().is_empty());
    assert_eq!(bus.stats().retries, 2);
    assert_eq!(bus.stats().dead_lettered, 0);
}

#[test]
fn always_failing_lands_once_with_its_attempts_and_error() {
    let bus = EventBus::new();
    bus.subscription(TYPE)
        .name("metrics exporter")
        .retry(fast(3))
        .handler(|_e: &Event| -> Result<(), String> { Err("exporter down".into()) });
    let event = Arc::new(Event::new(TYPE));
    bus.publish_blocking(Arc::clone(&event));
    settle(&bus);
    let dead = bus
        .dead_letters()
        .list(&DeadLetterQuery::new().subscription("metrics exporter"));
    assert_eq!(dead.len(), 1);
    let letter = &dead[0];
    assert_eq!(letter.event().id, event.id);
    assert_eq!(letter.attempts(), 3);
    assert_eq!(letter.error(), "exporter down");
    assert_eq!(letter.subscription_name(), Some("metrics exporter"));
    assert!(letter.first_failed_at() <= letter.last_failed_at());
    let stats = bus.stats();
    assert_eq!((stats.dead_lettered, stats.dead_letters), (1, 1));
    assert_eq!(stats.handler_errors, 1);
}

#[test]
fn a_panicking_handler_is_retried_and_dead_lettered_with_the_panic_message() {
    let bus = EventBus::new();
    bus.subscription(TYPE)
        .retry(fast(2))
        .handler::<_, ()>(|_e: &Event| panic!("boom"));
    bus.publish_blocking(Event::new(TYPE));
    settle(&bus);
    let dead = bus.dead_letters().list(&DeadLetterQuery::new());
    assert_eq!((dead.len(), dead[0].error()), (1, "panicked: boom"));
}

/// After `bus.settled()`: the only dead letter is the subscription named
/// "panicking" after two attempts, `retried` deliveries were retried, and
/// (with the test's one plain subscriber) `retried` deliveries succeeded.
fn assert_panicking_dead_lettered_after_retries(bus: &EventBus, retried: u64) {
    let dead = bus.dead_letters().list(&DeadLetterQuery::new());
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (
            dead[0].subscription_name(),
            dead[0].error(),
            dead[0].attempts()
        ),
        (Some("panicking"), "panicked: boom", 2)
    );
    let stats = bus.stats();
    assert_eq!((stats.retries, stats.dead_lettered), (retried, 1));
    assert_eq!((stats.events_delivered, stats.handler_errors), (retried, 1));
}

/// A sync handler with only a retry policy is called inline by the fan-out
/// (no wrapper): its `Err` and its panic each count as retrying, the
/// subscribers after it are still called in the same publish, and a retry
/// still runs (with the handler it had) after the subscription is removed.
#[test]
fn inline_sync_retries_count_as_retrying_and_outlive_unsubscribe() {
    let bus = EventBus::new();
    let calls = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&calls);
    let erring =
        bus.subscription(TYPE)
            .retry(fast(2))
            .handler(move |_e: &Event| -> Result<(), String> {
                let mut log = log.lock().unwrap();
                log.push("erring");
                if log.len() == 1 {
                    Err("first call fails".into())
                } else {
                    Ok(())
                }
            });
    let panics = counter();
    let count = Arc::clone(&panics);
    bus.subscription(TYPE)
        .name("panicking")
        .retry(fast(2))
        .timeout(Duration::from_millis(1))
        .handler::<_, ()>(move |_e: &Event| {
            count.fetch_add(1, Ordering::SeqCst);
            panic!("boom")
        });
    let after = counter();
    let seen = Arc::clone(&after);
    bus.subscribe(TYPE, move |_e: &Event| {
        seen.fetch_add(1, Ordering::SeqCst);
    });
    let outcome = bus.publish_blocking(Event::new(TYPE));
    assert_eq!(
        outcome,
        PublishOutcome {
            delivered: 1,
            failed: 0,
            retrying: 2
        }
    );
    assert_eq!(after.load(Ordering::SeqCst), 1);
    assert!(bus.unsubscribe(erring));
    settle(&bus);
    assert_eq!(*calls.lock().unwrap(), ["erring", "erring"]);
    assert_eq!(panics.load(Ordering::SeqCst), 2);
    assert_panicking_dead_lettered_after_retries(&bus, 2);
}

/// An async handler with only a retry policy is made and polled by the
/// publish like a plain one; every way its first attempt can fail (`Err` at
/// the first poll, a panic making the future, a panic polling it, `Err`
/// after being pending) is retried in the background, counted as retrying,
/// and the retry outlives an unsubscribe.
#[test]
fn inline_async_retries_count_as_retrying_and_outlive_unsubscribe() {
    let bus = EventBus::new();
    let calls = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&calls);
    let erring = bus
        .subscription(TYPE)
        .retry(fast(2))
        .async_handler(move |_e: Arc<Event>| {
            let first = {
                let mut log = log.lock().unwrap();
                log.push("erring");
                log.len() == 1
            };
            async move {
                if first {
                    Err("first call fails".to_owned())
                } else {
                    Ok(())
                }
            }
        });
    let making = counter();
    let count = Arc::clone(&making);
    bus.subscription(TYPE)
        .retry(fast(2))
        .async_handler(move |_e: Arc<Event>| {
            if count.fetch_add(1, Ordering::SeqCst) == 0 {
                panic!("panicked making the future");
            }
            async {}
        });
    let pending = counter();
    let count = Arc::clone(&pending);
    bus.subscription(TYPE)
        .retry(fast(2))
        .async_handler(move |_e: Arc<Event>| {
            let first = count.fetch_add(1, Ordering::SeqCst) == 0;
            async move {
                YieldOnce::default().await;
                if first {
                    Err("failed on a later poll")
                } else {
                    Ok(())
                }
            }
        });
    let panics = counter();
    let count = Arc::clone(&panics);
    bus.subscription(TYPE)
        .name("panicking")
        .retry(fast(2))
        .async_handler(move |_e: Arc<Event>| {
            count.fetch_add(1, Ordering::SeqCst);
            async {
                if true {
                    panic!("boom");
                }
            }
        });
    let after = counter();
    let seen = Arc::clone(&after);
    bus.subscribe_async(TYPE, move |_e: Arc<Event>| {
        seen.fetch_add(1, Ordering::SeqCst);
        async {}
    });
    let outcome = block_on(bus.publish(Event::new(TYPE)));
    let counts = (outcome.delivered, outcome.failed, outcome.retrying);
    assert_eq!((counts, after.load(Ordering::SeqCst)), ((1, 0, 4), 1));
    assert!(bus.unsubscribe(erring));
    settle(&bus);
    assert_eq!(*calls.lock().unwrap(), ["erring", "erring"]);
    let calls = [&making, &pending, &panics].map(|count| count.load(Ordering::SeqCst));
    assert_eq!(calls, [2, 2, 2]);
    assert_panicking_dead_lettered_after_retries(&bus, 4);
}

/// A managed async handler with nothing to wait for is polled once at
/// once; one still pending there must be woken through the publish's own
/// waker afterwards, or this publish would never finish.
#[test]
fn a_managed_async_handler_pending_at_first_is_woken_and_delivered() {
    let bus = EventBus::new();
    let (send, receive) = std::sync::mpsc::channel::<futures::channel::oneshot::Sender<()>>();
    bus.subscription(TYPE)
        .retry(fast(2))
        .async_handler(move |_e: Arc<Event>| {
            let (fire, fired) = futures::channel::oneshot::channel();
            send.send(fire).unwrap();
            async move { fired.await.map_err(|_| "sender dropped") }
        });
    std::thread::spawn(move || {
        let fire = receive.recv().unwrap();
        std::thread::sleep(Duration::from_millis(20));
        fire.send(()).unwrap();
    });
    within(Duration::from_secs(20), move || {
        let outcome = block_on(bus.publish(Event::new(TYPE)));
        assert_eq!((outcome.delivered, outcome.retrying), (1, 0));
    });
}

#[test]
fn redrive_after_fixing_the_handler_delivers_exactly_once() {
    let bus = EventBus::new();
    let fixed = Arc::new(AtomicBool::new(false));
    let delivered = counter();
    let (is_fixed, count) = (Arc::clone(&fixed), Arc::clone(&delivered));
    bus.subscription(TYPE)
        .name("exporter")
        .retry(fast(2))
        .handler(move |_e: &Event| -> Result<(), String> {
            if !is_fixed.load(Ordering::SeqCst) {
                return Err("down".into());
            }
            count.fetch_add(1, Ordering::SeqCst);
            Ok(())
        });
    bus.publish_blocking(Event::new(TYPE));
    settle(&bus);
    let dead = bus.dead_letters();
    let id = dead.list(&DeadLetterQuery::new())[0].id();

    // Still broken: the letter stays, one attempt more.
    assert_eq!(
        block_on(dead.redrive(id)),
        Err(RedriveError::FailedAgain {
            error: "down".into()
        })
    );
    assert_eq!(dead.get(id).map(|letter| letter.attempts()), Some(3));

    fixed.store(true, Ordering::SeqCst);
    // Two redrives of one id at once: one delivers, the other finds nothing.
    let (first, second) = block_on(futures::future::join(dead.redrive(id), dead.redrive(id)));
    assert!(first.is_ok(), "{first:?}");
    assert_eq!(second, Err(RedriveError::UnknownId(id)));
    assert_eq!(delivered.load(Ordering::SeqCst), 1);
    assert!(dead.is_empty());
    assert_eq!(block_on(dead.redrive(id)), Err(RedriveError::UnknownId(id)));
}

#[test]
fn redrive_finds_a_replaced_subscription_by_name_and_fails_without_one() {
    let bus = EventBus::new();
    let old = bus
        .subscription(TYPE)
        .name("exporter")
        .handler(|_e: &Event| -> Result<(), String> { Err("down".into()) });
    bus.publish_blocking(Event::new(TYPE));
    let dead = bus.dead_letters();
    let id = dead.list(&DeadLetterQuery::new())[0].id();
    bus.unsubscribe(old);
    assert_eq!(
        block_on(dead.redrive(id)),
        Err(RedriveError::NoSuchSubscription {
            subscription: "exporter".into()
        })
    );
    let delivered = counter();
    let count = Arc::clone(&delivered);
    bus.subscription(TYPE)
        .name("exporter")
        .handler(move |_e: &Event| {
            count.fetch_add(1, Ordering::SeqCst);
        });
    assert_eq!(block_on(dead.redrive(id)), Ok(()));
    assert_eq!(delivered.load(Ordering::SeqCst), 1);

    // Without a name, a subscription that is gone is named by its id.
    let unnamed = bus
        .subscription(EventType::AgentStarted)
        .handler(|_e: &Event| -> Result<(), String> { Err("down".into()) });
    bus.publish_blocking(Event::new(EventType::AgentStarted));
    let id = dead.list(&DeadLetterQuery::new())[0].id();
    bus.unsubscribe(unnamed);
    assert_eq!(
        block_on(dead.redrive(id)),
        Err(RedriveError::NoSuchSubscription {
            subscription: unnamed.to_string()
        })
    );
}

#[test]
fn plain_failures_are_dead_lettered_unless_the_subscription_opts_out() {
    let bus = EventBus::new();
    bus.subscription(TYPE)
        .name("kept")
        .handler(|_e: &Event| -> Result<(), String> { Err("no".into()) });
    bus.subscription(TYPE)
        .name("not kept")
        .dead_letters(false)
        .handler(|_e: &Event| -> Result<(), String> { Err("no".into()) });
    let outcome = bus.publish_blocking(Event::new(TYPE));
    assert_eq!(outcome.failed, 2);
    let dead = bus.dead_letters().list(&DeadLetterQuery::new());
    assert_eq!(dead.len(), 1);
    assert_eq!(
        (dead[0].subscription_name(), dead[0].attempts()),
        (Some("kept"), 1)
    );
    assert!(bus.dead_letters().discard(dead[0].id()));
    assert!(!bus.dead_letters().discard(dead[0].id()));
}

#[test]
fn dead_letters_stay_within_their_bound_and_count_what_they_drop() {
    let bus = EventBus::builder().dead_letter_capacity(5).build();
    bus.subscribe(TYPE, |_e: &Event| -> Result<(), String> {
        Err("no".into())
    });
    for _ in 0..8 {
        bus.publish_blocking(Event::new(TYPE));
    }
    let dead = bus.dead_letters();
    assert_eq!((dead.len(), dead.dropped()), (5, 3));
    let kept = dead.list(&DeadLetterQuery::new());
    // The oldest went: ids 4..=8 stay, and paging continues after an id.
    assert_eq!(kept.first().map(|l| l.id().get()), Some(4));
    let page = dead.list(&DeadLetterQuery::new().after(kept[2].id()).limit(10));
    assert_eq!(
        page.iter().map(|l| l.id().get()).collect::<Vec<_>>(),
        [7, 8]
    );
    assert_eq!(bus.stats().dead_lettered, 8);
}

#[test]
fn an_async_handler_past_its_timeout_fails_as_timed_out() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_time()
        .build()
        .unwrap();
    let bus = EventBus::new();
    bus.subscription(TYPE)
        .name("sleeper")
        .timeout(Duration::from_millis(20))
        .async_handler(|_e: Arc<Event>| async {
            tokio::time::sleep(Duration::from_secs(60)).await;
        });
    let started = std::time::Instant::now();
    let outcome = runtime.block_on(bus.publish(Event::new(TYPE)));
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(outcome.failed, 1);
    let dead = bus.dead_letters().list(&DeadLetterQuery::new());
    assert_eq!(dead[0].error(), "timed out");
    assert_eq!(bus.stats().timed_out, 1);
}

#[test]
fn cancelling_a_timed_publish_whose_handler_future_drop_panics_is_contained() {
    let bus = EventBus::new();
    let captured = Arc::new(());
    let capture = Arc::clone(&captured);
    bus.subscription(TYPE)
        .timeout(Duration::from_secs(60))
        .async_handler(move |_e: Arc<Event>| {
            let armed = (Arc::clone(&capture), PanicOnDrop);
            async move {
                let _armed = armed;
                std::future::pending::<()>().await;
            }
        });
    let mut future = Box::pin(bus.publish(Event::new(TYPE)));
    let waker = futures::task::noop_waker();
    let mut cx = std::task::Context::from_waker(&waker);
    assert!(future.as_mut().poll(&mut cx).is_pending());
    // The test, the handler closure and the pending future.
    assert_eq!(Arc::strong_count(&captured), 3);
    let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(future)));
    assert!(dropped.is_ok(), "dropping the publish future panicked");
    assert_eq!(
        Arc::strong_count(&captured),
        2,
        "the cancelled future's captures were not released"
    );
}

#[test]
fn retries_run_without_a_runtime_and_do_not_block_later_events() {
    let bus = EventBus::new();
    let calls = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&calls);
    bus.subscription(TYPE)
        .retry(Retry::attempts(2).delay(Duration::from_millis(50)))
        .handler(move |e: &Event| -> Result<(), String> {
            let n = e.data["n"].as_u64().unwrap_or_default();
            let mut log = log.lock().unwrap();
            let first_time = !log.contains(&n);
            log.push(n);
            if n == 0 && first_time {
                Err("not yet".into())
            } else {
                Ok(())
            }
        });
    within(Duration::from_secs(20), move || {
        let first = bus.publish_blocking(Event::new(TYPE).with_data(json!({"n": 0})));
        let second = bus.publish_blocking(Event::new(TYPE).with_data(json!({"n": 1})));
        assert_eq!((first.retrying, second.delivered), (1, 1));
        settle(&bus);
    });
    // Event 1 was handled while event 0 waited for its retry.
    assert_eq!(*calls.lock().unwrap(), [0, 1, 0]);
}

/// Half the subscriptions have only a retry policy: the fan-out calls
/// those like plain ones, and they wait for the bus's permits like them.
#[test]
fn max_concurrent_handlers_bounds_slow_handlers_across_subscriptions() {
    let bus = EventBus::builder().max_concurrent_handlers(3).build();
    let in_flight = Arc::new(InFlight::default());
    let done = counter();
    for index in 0..10 {
        let (in_flight, done) = (Arc::clone(&in_flight), Arc::clone(&done));
        let subscription = bus.subscription(TYPE);
        let subscription = if index % 2 == 0 {
            subscription.retry(fast(2))
        } else {
            subscription
        };
        subscription.async_handler(move |_e: Arc<Event>| {
            let (in_flight, done) = (Arc::clone(&in_flight), Arc::clone(&done));
            async move {
                in_flight.enter();
                tokio::time::sleep(Duration::from_millis(20)).await;
                in_flight.leave();
                done.fetch_add(1, Ordering::SeqCst);
            }
        });
    }
    let runtime = common::runtime();
    let outcome = runtime.block_on(async {
        let publishes = (0..3).map(|_| bus.publish(Event::new(TYPE)));
        futures::future::join_all(publishes).await
    });
    assert!(outcome.iter().all(|o| o.delivered == 10), "{outcome:?}");
    assert_eq!(done.load(Ordering::SeqCst), 30);
    assert_eq!(in_flight.most(), 3);
}

#[test]
fn max_concurrency_bounds_one_subscription_and_blocking_publishers_park() {
    let bus = EventBus::new();
    let in_flight = Arc::new(InFlight::default());
    let watch = Arc::clone(&in_flight);
    bus.subscription(TYPE)
        .max_concurrency(2)
        .handler(move |_e: &Event| {
            watch.enter();
            std::thread::sleep(Duration::from_millis(5));
            watch.leave();
        });
    std::thread::scope(|scope| {
        for _ in 0..6 {
            scope.spawn(|| {
                for _ in 0..5 {
                    assert_eq!(bus.publish_blocking(Event::new(TYPE)).delivered, 1);
                }
            });
        }
    });
    assert!(in_flight.most() <= 2, "{}", in_flight.most());
    assert_eq!(bus.stats().events_delivered, 30);
}

#[test]
fn ordered_by_keeps_each_key_in_order_while_keys_overlap() {
    const KEYS: i64 = 4;
    const PER_KEY: i64 = 50;
    let bus = EventBus::new();
    let seen: Arc<Mutex<Vec<Vec<i64>>>> = Arc::new(Mutex::new(vec![Vec::new(); KEYS as usize]));
    let busy_keys = Arc::new(InFlight::default());
    let per_key: Arc<Vec<AtomicUsize>> = Arc::new((0..KEYS).map(|_| AtomicUsize::new(0)).collect());
    let (log, busy, keys) = (
        Arc::clone(&seen),
        Arc::clone(&busy_keys),
        Arc::clone(&per_key),
    );
    bus.subscription(TYPE)
        .ordered_by(|e: &Event| e.circle_id)
        .async_handler(move |e: Arc<Event>| {
            let (log, busy, keys) = (Arc::clone(&log), Arc::clone(&busy), Arc::clone(&keys));
            async move {
                let key = e.circle_id.unwrap_or_default() as usize;
                assert_eq!(
                    keys[key].fetch_add(1, Ordering::SeqCst),
                    0,
                    "key {key} ran twice at once"
                );
                busy.enter();
                tokio::time::sleep(Duration::from_micros(200)).await;
                log.lock().unwrap()[key].push(e.data["n"].as_i64().unwrap_or(-1));
                busy.leave();
                keys[key].fetch_sub(1, Ordering::SeqCst);
            }
        });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    std::thread::scope(|scope| {
        for key in 0..KEYS {
            let (bus, runtime) = (&bus, &runtime);
            scope.spawn(move || {
                // The handlers' sleeps need the runtime's timer.
                let _runtime = runtime.enter();
                // Every publish of this key is in flight at once; they join
                // the lane in this order, so must be handled in it.
                let publishes = (0..PER_KEY).map(|n| {
                    bus.publish(Event::new(TYPE).with_circle(key).with_data(json!({"n": n})))
                });
                let outcomes = block_on(futures::future::join_all(publishes));
                assert!(outcomes.iter().all(|o| o.delivered == 1));
            });
        }
    });
    for (key, order) in seen.lock().unwrap().iter().enumerate() {
        assert_eq!(*order, (0..PER_KEY).collect::<Vec<_>>(), "key {key}");
    }
    assert!(busy_keys.most() > 1, "keys never overlapped");
}

#[test]
fn a_retrying_key_holds_back_only_itself() {
    let bus = EventBus::new();
    let log = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&log);
    let failed_once = Arc::new(AtomicBool::new(false));
    bus.subscription(TYPE)
        .ordered_by(|e: &Event| e.circle_id)
        .retry(
            Retry::attempts(2)
                .delay(Duration::from_millis(100))
                .jitter(false),
        )
        .handler(move |e: &Event| -> Result<(), String> {
            let n = e.data["n"].as_i64().unwrap_or(-1);
            if n == 0 && !failed_once.swap(true, Ordering::SeqCst) {
                return Err("key 1 is retrying".into());
            }
            seen.lock().unwrap().push((e.circle_id, n));
            Ok(())
        });
    within(Duration::from_secs(20), move || {
        let publish = |circle: i64, n: i64| {
            bus.publish(
                Event::new(TYPE)
                    .with_circle(circle)
                    .with_data(json!({"n": n})),
            )
        };
        // Key 1's first event fails and holds key 1; key 2 flows past it.
        assert_eq!(block_on(publish(1, 0)).retrying, 1);
        assert_eq!(block_on(publish(2, 1)).delivered, 1);
        // Key 1's next event waits for the retry, and lands after it.
        assert_eq!(block_on(publish(1, 2)).delivered, 1);
        settle(&bus);
    });
    assert_eq!(
        *log.lock().unwrap(),
        [(Some(2), 1), (Some(1), 0), (Some(1), 2)]
    );
}

#[test]
fn a_handler_that_publishes_under_a_full_limit_does_not_deadlock() {
    let bus = EventBus::builder().max_concurrent_handlers(1).build();
    let weak = bus.downgrade();
    let chained = counter();
    let count = Arc::clone(&chained);
    bus.subscription(EventType::TaskCreated)
        .max_concurrency(1)
        .ordered_by(|_e: &Event| 0)
        .async_handler(move |_e: Arc<Event>| {
            let weak = weak.clone();
            async move {
                let bus = weak.upgrade().expect("bus alive");
                // Same subscription limit, same key, same bus permit: all
                // held by this very call.
                bus.publish(Event::new(EventType::TaskAssigned)).await;
                bus.publish_blocking(Event::new(EventType::TaskAssigned));
            }
        });
    bus.subscription(EventType::TaskAssigned)
        .max_concurrency(1)
        .async_handler(move |_e: Arc<Event>| {
            let count = Arc::clone(&count);
            async move {
                count.fetch_add(1, Ordering::SeqCst);
            }
        });
    let published = within(Duration::from_secs(20), move || {
        block_on(bus.publish(Event::new(EventType::TaskCreated)))
    });
    assert_eq!(published.delivered, 1);
    assert_eq!(chained.load(Ordering::SeqCst), 2);
}

#[test]
fn dropping_a_waiting_publish_gives_its_place_back() {
    let bus = EventBus::new();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let rx = Arc::new(Mutex::new(rx));
    bus.subscription(TYPE)
        .max_concurrency(1)
        .async_handler(move |_e: Arc<Event>| {
            let rx = Arc::clone(&rx);
            async move {
                let _ = rx.lock().unwrap().recv_timeout(Duration::from_secs(10));
            }
        });
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    std::thread::scope(|scope| {
        let first = scope.spawn(|| bus.publish_blocking(Event::new(TYPE)));
        std::thread::sleep(Duration::from_millis(20));
        // Waits for the permit the first publish holds; dropped while waiting.
        let mut waiting = Box::pin(bus.publish(Event::new(TYPE)));
        assert!(waiting.as_mut().poll(&mut cx).is_pending());
        drop(waiting);
        tx.send(()).unwrap();
        assert_eq!(first.join().unwrap().delivered, 1);
    });
    // The dropped waiter left the line: a new publish gets the permit.
    tx.send(()).unwrap();
    assert_eq!(
        within(Duration::from_secs(10), move || bus
            .publish_blocking(Event::new(TYPE)))
        .delivered,
        1
    );
}

/// A dead-letter query gives back what it was built with, and each
/// criterion selects: by subscription name, by event type, after and before
/// an id, oldest or newest first, at most `limit`.
#[test]
fn dead_letter_queries_select_page_and_order_as_built() {
    use agentbus::DeadLetterId;
    let query = DeadLetterQuery::new()
        .subscription("audit")
        .event_type(EventType::AgentStarted)
        .after(DeadLetterId::new(3))
        .before(DeadLetterId::new(9))
        .newest_first()
        .limit(7);
    assert_eq!(query.get_subscription(), Some("audit"));
    assert_eq!(query.get_event_type(), Some(EventType::AgentStarted));
    assert_eq!(query.get_after(), Some(DeadLetterId::new(3)));
    assert_eq!(query.get_before(), Some(DeadLetterId::new(9)));
    assert!(query.is_newest_first());
    assert_eq!(query.max_results(), 7);
    let plain = DeadLetterQuery::new();
    assert_eq!(
        (
            plain.get_subscription(),
            plain.get_event_type(),
            plain.get_after()
        ),
        (None, None, None)
    );
    assert_eq!(
        (
            plain.get_before(),
            plain.is_newest_first(),
            plain.max_results()
        ),
        (None, false, 100)
    );
    assert_eq!(DeadLetterId::new(42).to_string(), "42");

    let bus = EventBus::new();
    for (name, event_type) in [
        ("audit", EventType::TaskCompleted),
        ("metrics", EventType::AgentStarted),
    ] {
        bus.subscription(event_type)
            .name(name)
            .handler(|_e: &Event| -> Result<(), String> { Err("down".into()) });
    }
    for circle in 0..3 {
        bus.publish_blocking(Event::new(EventType::TaskCompleted).with_circle(circle));
        bus.publish_blocking(Event::new(EventType::AgentStarted).with_circle(circle));
    }
    let dead = bus.dead_letters();
    assert!(!dead.is_empty());
    assert!(EventBus::new().dead_letters().is_empty());
    let listed = |query: DeadLetterQuery| {
        dead.list(&query)
            .iter()
            .map(|letter| {
                (
                    letter.subscription_name().map(str::to_owned),
                    letter.event().circle_id,
                )
            })
            .collect::<Vec<_>>()
    };
    let audit = |circle| (Some("audit".to_owned()), Some(circle));
    let metrics = |circle| (Some("metrics".to_owned()), Some(circle));
    assert_eq!(
        listed(DeadLetterQuery::new().subscription("audit")),
        [audit(0), audit(1), audit(2)]
    );
    assert_eq!(
        listed(DeadLetterQuery::new().event_type(EventType::AgentStarted)),
        [metrics(0), metrics(1), metrics(2)]
    );
    assert_eq!(
        listed(
            DeadLetterQuery::new()
                .subscription("audit")
                .event_type(EventType::AgentStarted)
        ),
        []
    );
    let all = dead.list(&DeadLetterQuery::new());
    assert_eq!(all.len(), 6);
    assert_eq!(
        listed(DeadLetterQuery::new().limit(2)),
        [audit(0), metrics(0)]
    );
    assert_eq!(
        listed(DeadLetterQuery::new().after(all[3].id())),
        [audit(2), metrics(2)]
    );
    assert_eq!(
        listed(DeadLetterQuery::new().before(all[2].id())),
        [audit(0), metrics(0)]
    );
    assert_eq!(
        listed(DeadLetterQuery::new().newest_first().limit(2)),
        [metrics(2), audit(2)]
    );
    assert_eq!(
        listed(
            DeadLetterQuery::new()
                .newest_first()
                .before(all[4].id())
                .subscription("metrics")
        ),
        [metrics(1), metrics(0)]
    );
}

/// An `ordered_by` key that panics fails that delivery once: one dead
/// letter naming the panic, no retry, and the next event goes on.
#[test]
fn a_panicking_ordering_key_dead_letters_the_event_once() {
    let bus = EventBus::new();
    let delivered = counter();
    let count = Arc::clone(&delivered);
    bus.subscription(TYPE)
        .name("ordered")
        .retry(fast(3))
        .ordered_by(|e: &Event| {
            assert!(e.circle_id != Some(13), "unlucky circle");
            e.circle_id
        })
        .handler(move |_e: &Event| {
            count.fetch_add(1, Ordering::SeqCst);
        });
    let outcome = block_on(bus.publish(Event::new(TYPE).with_circle(13)));
    assert_eq!(outcome.failed, 1, "{outcome:?}");
    settle(&bus);
    let dead = bus.dead_letters().list(&DeadLetterQuery::new());
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert!(
        dead[0].error().contains("ordered_by key panicked"),
        "{}",
        dead[0].error()
    );
    assert_eq!(dead[0].attempts(), 1);
    assert_eq!(bus.stats().retries, 0);
    block_on(bus.publish(Event::new(TYPE).with_circle(1)));
    settle(&bus);
    assert_eq!(delivered.load(Ordering::SeqCst), 1);
}

/// A handler of an ordered subscription that publishes an event of the same
/// key does not wait behind itself: the nested publish skips the lane (the
/// outer call holds it), and both are delivered.
#[test]
fn a_nested_publish_of_the_same_key_does_not_wait_for_its_own_lane() {
    let bus = EventBus::new();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (inner_bus, log) = (bus.clone(), Arc::clone(&seen));
    bus.subscription(TYPE)
        .ordered_by(|e: &Event| e.circle_id)
        .handler(move |e: &Event| {
            log.lock().unwrap().push(e.data["step"].as_u64());
            if e.data["step"] == 1 {
                let inner = Event::new(TYPE)
                    .with_circle(7)
                    .with_data(json!({"step": 2}));
                let outcome = inner_bus.publish_blocking(inner);
                assert_eq!(outcome.delivered, 1, "{outcome:?}");
            }
        });
    within(Duration::from_secs(20), move || {
        let outer = Event::new(TYPE)
            .with_circle(7)
            .with_data(json!({"step": 1}));
        assert_eq!(bus.publish_blocking(outer).delivered, 1);
    });
    assert_eq!(*seen.lock().unwrap(), [Some(1), Some(2)]);
}
