//! What a test logged through `tracing`, on its own thread or on any.
//!
//! [`capture_logs`] installs one global subscriber the first time it runs
//! (every level, no colours) that writes into a buffer owned by the
//! emitting thread, and returns what `body` logged on the calling thread.
//! [`ProcessLogs`] shares that subscriber and collects what every thread
//! logs while it is open (a recorder's writer thread, a bridge's runtime),
//! including other tests of the binary running meanwhile: assert on what
//! only the test itself can have logged.
//! A per-test scoped subscriber (`tracing::subscriber::with_default`) is not
//! enough: tests running in parallel race on `tracing`'s per-callsite
//! interest cache and can lose events. So only what is logged on the
//! calling thread is seen (a handler run by `publish_blocking`, a store
//! read inline by `Recorder::attach`), and a test binary that uses it must
//! not install a global subscriber of its own. The core's
//! `tests/logging.rs` does the same for the core, which does not depend on
//! this crate.
//!
//! ```
//! let (answer, logs) = agentbus_testkit::logs::capture_logs(|| {
//!     tracing::warn!(answer = 42, "deep thought");
//!     42
//! });
//! assert_eq!(answer, 42);
//! assert!(logs.contains("WARN") && logs.contains("answer=42"), "{logs}");
//! ```

use std::cell::RefCell;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, Once, PoisonError};
use std::time::Duration;

thread_local! {
    static CAPTURED: RefCell<Option<Vec<u8>>> = const { RefCell::new(None) };
}

/// What every thread logs while a [`ProcessLogs`] is open.
static PROCESS: Mutex<Option<Vec<u8>>> = Mutex::new(None);

/// Whether [`PROCESS`] is `Some`: lets every line logged while no
/// [`ProcessLogs`] is open skip the mutex, which every thread of every test
/// would otherwise take once per line.
static PROCESS_OPEN: AtomicBool = AtomicBool::new(false);

/// How long [`ProcessLogs::start`] waits for another collection to end:
/// the longest test that collects takes a few seconds, so this is a test
/// that kept its collection open (a hang), and it fails instead of waiting.
pub const WAIT_FOR_ANOTHER: Duration = Duration::from_secs(300);

/// Signalled when a [`ProcessLogs`] ends, for the next one waiting.
static PROCESS_FREE: Condvar = Condvar::new();

/// Appends to this thread's capture buffer, if a test opened one, and to the
/// process's, if one is open.
struct ThreadBuffer;

impl Write for ThreadBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        CAPTURED.with(|captured| {
            if let Some(buffer) = captured.borrow_mut().as_mut() {
                buffer.extend_from_slice(bytes);
            }
        });
        // Acquire pairs with the Release store in `ProcessLogs::start`: a
        // line logged after `start` returned (on a thread it started, or
        // told) sees the flag set.
        if PROCESS_OPEN.load(Ordering::Acquire) {
            if let Some(buffer) = PROCESS
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .as_mut()
            {
                buffer.extend_from_slice(bytes);
            }
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs `body` and returns its value and what it logged on this thread,
/// one formatted line per event (`LEVEL target: message field=value ...`).
///
/// # Panics
///
/// If another global `tracing` subscriber was installed first.
pub fn capture_logs<T>(body: impl FnOnce() -> T) -> (T, String) {
    install();
    CAPTURED.with(|captured| *captured.borrow_mut() = Some(Vec::new()));
    let value = body();
    let bytes = CAPTURED.with(|captured| captured.borrow_mut().take().unwrap_or_default());
    (value, String::from_utf8_lossy(&bytes).into_owned())
}

/// The one global subscriber, installed on first use: every level, no
/// colours (the workspace build turns `tracing-subscriber`'s `ansi` feature
/// on), into [`ThreadBuffer`].
fn install() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let subscriber = tracing_subscriber::fmt()
            .with_writer(|| ThreadBuffer)
            .with_ansi(false)
            .with_max_level(tracing::Level::TRACE)
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("no other global subscriber");
    });
}

/// Collects what every thread of the process logs, from
/// [`start`](Self::start) to [`finish`](Self::finish), in the format of
/// [`capture_logs`]: for what a test's background threads log.
///
/// One at a time per process: a second `start` waits until the first
/// collection ends. Other tests running meanwhile log into it too.
///
/// ```
/// let logs = agentbus_testkit::logs::ProcessLogs::start();
/// std::thread::spawn(|| tracing::error!(abandoned = 7, "gave up")).join().unwrap();
/// let text = logs.finish();
/// assert!(text.lines().any(|line| line.contains("ERROR") && line.contains("abandoned=7")), "{text}");
/// ```
#[derive(Debug)]
#[must_use = "finish() returns what was logged"]
pub struct ProcessLogs(());

impl ProcessLogs {
    /// Starts collecting, after any other collection of the process ends.
    ///
    /// # Panics
    ///
    /// If another global `tracing` subscriber was installed first, or if
    /// another collection stays open for [`WAIT_FOR_ANOTHER`].
    pub fn start() -> Self {
        install();
        let process = PROCESS.lock().unwrap_or_else(PoisonError::into_inner);
        let (mut process, waited) = PROCESS_FREE
            .wait_timeout_while(process, WAIT_FOR_ANOTHER, |open| open.is_some())
            .unwrap_or_else(PoisonError::into_inner);
        assert!(
            !waited.timed_out(),
            "another ProcessLogs collection stayed open for {WAIT_FOR_ANOTHER:?}: \
             a test that never finished or dropped its own"
        );
        *process = Some(Vec::new());
        PROCESS_OPEN.store(true, Ordering::Release);
        Self(())
    }

    /// Stops collecting and returns what was logged.
    pub fn finish(self) -> String {
        // Not through `Drop`: a `ProcessLogs` started by another test as soon
        // as this one's buffer is taken must keep its own.
        std::mem::forget(self);
        // Relaxed: what is collected is read under the mutex below.
        PROCESS_OPEN.store(false, Ordering::Relaxed);
        let bytes = PROCESS
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .unwrap_or_default();
        PROCESS_FREE.notify_one();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl Drop for ProcessLogs {
    /// A test that panicked before [`finish`](Self::finish) stops the
    /// collection, so the next one can start.
    fn drop(&mut self) {
        PROCESS_OPEN.store(false, Ordering::Relaxed);
        PROCESS
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        PROCESS_FREE.notify_one();
    }
}
