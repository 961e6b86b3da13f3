"""Subscribing, publishing, handler kinds, exceptions and filters."""

import asyncio
import logging

import pytest

from agentbus import Event, EventType


@pytest.mark.asyncio
async def test_sync_handlers_run_inline_in_subscription_order(bus):
    order = []
    bus.subscribe(EventType.TASK_CREATED, lambda e: order.append("first"))
    bus.subscribe(EventType.TASK_CREATED, lambda e: order.append("second"))
    await bus.publish(Event(type=EventType.TASK_CREATED))
    assert order == ["first", "second"]


@pytest.mark.asyncio
async def test_every_handler_of_one_publish_gets_the_same_event_object(bus):
    seen = []

    def sync_handler(event):
        seen.append(event)

    async def async_handler(event):
        seen.append(event)

    bus.subscribe(EventType.TASK_CREATED, sync_handler)
    bus.subscribe(EventType.TASK_CREATED, async_handler)
    event = Event(type=EventType.TASK_CREATED)
    await bus.publish(event)
    assert len(seen) == 2
    assert seen[0] is event and seen[1] is event


@pytest.mark.asyncio
async def test_async_handlers_run_concurrently(bus):
    started, finished = [], []

    async def slow(event):
        started.append(asyncio.get_running_loop().time())
        await asyncio.sleep(0.05)
        finished.append(asyncio.get_running_loop().time())

    for _ in range(5):
        bus.subscribe(EventType.TASK_STARTED, slow)
    await bus.publish(Event(type=EventType.TASK_STARTED))
    assert len(finished) == 5
    assert max(started) < min(finished)


@pytest.mark.asyncio
async def test_only_the_subscribed_type_is_delivered(bus):
    got = []
    bus.subscribe(EventType.TASK_FAILED, got.append)
    await bus.publish(Event(type=EventType.TASK_COMPLETED))
    assert got == []
    await bus.publish(Event(type=EventType.TASK_FAILED))
    assert len(got) == 1


@pytest.mark.asyncio
async def test_exceptions_are_isolated_counted_and_logged(bus, caplog):
    calls = []

    def bad_sync(event):
        raise KeyError("sync boom")

    async def bad_async(event):
        await asyncio.sleep(0)
        raise ValueError("async boom")

    bus.subscribe(EventType.SYSTEM_ERROR, bad_sync, name="the sync one")
    bus.subscribe(EventType.SYSTEM_ERROR, bad_async)
    bus.subscribe(EventType.SYSTEM_ERROR, lambda e: calls.append("ok"))
    with caplog.at_level(logging.ERROR, logger="agentbus"):
        await bus.publish(Event(type=EventType.SYSTEM_ERROR))
    assert calls == ["ok"]
    stats = bus.get_stats()
    assert stats["handler_errors"] == 2
    assert stats["events_delivered"] == 1
    messages = [r.getMessage() for r in caplog.records]
    assert any("'the sync one'" in m for m in messages)
    assert any("'bad_async'" in m for m in messages)
    assert any(r.exc_info and r.exc_info[0] is ValueError for r in caplog.records)


@pytest.mark.asyncio
async def test_filters_select_events_and_a_failing_filter_counts_as_an_error(bus):
    got = []

    def broken_filter(event):
        raise RuntimeError("filter boom")

    bus.subscribe(EventType.MEMORY_SHARED, got.append, filter_fn=lambda e: e.circle_id == 5)
    bus.subscribe(EventType.MEMORY_SHARED, got.append, filter_fn=broken_filter)
    await bus.publish(Event(type=EventType.MEMORY_SHARED, circle_id=5))
    await bus.publish(Event(type=EventType.MEMORY_SHARED, circle_id=6))
    assert [e.circle_id for e in got] == [5]
    assert bus.get_stats()["handler_errors"] == 2


@pytest.mark.asyncio
async def test_unsubscribe(bus):
    got = []
    sub = bus.subscribe(EventType.TASK_CREATED, got.append)
    assert isinstance(sub, str)
    assert bus.get_stats()["active_subscribers"] == 1
    assert bus.unsubscribe(sub)
    assert not bus.unsubscribe(sub)
    assert not bus.unsubscribe("garbage")
    assert not bus.unsubscribe(12)
    await bus.publish(Event(type=EventType.TASK_CREATED))
    assert got == []
    assert bus.get_stats()["active_subscribers"] == 0


def test_subscribe_rejects_bad_arguments(bus):
    with pytest.raises(TypeError):
        bus.subscribe(EventType.TASK_CREATED, "not callable")
    with pytest.raises(TypeError):
        bus.subscribe(EventType.TASK_CREATED, print, filter_fn=3)
    with pytest.raises(ValueError):
        bus.subscribe("no.such.type", print)
    with pytest.raises(TypeError):
        asyncio.run(bus.publish({"type": "task.created"}))


@pytest.mark.asyncio
async def test_callable_objects_with_async_call_are_awaited(bus):
    got = []

    class Handler:
        async def __call__(self, event):
            await asyncio.sleep(0)
            got.append(event.type)

    bus.subscribe(EventType.TASK_CREATED, Handler())
    await bus.publish(Event(type=EventType.TASK_CREATED))
    assert got == [EventType.TASK_CREATED]


@pytest.mark.asyncio
async def test_a_plain_function_returning_a_coroutine_is_an_error_not_a_silent_skip(bus):
    async def real(event):
        pass

    bus.subscribe(EventType.TASK_CREATED, lambda e: real(e))
    await bus.publish(Event(type=EventType.TASK_CREATED))
    assert bus.get_stats()["handler_errors"] == 1


@pytest.mark.asyncio
async def test_an_async_handler_that_publishes_stamps_the_cause(bus):
    async def on_created(event):
        await asyncio.sleep(0)
        await bus.publish(Event(type=EventType.TASK_ASSIGNED, data={"from": event.id}))

    assigned = []

    async def on_assigned(event):
        assigned.append(event)

    bus.subscribe(EventType.TASK_CREATED, on_created)
    bus.subscribe(EventType.TASK_ASSIGNED, on_assigned)
    created = Event(type=EventType.TASK_CREATED)
    await bus.publish(created)
    assert len(assigned) == 1
    assert assigned[0].causation_id == created.id
    assert assigned[0].correlation_id == created.id
    assert bus.get_stats()["events_published"] == 2


def test_publish_works_from_a_fresh_asyncio_run_per_call(bus):
    got = []

    async def handler(event):
        await asyncio.sleep(0.001)
        got.append(event.data["i"])

    bus.subscribe(EventType.TASK_CREATED, handler)
    for i in range(5):
        asyncio.run(bus.publish(Event(type=EventType.TASK_CREATED, data={"i": i})))
    assert got == list(range(5))


@pytest.mark.asyncio
async def test_publishes_can_be_gathered(bus):
    got = []

    async def handler(event):
        await asyncio.sleep(0.01)
        got.append(event.data["i"])

    bus.subscribe(EventType.TASK_CREATED, handler)
    await asyncio.gather(*(bus.publish(Event(type=EventType.TASK_CREATED, data={"i": i})) for i in range(4)))
    assert sorted(got) == [0, 1, 2, 3]


def test_an_awaitable_cannot_be_awaited_twice(bus):
    publish = bus.publish(Event(type=EventType.TASK_CREATED))

    async def twice():
        await publish
        await publish

    with pytest.raises(RuntimeError, match="already awaited"):
        asyncio.run(twice())
