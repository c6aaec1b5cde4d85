"""OIDC JWT verification: turns a bearer token into an `Identity`, or raises `AuthError`.

Invariant: a token is accepted only if an asymmetric signature by a key from its issuer's JWKS
verifies, its issuer is a configured provider, `aud` contains that provider's application id,
`exp` and `sub` are present, and `exp`/`nbf`/`iat` hold (with leeway). Keys come from OIDC
discovery (`{domain}/.well-known/openid-configuration` -> `jwks_uri`), cached per issuer.
"""

from __future__ import annotations

import asyncio
import copy
import ipaddress
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt

from reactive.errors import ErrorCode, ReactiveError, ValidationError
from reactive.types import Value

__all__ = [
    "ALLOWED_ALGORITHMS",
    "AuthError",
    "AuthFailure",
    "AuthProvider",
    "Authenticator",
    "Identity",
    "providers_from_config",
]

#: Signature algorithms a token may use. Never `none`, never symmetric (HS*): with those, anyone
#: holding the public JWKS (i.e. everyone) could mint tokens.
ALLOWED_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)

#: Longest token accepted; real ID tokens are a few KiB. Bounds the work a garbage token costs.
MAX_TOKEN_CHARS = 65_536

#: Timeout of each discovery / JWKS request.
HTTP_TIMEOUT_S = 5.0

