//! Loom models of the bus's concurrent paths: the copy-on-write subscriber
//! tables against publishers, the lock-free history ring against
//! publishers, readers, `clear_history` and `reset`, the per-thread
//! tracking of the event being handled that stamps causation, and the
//! permit lines and key lanes of reliable delivery (`max_concurrency`,
//! `max_concurrent_handlers`, `ordered_by`: no overlap, no lost wake-up,
//! lane order), and the bus-wide limit changed at run time while
//! publishes run and wait.
//!
//! Run (release, separate target dir so a normal build is not invalidated):
//!
//! ```text
//! CARGO_TARGET_DIR=target/loom RUSTFLAGS="--cfg agentbus_loom" \
//!     cargo test --release --test loom -- --nocapture
//! ```
//!
//! Each model uses a preemption bound of [`DEFAULT_PREEMPTIONS`] unless
//! `LOOM_MAX_PREEMPTIONS` is set, and prints how many interleavings it
//! explored and how long that took.
//!
//! Under `--cfg agentbus_loom` the subscriber tables' hazard slots
//! (`src/hazard.rs`) run as they are, with `SeqCst` fences in place of the
//! asymmetric pair (compiler fence / `membarrier`), so the table models check
//! the slot protocol itself: deleting the publish's fence fails
//! `publish_vs_unsubscribe` ("a subscriber table was read after it was
//! freed", a loom-only canary in each table, with freed memory poisoned by
//! this binary's allocator), deleting the writer's second one fails the
//! `hazard_*` models. The history slots' `AtomicWord` (a 128-bit atomic, which
//! loom lacks) is a loom atomic index into the values stored, so its loads
//! and compare-and-swaps keep their real orderings: deleting either `SeqCst`
//! fence of the read / release handshake makes the ring models fail.
//! Use-after-free is checked two ways: the subscriber tables are loom `Arc`s,
//! which loom requires to be released by the end of every execution, and in
//! a loom build the history ring keeps every event it releases in a
//! graveyard and fails the model if a read touches one. Because of that
//! graveyard, a released event's reference count only drops once the bus is
//! gone, so the models check that events and handler closures are released
//! after the last handle is dropped (no leak), and that unsubscribed handler
//! closures are released as soon as nothing can call them.
//!
//! Facts like "a publish that starts after `unsubscribe` returned" are made
//! observable with a loom atomic the other thread stores (Release) after the
//! call returns and the publisher loads (Acquire) before it starts, so loom
//! explores both outcomes and every weak-memory consequence of them.

// After the docs: a normal build compiles this file to an empty crate, which
// still needs them (missing_docs).
#![cfg(agentbus_loom)]

use std::sync::atomic::{AtomicUsize as StdAtomicUsize, Ordering as StdOrdering};
use std::sync::Arc as StdArc;
use std::time::Instant;

use agentbus::{Event, EventBus, EventType, HistoryQuery};
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;

mod common;

/// Freed memory is held back (and poisoned) for the next
/// [`QUARANTINE`] frees before it goes back to the system allocator.
///
/// The hazard slots (`src/hazard.rs`) compare table addresses. If a freed
/// table's address came back from the allocator within one execution, the
/// same schedule could take a different branch in the next execution (a
/// re-check that passes by coincidence), and loom requires every execution
/// of a schedule to be deterministic. Holding frees back makes addresses
/// unique within an execution; poisoning them (0xA5) makes a read of a freed
/// table or handler fail loudly instead of seeing stale contents.
struct Quarantine;

const QUARANTINE: usize = 1 << 16;

struct Held {
    lock: std::sync::atomic::AtomicBool,
    blocks: std::cell::UnsafeCell<[(usize, usize, usize); QUARANTINE]>,
    next: std::cell::UnsafeCell<usize>,
}

// SAFETY: `blocks` and `next` are only touched while `lock` is held.
unsafe impl Sync for Held {}

static HELD: Held = Held {
    lock: std::sync::atomic::AtomicBool::new(false),
    blocks: std::cell::UnsafeCell::new([(0, 0, 0); QUARANTINE]),
    next: std::cell::UnsafeCell::new(0),
};

// SAFETY: every block handed out comes from `System` with the caller's
// layout and goes back to `System` with the layout it was allocated with.
unsafe impl std::alloc::GlobalAlloc for Quarantine {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        // SAFETY: the caller's contract, passed on.
        unsafe { std::alloc::System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        // SAFETY: the block is ours until it is handed back below, and
        // valid for `layout.size()` bytes.
        unsafe { ptr.write_bytes(0xA5, layout.size()) };
        while HELD
            .lock
            .compare_exchange_weak(false, true, StdOrdering::Acquire, StdOrdering::Relaxed)
            .is_err()
        {
            std::hint::spin_loop();
        }
        // SAFETY: the lock is held.
        let evicted = unsafe {
            let next = &mut *HELD.next.get();
            let slot = &mut (*HELD.blocks.get())[*next];
            *next = (*next + 1) % QUARANTINE;
            std::mem::replace(slot, (ptr as usize, layout.size(), layout.align()))
        };
        HELD.lock.store(false, StdOrdering::Release);
        if evicted.0 != 0 {
            // SAFETY: a block this allocator was asked to free, with its layout.
            unsafe {
                std::alloc::System.dealloc(
                    evicted.0 as *mut u8,
                    std::alloc::Layout::from_size_align_unchecked(evicted.1, evicted.2),
                )
            };
        }
    }
}

#[global_allocator]
static ALLOCATOR: Quarantine = Quarantine;

/// The races these models target need one or two preemptions; three adds
/// margin and still keeps the whole file to seconds in release mode.
const DEFAULT_PREEMPTIONS: usize = 3;

/// Runs `body` under loom and reports how many executions it explored.
fn model(name: &str, body: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(DEFAULT_PREEMPTIONS);
    }
    // A std counter: it lives across executions, which loom objects cannot.
    let executions = StdArc::new(StdAtomicUsize::new(0));
    let counter = StdArc::clone(&executions);
    let started = Instant::now();
    builder.check(move || {
        counter.fetch_add(1, StdOrdering::Relaxed);
        body();
    });
    eprintln!(
        "loom model {name}: {} executions in {:.2?} (preemption bound {:?})",
        executions.load(StdOrdering::Relaxed),
        started.elapsed(),
        builder.preemption_bound,
    );
}

