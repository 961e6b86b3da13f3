//! `EventStream`: bounded pull subscriptions, lag reporting, closing.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};
use std::time::Duration;

use agentbus::{Event, EventBus, EventType, EventTypeSet, Lagged, Overflow, TryRecvError};
use futures::{Stream, StreamExt};
use serde_json::json;

mod common;
use common::{runtime, within};

fn numbered(n: u64) -> Event {
    Event::new(EventType::TaskCreated).with_data(json!({"n": n}))
}

fn n_of(event: &Event) -> u64 {
    event.data["n"].as_u64().unwrap()
}

#[test]
fn smoke() {
    let bus = EventBus::new();
    let mut stream = bus.stream(EventType::TaskCreated, 8);
    for n in 0..3 {
        assert_eq!(bus.publish_blocking(numbered(n)).delivered, 1);
    }
    for n in 0..3 {
        assert_eq!(n_of(&stream.try_recv().unwrap()), n);
    }
    assert_eq!(stream.try_recv(), Err(TryRecvError::Empty));
}

#[test]
fn receives_only_its_types_and_the_published_arc() {
    let bus = EventBus::new();
    let mut stream = bus.stream(
        EventTypeSet::from([EventType::AgentStarted, EventType::AgentStopped]),
        16,
    );
    let started = Arc::new(Event::new(EventType::AgentStarted));
    bus.publish_blocking(Arc::clone(&started));
    bus.publish_blocking(Event::new(EventType::TaskCreated));
    bus.publish_blocking(Event::new(EventType::AgentStopped));
    let first = stream.try_recv().unwrap();
    assert!(Arc::ptr_eq(&first, &started));
    assert_eq!(
        stream.try_recv().unwrap().event_type,
        EventType::AgentStopped
    );
    assert_eq!(stream.try_recv(), Err(TryRecvError::Empty));
}

#[test]
fn filtered_stream() {
    let bus = EventBus::new();
    let mut stream = bus
        .subscription(EventType::TaskCreated)
        .filter(|e: &Event| e.data["n"].as_u64().unwrap() % 2 == 0)
        .name("even-stream")
        .stream(16);
    for n in 0..6 {
        bus.publish_blocking(numbered(n));
    }
    let got: Vec<u64> = std::iter::from_fn(|| stream.try_recv().ok())
        .map(|e| n_of(&e))
        .collect();
    assert_eq!(got, vec![0, 2, 4]);
}

#[test]
fn slow_consumer_gets_exact_lag_then_oldest_survivors() {
    let bus = EventBus::new();
    let mut stream = bus.stream(EventType::TaskCreated, 4);
    assert_eq!(stream.capacity(), 4);
    for n in 0..10 {
        bus.publish_blocking(numbered(n));
    }
    assert_eq!(stream.try_recv(), Err(TryRecvError::Lagged(6)));
    for n in 6..10 {
        assert_eq!(n_of(&stream.try_recv().unwrap()), n);
    }
    assert_eq!(stream.try_recv(), Err(TryRecvError::Empty));

    // Lag is counted afresh after being reported.
    for n in 10..15 {
        bus.publish_blocking(numbered(n));
    }
    assert_eq!(stream.try_recv(), Err(TryRecvError::Lagged(1)));
    let rest: Vec<u64> = std::iter::from_fn(|| stream.try_recv().ok())
        .map(|e| n_of(&e))
        .collect();
    assert_eq!(rest, vec![11, 12, 13, 14]);
}

#[test]
fn partial_drain_then_overflow() {
    let bus = EventBus::new();
    let mut stream = bus.stream(EventType::TaskCreated, 3);
    for n in 0..3 {
        bus.publish_blocking(numbered(n));
    }
    assert_eq!(n_of(&stream.try_recv().unwrap()), 0);
    for n in 3..6 {
        bus.publish_blocking(numbered(n));
    }
    // Buffer held 1,2; adding 3,4,5 pushed out 1 and 2.
    assert_eq!(stream.try_recv(), Err(TryRecvError::Lagged(2)));
    let rest: Vec<u64> = std::iter::from_fn(|| stream.try_recv().ok())
        .map(|e| n_of(&e))
        .collect();
    assert_eq!(rest, vec![3, 4, 5]);
}

