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
//! # Events from a newer build
//!
//! The 24 event types are a closed enum. An event whose `type` this build
//! does not know (from a store written by a newer build, or a peer across a
//! bridge) never reaches the bus: decoding it is a typed
//! [`DecodeEventError`](crate::DecodeEventError), never a panic, so the
//! caller decides whether to skip, count or stop.
