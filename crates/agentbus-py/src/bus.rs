//! `agentbus.EventBus`: the original's API over the core's process-wide
//! bus ([`agentbus::event_bus`]), so Python and Rust code in one process
//! publish to and subscribe on the same bus.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::Duration;

use agentbus::{Event, EventBus, Guard, HistoryQuery, SubscriptionId};
use agentbus_guard::Dedup;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyString};

use crate::awaitable::{self, Awaitable};
use crate::event::PyEvent;
use crate::store::{expect_store, PyRecorder};
use crate::stream::{event_types, PyEventStream};
use crate::{event_type, handler};

/// The largest `stream` buffer: its slots are allocated up front.
const MAX_STREAM_CAPACITY: usize = 1 << 20;

/// The original's default cap on async handler calls in flight, set on the
/// process-wide bus when the Python bus is first made, unless Rust code set
/// a limit there before.
const DEFAULT_MAX_CONCURRENT_HANDLERS: usize = 100;

/// What the Python side keeps beside the core bus.
struct Shared {
    dedup: DedupSetting,
    /// How many of the newest events `get_history` shows (`_max_history`).
    history_view: AtomicUsize,
    /// Live subscriptions made from Python: number -> (id, is async).
    subscriptions: Mutex<HashMap<u64, (SubscriptionId, bool)>>,
    /// How many of them are async (`publish_blocking` needs a loop then).
    async_subscriptions: AtomicUsize,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Plain maps and counters; a panic cannot leave them half-updated.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The original's deduplication (`configure(dedup_enabled=True,
/// dedup_window=1.0)`) on the Python bus: the current
/// [`agentbus_guard::Dedup`] window, whose docs state the rule (same id, or
/// same type, source agent, circle and data, within the window), the clock
/// and the memory bound.
///
/// The process-wide bus is built once, before any `configure`, so the
/// window cannot be one of its guards: the Python bus checks each event
/// with it (through [`Guard::check`]) before publishing, and a rejected
/// event reaches neither history nor handlers nor the Rust bus's counters.
///
/// Behaviour: off by default, as in the original; while off a publish pays
/// one atomic load. Turning it off and on again keeps what the window
/// remembers; a new `dedup_window` starts a new, empty window (its length
/// is fixed at construction), and `reset` starts one too. The count
/// survives `configure` (windows replaced hand theirs over) and is zeroed
/// by `reset`.
struct DedupSetting {
    /// Mirrors `Current::enabled`, so a bus without dedup takes no lock.
    enabled: AtomicBool,
    current: RwLock<Current>,
}

struct Current {
    enabled: bool,
    window: Dedup,
    /// Duplicates counted by windows replaced since the last `reset`.
    retired: u64,
}

impl Default for DedupSetting {
    fn default() -> Self {
        Self {
            enabled: AtomicBool::new(false),
            current: RwLock::new(Current {
                enabled: false,
                window: Dedup::window(Duration::from_secs(1)),
                retired: 0,
            }),
        }
    }
}

impl DedupSetting {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Current> {
        // A flag, a counter and a window that locks on its own: nothing a
        // panic could leave half-updated.
        self.current.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Current> {
        self.current.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// `true` if `event` may enter: dedup is off, or the window lets it in.
    fn admits(&self, event: &Event) -> bool {
        // Relaxed: a publish racing with `configure` may see either
        // setting; the window itself is only reached under the lock.
        if !self.enabled.load(Ordering::Relaxed) {
            return true;
        }
        let current = self.read();
        // Checked under the read lock so that `configure` or `reset`, which
        // take the write lock, never replace a window with a check in
        // flight, whose count would be lost.
        !current.enabled || current.window.check(event).is_ok()
    }

    fn configure(&self, enabled: Option<bool>, window: Option<Duration>) {
        let mut current = self.write();
        if let Some(window) = window.filter(|&w| w != current.window.window_length()) {
            let old = std::mem::replace(&mut current.window, Dedup::window(window));
            current.retired += old.deduplicated();
        }
        if let Some(enabled) = enabled {
            current.enabled = enabled;
            self.enabled.store(enabled, Ordering::Relaxed);
        }
    }

    /// Forgets every event seen and zeroes the count; the settings stay.
    fn reset(&self) {
        let mut current = self.write();
        current.window = Dedup::window(current.window.window_length());
        current.retired = 0;
    }

    /// Whether dedup is on, and its window.
    fn settings(&self) -> (bool, Duration) {
        let current = self.read();
        (current.enabled, current.window.window_length())
    }

    /// Events kept out since the last `reset`.
    fn deduplicated(&self) -> u64 {
        let current = self.read();
        current.retired + current.window.deduplicated()
    }
}

/// The event bus: subscribe handlers to event types, publish events to
/// them, read recent history and statistics.
///
/// `EventBus()` always returns the same, process-wide bus (`event_bus` is
/// it); Rust code in the same process shares it through
/// `agentbus::event_bus()`.
///
/// A publish reaches every subscriber of the event's type whose filter
/// passes. Plain functions are called inline; `async def` handlers run
/// concurrently on the publisher's event loop and `await publish` returns
/// when all have finished. A handler's exception is logged (logger
/// `agentbus`) and counted in `handler_errors`; the others still run.
#[pyclass(name = "EventBus", module = "agentbus", subclass, frozen)]
pub struct PyEventBus {
    bus: EventBus,
    shared: Arc<Shared>,
}

impl PyEventBus {
    fn history_view(&self) -> usize {
        self.shared
            .history_view
            .load(Ordering::Relaxed)
            .min(self.bus.history_capacity())
    }

