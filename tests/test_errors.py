"""Error helpers: quoting a client's input without echoing it whole."""

from __future__ import annotations

from reactive import knobs
from reactive.errors import excerpt


def test_a_short_value_is_quoted_whole():
    assert excerpt("messages:list") == "'messages:list'"
    assert excerpt([1, 2]) == "[1, 2]"


def test_a_long_string_is_cut_and_its_length_given():
    quoted = excerpt("x" * (4 << 20))
    assert len(quoted) < knobs.ERROR_ECHO_CHARS + 40
    assert quoted.endswith(f"... ({4 << 20} characters)")


def test_a_long_structure_is_cut_too():
    quoted = excerpt(list(range(100_000)), limit=50)
    assert quoted.startswith("[0, 1, 2") and len(quoted) < 90
