//! The dedup window: the original bus's two behaviours, the window on a
//! controllable clock, ids, the memory bound.
//!
//! Every test runs under a deadline (`agentbus_testkit::deadline`): a bug
//! in the window's index (a probe that never meets a free slot, a rebuild
//! that never comes) or its lock loops for ever, and should fail here in
//! seconds, not hang.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use agentbus::{Event, EventBus, EventType, Guard, Rejection};
use agentbus_guard::{Clock, Dedup};
use agentbus_testkit::deadline::deadline;
use serde_json::json;

fn bus_with(dedup: &Dedup) -> (EventBus, Arc<AtomicUsize>) {
    let bus = EventBus::builder().guard(dedup.clone()).build();
    let delivered = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&delivered);
    bus.subscribe_all(move |_e: &Event| {
        counter.fetch_add(1, Ordering::Relaxed);
    });
    (bus, delivered)
}

fn status(n: i64) -> Event {
    Event::new(EventType::AgentToolExecuted)
        .with_source_agent(3)
        .with_circle(5)
        .with_data(json!({"tool_name": "fs_read", "n": n}))
}

/// The original's first behaviour: 10 identical rapid publishes deliver
/// once and count 9 duplicates.
#[test]
fn ten_identical_rapid_publishes_deliver_once() {
    let _deadline = deadline();
    let dedup = Dedup::window(Duration::from_secs(1));
    let (bus, delivered) = bus_with(&dedup);
    futures::executor::block_on(async {
        for _ in 0..10 {
            bus.publish(status(0)).await;
        }
    });
    assert_eq!(delivered.load(Ordering::Relaxed), 1);
    assert_eq!(dedup.deduplicated(), 9);
    assert_eq!(bus.stats().events_deduplicated, 9);
}

/// The original's second behaviour: 10 distinct payloads are all delivered.
#[test]
fn ten_distinct_payloads_are_all_delivered() {
    let _deadline = deadline();
    let dedup = Dedup::window(Duration::from_secs(1));
    let (bus, delivered) = bus_with(&dedup);
    for n in 0..10 {
        bus.publish_blocking(status(n));
    }
    assert_eq!(delivered.load(Ordering::Relaxed), 10);
    assert_eq!(dedup.deduplicated(), 0);
}

#[test]
fn agent_circle_and_type_are_part_of_the_key() {
    let _deadline = deadline();
    let dedup = Dedup::window(Duration::from_secs(1));
    let (bus, delivered) = bus_with(&dedup);
    bus.publish_blocking(status(0));
    bus.publish_blocking(status(0).with_source_agent(4));
    bus.publish_blocking(status(0).with_circle(6));
    let mut other_type = status(0);
    other_type.event_type = EventType::TaskStarted;
    bus.publish_blocking(other_type);
    assert_eq!(delivered.load(Ordering::Relaxed), 4);
}

#[test]
fn the_window_expires_on_the_clock() {
    let _deadline = deadline();
    let clock = Clock::manual();
    let dedup = Dedup::window(Duration::from_secs(1)).clock(clock.clone());
    let (bus, delivered) = bus_with(&dedup);
    let first = status(0);
    let first_id = first.id;
    bus.publish_blocking(first);
    clock.advance(Duration::from_millis(999));
    let rejected = bus.try_publish_blocking(status(0)).unwrap_err();
    assert_eq!(rejected.reason(), &Rejection::Duplicate { of: first_id });
    // A repeat does not extend the window: it runs from the first event.
    clock.advance(Duration::from_millis(1));
    assert!(bus.try_publish_blocking(status(0)).is_ok());
    assert_eq!(delivered.load(Ordering::Relaxed), 2);
    assert_eq!(dedup.len(), 1);
}

#[test]
fn a_repeated_id_is_a_duplicate_whatever_the_content() {
    let _deadline = deadline();
    let dedup = Dedup::window(Duration::from_secs(60));
    let (bus, _) = bus_with(&dedup);
    let event = status(0);
    let mut same_id = status(1);
    same_id.id = event.id;
    bus.publish_blocking(event.clone());
    let rejected = bus.try_publish_blocking(same_id).unwrap_err();
    assert_eq!(rejected.reason(), &Rejection::Duplicate { of: event.id });
}

/// At the bound the oldest is forgotten early: memory stays bounded and a
/// new event is never kept out because of it.
#[test]
fn memory_is_bounded_and_the_bound_forgets_the_oldest() {
    let _deadline = deadline();
    let dedup = Dedup::window(Duration::from_secs(3600)).capacity(100);
    for n in 0..1000 {
        dedup.check(&status(n)).unwrap();
    }
    assert_eq!(dedup.len(), 100);
    assert_eq!(dedup.forgotten_early(), 900);
    // The oldest ones were forgotten: a repeat passes.
    assert!(dedup.check(&status(0)).is_ok());
    // A recent one is still remembered.
    assert!(dedup.check(&status(999)).is_err());
}

