//! Driving a Rust future from asyncio without a thread or a task of its own.
//!
//! [`Awaitable`] is what `await bus.publish(event)` and `anext(stream)`
//! await: an object whose `__await__` is itself and whose `__next__` polls
//! the Rust future, on the awaiting task's thread, with the GIL held. Most
//! publishes finish within that first poll (sync handlers and async handlers
//! that never suspend), so awaiting one costs a method call, not a trip
//! through the event loop.
//!
//! When the future is pending, `__next__` yields an asyncio future to the
//! awaiting task, exactly as awaiting an `asyncio.Future` does; the task
//! sleeps until the Rust waker ([`LoopWaker`]) resolves it. A wake-up on the
//! loop's own thread (the usual case: a Python handler's awaited future
//! completed) resolves it directly; one from another thread goes through
//! `loop.call_soon_threadsafe`. A wake-up that happens during the poll makes
//! `__next__` yield `None` instead, which asyncio treats as "run me again
//! soon".
//!
//! Cancellation: cancelling the awaiting task (or `KeyboardInterrupt` in
//! `asyncio.run`) raises `CancelledError` at the `await`; dropping the
//! awaitable then drops the Rust future, which closes the Python handler
//! coroutines still running (their `finally` blocks run) and counts them
//! neither delivered nor failed.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::ThreadId;

use pyo3::exceptions::{PyRuntimeError, PyStopIteration};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

/// The Rust side of one awaitable: resolves to the value the `await`
/// returns, or to the exception it raises.
pub(crate) type PyFuture = Pin<Box<dyn Future<Output = PyResult<Py<PyAny>>> + Send + 'static>>;

/// An object to `await`; produced by `EventBus.publish` and
/// `EventStream.__anext__`. Await it once, from a coroutine running on an
/// asyncio event loop.
#[pyclass(name = "Awaitable", module = "agentbus", frozen)]
pub struct Awaitable {
    /// `None` once finished. A mutex only to make the object `Sync`: one
    /// task awaits it, so it is never contended (`try_lock` reports misuse).
    future: Mutex<Option<PyFuture>>,
    /// Made on the first `Pending`: most awaitables finish on their first
    /// poll and never need one.
    waker: OnceLock<Arc<LoopWaker>>,
}

/// What one poll gives the awaiting task.
enum Step {
    /// Finished with this value.
    Ready(Py<PyAny>),
    /// Not yet: yield this (an asyncio future, or `None`) to the task.
    Yield(Py<PyAny>),
}

impl Awaitable {
    pub(crate) fn new(future: PyFuture) -> Self {
        Self {
            future: Mutex::new(Some(future)),
            waker: OnceLock::new(),
        }
    }

    /// Polls once with a waker that resolves asyncio futures.
    fn step(&self, py: Python<'_>) -> PyResult<Step> {
        let Ok(mut slot) = self.future.try_lock() else {
            return Err(PyRuntimeError::new_err(
                "this awaitable is being awaited by another task",
            ));
        };
        let Some(future) = slot.as_mut() else {
            return Err(PyRuntimeError::new_err(
                "this awaitable was already awaited",
            ));
        };
        let polled = match self.waker.get() {
            Some(waker) => {
                waker.begin_poll();
                future
                    .as_mut()
                    .poll(&mut Context::from_waker(&Waker::from(Arc::clone(waker))))
            }
            // The first poll needs no waker if it finishes. If it does not,
            // poll again at once with a real one: everything still pending
            // registers it (the core re-polls each running handler, and a
            // handler call re-registers with what it waits on).
            None => match future
                .as_mut()
                .poll(&mut Context::from_waker(Waker::noop()))
            {
                Poll::Ready(output) => Poll::Ready(output),
                Poll::Pending if crate::handler::interrupted() => Poll::Pending,
                Poll::Pending => {
                    let waker = Arc::clone(self.waker.get_or_init(Default::default));
                    future
                        .as_mut()
                        .poll(&mut Context::from_waker(&Waker::from(waker)))
                }
            },
        };
        if let Some(interrupt) = crate::handler::take_interrupt() {
            // Dropping the future closes the handlers still running.
            let cancelled = slot.take();
            drop(slot);
            drop(cancelled);
            return Err(interrupt);
        }
        match polled {
            Poll::Ready(result) => {
                let finished = slot.take();
                drop(slot);
                drop(finished);
                result.map(Step::Ready)
            }
            Poll::Pending => {
                drop(slot);
                match self.waker.get() {
                    Some(waker) => waker.park(py).map(Step::Yield),
                    None => Ok(Step::Yield(py.None())),
                }
            }
        }
    }
}

