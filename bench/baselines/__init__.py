"""Baselines measured in the same run as our server: 1-second multiplexed polling (polling.py),
PGlite live queries in a Node process (pglite.py), and table-level invalidation (a second
server with REACTIVE_TABLE_LEVEL_INVALIDATION=1, run by the scenarios themselves)."""

from __future__ import annotations

__all__: list[str] = []
