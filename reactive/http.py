"""The Starlette app: WebSocket sync, the /api/* HTTP API, HTTP actions, CORS.

Errors become status codes and close frames through reactive.http_errors only. Everything
else is the Application's business.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import hashlib
import hmac
import logging
import os
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

import orjson
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from reactive import knobs, protocol
from reactive.application import Application
from reactive.auth import AuthError, Identity
from reactive.call_log import CallRecord
from reactive.dashboard import Dashboard, identity_from_claims
from reactive.deployments import BadDeployment
from reactive.dev_auth import DevIdentityProvider, dev_only_routes, is_loopback_host
from reactive.errors import (
    DatabaseUnavailableError,
    ErrorCode,
    PersistenceError,
    ReactiveError,
    ValidationError,
    excerpt,
)
from reactive.executor import Outcome
from reactive.file_storage import MAX_UPLOAD_BYTES, server_url
from reactive.functions import FunctionKind, HttpRoute
from reactive.http_errors import (
    CLOSE_AUTH_REJECTED,
    CLOSE_INTERNAL_ERROR,
    CLOSE_NORMAL,
    CloseFrame,
    HttpError,
    error_family,
    error_response,
    protocol_close_frame,
    text_response,
)
from reactive.sync import AuthRejected, ProtocolError, SyncSession
from reactive.values import decode_ts, decode_value, encode_ts, encode_value, to_clean_json

__all__ = ["ADMIN_PATHS", "create_app", "read_body", "server_app"]

log = logging.getLogger("reactive.http")

#: Largest deployment bundle `reactive deploy` may send.
MAX_DEPLOY_BYTES = 32 << 20


def _app(request: Request | WebSocket) -> Application:
    return request.app.state.reactive  # type: ignore[no-any-return]


# -- WebSocket sync ---------------------------------------------------------------------------


async def sync_endpoint(websocket: WebSocket) -> None:
    await websocket.accept()
    websocket.app.state.sockets = getattr(websocket.app.state, "sockets", 0) + 1
    try:
        await _sync(websocket)
    finally:
        websocket.app.state.sockets -= 1


async def _sync(websocket: WebSocket) -> None:
    session = SyncSession(
        _app(websocket),
        _sender(websocket),
        client=websocket.headers.get("convex-client", ""),
        dashboard=getattr(websocket.app.state, "dashboard", None),
    )
    # The reader feeds the session's inbox; the session's worker runs in this task, so a
    # server shutdown cancels exactly one task and nothing outlives the socket.
    reader = asyncio.create_task(_read_frames(websocket, session))
    failure: BaseException | None = None
    try:
        await session.run()
    except (ProtocolError, AuthRejected) as exc:
        failure = exc
    except Exception as exc:
        failure = exc
    finally:
        reader.cancel()
        session.close()
    if failure is None and reader.done() and not reader.cancelled():
        failure = reader.exception()
    try:
        await _finish_socket(websocket, failure)
    finally:
        # The failure's traceback holds this frame, which holds the failure: a cycle that
        # would keep the session and its queries alive until a rare full collection.
        failure = None
    releaser: _MemoryReleaser | None = getattr(websocket.app.state, "memory", None)
    if releaser is not None and len(session.queries) >= knobs.RELEASE_MEMORY_AFTER_QUERIES:
        releaser.soon()


def _sender(websocket: WebSocket) -> Any:
    async def send(message: dict[str, Any]) -> None:
        await websocket.send_text(orjson.dumps(message).decode())

    return send


async def _read_frames(websocket: WebSocket, session: SyncSession) -> None:
    """Queue every client frame for the session; tell it when the client is gone."""
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            data = message.get("text") if message.get("text") is not None else message.get("bytes")
            if data is None:
                continue
            if len(data) > knobs.WS_MAX_MESSAGE_BYTES:
                # Only reached without uvicorn's own limit (ws_max_size), which refuses the
                # frame from its header; either way the client learns why.
                session.fail(
                    ProtocolError(
                        f"Message of {len(data)} bytes exceeds the limit of "
                        f"{knobs.WS_MAX_MESSAGE_BYTES} bytes (REACTIVE_WS_MAX_MESSAGE_BYTES)",
                        short_msg="MessageTooBig",
                    )
                )
                return
            if not session.receive(data):
                return  # over the inbox's bounds: stop reading, the session closes the socket
    finally:
        session.disconnected()


async def _finish_socket(websocket: WebSocket, exc: BaseException | None) -> None:
    if websocket.client_state is not WebSocketState.CONNECTED:
        return
    with contextlib.suppress(Exception):
        if isinstance(exc, ProtocolError):
            log.warning("protocol error, closing socket: %s", str(exc))  # no traceback kept
            await websocket.send_text(orjson.dumps(protocol.fatal_error(str(exc))).decode())
        elif exc is not None and not isinstance(exc, (AuthRejected, WebSocketDisconnect)):
            log.error("sync session failed", exc_info=exc)
        frame = _close_frame(exc)
        await websocket.close(code=frame.code, reason=frame.reason)


def _close_frame(exc: BaseException | None) -> CloseFrame:
    """How a session that ended with `exc` (None: it just ended) closes its socket."""
    if isinstance(exc, ProtocolError):
        return protocol_close_frame(exc.short_msg)
    if isinstance(exc, AuthRejected):
        return CLOSE_AUTH_REJECTED
    if exc is None or isinstance(exc, WebSocketDisconnect):
        return CLOSE_NORMAL
    return CLOSE_INTERNAL_ERROR


# -- HTTP API ---------------------------------------------------------------------------------


async def _body(request: Request) -> dict[str, Any]:
    raw = await read_body(request, knobs.MAX_API_BODY_BYTES, "REACTIVE_MAX_API_BODY_BYTES")
    try:
        body = orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError as exc:
        # orjson refuses nesting deeper than 1024 levels itself, so no body can recurse deeply.
        raise HttpError("BadJsonBody", f"Request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise HttpError("BadJsonBody", "Request body must be a JSON object")
    return body


async def read_body(request: Request, limit: int, setting: str) -> bytes:
    """The request body, refused with a 413 once it passes `limit` bytes: a declared
    Content-Length over the limit before anything is read, a chunked body as soon as the
    bytes received pass it (the rest is never read)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _body_too_large(limit, setting)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _body_too_large(limit, setting)
        chunks.append(chunk)
    return b"".join(chunks)


