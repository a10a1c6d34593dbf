"""A recorded event through its Kafka form (binary content mode) and back; what is refused.

`RecordedEvent.from_kafka` is the projectors' hot path, written for speed rather than through
`from_cloudevent`: these tests hold it to the same checks.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from shared.events.envelope import Actor, EnvelopeDecodeError, RecordedEvent

FULL = RecordedEvent(
    event_id=uuid.UUID("0b9a7c3e-5d2f-4e61-9a0b-3c4d5e6f7a8b"),
    source="/ictcadastre/equipment",
    stream_id="item-Ωμέγα-1",
    version=7,
    position=1234,
    type="Counted",
    schema_version=1,
    data={"amount": 3, "unit_id": "0551040", "σχόλιο": "Γεια"},
    recorded_at=datetime(2026, 12, 1, 10, 30, 0, 123456, tzinfo=UTC),
    unit_id="0551040",
    actor=Actor("u-1", "unit_manager"),
    correlation_id=uuid.UUID("11111111-2222-4333-8444-555555555555"),
    causation_id=uuid.UUID("66666666-7777-4888-9999-aaaaaaaaaaaa"),
    traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    prevhash="a" * 64,
    hash="b" * 64,
)

BARE = RecordedEvent(
    event_id=uuid.UUID("0b9a7c3e-5d2f-4e61-9a0b-3c4d5e6f7a8c"),
    source="/bench",
    stream_id="s-1",
    version=1,
    position=0,
    type="Counted",
    schema_version=1,
    data={"amount": 1},
    recorded_at=datetime(2026, 12, 1, tzinfo=UTC),
)


@pytest.mark.parametrize("event", [FULL, BARE], ids=["every attribute", "no optional one"])
def test_kafka_form_round_trips(event: RecordedEvent) -> None:
    back = RecordedEvent.from_kafka(event.kafka_key(), event.kafka_value(), event.kafka_headers())
    assert back == event
    assert back.to_cloudevent() == event.to_cloudevent()


def test_a_value_with_whitespace_around_the_json_is_read() -> None:
    value = b"  \n" + FULL.kafka_value() + b" \n"
    back = RecordedEvent.from_kafka(FULL.kafka_key(), value, FULL.kafka_headers())
    assert back.data == FULL.data


def test_a_record_without_a_key_is_read() -> None:
    back = RecordedEvent.from_kafka(None, FULL.kafka_value(), FULL.kafka_headers())
    assert back == FULL


def _headers(**changes: bytes | None) -> list[tuple[str, bytes]]:
    headers = dict(FULL.kafka_headers())
    for name, value in changes.items():
        if value is None:
            headers.pop(name)
        else:
            headers[name] = value
    return list(headers.items())


@pytest.mark.parametrize(
    ("key", "value", "headers", "reason"),
    [
        (b"k", None, _headers(), "without a value"),
        (FULL.kafka_key(), b"\xff\xfe", _headers(), "not JSON"),
        (FULL.kafka_key(), b"{not json", _headers(), "not JSON"),
        (FULL.kafka_key(), b'{"a":1} trailing', _headers(), "not JSON"),
        (FULL.kafka_key(), b"[1, 2]", _headers(), "not a JSON object"),
        (FULL.kafka_key(), b'"text"', _headers(), "not a JSON object"),
        (FULL.kafka_key(), b"{}", _headers(ce_specversion=b"0.3"), "specversion"),
        (FULL.kafka_key(), b"{}", _headers(ce_id=None), "ce_id"),
        (FULL.kafka_key(), b"{}", _headers(ce_id=b"not-a-uuid"), "not a CloudEvent"),
        (FULL.kafka_key(), b"{}", _headers(ce_streamversion=b"seven"), "not a CloudEvent"),
        (FULL.kafka_key(), b"{}", _headers(ce_time=b"yesterday"), "not a CloudEvent"),
        (FULL.kafka_key(), b"{}", _headers(ce_position=b"x"), "not a CloudEvent"),
        (FULL.kafka_key(), b"{}", _headers(ce_subject=b"\xff"), "not a CloudEvent"),
        (b"another-stream", b"{}", _headers(), "key differs"),
    ],
)
def test_malformed_records_are_refused_with_the_reason(
    key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]], reason: str
) -> None:
    with pytest.raises(EnvelopeDecodeError, match=reason):
        RecordedEvent.from_kafka(key, value, headers)