    /// Runs the dedup window; `true` if the event may enter.
    fn admit(&self, event: &Event) -> bool {
        self.shared.dedup.admits(event)
    }
}

fn is_async(py: Python<'_>, handler: &Bound<'_, PyAny>) -> PyResult<bool> {
    static CHECK: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let check = CHECK
        .get_or_try_init(py, || {
            py.import("inspect")?
                .getattr("iscoroutinefunction")
                .map(Bound::unbind)
        })?
        .bind(py);
    if check.call1((handler,))?.is_truthy()? {
        return Ok(true);
    }
    // A callable object with an `async def __call__`.
    match handler.getattr(intern!(py, "__call__")) {
        Ok(call) => check.call1((call,))?.is_truthy(),
        Err(_) => Ok(false),
    }
}

fn handler_name(handler: &Bound<'_, PyAny>) -> PyResult<String> {
    match handler.getattr(intern!(handler.py(), "__name__")) {
        Ok(name) => Ok(name.str()?.to_string()),
        Err(_) => Ok(handler.repr()?.to_string()),
    }
}

#[pymethods]
impl PyEventBus {
    #[new]
    fn new() -> Self {
        static SHARED: std::sync::OnceLock<Arc<Shared>> = std::sync::OnceLock::new();
        let bus = agentbus::event_bus();
        let shared = SHARED.get_or_init(|| {
            if bus.max_concurrent_handlers().is_none() {
                bus.set_max_concurrent_handlers(Some(DEFAULT_MAX_CONCURRENT_HANDLERS));
            }
            Arc::new(Shared {
                dedup: DedupSetting::default(),
                history_view: AtomicUsize::new(usize::MAX),
                subscriptions: Mutex::new(HashMap::new()),
                async_subscriptions: AtomicUsize::new(0),
            })
        });
        Self {
            bus: bus.clone(),
            shared: Arc::clone(shared),
        }
    }

