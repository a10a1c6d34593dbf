"""Pure compliance rules: a unit's state, and the campaign aggregate's decisions."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from compliance.commands import CloseCampaign, ExtendDeadline, OpenCampaign
from compliance.domain import (
    CampaignClosedError,
    CampaignExistsError,
    CampaignNotFoundError,
    DeadlineNotAfterOpeningError,
    DeadlineNotExtendedError,
    ScopeInvalidError,
    close,
    extend_deadline,
    open_campaign,
    replay,
    state_of,
)
from compliance.views import reminder_step
from compliance.windows import deadline_after_day
from shared.events.compliance import (
    CampaignClosed,
    CampaignDeadlineExtended,
    CampaignOpened,
    ComplianceState,
    ReminderStep,
    ScopeKind,
)

OPENS = datetime(2026, 11, 30, 22, 0, tzinfo=UTC)
DEADLINE = datetime(2026, 12, 31, 22, 0, tzinfo=UTC)
NOW = datetime(2026, 12, 10, 9, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def state(
    certified_at: datetime | None = None,
    last_change_at: datetime | None = None,
    now: datetime = NOW,
) -> ComplianceState:
    return state_of(
        certified_at=certified_at,
        last_change_at=last_change_at,
        opens_at=OPENS,
        deadline_at=DEADLINE,
        now=now,
    )


def test_unit_states_follow_certification_changes_and_the_deadline() -> None:
    assert state() is ComplianceState.NOT_STARTED
    assert state(last_change_at=OPENS - HOUR) is ComplianceState.NOT_STARTED
    assert state(last_change_at=OPENS) is ComplianceState.IN_PROGRESS
    assert state(certified_at=DEADLINE - HOUR) is ComplianceState.CERTIFIED
    assert state(certified_at=DEADLINE, now=DEADLINE + HOUR) is ComplianceState.LATE
    assert state(last_change_at=OPENS, now=DEADLINE) is ComplianceState.MISSED


def test_reminder_steps_are_the_most_urgent_reached() -> None:
    assert reminder_step(15) is None
    assert reminder_step(14) is ReminderStep.DAYS_14
    assert reminder_step(8) is ReminderStep.DAYS_14
    assert reminder_step(7) is ReminderStep.DAYS_7
    assert reminder_step(1) is ReminderStep.DAYS_1
    assert reminder_step(0) is ReminderStep.DAYS_1
    assert reminder_step(-1) is ReminderStep.OVERDUE


def opening(**changes: object) -> OpenCampaign:
    fields: dict[str, object] = {
        "campaign_id": "adhoc-labs",
        "title": "Εργαστήρια",
        "deadline_on": date(2026, 10, 31),
        "scope_kind": ScopeKind.REGION,
        "scope_value": "9900001",
    }
    return OpenCampaign(**(fields | changes))  # type: ignore[arg-type]  # fields as the test gives


def test_an_adhoc_campaign_opens_now_with_its_deadline_at_athens_midnight() -> None:
    now = datetime(2026, 10, 20, 7, 0, tzinfo=UTC)

    [event] = open_campaign(replay("adhoc-labs", []), opening(), now=now)

    assert event.opens_at == now
    assert event.deadline_at == datetime(2026, 10, 31, 22, 0, tzinfo=UTC)  # after the DST change
    assert event.deadline_on == date(2026, 10, 31)


def test_opening_is_refused_twice_for_regular_windows_and_with_a_bad_scope() -> None:
    now = datetime(2026, 10, 20, 7, 0, tzinfo=UTC)
    [opened] = open_campaign(replay("adhoc-labs", []), opening(), now=now)

    with pytest.raises(CampaignExistsError):
        open_campaign(replay("adhoc-labs", [opened]), opening(), now=now)
    with pytest.raises(CampaignExistsError):
        open_campaign(replay("window-2026-12", []), opening(campaign_id="window-2026-12"), now=now)
    with pytest.raises(ScopeInvalidError):
        open_campaign(replay("adhoc-x", []), opening(scope_value=None), now=now)
    with pytest.raises(ScopeInvalidError):
        open_campaign(replay("adhoc-x", []), opening(scope_kind=ScopeKind.DIRECTORATE), now=now)
    with pytest.raises(DeadlineNotAfterOpeningError):
        open_campaign(replay("adhoc-x", []), opening(deadline_on=date(2026, 10, 19)), now=now)


def test_a_regular_window_is_extended_for_a_directorate_only_to_a_later_day() -> None:
    record = replay("window-2026-12", [])
    extension = ExtendDeadline(
        "window-2026-12", ScopeKind.DIRECTORATE, "9910002", date(2027, 1, 15), "χιόνια"
    )

    [event] = extend_deadline(record, extension, now=NOW)

    assert isinstance(event, CampaignDeadlineExtended)
    assert event.deadline_at == deadline_after_day(date(2027, 1, 15))
    with pytest.raises(DeadlineNotExtendedError):
        extend_deadline(
            record,
            ExtendDeadline("window-2026-12", ScopeKind.REGION, "9900001", date(2026, 12, 31)),
            now=NOW,
        )


def test_closing_is_once_and_stops_extensions() -> None:
    record = replay("window-2026-12", [])
    [closed] = close(record, CloseCampaign("window-2026-12"), now=NOW)
    after = replay("window-2026-12", [closed])

    assert isinstance(closed, CampaignClosed)
    with pytest.raises(CampaignClosedError):
        close(after, CloseCampaign("window-2026-12"), now=NOW)
    with pytest.raises(CampaignClosedError):
        extend_deadline(
            after,
            ExtendDeadline("window-2026-12", ScopeKind.ALL, None, date(2027, 1, 15)),
            now=NOW,
        )


def test_an_unknown_adhoc_campaign_cannot_be_extended_or_closed() -> None:
    record = replay("adhoc-nothing", [])

    with pytest.raises(CampaignNotFoundError):
        close(record, CloseCampaign("adhoc-nothing"), now=NOW)
    with pytest.raises(CampaignNotFoundError):
        extend_deadline(
            record, ExtendDeadline("adhoc-nothing", ScopeKind.ALL, None, date(2027, 1, 1)), now=NOW
        )


def test_replay_counts_versions() -> None:
    opened = CampaignOpened(
        campaign_id="adhoc-labs",
        title="x",
        opens_at=OPENS,
        deadline_at=DEADLINE,
        deadline_on=date(2026, 12, 31),
        scope_kind=ScopeKind.ALL,
    )
    record = replay("adhoc-labs", [opened, CampaignClosed(campaign_id="adhoc-labs", closed_at=NOW)])

    assert (record.version, record.is_opened, record.closed_at) == (2, True, NOW)