def _body_too_large(limit: int, setting: str) -> HttpError:
    return HttpError(
        "RequestTooLarge",
        f"The request body is larger than this route's limit of {limit} bytes; send less, "
        f"or raise the limit ({setting})",
        code=ErrorCode.PAYLOAD_TOO_LARGE,
    )


async def _identity(request: Request) -> Identity | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HttpError(
            "Unauthenticated",
            "Authorization header must be 'Bearer <token>'",
            code=ErrorCode.UNAUTHENTICATED,
        )
    return await _app(request).authenticate(token.strip())  # AuthError is a 401


def _format(body: dict[str, Any], default: str = "convex_encoded_json") -> str:
    fmt = body.get("format", default)
    if fmt in ("convex_encoded_json", "convex_json"):
        return "encoded"
    if fmt in ("json", "convex_clean_json"):
        return "clean"
    message = f"Unknown format {excerpt(fmt)}: use 'json' or 'convex_encoded_json'"
    raise HttpError("BadFormat", message)


def _args(raw: Any) -> dict[str, Any]:
    if isinstance(raw, list):
        if len(raw) != 1:
            raise HttpError("BadArgs", "args array must hold exactly one object")
        raw = raw[0]
    raw = {} if raw is None else raw
    try:
        value = decode_value(raw)
    except ValidationError as exc:
        raise HttpError("BadArgs", str(exc)) from None
    if not isinstance(value, dict):
        raise HttpError("BadArgs", "args must be an object")
    return value


def _result(outcome: Outcome, fmt: str) -> JSONResponse:
    encode = encode_value if fmt == "encoded" else to_clean_json
    if outcome.error is not None and outcome.error.condition is not None:
        return error_response(outcome.error.condition)  # e.g. a 503: the database is down
    if outcome.error is None:
        body: dict[str, Any] = {"status": "success", "value": encode(outcome.value)}
    else:
        body = {"status": "error", "errorMessage": outcome.error.message}
        if outcome.error.has_data:
            body["errorData"] = encode(outcome.error.data)
    body["logLines"] = outcome.log_lines
    return JSONResponse(body)