/// A sync handler that counts its calls. The count is a std atomic on
/// purpose: it is the models' observation, not part of the protocol under
/// test, and loom runs all its threads on one OS thread, so it is exact.
fn counting(calls: &StdArc<StdAtomicUsize>) -> impl Fn(&Event) + Send + Sync + 'static {
    let calls = StdArc::clone(calls);
    move |_event: &Event| {
        calls.fetch_add(1, StdOrdering::Relaxed);
    }
}

fn calls() -> StdArc<StdAtomicUsize> {
    StdArc::new(StdAtomicUsize::new(0))
}

fn count(calls: &StdArc<StdAtomicUsize>) -> usize {
    calls.load(StdOrdering::Relaxed)
}

fn event(event_type: EventType, tag: i64) -> StdArc<Event> {
    StdArc::new(Event::new(event_type).with_circle(tag))
}

fn whole_history(bus: &EventBus) -> Vec<StdArc<Event>> {
    bus.history(&HistoryQuery::new().limit(usize::MAX))
}

/// Where `found` was published: `(publisher, index in its sequence)`.
fn locate(published: &[Vec<StdArc<Event>>], found: &StdArc<Event>) -> (usize, usize) {
    published
        .iter()
        .enumerate()
        .find_map(|(publisher, events)| {
            events
                .iter()
                .position(|e| StdArc::ptr_eq(e, found))
                .map(|index| (publisher, index))
        })
        .unwrap_or_else(|| panic!("history returned an event nobody published: {found:?}"))
}

/// Checks a history snapshot taken while publishers may be running: at most
/// `capacity` entries, every one the very `Arc` some publisher published, none
/// twice, and each publisher's events newest first. Returns the positions.
fn check_snapshot(
    snapshot: &[StdArc<Event>],
    published: &[Vec<StdArc<Event>>],
    capacity: usize,
) -> Vec<(usize, usize)> {
    assert!(
        snapshot.len() <= capacity,
        "history returned {} entries, capacity {capacity}",
        snapshot.len()
    );
    let positions: Vec<_> = snapshot.iter().map(|e| locate(published, e)).collect();
    for (i, a) in positions.iter().enumerate() {
        for b in &positions[i + 1..] {
            assert_ne!(a, b, "history returned the same event twice");
            if a.0 == b.0 {
                assert!(
                    a.1 > b.1,
                    "publisher {}'s events are not newest first: {positions:?}",
                    a.0
                );
            }
        }
    }
    positions
}

/// Checks a quiescent bus's history: `history_size` agrees with what a read
/// returns, and the type recorded in each slot's state agrees with the event
/// stored in it (a typed query trusts the state, an untyped one the event).
fn check_quiescent_history(bus: &EventBus, types: &[EventType]) -> Vec<StdArc<Event>> {
    let all = whole_history(bus);
    assert_eq!(
        bus.stats().history_size,
        all.len(),
        "history_size disagrees with what history returns"
    );
    for &event_type in types {
        let typed = bus.history(&HistoryQuery::new().event_type(event_type).limit(usize::MAX));
        let expected: Vec<_> = all
            .iter()
            .filter(|e| e.event_type == event_type)
            .cloned()
            .collect();
        assert!(
            typed.len() == expected.len()
                && typed
                    .iter()
                    .zip(&expected)
                    .all(|(a, b)| StdArc::ptr_eq(a, b)),
            "typed history for {event_type} disagrees with the untyped one: a slot's state \
             names another event than the one it holds (typed {typed:?}, untyped {all:?})"
        );
    }
    all
}

// ---------------------------------------------------------------------------
// Subscriber tables
// ---------------------------------------------------------------------------

/// One thread subscribes a new handler and then unsubscribes an old one while
/// another publishes. A publish that starts after `subscribe` returned must
/// reach the new handler; one that starts after `unsubscribe` returned must
/// not reach the old one; nobody is called twice; the old handler's closure
/// is released once nothing can call it.
#[test]
fn table_swap_publish_vs_subscribe_and_unsubscribe() {
    table_swap(false);
}

/// The same through a [`Publisher`](agentbus::Publisher) that has already
/// cached the old table: its copy must not hide either change, and it lets
/// go of the removed handler at its next publish.
#[test]
fn table_swap_publisher_vs_subscribe_and_unsubscribe() {
    table_swap(true);
}

fn table_swap(through_publisher: bool) {
    const T: EventType = EventType::TaskCompleted;
    let name = if through_publisher {
        "table_swap_publisher_vs_subscribe_and_unsubscribe"
    } else {
        "table_swap_publish_vs_subscribe_and_unsubscribe"
    };
    model(name, move || {
        let bus = EventBus::builder().history_capacity(0).build();
        let old_calls = calls();
        let new_calls = calls();
        let old_id = bus.subscribe(T, counting(&old_calls));
        let mut publisher = bus.publisher();
        if through_publisher {
            // Cache the table that holds only the old handler.
            assert_eq!(publisher.publish_blocking(Event::new(T)).delivered, 1);
            old_calls.store(0, StdOrdering::SeqCst);
        }
        let mut publish = move |event: Event| {
            if through_publisher {
                publisher.publish_blocking(event)
            } else {
                publisher.bus().publish_blocking(event)
            }
        };
        // 0: nothing returned yet, 1: subscribe returned, 2: unsubscribe returned.
        let progress = Arc::new(AtomicUsize::new(0));

        let writer = {
            let bus = bus.clone();
            let progress = Arc::clone(&progress);
            let new_calls = StdArc::clone(&new_calls);
            thread::spawn(move || {
                let new_id = bus.subscribe(T, counting(&new_calls));
                // Release pairs with the publisher's Acquire load below.
                progress.store(1, Ordering::Release);
                assert!(bus.unsubscribe(old_id));
                progress.store(2, Ordering::Release);
                new_id
            })
        };

        let seen = progress.load(Ordering::Acquire);
        let outcome = publish(Event::new(T));
        let new_id = writer.join().unwrap();

        let (old, new) = (count(&old_calls), count(&new_calls));
        assert!(
            old <= 1 && new <= 1,
            "a handler ran twice: old {old}, new {new}"
        );
        assert_eq!(outcome.delivered, old + new);
        assert_eq!(outcome.failed, 0);
        if seen >= 1 {
            assert_eq!(
                new, 1,
                "publish started after subscribe returned but missed it"
            );
        }
        if seen == 2 {
            assert_eq!(
                old, 0,
                "publish started after unsubscribe returned but called it"
            );
        }

        let stats = bus.stats();
        let published = 1 + u64::from(through_publisher);
        assert_eq!(stats.events_published, published);
        assert_eq!(
            stats.events_delivered,
            outcome.delivered as u64 + published - 1
        );
        assert_eq!(stats.active_subscribers, 1);
        if !through_publisher {
            assert_eq!(
                StdArc::strong_count(&old_calls),
                1,
                "the unsubscribed handler is still held after every publish finished"
            );
        }

        // A publisher lets go of the removed handler at its next publish.
        let after = publish(Event::new(T));
        assert_eq!(
            StdArc::strong_count(&old_calls),
            1,
            "the unsubscribed handler is still held after the next publish"
        );
        assert_eq!(after.delivered, 1);
        assert_eq!((count(&old_calls), count(&new_calls)), (old, new + 1));
        assert!(!bus.unsubscribe(old_id));
        // A publisher holds its copy of the table until its next publish or
        // its drop.
        drop(publish);
        assert!(bus.unsubscribe(new_id));
        assert_eq!(StdArc::strong_count(&new_calls), 1);
    });
}

