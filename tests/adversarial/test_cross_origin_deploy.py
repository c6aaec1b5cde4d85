"""A web page the developer visits must not deploy code to `reactive dev`.

A text/plain POST needs no CORS preflight, so a page of any site can send one to
127.0.0.1:3210; the deploy route itself has to refuse it before any of the bundle runs. Each
attack's bundle writes a marker file if its code runs; the control tests show it does when a
deploy is accepted, so the marker's absence means something.
"""

from __future__ import annotations

import shutil

import httpx
import pytest

from reactive.tools.cli import main
from tests.adversarial.attacks import EVIL_ORIGIN, call, deploy_events, marker_bundle


def post_deploy(server, bundle, *, query="", **headers):
    return httpx.post(
        f"{server.url}/api/deploy{query}",
        content=bundle,
        headers={"Content-Type": "text/plain", **headers},
        timeout=30,
    )


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"Origin": EVIL_ORIGIN}, id="origin-of-another-site"),
        pytest.param({"Origin": "null"}, id="opaque-origin"),
        pytest.param({"Sec-Fetch-Site": "cross-site"}, id="fetch-metadata-only"),
        pytest.param(
            {"Origin": "http://127.0.0.1:1", "Sec-Fetch-Site": "same-site"}, id="other-port"
        ),
    ],
)
def test_a_deploy_from_a_page_of_another_site_is_refused_and_runs_nothing(
    dev_server, tmp_path, deploy_dir, headers
):
    marker = tmp_path / "pwned"
    response = post_deploy(dev_server, marker_bundle(marker), **headers)
    assert response.status_code == 403, response.text
    assert "access-control-allow-origin" not in response.headers
    assert not marker.exists()
    assert not deploy_dir.exists() or not any(deploy_dir.iterdir())  # not even unpacked
    assert call(dev_server.url, "query", "files:count") == 0.0  # the old code still serves


def test_a_dns_rebound_page_cannot_deploy(dev_server, tmp_path):
    """evil.example resolving to 127.0.0.1: the browser calls it same-origin, but the Origin
    and Host name the attacker's site, not the server's own address."""
    marker = tmp_path / "pwned"
    rebound = f"evil.example:{dev_server.port}"
    response = post_deploy(
        dev_server,
        marker_bundle(marker),
        Host=rebound,
        Origin=f"http://{rebound}",
        **{"Sec-Fetch-Site": "same-origin"},
    )
    assert response.status_code == 403, response.text
    assert not marker.exists()


def test_a_dry_run_runs_none_of_the_bundle(dev_server, tmp_path):
    marker = tmp_path / "pwned"
    response = post_deploy(dev_server, marker_bundle(marker), query="?dry_run=1")
    assert response.status_code == 200
    assert deploy_events(response) == ["done"]
    assert '"functions":1' in response.text
    assert not marker.exists()
    with pytest.raises(AssertionError, match="Could not find"):
        call(dev_server.url, "query", "pwn:hello")


def test_control_a_deploy_from_the_server_own_page_runs_the_bundle(dev_server, tmp_path):
    marker = tmp_path / "pwned"
    response = post_deploy(dev_server, marker_bundle(marker), Origin=dev_server.url)
    assert deploy_events(response) == ["done"], response.text
    assert marker.read_text() == "ran"
    assert call(dev_server.url, "query", "pwn:hello") == "pwned"


def test_control_the_cli_still_deploys_to_a_dev_server_without_a_key(
    dev_server, project, tmp_path, capsys
):
    version = tmp_path / "v2"
    shutil.copytree(project, version, ignore=shutil.ignore_patterns("__pycache__", ".reactive"))
    (version / "functions" / "extra.py").write_text(
        "from reactive import query\n\n\n@query(args={})\nasync def ping(ctx, args):\n"
        "    return 'pong'\n"
    )
    assert main(["deploy", "--dir", str(version), "--url", dev_server.url]) == 0, (
        capsys.readouterr().err
    )
    assert call(dev_server.url, "query", "extra:ping") == "pong"
