"""The append path's fast spellings are byte for byte the canonical ones that hashes cover."""

from __future__ import annotations

import json
import math
import random
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from shared.events.envelope import format_time
from shared.eventstore import _uuid4_texts
from shared.hashchain import canonical_json, canonical_text

VALUES: list[Any] = [
    {"amount": 3, "unit_id": None},
    {"b": 1, "a": {"z": [1, 2.5, -0.0, 1e16, 1e-7], "y": True, "x": False}},
    {"name": "Γυμνάσιο Ελληνικού", "note": 'quote " backslash \\ tab \t newline \n \u2028'},
    {"emoji": "😀", "control": "\x00\x1f", "empty": {}, "list": []},
    {"big": 2**70, "neg": -12, "float": 0.1 + 0.2},
    ["top", "level", "list"],
    "just a string",
    42,
    None,
]


@pytest.mark.parametrize("value", VALUES)
def test_canonical_text_is_json_dumps_with_the_canonical_options(value: Any) -> None:
    expected = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert canonical_text(value) == expected
    assert canonical_json(value) == expected.encode()


def test_canonical_text_refuses_what_json_refuses() -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        canonical_text({"when": object()})


def test_canonical_text_spells_non_finite_floats_as_json_dumps_does() -> None:
    values = [math.inf, -math.inf, math.nan]
    assert canonical_text(values) == json.dumps(values, separators=(",", ":"))


def test_event_ids_are_random_version_4_uuids_spelled_as_str_uuid() -> None:
    texts = _uuid4_texts(2000)
    assert len(set(texts)) == len(texts)
    for text in texts:
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
    # Every variant nibble (8, 9, a, b) turns up: two of its bits stay random.
    assert {text[19] for text in texts} == set("89ab")


def test_format_time_spells_every_instant_as_the_strftime_spelling_hashes_were_made_with() -> None:
    picker = random.Random(20261130)
    instants = [
        datetime(2026, 12, 1, 0, 0, tzinfo=UTC),
        datetime(2026, 6, 30, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=3))),
        datetime(999, 1, 1, 12, 0, 0, 5, tzinfo=UTC),
        datetime(9, 3, 4, 5, 6, 7, tzinfo=UTC),
    ]
    instants.extend(
        datetime(
            picker.randint(2, 9998),
            picker.randint(1, 12),
            picker.randint(1, 28),
            picker.randint(0, 23),
            picker.randint(0, 59),
            picker.randint(0, 59),
            picker.choice([0, picker.randint(0, 999_999)]),
            tzinfo=timezone(timedelta(minutes=picker.randint(-720, 720))),
        )
        for _ in range(2000)
    )
    for instant in instants:
        assert format_time(instant) == instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_format_time_refuses_a_naive_time() -> None:
    with pytest.raises(ValueError, match="aware"):
        format_time(datetime(2026, 12, 1))  # noqa: DTZ001