/// `unsubscribe` racing with two publishes on another thread, next to a
/// subscriber that stays: the permanent one gets every publish exactly once;
/// the removed one at most once per publish, never from a publish that starts
/// after `unsubscribe` returned, and never again once a publish missed it; its
/// closure is dropped by the time both threads are done.
#[test]
fn publish_vs_unsubscribe() {
    const T: EventType = EventType::AgentToolExecuted;
    model("publish_vs_unsubscribe", || {
        let bus = EventBus::builder().history_capacity(0).build();
        let removed_calls = calls();
        let kept_calls = calls();
        let removed = bus.subscribe(T, counting(&removed_calls));
        let kept = bus.subscribe(T, counting(&kept_calls));
        let unsubscribed = Arc::new(AtomicUsize::new(0));

        let publisher = {
            let bus = bus.clone();
            let unsubscribed = Arc::clone(&unsubscribed);
            let removed_calls = StdArc::clone(&removed_calls);
            let kept_calls = StdArc::clone(&kept_calls);
            thread::spawn(move || {
                let mut missed = false;
                for round in 1..=2 {
                    // Acquire pairs with the Release store after unsubscribe.
                    let after_unsubscribe = unsubscribed.load(Ordering::Acquire) == 1;
                    let before = count(&removed_calls);
                    let outcome = bus.publish_blocking(Event::new(T));
                    let reached_removed = count(&removed_calls) - before;
                    assert!(reached_removed <= 1);
                    assert_eq!(
                        count(&kept_calls),
                        round,
                        "the kept subscriber missed a publish"
                    );
                    assert_eq!(outcome.delivered, 1 + reached_removed);
                    if after_unsubscribe || missed {
                        assert_eq!(
                            reached_removed, 0,
                            "handler called after unsubscribe returned (round {round}, \
                             after_unsubscribe {after_unsubscribe}, missed before {missed})"
                        );
                    }
                    missed |= reached_removed == 0;
                }
            })
        };

        assert!(bus.unsubscribe(removed));
        // Release pairs with the publisher's Acquire load.
        unsubscribed.store(1, Ordering::Release);
        assert!(!bus.unsubscribe(removed), "unsubscribe returned true twice");
        publisher.join().unwrap();

        let stats = bus.stats();
        assert_eq!(stats.events_published, 2);
        assert_eq!(stats.events_delivered, 2 + count(&removed_calls) as u64);
        assert_eq!(stats.active_subscribers, 1);
        assert_eq!(
            StdArc::strong_count(&removed_calls),
            1,
            "the removed handler's closure outlived unsubscribe and every publish"
        );
        assert!(bus.unsubscribe(kept));
        drop(bus);
        assert_eq!(StdArc::strong_count(&kept_calls), 1);
    });
}

// ---------------------------------------------------------------------------
// Hazard slots (src/hazard.rs): who drops a replaced table
// ---------------------------------------------------------------------------

/// What a handler's closure captures, to watch when the closure is dropped:
/// never while the handler runs (that would be a use after free of the
/// table and the closure), and exactly once (the shared count goes back to
/// one).
struct Witness {
    running: StdArc<StdAtomicUsize>,
    dropped: StdArc<StdAtomicUsize>,
}

impl Drop for Witness {
    fn drop(&mut self) {
        assert_eq!(
            self.running.load(StdOrdering::SeqCst),
            0,
            "a handler's closure was dropped while the handler ran"
        );
        self.dropped.fetch_add(1, StdOrdering::SeqCst);
    }
}

/// A handler that runs `body`, holding a [`Witness`] that marks the whole
/// call; returns the handler, its call count and its drop count.
fn witnessed(
    body: impl Fn(&Event) + Send + Sync + 'static,
) -> (
    impl Fn(&Event) + Send + Sync + 'static,
    StdArc<StdAtomicUsize>,
    StdArc<StdAtomicUsize>,
) {
    let calls = calls();
    let dropped = calls_dropped();
    let witness = Witness {
        running: StdArc::new(StdAtomicUsize::new(0)),
        dropped: StdArc::clone(&dropped),
    };
    let counted = StdArc::clone(&calls);
    let handler = move |event: &Event| {
        witness.running.fetch_add(1, StdOrdering::SeqCst);
        counted.fetch_add(1, StdOrdering::SeqCst);
        // A scheduling point while the handler runs: a writer may run its
        // whole handshake here.
        thread::yield_now();
        body(event);
        witness.running.fetch_sub(1, StdOrdering::SeqCst);
    };
    (handler, calls, dropped)
}

fn calls_dropped() -> StdArc<StdAtomicUsize> {
    StdArc::new(StdAtomicUsize::new(0))
}