async def _call(
    request: Request,
    kind: FunctionKind | None,
    *,
    path: Any = None,
    default_format: str = "convex_encoded_json",
) -> Response:
    try:
        body = await _body(request)
        fmt = _format(body, default_format)
        args = _args(body.get("args"))
        path = path if path is not None else body.get("path")
        if not isinstance(path, str):
            raise HttpError("BadConvexFunctionIdentifier", "Missing function 'path'")
        identity = await _identity(request)
        app = _app(request)
        ts = _ts(body, app.latest_ts) if request.url.path.endswith("query_at_ts") else None
        if kind is FunctionKind.QUERY and ts is not None:
            outcome = await app.run_query_at(path, args, identity, ts)
        elif kind is FunctionKind.QUERY:
            outcome = await app.run_query(path, args, identity)
        elif kind is FunctionKind.MUTATION:
            outcome = await app.run_mutation(path, args, identity)
        elif kind is FunctionKind.ACTION:
            outcome = await app.run_action(path, args, identity)
        else:
            outcome = await app.run_any(path, args, identity)
        return _result(outcome, fmt)
    except (HttpError, AuthError, ValidationError) as exc:
        return error_response(exc)


def _ts(body: dict[str, Any], latest: int) -> int:
    try:
        ts = decode_ts(body.get("ts"))
    except ValidationError as exc:
        raise HttpError("BadTimestamp", str(exc)) from None
    if ts > latest:
        # A snapshot in the future is not stable yet: later commits could still land before it.
        raise HttpError("BadTimestamp", "ts is newer than the latest commit")
    return ts


async def query_endpoint(request: Request) -> Response:
    return await _call(request, FunctionKind.QUERY)


async def mutation_endpoint(request: Request) -> Response:
    return await _call(request, FunctionKind.MUTATION)


async def action_endpoint(request: Request) -> Response:
    return await _call(request, FunctionKind.ACTION)


async def function_endpoint(request: Request) -> Response:
    return await _call(request, None)


async def run_endpoint(request: Request) -> Response:
    parts = request.path_params["path"].strip("/").split("/")
    path = "/".join(parts[:-1]) + ":" + parts[-1] if len(parts) > 1 else parts[0]
    return await _call(request, None, path=path, default_format="json")


async def query_ts_endpoint(request: Request) -> Response:
    return JSONResponse({"ts": encode_ts(_app(request).latest_ts)})


async def health_endpoint(request: Request) -> Response:
    """For load balancers: 200 with how far this node trails the database's newest commit, or
    503 when the database is out of reach (so the balancer takes the node out)."""
    try:
        return JSONResponse(await _app(request).health())
    except DatabaseUnavailableError as exc:
        return error_response(exc)


# -- admin routes -----------------------------------------------------------------------------

LOGS_PATH = "/api/logs"
DEPLOY_PATH = "/api/deploy"
#: Routes that run or reveal code. They answer no CORS and refuse pages of other sites.
ADMIN_PATHS = frozenset({LOGS_PATH, DEPLOY_PATH})

#: `Sec-Fetch-Site` values of a request made by a page of another origin.
_FOREIGN_FETCH_SITES = frozenset({"cross-site", "same-site"})


def _admin_refusal(request: Request, what: str) -> Response | None:
    """Why an admin request is refused (a response), or None to let it through.

    Pages of other origins are always refused: a browser sends a text/plain POST without a
    preflight, so CORS alone would let any site the developer visits deploy code. Then the
    admin key (`Authorization: Convex <REACTIVE_ADMIN_KEY>`) is required when one is set; a
    dev server without one admits this machine's own tools (the CLI sends no Origin).
    """
    foreign = _foreign_page(request)
    if foreign is not None:
        return _forbidden(f"Admin routes refuse requests from web pages of other sites ({foreign})")
    admin_key = os.environ.get("REACTIVE_ADMIN_KEY")
    if admin_key:
        offered = request.headers.get("authorization", "")
        if not hmac.compare_digest(offered.encode(), f"Convex {admin_key}".encode()):
            return error_response(
                HttpError("Unauthenticated", "Admin key required", code=ErrorCode.UNAUTHENTICATED)
            )
        return None
    if not _app(request).dev:
        return _forbidden(f"Set REACTIVE_ADMIN_KEY to {what} a production server")
    host = request.url.hostname or ""
    if not is_loopback_host(host) and host != _public_hostname(request):
        # A DNS-rebinding page reaches loopback under its own host name; a keyless dev server
        # only answers the names this machine's tools use.
        return _forbidden(
            f"Without REACTIVE_ADMIN_KEY, admin routes answer only on loopback, not {host!r}; "
            "set REACTIVE_ADMIN_KEY (or REACTIVE_URL to this server's public address)"
        )
    return None


