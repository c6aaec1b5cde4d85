"""Conformance: the official npm `convex` client (1.48.0, under Node) against a live server.

Each test starts a real server of the chat project on a fresh SQLite file, runs one script of
tests/conformance/ with `node` (server URL and a JSON params object in argv) and asserts on the
one JSON line the script prints. Needs `node` >= 20 and `npm ci --prefix tests/conformance`;
without them these tests skip, except under CI (env CI non-empty), where they fail.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import httpx
import pytest
from cryptography.hazmat.primitives import serialization

from tests.live_server import LiveServer
from tests.node_tools import NodeScript, node_with_packages
from tests.oidc_issuer import LocalIssuer

CONFORMANCE = Path(__file__).parent / "conformance"
CHAT = Path(__file__).parent / "projects" / "chat"
NODE_TIMEOUT_S = 30.0
CUE = "CUE "  # a script's cue line to the test; its result is the last stdout line


# -- running the scripts -----------------------------------------------------------------------


WHAT = "the npm conformance tests"


@pytest.fixture(scope="module")
def node() -> str:
    """The `node` executable, once the conformance package is installed."""
    return node_with_packages(WHAT, CONFORMANCE, "convex")


def _text(output: str | bytes | None) -> str:
    if isinstance(output, bytes):
        return output.decode(errors="replace")
    return output or ""


def _failure(what: str, stdout: Any, stderr: Any, server: LiveServer) -> str:
    return (
        f"{what}\n--- node stdout ---\n{_text(stdout)[-4000:]}"
        f"\n--- node stderr (tail) ---\n{_text(stderr)[-12000:]}"
        f"\n--- server log (tail) ---\n{server.log()[-4000:]}"
    )


def _command(node: str, script: str, server: LiveServer, params: dict[str, Any]) -> list[str]:
    return [node, str(CONFORMANCE / script), server.url, json.dumps(params)]


def run_script(
    node: str, script: str, server: LiveServer, params: dict[str, Any]
) -> dict[str, Any]:
    """Run `script` against `server` and return the JSON object it printed."""
    command = _command(node, script, server, params)
    try:
        done = subprocess.run(
            command, cwd=CONFORMANCE, capture_output=True, text=True, timeout=NODE_TIMEOUT_S
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(_failure(f"{script} timed out", exc.stdout, exc.stderr, server))
    if done.returncode != 0:
        pytest.fail(
            _failure(f"{script} exited {done.returncode}", done.stdout, done.stderr, server)
        )
    lines = [line for line in done.stdout.splitlines() if line and not line.startswith(CUE)]
    return json.loads(lines[-1])  # type: ignore[no-any-return]


class Conversation(NodeScript):
    """A script that cues the test on stdout (`CUE <word>`) and waits for answers on stdin."""

    def __init__(self, node: str, script: str, server: LiveServer, params: dict[str, Any]) -> None:
        self.script, self.server = script, server
        self.seen: list[str] = []
        super().__init__(_command(node, script, server, params), CONFORMANCE, NODE_TIMEOUT_S)

    def _fail(self, what: str) -> NoReturn:
        pytest.fail(_failure(what, "\n".join(self.seen), self.stderr_text(), self.server))

    def _next_line(self, waiting_for: str) -> str:
        line = self.next_line()
        if line is None:
            self._fail(f"{self.script}: no {waiting_for} (exit code {self.process.poll()})")
        self.seen.append(line)
        return line

    def expect_cue(self, word: str) -> None:
        line = self._next_line(f"cue {word!r}")
        if line != CUE + word:
            self._fail(f"{self.script}: expected cue {word!r}, got {line!r}")

    def result(self) -> dict[str, Any]:
        line = self._next_line("result line")
        try:
            code = self.process.wait(timeout=max(0.1, self.deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            code = None
        if code != 0:
            self._fail(f"{self.script}: exit code {code}")
        return json.loads(line)  # type: ignore[no-any-return]


def complaints(log: list[dict[str, str]]) -> list[str]:
    """The client's warnings and errors (it logs function log lines at level info)."""
    return [line["text"] for line in log if line["level"] in ("warn", "error")]


def infos(log: list[dict[str, str]]) -> list[str]:
    return [line["text"] for line in log if line["level"] == "info"]


# -- servers -----------------------------------------------------------------------------------


@pytest.fixture
def issuer() -> Iterator[LocalIssuer]:
    with LocalIssuer() as local_issuer:
        yield local_issuer


@pytest.fixture
def chat_server(tmp_path: Path, issuer: LocalIssuer) -> Iterator[LiveServer]:
    """The chat project on a fresh SQLite file, trusting JWTs from `issuer`. Mutations may run
    5 s (Convex's limit is 1 s): `conformance:send_slowly` holds one open across a restart."""
    env = {"CHAT_ISSUER": issuer.url, "REACTIVE_QUERY_MUTATION_TIMEOUT_S": "5"}
    server = LiveServer(CHAT, f"sqlite:///{tmp_path}/chat.db", env=env)
    with server:
        yield server


