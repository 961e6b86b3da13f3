"""Event and EventType: construction, attributes, filters, JSON, bad input."""

import json
from datetime import datetime, timedelta, timezone

import pytest

from agentbus import Event, EventType


def test_event_type_is_a_str_enum_with_the_dotted_names():
    assert EventType.TASK_COMPLETED == "task.completed"
    assert EventType("agent.task.assigned") is EventType.AGENT_TASK_ASSIGNED
    assert isinstance(EventType.SYSTEM_WARNING, str)
    assert len(EventType) == 24


def test_attributes_and_defaults():
    event = Event(type="memory.shared", data={"k": [1, 2.5, None, True]}, project_id=7)
    assert event.type is EventType.MEMORY_SHARED
    assert event.data == {"k": [1, 2.5, None, True]}
    assert event.project_id == 7
    assert event.source_agent_id is None and event.circle_id is None
    assert event.correlation_id is None and event.causation_id is None
    assert event.timestamp.tzinfo is not None
    assert Event(type=EventType.TASK_CREATED).data == {}


def test_data_is_the_same_object_on_every_access():
    payload = {"a": 1}
    event = Event(type=EventType.TASK_CREATED, data=payload)
    assert event.data is payload
    assert event.data is event.data


def test_given_timestamp_and_ids_round_trip():
    when = datetime(2024, 5, 17, 12, 30, 1, 123456, tzinfo=timezone.utc)
    parent = Event(type=EventType.TASK_CREATED)
    event = Event(
        type=EventType.TASK_ASSIGNED,
        timestamp=when,
        correlation_id=parent.id,
        causation_id=parent.id,
    )
    assert event.timestamp == when
    assert event.correlation_id == parent.id
    assert event.causation_id == parent.id
    naive = Event(type=EventType.TASK_ASSIGNED, timestamp=datetime(2020, 1, 1))
    assert naive.timestamp == datetime(2020, 1, 1, tzinfo=timezone.utc)
    before_epoch = datetime(1960, 2, 29, 23, 59, 59, 999999, tzinfo=timezone.utc)
    assert Event(type=EventType.TASK_ASSIGNED, timestamp=before_epoch).timestamp == before_epoch
    offset = datetime(2024, 1, 1, 1, 0, tzinfo=timezone(timedelta(hours=1)))
    assert Event(type=EventType.TASK_ASSIGNED, timestamp=offset).timestamp == offset


def test_matches_filter_compares_attributes():
    event = Event(type=EventType.TASK_COMPLETED, source_agent_id=1, circle_id=2)
    assert event.matches_filter()
    assert event.matches_filter(type=EventType.TASK_COMPLETED, circle_id=2)
    assert not event.matches_filter(circle_id=3)
    assert event.matches_filter(no_such_attribute=None)
    assert not event.matches_filter(no_such_attribute=1)


def test_json_round_trip_and_equality():
    event = Event(type=EventType.CONVERSATION_MESSAGE, data={"text": "hi"}, circle_id=5)
    text = event.to_json()
    assert json.loads(text)["type"] == "conversation.message"
    again = Event.from_json(text)
    assert again == event
    assert again != Event(type=EventType.CONVERSATION_MESSAGE)
    assert "conversation.message" in repr(event)


def test_bad_input_raises_typed_errors():
    with pytest.raises(ValueError, match="unknown event type"):
        Event(type="no.such.type")
    with pytest.raises(TypeError, match="event type must be"):
        Event(type=42)
    with pytest.raises(TypeError, match=r'data\["when"\]'):
        Event(type=EventType.TASK_CREATED, data={"when": object()})
    with pytest.raises(TypeError, match="keys must be str"):
        Event(type=EventType.TASK_CREATED, data={1: "x"})
    with pytest.raises(ValueError, match="not finite"):
        Event(type=EventType.TASK_CREATED, data={"x": float("nan")})
    with pytest.raises(ValueError, match="64-bit"):
        Event(type=EventType.TASK_CREATED, data={"x": 2**70})
    with pytest.raises(ValueError, match="not an event id"):
        Event(type=EventType.TASK_CREATED, id="nope")
    with pytest.raises(TypeError, match="timestamp must be a datetime"):
        Event(type=EventType.TASK_CREATED, timestamp="yesterday")
    with pytest.raises(ValueError):
        Event.from_json("{not json")


def test_self_referencing_data_is_rejected_not_a_crash():
    looped = []
    looped.append(looped)
    with pytest.raises(ValueError, match="deeper than"):
        Event(type=EventType.TASK_CREATED, data={"x": looped})


def test_events_are_read_only():
    event = Event(type=EventType.TASK_CREATED)
    with pytest.raises(AttributeError):
        event.circle_id = 3
