"""The taskboard example in two real browsers: headless Chromium (Debian's `chromium`) driven by
playwright-core from tests/browser/two_browsers.mjs against a dev server of the seed app.

Needs `node` >= 20, /usr/bin/chromium (`apt-get install chromium`) and
`npm ci --prefix tests/browser`; without them this test skips, except under CI (env CI
non-empty), where it fails. Screenshots are kept in tests/browser/screenshots/ (not committed).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser.dev_server import DevServer
from tests.live_server import LiveServer
from tests.node_tools import node_with_packages, require_file
from tests.seed_helpers import ROOT

BROWSER_TESTS = Path(__file__).parent / "browser"
SCREENSHOTS = BROWSER_TESTS / "screenshots"
CHROMIUM = Path(os.environ.get("REACTIVE_TEST_CHROMIUM", "/usr/bin/chromium"))
SCRIPT_TIMEOUT_S = 120.0
STEP_TIMEOUT_MS = 20_000

SUBJECT, NAME = "user_taskboard", "Tess Board"
PROJECT, TASK = "Launch plan", "Write the docs"


WHAT = "the browser test"


@pytest.fixture(scope="module")
def node() -> str:
    """The `node` executable, once Chromium and the npm packages are installed."""
    executable = node_with_packages(WHAT, BROWSER_TESTS, "playwright-core", "convex")
    require_file(CHROMIUM, "apt-get install -y chromium", WHAT)
    return executable


def run_two_browsers(node: str, server: DevServer) -> dict[str, Any]:
    params = {
        "executablePath": str(CHROMIUM),
        "screenshotDir": str(SCREENSHOTS),
        "subject": SUBJECT,
        "name": NAME,
        "project": PROJECT,
        "task": TASK,
        "timeoutMs": STEP_TIMEOUT_MS,
    }
    return run_browser_script(node, "two_browsers.mjs", server, params, SCRIPT_TIMEOUT_S)


def run_browser_script(
    node: str, script: str, server: LiveServer, params: dict[str, Any], timeout_s: float
) -> dict[str, Any]:
    """Run tests/browser/`script` against `server`: the JSON line it printed last. The test
    fails, with the script's stderr and the server's log, if it exits non-zero or times out."""
    command = [node, str(BROWSER_TESTS / script), server.url, json.dumps(params)]
    try:
        done = subprocess.run(
            command, cwd=BROWSER_TESTS, capture_output=True, text=True, timeout=timeout_s
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{script} timed out\n{exc.stderr!r}\n{server.log()[-4000:]}")
    if done.returncode != 0:
        pytest.fail(
            f"{script} exited {done.returncode}\n--- stderr ---\n{done.stderr[-8000:]}"
            f"\n--- server log (tail) ---\n{server.log()[-4000:]}"
        )
    return json.loads(done.stdout.splitlines()[-1])  # type: ignore[no-any-return]


def column_titles(server: DevServer, project_id: str, status: str) -> list[str]:
    """One board column as the server has it, read over the HTTP API as the same dev user."""
    token = httpx.post(f"{server.url}/_dev/auth/token", json={"subject": SUBJECT}).json()["token"]
    body = {"path": "tasks:listByStatus", "args": {"projectId": project_id, "status": status}}
    response = httpx.post(
        f"{server.url}/api/query",
        json=body | {"format": "json"},
        headers={"Authorization": f"Bearer {token}"},
    )
    return [task["title"] for task in response.json()["value"]]


def test_a_task_created_and_moved_in_one_browser_shows_up_in_the_other(node, tmp_path):
    with DevServer(ROOT, f"sqlite:///{tmp_path}/taskboard.db") as server:
        result = run_two_browsers(node, server)
        done_on_server = column_titles(server, result["projectId"], "done")
        todo_on_server = column_titles(server, result["projectId"], "todo")

    for path in result["screenshots"]:
        print(f"taskboard screenshot: {path}")
    empty = {"todo": [], "in_progress": [], "done": []}
    assert result["projectNameInB"] == PROJECT
    assert result["afterCreate"] == {"a": empty | {"todo": [TASK]}, "b": empty | {"todo": [TASK]}}
    assert result["afterMove"] == {"a": empty | {"done": [TASK]}, "b": empty | {"done": [TASK]}}
    assert (todo_on_server, done_on_server) == ([], [TASK])
    assert result["problems"] == []
    for path in map(Path, result["screenshots"]):
        assert path.parent == SCREENSHOTS
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