def expired_token(issuer: LocalIssuer, subject: str) -> str:
    issued = int(time.time()) - 3600
    return issuer.sign(subject=subject, expires_in=-60, iat=issued, nbf=issued)


def forged_token(issuer: LocalIssuer, subject: str) -> str:
    """The issuer's header and claims with another key's signature."""
    header_and_claims = issuer.sign(subject=subject).rsplit(".", 1)[0]
    return f"{header_and_claims}.{LocalIssuer().sign(subject=subject).rsplit('.', 1)[1]}"


# -- ConvexClient (WebSocket) ------------------------------------------------------------------


def test_client_subscription_mutation_query_and_action(node: str, chat_server: LiveServer):
    result = run_script(node, "client_basics.mjs", chat_server, {"channel": "general"})

    assert result["initial"] == []
    new_id = result["id"]
    assert isinstance(new_id, str) and new_id
    assert result["visibleWhenResolved"] is True
    [doc] = result["afterSend"]
    assert doc["_id"] == new_id and doc["body"] == "hello" and doc["channel"] == "general"
    assert abs(doc["_creationTime"] / 1000 - time.time()) < 600  # milliseconds since the epoch
    assert result["queried"] == result["afterSend"]
    assert result["countViaAction"] == 2
    assert [d["body"] for d in result["afterAction"]] == ["via action", "hello"]
    assert result["countQueried"] == 2
    assert result["subscriptionErrors"] == []
    assert complaints(result["log"]) == []
    # Function log lines reach the client's logger, parsed as "[LEVEL] text".
    assert "[CONVEX Q(messages:list)] [LOG] listing general" in infos(result["log"])
    assert "[CONVEX M(messages:send)] [WARN] sending to general" in infos(result["log"])


def test_every_value_type_round_trips_and_other_clients_see_writes(
    node: str, chat_server: LiveServer
):
    result = run_script(node, "client_values.mjs", chat_server, {"channel": "values"})

    sent = result["sent"]
    assert sent["int"] == {"bigint": "5"} and sent["nan"] == {"float": "NaN"}
    assert sent["bytes"] == {"bytes": [0, 1, 2, 255]}
    for way in ("viaQuery", "viaMutation", "viaHttpQuery", "viaHttpMutation"):
        assert result[way] == sent, way
    assert result["seenFromOther"] == 1
    assert complaints(result["log"]) == []


def test_client_failures_reject_with_convex_error_or_plain_error(
    node: str, chat_server: LiveServer
):
    result = run_script(node, "client_errors.mjs", chat_server, {"channel": "oops"})

    empty_body = result["emptyBody"]["error"]
    assert result["emptyBody"]["ok"] is False
    assert empty_body["isConvexError"] is True
    assert empty_body["data"] == {"code": "EMPTY_BODY"}
    assert empty_body["message"].startswith("[CONVEX M(messages:send)] ")
    crashed = result["crashed"]["error"]
    assert crashed["isConvexError"] is False and crashed["isError"] is True
    assert crashed["name"] == "Error" and crashed["data"] is None
    assert crashed["message"].startswith("[CONVEX M(messages:crash)] ")
    action = result["actionFailed"]["error"]
    assert action["isConvexError"] is True and action["data"] == "action says no"
    query = result["queryFailed"]["error"]
    assert query["isConvexError"] is True
    assert query["data"] == {"code": "EMPTY", "channel": "oops"}
    for missing in (result["missingMutation"]["error"], result["missingQuery"]["error"]):
        assert missing["isConvexError"] is False
        assert (
            "Could not find public function for 'messages:no_such_function'" in (missing["message"])
        )
    # A subscription that failed recovers once its query succeeds; the client still works.
    [before] = result["subscriptionErrorsBeforeData"]
    assert before["isConvexError"] is True and before["data"]["code"] == "EMPTY"
    assert result["sent"]["ok"] is True
    assert result["recovered"] == "finally"


def test_client_set_auth_with_a_real_jwt(node: str, chat_server: LiveServer, issuer: LocalIssuer):
    params = {"channel": "private", "subject": "user_42", "token": issuer.sign(subject="user_42")}
    valid = run_script(node, "client_auth.mjs", chat_server, params)

    assert valid["changes"][0] is True
    assert False not in valid["changes"]
    # The client holds its queries back until the token is accepted: no anonymous value first.
    assert valid["identities"] == ["user_42", None]
    assert valid["author"] == "user_42"
    assert valid["afterLogout"] is None
    # Once accepted, the client at once fetches a fresh token (it re-sends only a changed one).
    assert valid["fetchCount"] >= 2
    assert valid["subscriptionErrors"] == []
    assert complaints(valid["log"]) == []


