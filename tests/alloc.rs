//! Allocation on the publish path: with only sync subscribers a publish of a
//! pre-built `Arc<Event>` allocates nothing (history keeps the `Arc` itself).
//!
//! A counting global allocator counts, per thread, only while a test asks
//! it to, so tests running in parallel do not disturb each other.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use agentbus::{Event, EventBus, EventType, HistoryQuery};

struct Counting;

thread_local! {
    static ENABLED: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn note_allocation() {
    // try_with: allocations can happen while thread locals are torn down.
    if ENABLED.try_with(Cell::get).unwrap_or(false) {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
    }
}

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation();
        // SAFETY: the caller upholds `GlobalAlloc::realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller upholds `GlobalAlloc::dealloc`'s contract.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// How many allocations this thread makes while running `body`.
fn allocations_in(body: impl FnOnce()) -> usize {
    ALLOCATIONS.with(|n| n.set(0));
    ENABLED.with(|e| e.set(true));
    body();
    ENABLED.with(|e| e.set(false));
    ALLOCATIONS.with(Cell::get)
}

fn bus_with_sync_subscribers(history: usize, calls: &Arc<AtomicUsize>) -> EventBus {
    let bus = EventBus::builder().history_capacity(history).build();
    for _ in 0..8 {
        let calls = Arc::clone(calls);
        bus.subscribe(EventType::TaskCompleted, move |_e: &Event| {
            calls.fetch_add(1, Ordering::Relaxed);
        });
    }
    bus.subscription(EventType::TaskCompleted)
        .filter(|e: &Event| e.circle_id == Some(1))
        .handler(|_e: &Event| {});
    bus
}

#[test]
fn smoke() {
    // The counter works: a Vec allocates.
    assert!(allocations_in(|| drop(std::hint::black_box(vec![1u8; 16]))) >= 1);
    assert_eq!(allocations_in(|| {}), 0);
}

#[test]
fn publish_blocking_with_sync_subscribers_allocates_nothing() {
    for history in [0, 16] {
        let calls = Arc::new(AtomicUsize::new(0));
        let bus = bus_with_sync_subscribers(history, &calls);
        let event = Arc::new(Event::new(EventType::TaskCompleted));
        // First use on this thread sets up per-thread state (stats stripe,
        // table-load bookkeeping); that is not per publish.
        bus.publish_blocking(Arc::clone(&event));
        let allocations = allocations_in(|| {
            for _ in 0..1_000 {
                let outcome = bus.publish_blocking(Arc::clone(&event));
                assert_eq!(outcome.delivered, 8);
            }
        });
        assert_eq!(allocations, 0, "history capacity {history}");
        assert_eq!(calls.load(Ordering::Relaxed), 8 * 1_001);
        if history > 0 {
            assert_eq!(bus.history(&HistoryQuery::new()).len(), 16);
        }
    }
}

#[test]
fn polling_publish_with_sync_subscribers_allocates_nothing() {
    let calls = Arc::new(AtomicUsize::new(0));
    let bus = bus_with_sync_subscribers(16, &calls);
    let event = Arc::new(Event::new(EventType::TaskCompleted));
    let waker = futures::task::noop_waker();
    let mut cx = std::task::Context::from_waker(&waker);
    let mut publish_once = || {
        let future = std::pin::pin!(bus.publish(Arc::clone(&event)));
        match std::future::Future::poll(future, &mut cx) {
            std::task::Poll::Ready(outcome) => assert_eq!(outcome.delivered, 8),
            std::task::Poll::Pending => panic!("sync-only publish was pending"),
        }
    };
    publish_once();
    let allocations = allocations_in(|| {
        for _ in 0..1_000 {
            publish_once();
        }
    });
    assert_eq!(allocations, 0);
}

#[test]
fn publishing_through_a_publisher_allocates_nothing() {
    let calls = Arc::new(AtomicUsize::new(0));
    let bus = bus_with_sync_subscribers(16, &calls);
    let event = Arc::new(Event::new(EventType::TaskCompleted));
    let mut publisher = bus.publisher();
    // The first publish takes the publisher's copy of the table.
    publisher.publish_blocking(Arc::clone(&event));
    let allocations = allocations_in(|| {
        for _ in 0..1_000 {
            assert_eq!(publisher.publish_blocking(Arc::clone(&event)).delivered, 8);
        }
    });
    assert_eq!(allocations, 0);
    assert_eq!(calls.load(Ordering::Relaxed), 8 * 1_001);
}

/// An async handler with a timeout that is done at its first poll takes
/// the wrapper's fast path: called at once, as a plain handler is, and no
/// future of the wrapper's own is boxed: one allocation per publish, the
/// handler's own future.
#[test]
fn a_timed_async_handler_done_at_once_allocates_only_its_future() {
    let bus = EventBus::new();
    bus.subscription(EventType::TaskCompleted)
        .timeout(std::time::Duration::from_secs(30))
        .async_handler(|_e: Arc<Event>| async { Ok::<(), String>(()) });
    let event = Arc::new(Event::new(EventType::TaskCompleted));
    bus.publish_blocking(Arc::clone(&event));
    let allocations = allocations_in(|| {
        for _ in 0..1_000 {
            let outcome = bus.publish_blocking(Arc::clone(&event));
            assert_eq!(outcome.delivered, 1);
        }
    });
    assert_eq!(allocations, 1_000);
}

/// A sync handler with a retry policy that succeeds at once is called
/// inline, as a plain one: no wrapper future, nothing allocated.
#[test]
fn a_retried_sync_handler_done_at_once_allocates_nothing() {
    let bus = EventBus::new();
    bus.subscription(EventType::TaskCompleted)
        .retry(agentbus::Retry::attempts(3))
        .handler(|_e: &Event| Ok::<(), String>(()));
    let event = Arc::new(Event::new(EventType::TaskCompleted));
    bus.publish_blocking(Arc::clone(&event));
    let allocations = allocations_in(|| {
        for _ in 0..1_000 {
            assert_eq!(bus.publish_blocking(Arc::clone(&event)).delivered, 1);
        }
    });
    assert_eq!(allocations, 0);
}

/// A sync handler with a concurrency limit, published to from inside a
/// limited handler, is called inline (a nested publish takes no permit,
/// see `agentbus::docs::semantics`): it allocates what a plain handler
/// there does, no wrapper future.
#[test]
fn a_limited_sync_handler_under_a_nested_publish_allocates_as_a_plain_one() {
    let allocations_with = |limited: bool| {
        let bus = EventBus::new();
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&calls);
        let inner = bus.subscription(EventType::MemoryShared);
        let inner = if limited {
            inner.max_concurrency(1)
        } else {
            inner
        };
        inner.handler(move |_e: &Event| {
            counted.fetch_add(1, Ordering::Relaxed);
        });
        let nested = Arc::new(Event::new(EventType::MemoryShared));
        let weak = bus.downgrade();
        bus.subscription(EventType::TaskCompleted)
            .max_concurrency(1)
            .handler(move |_e: &Event| {
                if let Some(bus) = weak.upgrade() {
                    assert_eq!(bus.publish_blocking(Arc::clone(&nested)).delivered, 1);
                }
            });
        let event = Arc::new(Event::new(EventType::TaskCompleted));
        bus.publish_blocking(Arc::clone(&event));
        let allocations = allocations_in(|| {
            for _ in 0..1_000 {
                assert_eq!(bus.publish_blocking(Arc::clone(&event)).delivered, 1);
            }
        });
        assert_eq!(calls.load(Ordering::Relaxed), 1_001);
        allocations
    };
    assert_eq!(allocations_with(true), allocations_with(false));
}
