"""`reactive deploy`: validate against the server's database, backfill, then switch code."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest

from reactive.tools.cli import main
from tests.live_server import LiveServer

CHAT = Path(__file__).parent / "projects" / "chat"
KEY = "deploy-key-for-tests"


@pytest.fixture
def server(tmp_path):
    project = tmp_path / "running"
    shutil.copytree(CHAT, project, ignore=shutil.ignore_patterns("__pycache__"))
    env = {"REACTIVE_ADMIN_KEY": KEY, "REACTIVE_DEPLOY_DIR": str(tmp_path / "deploys")}
    with LiveServer(project, f"sqlite:///{tmp_path}/deploy.db", env=env, dev=False) as live:
        yield live


def call(server, kind, path, args):
    return httpx.post(f"{server.url}/api/{kind}", json={"path": path, "args": args}).json()


def new_version(tmp_path, name, *, schema_edit=None, code_edit=None):
    project = tmp_path / name
    shutil.copytree(CHAT, project, ignore=shutil.ignore_patterns("__pycache__"))
    if schema_edit:
        path = project / "schema.py"
        path.write_text(schema_edit(path.read_text()))
    if code_edit:
        path = project / "functions" / "messages.py"
        path.write_text(code_edit(path.read_text()))
    return project


def add_body_index(text):
    return text.replace(
        '.index("by_channel", ["channel"])',
        '.index("by_channel", ["channel"]).index("by_body", ["body"])',
    )


BY_BODY = """

@query(args={"body": v.string()})
async def by_body(ctx, args):
    found = ctx.db.query("messages").with_index("by_body", lambda q: q.eq("body", args["body"]))
    return [m["channel"] for m in await found.collect()]
"""


def deploy(project, server, *extra):
    return main(["deploy", "--dir", str(project), "--url", server.url, "--admin-key", KEY, *extra])


def test_deploy_backfills_new_indexes_then_serves_the_new_code(server, tmp_path, capsys):
    for channel in ("a", "b", "c"):
        call(server, "mutation", "messages:send", {"channel": channel, "body": "same"})
    project = new_version(
        tmp_path, "v2", schema_edit=add_body_index, code_edit=lambda text: text + BY_BODY
    )
    assert deploy(project, server) == 0
    out = capsys.readouterr().out
    assert "messages.by_body" in out and "3 rows backfilled" in out
    assert call(server, "query", "messages:by_body", {"body": "same"})["value"] == ["a", "b", "c"]
    # and the index is kept up to date from now on
    call(server, "mutation", "messages:send", {"channel": "d", "body": "same"})
    assert call(server, "query", "messages:by_body", {"body": "same"})["value"][-1] == "d"


def test_a_broken_deploy_keeps_the_running_code(server, tmp_path, capsys):
    broken = new_version(tmp_path, "broken", code_edit=lambda text: text + "\ndef oops(:\n")
    assert deploy(broken, server) == 1
    assert "deploy refused" in capsys.readouterr().err
    assert call(server, "query", "messages:count", {"channel": "x"})["status"] == "success"


def test_a_schema_existing_data_violates_is_refused(server, tmp_path, capsys):
    call(server, "mutation", "messages:send", {"channel": "a", "body": "text"})
    stricter = new_version(
        tmp_path,
        "strict",
        schema_edit=lambda text: text.replace('"body": v.string()', '"body": v.float64()'),
    )
    assert deploy(stricter, server) == 1
    err = capsys.readouterr().err
    assert "deploy refused" in err and "body" in err
    assert (
        call(server, "mutation", "messages:send", {"channel": "a", "body": "still"})["status"]
        == "success"
    )


def test_dry_run_switches_nothing(server, tmp_path, capsys):
    project = new_version(
        tmp_path, "dry", code_edit=lambda text: text + BY_BODY, schema_edit=add_body_index
    )
    assert deploy(project, server, "--dry-run") == 0
    assert "dry run" in capsys.readouterr().out
    assert (
        "Could not find" in call(server, "query", "messages:by_body", {"body": "x"})["errorMessage"]
    )


def test_deploy_needs_the_admin_key(server, tmp_path, capsys):
    project = new_version(tmp_path, "v3")
    assert main(["deploy", "--dir", str(project), "--url", server.url, "--admin-key", "no"]) == 1
    assert "401" in capsys.readouterr().err


def test_deploy_of_a_directory_without_a_project_is_a_usage_error(tmp_path, capsys):
    assert main(["deploy", "--dir", str(tmp_path), "--url", "http://127.0.0.1:9"]) == 2
