//! What a retried handler's failures log, from whichever thread retries
//! it: its own test binary, with a subscriber that collects every thread's
//! lines (`tests/logging.rs` collects only the test thread's).

use std::io::Write;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentbus::{Event, EventBus, EventType, Retry};

mod common;
use common::settle;

static LINES: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct Everywhere;

impl Write for Everywhere {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        LINES.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn smoke() {
    let _ = tracing_subscriber::fmt()
        .with_writer(|| Everywhere)
        .with_ansi(false)
        .try_init();
    std::thread::spawn(|| tracing::warn!("from another thread"))
        .join()
        .unwrap();
    assert!(String::from_utf8_lossy(&LINES.lock().unwrap()).contains("from another thread"));
}

/// Each failed attempt is logged once, the last one too: three attempts,
/// three warnings, each with its own error.
#[test]
fn each_failed_attempt_is_logged_once() {
    let _ = tracing_subscriber::fmt()
        .with_writer(|| Everywhere)
        .with_ansi(false)
        .try_init();
    let bus = EventBus::new();
    let calls = Arc::new(AtomicU32::new(0));
    let counted = Arc::clone(&calls);
    bus.subscription(EventType::TaskFailed)
        .name("flaky exporter")
        .retry(Retry::attempts(3).delay(Duration::from_millis(1)))
        .handler(move |_e: &Event| -> Result<(), String> {
            Err(format!(
                "failure #{}",
                counted.fetch_add(1, Ordering::SeqCst) + 1
            ))
        });
    bus.publish_blocking(Event::new(EventType::TaskFailed));
    settle(&bus);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    let text = String::from_utf8_lossy(&LINES.lock().unwrap()).into_owned();
    let ours: Vec<_> = text
        .lines()
        .filter(|line| line.contains("flaky exporter"))
        .collect();
    for n in 1..=3 {
        let failure = format!("failure #{n}");
        let count = ours.iter().filter(|line| line.contains(&failure)).count();
        assert_eq!(count, 1, "{failure} in {ours:#?}");
    }
}
