//! Helpers shared by the integration tests.

// Each test file compiles this module separately and uses a subset of it.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use agentbus::{Event, EventBus, EventType, SubscriptionId};

/// A fresh call counter.
pub fn counter() -> Arc<AtomicUsize> {
    Arc::new(AtomicUsize::new(0))
}

/// Subscribes a handler to `event_type` that counts its calls.
pub fn counting(bus: &EventBus, event_type: EventType) -> (SubscriptionId, Arc<AtomicUsize>) {
    let calls = counter();
    let c = Arc::clone(&calls);
    let id = bus.subscribe(event_type, move |_e: &Event| {
        c.fetch_add(1, Ordering::SeqCst);
    });
    (id, calls)
}

/// A capture whose `Drop` panics (unless already unwinding, which would
/// abort).
pub struct PanicOnDrop;

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("capture drop panicked");
        }
    }
}

/// Runs `body` on its own thread and fails the test if it does not finish
/// in time, so a deadlock shows up as a failure instead of a hung run.
pub fn within<T: Send + 'static>(limit: Duration, body: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = std::thread::spawn(move || {
        let _ = tx.send(body());
    });
    match rx.recv_timeout(limit) {
        Ok(value) => {
            handle.join().unwrap();
            value
        }
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("did not finish within {limit:?}: deadlock?")
        }
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            // The body panicked: surface its message.
            match handle.join() {
                Err(payload) => std::panic::resume_unwind(payload),
                Ok(()) => unreachable!("sender dropped without a value"),
            }
        }
    }
}

/// Waits until no retry is pending on `bus` (`EventBus::settled`), on a
/// thread of its own. Past 30 s the whole test binary fails at once, as
/// the testkit's `deadline` does (which the core cannot use: the testkit
/// depends on it): a count of pending retries that never reaches zero
/// hangs every test that settles, and each waiting out a limit of its own
/// would take minutes.
pub fn settle(bus: &EventBus) {
    const LIMIT: Duration = Duration::from_secs(30);
    let bus = bus.clone();
    let (done, settled) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        futures::executor::block_on(bus.settled());
        let _ = done.send(());
    });
    if settled.recv_timeout(LIMIT).is_err() {
        let test = std::thread::current().name().unwrap_or("a test").to_owned();
        eprintln!("{test}: a retry was still pending after {LIMIT:?}; ending the test binary");
        std::process::exit(101);
    }
}

/// A current-thread Tokio runtime with timers, for tests that await.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

#[derive(Debug)]
struct CustomPayload(#[allow(dead_code)] u64);

/// Subscribes, to `SystemError`, three handlers that succeed (counting in
/// `ok_calls`) and [`FAILING`] named ones that fail in every way a handler
/// can: `Err`, panics with `&str`, `String` and non-string payloads, a
/// panicking filter, async `Err` and async panic on the first poll and on a
/// later one, and a panic while making the future.
pub fn subscribe_failing_handlers(bus: &EventBus, ok_calls: &Arc<AtomicUsize>) {
    let ok = Arc::clone(ok_calls);
    bus.subscribe(EventType::SystemError, move |_e: &Event| {
        ok.fetch_add(1, Ordering::SeqCst);
    });
    bus.subscription(EventType::SystemError)
        .name("returns-err")
        .handler(|_e: &Event| -> Result<(), String> { Err("disk full".into()) });
    bus.subscription(EventType::SystemError)
        .name("panics-str")
        .handler::<_, ()>(|_e: &Event| panic!("static str panic"));
    bus.subscription(EventType::SystemError)
        .name("panics-string")
        .handler::<_, ()>(|e: &Event| panic!("formatted panic for {}", e.event_type));
    bus.subscription(EventType::SystemError)
        .name("panics-u32")
        .handler::<_, ()>(|_e: &Event| std::panic::panic_any(42u32));
    bus.subscription(EventType::SystemError)
        .name("panics-custom")
        .handler::<_, ()>(|_e: &Event| std::panic::panic_any(CustomPayload(7)));
    bus.subscription(EventType::SystemError)
        .name("filter-panics")
        .filter(|_e: &Event| panic!("filter exploded"))
        .handler::<_, ()>(|_e: &Event| unreachable!("the filter never passes"));
    bus.subscription(EventType::SystemError)
        .name("async-err")
        .async_handler(|_e: Arc<Event>| async {
            futures::future::ready(()).await;
            Err::<(), _>("async went wrong")
        });
    bus.subscription(EventType::SystemError)
        .name("async-panics")
        .async_handler(|_e: Arc<Event>| async {
            futures::future::ready(()).await;
            if true {
                panic!("async panic after await");
            }
        });
    bus.subscription(EventType::SystemError)
        .name("async-err-after-pending")
        .async_handler(|_e: Arc<Event>| async {
            YieldOnce::default().await;
            Err::<(), _>("async failed on a later poll")
        });
    bus.subscription(EventType::SystemError)
        .name("async-panics-after-pending")
        .async_handler(|_e: Arc<Event>| async {
            YieldOnce::default().await;
            if true {
                panic!("async panic on a later poll");
            }
        });
    bus.subscription(EventType::SystemError)
        .name("async-panics-before-future")
        .async_handler(|_e: Arc<Event>| -> futures::future::Ready<()> {
            panic!("panicked making the future")
        });
    let ok = Arc::clone(ok_calls);
    bus.subscribe_async(EventType::SystemError, move |_e: Arc<Event>| {
        let ok = Arc::clone(&ok);
        async move {
            ok.fetch_add(1, Ordering::SeqCst);
        }
    });
    let ok = Arc::clone(ok_calls);
    bus.subscribe(EventType::SystemError, move |_e: &Event| {
        ok.fetch_add(1, Ordering::SeqCst);
    });
}

/// How many of [`subscribe_failing_handlers`]' handlers fail per publish.
pub const FAILING: usize = 11;

/// A future that is pending on its first poll (waking its task at once) and
/// ready on the next: puts an async handler past its first poll, which the
/// bus makes during the fan-out, into the publish future's later polls.
#[derive(Default)]
pub struct YieldOnce {
    yielded: bool,
}

impl std::future::Future for YieldOnce {
    type Output = ();

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if self.yielded {
            return std::task::Poll::Ready(());
        }
        self.yielded = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    }
}