#[test]
fn withdraw_forgets_the_event() {
    let _deadline = deadline();
    let dedup = Dedup::window(Duration::from_secs(60));
    let event = status(0);
    dedup.check(&event).unwrap();
    dedup.withdraw(&event);
    assert!(dedup.check(&event).is_ok());
    assert!(dedup.check(&event).is_err());
}

/// Two threads publishing the same 1,000 contents at once: each content is
/// let in exactly once, whichever thread wins it.
#[test]
fn two_threads_on_the_same_contents_let_each_in_once() {
    let _deadline = deadline();
    let dedup = Dedup::window(Duration::from_secs(3600)).clock(Clock::manual());
    let let_in: usize = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let dedup = dedup.clone();
                scope.spawn(move || {
                    (0..1000)
                        .filter(|&n| dedup.check(&status(n)).is_ok())
                        .count()
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).sum()
    });
    assert_eq!(let_in, 1000);
    assert_eq!(dedup.deduplicated(), 1000);
    assert_eq!(dedup.len(), 1000);
}

/// Four threads (on two cores, so a holder of the window's lock is often
/// preempted and the others wait past their spins) racing over the same
/// 20,000 events, built beforehand so the checks overlap as much as they
/// can: each is let in exactly once and every count agrees, so no two
/// threads were ever inside the window at once.
#[test]
fn four_threads_racing_on_one_window_let_each_in_once() {
    let _deadline = deadline();
    let dedup = Dedup::window(Duration::from_secs(3600)).clock(Clock::manual());
    let events: Vec<Event> = (0..20_000).map(status).collect();
    let let_in: usize = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let dedup = dedup.clone();
                let events = &events;
                scope.spawn(move || events.iter().filter(|e| dedup.check(e).is_ok()).count())
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).sum()
    });
    assert_eq!(let_in, 20_000);
    assert_eq!(dedup.deduplicated(), 60_000);
    assert_eq!(dedup.len(), 20_000);
    for event in &events {
        assert!(
            dedup.check(event).is_err(),
            "every event is still remembered"
        );
    }
}

/// Two threads publishing distinct contents past the capacity: all are let
/// in, and the window holds exactly its capacity.
#[test]
fn two_threads_on_distinct_contents_let_all_in() {
    let _deadline = deadline();
    let dedup = Dedup::window(Duration::from_secs(3600))
        .capacity(5000)
        .clock(Clock::manual());
    std::thread::scope(|scope| {
        for thread in 0..2 {
            let dedup = dedup.clone();
            scope.spawn(move || {
                for n in 0..10_000 {
                    assert!(dedup.check(&status(thread * 100_000 + n)).is_ok());
                }
            });
        }
    });
    assert_eq!(dedup.deduplicated(), 0);
    assert_eq!(dedup.len(), 5000);
    assert_eq!(dedup.forgotten_early(), 15_000);
}

/// Expired entries stay in the tables until a sweep; they never count as
/// remembered, and the same content and id are let in again.
#[test]
fn an_expired_event_is_let_in_again_by_content_and_by_id() {
    let _deadline = deadline();
    let clock = Clock::manual();
    let dedup = Dedup::window(Duration::from_secs(1)).clock(clock.clone());
    let event = status(0);
    dedup.check(&event).unwrap();
    for n in 1..500 {
        dedup.check(&status(n)).unwrap();
    }
    clock.advance(Duration::from_secs(1));
    assert!(dedup.check(&event).is_ok());
    assert_eq!(dedup.len(), 1);
    let mut same_id = status(7);
    same_id.id = event.id;
    assert_eq!(
        dedup.check(&same_id),
        Err(Rejection::Duplicate { of: event.id })
    );
}

/// Objects are compared as values: the order their keys were written in
/// does not matter, and values of different JSON kinds never match.
#[test]
fn content_is_compared_as_json_values() {
    let _deadline = deadline();
    let dedup = Dedup::window(Duration::from_secs(60));
    let with = |data| {
        Event::new(EventType::AgentToolExecuted)
            .with_source_agent(3)
            .with_data(data)
    };
    assert!(dedup
        .check(&with(json!({"a": 1, "b": [true, null]})))
        .is_ok());
    assert!(dedup
        .check(&with(json!({"b": [true, null], "a": 1})))
        .is_err());
    for distinct in [
        json!({"a": 1.0, "b": [true, null]}),
        json!({"a": -1, "b": [true, null]}),
        json!({"a": "1", "b": [true, null]}),
        json!({"a": 1, "b": [true]}),
        json!({"a": 1, "b": [[true, null]]}),
        json!({"ab": 1, "b": [true, null]}),
        json!({"a": 1, "b": [false, null]}),
        json!([1, [true, null]]),
    ] {
        assert!(dedup.check(&with(distinct.clone())).is_ok(), "{distinct}");
    }
}

