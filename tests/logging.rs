//! Logging: every handler or filter failure is a `WARN` event carrying the
//! handler's name (or subscription id), the event id and the error.
//!
//! One global subscriber, installed before anything in this binary logs,
//! writes into a buffer owned by the emitting thread. A per-test scoped
//! subscriber (`with_default`) is not enough here: tests running in parallel
//! race on `tracing`'s per-callsite interest cache and can lose events.

use std::cell::RefCell;
use std::io::Write;
use std::sync::Once;
use std::time::Duration;

use agentbus::{Event, EventBus, EventType};

mod common;
use common::{counter, subscribe_failing_handlers, FAILING};

thread_local! {
    static CAPTURED: RefCell<Option<Vec<u8>>> = const { RefCell::new(None) };
}

/// Appends to this thread's capture buffer, if a test opened one.
struct ThreadBuffer;

impl Write for ThreadBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        CAPTURED.with(|captured| {
            if let Some(buffer) = captured.borrow_mut().as_mut() {
                buffer.extend_from_slice(bytes);
            }
        });
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs `body` and returns what it logged on this thread.
fn capture_logs<T>(body: impl FnOnce() -> T) -> (T, String) {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let subscriber = tracing_subscriber::fmt()
            .with_writer(|| ThreadBuffer)
            .with_ansi(false)
            .with_max_level(tracing::Level::TRACE)
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("no other global subscriber");
    });
    CAPTURED.with(|captured| *captured.borrow_mut() = Some(Vec::new()));
    let value = body();
    let bytes = CAPTURED.with(|captured| captured.borrow_mut().take().unwrap_or_default());
    (value, String::from_utf8_lossy(&bytes).into_owned())
}

#[test]
fn smoke() {
    let bus = EventBus::new();
    bus.subscription(EventType::SystemWarning)
        .name("smoke-handler")
        .handler(|_e: &Event| -> Result<(), &str> { Err("smoke error") });
    let (_, logs) = capture_logs(|| bus.publish_blocking(Event::new(EventType::SystemWarning)));
    assert!(logs.contains("WARN"), "{logs}");
    assert!(logs.contains("smoke-handler"), "{logs}");
    assert!(logs.contains("smoke error"), "{logs}");
}

#[test]
fn failures_are_logged_with_name_event_id_and_error() {
    let bus = EventBus::new();
    let ok_calls = counter();
    subscribe_failing_handlers(&bus, &ok_calls);
    let event = Event::new(EventType::SystemError);
    let event_id = event.id.to_string();
    let (outcome, logs) = capture_logs(|| bus.publish_blocking(event));
    assert_eq!(outcome.failed, FAILING);

    let warnings: Vec<&str> = logs.lines().filter(|l| l.contains("WARN")).collect();
    assert_eq!(warnings.len(), FAILING, "{logs}");
    for line in &warnings {
        assert!(line.contains(&event_id), "{line}");
    }
    let line_of = |name: &str| -> &str {
        warnings
            .iter()
            .find(|l| {
                l.contains(&format!("handler=\"{name}\""))
                    || l.contains(&format!("handler={name} "))
            })
            .unwrap_or_else(|| panic!("no warning for {name}:\n{logs}"))
    };
    assert!(line_of("returns-err").contains("disk full"));
    assert!(line_of("panics-str").contains("static str panic"));
    assert!(line_of("panics-string").contains("formatted panic for system.error"));
    assert!(line_of("panics-u32").contains("panicked: non-string panic payload"));
    assert!(line_of("panics-custom").contains("panicked: non-string panic payload"));
    // One catch_unwind surrounds the whole fan-out: the report still says
    // whether the filter or the handler panicked.
    assert!(line_of("filter-panics").contains("filter panicked: filter exploded"));
    assert!(!line_of("panics-str").contains("filter panicked"));
    assert!(line_of("async-err").contains("async went wrong"));
    assert!(line_of("async-panics").contains("async panic after await"));
    assert!(line_of("async-err-after-pending").contains("async failed on a later poll"));
    assert!(line_of("async-panics-after-pending").contains("async panic on a later poll"));
    assert!(line_of("async-panics-before-future").contains("panicked making the future"));
}

