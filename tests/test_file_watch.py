"""FileWatch: an inotify descriptor, readable once a file in its directory was written, that
tells whether a file other than our own was."""

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
def test_a_write_in_the_directory_makes_the_watch_readable_until_drained(tmp_path: Path) -> None:
    bell = tmp_path / "123-ab"
    bell.write_bytes(b"")
    watch = FileWatch.open(str(tmp_path))
    assert watch is not None
    try:
        assert not readable(watch, 0.05)
        bell.write_bytes(b"\x01")
        assert readable(watch, 5.0)
        assert watch.drain() is True
        assert not readable(watch, 0.05)
    finally:
        watch.close()
    watch.close()  # twice: a no-op
    with pytest.raises(ValueError):
        watch.fileno()


@linux_only
def test_drain_tells_writes_to_our_own_file_from_writes_to_others(tmp_path: Path) -> None:
    ours, theirs = tmp_path / "1-ours", tmp_path / "2-theirs"
    ours.write_bytes(b"")
    theirs.write_bytes(b"")
    watch = FileWatch.open(str(tmp_path))
    assert watch is not None
    try:
        for _ in range(3):
            ours.write_bytes(b"\x01")
        assert readable(watch, 5.0)
        assert watch.drain(ignore="1-ours") is False  # only our own: nothing to look at
        ours.write_bytes(b"\x01")
        theirs.write_bytes(b"\x01")
        ours.write_bytes(b"\x01")
        assert readable(watch, 5.0)
        assert watch.drain(ignore="1-ours") is True
        assert not readable(watch, 0.05)
    finally:
        watch.close()


def test_a_file_that_is_not_there_cannot_be_watched(tmp_path: Path) -> None:
    assert FileWatch.open(str(tmp_path / "missing")) is None
