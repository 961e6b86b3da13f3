//! `agentbus.EventStream`: a core [`EventStream`] as a Python async
//! iterator (`async for event in bus.stream(...)`).

use std::future::poll_fn;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Poll;

use agentbus::{EventStream, EventTypeSet};
use futures_util::Stream;
use pyo3::exceptions::PyStopAsyncIteration;
use pyo3::prelude::*;

use crate::awaitable::Awaitable;
use crate::event::PyEvent;
use crate::event_type;

pyo3::create_exception!(
    agentbus,
    Lagged,
    pyo3::exceptions::PyException,
    "Raised by an EventStream that fell behind: its buffer was full and \
     `args[0]` events were dropped (the oldest first). Iteration can go on."
);

/// `None` (every type), one `EventType` (or dotted name), or an iterable of
/// them, as a set.
pub(crate) fn event_types(types: Option<&Bound<'_, PyAny>>) -> PyResult<EventTypeSet> {
    let Some(types) = types.filter(|t| !t.is_none()) else {
        return Ok(EventTypeSet::all());
    };
    if let Ok(one) = event_type::parse(types) {
        return Ok(one.into());
    }
    let mut set = EventTypeSet::empty();
    for item in types.try_iter()? {
        set = set.with(event_type::parse(&item?)?);
    }
    Ok(set)
}

/// Events of the types it was made for, as they are published, in publish
/// order: `async for event in bus.stream(EventType.TASK_COMPLETED): ...`.
///
/// Buffers up to its capacity; when full, the oldest event is dropped and
/// the next `__anext__` raises `agentbus.Lagged` (iteration can go on).
/// `close()` (or dropping the stream) unsubscribes it; after that the
/// iteration ends once the buffer is drained.
#[pyclass(name = "EventStream", module = "agentbus", frozen)]
pub struct PyEventStream {
    stream: Arc<Mutex<Option<EventStream>>>,
}

impl PyEventStream {
    pub(crate) fn new(stream: EventStream) -> Self {
        Self {
            stream: Arc::new(Mutex::new(Some(stream))),
        }
    }
}

#[pymethods]
impl PyEventStream {
    /// The stream itself.
    fn __aiter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    /// The next event; `await` it.
    fn __anext__(&self) -> Awaitable {
        let stream = Arc::clone(&self.stream);
        Awaitable::new(Box::pin(async move {
            let next = poll_fn(|cx| {
                let mut guard = stream.lock().unwrap_or_else(PoisonError::into_inner);
                match guard.as_mut() {
                    None => Poll::Ready(None),
                    Some(stream) => std::pin::Pin::new(stream).poll_next(cx),
                }
            })
            .await;
            Python::attach(|py| match next {
                Some(Ok(event)) => Ok(PyEvent::wrap(py, event)?.into_any()),
                Some(Err(lagged)) => Err(Lagged::new_err(lagged.0)),
                None => Err(PyStopAsyncIteration::new_err(())),
            })
        }))
    }

    /// Unsubscribes; events already buffered are dropped.
    fn close(&self) {
        let stream = self
            .stream
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        drop(stream);
    }
}