/// Two threads publish while a third unsubscribes the handler they may be
/// running: the closure is never dropped while it runs, is dropped exactly
/// once, and is gone as soon as all three are done (the last publish
/// reading the old table drops it, or the writer if none was). A publish
/// that starts after `unsubscribe` returned does not call it.
#[test]
fn hazard_last_reader_drops_the_table() {
    const T: EventType = EventType::TaskCompleted;
    model("hazard_last_reader_drops_the_table", || {
        let bus = EventBus::builder().history_capacity(0).build();
        let (handler, calls, dropped) = witnessed(|_| {});
        let id = bus.subscribe(T, handler);
        let unsubscribed = Arc::new(AtomicUsize::new(0));
        let publishers: Vec<_> = (0..2)
            .map(|_| {
                let bus = bus.clone();
                let unsubscribed = Arc::clone(&unsubscribed);
                thread::spawn(move || {
                    // Acquire pairs with the Release store below.
                    let after = unsubscribed.load(Ordering::Acquire) == 1;
                    let outcome = bus.publish_blocking(Event::new(T));
                    assert!(!after || outcome.delivered == 0, "called after unsubscribe");
                    outcome.delivered
                })
            })
            .collect();
        assert!(bus.unsubscribe(id));
        unsubscribed.store(1, Ordering::Release);
        let delivered: usize = publishers.into_iter().map(|p| p.join().unwrap()).sum();
        assert_eq!(delivered, count(&calls));
        assert_eq!(
            count(&dropped),
            1,
            "the removed handler is still held (or was dropped twice) after every publish ended"
        );
    });
}

/// A handler that unsubscribes itself and then publishes again (a nested
/// publish, the next slot of the same thread) while another thread
/// subscribes: no deadlock (the thread's own slot holds the table the
/// unsubscribe replaces), the nested publish does not call it, and its
/// closure is dropped by the end of the outer publish, not during its call.
#[test]
fn hazard_unsubscribe_inside_a_nested_publish() {
    const T: EventType = EventType::TaskCompleted;
    const NESTED: EventType = EventType::TaskFailed;
    model("hazard_unsubscribe_inside_a_nested_publish", || {
        let bus = EventBus::builder().history_capacity(0).build();
        let own_id = StdArc::new(std::sync::Mutex::new(None));
        let (me, handle) = (StdArc::clone(&own_id), bus.clone());
        let nested_calls = calls();
        let nested = StdArc::clone(&nested_calls);
        let (handler, inner_calls, inner_dropped) = witnessed(move |_e: &Event| {
            let id = me.lock().unwrap().take();
            if let Some(id) = id {
                assert!(handle.unsubscribe(id));
                // Nested, at depth 1: T's new table no longer has us.
                let again = handle.publish_blocking(Event::new(T));
                assert_eq!(again.delivered, 0, "called after its own unsubscribe");
                let reached = handle.publish_blocking(Event::new(NESTED)).delivered;
                nested.fetch_add(reached, StdOrdering::SeqCst);
            }
        });
        let id = bus.subscribe(T, handler);
        *own_id.lock().unwrap() = Some(id);
        let other = bus.clone();
        let late = calls();
        let late_calls = StdArc::clone(&late);
        let writer = thread::spawn(move || {
            other.subscribe(NESTED, counting(&late_calls));
        });
        let outcome = bus.publish_blocking(Event::new(T));
        writer.join().unwrap();
        assert_eq!(outcome.delivered, 1);
        assert_eq!(count(&inner_calls), 1);
        assert_eq!(
            count(&inner_dropped),
            1,
            "not dropped when the outer publish ended"
        );
        assert_eq!(count(&nested_calls), count(&late));
    });
}

// ---------------------------------------------------------------------------
// History ring
// ---------------------------------------------------------------------------

/// One writer publishing `events` events into a ring of `capacity` while a
/// reader reads it twice.
fn writer_vs_reader(capacity: usize, events: usize) {
    const T: EventType = EventType::MemoryShared;
    let bus = EventBus::builder().history_capacity(capacity).build();
    let published: Vec<_> = (0..events).map(|i| event(T, i as i64)).collect();
    // How many publishes have started / returned (Release by the writer,
    // Acquire by the reader).
    let started = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));

    let writer = {
        let bus = bus.clone();
        let published = published.clone();
        let (started, done) = (Arc::clone(&started), Arc::clone(&done));
        thread::spawn(move || {
            for (i, e) in published.into_iter().enumerate() {
                started.store(i + 1, Ordering::Release);
                bus.publish_blocking(e);
                done.store(i + 1, Ordering::Release);
            }
        })
    };

    let published_by = [published];
    let mut newest_seen = None;
    for _ in 0..2 {
        let done_before = done.load(Ordering::Acquire);
        let snapshot = whole_history(&bus);
        let started_after = started.load(Ordering::Acquire);
        let indices: Vec<usize> = check_snapshot(&snapshot, &published_by, capacity)
            .into_iter()
            .map(|(_, index)| index)
            .collect();
        for &index in &indices {
            assert!(
                index >= done_before.saturating_sub(capacity),
                "read returned event {index}, pushed out before the read began \
                 ({done_before} published, capacity {capacity})"
            );
            assert!(
                index < started_after,
                "read returned event {index} before its publish started"
            );
        }
        if done_before == events {
            let expected: Vec<usize> = (events.saturating_sub(capacity)..events).rev().collect();
            assert_eq!(
                indices, expected,
                "a read after the last publish is not exact"
            );
        }
        // The ring's window only moves forward, so a later read never has an
        // older newest entry than an earlier one.
        if let Some(&newest) = indices.first() {
            if let Some(previous) = newest_seen {
                assert!(newest >= previous, "history went back in time");
            }
            newest_seen = Some(newest);
        }
    }
    writer.join().unwrap();

    let all = check_quiescent_history(&bus, &[T]);
    let indices: Vec<_> = check_snapshot(&all, &published_by, capacity)
        .into_iter()
        .map(|(_, index)| index)
        .collect();
    let expected: Vec<usize> = (events.saturating_sub(capacity)..events).rev().collect();
    assert_eq!(indices, expected);
    assert_eq!(bus.stats().events_published, events as u64);
    drop((all, bus));
    // Pushed-out events were released by the ring; only our copies remain.
    for (i, e) in published_by[0].iter().enumerate() {
        assert_eq!(
            StdArc::strong_count(e),
            1,
            "event {i} still held by the bus"
        );
    }
}

