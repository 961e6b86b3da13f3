//! The recorder's writer costs nothing once traffic stops (crate docs: the
//! watch after a commit lasts 50 µs, or 5 ms while bursts keep coming, and
//! "nothing once it stops"), also while it waits out a failed write's
//! backoff. Measured as the CPU time of the writer thread itself, read from
//! `/proc` (Linux), so the test's own threads do not count.
//!
//! Its own test binary, and one test at a time (a lock), so the only writer
//! thread in the process is the one measured. It runs before the
//! PostgreSQL tests: a writer that never sleeps starves the connections on
//! its runtime, and those tests would hang instead of failing.
#![cfg(target_os = "linux")]

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agentbus::{Event, EventBus, EventType};
use agentbus_store::{Recorder, SqliteStore};
use agentbus_testkit::store::Faulty;

/// One test at a time: each measures the only writer thread there is.
static ONE_WRITER: Mutex<()> = Mutex::new(());

/// The CPU time (user + system) of every thread named after the recorder's
/// writer (`agentbus-store-writer`, cut to 15 bytes by the kernel).
fn writer_cpu() -> Duration {
    // SAFETY: `sysconf` reads a constant of the system; no memory is shared.
    let ticks_per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    let mut ticks = 0;
    let mut writers = 0;
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let path = task.unwrap().path();
        let Ok(name) = std::fs::read_to_string(path.join("comm")) else {
            continue; // the thread ended meanwhile
        };
        if name.trim_end() != "agentbus-store-" {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(path.join("stat")) else {
            continue;
        };
        // Fields after the name (which is in parentheses): state is the
        // 3rd field of the line, utime the 14th and stime the 15th.
        let after_name = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = after_name.split(' ').collect();
        ticks += fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        writers += 1;
    }
    assert_eq!(writers, 1, "exactly one writer thread to measure");
    Duration::from_millis(ticks * 1000 / ticks_per_second)
}

/// The writer's CPU time over one second of no traffic.
async fn cpu_over_a_quiet_second() -> Duration {
    let before = writer_cpu();
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let spent = writer_cpu() - before;
    assert!(started.elapsed() >= Duration::from_secs(1));
    spent
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_without_traffic_sleeps() {
    let _one = ONE_WRITER
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let bus = EventBus::new();
    let recorder = Recorder::attach(&bus, SqliteStore::open_in_memory().unwrap());
    // Bursts, so the writer watches for the longest (5 ms), then a quiet.
    for _ in 0..20 {
        bus.publish(Event::new(EventType::TaskCreated)).await;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(recorder.flush().await.unwrap(), 20);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let spent = cpu_over_a_quiet_second().await;
    assert!(
        spent < Duration::from_millis(100),
        "the writer spent {spent:?} of CPU in a second without traffic"
    );
    recorder.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_waiting_out_a_backoff_sleeps() {
    let _one = ONE_WRITER
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let store = Arc::new(Faulty::new(SqliteStore::open_in_memory().unwrap()));
    let bus = EventBus::new();
    bus.subscription(EventType::TaskCompleted)
        .name("exporter")
        .handler(|_e: &Event| -> Result<(), String> { Err("exporter down".into()) });
    let recorder = Recorder::builder()
        .retry_backoff(Duration::from_secs(3), Duration::from_secs(3))
        .attach(&bus, Arc::clone(&store));
    store.failing_letters.store(true, Ordering::SeqCst);
    bus.publish(Event::new(EventType::TaskCompleted)).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while recorder.stats().errors == 0 {
        assert!(Instant::now() < deadline, "no failed dead-letter write");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let spent = cpu_over_a_quiet_second().await;
    assert!(
        spent < Duration::from_millis(100),
        "the writer spent {spent:?} of CPU in a second of backoff"
    );
    assert_eq!(recorder.stats().errors, 1, "retried only after the backoff");
    store.failing_letters.store(false, Ordering::SeqCst);
    recorder.close().await.unwrap();
}
