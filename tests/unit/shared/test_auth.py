"""Bearer-token verification through a real FastAPI app: every refusal has its own problem type."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi import FastAPI
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from shared.auth import (
    AuthSettings,
    PrincipalDep,
    TokenVerifier,
    use_token_verifier,
)
from shared.clock import FixedClock
from shared.events.units import GlobalRole
from shared.problems import PROBLEM_BASE, install_problem_handlers

ISSUER = "https://sso.test.sch.gr"
AUDIENCE = "ictcadastre"
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
EC_KID = "ec-key-1"
RSA_KID = "rsa-key-1"

EC_KEY = ec.generate_private_key(ec.SECP256R1())
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_EC_KEY = ec.generate_private_key(ec.SECP256R1())


def public_jwk(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    """Return the public half of `key` as a JWK."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        jwk = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
        return {**jwk, "kid": kid, "alg": "ES256", "use": "sig"}
    jwk = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return {**jwk, "kid": kid, "alg": "RS256", "use": "sig"}


def claims(**overrides: Any) -> dict[str, Any]:
    """Return valid claims for `teacher1`, with `overrides` applied (None removes a claim)."""
    base: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "teacher1",
        "iat": int(NOW.timestamp()) - 60,
        "exp": int((NOW + timedelta(hours=1)).timestamp()),
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def es256(payload: dict[str, Any], *, key: ec.EllipticCurvePrivateKey = EC_KEY) -> str:
    return jwt.encode(payload, key, algorithm="ES256", headers={"kid": EC_KID})


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(header: dict[str, Any], payload: dict[str, Any]) -> str:
    return f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(payload).encode())}"


def hs256_with_public_key(payload: dict[str, Any]) -> str:
    """Sign with HMAC keyed by the RSA public key's PEM (the classic key-confusion attack)."""
    secret = RSA_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = unsigned({"alg": "HS256", "typ": "JWT", "kid": RSA_KID}, payload)
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def write_jwks(path: Path, *keys: dict[str, Any]) -> None:
    path.write_text(json.dumps({"keys": list(keys)}))


@pytest.fixture
def jwks_file(tmp_path: Path) -> Path:
    path = tmp_path / "jwks.json"
    write_jwks(path, public_jwk(EC_KEY, EC_KID), public_jwk(RSA_KEY, RSA_KID))
    return path


def make_app(settings: AuthSettings) -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)
    use_token_verifier(app, TokenVerifier(settings, clock=FixedClock(NOW)))

    @app.get("/me")
    async def me(principal: PrincipalDep) -> dict[str, Any]:
        return {"user_id": principal.user_id, "global_roles": sorted(principal.global_roles)}

    return app


