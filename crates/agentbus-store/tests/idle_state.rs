//! An idle recorder costs nothing: once traffic stops and its short watch
//! of the queue is over, the writer thread sleeps until woken. (Alone in
//! its binary: it looks at every writer thread of the process.)

/// The writer threads of this process (named `agentbus-store-writer`,
/// which Linux cuts to 15 bytes), by their `/proc` task directories.
#[cfg(target_os = "linux")]
fn writer_threads() -> Vec<std::path::PathBuf> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .map(|task| task.unwrap().path())
        .filter(|task| {
            std::fs::read_to_string(task.join("comm"))
                .is_ok_and(|name| "agentbus-store-writer".starts_with(name.trim_end()))
        })
        .collect()
}

/// A thread's scheduler state: `R` running or ready to run, `S` asleep.
#[cfg(target_os = "linux")]
fn state(task: &std::path::Path) -> char {
    let stat = std::fs::read_to_string(task.join("stat")).unwrap();
    // `pid (comm) state ...`: the name may hold spaces, so after the last `)`.
    let after_name = &stat[stat.rfind(')').unwrap() + 1..];
    after_name.trim_start().chars().next().unwrap()
}

/// Sampled 50 times over a second of quiet, the writer of a recorder over
/// SQLite (dead letters kept too) is asleep every time but a few: a writer
/// that spun would be running or waiting for a core (`R`) in nearly all,
/// however loaded the machine.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn an_idle_writer_sleeps_until_woken() {
    use std::time::Duration;

    use agentbus::{Event, EventBus, EventType};
    use agentbus_store::{Recorder, SqliteStore};

    let dir = tempfile::tempdir().unwrap();
    let bus = EventBus::new();
    let recorder = Recorder::attach(
        &bus,
        SqliteStore::open(dir.path().join("events.db")).unwrap(),
    );
    bus.publish(Event::new(EventType::TaskCreated)).await;
    assert_eq!(recorder.flush().await.unwrap(), 1);
    let writers = writer_threads();
    assert_eq!(writers.len(), 1, "one recorder, one writer thread");
    // Past the 5 ms watch after the last commit.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut running = 0;
    for _ in 0..50 {
        if state(&writers[0]) == 'R' {
            running += 1;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        running <= 5,
        "the idle writer was running in {running} of 50 samples"
    );
    recorder.close().await.unwrap();
}
