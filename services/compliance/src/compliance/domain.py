"""The compliance rules: a unit's state in a campaign, and the campaign aggregate's decisions.

Why this exists: whether a unit is certified, late or missed, and what the Ministry may do with a
campaign (open one, extend its deadline for a region or directorate, close it), are rules that
must hold the same in the projection's SQL, in the API and in tests. They are pure functions over
frozen data; time arrives as a parameter (STYLE.md habit 6).

Usage::

    state_of(certified_at=None, last_change_at=t, opens_at=o, deadline_at=d, now=n)
    campaign = replay(history)                       # events of stream campaign:<id>
    events = open_campaign(campaign, command, now=clock.now())
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import assert_never

from compliance.commands import CloseCampaign, ExtendDeadline, OpenCampaign
from compliance.windows import deadline_after_day, last_day_before, regular_window
from shared.events.base import Event
from shared.events.compliance import (
    CampaignClosed,
    CampaignDeadlineExtended,
    CampaignEvent,
    CampaignOpened,
    ComplianceState,
    ScopeKind,
)

ADHOC_PREFIX = "adhoc-"


class ComplianceDomainError(Exception):
    """A campaign command that the rules refuse."""

    slug = "compliance-rule"
    status = 409
    field: str | None = None


class CampaignExistsError(ComplianceDomainError):
    """An ad-hoc campaign with this id was opened already (or the id names a regular window)."""

    slug = "campaign-exists"
    field = "campaign_id"


class CampaignNotFoundError(ComplianceDomainError):
    """No regular window or opened ad-hoc campaign has this id."""

    slug = "campaign-not-found"
    status = 404


class CampaignClosedError(ComplianceDomainError):
    """The campaign is closed: it takes no extension and cannot be closed again."""

    slug = "campaign-closed"


class DeadlineNotAfterOpeningError(ComplianceDomainError):
    """The deadline's last day is before the day the campaign opens."""

    slug = "deadline-before-opening"
    status = 422
    field = "deadline_on"


class DeadlineNotExtendedError(ComplianceDomainError):
    """An extension must give more time than the campaign's own deadline."""

    slug = "deadline-not-extended"
    status = 422
    field = "deadline_on"


class ScopeInvalidError(ComplianceDomainError):
    """A scope names no value where one is needed, or one where none is allowed."""

    slug = "scope-invalid"
    status = 422
    field = "scope_value"


def state_of(
    *,
    certified_at: datetime | None,
    last_change_at: datetime | None,
    opens_at: datetime,
    deadline_at: datetime,
    now: datetime,
) -> ComplianceState:
    """Return a unit's state in a campaign (mirrored in SQL by `compliance.views.state_expr`).

    `certified_at` is the unit's first certification that counts for the campaign (at or after
    it opened, before it closed); `deadline_at` the unit's own deadline, extensions included.
    """
    if certified_at is not None:
        return ComplianceState.CERTIFIED if certified_at < deadline_at else ComplianceState.LATE
    if now >= deadline_at:
        return ComplianceState.MISSED
    if last_change_at is not None and last_change_at >= opens_at:
        return ComplianceState.IN_PROGRESS
    return ComplianceState.NOT_STARTED


# ---------------------------------------------------------------------------------------------
# The campaign aggregate (stream campaign:<id>)


@dataclass(frozen=True, slots=True)
class CampaignRecord:
    """What the write side knows of a campaign: enough to decide its commands."""

    campaign_id: str
    is_regular: bool
    is_opened: bool = False
    opens_at: datetime | None = None
    deadline_at: datetime | None = None
    closed_at: datetime | None = None
    version: int = 0


def initial(campaign_id: str) -> CampaignRecord:
    """Return a campaign before any event: a regular window by rule, or an unopened ad-hoc one."""
    rule = regular_window(campaign_id)
    if rule is None:
        return CampaignRecord(campaign_id, is_regular=False)
    return CampaignRecord(
        campaign_id,
        is_regular=True,
        is_opened=True,
        opens_at=rule.opens_at,
        deadline_at=rule.deadline_at,
    )