#: The key type (and EC curves) that can verify each algorithm.
_KEY_TYPES: dict[str, tuple[str, frozenset[str] | None]] = {
    **{alg: ("RSA", None) for alg in ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")},
    "ES256": ("EC", frozenset({"P-256"})),
    "ES384": ("EC", frozenset({"P-384"})),
    "ES512": ("EC", frozenset({"P-521"})),
    "EdDSA": ("OKP", frozenset({"Ed25519", "Ed448"})),
}

_LOOPBACK_NAMES = frozenset({"localhost"})


class AuthFailure(StrEnum):
    """Why a token was refused; the value is the AuthError's stable `short_msg`."""

    INVALID_TOKEN = "InvalidToken"  # not a JWT, or a claim has the wrong type
    MISSING_CLAIM = "MissingClaim"  # iss, sub or exp absent
    INVALID_SIGNATURE = "InvalidSignature"  # tampered header, payload or signature
    TOKEN_EXPIRED = "TokenExpired"
    TOKEN_NOT_YET_VALID = "TokenNotYetValid"  # nbf or iat in the future
    UNKNOWN_ISSUER = "UnknownIssuer"  # iss is not a configured provider
    INVALID_AUDIENCE = "InvalidAudience"  # aud absent or lacks the application id
    UNSUPPORTED_ALGORITHM = "UnsupportedAlgorithm"  # none, HS*, unknown, or unfit for the key
    UNKNOWN_KEY = "UnknownKey"  # kid not in the issuer's JWKS (even after a refetch)
    JWKS_UNAVAILABLE = "JwksUnavailable"  # discovery or JWKS could not be fetched


class AuthError(ReactiveError):
    """A token was refused; `failure` (= `short_msg`) says why. Messages never hold the token."""

    code = ErrorCode.UNAUTHENTICATED
    short_msg = "InvalidToken"

    def __init__(self, failure: AuthFailure, msg: str) -> None:
        super().__init__(msg, short_msg=failure.value)
        self.failure = failure


# -- providers -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuthProvider:
    """One trusted OIDC issuer: `domain` is its issuer URL, `application_id` the required `aud`."""

    domain: str
    application_id: str

    def __post_init__(self) -> None:
        first = next(_provider_problems(self.domain, self.application_id), None)
        if first is not None:
            raise ValueError(" ".join(first))

    @property
    def issuer(self) -> str:
        """The domain as tokens' `iss` is compared with it: one trailing `/` ignored."""
        return _normalize_issuer(self.domain)


def _provider_problems(domain: object, application_id: object) -> Iterator[tuple[str, str]]:
    """(field, problem) for each field of a provider that is not acceptable."""
    problem = _domain_problem(domain)
    if problem is not None:
        yield "domain", problem
    if not isinstance(application_id, str) or not application_id:
        yield "application_id", f"must be a non-empty string, got {application_id!r}"


def _domain_problem(domain: object) -> str | None:
    if not isinstance(domain, str) or not domain:
        return f"must be a non-empty issuer URL string, got {domain!r}"
    parts = urlsplit(domain)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"must be an http(s) URL such as https://issuer.example.com, got {domain!r}"
    if parts.query or parts.fragment:
        return f"must not have a query or fragment, got {domain!r}"
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        return f"must use https (http is allowed only for loopback hosts), got {domain!r}"
    return None


def _is_loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _normalize_issuer(issuer: str) -> str:
    return issuer[:-1] if issuer.endswith("/") else issuer


_APPLICATION_ID_SPELLINGS = ("application_id", "applicationID")


def providers_from_config(entries: list[dict[str, Any]]) -> list[AuthProvider]:
    """Providers from `auth_config` entries `{"domain", "application_id" | "applicationID"}`."""
    if not isinstance(entries, list):
        raise ValueError(f"auth providers must be a list of dicts, got {type(entries).__name__}")
    return [_provider_from_entry(index, entry) for index, entry in enumerate(entries)]


def _provider_from_entry(index: int, entry: object) -> AuthProvider:
    where = f"auth provider entry {index}"
    if not isinstance(entry, Mapping):
        raise ValueError(f"{where} must be a dict, got {type(entry).__name__}")
    unknown = sorted(set(entry) - {"domain", *_APPLICATION_ID_SPELLINGS})
    if unknown:
        raise ValueError(
            f"{where} has unknown field(s) {unknown}; only 'domain' and "
            "'applicationID' (or 'application_id') are supported"
        )
    spelled = [name for name in _APPLICATION_ID_SPELLINGS if name in entry]
    if len(spelled) > 1:
        raise ValueError(f"{where} has both 'application_id' and 'applicationID'; keep one")
    if "domain" not in entry:
        raise ValueError(f"{where} is missing field 'domain'")
    if not spelled:
        raise ValueError(f"{where} is missing field 'applicationID'")
    fields = {"domain": "domain", "application_id": spelled[0]}
    first = next(_provider_problems(entry["domain"], entry[spelled[0]]), None)
    if first is not None:
        field, problem = first
        raise ValueError(f"{where}, field {fields[field]!r}: {problem}")
    return AuthProvider(entry["domain"], entry[spelled[0]])


# -- identity ------------------------------------------------------------------------------

#: OIDC standard claim -> the attribute name Convex's UserIdentity gives it.
_STANDARD_CLAIMS: dict[str, str] = {
    "name": "name",
    "given_name": "givenName",
    "family_name": "familyName",
    "nickname": "nickname",
    "preferred_username": "preferredUsername",
    "profile": "profileUrl",
    "picture": "pictureUrl",
    "website": "websiteUrl",
    "email": "email",
    "email_verified": "emailVerified",
    "gender": "gender",
    "birthdate": "birthday",
    "zoneinfo": "timezone",
    "locale": "language",
    "phone_number": "phoneNumber",
    "phone_number_verified": "phoneNumberVerified",
    "address": "address",
    "updated_at": "updatedAt",
}

#: Claims that are JWT housekeeping rather than facts about the user (as upstream: `iat`, `nbf`,
#: `jti` and Clerk's `fva` change on every refresh and would make identical users look new).
_HOUSEKEEPING_CLAIMS = frozenset(
    {
        "iss",
        "sub",
        "aud",
        "exp",
        "iat",
        "nbf",
        "jti",
        "auth_time",
        "nonce",
        "acr",
        "amr",
        "azp",
        "at_hash",
        "c_hash",
        "fva",
    }
)

_BOOLEAN_CLAIMS = frozenset({"email_verified", "phone_number_verified"})

#: Attribute names a custom claim may never take, so that no claim can spoof them.
_RESERVED_ATTRIBUTES = frozenset(
    {"tokenIdentifier", "subject", "issuer", *_STANDARD_CLAIMS.values()}
)


@dataclass(frozen=True, slots=True, eq=False)
class Identity(Mapping[str, Value]):
    """What `ctx.auth.get_user_identity()` returns: a read-only mapping of Convex attributes.

    Keys: `tokenIdentifier` (`"{iss}|{sub}"`), `subject`, `issuer`, the standard OIDC claims
    under Convex's camelCase names (`email`, `givenName`, `pictureUrl`, ...), and every custom
    claim as-is (JSON numbers as floats, as JavaScript sees them). Values read out are copies.
    `expires_at` (the token's `exp`, Unix seconds) is kept beside the claims, not among them;
    two identities are equal when their claims are equal.
    """

    claims: Mapping[str, Value]
    expires_at: float | None = None

    def __post_init__(self) -> None:
        token_identifier = self.claims.get("tokenIdentifier")
        if not isinstance(token_identifier, str) or not token_identifier:
            raise ValidationError("an identity needs a non-empty string 'tokenIdentifier'")
        object.__setattr__(self, "claims", MappingProxyType(dict(self.claims)))

    @classmethod
    def from_jwt_claims(cls, claims: Mapping[str, Any]) -> Identity:
        """The identity of a verified token's payload (which has string `iss` and `sub`)."""
        issuer, subject = claims["iss"], claims["sub"]
        attributes: dict[str, Value] = {
            "tokenIdentifier": f"{issuer}|{subject}",
            "subject": subject,
            "issuer": issuer,
        }
        for name, value in claims.items():
            _add_claim(attributes, name, value)
        exp = claims.get("exp")
        return cls(attributes, expires_at=None if exp is None else float(exp))

    @classmethod
    def from_attributes(
        cls, attributes: Mapping[str, Any], *, expires_at: float | None = None
    ) -> Identity:
        """An identity from Convex attribute JSON (as in admin "acting as" headers).

        `tokenIdentifier` may be omitted when `issuer` and `subject` are given.
        """
        if not isinstance(attributes, Mapping):
            raise ValidationError(
                f"identity attributes must be an object, got {type(attributes).__name__}"
            )
        merged = dict(attributes)
        if "tokenIdentifier" not in merged:
            issuer, subject = merged.get("issuer"), merged.get("subject")
            if not (isinstance(issuer, str) and isinstance(subject, str)):
                raise ValidationError(
                    "identity attributes need 'tokenIdentifier', or both "
                    "'issuer' and 'subject' as strings"
                )
            merged["tokenIdentifier"] = f"{issuer}|{subject}"
        return cls(merged, expires_at=expires_at)

    @property
    def token_identifier(self) -> str:
        return str(self.claims["tokenIdentifier"])

    @property
    def subject(self) -> str | None:
        value = self.claims.get("subject")
        return value if isinstance(value, str) else None

    @property
    def issuer(self) -> str | None:
        value = self.claims.get("issuer")
        return value if isinstance(value, str) else None

    def to_dict(self) -> dict[str, Value]:
        """A deep copy of the attributes, safe to mutate."""
        return copy.deepcopy(dict(self.claims))

    def __getitem__(self, key: str) -> Value:
        value = self.claims[key]
        # Copy containers so that a caller cannot mutate the identity through them.
        return copy.deepcopy(value) if isinstance(value, list | dict) else value

    def __iter__(self) -> Iterator[str]:
        return iter(self.claims)

    def __len__(self) -> int:
        return len(self.claims)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Identity):
            return dict(self.claims) == dict(other.claims)
        if isinstance(other, Mapping):
            return dict(self.claims) == dict(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.claims["tokenIdentifier"])

    def __repr__(self) -> str:
        # Claims often hold personal data (email, name): keep them out of logs.
        return f"Identity(tokenIdentifier={self.token_identifier!r}, expires_at={self.expires_at})"


