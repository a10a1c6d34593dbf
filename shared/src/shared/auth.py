"""Authentication: bearer JWTs verified against the issuer's keys, turned into a `Principal`.

Why this exists: every service accepts the same tokens (in production from the sch.gr single
sign-on, here from `shared.devissuer`) and must reject the same forged, stale or misdirected ones,
each with a stable problem type a client can act on. Only asymmetric signatures are accepted
(RS256, ES256): a token's `alg` header is checked against that list *before* any key is chosen, so
`alg=none` and the HS256-signed-with-the-public-key trick never reach a verifier.

Usage::

    verifier = TokenVerifier(settings, clock=clock)     # in main.py's lifespan
    use_token_verifier(app, verifier)
    ...
    @router.get("/me")
    async def me(principal: PrincipalDep) -> ...:

Notes:
- Keys come from a JWKS: a local file (development), an explicit URL, or the issuer's OpenID
  discovery document. PyJWT's `PyJWKClient` fetches with blocking urllib, which would stall the
  event loop, so keys are fetched here with httpx and parsed with PyJWT's `PyJWKSet`. An unknown
  `kid` triggers one refetch (rate-limited, so random kids cannot make us hammer the issuer): that
  is how a key rotation is picked up.
- Expiry, not-before and issued-at are checked against the injected `Clock`, with a small leeway
  for clock skew, so tests can stand at any instant.
- If no keys can be obtained at all, the answer is 503, not 401: the token may be fine, the client
  should retry rather than sign in again.
- Global roles may also arrive in a token claim (`roles` by default): the dev issuer uses that to
  bootstrap the first ministry administrator. Set `auth_roles_claim=None` where the identity
  provider's roles mean something else; the grants projected in `shared.authz` are then the only
  source.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import httpx
import jwt
import structlog
from fastapi import Depends, FastAPI, Request
from pydantic_settings import BaseSettings

from shared.clock import Clock, SystemClock
from shared.events.units import GlobalRole
from shared.problems import Problem

ALLOWED_ALGORITHMS = frozenset({"RS256", "ES256"})
REALM = "ictcadastre"
_VERIFIED_MAX = 4096  # verified tokens remembered (the cache is emptied when full)

log = structlog.get_logger(__name__)


class AuthSettings(BaseSettings):
    """Where tokens come from and what they must say; a base of each service's `Settings`.

    With the service's env prefix: ``UNITS_AUTH_ISSUER``, ``UNITS_AUTH_AUDIENCE``,
    ``UNITS_AUTH_JWKS_FILE`` (development: ``.local/dev-issuer/jwks.json``) or
    ``UNITS_AUTH_JWKS_URL``; with neither, the JWKS URL comes from the issuer's discovery document.
    """

    auth_issuer: str
    auth_audience: str
    auth_jwks_file: Path | None = None
    auth_jwks_url: str | None = None
    auth_roles_claim: str | None = "roles"
    auth_leeway_s: float = 30.0
    # How long fetched keys are trusted before a refetch, and the least time between refetches.
    auth_jwks_max_age_s: float = 3600.0
    auth_jwks_min_refresh_interval_s: float = 30.0
    auth_http_timeout_s: float = 5.0


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the identity provider's user id and any global roles the token carries."""

    user_id: str
    global_roles: frozenset[GlobalRole] = field(default_factory=frozenset)


_TITLES = {
    "token-missing": "A bearer token is required",
    "token-malformed": "The bearer token is malformed",
    "token-algorithm-not-allowed": "The token's signing algorithm is not accepted",
    "token-key-unknown": "The token was signed with an unknown key",
    "token-signature-invalid": "The token's signature is invalid",
    "token-expired": "The token has expired",
    "token-not-yet-valid": "The token is not valid yet",
    "token-issuer-invalid": "The token comes from another issuer",
    "token-audience-invalid": "The token is meant for another audience",
    "token-claim-missing": "The token lacks a required claim",
    "token-invalid": "The token is invalid",
}


def _unauthorized(slug: str, detail: str | None = None) -> Problem:
    title = _TITLES[slug]
    # RFC 6750 §3.1: a request without credentials gets the bare challenge, no error code.
    challenge = f'Bearer realm="{REALM}"'
    if slug != "token-missing":
        description = title.replace('"', "'")
        challenge += f', error="invalid_token", error_description="{description}"'
    return Problem(401, slug, title, detail, headers={"WWW-Authenticate": challenge})


class _KeysUnavailableError(Exception):
    """No JWKS could be loaded and none is cached."""


