"""Full-text search: the tokenizer, the `q.search(...).eq(...)` builder, posting keys, BM25.

A search index is stored as ordinary MVCC index rows ("postings"), so that snapshot reads,
read sets (reactivity) and OCC conflicts work as for any index. For each document and each
distinct term of its search field there is one posting per *group*:

    group 0:      (0, term, _id, counts)                 every document
    group i + 1:  (i + 1, value of filter field i, term, _id, counts)

`counts` packs what BM25 needs of the document: how often the term occurs in it and how many
tokens it has. A search ranks from its postings alone and reads only the documents it returns,
not the hundreds it ranks (on PostgreSQL at 1M documents, fetching every candidate was most of
a search's time).

A search with no filter scans group 0; one with `eq(f, x)` scans the group of `f` under `x`
(further `eq` filters are checked on the documents found). Each query term is one key range
(the last term, a prefix, is the range of every term that starts with it), so a commit
invalidates a search, or conflicts with a mutation that searched, only if it writes a posting
of one of its terms under its filter value.

Invariant: no I/O here; the transaction scans the ranges `SearchPlan` names and scores the
postings it found with `rank`.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from reactive.errors import QueryError
from reactive.index_keys import Interval, encode_key, prefix_successor
from reactive.types import Value
from reactive.values import UNDEFINED, Undefined, check_value, compare_values

__all__ = [
    "MAX_FILTER_FIELDS",
    "MAX_QUERY_CHARS",
    "MAX_QUERY_TERMS",
    "MAX_SEARCH_RESULTS",
    "SEARCH_MARKER",
    "SearchFilterBuilder",
    "SearchPlan",
    "SearchSpec",
    "plan_search",
    "posting_counts",
    "posting_document_id",
    "posting_keys",
    "rank",
    "tokenize",
]

#: The first stored "field" of a search index's catalog row: "$" cannot start a field name, so
#: no database index is ever mistaken for a search index (or the reverse). It names the posting
#: format too: an index stored in an older format ("$search", postings without counts) has
#: other fields than the schema asks for, so the next deploy rebuilds it.
SEARCH_MARKER: Final = "$search.v2"
#: As Convex: at most 16 filter fields per search index, 16 terms and 8 filters per query,
#: and a search returns at most 1,024 documents.
MAX_FILTER_FIELDS: Final = 16
MAX_QUERY_TERMS: Final = 16
MAX_QUERY_FILTERS: Final = 8
MAX_SEARCH_RESULTS: Final = 1024
#: Ours: a search string longer than this is refused rather than tokenized.
MAX_QUERY_CHARS: Final = 1024
#: Tokens longer than this are not indexed (nor searched), as Tantivy's long-token filter.
MAX_TERM_CHARS: Final = 64
#: BM25's usual constants (Tantivy's too).
K1: Final = 1.2
B: Final = 0.75

_TOKEN: Final = re.compile(r"[^\W_]+")


def tokenize(text: str) -> list[str]:
    """Lowercased runs of Unicode letters and digits, in order (Convex's simple tokenizer)."""
    if text.isascii():
        # Lowercasing ASCII first gives the same tokens at a fraction of the cost (a search
        # tokenizes every candidate it ranks). Not in general: some letters lowercase to a
        # letter and a combining mark, which would split their token.
        lowered = text.lower()
        if lowered.replace(" ", "").isalnum():
            tokens = lowered.split()  # words between spaces: the same tokens, 5x faster
        else:
            tokens = _TOKEN.findall(lowered)
        if len(text) <= MAX_TERM_CHARS:
            return tokens  # none can be too long
    else:
        tokens = [m.lower() for m in _TOKEN.findall(text)]
    return [t for t in tokens if len(t) <= MAX_TERM_CHARS]


# -- the builder ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SearchSpec:
    """What `with_search_index(name, lambda q: q.search(field, text).eq(f, x))` asked for."""

    field: str
    text: str
    filters: tuple[tuple[str, Value | Undefined], ...] = ()


class SearchFilterBuilder:
    """The `q` of `with_search_index`: `q.search(field, text)` first, then `.eq(field, value)`
    for filter fields."""

    __slots__ = ("spec",)

    def __init__(self, spec: SearchSpec | None = None) -> None:
        self.spec = spec

    def search(self, field_path: str, text: str) -> SearchFilterBuilder:
        if self.spec is not None:
            raise QueryError("with_search_index: q.search(...) may be called only once")
        if not isinstance(field_path, str):
            raise QueryError(f"q.search needs a field name, got {field_path!r}")
        if not isinstance(text, str):
            raise QueryError(f"q.search({field_path!r}, text): text must be a string, got {text!r}")
        return SearchFilterBuilder(SearchSpec(field_path, text))

    def eq(self, field_path: str, value: Value | Undefined) -> SearchFilterBuilder:
        if self.spec is None:
            raise QueryError(
                "with_search_index: call q.search(field, text) before q.eq(...) "
                "(e.g. lambda q: q.search('body', 'hello').eq('channel', c))"
            )
        if not isinstance(field_path, str):
            raise QueryError(f"q.eq needs a field name, got {field_path!r}")
        if value is not UNDEFINED:
            check_value(value, f"with_search_index eq({field_path!r})")
        filters = (*self.spec.filters, (field_path, value))
        return SearchFilterBuilder(SearchSpec(self.spec.field, self.spec.text, filters))


# -- planning and posting keys ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SearchPlan:
    """The key ranges a search scans (one per query term, the last a prefix) and the filters
    its documents must pass."""

    terms: tuple[str, ...]
    intervals: tuple[Interval, ...]
    filters: tuple[tuple[str, Value | Undefined], ...]


def plan_search(
    index: str, search_field: str, filter_fields: Sequence[str], spec: SearchSpec
) -> SearchPlan:
    """Check `spec` against the index (QueryError naming what is wrong) and plan its scans."""
    if spec.field != search_field:
        raise QueryError(
            f"Search index {index!r} searches the field {search_field!r}, not {spec.field!r}",
            short_msg="InvalidSearchField",
        )
    if len(spec.text) > MAX_QUERY_CHARS:
        raise QueryError(
            f"Search query on {index!r} is {len(spec.text)} characters long; the limit is "
            f"{MAX_QUERY_CHARS}",
            short_msg="SearchQueryTooLong",
        )
    terms = list(dict.fromkeys(tokenize(spec.text)))
    if not terms:
        raise QueryError(
            f"Search query on {index!r} is empty: {spec.text!r} has no words to search for",
            short_msg="EmptySearchQuery",
        )
    if len(terms) > MAX_QUERY_TERMS:
        raise QueryError(
            f"Search query on {index!r} has {len(terms)} terms; the limit is {MAX_QUERY_TERMS}",
            short_msg="TooManySearchTerms",
        )
    if len(spec.filters) > MAX_QUERY_FILTERS:
        raise QueryError(
            f"Search query on {index!r} has {len(spec.filters)} filters; the limit is "
            f"{MAX_QUERY_FILTERS}",
            short_msg="TooManySearchFilters",
        )
    seen: set[str] = set()
    for name, _ in spec.filters:
        if name not in filter_fields:
            declared = ", ".join(repr(f) for f in filter_fields) or "none"
            raise QueryError(
                f"Search index {index!r} cannot filter on {name!r}: it is not one of the "
                f"index's filter fields ({declared})",
                short_msg="InvalidSearchFilter",
            )
        if name in seen:
            raise QueryError(
                f"Search query on {index!r} filters on {name!r} twice",
                short_msg="InvalidSearchFilter",
            )
        seen.add(name)
    if spec.filters:
        name, value = spec.filters[0]
        group: list[object] = [filter_fields.index(name) + 1, value]
    else:
        group = [0]
    intervals = tuple(
        _term_interval(group, term, prefix=position == len(terms) - 1)
        for position, term in enumerate(terms)
    )
    return SearchPlan(tuple(terms), intervals, spec.filters)


def _term_interval(group: list[object], term: str, *, prefix: bool) -> Interval:
    exact = encode_key([*group, term])
    # A term is a string without NUL bytes: its key is the tag, its UTF-8 bytes, then the
    # terminator; without the terminator it is the prefix of every term that starts with it.
    start = exact[:-1] if prefix else exact
    return Interval(start, prefix_successor(start))


def document_terms(doc: Mapping[str, Value], search_field: str) -> list[str]:
    """The tokens of a document's search field (none if it is missing or not a string)."""
    text = _field(doc, search_field)
    return tokenize(text) if isinstance(text, str) else []


def posting_keys(
    doc: Mapping[str, Value], search_field: str, filter_fields: Sequence[str]
) -> list[bytes]:
    """The index keys of every posting of `doc` (see the module docstring)."""
    doc_id = doc["_id"]
    tokens = document_terms(doc, search_field)
    occurrences = Counter(tokens)
    terms = sorted(occurrences)
    counts = [_pack_counts(occurrences[term], len(tokens)) for term in terms]
    keys = [encode_key([0, term, doc_id, n]) for term, n in zip(terms, counts, strict=True)]
    for position, name in enumerate(filter_fields):
        group = [position + 1, _field(doc, name)]
        keys.extend(
            encode_key([*group, term, doc_id, n]) for term, n in zip(terms, counts, strict=True)
        )
    return keys


def _pack_counts(term_count: int, token_count: int) -> int:
    # One int64 rather than two: 9 bytes of every posting key rather than 18.
    return term_count << 32 | token_count


def posting_counts(key: bytes) -> tuple[int, int]:
    """(occurrences of the posting's term, tokens of its document), from its key: an int64
    ends every posting key, 8 bytes with the sign bit flipped (index_keys.py)."""
    packed = int.from_bytes(key[-8:], "big") ^ (1 << 63)
    return packed >> 32, packed & 0xFFFFFFFF


def posting_document_id(key: bytes) -> str:
    """The id of a posting's document, from its key: the string before the counts (the
    int64's tag and 8 bytes, after the id's terminator). An id is base32 ASCII, so the last
    string tag byte before it is its own."""
    end = len(key) - 10
    return key[key.rindex(b"\x06", 0, end) + 1 : end].decode("ascii")


def passes_filters(doc: Mapping[str, Value], filters: Sequence[tuple[str, object]]) -> bool:
    return all(_equal(_field(doc, name), value) for name, value in filters)


def _equal(a: object, b: object) -> bool:
    if a is UNDEFINED or b is UNDEFINED:
        return a is b
    return compare_values(a, b) == 0


def _field(doc: Mapping[str, Value], path: str) -> object:
    if "." not in path:
        return doc.get(path, UNDEFINED)  # the usual case, without the walk
    current: object = doc
    for name in path.split("."):
        if not isinstance(current, Mapping):
            return UNDEFINED
        current = current.get(name, UNDEFINED)
    return current


# -- scoring ----------------------------------------------------------------------------------


def rank(postings: Sequence[Sequence[bytes]]) -> list[tuple[float, str]]:
    """(score, id) of every document with a posting in `postings` (the keys found for each
    query term, in query order), best first; ties go by id (the same on every backend).

    BM25 with k1 = 1.2, b = 0.75. The last term is a prefix: its range holds a posting for
    every term of the document that starts with it, and their counts add up. Corpus statistics
    are those of what the search read at its snapshot: N and the average length over the
    documents found, a term's document frequency the number of documents found for it.
    """
    lengths: dict[str, int] = {}
    counts: list[dict[str, int]] = []
    for term_postings in postings:
        found: dict[str, int] = {}
        for key in term_postings:
            doc_id = posting_document_id(key)
            term_count, lengths[doc_id] = posting_counts(key)
            found[doc_id] = found.get(doc_id, 0) + term_count
        counts.append(found)
    n = len(lengths)
    if n == 0:
        return []
    average = sum(lengths.values()) / n or 1.0
    norms = {doc_id: K1 * (1 - B + B * length / average) for doc_id, length in lengths.items()}
    scores = dict.fromkeys(lengths, 0.0)
    for found in counts:
        df = len(found)
        idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
        for doc_id, tf in found.items():
            scores[doc_id] += idf * tf * (K1 + 1) / (tf + norms[doc_id])
    scored = [(score, doc_id) for doc_id, score in scores.items()]
    scored.sort(key=lambda item: (-item[0], item[1]))
    return scored
