"""The dev identity provider (reactive/dev_auth.py): its routes, verified by the real
Authenticator over HTTP; its persisted key; and signing in to the seed app with it on a real
server (users:store)."""

from __future__ import annotations

import os
import stat
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

import reactive.dev_auth as dev_auth
from reactive.auth import Authenticator, AuthError, AuthFailure
from reactive.dev_auth import DevIdentityProvider, dev_issuer_url, dev_only_routes
from reactive.errors import PersistenceError
from tests.browser.dev_server import DevServer
from tests.seed_helpers import ROOT

ISSUER = "http://127.0.0.1:3210/_dev/auth"


@pytest.fixture
def provider(tmp_path: Path) -> DevIdentityProvider:
    return DevIdentityProvider(ISSUER, tmp_path / "key.pem")


def issuer_app(provider: DevIdentityProvider) -> Starlette:
    return Starlette(routes=dev_only_routes(provider))


def http_to(provider: DevIdentityProvider, *, client: tuple[str, int] = ("127.0.0.1", 5000)):
    """An HTTP client whose requests to the issuer URL reach `provider`'s routes."""
    transport = httpx.ASGITransport(app=issuer_app(provider), client=client)
    return httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:3210")


@pytest.fixture
async def authenticator(provider: DevIdentityProvider) -> AsyncIterator[Authenticator]:
    """The real Authenticator, trusting the dev issuer, fetching keys through its routes."""
    async with http_to(provider) as http:
        verifier = Authenticator([provider.provider], http=http)
        yield verifier
        await verifier.close()


async def request_token(provider: DevIdentityProvider, body: Any, **headers: str) -> httpx.Response:
    async with http_to(provider) as http:
        return await http.post("/_dev/auth/token", json=body, headers=headers)


# -- tokens ------------------------------------------------------------------------------------


async def test_token_from_the_token_route_verifies_with_the_authenticator(provider, authenticator):
    body = {"subject": "user_ada", "name": "Ada", "email": "ada@example.test"}
    response = await request_token(provider, body | {"pictureUrl": "https://img.test/a.png"})
    assert response.status_code == 200, response.text

    identity = await authenticator.verify(response.json()["token"])

    assert identity["subject"] == "user_ada"
    assert identity["issuer"] == ISSUER
    assert identity["tokenIdentifier"] == f"{ISSUER}|user_ada"
    assert identity["name"] == "Ada" and identity["email"] == "ada@example.test"
    assert identity["pictureUrl"] == "https://img.test/a.png"


async def test_token_without_profile_carries_only_the_subject(provider, authenticator):
    identity = await authenticator.verify(provider.sign("user_bare"))
    assert identity["subject"] == "user_bare"
    assert "name" not in identity and "email" not in identity


def test_tokens_last_one_hour_and_name_the_key(provider):
    token = provider.sign("user_1", name="One")
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})

    assert header["alg"] == "RS256" and header["kid"] == provider.kid
    assert claims["exp"] - claims["iat"] == 3600
    assert claims["aud"] == "convex" and claims["iss"] == ISSUER
    assert abs(claims["iat"] - time.time()) < 5


async def test_expired_token_is_refused(provider, authenticator, monkeypatch):
    two_hours_ago = time.time() - 7200
    monkeypatch.setattr(dev_auth.time, "time", lambda: two_hours_ago)
    token = provider.sign("user_1")
    monkeypatch.undo()

    with pytest.raises(AuthError) as refused:
        await authenticator.verify(token)
    assert refused.value.failure is AuthFailure.TOKEN_EXPIRED


async def test_token_of_another_key_is_refused_as_unknown_kid(tmp_path, authenticator):
    impostor = DevIdentityProvider(ISSUER, tmp_path / "other-key.pem")

    with pytest.raises(AuthError) as refused:
        await authenticator.verify(impostor.sign("user_1"))
    assert refused.value.failure is AuthFailure.UNKNOWN_KEY


