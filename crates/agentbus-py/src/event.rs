//! `agentbus.Event`: a read-only Python view of one Rust [`Event`].
//!
//! The Python object owns an `Arc<Event>`; publishing hands that same `Arc`
//! to the bus, so history, Rust subscribers and stores share it without a
//! copy. `data` and `timestamp` are converted to Python once per object, on
//! first access, and cached (an `Event` built from Python keeps the very
//! `dict` it was given). Attributes are read-only: events are records of
//! things that happened.

use std::sync::{Arc, OnceLock};

use agentbus::{Event, EventId};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::pyclass::CompareOp;
use pyo3::types::{PyDict, PyString};

use crate::{convert, event_type};

/// An event: what happened (`type`), its payload (`data`), who and where it
/// came from, when, and its causal chain.
///
/// `Event(type, data={}, source_agent_id=None, circle_id=None,
/// project_id=None, timestamp=now, id=new, correlation_id=None,
/// causation_id=None)`. `type` is an `EventType` or its dotted name; `data`
/// must be JSON-compatible (`TypeError`/`ValueError` otherwise, naming the
/// offending key); `timestamp` a `datetime` (naive means UTC); `id`,
/// `correlation_id` and `causation_id` event ids as strings (`ValueError` if
/// malformed). Every attribute is read-only.
#[pyclass(name = "Event", module = "agentbus", frozen, weakref)]
pub struct PyEvent {
    pub(crate) inner: Arc<Event>,
    // std's OnceLock, not PyOnceLock: the latter detaches from the
    // interpreter to initialise, which costs microseconds per event. These
    // are only ever `set` with a finished value (see `cached`), so no thread
    // waits on one while holding the GIL.
    data: OnceLock<Py<PyAny>>,
    timestamp: OnceLock<Py<PyAny>>,
}

/// The cached object in `slot`, made by `make` on first use. If two threads
/// race, both make one and the first stored wins.
fn cached<'py>(
    py: Python<'py>,
    slot: &OnceLock<Py<PyAny>>,
    make: impl FnOnce() -> PyResult<Bound<'py, PyAny>>,
) -> PyResult<Py<PyAny>> {
    if let Some(value) = slot.get() {
        return Ok(value.clone_ref(py));
    }
    let made = make()?.unbind();
    let lost = slot.set(made.clone_ref(py));
    Ok(match (lost, slot.get()) {
        (Err(_), Some(winner)) => winner.clone_ref(py),
        _ => made,
    })
}

impl PyEvent {
    /// A Python view of an event that came from the Rust side.
    pub(crate) fn from_arc(inner: Arc<Event>) -> Self {
        Self {
            inner,
            data: OnceLock::new(),
            timestamp: OnceLock::new(),
        }
    }

    /// A new Python object for an event from the Rust side.
    pub(crate) fn wrap(py: Python<'_>, inner: Arc<Event>) -> PyResult<Py<PyEvent>> {
        Py::new(py, Self::from_arc(inner))
    }
}

fn parse_id(value: Option<&str>, what: &str) -> PyResult<Option<EventId>> {
    value
        .map(|text| {
            text.parse::<EventId>().map_err(|err| {
                PyValueError::new_err(format!("{what} {text:?} is not an event id: {err}"))
            })
        })
        .transpose()
}

