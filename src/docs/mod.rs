//! Documentation only: how the bus behaves, how it is built, how it is
//! checked. Nothing here is code; each page is written once and the crate
//! docs, the types and the README link to it.
//!
//! - [`tour`]: the whole API in one page of doctested examples.
//! - [`semantics`]: what a publish guarantees, on every path: fan-out,
//!   filters, sync and async handlers, failures, re-entrancy, unsubscribe
//!   during dispatch, ordering, history, streams, `publish_blocking`,
//!   retries, timeouts, dead letters, concurrency limits and key ordering.
//! - [`design`]: why it is fast and why it is correct: the copy-on-write
//!   tables, the lock-free history ring, striped counters, ids without a
//!   system call, the sync shim that lets loom check the real code.
//! - [`reliability`]: every kind of bad input and what each entry point does
//!   with it; how the crate is tested, model-checked and fuzzed.

pub mod design;
pub mod reliability;
pub mod semantics;
pub mod tour;