#[test]
fn lag_through_the_stream_trait() {
    let bus = EventBus::new();
    let mut stream = bus.stream(EventType::TaskCreated, 2);
    for n in 0..5 {
        bus.publish_blocking(numbered(n));
    }
    futures::executor::block_on(async {
        assert_eq!(stream.next().await.unwrap().unwrap_err(), Lagged(3));
        assert_eq!(n_of(&stream.next().await.unwrap().unwrap()), 3);
        assert_eq!(n_of(&stream.recv().await.unwrap().unwrap()), 4);
    });
}

#[test]
fn publishers_never_block_on_a_full_stream() {
    let bus = EventBus::new();
    let mut stream = bus.stream(EventType::TaskCreated, 4);
    let (tx, rx) = std::sync::mpsc::channel();
    let publisher = std::thread::spawn({
        let bus = bus.clone();
        move || {
            for n in 0..10_000 {
                bus.publish_blocking(numbered(n));
            }
            tx.send(()).unwrap();
        }
    });
    // Nobody reads the stream meanwhile: a publisher that waited for room
    // would never finish.
    rx.recv_timeout(Duration::from_secs(60))
        .expect("publishing into a full stream blocked");
    publisher.join().unwrap();
    assert_eq!(stream.try_recv(), Err(TryRecvError::Lagged(9_996)));
    let rest: Vec<u64> = std::iter::from_fn(|| stream.try_recv().ok())
        .map(|e| n_of(&e))
        .collect();
    assert_eq!(rest, vec![9_996, 9_997, 9_998, 9_999]);
    assert_eq!(bus.stats().events_delivered, 10_000);
}

#[test]
fn capacity_zero_is_treated_as_one() {
    let bus = EventBus::new();
    let mut stream = bus.stream(EventType::TaskCreated, 0);
    assert_eq!(stream.capacity(), 1);
    bus.publish_blocking(numbered(0));
    assert_eq!(n_of(&stream.try_recv().unwrap()), 0);
    bus.publish_blocking(numbered(1));
    bus.publish_blocking(numbered(2));
    assert_eq!(stream.try_recv(), Err(TryRecvError::Lagged(1)));
    assert_eq!(n_of(&stream.try_recv().unwrap()), 2);
    assert_eq!(stream.try_recv(), Err(TryRecvError::Empty));
}

#[test]
fn dropping_the_stream_unsubscribes() {
    let bus = EventBus::new();
    let stream = bus.stream(EventType::TaskCreated, 4);
    let id = stream.id();
    assert_eq!(bus.stats().active_subscribers, 1);
    assert_eq!(bus.publish_blocking(numbered(0)).delivered, 1);
    drop(stream);
    assert_eq!(bus.stats().active_subscribers, 0);
    assert_eq!(bus.publish_blocking(numbered(1)).delivered, 0);
    assert!(!bus.unsubscribe(id));
}

#[test]
fn dropping_the_stream_releases_buffered_events() {
    let bus = EventBus::builder().history_capacity(0).build();
    let stream = bus.stream(EventType::TaskCreated, 4);
    let event = Arc::new(numbered(0));
    bus.publish_blocking(Arc::clone(&event));
    assert_eq!(Arc::strong_count(&event), 2);
    drop(stream);
    assert_eq!(Arc::strong_count(&event), 1);
}

