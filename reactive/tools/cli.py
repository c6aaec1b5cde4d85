"""The `reactive` command line: serve a project (dev with reload, or production), run a
function, inspect and maintain a database."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
import time
from collections.abc import AsyncGenerator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

import httpx
import orjson

from reactive import knobs
from reactive.auth import Identity
from reactive.database import Database
from reactive.deployments import bundle_project
from reactive.errors import ReactiveError, ValidationError
from reactive.persistence import DEFAULT_DATABASE_URL

if TYPE_CHECKING:
    import uvicorn

    from reactive.application import Application

__all__ = ["main"]

DEFAULT_PORT = 3210
log = logging.getLogger("reactive.tools.cli")


class CliError(Exception):
    """A user-facing failure: printed as one line, exit status 1 (2 for bad usage)."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


def database_url(arg: str | None) -> str:
    return arg or os.environ.get("REACTIVE_DATABASE_URL") or DEFAULT_DATABASE_URL


def load_env(root: Path) -> None:
    """Project environment: `.env`, then `.env.local` over it; the real environment wins."""
    from dotenv import dotenv_values

    merged: dict[str, str | None] = {}
    for name in (".env", ".env.local"):
        if (root / name).is_file():
            merged.update(dotenv_values(root / name))
    for key, value in merged.items():
        if value is not None and key not in os.environ:
            os.environ[key] = value


class _ReadableFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        text = f"{stamp} {record.getMessage()}"
        call = getattr(record, "call", None)
        if call is not None:
            text += "".join(f"\n    {line}" for line in call.log_lines)
        elif record.name != "reactive.calls":
            text = f"{stamp} {record.levelname.lower()} {record.name}: {record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def configure_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_ReadableFormatter())
    root = logging.getLogger("reactive")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    root.propagate = False
    logging.getLogger("reactive.calls").setLevel(logging.INFO if verbose else logging.WARNING)


# -- serve / dev ------------------------------------------------------------------------------


async def serve(root: Path, db: str, host: str, port: int, *, dev: bool) -> int:
    load_env(root)
    configure_logging(verbose=True)
    dev_auth = _dev_identity_provider(root, host, port) if dev else None
    application = await _start_application(root, db, dev=dev, dev_auth=dev_auth)
    server = _http_server(root, application, dev_auth, host, port)
    if dev:
        await asyncio.to_thread(_codegen_quietly, root)
    watcher = asyncio.create_task(_watch(application, root)) if dev else None
    _announce(root, db, host, port, dev=dev, dev_auth=dev_auth)
    try:
        await server.serve()
    finally:
        await _shut_down(application, watcher)
    return 0


async def _start_application(root: Path, db: str, *, dev: bool, dev_auth: Any) -> Application:
    from reactive.application import Application

    extra = [dev_auth.provider] if dev_auth is not None else []
    try:
        return await Application.start(root, db, dev=dev, extra_auth_providers=extra)
    except Exception as exc:
        raise CliError(f"could not start {root}: {type(exc).__name__}: {exc}") from exc


def _http_server(
    root: Path, application: Application, dev_auth: Any, host: str, port: int
) -> uvicorn.Server:
    import uvicorn

    from reactive.file_storage import server_url
    from reactive.http import create_app

    # File and upload URLs name this address unless REACTIVE_URL gives the public one.
    public_url = os.environ.get("REACTIVE_URL") or server_url(host, port)
    app = create_app(
        root, application=application, dev_auth=dev_auth, own_process=True, public_url=public_url
    )
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        ws_max_size=knobs.WS_MAX_MESSAGE_BYTES,  # refused from the frame header, never read
        ws_per_message_deflate=knobs.WS_COMPRESSION,
    )
    return uvicorn.Server(config)


def _announce(root: Path, db: str, host: str, port: int, *, dev: bool, dev_auth: Any) -> None:
    if dev_auth is not None:
        log.warning(
            "dev sign-in: %s/   taskboard: http://%s:%d/examples/taskboard/",
            dev_auth.issuer,
            host,
            port,
        )
    mode = "dev (reloads on change)" if dev else "production"
    log.warning(
        "reactive %s: serving %s at http://%s:%d (database %s)",
        mode,
        root,
        host,
        port,
        db.split("?")[0],
    )
    if dev or os.environ.get("REACTIVE_ADMIN_KEY"):
        log.warning("dashboard: http://%s:%d/_dashboard/", host, port)


