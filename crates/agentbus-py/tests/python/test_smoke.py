"""Smoke test: import, subscribe, publish, receive."""

import asyncio

import agentbus
from agentbus import Event, EventType, event_bus


def test_publish_reaches_a_sync_and_an_async_handler(bus):
    seen = []

    def sync_handler(event):
        seen.append(("sync", event.data["n"]))

    async def async_handler(event):
        await asyncio.sleep(0)
        seen.append(("async", event.data["n"]))

    bus.subscribe(EventType.TASK_COMPLETED, sync_handler)
    bus.subscribe(EventType.TASK_COMPLETED, async_handler)
    asyncio.run(bus.publish(Event(type=EventType.TASK_COMPLETED, data={"n": 1})))

    assert sorted(seen) == [("async", 1), ("sync", 1)]
    assert bus is event_bus
    assert agentbus.__version__