@pytest.mark.parametrize("kind", ["expired", "wrong_audience", "unknown_issuer", "forged"])
def test_client_with_a_rejected_token_is_unauthenticated_and_keeps_working(
    node: str, chat_server: LiveServer, issuer: LocalIssuer, kind: str
):
    tokens = {
        "expired": lambda: expired_token(issuer, "user_7"),
        "wrong_audience": lambda: issuer.sign(subject="user_7", audience="not-convex"),
        "unknown_issuer": lambda: LocalIssuer().sign(subject="user_7"),
        "forged": lambda: forged_token(issuer, "user_7"),
    }
    params = {"channel": "c", "token": tokens[kind](), "rejected": True}
    rejected = run_script(node, "client_auth.mjs", chat_server, params)

    assert rejected["changes"] == [False]
    assert rejected["whoAfterRejection"] is None
    # The rejection made the client try a fresh token once before giving up.
    assert rejected["fetchCount"] >= 2
    assert rejected["sent"]["ok"] is True
    assert rejected["author"] is None


def _refresh_params(issuer: LocalIssuer, *, refresh: bool) -> dict[str, Any]:
    """Let the script sign 5-second tokens itself; the client refreshes 3 s before expiry."""
    pem = issuer.key.private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return {
        "privateKeyPem": pem.decode(),
        "kid": issuer.key.kid,
        "issuer": issuer.url,
        "subject": "user_5",
        "lifetimeS": 5,
        "leewayS": 3,
        "refresh": refresh,
        "watchS": 7,
        "channel": "refresh",
    }


def test_client_refreshing_short_lived_tokens_stays_authenticated(
    node: str, chat_server: LiveServer, issuer: LocalIssuer
):
    params = _refresh_params(issuer, refresh=True)
    result = run_script(node, "client_token_refresh.mjs", chat_server, params)

    # 7 s of 5 s tokens refreshed every 2 s: each new token replaces the old one's expiry.
    assert result["authenticateSent"] >= 4
    assert result["authErrors"] == 0
    assert set(result["changes"]) == {True}
    assert result["identities"] == ["user_5"]
    assert result["afterwards"]["author"] == "user_5"
    assert complaints(result["log"]) == []


def test_client_token_expiring_mid_session_ends_unauthenticated(
    node: str, chat_server: LiveServer, issuer: LocalIssuer
):
    params = _refresh_params(issuer, refresh=False)
    result = run_script(node, "client_token_refresh.mjs", chat_server, params)

    assert result["tokensSigned"] == 1
    assert result["authErrors"] >= 1
    assert result["changes"] == [True, False]
    assert result["identities"] == ["user_5", None]
    assert result["afterwards"]["sent"]["ok"] is True
    assert result["afterwards"]["author"] is None


def test_client_reconnects_across_a_restart_without_losing_or_doubling_mutations(
    node: str, chat_server: LiveServer, issuer: LocalIssuer
):
    total, stop_after = 20, 10
    token = issuer.sign(subject="user_r")
    params = {"channel": "restart", "total": total, "stopAfter": stop_after, "token": token}
    # restart() split in two so the client is known to have a mutation pending while down.
    with Conversation(node, "client_reconnect.mjs", chat_server, params) as script:
        script.expect_cue("stop")
        chat_server.stop()
        script.answer("stopped")
        script.expect_cue("start")
        chat_server.start()
        script.answer("started")
        result = script.result()

    assert len(result["ids"]) == total and len(set(result["ids"])) == total
    assert result["finalCount"] == total
    assert result["bodies"] == [f"m{i}" for i in range(total)]
    assert result["authors"] == ["user_r"]  # re-authenticated on the new connection
    assert result["isDone"] is True
    assert result["counts"] == sorted(result["counts"]) and result["counts"][-1] == total
    assert result["subscriptionErrors"] == []


def test_mutation_in_flight_during_a_restart_applies_exactly_once(
    node: str, chat_server: LiveServer
):
    params = {"channel": "slow", "delayS": 1.5}
    with Conversation(node, "client_inflight.mjs", chat_server, params) as script:
        script.expect_cue("inflight")
        time.sleep(0.4)  # the server is now inside the mutation's sleep
        chat_server.restart()
        script.answer("restarted")
        result = script.result()

    assert result["result"]["ok"] is True, result["result"]
    assert result["finalCount"] == 1
    assert result["ids"] == [result["result"]["value"]]
    assert result["subscriptionErrors"] == []


