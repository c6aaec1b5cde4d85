"""The author API: `from reactive import ...` is all a project needs, and its types catch
mistakes (mypy --strict on author code)."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest
from starlette.testclient import TestClient

import reactive
from reactive.functions import FunctionDef
from reactive.http import create_app

ROOT = Path(__file__).parent.parent
DESIGN_EXAMPLE = Path(__file__).parent / "projects" / "design_example"
TYPECHECK = Path(__file__).parent / "typecheck"
#: Projects that must import only the author API (examples/ also shows the engine and the
#: native client, which have their own entry points: reactive.database, reactive.client).
PROJECT_DIRS = [
    ROOT / "functions",
    ROOT / "tests" / "projects",
    ROOT / "bench" / "projects",
    ROOT / "tests" / "codegen" / "kinds",
]


def test_every_public_name_is_importable_from_the_package():
    for name in reactive.__all__:
        assert getattr(reactive, name) is not None, name


def test_query_is_the_decorator_not_a_module():
    @reactive.query(args={})
    async def handler(ctx: reactive.QueryCtx, args: dict[str, object]) -> int:
        return 1

    assert isinstance(handler, FunctionDef)


def test_the_design_docs_example_loads_and_serves(tmp_path):
    app = create_app(DESIGN_EXAMPLE, database_url=f"sqlite:///{tmp_path}/d.db", dev=False)
    with TestClient(app) as client:
        sent = client.post(
            "/api/mutation",
            json={"path": "messages:send", "args": {"channel": "a", "body": "hi"}},
        ).json()
        assert sent["status"] == "success", sent
        listed = client.post(
            "/api/query", json={"path": "messages:list", "args": {"channel": "a"}}
        ).json()
        assert [m["body"] for m in listed["value"]] == ["hi"]
        empty = client.post(
            "/api/mutation",
            json={"path": "messages:send", "args": {"channel": "a", "body": " "}},
        ).json()
        assert empty["status"] == "error" and empty["errorData"] == {"code": "EMPTY_BODY"}


def _project_files() -> list[Path]:
    return [p for d in PROJECT_DIRS for p in d.rglob("*.py") if "_generated" not in p.parts]


def test_projects_import_only_the_author_api():
    offenders = []
    for path in _project_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("reactive."):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.module}")
            if isinstance(node, ast.Import):
                offenders += [
                    f"{path.relative_to(ROOT)}:{node.lineno} {a.name}"
                    for a in node.names
                    if a.name.startswith("reactive.")
                ]
    assert offenders == []


def _mypy(target: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", str(target)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )


def test_typed_handlers_pass_mypy_strict():
    result = _mypy(TYPECHECK / "good.py")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_reports_every_marked_mistake_and_nothing_else():
    path = TYPECHECK / "bad.py"
    expected = {
        number: marker.group(1).strip()
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if (marker := re.search(r"# E: (.*)$", line))
    }
    result = _mypy(path)
    reported: dict[int, list[str]] = {}
    for line in result.stdout.splitlines():
        found = re.match(r".*bad\.py:(\d+): error: (.*)", line)
        if found:
            reported.setdefault(int(found.group(1)), []).append(found.group(2))
    assert set(reported) == set(expected), result.stdout
    for number, text in expected.items():
        assert any(text in message for message in reported[number]), (number, reported[number])


@pytest.mark.parametrize("name", ["query", "mutation", "action", "internal_query"])
def test_decorators_keep_the_handler_callable(name):
    decorator = getattr(reactive, name)

    async def handler(ctx: object, args: dict[str, object]) -> str:
        return "called"

    registered = decorator(args={"x": reactive.v.string()})(handler)
    assert registered.handler is handler and registered.args is not None
