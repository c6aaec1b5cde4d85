"""A real local OIDC issuer for tests: discovery + JWKS over HTTP on 127.0.0.1, and token signing.

The server (uvicorn + Starlette) runs in a background thread with its own event loop, so one
issuer serves sync tests, async tests and servers in other threads alike:

    async with LocalIssuer() as issuer:              # or: with LocalIssuer() as issuer:
        authenticator = Authenticator([AuthProvider(issuer.url, "convex")])
        identity = await authenticator.verify(issuer.sign(email="a@b.c"))

Routes: `/.well-known/openid-configuration` (issuer = `url`, jwks_uri = `url + "/jwks"`) and
`/jwks`. Counters `discovery_requests` / `jwks_requests` let tests check caching; `available`
and `response_delay_s` simulate an issuer that is down or slow; `rotate_key()` changes the kid.
Negative tests: `sign(subject=OMIT, expires_in=None, ...)`, `sign_unsigned()` (alg none) and
`sign_hs256()` (HMAC keyed with the public key). An issuer starts once; `stop()` frees its port.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.threaded_server import ThreadedServer

__all__ = ["OMIT", "LocalIssuer", "SigningKey"]

#: Pass as a claim value (or `subject=OMIT`, ...) to leave that claim out of the token.
OMIT: Any = object()


PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


@dataclass(frozen=True, slots=True)
class SigningKey:
    """One key of the issuer: its `kid`, the algorithm it signs with, and the private key."""

    kid: str
    algorithm: str
    private_key: PrivateKey

    @classmethod
    def generate(cls, algorithm: str = "RS256") -> SigningKey:
        """A fresh key for `algorithm` (RS*/PS*: RSA 2048, ES256/384/512: EC, EdDSA: Ed25519)."""
        return cls(f"key-{secrets.token_hex(4)}", algorithm, _generate_private_key(algorithm))

    def public_jwk(self) -> dict[str, Any]:
        """The public half as a JWK, as an issuer publishes it."""
        algorithm_class = jwt.get_algorithm_by_name(self.algorithm)
        jwk = algorithm_class.to_jwk(self.private_key.public_key(), as_dict=True)
        return {**jwk, "kid": self.kid, "alg": self.algorithm, "use": "sig"}

    def public_pem(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def _generate_private_key(algorithm: str) -> PrivateKey:
    if algorithm[:2] in ("RS", "PS"):
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    curves = {"ES256": ec.SECP256R1(), "ES384": ec.SECP384R1(), "ES512": ec.SECP521R1()}
    if algorithm in curves:
        return ec.generate_private_key(curves[algorithm])
    if algorithm == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"LocalIssuer cannot generate a key for algorithm {algorithm!r}")


class LocalIssuer(ThreadedServer):
    """An OIDC issuer on 127.0.0.1 (random free port) that signs tokens with its current key.

    `start()`/`stop()` (or `with` / `async with`) run and stop the HTTP server; signing works
    without it. `url` is the issuer (`iss`, and the domain of an AuthProvider).
    """

    def __init__(self, algorithm: str = "RS256") -> None:
        super().__init__()
        #: Keys published in the JWKS; the first one signs.
        self.keys: list[SigningKey] = [SigningKey.generate(algorithm)]
        #: When False, both routes answer 503 (the issuer is "down").
        self.available = True
        #: Seconds each response waits before it is sent (a slow issuer).
        self.response_delay_s = 0.0
        self.discovery_requests = 0
        self.jwks_requests = 0

    # -- keys --------------------------------------------------------------------------------

    @property
    def key(self) -> SigningKey:
        """The current signing key."""
        return self.keys[0]

    def rotate_key(self, *, keep_old: bool = False, algorithm: str | None = None) -> SigningKey:
        """Make a new current key (new kid); the old one leaves the JWKS unless `keep_old`."""
        new_key = SigningKey.generate(algorithm or self.key.algorithm)
        self.keys = [new_key, *self.keys] if keep_old else [new_key]
        return new_key

    def jwks(self) -> dict[str, Any]:
        return {"keys": [key.public_jwk() for key in self.keys]}

    def discovery_document(self) -> dict[str, Any]:
        return {
            "issuer": self.url,
            "jwks_uri": f"{self.url}/jwks",
            "id_token_signing_alg_values_supported": sorted({k.algorithm for k in self.keys}),
        }

    # -- tokens ------------------------------------------------------------------------------

    def claims(
        self,
        claims: dict[str, Any] | None = None,
        *,
        subject: Any = "user_1",
        audience: Any = "convex",
        expires_in: float | None = 3600,
        **extra_claims: Any,
    ) -> dict[str, Any]:
        """The payload `sign` would use: iss, sub, aud, iat, nbf, exp, then `claims`, then extra.

        A claim whose value is OMIT (or `expires_in=None`) is left out.
        """
        now = int(time.time())
        payload: dict[str, Any] = {"iss": self.url, "sub": subject, "aud": audience}
        payload |= {"iat": now, "nbf": now}
        payload["exp"] = OMIT if expires_in is None else int(now + expires_in)
        payload |= (claims or {}) | extra_claims
        return {name: value for name, value in payload.items() if value is not OMIT}

    def sign(
        self,
        claims: dict[str, Any] | None = None,
        *,
        subject: Any = "user_1",
        audience: Any = "convex",
        expires_in: float | None = 3600,
        kid: str | None = None,
        algorithm: str | None = None,
        headers: dict[str, Any] | None = None,
        **extra_claims: Any,
    ) -> str:
        """A token signed by the current key, valid by default for an AuthProvider(url, "convex").

        `kid` overrides the header's kid (OMIT drops it); `algorithm` the signing algorithm
        (default: the key's); `headers` adds header fields.
        """
        payload = self.claims(
            claims, subject=subject, audience=audience, expires_in=expires_in, **extra_claims
        )
        header = {"kid": self.key.kid if kid is None else kid, **(headers or {})}
        header = {name: value for name, value in header.items() if value is not OMIT}
        return jwt.encode(
            payload, self.key.private_key, algorithm=algorithm or self.key.algorithm, headers=header
        )

    def sign_unsigned(self, claims: dict[str, Any] | None = None, **kwargs: Any) -> str:
        """An `alg: none` token (empty signature) with `sign`'s default claims."""
        header = {"alg": "none", "typ": "JWT", "kid": self.key.kid}
        return _compact(header, self.claims(claims, **kwargs), lambda _: b"")

    def sign_hs256(
        self, claims: dict[str, Any] | None = None, *, secret: bytes | None = None, **kwargs: Any
    ) -> str:
        """An HS256 token; by default keyed with the public key PEM (key-confusion attack)."""
        key = self.key.public_pem() if secret is None else secret
        header = {"alg": "HS256", "typ": "JWT", "kid": self.key.kid}

        def signer(data: bytes) -> bytes:
            return hmac.new(key, data, hashlib.sha256).digest()

        return _compact(header, self.claims(claims, **kwargs), signer)

    # -- server ------------------------------------------------------------------------------

    def _app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/.well-known/openid-configuration", self._discovery),
                Route("/jwks", self._jwks),
            ]
        )

    async def _discovery(self, request: Request) -> Response:
        self.discovery_requests += 1
        return await self._respond(self.discovery_document)

    async def _jwks(self, request: Request) -> Response:
        self.jwks_requests += 1
        return await self._respond(self.jwks)

    async def _respond(self, body: Callable[[], dict[str, Any]]) -> Response:
        if self.response_delay_s:
            await asyncio.sleep(self.response_delay_s)
        if not self.available:
            return JSONResponse({"error": "issuer unavailable"}, status_code=503)
        return JSONResponse(body())


def _compact(
    header: dict[str, Any], payload: dict[str, Any], signer: Callable[[bytes], bytes]
) -> str:
    """A JWS in compact form, built by hand: PyJWT refuses to make these attack tokens."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}"
    return f"{signing_input}.{_b64(signer(signing_input.encode()))}"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
