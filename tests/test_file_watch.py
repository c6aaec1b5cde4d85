"""FileWatch: a write wakes the waiting thread at once; close wakes it for good."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest

from reactive.persistence.file_watch import FileWatch, Woken

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify is Linux's")


@linux_only
def test_a_write_wakes_the_waiter_long_before_its_timeout(tmp_path: Path) -> None:
    path = tmp_path / "data.db.commit-bell"
    path.write_bytes(b"")
    watch = FileWatch(str(path))
    try:
        assert watch.event_driven
        threading.Timer(0.05, lambda: path.write_bytes(b"commit")).start()
        started = time.monotonic()
        assert watch.wait(30.0) is Woken.WRITTEN
        assert time.monotonic() - started < 10.0
    finally:
        watch.release()


def test_close_from_another_thread_ends_the_wait(tmp_path: Path) -> None:
    path = tmp_path / "data.db.commit-bell"
    path.write_bytes(b"")
    watch = FileWatch(str(path))
    try:
        threading.Timer(0.05, watch.close).start()
        assert watch.wait(30.0) is Woken.CLOSED
    finally:
        watch.release()
    watch.close()  # after release: a no-op, never a write to a reused descriptor


def test_a_file_that_is_not_there_is_polled(tmp_path: Path) -> None:
    watch = FileWatch(str(tmp_path / "missing"))
    try:
        assert not watch.event_driven
        started = time.monotonic()
        assert watch.wait(0.05) is Woken.TIMED_OUT
        assert time.monotonic() - started >= 0.04
    finally:
        watch.release()
