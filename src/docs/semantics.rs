//! What a publish guarantees. This page is the one statement of the bus's
//! behaviour; the types link here.
//!
//! # Fan-out, exactly once
//!
//! Every subscriber of the event's type whose filter passes is called exactly
//! once per publish; subscribers of other types never are.
//! [`PublishOutcome::delivered`](crate::PublishOutcome::delivered) counts the
//! handlers that completed, [`failed`](crate::PublishOutcome::failed) the ones
//! that did not.
//!
//! # Filters
//!
//! Filters run before the handler, on the publishing thread, for sync and
//! async handlers alike. A filter that returns `false` is neither a delivery
//! nor a failure; a filter that panics is a failure. Field filters
//! ([`circle_id`](crate::SubscriptionBuilder::circle_id),
//! [`source_agent_id`](crate::SubscriptionBuilder::source_agent_id),
//! [`project_id`](crate::SubscriptionBuilder::project_id)) are checked first
//! and must all match (an event without the field never does); the filter
//! closure runs only for events that pass them.
//!
//! # Sync and async handlers
//!
//! Sync handlers run inline, in subscription order, on the publishing thread.
//! Each async handler's future is created and polled once during the same
//! pass (one that finishes at once costs nothing more); those still pending
//! are then polled concurrently by the `publish` future (three handlers
//! sleeping 100 ms each take about 100 ms, not 300). With only sync
//! subscribers a publish spawns nothing, needs no executor and allocates
//! nothing beyond the `Arc` that history keeps.
//!
//! The [`publish`](crate::EventBus::publish) future is `Send`, does nothing
//! until polled, and dropping it after the first poll cancels the async
//! handlers still running: their futures, and everything they captured, are
//! dropped then, and they count neither as delivered nor as failed. (A panic
//! in such a future's `Drop` is swallowed; the drop of the publish future
//! does not unwind.)
//!
//! # Slow handlers
//!
//! A slow sync handler delays the publish that runs it, and only that
//! publisher's thread; a slow async handler delays only the `publish` future
//! awaiting it. Offload long work with your runtime's `spawn`.
//!
//! # Panics and errors
//!
//! A handler that returns `Err` or panics (with any payload, sync or async),
//! or a filter that panics, is caught, counted in
//! [`PublishOutcome::failed`](crate::PublishOutcome::failed) and
//! [`BusStats::handler_errors`](crate::BusStats::handler_errors), and logged
//! with `tracing` at `WARN` (handler name, subscription, event id and type,
//! error). An async handler counts when it finishes, on its first poll or a
//! later one, and a failure on a later poll is a failure like any other. Its
//! future is dropped within the poll that finishes it, so a panic in that
//! future's `Drop` (or a captured value's) makes the handler a failure too.
//! All other handlers still run, `publish` never panics, and the bus
//! stays usable. A panicking handler still goes through the process's panic
//! hook, which prints it unless you replace the hook.
//!
//! # Re-entrancy
//!
//! No lock is held while user code runs, so handlers may publish, subscribe
//! and unsubscribe (themselves included).
//!
//! # Unsubscribe during dispatch
//!
//! After [`unsubscribe`](crate::EventBus::unsubscribe) returns, no publish
//! that starts later calls the handler, nor does the rest of a dispatch on
//! the thread that unsubscribed. A publish already in flight on another
//! thread may still call it once. The handler and what it captured are
//! dropped when the last such publish is done, except that a
//! [`Publisher`](crate::Publisher) that published its type holds them until
//! its next publish of that type (or 64 of others, or its drop).
//!
//! # Ordering
//!
//! Sequential publishes reach each handler in publish order. The async
//! handlers of one publish run concurrently, so their relative order is not
//! fixed.
//!
//! # History
//!
//! An event is recorded when it is published, before any handler runs. The
//! ring holds exactly `capacity` newest events (default 1000, any capacity,
//! `0` turns it off); when it is full the oldest is overwritten and released,
//! so it is freed as soon as nobody else holds it. A read racing with
//! publishers returns a consistent newest-first snapshot: no duplicates, no
//! torn entries. See [`HistoryQuery`](crate::HistoryQuery).
//!
//! # Streams and lagging
//!
//! An [`EventStream`](crate::EventStream)'s publisher side never waits: when
//! the buffer is full the oldest buffered event is dropped, and the
//! consumer's next read reports [`Lagged(n)`](crate::Lagged) before resuming
//! with the oldest event that survived. Dropping the stream unsubscribes it.
//!
//! # `publish_blocking` and async handlers
//!
//! [`publish_blocking`](crate::EventBus::publish_blocking) polls async
//! handlers on the calling thread with a minimal executor of its own (it
//! nests: an async handler may itself call `publish_blocking`); it does not
//! start a runtime. A handler that only awaits runtime-agnostic futures is
//! fine. One that uses Tokio timers or I/O needs a Tokio runtime context:
//!
//! - on a plain thread with no runtime, Tokio panics inside the handler; the
//!   bus catches it and counts a failure;
//! - on a plain thread that has entered a multi-threaded runtime
//!   (`let _guard = handle.enter();`), the runtime's workers drive the
//!   timers and it works;
//! - on a thread that is running a runtime (inside `block_on` or a task of a
//!   current-thread runtime, or a sync handler called from such a publish)
//!   it blocks that thread, so the timer never fires and the call never
//!   returns.
//!
//! From async code, use `publish(..).await`. A handler that publishes a
//! follow-up event should capture a [`WeakEventBus`](crate::WeakEventBus)
//! (`bus.downgrade()`) rather than a clone of the bus, so the bus and its
//! subscribers do not keep each other alive.
//!
//! # Causality
//!
//! An event published from inside a handler (a sync handler during its
//! call, an async handler's future while it is polled, on any thread or
//! runtime, through the bus, a [`Publisher`](crate::Publisher) or a
//! [`WeakEventBus`](crate::WeakEventBus)) is stamped as caused by the event
//! being handled: its [`causation_id`](crate::Event::causation_id) is the
//! handled event's id and its [`correlation_id`](crate::Event::correlation_id)
//! the handled event's chain, unless its publisher set either id. A publish
//! outside any handler keeps what it was given.
//! [`HistoryQuery::correlation_id`](crate::HistoryQuery::correlation_id)
//! returns one chain. A task spawned from a handler (`tokio::spawn`, a
//! thread) inherits nothing, because the cause lives with the handler's
//! call or poll; wrap its future in [`with_cause`](crate::with_cause) to
//! carry it.
//!
//! # Retries, timeouts and dead letters
//!
//! A delivery given up on becomes a **dead letter**
//! ([`EventBus::dead_letters`](crate::EventBus::dead_letters)): the event,
//! the subscription's id and [name](crate::SubscriptionBuilder::name), the
//! last error (the `Err`'s display, `panicked: ...`, or `timed out`), the
//! number of attempts and when the first and last failed. By default every
//! handler failure is kept (one attempt, no retry); a subscription opts out
//! with [`dead_letters(false)`](crate::SubscriptionBuilder::dead_letters),
//! and a panicking filter is never a dead letter. They are kept in memory,
//! at most 10,000 by default
//! ([`dead_letter_capacity`](crate::EventBusBuilder::dead_letter_capacity));
//! beyond that the oldest is dropped, counted
//! ([`DeadLetters::dropped`](crate::DeadLetters::dropped)) and logged at
//! `WARN` (the first drop and every 1000th).
//!
//! With a recorder of `agentbus-store` attached they are also kept in the
//! event store (both backends) and survive a restart: the bus tells a
//! [`DeadLetterSink`](crate::DeadLetterSink) the id of every change (a new
//! letter, a failed redrive, a redrive, a discard, a drop for room, a
//! reset), off the lock and without blocking, and the sink reads the state
//! back when it writes. A change is durable once the recorder's next
//! `flush` returns. At attach the stored letters come back
//! ([`DeadLetters::restore`](crate::DeadLetters::restore)) under their ids
//! (an id the bus already gave out is renumbered), within the same
//! capacity, and the store drops what memory drops. A restored letter names
//! no live subscription: its redrive goes to the live subscription with
//! its name, and one without a name fails with
//! [`RedriveError::Unnamed`](crate::RedriveError::Unnamed). The store
//! crate's docs give the details.
//!
//! With [`retry`](crate::SubscriptionBuilder::retry) a failed delivery is
//! tried again up to [`Retry::attempts`](crate::Retry::attempts) calls in
//! all, waiting `delay`, then twice that, and so on up to `max_delay`, with
//! jitter unless turned off. `publish` still resolves after each handler's
//! first attempt: a delivery whose first attempt failed counts in
//! [`PublishOutcome::retrying`](crate::PublishOutcome::retrying) (neither
//! delivered nor failed), and its retries run in the background on the
//! bus's retry thread, without a runtime and without holding back later
//! events of the subscription (except those of the same key, below). Each
//! failed attempt is logged; the last one is counted in
//! [`BusStats::handler_errors`](crate::BusStats::handler_errors) and kept as
//! a dead letter, a success in `events_delivered`.
//! [`EventBus::settled`](crate::EventBus::settled) resolves once no retry
//! is pending. Retried async handlers are polled on the retry thread,
//! outside any runtime: one that uses Tokio timers or I/O should run that
//! work on its runtime (`handle.spawn(work).await`, a `JoinHandle` can be
//! awaited anywhere), or its retries fail with Tokio's "no reactor" panic,
//! counted as failed attempts.
//!
//! With [`timeout`](crate::SubscriptionBuilder::timeout) an async
//! handler's attempt that has not finished in time is dropped and fails as
//! `timed out` (counted in `BusStats::timed_out`). A sync handler cannot be
//! interrupted; the timeout does not apply to it.
//!
//! [`DeadLetters::redrive`](crate::DeadLetters::redrive) delivers a dead
//! letter's event again, once, to its subscription, or if that one is gone
//! to the live subscription with its name; it is removed on success and
//! kept, with its attempts and error updated, on failure. While a redrive
//! runs the letter is out of the list, so concurrent redrives of one id
//! deliver at most once.
//!
//! # Concurrency limits
//!
//! [`max_concurrency`](crate::SubscriptionBuilder::max_concurrency) bounds
//! the calls of one subscription in flight,
//! [`max_concurrent_handlers`](crate::EventBusBuilder::max_concurrent_handlers)
//! the async handler calls of the whole bus. A delivery that finds no free
//! permit waits for one, first come first served: an awaited `publish` is
//! `Pending`, a `publish_blocking` parks its thread. Nothing is spawned. A
//! `publish` future dropped while it waits leaves the line. Retries release
//! their permits while they wait for their delay. Sync handlers run inline
//! and take no permit of the bus-wide limit (their subscription's own
//! `max_concurrency` still applies).
//!
//! The bus-wide limit can be set, raised, lowered or removed on a running
//! bus with
//! [`set_max_concurrent_handlers`](crate::EventBus::set_max_concurrent_handlers),
//! and then applies to every async handler call that starts afterwards,
//! whenever its subscription was made. Raised, waiting calls get the new
//! permits at once, in order; lowered, calls in flight keep theirs and
//! finish, and none starts until fewer than the new limit run; removed,
//! every waiting call starts at once. Calls already running when a limit is
//! set on an unlimited bus took no permit and are not counted until they
//! finish.
//!
//! [`ordered_by`](crate::SubscriptionBuilder::ordered_by) gives each key a
//! lane: deliveries of events with equal keys run one at a time, in the
//! order their publishes reached the fan-out (for one thread, publish
//! order), and different keys run in parallel. A retry keeps its key's lane
//! until its last attempt, so later events of that key wait (their
//! publishes too) and are never reordered; other keys keep flowing.
//!
//! **Handlers that publish do not deadlock.** A publish made from inside a
//! handler of a limited or ordered subscription (a sync call, or a poll of
//! its future: an awaited `publish` or a `publish_blocking` in the handler)
//! takes no permit and no lane: it runs under its parent's. So a chain of
//! publishes from handlers never waits for a permit held up its own chain.
//! The rule for user code: a handler must not wait, while it runs, for a
//! publish made elsewhere (by a task it spawned, say) when that publish
//! needs the permits or the lane the handler holds.
//!
//! Subscriptions without any of these options on a bus without
//! `max_concurrent_handlers` are delivered exactly as before, by the plain
//! fan-out; only their failures reach the dead letters. (An async handler's
//! start checks whether a limit is set: one load and a branch.)
//!
//! # Events from a newer build
//!
//! The 24 event types are a closed enum. An event whose `type` this build
//! does not know (from a store written by a newer build, or a peer across a
//! bridge) never reaches the bus: decoding it is a typed
//! [`DecodeEventError`](crate::DecodeEventError), never a panic, so the
//! caller decides whether to skip, count or stop.