def _foreign_page(request: Request) -> str | None:
    """What shows that a web page of another origin made this request, or None."""
    fetch_site = request.headers.get("sec-fetch-site", "").lower()
    if fetch_site in _FOREIGN_FETCH_SITES:
        return f"Sec-Fetch-Site: {fetch_site}"
    origin = request.headers.get("origin")
    if origin is not None and _origin_of(origin) != _origin_of(_public_url(request)):
        return f"Origin: {origin}"
    return None


def _origin_of(url: str) -> str:
    """scheme://host:port of `url`, lower-cased with the default port spelled out."""
    parts = urlsplit(url.strip().lower())
    try:
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:
        return "invalid"
    return f"{parts.scheme}://{parts.hostname}:{port}"


def _public_url(request: Request) -> str:
    return _app(request).storage.public_url()


def _public_hostname(request: Request) -> str:
    return urlsplit(_public_url(request)).hostname or ""


def _forbidden(message: str) -> Response:
    return error_response(HttpError("Forbidden", message, code=ErrorCode.FORBIDDEN))


async def logs_endpoint(request: Request) -> Response:
    """Every function call from now on, as newline-delimited JSON (`reactive logs`)."""
    app = _app(request)
    refusal = _admin_refusal(request, "read the logs of")
    if refusal is not None:
        return refusal

    async def lines() -> AsyncIterator[bytes]:
        yield orjson.dumps({"type": "connected"}) + b"\n"
        async for record in app.calls.follow():
            yield orjson.dumps(asdict(record)) + b"\n"

    return StreamingResponse(lines(), media_type="application/x-ndjson")


# -- deploy -----------------------------------------------------------------------------------


async def deploy_endpoint(request: Request) -> Response:
    """`reactive deploy`: the body is a ZIP of schema.py and functions/. Progress and the
    outcome stream back as newline-delimited JSON."""
    refusal = _admin_refusal(request, "deploy to")
    if refusal is not None:
        return refusal
    app = _app(request)
    try:
        bundle = await _read_limited(request, MAX_DEPLOY_BYTES)
        root = app.unpack(bundle)
    except (HttpError, BadDeployment) as exc:
        return error_response(exc)
    dry_run = request.query_params.get("dry_run") in ("1", "true")
    events: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

    dashboard = _dashboard(request)

    def progress(label: str, done: int, total: int) -> None:
        events.put_nowait({"type": "progress", "label": label, "done": done, "total": total})
        dashboard.backfill_progress(label, done, total)

    async def run() -> None:
        try:
            report = await app.deploy(root, dry_run=dry_run, progress=progress)
            events.put_nowait({"type": "done", **asdict(report)})
        except Exception as exc:
            message = f"{type(exc).__name__}: {exc}"
            events.put_nowait({"type": "error", "message": message})
        finally:
            events.put_nowait(None)

    task = asyncio.ensure_future(run())

    async def lines() -> AsyncIterator[bytes]:
        while (event := await events.get()) is not None:
            yield orjson.dumps(event) + b"\n"
        await task

    return StreamingResponse(lines(), media_type="application/x-ndjson")


# -- the dashboard ----------------------------------------------------------------------------

DASHBOARD_PATH = "/_dashboard"
#: The page's files (shipped in the package); `vendor/` is filled by ./scripts/setup.
DASHBOARD_ASSETS = Path(__file__).resolve().parent / "dashboard_assets"
_DASHBOARD_COOKIE = "reactive_dashboard"
_DASHBOARD_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}
#: No script, style or connection of another origin; no framing (the page edits data).
_DASHBOARD_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _dashboard(request: Request) -> Dashboard:
    return request.app.state.dashboard  # type: ignore[no-any-return]


def _session_cookie(admin_key: str) -> str:
    """What the dashboard's cookie holds once the admin key was entered: derived from the
    key, so changing the key signs every page out."""
    return hmac.new(admin_key.encode(), b"reactive dashboard session", hashlib.sha256).hexdigest()


def _dashboard_refusal(request: Request) -> Response | None:
    """Why a dashboard request is refused, or None. As every admin route (`_admin_refusal`),
    plus the cookie the sign-in form sets in place of the `Authorization` header."""
    admin_key = os.environ.get("REACTIVE_ADMIN_KEY")
    cookie = request.cookies.get(_DASHBOARD_COOKIE, "")
    if admin_key and hmac.compare_digest(cookie.encode(), _session_cookie(admin_key).encode()):
        foreign = _foreign_page(request)
        if foreign is not None:
            return _forbidden(f"Refused a page of another site ({foreign})")
        return None
    return _admin_refusal(request, "open the dashboard of")


