"""Tests of reactive.auth, all through a real local OIDC issuer over HTTP (tests/oidc_issuer.py)."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import warnings
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from reactive.auth import (
    Authenticator,
    AuthError,
    AuthFailure,
    AuthProvider,
    Identity,
    providers_from_config,
)
from reactive.errors import ErrorCode, ValidationError
from tests.oidc_issuer import OMIT, LocalIssuer, SigningKey


@pytest.fixture
def issuer() -> Iterator[LocalIssuer]:
    with LocalIssuer() as running:
        yield running


@pytest.fixture
async def authenticator(issuer: LocalIssuer) -> AsyncIterator[Authenticator]:
    auth = Authenticator([AuthProvider(issuer.url, "convex")], min_refresh_interval_s=0.3)
    yield auth
    await auth.close()


async def refusal(authenticator: Authenticator, token: Any) -> AuthError:
    """The AuthError verifying `token` raises; its message must never contain the token."""
    with pytest.raises(AuthError) as caught:
        await authenticator.verify(token)
    error = caught.value
    assert error.code is ErrorCode.UNAUTHENTICATED
    assert error.short_msg == error.failure.value
    if isinstance(token, str) and len(token) > 20:
        signature = token.split(".")[-1]
        assert token not in str(error)
        assert not signature or signature not in str(error)
    return error


def replace_segment(token: str, index: int, segment: str) -> str:
    parts = token.split(".")
    parts[index] = segment
    return ".".join(parts)


def b64json(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


# -- valid tokens and identities -----------------------------------------------------------


async def test_valid_token_gives_identity_with_convex_names(
    issuer: LocalIssuer, authenticator: Authenticator
) -> None:
    standard = {
        "name": "Ada Lovelace",
        "given_name": "Ada",
        "family_name": "Lovelace",
        "nickname": "ada",
        "preferred_username": "ada_l",
        "profile": "https://example.com/ada",
        "picture": "https://example.com/ada.png",
        "website": "https://ada.example.com",
        "email": "ada@example.com",
        "email_verified": True,
        "gender": "female",
        "birthdate": "1815-12-10",
        "zoneinfo": "Europe/London",
        "locale": "en-GB",
        "phone_number": "+44 20 0000 0000",
        "phone_number_verified": False,
        "address": {"formatted": "12 St James's Square, London", "country": "UK"},
        "updated_at": 1_700_000_000,
    }
    custom: dict[str, Any] = {
        "org_id": "org_1",
        "roles": ["admin", "dev"],
        "level": 3,
        "meta": {"n": 1, "ok": None},
    }
    token = issuer.sign(standard, subject="user_42", jti="abc", fva=[1, 2], **custom)

    identity = await authenticator.verify(token)

    assert identity.to_dict() == {
        "tokenIdentifier": f"{issuer.url}|user_42",
        "subject": "user_42",
        "issuer": issuer.url,
        "name": "Ada Lovelace",
        "givenName": "Ada",
        "familyName": "Lovelace",
        "nickname": "ada",
        "preferredUsername": "ada_l",
        "profileUrl": "https://example.com/ada",
        "pictureUrl": "https://example.com/ada.png",
        "websiteUrl": "https://ada.example.com",
        "email": "ada@example.com",
        "emailVerified": True,
        "gender": "female",
        "birthday": "1815-12-10",
        "timezone": "Europe/London",
        "language": "en-GB",
        "phoneNumber": "+44 20 0000 0000",
        "phoneNumberVerified": False,
        "address": "12 St James's Square, London",
        "updatedAt": "2023-11-14T22:13:20+00:00",
        # Custom claims as-is, but JSON numbers are float64 as JavaScript sees them.
        "org_id": "org_1",
        "roles": ["admin", "dev"],
        "level": 3.0,
        "meta": {"n": 1.0, "ok": None},
    }
    assert isinstance(identity["level"], float)
    assert identity.token_identifier == f"{issuer.url}|user_42"
    assert (identity.subject, identity.issuer) == ("user_42", issuer.url)


async def test_identity_keeps_expiry_beside_the_claims(
    issuer: LocalIssuer, authenticator: Authenticator
) -> None:
    token = issuer.sign(expires_in=600)
    identity = await authenticator.verify(token)
    exp = issuer.claims(expires_in=600)["exp"]
    assert identity.expires_at is not None
    assert abs(identity.expires_at - exp) <= 2
    assert not {"exp", "iat", "nbf", "aud", "expires_at"} & set(identity)


async def test_custom_claims_cannot_spoof_identity_attributes(
    issuer: LocalIssuer, authenticator: Authenticator
) -> None:
    token = issuer.sign(
        {"tokenIdentifier": "https://evil|admin", "subject": "admin", "issuer": "https://evil"},
        givenName="Mallory",
        emailVerified=True,
    )
    identity = await authenticator.verify(token)
    assert identity["tokenIdentifier"] == f"{issuer.url}|user_1"
    assert identity["subject"] == "user_1"
    assert identity["issuer"] == issuer.url
    assert "givenName" not in identity
    assert "emailVerified" not in identity


async def test_string_booleans_and_string_updated_at_are_accepted(
    issuer: LocalIssuer, authenticator: Authenticator
) -> None:
    token = issuer.sign(email_verified="true", updated_at="2024-01-01T00:00:00Z", address="Home")
    identity = await authenticator.verify(token)
    assert identity["emailVerified"] is True
    assert identity["updatedAt"] == "2024-01-01T00:00:00Z"
    assert identity["address"] == "Home"


async def test_standard_claim_of_the_wrong_type_is_refused(
    issuer: LocalIssuer, authenticator: Authenticator
) -> None:
    error = await refusal(authenticator, issuer.sign(email=5))
    assert error.failure is AuthFailure.INVALID_TOKEN
    assert "'email'" in error.msg


async def test_identity_is_read_only(issuer: LocalIssuer, authenticator: Authenticator) -> None:
    identity = await authenticator.verify(issuer.sign(roles=["admin"]))
    with pytest.raises(TypeError):
        identity["subject"] = "someone_else"  # type: ignore[index]
    with pytest.raises(TypeError):
        identity.claims["subject"] = "someone_else"  # type: ignore[index]
    roles = identity["roles"]
    assert isinstance(roles, list)
    roles.append("root")
    identity.to_dict()["roles"].append("root")  # type: ignore[union-attr]
    assert identity["roles"] == ["admin"]


async def test_identities_with_equal_claims_are_equal_whatever_their_expiry(
    issuer: LocalIssuer, authenticator: Authenticator
) -> None:
    first = await authenticator.verify(issuer.sign(expires_in=600))
    second = await authenticator.verify(issuer.sign(expires_in=900))
    other = await authenticator.verify(issuer.sign(subject="user_2"))
    assert first.expires_at != second.expires_at
    assert first == second
    assert hash(first) == hash(second)
    assert first != other
    assert first == first.to_dict()


def test_identity_from_attributes_builds_the_token_identifier() -> None:
    identity = Identity.from_attributes({"issuer": "https://a.example", "subject": "u1", "x": 1})
    assert identity["tokenIdentifier"] == "https://a.example|u1"
    given = Identity.from_attributes({"tokenIdentifier": "t", "email": "e@x"}, expires_at=5.0)
    assert (given.token_identifier, given.expires_at) == ("t", 5.0)


@pytest.mark.parametrize("attributes", [{}, {"issuer": "https://a"}, {"tokenIdentifier": ""}, []])
def test_identity_from_attributes_needs_an_identifier(attributes: Any) -> None:
    with pytest.raises(ValidationError):
        Identity.from_attributes(attributes)


def test_identity_repr_hides_personal_claims() -> None:
    identity = Identity.from_attributes({"tokenIdentifier": "i|u", "email": "secret@example.com"})
    assert "secret@example.com" not in repr(identity)
    assert "i|u" in repr(identity)


@pytest.mark.parametrize("algorithm", ["RS256", "RS512", "PS256", "ES256", "ES384", "EdDSA"])
async def test_every_allowed_asymmetric_algorithm_verifies(algorithm: str) -> None:
    async with LocalIssuer(algorithm) as issuer:
        auth = Authenticator([AuthProvider(issuer.url, "convex")])
        try:
            identity = await auth.verify(issuer.sign(subject=f"u_{algorithm}"))
        finally:
            await auth.close()
    assert identity["subject"] == f"u_{algorithm}"


async def test_audience_list_containing_the_application_id_is_accepted(
    issuer: LocalIssuer, authenticator: Authenticator
) -> None:
    identity = await authenticator.verify(issuer.sign(audience=["other", "convex"]))
    assert identity["subject"] == "user_1"


async def test_providers_sharing_a_domain_accept_either_application_id(
    issuer: LocalIssuer,
) -> None:
    providers = [AuthProvider(issuer.url, "web"), AuthProvider(issuer.url, "mobile")]
    auth = Authenticator(providers)
    try:
        assert (await auth.verify(issuer.sign(audience="mobile")))["subject"] == "user_1"
        error = await refusal(auth, issuer.sign(audience="convex"))
    finally:
        await auth.close()
    assert error.failure is AuthFailure.INVALID_AUDIENCE
    assert "'web' or 'mobile'" in error.msg


async def test_recently_expired_token_is_accepted_within_leeway(
    issuer: LocalIssuer, authenticator: Authenticator
) -> None:
    identity = await authenticator.verify(issuer.sign(expires_in=-2))
    assert identity["subject"] == "user_1"


# -- refused tokens ------------------------------------------------------------------------


async def test_expired_token_is_refused(issuer: LocalIssuer, authenticator: Authenticator) -> None:
    error = await refusal(authenticator, issuer.sign(expires_in=-60))
    assert error.failure is AuthFailure.TOKEN_EXPIRED
    assert "ago" in error.msg


async def test_token_not_yet_valid_is_refused(
    issuer: LocalIssuer, authenticator: Authenticator
) -> None:
    error = await refusal(authenticator, issuer.sign(nbf=int(time.time()) + 120))
    assert error.failure is AuthFailure.TOKEN_NOT_YET_VALID
    assert "in 1" in error.msg


async def test_token_issued_in_the_future_is_refused(
    issuer: LocalIssuer, authenticator: Authenticator
) -> None:
    error = await refusal(authenticator, issuer.sign(iat=int(time.time()) + 120, nbf=OMIT))
    assert error.failure is AuthFailure.TOKEN_NOT_YET_VALID


async def test_wrong_audience_is_refused(issuer: LocalIssuer, authenticator: Authenticator) -> None:
    error = await refusal(authenticator, issuer.sign(audience="some-other-app"))
    assert error.failure is AuthFailure.INVALID_AUDIENCE
    assert "'some-other-app'" in error.msg
    assert "'convex'" in error.msg


async def test_missing_audience_is_refused(
    issuer: LocalIssuer, authenticator: Authenticator
) -> None:
    error = await refusal(authenticator, issuer.sign(audience=OMIT))
    assert error.failure is AuthFailure.INVALID_AUDIENCE


async def test_unknown_issuer_is_refused_without_any_fetch(
    issuer: LocalIssuer, authenticator: Authenticator
) -> None:
    with LocalIssuer() as stranger:
        error = await refusal(authenticator, stranger.sign())
        assert stranger.discovery_requests == 0
    assert error.failure is AuthFailure.UNKNOWN_ISSUER
    assert stranger.url in error.msg
    assert issuer.url in error.msg


async def test_token_claiming_our_issuer_but_signed_by_another_key_is_refused(
    issuer: LocalIssuer, authenticator: Authenticator
) -> None:
    forger = LocalIssuer()  # never started: only its key is used
    forged = forger.sign({"iss": issuer.url}, kid=issuer.key.kid)
    error = await refusal(authenticator, forged)
    assert error.failure is AuthFailure.INVALID_SIGNATURE


async def test_authenticator_without_providers_refuses_every_token(issuer: LocalIssuer) -> None:
    auth = Authenticator([])
    try:
        error = await refusal(auth, issuer.sign())
    finally:
        await auth.close()
    assert error.failure is AuthFailure.UNKNOWN_ISSUER
    assert "no auth providers" in error.msg
    assert issuer.discovery_requests == issuer.jwks_requests == 0


async def test_alg_none_is_refused(issuer: LocalIssuer, authenticator: Authenticator) -> None:
    error = await refusal(authenticator, issuer.sign_unsigned())
    assert error.failure is AuthFailure.UNSUPPORTED_ALGORITHM
    assert "'none'" in error.msg
    assert issuer.jwks_requests == 0


async def test_hs256_signed_with_the_public_key_is_refused(
    issuer: LocalIssuer, authenticator: Authenticator
) -> None:
    await authenticator.verify(issuer.sign())  # the public key is now cached
    error = await refusal(authenticator, issuer.sign_hs256())
    assert error.failure is AuthFailure.UNSUPPORTED_ALGORITHM
    assert "symmetric" in error.msg


@pytest.mark.parametrize("alg", ["HS384", "RS1", "ES256K", None, 5])
async def test_other_algorithms_are_refused(
    issuer: LocalIssuer, authenticator: Authenticator, alg: Any
) -> None:
    token = replace_segment(issuer.sign(), 0, b64json({"alg": alg, "kid": issuer.key.kid}))
    error = await refusal(authenticator, token)
    assert error.failure in (AuthFailure.UNSUPPORTED_ALGORITHM, AuthFailure.INVALID_TOKEN)


async def test_alg_swapped_to_one_the_key_is_not_for_is_refused(
    issuer: LocalIssuer, authenticator: Authenticator
) -> None:
    token = issuer.sign()
    header = {"alg": "PS256", "kid": issuer.key.kid, "typ": "JWT"}
    error = await refusal(authenticator, replace_segment(token, 0, b64json(header)))
    assert error.failure is AuthFailure.UNSUPPORTED_ALGORITHM


async def test_key_of_another_type_than_the_alg_is_refused(
    issuer: LocalIssuer, authenticator: Authenticator
) -> None:
    rsa_kid = issuer.key.kid
    issuer.rotate_key(keep_old=True, algorithm="ES256")
    token = issuer.sign(kid=rsa_kid)  # an ES256 signature that names the RSA key
    error = await refusal(authenticator, token)
    assert error.failure is AuthFailure.UNSUPPORTED_ALGORITHM
    assert "RS256" in error.msg


async def test_tampered_payload_is_refused(
    issuer: LocalIssuer, authenticator: Authenticator
) -> None:
    token = issuer.sign(subject="user_1")
    tampered = replace_segment(token, 1, b64json(issuer.claims(subject="admin")))
    error = await refusal(authenticator, tampered)
    assert error.failure is AuthFailure.INVALID_SIGNATURE


async def test_tampered_signature_is_refused(
    issuer: LocalIssuer, authenticator: Authenticator
) -> None:
    token = issuer.sign()
    signature = bytearray(base64.urlsafe_b64decode(token.split(".")[2] + "=="))
    signature[10] ^= 0x01
    forged = base64.urlsafe_b64encode(bytes(signature)).rstrip(b"=").decode()
    error = await refusal(authenticator, replace_segment(token, 2, forged))
    assert error.failure is AuthFailure.INVALID_SIGNATURE


@pytest.mark.parametrize(
    "token",
    [
        "",
        "garbage",
        "a.b",
        "a.b.c",
        "....",
        "eyJ.eyJ.sig",
        f"{b64json([1])}.{b64json({})}.c2ln",
        f"{b64json({'alg': 'RS256'})}.{b64json([1, 2])}.c2ln",
        f"{b64json({'alg': 'RS256'})}.bm90IGpzb24.c2ln",
        "x" * 70_000,
        12345,
        None,
    ],
)
async def test_garbage_is_refused_as_invalid_token(
    authenticator: Authenticator, token: Any
) -> None:
    error = await refusal(authenticator, token)
    assert error.failure is AuthFailure.INVALID_TOKEN


async def test_missing_sub_is_refused(issuer: LocalIssuer, authenticator: Authenticator) -> None:
    error = await refusal(authenticator, issuer.sign(subject=OMIT))
    assert error.failure is AuthFailure.MISSING_CLAIM
    assert "'sub'" in error.msg


@pytest.mark.parametrize("subject", ["", 42, None])
async def test_empty_or_non_string_sub_is_refused(
    issuer: LocalIssuer, authenticator: Authenticator, subject: Any
) -> None:
    error = await refusal(authenticator, issuer.sign(subject=subject))
    assert error.failure in (AuthFailure.INVALID_TOKEN, AuthFailure.MISSING_CLAIM)


async def test_missing_exp_is_refused(issuer: LocalIssuer, authenticator: Authenticator) -> None:
    error = await refusal(authenticator, issuer.sign(expires_in=None))
    assert error.failure is AuthFailure.MISSING_CLAIM
    assert "'exp'" in error.msg


async def test_missing_iss_is_refused(issuer: LocalIssuer, authenticator: Authenticator) -> None:
    error = await refusal(authenticator, issuer.sign(iss=OMIT))
    assert error.failure is AuthFailure.MISSING_CLAIM
    assert "'iss'" in error.msg


async def test_weak_rsa_key_is_refused(issuer: LocalIssuer, authenticator: Authenticator) -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    issuer.keys = [SigningKey("weak", "RS256", weak)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyJWT warns when signing with a short key
        token = issuer.sign()
    error = await refusal(authenticator, token)
    assert error.failure is AuthFailure.UNKNOWN_KEY


# -- keys: discovery, caching, rotation ----------------------------------------------------


async def test_jwks_is_fetched_once_for_many_verifications(
    issuer: LocalIssuer, authenticator: Authenticator
) -> None:
    for n in range(20):
        await authenticator.verify(issuer.sign(subject=f"user_{n}"))
    assert issuer.discovery_requests == 1
    assert issuer.jwks_requests == 1


async def test_jwks_is_refetched_after_its_ttl(issuer: LocalIssuer) -> None:
    auth = Authenticator([AuthProvider(issuer.url, "convex")], jwks_ttl_s=0.2)
    try:
        await auth.verify(issuer.sign())
        await auth.verify(issuer.sign())
        assert issuer.jwks_requests == 1
        await asyncio.sleep(0.25)
        await auth.verify(issuer.sign())
    finally:
        await auth.close()
    assert issuer.jwks_requests == 2


async def test_key_rotation_triggers_one_refetch_then_works(
    issuer: LocalIssuer, authenticator: Authenticator
) -> None:
    old_token = issuer.sign()
    await authenticator.verify(old_token)
    await asyncio.sleep(0.35)  # past min_refresh_interval_s
    issuer.rotate_key()
    new_token = issuer.sign(subject="after_rotation")
    assert (await authenticator.verify(new_token))["subject"] == "after_rotation"
    assert (await authenticator.verify(new_token))["subject"] == "after_rotation"
    assert issuer.jwks_requests == 2
    error = await refusal(authenticator, old_token)  # its key left the JWKS
    assert error.failure is AuthFailure.UNKNOWN_KEY
    assert issuer.jwks_requests == 2  # rate-limited: the refetch just happened


async def test_refetch_for_unknown_kids_is_rate_limited(
    issuer: LocalIssuer, authenticator: Authenticator
) -> None:
    await authenticator.verify(issuer.sign())
    await asyncio.sleep(0.35)
    for n in range(10):
        error = await refusal(authenticator, issuer.sign(kid=f"bogus-{n}"))
        assert error.failure is AuthFailure.UNKNOWN_KEY
    assert issuer.jwks_requests == 2
    await asyncio.sleep(0.35)
    await refusal(authenticator, issuer.sign(kid="bogus-later"))
    assert issuer.jwks_requests == 3


async def test_token_without_kid_uses_the_only_key(
    issuer: LocalIssuer, authenticator: Authenticator
) -> None:
    assert (await authenticator.verify(issuer.sign(kid=OMIT)))["subject"] == "user_1"
    issuer.rotate_key(keep_old=True)
    await asyncio.sleep(0.35)
    await authenticator.verify(issuer.sign())  # its new kid makes the authenticator refetch
    error = await refusal(authenticator, issuer.sign(kid=OMIT))
    assert error.failure is AuthFailure.UNKNOWN_KEY
    assert "no 'kid'" in error.msg


async def test_issuer_returning_errors_gives_jwks_unavailable_then_recovers(
    issuer: LocalIssuer, authenticator: Authenticator
) -> None:
    issuer.available = False
    error = await refusal(authenticator, issuer.sign())
    assert error.failure is AuthFailure.JWKS_UNAVAILABLE
    assert "503" in error.msg
    issuer.available = True
    # The failure is remembered briefly, so a flood of tokens cannot hammer a failing issuer.
    again = await refusal(authenticator, issuer.sign())
    assert again.failure is AuthFailure.JWKS_UNAVAILABLE
    assert issuer.discovery_requests == 1
    await asyncio.sleep(0.35)
    assert (await authenticator.verify(issuer.sign()))["subject"] == "user_1"


async def test_issuer_that_is_down_gives_jwks_unavailable() -> None:
    issuer = LocalIssuer()
    issuer.start()
    issuer.stop()  # the port now refuses connections
    auth = Authenticator([AuthProvider(issuer.url, "convex")])
    try:
        error = await refusal(auth, issuer.sign())
    finally:
        await auth.close()
    assert error.failure is AuthFailure.JWKS_UNAVAILABLE
    assert issuer.url in error.msg


async def test_discovery_naming_another_issuer_gives_jwks_unavailable(
    issuer: LocalIssuer, authenticator: Authenticator
) -> None:
    document = {"issuer": "https://elsewhere.example", "jwks_uri": f"{issuer.url}/jwks"}
    issuer.discovery_document = lambda: document  # type: ignore[method-assign]
    error = await refusal(authenticator, issuer.sign())
    assert error.failure is AuthFailure.JWKS_UNAVAILABLE
    assert "elsewhere.example" in error.msg
    assert issuer.jwks_requests == 0


async def test_concurrent_verifications_share_one_fetch(
    issuer: LocalIssuer, authenticator: Authenticator
) -> None:
    issuer.response_delay_s = 0.1
    tokens = [issuer.sign(subject=f"user_{n}") for n in range(20)]
    identities = await asyncio.gather(*(authenticator.verify(t) for t in tokens))
    assert [identity["subject"] for identity in identities] == [f"user_{n}" for n in range(20)]
    assert issuer.discovery_requests == 1
    assert issuer.jwks_requests == 1


async def test_concurrent_unknown_kids_share_one_refetch(
    issuer: LocalIssuer, authenticator: Authenticator
) -> None:
    await authenticator.verify(issuer.sign())
    await asyncio.sleep(0.35)
    issuer.rotate_key()
    issuer.response_delay_s = 0.1
    tokens = [issuer.sign(subject=f"user_{n}") for n in range(10)]
    identities = await asyncio.gather(*(authenticator.verify(t) for t in tokens))
    assert len(identities) == 10
    assert issuer.jwks_requests == 2


async def test_cancelled_caller_does_not_cancel_the_shared_fetch(
    issuer: LocalIssuer, authenticator: Authenticator
) -> None:
    issuer.response_delay_s = 0.2
    first = asyncio.create_task(authenticator.verify(issuer.sign(subject="first")))
    second = asyncio.create_task(authenticator.verify(issuer.sign(subject="second")))
    await asyncio.sleep(0.05)
    first.cancel()
    assert (await second)["subject"] == "second"
    assert first.cancelled()
    assert issuer.jwks_requests == 1


async def test_close_leaves_an_injected_http_client_open(issuer: LocalIssuer) -> None:
    async with httpx.AsyncClient() as client:
        auth = Authenticator([AuthProvider(issuer.url, "convex")], http=client)
        await auth.verify(issuer.sign())
        await auth.close()
        assert not client.is_closed


# -- providers and domains -----------------------------------------------------------------


async def test_trailing_slash_in_domain_is_ignored(issuer: LocalIssuer) -> None:
    auth = Authenticator([AuthProvider(f"{issuer.url}/", "convex")])
    try:
        assert (await auth.verify(issuer.sign()))["subject"] == "user_1"
    finally:
        await auth.close()
    assert issuer.discovery_requests == 1  # fetched from url + "/.well-known/..." (no "//")


async def test_trailing_slash_in_token_issuer_is_ignored(
    issuer: LocalIssuer, authenticator: Authenticator
) -> None:
    identity = await authenticator.verify(issuer.sign(iss=f"{issuer.url}/"))
    assert identity["issuer"] == f"{issuer.url}/"  # as the token says, like upstream
    assert identity["tokenIdentifier"] == f"{issuer.url}/|user_1"


def test_providers_from_config_accepts_both_spellings() -> None:
    providers = providers_from_config(
        [
            {"domain": "https://clerk.example.com", "applicationID": "convex"},
            {"domain": "http://127.0.0.1:8080/", "application_id": "local"},
            {"domain": "http://localhost:9000", "applicationID": "dev"},
        ]
    )
    assert providers == [
        AuthProvider("https://clerk.example.com", "convex"),
        AuthProvider("http://127.0.0.1:8080/", "local"),
        AuthProvider("http://localhost:9000", "dev"),
    ]
    assert providers[1].issuer == "http://127.0.0.1:8080"


GOOD = {"domain": "https://clerk.example.com", "applicationID": "convex"}


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("https://clerk.example.com", "entry 1 must be a dict"),
        ({"applicationID": "convex"}, "entry 1 is missing field 'domain'"),
        ({"domain": "https://a.example"}, "entry 1 is missing field 'applicationID'"),
        ({"domain": "", "applicationID": "convex"}, "entry 1, field 'domain'"),
        ({"domain": 5, "applicationID": "convex"}, "entry 1, field 'domain'"),
        ({"domain": "clerk.example.com", "applicationID": "c"}, "entry 1, field 'domain'"),
        ({"domain": "http://clerk.example.com", "applicationID": "c"}, "must use https"),
        ({"domain": "https://a.example?x=1", "applicationID": "c"}, "query or fragment"),
        ({"domain": "https://a.example", "applicationID": ""}, "entry 1, field 'applicationID'"),
        ({"domain": "https://a.example", "application_id": 7}, "entry 1, field 'application_id'"),
        (
            {"domain": "https://a.example", "applicationId": "c"},
            "unknown field(s) ['applicationId']",
        ),
        ({"domain": "https://a", "applicationID": "c", "application_id": "c"}, "both"),
    ],
)
def test_providers_from_config_names_the_bad_entry_and_field(entry: Any, expected: str) -> None:
    with pytest.raises(ValueError) as caught:
        providers_from_config([GOOD, entry])
    assert expected in str(caught.value)


def test_providers_from_config_needs_a_list() -> None:
    with pytest.raises(ValueError, match="must be a list"):
        providers_from_config({"domain": "https://a.example"})  # type: ignore[arg-type]


def test_auth_provider_validates_its_fields() -> None:
    with pytest.raises(ValueError, match="application_id"):
        AuthProvider("https://a.example", "")
    with pytest.raises(ValueError, match="domain"):
        AuthProvider("ftp://a.example", "convex")
