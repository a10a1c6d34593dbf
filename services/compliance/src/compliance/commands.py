"""The compliance commands: what the Ministry asks of campaigns, and publishing unit states."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from shared.events.compliance import ScopeKind


@dataclass(frozen=True, slots=True)
class OpenCampaign:
    """Open an ad-hoc campaign with its own last day and scope (all, a unit type, a region)."""

    campaign_id: str
    title: str
    deadline_on: date
    scope_kind: ScopeKind
    scope_value: str | None = None
    opens_at: datetime | None = None  # None: now
    reason: str = ""


@dataclass(frozen=True, slots=True)
class ExtendDeadline:
    """Give the units of a region or directorate (or all units) until `deadline_on`."""

    campaign_id: str
    scope_kind: ScopeKind
    scope_unit_id: str | None
    deadline_on: date
    reason: str = ""
    expected_version: int | None = None


@dataclass(frozen=True, slots=True)
class CloseCampaign:
    """Close a campaign: no certification counts for it any more, not even as late."""

    campaign_id: str
    reason: str = ""
    expected_version: int | None = None


@dataclass(frozen=True, slots=True)
class PublishComplianceChanges:
    """Append UnitComplianceChanged for every unit whose state differs from the last published."""

    campaign_id: str
