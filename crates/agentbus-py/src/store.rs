//! `agentbus.Store` and `agentbus.Recorder`: the durable SQLite event store
//! of `agentbus-store` from Python.
//!
//! `Store.open("events.db")` opens (creating and migrating) a SQLite file;
//! `bus.record(store)` attaches a recorder that writes every event published
//! on the bus to it, on a writer thread of its own (publishers only hand the
//! event over; when the recorder's queue is full they wait, so nothing is
//! lost). `await recorder.flush()` returns once everything published before
//! it is committed; `store.read(...)` reads events back by sequence, also
//! after a restart. Reads release the GIL while SQLite works.

use std::sync::{Mutex, PoisonError};

use agentbus_store::{ReadQuery, Recorder, SqliteStore, StoreError};
use pyo3::exceptions::{PyOSError, PyRuntimeError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use crate::awaitable::Awaitable;
use crate::event::PyEvent;
use crate::event_type;

fn store_error(err: StoreError) -> PyErr {
    PyOSError::new_err(err.to_string())
}

/// A durable event store in one SQLite file (WAL mode, created on open).
#[pyclass(name = "Store", module = "agentbus", frozen)]
pub struct PyStore {
    pub(crate) store: SqliteStore,
}

#[pymethods]
impl PyStore {
    /// Opens (creating and migrating if needed) the SQLite store at `path`;
    /// `OSError` if the file cannot be opened or is not an agentbus store.
    #[staticmethod]
    fn open(py: Python<'_>, path: std::path::PathBuf) -> PyResult<Self> {
        py.detach(|| SqliteStore::open(path))
            .map(|store| Self { store })
            .map_err(store_error)
    }

    /// Stored events as `(sequence, Event)` pairs, oldest first (or newest
    /// first with `descending=True`): those after sequence `after`, at most
    /// `limit`, filtered by type, circle, agent and project if given.
    #[pyo3(signature = (
        after=0, limit=100, event_type=None, circle_id=None, source_agent_id=None,
        project_id=None, descending=false
    ))]
    #[allow(clippy::too_many_arguments)]
    fn read<'py>(
        &self,
        py: Python<'py>,
        after: u64,
        limit: usize,
        event_type: Option<&Bound<'py, PyAny>>,
        circle_id: Option<i64>,
        source_agent_id: Option<i64>,
        project_id: Option<i64>,
        descending: bool,
    ) -> PyResult<Vec<Bound<'py, PyTuple>>> {
        let mut query = ReadQuery::new().after(after).limit(limit);
        if let Some(event_type) = event_type.filter(|t| !t.is_none()) {
            query = query.event_type(event_type::parse(event_type)?);
        }
        if let Some(circle_id) = circle_id {
            query = query.circle_id(circle_id);
        }
        if let Some(agent_id) = source_agent_id {
            query = query.source_agent_id(agent_id);
        }
        if let Some(project_id) = project_id {
            query = query.project_id(project_id);
        }
        if descending {
            query = query.descending();
        }
        let rows = py
            .detach(|| self.store.read_blocking(&query))
            .map_err(store_error)?;
        rows.into_iter()
            .map(|row| {
                let event = PyEvent::wrap(py, row.event)?;
                PyTuple::new(
                    py,
                    [
                        row.sequence.into_pyobject(py)?.into_any(),
                        event.into_bound(py).into_any(),
                    ],
                )
            })
            .collect()
    }

    /// The sequence of the newest stored event (0 if none).
    fn last_sequence(&self, py: Python<'_>) -> PyResult<u64> {
        py.detach(|| self.store.last_sequence_blocking())
            .map_err(store_error)
    }
}

/// Records every event published on the bus into a `Store`; from
/// `EventBus.record(store)`. Recording stops at `close()` or when the
/// object is garbage-collected (what was handed over is still committed).
#[pyclass(name = "Recorder", module = "agentbus", frozen)]
pub struct PyRecorder {
    recorder: Mutex<Option<Recorder>>,
}

impl PyRecorder {
    pub(crate) fn attach(bus: &agentbus::EventBus, store: &PyStore) -> Self {
        Self {
            recorder: Mutex::new(Some(Recorder::attach(bus, store.store.clone()))),
        }
    }

    fn recorder(&self) -> PyResult<Recorder> {
        self.recorder
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or_else(|| PyRuntimeError::new_err("this recorder is closed"))
    }
}

#[pymethods]
impl PyRecorder {
    /// Resolves, once every event published before the call is committed, to
    /// the store's last sequence; `await` it. `OSError` if the store is
    /// failing meanwhile (the recorder keeps retrying).
    fn flush(&self) -> PyResult<Awaitable> {
        let recorder = self.recorder()?;
        Ok(Awaitable::new(Box::pin(async move {
            let last = recorder.flush().await.map_err(store_error)?;
            Python::attach(|py| Ok(last.into_pyobject(py)?.into_any().unbind()))
        })))
    }

    /// Counters: `queued`, `in_flight`, `committed`, `duplicates`,
    /// `dropped`, `rejected`, `waits`, `errors`.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let stats = self.recorder()?.stats();
        let dict = PyDict::new(py);
        dict.set_item("queued", stats.queued)?;
        dict.set_item("in_flight", stats.in_flight)?;
        dict.set_item("committed", stats.committed)?;
        dict.set_item("duplicates", stats.duplicates)?;
        dict.set_item("dropped", stats.dropped)?;
        dict.set_item("rejected", stats.rejected)?;
        dict.set_item("waits", stats.waits)?;
        dict.set_item("errors", stats.errors)?;
        Ok(dict)
    }

    /// Stops recording; events already handed over are still committed in
    /// the background (`await flush()` first to wait for them).
    fn close(&self) {
        let recorder = self
            .recorder
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        drop(recorder);
    }
}

/// The `Store` argument of `record`, or a `TypeError`.
pub(crate) fn expect_store<'a, 'py>(
    store: &'a Bound<'py, PyAny>,
) -> PyResult<&'a Bound<'py, PyStore>> {
    store
        .cast::<PyStore>()
        .map_err(|_| PyTypeError::new_err("record() takes an agentbus.Store"))
}
