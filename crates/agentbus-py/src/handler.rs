//! Python handlers as the core bus calls them.
//!
//! A plain function becomes a core sync handler, called inline on the
//! publishing thread. An `async def` becomes a core async handler whose
//! future ([`HandlerCall`]) runs the coroutine on the publisher's asyncio
//! loop: it is stepped with `send(None)` inside the publish's poll, and when
//! it awaits an asyncio future the call sleeps until that future's done
//! callback wakes it, as an asyncio task would. The async handlers of one
//! publish therefore run concurrently on the loop (like `asyncio.gather`)
//! without a task each.
//!
//! An `Exception` from a handler (or its filter) is logged on the
//! `agentbus` logger with its traceback and counted in `handler_errors`; the
//! other handlers still run. A `BaseException` that is not an `Exception`
//! (`KeyboardInterrupt`, `SystemExit`) is not swallowed: the publish stops
//! and re-raises it at the `await`.
//!
//! The concurrency cap (`configure(max_concurrent_handlers=...)`) is the
//! core bus's handler limit: while one is set the core holds back a call's
//! first poll, which is when the coroutine is made, until it has a permit,
//! and keeps it until the call ends. A publish made inside a handler (an
//! awaited `publish` is polled within the handler's own step) takes none,
//! so a handler that publishes cannot deadlock on the cap; see
//! [`agentbus::EventBus::set_max_concurrent_handlers`] for raising, lowering
//! and waiting publishers.
//!
//! An async Python handler needs the publisher's asyncio loop: reached by a
//! publish from Rust code with no loop on its thread
//! (`EventBus::publish_blocking`), it runs until it first awaits an asyncio
//! future, which fails (no running loop) and counts as a handler error.
//!
//! Handlers receive `agentbus.Event` objects. Within one publish every
//! handler gets the same object: the one published, or, for an event that
//! came from Rust or was stamped with a cause, one object made on first use
//! and shared by the handlers after it.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use agentbus::Event;
use futures_util::task::AtomicWaker;
use pyo3::exceptions::{PyException, PyStopIteration};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

use crate::event::PyEvent;

/// Recently seen event objects: (address of the Rust event, the object).
type Recent = [Option<(usize, Py<PyEvent>)>; 4];

thread_local! {
    /// The event objects most recently published or made on this thread,
    /// by the address of their Rust event; a hit saves a copy per handler.
    static RECENT: RefCell<Recent> = const { RefCell::new([None, None, None, None]) };
    static NEXT_SLOT: Cell<usize> = const { Cell::new(0) };
    /// A `KeyboardInterrupt`/`SystemExit` a handler raised, for the publish
    /// being polled to re-raise.
    static INTERRUPT: RefCell<Option<PyErr>> = const { RefCell::new(None) };
}

/// Makes `event` the object handlers of its publish receive.
pub(crate) fn remember(event: &Bound<'_, PyEvent>) {
    let address = Arc::as_ptr(&event.get().inner) as usize;
    let entry = Some((address, event.clone().unbind()));
    let slot = NEXT_SLOT.with(|next| {
        let slot = next.get();
        next.set((slot + 1) % 4);
        slot
    });
    let evicted = RECENT.with(|recent| std::mem::replace(&mut recent.borrow_mut()[slot], entry));
    drop(evicted);
}

fn recalled(py: Python<'_>, event: &Event) -> Option<Py<PyEvent>> {
    let address = event as *const Event as usize;
    RECENT.with(|recent| {
        recent
            .borrow()
            .iter()
            .flatten()
            .find(|(seen, _)| *seen == address)
            .map(|(_, object)| object.clone_ref(py))
    })
}

/// The Python object for an event a sync handler or filter sees.
pub(crate) fn object_for(py: Python<'_>, event: &Event) -> PyResult<Py<PyEvent>> {
    if let Some(object) = recalled(py, event) {
        return Ok(object);
    }
    let object = PyEvent::wrap(py, Arc::new(event.clone()))?;
    remember(object.bind(py));
    Ok(object)
}

/// The Python object for an event an async handler sees (no copy).
fn object_for_shared(py: Python<'_>, event: &Arc<Event>) -> PyResult<Py<PyEvent>> {
    if let Some(object) = recalled(py, event) {
        return Ok(object);
    }
    let object = PyEvent::wrap(py, Arc::clone(event))?;
    remember(object.bind(py));
    Ok(object)
}

/// Whether a handler of this thread raised an interrupt not yet taken.
pub(crate) fn interrupted() -> bool {
    INTERRUPT.with(|slot| slot.borrow().is_some())
}

/// The interrupt a handler raised during this thread's last poll, if any.
pub(crate) fn take_interrupt() -> Option<PyErr> {
    INTERRUPT.with(|slot| slot.borrow_mut().take())
}