#[pymethods]
impl Awaitable {
    /// The object itself: it is its own iterator.
    fn __await__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    /// The object itself (`yield from` support).
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    /// Polls the Rust future once: yields what the awaiting task should wait
    /// on, or stops with the result.
    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        match self.step(py)? {
            Step::Yield(yielded) => Ok(Some(yielded)),
            Step::Ready(value) if value.is_none(py) => Ok(None),
            Step::Ready(value) => Err(PyStopIteration::new_err((value,))),
        }
    }

    /// Coroutine protocol (with `throw` and `close`), so the object is a
    /// `collections.abc.Coroutine`: `asyncio.run(bus.publish(e))`,
    /// `create_task` and `gather` accept it.
    ///
    /// Unlike `__next__`, a finished `send` must raise `StopIteration`
    /// itself (Python 3.9's asyncio tasks call it as a method).
    fn send(&self, py: Python<'_>, _value: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        match self.step(py)? {
            Step::Yield(yielded) => Ok(yielded),
            Step::Ready(value) => Err(PyStopIteration::new_err((value,))),
        }
    }

    /// Cancels (closes the handlers still running) and raises the exception
    /// given, as a coroutine does when the exception is not caught.
    #[pyo3(signature = (kind, value=None, _traceback=None))]
    fn throw(
        &self,
        py: Python<'_>,
        kind: &Bound<'_, PyAny>,
        value: Option<&Bound<'_, PyAny>>,
        _traceback: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Option<Py<PyAny>>> {
        self.close();
        let err = match value.filter(|v| !v.is_none()) {
            Some(value) if value.is_instance_of::<pyo3::exceptions::PyBaseException>() => {
                PyErr::from_value(value.clone())
            }
            Some(value) => PyErr::from_value(kind.call1((value,))?),
            None if kind.is_instance_of::<pyo3::types::PyType>() => {
                PyErr::from_value(kind.call0()?)
            }
            None => PyErr::from_value(kind.clone()),
        };
        let _ = py;
        Err(err)
    }

    /// Cancels: the handlers still running are closed, and counted neither
    /// delivered nor failed.
    fn close(&self) {
        let cancelled = match self.future.try_lock() {
            Ok(mut slot) => slot.take(),
            Err(_) => None,
        };
        drop(cancelled);
    }
}

/// Runs `awaitable` to completion on a private event loop of this thread:
/// for `publish_blocking` from code with no running loop.
pub(crate) fn run_blocking(py: Python<'_>, awaitable: Awaitable) -> PyResult<Py<PyAny>> {
    let asyncio = py.import(intern!(py, "asyncio"))?;
    let running = asyncio.call_method0(intern!(py, "_get_running_loop"))?;
    if !running.is_none() {
        return Err(PyRuntimeError::new_err(
            "publish_blocking called from a running event loop: use `await bus.publish(event)`",
        ));
    }
    thread_local! {
        static LOOP: std::cell::RefCell<Option<Py<PyAny>>> = const { std::cell::RefCell::new(None) };
    }
    let event_loop = LOOP.with(|slot| -> PyResult<Py<PyAny>> {
        if let Some(event_loop) = slot.borrow().as_ref() {
            return Ok(event_loop.clone_ref(py));
        }
        let event_loop = asyncio
            .call_method0(intern!(py, "new_event_loop"))?
            .unbind();
        *slot.borrow_mut() = Some(event_loop.clone_ref(py));
        Ok(event_loop)
    })?;
    event_loop
        .bind(py)
        .call_method1(
            intern!(py, "run_until_complete"),
            (Py::new(py, awaitable)?,),
        )
        .map(Bound::unbind)
}

