//! Guards at the door: what a rejection does and does not do, and that a
//! bus without guards behaves exactly as before.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentbus::{
    Event, EventBus, EventId, EventType, Guard, HistoryQuery, PublishOutcome, Rejection, Violation,
};
use serde_json::json;

/// Rejects events whose data has `"bad": true`.
fn no_bad(event: &Event) -> Result<(), Rejection> {
    if event.data["bad"] == true {
        return Err(Rejection::Invalid {
            violations: vec![Violation::new("/bad", "must not be true")],
        });
    }
    Ok(())
}

fn counting_bus(guard: impl Guard) -> (EventBus, Arc<AtomicUsize>) {
    let bus = EventBus::builder().guard(guard).build();
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&seen);
    bus.subscribe_all(move |_e: &Event| {
        counter.fetch_add(1, Ordering::Relaxed);
    });
    (bus, seen)
}

#[test]
fn smoke() {
    let (bus, seen) = counting_bus(no_bad);
    let good = Event::new(EventType::TaskCompleted).with_data(json!({"bad": false}));
    let bad = Event::new(EventType::TaskCompleted).with_data(json!({"bad": true}));
    let bad_id = bad.id;
    assert_eq!(
        bus.try_publish_blocking(good).unwrap(),
        PublishOutcome {
            delivered: 1,
            failed: 0,
            retrying: 0
        }
    );
    let rejected = bus.try_publish_blocking(bad).unwrap_err();
    assert_eq!(rejected.event().id, bad_id);
    assert_eq!(rejected.reason().kind(), "invalid");
    assert_eq!(
        rejected.to_string(),
        format!(
            "event {bad_id} (task.completed) rejected: invalid data: at /bad: must not be true"
        )
    );
    assert_eq!(seen.load(Ordering::Relaxed), 1);
    let stats = bus.stats();
    assert_eq!(
        (
            stats.events_published,
            stats.events_rejected,
            stats.events_invalid
        ),
        (1, 1, 1)
    );
}

#[test]
fn a_rejected_event_reaches_no_handler_and_no_history() {
    let (bus, seen) = counting_bus(no_bad);
    let bad = || Event::new(EventType::AgentStarted).with_data(json!({"bad": true}));
    let outcome = bus.publish_blocking(bad());
    assert_eq!(outcome, PublishOutcome::default());
    let outcome = futures::executor::block_on(bus.publish(bad()));
    assert_eq!(outcome, PublishOutcome::default());
    let mut publisher = bus.publisher();
    assert!(publisher.try_publish_blocking(bad()).is_err());
    assert!(futures::executor::block_on(publisher.try_publish(bad())).is_err());
    assert_eq!(publisher.publish_blocking(bad()), PublishOutcome::default());
    assert!(futures::executor::block_on(bus.try_publish(bad())).is_err());

    assert_eq!(seen.load(Ordering::Relaxed), 0);
    assert!(bus.history(&HistoryQuery::new()).is_empty());
    let stats = bus.stats();
    assert_eq!((stats.events_published, stats.events_rejected), (0, 6));
    // A stream is a handler too: it sees nothing either.
    let mut stream = bus.stream(EventType::AgentStarted, 8);
    bus.publish_blocking(bad());
    assert!(stream.try_recv().is_err());
}

#[test]
fn guards_run_in_order_and_the_first_rejection_wins() {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let guard = |name: &'static str, reject: bool| {
        let calls = Arc::clone(&calls);
        move |_e: &Event| {
            calls.lock().unwrap().push(name);
            if reject {
                Err(Rejection::custom(name, "no"))
            } else {
                Ok(())
            }
        }
    };
    let bus = EventBus::builder()
        .guard(guard("a", false))
        .guard(guard("b", true))
        .guard(guard("c", true))
        .build();
    let rejected = bus
        .try_publish_blocking(Event::new(EventType::TaskCreated))
        .unwrap_err();
    assert_eq!(rejected.reason(), &Rejection::custom("b", "no"));
    assert_eq!(*calls.lock().unwrap(), ["a", "b"]);
}

