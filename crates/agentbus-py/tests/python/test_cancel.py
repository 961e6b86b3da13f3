"""Cancellation, KeyboardInterrupt and leaked tasks."""

import asyncio

import pytest

from agentbus import Event, EventType


@pytest.mark.asyncio
async def test_cancelling_a_pending_publish_closes_its_handlers(bus):
    started = asyncio.Event()
    cleaned_up = []

    async def slow(event):
        try:
            started.set()
            await asyncio.sleep(10)
        finally:
            cleaned_up.append(event.id)

    bus.subscribe(EventType.TASK_STARTED, slow)
    task = asyncio.ensure_future(bus.publish(Event(type=EventType.TASK_STARTED)))
    await asyncio.wait_for(started.wait(), timeout=5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0)
    assert len(cleaned_up) == 1
    stats = bus.get_stats()
    assert stats["events_delivered"] == 0 and stats["handler_errors"] == 0


@pytest.mark.asyncio
async def test_wait_for_timeout_cancels_the_publish(bus):
    cleaned_up = []

    async def slow(event):
        try:
            await asyncio.sleep(10)
        finally:
            cleaned_up.append(True)

    bus.subscribe(EventType.TASK_STARTED, slow)
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(bus.publish(Event(type=EventType.TASK_STARTED)), timeout=0.05)
    assert cleaned_up == [True]


def test_keyboard_interrupt_in_a_handler_propagates(bus):
    other = []

    def interrupted(event):
        raise KeyboardInterrupt

    bus.subscribe(EventType.TASK_STARTED, interrupted)
    bus.subscribe(EventType.TASK_STARTED, lambda e: other.append(e))
    with pytest.raises(KeyboardInterrupt):
        asyncio.run(bus.publish(Event(type=EventType.TASK_STARTED)))
    with pytest.raises(KeyboardInterrupt):
        bus.publish_blocking(Event(type=EventType.TASK_STARTED))


def test_keyboard_interrupt_in_an_async_handler_propagates(bus):
    async def interrupted(event):
        await asyncio.sleep(0)
        raise KeyboardInterrupt

    bus.subscribe(EventType.TASK_STARTED, interrupted)
    with pytest.raises(KeyboardInterrupt):
        asyncio.run(bus.publish(Event(type=EventType.TASK_STARTED)))


@pytest.mark.asyncio
async def test_publishing_creates_no_asyncio_tasks(bus):
    async def handler(event):
        await asyncio.sleep(0)

    for _ in range(3):
        bus.subscribe(EventType.TASK_CREATED, handler)
    before = len(asyncio.all_tasks())
    for i in range(100):
        await bus.publish(Event(type=EventType.TASK_CREATED, data={"i": i}))
    assert len(asyncio.all_tasks()) == before