    /// Subscribes `handler` to `event_type` and returns the subscription's
    /// id (for `unsubscribe`).
    ///
    /// `handler(event)` may be a plain function (called inline) or an
    /// `async def` (awaited on the publisher's loop). `filter_fn(event)`,
    /// if given, must return true for the handler to be called; an
    /// exception in it counts as a handler error. `name` (default: the
    /// handler's `__name__`) appears in logs.
    #[pyo3(signature = (event_type, handler, filter_fn=None, name=None))]
    fn subscribe(
        &self,
        py: Python<'_>,
        event_type: &Bound<'_, PyAny>,
        handler: &Bound<'_, PyAny>,
        filter_fn: Option<&Bound<'_, PyAny>>,
        name: Option<String>,
    ) -> PyResult<String> {
        let event_type = event_type::parse(event_type)?;
        if !handler.is_callable() {
            return Err(PyTypeError::new_err("handler must be callable"));
        }
        let filter_fn = filter_fn.filter(|f| !f.is_none());
        if let Some(filter_fn) = filter_fn {
            if !filter_fn.is_callable() {
                return Err(PyTypeError::new_err("filter_fn must be callable or None"));
            }
        }
        let name: Arc<str> = match name {
            Some(name) => name.into(),
            None => handler_name(handler)?.into(),
        };
        let is_async = is_async(py, handler)?;
        let mut builder = self.bus.subscription(event_type).name(name.to_string());
        if let Some(filter_fn) = filter_fn {
            builder = builder.filter(handler::filter(
                filter_fn.clone().unbind(),
                Arc::clone(&name),
            ));
        }
        let handler = handler.clone().unbind();
        let id = if is_async {
            builder.async_handler(handler::async_handler(handler, name))
        } else {
            builder.handler(handler::sync_handler(handler, name))
        };
        lock(&self.shared.subscriptions).insert(id.get(), (id, is_async));
        if is_async {
            self.shared
                .async_subscriptions
                .fetch_add(1, Ordering::Relaxed);
        }
        Ok(id.to_string())
    }

    /// Removes a subscription: `True` the first time for an id `subscribe`
    /// returned, `False` after that or for any other value.
    fn unsubscribe(&self, subscription_id: &Bound<'_, PyAny>) -> bool {
        let Some(number) = subscription_id
            .cast::<PyString>()
            .ok()
            .and_then(|s| s.to_cow().ok().map(|c| c.into_owned()))
            .and_then(|s| s.strip_prefix("sub-").and_then(|n| n.parse::<u64>().ok()))
        else {
            return false;
        };
        let Some((id, was_async)) = lock(&self.shared.subscriptions).remove(&number) else {
            return false;
        };
        if was_async {
            self.shared
                .async_subscriptions
                .fetch_sub(1, Ordering::Relaxed);
        }
        self.bus.unsubscribe(id)
    }

    /// Publishes `event`; `await` the result. Returns once every handler has
    /// run (async ones concurrently on this loop). With deduplication on, a
    /// repeat within the window is dropped and counted instead.
    fn publish(&self, event: &Bound<'_, PyEvent>) -> Awaitable {
        let inner = Arc::clone(&event.get().inner);
        if !self.admit(&inner) {
            return Awaitable::new(Box::pin(std::future::ready(Ok(event.py().None()))));
        }
        handler::remember(event);
        let bus = self.bus.clone();
        Awaitable::new(Box::pin(async move {
            bus.publish(inner).await;
            Ok(Python::attach(|py| py.None()))
        }))
    }

    /// Publishes `event` from synchronous code (a plain thread, a script)
    /// and returns when every handler has finished. `async def` handlers run
    /// on a private event loop of the calling thread. `RuntimeError` if this
    /// thread is running an event loop: use `await publish(event)` there.
    fn publish_blocking(&self, py: Python<'_>, event: &Bound<'_, PyEvent>) -> PyResult<()> {
        if self.shared.async_subscriptions.load(Ordering::Relaxed) == 0 {
            let inner = Arc::clone(&event.get().inner);
            if self.admit(&inner) {
                handler::remember(event);
                self.bus.publish_blocking(inner);
                if let Some(interrupt) = handler::take_interrupt() {
                    return Err(interrupt);
                }
            }
            return Ok(());
        }
        awaitable::run_blocking(py, self.publish(event)).map(drop)
    }

