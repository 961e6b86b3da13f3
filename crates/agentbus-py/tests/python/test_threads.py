"""Publishing from several threads, and publish_blocking from plain threads."""

import asyncio
import threading

import pytest

from agentbus import Event, EventType

PER_THREAD = 200


def test_publish_from_four_threads_at_once(bus):
    seen = []
    lock = threading.Lock()

    def sync_handler(event):
        with lock:
            seen.append(("sync", event.data["t"], event.data["i"]))

    async def async_handler(event):
        await asyncio.sleep(0)
        with lock:
            seen.append(("async", event.data["t"], event.data["i"]))

    bus.subscribe(EventType.TASK_COMPLETED, sync_handler)
    bus.subscribe(EventType.TASK_COMPLETED, async_handler)
    barrier = threading.Barrier(4)
    errors = []

    def worker(t):
        async def run():
            for i in range(PER_THREAD):
                await bus.publish(Event(type=EventType.TASK_COMPLETED, data={"t": t, "i": i}))

        try:
            barrier.wait()
            asyncio.run(run())
        except BaseException as err:  # reported below
            errors.append(err)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert len(seen) == 2 * 4 * PER_THREAD
    for kind in ("sync", "async"):
        for t in range(4):
            order = [i for (k, tt, i) in seen if k == kind and tt == t]
            assert order == list(range(PER_THREAD))
    stats = bus.get_stats()
    assert stats["events_published"] == 4 * PER_THREAD
    assert stats["events_delivered"] == 2 * 4 * PER_THREAD


def test_publish_blocking_from_plain_threads(bus):
    got = []
    lock = threading.Lock()

    def handler(event):
        with lock:
            got.append(event.data["i"])

    bus.subscribe(EventType.TASK_CREATED, handler)
    threads = [
        threading.Thread(
            target=lambda t=t: [
                bus.publish_blocking(Event(type=EventType.TASK_CREATED, data={"i": t * 100 + i}))
                for i in range(50)
            ]
        )
        for t in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(got) == sorted(t * 100 + i for t in range(4) for i in range(50))


def test_publish_blocking_runs_async_handlers_on_a_private_loop(bus):
    got = []

    async def handler(event):
        await asyncio.sleep(0.001)
        got.append(event.data["i"])

    bus.subscribe(EventType.TASK_CREATED, handler)
    for i in range(3):
        bus.publish_blocking(Event(type=EventType.TASK_CREATED, data={"i": i}))
    assert got == [0, 1, 2]


@pytest.mark.asyncio
async def test_publish_blocking_inside_a_running_loop_is_refused(bus):
    async def handler(event):
        pass

    bus.subscribe(EventType.TASK_CREATED, handler)
    with pytest.raises(RuntimeError, match="running event loop"):
        bus.publish_blocking(Event(type=EventType.TASK_CREATED))