#[test]
fn reset_closes_the_stream_after_drain() {
    let bus = EventBus::new();
    let mut stream = bus.stream(EventType::TaskCreated, 4);
    bus.publish_blocking(numbered(0));
    bus.publish_blocking(numbered(1));
    bus.reset();
    assert_eq!(n_of(&stream.try_recv().unwrap()), 0);
    assert_eq!(n_of(&stream.try_recv().unwrap()), 1);
    assert_eq!(stream.try_recv(), Err(TryRecvError::Closed));
    assert!(futures::executor::block_on(stream.recv()).is_none());
    // Publishing after reset does not reopen it.
    bus.publish_blocking(numbered(2));
    assert_eq!(stream.try_recv(), Err(TryRecvError::Closed));
}

#[test]
fn reset_wakes_a_waiting_receiver() {
    let bus = EventBus::new();
    let mut stream = bus.stream(EventType::TaskCreated, 4);
    let resetter = std::thread::spawn({
        let bus = bus.clone();
        move || {
            std::thread::sleep(Duration::from_millis(50));
            bus.reset();
        }
    });
    let got = runtime()
        .block_on(async { tokio::time::timeout(Duration::from_secs(30), stream.recv()).await });
    resetter.join().unwrap();
    assert!(got.expect("recv was not woken by reset").is_none());
}

#[test]
fn dropping_the_bus_closes_the_stream() {
    let bus = EventBus::new();
    let mut stream = bus.stream(EventType::TaskCreated, 4);
    bus.publish_blocking(numbered(7));
    drop(bus);
    assert_eq!(n_of(&stream.try_recv().unwrap()), 7);
    assert_eq!(stream.try_recv(), Err(TryRecvError::Closed));
}

#[test]
fn async_recv_wakes_when_another_thread_publishes() {
    let bus = EventBus::new();
    let mut stream = bus.stream(EventType::TaskCreated, 4);
    let publisher = std::thread::spawn({
        let bus = bus.clone();
        move || {
            std::thread::sleep(Duration::from_millis(50));
            bus.publish_blocking(numbered(42));
        }
    });
    let got = runtime()
        .block_on(async { tokio::time::timeout(Duration::from_secs(30), stream.recv()).await });
    publisher.join().unwrap();
    let event = got.expect("recv was not woken").unwrap().unwrap();
    assert_eq!(n_of(&event), 42);
}

#[test]
fn async_recv_wakes_when_another_task_publishes() {
    let bus = EventBus::new();
    let mut stream = bus.stream(EventType::TaskCreated, 64);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    let received = rt.block_on(async {
        let publisher = tokio::spawn({
            let bus = bus.clone();
            async move {
                for n in 0..20 {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    bus.publish(numbered(n)).await;
                }
            }
        });
        let mut received = Vec::new();
        while received.len() < 20 {
            let next = tokio::time::timeout(Duration::from_secs(30), stream.next())
                .await
                .expect("stream was not woken");
            received.push(n_of(&next.unwrap().unwrap()));
        }
        publisher.await.unwrap();
        received
    });
    assert_eq!(received, (0..20).collect::<Vec<_>>());
}

#[test]
fn stream_is_send_and_debug() {
    fn assert_send<T: Send + 'static>(_: &T) {}
    let bus = EventBus::new();
    let stream = bus.stream(EventType::TaskCreated, 3);
    assert_send(&stream);
    let text = format!("{stream:?}");
    assert!(text.contains("EventStream"), "{text}");
    let moved = std::thread::spawn(move || stream.capacity())
        .join()
        .unwrap();
    assert_eq!(moved, 3);
}

