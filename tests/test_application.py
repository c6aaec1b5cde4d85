from __future__ import annotations

import asyncio
import gc
import os
from pathlib import Path

import pytest

from reactive import knobs
from reactive.application import Application, EncodedArgs
from reactive.errors import ValidationError

CHAT = Path(__file__).parent / "projects" / "chat"


@pytest.fixture
async def app(tmp_path):
    application = await Application.start(CHAT, f"sqlite:///{tmp_path}/app.db")
    try:
        yield application
    finally:
        await application.close()


async def test_identical_queries_at_one_ts_share_one_execution(app, monkeypatch):
    runs = 0
    original = app.executor.run

    async def counting(*args, **kwargs):
        nonlocal runs
        runs += 1
        return await original(*args, **kwargs)

    monkeypatch.setattr(app.executor, "run", counting)
    outcomes = await asyncio.gather(
        *(app.run_query("messages:list", {"channel": "a"}) for _ in range(20))
    )
    assert runs == 1 and all(o.value == [] for o in outcomes)
    await app.run_query("messages:list", {"channel": "b"})
    assert runs == 2


async def test_encoded_args_share_the_run_of_the_same_args_and_are_decoded_only_to_run_it(
    app, monkeypatch
):
    runs: list[object] = []
    original = app.executor.run

    async def counting(kind, path, args, *rest, **kwargs):
        runs.append(args)
        return await original(kind, path, args, *rest, **kwargs)

    monkeypatch.setattr(app.executor, "run", counting)
    decodes: list[None] = []
    decode = EncodedArgs.decoded

    def counted_decode(self):
        decodes.append(None)
        return decode(self)

    monkeypatch.setattr(EncodedArgs, "decoded", counted_decode)
    plain = {"channel": "a"}
    encoded = EncodedArgs.of(plain, {"channel": "a"})

    ts = app.latest_ts
    outcomes = await asyncio.gather(
        app.run_query("messages:list", plain, ts=ts),
        *(app.run_query("messages:list", encoded, ts=ts) for _ in range(5)),
    )
    assert len(runs) == 1 and runs[0] == plain and all(o.value == [] for o in outcomes)
    assert decodes == []  # every encoded caller joined the plain call's run

    await app.run_mutation("messages:send", {"channel": "a", "body": "hi"})
    outcome = await app.run_query("messages:list", encoded)  # a new snapshot: a run of its own
    assert [m["body"] for m in outcome.value] == ["hi"]
    assert len(decodes) == 1 and runs[-1] == plain


def test_encoded_args_keep_the_order_sent_and_share_by_a_sorted_key():
    args = {"b": 1.0, "a": "x"}
    encoded = EncodedArgs.of(args, {"b": 1.0, "a": "x"})
    assert list(encoded.decoded()) == ["b", "a"] and encoded.decoded() == args
    assert encoded.key == EncodedArgs.of({"a": "x", "b": 1.0}, {"a": "x", "b": 1.0}).key
    assert encoded.size() == len(encoded.json) + len(encoded.key or b"")
    alone = EncodedArgs.of({"a": "x"}, {"a": "x"})
    assert alone.key is alone.json and alone.size() == len(alone.json)


async def test_when_the_caller_running_a_shared_query_is_cancelled_the_others_still_get_it(
    app, monkeypatch
):
    started = asyncio.Event()
    runs = 0
    original = app.executor.run

    async def slow_once(*args, **kwargs):
        nonlocal runs
        runs += 1
        if runs == 1:  # the first run hangs until its caller is cancelled
            started.set()
            await asyncio.sleep(3600)
        return await original(*args, **kwargs)

    monkeypatch.setattr(app.executor, "run", slow_once)
    ts = app.latest_ts
    leader = asyncio.create_task(app.run_query("messages:list", {"channel": "a"}, ts=ts))
    await started.wait()
    follower = asyncio.create_task(app.run_query("messages:list", {"channel": "a"}, ts=ts))
    await asyncio.sleep(0.01)
    leader.cancel()
    outcome = await asyncio.wait_for(follower, 5)
    assert outcome.value == [] and runs == 2 and leader.cancelled()


async def test_different_identities_do_not_share_results(app):
    from reactive.auth import Identity

    alice = Identity.from_jwt_claims({"iss": "https://i", "sub": "alice"})
    bob = Identity.from_jwt_claims({"iss": "https://i", "sub": "bob"})
    ts = app.latest_ts
    a = await app.run_query("messages:whoami", {}, alice, ts=ts)
    b = await app.run_query("messages:whoami", {}, bob, ts=ts)
    assert (a.value, b.value) == ("alice", "bob")


async def test_a_new_commit_means_a_new_execution(app):
    first = await app.run_query("messages:count", {"channel": "c"})
    await app.run_mutation("messages:send", {"channel": "c", "body": "x"})
    second = await app.run_query("messages:count", {"channel": "c"})
    assert (first.value, second.value) == (0.0, 1.0)


# -- deployments shared by every node ---------------------------------------------------------

