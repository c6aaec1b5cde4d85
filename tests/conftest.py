"""Shared fixtures: `store_url` runs a test once per storage backend, `persistence` opens it,
`issuer` is a local OIDC issuer for the modules that sign tokens.

Each Postgres test gets its own schema, dropped afterwards. Without a reachable server the
Postgres half is skipped, except under CI (env CI non-empty), where it fails.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from reactive.database import Database
from reactive.persistence import Persistence, open_persistence
from tests.oidc_issuer import LocalIssuer
from tests.schemas import TEST_SCHEMA

POSTGRES_URL = os.environ.get(
    "REACTIVE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


def with_schema(url: str, schema: str) -> str:
    """`url` with a `schema` query parameter added."""
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}schema={schema}"


async def connect_postgres_or_skip() -> asyncpg.Connection:
    """A connection to the test server; skip the test (fail it under CI) if there is none."""
    try:
        return await asyncpg.connect(POSTGRES_URL, timeout=5)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        reason = f"PostgreSQL at REACTIVE_TEST_POSTGRES_URL={POSTGRES_URL} unreachable: {exc!r}"
        if os.environ.get("CI"):
            pytest.fail(f"{reason} (CI is set, so the Postgres tests must run)", pytrace=False)
        pytest.skip(reason)


@pytest.fixture(
    params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
    ids=["sqlite", "postgres"],
)
async def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A database URL nobody else uses: a fresh SQLite file, or a fresh Postgres schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/data.db"
        return
    async for url in _fresh_postgres_schema():
        yield url


async def _fresh_postgres_schema() -> AsyncIterator[str]:
    conn = await connect_postgres_or_skip()
    schema = f"t_{secrets.token_hex(8)}"
    try:
        yield with_schema(POSTGRES_URL, schema)
    finally:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()


@pytest.fixture
async def postgres_store_url() -> AsyncIterator[str]:
    """A fresh Postgres schema, for what only PostgreSQL has (LISTEN/NOTIFY, backends)."""
    async for url in _fresh_postgres_schema():
        yield url


@pytest.fixture
async def persistence(store_url: str) -> AsyncIterator[Persistence]:
    """The opened backend for `store_url`, closed after the test."""
    store = await open_persistence(store_url)
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
async def db(store_url: str) -> AsyncIterator[Database]:
    """A Database on `store_url` with the shared test schema, closed after the test."""
    database = await Database.open(store_url, schema=TEST_SCHEMA, prune=False)
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture(scope="module")
def issuer() -> Iterator[LocalIssuer]:
    """A local OIDC issuer (discovery, JWKS, signed tokens), one per test module."""
    with LocalIssuer() as local:
        yield local
