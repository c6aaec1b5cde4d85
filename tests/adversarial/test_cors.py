"""CORS: the public API answers every origin like Convex's own deployments do (`*`, no
credentials); admin routes answer no CORS at all."""

from __future__ import annotations

import httpx

from tests.adversarial.attacks import EVIL_ORIGIN


def preflight(server, path):
    return httpx.options(
        f"{server.url}{path}",
        headers={
            "Origin": EVIL_ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,authorization",
        },
    )


def test_public_api_answers_an_evil_origin_without_credentials(dev_server):
    response = httpx.post(
        f"{dev_server.url}/api/query",
        json={"path": "files:count", "args": {}},
        headers={"Origin": EVIL_ORIGIN, "Cookie": "session=abc"},
    )
    assert response.json()["status"] == "success"  # the official browser client works
    assert response.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in response.headers


def test_public_api_preflight_admits_an_evil_origin_without_credentials(dev_server):
    response = preflight(dev_server, "/api/mutation")
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"
    assert "authorization" in response.headers["access-control-allow-headers"].lower()
    assert "access-control-allow-credentials" not in response.headers


def test_admin_routes_answer_no_cors_preflight(dev_server):
    for path in ("/api/deploy", "/api/logs"):
        response = preflight(dev_server, path)
        assert "access-control-allow-origin" not in response.headers, path
        assert "access-control-allow-credentials" not in response.headers, path
