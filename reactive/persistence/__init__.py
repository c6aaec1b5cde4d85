"""Storage backends behind the Persistence protocol, and the factory that picks one by URL.

Accepted URLs: `sqlite:///path/to/file.db` (relative to the cwd; `sqlite:////abs/path.db` for
an absolute path) and `postgresql://user@host:port/db[?schema=name]` (`postgres://` too).
"""

from __future__ import annotations

from typing import Any

from reactive.persistence import base
from reactive.persistence.base import *  # noqa: F403  (the names in base.__all__, listed there)
from reactive.persistence.base import Persistence

# The record types and the protocol are listed once, in base.py, and re-exported from here.
__all__ = ["DEFAULT_DATABASE_URL", "create_persistence", "open_persistence"]
__all__ += base.__all__

DEFAULT_DATABASE_URL = "sqlite:///.reactive/data.db"


def create_persistence(url: str, **options: Any) -> Persistence:
    """The backend for `url`, not yet opened; `options` go to its constructor.

    SQLite takes `synchronous` ("FULL" by default) and `busy_timeout_ms`; PostgreSQL takes
    `min_size` and `max_size` of its connection pool.
    """
    scheme = url.partition(":")[0].lower()
    if scheme == "sqlite":
        from reactive.persistence.sqlite import SqlitePersistence

        return SqlitePersistence(url, **options)
    if scheme in ("postgresql", "postgres"):
        # Imported lazily so that a SQLite-only deployment never loads asyncpg.
        from reactive.persistence.postgres import PostgresPersistence

        return PostgresPersistence(url, **options)
    raise ValueError(
        f"unsupported database URL scheme {scheme!r}: expected sqlite:///path/to/file.db"
        " or postgresql://user@host:port/db[?schema=name]"
    )


async def open_persistence(url: str, **options: Any) -> Persistence:
    """Construct the backend for `url` and open it (creating its tables if needed)."""
    persistence = create_persistence(url, **options)
    await persistence.open()
    return persistence