def _add_claim(attributes: dict[str, Value], name: str, value: Any) -> None:
    if name in _HOUSEKEEPING_CLAIMS:
        return
    if name in _STANDARD_CLAIMS:
        converted = _standard_claim(name, value)
        if converted is not None:
            attributes[_STANDARD_CLAIMS[name]] = converted
    elif name not in _RESERVED_ATTRIBUTES:
        attributes[name] = _as_javascript_sees_it(name, value)


def _standard_claim(name: str, value: Any) -> Value:
    """A standard claim in the type Convex gives it; a null claim counts as absent."""
    if value is None:
        return None
    if name in _BOOLEAN_CLAIMS:
        return _boolean_claim(name, value)
    if name == "updated_at":
        return _timestamp_claim(name, value)
    if name == "address":
        return _address_claim(name, value)
    if not isinstance(value, str):
        raise _bad_claim(name, "a string", value)
    return value


def _boolean_claim(name: str, value: Any) -> bool:
    # Some issuers (e.g. AWS Cognito) send "true"/"false" strings.
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return bool(value == "true")
    raise _bad_claim(name, "a boolean", value)


def _timestamp_claim(name: str, value: Any) -> str:
    """OIDC `updated_at` is Unix seconds; Convex exposes it as an RFC 3339 string."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad_claim(name, "a number of seconds", value)
    try:
        return datetime.fromtimestamp(value, tz=UTC).isoformat()
    except (OverflowError, OSError, ValueError):
        raise _bad_claim(name, "a representable number of seconds", value) from None


def _address_claim(name: str, value: Any) -> str | None:
    """OIDC `address` is an object; Convex keeps its `formatted` text."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        formatted = value.get("formatted")
        return formatted if isinstance(formatted, str) else None
    raise _bad_claim(name, "an object or a string", value)


