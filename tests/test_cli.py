from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from reactive.database import Database
from reactive.tools.cli import info, main
from tests.schemas import TEST_SCHEMA


async def test_info_lists_tables_indexes_and_counts(tmp_path, capsys):
    url = f"sqlite:///{tmp_path}/cli.db"
    db = await Database.open(url, schema=TEST_SCHEMA, prune=False)
    await db.run_mutation(lambda tx: tx.insert("messages", {"channel": "a", "body": "x"}))
    await db.close()
    assert await info(url) == 0
    out = capsys.readouterr().out
    assert "messages: 1 documents" in out and "by_channel [channel] ready" in out


def test_bad_database_url_is_a_clear_error(capsys):
    assert main(["info", "--db", "mysql://nope"]) == 1
    assert "unsupported database URL" in capsys.readouterr().err


def test_unknown_command_exits_with_usage():
    with pytest.raises(SystemExit):
        main(["frobnicate"])


CHAT = Path(__file__).parent / "projects" / "chat"


def test_run_locally_prints_the_value(tmp_path, capsys):
    db = f"sqlite:///{tmp_path}/run.db"
    args = ["--dir", str(CHAT), "--db", db]
    assert main(["run", "messages:send", '{"channel": "c", "body": "hi"}', *args]) == 0
    assert main(["run", "messages:count", '{"channel": "c"}', *args]) == 0
    out = capsys.readouterr().out.split()
    assert out[-1] == "1.0"


def test_run_can_call_internal_functions_locally(tmp_path, capsys):
    db = f"sqlite:///{tmp_path}/run.db"
    assert (
        main(["run", "messages:count_internal", '{"channel": "c"}', "--dir", str(CHAT), "--db", db])
        == 0
    )


@pytest.mark.parametrize(
    ("args_json", "status", "message"),
    [("{not json", 2, "not valid JSON"), ("[1]", 2, "must be a JSON object")],
)
def test_run_rejects_bad_args(tmp_path, capsys, args_json, status, message):
    assert (
        main(
            [
                "run",
                "messages:count",
                args_json,
                "--dir",
                str(CHAT),
                "--db",
                f"sqlite:///{tmp_path}/x.db",
            ]
        )
        == status
    )
    assert message in capsys.readouterr().err


def test_run_reports_unknown_functions_and_function_errors(tmp_path, capsys):
    db = ["--dir", str(CHAT), "--db", f"sqlite:///{tmp_path}/x.db"]
    assert main(["run", "messages:nope", "{}", *db]) == 1
    assert "Could not find" in capsys.readouterr().err
    assert main(["run", "messages:send", '{"channel": "c", "body": " "}', *db]) == 1
    assert "EMPTY_BODY" in capsys.readouterr().err


def test_run_against_an_unreachable_server_is_a_clear_error(capsys):
    from tests.live_server import free_port

    assert main(["run", "messages:count", "{}", "--url", f"http://127.0.0.1:{free_port()}"]) == 1
    assert "cannot reach the server" in capsys.readouterr().err


def test_run_against_a_live_server(tmp_path, capsys):
    from tests.live_server import LiveServer

    with LiveServer(CHAT, f"sqlite:///{tmp_path}/live.db") as server:
        assert (
            main(["run", "messages:send", '{"channel": "r", "body": "x"}', "--url", server.url])
            == 0
        )
        assert main(["run", "messages:count", '{"channel": "r"}', "--url", server.url]) == 0
    assert capsys.readouterr().out.split()[-1] == "1.0"


def test_logs_follows_function_calls_of_a_live_server(tmp_path):
    import subprocess
    import sys
    import time

    import httpx

    from tests.live_server import REPO, LiveServer

    with LiveServer(CHAT, f"sqlite:///{tmp_path}/logs.db") as server:
        follower = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "reactive.tools.cli",
                "logs",
                "--url",
                server.url,
                "--limit",
                "2",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=REPO,
            text=True,
        )
        deadline = time.monotonic() + 40
        try:
            # keep calling until the follower has seen two calls (it may connect late); the
            # channel varies because identical queries at one snapshot run (and log) once
            calls = 0
            while follower.poll() is None and time.monotonic() < deadline:
                calls += 1
                httpx.post(
                    f"{server.url}/api/query",
                    json={"path": "messages:list", "args": {"channel": f"z{calls}"}},
                )
                time.sleep(0.2)
            out, err = follower.communicate(timeout=20)
        finally:
            follower.kill()
    assert follower.returncode == 0, err
    lines = [line for line in out.splitlines() if not line.startswith("    ")]
    assert len(lines) == 2 and all(" Q messages:list " in line and " ok" in line for line in lines)
    assert "[LOG] listing z" in out
    follower.stdout.close()
    follower.stderr.close()


def test_logs_of_a_production_server_need_the_admin_key(tmp_path, monkeypatch):
    from starlette.testclient import TestClient

    from reactive.http import create_app

    app = create_app(CHAT, database_url=f"sqlite:///{tmp_path}/p.db", dev=False)
    with TestClient(app) as client:
        assert client.get("/api/logs").status_code == 403
        monkeypatch.setenv("REACTIVE_ADMIN_KEY", "s3cret")
        assert client.get("/api/logs").status_code == 401
        assert client.get("/api/logs", headers={"Authorization": "Convex wrong"}).status_code == 401