    /// Recent events, newest first: at most `limit`, only of `event_type`
    /// if given, and only those whose attributes equal every keyword
    /// (`circle_id=1`, ...).
    #[pyo3(signature = (event_type=None, limit=100, **filters))]
    fn get_history(
        &self,
        py: Python<'_>,
        event_type: Option<&Bound<'_, PyAny>>,
        limit: i64,
        filters: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Vec<Py<PyEvent>>> {
        let limit = usize::try_from(limit)
            .map_err(|_| PyValueError::new_err("limit must not be negative"))?;
        let mut query = HistoryQuery::new();
        if let Some(event_type) = event_type.filter(|t| !t.is_none()) {
            query = query.event_type(event_type::parse(event_type)?);
        }
        let leftover = PyDict::new(py);
        if let Some(filters) = filters {
            for (key, value) in filters.iter() {
                let key_str = key.cast::<PyString>()?.to_cow()?;
                match (key_str.as_ref(), value.extract::<i64>().ok()) {
                    ("circle_id", Some(v)) => query = query.circle_id(v),
                    ("source_agent_id", Some(v)) => query = query.source_agent_id(v),
                    ("project_id", Some(v)) => query = query.project_id(v),
                    _ => leftover.set_item(key, value)?,
                }
            }
        }
        let view = self.history_view();
        let events = if view < self.bus.history_capacity() || !leftover.is_empty() {
            self.bus
                .history(&HistoryQuery::new().limit(view))
                .into_iter()
                .filter(|event| query.matches(event))
                .collect::<Vec<_>>()
        } else {
            self.bus.history(&query.limit(limit))
        };
        let mut out = Vec::new();
        for event in events {
            if out.len() >= limit {
                break;
            }
            let object = PyEvent::wrap(py, event)?;
            if !leftover.is_empty()
                && !object
                    .bind(py)
                    .call_method(intern!(py, "matches_filter"), (), Some(&leftover))?
                    .is_truthy()?
            {
                continue;
            }
            out.push(object);
        }
        Ok(out)
    }

    /// Counters: `events_published`, `events_delivered` (handler calls that
    /// succeeded), `events_deduplicated`, `handler_errors`,
    /// `active_subscribers`, `history_size`.
    fn get_stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let stats = self.bus.stats();
        let dict = PyDict::new(py);
        dict.set_item("events_published", stats.events_published)?;
        dict.set_item("events_delivered", stats.events_delivered)?;
        dict.set_item("events_deduplicated", self.shared.dedup.deduplicated())?;
        dict.set_item("handler_errors", stats.handler_errors)?;
        dict.set_item("active_subscribers", stats.active_subscribers)?;
        dict.set_item("history_size", stats.history_size.min(self.history_view()))?;
        Ok(dict)
    }

    /// Forgets the event history.
    fn clear_history(&self) {
        self.bus.clear_history();
    }

    /// Removes every subscription (Rust ones too), clears history, the
    /// dedup memory and the counters; for tests. Settings made with
    /// `configure` and `_max_history` stay, as in the original.
    fn reset(&self) {
        let removed = std::mem::take(&mut *lock(&self.shared.subscriptions));
        self.shared.async_subscriptions.store(0, Ordering::Relaxed);
        self.bus.reset();
        self.shared.dedup.reset();
        drop(removed);
    }

