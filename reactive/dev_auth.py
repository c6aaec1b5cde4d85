"""The development identity provider of `reactive dev`: an OIDC issuer inside the server itself,
so apps sign in locally without a Clerk account. Never part of `reactive serve`.

Invariant: tokens are ordinary RS256 JWTs (`iss` = the issuer URL, `aud` = "convex", 1 h) that
our Authenticator verifies like any other, over HTTP against this issuer's discovery and JWKS;
the RSA key lives in `<project>/.reactive/dev_auth_key.pem` (PKCS#8 PEM, mode 0600), so tokens
and the key id (its RFC 7638 thumbprint) survive restarts. Routes, under DEV_AUTH_PATH:
`GET /.well-known/openid-configuration`, `GET /jwks`, `POST /token` ({"subject", "name"?,
"email"?, "pictureUrl"?} -> {"token"}; loopback callers only) and a sign-in page at `GET /`.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import ipaddress
import json
import os
import secrets
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from reactive.auth import AuthProvider
from reactive.errors import ErrorCode, PersistenceError, ValidationError
from reactive.http_errors import HttpError, error_response

__all__ = [
    "DEV_AUTH_PATH",
    "KEY_FILE",
    "TASKBOARD_DIR",
    "TASKBOARD_PATH",
    "DevIdentityProvider",
    "dev_issuer_url",
    "dev_only_routes",
    "is_loopback_host",
]

#: Where the issuer is mounted; its URL is `http://<host>:<port>` + this.
DEV_AUTH_PATH = "/_dev/auth"

#: The key file, relative to the project directory.
KEY_FILE = Path(".reactive") / "dev_auth_key.pem"

#: The taskboard example (present in a source checkout) and where `reactive dev` serves it.
TASKBOARD_DIR = Path(__file__).resolve().parent.parent / "examples" / "taskboard"
TASKBOARD_PATH = "/examples/taskboard"

AUDIENCE = "convex"
TOKEN_TTL_S = 3600.0
ALGORITHM = "RS256"
RSA_KEY_BITS = 2048  # the Authenticator's minimum key length

MAX_SUBJECT_CHARS = 256
MAX_PROFILE_CHARS = 1024
MAX_BODY_BYTES = 16_384

#: Token request field -> the OIDC claim it becomes ("subject" is `sub`, handled apart).
_PROFILE_CLAIMS = {"name": "name", "email": "email", "pictureUrl": "picture"}

_WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})


# -- the issuer URL ----------------------------------------------------------------------------


def dev_issuer_url(host: str, port: int) -> str:
    """The issuer URL for a server bound to `host:port`, as the server can reach itself.

    A wildcard or `localhost` bind means 127.0.0.1. Any other host must be a loopback address:
    the Authenticator accepts plain-http issuers only on loopback. Raises ValueError otherwise.
    """
    if host in _WILDCARD_HOSTS or host == "localhost":
        return f"http://127.0.0.1:{port}{DEV_AUTH_PATH}"
    if not is_loopback_host(host):
        raise ValueError(
            f"the dev identity provider needs a loopback or wildcard host (127.0.0.1, 0.0.0.0), "
            f"got {host!r}: its issuer URL must be plain http on loopback"
        )
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}{DEV_AUTH_PATH}"


def is_loopback_host(host: str) -> bool:
    """Whether `host` (a name or an address, IPv6 in brackets or not) is this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


# -- the key -----------------------------------------------------------------------------------


def _load_or_create_key(path: Path) -> rsa.RSAPrivateKey:
    """The RSA key at `path`, created first if there is none."""
    if not path.exists():
        _create_key_file(path)
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise PersistenceError(
            f"cannot read the dev auth key {path}: {exc}; delete the file to make a new key "
            "(tokens issued with the old one stop working)"
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey) or key.key_size < RSA_KEY_BITS:
        raise PersistenceError(
            f"the dev auth key {path} is not an RSA key of at least {RSA_KEY_BITS} bits; "
            "delete the file to make a new one"
        )
    return key


