"""configure(): the dedup window and the concurrency cap."""

import asyncio
import time

import pytest

from agentbus import Event, EventType


@pytest.mark.asyncio
async def test_dedup_ten_identical_events_deliver_one(bus):
    bus.configure(dedup_enabled=True)
    got = []
    bus.subscribe(EventType.TASK_COMPLETED, got.append)
    for _ in range(10):
        await bus.publish(
            Event(type=EventType.TASK_COMPLETED, data={"a": 1}, source_agent_id=1, circle_id=1)
        )
    stats = bus.get_stats()
    assert len(got) == 1
    assert stats["events_deduplicated"] == 9
    assert stats["events_published"] == 1
    assert len(bus.get_history()) == 1


@pytest.mark.asyncio
async def test_dedup_key_is_type_source_circle_and_data(bus):
    bus.configure(dedup_enabled=True)
    got = []
    bus.subscribe(EventType.TASK_COMPLETED, got.append)
    bus.subscribe(EventType.TASK_FAILED, got.append)
    variants = [
        dict(type=EventType.TASK_COMPLETED, data={"a": 1, "b": 2}),
        dict(type=EventType.TASK_COMPLETED, data={"b": 2, "a": 1}),  # same data
        dict(type=EventType.TASK_FAILED, data={"a": 1, "b": 2}),
        dict(type=EventType.TASK_COMPLETED, data={"a": 1, "b": 2}, source_agent_id=2),
        dict(type=EventType.TASK_COMPLETED, data={"a": 1, "b": 2}, circle_id=2),
        dict(type=EventType.TASK_COMPLETED, data={"a": 1, "b": 3}),
    ]
    for kwargs in variants:
        await bus.publish(Event(**kwargs))
    assert len(got) == 5
    assert bus.get_stats()["events_deduplicated"] == 1


@pytest.mark.asyncio
async def test_dedup_window_expires(bus):
    bus.configure(dedup_enabled=True, dedup_window=0.05)
    got = []
    bus.subscribe(EventType.TASK_COMPLETED, got.append)
    await bus.publish(Event(type=EventType.TASK_COMPLETED))
    await bus.publish(Event(type=EventType.TASK_COMPLETED))
    time.sleep(0.06)
    await bus.publish(Event(type=EventType.TASK_COMPLETED))
    assert len(got) == 2
    bus.configure(dedup_enabled=False)
    await bus.publish(Event(type=EventType.TASK_COMPLETED))
    await bus.publish(Event(type=EventType.TASK_COMPLETED))
    assert len(got) == 4


@pytest.mark.asyncio
async def test_dedup_keeps_out_a_repeated_id_whatever_its_data(bus):
    bus.configure(dedup_enabled=True)
    got = []
    bus.subscribe(EventType.TASK_COMPLETED, got.append)
    first = Event(type=EventType.TASK_COMPLETED, data={"a": 1})
    await bus.publish(first)
    await bus.publish(Event(type=EventType.TASK_COMPLETED, data={"a": 2}, id=first.id))
    assert [event.data for event in got] == [{"a": 1}]
    assert bus.get_stats()["events_deduplicated"] == 1


@pytest.mark.asyncio
async def test_dedup_count_survives_configure_and_a_new_window_starts_empty(bus):
    bus.configure(dedup_enabled=True, dedup_window=60.0)
    got = []
    bus.subscribe(EventType.TASK_COMPLETED, got.append)

    def same():
        return Event(type=EventType.TASK_COMPLETED, data={"a": 1})

    await bus.publish(same())
    await bus.publish(same())
    # Off and on again: the window still remembers the first event.
    bus.configure(dedup_enabled=False)
    bus.configure(dedup_enabled=True)
    await bus.publish(same())
    assert len(got) == 1
    assert bus.get_stats()["events_deduplicated"] == 2
    # A new length starts an empty window; the count carries over.
    bus.configure(dedup_window=30.0)
    await bus.publish(same())
    await bus.publish(same())
    assert len(got) == 2
    assert bus.get_stats()["events_deduplicated"] == 3
    assert bus.get_config()["dedup_window"] == 30.0
    # reset zeroes the count and forgets the window's events.
    bus.reset()
    bus.subscribe(EventType.TASK_COMPLETED, got.append)
    assert bus.get_stats()["events_deduplicated"] == 0
    await bus.publish(same())
    assert len(got) == 3


