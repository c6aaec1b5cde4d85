"""A web page must not read the function logs of `reactive dev` (they carry arguments, log
lines and errors of the developer's code); local tools without an Origin still can."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.adversarial.attacks import EVIL_ORIGIN


def first_log_line(server, **headers):
    """(status, CORS origin header, first line of the body) of GET /api/logs."""
    with httpx.stream("GET", f"{server.url}/api/logs", headers=headers, timeout=10) as response:
        line = next(response.iter_lines(), "")
        return response.status_code, response.headers.get("access-control-allow-origin"), line


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"Origin": EVIL_ORIGIN}, id="origin-of-another-site"),
        pytest.param({"Sec-Fetch-Site": "cross-site"}, id="fetch-metadata-only"),
    ],
)
def test_logs_refuse_a_page_of_another_site(dev_server, headers):
    status, allow_origin, line = first_log_line(dev_server, **headers)
    assert status == 403
    assert allow_origin is None
    assert "connected" not in line


def test_logs_refuse_a_dns_rebound_host_name(dev_server):
    # A same-origin GET carries no Origin: the Host header is what names the attacker's site.
    status, _, _ = first_log_line(
        dev_server,
        Host=f"evil.example:{dev_server.port}",
        **{"Sec-Fetch-Site": "same-origin"},
    )
    assert status == 403


def test_control_logs_answer_a_local_tool(dev_server):
    status, allow_origin, line = first_log_line(dev_server)
    assert status == 200
    assert allow_origin is None
    assert json.loads(line) == {"type": "connected"}
