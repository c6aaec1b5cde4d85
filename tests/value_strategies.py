"""Hypothesis strategies for Convex values, edge cases included (NaN, -0.0, int64 limits,
NUL bytes, astral characters). `small=True` keeps strings and containers short, so generated
values often share prefixes (what key-order tests need)."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from reactive.values import INT64_MAX, INT64_MIN

__all__ = ["INF", "NAN", "NEG_NAN", "Strategies", "strategies"]

NAN = float("nan")
NEG_NAN = -float("nan")
INF = float("inf")


class Strategies:
    """FIELD_NAMES, FLOATS, INTS, TEXT, BYTES, SCALARS and VALUES as attributes."""

    def __init__(self, *, small: bool) -> None:
        text_size, name_size, width, leaves = (6, 4, 3, 8) if small else (None, 6, 4, 12)
        self.FIELD_NAMES: Any = st.text(
            alphabet=st.characters(min_codepoint=32, max_codepoint=126),
            min_size=1,
            max_size=name_size,
        ).filter(lambda name: not name.startswith("$"))
        self.FLOATS: Any = st.floats() | st.sampled_from(
            [NAN, NEG_NAN, INF, -INF, -0.0, 0.0, 5e-324, -1.5]
        )
        self.INTS: Any = st.integers(INT64_MIN, INT64_MAX) | st.sampled_from(
            [INT64_MIN, INT64_MAX, 0, -1, 1]
        )
        self.TEXT: Any = st.text(max_size=text_size) | st.sampled_from(
            ["", "\x00", "a\x00", "a", "a\x00b", "\uffff", "\U00010000", "é"]
        )
        self.BYTES: Any = st.binary(max_size=text_size) | st.sampled_from(
            [b"", b"\x00", b"\xff", b"\x00\xff", b"a\x00"]
        )
        self.SCALARS: Any = (
            st.none() | st.booleans() | self.INTS | self.FLOATS | self.TEXT | self.BYTES
        )
        self.VALUES: Any = st.recursive(
            self.SCALARS,
            lambda children: (
                st.lists(children, max_size=width)
                | st.dictionaries(self.FIELD_NAMES, children, max_size=width)
            ),
            max_leaves=leaves,
        )


def strategies(*, small: bool = False) -> Strategies:
    return Strategies(small=small)