#[test]
fn history_writer_vs_reader_capacity_1() {
    model("history_writer_vs_reader_capacity_1", || {
        writer_vs_reader(1, 2)
    });
}

#[test]
fn history_writer_vs_reader_capacity_2() {
    model("history_writer_vs_reader_capacity_2", || {
        writer_vs_reader(2, 3)
    });
}

/// Two publishers race on a ring of `capacity` (`per_publisher[p]` events
/// each, of different types) while a reader reads it.
fn two_writers_vs_reader(capacity: usize, per_publisher: [usize; 2]) {
    const TYPES: [EventType; 2] = [EventType::TaskCreated, EventType::TaskCompleted];
    let bus = EventBus::builder().history_capacity(capacity).build();
    let published: Vec<Vec<_>> = (0..2)
        .map(|p| {
            (0..per_publisher[p])
                .map(|i| event(TYPES[p], (10 * p + i) as i64))
                .collect()
        })
        .collect();

    let writers: Vec<_> = published
        .iter()
        .map(|events| {
            let bus = bus.clone();
            let events = events.clone();
            thread::spawn(move || {
                for e in events {
                    bus.publish_blocking(e);
                }
            })
        })
        .collect();

    check_snapshot(&whole_history(&bus), &published, capacity);
    for writer in writers {
        writer.join().unwrap();
    }

    let total: usize = per_publisher.iter().sum();
    let all = check_quiescent_history(&bus, &TYPES);
    assert_eq!(
        all.len(),
        total.min(capacity),
        "a committed event went missing"
    );
    let positions = check_snapshot(&all, &published, capacity);
    // The newest ticket went to some publisher's last event.
    let (p, index) = positions[0];
    assert_eq!(
        index + 1,
        per_publisher[p],
        "newest entry is not a last publish"
    );
    assert_eq!(bus.stats().events_published, total as u64);
    drop((all, bus));
    for e in published.iter().flatten() {
        assert_eq!(StdArc::strong_count(e), 1, "event still held by the bus");
    }
}

#[test]
fn history_two_writers_vs_reader_capacity_1() {
    model("history_two_writers_vs_reader_capacity_1", || {
        two_writers_vs_reader(1, [1, 1]);
    });
}

#[test]
fn history_two_writers_vs_reader_capacity_2() {
    model("history_two_writers_vs_reader_capacity_2", || {
        two_writers_vs_reader(2, [2, 1]);
    });
}

#[test]
fn history_two_writers_vs_reader_capacity_3() {
    // Four events into three slots: a non-power-of-two ring that wraps.
    model("history_two_writers_vs_reader_capacity_3", || {
        two_writers_vs_reader(3, [2, 2]);
    });
}

// ---------------------------------------------------------------------------
// clear_history and reset
// ---------------------------------------------------------------------------

/// `clear_history` racing with a publish into a ring of `capacity` that
/// already holds an event. Afterwards the old event is gone, the new one is
/// there unless the clear may have come after it, and `history_size` agrees.
fn clear_vs_publish(capacity: usize) {
    const T: EventType = EventType::ConversationMessage;
    let bus = EventBus::builder().history_capacity(capacity).build();
    let old = event(T, 0);
    let new = event(T, 1);
    bus.publish_blocking(StdArc::clone(&old));
    let cleared = Arc::new(AtomicUsize::new(0));
    let published = Arc::new(AtomicUsize::new(0));

    let clearer = {
        let bus = bus.clone();
        let (cleared, published) = (Arc::clone(&cleared), Arc::clone(&published));
        thread::spawn(move || {
            // Acquire/Release pair with the publisher's store/load.
            let publish_returned = published.load(Ordering::Acquire) == 1;
            bus.clear_history();
            cleared.store(1, Ordering::Release);
            publish_returned
        })
    };

    let clear_returned = cleared.load(Ordering::Acquire) == 1;
    bus.publish_blocking(StdArc::clone(&new));
    published.store(1, Ordering::Release);
    let publish_returned = clearer.join().unwrap();

    let all = check_quiescent_history(&bus, &[T]);
    assert!(
        all.iter().all(|e| !StdArc::ptr_eq(e, &old)),
        "an event published before clear_history survived it"
    );
    match all.as_slice() {
        [] => assert!(
            !clear_returned,
            "an event published after clear_history returned was lost"
        ),
        [only] => {
            assert!(StdArc::ptr_eq(only, &new));
            assert!(
                !publish_returned,
                "an event published before clear_history began survived it"
            );
        }
        more => panic!(
            "history holds {} events after a clear and one publish",
            more.len()
        ),
    }

    // The ring is still usable: the next publish is the newest entry.
    let next = event(T, 2);
    bus.publish_blocking(StdArc::clone(&next));
    let after = check_quiescent_history(&bus, &[T]);
    assert!(after.first().is_some_and(|e| StdArc::ptr_eq(e, &next)));
    assert_eq!(after.len(), (all.len() + 1).min(capacity));
    drop((all, after, bus));
    for e in [&old, &new, &next] {
        assert_eq!(StdArc::strong_count(e), 1, "event leaked by the ring");
    }
}

#[test]
fn clear_history_vs_publish_capacity_1() {
    model("clear_history_vs_publish_capacity_1", || {
        clear_vs_publish(1)
    });
}

#[test]
fn clear_history_vs_publish_capacity_2() {
    model("clear_history_vs_publish_capacity_2", || {
        clear_vs_publish(2)
    });
}

/// `clear_history` racing with a reader of a full ring: the clear releases
/// events through the same handshake as an overwrite, so the reader must
/// never touch a released one (the loom graveyard check), must see a
/// newest-first subset of what was there, and sees nothing once the clear
/// has returned.
#[test]
fn clear_history_vs_reader() {
    const T: EventType = EventType::MemoryRecalled;
    model("clear_history_vs_reader", || {
        let bus = EventBus::builder().history_capacity(2).build();
        let published = [vec![event(T, 0), event(T, 1)]];
        for e in &published[0] {
            bus.publish_blocking(StdArc::clone(e));
        }
        let cleared = Arc::new(AtomicUsize::new(0));

        let clearer = {
            let bus = bus.clone();
            let cleared = Arc::clone(&cleared);
            thread::spawn(move || {
                bus.clear_history();
                // Release pairs with the reader's Acquire load.
                cleared.store(1, Ordering::Release);
            })
        };

        let after_clear = cleared.load(Ordering::Acquire) == 1;
        let snapshot = whole_history(&bus);
        check_snapshot(&snapshot, &published, 2);
        if after_clear {
            assert!(
                snapshot.is_empty(),
                "read after clear_history returned saw {snapshot:?}"
            );
        }
        clearer.join().unwrap();

        assert!(check_quiescent_history(&bus, &[T]).is_empty());
        drop((snapshot, bus));
        for e in &published[0] {
            assert_eq!(StdArc::strong_count(e), 1, "event leaked by the ring");
        }
    });
}