def test_check_passes_the_seed_app_and_fails_a_bad_project(capsys):
    from tests.live_server import REPO

    assert main(["check", "--dir", str(REPO)]) == 0
    assert "index coverage 100 %" in capsys.readouterr().out
    mixed = Path(__file__).parent / "projects" / "check_samples" / "mixed"
    assert main(["check", "--dir", str(mixed)]) == 1


def test_codegen_writes_generated_files(tmp_path, capsys):
    assert main(["codegen", "--dir", str(CHAT), "--out", str(tmp_path / "gen")]) == 0
    written = capsys.readouterr().out.split()
    assert {Path(p).name for p in written} == {"api.d.ts", "api.js", "api.py", "dataModel.d.ts"}
    assert "messages" in (tmp_path / "gen" / "api.d.ts").read_text()


async def test_a_local_run_on_a_database_a_server_holds_reaches_its_subscribers(store_url):
    """The CLI is just another process: its commit, made straight to the database while a
    server serves it, is pushed to the server's subscribers."""
    import asyncio
    import sys

    from reactive.client import connect
    from tests.live_server import REPO, LiveServer

    with LiveServer(CHAT, store_url) as server:
        async with connect(server.url) as client:
            async with client.subscribe("messages:count", {"channel": "cli"}) as counts:
                assert await anext(counts) == 0.0
                run = await asyncio.create_subprocess_exec(
                    *[sys.executable, "-m", "reactive.tools.cli", "run", "messages:send"],
                    *['{"channel": "cli", "body": "from the CLI"}', "--dir", str(CHAT)],
                    *["--db", store_url],
                    cwd=REPO,
                )
                assert await run.wait() == 0
                assert await asyncio.wait_for(anext(counts), 10) == 1.0
            assert await client.mutation("messages:send", {"channel": "cli", "body": "x"})
            assert await client.query("messages:count", {"channel": "cli"}) == 2.0


SEED = Path(__file__).resolve().parent.parent  # the seed app: it reads the caller's identity
ALICE_CLAIMS = '{"subject": "user_1", "issuer": "https://clerk.example", "email": "a@b.test"}'


def test_run_locally_acts_as_the_identity_given(tmp_path, capsys):
    project = ["--dir", str(SEED), "--db", f"sqlite:///{tmp_path}/seed.db"]
    assert main(["run", "users:store", "{}", "--identity", ALICE_CLAIMS, *project]) == 0
    assert main(["run", "users:current", "{}", "--identity", ALICE_CLAIMS, *project]) == 0
    assert '"clerkId": "user_1"' in capsys.readouterr().out
    assert main(["run", "users:store", "{}", *project]) == 1  # signed out without --identity
    assert "UNAUTHORIZED" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("identity", "message"),
    [("{nope", "not valid JSON"), ("[1]", "JSON object"), ('{"email": "a@b"}', "issuer")],
)
def test_run_refuses_a_bad_identity(tmp_path, capsys, identity, message):
    project = ["--dir", str(SEED), "--db", f"sqlite:///{tmp_path}/seed.db"]
    assert main(["run", "users:current", "{}", "--identity", identity, *project]) == 2
    assert message in capsys.readouterr().err


def test_identity_is_for_local_runs_and_auth_for_servers(capsys):
    url = ["--url", "http://127.0.0.1:1"]
    assert main(["run", "users:current", "{}", "--identity", ALICE_CLAIMS, *url]) == 1
    assert "--auth" in capsys.readouterr().err
    assert main(["run", "users:current", "{}", "--auth", "jwt", "--dir", str(SEED)]) == 1
    assert "--identity" in capsys.readouterr().err


def test_run_against_a_server_sends_the_auth_token(tmp_path, capsys):
    from tests.live_server import LiveServer
    from tests.oidc_issuer import LocalIssuer

    with LocalIssuer() as issuer:
        env = {"CLERK_JWT_ISSUER_DOMAIN": issuer.url, "REACTIVE_STORAGE_DIR": str(tmp_path)}
        with LiveServer(SEED, f"sqlite:///{tmp_path}/live.db", env=env) as server:
            token = issuer.sign(subject="user_9", email="nine@b.test")
            assert main(["run", "users:store", "{}", "--url", server.url, "--auth", token]) == 0
            assert main(["run", "users:current", "{}", "--url", server.url, "--auth", token]) == 0
    assert '"clerkId": "user_9"' in capsys.readouterr().out


SCHEDULER = Path(__file__).parent / "projects" / "scheduler"


async def test_run_after_schedules_a_job_that_a_server_on_the_database_runs(tmp_path, capsys):
    from reactive.application import Application

    db = f"sqlite:///{tmp_path}/run.db"
    args = ["--dir", str(SCHEDULER), "--db", db]
    assert (
        await asyncio.to_thread(
            main, ["run", "jobs:record", '{"name": "cli"}', "--after", "100", *args]
        )
        == 0
    )
    job_id = capsys.readouterr().out.split()[-1].strip('"')
    bad = ["run", "jobs:record", '{"name": 1}', "--after", "0", *args]
    assert await asyncio.to_thread(main, bad) == 1
    assert "ArgumentValidationError" in capsys.readouterr().err
    app = await Application.start(SCHEDULER, db)  # a server: it runs the job
    try:
        for _ in range(200):
            job = await app.run_query("jobs:job", {"id": job_id})
            if job.value["state"]["kind"] == "success":
                break
            await asyncio.sleep(0.05)
        assert job.value["state"] == {"kind": "success"}
        assert (await app.run_query("jobs:effects", {"name": "cli"})).value == 1.0
        assert len((await app.run_query("jobs:jobs", {})).value) == 1  # the bad one: none
    finally:
        await app.close()