def _with_headers(response: Response) -> Response:
    response.headers.update(_DASHBOARD_HEADERS)
    return response


async def dashboard_page(request: Request) -> Response:
    """`/_dashboard/<file>`: the page and its files; without the admin key (production) a 401
    whose body is the form that asks for it."""
    refusal = _dashboard_refusal(request)
    if refusal is not None:
        if refusal.status_code == 401 and request.method == "GET":
            return _with_headers(_sign_in_page(""))
        return refusal
    name = request.path_params.get("name") or "index.html"
    path = (DASHBOARD_ASSETS / name).resolve()
    if path.parent not in (DASHBOARD_ASSETS, DASHBOARD_ASSETS / "vendor") or not path.is_file():
        hint = " (the convex browser bundle: run ./scripts/setup)" if "vendor" in name else ""
        return text_response(ErrorCode.NOT_FOUND, f"No dashboard file {name!r}{hint}")
    media_type = _DASHBOARD_TYPES.get(path.suffix, "application/octet-stream")
    return _with_headers(FileResponse(path, media_type=media_type))


def _sign_in_page(problem: str) -> Response:
    message = f"<p role=alert>{problem}</p>" if problem else ""
    body = (
        "<!doctype html><meta charset=utf-8><title>Dashboard · reactive</title>"
        "<h1>reactive dashboard</h1><p>Enter this deployment's admin key "
        "(REACTIVE_ADMIN_KEY).</p>" + message + f'<form method=post action="{DASHBOARD_PATH}/'
        'sign-in"><input type=password name=key autocomplete=off required autofocus> '
        "<button type=submit>Open</button></form>"
    )
    return HTMLResponse(body, status_code=401)


async def dashboard_sign_in(request: Request) -> Response:
    """The sign-in form: the right admin key sets the dashboard's cookie (HttpOnly,
    SameSite=Strict, only for the dashboard's paths)."""
    foreign = _foreign_page(request)
    if foreign is not None:
        return _forbidden(f"Refused a page of another site ({foreign})")
    admin_key = os.environ.get("REACTIVE_ADMIN_KEY")
    if not admin_key:
        return _admin_refusal(request, "open the dashboard of") or RedirectResponse(
            f"{DASHBOARD_PATH}/", status_code=303
        )
    try:
        raw = await read_body(request, 4096, "the sign-in form")
    except HttpError as exc:
        return error_response(exc)
    offered = parse_qs(raw.decode("utf-8", "replace")).get("key", [""])[0]
    if not hmac.compare_digest(offered.encode(), admin_key.encode()):
        return _with_headers(_sign_in_page("That is not the admin key."))
    response = RedirectResponse(f"{DASHBOARD_PATH}/", status_code=303)
    response.set_cookie(
        _DASHBOARD_COOKIE,
        _session_cookie(admin_key),
        httponly=True,
        samesite="strict",
        path=DASHBOARD_PATH,
        secure=request.url.scheme == "https",
    )
    return response


async def dashboard_key(request: Request) -> Response:
    """The admin key for the page's sync connection (`ConvexClient.setAdminAuth`): this
    deployment's REACTIVE_ADMIN_KEY to a signed-in page, or `reactive dev`'s own key to a
    page of this machine."""
    refusal = _dashboard_refusal(request)
    if refusal is not None:
        return refusal
    return _with_headers(JSONResponse({"key": _dashboard(request).admin_key}))


async def dashboard_run(request: Request) -> Response:
    """Run any function (internal ones too) with `args` as `identity` (claims, or null):
    its kind, result, log lines and duration."""
    refusal = _dashboard_refusal(request)
    if refusal is not None:
        return refusal
    try:
        body = await _body(request)
        args = _args(body.get("args"))
        identity = identity_from_claims(body.get("identity"))
    except (HttpError, ValidationError) as exc:
        return error_response(exc)
    kind, outcome, duration_ms = await _dashboard(request).run_any(body.get("path"), args, identity)
    answer = orjson.loads(_result(outcome, "encoded").body)
    return JSONResponse(answer | {"kind": kind, "durationMs": round(duration_ms, 3)})


