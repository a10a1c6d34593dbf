"""Tamper evidence: each stream is a hash chain that anyone holding an export can verify offline.

Why this exists: auditors must be able to tell that a unit's or item's history was not edited after
the fact. Each event's `hash` is SHA-256 over the previous event's hash, the digest of the event's
canonical JSON (every attribute that says what happened: id, source, stream, type, schema version,
time, unit, actor, correlation, causation and data) and its version (4 bytes, big-endian). The
digest leaves the version out so a writer can compute it before it knows the stream's head; the
database chains it (`shared.schema.APPEND_FUNCTION`), except for a new stream, whose chain the
writer computes from `GENESIS` (`shared.eventstore`), and this module checks the same formula.
Changing, removing or reordering any event breaks
every hash after it; `verify` names the first event that does not fit.

Usage::

    problems = verify(RecordedEvent.from_cloudevent(json.loads(line)) for line in
    open("export.jsonl"))
    python -m shared.hashchain export.jsonl            # offline, exits 1 on the first bad event

Notes: the canonical JSON is `json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False)`
encoded as UTF-8; times are RFC 3339 UTC with microseconds. The chain is per stream; a whole-service
export interleaves streams and is verified stream by stream.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from shared.events.envelope import EnvelopeDecodeError, RecordedEvent

GENESIS = "0" * 64


def canonical_json(value: Any) -> bytes:
    """Return the one byte spelling of `value` that hashes are computed over."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


_canonical_dumps = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False
).encode
# How `canonical_json` spells a string (json's own function, so the escapes are the same).
_json_string: Callable[[str], str] = json.encoder.encode_basestring


# json's C encoder with the canonical options, made once: `JSONEncoder.encode` makes a new one on
# every call, which is most of its cost for an event's small payload. No circular-reference check
# (payloads are JSON-ready data, never cyclic); otherwise the same options, so the same text.
_c_make_encoder: Any = getattr(json.encoder, "c_make_encoder", None)
_canonical_c = (
    _c_make_encoder(
        None, json.JSONEncoder().default, _json_string, None, ":", ",", True, False, True
    )
    if _c_make_encoder is not None
    else None
)


def canonical_text(value: Any) -> str:
    """Return `canonical_json(value)` as text (before UTF-8 encoding)."""
    if _canonical_c is not None:
        return "".join(_canonical_c(value, 0))
    return _canonical_dumps(value)


def _scalar(value: str | None) -> str:
    return "null" if value is None else _json_string(value)


class CanonicalEnvelope:
    """Writes `canonical_json(event.hashed_attributes())` for events that share their envelope.

    The append path's fast spelling of the digest input: the attributes an append's events share
    (source, stream, time, actor, correlation, causation) are spelled once, and each event adds its
    id, type, schema version, unit and data (`canonical_text(data)`) in between, in the sorted key
    order `canonical_json` uses. The result is byte for byte what `canonical_json` gives for the
    same attributes, so `verify` holds (the event store's tests verify every chain they write).
    """

    __slots__ = ("_head", "_middle")

    def __init__(
        self,
        *,
        source: str,
        stream_id: str,
        time_text: str,
        actor_id: str | None,
        actor_role: str | None,
        correlation_id: str | None,
        causation_id: str | None,
    ) -> None:
        # Keys in sorted order: actorid actorrole causationid correlationid data id schemaversion
        # source subject time type unitid.
        self._head = (
            f'{{"actorid":{_scalar(actor_id)},"actorrole":{_scalar(actor_role)},'
            f'"causationid":{_scalar(causation_id)},"correlationid":{_scalar(correlation_id)},'
            '"data":'
        )
        self._middle = (
            f',"source":{_json_string(source)},"subject":{_json_string(stream_id)},'
            f'"time":{_json_string(time_text)},"type":'
        )

    def event_text(
        self,
        *,
        event_id: str,
        type_: str,
        schema_version: int,
        unit_id: str | None,
        data_text: str,
    ) -> str:
        """Return the canonical JSON text of one event; `data_text` is `canonical_text(data)`."""
        version = (
            str(schema_version) if type(schema_version) is int else _canonical_dumps(schema_version)
        )
        return (
            f'{self._head}{data_text},"id":{_json_string(event_id)},"schemaversion":{version}'
            f'{self._middle}{_json_string(type_)},"unitid":{_scalar(unit_id)}}}'
        )


