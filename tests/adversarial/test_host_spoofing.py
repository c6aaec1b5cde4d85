"""Upload and file URLs name the configured address, never a request's Host header: a
spoofed Host on the first request must not send every later upload to the attacker."""

from __future__ import annotations

import httpx

from tests.adversarial.attacks import call
from tests.adversarial.conftest import storage_env
from tests.browser.dev_server import DevServer
from tests.live_server import LiveServer

SPOOFED = {"Host": "evil.example"}


def spoofed_urls(server):
    """An upload URL and a file URL made while answering requests with a spoofed Host (the
    server's very first requests, so no earlier request could have fixed its address)."""
    upload_url = call(server.url, "mutation", "files:upload_url", headers=SPOOFED)
    file_url = call(server.url, "action", "files:store_text", {"text": "hi"}, headers=SPOOFED)
    return upload_url, file_url


class _FirstRequestIsSpoofed(LiveServer):
    """Readiness is polled with the spoofed Host too, so it really is the first request."""

    def is_ready(self) -> bool:
        return httpx.get(f"{self.url}/health", headers=SPOOFED, timeout=1.0).status_code == 200


def test_a_spoofed_host_does_not_change_upload_or_file_urls(store_url, project, blob_dir):
    with _FirstRequestIsSpoofed(project, store_url, env=storage_env(blob_dir), dev=False) as live:
        upload_url, file_url = spoofed_urls(live)
    assert upload_url.startswith(f"{live.url}/api/storage/upload?token=")
    assert file_url.startswith(f"{live.url}/api/storage/")


def test_reactive_url_decides_upload_and_file_urls(store_url, project, blob_dir):
    env = storage_env(blob_dir, REACTIVE_URL="https://files.example.test/")
    with LiveServer(project, store_url, env=env, dev=False) as live:
        upload_url, file_url = spoofed_urls(live)
    assert upload_url.startswith("https://files.example.test/api/storage/upload?token=")
    assert file_url.startswith("https://files.example.test/api/storage/")


def test_reactive_dev_names_its_own_bind_address(project, tmp_path, blob_dir):
    env = storage_env(blob_dir)
    with DevServer(project, f"sqlite:///{tmp_path}/dev.db", env=env) as dev:
        upload_url, file_url = spoofed_urls(dev)
    assert upload_url.startswith(f"http://127.0.0.1:{dev.port}/api/storage/upload?token=")
    assert file_url.startswith(f"http://127.0.0.1:{dev.port}/api/storage/")