/// Logs a handler's exception and returns the message the core counts; an
/// exception that is not an `Exception` is kept for the publish to re-raise.
pub(crate) fn report(py: Python<'_>, name: &str, event: &Event, err: PyErr) -> String {
    let message = err.to_string();
    if !err.is_instance_of::<PyException>(py) {
        INTERRUPT.with(|slot| {
            slot.borrow_mut().get_or_insert(err);
        });
        return message;
    }
    let logged = logger(py).and_then(|logger| {
        let kwargs = pyo3::types::PyDict::new(py);
        kwargs.set_item("exc_info", err.value(py))?;
        logger.call_method(
            intern!(py, "error"),
            (
                "handler %r failed on %s event %s",
                name,
                event.event_type.as_str(),
                event.id.to_string(),
            ),
            Some(&kwargs),
        )
    });
    if let Err(log_err) = logged {
        log_err.write_unraisable(py, None);
    }
    message
}

fn logger(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    static LOGGER: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    Ok(LOGGER
        .get_or_try_init(py, || {
            py.import("logging")?
                .call_method1("getLogger", ("agentbus",))
                .map(Bound::unbind)
        })?
        .bind(py))
}

/// A Python sync handler as the core calls it.
pub(crate) fn sync_handler(
    handler: Py<PyAny>,
    name: Arc<str>,
) -> impl Fn(&Event) -> Result<(), String> + Send + Sync + 'static {
    move |event: &Event| {
        Python::attach(|py| {
            let result = object_for(py, event).and_then(|object| handler.call1(py, (object,)));
            match result {
                Ok(returned) if returned.is_none(py) => Ok(()),
                Ok(returned) => {
                    if returned
                        .bind(py)
                        .hasattr(intern!(py, "__await__"))
                        .unwrap_or(false)
                    {
                        let _ = returned.call_method0(py, intern!(py, "close"));
                        let message = format!(
                            "handler {name:?} returned an awaitable but was subscribed as a plain \
                             function; make it `async def`"
                        );
                        report(
                            py,
                            &name,
                            event,
                            pyo3::exceptions::PyTypeError::new_err(message.clone()),
                        );
                        return Err(message);
                    }
                    Ok(())
                }
                Err(err) => Err(report(py, &name, event, err)),
            }
        })
    }
}

/// A Python `filter_fn` as the core calls it: an exception counts as a
/// handler error (the event is not delivered to that subscriber).
pub(crate) fn filter(
    filter: Py<PyAny>,
    name: Arc<str>,
) -> impl Fn(&Event) -> bool + Send + Sync + 'static {
    move |event: &Event| {
        Python::attach(|py| {
            let verdict = object_for(py, event)
                .and_then(|object| filter.call1(py, (object,)))
                .and_then(|verdict| verdict.is_truthy(py));
            match verdict {
                Ok(verdict) => verdict,
                Err(err) => {
                    let message = report(py, &name, event, err);
                    // Unwinds into the core's catch, which counts a failed
                    // filter; resume_unwind skips the panic hook's message.
                    std::panic::resume_unwind(Box::new(message))
                }
            }
        })
    }
}

/// A Python `async def` handler as the core calls it.
pub(crate) fn async_handler(
    handler: Py<PyAny>,
    name: Arc<str>,
) -> impl Fn(Arc<Event>) -> HandlerCall + Send + Sync + 'static {
    move |event| HandlerCall {
        handler: Python::attach(|py| handler.clone_ref(py)),
        name: Arc::clone(&name),
        event,
        state: CallState::Start,
        wake: Arc::new(AtomicWaker::new()),
    }
}

/// One call of an async Python handler, driven by the publish's poll.
pub(crate) struct HandlerCall {
    handler: Py<PyAny>,
    name: Arc<str>,
    event: Arc<Event>,
    state: CallState,
    /// Woken by the done callback of the asyncio future the coroutine awaits.
    wake: Arc<AtomicWaker>,
}

enum CallState {
    Start,
    Running {
        coroutine: Py<PyAny>,
        /// The asyncio future the coroutine is waiting on.
        awaiting: Option<Py<PyAny>>,
    },
    Done,
}

/// Calls a Rust waker when an asyncio future completes.
#[pyclass(module = "agentbus")]
struct WakeOnDone(Arc<AtomicWaker>);

#[pymethods]
impl WakeOnDone {
    /// Called by asyncio with the completed future: wakes the call.
    fn __call__(&self, _future: &Bound<'_, PyAny>) {
        self.0.wake();
    }
}