    /// Changes settings; `None` leaves one as it is.
    ///
    /// `max_concurrent_handlers` (default 100, at least 1): how many async
    /// handler calls may run at once, bus-wide (Rust async handlers on the
    /// process-wide bus too); more wait their turn, first come first
    /// served. Raising it starts waiting calls at once; lowering it lets
    /// the calls running finish. Sync handlers take no permit, and a
    /// publish made inside a handler runs under that handler's.
    /// `dedup_enabled` (default False) and `dedup_window` (seconds, default
    /// 1.0): drop an event with the id of one accepted less than the window
    /// ago, or equal to it in type, source agent, circle and data, and count
    /// it in `events_deduplicated`. A new `dedup_window` starts an empty
    /// window; the count stays until `reset`.
    #[pyo3(signature = (max_concurrent_handlers=None, dedup_window=None, dedup_enabled=None))]
    fn configure(
        &self,
        max_concurrent_handlers: Option<i64>,
        dedup_window: Option<f64>,
        dedup_enabled: Option<bool>,
    ) -> PyResult<()> {
        let max = max_concurrent_handlers
            .map(|max| {
                usize::try_from(max)
                    .ok()
                    .filter(|&max| max >= 1)
                    .ok_or_else(|| {
                        PyValueError::new_err("max_concurrent_handlers must be at least 1")
                    })
            })
            .transpose()?;
        let window = dedup_window
            .map(|window| {
                Duration::try_from_secs_f64(window).map_err(|_| {
                    PyValueError::new_err("dedup_window must be a finite number of seconds >= 0")
                })
            })
            .transpose()?;
        if let Some(max) = max {
            self.bus.set_max_concurrent_handlers(Some(max));
        }
        self.shared.dedup.configure(dedup_enabled, window);
        Ok(())
    }

    /// The current settings: `max_concurrent_handlers`, `dedup_enabled`,
    /// `dedup_window`, `max_history`.
    fn get_config<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let (enabled, window) = self.shared.dedup.settings();
        let dict = PyDict::new(py);
        dict.set_item(
            "max_concurrent_handlers",
            self.bus.max_concurrent_handlers(),
        )?;
        dict.set_item("dedup_enabled", enabled)?;
        dict.set_item("dedup_window", window.as_secs_f64())?;
        dict.set_item("max_history", self.history_view())?;
        Ok(dict)
    }

    /// How many of the newest events history shows (the original's private
    /// attribute, kept for its tests): at most the bus's capacity (1000).
    #[getter(_max_history)]
    fn max_history(&self) -> usize {
        self.history_view()
    }

    #[setter(_max_history)]
    fn set_max_history(&self, value: i64) -> PyResult<()> {
        let capacity = self.bus.history_capacity();
        let value = usize::try_from(value)
            .ok()
            .filter(|&v| v <= capacity)
            .ok_or_else(|| {
                PyValueError::new_err(format!("_max_history must be between 0 and {capacity}"))
            })?;
        self.shared.history_view.store(value, Ordering::Relaxed);
        Ok(())
    }

    /// A new async iterator over the events of `types` (an `EventType`, an
    /// iterable of them, or `None` for all), buffering up to `capacity`.
    /// When the buffer is full the oldest is dropped and the next
    /// `__anext__` raises `agentbus.Lagged` with the count missed.
    /// `capacity` is at most 1,048,576 (`ValueError` otherwise).
    #[pyo3(signature = (types=None, capacity=1024))]
    fn stream(&self, types: Option<&Bound<'_, PyAny>>, capacity: usize) -> PyResult<PyEventStream> {
        if !(1..=MAX_STREAM_CAPACITY).contains(&capacity) {
            return Err(PyValueError::new_err(format!(
                "capacity must be between 1 and {MAX_STREAM_CAPACITY}"
            )));
        }
        let types = event_types(types)?;
        Ok(PyEventStream::new(self.bus.stream(types, capacity)))
    }

    /// Starts recording every event published on this bus into `store` (an
    /// `agentbus.Store`) and returns the `Recorder`; keep it, and `await
    /// recorder.flush()` to know what is durable.
    fn record(&self, store: &Bound<'_, PyAny>) -> PyResult<PyRecorder> {
        Ok(PyRecorder::attach(&self.bus, expect_store(store)?.get()))
    }
}
