"""Baselines measured in the same run as our server: 1-second multiplexed polling (here) and
table-level invalidation (a second server with REACTIVE_TABLE_LEVEL_INVALIDATION=1, run by the
scenarios themselves). PGlite live queries are not implemented yet (see bench/README.md)."""

from __future__ import annotations

__all__: list[str] = []