impl HandlerCall {
    fn poll_in(&mut self, py: Python<'_>, cx: &mut Context<'_>) -> Poll<Result<(), String>> {
        loop {
            match &mut self.state {
                CallState::Done => return Poll::Ready(Ok(())),
                CallState::Start => {
                    let called = object_for_shared(py, &self.event)
                        .and_then(|object| self.handler.call1(py, (object,)));
                    let returned = match called {
                        Ok(returned) => returned,
                        Err(err) => {
                            self.state = CallState::Done;
                            return Poll::Ready(Err(report(py, &self.name, &self.event, err)));
                        }
                    };
                    // `async def` returns a coroutine; anything else
                    // awaitable is stepped through its `__await__` iterator.
                    let bound = returned.bind(py);
                    let coroutine = if bound.hasattr(intern!(py, "send")).unwrap_or(false) {
                        returned
                    } else if bound.hasattr(intern!(py, "__await__")).unwrap_or(false) {
                        match bound.call_method0(intern!(py, "__await__")) {
                            Ok(iterator) => iterator.unbind(),
                            Err(err) => {
                                self.state = CallState::Done;
                                return Poll::Ready(Err(report(py, &self.name, &self.event, err)));
                            }
                        }
                    } else {
                        // A plain return value: done.
                        self.state = CallState::Done;
                        return Poll::Ready(Ok(()));
                    };
                    self.state = CallState::Running {
                        coroutine,
                        awaiting: None,
                    };
                }
                CallState::Running {
                    coroutine,
                    awaiting,
                } => {
                    if let Some(future) = awaiting.as_ref() {
                        let done = future
                            .call_method0(py, intern!(py, "done"))
                            .and_then(|d| d.is_truthy(py))
                            .unwrap_or(true);
                        if !done {
                            self.wake.register(cx.waker());
                            return Poll::Pending;
                        }
                        *awaiting = None;
                    }
                    let stepped = step(py, coroutine.bind(py));
                    match stepped {
                        Ok(yielded) if yielded.is_none() => {
                            // A bare `yield` (`asyncio.sleep(0)`): run again
                            // on the loop's next turn.
                            cx.waker().wake_by_ref();
                            return Poll::Pending;
                        }
                        Ok(yielded) => {
                            let blocking = intern!(py, "_asyncio_future_blocking");
                            if yielded.hasattr(blocking).unwrap_or(false) {
                                self.wake.register(cx.waker());
                                let registered = yielded.setattr(blocking, false).and_then(|()| {
                                    yielded.call_method1(
                                        intern!(py, "add_done_callback"),
                                        (WakeOnDone(Arc::clone(&self.wake)),),
                                    )
                                });
                                if let Err(err) = registered {
                                    return self.fail(py, err);
                                }
                                *awaiting = Some(yielded.unbind());
                                return Poll::Pending;
                            }
                            let err = pyo3::exceptions::PyRuntimeError::new_err(format!(
                                "handler yielded {yielded:?}, which is not an asyncio future; \
                                 agentbus runs handlers on asyncio"
                            ));
                            return self.fail(py, err);
                        }
                        Err(err) if err.is_instance_of::<PyStopIteration>(py) => {
                            self.state = CallState::Done;
                            return Poll::Ready(Ok(()));
                        }
                        Err(err) => {
                            self.state = CallState::Done;
                            return Poll::Ready(Err(report(py, &self.name, &self.event, err)));
                        }
                    }
                }
            }
        }
    }

    /// Ends the call with `err` (closing the coroutine) and reports it.
    fn fail(&mut self, py: Python<'_>, err: PyErr) -> Poll<Result<(), String>> {
        let state = std::mem::replace(&mut self.state, CallState::Done);
        close(py, state);
        Poll::Ready(Err(report(py, &self.name, &self.event, err)))
    }
}

fn step<'py>(py: Python<'py>, coroutine: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    if let Ok(send) = coroutine.getattr(intern!(py, "send")) {
        send.call1((py.None(),))
    } else {
        coroutine.call_method0(intern!(py, "__next__"))
    }
}

fn close(py: Python<'_>, state: CallState) {
    if let CallState::Running { coroutine, .. } = state {
        if let Ok(close) = coroutine.bind(py).getattr(intern!(py, "close")) {
            if let Err(err) = close.call0() {
                err.write_unraisable(py, Some(&close));
            }
        }
    }
}

impl Future for HandlerCall {
    type Output = Result<(), String>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        Python::attach(|py| this.poll_in(py, cx))
    }
}

impl Drop for HandlerCall {
    fn drop(&mut self) {
        let state = std::mem::replace(&mut self.state, CallState::Done);
        if matches!(state, CallState::Running { .. }) {
            // A cancelled publish: the coroutine's `finally` blocks run now.
            Python::attach(|py| close(py, state));
        }
    }
}