/// Remembers what it let in; forgets what a later guard rejected.
#[derive(Default)]
struct Remember(Mutex<Vec<EventId>>);

impl Guard for Remember {
    fn check(&self, event: &Event) -> Result<(), Rejection> {
        let mut seen = self.0.lock().unwrap();
        if seen.contains(&event.id) {
            return Err(Rejection::Duplicate { of: event.id });
        }
        seen.push(event.id);
        Ok(())
    }

    fn withdraw(&self, event: &Event) {
        self.0.lock().unwrap().retain(|id| *id != event.id);
    }
}

#[test]
fn a_later_rejection_withdraws_the_event_from_earlier_guards() {
    let remember = Arc::new(Remember::default());
    let open = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let gate = Arc::clone(&open);
    let bus = EventBus::builder()
        .guard(Arc::clone(&remember))
        .guard(move |_e: &Event| {
            if gate.load(Ordering::Relaxed) {
                Ok(())
            } else {
                Err(Rejection::RateLimited {
                    retry_after: Duration::from_millis(5),
                })
            }
        })
        .build();
    let event = Arc::new(Event::new(EventType::TaskCreated));
    let rejected = bus.try_publish_blocking(Arc::clone(&event)).unwrap_err();
    assert_eq!(
        rejected.reason(),
        &Rejection::RateLimited {
            retry_after: Duration::from_millis(5)
        }
    );
    assert!(remember.0.lock().unwrap().is_empty());
    open.store(true, Ordering::Relaxed);
    // The retry is not mistaken for a duplicate of the rejected attempt...
    assert!(bus.try_publish_blocking(Arc::clone(&event)).is_ok());
    // ...but a real repeat is one.
    let again = bus.try_publish_blocking(event).unwrap_err();
    assert_eq!(again.reason().kind(), "duplicate");
    let stats = bus.stats();
    assert_eq!(
        (
            stats.events_rejected,
            stats.events_rate_limited,
            stats.events_deduplicated
        ),
        (2, 1, 1)
    );
}

#[test]
fn a_panicking_guard_rejects_and_the_bus_carries_on() {
    let (bus, seen) = counting_bus(|event: &Event| {
        if event.event_type == EventType::SystemError {
            panic!("guard bug");
        }
        Ok(())
    });
    let rejected = bus
        .try_publish_blocking(Event::new(EventType::SystemError))
        .unwrap_err();
    assert_eq!(rejected.reason().kind(), "custom");
    assert!(bus
        .try_publish_blocking(Event::new(EventType::TaskCreated))
        .is_ok());
    assert_eq!(seen.load(Ordering::Relaxed), 1);
}

#[test]
fn reset_zeroes_the_rejection_counts() {
    let (bus, _) = counting_bus(no_bad);
    bus.publish_blocking(Event::new(EventType::TaskCreated).with_data(json!({"bad": true})));
    assert_eq!(bus.stats().events_rejected, 1);
    bus.reset();
    assert_eq!(bus.stats().events_rejected, 0);
}

/// A tiny deterministic generator, so a failure replays.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % below
    }
}

