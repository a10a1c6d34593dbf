"""The compliance service's published events: campaigns, each unit's compliance, reminders.

Why this exists: directorates, the Ministry's mailer and registry-sync react to who is up to date,
and an ad-hoc campaign or a deadline extension is an administrative act that must stay on record,
so these facts are a contract owned here (STYLE.md habit 7: additive changes only).

Streams (the event store's stream ids; also the Kafka key on `compliance.events`):
- `campaign:<campaign id>`: a campaign's life: opened (ad-hoc only; the regular windows exist by
  rule), deadline extensions, closed. Regular windows are named ``window-YYYY-06`` /
  ``window-YYYY-12``; ad-hoc campaigns ``adhoc-…``.
- `compliance:<campaign id>:<unit id>`: one unit's state in one campaign (UnitComplianceChanged).
- `reminder:<campaign id>:<unit id>:<step>`: at most one ReminderDue, appended with expected
  version 0, so "each step once" is the store's own `UNIQUE(stream_id, version)` check: a
  restarted scheduler that tries again gets a version conflict, not a second reminder.

Notes:
- Instants are aware UTC (`…_at`); deadlines are exclusive (the instant the last day ends in
  Athens) and travel together with that last Athens day (`…_on`) for people and mailers.
- Who performed the act travels in the envelope (actor), not in the payload.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated, Literal
from uuid import UUID

from pydantic import AwareDatetime, Field, StringConstraints

from shared.events.base import Event
from shared.events.units import UnitId, UserId

CampaignId = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9-]*$")
]
Title = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Reason = Annotated[str, StringConstraints(max_length=2000)]


class ScopeKind(StrEnum):
    """Which units a campaign covers, or where a deadline extension applies."""

    ALL = "all"
    UNIT_TYPE = "unit_type"
    REGION = "region"
    DIRECTORATE = "directorate"


class ComplianceState(StrEnum):
    """Where a unit stands in a campaign."""

    NOT_STARTED = "not_started"  # no change recorded since the campaign opened, not certified
    IN_PROGRESS = "in_progress"  # changes recorded since it opened, not certified yet
    CERTIFIED = "certified"  # certified before its deadline
    LATE = "late"  # certified after its deadline (before the campaign closed)
    MISSED = "missed"  # not certified by its deadline
    OUT_OF_SCOPE = "out_of_scope"  # suspended, abolished or merged: no longer asked


class ReminderStep(StrEnum):
    """Which reminder of a campaign: days before the deadline, or overdue (to the directorate)."""

    DAYS_14 = "14_days"
    DAYS_7 = "7_days"
    DAYS_1 = "1_day"
    OVERDUE = "overdue"


class CampaignOpened(Event):
    """The Ministry opens an ad-hoc campaign with its own deadline and scope."""

    type: Literal["CampaignOpened"] = "CampaignOpened"
    campaign_id: CampaignId
    title: Title
    opens_at: AwareDatetime
    deadline_at: AwareDatetime  # exclusive: the instant `deadline_on` ends in Athens
    deadline_on: date  # the last Athens day on which units may certify in time
    scope_kind: ScopeKind
    # The unit type or region id the campaign covers (None for all units).
    scope_value: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    reason: Reason = ""


class CampaignDeadlineExtended(Event):
    """Extend a campaign's deadline for the units of a region or directorate (or all units)."""

    type: Literal["CampaignDeadlineExtended"] = "CampaignDeadlineExtended"
    campaign_id: CampaignId
    scope_kind: ScopeKind
    scope_unit_id: UnitId | None = None  # the region or directorate (None for all units)
    deadline_at: AwareDatetime
    deadline_on: date
    extended_at: AwareDatetime
    reason: Reason = ""


class CampaignClosed(Event):
    """Close a campaign: from `closed_at` no certification counts for it, not even as late."""

    type: Literal["CampaignClosed"] = "CampaignClosed"
    campaign_id: CampaignId
    closed_at: AwareDatetime
    reason: Reason = ""


class UnitComplianceChanged(Event):
    """A unit's state in a campaign changed (as the compliance projection sees it)."""

    type: Literal["UnitComplianceChanged"] = "UnitComplianceChanged"
    unit_id: UnitId
    campaign_id: CampaignId
    from_state: ComplianceState | None  # None: the first state recorded for this unit here
    to_state: ComplianceState
    changed_at: AwareDatetime  # when the state changed (e.g. the deadline, for `missed`)
    deadline_at: AwareDatetime  # the unit's own deadline, extensions included
    deadline_on: date
    directorate_id: UnitId | None = None
    region_id: UnitId | None = None
    certification_id: UUID | None = None
    certified_at: AwareDatetime | None = None
    signer_id: UserId | None = None


class ReminderDue(Event):
    """Remind a unit (or, once overdue, its directorate) to certify: what a mailer needs."""

    type: Literal["ReminderDue"] = "ReminderDue"
    unit_id: UnitId  # the unit's Ministry registry code
    unit_name: Annotated[str, StringConstraints(min_length=1)]
    unit_type: Annotated[str, StringConstraints(min_length=1)]
    mm_id: str | None = None
    email: str | None = None  # the unit's own address, when the units service knows it
    campaign_id: CampaignId
    campaign_title: Title
    step: ReminderStep
    state: ComplianceState  # not_started or in_progress (missed, once overdue)
    deadline_at: AwareDatetime
    deadline_on: date
    days_left: int  # negative once overdue
    due_on: date  # the Athens day the reminder is for
    # Whose inbox: the unit itself for 14/7/1 days; its directorate once overdue.
    recipient_unit_ids: tuple[UnitId, ...] = Field(min_length=1)
    directorate_id: UnitId | None = None
    directorate_name: str | None = None
    region_id: UnitId | None = None


CampaignEvent = CampaignOpened | CampaignDeadlineExtended | CampaignClosed
UnitComplianceEvent = UnitComplianceChanged | ReminderDue
ComplianceEvent = CampaignEvent | UnitComplianceEvent
"""Every event on `compliance.events`, for `match … case _: assert_never(event)` in consumers."""


def campaign_stream(campaign_id: str) -> str:
    """Return the stream id of a campaign."""
    return f"campaign:{campaign_id}"


def unit_compliance_stream(campaign_id: str, unit_id: str) -> str:
    """Return the stream id of one unit's compliance state in one campaign."""
    return f"compliance:{campaign_id}:{unit_id}"


def reminder_stream(campaign_id: str, unit_id: str, step: ReminderStep) -> str:
    """Return the stream id that holds the one reminder of `step` for a unit in a campaign."""
    return f"reminder:{campaign_id}:{unit_id}:{step.value}"


__all__ = [
    "CampaignClosed",
    "CampaignDeadlineExtended",
    "CampaignEvent",
    "CampaignId",
    "CampaignOpened",
    "ComplianceEvent",
    "ComplianceState",
    "ReminderDue",
    "ReminderStep",
    "ScopeKind",
    "UnitComplianceChanged",
    "UnitComplianceEvent",
    "campaign_stream",
    "reminder_stream",
    "unit_compliance_stream",
]
