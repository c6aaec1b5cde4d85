"""`reactive dev`: serves a project, reloads on change without dropping sockets."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.live_server import REPO, free_port, open_sync_socket

CHAT = Path(__file__).parent / "projects" / "chat"


@pytest.fixture
def dev_server(tmp_path):
    project = tmp_path / "chat"
    shutil.copytree(CHAT, project, ignore=shutil.ignore_patterns("__pycache__"))
    port = free_port()
    log_path = tmp_path / "dev.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "reactive.tools.cli",
                "dev",
                "--dir",
                str(project),
                "--port",
                str(port),
                "--db",
                f"sqlite:///{tmp_path}/dev.db",
            ],
            stdout=log,
            stderr=log,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.05)
    try:
        yield project, url, log_path
    finally:
        process.terminate()
        process.wait(timeout=10)


def count(url, channel):
    body = httpx.post(
        f"{url}/api/query", json={"path": "messages:count", "args": {"channel": channel}}
    ).json()
    return body.get("value", body)


async def next_value(ws, timeout=15):
    deadline = time.monotonic() + timeout
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), deadline - time.monotonic()))
        if message["type"] == "Transition" and message["modifications"]:
            return message["modifications"][0]["value"]


async def test_dev_reloads_code_and_keeps_serving_the_last_good_version(dev_server):
    project, url, log_path = dev_server
    assert count(url, "a") == 0.0
    ws = await open_sync_socket(url, "messages:count", {"channel": "a"}, session_id="dev")
    try:
        assert await next_value(ws) == 0.0
        source = project / "functions" / "messages.py"
        text = source.read_text()
        source.write_text(
            text.replace(
                'return float(len(await _channel(ctx, args["channel"]).collect()))',
                'return float(len(await _channel(ctx, args["channel"]).collect())) + 100',
                1,
            )
        )
        # the same socket gets the new code's result: no reconnect needed
        assert await next_value(ws) == 100.0
        source.write_text(source.read_text() + "\ndef broken(:\n")
        deadline = time.monotonic() + 15
        while "still serving the last good version" not in log_path.read_text():
            assert time.monotonic() < deadline, log_path.read_text()
            await asyncio.sleep(0.1)
        assert count(url, "a") == 100.0
        assert "SyntaxError" in log_path.read_text()
    finally:
        await ws.close()
