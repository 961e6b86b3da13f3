//! An arbitrary sequence of bus operations, run against a real `EventBus` and
//! a plain reference model (a `Vec` of subscribers and a `VecDeque` history):
//! both must agree on every delivery, history query, stats snapshot and
//! unsubscribe result.
#![no_main]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, OnceLock};

use agentbus::{
    BusStats, Event, EventBus, EventId, EventType, EventTypeSet, HistoryQuery, PublishOutcome,
    SubscriptionBuilder, SubscriptionId,
};
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    capacity: u8,
    ops: Vec<Op>,
}

#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    Ok,
    Err,
    UnsubscribeSelf,
    AsyncOk,
    AsyncErr,
}

impl Behaviour {
    fn is_async(self) -> bool {
        matches!(self, Behaviour::AsyncOk | Behaviour::AsyncErr)
    }

    fn fails(self) -> bool {
        matches!(self, Behaviour::Err | Behaviour::AsyncErr)
    }
}

#[derive(Arbitrary, Debug)]
enum Target {
    /// An index into the ids this bus returned so far (live or stale).
    Issued(u8),
    /// An id from another bus: never removes anything here.
    Foreign(u16),
}

#[derive(Arbitrary, Debug)]
enum Limit {
    Default,
    Zero,
    Max,
    Exactly(u8),
}

#[derive(Arbitrary, Debug)]
enum Op {
    Subscribe {
        ty: u8,
        circle_filter: Option<i8>,
        behaviour: Behaviour,
    },
    SubscribeSet {
        mask: u32,
        circle_filter: Option<i8>,
        behaviour: Behaviour,
    },
    SubscribeAll {
        behaviour: Behaviour,
    },
    Unsubscribe(Target),
    Publish {
        ty: u8,
        circle: Option<i8>,
        agent: Option<i8>,
        project: Option<i8>,
        /// Through the run's `Publisher` rather than the bus.
        through_publisher: bool,
    },
    History {
        ty: Option<u8>,
        circle: Option<i8>,
        agent: Option<i8>,
        project: Option<i8>,
        limit: Limit,
    },
    ClearHistory,
    Reset,
    Stats,
}

/// Few distinct values, so filters and queries match often.
fn small(value: i8) -> i64 {
    i64::from(value % 3)
}

fn type_at(index: u8) -> (usize, EventType) {
    let index = usize::from(index) % EventType::COUNT;
    (index, EventType::ALL[index])
}

/// Ids of a bus that subscribed many times: a pool of ids numbered beyond
/// anything a short input makes the bus under test issue.
fn foreign_ids() -> &'static [SubscriptionId] {
    static IDS: OnceLock<Vec<SubscriptionId>> = OnceLock::new();
    IDS.get_or_init(|| {
        let other = EventBus::builder().history_capacity(0).build();
        (0..1024)
            .map(|_| other.subscribe(EventType::SystemError, |_e: &Event| {}))
            .collect()
    })
}

/// One handler call as the handler saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Call {
    subscription: u64,
    event: EventId,
    /// What unsubscribing itself returned, for `UnsubscribeSelf`.
    unsubscribed: Option<bool>,
}

type Log = Arc<Mutex<Vec<Call>>>;

struct ModelSubscriber {
    number: u64,
    /// Bit `i` set: subscribed to `EventType::ALL[i]`.
    mask: u32,
    circle_filter: Option<i64>,
    behaviour: Behaviour,
}

struct Record {
    id: EventId,
    type_index: usize,
    circle: Option<i64>,
    agent: Option<i64>,
    project: Option<i64>,
}

#[derive(Default)]
struct Model {
    capacity: usize,
    subscribers: Vec<ModelSubscriber>,
    history: VecDeque<Record>,
    last_id: u64,
    published: u64,
    delivered: u64,
    errors: u64,
}

impl Model {
    /// The model's counters; the delivery counters (retries, dead
    /// letters), which the model does not track, are taken from `actual`.
    fn stats(&self, actual: &BusStats) -> BusStats {
        BusStats {
            events_published: self.published,
            events_delivered: self.delivered,
            handler_errors: self.errors,
            active_subscribers: self.subscribers.len(),
            history_size: self.history.len(),
            ..*actual
        }
    }

    fn unsubscribe(&mut self, number: u64) -> bool {
        let before = self.subscribers.len();
        self.subscribers.retain(|s| s.number != number);
        self.subscribers.len() != before
    }

