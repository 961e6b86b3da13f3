"""`await publish` of agentbus vs a pure-Python asyncio bus of the original's
design, side by side in one run (alternating, best of ROUNDS).

The baseline is written here for the bench: a dict of handler lists, a deque
history, a semaphore, and `asyncio.gather` over one wrapper coroutine per
handler, with a dataclass event stamped with `datetime.now(timezone.utc)`.

    python benches/publish.py [N]

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


async def loop_baseline(bus, n, make):
    start = time.perf_counter_ns()
    for i in range(n):
        await bus.publish(make(i))
    return (time.perf_counter_ns() - start) / n


def make_py(i):
    return PyEvent(type="task.completed", data={"i": i})


def make_rs(i):
    return agentbus.Event(type=agentbus.EventType.TASK_COMPLETED, data={"i": i})


def run(label, make_bus, make_event, handler, handlers=1):
    bus = make_bus()
    for _ in range(handlers):
        if handler is not None:
            bus.subscribe(agentbus.EventType.TASK_COMPLETED if bus is agentbus.event_bus else "task.completed", handler)
    result = asyncio.run(loop_baseline(bus, N, make_event))
    if bus is agentbus.event_bus:
        bus.reset()
    return result


def rust_bus():
    bus = agentbus.event_bus
    bus.reset()
    bus._max_history = 1000
    return bus


def main():
    cases = {
        "sync handler": sync_handler,
        "async handler": async_handler,
    }
    best = defaultdict(lambda: float("inf"))
    for _ in range(ROUNDS):
        for name, handler in cases.items():
            best[("python", name)] = min(best[("python", name)], run(name, PyBus, make_py, handler))
            best[("agentbus", name)] = min(best[("agentbus", name)], run(name, rust_bus, make_rs, handler))
        # Crossing into Python: the same publish with 0 and 10 sync handlers,
        # events built beforehand, against calling the handler from Python.
        prebuilt = [make_rs(i) for i in range(N)]
        for handlers in (0, 10):
            bus = rust_bus()
            for _ in range(handlers):
                bus.subscribe(agentbus.EventType.TASK_COMPLETED, sync_handler)
            cost = asyncio.run(loop_baseline(bus, N, prebuilt.__getitem__))
            bus.reset()
            best[("prebuilt", handlers)] = min(best[("prebuilt", handlers)], cost)
        start = time.perf_counter_ns()
        event = prebuilt[0]
        for _ in range(N):
            sync_handler(event)
        best[("python call", 1)] = min(best[("python call", 1)], (time.perf_counter_ns() - start) / N)

    print(f"N={N}, best of {ROUNDS} rounds, ns per `await publish(Event(...))`")
    print("| handler | pure-Python bus | agentbus | speed-up |")
    print("|---|---:|---:|---:|")
    for name in cases:
        py, rs = best[("python", name)], best[("agentbus", name)]
        print(f"| one {name} | {py:,.0f} | {rs:,.0f} | {py / rs:.1f}x |")
    per_handler = (best[("prebuilt", 10)] - best[("prebuilt", 0)]) / 10
    print()
    print(f"agentbus `await publish(prebuilt)`, no handler: {best[('prebuilt', 0)]:,.0f} ns")
    print(f"per sync handler called from Rust: {per_handler:,.0f} ns "
          f"(a Python-to-Python call of it in a loop: {best[('python call', 1)]:,.0f} ns; "
          f"crossing overhead {per_handler - best[('python call', 1)]:,.0f} ns)")


if __name__ == "__main__":
    main()