/// Property: for random sequences of subscribes, unsubscribes and publishes
/// (sync, async, failing handlers, through the bus and a `Publisher`), a
/// bus without guards and one whose only guard lets everything in produce
/// the same outcomes, deliveries, history and stats; and `try_publish` on a
/// guard-free bus is `publish`.
#[test]
fn a_guard_free_bus_behaves_exactly_as_before() {
    for seed in 0..40 {
        let plain = EventBus::new();
        let guarded = EventBus::builder().guard(|_e: &Event| Ok(())).build();
        let mut rng = Lcg(seed);
        let log = |_: ()| Arc::new(Mutex::new(Vec::<(usize, EventId)>::new()));
        let (plain_log, guarded_log) = (log(()), log(()));
        let mut ids: Vec<(agentbus::SubscriptionId, agentbus::SubscriptionId)> = Vec::new();
        let mut plain_publisher = plain.publisher();
        let mut guarded_publisher = guarded.publisher();
        for step in 0..200 {
            let event_type = EventType::ALL[rng.next(4) as usize];
            match rng.next(10) {
                0 | 1 => {
                    let fail = rng.next(3) == 0;
                    let sub = |bus: &EventBus, log: &Arc<Mutex<Vec<(usize, EventId)>>>| {
                        let log = Arc::clone(log);
                        bus.subscribe(event_type, move |e: &Event| {
                            log.lock().unwrap().push((step, e.id));
                            if fail {
                                Err("failed")
                            } else {
                                Ok(())
                            }
                        })
                    };
                    ids.push((sub(&plain, &plain_log), sub(&guarded, &guarded_log)));
                }
                2 if !ids.is_empty() => {
                    let (a, b) = ids.remove(rng.next(ids.len() as u64) as usize);
                    assert_eq!(plain.unsubscribe(a), guarded.unsubscribe(b));
                }
                kind => {
                    let event = Arc::new(
                        Event::new(event_type)
                            .with_data(json!({"step": step}))
                            .with_source_agent(rng.next(3) as i64),
                    );
                    let (a, b) = match kind % 4 {
                        0 => (
                            plain.publish_blocking(Arc::clone(&event)),
                            guarded.publish_blocking(Arc::clone(&event)),
                        ),
                        1 => (
                            futures::executor::block_on(plain.publish(Arc::clone(&event))),
                            futures::executor::block_on(guarded.try_publish(Arc::clone(&event)))
                                .unwrap(),
                        ),
                        2 => (
                            plain_publisher.publish_blocking(Arc::clone(&event)),
                            guarded_publisher
                                .try_publish_blocking(Arc::clone(&event))
                                .unwrap(),
                        ),
                        _ => (
                            plain.try_publish_blocking(Arc::clone(&event)).unwrap(),
                            guarded.try_publish_blocking(Arc::clone(&event)).unwrap(),
                        ),
                    };
                    assert_eq!(a, b, "seed {seed} step {step}");
                }
            }
        }
        assert_eq!(*plain_log.lock().unwrap(), *guarded_log.lock().unwrap());
        assert_eq!(plain.stats(), guarded.stats(), "seed {seed}");
        let history = |bus: &EventBus| {
            bus.history(&HistoryQuery::new().limit(1000))
                .iter()
                .map(|e| e.id)
                .collect::<Vec<_>>()
        };
        assert_eq!(history(&plain), history(&guarded));
    }
}

#[test]
fn an_admission_publishes_without_checking_again_or_withdraws_when_dropped() {
    let remember = Arc::new(Remember::default());
    let (bus, seen) = counting_bus(Arc::clone(&remember));
    let first = bus
        .admit(Event::new(EventType::TaskCreated))
        .expect("let in");
    assert_eq!(remember.0.lock().unwrap().len(), 1);
    assert_eq!(first.publish_blocking().delivered, 1);
    assert_eq!(remember.0.lock().unwrap().len(), 1);

    let event = Arc::new(Event::new(EventType::TaskCreated));
    let dropped = bus.admit(Arc::clone(&event)).expect("let in");
    assert_eq!(dropped.event().id, event.id);
    let shown = format!("{dropped:?}");
    assert_eq!(
        shown,
        format!("Admission {{ event: Some({:?}), .. }}", event.id)
    );
    drop(dropped);
    assert_eq!(remember.0.lock().unwrap().len(), 1);
    let again = bus.admit(event).expect("withdrawn, so not a duplicate");
    assert_eq!(futures::executor::block_on(again.publish()).delivered, 1);
    assert_eq!(seen.load(Ordering::Relaxed), 2);
    assert_eq!(bus.stats().events_published, 2);
}
