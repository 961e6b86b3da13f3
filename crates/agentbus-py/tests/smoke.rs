//! Smoke test from the Rust side: an embedded interpreter imports the native
//! module, and events cross the shared process-wide bus both ways (Rust
//! publishes to a Python handler, Python publishes to a Rust handler).
//! The full behaviour is tested from Python: `tests/python` (pytest).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use _agentbus::_agentbus;
use agentbus::{event_bus, Event, EventType};
use pyo3::prelude::*;
use pyo3::types::PyDict;

#[test]
fn events_cross_between_rust_and_python_handlers() {
    pyo3::append_to_inittab!(_agentbus);
    Python::initialize();

    let from_python = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&from_python);
    event_bus().subscribe(EventType::TaskFailed, move |event: &Event| {
        assert_eq!(event.data["why"], "disk full");
        counter.fetch_add(1, Ordering::Relaxed);
    });

    let globals = Python::attach(|py| -> PyResult<Py<PyDict>> {
        let globals = PyDict::new(py);
        py.run(
            c"import _agentbus as ab\n\
              got = []\n\
              ab.EventBus().subscribe(ab.EventType.TASK_COMPLETED, lambda e: got.append(e.data['n']))\n",
            Some(&globals),
            None,
        )?;
        Ok(globals.unbind())
    })
    .expect("the module imports and subscribes");

    // Published from Rust without holding the GIL: the Python handler
    // attaches to the interpreter itself.
    let outcome = event_bus().publish_blocking(
        Event::new(EventType::TaskCompleted).with_data(serde_json::json!({"n": 7})),
    );
    assert_eq!(outcome.delivered, 1);

    Python::attach(|py| -> PyResult<()> {
        let globals = globals.bind(py);
        py.run(
            c"import asyncio\n\
              assert got == [7], got\n\
              asyncio.run(ab.EventBus().publish(ab.Event(type='task.failed', data={'why': 'disk full'})))\n",
            Some(globals),
            None,
        )
    })
    .expect("the Python side sees the Rust event and publishes one back");
    assert_eq!(from_python.load(Ordering::Relaxed), 1);
}
