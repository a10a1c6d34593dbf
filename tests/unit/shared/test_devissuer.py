"""The development issuer: its keys, its JWKS, its CLI, and tokens that `shared.auth` accepts."""

from __future__ import annotations

import argparse
import json
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest

from shared.auth import AuthSettings, TokenVerifier
from shared.clock import FixedClock
from shared.devissuer import (
    DEFAULT_AUDIENCE,
    DEFAULT_ISSUER,
    JWKS_FILE,
    PRIVATE_KEY_FILE,
    DevIssuer,
    JwksServer,
    jwk_thumbprint,
    load_or_create,
    parse_ttl,
)
from shared.events.units import GlobalRole

NOW = datetime(2026, 6, 15, 8, 30, tzinfo=UTC)
CLI = [sys.executable, "-m", "shared.devissuer"]


def verifier_for(jwks_file: Path, *, now: datetime = NOW) -> TokenVerifier:
    settings = AuthSettings(
        auth_issuer=DEFAULT_ISSUER, auth_audience=DEFAULT_AUDIENCE, auth_jwks_file=jwks_file
    )
    return TokenVerifier(settings, clock=FixedClock(now))


def test_keys_are_created_private_and_reused(tmp_path: Path) -> None:
    directory = tmp_path / "dev-issuer"

    first = load_or_create(directory)
    second = load_or_create(directory)

    assert first.kid == second.kid
    assert first.algorithm == "ES256"
    assert stat.S_IMODE((directory / PRIVATE_KEY_FILE).stat().st_mode) == 0o600
    assert json.loads((directory / JWKS_FILE).read_text()) == first.jwks()
    assert "d" not in first.jwks()["keys"][0]  # the private scalar never reaches the JWKS


def test_concurrent_first_uses_share_one_key(tmp_path: Path) -> None:
    directory = tmp_path / "dev-issuer"

    with ThreadPoolExecutor(max_workers=8) as pool:
        kids = set(pool.map(lambda _: load_or_create(directory).kid, range(16)))

    assert len(kids) == 1
    assert [p.name for p in directory.iterdir() if p.name.startswith(".")] == []


def test_jwks_file_is_rewritten_when_it_does_not_match_the_key(tmp_path: Path) -> None:
    issuer = load_or_create(tmp_path)
    (tmp_path / JWKS_FILE).write_text('{"keys": []}')

    load_or_create(tmp_path)

    assert json.loads((tmp_path / JWKS_FILE).read_text()) == issuer.jwks()


def test_kid_is_the_rfc_7638_thumbprint() -> None:
    # The example key and thumbprint of RFC 7638 §3.1.
    jwk = {
        "kty": "RSA",
        "n": (
            "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1"
            "L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4"
            "QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbO"
            "pbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csF"
            "Cur-kEgU8awapJzKnqDKgw"
        ),
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29",
    }

    assert jwk_thumbprint(jwk) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


async def test_minted_token_is_accepted_by_the_verifier_with_its_roles(tmp_path: Path) -> None:
    issuer = load_or_create(tmp_path)

    token = issuer.mint(
        "director9", now=NOW, roles=[GlobalRole.MINISTRY_ADMIN], ttl=timedelta(minutes=30)
    )
    principal = await verifier_for(tmp_path / JWKS_FILE).verify(token)

    assert principal.user_id == "director9"
    assert principal.global_roles == frozenset({GlobalRole.MINISTRY_ADMIN})


async def test_minted_token_expires_after_its_ttl(tmp_path: Path) -> None:
    issuer = load_or_create(tmp_path)
    token = issuer.mint("teacher1", now=NOW, ttl=timedelta(minutes=30))
    after = NOW + timedelta(minutes=31)

    with pytest.raises(Exception, match="expired") as raised:
        await verifier_for(tmp_path / JWKS_FILE, now=after).verify(token)

    assert getattr(raised.value, "slug", None) == "token-expired"


async def test_rsa_issuer_mints_rs256_tokens(tmp_path: Path) -> None:
    issuer = load_or_create(tmp_path, algorithm="RS256")

    token = issuer.mint("teacher1", now=NOW)

    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    assert issuer.jwks()["keys"][0]["kty"] == "RSA"
    assert (await verifier_for(tmp_path / JWKS_FILE).verify(token)).user_id == "teacher1"


def test_cli_mint_prints_a_token_for_the_user(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            *CLI,
            "mint",
            "--user",
            "0551020-head",
            "--role",
            "auditor",
            "--ttl",
            "30m",
            "--dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )

    token = result.stdout.strip()
    key = jwt.PyJWKSet.from_json((tmp_path / JWKS_FILE).read_text()).keys[0]
    decoded = jwt.decode(token, key, algorithms=["ES256"], audience=DEFAULT_AUDIENCE)
    assert decoded["sub"] == "0551020-head"
    assert decoded["iss"] == DEFAULT_ISSUER
    assert decoded["roles"] == ["auditor"]
    assert decoded["exp"] - decoded["iat"] == 1800


def test_cli_refuses_an_unknown_role(tmp_path: Path) -> None:
    result = subprocess.run(
        [*CLI, "mint", "--user", "x", "--role", "superuser", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )

    assert result.returncode == 2
    assert "superuser" in result.stderr


@pytest.mark.parametrize(
    ("text", "expected"),
    [("3600", 3600), ("90s", 90), ("30m", 1800), ("8h", 28800), ("7d", 604800)],
)
def test_ttl_accepts_seconds_and_unit_suffixes(text: str, expected: int) -> None:
    assert parse_ttl(text) == timedelta(seconds=expected)


@pytest.mark.parametrize("text", ["0", "-5m", "8 hours", "1w", ""])
def test_ttl_rejects_anything_else(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_ttl(text)


@pytest.fixture
def served_issuer(tmp_path: Path) -> Iterator[DevIssuer]:
    """Run the JWKS endpoint on a free port; the issuer is the URL it answers on."""
    server = JwksServer(load_or_create(tmp_path), ("127.0.0.1", 0))
    issuer = replace(server.dev_issuer, issuer=f"http://127.0.0.1:{server.server_address[1]}")
    server.dev_issuer = issuer
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield issuer
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


async def test_served_discovery_and_jwks_let_a_service_verify_tokens(
    served_issuer: DevIssuer,
) -> None:
    settings = AuthSettings(auth_issuer=served_issuer.issuer, auth_audience=DEFAULT_AUDIENCE)
    verifier = TokenVerifier(settings, clock=FixedClock(NOW))
    try:
        principal = await verifier.verify(served_issuer.mint("teacher1", now=NOW))
    finally:
        await verifier.aclose()

    assert principal.user_id == "teacher1"
