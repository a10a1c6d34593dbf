"""The development token issuer: a local key pair, its JWKS, and a CLI that mints bearer tokens.

Why this exists: in production people sign in through the sch.gr single sign-on; on a laptop and in
tests the services need real, signed tokens all the same, verified by exactly the code production
uses (`shared.auth`). This issuer stands in for the identity provider and nothing else.

Usage::

    python -m shared.devissuer mint --user teacher1                 # prints a token (`make token`)
    python -m shared.devissuer mint --user admin --role ministry_admin --ttl 30m
    python -m shared.devissuer jwks                                  # prints the public JWKS
    python -m shared.devissuer serve --port 8010                     # JWKS + OpenID discovery

Notes:
- The private key is generated on first use into `.local/dev-issuer/` (git-ignored, mode 0600) and
  never leaves the machine; `jwks.json` beside it is what services read with `jwks_file`. The key's
  type decides the algorithm (EC P-256 → ES256, RSA → RS256); `--alg` matters only on creation.
- The key id is the key's RFC 7638 thumbprint, so a regenerated key gets a new `kid` and services
  refetch the JWKS instead of failing on a stale one.
- Global roles go in the `roles` claim (what `shared.auth` reads); unit roles are never in tokens:
  they are grants, made through the units service.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import json
import os
import re
import sys
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from shared.clock import SystemClock
from shared.events.units import GlobalRole

DEFAULT_DIRECTORY = Path(".local/dev-issuer")
DEFAULT_PORT = 8010
DEFAULT_ISSUER = f"http://127.0.0.1:{DEFAULT_PORT}"
DEFAULT_AUDIENCE = "ictcadastre"
DEFAULT_TTL = timedelta(hours=8)
PRIVATE_KEY_FILE = "private_key.pem"
JWKS_FILE = "jwks.json"

Algorithm = Literal["ES256", "RS256"]
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


# RFC 7638 §3.2: the members a thumbprint covers, per key type.
_THUMBPRINT_MEMBERS = {"EC": ("crv", "kty", "x", "y"), "RSA": ("e", "kty", "n")}


def jwk_thumbprint(jwk: Mapping[str, Any]) -> str:
    """Return the RFC 7638 SHA-256 thumbprint of a public EC or RSA JWK (base64url)."""
    required = _THUMBPRINT_MEMBERS[jwk["kty"]]
    # The required members only, in lexicographic order, without whitespace.
    canonical = json.dumps({k: jwk[k] for k in required}, separators=(",", ":"), sort_keys=True)
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass(frozen=True)
class DevIssuer:
    """A signing key and the issuer/audience its tokens name."""

    private_key: PrivateKey
    issuer: str = DEFAULT_ISSUER
    audience: str = DEFAULT_AUDIENCE

    @property
    def algorithm(self) -> Algorithm:
        """Return the JWS algorithm the key's type implies."""
        return "ES256" if isinstance(self.private_key, ec.EllipticCurvePrivateKey) else "RS256"

    def public_jwk(self) -> dict[str, Any]:
        """Return the public key as a JWK with `kid`, `alg` and `use`."""
        public = self.private_key.public_key()
        if isinstance(public, ec.EllipticCurvePublicKey):
            members = ECAlgorithm.to_jwk(public, as_dict=True)
        else:
            members = RSAAlgorithm.to_jwk(public, as_dict=True)
        essential = {k: members[k] for k in _THUMBPRINT_MEMBERS[members["kty"]]}
        kid = jwk_thumbprint(essential)
        return {**essential, "kid": kid, "alg": self.algorithm, "use": "sig"}

    @property
    def kid(self) -> str:
        """Return the key id tokens carry in their header."""
        return str(self.public_jwk()["kid"])

    def jwks(self) -> dict[str, Any]:
        """Return the public JWK Set that verifiers load."""
        return {"keys": [self.public_jwk()]}

    def mint(
        self,
        user_id: str,
        *,
        now: datetime,
        roles: Sequence[GlobalRole] = (),
        ttl: timedelta = DEFAULT_TTL,
    ) -> str:
        """Return a signed token for `user_id`, valid from `now` for `ttl`, carrying `roles`."""
        if not user_id:
            raise ValueError("user_id must not be empty")
        if ttl <= timedelta(0):
            raise ValueError("ttl must be positive")
        issued = int(now.timestamp())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": user_id,
            "iat": issued,
            "exp": issued + int(ttl.total_seconds()),
            "jti": str(uuid.uuid4()),
        }
        if roles:
            claims["roles"] = sorted({GlobalRole(r).value for r in roles})
        return jwt.encode(
            claims, self.private_key, algorithm=self.algorithm, headers={"kid": self.kid}
        )


def _generate(algorithm: Algorithm) -> PrivateKey:
    if algorithm == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=3072)


