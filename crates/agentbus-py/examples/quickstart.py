"""The README's quick start: run with `python examples/quickstart.py` after
`maturin develop` (CI runs it from `.ci/python`)."""

import asyncio

from agentbus import Event, EventType, event_bus


async def on_completed(event: Event) -> None:
    """An async handler: runs on the publisher's loop."""
    await asyncio.sleep(0)
    print("task", event.data["task_id"], "completed by agent", event.source_agent_id)


def count(event: Event) -> None:
    """A sync handler: called inline."""
    print("seen", event.type.value, "in circle", event.circle_id)


async def main() -> None:
    """Subscribe two handlers, publish one event, read it back."""
    event_bus.subscribe(EventType.TASK_COMPLETED, on_completed)
    event_bus.subscribe(EventType.TASK_COMPLETED, count, filter_fn=lambda e: e.circle_id == 5)
    await event_bus.publish(
        Event(type=EventType.TASK_COMPLETED, data={"task_id": 123}, source_agent_id=1, circle_id=5)
    )
    latest = event_bus.get_history(circle_id=5)[0]
    stats = event_bus.get_stats()
    assert latest.data == {"task_id": 123} and stats["events_delivered"] == 2, stats
    print("history:", latest.id, "stats:", stats)


if __name__ == "__main__":
    asyncio.run(main())
