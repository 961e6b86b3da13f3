//! A process forked from one that already changed subscriptions (so, on
//! Linux, registered for `membarrier`) keeps working: the child subscribes,
//! publishes and unsubscribes. The registration state is process-wide and
//! the kernel carries it into the child; were it ever not so, the child's
//! first subscription change would abort (a `membarrier` refused after
//! registration), and this test would see the signal.
//!
//! One test in its own binary, so the fork happens while no other test
//! thread can hold a lock of the bus.

#![cfg(target_os = "linux")]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use agentbus::{Event, EventBus, EventType};

/// What the child checks; its exit status is the number of the first check
/// that failed (0: all held).
fn child(bus: &EventBus, seen_before_fork: &AtomicU64) -> i32 {
    let seen = Arc::new(AtomicU64::new(0));
    let sink = Arc::clone(&seen);
    let id = bus.subscribe(EventType::TaskCompleted, move |_e: &Event| {
        sink.fetch_add(1, Ordering::Relaxed);
    });
    bus.publish_blocking(Event::new(EventType::TaskCompleted));
    if seen.load(Ordering::Relaxed) != 1 {
        return 1;
    }
    // The parent's subscription was copied with the bus: it saw it too.
    if seen_before_fork.load(Ordering::Relaxed) != 2 {
        return 2;
    }
    if !bus.unsubscribe(id) {
        return 3;
    }
    bus.publish_blocking(Event::new(EventType::TaskCompleted));
    if seen.load(Ordering::Relaxed) != 1 {
        return 4;
    }
    0
}

#[test]
fn a_forked_child_subscribes_publishes_and_unsubscribes() {
    let bus = EventBus::new();
    // A subscription change before the fork: the process decides (and on
    // Linux registers) its heavy fences here.
    let throwaway = bus.subscribe(EventType::TaskStarted, |_e: &Event| {});
    assert!(bus.unsubscribe(throwaway));
    let seen = Arc::new(AtomicU64::new(0));
    let sink = Arc::clone(&seen);
    bus.subscribe(EventType::TaskCompleted, move |_e: &Event| {
        sink.fetch_add(1, Ordering::Relaxed);
    });
    bus.publish_blocking(Event::new(EventType::TaskCompleted));

    // SAFETY: the child runs only `child` (no lock of this test's bus is held:
    // this thread holds none and no other thread uses the bus) and leaves
    // with `_exit`, so it neither returns into the test harness nor runs
    // destructors that belong to the parent.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        let status = child(&bus, &seen);
        // SAFETY: ends the child at once, as above.
        unsafe { libc::_exit(status) };
    }
    let mut status = 0;
    // SAFETY: waits for the child just forked; `status` is a valid out-pointer.
    let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(waited, pid, "waitpid: {}", std::io::Error::last_os_error());
    assert!(
        libc::WIFEXITED(status),
        "the child died of signal {} (an abort is a refused membarrier)",
        libc::WTERMSIG(status)
    );
    assert_eq!(
        libc::WEXITSTATUS(status),
        0,
        "the child's check that failed"
    );
    // The parent's bus is untouched by the child's changes.
    bus.publish_blocking(Event::new(EventType::TaskCompleted));
    assert_eq!(seen.load(Ordering::Relaxed), 2);
}