async def _shut_down(application: Application, watcher: asyncio.Task[None] | None) -> None:
    if watcher is not None:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    await application.close()


def _dev_identity_provider(root: Path, host: str, port: int) -> Any:
    """The sign-in provider built into `reactive dev` (loopback only), or None."""
    from reactive.dev_auth import DevIdentityProvider
    from reactive.errors import PersistenceError

    try:
        return DevIdentityProvider.for_server(root, host, port)
    except ValueError as exc:
        log.warning("dev sign-in disabled: %s", exc)
        return None
    except PersistenceError as exc:
        raise CliError(str(exc)) from exc


async def _watch(application: Any, root: Path) -> None:
    """Reload functions and schema when a Python file of the project changes."""
    from watchfiles import awatch

    def relevant(change: Any, path: str) -> bool:
        name = Path(path).name
        return name.endswith(".py") or name in (".env", ".env.local")

    # Only the project's own code: never .venv, node_modules or the database directory.
    watched = [
        p
        for p in (root / "functions", root / "schema.py", root / ".env", root / ".env.local")
        if p.exists()
    ]
    if not watched:
        return
    async for changes in awatch(*watched, watch_filter=relevant, recursive=True):
        changed = ", ".join(sorted({str(Path(p).relative_to(root)) for _, p in changes}))
        try:
            load_env(root)
            project = await application.reload()
        except Exception as exc:
            log.error(
                "reload after changing %s failed, still serving the last good version:\n    %s: %s",
                changed,
                type(exc).__name__,
                exc,
            )
            continue
        log.warning(
            "reloaded after changing %s: %d functions", changed, len(project.registry.functions)
        )


# -- run --------------------------------------------------------------------------------------


def parse_args_json(text: str) -> dict[str, Any]:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise CliError(f"args are not valid JSON: {exc}", status=2) from None
    if not isinstance(value, dict):
        raise CliError('args must be a JSON object, e.g. \'{"channel": "general"}\'', status=2)
    return value


async def run_function(
    path: str,
    args_text: str,
    *,
    url: str | None,
    root: Path,
    db: str,
    identity: str | None = None,
    token: str | None = None,
    after_ms: float | None = None,
) -> int:
    """Run `path` on the server at `url` (as the user of the JWT `token`), or in this process
    on the local database (as `identity`, claims JSON). With `after_ms`, schedule it instead:
    a job in the local database, which the servers sharing it run after that delay."""
    args = parse_args_json(args_text)
    if after_ms is not None:
        if url or identity is not None or token is not None:
            raise CliError("--after schedules on the local database: no --url, --identity, --auth")
        return _print_result(await _schedule_local(root, db, path, args, after_ms))
    if url:
        if identity is not None:
            raise CliError("--identity is for local runs; with --url pass a JWT with --auth")
        return _print_result(await _run_remote(url, path, args, token))
    if token is not None:
        raise CliError("--auth is for --url runs; locally, act as a user with --identity")
    acting_as = None if identity is None else parse_identity(identity)
    return _print_result(await _run_local(root, db, path, args, acting_as))


def parse_identity(text: str) -> Identity:
    """The identity `--identity` describes: a JSON object of claims under Convex's names."""
    try:
        claims = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise CliError(f"--identity is not valid JSON: {exc}", status=2) from None
    if not isinstance(claims, dict):
        raise CliError(
            '--identity must be a JSON object, e.g. \'{"subject": "user_1", "issuer": "..."}\'',
            status=2,
        )
    try:
        return Identity.from_attributes(claims)
    except ValidationError as exc:
        raise CliError(f"--identity: {exc.msg}", status=2) from None


async def _run_remote(
    url: str, path: str, args: dict[str, Any], token: str | None = None
) -> dict[str, Any]:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    try:
        async with httpx.AsyncClient(timeout=60) as client:
            response = await client.post(
                f"{url.rstrip('/')}/api/function",
                json={"path": path, "args": args, "format": "json"},
                headers=headers,
            )
    except httpx.HTTPError as exc:
        raise CliError(f"cannot reach the server at {url}: {exc}") from None
    body = (
        response.json()
        if response.headers.get("content-type", "").startswith("application/json")
        else {}
    )
    if response.status_code != 200:
        raise CliError(
            f"server answered {response.status_code}: {body.get('message', response.text)}"
        )
    return body


