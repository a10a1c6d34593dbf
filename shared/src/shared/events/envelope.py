"""The recorded event and its CloudEvents 1.0 form (Kafka protocol binding, binary content mode).

Why this exists: a stored event is more than its payload: it has an id, a stream and version, a
global
position in its service's store, who did it and why (actor, correlation, causation), the trace it
belongs to, and its place in the stream's hash chain. `RecordedEvent` carries all of that; it
travels
on Kafka as a record whose key is the stream id, whose value is the JSON payload, and whose headers
are
the CloudEvents attributes (`ce_<attribute>`), as the Kafka protocol binding's binary mode
prescribes.

Extensions (CloudEvents names are lower-case alphanumerics): `streamversion`, `position`,
`schemaversion`, `unitid`, `actorid`, `actorrole`, `correlationid`, `causationid`, `traceparent`,
`prevhash`, `hash`.

Notes: the structured form (`to_cloudevent()`/`from_cloudevent()`) is what exports hold, one JSON
object
per line; `shared.hashchain.verify` checks such an export offline.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from shared.events.base import Event, decode

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/json"


class EnvelopeDecodeError(ValueError):
    """A Kafka record or export line is not a valid CloudEvent of ours."""


_FOUR_DIGIT_YEARS = 1000


def format_time(instant: datetime) -> str:
    """Return RFC 3339 UTC with microseconds and a `Z`: one spelling, so hashes are stable."""
    if instant.tzinfo is None:
        raise ValueError("event times must be aware")
    utc = instant.astimezone(UTC)
    if utc.year < _FOUR_DIGIT_YEARS:
        # strftime spells these years unpadded: keep that spelling (and so the hashes).
        return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    # isoformat is twice as fast as strftime and spells every later time the same way.
    return utc.isoformat(timespec="microseconds")[:-6] + "Z"


def parse_time(text: str) -> datetime:
    """Parse an RFC 3339 time back into an aware UTC datetime."""
    value = datetime.fromisoformat(text)  # Python 3.11 reads the trailing "Z" itself
    if value.tzinfo is None:
        raise ValueError(f"time without offset: {text!r}")
    return value.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Actor:
    """Who caused an event: a user id (or a system principal) and the role they acted in."""

    user_id: str
    role: str | None = None


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """One event as stored and published, with every attribute of its envelope."""

    event_id: UUID
    source: str
    stream_id: str
    version: int
    position: int
    type: str
    schema_version: int
    data: Mapping[str, Any]
    recorded_at: datetime
    unit_id: str | None = None
    actor: Actor | None = None
    correlation_id: UUID | None = None
    causation_id: UUID | None = None
    traceparent: str | None = None
    prevhash: str = ""
    hash: str = ""
    _decoded: list[Event] = field(default_factory=list, compare=False, repr=False)

    def event(self) -> Event:
        """Return the typed event, upcast to the current schema (decoded once, then cached)."""
        if not self._decoded:
            self._decoded.append(decode(self.type, self.schema_version, self.data))
        return self._decoded[0]

    def hashed_attributes(self, time_text: str | None = None) -> dict[str, Any]:
        """Return what the hash covers: every attribute that says what happened, not how it
        travelled.

        `time_text` is `format_time(self.recorded_at)` when the caller already has it.
        """
        return {
            "id": str(self.event_id),
            "source": self.source,
            "subject": self.stream_id,
            "type": self.type,
            "schemaversion": self.schema_version,
            "time": time_text or format_time(self.recorded_at),
            "unitid": self.unit_id,
            "actorid": self.actor.user_id if self.actor else None,
            "actorrole": self.actor.role if self.actor else None,
            "correlationid": str(self.correlation_id) if self.correlation_id else None,
            "causationid": str(self.causation_id) if self.causation_id else None,
            "data": self.data,
        }

    def to_cloudevent(self) -> dict[str, Any]:
        """Return the CloudEvents structured form (JSON), as exports hold it."""
        attributes: dict[str, Any] = {
            "specversion": SPEC_VERSION,
            "datacontenttype": CONTENT_TYPE,
            **{k: v for k, v in self.hashed_attributes().items() if k != "data"},
            "streamversion": self.version,
            "position": self.position,
            "traceparent": self.traceparent,
            "prevhash": self.prevhash,
            "hash": self.hash,
        }
        attributes = {k: v for k, v in attributes.items() if v is not None}
        attributes["data"] = self.data
        return attributes

    @classmethod
    def from_cloudevent(cls, doc: Mapping[str, Any]) -> RecordedEvent:
        """Build a recorded event from its structured CloudEvents form."""
        try:
            if doc.get("specversion") != SPEC_VERSION:
                raise EnvelopeDecodeError(f"specversion {doc.get('specversion')!r} is not 1.0")
            actor_id = doc.get("actorid")
            return cls(
                event_id=UUID(str(doc["id"])),
                source=str(doc["source"]),
                stream_id=str(doc["subject"]),
                version=int(doc["streamversion"]),
                position=int(doc.get("position", 0)),
                type=str(doc["type"]),
                schema_version=int(doc.get("schemaversion", 1)),
                data=dict(doc["data"]),
                recorded_at=parse_time(str(doc["time"])),
                unit_id=doc.get("unitid"),
                actor=Actor(str(actor_id), doc.get("actorrole")) if actor_id else None,
                correlation_id=_uuid_or_none(doc.get("correlationid")),
                causation_id=_uuid_or_none(doc.get("causationid")),
                traceparent=doc.get("traceparent"),
                prevhash=str(doc.get("prevhash", "")),
                hash=str(doc.get("hash", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, EnvelopeDecodeError):
                raise
            raise EnvelopeDecodeError(f"not a CloudEvent of ours: {exc!r}") from exc

    def kafka_key(self) -> bytes:
        """Return the record key: the stream id, so each stream stays in one partition, in order."""
        return self.stream_id.encode("utf-8")

    def kafka_value(self) -> bytes:
        """Return the record value: the JSON payload (binary content mode)."""
        return json.dumps(self.data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    def kafka_headers(self) -> list[tuple[str, bytes]]:
        """Return the CloudEvents attributes as `ce_*` headers, plus a W3C `traceparent` header."""
        headers = [("content-type", CONTENT_TYPE.encode())]
        for name, value in self.to_cloudevent().items():
            if name in ("data", "datacontenttype"):
                continue
            headers.append((f"ce_{name}", str(value).encode("utf-8")))
        if self.traceparent:
            headers.append(("traceparent", self.traceparent.encode("ascii")))
        return headers

    @classmethod
    def from_kafka(
        cls, key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes]]
    ) -> RecordedEvent:
        """Rebuild a recorded event from a Kafka record (binary content mode).

        This is the projectors' hot path, so it reads the headers straight into the fields
        rather than through `from_cloudevent`; the checks are the same.
        """
        if value is None:
            raise EnvelopeDecodeError("record without a value")
        try:
            raw = dict(headers)
            text = value.decode()
            data = _compact_json(text)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise EnvelopeDecodeError(f"value is not JSON: {exc}") from exc
        if type(data) is not dict:
            raise EnvelopeDecodeError("value is not a JSON object")
        get = raw.get
        try:
            if raw["ce_specversion"] != b"1.0":
                raise EnvelopeDecodeError(f"specversion {raw['ce_specversion']!r} is not 1.0")
            stream_id = raw["ce_subject"].decode()
            if key is not None and key != raw["ce_subject"]:
                raise EnvelopeDecodeError("record key differs from ce_subject")
            actor_id = get("ce_actorid")
            actor_role = get("ce_actorrole")
            correlation = get("ce_correlationid")
            causation = get("ce_causationid")
            unit_id = get("ce_unitid")
            traceparent = get("ce_traceparent")
            position = get("ce_position")
            schema_version = get("ce_schemaversion")
            prevhash = get("ce_prevhash")
            hash_ = get("ce_hash")
            # Positional, in field order: the hot path's constructor call (one per record).
            return cls(
                UUID(raw["ce_id"].decode()),
                raw["ce_source"].decode(),
                stream_id,
                int(raw["ce_streamversion"]),
                int(position) if position is not None else 0,
                raw["ce_type"].decode(),
                int(schema_version) if schema_version is not None else 1,
                data,
                parse_time(raw["ce_time"].decode()),
                unit_id.decode() if unit_id else None,
                (
                    Actor(actor_id.decode(), actor_role.decode() if actor_role else None)
                    if actor_id
                    else None
                ),
                UUID(correlation.decode()) if correlation else None,
                UUID(causation.decode()) if causation else None,
                traceparent.decode() if traceparent else None,
                prevhash.decode() if prevhash is not None else "",
                hash_.decode() if hash_ is not None else "",
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            if isinstance(exc, EnvelopeDecodeError):
                raise
            raise EnvelopeDecodeError(f"not a CloudEvent of ours: {exc!r}") from exc


_raw_json = json.JSONDecoder().raw_decode


def _compact_json(text: str) -> Any:
    """Return `json.loads(text)`, faster for the compact JSON the relay writes.

    `raw_decode` is json.loads without its two whitespace scans; a value with anything around
    it (or no JSON at all) goes through json.loads, which reads or refuses it the usual way.
    """
    try:
        data, end = _raw_json(text)
    except json.JSONDecodeError:
        return json.loads(text)
    return data if end == len(text) else json.loads(text)


def _uuid_or_none(value: Any) -> UUID | None:
    return UUID(str(value)) if value else None


def export_lines(events: Iterable[RecordedEvent]) -> Iterable[str]:
    """Yield one JSON line per event: the export format auditors verify offline."""
    for event in events:
        yield json.dumps(event.to_cloudevent(), ensure_ascii=False, sort_keys=True) + "\n"