class JwksCache:
    """The issuer's signing keys from a file or URL, refreshed when old or on an unknown `kid`."""

    def __init__(self, settings: AuthSettings, http: httpx.AsyncClient | None = None) -> None:
        if settings.auth_jwks_file is not None and settings.auth_jwks_url is not None:
            raise ValueError("set auth_jwks_file or auth_jwks_url, not both")
        self._settings = settings
        self._http = http
        self._owns_http = http is None
        self._keys: list[jwt.PyJWK] = []
        self._loaded_at: float | None = None  # monotonic seconds
        self._attempted_at: float | None = None
        self._lock = asyncio.Lock()

    async def aclose(self) -> None:
        """Close the HTTP client if this cache created it."""
        if self._http is not None and self._owns_http:
            await self._http.aclose()
            self._http = None

    async def key_for(self, kid: str | None, algorithm: str) -> jwt.PyJWK:
        """Return the key that signed a token with this header, refetching once if unknown."""
        max_age = self._settings.auth_jwks_max_age_s
        if self._loaded_at is None or time.monotonic() - self._loaded_at > max_age:
            await self._refresh()
        key = self._find(kid, algorithm)
        if key is None:
            await self._refresh()
            key = self._find(kid, algorithm)
        if not self._keys:
            raise _KeysUnavailableError("no keys loaded yet")
        if key is None:
            raise _unauthorized("token-key-unknown", f"no {algorithm} key with kid {kid!r}")
        return key

    def _find(self, kid: str | None, algorithm: str) -> jwt.PyJWK | None:
        candidates = [k for k in self._keys if k.algorithm_name == algorithm]
        if kid is not None:
            return next((k for k in candidates if k.key_id == kid), None)
        # A token without `kid` is acceptable only when the choice of key is unambiguous.
        return candidates[0] if len(candidates) == 1 else None

    async def _refresh(self) -> None:
        async with self._lock:
            now = time.monotonic()
            # Without any key every request fails anyway, so retry sooner (a service started
            # before the first `make token` wrote the JWKS recovers within a second).
            interval = self._settings.auth_jwks_min_refresh_interval_s
            if not self._keys:
                interval = min(interval, 1.0)
            if self._attempted_at is not None and now - self._attempted_at < interval:
                return
            self._attempted_at = now
            try:
                document = await self._fetch()
                self._keys = _usable_keys(document)
                self._loaded_at = now
            except (httpx.HTTPError, OSError, ValueError, jwt.PyJWTError) as exc:
                # Keep serving with the keys we have: an issuer hiccup must not log everyone out.
                log.warning(
                    "jwks_refresh_failed", error=repr(exc), has_cached_keys=bool(self._keys)
                )
                if not self._keys:
                    raise _KeysUnavailableError(repr(exc)) from exc

    async def _fetch(self) -> Mapping[str, Any]:
        settings = self._settings
        if settings.auth_jwks_file is not None:
            text = await asyncio.to_thread(settings.auth_jwks_file.read_text, "utf-8")
            return _json_object(text)
        url = settings.auth_jwks_url or await self._discover_jwks_url()
        return _json_object((await self._get(url)).text)

    async def _discover_jwks_url(self) -> str:
        issuer = self._settings.auth_issuer.rstrip("/")
        document = _json_object(
            (await self._get(f"{issuer}/.well-known/openid-configuration")).text
        )
        # OpenID Connect Discovery §4.3: the document must name exactly the issuer we trust.
        if document.get("issuer", "").rstrip("/") != issuer:
            raise ValueError(f"discovery document names issuer {document.get('issuer')!r}")
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str):
            raise ValueError("discovery document has no jwks_uri")
        return jwks_uri

    async def _get(self, url: str) -> httpx.Response:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=self._settings.auth_http_timeout_s)
            self._owns_http = True
        response = await self._http.get(url)
        response.raise_for_status()
        return response


def _json_object(text: str) -> dict[str, Any]:
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError("expected a JSON object")
    return value


def _usable_keys(document: Mapping[str, Any]) -> list[jwt.PyJWK]:
    """Return the signature keys of a JWKS for the accepted algorithms, ignoring all others."""
    keys = jwt.PyJWKSet.from_dict(dict(document)).keys
    usable = [
        k
        for k in keys
        if k.algorithm_name in ALLOWED_ALGORITHMS and k.public_key_use in (None, "sig")
    ]
    if not usable:
        raise ValueError("the JWKS holds no RS256 or ES256 signing key")
    return usable


