"""History, statistics, clear_history and reset."""

import asyncio

import pytest

from agentbus import Event, EventType


def publish_all(bus, events):
    async def run():
        for event in events:
            await bus.publish(event)

    asyncio.run(run())


def test_history_is_newest_first_and_filters(bus):
    publish_all(
        bus,
        [
            Event(type=EventType.TASK_CREATED, circle_id=1, data={"i": 0}),
            Event(type=EventType.TASK_COMPLETED, circle_id=1, source_agent_id=3, data={"i": 1}),
            Event(type=EventType.TASK_COMPLETED, circle_id=2, project_id=9, data={"i": 2}),
        ],
    )
    assert [e.data["i"] for e in bus.get_history()] == [2, 1, 0]
    assert [e.data["i"] for e in bus.get_history(EventType.TASK_COMPLETED)] == [2, 1]
    assert [e.data["i"] for e in bus.get_history("task.completed", circle_id=1)] == [1]
    assert [e.data["i"] for e in bus.get_history(source_agent_id=3)] == [1]
    assert [e.data["i"] for e in bus.get_history(project_id=9)] == [2]
    assert [e.data["i"] for e in bus.get_history(limit=1)] == [2]
    assert bus.get_history(limit=0) == []
    # Filters the core cannot index fall back to matches_filter.
    assert [e.data["i"] for e in bus.get_history(data={"i": 0})] == [0]
    assert [e.data["i"] for e in bus.get_history(circle_id=None)] == []
    with pytest.raises(ValueError):
        bus.get_history(limit=-1)


def test_max_history_keeps_only_the_newest(bus):
    bus._max_history = 3
    publish_all(bus, [Event(type=EventType.TASK_CREATED, data={"i": i}) for i in range(6)])
    assert [e.data["i"] for e in bus.get_history()] == [5, 4, 3]
    assert [e.data["i"] for e in bus.get_history(EventType.TASK_CREATED, limit=2)] == [5, 4]
    assert bus.get_stats()["history_size"] == 3
    assert bus._max_history == 3
    with pytest.raises(ValueError):
        bus._max_history = 10**9


def test_stats_count_published_delivered_errors(bus):
    def fail(event):
        raise RuntimeError("no")

    bus.subscribe(EventType.TASK_FAILED, lambda e: None)
    bus.subscribe(EventType.TASK_FAILED, fail)
    publish_all(bus, [Event(type=EventType.TASK_FAILED), Event(type=EventType.TASK_CREATED)])
    assert bus.get_stats() == {
        "events_published": 2,
        "events_delivered": 1,
        "events_deduplicated": 0,
        "handler_errors": 1,
        "active_subscribers": 2,
        "history_size": 2,
    }


def test_clear_history_and_reset(bus):
    bus.subscribe(EventType.TASK_CREATED, lambda e: None)
    publish_all(bus, [Event(type=EventType.TASK_CREATED)])
    bus.clear_history()
    assert bus.get_history() == []
    assert bus.get_stats()["events_published"] == 1
    bus.configure(dedup_enabled=True)
    bus.reset()
    stats = bus.get_stats()
    assert stats["events_published"] == 0
    assert stats["active_subscribers"] == 0
    # Settings survive reset, as in the original.
    assert bus.get_config()["dedup_enabled"] is True
