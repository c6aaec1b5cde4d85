"""FileWatch: an inotify descriptor that is readable once its file was written."""

from __future__ import annotations

import select
import sys
from pathlib import Path

import pytest

from reactive.persistence.file_watch import FileWatch

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify is Linux's")


def readable(watch: FileWatch, timeout: float) -> bool:
    return bool(select.select([watch.fileno()], [], [], timeout)[0])


@linux_only
def test_a_write_makes_the_watch_readable_until_drained(tmp_path: Path) -> None:
    path = tmp_path / "data.db.commit-bell"
    path.write_bytes(b"")
    watch = FileWatch.open(str(path))
    assert watch is not None
    try:
        assert not readable(watch, 0.05)
        path.write_bytes(b"\x01")
        assert readable(watch, 5.0)
        watch.drain()
        assert not readable(watch, 0.05)
    finally:
        watch.close()
    watch.close()  # twice: a no-op
    with pytest.raises(ValueError):
        watch.fileno()


def test_a_file_that_is_not_there_cannot_be_watched(tmp_path: Path) -> None:
    assert FileWatch.open(str(tmp_path / "missing")) is None