async def dashboard_logs(request: Request) -> Response:
    """The calls this node remembers, then every call as it finishes (newline-delimited JSON)."""
    refusal = _dashboard_refusal(request)
    if refusal is not None:
        return refusal
    calls = _app(request).calls

    async def lines() -> AsyncIterator[bytes]:
        following = cast(AsyncGenerator[CallRecord, None], calls.follow())
        first = asyncio.ensure_future(anext(following))  # registered before the recent ones
        for record in calls.recent():
            yield orjson.dumps(asdict(record)) + b"\n"
        yield orjson.dumps({"type": "connected"}) + b"\n"
        try:
            yield orjson.dumps(asdict(await first)) + b"\n"
            async for record in following:
                yield orjson.dumps(asdict(record)) + b"\n"
        finally:
            first.cancel()
            await following.aclose()

    return StreamingResponse(lines(), media_type="application/x-ndjson")


async def dashboard_health(request: Request) -> Response:
    refusal = _dashboard_refusal(request)
    if refusal is not None:
        return refusal
    dashboard = _dashboard(request)
    try:
        health = await dashboard.health()
        nodes = await dashboard.nodes()
    except PersistenceError as exc:  # DatabaseUnavailableError (503) among them
        return error_response(exc)
    return JSONResponse(health | {"nodes": nodes})


def _dashboard_routes() -> list[BaseRoute]:
    return [
        Route(DASHBOARD_PATH, lambda _: RedirectResponse(f"{DASHBOARD_PATH}/"), methods=["GET"]),
        Route(f"{DASHBOARD_PATH}/", dashboard_page, methods=["GET"]),
        Route(f"{DASHBOARD_PATH}/sign-in", dashboard_sign_in, methods=["POST"]),
        Route(f"{DASHBOARD_PATH}/api/key", dashboard_key, methods=["GET"]),
        Route(f"{DASHBOARD_PATH}/api/run", dashboard_run, methods=["POST"]),
        Route(f"{DASHBOARD_PATH}/api/logs", dashboard_logs, methods=["GET"]),
        Route(f"{DASHBOARD_PATH}/api/health", dashboard_health, methods=["GET"]),
        Route(DASHBOARD_PATH + "/{name:path}", dashboard_page, methods=["GET"]),
    ]


# -- file storage -----------------------------------------------------------------------------


async def upload_endpoint(request: Request) -> Response:
    storage = _app(request).storage
    if storage is None:
        return error_response(
            HttpError("StorageUnavailable", "No file storage", code=ErrorCode.UNAVAILABLE)
        )
    try:
        # Checked before the body is read, so a used or forged URL costs no upload.
        upload = await storage.check_upload_token(request.query_params.get("token"))
        declared = int(request.headers.get("content-length") or 0)
        if declared > MAX_UPLOAD_BYTES:
            raise _file_too_large(MAX_UPLOAD_BYTES)
        data = await _read_limited(request, MAX_UPLOAD_BYTES)
        storage_id = await storage.store(data, request.headers.get("content-type"), upload=upload)
    except (HttpError, ValidationError) as exc:
        return error_response(exc)
    return JSONResponse({"storageId": storage_id})


async def _read_limited(request: Request, limit: int) -> bytes:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _file_too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _file_too_large(limit: int) -> HttpError:
    message = f"Files may be at most {limit} bytes"
    return HttpError("FileTooLarge", message, code=ErrorCode.PAYLOAD_TOO_LARGE)


async def serve_file_endpoint(request: Request) -> Response:
    storage = _app(request).storage
    storage_id = request.path_params["storage_id"]
    try:
        found = None if storage is None else await storage.read(storage_id)
    except ReactiveError:  # a malformed id is just a file that does not exist
        found = None
    if found is None:
        return text_response(ErrorCode.NOT_FOUND, "File not found")
    row, data = found
    content_type = str(row.get("contentType") or "application/octet-stream")
    return Response(data, media_type=content_type, headers=_served_file_headers(content_type))


#: Types a browser only displays: served inline. Anything else could run script in this
#: server's origin (HTML, SVG, XML, JavaScript, ...), so it is downloaded, never rendered.
_INERT_TYPES = frozenset(
    {
        "application/octet-stream",
        "application/pdf",
        "text/plain",
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "image/avif",
        "image/bmp",
        "image/x-icon",
        "image/vnd.microsoft.icon",
    }
)
_INERT_FAMILIES = ("audio/", "video/")


