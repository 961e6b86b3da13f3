"""agentbus: a lock-free in-process event bus for Python agents.

A drop-in for the original ``gathering.events`` module (``EventType``,
``Event``, ``EventBus``, ``event_bus``) running on the Rust ``agentbus``
core, plus what the Rust side adds: ``EventBus.stream`` (an async
iterator), ``EventBus.publish_blocking`` for plain threads, the durable
store (``Store.open``, ``EventBus.record``, ``Store.read``), the causal chain
(``Event.correlation_id`` / ``causation_id``) and JSON round trips.

    from agentbus import Event, EventType, event_bus

    async def on_done(event: Event) -> None:
        print("task", event.data["task_id"], "completed")

    event_bus.subscribe(EventType.TASK_COMPLETED, on_done)
    await event_bus.publish(Event(type=EventType.TASK_COMPLETED, data={"task_id": 1}))
"""

from agentbus._agentbus import (
    Awaitable,
    Event,
    EventStream,
    EventType,
    Lagged,
    Recorder,
    Store,
    __version__,
)
from agentbus._agentbus import EventBus as _NativeEventBus

__all__ = [
    "Awaitable",
    "Event",
    "EventBus",
    "EventStream",
    "EventType",
    "Lagged",
    "Recorder",
    "Store",
    "event_bus",
    "__version__",
]


class EventBus(_NativeEventBus):
    """The process-wide event bus; ``EventBus()`` always returns the same one.

    See the native base class for the methods: ``subscribe``,
    ``unsubscribe``, ``publish`` (await it), ``publish_blocking``,
    ``get_history``, ``get_stats``, ``clear_history``, ``reset``,
    ``configure``, ``get_config``, ``stream`` and ``record``.
    """

    __slots__ = ()
    _instance = None

    def __new__(cls) -> "EventBus":
        """Return the one bus, creating it on first use."""
        if EventBus._instance is None:
            EventBus._instance = super().__new__(cls)
        return EventBus._instance

    def __init__(self) -> None:
        """Nothing to do: the bus is set up once, on first use."""


event_bus = EventBus()
"""The process-wide bus (``EventBus()`` returns this same object)."""
