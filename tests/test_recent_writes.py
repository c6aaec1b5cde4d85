from __future__ import annotations

import pytest

from reactive.index_keys import Interval
from reactive.reads import ReadSet
from reactive.recent_writes import RecentWrites, decode_written, encode_written


def read_set(index: str, start: bytes, end: bytes) -> ReadSet:
    reads = ReadSet()
    reads.record(index, Interval(start, end))
    return reads


def test_conflict_only_for_commits_after_begin_ts():
    log = RecentWrites()
    log.append(10, {"t.i": [b"\x05"]})
    log.append(20, {"t.i": [b"\x07"]})
    reads = read_set("t.i", b"\x05", b"\x06")
    assert log.find_conflict(reads, 5).ts == 10
    assert log.find_conflict(reads, 10) is None


def test_no_conflict_outside_range_or_other_index():
    log = RecentWrites()
    log.append(10, {"t.i": [b"\x09"], "t.j": [b"\x05"]})
    assert log.find_conflict(read_set("t.i", b"\x05", b"\x06"), 0) is None


def test_read_older_than_floor_conflicts():
    log = RecentWrites()
    log.append(10, {})
    log.trim_before(10)
    conflict = log.find_conflict(ReadSet(), 5)
    assert conflict is not None and conflict.key is None
    assert log.find_conflict(ReadSet(), 10) is None


def test_truncate_after_forgets_failed_group():
    log = RecentWrites()
    log.append(10, {"t.i": [b"\x05"]})
    log.append(20, {"t.i": [b"\x05"]})
    log.truncate_after(10)
    assert log.last_ts == 10
    assert log.find_conflict(read_set("t.i", b"\x05", b"\x06"), 10) is None


def test_append_requires_increasing_ts():
    log = RecentWrites()
    log.append(10, {})
    with pytest.raises(ValueError):
        log.append(10, {})


def test_written_keys_serialize():
    written = {"t.by_id": [b"\x06a\x00", b"\x06b\x00"], "t.x": []}
    assert decode_written(encode_written(written)) == written