def _create_key_file(path: Path) -> None:
    """Write a new key so that it appears whole or not at all, and never replaces one: two
    servers starting together both end up using whichever key was linked first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_BITS)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(pem)
        # If another process won the race, its key is the one.
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _public_jwk(key: rsa.RSAPrivateKey) -> dict[str, Any]:
    jwk: dict[str, Any] = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return {"kty": "RSA", "n": jwk["n"], "e": jwk["e"]}


def _thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638: SHA-256 of the required members in lexicographic order, without spaces."""
    canonical = json.dumps({name: jwk[name] for name in ("e", "kty", "n")}, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


# -- the provider ------------------------------------------------------------------------------


class DevIdentityProvider:
    """An OIDC issuer at `issuer_url` signing with the key at `key_path` (created if absent).

    `provider` is the AuthProvider the server's Authenticator must trust; `routes()` are the
    issuer's routes relative to DEV_AUTH_PATH; `sign()` mints a token directly.
    """

    def __init__(
        self,
        issuer_url: str,
        key_path: str | Path,
        *,
        audience: str = AUDIENCE,
        token_ttl_s: float = TOKEN_TTL_S,
    ) -> None:
        if token_ttl_s <= 0:
            raise ValueError(f"token_ttl_s must be positive, got {token_ttl_s!r}")
        self.issuer = issuer_url[:-1] if issuer_url.endswith("/") else issuer_url
        #: Validates the URL too (http only on loopback), so a bad issuer fails here.
        self.provider = AuthProvider(self.issuer, audience)
        self.key_path = Path(key_path)
        self.token_ttl_s = token_ttl_s
        self._key = _load_or_create_key(self.key_path)
        jwk = _public_jwk(self._key)
        self.kid = _thumbprint(jwk)
        self._jwk = {**jwk, "kid": self.kid, "alg": ALGORITHM, "use": "sig"}

    @classmethod
    def for_server(cls, root: str | Path, host: str, port: int) -> DevIdentityProvider:
        """The provider of a dev server for the project at `root` bound to `host:port`."""
        return cls(dev_issuer_url(host, port), Path(root) / KEY_FILE)

    # -- tokens ------------------------------------------------------------------------------

    def sign(
        self,
        subject: str,
        name: str | None = None,
        email: str | None = None,
        *,
        picture_url: str | None = None,
    ) -> str:
        """A token for `subject` valid for `token_ttl_s`, with the profile claims given."""
        profile = {"name": name, "email": email, "pictureUrl": picture_url}
        request = {"subject": subject} | {k: v for k, v in profile.items() if v is not None}
        return self._token(_checked_token_request(request))

    def _token(self, request: dict[str, str]) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": request["subject"],
            "aud": self.provider.application_id,
            "iat": now,
            "nbf": now,
            "exp": now + int(self.token_ttl_s),
        }
        for field, claim in _PROFILE_CLAIMS.items():
            if field in request:
                claims[claim] = request[field]
        return jwt.encode(claims, self._key, algorithm=ALGORITHM, headers={"kid": self.kid})

    # -- documents ---------------------------------------------------------------------------

    def discovery_document(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "jwks_uri": f"{self.issuer}/jwks",
            "token_endpoint": f"{self.issuer}/token",
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [ALGORITHM],
        }

    def jwks(self) -> dict[str, Any]:
        return {"keys": [dict(self._jwk)]}

    # -- routes ------------------------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        """The issuer's routes, to mount at DEV_AUTH_PATH."""
        return [
            Route("/.well-known/openid-configuration", self._discovery, methods=["GET"]),
            Route("/jwks", self._jwks, methods=["GET"]),
            Route("/token", self._token_endpoint, methods=["POST"]),
            Route("/", self._sign_in_page, methods=["GET"]),
        ]

    async def _discovery(self, request: Request) -> Response:
        return JSONResponse(self.discovery_document())

    async def _jwks(self, request: Request) -> Response:
        return JSONResponse(self.jwks())

    async def _token_endpoint(self, request: Request) -> Response:
        refusal = _refusal(request)
        if refusal is not None:
            return error_response(HttpError("Forbidden", refusal, code=ErrorCode.FORBIDDEN))
        try:
            token_request = _checked_token_request(await _json_body(request))
        except ValidationError as exc:
            return error_response(exc)
        return JSONResponse({"token": self._token(token_request)})

    async def _sign_in_page(self, request: Request) -> Response:
        return HTMLResponse(_SIGN_IN_PAGE)


