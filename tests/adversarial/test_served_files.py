"""An uploaded file is served so that it cannot run script in the server's origin: never
type-sniffed, and active content (HTML, SVG, XML, JavaScript, ...) only as a sandboxed
download."""

from __future__ import annotations

import httpx

from tests.adversarial.attacks import call, upload

SCRIPT = b"<script>fetch('/api/logs').then(r => r.text()).then(alert)</script>"

ACTIVE = {
    "text/html": b"<!doctype html>" + SCRIPT,
    "text/html; charset=utf-8": b"<!doctype html>" + SCRIPT,
    "TEXT/HTML": SCRIPT,
    "image/svg+xml": b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
    "application/xhtml+xml": b'<html xmlns="http://www.w3.org/1999/xhtml">' + SCRIPT + b"</html>",
    "text/xml": b"<x/>",
    "application/javascript": b"alert(1)",
    "text/javascript": b"alert(1)",
    "application/x-unknown": SCRIPT,
}
INERT = {
    "image/png": b"\x89PNG\r\n\x1a\n" + SCRIPT,
    "application/pdf": b"%PDF-1.4 " + SCRIPT,
    "text/plain": SCRIPT,
    "video/mp4": b"\x00\x00\x00\x18ftypmp42",
}


def served(server, content_type, data):
    upload_url = call(server.url, "mutation", "files:upload_url")
    response = upload(upload_url, data, content_type)
    assert response.status_code == 200, response.text
    file_url = call(server.url, "query", "files:url", {"storageId": response.json()["storageId"]})
    return httpx.get(file_url)


def test_active_content_is_served_as_a_sandboxed_attachment(storage_server):
    for content_type, data in ACTIVE.items():
        response = served(storage_server, content_type, data)
        assert response.content == data, content_type
        assert response.headers["x-content-type-options"] == "nosniff", content_type
        assert response.headers["content-disposition"] == "attachment", content_type
        csp = response.headers["content-security-policy"]
        assert csp == "sandbox; default-src 'none'", content_type


def test_inert_content_is_served_inline_and_never_sniffed(storage_server):
    for content_type, data in INERT.items():
        response = served(storage_server, content_type, data)
        assert response.content == data, content_type
        assert response.headers["content-type"].startswith(content_type), content_type
        assert response.headers["x-content-type-options"] == "nosniff", content_type
        assert "content-disposition" not in response.headers, content_type
