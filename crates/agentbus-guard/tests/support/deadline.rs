//! A deadline for a test whose code could loop for ever (a window's probe
//! that never meets a free slot, a lock never released, a walk that never
//! advances): past [`DEADLINE`] the whole test binary fails at once, with a
//! message naming the test, instead of hanging until something outside
//! kills it (cargo-mutants counts such a hang as a timeout, not a failure).
//!
//! It ends the process rather than failing the one test: a thread stuck
//! in a loop cannot be stopped, and the bug that hangs one test usually
//! hangs the tests beside it, which would each wait out a deadline of their
//! own, one after another.
//!
//! One file for the unit tests (`src/lib.rs` includes it under
//! `#[cfg(test)]`) and the integration tests (`#[path]`).

use std::io::Write;
use std::sync::mpsc;
use std::time::Duration;

/// How long a test may run: about ten times the slowest of them
/// (`tests/dedup.rs` `agrees_with_a_model_of_the_rule`, 3.4 s in a debug
/// build at load 6 on 2 cores), and half of cargo-mutants' 60 s floor, so
/// that a mutant that hangs is caught well before it would time out.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// Watches the test that made it until dropped (at the test's end, or as
/// it unwinds from a failed assertion).
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