/// The waker of one [`Awaitable`]: wakes the asyncio task awaiting it.
#[derive(Default)]
struct LoopWaker {
    state: Mutex<Parked>,
}

#[derive(Default)]
struct Parked {
    /// Set by a wake-up during a poll, before anything was parked.
    woken: bool,
    /// The asyncio future the awaiting task sleeps on, with its loop and the
    /// loop's thread.
    future: Option<(Py<PyAny>, Py<PyAny>, ThreadId)>,
}

impl LoopWaker {
    fn lock(&self) -> MutexGuard<'_, Parked> {
        // Only plain data behind the lock; a panic elsewhere cannot leave it
        // half-updated.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn begin_poll(&self) {
        let stale = {
            let mut state = self.lock();
            state.woken = false;
            state.future.take()
        };
        drop(stale);
    }

    /// What to yield to the awaiting task after a `Pending` poll: `None` if
    /// woken meanwhile, else a fresh asyncio future the waker resolves.
    ///
    /// No Python code runs while the lock is held (it could release the GIL
    /// to a thread that wakes us and blocks on the lock holding the GIL).
    fn park(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        if self.lock().woken {
            return Ok(py.None());
        }
        let asyncio = py.import(intern!(py, "asyncio"))?;
        let event_loop = asyncio
            .call_method0(intern!(py, "get_running_loop"))
            .map_err(|_| {
                PyRuntimeError::new_err(
                    "an agentbus awaitable must be awaited from a coroutine on a running asyncio event loop",
                )
            })?;
        let future = event_loop.call_method0(intern!(py, "create_future"))?;
        future.setattr(intern!(py, "_asyncio_future_blocking"), true)?;
        let mut state = self.lock();
        if state.woken {
            drop(state);
            return Ok(py.None());
        }
        state.future = Some((
            event_loop.unbind(),
            future.clone().unbind(),
            std::thread::current().id(),
        ));
        drop(state);
        Ok(future.unbind())
    }
}

impl Wake for LoopWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let parked = {
            let mut state = self.lock();
            state.woken = true;
            state.future.take()
        };
        let Some((event_loop, future, thread)) = parked else {
            return;
        };
        Python::attach(|py| {
            let resolved = if std::thread::current().id() == thread {
                resolve(py, future.bind(py))
            } else {
                resolve_fn(py).and_then(|resolve| {
                    event_loop
                        .bind(py)
                        .call_method1(intern!(py, "call_soon_threadsafe"), (resolve, future))
                        .map(drop)
                })
            };
            // A closed loop cannot be woken; its task is gone with it.
            if let Err(err) = resolved {
                err.write_unraisable(py, None);
            }
        });
    }
}

/// Marks a parked asyncio future done (unless it was cancelled meanwhile).
fn resolve(py: Python<'_>, future: &Bound<'_, PyAny>) -> PyResult<()> {
    if !future.call_method0(intern!(py, "done"))?.is_truthy()? {
        future.call_method1(intern!(py, "set_result"), (py.None(),))?;
    }
    Ok(())
}

#[pyfunction]
fn _resolve_parked(future: &Bound<'_, PyAny>) -> PyResult<()> {
    resolve(future.py(), future)
}

fn resolve_fn(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    static RESOLVE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    Ok(RESOLVE
        .get_or_try_init(py, || {
            wrap_pyfunction!(_resolve_parked, py).map(|f| f.into_any().unbind())
        })?
        .bind(py))
}
