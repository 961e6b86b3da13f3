//! Automatic causation: which event the code running on this thread is
//! handling, so that what it publishes is stamped as caused by it.
//!
//! A thread-local pointer to the event being handled is set for the length
//! of each fan-out (filters, sync handlers, the first poll of async handlers)
//! and of each later poll of a publish's pending async handlers, and put back
//! as it was afterwards, by a guard, so nesting and unwinding restore it.
//! Every handler of one fan-out handles the same event, so one set per
//! fan-out or poll covers them all: a publish outside any handler pays a
//! pointer load to find nothing set, and each fan-out two stores.
//!
//! (`benches/RESULTS.md` has the measured cost: about 13 instructions per
//! sync publish.)
//!
//! Under `--cfg agentbus_loom` the thread-local is loom's, so each modelled
//! thread has its own (loom runs them all on one OS thread).
#![allow(unsafe_code)]

use std::cell::Cell;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::pin;
use std::ptr;
use std::sync::Arc as StdArc;

use crate::event::Event;

#[cfg(not(agentbus_loom))]
std::thread_local! {
    /// The event being handled on this thread, or null.
    static HANDLING: Cell<*const Event> = const { Cell::new(ptr::null()) };
}

#[cfg(agentbus_loom)]
loom::thread_local! {
    static HANDLING: Cell<*const Event> = Cell::new(ptr::null());
}

/// While alive, this thread is handling the event it was made from.
///
/// The invariant that makes the pointer in [`HANDLING`] safe to read: it is
/// either null or the `event` of a live `Handling<'a>` on this thread, whose
/// borrow keeps the event alive and unchanged. Guards are locals of
/// synchronous code, never moved out or forgotten, and `!Send`, so they drop
/// in reverse order of creation on the thread that made them, each putting
/// back the pointer that was there before it.
pub(crate) struct Handling<'a> {
    previous: *const Event,
    _event: PhantomData<&'a Event>,
}

impl<'a> Handling<'a> {
    /// Marks `event` as the one being handled until the guard is dropped.
    #[inline]
    pub(crate) fn enter(event: &'a Event) -> Self {
        let previous = HANDLING.with(|current| current.replace(event));
        Self {
            previous,
            _event: PhantomData,
        }
    }
}

impl Drop for Handling<'_> {
    #[inline]
    fn drop(&mut self) {
        HANDLING.with(|current| current.set(self.previous));
    }
}

/// `event`, stamped as caused by the event this thread is handling, if any,
/// and if its publisher set neither id (nor is it the handled event itself);
/// and given the handled event's trace context if its publisher set none.
/// An `Arc` shared with other holders is copied first (see
/// [`EventBus::publish`](crate::EventBus::publish)).
#[inline]
pub(crate) fn stamp(event: StdArc<Event>) -> StdArc<Event> {
    let parent = HANDLING.with(Cell::get);
    if parent.is_null() {
        return event;
    }
    stamp_handled(event, parent)
}

/// The rare half of [`stamp`]: out of line, so a publish outside any handler
/// carries none of it.
#[cold]
#[inline(never)]
fn stamp_handled(mut event: StdArc<Event>, parent: *const Event) -> StdArc<Event> {
    let needs_cause = event.correlation_id.is_none() && event.causation_id.is_none();
    let needs_trace = event.trace_context.is_none();
    if !needs_cause && !needs_trace {
        return event;
    }
    // The reference to the parent ends before `make_mut` below: if `event`
    // shares the parent's allocation, its count is at least two (the
    // dispatch holds one), so `make_mut` copies rather than writes to it.
    let (causation, correlation, trace_context) = {
        // SAFETY: `parent` is non-null and came from `HANDLING` on this
        // thread, so it is the event of a live `Handling` guard, which
        // borrows it for longer than this call (see `Handling`).
        let parent = unsafe { &*parent };
        if event.id == parent.id {
            // Re-publishing the handled event (a relay to another bus, say)
            // does not make it its own cause.
            return event;
        }
        let trace_context = match &parent.trace_context {
            Some(context) if needs_trace => Some(context.clone()),
            _ => None,
        };
        (parent.id, parent.chain_id(), trace_context)
    };
    if !needs_cause && trace_context.is_none() {
        return event;
    }
    let event_mut = StdArc::make_mut(&mut event);
    if needs_cause {
        event_mut.causation_id = Some(causation);
        event_mut.correlation_id = Some(correlation);
    }
    if trace_context.is_some() {
        event_mut.trace_context = trace_context;
    }
    event
}

/// Runs `future` as if it were part of handling `parent`: whatever it
/// publishes while it is polled (through an [`EventBus`](crate::EventBus), a
/// [`Publisher`](crate::Publisher) or an upgraded
/// [`WeakEventBus`](crate::WeakEventBus)) is stamped as caused by `parent`,
/// as a publish from inside a handler is.
///
/// A task spawned from a handler (`tokio::spawn`, `std::thread::spawn`, any
/// runtime's spawn) inherits nothing: the handler's cause lives in a
/// thread-local for the length of the handler's call or poll, and does not
/// travel with the task. Wrap the task's future in `with_cause` to carry it.
///
/// The future keeps only `parent`'s ids and trace context (no copy of its
/// data), is `Send`
/// when `future` is, and its cause applies only while it is being polled, on
/// whichever thread polls it. An event whose publisher already set its
/// correlation or causation id keeps them, and one with a trace context
/// keeps it.
///
/// ```
/// use agentbus::{with_cause, Event, EventBus, EventType, HistoryQuery};
/// use std::sync::Arc;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let bus = EventBus::new();
/// let weak = bus.downgrade();
/// bus.subscribe_async(EventType::TaskCompleted, move |task: Arc<Event>| {
///     let weak = weak.clone();
///     async move {
///         // The background task outlives this handler; `with_cause` keeps
///         // what it publishes in the task's chain.
///         tokio::spawn(with_cause(&task, async move {
///             if let Some(bus) = weak.upgrade() {
///                 bus.publish(Event::new(EventType::MemoryShared)).await;
///             }
///         }))
///         .await
///         .unwrap();
///     }
/// });
///
/// let task = Event::new(EventType::TaskCompleted);
/// let task_id = task.id;
/// bus.publish(task).await;
///
/// let memory = &bus.history(&HistoryQuery::new().event_type(EventType::MemoryShared))[0];
/// assert_eq!(memory.causation_id, Some(task_id));
/// assert_eq!(memory.correlation_id, Some(task_id));
/// # }
/// ```
pub fn with_cause<F: Future>(parent: &Event, future: F) -> impl Future<Output = F::Output> {
    // A shadow of the parent: only the fields `stamp` reads are real, and
    // its empty `data` costs nothing to make or drop.
    let cause = Event {
        id: parent.id,
        correlation_id: parent.correlation_id,
        trace_context: parent.trace_context.clone(),
        ..Event::new(parent.event_type)
    };
    async move {
        let mut future = pin!(future);
        std::future::poll_fn(|cx| {
            let _handling = Handling::enter(&cause);
            future.as_mut().poll(cx)
        })
        .await
    }
}
