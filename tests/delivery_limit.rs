//! The bus-wide handler limit changed at run time
//! (`EventBus::set_max_concurrent_handlers`): set on a bus built without
//! one, raised, lowered and removed while calls run and publishers wait,
//! reaching async handlers subscribed before it, and handlers that publish
//! under it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentbus::{Event, EventBus, EventType, PublishOutcome};
use futures::executor::block_on;
use tokio::sync::Semaphore;

mod common;
use common::{counter, within};

const TYPE: EventType = EventType::TaskCompleted;

/// Async handlers that run until the test lets them go: how many started,
/// how many run now, the most at once.
struct Gated {
    started: AtomicUsize,
    now: AtomicUsize,
    most: AtomicUsize,
    /// One permit lets one waiting handler finish.
    gate: Semaphore,
}

impl Gated {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            started: AtomicUsize::new(0),
            now: AtomicUsize::new(0),
            most: AtomicUsize::new(0),
            gate: Semaphore::new(0),
        })
    }

    /// Subscribes `count` gated async handlers to [`TYPE`], plain and
    /// wrapped in turn.
    fn subscribe(self: &Arc<Self>, bus: &EventBus, count: usize) {
        for i in 0..count {
            let gated = Arc::clone(self);
            let handler = move |_e: Arc<Event>| {
                let gated = Arc::clone(&gated);
                async move {
                    gated.started.fetch_add(1, Ordering::SeqCst);
                    let now = gated.now.fetch_add(1, Ordering::SeqCst) + 1;
                    gated.most.fetch_max(now, Ordering::SeqCst);
                    gated.gate.acquire().await.expect("gate open").forget();
                    gated.now.fetch_sub(1, Ordering::SeqCst);
                }
            };
            subscribe_plain_or_wrapped(bus, i, handler);
        }
    }

    fn started(&self) -> usize {
        self.started.load(Ordering::SeqCst)
    }

    fn now(&self) -> usize {
        self.now.load(Ordering::SeqCst)
    }

    fn most(&self) -> usize {
        self.most.load(Ordering::SeqCst)
    }

    fn release(&self, calls: usize) {
        self.gate.add_permits(calls);
    }
}

/// Subscribes `handler` to [`TYPE`]: the `i`-th of a set, plain if `i` is
/// even, else with a timeout, so it gets the delivery wrapper; the limit
/// must reach both.
fn subscribe_plain_or_wrapped<F, Fut>(bus: &EventBus, i: usize, handler: F)
where
    F: Fn(Arc<Event>) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    if i % 2 == 0 {
        bus.subscribe_async(TYPE, handler);
    } else {
        bus.subscription(TYPE)
            .timeout(Duration::from_secs(60))
            .async_handler(handler);
    }
}

