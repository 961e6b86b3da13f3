//! This process's threads as Linux shows them in `/proc/self/task`: found by
//! name, and their scheduler state, CPU time and context switches. For tests
//! of what a background thread does while nobody calls it (a recorder's
//! writer sleeping, a bridge's runtime having the workers asked for).
//!
//! A thread's name is cut to 15 bytes by the kernel, so a thread spawned as
//! `agentbus-store-writer` is found as `agentbus-store-`; a thread that ended
//! meanwhile is skipped, and one just spawned may not carry its name yet.
//!
//! ```
//! # #[cfg(target_os = "linux")] {
//! use agentbus_testkit::threads;
//!
//! let (started, running) = std::sync::mpsc::channel();
//! let (stop, stopped) = std::sync::mpsc::channel::<()>();
//! let sleeper = std::thread::Builder::new()
//!     .name("testkit-sleeper".into())
//!     .spawn(move || {
//!         started.send(()).unwrap();
//!         stopped.recv()
//!     })
//!     .unwrap();
//! running.recv().unwrap(); // named by now: the name is set before its code runs
//! let task = &threads::named("testkit-sleeper")[0];
//! assert!(threads::cpu(task) < std::time::Duration::from_secs(1));
//! stop.send(()).unwrap();
//! sleeper.join().unwrap().unwrap();
//! # }
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

/// The `/proc` directories of this process's threads spawned with `name`
/// (compared as the kernel keeps it: its first 15 bytes).
pub fn named(name: &str) -> Vec<PathBuf> {
    let kept = &name.as_bytes()[..name.len().min(15)];
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    tasks
        .filter_map(|task| {
            let path = task.ok()?.path();
            let comm = std::fs::read_to_string(path.join("comm")).ok()?;
            (comm.trim_end_matches('\n').as_bytes() == kept).then_some(path)
        })
        .collect()
}

/// A thread's scheduler state: `R` running or ready to run, `S` asleep,
/// `D` in uninterruptible sleep, ...
///
/// # Panics
///
/// If the thread has ended.
pub fn state(task: &Path) -> char {
    let stat = stat(task);
    // `pid (comm) state ...`: the name may hold spaces, so after the last `)`.
    let after_name = &stat[stat.rfind(')').expect("a name in parentheses") + 1..];
    after_name
        .trim_start()
        .chars()
        .next()
        .expect("a state after the name")
}

/// A thread's CPU time so far, user and system, to the kernel's tick
/// (10 ms).
///
/// # Panics
///
/// If the thread has ended.
pub fn cpu(task: &Path) -> Duration {
    /// `USER_HZ`, the unit of `/proc`'s times: 100 on every Linux ABI.
    const TICKS_PER_SECOND: u64 = 100;
    let stat = stat(task);
    // After the name: the state is field 3 of the line, utime 14, stime 15.
    let after_name = &stat[stat.rfind(')').expect("a name in parentheses") + 2..];
    let fields: Vec<&str> = after_name.split(' ').collect();
    let ticks: u64 =
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime");
    Duration::from_millis(ticks * 1000 / TICKS_PER_SECOND)
}

/// A thread's context switches so far: (voluntary, involuntary). A sleep
/// or a wait until woken is voluntary; being preempted, or yielding to a
/// thread that was waiting for the core, is not.
///
/// # Panics
///
/// If the thread has ended.
pub fn switches(task: &Path) -> (u64, u64) {
    let status = std::fs::read_to_string(task.join("status")).expect("a live thread");
    let count = |field: &str| -> u64 {
        status
            .lines()
            .find_map(|line| line.strip_prefix(field))
            .unwrap_or_else(|| panic!("a {field} line"))
            .trim()
            .parse()
            .expect("a count")
    };
    (
        count("voluntary_ctxt_switches:"),
        count("nonvoluntary_ctxt_switches:"),
    )
}

fn stat(task: &Path) -> String {
    std::fs::read_to_string(task.join("stat")).expect("a live thread")
}