def test_sign_checks_its_arguments(provider):
    with pytest.raises(ValueError, match="'subject' must not be blank"):
        provider.sign("  ")
    with pytest.raises(ValueError, match="'email' must be an email address"):
        provider.sign("user_1", email="not-an-address")


# -- the key -----------------------------------------------------------------------------------


async def test_key_survives_a_restart(tmp_path):
    key_path = tmp_path / ".reactive" / "dev_auth_key.pem"
    before = DevIdentityProvider(ISSUER, key_path)
    token = before.sign("user_1")

    after = DevIdentityProvider(ISSUER, key_path)  # the server started again

    assert after.kid == before.kid and after.jwks() == before.jwks()
    assert stat.S_IMODE(os.stat(key_path).st_mode) == 0o600
    async with http_to(after) as http:
        verifier = Authenticator([after.provider], http=http)
        assert (await verifier.verify(token))["subject"] == "user_1"
        await verifier.close()


def test_key_ids_differ_between_keys(tmp_path):
    first = DevIdentityProvider(ISSUER, tmp_path / "a.pem")
    second = DevIdentityProvider(ISSUER, tmp_path / "b.pem")
    assert first.kid != second.kid


def test_unreadable_key_file_is_a_clear_error(tmp_path):
    key_path = tmp_path / "key.pem"
    key_path.write_text("not a key")
    with pytest.raises(PersistenceError, match=r"key\.pem.*delete the file"):
        DevIdentityProvider(ISSUER, key_path)


def test_for_server_keeps_the_key_in_the_project(tmp_path):
    provider = DevIdentityProvider.for_server(tmp_path, "0.0.0.0", 4321)
    assert provider.issuer == "http://127.0.0.1:4321/_dev/auth"
    assert provider.key_path == tmp_path / ".reactive" / "dev_auth_key.pem"
    assert provider.key_path.is_file()


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("127.0.0.1", "http://127.0.0.1:3210/_dev/auth"),
        ("0.0.0.0", "http://127.0.0.1:3210/_dev/auth"),
        ("localhost", "http://127.0.0.1:3210/_dev/auth"),
        ("::1", "http://[::1]:3210/_dev/auth"),
    ],
)
def test_issuer_url_is_where_the_server_reaches_itself(host, url):
    assert dev_issuer_url(host, 3210) == url


def test_issuer_url_needs_a_loopback_host():
    with pytest.raises(ValueError, match="loopback or wildcard host"):
        dev_issuer_url("192.168.1.20", 3210)


# -- routes ------------------------------------------------------------------------------------


async def test_discovery_names_this_issuer_and_its_keys(provider):
    async with http_to(provider) as http:
        discovery = (await http.get("/_dev/auth/.well-known/openid-configuration")).json()
        jwks = (await http.get("/_dev/auth/jwks")).json()

    assert discovery["issuer"] == ISSUER
    assert discovery["jwks_uri"] == f"{ISSUER}/jwks"
    assert [key["kid"] for key in jwks["keys"]] == [provider.kid]
    assert {"kty", "n", "e"} <= set(jwks["keys"][0]) and "d" not in jwks["keys"][0]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "needs a 'subject'"),
        ({"subject": ""}, "'subject' must not be blank"),
        ({"subject": 7}, "'subject' must be a string, got int"),
        ({"subject": "u\n1"}, "'subject' must not contain control characters"),
        ({"subject": "u" * 257}, "'subject' must be at most 256 characters"),
        ({"subject": "u", "role": "admin"}, "unknown token request field(s) ['role']"),
        ({"subject": "u", "email": "nope"}, "'email' must be an email address"),
        (["u"], "must be a JSON object, got list"),
    ],
)
async def test_token_route_names_what_is_wrong_with_a_request(provider, body, message):
    response = await request_token(provider, body)
    assert response.status_code == 400
    assert message in response.json()["message"]


async def test_token_route_refuses_a_body_that_is_not_json(provider):
    async with http_to(provider) as http:
        response = await http.post("/_dev/auth/token", content=b"subject=u")
    assert response.status_code == 400
    assert "must be JSON" in response.json()["message"]


