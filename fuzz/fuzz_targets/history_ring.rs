//! The history ring through the public API: arbitrary capacities (0, 1,
//! non-powers of two) and push / read / clear sequences against a `VecDeque`
//! that keeps the newest `capacity` events.
#![no_main]

use std::collections::VecDeque;
use std::sync::{Arc, Weak};

use agentbus::{Event, EventBus, EventId, EventType, HistoryQuery};
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    capacity: u8,
    ops: Vec<Op>,
}

#[derive(Arbitrary, Debug)]
enum Op {
    /// One event of a type picked from a few.
    Push {
        ty: u8,
        circle: Option<u8>,
    },
    /// Many events at once, so the ring wraps several times.
    Burst {
        count: u8,
    },
    Read {
        limit: u8,
        ty: Option<u8>,
        circle: Option<u8>,
    },
    ReadAll,
    Clear,
}

const TYPES: [EventType; 3] = [
    EventType::TaskCreated,
    EventType::TaskCompleted,
    EventType::SystemError,
];

fuzz_target!(|input: Input| {
    let capacity = usize::from(input.capacity % 65);
    let bus = EventBus::builder().history_capacity(capacity).build();
    let mut model: VecDeque<Arc<Event>> = VecDeque::with_capacity(capacity);
    // Events the model let go of: the ring must have let go of them too.
    let mut gone: Vec<Weak<Event>> = Vec::new();
    let push = |model: &mut VecDeque<Arc<Event>>, gone: &mut Vec<Weak<Event>>, event: Event| {
        let event = Arc::new(event);
        bus.publish_blocking(Arc::clone(&event));
        if capacity > 0 {
            if model.len() == capacity {
                gone.extend(model.pop_front().as_ref().map(Arc::downgrade));
            }
            model.push_back(event);
        } else {
            gone.push(Arc::downgrade(&event));
        }
    };

    for op in input.ops {
        match op {
            Op::Push { ty, circle } => {
                let mut event = Event::new(TYPES[usize::from(ty) % TYPES.len()]);
                event.circle_id = circle.map(|c| i64::from(c % 4));
                push(&mut model, &mut gone, event);
            }
            Op::Burst { count } => {
                for i in 0..usize::from(count % 130) {
                    push(&mut model, &mut gone, Event::new(TYPES[i % TYPES.len()]));
                }
            }
            Op::Read { limit, ty, circle } => {
                let ty = ty.map(|t| TYPES[usize::from(t) % TYPES.len()]);
                let circle = circle.map(|c| i64::from(c % 4));
                let mut query = HistoryQuery::new().limit(usize::from(limit));
                if let Some(t) = ty {
                    query = query.event_type(t);
                }
                if let Some(c) = circle {
                    query = query.circle_id(c);
                }
                let got = bus.history(&query);
                let expected: Vec<&Arc<Event>> = model
                    .iter()
                    .rev()
                    .filter(|e| ty.is_none_or(|t| e.event_type == t))
                    .filter(|e| circle.is_none_or(|c| e.circle_id == Some(c)))
                    .take(usize::from(limit))
                    .collect();
                assert_eq!(got.len(), expected.len(), "{query:?}");
                for (got, expected) in got.iter().zip(&expected) {
                    // The ring hands back the very `Arc` that was published.
                    assert!(Arc::ptr_eq(got, expected), "{query:?}");
                }
            }
            Op::ReadAll => {
                let got: Vec<EventId> = bus
                    .history(&HistoryQuery::new().limit(usize::MAX))
                    .iter()
                    .map(|e| e.id)
                    .collect();
                let expected: Vec<EventId> = model.iter().rev().map(|e| e.id).collect();
                assert_eq!(got, expected);
            }
            Op::Clear => {
                bus.clear_history();
                gone.extend(model.drain(..).map(|e| Arc::downgrade(&e)));
            }
        }
        assert_eq!(bus.stats().history_size, model.len());
        for event in gone.drain(..) {
            assert_eq!(event.strong_count(), 0, "history kept an event it dropped");
        }
    }

    // The ring holds exactly the model's events, and nothing it pushed out:
    // each event is referenced by the model and the ring, and no more.
    for event in &model {
        assert_eq!(Arc::strong_count(event), 2, "{:?}", event.id);
    }
    bus.clear_history();
    for event in &model {
        assert_eq!(Arc::strong_count(event), 1, "{:?}", event.id);
    }
});