#[test]
fn every_event_is_received_or_counted_as_missed_under_concurrency() {
    let bus = EventBus::new();
    let mut stream = bus.stream(EventType::TaskCreated, 16);
    let publishers: Vec<_> = (0..2u64)
        .map(|p| {
            let bus = bus.clone();
            std::thread::spawn(move || {
                for n in 0..10_000u64 {
                    bus.publish_blocking(
                        Event::new(EventType::TaskCreated).with_data(json!({"p": p, "n": n})),
                    );
                }
            })
        })
        .collect();
    let (mut received, mut missed) = (0u64, 0u64);
    let mut last = [None::<u64>; 2];
    let mut consume = |stream: &mut agentbus::EventStream| loop {
        match stream.try_recv() {
            Ok(event) => {
                received += 1;
                // Per publisher, events come out in publish order.
                let p = event.data["p"].as_u64().unwrap() as usize;
                let n = event.data["n"].as_u64().unwrap();
                assert!(last[p].is_none_or(|before| before < n), "out of order");
                last[p] = Some(n);
            }
            Err(TryRecvError::Lagged(n)) => missed += n,
            Err(TryRecvError::Empty) => break,
            Err(TryRecvError::Closed) => panic!("closed while subscribed"),
        }
    };
    while publishers.iter().any(|p| !p.is_finished()) {
        consume(&mut stream);
        std::thread::yield_now();
    }
    for publisher in publishers {
        publisher.join().unwrap();
    }
    consume(&mut stream);
    assert_eq!(received + missed, 20_000);
    // The newest event of all always survives.
    assert!(last.contains(&Some(9_999)), "{last:?}");
}

/// A waker that publishes one event the first time it is cloned. The stream
/// clones the waker it registers, so that event lands after the stream's
/// first look at its buffer and before it returns: the window in which a
/// wakeup is lost unless the stream looks again after registering.
struct PublishOnClone {
    bus: EventBus,
    published: AtomicBool,
    woken: AtomicBool,
}

static PUBLISH_ON_CLONE: RawWakerVTable = RawWakerVTable::new(
    |data| {
        // SAFETY: every RawWaker with this vtable holds one strong count of
        // an `Arc<PublishOnClone>` (made by `publish_on_clone` or this
        // function); borrowing it without taking that count is sound.
        let hook = unsafe { &*data.cast::<PublishOnClone>() };
        if !hook.published.swap(true, Ordering::SeqCst) {
            hook.bus.publish_blocking(numbered(99));
        }
        // SAFETY: as above; the clone gets its own strong count.
        unsafe { Arc::increment_strong_count(data.cast::<PublishOnClone>()) };
        RawWaker::new(data, &PUBLISH_ON_CLONE)
    },
    |data| {
        // SAFETY: `wake` consumes the waker's strong count.
        let hook = unsafe { Arc::from_raw(data.cast::<PublishOnClone>()) };
        hook.woken.store(true, Ordering::SeqCst);
    },
    |data| {
        // SAFETY: borrowed, as in `clone`.
        let hook = unsafe { &*data.cast::<PublishOnClone>() };
        hook.woken.store(true, Ordering::SeqCst);
    },
    |data| {
        // SAFETY: `drop` releases the waker's strong count.
        drop(unsafe { Arc::from_raw(data.cast::<PublishOnClone>()) });
    },
);

fn publish_on_clone(bus: &EventBus) -> (Waker, Arc<PublishOnClone>) {
    let hook = Arc::new(PublishOnClone {
        bus: bus.clone(),
        published: AtomicBool::new(false),
        woken: AtomicBool::new(false),
    });
    let data = Arc::into_raw(Arc::clone(&hook)).cast::<()>();
    // SAFETY: `data` carries the strong count the vtable's functions expect.
    let waker = unsafe { Waker::from_raw(RawWaker::new(data, &PUBLISH_ON_CLONE)) };
    (waker, hook)
}

#[test]
fn an_event_published_while_the_stream_registers_its_waker_is_not_missed() {
    let bus = EventBus::new();
    let mut stream = bus.stream(EventType::TaskCreated, 4);
    let (waker, hook) = publish_on_clone(&bus);
    let mut cx = Context::from_waker(&waker);
    let polled = Pin::new(&mut stream).poll_next(&mut cx);
    assert!(
        hook.published.load(Ordering::SeqCst),
        "the stream never registered (cloned) the waker, so the test tested nothing"
    );
    match polled {
        Poll::Ready(Some(Ok(event))) => assert_eq!(n_of(&event), 99),
        Poll::Pending => panic!(
            "lost wakeup: the stream returned Pending with the event buffered (woken: {})",
            hook.woken.load(Ordering::SeqCst)
        ),
        other => panic!("expected the event, got {other:?}"),
    }
    drop(waker);
    drop(stream);
    assert_eq!(Arc::strong_count(&hook), 1, "a waker clone leaked");
}