/// Waits until `holds` (at most 10 s, else fails naming `what`).
fn eventually(what: &str, holds: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !holds() {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Checks that `holds` stays true for a while (nothing starts that should
/// not).
fn stays(what: &str, holds: impl Fn() -> bool) {
    for _ in 0..50 {
        assert!(holds(), "no longer: {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Publishes one event on a thread of its own (`publish_blocking`: the
/// thread parks while its handlers wait for permits).
fn publish_on_a_thread(bus: &EventBus) -> std::thread::JoinHandle<PublishOutcome> {
    let bus = bus.clone();
    std::thread::spawn(move || bus.publish_blocking(Event::new(TYPE)))
}

/// A bus built with `limit` and `handlers` gated handlers, and one publish
/// to them running on its own thread.
fn publishing_to_gated(
    limit: usize,
    handlers: usize,
) -> (
    EventBus,
    Arc<Gated>,
    std::thread::JoinHandle<PublishOutcome>,
) {
    let bus = EventBus::builder().max_concurrent_handlers(limit).build();
    let gated = Gated::new();
    gated.subscribe(&bus, handlers);
    let publish = publish_on_a_thread(&bus);
    (bus, gated, publish)
}

#[test]
fn smoke() {
    let bus = EventBus::new();
    let (in_flight, most) = (counter(), counter());
    let watch = (Arc::clone(&in_flight), Arc::clone(&most));
    bus.subscribe_async(TYPE, move |_e: Arc<Event>| {
        let (in_flight, most) = (Arc::clone(&watch.0), Arc::clone(&watch.1));
        async move {
            most.fetch_max(
                in_flight.fetch_add(1, Ordering::SeqCst) + 1,
                Ordering::SeqCst,
            );
            tokio::task::yield_now().await;
            in_flight.fetch_sub(1, Ordering::SeqCst);
        }
    });
    bus.set_max_concurrent_handlers(Some(1));
    assert_eq!(bus.max_concurrent_handlers(), Some(1));
    let both = block_on(futures::future::join(
        bus.publish(Event::new(TYPE)),
        bus.publish(Event::new(TYPE)),
    ));
    assert_eq!(both.0.delivered + both.1.delivered, 2);
    assert_eq!(most.load(Ordering::SeqCst), 1);
}

#[test]
fn zero_is_taken_as_one_at_build_and_at_run_time() {
    let bus = EventBus::builder().max_concurrent_handlers(0).build();
    assert_eq!(bus.max_concurrent_handlers(), Some(1));
    bus.set_max_concurrent_handlers(Some(7));
    assert_eq!(bus.max_concurrent_handlers(), Some(7));
    bus.set_max_concurrent_handlers(Some(0));
    assert_eq!(bus.max_concurrent_handlers(), Some(1));
    bus.set_max_concurrent_handlers(None);
    assert_eq!(bus.max_concurrent_handlers(), None);
}

/// The pytest suite's case on the core: 10 slow handlers (plain and
/// wrapped, subscribed before the limit existed), limit 3, three publishes
/// at once.
#[test]
fn a_limit_set_at_run_time_bounds_10_slow_handlers_subscribed_before_it() {
    let bus = EventBus::new();
    let in_flight = Arc::new((AtomicUsize::new(0), AtomicUsize::new(0)));
    let done = counter();
    for i in 0..10 {
        let (in_flight, done) = (Arc::clone(&in_flight), Arc::clone(&done));
        let handler = move |_e: Arc<Event>| {
            let (in_flight, done) = (Arc::clone(&in_flight), Arc::clone(&done));
            async move {
                let now = in_flight.0.fetch_add(1, Ordering::SeqCst) + 1;
                in_flight.1.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                in_flight.0.fetch_sub(1, Ordering::SeqCst);
                done.fetch_add(1, Ordering::SeqCst);
            }
        };
        subscribe_plain_or_wrapped(&bus, i, handler);
    }
    let runtime = common::runtime();
    let publish_three = || {
        runtime.block_on(async {
            let publishes = (0..3).map(|_| bus.publish(Event::new(TYPE)));
            futures::future::join_all(publishes).await
        })
    };
    // Unlimited, the three publishes run all 30 calls at once.
    let unlimited = publish_three();
    assert!(unlimited.iter().all(|o| o.delivered == 10), "{unlimited:?}");
    assert_eq!(in_flight.1.swap(0, Ordering::SeqCst), 30);

    bus.set_max_concurrent_handlers(Some(3));
    let limited = publish_three();
    assert!(limited.iter().all(|o| o.delivered == 10), "{limited:?}");
    assert_eq!(done.load(Ordering::SeqCst), 60);
    assert_eq!(in_flight.1.load(Ordering::SeqCst), 3);
}

#[test]
fn raising_the_limit_starts_waiting_calls_at_once() {
    let (bus, gated, publish) = publishing_to_gated(1, 5);
    eventually("one call started", || gated.started() == 1);
    stays("one call at most", || gated.started() == 1);
    bus.set_max_concurrent_handlers(Some(3));
    eventually("three calls running", || gated.now() == 3);
    stays("three calls at most", || gated.started() == 3);
    gated.release(5);
    assert_eq!(publish.join().unwrap().delivered, 5);
    assert_eq!(gated.most(), 3);
}

#[test]
fn lowering_the_limit_lets_calls_in_flight_finish_and_starts_none_until_below_it() {
    let (bus, gated, publish) = publishing_to_gated(4, 6);
    eventually("four calls running", || gated.now() == 4);
    bus.set_max_concurrent_handlers(Some(2));
    assert_eq!(bus.max_concurrent_handlers(), Some(2));
    stays("the four keep running, none starts", || {
        gated.now() == 4 && gated.started() == 4
    });
    gated.release(2);
    eventually("two calls finished", || gated.now() == 2);
    stays("two running is not below the limit of 2", || {
        gated.started() == 4
    });
    gated.release(1);
    eventually("the fifth call started", || gated.started() == 5);
    stays("two at most", || gated.now() <= 2 && gated.started() == 5);
    gated.release(3);
    let outcome = publish.join().unwrap();
    assert_eq!(outcome.delivered, 6);
    assert_eq!(gated.most(), 4);
}

#[test]
fn removing_the_limit_starts_every_waiting_call() {
    let bus = EventBus::new();
    let gated = Gated::new();
    gated.subscribe(&bus, 5);
    bus.set_max_concurrent_handlers(Some(1));
    let publish = publish_on_a_thread(&bus);
    eventually("one call started", || gated.started() == 1);
    stays("one call at most", || gated.started() == 1);
    bus.set_max_concurrent_handlers(None);
    assert_eq!(bus.max_concurrent_handlers(), None);
    eventually("all five running", || gated.now() == 5);
    gated.release(5);
    assert_eq!(publish.join().unwrap().delivered, 5);

    // And a limit set again counts from there.
    bus.set_max_concurrent_handlers(Some(2));
    let publish = publish_on_a_thread(&bus);
    eventually("two calls started", || gated.started() == 7);
    stays("two calls at most", || gated.started() == 7);
    gated.release(5);
    assert_eq!(publish.join().unwrap().delivered, 5);
}

#[test]
fn sync_handlers_take_no_permit_of_a_run_time_limit() {
    let bus = EventBus::new();
    let gated = Gated::new();
    gated.subscribe(&bus, 1);
    let (_, calls) = common::counting(&bus, EventType::TaskFailed);
    bus.set_max_concurrent_handlers(Some(1));
    let holder = publish_on_a_thread(&bus);
    eventually("the permit is held", || gated.now() == 1);
    let other = bus.clone();
    let outcome = within(Duration::from_secs(10), move || {
        other.publish_blocking(Event::new(EventType::TaskFailed))
    });
    assert_eq!((outcome.delivered, calls.load(Ordering::SeqCst)), (1, 1));
    gated.release(1);
    assert_eq!(holder.join().unwrap().delivered, 1);
}

/// A plain async handler subscribed on an unlimited bus publishes (awaited
/// and blocking) to another plain async handler after the limit is set to
/// 1: its publishes run under its own permit.
#[test]
fn a_handler_that_publishes_under_a_run_time_limit_of_one_does_not_deadlock() {
    let bus = EventBus::new();
    let weak = bus.downgrade();
    let chained = counter();
    let count = Arc::clone(&chained);
    bus.subscribe_async(EventType::TaskCreated, move |_e: Arc<Event>| {
        let weak = weak.clone();
        async move {
            let bus = weak.upgrade().expect("bus alive");
            let awaited = bus.publish(Event::new(EventType::TaskAssigned)).await;
            let blocking = bus.publish_blocking(Event::new(EventType::TaskAssigned));
            assert_eq!((awaited.delivered, blocking.delivered), (1, 1));
        }
    });
    bus.subscribe_async(EventType::TaskAssigned, move |_e: Arc<Event>| {
        let count = Arc::clone(&count);
        async move {
            tokio::task::yield_now().await;
            count.fetch_add(1, Ordering::SeqCst);
        }
    });
    bus.set_max_concurrent_handlers(Some(1));
    let published = within(Duration::from_secs(20), move || {
        block_on(bus.publish(Event::new(EventType::TaskCreated)))
    });
    assert_eq!((published.delivered, published.failed), (1, 0));
    assert_eq!(chained.load(Ordering::SeqCst), 2);
}

/// Under a limit, a plain async handler's failures and panics are counted
/// and kept as dead letters as on the plain path.
#[test]
fn failures_under_a_run_time_limit_are_counted_and_dead_lettered() {
    let bus = EventBus::new();
    bus.subscription(TYPE)
        .name("fails")
        .async_handler(|_e: Arc<Event>| async { Err::<(), _>("nope") });
    bus.subscription(TYPE)
        .name("panics")
        .async_handler(|_e: Arc<Event>| async {
            tokio::task::yield_now().await;
            if std::hint::black_box(true) {
                panic!("boom");
            }
        });
    bus.set_max_concurrent_handlers(Some(1));
    let outcome = within(Duration::from_secs(10), move || {
        let outcome = bus.publish_blocking(Event::new(TYPE));
        (
            outcome,
            bus.stats().handler_errors,
            bus.dead_letters().len(),
        )
    });
    assert_eq!(
        outcome,
        (
            PublishOutcome {
                delivered: 0,
                failed: 2,
                retrying: 0
            },
            2,
            2
        )
    );
}

/// One dead letter on `bus`: an async subscription to `AgentStarted` whose
/// first call fails (later ones succeed); its id, and the count of calls.
fn one_dead_letter(bus: &EventBus) -> (agentbus::DeadLetterId, Arc<AtomicUsize>) {
    let calls = counter();
    let count = Arc::clone(&calls);
    bus.subscription(EventType::AgentStarted)
        .async_handler(move |_e: Arc<Event>| {
            let first = count.fetch_add(1, Ordering::SeqCst) == 0;
            async move {
                if first {
                    Err("down".to_owned())
                } else {
                    Ok(())
                }
            }
        });
    block_on(bus.publish(Event::new(EventType::AgentStarted)));
    let id = bus.dead_letters().list(&agentbus::DeadLetterQuery::new())[0].id();
    (id, calls)
}

/// A redrive is a call like any other: with the bus's only permit held by
/// a running handler, the redriven call waits for it.
#[test]
fn a_redrive_waits_for_a_permit_of_the_bus_limit() {
    let bus = EventBus::builder().max_concurrent_handlers(1).build();
    let (id, calls) = one_dead_letter(&bus);
    let dead = bus.dead_letters();

    let gated = Gated::new();
    gated.subscribe(&bus, 1);
    let publish = publish_on_a_thread(&bus);
    eventually("the gated handler holds the permit", || gated.now() == 1);
    let redrive = std::thread::spawn(move || block_on(dead.redrive(id)));
    stays("the redrive waits for the permit", || {
        calls.load(Ordering::SeqCst) == 1
    });
    gated.release(1);
    within(Duration::from_secs(20), move || {
        assert_eq!(redrive.join().unwrap(), Ok(()));
        publish.join().unwrap();
    });
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

/// A redrive from inside a handler takes no permit of its own (the handler
/// already holds one): with a limit of one it does not wait for itself.
#[test]
fn a_redrive_from_inside_a_handler_does_not_wait_for_its_own_permit() {
    let bus = EventBus::builder().max_concurrent_handlers(1).build();
    let (id, calls) = one_dead_letter(&bus);
    let dead = bus.dead_letters();
    bus.subscription(TYPE).async_handler(move |_e: Arc<Event>| {
        let dead = dead.clone();
        async move { dead.redrive(id).await.map_err(|error| error.to_string()) }
    });
    let outcome = within(Duration::from_secs(20), move || {
        bus.publish_blocking(Event::new(TYPE))
    });
    assert_eq!(outcome.delivered, 1, "{outcome:?}");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}