def _add_counter_on_another_process(server: LiveServer, name: str) -> None:
    """While `server` is stopped, commit to its database through a second server process
    on another port, which the test's client does not know about."""
    with LiveServer(server.project, server.database_url, env=server.env) as other:
        body = {"path": "conformance:add_counter", "args": {"name": name}, "format": "json"}
        response = httpx.post(f"{other.url}/api/mutation", json=body, timeout=10)
        assert response.json()["status"] == "success", response.text


@pytest.mark.parametrize("restart", [False, True], ids=["steady", "across_restart"])
def test_client_paginated_updates_have_no_gaps_or_overlaps(
    node: str, chat_server: LiveServer, restart: bool
):
    steps = [
        {"add": "c"},  # inside the first page
        {"add": "e"},  # inside the second page
        {"add": "a"},  # before the first page
        {"add": "i"},  # after the loaded pages: not shown until more are loaded
        {"remove": "d"},  # the document the first page ends at
        {"add": "g"},
    ]
    initial = ["b", "d", "f", "h"]
    params = {"initial": initial, "pageSize": 2, "steps": steps, "last": "z", "restart": restart}
    with Conversation(node, "client_pagination.mjs", chat_server, params) as script:
        if restart:
            # "bb" lands inside the first page while the client is away: only the page ends the
            # client re-sends as journals keep "d" from falling between the first two pages.
            script.expect_cue("restart")
            chat_server.stop()
            _add_counter_on_another_process(chat_server, "bb")
            chat_server.start()
            script.answer("restarted")
        result = script.result()

    assert result["firstPage"] == {"names": ["b", "d"], "status": "CanLoadMore"}
    assert result["loadMoreStarted"] is True
    assert result["twoPages"]["names"] == initial
    present = set(initial) | ({"bb"} if restart else set())
    expected = []
    for step in steps:
        present = present | {step["add"]} if "add" in step else present - {step["remove"]}
        expected.append(sorted(name for name in present if name <= "h"))  # the loaded pages
    assert [step["names"] for step in result["steps"]] == expected
    assert result["exhausted"] == {"names": sorted(present), "status": "Exhausted"}
    assert result["afterLast"]["names"] == [*sorted(present), "z"]
    for names in result["everySeen"]:
        assert names == sorted(set(names)), f"overlapping or unordered pages: {names}"
    assert result["subscriptionErrors"] == []
    assert complaints(result["log"]) == []


# -- ConvexHttpClient --------------------------------------------------------------------------


def test_http_client_calls_failures_and_auth(
    node: str, chat_server: LiveServer, issuer: LocalIssuer
):
    params = {
        "channel": "web",
        "token": issuer.sign(subject="user_9"),
        "expiredToken": expired_token(issuer, "user_9"),
    }
    result = run_script(node, "http_client.mjs", chat_server, params)

    assert [doc["_id"] for doc in result["listed"]] == [result["id"]]
    assert result["listed"][0]["body"] == "over http"
    assert result["countViaAction"] == 2
    assert [doc["body"] for doc in result["consistent"]] == ["http action", "over http"]
    failures = result["failures"]
    assert failures["emptyBody"]["error"]["isConvexError"] is True
    assert failures["emptyBody"]["error"]["data"] == {"code": "EMPTY_BODY"}
    assert failures["crashed"]["error"]["isConvexError"] is False
    assert failures["crashed"]["error"]["isError"] is True
    assert failures["queryFailed"]["error"]["data"] == {"code": "EMPTY", "channel": "web-empty"}
    assert failures["actionFailed"]["error"]["data"] == "action says no"
    assert failures["missing"]["error"]["isConvexError"] is False
    assert "Could not find public function" in failures["missing"]["error"]["message"]
    assert result["anonymous"] is None
    assert result["signedIn"] == "user_9"
    assert result["author"] == "user_9"
    assert result["signedOut"] is None
    assert result["expired"]["ok"] is False
    assert result["expired"]["error"]["isConvexError"] is False
    assert "expired" in result["expired"]["error"]["message"].lower()
    assert "[CONVEX M(messages:send)] [WARN] sending to web" in infos(result["log"])
    assert complaints(result["log"]) == []


# -- the browser bundle ------------------------------------------------------------------------


def test_browser_bundle_runs_with_a_websocket_shim(node: str, chat_server: LiveServer):
    result = run_script(node, "browser_bundle.mjs", chat_server, {"channel": "bundle"})

    assert result["exports"] == ["BaseConvexClient", "ConvexClient", "ConvexHttpClient", "anyApi"]
    assert [doc["_id"] for doc in result["afterSend"]] == [result["id"]]
    assert result["failure"] == {"name": "ConvexError", "data": {"code": "EMPTY_BODY"}}
    assert result["overHttp"] == result["afterSend"]
    assert result["subscriptionErrors"] == []
