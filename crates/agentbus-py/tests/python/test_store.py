"""Store.open / bus.record / store.read: the durable SQLite store."""

import asyncio

import pytest

from agentbus import Event, EventType, Store


@pytest.mark.asyncio
async def test_recorded_events_survive_reopening_the_store(bus, tmp_path):
    path = tmp_path / "events.db"
    store = Store.open(str(path))
    recorder = bus.record(store)
    published = []
    for i in range(10):
        event = Event(type=EventType.TASK_COMPLETED if i % 2 else EventType.TASK_CREATED, data={"i": i}, circle_id=i % 3)
        published.append(event)
        await bus.publish(event)
    last = await recorder.flush()
    assert last == 10
    assert recorder.stats()["committed"] == 10
    recorder.close()

    reopened = Store.open(str(path))
    rows = reopened.read(limit=100)
    assert [sequence for sequence, _ in rows] == list(range(1, 11))
    assert [event.data["i"] for _, event in rows] == list(range(10))
    assert rows[0][1] == published[0]
    assert reopened.last_sequence() == 10
    completed = reopened.read(event_type=EventType.TASK_COMPLETED)
    assert [event.data["i"] for _, event in completed] == [1, 3, 5, 7, 9]
    assert [s for s, _ in reopened.read(after=8)] == [9, 10]
    assert [e.data["i"] for _, e in reopened.read(circle_id=0, descending=True, limit=2)] == [9, 6]

    await bus.publish(Event(type=EventType.TASK_CREATED))
    assert reopened.last_sequence() == 10  # closed: no longer recording
    with pytest.raises(RuntimeError):
        recorder.flush()


def test_store_errors_are_typed(bus, tmp_path):
    not_a_db = tmp_path / "garbage.db"
    not_a_db.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(OSError):
        Store.open(str(not_a_db))
    with pytest.raises(TypeError):
        bus.record("events.db")
