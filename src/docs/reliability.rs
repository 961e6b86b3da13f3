//! How the crate is checked, and what it does with bad input.
//!
//! # What is checked
//!
//! A bus that agent runtimes link must never be the thing that crashes them.
//! What is checked, and how to run it:
//!
//! | what | how | command |
//! |---|---|---|
//! | every semantic above | integration tests by area (`tests/publish.rs`, `subscribe.rs`, `publisher.rs`, `history.rs`, `stream.rs`, `stats.rs`, `logging.rs`, `event.rs`, `alloc.rs`, `bad_input.rs`) | `cargo test` |
//! | concurrency, exhaustively | 15 loom models: table swap vs publish/subscribe/unsubscribe (through the bus and through a `Publisher` holding the old table), publish vs unsubscribe (no call after unsubscribe returns, no leak), the history ring with one and two writers against a reader at capacities 1, 2 and 3, `clear_history` vs publish and vs a reader, `reset` vs publish, causation per thread (and counters that lose no update), an `EventStream` polled while another thread publishes (no lost wakeup) and closed while it drains (no lost last event). Loom builds keep released events in a graveyard and fail a model that reads one, so a use-after-free is an assertion, not silent UB | `LOOM_MAX_PREEMPTIONS=4 CARGO_TARGET_DIR=target/loom RUSTFLAGS="--cfg agentbus_loom" cargo test --release --test loom` |
//! | hostile input | three libFuzzer targets: `decode` (bytes → `Event` → JSON → equal `Event`), `bus_ops` (random subscribe / filter / unsubscribe with live, stale and foreign ids / publish / history / clear / reset / stats, against a `Vec` + `VecDeque` reference model), `history_ring` (capacities 0–64 against a `VecDeque`, checking every released `Arc`) | `cargo +nightly fuzz run decode` (or `bus_ops`, `history_ring`); `fuzz/smoke.sh` runs each briefly |
//! | load | `tests/stress.rs`: 4 publishers + subscription churn + 2 history readers with exact delivery counts, per-publisher order, no duplicate or torn history entries and `history_size == capacity` at the end; handlers that panic (any payload, even one whose `Drop` panics), fail, block, publish recursively and unsubscribe themselves; 1.5 M publishes with a full history, checking pushed-out events are freed and resident memory stays flat | `cargo test --release --test stress` |
//! | soak | the same mix for as long as you like, printing the counts | `AGENTBUS_SOAK_SECS=600 cargo test --release --test stress soak -- --nocapture` |
//! | the tests themselves | mutation testing: cargo-mutants changes `src/` one mutant at a time (operators flipped, bodies replaced by defaults) and runs the unit and integration tests against each; a mutant they do not catch is a gap, or an equivalent change listed with its reason in `benches/MUTANTS.md` | `bash .ci/mutants` (over an hour on two cores; resumable) |
//!
//! Figures from the runs behind this release (2-core AMD EPYC VM, shared with
//! other jobs while they ran):
//!
//! - loom: 12 models pass; 511,555 interleavings in 49 s at preemption bound 4
//!   (CI's bound; commit `f740c49`). During development each
//!   model was run by hand against a planted bug and failed (no deferral of
//!   released events, either fence of the loom build's read/release handshake
//!   removed, no lapped-writer check, clear emptying newer slots, reset keeping
//!   history, unsubscribe not removing the table entry, a `Publisher` skipping
//!   its version check). The two `EventStream` models and the counter check
//!   each fail with their bug planted (no second look after registering; no
//!   second pop once closed; a shared stripe bumped by load and store).
//! - mutation testing: the last full run of `.ci/mutants`, its survivors and
//!   the equivalent mutants are in `benches/MUTANTS.md`.
//! - fuzzing (long runs made during development; CI runs 20 s per target):
//!   `decode` 7.4 M runs in 241 s (≈ 31 k exec/s), `bus_ops` 299 k runs
//!   in 512 s (≈ 580 exec/s), `history_ring` 439 k runs in 271 s (≈ 1.6 k exec/s),
//!   no crash after one fix (serde_json's `float_roundtrip`: without it a float
//!   could decode one ulp off and a re-encoded event was not equal to itself).
//!   Both model targets crashed at once on bugs planted by hand (not automated).
//!   Since `bus_ops` also publishes through a long-lived `Publisher` and uses
//!   the field filters: 44,009 runs in 91 s, then 134,603 in 301 s; since the
//!   history slots are packed and indexed without a division, `history_ring`
//!   391,405 runs in 241 s; no crash.
//! - stress: the suite passes in 2–6.5 s in debug; a 60 s soak published
//!   135,355,904 events, delivered 243,744,884, counted 1,691,950 deliberate
//!   failures, churned 15,366,128 subscriptions and checked 88,095,947 history
//!   entries in 194,164 reads, every count exact. Resident memory moved from
//!   32.1 MB to 33.2 MB over the second half of 1.5 M publishes. Since half the
//!   mix's publishers go through a `Publisher` and one permanent subscriber uses
//!   a field filter, a 30 s soak (`AGENTBUS_SOAK_SECS=30`, commit after
//!   `a7c3fe4`) published 151,351,552 events, delivered 273,739,385, counted
//!   1,891,895 failures, churned 16,801,096 subscriptions and checked
//!   101,480,098 history entries in 225,452 reads, all exact.
//!
//! # Bad input, and what each entry point does with it
//!
//! | input | outcome |
//! |---|---|
//! | unknown event type name (`"task.finished".parse()`, or in JSON) | `ParseEventTypeError` (the name echoed, cut at 64 bytes) / `DecodeEventError` |
//! | malformed JSON, missing `"type"`, a field of the wrong type, an invalid id or timestamp | `DecodeEventError` with line and column |
//! | JSON nested deeper than 128 levels (e.g. 100,000 nested arrays) | `DecodeEventError`, no stack overflow |
//! | a huge payload (10 MB string in `data`) | decodes and round-trips |
//! | non-object `data` (`[1, 2]`, `null`) | kept as given; `Event::new` always uses `{}` |
//! | timestamp before 1970 or after 9999 | `to_json` returns `EncodeEventError`; the event still publishes |
//! | a decoded event without `id` whose `timestamp` is far in the future or past | its fresh id (and every later one) is dated by the real clock, never by the claimed time |
//! | a location string holding a password or token (store, NATS server, URL) | shown through [`Redacted`](crate::Redacted) by every extra crate: secrets as `***` |
//! | history capacity 0 | history off: `history()` is empty, `history_size` 0 |
//! | history capacity above `MAX_HISTORY_CAPACITY` (4 Mi) | `try_build` → `BuildError::HistoryCapacityTooLarge`; `build` lowers it to the maximum with a `tracing` warning |
//! | history query limit 0 / `usize::MAX` | empty / the whole history |
//! | stream capacity 0 | treated as 1 |
//! | unsubscribe with a stale or repeated id, or one from another bus | `false`, nothing removed |
//! | a handler or filter that panics (any payload), returns `Err`, or whose captures panic on drop | counted as failed, logged, isolated; publish does not panic |
//!
//! # Running the checks
//!
//! ```text
//! cargo test
//! ```
//!
//! runs the unit, integration and doc tests (`tests/` covers each semantic above,
//! bad input, allocation-free sync publishing and a bounded stress run).
//!
//! The loom models run in release mode; the `cfg` changes every crate's build,
//! so give them their own target directory:
//!
//! ```text
//! CARGO_TARGET_DIR=target/loom RUSTFLAGS="--cfg agentbus_loom" cargo test --release --test loom
//! ```
//!
//! Each model uses a preemption bound of 3 unless `LOOM_MAX_PREEMPTIONS` is set
//! (CI uses 4), and prints how many interleavings it explored.
//!
//! Fuzzing needs a nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`
//! first). The targets are `decode` (JSON to `Event` and back), `bus_ops`
//! (subscribe / unsubscribe / publish / history / clear / reset against a
//! reference model) and `history_ring` (any capacity against a `VecDeque`):
//!
//! ```text
//! cargo +nightly fuzz run decode
//! ```
//!
//! `fuzz/smoke.sh` runs every target briefly from its committed corpus.
//!
//! Mutation testing needs cargo-mutants (`.ci/mutants` installs it); settings
//! are in `.cargo/mutants.toml`. It runs the shards one after another and
//! skips those already finished, so it resumes after an interruption:
//!
//! ```text
//! bash .ci/mutants
//! ```
//!
//! Benchmarks (criterion, with the peers side by side):
//!
//! ```text
//! cargo bench
//! ```