def content_digest(attributes: Mapping[str, Any]) -> bytes:
    """Return the SHA-256 digest of an event's hashed attributes."""
    return hashlib.sha256(canonical_json(attributes)).digest()


def chain(prevhash: str, attributes: Mapping[str, Any], version: int) -> str:
    """Return the hash of event `version` of a stream whose previous event's hash is `prevhash`."""
    return chain_digest(prevhash, content_digest(attributes), version)


def chain_digest(prevhash: str, digest: bytes, version: int) -> str:
    """Return sha256(prevhash || digest || version as a 4-byte big-endian integer), hex."""
    return chain_step(bytes.fromhex(prevhash), digest, version).hex()


def chain_step(prevhash: bytes, digest: bytes, version: int) -> bytes:
    """Return `chain_digest` on raw bytes (for a writer chaining a whole new stream)."""
    return hashlib.sha256(prevhash + digest + version.to_bytes(4, "big", signed=True)).digest()


@dataclass(frozen=True, slots=True)
class ChainBreak:
    """The first event of a stream that does not fit its chain, and why."""

    stream_id: str
    version: int
    event_id: str
    reason: str

    def __str__(self) -> str:
        return f"{self.stream_id} v{self.version} ({self.event_id}): {self.reason}"


def verify(events: Iterable[RecordedEvent]) -> list[ChainBreak]:
    """Check every stream in `events` (in stored order); return the first break of each bad stream.

    Streams may be interleaved; events of one stream must come in version order, which is the order
    of any export or load. An empty list means every chain is intact.
    """
    last: dict[str, tuple[int, str]] = {}
    broken: dict[str, ChainBreak] = {}
    for event in events:
        stream = event.stream_id
        if stream in broken:
            continue
        prev_version, prev_hash = last.get(stream, (0, GENESIS))
        reason = None
        if event.version != prev_version + 1:
            reason = f"version {event.version} follows version {prev_version}"
        elif event.prevhash != prev_hash:
            reason = "prevhash does not match the previous event's hash"
        elif chain(prev_hash, event.hashed_attributes(), event.version) != event.hash:
            reason = "content does not match its hash (altered event)"
        if reason is not None:
            broken[stream] = ChainBreak(stream, event.version, str(event.event_id), reason)
            continue
        last[stream] = (event.version, event.hash)
    return list(broken.values())


def verify_stream(
    events: Iterable[RecordedEvent], *, expected_last_hash: str | None = None
) -> None:
    """Raise `ChainBrokenError` on the first bad event of one stream (and if the head differs)."""
    events = list(events)
    breaks = verify(events)
    if breaks:
        raise ChainBrokenError(breaks[0])
    if expected_last_hash is not None and events and events[-1].hash != expected_last_hash:
        last = events[-1]
        raise ChainBrokenError(
            ChainBreak(last.stream_id, last.version, str(last.event_id), "stream was truncated")
        )


class ChainBrokenError(Exception):
    """A stream's hash chain does not hold."""

    def __init__(self, first_break: ChainBreak) -> None:
        super().__init__(str(first_break))
        self.first_break = first_break


def main(argv: list[str] | None = None) -> int:
    """Verify an export file (JSON lines of CloudEvents) offline; print each broken stream."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m shared.hashchain EXPORT.jsonl", file=sys.stderr)  # noqa: T201
        return 2

    def read(path: str) -> Iterable[RecordedEvent]:
        with open(path, encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                try:
                    yield RecordedEvent.from_cloudevent(json.loads(line))
                except (json.JSONDecodeError, EnvelopeDecodeError) as exc:
                    raise SystemExit(f"line {number}: {exc}") from exc

    breaks = verify(read(args[0]))
    for item in breaks:
        print(f"BROKEN {item}")  # noqa: T201
    if not breaks:
        print("OK: every stream's hash chain holds")  # noqa: T201
    return 1 if breaks else 0


if __name__ == "__main__":
    raise SystemExit(main())
