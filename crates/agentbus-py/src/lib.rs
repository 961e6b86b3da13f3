//! Python bindings for agentbus: the native part of the `agentbus` Python
//! package (`agentbus._agentbus`), built with PyO3 and maturin as an abi3
//! wheel for CPython >= 3.9.
//!
//! The package keeps the API of the original Python bus (`gathering.events`:
//! `EventType`, `Event`, `EventBus`, `event_bus`), so its users' code and
//! tests run unchanged, on top of the core crate: events are Rust
//! [`agentbus::Event`]s, subscriptions live in the core's lock-free tables,
//! history is the core's ring. What happens on each path is documented where
//! it is built: handler calls, exceptions and the event objects handlers see
//! in `handler.rs`; how `await` drives a Rust future on asyncio, and
//! cancellation, in `awaitable.rs`; the concurrency cap (the core bus's
//! [`agentbus::EventBus::set_max_concurrent_handlers`]) and the
//! deduplication window (an [`agentbus_guard::Dedup`]) in `bus.rs`;
//! payload and timestamp conversion in `convert.rs`.
//!
//! The Python-facing documentation is in the docstrings and the type stubs
//! (`python/agentbus/__init__.pyi`); the crate's README section shows the
//! install and a quick start.

mod awaitable;
mod bus;
mod convert;
mod event;
mod event_type;
mod handler;
mod store;
mod stream;

use pyo3::prelude::*;

pub use crate::{
    awaitable::Awaitable,
    bus::PyEventBus,
    event::PyEvent,
    store::{PyRecorder, PyStore},
    stream::PyEventStream,
};

/// The native module: `agentbus._agentbus`; the `agentbus` package
/// re-exports it. Public so a Rust program embedding Python can register it
/// with `pyo3::append_to_inittab!` (the smoke test does).
#[pymodule]
pub fn _agentbus(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<PyEvent>()?;
    m.add_class::<PyEventBus>()?;
    m.add_class::<PyEventStream>()?;
    m.add_class::<Awaitable>()?;
    m.add_class::<PyStore>()?;
    m.add_class::<PyRecorder>()?;
    m.add("EventType", event_type::class(py)?)?;
    m.add("Lagged", py.get_type::<stream::Lagged>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