/// `reset` racing with a publish on a bus with a subscriber, an event in
/// history and non-zero counters. Afterwards: no subscriber is left and its
/// closure is released, the pre-reset event is gone, and history agrees with
/// `history_size`. A publish that starts after `reset` returned reaches nobody
/// and is counted exactly; one that returned before `reset` began is wiped
/// from stats and history.
///
/// Counters of a publish that overlaps `reset` are only checked in those two
/// ordered cases: the bus documents that such a publish "may be counted or
/// not", and loom 0.7 cannot be trusted there. It orders a Relaxed
/// `fetch_add` and a concurrent `store(0)` only partially, so after both it
/// lets a load return the `fetch_add`'s result even when that read the value
/// the store was meant to replace, which C++'s RMW atomicity forbids (seen
/// with a three-line model: `x = 1; spawn(x.store(0)); x.fetch_add(1); join;
/// x.load()` yields 2).
#[test]
fn reset_vs_publish() {
    const T: EventType = EventType::SystemWarning;
    model("reset_vs_publish", || {
        let bus = EventBus::builder().history_capacity(1).build();
        let handler_calls = calls();
        let id = bus.subscribe(T, counting(&handler_calls));
        let old = event(T, 0);
        let new = event(T, 1);
        assert_eq!(bus.publish_blocking(StdArc::clone(&old)).delivered, 1);
        let reset_done = Arc::new(AtomicUsize::new(0));
        let publish_done = Arc::new(AtomicUsize::new(0));

        let resetter = {
            let bus = bus.clone();
            let (reset_done, publish_done) = (Arc::clone(&reset_done), Arc::clone(&publish_done));
            thread::spawn(move || {
                // Acquire/Release pair with the publisher's store/load.
                let publish_returned = publish_done.load(Ordering::Acquire) == 1;
                bus.reset();
                reset_done.store(1, Ordering::Release);
                publish_returned
            })
        };

        let after_reset = reset_done.load(Ordering::Acquire) == 1;
        let outcome = bus.publish_blocking(StdArc::clone(&new));
        publish_done.store(1, Ordering::Release);
        let before_reset = resetter.join().unwrap();

        assert!(outcome.delivered <= 1);
        assert_eq!(outcome.failed, 0);
        assert_eq!(count(&handler_calls), 1 + outcome.delivered);
        let stats = bus.stats();
        assert_eq!(stats.active_subscribers, 0);
        assert_eq!(stats.handler_errors, 0);
        let all = check_quiescent_history(&bus, &[T]);
        assert!(
            all.len() <= 1 && all.iter().all(|e| StdArc::ptr_eq(e, &new)),
            "history after reset holds an event published before it"
        );
        if after_reset {
            assert_eq!(
                outcome.delivered, 0,
                "publish after reset reached a handler"
            );
            assert_eq!(
                (stats.events_published, stats.events_delivered),
                (1, 0),
                "publish after reset miscounted"
            );
            assert_eq!(all.len(), 1, "publish after reset missing from history");
        }
        if before_reset {
            assert_eq!(
                outcome.delivered, 1,
                "publish before reset missed the handler"
            );
            assert_eq!(
                (stats.events_published, stats.events_delivered),
                (0, 0),
                "reset left counts of a publish that finished before it"
            );
            assert!(all.is_empty(), "reset left an event published before it");
        }
        assert_eq!(
            StdArc::strong_count(&handler_calls),
            1,
            "reset left the handler's closure alive"
        );
        assert!(!bus.unsubscribe(id), "a subscription survived reset");

        let later = bus.publish_blocking(event(T, 2));
        assert_eq!(later.delivered, 0);
        assert_eq!(bus.stats().events_published, stats.events_published + 1);
        drop((all, bus));
        for e in [&old, &new] {
            assert_eq!(StdArc::strong_count(e), 1, "event leaked by the ring");
        }
    });
}

// ---------------------------------------------------------------------------
// Causation
// ---------------------------------------------------------------------------

/// Two threads each publish a root whose sync handler publishes a follow-up.
/// The handled event is tracked per thread (a loom thread-local in loom
/// builds, as every modelled thread shares one OS thread), so however the two
/// dispatches interleave, each follow-up is caused by its own thread's root,
/// and a publish outside any handler stays unstamped; the counters, which
/// both threads bump, lose nothing.
#[test]
fn causation_is_per_thread() {
    const ROOT: EventType = EventType::TaskCreated;
    const FOLLOW_UP: EventType = EventType::TaskAssigned;
    model("causation_is_per_thread", || {
        let bus = EventBus::builder().history_capacity(4).build();
        let weak = bus.downgrade();
        bus.subscribe(ROOT, move |root: &Event| {
            if let Some(bus) = weak.upgrade() {
                bus.publish_blocking(Event::new(FOLLOW_UP).with_circle(root.circle_id.unwrap()));
            }
        });
        let other = {
            let bus = bus.clone();
            thread::spawn(move || {
                bus.publish_blocking(event(ROOT, 1));
            })
        };
        bus.publish_blocking(event(ROOT, 0));
        other.join().unwrap();

        // Every modelled thread shares one OS thread and so one stats stripe,
        // which loom builds bump atomically: a lost update fails here.
        let stats = bus.stats();
        assert_eq!((stats.events_published, stats.events_delivered), (4, 2));

        let all = whole_history(&bus);
        assert_eq!(all.len(), 4);
        for follow_up in all.iter().filter(|e| e.event_type == FOLLOW_UP) {
            let root = all
                .iter()
                .find(|e| e.event_type == ROOT && e.circle_id == follow_up.circle_id)
                .expect("a follow-up without its root");
            assert_eq!(
                (follow_up.causation_id, follow_up.correlation_id),
                (Some(root.id), Some(root.id)),
                "a follow-up was stamped with another thread's root"
            );
            assert_eq!((root.causation_id, root.correlation_id), (None, None));
        }
        bus.reset();
    });
}