def _as_javascript_sees_it(name: str, value: Any) -> Value:
    """A custom claim's JSON as Convex values: every JSON number is a float64, as in JS."""
    if isinstance(value, bool) or value is None or isinstance(value, str | float):
        return value
    if isinstance(value, int):
        try:
            return float(value)
        except OverflowError:
            raise _bad_claim(name, "a number within float64 range", value) from None
    if isinstance(value, list):
        return [_as_javascript_sees_it(name, item) for item in value]
    if isinstance(value, dict):
        return {key: _as_javascript_sees_it(name, item) for key, item in value.items()}
    raise _bad_claim(name, "JSON", value)


def _bad_claim(name: str, expected: str, value: Any) -> AuthError:
    return AuthError(
        AuthFailure.INVALID_TOKEN,
        f"claim {name!r} must be {expected}, got {type(value).__name__} {_brief(value)}",
    )


def _brief(value: object, limit: int = 80) -> str:
    """`repr(value)` cut to `limit` characters: token contents are attacker-controlled."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


# -- unverified parsing --------------------------------------------------------------------


def _unverified_header(token: object) -> dict[str, Any]:
    if not isinstance(token, str):
        raise AuthError(
            AuthFailure.INVALID_TOKEN, f"token must be a string, got {type(token).__name__}"
        )
    if not token:
        raise AuthError(AuthFailure.INVALID_TOKEN, "token is empty")
    if len(token) > MAX_TOKEN_CHARS:
        raise AuthError(
            AuthFailure.INVALID_TOKEN,
            f"token is {len(token)} characters long; the limit is {MAX_TOKEN_CHARS}",
        )
    try:
        return jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise AuthError(AuthFailure.INVALID_TOKEN, f"token is not a JWT: {exc}") from None


def _checked_algorithm(header: Mapping[str, Any]) -> str:
    alg = header.get("alg")
    if not isinstance(alg, str):
        raise AuthError(AuthFailure.INVALID_TOKEN, "token header has no string 'alg'")
    if alg in ALLOWED_ALGORITHMS:
        return alg
    if alg.lower() == "none":
        why = "unsigned tokens (alg 'none') are never accepted"
    elif alg.upper().startswith("HS"):
        why = f"symmetric algorithm {_brief(alg)} is never accepted: tokens must be signed by "
        why += "the issuer's private key"
    else:
        why = f"algorithm {_brief(alg)} is not supported"
    accepted = ", ".join(sorted(ALLOWED_ALGORITHMS))
    raise AuthError(AuthFailure.UNSUPPORTED_ALGORITHM, f"{why} (accepted: {accepted})")


def _unverified_issuer(token: str) -> str:
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise AuthError(AuthFailure.INVALID_TOKEN, f"token payload is not valid: {exc}") from None
    issuer = claims.get("iss")
    if issuer is None:
        raise AuthError(AuthFailure.MISSING_CLAIM, "token has no 'iss' (issuer) claim")
    if not isinstance(issuer, str):
        raise _bad_claim("iss", "a string", issuer)
    return issuer


# -- keys ----------------------------------------------------------------------------------

JWK = dict[str, Any]


def _signing_keys(jwks: object, source: str) -> list[JWK]:
    """The JWKS's keys that may verify signatures (other key types and `use: enc` skipped)."""
    keys = jwks.get("keys") if isinstance(jwks, dict) else None
    if not isinstance(keys, list):
        raise AuthError(AuthFailure.JWKS_UNAVAILABLE, f"JWKS at {source} has no 'keys' list")
    return [
        key
        for key in keys
        if isinstance(key, dict)
        and key.get("use", "sig") == "sig"
        and key.get("kty") in ("RSA", "EC", "OKP")
    ]


def _key_kind(jwk: JWK) -> str:
    return " ".join(_brief(jwk[field]) for field in ("kty", "crv") if field in jwk)