@pytest.mark.asyncio
async def test_cap_of_three_with_ten_slow_handlers_never_exceeds_three(bus):
    bus.configure(max_concurrent_handlers=3)
    in_flight = 0
    peak = 0
    done = 0

    async def slow(event):
        nonlocal in_flight, peak, done
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        done += 1

    for _ in range(10):
        bus.subscribe(EventType.TASK_STARTED, slow)
    await asyncio.gather(
        bus.publish(Event(type=EventType.TASK_STARTED, data={"p": 1})),
        bus.publish(Event(type=EventType.TASK_STARTED, data={"p": 2})),
    )
    assert done == 20
    assert peak == 3
    assert bus.get_stats()["events_delivered"] == 20


@pytest.mark.asyncio
async def test_a_handler_that_publishes_under_a_cap_of_one_does_not_deadlock(bus):
    bus.configure(max_concurrent_handlers=1)
    got = []

    async def outer(event):
        await bus.publish(Event(type=EventType.TASK_ASSIGNED))

    async def inner(event):
        await asyncio.sleep(0)
        got.append(event)

    bus.subscribe(EventType.TASK_CREATED, outer)
    bus.subscribe(EventType.TASK_ASSIGNED, inner)
    await asyncio.wait_for(bus.publish(Event(type=EventType.TASK_CREATED)), timeout=5)
    assert len(got) == 1


async def _until(condition, what):
    """Lets the loop run until `condition()` (at most 5 s)."""
    for _ in range(5000):
        if condition():
            return
        await asyncio.sleep(0.001)
    raise AssertionError(f"never: {what}")


@pytest.mark.asyncio
async def test_changing_the_cap_while_calls_wait(bus):
    """Raised: waiting calls start at once; lowered: running calls finish
    and no new one starts until fewer than the cap run."""
    bus.configure(max_concurrent_handlers=1)
    started = 0
    running = 0
    go = asyncio.Semaphore(0)

    async def gated(event):
        nonlocal started, running
        started += 1
        running += 1
        await go.acquire()
        running -= 1

    for _ in range(6):
        bus.subscribe(EventType.TASK_STARTED, gated)
    publish = asyncio.ensure_future(bus.publish(Event(type=EventType.TASK_STARTED)))
    await _until(lambda: started == 1, "one call started")
    await asyncio.sleep(0.02)
    assert started == 1
    bus.configure(max_concurrent_handlers=4)
    await _until(lambda: running == 4, "four calls running")
    bus.configure(max_concurrent_handlers=2)
    assert bus.get_config()["max_concurrent_handlers"] == 2
    go.release()
    go.release()
    await _until(lambda: running == 2, "two calls finished")
    await asyncio.sleep(0.02)
    assert started == 4  # two running is not below the cap of 2
    go.release()
    await _until(lambda: started == 5, "the fifth call started")
    for _ in range(3):
        go.release()
    await asyncio.wait_for(publish, timeout=5)
    assert bus.get_stats()["events_delivered"] == 6


def test_configure_validates_and_reports(bus):
    with pytest.raises(ValueError):
        bus.configure(max_concurrent_handlers=0)
    with pytest.raises(ValueError):
        bus.configure(dedup_window=-1.0)
    with pytest.raises(ValueError):
        bus.configure(dedup_window=float("inf"))
    bus.configure(max_concurrent_handlers=7, dedup_window=2.5, dedup_enabled=True)
    assert bus.get_config() == {
        "max_concurrent_handlers": 7,
        "dedup_enabled": True,
        "dedup_window": 2.5,
        "max_history": 1000,
    }
    bus.configure()  # nothing changes
    assert bus.get_config()["max_concurrent_handlers"] == 7
