"""The dashboard in headless Chromium (Debian's `chromium`), driven by playwright-core from
tests/browser/dashboard.mjs against a real `reactive dev` of the seed app: tables, paging
through 1,000 rows, a live edit seen by a second page, an invalid edit refused, functions run
as a chosen user, the logs view.

Needs what tests/test_taskboard_browser.py needs (node >= 20, /usr/bin/chromium, `npm ci
--prefix tests/browser`) plus the convex bundle `./scripts/setup` copies into
reactive/dashboard_assets/vendor/; without them this test skips, except under CI (env CI
non-empty), where it fails. Screenshots of each view are kept in tests/browser/screenshots/
(not committed).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from reactive.database import Database
from reactive.http import DASHBOARD_ASSETS
from tests.browser.dev_server import DevServer
from tests.live_server import LiveServer
from tests.node_tools import require_file
from tests.seed_helpers import ROOT
from tests.test_taskboard_browser import CHROMIUM, SCREENSHOTS, run_browser_script
from tests.test_taskboard_browser import node as node  # the fixture

SCRIPT_TIMEOUT_S = 180.0
STEP_TIMEOUT_MS = 20_000
SEEDED = 1_000
SUBJECT = "user_dashboard"
#: A value that runs script if the page ever renders data as HTML.
XSS_PROBE = '<img src=x onerror="document.body.dataset.pwned = 1">'


async def _seed_users(database_url: str, count: int) -> None:
    """`count` users written by another process on the server's database (as `reactive
    import` would): the server learns them like any commit."""
    db = await Database.open(database_url)
    try:

        async def insert(tx: Any) -> None:
            now = time.time() * 1000
            for n in range(count):
                user = {
                    "clerkId": f"seed_{n:04d}",
                    "email": f"seed{n}@example.test",
                    "name": XSS_PROBE if n == 0 else f"Seeded user {n:04d}",
                    "plan": "free",
                    "credits": 10.0,
                    "createdAt": now,
                    "updatedAt": now,
                }
                await tx.insert("users", user)

        await db.run_mutation(insert)

        async def probe(tx: Any) -> None:
            # Values JSON cannot tell apart, in a table the schema leaves unchecked.
            first_user = (await tx.query("users").take(1))[0]["_id"]
            value = {"big": 2**40 + 1, "raw": b"\x00\xffa", "nested": {"deep": [1.5, None]}}
            await tx.insert("valueProbes", value | {"owner": first_user})

        await db.run_mutation(probe)
    finally:
        await db.close()


def _run_dashboard_script(
    node: str, server: LiveServer, script: str = "dashboard.mjs", **extra: Any
) -> dict[str, Any]:
    params = {
        "executablePath": str(CHROMIUM),
        "screenshotDir": str(SCREENSHOTS),
        "timeoutMs": STEP_TIMEOUT_MS,
        "seeded": SEEDED,
        "subject": SUBJECT,
        "xssProbe": XSS_PROBE,
        **extra,
    }
    return run_browser_script(node, script, server, params, SCRIPT_TIMEOUT_S)


def test_the_dashboard_pages_edits_runs_and_logs_live(node, tmp_path):
    require_file(
        DASHBOARD_ASSETS / "vendor" / "convex.bundle.js", "./scripts/setup", "the dashboard test"
    )
    database_url = f"sqlite:///{tmp_path}/dashboard.db"
    with DevServer(ROOT, database_url) as server:
        asyncio.run(_seed_users(database_url, SEEDED))
        result = _run_dashboard_script(node, server)

    for path in result["screenshots"]:
        print(f"dashboard screenshot: {path}")
    print(f"dashboard timings: {result['timings']}")
    tables = dict(result["tables"])
    assert {"users", "projects", "tasks", "comments", "_storage"} <= tables.keys()
    assert tables["users"] == SEEDED
    # 50 a page; a full last page is not known to be the last until the next one is read.
    assert result["pagedRows"] == SEEDED and result["pages"] in (SEEDED // 50, SEEDED // 50 + 1)
    assert result["backOnePage"] == result["pages"] - 1
    assert result["xssProbeShownAsText"] is True and result["pwned"] is None
    assert result["nameInB"] == "Edited in the dashboard"
    assert "credits" in result["invalidEditError"]
    assert result["nameAfterInvalidInB"] == "Edited in the dashboard"
    assert result["run:users:store"]["error"] == ""
    assert result["run:projects:create"]["error"] == ""
    assert "mutation" in result["run:projects:create"]["meta"]
    assert result["projectNamesInB"] == ["Made in the dashboard"]
    assert "projects:create" in result["loggedCreate"]
    assert result["liveRunMeta"].startswith("live")
    probe = result["probe"]
    assert f"{2**40 + 1}n" in probe["text"] and "bytes(3) AP9h" in probe["text"]
    assert probe["int64Title"] == "int64" and probe["linkedTo"] == probe["ownerId"]
    assert probe["openedLinkClerkId"] == "seed_0000"
    assert "(this node)" in result["nodesTable"] and "live" in result["nodesTable"]
    # The official client reports the refused edit on the console; nothing else may appear.
    expected = 'Uncaught ValidationError: Document in table "users" does not match the schema'
    assert [problem for problem in result["problems"] if expected not in problem] == []
    for path in map(Path, result["screenshots"]):
        assert path.parent == SCREENSHOTS
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_production_dashboard_asks_for_the_admin_key_once(node, tmp_path):
    require_file(
        DASHBOARD_ASSETS / "vendor" / "convex.bundle.js", "./scripts/setup", "the dashboard test"
    )
    key = "browser-test-admin-key-42"
    database_url = f"sqlite:///{tmp_path}/serve.db"
    with LiveServer(ROOT, database_url, env={"REACTIVE_ADMIN_KEY": key}, dev=False) as server:
        result = _run_dashboard_script(node, server, "dashboard_sign_in.mjs", adminKey=key)

    for path in result["screenshots"]:
        print(f"dashboard screenshot: {path}")
    assert result["firstStatus"] == 401
    assert result["formFields"] == ["key"]
    assert "not the admin key" in result["wrongKeyMessage"]
    assert {"users", "projects", "tasks"} <= set(result["tablesAfterSignIn"])
    assert result["readyAfterReload"] is True