def _find_key(keys: list[JWK], kid: str | None) -> JWK | None:
    if kid is None:
        # A kid-less token is unambiguous only when the issuer has a single key.
        return keys[0] if len(keys) == 1 else None
    return next((key for key in keys if key.get("kid") == kid), None)


def _verification_key(jwk: JWK, algorithm: str) -> jwt.PyJWK:
    """`jwk` as a key for `algorithm`, refusing a key of another type, curve or declared alg."""
    name = _brief(jwk.get("kid"))
    kty, curves = _KEY_TYPES[algorithm]
    declared = jwk.get("alg")
    if declared is not None and declared != algorithm:
        raise AuthError(
            AuthFailure.UNSUPPORTED_ALGORITHM,
            f"token alg {algorithm} does not match key {name}, which is for {_brief(declared)}",
        )
    if jwk.get("kty") != kty or (curves is not None and jwk.get("crv") not in curves):
        raise AuthError(
            AuthFailure.UNSUPPORTED_ALGORITHM,
            f"key {name} ({_key_kind(jwk)}) cannot verify token alg {algorithm}",
        )
    try:
        return jwt.PyJWK(jwk, algorithm=algorithm)
    except jwt.PyJWTError as exc:
        raise AuthError(
            AuthFailure.UNKNOWN_KEY, f"key {name} in the issuer's JWKS is not usable: {exc}"
        ) from None


class _IssuerKeys:
    """The cached signing keys of one issuer, and the one fetch that may be refreshing them.

    `_fetched_at`: None until a fetch succeeds; then the clock time of the last success.
    `_failure`: message of the last fetch if it failed, else None; it is reported again without
    refetching until `min_refresh_interval_s` has passed since `_attempted_at`.
    `_inflight`: None, or the running fetch task every concurrent caller awaits.
    """

    def __init__(self, authenticator: Authenticator, issuer: str) -> None:
        self._authenticator = authenticator
        self._issuer = issuer
        self._keys: list[JWK] = []
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._failure: str | None = None
        self._inflight: asyncio.Task[None] | None = None

    async def key(self, kid: str | None) -> JWK:
        """The key named `kid`, refetching the JWKS when stale or (rate-limited) when unknown."""
        if not self._is_fresh():
            await self._refresh()
        jwk = _find_key(self._keys, kid)
        if jwk is None and self._may_refetch():
            await self._refresh()
            jwk = _find_key(self._keys, kid)
        if jwk is None:
            raise self._unknown_key(kid)
        return jwk

    def cancel(self) -> None:
        """Abandon a running fetch (at shutdown); the next lookup starts afresh."""
        if self._inflight is not None:
            self._inflight.cancel()
            self._inflight = None

    def _is_fresh(self) -> bool:
        ttl = self._authenticator.jwks_ttl_s
        return self._fetched_at is not None and time.monotonic() - self._fetched_at < ttl

    def _may_refetch(self) -> bool:
        interval = self._authenticator.min_refresh_interval_s
        return self._inflight is not None or self._attempt_age() >= interval

    def _attempt_age(self) -> float:
        if self._attempted_at is None:
            return float("inf")
        return time.monotonic() - self._attempted_at

    async def _refresh(self) -> None:
        if self._inflight is None:
            if self._failure is not None and not self._may_refetch():
                raise self._unavailable()
            self._inflight = asyncio.create_task(self._fetch())
        # Shielded: one caller giving up must not cancel the fetch the others are waiting on.
        await asyncio.shield(self._inflight)
        if self._failure is not None:
            raise self._unavailable()

    async def _fetch(self) -> None:
        """Runs as the shared task; records the outcome instead of raising it."""
        self._attempted_at = time.monotonic()
        try:
            self._keys = await self._authenticator.fetch_signing_keys(self._issuer)
        except AuthError as exc:
            self._failure = exc.msg
        else:
            self._fetched_at = time.monotonic()
            self._failure = None
        finally:
            self._inflight = None

    def _unavailable(self) -> AuthError:
        return AuthError(AuthFailure.JWKS_UNAVAILABLE, self._failure or "JWKS unavailable")

    def _unknown_key(self, kid: str | None) -> AuthError:
        known = sorted(str(key.get("kid")) for key in self._keys)
        if kid is None:
            msg = f"token has no 'kid' header and the issuer publishes {len(known)} keys"
        else:
            msg = f"no key with kid {_brief(kid)} in the JWKS of {self._issuer} (known: {known})"
        return AuthError(AuthFailure.UNKNOWN_KEY, msg)