#[test]
fn unnamed_handler_is_logged_by_subscription_id() {
    let bus = EventBus::new();
    let id = bus.subscribe(
        EventType::SystemWarning,
        |_e: &Event| -> Result<(), String> { Err("low disk".into()) },
    );
    let (_, logs) = capture_logs(|| bus.publish_blocking(Event::new(EventType::SystemWarning)));
    assert!(logs.contains(&id.to_string()), "{logs}");
    assert!(logs.contains("low disk"), "{logs}");
}

#[test]
fn successful_publish_logs_no_warning() {
    let bus = EventBus::new();
    bus.subscribe(EventType::SystemWarning, |_e: &Event| {});
    let (_, logs) = capture_logs(|| bus.publish_blocking(Event::new(EventType::SystemWarning)));
    assert!(!logs.contains("WARN"), "{logs}");
}

/// `publish` cannot return a guard's rejection, so it logs it: one WARN at
/// most per second, naming the reason and pointing at `try_publish`, and
/// the next one counts the rejections folded into it.
#[test]
fn rejections_on_publish_are_logged_once_a_second_with_what_was_suppressed() {
    let bus = EventBus::builder()
        .guard(|event: &Event| {
            if event.data["bad"] == true {
                Err(agentbus::Rejection::custom("bad-data", "data marked bad"))
            } else {
                Ok(())
            }
        })
        .build();
    let bad = || Event::new(EventType::TaskCreated).with_data(serde_json::json!({"bad": true}));
    let warnings = |logs: &str| {
        logs.lines()
            .filter(|line| line.contains("WARN") && line.contains("use try_publish"))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let (_, logs) = capture_logs(|| {
        for _ in 0..5 {
            bus.publish_blocking(bad());
        }
        bus.publish_blocking(Event::new(EventType::TaskCreated));
    });
    let first = warnings(&logs);
    assert_eq!(first.len(), 1, "{logs}");
    assert!(
        first[0].contains("rejected by bad-data: data marked bad"),
        "{logs}"
    );
    assert!(first[0].contains("reason=\"custom\""), "{logs}");
    assert!(first[0].contains("suppressed=0"), "{logs}");
    std::thread::sleep(Duration::from_millis(1_100));
    let (_, logs) = capture_logs(|| bus.publish_blocking(bad()));
    let second = warnings(&logs);
    assert_eq!(second.len(), 1, "{logs}");
    assert!(second[0].contains("suppressed=4"), "{logs}");
    assert_eq!(bus.stats().events_rejected, 6);
}

/// A full dead-letter store drops its oldest letter for each new one and
/// says so: a WARN on the first drop, then on every thousandth, not on each.
#[test]
fn dropped_dead_letters_are_logged_on_the_first_and_every_thousandth() {
    let bus = EventBus::builder().dead_letter_capacity(2).build();
    bus.subscription(EventType::TaskFailed)
        .name("always down")
        .handler(|_e: &Event| -> Result<(), String> { Err("down".into()) });
    let (_, logs) = capture_logs(|| {
        for _ in 0..2 + 1_000 {
            bus.publish_blocking(Event::new(EventType::TaskFailed));
        }
    });
    let warnings: Vec<_> = logs
        .lines()
        .filter(|line| line.contains("WARN") && line.contains("dead letters full"))
        .collect();
    assert_eq!(warnings.len(), 2, "{warnings:#?}");
    assert!(warnings[0].contains("dropped=1 "), "{}", warnings[0]);
    assert!(warnings[1].contains("dropped=1000 "), "{}", warnings[1]);
    assert_eq!(bus.dead_letters().dropped(), 1_000);
    assert_eq!(bus.dead_letters().len(), 2);
}
