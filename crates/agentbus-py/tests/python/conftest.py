"""Shared fixtures: every test starts from a reset bus with default settings."""

import pytest

from agentbus import EventBus


@pytest.fixture
def bus():
    """The process-wide bus, reset, with the default settings restored after."""
    bus = EventBus()
    bus.reset()
    bus.configure(max_concurrent_handlers=100, dedup_window=1.0, dedup_enabled=False)
    bus._max_history = 1000
    yield bus
    bus.reset()
    bus.configure(max_concurrent_handlers=100, dedup_window=1.0, dedup_enabled=False)
    bus._max_history = 1000