def dev_only_routes(provider: DevIdentityProvider) -> list[BaseRoute]:
    """What `reactive dev` serves besides the API: the issuer at DEV_AUTH_PATH and, in a source
    checkout, the taskboard example at TASKBOARD_PATH. Place them before catch-all routes."""
    routes: list[BaseRoute] = [
        Route(DEV_AUTH_PATH, _redirect_to(f"{DEV_AUTH_PATH}/"), methods=["GET"]),
        Mount(DEV_AUTH_PATH, routes=provider.routes()),
    ]
    if TASKBOARD_DIR.is_dir():
        routes += [
            Route(TASKBOARD_PATH, _redirect_to(f"{TASKBOARD_PATH}/"), methods=["GET"]),
            Mount(TASKBOARD_PATH, app=StaticFiles(directory=TASKBOARD_DIR, html=True)),
        ]
    return routes


def _redirect_to(location: str) -> Any:
    async def redirect(request: Request) -> Response:
        return RedirectResponse(location, status_code=308)

    return redirect


# -- token requests ----------------------------------------------------------------------------


def _refusal(request: Request) -> str | None:
    """Why a token request is refused, or None. Anyone may become anyone here, so only this
    machine may ask, and not a web page of another site (the API allows every Origin)."""
    client = request.client.host if request.client is not None else ""
    if not is_loopback_host(client):
        return f"dev tokens are issued only to loopback clients, not {client or 'unknown'}"
    origin = request.headers.get("origin")
    if origin is not None and not is_loopback_host(urlsplit(origin).hostname or ""):
        return f"dev tokens are not issued to pages of other sites (Origin {origin})"
    return None


async def _json_body(request: Request) -> object:
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise ValidationError(f"token request body exceeds {MAX_BODY_BYTES} bytes")
    try:
        return json.loads(body)
    except ValueError:
        raise ValidationError(
            'token request body must be JSON such as {"subject": "user_1"}'
        ) from None


def _checked_token_request(body: object) -> dict[str, str]:
    """`body` if it is a valid token request; ValidationError naming the bad field otherwise."""
    if not isinstance(body, dict):
        raise ValidationError(f"token request must be a JSON object, got {type(body).__name__}")
    unknown = sorted(set(body) - {"subject", *_PROFILE_CLAIMS})
    if unknown:
        allowed = ", ".join(["subject", *_PROFILE_CLAIMS])
        raise ValidationError(f"unknown token request field(s) {unknown}; allowed: {allowed}")
    if "subject" not in body:
        raise ValidationError("token request needs a 'subject' (the user id, e.g. 'user_1')")
    _check_text("subject", body["subject"], MAX_SUBJECT_CHARS)
    for field in _PROFILE_CLAIMS:
        if field in body:
            _check_text(field, body[field], MAX_PROFILE_CHARS)
    if "email" in body and "@" not in body["email"]:
        raise ValidationError(f"'email' must be an email address, got {body['email']!r}")
    return dict(body)


def _check_text(field: str, value: object, limit: int) -> None:
    if not isinstance(value, str):
        raise ValidationError(f"{field!r} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise ValidationError(f"{field!r} must not be blank")
    if len(value) > limit:
        raise ValidationError(f"{field!r} must be at most {limit} characters, got {len(value)}")
    if any(not character.isprintable() for character in value):
        raise ValidationError(f"{field!r} must not contain control characters")


# A page for signing in by hand: it shows a token to paste into `Authorization: Bearer ...`.
_SIGN_IN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>reactive dev sign-in</title>
<style>body{font:15px system-ui,sans-serif;max-width:40rem;margin:2rem auto}
label{display:block;margin:.5rem 0}input{width:100%}textarea{width:100%;height:8rem}</style>
</head><body>
<h1>Development sign-in</h1>
<p>Tokens from this built-in identity provider of <code>reactive dev</code> are accepted only by
this development server. Apps get them with <code>POST token</code>.</p>
<form id="form">
<label>User id (subject) <input name="subject" required value="user_dev"></label>
<label>Name <input name="name" value="Dev User"></label>
<label>Email <input name="email" type="email" value="dev@example.test"></label>
<button>Get a token</button>
</form>
<textarea id="token" readonly placeholder="token"></textarea>
<script>
document.getElementById("form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const fields = Object.fromEntries(new FormData(event.target));
  for (const [name, value] of Object.entries(fields)) if (!value.trim()) delete fields[name];
  const response = await fetch("token", {method: "POST", body: JSON.stringify(fields),
                                          headers: {"content-type": "application/json"}});
  const body = await response.json();
  document.getElementById("token").value = body.token ?? body.message;
});
</script>
</body></html>
"""
