//! What a test logged through `tracing`, on its own thread.
//!
//! [`capture_logs`] installs one global subscriber the first time it runs
//! (every level, no colours) that writes into a buffer owned by the
//! emitting thread, and returns what `body` logged on the calling thread.
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
use std::sync::Once;

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

/// Runs `body` and returns its value and what it logged on this thread,
/// one formatted line per event (`LEVEL target: message field=value ...`).
///
/// # Panics
///
/// If another global `tracing` subscriber was installed first.
pub fn capture_logs<T>(body: impl FnOnce() -> T) -> (T, String) {
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