    /// The sync calls in subscription order, then the async ones.
    fn publish(&mut self, record: Record) -> (PublishOutcome, Vec<Call>, Vec<Call>) {
        let mut outcome = PublishOutcome::default();
        let (mut sync_calls, mut async_calls, mut leaving) = (Vec::new(), Vec::new(), Vec::new());
        for s in &self.subscribers {
            if s.mask & (1 << record.type_index) == 0 {
                continue;
            }
            if s.circle_filter.is_some_and(|c| record.circle != Some(c)) {
                continue;
            }
            let mut call = Call {
                subscription: s.number,
                event: record.id,
                unsubscribed: None,
            };
            if s.behaviour == Behaviour::UnsubscribeSelf {
                call.unsubscribed = Some(true);
                leaving.push(s.number);
            }
            if s.behaviour.fails() {
                outcome.failed += 1;
            } else {
                outcome.delivered += 1;
            }
            if s.behaviour.is_async() {
                async_calls.push(call);
            } else {
                sync_calls.push(call);
            }
        }
        for number in leaving {
            self.unsubscribe(number);
        }
        self.published += 1;
        self.delivered += outcome.delivered as u64;
        self.errors += outcome.failed as u64;
        if self.capacity > 0 {
            if self.history.len() == self.capacity {
                self.history.pop_front();
            }
            self.history.push_back(record);
        }
        (outcome, sync_calls, async_calls)
    }
}

fn subscribe(
    bus: &EventBus,
    log: &Log,
    number: u64,
    types: EventTypeSet,
    all: bool,
    circle_filter: Option<i64>,
    behaviour: Behaviour,
) -> SubscriptionId {
    let log = Arc::clone(log);
    if behaviour.is_async() {
        let handler = move |e: Arc<Event>| {
            let log = Arc::clone(&log);
            async move {
                log.lock().unwrap().push(Call {
                    subscription: number,
                    event: e.id,
                    unsubscribed: None,
                });
                if behaviour.fails() {
                    Err("async handler refused")
                } else {
                    Ok(())
                }
            }
        };
        return match circle_filter {
            Some(c) => circle_scoped(bus.subscription(types), c).async_handler(handler),
            None => bus.subscribe_async(types, handler),
        };
    }
    let me: Arc<OnceLock<SubscriptionId>> = Arc::default();
    // Holding a bus handle in its own handler is a cycle; the final `reset`
    // of every run breaks it.
    let handle = (behaviour == Behaviour::UnsubscribeSelf).then(|| (bus.clone(), Arc::clone(&me)));
    let handler = move |e: &Event| -> Result<(), &'static str> {
        let unsubscribed = handle
            .as_ref()
            .map(|(bus, me)| bus.unsubscribe(*me.get().expect("id set before any publish")));
        log.lock().unwrap().push(Call {
            subscription: number,
            event: e.id,
            unsubscribed,
        });
        if behaviour.fails() {
            Err("handler refused")
        } else {
            Ok(())
        }
    };
    let id = match (circle_filter, all) {
        (Some(c), _) => circle_scoped(bus.subscription(types), c).handler(handler),
        (None, true) => bus.subscribe_all(handler),
        (None, false) => bus.subscribe(types, handler),
    };
    me.set(id).unwrap();
    id
}

