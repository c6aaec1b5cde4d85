from __future__ import annotations

from pathlib import Path

import pytest

from reactive.errors import NotFoundError, SchemaError, ValidationError
from reactive.functions import (
    FunctionKind,
    HttpRouter,
    count_functions_in_source,
    http_action,
    load_project,
    mutation,
    normalize_path,
    query,
)
from reactive.validators import v

CHAT = Path(__file__).parent / "projects" / "chat"


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        ("messages:list", "messages:list"),
        ("messages.js:list", "messages:list"),
        ("dir/file:fn", "dir/file:fn"),
        ("dir/file", "dir/file:default"),
        ("a:b:c", "a:b:c"),
    ],
)
def test_normalize_path(raw, path):
    assert normalize_path(raw) == path


@pytest.mark.parametrize("raw", ["", None, 5, "x" * 600])
def test_bad_paths_are_not_found(raw):
    with pytest.raises(NotFoundError):
        normalize_path(raw)


def test_load_project_registers_paths_and_visibility():
    project = load_project(CHAT)
    path, fn = project.registry.lookup("messages:list", allow_internal=False)
    assert path == "messages:list" and fn.kind is FunctionKind.QUERY
    with pytest.raises(NotFoundError, match="Could not find public function"):
        project.registry.lookup("messages:send_internal", allow_internal=False)
    assert project.registry.lookup("messages:send_internal", allow_internal=True)
    assert project.http is not None and project.http.lookup("POST", "/hooks/echo")
    assert project.schema is not None and "messages" in project.schema.tables


def test_decorators_validate_configuration_when_applied():
    with pytest.raises((SchemaError, ValidationError, TypeError, ValueError)):

        @query(args={"x": str})
        async def bad(ctx, args):
            return None

    with pytest.raises((ValidationError, TypeError)):

        @mutation(returns="string")
        async def bad_returns(ctx, args):
            return None


def test_decorator_forms():
    @query
    async def plain(ctx, args):
        return 1

    @mutation(args={"n": v.float64()})
    async def configured(ctx, args):
        return args["n"]

    assert plain.kind is FunctionKind.QUERY and plain.args is None
    assert configured.kind is FunctionKind.MUTATION and configured.args is not None


def test_http_router_matches_exact_then_longest_prefix():
    router = HttpRouter()

    async def handler(ctx, request):
        return None

    router.route(path="/a/b", method="GET", handler=handler)
    router.route(path_prefix="/a/", method="GET", handler=http_action(handler))
    router.route(path_prefix="/a/b/", method="POST", handler=handler)
    assert router.lookup("GET", "/a/b").prefix is False
    assert router.lookup("GET", "/a/c").path == "/a/"
    assert router.lookup("POST", "/a/b/c").path == "/a/b/"
    assert router.lookup("DELETE", "/a/b") is None
    assert router.allowed_methods("/a/b") == {"GET"}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"path": "nope", "method": "GET"},
        {"path": "/api/x", "method": "GET"},
        {"path": "/x", "method": "BREW"},
        {"path": "/x", "path_prefix": "/y/", "method": "GET"},
        {"path_prefix": "/y", "method": "GET"},
    ],
)
def test_http_router_refuses_bad_routes(kwargs):
    async def handler(ctx, request):
        return None

    with pytest.raises(ValueError):
        HttpRouter().route(handler=handler, **kwargs)


def test_counting_functions_in_source_matches_loading_and_runs_nothing(tmp_path):
    assert count_functions_in_source(CHAT) == len(load_project(CHAT).registry.functions)
    marker = tmp_path / "ran"
    (tmp_path / "functions").mkdir()
    (tmp_path / "functions" / "a.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).touch()\n"
        "from reactive import query\n\n@query(args={})\nasync def f(ctx, args):\n    return 1\n"
    )
    assert count_functions_in_source(tmp_path) == 1
    assert not marker.exists()


def test_counting_functions_in_source_reports_a_syntax_error_with_its_file(tmp_path):
    (tmp_path / "functions").mkdir()
    (tmp_path / "functions" / "broken.py").write_text("def oops(:\n")
    with pytest.raises(SyntaxError) as raised:
        count_functions_in_source(tmp_path)
    assert raised.value.filename == "functions/broken.py"


def test_a_function_path_over_the_limit_is_refused_without_echoing_it():
    with pytest.raises(NotFoundError) as caught:
        normalize_path("a" * (4 << 20) + ":b")
    assert caught.value.short_msg == "BadConvexFunctionIdentifier"
    assert "too long" in str(caught.value) and len(str(caught.value)) < 500


def test_an_http_route_may_set_its_own_body_limit():
    router = HttpRouter()

    async def handler(ctx, request):
        return None

    router.route(path="/small", method="POST", handler=handler, max_body_bytes=10)
    router.route(path="/default", method="POST", handler=handler)
    assert router.lookup("POST", "/small").max_body_bytes == 10
    assert router.lookup("POST", "/default").max_body_bytes is None
    with pytest.raises(ValueError, match="max_body_bytes"):
        router.route(path="/bad", method="POST", handler=handler, max_body_bytes=-1)