/// Many windows' worth of random traffic (repeats by content and by id,
/// withdrawals, the capacity reached, time passing) against a plain model
/// of the documented rule: every decision, `len`, `forgotten_early` and
/// `deduplicated` agree, across many rebuilds of the window's index.
#[test]
fn agrees_with_a_model_of_the_rule() {
    let _deadline = deadline();
    struct Seen {
        at: u64,
        content: i64,
        id: agentbus::EventId,
        withdrawn: bool,
    }
    const WINDOW: u64 = 1000;
    const CAPACITY: usize = 150;
    let clock = Clock::manual();
    let dedup = Dedup::window(Duration::from_nanos(WINDOW))
        .capacity(CAPACITY)
        .clock(clock.clone());
    let mut model: std::collections::VecDeque<Seen> = Default::default();
    let (mut now, mut forgotten, mut duplicates) = (0u64, 0u64, 0u64);
    let mut ids = Vec::new();
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut random = move |below: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % below
    };
    for _ in 0..200_000 {
        let step = random(10);
        now += step;
        clock.advance(Duration::from_nanos(step));
        model.retain(|seen| now - seen.at < WINDOW);
        let content = random(400) as i64;
        let mut event = status(content);
        if random(20) == 0 && !ids.is_empty() {
            event.id = ids[random(ids.len() as u64) as usize];
        }
        if random(30) == 0 {
            // Withdraw a remembered event (or a stranger: nothing happens).
            if let Some(seen) = model
                .iter_mut()
                .rev()
                .find(|seen| seen.content == content && !seen.withdrawn)
            {
                event.id = seen.id;
                seen.withdrawn = true;
            }
            dedup.withdraw(&event);
            continue;
        }
        let live = || model.iter().filter(|seen| !seen.withdrawn);
        let expected = if live().any(|seen| seen.id == event.id) {
            Err(Rejection::Duplicate { of: event.id })
        } else if let Some(seen) = live().find(|seen| seen.content == content) {
            Err(Rejection::Duplicate { of: seen.id })
        } else {
            if model.len() >= CAPACITY {
                model.pop_front();
                forgotten += 1;
            }
            model.push_back(Seen {
                at: now,
                content,
                id: event.id,
                withdrawn: false,
            });
            ids.push(event.id);
            Ok(())
        };
        duplicates += u64::from(expected.is_err());
        assert_eq!(dedup.check(&event), expected);
        assert_eq!(dedup.len(), model.len());
    }
    assert_eq!(dedup.forgotten_early(), forgotten);
    assert_eq!(dedup.deduplicated(), duplicates);
    assert!(
        forgotten > 0 && duplicates > 10_000,
        "{forgotten} {duplicates}"
    );
}

/// Strings that differ from one another only in their length (runs of one
/// byte, zero bytes included) or in one byte at any position, from empty
/// up to past three 8-byte words: the lengths that fit in one word (0 to 7)
/// and those that take several.
fn strings_differing_by_one_byte_or_the_length() -> Vec<String> {
    let mut strings = std::collections::BTreeSet::new();
    for len in 0..=24 {
        for fill in ['\0', 'a'] {
            let run = fill.to_string().repeat(len);
            for at in 0..len {
                let mut changed = run.clone().into_bytes();
                changed[at] = b'b';
                strings.insert(String::from_utf8(changed).expect("ascii"));
            }
            strings.insert(run);
        }
    }
    strings.into_iter().collect()
}

/// Contents that differ only in one string (its length or one byte, as a
/// value, as an object's key, or as an array's item) are all let in; each
/// again is a duplicate.
#[test]
fn contents_differing_in_one_byte_or_length_of_a_string_are_distinct() {
    let _deadline = deadline();
    let strings = strings_differing_by_one_byte_or_the_length();
    let contents: Vec<Event> = strings
        .iter()
        .flat_map(|text| {
            [
                json!({"text": text}),
                json!({text: 1}),
                json!({"text": 1, "items": [text, text]}),
                json!(text),
            ]
        })
        .map(|data| {
            Event::new(EventType::AgentToolExecuted)
                .with_source_agent(3)
                .with_data(data)
        })
        .collect();
    let dedup = Dedup::window(Duration::from_secs(3600))
        .capacity(contents.len())
        .clock(Clock::manual());
    for event in &contents {
        assert!(dedup.check(event).is_ok(), "{}", event.data);
    }
    for event in &contents {
        let mut repeat = event.clone();
        repeat.id = Event::new(EventType::AgentToolExecuted).id;
        assert_eq!(
            dedup.check(&repeat),
            Err(Rejection::Duplicate { of: event.id }),
            "{}",
            event.data
        );
    }
}