async def _schedule_local(
    root: Path, db: str, path: str, args: dict[str, Any], after_ms: float
) -> dict[str, Any]:
    """Schedule `path` (a mutation or action, internal ones too) as ctx.scheduler does."""
    from reactive.application import Application
    from reactive.scheduler import action_scheduler
    from reactive.values import decode_value

    load_env(root)
    application = await Application.start(root, db, dev=True, run_jobs=False)
    try:
        scheduler = action_scheduler(application.project.registry, application.db)
        arguments = decode_value(args)
        assert isinstance(arguments, dict)
        job_id = await scheduler.run_after(after_ms, path, arguments)
    except ReactiveError as exc:
        return {"status": "error", "errorMessage": f"{exc.short_msg}: {exc.msg}", "logLines": []}
    finally:
        await application.close()
    return {"status": "success", "value": job_id, "logLines": []}


async def _run_local(
    root: Path, db: str, path: str, args: dict[str, Any], identity: Identity | None = None
) -> dict[str, Any]:
    from reactive.application import Application
    from reactive.values import decode_value, to_clean_json

    load_env(root)
    # A one-off process runs no scheduled jobs: the servers do (one it scheduled included).
    application = await Application.start(root, db, dev=True, run_jobs=False)
    try:
        outcome = await application.executor.run(
            None, path, decode_value(args), identity, allow_internal=True
        )
    finally:
        await application.close()
    if outcome.error is None:
        return {
            "status": "success",
            "value": to_clean_json(outcome.value),
            "logLines": outcome.log_lines,
        }
    result: dict[str, Any] = {
        "status": "error",
        "errorMessage": outcome.error.message,
        "logLines": outcome.log_lines,
    }
    if outcome.error.has_data:
        result["errorData"] = to_clean_json(outcome.error.data)
    return result


def _print_result(body: dict[str, Any]) -> int:
    for line in body.get("logLines", []):
        print(line, file=sys.stderr)
    if body.get("status") == "success":
        print(orjson.dumps(body.get("value"), option=orjson.OPT_INDENT_2).decode())
        return 0
    message = body.get("errorMessage", "failed")
    if "errorData" in body:
        message += f"\n  data: {orjson.dumps(body['errorData']).decode()}"
    print(message, file=sys.stderr)
    return 1


# -- codegen ----------------------------------------------------------------------------------


async def codegen_command(root: Path, out: Path | None) -> int:
    """Write `_generated/` (TypeScript api + data model for the npm client, Python api)."""
    from reactive.errors import SchemaError
    from reactive.tools.codegen import generate

    try:
        written = await asyncio.to_thread(generate, root, out)
    except SchemaError as exc:
        raise CliError(str(exc)) from None
    for path in written:
        print(path)
    return 0


def _codegen_quietly(root: Path) -> None:
    """Codegen as part of `reactive dev`: a failure is reported, never fatal."""
    from reactive.tools.codegen import generate

    try:
        generate(root)
    except Exception as exc:
        log.error("codegen failed: %s: %s", type(exc).__name__, exc)


# -- check ------------------------------------------------------------------------------------


async def check_command(root: Path) -> int:
    """Per public function: does every read use an index, does it check auth? Exit 1 if not."""
    from reactive.tools.check import run_check

    report = await asyncio.to_thread(run_check, root)
    print(report.render())
    return 0 if report.ok else 1


# -- logs -------------------------------------------------------------------------------------


async def logs_command(url: str, admin_key: str | None, limit: int | None) -> int:
    """Follow a server's function calls like `tail -f` (stop with Ctrl-C)."""
    seen = 0
    records = _admin_stream("GET", url, "/api/logs", admin_key, timeout=10)
    async with contextlib.aclosing(records):
        async for record in records:
            if record.get("type") == "connected":
                print(f"following function calls on {url}", file=sys.stderr, flush=True)
                continue
            print(_log_line(record), flush=True)
            seen += 1
            if limit is not None and seen >= limit:
                return 0
    return 0