class TokenVerifier:
    """Verify bearer tokens for one issuer and audience."""

    def __init__(
        self,
        settings: AuthSettings,
        *,
        clock: Clock | None = None,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self._settings = settings
        self._clock: Clock = clock or SystemClock()
        self._keys = JwksCache(settings, http)
        # Token text → its principal and claims, once its signature and claims were verified: a
        # client sends the same token with every request until it expires. Its times are checked
        # again on every use (against the clock); a token never verified is never in here.
        self._verified: dict[str, tuple[Principal, Mapping[str, Any]]] = {}

    async def aclose(self) -> None:
        """Release the HTTP client used to fetch keys."""
        await self._keys.aclose()

    async def verify(self, token: str) -> Principal:
        """Return the principal a token names, or raise a 401 `Problem` saying why it is refused."""
        cached = self._verified.get(token)
        if cached is not None:
            principal, claims = cached
            self._check_times(claims)
            return principal
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError as exc:
            raise _unauthorized("token-malformed", str(exc)) from None
        algorithm = header.get("alg")
        if algorithm not in ALLOWED_ALGORITHMS:
            raise _unauthorized(
                "token-algorithm-not-allowed", f"alg {algorithm!r}; accepted: RS256, ES256"
            )
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise _unauthorized("token-malformed", "kid is not a string")
        try:
            key = await self._keys.key_for(kid, algorithm)
        except _KeysUnavailableError as exc:
            raise Problem(
                503,
                "auth-keys-unavailable",
                "The token issuer's keys cannot be obtained",
                str(exc),
                headers={"Retry-After": "5"},
            ) from None
        claims = self._decode(token, key, algorithm)
        self._check_times(claims)
        principal = Principal(user_id=claims["sub"], global_roles=self._global_roles(claims))
        if len(self._verified) >= _VERIFIED_MAX:
            self._verified.clear()
        self._verified[token] = (principal, claims)
        return principal

    def _decode(self, token: str, key: jwt.PyJWK, algorithm: str) -> dict[str, Any]:
        settings = self._settings
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                audience=settings.auth_audience,
                issuer=settings.auth_issuer,
                options={
                    "require": ["exp", "iat", "iss", "aud", "sub"],
                    # Times are checked in _check_times against the injected clock.
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
        except jwt.InvalidSignatureError:
            raise _unauthorized("token-signature-invalid") from None
        except jwt.InvalidAlgorithmError as exc:
            raise _unauthorized("token-algorithm-not-allowed", str(exc)) from None
        except jwt.InvalidAudienceError:
            raise _unauthorized(
                "token-audience-invalid", f"expected {settings.auth_audience!r}"
            ) from None
        except jwt.InvalidIssuerError:
            raise _unauthorized(
                "token-issuer-invalid", f"expected {settings.auth_issuer!r}"
            ) from None
        except jwt.MissingRequiredClaimError as exc:
            raise _unauthorized("token-claim-missing", str(exc)) from None
        except jwt.DecodeError as exc:
            raise _unauthorized("token-malformed", str(exc)) from None
        except jwt.InvalidTokenError as exc:
            raise _unauthorized("token-invalid", str(exc)) from None
        if not isinstance(claims["sub"], str) or not claims["sub"]:
            raise _unauthorized("token-claim-missing", "sub must be a non-empty string")
        return claims

    def _check_times(self, claims: Mapping[str, Any]) -> None:
        now = self._clock.now().timestamp()
        leeway = self._settings.auth_leeway_s
        for name in ("exp", "iat", "nbf"):
            value = claims.get(name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float)
            ):
                raise _unauthorized("token-malformed", f"{name} must be a number")
        if claims["exp"] <= now - leeway:
            raise _unauthorized("token-expired")
        if claims.get("nbf", now) > now + leeway or claims["iat"] > now + leeway:
            raise _unauthorized("token-not-yet-valid")

    def _global_roles(self, claims: Mapping[str, Any]) -> frozenset[GlobalRole]:
        if self._settings.auth_roles_claim is None:
            return frozenset()
        raw = claims.get(self._settings.auth_roles_claim)
        names = raw.split() if isinstance(raw, str) else raw if isinstance(raw, list) else []
        known = {role.value for role in GlobalRole}
        # Roles of other applications may share the claim: keep ours, ignore the rest.
        return frozenset(GlobalRole(n) for n in names if isinstance(n, str) and n in known)


def bearer_token(authorization: str | None) -> str:
    """Return the token of an `Authorization: Bearer …` header, or raise a 401 `Problem`."""
    if not authorization:
        raise _unauthorized("token-missing")
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        raise _unauthorized("token-malformed", "expected 'Authorization: Bearer <token>'")
    return token


def use_token_verifier(app: FastAPI, verifier: TokenVerifier) -> None:
    """Make `verifier` the one `PrincipalDep` uses in `app` (call from main.py)."""
    app.state.token_verifier = verifier


async def authenticate(request: Request) -> Principal:
    """Return the caller's principal from the request's bearer token (a FastAPI dependency)."""
    verifier = getattr(request.app.state, "token_verifier", None)
    if not isinstance(verifier, TokenVerifier):
        raise RuntimeError("no TokenVerifier installed: call use_token_verifier(app, …) in main.py")
    return await verifier.verify(bearer_token(request.headers.get("authorization")))


PrincipalDep = Annotated[Principal, Depends(authenticate)]