@pytest.fixture
async def client(jwks_file: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = AuthSettings(auth_issuer=ISSUER, auth_audience=AUDIENCE, auth_jwks_file=jwks_file)
    transport = httpx.ASGITransport(app=make_app(settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


async def get_me(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.get("/me", headers={"Authorization": f"Bearer {token}"})


def assert_unauthorized(response: httpx.Response, slug: str) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == PROBLEM_BASE + slug
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="ictcadastre", error="invalid_token"')


async def test_valid_es256_token_yields_the_principal_with_known_global_roles(
    client: httpx.AsyncClient,
) -> None:
    token = es256(claims(roles=["auditor", "some-other-app-role", "helpdesk"]))

    response = await get_me(client, token)

    assert response.status_code == 200, response.text
    assert response.json() == {"user_id": "teacher1", "global_roles": ["auditor", "helpdesk"]}


async def test_valid_rs256_token_is_accepted(client: httpx.AsyncClient) -> None:
    token = jwt.encode(claims(sub="head7"), RSA_KEY, algorithm="RS256", headers={"kid": RSA_KID})

    response = await get_me(client, token)

    assert response.status_code == 200, response.text
    assert response.json() == {"user_id": "head7", "global_roles": []}


async def test_request_without_token_gets_a_bare_bearer_challenge(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/me")

    assert response.status_code == 401
    assert response.json()["type"] == PROBLEM_BASE + "token-missing"
    assert response.headers["www-authenticate"] == 'Bearer realm="ictcadastre"'


@pytest.mark.parametrize(
    ("authorization", "slug"),
    [
        ("Basic dXNlcjpwYXNz", "token-malformed"),
        ("Bearer", "token-malformed"),
        ("Bearer not-a-jwt", "token-malformed"),
    ],
)
async def test_malformed_authorization_is_rejected(
    client: httpx.AsyncClient, authorization: str, slug: str
) -> None:
    response = await client.get("/me", headers={"Authorization": authorization})

    assert_unauthorized(response, slug)


async def test_token_with_wrong_signature_is_rejected(client: httpx.AsyncClient) -> None:
    forged = es256(claims(), key=OTHER_EC_KEY)  # the right kid, another key

    assert_unauthorized(await get_me(client, forged), "token-signature-invalid")


async def test_token_with_alg_none_is_rejected(client: httpx.AsyncClient) -> None:
    token = unsigned({"alg": "none", "typ": "JWT", "kid": EC_KID}, claims()) + "."

    assert_unauthorized(await get_me(client, token), "token-algorithm-not-allowed")


async def test_token_hmac_signed_with_the_public_key_is_rejected(
    client: httpx.AsyncClient,
) -> None:
    assert_unauthorized(
        await get_me(client, hs256_with_public_key(claims())), "token-algorithm-not-allowed"
    )


async def test_expired_token_is_rejected(client: httpx.AsyncClient) -> None:
    expired_at = int((NOW - timedelta(minutes=5)).timestamp())

    assert_unauthorized(await get_me(client, es256(claims(exp=expired_at))), "token-expired")


async def test_token_expired_within_the_clock_skew_leeway_is_accepted(
    client: httpx.AsyncClient,
) -> None:
    just_expired = int((NOW - timedelta(seconds=10)).timestamp())

    response = await get_me(client, es256(claims(exp=just_expired)))

    assert response.status_code == 200, response.text


async def test_token_not_valid_yet_is_rejected(client: httpx.AsyncClient) -> None:
    later = int((NOW + timedelta(minutes=10)).timestamp())

    assert_unauthorized(await get_me(client, es256(claims(nbf=later))), "token-not-yet-valid")


async def test_token_for_another_audience_is_rejected(client: httpx.AsyncClient) -> None:
    token = es256(claims(aud="another-application"))

    assert_unauthorized(await get_me(client, token), "token-audience-invalid")


async def test_token_from_another_issuer_is_rejected(client: httpx.AsyncClient) -> None:
    token = es256(claims(iss="https://evil.example"))

    assert_unauthorized(await get_me(client, token), "token-issuer-invalid")


@pytest.mark.parametrize("missing", ["sub", "exp", "aud"])
async def test_token_without_a_required_claim_is_rejected(
    client: httpx.AsyncClient, missing: str
) -> None:
    token = es256(claims(**{missing: None}))

    assert_unauthorized(await get_me(client, token), "token-claim-missing")


async def test_token_signed_by_an_unknown_key_is_rejected(client: httpx.AsyncClient) -> None:
    token = jwt.encode(claims(), OTHER_EC_KEY, algorithm="ES256", headers={"kid": "unknown"})

    assert_unauthorized(await get_me(client, token), "token-key-unknown")


async def test_rotated_key_is_picked_up_by_refetching_on_an_unknown_kid(
    jwks_file: Path,
) -> None:
    settings = AuthSettings(
        auth_issuer=ISSUER,
        auth_audience=AUDIENCE,
        auth_jwks_file=jwks_file,
        auth_jwks_min_refresh_interval_s=0,
    )
    transport = httpx.ASGITransport(app=make_app(settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert (await get_me(client, es256(claims()))).status_code == 200
        write_jwks(jwks_file, public_jwk(OTHER_EC_KEY, "ec-key-2"))
        rotated = jwt.encode(claims(), OTHER_EC_KEY, algorithm="ES256", headers={"kid": "ec-key-2"})

        response = await get_me(client, rotated)

    assert response.status_code == 200, response.text


async def test_unknown_kids_do_not_refetch_keys_more_often_than_the_minimum_interval(
    client: httpx.AsyncClient, jwks_file: Path
) -> None:
    assert (await get_me(client, es256(claims()))).status_code == 200
    write_jwks(jwks_file, public_jwk(OTHER_EC_KEY, "ec-key-2"))
    rotated = jwt.encode(claims(), OTHER_EC_KEY, algorithm="ES256", headers={"kid": "ec-key-2"})

    # Within the 30 s minimum interval, the cached keys stand and still verify old tokens.
    assert_unauthorized(await get_me(client, rotated), "token-key-unknown")
    assert (await get_me(client, es256(claims()))).status_code == 200


async def test_symmetric_keys_in_the_jwks_are_never_used(tmp_path: Path) -> None:
    secret = b"a-shared-secret-of-at-least-32-bytes!!"
    path = tmp_path / "jwks.json"
    write_jwks(
        path,
        {"kty": "oct", "kid": "hmac", "k": b64url(secret), "alg": "HS256"},
        public_jwk(EC_KEY, EC_KID),
    )
    settings = AuthSettings(auth_issuer=ISSUER, auth_audience=AUDIENCE, auth_jwks_file=path)
    token = jwt.encode(claims(), secret, algorithm="HS256", headers={"kid": "hmac"})
    transport = httpx.ASGITransport(app=make_app(settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert_unauthorized(await get_me(client, token), "token-algorithm-not-allowed")
        assert (await get_me(client, es256(claims()))).status_code == 200


async def test_unreachable_keys_answer_503_not_401(tmp_path: Path) -> None:
    settings = AuthSettings(
        auth_issuer=ISSUER, auth_audience=AUDIENCE, auth_jwks_file=tmp_path / "absent.json"
    )
    transport = httpx.ASGITransport(app=make_app(settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await get_me(client, es256(claims()))

    assert response.status_code == 503
    assert response.json()["type"] == PROBLEM_BASE + "auth-keys-unavailable"


async def test_roles_claim_is_ignored_when_disabled(jwks_file: Path) -> None:
    settings = AuthSettings(
        auth_issuer=ISSUER, auth_audience=AUDIENCE, auth_jwks_file=jwks_file, auth_roles_claim=None
    )
    verifier = TokenVerifier(settings, clock=FixedClock(NOW))

    principal = await verifier.verify(es256(claims(roles=[GlobalRole.MINISTRY_ADMIN.value])))

    assert principal.global_roles == frozenset()


async def test_service_started_before_the_jwks_existed_recovers_once_it_appears(
    tmp_path: Path,
) -> None:
    path = tmp_path / "jwks.json"
    settings = AuthSettings(
        auth_issuer=ISSUER,
        auth_audience=AUDIENCE,
        auth_jwks_file=path,
        auth_jwks_min_refresh_interval_s=0,
    )
    transport = httpx.ASGITransport(app=make_app(settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert (await get_me(client, es256(claims()))).status_code == 503
        write_jwks(path, public_jwk(EC_KEY, EC_KID))

        response = await get_me(client, es256(claims()))

    assert response.status_code == 200, response.text