// ---------------------------------------------------------------------------
// EventStream
// ---------------------------------------------------------------------------

/// Records whether it was woken. A std flag, like the call counts: it is the
/// model's observation, not part of the protocol.
#[derive(Default)]
struct WakeFlag(std::sync::atomic::AtomicBool);

impl std::task::Wake for WakeFlag {
    fn wake(self: StdArc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &StdArc<Self>) {
        self.0.store(true, StdOrdering::SeqCst);
    }
}

/// A consumer polls an empty stream while another thread publishes to it.
/// However the two interleave, the poll either returns the event or leaves a
/// wakeup behind: a `Pending` that nobody wakes would hang a receiver with
/// an event buffered. Removing the stream's second look at its buffer (after
/// it registers and says it is waiting) fails this model.
#[test]
fn stream_poll_vs_publish() {
    const T: EventType = EventType::TaskCreated;
    model("stream_poll_vs_publish", || {
        use futures_core::Stream;
        use std::task::{Context, Poll, Waker};

        let bus = EventBus::builder().history_capacity(0).build();
        let mut stream = bus.stream(T, 2);
        let publisher = {
            let bus = bus.clone();
            thread::spawn(move || {
                bus.publish_blocking(event(T, 1));
            })
        };
        let woken = StdArc::new(WakeFlag::default());
        let waker = Waker::from(StdArc::clone(&woken));
        let mut cx = Context::from_waker(&waker);
        let first = std::pin::Pin::new(&mut stream).poll_next(&mut cx);
        publisher.join().unwrap();
        match first {
            Poll::Ready(Some(Ok(received))) => assert_eq!(received.circle_id, Some(1)),
            Poll::Pending => {
                assert!(
                    woken.0.load(StdOrdering::SeqCst),
                    "lost wakeup: the poll returned Pending and the publish never woke it"
                );
                let again = std::pin::Pin::new(&mut stream).poll_next(&mut cx);
                assert!(matches!(again, Poll::Ready(Some(Ok(_)))), "{again:?}");
            }
            other => panic!("expected the event or Pending, got {other:?}"),
        }
        drop(stream);
        bus.reset();
    });
}

/// One thread publishes an event and drops the last handle to the bus,
/// which closes the stream; the consumer polls `try_recv` until it reports
/// `Closed`. However they interleave, the event comes out before `Closed`:
/// an event pushed just before the close is never lost to the consumer's
/// look at the flag.
#[test]
fn stream_close_vs_try_recv() {
    const T: EventType = EventType::TaskCreated;
    model("stream_close_vs_try_recv", || {
        let bus = EventBus::builder().history_capacity(0).build();
        let mut stream = bus.stream(T, 2);
        let publisher = thread::spawn(move || {
            bus.publish_blocking(event(T, 1));
            drop(bus);
        });
        let mut received = Vec::new();
        loop {
            match stream.try_recv() {
                Ok(event) => received.push(event.circle_id),
                Err(agentbus::TryRecvError::Empty) => thread::yield_now(),
                Err(agentbus::TryRecvError::Closed) => break,
                Err(other) => panic!("unexpected {other:?}"),
            }
        }
        publisher.join().unwrap();
        assert_eq!(received, [Some(1)], "the event before the close was lost");
    });
}

/// Records how many calls run at once and the most there ever were; std
/// atomics, as [`counting`]: the observation, not the protocol. Handlers'
/// panics are caught by the bus, so models check these after the fact
/// rather than asserting inside a handler.
#[derive(Default)]
struct InFlight {
    now: StdAtomicUsize,
    most: StdAtomicUsize,
}

impl InFlight {
    fn enter(&self) {
        let now = self.now.fetch_add(1, StdOrdering::Relaxed) + 1;
        self.most.fetch_max(now, StdOrdering::Relaxed);
    }

    fn leave(&self) {
        // A loom yield point between enter and leave: another thread may
        // run here, which is what the limits must hold against.
        loom::thread::yield_now();
        self.now.fetch_sub(1, StdOrdering::Relaxed);
    }
}

/// `max_concurrency(1)`: two publishers never run the handler at once, and
/// the one that waits is woken (loom reports a lost wake-up as a deadlock).
#[test]
fn max_concurrency_permits_vs_two_publishers() {
    model("max_concurrency_permits_vs_two_publishers", || {
        let bus = EventBus::builder().history_capacity(0).build();
        let in_flight = StdArc::new(InFlight::default());
        let watch = StdArc::clone(&in_flight);
        bus.subscription(EventType::TaskCompleted)
            .max_concurrency(1)
            .handler(move |_e: &Event| {
                watch.enter();
                watch.leave();
            });
        let other = bus.clone();
        let publisher = thread::spawn(move || {
            loom::future::block_on(other.publish(event(EventType::TaskCompleted, 1))).delivered
        });
        let here = loom::future::block_on(bus.publish(event(EventType::TaskCompleted, 2)));
        assert_eq!(here.delivered + publisher.join().unwrap(), 2);
        assert_eq!(in_flight.most.load(StdOrdering::Relaxed), 1);
    });
}

/// The bus-wide permit with async handlers on two subscriptions.
#[test]
fn max_concurrent_handlers_vs_two_publishers() {
    model("max_concurrent_handlers_vs_two_publishers", || {
        let bus = EventBus::builder()
            .history_capacity(0)
            .max_concurrent_handlers(1)
            .build();
        let in_flight = StdArc::new(InFlight::default());
        for event_type in [EventType::TaskCompleted, EventType::TaskFailed] {
            let watch = StdArc::clone(&in_flight);
            bus.subscribe_async(event_type, move |_e: StdArc<Event>| {
                let watch = StdArc::clone(&watch);
                async move {
                    watch.enter();
                    watch.leave();
                }
            });
        }
        let other = bus.clone();
        let publisher = thread::spawn(move || {
            loom::future::block_on(other.publish(event(EventType::TaskFailed, 1))).delivered
        });
        let here = loom::future::block_on(bus.publish(event(EventType::TaskCompleted, 2)));
        assert_eq!(here.delivered + publisher.join().unwrap(), 2);
        assert_eq!(in_flight.most.load(StdOrdering::Relaxed), 1);
    });
}