async def _admin_stream(
    method: str,
    url: str,
    endpoint: str,
    admin_key: str | None,
    *,
    timeout: float,
    content: bytes | None = None,
) -> AsyncGenerator[dict[str, Any], None]:
    """The JSON lines an admin endpoint of the server at `url` streams back (a blank line
    gives {}); a refused request or an unreachable server is a CliError. Close it (aclosing)
    when stopping early, so the connection does not wait for the garbage collector."""
    headers = {"Authorization": f"Convex {admin_key}"} if admin_key else {}
    try:
        async with (
            httpx.AsyncClient(timeout=httpx.Timeout(timeout, read=None)) as client,
            client.stream(
                method, f"{url.rstrip('/')}{endpoint}", content=content, headers=headers
            ) as response,
        ):
            if response.status_code != 200:
                body = (await response.aread()).decode(errors="replace")
                raise CliError(f"server answered {response.status_code}: {body}")
            async for line in response.aiter_lines():
                yield orjson.loads(line) if line.strip() else {}
    except httpx.HTTPError as exc:
        raise CliError(f"cannot reach the server at {url}: {exc}") from None


#: Letters of `reactive logs` lines: S a scheduled function's run, C a cron's.
_LOG_LETTERS = {"query": "Q", "mutation": "M", "action": "A", "scheduled": "S", "cron": "C"}


def _log_line(record: dict[str, Any]) -> str:
    stamp = time.strftime("%H:%M:%S", time.localtime(record.get("at", 0)))
    letter = _LOG_LETTERS.get(record.get("kind", ""), "F")
    status = "ok" if record.get("ok") else f"error: {(record.get('error') or '').splitlines()[0]}"
    lateness = record.get("lateness_ms")
    late = "" if lateness is None else f" (late {lateness:.1f} ms)"
    duration = f"{record.get('duration_ms', 0):.1f} ms{late}"
    head = f"{stamp} {letter} {record.get('path')} {duration} {status}"
    return head + "".join(f"\n    {line}" for line in record.get("log_lines", []))


# -- deploy -----------------------------------------------------------------------------------


async def deploy_command(root: Path, url: str, admin_key: str | None, dry_run: bool) -> int:
    """Send the project to a running server, which validates it against its database,
    backfills new indexes (progress shown) and only then switches to the new code."""
    if not (root / "functions").is_dir() and not (root / "schema.py").is_file():
        raise CliError(f"{root} has no schema.py or functions/ to deploy", status=2)
    endpoint = "/api/deploy" + ("?dry_run=1" if dry_run else "")
    bar = ProgressBar()
    events = _admin_stream(
        "POST", url, endpoint, admin_key, timeout=30, content=bundle_project(root)
    )
    async with contextlib.aclosing(events):
        async for event in events:
            if event.get("type") == "progress":
                bar(event["label"], event["done"], event["total"])
            elif event.get("type") == "error":
                raise CliError(
                    f"deploy refused, the server keeps its current code:\n  {event['message']}"
                )
            elif event.get("type") == "done":
                print(_deploy_summary(event))
                return 0
    raise CliError("the server closed the connection before the deploy finished")


def _deploy_summary(event: dict[str, Any]) -> str:
    if event.get("dry_run"):
        return (
            f"dry run: {event['functions']} functions found and every file compiles; no code "
            "was run (the deploy checks the schema against the data before it switches)"
        )
    added = ", ".join(event.get("added_indexes") or []) or "none"
    dropped = ", ".join(event.get("dropped_indexes") or []) or "none"
    return (
        f"deployed {event['functions']} functions; new indexes: {added} "
        f"({event['backfilled_rows']} rows backfilled); dropped indexes: {dropped}"
    )


# -- import / export --------------------------------------------------------------------------


class ProgressBar:
    """`label  45% [#########           ] 4,500/10,000` on one line of stderr."""

    def __init__(self) -> None:
        self._last = 0.0

    def __call__(self, label: str, done: int, total: int) -> None:
        now = time.monotonic()
        if done != total and now - self._last < 0.1:
            return
        self._last = now
        if total:
            filled = int(20 * done / total)
            bar = f"{100 * done // total:3d}% [{'#' * filled}{' ' * (20 - filled)}] "
        else:
            bar = ""
        end = "\n" if total and done == total else ""
        shown_total = f"{total:,}" if total else "?"
        print(f"\r{label:<24} {bar}{done:,}/{shown_total}", end=end, file=sys.stderr, flush=True)