def _served_file_headers(content_type: str) -> dict[str, str]:
    """Headers of a stored file: never sniffed into another type; active content is an
    attachment in a sandbox with nothing allowed, so an uploaded page cannot run here."""
    headers = {
        "Cache-Control": "private, max-age=2592000, immutable",
        "X-Content-Type-Options": "nosniff",
    }
    essence = content_type.split(";", 1)[0].strip().lower()
    if essence not in _INERT_TYPES and not essence.startswith(_INERT_FAMILIES):
        headers["Content-Disposition"] = "attachment"
        headers["Content-Security-Policy"] = "sandbox; default-src 'none'"
    return headers


# -- HTTP actions -----------------------------------------------------------------------------


async def http_action_endpoint(request: Request) -> Response:
    app = _app(request)
    router = app.http_router
    route = router.lookup(request.method, request.url.path) if router else None
    if route is None:
        if router and request.method != "OPTIONS" and router.allowed_methods(request.url.path):
            return text_response(ErrorCode.METHOD_NOT_ALLOWED, "Method Not Allowed")
        return text_response(ErrorCode.NOT_FOUND, "No matching routes found")
    try:
        identity = await _identity(request)
        body = await read_body(request, _route_body_limit(route), "max_body_bytes= of the route")
    except (HttpError, AuthError) as exc:
        return error_response(exc)
    outcome = await app.run_http_action(route, _ActionRequest(request, body), identity)
    if outcome.error is not None:
        condition = outcome.error.condition
        code = ErrorCode.INTERNAL if condition is None else error_family(condition)
        return text_response(code, outcome.error.message)
    assert outcome.response is not None  # an HttpOutcome has one or the other
    return outcome.response


def _route_body_limit(route: HttpRoute) -> int:
    if route.max_body_bytes is not None:
        return route.max_body_bytes
    return knobs.HTTP_ACTION_MAX_BODY_BYTES


class _ActionRequest(Request):
    """The request an HTTP action sees: its body already read (within the route's limit), and
    `json()` parsed by orjson, whose nesting limit makes a deeply nested body a ValueError
    the action can catch instead of a RecursionError."""

    def __init__(self, request: Request, body: bytes) -> None:
        super().__init__(request.scope, _replay(body, request.receive))

    async def json(self) -> Any:
        try:
            return orjson.loads(await self.body())
        except orjson.JSONDecodeError as exc:
            raise ValidationError(
                f"Request body is not valid JSON: {exc}", short_msg="BadJsonBody"
            ) from None


def _replay(body: bytes, receive: Receive) -> Receive:
    """An ASGI receive that hands over `body` (already read) once, then waits as `receive`
    does (for the client to disconnect)."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replay() -> Message:
        return pending.pop() if pending else await receive()

    return replay


# -- the app ----------------------------------------------------------------------------------


class _RememberBaseUrl:
    """File URLs need this server's public address. Unless it is configured (REACTIVE_URL, or
    `public_url`), it is the address of the socket the first request arrived on — never the
    request's Host header, which the caller chooses."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            reactive = getattr(scope["app"].state, "reactive", None) if "app" in scope else None
            storage = getattr(reactive, "storage", None)
            server = scope.get("server") or (None, None)
            # A Unix socket has no port and no URL: keep the default until one is configured.
            if storage is not None and storage.base_url is None and isinstance(server[1], int):
                secure = scope.get("scheme") in ("https", "wss")
                storage.base_url = server_url(str(server[0]), server[1], secure=secure)
        await self.app(scope, receive, send)


class _CollapseSlashes:
    """`//api/sync` (from a deployment URL with a trailing slash) is `/api/sync`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and scope["path"].startswith("//"):
            scope = dict(scope)
            scope["path"] = "/" + scope["path"].lstrip("/")
        await self.app(scope, receive, send)


def server_app() -> Starlette:
    """The app of a server process: `uvicorn --factory reactive.http:server_app`."""
    return create_app(own_process=True)


class _MemoryReleaser:
    """Server processes only: hands the memory a big session freed back to the OS.

    Freed Python objects go back to the C allocator, which keeps the pages for reuse: without
    this a socket that held 100k queries leaves the process ~400 MB larger after it closed.
    `malloc_trim` (glibc) returns them; elsewhere this does nothing.
    """

    DELAY_S = 1.0  # after the socket's frames and tasks are gone; several closes, one trim

    def __init__(self) -> None:
        self._trim = _malloc_trim()
        self._pending = False

    def soon(self) -> None:
        if self._trim is None or self._pending:
            return
        self._pending = True
        asyncio.get_running_loop().call_later(self.DELAY_S, self._release)

    def _release(self) -> None:
        self._pending = False
        assert self._trim is not None
        self._trim(0)


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    return trim


def _tune_garbage_collector() -> None:
    """Server processes only: what is loaded by now (modules, functions, schema) lives as long
    as the process, so the collector stops scanning it; young collections run less often
    (knobs.GC_YOUNG_THRESHOLD)."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(knobs.GC_YOUNG_THRESHOLD, older, oldest)