def evolve(record: CampaignRecord, event: CampaignEvent) -> CampaignRecord:
    """Return the campaign after `event`."""
    match event:
        case CampaignOpened():
            record = replace(
                record, is_opened=True, opens_at=event.opens_at, deadline_at=event.deadline_at
            )
        case CampaignDeadlineExtended():
            pass  # extensions are per scope: they never move the campaign's own deadline
        case CampaignClosed():
            record = replace(record, closed_at=event.closed_at)
        case _:
            assert_never(event)
    return replace(record, version=record.version + 1)


def replay(campaign_id: str, history: Iterable[Event]) -> CampaignRecord:
    """Fold a campaign stream's events."""
    record = initial(campaign_id)
    for event in history:
        if isinstance(event, CampaignOpened | CampaignDeadlineExtended | CampaignClosed):
            record = evolve(record, event)
    return record


def _require_scope(kind: ScopeKind, value: str | None, *, allowed: tuple[ScopeKind, ...]) -> None:
    if kind not in allowed:
        raise ScopeInvalidError(f"scope {kind.value} is not allowed here")
    if (kind is ScopeKind.ALL) != (value is None or value == ""):
        raise ScopeInvalidError(
            "scope 'all' takes no value"
            if kind is ScopeKind.ALL
            else f"scope {kind.value} needs a value"
        )


def open_campaign(
    record: CampaignRecord, command: OpenCampaign, *, now: datetime
) -> list[CampaignOpened]:
    """Decide the opening of an ad-hoc campaign; it opens now, or at `command.opens_at`."""
    if record.is_regular or record.is_opened:
        raise CampaignExistsError(f"campaign {record.campaign_id} exists")
    _require_scope(
        command.scope_kind,
        command.scope_value,
        allowed=(ScopeKind.ALL, ScopeKind.UNIT_TYPE, ScopeKind.REGION),
    )
    opens_at = command.opens_at or now
    deadline_at = deadline_after_day(command.deadline_on)
    if deadline_at <= opens_at:
        raise DeadlineNotAfterOpeningError(
            f"the last day {command.deadline_on} ends before the campaign opens"
        )
    return [
        CampaignOpened(
            campaign_id=record.campaign_id,
            title=command.title,
            opens_at=opens_at,
            deadline_at=deadline_at,
            deadline_on=command.deadline_on,
            scope_kind=command.scope_kind,
            scope_value=command.scope_value or None,
            reason=command.reason,
        )
    ]


def extend_deadline(
    record: CampaignRecord, command: ExtendDeadline, *, now: datetime
) -> list[CampaignDeadlineExtended]:
    """Decide a deadline extension for a region or directorate (or all units)."""
    if not record.is_opened or record.deadline_at is None:
        raise CampaignNotFoundError(f"campaign {record.campaign_id} was never opened")
    if record.closed_at is not None:
        raise CampaignClosedError(f"campaign {record.campaign_id} is closed")
    _require_scope(
        command.scope_kind,
        command.scope_unit_id,
        allowed=(ScopeKind.ALL, ScopeKind.REGION, ScopeKind.DIRECTORATE),
    )
    deadline_at = deadline_after_day(command.deadline_on)
    if deadline_at <= record.deadline_at:
        raise DeadlineNotExtendedError(
            f"{command.deadline_on} is not after the campaign's last day "
            f"{last_day_before(record.deadline_at)}"
        )
    return [
        CampaignDeadlineExtended(
            campaign_id=record.campaign_id,
            scope_kind=command.scope_kind,
            scope_unit_id=command.scope_unit_id or None,
            deadline_at=deadline_at,
            deadline_on=command.deadline_on,
            extended_at=now,
            reason=command.reason,
        )
    ]


def close(record: CampaignRecord, command: CloseCampaign, *, now: datetime) -> list[CampaignClosed]:
    """Decide the closure of a campaign: late certifications stop counting from now."""
    if not record.is_opened:
        raise CampaignNotFoundError(f"campaign {record.campaign_id} was never opened")
    if record.closed_at is not None:
        raise CampaignClosedError(f"campaign {record.campaign_id} is closed")
    return [CampaignClosed(campaign_id=record.campaign_id, closed_at=now, reason=command.reason)]