async def export_command(root: Path, db: str, path: Path) -> int:
    from reactive.application import Application
    from reactive.archive import export_archive

    application = await Application.start(root, db, run_jobs=False)
    try:
        storage = application.storage
        counts = await export_archive(
            application.db, storage.blobs if storage else None, path, ProgressBar()
        )
    finally:
        await application.close()
    total = sum(counts.values())
    print(f"exported {total} documents from {len(counts)} tables to {path}")
    return 0


async def import_command(
    root: Path, db: str, path: Path, *, table: str | None, format: str | None, replace: bool
) -> int:
    from reactive.application import Application
    from reactive.archive import ArchiveError, import_archive, import_table

    if not path.is_file():
        raise CliError(f"{path}: no such file", status=2)
    application = await Application.start(root, db, run_jobs=False)
    try:
        if table is None:
            storage = application.storage
            summary = await import_archive(
                application.db,
                storage.blobs if storage else None,
                path,
                replace=replace,
                progress=ProgressBar(),
            )
        else:
            summary = await import_table(
                application.db,
                table,
                path,
                format=format,
                replace=replace,
                progress=ProgressBar(),
            )
    except ArchiveError as exc:
        raise CliError(f"nothing was imported: {exc}") from None
    finally:
        await application.close()
    tables = ", ".join(f"{name} {count}" for name, count in summary.documents.items())
    print(f"imported {summary.total} documents ({tables}) and {summary.files} files")
    return 0


# -- info / prune -----------------------------------------------------------------------------


async def info(url: str) -> int:
    """Print every table with its indexes, their state and the live document count."""
    db = await Database.open(url, prune=False)
    try:
        print(f"database {url.split('?')[0]}  latest ts {db.latest_ts}")
        for table in db.catalog.tables():
            count = await _count(db, table)
            print(f"  {table}: {count} documents")
            for index in db.catalog.indexes(table):
                fields = ", ".join(index.fields)
                print(f"    {index.name} [{fields}] {index.state.value}")
    finally:
        await db.close()
    return 0


async def _count(db: Database, table: str) -> int:
    async def documents(tx: Any) -> int:
        return len(await tx.query(table).collect())

    return (await db.run_query(documents)).value


async def prune(url: str) -> int:
    """Remove versions older than the retention window (REACTIVE_RETENTION_S)."""
    db = await Database.open(url, prune=False)
    try:
        removed = await db.prune()
        print(f"pruned {removed} old rows")
    finally:
        await db.close()
    return 0


# -- argument parsing -------------------------------------------------------------------------


_DB_HELP = f"database URL (default $REACTIVE_DATABASE_URL or {DEFAULT_DATABASE_URL})"

_Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reactive", description="reactive backend tools")
    commands = parser.add_subparsers(dest="command", required=True)
    _add_serving_commands(commands)
    _add_project_commands(commands)
    _add_server_admin_commands(commands)
    _add_data_commands(commands)
    return parser


def _add_serving_commands(commands: _Commands) -> None:
    for name, help_text in (
        ("dev", "serve the project here, reloading functions and schema on change"),
        ("serve", "serve the project here in production mode (errors redacted, no reload)"),
    ):
        sub = commands.add_parser(name, help=help_text)
        _add_project_options(sub)
        sub.add_argument("--host", default="127.0.0.1")
        sub.add_argument("--port", type=int, default=int(os.environ.get("PORT", DEFAULT_PORT)))


def _add_project_commands(commands: _Commands) -> None:
    """run, codegen and check: commands that work on the project directory itself."""
    run = commands.add_parser("run", help="run a function: reactive run messages:list '{...}'")
    run.add_argument("path", help="function path, e.g. messages:list")
    run.add_argument("args", nargs="?", default="{}", help="arguments as a JSON object")
    run.add_argument("--url", help="run on this server instead of the local database")
    run.add_argument(
        "--identity",
        help="local runs: act as this user, given as identity claims JSON, e.g. "
        '\'{"subject": "user_1", "issuer": "https://clerk.example", "email": "a@b.c"}\' '
        "(tokenIdentifier defaults to issuer|subject)",
    )
    run.add_argument(
        "--auth",
        metavar="TOKEN",
        help="--url runs: send this JWT as the bearer token, so the server verifies it and "
        "runs the function as its user",
    )
    run.add_argument(
        "--after",
        metavar="MS",
        type=float,
        help="schedule the mutation or action to run after MS milliseconds (a job in the local "
        "database, run by the servers sharing it) instead of running it now",
    )
    _add_project_options(run)
    codegen = commands.add_parser("codegen", help="write _generated/ (TypeScript and Python)")
    _add_dir_option(codegen)
    codegen.add_argument("--out", help="output directory (default: <dir>/_generated)")
    check = commands.add_parser("check", help="index and auth coverage of every function")
    _add_dir_option(check)