#[pymethods]
impl PyEvent {
    #[new]
    #[pyo3(signature = (
        r#type, data=None, source_agent_id=None, circle_id=None, project_id=None,
        timestamp=None, id=None, correlation_id=None, causation_id=None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        r#type: &Bound<'_, PyAny>,
        data: Option<&Bound<'_, PyAny>>,
        source_agent_id: Option<i64>,
        circle_id: Option<i64>,
        project_id: Option<i64>,
        timestamp: Option<&Bound<'_, PyAny>>,
        id: Option<&str>,
        correlation_id: Option<&str>,
        causation_id: Option<&str>,
    ) -> PyResult<Self> {
        let mut event = Event::new(event_type::parse(r#type)?);
        let cached_data = OnceLock::new();
        if let Some(data) = data.filter(|d| !d.is_none()) {
            event.data = convert::to_json(data)?;
            let _ = cached_data.set(data.clone().unbind());
        }
        event.source_agent_id = source_agent_id;
        event.circle_id = circle_id;
        event.project_id = project_id;
        let cached_timestamp = OnceLock::new();
        if let Some(timestamp) = timestamp.filter(|t| !t.is_none()) {
            event.timestamp = convert::from_datetime(timestamp)?;
        }
        if let Some(id) = parse_id(id, "id")? {
            event.id = id;
        }
        event.correlation_id = parse_id(correlation_id, "correlation_id")?;
        event.causation_id = parse_id(causation_id, "causation_id")?;
        // An aware datetime is kept as given; a naive one is shown as UTC.
        if let Some(timestamp) = timestamp.filter(|t| !t.is_none()) {
            if !timestamp.getattr(pyo3::intern!(py, "tzinfo"))?.is_none() {
                let _ = cached_timestamp.set(timestamp.clone().unbind());
            }
        }
        Ok(Self {
            inner: Arc::new(event),
            data: cached_data,
            timestamp: cached_timestamp,
        })
    }

    /// The event's `EventType`.
    #[getter(r#type)]
    fn event_type<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        event_type::member(py, self.inner.event_type)
    }

    /// The payload (a `dict` by convention); the same object on every access.
    #[getter]
    fn data(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        cached(py, &self.data, || convert::to_python(py, &self.inner.data))
    }

    /// The agent that triggered the event, or `None`.
    #[getter]
    fn source_agent_id(&self) -> Option<i64> {
        self.inner.source_agent_id
    }

    /// The circle the event belongs to, or `None`.
    #[getter]
    fn circle_id(&self) -> Option<i64> {
        self.inner.circle_id
    }

    /// The project the event belongs to, or `None`.
    #[getter]
    fn project_id(&self) -> Option<i64> {
        self.inner.project_id
    }

    /// When the event was created: an aware UTC `datetime`.
    #[getter]
    fn timestamp(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        cached(py, &self.timestamp, || {
            convert::to_datetime(py, self.inner.timestamp)
        })
    }

    /// The event's unique, time-ordered id.
    #[getter]
    fn id(&self) -> String {
        self.inner.id.to_string()
    }

    /// The id of the event that started this event's chain, or `None`.
    #[getter]
    fn correlation_id(&self) -> Option<String> {
        self.inner.correlation_id.map(|id| id.to_string())
    }

    /// The id of the event whose handling published this one, or `None`.
    #[getter]
    fn causation_id(&self) -> Option<String> {
        self.inner.causation_id.map(|id| id.to_string())
    }

    /// `True` if every keyword names an attribute equal to its value
    /// (`event.matches_filter(circle_id=1, source_agent_id=2)`); an unknown
    /// attribute counts as `None`.
    #[pyo3(signature = (**filters))]
    fn matches_filter(
        slf: &Bound<'_, Self>,
        filters: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<bool> {
        let Some(filters) = filters else {
            return Ok(true);
        };
        let py = slf.py();
        for (key, expected) in filters.iter() {
            let key = key.cast::<PyString>()?;
            let actual = slf
                .as_any()
                .getattr(key)
                .unwrap_or_else(|_| py.None().into_bound(py));
            if actual.ne(&expected)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The event as JSON text (the Rust side's format: RFC 3339 timestamp
    /// with nanoseconds, `"type"` as the dotted name).
    fn to_json(&self) -> PyResult<String> {
        self.inner
            .to_json()
            .map_err(|err| PyValueError::new_err(err.to_string()))
    }

    /// An event from JSON text in `to_json`'s format; `ValueError` if it
    /// is malformed or names an unknown type.
    #[staticmethod]
    fn from_json(json: &str) -> PyResult<Self> {
        Event::from_json(json)
            .map(|event| Self::from_arc(Arc::new(event)))
            .map_err(|err| PyValueError::new_err(err.to_string()))
    }

    /// Events are equal when every field is (id, type, data, ids, time).
    fn __richcmp__(&self, other: &Bound<'_, PyAny>, op: CompareOp) -> PyResult<Py<PyAny>> {
        let py = other.py();
        let Ok(other) = other.cast::<PyEvent>() else {
            return Ok(py.NotImplemented());
        };
        let same = *self.inner == *other.get().inner;
        Ok(match op {
            CompareOp::Eq => same.into_pyobject(py)?.to_owned().into_any().unbind(),
            CompareOp::Ne => (!same).into_pyobject(py)?.to_owned().into_any().unbind(),
            _ => py.NotImplemented(),
        })
    }

    /// `Event(type=..., data=..., ..., id=...)`.
    fn __repr__(&self) -> String {
        let e = &self.inner;
        format!(
            "Event(type={:?}, data={}, source_agent_id={:?}, circle_id={:?}, project_id={:?}, id={:?})",
            e.event_type.as_str(),
            e.data,
            e.source_agent_id,
            e.circle_id,
            e.project_id,
            e.id.to_string()
        )
    }
}
