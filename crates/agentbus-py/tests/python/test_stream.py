"""bus.stream(): events as an async iterator."""

import asyncio

import pytest

from agentbus import Event, EventType, Lagged


@pytest.mark.asyncio
async def test_stream_yields_published_events_in_order(bus):
    stream = bus.stream([EventType.TASK_CREATED, EventType.TASK_FAILED], capacity=16)

    async def produce():
        await asyncio.sleep(0.01)
        for i in range(3):
            await bus.publish(Event(type=EventType.TASK_CREATED, data={"i": i}))
        await bus.publish(Event(type=EventType.AGENT_STARTED))
        await bus.publish(Event(type=EventType.TASK_FAILED, data={"i": 3}))

    producer = asyncio.ensure_future(produce())
    got = []
    async for event in stream:
        got.append(event.data["i"])
        if len(got) == 4:
            break
    await producer
    assert got == [0, 1, 2, 3]
    stream.close()
    with pytest.raises(StopAsyncIteration):
        await stream.__anext__()


@pytest.mark.asyncio
async def test_a_full_stream_reports_lag(bus):
    stream = bus.stream(EventType.TASK_CREATED, capacity=2)
    for i in range(5):
        await bus.publish(Event(type=EventType.TASK_CREATED, data={"i": i}))
    with pytest.raises(Lagged) as lagged:
        await stream.__anext__()
    assert lagged.value.args[0] == 3
    event = await stream.__anext__()
    assert event.data["i"] in (3, 0)
    stream.close()


def test_stream_arguments_are_checked(bus):
    with pytest.raises(ValueError):
        bus.stream(None, capacity=0)
    with pytest.raises(ValueError):
        bus.stream(None, capacity=10**12)
    with pytest.raises(ValueError):
        bus.stream(["no.such.type"])
    stream = bus.stream()
    assert bus.get_stats()["active_subscribers"] == 1
    stream.close()
    assert bus.get_stats()["active_subscribers"] == 0
