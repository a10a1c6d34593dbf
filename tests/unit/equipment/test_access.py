"""equipment.access decides as shared.authz does, from the same query."""

from __future__ import annotations

import re
from itertools import product

import pytest

from equipment import access
from shared import authz
from shared.auth import Principal
from shared.authz import Action, Decision
from shared.events.units import GlobalRole


def _normalised(text: str) -> str:
    return " ".join(re.sub(r"%\((\w+)\)s", r":\1", text).split())


def test_covering_grant_query_is_shared_authz_one() -> None:
    shared_text = authz._HAS_COVERING_GRANT.text  # the drift check reads it
    assert _normalised(access.COVERING_GRANT_SQL) == _normalised(shared_text)


class _Session:
    """What shared.authz.decide reads, answered from fixed values."""

    def __init__(self, status: str | None, roles: list[str], has_grant: bool) -> None:
        self.status, self.roles, self.has_grant = status, roles, has_grant
        self.calls = 0

    async def scalar(self, *_: object, **__: object) -> object:
        self.calls += 1
        return self.status if self.calls == 1 else self.has_grant

    async def scalars(self, *_: object, **__: object) -> list[str]:
        return self.roles


@pytest.mark.parametrize(
    ("action", "status", "token_roles", "view_roles", "has_grant"),
    list(
        product(
            list(Action),
            [None, "active", "suspended", "merged"],
            [frozenset(), frozenset({GlobalRole.MINISTRY_ADMIN}), frozenset({GlobalRole.AUDITOR})],
            [[], ["helpdesk"]],
            [False, True],
        )
    ),
)
async def test_decide_matches_shared_authz(
    action: Action,
    status: str | None,
    token_roles: frozenset[GlobalRole],
    view_roles: list[str],
    has_grant: bool,
) -> None:
    principal = Principal(user_id="u1", global_roles=token_roles)
    expected: Decision = await authz.decide(
        _Session(status, view_roles, has_grant),  # type: ignore[arg-type]
        principal,
        action,
        "0551040",
    )
    got = access.decide(
        principal, action, status_value=status, view_roles=view_roles, has_grant=has_grant
    )
    assert got is expected