/// On its default clock (the coarse monotonic one, exact to a kernel tick
/// of at most 10 ms) a repeat right away is kept out, and one more than
/// the window plus a tick later is let in.
#[test]
fn the_default_clock_is_real_time_to_within_a_tick() {
    let _deadline = deadline();
    const WINDOW: Duration = Duration::from_millis(40);
    const TICK: Duration = Duration::from_millis(10);
    let dedup = Dedup::window(WINDOW);
    assert_eq!(dedup.window_length(), WINDOW);
    assert!(dedup.check(&status(0)).is_ok());
    assert!(dedup.check(&status(0)).is_err());
    std::thread::sleep(WINDOW + TICK + Duration::from_millis(1));
    assert!(dedup.check(&status(0)).is_ok());
}

/// An event a later guard rejects is withdrawn from the window: its retry
/// is not a duplicate.
#[test]
fn an_event_a_later_guard_rejects_is_not_remembered() {
    let _deadline = deadline();
    let clock = Clock::manual();
    let dedup = Dedup::window(Duration::from_secs(60)).clock(clock.clone());
    let limit = agentbus_guard::RateLimit::global(1, Duration::from_secs(1)).clock(clock.clone());
    // Not the order the crate docs advise (Dedup last): the case this is about.
    let bus_after = EventBus::builder()
        .guard(dedup.clone())
        .guard(limit)
        .build();
    assert!(bus_after.try_publish_blocking(status(1)).is_ok());
    let rejected = bus_after.try_publish_blocking(status(2)).unwrap_err();
    assert!(matches!(rejected.reason(), Rejection::RateLimited { .. }));
    clock.advance(Duration::from_secs(1));
    assert!(bus_after.try_publish_blocking(status(2)).is_ok());
    assert_eq!(dedup.deduplicated(), 0);
}

/// Clones share the window and the counters; `is_empty` and `len` follow
/// what is remembered.
#[test]
fn clones_share_the_window_and_its_counters() {
    let _deadline = deadline();
    let dedup = Dedup::window(Duration::from_secs(60))
        .capacity(2)
        .clock(Clock::manual());
    let clone = dedup.clone();
    assert!(dedup.is_empty());
    assert!(dedup.check(&status(0)).is_ok());
    assert!(!clone.is_empty());
    assert!(clone.check(&status(0)).is_err());
    assert!(clone.check(&status(1)).is_ok());
    assert!(clone.check(&status(2)).is_ok());
    assert_eq!(
        (dedup.len(), dedup.deduplicated(), dedup.forgotten_early()),
        (2, 1, 1)
    );
    assert_eq!(
        format!("{clone:?}"),
        "Dedup { window: 60s, capacity: 2, deduplicated: 1, .. }"
    );
}

/// Withdrawing takes out only the event itself: a duplicate of it (same
/// content, another id, never let in) withdrawn leaves it remembered.
#[test]
fn withdrawing_a_duplicate_leaves_the_original_remembered() {
    let _deadline = deadline();
    let dedup = Dedup::window(Duration::from_secs(60)).clock(Clock::manual());
    let original = status(0);
    dedup.check(&original).unwrap();
    let duplicate = status(0);
    assert_eq!(
        dedup.check(&duplicate),
        Err(Rejection::Duplicate { of: original.id })
    );
    dedup.withdraw(&duplicate);
    assert_eq!(
        dedup.check(&status(0)),
        Err(Rejection::Duplicate { of: original.id })
    );
    let mut same_id = status(1);
    same_id.id = original.id;
    dedup.withdraw(&same_id);
    assert_eq!(
        dedup.check(&status(0)),
        Err(Rejection::Duplicate { of: original.id })
    );
}

/// Where a nested array or object ends is part of the content: the same
/// scalars, nested differently, are different contents.
#[test]
fn contents_nested_differently_are_distinct() {
    let _deadline = deadline();
    let dedup = Dedup::window(Duration::from_secs(60)).clock(Clock::manual());
    for data in [
        json!([[1], 2]),
        json!([[1, 2]]),
        json!([[1, 2], []]),
        json!([[], [1, 2]]),
        json!({"a": {"b": 1}, "c": 2}),
        json!({"a": {"b": 1, "c": 2}}),
        json!({"a": {"b": 1, "c": 2}, "d": {}}),
    ] {
        let event = Event::new(EventType::AgentToolExecuted).with_data(data.clone());
        assert!(dedup.check(&event).is_ok(), "{data}");
    }
}