def create_app(
    root: str | Path | None = None,
    *,
    database_url: str | None = None,
    dev: bool | None = None,
    application: Application | None = None,
    dev_auth: DevIdentityProvider | None = None,
    own_process: bool = False,
    public_url: str | None = None,
) -> Starlette:
    """The ASGI app serving the project at `root` (default: the working directory).

    Database from `database_url`, else REACTIVE_DATABASE_URL, else embedded SQLite.
    `public_url`: this server's address in file and upload URLs (default REACTIVE_URL, else
    the address the server is reached at, as its socket reports it).
    `own_process`: the app is the whole process (a server, not a test), so process-wide
    settings such as the garbage collector's are its to tune.
    """
    root = Path(root or os.environ.get("REACTIVE_PROJECT", "."))
    database_url = database_url or os.environ.get("REACTIVE_DATABASE_URL")
    dev = dev if dev is not None else os.environ.get("REACTIVE_DEV", "") not in ("", "0")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        extra = [dev_auth.provider] if dev_auth is not None else []
        reactive = application or await Application.start(
            root, database_url, dev=dev, extra_auth_providers=extra
        )
        app.state.reactive = reactive
        app.state.dashboard = dashboard = Dashboard(reactive)
        if public_url:
            reactive.storage.base_url = public_url.rstrip("/")
        dashboard.start_reporting(lambda: getattr(app.state, "sockets", 0))
        app.state.memory = _MemoryReleaser() if own_process else None
        if own_process:
            _tune_garbage_collector()
        try:
            yield
        finally:
            await dashboard.stop_reporting()
            if application is None:
                await reactive.close()

    return Starlette(routes=_routes(dev_auth), middleware=_middleware(), lifespan=lifespan)


_HTTP_ACTION_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"]


def _routes(dev_auth: DevIdentityProvider | None) -> list[BaseRoute]:
    """The API and sync routes, dev-only routes, and last the project's HTTP actions."""
    return [
        WebSocketRoute("/api/sync", sync_endpoint),
        WebSocketRoute("/api/{version}/sync", sync_endpoint),
        Route("/api/query", query_endpoint, methods=["POST"]),
        Route("/api/mutation", mutation_endpoint, methods=["POST"]),
        Route("/api/action", action_endpoint, methods=["POST"]),
        Route("/api/function", function_endpoint, methods=["POST"]),
        Route("/api/query_ts", query_ts_endpoint, methods=["POST"]),
        Route("/api/query_at_ts", query_endpoint, methods=["POST"]),
        Route("/api/run/{path:path}", run_endpoint, methods=["POST"]),
        Route("/api/storage/upload", upload_endpoint, methods=["POST"]),
        Route("/api/storage/{storage_id}", serve_file_endpoint, methods=["GET"]),
        Route(LOGS_PATH, logs_endpoint, methods=["GET"]),
        Route(DEPLOY_PATH, deploy_endpoint, methods=["POST"]),
        Route("/health", health_endpoint, methods=["GET"]),
        *_dashboard_routes(),
        *(dev_only_routes(dev_auth) if dev_auth is not None else []),
        Route("/{rest:path}", http_action_endpoint, methods=_HTTP_ACTION_METHODS),
    ]


def _middleware() -> list[Middleware]:
    return [Middleware(_CollapseSlashes), Middleware(_RememberBaseUrl), Middleware(_PublicCors)]


class _PublicCors:
    """CORS of the public API: any origin may call it, never with credentials (the Convex
    clients send tokens in headers, not cookies, so a page gains nothing it could not send
    itself). Admin routes get no CORS headers at all: no page of another site reads them."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.cors = CORSMiddleware(
            app,
            allow_origins=["*"],
            allow_credentials=False,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
            allow_headers=["*"],
            max_age=3600,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path in ADMIN_PATHS or path == DASHBOARD_PATH or path.startswith(DASHBOARD_PATH + "/"):
            await self.app(scope, receive, send)
        else:
            await self.cors(scope, receive, send)