/// Only events of circle `c`: the field filter for even `c`, the same test
/// as a closure for odd, so both paths face the model.
fn circle_scoped(builder: SubscriptionBuilder<'_>, c: i64) -> SubscriptionBuilder<'_> {
    if c % 2 == 0 {
        builder.circle_id(c)
    } else {
        builder.filter(move |e: &Event| e.circle_id == Some(c))
    }
}

fn run(input: Input) {
    let capacity = usize::from(input.capacity % 17);
    let bus = EventBus::builder().history_capacity(capacity).build();
    assert_eq!(bus.history_capacity(), capacity);
    let log: Log = Arc::default();
    let mut model = Model {
        capacity,
        ..Model::default()
    };
    let mut issued: Vec<SubscriptionId> = Vec::new();
    // Lives across every op, so its cached tables face every change.
    let mut publisher = bus.publisher();

    for op in input.ops {
        match op {
            Op::Subscribe {
                ty,
                circle_filter,
                behaviour,
            } => {
                let (index, event_type) = type_at(ty);
                let mask = 1 << index;
                add(
                    &bus,
                    &log,
                    &mut model,
                    &mut issued,
                    event_type.into(),
                    mask,
                    false,
                    circle_filter,
                    behaviour,
                );
            }
            Op::SubscribeSet {
                mask,
                circle_filter,
                behaviour,
            } => {
                let mask = mask & ((1 << EventType::COUNT) - 1);
                let types = EventType::ALL
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| mask & (1 << i) != 0)
                    .map(|(_, t)| *t)
                    .collect();
                add(
                    &bus,
                    &log,
                    &mut model,
                    &mut issued,
                    types,
                    mask,
                    false,
                    circle_filter,
                    behaviour,
                );
            }
            Op::SubscribeAll { behaviour } => {
                let mask = (1 << EventType::COUNT) - 1;
                add(
                    &bus,
                    &log,
                    &mut model,
                    &mut issued,
                    EventTypeSet::all(),
                    mask,
                    true,
                    None,
                    behaviour,
                );
            }
            Op::Unsubscribe(target) => {
                let id = match target {
                    Target::Issued(_) if issued.is_empty() => continue,
                    Target::Issued(i) => issued[usize::from(i) % issued.len()],
                    Target::Foreign(i) => {
                        let pool = foreign_ids();
                        pool[usize::from(i) % pool.len()]
                    }
                };
                let expected = match target {
                    Target::Issued(_) => model.unsubscribe(id.get()),
                    Target::Foreign(_) => false,
                };
                assert_eq!(bus.unsubscribe(id), expected, "unsubscribe({id})");
            }
            Op::Publish {
                ty,
                circle,
                agent,
                project,
                through_publisher,
            } => {
                let (type_index, event_type) = type_at(ty);
                let mut event = Event::new(event_type);
                event.circle_id = circle.map(small);
                event.source_agent_id = agent.map(small);
                event.project_id = project.map(small);
                let record = Record {
                    id: event.id,
                    type_index,
                    circle: event.circle_id,
                    agent: event.source_agent_id,
                    project: event.project_id,
                };
                let (expected, sync_calls, mut async_calls) = model.publish(record);
                let outcome = if through_publisher {
                    publisher.publish_blocking(event)
                } else {
                    bus.publish_blocking(event)
                };
                assert_eq!(outcome, expected);
                let calls = std::mem::take(&mut *log.lock().unwrap());
                // Sync handlers run inline in subscription order. Async ones
                // start (first poll) in that same pass and finish whenever,
                // so only their set is fixed: split the log by subscription.
                let async_subscriptions: Vec<u64> =
                    async_calls.iter().map(|call| call.subscription).collect();
                let (mut async_seen, sync_seen): (Vec<Call>, Vec<Call>) = calls
                    .into_iter()
                    .partition(|call| async_subscriptions.contains(&call.subscription));
                assert_eq!(sync_seen, sync_calls);
                async_seen.sort();
                async_calls.sort();
                assert_eq!(async_seen, async_calls);
            }
            Op::History {
                ty,
                circle,
                agent,
                project,
                limit,
            } => {
                let mut query = HistoryQuery::new();
                let ty = ty.map(type_at);
                if let Some((_, t)) = ty {
                    query = query.event_type(t);
                }
                let (circle, agent, project) =
                    (circle.map(small), agent.map(small), project.map(small));
                if let Some(c) = circle {
                    query = query.circle_id(c);
                }
                if let Some(a) = agent {
                    query = query.source_agent_id(a);
                }
                if let Some(p) = project {
                    query = query.project_id(p);
                }
                let set = match limit {
                    Limit::Default => None,
                    Limit::Zero => Some(0),
                    Limit::Max => Some(usize::MAX),
                    Limit::Exactly(n) => Some(usize::from(n)),
                };
                if let Some(n) = set {
                    query = query.limit(n);
                }
                let limit = set.unwrap_or(HistoryQuery::DEFAULT_LIMIT);
                let expected: Vec<EventId> = model
                    .history
                    .iter()
                    .rev()
                    .filter(|r| ty.is_none_or(|(i, _)| r.type_index == i))
                    .filter(|r| circle.is_none_or(|c| r.circle == Some(c)))
                    .filter(|r| agent.is_none_or(|a| r.agent == Some(a)))
                    .filter(|r| project.is_none_or(|p| r.project == Some(p)))
                    .take(limit)
                    .map(|r| r.id)
                    .collect();
                let got: Vec<EventId> = bus.history(&query).iter().map(|e| e.id).collect();
                assert_eq!(got, expected, "{query:?}");
            }
            Op::ClearHistory => {
                bus.clear_history();
                model.history.clear();
            }
            Op::Reset => {
                bus.reset();
                model.subscribers.clear();
                model.history.clear();
                model.published = 0;
                model.delivered = 0;
                model.errors = 0;
            }
            Op::Stats => {
                let stats = bus.stats();
                assert_eq!(stats, model.stats(&stats));
            }
        }
    }
    let stats = bus.stats();
    assert_eq!(stats, model.stats(&stats));
    assert!(log.lock().unwrap().is_empty());
    bus.reset();
}

#[allow(clippy::too_many_arguments)]
fn add(
    bus: &EventBus,
    log: &Log,
    model: &mut Model,
    issued: &mut Vec<SubscriptionId>,
    types: EventTypeSet,
    mask: u32,
    all: bool,
    circle_filter: Option<i8>,
    behaviour: Behaviour,
) {
    let circle_filter = circle_filter.map(small);
    // Ids count up from 1 per bus and are never reused, `reset` included.
    let number = model.last_id + 1;
    let id = subscribe(bus, log, number, types, all, circle_filter, behaviour);
    assert_eq!(id.get(), number);
    model.last_id = number;
    model.subscribers.push(ModelSubscriber {
        number,
        mask,
        circle_filter,
        behaviour,
    });
    issued.push(id);
}

fuzz_target!(|input: Input| run(input));
