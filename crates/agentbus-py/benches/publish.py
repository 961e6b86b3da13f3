"""`await publish` of agentbus vs a pure-Python asyncio bus of the original's
design, side by side in one run (alternating, best of ROUNDS).

The baseline is written here for the bench: a dict of handler lists, a deque
history, a semaphore, and `asyncio.gather` over one wrapper coroutine per
handler, with a dataclass event stamped with `datetime.now(timezone.utc)`.

    python benches/publish.py [N]   (after `maturin develop --release`)

Prints ns per publish for each case and the ratios, and the cost per
handler of calling into Python from the Rust bus.
"""

import asyncio
import sys
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Dict, Optional

import agentbus

N = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
ROUNDS = 5


@dataclass
class PyEvent:
    """The baseline's event: a dataclass with a timestamp and a derived id."""

    type: str
    data: Dict[str, Any] = field(default_factory=dict)
    source_agent_id: Optional[int] = None
    circle_id: Optional[int] = None
    timestamp: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    id: Optional[str] = None

    def __post_init__(self):
        if self.id is None:
            self.id = f"{self.type}:{int(self.timestamp.timestamp() * 1e6)}"


class PyBus:
    """The baseline bus: handler lists per type, deque history, gather."""

    def __init__(self):
        self.handlers = defaultdict(list)
        self.history = deque(maxlen=1000)
        self.semaphore = asyncio.Semaphore(100)
        self.stats = {"published": 0, "delivered": 0, "errors": 0}

    def subscribe(self, event_type, handler):
        self.handlers[event_type].append(handler)

    async def publish(self, event):
        self.history.append(event)
        self.stats["published"] += 1
        handlers = self.handlers.get(event.type)
        if not handlers:
            return
        await asyncio.gather(*(self._call(h, event) for h in handlers), return_exceptions=True)
        self.stats["delivered"] += len(handlers)

    async def _call(self, handler, event):
        async with self.semaphore:
            try:
                result = handler(event)
                if asyncio.iscoroutine(result):
                    await result
            except Exception:
                self.stats["errors"] += 1


def sync_handler(event):
    """A trivial sync handler."""


async def async_handler(event):
    """A trivial async handler."""


async def publish_loop(bus, events):
    """ns per `await bus.publish(...)` over `events` (a list, or a callable
    building event i)."""
    n = N
    start = time.perf_counter_ns()
    if callable(events):
        for i in range(n):
            await bus.publish(events(i))
    else:
        for event in events:
            await bus.publish(event)
    return (time.perf_counter_ns() - start) / n


def make_py(i):
    return PyEvent(type="task.completed", data={"i": i})


def make_rs(i):
    return agentbus.Event(type=agentbus.EventType.TASK_COMPLETED, data={"i": i})


def python_bus(handlers):
    bus = PyBus()
    for handler in handlers:
        bus.subscribe("task.completed", handler)
    return bus


def rust_bus(handlers):
    bus = agentbus.event_bus
    bus.reset()
    for handler in handlers:
        bus.subscribe(agentbus.EventType.TASK_COMPLETED, handler)
    return bus


def measure(make_bus, handlers, events):
    bus = make_bus(handlers)
    try:
        return asyncio.run(publish_loop(bus, events))
    finally:
        if bus is agentbus.event_bus:
            bus.reset()


def main():
    best = defaultdict(lambda: float("inf"))

    def keep(key, value):
        best[key] = min(best[key], value)

    py_events = [make_py(i) for i in range(N)]
    rs_events = [make_rs(i) for i in range(N)]
    for _ in range(ROUNDS):
        for kind, handler in (("sync", sync_handler), ("async", async_handler)):
            # Baseline and candidate alternate within each round.
            keep(("python", kind, "prebuilt"), measure(python_bus, [handler], py_events))
            keep(("agentbus", kind, "prebuilt"), measure(rust_bus, [handler], rs_events))
            keep(("python", kind, "built"), measure(python_bus, [handler], make_py))
            keep(("agentbus", kind, "built"), measure(rust_bus, [handler], make_rs))
        keep(("agentbus", "none", "prebuilt"), measure(rust_bus, [], rs_events))
        keep(("agentbus", "10 sync", "prebuilt"), measure(rust_bus, [sync_handler] * 10, rs_events))
        event = rs_events[0]
        start = time.perf_counter_ns()
        for _ in range(N):
            sync_handler(event)
        keep(("python call",), (time.perf_counter_ns() - start) / N)

    print(f"N={N} publishes per case, best of {ROUNDS} alternating rounds, ns per publish")
    print("| case | pure-Python bus | agentbus | speed-up |")
    print("|---|---:|---:|---:|")
    for kind in ("sync", "async"):
        for what, label in (("prebuilt", "`await publish(event)`"), ("built", "`await publish(Event(...))`, event built in the loop")):
            py, rs = best[("python", kind, what)], best[("agentbus", kind, what)]
            print(f"| {label}, one {kind} handler | {py:,.0f} | {rs:,.0f} | {py / rs:.1f}x |")
    none = best[("agentbus", "none", "prebuilt")]
    per_handler = (best[("agentbus", "10 sync", "prebuilt")] - none) / 10
    call = best[("python call",)]
    print()
    print(f"agentbus `await publish(event)` with no subscriber: {none:,.0f} ns")
    print(f"each sync handler the Rust bus calls: {per_handler:,.0f} ns; "
          f"the same call from a Python loop: {call:,.0f} ns; "
          f"crossing overhead: {per_handler - call:,.0f} ns")


if __name__ == "__main__":
    main()
