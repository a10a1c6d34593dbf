"""POST /units/imports through HTTP with tokens: admin only, per-row answers, idempotent re-run."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import FastAPI

from shared.auth import AuthSettings, TokenVerifier, use_token_verifier
from shared.db import session_factory
from shared.devissuer import DevIssuer
from shared.events.units import GlobalRole
from shared.problems import install_problem_handlers
from tests.conftest import DatabaseFactory
from tests.integration.units.import_kit import NOW, real_list, units_database
from units import handlers
from units.imports_api import NDJSON, router
from units.seed import HOLDING_NODE_CODE, seed

pytestmark = pytest.mark.infra

ISSUER = "https://issuer.test"
AUDIENCE = "ictcadastre"


def slice_of_real_list(rows: int) -> bytes:
    """Return the header and the first `rows` secondary-school rows of the real list, as bytes."""
    lines = real_list().read_text(encoding="utf-8").splitlines()
    picked = [line for line in lines[1:] if ",ΓΥΜΝΑΣΙΟ," in line][:rows]
    return ("\n".join([lines[0], *picked]) + "\n").encode("utf-8")


@pytest_asyncio.fixture(loop_scope="session")
async def client(
    fresh_database: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[httpx.AsyncClient, DevIssuer, Any]]:
    issuer = DevIssuer(ec.generate_private_key(ec.SECP256R1()), ISSUER, AUDIENCE)
    jwks = tmp_path_factory.mktemp("jwks") / "jwks.json"
    jwks.write_text(json.dumps(issuer.jwks()))
    async with units_database(fresh_database("units_import_http")) as db:
        await seed(engine=db.engine, store=db.store, clock=db.clock, limit=0)
        app = FastAPI()
        install_problem_handlers(app)
        app.include_router(router)
        app.state.store = db.store
        app.state.clock = db.clock
        app.state.sessions = session_factory(db.engine)
        settings = AuthSettings(auth_issuer=ISSUER, auth_audience=AUDIENCE, auth_jwks_file=jwks)
        verifier = TokenVerifier(settings, clock=db.clock)
        use_token_verifier(app, verifier)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://units") as http:
            yield http, issuer, db
        await verifier.aclose()


def bearer(issuer: DevIssuer, user: str, *roles: GlobalRole) -> dict[str, str]:
    return {"Authorization": f"Bearer {issuer.mint(user, now=NOW, roles=roles)}"}


async def test_only_a_ministry_administrator_may_import(
    client: tuple[httpx.AsyncClient, DevIssuer, Any],
) -> None:
    http, issuer, _ = client
    response = await http.post(
        "/units/imports",
        content=slice_of_real_list(2),
        headers={**bearer(issuer, "helpdesk-1", GlobalRole.HELPDESK), "Content-Type": "text/csv"},
    )
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"
    assert (await http.post("/units/imports", content=b"")).status_code == 401


async def test_a_csv_body_is_answered_row_by_row_and_a_resend_changes_nothing(
    client: tuple[httpx.AsyncClient, DevIssuer, Any],
) -> None:
    http, issuer, db = client
    body = slice_of_real_list(40) + "9999990,,,ΓΥΜΝΑΣΙΟ,,,0500105,,,,,x,\n".encode()
    headers = {
        **bearer(issuer, "admin-1", GlobalRole.MINISTRY_ADMIN),
        "Content-Type": "text/csv",
        "Accept": NDJSON,
    }

    first = await http.post("/units/imports", content=body, headers=headers)
    again = await http.post("/units/imports", content=body, headers=headers)

    assert first.status_code == 200
    assert first.headers["content-type"].startswith(NDJSON)
    lines = [json.loads(line) for line in first.text.splitlines()]
    rows, summary = lines[:-1], lines[-1]["summary"]
    assert summary == {"created": 40, "unchanged": 0, "updated": 0, "error": 1, "rows": 41}
    assert [row["line"] for row in rows] == list(range(2, 43))
    assert rows[-1] == {
        "line": 42,
        "registry_code": "9999990",
        "outcome": "error",
        "reason": "name: is required",
        "field": "name",
    }
    created = await handlers.load_unit(db.store, rows[0]["registry_code"])
    assert created is not None
    assert created.parent_id == rows[0]["parent_code"] != HOLDING_NODE_CODE
    assert json.loads(again.text.splitlines()[-1])["summary"]["unchanged"] == 40


async def test_a_multipart_upload_is_answered_with_counts_and_the_rows_worth_reading(
    client: tuple[httpx.AsyncClient, DevIssuer, Any], tmp_path: Path
) -> None:
    http, issuer, _ = client
    upload = "registry_code,name,unit_type\n0000042,ΝΗΠΙΑΓΩΓΕΙΟ ΔΟΚΙΜΗΣ,ΝΗΠΙΑΓΩΓΕΙΟ\n"
    response = await http.post(
        "/units/imports",
        params={"default_parent": HOLDING_NODE_CODE},
        files={"file": ("units.csv", upload.encode(), "text/csv")},
        headers=bearer(issuer, "admin-1", GlobalRole.MINISTRY_ADMIN),
    )
    assert response.status_code == 200, response.text
    assert response.json() == {
        "counts": {"created": 1, "unchanged": 0, "updated": 0, "error": 0, "rows": 1},
        "rows": [],
    }


async def test_a_file_without_the_required_columns_is_a_422_problem(
    client: tuple[httpx.AsyncClient, DevIssuer, Any],
) -> None:
    http, issuer, _ = client
    for accept in ("application/json", NDJSON):
        response = await http.post(
            "/units/imports",
            content="registry_code,name\n0551198,ΛΥΚΕΙΟ\n".encode(),
            headers={
                **bearer(issuer, "admin-1", GlobalRole.MINISTRY_ADMIN),
                "Content-Type": "text/csv",
                "Accept": accept,
            },
        )
        assert response.status_code == 422
        problem = response.json()
        assert problem["type"].endswith("import-format")
        assert "unit_type" in problem["detail"]