/// A bus limited to `from`, with one async handler subscribed before the
/// change, that holds its permit across a poll.
fn limited_bus(from: Option<usize>, in_flight: &StdArc<InFlight>) -> EventBus {
    let bus = EventBus::builder().history_capacity(0).build();
    let watch = StdArc::clone(in_flight);
    bus.subscribe_async(EventType::TaskCompleted, move |_e: StdArc<Event>| {
        let watch = StdArc::clone(&watch);
        async move {
            watch.enter();
            // Holds its permit across a poll, so a second call can wait.
            common::YieldOnce::default().await;
            watch.leave();
        }
    });
    bus.set_max_concurrent_handlers(from);
    bus
}

/// `set_max_concurrent_handlers` while one publish holds a permit (its
/// handler pending) and another thread's publish joins the line before or
/// after the change: that thread is always woken (a grant on resize that
/// lost its wake-up would leave it parked, a deadlock loom reports), and no
/// slot is lost or released twice: two more publishes under a limit of 1
/// afterwards both finish (a lost slot would hang them) and never overlap
/// (a slot released twice would let them).
fn limit_changed_vs_two_publishes(from: usize, to: Option<usize>) {
    let in_flight = StdArc::new(InFlight::default());
    let bus = limited_bus(Some(from), &in_flight);
    let other = bus.clone();
    let publisher = thread::spawn(move || {
        loom::future::block_on(other.publish(event(EventType::TaskCompleted, 1))).delivered
    });
    let (here, ()) = loom::future::block_on(futures::future::join(
        bus.publish(event(EventType::TaskCompleted, 2)),
        // Polled right after the publish, whose handler then holds its
        // permit and is pending.
        async { bus.set_max_concurrent_handlers(to) },
    ));
    assert_eq!(here.delivered + publisher.join().unwrap(), 2);
    assert_eq!(bus.max_concurrent_handlers(), to);
    bus.set_max_concurrent_handlers(Some(1));
    in_flight.most.store(0, StdOrdering::Relaxed);
    let (first, second) = loom::future::block_on(futures::future::join(
        bus.publish(event(EventType::TaskCompleted, 3)),
        bus.publish(event(EventType::TaskCompleted, 4)),
    ));
    assert_eq!(first.delivered + second.delivered, 2);
    assert_eq!(in_flight.most.load(StdOrdering::Relaxed), 1);
}

#[test]
fn handler_limit_raised_vs_a_waiting_publish() {
    model("handler_limit_raised_vs_a_waiting_publish", || {
        limit_changed_vs_two_publishes(1, Some(2));
    });
}

#[test]
fn handler_limit_removed_vs_a_waiting_publish() {
    model("handler_limit_removed_vs_a_waiting_publish", || {
        limit_changed_vs_two_publishes(1, None);
    });
}

#[test]
fn handler_limit_lowered_vs_two_publishes() {
    model("handler_limit_lowered_vs_two_publishes", || {
        limit_changed_vs_two_publishes(2, Some(1));
    });
}

/// A limit set on an unlimited bus, by another thread, before a publish
/// that is ordered after it (a Release/Acquire flag): the publish's calls
/// take permits, although the flag they check is Relaxed. A publish not
/// ordered after it may run unlimited.
#[test]
fn handler_limit_set_before_a_publish_holds_for_it() {
    model("handler_limit_set_before_a_publish_holds_for_it", || {
        let in_flight = StdArc::new(InFlight::default());
        let bus = limited_bus(None, &in_flight);
        let done = Arc::new(AtomicUsize::new(0));
        let (setter, set) = (bus.clone(), Arc::clone(&done));
        let changer = thread::spawn(move || {
            setter.set_max_concurrent_handlers(Some(1));
            set.store(1, Ordering::Release);
        });
        let ordered = done.load(Ordering::Acquire) == 1;
        let (first, second) = loom::future::block_on(futures::future::join(
            bus.publish(event(EventType::TaskCompleted, 1)),
            bus.publish(event(EventType::TaskCompleted, 2)),
        ));
        changer.join().unwrap();
        assert_eq!(first.delivered + second.delivered, 2);
        if ordered {
            assert_eq!(in_flight.most.load(StdOrdering::Relaxed), 1);
        }
    });
}

/// `ordered_by`: one publisher's two events of a key (in flight together)
/// are handled in order while another thread publishes the same key, one
/// at a time; and the lane is gone afterwards (a third publish runs at
/// once).
#[test]
fn ordered_by_lane_vs_two_publishers() {
    model("ordered_by_lane_vs_two_publishers", || {
        let bus = EventBus::builder().history_capacity(0).build();
        let in_flight = StdArc::new(InFlight::default());
        let order = StdArc::new(std::sync::Mutex::new(Vec::new()));
        let (watch, log) = (StdArc::clone(&in_flight), StdArc::clone(&order));
        bus.subscription(EventType::TaskCompleted)
            .ordered_by(|_e: &Event| 0)
            .handler(move |e: &Event| {
                watch.enter();
                log.lock().unwrap().push(e.circle_id);
                watch.leave();
            });
        let other = bus.clone();
        let publisher = thread::spawn(move || {
            loom::future::block_on(other.publish(event(EventType::TaskCompleted, 3))).delivered
        });
        let (first, second) = loom::future::block_on(futures::future::join(
            bus.publish(event(EventType::TaskCompleted, 1)),
            bus.publish(event(EventType::TaskCompleted, 2)),
        ));
        assert_eq!(
            first.delivered + second.delivered + publisher.join().unwrap(),
            3
        );
        assert_eq!(in_flight.most.load(StdOrdering::Relaxed), 1);
        let order = order.lock().unwrap().clone();
        let position = |tag| order.iter().position(|&c| c == Some(tag));
        assert!(position(1) < position(2), "{order:?}");
        let last = loom::future::block_on(bus.publish(event(EventType::TaskCompleted, 4)));
        assert_eq!(last.delivered, 1);
    });
}
