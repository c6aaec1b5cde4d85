"""FileWatch: an inotify descriptor, readable once a file in its directory other than our own
was written or a new one appeared."""

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
def test_writes_to_our_own_file_never_make_the_watch_readable(tmp_path: Path) -> None:
    ours, theirs = tmp_path / "1-ours", tmp_path / "2-theirs"
    ours.write_bytes(b"")
    theirs.write_bytes(b"")
    watch = FileWatch.open(str(tmp_path), own="1-ours")
    assert watch is not None
    try:
        for _ in range(3):
            ours.write_bytes(b"\x01")
        assert not readable(watch, 0.05)  # our own commits wake nobody here
        ours.write_bytes(b"\x01")
        theirs.write_bytes(b"\x01")
        assert readable(watch, 5.0)
        assert watch.drain() is True
        assert not readable(watch, 0.05)
    finally:
        watch.close()


@linux_only
def test_a_new_file_is_heard_of_and_then_watched(tmp_path: Path) -> None:
    watch = FileWatch.open(str(tmp_path), own="1-ours")
    assert watch is not None
    try:
        (tmp_path / "1-ours").write_bytes(b"")  # our bell appearing: nothing to look at
        assert watch.drain() is False
        (tmp_path / "1-ours").write_bytes(b"\x01")  # nor our commits
        assert not readable(watch, 0.05)
        newcomer = tmp_path / "3-new"
        newcomer.write_bytes(b"")  # another process opened the database
        assert readable(watch, 5.0)
        assert watch.drain() is True
        newcomer.write_bytes(b"\x01")  # and commits
        assert readable(watch, 5.0)
        assert watch.drain() is True
        newcomer.unlink()
        assert watch.drain() is False  # its watch ends with it
    finally:
        watch.close()


def test_a_file_that_is_not_there_cannot_be_watched(tmp_path: Path) -> None:
    assert FileWatch.open(str(tmp_path / "missing")) is None
