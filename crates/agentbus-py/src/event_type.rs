//! `agentbus.EventType`: the core's [`EventType`]s as a Python `str` enum
//! (`EventType.TASK_COMPLETED == "task.completed"`), built once from the
//! core's list so the two can never disagree.

use agentbus::EventType;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};

static CLASS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static MEMBERS: PyOnceLock<Vec<Py<PyAny>>> = PyOnceLock::new();

/// The `EventType` enum class, created on first use.
pub(crate) fn class(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    Ok(CLASS
        .get_or_try_init(py, || {
            let names = PyList::empty(py);
            for event_type in EventType::ALL {
                let name = event_type.as_str().replace('.', "_").to_uppercase();
                names.append(PyTuple::new(py, [name.as_str(), event_type.as_str()])?)?;
            }
            let kwargs = PyDict::new(py);
            kwargs.set_item("module", "agentbus")?;
            kwargs.set_item("type", py.get_type::<PyString>())?;
            let class = py
                .import("enum")?
                .getattr("Enum")?
                .call(("EventType", names), Some(&kwargs))?;
            class.setattr(
                "__doc__",
                "What happened: a str enum whose values are the dotted names \
                 (EventType.TASK_COMPLETED == \"task.completed\").",
            )?;
            Ok::<_, PyErr>(class.unbind())
        })?
        .bind(py))
}

fn members(py: Python<'_>) -> PyResult<&Vec<Py<PyAny>>> {
    MEMBERS.get_or_try_init(py, || {
        let class = class(py)?;
        EventType::ALL
            .iter()
            .map(|t| class.call1((t.as_str(),)).map(Bound::unbind))
            .collect::<PyResult<Vec<_>>>()
    })
}

/// The enum member for `event_type`.
pub(crate) fn member(py: Python<'_>, event_type: EventType) -> PyResult<Bound<'_, PyAny>> {
    Ok(members(py)?[event_type.index()].bind(py).clone())
}

/// An `EventType` member or its dotted name as the core's type.
pub(crate) fn parse(value: &Bound<'_, PyAny>) -> PyResult<EventType> {
    // A member (the usual case) by identity: no string copy.
    if let Some(index) = members(value.py())?.iter().position(|m| m.is(value)) {
        return Ok(EventType::ALL[index]);
    }
    let Ok(name) = value.cast::<PyString>() else {
        return Err(PyTypeError::new_err(format!(
            "event type must be an EventType or its dotted name, got {}",
            value.get_type().name()?
        )));
    };
    let name = name.to_cow()?;
    name.parse()
        .map_err(|_| PyValueError::new_err(format!("unknown event type {name:?}")))
}