/// Counts its wakes.
#[derive(Default)]
struct WakeCount(std::sync::atomic::AtomicUsize);

impl std::task::Wake for WakeCount {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn a_waiting_consumer_is_woken_once_however_many_events_arrive() {
    let bus = EventBus::new();
    let mut stream = bus.stream(EventType::TaskCreated, 8);
    let wakes = Arc::new(WakeCount::default());
    let waker = Waker::from(Arc::clone(&wakes));
    let mut cx = Context::from_waker(&waker);
    assert!(Pin::new(&mut stream).poll_next(&mut cx).is_pending());
    for n in 0..3 {
        bus.publish_blocking(numbered(n));
    }
    assert_eq!(wakes.0.load(Ordering::SeqCst), 1);
    for n in 0..3 {
        match Pin::new(&mut stream).poll_next(&mut cx) {
            Poll::Ready(Some(Ok(event))) => assert_eq!(n_of(&event), n),
            other => panic!("expected event {n}, got {other:?}"),
        }
    }
    // Waiting again re-arms the wake, once more.
    assert!(Pin::new(&mut stream).poll_next(&mut cx).is_pending());
    bus.publish_blocking(numbered(3));
    bus.publish_blocking(numbered(4));
    assert_eq!(wakes.0.load(Ordering::SeqCst), 2);
}

#[test]
fn a_waiting_stream_holds_the_publisher_until_the_consumer_takes_an_event() {
    let bus = EventBus::new();
    let mut stream = bus
        .subscription(EventType::TaskCreated)
        .stream_with(1, Overflow::Wait);
    assert_eq!(stream.overflow(), Overflow::Wait);
    bus.publish_blocking(numbered(0));
    let publisher = {
        let bus = bus.clone();
        std::thread::spawn(move || bus.publish_blocking(numbered(1)))
    };
    std::thread::sleep(Duration::from_millis(50));
    assert!(
        !publisher.is_finished(),
        "the buffer is full: the publisher waits"
    );
    assert_eq!(n_of(&stream.try_recv().unwrap()), 0);
    publisher.join().unwrap();
    assert_eq!(n_of(&stream.try_recv().unwrap()), 1, "nothing lost");
    assert_eq!(stream.try_recv(), Err(TryRecvError::Empty));
}

#[test]
fn a_waiting_publisher_gives_up_when_the_stream_is_dropped() {
    let bus = EventBus::new();
    let stream = bus
        .subscription(EventType::TaskCreated)
        .stream_with(1, Overflow::Wait);
    bus.publish_blocking(numbered(0));
    let publisher = {
        let bus = bus.clone();
        std::thread::spawn(move || bus.publish_blocking(numbered(1)))
    };
    std::thread::sleep(Duration::from_millis(20));
    drop(stream);
    // Bounded, so a publisher left waiting fails the test instead of
    // hanging the run.
    within(Duration::from_secs(20), move || publisher.join().unwrap());
}

#[test]
fn drop_newest_keeps_the_buffered_events() {
    let bus = EventBus::new();
    let mut stream = bus
        .subscription(EventType::TaskCreated)
        .stream_with(2, Overflow::DropNewest);
    assert_eq!(
        (stream.overflow(), stream.capacity()),
        (Overflow::DropNewest, 2)
    );
    for n in 0..4 {
        bus.publish_blocking(numbered(n));
    }
    assert_eq!(stream.try_recv(), Err(TryRecvError::Lagged(2)));
    assert_eq!(n_of(&stream.try_recv().unwrap()), 0);
    assert_eq!(n_of(&stream.try_recv().unwrap()), 1);
}