def _add_server_admin_commands(commands: _Commands) -> None:
    """logs and deploy: commands that talk to a running server with the admin key."""
    logs = commands.add_parser("logs", help="follow a running server's function calls")
    _add_server_options(logs)
    logs.add_argument("--limit", type=int, help="stop after this many calls")
    deploy = commands.add_parser("deploy", help="switch a running server to this project's code")
    _add_dir_option(deploy)
    _add_server_options(deploy)
    deploy.add_argument("--dry-run", action="store_true", help="validate only, switch nothing")


def _add_data_commands(commands: _Commands) -> None:
    """export, import, info and prune: commands on the database's contents."""
    export = commands.add_parser("export", help="write a snapshot ZIP of every table")
    export.add_argument("--path", default="snapshot.zip", help="ZIP to write")
    importer = commands.add_parser(
        "import", help="import a snapshot ZIP, or one table from JSONL/CSV (--table)"
    )
    importer.add_argument("path", help="snapshot .zip, or .jsonl/.csv with --table")
    importer.add_argument("--table", help="import this one table from a JSONL or CSV file")
    importer.add_argument("--format", choices=["jsonl", "csv"], help="default: by extension")
    importer.add_argument("--replace", action="store_true", help="replace existing documents")
    for sub in (export, importer):
        _add_project_options(sub)
    for name, command in (("info", info), ("prune", prune)):
        sub = commands.add_parser(name, help=command.__doc__ or "")
        sub.add_argument("--db", help=_DB_HELP)


def _add_dir_option(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--dir", default=".", help="project directory (default: .)")


def _add_project_options(sub: argparse.ArgumentParser) -> None:
    """--dir and --db: a project directory and the database it runs on."""
    _add_dir_option(sub)
    sub.add_argument("--db", help=_DB_HELP)


def _add_server_options(sub: argparse.ArgumentParser) -> None:
    """--url and --admin-key: which running server, and the key to administer it."""
    sub.add_argument("--url", default=f"http://127.0.0.1:{DEFAULT_PORT}")
    sub.add_argument("--admin-key", default=os.environ.get("REACTIVE_ADMIN_KEY"))


def _dispatch(args: argparse.Namespace) -> Any:
    db = database_url(getattr(args, "db", None))
    if args.command in ("dev", "serve"):
        return serve(Path(args.dir).resolve(), db, args.host, args.port, dev=args.command == "dev")
    if args.command == "run":
        return run_function(
            args.path,
            args.args,
            url=args.url,
            root=Path(args.dir).resolve(),
            db=db,
            identity=args.identity,
            token=args.auth,
            after_ms=args.after,
        )
    if args.command == "codegen":
        return codegen_command(Path(args.dir).resolve(), Path(args.out) if args.out else None)
    if args.command == "check":
        return check_command(Path(args.dir).resolve())
    if args.command == "logs":
        return logs_command(args.url, args.admin_key, args.limit)
    if args.command == "deploy":
        return deploy_command(Path(args.dir).resolve(), args.url, args.admin_key, args.dry_run)
    if args.command == "export":
        return export_command(Path(args.dir).resolve(), db, Path(args.path))
    if args.command == "import":
        return import_command(
            Path(args.dir).resolve(),
            db,
            Path(args.path),
            table=args.table,
            format=args.format,
            replace=args.replace,
        )
    return {"info": info, "prune": prune}[args.command](db)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        status: int = asyncio.run(_dispatch(args))
        return status
    except CliError as exc:
        print(f"reactive {args.command}: {exc}", file=sys.stderr)
        return exc.status
    except (OSError, ValueError) as exc:
        print(f"reactive {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