async def test_token_route_refuses_pages_of_other_sites(provider):
    refused = await request_token(provider, {"subject": "u"}, origin="https://evil.example")
    allowed = await request_token(provider, {"subject": "u"}, origin="http://localhost:8000")

    assert refused.status_code == 403 and "Origin https://evil.example" in refused.text
    assert allowed.status_code == 200


async def test_token_route_refuses_remote_clients(provider):
    async with http_to(provider, client=("192.168.1.9", 5000)) as http:
        response = await http.post("/_dev/auth/token", json={"subject": "u"})
    assert response.status_code == 403
    assert "only to loopback clients, not 192.168.1.9" in response.json()["message"]


def test_dev_routes_serve_the_sign_in_page_and_the_taskboard(provider):
    with TestClient(issuer_app(provider), follow_redirects=False) as client:
        sign_in = client.get("/_dev/auth/")
        taskboard = client.get("/examples/taskboard/")
        script = client.get("/examples/taskboard/app.js")
        redirects = [client.get(path) for path in ("/_dev/auth", "/examples/taskboard")]

    assert sign_in.status_code == 200 and "<form" in sign_in.text
    assert taskboard.status_code == 200
    assert "node_modules/convex/dist/browser.bundle.js" in taskboard.text
    assert script.status_code == 200 and "api.users.store" in script.text
    assert [(r.status_code, r.headers["location"]) for r in redirects] == [
        (308, "/_dev/auth/"),
        (308, "/examples/taskboard/"),
    ]


# -- the seed app on a real dev server ---------------------------------------------------------


def call(server: DevServer, kind: str, path: str, token: str | None) -> dict[str, Any]:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    body = {"path": path, "args": {}, "format": "json"}
    response = httpx.post(f"{server.url}/api/{kind}", json=body, headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def dev_token(server: DevServer, **request: str) -> str:
    response = httpx.post(f"{server.url}/_dev/auth/token", json=request, timeout=10)
    assert response.status_code == 200, response.text
    return str(response.json()["token"])


def test_dev_sign_in_stores_the_user_and_keeps_working_after_a_restart(tmp_path):
    server = DevServer(ROOT, f"sqlite:///{tmp_path}/seed.db")
    with server:
        first = dev_token(server, subject="user_dev_ada", name="Ada", email="ada@example.test")
        stored = call(server, "mutation", "users:store", first)
        assert stored["status"] == "success", (stored, server.log()[-2000:])
        user = call(server, "query", "users:current", first)["value"]

        renamed = dev_token(server, subject="user_dev_ada", name="Ada L.")  # no email claim
        again = call(server, "mutation", "users:store", renamed)["value"]
        after_rename = call(server, "query", "users:current", renamed)["value"]
        call(server, "mutation", "users:store", renamed)  # nothing changed: nothing written
        unchanged = call(server, "query", "users:current", renamed)["value"]

        bare = dev_token(server, subject="user_dev_bare")
        call(server, "mutation", "users:store", bare)
        bare_user = call(server, "query", "users:current", bare)["value"]
        signed_out = call(server, "mutation", "users:store", None)
        server.stop()
        server.start()  # same port and project key: tokens issued before still verify
        after_restart = call(server, "query", "users:current", first)

    assert user["_id"] == stored["value"] and user["clerkId"] == "user_dev_ada"
    assert (user["email"], user["name"], user["plan"], user["credits"]) == (
        "ada@example.test",
        "Ada",
        "free",
        100.0,
    )
    assert again == user["_id"]
    assert after_rename["name"] == "Ada L." and after_rename["email"] == "ada@example.test"
    assert after_rename["updatedAt"] > user["updatedAt"]
    assert unchanged == after_rename
    assert (bare_user["clerkId"], bare_user["email"]) == ("user_dev_bare", "")
    assert "name" not in bare_user
    assert signed_out["errorData"]["code"] == "UNAUTHORIZED"
    assert after_restart["value"]["_id"] == user["_id"]
