"""Type stubs for agentbus (the native module is agentbus._agentbus)."""

import enum
from datetime import datetime
from typing import (
    Any,
    Awaitable as _Awaitable,
    Callable,
    Dict,
    Generator,
    Iterable,
    List,
    Optional,
    Tuple,
    Union,
)

__version__: str

class EventType(str, enum.Enum):
    """What happened: a str enum whose values are the dotted names."""

    AGENT_STARTED = "agent.started"
    AGENT_STOPPED = "agent.stopped"
    AGENT_TASK_ASSIGNED = "agent.task.assigned"
    AGENT_TASK_COMPLETED = "agent.task.completed"
    AGENT_TASK_FAILED = "agent.task.failed"
    AGENT_TOOL_EXECUTED = "agent.tool.executed"
    MEMORY_CREATED = "memory.created"
    MEMORY_SHARED = "memory.shared"
    MEMORY_RECALLED = "memory.recalled"
    CIRCLE_CREATED = "circle.created"
    CIRCLE_STARTED = "circle.started"
    CIRCLE_STOPPED = "circle.stopped"
    CIRCLE_MEMBER_ADDED = "circle.member.added"
    CIRCLE_MEMBER_REMOVED = "circle.member.removed"
    TASK_CREATED = "task.created"
    TASK_ASSIGNED = "task.assigned"
    TASK_STARTED = "task.started"
    TASK_COMPLETED = "task.completed"
    TASK_FAILED = "task.failed"
    TASK_CONFLICT_DETECTED = "task.conflict.detected"
    CONVERSATION_MESSAGE = "conversation.message"
    CONVERSATION_TURN_COMPLETE = "conversation.turn.complete"
    SYSTEM_ERROR = "system.error"
    SYSTEM_WARNING = "system.warning"

_EventTypeLike = Union[EventType, str]

class Event:
    """An event; every attribute is read-only."""

    def __init__(
        self,
        type: _EventTypeLike,
        data: Optional[Dict[str, Any]] = None,
        source_agent_id: Optional[int] = None,
        circle_id: Optional[int] = None,
        project_id: Optional[int] = None,
        timestamp: Optional[datetime] = None,
        id: Optional[str] = None,
        correlation_id: Optional[str] = None,
        causation_id: Optional[str] = None,
    ) -> None:
        """Build an event; `data` must be JSON-compatible."""
    @property
    def type(self) -> EventType:
        """The event's type."""
    @property
    def data(self) -> Dict[str, Any]:
        """The payload; the same object on every access."""
    @property
    def source_agent_id(self) -> Optional[int]:
        """The agent that triggered the event."""
    @property
    def circle_id(self) -> Optional[int]:
        """The circle the event belongs to."""
    @property
    def project_id(self) -> Optional[int]:
        """The project the event belongs to."""
    @property
    def timestamp(self) -> datetime:
        """When the event was created (aware, UTC)."""
    @property
    def id(self) -> str:
        """The unique, time-ordered id."""
    @property
    def correlation_id(self) -> Optional[str]:
        """The id of the event that started this event's chain."""
    @property
    def causation_id(self) -> Optional[str]:
        """The id of the event whose handling published this one."""
    def matches_filter(self, **filters: Any) -> bool:
        """True if every keyword names an attribute equal to its value."""
    def to_json(self) -> str:
        """The event as JSON text."""
    @staticmethod
    def from_json(json: str) -> "Event":
        """An event from `to_json`'s format; ValueError if malformed."""
    def __eq__(self, other: object) -> bool: ...

class Awaitable:
    """What `publish` and `EventStream.__anext__` return; await it once."""

    def __await__(self) -> Generator[Any, None, Any]: ...
    def send(self, value: Any) -> Any:
        """Coroutine protocol."""
    def throw(self, kind: Any, value: Any = None, traceback: Any = None) -> Any:
        """Cancel and raise the exception given."""
    def close(self) -> None:
        """Cancel: handlers still running are closed."""

Handler = Callable[[Event], Union[None, _Awaitable[None]]]

class EventStream:
    """An async iterator over published events."""

    def __aiter__(self) -> "EventStream": ...
    def __anext__(self) -> Awaitable:
        """The next event; raises Lagged after an overflow."""
    def close(self) -> None:
        """Unsubscribe; buffered events are dropped."""

class Lagged(Exception):
    """A stream's buffer overflowed; args[0] events were dropped."""

class Store:
    """A durable event store in one SQLite file."""

    @staticmethod
    def open(path: str) -> "Store":
        """Open (creating if needed) the store at `path`; OSError on failure."""
    def read(
        self,
        after: int = 0,
        limit: int = 100,
        event_type: Optional[_EventTypeLike] = None,
        circle_id: Optional[int] = None,
        source_agent_id: Optional[int] = None,
        project_id: Optional[int] = None,
        descending: bool = False,
    ) -> List[Tuple[int, Event]]:
        """Stored events as (sequence, Event) pairs."""
    def last_sequence(self) -> int:
        """The newest stored sequence (0 if none)."""

class Recorder:
    """Records a bus's events into a Store; from EventBus.record."""

    def flush(self) -> Awaitable:
        """Await: everything published before is committed; the last sequence."""
    def stats(self) -> Dict[str, int]:
        """The recorder's counters."""
    def close(self) -> None:
        """Stop recording."""

class EventBus:
    """The process-wide event bus; EventBus() always returns the same one."""

    _max_history: int
    def __new__(cls) -> "EventBus": ...
    def subscribe(
        self,
        event_type: _EventTypeLike,
        handler: Handler,
        filter_fn: Optional[Callable[[Event], bool]] = None,
        name: Optional[str] = None,
    ) -> str:
        """Subscribe a sync or async handler; returns the subscription id."""
    def unsubscribe(self, subscription_id: str) -> bool:
        """Remove a subscription; True the first time."""
    def publish(self, event: Event) -> Awaitable:
        """Publish; await the result to wait for every handler."""
    def publish_blocking(self, event: Event) -> None:
        """Publish from code with no running event loop."""
    def get_history(
        self,
        event_type: Optional[_EventTypeLike] = None,
        limit: int = 100,
        **filters: Any,
    ) -> List[Event]:
        """Recent events, newest first."""
    def get_stats(self) -> Dict[str, int]:
        """The counters."""
    def clear_history(self) -> None:
        """Forget the history."""
    def reset(self) -> None:
        """Remove every subscription, clear history, dedup memory and counters."""
    def configure(
        self,
        max_concurrent_handlers: Optional[int] = None,
        dedup_window: Optional[float] = None,
        dedup_enabled: Optional[bool] = None,
    ) -> None:
        """Change settings; None leaves one unchanged.

        max_concurrent_handlers (default 100, at least 1) caps the async
        handler calls running at once on the process-wide bus; raising it
        starts waiting calls at once, lowering it lets running calls finish.
        """
    def get_config(self) -> Dict[str, Any]:
        """The current settings."""
    def stream(
        self,
        types: Union[None, _EventTypeLike, Iterable[_EventTypeLike]] = None,
        capacity: int = 1024,
    ) -> EventStream:
        """A new async iterator over the events of `types`."""
    def record(self, store: Store) -> Recorder:
        """Record every event published on this bus into `store`."""

event_bus: EventBus