NEW_FUNCTION = """
from reactive import query


@query
async def version(ctx, args):
    return "v2"
"""


def chat_v2(tmp_path: Path) -> Path:
    """The chat project plus `deployed:version`."""
    import shutil

    project = tmp_path / "chat_v2"
    shutil.copytree(CHAT, project, ignore=shutil.ignore_patterns("__pycache__", ".reactive"))
    (project / "functions" / "deployed.py").write_text(NEW_FUNCTION)
    return project


async def serves_v2(app: Application, within_s: float = 5.0) -> bool:
    deadline = asyncio.get_running_loop().time() + within_s
    while True:
        outcome = await app.run_query("deployed:version", {})
        if outcome.ok and outcome.value == "v2":
            return True
        if asyncio.get_running_loop().time() >= deadline:
            return False
        await asyncio.sleep(0.02)


@pytest.fixture
def deploy_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("REACTIVE_DEPLOY_DIR", str(tmp_path / "deploys"))


async def test_a_deploy_to_one_node_switches_every_node(store_url, tmp_path, deploy_dir):
    first = await Application.start(CHAT, store_url)
    second = await Application.start(CHAT, store_url)
    try:
        assert not (await second.run_query("deployed:version", {})).ok
        report = await first.deploy(chat_v2(tmp_path))
        assert report.version == 1
        assert await serves_v2(first, within_s=0)
        assert await serves_v2(second)
        assert second.deployment is not None and second.deployment.version == 1
    finally:
        await second.close()
        await first.close()


async def test_a_node_started_later_serves_the_newest_deployment(store_url, tmp_path, deploy_dir):
    first = await Application.start(CHAT, store_url)
    try:
        await first.deploy(chat_v2(tmp_path))
        await first.deploy(chat_v2(tmp_path / "again"))
    finally:
        await first.close()
    later = await Application.start(CHAT, store_url)  # its own code on disk is the old one
    try:
        assert await serves_v2(later, within_s=0)
        assert later.deployment is not None and later.deployment.version == 2
    finally:
        await later.close()


async def test_dev_reload_after_a_deploy_serves_the_code_on_disk(tmp_path, deploy_dir):
    app = await Application.start(CHAT, f"sqlite:///{tmp_path}/dev.db", dev=True)
    try:
        await app.deploy(chat_v2(tmp_path))
        assert await serves_v2(app, within_s=0)
        await app.reload()
        assert not (await app.run_query("deployed:version", {})).ok
    finally:
        await app.close()


async def test_a_query_at_a_ts_inside_the_retained_history_runs(app):
    await app.run_mutation("messages:send", {"channel": "r", "body": "one"})
    ts = app.latest_ts
    await app.run_mutation("messages:send", {"channel": "r", "body": "two"})
    outcome = await app.run_query_at("messages:count", {"channel": "r"}, None, ts)
    assert outcome.value == 1.0


async def test_a_query_at_a_ts_that_pruning_may_have_dropped_is_refused(app, monkeypatch):
    await app.run_mutation("messages:send", {"channel": "r", "body": "one"})
    ts = app.latest_ts
    await app.run_mutation("messages:send", {"channel": "r", "body": "two"})
    monkeypatch.setattr(knobs, "RETENTION_S", 0.0)
    await app.db.prune()  # versions superseded before now may be gone: ts is not whole
    with pytest.raises(ValidationError) as caught:
        await app.run_query_at("messages:count", {"channel": "r"}, None, ts)
    assert caught.value.short_msg == "TimestampTooOld"
    assert app.oldest_readable_ts() > ts


async def test_the_latest_snapshot_stays_readable_however_long_ago_it_was(app, monkeypatch):
    await app.run_mutation("messages:send", {"channel": "r", "body": "one"})
    monkeypatch.setattr(knobs, "RETENTION_S", 0.0)  # as if the last commit were long ago
    await app.db.prune()
    outcome = await app.run_query_at("messages:count", {"channel": "r"}, None, app.latest_ts)
    assert outcome.value == 1.0


async def test_mutations_reach_the_call_log_like_queries_and_actions(app):
    await app.run_mutation("messages:send", {"channel": "c", "body": "x"})
    await app.run_mutation("messages:send", {"channel": "c", "body": " "})  # fails: EMPTY_BODY
    calls = [(c.kind, c.path, c.ok) for c in app.calls.recent()]
    assert calls == [("mutation", "messages:send", True), ("mutation", "messages:send", False)]


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_encoded_args_kept_per_subscription_do_not_hold_orjsons_output_buffer():
    """orjson builds its output in a buffer of at least 4 KiB and hands that buffer back: kept
    as is, every subscription's args held 4 KiB (server RSS 5.3 MiB per 1,000 subs)."""
    gc.collect()
    before = _rss_bytes()
    kept = [EncodedArgs.of({"channel": f"c{i}"}, {"channel": f"c{i}"}) for i in range(20_000)]
    grown = _rss_bytes() - before
    assert len(kept) == 20_000 and grown < 20 * 2**20, grown  # ~80 MiB with 4 KiB each