# -- the authenticator ---------------------------------------------------------------------

#: PyJWT's claim errors, most specific first, and what each means to a client.
_CLAIM_FAILURES: tuple[tuple[type[jwt.PyJWTError], AuthFailure], ...] = (
    (jwt.ExpiredSignatureError, AuthFailure.TOKEN_EXPIRED),
    (jwt.ImmatureSignatureError, AuthFailure.TOKEN_NOT_YET_VALID),
    (jwt.InvalidAudienceError, AuthFailure.INVALID_AUDIENCE),
    (jwt.InvalidSignatureError, AuthFailure.INVALID_SIGNATURE),
    (jwt.InvalidAlgorithmError, AuthFailure.UNSUPPORTED_ALGORITHM),
    (jwt.InvalidKeyError, AuthFailure.UNKNOWN_KEY),
)


class Authenticator:
    """Verifies JWTs against configured OIDC providers, caching each issuer's JWKS.

    Keys are cached per issuer for `jwks_ttl_s`; a token naming an unknown `kid` triggers one
    refetch, at most one per `min_refresh_interval_s`, and a failed fetch is reported as
    JwksUnavailable without retrying for that same interval. Concurrent verifications share one
    in-flight fetch. Several providers may share a domain: `aud` must hold one of their ids.
    With no providers every token is refused (UnknownIssuer). Use one instance per event loop.
    """

    def __init__(
        self,
        providers: list[AuthProvider],
        *,
        http: httpx.AsyncClient | None = None,
        leeway_s: float = 5.0,
        jwks_ttl_s: float = 3600,
        min_refresh_interval_s: float = 1.0,
    ) -> None:
        self.providers = tuple(providers)
        self.leeway_s = leeway_s
        self.jwks_ttl_s = jwks_ttl_s
        self.min_refresh_interval_s = min_refresh_interval_s
        self._audiences: dict[str, list[str]] = {}
        for provider in self.providers:
            self._audiences.setdefault(provider.issuer, []).append(provider.application_id)
        self._http = http
        self._owns_http = http is None
        self._keys: dict[str, _IssuerKeys] = {}

    async def verify(self, token: str) -> Identity:
        """The identity of a valid token; raises AuthError saying why a token is refused."""
        header = _unverified_header(token)
        algorithm = _checked_algorithm(header)
        issuer = _normalize_issuer(_unverified_issuer(token))
        audiences = self._audiences_of(issuer)
        jwk = await self._issuer_keys(issuer).key(header.get("kid"))
        claims = self._verified_claims(token, _verification_key(jwk, algorithm), audiences)
        if _normalize_issuer(claims["iss"]) != issuer:  # the same bytes were read twice
            raise AuthError(AuthFailure.UNKNOWN_ISSUER, "token issuer changed under verification")
        if not claims["sub"]:
            raise AuthError(AuthFailure.INVALID_TOKEN, "claim 'sub' must not be empty")
        return Identity.from_jwt_claims(claims)

    async def close(self) -> None:
        """Stop in-flight fetches; close the HTTP client if this authenticator created it."""
        for keys in self._keys.values():
            keys.cancel()
        if self._owns_http and self._http is not None:
            await self._http.aclose()
            self._http = None

    async def fetch_signing_keys(self, issuer: str) -> list[JWK]:
        """The issuer's signing keys by OIDC discovery; AuthError JwksUnavailable on failure."""
        discovery_url = f"{issuer}/.well-known/openid-configuration"
        discovery = await self._get_json(discovery_url, "discovery document")
        announced = discovery.get("issuer")
        if not isinstance(announced, str) or _normalize_issuer(announced) != issuer:
            raise AuthError(
                AuthFailure.JWKS_UNAVAILABLE,
                f"discovery document at {discovery_url} names issuer {_brief(announced)}, "
                f"not {issuer}",
            )
        jwks_uri = discovery.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not jwks_uri.startswith(("https://", "http://")):
            raise AuthError(
                AuthFailure.JWKS_UNAVAILABLE,
                f"discovery document at {discovery_url} has no http(s) 'jwks_uri'",
            )
        return _signing_keys(await self._get_json(jwks_uri, "JWKS"), jwks_uri)

    def _issuer_keys(self, issuer: str) -> _IssuerKeys:
        keys = self._keys.get(issuer)
        if keys is None:
            keys = self._keys[issuer] = _IssuerKeys(self, issuer)
        return keys

    def _audiences_of(self, issuer: str) -> list[str]:
        audiences = self._audiences.get(issuer)
        if audiences is not None:
            return audiences
        if not self._audiences:
            msg = (
                f"no auth providers are configured, so no token is accepted (iss {_brief(issuer)})"
            )
        else:
            known = ", ".join(sorted(self._audiences))
            msg = f"token issuer {_brief(issuer)} is not a configured auth provider ({known})"
        raise AuthError(AuthFailure.UNKNOWN_ISSUER, msg)

    def _verified_claims(self, token: str, key: jwt.PyJWK, audiences: list[str]) -> dict[str, Any]:
        try:
            return jwt.decode(
                token,
                key,
                algorithms=[key.algorithm_name],
                audience=audiences,
                leeway=self.leeway_s,
                options={"require": ["iss", "sub", "exp"], "enforce_minimum_key_length": True},
            )
        except jwt.MissingRequiredClaimError as exc:
            raise _missing_claim(exc.claim, audiences) from None
        except jwt.PyJWTError as exc:
            raise _claim_error(exc, token, audiences) from None

    async def _get_json(self, url: str, what: str) -> dict[str, Any]:
        try:
            response = await self._client().get(url)
        except httpx.HTTPError as exc:
            detail = str(exc) or type(exc).__name__
            raise AuthError(
                AuthFailure.JWKS_UNAVAILABLE, f"could not fetch the {what} from {url}: {detail}"
            ) from None
        if response.status_code != 200:
            raise AuthError(
                AuthFailure.JWKS_UNAVAILABLE,
                f"fetching the {what} from {url} returned HTTP {response.status_code}",
            )
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise AuthError(
                AuthFailure.JWKS_UNAVAILABLE, f"the {what} at {url} is not a JSON object"
            )
        return body

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=HTTP_TIMEOUT_S, follow_redirects=True)
        return self._http