def _write_atomically(path: Path, data: bytes, *, mode: int, exclusive: bool) -> bool:
    """Write `data` to `path` via a temporary file; with `exclusive`, never replace an existing one.

    Returns False when `exclusive` and another process created `path` first: two `make token` runs
    on a fresh checkout must end up sharing one key, not overwriting each other's.
    """
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        if not exclusive:
            temporary.replace(path)
            return True
        try:
            os.link(temporary, path)
        except FileExistsError:
            return False
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()


def load_or_create(
    directory: Path = DEFAULT_DIRECTORY,
    *,
    algorithm: Algorithm = "ES256",
    issuer: str = DEFAULT_ISSUER,
    audience: str = DEFAULT_AUDIENCE,
) -> DevIssuer:
    """Return the issuer whose key lives in `directory`, generating it first if there is none.

    Also (re)writes `jwks.json` beside the key, so the file always matches the key in use.
    """
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    key_path = directory / PRIVATE_KEY_FILE
    if not key_path.exists():
        pem = _generate(algorithm).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        _write_atomically(key_path, pem, mode=0o600, exclusive=True)
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise ValueError(f"{key_path} holds neither an EC nor an RSA private key")
    if isinstance(key, ec.EllipticCurvePrivateKey) and not isinstance(key.curve, ec.SECP256R1):
        raise ValueError(f"{key_path} is an EC key on {key.curve.name}; ES256 needs P-256")
    issuer_ = DevIssuer(key, issuer=issuer, audience=audience)
    jwks = (json.dumps(issuer_.jwks(), indent=2) + "\n").encode()
    jwks_path = directory / JWKS_FILE
    if not jwks_path.exists() or jwks_path.read_bytes() != jwks:
        _write_atomically(jwks_path, jwks, mode=0o644, exclusive=False)
    return issuer_


class JwksServer(ThreadingHTTPServer):
    """A tiny HTTP server publishing the issuer's JWKS and OpenID discovery document."""

    def __init__(self, dev_issuer: DevIssuer, address: tuple[str, int]) -> None:
        self.dev_issuer = dev_issuer
        super().__init__(address, _JwksHandler)


class _JwksHandler(BaseHTTPRequestHandler):
    server: JwksServer

    def do_GET(self) -> None:
        issuer = self.server.dev_issuer
        if self.path == "/.well-known/jwks.json":
            self._send_json(issuer.jwks())
        elif self.path == "/.well-known/openid-configuration":
            self._send_json(
                {
                    "issuer": issuer.issuer,
                    "jwks_uri": f"{issuer.issuer.rstrip('/')}/.well-known/jwks.json",
                    "id_token_signing_alg_values_supported": [issuer.algorithm],
                }
            )
        else:
            self.send_error(HTTPStatus.NOT_FOUND)

    def _send_json(self, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "max-age=60")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test and terminal output quiet; every request is a JWKS fetch."""


_TTL = re.compile(r"^(\d+)([smhd]?)$")
_TTL_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_ttl(text: str) -> timedelta:
    """Parse a lifetime such as `3600`, `90s`, `30m`, `8h` or `7d`."""
    match = _TTL.match(text.strip())
    if match is None or int(match.group(1)) == 0:
        raise argparse.ArgumentTypeError(f"not a positive lifetime: {text!r} (e.g. 30m, 8h, 7d)")
    return timedelta(seconds=int(match.group(1)) * _TTL_UNITS[match.group(2)])


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m shared.devissuer", description=__doc__)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--dir", type=Path, default=DEFAULT_DIRECTORY, help="key directory")
    common.add_argument("--issuer", default=DEFAULT_ISSUER)
    common.add_argument("--audience", default=DEFAULT_AUDIENCE)
    common.add_argument(
        "--alg", choices=["ES256", "RS256"], default="ES256", help="key type, on creation only"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    mint = commands.add_parser("mint", parents=[common], help="print a token for a user")
    mint.add_argument("--user", required=True, help="the user id (the token's sub)")
    mint.add_argument(
        "--role",
        action="append",
        default=[],
        choices=[r.value for r in GlobalRole],
        help="a global role to carry (repeatable)",
    )
    mint.add_argument("--ttl", type=parse_ttl, default=DEFAULT_TTL, help="lifetime, e.g. 30m, 8h")
    commands.add_parser("jwks", parents=[common], help="print the public JWKS")
    serve = commands.add_parser("serve", parents=[common], help="serve JWKS and discovery")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the process exit status."""
    args = _parser().parse_args(argv)
    issuer = load_or_create(
        args.dir, algorithm=args.alg, issuer=args.issuer, audience=args.audience
    )
    if args.command == "mint":
        roles = [GlobalRole(r) for r in args.role]
        token = issuer.mint(args.user, now=SystemClock().now(), roles=roles, ttl=args.ttl)
        sys.stdout.write(token + "\n")
    elif args.command == "jwks":
        sys.stdout.write(json.dumps(issuer.jwks(), indent=2) + "\n")
    else:
        server = JwksServer(issuer, (args.host, args.port))
        sys.stderr.write(f"dev issuer {issuer.issuer}: JWKS on http://{args.host}:{args.port}\n")
        with contextlib.suppress(KeyboardInterrupt), server:
            server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
