//! Deadlines a hang cannot escape.
//!
//! - [`deadline`]: for a test whose code could loop for ever without
//!   yielding (a probe that never meets a free slot, a lock never
//!   released): past [`DEADLINE`] the whole test binary fails at once, with
//!   a message naming the test, instead of hanging until something outside
//!   kills it (cargo-mutants counts such a hang as a timeout, not a
//!   failure). It ends the process rather than failing the one test: a
//!   thread stuck in a loop cannot be stopped, and the bug that hangs one
//!   test usually hangs the tests beside it, which would each wait out a
//!   deadline of their own, one after another.
//! - [`isolated_within`]: for a future that could spin or block its
//!   runtime (a stream that never yields, a close that joins a thread that
//!   never stops): it runs on a thread and runtime of its own, and the
//!   test's runtime only waits on a channel, so the test fails within the
//!   limit and the stuck thread is left behind.
//!
//! (`tokio::time::timeout` alone fires only when the future it wraps
//! returns `Pending`, and a runtime's shutdown waits for a spinning worker
//! and for its blocking tasks.)
//!
//! ```
//! use std::time::Duration;
//!
//! let _deadline = agentbus_testkit::deadline::deadline();
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let sum = agentbus_testkit::deadline::isolated_within(
//!     Duration::from_secs(10),
//!     "a sum",
//!     async { (1..=10).sum::<u32>() },
//! )
//! .await;
//! assert_eq!(sum, 55);
//! # });
//! ```

use std::future::Future;
use std::io::Write;
use std::sync::mpsc;
use std::time::Duration;

/// How long a test under [`deadline`] may run: ten times the slowest such
/// test (`agentbus-guard`'s model test, 3.4 s in a debug build at load 6
/// on 2 cores), and half of cargo-mutants' 60 s floor, so that a mutant that
/// hangs is caught well before it would time out.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// Watches the test that made it until dropped (at the test's end, or as
/// it unwinds from a failed assertion).
#[derive(Debug)]
#[must_use = "the deadline is lifted as soon as this is dropped"]
pub struct Deadline {
    _lifted_on_drop: mpsc::Sender<()>,
}

/// Starts the deadline of the current test: `let _deadline = deadline();`.
pub fn deadline() -> Deadline {
    let test = std::thread::current().name().unwrap_or("a test").to_owned();
    let (lifted_on_drop, lifted) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = lifted.recv_timeout(DEADLINE) {
            // Straight to stderr: `eprintln!` here would go to the test's
            // captured output, which is never printed if the process exits.
            let _ = writeln!(
                std::io::stderr(),
                "{test} has not finished within {DEADLINE:?}: the code under test \
                 loops for ever or is far too slow; failing the test binary"
            );
            std::process::exit(101);
        }
    });
    Deadline {
        _lifted_on_drop: lifted_on_drop,
    }
}

/// `future`'s output, run on a thread and a two-worker runtime of its own,
/// or a panic naming `what` once `limit` has passed. A panic of `future`
/// comes back as the caller's. Tasks `future` spawns run on its runtime,
/// which ends with it.
pub async fn isolated_within<F>(limit: Duration, what: &str, future: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let runner = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime of its own");
        let _ = sender.send(runtime.block_on(future));
    });
    match tokio::time::timeout(limit, receiver).await {
        Ok(Ok(output)) => output,
        Ok(Err(_)) => match runner.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("the runner ended without sending"),
        },
        Err(_) => panic!("{what} did not end within {limit:?}: a hang?"),
    }
}