def _missing_claim(claim: str, audiences: list[str]) -> AuthError:
    if claim == "aud":
        return AuthError(
            AuthFailure.INVALID_AUDIENCE,
            f"token has no 'aud' claim; expected {_audience_text(audiences)}",
        )
    return AuthError(AuthFailure.MISSING_CLAIM, f"token has no {claim!r} claim")


def _claim_error(exc: jwt.PyJWTError, token: str, audiences: list[str]) -> AuthError:
    failure = next(
        (failure for kind, failure in _CLAIM_FAILURES if isinstance(exc, kind)),
        AuthFailure.INVALID_TOKEN,
    )
    # Already decoded once without verification, so this cannot fail; it adds context.
    claims = jwt.decode(token, options={"verify_signature": False})
    messages = {
        AuthFailure.TOKEN_EXPIRED: f"token expired at {_moment(claims.get('exp'))}",
        AuthFailure.TOKEN_NOT_YET_VALID: f"token is not valid until {_moment(_not_before(claims))}",
        AuthFailure.INVALID_AUDIENCE: f"token audience {_brief(claims.get('aud'))} does not "
        f"include {_audience_text(audiences)}",
        AuthFailure.INVALID_SIGNATURE: "token signature does not verify with the issuer's key",
        AuthFailure.UNKNOWN_KEY: f"the issuer's key cannot verify this token ({exc})",
    }
    return AuthError(failure, messages.get(failure, f"token is not valid: {exc}"))


def _not_before(claims: Mapping[str, Any]) -> object:
    """The later of `nbf` and `iat`: the one that made the token not valid yet."""
    times = [claims.get(name) for name in ("nbf", "iat")]
    numbers = [t for t in times if isinstance(t, int | float) and not isinstance(t, bool)]
    return max(numbers, default=None)


def _moment(seconds: object) -> str:
    """A claim's Unix time as ISO 8601 and as an offset from now, for messages."""
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        return _brief(seconds)
    offset = seconds - time.time()
    try:
        when = datetime.fromtimestamp(seconds, tz=UTC).isoformat()
    except (OverflowError, OSError, ValueError):
        when = str(seconds)
    relative = f"{-offset:.0f} s ago" if offset < 0 else f"in {offset:.0f} s"
    return f"{when} ({relative})"


def _audience_text(audiences: list[str]) -> str:
    return " or ".join(repr(audience) for audience in audiences)
